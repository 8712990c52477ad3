//! A small fleet behind HAProxy, as `bench/fleet/run.sh` runs it: two instances of two
//! workers behind HAProxy with the harness's own configuration (`bench/fleet/haproxy.cfg`),
//! under open-loop load, through a rolling USR2 upgrade and a rolling restart. Not one
//! request may fail, every instance serves afterwards, and HAProxy's `X-Request-Start`
//! reaches runicorn as queue time.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runicorn_tools::load::open::{self, OpenSpec, Outcome};

use crate::support::*;

const WORKERS: usize = 2;

/// Waits until `check` holds, or fails naming `what`.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One runicorn instance of the demo app on a fixed port, restarted on the same port.
struct Instance {
    name: String,
    port: u16,
    server: Server,
}

impl Instance {
    fn start(name: &str, port: u16) -> Instance {
        let bind = format!("127.0.0.1:{port}");
        let server = Spawn::new(&[
            "--bind",
            &bind,
            "--workers",
            &WORKERS.to_string(),
            "--metrics-interval",
            "1",
        ])
        .no_listen_fd()
        .start();
        server.wait_log(&["workers ready"], 1);
        Instance {
            name: name.to_string(),
            port,
            server,
        }
    }
}

/// HAProxy in front of the instances, stopped (by its pid) on drop, with its directory.
struct HaProxy {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl HaProxy {
    /// `bench/fleet/haproxy.cfg` filled in as the harness fills it (fleetlib.py,
    /// `haproxy_config`), with the `random` policy.
    fn start(servers: &[(String, u16)]) -> HaProxy {
        debian_package("haproxy", "haproxy");
        let dir = std::env::temp_dir().join(format!("runicorn-fleet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let template = std::fs::read_to_string(format!("{ROOT}/bench/fleet/haproxy.cfg")).unwrap();
        let lines: String = servers
            .iter()
            .map(|(name, port)| format!("    server {name} 127.0.0.1:{port}\n"))
            .collect();
        let cfg = template
            .replace("@FRONTEND@", &format!("127.0.0.1:{port}"))
            .replace("@SOCKET@", dir.join("haproxy.sock").to_str().unwrap())
            .replace("@BALANCE@", "random(1)")
            .replace("@RETRIES@", "3")
            .replace("@SERVERS@\n", &lines);
        let cfg_path = dir.join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let h = HaProxy { child, dir, port };
        wait_for("haproxy's runtime API", || {
            UnixStream::connect(h.dir.join("haproxy.sock")).is_ok()
        });
        h
    }

    /// One command on the runtime API; its answer.
    fn cmd(&self, text: &str) -> String {
        let mut s = UnixStream::connect(self.dir.join("haproxy.sock")).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(format!("{text}\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// `show stat` for one server of the backend: field name to value.
    fn stat(&self, server: &str) -> HashMap<String, String> {
        let text = self.cmd("show stat");
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        for line in lines {
            let row: HashMap<String, String> = header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if row.get("pxname").is_some_and(|p| p == "runicorn")
                && row.get("svname").is_some_and(|s| s == server)
            {
                return row;
            }
        }
        panic!("no server {server} in:\n{text}");
    }

    /// The server's operational state from `show servers state`: 2 when the checks pass, 0
    /// when they fail.
    fn op_state(&self, server: &str) -> u32 {
        let text = self.cmd("show servers state runicorn");
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 6 && f[3] == server)
            .unwrap_or_else(|| panic!("no server {server} in:\n{text}"))[5]
            .parse()
            .unwrap()
    }

    fn served(&self, server: &str) -> u64 {
        self.stat(server)["stot"].parse().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill(); // by its pid, before it is reaped
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- haproxy log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sets the flag when dropped: a failing step still ends the load at once.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// USR2; done when the new binary's workers are ready and every old worker has exited.
fn upgrade(i: &Instance) {
    let old = i.server.workers();
    let ready = i.server.count_log(&["workers ready"]);
    i.server.signal(libc::SIGUSR2);
    i.server.wait_log(&["workers ready"], ready + 1);
    wait_for(&format!("{}: the old workers to exit", i.name), || {
        let now = i.server.workers();
        now.len() == WORKERS && old.iter().all(|p| !now.contains(p) && !alive(*p))
    });
    assert_eq!(i.server.count_log(&["upgrade aborted"]), 0);
}

/// The harness's restart (fleet.py, `Fleet.restart`): drain in HAProxy, TERM once HAProxy
/// holds no request on it, wait for the exit and for the checks to see it down, start a new
/// one on the same port, back in HAProxy once the checks see it up.
fn restart(h: &HaProxy, i: &mut Instance) {
    h.cmd(&format!("set server runicorn/{} state drain", i.name));
    wait_for(&format!("{} drained", i.name), || {
        h.stat(&i.name)["scur"] == "0"
    });
    i.server.signal(libc::SIGTERM);
    assert!(i.server.wait_exit().success());
    wait_for(&format!("HAProxy sees {} down", i.name), || {
        h.op_state(&i.name) == 0
    });
    *i = Instance::start(&i.name, i.port);
    wait_for(&format!("HAProxy sees {} up", i.name), || {
        h.op_state(&i.name) == 2
    });
    h.cmd(&format!("set server runicorn/{} state ready", i.name));
    wait_for(&format!("{} back in HAProxy", i.name), || {
        h.stat(&i.name)["status"] == "UP"
    });
}

/// The largest `count#queued_requests` in an instance's metric lines.
fn most_queued(i: &Instance) -> u64 {
    i.server
        .out_lines()
        .iter()
        .flat_map(|l| l.split(' '))
        .filter_map(|kv| kv.strip_prefix("count#queued_requests="))
        .map(|v| v.parse().unwrap())
        .max()
        .unwrap_or(0)
}

#[test]
fn rolling_upgrade_and_restart_behind_haproxy_lose_no_request() {
    let mut fleet: Vec<Instance> = ["s1", "s2"]
        .iter()
        .map(|name| Instance::start(name, free_port()))
        .collect();
    let servers: Vec<(String, u16)> = fleet.iter().map(|i| (i.name.clone(), i.port)).collect();
    let h = HaProxy::start(&servers);
    for i in &fleet {
        wait_for(&format!("HAProxy sees {} up", i.name), || {
            h.op_state(&i.name) == 2
        });
    }

    let mut spec = OpenSpec::new(
        format!("127.0.0.1:{}", h.port).parse().unwrap(),
        "/service?dist=exp&mean_ms=5",
    );
    spec.rate = 100.0;
    spec.duration = Duration::from_secs(40); // a bound; the steps end it sooner
    spec.max_requests = Some(4000);
    spec.request_timeout = Duration::from_secs(20);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (report, served_before) = std::thread::scope(|s| {
        let load = s.spawn(|| open::run(&spec, &stop).unwrap());
        let _stop = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(1));
        for i in &fleet {
            upgrade(i);
        }
        for i in fleet.iter_mut() {
            restart(&h, i);
        }
        let before: Vec<u64> = fleet.iter().map(|i| h.served(&i.name)).collect();
        // The new instances under load long enough for a metric line each.
        std::thread::sleep(Duration::from_millis(2500));
        stop.store(true, Ordering::Relaxed);
        (load.join().unwrap(), before)
    });
    let all = report.summary();
    let failures: Vec<_> = report
        .records
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Ok(_)))
        .take(10)
        .collect();
    assert!(
        all.sent() > 200 && all.failed() == 0,
        "{} sent, {} failed: {:?}; first failures: {failures:?}",
        all.sent(),
        all.failed(),
        all.counts
    );
    for (i, before) in fleet.iter().zip(served_before) {
        let after = h.served(&i.name);
        assert!(
            after > before,
            "{} served nothing after the restart",
            i.name
        );
        // HAProxy's X-Request-Start reached the new instance as queue time.
        wait_for(
            &format!("{}: a metric line with queued requests", i.name),
            || most_queued(i) > 0,
        );
    }
    assert_eq!(
        h.stat("BACKEND")["wretr"],
        "0",
        "no connection had to be retried"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// The harness's own analysis (logfmt, percentiles, steps; bench/fleet/fleetlib.py) passes
/// its tests.
#[test]
fn the_fleet_harness_analysis_passes_its_tests() {
    let mut cmd = Command::new("python3");
    // -B: no __pycache__ left in the source tree.
    cmd.args(["-B", "-m", "unittest", "discover", "-s"])
        .arg(format!("{ROOT}/bench/fleet"));
    let r = run_bounded(cmd, None, Duration::from_secs(60));
    assert!(r.status.success(), "{}{}", r.out, r.err);
}
