//! The chaos harness's reports: a table for people, one flat JSON object per op for
//! programs (hand-written: the objects are flat, and the library takes no serde).

use std::fmt::Write as _;
use std::time::Duration;

use runicorn_tools::load::Failure;

use super::OpResult;

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

/// The report for people: one row per op, then why ops that did not complete failed, and
/// keep-alive retries.
pub fn table(results: &[OpResult]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<12} {:>7} {:>7} {:>6} {:>7} {:>6} {:>7} {:>5} {:>5} {:>9} {:>7} {:>7} {:>7}  verdict",
        "op",
        "sent",
        "ok",
        "failed",
        "refused",
        "reset",
        "timeout",
        "5xx",
        "other",
        "in_flight",
        "p50_ms",
        "p99_ms",
        "max_ms"
    );
    for r in results {
        let f = |c| r.report.failures_of(c);
        let other = f(Failure::Status4xx) + f(Failure::Malformed) + f(Failure::Other);
        let _ = writeln!(
            t,
            "{:<12} {:>7} {:>7} {:>6} {:>7} {:>6} {:>7} {:>5} {:>5} {:>9} {:>7} {:>7} {:>7}  {}",
            r.op.name(),
            r.report.sent,
            r.report.ok,
            r.report.failed(),
            f(Failure::Refused),
            f(Failure::Reset),
            f(Failure::Timeout),
            f(Failure::Status5xx),
            other,
            r.in_flight_on_victim.map_or("-".into(), |n| n.to_string()),
            ms(r.report.latency.p50()),
            ms(r.report.latency.p99()),
            ms(r.report.latency.max()),
            if r.pass() { "PASS" } else { "FAIL" }
        );
    }
    for r in results {
        if let Some(e) = &r.error {
            let _ = writeln!(t, "{}: {e}", r.op.name());
        }
        if r.report.retried > 0 {
            let _ = writeln!(
                t,
                "{}: {} requests sent again on a new connection (a kept one closed before any \
                 response byte; not failures)",
                r.op.name(),
                r.report.retried
            );
        }
    }
    t
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_ms(d: Option<Duration>) -> String {
    d.map_or("null".into(), |d| {
        format!("{:.3}", d.as_secs_f64() * 1000.0)
    })
}

/// One flat JSON object: the counts by cause, latencies, the verdict.
pub fn json(r: &OpResult) -> String {
    let mut fields = vec![
        ("op", json_string(r.op.name())),
        ("sent", r.report.sent.to_string()),
        ("ok", r.report.ok.to_string()),
        ("failed", r.report.failed().to_string()),
    ];
    for cause in Failure::ALL {
        let key = match cause {
            Failure::Status5xx => "status_5xx",
            Failure::Status4xx => "status_4xx",
            c => c.name(),
        };
        fields.push((key, r.report.failures_of(cause).to_string()));
    }
    fields.extend([
        ("retried", r.report.retried.to_string()),
        ("connections", r.report.connections.to_string()),
        (
            "in_flight_on_victim",
            r.in_flight_on_victim
                .map_or("null".into(), |n| n.to_string()),
        ),
        ("p50_ms", json_ms(r.report.latency.p50())),
        ("p99_ms", json_ms(r.report.latency.p99())),
        ("max_ms", json_ms(r.report.latency.max())),
        (
            "elapsed_s",
            format!("{:.3}", r.report.elapsed.as_secs_f64()),
        ),
        (
            "error",
            r.error.as_deref().map_or("null".into(), json_string),
        ),
        (
            "verdict",
            json_string(if r.pass() { "PASS" } else { "FAIL" }),
        ),
    ]);
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_string(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Op;
    use runicorn_tools::load::LoadReport;

    #[test]
    fn json_is_flat_and_escaped() {
        let report = LoadReport {
            sent: 3,
            ok: 2,
            failures: [(Failure::Reset, 1)].into(),
            ..LoadReport::default()
        };
        let r = OpResult {
            op: Op::KillWorker,
            report,
            in_flight_on_victim: Some(1),
            error: Some("a \"quoted\"\nline".into()),
        };
        let line = json(&r);
        assert!(
            line.starts_with(
                r#"{"op":"kill-worker","sent":3,"ok":2,"failed":1,"refused":0,"reset":1,"#
            ),
            "{line}"
        );
        assert!(
            line.contains(r#""in_flight_on_victim":1,"p50_ms":null,"#),
            "{line}"
        );
        assert!(
            line.contains(r#""error":"a \"quoted\"\nline","verdict":"FAIL"}"#),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
