//! The chaos harness: puts a bounded load on a running server over loopback while
//! it applies the operations an operator or the platform applies, and counts the requests
//! that failed, by cause.
//!
//! Operations (`--ops`, in this order by default):
//!
//! | op | what the harness does | passes when |
//! |---|---|---|
//! | `none` | nothing: the baseline | no request failed |
//! | `hup` | HUP to the master; waits until every worker has been replaced | no request failed |
//! | `ttin` | TTIN, waits for one worker more, then TTOU back | no request failed |
//! | `ttou` | TTOU, waits for one worker fewer, then TTIN back | no request failed |
//! | `usr2` | USR2 to the master; waits until every worker has been replaced and the master kept its pid | no request failed |
//! | `winch-ttin` | WINCH, waits until no worker is left (requests queue in the backlog), then TTIN one at a time back to the pool size | no request failed |
//! | `term-worker` | TERM to one busy worker; waits for its replacement | no request failed |
//! | `kill-worker` | SIGKILL to one busy worker; waits for its replacement | failures <= the connections the victim held (`in_flight_on_victim`) |
//!
//! For each op the harness starts the load, waits until `--concurrency` requests have
//! succeeded, applies the op, keeps the load on until `--duration` has passed or
//! `--requests` have been sent (but never before the op has completed, so the whole
//! disruption is under load), and checks that the pool is back to its size before the next
//! op. Every wait has a deadline (`--settle`): an op that does not complete in time (USR2 on
//! a server that does not support it: "workers not replaced") fails, it does not hang.
//!
//! `in_flight_on_victim` is measured, not guessed. The harness stops a worker (SIGSTOP),
//! counts the ESTABLISHED TCP connections it holds (its `/proc/<pid>/fd` sockets matched
//! against `/proc/<pid>/net/tcp` and `tcp6`), and continues it and tries the next worker if
//! it holds none. The victim, still stopped, is then SIGKILLed (kill-worker), or sent TERM
//! and continued (term-worker: it has a request to finish). Stopped, it can neither finish
//! a request nor accept another between the count and the signal; the count needs the stop
//! because reading the TCP table of a busy machine takes longer than a request. It is an
//! upper bound: a connection whose response was complete but not yet closed is counted and
//! does not fail.
//!
//! Worker pids come from `/proc/<master>/task/*/children` (and their children: the
//! descendants of the master named `worker[N]`), so the harness needs no pid file.
//!
//! # Usage
//!
//! ```sh
//! cargo build --release && cargo build --release -p runicorn-tools --example chaos
//! # Start a server itself (stdin null, on a free 127.0.0.1 port; killed at the end):
//! target/release/examples/chaos --duration 5 --concurrency 8 -- target/release/runicorn --workers 2
//! # Or attach to a running one (its stdin must not be a terminal, or it ignores WINCH):
//! target/release/examples/chaos --addr 127.0.0.1:8080 --pid "$(cat /run/app.pid)"
//! ```
//!
//! Options: `--ops LIST` (comma separated, default all), `--duration SECS` (per op, 5),
//! `--requests N` (cap per op, 10000), `--concurrency C` (8), `--path P` (`/sleep?ms=20`,
//! so that workers are busy), `--timeout SECS` (per request, 10), `--settle SECS` (deadline
//! of every wait, 30), `--workers N` (the pool size; default: what the server runs once it
//! has settled), `--server-log PATH` (where a started server's output goes,
//! `target/chaos-server.log`), `--json` (one JSON object per op on stdout, the table on
//! stderr), `--keepalive` (clients reuse connections; give the server `--keepalive SECS`
//! too, or it closes each one). Without `--addr` and without a command, it starts `target/release/runicorn
//! --workers 2`. Exit code: 0 when every op passes, 1 when one fails, 2 on a usage or setup
//! error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use runicorn_tools::load::{self, LoadReport, LoadSpec, Progress};

// The harness is an example whose root is examples/chaos.rs, so its modules live in
// examples/chaos/.
#[path = "chaos/report.rs"]
mod report;
#[path = "chaos/spawn.rs"]
mod spawn;

use report::{json, table};
use runicorn::internals::procfs::{alive, established, read_state as state, workers};
use spawn::{settled_pool, start};

/// An operation applied under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    None,
    Hup,
    Ttin,
    Ttou,
    Usr2,
    WinchTtin,
    TermWorker,
    KillWorker,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::None,
        Op::Hup,
        Op::Ttin,
        Op::Ttou,
        Op::Usr2,
        Op::WinchTtin,
        Op::TermWorker,
        Op::KillWorker,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::None => "none",
            Op::Hup => "hup",
            Op::Ttin => "ttin",
            Op::Ttou => "ttou",
            Op::Usr2 => "usr2",
            Op::WinchTtin => "winch-ttin",
            Op::TermWorker => "term-worker",
            Op::KillWorker => "kill-worker",
        }
    }

    fn parse_list(list: &str) -> Result<Vec<Op>, String> {
        if list == "all" {
            return Ok(Op::ALL.to_vec());
        }
        list.split(',')
            .map(|name| {
                Op::ALL
                    .into_iter()
                    .find(|op| op.name() == name.trim())
                    .ok_or_else(|| format!("unknown op {name:?}"))
            })
            .collect()
    }
}

/// Where the server comes from.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Attach { addr: SocketAddr, pid: i32 },
    Start { command: Vec<String> },
}

#[derive(Debug)]
struct Options {
    target: Target,
    ops: Vec<Op>,
    duration: Duration,
    requests: u64,
    concurrency: usize,
    path: String,
    timeout: Duration,
    settle: Duration,
    workers: Option<usize>,
    server_log: PathBuf,
    json: bool,
    keepalive: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        target: Target::Start {
            command: Vec::new(),
        },
        ops: Op::ALL.to_vec(),
        duration: Duration::from_secs(5),
        requests: 10_000,
        concurrency: 8,
        path: "/sleep?ms=20".into(),
        timeout: Duration::from_secs(10),
        settle: Duration::from_secs(30),
        workers: None,
        server_log: PathBuf::from("target/chaos-server.log"),
        json: false,
        keepalive: false,
    };
    let (mut addr, mut pid) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            o.target = Target::Start {
                command: it.by_ref().cloned().collect(),
            };
            break;
        }
        if arg == "--json" {
            o.json = true;
            continue;
        }
        if arg == "--keepalive" {
            o.keepalive = true;
            continue;
        }
        if arg == "--help" || arg == "-h" {
            return Err(String::new());
        }
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        let secs = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("{arg}: not a positive number of seconds: {v:?}"))
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{arg}: not a positive integer: {v:?}"))
        };
        match arg.as_str() {
            "--addr" => {
                let v = value()?;
                addr = Some(
                    v.parse()
                        .map_err(|_| format!("--addr: bad address {v:?}"))?,
                );
            }
            "--pid" => pid = Some(number(value()?)? as i32),
            "--ops" => o.ops = Op::parse_list(value()?)?,
            "--duration" => o.duration = secs(value()?)?,
            "--requests" => o.requests = number(value()?)?,
            "--concurrency" => o.concurrency = number(value()?)?.min(1024) as usize,
            "--path" => o.path = value()?.clone(),
            "--timeout" => o.timeout = secs(value()?)?,
            "--settle" => o.settle = secs(value()?)?,
            "--workers" => o.workers = Some(number(value()?)? as usize),
            "--server-log" => o.server_log = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    match (addr, pid, &o.target) {
        (Some(addr), Some(pid), Target::Start { command }) if command.is_empty() => {
            o.target = Target::Attach { addr, pid };
        }
        (None, None, _) => {}
        _ => return Err("give both --addr and --pid (attach), or neither (start)".into()),
    }
    Ok(o)
}

fn signal(pid: i32, sig: Signal) -> Result<(), String> {
    kill(Pid::from_raw(pid), sig).map_err(|e| format!("kill({pid}, {sig}): {e}"))
}

/// Polls `done` every 10 ms until it holds or `deadline` passes.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn say(what: &str) {
    eprintln!("[chaos] {what}");
}

// ---------------------------------------------------------------------------------------
// The operations.

/// The server under test, as the harness sees it.
struct Server {
    addr: SocketAddr,
    master: i32,
    /// The pool size every op starts from and must come back to.
    pool: usize,
}

impl Server {
    fn wait_workers(
        &self,
        settle: Duration,
        what: &str,
        ok: impl Fn(&[i32]) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + settle;
        if wait_until(deadline, || ok(&workers(self.master))) {
            Ok(())
        } else {
            Err(format!(
                "{what} within {} s (workers now {:?})",
                settle.as_secs_f64(),
                workers(self.master)
            ))
        }
    }

    fn wait_count(&self, settle: Duration, n: usize) -> Result<(), String> {
        self.wait_workers(settle, &format!("pool did not reach {n} workers"), |w| {
            w.len() == n
        })
    }

    /// TTIN or TTOU, one at a time: signals of one kind sent close together merge into one.
    fn step(&self, settle: Duration, sig: Signal, to: usize) -> Result<(), String> {
        signal(self.master, sig)?;
        self.wait_count(settle, to)
    }

    /// Stops (SIGSTOP) a worker that holds at least one established connection, and
    /// returns it with the number it holds. Stopped, it can neither finish a request nor
    /// take another connection, so the count stays true until the caller signals it. The
    /// count reads the whole TCP table of the network namespace, which takes a while on a
    /// busy machine: counting a running worker would see connections that are gone.
    fn stop_busy_worker(&self, settle: Duration) -> Result<(i32, usize), String> {
        let deadline = Instant::now() + settle;
        loop {
            for pid in workers(self.master) {
                if signal(pid, Signal::SIGSTOP).is_err() {
                    continue; // gone meanwhile
                }
                let stopped = wait_until(Instant::now() + settle, || {
                    state(pid).is_none_or(|s| s == 'T' || s == 'Z')
                });
                let held = established(pid);
                if stopped && held > 0 {
                    return Ok((pid, held));
                }
                let _ = signal(pid, Signal::SIGCONT);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no worker held a connection within {} s: is the load reaching the server?",
                    settle.as_secs_f64()
                ));
            }
        }
    }

    /// Applies `op`, waits until it has completed and the pool is back to its size. Returns
    /// the connections the killed worker held (kill-worker only).
    fn apply(&self, op: Op, settle: Duration) -> Result<Option<usize>, String> {
        let pool = self.pool;
        let before = workers(self.master);
        let replaced = |now: &[i32]| now.len() == pool && now.iter().all(|p| !before.contains(p));
        match op {
            Op::None => {}
            Op::Hup => {
                signal(self.master, Signal::SIGHUP)?;
                self.wait_workers(settle, "workers not replaced", replaced)?;
            }
            Op::Ttin => {
                self.step(settle, Signal::SIGTTIN, pool + 1)?;
                self.step(settle, Signal::SIGTTOU, pool)?;
            }
            Op::Ttou if pool < 2 => {
                return Err("a pool of 1 cannot shrink (TTOU never goes below 1)".into());
            }
            Op::Ttou => {
                self.step(settle, Signal::SIGTTOU, pool - 1)?;
                self.step(settle, Signal::SIGTTIN, pool)?;
            }
            Op::Usr2 => {
                signal(self.master, Signal::SIGUSR2)?;
                let what = "workers not replaced (does this server support USR2? see its log)";
                self.wait_workers(settle, what, replaced)?;
                if !alive(self.master) {
                    return Err(format!("the master {} is gone", self.master));
                }
            }
            Op::WinchTtin => {
                signal(self.master, Signal::SIGWINCH)?;
                self.wait_workers(
                    settle,
                    "workers did not stop (is the server's stdin a terminal?)",
                    |w| w.is_empty(),
                )?;
                for n in 1..=pool {
                    self.step(settle, Signal::SIGTTIN, n)?;
                }
            }
            Op::TermWorker | Op::KillWorker => {
                let (victim, held) = self.stop_busy_worker(settle)?;
                if op == Op::KillWorker {
                    signal(victim, Signal::SIGKILL)?;
                } else {
                    // Delivered when it resumes: it finishes the request it was serving.
                    signal(victim, Signal::SIGTERM)?;
                    signal(victim, Signal::SIGCONT)?;
                }
                self.wait_workers(settle, "the worker was not replaced", |w| {
                    w.len() == pool && !w.contains(&victim)
                })?;
                return Ok(Some(held));
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------
// One op under load, and its verdict.

struct OpResult {
    op: Op,
    report: LoadReport,
    in_flight_on_victim: Option<usize>,
    /// Why the op did not complete, if it did not.
    error: Option<String>,
}

impl OpResult {
    fn pass(&self) -> bool {
        verdict(
            self.op,
            self.report.ok,
            self.report.failed(),
            self.in_flight_on_victim,
            self.error.is_none(),
        )
    }
}

/// Graceful ops lose no request; a SIGKILL loses at most the requests in flight on the
/// victim. An op that did not complete, or a run with no success, fails.
fn verdict(
    op: Op,
    ok: u64,
    failed: u64,
    in_flight_on_victim: Option<usize>,
    completed: bool,
) -> bool {
    let allowed = match op {
        Op::KillWorker => in_flight_on_victim.map_or(0, |n| n as u64),
        _ => 0,
    };
    completed && ok > 0 && failed <= allowed
}

fn run_op(o: &Options, server: &Server, op: Op) -> OpResult {
    let spec = LoadSpec {
        concurrency: o.concurrency,
        // A hard bound; the load normally stops on `stop` below.
        duration: o.duration + o.settle * 3,
        max_requests: None,
        request_timeout: o.timeout,
        keepalive: o.keepalive,
        ..LoadSpec::new(server.addr, &o.path)
    };
    let stop = AtomicBool::new(false);
    let op_done = AtomicBool::new(false);
    let (sent, ok) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let progress = |p: &Progress| {
        sent.fetch_max(p.sent, Ordering::Relaxed);
        ok.fetch_max(p.ok, Ordering::Relaxed);
        if op_done.load(Ordering::Relaxed) && (p.sent >= o.requests || p.elapsed >= o.duration) {
            stop.store(true, Ordering::Relaxed);
        }
    };
    std::thread::scope(|s| {
        let load = s.spawn(|| load::run(&spec, &stop, Some(&progress)));
        let warm = wait_until(Instant::now() + o.settle, || {
            ok.load(Ordering::Relaxed) >= o.concurrency as u64
        });
        let applied = if warm {
            say(&format!("{}: applying", op.name()));
            server.apply(op, o.settle)
        } else {
            Err(format!(
                "fewer than {} requests succeeded within {} s before the op",
                o.concurrency,
                o.settle.as_secs_f64()
            ))
        };
        op_done.store(true, Ordering::Relaxed);
        let op_elapsed = start.elapsed();
        // Until the duration or the request cap, for when no request completes any more.
        wait_until(start + o.duration.max(op_elapsed), || {
            stop.load(Ordering::Relaxed) || sent.load(Ordering::Relaxed) >= o.requests
        });
        stop.store(true, Ordering::Relaxed);
        let report = load.join().expect("the load thread panicked");
        // The next op starts from a healthy pool.
        let healthy = server.wait_count(o.settle, server.pool);
        let (in_flight_on_victim, error) = match (applied, healthy) {
            (Ok(held), Ok(())) => (held, None),
            (Ok(held), Err(e)) => (held, Some(e)),
            (Err(e), _) => (None, Some(e)),
        };
        if let Some(e) = &error {
            say(&format!("{}: {e}", op.name()));
        }
        OpResult {
            op,
            report,
            in_flight_on_victim,
            error,
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("chaos: {e}");
            }
            eprintln!(
                "usage: chaos [--addr HOST:PORT --pid MASTER] [--ops LIST] [--duration SECS] \
                 [--requests N] [--concurrency C] [--path P] [--timeout SECS] [--settle SECS] \
                 [--workers N] [--server-log PATH] [--json] [--keepalive] [-- SERVER COMMAND...]\n\
                 ops: all, or a comma list of none,hup,ttin,ttou,usr2,winch-ttin,term-worker,\
                 kill-worker (see the doc comment of examples/chaos.rs in runicorn-tools)"
            );
            std::process::exit(2);
        }
    };
    std::process::exit(match run(&o) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("chaos: {e}");
            2
        }
    });
}

fn run(o: &Options) -> Result<bool, String> {
    let (_started, addr, master) = match &o.target {
        Target::Attach { addr, pid } => {
            if !alive(*pid) {
                return Err(format!("no process {pid}"));
            }
            (None, *addr, *pid)
        }
        Target::Start { command } => {
            let (started, addr) = start(command.clone(), &o.server_log)?;
            let pid = started.child.id() as i32;
            (Some(started), addr, pid)
        }
    };
    let pool = settled_pool(master, o.workers, o.settle)?;
    say(&format!("master {master} on {addr}, {pool} workers"));
    let server = Server { addr, master, pool };
    let mut results = Vec::new();
    for &op in &o.ops {
        let r = run_op(o, &server, op);
        if o.json {
            println!("{}", json(&r));
        }
        results.push(r);
        if !alive(master) {
            say("the master is gone; stopping");
            break;
        }
    }
    let t = table(&results);
    if o.json {
        eprint!("{t}");
    } else {
        print!("{t}");
    }
    Ok(results.iter().all(OpResult::pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        // Graceful: no failure allowed, even with requests in flight on a TERMed worker.
        assert!(verdict(Op::Hup, 100, 0, None, true));
        assert!(!verdict(Op::Hup, 100, 1, None, true));
        assert!(!verdict(Op::TermWorker, 100, 1, Some(1), true));
        // Kill: up to what the victim held.
        assert!(verdict(Op::KillWorker, 100, 2, Some(2), true));
        assert!(!verdict(Op::KillWorker, 100, 3, Some(2), true));
        // Not completed, or nothing succeeded.
        assert!(!verdict(Op::KillWorker, 100, 0, Some(1), false));
        assert!(!verdict(Op::None, 0, 0, None, true));
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        let o = parse_args(&args(
            "--addr 127.0.0.1:9 --pid 42 --ops hup,kill-worker --json",
        ))
        .unwrap();
        assert_eq!(
            o.target,
            Target::Attach {
                addr: "127.0.0.1:9".parse().unwrap(),
                pid: 42
            }
        );
        assert_eq!(o.ops, [Op::Hup, Op::KillWorker]);
        assert!(o.json);
        let o = parse_args(&args("--duration 0.5 -- bin --workers 3")).unwrap();
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!(
            o.target,
            Target::Start {
                command: args("bin --workers 3")
            }
        );
        assert_eq!(parse_args(&[]).unwrap().ops, Op::ALL);
        assert!(parse_args(&args("--ops hup,nope")).is_err());
        assert!(parse_args(&args("--pid 42")).is_err());
        assert!(parse_args(&args("--duration -1")).is_err());
        assert!(parse_args(&args("--addr 127.0.0.1:9 --pid 1 -- bin")).is_err());
    }
}
