//! Integration tests: each spawns the real `runicorn` binary (or an example app) with a
//! listening socket handed over through `LISTEN_FDS`, and talks to it with raw bytes and real
//! signals. No test forks the test process; every server runs in its own process group,
//! killed on drop.

/// Spawning servers, reading their logs, sending requests; running other commands within a
/// deadline; the example binaries and Python modules the tests need.
mod support;

/// Signals under load with the chaos harness: graceful ops lose no request.
mod chaos;
/// The HTTP/1.1 conformance kit in tests/conformance, against examples/echo.
mod conformance;

mod dashboard;
/// Operator docs that must follow the code.
mod docs;
/// Timeouts, panics, aborts, max-requests, crash loops.
mod faults;
/// Two instances behind HAProxy under open-loop load: rolling upgrade and restart lose no
/// request; X-Request-Start becomes queue time.
mod fleet;
/// Response framing the app cannot break, and heads settled before the app, from raw bytes.
mod framing;
/// HTTP behaviour seen by clients: framing, HEAD, errors, Date, Connection: close.
mod http;
/// Keep-alive, pipelining, parked slow clients.
mod keepalive;
/// USR1 log reopening, the access log.
mod logs;
/// Runtime metrics on stdout, parsed with a real logfmt parser; the dyno cgroup.
mod metrics;
/// Worker count, TTIN/TTOU/WINCH, HUP, the single-threaded master, master death.
mod pool;
/// examples/Procfile under honcho.
mod procfile;
/// The Prometheus endpoint (`--metrics-bind`): scrapes checked by promtool and by a real
/// Prometheus server, stalled scrapers, USR2.
mod prometheus;
/// RFC 9112 statuses from raw bytes.
mod rfc9112;
/// Settings on the command line and in the environment; listeners (PORT, Unix sockets).
mod settings;
/// TERM to the process group with requests in flight; INT.
mod shutdown;
/// Slow bodies, a full worker, pipelined requests left in the kernel, trickled heads.
mod slow_clients;
/// StatsD datagrams from the master (`--statsd-host`), and serving when nobody listens.
mod statsd;
/// `runicorn tune` and `runicorn metrics`: tables, advice, charts, recorded Heroku lines.
mod tools;
/// `runicorn::tower`: the axum example and the echo as a tower service, conformance kit
/// included.
mod tower;
/// USR2 upgrades in place; sd_notify.
mod upgrade;
