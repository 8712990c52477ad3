//! The Prometheus exposition (`--metrics-bind`): what the master answers to `GET /metrics`,
//! in the text format 0.0.4 (`docs/metrics.md`, "Prometheus").
//!
//! [`render`] is pure: a [`Snapshot`] in, the page out. The master takes the snapshot at
//! scrape time: it drains the scoreboard into its running totals first (`Tally`), so the
//! counters are current and cumulative, and reads each process's memory from `/proc`. The
//! socket side is `exporter.rs`.
//!
//! Names follow Prometheus' conventions: a `runicorn_` prefix, base units in the name
//! (bytes, seconds), `_total` for counters. Memory is one family per measure
//! (`runicorn_worker_memory_rss_bytes`, `_pss_bytes`, ...) rather than one family with a
//! `kind` label: a sum or an average over a family's labels should mean something, and
//! RSS + PSS + USS of a worker means nothing, while the sum of PSS over the workers is
//! their true total.

use std::fmt::{Display, Write as _};

use super::sample::{MasterSample, WorkerEnd, WorkerEnds, WorkerSample};
use super::tcp::ListenQueue;
use crate::procfs::ProcMemory;
use crate::scoreboard::{Counters, LAYOUT};

/// The `Content-Type` of the page: the text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The histograms' finite bucket bounds (`le`), in µs: every power of two from 8 µs to
/// 2^27 µs (134 s). Each is an edge of the scoreboard's own buckets (`scoreboard::LAYOUT`
/// splits each power of two into 8), so a cumulative count is a plain sum of whole buckets:
/// nothing is interpolated. Bucket `le=2^k µs` counts the times below 2^k µs (times are
/// whole µs, truncated).
pub const BOUNDS_US: [u64; 25] = {
    let mut b = [0u64; 25];
    let mut i = 0;
    while i < b.len() {
        b[i] = 1 << (i + 3);
        i += 1;
    }
    b
};

/// Workers by the state their slots show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStates {
    /// Forked, not yet ready (`after_fork`).
    pub booting: usize,
    /// Waiting for a connection.
    pub idle: usize,
    /// Serving.
    pub busy: usize,
    /// Finishing before they exit.
    pub stopping: usize,
}

/// What one scrape shows.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    /// runicorn's version.
    pub version: &'a str,
    /// When this master image started (USR2 starts a new one), µs since the Unix epoch.
    pub start_time_us: u64,
    /// The master (`None` if its memory could not be read).
    pub master: Option<&'a MasterSample>,
    /// Each live worker, with its memory when it could be read.
    pub workers: &'a [WorkerSample],
    /// Worker processes forked and not yet reaped.
    pub processes: usize,
    /// The workers by state.
    pub states: WorkerStates,
    /// Requests the workers are serving.
    pub in_flight: u64,
    /// The listen queue (summed over the TCP listeners), if any.
    pub backlog: Option<ListenQueue>,
    /// The request counters since the master started.
    pub requests: &'a Counters,
    /// The workers reaped since the master started, by reason.
    pub ends: &'a WorkerEnds,
    /// `--timeout` kills of workers stuck in a request, since the master started.
    pub request_timeouts: u64,
    /// `--timeout` kills of workers stuck booting.
    pub boot_timeouts: u64,
    /// Workers that died before they were ready.
    pub boot_failures: u64,
}

/// Microseconds written as seconds, exactly (`0.000016`, `1.048576`, `3`).
struct Secs(u64);

impl Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// A label value as the text format wants it: backslash, double quote and line feed
/// escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A memory measure: its name, what it is, and its figure.
type Measure = (&'static str, &'static str, fn(&ProcMemory) -> u64);

const MEASURES: [Measure; 4] = [
    (
        "rss",
        "resident set size (Rss): every resident page it maps, shared ones in full",
        |m| m.rss_kib,
    ),
    (
        "pss",
        "proportional set size (Pss): each shared page divided among the processes mapping it; sums to the true total",
        |m| m.pss_kib,
    ),
    (
        "uss",
        "unique set size (Private_*): the pages only it maps, what it frees on exit",
        |m| m.uss_kib,
    ),
    (
        "swap",
        "swapped-out memory (Swap), shared pages in full",
        |m| m.swap_kib,
    ),
];

struct Page {
    out: String,
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A histogram of µs values in seconds: cumulative buckets at [`BOUNDS_US`], `+Inf`,
    /// the exact sum and the count.
    fn histogram(&mut self, name: &str, help: &str, h: &crate::histogram::Histogram, sum_us: u64) {
        self.family(name, "histogram", help);
        let counts = h.counts();
        let bucket = format!("{name}_bucket");
        let mut below = 0u64;
        let mut next = 0usize;
        for b in BOUNDS_US {
            // The scoreboard buckets wholly below `b`: those before the one `b` starts.
            let end = LAYOUT.index(b);
            below += counts[next..end].iter().sum::<u64>();
            next = end;
            self.sample(&bucket, &[("le", &Secs(b).to_string())], below);
        }
        let count = h.count();
        self.sample(&bucket, &[("le", "+Inf")], count);
        self.sample(&format!("{name}_sum"), &[], Secs(sum_us));
        self.sample(&format!("{name}_count"), &[], count);
    }

    /// The four memory gauges of one process kind, a family each (see the module's doc).
    fn memory<'m>(
        &mut self,
        scope: &str,
        whose: &str,
        procs: impl Iterator<Item = (Vec<(&'static str, String)>, &'m ProcMemory)> + Clone,
    ) {
        for (measure, what, kib) in MEASURES {
            let name = format!("runicorn_{scope}_memory_{measure}_bytes");
            self.family(&name, "gauge", &format!("{whose}: {what}, in bytes."));
            for (labels, m) in procs.clone() {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.sample(&name, &labels, kib(m) * 1024);
            }
        }
    }
}

/// The page: every family with its HELP and TYPE lines, in a fixed order.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut p = Page {
        out: String::with_capacity(8192 + 1024 * s.workers.len()),
    };
    p.family(
        "runicorn_build_info",
        "gauge",
        "The runicorn version serving, as a label; always 1.",
    );
    p.sample("runicorn_build_info", &[("version", s.version)], 1);
    p.gauge(
        "runicorn_start_time_seconds",
        "When the master started (a USR2 upgrade starts it anew), in seconds since the Unix epoch.",
        Secs(s.start_time_us),
    );

    let c = s.requests;
    p.family(
        "runicorn_requests_total",
        "counter",
        "Responses by status class (status / 100), refused requests included, since the master started.",
    );
    for (class, n) in c.status.iter().enumerate() {
        let label = format!("{}xx", class + 1);
        p.sample("runicorn_requests_total", &[("status_class", &label)], n);
    }
    p.histogram(
        "runicorn_request_duration_seconds",
        "Service time: from the worker taking the complete request to the last byte of the response handed to the kernel.",
        &c.service,
        c.service_sum_us,
    );
    p.histogram(
        "runicorn_request_queue_seconds",
        "Queue time of the requests that carried X-Request-Start: from that time to the worker taking the request.",
        &c.queue,
        c.queue_sum_us,
    );
    p.gauge(
        "runicorn_requests_in_flight",
        "Requests the workers are serving now.",
        s.in_flight,
    );

    p.family(
        "runicorn_workers",
        "gauge",
        "Workers by the state their scoreboard slot shows now (workers handed over by a USR2 upgrade are in none).",
    );
    let st = s.states;
    for (state, n) in [
        ("booting", st.booting),
        ("idle", st.idle),
        ("busy", st.busy),
        ("stopping", st.stopping),
    ] {
        p.sample("runicorn_workers", &[("state", state)], n);
    }
    p.gauge(
        "runicorn_worker_processes",
        "Worker processes forked and not yet reaped: booting, serving and stopping ones, old and new during a HUP.",
        s.processes,
    );
    if let Some(b) = s.backlog {
        p.gauge(
            "runicorn_listen_backlog",
            "Connections waiting in the kernel's accept queue, summed over the TCP listeners.",
            b.depth,
        );
        p.gauge(
            "runicorn_listen_backlog_limit",
            "The size of that queue (--backlog, capped by net.core.somaxconn), summed over the TCP listeners.",
            b.limit,
        );
    }

    p.family(
        "runicorn_worker_exits_total",
        "counter",
        "Workers reaped since the master started, by reason: timeout, failed, memory, stopped, max_requests, exited.",
    );
    for end in WorkerEnd::ALL {
        p.sample(
            "runicorn_worker_exits_total",
            &[("reason", end.label())],
            s.ends.of(end),
        );
    }
    p.family(
        "runicorn_worker_timeouts_total",
        "counter",
        "Workers killed for --timeout since the master started: stuck in a request, or stuck booting.",
    );
    p.sample(
        "runicorn_worker_timeouts_total",
        &[("kind", "request")],
        s.request_timeouts,
    );
    p.sample(
        "runicorn_worker_timeouts_total",
        &[("kind", "boot")],
        s.boot_timeouts,
    );
    p.family(
        "runicorn_worker_boot_failures_total",
        "counter",
        "Workers that died before they were ready (each delays the next spawn; 10 in a row stop the server).",
    );
    p.sample("runicorn_worker_boot_failures_total", &[], s.boot_failures);

    let worker_labels =
        |w: &WorkerSample| vec![("worker", w.slot.to_string()), ("pid", w.pid.to_string())];
    p.family(
        "runicorn_worker_requests_total",
        "counter",
        "Responses each worker process has written since it started.",
    );
    for w in s.workers {
        let labels = worker_labels(w);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        p.sample("runicorn_worker_requests_total", &labels, w.requests);
    }
    p.memory(
        "worker",
        "Each worker's memory",
        s.workers
            .iter()
            .filter_map(|w| Some((worker_labels(w), w.memory.as_ref()?))),
    );
    p.memory(
        "master",
        "The master's memory",
        s.master
            .iter()
            .map(|m| (vec![("pid", m.pid.to_string())], &m.memory)),
    );
    p.out
}

#[cfg(test)]
mod tests;
