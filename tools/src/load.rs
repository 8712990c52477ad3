//! A closed-loop HTTP/1.1 load client (and, in [`open`], an open-loop one): `concurrency` threads, each sending one `GET` at a
//! time and reading the whole response before the next, for a bounded time and count. The
//! chaos harness (`examples/chaos.rs` of this crate) and `runicorn tune` measure the server with it.
//!
//! It is an instrument, not a general client: `GET` only, no TLS, no redirects, no request
//! body; response bodies are framed (RFC 9112 section 6.3) and discarded. Every failure is
//! classified by cause ([`Failure`]), so that a harness can tell a refused connection from a
//! reset, a timeout or a 5xx. Every socket operation is bounded by the request timeout.
//!
//! Scope: it starts threads, so it runs in a tool's own process, never in the master or a
//! worker (fork is only sound with one thread). Latencies go into a fixed-size histogram
//! ([`Latencies`], 1.6% resolution), so memory does not grow with the run.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//! use runicorn_tools::load::{self, LoadSpec};
//!
//! let mut spec = LoadSpec::new("127.0.0.1:8080".parse().unwrap(), "/sleep?ms=20");
//! spec.concurrency = 4;
//! spec.duration = Duration::from_secs(5);
//! let report = load::run(&spec, &AtomicBool::new(false), None);
//! println!("{} ok of {}, p99 {:?}", report.ok, report.sent, report.latency.p99());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod framing;
mod latency;
pub mod open;

use framing::Framer;
pub use latency::Latencies;

/// What to send, how hard, and for how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The server's address.
    pub addr: SocketAddr,
    /// The request method, `GET` by default.
    pub method: String,
    /// The request target, e.g. `/sleep?ms=20`.
    pub path: String,
    /// The request body, sent with a `Content-Length` (empty: none, except `Content-Length: 0`
    /// for the methods that expect a body).
    pub body: Vec<u8>,
    /// Client threads, each with one request outstanding at a time (at least 1).
    pub concurrency: usize,
    /// No request starts after this much time; requests in flight then still finish (each
    /// within `request_timeout`). `Duration::MAX` means no time limit.
    pub duration: Duration,
    /// No more than this many requests are started in all threads together.
    pub max_requests: Option<u64>,
    /// Bound on each request: connecting, writing, and reading the whole response.
    pub request_timeout: Duration,
    /// Reuse connections (HTTP/1.1 persistence) instead of sending `Connection: close`.
    pub keepalive: bool,
    /// Extra request header fields. A `Host` field here replaces the default one (the
    /// address).
    pub headers: Vec<(String, String)>,
}

impl LoadSpec {
    /// One client thread, 10 s, no request cap, 10 s per request, `Connection: close`.
    pub fn new(addr: SocketAddr, path: &str) -> LoadSpec {
        LoadSpec {
            addr,
            method: "GET".to_string(),
            path: path.to_string(),
            body: Vec::new(),
            concurrency: 1,
            duration: Duration::from_secs(10),
            max_requests: None,
            request_timeout: Duration::from_secs(10),
            keepalive: false,
            headers: Vec::new(),
        }
    }

    /// The bytes of the request every thread sends, built once.
    fn request_bytes(&self) -> Vec<u8> {
        let mut r = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            r.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in &self.headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            r.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if !self.keepalive {
            r.push_str("Connection: close\r\n");
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The connection was refused (ECONNREFUSED): nothing listening.
    Refused,
    /// The connection was reset or closed (ECONNRESET, EPIPE, EOF) before the response was
    /// complete.
    Reset,
    /// Connecting, writing, or reading the response took longer than the request timeout.
    Timeout,
    /// A complete response with a 5xx status.
    Status5xx,
    /// A complete response with a 4xx status.
    Status4xx,
    /// Bytes that are not an HTTP/1.x response.
    Malformed,
    /// Any other error (e.g. EADDRNOTAVAIL when the client runs out of ephemeral ports).
    Other,
}

impl Failure {
    /// Every cause, in report order.
    pub const ALL: [Failure; 7] = [
        Failure::Refused,
        Failure::Reset,
        Failure::Timeout,
        Failure::Status5xx,
        Failure::Status4xx,
        Failure::Malformed,
        Failure::Other,
    ];

    /// A short stable name: `refused`, `reset`, `timeout`, `5xx`, `4xx`, `malformed`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status5xx => "5xx",
            Failure::Status4xx => "4xx",
            Failure::Malformed => "malformed",
            Failure::Other => "other",
        }
    }

    /// The cause of a socket error. A read timeout surfaces as EAGAIN (`WouldBlock`).
    pub fn of_io(e: &io::Error) -> Failure {
        match e.kind() {
            ErrorKind::ConnectionRefused => Failure::Refused,
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected => Failure::Reset,
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::Other,
        }
    }

    /// The failure a complete response with this status counts as, if any (2xx and 3xx are
    /// successes).
    pub fn of_status(status: u16) -> Option<Failure> {
        match status {
            500.. => Some(Failure::Status5xx),
            400..=499 => Some(Failure::Status4xx),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts so far, handed to the progress callback after every request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Requests started (so `sent - ok - failed` are in flight).
    pub sent: u64,
    /// Requests that got a complete 1xx-3xx response.
    pub ok: u64,
    /// Requests that failed, for any cause.
    pub failed: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests started; equals `ok + failed()` once the run has returned.
    pub sent: u64,
    /// Requests that got a complete response with a status below 400.
    pub ok: u64,
    /// Failed requests by cause (causes that did not happen are absent).
    pub failures: BTreeMap<Failure, u64>,
    /// Requests sent again on a new connection after the server closed an idle kept-alive
    /// one before answering (keep-alive only; not failures, see [`run`]).
    pub retried: u64,
    /// TCP connections opened.
    pub connections: u64,
    /// Latency of the successful requests, from connect (or write, on a reused connection)
    /// to the last byte of the response.
    pub latency: Latencies,
    /// From the start of the run to the end of the last request.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Failed requests, all causes together.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Failed requests of one cause.
    pub fn failures_of(&self, cause: Failure) -> u64 {
        self.failures.get(&cause).copied().unwrap_or(0)
    }

    /// Successful requests per second over the whole run.
    pub fn ok_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ok as f64 / s } else { 0.0 }
    }
}

/// Sends requests as `spec` says until its duration has passed, `max_requests` have been
/// started, or `stop` is set (checked between requests), and returns what happened.
///
/// `progress`, when given, is called from the client threads after every request with the
/// counts so far; it must be cheap. Calls from different threads may arrive out of order,
/// so a reader keeping a maximum (`AtomicU64::fetch_max`) sees the counts only grow.
///
/// With `keepalive`, a request on a reused connection that the server closed before sending
/// any byte of the response is sent again once, on a new connection, and counted in
/// `retried`, not as a failure, as every client does for idempotent requests. RFC 9112
/// section 9.3.1: "Connections can be closed at any time, with or without intention.
/// Implementations ought to anticipate the need to recover from asynchronous close events";
/// RFC 9110 section 9.2.2: "Idempotent methods are distinguished because the request can be
/// repeated automatically if a communication failure occurs before the client is able to
/// read the server's response." A close after part of the response is a failure.
pub fn run(
    spec: &LoadSpec,
    stop: &AtomicBool,
    progress: Option<&(dyn Fn(&Progress) + Sync)>,
) -> LoadReport {
    let start = Instant::now();
    let shared = Shared {
        spec,
        request: spec.request_bytes(),
        head: spec.method == "HEAD",
        stop,
        progress,
        start,
        deadline: start.checked_add(spec.duration),
        claimed: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    let reports: Vec<LoadReport> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..spec.concurrency.max(1))
            .map(|_| s.spawn(|| client(&shared)))
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("a load client thread panicked"))
            .collect()
    });
    let mut total = LoadReport::default();
    for r in &reports {
        total.sent += r.sent;
        total.ok += r.ok;
        for (&cause, &n) in &r.failures {
            *total.failures.entry(cause).or_default() += n;
        }
        total.retried += r.retried;
        total.connections += r.connections;
        total.latency.merge(&r.latency);
    }
    total.elapsed = start.elapsed();
    total
}

/// What the client threads share.
struct Shared<'a> {
    spec: &'a LoadSpec,
    request: Vec<u8>,
    /// The method is HEAD: responses have no body, whatever their length fields say.
    head: bool,
    stop: &'a AtomicBool,
    progress: Option<&'a (dyn Fn(&Progress) + Sync)>,
    start: Instant,
    deadline: Option<Instant>,
    /// Requests claimed against `max_requests` (may overshoot it by the number of threads).
    claimed: AtomicU64,
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

/// One client thread: one request at a time until the run ends; its own report.
fn client(sh: &Shared<'_>) -> LoadReport {
    let mut report = LoadReport::default();
    let mut conn: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if sh.stop.load(Ordering::Relaxed) || sh.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let Some(max) = sh.spec.max_requests
            && sh.claimed.fetch_add(1, Ordering::Relaxed) >= max
        {
            break;
        }
        report.sent += 1;
        sh.sent.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let outcome = exchange(sh, &mut conn, &mut buf, &mut report)
            .and_then(|status| Failure::of_status(status).map_or(Ok(()), Err));
        match outcome {
            Ok(()) => {
                report.latency.record(t0.elapsed());
                report.ok += 1;
                sh.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(cause) => {
                *report.failures.entry(cause).or_default() += 1;
                sh.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(progress) = sh.progress {
            progress(&Progress {
                sent: sh.sent.load(Ordering::Relaxed),
                ok: sh.ok.load(Ordering::Relaxed),
                failed: sh.failed.load(Ordering::Relaxed),
                elapsed: sh.start.elapsed(),
            });
        }
    }
    report
}

/// One request, on the kept connection if there is one (retried once on a new connection
/// if the server had closed it), else on a new one. Returns the response's status.
fn exchange(
    sh: &Shared<'_>,
    conn: &mut Option<TcpStream>,
    buf: &mut [u8],
    report: &mut LoadReport,
) -> Result<u16, Failure> {
    if let Some(mut s) = conn.take() {
        match attempt(&mut s, sh, buf, true) {
            Attempt::Done { status, reusable } => {
                if reusable {
                    *conn = Some(s);
                }
                return Ok(status);
            }
            Attempt::Failed(cause) => return Err(cause),
            Attempt::ClosedBeforeResponse => report.retried += 1,
        }
    }
    let mut s = TcpStream::connect_timeout(&sh.spec.addr, sh.spec.request_timeout)
        .map_err(|e| Failure::of_io(&e))?;
    report.connections += 1;
    let _ = s.set_nodelay(true);
    match attempt(&mut s, sh, buf, false) {
        Attempt::Done { status, reusable } => {
            if reusable && sh.spec.keepalive {
                *conn = Some(s);
            }
            Ok(status)
        }
        Attempt::Failed(cause) => Err(cause),
        Attempt::ClosedBeforeResponse => Err(Failure::Reset),
    }
}

enum Attempt {
    Done {
        status: u16,
        reusable: bool,
    },
    Failed(Failure),
    /// The connection was closed or reset before any byte of the response arrived.
    ClosedBeforeResponse,
}

/// Writes the request and reads one response, all within the request timeout.
fn attempt(s: &mut TcpStream, sh: &Shared<'_>, buf: &mut [u8], reused: bool) -> Attempt {
    let (request, head, timeout) = (&sh.request, sh.head, sh.spec.request_timeout);
    let deadline = Instant::now() + timeout;
    let closed = |cause: Failure, got_any: bool| {
        if reused && !got_any && cause == Failure::Reset {
            Attempt::ClosedBeforeResponse
        } else {
            Attempt::Failed(cause)
        }
    };
    if let Err(e) = s
        .set_write_timeout(Some(timeout))
        .and_then(|()| s.write_all(request))
    {
        return closed(Failure::of_io(&e), false);
    }
    let mut framer = Framer::new(head);
    let mut got_any = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Attempt::Failed(Failure::Timeout);
        }
        if let Err(e) = s.set_read_timeout(Some(left)) {
            return Attempt::Failed(Failure::of_io(&e));
        }
        match s.read(buf) {
            Ok(0) => {
                return match framer.eof() {
                    Ok(status) => Attempt::Done {
                        status,
                        reusable: false,
                    },
                    Err(cause) => closed(cause, got_any),
                };
            }
            Ok(n) => {
                got_any = true;
                match framer.feed(&buf[..n]) {
                    Ok(None) => {}
                    Ok(Some(used)) => {
                        return Attempt::Done {
                            status: framer.status,
                            // Bytes after the response (we never pipeline) make the
                            // connection's state unknown: do not reuse it.
                            reusable: framer.persistent && used == n,
                        };
                    }
                    Err(()) => return Attempt::Failed(Failure::Malformed),
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return closed(Failure::of_io(&e), got_any),
        }
    }
}

#[cfg(test)]
mod tests;
