use std::io::ErrorKind;
use std::net::TcpStream;

use crate::support::*;

#[test]
fn term_to_the_group_finishes_requests_in_flight_and_refuses_new_ones() {
    let mut s = Server::start(&["--workers", "3", "--log-level", "debug"]);
    s.wait_log(&["worker ready"], 3);
    let addr = s.addr.unwrap();
    let inflight: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                request(addr, "GET /sleep?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
            })
        })
        .collect();
    s.wait_log(&["request started", "path=/sleep"], 3);

    // What Heroku does: SIGTERM to every process of the dyno at once.
    s.signal_group(libc::SIGTERM);
    s.wait_log(&["graceful stop"], 1);
    match TcpStream::connect(addr) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
        Ok(_) => s.fail("a new connection was accepted after TERM"),
    }
    for t in inflight {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "an in-flight request was lost: {r:?}");
    }
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(
        s.count_log(&["graceful timeout"]),
        0,
        "stopped by the timeout, not gracefully"
    );
}

#[test]
fn quit_is_graceful_too() {
    let mut s = Server::start(&["--workers", "1", "--log-level", "debug"]);
    s.wait_log(&["worker ready"], 1);
    let addr = s.addr.unwrap();
    let t =
        std::thread::spawn(move || request(addr, "GET /sleep?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n"));
    s.wait_log(&["request started"], 1);
    s.signal(libc::SIGQUIT);
    assert_eq!(t.join().unwrap().status, 200);
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn int_stops_at_once() {
    let mut s = Server::start(&["--workers", "1", "--log-level", "debug"]);
    s.wait_log(&["worker ready"], 1);
    let addr = s.addr.unwrap();
    let t = std::thread::spawn(move || {
        request(addr, "GET /sleep?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    s.wait_log(&["request started"], 1);
    s.signal(libc::SIGINT);
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0));
    // The 20 s request was cut, not waited for.
    assert_eq!(t.join().unwrap().status, 0);
    assert_eq!(
        s.count_log(&["quick stop"]),
        2,
        "quick stop logged and the worker killed for it"
    );
}

#[test]
fn graceful_timeout_kills_what_is_left() {
    let mut s = Server::start(&[
        "--workers",
        "1",
        "--graceful-timeout",
        "1",
        "--log-level",
        "debug",
    ]);
    s.wait_log(&["worker ready"], 1);
    let addr = s.addr.unwrap();
    let t = std::thread::spawn(move || {
        request(addr, "GET /sleep?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    s.wait_log(&["request started"], 1);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
    s.wait_log(&["graceful timeout"], 1);
    s.wait_log(
        &[
            "worker killed",
            "signal=SIGKILL",
            "reason=\"graceful timeout\"",
        ],
        1,
    );
    assert_eq!(t.join().unwrap().status, 0);
}

/// A connection the worker accepted before its request fully arrived is owed an answer: a
/// graceful stop (HUP, TTOU, an upgrade, TERM to the worker) must not close it unanswered,
/// since the client would not know whether to retry.
#[test]
fn a_stopping_worker_answers_a_request_still_arriving() {
    use std::io::Write;
    let s = Server::start(&["--workers", "1"]);
    s.wait_log(&["worker ready"], 1);
    let worker = s.workers()[0];
    let addr = s.addr.unwrap();

    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    slow.write_all(b"GET /sleep?ms=1 HTTP/1.1\r\n").unwrap();
    // The accept queue is FIFO: once a later connection is answered, the worker has
    // accepted the slow one and parked it.
    assert_eq!(s.get("/").status, 200);

    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(worker, libc::SIGTERM) }, 0);
    slow.write_all(b"Host: t\r\n\r\n").unwrap();
    let r = read_response(slow);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    s.wait_log(
        &["worker exiting", &format!("pid={worker}"), "reason=signal"],
        1,
    );
}
