//! One trial of `tune`: start the app with N workers on a free loopback port (inside a dyno
//! cgroup when asked), wait until it answers, warm it up, drive the load while sampling the
//! memory of the master and its workers, then stop it with SIGTERM and reap it.
//!
//! Every process is ended by pid: the [`Server`] guard kills the workers and the master on
//! any early return or panic. Memory comes from the library's procfs module (smaps_rollup), the
//! workers from `/proc/<master>/task/*/children`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::cgroup::DynoCgroup;
use crate::load::{self, Failure, LoadSpec, Progress};
use runicorn::internals::advice::ProcessMemory;
use runicorn::internals::procfs::{self as proc, ProcMemory, ProcTasks, children};

/// How long the app may take to answer with all its workers.
const BOOT_DEADLINE: Duration = Duration::from_secs(15);
/// How long a graceful stop may take before SIGKILL (the app is given a graceful timeout
/// below it).
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How often memory is sampled while the load runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// What one trial runs.
#[derive(Debug, Clone)]
pub struct TrialSpec<'a> {
    /// The app binary (built on runicorn, so it takes `--bind`, `--workers`...).
    pub app: &'a Path,
    /// Extra arguments for the app (after `--` on tune's command line).
    pub app_args: &'a [String],
    /// Workers for this trial.
    pub workers: usize,
    /// The request's method, target, extra header fields and body.
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Client threads.
    pub concurrency: usize,
    /// How long the measured load runs.
    pub duration: Duration,
    /// How long the unmeasured load before it runs.
    pub warmup: Duration,
    /// Bound on each request.
    pub request_timeout: Duration,
    /// The dyno cgroup to run the server in.
    pub cgroup: Option<&'a DynoCgroup>,
}

/// Where a trial is, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Starting the app and waiting for it to answer.
    Starting,
    /// The warm-up load.
    WarmingUp,
    /// The measured load: time into it, and successful requests so far.
    Measuring {
        /// Time into the measured load.
        elapsed: Duration,
        /// Successful requests so far.
        ok: u64,
    },
    /// Stopping the app.
    Stopping,
}

/// What one trial measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trial {
    /// Workers asked for.
    pub workers: usize,
    /// Requests sent and answered below 400, in the measured load.
    pub sent: u64,
    /// See `sent`.
    pub ok: u64,
    /// Failed requests by cause.
    pub failures: BTreeMap<Failure, u64>,
    /// Length of the measured load.
    pub elapsed: Duration,
    /// Successful requests per second.
    pub req_per_sec: f64,
    /// Latency percentiles of the successful requests, ms.
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p95_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
    /// The highest sum of PSS over the master and workers seen during the load, MB.
    pub total_pss_mb: f64,
    /// The largest worker USS seen during the load, MB.
    pub worker_uss_mb: f64,
    /// The master at the last sample.
    pub master: ProcessMemory,
    /// Each worker at the last sample, its USS the largest it reached.
    pub worker_memory: Vec<ProcessMemory>,
    /// The dyno cgroup's peak usage, MB.
    pub cgroup_peak_mb: Option<f64>,
    /// The dyno cgroup's usage at the last sample (with `master` and `worker_memory`), MB.
    pub cgroup_mb: Option<f64>,
    /// CPU time of the workers over the measured load, in CPUs (1.0 = one CPU all along).
    pub cpu_cores: Option<f64>,
    /// CPU time of this process (the load client) over the measured load, in CPUs.
    pub client_cpu_cores: Option<f64>,
    /// Workers killed, perhaps out of memory (the master's log, or the cgroup's count).
    pub oom_kills: u64,
    /// Worker processes beyond `workers` seen during the load: respawns.
    pub respawned: usize,
}

impl Trial {
    /// Failed requests, all causes.
    pub fn errors(&self) -> u64 {
        self.failures.values().sum()
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A process's page tables (`VmPTE`), MB.
fn page_tables_mb(tasks: Option<ProcTasks>) -> Option<f64> {
    tasks.and_then(|t| t.page_tables_kib).map(mb)
}

/// A process's threads.
fn threads(tasks: Option<ProcTasks>) -> Option<usize> {
    tasks.and_then(|t| t.threads).map(|n| n as usize)
}

/// The app, running; killed (workers, then master) and reaped on drop unless stopped.
struct Server {
    child: Child,
    pid: i32,
    addr: SocketAddr,
    log_tail: Arc<Mutex<Vec<String>>>,
    oom_lines: Arc<AtomicU64>,
    reaped: bool,
}

impl Server {
    fn start(spec: &TrialSpec<'_>) -> Result<Server, String> {
        // A free port: bind port 0, note it, let it go. Another program could take it in
        // between; the app then fails to bind and the trial says so.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
        let mut args: Vec<String> = vec![
            "--bind".into(),
            addr.to_string(),
            "--workers".into(),
            spec.workers.to_string(),
            "--metrics-interval".into(),
            "0".into(),
            "--graceful-timeout".into(),
            "5".into(),
        ];
        args.extend(spec.app_args.iter().cloned());
        let mut cmd = match spec.cgroup {
            // `exec` keeps the shell's pid, so $$ is the server's: it is in the cgroup before
            // the app starts, and every worker it forks is too.
            Some(cg) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"echo $$ > "$0" && exec "$@""#)
                    .arg(cg.procs_file())
                    .arg(spec.app);
                c
            }
            None => Command::new(spec.app),
        };
        cmd.args(&args)
            .env_remove("WEB_CONCURRENCY")
            .env_remove("RUNICORN_WORKERS")
            .env_remove("PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.app.display()))?;
        let pid = i32::try_from(child.id()).map_err(|_| "pid out of range".to_string())?;
        let log_tail = Arc::new(Mutex::new(Vec::new()));
        let oom_lines = Arc::new(AtomicU64::new(0));
        if let Some(stderr) = child.stderr.take() {
            let (tail, oom) = (log_tail.clone(), oom_lines.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("msg=\"worker killed\"")
                        && line.contains("perhaps out of memory")
                    {
                        oom.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if t.len() == 20 {
                        t.remove(0);
                    }
                    t.push(line);
                }
            });
        }
        Ok(Server {
            child,
            pid,
            addr,
            log_tail,
            oom_lines,
            reaped: false,
        })
    }

    fn log_tail(&self) -> String {
        self.log_tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Waits until the app answers on its port with all its workers forked.
    fn wait_ready(&mut self, workers: usize) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = true;
                // Let the log reader catch the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "the app exited ({status}) before it answered; its log:\n{}",
                    self.log_tail()
                ));
            }
            if children(self.pid).len() >= workers
                && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the app did not answer on {} with {workers} workers within {}s; its log:\n{}",
                    self.addr,
                    BOOT_DEADLINE.as_secs(),
                    self.log_tail()
                ));
            }
            // Polling a port and /proc: nothing to block on.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for the exit; SIGKILL to everything after [`STOP_DEADLINE`].
    fn stop(mut self) -> Result<ExitStatus, String> {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    return Err(format!(
                        "the app did not stop within {}s of SIGTERM; killed",
                        STOP_DEADLINE.as_secs()
                    ));
                }
                Err(e) => return Err(format!("waiting for the app: {e}")),
            }
        }
        // Drop kills and reaps on the error paths.
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        for w in children(self.pid) {
            let _ = kill(Pid::from_raw(w), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Memory of the master and workers, sampled over the load.
#[derive(Default)]
struct Sampler {
    peak_total_kib: u64,
    peak_uss_kib: HashMap<i32, u64>,
    last_master: Option<(ProcMemory, Option<ProcTasks>)>,
    last_workers: Vec<(i32, ProcMemory, Option<ProcTasks>)>,
    last_cgroup_bytes: Option<u64>,
}

impl Sampler {
    fn sample(&mut self, master: i32, cgroup: Option<&DynoCgroup>) {
        let Some(m) = proc::read_memory(master) else {
            return;
        };
        self.last_cgroup_bytes = cgroup.and_then(DynoCgroup::current_bytes);
        let workers: Vec<(i32, ProcMemory, Option<ProcTasks>)> = children(master)
            .into_iter()
            .filter_map(|p| proc::read_memory(p).map(|mem| (p, mem, proc::read_tasks(p))))
            .collect();
        let total = m.pss_kib + workers.iter().map(|(_, w, _)| w.pss_kib).sum::<u64>();
        self.peak_total_kib = self.peak_total_kib.max(total);
        for (pid, w, _) in &workers {
            let peak = self.peak_uss_kib.entry(*pid).or_default();
            *peak = (*peak).max(w.uss_kib);
        }
        self.last_master = Some((m, proc::read_tasks(master)));
        self.last_workers = workers;
    }
}

/// Runs one trial; `progress` is called from this thread as it goes.
pub fn run(spec: &TrialSpec<'_>, progress: &dyn Fn(Phase)) -> Result<Trial, String> {
    progress(Phase::Starting);
    let mut server = Server::start(spec)?;
    server.wait_ready(spec.workers)?;
    let mut load_spec = LoadSpec::new(server.addr, spec.path);
    load_spec.method = spec.method.to_string();
    load_spec.headers = spec.headers.to_vec();
    load_spec.body = spec.body.to_vec();
    load_spec.concurrency = spec.concurrency.max(1);
    load_spec.request_timeout = spec.request_timeout;
    let stop = AtomicBool::new(false);
    if !spec.warmup.is_zero() {
        progress(Phase::WarmingUp);
        load_spec.duration = spec.warmup;
        load::run(&load_spec, &stop, None);
    }

    let mut sampler = Sampler::default();
    sampler.sample(server.pid, spec.cgroup);
    let workers_before = children(server.pid);
    let cpu_before: f64 = workers_before
        .iter()
        .filter_map(|&p| proc::read_cpu_seconds(p))
        .sum();
    let oom_before = server.oom_lines.load(Ordering::Relaxed);
    let cg_oom_before = spec.cgroup.and_then(DynoCgroup::oom_kills).unwrap_or(0);
    let mut seen_workers: Vec<i32> = workers_before.clone();

    load_spec.duration = spec.duration;
    let ok = AtomicU64::new(0);
    let on_progress = |p: &Progress| {
        ok.fetch_max(p.ok, Ordering::Relaxed);
    };
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let client_before = proc::read_cpu_seconds(me);
    let started = Instant::now();
    let report = std::thread::scope(|s| {
        let loader = s.spawn(|| load::run(&load_spec, &stop, Some(&on_progress)));
        while !loader.is_finished() {
            sampler.sample(server.pid, spec.cgroup);
            for p in children(server.pid) {
                if !seen_workers.contains(&p) {
                    seen_workers.push(p);
                }
            }
            progress(Phase::Measuring {
                elapsed: started.elapsed(),
                ok: ok.load(Ordering::Relaxed),
            });
            std::thread::sleep(
                SAMPLE_EVERY
                    .min(spec.duration / 4)
                    .max(Duration::from_millis(10)),
            );
        }
        loader.join()
    })
    .map_err(|_| "the load client panicked".to_string())?;
    sampler.sample(server.pid, spec.cgroup);
    let client_after = proc::read_cpu_seconds(me);
    let cpu_after: f64 = workers_before
        .iter()
        .filter_map(|&p| proc::read_cpu_seconds(p))
        .sum();

    progress(Phase::Stopping);
    let cgroup_peak_mb = spec
        .cgroup
        .and_then(DynoCgroup::peak_bytes)
        .map(|b| b as f64 / f64::from(1 << 20));
    let oom_log = server.oom_lines.load(Ordering::Relaxed) - oom_before;
    let oom_cgroup = spec
        .cgroup
        .and_then(DynoCgroup::oom_kills)
        .map_or(0, |n| n.saturating_sub(cg_oom_before));
    server.stop()?;

    let seconds = report.elapsed.as_secs_f64();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let master = sampler
        .last_master
        .map_or_else(ProcessMemory::default, |(m, tasks)| ProcessMemory {
            pss_mb: mb(m.pss_kib),
            uss_mb: mb(m.uss_kib),
            page_tables_mb: page_tables_mb(tasks),
            threads: threads(tasks),
        });
    let worker_memory = sampler
        .last_workers
        .iter()
        .map(|&(pid, w, tasks)| ProcessMemory {
            pss_mb: mb(w.pss_kib),
            uss_mb: mb(w
                .uss_kib
                .max(sampler.peak_uss_kib.get(&pid).copied().unwrap_or(0))),
            page_tables_mb: page_tables_mb(tasks),
            threads: threads(tasks),
        })
        .collect();
    Ok(Trial {
        workers: spec.workers,
        sent: report.sent,
        ok: report.ok,
        failures: report.failures.clone(),
        elapsed: report.elapsed,
        req_per_sec: report.ok_per_sec(),
        p50_ms: ms(report.latency.p50()),
        p95_ms: ms(report.latency.p95()),
        p99_ms: ms(report.latency.p99()),
        total_pss_mb: mb(sampler.peak_total_kib),
        worker_uss_mb: mb(sampler.peak_uss_kib.values().copied().max().unwrap_or(0)),
        master,
        worker_memory,
        cgroup_peak_mb,
        cgroup_mb: sampler
            .last_cgroup_bytes
            .map(|b| b as f64 / f64::from(1 << 20)),
        cpu_cores: (seconds > 0.0).then(|| (cpu_after - cpu_before).max(0.0) / seconds),
        client_cpu_cores: client_before
            .zip(client_after)
            .filter(|_| seconds > 0.0)
            .map(|(b, a)| (a - b).max(0.0) / seconds),
        oom_kills: oom_log.max(oom_cgroup),
        respawned: seen_workers.len().saturating_sub(spec.workers),
    })
}
