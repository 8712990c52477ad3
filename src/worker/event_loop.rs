//! The worker's event loop: boot, the loop itself, stopping, the control pipe, handing the
//! listeners off and accepting connections.
//!
//! One poll holds everything the worker waits for: the listeners, the control pipe, the
//! signal pipe and the parked connections (see `conns`). Requests are served one at a time
//! (see `request`), between two turns of the loop.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::Signal;
use tracing::{debug, error, info, warn};

use super::WorkerContext;
use super::conns::{CLIENTS, Client, MAX_CLIENTS};
use super::panics::take_panic;
use super::request::InFlight;
use crate::error::{WORKER_BOOT_ERROR, WORKER_SETUP_ERROR};
use crate::h1::DateCache;
use crate::handler::{App, ConnectionInfo, Response, WorkerInfo};
use crate::listener::Listener;
use crate::scoreboard::WorkerState;
use crate::signals::{WorkerSignal, WorkerSignals};
use crate::sys;

/// Poll tokens of the control and signal pipes, clear of the listeners' (`0..listeners`)
/// and the connections' ([`CLIENTS`] and up).
const CONTROL: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// Pause before retrying accept after EMFILE and the like.
const RETRY: Duration = Duration::from_millis(100);
/// With requests in the app: the longest the worker waits without publishing that its loop
/// is alive (see `wait`).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a reading of the listen queues stands (see `someone_waiting`).
const QUEUE_CHECK: Duration = Duration::from_millis(1);

/// A worker process's state: what it took from the master, its poll, and the connections
/// it holds. Its methods are spread over this module (the loop), `conns` (the connection
/// table) and `request` (serving one request).
pub(super) struct Worker<'a, A: App> {
    pub(super) ctx: WorkerContext<'a>,
    pub(super) app: &'a mut A,
    pub(super) pid: u32,
    pub(super) poll: Poll,
    signals: WorkerSignals,
    control: mio::unix::pipe::Receiver,
    /// Why the worker stops, once something asked it to (logged when it exits).
    stopping: Option<&'static str>,
    /// Requests answered, refusals included (for `max_requests` and the exit line).
    pub(super) served: u64,
    /// Requests handed to the app (their default request ids count them).
    pub(super) taken: u64,
    /// Open connections, by id (`Token(CLIENTS + id)`); `None` marks a free id.
    pub(super) clients: Vec<Option<Client>>,
    /// Ids free in `clients`, reused before the table grows.
    pub(super) free_ids: Vec<usize>,
    /// Clients with a complete request, in the order they became ready.
    pub(super) ready: VecDeque<usize>,
    /// The app serves several requests at once (`--worker-connections` above 1, and an app
    /// that can): requests are started, and answered as the app finishes them.
    pub(super) concurrent: bool,
    /// Requests started in such an app, oldest first.
    pub(super) in_flight: Vec<InFlight>,
    /// Responses the app has finished (or the worker answered for it), to be written.
    pub(super) done: Vec<(usize, Response)>,
    /// Up to when the time with requests in flight was counted as busy (`account_busy`).
    pub(super) busy_counted: Instant,
    /// When to hand the heap's free pages back to the kernel: set when the last request in
    /// flight is answered (see `finish`), cleared when another starts.
    pub(super) trim_at: Option<Instant>,
    /// Per listener: worth an accept. Edge-triggered, so it stays true until accept says
    /// EAGAIN.
    listener_ready: Vec<bool>,
    /// Per listener: its TCP address, read once (for each request's `ConnectionInfo`).
    listener_addrs: Vec<Option<std::net::SocketAddr>>,
    /// The listeners were taken out of the poll when the worker began stopping.
    handed_off: bool,
    /// When the listen queues were last read, and whether a connection waited in one then.
    queue_seen: Option<(Instant, bool)>,
    /// A buffer kept for the next accepted connection (no allocation per connection).
    pub(super) spare: Vec<u8>,
    /// Reused by every response: its head's bytes, a streamed body's chunk, the `Date`.
    pub(super) head: Vec<u8>,
    pub(super) chunk: Vec<u8>,
    pub(super) date: DateCache,
    /// The current request's id and path, kept for the logs (buffers reused per request).
    pub(super) request_id: String,
    pub(super) path: String,
}

impl<'a, A: App> Worker<'a, A> {
    /// Sets the process up, runs `after_fork`, and publishes `Idle`. `Err` carries the exit
    /// code of a worker that could not boot.
    pub(super) fn boot(mut ctx: WorkerContext<'a>, app: &'a mut A) -> Result<Worker<'a, A>, i32> {
        let pid = std::process::id();
        sys::set_process_name(&format!("worker[{}]", ctx.slot_index));
        let setup = |what: &str, e: std::io::Error| {
            error!(worker = ctx.slot_index, pid, error = %e, "worker setup failed: {what}");
            WORKER_SETUP_ERROR
        };
        // The master may die without telling us (SIGKILL, OOM): the kernel then sends TERM,
        // which is a graceful stop, so the request in flight still gets its answer.
        match sys::die_with_parent(Signal::SIGTERM, ctx.master_pid) {
            Ok(true) => {}
            Ok(false) => return Err(0),
            Err(e) => return Err(setup("parent-death signal", e)),
        }
        let poll = Poll::new().map_err(|e| setup("poll", e))?;
        let signals = WorkerSignals::install(ctx.master_signals.take(), poll.registry(), SIGNALS)
            .map_err(|e| setup("signals", e))?;
        sys::unmask_signals().map_err(|e| setup("signal mask", e))?;
        ctx.slot.set_pid(pid as i32);

        call_after_fork(&ctx, app, pid)?;

        let control_fd = ctx
            .control
            .try_clone()
            .map_err(|e| setup("control pipe", e))?;
        let mut control = mio::unix::pipe::Receiver::from(control_fd);
        control
            .set_nonblocking(true)
            .map_err(|e| setup("control pipe", e))?;
        poll.registry()
            .register(&mut control, CONTROL, Interest::READABLE)
            .map_err(|e| setup("control pipe", e))?;
        for (i, l) in ctx.listeners.iter().enumerate() {
            // Best effort: without it responses may wait for Nagle, they are still served.
            if let Err(e) = l.set_nodelay_for_accepted() {
                warn!(worker = ctx.slot_index, pid, error = %e, "cannot set TCP_NODELAY");
            }
            register_listener(&poll, l, Token(i)).map_err(|e| setup("listener", e))?;
        }
        ctx.slot.set_state(WorkerState::Idle);
        info!(worker = ctx.slot_index, pid, "worker ready");
        Ok(Worker::new(ctx, app, pid, poll, signals, control))
    }

    /// A booted worker's state: nothing served, no connection, every listener worth an
    /// accept (connections may have queued while it booted).
    fn new(
        ctx: WorkerContext<'a>,
        app: &'a mut A,
        pid: u32,
        poll: Poll,
        signals: WorkerSignals,
        control: mio::unix::pipe::Receiver,
    ) -> Worker<'a, A> {
        let listeners = ctx.listeners.len();
        let listener_addrs = ctx.listeners.iter().map(Listener::local_addr).collect();
        let concurrent = ctx.config.worker_connections > 1 && app.concurrent().is_some();
        Worker {
            ctx,
            app,
            pid,
            poll,
            signals,
            control,
            stopping: None,
            served: 0,
            taken: 0,
            clients: Vec::new(),
            free_ids: Vec::new(),
            ready: VecDeque::new(),
            concurrent,
            in_flight: Vec::new(),
            done: Vec::new(),
            busy_counted: Instant::now(),
            trim_at: None,
            listener_ready: vec![true; listeners],
            listener_addrs,
            handed_off: false,
            queue_seen: None,
            spare: Vec::new(),
            head: Vec::with_capacity(512),
            chunk: vec![0; 16 * 1024],
            date: DateCache::default(),
            request_id: String::with_capacity(64),
            path: String::with_capacity(256),
        }
    }

    /// The worker's loop: serve ready requests, accept while there is room, expire parked
    /// connections, wait. Listeners and connections are edge-triggered in mio, so each
    /// readiness is drained (accept or read until EAGAIN).
    pub(super) fn serve_forever(mut self) -> i32 {
        let mut events = Events::with_capacity(64);
        let mut retry_soon = false;
        loop {
            self.check_stop();
            if self.stopping.is_some() && !self.handed_off {
                self.hand_off();
            }
            if let Some(reason) = self.stopping
                && !self.owes_requests()
            {
                return self.exit(reason);
            }
            if let Some((id, response)) = self.done.pop() {
                self.finish(id, response);
                continue;
            }
            if self.room_to_serve()
                && let Some(id) = self.ready.pop_front()
            {
                self.serve(id);
                continue;
            }
            // Expire before accepting: a full worker frees its slots here and accepts in the
            // same turn. Its listener's edge-triggered event may have come while it was full;
            // no other will come for a connection already queued.
            let now = Instant::now();
            self.expire(now);
            retry_soon |= self.accept_ready();
            if self.room_to_serve() && !self.ready.is_empty() {
                continue;
            }
            let mut timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if let Some(at) = self.trim_at {
                if now >= at {
                    self.trim_at = None;
                    self.give_back_memory();
                } else {
                    let left = at - now;
                    timeout = Some(timeout.map_or(left, |t| t.min(left)));
                }
            }
            if retry_soon {
                timeout = Some(timeout.map_or(RETRY, |t| t.min(RETRY)));
            }
            if let Err(e) = self.wait(&mut events, timeout) {
                error!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "poll failed");
                return WORKER_SETUP_ERROR;
            }
            if retry_soon {
                retry_soon = false;
                self.listener_ready.iter_mut().for_each(|r| *r = true);
            }
            for ev in events.iter() {
                match ev.token() {
                    CONTROL => self.read_control(),
                    SIGNALS => self.signals.clear_wakeups(),
                    Token(i) if i < self.listener_ready.len() => self.listener_ready[i] = true,
                    Token(t) if t >= CLIENTS => self.on_readable(t - CLIENTS),
                    _ => {}
                }
            }
        }
    }

    /// Gives back what a burst grew, once the worker has been idle a moment: trailing free
    /// slots of the client table, the spare room of the queues, the buffers kept from one
    /// request to the next (the ones kept are whichever came back last, allocated amid the
    /// burst, where each would hold a page of the heap) and the app's own; then the heap's
    /// free pages go back to the kernel. The next request allocates afresh.
    fn give_back_memory(&mut self) {
        self.spare = Vec::new();
        self.request_id = String::new();
        self.path = String::new();
        if let Some(app) = self.app.concurrent() {
            app.shrink();
        }
        while self.clients.last().is_some_and(Option::is_none) {
            self.clients.pop();
        }
        let len = self.clients.len();
        self.free_ids.retain(|&id| id < len);
        self.clients.shrink_to_fit();
        self.free_ids.shrink_to_fit();
        self.done.shrink_to_fit();
        self.in_flight.shrink_to_fit();
        self.ready.shrink_to_fit();
        sys::release_free_memory();
        debug!(
            worker = self.ctx.slot_index,
            pid = self.pid,
            "idle: memory given back"
        );
    }

    /// What a request on a connection accepted from listener `i` learns of it.
    fn connection_info(&self, i: usize, peer: Option<std::net::SocketAddr>) -> ConnectionInfo {
        ConnectionInfo {
            peer,
            local: self.listener_addrs[i],
            listener: i,
        }
    }

    /// The most connections the worker holds: [`MAX_CLIENTS`], or `--worker-connections` if
    /// larger (each of those requests needs its connection).
    fn max_clients(&self) -> usize {
        MAX_CLIENTS.max(self.ctx.config.worker_connections)
    }

    /// Whether a ready request can be served now: always, one at a time; with an app that
    /// serves several at once, while fewer than `--worker-connections` are in flight.
    fn room_to_serve(&self) -> bool {
        !self.concurrent || self.in_flight.len() < self.ctx.config.worker_connections
    }

    /// Waits for the next event or `timeout`. With requests in the app, the app's runtime
    /// runs them while the worker waits, until the worker's poll is readable or one of them
    /// is answered (then `events` may be empty and `done` not); the loop's progress is
    /// published at least every [`HEARTBEAT`], so that the master's `--timeout` sees a loop
    /// that stopped (a handler that blocks the thread), not slow requests.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> std::io::Result<()> {
        let result = if self.in_flight.is_empty() {
            self.poll.poll(events, timeout)
        } else {
            self.ctx.slot.mark_progress();
            // What the poll already holds first: the app's runtime waits for the poll's
            // next edge, not for events already queued.
            match self.poll.poll(events, Some(Duration::ZERO)) {
                Ok(()) if events.is_empty() => {
                    let timeout = Some(timeout.map_or(HEARTBEAT, |t| t.min(HEARTBEAT)));
                    let app = self.app.concurrent().expect("a concurrent worker's app");
                    app.wait(self.poll.registry().as_fd(), timeout, &mut self.done);
                    self.ctx.slot.mark_progress();
                    self.account_busy();
                    if self.done.is_empty() {
                        self.poll.poll(events, Some(Duration::ZERO))
                    } else {
                        Ok(())
                    }
                }
                other => other,
            }
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            other => other,
        }
    }

    /// While stopping: whether a connection we accepted still owes us its request, so the
    /// worker must wait for it (a fresh connection whose head has not fully arrived, or a
    /// keep-alive one with part of its next request). Closing those would lose a request
    /// the client already sent (it was never answered, and a client does not retry a new
    /// connection). They are bounded by `--header-timeout` (408) and, from the master, by
    /// `--graceful-timeout`. Idle keep-alive connections owe nothing: they are closed now,
    /// as RFC 9112 section 9.8 allows, and their clients retry elsewhere.
    fn owes_requests(&mut self) -> bool {
        let mut owed = false;
        for id in 0..self.clients.len() {
            let Some(c) = self.clients[id].as_ref() else {
                continue;
            };
            if c.lingering || c.in_app || self.ready.contains(&id) {
                continue;
            }
            if c.requests == 0 || !c.buf.is_empty() {
                owed = true;
            } else {
                self.close(id, false);
            }
        }
        owed || !self.ready.is_empty() || !self.in_flight.is_empty() || !self.done.is_empty()
    }

    /// Stops: requests already complete are answered (with `Connection: close`), parked
    /// connections are closed, and the worker exits.
    fn exit(&mut self, reason: &'static str) -> i32 {
        self.ctx.slot.set_state(WorkerState::Stopping);
        while let Some(id) = self.ready.pop_front() {
            self.serve(id);
        }
        self.clients.clear();
        info!(
            worker = self.ctx.slot_index,
            pid = self.pid,
            reason,
            requests = self.served,
            "worker exiting"
        );
        0
    }

    /// Stopping: takes the listeners out of this worker's poll, then accepts one queued
    /// connection from each (owed, and served before the worker exits).
    ///
    /// Why: the listeners are registered with EPOLLEXCLUSIVE, so the kernel wakes one idle
    /// worker per new connection, not all of them. If that one is a worker that stops instead
    /// of accepting, nobody else hears of the connection until the next one arrives, and
    /// with no next one it waits forever (seen as requests hanging during HUP and USR2).
    /// Once out of the poll, this worker is woken no more. A waiting worker takes at most
    /// one wake-up before it runs again (epoll removes it from the wait queue as it wakes
    /// it), so one accept honours the wake-up it may have taken; done after the removal,
    /// none falls in between. Taking more would serve queued requests one after the other
    /// in a worker that is leaving, while the others could take them at once.
    fn hand_off(&mut self) {
        self.handed_off = true;
        for l in &self.ctx.listeners {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&l.as_raw_fd()));
        }
        for i in 0..self.listener_ready.len() {
            self.listener_ready[i] = false;
            if self.open_clients() >= self.max_clients() {
                continue;
            }
            // EAGAIN (nothing queued), EINVAL (shut down by the master) or out of
            // resources: nothing to take.
            if let Ok((conn, peer)) = self.ctx.listeners[i].accept() {
                self.admit(conn, self.connection_info(i, peer));
            }
        }
    }

    /// Accepts from every ready listener while fewer than `max_clients` connections are
    /// open; a connection whose request is already complete goes to the ready queue, the
    /// others are parked. Returns true when accept failed for lack of resources.
    fn accept_ready(&mut self) -> bool {
        let mut retry = false;
        for i in 0..self.listener_ready.len() {
            while self.listener_ready[i]
                && self.open_clients() < self.max_clients()
                && self.stopping.is_none()
            {
                match self.ctx.listeners[i].accept() {
                    Ok((conn, peer)) => {
                        self.admit(conn, self.connection_info(i, peer));
                        if !self.ready.is_empty() {
                            // Serve it before taking more: the connections still queued
                            // are left to the other workers, one at a time each.
                            return retry;
                        }
                    }
                    Err(e) => match e.raw_os_error() {
                        Some(libc::EAGAIN) => self.listener_ready[i] = false,
                        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => {}
                        Some(libc::EINVAL) => {
                            // The master stopped the listener (graceful stop).
                            self.listener_ready[i] = false;
                            self.stopping.get_or_insert("listeners closed");
                        }
                        _ => {
                            // EMFILE, ENFILE, ENOBUFS: out of resources; try again shortly
                            // rather than spin.
                            warn!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "accept failed");
                            self.listener_ready[i] = false;
                            retry = true;
                        }
                    },
                }
            }
        }
        retry
    }

    /// Reads the control pipe: any byte asks for a graceful stop; EOF means the master is gone.
    fn read_control(&mut self) {
        let mut b = [0u8; 16];
        loop {
            match self.control.read(&mut b) {
                Ok(0) => {
                    self.stopping.get_or_insert("master gone");
                    return;
                }
                Ok(_) => {
                    self.stopping.get_or_insert("stop requested by master");
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Checks, without a syscall, whether it is time to stop, and reopens logs if asked.
    fn check_stop(&mut self) {
        for s in self.signals.take() {
            match s {
                WorkerSignal::Stop => {
                    self.stopping.get_or_insert("signal");
                }
                WorkerSignal::Reopen => {
                    let n = sys::reopen_append_logs();
                    info!(
                        worker = self.ctx.slot_index,
                        pid = self.pid,
                        files = n,
                        "reopened log files"
                    );
                }
            }
        }
        if self.ctx.slot.stop_requested() {
            self.stopping.get_or_insert("stop requested by master");
        }
        if self.ctx.max_requests > 0 && self.served >= self.ctx.max_requests {
            self.stopping.get_or_insert("max requests reached");
        }
    }

    /// Whether this worker will stop after the request it is serving.
    pub(super) fn stop_pending(&self) -> bool {
        self.stopping.is_some()
            || self.ctx.slot.stop_requested()
            || self.signals.stop_requested()
            || (self.ctx.max_requests > 0 && self.served + 1 >= self.ctx.max_requests)
    }

    /// Is a connection waiting in a listen queue? Then the connection being answered is
    /// closed rather than kept: a one-at-a-time worker must not sit on an idle connection
    /// while a new client waits (TCP_INFO on each TCP listener; Unix listeners do not say).
    ///
    /// The queues are read at most once every [`QUEUE_CHECK`]: a getsockopt per listener
    /// after every response cost keep-alive throughput at one worker, and a queue does not
    /// change its answer much within a millisecond.
    pub(super) fn someone_waiting(&mut self) -> bool {
        let now = Instant::now();
        if let Some((at, waiting)) = self.queue_seen
            && now.saturating_duration_since(at) < QUEUE_CHECK
        {
            return waiting;
        }
        let waiting = self
            .ctx
            .listeners
            .iter()
            .any(|l| l.listen_queue().is_some_and(|q| q.depth > 0));
        self.queue_seen = Some((now, waiting));
        waiting
    }
}

/// Runs the app's `after_fork`; `Err` carries the exit code that tells the master the app
/// could not boot (a failed or panicking hook), as opposed to the worker's own setup.
fn call_after_fork<A: App>(ctx: &WorkerContext<'_>, app: &mut A, pid: u32) -> Result<(), i32> {
    let info = WorkerInfo {
        slot: ctx.slot_index,
        pid,
    };
    match catch_unwind(AssertUnwindSafe(|| app.after_fork(&info))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            error!(worker = ctx.slot_index, pid, error = %e, "after_fork failed");
            Err(WORKER_BOOT_ERROR)
        }
        Err(_) => {
            error!(
                worker = ctx.slot_index,
                pid,
                panic = take_panic(),
                "after_fork failed"
            );
            Err(WORKER_BOOT_ERROR)
        }
    }
}

/// Puts a listener in the worker's poll, exclusively where the kernel allows it: a new
/// connection then wakes one idle worker instead of all of them (see
/// [`sys::epoll_add_exclusive`]); elsewhere as an ordinary edge-triggered source. Either
/// way the worker drains it (accepts until EAGAIN) after an event.
fn register_listener(poll: &Poll, l: &Listener, token: Token) -> std::io::Result<()> {
    match sys::epoll_add_exclusive(poll.registry().as_fd(), l.as_fd(), token.0 as u64) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            poll.registry()
                .register(&mut SourceFd(&l.as_raw_fd()), token, Interest::READABLE)
        }
        other => other,
    }
}
