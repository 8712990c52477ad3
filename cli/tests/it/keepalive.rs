use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn keepalive_serves_several_requests_on_one_connection_and_pipelined_ones_in_order() {
    let s = Server::start(&["--workers", "1", "--keepalive", "5", "--access-log"]);
    s.wait_log(&["worker ready"], 1);
    let mut c = connect(&s);
    for _ in 0..3 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_one(&mut c);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"Hello world\n");
        assert_eq!(
            r.header("connection"),
            None,
            "HTTP/1.1 persists by default: {}",
            r.head
        );
    }
    // Three pipelined requests in one write: three responses, in order.
    c.write_all(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut c).status, 404);
    assert_eq!(read_one(&mut c).body, b"Hello world\n");
    let head = read_one_of(&mut c, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length").as_deref(), Some("12"));
    // `Connection: close` from the client: answered, then closed.
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = read_response(&mut c);
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection").as_deref(), Some("close"));
    assert_eq!(s.wait_log(&["msg=request"], 7).len(), 7);
}

#[test]
fn http10_keepalive_only_when_asked() {
    let s = Server::start(&["--workers", "1", "--keepalive", "5"]);
    s.wait_log(&["worker ready"], 1);
    let mut c = connect(&s);
    c.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_one(&mut c);
    assert_eq!(r.header("connection").as_deref(), Some("keep-alive"));
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
}

#[test]
fn keepalive_zero_closes_every_connection() {
    let s = Server::start(&["--workers", "1"]);
    s.wait_log(&["worker ready"], 1);
    let mut c = connect(&s);
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(
        text.matches("HTTP/1.1 200").count(),
        1,
        "bytes after a closing request are never processed: {text}"
    );
    assert!(text.contains("Connection: close"));
}

#[test]
fn an_idle_keepalive_connection_is_closed_after_the_timeout_without_a_response() {
    let s = Server::start(&["--workers", "1", "--keepalive", "1"]);
    s.wait_log(&["worker ready"], 1);
    let mut c = connect(&s);
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut c).status, 200);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap(); // the server closes after the idle second
    assert!(
        rest.is_empty(),
        "no 408 on an idle keep-alive connection: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn a_waiting_connection_makes_the_worker_close_the_kept_one() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--keepalive",
        "30",
        "--log-level",
        "debug",
    ]);
    s.wait_log(&["worker ready"], 1);
    let addr = s.addr.unwrap();
    let mut kept = connect(&s);
    // A slow request on the kept connection; meanwhile a second client connects and queues.
    kept.write_all(b"GET /sleep?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    s.wait_log(&["request started"], 1);
    let other = std::thread::spawn(move || {
        request(
            addr,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
    });
    // The response to the kept connection says close, because someone was waiting.
    let r = read_response(&mut kept);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    assert_eq!(other.join().unwrap().status, 200);
}

#[test]
fn slow_clients_do_not_hold_the_workers() {
    // 2 workers, 20 clients sending their request one byte at a time: a normal client is
    // still answered while they trickle.
    let s = Server::start(&["--workers", "2", "--header-timeout", "20"]);
    s.wait_log(&["worker ready"], 2);
    let addr = s.addr.unwrap();
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let tricklers: Vec<_> = (0..20)
        .map(|_| {
            let (stop, started) = (stop.clone(), started.clone());
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let until = Instant::now() + DEADLINE;
                // The head, one byte at a time, then a header value that never ends.
                let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ";
                let bytes = head.iter().chain(std::iter::repeat(&b'y'));
                for (sent, b) in bytes.enumerate() {
                    if stop.load(Ordering::Relaxed) || Instant::now() > until {
                        break;
                    }
                    if c.write_all(&[*b]).is_err() {
                        return false;
                    }
                    if sent == 2 {
                        started.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                true
            })
        })
        .collect();
    // Every trickler has connected and sent a few bytes before the normal client comes.
    let deadline = Instant::now() + DEADLINE;
    while started.load(Ordering::Relaxed) < 20 {
        assert!(
            Instant::now() < deadline,
            "the trickling clients did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    let r = request(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let took = t0.elapsed();
    assert_eq!(r.status, 200);
    stop.store(true, Ordering::Relaxed);
    for t in tricklers {
        assert!(t.join().unwrap(), "a trickling client was cut off");
    }
    eprintln!("normal request answered in {took:?} with 20 trickling clients");
}

#[test]
fn a_head_that_never_completes_gets_408_while_others_are_served() {
    let s = Server::start(&["--workers", "1", "--header-timeout", "1"]);
    s.wait_log(&["worker ready"], 1);
    let addr = s.addr.unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    // The one worker is not held by the incomplete head.
    assert_eq!(
        request(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    let r = read_response(&mut slow);
    assert_eq!(r.status, 408);
}

#[test]
fn an_unread_body_is_collected_parked_and_the_answer_follows_it() {
    // The demo app answers a POST with 405 without reading its body. The worker collects the
    // whole body first, parked, serving others meanwhile; the 405 then follows the body, so
    // the connection can carry on.
    let s = Server::start(&["--workers", "1", "--keepalive", "5"]);
    s.wait_log(&["worker ready"], 1);
    let mut big = connect(&s);
    big.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\npart of the body")
        .unwrap();
    // The one worker serves another client while the first body is still coming.
    assert_eq!(s.get("/").status, 200);
    big.write_all(&vec![b'x'; 1_000_000 - "part of the body".len()])
        .unwrap();
    let r = read_one(&mut big);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("connection"), None, "{r:?}");
    big.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut big).status, 200);
}
