//! The memory cgroup of the server: where it is, and its RSS, cache, swap, page counters
//! and limit, the dyno-level `memory_*` figures of the runtime metrics.
//!
//! Both hierarchies are read (cgroups(7)): v1, with the memory controller mounted at
//! `/sys/fs/cgroup/memory` (kernel docs `admin-guide/cgroup-v1/memory.rst`), and v2, the
//! unified hierarchy at `/sys/fs/cgroup` or, on hybrid systems, `/sys/fs/cgroup/unified`
//! (`admin-guide/cgroup-v2.rst`). The parsers take the files' text and return plain data;
//! [`memory_dir`], [`read`] and [`read_procs`] are thin readers. Nothing here writes to a
//! cgroup or moves a process: the server observes the cgroup it was started in.

use std::fs;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the memory controller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// cgroup v1: one hierarchy per controller (or group of controllers).
    V1,
    /// cgroup v2: the single unified hierarchy.
    V2,
}

/// The cgroup path of this process for the memory controller, from /proc/self/cgroup.
///
/// Each line is `hierarchy-ID:controller-list:cgroup-path` (cgroups(7), `/proc/[pid]/cgroup`).
/// A v1 line whose controller list contains `memory` (`4:memory:/a/b`, `5:cpu,memory:/x`)
/// wins, as the memory controller can be bound to only one hierarchy, and on hybrid systems
/// that is the v1 one; else the v2 line (`0::/path`) is used. The path is relative to the
/// cgroup namespace root and may itself contain ':', so each line is split at its first two.
///
/// Returns `None` when neither kind of line is present (no cgroup support, garbled text).
pub fn parse_proc_cgroup(text: &str) -> Option<(CgroupVersion, String)> {
    let mut v2 = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        if controllers.split(',').any(|c| c == "memory") {
            return Some((CgroupVersion::V1, path.to_owned()));
        }
        if id == "0" && controllers.is_empty() && v2.is_none() {
            v2 = Some((CgroupVersion::V2, path.to_owned()));
        }
    }
    v2
}

/// The cgroup's memory figures, in bytes and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupMemory {
    /// Anonymous memory (v1 `rss`, v2 `anon`), in bytes.
    pub rss_bytes: u64,
    /// Page cache (v1 `cache`, v2 `file`), in bytes.
    pub cache_bytes: u64,
    /// Swap in use, in bytes; 0 where swap is not accounted.
    pub swap_bytes: u64,
    /// Pages charged to the cgroup since it was created (v1 only: v2 has no such counter).
    pub pgpgin_pages: Option<u64>,
    /// Pages uncharged from the cgroup since it was created (v1 only).
    pub pgpgout_pages: Option<u64>,
    /// The memory limit in bytes, `None` when unlimited.
    pub quota_bytes: Option<u64>,
}

/// The smallest v1 limit read as "unlimited".
///
/// Writing -1 to `memory.limit_in_bytes` stores `PAGE_COUNTER_MAX` pages, which reads back
/// as `LONG_MAX` rounded down to the page size (9223372036854771712 with 4 KiB pages, less
/// with larger pages). Any figure this large is no real limit.
const V1_UNLIMITED_BYTES: u64 = 1 << 62;

/// The value of `key` in a flat-keyed file such as memory.stat (`key value` per line).
///
/// The first well-formed line for the key wins; an unparsable value reads as absent.
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(k), Some(v), None) if k == key => v.parse::<u64>().ok(),
            _ => None,
        }
    })
}

/// The hierarchical `total_<key>` of a v1 memory.stat, else the cgroup's own `<key>`.
fn v1_value(stat: &str, key: &str) -> Option<u64> {
    stat_value(stat, &format!("total_{key}")).or_else(|| stat_value(stat, key))
}

/// Reads a v1 memory cgroup from its `memory.stat` and `memory.limit_in_bytes` texts.
///
/// The `total_` counters include the descendant cgroups (cgroup-v1/memory.rst, section 5.2,
/// `"memory.stat file includes following statistics ... total_<counter>"`), so the server's
/// figures cover any sub-cgroup it sits in; without them, the cgroup's own counters are used.
/// `swap` is only present when swap accounting is on, and reads as 0 otherwise. A limit of
/// 2^62 or more (the kernel's "unlimited"), or an unparsable one, gives no quota.
///
/// Returns `None` when neither `total_rss` nor `rss` is present.
pub fn parse_v1(stat: &str, limit_in_bytes: Option<&str>) -> Option<CgroupMemory> {
    let rss_bytes = v1_value(stat, "rss")?;
    // The limit that applies is the lowest on the way to the root: memory.stat's
    // hierarchical_memory_limit has it (a limit set on a parent cgroup binds us too).
    let own = limit_in_bytes.and_then(|text| text.trim().parse::<u64>().ok());
    let quota_bytes = [own, stat_value(stat, "hierarchical_memory_limit")]
        .into_iter()
        .flatten()
        .filter(|&bytes| bytes < V1_UNLIMITED_BYTES)
        .min();
    Some(CgroupMemory {
        rss_bytes,
        cache_bytes: v1_value(stat, "cache").unwrap_or(0),
        swap_bytes: v1_value(stat, "swap").unwrap_or(0),
        pgpgin_pages: v1_value(stat, "pgpgin"),
        pgpgout_pages: v1_value(stat, "pgpgout"),
        quota_bytes,
    })
}

/// Reads a v2 memory cgroup from its `memory.stat`, `memory.max` and `memory.swap.current`.
///
/// `anon` and `file` are the v2 names of RSS and cache (cgroup-v2.rst, "memory.stat"); v2
/// counts them hierarchically already. v2 has no `pgpgin`/`pgpgout`, so those are `None`.
/// `memory.swap.current` is missing without swap accounting and reads as 0 then, as does an
/// unparsable one. `memory.max` holds "max" when unlimited, which gives no quota.
///
/// Returns `None` when `anon` is missing.
pub fn parse_v2(
    stat: &str,
    memory_max: Option<&str>,
    swap_current: Option<&str>,
) -> Option<CgroupMemory> {
    let rss_bytes = stat_value(stat, "anon")?;
    let single_number = |text: &str| text.trim().parse::<u64>().ok();
    Some(CgroupMemory {
        rss_bytes,
        cache_bytes: stat_value(stat, "file").unwrap_or(0),
        swap_bytes: swap_current.and_then(single_number).unwrap_or(0),
        pgpgin_pages: None,
        pgpgout_pages: None,
        // "max" does not parse as a number, so it falls out here with the garbled values.
        quota_bytes: memory_max.and_then(single_number),
    })
}

/// Where the v1 memory controller is mounted, by convention (systemd, Docker, Heroku).
const V1_MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";
/// Where the v2 hierarchy is mounted on a v2-only system.
const V2_ROOT: &str = "/sys/fs/cgroup";
/// Where systemd mounts the v2 hierarchy on a hybrid system (v1 controllers beside it).
const V2_HYBRID_ROOT: &str = "/sys/fs/cgroup/unified";

/// The directory of the cgroup `path` (as [`parse_proc_cgroup`] gives it) for the memory
/// controller.
///
/// v1: under `/sys/fs/cgroup/memory`; v2: under `/sys/fs/cgroup`, or under
/// `/sys/fs/cgroup/unified` when `/sys/fs/cgroup/unified/cgroup.controllers` exists (a hybrid
/// hierarchy). This looks at the file system for that one file and nothing else. The path
/// is taken as relative to the mount, which holds inside a cgroup namespace (cgroup_namespaces(7))
/// and on the host; without a namespace, a container may see its own cgroup at the mount's
/// root instead, and the directory built here then does not exist, so [`read`] gives `None`.
pub fn memory_dir(version: CgroupVersion, path: &str) -> PathBuf {
    let hybrid = version == CgroupVersion::V2
        && Path::new(V2_HYBRID_ROOT)
            .join("cgroup.controllers")
            .exists();
    memory_dir_under(version, path, hybrid)
}

/// The pure part of [`memory_dir`].
fn memory_dir_under(version: CgroupVersion, path: &str, hybrid: bool) -> PathBuf {
    let root = match (version, hybrid) {
        (CgroupVersion::V1, _) => V1_MEMORY_ROOT,
        (CgroupVersion::V2, false) => V2_ROOT,
        (CgroupVersion::V2, true) => V2_HYBRID_ROOT,
    };
    // The path starts with '/', and joining an absolute path would replace the root.
    Path::new(root).join(path.trim_start_matches('/'))
}

/// Reads the memory figures of the cgroup directory `dir` (see [`memory_dir`]).
///
/// Thin I/O: `memory.stat`, plus `memory.limit_in_bytes` (v1) or `memory.max` and
/// `memory.swap.current` (v2). `None` when memory.stat cannot be read or does not parse;
/// the other files are optional (the root cgroup has no `memory.max`, and swap files exist
/// only with swap accounting).
pub fn read(version: CgroupVersion, dir: &Path) -> Option<CgroupMemory> {
    let read_file = |name: &str| fs::read_to_string(dir.join(name)).ok();
    let stat = read_file("memory.stat")?;
    match version {
        CgroupVersion::V1 => parse_v1(&stat, read_file("memory.limit_in_bytes").as_deref()),
        CgroupVersion::V2 => {
            let mut m = parse_v2(
                &stat,
                read_file("memory.max").as_deref(),
                read_file("memory.swap.current").as_deref(),
            )?;
            // v2 has no hierarchical figure: a parent's memory.max binds us too, so take
            // the lowest on the way up (the root cgroup has no memory.max).
            let parents = dir
                .ancestors()
                .skip(1)
                .take_while(|d| d.join("memory.max").exists());
            let parent_limits = parents
                .filter_map(|d| fs::read_to_string(d.join("memory.max")).ok())
                .filter_map(|t| t.trim().parse::<u64>().ok());
            m.quota_bytes = m.quota_bytes.into_iter().chain(parent_limits).min();
            Some(m)
        }
    }
}

/// This process's memory cgroup: its hierarchy and directory (see [`memory_dir`]).
pub fn own() -> Option<(CgroupVersion, PathBuf)> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let (version, path) = parse_proc_cgroup(&text)?;
    Some((version, memory_dir(version, &path)))
}

/// The memory limit of this process's own cgroup (the lowest up the hierarchy on v2), in
/// bytes; `None` without cgroup memory accounting or without a limit.
pub fn own_quota_bytes() -> Option<u64> {
    let (version, dir) = own()?;
    read(version, &dir)?.quota_bytes
}

/// The pids listed in a `cgroup.procs` text, sorted and without duplicates.
///
/// cgroup-v1/cgroups.rst, on cgroup.procs: "This list is not guaranteed to be sorted or
/// free of duplicate TGIDs". Lines that are not a positive number are skipped: pid 0 stands for a process
/// outside this pid namespace, and nothing else is a pid whose /proc entry could be read.
fn parse_procs(text: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = text
        .lines()
        .filter_map(|line| line.trim().parse::<i32>().ok())
        .filter(|&pid| pid > 0)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The pids in the cgroup directory's `cgroup.procs`, one per line, sorted.
///
/// Thin I/O over a pure parser. `None` when the file cannot be read.
pub fn read_procs(dir: &Path) -> Option<Vec<i32>> {
    let text = fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    Some(parse_procs(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 memory.stat from a container whose limit is 512 MiB.
    const V1_STAT: &str = "\
cache 1048576
rss 4194304
rss_huge 0
shmem 0
mapped_file 0
dirty 0
writeback 0
swap 0
pgpgin 1000
pgpgout 900
pgfault 2000
pgmajfault 0
inactive_anon 0
active_anon 4194304
hierarchical_memory_limit 536870912
hierarchical_memsw_limit 9223372036854771712
total_cache 2097152
total_rss 8388608
total_rss_huge 0
total_swap 4096
total_pgpgin 348836
total_pgpgout 343403
total_pgfault 5000
";

    const V2_STAT: &str = "\
anon 21495808
file 524288
kernel 1146880
kernel_stack 65536
pagetables 196608
sock 0
shmem 0
file_mapped 0
file_dirty 0
anon_thp 0
inactive_anon 21438464
active_anon 57344
inactive_file 262144
active_file 262144
pgfault 9817
pgmajfault 0
";

    #[test]
    fn v1_quota_is_the_lowest_limit_up_the_hierarchy() {
        let stat = "rss 10\ncache 0\nhierarchical_memory_limit 536870912\n";
        let m = parse_v1(stat, Some("9223372036854771712\n")).unwrap();
        assert_eq!(m.quota_bytes, Some(536_870_912));
        let m = parse_v1(stat, Some("268435456")).unwrap();
        assert_eq!(m.quota_bytes, Some(268_435_456));
        let unlimited = "rss 10\nhierarchical_memory_limit 9223372036854771712\n";
        assert_eq!(parse_v1(unlimited, None).unwrap().quota_bytes, None);
    }

    #[test]
    fn proc_cgroup_v1_memory_line() {
        let text = "\
12:pids:/user.slice/user-1000.slice
11:name=systemd:/user.slice
5:cpu,cpuacct:/user.slice
4:memory:/a/b
0::/user.slice/user-1000.slice/session-1.scope
";
        assert_eq!(
            parse_proc_cgroup(text),
            Some((CgroupVersion::V1, "/a/b".to_owned()))
        );
        assert_eq!(
            parse_proc_cgroup("5:cpu,memory:/x\n"),
            Some((CgroupVersion::V1, "/x".to_owned()))
        );
        // The v1 line wins even when the v2 line comes first (hybrid systems).
        assert_eq!(
            parse_proc_cgroup("0::/init.scope\n4:memory:/docker/abc\n"),
            Some((CgroupVersion::V1, "/docker/abc".to_owned()))
        );
    }

    #[test]
    fn proc_cgroup_v2_line() {
        assert_eq!(
            parse_proc_cgroup("0::/\n"),
            Some((CgroupVersion::V2, "/".to_owned()))
        );
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/app.service\n"),
            Some((CgroupVersion::V2, "/system.slice/app.service".to_owned()))
        );
        // v1 hierarchies without the memory controller do not count.
        assert_eq!(
            parse_proc_cgroup("3:cpu,memoryless:/y\n1:name=systemd:/z\n0::/w\n"),
            Some((CgroupVersion::V2, "/w".to_owned()))
        );
        // A ':' inside the path is kept.
        assert_eq!(
            parse_proc_cgroup("0::/odd:name\n"),
            Some((CgroupVersion::V2, "/odd:name".to_owned()))
        );
    }

    #[test]
    fn proc_cgroup_none() {
        assert_eq!(parse_proc_cgroup(""), None);
        assert_eq!(parse_proc_cgroup("garbage\n\n::\n"), None);
        assert_eq!(parse_proc_cgroup("5:cpu:/x\n1:name=systemd:/\n"), None);
        // The memory line without a path is garbled.
        assert_eq!(parse_proc_cgroup("4:memory\n4:memory:\n"), None);
    }

    #[test]
    fn v1_prefers_the_hierarchical_totals() {
        assert_eq!(
            parse_v1(V1_STAT, Some("536870912\n")),
            Some(CgroupMemory {
                rss_bytes: 8388608,
                cache_bytes: 2097152,
                swap_bytes: 4096,
                pgpgin_pages: Some(348836),
                pgpgout_pages: Some(343403),
                quota_bytes: Some(536870912),
            })
        );
    }

    #[test]
    fn v1_falls_back_to_local_counters() {
        let stat = "cache 1048576\nrss 4194304\npgpgin 1000\npgpgout 900\n";
        assert_eq!(
            parse_v1(stat, None),
            Some(CgroupMemory {
                rss_bytes: 4194304,
                cache_bytes: 1048576,
                swap_bytes: 0,
                pgpgin_pages: Some(1000),
                pgpgout_pages: Some(900),
                quota_bytes: None,
            })
        );
        // Only rss: everything else is absent.
        assert_eq!(
            parse_v1("rss 10\n", Some("garbage")),
            Some(CgroupMemory {
                rss_bytes: 10,
                cache_bytes: 0,
                swap_bytes: 0,
                pgpgin_pages: None,
                pgpgout_pages: None,
                quota_bytes: None,
            })
        );
    }

    #[test]
    fn v1_unlimited_and_odd_limits() {
        let quota = |limit: &str| parse_v1("rss 1\n", Some(limit)).and_then(|m| m.quota_bytes);
        assert_eq!(quota("9223372036854771712\n"), None); // 4 KiB pages
        assert_eq!(quota("9223372036854710272\n"), None); // 64 KiB pages
        assert_eq!(quota("4611686018427387904"), None); // exactly 2^62
        assert_eq!(quota("4611686018427387903"), Some(4611686018427387903));
        assert_eq!(quota("  268435456  \n"), Some(268435456));
        assert_eq!(quota("-1"), None);
        assert_eq!(quota(""), None);
        assert_eq!(quota("max"), None);
    }

    #[test]
    fn v1_without_rss_is_none() {
        assert_eq!(parse_v1("", Some("1024")), None);
        assert_eq!(parse_v1("cache 10\ntotal_cache 20\n", None), None);
        assert_eq!(parse_v1("rss\nrss ten\nrss 1 2\n", None), None);
        // A garbled total_rss falls back to rss.
        assert_eq!(
            parse_v1("total_rss lots\nrss 7\n", None).map(|m| m.rss_bytes),
            Some(7)
        );
    }

    #[test]
    fn v2_reads_anon_and_file() {
        assert_eq!(
            parse_v2(V2_STAT, Some("536870912\n"), Some("8192\n")),
            Some(CgroupMemory {
                rss_bytes: 21495808,
                cache_bytes: 524288,
                swap_bytes: 8192,
                pgpgin_pages: None,
                pgpgout_pages: None,
                quota_bytes: Some(536870912),
            })
        );
    }

    #[test]
    fn v2_unlimited_and_missing_files() {
        let mem = parse_v2(V2_STAT, Some("max\n"), None);
        assert_eq!(mem.map(|m| (m.quota_bytes, m.swap_bytes)), Some((None, 0)));
        let mem = parse_v2(V2_STAT, None, Some("garbage"));
        assert_eq!(mem.map(|m| (m.quota_bytes, m.swap_bytes)), Some((None, 0)));
        let mem = parse_v2("anon 5\n", Some(""), Some(""));
        assert_eq!(
            mem,
            Some(CgroupMemory {
                rss_bytes: 5,
                cache_bytes: 0,
                swap_bytes: 0,
                pgpgin_pages: None,
                pgpgout_pages: None,
                quota_bytes: None,
            })
        );
    }

    #[test]
    fn v2_without_anon_is_none() {
        assert_eq!(parse_v2("", Some("max"), Some("0")), None);
        assert_eq!(parse_v2("file 10\nanon_thp 0\n", None, None), None);
        // A v1 stat is not a v2 stat.
        assert_eq!(parse_v2(V1_STAT, None, None), None);
    }

    #[test]
    fn memory_dirs() {
        let cases: &[(CgroupVersion, &str, bool, &str)] = &[
            (
                CgroupVersion::V1,
                "/a/b",
                false,
                "/sys/fs/cgroup/memory/a/b",
            ),
            (CgroupVersion::V1, "/a/b", true, "/sys/fs/cgroup/memory/a/b"),
            (CgroupVersion::V1, "/", false, "/sys/fs/cgroup/memory"),
            (CgroupVersion::V2, "/", false, "/sys/fs/cgroup"),
            (
                CgroupVersion::V2,
                "/app.slice/x",
                false,
                "/sys/fs/cgroup/app.slice/x",
            ),
            (
                CgroupVersion::V2,
                "/app.slice/x",
                true,
                "/sys/fs/cgroup/unified/app.slice/x",
            ),
        ];
        for &(version, path, hybrid, want) in cases {
            assert_eq!(
                memory_dir_under(version, path, hybrid),
                Path::new(want),
                "{version:?} {path} hybrid={hybrid}"
            );
        }
        // The real one only changes the v2 root.
        assert_eq!(
            memory_dir(CgroupVersion::V1, "/a"),
            Path::new("/sys/fs/cgroup/memory/a")
        );
        assert!(memory_dir(CgroupVersion::V2, "/a").ends_with("a"));
    }

    #[test]
    fn procs_are_sorted_and_deduplicated() {
        assert_eq!(parse_procs("42\n7\n42\n1\n"), vec![1, 7, 42]);
        assert_eq!(parse_procs(""), Vec::<i32>::new());
        assert_eq!(parse_procs("\n 12 \nx\n0\n-3\n99999999999\n5"), vec![5, 12]);
    }

    #[test]
    fn reading_a_missing_dir_gives_none() {
        let dir = Path::new("/nonexistent/runicorn-test-cgroup");
        assert_eq!(read(CgroupVersion::V1, dir), None);
        assert_eq!(read(CgroupVersion::V2, dir), None);
        assert_eq!(read_procs(dir), None);
    }

    #[test]
    fn reading_a_fixture_dir() {
        // Files in a scratch directory, the way the kernel lays out a v2 cgroup.
        let dir = std::env::temp_dir().join(format!("runicorn-cgroup-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create scratch dir");
        let write = |name: &str, text: &str| fs::write(dir.join(name), text).expect("write");
        write("memory.stat", V2_STAT);
        write("memory.max", "max\n");
        write("cgroup.procs", "30\n10\n20\n");
        let mem = read(CgroupVersion::V2, &dir);
        let procs = read_procs(&dir);
        // v1 reads the same memory.stat and finds no rss in it.
        let v1 = read(CgroupVersion::V1, &dir);
        fs::remove_dir_all(&dir).expect("remove scratch dir");
        assert_eq!(
            mem.map(|m| (m.rss_bytes, m.quota_bytes)),
            Some((21495808, None))
        );
        assert_eq!(procs, Some(vec![10, 20, 30]));
        assert_eq!(v1, None);
    }
}
