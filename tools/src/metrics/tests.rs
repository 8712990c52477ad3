//! `runicorn metrics` on recorded lines: Heroku's own (tests/data/heroku, as published) and
//! runicorn's (tests/data/runicorn, recorded here).

use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;
use runicorn::internals::advice::{DYNO_SIZES, Demand, Limit};

const DOCS: &str = include_str!("../../../tests/data/heroku/docs-example.log");
const QUOTA: &str = include_str!("../../../tests/data/heroku/heroku-logs-quota.log");
const R14_SWAP: &str = include_str!("../../../tests/data/heroku/r14-swap.log");
const R15: &str = include_str!("../../../tests/data/heroku/r15-sigkill.log");
const SYSLOG: &str = include_str!("../../../tests/data/heroku/syslog-viewer.log");
const DRAIN: &str = include_str!("../../../tests/data/heroku/drain.log");
const TWO: &str = include_str!("../../../tests/data/heroku/two-dynos.log");
const OOM: &str = include_str!("../../../tests/data/runicorn/oom-64mb.log");
const IDLE_TABLE: &str = include_str!("../../../tests/data/runicorn/idle-20mb-table.log");

fn track(text: &str) -> Tracker {
    let mut t = Tracker::new(Options::default());
    for line in text.lines() {
        if let Some(rec) = parse_line(line) {
            t.feed(rec);
        }
    }
    t
}

fn summary(text: &str) -> String {
    track(text).summary("test")
}

fn has(s: &str, part: &str) {
    assert!(s.contains(part), "{part:?} missing from:\n{s}");
}

#[test]
fn heroku_docs_example() {
    let t = track(DOCS);
    assert_eq!((t.lines(), t.sets()), (2, 1));
    let s = t.summary("test");
    has(&s, "== test: 1 dyno, 1 sample set, 2 lines\n");
    has(
        &s,
        "web.1  dyno heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456\n",
    );
    has(
        &s,
        "memory     21.00 MB now, peak 21.00 MB, quota unknown; swap 0.00 MB  [platform, 1 sample]",
    );
    has(&s, "load 1m    2.46");
    has(&s, "advice     none yet");
}

#[test]
fn heroku_logs_with_quota() {
    let t = track(QUOTA);
    assert_eq!((t.lines(), t.sets()), (10, 6));
    let s = t.summary("test");
    has(&s, "2016-08-14T14:22:11Z to 2016-08-14T14:26:50Z");
    has(
        &s,
        "memory     62.33 MB now (12 %), peak 62.33 MB (12 %), quota 512.00 MB; swap 0.00 MB  [platform, 6 samples]",
    );
    assert!(t.advice().is_empty());
    let chart = t.chart();
    assert_eq!(chart.x_label, "seconds since 2016-08-14T14:22:11Z");
    let series = &chart.panels[0].series;
    assert_eq!(series.len(), 2, "{series:?}");
    assert_eq!(series[0].name, "web.1");
    assert_eq!(series[0].points.len(), 6);
    assert_eq!(series[0].points[0], (0.0, 62.30));
    let last = series[0].points[5];
    assert!(
        (last.0 - 279.638).abs() < 0.01 && last.1 == 62.33,
        "{last:?}"
    );
    assert_eq!(series[1].name, "web.1 quota 512 MB");
    assert_eq!(chart.panels.len(), 1, "no worker lines, no USS panel");
}

#[test]
fn r14_with_swap() {
    let s = summary(R14_SWAP);
    has(
        &s,
        "memory     621.70 MB now (121 %), peak 621.70 MB (121 %), quota 512.00 MB; swap 140.75 MB",
    );
    has(&s, "over quota last seen at 621 MB (121.4 % of the quota)");
    has(
        &s,
        "errors     R14 (over quota, swapping) 2, R15 (killed) 0",
    );
}

#[test]
fn r15_and_sigkill() {
    let t = track(R15);
    assert_eq!(
        (t.lines(), t.sets()),
        (4, 0),
        "Stopping process is not counted"
    );
    let s = t.summary("test");
    has(&s, "web.1  dyno ?");
    has(&s, "over quota last seen at 1280 MB (250.0 % of the quota)");
    has(&s, "R14 (over quota, swapping) 1, R15 (killed) 1");
}

#[test]
fn syslog_viewer_prefix() {
    let t = track(SYSLOG);
    assert_eq!((t.lines(), t.sets()), (4, 1));
    let s = t.summary("test");
    has(
        &s,
        "memory     1210.76 MB now (236 %), peak 1210.76 MB (236 %), quota 512.00 MB; swap 698.76 MB",
    );
    has(&s, "load 1m    0.92");
    has(&s, "R14 (over quota, swapping) 1");
}

#[test]
fn drain_lines() {
    let t = track(DRAIN);
    // The router line and the Heroku Redis line are not dyno metrics.
    assert_eq!(t.lines(), 3);
    let s = t.summary("test");
    has(&s, "== test: 2 dynos");
    has(&s, "web.1  dyno ?");
    has(&s, "worker.1  dyno ?");
    has(&s, "over quota last seen at 558 MB (109.1 % of the quota)");
}

#[test]
fn two_dynos() {
    let t = track(TWO);
    assert_eq!(t.sets(), 2);
    let s = t.summary("test");
    has(
        &s,
        "resque.1  dyno heroku.19497443.4a3ab97f-1227-4474-aaeb-034788942100",
    );
    has(
        &s,
        "run.7166  dyno heroku.19497443.ce1e5572-af82-4107-9db8-4642cfb7d134",
    );
    has(&s, "memory     122.91 MB now");
    has(&s, "memory     88.32 MB now");
    let chart = t.chart();
    let names: Vec<&str> = chart.panels[0]
        .series
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, vec!["resque.1", "run.7166"]);
}

#[test]
fn runicorn_recording_with_an_oom_kill() {
    let t = track(OOM);
    assert_eq!(t.sets(), 6);
    let s = t.summary("test");
    has(&s, "== test: 1 dyno, 6 sample sets");
    has(&s, "web.1  dyno vm\n");
    has(
        &s,
        "memory     48.89 MB now (76 %), peak 48.89 MB (76 %), quota 64.00 MB; swap 0.00 MB  [runicorn, 6 samples]",
    );
    has(
        &s,
        "master     pid 26659  pss 0.52 MB  uss 0.15 MB  workers 2",
    );
    // Worker 0 was respawned: its new pid, and its peak started again.
    has(
        &s,
        "worker 0   pid 26765  rss 1.55 MB  pss 0.44 MB  uss 0.12 MB (peak 0.12 MB)  requests 0  age 4s",
    );
    has(
        &s,
        "worker 1   pid 26662  rss 49.52 MB  pss 48.42 MB  uss 48.11 MB (peak 48.11 MB)  requests 43198  age 12s",
    );
    has(
        &s,
        "requests   0 in the last interval (0 5xx), 68497 in all (0 5xx)",
    );
    has(&s, "all busy in ");
    has(&s, "workers killed perhaps out of memory 1");
    // 64 MB less 20 %: 51.2 MB; base 0.52 + 0.32 + 0.31 = 1.15 MB of pages, and the
    // master's kernel memory (no page tables in these lines: 0.09 + 0.06 MB estimated);
    // 48.11 MB a worker and as much kernel memory: 1.
    has(
        &s,
        "advice     base 1.30 MB + 48.26 MB a worker (USS 48.11 MB + kernel 0.15 MB: page tables 0.09 MB estimated, other kernel memory 0.06 MB estimated), 20 % headroom",
    );
    // Four parallel 100 ms sleeps on two workers: 4 connections in the backlog, queued
    // 123 ms. The traffic needed more workers than it had: the bound gives the number.
    has(
        &s,
        "traffic: up to 4 connections waiting to be accepted, queue p99 up to 123.527 ms (at most 0 busy at once): it needed more workers than it had, so the bounds give the number",
    );
    has(
        &s,
        "WEB_CONCURRENCY=1 for this dyno's 64 MB (memory: 1 fit)",
    );
    // 17 and 238 before the kernel's share was counted: 0.15 MB more a worker on 48 MB.
    has(
        &s,
        "by dyno size: standard-1x 8 (memory), standard-2x 16 (memory), performance-m 42 (memory), performance-l 237 (memory)",
    );
    assert!(!s.contains("no single number"), "{s}");
    let advice = t.advice();
    assert_eq!(advice.len(), 1);
    let (source, quota, a) = &advice[0];
    assert_eq!(
        (source.as_str(), *quota, a.workers, a.limit, a.range),
        ("web.1", 64.0, 1, Limit::Memory, None)
    );
    let chart = t.chart();
    assert_eq!(chart.x_label, "sample");
    assert_eq!(chart.panels.len(), 2);
    assert_eq!(chart.panels[1].series[0].points.len(), 6);
}

/// The demo with a 20 MiB table built before the fork, idle on a 512 MB dyno for 10 s, then
/// four requests (tests/data/runicorn/README.md). Memory alone once advised 1024 workers on
/// every size (3527 fit in 512 MB at 0.11 MB a worker); the advice now counts each worker's
/// kernel memory, the process limit of each size, and the traffic, which never kept one
/// worker busy: no single number, a range.
#[test]
fn idle_app_with_a_shared_table_gets_a_bounded_range() {
    let t = track(IDLE_TABLE);
    assert_eq!((t.lines(), t.sets()), (42, 7));
    let s = t.summary("test");
    has(
        &s,
        "memory     20.59 MB now (4 %), peak 20.59 MB (4 %), quota 512.00 MB; swap 0.00 MB  [runicorn, 7 samples]",
    );
    has(
        &s,
        "busy       0 busy, 2 idle now; peak 0 busy; all busy in 0 of 7 samples; backlog 0 of 1024",
    );
    // base 7.52 + 7.07 + 7.04 = 21.63 MB of pages (the table, shared, counted once) + the
    // master's 0.09 MB of page tables and 0.06 MB of other kernel memory; a worker: 0.11 MB
    // of USS, 0.09 MB of page tables (measured: sample#memory_pte) and 0.06 MB.
    has(
        &s,
        "advice     base 21.78 MB + 0.26 MB a worker (USS 0.11 MB + kernel 0.15 MB: page tables 0.09 MB measured, other kernel memory 0.06 MB estimated), 20 % headroom",
    );
    // The four requests queued up to 46 ms: curl's start-up after `date`, not a wait for a
    // worker (under 100 ms), and no worker was ever seen busy.
    has(
        &s,
        "traffic: at most 0 workers busy at once in 7 samples, never all, no connection waiting, queue p99 at most 46.419 ms: 2 workers serve it",
    );
    has(
        &s,
        "no single number for this dyno's 512 MB (standard-1x, 256 processes): traffic never kept more than 0 workers busy: any count >= 2 serves it; the process limit would allow up to 230 (memory up to 1477)",
    );
    has(
        &s,
        "by dyno size: standard-1x 2..230 (processes), standard-2x 2..460 (processes), performance-m 2..1024 (max), performance-l 2..1024 (max)",
    );
    assert!(!s.contains("WEB_CONCURRENCY="), "no number to set:\n{s}");
    let advice = t.advice();
    let (source, quota, a) = &advice[0];
    assert_eq!((source.as_str(), *quota), ("web.1", 512.0));
    assert_eq!(
        (a.workers, a.range, a.limit),
        (2, Some((2, 230)), Limit::Processes)
    );
    assert_eq!(
        a.demand,
        Demand::Served {
            busy_max: 0,
            needs: 2,
            samples: 7
        }
    );
    // Never above the process limit of the dyno size, whichever the size.
    let by_size = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("by dyno size: "))
        .unwrap();
    for (entry, size) in by_size.split(", ").zip(DYNO_SIZES) {
        let range = entry.split(' ').nth(1).unwrap();
        let (_, high) = range.split_once("..").unwrap();
        let high: usize = high.parse().unwrap();
        assert!(high < size.process_limit.unwrap(), "{entry}");
    }
    // --cpus 2: said why it changes nothing (no worker was busy to measure).
    let mut t = Tracker::new(Options {
        cpus: Some(2.0),
        ..Options::default()
    });
    for line in IDLE_TABLE.lines() {
        if let Some(rec) = parse_line(line) {
            t.feed(rec);
        }
    }
    has(
        &t.summary("test"),
        "cpu: 2 CPUs, but no worker was busy long enough to measure the share of time on CPU: the CPU count does not bound the advice",
    );
}

#[test]
fn flags() {
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_flags(&args)
    };
    let Ok(Parsed::Run(s)) = run(&[
        "in.log",
        "--chart",
        "m.svg",
        "--quota=standard-2x",
        "--headroom",
        "10",
        "--cpus",
        "2",
        "--final",
    ]) else {
        panic!()
    };
    assert_eq!(s.input.as_deref(), Some(Path::new("in.log")));
    assert_eq!(s.chart.as_deref(), Some(Path::new("m.svg")));
    assert_eq!(s.opts.quota_mb, Some(1024.0));
    assert!((s.opts.headroom - 0.1).abs() < 1e-12);
    assert_eq!(s.opts.cpus, Some(2.0));
    assert!(s.final_only);
    let Ok(Parsed::Run(s)) = run(&["-"]) else {
        panic!()
    };
    assert_eq!(s.input, None);
    assert!(matches!(run(&["--help"]), Ok(Parsed::Help)));
    assert!(matches!(run(&["-h"]), Ok(Parsed::Help)));
    let err = |args: &[&str]| match run(args) {
        Err(e) => e,
        Ok(_) => panic!("{args:?} accepted"),
    };
    assert_eq!(
        err(&["--bogus"]),
        format!("unknown flag '--bogus'; accepted: {FLAGS}")
    );
    assert_eq!(
        err(&["--quota", "huge"]),
        "--quota: invalid value 'huge': accepts standard-1x, standard-2x, performance-m, performance-l, or a number of MB"
    );
    assert_eq!(
        err(&["--headroom", "95"]),
        "--headroom: invalid value '95': accepts a percentage from 0 to 90"
    );
    assert_eq!(
        err(&["--cpus", "0"]),
        "--cpus: invalid value '0': accepts a number of CPUs above 0"
    );
    assert_eq!(
        err(&["--chart"]),
        "--chart needs a value; accepts a file path"
    );
    assert_eq!(
        err(&["a", "b"]),
        "unexpected argument 'b': one input FILE at most"
    );
    assert_eq!(
        err(&["--final=yes"]),
        format!("unknown flag '--final'; accepted: {FLAGS}")
    );
}

/// A reader fed by the test, batch by batch: a live stream.
struct Feed(mpsc::Receiver<Vec<u8>>, Vec<u8>);

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(chunk) => self.1 = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

/// Output the test can wait on.
#[derive(Default, Clone)]
struct Shared(Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap().extend_from_slice(buf);
        self.0.1.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.0.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, part: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = self.0.0.lock().unwrap();
        while String::from_utf8_lossy(&out).matches(part).count() < count {
            let now = Instant::now();
            assert!(
                now < deadline,
                "waited for {part:?}:\n{}",
                String::from_utf8_lossy(&out)
            );
            out = self.0.1.wait_timeout(out, deadline - now).unwrap().0;
        }
    }
}

#[test]
fn live_stream_prints_a_block_per_quiet_sample_set_then_the_final_summary() {
    let (tx, rx) = mpsc::channel();
    let out = Shared::default();
    let settings = Settings {
        serve: None,
        input: None,
        chart: None,
        opts: Options::default(),
        final_only: false,
    };
    let mut writer = out.clone();
    let running = std::thread::spawn(move || {
        run(Box::new(Feed(rx, Vec::new())), true, &settings, &mut writer)
    });
    let lines: Vec<&str> = OOM.lines().collect();
    // The first two sample sets arrive together: one block.
    let second_set_end = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("count#requests="))
        .nth(1)
        .unwrap()
        .0;
    tx.send(lines[..=second_set_end].join("\n").into_bytes())
        .unwrap();
    tx.send(b"\n".to_vec()).unwrap();
    out.wait_for("(live)", 1);
    has(&out.text(), "2 sample sets");
    tx.send(lines[second_set_end + 1..].join("\n").into_bytes())
        .unwrap();
    tx.send(b"\n".to_vec()).unwrap();
    out.wait_for("(live)", 2);
    drop(tx);
    let used = running.join().unwrap().unwrap();
    assert_eq!(used, 37);
    let text = out.text();
    assert_eq!(
        text.matches("== runicorn metrics (live)").count(),
        2,
        "{text}"
    );
    has(
        &text,
        "== runicorn metrics (final, unchanged): 1 dyno, 6 sample sets",
    );
}

#[test]
fn a_file_gives_only_the_final_summary_and_a_chart() {
    let dir = std::env::temp_dir().join(format!("runicorn-metrics-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = dir.join("memory.svg");
    let settings = Settings {
        serve: None,
        input: None,
        chart: Some(chart.clone()),
        opts: Options::default(),
        final_only: false,
    };
    let mut out = Vec::new();
    let used = run(Box::new(QUOTA.as_bytes()), false, &settings, &mut out).unwrap();
    let svg = std::fs::read_to_string(&chart);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(used, 10);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("(live)"));
    has(&text, "== runicorn metrics (final): 1 dyno, 6 sample sets");
    let svg = svg.unwrap();
    has(&svg, "<svg");
    has(&svg, ">web.1 quota 512 MB<");
    // Nothing parsable: nothing printed, 0 lines.
    let mut out = Vec::new();
    let settings = Settings {
        serve: None,
        chart: None,
        ..settings
    };
    assert_eq!(
        run(Box::new(&b"hello\nworld\n"[..]), false, &settings, &mut out).unwrap(),
        0
    );
    assert!(out.is_empty());
}

#[test]
fn workers_recycled_over_their_memory_limit_are_counted() {
    let lines = r#"source=web.1 dyno=vm sample#memory_total=40.00MB sample#memory_rss=40.00MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_quota=512.00MB
at=warn msg="worker over its memory limit: replacing it after its request" worker=0 pid=7 measure=uss memory_mb=40.1 limit_mb=38.2
at=warn msg="worker over its memory limit: replacing it after its request" worker=1 pid=8 measure=uss memory_mb=39.0 limit_mb=37.5
"#;
    has(
        &summary(lines),
        "recycled   2 workers over --max-worker-memory",
    );
}
