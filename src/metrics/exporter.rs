//! The master's `/metrics` endpoint (`--metrics-bind`): one listening TCP socket and at most
//! [`MAX_CONNECTIONS`] connections, all non-blocking, served from the master's own loop. No
//! thread, no app code, bounded work per turn.
//!
//! A turn ([`Exporter::turn`]) closes connections past their deadline, accepts what waits
//! (at most [`ACCEPTS_PER_TURN`]; one over the bound is closed at once), reads request heads
//! and writes responses until the kernel says it would block, keeping the unsent rest for
//! the next turn. A complete `GET /metrics` (or `HEAD`) then waits for the page, which the
//! master renders once for every scrape waiting ([`Exporter::answer`]). Every connection
//! has [`DEADLINE`] to send its head, and again to take its response, or it is closed: a
//! client that sends nothing or never reads holds a connection slot, never the master.
//!
//! The sockets are registered in the master's poll (edge-triggered), so that a connection,
//! a request or room to write wakes it; a turn then tries every connection, which is at
//! most eight reads or writes.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, SockaddrStorage};

use super::prometheus::CONTENT_TYPE;
use crate::sys;

/// Connections held at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 8;
/// How long a connection may take to send its request head, and then to take its response.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// The longest request head read; a longer one gets 431.
pub const MAX_HEAD: usize = 8192;
/// Connections accepted in one turn at most; the rest wait for the next turn.
pub const ACCEPTS_PER_TURN: usize = 16;
/// The listen(2) backlog: room for a burst, beyond which the kernel refuses connections.
const BACKLOG: i32 = 32;
/// What the client sent after its head (a body, a pipelined request) is read and dropped
/// before closing, up to this much: closing with unread bytes makes the kernel reset the
/// connection, which can destroy the response before the client reads it.
const DRAIN_MAX: usize = 64 * 1024;

/// Binds `addr` for the endpoint: SO_REUSEADDR (a restarted server binds while old
/// connections sit in TIME_WAIT), dual-stack for `[::]`, non-blocking, close-on-exec.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = sock::socket(family, SockType::Stream, flags, None)?;
    sys::set_reuse_addr(fd.as_fd())?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        sys::set_dual_stack(fd.as_fd())?;
    }
    sock::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    sock::listen(&fd, sock::Backlog::new(BACKLOG).map_err(io::Error::from)?)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Takes the endpoint's socket handed over by the previous image (USR2) when it still
/// serves `addr` (port 0: any port on that address), marked close-on-exec and non-blocking
/// again. `Ok(None)` when it is not a listening TCP socket on `addr`: it is closed, and the
/// caller binds anew.
pub fn adopt(fd: RawFd, addr: SocketAddr) -> io::Result<Option<std::net::TcpListener>> {
    let owned = sys::adopt_fd(fd)?;
    sys::set_cloexec(&owned)?;
    if !sys::is_stream_socket(owned.as_fd()) || !sys::is_listening(owned.as_fd()) {
        return Ok(None);
    }
    let l = std::net::TcpListener::from(owned);
    let serves = l
        .local_addr()
        .is_ok_and(|a| a.ip() == addr.ip() && (addr.port() == 0 || a.port() == addr.port()));
    if !serves {
        return Ok(None);
    }
    l.set_nonblocking(true)?;
    Ok(Some(l))
}

/// Where a connection is.
#[derive(Debug)]
enum State {
    /// Reading the request head.
    Head(Vec<u8>),
    /// A complete `GET /metrics` (`HEAD`: `head_only`) waits for the page.
    Waiting { head_only: bool },
    /// Writing the response: `sent` bytes of `out` are gone.
    Writing { out: Vec<u8>, sent: usize },
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    state: State,
    deadline: Instant,
}

/// What a connection's turn ended with.
enum Next {
    Keep,
    Close(&'static str),
}

/// The endpoint: the listener and its connections.
#[derive(Debug)]
pub struct Exporter {
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    base: Token,
    backlogged: bool,
}

impl Exporter {
    /// Serves on `listener` (bound or adopted), registered in `registry` under `base`; the
    /// connections take the [`MAX_CONNECTIONS`] tokens after it.
    pub fn new(
        listener: std::net::TcpListener,
        registry: &Registry,
        base: Token,
    ) -> io::Result<Exporter> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        registry.register(&mut listener, base, Interest::READABLE)?;
        Ok(Exporter {
            listener,
            conns: (0..MAX_CONNECTIONS).map(|_| None).collect(),
            base,
            backlogged: false,
        })
    }

    /// Where it listens.
    #[cfg(test)]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open_connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// The earliest connection deadline, if any connection is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Connections may still wait to be accepted (the last turn stopped at
    /// [`ACCEPTS_PER_TURN`]): the master should turn again without waiting.
    pub fn backlogged(&self) -> bool {
        self.backlogged
    }

    /// One turn at `now`: expire, accept, read, write. True when a scrape waits for the page
    /// ([`answer`](Self::answer)).
    pub fn turn(&mut self, now: Instant, registry: &Registry) -> bool {
        for i in 0..self.conns.len() {
            if self.conns[i].as_ref().is_some_and(|c| now >= c.deadline) {
                self.close(i, registry, "deadline passed");
            }
        }
        self.accept(now, registry);
        for i in 0..self.conns.len() {
            self.progress(i, now, registry);
        }
        self.conns
            .iter()
            .flatten()
            .any(|c| matches!(c.state, State::Waiting { .. }))
    }

    /// Gives every waiting scrape the page, and starts writing it.
    pub fn answer(&mut self, now: Instant, page: &str, registry: &Registry) {
        let mut full = response("200 OK", CONTENT_TYPE, "", page.len());
        let head_len = full.len();
        full.extend_from_slice(page.as_bytes());
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if let State::Waiting { head_only } = c.state {
                let out = if head_only {
                    full[..head_len].to_vec()
                } else {
                    full.clone()
                };
                c.state = State::Writing { out, sent: 0 };
                c.deadline = now + DEADLINE;
                self.progress(i, now, registry);
            }
        }
    }

    fn accept(&mut self, now: Instant, registry: &Registry) {
        self.backlogged = false;
        for n in 0.. {
            if n == ACCEPTS_PER_TURN {
                self.backlogged = true;
                return;
            }
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE and the like: the next connection's event brings the next try.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    return;
                }
            };
            let Some(i) = self.conns.iter().position(Option::is_none) else {
                tracing::debug!(
                    open = MAX_CONNECTIONS,
                    "metrics: too many scrape connections; closing a new one"
                );
                drop(stream);
                continue;
            };
            let token = Token(self.base.0 + 1 + i);
            if let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                tracing::warn!(error = %e, "metrics: cannot watch a scrape connection");
                continue;
            }
            self.conns[i] = Some(Conn {
                stream,
                state: State::Head(Vec::new()),
                deadline: now + DEADLINE,
            });
        }
    }

    /// Moves connection `i` as far as the kernel lets it, closing it when done.
    fn progress(&mut self, i: usize, now: Instant, registry: &Registry) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        if let Next::Close(why) = c.progress(now) {
            self.close(i, registry, why);
        }
    }

    fn close(&mut self, i: usize, registry: &Registry, why: &'static str) {
        if let Some(mut c) = self.conns[i].take() {
            if why != "answered" {
                tracing::debug!(reason = why, "metrics: scrape connection closed");
            }
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

impl Conn {
    fn progress(&mut self, now: Instant) -> Next {
        loop {
            match &mut self.state {
                State::Head(buf) => match read_head(&mut self.stream, buf) {
                    Ok(None) => return Next::Keep,
                    Ok(Some(Parsed::Page { head_only })) => {
                        self.state = State::Waiting { head_only };
                        return Next::Keep;
                    }
                    Ok(Some(Parsed::Answer(out))) => {
                        self.state = State::Writing { out, sent: 0 };
                        self.deadline = now + DEADLINE;
                    }
                    Err(why) => return Next::Close(why),
                },
                State::Waiting { .. } => return Next::Keep,
                State::Writing { out, sent } => {
                    while *sent < out.len() {
                        match self.stream.write(&out[*sent..]) {
                            Ok(0) => return Next::Close("write returned 0"),
                            Ok(n) => *sent += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                return Next::Keep;
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => return Next::Close("write failed"),
                        }
                    }
                    drain(&mut self.stream);
                    return Next::Close("answered");
                }
            }
        }
    }
}

/// Reads and drops what the client sent that is already here, up to [`DRAIN_MAX`].
fn drain(stream: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    let mut left = DRAIN_MAX;
    while left > 0 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// A request head read to its end.
enum Parsed {
    /// `GET /metrics` or `HEAD /metrics`: the page.
    Page { head_only: bool },
    /// Anything else: this response.
    Answer(Vec<u8>),
}

/// Reads what the client sent into `buf` until the head is complete (`Some`), the kernel has
/// nothing more (`None`), or the client is gone (`Err`).
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Parsed>, &'static str> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(buf) {
            return Ok(Some(route(&buf[..end])));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Some(Parsed::Answer(error(
                "431 Request Header Fields Too Large",
                "",
            ))));
        }
        let want = chunk.len().min(MAX_HEAD - buf.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err("closed by the client before its head"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("read failed"),
        }
    }
}

/// Where the head ends (after its empty line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What to answer a complete head: only its request line matters.
fn route(head: &[u8]) -> Parsed {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Answer(error("400 Bad Request", ""));
    };
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Parsed::Answer(error("400 Bad Request", ""));
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path != b"/metrics" {
        return Parsed::Answer(error("404 Not Found", ""));
    }
    match method {
        b"GET" => Parsed::Page { head_only: false },
        b"HEAD" => Parsed::Page { head_only: true },
        _ => Parsed::Answer(error("405 Method Not Allowed", "Allow: GET, HEAD\r\n")),
    }
}

/// A response head for a body of `len` bytes; the connection closes after it.
fn response(status: &str, content_type: &str, extra: &str, len: usize) -> Vec<u8> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = crate::h1::date::imf_fixdate(secs);
    format!(
        "HTTP/1.1 {status}\r\nDate: {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n",
        String::from_utf8_lossy(&date)
    )
    .into_bytes()
}

/// A short plain-text error response: its status line as the body.
fn error(status: &str, extra: &str) -> Vec<u8> {
    let body = format!("{status}\n");
    let mut out = response(status, "text/plain; charset=utf-8", extra, body.len());
    out.extend_from_slice(body.as_bytes());
    out
}

impl AsFd for Exporter {
    /// The listening socket, for the USR2 handover.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

#[cfg(test)]
mod tests;
