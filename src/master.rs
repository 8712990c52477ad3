//! The master: forks the workers and supervises them; never serves a request and never
//! starts a thread (fork is only sound with one).
//!
//! [`Master::run`] is the whole story: reap, drain signals, act, check timeouts, keep the
//! worker count, wait. The decisions ("how many to spawn, which to stop") are the pure
//! function [`plan`], tested without fork.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tracing::{debug, error, info, warn};

use crate::autoscale::{self, Resizer};
use crate::config::{Config, MAX_WORKERS, MemoryMeasure};
use crate::error::{EXIT_CRASH_LOOP, EXIT_OK, WORKER_BOOT_ERROR};
use crate::handler::App;
use crate::listener::Listener;
use crate::metrics::proc as memory;
use crate::metrics::sample::{Identity, LiveWorker, Sampler};
use crate::metrics::tcp::ListenQueue;
use crate::notify::Notifier;
use crate::scoreboard::{Scoreboard, WorkerState};
use crate::signals::{MasterSignal, MasterSignals};
use crate::sys::{self, Forked};
use crate::tools::advice::{Cpu, Measured, ProcessMemory, advise};
use crate::upgrade::{self, Handover, WorkerRecord};
use crate::worker::{self, WorkerContext};

/// Consecutive workers that die before they are ready, after which the master gives up and
/// exits with `EXIT_CRASH_LOOP`.
pub const CRASH_LOOP_LIMIT: u32 = 10;
/// The first pause before respawning after a boot failure; it doubles with each consecutive
/// failure, up to [`CRASH_BACKOFF_MAX`].
pub const CRASH_BACKOFF_START: Duration = Duration::from_millis(50);
/// The longest pause between respawns in a crash loop.
pub const CRASH_BACKOFF_MAX: Duration = Duration::from_secs(2);

const SIGNALS: Token = Token(0);

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

/// A new worker's memory limit in KiB: `max_mib` less a random 0-10 %, so that workers
/// growing alike pass their limits at different times. 0 (no limit) stays 0.
pub fn memory_limit_kib(max_mib: u64, random: u64) -> u64 {
    let max = max_mib.saturating_mul(1024);
    max - random % (max / 10 + 1)
}

/// The memory `--workers auto` plans within, in MiB: the server's cgroup limit, else the
/// machine's memory.
fn memory_quota_mib() -> f64 {
    crate::metrics::cgroup::own_quota_bytes()
        .map(|b| b as f64 / (1024.0 * 1024.0))
        .or_else(|| memory::read_mem_total_kib().map(|k| k as f64 / 1024.0))
        .unwrap_or(512.0)
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
}

/// `--workers auto`: what the master remembers between evaluations.
#[derive(Debug)]
struct Auto {
    cpus: usize,
    resizer: Resizer,
    next_evaluation: Instant,
    /// Per worker pid: CPU ticks and busy microseconds at the last evaluation.
    last: Vec<(Pid, u64, u64)>,
    last_at: Instant,
}

/// A USR2 upgrade waiting for the new binary's `--check-config`.
#[derive(Debug)]
struct Upgrade {
    checker: Pid,
    started: Instant,
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
            sampler: config.metrics_interval.map(|interval| {
                let id = Identity::from_env(&|k| std::env::var(k).ok(), sys::hostname());
                Sampler::new(id, interval)
            }),
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

    /// Takes over the workers a previous image left running (USR2): they are our children
    /// still, and keep serving as an old generation until ours are ready (`plan`).
    fn adopt(&mut self, h: Handover) {
        let now = Instant::now();
        for r in &h.workers {
            let control = match sys::adopt_fd(r.control_fd) {
                Ok(fd) => fd,
                Err(e) => {
                    // Without its pipe it cannot be stopped softly: TERM does the same.
                    warn!(worker = r.slot, pid = r.pid, error = %e, "old worker's control pipe is gone");
                    match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
                        Ok((_, w)) => w,
                        Err(_) => continue,
                    }
                }
            };
            let _ = sys::set_cloexec(&control);
            self.workers.push(Worker {
                slot: r.slot,
                pid: Pid::from_raw(r.pid),
                generation: 0,
                control,
                spawned_at: now,
                ready: r.ready,
                stop_sent: r.stopping.then_some(now),
                killed: None,
                memory_limit_kib: 0,
                adopted: true,
            });
            if r.stopping {
                // Asked before the exec, through a flag this image cannot see: repeat it.
                let _ = kill(Pid::from_raw(r.pid), Signal::SIGTERM);
            }
        }
        self.target = h.target;
        self.generation = 1;
        info!(
            workers = self.workers.len(),
            target = self.target,
            "upgraded: the previous binary's workers serve until the new ones are ready"
        );
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
            if let Some(sampler) = self.sampler.as_mut() {
                sampler.on_reap(slot);
            }
            slot.free();
            self.report_exit(&w, status, view.requests, ready);
        }
    }

    /// Logs how a worker ended, and counts a death before ready as a boot failure.
    fn report_exit(&mut self, w: &Worker, status: WaitStatus, requests: u64, ready: bool) {
        let (slot, pid) = (w.slot, w.pid.as_raw());
        let expected = w.stop_sent.is_some() || matches!(self.phase, Phase::Stopping { .. });
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
        if !ready && !expected && w.killed != Some("quick stop") {
            self.boot_failures += 1;
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

    /// Zero-downtime upgrade, step 1: check that the binary at our startup path can start
    /// with our settings (`--check-config`, in a child reaped by `reap`); step 2, in
    /// `on_check_done`, re-executes it.
    fn on_usr2(&mut self) {
        if self.phase != Phase::Running {
            info!("USR2 ignored: stopping");
            return;
        }
        if let Some(u) = &self.upgrade {
            info!(
                checker = u.checker.as_raw(),
                "USR2 ignored: an upgrade is already being checked"
            );
            return;
        }
        let Some(exe) = self.exe.clone() else {
            error!("upgrade impossible: the path of this binary is unknown; still serving");
            return;
        };
        let child = std::process::Command::new(&exe)
            .args(&self.args)
            .arg("--check-config")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                let checker = Pid::from_raw(child.id() as i32);
                // Reaped by `reap`, with every other child: the Child handle is not waited on.
                drop(child);
                info!(exe = %exe.display(), checker = checker.as_raw(), "upgrade: checking the new binary");
                self.notifier.reloading("upgrading");
                self.announced = false;
                self.upgrade = Some(Upgrade {
                    checker,
                    started: Instant::now(),
                });
            }
            Err(e) => error!(
                exe = %exe.display(),
                error = %e,
                "upgrade aborted: cannot run the new binary; still serving with the old one"
            ),
        }
    }

    /// The new binary's check ended: re-execute it if it passed.
    fn on_check_done(&mut self, status: WaitStatus) {
        self.upgrade = None;
        if self.phase != Phase::Running {
            return;
        }
        if !matches!(status, WaitStatus::Exited(_, 0)) {
            let outcome = match status {
                WaitStatus::Exited(_, c) => format!("exit code {c}"),
                WaitStatus::Signaled(_, s, _) => format!("signal {}", s.as_str()),
                other => format!("{other:?}"),
            };
            error!(
                check = outcome.as_str(),
                "upgrade aborted: the new binary failed --check-config; still serving with the old one"
            );
            return;
        }
        let Some(exe) = self.exe.clone() else { return };
        let handover = Handover {
            target: self.target,
            listen_fds: self.listeners.iter().map(|l| l.as_raw_fd()).collect(),
            workers: self
                .workers
                .iter()
                .map(|w| WorkerRecord {
                    slot: w.slot,
                    pid: w.pid.as_raw(),
                    control_fd: w.control.as_raw_fd(),
                    ready: w.ready,
                    stopping: w.stop_sent.is_some() || w.killed.is_some(),
                })
                .collect(),
        };
        let keep: Vec<BorrowedFd<'_>> = self
            .listeners
            .iter()
            .map(|l| l.as_fd())
            .chain(self.workers.iter().map(|w| w.control.as_fd()))
            .collect();
        info!(
            exe = %exe.display(),
            workers = handover.workers.len(),
            "upgrade: re-executing; the workers serve on meanwhile"
        );
        let _ = std::io::stdout().flush();
        let env: Vec<(&str, &OsString)> = self.notifier.env().into_iter().collect();
        let e = upgrade::exec(&exe, &self.args, &env, &keep, &handover);
        error!(exe = %exe.display(), error = %e, "upgrade aborted: exec failed; still serving with the old binary");
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

    fn check_timeouts(&mut self) {
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
        // A worker asked to stop has `graceful_timeout` to finish its request, as at a
        // graceful stop. It matters for the workers a previous image handed over: their
        // scoreboard did not cross the exec, so the request timeout below cannot see them.
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
        let Some(timeout) = self.config.timeout else {
            return;
        };
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
                        "worker timeout: killing it"
                    );
                    w.killed = Some("timeout");
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
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    /// `--max-worker-memory`: once a second, replaces (gracefully: after its request) a
    /// worker whose memory passed its limit, one worker at a time. Its successor is spawned
    /// at once by `keep_worker_count`, as stopping workers do not count.
    fn check_memory(&mut self) {
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
    fn start_auto(&mut self, upgraded: bool) {
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
        });
    }

    /// `--workers auto`, every `--auto-interval`: measure the workers that have served
    /// traffic and resize the pool as `autoscale` decides.
    fn evaluate_auto(&mut self) {
        let Some(auto) = self.auto.as_mut() else {
            return;
        };
        let now = Instant::now();
        if self.phase != Phase::Running || now < auto.next_evaluation {
            return;
        }
        auto.next_evaluation = now + self.config.auto_interval;
        let ticks = sys::clock_ticks_per_sec() as f64;
        let (mut workers, mut seen) = (Vec::new(), Vec::new());
        let (mut cpu_secs, mut busy_secs) = (0.0, 0.0);
        for w in &self.workers {
            if w.adopted || w.stop_sent.is_some() || w.killed.is_some() || !w.ready {
                continue;
            }
            let view = self.scoreboard.slot(w.slot).view();
            let (Some(mem), Some(cpu)) = (
                memory::read_memory(w.pid.as_raw()),
                memory::read_cpu_ticks(w.pid.as_raw()),
            ) else {
                continue;
            };
            seen.push((w.pid, cpu, view.busy_us));
            if let Some(&(_, cpu0, busy0)) = auto.last.iter().find(|(p, _, _)| *p == w.pid) {
                cpu_secs += cpu.saturating_sub(cpu0) as f64 / ticks;
                busy_secs += view.busy_us.saturating_sub(busy0) as f64 / 1e6;
            }
            if view.requests > 0 {
                workers.push(ProcessMemory {
                    pss_mb: mem.pss_kib as f64 / 1024.0,
                    uss_mb: mem.uss_kib as f64 / 1024.0,
                });
            }
        }
        auto.last = seen;
        let interval_secs = now.duration_since(auto.last_at).as_secs_f64();
        auto.last_at = now;
        if workers.is_empty() {
            return; // nothing has served traffic yet: the boot estimate stands
        }
        let master = memory::read_memory(std::process::id() as i32).map_or_else(
            ProcessMemory::default,
            |m| ProcessMemory {
                pss_mb: m.pss_kib as f64 / 1024.0,
                uss_mb: m.uss_kib as f64 / 1024.0,
            },
        );
        let quota_mib = memory_quota_mib();
        let on_cpu = autoscale::on_cpu(cpu_secs, busy_secs);
        let measured = Measured {
            master,
            workers: &workers,
            dyno_total_mb: None,
        };
        let cpu = on_cpu.map(|on_cpu| Cpu {
            cpus: auto.cpus as f64,
            on_cpu,
        });
        let advice = advise(quota_mib, autoscale::HEADROOM, &measured, cpu);
        // Too little serving to tell how CPU-bound requests are (an idle spell): only the
        // memory may move the count.
        // And with the CPUs saturated by the workers already, more workers only queue for
        // them (a request that "waits" may be waiting for a CPU): do not grow.
        let saturated = cpu_secs >= 0.9 * interval_secs * auto.cpus as f64;
        let advised = match on_cpu {
            Some(_) if saturated => advice.workers.min(self.target),
            Some(_) => advice.workers,
            None => self.target.min(advice.by_memory),
        };
        let bounds = autoscale::bounds(auto.cpus);
        let next = auto
            .resizer
            .next(self.target, advised, advice.by_memory, bounds);
        let figures = (
            format!("{:.2}", advice.per_worker_mb),
            format!("{:.2}", advice.base_mb),
            format!("{quota_mib:.2}"),
            on_cpu.map_or("-".to_string(), |f| format!("{f:.2}")),
        );
        match next {
            Some(n) => {
                info!(
                    workers = n,
                    from = self.target,
                    advised,
                    by_memory = advice.by_memory,
                    by_cpu = advice
                        .by_cpu
                        .map_or("-".to_string(), |n| n.to_string())
                        .as_str(),
                    worker_mb = figures.0.as_str(),
                    base_mb = figures.1.as_str(),
                    quota_mb = figures.2.as_str(),
                    on_cpu = figures.3.as_str(),
                    "auto: resizing the pool"
                );
                self.target = n;
            }
            None => debug!(
                workers = self.target,
                advised,
                by_memory = advice.by_memory,
                worker_mb = figures.0.as_str(),
                on_cpu = figures.3.as_str(),
                "auto: evaluated"
            ),
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

    /// Every `--metrics-interval`, prints the metric lines to stdout (one write per line; no
    /// thread, and only the server's own /proc and cgroup files are read).
    fn sample_metrics(&mut self) {
        let Some(sampler) = self.sampler.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now < sampler.next_deadline() {
            return;
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
        let lines = sampler.tick(
            now,
            std::process::id() as i32,
            &workers,
            &self.scoreboard,
            backlog,
        );
        let mut out = std::io::stdout().lock();
        for mut line in lines {
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
mod tests {
    use super::*;

    fn w(slot: usize, generation: u64, ready: bool) -> WorkerView {
        WorkerView {
            slot,
            generation,
            ready,
            stopping: false,
        }
    }

    #[test]
    fn tops_up_to_target() {
        assert_eq!(
            plan(&[], 3, 0),
            Plan {
                spawn: 3,
                stop: vec![]
            }
        );
        assert_eq!(
            plan(&[w(0, 0, true)], 3, 0),
            Plan {
                spawn: 2,
                stop: vec![]
            }
        );
        assert_eq!(
            plan(&[w(0, 0, true), w(1, 0, false), w(2, 0, true)], 3, 0),
            Plan::default()
        );
    }

    #[test]
    fn stops_the_newest_extras() {
        let ws = [w(0, 0, true), w(1, 0, true), w(2, 0, true)];
        assert_eq!(
            plan(&ws, 2, 0),
            Plan {
                spawn: 0,
                stop: vec![2]
            }
        );
        assert_eq!(
            plan(&ws, 0, 0),
            Plan {
                spawn: 0,
                stop: vec![2, 1, 0]
            }
        );
    }

    #[test]
    fn stopping_workers_do_not_count() {
        let ws = [
            w(0, 0, true),
            WorkerView {
                stopping: true,
                ..w(1, 0, true)
            },
        ];
        assert_eq!(
            plan(&ws, 2, 0),
            Plan {
                spawn: 1,
                stop: vec![]
            }
        );
    }

    #[test]
    fn hup_keeps_old_workers_until_new_ones_are_ready() {
        let old = [w(0, 0, true), w(1, 0, true)];
        // Right after HUP: spawn two new ones, stop nothing.
        assert_eq!(
            plan(&old, 2, 1),
            Plan {
                spawn: 2,
                stop: vec![]
            }
        );
        // One new worker ready: one old one may go.
        let ws = [old[0], old[1], w(2, 1, true), w(3, 1, false)];
        assert_eq!(
            plan(&ws, 2, 1),
            Plan {
                spawn: 0,
                stop: vec![0]
            }
        );
        // Both ready: both old ones go.
        let ws = [old[0], old[1], w(2, 1, true), w(3, 1, true)];
        assert_eq!(
            plan(&ws, 2, 1),
            Plan {
                spawn: 0,
                stop: vec![0, 1]
            }
        );
    }

    #[test]
    fn request_limits_spread_within_the_jitter() {
        assert_eq!(request_limit(0, 50, 12345), 0);
        assert_eq!(request_limit(100, 0, 12345), 100);
        let limits: Vec<u64> = (0..1000).map(|r| request_limit(100, 9, r * 7919)).collect();
        assert!(limits.iter().all(|&l| (100..=109).contains(&l)));
        assert_eq!(*limits.iter().min().unwrap(), 100);
        assert_eq!(*limits.iter().max().unwrap(), 109);
        assert_eq!(request_limit(u64::MAX, u64::MAX, 3), u64::MAX);
    }

    #[test]
    fn memory_limits_spread_over_the_top_tenth() {
        assert_eq!(memory_limit_kib(0, 12345), 0);
        assert_eq!(memory_limit_kib(100, 0), 102_400);
        for r in [1, 999, 10_240, 10_241, u64::MAX] {
            let l = memory_limit_kib(100, r);
            assert!((92_160..=102_400).contains(&l), "{l}");
        }
        assert_eq!(memory_limit_kib(100, 10_240), 92_160);
    }

    #[test]
    fn free_slots_are_reused_lowest_first() {
        assert_eq!(free_slot([0, 2].into_iter(), 4), Some(1));
        assert_eq!(free_slot([0, 1].into_iter(), 2), None);
    }
}
