//! Signals, the only user of signal-hook: handlers only record (through signal-hook's
//! self-pipe, registered in a mio poll), and the loops drain and act later
//! (signal-safety(7); Gunicorn #3198 shows what logging in a handler does).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mio::{Interest, Registry, Token};
use nix::sys::signal::Signal;
use signal_hook::consts::signal::*;
use signal_hook_mio::v1_0::Signals;

use crate::sys;

/// A signal the master acts on (docs/signals.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterSignal {
    /// TERM or QUIT: graceful stop.
    Term,
    /// INT: quick stop.
    Int,
    /// HUP: replace every worker.
    Hup,
    /// USR1: reopen log files, forward to workers.
    Usr1,
    /// USR2: zero-downtime upgrade (re-execute the binary in place; see `upgrade`).
    Usr2,
    /// WINCH: stop every worker, keep the master.
    Winch,
    /// TTIN: one worker more.
    Ttin,
    /// TTOU: one worker fewer.
    Ttou,
    /// CHLD: a worker ended.
    Chld,
}

/// A signal a worker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerSignal {
    /// TERM or QUIT: finish the current request, then exit.
    Stop,
    /// USR1: reopen log files after the current request.
    Reopen,
}

const MASTER_SIGNALS: &[i32] = &[
    SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU, SIGCHLD,
];

/// The master's signal receiver.
pub struct MasterSignals {
    signals: Signals,
}

impl MasterSignals {
    /// Installs the master's handlers and registers their pipe in `registry` under `token`.
    pub fn install(registry: &Registry, token: Token) -> io::Result<MasterSignals> {
        let mut signals = Signals::new(MASTER_SIGNALS)?;
        registry.register(&mut signals, token, Interest::READABLE)?;
        Ok(MasterSignals { signals })
    }

    /// Signals received since the last call, oldest first (each kind at most once per call;
    /// CHLD is reported but the reaping loop does the real work).
    pub fn drain(&mut self) -> Vec<MasterSignal> {
        self.signals
            .pending()
            .filter_map(|s| match s {
                SIGTERM | SIGQUIT => Some(MasterSignal::Term),
                SIGINT => Some(MasterSignal::Int),
                SIGHUP => Some(MasterSignal::Hup),
                SIGUSR1 => Some(MasterSignal::Usr1),
                SIGUSR2 => Some(MasterSignal::Usr2),
                SIGWINCH => Some(MasterSignal::Winch),
                SIGTTIN => Some(MasterSignal::Ttin),
                SIGTTOU => Some(MasterSignal::Ttou),
                SIGCHLD => Some(MasterSignal::Chld),
                _ => None,
            })
            .collect()
    }
}

/// The worker's signal receiver. Besides waking the worker's poll, TERM, QUIT and USR1 set
/// flags that the worker reads between requests without a syscall.
pub struct WorkerSignals {
    signals: Signals,
    stop: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
}

impl WorkerSignals {
    /// Child side of fork, signals still masked: drops the master's receiver (which
    /// unregisters its actions and closes its self-pipe in this process only), sets the
    /// dispositions a worker wants, and installs the worker's own receiver.
    ///
    /// INT keeps its default action (the worker dies at once: the quick stop, docs/design.md); the
    /// master's management signals are ignored, so a signal sent to the whole process group
    /// (a terminal's HUP, a stray TTIN) does not kill workers.
    pub fn install(
        master: Option<MasterSignals>,
        registry: &Registry,
        token: Token,
    ) -> io::Result<WorkerSignals> {
        drop(master);
        sys::default_signal(Signal::SIGINT)?;
        sys::default_signal(Signal::SIGCHLD)?;
        for sig in [
            Signal::SIGHUP,
            Signal::SIGWINCH,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
            Signal::SIGUSR2,
        ] {
            sys::ignore_signal(sig)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGTERM, stop.clone())?;
        signal_hook::flag::register(SIGQUIT, stop.clone())?;
        signal_hook::flag::register(SIGUSR1, reopen.clone())?;
        let mut signals = Signals::new([SIGTERM, SIGQUIT, SIGUSR1])?;
        registry.register(&mut signals, token, Interest::READABLE)?;
        Ok(WorkerSignals {
            signals,
            stop,
            reopen,
        })
    }

    /// Has TERM or QUIT arrived? (no syscall)
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Empties the wake-up pipe (after the poll reported it readable).
    pub fn clear_wakeups(&mut self) {
        self.signals.pending().for_each(drop);
    }

    /// Signals received and not yet taken: `Stop` stays set once received; `Reopen` is taken
    /// by this call.
    pub fn take(&self) -> Vec<WorkerSignal> {
        let mut out = Vec::new();
        if self.stop.load(Ordering::Relaxed) {
            out.push(WorkerSignal::Stop);
        }
        if self.reopen.swap(false, Ordering::Relaxed) {
            out.push(WorkerSignal::Reopen);
        }
        out
    }
}
