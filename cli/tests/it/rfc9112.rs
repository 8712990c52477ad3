//! Every status of the RFC 9112 framing rules and the request limits, produced by raw bytes
//! against examples/echo (which answers 200 with a JSON echo when a request is accepted).

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::*;

fn echo(args: &[&str]) -> Server {
    let bin = echo_bin();
    let mut all = vec!["--workers", "1"];
    all.extend_from_slice(args);
    let s = Spawn::new(&all).bin(&bin).start();
    s.wait_log(&["worker ready"], 1);
    s
}

/// Sends `raw`, half-closes, and reads until the server closes.
fn exchange(s: &Server, raw: &[u8]) -> Response {
    let mut c = TcpStream::connect(s.addr.unwrap()).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(raw).unwrap();
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut bytes = Vec::new();
    let _ = c.read_to_end(&mut bytes);
    parse_response(&bytes)
}

#[test]
fn framing_and_request_line_rules_have_their_statuses() {
    let s = echo(&[]);
    let cases: &[(&str, &[u8], u16)] = &[
        ("TE and CL together", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        // RFC 9112 section 6.3: chunked not the final coding, 400; section 6.1: a coding the
        // server does not understand (gzip before chunked), 501.
        ("a coding we do not decode", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("chunked not last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("no chunked at all", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("bad Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
        ("differing Content-Lengths", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        ("no Host in 1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("bad Host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("asterisk-form with GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("authority-form with GET", b"GET a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
        ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400),
        ("name not a token", b"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400),
        ("bad chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk without CRLF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n", 400),
        ("forbidden trailer", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", 400),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        ("garbage version", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
    ];
    for (what, raw, status) in cases {
        let r = exchange(&s, raw);
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{what}");
    }
    // What browsers leave unencoded in paths and queries is served, byte for byte.
    let r = exchange(
        &s,
        b"GET /a[0]?ids[]=1&q=a|b^{c} HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("ids[]=1&q=a|b^{c}"));
    // RFC 9110 section 2.5: a higher minor version is served as the highest we implement.
    let r = exchange(&s, b"GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        String::from_utf8_lossy(&r.body).contains("HTTP/1.2"),
        "echoed as received"
    );
    // The worker goes on serving after all of them.
    assert_eq!(
        exchange(&s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
        200
    );
}

#[test]
fn limits_have_their_statuses() {
    let s = echo(&[
        "--limit-request-line",
        "64",
        "--limit-request-fields",
        "3",
        "--limit-request-field-size",
        "32",
        "--limit-request-body",
        "10",
    ]);
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(64));
    assert_eq!(exchange(&s, long_line.as_bytes()).status, 414);
    let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(exchange(&s, many).status, 431);
    let big_field = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(40));
    assert_eq!(exchange(&s, big_field.as_bytes()).status, 431);
    assert_eq!(
        exchange(
            &s,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
        )
        .status,
        413
    );
    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
    assert_eq!(exchange(&s, chunked).status, 413);
    // At the limits: accepted.
    let at = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld";
    assert_eq!(exchange(&s, at).status, 200);
}

#[test]
fn a_chunked_body_reaches_the_app_decoded() {
    let s = echo(&[]);
    let raw = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let r = exchange(&s, raw);
    assert_eq!(r.status, 200, "{r:?}");
    let body: String = String::from_utf8(r.body)
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(
        body.contains(r#""body_base64":"aGVsbG8gd29ybGQ=""#),
        "{body}"
    );
}

#[test]
fn expect_100_is_sent_once_the_head_passes_and_the_answer_follows_the_body() {
    // The worker answers the expectation while the connection is parked, once the head
    // passed every check; the app (the demo refuses POST /) answers after the whole body.
    let s = Server::start(&["--workers", "1"]);
    s.wait_log(&["worker ready"], 1);
    let mut c = TcpStream::connect(s.addr.unwrap()).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 405, "{r:?}");
}
