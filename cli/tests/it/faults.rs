use crate::support::*;

#[test]
fn a_worker_stuck_past_the_timeout_is_killed_and_the_log_names_the_request() {
    let s = Server::start(&["--workers", "1", "--timeout", "1"]);
    s.wait_log(&["worker ready"], 1);
    let stuck = s.workers()[0];
    let addr = s.addr.unwrap();
    let r = request(
        addr,
        "GET /sleep?ms=60000 HTTP/1.1\r\nHost: t\r\nX-Request-Id: stuck-42\r\n\r\n",
    );
    assert_eq!(r.status, 0, "the stuck request gets no response: {r:?}");
    let line = &s.wait_log(&["worker timeout"], 1)[0];
    for part in [
        "worker=0",
        &format!("pid={stuck}"),
        "method=GET",
        "path=/sleep",
        "request_id=stuck-42",
        "elapsed_s=",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    s.wait_log(&["worker killed", "signal=SIGKILL", "reason=timeout"], 1);
    s.wait_log(&["worker ready"], 2);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn a_panicking_handler_gives_500_and_the_worker_goes_on() {
    let s = Server::start(&["--workers", "1", "--access-log"]);
    s.wait_log(&["worker ready"], 1);
    let pid = s.workers()[0];
    let r = s.get("/panic");
    assert_eq!(r.status, 500);
    let line = &s.wait_log(&["app panicked"], 1)[0];
    assert!(line.contains("panics on purpose"), "{line}");
    assert!(line.contains("path=/panic"), "{line}");
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello world\n");
    let served = s.wait_log(&["msg=request", "path=/ "], 1);
    assert!(served[0].contains(&format!("pid={pid}")), "{served:?}");
    assert_eq!(s.workers(), vec![pid]);
}

#[test]
fn an_aborting_worker_is_replaced() {
    let s = Server::start(&["--workers", "1"]);
    s.wait_log(&["worker ready"], 1);
    let pid = s.workers()[0];
    assert_eq!(s.get("/abort").status, 0);
    let line = &s.wait_log(&["worker killed", "signal=SIGABRT"], 1)[0];
    assert!(line.contains(&format!("pid={pid}")), "{line}");
    assert!(!line.contains("out of memory"), "{line}");
    s.wait_log(&["worker ready"], 2);
    let new = s.workers();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], pid);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn a_sigkill_we_did_not_send_is_reported_as_perhaps_out_of_memory() {
    let s = Server::start(&["--workers", "1"]);
    s.wait_log(&["worker ready"], 1);
    let pid = s.workers()[0];
    // SAFETY: plain kill(2) of our server's worker.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let line = &s.wait_log(&["worker killed", "signal=SIGKILL"], 1)[0];
    assert!(line.contains("reason=\"perhaps out of memory\""), "{line}");
    s.wait_log(&["worker ready"], 2);
}

#[test]
fn max_requests_recycles_the_worker() {
    let s = Server::start(&["--workers", "1", "--max-requests", "3"]);
    s.wait_log(&["worker ready"], 1);
    let first = s.workers()[0];
    for _ in 0..3 {
        assert_eq!(s.get("/").status, 200);
    }
    s.wait_log(
        &[
            "worker exiting",
            "reason=\"max requests reached\"",
            "requests=3",
        ],
        1,
    );
    s.wait_log(&["worker exited", "code=0"], 1);
    s.wait_log(&["worker ready"], 2);
    assert_eq!(s.get("/").status, 200);
    let now = s.workers();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], first);
}

#[test]
fn a_term_to_one_worker_stops_it_and_the_master_replaces_it() {
    let s = Server::start(&["--workers", "2"]);
    s.wait_log(&["worker ready"], 2);
    let victim = s.workers()[0];
    // SAFETY: plain kill(2) of our server's worker.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGTERM) }, 0);
    s.wait_log(&["worker exited", &format!("pid={victim}"), "code=0"], 1);
    s.wait_log(&["worker ready"], 3);
    assert_eq!(s.workers().len(), 2);
}

#[test]
fn a_crash_loop_stops_the_master_with_exit_code_3() {
    let mut s = Spawn::new(&["--workers", "2"])
        .env("RUNICORN_DEMO_FAIL_BOOT", "1")
        .start();
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(3), "{status:?}");
    let line = &s.wait_log(&["crash loop"], 1)[0];
    assert!(line.contains("at=error"), "{line}");
    assert!(line.contains("failures=10"), "{line}");
    assert!(s.count_log(&["after_fork failed"]) >= 10);
}

#[test]
fn a_worker_over_its_memory_limit_answers_then_is_replaced() {
    let s = Server::start(&["--workers", "1", "--max-worker-memory", "16"]);
    s.wait_log(&["worker ready"], 1);
    let before = s.workers();
    let r = s.get("/alloc?mb=32");
    assert_eq!(
        r.status, 200,
        "the request that crossed the limit is answered"
    );
    let line = &s.wait_log(&["worker over its memory limit"], 1)[0];
    assert!(line.contains("measure=uss"), "{line}");
    assert!(line.contains(&format!("pid={}", before[0])), "{line}");
    s.wait_log(
        &["worker exited", &format!("pid={}", before[0]), "code=0"],
        1,
    );
    s.wait_log(&["worker ready"], 2);
    let after = s.workers();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn the_memory_limit_can_count_shared_pages_too() {
    // RSS counts the pages shared with the master: a limit below a worker's idle RSS
    // (about 1.4 MiB) replaces it even though its unique memory is tiny.
    let s = Server::start(&[
        "--workers",
        "1",
        "--max-worker-memory",
        "1",
        "--worker-memory",
        "rss",
    ]);
    let line = &s.wait_log(&["worker over its memory limit"], 1)[0];
    assert!(line.contains("measure=rss"), "{line}");
}
