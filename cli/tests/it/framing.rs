//! Regressions from raw bytes: response framing the app cannot break, and request heads the
//! parser settles before the app.

use crate::support::*;

/// examples/echo with keep-alive on.
fn echo() -> Server {
    let bin = example_bin("runicorn", "echo", &[]);
    let s = Spawn::new(&["--workers", "1", "--keepalive", "5"])
        .bin(&bin)
        .start();
    s.wait_log(&["worker ready"], 1);
    s
}

#[test]
fn a_bare_lf_before_the_request_line_gets_400() {
    let s = echo();
    let r = request(s.addr.unwrap(), "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    // Empty lines (CRLF) there are still skipped.
    let r = request(
        s.addr.unwrap(),
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn connect_gets_501_and_the_connection_closes() {
    let s = echo();
    let r = request(
        s.addr.unwrap(),
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(r.status, 501, "{r:?}");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    // Nothing after the refusal: the bytes that follow are neither a tunnel nor a request.
    assert_eq!(r.body, b"Not Implemented\n");
}

#[test]
fn an_absolute_form_target_replaces_host() {
    let s = echo();
    let r = request(
        s.addr.unwrap(),
        "GET http://good.example/p HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let echoed: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        echoed["headers"],
        serde_json::json!([["Host", "good.example"], ["Connection", "close"]]),
        "{echoed}"
    );
    assert_eq!(echoed["target"], "http://good.example/p");
}

/// The demo app with keep-alive on (so that a connection kept by mistake shows), debug logs.
fn demo() -> Server {
    let s = Server::start(&["--workers", "1", "--keepalive", "5", "--log-level", "debug"]);
    s.wait_log(&["worker ready"], 1);
    s
}

/// Removes the chunked coding from the start of `bytes`: the body and what follows the last
/// chunk, or `None` if `bytes` does not start with a well-formed chunked body.
fn dechunk(mut bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut body = Vec::new();
    loop {
        let eol = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&bytes[..eol]).ok()?, 16).ok()?;
        bytes = &bytes[eol + 2..];
        if size == 0 {
            return bytes.strip_prefix(b"\r\n").map(|rest| (body, rest));
        }
        body.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

#[test]
fn a_body_shorter_than_its_content_length_closes_the_connection() {
    let s = demo();
    // Two pipelined requests: the first response is cut (4 of 10 bytes); the second must not
    // be read by the client as the rest of the first body, so it is never answered.
    let r = request(
        s.addr.unwrap(),
        "GET /short?declared=10&sent=4 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length").as_deref(), Some("10"), "{r:?}");
    assert_eq!(
        r.body,
        b"xxxx",
        "the cut body and then the close: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    s.wait_log(
        &["response not delivered", "shorter than its Content-Length"],
        1,
    );
    // A body as long as declared keeps the connection: both pipelined requests are answered.
    let r = request(
        s.addr.unwrap(),
        "GET /short?declared=4&sent=4 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let (first, second) = r.body.split_at(4);
    assert_eq!(first, b"xxxx");
    let second = parse_response(second);
    assert_eq!(
        (second.status, &second.body[..]),
        (200, &b"Hello world\n"[..])
    );
}

#[test]
fn a_file_without_a_length_is_chunked_to_http11_and_ends_at_close_for_http10() {
    let s = demo();
    let r = request(
        s.addr.unwrap(),
        "GET /pipe HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    let Some((body, rest)) = dechunk(&r.body) else {
        panic!(
            "the body is not chunked: {:?}",
            String::from_utf8_lossy(&r.body)
        );
    };
    assert_eq!(body, b"piped body\n");
    // The connection carried on to the pipelined request.
    let next = parse_response(rest);
    assert_eq!((next.status, &next.body[..]), (200, &b"Hello world\n"[..]));

    let r = request(s.addr.unwrap(), "GET /pipe HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(r.body, b"piped body\n");
}
