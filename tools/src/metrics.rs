//! `runicorn metrics`: reads metric lines (runicorn's own, and Heroku's `log-runtime-metrics`
//! and R14/R15 lines) from a file or stdin, and prints a per-dyno, per-worker summary with
//! the advised `WEB_CONCURRENCY`; `--chart` plots memory over time.
//!
//! ```sh
//! heroku logs --tail | runicorn metrics --chart memory.svg
//! runicorn metrics recorded.log
//! ```
//!
//! Reading live (stdin is a pipe or a terminal), a summary block is printed each time a
//! sample set completes and the stream then stays quiet for a moment (so that the sets of
//! several dynos, which arrive together, make one block); at the end of the input the final
//! summary is printed. Reading a file, only the final summary. Lines are parsed in
//! `metrics/parse.rs`, kept in `metrics/summary.rs`; this file holds the flags and the loop.

mod dashboard;
mod parse;
mod summary;
mod timeline;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

pub use parse::{Event, Origin, Record, logfmt, parse_line};
pub use summary::{DynoAdvice, Options, Tracker};
pub use timeline::Timeline;

use super::advice::{self, DYNO_SIZES};
use super::chart;
use super::cli::{self, Arg, Args, Parsed};

/// How long the stream must stay quiet after a complete sample set before a live block is
/// printed: the lines of one interval (several dynos, and each dyno's five kinds of line)
/// arrive within milliseconds of each other.
const QUIET: Duration = Duration::from_millis(300);

const FLAGS: &str =
    "--serve ADDR, --chart PATH, --quota SIZE, --headroom PCT, --cpus N, --final, --help";

fn help(program: &str) -> String {
    let sizes: Vec<String> = DYNO_SIZES
        .iter()
        .map(|d| format!("{} ({} MB)", d.name, d.quota_mb))
        .collect();
    format!(
        "\
Usage: {program} metrics [FILE] [OPTIONS]

Reads metric lines from FILE (or stdin, or '-') and prints, per dyno (source) and per
worker: current and peak memory against the quota, service and queue time p95/p99, busy
workers, R14/R15 errors and out-of-memory kills, and the advised WEB_CONCURRENCY: a
number and the bound that decided it (memory with each worker's kernel memory, CPU, the
dyno size's process limit, the server's cap), or, when the traffic never needed the
workers it had, the range of counts that serve it.

It reads runicorn's metric lines (docs/metrics.md) and Heroku's own log-runtime-metrics
lines, bare or with the prefixes that `heroku logs` or a syslog drain adds:
    heroku logs --tail | {program} metrics --chart memory.svg

Options:
  --serve ADDR     serve a live dashboard of the lines at http://ADDR/ (for example
                   127.0.0.1:9000) instead of printing summaries: memory against the
                   quota, load, requests, service and queue time, workers, errors on
                   the time axis, and the advice; it goes on serving at the end of the
                   input, until stopped (docs/observability.md)
  --chart PATH     write an SVG chart of memory over time per dyno (rewritten at each
                   live summary)
  --quota SIZE     the memory quota to advise for when the lines carry none:
                   {}, or a number of MB
  --headroom PCT   share of the quota kept free, in percent (default {:.0})
  --cpus N         CPUs of the dyno: also bound the advice by CPU, from the load average
                   and busy workers, or say why the CPUs do not bound it
  --final          print only the final summary, even when reading a live stream
  -h, --help       this text

Exit codes: 0 done, 1 no metric line in the input or an I/O error, 2 bad flag.
",
        sizes.join(", "),
        advice::DEFAULT_HEADROOM * 100.0
    )
}

/// What the flags asked for.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    input: Option<PathBuf>,
    serve: Option<String>,
    chart: Option<PathBuf>,
    opts: Options,
    final_only: bool,
}

fn parse_flags(args: &[String]) -> Result<Parsed<Settings>, String> {
    let mut s = Settings {
        input: None,
        serve: None,
        chart: None,
        opts: Options::default(),
        final_only: false,
    };
    let mut it = Args::new(args);
    while let Some(arg) = it.next() {
        match arg {
            Arg::Flag("--help", _) => return Ok(Parsed::Help),
            Arg::Flag("--serve", v) => {
                let what = "an address to listen on, such as 127.0.0.1:9000";
                let value = it.value("--serve", v, what)?;
                if value.parse::<std::net::SocketAddr>().is_err() {
                    return Err(cli::invalid("--serve", value, what));
                }
                s.serve = Some(value.to_string());
            }
            Arg::Flag("--chart", v) => {
                s.chart = Some(it.value("--chart", v, "a file path")?.into())
            }
            Arg::Flag("--quota", v) => {
                let what =
                    "standard-1x, standard-2x, performance-m, performance-l, or a number of MB";
                let value = it.value("--quota", v, what)?;
                let size =
                    advice::dyno_size(value).ok_or_else(|| cli::invalid("--quota", value, what))?;
                s.opts.quota_mb = Some(size.quota_mb);
            }
            Arg::Flag("--headroom", v) => {
                let pct: f64 =
                    it.parsed("--headroom", v, "a percentage from 0 to 90", |p: &f64| {
                        (0.0..=90.0).contains(p)
                    })?;
                s.opts.headroom = pct / 100.0;
            }
            Arg::Flag("--cpus", v) => {
                s.opts.cpus = Some(it.parsed(
                    "--cpus",
                    v,
                    "a number of CPUs above 0",
                    |c: &f64| c.is_finite() && *c > 0.0,
                )?);
            }
            Arg::Flag("--final", None) => s.final_only = true,
            Arg::Flag(flag, _) => return Err(cli::unknown(flag, FLAGS)),
            Arg::Positional(p) if s.input.is_none() => {
                s.input = (p != "-").then(|| PathBuf::from(p));
            }
            Arg::Positional(p) => {
                return Err(format!("unexpected argument '{p}': one input FILE at most"));
            }
        }
    }
    if s.serve.is_some() && (s.chart.is_some() || s.final_only) {
        return Err("--serve: --chart and --final are for the printed summary; the dashboard draws its own charts".into());
    }
    Ok(Parsed::Run(s))
}

/// Runs `metrics` with `args` (after the word `metrics`); returns the exit code.
pub fn main(program: &str, args: &[String]) -> i32 {
    let settings =
        match cli::settings_or_exit(program, "metrics", parse_flags(args), || help(program)) {
            Ok(s) => s,
            Err(code) => return code,
        };
    let (reader, live): (Box<dyn Read + Send>, bool) = match &settings.input {
        Some(path) => match File::open(path) {
            Ok(f) => (Box::new(f), false),
            Err(e) => {
                eprintln!("{program} metrics: cannot read {}: {e}", path.display());
                return 1;
            }
        },
        None => (Box::new(std::io::stdin()), !stdin_is_regular_file()),
    };
    if let Some(bind) = &settings.serve {
        return dashboard::serve(program, bind, reader, settings.opts);
    }
    let live = live && !settings.final_only;
    let mut out = std::io::stdout().lock();
    match run(reader, live, &settings, &mut out) {
        Ok(0) => {
            eprintln!("{program} metrics: no metric line in the input");
            1
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("{program} metrics: {e}");
            1
        }
    }
}

/// stdin redirected from a file (`< recorded.log`) is read to its end, with no live blocks.
fn stdin_is_regular_file() -> bool {
    use std::os::fd::AsFd;
    let Ok(stdin) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return false;
    };
    File::from(stdin)
        .metadata()
        .is_ok_and(|m| m.file_type().is_file())
}

/// What [`read_lines`] hands its caller.
pub(crate) enum Input {
    /// One line of the input.
    Line(String),
    /// Every line that had arrived has been handed over.
    Idle,
    /// A sample set was completed, and the input then stayed quiet for [`QUIET`].
    Quiet,
}

/// Reads `reader` line by line, on a thread of its own so that the caller can wait for a
/// quiet moment with a timeout, and hands each line to `on`; `on` returns `true` for a line
/// that completed a sample set. Returns, at the end of the input, whether a completed set
/// was not yet followed by a quiet moment.
pub(crate) fn read_lines(
    reader: Box<dyn Read + Send>,
    mut on: impl FnMut(Input) -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    let (tx, rx) = mpsc::sync_channel::<String>(4096);
    let reading = std::thread::spawn(move || -> std::io::Result<()> {
        let mut lines = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if lines.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                return Ok(());
            }
        }
    });
    let mut pending = false;
    loop {
        let next = if pending {
            rx.recv_timeout(QUIET)
        } else {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(line) => {
                pending |= on(Input::Line(line))?;
                while let Ok(line) = rx.try_recv() {
                    pending |= on(Input::Line(line))?;
                }
                on(Input::Idle)?;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                pending = false;
                on(Input::Quiet)?;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    reading
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the reader thread panicked")))?;
    Ok(pending)
}

/// Reads every line of `reader` into a tracker, printing live blocks when `live`; prints the
/// final summary and writes the chart. Returns the number of lines used.
fn run(
    reader: Box<dyn Read + Send>,
    live: bool,
    settings: &Settings,
    out: &mut dyn Write,
) -> std::io::Result<usize> {
    let mut tracker = Tracker::new(settings.opts);
    let mut printed_sets = 0;
    read_lines(reader, |input| {
        match input {
            Input::Line(line) => {
                if let Some(rec) = parse_line(&line) {
                    return Ok(tracker.feed(rec) && live);
                }
            }
            Input::Idle => {}
            Input::Quiet => {
                printed_sets = tracker.sets();
                write!(out, "{}", tracker.summary("runicorn metrics (live)"))?;
                writeln!(out)?;
                out.flush()?;
                settings.write_chart(&tracker)?;
            }
        }
        Ok(false)
    })?;
    if tracker.lines() > 0 {
        let heading = if live && printed_sets == tracker.sets() {
            "runicorn metrics (final, unchanged)"
        } else {
            "runicorn metrics (final)"
        };
        write!(out, "{}", tracker.summary(heading))?;
        out.flush()?;
        settings.write_chart(&tracker)?;
    }
    Ok(tracker.lines())
}

impl Settings {
    fn write_chart(&self, tracker: &Tracker) -> std::io::Result<()> {
        match &self.chart {
            Some(path) => write_atomically(path, &chart::render(&tracker.chart())),
            None => Ok(()),
        }
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`, so that a
/// viewer never reads half a chart.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chart.svg".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests;
