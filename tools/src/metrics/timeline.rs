//! What the dashboard plots: each [`Record`] turned into a small JSON event with its time
//! and dyno, and the marks for the time axis (R14, R15, restarts, worker ends and
//! recycles). The page draws only what these events say; rates (requests per second,
//! pages paged per second) are computed here, where they can be tested.
//!
//! Pure: the caller says when each line arrived; no clock, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::parse::{Event, Origin, Record};
use super::summary::DynoAdvice;

/// runicorn's and Heroku's default interval between sample sets, seconds: the spacing given
/// to a burst of lines without time stamps, and the interval assumed for a request line
/// with no earlier one to measure from.
pub const DEFAULT_INTERVAL: f64 = 20.0;

/// Lines without a time stamp that arrive closer together than this belong to a replay
/// (a recorded file): their sample sets are spaced [`DEFAULT_INTERVAL`] apart.
const BURST: f64 = 1.0;

/// A JSON object under construction, one field at a time.
pub struct Obj(String);

impl Obj {
    /// `{"k":"<kind>"`, open.
    pub fn kind(kind: &str) -> Obj {
        let mut o = Obj(String::with_capacity(128));
        o.0.push('{');
        o.str("k", kind)
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_string(&mut self.0, k);
        self.0.push(':');
    }

    /// A string field.
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        push_string(&mut self.0, v);
        self
    }

    /// A number field (`null` when not finite); at most 3 decimals.
    pub fn num(mut self, k: &str, v: f64) -> Obj {
        self.key(k);
        push_number(&mut self.0, v);
        self
    }

    /// A number field left out when `None`.
    pub fn opt(self, k: &str, v: Option<f64>) -> Obj {
        match v {
            Some(v) => self.num(k, v),
            None => self,
        }
    }

    /// A field whose value is JSON already.
    pub fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.0.push_str(json);
        self
    }

    /// The object, closed.
    pub fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `v` as a JSON number: integers as such, others with up to 3 decimals; `null` if not
/// finite (JSON has no NaN).
pub fn push_number(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str("null");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let s = format!("{v:.3}");
        out.push_str(s.trim_end_matches('0').trim_end_matches('.'));
    }
}

/// `v` as a JSON string, escaped.
pub fn push_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `<` escaped too, so that no event can close a script element.
            c if (c as u32) < 0x20 || c == '<' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn array(values: impl IntoIterator<Item = f64>) -> String {
    let mut s = String::from("[");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_number(&mut s, v);
    }
    s.push(']');
    s
}

/// The per-process memory of one sample set, collected until its request line.
#[derive(Debug, Default)]
struct SetMemory {
    master_pss: Option<f64>,
    /// slot -> PSS, USS (MB).
    workers: BTreeMap<u64, (f64, Option<f64>)>,
}

#[derive(Debug, Default)]
struct DynoLine {
    dyno_id: Option<String>,
    /// (time, pages in, pages out) of the last dyno memory line with paging counters, per
    /// writer (the platform's and runicorn's count differently).
    paging: [Option<(f64, f64, f64)>; 2],
    last_requests: Option<f64>,
    pids: BTreeMap<u64, i64>,
    /// Slots whose end a log line marked since the last sample set: their new pid is not
    /// marked again as a recycle.
    ended: BTreeSet<u64>,
    set: SetMemory,
    /// Whether any line of this dyno came before: the first start is no restart.
    seen: bool,
}

/// Turns records into the dashboard's events.
#[derive(Debug, Default)]
pub struct Timeline {
    dynos: BTreeMap<String, DynoLine>,
    last_source: Option<String>,
    /// For lines without a time stamp: the time given to the current sample set, when it
    /// arrived, and whether the set is still open.
    set_time: Option<(f64, f64)>,
    set_open: bool,
    /// The time of the latest record that gave an event.
    latest: Option<f64>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// The time of the latest record that gave an event (where the advice goes on the
    /// time axis).
    pub fn latest(&self) -> Option<f64> {
        self.latest
    }

    /// The time of a record: its own stamp, else the time of the sample set it belongs to
    /// (the arrival time, or, in a burst of untimed lines, [`DEFAULT_INTERVAL`] after the
    /// previous set).
    fn time_of(&mut self, rec: &Record, arrival: f64) -> f64 {
        if let Some(t) = rec.time {
            return t;
        }
        if !self.set_open || self.set_time.is_none() {
            let t = match self.set_time {
                Some((prev, at)) if arrival - at < BURST => prev + DEFAULT_INTERVAL,
                Some((prev, _)) => arrival.max(prev + 0.001),
                None => arrival,
            };
            self.set_time = Some((t, arrival));
            self.set_open = true;
        }
        self.set_time.map_or(arrival, |(t, _)| t)
    }

    /// The events `rec` gives (none, one, or a mark and a point). `arrival` is when the line
    /// was read, seconds since the Unix epoch.
    pub fn feed(&mut self, rec: &Record, arrival: f64) -> Vec<String> {
        let t = self.time_of(rec, arrival);
        let source = rec
            .source
            .clone()
            .or_else(|| self.last_source.clone())
            .unwrap_or_else(|| "web.1".to_string());
        self.last_source = Some(source.clone());
        let d = self.dynos.entry(source.clone()).or_default();
        let at = |kind: &str| Obj::kind(kind).num("t", t).str("d", &source);
        let mark = |what: &str, text: &str| at("mark").str("what", what).str("text", text).end();
        let mut out = Vec::new();
        if let Some(id) = &rec.dyno_id {
            if d.dyno_id.as_ref().is_some_and(|old| old != id) {
                out.push(mark("restart", &format!("{source} restarted (dyno {id})")));
                d.pids.clear();
                d.paging = [None, None];
            }
            d.dyno_id = Some(id.clone());
        }
        let completes_set = matches!(rec.event, Event::Requests(_))
            || matches!(rec.event, Event::DynoMemory(_) if rec.origin == Origin::Platform);
        match &rec.event {
            Event::Load { avg_1m } => {
                if let Some(v) = avg_1m {
                    out.push(at("load").num("v", *v).end());
                }
            }
            Event::DynoMemory(m) => {
                let who = match rec.origin {
                    Origin::Platform => 0,
                    Origin::App => 1,
                };
                let paging = m.paging.and_then(|(pin, pout)| {
                    let prev = d.paging[who].replace((t, pin, pout));
                    let (t0, in0, out0) = prev?;
                    let (dt, pages) = (t - t0, (pin - in0) + (pout - out0));
                    // A counter that went back is a restart: no rate across it.
                    (dt > 0.0 && pages >= 0.0).then(|| pages / dt)
                });
                out.push(
                    at("mem")
                        .str("from", ["platform", "runicorn"][who])
                        .num("total", m.total)
                        .opt("rss", m.rss)
                        .opt("swap", m.swap)
                        .opt("cache", m.cache)
                        .opt("quota", m.quota)
                        .opt("paging", paging)
                        .end(),
                );
            }
            Event::Master { memory, .. } => d.set.master_pss = memory.pss,
            Event::Worker {
                slot, pid, memory, ..
            } => {
                if let (Some(pid), Some(old)) = (pid, d.pids.get(slot))
                    && old != pid
                    && !d.ended.contains(slot)
                {
                    out.push(mark(
                        "recycle",
                        &format!("{source} worker {slot} replaced (pid {old} -> {pid})"),
                    ));
                }
                if let Some(pid) = pid {
                    d.pids.insert(*slot, *pid);
                }
                if let Some(pss) = memory.pss {
                    d.set.workers.insert(*slot, (pss, memory.uss));
                }
            }
            Event::Requests(r) => {
                let interval = d
                    .last_requests
                    .map(|prev| t - prev)
                    .filter(|dt| *dt > 0.0 && *dt <= 30.0 * DEFAULT_INTERVAL)
                    .unwrap_or(DEFAULT_INTERVAL);
                d.last_requests = Some(t);
                let rate = |n: u64| n as f64 / interval;
                let classes = match r.by_class {
                    Some(c) => array(c.iter().map(|n| rate(*n))),
                    // Only the total and the 5xx: the rest counted as 2xx-4xx unknown.
                    None => array([
                        0.0,
                        rate(r.requests.saturating_sub(r.requests_5xx)),
                        0.0,
                        0.0,
                        rate(r.requests_5xx),
                    ]),
                };
                let mut o = at("req")
                    .num("rps", rate(r.requests))
                    .raw("classes", &classes)
                    .num("interval", interval);
                if let Some(s) = r.service {
                    o = o.raw("service", &array(s));
                }
                if let Some(q) = r.queue {
                    o = o.raw("queue", &array(q));
                }
                if let Some((n, limit)) = r.backlog {
                    o = o
                        .num("backlog", n as f64)
                        .num("backlog_limit", limit as f64);
                }
                o = o
                    .opt("busy", r.busy.map(|b| b as f64))
                    .opt("idle", r.idle.map(|b| b as f64));
                out.push(o.end());
                let set = std::mem::take(&mut d.set);
                if !set.workers.is_empty() {
                    let mut workers = String::from("{");
                    for (i, (slot, (pss, uss))) in set.workers.iter().enumerate() {
                        if i > 0 {
                            workers.push(',');
                        }
                        push_string(&mut workers, &slot.to_string());
                        workers.push(':');
                        workers.push_str(&array([*pss, uss.unwrap_or(f64::NAN)]));
                    }
                    workers.push('}');
                    out.push(
                        at("procs")
                            .opt("master", set.master_pss)
                            .raw("workers", &workers)
                            .end(),
                    );
                }
                d.ended.clear();
            }
            Event::ProcessRunning { .. } => {}
            Event::R14 => out.push(mark("R14", "R14 memory quota exceeded: the dyno swaps")),
            Event::R15 => out.push(mark(
                "R15",
                "R15 memory quota vastly exceeded: the dyno is killed",
            )),
            Event::WorkerOom => out.push(mark("oom", "a worker was killed, perhaps out of memory")),
            Event::WorkerOverLimit => out.push(mark(
                "recycle",
                "a worker over --max-worker-memory is replaced",
            )),
            Event::WorkerEnd { slot, reason } => {
                if let Some(slot) = slot {
                    d.ended.insert(*slot);
                }
                let who = slot.map_or("a worker".to_string(), |s| format!("worker {s}"));
                let what = if reason == "timeout" {
                    "timeout"
                } else {
                    "exit"
                };
                out.push(mark(what, &format!("{source} {who} ended: {reason}")));
            }
            Event::Started => {
                d.pids.clear();
                if d.seen {
                    out.push(mark("restart", &format!("{source} started again")));
                }
            }
        }
        d.seen = true;
        if completes_set {
            self.set_open = false;
        }
        if !out.is_empty() {
            self.latest = Some(t);
        }
        out
    }
}

/// The advice event: every dyno's [`DynoAdvice`] at time `t`.
pub fn advice_event(t: f64, report: &[DynoAdvice]) -> String {
    let mut dynos = String::from("[");
    for (i, a) in report.iter().enumerate() {
        if i > 0 {
            dynos.push(',');
        }
        let mut sizes = String::from("[");
        for (j, (name, short, limit)) in a.by_size.iter().enumerate() {
            if j > 0 {
                sizes.push(',');
            }
            sizes.push_str(
                &Obj(String::from("{"))
                    .str("size", name)
                    .str("advice", short)
                    .str("bound", limit)
                    .end(),
            );
        }
        sizes.push(']');
        let mut lines = String::from("[");
        for (j, l) in a.lines.iter().enumerate() {
            if j > 0 {
                lines.push(',');
            }
            push_string(&mut lines, l);
        }
        lines.push(']');
        let mut o = Obj(String::from("{"))
            .str("d", &a.source)
            .num("quota", a.quota_mb)
            .str("size", a.size.unwrap_or(""))
            .num("workers", a.workers as f64)
            .str("reason", &a.reason);
        if let Some((low, high)) = a.range {
            o = o.raw("range", &array([low as f64, high as f64]));
        }
        dynos.push_str(&o.raw("sizes", &sizes).raw("lines", &lines).end());
    }
    dynos.push(']');
    Obj::kind("advice").num("t", t).raw("dynos", &dynos).end()
}

#[cfg(test)]
mod tests;
