//! Response heads and body framing (RFC 9112 sections 4, 6 and 7.1).

use http::{HeaderMap, StatusCode, Version, header};

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The status forbids a body (1xx, 204, 304): no body and no length.
    NoBody,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients, length unknown).
    Chunked,
    /// Length unknown and the client speaks HTTP/1.0: the body ends when we close.
    Close,
}

/// Chooses the framing. `len` is the body length when known up front.
///
/// RFC 9112 section 6.1: a server MUST NOT send chunked to an HTTP/1.0 client. RFC 9110
/// sections 15.2, 15.3.5 and 15.4.5: 1xx, 204 and 304 responses have no content.
pub fn framing_for(status: StatusCode, request_version: Version, len: Option<u64>) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::NoBody;
    }
    match len {
        Some(n) => Framing::Length(n),
        None if request_version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::Close,
    }
}

/// What the response says about the connection (RFC 9112 section 9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// `Connection: close`: the server closes after this response.
    Close,
    /// HTTP/1.1 keeps the connection by default: no field is needed.
    Default,
    /// An HTTP/1.0 client asked for `Connection: keep-alive` and gets it back.
    KeepAlive,
}

/// Header fields the server writes itself: what the app set for them is replaced, because
/// they describe this connection and this framing (RFC 9110 section 7.6.1, hop-by-hop).
fn server_owned(name: &header::HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == "keep-alive"
}

/// Appends a response head to `out`: status line, the app's fields, `Date` (unless the app
/// set one), the framing field and the `Connection` field `persist` calls for.
pub fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    date: &[u8],
    framing: Framing,
    persist: Persist,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if server_owned(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            let mut digits = [0u8; 20];
            out.extend_from_slice(decimal(n, &mut digits));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::NoBody | Framing::Close => {}
    }
    match persist {
        Persist::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Persist::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persist::Default => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The line that opens a chunk of `len` bytes: hex size and CRLF (RFC 9112 section 7.1).
pub fn chunk_header(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)], framing: Framing) -> String {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut out = Vec::new();
        let status = StatusCode::from_u16(status).unwrap();
        encode_head(
            &mut out,
            status,
            &map,
            b"Thu, 01 Jan 1970 00:00:00 GMT",
            framing,
            Persist::Close,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_status_date_length_and_close() {
        assert_eq!(
            head(200, &[("content-type", "text/plain")], Framing::Length(12)),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
             Date: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn replaces_framing_fields_the_app_set() {
        let h = head(
            404,
            &[
                ("connection", "keep-alive"),
                ("content-length", "99"),
                ("date", "x"),
            ],
            Framing::Chunked,
        );
        assert_eq!(
            h,
            "HTTP/1.1 404 Not Found\r\ndate: x\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn framing_rules() {
        let ok = StatusCode::OK;
        assert_eq!(
            framing_for(ok, Version::HTTP_11, Some(0)),
            Framing::Length(0)
        );
        assert_eq!(framing_for(ok, Version::HTTP_11, None), Framing::Chunked);
        assert_eq!(framing_for(ok, Version::HTTP_10, None), Framing::Close);
        for s in [204, 304, 100] {
            let s = StatusCode::from_u16(s).unwrap();
            assert_eq!(framing_for(s, Version::HTTP_11, Some(5)), Framing::NoBody);
        }
        assert!(!head(204, &[], Framing::NoBody).contains("Content-Length"));
    }

    #[test]
    fn persistence_fields() {
        let mut out = Vec::new();
        let h = HeaderMap::new();
        encode_head(
            &mut out,
            StatusCode::OK,
            &h,
            b"D",
            Framing::Length(0),
            Persist::Default,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 0\r\n\r\n"
        );
        out.clear();
        encode_head(
            &mut out,
            StatusCode::OK,
            &h,
            b"D",
            Framing::Length(0),
            Persist::KeepAlive,
        );
        assert!(out.ends_with(b"Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut b = [0; 18];
        assert_eq!(chunk_header(0, &mut b), b"0\r\n");
        assert_eq!(chunk_header(255, &mut b), b"ff\r\n");
        assert_eq!(chunk_header(16384, &mut b), b"4000\r\n");
        let mut digits = [0; 20];
        assert_eq!(decimal(u64::MAX, &mut digits), b"18446744073709551615");
    }
}
