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

mod io;
mod wire;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, StatusCode, Version};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::error::{WORKER_BOOT_ERROR, WORKER_SETUP_ERROR};
use crate::h1::{self, BodyFraming, ChunkedDecoder, DateCache, Framing, Limits, Parsed, Persist};
use crate::handler::{App, RequestBody, Response, WorkerInfo};
use crate::listener::{Conn, Listener};
use crate::scoreboard::{Slot, WorkerState};
use crate::signals::{MasterSignals, WorkerSignal, WorkerSignals};
use crate::sys;

const CONTROL: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

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

thread_local! {
    /// The last panic's message and location, recorded by the worker's panic hook so that the
    /// code that caught it can log it with the request it happened in.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        let text = match info.location() {
            Some(l) => format!("{msg} ({}:{})", l.file(), l.line()),
            None => msg,
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
    }));
}

fn take_panic() -> String {
    LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| "unknown panic".into())
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

struct Worker<'a, A: App> {
    ctx: WorkerContext<'a>,
    app: &'a mut A,
    pid: u32,
    poll: Poll,
    signals: WorkerSignals,
    control: mio::unix::pipe::Receiver,
    stopping: Option<&'static str>,
    served: u64,
    /// Open connections, by id (`Token(CLIENTS + id)`); `None` marks a free id.
    clients: Vec<Option<Client>>,
    free_ids: Vec<usize>,
    /// Clients with a complete request, in the order they became ready.
    ready: VecDeque<usize>,
    listener_ready: Vec<bool>,
    /// The listeners were taken out of the poll when the worker began stopping.
    handed_off: bool,
    /// A buffer kept for the next accepted connection (no allocation per connection).
    spare: Vec<u8>,
    head: Vec<u8>,
    chunk: Vec<u8>,
    date: DateCache,
    /// The current request's id and path, kept for the logs (buffers reused per request).
    request_id: String,
    path: String,
}

impl<'a, A: App> Worker<'a, A> {
    /// Sets the process up, runs `after_fork`, and publishes `Idle`. `Err` carries the exit
    /// code of a worker that could not boot.
    fn boot(mut ctx: WorkerContext<'a>, app: &'a mut A) -> Result<Worker<'a, A>, i32> {
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

        let info = WorkerInfo {
            slot: ctx.slot_index,
            pid,
        };
        match catch_unwind(AssertUnwindSafe(|| app.after_fork(&info))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(worker = ctx.slot_index, pid, error = %e, "after_fork failed");
                return Err(WORKER_BOOT_ERROR);
            }
            Err(_) => {
                error!(
                    worker = ctx.slot_index,
                    pid,
                    panic = take_panic(),
                    "after_fork failed"
                );
                return Err(WORKER_BOOT_ERROR);
            }
        }

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
        let ctx_listeners = ctx.listeners.len();
        info!(worker = ctx.slot_index, pid, "worker ready");
        Ok(Worker {
            ctx,
            app,
            pid,
            poll,
            signals,
            control,
            stopping: None,
            served: 0,
            clients: Vec::new(),
            free_ids: Vec::new(),
            ready: VecDeque::new(),
            listener_ready: vec![true; ctx_listeners],
            handed_off: false,
            spare: Vec::new(),
            head: Vec::with_capacity(512),
            chunk: vec![0; 16 * 1024],
            date: DateCache::default(),
            request_id: String::with_capacity(64),
            path: String::with_capacity(256),
        })
    }

    /// The worker's loop: serve ready requests, accept while there is room, expire parked
    /// connections, wait. Listeners and connections are edge-triggered in mio, so each
    /// readiness is drained (accept or read until EAGAIN).
    fn serve_forever(mut self) -> i32 {
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
            if let Some(id) = self.ready.pop_front() {
                self.serve(id);
                continue;
            }
            retry_soon |= self.accept_ready();
            if !self.ready.is_empty() {
                continue;
            }
            let now = Instant::now();
            self.expire(now);
            let mut timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if retry_soon {
                timeout = Some(timeout.map_or(RETRY, |t| t.min(RETRY)));
            }
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "poll failed");
                    return WORKER_SETUP_ERROR;
                }
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
            if c.lingering || self.ready.contains(&id) {
                continue;
            }
            if c.requests == 0 || !c.buf.is_empty() {
                owed = true;
            } else {
                self.close(id, false);
            }
        }
        owed || !self.ready.is_empty()
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
            if self.open_clients() >= MAX_CLIENTS {
                continue;
            }
            // EAGAIN (nothing queued), EINVAL (shut down by the master) or out of
            // resources: nothing to take.
            if let Ok(conn) = self.ctx.listeners[i].accept() {
                self.admit(conn);
            }
        }
    }

    /// Accepts from every ready listener while fewer than [`MAX_CLIENTS`] connections are
    /// open; a connection whose request is already complete goes to the ready queue, the
    /// others are parked. Returns true when accept failed for lack of resources.
    fn accept_ready(&mut self) -> bool {
        let mut retry = false;
        for i in 0..self.listener_ready.len() {
            while self.listener_ready[i]
                && self.open_clients() < MAX_CLIENTS
                && self.stopping.is_none()
            {
                match self.ctx.listeners[i].accept() {
                    Ok(conn) => {
                        self.admit(conn);
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

    fn open_clients(&self) -> usize {
        self.clients.len() - self.free_ids.len()
    }

    /// Takes a new connection: reads what it has sent, then queues or parks it.
    fn admit(&mut self, conn: Conn) {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        let client = Client {
            conn,
            buf,
            deadline: Instant::now() + self.ctx.config.header_timeout,
            requests: 0,
            registered: false,
            eof: false,
            lingering: false,
            parsed: None,
        };
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.clients[id] = Some(client);
                id
            }
            None => {
                self.clients.push(Some(client));
                self.clients.len() - 1
            }
        };
        self.on_readable(id);
    }

    /// Reads what a client sent and decides: serve (queue it), answer an error, wait more
    /// (park it), or close.
    fn on_readable(&mut self, id: usize) {
        let max = self.ctx.config.limits.max_head_len() + SMALL_BODY as usize + 1;
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if self.ready.contains(&id) {
            return;
        }
        if client.lingering {
            if !client.discard() {
                self.close(id, false);
            }
            return;
        }
        if let Err(e) = client.fill(max) {
            debug!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "connection failed");
            self.close(id, false);
            return;
        }
        match request_state(&client.buf, &self.ctx.config.limits) {
            RequestState::Ready(parsed) => {
                client.parsed = Some(parsed);
                self.ready.push_back(id);
            }
            RequestState::Incomplete if client.eof => {
                // The client closed. A partial request gets no answer: nobody would read it.
                self.close(id, false);
            }
            RequestState::Incomplete => {
                if let Err(e) = client.park(self.poll.registry(), Token(CLIENTS + id)) {
                    warn!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "cannot park a connection");
                    self.close(id, false);
                }
            }
            RequestState::Refused(err) => self.refuse(id, err),
        }
    }

    /// Answers a request that breaks the HTTP rules or a limit, and closes.
    fn refuse(&mut self, id: usize, err: h1::Error) {
        let started = Instant::now();
        debug!(
            worker = self.ctx.slot_index,
            pid = self.pid,
            reason = err.name(),
            status = err.status().as_u16(),
            "request refused"
        );
        self.ctx.slot.set_state(WorkerState::Busy);
        let idle = self.ctx.config.header_timeout;
        let sent = match self.clients.get_mut(id).and_then(Option::as_mut) {
            Some(client) => {
                let out = wire::Outgoing::new(plain(err.status()), &Method::GET, Version::HTTP_11);
                let mut p = io::Patient {
                    conn: &mut client.conn,
                    idle,
                };
                out.write(
                    &mut p,
                    &mut self.head,
                    &mut self.chunk,
                    self.date.now(),
                    Persist::Close,
                )
                .ok()
            }
            None => None,
        };
        self.access_log("-", "-", err.status(), sent, started, None, "-");
        self.served += 1;
        self.ctx.slot.count_response(
            err.status().as_u16(),
            started.elapsed().as_micros() as u64,
            None,
        );
        self.ctx.slot.set_state(WorkerState::Idle);
        self.close(id, true);
    }

    /// Closes parked connections whose time is up: 408 for a request that did not arrive
    /// in time, silence for an idle keep-alive connection.
    fn expire(&mut self, now: Instant) {
        for id in 0..self.clients.len() {
            let Some(client) = self.clients[id].as_ref() else {
                continue;
            };
            if client.deadline > now || self.ready.contains(&id) {
                continue;
            }
            if client.lingering || (client.buf.is_empty() && client.requests > 0) {
                self.close(id, false);
            } else {
                self.refuse(id, h1::Error::HeadTimeout);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().flatten().map(|c| c.deadline).min()
    }

    /// Drops a connection (closing it also removes it from the poll).
    ///
    /// With `linger`, it is not dropped yet: closing a socket with unread bytes makes the
    /// kernel send RST, which can destroy the response the client has not read yet (RFC 9112
    /// section 9.6, "tear-down"). So our side is shut down and the connection stays parked,
    /// its incoming bytes discarded, until the client closes or [`LINGER`] has passed. The
    /// worker does not wait for it.
    fn close(&mut self, id: usize, linger: bool) {
        if linger
            && let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut)
            && !client.eof
            && !client.lingering
            && client.conn.shutdown_write().is_ok()
        {
            client.lingering = true;
            client.buf.clear();
            client.parsed = None;
            client.deadline = Instant::now() + LINGER;
            self.ready.retain(|&r| r != id);
            if client.discard()
                && client
                    .park(self.poll.registry(), Token(CLIENTS + id))
                    .is_ok()
            {
                return;
            }
        }
        if let Some(mut client) = self.clients.get_mut(id).and_then(Option::take) {
            self.free_ids.push(id);
            self.ready.retain(|&r| r != id);
            let mut buf = std::mem::take(&mut client.buf);
            if buf.capacity() <= 64 * 1024 {
                buf.clear();
                self.spare = buf;
            }
        }
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
    fn stop_pending(&self) -> bool {
        self.stopping.is_some()
            || self.ctx.slot.stop_requested()
            || self.signals.stop_requested()
            || (self.ctx.max_requests > 0 && self.served + 1 >= self.ctx.max_requests)
    }

    /// Is a connection waiting in a listen queue? Then the connection being answered is
    /// closed rather than kept: a one-at-a-time worker must not sit on an idle connection
    /// while a new client waits (TCP_INFO on each TCP listener; Unix listeners do not say).
    fn someone_waiting(&self) -> bool {
        self.ctx
            .listeners
            .iter()
            .any(|l| l.listen_queue().is_some_and(|q| q.depth > 0))
    }

    /// Serves the complete request at the front of a client's buffer.
    fn serve(&mut self, id: usize) {
        let Some(mut client) = self.clients.get_mut(id).and_then(Option::take) else {
            return;
        };
        // Queued only with its parsed head (see `request_state`).
        let Some(parsed) = client.parsed.take() else {
            self.clients[id] = Some(client);
            return;
        };
        let slot = self.ctx.slot;
        slot.set_state(WorkerState::Busy);
        let started = Instant::now();
        let answered = self.respond(&mut client, parsed, started);
        let service_us = started.elapsed().as_micros() as u64;
        self.served += 1;
        slot.count_response(answered.status.as_u16(), service_us, answered.queue_us);
        slot.set_state(WorkerState::Idle);

        let keep = answered.keep;
        self.clients[id] = Some(client);
        if !keep {
            self.close(id, answered.linger);
            return;
        }
        // Kept: the next request may already be here (pipelined); otherwise wait for it.
        let keepalive = Duration::from_secs(self.ctx.config.keepalive);
        let Some(client) = self.clients[id].as_mut() else {
            return;
        };
        client.requests += 1;
        client.deadline = Instant::now() + keepalive;
        match request_state(&client.buf, &self.ctx.config.limits) {
            RequestState::Ready(parsed) => {
                client.parsed = Some(parsed);
                self.ready.push_back(id);
            }
            RequestState::Refused(err) => self.refuse(id, err),
            RequestState::Incomplete if client.eof => self.close(id, false),
            RequestState::Incomplete => {
                if !client.buf.is_empty() {
                    // Part of the next request is here: it has the header timeout to finish.
                    client.deadline = Instant::now() + self.ctx.config.header_timeout;
                }
                if let Err(e) = client.park(self.poll.registry(), Token(CLIENTS + id)) {
                    warn!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "cannot park a connection");
                    self.close(id, false);
                }
            }
        }
    }

    /// Calls the app and writes its response.
    fn respond(&mut self, client: &mut Client, parsed: Parsed, started: Instant) -> Answered {
        let Parsed {
            request,
            head_len,
            body,
            expect_continue,
            keep_alive,
        } = parsed;
        // The request id and the path are kept after the app has taken the request (for the
        // logs), in buffers reused from one request to the next.
        let mut request_id = std::mem::take(&mut self.request_id);
        request_id.clear();
        match request.headers().get("x-request-id") {
            Some(v) => request_id.push_str(&String::from_utf8_lossy(v.as_bytes())),
            None => {
                use std::fmt::Write as _;
                let _ = write!(request_id, "{}-{}", self.pid, self.served);
            }
        }
        // Queue time: from when the router got the request to when this worker took it.
        let queue_us = request
            .headers()
            .get("x-request-start")
            .and_then(|v| h1::parse_request_start(v.as_bytes()))
            .map(|start_us| {
                let now_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                now_us.saturating_sub(start_us)
            });
        let method = request.method().clone();
        let version = request.version();
        let mut path = std::mem::take(&mut self.path);
        path.clear();
        path.push_str(request.uri().path());
        self.ctx.slot.set_request(
            method.as_str().as_bytes(),
            path.as_bytes(),
            request_id.as_bytes(),
        );
        debug!(worker = self.ctx.slot_index, pid = self.pid, method = %method, path, request_id, "request started");

        let idle = self.ctx.config.header_timeout;
        let limits = self.ctx.config.limits;
        let mut src = wire::BodySrc::new(
            &mut client.conn,
            &mut client.buf,
            head_len,
            body,
            expect_continue,
            &limits,
            idle,
        );
        let mut request = request.map(|()| RequestBody::new(&mut src));
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));

        let app = &mut *self.app;
        let response = match catch_unwind(AssertUnwindSafe(|| app.call(request))) {
            Ok(r) => r,
            Err(_) => {
                error!(worker = self.ctx.slot_index, pid = self.pid, method = %method, path, request_id, panic = take_panic(), "app panicked");
                plain(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        // A body that broke its framing or the body limit is answered with that error (the
        // app saw only a read error), and the connection is closed.
        let response = match src.error {
            Some(e) => {
                debug!(
                    worker = self.ctx.slot_index,
                    pid = self.pid,
                    reason = e.name(),
                    status = e.status().as_u16(),
                    "request body refused"
                );
                plain(e.status())
            }
            None => response,
        };
        let out = wire::Outgoing::new(response, &method, version);
        let status = out.status;

        // Keep the connection only if the client allows it, keep-alive is on, this worker
        // goes on, the body framing lets the next request start cleanly, and nobody waits.
        let mut keep = self.ctx.config.keepalive > 0
            && keep_alive
            && out.framing != Framing::Close
            && !self.stop_pending();
        if keep && !src.discard_rest(SMALL_BODY) {
            keep = false;
        }
        if keep && self.someone_waiting() {
            keep = false;
        }
        let persist = match (keep, version) {
            (false, _) => Persist::Close,
            (true, Version::HTTP_10) => Persist::KeepAlive,
            (true, _) => Persist::Default,
        };
        let consumed = src.pos;
        let body_done = src.done && !src.failed;
        let failed = src.failed;
        drop(src);
        let mut p = io::Patient {
            conn: &mut client.conn,
            idle,
        };
        let sent = match out.write(
            &mut p,
            &mut self.head,
            &mut self.chunk,
            self.date.now(),
            persist,
        ) {
            Ok(n) => Some(n),
            Err(e) => {
                if wire::BodyPanicked::is_cause_of(&e) {
                    error!(
                        worker = self.ctx.slot_index,
                        pid = self.pid,
                        panic = take_panic(),
                        "app panicked while streaming a body"
                    );
                } else {
                    debug!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "response not delivered");
                }
                None
            }
        };
        self.access_log(
            method.as_str(),
            &path,
            status,
            sent,
            started,
            queue_us,
            &request_id,
        );
        if keep && sent.is_some() {
            client.buf.drain(..consumed.min(client.buf.len()));
        }
        self.request_id = request_id;
        self.path = path;
        Answered {
            status,
            queue_us,
            keep: keep && sent.is_some(),
            linger: sent.is_some() && !body_done && !failed,
        }
    }

    /// One access-log line (`--access-log`); the logfmt writer escapes every value.
    /// `service_ms` runs from the moment the request was complete and the worker took it.
    #[allow(clippy::too_many_arguments)]
    fn access_log(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        sent: Option<u64>,
        started: Instant,
        queue_us: Option<u64>,
        request_id: &str,
    ) {
        if self.ctx.config.access_log {
            let queue_ms =
                queue_us.map_or_else(|| "-".to_string(), |q| format!("{:.3}", q as f64 / 1000.0));
            info!(
                method,
                path,
                status = status.as_u16(),
                bytes = sent.unwrap_or(0),
                service_ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0),
                queue_ms,
                worker = self.ctx.slot_index,
                pid = self.pid,
                request_id,
                "request"
            );
        }
    }
}

/// Largest request body (and leftover of a body the app did not read) the worker buffers or
/// discards itself; larger bodies stream to the app.
pub const SMALL_BODY: u64 = 64 * 1024;
/// Most connections a worker holds at once (serving one, the others parked); at this number
/// it stops accepting until one completes or expires.
pub const MAX_CLIENTS: usize = 64;
/// How long a closing connection may keep sending before it is dropped (see `close`).
const LINGER: Duration = Duration::from_secs(2);
/// Pause before retrying accept after EMFILE and the like.
const RETRY: Duration = Duration::from_millis(100);
/// Tokens of connections start here (listeners use 0..listeners).
const CLIENTS: usize = 1 << 16;

/// A connection the worker holds.
struct Client {
    conn: Conn,
    /// Bytes received and not yet consumed (the next request, possibly part of it).
    buf: Vec<u8>,
    /// When it must have sent its request (or, idle between requests, when it is closed).
    deadline: Instant,
    /// Requests answered on it.
    requests: u64,
    registered: bool,
    /// The client has closed its sending side.
    eof: bool,
    /// We have answered and shut our side down; what the client still sends is discarded.
    lingering: bool,
    /// The head of the complete request at the front of `buf`, while it waits in the ready
    /// queue.
    parsed: Option<Parsed>,
}

impl Client {
    /// Reads what is available, without blocking, up to `max` buffered bytes.
    fn fill(&mut self, max: usize) -> std::io::Result<()> {
        loop {
            let len = self.buf.len();
            if len >= max {
                return Ok(());
            }
            let room = (len + 4096).min(max).max(len + 1);
            self.buf.resize(room, 0);
            match self.conn.read(&mut self.buf[len..]) {
                Ok(0) => {
                    self.buf.truncate(len);
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.buf.truncate(len + n);
                    if len + n < room {
                        // A short read: the socket is drained for now. No read to EAGAIN:
                        // on Linux every arrival of data wakes an edge-triggered epoll
                        // again (ep_poll_callback on sk_data_ready), so the parked
                        // connection is not missed, and the common case saves a syscall.
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.buf.truncate(len);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(len),
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        }
    }

    /// Reads and drops what a lingering client sends; false when it is time to close (the
    /// client closed, the connection failed, or it sent more than 4 MiB).
    fn discard(&mut self) -> bool {
        let mut sink = [0u8; 8192];
        let mut total = 0usize;
        loop {
            match self.conn.read(&mut sink) {
                Ok(0) => return false,
                Ok(n) => {
                    total += n;
                    if total > 4 << 20 {
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Puts the connection in the worker's poll (once).
    fn park(&mut self, registry: &mio::Registry, token: Token) -> std::io::Result<()> {
        if !self.registered {
            registry.register(
                &mut SourceFd(&self.conn.as_fd().as_raw_fd()),
                token,
                Interest::READABLE,
            )?;
            self.registered = true;
        }
        Ok(())
    }
}

/// Puts a listener in the worker's poll, exclusively where the kernel allows it: a new
/// connection then wakes one idle worker instead of all of them (see
/// [`sys::epoll_add_exclusive`]); elsewhere as an ordinary edge-triggered source. Either
/// way the worker drains it (accepts until EAGAIN) after an event.
fn register_listener(poll: &Poll, l: &Listener, token: Token) -> std::io::Result<()> {
    match sys::epoll_add_exclusive(poll, l.as_fd(), token.0 as u64) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            poll.registry()
                .register(&mut SourceFd(&l.as_raw_fd()), token, Interest::READABLE)
        }
        other => other,
    }
}

/// Where a client's buffered request stands.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived return value; boxing the parsed head cost an allocation per request"
)]
enum RequestState {
    /// A complete request (head, and a small body in full) can be served; its parsed head is
    /// kept so that serving it does not parse it again.
    Ready(Parsed),
    /// More bytes are needed.
    Incomplete,
    /// The request breaks a rule or a limit.
    Refused(h1::Error),
}

/// Decides whether the buffered bytes make a request to serve now. A small body
/// (up to [`SMALL_BODY`]) must be here in full first, so that a client trickling its body
/// does not hold the worker; a larger one streams to the app. A client that asked for
/// `100 Continue` waits for it, so its request is served as soon as the head is here.
fn request_state(buf: &[u8], limits: &Limits) -> RequestState {
    let parsed = match h1::parse_head(buf, limits) {
        Ok(Some(p)) => p,
        Ok(None) => return RequestState::Incomplete,
        Err(e) => return RequestState::Refused(e),
    };
    match body_ready(&parsed, &buf[parsed.head_len..], limits) {
        Ok(true) => RequestState::Ready(parsed),
        Ok(false) => RequestState::Incomplete,
        Err(e) => RequestState::Refused(e),
    }
}

/// Whether a parsed request's body is ready: none, here in full, or too large to wait for
/// (or the client waits for `100 Continue`). `Err` when the part already here is broken.
fn body_ready(parsed: &Parsed, body: &[u8], limits: &Limits) -> Result<bool, h1::Error> {
    if parsed.expect_continue {
        return Ok(true);
    }
    match parsed.body {
        BodyFraming::None => Ok(true),
        BodyFraming::Length(n) => Ok(n > SMALL_BODY || body.len() as u64 >= n),
        BodyFraming::Chunked => {
            // Decode what is here into a scratch buffer: complete, too big to wait for, or
            // broken (answered before the app runs).
            let mut decoder = ChunkedDecoder::new(limits);
            let mut scratch = [0u8; 4096];
            let (mut at, mut decoded) = (0usize, 0u64);
            loop {
                let step = decoder.decode(&body[at..], &mut scratch)?;
                at += step.consumed;
                decoded += step.written as u64;
                if step.done || decoded > SMALL_BODY {
                    return Ok(true);
                }
                if at >= body.len() || (step.consumed == 0 && step.written == 0) {
                    return Ok(false);
                }
            }
        }
    }
}

/// What became of a request: for the scoreboard's counters and the connection.
struct Answered {
    status: StatusCode,
    /// Time between the router's `X-Request-Start` and the worker taking the request.
    queue_us: Option<u64>,
    /// The connection carries on to the next request.
    keep: bool,
    /// Closing: drain the client's unread body bytes first.
    linger: bool,
}

/// A short text/plain response with the status's reason phrase as body.
fn plain(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut r = Response::new(format!("{reason}\n").into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}
