//! A worker process: serves one request at a time, from the connections it accepts.
//!
//! A connection whose request has not fully arrived does not hold the worker: it is parked
//! in the worker's own poll (with the listeners, the control pipe and the signal pipe), and
//! the worker serves whichever request is complete first. The common case (the whole
//! request in the first read) is served at once, without touching the poll. Keep-alive
//! connections wait between requests parked the same way.
//!
//! Runs on the child side of fork only. It never imports `master`: what it needs from the
//! master arrives in a [`WorkerContext`]. It stops between requests when the master asks
//! (control pipe and scoreboard flag), on TERM/QUIT, after `max_requests`, or when the master
//! is gone (control pipe EOF, or the parent-death signal).
//!
//! Where to read what:
//! - `event_loop`: the [`Worker`] itself, its boot, its loop, how it
//!   stops, and accepting (with the hand-off of the listeners when it stops);
//! - `conns`: the connection table: admitting, parking, reading, expiring and closing the
//!   connections the worker holds;
//! - `request`: serving one request: the app call, the response, whether the connection
//!   carries on, the access log;
//! - `wire`: the request body and the response as bytes on the socket; `io`: blocking reads
//!   and writes with an idle limit over the non-blocking connection;
//! - `panics`: the panic hook that lets a caught panic be logged with its request.

mod body;
mod conns;
mod event_loop;
mod io;
mod panics;
mod request;
mod wire;

/// The body collector, for the `body` fuzz target (through `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub use body::{BodyError, Collector, CompleteBody, MEMORY_BODY, Readable};

use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use nix::unistd::Pid;
use tracing::error;

use crate::config::Config;
use crate::error::WORKER_SETUP_ERROR;
use crate::handler::App;
use crate::listener::Listener;
use crate::scoreboard::Slot;
use crate::signals::MasterSignals;
use event_loop::Worker;
use panics::install_panic_hook;
pub(crate) use panics::take_panic;

/// A request's id: the router's `X-Request-Id` when it sent one, else one made by the worker
/// (`<pid>-<n>`). Available as a request extension; logged with timeouts and access lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Everything a worker takes from the master at fork.
pub struct WorkerContext<'a> {
    /// The worker's slot index.
    pub slot_index: usize,
    /// Its slot in the scoreboard.
    pub slot: Slot<'a>,
    /// The listeners, shared with the master and the other workers.
    pub listeners: Vec<Listener>,
    /// The read end of this worker's control pipe (a byte: stop; EOF: the master is gone).
    pub control: OwnedFd,
    /// The master's signal receiver, to be dropped in the child.
    pub master_signals: Option<MasterSignals>,
    /// The master's pid, to notice its death.
    pub master_pid: Pid,
    /// Requests to serve before exiting (0: no limit), jitter included.
    pub max_requests: u64,
    /// The settings.
    pub config: &'a Config,
}

/// Runs a worker to its end and returns its exit code. Child side of fork, with signals
/// still masked.
pub fn run<A: App>(ctx: WorkerContext<'_>, app: &mut A) -> i32 {
    install_panic_hook();
    match catch_unwind(AssertUnwindSafe(|| {
        Worker::boot(ctx, app).map(|w| w.serve_forever())
    })) {
        Ok(Ok(code)) => code,
        Ok(Err(code)) => code,
        Err(_) => {
            error!(panic = take_panic(), "worker panicked outside the app");
            WORKER_SETUP_ERROR
        }
    }
}
