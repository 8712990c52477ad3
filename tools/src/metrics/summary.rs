//! What `runicorn metrics` keeps of the lines it has read, per dyno (`source`), and the
//! summary and chart it makes of them.
//!
//! [`Tracker::feed`] takes one [`Record`] at a time and says when a sample set is complete
//! (runicorn's request line, or the platform's memory line); [`Tracker::summary`] and
//! [`Tracker::chart`] are pure renderings of what was kept. No I/O here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::parse::{DynoFigures, Event, Origin, ProcFigures, Record, RequestFigures, format_time};
use crate::chart::{Chart, Panel, Series};
use crate::cli::plural;
use runicorn::internals::advice::{
    self, Advice, Cpu, DYNO_SIZES, Demand, Measured, Platform, ProcessMemory, Traffic,
};

/// Settings that change the advice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The quota to advise for when the lines carry none (`--quota`).
    pub quota_mb: Option<f64>,
    /// The share of the quota kept free (`--headroom`).
    pub headroom: f64,
    /// The dyno's CPUs (`--cpus`): with it the advice is capped by CPU too, or says why not.
    pub cpus: Option<f64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            quota_mb: None,
            headroom: advice::DEFAULT_HEADROOM,
            cpus: None,
        }
    }
}

/// A point of a memory history: when (if known), its sample number, the figure.
type Point = (Option<f64>, usize, f64);

/// The dyno memory as one writer (the platform or runicorn) reports it.
#[derive(Debug, Clone, Default)]
struct MemoryTrack {
    now: Option<DynoFigures>,
    peak_total: f64,
    quota: Option<f64>,
    history: Vec<Point>,
}

impl MemoryTrack {
    fn add(&mut self, time: Option<f64>, m: DynoFigures) {
        self.peak_total = self.peak_total.max(m.total);
        self.quota = m.quota.or(self.quota);
        self.history.push((time, self.history.len(), m.total));
        self.now = Some(m);
    }
}

#[derive(Debug, Clone, Default)]
struct WorkerState {
    pid: Option<i64>,
    memory: ProcFigures,
    peak_uss: f64,
    peak_pte: Option<f64>,
    requests: Option<u64>,
    age: Option<f64>,
    seen: bool,
}

/// Everything kept about one dyno.
#[derive(Debug, Clone, Default)]
struct Dyno {
    dyno_id: Option<String>,
    restarts: usize,
    platform: MemoryTrack,
    server: MemoryTrack,
    load_1m: Option<f64>,
    /// Sums for the CPU estimate: runicorn's load (its own processes) and busy workers.
    load_sum: f64,
    busy_sum: f64,
    busy_samples: usize,
    busy_max: u64,
    saturated: usize,
    backlog_max: u64,
    master: Option<(Option<i64>, ProcFigures, Option<u64>)>,
    workers: BTreeMap<u64, WorkerState>,
    in_set: bool,
    uss_history: Vec<Point>,
    requests: Option<RequestFigures>,
    sets: usize,
    total_requests: u64,
    total_5xx: u64,
    max_service_p99: Option<f64>,
    max_queue_p95: Option<f64>,
    max_queue_p99: Option<f64>,
    r14: usize,
    r15: usize,
    oom_kills: usize,
    over_limit: usize,
    process_running: Option<(f64, Option<f64>)>,
}

impl Dyno {
    /// The quota: the platform's, runicorn's, else the one `Process running` implies.
    fn quota(&self) -> Option<f64> {
        self.platform.quota.or(self.server.quota).or_else(|| {
            let (mem, percent) = self.process_running?;
            let quota = mem / percent? * 100.0;
            Some(advice::dyno_size_of(quota).map_or(quota.round(), |d| d.quota_mb))
        })
    }

    fn start_set(&mut self) {
        if !self.in_set {
            self.in_set = true;
            for w in self.workers.values_mut() {
                w.seen = false;
            }
        }
    }

    /// The per-process figures the advice needs, if runicorn's lines gave them.
    fn measured(&self) -> Option<(ProcessMemory, Vec<ProcessMemory>)> {
        let (_, master, _) = self.master.as_ref()?;
        let master = ProcessMemory {
            pss_mb: master.pss?,
            uss_mb: master.uss.unwrap_or(0.0),
            page_tables_mb: master.pte,
            threads: master.threads.map(|n| n as usize),
        };
        let workers: Vec<ProcessMemory> = self
            .workers
            .values()
            .filter_map(|w| {
                Some(ProcessMemory {
                    pss_mb: w.memory.pss?,
                    // The largest this worker has been: shared pages turn private as
                    // the app writes them.
                    uss_mb: w.memory.uss?.max(w.peak_uss),
                    page_tables_mb: w.peak_pte,
                    threads: w.memory.threads.map(|n| n as usize),
                })
            })
            .collect();
        (!workers.is_empty()).then_some((master, workers))
    }

    /// The share of busy time spent on a CPU, from runicorn's load average and busy
    /// workers: a busy worker that computes is runnable (counted in the load), one that
    /// waits on I/O sleeps (not counted).
    fn on_cpu(&self) -> Option<f64> {
        if self.busy_samples == 0 {
            return None;
        }
        let busy = self.busy_sum / self.busy_samples as f64;
        let load = self.load_sum / self.busy_samples as f64;
        (busy >= 0.1).then(|| (load / busy).clamp(0.0, 1.0))
    }

    /// What the request lines say of the traffic: busy workers, waiting connections and
    /// queue times over every sample; `None` without a `workers_busy` figure.
    fn traffic(&self) -> Option<Traffic> {
        (self.busy_samples > 0).then_some(Traffic {
            samples: self.busy_samples,
            busy_max: self.busy_max as usize,
            all_busy: self.saturated,
            backlog_max: self.backlog_max as usize,
            queue_p99_ms: self.max_queue_p99,
        })
    }

    fn advise(&self, platform: Platform, opts: &Options) -> Option<Advice> {
        let (master, workers) = self.measured()?;
        let measured = Measured {
            master,
            workers: &workers,
            dyno_total_mb: self.platform.now.or(self.server.now).map(|m| m.total),
        };
        let cpu = opts.cpus.map(|cpus| Cpu {
            cpus,
            on_cpu: self.on_cpu(),
        });
        Some(advice::advise(
            platform,
            opts.headroom,
            &measured,
            cpu,
            self.traffic(),
        ))
    }
}

/// One dyno's advice, for the dashboard ([`Tracker::advice_report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DynoAdvice {
    /// The dyno (`web.1`).
    pub source: String,
    /// The quota advised for: the dyno's own, else `--quota`, else 512 MB.
    pub quota_mb: f64,
    /// The dyno size that quota is, if it is one.
    pub size: Option<&'static str>,
    /// The advised `WEB_CONCURRENCY` (the range's low end when `range` is set).
    pub workers: usize,
    /// The range of counts that serve the traffic seen, when no single number can be said.
    pub range: Option<(usize, usize)>,
    /// What bound it, in words.
    pub reason: String,
    /// `(dyno size, advice, what bound it)` for each dyno size.
    pub by_size: Vec<(&'static str, String, &'static str)>,
    /// The summary's advice lines: the figures behind the count.
    pub lines: Vec<String>,
}

/// What has been read so far.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    opts: Options,
    dynos: BTreeMap<String, Dyno>,
    last_source: Option<String>,
    lines: usize,
    sets: usize,
    first_time: Option<f64>,
    last_time: Option<f64>,
}

impl Tracker {
    /// An empty tracker.
    pub fn new(opts: Options) -> Tracker {
        Tracker {
            opts,
            ..Tracker::default()
        }
    }

    /// Lines used so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Sample sets completed so far.
    pub fn sets(&self) -> usize {
        self.sets
    }

    /// Keeps what `rec` says; `true` when it completes a sample set (runicorn's request
    /// line, or the platform's dyno memory line).
    pub fn feed(&mut self, rec: Record) -> bool {
        if matches!(rec.event, Event::WorkerEnd { .. } | Event::Started) {
            // Marks on the dashboard's time axis; nothing the summary counts.
            return false;
        }
        self.lines += 1;
        // A line without a source (a bare log line of runicorn's) belongs to the dyno of
        // the lines around it.
        let source = rec
            .source
            .or_else(|| self.last_source.clone())
            .unwrap_or_else(|| "web.1".to_string());
        self.last_source = Some(source.clone());
        if let Some(t) = rec.time {
            self.first_time = Some(self.first_time.map_or(t, |f| f.min(t)));
            self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
        }
        let d = self.dynos.entry(source).or_default();
        if let Some(id) = rec.dyno_id {
            if d.dyno_id.as_ref().is_some_and(|old| *old != id) {
                d.restarts += 1;
            }
            d.dyno_id = Some(id);
        }
        let complete = match rec.event {
            Event::Load { avg_1m } => {
                d.load_1m = avg_1m.or(d.load_1m);
                false
            }
            Event::DynoMemory(m) => match rec.origin {
                Origin::Platform => {
                    d.platform.add(rec.time, m);
                    true
                }
                Origin::App => {
                    d.server.add(rec.time, m);
                    false
                }
            },
            Event::Master {
                pid,
                memory,
                workers,
            } => {
                d.start_set();
                d.master = Some((pid, memory, workers));
                false
            }
            Event::Worker {
                slot,
                pid,
                memory,
                requests,
                age,
            } => {
                d.start_set();
                let w = d.workers.entry(slot).or_default();
                if w.pid != pid {
                    w.peak_uss = 0.0;
                    w.peak_pte = None;
                }
                w.pid = pid;
                w.memory = memory;
                w.peak_uss = w.peak_uss.max(memory.uss.unwrap_or(0.0));
                if let Some(pte) = memory.pte {
                    w.peak_pte = Some(w.peak_pte.map_or(pte, |p| p.max(pte)));
                }
                w.requests = requests;
                w.age = age;
                w.seen = true;
                false
            }
            Event::Requests(r) => {
                if d.in_set {
                    d.workers.retain(|_, w| w.seen);
                    d.in_set = false;
                }
                let largest_uss = d.workers.values().map(|w| w.peak_uss).fold(0.0, f64::max);
                if !d.workers.is_empty() {
                    d.uss_history.push((rec.time, d.sets, largest_uss));
                }
                d.sets += 1;
                d.total_requests += r.requests;
                d.total_5xx += r.requests_5xx;
                if let Some([_, _, p99]) = r.service {
                    d.max_service_p99 = Some(d.max_service_p99.map_or(p99, |m| m.max(p99)));
                }
                if let Some([_, p95, p99]) = r.queue {
                    d.max_queue_p95 = Some(d.max_queue_p95.map_or(p95, |m| m.max(p95)));
                    d.max_queue_p99 = Some(d.max_queue_p99.map_or(p99, |m| m.max(p99)));
                }
                if let Some((n, _)) = r.backlog {
                    d.backlog_max = d.backlog_max.max(n);
                }
                if let Some(busy) = r.busy {
                    d.busy_sum += busy as f64;
                    d.load_sum += d.load_1m.unwrap_or(0.0);
                    d.busy_samples += 1;
                    d.busy_max = d.busy_max.max(busy);
                    if r.idle == Some(0) && busy > 0 {
                        d.saturated += 1;
                    }
                }
                d.requests = Some(r);
                true
            }
            Event::ProcessRunning { mem, percent } => {
                d.process_running = Some((mem, percent));
                false
            }
            Event::R14 => {
                d.r14 += 1;
                false
            }
            Event::R15 => {
                d.r15 += 1;
                false
            }
            Event::WorkerOom => {
                d.oom_kills += 1;
                false
            }
            Event::WorkerOverLimit => {
                d.over_limit += 1;
                false
            }
            Event::WorkerEnd { .. } | Event::Started => false,
        };
        if complete {
            self.sets += 1;
        }
        complete
    }

    /// The advice for each dyno that has runicorn's per-process lines: `(source, quota,
    /// advice)`, the quota being the dyno's own, else `--quota`, else 512 MB (with the
    /// process limit of the dyno size that quota is, if it is one).
    pub fn advice(&self) -> Vec<(String, f64, Advice)> {
        self.dynos
            .iter()
            .filter_map(|(source, d)| {
                let quota = d.quota().or(self.opts.quota_mb).unwrap_or(512.0);
                let a = d.advise(Platform::for_quota(quota), &self.opts)?;
                Some((source.clone(), quota, a))
            })
            .collect()
    }

    /// The advice as the dashboard shows it: for each dyno with runicorn's per-process
    /// lines, the count for its own quota and for each dyno size, and the summary's advice
    /// lines (the figures behind it), from the same computation as [`Tracker::summary`].
    pub fn advice_report(&self) -> Vec<DynoAdvice> {
        self.dynos
            .iter()
            .filter_map(|(source, d)| {
                let quota = d.quota().or(self.opts.quota_mb);
                let quota_mb = quota.unwrap_or(512.0);
                let a = d.advise(Platform::for_quota(quota_mb), &self.opts)?;
                let by_size = DYNO_SIZES
                    .iter()
                    .filter_map(|size| {
                        let a = d.advise(Platform::from(*size), &self.opts)?;
                        Some((size.name, a.short(), a.limit.as_str()))
                    })
                    .collect();
                let mut text = String::new();
                self.render_advice(&mut text, d, quota);
                let lines = text
                    .lines()
                    .map(|l| {
                        l.trim_start_matches(' ')
                            .trim_start_matches("advice")
                            .trim_start()
                            .to_string()
                    })
                    .collect();
                Some(DynoAdvice {
                    source: source.clone(),
                    quota_mb,
                    size: advice::dyno_size_of(quota_mb).map(|s| s.name),
                    workers: a.workers,
                    range: a.range,
                    reason: a.reason(),
                    by_size,
                    lines,
                })
            })
            .collect()
    }

    /// The summary, one block per dyno under a heading line.
    pub fn summary(&self, heading: &str) -> String {
        let mut s = String::new();
        let span = match (self.first_time, self.last_time) {
            (Some(a), Some(b)) => format!(", {} to {}", format_time(a), format_time(b)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "== {heading}: {} dyno{}, {} sample set{}, {} line{}{span}",
            self.dynos.len(),
            plural(self.dynos.len()),
            self.sets,
            plural(self.sets),
            self.lines,
            plural(self.lines)
        );
        for (source, d) in &self.dynos {
            self.render_dyno(&mut s, source, d);
        }
        s
    }

    fn render_dyno(&self, s: &mut String, source: &str, d: &Dyno) {
        let id = d.dyno_id.as_deref().unwrap_or("?");
        let restarts = match d.restarts {
            0 => String::new(),
            n => format!(" ({n} restart{} seen)", plural(n)),
        };
        let _ = writeln!(s, "{source}  dyno {id}{restarts}");
        let quota = d.quota().or(self.opts.quota_mb);
        for (track, who) in [(&d.platform, "platform"), (&d.server, "runicorn")] {
            let Some(now) = track.now else { continue };
            let quota = track.quota.or(quota);
            let share =
                |mb: f64| quota.map_or(String::new(), |q| format!(" ({:.0} %)", mb / q * 100.0));
            let _ = writeln!(
                s,
                "  memory     {:.2} MB now{}, peak {:.2} MB{}, quota {}; swap {:.2} MB  [{who}, {} sample{}]",
                now.total,
                share(now.total),
                track.peak_total,
                share(track.peak_total),
                quota.map_or("unknown".to_string(), |q| format!("{q:.2} MB")),
                now.swap.unwrap_or(0.0),
                track.history.len(),
                plural(track.history.len())
            );
        }
        if let Some((mem, percent)) = d.process_running {
            let pct = percent.map_or(String::new(), |p| format!(" ({p:.1} % of the quota)"));
            let _ = writeln!(s, "  over quota last seen at {mem:.0} MB{pct}");
        }
        if let Some(load) = d.load_1m {
            let _ = writeln!(s, "  load 1m    {load:.2}");
        }
        if let Some((pid, m, workers)) = &d.master {
            let _ = writeln!(
                s,
                "  master     pid {}  pss {}  uss {}  workers {}",
                pid.map_or("?".into(), |p| p.to_string()),
                mb(m.pss),
                mb(m.uss),
                workers.map_or("?".into(), |w| w.to_string())
            );
        }
        for (slot, w) in &d.workers {
            let _ = writeln!(
                s,
                "  worker {slot:<3} pid {}  rss {}  pss {}  uss {} (peak {:.2} MB)  requests {}  age {}",
                w.pid.map_or("?".into(), |p| p.to_string()),
                mb(w.memory.rss),
                mb(w.memory.pss),
                mb(w.memory.uss),
                w.peak_uss,
                w.requests.map_or("?".into(), |r| r.to_string()),
                w.age.map_or("?".into(), |a| format!("{a:.0}s"))
            );
        }
        if let Some(r) = &d.requests {
            let ms3 = |t: Option<[f64; 3]>| {
                t.map_or("-".to_string(), |[_, p95, p99]| {
                    format!("p95 {p95:.3} ms p99 {p99:.3} ms")
                })
            };
            let _ = writeln!(
                s,
                "  requests   {} in the last interval ({} 5xx), {} in all ({} 5xx); service {} (worst p99 {})",
                r.requests,
                r.requests_5xx,
                d.total_requests,
                d.total_5xx,
                ms3(r.service),
                d.max_service_p99
                    .map_or("-".into(), |m| format!("{m:.3} ms"))
            );
            let _ = writeln!(
                s,
                "  queue      {} of {} requests carried X-Request-Start; {} (worst p95 {})",
                r.queued,
                r.requests,
                ms3(r.queue),
                d.max_queue_p95.map_or("-".into(), |m| format!("{m:.3} ms"))
            );
            let backlog = r.backlog.map_or(String::new(), |(n, limit)| {
                format!("; backlog {n} of {limit}")
            });
            let _ = writeln!(
                s,
                "  busy       {} busy, {} idle now; peak {} busy; all busy in {} of {} sample{}{backlog}",
                r.busy.map_or("?".into(), |b| b.to_string()),
                r.idle.map_or("?".into(), |b| b.to_string()),
                d.busy_max,
                d.saturated,
                d.busy_samples,
                plural(d.busy_samples)
            );
        }
        if d.over_limit > 0 {
            let _ = writeln!(
                s,
                "  recycled   {} worker{} over --max-worker-memory",
                d.over_limit,
                plural(d.over_limit)
            );
        }
        if d.r14 + d.r15 + d.oom_kills > 0 {
            let _ = writeln!(
                s,
                "  errors     R14 (over quota, swapping) {}, R15 (killed) {}, workers killed perhaps out of memory {}",
                d.r14, d.r15, d.oom_kills
            );
        }
        self.render_advice(s, d, quota);
    }

    fn render_advice(&self, s: &mut String, d: &Dyno, quota: Option<f64>) {
        let headroom = self.opts.headroom * 100.0;
        let quota_here = quota.or(self.opts.quota_mb);
        let here = Platform::for_quota(quota_here.unwrap_or(512.0));
        let Some(any) = d.advise(here, &self.opts) else {
            let _ = writeln!(
                s,
                "  advice     none yet: it needs runicorn's master and worker lines (sample#memory_pss, sample#memory_uss)"
            );
            return;
        };
        let tables = if any.page_tables_measured {
            "measured"
        } else {
            "estimated"
        };
        let _ = writeln!(
            s,
            "  advice     base {:.2} MB + {:.2} MB a worker (USS {:.2} MB + kernel {:.2} MB: page tables {:.2} MB {tables}, other kernel memory {:.2} MB estimated), {headroom:.0} % headroom",
            any.base_mb,
            any.per_worker_mb,
            any.uss_mb,
            any.kernel_mb,
            any.page_tables_mb,
            any.kernel_mb - any.page_tables_mb,
        );
        let _ = writeln!(s, "             traffic: {}", traffic_words(d, &any));
        match (any.cpu_note(), d.on_cpu()) {
            (Some(note), _) => {
                let _ = writeln!(s, "             cpu: {note}");
            }
            (None, Some(f)) => {
                let _ = writeln!(
                    s,
                    "             cpu: about {:.0} % of busy time on CPU (--cpus N to bound the advice by CPU)",
                    f * 100.0
                );
            }
            (None, None) => {}
        }
        if let Some(q) = quota_here {
            let size = advice::dyno_size_of(q).map_or(String::new(), |d| {
                let limit = d
                    .process_limit
                    .map_or(String::new(), |n| format!(", {n} processes"));
                format!(" ({}{limit})", d.name)
            });
            let _ = match any.range {
                None => writeln!(
                    s,
                    "             WEB_CONCURRENCY={} for this dyno's {q:.0} MB{size} ({})",
                    any.workers,
                    any.reason()
                ),
                Some(_) => writeln!(
                    s,
                    "             no single number for this dyno's {q:.0} MB{size}: {}",
                    any.reason()
                ),
            };
        }
        let sizes: Vec<String> = DYNO_SIZES
            .iter()
            .filter_map(|size| {
                let a = d.advise(Platform::from(*size), &self.opts)?;
                Some(format!(
                    "{} {} ({})",
                    size.name,
                    a.short(),
                    a.limit.as_str()
                ))
            })
            .collect();
        let _ = writeln!(s, "             by dyno size: {}", sizes.join(", "));
        if any.range.is_some() {
            let _ = writeln!(
                s,
                "             (a range: the traffic seen never needed the workers it had, so it cannot tell how many a real load needs; run a count in the range and read the lines again under load)"
            );
        }
    }

    /// Memory over time, per dyno: the platform's figure (or runicorn's) and the quota; and,
    /// when runicorn's lines are there, the largest worker USS.
    pub fn chart(&self) -> Chart {
        let timed = self
            .dynos
            .values()
            .flat_map(|d| d.platform.history.iter().chain(&d.server.history))
            .all(|(t, _, _)| t.is_some())
            && self.first_time.is_some();
        let origin = self.first_time.unwrap_or(0.0);
        let span = self.last_time.unwrap_or(origin) - origin;
        let (scale, unit) = if span > 2.0 * 3600.0 {
            (3600.0, "hours")
        } else if span > 600.0 {
            (60.0, "minutes")
        } else {
            (1.0, "seconds")
        };
        let x = |&(t, n, _): &Point| match (timed, t) {
            (true, Some(t)) => (t - origin) / scale,
            _ => n as f64,
        };
        let points = |h: &[Point]| h.iter().map(|p| (x(p), p.2)).collect::<Vec<_>>();
        let mut memory = Vec::new();
        let mut uss = Vec::new();
        for (source, d) in &self.dynos {
            let both = !d.platform.history.is_empty() && !d.server.history.is_empty();
            for (track, suffix) in [(&d.platform, ""), (&d.server, " (runicorn)")] {
                if track.history.is_empty() {
                    continue;
                }
                let name = if both {
                    format!("{source}{suffix}")
                } else {
                    source.clone()
                };
                memory.push(Series::new(name, points(&track.history)));
            }
            if let (Some(q), Some(first), Some(last)) = (
                d.quota(),
                d.platform.history.first().or(d.server.history.first()),
                d.platform.history.last().or(d.server.history.last()),
            ) {
                memory.push(Series::dashed(
                    format!("{source} quota {q:.0} MB"),
                    vec![(x(first), q), (x(last), q)],
                ));
            }
            if !d.uss_history.is_empty() {
                uss.push(Series::new(source.clone(), points(&d.uss_history)));
            }
        }
        let mut panels = vec![Panel {
            y_label: "dyno memory (MB)".into(),
            series: memory,
        }];
        if !uss.is_empty() {
            panels.push(Panel {
                y_label: "largest worker USS (MB)".into(),
                series: uss,
            });
        }
        Chart {
            title: "runicorn metrics: memory over time".into(),
            x_label: if timed {
                format!("{unit} since {}", format_time(origin))
            } else {
                "sample".into()
            },
            panels,
        }
    }
}

/// What the traffic said, in words.
fn traffic_words(d: &Dyno, a: &Advice) -> String {
    let samples = format!("{} sample{}", d.busy_samples, plural(d.busy_samples));
    let queue = d
        .max_queue_p99
        .map_or(String::new(), |q| format!(", queue p99 at most {q:.3} ms"));
    match a.demand {
        Demand::Unknown => "no workers_busy figure: it says nothing of the count needed".into(),
        Demand::Served {
            busy_max, needs, ..
        } => format!(
            "at most {busy_max} worker{} busy at once in {samples}, never all, no connection waiting{queue}: {needs} workers serve it",
            plural(busy_max)
        ),
        Demand::Short {
            busy_max,
            all_busy,
            backlog_max,
            queue_p99_ms,
        } => {
            let mut why = Vec::new();
            if all_busy > 0 {
                why.push(format!("every worker busy in {all_busy} of {samples}"));
            }
            if backlog_max > 0 {
                why.push(format!(
                    "up to {backlog_max} connections waiting to be accepted"
                ));
            }
            if let Some(q) = queue_p99_ms.filter(|q| *q > advice::QUEUE_WAIT_MS) {
                why.push(format!("queue p99 up to {q:.3} ms"));
            }
            format!(
                "{} (at most {busy_max} busy at once): it needed more workers than it had, so the bounds give the number",
                why.join(", ")
            )
        }
    }
}

fn mb(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.2} MB"))
}
