//! An open-loop HTTP/1.1 load client: requests arrive at a given rate as a Poisson process
//! (exponential gaps between arrivals, from a seeded generator), and each arrival sends one
//! `GET` on a new connection (`Connection: close`) at its scheduled time, whether or not the
//! earlier requests have been answered.
//!
//! The closed loop of [`super::run`] waits for each response before the next request, so a
//! slow server slows its own load down and the queue in front of it never grows: the time a
//! request would have waited is not measured (coordinated omission). Users of a web site do
//! not wait for one another, and neither does this client. Queueing then shows as it does in
//! production: when the arrivals bunch up, requests wait in the router and the listen backlog.
//!
//! One thread runs an event loop (mio, edge-triggered) over every connection in flight, so
//! hundreds of concurrent connections cost no threads. For each request it keeps the
//! scheduled time, how late it was really sent (the schedule lag: the loop's timer has
//! millisecond resolution, and a busy machine delays it), the outcome and the latency,
//! measured **from the scheduled time** to the last byte of the response, so a late send
//! counts against the latency instead of hiding it. [`OpenReport`] sums them up in all and
//! per time slice.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//! use runicorn_tools::load::open::{self, OpenSpec};
//!
//! let mut spec = OpenSpec::new("127.0.0.1:8080".parse().unwrap(), "/service?mean_ms=20");
//! spec.rate = 200.0;
//! spec.duration = Duration::from_secs(10);
//! let report = open::run(&spec, &AtomicBool::new(false)).unwrap();
//! let all = report.summary();
//! println!("{} ok of {}, p99 {:?}", all.ok(), all.sent(), all.latency.p99());
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::framing::Framer;
use super::{Latencies, LoadSpec};
use crate::rng::Rng;

/// What to send, at which rate, and for how long.
#[derive(Clone, Debug)]
pub struct OpenSpec {
    /// The server's address.
    pub addr: SocketAddr,
    /// The request target, e.g. `/service?dist=exp&mean_ms=20`.
    pub path: String,
    /// Extra request header fields (a `Host` here replaces the default one).
    pub headers: Vec<(String, String)>,
    /// Mean arrivals per second (above 0).
    pub rate: f64,
    /// Arrivals are scheduled from 0 up to this time after the start. `Duration::MAX`: until
    /// `stop` is set or `max_requests` have been scheduled.
    pub duration: Duration,
    /// No more than this many arrivals.
    pub max_requests: Option<u64>,
    /// Seed of the arrival process: the same seed and rate give the same schedule.
    pub seed: u64,
    /// Bound on each request, from its scheduled time to the end of its response.
    pub request_timeout: Duration,
    /// An arrival that finds this many requests in flight is not sent, and counts as
    /// [`Outcome::NotSent`]: a bound on the client's sockets when the server stops answering.
    pub max_in_flight: usize,
}

impl OpenSpec {
    /// 100 requests a second for 10 s, seed 1, 30 s per request, at most 4096 in flight.
    pub fn new(addr: SocketAddr, path: &str) -> OpenSpec {
        OpenSpec {
            addr,
            path: path.to_string(),
            headers: Vec::new(),
            rate: 100.0,
            duration: Duration::from_secs(10),
            max_requests: None,
            seed: 1,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 4096,
        }
    }

    fn request_bytes(&self) -> Vec<u8> {
        let mut spec = LoadSpec::new(self.addr, &self.path);
        spec.headers = self.headers.clone();
        spec.request_bytes()
    }
}

/// The arrival process: a Poisson process of rate `rate`, as offsets from the start.
///
/// Each gap is exponential with mean 1/rate, drawn by inversion (`-ln(1 - u) / rate`) from
/// a SplitMix64 generator seeded with `seed`, so a run can be repeated exactly.
#[derive(Clone, Debug)]
pub struct Arrivals {
    rng: Rng,
    rate: f64,
    at: f64,
}

impl Arrivals {
    /// Arrivals at `rate` a second (which must be above 0), from the seed `seed`.
    pub fn new(rate: f64, seed: u64) -> Arrivals {
        assert!(rate > 0.0 && rate.is_finite(), "the rate must be above 0");
        Arrivals {
            rng: Rng::new(seed),
            rate,
            at: 0.0,
        }
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    /// The next arrival's offset from the start; the first is one gap after 0.
    fn next(&mut self) -> Option<Duration> {
        self.at += -(1.0 - self.rng.next_f64()).ln() / self.rate;
        Some(Duration::from_secs_f64(self.at))
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// A complete response with a 2xx status.
    Ok(u16),
    /// A complete response with any other status (a balancer's 502 or 503, a 4xx).
    HttpError(u16),
    /// The connection could not be made (refused, no route, no port left).
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No complete response within the request timeout.
    Timeout,
    /// Bytes that are not an HTTP/1.x response.
    Malformed,
    /// Not sent: `max_in_flight` requests were already waiting.
    NotSent,
}

impl Outcome {
    /// The kinds of outcome, in report order; [`Outcome::kind`] indexes it.
    pub const KINDS: [&'static str; 7] = [
        "ok",
        "http_error",
        "connect",
        "reset",
        "timeout",
        "malformed",
        "not_sent",
    ];

    /// Index of this outcome's kind in [`Outcome::KINDS`].
    pub fn kind(self) -> usize {
        match self {
            Outcome::Ok(_) => 0,
            Outcome::HttpError(_) => 1,
            Outcome::Connect => 2,
            Outcome::Reset => 3,
            Outcome::Timeout => 4,
            Outcome::Malformed => 5,
            Outcome::NotSent => 6,
        }
    }

    /// The short name of its kind: `ok`, `http_error`, `connect`, ...
    pub fn name(self) -> &'static str {
        Outcome::KINDS[self.kind()]
    }

    /// The response's status, if there was one.
    pub fn status(self) -> Option<u16> {
        match self {
            Outcome::Ok(s) | Outcome::HttpError(s) => Some(s),
            _ => None,
        }
    }

    /// A complete response: `Ok` for a 2xx status, `HttpError` otherwise.
    pub fn of_status(status: u16) -> Outcome {
        if (200..300).contains(&status) {
            Outcome::Ok(status)
        } else {
            Outcome::HttpError(status)
        }
    }
}

/// One request: when it was due, how late it went out, how it ended and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its arrival time, from the start of the run.
    pub scheduled: Duration,
    /// From the scheduled time to the moment the client started connecting.
    pub lag: Duration,
    pub outcome: Outcome,
    /// From the scheduled time to the end of the response (or to the failure).
    pub latency: Duration,
}

/// Counts and percentiles over a set of requests.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Requests of each kind, indexed as [`Outcome::KINDS`].
    pub counts: [u64; 7],
    /// Latency of the successful (2xx) requests.
    pub latency: Latencies,
    /// Schedule lag of every request sent.
    pub lag: Latencies,
}

impl Summary {
    /// Adds one request.
    pub fn add(&mut self, r: &Record) {
        self.counts[r.outcome.kind()] += 1;
        if let Outcome::Ok(_) = r.outcome {
            self.latency.record(r.latency);
        }
        if r.outcome != Outcome::NotSent {
            self.lag.record(r.lag);
        }
    }

    /// The summary of `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Summary {
        let mut s = Summary::default();
        for r in records {
            s.add(r);
        }
        s
    }

    /// Requests scheduled (every outcome).
    pub fn sent(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Requests answered with a 2xx.
    pub fn ok(&self) -> u64 {
        self.counts[0]
    }

    /// Requests that did not get a 2xx, whatever the cause.
    pub fn failed(&self) -> u64 {
        self.sent() - self.ok()
    }
}

/// One time slice of a run: the requests scheduled in `[start, start + width)`.
#[derive(Clone, Debug)]
pub struct Slice {
    pub start: Duration,
    pub summary: Summary,
}

/// What a run did: every request, in schedule order.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// The wall-clock time of the run's start (offset 0), in µs since the Unix epoch: a
    /// record's scheduled time plus this is when it was due, to match other logs.
    pub start_unix_us: u64,
    pub records: Vec<Record>,
    /// The most requests in flight at once.
    pub max_in_flight: usize,
    /// From the start to the end of the last request.
    pub elapsed: Duration,
}

impl OpenReport {
    /// Every request together.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.records)
    }

    /// The requests per slice of `width` (by scheduled time), from 0 to the last arrival;
    /// a slice without arrivals is there, empty.
    pub fn slices(&self, width: Duration) -> Vec<Slice> {
        let width = width.max(Duration::from_millis(1));
        let mut slices: Vec<Slice> = Vec::new();
        for r in &self.records {
            let i = (r.scheduled.as_nanos() / width.as_nanos()) as usize;
            while slices.len() <= i {
                let start = width * slices.len() as u32;
                slices.push(Slice {
                    start,
                    summary: Summary::default(),
                });
            }
            slices[i].summary.add(r);
        }
        slices
    }

    /// The records as CSV, one line each after a header: `scheduled_us,lag_us,outcome,
    /// status,latency_us` (status empty without a response). The run's start is in the
    /// header's comment line: `# start_unix_us=N`.
    pub fn records_csv(&self) -> String {
        let mut out = format!(
            "# start_unix_us={}\nscheduled_us,lag_us,outcome,status,latency_us\n",
            self.start_unix_us
        );
        for r in &self.records {
            let status = r.outcome.status().map_or(String::new(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                r.scheduled.as_micros(),
                r.lag.as_micros(),
                r.outcome.name(),
                status,
                r.latency.as_micros()
            );
        }
        out
    }
}

/// A request in flight.
struct Conn {
    stream: TcpStream,
    /// Distinguishes this request from an earlier one in the same slot, for the timeouts.
    serial: u64,
    scheduled: Duration,
    lag: Duration,
    connected: bool,
    written: usize,
    framer: Framer,
}

/// Sends requests as `spec` says until its arrivals end or `stop` is set (then no arrival
/// is sent, and the requests in flight finish, each within its timeout), and returns every
/// request. `Err` only when the event loop cannot be made.
pub fn run(spec: &OpenSpec, stop: &AtomicBool) -> io::Result<OpenReport> {
    let request = spec.request_bytes();
    let mut arrivals = Arrivals::new(spec.rate, spec.seed);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 16 * 1024];
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // Every request's deadline is its scheduled time plus the same timeout, so they expire
    // in launch order: a queue, not a heap.
    let mut deadlines: VecDeque<(Duration, usize, u64)> = VecDeque::new();
    let mut report = OpenReport::default();
    let start = Instant::now();
    report.start_unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut in_flight = 0usize;
    let mut scheduled = 0u64;
    let mut serial = 0u64;
    let mut next = arrivals.next();
    loop {
        let now = start.elapsed();
        // Arrivals that are due.
        if stop.load(Ordering::Relaxed) {
            next = None;
        }
        while let Some(at) = next.filter(|&at| at <= now) {
            if at >= spec.duration || spec.max_requests.is_some_and(|m| scheduled >= m) {
                next = None;
                break;
            }
            scheduled += 1;
            next = arrivals.next();
            let lag = now - at;
            if in_flight >= spec.max_in_flight {
                report.records.push(Record {
                    scheduled: at,
                    lag,
                    outcome: Outcome::NotSent,
                    latency: Duration::ZERO,
                });
                continue;
            }
            let stream = match TcpStream::connect(spec.addr) {
                Ok(s) => s,
                Err(_) => {
                    report.records.push(Record {
                        scheduled: at,
                        lag,
                        outcome: Outcome::Connect,
                        latency: start.elapsed().saturating_sub(at),
                    });
                    continue;
                }
            };
            let i = free.pop().unwrap_or_else(|| {
                conns.push(None);
                conns.len() - 1
            });
            let mut c = Conn {
                stream,
                serial,
                scheduled: at,
                lag,
                connected: false,
                written: 0,
                framer: Framer::new(false),
            };
            serial += 1;
            if poll
                .registry()
                .register(
                    &mut c.stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                finish(&mut report, c, Outcome::Connect, start.elapsed());
                free.push(i);
                continue;
            }
            deadlines.push_back((at + spec.request_timeout, i, c.serial));
            conns[i] = Some(c);
            in_flight += 1;
            report.max_in_flight = report.max_in_flight.max(in_flight);
        }
        // Requests past their deadline.
        while let Some(&(deadline, i, serial)) = deadlines.front() {
            if deadline > now {
                break;
            }
            deadlines.pop_front();
            if conns[i].as_ref().is_some_and(|c| c.serial == serial) {
                let mut c = conns[i].take().expect("checked");
                let _ = poll.registry().deregister(&mut c.stream);
                finish(&mut report, c, Outcome::Timeout, now);
                free.push(i);
                in_flight -= 1;
            }
        }
        if next.is_none() && in_flight == 0 {
            break;
        }
        // Sleep until the next arrival, the next deadline, or an event.
        let mut wait = deadlines
            .front()
            .map_or(Duration::from_secs(1), |&(d, _, _)| d.saturating_sub(now));
        if let Some(at) = next {
            wait = wait.min(at.saturating_sub(now));
        }
        // A stop is noticed within 100 ms (a signal usually interrupts the wait anyway).
        wait = wait.min(Duration::from_millis(100));
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let i = event.token().0;
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if let Some(outcome) = drive(c, &request, &mut buf) {
                let mut c = conns[i].take().expect("checked");
                let _ = poll.registry().deregister(&mut c.stream);
                finish(&mut report, c, outcome, start.elapsed());
                free.push(i);
                in_flight -= 1;
            }
        }
    }
    report.elapsed = start.elapsed();
    report.records.sort_by_key(|r| r.scheduled);
    Ok(report)
}

/// Records how a request in flight ended, at `now` (from the start).
fn finish(report: &mut OpenReport, c: Conn, outcome: Outcome, now: Duration) {
    report.records.push(Record {
        scheduled: c.scheduled,
        lag: c.lag,
        outcome,
        latency: now.saturating_sub(c.scheduled),
    });
}

/// Moves a request forward after an event: connects, writes the request, reads the
/// response. `Some` once it has ended.
fn drive(c: &mut Conn, request: &[u8], buf: &mut [u8]) -> Option<Outcome> {
    if !c.connected {
        // A non-blocking connect has ended when the socket is writable: SO_ERROR says how.
        match c.stream.take_error() {
            Ok(Some(_)) | Err(_) => return Some(Outcome::Connect),
            Ok(None) => {}
        }
        match c.stream.peer_addr() {
            Ok(_) => c.connected = true,
            Err(e) if e.kind() == ErrorKind::NotConnected => return None,
            Err(_) => return Some(Outcome::Connect),
        }
        let _ = c.stream.set_nodelay(true);
    }
    while c.written < request.len() {
        match c.stream.write(&request[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(Outcome::Reset),
        }
    }
    loop {
        match c.stream.read(buf) {
            Ok(0) => {
                return Some(match c.framer.eof() {
                    Ok(status) => Outcome::of_status(status),
                    Err(_) => Outcome::Reset,
                });
            }
            Ok(n) => match c.framer.feed(&buf[..n]) {
                Ok(None) => {}
                Ok(Some(_)) => return Some(Outcome::of_status(c.framer.status)),
                Err(()) => return Some(Outcome::Malformed),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(Outcome::Reset),
        }
    }
}

#[cfg(test)]
mod tests;
