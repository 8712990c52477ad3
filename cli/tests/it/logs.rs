use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn wait_file_contains(path: &std::path::Path, needle: &str, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches(needle).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} x{n} never appeared in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn usr1_reopens_an_appended_log_file_in_the_master_and_the_workers() {
    let dir = std::env::temp_dir().join(format!("runicorn-usr1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$0" --workers 2 --bind 127.0.0.1:0 2>>"$1""#)
        .arg(BIN)
        .arg(&log)
        .env_remove("WEB_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // SAFETY: plain kill(2) of the test's own server group.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
    let _reap = Reap(pid);
    wait_file_contains(&log, "worker ready", 2);

    // What logrotate does: move the file away, then signal.
    let rotated = dir.join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    // The master and both workers write their next lines to a new file at the old path.
    wait_file_contains(&log, "reopened log files", 3);
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(new.contains("master exiting"), "{new}");
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("master exiting")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn access_log_lines_escape_what_the_client_sent() {
    let s = Server::start(&["--workers", "1", "--access-log"]);
    s.wait_log(&["worker ready"], 1);
    let r = request(
        s.addr.unwrap(),
        "GET /a%20b?x=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: id\" status=999 at=error\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    let line = &s.wait_log(&["msg=request"], 1)[0];
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("path=/a%20b"), "{line}");
    assert!(line.contains("status=404"), "{line}");
    assert!(line.contains("bytes=10"), "{line}");
    assert!(
        line.contains(r#"request_id="id\" status=999 at=error""#),
        "{line}"
    );
    assert!(line.contains("service_ms="), "{line}");
    assert!(
        line.contains("queue_ms=-"),
        "no X-Request-Start, no queue time: {line}"
    );
    assert_eq!(line.matches("at=info").count(), 1, "{line}");
}
