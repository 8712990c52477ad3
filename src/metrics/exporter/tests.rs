//! The endpoint over real loopback sockets, turned by hand as the master's loop turns it;
//! `now` is passed in, so deadlines are tested without waiting for them.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use mio::{Events, Poll};

use super::*;

struct Rig {
    poll: Poll,
    exp: Exporter,
    addr: SocketAddr,
}

impl Rig {
    fn new() -> Rig {
        let poll = Poll::new().unwrap();
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let exp = Exporter::new(listener, poll.registry(), Token(1)).unwrap();
        let addr = exp.local_addr().unwrap();
        Rig { poll, exp, addr }
    }

    /// Waits a little for readiness (as the master's poll would), then turns, answering
    /// with `page` when a scrape waits; returns whether one did.
    fn turn(&mut self, now: Instant, page: &str) -> bool {
        let mut events = Events::with_capacity(16);
        self.poll
            .poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        let wants = self.exp.turn(now, self.poll.registry());
        if wants {
            self.exp.answer(now, page, self.poll.registry());
        }
        wants
    }

    fn client(&self) -> TcpStream {
        let c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    /// Sends `raw`, turns until the endpoint has closed the connection, and returns
    /// everything it sent.
    fn exchange(&mut self, raw: &[u8], page: &str) -> String {
        let mut c = self.client();
        c.write_all(raw).unwrap();
        c.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            assert!(
                Instant::now() < deadline,
                "the endpoint kept the connection"
            );
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.turn(Instant::now(), page);
                }
                Err(e) => panic!("{e} after {:?}", String::from_utf8_lossy(&out)),
            }
        }
        String::from_utf8(out).unwrap()
    }
}

/// A client whose receive buffer is set small before it connects (the window it offers is
/// fixed then).
fn small_window_client(addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{
        SockFlag, SockType, SockaddrStorage, connect, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)).unwrap();
    let c = TcpStream::from(fd);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn status(response: &str) -> &str {
    response.split("\r\n").next().unwrap()
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").unwrap().1
}

#[test]
fn get_head_and_every_other_request() {
    let mut rig = Rig::new();
    let page = "# TYPE x gauge\nx 1\n";
    let r = rig.exchange(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", page);
    assert_eq!(status(&r), "HTTP/1.1 200 OK");
    assert!(
        r.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}\r\n")),
        "{r}"
    );
    assert!(r.contains(&format!("\r\nContent-Length: {}\r\n", page.len())));
    assert!(r.contains("\r\nConnection: close\r\n"));
    assert!(r.contains("\r\nDate: "));
    assert_eq!(body(&r), page);

    // A query string is ignored (Prometheus may add params); HEAD gets the same head.
    let r = rig.exchange(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", page);
    assert_eq!(body(&r), page);
    let r = rig.exchange(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n", page);
    assert_eq!(status(&r), "HTTP/1.1 200 OK");
    assert!(r.contains(&format!("\r\nContent-Length: {}\r\n", page.len())));
    assert_eq!(body(&r), "");
    // Bare LF line ends.
    let r = rig.exchange(b"GET /metrics HTTP/1.1\nHost: t\n\n", page);
    assert_eq!(body(&r), page);

    let r = rig.exchange(b"GET / HTTP/1.1\r\n\r\n", page);
    assert_eq!(status(&r), "HTTP/1.1 404 Not Found");
    let r = rig.exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", page);
    assert_eq!(status(&r), "HTTP/1.1 405 Method Not Allowed");
    assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
    let r = rig.exchange(b"GET /metrics\r\n\r\n", page);
    assert_eq!(status(&r), "HTTP/1.1 400 Bad Request");
    let r = rig.exchange(b"GET /metrics HTTP/2.0\r\n\r\n", page);
    assert_eq!(status(&r), "HTTP/1.1 400 Bad Request");
    let mut long = b"GET /metrics HTTP/1.1\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
    let r = rig.exchange(&long, page);
    assert_eq!(status(&r), "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(rig.exp.open_connections(), 0);
}

#[test]
fn a_head_sent_in_pieces_is_answered() {
    let mut rig = Rig::new();
    let mut c = rig.client();
    for piece in [
        &b"GET /met"[..],
        b"rics HTTP/1.1\r\n",
        b"Host: t\r\n",
        b"\r\n",
    ] {
        assert!(
            !rig.turn(Instant::now(), "p\n"),
            "answered before the head was whole"
        );
        c.write_all(piece).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.exp.open_connections() > 0 {
        assert!(Instant::now() < deadline);
        rig.turn(Instant::now(), "p\n");
    }
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert_eq!(body(&out), "p\n");
}

/// A client that does not read: the page goes out as the kernel takes it, the rest kept,
/// and the client that reads at last gets every byte in order.
#[test]
fn partial_writes_keep_the_rest() {
    let mut rig = Rig::new();
    // Larger than the endpoint's send buffer (4 MiB at most by default) and the client's
    // small receive buffer together, so writes must stop.
    let page: String = (0..400_000)
        .map(|i| format!("x{{n=\"{i:07}\"}} 1\n"))
        .collect();
    assert!(page.len() > 6 << 20);
    let mut c = small_window_client(rig.addr);
    c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rig.turn(Instant::now(), &page) {
        assert!(Instant::now() < deadline);
    }
    // The page was given; the kernel took part of it.
    let Some(Some(conn)) = rig.exp.conns.iter().find(|c| c.is_some()) else {
        panic!("the connection is gone");
    };
    let State::Writing { out, sent } = &conn.state else {
        panic!("not writing: {:?}", conn.state);
    };
    assert!(*sent > 0 && *sent < out.len(), "{sent} of {}", out.len());
    // Now read, turning between reads.
    c.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        assert!(Instant::now() < deadline, "the rest never came");
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                rig.turn(Instant::now(), &page);
            }
            Err(e) => panic!("{e}"),
        }
    }
    let got = String::from_utf8(got).unwrap();
    assert_eq!(body(&got), page);
}

#[test]
fn silent_and_stalled_clients_are_closed_at_the_deadline() {
    let mut rig = Rig::new();
    let now = Instant::now();
    let silent = rig.client();
    let mut partial = rig.client();
    partial.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    rig.turn(now, "p\n");
    rig.turn(now, "p\n");
    assert_eq!(rig.exp.open_connections(), 2);
    assert_eq!(rig.exp.next_deadline(), Some(now + DEADLINE));
    // Another scrape is answered meanwhile.
    let r = rig.exchange(b"GET /metrics HTTP/1.1\r\n\r\n", "p\n");
    assert_eq!(body(&r), "p\n");
    assert_eq!(rig.exp.open_connections(), 2);
    // Past the deadline, both are closed.
    rig.turn(now + DEADLINE, "p\n");
    assert_eq!(rig.exp.open_connections(), 0);
    for mut c in [silent, partial] {
        let mut b = [0u8; 16];
        assert!(matches!(c.read(&mut b), Ok(0) | Err(_)), "still open");
    }
}

#[test]
fn connections_over_the_bound_are_closed_at_once() {
    let mut rig = Rig::new();
    let now = Instant::now();
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| rig.client()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.exp.open_connections() < MAX_CONNECTIONS {
        assert!(Instant::now() < deadline);
        rig.turn(now, "p\n");
    }
    let mut extra = rig.client();
    extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    rig.turn(now, "p\n");
    let mut out = Vec::new();
    let _ = extra.read_to_end(&mut out); // EOF, or a reset: no response either way
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert_eq!(rig.exp.open_connections(), MAX_CONNECTIONS);
    // Once they are gone, scrapes are answered again.
    drop(held);
    rig.turn(now + DEADLINE, "p\n");
    let r = rig.exchange(b"GET /metrics HTTP/1.1\r\n\r\n", "p\n");
    assert_eq!(body(&r), "p\n");
}

#[test]
fn a_flood_is_accepted_a_bounded_number_at_a_time() {
    let mut rig = Rig::new();
    let clients: Vec<TcpStream> = (0..ACCEPTS_PER_TURN + 4).map(|_| rig.client()).collect();
    assert!(
        ACCEPTS_PER_TURN + 4 <= BACKLOG as usize,
        "all fit the accept queue"
    );
    // Let every connection reach the accept queue.
    std::thread::sleep(Duration::from_millis(100));
    rig.exp.turn(Instant::now(), rig.poll.registry());
    assert!(rig.exp.backlogged(), "stopped after {ACCEPTS_PER_TURN}");
    rig.exp.turn(Instant::now(), rig.poll.registry());
    assert!(!rig.exp.backlogged());
    drop(clients);
}

#[test]
fn a_handed_over_socket_is_kept_only_for_its_address() {
    use std::os::fd::IntoRawFd;
    let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let fd = l.into_raw_fd();
    let kept = adopt(fd, addr).unwrap().expect("same address");
    assert_eq!(kept.local_addr().unwrap(), addr);
    let fd = kept.into_raw_fd();
    let any_port = adopt(fd, "127.0.0.1:0".parse().unwrap()).unwrap();
    let fd = any_port.expect("port 0 takes any port").into_raw_fd();
    let other: SocketAddr = format!("127.0.0.1:{}", addr.port().wrapping_add(1).max(1))
        .parse()
        .unwrap();
    assert!(
        adopt(fd, other).unwrap().is_none(),
        "another port: bind anew"
    );
}
