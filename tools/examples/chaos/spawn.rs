//! Starting the server under test (stdin null, a free 127.0.0.1 port, its own process
//! group, stopped at the end), and finding the pool size it settles on.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{say, signal, wait_until};
use runicorn::internals::procfs::workers;

/// A server the harness started; stopped (TERM, then KILL to its process group) on drop.
pub struct Started {
    pub child: Child,
}

impl Drop for Started {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        let _ = signal(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        let exited = wait_until(deadline, || matches!(self.child.try_wait(), Ok(Some(_))));
        // The whole group: workers too, if the master left any.
        let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        if !exited {
            let _ = self.child.wait();
        }
    }
}

/// The address a command will listen on: its `--bind` if it has one, else a free
/// 127.0.0.1 port added as `--bind`.
fn bind_address(command: &mut Vec<String>) -> Result<SocketAddr, String> {
    let given = command.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--bind=")
            .map(str::to_string)
            .or_else(|| (a == "--bind").then(|| command.get(i + 1).cloned())?)
    });
    if let Some(bind) = given {
        return bind
            .parse()
            .map_err(|_| format!("--bind {bind:?} in the command is not a TCP address"));
    }
    // The port is free now; the server binds it a moment later.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?;
    command.extend(["--bind".into(), addr.to_string()]);
    Ok(addr)
}

pub fn start(mut command: Vec<String>, log: &PathBuf) -> Result<(Started, SocketAddr), String> {
    if command.is_empty() {
        let bin = [
            PathBuf::from("target/release/runicorn"),
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/release/runicorn"
            )),
        ]
        .into_iter()
        .find(|p| p.exists())
        .ok_or(
            "no server: give --addr and --pid, or -- <command>, or build target/release/runicorn",
        )?;
        command = vec![bin.to_string_lossy().into(), "--workers".into(), "2".into()];
    }
    let addr = bind_address(&mut command)?;
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    say(&format!(
        "starting {} (log: {})",
        command.join(" "),
        log.display()
    ));
    let child = Command::new(&command[0])
        .args(&command[1..])
        // WINCH is ignored by a master whose stdin is a terminal.
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: {e}", command[0]))?;
    let started = Started { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    if !wait_until(deadline, || TcpStream::connect(addr).is_ok()) {
        return Err(format!("the server did not listen on {addr}"));
    }
    Ok((started, addr))
}

/// The pool size once the server has settled: `--workers`, or the worker count after it
/// has stayed the same for half a second.
pub fn settled_pool(
    master: i32,
    workers_flag: Option<usize>,
    settle: Duration,
) -> Result<usize, String> {
    let deadline = Instant::now() + settle;
    if let Some(n) = workers_flag {
        return if wait_until(deadline, || workers(master).len() == n) {
            Ok(n)
        } else {
            Err(format!(
                "the server did not reach --workers {n}: {:?}",
                workers(master)
            ))
        };
    }
    let (mut last, mut since) = (usize::MAX, Instant::now());
    let stable = wait_until(deadline, || {
        let n = workers(master).len();
        if n != last {
            (last, since) = (n, Instant::now());
        }
        n > 0 && since.elapsed() >= Duration::from_millis(500)
    });
    if stable {
        Ok(last)
    } else {
        Err(format!(
            "the pool of {master} did not settle (workers {:?})",
            workers(master)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn bind_addresses() {
        let mut c = args("bin --bind 127.0.0.1:7000 --workers 2");
        assert_eq!(bind_address(&mut c).unwrap().port(), 7000);
        let mut c = args("bin --bind=127.0.0.1:7001");
        assert_eq!(bind_address(&mut c).unwrap().port(), 7001);
        let mut c = args("bin --bind unix:/tmp/s");
        assert!(bind_address(&mut c).is_err());
        let mut c = args("bin");
        let addr = bind_address(&mut c).unwrap();
        assert_eq!(c, args(&format!("bin --bind {addr}")));
    }
}
