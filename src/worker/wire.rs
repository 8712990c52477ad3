//! A response on the wire: its head and body written with the framing RFC 9112 asks for.

use std::io::{self, IoSlice, Read, Write};

use http::{Method, StatusCode, Version};

use super::io::{Patient, write_all_vectored};
use crate::h1::{self, Framing, Persist};
use crate::handler::{BodyKind, Response, Trailers};

/// A response ready to be written.
pub(super) struct Outgoing {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: BodyKind,
    pub framing: Framing,
    pub send_body: bool,
    /// The client accepts a trailer section (`TE: trailers`).
    pub trailers_accepted: bool,
}

impl Outgoing {
    /// Chooses the framing (RFC 9112 section 6): `Content-Length` when the length is known,
    /// chunked to HTTP/1.1 clients otherwise, close-delimited to HTTP/1.0 ones.
    pub fn new(
        response: Response,
        method: &Method,
        version: Version,
        trailers_accepted: bool,
    ) -> Outgoing {
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
            trailers_accepted,
        }
    }

    /// Writes the head and the body; returns the body bytes sent. A body that ends before the
    /// `Content-Length` the head announced is an error ([`BodyCut`]): the response is cut, and
    /// the caller must close the connection rather than write the next response into what
    /// the client still reads as this body.
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
        match (self.body, self.send_body) {
            (_, false) => write_all_vectored(out, &mut [IoSlice::new(head)]).map(|()| 0),
            (BodyKind::Bytes(b), true) => {
                write_all_vectored(out, &mut [IoSlice::new(head), IoSlice::new(&b)])
                    .map(|()| b.len() as u64)
            }
            // A file is a reader whose length is known when it is a regular file (then it is
            // `Content-Length`, and a file that shrank since is cut like a short reader); a
            // pipe or a device has none and is chunked or close-delimited like any reader.
            (BodyKind::File(mut f), true) => {
                out.write_all(head)?;
                stream(out, &mut f, self.framing, chunk, None)
            }
            (BodyKind::Reader(mut r, trailers), true) => {
                out.write_all(head)?;
                let trailers = trailers.filter(|_| self.trailers_accepted);
                stream(out, &mut *r, self.framing, chunk, trailers)
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

/// The error [`Outgoing::write`] returns when the body ended before the `Content-Length` the
/// head announced: a reader that yields fewer bytes than the app's `Content-Length`, a file
/// that shrank after its length was taken. The response is cut (RFC 9112 section 8: "A message
/// that uses a valid Content-Length is incomplete if the size of the message body received
/// [...] is less than the value given by Content-Length"), and the connection must close, or
/// the client reads the next response as the rest of this body.
#[derive(Debug)]
pub(super) struct BodyCut {
    /// The length the head announced.
    pub declared: u64,
    /// The body bytes written before the body ended.
    pub sent: u64,
}

#[cfg(test)]
impl BodyCut {
    /// Whether `e` is this error.
    pub fn is_cause_of(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|r| r.is::<BodyCut>())
    }
}

impl std::fmt::Display for BodyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "response body shorter than its Content-Length: {} of {} bytes, the response is cut",
            self.sent, self.declared
        )
    }
}

impl std::error::Error for BodyCut {}

/// Streams a reader's bytes: chunked (then its `trailers`, if any), close-delimited, or
/// exactly `Content-Length` of them (a [`BodyCut`] error if the reader ends before).
fn stream(
    out: &mut Patient<'_>,
    r: &mut dyn Read,
    framing: Framing,
    chunk: &mut [u8],
    trailers: Option<Trailers>,
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
    match framing {
        Framing::Chunked => match trailers {
            None => out.write_all(b"0\r\n\r\n")?,
            Some(trailers) => {
                let fields = std::panic::catch_unwind(std::panic::AssertUnwindSafe(trailers))
                    .map_err(|_| io::Error::other(BodyPanicked))?;
                out.write_all(&last_chunk_with(&fields))?;
            }
        },
        Framing::Length(declared) if sent < declared => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                BodyCut { declared, sent },
            ));
        }
        _ => {}
    }
    Ok(sent)
}

/// The last chunk and a trailer section (RFC 9112 section 7.1.2), leaving out the fields a
/// trailer must not carry: those that frame the message, route it or say how to process it
/// (RFC 9110 section 6.5.1).
fn last_chunk_with(fields: &http::HeaderMap) -> Vec<u8> {
    use http::header;
    const NOT_IN_TRAILERS: [header::HeaderName; 11] = [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TRAILER,
        header::TE,
        header::HOST,
        header::CONNECTION,
        header::CONTENT_ENCODING,
        header::CONTENT_TYPE,
        header::CONTENT_RANGE,
        header::CACHE_CONTROL,
        header::SET_COOKIE,
    ];
    let mut out = b"0\r\n".to_vec();
    for (name, value) in fields {
        if NOT_IN_TRAILERS.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
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
        let out = Outgoing::new(Response::new(body), &Method::GET, Version::HTTP_11, false);
        let mut p = Patient {
            conn: &mut conn,
            idle: Duration::from_secs(1),
        };
        let date = b"Thu, 01 Jan 1970 00:00:00 GMT";
        out.write(&mut p, &mut Vec::new(), &mut [0; 64], date, Persist::Close)
    }

    /// A response of `body` to a GET of `version`, with the app's `Content-Length` if any.
    fn outgoing(body: Body, content_length: Option<u64>, version: Version) -> Outgoing {
        let mut response = Response::new(body);
        if let Some(n) = content_length {
            response
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, n.into());
        }
        Outgoing::new(response, &Method::GET, version, false)
    }

    /// Writes `out` to one end of a socket pair; returns what `write` returned and every byte
    /// the other end got.
    fn send(out: Outgoing) -> (io::Result<u64>, Vec<u8>) {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut conn = Conn::Unix(ours);
        let mut p = Patient {
            conn: &mut conn,
            idle: Duration::from_secs(1),
        };
        let date = b"Thu, 01 Jan 1970 00:00:00 GMT";
        let result = out.write(&mut p, &mut Vec::new(), &mut [0; 64], date, Persist::Close);
        drop(conn);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        (result, got)
    }

    /// Splits a response into its head (without the empty line) and its body.
    fn split(bytes: &[u8]) -> (String, &[u8]) {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&bytes[..end]).into_owned(),
            &bytes[end + 4..],
        )
    }

    /// A pipe holding `bytes`, its write end closed: a file of no known length.
    fn pipe_with(bytes: &[u8]) -> std::fs::File {
        let (read, write) = nix::unistd::pipe().unwrap();
        std::fs::File::from(write).write_all(bytes).unwrap();
        std::fs::File::from(read)
    }

    #[test]
    fn a_reader_shorter_than_its_content_length_fails_the_write() {
        let body = Body::reader(io::Cursor::new(b"hello".to_vec()));
        let (result, got) = send(outgoing(body, Some(10), Version::HTTP_11));
        let (head, body) = split(&got);
        assert!(head.contains("\r\nContent-Length: 10"), "{head}");
        assert_eq!(body, b"hello");
        let e = result.expect_err("5 of 10 bytes is not a whole response");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(BodyCut::is_cause_of(&e), "{e}");
        assert!(!BodyPanicked::is_cause_of(&e), "{e}");
        // As long as declared, or longer: exactly the declared bytes, and success.
        for text in [&b"0123456789"[..], b"0123456789 and more"] {
            let body = Body::reader(io::Cursor::new(text.to_vec()));
            let (result, got) = send(outgoing(body, Some(10), Version::HTTP_11));
            assert_eq!(result.unwrap(), 10);
            assert_eq!(split(&got).1, b"0123456789");
        }
    }

    #[test]
    fn a_file_without_a_length_is_chunked_to_http11_and_close_delimited_to_http10() {
        let (result, got) = send(outgoing(
            Body::file(pipe_with(b"piped body\n")),
            None,
            Version::HTTP_11,
        ));
        assert_eq!(result.unwrap(), 11);
        let (head, body) = split(&got);
        assert!(head.contains("\r\nTransfer-Encoding: chunked"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
        assert_eq!(body, b"b\r\npiped body\n\r\n0\r\n\r\n");

        let (result, got) = send(outgoing(
            Body::file(pipe_with(b"piped body\n")),
            None,
            Version::HTTP_10,
        ));
        assert_eq!(result.unwrap(), 11);
        let (head, body) = split(&got);
        assert!(!head.contains("Transfer-Encoding"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
        assert_eq!(body, b"piped body\n");

        // With the app's Content-Length: that many bytes, raw, and a cut if fewer come.
        let file = pipe_with(b"piped body\n");
        let (result, got) = send(outgoing(Body::file(file), Some(5), Version::HTTP_11));
        assert_eq!(result.unwrap(), 5);
        assert_eq!(split(&got).1, b"piped");
        let file = pipe_with(b"piped body\n");
        let (result, _) = send(outgoing(Body::file(file), Some(50), Version::HTTP_11));
        assert!(BodyCut::is_cause_of(&result.unwrap_err()));
    }

    #[test]
    fn a_file_that_shrank_after_its_length_was_taken_fails_the_write() {
        let path = std::env::temp_dir().join(format!("runicorn-wire-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let out = outgoing(
            Body::file(std::fs::File::open(&path).unwrap()),
            None,
            Version::HTTP_11,
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4)
            .unwrap();
        let (result, got) = send(out);
        std::fs::remove_file(&path).unwrap();
        let (head, body) = split(&got);
        assert!(head.contains("\r\nContent-Length: 10"), "{head}");
        assert_eq!(body, b"0123");
        assert!(BodyCut::is_cause_of(&result.unwrap_err()));
    }

    #[test]
    fn a_panicking_body_reader_is_told_by_the_error_type_not_its_text() {
        let e = write_body(Body::reader(Panics)).unwrap_err();
        assert!(BodyPanicked::is_cause_of(&e), "{e}");
        let e = write_body(Body::reader(Fails)).unwrap_err();
        assert!(!BodyPanicked::is_cause_of(&e), "{e}");
    }

    /// A reader of `text` with trailers: an `x-checksum` field, and fields a trailer must not
    /// carry.
    fn with_trailers(text: &'static [u8]) -> Body {
        Body::reader_with_trailers(io::Cursor::new(text), || {
            let mut fields = http::HeaderMap::new();
            fields.insert("x-checksum", http::HeaderValue::from_static("c0ffee"));
            fields.insert(http::header::CONTENT_LENGTH, 5.into());
            fields.insert(http::header::TRANSFER_ENCODING, "chunked".parse().unwrap());
            fields
        })
    }

    #[test]
    fn trailers_follow_the_last_chunk_only_for_a_client_that_accepts_them() {
        let mut out = outgoing(with_trailers(b"hello"), None, Version::HTTP_11);
        out.trailers_accepted = true;
        let (result, got) = send(out);
        assert_eq!(result.unwrap(), 5);
        assert_eq!(
            split(&got).1,
            b"5\r\nhello\r\n0\r\nx-checksum: c0ffee\r\n\r\n"
        );
        // Not asked for: the body ends as any chunked body does.
        let (result, got) = send(outgoing(with_trailers(b"hello"), None, Version::HTTP_11));
        assert_eq!(result.unwrap(), 5);
        assert_eq!(split(&got).1, b"5\r\nhello\r\n0\r\n\r\n");
        // Not chunked (HTTP/1.0: ended by closing): no trailer section exists.
        let mut out = outgoing(with_trailers(b"hello"), None, Version::HTTP_10);
        out.trailers_accepted = true;
        assert_eq!(split(&send(out).1).1, b"hello");
    }
}
