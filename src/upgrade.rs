//! The zero-downtime upgrade (USR2): the master re-executes its own binary in place, so its
//! pid never changes, keeping the listening sockets and its workers.
//!
//! Unicorn's USR2 forks a second master beside the first, which orphans the pid a supervisor
//! watches (gunicorn#2856 has the same problem); Puma's hot restart keeps the pid but stops
//! serving while it boots. Here execve(2) keeps the pid, and children survive their parent's
//! exec: the old workers go on serving from the same kernel accept queue while the new image
//! builds the app, and the new master adopts them as an old generation, retired as its own
//! workers become ready (the HUP logic in `master::plan`).
//!
//! What crosses the exec is one environment variable, `RUNICORN_UPGRADE`, naming the
//! descriptors kept open (listeners, and each old worker's control pipe) and the pool. The
//! new image reads and removes it at startup ([`take_from_env`]), before any thread exists.
//! The old scoreboard does not cross (an anonymous mapping ends at exec): the new master
//! sees old workers only as pids, stopped gracefully and killed past `graceful_timeout`.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use crate::sys;

/// The environment variable that carries an upgrade into the new image.
pub const ENV: &str = "RUNICORN_UPGRADE";

/// A worker left running by the previous image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its slot.
    pub slot: usize,
    /// Its pid (a child of this process: children survive their parent's exec).
    pub pid: i32,
    /// The write end of its control pipe, kept open across the exec.
    pub control_fd: RawFd,
    /// It had booted.
    pub ready: bool,
    /// It had already been asked to stop.
    pub stopping: bool,
}

/// What the previous image hands to the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The worker count the operator had set (TTIN/TTOU included).
    pub target: usize,
    /// The listening sockets, in bind order.
    pub listen_fds: Vec<RawFd>,
    /// The old workers.
    pub workers: Vec<WorkerRecord>,
    /// The Prometheus endpoint's listening socket (`--metrics-bind`), if it had one.
    pub metrics_fd: Option<RawFd>,
}

/// Encodes a handover: `target=2;listen=3,4;workers=0.4242.7.r,1.4243.8.rs` (slot, pid,
/// control fd, flags: `r` ready, `s` stopping), then `;metrics=5` with a Prometheus
/// endpoint (left out without one, so the text stays what older images read).
pub fn encode(h: &Handover) -> String {
    let join = |v: Vec<String>| v.join(",");
    let listen = join(h.listen_fds.iter().map(|f| f.to_string()).collect());
    let workers = join(
        h.workers
            .iter()
            .map(|w| {
                let flags = match (w.ready, w.stopping) {
                    (true, true) => "rs",
                    (true, false) => "r",
                    (false, true) => "s",
                    (false, false) => "",
                };
                format!("{}.{}.{}.{flags}", w.slot, w.pid, w.control_fd)
            })
            .collect(),
    );
    let mut out = format!("target={};listen={listen};workers={workers}", h.target);
    if let Some(fd) = h.metrics_fd {
        out.push_str(&format!(";metrics={fd}"));
    }
    out
}

/// Decodes [`encode`]'s text; `Err` names what is wrong.
pub fn decode(text: &str) -> Result<Handover, String> {
    let mut target = None;
    let mut listen_fds = Vec::new();
    let mut workers = Vec::new();
    let mut metrics_fd = None;
    let num = |s: &str, what: &str| -> Result<i64, String> {
        s.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("bad {what} '{s}'"))
    };
    for part in text.split(';') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("bad field '{part}'"))?;
        let items = value.split(',').filter(|s| !s.is_empty());
        match key {
            "target" => target = Some(num(value, "target")? as usize),
            "listen" => {
                for fd in items {
                    listen_fds.push(num(fd, "fd")? as RawFd);
                }
            }
            "workers" => {
                for w in items {
                    let f: Vec<&str> = w.split('.').collect();
                    let [slot, pid, fd, flags] = f[..] else {
                        return Err(format!("bad worker '{w}'"));
                    };
                    workers.push(WorkerRecord {
                        slot: num(slot, "slot")? as usize,
                        pid: num(pid, "pid")? as i32,
                        control_fd: num(fd, "fd")? as RawFd,
                        ready: flags.contains('r'),
                        stopping: flags.contains('s'),
                    });
                }
            }
            "metrics" => metrics_fd = Some(num(value, "fd")? as RawFd),
            _ => return Err(format!("unknown field '{key}'")),
        }
    }
    let target = target.ok_or("no target")?;
    Ok(Handover {
        target,
        listen_fds,
        workers,
        metrics_fd,
    })
}

/// Takes the handover left by a previous image, if this process is one that was upgraded
/// into, and removes the variable so that nothing the app starts sees it. Called once at
/// startup, while the process has one thread.
pub fn take_from_env() -> Result<Option<Handover>, String> {
    let Some(text) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    sys::remove_env(ENV);
    let text = text.to_str().ok_or("not UTF-8")?;
    decode(text).map(Some).map_err(|e| format!("{ENV}: {e}"))
}

/// The binary to re-execute: the path the server was started from, not /proc/self/exe. That
/// one names the inode that is running (a rebuilt binary would be missed, and a symlinked
/// release directory resolved to the old release); `argv[0]` names the path, so the file at
/// that path now is what runs. A bare name (found through `PATH`) falls back to
/// /proc/self/exe. Resolved at startup, before the app could change the working directory.
pub fn startup_exe(argv0: &Path, cwd: &Path) -> Option<PathBuf> {
    if argv0.as_os_str().as_bytes().contains(&b'/') {
        Some(cwd.join(argv0))
    } else {
        std::env::current_exe().ok()
    }
}

/// Replaces this process's image with `exe args...`, keeping `keep` open and adding
/// `extra_env` and `ENV` (with `handover`) to the environment. Returns only on failure, with every descriptor's
/// close-on-exec flag restored.
///
/// All signals are blocked across the exec: the new image installs its handlers and then
/// unblocks them (`Master::new`), so a TERM or HUP sent in between waits instead of
/// meeting the default action (which would end the process the supervisor watches).
pub fn exec(
    exe: &Path,
    args: &[OsString],
    extra_env: &[(&str, &OsString)],
    keep: &[BorrowedFd<'_>],
    handover: &Handover,
) -> io::Error {
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| io::ErrorKind::InvalidInput);
    let prepared = (|| -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = cstr(exe.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for a in args {
            argv.push(cstr(a.as_bytes())?);
        }
        let mut env = Vec::new();
        let extra = extra_env
            .iter()
            .map(|(k, v)| (OsString::from(k), (*v).clone()));
        for (k, v) in std::env::vars_os().chain(extra) {
            if k != ENV {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                env.push(cstr(&kv)?);
            }
        }
        env.push(cstr(format!("{ENV}={}", encode(handover)).as_bytes())?);
        Ok((path, argv, env))
    })();
    let (path, argv, env) = match prepared {
        Ok(p) => p,
        Err(e) => return e,
    };
    for fd in keep {
        if let Err(e) = sys::set_inheritable(*fd, true) {
            restore(keep);
            return e;
        }
    }
    let old_mask = match sys::block_signals() {
        Ok(m) => m,
        Err(e) => {
            restore(keep);
            return e;
        }
    };
    let err = match nix::unistd::execve(&path, &argv, &env) {
        Err(e) => io::Error::from(e),
    };
    let _ = sys::restore_signal_mask(&old_mask);
    restore(keep);
    err
}

fn restore(keep: &[BorrowedFd<'_>]) {
    for fd in keep {
        let _ = sys::set_inheritable(*fd, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_survives_encoding() {
        let h = Handover {
            target: 3,
            listen_fds: vec![3, 9],
            workers: vec![
                WorkerRecord {
                    slot: 0,
                    pid: 4242,
                    control_fd: 7,
                    ready: true,
                    stopping: false,
                },
                WorkerRecord {
                    slot: 5,
                    pid: 4250,
                    control_fd: 12,
                    ready: false,
                    stopping: true,
                },
            ],
            metrics_fd: None,
        };
        let text = encode(&h);
        assert_eq!(text, "target=3;listen=3,9;workers=0.4242.7.r,5.4250.12.s");
        assert_eq!(decode(&text), Ok(h.clone()));
        let with_metrics = Handover {
            metrics_fd: Some(14),
            ..h
        };
        let text = encode(&with_metrics);
        assert_eq!(
            text,
            "target=3;listen=3,9;workers=0.4242.7.r,5.4250.12.s;metrics=14"
        );
        assert_eq!(decode(&text), Ok(with_metrics));
        assert_eq!(
            decode("target=1;listen=3;workers=;metrics=x"),
            Err("bad fd 'x'".into())
        );
    }

    #[test]
    fn an_empty_pool_survives_encoding() {
        let h = Handover {
            target: 0,
            listen_fds: vec![3],
            workers: vec![],
            metrics_fd: None,
        };
        assert_eq!(decode(&encode(&h)), Ok(h));
    }

    #[test]
    fn bad_handovers_are_named() {
        assert_eq!(decode("listen=3"), Err("no target".into()));
        assert_eq!(decode("target=x"), Err("bad target 'x'".into()));
        assert_eq!(decode("target=1;listen=-3"), Err("bad fd '-3'".into()));
        assert_eq!(
            decode("target=1;workers=1.2.3"),
            Err("bad worker '1.2.3'".into())
        );
        assert_eq!(
            decode("target=1;color=red"),
            Err("unknown field 'color'".into())
        );
        assert_eq!(decode("nonsense"), Err("bad field 'nonsense'".into()));
    }

    #[test]
    fn the_startup_path_is_kept_unresolved() {
        let cwd = Path::new("/srv/app");
        assert_eq!(
            startup_exe(Path::new("./target/release/myapp"), cwd),
            Some(PathBuf::from("/srv/app/./target/release/myapp"))
        );
        assert_eq!(
            startup_exe(Path::new("/srv/current/bin/myapp"), cwd),
            Some(PathBuf::from("/srv/current/bin/myapp"))
        );
        // A bare name: whatever runs now.
        assert!(startup_exe(Path::new("myapp"), cwd).is_some());
    }
}
