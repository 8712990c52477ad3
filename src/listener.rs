//! Listening sockets: bound once by the master (or inherited from systemd through
//! `LISTEN_FDS`), shared by every worker through fork, and accepted from by the workers.
//!
//! TCP listeners get SO_REUSEADDR, dual-stack for `[::]`, the configured backlog and
//! TCP_DEFER_ACCEPT. Accepted TCP connections have TCP_NODELAY (a response is written in one
//! go and must not wait for Nagle), inherited from the listener rather than set per
//! connection (see [`Listener::set_nodelay_for_accepted`]). Listeners and accepted
//! connections are non-blocking: workers poll both.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::config::BindAddr;
use crate::error::{Error, ErrorKind};
use crate::metrics::tcp::{ListenQueue, decode_listen_queue};
use crate::sys;

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP, IPv4 or IPv6.
    Tcp(TcpListener),
    /// A Unix domain socket; the path is removed on a clean exit if we created it.
    Unix(UnixListener, Option<PathBuf>),
}

/// An accepted connection.
#[derive(Debug)]
pub enum Conn {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
}

impl Listener {
    /// Accepts one connection, non-blocking and close-on-exec from the start (accept4(2):
    /// no extra fcntl), with the client's address (`None` on a Unix socket), or `WouldBlock`
    /// when none is waiting. One syscall: TCP_NODELAY comes from the listener
    /// ([`Listener::set_nodelay_for_accepted`]), the address from accept4 itself.
    pub fn accept(&self) -> io::Result<(Conn, Option<std::net::SocketAddr>)> {
        let (fd, peer) = sys::accept4_with_peer(self.as_fd())?;
        match self {
            Listener::Tcp(_) => Ok((Conn::Tcp(TcpStream::from(fd)), peer)),
            Listener::Unix(..) => Ok((Conn::Unix(UnixStream::from(fd)), None)),
        }
    }

    /// Sets TCP_NODELAY on a TCP listening socket, so that every connection accepted from it
    /// has it without a setsockopt(2) per connection: Linux builds the accepted socket as a
    /// copy of the listener (`sk_clone_lock`, then `tcp_create_openreq_child`), Nagle
    /// setting included. A test checks it on the running kernel. Idempotent (each worker
    /// calls it once at boot, for listeners bound here and inherited ones alike); nothing to
    /// do for a Unix socket.
    pub fn set_nodelay_for_accepted(&self) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => {
                sock::setsockopt(l, sock::sockopt::TcpNoDelay, &true).map_err(io::Error::from)
            }
            Listener::Unix(..) => Ok(()),
        }
    }

    /// This listener's accept queue (length and limit), from TCP_INFO; `None` for a Unix
    /// socket (the kernel does not report it).
    pub fn listen_queue(&self) -> Option<ListenQueue> {
        match self {
            Listener::Tcp(_) => {
                let mut buf = [0u8; sys::TCP_INFO_LEN];
                sys::tcp_info(self.as_fd(), &mut buf).and_then(decode_listen_queue)
            }
            Listener::Unix(..) => None,
        }
    }

    /// Where it listens, for logs: `127.0.0.1:8080`, `[::]:5000`, `unix:/run/app.sock`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp:?".into(), |a| a.to_string()),
            Listener::Unix(l, _) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            {
                Some(p) => format!("unix:{}", p.display()),
                None => "unix:?".into(),
            },
        }
    }

    /// The local TCP address, if TCP.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Stops listening for every process sharing the socket (see [`sys::stop_listening`]).
    pub fn stop_listening(&self) -> io::Result<()> {
        sys::stop_listening(self.as_fd())
    }

    /// Removes the socket file of a Unix listener we bound (master, at exit).
    pub fn remove_socket_file(&self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Conn {
    /// Shuts down the writing side (our FIN), keeping the reading side.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write_vectored(bufs),
            Conn::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The listeners the server should use: those handed over by the previous image in a USR2
/// upgrade (`upgraded`), else the sockets systemd passed (`LISTEN_FDS` with our pid in
/// `LISTEN_PID`), else the configured addresses, bound now.
///
/// `fallback` replaces the first address when it cannot be bound because the machine has
/// no IPv6 (the platform default `[::]:$PORT` becoming `0.0.0.0:$PORT`).
pub fn open(
    binds: &[BindAddr],
    fallback: Option<&BindAddr>,
    backlog: i32,
    upgraded: Option<&[RawFd]>,
) -> Result<Vec<Listener>, Error> {
    if let Some(fds) = upgraded {
        // Our own sockets: a Unix socket's file is ours to remove at exit.
        return fds.iter().map(|&fd| adopt(fd, "upgrade", true)).collect();
    }
    if let Some(inherited) = inherited()? {
        return Ok(inherited);
    }
    let mut out = Vec::with_capacity(binds.len());
    for (i, addr) in binds.iter().enumerate() {
        match bind(addr, backlog) {
            Ok(l) => out.push(l),
            Err(e) if i == 0 && fallback.is_some() && no_ipv6(&e) => {
                let fb = fallback.expect("checked above");
                tracing::warn!(addr = %addr, fallback = %fb, "no IPv6 on this machine; binding IPv4 only");
                out.push(bind(fb, backlog).map_err(|e| listen_error(fb, e))?);
            }
            Err(e) => return Err(listen_error(addr, e)),
        }
    }
    Ok(out)
}

fn listen_error(addr: &BindAddr, e: io::Error) -> Error {
    Error::io(ErrorKind::Listen, format!("cannot listen on {addr}"), e)
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
    )
}

/// Binds and listens on one address.
pub fn bind(addr: &BindAddr, backlog: i32) -> io::Result<Listener> {
    let backlog = sock::Backlog::new(backlog).map_err(io::Error::from)?;
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    match addr {
        BindAddr::Tcp(sa) => {
            let family = if sa.is_ipv6() {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            let fd = sock::socket(family, SockType::Stream, flags, None)?;
            sys::set_reuse_addr(fd.as_fd())?;
            if sa.is_ipv6() && sa.ip().is_unspecified() {
                sys::set_dual_stack(fd.as_fd())?;
            }
            sock::bind(fd.as_raw_fd(), &SockaddrStorage::from(*sa))?;
            sock::listen(&fd, backlog)?;
            // Best effort: not every kernel (or sandbox) has it, and the server works without.
            let _ = sys::set_defer_accept(fd.as_fd(), 1);
            Ok(Listener::Tcp(TcpListener::from(fd)))
        }
        BindAddr::Unix(path) => {
            remove_stale_socket(path)?;
            let fd = sock::socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
            sock::bind(fd.as_raw_fd(), &sock::UnixAddr::new(path.as_path())?)?;
            sock::listen(&fd, backlog)?;
            Ok(Listener::Unix(UnixListener::from(fd), Some(path.clone())))
        }
    }
}

/// A socket file left by a server that died without cleaning up would make bind fail with
/// EADDRINUSE. Remove it only if nothing answers on it (as Unicorn does); a live server's
/// socket is left alone and bind reports the conflict.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_err() {
                std::fs::remove_file(path)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Sockets passed by systemd socket activation (sd_listen_fds(3)): `LISTEN_PID` must be our
/// pid, and `LISTEN_FDS` sockets start at fd 3. The variables are removed so that programs the
/// app starts do not take the sockets for theirs.
fn inherited() -> Result<Option<Vec<Listener>>, Error> {
    let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(None);
    };
    if pid.trim() != std::process::id().to_string() {
        return Ok(None);
    }
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        sys::remove_env(name);
    }
    let count: i32 = count.trim().parse().map_err(|_| {
        Error::new(
            ErrorKind::Listen,
            format!("LISTEN_FDS: invalid value '{count}': accepts a number of sockets"),
        )
    })?;
    (3..3 + count)
        .map(|fd| adopt(fd, "LISTEN_FDS", false))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Takes an inherited listening socket: checks it is one, marks it close-on-exec (so it does
/// not leak into programs the app runs) and non-blocking. `owns_file`: remove a Unix socket's
/// file at exit (not for systemd's sockets: the socket unit owns those).
fn adopt(fd: RawFd, source: &str, owns_file: bool) -> Result<Listener, Error> {
    let fail = |e| Error::io(ErrorKind::Listen, format!("{source}: fd {fd}"), e);
    let owned: OwnedFd = sys::adopt_fd(fd).map_err(fail)?;
    if !sys::is_stream_socket(owned.as_fd()) || !sys::is_listening(owned.as_fd()) {
        return Err(Error::new(
            ErrorKind::Listen,
            format!("{source}: fd {fd} is not a listening stream socket"),
        ));
    }
    sys::set_cloexec(&owned).map_err(fail)?;
    let listener = match sys::socket_family(owned.as_fd()) {
        Some(libc::AF_UNIX) => {
            let l = UnixListener::from(owned);
            let path = owns_file
                .then(|| l.local_addr().ok()?.as_pathname().map(Path::to_path_buf))
                .flatten();
            Listener::Unix(l, path)
        }
        _ => Listener::Tcp(TcpListener::from(owned)),
    };
    match &listener {
        Listener::Tcp(l) => l.set_nonblocking(true),
        Listener::Unix(l, _) => l.set_nonblocking(true),
    }
    .map_err(fail)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_tcp_with_ephemeral_port_and_accepts() {
        let l = bind(&BindAddr::Tcp("127.0.0.1:0".parse().unwrap()), 16).unwrap();
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"x").unwrap(); // TCP_DEFER_ACCEPT waits for data
        let mut conn = accept_blocking(&l);
        let mut b = [0u8; 1];
        assert_eq!(
            conn.read(&mut b).unwrap(),
            1,
            "the data is there: TCP_DEFER_ACCEPT"
        );
        assert_eq!(&b, b"x");
        assert_eq!(
            conn.read(&mut b).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "non-blocking"
        );
        assert_eq!(l.listen_queue().map(|q| q.depth), Some(0));
    }

    fn accept_blocking(l: &Listener) -> Conn {
        loop {
            match l.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn accept_gives_the_clients_address() {
        let l = bind(&BindAddr::Tcp("127.0.0.1:0".parse().unwrap()), 16).unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        client.write_all(b"x").unwrap();
        let peer = loop {
            match l.accept() {
                Ok((_, peer)) => break peer,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(peer, Some(client.local_addr().unwrap()));
    }

    /// `accept` no longer sets TCP_NODELAY itself: the kernel must copy it from the listener.
    #[test]
    fn accepted_connections_inherit_nodelay_from_the_listener() {
        let l = bind(&BindAddr::Tcp("127.0.0.1:0".parse().unwrap()), 16).unwrap();
        l.set_nodelay_for_accepted().unwrap();
        let addr = l.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"x").unwrap();
        match accept_blocking(&l) {
            Conn::Tcp(s) => assert!(s.nodelay().unwrap(), "TCP_NODELAY inherited"),
            Conn::Unix(_) => unreachable!(),
        }
    }

    #[test]
    fn binds_unix_and_replaces_a_stale_socket_file() {
        let path = std::env::temp_dir().join(format!("runicorn-test-{}.sock", std::process::id()));
        let addr = BindAddr::Unix(path.clone());
        let first = bind(&addr, 16).unwrap();
        drop(first); // leaves the file behind, as a crashed server would
        assert!(path.exists());
        let l = bind(&addr, 16).unwrap();
        assert_eq!(l.describe(), format!("unix:{}", path.display()));
        assert!(UnixStream::connect(&path).is_ok());
        // A live socket is not removed: binding again fails.
        assert!(bind(&addr, 16).is_err());
        l.remove_socket_file();
        assert!(!path.exists());
    }
}
