//! The advised `WEB_CONCURRENCY`: how many workers a dyno holds and its traffic needs, from
//! figures measured on a running server.
//!
//! One pure function, [`advise`], over plain numbers: no I/O, no clock, no globals. `tune`
//! feeds it what it measured in `/proc`, `metrics` what it read in the metric lines, and the
//! master feeds it its own samples (`--workers auto`). The method is the one
//! `docs/metrics.md` ("how many workers") and `docs/tuning.md` describe; change them together.
//!
//! Four kinds of bound meet here: the memory quota (every process costs its own pages and
//! what the kernel keeps for it), the CPUs, the platform's process limit, and the traffic
//! seen. The first three give an upper bound; the traffic, when it never needed the workers
//! it had, gives only a lower one, and the advice then says so ([`Advice::range`]) instead
//! of inventing a number.
//!
//! Memory figures are in MB of 2^20 bytes, as in the metric lines.

use crate::config::MAX_WORKERS;

/// The share of the quota kept free by default: growth between samples, request spikes and
/// page cache. The figure `docs/metrics.md` gives ("20 % unless you know better").
pub const DEFAULT_HEADROOM: f64 = 0.20;

/// The smallest cost one more worker's pages can have: one page (4 KiB). Keeps the
/// division finite when a worker's unique memory reads as 0.00 MB.
const MIN_WORKER_MB: f64 = 4.0 / 1024.0;

/// Below this share of its time on a CPU, a request is taken as I/O-bound: no CPU limit.
pub const MIN_ON_CPU: f64 = 0.01;

/// A process's page tables when no figure was measured (`sample#memory_pte`, `VmPTE`): 92 KiB,
/// a demo worker's, measured on 2026-12-04 (Linux 6.18, x86_64) with a 20 MiB table shared
/// from the master. Page tables grow with what a process maps (8 bytes a 4 KiB page), so a
/// larger app has larger ones: the measured figure replaces this one whenever the lines
/// carry it.
pub const PAGE_TABLES_ESTIMATE_MB: f64 = 92.0 / 1024.0;

/// The kernel memory of one process besides its page tables, which no smaps figure shows:
/// its kernel stack (16 KiB on x86_64), `task_struct`, memory map and VMAs, file table,
/// signal handlers, and the socket of the connection it serves. 64 KiB: the idle demo
/// workers measured 54 KiB each (on 2026-12-04, Linux 6.18, x86_64: the growth of cgroup
/// v1 `memory.kmem.usage_in_bytes` over 19 workers added with TTIN, 146 KiB a worker,
/// less their 92 KiB of `VmPTE`), and a TCP socket adds a few KiB of structures plus the
/// bytes in flight in its buffers. Always an estimate: the metric lines carry no figure for
/// it.
pub const KERNEL_PER_PROCESS_MB: f64 = 64.0 / 1024.0;

/// The share of a platform's process limit left to what is not a worker: a shell that did
/// not exec, programs the app starts, `heroku ps:exec` sessions, and a replaced worker
/// that still finishes its request while its successor boots.
pub const PROCESS_MARGIN: f64 = 0.10;

/// ... and at least this many processes or threads.
pub const MIN_PROCESS_MARGIN: usize = 8;

/// The fewest workers advised from traffic alone: two, so that one worker stuck in a slow
/// request, or being replaced, does not leave the dyno unable to answer.
pub const MIN_SERVING: usize = 2;

/// A worst queue-time p99 above this says requests waited for a worker. Below it, queue
/// time is the router's transit and clock offset (a few ms on Heroku), or a client that
/// stamps its own `X-Request-Start` and then takes tens of ms to connect (curl).
pub const QUEUE_WAIT_MS: f64 = 100.0;

/// A Heroku dyno size, its memory quota and its process limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynoSize {
    /// Heroku's name for it (`standard-1x`).
    pub name: &'static str,
    /// Its memory quota in MB (2^20 bytes).
    pub quota_mb: f64,
    /// The most processes and threads that may exist in the dyno at once, all of them
    /// (the master, the workers, their threads, anything else); `None` when not known.
    pub process_limit: Option<usize>,
}

/// The common dyno sizes, smallest first: the memory of Heroku's "Dyno Types" (512 MB,
/// 1 GB, 2.5 GB, 14 GB), and the limits of its "Dyno Scaling and Process Limits" article
/// (devcenter.heroku.com/articles/dyno-scaling-and-process-limits, "Process/Threads Limit",
/// as of its versions of 4 November and 3 December 2024, for Cedar-generation apps):
/// Standard-1X 256, Standard-2X 512, Performance-M 16384, Performance-L 32768 processes and
/// threads.
pub const DYNO_SIZES: [DynoSize; 4] = [
    DynoSize {
        name: "standard-1x",
        quota_mb: 512.0,
        process_limit: Some(256),
    },
    DynoSize {
        name: "standard-2x",
        quota_mb: 1024.0,
        process_limit: Some(512),
    },
    DynoSize {
        name: "performance-m",
        quota_mb: 2560.0,
        process_limit: Some(16384),
    },
    DynoSize {
        name: "performance-l",
        quota_mb: 14336.0,
        process_limit: Some(32768),
    },
];

/// The dyno size named `name`: `standard-1x` (or `1x`), `standard-2x` (`2x`), `performance-m`
/// (`perf-m`), `performance-l` (`perf-l`), case-insensitive, as Heroku names
/// them; or a number of MB, which gives a size named `custom` with no process limit.
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
                process_limit: None,
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

/// What the platform gives the server: memory and processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Platform {
    /// The memory quota, MB.
    pub quota_mb: f64,
    /// The most processes and threads the dyno may hold, if there is a limit.
    pub process_limit: Option<usize>,
}

impl Platform {
    /// A quota, with the process limit of the dyno size it is, if it is one of
    /// [`DYNO_SIZES`] (a quota of 512 MB is a standard-1x, with its 256 processes).
    pub fn for_quota(quota_mb: f64) -> Platform {
        Platform {
            quota_mb,
            process_limit: dyno_size_of(quota_mb).and_then(|d| d.process_limit),
        }
    }
}

impl From<DynoSize> for Platform {
    fn from(d: DynoSize) -> Platform {
        Platform {
            quota_mb: d.quota_mb,
            process_limit: d.process_limit,
        }
    }
}

/// One process: its memory in MB, and the kernel's costs of it when measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessMemory {
    /// Proportional set size: shared pages divided among the processes that map them.
    pub pss_mb: f64,
    /// Unique set size: the pages only this process maps, what it frees on exit.
    pub uss_mb: f64,
    /// Its page tables (`VmPTE`, `sample#memory_pte`), if measured: kernel memory of its
    /// own that neither PSS nor USS counts.
    pub page_tables_mb: Option<f64>,
    /// Its threads (`sample#threads`), if known; a process limit counts each.
    pub threads: Option<usize>,
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
    /// only computes, near 0 for one that waits on a database or an API. `None` when it
    /// could not be measured (no worker was busy long enough to tell).
    pub on_cpu: Option<f64>,
}

/// What the traffic did, over the samples the figures cover.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Traffic {
    /// Samples of the busy workers (`sample#workers_busy`, or the master's own looks).
    pub samples: usize,
    /// The most workers busy at once in any sample.
    pub busy_max: usize,
    /// Samples in which every worker was busy (none idle).
    pub all_busy: usize,
    /// The most connections seen waiting in the listen queue (`sample#backlog`).
    pub backlog_max: usize,
    /// The worst queue-time p99 (`sample#queue_p99`), ms; `None` when no request carried
    /// `X-Request-Start`.
    pub queue_p99_ms: Option<f64>,
}

/// What bound the advice (the number, or the top of the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The memory quota.
    Memory,
    /// The CPUs: more workers would only queue for them.
    Cpu,
    /// The platform's process limit, less the master and a margin.
    Processes,
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
            Limit::Processes => "processes",
            Limit::MaxWorkers => "max",
            Limit::DoesNotFit => "does not fit",
        }
    }
}

/// Whether, and how, the CPUs bound the advice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuBound {
    /// No CPU count was given.
    NotGiven,
    /// A CPU count, but no share of time on CPU: no worker was busy long enough to tell.
    Unmeasured {
        /// The CPUs given.
        cpus: f64,
    },
    /// Requests below [`MIN_ON_CPU`] on a CPU: I/O-bound, the CPUs are no limit.
    IoBound {
        /// The CPUs given.
        cpus: f64,
        /// The share measured.
        on_cpu: f64,
    },
    /// `workers` keep the CPUs busy.
    Bound {
        /// The CPUs given.
        cpus: f64,
        /// The share measured (at most 1).
        on_cpu: f64,
        /// `round(cpus / on_cpu)`, at least 1.
        workers: usize,
    },
}

/// What the traffic says about the count it needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Demand {
    /// No traffic figures: the bounds alone give the number.
    Unknown,
    /// At most `busy_max` workers were ever busy at once and nothing waited: `needs`
    /// workers ([`MIN_SERVING`], or one more than `busy_max`) serve what was seen. More may
    /// serve it no better.
    Served {
        /// The most busy at once.
        busy_max: usize,
        /// The count that serves it.
        needs: usize,
        /// Over how many samples.
        samples: usize,
    },
    /// The workers were all busy, connections waited in the listen queue, or requests
    /// queued past [`QUEUE_WAIT_MS`]: the traffic needed more workers than it had, and only
    /// the upper bounds give a number.
    Short {
        /// The most busy at once.
        busy_max: usize,
        /// Samples with every worker busy.
        all_busy: usize,
        /// The most connections waiting in the listen queue.
        backlog_max: usize,
        /// The worst queue-time p99, ms.
        queue_p99_ms: Option<f64>,
    },
}

/// The advice and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Advice {
    /// The one count to run, at least 1, at most [`MAX_WORKERS`]: the advised
    /// `WEB_CONCURRENCY` when [`range`](Advice::range) is `None`; otherwise the range's low
    /// end, the least the traffic seen needs (the conservative end: the data does not
    /// support more).
    pub workers: usize,
    /// `Some((low, high))` when the data cannot support one number: the traffic seen never
    /// needed the workers it had, so any count from `low` (what it needed) to `high` (what
    /// [`limit`](Advice::limit) allows) serves it.
    pub range: Option<(usize, usize)>,
    /// What bound `workers`, or the range's top.
    pub limit: Limit,
    /// How many workers fit in memory (may exceed [`MAX_WORKERS`]; 0 when none fits).
    pub by_memory: usize,
    /// How many workers the CPUs can keep busy (see [`cpu`](Advice::cpu)).
    pub by_cpu: Option<usize>,
    /// How many workers the process limit leaves room for, if there is one.
    pub by_processes: Option<usize>,
    /// Why the CPUs bound the advice, or why not.
    pub cpu: CpuBound,
    /// What the traffic says.
    pub demand: Demand,
    /// What the server costs before its workers' own memory: the master (its pages and its
    /// kernel memory), plus the pages the workers share, once.
    pub base_mb: f64,
    /// What one more worker costs: [`uss_mb`](Advice::uss_mb) plus
    /// [`kernel_mb`](Advice::kernel_mb).
    pub per_worker_mb: f64,
    /// The largest worker USS (at least a page).
    pub uss_mb: f64,
    /// A worker's kernel memory: its page tables plus [`KERNEL_PER_PROCESS_MB`].
    pub kernel_mb: f64,
    /// The page tables in `kernel_mb`: measured (the largest worker's), or the estimate.
    pub page_tables_mb: f64,
    /// Whether `page_tables_mb` was measured.
    pub page_tables_measured: bool,
    /// The quota less the headroom.
    pub budget_mb: f64,
    /// The platform's process limit, if any.
    pub process_limit: Option<usize>,
    /// The processes and threads of that limit kept for the master and the margin.
    pub process_reserve: usize,
    /// Threads a worker counts for against the process limit (the most any had; 1 if
    /// unknown).
    pub threads_per_worker: usize,
}

/// Advises `WEB_CONCURRENCY` for `platform` (memory quota and process limit), keeping
/// `headroom` of the quota free (a share, e.g. [`DEFAULT_HEADROOM`]; clamped to 0..=0.9).
///
/// Memory (docs/metrics.md), every process costing its pages and its kernel memory:
/// ```text
/// kernel(p)   = p's page tables (VmPTE; measured, else PAGE_TABLES_ESTIMATE_MB, 92 KiB)
///               + KERNEL_PER_PROCESS_MB (64 KiB: kernel stack, task_struct, files, socket)
/// base        = master PSS + sum over workers of (PSS - USS)      (shared pages, once)
///               or, if larger, dyno_total - sum of workers' USS   (page cache, children)
///               + kernel(master)
/// per_worker  = the largest worker USS + the largest worker kernel(w)
/// by_memory   = floor((quota × (1 - headroom) - base) / per_worker)
/// ```
/// CPU: a worker that spends a share `on_cpu` of its busy time on a CPU keeps `on_cpu` of a
/// CPU busy, so `by_cpu = round(cpus / on_cpu)` workers keep every CPU busy; more only
/// queue for them. Requests below 1 % on CPU, or no measured share, give no CPU bound
/// ([`Advice::cpu`] says which).
///
/// Processes: the platform's limit counts every process and thread of the dyno:
/// ```text
/// reserve      = master threads + max(limit × 10 %, 8)
/// by_processes = floor((limit - reserve) / threads per worker)
/// ```
/// The upper bound is the least of `by_memory`, `by_cpu`, `by_processes` and
/// [`MAX_WORKERS`] ([`Advice::limit`] names it; memory first on a tie), never below 1.
///
/// Traffic: if the workers were never all busy, no connection waited in the listen queue
/// and the worst queue p99 stayed under [`QUEUE_WAIT_MS`], the traffic needed
/// `needs = max(2, busy_max + 1)` workers; when that is below the upper bound, the data
/// cannot support one number and the advice is the range `needs..=upper`
/// ([`Advice::workers`] is then `needs`). Otherwise the advice is the upper bound.
pub fn advise(
    platform: Platform,
    headroom: f64,
    m: &Measured<'_>,
    cpu: Option<Cpu>,
    traffic: Option<Traffic>,
) -> Advice {
    let headroom = if headroom.is_finite() {
        headroom.clamp(0.0, 0.9)
    } else {
        DEFAULT_HEADROOM
    };
    let measured_pt = |p: &ProcessMemory| p.page_tables_mb.filter(|t| t.is_finite() && *t >= 0.0);
    let shared: f64 = m
        .workers
        .iter()
        .map(|w| (w.pss_mb - w.uss_mb).max(0.0))
        .sum();
    let sum_uss: f64 = m.workers.iter().map(|w| w.uss_mb.max(0.0)).sum();
    let by_pss = m.master.pss_mb.max(0.0) + shared;
    let pages_base = match m.dyno_total_mb {
        Some(total) if total - sum_uss > by_pss => total - sum_uss,
        _ => by_pss,
    };
    let master_kernel =
        measured_pt(&m.master).unwrap_or(PAGE_TABLES_ESTIMATE_MB) + KERNEL_PER_PROCESS_MB;
    let base_mb = pages_base + master_kernel;
    let worker_pt = m.workers.iter().filter_map(measured_pt).reduce(f64::max);
    let page_tables_mb = worker_pt.unwrap_or(PAGE_TABLES_ESTIMATE_MB);
    let kernel_mb = page_tables_mb + KERNEL_PER_PROCESS_MB;
    let uss_mb = m
        .workers
        .iter()
        .map(|w| w.uss_mb)
        .fold(MIN_WORKER_MB, f64::max);
    let per_worker_mb = uss_mb + kernel_mb;
    let budget_mb = platform.quota_mb.max(0.0) * (1.0 - headroom);
    // A little slack so that an exact fit (12.0) is not floored to 11 by rounding.
    let fit = (budget_mb - base_mb) / per_worker_mb + 1e-9;
    let by_memory = if fit.is_finite() && fit >= 1.0 {
        // Saturating: `as` clamps a float above usize::MAX.
        fit.floor() as usize
    } else {
        0
    };

    let cpu_bound = match cpu.filter(|c| c.cpus.is_finite() && c.cpus > 0.0) {
        None => CpuBound::NotGiven,
        Some(Cpu { cpus, on_cpu }) => match on_cpu.filter(|f| f.is_finite() && *f >= 0.0) {
            None => CpuBound::Unmeasured { cpus },
            Some(f) if f < MIN_ON_CPU => CpuBound::IoBound { cpus, on_cpu: f },
            Some(f) => {
                let on_cpu = f.min(1.0);
                CpuBound::Bound {
                    cpus,
                    on_cpu,
                    workers: ((cpus / on_cpu).round() as usize).max(1),
                }
            }
        },
    };
    let by_cpu = match cpu_bound {
        CpuBound::Bound { workers, .. } => Some(workers),
        _ => None,
    };

    let threads_per_worker = m
        .workers
        .iter()
        .filter_map(|w| w.threads)
        .max()
        .unwrap_or(1)
        .max(1);
    let process_reserve = platform.process_limit.map_or(0, |limit| {
        let margin = ((limit as f64 * PROCESS_MARGIN) as usize).max(MIN_PROCESS_MARGIN);
        m.master.threads.unwrap_or(1).max(1) + margin
    });
    let by_processes = platform
        .process_limit
        .map(|limit| limit.saturating_sub(process_reserve) / threads_per_worker);

    let (upper, limit) = if by_memory == 0 {
        (1, Limit::DoesNotFit)
    } else {
        let mut best = (by_memory, Limit::Memory);
        if let Some(n) = by_cpu.filter(|&n| n < best.0) {
            best = (n, Limit::Cpu);
        }
        if let Some(n) = by_processes.filter(|&n| n < best.0) {
            best = (n.max(1), Limit::Processes);
        }
        if MAX_WORKERS < best.0 {
            best = (MAX_WORKERS, Limit::MaxWorkers);
        }
        best
    };

    let demand = match traffic.filter(|t| t.samples > 0) {
        None => Demand::Unknown,
        Some(t) => {
            let queued = t.queue_p99_ms.is_some_and(|q| q > QUEUE_WAIT_MS);
            if t.all_busy > 0 || t.backlog_max > 0 || queued {
                Demand::Short {
                    busy_max: t.busy_max,
                    all_busy: t.all_busy,
                    backlog_max: t.backlog_max,
                    queue_p99_ms: t.queue_p99_ms,
                }
            } else {
                Demand::Served {
                    busy_max: t.busy_max,
                    needs: (t.busy_max.saturating_add(1)).max(MIN_SERVING),
                    samples: t.samples,
                }
            }
        }
    };
    let (workers, range) = match demand {
        Demand::Served { needs, .. } if needs < upper && limit != Limit::DoesNotFit => {
            (needs, Some((needs, upper)))
        }
        _ => (upper, None),
    };
    Advice {
        workers,
        range,
        limit,
        by_memory,
        by_cpu,
        by_processes,
        cpu: cpu_bound,
        demand,
        base_mb,
        per_worker_mb,
        uss_mb,
        kernel_mb,
        page_tables_mb,
        page_tables_measured: worker_pt.is_some(),
        budget_mb,
        process_limit: platform.process_limit,
        process_reserve,
        threads_per_worker,
    }
}

impl Advice {
    /// The upper bound: the advised number, or the top of the range.
    pub fn upper(&self) -> usize {
        self.range.map_or(self.workers, |(_, high)| high)
    }

    /// Why, in words, for the tools' and the master's output:
    /// - a number: `memory: 12 fit`, `the process limit: 256 less 26 kept for the master
    ///   and others leaves room for 230; memory allows 1490`, ...;
    /// - a range: `traffic never kept more than 0 workers busy: any count >= 2 serves it;
    ///   the process limit would allow up to 230 (memory up to 1490)`.
    pub fn reason(&self) -> String {
        let memory = self.by_memory;
        match self.range {
            Some((low, high)) => {
                let busy = match self.demand {
                    Demand::Served { busy_max, .. } => busy_max,
                    _ => 0,
                };
                let top = match self.limit {
                    Limit::Memory => format!("memory would allow up to {high}"),
                    Limit::Cpu => {
                        format!("the CPUs would keep up to {high} busy (memory up to {memory})")
                    }
                    Limit::Processes => format!(
                        "the process limit would allow up to {high} (memory up to {memory})"
                    ),
                    Limit::MaxWorkers | Limit::DoesNotFit => {
                        format!("a server runs at most {high} (memory would allow up to {memory})")
                    }
                };
                format!(
                    "traffic never kept more than {busy} worker{} busy: any count >= {low} serves it; {top}",
                    if busy == 1 { "" } else { "s" }
                )
            }
            None => match self.limit {
                Limit::Memory => format!("memory: {memory} fit"),
                Limit::Cpu => {
                    let (cpus, on_cpu) = match self.cpu {
                        CpuBound::Bound { cpus, on_cpu, .. } => (cpus, on_cpu),
                        _ => (0.0, 0.0),
                    };
                    format!(
                        "CPU: {} keep {cpus} CPUs busy at {} on CPU; memory allows {memory}",
                        self.workers,
                        percent(on_cpu)
                    )
                }
                Limit::Processes => format!(
                    "the process limit: {} processes and threads, less {} for the master and a margin, leave room for {}; memory allows {memory}",
                    self.process_limit.unwrap_or(0),
                    self.process_reserve,
                    self.by_processes.unwrap_or(0),
                ),
                Limit::MaxWorkers => format!("the most a server runs; memory allows {memory}"),
                Limit::DoesNotFit => "not even one worker fits with the headroom".into(),
            },
        }
    }

    /// What the CPU count did to the advice, when one was given: `2 CPUs at 99 % on CPU
    /// keep 2 workers busy`, or why it did not bound it (`requests were 0.4 % on CPU: the
    /// CPU count does not bound the advice`). `None` without a CPU count.
    pub fn cpu_note(&self) -> Option<String> {
        Some(match self.cpu {
            CpuBound::NotGiven => return None,
            CpuBound::Unmeasured { cpus } => format!(
                "{cpus} CPUs, but no worker was busy long enough to measure the share of time on CPU: the CPU count does not bound the advice"
            ),
            CpuBound::IoBound { on_cpu, .. } => format!(
                "requests were {} on CPU: the CPU count does not bound the advice",
                percent(on_cpu)
            ),
            CpuBound::Bound {
                cpus,
                on_cpu,
                workers,
            } => format!(
                "{cpus} CPUs at {} on CPU keep {workers} worker{} busy",
                percent(on_cpu),
                if workers == 1 { "" } else { "s" }
            ),
        })
    }

    /// `12` for a number, `2..230` for a range: for tables.
    pub fn short(&self) -> String {
        match self.range {
            Some((low, high)) => format!("{low}..{high}"),
            None => self.workers.to_string(),
        }
    }
}

/// A share as a percentage: one decimal below 10 %, none above.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p < 10.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(pss_mb: f64, uss_mb: f64) -> ProcessMemory {
        ProcessMemory {
            pss_mb,
            uss_mb,
            ..ProcessMemory::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// The estimated kernel memory of a process whose page tables were not measured.
    const EST: f64 = PAGE_TABLES_ESTIMATE_MB + KERNEL_PER_PROCESS_MB;

    /// `advise` on a bare quota (no process limit), no traffic figures: memory and CPU.
    fn advise_q(quota_mb: f64, headroom: f64, m: &Measured<'_>, cpu: Option<Cpu>) -> Advice {
        let platform = Platform {
            quota_mb,
            process_limit: None,
        };
        advise(platform, headroom, m, cpu, None)
    }

    fn cpu(cpus: f64, on_cpu: f64) -> Option<Cpu> {
        Some(Cpu {
            cpus,
            on_cpu: Some(on_cpu),
        })
    }

    /// The worked example of docs/metrics.md, before `/alloc?mb=32`. The lines of that
    /// example carry no page tables: each process is taken to cost the estimate, 92 KiB of
    /// page tables and 64 KiB of other kernel memory.
    #[test]
    fn docs_example_before_alloc() {
        let workers = [pm(0.29, 0.11), pm(0.29, 0.11)];
        let m = Measured {
            master: pm(0.41, 0.09),
            workers: &workers,
            dyno_total_mb: Some(0.46),
        };
        let a = advise_q(512.0, 0.2, &m, None);
        // 0.41 + 2 × 0.18 = 0.77 MB of pages, + 0.15 MB of the master's kernel memory.
        assert!(close(a.base_mb, 0.77 + EST), "{a:?}");
        assert!(close(a.per_worker_mb, 0.11 + EST)); // 0.26 MB
        assert!(!a.page_tables_measured);
        assert!(close(a.budget_mb, 409.6));
        // (409.6 - 0.92) / 0.26 = 1557.8 (3716 when the kernel's share was left out).
        assert_eq!(a.by_memory, 1557);
        assert_eq!((a.workers, a.limit), (MAX_WORKERS, Limit::MaxWorkers));
        assert_eq!(a.by_cpu, None);
        // On the dyno sizes, with their process limits: standard-1x and standard-2x hold
        // fewer processes than their memory would.
        let got: Vec<(usize, Usize, Limit)> = DYNO_SIZES
            .iter()
            .map(|d| {
                let a = advise(Platform::from(*d), 0.2, &m, None, None);
                (a.workers, a.by_memory, a.limit)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (230, 1557, Limit::Processes),
                (460, 3119, Limit::Processes),
                (MAX_WORKERS, 7803, Limit::MaxWorkers),
                (MAX_WORKERS, 43713, Limit::MaxWorkers),
            ]
        );
    }

    type Usize = usize;

    /// ... and after it: 12, 25, 63 and 355 workers on 512 MB, 1 GB, 2.5 GB and 14 GB
    /// (357 on 14 GB when the kernel's share was left out: 0.15 MB more a worker).
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
            .map(|d| advise(Platform::from(*d), 0.2, &m, None, None).workers)
            .collect();
        assert_eq!(got, vec![12, 25, 63, 355]);
        let a = advise_q(512.0, 0.2, &m, None);
        assert!(close(a.base_mb, 0.80 + EST), "{a:?}");
        assert!(close(a.per_worker_mb, 32.11 + EST));
        assert_eq!(a.limit, Limit::Memory);
        assert_eq!(a.reason(), "memory: 12 fit");
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
        let a = advise_q(512.0, 0.2, &m, None);
        assert!(close(a.base_mb, 120.0 + EST), "{a:?}");
        assert_eq!(a.by_memory, 35); // (409.6 - 120.15) / 8.15 = 35.5
        // Without the cgroup figure: 5 + 2 + 2 = 9 MB.
        let a = advise_q(
            512.0,
            0.2,
            &Measured {
                dyno_total_mb: None,
                ..m
            },
            None,
        );
        assert!(close(a.base_mb, 9.0 + EST));
        assert_eq!(a.by_memory, 49); // (409.6 - 9.15) / 8.15 = 49.1
    }

    #[test]
    fn exact_fits_are_not_lost_to_rounding() {
        // (100 × 0.9 - 18) / 6 = 12 exactly; 0.9 and 0.1 are not exact in binary. With
        // page tables measured at 0, each process costs 1/16 MB of other kernel memory.
        let no_tables = |pss_mb, uss_mb| ProcessMemory {
            page_tables_mb: Some(0.0),
            ..pm(pss_mb, uss_mb)
        };
        let workers = [no_tables(5.9375, 5.9375)];
        let m = Measured {
            master: no_tables(17.9375, 17.9375),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise_q(100.0, 0.1, &m, None);
        assert!(
            close(a.per_worker_mb, 6.0) && close(a.base_mb, 18.0),
            "{a:?}"
        );
        assert_eq!(a.by_memory, 12);
    }

    #[test]
    fn measured_page_tables_replace_the_estimate() {
        let with = |pss_mb, uss_mb, pte| ProcessMemory {
            page_tables_mb: Some(pte),
            ..pm(pss_mb, uss_mb)
        };
        // The largest worker's page tables, whichever worker has the largest USS.
        let workers = [with(3.0, 1.0, 0.5), with(4.0, 2.0, 0.25), pm(3.0, 1.0)];
        let m = Measured {
            master: with(10.0, 2.0, 0.75),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise_q(512.0, 0.2, &m, None);
        assert!(a.page_tables_measured);
        assert!(close(a.page_tables_mb, 0.5));
        assert!(close(a.kernel_mb, 0.5 + KERNEL_PER_PROCESS_MB));
        assert!(close(a.uss_mb, 2.0));
        assert!(close(a.per_worker_mb, 2.0 + 0.5 + KERNEL_PER_PROCESS_MB));
        // 10 + 2 + 2 + 2 shared, and the master's own 0.75 + 1/16.
        assert!(
            close(a.base_mb, 16.0 + 0.75 + KERNEL_PER_PROCESS_MB),
            "{a:?}"
        );
        // (409.6 - 16.8125) / 2.5625 = 153.3
        assert_eq!(a.by_memory, 153);
        // Nonsense figures count as not measured.
        let odd = [with(3.0, 1.0, f64::NAN), with(3.0, 1.0, -1.0)];
        let a = advise_q(512.0, 0.2, &Measured { workers: &odd, ..m }, None);
        assert!(!a.page_tables_measured);
        assert!(close(a.kernel_mb, EST));
    }

    #[test]
    fn cpu_bound_requests_are_limited_by_cpus() {
        let workers = [pm(1.0, 0.5)];
        let m = Measured {
            master: pm(1.0, 1.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise_q(512.0, 0.2, &m, cpu(2.0, 1.0));
        assert_eq!((a.workers, a.by_cpu, a.limit), (2, Some(2), Limit::Cpu));
        assert_eq!(
            a.reason(),
            "CPU: 2 keep 2 CPUs busy at 100 % on CPU; memory allows 625"
        );
        assert_eq!(
            a.cpu_note().as_deref(),
            Some("2 CPUs at 100 % on CPU keep 2 workers busy")
        );
        // Measured a little under 1: still about one per CPU.
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(2.0, 0.93)).workers, 2);
        // Half the time waiting: twice as many; and the CPU count moves the bound.
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(2.0, 0.5)).workers, 4);
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(8.0, 0.5)).workers, 16);
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(8.0, 0.1)).workers, 80);
        // I/O-bound: memory decides, and the note says why the CPUs do not.
        let a = advise_q(512.0, 0.2, &m, cpu(2.0, 0.004));
        assert_eq!((a.by_cpu, a.limit), (None, Limit::Memory));
        // base 1 + 0.5 shared + 0.15 kernel: (409.6 - 1.65) / (0.5 + 0.15) = 625.4
        assert_eq!(a.workers, 625);
        assert_eq!(
            a.cpu,
            CpuBound::IoBound {
                cpus: 2.0,
                on_cpu: 0.004
            }
        );
        assert_eq!(
            a.cpu_note().as_deref(),
            Some("requests were 0.4 % on CPU: the CPU count does not bound the advice")
        );
        // A CPU count without a measured share: said, not silently ignored.
        let a = advise_q(
            512.0,
            0.2,
            &m,
            Some(Cpu {
                cpus: 2.0,
                on_cpu: None,
            }),
        );
        assert_eq!(
            (a.by_cpu, a.cpu),
            (None, CpuBound::Unmeasured { cpus: 2.0 })
        );
        assert!(
            a.cpu_note()
                .unwrap()
                .ends_with("the CPU count does not bound the advice"),
            "{a:?}"
        );
        assert_eq!(advise_q(512.0, 0.2, &m, None).cpu_note(), None);
        // Above 1 is read as 1; nonsense CPU figures are ignored.
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(4.0, 3.0)).workers, 4);
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(0.0, 1.0)).by_cpu, None);
        assert_eq!(
            advise_q(512.0, 0.2, &m, cpu(0.0, 1.0)).cpu,
            CpuBound::NotGiven
        );
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(f64::NAN, 1.0)).by_cpu, None);
        assert_eq!(advise_q(512.0, 0.2, &m, cpu(2.0, f64::NAN)).by_cpu, None);
    }

    #[test]
    fn memory_below_cpu_wins() {
        let workers = [pm(200.0, 190.0)];
        let m = Measured {
            master: pm(20.0, 5.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise_q(512.0, 0.2, &m, cpu(8.0, 0.2));
        // (409.6 - 30.15) / 190.15 = 1.99: one worker; the CPUs could use 40.
        assert_eq!((a.workers, a.by_memory, a.by_cpu), (1, 1, Some(40)));
        assert_eq!(a.limit, Limit::Memory);
    }

    /// The figures of tests/data/runicorn/idle-20mb-table.log: the demo with a 20 MiB table
    /// built before the fork, two idle workers, four requests in 14 s.
    fn idle_table() -> (ProcessMemory, [ProcessMemory; 2]) {
        let with = |pss_mb, uss_mb| ProcessMemory {
            pss_mb,
            uss_mb,
            page_tables_mb: Some(0.09),
            threads: Some(1),
        };
        (with(7.52, 0.32), [with(7.18, 0.11), with(7.14, 0.10)])
    }

    #[test]
    fn the_process_limit_bounds_small_dynos() {
        let (master, workers) = idle_table();
        let m = Measured {
            master,
            workers: &workers,
            dyno_total_mb: Some(20.59),
        };
        let got: Vec<(usize, Option<usize>, usize, Limit)> = DYNO_SIZES
            .iter()
            .map(|d| {
                let a = advise(Platform::from(*d), 0.2, &m, None, None);
                (a.workers, a.by_processes, a.by_memory, a.limit)
            })
            .collect();
        // base 7.52 + 7.07 + 7.04 = 21.63 MB of pages + 0.15 MB of the master's kernel
        // memory; 0.11 + 0.09 + 0.06 = 0.26 MB a worker: (409.6 - 21.78) / 0.2625 = 1477.
        // But 256 processes less the master and 25 (10 %) leave room for 230; 512 less 1
        // and 51, for 460.
        assert_eq!(
            got,
            vec![
                (230, Some(230), 1477, Limit::Processes),
                (460, Some(460), 3037, Limit::Processes),
                (MAX_WORKERS, Some(14745), 7718, Limit::MaxWorkers),
                (MAX_WORKERS, Some(29491), 43607, Limit::MaxWorkers),
            ]
        );
        let a = advise(Platform::from(DYNO_SIZES[0]), 0.2, &m, None, None);
        assert_eq!(
            a.reason(),
            "the process limit: 256 processes and threads, less 26 for the master and a margin, leave room for 230; memory allows 1477"
        );
        // Threads count: workers of 4 threads and a master of 3 on a standard-1x.
        let threaded = workers.map(|w| ProcessMemory {
            threads: Some(4),
            ..w
        });
        let m4 = Measured {
            master: ProcessMemory {
                threads: Some(3),
                ..master
            },
            workers: &threaded,
            ..m
        };
        let a = advise(Platform::from(DYNO_SIZES[0]), 0.2, &m4, None, None);
        assert_eq!((a.process_reserve, a.threads_per_worker), (28, 4));
        assert_eq!((a.workers, a.limit), (57, Limit::Processes)); // (256 - 28) / 4
        // A tiny limit: one worker, said to be the limit's.
        let tiny = Platform {
            quota_mb: 512.0,
            process_limit: Some(8),
        };
        let a = advise(tiny, 0.2, &m, None, None);
        assert_eq!(
            (a.workers, a.by_processes, a.limit),
            (1, Some(0), Limit::Processes)
        );
        // No limit known (a custom quota): none applies.
        let a = advise(Platform::for_quota(600.0), 0.2, &m, None, None);
        assert_eq!((a.by_processes, a.process_reserve), (None, 0));
    }

    /// The idle recording: no traffic ever needed more than 2 workers, so no single number.
    #[test]
    fn idle_traffic_gives_a_range_not_a_number() {
        let (master, workers) = idle_table();
        let m = Measured {
            master,
            workers: &workers,
            dyno_total_mb: Some(20.59),
        };
        let idle = Traffic {
            samples: 7,
            busy_max: 0,
            all_busy: 0,
            backlog_max: 0,
            // curl's own start-up between `date` and the connect: not a wait for a worker.
            queue_p99_ms: Some(46.419),
        };
        let a = advise(
            Platform::from(DYNO_SIZES[0]),
            0.2,
            &m,
            Some(Cpu {
                cpus: 2.0,
                on_cpu: None,
            }),
            Some(idle),
        );
        assert_eq!(
            a.demand,
            Demand::Served {
                busy_max: 0,
                needs: 2,
                samples: 7
            }
        );
        assert_eq!(
            (a.workers, a.range, a.limit),
            (2, Some((2, 230)), Limit::Processes)
        );
        assert_eq!(a.upper(), 230);
        assert_eq!(a.short(), "2..230");
        assert_eq!(
            a.reason(),
            "traffic never kept more than 0 workers busy: any count >= 2 serves it; the process limit would allow up to 230 (memory up to 1477)"
        );
        // On a quota of no known dyno size (no process limit), the server's cap is the top.
        let a = advise(Platform::for_quota(600.0), 0.2, &m, None, Some(idle));
        assert_eq!(a.range, Some((2, MAX_WORKERS)));
        assert!(
            a.reason()
                .ends_with("a server runs at most 1024 (memory would allow up to 1745)"),
            "{}",
            a.reason()
        );
        // The CPUs as the top: I/O-light requests at half their time on CPU, 2 CPUs.
        let a = advise(
            Platform::from(DYNO_SIZES[0]),
            0.2,
            &m,
            cpu(2.0, 0.5),
            Some(Traffic {
                busy_max: 1,
                ..idle
            }),
        );
        assert_eq!((a.range, a.limit), (Some((2, 4)), Limit::Cpu), "{a:?}");
        assert!(
            a.reason().ends_with(
                "any count >= 2 serves it; the CPUs would keep up to 4 busy (memory up to 1477)"
            ),
            "{}",
            a.reason()
        );
    }

    #[test]
    fn traffic_that_needed_more_gives_the_upper_bound() {
        let workers = [pm(20.0, 10.0), pm(20.0, 10.0)];
        let m = Measured {
            master: pm(15.0, 5.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let p = Platform::for_quota(512.0);
        let quiet = Traffic {
            samples: 30,
            busy_max: 1,
            ..Traffic::default()
        };
        // Quiet: any count from 2 to what memory allows serves it: (409.6 - 35.15) / 10.15.
        let a = advise(p, 0.2, &m, None, Some(quiet));
        assert_eq!(
            (a.workers, a.range, a.limit),
            (2, Some((2, 36)), Limit::Memory)
        );
        assert_eq!(
            a.reason(),
            "traffic never kept more than 1 worker busy: any count >= 2 serves it; memory would allow up to 36"
        );
        // Three busy at most: four needed.
        let a = advise(
            p,
            0.2,
            &m,
            None,
            Some(Traffic {
                busy_max: 3,
                ..quiet
            }),
        );
        assert_eq!(a.range, Some((4, 36)));
        // Every worker busy once, connections waiting, or requests queued 150 ms: it
        // needed more than it had; the bound gives the number.
        for short in [
            Traffic {
                all_busy: 1,
                ..quiet
            },
            Traffic {
                backlog_max: 3,
                ..quiet
            },
            Traffic {
                queue_p99_ms: Some(150.0),
                ..quiet
            },
        ] {
            let a = advise(p, 0.2, &m, None, Some(short));
            assert_eq!(
                (a.workers, a.range, a.limit),
                (36, None, Limit::Memory),
                "{short:?}"
            );
            assert!(matches!(a.demand, Demand::Short { .. }));
            assert_eq!(a.reason(), "memory: 36 fit");
        }
        // Needing as many as the bound allows, or more: the bound.
        let a = advise(
            p,
            0.2,
            &m,
            None,
            Some(Traffic {
                busy_max: 35,
                ..quiet
            }),
        );
        assert_eq!((a.workers, a.range), (36, None));
        let a = advise(
            p,
            0.2,
            &m,
            None,
            Some(Traffic {
                busy_max: 60,
                ..quiet
            }),
        );
        assert_eq!((a.workers, a.range), (36, None));
        // No samples: no traffic figure at all.
        let a = advise(p, 0.2, &m, None, Some(Traffic::default()));
        assert_eq!((a.demand, a.range), (Demand::Unknown, None));
        // Nothing fits: one worker whatever the traffic.
        let big = [pm(600.0, 600.0)];
        let m = Measured { workers: &big, ..m };
        let a = advise(p, 0.2, &m, None, Some(quiet));
        assert_eq!((a.workers, a.range, a.limit), (1, None, Limit::DoesNotFit));
    }

    #[test]
    fn nothing_fits() {
        let workers = [pm(600.0, 600.0)];
        let m = Measured {
            master: pm(10.0, 10.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        let a = advise_q(512.0, 0.2, &m, None);
        assert_eq!((a.workers, a.by_memory, a.limit), (1, 0, Limit::DoesNotFit));
        assert_eq!(a.reason(), "not even one worker fits with the headroom");
        // A master alone larger than the budget.
        let m = Measured {
            master: pm(500.0, 500.0),
            workers: &[],
            dyno_total_mb: None,
        };
        assert_eq!(advise_q(512.0, 0.2, &m, None).limit, Limit::DoesNotFit);
        assert_eq!(advise_q(0.0, 0.2, &m, None).limit, Limit::DoesNotFit);
        assert_eq!(advise_q(-5.0, 0.2, &m, None).limit, Limit::DoesNotFit);
    }

    #[test]
    fn tiny_or_missing_workers_cost_a_page_and_their_kernel_memory() {
        let m = Measured {
            master: pm(1.0, 1.0),
            workers: &[],
            dyno_total_mb: None,
        };
        let a = advise_q(512.0, 0.2, &m, None);
        assert!(close(a.uss_mb, MIN_WORKER_MB));
        assert!(close(a.per_worker_mb, MIN_WORKER_MB + EST));
        assert_eq!((a.workers, a.limit), (MAX_WORKERS, Limit::MaxWorkers));
        assert_eq!(a.reason(), "the most a server runs; memory allows 2614");
        let zero = [pm(0.0, 0.0)];
        let m = Measured {
            workers: &zero,
            ..m
        };
        assert!(close(
            advise_q(512.0, 0.2, &m, None).per_worker_mb,
            MIN_WORKER_MB + EST
        ));
    }

    #[test]
    fn headroom_is_clamped() {
        // 10 MB a worker with its kernel memory, and the master's 1/16 MB of kernel memory.
        let no_tables = |pss_mb, uss_mb| ProcessMemory {
            page_tables_mb: Some(0.0),
            ..pm(pss_mb, uss_mb)
        };
        let workers = [no_tables(9.9375, 9.9375)];
        let m = Measured {
            master: no_tables(0.0, 0.0),
            workers: &workers,
            dyno_total_mb: None,
        };
        assert_eq!(advise_q(1000.0, 0.0, &m, None).by_memory, 99); // 999.94 / 10
        assert_eq!(advise_q(1000.0, -1.0, &m, None).by_memory, 99);
        assert_eq!(advise_q(1000.0, 0.5, &m, None).by_memory, 49);
        assert_eq!(advise_q(1000.0, 5.0, &m, None).by_memory, 9); // 0.9 at most
        assert_eq!(advise_q(1000.0, f64::NAN, &m, None).by_memory, 79); // the default
    }

    #[test]
    fn platforms_from_sizes_and_quotas() {
        assert_eq!(
            Platform::for_quota(512.0),
            Platform {
                quota_mb: 512.0,
                process_limit: Some(256)
            }
        );
        assert_eq!(Platform::for_quota(14336.0).process_limit, Some(32768));
        assert_eq!(Platform::for_quota(700.0).process_limit, None);
        let limits: Vec<Option<usize>> = DYNO_SIZES.iter().map(|d| d.process_limit).collect();
        assert_eq!(limits, vec![Some(256), Some(512), Some(16384), Some(32768)]);
        assert_eq!(dyno_size("300").and_then(|d| d.process_limit), None);
        assert_eq!(Limit::Processes.as_str(), "processes");
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
