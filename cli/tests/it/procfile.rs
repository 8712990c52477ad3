//! examples/Procfile under a real Procfile runner (honcho, from PyPI), as `heroku local`
//! would run it: PORT and WEB_CONCURRENCY from the runner, SIGTERM to stop.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{BIN, DEADLINE, python_module, request};

/// `python3 -m honcho`, installing honcho with pip when it is missing (`.ci/run` installs it).
fn honcho() -> Command {
    python_module("honcho", "honcho==2.0.0");
    let mut c = Command::new("python3");
    c.args(["-m", "honcho"]);
    c
}

#[test]
fn the_procfile_serves_under_honcho_and_stops_cleanly_on_term() {
    // The Procfile names ./target/release/runicorn: run it from the directory holding the
    // target directory this test was built in.
    let bin = std::path::Path::new(BIN);
    let root = bin.ancestors().nth(3).unwrap();
    assert_eq!(
        root.join("target/release/runicorn"),
        bin,
        "the Procfile expects the binary at ./target/release/runicorn"
    );
    let port = crate::support::free_port();
    let procfile = &format!("{}/examples/Procfile", crate::support::ROOT);
    let mut child = honcho()
        .args(["start", "--no-colour", "-f", procfile, "-d"])
        .arg(root)
        .args(["-p", &port.to_string(), "web"])
        .current_dir(root)
        // honcho sets PORT for web.1; the bind keeps the test on loopback (the default with
        // PORT is every interface).
        .env("RUNICORN_BIND", format!("127.0.0.1:{port}"))
        .env("WEB_CONCURRENCY", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start honcho");
    let pid = child.id() as i32;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let guard = KillGroups {
        honcho: pid,
        lines: lines.clone(),
    };
    let out = child.stdout.take().unwrap();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let wait_for = |text: &str| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if lines.lock().unwrap().iter().any(|l| l.contains(text)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {text:?} from honcho:\n{}",
                lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    wait_for("msg=\"workers ready\" workers=2");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = request(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello world\n");

    // SAFETY: plain kill(2) to honcho, which passes TERM on to the web process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    drop(guard);
    let out = lines.lock().unwrap().join("\n");
    assert!(out.contains("msg=\"master exiting\" code=0"), "{out}");
    assert!(out.contains("web.1 stopped (rc=0)"), "{out}");
    // honcho's own code after a TERM is 128 + 15 by its convention, whatever its processes did.
    assert_eq!(status.code(), Some(143), "{out}");
}

/// On drop (the test's failure path), kills honcho's process group and the session honcho
/// started for each process (it logs `web.1 started (pid=N)`; with start_new_session the
/// process group id is N), so that no server outlives a failed test.
struct KillGroups {
    honcho: i32,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for KillGroups {
    fn drop(&mut self) {
        // The lock may be poisoned: the failure being unwound may have panicked holding it.
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let started: Vec<i32> = lines
            .iter()
            .filter_map(|l| {
                l.split("started (pid=")
                    .nth(1)?
                    .split(')')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        for group in std::iter::once(self.honcho).chain(started) {
            // SAFETY: plain kill(2) to a process group this test started.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}
