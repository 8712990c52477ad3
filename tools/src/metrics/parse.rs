//! Reading one log line: the prefix that `heroku logs` or a syslog drain puts before it, the
//! logfmt pairs, and what the line reports ([`Event`]).
//!
//! Pure functions over text. Lines that say nothing this tool uses (router lines, app logs)
//! give `None`; nothing here fails on garbled input.

use std::borrow::Cow;

use runicorn::internals::date::{civil_from_days, days_from_civil};

/// Who wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The platform: `heroku[web.1]:`, `heroku/web.1:`, a drain's `heroku web.1`, or a bare
    /// line whose `dyno=` is Heroku's `heroku.<app>.<uuid>`.
    Platform,
    /// The app, here runicorn: `app[web.1]:`, or a bare line.
    App,
}

/// What the prefix of a line says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prefix<'a> {
    /// The time stamp, as seconds since the Unix epoch.
    pub time: Option<f64>,
    /// `heroku` or `app` (or a drain's app name).
    pub origin: Option<&'a str>,
    /// The process: `web.1`, `router`, `worker.2`.
    pub process: Option<&'a str>,
}

/// Splits a line into its prefix and its message.
///
/// Recognised, with an optional leading octet count or a log service's own time stamp:
/// - `2016-08-14T14:26:11.096375+00:00 heroku[web.1]: msg` (`heroku logs`);
/// - `Jan 08 10:55:11 host heroku/web.1:  msg` (a syslog viewer, such as Papertrail);
/// - `<45>1 2015-10-14T18:00:03.978860+00:00 host heroku web.1 - - msg` (a syslog drain,
///   RFC 5424; the host may be missing);
/// - a bare message (`source=web.1 ...`), which is what runicorn prints.
pub fn split_prefix(line: &str) -> (Prefix<'_>, &str) {
    let tokens = tokens_with_offsets(line, 10);
    // RFC 5424: "<PRI>VERSION TIMESTAMP [HOST] APP PROCID MSGID SD MSG".
    if let Some(i) = tokens.iter().position(|&(_, t)| is_syslog_pri(t)) {
        let after: Vec<(usize, &str)> = tokens[i + 1..].to_vec();
        let time = after.first().and_then(|&(_, t)| parse_iso_time(t));
        if let Some(dash) = after.iter().position(|&(_, t)| t == "-") {
            let names = &after[1.min(dash)..dash];
            let (origin, process) = match names {
                [.., o, p] => (Some(o.1), Some(p.1)),
                [o] => (Some(o.1), None),
                [] => (None, None),
            };
            // Skip MSGID and SD ("- -"), which Heroku leaves empty.
            let mut body_at = after[dash].0 + 1;
            if let Some(&(at, "-")) = after.get(dash + 1) {
                body_at = at + 1;
            }
            let prefix = Prefix {
                time,
                origin,
                process,
            };
            return (prefix, line.get(body_at..).unwrap_or("").trim_start());
        }
    }
    // "ORIGIN[PROCESS]:" or "ORIGIN/PROCESS:" within the first tokens, none holding '='.
    for (k, &(at, token)) in tokens.iter().enumerate().take(6) {
        if token.contains('=') {
            break;
        }
        let Some(name) = token.strip_suffix(':') else {
            continue;
        };
        let split = if let Some(inner) = name.strip_suffix(']') {
            inner.split_once('[')
        } else {
            name.split_once('/')
        };
        let Some((origin, process)) = split.filter(|(o, p)| !o.is_empty() && !p.is_empty()) else {
            continue;
        };
        let before: Vec<&str> = tokens[..k].iter().map(|&(_, t)| t).collect();
        let time = before
            .iter()
            .find_map(|t| parse_iso_time(t))
            .or_else(|| parse_syslog_time(&before));
        let prefix = Prefix {
            time,
            origin: Some(origin),
            process: Some(process),
        };
        return (prefix, line[at + token.len()..].trim_start());
    }
    (Prefix::default(), line.trim_start())
}

/// The whitespace-separated tokens of `line` with their byte offsets, at most `max`.
fn tokens_with_offsets(line: &str, max: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
                if out.len() == max {
                    return out;
                }
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// `<134>1`: a syslog priority and the RFC 5424 version.
fn is_syslog_pri(token: &str) -> bool {
    let Some(rest) = token.strip_prefix('<') else {
        return false;
    };
    let Some((pri, version)) = rest.split_once('>') else {
        return false;
    };
    !pri.is_empty()
        && pri.len() <= 3
        && pri.bytes().all(|b| b.is_ascii_digit())
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
}

/// `HH:MM:SS(.fraction)` as seconds of the day.
fn parse_clock(text: &str) -> Option<f64> {
    let mut parts = text.splitn(3, ':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    (h < 24 && m < 60 && (0.0..61.0).contains(&s)).then(|| f64::from(h * 3600 + m * 60) + s)
}

/// An RFC 3339 time stamp (`2016-08-14T14:26:11.096375+00:00`, `...Z`), as seconds since
/// the Unix epoch.
pub fn parse_iso_time(text: &str) -> Option<f64> {
    let (date, rest) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-');
    let y: i64 = ymd.next()?.parse().ok()?;
    let m: u32 = ymd.next()?.parse().ok()?;
    let d: u32 = ymd.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || date.len() != 10 {
        return None;
    }
    let (clock, offset) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let minutes = oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?;
        (c, sign * minutes * 60)
    };
    let secs = parse_clock(clock)?;
    Some((days_from_civil(y, m, d) * 86_400 - offset) as f64 + secs)
}

/// A syslog viewer's `Jan 08 10:55:11` (three tokens, no year: the year 2000 is assumed,
/// which keeps differences right within a year).
fn parse_syslog_time(tokens: &[&str]) -> Option<f64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    tokens.windows(3).find_map(|w| {
        let m = MONTHS.iter().position(|&name| name == w[0])? as u32 + 1;
        let d: u32 = w[1].parse().ok().filter(|d| (1..=31).contains(d))?;
        let secs = parse_clock(w[2])?;
        Some((days_from_civil(2000, m, d) * 86_400) as f64 + secs)
    })
}

/// Seconds since the Unix epoch as `2016-08-14T14:26:11Z`.
pub fn format_time(epoch_secs: f64) -> String {
    let secs = epoch_secs.floor() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The `key=value` pairs of a logfmt message, in order.
///
/// The rules of `kr/logfmt` (the format runicorn's lines and Heroku's follow): a key is a run
/// of bytes above space other than `=` and `"`; a value is either the bytes up to the next
/// space (they may hold `=`), or a double-quoted string with `\"`, `\\`, `\n`, `\r`, `\t`
/// and `\u{...}` escapes (as `docs/logging.md` writes them). A key without
/// `=` has an empty value (`Error R14 (Memory` gives three such keys). A lone `=` or `"` is
/// skipped.
pub fn logfmt(text: &str) -> Vec<(&str, Cow<'_, str>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |b: u8| b > b' ' && b != b'=' && b != b'"';
    while i < bytes.len() {
        if !ident(bytes[i]) {
            i += 1;
            continue;
        }
        let key_start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let key = &text[key_start..i];
        if i >= bytes.len() || bytes[i] != b'=' {
            out.push((key, Cow::Borrowed("")));
            continue;
        }
        i += 1; // '='
        if i < bytes.len() && bytes[i] == b'"' {
            let (value, next) = quoted(text, i + 1);
            out.push((key, value));
            i = next;
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] > b' ' {
                i += 1;
            }
            out.push((key, Cow::Borrowed(&text[start..i])));
        }
    }
    out
}

/// A quoted value starting at byte `start` (after the opening quote); returns the value and
/// the offset after the closing quote (or the end of the text when it never closes).
fn quoted(text: &str, start: usize) -> (Cow<'_, str>, usize) {
    let rest = &text[start..];
    match rest.find(['"', '\\']) {
        Some(end) if rest.as_bytes()[end] == b'"' => {
            return (Cow::Borrowed(&rest[..end]), start + end + 1);
        }
        None => return (Cow::Borrowed(rest), text.len()),
        Some(_) => {}
    }
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (Cow::Owned(value), start + at + 1),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some('t') => value.push('\t'),
                Some('u') => {
                    // \u{1b}, as runicorn writes control characters.
                    let tail = &rest[at + 2..];
                    let parsed = tail.strip_prefix('{').and_then(|t| {
                        let (hex, _) = t.split_once('}')?;
                        let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                        Some((c, hex.len() + 2))
                    });
                    match parsed {
                        Some((c, len)) => {
                            value.push(c);
                            for _ in 0..len {
                                chars.next();
                            }
                        }
                        None => value.push('u'),
                    }
                }
                Some(other) => value.push(other),
                None => {}
            },
            c => value.push(c),
        }
    }
    (Cow::Owned(value), text.len())
}

/// A figure with its unit stripped: `62.33MB`, `0.023ms`, `348836pages`, `20s`, `2.46`.
/// `kB` and `GB` are turned into MB; other units are dropped as they are.
pub fn number(value: &str) -> Option<f64> {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(end);
    let n: f64 = digits.parse().ok()?;
    let scale = match unit {
        "kB" | "KB" => 1.0 / 1024.0,
        "GB" => 1024.0,
        _ => 1.0,
    };
    n.is_finite().then_some(n * scale)
}

/// Memory figures of one process (MB).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcFigures {
    /// `sample#memory_rss`.
    pub rss: Option<f64>,
    /// `sample#memory_pss`.
    pub pss: Option<f64>,
    /// `sample#memory_uss`.
    pub uss: Option<f64>,
    /// `sample#memory_swap`.
    pub swap: Option<f64>,
    /// `sample#memory_pte`: the process's page tables.
    pub pte: Option<f64>,
    /// `sample#threads`.
    pub threads: Option<u64>,
}

/// The request line's figures (times in ms).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestFigures {
    /// `count#requests`.
    pub requests: u64,
    /// `count#requests_5xx`.
    pub requests_5xx: u64,
    /// `sample#service_p50`, `_p95`, `_p99`.
    pub service: Option<[f64; 3]>,
    /// `sample#service_mean` (exact, where the percentiles are bucket midpoints).
    pub service_mean: Option<f64>,
    /// `count#queued_requests`.
    pub queued: u64,
    /// `sample#queue_p50`, `_p95`, `_p99`.
    pub queue: Option<[f64; 3]>,
    /// `sample#backlog`, `sample#backlog_limit`.
    pub backlog: Option<(u64, u64)>,
    /// `sample#workers_busy`.
    pub busy: Option<u64>,
    /// `sample#workers_idle`.
    pub idle: Option<u64>,
    /// `count#requests_1xx` to `count#requests_5xx`, when the line has them.
    pub by_class: Option<[u64; 5]>,
}

/// The dyno memory line's figures (MB).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DynoFigures {
    /// `sample#memory_total`.
    pub total: f64,
    /// `sample#memory_rss`.
    pub rss: Option<f64>,
    /// `sample#memory_cache`.
    pub cache: Option<f64>,
    /// `sample#memory_swap`.
    pub swap: Option<f64>,
    /// `sample#memory_quota`.
    pub quota: Option<f64>,
    /// `sample#memory_pgpgin` and `sample#memory_pgpgout`: pages paged in and out since the
    /// dyno started (cumulative counters).
    pub paging: Option<(f64, f64)>,
}

/// What a line reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `sample#load_avg_1m` (Heroku's lines may carry only some of the three).
    Load {
        /// The 1-minute load average, if present.
        avg_1m: Option<f64>,
    },
    /// The dyno's memory.
    DynoMemory(DynoFigures),
    /// runicorn's master line.
    Master {
        /// Its pid.
        pid: Option<i64>,
        /// Its memory.
        memory: ProcFigures,
        /// `sample#workers`.
        workers: Option<u64>,
    },
    /// One of runicorn's worker lines.
    Worker {
        /// The slot.
        slot: u64,
        /// Its pid.
        pid: Option<i64>,
        /// Its memory.
        memory: ProcFigures,
        /// `sample#requests` (since it started).
        requests: Option<u64>,
        /// `sample#age`, seconds.
        age: Option<f64>,
    },
    /// runicorn's request line: the last of a sample set.
    Requests(RequestFigures),
    /// Heroku's `Process running mem=1210M(236.5%)`.
    ProcessRunning {
        /// The memory, MB.
        mem: f64,
        /// Its share of the quota, percent.
        percent: Option<f64>,
    },
    /// Heroku's `Error R14 (Memory quota exceeded)`: the dyno swaps.
    R14,
    /// Heroku's `Error R15 (Memory quota vastly exceeded)`: the dyno is killed.
    R15,
    /// runicorn's `msg="worker killed"` with `reason="perhaps out of memory"`.
    WorkerOom,
    /// runicorn's `msg="worker over its memory limit: replacing it after its request"`
    /// (`--max-worker-memory`).
    WorkerOverLimit,
    /// Any other end of a worker: runicorn's `msg="worker exited"` or `msg="worker killed"`
    /// (a recycle after `--max-requests`, a `--timeout` kill, a crash).
    WorkerEnd {
        /// The slot, if the line names it.
        slot: Option<u64>,
        /// What ended it, in the line's words: its `reason`, else its signal or exit code.
        reason: String,
    },
    /// The server or the dyno (re)started: runicorn's `msg="master started"`, the
    /// platform's `Starting process with command ...`.
    Started,
}

/// One line, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When, if the prefix said.
    pub time: Option<f64>,
    /// Who wrote it.
    pub origin: Origin,
    /// `source=`, else the prefix's process, else `None` (a bare line without a source).
    pub source: Option<String>,
    /// `dyno=`.
    pub dyno_id: Option<String>,
    /// What it says.
    pub event: Event,
}

/// Reads one line; `None` when it says nothing this tool uses.
pub fn parse_line(line: &str) -> Option<Record> {
    let (prefix, body) = split_prefix(line.trim_end());
    let pairs = logfmt(body);
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    };
    let num = |key: &str| get(key).and_then(number);
    let int = |key: &str| num(key).filter(|n| *n >= 0.0).map(|n| n as u64);
    let source = get("source")
        .map(str::to_string)
        .or_else(|| prefix.process.map(str::to_string));
    let dyno_id = get("dyno").map(str::to_string);
    let origin = match prefix.origin {
        Some("app") => Origin::App,
        Some(_) => Origin::Platform,
        None if dyno_id.as_deref().is_some_and(|d| d.starts_with("heroku.")) => Origin::Platform,
        None => Origin::App,
    };
    let procs = || ProcFigures {
        rss: num("sample#memory_rss"),
        pss: num("sample#memory_pss"),
        uss: num("sample#memory_uss"),
        swap: num("sample#memory_swap"),
        pte: num("sample#memory_pte"),
        threads: int("sample#threads"),
    };
    let triple = |name: &str| {
        Some([
            num(&format!("sample#{name}_p50"))?,
            num(&format!("sample#{name}_p95"))?,
            num(&format!("sample#{name}_p99"))?,
        ])
    };
    let metric_line = get("source").is_some() && get("at").is_none();
    let event = if metric_line {
        if let Some(requests) = int("count#requests") {
            Event::Requests(RequestFigures {
                requests,
                requests_5xx: int("count#requests_5xx").unwrap_or(0),
                service: triple("service"),
                service_mean: num("sample#service_mean"),
                queued: int("count#queued_requests").unwrap_or(0),
                queue: triple("queue"),
                backlog: int("sample#backlog").zip(int("sample#backlog_limit")),
                busy: int("sample#workers_busy"),
                idle: int("sample#workers_idle"),
                by_class: (|| {
                    let class = |c: u8| int(&format!("count#requests_{c}xx"));
                    Some([class(1)?, class(2)?, class(3)?, class(4)?, class(5)?])
                })(),
            })
        } else if get("process") == Some("master") {
            Event::Master {
                pid: num("pid").map(|p| p as i64),
                memory: procs(),
                workers: int("sample#workers"),
            }
        } else if let Some(slot) = get("worker").and_then(|w| w.parse::<u64>().ok()) {
            Event::Worker {
                slot,
                pid: num("pid").map(|p| p as i64),
                memory: procs(),
                requests: int("sample#requests"),
                age: num("sample#age"),
            }
        } else if let Some(total) = num("sample#memory_total") {
            Event::DynoMemory(DynoFigures {
                total,
                rss: num("sample#memory_rss"),
                cache: num("sample#memory_cache"),
                swap: num("sample#memory_swap"),
                quota: num("sample#memory_quota"),
                paging: num("sample#memory_pgpgin").zip(num("sample#memory_pgpgout")),
            })
        } else if pairs.iter().any(|(k, _)| k.starts_with("sample#load_avg")) {
            Event::Load {
                avg_1m: num("sample#load_avg_1m"),
            }
        } else {
            return None;
        }
    } else if get("msg") == Some("worker killed") && get("reason") == Some("perhaps out of memory")
    {
        Event::WorkerOom
    } else if get("msg") == Some("worker over its memory limit: replacing it after its request") {
        Event::WorkerOverLimit
    } else if matches!(get("msg"), Some("worker exited" | "worker killed")) {
        let reason = get("reason")
            .map(|r| r.to_string())
            .or_else(|| get("signal").map(|s| format!("signal {s}")))
            .or_else(|| get("code").map(|c| format!("exit code {c}")))
            .unwrap_or_else(|| "exited".to_string());
        Event::WorkerEnd {
            slot: int("worker"),
            reason,
        }
    } else if get("msg") == Some("master started") || body.starts_with("Starting process with") {
        Event::Started
    } else if body.starts_with("Error R14") {
        Event::R14
    } else if body.starts_with("Error R15") {
        Event::R15
    } else if let Some(mem) = body.strip_prefix("Process running mem=") {
        // "1210M(236.5%)"
        let (size, percent) = mem.split_once('(').unwrap_or((mem, ""));
        let mem = number(size.trim_end_matches('M'))?;
        let percent = percent
            .split_once('%')
            .and_then(|(p, _)| p.parse::<f64>().ok());
        Event::ProcessRunning { mem, percent }
    } else {
        return None;
    };
    Some(Record {
        time: prefix.time,
        origin,
        source,
        dyno_id,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        logfmt(text)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_owned()))
            .collect()
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn logfmt_pairs() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("a=1 b=2", &[("a", "1"), ("b", "2")]),
            ("  a=1\tb=x.y  ", &[("a", "1"), ("b", "x.y")]),
            (
                r#"msg="worker ready" worker=0"#,
                &[("msg", "worker ready"), ("worker", "0")],
            ),
            (r#"a="q \"x\" \\ y""#, &[("a", r#"q "x" \ y"#)]),
            (r#"a="l1\nl2\tt""#, &[("a", "l1\nl2\tt")]),
            (r#"a="esc\u{1b}x""#, &[("a", "esc\u{1b}x")]),
            (r#"a="bad\u{zz}""#, &[("a", "badu{zz}")]),
            (r#"path="""#, &[("path", "")]),
            ("flag other=1", &[("flag", ""), ("other", "1")]),
            ("a= b=2", &[("a", ""), ("b", "2")]),
            ("=x y=1", &[("x", ""), ("y", "1")]),
            (r#"a="never closed"#, &[("a", "never closed")]),
            ("mem=1210M(236.5%)", &[("mem", "1210M(236.5%)")]),
            ("k=v=w", &[("k", "v=w")]),
            (
                "sample#memory_total=21.00MB",
                &[("sample#memory_total", "21.00MB")],
            ),
            ("é=ü", &[("é", "ü")]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(pairs(text), p(want), "{text:?}");
        }
    }

    #[test]
    fn prefixes() {
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            (
                "2016-08-14T14:26:11.096375+00:00 heroku[web.1]: source=web.1 x=1",
                Some("heroku"),
                Some("web.1"),
                "source=web.1 x=1",
            ),
            (
                "2026-01-01T00:00:00Z app[web.2]: source=web.2 worker=0",
                Some("app"),
                Some("web.2"),
                "source=web.2 worker=0",
            ),
            (
                "Jan 08 10:55:11 warm-cliffs-8392 heroku/web.1:  Error R14 (Memory quota exceeded) ",
                Some("heroku"),
                Some("web.1"),
                "Error R14 (Memory quota exceeded) ",
            ),
            (
                "129 <45>1 2015-10-14T18:00:03.978860+00:00 heroku web.1 - - Error R14 (Memory quota exceeded)",
                Some("heroku"),
                Some("web.1"),
                "Error R14 (Memory quota exceeded)",
            ),
            (
                "<134>1 2020-12-18T04:56:14+00:00 host heroku worker.1 - - Process running mem=558M(109.1%)",
                Some("heroku"),
                Some("worker.1"),
                "Process running mem=558M(109.1%)",
            ),
            (
                "source=web.1 dyno=vm a=1",
                None,
                None,
                "source=web.1 dyno=vm a=1",
            ),
            // A colon in a value is no prefix.
            (
                "source=web.1 note=a/b:",
                None,
                None,
                "source=web.1 note=a/b:",
            ),
            ("plain text: here", None, None, "plain text: here"),
        ];
        for &(line, origin, process, body) in cases {
            let (prefix, rest) = split_prefix(line);
            assert_eq!(
                (prefix.origin, prefix.process, rest),
                (origin, process, body),
                "{line}"
            );
        }
    }

    #[test]
    fn times() {
        let t = parse_iso_time("2016-08-14T14:26:11.096375+00:00").unwrap();
        assert!((t - 1_471_184_771.096_375).abs() < 1e-6, "{t}");
        assert_eq!(parse_iso_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_iso_time("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_iso_time("1969-12-31T19:00:00-05:00"), Some(0.0));
        assert_eq!(parse_iso_time("2016-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso_time("2016-01-01T25:00:00Z"), None);
        assert_eq!(parse_iso_time("web.1"), None);
        assert_eq!(parse_iso_time("T"), None);
        assert_eq!(format_time(1_471_184_771.9), "2016-08-14T14:26:11Z");
        assert_eq!(format_time(0.0), "1970-01-01T00:00:00Z");
        let (p, _) = split_prefix("Jan 08 10:55:11 host heroku/web.1: x");
        let (q, _) = split_prefix("Jan 08 10:55:31 host heroku/web.1: x");
        assert_eq!(q.time.unwrap() - p.time.unwrap(), 20.0);
    }

    #[test]
    fn numbers() {
        assert_eq!(number("62.33MB"), Some(62.33));
        assert_eq!(number("0.023ms"), Some(0.023));
        assert_eq!(number("348836pages"), Some(348836.0));
        assert_eq!(number("20s"), Some(20.0));
        assert_eq!(number("2.46"), Some(2.46));
        assert_eq!(number("2048kB"), Some(2.0));
        assert_eq!(number("1GB"), Some(1024.0));
        assert_eq!(number("MB"), None);
        assert_eq!(number(""), None);
        assert_eq!(number("NaN"), None);
    }

    #[test]
    fn worker_ends_and_starts() {
        let end = |line: &str| parse_line(line).map(|r| r.event);
        assert_eq!(
            end(
                r#"at=info msg="worker killed" worker=1 pid=7 signal=SIGKILL requests=3 reason=timeout"#
            ),
            Some(Event::WorkerEnd {
                slot: Some(1),
                reason: "timeout".into()
            })
        );
        assert_eq!(
            end(r#"at=info msg="worker exited" worker=0 pid=7 code=0 requests=1000"#),
            Some(Event::WorkerEnd {
                slot: Some(0),
                reason: "exit code 0".into()
            })
        );
        assert_eq!(
            end(
                r#"at=error msg="worker killed" worker=0 pid=7 signal=SIGKILL requests=2 reason="perhaps out of memory""#
            ),
            Some(Event::WorkerOom)
        );
        assert_eq!(
            end(r#"at=info msg="master started" pid=9680 workers=2"#),
            Some(Event::Started)
        );
        assert_eq!(
            end(
                "2026-12-04T10:00:00+00:00 heroku[web.1]: Starting process with command `./target/release/myapp`"
            ),
            Some(Event::Started)
        );
    }

    #[test]
    fn heroku_lines() {
        let r = parse_line("2016-08-14T14:26:11.096375+00:00 heroku[web.1]: source=web.1 dyno=heroku.55116999.d72a0fcf-23c8-4919-b268-d0656f7b4d6d sample#memory_total=62.33MB sample#memory_rss=62.33MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=19047pages sample#memory_pgpgout=3090pages sample#memory_quota=512.00MB").unwrap();
        assert_eq!(r.origin, Origin::Platform);
        assert_eq!(r.source.as_deref(), Some("web.1"));
        assert_eq!(
            r.event,
            Event::DynoMemory(DynoFigures {
                total: 62.33,
                rss: Some(62.33),
                cache: Some(0.0),
                swap: Some(0.0),
                quota: Some(512.0),
                paging: Some((19047.0, 3090.0)),
            })
        );
        // Bare, as in Heroku's docs: still the platform's, from the dyno id.
        let r = parse_line("source=web.1 dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99").unwrap();
        assert_eq!((r.origin, r.time), (Origin::Platform, None));
        assert_eq!(r.event, Event::Load { avg_1m: Some(2.46) });
        let r = parse_line(
            "2022-10-16T13:21:08.071320+00:00 heroku[web.1]: Process running mem=1280M(250.0%)",
        )
        .unwrap();
        assert_eq!(
            r.event,
            Event::ProcessRunning {
                mem: 1280.0,
                percent: Some(250.0)
            }
        );
        assert_eq!(r.source.as_deref(), Some("web.1"));
        let r = parse_line("2022-10-16T13:21:08.169352+00:00 heroku[web.1]: Error R15 (Memory quota vastly exceeded)").unwrap();
        assert_eq!(r.event, Event::R15);
        let r = parse_line(
            "Jan 08 10:55:11 warm-cliffs-8392 heroku/web.1:  Error R14 (Memory quota exceeded) ",
        )
        .unwrap();
        assert_eq!(r.event, Event::R14);
        // Router lines and app logs say nothing here.
        assert_eq!(
            parse_line(
                r#"2015-04-06T22:43:49.907728+00:00 heroku[router]: at=info method=POST path="/inventarios" dyno=web.1 connect=1ms service=54ms status=200 bytes=6694"#
            ),
            None
        );
        assert_eq!(
            parse_line("2011-05-03T17:40:10+00:00 app[worker.1]: Working"),
            None
        );
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn runicorn_lines() {
        let r = parse_line("source=web.1 dyno=vm worker=1 pid=25155 sample#memory_rss=33.47MB sample#memory_pss=32.29MB sample#memory_uss=32.11MB sample#memory_swap=0.00MB sample#requests=125585 sample#age=20s").unwrap();
        assert_eq!(r.origin, Origin::App);
        assert_eq!(
            r.event,
            Event::Worker {
                slot: 1,
                pid: Some(25155),
                memory: ProcFigures {
                    rss: Some(33.47),
                    pss: Some(32.29),
                    uss: Some(32.11),
                    swap: Some(0.0),
                    pte: None,
                    threads: None,
                },
                requests: Some(125585),
                age: Some(20.0),
            }
        );
        // Since page tables and threads are reported.
        let r = parse_line("source=web.1 dyno=vm worker=0 pid=7 sample#memory_rss=21.61MB sample#memory_pss=7.10MB sample#memory_uss=0.14MB sample#memory_swap=0.00MB sample#memory_pte=0.09MB sample#threads=1 sample#requests=3 sample#age=12s").unwrap();
        let Event::Worker { memory, .. } = r.event else {
            panic!("{r:?}")
        };
        assert_eq!((memory.pte, memory.threads), (Some(0.09), Some(1)));
        let r = parse_line("source=web.1 dyno=vm process=master pid=25153 sample#memory_rss=2.57MB sample#memory_pss=0.44MB sample#memory_uss=0.11MB sample#memory_swap=0.00MB sample#workers=2").unwrap();
        assert!(matches!(
            r.event,
            Event::Master {
                workers: Some(2),
                ..
            }
        ));
        let r = parse_line("source=web.1 dyno=vm count#requests=51530 count#requests_1xx=0 count#requests_2xx=51530 count#requests_3xx=0 count#requests_4xx=0 count#requests_5xx=0 sample#service_p50=0.005ms sample#service_p95=0.023ms sample#service_p99=0.027ms sample#service_max=101.820ms count#queued_requests=3 sample#queue_p50=5.888ms sample#queue_p95=6.287ms sample#queue_p99=6.287ms sample#queue_max=6.287ms sample#backlog=0 sample#backlog_limit=1024 sample#workers_busy=0 sample#workers_idle=2").unwrap();
        assert_eq!(
            r.event,
            Event::Requests(RequestFigures {
                requests: 51530,
                requests_5xx: 0,
                service: Some([0.005, 0.023, 0.027]),
                service_mean: None,
                queued: 3,
                queue: Some([5.888, 6.287, 6.287]),
                backlog: Some((0, 1024)),
                busy: Some(0),
                idle: Some(2),
                by_class: Some([0, 51530, 0, 0, 0]),
            })
        );
        // A worker line without memory (it had just exited) and a request line without
        // percentiles (no request in the interval).
        let r = parse_line("source=web.1 dyno=vm worker=3 pid=9 sample#requests=0 sample#age=0s")
            .unwrap();
        assert!(matches!(
            r.event,
            Event::Worker {
                slot: 3,
                memory: ProcFigures { uss: None, .. },
                ..
            }
        ));
        let r = parse_line("source=web.1 dyno=vm count#requests=0 count#queued_requests=0 sample#workers_busy=0 sample#workers_idle=2").unwrap();
        assert!(matches!(
            r.event,
            Event::Requests(RequestFigures {
                service: None,
                queue: None,
                backlog: None,
                ..
            })
        ));
        // Through `heroku logs`, and the master's log line for an OOM kill.
        let r = parse_line(r#"2026-11-27T21:05:00.000000+00:00 app[web.1]: at=error msg="worker killed" worker=1 pid=4243 signal=SIGKILL requests=10 reason="perhaps out of memory""#).unwrap();
        assert_eq!(
            (r.event, r.source.as_deref()),
            (Event::WorkerOom, Some("web.1"))
        );
        let r = parse_line(r#"at=warn msg="worker over its memory limit: replacing it after its request" worker=0 pid=7 measure=uss memory_mb=40.1 limit_mb=38.2"#).unwrap();
        assert_eq!(r.event, Event::WorkerOverLimit);
        // Other log lines are not metrics, even with worker= keys.
        assert_eq!(
            parse_line(r#"at=info msg="worker ready" worker=0 pid=4242"#),
            None
        );
        // A kill by the master is an end of a worker (a mark), not a metric.
        assert_eq!(
            parse_line(
                r#"at=info msg="worker killed" worker=1 pid=4243 signal=SIGKILL requests=880 reason=timeout"#
            )
            .map(|r| r.event),
            Some(Event::WorkerEnd {
                slot: Some(1),
                reason: "timeout".into()
            })
        );
    }
}
