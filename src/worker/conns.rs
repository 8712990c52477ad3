//! The connection table: the connections a worker holds while it serves another one's
//! request, each parked in the worker's poll until its request is complete, its time is up,
//! or it closes.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use tracing::{debug, warn};

use super::event_loop::Worker;
use super::request::{RequestState, SMALL_BODY, request_state};
use crate::h1::{self, Parsed};
use crate::handler::App;
use crate::listener::Conn;

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
    /// We have answered and shut our side down; what the client still sends is discarded.
    pub(super) lingering: bool,
    /// The head of the complete request at the front of `buf`, while it waits in the ready
    /// queue.
    pub(super) parsed: Option<Parsed>,
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

impl<A: App> Worker<'_, A> {
    /// Connections held, the one being served included.
    pub(super) fn open_clients(&self) -> usize {
        self.clients.len() - self.free_ids.len()
    }

    /// Takes a new connection: reads what it has sent, then queues or parks it.
    pub(super) fn admit(&mut self, conn: Conn) {
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
    pub(super) fn on_readable(&mut self, id: usize) {
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

    /// After a response on a connection that carries on: the next request may already be
    /// here (pipelined), else the connection waits parked for it, idle for at most
    /// `--keepalive` seconds.
    pub(super) fn await_next_request(&mut self, id: usize) {
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

    /// Closes parked connections whose time is up: 408 for a request that did not arrive
    /// in time, silence for an idle keep-alive connection.
    pub(super) fn expire(&mut self, now: Instant) {
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

    /// The earliest deadline of a held connection: the longest the worker may sleep in poll.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().flatten().map(|c| c.deadline).min()
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
}
