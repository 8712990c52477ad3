//! The open-loop load generator: requests arrive at `--rate` a second as a Poisson process
//! (exponential gaps, seeded), each one a `GET` on a new connection sent at its scheduled
//! time whatever happened to the earlier ones (`runicorn_tools::load::open`).
//!
//! ```sh
//! cargo build --release -p runicorn-tools --example openloop
//! target/release/examples/openloop --addr 127.0.0.1:8080 --rate 300 --duration 10 \
//!     --path '/service?dist=exp&mean_ms=20'
//! ```
//!
//! It prints, on stdout, the counts per outcome (`ok` for a 2xx; `http_error` for any
//! other status, with the statuses; `connect`, `reset` for a connection closed or reset
//! before a complete response, `timeout`, `malformed`, `not_sent` past `--max-in-flight`),
//! the latency percentiles of the 2xx requests (from each request's scheduled time to the
//! last byte of its response), the schedule lag (how late requests went out), and the same
//! per `--slice` seconds of scheduled time.
//!
//! Options: `--addr HOST:PORT` (required), `--path P` (`/service?dist=exp&mean_ms=20`),
//! `--rate R` (requests a second, 100), `--duration SECS` (arrivals for this long, 10),
//! `--requests N` (at most N arrivals), `--seed N` (1), `--timeout SECS` (per request, 30),
//! `--max-in-flight N` (4096), `--header 'Name: value'` (repeatable), `--slice SECS` (1),
//! `--no-slices` (totals only), `--json FILE` (the summary and the slices as JSON),
//! `--records FILE` (every request as CSV: `scheduled_us,lag_us,outcome,status,latency_us`
//! after a `# start_unix_us=N` line, N the wall-clock time of offset 0).
//!
//! SIGINT or SIGTERM ends the arrivals early; the requests in flight then finish (each
//! within its timeout) and the report is printed as usual. Exit code: 0 when every request
//! got a 2xx, 1 when one did not, 2 on a usage error.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use runicorn_tools::load::Latencies;
use runicorn_tools::load::open::{self, OpenReport, OpenSpec, Outcome, Summary};

#[derive(Debug)]
struct Options {
    spec: OpenSpec,
    slice: Duration,
    slices: bool,
    json: Option<String>,
    records: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut spec = OpenSpec::new(
        "127.0.0.1:0".parse().expect("static"),
        "/service?dist=exp&mean_ms=20",
    );
    let mut o = Options {
        spec: spec.clone(),
        slice: Duration::from_secs(1),
        slices: true,
        json: None,
        records: None,
    };
    let mut addr: Option<SocketAddr> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--no-slices" => {
                o.slices = false;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or(format!("{arg} needs a value"))?;
        let positive = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or(format!("{arg}: not a positive number: {v:?}"))
        };
        let integer = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{arg}: not an integer: {v:?}"))
        };
        match arg.as_str() {
            "--addr" => {
                addr = Some(
                    v.parse()
                        .map_err(|_| format!("--addr: bad address {v:?}"))?,
                )
            }
            "--path" => spec.path = v.clone(),
            "--rate" => spec.rate = positive(v)?,
            "--duration" => spec.duration = Duration::from_secs_f64(positive(v)?),
            "--requests" => spec.max_requests = Some(integer(v)?),
            "--seed" => spec.seed = integer(v)?,
            "--timeout" => spec.request_timeout = Duration::from_secs_f64(positive(v)?),
            "--max-in-flight" => spec.max_in_flight = integer(v)?.max(1) as usize,
            "--header" => {
                let (name, value) = v
                    .split_once(':')
                    .ok_or(format!("--header: not 'Name: value': {v:?}"))?;
                spec.headers
                    .push((name.trim().to_string(), value.trim().to_string()));
            }
            "--slice" => o.slice = Duration::from_secs_f64(positive(v)?),
            "--json" => o.json = Some(v.clone()),
            "--records" => o.records = Some(v.clone()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    spec.addr = addr.ok_or("--addr HOST:PORT is required")?;
    o.spec = spec;
    Ok(o)
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `p50 p95 p99 max` of a histogram, in ms, for the table.
fn percentiles(l: &Latencies) -> [f64; 4] {
    [ms(l.p50()), ms(l.p95()), ms(l.p99()), ms(l.max())]
}

/// The report as text: totals, then one line per slice.
fn text(spec: &OpenSpec, report: &OpenReport, slice: Duration, slices: bool) -> String {
    let all = report.summary();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "openloop: GET {} to {}, Poisson arrivals at {} req/s (seed {}), {:.1} s",
        spec.path,
        spec.addr,
        spec.rate,
        spec.seed,
        report.elapsed.as_secs_f64()
    );
    let counts: Vec<String> = Outcome::KINDS
        .iter()
        .zip(all.counts)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(out, "sent {}: {}", all.sent(), counts.join(", "));
    let statuses = statuses(report);
    if !statuses.is_empty() {
        let s: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(out, "http_error statuses: {}", s.join(", "));
    }
    let [p50, p95, p99, max] = percentiles(&all.latency);
    let _ = writeln!(
        out,
        "latency (2xx, from the scheduled time): p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    let _ = writeln!(
        out,
        "schedule lag: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; at most {} requests in flight",
        ms(all.lag.p50()),
        ms(all.lag.p99()),
        ms(all.lag.max()),
        report.max_in_flight
    );
    if slices {
        let _ = writeln!(
            out,
            "{:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "slice_s", "sent", "ok", "failed", "p50_ms", "p95_ms", "p99_ms", "max_ms", "lag_ms"
        );
        for s in report.slices(slice) {
            let [p50, p95, p99, max] = percentiles(&s.summary.latency);
            let _ = writeln!(
                out,
                "{:>8.1} {:>6} {:>6} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.2}",
                s.start.as_secs_f64(),
                s.summary.sent(),
                s.summary.ok(),
                s.summary.failed(),
                p50,
                p95,
                p99,
                max,
                ms(s.summary.lag.max())
            );
        }
    }
    out
}

/// The statuses of the `http_error` responses, with their counts.
fn statuses(report: &OpenReport) -> Vec<(u16, u64)> {
    let mut by = std::collections::BTreeMap::new();
    for r in &report.records {
        if let Outcome::HttpError(s) = r.outcome {
            *by.entry(s).or_insert(0u64) += 1;
        }
    }
    by.into_iter().collect()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"ok":N,...,"latency_ms":{...},"lag_ms":{...}}` for one summary.
fn json_summary(s: &Summary) -> String {
    let counts: Vec<String> = Outcome::KINDS
        .iter()
        .zip(s.counts)
        .map(|(k, n)| format!("\"{k}\":{n}"))
        .collect();
    let [p50, p95, p99, max] = percentiles(&s.latency);
    format!(
        "{{\"sent\":{},\"failed\":{},\"counts\":{{{}}},\"latency_ms\":{{\"p50\":{p50:.3},\"p95\":{p95:.3},\"p99\":{p99:.3},\"max\":{max:.3},\"mean\":{:.3}}},\"lag_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}}}}",
        s.sent(),
        s.failed(),
        counts.join(","),
        ms(s.latency.mean()),
        ms(s.lag.p50()),
        ms(s.lag.p99()),
        ms(s.lag.max()),
    )
}

/// The whole report as one JSON object.
fn json(spec: &OpenSpec, report: &OpenReport, slice: Duration) -> String {
    let statuses: Vec<String> = statuses(report)
        .iter()
        .map(|(s, n)| format!("\"{s}\":{n}"))
        .collect();
    let slices: Vec<String> = report
        .slices(slice)
        .iter()
        .map(|s| {
            format!(
                "{{\"start_s\":{:.3},\"summary\":{}}}",
                s.start.as_secs_f64(),
                json_summary(&s.summary)
            )
        })
        .collect();
    format!(
        "{{\"addr\":{},\"path\":{},\"rate\":{},\"seed\":{},\"start_unix_us\":{},\"elapsed_s\":{:.3},\"max_in_flight\":{},\"statuses\":{{{}}},\"total\":{},\"slice_s\":{:.3},\"slices\":[{}]}}\n",
        json_string(&spec.addr.to_string()),
        json_string(&spec.path),
        spec.rate,
        spec.seed,
        report.start_unix_us,
        report.elapsed.as_secs_f64(),
        report.max_in_flight,
        statuses.join(","),
        json_summary(&report.summary()),
        slice.as_secs_f64(),
        slices.join(",")
    )
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM end the arrivals (the handler only sets a flag, which is
/// async-signal-safe); no SA_RESTART, so the event loop's wait is interrupted at once.
fn stop_on_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &action) }.expect("sigaction");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("openloop: {e}");
            }
            eprintln!(
                "usage: openloop --addr HOST:PORT [--path P] [--rate R] [--duration SECS] \
                 [--requests N] [--seed N] [--timeout SECS] [--max-in-flight N] \
                 [--header 'Name: value'] [--slice SECS] [--no-slices] [--json FILE] \
                 [--records FILE]"
            );
            std::process::exit(2);
        }
    };
    stop_on_signals();
    let report = match open::run(&o.spec, &STOP) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("openloop: {e}");
            std::process::exit(2);
        }
    };
    let write = |path: &str, what: String| {
        if let Err(e) = std::fs::write(path, what) {
            eprintln!("openloop: cannot write {path}: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &o.json {
        write(path, json(&o.spec, &report, o.slice));
    }
    if let Some(path) = &o.records {
        write(path, report.records_csv());
    }
    print!("{}", text(&o.spec, &report, o.slice, o.slices));
    if report.summary().failed() > 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_tools::load::open::Record;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        let o = parse_args(&args(
            "--addr 127.0.0.1:9 --rate 250.5 --duration 3 --seed 7 --requests 10 \
             --header X-A:1 --slice 0.5 --no-slices --json j --records r",
        ))
        .unwrap();
        assert_eq!(o.spec.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(o.spec.rate, 250.5);
        assert_eq!(o.spec.duration, Duration::from_secs(3));
        assert_eq!((o.spec.seed, o.spec.max_requests), (7, Some(10)));
        assert_eq!(o.spec.headers, [("X-A".to_string(), "1".to_string())]);
        assert_eq!(o.slice, Duration::from_millis(500));
        assert!(!o.slices);
        assert_eq!(
            (o.json.as_deref(), o.records.as_deref()),
            (Some("j"), Some("r"))
        );
        assert_eq!(o.spec.path, "/service?dist=exp&mean_ms=20");
        assert!(parse_args(&args("--rate 5")).is_err(), "no address");
        assert!(parse_args(&args("--addr 127.0.0.1:9 --rate 0")).is_err());
        assert!(parse_args(&args("--addr 127.0.0.1:9 --rate")).is_err());
        assert!(parse_args(&args("--addr 127.0.0.1:9 --header nocolon")).is_err());
        assert!(parse_args(&args("--addr 127.0.0.1:9 --bogus 1")).is_err());
    }

    #[test]
    fn the_reports() {
        let rec = |ms: u64, outcome, lat: u64| Record {
            scheduled: Duration::from_millis(ms),
            lag: Duration::from_micros(100),
            outcome,
            latency: Duration::from_millis(lat),
        };
        let report = OpenReport {
            start_unix_us: 5,
            records: vec![
                rec(100, Outcome::Ok(200), 10),
                rec(1200, Outcome::HttpError(503), 2),
                rec(1300, Outcome::Ok(200), 30),
            ],
            max_in_flight: 2,
            elapsed: Duration::from_secs(2),
        };
        let spec = OpenSpec::new("127.0.0.1:9".parse().unwrap(), "/a\"b");
        let t = text(&spec, &report, Duration::from_secs(1), true);
        assert!(t.contains("sent 3: ok 2, http_error 1, connect 0"), "{t}");
        assert!(t.contains("http_error statuses: 503: 1"), "{t}");
        assert!(t.contains("max 30.0 ms"), "{t}");
        assert_eq!(t.lines().count(), 4 + 1 + 1 + 2, "{t}");
        let j = json(&spec, &report, Duration::from_secs(1));
        assert!(
            j.starts_with("{\"addr\":\"127.0.0.1:9\",\"path\":\"/a\\\"b\""),
            "{j}"
        );
        assert!(j.contains("\"statuses\":{\"503\":1}"), "{j}");
        assert!(j.contains("\"total\":{\"sent\":3,\"failed\":1,"), "{j}");
        assert_eq!(j.matches("\"start_s\"").count(), 2);
    }
}
