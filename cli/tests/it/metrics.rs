use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::*;

type Line = HashMap<String, String>;

/// Parses lines with Python's `logfmt` package (a real logfmt parser, not ours), installing
/// it with pip when it is missing. Panics if a line does not parse to exactly one record.
fn logfmt(lines: &[String]) -> Vec<Line> {
    python_module("logfmt", "logfmt==0.4");
    let script = r#"
import io, json, sys, logfmt
out = []
for line in sys.stdin.read().split("\n"):
    if line:
        records = list(logfmt.parse(io.StringIO(line)))
        assert len(records) == 1, line
        out.append(records[0])
print(json.dumps(out))
"#;
    let mut python = Command::new("python3");
    python.args(["-c", script]);
    let r = run_bounded(python, Some(lines.join("\n").into_bytes()), DEADLINE);
    assert!(
        r.status.success(),
        "logfmt could not parse:\n{}\n--- python ---\n{}",
        lines.join("\n"),
        r.err
    );
    parse_json_records(&r.out)
}

/// The JSON printed above is a list of flat string maps; read it without a JSON crate.
fn parse_json_records(json: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let inner = json
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim();
    if inner.is_empty() {
        return out;
    }
    for obj in inner.split("}, {") {
        let obj = obj.trim().trim_start_matches('{').trim_end_matches('}');
        let mut map = Line::new();
        for pair in obj.split("\", \"") {
            let pair = pair.trim_matches('"');
            if let Some((k, v)) = pair.split_once("\": \"") {
                map.insert(k.to_string(), v.to_string());
            }
        }
        out.push(map);
    }
    out
}

fn mb(line: &Line, key: &str) -> f64 {
    let v = line
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from {line:?}"));
    v.strip_suffix("MB")
        .unwrap_or_else(|| panic!("{key}={v} is not in MB"))
        .parse()
        .unwrap()
}

fn millis(line: &Line, key: &str) -> f64 {
    let v = line
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from {line:?}"));
    v.strip_suffix("ms")
        .unwrap_or_else(|| panic!("{key}={v} is not in ms"))
        .parse()
        .unwrap()
}

fn metrics_server(workers: &str) -> Server {
    let s = Server::start(&["--workers", workers, "--metrics-interval", "1"]);
    s.wait_log(&["worker ready"], workers.parse().unwrap());
    s
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

const LOAD_KEYS: &[&str] = &[
    "sample#load_avg_1m",
    "sample#load_avg_5m",
    "sample#load_avg_15m",
];
const MEMORY_KEYS: &[&str] = &[
    "sample#memory_total",
    "sample#memory_rss",
    "sample#memory_cache",
    "sample#memory_swap",
];
const PROCESS_KEYS: &[&str] = &[
    "sample#memory_rss",
    "sample#memory_pss",
    "sample#memory_uss",
    "sample#memory_swap",
    "sample#memory_pte",
    "sample#threads",
];
const REQUEST_KEYS: &[&str] = &[
    "count#requests",
    "count#requests_1xx",
    "count#requests_2xx",
    "count#requests_3xx",
    "count#requests_4xx",
    "count#requests_5xx",
    "sample#service_p50",
    "sample#service_p95",
    "sample#service_p99",
    "sample#service_max",
    "count#queued_requests",
    "sample#queue_p50",
    "sample#queue_p95",
    "sample#queue_p99",
    "sample#queue_max",
    "sample#backlog",
    "sample#backlog_limit",
    "sample#workers_busy",
    "sample#workers_idle",
    "sample#requests_in_flight",
];

#[test]
fn every_line_parses_and_has_every_documented_key() {
    let s = metrics_server("2");
    let start = format!("{}", now_ms());
    let r = request(
        s.addr.unwrap(),
        &format!("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Start: {start}\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
    s.wait_out(&["count#requests=1 "], 1);
    let lines = logfmt(&s.out_lines());
    assert!(lines.len() >= 6, "{lines:?}");
    for l in &lines {
        assert_eq!(l["source"], "web.1");
        assert!(!l["dyno"].is_empty());
    }
    let has = |l: &Line, keys: &[&str]| keys.iter().all(|k| l.contains_key(*k));
    assert!(lines.iter().any(|l| has(l, LOAD_KEYS)), "no load line");
    assert!(
        lines
            .iter()
            .any(|l| has(l, MEMORY_KEYS) && l.contains_key("sample#memory_total")),
        "no memory line"
    );
    let master: Vec<&Line> = lines
        .iter()
        .filter(|l| l.get("process").is_some_and(|p| p == "master"))
        .collect();
    assert!(
        !master.is_empty()
            && master
                .iter()
                .all(|l| has(l, PROCESS_KEYS) && l.contains_key("sample#workers"))
    );
    let workers: Vec<&Line> = lines.iter().filter(|l| l.contains_key("worker")).collect();
    assert!(workers.len() >= 2);
    for w in &workers {
        assert!(
            has(w, PROCESS_KEYS)
                && w.contains_key("sample#requests")
                && w.contains_key("sample#age"),
            "{w:?}"
        );
        let (rss, pss, uss) = (
            mb(w, "sample#memory_rss"),
            mb(w, "sample#memory_pss"),
            mb(w, "sample#memory_uss"),
        );
        assert!(
            rss >= pss && pss >= uss && uss > 0.0,
            "RSS >= PSS >= USS > 0 fails: {w:?}"
        );
        assert!(w["sample#age"].ends_with('s'));
        // Every process has page tables; the demo's workers run one thread.
        assert!(mb(w, "sample#memory_pte") > 0.0, "{w:?}");
        assert_eq!(w["sample#threads"], "1", "{w:?}");
    }
    let req = lines
        .iter()
        .find(|l| l.get("count#requests").is_some_and(|n| n == "1"))
        .unwrap();
    assert!(has(req, REQUEST_KEYS), "{req:?}");
    assert_eq!(req["count#requests_2xx"], "1");
    // Every key printed is listed in docs/metrics.md.
    let doc = std::fs::read_to_string(format!("{}/docs/metrics.md", crate::support::ROOT)).unwrap();
    for key in lines.iter().flat_map(|l| l.keys()) {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/metrics.md does not list `{key}`"
        );
    }
}

#[test]
fn a_worker_that_allocates_shows_it_within_two_intervals() {
    let s = metrics_server("1");
    let pid = s.workers()[0].to_string();
    let before = s.wait_out(&["worker=0", &format!("pid={pid}")], 1);
    let before = &logfmt(&before[..1])[0];
    assert_eq!(s.get("/alloc?mb=64").status, 200);
    let seen = s.out_lines().len();
    // Two intervals: at most two more worker lines after the one that may be in flight.
    let deadline = Instant::now() + DEADLINE;
    let after = loop {
        let lines = s.out_lines();
        let mine: Vec<String> = lines[seen..]
            .iter()
            .filter(|l| l.contains(&format!("pid={pid} ")))
            .cloned()
            .collect();
        if mine.len() >= 3 {
            break logfmt(&mine);
        }
        assert!(
            Instant::now() < deadline,
            "no worker lines after the allocation"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let grown = |l: &Line, key: &str| mb(l, key) - mb(before, key);
    assert!(
        after[..2].iter().any(|l| grown(l, "sample#memory_rss") >= 60.0 && grown(l, "sample#memory_uss") >= 60.0),
        "RSS/USS did not grow by 60 MB within two intervals: before {before:?} after {after:?}"
    );
}

#[test]
fn request_lines_count_every_request_once() {
    let s = metrics_server("2");
    let n = 25;
    for i in 0..n {
        let path = if i % 5 == 0 { "/nope" } else { "/" };
        s.get(path);
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lines = logfmt(
            &s.out_lines()
                .into_iter()
                .filter(|l| l.contains("count#requests="))
                .collect::<Vec<_>>(),
        );
        let sum = |k: &str| {
            lines
                .iter()
                .map(|l| l[k].parse::<u64>().unwrap())
                .sum::<u64>()
        };
        if sum("count#requests") >= n {
            assert_eq!(sum("count#requests"), n);
            assert_eq!(sum("count#requests_2xx"), 20);
            assert_eq!(sum("count#requests_4xx"), 5);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counted {} of {n}",
            sum("count#requests")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn service_and_queue_times_are_measured() {
    let s = metrics_server("2");
    let addr = s.addr.unwrap();
    // Five 200 ms requests, each said to have reached the router 50 ms before it was sent.
    let threads: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(move || {
                let start = now_ms() - 50;
                let raw = format!(
                    "GET /sleep?ms=200 HTTP/1.1\r\nHost: t\r\nX-Request-Start: {start}\r\n\r\n"
                );
                request(addr, &raw).status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let deadline = Instant::now() + DEADLINE;
    let line = loop {
        let lines = logfmt(
            &s.out_lines()
                .into_iter()
                .filter(|l| l.contains("count#requests="))
                .collect::<Vec<_>>(),
        );
        if let Some(l) = lines.into_iter().find(|l| l["count#requests"] != "0") {
            break l;
        }
        assert!(Instant::now() < deadline, "no request line");
        std::thread::sleep(Duration::from_millis(100));
    };
    // All five may fall in one interval or be split over two: check the first that has any.
    let p50 = millis(&line, "sample#service_p50");
    assert!(
        (190.0..=300.0).contains(&p50),
        "service p50 {p50} ms for 200 ms requests: {line:?}"
    );
    assert!(millis(&line, "sample#service_max") >= 200.0);
    let q50 = millis(&line, "sample#queue_p50");
    assert!(
        q50 >= 50.0,
        "queue p50 {q50} ms for a request 50 ms old: {line:?}"
    );
    assert_eq!(line["count#queued_requests"], line["count#requests"]);
}

#[test]
fn metrics_are_off_with_interval_zero() {
    let mut s = Server::start(&[
        "--workers",
        "1",
        "--metrics-interval",
        "0",
        "--log-level",
        "debug",
    ]);
    s.wait_log(&["worker ready"], 1);
    // Keep the server alive for more than a second (a would-be interval) with a request,
    // then stop it: it must have printed nothing on stdout in all that time.
    let addr = s.addr.unwrap();
    let t =
        std::thread::spawn(move || request(addr, "GET /sleep?ms=1200 HTTP/1.1\r\nHost: t\r\n\r\n"));
    s.wait_log(&["request started"], 1);
    s.signal(libc::SIGTERM);
    assert_eq!(t.join().unwrap().status, 200);
    assert_eq!(s.wait_exit().code(), Some(0));
    assert!(s.out_lines().is_empty(), "{:?}", s.out_lines());
}

/// A child memory cgroup with a quota, as a dyno is; removed on drop.
struct DynoCgroup {
    dir: std::path::PathBuf,
    v2: bool,
}

impl DynoCgroup {
    /// Creates one under this process's memory cgroup (v1, or v2), or says why it cannot.
    fn create(mib: u64) -> Result<DynoCgroup, String> {
        let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let v1 = text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrl.split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        });
        let name = format!("runicorn-it-{}", std::process::id());
        let bytes = (mib << 20).to_string();
        let (dir, limit_file, v2) = match v1 {
            Some(path) => (
                std::path::PathBuf::from(format!(
                    "/sys/fs/cgroup/memory{}",
                    path.trim_end_matches('/')
                ))
                .join(&name),
                "memory.limit_in_bytes",
                false,
            ),
            None => {
                let path = text
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or("no memory cgroup")?;
                let root =
                    if std::path::Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
                        "/sys/fs/cgroup/unified"
                    } else {
                        "/sys/fs/cgroup"
                    };
                (
                    std::path::PathBuf::from(format!("{root}{}", path.trim_end_matches('/')))
                        .join(&name),
                    "memory.max",
                    true,
                )
            }
        };
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cg = DynoCgroup { dir, v2 };
        std::fs::write(cg.dir.join(limit_file), &bytes)
            .map_err(|e| format!("cannot set {limit_file} in {}: {e}", cg.dir.display()))?;
        Ok(cg)
    }

    fn stat(&self) -> HashMap<String, u64> {
        std::fs::read_to_string(self.dir.join("memory.stat"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for DynoCgroup {
    fn drop(&mut self) {
        // The server was killed before this runs; wait for the kernel to empty the cgroup.
        let deadline = Instant::now() + DEADLINE;
        while std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .is_ok_and(|p| !p.trim().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}

#[test]
fn inside_a_512_mb_memory_cgroup_the_dyno_lines_are_the_cgroups() {
    let cg = match DynoCgroup::create(512) {
        Ok(cg) => cg,
        Err(why) => {
            eprintln!(
                "not checked here: that the dyno lines are a 512 MB memory cgroup's own \
                 figures; this machine does not let the test make a memory cgroup ({why})"
            );
            return;
        }
    };
    let s = Spawn::new(&["--workers", "2", "--metrics-interval", "1"])
        .env("DYNO", "web.7")
        .in_cgroup(cg.dir.join("cgroup.procs"))
        .start();
    s.wait_log(&["worker ready"], 2);
    s.wait_log(&["dyno memory from the server's cgroup"], 1);
    assert_eq!(s.get("/alloc?mb=16").status, 200);
    // A memory line sampled after the allocation, and the cgroup's own figures next to it.
    let seen = s.out_lines().len();
    let deadline = Instant::now() + DEADLINE;
    let line = loop {
        if let Some(l) = s.out_lines()[seen..]
            .iter()
            .find(|l| l.contains("sample#memory_total"))
        {
            break logfmt(std::slice::from_ref(l)).remove(0);
        }
        assert!(Instant::now() < deadline, "no memory line");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stat = cg.stat();
    assert_eq!(line["source"], "web.7");
    assert_eq!(line["sample#memory_quota"], "512.00MB");
    let (rss_key, cache_key) = if cg.v2 {
        ("anon", "file")
    } else {
        ("total_rss", "total_cache")
    };
    let mib = |k: &str| stat[k] as f64 / f64::from(1 << 20);
    // The server is idle between the sample and this read: the figures agree closely.
    assert!(
        (mb(&line, "sample#memory_rss") - mib(rss_key)).abs() < 2.0,
        "{line:?} vs {stat:?}"
    );
    assert!(
        (mb(&line, "sample#memory_cache") - mib(cache_key)).abs() < 2.0,
        "{line:?} vs {stat:?}"
    );
    assert!(
        mb(&line, "sample#memory_rss") >= 16.0,
        "the 16 MiB allocation is in the cgroup: {line:?}"
    );
    if !cg.v2 {
        assert!(
            line.contains_key("sample#memory_pgpgin") && line.contains_key("sample#memory_pgpgout")
        );
    }
    drop(s);
}
