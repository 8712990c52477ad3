//! Request-head table tests: bytes in, parse result or status out.

use super::*;

const LIMITS: Limits = Limits {
    request_line: 64,
    fields: 4,
    field_size: 40,
    body: 1000,
};

fn parse(raw: &str) -> Result<Option<Parsed>, Error> {
    parse_head(raw.as_bytes(), &LIMITS)
}

fn status(raw: &str) -> u16 {
    parse(raw).expect_err("should be refused").status().as_u16()
}

#[test]
fn simple_get() {
    let p = parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(p.request.method(), Method::GET);
    assert_eq!(p.request.uri().path(), "/a");
    assert_eq!(p.request.uri().query(), Some("b=c"));
    assert_eq!(p.request.version(), Version::HTTP_11);
    assert_eq!(p.request.headers()["host"], "x");
    assert_eq!(p.body, BodyFraming::None);
    assert_eq!(p.head_len, 32);
    assert!(!p.expect_continue);
}

#[test]
fn partial_heads_ask_for_more() {
    assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    assert!(parse("GET / HT").unwrap().is_none());
    assert!(parse("").unwrap().is_none());
}

#[test]
fn body_and_leftover() {
    let raw = "POST /u HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
    let p = parse(raw).unwrap().unwrap();
    assert_eq!(p.body, BodyFraming::Length(5));
    assert_eq!(&raw[p.head_len..], "hello");
    assert_eq!(p.request.version(), Version::HTTP_10);
}

#[test]
fn raw_head_keeps_order_and_case() {
    let p = parse("get /x%20y HTTP/1.1\r\nB: 1\r\nA:  2 \r\nb: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    assert_eq!(raw.method(), b"get");
    assert_eq!(raw.target(), b"/x%20y");
    let fields: Vec<_> = raw.fields().collect();
    assert_eq!(
        fields,
        vec![(&b"B"[..], &b"1"[..]), (b"A", b"2"), (b"b", b"3")]
    );
}

#[test]
fn expect_continue_only_for_http11() {
    let raw = "PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
    assert!(parse(raw).unwrap().unwrap().expect_continue);
    let raw = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    assert!(!parse(raw).unwrap().unwrap().expect_continue);
}

#[test]
fn refusals_map_to_statuses() {
    let cases: &[(&str, u16)] = &[
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHo(st: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400),
        ("GET /\x01 HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / HTTP/1.1x\r\n\r\n", 400),
        ("GET / FOO/1.1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400,
        ),
        ("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ];
    for (raw, want) in cases {
        assert_eq!(status(raw), *want, "{raw:?}");
    }
}

#[test]
fn request_line_limit_is_exact() {
    // "GET /" + padding + " HTTP/1.1" = 64 bytes: accepted; one more: 414.
    let at = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64 - 14));
    assert!(parse(&at).unwrap().is_some());
    let over = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(65 - 14));
    assert_eq!(status(&over), 414);
    // Refused before the line is complete, once it can no longer fit.
    let endless = format!("GET /{}", "a".repeat(100));
    assert_eq!(status(&endless), 414);
}

#[test]
fn field_limits_are_exact() {
    // "X: " + value + CRLF = 40 bytes: accepted; 41: refused.
    let at = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(40 - 5));
    assert!(parse(&at).unwrap().is_some());
    let over = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(41 - 5));
    assert_eq!(status(&over), 431);
    let four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert!(parse(four).unwrap().is_some());
    let five = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    assert_eq!(status(five), 431);
}

#[test]
fn endless_partial_head_is_refused() {
    let mut raw = String::from("GET / HTTP/1.1\r\n");
    while raw.len() < LIMITS.max_head_len() {
        raw.push_str("X: y\r\n");
    }
    // More fields than allowed are caught by the field count first.
    assert_eq!(status(&raw), 431);
}
