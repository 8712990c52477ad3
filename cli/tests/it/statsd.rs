use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::support::*;

/// One StatsD line, as a server would read it: `name:value|type[|#tags]`.
#[derive(Debug)]
struct Metric {
    name: String,
    value: f64,
    kind: String,
}

fn parse_line(line: &str) -> Metric {
    let (name, rest) = line
        .split_once(':')
        .unwrap_or_else(|| panic!("no ':' in {line:?}"));
    let mut fields = rest.split('|');
    let value = fields.next().unwrap();
    let kind = fields
        .next()
        .unwrap_or_else(|| panic!("no type in {line:?}"));
    assert!(
        fields.next().is_none(),
        "no tags or sample rate expected: {line:?}"
    );
    assert!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "{line:?}"
    );
    assert!(kind == "g" || kind == "c", "{line:?}");
    Metric {
        name: name.to_string(),
        value: value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}")),
        kind: kind.to_string(),
    }
}

/// Receives datagrams until `done` holds for the metrics received so far.
fn receive_until(sock: &UdpSocket, s: &Server, done: impl Fn(&[Metric]) -> bool) -> Vec<Metric> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut metrics = Vec::new();
    let mut buf = [0u8; 65536];
    while !done(&metrics) {
        if Instant::now() >= deadline {
            s.fail(&format!(
                "StatsD: not what was awaited; received {metrics:#?}"
            ));
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        assert!(n <= 1432, "a datagram of {n} bytes");
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        metrics.extend(text.split('\n').map(parse_line));
    }
    metrics
}

fn sum(metrics: &[Metric], name: &str) -> f64 {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .map(|m| m.value)
        .sum()
}

#[test]
fn the_master_pushes_each_sample_to_statsd() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let host = sock.local_addr().unwrap().to_string();
    let s = Server::start(&[
        "--workers",
        "2",
        "--statsd-host",
        &host,
        "--statsd-prefix",
        "myapp",
        "--metrics-interval",
        "1",
    ]);
    s.wait_log(&["worker ready"], 2);
    s.wait_log(&["statsd: pushing metrics"], 1);
    for path in ["/", "/", "/nope"] {
        s.get(path);
    }
    // Until the 3 requests are counted and each sample's datagrams all arrived (a sample
    // starts with the load and ends with the worker ends).
    let metrics = receive_until(&sock, &s, |m| {
        let n = |name: &str| m.iter().filter(|m| m.name == name).count();
        sum(m, "myapp.runicorn.requests") >= 3.0
            && n("myapp.runicorn.load_avg_1m") == n("myapp.runicorn.worker_failures")
    });
    for m in &metrics {
        assert!(m.name.starts_with("myapp.runicorn."), "{m:?}");
    }
    let kind_of = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} not received: {metrics:#?}"))
            .kind
            .as_str()
    };
    for gauge in [
        "load_avg_1m",
        "memory_total",
        "master.memory_pss",
        "workers",
        "worker.0.memory_uss",
        "worker.1.requests",
        "workers_busy",
        "workers_idle",
        "requests_in_flight",
        "backlog",
        "service_p50",
        "service_max",
    ] {
        assert_eq!(kind_of(&format!("myapp.runicorn.{gauge}")), "g", "{gauge}");
    }
    for counter in [
        "requests",
        "requests_2xx",
        "requests_4xx",
        "queued_requests",
        "worker_exits",
    ] {
        assert_eq!(
            kind_of(&format!("myapp.runicorn.{counter}")),
            "c",
            "{counter}"
        );
    }
    assert_eq!(sum(&metrics, "myapp.runicorn.requests"), 3.0);
    assert_eq!(sum(&metrics, "myapp.runicorn.requests_2xx"), 2.0);
    assert_eq!(sum(&metrics, "myapp.runicorn.requests_4xx"), 1.0);
    let workers = metrics
        .iter()
        .find(|m| m.name == "myapp.runicorn.workers")
        .unwrap();
    assert_eq!(workers.value, 2.0);

    // The metric lines on stdout are the same samples: the same intervals' counts.
    let counts = |v: Vec<f64>| v.into_iter().filter(|&n| n > 0.0).collect::<Vec<f64>>();
    let statsd_counts = counts(
        metrics
            .iter()
            .filter(|m| m.name == "myapp.runicorn.requests")
            .map(|m| m.value)
            .collect(),
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line_counts = counts(
            s.out_lines()
                .iter()
                .filter_map(|l| l.split(" count#requests=").nth(1))
                .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
                .collect(),
        );
        if line_counts.iter().sum::<f64>() >= 3.0 {
            assert_eq!(line_counts, statsd_counts);
            break;
        }
        if Instant::now() >= deadline {
            s.fail("the metric lines never counted the 3 requests");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dogstatsd_tags_go_on_every_line() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let host = sock.local_addr().unwrap().to_string();
    let s = Server::start(&[
        "--workers",
        "1",
        "--statsd-host",
        &host,
        "--dogstatsd-tags",
        "env:test,canary",
        "--metrics-interval",
        "1",
    ]);
    s.wait_log(&["worker ready"], 1);
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 65536];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| s.fail(&format!("no datagram: {e}")));
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    for line in text.split('\n') {
        assert!(line.starts_with("runicorn."), "{line}");
        assert!(line.ends_with("|#env:test,canary"), "{line}");
    }
}

#[test]
fn serving_goes_on_when_nobody_listens_for_statsd() {
    // A port nobody listens on: the kernel answers with ICMP port unreachable, and the
    // master's next send fails with ECONNREFUSED.
    let port = {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.local_addr().unwrap().port()
    };
    let host = format!("127.0.0.1:{port}");
    let s = Server::start(&[
        "--workers",
        "1",
        "--statsd-host",
        &host,
        "--metrics-interval",
        "1",
        "--log-level",
        "debug",
    ]);
    s.wait_log(&["worker ready"], 1);
    s.wait_log(&["statsd: datagrams not sent", "refused"], 1);
    for _ in 0..5 {
        assert_eq!(s.get("/").status, 200);
    }
    // The master goes on sampling (and printing) after the refusals.
    let before = s.out_lines().len();
    let deadline = Instant::now() + DEADLINE;
    while s.out_lines().len() <= before + 6 {
        if Instant::now() >= deadline {
            s.fail("the metric lines stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.get("/").status, 200);
}
