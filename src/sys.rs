//! The only module with `unsafe`: the system calls the server needs beyond the standard
//! library, through nix's safe wrappers where nix 0.32 has one, and with `unsafe` only where it
//! has none or where soundness rests on something only the caller knows (fork with signals
//! masked, the shared mapping, TCP_DEFER_ACCEPT and TCP_INFO, signal dispositions, the
//! environment, adopting an inherited descriptor).
//!
//! Everything here is a thin, documented wrapper; policy lives in the callers. Each wrapper
//! says which side of a fork it is meant for.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
pub use nix::unistd::Pid;

/// Which side of a fork we are on.
pub enum Forked {
    /// In the parent, with the child's pid. Signals are unmasked again.
    Parent(Pid),
    /// In the child. All signals are still masked: the caller sets up its own handling and
    /// then calls [`unmask_signals`].
    Child,
}

/// Forks with every signal masked.
///
/// Why masked: between fork and the moment the child has replaced the master's signal
/// handling with its own, a signal (a TERM sent to the whole process group, say) would run the
/// master's handler in the child and wake the master's poll through the shared self-pipe.
/// With the mask, such a signal stays pending and reaches the child's own handlers.
///
/// Only sound while the calling process has one thread (fork(2): the child gets only the
/// calling thread; a lock held by another thread would stay locked forever). The master never
/// starts a thread, and a test checks it.
pub fn fork() -> io::Result<Forked> {
    let old = block_signals()?;
    // SAFETY: the master is single-threaded (see above), so the child's copy of the address
    // space has no lock held by a thread that no longer exists.
    let res = unsafe { nix::unistd::fork() };
    match res {
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            restore_signal_mask(&old)?;
            Ok(Forked::Parent(child))
        }
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => {
            let _ = restore_signal_mask(&old);
            Err(e.into())
        }
    }
}

// The signal masks below are the calling thread's (pthread_sigmask(3)): in a process of one
// thread that is the process's, and in a worker whose app runs threads it is the worker's
// own thread's, where sigprocmask(2) would be unspecified.

/// Unblocks every signal (the child side of [`fork`], once its handlers are in place).
pub fn unmask_signals() -> io::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}

/// Blocks every signal; returns the mask to restore. The master calls it around fork(2) and
/// execve(2) (the mask survives the exec; the new image unblocks once its handlers are in
/// place), a worker around starting a thread (which starts with its creator's mask).
pub fn block_signals() -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restores a mask saved by [`block_signals`].
pub fn restore_signal_mask(mask: &SigSet) -> io::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(mask), None)?;
    Ok(())
}

/// Sets the default disposition for `sig`.
pub fn default_signal(sig: Signal) -> io::Result<()> {
    set_disposition(sig, nix::sys::signal::SigHandler::SigDfl)
}

/// Ignores `sig`.
pub fn ignore_signal(sig: Signal) -> io::Result<()> {
    set_disposition(sig, nix::sys::signal::SigHandler::SigIgn)
}

fn set_disposition(sig: Signal, handler: nix::sys::signal::SigHandler) -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, sigaction};
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL and SIG_IGN run no code of ours in signal context.
    unsafe { sigaction(sig, &action) }?;
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent dies (prctl(2),
/// PR_SET_PDEATHSIG), then checks that the parent is still `parent`, closing the race where it
/// died before the call.
pub fn die_with_parent(sig: Signal, parent: Pid) -> io::Result<bool> {
    nix::sys::prctl::set_pdeathsig(sig)?;
    Ok(nix::unistd::getppid() == parent)
}

/// Sets the process name shown by `ps -o comm` and `top` (prctl(2), PR_SET_NAME; at most 15
/// bytes are kept).
pub fn set_process_name(name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        let _ = nix::sys::prctl::set_name(&c);
    }
}

/// A `MAP_SHARED | MAP_ANONYMOUS` mapping, made in the master before the first fork so that
/// every worker sees the same pages. Zero-filled by the kernel; pages are only backed by memory
/// once touched.
pub struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMap {
    /// Maps `len` bytes, zeroed.
    pub fn new(len: usize) -> io::Result<SharedMap> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        let size = std::num::NonZeroUsize::new(len).ok_or(io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks aliases nothing.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(SharedMap {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap and nothing borrows the mapping past the owner.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// Nanoseconds on CLOCK_MONOTONIC. The same clock in every process of the machine, so a
/// worker's "busy since" is comparable with the master's "now".
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// TCP_DEFER_ACCEPT (tcp(7)): the kernel wakes `accept` only once the client has sent data,
/// so a worker is not woken for a connection that sends nothing (as Unicorn does).
///
/// Raw setsockopt(2): nix 0.32 has no `sockopt` for TCP_DEFER_ACCEPT (only FreeBSD's
/// accept filters), and implementing its `SetSockOpt` trait here would need the same call.
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: i32) -> io::Result<()> {
    // SAFETY: the pointer and length describe `secs`, a live c_int, for the duration of the
    // call; the kernel only reads it. `fd` is borrowed, so open for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SO_REUSEADDR: a restarted server can bind while old connections sit in TIME_WAIT.
pub fn set_reuse_addr(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReuseAddr};
    setsockopt(&fd, ReuseAddr, &true)?;
    Ok(())
}

/// IPV6_V6ONLY off: one `[::]` listener serves IPv4 clients too (as v4-mapped addresses).
pub fn set_dual_stack(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::Ipv6V6Only};
    setsockopt(&fd, Ipv6V6Only, &false)?;
    Ok(())
}

/// Adds a listening socket to an epoll instance with EPOLLEXCLUSIVE (epoll_ctl(2), Linux
/// 4.5), edge-triggered and for reading, with `token` as the event's data: the value mio
/// reads back as the `Token` (its epoll selector stores and returns `data.u64`).
///
/// Scope: only for listeners shared by workers that each poll them from their own epoll,
/// on the worker side of fork. Without it, one new connection wakes every idle worker and
/// all but one find nothing to accept (the "thundering herd"); with it the kernel wakes one
/// (or a few) of the epoll instances that wait. Not for connections or pipes: an exclusive
/// registration cannot be modified later (EPOLL_CTL_MOD fails with EINVAL), and the caller
/// must not expect every waiter to hear about the event (a shutdown(2) of the listener
/// wakes one worker, so stops go through the control pipe). `Err` with EINVAL on kernels
/// without EPOLLEXCLUSIVE: the caller then registers through mio as usual.
///
/// `epoll` is the instance's descriptor, e.g. `mio::Registry::as_fd` (mio's `Poll` only
/// exposes a raw one).
pub fn epoll_add_exclusive(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    token: u64,
) -> io::Result<()> {
    use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
    // nix's safe `Epoll` owns its descriptor, and mio owns this one. A duplicate (F_DUPFD_CLOEXEC)
    // refers to the same epoll instance, so registering through it changes mio's interest list;
    // dropping it afterwards closes only the duplicate, and the registration lives on (epoll
    // drops an entry when the *registered* file is closed, not a descriptor of the instance).
    // One dup and close per listener at worker start buys a registration through a safe wrapper.
    let instance = Epoll(epoll.try_clone_to_owned()?);
    let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET | EpollFlags::EPOLLEXCLUSIVE;
    // `EpollEvent::new` puts `token` in `epoll_event.u64`, where mio reads its `Token` from.
    instance.add(fd, EpollEvent::new(flags, token))?;
    Ok(())
}

/// Waits until `fd` is readable (or writable, with `write`) for at most `timeout`
/// (poll(2)). `Ok(false)` on timeout.
pub fn wait_fd(fd: BorrowedFd<'_>, write: bool, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let flags = if write {
        PollFlags::POLLOUT
    } else {
        PollFlags::POLLIN
    };
    let ms =
        PollTimeout::try_from(timeout.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX);
    loop {
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, ms) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `shutdown(fd, SHUT_RDWR)` on a listening socket. On Linux this stops the socket listening
/// for every process that shares it (new connections are refused at once), which closing our
/// own descriptor would not do while workers still hold theirs.
pub fn stop_listening(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{Shutdown, shutdown};
    shutdown(fd.as_raw_fd(), Shutdown::Both)?;
    Ok(())
}

/// Takes ownership of an inherited descriptor (systemd's `LISTEN_FDS`), after checking that
/// it is open. The caller must be the only owner of `fd` from now on.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    nix::fcntl::fcntl(
        // SAFETY: only used for the duration of this fcntl; ownership is taken below.
        unsafe { BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )?;
    // SAFETY: the descriptor is open (checked above) and LISTEN_FDS hands it to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets FD_CLOEXEC, so that an inherited descriptor does not leak into programs the app runs.
pub fn set_cloexec(fd: impl AsFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Sets or clears FD_CLOEXEC: the master clears it on the descriptors an upgrade hands to
/// the new image, just before execve(2), and sets it back if the exec fails.
pub fn set_inheritable(fd: BorrowedFd<'_>, inheritable: bool) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let flags = if inheritable {
        FdFlag::empty()
    } else {
        FdFlag::FD_CLOEXEC
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// The socket type of `fd` (SOCK_STREAM for listeners we can use).
pub fn is_stream_socket(fd: BorrowedFd<'_>) -> bool {
    matches!(
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SockType),
        Ok(nix::sys::socket::SockType::Stream)
    )
}

/// Does `fd` listen (SO_ACCEPTCONN)?
pub fn is_listening(fd: BorrowedFd<'_>) -> bool {
    matches!(
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::AcceptConn),
        Ok(true)
    )
}

/// The address family of a socket (AF_INET, AF_INET6, AF_UNIX), from getsockname(2).
pub fn socket_family(fd: BorrowedFd<'_>) -> Option<i32> {
    use nix::sys::socket::SockaddrLike;
    let addr: nix::sys::socket::SockaddrStorage =
        nix::sys::socket::getsockname(fd.as_raw_fd()).ok()?;
    addr.family().map(|f| f as i32)
}

/// The paths stdout and stderr had at startup, when they were regular files opened for
/// appending (as after `runicorn >> app.log 2>&1`); see [`reopen_append_logs`].
static LOG_PATHS: std::sync::OnceLock<Vec<(LogStream, std::path::PathBuf)>> =
    std::sync::OnceLock::new();

/// A standard stream that [`reopen_append_logs`] may point at a new file.
#[derive(Clone, Copy)]
enum LogStream {
    /// Descriptor 1.
    Stdout,
    /// Descriptor 2.
    Stderr,
}

impl LogStream {
    /// The stream's descriptor number (for /proc/self/fd).
    fn raw_fd(self) -> RawFd {
        match self {
            LogStream::Stdout => libc::STDOUT_FILENO,
            LogStream::Stderr => libc::STDERR_FILENO,
        }
    }

    /// Makes the stream's descriptor a copy of `f`'s (dup2(2)). The swap is atomic, so a
    /// write from another thread lands in the old file or the new one, never on a closed
    /// descriptor; Rust's `Stdout` and `Stderr` keep the descriptor number, so they follow.
    fn replace_with(self, f: &std::fs::File) -> bool {
        match self {
            LogStream::Stdout => nix::unistd::dup2_stdout(f).is_ok(),
            LogStream::Stderr => nix::unistd::dup2_stderr(f).is_ok(),
        }
    }
}

/// Records the paths of stdout and stderr, if they are regular files opened with O_APPEND.
/// Called once by the master at startup, before the workers are forked; the path has to be
/// taken then, because after logrotate moves the file, /proc shows the new name.
pub fn remember_log_paths() {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let mut paths = Vec::new();
    for (stream, fd) in [
        (LogStream::Stdout, stdout.as_fd()),
        (LogStream::Stderr, stderr.as_fd()),
    ] {
        let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) else {
            continue;
        };
        let Ok(stat) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        if !OFlag::from_bits_truncate(flags).contains(OFlag::O_APPEND)
            || stat.st_mode & libc::S_IFMT != libc::S_IFREG
        {
            continue;
        }
        if let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", stream.raw_fd())) {
            paths.push((stream, path));
        }
    }
    let _ = LOG_PATHS.set(paths);
}

/// Reopens stdout and stderr at the paths [`remember_log_paths`] recorded (SIGUSR1: log
/// rotation, as Unicorn's `reopen_logs`), creating the files again if they were moved away.
/// Terminals, pipes and sockets are never touched. Returns how many were reopened.
pub fn reopen_append_logs() -> usize {
    let mut reopened = 0;
    for (stream, path) in LOG_PATHS.get().map(Vec::as_slice).unwrap_or_default() {
        if let Ok(f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            reopened += usize::from(stream.replace_with(&f));
        }
    }
    reopened
}

/// The number of threads of this process, from /proc/self/status (for the single-thread
/// check before fork).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// An array of `AtomicU64` in a [`SharedMap`]: every process forked after it was made sees
/// the same words. The kernel zero-fills the mapping and an all-zero `AtomicU64` is 0, so
/// nothing is written at creation: pages are only backed by memory once a word on them is
/// used (an unused scoreboard slot costs no RAM).
pub struct SharedWords {
    map: SharedMap,
    len: usize,
}

impl SharedWords {
    /// `len` shared words, all 0.
    pub fn new(len: usize) -> io::Result<SharedWords> {
        let bytes = len.checked_mul(8).ok_or(io::ErrorKind::InvalidInput)?;
        Ok(SharedWords {
            map: SharedMap::new(bytes.max(1))?,
            len,
        })
    }
}

impl std::ops::Deref for SharedWords {
    type Target = [std::sync::atomic::AtomicU64];
    fn deref(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: the mapping is page-aligned (so aligned for AtomicU64), holds `len` words,
        // lives as long as `self`, and zero bytes are a valid AtomicU64. Only shared
        // references are handed out, and atomics are what concurrent access (from this and
        // other processes) needs.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().cast::<std::sync::atomic::AtomicU64>(),
                self.len,
            )
        }
    }
}

/// Removes an environment variable. Only called by the master at startup, before any thread
/// exists (std::env::remove_var is unsound while another thread reads the environment).
pub fn remove_env(name: &str) {
    // SAFETY: single-threaded at this point (see above).
    unsafe { std::env::remove_var(name) };
}

/// Size of the kernel's `struct tcp_info` as the libc crate knows it: a buffer for
/// [`tcp_info`].
pub const TCP_INFO_LEN: usize = std::mem::size_of::<libc::tcp_info>();

/// The raw `struct tcp_info` of a TCP socket (getsockopt(2) TCP_INFO, tcp(7)), written into
/// `buf` (no allocation: the keep-alive check reads it once per response); returns the bytes
/// the kernel wrote. Decoded by `metrics::tcp`. On a listening socket the kernel reports
/// the accept queue in it.
pub fn tcp_info<'b>(fd: BorrowedFd<'_>, buf: &'b mut [u8; TCP_INFO_LEN]) -> Option<&'b [u8]> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf`, which is that long, and
    // updates `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.get(..len as usize)
}

/// Clock ticks a second, the unit of CPU times in /proc/<pid>/stat (sysconf(3),
/// `_SC_CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_sec() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 100,
    }
}

/// This machine's host name (the `dyno` id of metric lines where no platform id exists).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Lets a Tokio runtime wait for `fd` to be readable (the tower adapter's runtime watching the
/// worker's own poll): registers a duplicate of it, which the returned `AsyncFd` owns. Must
/// be called within the runtime.
#[cfg(feature = "tower")]
pub fn watch_readable(fd: BorrowedFd<'_>) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: the AsyncFd owns `owned`, an open descriptor nothing else can close or replace
    // while the AsyncFd lives; it is closed only when the AsyncFd is dropped, after the
    // registration is removed.
    let watched = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
    };
    Ok(watched?)
}

/// Reads up to `want` bytes from `fd` into `buf`'s spare capacity and appends them, without
/// zeroing that capacity first (a `read` into `&mut [u8]` needs initialized memory: the
/// worker would clear 4 KiB before every read of a request).
pub fn read_appending(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    buf.reserve(want);
    let spare = &mut buf.spare_capacity_mut()[..want];
    // SAFETY: read(2) writes at most `want` bytes to the start of the spare capacity, which
    // `reserve` made valid for that many bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the first `n` bytes past the length were just written by read(2).
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
}

/// accept4(2), non-blocking and close-on-exec, that also returns the client's address: the
/// kernel fills it in with the same call, where getpeername(2) later would cost a syscall
/// per connection. `None` for an address that is not IPv4 or IPv6 (a Unix socket's peer).
pub fn accept4_with_peer(
    listener: BorrowedFd<'_>,
) -> io::Result<(OwnedFd, Option<std::net::SocketAddr>)> {
    use nix::sys::socket::{SockaddrLike, SockaddrStorage};
    // SAFETY: sockaddr_storage is plain data for which all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are valid for writes and `len` holds the storage's size, as
    // accept4(2) requires; the descriptor it returns is new and ours alone.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            (&raw mut storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the kernel wrote an address of `len` bytes (at most the storage's size) there.
    let addr = unsafe { SockaddrStorage::from_raw((&raw const storage).cast(), Some(len)) };
    let peer = addr.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| std::net::SocketAddr::V4((*v4).into()))
            .or_else(|| {
                a.as_sockaddr_in6()
                    .map(|v6| std::net::SocketAddr::V6((*v6).into()))
            })
    });
    Ok((fd, peer))
}

/// Returns the heap's free pages to the kernel (glibc's malloc_trim(3)): memory freed after a
/// burst then no longer counts as the process's own (USS, RSS). A no-op elsewhere.
///
/// Starts (and joins) a thread: a worker may call it, the master never does.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    {
        flush_thread_cache();
        // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// How many sizes of chunk glibc's per-thread cache keeps, and how many of each (its
/// defaults: `glibc.malloc.tcache_max` and `tcache_count`).
#[cfg(target_env = "gnu")]
const CACHE_SIZES: usize = 64;
#[cfg(target_env = "gnu")]
const CACHED_PER_SIZE: usize = 7;

/// The usable size of the cache's `bin`th size: 24, 40, .. 1032 bytes (a chunk is 8 bytes
/// more, in steps of 16).
#[cfg(target_env = "gnu")]
fn cached_size(bin: usize) -> usize {
    24 + 16 * bin
}

/// Hands the chunks in this thread's malloc cache back to the heap, so that malloc_trim can
/// return the pages they sit on.
///
/// glibc keeps up to 7 freed chunks of each small size (its tcache: 64 sizes, 24 to 1032
/// bytes) per thread, outside the heap's free lists. malloc_trim does not see them, and after
/// a burst they lie scattered over pages that are otherwise free, which then stay resident.
/// glibc offers no call to empty a thread's cache, but it empties a thread's cache into the
/// heap when that thread exits. So this takes the cached chunks out (7 mallocs of each size:
/// the cached ones come first, any others from the heap) and has a short-lived thread free
/// them and exit.
///
/// The thread is a bare pthread: Rust's thread handles are allocated, and freed here after
/// the join, which would put fresh chunks back into this thread's cache. It starts with
/// every signal blocked, so that no signal meant for the worker lands in it.
#[cfg(target_env = "gnu")]
fn flush_thread_cache() {
    struct Chunks([*mut libc::c_void; CACHE_SIZES * CACHED_PER_SIZE]);

    extern "C" fn free_all(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `Chunks` below, which outlives the thread (it is joined).
        let chunks = unsafe { &*arg.cast::<Chunks>() };
        for &p in &chunks.0 {
            // SAFETY: each pointer came from malloc (or is null) and is freed once.
            unsafe { libc::free(p) };
        }
        std::ptr::null_mut()
    }

    let mut chunks = Chunks([std::ptr::null_mut(); CACHE_SIZES * CACHED_PER_SIZE]);
    for (i, slot) in chunks.0.iter_mut().enumerate() {
        // SAFETY: plain malloc; what it returns is freed by `free_all`.
        *slot = unsafe { libc::malloc(cached_size(i / CACHED_PER_SIZE)) };
    }
    let arg = (&raw mut chunks).cast::<libc::c_void>();
    let old = block_signals();
    // SAFETY: the attributes are initialised (glibc's init cannot fail) before use and
    // destroyed after; the thread only reads `chunks`, which lives until the join below.
    let started = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut thread: libc::pthread_t = 0;
        libc::pthread_attr_init(&mut attr);
        // Freeing needs little stack; glibc keeps it for the next time.
        let ok = libc::pthread_attr_setstacksize(&mut attr, 64 * 1024) == 0
            && libc::pthread_create(&mut thread, &attr, free_all, arg) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then_some(thread)
    };
    if let Ok(old) = old {
        let _ = restore_signal_mask(&old);
    }
    match started {
        // SAFETY: a thread just started and joined once.
        Some(thread) => unsafe {
            libc::pthread_join(thread, std::ptr::null_mut());
        },
        // No thread: the chunks go back where they came from, no worse than before.
        None => {
            free_all(arg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks in this thread's malloc cache count as in use (mallinfo2); once flushed they are
    /// the heap's free memory, which malloc_trim can return. Run in a forked child, the only
    /// thread there, so that other tests' allocations do not move the counts.
    #[test]
    #[cfg(target_env = "gnu")]
    fn flushing_the_thread_cache_frees_what_it_held() {
        // Every size the cache keeps, as many as it keeps, with their 8-byte headers.
        let cached: usize = (0..CACHE_SIZES)
            .map(|bin| CACHED_PER_SIZE * (cached_size(bin) + 8))
            .sum();
        // SAFETY: the child only allocates (glibc's fork handler leaves malloc usable in the
        // child of a threaded process), starts a thread and leaves by _exit. It takes no
        // lock another test thread may have held at the fork, such as stderr's.
        match unsafe { libc::fork() } {
            // SAFETY: each chunk is freed once, right after it was allocated; mallinfo2 only
            // reads the allocator's counts; _exit leaves without running the harness's code.
            0 => unsafe {
                let chunks: Vec<_> = (0..CACHE_SIZES * CACHED_PER_SIZE)
                    .map(|i| libc::malloc(cached_size(i / CACHED_PER_SIZE)))
                    .collect();
                for p in chunks {
                    libc::free(p);
                }
                let before = libc::mallinfo2().uordblks;
                flush_thread_cache();
                let freed = before.saturating_sub(libc::mallinfo2().uordblks);
                libc::_exit(if freed + 1024 >= cached { 0 } else { 1 });
            },
            -1 => panic!("fork: {}", io::Error::last_os_error()),
            child => {
                let mut status = 0;
                // SAFETY: waits for the child just forked.
                let waited = unsafe { libc::waitpid(child, &mut status, 0) };
                assert_eq!(waited, child);
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "the child's cache was not flushed: less than {cached} bytes went back \
                     to the heap (status {status:#x})"
                );
            }
        }
    }

    /// Pins the token layout [`epoll_add_exclusive`] relies on. It registers listeners with
    /// epoll_ctl(2) behind mio's back, so mio never encodes the token itself: the worker only
    /// gets its `Token(i)` back if mio reads the token from where we put it.
    ///
    /// It does today (mio 1.x, `sys/unix/selector/epoll.rs`): `register` stores
    /// `usize::from(token) as u64` in `epoll_event.u64`, `Events` is the array of
    /// `libc::epoll_event` that epoll_wait(2) fills in (the kernel returns the data word
    /// verbatim), and `event::token` reads it back as `Token(event.u64 as usize)`. No bits are
    /// reserved or packed: a plain `usize` in, the same `usize` out (lossless on 32-bit too,
    /// since the worker's tokens start as `usize`). Should a mio upgrade change that (tag bits,
    /// a pointer in `data`), this test fails instead of listeners going silently deaf.
    #[test]
    fn mio_reports_the_token_of_an_exclusive_registration() {
        // 0: the worker's first listener (`Token(i)` for listener `i`). The others have the
        // high bits set, where a truncated or tagged data word would differ: next to the
        // worker's CONTROL and SIGNALS tokens, and the top bit with a pattern below it.
        let tokens = [0usize, usize::MAX - 3, (1 << (usize::BITS - 1)) | 0x5a5a];
        for token in tokens {
            let mut poll = mio::Poll::new().unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            epoll_add_exclusive(poll.registry().as_fd(), listener.as_fd(), token as u64)
                .expect("EPOLLEXCLUSIVE needs Linux 4.5");

            let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let mut events = mio::Events::with_capacity(4);
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();

            let got: Vec<_> = events.iter().collect();
            assert_eq!(got.len(), 1, "one event, for the one listener");
            assert_eq!(got[0].token().0 as u64, token as u64);
            assert!(got[0].is_readable(), "a pending connection is readable");
        }
    }
}
