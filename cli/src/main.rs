//! The `runicorn` command: serves the built-in demo app (`runicorn --help` for the
//! settings), and runs the `tune` and `metrics` subcommands.

mod demo;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) =
        runicorn_tools::dispatch("runicorn", &args, Some(runicorn_tools::tune::DEMO_PATH))
    {
        std::process::exit(code);
    }
    runicorn::run(demo::Demo::new)
}
