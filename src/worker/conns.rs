//! The connection table: the connections a worker holds while it serves another one's
//! request, each parked in the worker's poll until its request (head and whole body) is
//! complete, its time is up, or it closes.
//!
//! A request moves forward as its bytes arrive ([`Worker::progress`]): the head is parsed
//! once it is complete, then the body is collected (see `body`), then the request waits in
//! the ready queue. Nothing a client sends, or fails to send, is waited for outside the poll.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use http::StatusCode;
use mio::unix::SourceFd;
use mio::{Interest, Token};
use tracing::{debug, warn};

use super::body::{BodyError, Collector, Readable};
use super::event_loop::Worker;
use crate::h1::{self, HeadScan, Limits, Parsed};
use crate::handler::{App, ConnectionInfo};
use crate::listener::Conn;
use crate::sys;

/// Most connections a worker holds at once (serving one, the others parked); at this number
/// it stops accepting until one completes or expires.
pub(super) const MAX_CLIENTS: usize = 64;
/// How long a closing connection may keep sending before it is dropped (see `close`).
const LINGER: Duration = Duration::from_secs(2);
/// Tokens of connections start here (listeners use 0..listeners).
pub(super) const CLIENTS: usize = 1 << 16;

/// A connection the worker holds.
pub(super) struct Client {
    pub(super) conn: Conn,
    /// Who the client is and which listener it reached (each request's extension).
    pub(super) info: ConnectionInfo,
    /// Bytes received and not yet consumed (the next request, possibly part of it).
    pub(super) buf: Vec<u8>,
    /// When it must have sent its request (or, idle between requests, when it is closed).
    deadline: Instant,
    /// Requests answered on it.
    pub(super) requests: u64,
    /// It is in the worker's poll (from its first park until it is dropped).
    registered: bool,
    /// The client has closed its sending side.
    eof: bool,
    /// Reading stopped before the socket was drained (the buffer was full, or the body was
    /// complete): bytes may wait in the kernel that no edge-triggered event will report
    /// again, so they are read after the response. False after a short read, the common
    /// case, which saves that read.
    unread: bool,
    /// We have answered and shut our side down; what the client still sends is discarded.
    pub(super) lingering: bool,
    /// Its request is with an app that serves several at once: what else it sends is read
    /// after the response, and no deadline of its own applies meanwhile.
    pub(super) in_app: bool,
    /// Follows the head at the front of `buf` as it arrives, so that it is parsed only when
    /// that can change the answer.
    head: HeadScan,
    /// The request whose head is complete: its body is being collected, or it waits in the
    /// ready queue. Its head is no longer in `buf`; what `buf` holds comes after its body.
    pub(super) pending: Option<Pending>,
}

/// A request whose head has been parsed.
pub(super) struct Pending {
    pub(super) parsed: Parsed,
    pub(super) body: Collector,
    /// `100 Continue` was sent.
    continue_sent: bool,
}

/// Where a client's head stands.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived return value; boxing the parsed head cost an allocation per request"
)]
enum HeadState {
    Complete(Parsed),
    Incomplete,
    Refused(h1::Error),
}

impl Client {
    /// Reads what is available, without blocking, up to `max` buffered bytes.
    fn fill(&mut self, max: usize) -> std::io::Result<()> {
        self.unread = false;
        loop {
            let len = self.buf.len();
            if len >= max {
                // Stopped with the socket perhaps not drained: see `unread`.
                self.unread = true;
                return Ok(());
            }
            let want = 4096.min(max - len);
            match sys::read_appending(self.conn.as_fd(), &mut self.buf, want) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    if n < want {
                        // A short read: the socket is drained for now. No read to EAGAIN:
                        // on Linux every arrival of data wakes an edge-triggered epoll
                        // again (ep_poll_callback on sk_data_ready), so the parked
                        // connection is not missed, and the common case saves a syscall.
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
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

    /// The head is complete: takes it out of the buffer and starts collecting the body with
    /// the bytes that followed it.
    fn start_body(&mut self, parsed: Parsed, limits: &Limits) -> Result<(), BodyError> {
        self.buf.drain(..parsed.head_len);
        self.head.reset();
        let mut body = Collector::new(parsed.body, limits);
        let used = body.feed(&self.buf)?;
        self.buf.drain(..used);
        self.pending = Some(Pending {
            parsed,
            body,
            continue_sent: false,
        });
        Ok(())
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

impl<A: App> Worker<'_, A> {
    /// Connections held, the one being served included.
    pub(super) fn open_clients(&self) -> usize {
        self.clients.len() - self.free_ids.len()
    }

    /// Takes a new connection: reads what it has sent, then queues or parks it.
    pub(super) fn admit(&mut self, conn: Conn, info: ConnectionInfo) {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        let client = Client {
            conn,
            info,
            buf,
            deadline: Instant::now() + self.ctx.config.header_timeout,
            requests: 0,
            registered: false,
            eof: false,
            unread: false,
            lingering: false,
            in_app: false,
            head: HeadScan::default(),
            pending: None,
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

    /// The most a connection's buffer holds before its head is parsed: one byte more than
    /// the largest head, so that a head over the limits is seen as such.
    fn head_buffer_max(&self) -> usize {
        self.ctx.config.limits.max_head_len() + 1
    }

    /// A parked connection is readable: reads what it sent and moves its request forward.
    pub(super) fn on_readable(&mut self, id: usize) {
        let max = self.head_buffer_max();
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if client.in_app || self.ready.contains(&id) {
            // Its request waits to be served or is being served; what else it sends is read
            // after that.
            return;
        }
        if client.lingering {
            if !client.discard() {
                self.close(id, false);
            }
            return;
        }
        if client.pending.is_none()
            && let Err(e) = client.fill(max)
        {
            debug!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "connection failed");
            self.close(id, false);
            return;
        }
        self.progress(id);
    }

    /// Moves a client's request forward with what it has sent: parses the head once it is
    /// complete, then collects the body from the bytes after the head and from the socket.
    /// A whole request joins the ready queue; a broken one is answered and closed; an
    /// incomplete one waits parked (its body for at most `--body-timeout`).
    fn progress(&mut self, id: usize) {
        let limits = self.ctx.config.limits;
        let body_timeout = self.ctx.config.body_timeout;
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if client.pending.is_none() {
            match head_state(client, &limits) {
                HeadState::Complete(parsed) => {
                    client.deadline = Instant::now() + body_timeout;
                    if let Err(e) = client.start_body(parsed, &limits) {
                        return self.refuse_body(id, e);
                    }
                }
                HeadState::Incomplete if client.eof => {
                    // The client closed. A partial request gets no answer: nobody would read it.
                    return self.close(id, false);
                }
                HeadState::Incomplete => return self.park(id),
                HeadState::Refused(err) => return self.refuse(id, err),
            }
        }
        let Some(pending) = client.pending.as_mut() else {
            return;
        };
        if !pending.body.is_complete() {
            match pending
                .body
                .read_from(&mut client.conn, &mut self.chunk, &mut client.buf)
            {
                Ok(Readable::Complete) => client.unread = true,
                Ok(Readable::Drained) => {
                    if pending.parsed.expect_continue && !pending.continue_sent {
                        // RFC 9110 section 10.1.1: the head passed every check, so the client
                        // may send the body it holds back until it hears this.
                        pending.continue_sent = true;
                        if client
                            .conn
                            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                            .is_err()
                        {
                            return self.close(id, false);
                        }
                    }
                    return self.park(id);
                }
                // The client left before the end of its body: nobody is there to answer.
                Ok(Readable::Eof) => return self.close(id, false),
                Err(e) => return self.refuse_body(id, e),
            }
        }
        self.ready.push_back(id);
    }

    /// Answers a request whose body cannot be collected, and closes.
    fn refuse_body(&mut self, id: usize, e: BodyError) {
        match e {
            BodyError::Refused(err) => self.refuse(id, err),
            BodyError::Store(e) => {
                warn!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "cannot store a request body");
                self.refuse_status(id, StatusCode::SERVICE_UNAVAILABLE, "body_not_stored");
            }
        }
    }

    /// Puts a connection in the poll to wait for more of its request.
    fn park(&mut self, id: usize) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if let Err(e) = client.park(self.poll.registry(), Token(CLIENTS + id)) {
            warn!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "cannot park a connection");
            self.close(id, false);
        }
    }

    /// After a response on a connection that carries on: reads what the client sent before
    /// this request was taken, if reading stopped short of draining the socket (a pipelined
    /// request may be whole already, and an edge-triggered poll would not report bytes that
    /// arrived before), then moves the next request forward. An idle
    /// connection waits at most `--keepalive` seconds; one with part of its next request,
    /// `--header-timeout`.
    pub(super) fn await_next_request(&mut self, id: usize) {
        let max = self.head_buffer_max();
        let now = Instant::now();
        let (keepalive, header_timeout) = (
            Duration::from_secs(self.ctx.config.keepalive),
            self.ctx.config.header_timeout,
        );
        let Some(client) = self.clients[id].as_mut() else {
            return;
        };
        // The request just served left `pending` empty and the head scan reset (`start_body`).
        client.requests += 1;
        if client.unread
            && let Err(e) = client.fill(max)
        {
            debug!(worker = self.ctx.slot_index, pid = self.pid, error = %e, "connection failed");
            return self.close(id, false);
        }
        client.deadline = now
            + if client.buf.is_empty() {
                keepalive
            } else {
                header_timeout
            };
        self.progress(id);
    }

    /// Closes parked connections whose time is up: 408 for a request that did not arrive
    /// in time, silence for an idle keep-alive connection.
    pub(super) fn expire(&mut self, now: Instant) {
        for id in 0..self.clients.len() {
            let Some(client) = self.clients[id].as_ref() else {
                continue;
            };
            if client.deadline > now || client.in_app || self.ready.contains(&id) {
                continue;
            }
            if client.lingering
                || (client.buf.is_empty() && client.requests > 0 && client.pending.is_none())
            {
                self.close(id, false);
            } else if client.pending.is_some() {
                self.refuse(id, h1::Error::BodyTimeout);
            } else {
                self.refuse(id, h1::Error::HeadTimeout);
            }
        }
    }

    /// The earliest deadline of a held connection: the longest the worker may sleep in poll.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        // A request being served, or waiting for room among the requests in flight, has no
        // deadline of the connection's.
        self.clients
            .iter()
            .enumerate()
            .filter_map(|(id, c)| c.as_ref().map(|c| (id, c)))
            .filter(|(id, c)| !c.in_app && !self.ready.contains(id))
            .map(|(_, c)| c.deadline)
            .min()
    }

    /// Drops a connection (closing it also removes it from the poll).
    ///
    /// With `linger`, it is not dropped yet: closing a socket with unread bytes makes the
    /// kernel send RST, which can destroy the response the client has not read yet (RFC 9112
    /// section 9.6, "tear-down"). So our side is shut down and the connection stays parked,
    /// its incoming bytes discarded, until the client closes or [`LINGER`] has passed. The
    /// worker does not wait for it.
    pub(super) fn close(&mut self, id: usize, linger: bool) {
        if linger
            && let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut)
            && !client.eof
            && !client.lingering
            && client.conn.shutdown_write().is_ok()
        {
            client.lingering = true;
            client.buf.clear();
            client.pending = None;
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
}

/// Whether the head at the front of a client's buffer is complete, broken, or still coming.
fn head_state(client: &mut Client, limits: &Limits) -> HeadState {
    match client.head.advance(&client.buf, limits) {
        Ok(Some(parsed)) => HeadState::Complete(parsed),
        Ok(None) => HeadState::Incomplete,
        Err(e) => HeadState::Refused(e),
    }
}
