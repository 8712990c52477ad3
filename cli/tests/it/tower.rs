//! `runicorn::tower` against the real example binaries: `examples/axum.rs` (an axum Router
//! with tower-http layers and a per-worker hook) and `examples/tower_echo.rs` (the
//! conformance kit's echo app as a plain tower service). Each is built with the `tower`
//! feature by the test itself.

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::*;

/// `examples/axum`, built once per test run.
fn axum_bin() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| example_bin("runicorn", "axum", &["tower"]))
}

/// `examples/tower_echo`, built once per test run.
fn tower_echo_bin() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| example_bin("runicorn", "tower_echo", &["tower"]))
}

/// The axum example with `args`, once its `workers` workers are ready.
fn axum(args: &[&str], workers: usize) -> Server {
    let s = Spawn::new(args).bin(axum_bin()).start();
    s.wait_log(&["worker ready"], workers);
    s
}

/// The axum example with one worker that serves up to `n` requests at once, and `more`
/// settings.
fn one_worker(n: usize, more: &[&str]) -> Server {
    let n = n.to_string();
    let mut args = vec!["--workers", "1", "--worker-connections", &n];
    args.extend_from_slice(more);
    axum(&args, 1)
}

/// `method path` with a body, read until the server closes.
fn send(s: &Server, method: &str, path: &str, fields: &str, body: &str) -> Response {
    request(
        s.addr.unwrap(),
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\n{fields}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn post_json(s: &Server, path: &str, json: &str) -> Response {
    send(s, "POST", path, "Content-Type: application/json\r\n", json)
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)))
}

/// A chunked body's chunks, and whether the last (empty) chunk came.
fn chunks(mut body: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&body[..eol]).unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return (out, &body[eol..] == b"\r\n\r\n");
        }
        let data = &body[eol + 2..];
        if data.len() < size + 2 {
            return (out, false);
        }
        out.push(data[..size].to_vec());
        body = &data[size + 2..];
    }
}

/// `Threads:` of a process.
fn threads(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn json_goes_in_and_out_with_state_path_parameters_and_a_json_404() {
    let s = axum(&["--workers", "1"], 1);
    let r = post_json(&s, "/notes", r#"{"text": "buy milk"}"#);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string()),
        "a body of known size is sent with its length"
    );
    let note = json(&r);
    assert_eq!(note["id"], 1);
    assert_eq!(note["text"], "buy milk");
    assert_eq!(note["worker"], 0);

    // The state the first request changed is there for the next one (same worker).
    let r = s.get("/notes/1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(json(&r), note);
    // HEAD: the length GET would have, and no body (axum sets the field, runicorn keeps it).
    let head = request(s.addr.unwrap(), "HEAD /notes/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(r.body.len().to_string())
    );
    assert!(head.body.is_empty(), "{head:?}");
    let r = s.get("/notes/2");
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["error"], "no note 2");
    let r = s.get("/notes/two");
    assert_eq!(
        r.status, 400,
        "a path parameter that is not a number: {r:?}"
    );
    let r = s.get("/no/such/route");
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["error"], "no such route");
    let r = post_json(&s, "/notes", r#"{"text": "#);
    assert_eq!(r.status, 400, "broken JSON: {r:?}");

    // The per-worker hook ran in the worker, on its runtime.
    let stats = json(&s.get("/stats"));
    assert_eq!(stats["pid"], s.workers()[0]);
    assert_eq!(stats["notes"], 1);
    assert_eq!(s.count_log(&["database pool open", "worker=0"]), 1);
}

#[test]
fn a_streamed_response_is_sent_chunk_by_chunk() {
    let s = axum(&["--workers", "1"], 1);
    let r = s.get("/stream?chunks=5");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    let (got, complete) = chunks(&r.body);
    assert!(complete, "no last chunk: {r:?}");
    // One HTTP chunk per frame the stream produced: written as they came, not gathered.
    let expected: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("chunk {i}\n").into_bytes())
        .collect();
    assert_eq!(got, expected);

    // To an HTTP/1.0 client the same body ends when the connection closes.
    let r = request(s.addr.unwrap(), "GET /stream?chunks=3 HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body, b"chunk 0\nchunk 1\nchunk 2\n");
}

#[test]
fn a_body_over_the_limit_layer_is_refused_with_413() {
    let s = axum(&["--workers", "1"], 1);
    let big = format!(r#"{{"text": "{}"}}"#, "x".repeat(70 * 1024));
    let r = post_json(&s, "/notes", &big);
    assert_eq!(r.status, 413, "by its Content-Length: {r:?}");

    // Chunked, with no length to judge by: the limit is met while the body is read.
    let mut raw = String::from(
        "POST /notes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for piece in big.as_bytes().chunks(8000) {
        raw.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            std::str::from_utf8(piece).unwrap()
        ));
    }
    raw.push_str("0\r\n\r\n");
    let r = request(s.addr.unwrap(), &raw);
    assert_eq!(r.status, 413, "chunked: {r:?}");

    // Under the limit, the body is read whole.
    let fits = format!(r#"{{"text": "{}"}}"#, "y".repeat(60 * 1024));
    let r = post_json(&s, "/notes", &fits);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(json(&r)["text"].as_str().map(str::len), Some(60 * 1024));
}

#[test]
fn a_panicking_handler_gives_500_and_the_same_worker_serves_the_next_request() {
    let s = axum(&["--workers", "1"], 1);
    let pid = s.workers()[0];
    let r = s.get("/debug/panic");
    assert_eq!(r.status, 500, "{r:?}");
    let line = &s.wait_log(&["app panicked"], 1)[0];
    assert!(line.contains("panics on purpose"), "{line}");
    assert!(line.contains("path=/debug/panic"), "{line}");
    // The runtime still drives timers and streams after the panic unwound through block_on.
    for _ in 0..2 {
        let r = s.get("/stream?chunks=2");
        assert_eq!(chunks(&r.body).0.len(), 2, "{r:?}");
        assert_eq!(json(&s.get("/stats"))["pid"], pid);
    }
    assert_eq!(s.workers(), vec![pid]);
}

#[test]
fn a_body_that_fails_halfway_cuts_the_response_and_is_logged() {
    let s = axum(&["--workers", "1"], 1);
    let pid = s.workers()[0];
    let r = s.get("/debug/broken-stream");
    assert_eq!(
        r.status, 200,
        "the head was sent before the body failed: {r:?}"
    );
    let (got, complete) = chunks(&r.body);
    assert_eq!(got, vec![b"first chunk\n".to_vec()]);
    assert!(!complete, "a cut body must not end like a whole one: {r:?}");
    let line = &s.wait_log(&["response body failed"], 1)[0];
    assert!(line.contains("at=error"), "{line}");
    assert!(line.contains("path=/debug/broken-stream"), "{line}");
    assert!(line.contains("the upstream went away"), "{line}");
    assert!(line.contains("request_id="), "{line}");
    assert_eq!(json(&s.get("/stats"))["pid"], pid);
}

#[test]
fn an_abort_in_a_handler_is_logged_and_the_worker_replaced() {
    let s = axum(&["--workers", "1"], 1);
    let pid = s.workers()[0];
    assert_eq!(
        s.get("/debug/abort").status,
        0,
        "no answer from an aborted worker"
    );
    let line = &s.wait_log(&["worker killed", "signal=SIGABRT"], 1)[0];
    assert!(line.contains(&format!("pid={pid}")), "{line}");
    s.wait_log(&["worker ready"], 2);
    let new = s.workers();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], pid);
    // The replacement ran the hook too.
    assert_eq!(s.count_log(&["database pool open"]), 2);
    assert_eq!(json(&s.get("/stats"))["pid"], new[0]);
}

#[test]
fn term_with_a_request_in_flight_answers_it() {
    let mut s = axum(&["--workers", "1", "--log-level", "debug"], 1);
    let addr = s.addr.unwrap();
    let t =
        std::thread::spawn(move || request(addr, "GET /slow?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n"));
    s.wait_log(&["request started", "path=/slow"], 1);
    s.signal(libc::SIGTERM);
    let r = t.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"waited 800 ms\n");
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn the_master_stays_single_threaded_and_usr2_keeps_its_pid() {
    let s = axum(&["--workers", "2"], 2);
    s.wait_log(&["workers ready", "generation=0"], 1);
    assert_eq!(threads(s.pid), "1", "the master");
    let old = s.workers();
    assert_eq!(old.len(), 2);
    for &w in &old {
        assert_eq!(threads(w), "1", "a worker on a current-thread runtime");
    }

    s.signal(libc::SIGUSR2);
    s.wait_log(&["upgraded:"], 1);
    s.wait_log(&["workers ready", "generation=1"], 1);
    let deadline = Instant::now() + DEADLINE;
    while old.iter().any(|&p| alive(p)) {
        if Instant::now() >= deadline {
            s.fail("the old workers did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(alive(s.pid));
    assert_eq!(threads(s.pid), "1", "the master after the upgrade");
    let new = s.workers();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|p| !old.contains(p)), "{old:?} -> {new:?}");
    assert_eq!(
        s.count_log(&["master started", &format!("pid={}", s.pid)]),
        2
    );
    assert_eq!(s.count_log(&["database pool open"]), 4);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn a_kept_connection_carries_several_tower_responses() {
    let s = axum(&["--workers", "1", "--keepalive", "5"], 1);
    let mut c = connect(&s);
    for i in 0..3 {
        c.write_all(b"GET /notes/9 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_one(&mut c);
        assert_eq!(r.status, 404, "request {i}: {r:?}");
        assert_eq!(r.header("connection"), None);
    }
    c.write_all(b"GET /stream?chunks=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let r = parse_response(&rest);
    assert_eq!(
        chunks(&r.body),
        (vec![b"chunk 0\n".to_vec(), b"chunk 1\n".to_vec()], true)
    );
}

/// The conformance kit in full against the echo app served as a tower service.
#[test]
fn the_conformance_kit_passes_against_the_tower_echo() {
    let last = crate::conformance::assert_every_default_case_passes(tower_echo_bin());
    eprintln!("conformance kit (tower_echo): {last}");
}

/// `GET path` on a thread of its own, answered whenever the server answers.
fn get_later(s: &Server, path: &str) -> std::thread::JoinHandle<Response> {
    let addr = s.addr.unwrap();
    let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::spawn(move || request(addr, &raw))
}

#[test]
fn with_worker_connections_one_worker_serves_other_requests_while_slow_ones_wait() {
    let s = one_worker(8, &["--log-level", "debug"]);
    let slow: Vec<_> = (0..4).map(|_| get_later(&s, "/slow?ms=1500")).collect();
    s.wait_log(&["request started", "path=/slow"], 4);
    // Four requests are in flight in the one worker; it still answers these at once.
    for _ in 0..3 {
        assert_eq!(s.get("/").status, 200);
    }
    assert!(
        slow.iter().all(|t| !t.is_finished()),
        "the slow requests were answered before the quick ones"
    );
    for t in slow {
        let r = t.join().unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"waited 1500 ms\n"[..])
        );
    }
    // Each request had an id of its own.
    let mut ids: Vec<String> = s
        .wait_log(&["request started"], 7)
        .iter()
        .filter_map(|l| l.split("request_id=").nth(1).map(|r| r.to_string()))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "{ids:?}");
}

#[test]
fn with_worker_connections_a_request_past_the_timeout_gets_503_and_the_worker_stays() {
    let s = one_worker(4, &["--timeout", "1"]);
    let pid = s.workers()[0];
    let slow = get_later(&s, "/slow?ms=4000");
    let quick = get_later(&s, "/slow?ms=100");
    assert_eq!(quick.join().unwrap().status, 200);
    let r = slow.join().unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    let line = &s.wait_log(&["request timeout"], 1)[0];
    assert!(line.contains("at=error"), "{line}");
    assert!(line.contains("path=/slow"), "{line}");
    assert!(line.contains("request_id="), "{line}");
    assert_eq!(s.get("/").status, 200);
    assert_eq!(
        s.workers(),
        vec![pid],
        "the request timed out, not the worker"
    );
    assert_eq!(s.count_log(&["worker timeout"]), 0);
}

#[test]
fn with_worker_connections_a_handler_that_blocks_its_thread_gets_the_worker_killed() {
    let s = one_worker(4, &["--timeout", "1", "--log-level", "debug"]);
    let pid = s.workers()[0];
    let waiting = get_later(&s, "/slow?ms=100");
    s.wait_log(&["request started", "path=/slow"], 1);
    let blocked = get_later(&s, "/debug/block?ms=30000");
    let line = &s.wait_log(&["worker timeout: killing it"], 1)[0];
    assert!(line.contains(&format!("pid={pid}")), "{line}");
    assert!(line.contains("in_flight=2"), "{line}");
    assert!(
        line.contains("path=/slow") || line.contains("path=/debug/block"),
        "{line}"
    );
    // Both requests were in the killed worker: their connections close unanswered.
    assert_eq!(blocked.join().unwrap().status, 0);
    assert_eq!(waiting.join().unwrap().status, 0);
    s.wait_log(&["worker ready"], 2);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn with_worker_connections_a_panic_answers_500_and_spares_the_other_requests() {
    let s = one_worker(4, &["--log-level", "debug"]);
    let pid = s.workers()[0];
    let slow = get_later(&s, "/slow?ms=500");
    s.wait_log(&["request started", "path=/slow"], 1);
    assert_eq!(s.get("/debug/panic").status, 500);
    let line = &s.wait_log(&["app panicked"], 1)[0];
    assert!(line.contains("panics on purpose"), "{line}");
    assert!(line.contains("path=/debug/panic"), "{line}");
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(s.workers(), vec![pid]);
}

#[test]
fn term_with_async_requests_in_flight_answers_them_all() {
    let mut s = one_worker(8, &["--log-level", "debug"]);
    let slow: Vec<_> = (0..5)
        .map(|i| get_later(&s, &format!("/slow?ms={}", 400 + 100 * i)))
        .collect();
    s.wait_log(&["request started", "path=/slow"], 5);
    s.signal(libc::SIGTERM);
    for (i, t) in slow.into_iter().enumerate() {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body, format!("waited {} ms\n", 400 + 100 * i).as_bytes());
    }
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn with_worker_connections_an_idle_worker_gives_memory_back_and_serves_on() {
    let mut s = one_worker(8, &["--log-level", "debug"]);
    let worker = s.workers();
    // A burst of requests in flight at once, then quiet: the worker empties its malloc
    // cache through a thread of its own and returns the heap's free pages.
    let burst = |ms: u32| {
        let slow: Vec<_> = (0..8)
            .map(|_| get_later(&s, &format!("/slow?ms={ms}")))
            .collect();
        for t in slow {
            assert_eq!(t.join().unwrap().status, 200);
        }
    };
    burst(100);
    s.wait_log(&["idle: memory given back"], 1);
    assert_eq!(s.workers(), worker, "the same worker");
    // The thread is joined before the log line; the kernel drops it from the count a moment
    // after the join returns.
    let deadline = Instant::now() + DEADLINE;
    while threads(worker[0]) != "1" {
        if Instant::now() >= deadline {
            s.fail("the freeing thread is still there");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // And again: the next burst, the next time it gives back.
    burst(50);
    s.wait_log(&["idle: memory given back"], 2);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.workers(), worker, "still the same worker");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn the_conformance_kit_passes_against_the_tower_echo_with_worker_connections() {
    let last = crate::conformance::assert_every_default_case_passes_with(
        tower_echo_bin(),
        &["--worker-connections", "4"],
    );
    eprintln!("conformance kit (tower_echo, --worker-connections 4): {last}");
}

#[test]
fn the_metric_lines_count_the_requests_in_flight() {
    let s = one_worker(8, &["--metrics-interval", "1", "--log-level", "debug"]);
    let slow: Vec<_> = (0..3).map(|_| get_later(&s, "/slow?ms=2500")).collect();
    s.wait_log(&["request started", "path=/slow"], 3);
    let line = &s.wait_out(&["sample#requests_in_flight=3"], 1)[0];
    assert!(
        line.contains("sample#workers_busy=1 sample#workers_idle=0"),
        "{line}"
    );
    for t in slow {
        assert_eq!(t.join().unwrap().status, 200);
    }
}

#[test]
fn trailers_follow_a_streamed_body_when_the_client_asks_for_them() {
    let s = axum(&["--workers", "1"], 1);
    let r = send(&s, "GET", "/export?rows=3", "TE: trailers\r\n", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("trailer").as_deref(), Some("x-rows"));
    let (rows, _) = chunks(&r.body);
    assert_eq!(rows.concat(), b"0,note 0\n1,note 1\n2,note 2\n");
    assert!(r.body.ends_with(b"\r\n0\r\nx-rows: 3\r\n\r\n"), "{r:?}");
    // A client that did not ask gets the same body, without a trailer section.
    let r = send(&s, "GET", "/export?rows=3", "", "");
    assert!(r.body.ends_with(b"\r\n0\r\n\r\n"), "{r:?}");
    assert_eq!(
        chunks(&r.body).0.concat(),
        b"0,note 0\n1,note 1\n2,note 2\n"
    );
}
