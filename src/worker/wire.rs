//! A response on the wire: its head and body written with the framing RFC 9112 asks for.

use std::io::{self, IoSlice, Read, Write};

use http::{Method, StatusCode, Version};

use super::io::{Patient, write_all_vectored};
use crate::h1::{self, Framing, Persist};
use crate::handler::{BodyKind, Response};

/// A response ready to be written.
pub(super) struct Outgoing {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: BodyKind,
    pub framing: Framing,
    pub send_body: bool,
}

impl Outgoing {
    /// Chooses the framing (RFC 9112 section 6): `Content-Length` when the length is known,
    /// chunked to HTTP/1.1 clients otherwise, close-delimited to HTTP/1.0 ones.
    pub fn new(response: Response, method: &Method, version: Version) -> Outgoing {
        let (parts, body) = response.into_parts();
        let app_length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let len = body.len_hint().or(app_length);
        let framing = h1::framing_for(parts.status, version, len);
        // RFC 9110 section 9.3.2: the response to HEAD carries the fields GET would, no body.
        let send_body = *method != Method::HEAD && framing != Framing::NoBody;
        Outgoing {
            status: parts.status,
            headers: parts.headers,
            body: body.kind,
            framing,
            send_body,
        }
    }

    /// Writes the head and the body; returns the body bytes sent.
    pub fn write(
        self,
        out: &mut Patient<'_>,
        head: &mut Vec<u8>,
        chunk: &mut [u8],
        date: &[u8],
        persist: Persist,
    ) -> io::Result<u64> {
        head.clear();
        h1::encode_head(
            head,
            self.status,
            &self.headers,
            date,
            self.framing,
            persist,
        );
        let len = match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        match (self.body, self.send_body) {
            (_, false) => write_all_vectored(out, &mut [IoSlice::new(head)]).map(|()| 0),
            (BodyKind::Bytes(b), true) => {
                write_all_vectored(out, &mut [IoSlice::new(head), IoSlice::new(&b)])
                    .map(|()| b.len() as u64)
            }
            (BodyKind::File(mut f), true) => {
                out.write_all(head)?;
                io::copy(&mut (&mut f).take(len.unwrap_or(u64::MAX)), out)
            }
            (BodyKind::Reader(r), true) => {
                out.write_all(head)?;
                stream(out, r, self.framing, chunk)
            }
        }
    }
}

/// The error [`Outgoing::write`] returns when the app's body reader panicked: the response
/// is cut, and the caller logs the panic (taken from the panic hook) rather than a write
/// error. Carried inside the `io::Error`, so that it is recognised by its type, not its text.
#[derive(Debug)]
pub(super) struct BodyPanicked;

impl BodyPanicked {
    /// Whether `e` is this error.
    pub fn is_cause_of(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|r| r.is::<BodyPanicked>())
    }
}

impl std::fmt::Display for BodyPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the body reader panicked")
    }
}

impl std::error::Error for BodyPanicked {}

/// Streams a reader's bytes, chunked or raw (exactly `Content-Length` of them if the app set
/// one).
fn stream(
    out: &mut Patient<'_>,
    mut r: Box<dyn Read>,
    framing: Framing,
    chunk: &mut [u8],
) -> io::Result<u64> {
    let mut sent = 0u64;
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    while left > 0 {
        let want = chunk.len().min(left.min(usize::MAX as u64) as usize);
        let read =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.read(&mut chunk[..want])));
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other(BodyPanicked)),
        };
        if n == 0 {
            break;
        }
        if framing == Framing::Chunked {
            let mut size = [0u8; 18];
            let size = h1::chunk_header(n, &mut size);
            write_all_vectored(
                out,
                &mut [
                    IoSlice::new(size),
                    IoSlice::new(&chunk[..n]),
                    IoSlice::new(b"\r\n"),
                ],
            )?;
        } else {
            out.write_all(&chunk[..n])?;
        }
        sent += n as u64;
        left -= n as u64;
    }
    if framing == Framing::Chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;
    use crate::handler::Body;
    use crate::listener::Conn;

    /// A body reader that panics.
    struct Panics;

    impl Read for Panics {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("this body reader panics on purpose (the message above is expected)")
        }
    }

    /// A body reader that fails with an error whose text mentions a panic.
    struct Fails;

    impl Read for Fails {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("the upstream panicked"))
        }
    }

    fn write_body(body: Body) -> io::Result<u64> {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut conn = Conn::Unix(ours);
        let out = Outgoing::new(Response::new(body), &Method::GET, Version::HTTP_11);
        let mut p = Patient {
            conn: &mut conn,
            idle: Duration::from_secs(1),
        };
        let date = b"Thu, 01 Jan 1970 00:00:00 GMT";
        out.write(&mut p, &mut Vec::new(), &mut [0; 64], date, Persist::Close)
    }

    #[test]
    fn a_panicking_body_reader_is_told_by_the_error_type_not_its_text() {
        let e = write_body(Body::reader(Panics)).unwrap_err();
        assert!(BodyPanicked::is_cause_of(&e), "{e}");
        let e = write_body(Body::reader(Fails)).unwrap_err();
        assert!(!BodyPanicked::is_cause_of(&e), "{e}");
    }
}
