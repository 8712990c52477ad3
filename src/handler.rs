//! What an app is: the [`App`] trait, the request and response body types, and the worker
//! identity handed to `after_fork`.
//!
//! Requests and responses are the `http` crate's types. The request body is a stream
//! ([`RequestBody`] implements `std::io::Read`) bounded by `Content-Length` and the limits; a
//! response body ([`Body`]) is bytes, a reader (sent chunked to HTTP/1.1 clients) or a file.
//! A worker serves one request at a time, so an app is called through `&mut self` and needs
//! no locks, no `Send` and no `Sync`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use bytes::Bytes;

/// A request as the app sees it.
pub type Request<'a> = http::Request<RequestBody<'a>>;

/// A response as the app returns it.
pub type Response = http::Response<Body>;

/// The error type `after_fork` may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An application served by runicorn.
///
/// It is built once, in the master, before the workers are forked: whatever it loads at
/// construction (templates, configuration, a routing table) is shared copy-on-write by every
/// worker. Each worker then calls [`after_fork`](App::after_fork) on its own copy (the place
/// to open database connections and other per-process resources) and [`call`](App::call) for
/// each request, one at a time.
///
/// Any `FnMut(Request) -> Response` closure is an app.
pub trait App {
    /// Answers one request.
    ///
    /// A panic here gives the client a 500 and is logged with its message; the worker goes
    /// on serving the next request with the app as the panic left it.
    fn call(&mut self, req: Request<'_>) -> Response;

    /// Runs in each worker right after it was forked, before it accepts any connection.
    ///
    /// An error stops the worker with the exit code `WORKER_BOOT_ERROR`; the master logs it
    /// and, if it keeps happening, treats it as a crash loop.
    fn after_fork(&mut self, worker: &WorkerInfo) -> Result<(), BoxError> {
        let _ = worker;
        Ok(())
    }

    /// The app's side of serving several requests at once in one worker
    /// (`--worker-connections` above 1); `None`, the default, for an app that answers one
    /// request at a time in `call`. Only runicorn's tower adapter has one.
    #[doc(hidden)]
    fn concurrent(&mut self) -> Option<&mut dyn Concurrent> {
        None
    }
}

/// An app that serves several requests at once in one worker: the worker starts requests,
/// and waits for their answers in [`wait`](Concurrent::wait), where the app runs them.
///
/// Not nameable outside the crate: only the tower adapter implements it.
pub trait Concurrent {
    /// Starts serving `req`; its response comes back from `wait` with `key`. An answer that
    /// takes longer than `timeout` (to its head) is given up: the request's work is dropped,
    /// and the response is a 503, logged with the request.
    fn start(&mut self, key: usize, req: Request<'_>, timeout: Option<Duration>);

    /// Runs the started requests until `poll_fd` (the worker's own poll) is readable, one of
    /// them has its response, or `timeout` has passed; appends the responses to `done`.
    fn wait(
        &mut self,
        poll_fd: BorrowedFd<'_>,
        timeout: Option<Duration>,
        done: &mut Vec<(usize, Response)>,
    );

    /// Gives back what a burst of requests grew, when the worker has been idle a moment
    /// (before it returns free memory to the kernel).
    fn shrink(&mut self) {}
}

impl<F> App for F
where
    F: FnMut(Request<'_>) -> Response,
{
    fn call(&mut self, req: Request<'_>) -> Response {
        self(req)
    }
}

/// Who a worker is, for `after_fork`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's slot: its index in the master's scoreboard, the `worker=` of the logs.
    /// It is the lowest slot not held by a live worker when this one was forked, and stays
    /// the worker's for its life. With N workers the slots are `0..N` at start; TTIN takes the
    /// lowest free slot, TTOU stops the worker in the highest. A HUP starts the new workers
    /// beside the old ones, so they take the next free slots (2 and 3 with two workers) and
    /// keep them; after a USR2 the new binary numbers its workers from 0 again. Use it to
    /// tell workers apart (a file name, a log prefix), not as a dense `0..N` index.
    pub slot: usize,
    /// The worker's process id.
    pub pid: u32,
}

/// The connection a request came on, as a request extension (`req.extensions()`, or axum's
/// `Extension<ConnectionInfo>`): the client's address and the listener it reached.
///
/// Behind a router or a load balancer (Heroku's, HAProxy, nginx) the peer is the proxy; the
/// client's own address is in the header the proxy adds (`X-Forwarded-For` on Heroku).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The client's address (the kernel's, from accept4(2)); `None` on a Unix socket.
    pub peer: Option<std::net::SocketAddr>,
    /// The listener's address as bound (`[::]:5000` for a wildcard bind); `None` on a Unix
    /// socket.
    pub local: Option<std::net::SocketAddr>,
    /// The listener's position among the server's listeners (`--bind` order, or the order
    /// of the sockets it was handed), from 0.
    pub listener: usize,
}

/// A short text/plain response with the status's reason phrase as body: what the server
/// answers for the app when it cannot (a panic, a refusal, a timeout).
pub(crate) fn plain(status: http::StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut r = Response::new(format!("{reason}\n").into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Where a request body's bytes come from: the whole body, collected by the worker before
/// the app was called (in memory, or in a temporary file for a large one).
pub(crate) trait BodySource {
    /// Reads decoded body bytes; 0 at the end of the body.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Body bytes not yet read, when known.
    fn remaining(&self) -> Option<u64>;
    /// Moves the unread rest of the body out, owned, and leaves this source empty: for a
    /// body that must outlive the call that lends it (a tower service's request body).
    #[cfg(feature = "tower")]
    fn take(&mut self) -> Box<dyn BodySource + Send + Sync>;
}

/// A request body: a stream of the request's content, with the transfer coding removed.
///
/// The whole body has arrived before the app is called: the worker collects it while the
/// connection waits parked (a request whose body breaks its framing, passes
/// `--limit-request-body` or does not arrive within `--body-timeout` never reaches the app),
/// so reading it never waits for the client. `read` returns 0 at the end of the body; it
/// fails only if a large body's temporary file cannot be read.
pub struct RequestBody<'a> {
    src: Option<&'a mut dyn BodySource>,
}

impl RequestBody<'_> {
    /// A body with no bytes (for tests, or to build requests by hand).
    pub fn empty() -> RequestBody<'static> {
        RequestBody { src: None }
    }

    /// Bytes of body not yet read (the whole body is known, chunked ones included).
    pub fn remaining(&self) -> Option<u64> {
        match &self.src {
            None => Some(0),
            Some(s) => s.remaining(),
        }
    }

    /// Reads the whole body into a vector.
    pub fn read_to_vec(&mut self) -> io::Result<Vec<u8>> {
        let hint = self.remaining().unwrap_or(0).min(1 << 20) as usize;
        let mut v = Vec::with_capacity(hint);
        self.read_to_end(&mut v)?;
        Ok(v)
    }
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(src: &'a mut dyn BodySource) -> RequestBody<'a> {
        RequestBody { src: Some(src) }
    }

    /// The unread rest of the body as an owned source (`None` for no body), which does not
    /// borrow the worker's buffers.
    #[cfg(feature = "tower")]
    pub(crate) fn into_owned(self) -> Option<Box<dyn BodySource + Send + Sync>> {
        self.src.map(|s| s.take())
    }
}

impl std::fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl Read for RequestBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.src.as_mut() {
            None => Ok(0),
            Some(s) => s.read_body(buf),
        }
    }
}

/// A response body. Bytes in memory (`From` a `&'static str`, `String`, `Vec<u8>` or
/// [`bytes::Bytes`]) go out with the head in one write, without a copy.
pub struct Body {
    pub(crate) kind: BodyKind,
}

pub(crate) enum BodyKind {
    /// Bytes in memory: static, owned, or shared with whoever made them (a tower service's
    /// body frame), never copied on the way out.
    Bytes(Bytes),
    /// A reader, and the trailer fields to send after it, if any.
    Reader(Box<dyn Read>, Option<Trailers>),
    File(File),
}

/// Trailer fields, asked for once the body has ended.
pub(crate) type Trailers = Box<dyn FnOnce() -> http::HeaderMap>;

impl Body {
    /// No body (`Content-Length: 0`).
    pub fn empty() -> Body {
        Body {
            kind: BodyKind::Bytes(Bytes::new()),
        }
    }

    /// A body streamed from a reader, of unknown length: sent with chunked transfer coding to
    /// HTTP/1.1 clients and delimited by closing the connection for HTTP/1.0 clients. If the
    /// app sets `Content-Length` itself, exactly that many bytes are sent, unchunked; a reader
    /// that ends before cuts the response, and the connection is closed (the client sees an
    /// incomplete response, not the next one read as the rest of this body).
    pub fn reader(r: impl Read + 'static) -> Body {
        Body {
            kind: BodyKind::Reader(Box::new(r), None),
        }
    }

    /// A body streamed from a reader, like [`Body::reader`], followed by trailer fields
    /// (RFC 9110 section 6.5): `trailers` is called once the reader has ended, and its fields
    /// are sent after the last chunk. Only a chunked response has a trailer section, and only
    /// to a client that asked for one (`TE: trailers`, RFC 9110 section 10.1.4): otherwise
    /// the fields are dropped and the body is sent as [`Body::reader`] sends it. Fields that
    /// frame or route the message (`Content-Length`, `Transfer-Encoding`, `Trailer`, `Host`,
    /// `Connection`, `TE`, ...) are never sent as trailers.
    pub fn reader_with_trailers(
        r: impl Read + 'static,
        trailers: impl FnOnce() -> http::HeaderMap + 'static,
    ) -> Body {
        Body {
            kind: BodyKind::Reader(Box::new(r), Some(Box::new(trailers))),
        }
    }

    /// A file. A regular file is sent with `Content-Length` from its size when the response
    /// is made (if it shrinks before it is sent, the response is cut and the connection
    /// closed). A file with no size (a pipe, a device) is sent like [`Body::reader`]: chunked
    /// to HTTP/1.1 clients, ended by closing the connection for HTTP/1.0 ones, or exactly the
    /// `Content-Length` the app set.
    pub fn file(f: File) -> Body {
        Body {
            kind: BodyKind::File(f),
        }
    }

    /// The body length if known without reading it.
    pub fn len_hint(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Bytes(b) => Some(b.len() as u64),
            BodyKind::Reader(..) => None,
            BodyKind::File(f) => f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len()),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            BodyKind::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            BodyKind::Reader(_, None) => f.write_str("Body::Reader"),
            BodyKind::Reader(_, Some(_)) => f.write_str("Body::Reader (with trailers)"),
            BodyKind::File(_) => f.write_str("Body::File"),
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body {
            kind: BodyKind::Bytes(Bytes::from_static(s.as_bytes())),
        }
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body {
            kind: BodyKind::Bytes(Bytes::from_static(s)),
        }
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body {
            kind: BodyKind::Bytes(Bytes::from(s)),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body {
            kind: BodyKind::Bytes(Bytes::from(v)),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body {
            kind: BodyKind::Bytes(b),
        }
    }
}

impl From<File> for Body {
    fn from(f: File) -> Body {
        Body::file(f)
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Body {
        Body::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(io::Cursor<Vec<u8>>);
    impl BodySource for Fixed {
        fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
        fn remaining(&self) -> Option<u64> {
            Some(self.0.get_ref().len() as u64 - self.0.position())
        }
        #[cfg(feature = "tower")]
        fn take(&mut self) -> Box<dyn BodySource + Send + Sync> {
            Box::new(Fixed(std::mem::take(&mut self.0)))
        }
    }

    #[test]
    fn bodies_read_from_their_source() {
        let mut src = Fixed(io::Cursor::new(b"hello".to_vec()));
        let mut body = RequestBody::new(&mut src);
        assert_eq!(body.remaining(), Some(5));
        assert_eq!(body.read_to_vec().unwrap(), b"hello");
        assert_eq!(body.remaining(), Some(0));
        assert_eq!(RequestBody::empty().read_to_vec().unwrap(), b"");
    }

    #[test]
    fn response_bodies_know_their_length() {
        assert_eq!(Body::from("abc").len_hint(), Some(3));
        assert_eq!(Body::from(vec![0u8; 10]).len_hint(), Some(10));
        assert_eq!(Body::reader(io::empty()).len_hint(), None);
        assert_eq!(Body::empty().len_hint(), Some(0));
    }
}
