//! Where one HTTP/1.x response ends, in the bytes read from a connection (RFC 9112 section
//! 6.3), for the load client. Pure: bytes in, "need more", "complete after n bytes", or
//! "not HTTP"; no sockets. Body bytes are counted, never kept.

use runicorn::internals::h1::{ChunkedDecoder, Limits};

use super::Failure;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Finds the end of one HTTP/1.x response to a GET in the bytes read from a connection:
/// the head, then the body as RFC 9112 section 6.3 frames it (chunked, Content-Length, or
/// until the server closes). 1xx interim responses are skipped. Body bytes are not kept.
#[derive(Debug, Default)]
pub(super) struct Framer {
    head: Vec<u8>,
    body: Option<BodyState>,
    /// The final status, once the head is parsed.
    pub(super) status: u16,
    /// The connection may carry another request after this response.
    pub(super) persistent: bool,
    /// The request was HEAD: the response has no body (RFC 9110 section 9.3.2).
    head_request: bool,
}

#[derive(Debug)]
enum BodyState {
    /// This many bytes are left.
    Length(u64),
    /// Until the server closes the connection.
    UntilClose,
    /// Chunked, removed by the server's own decoder (strict: CRLF line ends, checked
    /// extensions), with no limit on the body and generous ones on its lines.
    Chunked(Box<ChunkedDecoder>),
    Done,
}

impl BodyState {
    fn is_done(&self) -> bool {
        matches!(self, BodyState::Done)
    }
}

/// A response's chunk-size and trailer lines may be this long (the body is not limited).
const CHUNK_LIMITS: Limits = Limits {
    request_line: MAX_HEAD,
    fields: 1000,
    field_size: MAX_HEAD,
    body: 0,
};

/// The head of a response: status, and how its body is framed.
#[derive(Debug)]
struct Head {
    status: u16,
    body: BodyState,
    persistent: bool,
}

impl Framer {
    /// A framer for the response to one request; `head_request` for HEAD.
    pub(super) fn new(head_request: bool) -> Framer {
        Framer {
            head_request,
            ..Framer::default()
        }
    }

    /// Takes the next bytes read. `Ok(Some(n))`: the response is complete after the first
    /// `n` of them; `Ok(None)`: more are needed; `Err`: not an HTTP/1.x response.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Result<Option<usize>, ()> {
        let total = data.len();
        loop {
            match &mut self.body {
                Some(body) => {
                    let used = body.feed(data)?;
                    return Ok(body.is_done().then_some(total - data.len() + used));
                }
                None => {
                    let scan_from = self.head.len().saturating_sub(3);
                    self.head.extend_from_slice(data);
                    let Some(end) = find(&self.head[scan_from..], b"\r\n\r\n") else {
                        if self.head.len() > MAX_HEAD {
                            return Err(());
                        }
                        return Ok(None);
                    };
                    let end = scan_from + end + 4;
                    let mut head = parse_head(&self.head[..end])?;
                    if self.head_request && head.status >= 200 {
                        head.body = BodyState::Done;
                    }
                    // The bytes of `data` after the head.
                    let rest = self.head.len() - end;
                    data = &data[data.len() - rest..];
                    if (100..200).contains(&head.status) {
                        self.head.clear(); // an interim response: the final one follows
                        if data.is_empty() {
                            return Ok(None);
                        }
                        continue;
                    }
                    self.status = head.status;
                    self.persistent = head.persistent;
                    let done = head.body.is_done();
                    self.body = Some(head.body);
                    if done {
                        return Ok(Some(total - data.len()));
                    }
                }
            }
        }
    }

    /// The server closed the connection: the status if that completes the response, else
    /// why it is a failure.
    pub(super) fn eof(&self) -> Result<u16, Failure> {
        match self.body {
            Some(BodyState::UntilClose | BodyState::Done) => Ok(self.status),
            _ => Err(Failure::Reset),
        }
    }
}

impl BodyState {
    /// Consumes body bytes; returns how many were used (all of them unless the body ends).
    fn feed(&mut self, data: &[u8]) -> Result<usize, ()> {
        match self {
            BodyState::Done => Ok(0),
            BodyState::UntilClose => Ok(data.len()),
            BodyState::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                if *left == 0 {
                    *self = BodyState::Done;
                }
                Ok(take as usize)
            }
            BodyState::Chunked(decoder) => {
                // The decoded bytes are counted, not kept: a small scratch buffer is enough.
                let mut scratch = [0u8; 16 * 1024];
                let mut used = 0;
                loop {
                    let step = decoder
                        .decode(&data[used..], &mut scratch)
                        .map_err(|_| ())?;
                    used += step.consumed;
                    if step.done {
                        *self = BodyState::Done;
                        return Ok(used);
                    }
                    if used == data.len() {
                        return Ok(used);
                    }
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response head (status line and fields, ending with the empty line) to a GET.
fn parse_head(head: &[u8]) -> Result<Head, ()> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(())?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().ok_or(())?;
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(()),
    };
    let code = parts.next().ok_or(())?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let status: u16 = code.parse().map_err(|_| ())?;
    if status < 100 {
        return Err(());
    }
    let (mut length, mut chunked, mut other_coding) = (None, false, false);
    let (mut close, mut keep_alive) = (false, false);
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(())?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(()); // conflicting lengths (RFC 9112 section 6.3, item 5)
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the final coding; then the body is chunked whatever came
            // before. Any other final coding: read until close (section 6.3, item 4).
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = last.eq_ignore_ascii_case("chunked");
            other_coding = !chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyState::Done
    } else if chunked {
        BodyState::Chunked(Box::new(ChunkedDecoder::new(&CHUNK_LIMITS)))
    } else if other_coding {
        BodyState::UntilClose
    } else {
        match length {
            Some(0) => BodyState::Done,
            Some(n) => BodyState::Length(n),
            None => BodyState::UntilClose,
        }
    };
    let persistent = !close && (minor == 1 || keep_alive) && !matches!(body, BodyState::UntilClose);
    Ok(Head {
        status,
        body,
        persistent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Some((status, persistent, bytes used))` once complete; `None` while incomplete.
    type Framed = Result<Option<(u16, bool, usize)>, ()>;

    /// Feeds `bytes` in pieces of `step` bytes.
    fn frame(bytes: &[u8], step: usize) -> Framed {
        let mut f = Framer::default();
        let mut offset = 0;
        for piece in bytes.chunks(step) {
            if let Some(used) = f.feed(piece)? {
                return Ok(Some((f.status, f.persistent, offset + used)));
            }
            offset += piece.len();
        }
        Ok(None)
    }

    /// Every framing case, fed whole and one byte at a time.
    #[test]
    fn framing() {
        let cases: &[(&str, Framed)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                Ok(Some((200, true, 43))),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                Ok(Some((200, false, 62))),
            ),
            (
                "HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n",
                Ok(Some((200, false, 69))),
            ),
            // HTTP/1.0 persists only with keep-alive.
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                Ok(Some((200, false, 40))),
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
                Ok(Some((200, true, 64))),
            ),
            // Bytes after the response are not part of it.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA",
                Ok(Some((200, true, 40))),
            ),
            // Chunked, with an extension and a trailer; chunked wins over a Content-Length.
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
                 5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
                Ok(Some((200, true, 112))),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                Ok(Some((200, true, 64))),
            ),
            // No body: 204, 304; and interim 1xx responses are skipped.
            ("HTTP/1.1 204 No Content\r\n\r\n", Ok(Some((204, true, 27)))),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                Ok(Some((304, true, 49))),
            ),
            (
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 1\r\n\r\nx",
                Ok(Some((503, true, 66))),
            ),
            // Until close: never complete before EOF.
            ("HTTP/1.1 200 OK\r\n\r\nbody without end", Ok(None)),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nxyz",
                Ok(None),
            ),
            // Incomplete.
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell", Ok(None)),
            ("HTTP/1.1 200 OK\r\nContent-Le", Ok(None)),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                Ok(None),
            ),
            // Malformed.
            ("HTTP/2 200 OK\r\n\r\n", Err(())),
            ("HTTP/1.1 2000 OK\r\n\r\n", Err(())),
            ("HTTP/1.1 099 X\r\n\r\n", Err(())),
            ("SSH-2.0-OpenSSH\r\n\r\n", Err(())),
            ("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", Err(())),
            ("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", Err(())),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                Err(()),
            ),
            // The server's decoder is strict: a bare LF ends no chunk line.
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\n0\n\n",
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n",
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
                Err(()),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(&frame(raw.as_bytes(), usize::MAX), want, "whole: {raw:?}");
            assert_eq!(&frame(raw.as_bytes(), 1), want, "bytewise: {raw:?}");
        }
    }

    #[test]
    fn eof_completes_only_a_close_delimited_body() {
        let mut f = Framer::default();
        assert_eq!(f.eof(), Err(Failure::Reset), "no byte at all");
        assert_eq!(f.feed(b"HTTP/1.1 200 OK\r\n\r\npartial"), Ok(None));
        assert_eq!(f.eof(), Ok(200));
        let mut f = Framer::default();
        assert_eq!(
            f.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal"),
            Ok(None)
        );
        assert_eq!(f.eof(), Err(Failure::Reset));
    }

    #[test]
    fn the_head_has_a_size_limit() {
        let mut f = Framer::default();
        let field = format!("X: {}\r\n", "a".repeat(1000));
        let mut out = Ok(None);
        for _ in 0..70 {
            out = f.feed(field.as_bytes());
            if out.is_err() {
                break;
            }
        }
        assert_eq!(out, Err(()));
    }

    #[test]
    fn the_answer_to_head_has_no_body_whatever_its_length() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let mut f = Framer::new(true);
        assert_eq!(f.feed(head), Ok(Some(head.len())));
        assert!(f.persistent);
        let mut g = Framer::new(false);
        assert_eq!(g.feed(head), Ok(None));
    }
}
