//! `runicorn metrics --serve`: the live dashboard, loaded in a real browser (Debian's
//! headless Chromium, driven through chromedriver's WebDriver protocol) on recorded lines:
//! runicorn's own and Heroku's, in the format `heroku logs` prints.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, DEADLINE, debian_package, free_port};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");

/// 2026-12-04T10:00:00Z: where the recorded lines are placed on the time axis.
const BASE: f64 = 1_796_378_400.0;

fn iso(t: f64) -> String {
    let secs = t as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = runicorn::internals::date::civil_from_days(days);
    let micros = ((t - secs as f64) * 1e6).round() as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The time stamp at the start of a `heroku logs` line, as seconds since the epoch.
fn stamp(line: &str) -> Option<f64> {
    let iso = line.split_whitespace().next()?;
    let date = iso.get(..10)?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let hms: Vec<f64> = iso
        .get(11..)?
        .split(['+', 'Z'])
        .next()?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let days = runicorn::internals::date::days_from_civil(y, m as u32, d as u32);
    Some(days as f64 * 86_400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2])
}

/// runicorn's recorded lines (no time stamps: the server prints none) as `heroku logs`
/// shows an app's output on web.1: a sample set every 20 s.
fn runicorn_as_heroku(file: &str, source: &str, start: f64) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{DATA}/runicorn/{file}")).unwrap();
    let mut t = start;
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.contains('=') && !l.starts_with("dyno.sh"))
    {
        out.push(format!(
            "{} app[{source}]: {}",
            iso(t),
            line.replace("source=web.1", &format!("source={source}"))
        ));
        if line.contains("count#requests=") {
            t += 20.0;
        }
    }
    out
}

/// Heroku's recorded lines, moved to another dyno and onto the same time axis.
fn heroku_moved(file: &str, source: &str, start: f64) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{DATA}/heroku/{file}")).unwrap();
    let first = text.lines().find_map(stamp).unwrap();
    text.lines()
        .map(|line| {
            let t = stamp(line).unwrap();
            let rest = line.split_once(' ').unwrap().1;
            format!(
                "{} {}",
                iso(start + (t - first)),
                rest.replace("web.1", source)
            )
        })
        .collect()
}

/// A process group started by the test, killed (the whole group: chromedriver starts
/// Chromium) when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.0.id() as i32;
        // SAFETY: signalling the process group of a child this test started.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange on loopback: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read by Content-Length.
    let r = crate::support::read_one(&mut s);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The string `"value"` of a WebDriver answer (the scripts below return strings).
fn value_string(answer: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(answer).expect("a JSON answer");
    v["value"].as_str().unwrap_or_default().to_string()
}

fn base64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A browser session through chromedriver.
struct Browser {
    driver: SocketAddr,
    session: String,
    _group: Group,
    _profile: std::path::PathBuf,
}

impl Browser {
    fn start() -> Browser {
        debian_package("chromium", "chromium");
        debian_package("chromedriver", "chromium-driver");
        let port = free_port();
        let profile =
            std::env::temp_dir().join(format!("runicorn-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let group = Group(child);
        let driver: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(driver).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flags that keep Chromium from reaching out (no network here but loopback).
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1900",
            &format!("--user-data-dir={}", profile.display()),
        ]
        .iter()
        .map(|a| json_string(a))
        .collect::<Vec<_>>()
        .join(",");
        let caps = format!(
            r#"{{"capabilities":{{"alwaysMatch":{{"browserName":"chrome","goog:chromeOptions":{{"binary":"/usr/bin/chromium","args":[{args}]}}}}}}}}"#
        );
        let (status, answer) = http(driver, "POST", "/session", &caps);
        assert_eq!(status, 200, "no browser session: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver,
            session,
            _group: group,
            _profile: profile,
        }
    }

    fn go(&self, url: &str) {
        let (status, answer) = http(
            self.driver,
            "POST",
            &format!("/session/{}/url", self.session),
            &format!(r#"{{"url":{}}}"#, json_string(url)),
        );
        assert_eq!(status, 200, "{answer}");
    }

    /// Runs `script` (a function body returning a string) in the page.
    fn eval(&self, script: &str) -> String {
        let (status, answer) = http(
            self.driver,
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            &format!(r#"{{"script":{},"args":[]}}"#, json_string(script)),
        );
        assert_eq!(status, 200, "{answer}");
        value_string(&answer)
    }

    /// Evaluates `script` until `done` holds for its answer; the last answer.
    fn wait_for(&self, script: &str, done: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.eval(script);
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: the page says {v:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        let (status, answer) = http(
            self.driver,
            "GET",
            &format!("/session/{}/screenshot", self.session),
            "",
        );
        assert_eq!(status, 200);
        base64(&value_string(&answer))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            "",
        );
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

/// The dashboard on a pipe the test keeps open, as `heroku logs --tail | runicorn metrics
/// --serve` has it; killed (with its reader) when dropped.
struct Dashboard {
    addr: SocketAddr,
    input: Option<ChildStdin>,
    _group: Group,
}

impl Dashboard {
    fn start(lines: &[String]) -> Dashboard {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(BIN)
            .args(["metrics", "--serve", &addr.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let input = child.stdin.take();
        let mut d = Dashboard {
            addr,
            input,
            _group: Group(child),
        };
        d.append(lines);
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the dashboard did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn append(&mut self, lines: &[String]) {
        let input = self.input.as_mut().unwrap();
        for l in lines {
            writeln!(input, "{l}").unwrap();
        }
        input.flush().unwrap();
    }
}

const CHARTS: [&str; 8] = [
    "memory", "swap", "paging", "load", "requests", "service", "queue", "workers",
];

/// What the page shows: each chart's points, the advised count, the dynos in the filter,
/// and a marker that a reload would lose.
const LOOK: &str = r#"
const charts = [...document.querySelectorAll('.chart')].map(c => c.id + '=' + c.dataset.points).join(' ');
const count = document.querySelector('#advice .count');
const dynos = [...document.querySelectorAll('#dyno option')].map(o => o.value).filter(v => v).join(',');
const marks = [...new Set([...document.querySelectorAll('g.mark')].map(g => g.dataset.what))].sort().join(',');
return charts + ' | advice=' + (count ? count.dataset.workers : '') + ' | dynos=' + dynos + ' | marks=' + marks + ' | kept=' + (window.kept || '');
"#;

fn field<'a>(look: &'a str, name: &str) -> &'a str {
    look.split(" | ")
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or("")
}

fn points(look: &str, chart: &str) -> usize {
    look.split(" | ")
        .next()
        .unwrap()
        .split(' ')
        .find_map(|f| f.strip_prefix(&format!("{chart}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_dashboard_draws_recorded_lines_in_a_browser_and_takes_new_ones_without_a_reload() {
    // web.1: runicorn's own lines (per-worker memory, requests, queue time, a worker
    // killed out of memory); web.2: Heroku's (dyno memory against the quota, load, swap
    // and R14 errors).
    let mut lines = runicorn_as_heroku("oom-64mb.log", "web.1", BASE);
    lines.extend(heroku_moved("heroku-logs-quota.log", "web.2", BASE));
    lines.extend(heroku_moved("r14-swap.log", "web.2", BASE + 60.0));
    let mut dashboard = Dashboard::start(&lines);
    let url = format!("http://{}/", dashboard.addr);

    let browser = Browser::start();
    browser.go(&url);
    let look = browser.wait_for(
        LOOK,
        |v| CHARTS.iter().all(|c| points(v, c) > 0) && !field(v, "advice").is_empty(),
        "every chart has points and the advice box a count",
    );
    // The advice is the terminal summary's: the same lines through `runicorn metrics`.
    let summary = crate::support::run_bounded(
        crate::support::runicorn(&["metrics", "--final"]),
        Some(lines.join("\n").into_bytes()),
        DEADLINE,
    );
    let advised = summary
        .out
        .lines()
        .find_map(|l| l.trim().strip_prefix("WEB_CONCURRENCY="))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no advice in the summary: {}", summary.out));
    assert_eq!(field(&look, "advice"), advised, "{look}");
    assert_eq!(field(&look, "dynos"), "web.1,web.2", "{look}");
    for mark in ["R14", "oom"] {
        assert!(field(&look, "marks").contains(mark), "{mark}: {look}");
    }

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // A line appended to the input appears without a reload: a new dyno, and its R15.
    browser.eval("window.kept = 'yes'; return '';");
    let later = |s: f64| iso(BASE + 400.0 + s);
    dashboard.append(&[
        format!("{} heroku[web.3]: source=web.3 dyno=heroku.1.c sample#memory_total=700.00MB sample#memory_rss=512.00MB sample#memory_cache=0.00MB sample#memory_swap=188.00MB sample#memory_pgpgin=10pages sample#memory_pgpgout=5pages sample#memory_quota=512.00MB", later(0.0)),
        format!("{} heroku[web.3]: Error R15 (Memory quota vastly exceeded)", later(1.0)),
    ]);
    let look = browser.wait_for(
        LOOK,
        |v| field(v, "dynos") == "web.1,web.2,web.3" && field(v, "marks").contains("R15"),
        "the appended lines appear",
    );
    assert_eq!(
        field(&look, "kept"),
        "yes",
        "the page was not reloaded: {look}"
    );

    // The filter: one dyno, Heroku's lines only: its total, no per-process stack.
    let one = browser.eval(
        "const s = document.getElementById('dyno'); s.value = 'web.2'; s.dispatchEvent(new Event('change')); \
         return document.getElementById('memory').dataset.points + ' ' + document.querySelector('#memory .legend').textContent;",
    );
    assert!(
        one.contains("dyno total") && !one.contains("worker"),
        "{one}"
    );
    assert!(
        one.split(' ').next().unwrap().parse::<usize>().unwrap() > 0,
        "{one}"
    );
    // runicorn's dyno: memory stacked by process, and the last 15 minutes only.
    let stacked = browser.eval(
        "const s = document.getElementById('dyno'); s.value = 'web.1'; s.dispatchEvent(new Event('change')); \
         document.querySelector('#ranges button[data-range=\"900\"]').click(); \
         return document.querySelectorAll('#memory polygon').length + ' ' + document.querySelector('#memory .legend').textContent;",
    );
    assert!(
        stacked.contains("master") && stacked.contains("worker 0") && stacked.contains("worker 1"),
        "{stacked}"
    );
    assert!(
        stacked.split(' ').next().unwrap().parse::<usize>().unwrap() >= 3,
        "{stacked}"
    );
    let png = browser.screenshot();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-web.1.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());
}
