//! A worker process: accept one connection, read its request, call the app, write the
//! response, repeat. One request at a time.
//!
//! Runs on the child side of fork only. It never imports `master`: what it needs from the
//! master arrives in a [`WorkerContext`]. It stops between requests when the master asks
//! (control pipe and scoreboard flag), on TERM/QUIT, after `max_requests`, or when the master
//! is gone (control pipe EOF, or the parent-death signal).

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::http::{HeaderValue, Method, StatusCode, Version};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::error::{WORKER_BOOT_ERROR, WORKER_SETUP_ERROR};
use crate::handler::{App, BodyKind, BodyState, RequestBody, Response, WorkerInfo};
use crate::http::{self as h1, DateCache, Framing, Parsed};
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
    buf: Vec<u8>,
    head: Vec<u8>,
    chunk: Vec<u8>,
    date: DateCache,
}

impl<'a, A: App> Worker<'a, A> {
    /// Sets the process up, runs `after_fork`, and publishes `Idle`. `Err` carries the exit
    /// code of a worker that could not boot.
    fn boot(mut ctx: WorkerContext<'a>, app: &'a mut A) -> Result<Worker<'a, A>, i32> {
        let pid = std::process::id();
        sys::set_process_name(&format!("worker[{}]", ctx.slot_index));
        let setup = |what: &str, e: io::Error| {
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
            poll.registry()
                .register(&mut SourceFd(&l.as_raw_fd()), Token(i), Interest::READABLE)
                .map_err(|e| setup("listener", e))?;
        }
        let head_cap = 4096.min(ctx.config.limits.max_head_len());
        ctx.slot.set_state(WorkerState::Idle);
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
            buf: Vec::with_capacity(head_cap),
            head: Vec::with_capacity(512),
            chunk: vec![0; 16 * 1024],
            date: DateCache::default(),
        })
    }

    /// The accept loop. Listeners are edge-triggered in mio: each readiness is drained with
    /// accept until EAGAIN, and stop requests are checked between connections.
    fn serve_forever(mut self) -> i32 {
        let mut events = Events::with_capacity(16);
        let mut ready = vec![true; self.ctx.listeners.len()];
        let mut retry_soon = false;
        loop {
            self.check_stop();
            if let Some(reason) = self.stopping {
                self.ctx.slot.set_state(WorkerState::Stopping);
                info!(
                    worker = self.ctx.slot_index,
                    pid = self.pid,
                    reason,
                    requests = self.served,
                    "worker exiting"
                );
                return 0;
            }
            for (i, ready) in ready.iter_mut().enumerate() {
                while *ready && self.stopping.is_none() {
                    match self.ctx.listeners[i].accept() {
                        Ok(conn) => {
                            self.serve(conn);
                            self.check_stop();
                        }
                        Err(e) => match e.raw_os_error() {
                            Some(libc::EAGAIN) => *ready = false,
                            Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => {}
                            Some(libc::EINVAL) => {
                                // The master stopped the listener (graceful stop).
                                *ready = false;
                                self.stopping = Some("listeners closed");
                            }
                            _ => {
                                // EMFILE, ENFILE, ENOBUFS: out of resources; try again shortly
                                // rather than spin.
                                warn!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "accept failed");
                                *ready = false;
                                retry_soon = true;
                            }
                        },
                    }
                }
            }
            if self.stopping.is_some() {
                continue;
            }
            let timeout = retry_soon.then(|| Duration::from_millis(100));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "poll failed");
                    return WORKER_SETUP_ERROR;
                }
            }
            if retry_soon {
                retry_soon = false;
                ready.iter_mut().for_each(|r| *r = true);
            }
            for ev in events.iter() {
                match ev.token() {
                    CONTROL => self.read_control(),
                    SIGNALS => self.signals.clear_wakeups(),
                    Token(i) if i < ready.len() => ready[i] = true,
                    _ => {}
                }
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
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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

    /// Serves one connection: one request, then close.
    fn serve(&mut self, mut conn: Conn) {
        let slot = self.ctx.slot;
        slot.set_state(WorkerState::Busy);
        let started = Instant::now();
        let answered = match self.read_head(&mut conn) {
            Ok(Some(parsed)) => Some(self.respond(&mut conn, parsed, started)),
            // The client closed (or the connection failed) before sending a request: nothing
            // to answer, and nothing to count.
            Ok(None) => None,
            Err(err) => {
                debug!(
                    worker = self.ctx.slot_index,
                    pid = self.pid,
                    reason = err.name(),
                    status = err.status().as_u16(),
                    "request refused"
                );
                let sent = self.write_error(&mut conn, err.status());
                self.access_log("-", "-", err.status(), sent, started, None, "-");
                Some(Answered {
                    status: err.status(),
                    unread: None,
                    queue_us: None,
                })
            }
        };
        if let Some(a) = answered {
            let service_us = started.elapsed().as_micros() as u64;
            if let Some(unread) = a.unread {
                linger(&mut conn, unread);
            }
            self.served += 1;
            slot.count_response(a.status.as_u16(), service_us, a.queue_us);
        }
        slot.set_state(WorkerState::Idle);
    }

    /// Reads until the head is complete. `Ok(None)`: the client closed before sending
    /// anything, or the connection failed (nothing to answer).
    fn read_head(&mut self, conn: &mut Conn) -> Result<Option<Parsed>, h1::Error> {
        let timeout = self.ctx.config.header_timeout;
        let limits = &self.ctx.config.limits;
        let deadline = Instant::now() + timeout;
        self.buf.clear();
        let mut reads = 0;
        loop {
            // The whole head must arrive within the timeout, however it is split: each read
            // may wait only for the time left. The first read (usually the only one) waits
            // the whole timeout, which is also the body's idle limit per read.
            if reads == 0 {
                let _ = conn.set_read_timeout(Some(timeout));
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(h1::Error::HeadTimeout);
                }
                let _ = conn.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            }
            reads += 1;
            let len = self.buf.len();
            // Room for the rest of the longest head the limits allow, 4 KiB at a time.
            let room = (len + 4096).min(limits.max_head_len() + 1).max(len + 1);
            self.buf.resize(room, 0);
            let n = match conn.read(&mut self.buf[len..]) {
                Ok(0) => {
                    // The client closed. A partial head gets no answer: nobody reads it.
                    self.buf.truncate(len);
                    return Ok(None);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.buf.truncate(len);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.buf.truncate(len);
                    return Err(h1::Error::HeadTimeout);
                }
                Err(_) => {
                    self.buf.truncate(len);
                    return Ok(None);
                }
            };
            self.buf.truncate(len + n);
            if let Some(parsed) = h1::parse_head(&self.buf, limits)? {
                if reads > 1 && parsed.content_length > 0 {
                    // Body reads: the whole header timeout again, as an idle limit per read.
                    let _ = conn.set_read_timeout(Some(timeout));
                }
                return Ok(Some(parsed));
            }
        }
    }

    /// Calls the app and writes its response.
    fn respond(&mut self, conn: &mut Conn, parsed: Parsed, started: Instant) -> Answered {
        let Parsed {
            request,
            head_len,
            content_length,
            expect_continue,
        } = parsed;
        let request_id = request
            .headers()
            .get("x-request-id")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| format!("{}-{}", self.pid, self.served));
        // Queue time: from when the router got the request to when this worker accepted it.
        let queue_us = request
            .headers()
            .get("x-request-start")
            .and_then(|v| h1::parse_request_start(v.as_bytes()))
            .map(|start_us| {
                let now_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                let accepted_us = now_us.saturating_sub(started.elapsed().as_micros() as u64);
                accepted_us.saturating_sub(start_us)
            });
        let method = request.method().clone();
        let version = request.version();
        let path = request.uri().path().to_string();
        self.ctx.slot.set_request(
            method.as_str().as_bytes(),
            path.as_bytes(),
            request_id.as_bytes(),
        );
        debug!(worker = self.ctx.slot_index, pid = self.pid, method = %method, path, request_id, "request started");

        let buffered_end = (head_len as u64 + content_length).min(self.buf.len() as u64) as usize;
        let mut state = BodyState {
            remaining: content_length,
            send_continue: expect_continue,
            failed: false,
        };
        let mut request = request
            .map(|()| RequestBody::new(&self.buf[head_len..buffered_end], &mut *conn, &mut state));
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
        let status = response.status();
        let sent = self.write_response(conn, &method, version, response);
        self.access_log(
            method.as_str(),
            &path,
            status,
            sent,
            started,
            queue_us,
            &request_id,
        );
        let unread = match sent {
            Some(_) if !state.failed => Some(state.remaining),
            _ => None,
        };
        Answered {
            status,
            unread,
            queue_us,
        }
    }

    /// Writes the response; returns the body bytes sent, or `None` if the connection failed.
    fn write_response(
        &mut self,
        conn: &mut Conn,
        method: &Method,
        version: Version,
        response: Response,
    ) -> Option<u64> {
        let (parts, body) = response.into_parts();
        let app_length = parts
            .headers
            .get(::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let len = body.len_hint().or(app_length);
        let framing = h1::framing_for(parts.status, version, len);
        self.head.clear();
        h1::encode_head(
            &mut self.head,
            parts.status,
            &parts.headers,
            self.date.now(),
            framing,
        );
        // RFC 9110 section 9.3.2: the response to HEAD carries the fields GET would, no body.
        let send_body = *method != Method::HEAD && framing != Framing::NoBody;
        let result = match (body.kind, send_body) {
            (_, false) => write_all_vectored(conn, &mut [IoSlice::new(&self.head)]).map(|()| 0),
            (BodyKind::Bytes(b), true) => {
                write_all_vectored(conn, &mut [IoSlice::new(&self.head), IoSlice::new(&b)])
                    .map(|()| b.len() as u64)
            }
            (BodyKind::File(mut f), true) => conn.write_all(&self.head).and_then(|()| {
                // std::io::copy uses sendfile(2)/splice(2) from a file to a socket.
                let limit = len.unwrap_or(u64::MAX);
                io::copy(&mut (&mut f).take(limit), conn)
            }),
            (BodyKind::Reader(r), true) => conn
                .write_all(&self.head)
                .and_then(|()| self.stream(conn, r, framing)),
        };
        match result {
            Ok(n) => Some(n),
            Err(e) => {
                debug!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "response not delivered");
                None
            }
        }
    }

    /// Streams a reader's bytes, chunked or raw.
    fn stream(
        &mut self,
        conn: &mut Conn,
        mut r: Box<dyn Read>,
        framing: Framing,
    ) -> io::Result<u64> {
        let mut sent = 0u64;
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        while left > 0 {
            let want = self.chunk.len().min(left.min(usize::MAX as u64) as usize);
            let read = catch_unwind(AssertUnwindSafe(|| r.read(&mut self.chunk[..want])));
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    error!(
                        worker = self.ctx.slot_index,
                        pid = self.pid,
                        panic = take_panic(),
                        "app panicked while streaming a body"
                    );
                    return Err(io::Error::other("body reader panicked"));
                }
            };
            if n == 0 {
                break;
            }
            if framing == Framing::Chunked {
                let mut size = [0u8; 18];
                let size = h1::chunk_header(n, &mut size);
                write_all_vectored(
                    conn,
                    &mut [
                        IoSlice::new(size),
                        IoSlice::new(&self.chunk[..n]),
                        IoSlice::new(b"\r\n"),
                    ],
                )?;
            } else {
                conn.write_all(&self.chunk[..n])?;
            }
            sent += n as u64;
            left -= n as u64;
        }
        if framing == Framing::Chunked {
            conn.write_all(b"0\r\n\r\n")?;
        }
        Ok(sent)
    }

    fn write_error(&mut self, conn: &mut Conn, status: StatusCode) -> Option<u64> {
        let response = plain(status);
        self.write_response(conn, &Method::GET, Version::HTTP_11, response)
    }

    /// One access-log line (`--access-log`); the logfmt writer escapes every value.
    /// `service_ms` runs from accept, so it includes the time the client took to send.
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

/// What became of a request: for the scoreboard's counters and the lingering close.
struct Answered {
    status: StatusCode,
    /// Body bytes the client may still be sending; `None` when the connection is broken.
    unread: Option<u64>,
    /// Time between the router's `X-Request-Start` and our accept, if the header was sent.
    queue_us: Option<u64>,
}

/// A short text/plain response with the status's reason phrase as body.
fn plain(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut r = Response::new(format!("{reason}\n").into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

/// Writes every byte of `bufs`, in as few writev(2) calls as the socket allows.
fn write_all_vectored(conn: &mut Conn, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match conn.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closing a socket with unread bytes makes the kernel send RST, which can destroy the
/// response the client has not read yet (RFC 9112 section 9.6, "tear-down"). When the app
/// left body bytes unread, shut down our side and read what the client still sends, for a
/// short bounded time, before closing.
fn linger(conn: &mut Conn, unread: u64) {
    if unread == 0 {
        return;
    }
    const MAX_TIME: Duration = Duration::from_secs(2);
    const MAX_BYTES: u64 = 4 << 20;
    if conn.shutdown_write().is_err() {
        return;
    }
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let deadline = Instant::now() + MAX_TIME;
    let mut discarded = 0u64;
    let mut sink = [0u8; 8192];
    while Instant::now() < deadline && discarded < MAX_BYTES {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n as u64,
        }
    }
}
