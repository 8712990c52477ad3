//! Logging: tracing events rendered as logfmt lines on stderr,
//! `at=info msg="worker ready" worker=0 pid=4242`.
//!
//! One `write(2)` per line, from the thread that logs: no background writer thread (the
//! master must stay single-threaded: fork is only sound in a one-thread process). Values are quoted and escaped so
//! that no client-supplied byte can start a new key or a new line. The keys are a contract,
//! listed in `docs/logging.md`.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Appends `key=value` to `out`, quoting the value when it holds anything but plain
/// characters, and escaping quotes, backslashes and every control character.
pub fn push_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    push_value(out, value);
}

fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The level as logged (`at=`).
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

struct LineVisitor {
    msg: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            push_pair(&mut self.fields, field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        push_pair(&mut self.fields, field.name(), value.to_string().as_str());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        push_pair(&mut self.fields, field.name(), value.to_string().as_str());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        push_pair(
            &mut self.fields,
            field.name(),
            if value { "true" } else { "false" },
        );
    }
}

/// Renders one event as a logfmt line (without the newline).
pub fn render(level: &Level, event: &Event<'_>) -> String {
    let mut v = LineVisitor {
        msg: String::new(),
        fields: String::new(),
    };
    event.record(&mut v);
    let mut line = String::with_capacity(64 + v.fields.len());
    push_pair(&mut line, "at", level_name(level));
    push_pair(&mut line, "msg", &v.msg);
    if !v.fields.is_empty() {
        line.push(' ');
        line.push_str(&v.fields);
    }
    line
}

/// The layer that writes logfmt lines to stderr.
pub struct Logfmt {
    max: Level,
}

impl<S: Subscriber> Layer<S> for Logfmt {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *metadata.level() <= self.max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = render(event.metadata().level(), event);
        line.push('\n');
        // stderr is unbuffered: one write_all of the whole line is one write(2) in practice,
        // so lines from several processes do not interleave mid-line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Installs the logfmt logger as the global subscriber (once per process; later calls keep
/// the first level).
pub fn init(max: Level) {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(max))
        .with(Logfmt { max });
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_values() {
        let mut s = String::new();
        push_pair(&mut s, "worker", "0");
        push_pair(&mut s, "msg", "worker ready");
        push_pair(&mut s, "path", "/a?b=c");
        push_pair(&mut s, "empty", "");
        assert_eq!(s, r#"worker=0 msg="worker ready" path="/a?b=c" empty="""#);
    }

    #[test]
    fn client_bytes_cannot_forge_keys_or_lines() {
        let mut s = String::new();
        push_pair(
            &mut s,
            "request_id",
            "x\" status=200\nat=error msg=\"forged\u{1b}[31m",
        );
        assert_eq!(
            s,
            r#"request_id="x\" status=200\nat=error msg=\"forged\u{001b}[31m""#
        );
        assert!(!s.contains('\n'));
    }

    #[test]
    fn renders_events() {
        use std::sync::{Arc, Mutex};
        struct Capture(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Capture {
            fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                self.0
                    .lock()
                    .unwrap()
                    .push(render(event.metadata().level(), event));
            }
        }
        use tracing_subscriber::layer::SubscriberExt;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sub = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(worker = 0, pid = 4242, "worker ready");
            tracing::warn!(
                reason = "perhaps out of memory",
                signal = "SIGKILL",
                "worker killed"
            );
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines[0], r#"at=info msg="worker ready" worker=0 pid=4242"#);
        assert_eq!(
            lines[1],
            r#"at=warn msg="worker killed" reason="perhaps out of memory" signal=SIGKILL"#
        );
    }
}
