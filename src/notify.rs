//! systemd's readiness protocol (sd_notify(3)): when `NOTIFY_SOCKET` is set, the master tells
//! the service manager when it is ready, reloading (HUP, USR2) and stopping.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the Unix socket named by the
//! variable (a path, or an abstract name after `@`). Sending is best effort and never blocks
//! the master: the socket is non-blocking, and a manager that went away costs a debug line.
//! The variable is taken out of the environment at startup so that programs the app starts
//! do not speak for the server; an upgrade hands it back to the new image ([`Notifier::env`]).

use std::ffi::OsString;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::debug;

use crate::sys;

/// The environment variable naming the service manager's socket.
pub const ENV: &str = "NOTIFY_SOCKET";

/// The master's line to the service manager; does nothing when none is listening.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(OsString, SocketAddr, UnixDatagram)>,
}

impl Notifier {
    /// Reads (and removes) `NOTIFY_SOCKET`. Called at startup, while the process has one
    /// thread.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os(ENV) else {
            return Notifier { target: None };
        };
        sys::remove_env(ENV);
        let open = |addr| {
            let sock = UnixDatagram::unbound().ok()?;
            sock.set_nonblocking(true).ok()?;
            Some((addr, sock))
        };
        match address(&name).and_then(open) {
            Some((addr, sock)) => Notifier {
                target: Some((name, addr, sock)),
            },
            None => {
                debug!(socket = ?name, "NOTIFY_SOCKET is not a usable Unix socket; not notifying");
                Notifier { target: None }
            }
        }
    }

    /// The variable to hand to a re-executed image.
    pub fn env(&self) -> Option<(&'static str, &OsString)> {
        self.target.as_ref().map(|(name, _, _)| (ENV, name))
    }

    /// `READY=1`: every worker of the current generation serves. Also sent at the end of a
    /// reload. `MAINPID` is always ours: an upgrade keeps the pid.
    pub fn ready(&self, workers: usize) {
        self.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS=serving with {workers} workers\n",
            std::process::id()
        ));
    }

    /// `RELOADING=1`: a HUP or USR2 started replacing the workers. `MONOTONIC_USEC` is what
    /// `Type=notify-reload` services must send with it (systemd.service(5)).
    pub fn reloading(&self, what: &str) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={what}\n",
            sys::monotonic_ns() / 1000
        ));
    }

    /// `STOPPING=1`: a stop began.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }

    fn send(&self, msg: &str) {
        if let Some((name, addr, sock)) = &self.target
            && let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
        {
            debug!(socket = ?name, error = %e, "sd_notify failed");
        }
    }
}

/// The socket address `NOTIFY_SOCKET` names: a filesystem path, or `@name` for Linux's
/// abstract namespace (unix(7)).
fn address(name: &OsString) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    match bytes.first()? {
        b'@' => SocketAddr::from_abstract_name(&bytes[1..]).ok(),
        b'/' => SocketAddr::from_pathname(std::path::Path::new(name)).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_path_or_an_abstract_socket() {
        let path = address(&"/run/systemd/notify".into()).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        use std::os::linux::net::SocketAddrExt;
        let abs = address(&"@sd-notify".into()).unwrap();
        assert_eq!(abs.as_abstract_name(), Some(&b"sd-notify"[..]));
        assert!(address(&"relative/path".into()).is_none());
        assert!(address(&"".into()).is_none());
    }

    #[test]
    fn sends_datagrams_to_the_manager() {
        let dir = std::env::temp_dir().join(format!("runicorn-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        let sock = UnixDatagram::unbound().unwrap();
        let n = Notifier {
            target: Some((
                path.clone().into_os_string(),
                SocketAddr::from_pathname(&path).unwrap(),
                sock,
            )),
        };
        n.ready(2);
        n.reloading("upgrading");
        n.stopping();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..3 {
            let len = manager.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert!(got[0].starts_with("READY=1\nMAINPID="), "{got:?}");
        assert!(got[0].contains("STATUS=serving with 2 workers"));
        assert!(
            got[1].starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{got:?}"
        );
        assert_eq!(got[2], "STOPPING=1\nSTATUS=stopping\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
