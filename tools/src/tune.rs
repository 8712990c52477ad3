//! `runicorn tune`: runs an app (the demo when none is named) on loopback at a series of worker
//! counts, puts a bounded closed-loop load on it at each, and measures throughput, latency
//! percentiles, memory (PSS of the master and workers) and the workers' CPU time. It prints
//! a table, the advised `WEB_CONCURRENCY` for each common dyno size and for the quota it runs
//! under, and writes an SVG chart of throughput, p99 and memory against workers.
//!
//! `--dyno SIZE` runs each trial in a child memory cgroup with that dyno's quota (where the
//! system allows it), so that out-of-memory kills happen as on the dyno. The load client is
//! [`crate::load`]; the advice is the library's, shared with `--workers auto`; the method is `docs/tuning.md`.
//!
//! This file holds the flags, the loop over trials and the pure renderings (table,
//! recommendations, chart); `tune/trial.rs` runs one trial, `tune/cgroup.rs` makes the dyno.

mod cgroup;
mod trial;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use trial::{Phase, Trial, TrialSpec};

use super::advice::{self, Advice, Cpu, DYNO_SIZES, DynoSize, Measured, Platform};
use super::chart::{self, Chart, Panel, Series};
use super::cli::{self, Arg, Args, Parsed, plural};
use super::metrics::write_atomically;
use crate::load::Failure;
use cgroup::DynoCgroup;

/// The demo app's request for tuning: 5 ms of CPU work (`/work?ms=5`), a CPU-bound
/// request, the kind whose best worker count depends on the CPUs. Only the demo gets it: a
/// named app is tuned on the route given with `--path`.
pub const DEMO_PATH: &str = "/work?ms=5";
/// A throughput within this share of the best counts as reaching it.
const NEAR_PEAK: f64 = 0.95;

const FLAGS: &str = "--path TARGET, --method METHOD, --header 'NAME: VALUE', --body TEXT, --body-file PATH, --concurrency N, --duration SECS, \
--warmup SECS, --min-workers N, --max-workers N, --step N, --workers LIST, --dyno SIZE, \
--chart PATH, --headroom PCT, --cpus N, --timeout SECS, --help, -- APP [ARGS]";

fn cpus_here() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn help(program: &str, own_path: Option<&str>) -> String {
    let cpus = cpus_here();
    let own = match own_path {
        Some(p) => format!("this binary, on {p} unless --path says otherwise"),
        None => "this binary".to_string(),
    };
    format!(
        "\
Usage: {program} tune [OPTIONS] --path TARGET -- APP [ARGS]
       {program} tune [OPTIONS] [-- ARGS]

Runs an app built on runicorn (APP, or {own}) on 127.0.0.1 at a
series of worker counts, drives a bounded closed-loop load against it at each, and measures
throughput, latency p50/p95/p99, memory (PSS of the master and workers, the largest worker
USS) and the workers' CPU time. Prints a table and the advised WEB_CONCURRENCY for each
common dyno size, and writes an SVG chart of throughput, p99 and memory against workers.

The app gets --bind, --workers, --metrics-interval 0 and --graceful-timeout 5, then ARGS.
Every trial must answer 2xx or 3xx: a trial whose requests fail gives no advice.

Options:
  --path TARGET      the request target to load (required with APP)
  --method METHOD    the request method (default GET)
  --header 'N: V'    a request header field; repeat for more
  --body TEXT        the request body (sent with Content-Length)
  --body-file PATH   the request body, read from a file
  --concurrency N    client connections, each with one request at a time
                     (default: twice the largest worker count)
  --duration SECS    measured load per worker count (default 5)
  --warmup SECS      unmeasured load before it (default 0.5)
  --min-workers N    smallest worker count (default 1)
  --max-workers N    largest worker count (default {})
  --step N           step between worker counts (default 1)
  --workers LIST     exact worker counts, e.g. 1,2,4,8 (instead of min/max/step)
  --dyno SIZE        run each trial in a child memory cgroup with the dyno's quota:
                     standard-1x (512 MB), standard-2x (1 GB), performance-m (2.5 GB),
                     performance-l (14 GB), or a number of MB
  --chart PATH       where to write the chart (default tune.svg)
  --headroom PCT     share of the quota kept free in the advice (default {:.0})
  --cpus N           CPUs to advise for (default {cpus}, this machine's)
  --timeout SECS     bound on each request (default 10)
  -h, --help         this text

Exit codes: 0 done, 1 a trial failed (the app did not start or stop), 2 bad flag.
",
        default_max_workers(cpus),
        advice::DEFAULT_HEADROOM * 100.0
    )
}

fn default_max_workers(cpus: usize) -> usize {
    (2 * cpus).max(4)
}

/// What the flags asked for.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    /// The app binary named after `--`; `None` is this binary.
    app: Option<PathBuf>,
    app_args: Vec<String>,
    /// The request target loaded (`--path`, or this binary's own route).
    path: String,
    /// The request's method, extra header fields and body.
    method: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    concurrency: Option<usize>,
    duration: Duration,
    warmup: Duration,
    counts: Vec<usize>,
    dyno: Option<DynoSize>,
    chart: PathBuf,
    headroom: f64,
    cpus: f64,
    request_timeout: Duration,
}

/// The worker counts from `min` to `max` by `step`, or the list.
fn worker_counts(
    min: usize,
    max: usize,
    step: usize,
    list: Option<Vec<usize>>,
) -> Result<Vec<usize>, String> {
    if let Some(mut list) = list {
        list.sort_unstable();
        list.dedup();
        return Ok(list);
    }
    if min > max {
        return Err(format!("--min-workers {min} is above --max-workers {max}"));
    }
    let mut counts: Vec<usize> = (min..=max).step_by(step).collect();
    if counts.last() != Some(&max) {
        counts.push(max);
    }
    Ok(counts)
}

/// An HTTP token character (RFC 9110 section 5.6.2), for methods and field names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `--body` and `--body-file` exclude each other.
fn body_given(seen: &mut Option<&'static str>, flag: &'static str) -> Result<(), String> {
    match seen.replace(flag) {
        Some(other) if other != flag => Err(format!("{flag} and {other} exclude each other")),
        _ => Ok(()),
    }
}

/// Reads the flags. `own_path` is the route this binary is tuned on when no `--path` is
/// given (the demo's); `None` makes `--path` required for this binary too.
fn parse_flags(
    args: &[String],
    cpus: usize,
    own_path: Option<&str>,
) -> Result<Parsed<Box<Settings>>, String> {
    let max_workers = runicorn::config::MAX_WORKERS;
    let count_what = format!("a number of workers from 1 to {max_workers}");
    let is_count = |n: &usize| (1..=max_workers).contains(n);
    let secs = |what: &str, v: &str, min: f64| -> Result<Duration, String> {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= min && *s <= 3600.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| cli::invalid(what, v, "a number of seconds up to 3600"))
    };
    let mut s = Settings {
        app: None,
        app_args: Vec::new(),
        path: String::new(),
        method: "GET".to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        concurrency: None,
        duration: Duration::from_secs(5),
        warmup: Duration::from_millis(500),
        counts: Vec::new(),
        dyno: None,
        chart: PathBuf::from("tune.svg"),
        headroom: advice::DEFAULT_HEADROOM,
        cpus: cpus as f64,
        request_timeout: Duration::from_secs(10),
    };
    let (mut min, mut max, mut step, mut list) = (1, default_max_workers(cpus), 1, None);
    let mut path = None;
    let mut body_flag = None;
    let mut it = Args::new(args);
    while let Some(arg) = it.next() {
        match arg {
            Arg::Flag("--help", _) => return Ok(Parsed::Help),
            Arg::Flag("--path", v) => {
                let what = "a request target starting with '/', without spaces";
                let p = it.value("--path", v, what)?;
                if !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c.is_control())
                {
                    return Err(cli::invalid("--path", p, what));
                }
                path = Some(p.to_string());
            }
            Arg::Flag("--method", v) => {
                let what = "an HTTP method token such as GET, POST or PUT";
                let m = it.value("--method", v, what)?;
                if m.is_empty() || !m.bytes().all(is_tchar) {
                    return Err(cli::invalid("--method", m, what));
                }
                s.method = m.to_string();
            }
            Arg::Flag("--header", v) => {
                let what = "NAME: VALUE, a field name token and a value without control characters";
                let h = it.value("--header", v, what)?;
                let parsed = h.split_once(':').and_then(|(n, val)| {
                    let (n, val) = (n.trim(), val.trim());
                    (!n.is_empty()
                        && n.bytes().all(is_tchar)
                        && !val.bytes().any(|b| b.is_ascii_control() && b != b'\t'))
                    .then(|| (n.to_string(), val.to_string()))
                });
                s.headers
                    .push(parsed.ok_or_else(|| cli::invalid("--header", h, what))?);
            }
            Arg::Flag("--body", v) => {
                body_given(&mut body_flag, "--body")?;
                s.body = it
                    .value("--body", v, "the body's text")?
                    .as_bytes()
                    .to_vec();
            }
            Arg::Flag("--body-file", v) => {
                body_given(&mut body_flag, "--body-file")?;
                let path = it.value("--body-file", v, "a file path")?;
                s.body = std::fs::read(path)
                    .map_err(|e| format!("--body-file: cannot read '{path}': {e}"))?;
            }
            Arg::Flag("--concurrency", v) => {
                s.concurrency = Some(it.parsed(
                    "--concurrency",
                    v,
                    "a number from 1 to 1024",
                    |n: &usize| (1..=1024).contains(n),
                )?);
            }
            Arg::Flag("--duration", v) => {
                let v = it.value("--duration", v, "a number of seconds")?;
                s.duration = secs("--duration", v, 0.1)?;
            }
            Arg::Flag("--warmup", v) => {
                let v = it.value("--warmup", v, "a number of seconds")?;
                s.warmup = secs("--warmup", v, 0.0)?;
            }
            Arg::Flag("--timeout", v) => {
                let v = it.value("--timeout", v, "a number of seconds")?;
                s.request_timeout = secs("--timeout", v, 0.1)?;
            }
            Arg::Flag("--min-workers", v) => {
                min = it.parsed("--min-workers", v, &count_what, is_count)?
            }
            Arg::Flag("--max-workers", v) => {
                max = it.parsed("--max-workers", v, &count_what, is_count)?
            }
            Arg::Flag("--step", v) => {
                step = it.parsed("--step", v, "a number from 1 up", |n: &usize| *n >= 1)?
            }
            Arg::Flag("--workers", v) => {
                let what =
                    format!("a comma-separated list of worker counts from 1 to {max_workers}");
                let text = it.value("--workers", v, &what)?;
                let counts: Option<Vec<usize>> = text
                    .split(',')
                    .map(|n| n.trim().parse().ok().filter(is_count))
                    .collect();
                list = Some(counts.ok_or_else(|| cli::invalid("--workers", text, &what))?);
            }
            Arg::Flag("--dyno", v) => {
                let what =
                    "standard-1x, standard-2x, performance-m, performance-l, or a number of MB";
                let value = it.value("--dyno", v, what)?;
                s.dyno = Some(
                    advice::dyno_size(value).ok_or_else(|| cli::invalid("--dyno", value, what))?,
                );
            }
            Arg::Flag("--chart", v) => s.chart = it.value("--chart", v, "a file path")?.into(),
            Arg::Flag("--headroom", v) => {
                let pct: f64 =
                    it.parsed("--headroom", v, "a percentage from 0 to 90", |p: &f64| {
                        (0.0..=90.0).contains(p)
                    })?;
                s.headroom = pct / 100.0;
            }
            Arg::Flag("--cpus", v) => {
                s.cpus = it.parsed("--cpus", v, "a number of CPUs above 0", |c: &f64| {
                    c.is_finite() && *c > 0.0
                })?;
            }
            Arg::Flag(flag, _) => return Err(cli::unknown(flag, FLAGS)),
            Arg::Positional("--") => {
                let mut rest: Vec<String> = it
                    .by_ref()
                    .map(|a| match a {
                        Arg::Flag(f, Some(v)) => format!("{f}={v}"),
                        Arg::Flag(f, None) | Arg::Positional(f) => f.to_string(),
                    })
                    .collect();
                // `-- APP ARGS` names the app; `-- --flag ...` passes flags to this binary.
                if rest.first().is_some_and(|a| !a.starts_with('-')) {
                    s.app = Some(rest.remove(0).into());
                }
                s.app_args = rest;
            }
            Arg::Positional(p) => {
                return Err(format!(
                    "unexpected argument '{p}' (app arguments go after --)"
                ));
            }
        }
    }
    s.counts = worker_counts(min, max, step, list)?;
    s.path = match (path, &s.app, own_path) {
        (Some(p), _, _) => p,
        (None, None, Some(p)) => p.to_string(),
        (None, _, _) => {
            return Err(
                "--path is required: the request target to load, e.g. --path / \
                        (an app gets no default route)"
                    .to_string(),
            );
        }
    };
    Ok(Parsed::Run(Box::new(s)))
}

/// Runs `tune` with `args` (after the word `tune`); returns the exit code. `own_path` is
/// the route to load when the app is this binary and no `--path` is given (the demo's
/// [`DEMO_PATH`]); `None` requires `--path`.
pub fn main(program: &str, args: &[String], own_path: Option<&str>) -> i32 {
    let s = match cli::settings_or_exit(
        program,
        "tune",
        parse_flags(args, cpus_here(), own_path),
        || help(program, own_path),
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let app = match s.app.clone().map_or_else(std::env::current_exe, Ok) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{program} tune: cannot find this binary: {e}");
            return 1;
        }
    };
    match tune(program, &s, &app) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{program} tune: {e}");
            1
        }
    }
}

/// The memory limit the trials run under, and what it is.
#[derive(Debug, Clone, PartialEq)]
struct Quota {
    mb: f64,
    what: String,
}

fn tune(program: &str, s: &Settings, app: &Path) -> Result<(), String> {
    let started = Instant::now();
    let concurrency = s
        .concurrency
        .unwrap_or_else(|| 2 * s.counts.iter().copied().max().unwrap_or(1));
    let mut use_cgroup = s.dyno.is_some();
    let mut quota = match s.dyno {
        Some(d) => Some(Quota {
            mb: d.quota_mb,
            what: format!("--dyno {} (a child memory cgroup)", d.name),
        }),
        None => cgroup::own_quota_bytes().map(|b| Quota {
            mb: b as f64 / f64::from(1 << 20),
            what: "this process's cgroup limit".into(),
        }),
    };
    let header = format!(
        "{program} tune: {} {} with {concurrency} connections, {:.1} s a trial after {:.1} s of warm-up, workers {}; app {}",
        s.method,
        s.path,
        s.duration.as_secs_f64(),
        s.warmup.as_secs_f64(),
        list(&s.counts),
        app.display()
    );
    println!("{header}");
    let bar = ProgressBar::new(s.counts.len(), s.duration);
    let mut trials = Vec::new();
    for (i, &workers) in s.counts.iter().enumerate() {
        let mut dyno = None;
        if use_cgroup {
            let d = s.dyno.expect("use_cgroup implies a dyno");
            let name = format!("runicorn-tune-{}-{workers}", std::process::id());
            match DynoCgroup::create(&name, (d.quota_mb * f64::from(1 << 20)) as u64) {
                Ok(cg) => dyno = Some(cg),
                Err(e) => {
                    bar.clear();
                    eprintln!(
                        "{program} tune: no dyno cgroup ({e}); the trials run without a memory limit"
                    );
                    use_cgroup = false;
                    if let Some(q) = &mut quota {
                        q.what = format!("--dyno {} (not enforced: no cgroup)", d.name);
                    }
                }
            }
        }
        let spec = TrialSpec {
            app,
            app_args: &s.app_args,
            workers,
            method: &s.method,
            path: &s.path,
            headers: &s.headers,
            body: &s.body,
            concurrency,
            duration: s.duration,
            warmup: s.warmup,
            request_timeout: s.request_timeout,
            cgroup: dyno.as_ref(),
        };
        let result = trial::run(&spec, &|phase| bar.draw(i, workers, phase));
        let removed = dyno.as_ref().map(|cg| cg.remove(Duration::from_secs(5)));
        bar.clear();
        let t = result?;
        if let Some(Err(e)) = removed {
            eprintln!("{program} tune: {e}");
        }
        bar.done(&t);
        if let Some(why) = unusable(&t, &s.method, &s.path) {
            return Err(why);
        }
        trials.push(t);
    }

    print!("{}", render_table(&trials, use_cgroup));
    let on_cpu = estimate_on_cpu(&trials, concurrency, s.cpus);
    print!(
        "{}",
        render_advice(
            &trials,
            concurrency,
            s.headroom,
            s.cpus,
            on_cpu,
            quota.as_ref()
        )
    );
    let title = format!(
        "runicorn tune: {} {}, {concurrency} connections, {:.1} s per count",
        s.method,
        s.path,
        s.duration.as_secs_f64()
    );
    let svg = chart::render(&tune_chart(&trials, &title, quota.as_ref()));
    match write_atomically(&s.chart, &svg) {
        Ok(()) => println!(
            "Chart: {} (SVG; no PNG, which would need an image encoder). {:.0} s in all.",
            s.chart.display(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => return Err(format!("cannot write the chart: {e}")),
    }
    Ok(())
}

/// Why a trial cannot support advice, if it cannot: no request succeeded, or the app
/// answered 4xx (the request is wrong for this app: its route, method or body, not the load).
/// A server that failed some requests under load (5xx, resets, timeouts, workers killed out
/// of memory) still gives figures; those failures are in the table.
fn unusable(t: &Trial, method: &str, path: &str) -> Option<String> {
    let of = |f: Failure| t.failures.get(&f).copied().unwrap_or(0);
    let failures = t
        .failures
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| format!("{n} {}", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let route = format!("{method} {path}");
    if of(Failure::Status4xx) > 0 {
        return Some(format!(
            "{} of {} requests to {route} were answered 4xx at {} worker{} ({failures}): the app \
             has no such route, or refuses this method or body; give the route with --path \
             (and --method, --header, --body); no advice from these trials",
            of(Failure::Status4xx),
            t.sent,
            t.workers,
            plural(t.workers)
        ));
    }
    if t.ok == 0 {
        return Some(format!(
            "no request to {route} succeeded at {} worker{} ({}); no advice from these trials",
            t.workers,
            plural(t.workers),
            if failures.is_empty() {
                "none was answered".to_string()
            } else {
                failures
            }
        ));
    }
    None
}

fn list(counts: &[usize]) -> String {
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The progress bar on stderr when it is a terminal; otherwise one line per trial.
struct ProgressBar {
    trials: usize,
    duration: Duration,
    tty: bool,
}

impl ProgressBar {
    fn new(trials: usize, duration: Duration) -> ProgressBar {
        ProgressBar {
            trials,
            duration,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn draw(&self, index: usize, workers: usize, phase: Phase) {
        if !self.tty {
            return;
        }
        let line = progress_line(index, self.trials, workers, phase, self.duration);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    fn clear(&self) {
        if self.tty {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }

    fn done(&self, t: &Trial) {
        if !self.tty {
            eprintln!(
                "tune: {} worker{}: {:.1} req/s, p99 {}, {:.2} MB",
                t.workers,
                plural(t.workers),
                t.req_per_sec,
                ms(t.p99_ms),
                t.total_pss_mb
            );
        }
    }
}

/// `[########--------]  3/6  3 workers  measuring 1.2/2.0 s  812 ok`.
fn progress_line(
    index: usize,
    trials: usize,
    workers: usize,
    phase: Phase,
    duration: Duration,
) -> String {
    const WIDTH: usize = 24;
    let within = match phase {
        Phase::Starting | Phase::WarmingUp => 0.0,
        Phase::Measuring { elapsed, .. } => {
            (elapsed.as_secs_f64() / duration.as_secs_f64().max(1e-9)).min(1.0)
        }
        Phase::Stopping => 1.0,
    };
    let done = ((index as f64 + within) / trials.max(1) as f64 * WIDTH as f64) as usize;
    let what = match phase {
        Phase::Starting => "starting".to_string(),
        Phase::WarmingUp => "warming up".to_string(),
        Phase::Measuring { elapsed, ok } => format!(
            "measuring {:.1}/{:.1} s  {ok} ok",
            elapsed.as_secs_f64().min(duration.as_secs_f64()),
            duration.as_secs_f64()
        ),
        Phase::Stopping => "stopping".to_string(),
    };
    format!(
        "[{}{}] {}/{trials}  {workers} worker{}  {what}",
        "#".repeat(done.min(WIDTH)),
        "-".repeat(WIDTH - done.min(WIDTH)),
        index + 1,
        plural(workers)
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2} ms"))
}

/// The table: one row per worker count.
fn render_table(trials: &[Trial], cgroup: bool) -> String {
    let mut s = String::new();
    let dyno_col = if cgroup { "  dyno MB" } else { "" };
    let _ = writeln!(
        s,
        "\nworkers     req/s   p50 ms   p95 ms   p99 ms  errors   PSS MB   USS MB  CPUs{dyno_col}  notes"
    );
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for t in trials {
        let mut notes = Vec::new();
        if t.oom_kills > 0 {
            notes.push(format!("{} killed, perhaps out of memory", t.oom_kills));
        }
        if t.respawned > 0 {
            notes.push(format!("{} respawned", t.respawned));
        }
        for (cause, n) in &t.failures {
            notes.push(format!("{cause} {n}"));
        }
        let dyno = if cgroup {
            format!("  {:>7}", cell(t.cgroup_peak_mb))
        } else {
            String::new()
        };
        let row = format!(
            "{:>7} {:>9.1} {:>8} {:>8} {:>8} {:>7} {:>8.2} {:>8.2} {:>5}{dyno}  {}",
            t.workers,
            t.req_per_sec,
            cell(t.p50_ms),
            cell(t.p95_ms),
            cell(t.p99_ms),
            t.errors(),
            t.total_pss_mb,
            t.worker_uss_mb,
            t.cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
            notes.join("; ")
        );
        let _ = writeln!(s, "{}", row.trim_end());
    }
    let _ = writeln!(
        s,
        "(req/s: answered below 400 per second; p50-p99: client-side latency; errors: failed requests; \
PSS MB: master and workers together, the peak; USS MB: the largest worker's own memory; \
CPUs: the workers' CPU time over the trial{})",
        if cgroup {
            "; dyno MB: the cgroup's peak"
        } else {
            ""
        }
    );
    s
}

/// The share of a request's service time spent on a CPU: the workers' CPU time over the
/// time they were busy, from the trials where clients kept every worker busy and the
/// workers did not outnumber the CPUs (more would wait for a CPU, which is not I/O). The
/// largest such figure: the load client shares the CPUs, which can only lower it.
fn estimate_on_cpu(trials: &[Trial], concurrency: usize, cpus: f64) -> Option<f64> {
    trials
        .iter()
        .filter(|t| t.workers <= concurrency && t.workers as f64 <= cpus.max(1.0))
        .filter_map(|t| Some(t.cpu_cores? / t.workers as f64))
        .filter(|f| f.is_finite())
        .fold(None, |best: Option<f64>, f| {
            Some(best.map_or(f, |b| b.max(f)))
        })
        .map(|f| f.clamp(0.0, 1.0))
}

/// The trial the advice's memory figures come from: the one with the most workers that
/// had any (its shared pages and per-worker USS are the most representative).
fn memory_trial(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| !t.worker_memory.is_empty())
        .max_by_key(|t| t.workers)
}

/// The advice from trial `t`'s memory for `platform`. No traffic figures: tune's load is
/// its own, and says nothing of how many workers production traffic keeps busy.
fn advise_for(t: &Trial, platform: Platform, headroom: f64, cpu: Cpu) -> Advice {
    let measured = Measured {
        master: t.master,
        workers: &t.worker_memory,
        dyno_total_mb: t.cgroup_mb,
    };
    advice::advise(platform, headroom, &measured, Some(cpu), None)
}

/// The recommendation lines: per dyno size, for the quota of this run, and what the
/// throughput curve showed here.
fn render_advice(
    trials: &[Trial],
    concurrency: usize,
    headroom: f64,
    cpus: f64,
    on_cpu: Option<f64>,
    quota: Option<&Quota>,
) -> String {
    let mut s = String::new();
    let Some(t) = memory_trial(trials) else {
        let _ = writeln!(s, "\nNo advice: no worker's memory could be read.");
        return s;
    };
    let cpu = Cpu { cpus, on_cpu };
    let any = advise_for(t, Platform::for_quota(512.0), headroom, cpu);
    let cpu_text = match on_cpu {
        Some(_) => any.cpu_note().unwrap_or_default(),
        None => format!("{cpus} CPUs; CPU share not measured, so the CPUs do not bound it"),
    };
    let tables = if any.page_tables_measured {
        "measured"
    } else {
        "estimated"
    };
    let _ = writeln!(
        s,
        "\nAdvised WEB_CONCURRENCY (memory from the {}-worker trial: {:.2} MB + {:.2} MB a worker, {:.0} % headroom; {cpu_text}):",
        t.workers,
        any.base_mb,
        any.per_worker_mb,
        headroom * 100.0
    );
    let _ = writeln!(
        s,
        "  (a worker: USS {:.2} MB + kernel {:.2} MB: page tables {:.2} MB {tables}, other kernel memory {:.2} MB estimated)",
        any.uss_mb,
        any.kernel_mb,
        any.page_tables_mb,
        any.kernel_mb - any.page_tables_mb
    );
    for d in DYNO_SIZES {
        let a = advise_for(t, Platform::from(d), headroom, cpu);
        let _ = writeln!(
            s,
            "  {:<15} {:>6.0} MB  WEB_CONCURRENCY={:<5} ({})",
            d.name,
            d.quota_mb,
            a.workers,
            a.reason()
        );
    }
    match quota {
        Some(q) => {
            let a = advise_for(t, Platform::for_quota(q.mb), headroom, cpu);
            let _ = writeln!(
                s,
                "  {:<15} {:>6.0} MB  WEB_CONCURRENCY={:<5} ({}; {})",
                "this run",
                q.mb,
                a.workers,
                a.reason(),
                q.what
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  this run: no memory limit (no --dyno, no cgroup limit); by CPU {}",
                any.by_cpu.map_or("no limit".into(), |n| n.to_string())
            );
        }
    }
    let _ = writeln!(
        s,
        "  (the CPU figure assumes {cpus} CPUs; pass --cpus N for a dyno with another count)"
    );
    let _ = writeln!(
        s,
        "  (bounds only: tune's load is its own, so it cannot say how many workers your traffic keeps busy; `runicorn metrics` on the production lines can)"
    );
    if let Some(best) = trials
        .iter()
        .max_by(|a, b| a.req_per_sec.total_cmp(&b.req_per_sec))
    {
        let knee = trials
            .iter()
            .find(|t| t.req_per_sec >= NEAR_PEAK * best.req_per_sec)
            .unwrap_or(best);
        let _ = writeln!(
            s,
            "Measured here: the most throughput was {:.1} req/s at {} workers; {} workers reach {:.0} % of it (p99 {}).",
            best.req_per_sec,
            best.workers,
            knee.workers,
            NEAR_PEAK * 100.0,
            ms(knee.p99_ms)
        );
        let largest = trials.iter().map(|t| t.workers).max();
        if trials.len() > 1 && Some(knee.workers) == largest {
            if knee.workers >= concurrency {
                let _ = writeln!(
                    s,
                    "  With {concurrency} connections no more than {concurrency} workers are busy at once: raise --concurrency to look further."
                );
            } else {
                let _ = writeln!(
                    s,
                    "  Throughput was still rising at {} workers: try more (--max-workers).",
                    knee.workers
                );
            }
        }
    }
    if let Some(note) = limits_note(trials, concurrency, cpus_here() as f64) {
        let _ = writeln!(s, "{note}");
    }
    if any.by_cpu.is_none() && on_cpu.is_some() {
        let _ = writeln!(
            s,
            "  I/O-bound requests: the useful count is the requests in progress at your peak \
(requests per second × seconds per request, Little's law), within the memory limits above."
        );
    }
    s
}

/// Whether the measurement, not the server, limited throughput, said plainly: the machine's
/// CPUs all busy with the load client among them, or throughput flat while the workers had
/// CPU to spare (then connections or the client were the limit). `None` when neither shows.
fn limits_note(trials: &[Trial], concurrency: usize, machine_cpus: f64) -> Option<String> {
    let last = trials.last()?;
    let (workers_cpu, client_cpu) = (last.cpu_cores?, last.client_cpu_cores?);
    if workers_cpu + client_cpu >= 0.9 * machine_cpus && client_cpu >= 0.25 * machine_cpus {
        return Some(format!(
            "  Note: at {} workers this machine's {machine_cpus:.0} CPUs were all in use, {client_cpu:.1} \
             of them by the load client itself ({workers_cpu:.1} by the workers): beyond this point \
             the figures measure the machine, not the server. Measure from another machine, or \
             read the advice by CPU share.",
            last.workers
        ));
    }
    let prev = trials.get(trials.len().checked_sub(2)?)?;
    let flat = last.req_per_sec < 1.05 * prev.req_per_sec;
    let spare = workers_cpu < 0.75 * (last.workers as f64).min(machine_cpus);
    if flat && spare && last.req_per_sec > 0.0 {
        let by = if concurrency <= last.workers {
            format!("the {concurrency} connections (raise --concurrency)")
        } else if client_cpu >= 0.8 {
            format!("the load client ({client_cpu:.1} CPUs)")
        } else {
            "something the requests wait on (I/O, a lock, a downstream service)".to_string()
        };
        return Some(format!(
            "  Note: throughput stayed flat from {} to {} workers ({:.1} to {:.1} req/s) while the \
             workers used {workers_cpu:.1} of {machine_cpus:.0} CPUs: the limit was {by}, not the \
             number of workers.",
            prev.workers, last.workers, prev.req_per_sec, last.req_per_sec
        ));
    }
    None
}

/// Throughput, latency and memory against workers.
fn tune_chart(trials: &[Trial], title: &str, quota: Option<&Quota>) -> Chart {
    let x = |t: &Trial| t.workers as f64;
    let series = |name: &str, f: &dyn Fn(&Trial) -> Option<f64>| {
        Series::new(
            name,
            trials.iter().filter_map(|t| Some((x(t), f(t)?))).collect(),
        )
    };
    let mut memory = vec![
        series("total PSS", &|t| Some(t.total_pss_mb)),
        series("largest worker USS", &|t| Some(t.worker_uss_mb)),
    ];
    if trials.iter().any(|t| t.cgroup_peak_mb.is_some()) {
        memory.push(series("dyno cgroup peak", &|t| t.cgroup_peak_mb));
    }
    // The quota only when the memory comes near it; else it flattens the lines.
    let peak = trials
        .iter()
        .map(|t| t.total_pss_mb.max(t.cgroup_peak_mb.unwrap_or(0.0)))
        .fold(0.0, f64::max);
    if let (Some(q), Some(first), Some(last)) = (quota, trials.first(), trials.last())
        && peak >= q.mb / 4.0
    {
        memory.push(Series::dashed(
            format!("quota {:.0} MB", q.mb),
            vec![(x(first), q.mb), (x(last), q.mb)],
        ));
    }
    Chart {
        title: title.into(),
        x_label: "workers".into(),
        panels: vec![
            Panel {
                y_label: "throughput (req/s)".into(),
                series: vec![series("req/s", &|t| Some(t.req_per_sec))],
            },
            Panel {
                y_label: "latency (ms)".into(),
                series: vec![
                    series("p50", &|t| t.p50_ms),
                    series("p95", &|t| t.p95_ms),
                    series("p99", &|t| t.p99_ms),
                ],
            },
            Panel {
                y_label: "memory (MB)".into(),
                series: memory,
            },
        ],
    }
}

#[cfg(test)]
mod tests;
