//! The JSON of the conformance kit's echo app (`tests/conformance/ECHO.md`), shared by
//! `examples/echo.rs` (a runicorn app) and `examples/tower_echo.rs` (a tower service):
//! [`describe`] turns a request head and its whole body into the JSON object.
//!
//! The method, target and field lines come from the [`RawHead`] request extension, not from
//! the `http` types, because those normalise: a `HeaderMap` lowercases names and groups
//! repeats, and the `Uri` may not keep the target byte for byte. One field is the server's
//! rather than the client's: with an absolute-form target the server replaces `Host` with the
//! target's authority (RFC 9112 section 3.2.2), and the echo shows that `Host`, the one the app
//! sees, in the line where the client sent its own. Every JSON string stands
//! for raw bytes, byte `0xNN` being the code point `U+00NN` (ECHO.md, "Strings are bytes").

use http::{Method, Version, header};
use runicorn::RawHead;

/// A header field line as `(name, value)` bytes.
type Field = (Vec<u8>, Vec<u8>);

/// The echo's JSON object (one line) for a request and its whole body, already read.
pub fn describe<B>(req: &http::Request<B>, body: &[u8]) -> String {
    // The worker always attaches a RawHead; a request built by hand (a test) may lack one,
    // and then the parsed request is the best there is.
    let (method, target, fields): (Vec<u8>, Vec<u8>, Vec<Field>) =
        match req.extensions().get::<RawHead>() {
            Some(raw) => (
                raw.method().to_vec(),
                raw.target().to_vec(),
                raw.fields()
                    .map(|(n, v)| match req.headers().get(header::HOST) {
                        Some(host) if n.eq_ignore_ascii_case(b"host") => {
                            (n.to_vec(), host.as_bytes().to_vec())
                        }
                        _ => (n.to_vec(), v.to_vec()),
                    })
                    .collect(),
            ),
            None => (
                req.method().as_str().as_bytes().to_vec(),
                req.uri().to_string().into_bytes(),
                req.headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect(),
            ),
        };
    // The version as received (an HTTP/1.2 request is served as 1.1 but echoed as sent).
    let version: Vec<u8> = match req.extensions().get::<RawHead>() {
        Some(raw) => raw.version().to_vec(),
        None if req.version() == Version::HTTP_10 => b"HTTP/1.0".to_vec(),
        None => b"HTTP/1.1".to_vec(),
    };
    let (path, query) = path_and_query(&method, &target);

    let mut out = String::with_capacity(256 + target.len() + body.len() * 4 / 3);
    out.push_str("{\"method\": ");
    push_json_string(&mut out, &method);
    out.push_str(", \"target\": ");
    push_json_string(&mut out, &target);
    out.push_str(", \"path\": ");
    push_json_string(&mut out, path);
    out.push_str(", \"query\": ");
    push_json_string(&mut out, query);
    out.push_str(", \"version\": ");
    push_json_string(&mut out, &version);
    out.push_str(", \"headers\": [");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        push_json_string(&mut out, name);
        out.push_str(", ");
        push_json_string(&mut out, trim_ows(value));
        out.push(']');
    }
    out.push_str("], \"body_base64\": \"");
    out.push_str(&base64(body));
    out.push_str("\"}\n");
    out
}

/// Splits a request-target into `(path, query)` by ECHO.md's rules, without decoding or
/// normalising anything.
fn path_and_query<'a>(method: &[u8], target: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    // Rule 1, asterisk-form (RFC 9112 section 3.2.4).
    if target == b"*" {
        return (b"*", b"");
    }
    // Rule 2, authority-form (RFC 9112 section 3.2.3): no path, no query.
    if method == Method::CONNECT.as_str().as_bytes() {
        return (b"", b"");
    }
    // Rule 4, absolute-form (RFC 9112 section 3.2.2): drop `scheme://authority`, where the
    // authority ends at the first `/`, `?` or `#`, then treat the rest as origin-form.
    if !target.starts_with(b"/")
        && let Some(rest) = after_scheme(target)
    {
        let end = rest
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        return origin_path_and_query(&rest[end..]);
    }
    // Rule 3, origin-form (and the fallback for anything else the server let through).
    origin_path_and_query(target)
}

/// The part of `target` after `scheme://`, if it starts with a scheme
/// (RFC 3986 section 3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn after_scheme(target: &[u8]) -> Option<&[u8]> {
    let colon = target.windows(3).position(|w| w == b"://")?;
    let scheme = &target[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then(|| &target[colon + 3..])
}

/// Origin-form: drop the fragment, then split at the first `?`.
fn origin_path_and_query(target: &[u8]) -> (&[u8], &[u8]) {
    let target = match target.iter().position(|&b| b == b'#') {
        Some(hash) => &target[..hash],
        None => target,
    };
    match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, b""),
    }
}

/// Strips leading and trailing SP and HTAB (RFC 9112 section 5: OWS around a field value).
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

/// Appends `bytes` as a quoted JSON string, byte `0xNN` standing for `U+00NN`. Only
/// printable ASCII is written as itself, so the output is ASCII.
fn push_json_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push('"');
}

/// Standard base64 with `=` padding (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pq(method: &str, target: &str) -> (String, String) {
        let (p, q) = path_and_query(method.as_bytes(), target.as_bytes());
        (
            String::from_utf8(p.to_vec()).unwrap(),
            String::from_utf8(q.to_vec()).unwrap(),
        )
    }

    #[test]
    fn path_and_query_follow_echo_md() {
        let cases = [
            ("OPTIONS", "*", "*", ""),
            ("CONNECT", "example.com:443", "", ""),
            ("CONNECT", "[::1]:443", "", ""),
            ("GET", "/", "/", ""),
            ("GET", "/upload?x=1", "/upload", "x=1"),
            ("GET", "/a?b?c", "/a", "b?c"),
            ("GET", "/a?", "/a", ""),
            ("GET", "///a", "///a", ""),
            ("GET", "/a/../b/%2F", "/a/../b/%2F", ""),
            ("GET", "/a?x=1#frag?y", "/a", "x=1"),
            ("GET", "/a#f", "/a", ""),
            ("GET", "http://h", "", ""),
            ("GET", "http://h?x", "", "x"),
            ("GET", "http://h#f", "", ""),
            ("GET", "http://user@h:80/p/q?x=1", "/p/q", "x=1"),
            ("GET", "HTTPS://h//p", "//p", ""),
            ("GET", "/p?u=http://h/x", "/p", "u=http://h/x"),
        ];
        for (method, target, path, query) in cases {
            assert_eq!(
                pq(method, target),
                (path.into(), query.into()),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn json_strings_are_bytes() {
        let mut s = String::new();
        push_json_string(&mut s, b"a\"b\\c\x01\r\n\x7f\xc3\xa9 ~");
        assert_eq!(s, r#""a\"b\\c\u0001\u000d\u000a\u007f\u00c3\u00a9 ~""#);
        let mut empty = String::new();
        push_json_string(&mut empty, b"");
        assert_eq!(empty, "\"\"");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn trim_ows_strips_only_sp_and_htab() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(trim_ows(b"\x0bx"), b"\x0bx");
    }

    #[test]
    fn describes_a_request_built_by_hand() {
        let req = http::Request::post("/p?q").body(()).unwrap();
        let json = describe(&req, b"hi");
        assert_eq!(
            json,
            "{\"method\": \"POST\", \"target\": \"/p?q\", \"path\": \"/p\", \"query\": \"q\", \
             \"version\": \"HTTP/1.1\", \"headers\": [], \"body_base64\": \"aGk=\"}\n"
        );
    }
}
