//! `runicorn plan`: how many dynos, and how many workers on each, for a given traffic and a
//! queue-time target. A seeded discrete-event simulation of the fleet behind its router
//! (`plan/sim.rs`) run over a grid of configurations, with the memory each needs; the model
//! and its assumptions are in docs/scale-out.md.
//!
//! ```sh
//! runicorn plan --rpm 1000000 --service p50=150ms,p95=400ms,p99=800ms --workers 4 --queue-p99 50ms
//! heroku logs -n 1500 | runicorn plan --lines - --rpm 60000 --queue-p99 50ms
//! ```

pub mod service;
pub mod sim;

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use runicorn::internals::advice::{self, DYNO_SIZES, DynoSize};

use crate::chart::{Chart, Panel, Series};
use crate::cli::{self, Arg, Args, EXIT_USAGE, Parsed};
use crate::metrics::{Event, Tracker, parse_line};
use service::{Service, format_ms, parse_time};
use sim::{Outcome, Router, Scenario, simulate};

/// The utilisations tried for each worker count when no dyno counts are given.
const LADDER: [f64; 8] = [0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5];

/// Cost of a dyno size relative to a standard-1x, from Heroku's list prices ($25, $50,
/// $250, $500 a month): how "cheapest" compares sizes.
fn cost_units(size: &DynoSize) -> f64 {
    match size.name {
        "standard-1x" => 1.0,
        "standard-2x" => 2.0,
        "performance-m" => 10.0,
        "performance-l" => 20.0,
        _ => size.quota_mb / 512.0,
    }
}

const FLAGS: &str = "--rpm N, --rps N, --service SPEC, --lines FILE, --router NAME, --dyno SIZE, \
--worker-mb MB, --base-mb MB, --headroom PCT, --dynos LIST, --workers LIST, --queue-p99 TIME, \
--transit TIME, --requests N, --seed N, --chart PATH, --help";

fn help(program: &str) -> String {
    format!(
        "\
Usage: {program} plan [OPTIONS]

Plans a fleet: for a request rate and a service-time distribution, simulates each
configuration of dynos x workers per dyno behind the router and prints its utilisation,
queue time p50/p95/p99 (the time a request waits in a dyno for a worker), and whether it
fits the dyno's memory; with --queue-p99, the cheapest configuration that meets it. The
simulation is discrete-event and seeded: the same inputs print the same table
(docs/scale-out.md has the model and its assumptions).

Traffic (one of them, or from --lines):
  --rpm N            requests per minute to the whole app, as Heroku's metrics show it
  --rps N            requests per second
Service time (one of them, or from --lines):
  --service SPEC     exp:20ms | const:20ms | lognormal:20ms,0.5 (median, sigma) |
                     p50=20ms,p95=60ms,p99=120ms (measured percentiles, two or more;
                     add mean=TIME, such as the lines' service_mean, to move them to it)
  --lines FILE       runicorn's metric lines (a file, or - for stdin; `heroku logs`
                     format too): the service-time percentiles, the request rate, the
                     dyno's quota and the memory per worker, whichever is not given
The fleet:
  --router NAME      random (Heroku's router, the default), leastconn, roundrobin
  --dyno SIZE        standard-1x (default), standard-2x, performance-m, performance-l,
                     or a number of MB
  --worker-mb MB     memory of one more worker (from --lines: USS plus kernel memory)
  --base-mb MB       memory of the master and what the workers share (from --lines)
  --headroom PCT     share of the quota kept free (default {:.0})
  --dynos LIST       dyno counts to try: 10 | 10,20,40 | 10..40 (default: around the
                     counts that put each worker count at {} % to {} % utilisation)
  --workers LIST     workers per dyno to try (default: 1, 2, 4, 8, 16 up to what fits)
  --queue-p99 TIME   the target: queue time p99 at most TIME (e.g. 50ms)
  --transit TIME     added to every queue time: the router-to-worker time of a request
                     that waits for nothing (runicorn's queue_p50 at a light load);
                     default 0
Simulation:
  --requests N       requests per configuration (default: a minute of traffic, at least
                     200,000 and at most 2,000,000; the first sixth is warm-up)
  --seed N           the seed (default 1)
  --chart PATH       write an SVG chart of queue p99 against dynos, per worker count
  -h, --help         this text

Exit codes: 0 done, 1 no configuration meets the target or an I/O error, 2 bad flag.
",
        advice::DEFAULT_HEADROOM * 100.0,
        (LADDER[LADDER.len() - 1] * 100.0) as u32,
        (LADDER[0] * 100.0) as u32,
    )
}

/// A list of counts: `4`, `1,2,4`, `10..40` (every count; at most 500 of them).
fn parse_counts(text: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        if let Some((a, b)) = part.split_once("..") {
            let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            if a == 0 || b < a || b - a >= 500 {
                return None;
            }
            out.extend(a..=b);
        } else {
            out.push(part.trim().parse().ok().filter(|n| *n > 0)?);
        }
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty() && out.len() <= 500).then_some(out)
}

/// What the flags asked for.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    rate: Option<f64>,
    service: Option<Service>,
    lines: Option<PathBuf>,
    router: Router,
    dyno: DynoSize,
    dyno_given: bool,
    worker_mb: Option<f64>,
    base_mb: Option<f64>,
    headroom: f64,
    dynos: Option<Vec<usize>>,
    workers: Option<Vec<usize>>,
    target: Option<f64>,
    requests: Option<usize>,
    seed: u64,
    transit: f64,
    chart: Option<PathBuf>,
}

fn parse_flags(args: &[String]) -> Result<Parsed<Box<Settings>>, String> {
    let mut s = Settings {
        rate: None,
        service: None,
        lines: None,
        router: Router::Random,
        dyno: DYNO_SIZES[0],
        dyno_given: false,
        worker_mb: None,
        base_mb: None,
        headroom: advice::DEFAULT_HEADROOM,
        dynos: None,
        workers: None,
        target: None,
        requests: None,
        seed: 1,
        transit: 0.0,
        chart: None,
    };
    let positive = |v: &f64| v.is_finite() && *v > 0.0;
    let mut it = Args::new(args);
    while let Some(arg) = it.next() {
        match arg {
            Arg::Flag("--help", _) => return Ok(Parsed::Help),
            Arg::Flag("--rpm", v) => {
                let rpm: f64 = it.parsed(
                    "--rpm",
                    v,
                    "a number of requests per minute above 0",
                    positive,
                )?;
                s.rate = Some(rpm / 60.0);
            }
            Arg::Flag("--rps", v) => {
                s.rate = Some(it.parsed(
                    "--rps",
                    v,
                    "a number of requests per second above 0",
                    positive,
                )?);
            }
            Arg::Flag("--service", v) => {
                let what = "exp:MEAN, const:TIME, lognormal:MEDIAN,SIGMA, or p50=TIME,p99=TIME,... (two or more percentiles, not falling; mean=TIME optional)";
                let value = it.value("--service", v, what)?;
                s.service = Some(
                    Service::parse(value).ok_or_else(|| cli::invalid("--service", value, what))?,
                );
            }
            Arg::Flag("--lines", v) => {
                s.lines = Some(
                    it.value("--lines", v, "a file of metric lines, or - for stdin")?
                        .into(),
                );
            }
            Arg::Flag("--router", v) => {
                let what = "random, leastconn or roundrobin";
                let value = it.value("--router", v, what)?;
                s.router =
                    Router::parse(value).ok_or_else(|| cli::invalid("--router", value, what))?;
            }
            Arg::Flag("--dyno", v) => {
                let what =
                    "standard-1x, standard-2x, performance-m, performance-l, or a number of MB";
                let value = it.value("--dyno", v, what)?;
                s.dyno =
                    advice::dyno_size(value).ok_or_else(|| cli::invalid("--dyno", value, what))?;
                s.dyno_given = true;
            }
            Arg::Flag("--worker-mb", v) => {
                s.worker_mb =
                    Some(it.parsed("--worker-mb", v, "a number of MB above 0", positive)?);
            }
            Arg::Flag("--base-mb", v) => {
                s.base_mb = Some(it.parsed(
                    "--base-mb",
                    v,
                    "a number of MB, 0 or more",
                    |m: &f64| m.is_finite() && *m >= 0.0,
                )?);
            }
            Arg::Flag("--headroom", v) => {
                let pct: f64 =
                    it.parsed("--headroom", v, "a percentage from 0 to 90", |p: &f64| {
                        (0.0..=90.0).contains(p)
                    })?;
                s.headroom = pct / 100.0;
            }
            Arg::Flag("--dynos", v) => {
                let what =
                    "a count, a list (10,20,40) or a range (10..40) of counts above 0, at most 500";
                let value = it.value("--dynos", v, what)?;
                s.dynos =
                    Some(parse_counts(value).ok_or_else(|| cli::invalid("--dynos", value, what))?);
            }
            Arg::Flag("--workers", v) => {
                let what = "a count, a list (1,2,4) or a range (1..8) of counts from 1 to 512";
                let value = it.value("--workers", v, what)?;
                s.workers = Some(
                    parse_counts(value)
                        .filter(|l| l.iter().all(|w| *w <= 512))
                        .ok_or_else(|| cli::invalid("--workers", value, what))?,
                );
            }
            Arg::Flag("--queue-p99", v) => {
                let what = "a time such as 50ms or 0.2s";
                let value = it.value("--queue-p99", v, what)?;
                s.target = Some(
                    parse_time(value).ok_or_else(|| cli::invalid("--queue-p99", value, what))?,
                );
            }
            Arg::Flag("--requests", v) => {
                s.requests = Some(it.parsed(
                    "--requests",
                    v,
                    "a number of requests from 1,000 to 100,000,000",
                    |n: &usize| (1_000..=100_000_000).contains(n),
                )?);
            }
            Arg::Flag("--seed", v) => {
                s.seed = it.parsed("--seed", v, "a whole number", |_: &u64| true)?
            }
            Arg::Flag("--transit", v) => {
                let what = "a time such as 0.3ms";
                let value = it.value("--transit", v, what)?;
                s.transit =
                    parse_time(value).ok_or_else(|| cli::invalid("--transit", value, what))?;
            }
            Arg::Flag("--chart", v) => {
                s.chart = Some(it.value("--chart", v, "a file path")?.into())
            }
            Arg::Flag(flag, _) => return Err(cli::unknown(flag, FLAGS)),
            Arg::Positional(p) => return Err(format!("unexpected argument '{p}'; see --help")),
        }
    }
    Ok(Parsed::Run(Box::new(s)))
}

/// What runicorn's metric lines say, for the plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FromLines {
    /// Request-weighted mean of each interval's service p50, p95, p99, seconds.
    pub service: Option<[f64; 3]>,
    /// The mean service time, seconds, where the lines give `sample#service_mean`.
    pub service_mean: Option<f64>,
    /// Requests per second to all the dynos in the lines.
    pub rate: Option<f64>,
    /// Dynos seen.
    pub dynos: usize,
    /// The dyno's quota, MB.
    pub quota_mb: Option<f64>,
    /// Memory of the server before its workers, and of one more worker, MB.
    pub memory: Option<(f64, f64)>,
}

/// Reads metric lines for the plan. Pure over the text.
pub fn from_lines(text: &str) -> FromLines {
    let mut tracker = Tracker::new(Default::default());
    let mut weighted = [0.0f64; 3];
    let mut weight = 0u64;
    let (mut mean_sum, mut mean_weight) = (0.0f64, 0u64);
    // Per dyno: requests, request lines, and their times.
    let mut per_dyno: std::collections::BTreeMap<String, (u64, usize, Vec<f64>)> =
        Default::default();
    let mut last_source = String::from("web.1");
    for line in text.lines() {
        let Some(rec) = parse_line(line) else {
            continue;
        };
        if let Some(s) = &rec.source {
            last_source = s.clone();
        }
        if let Event::Requests(r) = &rec.event {
            let d = per_dyno.entry(last_source.clone()).or_default();
            d.0 += r.requests;
            d.1 += 1;
            if let Some(t) = rec.time {
                d.2.push(t);
            }
            if let Some(s) = r.service
                && r.requests > 0
            {
                for (w, v) in weighted.iter_mut().zip(s) {
                    *w += v / 1000.0 * r.requests as f64;
                }
                weight += r.requests;
            }
            if let Some(m) = r.service_mean
                && r.requests > 0
            {
                mean_sum += m / 1000.0 * r.requests as f64;
                mean_weight += r.requests;
            }
        }
        tracker.feed(rec);
    }
    let rate = per_dyno
        .values()
        .filter(|(_, sets, _)| *sets > 0)
        .map(|(requests, sets, times)| {
            // The interval: the median gap between request lines, else the default 20 s.
            let mut gaps: Vec<f64> = times
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|g| *g > 0.0)
                .collect();
            gaps.sort_by(f64::total_cmp);
            let interval = gaps.get(gaps.len() / 2).copied().unwrap_or(20.0);
            *requests as f64 / (*sets as f64 * interval)
        })
        .sum::<f64>();
    let advice = tracker.advice();
    FromLines {
        service: (weight > 0).then(|| weighted.map(|w| w / weight as f64)),
        service_mean: (mean_weight > 0).then(|| mean_sum / mean_weight as f64),
        rate: (rate > 0.0).then_some(rate),
        dynos: per_dyno.len(),
        quota_mb: advice.first().map(|(_, q, _)| *q),
        memory: advice.first().map(|(_, _, a)| (a.base_mb, a.per_worker_mb)),
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Dynos.
    pub dynos: usize,
    /// Workers per dyno.
    pub workers: usize,
    /// What the simulation found (`None`: utilisation at or above 1, the queue grows
    /// without bound).
    pub outcome: Option<Outcome>,
    /// The utilisation, simulated or not.
    pub utilisation: f64,
    /// Whether the workers fit the dyno's memory (`None`: memory unknown).
    pub fits: Option<bool>,
}

impl Row {
    fn meets(&self, target: f64) -> bool {
        self.fits != Some(false) && self.outcome.is_some_and(|o| o.queue[2] <= target)
    }
}

/// The whole plan: inputs and rows.
pub struct Plan {
    rate: f64,
    service: Service,
    router: Router,
    dyno: DynoSize,
    memory: Option<(f64, f64)>,
    headroom: f64,
    requests: usize,
    seed: u64,
    transit: f64,
    target: Option<f64>,
    rows: Vec<Row>,
}

impl Plan {
    fn max_workers(&self) -> Option<usize> {
        let (base, per) = self.memory?;
        let budget = self.dyno.quota_mb * (1.0 - self.headroom) - base;
        Some(if budget <= 0.0 {
            0
        } else {
            (budget / per).floor() as usize
        })
    }

    fn row(&self, dynos: usize, workers: usize) -> Row {
        let mean = self.service.mean();
        let utilisation = self.rate * mean / (dynos * workers) as f64;
        let outcome = (utilisation < 1.0).then(|| {
            let mut o = simulate(
                &Scenario {
                    rate: self.rate,
                    dynos,
                    workers,
                    router: self.router,
                    requests: self.requests,
                    warmup: 1.0 / 6.0,
                    seed: self.seed,
                },
                &self.service,
            );
            // Every request spends the transit before it can wait, as runicorn measures.
            o.queue = o.queue.map(|q| q + self.transit);
            o.queue_mean += self.transit;
            o
        });
        Row {
            dynos,
            workers,
            outcome,
            utilisation,
            fits: self.max_workers().map(|max| workers <= max),
        }
    }

    /// The dyno counts tried for `workers` when none are given: around each utilisation
    /// of the ladder, and, with a target, the fewest that meets it (found by bisection:
    /// more dynos never lengthen the queue, up to the simulation's noise).
    fn explore(&mut self, workers: usize) {
        let mean = self.service.mean();
        let at = |u: f64| ((self.rate * mean / (workers as f64 * u)).ceil() as usize).max(1);
        let mut counts: Vec<usize> = LADDER.iter().map(|u| at(*u)).collect();
        counts.dedup();
        let mut rows: Vec<Row> = counts.iter().map(|d| self.row(*d, workers)).collect();
        if let Some(target) = self.target {
            // The fewest dynos that meet it, between the largest count that does not and
            // the smallest that does.
            let fail = rows
                .iter()
                .filter(|r| !r.meets(target))
                .map(|r| r.dynos)
                .max();
            let pass = rows
                .iter()
                .filter(|r| r.meets(target))
                .map(|r| r.dynos)
                .min();
            let (mut lo, mut hi) = match (fail, pass) {
                (Some(f), Some(p)) if f < p => (f, p),
                (Some(f), None) => {
                    // Not met even at 50 %: double until it is (or give up at 64x).
                    let mut hi = f * 2;
                    while hi <= f * 64 {
                        let r = self.row(hi, workers);
                        let ok = r.meets(target);
                        rows.push(r);
                        if ok {
                            break;
                        }
                        hi *= 2;
                    }
                    (hi / 2, hi)
                }
                // Met at every rung: the fewest lies between the rung and the count
                // where the work outgrows the workers.
                (None, Some(p)) => (
                    ((self.rate * mean / workers as f64).floor() as usize).min(p),
                    p,
                ),
                _ => (0, 0),
            };
            // Only the two counts either side of the boundary go in the table.
            let mut edge = (None, None);
            while hi > lo + 1 {
                let mid = lo + (hi - lo) / 2;
                let r = self.row(mid, workers);
                if r.meets(target) {
                    hi = mid;
                    edge.1 = Some(r);
                } else {
                    lo = mid;
                    edge.0 = Some(r);
                }
            }
            rows.extend(edge.0.filter(|r| r.dynos == lo));
            rows.extend(edge.1.filter(|r| r.dynos == hi));
        }
        rows.sort_by_key(|r| r.dynos);
        rows.dedup_by_key(|r| r.dynos);
        self.rows.extend(rows);
    }

    /// The configuration that meets the target for the least cost (fewest dynos; then
    /// the shorter queue).
    pub fn cheapest(&self) -> Option<&Row> {
        let target = self.target?;
        self.rows.iter().filter(|r| r.meets(target)).min_by(|a, b| {
            a.dynos.cmp(&b.dynos).then(
                a.outcome
                    .map(|o| o.queue[2])
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.outcome.map(|o| o.queue[2]).unwrap_or(f64::MAX)),
            )
        })
    }

    /// The report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "runicorn plan: {:.1} requests/s ({:.0} a minute); service time {}; router {}",
            self.rate,
            self.rate * 60.0,
            self.service.describe(),
            self.router.as_str()
        );
        let memory = match (self.memory, self.max_workers()) {
            (Some((base, per)), Some(max)) => format!(
                "{} ({:.0} MB, {:.0} % headroom): base {base:.1} MB + {per:.1} MB a worker, so at most {max} workers a dyno",
                self.dyno.name,
                self.dyno.quota_mb,
                self.headroom * 100.0
            ),
            _ => format!(
                "{} ({:.0} MB); memory per worker unknown (--worker-mb, or --lines): not checked",
                self.dyno.name, self.dyno.quota_mb
            ),
        };
        let _ = writeln!(s, "dyno: {memory}");
        let _ = writeln!(
            s,
            "simulated: {} requests a configuration, Poisson arrivals, the first sixth as warm-up, seed {}{}",
            self.requests,
            self.seed,
            if self.transit > 0.0 {
                format!(
                    "; {} of transit added to every queue time",
                    format_ms(self.transit * 1000.0)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:>7} {:>8} {:>6} {:>11} {:>11} {:>11} {:>7}  memory",
            "dynos", "workers", "util", "queue p50", "queue p95", "queue p99", "waited"
        );
        let ms = |v: f64| format_ms(v * 1000.0);
        for r in &self.rows {
            let fits = match r.fits {
                Some(true) => "fits",
                Some(false) => "too big",
                None => "?",
            };
            let mark = match self.target {
                Some(t) if r.meets(t) => "  meets target",
                _ => "",
            };
            match r.outcome {
                Some(o) => {
                    let _ = writeln!(
                        s,
                        "{:>7} {:>8} {:>5.0}% {:>11} {:>11} {:>11} {:>6.0}%  {fits}{mark}",
                        r.dynos,
                        r.workers,
                        r.utilisation * 100.0,
                        ms(o.queue[0]),
                        ms(o.queue[1]),
                        ms(o.queue[2]),
                        o.waited * 100.0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "{:>7} {:>8} {:>5.0}%  unstable: more work than workers, the queue grows without bound  {fits}",
                        r.dynos,
                        r.workers,
                        r.utilisation * 100.0
                    );
                }
            }
        }
        if self
            .rows
            .iter()
            .any(|r| r.outcome.is_some() && r.utilisation > 0.95)
        {
            let _ = writeln!(
                s,
                "(above 95 % utilisation a minute of traffic may not reach a steady state: a longer busy spell queues more)"
            );
        }
        let _ = writeln!(s);
        match (self.target, self.cheapest()) {
            (Some(t), Some(r)) => {
                let o = r.outcome.expect("a met target was simulated");
                let _ = writeln!(
                    s,
                    "cheapest meeting queue p99 <= {}: {} dynos x {} workers ({}, {:.0} standard-1x cost units): utilisation {:.0} %, queue p99 {}",
                    ms(t),
                    r.dynos,
                    r.workers,
                    self.dyno.name,
                    r.dynos as f64 * cost_units(&self.dyno),
                    r.utilisation * 100.0,
                    ms(o.queue[2])
                );
            }
            (Some(t), None) => {
                let _ = writeln!(
                    s,
                    "no configuration tried meets queue p99 <= {}: try more dynos (--dynos) or more workers (--workers)",
                    ms(t)
                );
            }
            (None, _) => {}
        }
        s
    }

    /// Queue p99 against dynos, one line per worker count, and the target.
    pub fn chart(&self) -> Chart {
        let mut workers: Vec<usize> = self.rows.iter().map(|r| r.workers).collect();
        workers.sort_unstable();
        workers.dedup();
        let mut series: Vec<Series> = workers
            .iter()
            .map(|w| {
                let points = self
                    .rows
                    .iter()
                    .filter(|r| r.workers == *w)
                    .filter_map(|r| Some((r.dynos as f64, r.outcome?.queue[2] * 1000.0)))
                    .collect();
                Series::new(format!("{w} workers a dyno"), points)
            })
            .collect();
        if let Some(t) = self.target {
            let xs: Vec<f64> = self.rows.iter().map(|r| r.dynos as f64).collect();
            let (lo, hi) = (
                xs.iter().copied().fold(f64::MAX, f64::min),
                xs.iter().copied().fold(0.0, f64::max),
            );
            series.push(Series::dashed(
                "target",
                vec![(lo, t * 1000.0), (hi, t * 1000.0)],
            ));
        }
        Chart {
            title: format!(
                "Queue time p99 by fleet size: {:.0} requests/s, router {}",
                self.rate,
                self.router.as_str()
            ),
            x_label: "dynos".into(),
            panels: vec![Panel {
                y_label: "queue p99, ms".into(),
                series,
            }],
        }
    }
}

/// Builds the plan from settings (and the lines' text, if `--lines` was given).
fn build(s: &Settings, lines: Option<&FromLines>) -> Result<Plan, String> {
    let rate = s
        .rate
        .or(lines.and_then(|l| l.rate))
        .ok_or("no request rate: give --rpm or --rps (or --lines with runicorn's request lines)")?;
    let service = match (&s.service, lines.and_then(|l| l.service)) {
        (Some(svc), _) => svc.clone(),
        (None, Some([p50, p95, p99])) => {
            Service::from_percentiles(vec![(0.50, p50), (0.95, p95), (0.99, p99)]).ok_or(
                "the lines' service percentiles cannot make a distribution; give --service",
            )?
        }
        (None, None) => {
            return Err(
                "no service time: give --service (or --lines with runicorn's request lines)".into(),
            );
        }
    };
    let dyno = match (s.dyno_given, lines.and_then(|l| l.quota_mb)) {
        (false, Some(q)) => advice::dyno_size_of(q).unwrap_or(DynoSize {
            name: "the lines' dyno",
            quota_mb: q,
            process_limit: None,
        }),
        _ => s.dyno,
    };
    let memory = match (s.base_mb, s.worker_mb, lines.and_then(|l| l.memory)) {
        (base, Some(per), from) => Some((base.or(from.map(|m| m.0)).unwrap_or(0.0), per)),
        (Some(base), None, Some((_, per))) => Some((base, per)),
        (None, None, from) => from,
        (Some(_), None, None) => None,
    };
    let requests = s
        .requests
        .unwrap_or_else(|| ((rate * 60.0) as usize).clamp(200_000, 2_000_000));
    Ok(Plan {
        rate,
        service,
        router: s.router,
        dyno,
        memory,
        headroom: s.headroom,
        requests,
        seed: s.seed,
        transit: s.transit,
        target: s.target,
        rows: Vec::new(),
    })
}

/// Runs `plan` with `args` (after the word `plan`); returns the exit code.
pub fn main(program: &str, args: &[String]) -> i32 {
    let settings = match cli::settings_or_exit(program, "plan", parse_flags(args), || help(program))
    {
        Ok(s) => s,
        Err(code) => return code,
    };
    let lines = match &settings.lines {
        None => None,
        Some(path) => {
            let mut text = String::new();
            let read = if path.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)
            } else {
                std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
            };
            if let Err(e) = read {
                eprintln!("{program} plan: cannot read {}: {e}", path.display());
                return 1;
            }
            Some(from_lines(&text))
        }
    };
    let mut plan = match build(&settings, lines.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{program} plan: {e}");
            return EXIT_USAGE;
        }
    };
    let workers = settings.workers.clone().unwrap_or_else(|| {
        let max = plan.max_workers().unwrap_or(16).clamp(1, 16);
        let mut w: Vec<usize> = [1, 2, 4, 8, 16].into_iter().filter(|w| *w <= max).collect();
        if !w.contains(&max) {
            w.push(max);
        }
        w
    });
    for w in &workers {
        match &settings.dynos {
            Some(dynos) => {
                for d in dynos {
                    let row = plan.row(*d, *w);
                    plan.rows.push(row);
                }
            }
            None => plan.explore(*w),
        }
    }
    plan.rows.sort_by_key(|r| (r.workers, r.dynos));
    print!("{}", plan.report());
    if let Some(path) = &settings.chart
        && let Err(e) = crate::metrics::write_atomically(path, &crate::chart::render(&plan.chart()))
    {
        eprintln!("{program} plan: {e}");
        return 1;
    }
    match (plan.target, plan.cheapest()) {
        (Some(_), None) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
