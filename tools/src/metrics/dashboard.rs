//! `runicorn metrics --serve ADDR`: the live dashboard, served by runicorn itself.
//!
//! Two processes share one append-only file of events (the spool, unlinked, so nothing is
//! left behind):
//!
//! ```text
//!   input (stdin, a file) --> reader process --> spool: one JSON event per line
//!                                                  |  pread, complete lines only
//!   browser <-- GET /events (server-sent events) <-- runicorn master + 2 workers
//! ```
//!
//! The reader is forked first, while this process has one thread, and may start threads of
//! its own; this process then becomes a runicorn master, which must have only one. A worker
//! answers `GET /events` with what the spool holds after the client's `Last-Event-ID` (a
//! byte offset) and ends the response; the browser's `EventSource` asks again a second
//! later (`retry: 1000`). No request holds a worker, as befits a pre-forking server; the
//! page is at most a second behind its input.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use runicorn::{Request, Response, http};

use super::parse::parse_line;
use super::summary::{Options, Tracker};
use super::timeline::{Timeline, advice_event};
use super::{Input, read_lines};

/// The page, with its script and styles: every asset embedded, nothing fetched from
/// elsewhere, so it works offline.
pub const PAGE: &str = include_str!("dashboard/page.html");

/// The most event bytes one response carries; a longer history arrives over several.
const MAX_RESPONSE: usize = 4 << 20;

/// The append-only file of events.
pub struct Spool {
    file: File,
}

impl Spool {
    /// An unlinked file in `dir`: `O_TMPFILE` where the file system has it, else a named
    /// file removed at once.
    pub fn create(dir: &Path) -> std::io::Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmpfile = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(nix::libc::O_TMPFILE)
            .mode(0o600)
            .open(dir);
        let file = match tmpfile {
            Ok(f) => f,
            Err(_) => {
                let path = dir.join(format!(".runicorn-dashboard-{}", std::process::id()));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                std::fs::remove_file(&path)?;
                f
            }
        };
        Ok(Spool { file })
    }

    /// Appends `events`, one per line, in one write.
    pub fn append(&self, events: &[String]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = String::with_capacity(events.iter().map(|e| e.len() + 1).sum());
        for e in events {
            buf.push_str(e);
            buf.push('\n');
        }
        (&self.file).write_all(buf.as_bytes())
    }

    /// The complete lines from byte `from` on, at most about `max` bytes of them, and the
    /// file's length (`None` for the bytes when `from` is past the end: another spool).
    pub fn read_from(&self, from: u64, max: usize) -> std::io::Result<(Option<Vec<u8>>, u64)> {
        let len = self.file.metadata()?.len();
        if from > len {
            return Ok((None, len));
        }
        let want = ((len - from) as usize).min(max);
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut buf[got..], from + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        // Only whole lines: the writer may be in the middle of one.
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(end);
        Ok((Some(buf), len))
    }
}

/// A server-sent events body: each line of `chunk` (which starts at byte `start` of the
/// spool) as one event whose id is the offset after it. `reset` first tells the page to
/// drop what it has (its last id belonged to another spool).
pub fn sse_body(chunk: &[u8], start: u64, reset: bool) -> String {
    let mut out = String::with_capacity(chunk.len() + chunk.len() / 8 + 32);
    out.push_str("retry: 1000\n\n");
    if reset {
        out.push_str("event: reset\ndata: {}\n\n");
    }
    let mut at = start;
    for line in chunk.split_inclusive(|&b| b == b'\n') {
        at += line.len() as u64;
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            continue;
        }
        out.push_str("id: ");
        out.push_str(&at.to_string());
        out.push_str("\ndata: ");
        out.push_str(text);
        out.push_str("\n\n");
    }
    out
}

/// Where a client's stream goes on: `Last-Event-ID` (what `EventSource` sends when it
/// reconnects), else `?from=N`, else the start.
fn resume_offset(req: &Request<'_>) -> u64 {
    let header = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let query = || {
        req.uri()
            .query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("from="))?
            .parse()
            .ok()
    };
    header.or_else(query).unwrap_or(0)
}

fn respond(status: u16, content_type: &str, body: String) -> Response {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(body.into())
        .expect("a valid response")
}

/// The dashboard as a runicorn app.
pub fn app(spool: Spool) -> impl FnMut(Request<'_>) -> Response {
    move |req: Request<'_>| {
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            let mut r = respond(405, "text/plain", "405 method not allowed\n".into());
            r.headers_mut()
                .insert("allow", http::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri().path() {
            "/" => respond(200, "text/html; charset=utf-8", PAGE.to_string()),
            "/events" => {
                let from = resume_offset(&req);
                match spool.read_from(from, MAX_RESPONSE) {
                    Ok((Some(chunk), _)) => {
                        respond(200, "text/event-stream", sse_body(&chunk, from, false))
                    }
                    Ok((None, _)) => match spool.read_from(0, MAX_RESPONSE) {
                        Ok((Some(chunk), _)) => {
                            respond(200, "text/event-stream", sse_body(&chunk, 0, true))
                        }
                        _ => respond(500, "text/plain", "cannot read the events\n".into()),
                    },
                    Err(_) => respond(500, "text/plain", "cannot read the events\n".into()),
                }
            }
            _ => respond(404, "text/plain", "404 not found\n".into()),
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The reader: every line of `reader` into the spool as events, and the advice again each
/// time a sample set completes and the input then stays quiet. Returns the lines used.
pub fn read_into(
    reader: Box<dyn Read + Send>,
    spool: &Spool,
    opts: Options,
) -> std::io::Result<usize> {
    let mut feed = Feed {
        tracker: Tracker::new(opts),
        timeline: Timeline::new(),
        last_advice: Vec::new(),
    };
    let mut events = Vec::new();
    let pending = read_lines(reader, |input| {
        match input {
            Input::Line(line) => {
                let complete = feed.take(&line, &mut events);
                // A long burst (a recorded file) is written in pieces.
                if events.len() >= 4096 {
                    spool.append(&events)?;
                    events.clear();
                }
                return Ok(complete);
            }
            // What had arrived goes in one write.
            Input::Idle => spool.append(&events)?,
            Input::Quiet => spool.append(&feed.advice())?,
        }
        events.clear();
        Ok(false)
    })?;
    if pending {
        spool.append(&feed.advice())?;
    }
    Ok(feed.tracker.lines())
}

/// What the reader keeps: the summary's tracker (for the advice) and the timeline.
struct Feed {
    tracker: Tracker,
    timeline: Timeline,
    /// The advice last written, so that an unchanged one is not written again.
    last_advice: Vec<super::summary::DynoAdvice>,
}

impl Feed {
    /// Adds the events of `line` to `events`; `true` when it completed a sample set.
    fn take(&mut self, line: &str, events: &mut Vec<String>) -> bool {
        let Some(rec) = parse_line(line) else {
            return false;
        };
        events.extend(self.timeline.feed(&rec, now()));
        self.tracker.feed(rec)
    }

    /// The advice event, at the time of the latest line, if the advice changed.
    fn advice(&mut self) -> Vec<String> {
        let report = self.tracker.advice_report();
        if !self.last_advice.is_empty() && report == self.last_advice {
            return Vec::new();
        }
        let event = advice_event(self.timeline.latest().unwrap_or_else(now), &report);
        self.last_advice = report;
        vec![event]
    }
}

/// Runs the dashboard: forks the reader of `reader`, then serves on `bind` until stopped.
/// Returns the exit code.
pub fn serve(program: &str, bind: &str, reader: Box<dyn Read + Send>, opts: Options) -> i32 {
    let spool = match Spool::create(&std::env::temp_dir()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{program} metrics: cannot create the dashboard's event file: {e}");
            return 1;
        }
    };
    // The server's settings: the address, two workers (a page and its event stream), no
    // metric lines of its own; nothing from the environment (PORT, WEB_CONCURRENCY are
    // the app's, not the dashboard's).
    let args: Vec<String> = [
        "--bind",
        bind,
        "--workers",
        "2",
        "--metrics-interval",
        "0",
        "--graceful-timeout",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let config = match runicorn::config::parse(program, &args, &|_| None) {
        Ok(runicorn::config::Command::Serve(c)) => c,
        Ok(_) => return 2,
        Err(e) => {
            eprintln!("{program} metrics: --serve: {e}");
            return 2;
        }
    };
    let parent = nix::unistd::getpid();
    // SAFETY: this process has one thread here (nothing before has started one), so the
    // child may do anything; it only reads and writes the spool, then exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // Die with the server, whatever kills it.
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
            if nix::unistd::getppid() != parent {
                std::process::exit(0);
            }
            let code = match read_into(reader, &spool, opts) {
                Ok(0) => {
                    eprintln!("{program} metrics: no metric line in the input");
                    1
                }
                Ok(n) => {
                    eprintln!(
                        "{program} metrics: end of the input after {n} metric lines; the dashboard goes on serving them"
                    );
                    0
                }
                Err(e) => {
                    eprintln!("{program} metrics: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {}
        Err(e) => {
            eprintln!("{program} metrics: cannot start the reader: {e}");
            return 1;
        }
    }
    drop(reader);
    eprintln!("{program} metrics: the dashboard is at http://{bind}/");
    match runicorn::serve(&config, || app(spool)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program} metrics: --serve {bind}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_gives_whole_lines_from_an_offset() {
        let spool = Spool::create(&std::env::temp_dir()).unwrap();
        spool
            .append(&["{\"a\":1}".into(), "{\"b\":2}".into()])
            .unwrap();
        let (chunk, len) = spool.read_from(0, 1 << 20).unwrap();
        assert_eq!(chunk.unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(len, 16);
        let (chunk, _) = spool.read_from(8, 1 << 20).unwrap();
        assert_eq!(chunk.unwrap(), b"{\"b\":2}\n");
        // A limit inside a line stops before it.
        let (chunk, _) = spool.read_from(0, 10).unwrap();
        assert_eq!(chunk.unwrap(), b"{\"a\":1}\n");
        assert_eq!(spool.read_from(16, 10).unwrap().0.unwrap(), b"");
        assert_eq!(spool.read_from(17, 10).unwrap().0, None);
    }

    #[test]
    fn events_carry_the_offset_after_them_as_their_id() {
        assert_eq!(
            sse_body(b"{\"a\":1}\n{\"b\":2}\n", 100, false),
            "retry: 1000\n\nid: 108\ndata: {\"a\":1}\n\nid: 116\ndata: {\"b\":2}\n\n"
        );
        assert_eq!(
            sse_body(b"", 0, true),
            "retry: 1000\n\nevent: reset\ndata: {}\n\n"
        );
    }

    #[test]
    fn the_page_has_no_address_outside_itself() {
        // Every asset embedded: no script, style or font from elsewhere.
        for needle in ["http://", "https://", "src=\"//", "@import"] {
            let hits: Vec<&str> = PAGE.lines().filter(|l| l.contains(needle)).collect();
            assert!(
                hits.iter().all(|l| l.contains("www.w3.org/2000/svg")),
                "{needle}: {hits:?}"
            );
        }
    }
}
