//! runicorn's tools that do not serve: the `tune` and `metrics` subcommands of the
//! `runicorn` command, and the client side used by them and by the chaos harness
//! (`examples/chaos.rs`). They run in their own process, never inside the master or a
//! worker, so they may start threads. An app built on the `runicorn` library links none of
//! this unless it depends on this crate.
//!
//! Not a stable API beyond [`dispatch`].
//!
//! - `advice`: the advised `WEB_CONCURRENCY`, a pure function (also for `--workers auto`).
//! - `chart`: SVG line charts.
//! - `cli`: flag reading shared by the subcommands.
//! - `load`: the closed-loop HTTP/1.1 load client (tune, the chaos harness).
//! - `metrics`: `runicorn metrics`, the reader of metric lines.
//! - `tune`: `runicorn tune`, trials of an app at several worker counts.

pub use runicorn::internals::advice;
pub mod chart;
pub mod cli;
pub mod load;
pub mod metrics;
pub mod tune;

/// Runs the subcommand named by `args[0]`, if it is one; returns its exit code, or `None`
/// when `args` are a server's settings.
///
/// `program tune ...` and `program metrics ...`; each takes `--help`. Anything else (flags
/// of the server) is not a subcommand. `own_path` is the route `tune` loads when it tunes
/// this binary without `--path` (`None`: `--path` is required).
///
/// An app that wants the subcommands on its own command line calls this first in `main`:
///
/// ```no_run
/// # use runicorn::{Request, Response};
/// let args: Vec<String> = std::env::args().skip(1).collect();
/// if let Some(code) = runicorn_tools::dispatch("myapp", &args, None) {
///     std::process::exit(code);
/// }
/// runicorn::run(|| |_req: Request<'_>| Response::new("hi\n".into()))
/// ```
pub fn dispatch(program: &str, args: &[String], own_path: Option<&str>) -> Option<i32> {
    match args.first().map(String::as_str) {
        Some("tune") => Some(tune::main(program, &args[1..], own_path)),
        Some("metrics") => Some(metrics::main(program, &args[1..])),
        _ => None,
    }
}
