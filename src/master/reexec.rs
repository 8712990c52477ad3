//! The USR2 upgrade, the master's side: check the new binary, hand over and re-execute
//! (see `crate::upgrade` for what crosses the exec), and, in the new image, adopt the
//! workers the previous one left running.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use tracing::{error, info, warn};

use super::{Master, Phase, Worker};
use crate::handler::App;
use crate::sys;
use crate::upgrade::{self, Handover, WorkerRecord};

/// A USR2 upgrade waiting for the new binary's `--check-config`.
#[derive(Debug)]
pub(super) struct Upgrade {
    pub(super) checker: Pid,
    pub(super) started: Instant,
}

impl<A: App> Master<'_, A> {
    /// Takes over the workers a previous image left running (USR2): they are our children
    /// still, and keep serving as an old generation until ours are ready (`plan`).
    pub(super) fn adopt(&mut self, h: Handover) {
        let now = Instant::now();
        for r in &h.workers {
            let control = match sys::adopt_fd(r.control_fd) {
                Ok(fd) => fd,
                Err(e) => {
                    // Without its pipe it cannot be stopped softly: TERM does the same.
                    warn!(worker = r.slot, pid = r.pid, error = %e, "old worker's control pipe is gone");
                    match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
                        Ok((_, w)) => w,
                        Err(_) => continue,
                    }
                }
            };
            let _ = sys::set_cloexec(&control);
            self.workers.push(Worker {
                slot: r.slot,
                pid: Pid::from_raw(r.pid),
                generation: 0,
                control,
                spawned_at: now,
                ready: r.ready,
                stop_sent: r.stopping.then_some(now),
                killed: None,
                memory_limit_kib: 0,
                adopted: true,
                max_requests: 0,
            });
            if r.stopping {
                // Asked before the exec, through a flag this image cannot see: repeat it.
                let _ = kill(Pid::from_raw(r.pid), Signal::SIGTERM);
            }
        }
        self.target = h.target;
        self.generation = 1;
        info!(
            workers = self.workers.len(),
            target = self.target,
            "upgraded: the previous binary's workers serve until the new ones are ready"
        );
    }

    /// Zero-downtime upgrade, step 1: check that the binary at our startup path can start
    /// with our settings (`--check-config`, in a child reaped by `reap`); step 2, in
    /// `on_check_done`, re-executes it.
    pub(super) fn on_usr2(&mut self) {
        if self.phase != Phase::Running {
            info!("USR2 ignored: stopping");
            return;
        }
        if let Some(u) = &self.upgrade {
            info!(
                checker = u.checker.as_raw(),
                "USR2 ignored: an upgrade is already being checked"
            );
            return;
        }
        let Some(exe) = self.exe.clone() else {
            error!("upgrade impossible: the path of this binary is unknown; still serving");
            return;
        };
        let child = std::process::Command::new(&exe)
            .args(&self.args)
            .arg("--check-config")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                let checker = Pid::from_raw(child.id() as i32);
                // Reaped by `reap`, with every other child: the Child handle is not waited on.
                drop(child);
                info!(exe = %exe.display(), checker = checker.as_raw(), "upgrade: checking the new binary");
                self.notifier.reloading("upgrading");
                self.announced = false;
                self.upgrade = Some(Upgrade {
                    checker,
                    started: Instant::now(),
                });
            }
            Err(e) => error!(
                exe = %exe.display(),
                error = %e,
                "upgrade aborted: cannot run the new binary; still serving with the old one"
            ),
        }
    }

    /// The new binary's check ended: re-execute it if it passed.
    pub(super) fn on_check_done(&mut self, status: WaitStatus) {
        self.upgrade = None;
        if self.phase != Phase::Running {
            return;
        }
        if !matches!(status, WaitStatus::Exited(_, 0)) {
            let outcome = match status {
                WaitStatus::Exited(_, c) => format!("exit code {c}"),
                WaitStatus::Signaled(_, s, _) => format!("signal {}", s.as_str()),
                other => format!("{other:?}"),
            };
            error!(
                check = outcome.as_str(),
                "upgrade aborted: the new binary failed --check-config; still serving with the old one"
            );
            return;
        }
        let Some(exe) = self.exe.clone() else { return };
        let handover = Handover {
            target: self.target,
            listen_fds: self.listeners.iter().map(|l| l.as_raw_fd()).collect(),
            workers: self
                .workers
                .iter()
                .map(|w| WorkerRecord {
                    slot: w.slot,
                    pid: w.pid.as_raw(),
                    control_fd: w.control.as_raw_fd(),
                    ready: w.ready,
                    stopping: w.stop_sent.is_some() || w.killed.is_some(),
                })
                .collect(),
            metrics_fd: self.exporter.as_ref().map(|e| e.as_fd().as_raw_fd()),
        };
        // The endpoint's listener crosses too, so that scrapes queue in the kernel while
        // the new image boots; its open connections do not (close-on-exec).
        let keep: Vec<BorrowedFd<'_>> = self
            .listeners
            .iter()
            .map(|l| l.as_fd())
            .chain(self.workers.iter().map(|w| w.control.as_fd()))
            .chain(self.exporter.as_ref().map(|e| e.as_fd()))
            .collect();
        info!(
            exe = %exe.display(),
            workers = handover.workers.len(),
            "upgrade: re-executing; the workers serve on meanwhile"
        );
        let _ = std::io::stdout().flush();
        let env: Vec<(&str, &OsString)> = self.notifier.env().into_iter().collect();
        let e = upgrade::exec(&exe, &self.args, &env, &keep, &handover);
        error!(exe = %exe.display(), error = %e, "upgrade aborted: exec failed; still serving with the old binary");
    }
}
