//! Request-head table tests: bytes in, parse result or status out. Every rule of RFC 9112 /
//! RFC 9110 that `parse_head` applies has rows here, with exact-boundary cases for the limits.

use super::*;

const LIMITS: Limits = Limits {
    request_line: 64,
    fields: 4,
    field_size: 40,
    body: 1000,
};

fn parse(raw: &str) -> Result<Option<Parsed>, Error> {
    parse_bytes(raw.as_bytes())
}

fn parse_bytes(raw: &[u8]) -> Result<Option<Parsed>, Error> {
    parse_head(raw, &LIMITS)
}

fn ok(raw: &str) -> Parsed {
    match parse(raw) {
        Ok(Some(p)) => p,
        other => panic!("{raw:?} should parse, got {other:?}"),
    }
}

fn status(raw: &str) -> u16 {
    parse(raw)
        .expect_err(&format!("{raw:?} should be refused"))
        .status()
        .as_u16()
}

/// Runs a table of `(raw, status)` rows and reports every failing row at once.
fn refusals(rows: &[(&str, u16)]) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(raw, want)| match parse(raw) {
            Err(e) if e.status().as_u16() == *want => None,
            other => Some(format!("{raw:?}: want {want}, got {other:?}")),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs a table of heads that must parse.
fn accepted(rows: &[&str]) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|raw| match parse(raw) {
            Ok(Some(_)) => None,
            other => Some(format!("{raw:?}: want a request, got {other:?}")),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn simple_get() {
    let p = ok("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(p.request.method(), Method::GET);
    assert_eq!(p.request.uri().path(), "/a");
    assert_eq!(p.request.uri().query(), Some("b=c"));
    assert_eq!(p.request.version(), Version::HTTP_11);
    assert_eq!(p.request.headers()["host"], "x");
    assert_eq!(p.body, BodyFraming::None);
    assert_eq!(p.head_len, 32);
    assert!(!p.expect_continue);
    assert!(p.keep_alive);
}

#[test]
fn partial_heads_ask_for_more() {
    for raw in [
        "",
        "\r",
        "\r\n",
        "\r\n\r",
        "GET / HT",
        "GET / HTTP/1.1",
        "GET / HTTP/1.1\r",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r",
        "GET / HTTP/1.1\r\nHost",
    ] {
        assert!(parse(raw).unwrap().is_none(), "{raw:?}");
    }
}

#[test]
fn body_and_leftover() {
    let raw = "POST /u HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
    let p = ok(raw);
    assert_eq!(p.body, BodyFraming::Length(5));
    assert_eq!(&raw[p.head_len..], "hello");
    assert_eq!(p.request.version(), Version::HTTP_10);
}

#[test]
fn raw_head_keeps_order_and_case() {
    let p = ok("-GET /x%20y HTTP/1.1\r\nB: 1\r\nHost: h\r\nA:  2 \r\nb: 3\r\n\r\n");
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    assert_eq!(raw.method(), b"-GET");
    assert_eq!(raw.target(), b"/x%20y");
    assert_eq!(raw.version(), b"HTTP/1.1");
    let fields: Vec<_> = raw.fields().collect();
    assert_eq!(
        fields,
        vec![
            (&b"B"[..], &b"1"[..]),
            (b"Host", b"h"),
            (b"A", b"2"),
            (b"b", b"3")
        ]
    );
    assert_eq!(p.request.headers().get_all("b").iter().count(), 2);
}

#[test]
fn empty_lines_before_the_request_line_are_ignored() {
    // RFC 9112 section 2.2: "SHOULD ignore at least one empty line (CRLF) received prior to
    // the request-line".
    let p = ok("\r\n\r\nGET /x HTTP/1.0\r\n\r\n");
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    assert_eq!(raw.target(), b"/x");
    assert_eq!(p.head_len, 23);
    // The empty lines do not count against the request-line limit.
    let at = format!("\r\nGET /{} HTTP/1.0\r\n\r\n", "a".repeat(64 - 14));
    assert!(parse(&at).unwrap().is_some());
    // But they are bounded, and a lone CR is not an empty line.
    assert_eq!(status(&"\r\n".repeat(200)), 400);
    assert_eq!(status("\rGET / HTTP/1.0\r\n\r\n"), 400);
    assert_eq!(status(" GET / HTTP/1.0\r\n\r\n"), 400);
}

#[test]
fn a_bare_lf_before_the_request_line_is_refused() {
    // An empty line is a CRLF; a bare LF there is refused as it is everywhere else in the
    // head, as soon as it arrives.
    refusals(&[
        ("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("\r\n\r\n\nGET /x HTTP/1.0\r\n\r\n", 400),
    ]);
    assert_eq!(parse("\n").unwrap_err(), Error::Malformed);
    assert_eq!(parse("\r\n\n").unwrap_err(), Error::Malformed);
}

#[test]
fn request_line_grammar() {
    refusals(&[
        // method = token
        ("GET: /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("bla:rgh /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("G(T /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET\0 /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET\u{c3}\u{9f} /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (" /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        // exactly one SP between the parts
        ("GET  /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /x  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /x HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
        ("GET\t/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /x\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /x\r\nHost: a\r\n\r\n", 400),
        ("GET\r\n\r\n", 400),
        // CRLF only
        ("GET\n/\nHTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
        ("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ]);
    accepted(&[
        "-BLARGH /foo HTTP/1.1\r\nHost: a\r\n\r\n",
        "M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n",
        "!#$%&'*+-.^_`|~09AZ /x HTTP/1.0\r\n\r\n",
        "X /x HTTP/1.0\r\n\r\n",
    ]);
    // Policy: lower-case letters in a method are not implemented here.
    refusals(&[
        ("get /foo HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        ("-bl /foo HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        ("Get /foo HTTP/1.0\r\n\r\n", 501),
        ("connect a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    ]);
    assert_eq!(
        ok("M-SEARCH / HTTP/1.0\r\n\r\n").request.method().as_str(),
        "M-SEARCH"
    );
}

#[test]
fn versions() {
    refusals(&[
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
        ("GET / HTTP/0.9\r\n\r\n", 505),
        ("GET / HTTP/0.99\r\n\r\n", 400),
        ("GET / HTTP/1.10\r\n\r\n", 400),
        ("GET / HTTP/111\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1\r\n\r\n", 400),
        ("GET / HTTP/1.1x\r\n\r\n", 400),
        ("GET / HTTP/1.x\r\n\r\n", 400),
        ("GET / http/1.1\r\n\r\n", 400),
        ("GET / FOO/1.1\r\n\r\n", 400),
        ("GET / FTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/ 1.1\r\n\r\n", 400),
        ("GET / HTTP/\u{b9}.1\r\n\r\n", 400),
    ]);
    // The version is known as soon as the request line is complete.
    assert_eq!(status("GET / HTTP/2.0\r\n"), 505);
    // RFC 9110 section 2.5: a higher minor version is served as the highest we implement.
    let p = ok("GET / HTTP/1.9\r\nHost: a\r\n\r\n");
    assert_eq!(p.request.version(), Version::HTTP_11);
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    assert_eq!(raw.version(), b"HTTP/1.9");
    assert!(p.keep_alive);
    assert_eq!(status("GET / HTTP/1.2\r\n\r\n"), 400); // 1.1 rules: Host is required
    assert_eq!(
        ok("GET / HTTP/1.0\r\n\r\n").request.version(),
        Version::HTTP_10
    );
}

#[test]
fn request_targets() {
    refusals(&[
        ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET foo/bar HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /\"q\" HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /\u{e0}%20k HTTP/1.0\r\n\r\n", 400),
        ("GET /\x01 HTTP/1.1\r\n\r\n", 400),
        ("GET /\x7f HTTP/1.0\r\n\r\n", 400),
        ("GET /%g0 HTTP/1.0\r\n\r\n", 400),
        ("PUT s://]ufd/: HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ]);
    let p = ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(p.request.uri().path(), "*");
    let p = ok("GET http://example.com/foo?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(p.request.uri().host(), Some("example.com"));
    assert_eq!(p.request.uri().path(), "/foo");
    let p = ok("GET http://[::1]:8080/foo HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_eq!(p.request.uri().port_u16(), Some(8080));
    ok("GET /:@!$&'()*+,;=-._~%20?/?:@ HTTP/1.0\r\n\r\n");
}

#[test]
fn connect_is_not_implemented() {
    // This server is no proxy and opens no tunnels: a CONNECT that is otherwise well-formed
    // gets 501, before the app, and the connection is closed (as after every refusal).
    for raw in [
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost:\r\n\r\n",
        "CONNECT a:443 HTTP/1.0\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        assert_eq!(
            parse(raw).unwrap_err(),
            Error::ConnectNotImplemented,
            "{raw:?}"
        );
        assert_eq!(status(raw), 501, "{raw:?}");
    }
    // A malformed one gets the status of its fault, as with any method.
    refusals(&[
        ("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT a:0 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT a:443 HTTP/1.1\r\n\r\n", 400),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ]);
    // Only once the head is complete: a partial one still asks for more.
    assert!(parse("CONNECT a:443 HTTP/1.1\r\n").unwrap().is_none());
}

#[test]
fn absolute_form_replaces_host() {
    // RFC 9112 section 3.2.2: the target's authority replaces the received Host.
    let host = |raw: &str| -> Vec<String> {
        ok(raw)
            .request
            .headers()
            .get_all("host")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        host("GET http://good.example/p HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
        ["good.example"]
    );
    assert_eq!(
        host("GET http://good.example:8080 HTTP/1.1\r\nHost:\r\n\r\n"),
        ["good.example:8080"]
    );
    assert_eq!(
        host("GET https://[::1]:8443/p?q HTTP/1.1\r\nHost: evil\r\n\r\n"),
        ["[::1]:8443"]
    );
    // HTTP/1.0 may leave Host out; the target's authority is then the request's Host.
    assert_eq!(
        host("GET http://a.example/ HTTP/1.0\r\n\r\n"),
        ["a.example"]
    );
    // Userinfo is not part of the host (it is refused for http and https).
    assert_eq!(
        host("GET foo://u:p@a.example:1/p HTTP/1.1\r\nHost: b\r\n\r\n"),
        ["a.example:1"]
    );
    // The field keeps its place among the others, and the raw head keeps what was sent.
    let p = ok("GET http://good.example/ HTTP/1.1\r\nA: 1\r\nHost: evil.example\r\nB: 2\r\n\r\n");
    let names: Vec<_> = p.request.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["a", "host", "b"]);
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    assert!(
        raw.fields()
            .any(|f| f == (&b"Host"[..], &b"evil.example"[..]))
    );
    // Origin-form: Host as received.
    assert_eq!(
        host("GET /p HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ["a.example"]
    );
}

#[test]
fn host_rules() {
    refusals(&[
        // HTTP/1.1 needs exactly one valid Host
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
        ("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: caf\u{e9}\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", 400),
        // Empty: only when the target carries the authority
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost:  \r\n\r\n", 400),
        ("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", 400),
        ("GET / HTTP/1.0\r\nHost:\r\n\r\n", 400),
    ]);
    accepted(&[
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 0.0.0.0=5000\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHOST:\t a \t\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
    ]);
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(
        parse("GET / HTTP/1.1\r\n\r\n").unwrap_err(),
        Error::MissingHost
    );
    assert_eq!(
        parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").unwrap_err(),
        Error::BadHost
    );
}

#[test]
fn field_grammar() {
    refusals(&[
        // whitespace between name and colon (RFC 9112 section 5.1)
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 3\r\n\r\n",
            400,
        ),
        // name is a token
        ("GET / HTTP/1.1\r\nHo(st: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nba\0z: v\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA\u{c3}\u{9f}: v\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400),
        // obs-fold, and whitespace before the first field (RFC 9112 sections 5.2 and 2.2)
        (
            "GET / HTTP/1.1\r\nLong: one\r\n two\r\nHost: x\r\n\r\n",
            400,
        ),
        (
            "GET / HTTP/1.1\r\nLong: one\r\n\ttwo\r\nHost: x\r\n\r\n",
            400,
        ),
        ("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
        // CR, LF, NUL and other controls in a value (RFC 9110 section 5.5)
        ("GET / HTTP/1.1\r\nHost: x\r\nA: a\rb\r\n\r\n", 400),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nA: a\nContent-Length: 1\r\n\r\nz",
            400,
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: a\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: a\0b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: a\x07b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: a\x7fb\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: a\x1bb\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n", 400),
        // The head ends with CRLF CRLF, not LF LF
        ("GET / HTTP/1.1\r\nHost: x\n\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\n\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\n\rz", 400),
    ]);
    let p = ok("GET / HTTP/1.1\r\nHost: x\r\nX.Custom|Pipe: ok\r\nX: caf\u{c3}\u{a9}\r\n\r\n");
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    let fields: Vec<_> = raw.fields().collect();
    assert_eq!(fields[1], (&b"X.Custom|Pipe"[..], &b"ok"[..]));
    assert_eq!(fields[2].1, "caf\u{c3}\u{a9}".as_bytes());
    let p = ok("GET / HTTP/1.1\r\nHost: x\r\nName: \t value \t \r\nEmpty:\r\n\r\n");
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    let fields: Vec<_> = raw.fields().collect();
    assert_eq!(fields[1], (&b"Name"[..], &b"value"[..]));
    assert_eq!(fields[2], (&b"Empty"[..], &b""[..]));
    // obs-text bytes are values as the `http` crate sees them too
    let raw = b"GET / HTTP/1.0\r\nX: \xff\x80\r\n\r\n";
    let p = parse_bytes(raw).unwrap().unwrap();
    assert_eq!(p.request.headers()["x"].as_bytes(), b"\xff\x80");
}

#[test]
fn fields_that_must_not_repeat() {
    refusals(&[
        (
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n",
            400,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\ncontent-type: a/b\r\n\r\n",
            400,
        ),
        (
            "GET / HTTP/1.0\r\nAuthorization: a\r\nX: y\r\nAUTHORIZATION: b\r\n\r\n",
            400,
        ),
        (
            "GET / HTTP/1.0\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n",
            400,
        ),
        (
            "GET / HTTP/1.0\r\nMax-Forwards: 1\r\nMax-Forwards: 1\r\n\r\n",
            400,
        ),
    ]);
    assert_eq!(
        parse("GET / HTTP/1.0\r\nReferer: /a\r\nReferer: /b\r\n\r\n").unwrap_err(),
        Error::DuplicateField
    );
    // List-valued fields and unknown fields repeat freely, in order.
    let p = ok("GET / HTTP/1.0\r\nIf-Match: a\r\nIf-Match: b\r\nX: 1\r\nX: 2\r\n\r\n");
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    assert_eq!(raw.fields().count(), 4);
    ok("GET / HTTP/1.0\r\nCookie: a=1\r\nCookie: b=2\r\nAccept: a\r\nAccept: b\r\n\r\n");
}

#[test]
fn content_length() {
    refusals(&[
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0_1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1.0\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0 1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,5\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \u{b9}\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n",
            400,
        ),
        // The limit, exactly
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
            413,
        ),
        (
            "POST / HTTP/1.0\r\nContent-Length: 99999999999\r\n\r\n",
            413,
        ),
    ]);
    let length = |raw: &str| ok(raw).body;
    assert_eq!(
        length("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"),
        BodyFraming::Length(1000)
    );
    assert_eq!(
        length("POST / HTTP/1.1\r\nHost: x\r\ncontent-LENGTH:  0005 \r\n\r\n"),
        BodyFraming::Length(5)
    );
    assert_eq!(
        length("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        BodyFraming::Length(0)
    );
    assert_eq!(
        length("POST / HTTP/1.1\r\nHost: x\r\n\r\n"),
        BodyFraming::None
    );
    // Underscores make other fields, not Content-Length.
    assert_eq!(
        length("GET / HTTP/1.0\r\nContent_Length: -1\r\nContent-Length: 7\r\n\r\n"),
        BodyFraming::Length(7)
    );
    // 0 means no limit.
    let unlimited = Limits { body: 0, ..LIMITS };
    let raw = b"POST / HTTP/1.0\r\nContent-Length: 18446744073709551615\r\n\r\n";
    let p = parse_head(raw, &unlimited).unwrap().unwrap();
    assert_eq!(p.body, BodyFraming::Length(u64::MAX));
}

#[test]
fn transfer_encoding() {
    refusals(&[
        // not allowed in HTTP/1.0, nor with Content-Length
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
        // chunked must be last, exactly once
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunkedx\r\n\r\n",
            400,
        ),
        // malformed codings
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chu nked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip;q, chunked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            400,
        ),
        // other codings before chunked: not implemented here
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
            501,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x;a=\"b,c\", chunked\r\n\r\n",
            501,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;a=b\r\n\r\n",
            501,
        ),
    ]);
    for raw in [
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \tchunked \r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , chunked ,\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(ok(raw).body, BodyFraming::Chunked, "{raw:?}");
    }
    // Transfer_Encoding is another field.
    assert_eq!(
        ok("POST / HTTP/1.0\r\nTransfer_Encoding: chunked\r\n\r\n").body,
        BodyFraming::None
    );
    assert_eq!(
        parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap_err(),
        Error::UnsupportedTransferCoding
    );
}

#[test]
fn keep_alive() {
    let rows: &[(&str, bool)] = &[
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, CLOSE\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: te\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nX-Connection: close\r\n\r\n",
            true,
        ),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            "GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
        ("GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nKeep-Alive: 300\r\n\r\n", false),
    ];
    for (raw, want) in rows {
        assert_eq!(ok(raw).keep_alive, *want, "{raw:?}");
    }
}

#[test]
fn expect_continue() {
    let rows: &[(&str, bool)] = &[
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: foo, 100-continue\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            false,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continuex\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
    ];
    for (raw, want) in rows {
        assert_eq!(ok(raw).expect_continue, *want, "{raw:?}");
    }
}

#[test]
fn request_line_limit_is_exact() {
    // "GET /" + padding + " HTTP/1.0" = 64 bytes: accepted; one more: 414.
    let at = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(64 - 14));
    assert!(parse(&at).unwrap().is_some());
    let over = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(65 - 14));
    assert_eq!(status(&over), 414);
    // Refused before the line is complete, once it can no longer fit; not before.
    let line = format!("GET /{} HTTP/1.0", "a".repeat(64 - 14));
    assert!(parse(&line).unwrap().is_none());
    assert!(parse(&format!("{line}\r")).unwrap().is_none());
    assert_eq!(status(&format!("{line}a")), 414);
    let endless = format!("GET /{}", "a".repeat(100));
    assert_eq!(status(&endless), 414);
}

#[test]
fn field_limits_are_exact() {
    // "X: " + value + CRLF = 40 bytes: accepted; 41: refused.
    let at = format!("GET / HTTP/1.0\r\nX: {}\r\n\r\n", "v".repeat(40 - 5));
    assert!(parse(&at).unwrap().is_some());
    let over = format!("GET / HTTP/1.0\r\nX: {}\r\n\r\n", "v".repeat(41 - 5));
    assert_eq!(status(&over), 431);
    // While the line is arriving: refused as soon as it can no longer fit.
    let partial = format!("GET / HTTP/1.0\r\nX: {}", "v".repeat(40 - 5));
    assert!(parse(&partial).unwrap().is_none());
    assert!(parse(&format!("{partial}\r")).unwrap().is_none());
    assert_eq!(status(&format!("{partial}v")), 431);

    let four = "GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert!(parse(four).unwrap().is_some());
    let five = "GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    assert_eq!(status(five), 431);
    assert_eq!(
        status("GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE"),
        431
    );
    assert!(
        parse("GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r")
            .unwrap()
            .is_none()
    );
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

#[test]
fn the_largest_field_limit_does_not_overflow_a_header_map() {
    // `--limit-request-fields` allows 32768; an `http::HeaderMap` cannot hold that many names.
    let wide = Limits {
        fields: 32_768,
        ..LIMITS
    };
    let mut raw = String::from("GET / HTTP/1.0\r\n");
    for i in 0..32_768 {
        raw.push_str(&format!("x{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(
        parse_head(raw.as_bytes(), &wide).unwrap_err(),
        Error::TooManyFields
    );
    // Repeats of one name are fine.
    let mut raw = String::from("GET / HTTP/1.0\r\n");
    raw.push_str(&"x: v\r\n".repeat(32_768));
    raw.push_str("\r\n");
    let p = parse_head(raw.as_bytes(), &wide).unwrap().unwrap();
    assert_eq!(p.request.headers().get_all("x").iter().count(), 32_768);
}

#[test]
fn a_target_too_long_for_a_uri_is_414() {
    let big = Limits {
        request_line: 1 << 20,
        ..LIMITS
    };
    let raw = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(70_000));
    assert_eq!(
        parse_head(raw.as_bytes(), &big).unwrap_err(),
        Error::RequestLineTooLong
    );
}

/// The same head, arriving byte by byte: every prefix is "incomplete" or already refused with
/// the error the whole head gets; no prefix of a good head is refused.
#[test]
fn prefixes_agree_with_the_whole() {
    let samples: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n",
        b"\r\nPOST /p?q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nA: a\nB: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nA: a\rB: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.0\r\nX: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n",
        b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\nY: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
    ];
    for raw in samples {
        let whole = parse_bytes(raw).map(|p| p.is_some());
        for end in 0..raw.len() {
            match parse_bytes(&raw[..end]) {
                Ok(None) => {}
                Err(e) => assert_eq!(whole, Err(e), "{raw:?} cut at {end}"),
                Ok(Some(_)) => panic!("{raw:?} complete at {end}"),
            }
        }
    }
}

#[test]
fn statuses_of_every_error() {
    let rows: &[(Error, u16)] = &[
        (Error::Malformed, 400),
        (Error::UnsupportedMethod, 501),
        (Error::ConnectNotImplemented, 501),
        (Error::BadTarget, 400),
        (Error::DuplicateField, 400),
        (Error::MissingHost, 400),
        (Error::BadHost, 400),
        (Error::RequestLineTooLong, 414),
        (Error::TooManyFields, 431),
        (Error::FieldTooLarge, 431),
        (Error::BadContentLength, 400),
        (Error::BadTransferEncoding, 400),
        (Error::UnsupportedTransferCoding, 501),
        (Error::UnsupportedVersion, 505),
        (Error::BodyTooLarge, 413),
        (Error::BadChunk, 400),
        (Error::ForbiddenTrailer, 400),
        (Error::HeadTimeout, 408),
    ];
    for (e, status) in rows {
        assert_eq!(e.status().as_u16(), *status, "{e:?}");
        assert!(
            e.name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
    }
}

/// A small xorshift generator: deterministic "random" mutations without a dependency.
fn xorshift(seed: &mut u64) -> usize {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed as usize
}

/// Mutated heads (bytes replaced, inserted, removed) never panic, and every prefix of one
/// agrees with the whole: incomplete, the same error, or the same complete head.
#[test]
fn mutated_heads_never_panic_and_prefixes_agree() {
    let samples: &[&[u8]] = &[
        b"GET /a?b HTTP/1.1\r\nHost: x:80\r\nConnection: close\r\n\r\n",
        b"POST http://h/p HTTP/1.1\r\nHost:\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\n",
        b"\r\nPUT / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Type: x\r\n\r\n",
    ];
    let alphabet = b"\r\n :;,/?#%[]@\"\t\x00\x7f\xffaZ09-*=";
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        let mut raw = samples[xorshift(&mut seed) % samples.len()].to_vec();
        for _ in 0..1 + xorshift(&mut seed) % 3 {
            let at = xorshift(&mut seed) % (raw.len() + 1);
            let byte = alphabet[xorshift(&mut seed) % alphabet.len()];
            match xorshift(&mut seed) % 3 {
                0 if at < raw.len() => raw[at] = byte,
                1 => raw.insert(at, byte),
                _ if at < raw.len() => {
                    raw.remove(at);
                }
                _ => {}
            }
        }
        let whole = parse_bytes(&raw).map(|p| p.map(|p| p.head_len));
        let mut refused = None;
        for end in 0..=raw.len() {
            let part = parse_bytes(&raw[..end]).map(|p| p.map(|p| p.head_len));
            match (part, whole) {
                (Ok(None), _) => assert!(refused.is_none(), "{raw:?} at {end}"),
                (Err(e), Err(w)) => {
                    assert_eq!(e, w, "{raw:?} at {end}");
                    refused = Some(e);
                }
                (Ok(Some(len)), Ok(Some(w))) => assert!(len == w && end >= len, "{raw:?}"),
                (part, whole) => panic!("{raw:?} at {end}: {part:?}, whole {whole:?}"),
            }
        }
    }
}

/// Regression: `http::HeaderMap::append` panics past about 24,000 distinct names, and
/// `--limit-request-fields` allows 32768; the worker crashed instead of answering 431.
#[test]
fn issue_headermap_capacity_is_a_431_not_a_panic() {
    let limits = Limits {
        request_line: 8190,
        fields: 32_768,
        field_size: 8190,
        body: 0,
    };
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..32_000 {
        raw.push_str(&format!("x{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    let err =
        parse_head(raw.as_bytes(), &limits).expect_err("too many distinct names for a HeaderMap");
    assert_eq!(err.status().as_u16(), 431);
}

#[test]
fn the_workers_notes_are_the_first_lines_of_their_fields() {
    let p = ok(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: r-1\r\nx-request-id: r-2\r\n\
                X-Request-Start: t=1700000000123456\r\n\r\n",
    );
    assert_eq!(p.notes.request_id.unwrap(), "r-1");
    assert_eq!(p.notes.request_start.unwrap(), "t=1700000000123456");
    assert!(!p.notes.trailers_accepted);
    let p = ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(p.notes.request_id.is_none() && p.notes.request_start.is_none());
}

#[test]
fn te_trailers_is_found_among_other_codings() {
    let te = |v: &str| {
        ok(&format!("GET / HTTP/1.1\r\nHost: a\r\nTE: {v}\r\n\r\n"))
            .notes
            .trailers_accepted
    };
    assert!(te("trailers"));
    assert!(te("gzip;q=0.5, Trailers"));
    assert!(te("deflate, trailers;q=1"));
    assert!(!te("gzip"));
    assert!(!te("trailersx"));
    // On a line of its own, after another.
    let p = ok("GET / HTTP/1.1\r\nHost: a\r\nTE: gzip\r\nTE: trailers\r\n\r\n");
    assert!(p.notes.trailers_accepted);
}

#[test]
fn the_uri_header_values_and_raw_head_share_one_copy_of_the_head() {
    let p = ok("GET /p?q HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
    let raw = p.request.extensions().get::<RawHead>().unwrap();
    let within = |s: &[u8]| {
        let r = raw.bytes.as_ptr_range();
        r.contains(&s.as_ptr())
    };
    assert!(within(p.request.headers()["accept"].as_bytes()));
    assert!(within(p.request.uri().path().as_bytes()));
}
