//! Readers of `/proc` (proc(5)): one process's memory (RSS, PSS, USS and swap, in KiB), state,
//! CPU time and schedstat, its children, and the TCP connections it holds. The master's
//! metric lines, `--workers auto`, `runicorn tune` and the chaos harness all read /proc
//! through this module.
//!
//! Memory figures come from `/proc/<pid>/smaps_rollup` (Linux 4.14+), else from the full
//! `/proc/<pid>/smaps`, else, as a rough last resort, from `/proc/<pid>/status` (proc(5)).
//! The parsers take the file's text and return plain data, so they are tested on fixtures;
//! the `read_*` functions and the few named after what they read ([`children`], [`workers`],
//! [`established`]) are thin readers over them, and they only read. Nothing here logs or
//! decides what to do with a figure: that is the caller's job.

use std::collections::HashSet;
use std::fs;

/// Where the figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemSource {
    /// `/proc/<pid>/smaps_rollup`: the kernel's own sum over all mappings (Linux 4.14+).
    SmapsRollup,
    /// `/proc/<pid>/smaps`: one block per mapping, summed here.
    Smaps,
    /// `/proc/<pid>/status`: no PSS, and USS only approximated (see [`parse_status`]).
    Status,
}

/// One process's memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcMemory {
    /// Resident set size: every page mapped and resident, shared ones counted in full.
    pub rss_kib: u64,
    /// Proportional set size: each shared page divided by the number of processes mapping it,
    /// so summing PSS over the server counts copy-on-write pages once.
    pub pss_kib: u64,
    /// Unique set size: the pages only this process maps, what it would free on exit.
    pub uss_kib: u64,
    /// Swapped-out pages, shared ones counted in full.
    pub swap_kib: u64,
    /// Swapped-out pages, shared ones divided as for PSS (`SwapPss`, Linux 4.3+).
    pub swap_pss_kib: u64,
    /// Which file the figures were read from.
    pub source: MemSource,
}

/// Splits a `Key:   1234 kB` line into its key and its value in KiB.
///
/// Lines of another shape give `None`: the mapping headers of smaps
/// (`7f12a0000000-7f12a0021000 rw-p 00000000 00:00 0  [heap]`, whose first ':' is inside the
/// device number, so the "key" has spaces in it), `VmFlags: rd wr mr`, `THPeligible: 0`,
/// status lines without a unit (`Threads: 1`), and garbled ones.
fn kib_field(line: &str) -> Option<(&str, u64)> {
    let (key, rest) = line.split_once(':')?;
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let value = words.next()?.parse::<u64>().ok()?;
    // proc(5) documents every size in these files as "kB", meaning KiB.
    match (words.next(), words.next()) {
        (Some("kB"), None) => Some((key, value)),
        _ => None,
    }
}

/// Sums the `Key: N kB` lines of `/proc/<pid>/smaps_rollup` or of `/proc/<pid>/smaps`.
///
/// The same parser serves both files: smaps_rollup holds one set of lines, already summed
/// by the kernel, and smaps one set per mapping, each after a header line, which is skipped
/// (proc(5), "/proc/pid/smaps"). USS is `Private_Clean + Private_Dirty + Private_Hugetlb`:
/// the pages that only this process maps. Keys not used here (`Pss_Anon`, `Referenced`, ...)
/// are ignored; an unparsable line is skipped rather than failing the whole file.
///
/// Returns `None` when no `Rss:` line was seen (empty or unrelated text).
pub fn parse_smaps(text: &str, source: MemSource) -> Option<ProcMemory> {
    let mut seen_rss = false;
    let mut mem = ProcMemory {
        rss_kib: 0,
        pss_kib: 0,
        uss_kib: 0,
        swap_kib: 0,
        swap_pss_kib: 0,
        source,
    };
    for (key, kib) in text.lines().filter_map(kib_field) {
        let total = match key {
            "Rss" => {
                seen_rss = true;
                &mut mem.rss_kib
            }
            "Pss" => &mut mem.pss_kib,
            "Private_Clean" | "Private_Dirty" | "Private_Hugetlb" => &mut mem.uss_kib,
            "Swap" => &mut mem.swap_kib,
            "SwapPss" => &mut mem.swap_pss_kib,
            _ => continue,
        };
        // Saturating: a garbled file must not panic the master in a debug build.
        *total = total.saturating_add(kib);
    }
    seen_rss.then_some(mem)
}

/// Reads the memory of a process from `/proc/<pid>/status`, the last fallback when neither
/// smaps file can be read (kernels built without `CONFIG_PROC_PAGE_MONITOR`, or hardened
/// `/proc` mounts).
///
/// The figures are coarser than those of [`parse_smaps`] (proc(5), "/proc/pid/status"):
/// - `rss_kib` is `VmRSS`.
/// - `pss_kib` is `VmRSS` too: status has no PSS, so shared pages are counted in full.
/// - `uss_kib` is `RssAnon` (Linux 4.5+), an approximation of the unique memory: private
///   file-backed pages (written `MAP_PRIVATE` file mappings are anonymous, but clean
///   private file pages are not) are not counted, and anonymous pages still shared with the
///   master after fork(2) are. Without `RssAnon` (older kernels) it is `VmRSS`, the only
///   upper bound at hand.
/// - `swap_kib` and `swap_pss_kib` are both `VmSwap` (0 if absent, as before Linux 2.6.34).
///
/// Returns `None` without `VmRSS`, which is how status reads for a kernel thread or a zombie.
pub fn parse_status(text: &str) -> Option<ProcMemory> {
    let (mut rss_kib, mut rss_anon_kib, mut swap_kib) = (None, None, None);
    for (key, kib) in text.lines().filter_map(kib_field) {
        match key {
            "VmRSS" => rss_kib = Some(kib),
            "RssAnon" => rss_anon_kib = Some(kib),
            "VmSwap" => swap_kib = Some(kib),
            _ => {}
        }
    }
    let rss_kib = rss_kib?;
    let swap_kib = swap_kib.unwrap_or(0);
    Some(ProcMemory {
        rss_kib,
        pss_kib: rss_kib,
        uss_kib: rss_anon_kib.unwrap_or(rss_kib),
        swap_kib,
        swap_pss_kib: swap_kib,
        source: MemSource::Status,
    })
}

/// What a process costs beyond its own pages, and how many tasks it is, from
/// `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcTasks {
    /// `VmPTE`: its page tables, kernel memory that no smaps figure (RSS, PSS, USS) shows.
    /// Every process has its own, shared pages or not.
    pub page_tables_kib: Option<u64>,
    /// `Threads`: the process's threads (1 for a single-threaded one). A platform's
    /// process limit counts threads.
    pub threads: Option<u64>,
}

/// Reads `VmPTE` and `Threads` from the text of `/proc/<pid>/status`; either is `None` when
/// its line is missing or garbled (`VmPTE` exists since Linux 2.6.10, `Threads` since 2.6.0).
pub fn parse_status_tasks(text: &str) -> ProcTasks {
    let mut tasks = ProcTasks::default();
    for line in text.lines() {
        if let Some(("VmPTE", kib)) = kib_field(line) {
            tasks.page_tables_kib = Some(kib);
        } else if let Some(("Threads", n)) = line.split_once(':') {
            tasks.threads = n.trim().parse().ok();
        }
    }
    tasks
}

/// The page tables and threads of process `pid`; `None` once it is gone.
pub fn read_tasks(pid: i32) -> Option<ProcTasks> {
    let tasks = parse_status_tasks(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?);
    (tasks != ProcTasks::default()).then_some(tasks)
}

/// The state letter (`R`, `S`, `D`, `Z`, `T`, `I`, ...) of a process, from `/proc/<pid>/stat`.
///
/// The second field is the command name in parentheses, and it may itself contain spaces
/// and ')' (a process can name itself `a) R (b` with prctl(2) `PR_SET_NAME`), so the line is
/// split at the last ')' (proc(5), "/proc/pid/stat", field (3)). Returns `None` when there
/// is no ')' or no letter after it.
pub fn parse_stat_state(text: &str) -> Option<char> {
    let (_, after_comm) = text.rsplit_once(')')?;
    after_comm
        .split_whitespace()
        .next()
        .and_then(|field| field.chars().next())
        .filter(char::is_ascii_alphabetic)
}

/// The CPU time a process has used, user plus system, in clock ticks (proc(5),
/// "/proc/pid/stat", fields (14) utime and (15) stime; `sysconf(_SC_CLK_TCK)` ticks a second).
/// Split at the last ')' as [`parse_stat_state`] is; `None` when the fields are missing.
pub fn parse_stat_cpu_ticks(text: &str) -> Option<u64> {
    let (_, after_comm) = text.rsplit_once(')')?;
    // After the command name: (3) state is the first field, so utime (14) is the 12th.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The time a process has run on a CPU and waited on a run queue for one, in nanoseconds:
/// the first two fields of /proc/pid/schedstat (sched-stats.rst, `/proc/<pid>/schedstat`).
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let run = fields.next()?.parse().ok()?;
    let wait = fields.next()?.parse().ok()?;
    Some((run, wait))
}

/// How much CPU a process used and wanted, in nanoseconds: `(ran, ran + waited for a CPU)`.
/// From /proc/pid/schedstat when the kernel keeps it (CONFIG_SCHED_INFO; all zeros without
/// schedstats on some kernels), else from the CPU time in /proc/pid/stat (clock ticks),
/// without the waiting, which is then unknown.
pub fn read_cpu_demand_ns(pid: i32, ticks_per_sec: u64) -> Option<(u64, u64)> {
    let sched = fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|t| parse_schedstat(&t))
        .filter(|&(run, _)| run > 0);
    if let Some((run, wait)) = sched {
        return Some((run, run + wait));
    }
    let ticks = parse_stat_cpu_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let ns = ticks.saturating_mul(1_000_000_000) / ticks_per_sec.max(1);
    Some((ns, ns))
}

/// The machine's memory in KiB, from a /proc/meminfo text (`MemTotal:`).
pub fn parse_mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The machine's memory in KiB (/proc/meminfo).
pub fn read_mem_total_kib() -> Option<u64> {
    parse_mem_total_kib(&fs::read_to_string("/proc/meminfo").ok()?)
}

/// Reads the memory of process `pid`: smaps_rollup, else smaps, else status.
///
/// Thin I/O over the parsers. Any failure (the file is missing on this kernel, access is
/// denied, the process is gone, or the text does not parse) moves on to the next file;
/// `None` when none gives figures, e.g. for a process that has exited.
pub fn read_memory(pid: i32) -> Option<ProcMemory> {
    let read = |name: &str| fs::read_to_string(format!("/proc/{pid}/{name}")).ok();
    read("smaps_rollup")
        .and_then(|text| parse_smaps(&text, MemSource::SmapsRollup))
        .or_else(|| read("smaps").and_then(|text| parse_smaps(&text, MemSource::Smaps)))
        .or_else(|| read("status").and_then(|text| parse_status(&text)))
}

/// The state letter of process `pid` (`R`, `S`, `D`, `T`, `Z`, ...); `None` once it is gone.
pub fn read_state(pid: i32) -> Option<char> {
    parse_stat_state(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    read_state(pid).is_some_and(|s| s != 'Z')
}

/// The CPU time process `pid` has used, user plus system, in seconds (clock-tick resolution,
/// 10 ms on Linux).
pub fn read_cpu_seconds(pid: i32) -> Option<f64> {
    let ticks = parse_stat_cpu_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    Some(ticks as f64 / crate::sys::clock_ticks_per_sec() as f64)
}

/// The pids in a `/proc/<pid>/task/<tid>/children` file.
pub fn parse_children(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p > 0)
        .collect()
}

/// The live children of `pid`, from every thread's `children` file (Linux 3.5+, with
/// CONFIG_PROC_CHILDREN); sorted, no duplicates.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = tasks
        .filter_map(Result::ok)
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| parse_children(&text))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
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
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("worker[") {
            out.push(pid);
        }
        todo.extend(children(pid));
    }
    out.sort_unstable();
    out
}

/// The inode of a `/proc/<pid>/fd` link that is a socket (`socket:[12345]`).
pub fn parse_socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inodes of the ESTABLISHED (state `01`) sockets in a `/proc/net/tcp` or `tcp6` table.
pub fn parse_established_inodes(table: &str) -> HashSet<u64> {
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

/// How many ESTABLISHED TCP connections process `pid` holds open.
pub fn established(pid: i32) -> usize {
    let mut inodes = HashSet::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            inodes.extend(parse_established_inodes(&text));
        }
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|link| parse_socket_inode(&link.to_string_lossy()))
        .filter(|inode| inodes.contains(inode))
        .count()
}

/// A process's memory as smaps_rollup would give it, without swap: fixed figures for the
/// renderers' tests.
#[cfg(test)]
pub(crate) fn test_memory(rss_kib: u64, pss_kib: u64, uss_kib: u64) -> ProcMemory {
    ProcMemory {
        rss_kib,
        pss_kib,
        uss_kib,
        swap_kib: 0,
        swap_pss_kib: 0,
        source: MemSource::SmapsRollup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From a 6.x kernel, including the newer `Pss_*` breakdown lines that must be ignored.
    const SMAPS_ROLLUP: &str = "\
55d4c3a00000-7ffd5a3f1000 ---p 00000000 00:00 0                          [rollup]
Rss:                5120 kB
Pss:                1234 kB
Pss_Dirty:           800 kB
Pss_Anon:            700 kB
Pss_File:            500 kB
Pss_Shmem:            34 kB
Shared_Clean:       3000 kB
Shared_Dirty:        200 kB
Private_Clean:       100 kB
Private_Dirty:       820 kB
Referenced:         5000 kB
Anonymous:           900 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       4 kB
Swap:                 64 kB
SwapPss:              16 kB
Locked:                0 kB
";

    /// Two mappings, one with a file name containing ':' and "kB", one anonymous.
    const SMAPS: &str = "\
55d4c3a00000-55d4c3a21000 r-xp 00000000 08:01 1234                       /srv/app: 5 kB
Size:                132 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                 100 kB
Pss:                  50 kB
Shared_Clean:        100 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:          100 kB
Anonymous:             0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:    0
ProtectionKey:         0
VmFlags: rd ex mr mw me dw sd
7f12a0000000-7f12a0021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                  40 kB
Pss:                  30 kB
Shared_Clean:          0 kB
Shared_Dirty:         20 kB
Private_Clean:         4 kB
Private_Dirty:        16 kB
Private_Hugetlb:       0 kB
Swap:                  8 kB
SwapPss:               2 kB
THPeligible:    1
VmFlags: rd wr mr mw me ac sd
";

    const STATUS: &str = "\
Name:\tworker[3]
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
VmPeak:\t  123456 kB
VmSize:\t  120000 kB
VmHWM:\t    6000 kB
VmRSS:\t    5224 kB
RssAnon:\t    1024 kB
RssFile:\t    4200 kB
RssShmem:\t       0 kB
VmPTE:\t      92 kB
VmSwap:\t      12 kB
Threads:\t1
voluntary_ctxt_switches:\t150
";

    #[test]
    fn smaps_rollup_sums_the_named_keys() {
        let mem = parse_smaps(SMAPS_ROLLUP, MemSource::SmapsRollup);
        assert_eq!(
            mem,
            Some(ProcMemory {
                rss_kib: 5120,
                pss_kib: 1234,
                uss_kib: 100 + 820 + 4,
                swap_kib: 64,
                swap_pss_kib: 16,
                source: MemSource::SmapsRollup,
            })
        );
    }

    #[test]
    fn smaps_sums_every_mapping_and_skips_headers() {
        let mem = parse_smaps(SMAPS, MemSource::Smaps);
        assert_eq!(
            mem,
            Some(ProcMemory {
                rss_kib: 140,
                pss_kib: 80,
                uss_kib: 20,
                swap_kib: 8,
                swap_pss_kib: 2,
                source: MemSource::Smaps,
            })
        );
    }

    #[test]
    fn smaps_without_rss_is_none() {
        assert_eq!(parse_smaps("", MemSource::Smaps), None);
        assert_eq!(parse_smaps("\n\n", MemSource::SmapsRollup), None);
        assert_eq!(
            parse_smaps("Pss: 10 kB\nSwap: 3 kB\n", MemSource::Smaps),
            None
        );
        // status text is not smaps: its `VmRSS` is not `Rss`.
        assert_eq!(parse_smaps(STATUS, MemSource::Smaps), None);
    }

    #[test]
    fn smaps_with_missing_fields_counts_them_as_zero() {
        // Before Linux 4.3 there is no SwapPss; Private_Hugetlb arrived in 4.4.
        let text = "Rss: 10 kB\nPss: 7 kB\nPrivate_Dirty: 3 kB\n";
        assert_eq!(
            parse_smaps(text, MemSource::Smaps),
            Some(ProcMemory {
                rss_kib: 10,
                pss_kib: 7,
                uss_kib: 3,
                swap_kib: 0,
                swap_pss_kib: 0,
                source: MemSource::Smaps,
            })
        );
    }

    #[test]
    fn smaps_skips_garbled_lines() {
        let text = "\
Rss: 10 kB
Rss: ten kB
Rss: 5 MB
Rss: 5
Rss:
Pss 4 kB
 Pss: 4 kB
Pss: -4 kB
Pss: 4 kB extra
Pss: 6 kB
Swap: 99999999999999999999999 kB
\u{fffd}\u{0}: 1 kB
";
        let mem = parse_smaps(text, MemSource::Smaps);
        assert_eq!(
            mem.map(|m| (m.rss_kib, m.pss_kib, m.swap_kib)),
            Some((10, 6, 0))
        );
    }

    #[test]
    fn smaps_saturates_instead_of_overflowing() {
        let text = format!("Rss: {} kB\nRss: {} kB\n", u64::MAX, 1);
        assert_eq!(
            parse_smaps(&text, MemSource::Smaps).map(|m| m.rss_kib),
            Some(u64::MAX)
        );
    }

    #[test]
    fn status_gives_rough_figures() {
        assert_eq!(
            parse_status(STATUS),
            Some(ProcMemory {
                rss_kib: 5224,
                pss_kib: 5224,
                uss_kib: 1024,
                swap_kib: 12,
                swap_pss_kib: 12,
                source: MemSource::Status,
            })
        );
    }

    #[test]
    fn status_gives_page_tables_and_threads() {
        assert_eq!(
            parse_status_tasks(STATUS),
            ProcTasks {
                page_tables_kib: Some(92),
                threads: Some(1),
            }
        );
        let t = parse_status_tasks("Name:\tapp\nThreads:\t 17\nVmPTE:\tlots\n");
        assert_eq!((t.page_tables_kib, t.threads), (None, Some(17)));
        assert_eq!(parse_status_tasks(""), ProcTasks::default());
        // This process: single-threaded or not, it has page tables.
        let me = read_tasks(std::process::id() as i32).unwrap();
        assert!(me.page_tables_kib.is_some_and(|k| k > 0), "{me:?}");
        assert!(me.threads.is_some_and(|n| n >= 1), "{me:?}");
    }

    #[test]
    fn status_of_an_old_kernel_falls_back() {
        // No RssAnon (before 4.5) and no VmSwap (before 2.6.34).
        let mem = parse_status("Name:\tapp\nVmRSS:\t  300 kB\nThreads:\t1\n");
        assert_eq!(
            mem.map(|m| (m.rss_kib, m.pss_kib, m.uss_kib, m.swap_kib, m.swap_pss_kib)),
            Some((300, 300, 300, 0, 0))
        );
    }

    #[test]
    fn status_without_vmrss_is_none() {
        // A kernel thread: no Vm* lines at all.
        let kthread = "Name:\tkworker/0:1\nState:\tI (idle)\nThreads:\t1\n";
        assert_eq!(parse_status(kthread), None);
        // A zombie has released its mm.
        assert_eq!(parse_status("Name:\tapp\nState:\tZ (zombie)\n"), None);
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn schedstat_gives_run_and_wait() {
        assert_eq!(
            parse_schedstat("109672 1049264 2\n"),
            Some((109_672, 1_049_264))
        );
        assert_eq!(parse_schedstat("0 0 0"), Some((0, 0)));
        assert_eq!(parse_schedstat("12"), None);
    }

    #[test]
    fn mem_total_from_meminfo() {
        let text = "MemTotal:       24589604 kB\nMemFree:        1234 kB\n";
        assert_eq!(parse_mem_total_kib(text), Some(24_589_604));
        assert_eq!(parse_mem_total_kib("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn stat_cpu_ticks_add_user_and_system_time() {
        // A real line (Linux 6.1): utime 1234, stime 56.
        let line = "4242 (worker[0]) S 4241 4241 4241 0 -1 4194624 300 0 0 0 1234 56 0 0 20 0 1 0 \
                    91234 2039808 356 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(line), Some(1290));
        assert_eq!(
            parse_stat_cpu_ticks("5 (a) b) S 1 5 5 0 -1 0 0 0 0 0 7 8 0"),
            Some(15)
        );
        assert_eq!(parse_stat_cpu_ticks("5 (a) S 1 5"), None);
        assert_eq!(parse_stat_cpu_ticks("no parens"), None);
    }

    #[test]
    fn stat_state_letter() {
        let cases: &[(&str, Option<char>)] = &[
            ("4242 (runicorn) S 1 4242 4242 0 -1 4194560 1234", Some('S')),
            ("1 (systemd) R 0 1 1 0 -1", Some('R')),
            ("77 (worker[3]) D 1 77", Some('D')),
            ("99 (app) Z 1 99", Some('Z')),
            ("12 (kworker/0:1) I 2 0", Some('I')),
            // The name may hold spaces and ')': split at the last one.
            ("5 (a) R (b) T 1 5", Some('T')),
            ("6 (x y  z) S 1", Some('S')),
            ("7 ()) R 1", Some('R')),
            // Garbled or empty.
            ("", None),
            ("8 (app", None),
            ("9 (app)", None),
            ("9 (app)   ", None),
            ("10 (app) 1 2 3", None),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_stat_state(text), want, "{text:?}");
        }
    }

    #[test]
    fn reads_this_process() {
        // Runs against the real /proc: the test process has some resident memory.
        let mem = read_memory(i32::try_from(std::process::id()).expect("pid fits i32"));
        let mem = mem.expect("the test process has a /proc entry");
        assert!(mem.rss_kib > 0);
        assert!(mem.pss_kib <= mem.rss_kib);
        assert!(mem.uss_kib <= mem.rss_kib);
    }

    #[test]
    fn reads_nothing_for_a_missing_process() {
        // pid_max is at most 2^22 (proc(5), /proc/sys/kernel/pid_max).
        assert_eq!(read_memory(i32::MAX), None);
        assert_eq!(read_memory(-1), None);
    }

    #[test]
    fn children_and_cpu_ticks() {
        assert_eq!(parse_children("4242 4243 \n"), vec![4242, 4243]);
        assert_eq!(parse_children(""), Vec::<i32>::new());
        assert_eq!(parse_children("x 0 -1 7"), vec![7]);
        let stat = "4242 (worker[0]) S 4241 4241 4241 0 -1 4194560 120 0 0 0 250 37 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(287));
        assert_eq!(
            parse_stat_cpu_ticks("5 (a) b) R 1 2 3 4 5 6 7 8 9 10 11 12 13"),
            Some(23)
        );
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_is_alive_with_cpu_time_and_not_its_own_child() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(alive(me));
        assert!(read_cpu_seconds(me).is_some_and(|s| s >= 0.0));
        assert!(!children(me).contains(&me));
        assert!(workers(me).is_empty());
    }

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
        let got = parse_established_inodes(table);
        assert_eq!(got, HashSet::from([812399, 812398]));
        assert!(parse_established_inodes("").is_empty());
        assert!(parse_established_inodes("header\n   garbage line\n").is_empty());
        assert_eq!(parse_socket_inode("socket:[812399]"), Some(812399));
        assert_eq!(parse_socket_inode("pipe:[812399]"), None);
        assert_eq!(parse_socket_inode("/dev/null"), None);
        assert_eq!(parse_socket_inode("socket:[x]"), None);
    }
}
