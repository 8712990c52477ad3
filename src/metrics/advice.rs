//! The advised `WEB_CONCURRENCY`: how many workers fit a memory quota, and how many the CPUs
//! can use, from figures measured on a running server.
//!
//! One pure function, [`advise`], over plain numbers: no I/O, no clock, no globals. `tune`
//! feeds it what it measured in `/proc`, `metrics` what it read in the metric lines, and the
//! master may feed it its own samples (`--workers auto`). The method is the one
//! `docs/metrics.md` ("how many workers") and `docs/tuning.md` describe; change them together.
//!
//! Memory figures are in MB of 2^20 bytes, as in the metric lines.

use crate::config::MAX_WORKERS;

/// The share of the quota kept free by default: growth between samples, request spikes and
/// page cache. The figure `docs/metrics.md` gives ("20 % unless you know better").
pub const DEFAULT_HEADROOM: f64 = 0.20;

/// The smallest cost one more worker can have: one page (4 KiB). Keeps the division finite
/// when a worker's unique memory reads as 0.00 MB.
const MIN_WORKER_MB: f64 = 4.0 / 1024.0;

/// Below this share of its time on a CPU, a request is taken as I/O-bound: no CPU limit.
const MIN_ON_CPU: f64 = 0.01;

/// A Heroku dyno size and its memory quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynoSize {
    /// Heroku's name for it (`standard-1x`).
    pub name: &'static str,
    /// Its memory quota in MB (2^20 bytes).
    pub quota_mb: f64,
}

/// The common dyno memory sizes, smallest first (Heroku's "Dyno Types": 512 MB, 1 GB,
/// 2.5 GB, 14 GB).
pub const DYNO_SIZES: [DynoSize; 4] = [
    DynoSize {
        name: "standard-1x",
        quota_mb: 512.0,
    },
    DynoSize {
        name: "standard-2x",
        quota_mb: 1024.0,
    },
    DynoSize {
        name: "performance-m",
        quota_mb: 2560.0,
    },
    DynoSize {
        name: "performance-l",
        quota_mb: 14336.0,
    },
];

/// The dyno size named `name`: `standard-1x` (or `1x`), `standard-2x` (`2x`), `performance-m`
/// (`perf-m`), `performance-l` (`perf-l`), case-insensitive, as Heroku names
/// them; or a number of MB, which gives a size named `custom`.
pub fn dyno_size(name: &str) -> Option<DynoSize> {
    let lower = name.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "standard-1x" | "1x" => "standard-1x",
        "standard-2x" | "2x" => "standard-2x",
        "performance-m" | "perf-m" => "performance-m",
        "performance-l" | "perf-l" => "performance-l",
        other => {
            let mb: f64 = other.strip_suffix("mb").unwrap_or(other).parse().ok()?;
            return (mb.is_finite() && mb > 0.0).then_some(DynoSize {
                name: "custom",
                quota_mb: mb,
            });
        }
    };
    DYNO_SIZES.iter().copied().find(|d| d.name == canonical)
}

/// The dyno size whose quota is `quota_mb`, if it is one of [`DYNO_SIZES`] (within 1 %).
pub fn dyno_size_of(quota_mb: f64) -> Option<DynoSize> {
    DYNO_SIZES
        .iter()
        .copied()
        .find(|d| (d.quota_mb - quota_mb).abs() <= d.quota_mb * 0.01)
}

/// One process's memory, in MB.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessMemory {
    /// Proportional set size: shared pages divided among the processes that map them.
    pub pss_mb: f64,
    /// Unique set size: the pages only this process maps, what it frees on exit.
    pub uss_mb: f64,
}

/// What was measured on a running server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured<'a> {
    /// The master.
    pub master: ProcessMemory,
    /// Each worker, after it has served traffic (USS grows as copy-on-write pages are written).
    pub workers: &'a [ProcessMemory],
    /// The server's cgroup `memory_total`, when the cgroup holds only the server (it then
    /// also counts page cache and the app's child processes, which PSS does not).
    pub dyno_total_mb: Option<f64>,
}

/// How CPU-bound the requests are, and how many CPUs there are to share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    /// CPUs the server may use (a dyno's, or this machine's).
    pub cpus: f64,
    /// The share of a request's service time spent on a CPU, 0 to 1: 1 for a request that
    /// only computes, near 0 for one that waits on a database or an API.
    pub on_cpu: f64,
}

/// What bound the advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The memory quota.
    Memory,
    /// The CPUs: more workers would only queue for them.
    Cpu,
    /// The most workers one server runs ([`MAX_WORKERS`]).
    MaxWorkers,
    /// Not even one worker fits in the quota with its headroom (the advice is then 1).
    DoesNotFit,
}

impl Limit {
    /// A word for tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Cpu => "cpu",
            Limit::MaxWorkers => "max",
            Limit::DoesNotFit => "does not fit",
        }
    }
}

/// The advice and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Advice {
    /// The advised `WEB_CONCURRENCY`: at least 1, at most [`MAX_WORKERS`].
    pub workers: usize,
    /// How many workers fit in memory (may exceed [`MAX_WORKERS`]; 0 when none fits).
    pub by_memory: usize,
    /// How many workers the CPUs can keep busy, `None` for I/O-bound requests or when no CPU
    /// figures were given.
    pub by_cpu: Option<usize>,
    /// What the server costs before its workers' own memory: the master, plus the pages the
    /// workers share, once.
    pub base_mb: f64,
    /// What one more worker costs: the largest worker USS.
    pub per_worker_mb: f64,
    /// The quota less the headroom.
    pub budget_mb: f64,
    /// What bound `workers`.
    pub limit: Limit,
}

/// Advises `WEB_CONCURRENCY` for a memory quota of `quota_mb`, keeping `headroom` (a share,
/// e.g. [`DEFAULT_HEADROOM`]; clamped to 0..=0.9) free.
///
/// Memory (docs/metrics.md):
/// ```text
/// base        = master PSS + sum over workers of (PSS - USS)      (shared pages, once)
///               or, if larger, dyno_total - sum of workers' USS   (page cache, children)
/// per_worker  = the largest worker USS                            (what one more costs)
/// by_memory   = floor((quota × (1 - headroom) - base) / per_worker)
/// ```
/// CPU: a worker that spends a share `on_cpu` of its busy time on a CPU keeps `on_cpu` of a
/// CPU busy, so `round(cpus / on_cpu)` workers keep every CPU busy; more only queue for
/// them. Requests below 1 % on CPU give no CPU limit.
///
/// The advice is the least of the two and [`MAX_WORKERS`], and never below 1.
pub fn advise(quota_mb: f64, headroom: f64, m: &Measured<'_>, cpu: Option<Cpu>) -> Advice {
    let headroom = if headroom.is_finite() {
        headroom.clamp(0.0, 0.9)
    } else {
        DEFAULT_HEADROOM
    };
    let shared: f64 = m
        .workers
        .iter()
        .map(|w| (w.pss_mb - w.uss_mb).max(0.0))
        .sum();
    let sum_uss: f64 = m.workers.iter().map(|w| w.uss_mb.max(0.0)).sum();
    let by_pss = m.master.pss_mb.max(0.0) + shared;
    let base_mb = match m.dyno_total_mb {
        Some(total) if total - sum_uss > by_pss => total - sum_uss,
        _ => by_pss,
    };
    let per_worker_mb = m
        .workers
        .iter()
        .map(|w| w.uss_mb)
        .fold(MIN_WORKER_MB, f64::max);
    let budget_mb = quota_mb.max(0.0) * (1.0 - headroom);
    // A little slack so that an exact fit (12.0) is not floored to 11 by rounding.
    let fit = (budget_mb - base_mb) / per_worker_mb + 1e-9;
    let by_memory = if fit.is_finite() && fit >= 1.0 {
        // Saturating: `as` clamps a float above usize::MAX.
        fit.floor() as usize
    } else {
        0
    };
    let by_cpu = cpu
        .filter(|c| c.on_cpu.is_finite() && c.cpus.is_finite() && c.cpus > 0.0)
        .filter(|c| c.on_cpu >= MIN_ON_CPU)
        .map(|c| ((c.cpus / c.on_cpu.min(1.0)).round() as usize).max(1));

    let (workers, limit) = if by_memory == 0 {
        (1, Limit::DoesNotFit)
    } else {
        let mut best = (by_memory, Limit::Memory);
        if let Some(n) = by_cpu.filter(|&n| n < best.0) {
            best = (n, Limit::Cpu);
        }
        if MAX_WORKERS < best.0 {
            best = (MAX_WORKERS, Limit::MaxWorkers);
        }
        best
    };
    Advice {
        workers,
        by_memory,
        by_cpu,
        base_mb,
        per_worker_mb,
        budget_mb,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(pss_mb: f64, uss_mb: f64) -> ProcessMemory {
        ProcessMemory { pss_mb, uss_mb }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// The worked example of docs/metrics.md, before `/alloc?mb=32`.
    #[test]
    fn docs_example_before_alloc() {
        let workers = [pm(0.29, 0.11), pm(0.29, 0.11)];
        let m = Measured {
            master: pm(0.41, 0.09),
            workers: &workers,
            dyno_total_mb: Some(0.46),
        };
        let a = advise(512.0, 0.2, &m, None);
        assert!(close(a.base_mb, 0.77), "{a:?}");
        assert!(close(a.per_worker_mb, 0.11));
        assert!(close(a.budget_mb, 409.6));
        assert_eq!(a.by_memory, 3716);
        assert_eq!((a.workers, a.limit), (MAX_WORKERS, Limit::MaxWorkers));
        assert_eq!(a.by_cpu, None);
    }

    /// ... and after it: 12, 25 and 63 workers on 512 MB, 1 GB and 2.5 GB.
    #[test]
    fn docs_example_after_alloc() {
        let workers = [pm(0.29, 0.11), pm(32.29, 32.11)];
        let m = Measured {
            master: pm(0.44, 0.11),
            workers: &workers,
            dyno_total_mb: Some(32.47),
        };
        let got: Vec<usize> = DYNO_SIZES
            .iter()
            .map(|d| advise(d.quota_mb, 0.2, &m, None).workers)
            .collect();
        assert_eq!(got, vec![12, 25, 63, 357]);
        let a = advise(512.0, 0.2, &m, None);
        assert!(close(a.base_mb, 0.80), "{a:?}");
        assert_eq!(a.limit, Limit::Memory);
    }

    #[test]
    fn cgroup_total_raises_the_base_when_larger() {
        // 100 MB of page cache or children in the cgroup that PSS does not see.
        let workers = [pm(10.0, 8.0), pm(10.0, 8.0)];
        let m = Measured {
            master: pm(5.0, 1.0),
            workers: &workers,
            dyno_total_mb: Some(136.0),
        };
        let a = advise(512.0, 0.2, &m, None);
        assert!(close(a.base_mb, 120.0), "{a:?}");
        assert_eq!(a.by_memory, 36); // (409.6 - 120) / 8 = 36.2
        // Without the cgroup figure: 5 + 2 + 2 = 9 MB.
        let a = advise(
            512.0,
            0.2,
            &Measured {
                dyno_total_mb: None,
                ..m
            },
            None,
        );
        assert!(close(a.base_mb, 9.0));
        assert_eq!(a.by_memory, 50); // (409.6 - 9) / 8 = 50.07
    }

    #[test]
    fn exact_fits_are_not_lost_to_rounding() {
        // (100 × 0.9 - 18) / 6 = 12 exactly; 0.9 and 0.1 are not exact in binary.
        let workers = [pm(6.0, 6.0)];
        let m = Measured {
            master: pm(18.0, 18.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        assert_eq!(advise(100.0, 0.1, &m, None).by_memory, 12);
    }

    #[test]
    fn cpu_bound_requests_are_limited_by_cpus() {
        let workers = [pm(1.0, 0.5)];
        let m = Measured {
            master: pm(1.0, 1.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let cpu = |cpus: f64, on_cpu: f64| Some(Cpu { cpus, on_cpu });
        let a = advise(512.0, 0.2, &m, cpu(2.0, 1.0));
        assert_eq!((a.workers, a.by_cpu, a.limit), (2, Some(2), Limit::Cpu));
        // Measured a little under 1: still about one per CPU.
        assert_eq!(advise(512.0, 0.2, &m, cpu(2.0, 0.93)).workers, 2);
        // Half the time waiting: twice as many.
        assert_eq!(advise(512.0, 0.2, &m, cpu(2.0, 0.5)).workers, 4);
        assert_eq!(advise(512.0, 0.2, &m, cpu(8.0, 0.1)).workers, 80);
        // I/O-bound: memory decides.
        let a = advise(512.0, 0.2, &m, cpu(2.0, 0.001));
        assert_eq!((a.by_cpu, a.limit), (None, Limit::Memory));
        assert_eq!(a.workers, 816); // base 1 + 0.5 shared: (409.6 - 1.5) / 0.5 = 816.2
        // Above 1 is read as 1; nonsense CPU figures are ignored.
        assert_eq!(advise(512.0, 0.2, &m, cpu(4.0, 3.0)).workers, 4);
        assert_eq!(advise(512.0, 0.2, &m, cpu(0.0, 1.0)).by_cpu, None);
        assert_eq!(advise(512.0, 0.2, &m, cpu(f64::NAN, 1.0)).by_cpu, None);
        assert_eq!(advise(512.0, 0.2, &m, cpu(2.0, f64::NAN)).by_cpu, None);
    }

    #[test]
    fn memory_below_cpu_wins() {
        let workers = [pm(200.0, 190.0)];
        let m = Measured {
            master: pm(20.0, 5.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise(
            512.0,
            0.2,
            &m,
            Some(Cpu {
                cpus: 8.0,
                on_cpu: 0.2,
            }),
        );
        // (409.6 - 30) / 190 = 1.99: one worker; the CPUs could use 40.
        assert_eq!((a.workers, a.by_memory, a.by_cpu), (1, 1, Some(40)));
        assert_eq!(a.limit, Limit::Memory);
    }

    #[test]
    fn nothing_fits() {
        let workers = [pm(600.0, 600.0)];
        let m = Measured {
            master: pm(10.0, 10.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise(512.0, 0.2, &m, None);
        assert_eq!((a.workers, a.by_memory, a.limit), (1, 0, Limit::DoesNotFit));
        // A master alone larger than the budget.
        let m = Measured {
            master: pm(500.0, 500.0),
            workers: &[],
            dyno_total_mb: None,
        };
        assert_eq!(advise(512.0, 0.2, &m, None).limit, Limit::DoesNotFit);
        assert_eq!(advise(0.0, 0.2, &m, None).limit, Limit::DoesNotFit);
        assert_eq!(advise(-5.0, 0.2, &m, None).limit, Limit::DoesNotFit);
    }

    #[test]
    fn tiny_or_missing_workers_cost_a_page() {
        let m = Measured {
            master: pm(1.0, 1.0),
            workers: &[],
            dyno_total_mb: None,
        };
        let a = advise(512.0, 0.2, &m, None);
        assert!(close(a.per_worker_mb, MIN_WORKER_MB));
        assert_eq!((a.workers, a.limit), (MAX_WORKERS, Limit::MaxWorkers));
        let zero = [pm(0.0, 0.0)];
        let m = Measured {
            workers: &zero,
            ..m
        };
        assert!(close(
            advise(512.0, 0.2, &m, None).per_worker_mb,
            MIN_WORKER_MB
        ));
    }

    #[test]
    fn headroom_is_clamped() {
        let workers = [pm(10.0, 10.0)];
        let m = Measured {
            master: pm(0.0, 0.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        assert_eq!(advise(100.0, 0.0, &m, None).by_memory, 10);
        assert_eq!(advise(100.0, -1.0, &m, None).by_memory, 10);
        assert_eq!(advise(100.0, 0.5, &m, None).by_memory, 5);
        assert_eq!(advise(100.0, 5.0, &m, None).by_memory, 1); // 0.9 at most
        assert_eq!(advise(100.0, f64::NAN, &m, None).by_memory, 8); // the default
    }

    #[test]
    fn dyno_sizes_by_name_and_quota() {
        let q = |n: &str| dyno_size(n).map(|d| (d.name, d.quota_mb));
        assert_eq!(q("standard-1x"), Some(("standard-1x", 512.0)));
        assert_eq!(q("1X"), Some(("standard-1x", 512.0)));
        assert_eq!(q("standard-2x"), Some(("standard-2x", 1024.0)));
        assert_eq!(q("perf-m"), Some(("performance-m", 2560.0)));
        assert_eq!(q("Performance-L"), Some(("performance-l", 14336.0)));
        assert_eq!(q("300"), Some(("custom", 300.0)));
        assert_eq!(q("300MB"), Some(("custom", 300.0)));
        assert_eq!(q("0"), None);
        assert_eq!(q("-3"), None);
        assert_eq!(q("inf"), None);
        assert_eq!(q("standard-3x"), None);
        assert_eq!(q(""), None);
        assert_eq!(dyno_size_of(512.0).map(|d| d.name), Some("standard-1x"));
        assert_eq!(dyno_size_of(511.63).map(|d| d.name), Some("standard-1x"));
        assert_eq!(dyno_size_of(2560.0).map(|d| d.name), Some("performance-m"));
        assert_eq!(dyno_size_of(700.0), None);
    }
}
