//! `--metrics-bind`: the master's Prometheus endpoint, scraped by hand, checked by
//! `promtool check metrics`, and scraped by a real Prometheus server queried through its
//! HTTP API; scrapers that stall; a USR2 upgrade in the middle of scraping.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::upgrade::Dir;

/// The endpoint's address, from the master's start line (the last one: a USR2 logs it
/// again).
fn metrics_addr(s: &Server) -> SocketAddr {
    let lines = s.wait_log(&["prometheus: serving /metrics"], 1);
    let line = lines.last().unwrap();
    let addr = line
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line}"));
    addr.parse().unwrap()
}

fn scrape(s: &Server, addr: SocketAddr) -> String {
    let r = request(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    if r.status != 200 {
        s.fail(&format!("scrape: {} {}", r.status, r.head));
    }
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    let length = r.header("content-length");
    let body = String::from_utf8(r.body).unwrap();
    assert_eq!(
        length,
        Some(body.len().to_string()),
        "the whole page, not a part"
    );
    body
}

/// One sample of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a page (the label values here hold no escapes, spaces or commas).
fn parse(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().unwrap_or_else(|_| panic!("value of {l}")),
            }
        })
        .collect()
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
    })
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
        .value
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Scrapes until `done` holds for the page (the last responses are counted just after
/// they are written, so a scrape right after the client read them may miss them).
fn scrape_until(s: &Server, addr: SocketAddr, done: impl Fn(&[Sample]) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let page = scrape(s, addr);
        if done(&parse(&page)) {
            return page;
        }
        if Instant::now() >= deadline {
            s.fail(&format!(
                "the scrape never showed what was awaited:\n{page}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The histogram `name`'s buckets in `le` order: nondecreasing, ending at `+Inf` with
/// `_count`; returns the count.
fn check_histogram(samples: &[Sample], name: &str) -> f64 {
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == format!("{name}_bucket"))
        .map(|s| {
            let le = &s.labels.iter().find(|(k, _)| k == "le").unwrap().1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s.value)
        })
        .collect();
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0), "le order");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
    let (last_le, last) = *buckets.last().unwrap();
    assert!(last_le.is_infinite());
    let count = value(samples, &format!("{name}_count"), &[]);
    assert_eq!(last, count, "+Inf is the count");
    count
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn a_scrape_counts_what_was_served_and_promtool_accepts_it() {
    let promtool = debian_package("promtool", "prometheus");
    let s = Server::start(&[
        "--workers",
        "2",
        "--metrics-bind",
        "127.0.0.1:0",
        "--metrics-interval",
        "1",
    ]);
    s.wait_log(&["workers ready"], 1);
    let addr = metrics_addr(&s);
    // Before any request: every counter is there, at 0.
    let first = parse(&scrape(&s, addr));
    assert_eq!(sum(&first, "runicorn_requests_total"), 0.0);
    assert_eq!(
        value(
            &first,
            "runicorn_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    for path in ["/", "/", "/", "/", "/", "/nope", "/nope"] {
        s.get(path);
    }
    let queued = request(
        s.addr.unwrap(),
        &format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Request-Start: t={}\r\n\r\n",
            now_ms()
        ),
    );
    assert_eq!(queued.status, 200);
    let page = scrape_until(&s, addr, |m| sum(m, "runicorn_requests_total") >= 8.0);
    let m = parse(&page);
    let class = |c: &str| value(&m, "runicorn_requests_total", &[("status_class", c)]);
    assert_eq!(
        [
            class("1xx"),
            class("2xx"),
            class("3xx"),
            class("4xx"),
            class("5xx")
        ],
        [0.0, 6.0, 0.0, 2.0, 0.0]
    );
    assert_eq!(
        check_histogram(&m, "runicorn_request_duration_seconds"),
        8.0
    );
    assert!(value(&m, "runicorn_request_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(check_histogram(&m, "runicorn_request_queue_seconds"), 1.0);

    // Memory per worker, and the master's, read at scrape time.
    let workers = s.workers();
    assert_eq!(workers.len(), 2);
    assert_eq!(value(&m, "runicorn_worker_processes", &[]), 2.0);
    let states: f64 = ["booting", "idle", "busy", "stopping"]
        .iter()
        .map(|st| value(&m, "runicorn_workers", &[("state", st)]))
        .sum();
    assert_eq!(states, 2.0);
    for pid in &workers {
        let pid = pid.to_string();
        for measure in ["rss", "pss", "uss"] {
            let name = format!("runicorn_worker_memory_{measure}_bytes");
            let v = value(&m, &name, &[("pid", &pid)]);
            assert!(v > 0.0, "{name} of {pid}: {v}");
        }
        let slot = &find(&m, "runicorn_worker_memory_rss_bytes", &[("pid", &pid)])
            .unwrap()
            .labels
            .iter()
            .find(|(k, _)| k == "worker")
            .unwrap()
            .1;
        assert!(slot == "0" || slot == "1", "{slot}");
    }
    let served: f64 = sum(&m, "runicorn_worker_requests_total");
    assert_eq!(served, 8.0);
    let master = s.pid.to_string();
    assert!(value(&m, "runicorn_master_memory_rss_bytes", &[("pid", &master)]) > 0.0);
    assert!(value(&m, "runicorn_listen_backlog_limit", &[]) > 0.0);

    // promtool's own parser and linter: not a word.
    let mut check = Command::new(&promtool);
    check.args(["check", "metrics"]);
    let r = run_bounded(check, Some(page.clone().into_bytes()), DEADLINE);
    assert!(r.status.success(), "promtool: {}{}", r.out, r.err);
    assert_eq!(
        (r.out.as_str(), r.err.as_str()),
        ("", ""),
        "promtool said something"
    );

    // The metric lines still count every request: the scrapes took nothing from them.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let counted: u64 = s
            .out_lines()
            .iter()
            .filter_map(|l| l.split(" count#requests=").nth(1))
            .map(|rest| rest.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        if counted >= 8 {
            assert_eq!(counted, 8);
            break;
        }
        if Instant::now() >= deadline {
            s.fail(&format!("the metric lines counted {counted} of 8 requests"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // HEAD, other paths, other methods.
    let head = request(addr, "HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        request(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        404
    );
    let post = request(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow").as_deref(), Some("GET, HEAD"));
}

/// A Prometheus server started by a test: stopped by its pid (TERM, then KILL) and its
/// directory removed on drop, whether the test passed or not.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Prometheus {
    fn start(bin: &str, target: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "runicorn-prometheus-{}-{}",
            std::process::id(),
            target.port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: runicorn\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, dir, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query through the HTTP API: the value of the first result, or `None`
    /// while there is none (or Prometheus is not up yet).
    fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        // HTTP/1.0: the answer is not chunked, and the connection closes after it.
        c.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .ok()?;
        let r = read_response(c);
        if r.status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        assert_eq!(json["status"], "success", "{json}");
        let value = json["data"]["result"].get(0)?["value"][1].as_str()?;
        value.parse().ok()
    }

    /// Queries until the answer satisfies `ok`, for at most 40 s.
    fn await_value(&self, promql: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut last = None;
        loop {
            last = self.query(promql).or(last);
            if let Some(v) = last.filter(|&v| ok(v)) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{promql}: last answer {last:?}; prometheus log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: plain kill(2) to the child we started, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() {
                if Instant::now() >= deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query parameter's value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_prometheus_server_scrapes_the_master() {
    let bin = debian_package("prometheus", "prometheus");
    let s = Server::start(&["--workers", "2", "--metrics-bind", "127.0.0.1:0"]);
    s.wait_log(&["workers ready"], 1);
    let addr = metrics_addr(&s);
    for path in ["/", "/", "/", "/", "/", "/nope", "/nope"] {
        s.get(path);
    }
    scrape_until(&s, addr, |m| sum(m, "runicorn_requests_total") >= 7.0);

    let prom = Prometheus::start(&bin, addr);
    let up = prom.await_value("up{job=\"runicorn\"}", |v| v == 1.0);
    assert_eq!(up, 1.0);
    let total = prom.await_value("sum(runicorn_requests_total)", |v| v >= 7.0);
    assert_eq!(total, 7.0, "what was sent");
    let not_found = prom.await_value("runicorn_requests_total{status_class=\"4xx\"}", |_| true);
    assert_eq!(not_found, 2.0);
    let count = prom.await_value("sum(runicorn_request_duration_seconds_count)", |v| v >= 7.0);
    assert_eq!(count, 7.0);
    let p99 = prom.await_value(
        "histogram_quantile(0.99, sum by (le) (runicorn_request_duration_seconds_bucket))",
        f64::is_finite,
    );
    assert!(p99 > 0.0 && p99 < 1.0, "p99 {p99} s");
    let workers = prom.await_value("count(runicorn_worker_memory_uss_bytes > 0)", |_| true);
    assert_eq!(workers, 2.0);
    eprintln!(
        "prometheus answered: up=1 sum(runicorn_requests_total)={total} 4xx={not_found} \
         sum(runicorn_request_duration_seconds_count)={count} p99={p99}s workers with USS={workers}"
    );
}

#[test]
fn a_stalled_scraper_never_stalls_the_master() {
    let mut s = Server::start(&["--workers", "1", "--metrics-bind", "127.0.0.1:0"]);
    s.wait_log(&["workers ready"], 1);
    let addr = metrics_addr(&s);
    let opened = Instant::now();
    // One says nothing, one stops halfway through its head, one asks and never reads.
    let silent = TcpStream::connect(addr).unwrap();
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    let mut deaf = TcpStream::connect(addr).unwrap();
    deaf.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();

    // Another scrape is answered meanwhile, well before the stalled ones' deadline.
    let asked = Instant::now();
    let page = scrape(&s, addr);
    assert!(page.contains("runicorn_requests_total"));
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "the scrape waited {:?}",
        asked.elapsed()
    );
    // And a signal is acted on.
    s.signal(libc::SIGTTIN);
    s.wait_log(&["one worker more"], 1);
    s.wait_log(&["worker ready", "worker=1"], 1);
    assert_eq!(s.get("/").status, 200);

    // The silent and the halfway ones are closed at their deadline (5 s), not before.
    for (what, mut c) in [("silent", silent), ("partial", partial)] {
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut b = [0u8; 64];
        let got = c.read(&mut b);
        assert!(matches!(got, Ok(0) | Err(_)), "{what}: {got:?}");
        assert!(
            opened.elapsed() >= Duration::from_millis(4500),
            "{what} closed after {:?}",
            opened.elapsed()
        );
    }
    drop(deaf);

    // Past the bound of 8 open connections, one more gets no answer at all.
    let held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = request(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        if r.status == 0 {
            break; // closed unanswered: the 8 are all held
        }
        // The master had not accepted all 8 yet when this one came.
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The clients go away: their slots are freed (once the master has read their EOF),
    // and scrapes are answered again.
    drop(held);
    let deadline = Instant::now() + DEADLINE;
    while request(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").status != 200 {
        assert!(Instant::now() < deadline, "never answered again");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit().success());
}

#[test]
fn scrapes_are_answered_before_and_after_usr2() {
    let dir = Dir::new("prometheus");
    let app = dir.install(BIN, "app");
    let s = Spawn::new(&["--workers", "1", "--metrics-bind", "127.0.0.1:0"])
        .bin(&app)
        .start();
    s.wait_log(&["workers ready", "generation=0"], 1);
    let addr = metrics_addr(&s);
    let before = parse(&scrape(&s, addr));
    let started = value(&before, "runicorn_start_time_seconds", &[]);

    // Scrape back to back through the upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, refused, cut) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let scraper = {
        let (stop, answered, refused, cut) =
            (stop.clone(), answered.clone(), refused.clone(), cut.clone());
        std::thread::spawn(move || {
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match TcpStream::connect(addr) {
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(mut c) => {
                        c.set_read_timeout(Some(DEADLINE)).unwrap();
                        let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
                        let counter = if read_response(c).status == 200 {
                            &answered
                        } else {
                            &cut
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    s.signal(libc::SIGUSR2);
    s.wait_log(&["upgraded:"], 1);
    s.wait_log(&["workers ready", "generation=1"], 1);
    let after_upgrade = answered.load(Ordering::Relaxed);
    let deadline = Instant::now() + DEADLINE;
    while answered.load(Ordering::Relaxed) < after_upgrade + 5 {
        assert!(
            Instant::now() < deadline,
            "no scrape answered after the upgrade"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    scraper.join().unwrap();
    let (answered, refused, cut) = (
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        cut.load(Ordering::Relaxed),
    );
    // The socket crossed the exec: no connection was refused. A scrape in flight at the
    // exec itself loses its connection (those do not cross), one at most here.
    eprintln!("through USR2: {answered} scrapes answered, {refused} refused, {cut} cut");
    assert_eq!(refused, 0, "{answered} answered, {cut} cut");
    assert!(cut <= 1, "{answered} answered, {cut} cut");

    let lines = s.wait_log(&["prometheus: serving /metrics"], 2);
    assert!(lines[0].contains("from=bind"), "{}", lines[0]);
    assert!(lines[1].contains("from=upgrade"), "{}", lines[1]);
    assert_eq!(metrics_addr(&s), addr);
    let after = parse(&scrape(&s, addr));
    assert!(value(&after, "runicorn_start_time_seconds", &[]) > started);
    assert_eq!(value(&after, "runicorn_worker_processes", &[]), 1.0);
    let mut s = s;
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit().success());
}

#[test]
fn worker_exits_are_counted_by_reason() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--max-requests",
        "2",
        "--metrics-bind",
        "127.0.0.1:0",
    ]);
    s.wait_log(&["workers ready"], 1);
    let addr = metrics_addr(&s);
    let exits =
        |m: &[Sample], reason: &str| value(m, "runicorn_worker_exits_total", &[("reason", reason)]);
    // Two requests: the worker reaches its limit, exits by itself, and is replaced.
    assert_eq!(s.get("/").status, 200);
    assert_eq!(s.get("/").status, 200);
    let m = parse(&scrape_until(&s, addr, |m| exits(m, "max_requests") >= 1.0));
    assert_eq!(exits(&m, "max_requests"), 1.0);
    // One more worker, then one fewer: the master stops it.
    s.signal(libc::SIGTTIN);
    s.wait_log(&["one worker more"], 1);
    s.wait_log(&["worker ready"], 3);
    s.signal(libc::SIGTTOU);
    let m = parse(&scrape_until(&s, addr, |m| exits(m, "stopped") >= 1.0));
    assert_eq!(exits(&m, "stopped"), 1.0);
    for reason in ["timeout", "failed", "memory", "exited"] {
        assert_eq!(exits(&m, reason), 0.0, "{reason}");
    }
    assert_eq!(sum(&m, "runicorn_requests_total"), 2.0);
}

#[test]
fn a_bad_metrics_bind_is_one_line_naming_the_setting() {
    for (args, env, named) in [
        (
            &["--metrics-bind", "9394"][..],
            None,
            "metrics_bind (--metrics-bind)",
        ),
        (
            &["--metrics-bind", "metrics.example:9394"],
            None,
            "metrics_bind (--metrics-bind)",
        ),
        (
            &[],
            Some("unix:/run/m.sock"),
            "metrics_bind (RUNICORN_METRICS_BIND)",
        ),
    ] {
        let mut cmd = runicorn(args);
        if let Some(v) = env {
            cmd.env("RUNICORN_METRICS_BIND", v);
        }
        let r = run_bounded(cmd, None, DEADLINE);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.err);
        assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
        assert!(r.err.contains(named), "{}", r.err);
        assert!(
            r.err
                .contains("accepts IP:PORT or [V6]:PORT, such as 127.0.0.1:9394 or [::1]:9394"),
            "{}",
            r.err
        );
    }

    // A good address that is taken: a startup error (exit 1) naming it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut s = Spawn::new(&["--workers", "1", "--metrics-bind", &addr]).start();
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(1));
    s.wait_log(
        &[
            "cannot start",
            &format!("cannot listen on --metrics-bind {addr}"),
        ],
        1,
    );
}
