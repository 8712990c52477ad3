//! Regressions from raw bytes: response framing the app cannot break, and request heads the
//! parser settles before the app.

use crate::support::*;

/// examples/echo with keep-alive on.
fn echo() -> Server {
    let bin = example_bin("runicorn", "echo");
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
