use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// `tools/examples/chaos.rs`, built once per test run with the same profile and target directory as
/// the `runicorn` binary (`cargo test` builds it as a harness for its own unit tests, not as
/// a program), as `support::echo_bin` does for the echo example.
fn chaos_bin() -> String {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| example_bin("runicorn-tools", "chaos", &[]))
        .clone()
}

/// Runs chaos in attach mode against `s` (a server with 2 workers) with small bounds:
/// `clients` clients, 200 requests or 1 s per op (longer while an op is still completing). Checks
/// chaos's verdicts field by field, so that a failure says which op lost what: sent and ok
/// above zero, no failure for a graceful op, and for kill-worker no more failures than the
/// connections the victim held.
fn chaos_passes(s: &Server, ops: &str, clients: u32) {
    let mut cmd = Command::new(chaos_bin());
    cmd.args(["--addr", &s.addr.unwrap().to_string()])
        .args(["--pid", &s.pid.to_string()])
        .args(["--workers", "2", "--ops", ops, "--json"])
        .args(["--concurrency", &clients.to_string()])
        .args(["--requests", "200", "--duration", "1"])
        .args([
            "--path",
            "/sleep?ms=10",
            "--timeout",
            "20",
            "--settle",
            "30",
        ]);
    // Chaos bounds every wait itself: the deadline only catches a harness bug.
    let Ran { status, out, err } = run_bounded(cmd, None, Duration::from_secs(300));
    let fail = |what: String| -> ! { s.fail(&format!("{what}\n--- chaos stderr ---\n{err}")) };

    let results: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| fail(format!("{e}: {l}"))))
        .collect();
    let names: Vec<&str> = results.iter().filter_map(|r| r["op"].as_str()).collect();
    if names != ops.split(',').collect::<Vec<_>>() {
        fail(format!("ops reported: {names:?}"));
    }
    for r in &results {
        let n = |k: &str| r[k].as_u64().unwrap_or_else(|| fail(format!("{k} in {r}")));
        let (sent, ok, failed) = (n("sent"), n("ok"), n("failed"));
        if sent == 0 || ok == 0 || sent != ok + failed || !r["error"].is_null() {
            fail(format!("no clean run: {r}"));
        }
        if r["op"] == "kill-worker" {
            let held = n("in_flight_on_victim");
            if held == 0 || failed > held {
                fail(format!("a kill lost more than the victim's requests: {r}"));
            }
        } else if failed != 0 {
            fail(format!("a graceful op lost requests: {r}"));
        }
        if r["verdict"] != "PASS" {
            fail(format!("chaos says FAIL: {r}"));
        }
    }
    if !status.success() {
        fail(format!("chaos exited with {status}"));
    }
    assert!(alive(s.pid));
    assert_eq!(s.workers().len(), 2);
}

/// Every graceful op loses no request; SIGKILL to a busy worker loses no more
/// requests than the connections it held.
#[test]
fn graceful_ops_lose_no_request_and_a_kill_only_its_own() {
    let s = Server::start(&["--workers", "2"]); // stdin null, so WINCH is honoured
    s.wait_log(&["worker ready"], 2);
    chaos_passes(
        &s,
        "none,hup,ttin,ttou,winch-ttin,term-worker,kill-worker",
        4,
    );
    // The ops happened, as the master tells it.
    assert_eq!(s.count_log(&["replacing every worker"]), 1);
    assert_eq!(s.count_log(&["stopping every worker"]), 1);
    assert_eq!(s.count_log(&["worker killed", "signal=SIGKILL"]), 1);
}

/// USR2 under a load that keeps every worker busy (8 clients for 2 workers), twice in a
/// row. Regression: the workers handed over to the new image were asked to stop only through
/// their control pipe (they have no slot in the new scoreboard), and a worker with a
/// connection always waiting serves without polling, so it never read the pipe; it served on
/// until `--graceful-timeout` and was SIGKILLed with requests in flight. They now get TERM.
#[test]
fn usr2_under_load_loses_no_request() {
    let s = Server::start(&["--workers", "2", "--graceful-timeout", "10"]);
    s.wait_log(&["worker ready"], 2);
    chaos_passes(&s, "usr2,usr2", 8);
    assert_eq!(s.count_log(&["graceful timeout"]), 0);
}
