//! Reading /proc for the chaos harness: a master's workers, a process's state, and the
//! established TCP connections a process holds. Pure parsers first (unit-tested on fixture
//! text), then the thin readers. Linux only.

use std::collections::HashSet;

/// The pids in a `/proc/<pid>/task/<tid>/children` file.
fn parse_children(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The state letter of a `/proc/<pid>/stat` line: the field after the command name, which is
/// in parentheses and may hold spaces or parentheses itself.
fn parse_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The inode of a `/proc/<pid>/fd` link that is a socket (`socket:[12345]`).
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inodes of the ESTABLISHED (state `01`) sockets in a `/proc/net/tcp` or `tcp6` table.
fn established_inodes(table: &str) -> HashSet<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            (f.len() > 9 && f[3] == "01").then(|| f[9].parse().ok())?
        })
        .collect()
}

pub fn state(pid: i32) -> Option<char> {
    parse_state(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| parse_children(&text))
        .collect()
}

/// The live workers of the server whose master is `master`: its descendants that named
/// themselves `worker[N]` (a new master started by an upgrade is a descendant too, but is
/// not named so). Sorted.
pub fn workers(master: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = children(master);
    while let Some(pid) = todo.pop() {
        if !alive(pid) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("worker[") {
            out.push(pid);
        }
        todo.extend(children(pid));
    }
    out.sort();
    out
}

/// How many ESTABLISHED TCP connections `pid` holds.
pub fn established(pid: i32) -> usize {
    let mut inodes = HashSet::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            inodes.extend(established_inodes(&text));
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| socket_inode(&link.to_string_lossy()))
        .filter(|inode| inodes.contains(inode))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_established_inodes() {
        // Trimmed lines of a real /proc/net/tcp: a listener (0A), two ESTABLISHED (01)
        // connections, one TIME_WAIT (06, inode 0) and one FIN_WAIT2 (05).
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A0F1 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 812345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A0F1 0100007F:D2B4 01 00000000:00000000 00:00000000 00000000  1000        0 812399 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2B4 0100007F:A0F1 01 00000000:00000000 00:00000000 00000000  1000        0 812398 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:A0F1 0100007F:D2C0 06 00000000:00000000 03:00000F6A 00000000     0        0 0 3 0000000000000000
   4: 0100007F:A0F1 0100007F:D2C2 05 00000000:00000000 00:00000000 00000000  1000        0 812401 1 0000000000000000 20 4 30 10 -1
";
        let got = established_inodes(table);
        assert_eq!(got, HashSet::from([812399, 812398]));
        assert!(established_inodes("").is_empty());
        assert!(established_inodes("header\n   garbage line\n").is_empty());
    }

    #[test]
    fn fd_links_and_stat_and_children() {
        assert_eq!(socket_inode("socket:[812399]"), Some(812399));
        assert_eq!(socket_inode("pipe:[812399]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(parse_state("77 (worker[3]) S 1 77 77 0"), Some('S'));
        assert_eq!(parse_state("78 (a) Z (b) T 1"), Some('T'));
        assert_eq!(parse_state("garbage"), None);
        assert_eq!(parse_children("4242 4243 \n"), vec![4242, 4243]);
        assert_eq!(parse_children(""), Vec::<i32>::new());
    }
}
