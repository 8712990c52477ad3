//! Tests of the load client as a whole: request bytes, failure causes, and runs against
//! tiny servers on 127.0.0.1 in threads of the test process (framing and percentiles are
//! tested beside their code).

use super::*;
use std::net::TcpListener;

#[test]
fn the_request_bytes() {
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut spec = LoadSpec::new(addr, "/sleep?ms=1");
    assert_eq!(
        spec.request_bytes(),
        b"GET /sleep?ms=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
    );
    spec.keepalive = true;
    spec.headers = vec![
        ("host".into(), "example.com".into()),
        ("X-A".into(), "1".into()),
    ];
    assert_eq!(
        spec.request_bytes(),
        b"GET /sleep?ms=1 HTTP/1.1\r\nhost: example.com\r\nX-A: 1\r\n\r\n"
    );
    spec.method = "POST".into();
    spec.headers.clear();
    spec.body = b"{}".to_vec();
    assert_eq!(
        spec.request_bytes(),
        b"POST /sleep?ms=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 2\r\n\r\n{}"
    );
    spec.body.clear();
    assert_eq!(
        spec.request_bytes(),
        b"POST /sleep?ms=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn causes_of_socket_errors_and_statuses() {
    let cause = |k| Failure::of_io(&io::Error::from(k));
    assert_eq!(cause(ErrorKind::ConnectionRefused), Failure::Refused);
    assert_eq!(cause(ErrorKind::ConnectionReset), Failure::Reset);
    assert_eq!(cause(ErrorKind::BrokenPipe), Failure::Reset);
    assert_eq!(cause(ErrorKind::WouldBlock), Failure::Timeout);
    assert_eq!(cause(ErrorKind::AddrNotAvailable), Failure::Other);
    assert_eq!(Failure::of_status(200), None);
    assert_eq!(Failure::of_status(302), None);
    assert_eq!(Failure::of_status(404), Some(Failure::Status4xx));
    assert_eq!(Failure::of_status(503), Some(Failure::Status5xx));
    let names: Vec<&str> = Failure::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "refused",
            "reset",
            "timeout",
            "5xx",
            "4xx",
            "malformed",
            "other"
        ]
    );
}

/// A server thread on 127.0.0.1 that handles `n` connections with `serve`, then exits.
fn tiny_server(
    n: usize,
    serve: impl Fn(usize, TcpStream) + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..n {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            serve(i, s);
        }
    });
    (addr, t)
}

/// Reads one request head (up to the empty line).
fn read_head(s: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => return false,
        }
    }
    true
}

fn spec(addr: SocketAddr, n: u64) -> LoadSpec {
    let mut spec = LoadSpec::new(addr, "/");
    spec.max_requests = Some(n);
    spec.duration = Duration::from_secs(30);
    spec
}

#[test]
fn each_cause_is_counted() {
    let (addr, t) = tiny_server(4, |i, mut s| {
        read_head(&mut s);
        let _ = match i {
            0 => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            1 => s.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"),
            2 => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncut"),
            _ => s.write_all(b"garbage\r\n\r\n"),
        };
    });
    let progress = AtomicU64::new(0);
    let count = |p: &Progress| {
        progress.fetch_max(p.ok + p.failed, Ordering::Relaxed);
    };
    let r = run(&spec(addr, 4), &AtomicBool::new(false), Some(&count));
    t.join().unwrap();
    assert_eq!((r.sent, r.ok, r.failed(), r.connections), (4, 1, 3, 4));
    assert_eq!(r.failures_of(Failure::Status5xx), 1);
    assert_eq!(r.failures_of(Failure::Reset), 1);
    assert_eq!(r.failures_of(Failure::Malformed), 1);
    assert_eq!(r.latency.count(), 1);
    assert_eq!(progress.load(Ordering::Relaxed), 4);

    // Refused: nothing listens on a port just released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(&spec(addr, 2), &AtomicBool::new(false), None);
    assert_eq!(r.failures_of(Failure::Refused), 2);

    // Timeout: a server that never answers.
    let (addr, t) = tiny_server(1, |_, mut s| {
        read_head(&mut s);
        let _ = s.read(&mut [0u8; 1]); // until the client gives up and closes
    });
    let mut sp = spec(addr, 1);
    sp.request_timeout = Duration::from_millis(100);
    let r = run(&sp, &AtomicBool::new(false), None);
    t.join().unwrap();
    assert_eq!(r.failures_of(Failure::Timeout), 1);
}

#[test]
fn a_kept_connection_closed_before_the_response_is_retried_once() {
    // Connection 0 answers one request, keeps the connection open, then closes it at the
    // second request without answering; connection 1 answers.
    let (addr, t) = tiny_server(2, |i, mut s| {
        read_head(&mut s);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        if i == 0 {
            read_head(&mut s);
        }
    });
    let mut sp = spec(addr, 2);
    sp.keepalive = true;
    let r = run(&sp, &AtomicBool::new(false), None);
    t.join().unwrap();
    assert_eq!((r.sent, r.ok, r.failed()), (2, 2, 0), "{r:?}");
    assert_eq!((r.retried, r.connections), (1, 2));
}

#[test]
fn stop_ends_the_run() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut sp = spec(addr, u64::MAX);
    sp.duration = Duration::MAX;
    sp.concurrency = 3;
    let stop = AtomicBool::new(false);
    let stop_at_10 = |p: &Progress| {
        if p.sent >= 10 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let r = run(&sp, &stop, Some(&stop_at_10));
    assert!(r.sent >= 10 && r.sent < 20, "{r:?}");
    assert_eq!(r.sent, r.failures_of(Failure::Refused));
}
