//! Sizing the pool from measurements: `--workers auto` (the decisions are
//! `crate::autoscale`'s) and `--max-worker-memory`.

use std::time::{Duration, Instant};

use nix::unistd::Pid;
use tracing::{debug, info, warn};

use super::{Master, Phase, Worker};
use crate::autoscale::{self, Resizer};
use crate::config::MemoryMeasure;
use crate::handler::App;
use crate::metrics::advice::{
    Advice, Cpu, Measured, Platform, ProcessMemory, Traffic, advise, dyno_size_of,
};
use crate::procfs as memory;
use crate::scoreboard::Scoreboard;
use crate::sys;

/// A new worker's memory limit in KiB: `max_mib` less a random 0-10 %, so that workers
/// growing alike pass their limits at different times. 0 (no limit) stays 0.
pub(super) fn memory_limit_kib(max_mib: u64, random: u64) -> u64 {
    let max = max_mib.saturating_mul(1024);
    max - random % (max / 10 + 1)
}

/// The memory `--workers auto` plans within, in MiB: the server's cgroup limit, else the
/// machine's memory.
pub(super) fn memory_quota_mib() -> f64 {
    crate::metrics::cgroup::own_quota_bytes()
        .map(|b| b as f64 / (1024.0 * 1024.0))
        .or_else(|| memory::read_mem_total_kib().map(|k| k as f64 / 1024.0))
        .unwrap_or(512.0)
}

/// The processes and threads `--workers auto` plans within (`autoscale::process_limit`):
/// the documented limit of the dyno size `quota_mib` is, and the soft `RLIMIT_NPROC`.
pub(super) fn process_limit(quota_mib: f64) -> Option<usize> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    let nproc = getrlimit(Resource::RLIMIT_NPROC)
        .ok()
        .map(|(soft, _)| soft)
        .filter(|&soft| soft != RLIM_INFINITY);
    autoscale::process_limit(
        dyno_size_of(quota_mib).and_then(|d| d.process_limit),
        nproc,
        nix::unistd::geteuid().is_root(),
    )
}

/// A process's memory, page tables and threads as the advice takes them.
fn footprint(mem: &memory::ProcMemory, tasks: Option<memory::ProcTasks>) -> ProcessMemory {
    ProcessMemory {
        pss_mb: mem.pss_kib as f64 / 1024.0,
        uss_mb: mem.uss_kib as f64 / 1024.0,
        page_tables_mb: tasks
            .and_then(|t| t.page_tables_kib)
            .map(|k| k as f64 / 1024.0),
        threads: tasks
            .and_then(|t| t.threads)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

/// How often `--workers auto` looks at the busy workers and the listen queue between
/// evaluations.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// `--workers auto`: what the master remembers between evaluations.
#[derive(Debug)]
pub(super) struct Auto {
    pub(super) cpus: usize,
    pub(super) resizer: Resizer,
    pub(super) next_evaluation: Instant,
    /// Per worker pid at the last evaluation: nanoseconds run on a CPU, nanoseconds run or
    /// waited for one, and busy microseconds (see `evaluate_auto`).
    pub(super) last: Vec<(Pid, u64, u64, u64)>,
    pub(super) last_at: Instant,
    /// The traffic seen since the last evaluation.
    pub(super) looks: autoscale::Looks,
    pub(super) next_look: Instant,
}

impl<A: App> Master<'_, A> {
    /// `--max-worker-memory`: once a second, replaces (gracefully: after its request) a
    /// worker whose memory passed its limit, one worker at a time. Its successor is spawned
    /// at once by `keep_worker_count`, as stopping workers do not count.
    pub(super) fn check_memory(&mut self) {
        if self.config.max_worker_memory_mib == 0
            || self.phase != Phase::Running
            || Instant::now() < self.next_memory_check
        {
            return;
        }
        self.next_memory_check = Instant::now() + Duration::from_secs(1);
        if let Some(pid) = self.memory_recycle {
            if self.workers.iter().any(|w| w.pid == pid) {
                return;
            }
            self.memory_recycle = None;
        }
        let measure = self.config.worker_memory;
        let over = self.workers.iter().enumerate().find_map(|(i, w)| {
            if w.memory_limit_kib == 0 || w.stop_sent.is_some() || w.killed.is_some() || !w.ready {
                return None;
            }
            let m = memory::read_memory(w.pid.as_raw())?;
            let used = match measure {
                MemoryMeasure::Uss => m.uss_kib,
                MemoryMeasure::Rss => m.rss_kib,
            };
            (used > w.memory_limit_kib).then_some((i, used))
        });
        if let Some((i, used_kib)) = over {
            let w = &self.workers[i];
            let mib = |kib: u64| format!("{:.2}", kib as f64 / 1024.0);
            warn!(
                worker = w.slot,
                pid = w.pid.as_raw(),
                measure = measure.as_str(),
                memory_mb = mib(used_kib),
                limit_mb = mib(w.memory_limit_kib),
                "worker over its memory limit: replacing it after its request"
            );
            self.memory_recycle = Some(w.pid);
            self.stop_worker(i);
        }
    }

    /// `--workers auto` at boot: one worker per CPU, as many as the memory quota holds at
    /// the documented estimate a worker. After an upgrade the count carries over instead.
    pub(super) fn start_auto(&mut self, upgraded: bool) {
        let cpus = crate::config::available_cpus();
        let quota_mib = memory_quota_mib();
        let master_mib = memory::read_memory(std::process::id() as i32)
            .map_or(0.0, |m| m.pss_kib as f64 / 1024.0);
        if !upgraded {
            self.target = autoscale::boot_workers(cpus, quota_mib, master_mib);
            info!(
                workers = self.target,
                cpus,
                quota_mb = format!("{quota_mib:.2}"),
                master_mb = format!("{master_mib:.2}"),
                worker_estimate_mb = format!("{:.2}", autoscale::BOOT_WORKER_MIB),
                "auto: workers at boot"
            );
        }
        self.auto = Some(Auto {
            cpus,
            resizer: Resizer::default(),
            next_evaluation: Instant::now() + self.config.auto_interval,
            last: Vec::new(),
            last_at: Instant::now(),
            looks: autoscale::Looks::default(),
            next_look: Instant::now(),
        });
    }

    /// `--workers auto`, between evaluations: looks (every [`LOOK_EVERY`], at most) at how
    /// many of this image's ready workers are busy, and at the listen queues, for the
    /// traffic figures of the next evaluation.
    fn look_auto(&mut self) {
        // A worker serving several requests at once is busy, for the pool's size, when it
        // holds as many as it may: below that it still takes connections.
        let capacity = self.requests_per_worker() as u64;
        let Some(auto) = self.auto.as_mut() else {
            return;
        };
        let now = Instant::now();
        if self.phase != Phase::Running || now < auto.next_look {
            return;
        }
        auto.next_look = now + LOOK_EVERY;
        let (mut busy, mut idle) = (0, 0);
        for w in &self.workers {
            if w.adopted || w.stop_sent.is_some() || w.killed.is_some() || !w.ready {
                continue;
            }
            let view = self.scoreboard.slot(w.slot).view();
            match view.state {
                crate::scoreboard::WorkerState::Busy if view.in_flight >= capacity => busy += 1,
                crate::scoreboard::WorkerState::Busy | crate::scoreboard::WorkerState::Idle => {
                    idle += 1
                }
                _ => {}
            }
        }
        let backlog = super::listen_queue(&self.listeners).map(|q| q.depth as usize);
        auto.looks.add(busy, idle, backlog);
    }

    /// `--workers auto`, every `--auto-interval`: measure the workers that have served
    /// traffic and resize the pool as `autoscale` decides.
    pub(super) fn evaluate_auto(&mut self) {
        self.look_auto();
        let Some(auto) = self.auto.as_mut() else {
            return;
        };
        let now = Instant::now();
        if self.phase != Phase::Running || now < auto.next_evaluation {
            return;
        }
        auto.next_evaluation = now + self.config.auto_interval;
        let interval = auto.measure(&self.workers, &self.scoreboard, now);
        if interval.workers.is_empty() {
            return; // nothing has served traffic yet: the boot estimate stands
        }
        self.resize(&interval);
    }

    /// Resizes the pool, when `autoscale` decides to, from what the workers did over an
    /// interval.
    fn resize(&mut self, interval: &Interval) {
        let Some(auto) = self.auto.as_mut() else {
            return;
        };
        let pid = std::process::id() as i32;
        let master = memory::read_memory(pid).map_or_else(ProcessMemory::default, |m| {
            footprint(&m, memory::read_tasks(pid))
        });
        let quota_mib = memory_quota_mib();
        let platform = Platform {
            quota_mb: quota_mib,
            process_limit: process_limit(quota_mib),
        };
        let on_cpu = autoscale::on_cpu(interval.demand_secs, interval.busy_secs);
        let measured = Measured {
            master,
            workers: &interval.workers,
            dyno_total_mb: None,
        };
        let cpu = Cpu {
            cpus: auto.cpus as f64,
            on_cpu,
        };
        let looks = std::mem::take(&mut auto.looks);
        let traffic = Traffic {
            samples: looks.looks,
            busy_max: looks.busy_max,
            all_busy: looks.all_busy,
            backlog_max: looks.backlog_max,
            // The queue times are the metric lines' (the master takes those counters there).
            queue_p99_ms: None,
        };
        let advice = advise(
            platform,
            autoscale::HEADROOM,
            &measured,
            Some(cpu),
            Some(traffic),
        );
        let fits = advice
            .by_memory
            .min(advice.by_processes.unwrap_or(usize::MAX));
        // With the CPUs saturated by the workers already, more workers only queue for them
        // (a request that "waits" may be waiting for a CPU): do not grow.
        let saturated = interval.cpu_secs >= 0.9 * interval.secs * auto.cpus as f64;
        let advised = autoscale::advised(
            self.target,
            advice.workers,
            advice.range,
            fits,
            on_cpu.is_some(),
            saturated,
        );
        let bounds = autoscale::bounds(auto.cpus);
        let next = auto.resizer.next(self.target, advised, fits, bounds);
        self.log_resize(next, advised, &advice, quota_mib, on_cpu, looks.busy_max);
        if let Some(n) = next {
            self.target = n;
        }
    }

    /// Logs an evaluation: at info when it changes the count (with the figures behind the
    /// change and the bound that decided, for the operator who wonders why), at debug
    /// otherwise.
    fn log_resize(
        &self,
        next: Option<usize>,
        advised: usize,
        advice: &Advice,
        quota_mib: f64,
        on_cpu: Option<f64>,
        busy_max: usize,
    ) {
        let dash = || "-".to_string();
        let figures = (
            format!("{:.2}", advice.per_worker_mb),
            format!("{:.2}", advice.base_mb),
            format!("{quota_mib:.2}"),
            on_cpu.map_or_else(dash, |f| format!("{f:.2}")),
            advice.range.map_or_else(dash, |(l, h)| format!("{l}..{h}")),
            format!("{:.2}", advice.kernel_mb),
        );
        match next {
            Some(n) => {
                info!(
                    workers = n,
                    from = self.target,
                    advised,
                    limit = advice.limit.as_str(),
                    range = figures.4.as_str(),
                    by_memory = advice.by_memory,
                    by_cpu = advice.by_cpu.map_or_else(dash, |n| n.to_string()).as_str(),
                    by_processes = advice
                        .by_processes
                        .map_or_else(dash, |n| n.to_string())
                        .as_str(),
                    busy_max,
                    worker_mb = figures.0.as_str(),
                    kernel_mb = figures.5.as_str(),
                    base_mb = figures.1.as_str(),
                    quota_mb = figures.2.as_str(),
                    on_cpu = figures.3.as_str(),
                    reason = advice.reason().as_str(),
                    "auto: resizing the pool"
                );
            }
            None => debug!(
                workers = self.target,
                advised,
                limit = advice.limit.as_str(),
                range = figures.4.as_str(),
                by_memory = advice.by_memory,
                busy_max,
                worker_mb = figures.0.as_str(),
                on_cpu = figures.3.as_str(),
                "auto: evaluated"
            ),
        }
    }
}

impl Auto {
    /// Measures the workers over the interval since the last evaluation, and remembers their
    /// counters for the next one. Only this image's ready workers that are not stopping count
    /// (an adopted worker's slot is in a scoreboard this image cannot see).
    fn measure(&mut self, workers: &[Worker], scoreboard: &Scoreboard, now: Instant) -> Interval {
        let ticks = sys::clock_ticks_per_sec();
        let (mut footprints, mut seen) = (Vec::new(), Vec::new());
        // How CPU-bound the requests are: the time the workers ran on a CPU or waited on a
        // run queue for one, over the time they spent serving. Counting the wait matters:
        // on a machine whose CPUs are busy (other processes, or too many workers), a
        // computing request spends much of its time waiting for a CPU, and would otherwise
        // look like one waiting on I/O and ask for still more workers.
        let (mut cpu_secs, mut demand_secs, mut busy_secs) = (0.0, 0.0, 0.0);
        for w in workers {
            if w.adopted || w.stop_sent.is_some() || w.killed.is_some() || !w.ready {
                continue;
            }
            let view = scoreboard.slot(w.slot).view();
            let (Some(mem), Some((ran, wanted))) = (
                memory::read_memory(w.pid.as_raw()),
                memory::read_cpu_demand_ns(w.pid.as_raw(), ticks),
            ) else {
                continue;
            };
            seen.push((w.pid, ran, wanted, view.busy_us));
            if let Some(&(_, ran0, wanted0, busy0)) = self.last.iter().find(|(p, ..)| *p == w.pid) {
                cpu_secs += ran.saturating_sub(ran0) as f64 / 1e9;
                demand_secs += wanted.saturating_sub(wanted0) as f64 / 1e9;
                busy_secs += view.busy_us.saturating_sub(busy0) as f64 / 1e6;
            }
            if view.requests > 0 {
                footprints.push(footprint(&mem, memory::read_tasks(w.pid.as_raw())));
            }
        }
        self.last = seen;
        let secs = now.duration_since(self.last_at).as_secs_f64();
        self.last_at = now;
        Interval {
            workers: footprints,
            cpu_secs,
            demand_secs,
            busy_secs,
            secs,
        }
    }
}

/// What the workers did between two evaluations of `--workers auto`.
struct Interval {
    /// The memory of each worker that has served traffic.
    workers: Vec<ProcessMemory>,
    /// Seconds the workers ran on a CPU.
    cpu_secs: f64,
    /// Seconds the workers ran on a CPU or waited on a run queue for one.
    demand_secs: f64,
    /// Seconds the workers spent serving requests.
    busy_secs: f64,
    /// The interval's length in seconds.
    secs: f64,
}
