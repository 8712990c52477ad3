//! What an app is: the [`App`] trait, the request and response body types, and the worker
//! identity handed to `after_fork`.
//!
//! Requests and responses are the `http` crate's types. The request body is a stream
//! ([`RequestBody`] implements `std::io::Read`) bounded by `Content-Length` and the limits; a
//! response body ([`Body`]) is bytes, a reader (sent chunked to HTTP/1.1 clients) or a file.
//! A worker serves one request at a time, so an app is called through `&mut self` and needs
//! no locks, no `Send` and no `Sync`.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Write};

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
    /// The worker's slot: its stable index, `0..workers` (reused when a worker is replaced).
    pub slot: usize,
    /// The worker's process id.
    pub pid: u32,
}

/// A stream a request body is read from and the interim `100 Continue` written to.
pub(crate) trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Where the worker tracks a body while the app reads it.
#[derive(Debug, Default)]
pub(crate) struct BodyState {
    /// Body bytes not yet handed to the app (buffered or still on the socket).
    pub remaining: u64,
    /// Send `100 Continue` before the first read from the socket.
    pub send_continue: bool,
    /// A read failed (timeout, reset, early end): the connection is not reusable.
    pub failed: bool,
}

/// A request body: a stream of exactly `Content-Length` bytes.
///
/// `read` returns 0 at the end of the body. A client that stops sending makes `read` fail
/// with `TimedOut` after `--header-timeout`; one that closes early, with `UnexpectedEof`.
pub struct RequestBody<'a> {
    inner: Option<BodyInner<'a>>,
}

struct BodyInner<'a> {
    buffered: &'a [u8],
    conn: &'a mut dyn Stream,
    state: &'a mut BodyState,
}

impl RequestBody<'_> {
    /// A body with no bytes (for tests, or to build requests by hand).
    pub fn empty() -> RequestBody<'static> {
        RequestBody { inner: None }
    }

    /// Bytes of body not yet read.
    pub fn remaining(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.state.remaining)
    }

    /// Reads the whole body into a vector.
    pub fn read_to_vec(&mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.remaining().min(1 << 20) as usize);
        self.read_to_end(&mut v)?;
        Ok(v)
    }
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(
        buffered: &'a [u8],
        conn: &'a mut dyn Stream,
        state: &'a mut BodyState,
    ) -> RequestBody<'a> {
        if state.remaining == 0 {
            return RequestBody { inner: None };
        }
        RequestBody {
            inner: Some(BodyInner {
                buffered,
                conn,
                state,
            }),
        }
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
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let want = (inner.state.remaining.min(buf.len() as u64)) as usize;
        if want == 0 {
            return Ok(0);
        }
        if !inner.buffered.is_empty() {
            let n = want.min(inner.buffered.len());
            buf[..n].copy_from_slice(&inner.buffered[..n]);
            inner.buffered = &inner.buffered[n..];
            inner.state.remaining -= n as u64;
            return Ok(n);
        }
        if inner.state.send_continue {
            // RFC 9110 section 10.1.1: the client may wait for this before sending the body;
            // send it only now that the app asks for the body.
            inner.state.send_continue = false;
            if let Err(e) = inner.conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n") {
                inner.state.failed = true;
                return Err(e);
            }
        }
        loop {
            match inner.conn.read(&mut buf[..want]) {
                Ok(0) => {
                    inner.state.failed = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed the connection before the end of the body",
                    ));
                }
                Ok(n) => {
                    inner.state.remaining -= n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    inner.state.failed = true;
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client sent no body bytes within the header timeout",
                    ));
                }
                Err(e) => {
                    inner.state.failed = true;
                    return Err(e);
                }
            }
        }
    }
}

/// A response body.
pub struct Body {
    pub(crate) kind: BodyKind,
}

pub(crate) enum BodyKind {
    Bytes(Cow<'static, [u8]>),
    Reader(Box<dyn Read>),
    File(File),
}

impl Body {
    /// No body (`Content-Length: 0`).
    pub fn empty() -> Body {
        Body {
            kind: BodyKind::Bytes(Cow::Borrowed(b"")),
        }
    }

    /// A body streamed from a reader, of unknown length: sent with chunked transfer coding to
    /// HTTP/1.1 clients and delimited by closing the connection for HTTP/1.0 clients. If the
    /// app sets `Content-Length` itself, exactly that many bytes are sent, unchunked.
    pub fn reader(r: impl Read + 'static) -> Body {
        Body {
            kind: BodyKind::Reader(Box::new(r)),
        }
    }

    /// A file, sent with `Content-Length` from its size (by sendfile(2) where possible).
    pub fn file(f: File) -> Body {
        Body {
            kind: BodyKind::File(f),
        }
    }

    /// The body length if known without reading it.
    pub fn len_hint(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Bytes(b) => Some(b.len() as u64),
            BodyKind::Reader(_) => None,
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
            BodyKind::Reader(_) => f.write_str("Body::Reader"),
            BodyKind::File(_) => f.write_str("Body::File"),
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body {
            kind: BodyKind::Bytes(Cow::Borrowed(s.as_bytes())),
        }
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body {
            kind: BodyKind::Bytes(Cow::Borrowed(s)),
        }
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body {
            kind: BodyKind::Bytes(Cow::Owned(s.into_bytes())),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body {
            kind: BodyKind::Bytes(Cow::Owned(v)),
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

    /// A fake connection: reads come from `input`, writes go to `output`.
    struct Fake {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Fake {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.input.read(b)
        }
    }
    impl Write for Fake {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.output.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn body_reads_buffered_then_socket_and_stops_at_length() {
        let mut conn = Fake {
            input: io::Cursor::new(b"lo world, and more".to_vec()),
            output: vec![],
        };
        let mut state = BodyState {
            remaining: 11,
            ..Default::default()
        };
        let mut body = RequestBody::new(b"hel", &mut conn, &mut state);
        assert_eq!(body.read_to_vec().unwrap(), b"hello world");
        assert_eq!(body.remaining(), 0);
        assert!(conn.output.is_empty());
    }

    #[test]
    fn continue_is_sent_only_when_the_app_reads() {
        let mut conn = Fake {
            input: io::Cursor::new(b"abc".to_vec()),
            output: vec![],
        };
        let mut state = BodyState {
            remaining: 3,
            send_continue: true,
            failed: false,
        };
        {
            let _unread = RequestBody::new(b"", &mut conn, &mut state);
        }
        assert!(conn.output.is_empty());
        let mut body = RequestBody::new(b"", &mut conn, &mut state);
        assert_eq!(body.read_to_vec().unwrap(), b"abc");
        assert_eq!(conn.output, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn early_close_is_an_error() {
        let mut conn = Fake {
            input: io::Cursor::new(b"ab".to_vec()),
            output: vec![],
        };
        let mut state = BodyState {
            remaining: 5,
            ..Default::default()
        };
        let mut body = RequestBody::new(b"", &mut conn, &mut state);
        let err = body.read_to_vec().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(state.failed);
    }
}
