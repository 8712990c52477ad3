//! Blocking-with-a-deadline writes over a non-blocking connection.
//!
//! Connections are non-blocking so that parked ones sit in the worker's poll. A request is
//! read whole while its connection is parked; its response is written with plain `Write`:
//! [`Patient`] gives that, waiting in poll(2) on the one socket whenever it would block, for
//! at most `idle` each time (a client that stops reading is dropped, not waited for).

use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::listener::Conn;
use crate::sys;

/// A connection seen as blocking, with an idle limit per wait.
pub struct Patient<'c> {
    /// The connection.
    pub conn: &'c mut Conn,
    /// How long one read or write may wait for the client.
    pub idle: Duration,
}

impl Patient<'_> {
    fn wait(&self, write: bool) -> io::Result<()> {
        if sys::wait_fd(self.conn.as_fd(), write, self.idle)? {
            Ok(())
        } else {
            let what = if write {
                "read our response"
            } else {
                "sent more"
            };
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client has not {what} for {} s", self.idle.as_secs()),
            ))
        }
    }
}

impl Write for Patient<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.conn.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(true)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        loop {
            match self.conn.write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(true)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes every byte of `bufs`, in as few writev(2) calls as the socket allows.
pub fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
