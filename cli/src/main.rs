//! The `runicorn` command: serves the built-in demo app (`runicorn --help` for the
//! settings), and runs the `tune`, `metrics` and `plan` subcommands.

mod demo;

fn main() {
    runicorn_tools::run(
        runicorn::about!(),
        Some(runicorn_tools::tune::DEMO_PATH),
        demo::Demo::new,
    )
}
