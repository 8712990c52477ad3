use std::process::Command;
use std::time::Duration;

use crate::support::*;

const KIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance");

/// Runs the conformance kit's runner against the echo app `bin` (`examples/echo` or another
/// app that keeps ECHO.md's contract) and returns its output.
///
/// One case at a time (`-j 1`): with cases in parallel, a connection is often waiting in the
/// listen queue, and then a worker rightly answers `Connection: close` instead of keeping a
/// pipelined connection (docs/http.md, "Keep-alive"), which the kit's pipelined cases count
/// as a failure.
fn run_kit(bin: &str, server_args: &[&str], runner_args: &[&str]) -> (bool, String) {
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(server_args);
    let s = Spawn::new(&args).bin(bin).start();
    s.wait_log(&["worker ready"], 2);
    let port = s.addr.unwrap().port().to_string();
    let mut kit = Command::new("python3");
    kit.arg(format!("{KIT}/run.py"))
        .args(["--host", "127.0.0.1", "--port", &port, "-j", "1"])
        .args(runner_args);
    // The kit bounds each case itself: the deadline only catches a runner that hangs.
    let r = run_bounded(kit, None, Duration::from_secs(300));
    (r.status.success(), r.out + &r.err)
}

/// Runs every default case of the kit (the ones that need no non-default Gunicorn setting)
/// against the echo app `bin`, served under Gunicorn's default limits and keep-alive on, as
/// the kit expects HTTP/1.1 connections to persist; fails unless every case passes, and
/// returns the kit's summary line.
pub fn assert_every_default_case_passes(bin: &str) -> String {
    assert_every_default_case_passes_with(bin, &[])
}

/// The same, with more server settings.
pub fn assert_every_default_case_passes_with(bin: &str, more: &[&str]) -> String {
    assert!(
        std::path::Path::new(KIT).join("run.py").exists(),
        "the kit is at {KIT}"
    );
    let mut args = vec!["--keepalive", "5", "--limit-request-line", "4094"];
    args.extend_from_slice(more);
    let (ok, text) = run_kit(bin, &args, &[]);
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains(" passed, "))
        .unwrap_or("")
        .to_string();
    assert!(ok && last.ends_with(" 0 failed"), "the kit failed:\n{text}");
    last
}

/// Every default case of the kit against `examples/echo`.
#[test]
fn the_conformance_kit_passes_every_default_case() {
    let last = assert_every_default_case_passes(&echo_bin());
    eprintln!("conformance kit: {last}");
}

/// The `--with-config` cases whose Gunicorn settings runicorn has (the request limits), each
/// against a server started with the same limits. The others need settings runicorn has no
/// equivalent for (PROXY protocol, obs-fold, header_map, ...), see docs/http.md.
#[test]
fn the_kit_cases_for_request_limits_pass_with_the_same_limits() {
    let cases: &[(&str, &[&str])] = &[
        (
            "valid/024.json",
            &[
                "--limit-request-line",
                "8200",
                "--limit-request-field-size",
                "8210",
            ],
        ),
        ("valid/026.json", &["--limit-request-field-size", "8210"]),
        ("invalid/006.json", &["--limit-request-line", "4094"]),
        ("invalid/010.json", &["--limit-request-field-size", "10"]),
        ("invalid/011.json", &["--limit-request-fields", "2"]),
        ("invalid/012.json", &["--limit-request-field-size", "98"]),
    ];
    for (case, flags) in cases {
        let file = format!("{KIT}/cases/gunicorn/{case}");
        let mut args = vec!["--keepalive", "5"];
        args.extend_from_slice(flags);
        let (ok, text) = run_kit(&echo_bin(), &args, &["--with-config", "--cases", &file]);
        assert!(
            ok && text.contains("1 passed, 0 failed"),
            "{case} with {flags:?}:\n{text}"
        );
    }
}
