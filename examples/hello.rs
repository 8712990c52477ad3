//! The smallest app on runicorn: answers every request with `Hello world`.
//!
//! Run it with `cargo run --release --example hello -- --bind 127.0.0.1:8080`, then
//! `curl http://127.0.0.1:8080/`. It takes the same flags as `runicorn` (`-- --help`).

use runicorn::{Request, Response};

fn main() {
    runicorn::run(|| |_req: Request<'_>| Response::new("Hello world\n".into()))
}
