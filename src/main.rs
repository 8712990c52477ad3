//! The `runicorn` binary: serves the built-in demo app (`runicorn --help` for the settings).

fn main() {
    runicorn::run(runicorn::demo::Demo::new)
}
