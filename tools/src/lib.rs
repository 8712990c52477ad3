//! runicorn's tools: the `tune`, `metrics` and `plan` subcommands of the
//! `runicorn` command, and the client side used by them and by the chaos harness
//! (`examples/chaos.rs`). They run in their own process, never inside the master or a
//! worker, so they may start threads. An app built on the `runicorn` library links none of
//! this unless it depends on this crate.
//!
//! Not a stable API beyond [`run`], [`dispatch`] and [`SUBCOMMANDS_HELP`].
//!
//! - `advice`: the advised `WEB_CONCURRENCY`, a pure function (also for `--workers auto`).
//! - `chart`: SVG line charts.
//! - `cli`: flag reading shared by the subcommands.
//! - `load`: the closed-loop HTTP/1.1 load client (tune, the chaos harness), and the
//!   open-loop one with Poisson arrivals (`load::open`, the fleet harness).
//! - `metrics`: `runicorn metrics`, the reader of metric lines, and its live dashboard.
//! - `plan`: `runicorn plan`, the fleet capacity planner (a seeded simulation).
//! - `rng`: the seeded generator (SplitMix64) of the planner, the load generator and the
//!   demo app.
//! - `tune`: `runicorn tune`, trials of an app at several worker counts.

pub use runicorn::internals::advice;
pub mod chart;
pub mod cli;
pub mod load;
pub mod metrics;
pub mod plan;
pub mod rng;
pub mod tune;

/// The subcommands, as `--help` lists them after the settings.
pub const SUBCOMMANDS_HELP: &str = "\
Subcommands (each takes --help):
  tune [OPTIONS] --path TARGET [-- APP [ARGS]]
        Serve an app (APP, or this binary) at several worker counts under load,
        measure each, and advise WEB_CONCURRENCY per dyno size (docs/tuning.md).
  metrics [FILE] [OPTIONS]
        Read runtime metric lines (runicorn's or Heroku's) from FILE or stdin,
        and summarise them with the advised WEB_CONCURRENCY (docs/metrics.md),
        or serve them as a live dashboard (--serve ADDR).
  plan [OPTIONS]
        Plan a fleet: simulate dynos x workers per dyno behind the router for a
        request rate and service time, and find the cheapest that meets a
        queue-time target (docs/scale-out.md).
";

/// An app's `main` in one call: runs `tune` or `metrics` when the command line names one,
/// and otherwise serves `build` as [`runicorn::run_with`] does, with the subcommands listed
/// in `--help` and `about`'s version in `--version`. `own_path` is the route `tune` loads
/// when it tunes this binary without `--path` (`None`: `--path` is required).
///
/// ```no_run
/// # use runicorn::{Request, Response};
/// fn main() {
///     runicorn_tools::run(runicorn::about!(), None, || {
///         |_req: Request<'_>| Response::new("hi\n".into())
///     })
/// }
/// ```
pub fn run<A: runicorn::App>(
    about: runicorn::About,
    own_path: Option<&str>,
    build: impl FnOnce() -> A,
) -> ! {
    let (program, args) = runicorn::internals::program_and_args();
    if let Some(code) = dispatch(&program, &args, own_path) {
        std::process::exit(code);
    }
    runicorn::run_with(about.with_help(SUBCOMMANDS_HELP), build)
}

/// Runs the subcommand named by `args[0]`, if it is one; returns its exit code, or `None`
/// when `args` are a server's settings. [`run`] calls it; an app with a `main` of its own
/// (`runicorn::config::parse`, then `runicorn::serve`) calls it first, and prints
/// [`SUBCOMMANDS_HELP`] after the settings when `parse` gives `Command::Help`.
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
        Some("plan") => Some(plan::main(program, &args[1..])),
        _ => None,
    }
}
