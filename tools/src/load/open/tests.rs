//! The arrival process, the outcomes, and runs against tiny servers on 127.0.0.1 in
//! threads of the test process.

use super::*;
use std::net::{TcpListener, TcpStream as StdStream};

#[test]
fn arrivals_have_the_mean_gap_of_the_rate() {
    for (rate, seed) in [(100.0, 1), (1000.0, 7), (3.5, 99)] {
        let n = 100_000;
        let last = Arrivals::new(rate, seed).nth(n - 1).unwrap();
        let mean_gap = last.as_secs_f64() / n as f64;
        // The standard error of the mean of 100 000 exponential gaps is 0.3 % of it.
        assert!(
            (mean_gap * rate - 1.0).abs() < 0.015,
            "rate {rate}: mean gap {mean_gap}"
        );
    }
}

#[test]
fn arrival_gaps_are_exponential() {
    let times: Vec<f64> = Arrivals::new(50.0, 3)
        .take(50_001)
        .map(|d| d.as_secs_f64())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|&g| g >= 0.0), "arrivals never go back");
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    // An exponential's standard deviation is its mean (a coefficient of variation of 1,
    // where a fixed rate would have 0), and e^-1 of the gaps are longer than the mean.
    let cv = var.sqrt() / mean;
    assert!((cv - 1.0).abs() < 0.03, "coefficient of variation {cv}");
    let longer = gaps.iter().filter(|&&g| g > mean).count() as f64 / gaps.len() as f64;
    assert!((longer - (-1f64).exp()).abs() < 0.01, "{longer}");
    // Arrivals in one-second windows are Poisson: variance equals the mean (50).
    let mut per_second = vec![0u32; times.last().unwrap().ceil() as usize];
    for t in &times {
        per_second[*t as usize] += 1;
    }
    per_second.pop(); // the last window is partial
    let m = per_second.iter().sum::<u32>() as f64 / per_second.len() as f64;
    let v = per_second
        .iter()
        .map(|&c| (c as f64 - m).powi(2))
        .sum::<f64>()
        / per_second.len() as f64;
    assert!(
        (m - 50.0).abs() < 1.5 && (v / m - 1.0).abs() < 0.15,
        "{m} {v}"
    );
}

#[test]
fn arrivals_are_seeded() {
    let take = |seed| Arrivals::new(200.0, seed).take(100).collect::<Vec<_>>();
    assert_eq!(take(5), take(5));
    assert_ne!(take(5), take(6));
    // The rate scales the same draws.
    let slow: Vec<Duration> = Arrivals::new(100.0, 5).take(100).collect();
    for (fast, slow) in take(5).iter().zip(&slow) {
        let ratio = slow.as_secs_f64() / fast.as_secs_f64();
        assert!((ratio - 2.0).abs() < 1e-6, "{ratio}");
    }
}

#[test]
fn outcomes() {
    assert_eq!(Outcome::of_status(200), Outcome::Ok(200));
    assert_eq!(Outcome::of_status(204), Outcome::Ok(204));
    assert_eq!(Outcome::of_status(302), Outcome::HttpError(302));
    assert_eq!(Outcome::of_status(503), Outcome::HttpError(503));
    assert_eq!(Outcome::HttpError(503).status(), Some(503));
    assert_eq!(Outcome::Reset.status(), None);
    for (i, o) in [
        Outcome::Ok(200),
        Outcome::HttpError(502),
        Outcome::Connect,
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::Malformed,
        Outcome::NotSent,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(o.kind(), i);
        assert_eq!(o.name(), Outcome::KINDS[i]);
    }
}

fn record(ms: u64, outcome: Outcome, latency_ms: u64) -> Record {
    Record {
        scheduled: Duration::from_millis(ms),
        lag: Duration::from_micros(ms),
        outcome,
        latency: Duration::from_millis(latency_ms),
    }
}

#[test]
fn slices_and_summaries() {
    let report = OpenReport {
        start_unix_us: 1_700_000_000_000_000,
        records: vec![
            record(10, Outcome::Ok(200), 5),
            record(900, Outcome::Ok(200), 7),
            record(2500, Outcome::HttpError(503), 1),
            record(2600, Outcome::Reset, 2),
            record(2700, Outcome::NotSent, 0),
        ],
        max_in_flight: 2,
        elapsed: Duration::from_secs(3),
    };
    let all = report.summary();
    assert_eq!((all.sent(), all.ok(), all.failed()), (5, 2, 3));
    assert_eq!(all.counts, [2, 1, 0, 1, 0, 0, 1]);
    assert_eq!(all.latency.count(), 2, "latency of the 2xx only");
    assert_eq!(all.latency.max(), Some(Duration::from_millis(7)));
    assert_eq!(all.lag.count(), 4, "a request not sent has no lag");
    let slices = report.slices(Duration::from_secs(1));
    assert_eq!(slices.len(), 3);
    assert_eq!(slices[0].summary.ok(), 2);
    assert_eq!(slices[1].summary.sent(), 0, "an empty second is shown");
    assert_eq!(slices[1].start, Duration::from_secs(1));
    assert_eq!(slices[2].summary.counts, [0, 1, 0, 1, 0, 0, 1]);
    let csv = report.records_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "# start_unix_us=1700000000000000");
    assert_eq!(lines[1], "scheduled_us,lag_us,outcome,status,latency_us");
    assert_eq!(lines[2], "10000,10,ok,200,5000");
    assert_eq!(lines[4], "2500000,2500,http_error,503,1000");
    assert_eq!(lines[5], "2600000,2600,reset,,2000");
    assert_eq!(lines.len(), 7);
}

/// A server thread on 127.0.0.1 that handles `n` connections one after the other with
/// `serve`, then exits.
fn tiny_server(
    n: usize,
    serve: impl Fn(usize, StdStream) + Send + 'static,
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
fn read_head(s: &mut StdStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => break,
        }
    }
    got
}

fn spec(addr: SocketAddr, n: u64, rate: f64) -> OpenSpec {
    let mut spec = OpenSpec::new(addr, "/x");
    spec.max_requests = Some(n);
    spec.rate = rate;
    spec.duration = Duration::from_secs(30);
    spec.request_timeout = Duration::from_secs(10);
    spec
}

#[test]
fn each_outcome_is_counted() {
    let (addr, t) = tiny_server(4, |i, mut s| {
        let head = read_head(&mut s);
        let want = format!(
            "GET /x HTTP/1.1\r\nHost: {}\r\nX-A: 1\r\nConnection: close\r\n\r\n",
            s.local_addr().unwrap()
        );
        assert_eq!(String::from_utf8_lossy(&head), want);
        let _ = match i {
            0 => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            1 => s.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"),
            2 => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncut"),
            _ => s.write_all(b"garbage\r\n\r\n"),
        };
    });
    let mut sp = spec(addr, 4, 20.0);
    sp.headers = vec![("X-A".into(), "1".into())];
    let r = run(&sp, &AtomicBool::new(false)).unwrap();
    t.join().unwrap();
    let outcomes: Vec<Outcome> = r.records.iter().map(|r| r.outcome).collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            Outcome::Ok(200),
            Outcome::HttpError(503),
            Outcome::Reset,
            Outcome::Malformed
        ],
        "{r:?}"
    );
    assert!(
        r.records
            .windows(2)
            .all(|w| w[0].scheduled <= w[1].scheduled)
    );

    // Refused: nothing listens on a port just released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(&spec(addr, 3, 100.0), &AtomicBool::new(false)).unwrap();
    assert_eq!(r.summary().counts[Outcome::Connect.kind()], 3, "{r:?}");

    // Timeout: a server that never answers; and not sent: one in flight at most.
    let (addr, t) = tiny_server(1, |_, mut s| {
        read_head(&mut s);
        let _ = s.read(&mut [0u8; 1]); // until the client gives up and closes
    });
    let mut sp = spec(addr, 3, 100.0);
    sp.request_timeout = Duration::from_millis(300);
    sp.max_in_flight = 1;
    let r = run(&sp, &AtomicBool::new(false)).unwrap();
    t.join().unwrap();
    let s = r.summary();
    assert_eq!(s.counts[Outcome::Timeout.kind()], 1, "{r:?}");
    assert!(r.records[0].latency >= Duration::from_millis(300));
    // At 100/s, the next two arrive within the 300 ms, while the first still waits.
    assert_eq!(s.counts[Outcome::NotSent.kind()], 2, "{r:?}");
    assert_eq!(r.max_in_flight, 1);
}

/// The point of an open loop: a server slower than the arrivals does not slow them down.
/// One request at a time, 20 ms each, is 50 a second; 40 arrivals at 400 a second all go
/// out on time, and the last ones wait in the listen queue, as they would behind a router.
#[test]
fn a_slow_server_does_not_hold_the_arrivals_back() {
    let (addr, t) = tiny_server(40, |_, mut s| {
        read_head(&mut s);
        std::thread::sleep(Duration::from_millis(20));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let r = run(&spec(addr, 40, 400.0), &AtomicBool::new(false)).unwrap();
    t.join().unwrap();
    let s = r.summary();
    assert_eq!(s.ok(), 40, "{r:?}");
    let last = r.records.last().unwrap().scheduled;
    assert!(
        last < Duration::from_millis(400),
        "arrivals at 400/s: {last:?}"
    );
    assert!(
        s.lag.max().unwrap() < Duration::from_millis(100),
        "{:?}",
        s.lag
    );
    // 40 requests of 20 ms one at a time take 800 ms: the later ones queued.
    assert!(r.elapsed >= Duration::from_millis(800));
    assert!(
        s.latency.max().unwrap() >= Duration::from_millis(400),
        "{s:?}"
    );
    assert!(r.max_in_flight > 10, "{}", r.max_in_flight);
}

#[test]
fn stop_ends_the_arrivals_and_lets_the_requests_in_flight_finish() {
    let (addr, t) = tiny_server(1, |_, mut s| {
        read_head(&mut s);
        std::thread::sleep(Duration::from_millis(200));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let mut sp = spec(addr, u64::MAX, 10.0);
    sp.duration = Duration::MAX;
    sp.max_in_flight = 1; // the later arrivals, until the stop, are not sent
    let stop = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        let run = s.spawn(|| run(&sp, &stop).unwrap());
        while !t.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        run.join().unwrap()
    });
    let s = r.summary();
    assert_eq!(s.ok(), 1, "{r:?}");
    assert_eq!(s.failed(), s.counts[Outcome::NotSent.kind()]);
}
