//! USR2: the master re-executes the binary at its startup path in place, keeping its pid, its
//! listeners and (until the new workers are ready) its old workers.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::{BIN, DEADLINE, Server, Spawn, alive, echo_bin, run_bounded};

/// A private directory for one test, removed on drop.
pub(crate) struct Dir(std::path::PathBuf);

impl Dir {
    pub(crate) fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("runicorn-up-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }

    /// Puts a copy of `src` at `name` the way a deploy does: written beside, then renamed
    /// over, so the running binary's inode is left alone.
    pub(crate) fn install(&self, src: &str, name: &str) -> String {
        self.write_executable(name, &format!("cat '{src}'"), "")
    }

    fn script(&self, name: &str, text: &str) -> String {
        self.write_executable(name, "cat", text)
    }

    /// Writes an executable through a child process. Written from the test process, the
    /// file would be open for writing there, and a server another test thread forks at that
    /// moment would inherit the descriptor and make exec fail with ETXTBSY (text file busy).
    fn write_executable(&self, name: &str, producer: &str, stdin: &str) -> String {
        let tmp = self.path(&format!("{name}.new"));
        let dst = self.path(name);
        let script = format!("{producer} > '{tmp}' && chmod 755 '{tmp}' && mv '{tmp}' '{dst}'");
        let mut sh = std::process::Command::new("sh");
        sh.args(["-c", &script]);
        let r = run_bounded(sh, Some(stdin.as_bytes().to_vec()), DEADLINE);
        assert!(r.status.success(), "{script}: {}", r.err);
        dst
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Requests sent back to back from a thread until stopped; counts the ones that did not get
/// a 200.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(server: &Server) -> Load {
        let addr = server.addr.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            // Bounded in count as well as by the caller's stop.
            while !s.load(Ordering::Relaxed) && n.load(Ordering::Relaxed) < 20_000 {
                n.fetch_add(1, Ordering::Relaxed);
                let outcome = std::net::TcpStream::connect(addr).and_then(|mut c| {
                    c.set_read_timeout(Some(DEADLINE))?;
                    std::io::Write::write_all(&mut c, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")?;
                    Ok(crate::support::read_response(c))
                });
                match outcome {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("status {}: {:?}", r.status, r.head));
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{e} at {:?}", Instant::now()));
                    }
                }
            }
            failures
        });
        Load {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    /// Waits until `n` more requests have been sent (the load is really running).
    fn wait_sent(&self, n: u64) {
        let target = self.sent.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + DEADLINE;
        while self.sent.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "load is not progressing");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.take().unwrap().join().unwrap();
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            failures,
        )
    }
}

fn wait_until(what: &str, server: &Server, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        if Instant::now() >= deadline {
            server.fail(&format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn usr2_runs_the_new_binary_with_the_same_pid_and_loses_no_request() {
    let dir = Dir::new("swap");
    let app = dir.install(BIN, "app");
    let echo = echo_bin(); // built now: a cargo build under load would outlast the load
    let pid_file = dir.path("app.pid");
    let server = Spawn::new(&["--workers", "2", "--pid", &pid_file])
        .bin(&app)
        .start();
    server.wait_log(&["workers ready", "generation=0"], 1);
    assert_eq!(server.get("/").body, b"Hello world\n");
    let old = server.workers();
    assert_eq!(old.len(), 2);

    // A slow request sent before the upgrade must be answered (by an old worker, most
    // likely, which then finishes it before it stops).
    let mut slow = std::net::TcpStream::connect(server.addr.unwrap()).unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    std::io::Write::write_all(&mut slow, b"GET /sleep?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let load = Load::start(&server);
    load.wait_sent(20);

    // Deploy: a different binary (the echo example) at the same path, then USR2.
    dir.install(&echo, "app");
    server.signal(libc::SIGUSR2);
    server.wait_log(&["upgraded:"], 1);
    server.wait_log(&["workers ready", "generation=1"], 1);
    wait_until("the old workers to exit", &server, || {
        old.iter().all(|&p| !alive(p))
    });
    load.wait_sent(20);
    let (sent, failed, failures) = load.finish();
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed: {failures:?}"
    );
    assert_eq!(crate::support::read_response(slow).status, 200);

    // Same master, new workers, new code.
    assert!(alive(server.pid));
    let new = server.workers();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|p| !old.contains(p)), "{old:?} -> {new:?}");
    let body = String::from_utf8(server.get("/after").body).unwrap();
    assert!(
        body.contains("\"path\": \"/after\""),
        "not the echo app: {body}"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        server.pid.to_string()
    );
    assert_eq!(
        server.count_log(&["master started", &format!("pid={}", server.pid)]),
        2
    );

    let mut server = server;
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    assert!(
        !std::path::Path::new(&pid_file).exists(),
        "pid file left behind"
    );
}

#[test]
fn usr2_with_a_binary_that_cannot_start_keeps_the_old_one() {
    let dir = Dir::new("broken");
    let app = dir.install(BIN, "app");
    let server = Spawn::new(&["--workers", "1"]).bin(&app).start();
    server.wait_log(&["workers ready"], 1);
    let before = server.workers();

    dir.script("app", "#!/bin/sh\necho 'app: broken build' >&2\nexit 2\n");
    server.signal(libc::SIGUSR2);
    let line = &server.wait_log(&["upgrade aborted"], 1)[0];
    assert!(line.contains("check=\"exit code 2\""), "{line}");
    assert!(line.contains("at=error"), "{line}");

    assert_eq!(server.get("/").body, b"Hello world\n");
    assert_eq!(server.workers(), before);
    assert_eq!(server.count_log(&["upgraded:"]), 0);
}

#[test]
fn usr2_and_hup_during_an_upgrade_check_are_safe() {
    let dir = Dir::new("busy");
    let app = dir.install(BIN, "app");
    let server = Spawn::new(&["--workers", "1"]).bin(&app).start();
    server.wait_log(&["workers ready"], 1);
    let first = server.workers();

    // A new binary whose --check-config waits until the test lets it go.
    let gate = dir.path("gate");
    let real = dir.install(BIN, "real");
    let status = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(status.success());
    dir.script(
        "app",
        &format!(
            "#!/bin/sh\ncase \" $* \" in *\" --check-config \"*) read go < '{gate}';; esac\nexec '{real}' \"$@\"\n"
        ),
    );
    server.signal(libc::SIGUSR2);
    server.wait_log(&["upgrade: checking the new binary"], 1);
    server.signal(libc::SIGUSR2);
    server.wait_log(&["USR2 ignored: an upgrade is already being checked"], 1);
    server.signal(libc::SIGHUP);
    server.wait_log(&["replacing every worker"], 1);
    // (The master's children now: the checker, and the worker.)
    wait_until("HUP to replace the worker", &server, || {
        !alive(first[0]) && server.workers().len() == 2
    });
    assert_eq!(server.get("/").status, 200);

    std::fs::write(&gate, "go\n").unwrap();
    server.wait_log(&["upgraded:"], 1);
    server.wait_log(&["workers ready", "generation=1"], 1);
    assert_eq!(server.get("/").status, 200);
    assert!(alive(server.pid));
    // The checker was reaped, and the handed-over worker stops now that its successor serves.
    wait_until("one worker", &server, || server.workers().len() == 1);
}

/// Reads sd_notify datagrams until one contains `want`.
fn expect_notify(sock: &UnixDatagram, server: &Server, want: &str) -> String {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + DEADLINE;
    loop {
        if Instant::now() >= deadline {
            server.fail(&format!("no sd_notify message with {want}"));
        }
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains(want) {
                return msg;
            }
        }
    }
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let dir = Dir::new("notify");
    let path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut server = Spawn::new(&["--workers", "2"])
        .env("NOTIFY_SOCKET", &path)
        .start();

    let ready = expect_notify(&sock, &server, "READY=1");
    assert!(
        ready.contains(&format!("MAINPID={}\n", server.pid)),
        "{ready}"
    );
    assert!(ready.contains("STATUS=serving with 2 workers"), "{ready}");

    server.signal(libc::SIGHUP);
    let reloading = expect_notify(&sock, &server, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect_notify(&sock, &server, "READY=1");

    // The socket's name crosses the re-exec: the new image announces itself too.
    server.signal(libc::SIGUSR2);
    expect_notify(&sock, &server, "RELOADING=1");
    let ready = expect_notify(&sock, &server, "READY=1");
    assert!(
        ready.contains(&format!("MAINPID={}\n", server.pid)),
        "{ready}"
    );
    server.wait_log(&["upgraded:"], 1);

    server.signal(libc::SIGTERM);
    expect_notify(&sock, &server, "STOPPING=1");
    assert!(server.wait_exit().success());
}
