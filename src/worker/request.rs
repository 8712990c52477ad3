//! Serving one request: calling the app, writing its response, deciding whether the
//! connection carries on, and the logs and counters of each request.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode, Version};
use tracing::{debug, error, info};

use super::body::CompleteBody;
use super::conns::{Client, Pending};
use super::event_loop::Worker;
use super::panics::take_panic;
use super::{RequestId, io, wire};
use crate::h1::{self, Framing, Persist};
use crate::handler::{App, ConnectionInfo, RequestBody, Response, plain};
use crate::listener::Conn;
use crate::scoreboard::WorkerState;

impl<A: App> Worker<'_, A> {
    /// Serves the complete request at the front of a client's buffer: calls the app and
    /// writes its response, or, for an app serving several requests at once, starts it.
    pub(super) fn serve(&mut self, id: usize) {
        if self.concurrent {
            return self.start(id);
        }
        // The client leaves the table while it is served: answering needs the worker and the
        // connection mutably at once. It is put back before anything else looks it up.
        let Some(mut client) = self.clients.get_mut(id).and_then(Option::take) else {
            return;
        };
        // Queued only with its whole request (see `progress`).
        let Some(pending) = client.pending.take() else {
            self.clients[id] = Some(client);
            return;
        };
        self.ctx.slot.set_state(WorkerState::Busy);
        let started = Instant::now();
        let Pending { parsed, body, .. } = pending;
        let notes = self.take_notes(&parsed.request, &parsed.notes);
        let response = match body.finish() {
            Ok(mut body) => self.call_app(parsed.request, &mut body, &notes, client.info),
            Err(e) => stored_body_lost(self.ctx.slot_index, self.pid, &e),
        };
        self.answer(id, client, notes, parsed.keep_alive, response, started);
        self.ctx.slot.set_state(WorkerState::Idle);
    }

    /// Starts a request in an app that serves several at once; its response comes back
    /// through `finish`. The connection stays in the table, marked as in the app.
    fn start(&mut self, id: usize) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let Some(Pending { parsed, body, .. }) = client.pending.take() else {
            return;
        };
        client.in_app = true;
        self.account_busy();
        let started = Instant::now();
        if self.in_flight.is_empty() {
            self.ctx.slot.set_state(WorkerState::Busy);
        }
        self.trim_at = None;
        let notes = self.take_notes(&parsed.request, &parsed.notes);
        match body.finish() {
            Ok(mut body) => {
                let mut request = parsed.request.map(|()| RequestBody::new(&mut body));
                request
                    .extensions_mut()
                    .insert(RequestId(notes.request_id.clone()));
                let timeout = self.ctx.config.timeout;
                let app = self.app.concurrent().expect("a concurrent worker's app");
                if catch_unwind(AssertUnwindSafe(|| app.start(id, request, timeout))).is_err() {
                    self.app_panicked(&notes);
                    self.done
                        .push((id, plain(StatusCode::INTERNAL_SERVER_ERROR)));
                }
            }
            Err(e) => self
                .done
                .push((id, stored_body_lost(self.ctx.slot_index, self.pid, &e))),
        }
        self.in_flight.push(InFlight {
            id,
            notes,
            started,
            keep_alive: parsed.keep_alive,
        });
        self.publish_in_flight();
    }

    /// Writes the response of a request started in an app that serves several at once.
    pub(super) fn finish(&mut self, id: usize, response: Response) {
        let Some(at) = self.in_flight.iter().position(|f| f.id == id) else {
            return;
        };
        self.account_busy();
        let f = self.in_flight.remove(at);
        let Some(mut client) = self.clients.get_mut(id).and_then(Option::take) else {
            return;
        };
        client.in_app = false;
        self.answer(id, client, f.notes, f.keep_alive, response, f.started);
        if self.in_flight.is_empty() {
            self.ctx.slot.set_state(WorkerState::Idle);
            // A burst of requests in flight grew the heap (each holds its task, buffers and
            // response); freed, those pages stay with the allocator and count as this
            // worker's memory. Once it has been idle a moment, they go back to the kernel.
            self.trim_at = Some(Instant::now() + TRIM_AFTER);
        } else {
            self.publish_in_flight();
        }
    }

    /// A worker serving several requests at once counts as busy the time it holds at least
    /// one (their service times overlap): adds the time since the last count, if it held any.
    pub(super) fn account_busy(&mut self) {
        let now = Instant::now();
        if !self.in_flight.is_empty() {
            let us = now.saturating_duration_since(self.busy_counted).as_micros();
            self.ctx.slot.add_busy(us as u64);
        }
        self.busy_counted = now;
    }

    /// Publishes how many requests the worker holds and the oldest of them (the one the
    /// master names if the worker's loop gets stuck).
    fn publish_in_flight(&self) {
        let slot = self.ctx.slot;
        slot.set_in_flight(self.in_flight.len());
        if let Some(f) = self.in_flight.first() {
            slot.set_request(
                f.notes.method.as_str().as_bytes(),
                f.notes.path.as_bytes(),
                f.notes.request_id.as_bytes(),
            );
        }
    }

    /// Writes the app's response to a request, counts and logs it, and puts the connection
    /// back in the table: kept for its next request, or closed.
    fn answer(
        &mut self,
        id: usize,
        mut client: Client,
        notes: Notes,
        client_keeps: bool,
        response: Response,
        started: Instant,
    ) {
        let out = wire::Outgoing::new(
            response,
            &notes.method,
            notes.version,
            notes.trailers_accepted,
        );
        let status = out.status;
        let keep = self.keep_connection(client_keeps, out.framing);
        let persist = match (keep, notes.version) {
            (false, _) => Persist::Close,
            (true, Version::HTTP_10) => Persist::KeepAlive,
            (true, _) => Persist::Default,
        };
        let sent = self.write_response(out, &mut client.conn, persist);
        let queue_us = notes.queue_us;
        self.access_log(
            notes.method.as_str(),
            &notes.path,
            status,
            sent,
            started,
            queue_us,
            &notes.request_id,
        );
        self.keep_buffers(notes);
        self.served += 1;
        let service_us = started.elapsed().as_micros() as u64;
        let slot = self.ctx.slot;
        slot.count_response(status.as_u16(), service_us, queue_us);
        if !self.concurrent {
            slot.add_busy(service_us);
        }
        // Bytes of a next request are here and will not be answered: closing at once would
        // reset the connection and could destroy this response (see `close`).
        let linger = sent.is_some() && !client.buf.is_empty();
        self.clients[id] = Some(client);
        if keep && sent.is_some() {
            self.await_next_request(id);
        } else {
            self.close(id, linger);
        }
    }

    /// Notes what the logs and the scoreboard need of a request before the app takes it, and
    /// publishes it in the worker's slot (the master names it if the request times out).
    fn take_notes(&mut self, request: &http::Request<()>, head: &h1::HeadNotes) -> Notes {
        // The id and the path are kept after the app has taken the request (for the logs), in
        // buffers reused from one request to the next.
        let mut request_id = std::mem::take(&mut self.request_id);
        request_id.clear();
        match &head.request_id {
            Some(v) => request_id.push_str(&String::from_utf8_lossy(v.as_bytes())),
            None => {
                // `pid-n`, written by hand: core::fmt cost more than the rest of the notes.
                push_decimal(&mut request_id, u64::from(self.pid));
                request_id.push('-');
                push_decimal(&mut request_id, self.taken);
            }
        }
        // Queue time: from when the router got the request to when this worker took it.
        let queue_us = head
            .request_start
            .as_ref()
            .and_then(|v| h1::parse_request_start(v.as_bytes()))
            .map(|start_us| {
                let now_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                now_us.saturating_sub(start_us)
            });
        self.taken += 1;
        let trailers_accepted = head.trailers_accepted;
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
        Notes {
            method,
            version,
            path,
            request_id,
            queue_us,
            trailers_accepted,
        }
    }

    /// Gives the request, with its whole body, to the app. A panic in the app is answered
    /// with 500 and the worker goes on: the panic was the request's, not the worker's.
    fn call_app(
        &mut self,
        request: http::Request<()>,
        body: &mut CompleteBody,
        notes: &Notes,
        info: ConnectionInfo,
    ) -> Response {
        let mut request = request.map(|()| RequestBody::new(body));
        let extensions = request.extensions_mut();
        extensions.insert(RequestId(notes.request_id.clone()));
        extensions.insert(info);
        let app = &mut *self.app;
        match catch_unwind(AssertUnwindSafe(|| app.call(request))) {
            Ok(r) => r,
            Err(_) => {
                self.app_panicked(notes);
                plain(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Logs a panic in the app, with the request it was serving.
    fn app_panicked(&self, notes: &Notes) {
        let Notes {
            method,
            path,
            request_id,
            ..
        } = notes;
        error!(worker = self.ctx.slot_index, pid = self.pid, method = %method, path, request_id, panic = take_panic(), "app panicked");
    }

    /// Whether the connection carries on after this response: only if the client allows it,
    /// keep-alive is on, this worker goes on, the response's framing lets the next request
    /// start cleanly, and nobody waits.
    fn keep_connection(&mut self, client_allows: bool, framing: Framing) -> bool {
        self.ctx.config.keepalive > 0
            && client_allows
            && framing != Framing::Close
            && !self.stop_pending()
            && !self.someone_waiting()
    }

    /// Writes the response; returns the body bytes sent, or `None` when the client did not
    /// get all of it.
    fn write_response(
        &mut self,
        out: wire::Outgoing,
        conn: &mut Conn,
        persist: Persist,
    ) -> Option<u64> {
        let mut p = io::Patient {
            conn,
            idle: self.ctx.config.header_timeout,
        };
        match out.write(
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
        }
    }

    /// Hands the id and path buffers back, so that the next request reuses them instead of
    /// allocating its own.
    fn keep_buffers(&mut self, notes: Notes) {
        self.request_id = notes.request_id;
        self.path = notes.path;
    }

    /// Answers a request that breaks the HTTP rules or a limit, and closes.
    pub(super) fn refuse(&mut self, id: usize, err: h1::Error) {
        self.refuse_status(id, err.status(), err.name());
    }

    /// Answers a request with `status` before the app sees it, and closes; `reason` names
    /// why in the debug log.
    pub(super) fn refuse_status(&mut self, id: usize, status: StatusCode, reason: &str) {
        let started = Instant::now();
        debug!(
            worker = self.ctx.slot_index,
            pid = self.pid,
            reason,
            status = status.as_u16(),
            "request refused"
        );
        self.ctx.slot.set_state(WorkerState::Busy);
        let idle = self.ctx.config.header_timeout;
        let sent = match self.clients.get_mut(id).and_then(Option::as_mut) {
            Some(client) => {
                let out = wire::Outgoing::new(plain(status), &Method::GET, Version::HTTP_11, false);
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
        self.access_log("-", "-", status, sent, started, None, "-");
        self.served += 1;
        let service_us = started.elapsed().as_micros() as u64;
        self.ctx
            .slot
            .count_response(status.as_u16(), service_us, None);
        self.ctx.slot.add_busy(service_us);
        self.ctx.slot.set_state(WorkerState::Idle);
        self.close(id, true);
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

/// What the worker keeps of the request it serves once the app has taken the request
/// itself: for the logs, the scoreboard and the response's framing.
pub(super) struct Notes {
    method: Method,
    version: Version,
    /// Buffers reused from one request to the next (see `keep_buffers`).
    path: String,
    request_id: String,
    /// Time between the router's `X-Request-Start` and the worker taking the request.
    queue_us: Option<u64>,
    /// The client accepts a trailer section (`TE: trailers`).
    trailers_accepted: bool,
}

/// Appends `n` in decimal.
fn push_decimal(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        s.push(char::from(d));
    }
}

/// How long a worker serving several requests at once stays idle before it returns its
/// heap's free pages to the kernel.
const TRIM_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// A request started in an app that serves several at once, until its response is written.
pub(super) struct InFlight {
    /// The connection's id in the client table.
    id: usize,
    notes: Notes,
    started: Instant,
    /// The client allows the connection to persist after the response.
    keep_alive: bool,
}

/// The answer to a request whose stored body cannot be read back (its temporary file).
fn stored_body_lost(worker: usize, pid: u32, e: &std::io::Error) -> Response {
    error!(worker, pid, error = %e, "cannot read a stored request body");
    plain(StatusCode::SERVICE_UNAVAILABLE)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [0, 7, 10, 4242, 1_000_000, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::from("x");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }
}
