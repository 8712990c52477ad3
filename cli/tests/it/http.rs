use std::io::Write;

use crate::support::*;

fn server() -> Server {
    let s = Server::start(&["--workers", "1"]);
    s.wait_log(&["worker ready"], 1);
    s
}

#[test]
fn get_has_date_length_and_connection_close() {
    let s = server();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello world\n");
    assert_eq!(r.header("content-length").as_deref(), Some("12"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    let date = r.header("date").expect("Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
}

#[test]
fn head_has_the_fields_of_get_and_no_body() {
    let s = server();
    let r = request(s.addr.unwrap(), "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("12"));
    assert!(r.body.is_empty(), "{:?}", r.body);
}

#[test]
fn http10_clients_are_served() {
    let s = server();
    let r = request(s.addr.unwrap(), "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello world\n");
}

#[test]
fn unknown_routes_are_404_and_other_methods_405() {
    let s = server();
    assert_eq!(s.get("/nope").status, 404);
    let r = request(
        s.addr.unwrap(),
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 405);
}

#[test]
fn malformed_heads_get_400_and_a_closed_connection_and_the_worker_goes_on() {
    let s = server();
    let addr = s.addr.unwrap();
    for raw in [
        "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET\x01 / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let r = request(addr, raw);
        assert_eq!(r.status, 400, "{raw:?} -> {r:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"));
    }
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn limits_and_unsupported_framing_get_their_statuses() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--limit-request-line",
        "100",
        "--limit-request-body",
        "10",
    ]);
    s.wait_log(&["worker ready"], 1);
    let addr = s.addr.unwrap();
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(200));
    assert_eq!(request(addr, &long).status, 414);
    let big = "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(request(addr, big).status, 413);
    let gzip = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(request(addr, gzip).status, 501);
    assert_eq!(request(addr, "GET / HTTP/2.0\r\n\r\n").status, 505);
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        request(addr, &format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n")).status,
        431
    );
}

#[test]
fn a_head_that_never_completes_gets_408() {
    let s = Server::start(&["--workers", "1", "--header-timeout", "1"]);
    s.wait_log(&["worker ready"], 1);
    let r = request(s.addr.unwrap(), "GET / HTTP/1.1\r\nHost: t\r\n");
    assert_eq!(r.status, 408);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn the_echo_example_reads_bodies_and_sees_the_raw_head() {
    let echo = echo_bin();
    let s = Spawn::new(&["--workers", "1"]).bin(&echo).start();
    s.wait_log(&["worker ready"], 1);
    let r = request(
        s.addr.unwrap(),
        "PUT /up?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Compared without white space, so the JSON layout does not matter.
    let body: String = String::from_utf8(r.body)
        .unwrap()
        .split_whitespace()
        .collect();
    for part in [
        r#""method":"PUT""#,
        r#""path":"/up""#,
        r#""query":"x=1""#,
        r#"["X-A","1"],["x-a","2"]"#,
        r#""body_base64":"aGVsbG8=""#,
    ] {
        assert!(body.contains(part), "{part} not in {body}");
    }
}

#[test]
fn expect_100_continue_is_answered_when_the_app_reads_the_body() {
    use std::io::{Read, Write};
    let echo = echo_bin();
    let s = Spawn::new(&["--workers", "1"]).bin(&echo).start();
    s.wait_log(&["worker ready"], 1);
    let mut c = std::net::TcpStream::connect(s.addr.unwrap()).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hi").unwrap();
    let r = read_response(c);
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("aGk="), "{r:?}");
}

#[test]
fn each_request_carries_its_connections_addresses() {
    let s = Server::start(&["--workers", "1", "--keepalive", "5"]);
    let mut c = connect(&s);
    let me = c.local_addr().unwrap();
    for _ in 0..2 {
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let r = read_one(&mut c);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("peer={me} local={} listener=0\n", s.addr.unwrap())
        );
    }
}
