//! The app of the axum benchmarks in `bench/` (`bench/run.sh --axum`): one axum `Router`,
//! served either by runicorn or by `axum::serve` on a multi-threaded Tokio runtime, so that
//! the two servers run exactly the same handlers.
//!
//! ```sh
//! cargo build --release --example axum_bench --features tower
//! # runicorn: runicorn's usual settings (--workers, --worker-connections, --keepalive, ...)
//! target/release/examples/axum_bench --workers 2 --bind 127.0.0.1:8080
//! # axum::serve on a runtime of N Tokio worker threads, its accept loop among them
//! # (keep-alive is hyper's default there)
//! target/release/examples/axum_bench serve --threads 2 --bind 127.0.0.1:8080
//! ```
//!
//! The mode is the first argument (`serve`), or `AXUM_BENCH_MODE=serve`; anything else is
//! runicorn mode, and every argument goes to runicorn.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | `Hello world\n` (12 bytes), as the hello apps of the other servers |
//! | `GET /io` | waits 20 ms on the runtime (`tokio::time::sleep`), then a short body: a request that waits on I/O |
//! | `GET /fault/block` | blocks its thread for 60 s (`std::thread::sleep` in async code) |
//! | `GET /fault/abort` | aborts the process |
//! | `GET /fault/leak` | leaks 1 MiB, written to so that it is resident, then answers |
//! | `GET /fault/spin` | never answers: an endless busy loop on its thread |
//!
//! The fault routes are what goes wrong in real apps (a blocking call, a crash, a leak, a
//! runaway loop); the benchmark measures how many of the other requests each server still
//! answers while they happen.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

/// The one router both modes serve.
fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello world\n" }))
        .route("/io", get(io))
        .route("/fault/block", get(block))
        .route("/fault/abort", get(abort))
        .route("/fault/leak", get(leak))
        .route("/fault/spin", get(spin))
}

async fn io() -> &'static str {
    tokio::time::sleep(Duration::from_millis(20)).await;
    "slept 20 ms\n"
}

async fn block() -> &'static str {
    // A blocking call in async code: the thread, and every task that needs it, waits.
    std::thread::sleep(Duration::from_secs(60));
    "blocked 60 s\n"
}

async fn abort() -> &'static str {
    std::process::abort()
}

const MIB: usize = 1 << 20;

async fn leak() -> String {
    let mut v = vec![0u8; MIB];
    // One write per page makes the whole MiB resident.
    for page in v.chunks_mut(4096) {
        page[0] = 1;
    }
    let leaked: &'static mut [u8] = Box::leak(std::hint::black_box(v).into_boxed_slice());
    format!("leaked {} bytes\n", leaked.len())
}

async fn spin() -> &'static str {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let serve = args.get(1).is_some_and(|a| a == "serve")
        || std::env::var("AXUM_BENCH_MODE").is_ok_and(|m| m == "serve");
    if !serve {
        runicorn::tower::run(router);
    }
    if args.get(1).is_some_and(|a| a == "serve") {
        args.remove(1);
    }
    let (threads, bind) = serve_args(&args[1..]).unwrap_or_else(|e| {
        eprintln!("axum_bench serve: {e}\nusage: axum_bench serve [--threads N] [--bind ADDR]");
        std::process::exit(2)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("the Tokio runtime");
    // Spawned, so that the accept loop runs on the runtime's N threads like everything else:
    // left in `block_on` it would run on the main thread, an (N+1)th thread serving.
    let server = rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        eprintln!(
            "axum::serve on {bind}, {threads} threads, pid {}",
            std::process::id()
        );
        axum::serve(listener, router()).await.expect("axum::serve");
    });
    rt.block_on(server).expect("axum::serve");
}

/// `--threads N` (default: the number of CPUs) and `--bind ADDR` (default 127.0.0.1:8080).
fn serve_args(args: &[String]) -> Result<(usize, SocketAddr), String> {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut bind: SocketAddr = ([127, 0, 0, 1], 8080).into();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--threads" => {
                threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?;
                if threads == 0 {
                    return Err("--threads: at least 1".into());
                }
            }
            "--bind" => bind = value()?.parse().map_err(|e| format!("--bind: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok((threads, bind))
}
