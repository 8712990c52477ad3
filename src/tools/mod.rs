//! The subcommands of an app binary that do not serve: `tune`, `metrics`, and the client
//! side used by them and by the chaos harness (`bench/chaos.rs`). They run in their own
//! process, never inside the master or a worker, so they may start threads.
//!
//! Not a stable API: public only so that the harnesses in `bench/` can use it.

pub mod advice;
pub mod chart;

/// Runs the subcommand named by `args[0]`, if it is one; returns its exit code, or `None`
/// when `args` are a server's settings.
pub fn dispatch(program: &str, args: &[String]) -> Option<i32> {
    let _ = (program, args);
    None
}
