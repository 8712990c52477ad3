//! The subcommands of an app binary that do not serve: `tune`, `metrics`, and the client
//! side used by them and by the chaos harness (`bench/chaos.rs`). They run in their own
//! process, never inside the master or a worker, so they may start threads.
//!
//! Not a stable API: public only so that the harnesses in `bench/` can use it.
//!
//! - `advice`: the advised `WEB_CONCURRENCY`, a pure function (also for `--workers auto`).
//! - `chart`: SVG line charts.
//! - `cli`: flag reading shared by the subcommands.
//! - `load`: the closed-loop HTTP/1.1 load client (tune, the chaos harness).
//! - `metrics`: `runicorn metrics`, the reader of metric lines.
//! - `tune`: `runicorn tune`, trials of an app at several worker counts.

pub mod advice;
pub mod chart;
pub mod cli;
pub mod load;
pub mod metrics;
pub mod tune;

/// Runs the subcommand named by `args[0]`, if it is one; returns its exit code, or `None`
/// when `args` are a server's settings.
///
/// `program tune ...` and `program metrics ...`; each takes `--help`. Anything else (flags
/// of the server) is not a subcommand.
pub fn dispatch(program: &str, args: &[String]) -> Option<i32> {
    match args.first().map(String::as_str) {
        Some("tune") => Some(tune::main(program, &args[1..])),
        Some("metrics") => Some(metrics::main(program, &args[1..])),
        _ => None,
    }
}
