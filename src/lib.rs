//! runicorn: a pre-forking HTTP/1.1 server for Rust apps, in the line of Ruby's Unicorn and
//! Python's Gunicorn, built for Heroku-style platforms.
//!
//! # Using it
//!
//! An app is anything that implements [`App`], including a closure from [`Request`] to
//! [`Response`] (the `http` crate's types). Build it in `main` and hand it to [`run`]:
//!
//! ```no_run
//! use runicorn::{Request, Response};
//!
//! fn main() {
//!     // Built once, in the master, before the workers are forked.
//!     let greeting = String::from("Hello world\n");
//!     runicorn::run(move || move |_req: Request<'_>| Response::new(greeting.clone().into()))
//! }
//! ```
//!
//! Put `web: exec ./target/release/myapp` in a Procfile: the binary reads `PORT` and
//! `WEB_CONCURRENCY`, and accepts the same flags as `runicorn` (`myapp --help`).
//!
//! An app with state of its own, a request body read as a stream, and a per-worker hook;
//! this example runs as a doctest, calling the app directly:
//!
//! ```
//! use std::io::Read;
//! use runicorn::{App, Body, BoxError, Request, RequestBody, Response, WorkerInfo};
//!
//! struct Counter {
//!     served: u64,            // per worker: each worker has its own copy after fork
//!     worker: Option<usize>,
//! }
//!
//! impl App for Counter {
//!     fn after_fork(&mut self, w: &WorkerInfo) -> Result<(), BoxError> {
//!         self.worker = Some(w.slot); // open database connections here
//!         Ok(())
//!     }
//!
//!     fn call(&mut self, mut req: Request<'_>) -> Response {
//!         self.served += 1;
//!         let mut body = Vec::new();
//!         if req.body_mut().read_to_end(&mut body).is_err() {
//!             return http::Response::builder().status(400).body(Body::empty()).unwrap();
//!         }
//!         let text = format!("request {} had {} bytes\n", self.served, body.len());
//!         Response::new(text.into())
//!     }
//! }
//!
//! let mut app = Counter { served: 0, worker: None };
//! let req = http::Request::post("/upload").body(RequestBody::empty()).unwrap();
//! let resp = app.call(req);
//! assert_eq!(resp.status(), 200);
//! assert_eq!(resp.body().len_hint(), Some(22)); // "request 1 had 0 bytes\n"
//! // In a binary: runicorn::run(|| Counter { served: 0, worker: None })
//! ```
//!
//! A response body is bytes ([`Body::from`] a `&'static str`, `String`, `Vec<u8>` or
//! `bytes::Bytes`, sent as they are, never copied), a reader ([`Body::reader`], sent chunked to
//! HTTP/1.1 clients) or a file ([`Body::file`], with `Content-Length` from its size, or
//! like a reader when it has none, as a pipe).
//!
//! An axum `Router`, or any tower `Service` of `http` requests, is served by the `runicorn::tower`
//! module (cargo feature `tower`): `runicorn::tower::run(|| router)` in `main`, each worker
//! driving the service on a Tokio current-thread runtime of its own (see `docs/tower.md`).
//!
//! # Process model
//!
//! The master binds the listeners (or takes them from systemd's `LISTEN_FDS`), builds the
//! app, and forks `workers` worker processes. Each worker serves one request at a time from
//! the connections it accepts from the shared kernel queue; connections whose request has
//! not fully arrived (slow clients) and idle keep-alive connections wait parked in the
//! worker's own poll instead of holding it. The master never serves and never starts a thread: it reaps
//! dead workers and respawns them, kills workers stuck past `timeout` (logging the request
//! they were stuck on, read from the shared-memory scoreboard), grows and shrinks the pool
//! on TTIN/TTOU, replaces every worker on HUP, re-executes a rebuilt binary in place on
//! USR2 (same pid, no dropped request), tells systemd how it is doing (`NOTIFY_SOCKET`), and
//! stops gracefully on TERM. See `docs/design.md` and `docs/signals.md`.
//!
//! # The tools
//!
//! `runicorn tune` (trials at several worker counts) and `runicorn metrics` (a reader of the
//! metric lines that advises `WEB_CONCURRENCY`) live in the `runicorn-tools` crate and the
//! `runicorn` command, not in this library: an app built on it links only the server. An app
//! that wants them as `myapp tune` and `myapp metrics` depends on `runicorn-tools` and makes
//! its `main` `runicorn_tools::run(runicorn::about!(), None, || app)`. [`run_with`] and
//! [`about!`] alone give `myapp --version` the app's own version. How the modules are layered
//! is in `docs/design.md`.
//!
//! # Limitations
//!
//! - Transfer codings other than chunked are answered 501 (no gzip request bodies).
//! - Linux only: it relies on `prctl`, `/proc`, `TCP_DEFER_ACCEPT` and shutdown(2) on
//!   listening sockets.
//! - The app must not start threads before the fork (the master checks and refuses).

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod autoscale;
pub mod config;
pub mod error;
mod h1;
mod handler;
mod histogram;
mod listener;
mod log;
mod master;
mod metrics;
mod notify;
mod procfs;
mod scoreboard;
mod server;
mod signals;
mod sys;
#[cfg(feature = "tower")]
pub mod tower;
mod upgrade;
mod worker;

pub use error::{Error, ErrorKind};
pub use h1::RawHead;
pub use handler::{
    App, Body, BoxError, ConnectionInfo, Request, RequestBody, Response, WorkerInfo,
};
/// The `http` crate runicorn's requests and responses are made of, re-exported so that an
/// app names the same version without pinning it in its own manifest.
pub use http;
pub use server::{About, run, run_with, serve};
pub use worker::RequestId;

/// What `runicorn-tools` (the `tune` and `metrics` subcommands, the load client, the chaos
/// harness) shares with the server, so that each thing has one implementation: the `/proc`
/// and cgroup readers, the sizing advice, the chunked decoder. Not a stable API: it changes
/// with the tools.
#[doc(hidden)]
pub mod internals {
    pub use crate::metrics::{advice, cgroup};
    /// Readers of /proc: memory, state, CPU time, children, TCP connections.
    pub mod procfs {
        pub use crate::procfs::*;
    }
    /// Log-linear latency histograms, as the scoreboard counts them.
    pub mod histogram {
        pub use crate::histogram::{Histogram, Layout};
    }
    /// Civil dates: days since 1970-01-01 to (year, month, day) and back.
    pub mod date {
        pub use crate::h1::date::{civil_from_days, days_from_civil};
    }
    /// The binary's name and arguments, as `run` reads them.
    pub use crate::server::program_and_args;
    /// The chunked transfer coding, as the server removes it.
    pub mod h1 {
        pub use crate::h1::{ChunkedDecoder, Limits, Step};
    }
}

/// The pure HTTP/1.1 parsing functions and the worker's request-body collector, for the fuzz
/// targets (`--features fuzzing`); not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::h1::{BodyFraming, ChunkedDecoder, Error, HeadScan, Limits, Step, parse_head};
    pub use crate::worker::{BodyError, Collector, CompleteBody, MEMORY_BODY, Readable};
}
