//! The crate's error type and the process exit codes.
//!
//! `Error` is a struct holding a small `ErrorKind` plus the context an operator needs (the
//! address, the path, the setting). Display text is for people, not an API. The exit codes are
//! named constants so that the master can tell a worker that could not boot from one that ended
//! normally, and so that platforms see a crash-looping server exit non-zero.

use std::fmt;
use std::io;

/// Exit code of the server after a clean stop (TERM, QUIT, INT).
pub const EXIT_OK: i32 = 0;
/// Exit code when the server could not start: a listener could not be bound, the app could not
/// be built, a system call failed at boot.
pub const EXIT_STARTUP: i32 = 1;
/// Exit code for a bad setting (one line on stderr names the setting and what it accepts).
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when workers kept dying before they were ready (see `docs/design.md`, "Crash
/// loops"): the platform then restarts the process and shows it crashed.
pub const EXIT_CRASH_LOOP: i32 = 3;

/// A worker exits with this code when its `after_fork` hook failed. The master counts it as a
/// boot failure.
pub const WORKER_BOOT_ERROR: i32 = 3;
/// A worker exits with this code when it could not set itself up (signals, poll) after fork.
pub const WORKER_SETUP_ERROR: i32 = 4;

/// What went wrong, broadly. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting had a value it does not accept.
    Config,
    /// A listener could not be bound, inherited or configured.
    Listen,
    /// A system call the server needs failed.
    System,
    /// The app could not be built.
    App,
    /// Workers kept dying before they were ready.
    CrashLoop,
}

/// The error type of this crate: a kind plus a human-readable context.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<io::Error>,
}

impl Error {
    /// An error of `kind` with `context` (e.g. the address or the setting involved).
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Error {
        Error {
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by an I/O error.
    pub fn io(kind: ErrorKind, context: impl Into<String>, source: io::Error) -> Error {
        Error {
            kind,
            context: context.into(),
            source: Some(source),
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Config => EXIT_CONFIG,
            ErrorKind::CrashLoop => EXIT_CRASH_LOOP,
            ErrorKind::Listen | ErrorKind::System | ErrorKind::App => EXIT_STARTUP,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Error {
        Error::io(ErrorKind::System, "system call failed", io::Error::from(e))
    }
}
