//! The sampler: every `--metrics-interval` seconds the master asks it for the metric lines,
//! in Heroku's `log-runtime-metrics` vocabulary (`docs/metrics.md`).
//!
//! Rendering is pure ([`render_load`], [`render_memory`], ...); gathering reads only the
//! `/proc` and cgroup files of the server's own processes, and the scoreboard's counters
//! (atomic swaps, no syscall).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::cgroup::{self, CgroupMemory, CgroupVersion};
use super::load::{LOAD_SAMPLE_SECS, LoadAvg, is_active};
use super::tally::Tally;
use super::tcp::ListenQueue;
use crate::procfs::{self as proc, ProcMemory, ProcTasks};
use crate::scoreboard::{Counters, Scoreboard, WorkerState};

/// `source=` and `dyno=` of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `$DYNO` (`web.1` on Heroku), else `web.1`.
    pub source: String,
    /// `$HEROKU_DYNO_ID` (Heroku's dyno metadata), else the host name.
    pub dyno: String,
}

impl Identity {
    /// From the environment (`env` looks a variable up) and the host name.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, hostname: String) -> Identity {
        let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
        Identity {
            source: non_empty("DYNO").unwrap_or_else(|| "web.1".into()),
            dyno: non_empty("HEROKU_DYNO_ID").unwrap_or(hostname),
        }
    }

    fn prefix(&self) -> String {
        let mut s = String::with_capacity(64);
        crate::log::push_pair(&mut s, "source", &self.source);
        crate::log::push_pair(&mut s, "dyno", &self.dyno);
        s
    }
}

/// Bytes as Heroku's `MB` (2^20 bytes), two decimals.
pub fn mb(bytes: u64) -> String {
    format!("{:.2}MB", bytes as f64 / f64::from(1 << 20))
}

fn ms(us: u64) -> String {
    format!("{:.3}ms", us as f64 / 1000.0)
}

/// Where the dyno-level memory figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFrom {
    /// The server's own cgroup (as on a dyno or in a container).
    Cgroup(CgroupVersion),
    /// Sums of PSS over the server's processes (the cgroup is shared with other programs).
    Processes,
}

/// The dyno-level memory line's figures: the cgroup's own, or the same figures summed over
/// the server's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynoMemory {
    /// The figures (RSS, cache, swap, page counters, quota).
    pub figures: CgroupMemory,
    /// Where they came from.
    pub from: MemoryFrom,
}

impl DynoMemory {
    /// From the server's cgroup.
    pub fn from_cgroup(figures: CgroupMemory, version: CgroupVersion) -> DynoMemory {
        DynoMemory {
            figures,
            from: MemoryFrom::Cgroup(version),
        }
    }

    /// Summed over the server's processes: PSS, so that pages shared copy-on-write between
    /// the master and the workers count once; SwapPss likewise. No page cache or page
    /// counters can be attributed to processes, so those are 0 and absent.
    pub fn from_processes(procs: &[ProcMemory], quota_bytes: Option<u64>) -> DynoMemory {
        let figures = CgroupMemory {
            rss_bytes: procs.iter().map(|p| p.pss_kib * 1024).sum(),
            cache_bytes: 0,
            swap_bytes: procs.iter().map(|p| p.swap_pss_kib * 1024).sum(),
            pgpgin_pages: None,
            pgpgout_pages: None,
            quota_bytes,
        };
        DynoMemory {
            figures,
            from: MemoryFrom::Processes,
        }
    }
}

/// One worker as sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSample {
    /// Its slot.
    pub slot: usize,
    /// Its pid.
    pub pid: i32,
    /// Its memory (`None` if it could not be read, e.g. it just exited).
    pub memory: Option<ProcMemory>,
    /// Its page tables and threads (`None` if they could not be read).
    pub tasks: Option<ProcTasks>,
    /// Requests served since it started.
    pub requests: u64,
    /// Time since it was forked.
    pub age: Duration,
}

/// The request line's figures for one interval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Counters of every worker over the interval.
    pub counters: Counters,
    /// The listen queue (summed over TCP listeners), if any was readable.
    pub backlog: Option<ListenQueue>,
    /// Workers serving a request at sample time.
    pub busy: usize,
    /// Workers waiting for a connection at sample time.
    pub idle: usize,
    /// Requests the workers were serving at sample time (at most one per busy worker, unless
    /// an async app serves several at once: `--worker-connections`).
    pub in_flight: u64,
}

/// `sample#load_avg_1m/5m/15m`.
pub fn render_load(id: &Identity, avg: [f64; 3]) -> String {
    format!(
        "{} sample#load_avg_1m={:.2} sample#load_avg_5m={:.2} sample#load_avg_15m={:.2}",
        id.prefix(),
        avg[0],
        avg[1],
        avg[2]
    )
}

/// The dyno-level memory line, Heroku's keys: `memory_total` is RSS + cache + swap.
pub fn render_memory(id: &Identity, dyno: &DynoMemory) -> String {
    let m = &dyno.figures;
    let mut s = id.prefix();
    let total = m.rss_bytes + m.cache_bytes + m.swap_bytes;
    let _ = write!(
        s,
        " sample#memory_total={} sample#memory_rss={} sample#memory_cache={} sample#memory_swap={}",
        mb(total),
        mb(m.rss_bytes),
        mb(m.cache_bytes),
        mb(m.swap_bytes)
    );
    if let Some(p) = m.pgpgin_pages {
        let _ = write!(s, " sample#memory_pgpgin={p}pages");
    }
    if let Some(p) = m.pgpgout_pages {
        let _ = write!(s, " sample#memory_pgpgout={p}pages");
    }
    if let Some(q) = m.quota_bytes {
        let _ = write!(s, " sample#memory_quota={}", mb(q));
    }
    s
}

fn push_process_memory(s: &mut String, m: &ProcMemory) {
    let _ = write!(
        s,
        " sample#memory_rss={} sample#memory_pss={} sample#memory_uss={} sample#memory_swap={}",
        mb(m.rss_kib * 1024),
        mb(m.pss_kib * 1024),
        mb(m.uss_kib * 1024),
        mb(m.swap_kib * 1024)
    );
}

/// `sample#memory_pte` and `sample#threads`, each when known.
fn push_tasks(s: &mut String, t: Option<&ProcTasks>) {
    let Some(t) = t else { return };
    if let Some(kib) = t.page_tables_kib {
        let _ = write!(s, " sample#memory_pte={}", mb(kib * 1024));
    }
    if let Some(n) = t.threads {
        let _ = write!(s, " sample#threads={n}");
    }
}

/// One worker's line.
pub fn render_worker(id: &Identity, w: &WorkerSample) -> String {
    let mut s = id.prefix();
    let _ = write!(s, " worker={} pid={}", w.slot, w.pid);
    if let Some(m) = &w.memory {
        push_process_memory(&mut s, m);
    }
    push_tasks(&mut s, w.tasks.as_ref());
    let _ = write!(
        s,
        " sample#requests={} sample#age={}s",
        w.requests,
        w.age.as_secs()
    );
    s
}

/// The master's line.
pub fn render_master(
    id: &Identity,
    pid: i32,
    memory: &ProcMemory,
    tasks: Option<&ProcTasks>,
    workers: usize,
) -> String {
    let mut s = id.prefix();
    let _ = write!(s, " process=master pid={pid}");
    push_process_memory(&mut s, memory);
    push_tasks(&mut s, tasks);
    let _ = write!(s, " sample#workers={workers}");
    s
}

/// p50, p95, p99 and the max of a histogram, in µs, as the request line prints them; `None`
/// when it is empty.
pub fn quantiles(h: &crate::histogram::Histogram, max: u64) -> Option<[u64; 4]> {
    let (p50, p95, p99) = (h.quantile(0.5)?, h.quantile(0.95)?, h.quantile(0.99)?);
    // A bucket's midpoint may lie above the largest value seen: clamp to it. The max and the
    // histogram are taken word by word, so a response counted meanwhile can land its bucket
    // and its max in different intervals: never report a max below the highest bucket's
    // lower bound.
    let max = max.max(h.highest_lower_bound());
    Some([p50.min(max), p95.min(max), p99.min(max), max])
}

/// The request line for one interval. Percentiles are omitted when there was nothing to
/// measure (no request, or no `X-Request-Start` for the queue figures).
pub fn render_requests(id: &Identity, r: &RequestStats) -> String {
    let c = &r.counters;
    let mut s = id.prefix();
    let _ = write!(s, " count#requests={}", c.requests());
    for (class, n) in c.status.iter().enumerate() {
        let _ = write!(s, " count#requests_{}xx={n}", class + 1);
    }
    let quantiles = |s: &mut String,
                     name: &str,
                     h: &crate::histogram::Histogram,
                     max: u64,
                     sum: u64| {
        if let Some([p50, p95, p99, max]) = quantiles(h, max) {
            let _ = write!(
                s,
                " sample#{name}_p50={} sample#{name}_p95={} sample#{name}_p99={} sample#{name}_max={} sample#{name}_mean={}",
                ms(p50),
                ms(p95),
                ms(p99),
                ms(max),
                ms(mean_us(sum, h.count()))
            );
        }
    };
    quantiles(
        &mut s,
        "service",
        &c.service,
        c.service_max_us,
        c.service_sum_us,
    );
    let _ = write!(s, " count#queued_requests={}", c.queue.count());
    quantiles(&mut s, "queue", &c.queue, c.queue_max_us, c.queue_sum_us);
    if let Some(b) = r.backlog {
        let _ = write!(
            s,
            " sample#backlog={} sample#backlog_limit={}",
            b.depth, b.limit
        );
    }
    let _ = write!(
        s,
        " sample#workers_busy={} sample#workers_idle={} sample#requests_in_flight={}",
        r.busy, r.idle, r.in_flight
    );
    s
}

/// The mean of `count` times that add up to `sum_us` µs, rounded to the µs (the percentiles
/// come from buckets; the mean is exact: each slot sums its times).
pub fn mean_us(sum_us: u64, count: u64) -> u64 {
    (sum_us + count / 2).checked_div(count).unwrap_or(0)
}

/// The master as sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterSample {
    /// Its pid.
    pub pid: i32,
    /// Its memory.
    pub memory: ProcMemory,
    /// Its page tables and threads (`None` if they could not be read).
    pub tasks: Option<ProcTasks>,
}

/// How a worker ended, as the master saw it when it reaped it. Each end has one reason,
/// the first that applies in this order: timeout, failed, memory, stopped, max_requests,
/// exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEnd {
    /// The master killed it for `--timeout` (a stuck request or a stuck boot).
    Timeout,
    /// It failed: a non-zero exit, or a signal the master did not send (a crash, the OOM
    /// killer).
    Failed,
    /// The master replaced it for `--max-worker-memory`.
    Memory,
    /// The master asked it to stop (HUP, TTOU, WINCH, `--workers auto`, a stop, the end of an
    /// upgrade), or killed it at a stop's deadline or in a quick stop.
    Stopped,
    /// It exited 0 unasked once it had served its `--max-requests`.
    MaxRequests,
    /// It exited 0 unasked for another reason (a TERM from outside the server).
    Exited,
}

impl WorkerEnd {
    /// Every reason, in the order of [`WorkerEnds`]'s counts.
    pub const ALL: [WorkerEnd; 6] = [
        WorkerEnd::Timeout,
        WorkerEnd::Failed,
        WorkerEnd::Memory,
        WorkerEnd::Stopped,
        WorkerEnd::MaxRequests,
        WorkerEnd::Exited,
    ];

    /// The reason as a label value (`runicorn_worker_exits_total{reason=...}`).
    pub fn label(self) -> &'static str {
        match self {
            WorkerEnd::Timeout => "timeout",
            WorkerEnd::Failed => "failed",
            WorkerEnd::Memory => "memory",
            WorkerEnd::Stopped => "stopped",
            WorkerEnd::MaxRequests => "max_requests",
            WorkerEnd::Exited => "exited",
        }
    }
}

/// Workers that ended, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerEnds {
    counts: [u64; WorkerEnd::ALL.len()],
}

impl WorkerEnds {
    /// Counts one.
    pub fn count(&mut self, end: WorkerEnd) {
        self.counts[end as usize] += 1;
    }

    /// How many ended for `end`.
    pub fn of(&self, end: WorkerEnd) -> u64 {
        self.counts[end as usize]
    }

    /// Every worker reaped.
    pub fn exits(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Everything one interval's sample holds: the metric lines and the StatsD datagrams are both
/// rendered from it, so their figures agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The load averages (1, 5 and 15 minutes).
    pub load: [f64; 3],
    /// The dyno-level memory.
    pub dyno: DynoMemory,
    /// The master (`None` if its memory could not be read).
    pub master: Option<MasterSample>,
    /// Worker processes forked and not yet reaped.
    pub worker_count: usize,
    /// Each live worker.
    pub workers: Vec<WorkerSample>,
    /// The interval's requests.
    pub requests: RequestStats,
    /// Workers that ended during the interval.
    pub ends: WorkerEnds,
}

impl Sample {
    /// The metric lines, in their documented order: load, dyno memory, master, workers,
    /// requests.
    pub fn lines(&self, id: &Identity) -> Vec<String> {
        let mut lines = vec![render_load(id, self.load)];
        lines.push(render_memory(id, &self.dyno));
        if let Some(m) = &self.master {
            lines.push(render_master(
                id,
                m.pid,
                &m.memory,
                m.tasks.as_ref(),
                self.worker_count,
            ));
        }
        lines.extend(self.workers.iter().map(|w| render_worker(id, w)));
        lines.push(render_requests(id, &self.requests));
        lines
    }
}

/// A worker as the master knows it, for one sample.
#[derive(Debug, Clone, Copy)]
pub struct LiveWorker {
    /// Its slot.
    pub slot: usize,
    /// Its pid.
    pub pid: i32,
    /// When it was forked.
    pub spawned_at: Instant,
}

/// The master's sampler: the interval clock and the load average. The interval's counters
/// come from the master's [`Tally`].
pub struct Sampler {
    id: Identity,
    interval: Duration,
    next_sample: Instant,
    next_load: Instant,
    load: LoadAvg,
    /// The memory cgroup of the server (`/` in a container with its own cgroup namespace,
    /// and on a host outside any cgroup; the ownership check tells the two apart).
    cgroup: Option<(CgroupVersion, PathBuf)>,
    last_from: Option<MemoryFrom>,
}

impl Sampler {
    /// A sampler printing every `interval`, starting one interval from now.
    pub fn new(id: Identity, interval: Duration) -> Sampler {
        let cgroup = cgroup::own();
        let now = Instant::now();
        Sampler {
            id,
            interval,
            next_sample: now + interval,
            next_load: now + Duration::from_secs(LOAD_SAMPLE_SECS),
            load: LoadAvg::default(),
            cgroup,
            last_from: None,
        }
    }

    /// When the sampler next needs the master (a load sample or a print).
    pub fn next_deadline(&self) -> Instant {
        self.next_sample.min(self.next_load)
    }

    /// The `source=` and `dyno=` of the metric lines.
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Does the periodic work due at `now`: a load sample every 5 s, and every interval the
    /// sample, returned for the master to print and push. The interval's counters are what
    /// `tally` holds pending, after draining the live workers' slots into it.
    pub fn tick(
        &mut self,
        now: Instant,
        master_pid: i32,
        workers: &[LiveWorker],
        board: &Scoreboard,
        backlog: Option<ListenQueue>,
        tally: &mut Tally,
    ) -> Option<Sample> {
        if now >= self.next_load {
            self.next_load += Duration::from_secs(LOAD_SAMPLE_SECS);
            if self.next_load <= now {
                self.next_load = now + Duration::from_secs(LOAD_SAMPLE_SECS);
            }
            self.load.sample(self.active_tasks(master_pid, workers));
        }
        if now < self.next_sample {
            return None;
        }
        self.next_sample += self.interval;
        if self.next_sample <= now {
            self.next_sample = now + self.interval;
        }

        let master_mem = proc::read_memory(master_pid);
        let samples: Vec<WorkerSample> = workers
            .iter()
            .map(|w| WorkerSample {
                slot: w.slot,
                pid: w.pid,
                memory: proc::read_memory(w.pid),
                tasks: proc::read_tasks(w.pid),
                requests: board.slot(w.slot).view().requests,
                age: now.saturating_duration_since(w.spawned_at),
            })
            .collect();
        let dyno = self.dyno_memory(master_pid, workers, master_mem.as_ref(), &samples);

        tally.drain(board, workers.iter().map(|w| w.slot));
        let (counters, ends) = tally.take_pending();
        let mut stats = RequestStats {
            counters,
            backlog,
            ..RequestStats::default()
        };
        for w in workers {
            let view = board.slot(w.slot).view();
            match view.state {
                WorkerState::Busy => stats.busy += 1,
                WorkerState::Idle => stats.idle += 1,
                _ => {}
            }
            stats.in_flight += view.in_flight;
        }

        Some(Sample {
            load: self.load.averages(),
            dyno,
            master: master_mem.map(|memory| MasterSample {
                pid: master_pid,
                memory,
                tasks: proc::read_tasks(master_pid),
            }),
            worker_count: workers.len(),
            workers: samples,
            requests: stats,
            ends,
        })
    }

    /// The server's runnable processes (R or D), as the kernel's load average counts them;
    /// the master itself is left out: it is always running while it looks.
    fn active_tasks(&self, master_pid: i32, workers: &[LiveWorker]) -> u64 {
        let owned = self.owned_cgroup_procs(master_pid, workers);
        let pids: Vec<i32> = match owned {
            Some(procs) => procs.into_iter().filter(|&p| p != master_pid).collect(),
            None => workers.iter().map(|w| w.pid).collect(),
        };
        pids.iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .filter_map(|t| proc::parse_stat_state(&t))
            .filter(|&s| is_active(s))
            .count() as u64
    }

    /// The pids of the server's cgroup when the server owns it, as on a dyno or in a
    /// container: every process in it is the master, a worker or a descendant of one, or an
    /// ancestor of the master (a wrapper shell, the container's init). A cgroup shared with
    /// other programs (a login session, a CI job, the host's root) is not the server's.
    fn owned_cgroup_procs(&self, master_pid: i32, workers: &[LiveWorker]) -> Option<Vec<i32>> {
        let (_, dir) = self.cgroup.as_ref()?;
        let procs = cgroup::read_procs(dir)?;
        let ours = |p: i32| p == master_pid || workers.iter().any(|w| w.pid == p);
        let ancestors = ancestors_of(master_pid);
        let owned = procs
            .iter()
            .all(|&p| ancestors.contains(&p) || ancestors_of(p).into_iter().any(ours) || ours(p));
        owned.then_some(procs)
    }

    fn dyno_memory(
        &mut self,
        master_pid: i32,
        workers: &[LiveWorker],
        master: Option<&ProcMemory>,
        samples: &[WorkerSample],
    ) -> DynoMemory {
        let from_cgroup = self
            .cgroup
            .as_ref()
            .and_then(|(v, dir)| cgroup::read(*v, dir).map(|m| (*v, m)));
        let owned = self.owned_cgroup_procs(master_pid, workers).is_some();
        let dyno = match from_cgroup {
            Some((v, m)) if owned => DynoMemory::from_cgroup(m, v),
            other => {
                let procs: Vec<ProcMemory> = master
                    .into_iter()
                    .copied()
                    .chain(samples.iter().filter_map(|w| w.memory))
                    .collect();
                DynoMemory::from_processes(&procs, other.and_then(|(_, m)| m.quota_bytes))
            }
        };
        if self.last_from != Some(dyno.from) {
            self.last_from = Some(dyno.from);
            match (dyno.from, &self.cgroup) {
                (MemoryFrom::Cgroup(v), Some((_, dir))) => tracing::info!(
                    cgroup = %dir.display(), version = ?v,
                    "metrics: dyno memory from the server's cgroup"
                ),
                _ => {
                    tracing::info!("metrics: dyno memory summed over the server's processes (PSS)")
                }
            }
        }
        dyno
    }
}

/// The chain of parents of `pid` (nearest first), up to 32 levels or pid 1.
fn ancestors_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut p = pid;
    while out.len() < 32 {
        let Some(parent) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|t| parent_pid(&t))
        else {
            break;
        };
        if parent <= 0 {
            break;
        }
        out.push(parent);
        if parent == 1 {
            break;
        }
        p = parent;
    }
    out
}

/// The parent pid from the text of `/proc/<pid>/stat`.
fn parent_pid(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests;
