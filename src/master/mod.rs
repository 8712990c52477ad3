//! The master: forks the workers and supervises them; never serves a request and never
//! starts a thread (fork is only sound with one).
//!
//! [`Master::run`] is the whole story: reap, drain signals, act, check timeouts, keep the
//! worker count, wait. The decisions ("how many to spawn, which to stop") are the pure
//! function [`plan`], tested without fork.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tracing::{debug, error, info, warn};

use crate::config::{Config, MAX_WORKERS};
use crate::error::{EXIT_CRASH_LOOP, EXIT_OK, WORKER_BOOT_ERROR};
use crate::handler::App;
use crate::listener::Listener;
use crate::metrics::exporter::Exporter;
use crate::metrics::sample::{Identity, LiveWorker, Sample, Sampler, WorkerEnd};
use crate::metrics::statsd::Statsd;
use crate::metrics::tally::{Tally, Timeout};
use crate::metrics::tcp::ListenQueue;
use crate::notify::Notifier;
use crate::scoreboard::{Scoreboard, WorkerState};
use crate::signals::{MasterSignal, MasterSignals};
use crate::sys::{self, Forked};
use crate::upgrade::Handover;
use crate::worker::{self, WorkerContext};

mod reexec;
mod sizing;

use reexec::Upgrade;
use sizing::{Auto, memory_limit_kib};

/// Consecutive workers that die before they are ready, after which the master gives up and
/// exits with `EXIT_CRASH_LOOP`.
pub(crate) const CRASH_LOOP_LIMIT: u32 = 10;
/// The first pause before respawning after a boot failure; it doubles with each consecutive
/// failure, up to [`CRASH_BACKOFF_MAX`].
pub(crate) const CRASH_BACKOFF_START: Duration = Duration::from_millis(50);
/// The longest pause between respawns in a crash loop.
pub(crate) const CRASH_BACKOFF_MAX: Duration = Duration::from_secs(2);

const SIGNALS: Token = Token(0);
/// The Prometheus endpoint's listener; its connections take the tokens after it.
const METRICS: Token = Token(1);

/// A worker as the master tracks it.
#[derive(Debug)]
struct Worker {
    slot: usize,
    pid: Pid,
    generation: u64,
    /// Write end of the worker's control pipe.
    control: OwnedFd,
    spawned_at: Instant,
    ready: bool,
    /// When we asked it to stop (graceful), if we did.
    stop_sent: Option<Instant>,
    /// Why we sent SIGKILL, if we did (so its death is not blamed on the OOM killer).
    killed: Option<&'static str>,
    /// Its memory limit (`--max-worker-memory`, with jitter); 0 none.
    memory_limit_kib: u64,
    /// Handed over by the previous image (USR2): its slot is in a scoreboard we cannot see.
    adopted: bool,
    /// Its `--max-requests` limit, jitter included; 0 none (or unknown: adopted).
    max_requests: u64,
}

/// What the master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Stopping: no more spawning; exit with `code` once every worker is reaped, and kill
    /// those still alive at `deadline`.
    Stopping {
        deadline: Instant,
        code: i32,
    },
}

/// A worker as [`plan`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerView {
    /// Its slot.
    pub slot: usize,
    /// The generation it was spawned in (HUP starts a new one).
    pub generation: u64,
    /// It has booted and accepts connections.
    pub ready: bool,
    /// It was already asked to stop.
    pub stopping: bool,
}

/// What to do to reach the wanted pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// How many workers to spawn.
    pub spawn: usize,
    /// Slots of the workers to stop gracefully.
    pub stop: Vec<usize>,
}

/// Decides how to move from `workers` to `target` workers of `generation`.
///
/// Workers of the current generation are topped up to `target`, or the newest extras
/// stopped. Workers of older generations (before a HUP) keep serving until enough new ones
/// are ready to replace them, then are stopped one for each new ready worker: there is never
/// a moment with fewer than `target` workers able to serve.
pub fn plan(workers: &[WorkerView], target: usize, generation: u64) -> Plan {
    let live = |w: &&WorkerView| !w.stopping;
    let mut current: Vec<&WorkerView> = workers
        .iter()
        .filter(live)
        .filter(|w| w.generation == generation)
        .collect();
    let old: Vec<&WorkerView> = workers
        .iter()
        .filter(live)
        .filter(|w| w.generation != generation)
        .collect();
    let mut out = Plan::default();
    if current.len() < target {
        out.spawn = target - current.len();
    } else if current.len() > target {
        current.sort_by_key(|w| std::cmp::Reverse(w.slot));
        out.stop
            .extend(current.iter().take(current.len() - target).map(|w| w.slot));
    }
    let ready_current = current.iter().filter(|w| w.ready).count().min(target);
    let keep_old = target - ready_current;
    if old.len() > keep_old {
        out.stop
            .extend(old.iter().take(old.len() - keep_old).map(|w| w.slot));
    }
    out
}

/// A new worker's request limit: `max` plus `random` reduced to `0..=jitter`, so that
/// workers started together are not all recycled together. 0 (no limit) stays 0.
pub fn request_limit(max: u64, jitter: u64, random: u64) -> u64 {
    match max {
        0 => 0,
        n => n.saturating_add(random % jitter.saturating_add(1)),
    }
}

/// The kernel's accept queue, summed over the TCP listeners (TCP_INFO on a listening socket);
/// `None` when there is no TCP listener.
fn listen_queue(listeners: &[Listener]) -> Option<ListenQueue> {
    listeners
        .iter()
        .filter_map(Listener::listen_queue)
        .reduce(|a, b| ListenQueue {
            depth: a.depth + b.depth,
            limit: a.limit + b.limit,
        })
}

/// The lowest slot not used by a live worker.
fn free_slot(used: impl Iterator<Item = usize>, capacity: usize) -> Option<usize> {
    let mut taken = vec![false; capacity];
    for s in used {
        taken[s] = true;
    }
    taken.iter().position(|t| !t)
}

/// The log line of a worker's end: info when it exited cleanly or we killed it, error when
/// it failed or something else killed it.
fn log_exit(w: &Worker, status: WaitStatus, requests: u64) {
    let (slot, pid) = (w.slot, w.pid.as_raw());
    match status {
        WaitStatus::Exited(_, 0) => {
            info!(worker = slot, pid, code = 0, requests, "worker exited");
        }
        WaitStatus::Exited(_, code) => {
            let reason = if code == WORKER_BOOT_ERROR {
                "after_fork failed"
            } else {
                "error"
            };
            error!(worker = slot, pid, code, requests, reason, "worker exited");
        }
        WaitStatus::Signaled(_, sig, core) => {
            let signal = sig.as_str();
            match w.killed {
                Some(reason) => info!(
                    worker = slot,
                    pid, signal, requests, reason, "worker killed"
                ),
                None if sig == Signal::SIGKILL => error!(
                    worker = slot,
                    pid,
                    signal,
                    requests,
                    reason = "perhaps out of memory",
                    "worker killed"
                ),
                None => error!(
                    worker = slot,
                    pid,
                    signal,
                    core_dumped = core,
                    requests,
                    "worker killed"
                ),
            }
        }
        other => debug!(worker = slot, pid, status = ?other, "worker ended"),
    }
}

/// What the master knew of a worker when it reaped it, besides its wait status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reaped<'a> {
    /// Why the master sent it SIGKILL, if it did.
    pub killed: Option<&'a str>,
    /// The master had asked it to stop.
    pub asked_to_stop: bool,
    /// ... to replace it for `--max-worker-memory`.
    pub over_memory: bool,
    /// It had served its `--max-requests` (its own limit, jitter included).
    pub served_its_max: bool,
}

/// Why a worker ended, for the metrics: failures as [`log_exit`] logs them at error level,
/// `--timeout` kills apart, and the clean ends by what the master knows of their cause.
pub fn worker_end(status: WaitStatus, r: &Reaped<'_>) -> WorkerEnd {
    let clean = match status {
        WaitStatus::Exited(_, code) => code == 0,
        WaitStatus::Signaled(..) => r.killed.is_some(),
        _ => true,
    };
    match r.killed {
        Some("timeout" | "boot timeout") => WorkerEnd::Timeout,
        _ if !clean => WorkerEnd::Failed,
        _ if r.over_memory => WorkerEnd::Memory,
        Some(_) => WorkerEnd::Stopped,
        None if r.asked_to_stop => WorkerEnd::Stopped,
        None if r.served_its_max => WorkerEnd::MaxRequests,
        None => WorkerEnd::Exited,
    }
}

/// What the master needs to re-execute itself on USR2 (see `upgrade`), and what a previous
/// image handed over, if this one was upgraded into.
pub struct Startup {
    /// The binary to re-execute (the path it was started from).
    pub exe: Option<PathBuf>,
    /// Its arguments, without `argv[0]`.
    pub args: Vec<OsString>,
    /// The service manager, when there is one.
    pub notifier: Notifier,
    /// The workers left by the previous image.
    pub handover: Option<Handover>,
    /// The Prometheus endpoint's listening socket (`--metrics-bind`).
    pub metrics: Option<std::net::TcpListener>,
}

/// The master process.
pub struct Master<'c, A: App> {
    config: &'c Config,
    app: A,
    listeners: Vec<Listener>,
    scoreboard: Scoreboard,
    poll: Option<Poll>,
    signals: Option<MasterSignals>,
    workers: Vec<Worker>,
    target: usize,
    generation: u64,
    phase: Phase,
    boot_failures: u32,
    last_boot_failure: String,
    respawn_after: Option<Instant>,
    rng: u64,
    sampler: Option<Sampler>,
    /// Print each sample as metric lines on stdout (`--metrics-interval` above 0).
    print_metrics: bool,
    /// Push each sample to StatsD (`--statsd-host`).
    statsd: Option<Statsd>,
    /// The counters drained from the scoreboard: the interval's and the totals.
    tally: Tally,
    /// The Prometheus endpoint (`--metrics-bind`).
    exporter: Option<Exporter>,
    /// When this image started, µs since the Unix epoch (`runicorn_start_time_seconds`).
    started_us: u64,
    exe: Option<PathBuf>,
    args: Vec<OsString>,
    notifier: Notifier,
    /// The service manager was told the current generation is ready (cleared by a reload).
    announced: bool,
    upgrade: Option<Upgrade>,
    /// The worker being replaced for its memory, if one is: one at a time.
    memory_recycle: Option<Pid>,
    next_memory_check: Instant,
    auto: Option<Auto>,
}

impl<'c, A: App> Master<'c, A> {
    /// A master over bound `listeners` serving `app` (already built: it is shared with the
    /// workers copy-on-write).
    pub fn new(
        config: &'c Config,
        app: A,
        listeners: Vec<Listener>,
        startup: Startup,
    ) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let signals = MasterSignals::install(poll.registry(), SIGNALS)?;
        // An upgraded image starts with every signal blocked (see `upgrade::exec`); ours
        // are handled from here on.
        sys::unmask_signals()?;
        let scoreboard = Scoreboard::new(2 * MAX_WORKERS)?;
        let exporter = startup
            .metrics
            .map(|l| Exporter::new(l, poll.registry(), METRICS))
            .transpose()?;
        let statsd = config
            .statsd_host
            .as_ref()
            .and_then(|addr| Statsd::start(addr, &config.statsd_prefix, &config.dogstatsd_tags));
        // Sample for the metric lines, or for StatsD alone (at its default interval).
        let sample_interval = config
            .metrics_interval
            .or_else(|| statsd.as_ref().and(config.sample_interval()));
        let mut master = Master {
            config,
            app,
            listeners,
            scoreboard,
            poll: Some(poll),
            signals: Some(signals),
            workers: Vec::new(),
            target: config.workers,
            generation: 0,
            phase: Phase::Running,
            boot_failures: 0,
            last_boot_failure: String::new(),
            respawn_after: None,
            rng: sys::monotonic_ns() ^ (u64::from(std::process::id()) << 32) | 1,
            sampler: sample_interval.map(|interval| {
                let id = Identity::from_env(&|k| std::env::var(k).ok(), sys::hostname());
                Sampler::new(id, interval)
            }),
            print_metrics: config.metrics_interval.is_some(),
            statsd,
            tally: Tally::default(),
            exporter,
            started_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            exe: startup.exe,
            args: startup.args,
            notifier: startup.notifier,
            announced: false,
            upgrade: None,
            memory_recycle: None,
            next_memory_check: Instant::now(),
            auto: None,
        };
        let upgraded = startup.handover.is_some();
        if let Some(h) = startup.handover {
            master.adopt(h);
        }
        if config.workers_auto {
            master.start_auto(upgraded);
        }
        Ok(master)
    }

    /// Runs until stopped; returns the exit code.
    pub fn run(&mut self) -> i32 {
        loop {
            self.reap();
            self.handle_signals();
            if let Phase::Stopping { code, .. } = self.phase
                && self.workers.is_empty()
            {
                return code;
            }
            self.check_timeouts();
            self.check_memory();
            self.evaluate_auto();
            self.notice_ready();
            self.keep_worker_count();
            self.sample_metrics();
            self.serve_scrapes();
            self.wait();
        }
    }

    /// Closes what the master leaves behind at exit: Unix socket files.
    pub fn cleanup(&self) {
        for l in &self.listeners {
            l.remove_socket_file();
        }
    }

    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    error!(error = %e, "waitpid failed");
                    return;
                }
                Ok(s) => s,
            };
            let Some(pid) = status.pid() else { continue };
            if self.upgrade.as_ref().is_some_and(|u| u.checker == pid) {
                self.on_check_done(status);
                continue;
            }
            let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
                // A process the app started and did not wait for; not ours to report.
                continue;
            };
            let w = self.workers.swap_remove(i);
            let slot = self.scoreboard.slot(w.slot);
            let view = slot.view();
            let ready = w.ready || !matches!(view.state, WorkerState::Booting | WorkerState::Free);
            let reaped = Reaped {
                killed: w.killed,
                asked_to_stop: w.stop_sent.is_some(),
                over_memory: self.memory_recycle == Some(w.pid),
                served_its_max: w.max_requests > 0 && view.requests >= w.max_requests,
            };
            self.tally.on_reap(slot, worker_end(status, &reaped));
            slot.free();
            self.report_exit(&w, status, view.requests, ready);
        }
    }

    /// Logs how a worker ended, and counts a death before ready as a boot failure.
    fn report_exit(&mut self, w: &Worker, status: WaitStatus, requests: u64, ready: bool) {
        let expected = w.stop_sent.is_some() || matches!(self.phase, Phase::Stopping { .. });
        log_exit(w, status, requests);
        if !ready && !expected && w.killed != Some("quick stop") {
            self.count_boot_failure(w.slot, w.pid.as_raw(), status);
        }
    }

    /// A worker died before it was ready: respawn after a pause that doubles with each
    /// failure in a row (a broken app must not make the master fork flat out), and give up
    /// after [`CRASH_LOOP_LIMIT`] of them.
    fn count_boot_failure(&mut self, slot: usize, pid: i32, status: WaitStatus) {
        self.boot_failures += 1;
        self.tally.count_boot_failure();
        self.last_boot_failure = match status {
            WaitStatus::Exited(_, c) => format!("exit code {c}"),
            WaitStatus::Signaled(_, s, _) => format!("signal {}", s.as_str()),
            _ => "unknown".into(),
        };
        let backoff = CRASH_BACKOFF_START
            .saturating_mul(1 << (self.boot_failures - 1).min(16))
            .min(CRASH_BACKOFF_MAX);
        self.respawn_after = Some(Instant::now() + backoff);
        warn!(
            worker = slot,
            pid,
            failures = self.boot_failures,
            limit = CRASH_LOOP_LIMIT,
            backoff_ms = backoff.as_millis() as u64,
            "worker died before it was ready"
        );
        if self.boot_failures >= CRASH_LOOP_LIMIT && self.phase == Phase::Running {
            error!(
                failures = self.boot_failures,
                last = self.last_boot_failure.as_str(),
                code = EXIT_CRASH_LOOP,
                "crash loop: workers keep dying before they are ready; stopping"
            );
            self.begin_stop(EXIT_CRASH_LOOP);
        }
    }

    fn handle_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        for sig in signals.drain() {
            match sig {
                MasterSignal::Term => self.on_term(),
                MasterSignal::Int => self.on_int(),
                MasterSignal::Hup => self.on_hup(),
                MasterSignal::Usr1 => self.on_usr1(),
                MasterSignal::Usr2 => self.on_usr2(),
                MasterSignal::Winch => self.on_winch(),
                MasterSignal::Ttin => self.on_ttin(),
                MasterSignal::Ttou => self.on_ttou(),
                MasterSignal::Chld => {}
            }
        }
    }

    fn on_term(&mut self) {
        if self.phase == Phase::Running {
            self.begin_stop(EXIT_OK);
            info!(
                workers = self.workers.len(),
                graceful_timeout_s = self.config.graceful_timeout.as_secs(),
                "graceful stop"
            );
        }
    }

    fn on_int(&mut self) {
        for l in &self.listeners {
            let _ = l.stop_listening();
        }
        self.phase = Phase::Stopping {
            deadline: Instant::now(),
            code: EXIT_OK,
        };
        self.kill_all("quick stop");
        if let Some(u) = self.upgrade.take() {
            let _ = kill(u.checker, Signal::SIGKILL);
        }
        self.notifier.stopping();
        info!(workers = self.workers.len(), "quick stop");
    }

    fn on_hup(&mut self) {
        if self.phase == Phase::Running {
            self.generation += 1;
            self.announced = false;
            self.notifier.reloading("replacing every worker");
            info!(
                workers = self.target,
                generation = self.generation,
                "replacing every worker"
            );
        }
    }

    fn on_usr1(&mut self) {
        let files = sys::reopen_append_logs();
        info!(files, "reopened log files");
        for w in &self.workers {
            let _ = kill(w.pid, Signal::SIGUSR1);
        }
    }

    fn on_winch(&mut self) {
        // A terminal sends WINCH whenever its window is resized: honour it only when the
        // master is not attached to one, as Unicorn and Gunicorn do (they honour it only
        // when daemonized).
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            info!("WINCH ignored: stdin is a terminal (a window resize, not an operator)");
            return;
        }
        if self.phase == Phase::Running {
            self.stop_auto("WINCH");
            self.target = 0;
            info!(
                workers = 0,
                "stopping every worker; the master keeps the listeners"
            );
        }
    }

    /// The operator sets the count by hand from now on (TTIN, TTOU, WINCH).
    fn stop_auto(&mut self, signal: &str) {
        if self.auto.take().is_some() {
            info!(
                signal,
                "auto: off; the operator sets the worker count from now on"
            );
        }
    }

    fn on_ttin(&mut self) {
        self.stop_auto("TTIN");
        if self.phase == Phase::Running && self.target < MAX_WORKERS {
            self.target += 1;
            info!(workers = self.target, "one worker more");
        }
    }

    fn on_ttou(&mut self) {
        self.stop_auto("TTOU");
        if self.phase == Phase::Running && self.target > 1 {
            self.target -= 1;
            info!(workers = self.target, "one worker fewer");
        }
    }

    /// Graceful stop: stop listening at once (new connections are refused), let each
    /// worker finish its request, and kill what is left at the graceful timeout.
    fn begin_stop(&mut self, code: i32) {
        for l in &self.listeners {
            if let Err(e) = l.stop_listening() {
                warn!(addr = l.describe(), error = %e, "could not stop listening");
            }
        }
        for i in 0..self.workers.len() {
            self.stop_worker(i);
        }
        if let Some(u) = self.upgrade.take() {
            let _ = kill(u.checker, Signal::SIGKILL);
        }
        self.notifier.stopping();
        let deadline = Instant::now() + self.config.graceful_timeout;
        self.phase = Phase::Stopping { deadline, code };
    }

    /// Asks a worker to stop after its current request: the scoreboard flag is seen by a
    /// busy worker, the pipe byte wakes an idle one.
    ///
    /// A worker handed over by an upgrade watches a scoreboard this image cannot see, and a
    /// worker that always finds a connection waiting serves on without polling its pipe; so
    /// it gets TERM, which every worker checks between requests (a flag its signal handler
    /// sets, no syscall), and which means the same graceful stop.
    fn stop_worker(&mut self, i: usize) {
        let w = &mut self.workers[i];
        if w.stop_sent.is_some() {
            return;
        }
        w.stop_sent = Some(Instant::now());
        self.scoreboard.slot(w.slot).request_stop();
        let _ = nix::unistd::write(w.control.as_fd(), b"s");
        if w.adopted {
            let _ = kill(w.pid, Signal::SIGTERM);
        }
    }

    fn kill_all(&mut self, reason: &'static str) {
        for w in &mut self.workers {
            if w.killed.is_none() {
                w.killed = Some(reason);
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    /// Kills what overstayed its time: every worker at the end of a graceful stop, a worker
    /// asked to stop that is still serving, and with `--timeout` a stuck request, a stuck
    /// boot, or the upgrade's config check.
    fn check_timeouts(&mut self) {
        self.kill_at_stop_deadline();
        self.kill_slow_stoppers();
        let Some(timeout) = self.config.timeout else {
            return;
        };
        self.kill_slow_check(timeout);
        self.kill_stuck_workers(timeout);
    }

    /// At the deadline of a graceful stop, what still runs is killed: a stop always ends.
    fn kill_at_stop_deadline(&mut self) {
        if let Phase::Stopping { deadline, .. } = self.phase
            && Instant::now() >= deadline
            && self.workers.iter().any(|w| w.killed.is_none())
        {
            warn!(
                workers = self.workers.len(),
                "graceful timeout: killing the workers still running"
            );
            self.kill_all("graceful timeout");
        }
    }

    /// A worker asked to stop has `graceful_timeout` to finish its request, as at a graceful
    /// stop. It matters for the workers a previous image handed over: their scoreboard did
    /// not cross the exec, so the request timeout (`kill_stuck_workers`) cannot see them.
    fn kill_slow_stoppers(&mut self) {
        let graceful = self.config.graceful_timeout;
        for w in &mut self.workers {
            if w.killed.is_none() && w.stop_sent.is_some_and(|t| t.elapsed() > graceful) {
                warn!(
                    worker = w.slot,
                    pid = w.pid.as_raw(),
                    "graceful timeout: killing the worker"
                );
                w.killed = Some("graceful timeout");
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    /// An upgrade waits for the new binary's `--check-config`; one that hangs must not hold
    /// the upgrade forever.
    fn kill_slow_check(&self, timeout: Duration) {
        if let Some(u) = &self.upgrade
            && u.started.elapsed() > timeout
        {
            error!(
                checker = u.checker.as_raw(),
                "upgrade: the new binary's --check-config is still running after the timeout; killing it"
            );
            // Reaped by `reap`, which then reports the upgrade aborted.
            let _ = kill(u.checker, Signal::SIGKILL);
        }
    }

    /// How many requests one worker serves at once: `--worker-connections` for an app that
    /// can serve several, else one.
    pub(super) fn requests_per_worker(&mut self) -> usize {
        if self.app.concurrent().is_some() {
            self.config.worker_connections
        } else {
            1
        }
    }

    /// `--timeout`: kills a worker busy with one request, or booting, for longer (a worker
    /// serving several requests at once: whose loop has not moved for longer); the log names
    /// the request (the oldest, with several), read from the worker's slot.
    fn kill_stuck_workers(&mut self, timeout: Duration) {
        let now_ns = sys::monotonic_ns();
        for w in &mut self.workers {
            if w.killed.is_some() {
                continue;
            }
            let slot = self.scoreboard.slot(w.slot);
            let view = slot.view();
            if let Some(since) = view.busy_since_ns {
                let elapsed = Duration::from_nanos(now_ns.saturating_sub(since));
                if elapsed > timeout {
                    let req = slot.current_request();
                    error!(
                        worker = w.slot,
                        pid = w.pid.as_raw(),
                        elapsed_s = format!("{:.1}", elapsed.as_secs_f64()),
                        method = req.method.as_str(),
                        path = req.path.as_str(),
                        request_id = req.request_id.as_str(),
                        in_flight = view.in_flight,
                        "worker timeout: killing it"
                    );
                    w.killed = Some("timeout");
                    self.tally.count_timeout(Timeout::Request);
                    let _ = kill(w.pid, Signal::SIGKILL);
                }
            } else if !w.ready
                && view.state == WorkerState::Booting
                && w.spawned_at.elapsed() > timeout
            {
                error!(
                    worker = w.slot,
                    pid = w.pid.as_raw(),
                    elapsed_s = w.spawned_at.elapsed().as_secs(),
                    "worker boot timeout: killing it"
                );
                w.killed = Some("boot timeout");
                self.tally.count_timeout(Timeout::Boot);
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    fn notice_ready(&mut self) {
        for w in &mut self.workers {
            if !w.ready
                && !matches!(
                    self.scoreboard.slot(w.slot).view().state,
                    WorkerState::Booting | WorkerState::Free
                )
            {
                w.ready = true;
                self.boot_failures = 0;
            }
        }
        if !self.announced && self.phase == Phase::Running && self.upgrade.is_none() {
            let ready = self
                .workers
                .iter()
                .filter(|w| w.generation == self.generation && w.ready && w.stop_sent.is_none())
                .count();
            if ready >= self.target {
                self.announced = true;
                self.notifier.ready(ready);
                info!(
                    workers = ready,
                    generation = self.generation,
                    "workers ready"
                );
            }
        }
    }

    fn keep_worker_count(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let views: Vec<WorkerView> = self
            .workers
            .iter()
            .map(|w| WorkerView {
                slot: w.slot,
                generation: w.generation,
                ready: w.ready,
                stopping: w.stop_sent.is_some() || w.killed.is_some(),
            })
            .collect();
        let plan = plan(&views, self.target, self.generation);
        for slot in plan.stop {
            if let Some(i) = self.workers.iter().position(|w| w.slot == slot) {
                debug!(
                    worker = slot,
                    pid = self.workers[i].pid.as_raw(),
                    "stopping worker"
                );
                self.stop_worker(i);
            }
        }
        if self.respawn_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        for _ in 0..plan.spawn {
            let used = self.workers.iter().map(|w| w.slot);
            let Some(slot) = free_slot(used, self.scoreboard.capacity()) else {
                warn!(capacity = self.scoreboard.capacity(), "no free worker slot");
                return;
            };
            self.spawn(slot);
        }
    }

    /// Every `--metrics-interval`, takes the sample, prints it as metric lines to stdout and
    /// pushes it to StatsD (no thread, and only the server's own /proc and cgroup files are
    /// read).
    fn sample_metrics(&mut self) {
        let Some(sample) = self.take_sample() else {
            return;
        };
        if self.print_metrics {
            self.print_metric_lines(&sample);
        }
        if let Some(statsd) = self.statsd.as_mut() {
            statsd.push(&sample);
        }
    }

    /// The interval's sample, when one is due.
    fn take_sample(&mut self) -> Option<Sample> {
        let sampler = self.sampler.as_mut()?;
        let now = Instant::now();
        if now < sampler.next_deadline() {
            return None;
        }
        let workers: Vec<LiveWorker> = self
            .workers
            .iter()
            .map(|w| LiveWorker {
                slot: w.slot,
                pid: w.pid.as_raw(),
                spawned_at: w.spawned_at,
            })
            .collect();
        let backlog = listen_queue(&self.listeners);
        sampler.tick(
            now,
            std::process::id() as i32,
            &workers,
            &self.scoreboard,
            backlog,
            &mut self.tally,
        )
    }

    /// `--metrics-bind`: one turn of the endpoint (accept, read, write, expire: bounded,
    /// never waiting), and, when scrapes wait for it, the page, rendered once for all.
    fn serve_scrapes(&mut self) {
        let (Some(exporter), Some(poll)) = (self.exporter.as_mut(), self.poll.as_ref()) else {
            return;
        };
        let now = Instant::now();
        if !exporter.turn(now, poll.registry()) {
            return;
        }
        let page = self.scrape_page();
        if let (Some(exporter), Some(poll)) = (self.exporter.as_mut(), self.poll.as_ref()) {
            exporter.answer(now, &page, poll.registry());
        }
    }

    /// The Prometheus page: the scoreboard drained into the totals first (so the counters
    /// are current, and the next metric line still gets them), each process's memory read
    /// now. Workers handed over by a USR2 upgrade are left out of the per-worker families:
    /// their slots are in a scoreboard this image cannot see.
    fn scrape_page(&mut self) -> String {
        use crate::metrics::prometheus::{self, Snapshot, WorkerStates};
        use crate::metrics::sample::{MasterSample, WorkerSample};
        self.tally
            .drain(&self.scoreboard, self.workers.iter().map(|w| w.slot));
        let master_pid = std::process::id() as i32;
        let master = crate::procfs::read_memory(master_pid).map(|memory| MasterSample {
            pid: master_pid,
            memory,
            tasks: None,
        });
        let mut states = WorkerStates::default();
        let mut in_flight = 0;
        let mut workers = Vec::with_capacity(self.workers.len());
        for w in self.workers.iter().filter(|w| !w.adopted) {
            let view = self.scoreboard.slot(w.slot).view();
            match view.state {
                WorkerState::Booting => states.booting += 1,
                WorkerState::Idle => states.idle += 1,
                WorkerState::Busy => states.busy += 1,
                WorkerState::Stopping => states.stopping += 1,
                WorkerState::Free => {}
            }
            in_flight += view.in_flight;
            workers.push(WorkerSample {
                slot: w.slot,
                pid: w.pid.as_raw(),
                memory: crate::procfs::read_memory(w.pid.as_raw()),
                tasks: None,
                requests: view.requests,
                age: w.spawned_at.elapsed(),
            });
        }
        prometheus::render(&Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            start_time_us: self.started_us,
            master: master.as_ref(),
            workers: &workers,
            processes: self.workers.len(),
            states,
            in_flight,
            backlog: listen_queue(&self.listeners),
            requests: self.tally.total(),
            ends: self.tally.total_ends(),
            request_timeouts: self.tally.timeouts(Timeout::Request),
            boot_timeouts: self.tally.timeouts(Timeout::Boot),
            boot_failures: self.tally.boot_failures(),
        })
    }

    /// One write per line, so that lines do not interleave with other writers to the pipe.
    fn print_metric_lines(&self, sample: &Sample) {
        let Some(sampler) = &self.sampler else { return };
        let mut out = std::io::stdout().lock();
        for mut line in sample.lines(sampler.identity()) {
            line.push('\n');
            if out.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
        let _ = out.flush();
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough to spread max-requests across workers.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn spawn(&mut self, slot: usize) {
        let (read, write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "cannot create a control pipe");
                self.respawn_after = Some(Instant::now() + CRASH_BACKOFF_MAX);
                return;
            }
        };
        let memory_limit_kib =
            memory_limit_kib(self.config.max_worker_memory_mib, self.next_random());
        let random = self.next_random();
        let max_requests = request_limit(
            self.config.max_requests,
            self.config.max_requests_jitter,
            random,
        );
        self.scoreboard.slot(slot).reset();
        match sys::fork() {
            Ok(Forked::Parent(pid)) => {
                drop(read);
                debug!(worker = slot, pid = pid.as_raw(), "worker spawned");
                self.workers.push(Worker {
                    slot,
                    pid,
                    generation: self.generation,
                    control: write,
                    spawned_at: Instant::now(),
                    ready: false,
                    stop_sent: None,
                    killed: None,
                    memory_limit_kib,
                    adopted: false,
                    max_requests,
                });
            }
            Ok(Forked::Child) => {
                // Child side: drop what belongs to the master (the other workers' control
                // pipes, our own write end, the master's poll and signal pipe), then become
                // the worker. The inherited epoll fd is closed, never used: its instance is
                // shared with the master.
                drop(write);
                self.workers.clear();
                drop(self.poll.take());
                drop(self.statsd.take());
                // The endpoint's listener and any scrape connection: a connection held
                // here would not see its close until this worker exits.
                drop(self.exporter.take());
                let ctx = WorkerContext {
                    slot_index: slot,
                    slot: self.scoreboard.slot(slot),
                    listeners: std::mem::take(&mut self.listeners),
                    control: read,
                    master_signals: self.signals.take(),
                    master_pid: nix::unistd::getppid(),
                    max_requests,
                    config: self.config,
                };
                let code = worker::run(ctx, &mut self.app);
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            Err(e) => {
                error!(error = %e, "fork failed");
                self.scoreboard.slot(slot).free();
                self.respawn_after = Some(Instant::now() + CRASH_BACKOFF_MAX);
            }
        }
    }

    /// Waits for a signal or the next tick. The tick is short while something is changing
    /// (workers booting, a stop in progress), so readiness and deadlines are noticed
    /// promptly, and one second otherwise, enough for timeouts counted in seconds.
    fn wait(&mut self) {
        let busy_tick = !matches!(self.phase, Phase::Running)
            || self.respawn_after.is_some_and(|t| Instant::now() < t)
            || self.upgrade.is_some()
            || self
                .workers
                .iter()
                .any(|w| !w.ready || w.stop_sent.is_some());
        let mut timeout = if busy_tick {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        if let Some(t) = self.respawn_after {
            timeout = timeout.min(t.saturating_duration_since(Instant::now()));
        }
        if let Some(s) = &self.sampler {
            timeout = timeout.min(s.next_deadline().saturating_duration_since(Instant::now()));
        }
        if let Some(e) = &self.exporter {
            if e.backlogged() {
                timeout = Duration::ZERO;
            }
            if let Some(t) = e.next_deadline() {
                timeout = timeout.min(t.saturating_duration_since(Instant::now()));
            }
        }
        let Some(poll) = self.poll.as_mut() else {
            return;
        };
        let mut events = Events::with_capacity(4);
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => error!(error = %e, "poll failed"),
        }
    }
}

#[cfg(test)]
mod tests;
