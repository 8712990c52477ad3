//! Request bodies collected while their connection is parked, so that the app always reads
//! a complete body at memory speed and no client's pace decides how long a worker is held
//! (what nginx's request buffering does for Unicorn).
//!
//! A body is collected from what the worker has already read after the head, then from the
//! socket as it becomes readable, with its framing removed: `Content-Length` bytes are
//! copied, a chunked body is decoded as it arrives (the decoder keeps its place, so the work
//! per readable event follows the new bytes). The first [`MEMORY_BODY`] bytes are kept in
//! memory; a larger body goes to an unlinked temporary file in the system's temporary
//! directory (`TMPDIR`), which vanishes with its descriptor. The body limit
//! (`--limit-request-body`) bounds both.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};

use crate::h1::{self, BodyFraming, ChunkedDecoder, Limits};
use crate::handler::BodySource;

/// Body bytes a connection keeps in memory; past this the body goes to a temporary file.
/// With 64 connections (`MAX_CLIENTS` in the worker), a worker holds at most
/// 64 × 64 KiB = 4 MiB of request bodies in memory (with `--worker-connections` above 64,
/// that many times 64 KiB).
pub const MEMORY_BODY: usize = 64 * 1024;

/// Why a body could not be collected.
#[derive(Debug)]
pub enum BodyError {
    /// It breaks its framing or the body limit: the client gets the error's status.
    Refused(h1::Error),
    /// It could not be stored (no temporary file): the client gets 503.
    Store(io::Error),
}

/// Where the body is kept.
#[derive(Debug)]
enum Store {
    Memory(Vec<u8>),
    File(File),
}

/// What is left to read of the body's framing.
#[derive(Debug)]
enum Framing {
    /// This many `Content-Length` bytes.
    Length(u64),
    /// A chunked body, decoded as it comes.
    Chunked(Box<ChunkedDecoder>),
    /// The body is complete.
    Done,
}

/// A request body being collected.
#[derive(Debug)]
pub struct Collector {
    framing: Framing,
    stored: Stored,
}

/// The body bytes collected so far.
#[derive(Debug)]
struct Stored {
    store: Store,
    /// Bytes stored.
    len: u64,
}

/// What a read from the socket ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Readable {
    /// Nothing more to read for now (EAGAIN); the body is not complete.
    Drained,
    /// The body is complete. Bytes read past it (a pipelined request) were handed back.
    Complete,
    /// The client closed its side before the end of the body.
    Eof,
}

impl Collector {
    /// Starts collecting a body framed as `framing`.
    pub fn new(framing: BodyFraming, limits: &Limits) -> Collector {
        let framing = match framing {
            BodyFraming::None | BodyFraming::Length(0) => Framing::Done,
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked(Box::new(ChunkedDecoder::new(limits))),
        };
        Collector {
            framing,
            stored: Stored {
                store: Store::Memory(Vec::new()),
                len: 0,
            },
        }
    }

    /// The whole body is here.
    pub fn is_complete(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// Takes body bytes from the front of `input`; returns how many it consumed (fewer than
    /// all once the body is complete: the rest belongs to the next request).
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        match &mut self.framing {
            Framing::Done => Ok(0),
            Framing::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    self.framing = Framing::Done;
                }
                self.stored.put(&input[..n])?;
                Ok(n)
            }
            Framing::Chunked(decoder) => {
                let mut out = [0u8; 8 * 1024];
                let mut at = 0;
                loop {
                    let step = decoder
                        .decode(&input[at..], &mut out)
                        .map_err(BodyError::Refused)?;
                    at += step.consumed;
                    let done = step.done;
                    let progressed = step.consumed > 0 || step.written > 0;
                    self.stored.put(&out[..step.written])?;
                    if done {
                        self.framing = Framing::Done;
                        return Ok(at);
                    }
                    if at == input.len() || !progressed {
                        return Ok(at);
                    }
                }
            }
        }
    }

    /// Reads the body from `src` (the connection, non-blocking) until it is complete, the
    /// socket has nothing more (EAGAIN), or the client closes. For a `Content-Length` body
    /// it reads no byte past the body; bytes read past a chunked body's end are appended to
    /// `rest`, the start of the next request.
    pub fn read_from(
        &mut self,
        src: &mut impl Read,
        scratch: &mut [u8],
        rest: &mut Vec<u8>,
    ) -> Result<Readable, BodyError> {
        loop {
            let want = match self.framing {
                Framing::Done => return Ok(Readable::Complete),
                Framing::Length(left) => left.min(scratch.len() as u64) as usize,
                Framing::Chunked(_) => scratch.len(),
            };
            let n = match src.read(&mut scratch[..want]) {
                Ok(0) => return Ok(Readable::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Readable::Drained),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A reset or another failure: the client is gone, as with EOF.
                Err(_) => return Ok(Readable::Eof),
            };
            let used = self.feed(&scratch[..n])?;
            if self.is_complete() {
                rest.extend_from_slice(&scratch[used..n]);
                return Ok(Readable::Complete);
            }
        }
    }

    /// The complete body, to be read from its start.
    pub fn finish(self) -> io::Result<CompleteBody> {
        let Stored { store, len } = self.stored;
        let store = match store {
            Store::Memory(v) => Store::Memory(v),
            Store::File(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                Store::File(f)
            }
        };
        Ok(CompleteBody {
            store,
            len,
            read: 0,
        })
    }
}

impl Stored {
    /// Appends body bytes: in memory up to [`MEMORY_BODY`], then in a temporary file.
    fn put(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Store::Memory(v) = &mut self.store {
            if v.len() + bytes.len() <= MEMORY_BODY {
                v.extend_from_slice(bytes);
                self.len += bytes.len() as u64;
                return Ok(());
            }
            let mut file = temp_file().map_err(BodyError::Store)?;
            file.write_all(v).map_err(BodyError::Store)?;
            self.store = Store::File(file);
        }
        if let Store::File(f) = &mut self.store {
            f.write_all(bytes).map_err(BodyError::Store)?;
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// A new unlinked temporary file: `O_TMPFILE` where the file system has it, else a file
/// created and removed at once. Either way nothing is left behind, whatever happens next.
fn temp_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(&dir);
    if let Ok(f) = tmpfile {
        return Ok(f);
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".runicorn-body-{}-{n}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

/// A request body that has fully arrived, read back by the app.
#[derive(Debug)]
pub struct CompleteBody {
    store: Store,
    len: u64,
    read: u64,
}

/// The body read back in one piece, as an app reads it (through [`RequestBody`]), for the
/// unit tests and the fuzz targets, which cannot name the crate-internal [`BodySource`].
///
/// [`RequestBody`]: crate::RequestBody
#[cfg(any(test, feature = "fuzzing"))]
impl CompleteBody {
    /// Body bytes not yet read: what the app is told before it reads.
    pub fn remaining(&self) -> Option<u64> {
        BodySource::remaining(self)
    }

    /// Reads what is left of the body, through [`RequestBody::read_to_vec`].
    ///
    /// [`RequestBody::read_to_vec`]: crate::RequestBody::read_to_vec
    pub fn read_to_vec(&mut self) -> io::Result<Vec<u8>> {
        crate::RequestBody::new(self).read_to_vec()
    }
}

impl BodySource for CompleteBody {
    fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.store {
            Store::Memory(v) => {
                let at = self.read as usize;
                let n = out.len().min(v.len() - at);
                out[..n].copy_from_slice(&v[at..at + n]);
                n
            }
            Store::File(f) => {
                let want = (self.len - self.read).min(out.len() as u64) as usize;
                f.read(&mut out[..want])?
            }
        };
        self.read += n as u64;
        Ok(n)
    }

    fn remaining(&self) -> Option<u64> {
        Some(self.len - self.read)
    }

    #[cfg(feature = "tower")]
    fn take(&mut self) -> Box<dyn BodySource + Send + Sync> {
        if self.read == self.len {
            // Most requests have no body: a box of nothing allocates nothing.
            return Box::new(Drained);
        }
        let empty = CompleteBody {
            store: Store::Memory(Vec::new()),
            len: 0,
            read: 0,
        };
        Box::new(std::mem::replace(self, empty))
    }
}

/// A body with nothing left to read.
#[cfg(feature = "tower")]
struct Drained;

#[cfg(feature = "tower")]
impl BodySource for Drained {
    fn read_body(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }

    fn remaining(&self) -> Option<u64> {
        Some(0)
    }

    fn take(&mut self) -> Box<dyn BodySource + Send + Sync> {
        Box::new(Drained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        body: 1 << 30,
    };

    fn read_all(mut b: CompleteBody) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = b.read_body(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// A socket that hands out its bytes a few at a time, then says EAGAIN or EOF.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        eof: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(ErrorKind::WouldBlock.into())
                };
            }
            let n = out.len().min(self.step).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn a_length_body_takes_its_bytes_and_leaves_the_next_request() {
        let mut c = Collector::new(BodyFraming::Length(5), &LIMITS);
        assert_eq!(c.feed(b"hel").unwrap(), 3);
        assert!(!c.is_complete());
        assert_eq!(c.feed(b"loGET /").unwrap(), 2);
        assert!(c.is_complete());
        assert_eq!(read_all(c.finish().unwrap()), b"hello");
    }

    #[test]
    fn a_chunked_body_is_decoded_across_reads_and_hands_back_what_follows() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
        for step in [1, 3, 7, 4096] {
            let mut c = Collector::new(BodyFraming::Chunked, &LIMITS);
            let mut sock = Trickle {
                data: wire.to_vec(),
                at: 0,
                step,
                eof: false,
            };
            let mut rest = Vec::new();
            let mut scratch = [0u8; 16];
            assert_eq!(
                c.read_from(&mut sock, &mut scratch, &mut rest).unwrap(),
                Readable::Complete
            );
            let tail = &wire[wire.len() - 16..];
            // What was read past the body is handed back; the rest is still in the socket.
            let mut next = rest.clone();
            next.extend_from_slice(&sock.data[sock.at..]);
            assert_eq!(next, tail, "step {step}");
            // As the app reads it.
            assert_eq!(c.finish().unwrap().read_to_vec().unwrap(), b"hello world");
        }
    }

    #[test]
    fn a_slow_body_waits_and_an_early_close_is_seen() {
        let mut c = Collector::new(BodyFraming::Length(10), &LIMITS);
        let mut sock = Trickle {
            data: b"abc".to_vec(),
            at: 0,
            step: 1,
            eof: false,
        };
        let (mut rest, mut scratch) = (Vec::new(), [0u8; 64]);
        assert_eq!(
            c.read_from(&mut sock, &mut scratch, &mut rest).unwrap(),
            Readable::Drained
        );
        sock.eof = true;
        assert_eq!(
            c.read_from(&mut sock, &mut scratch, &mut rest).unwrap(),
            Readable::Eof
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn a_large_body_goes_to_a_temporary_file_and_reads_back_whole() {
        let body: Vec<u8> = (0..3 * MEMORY_BODY as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut c = Collector::new(BodyFraming::Length(body.len() as u64), &LIMITS);
        for piece in body.chunks(10_000) {
            assert_eq!(c.feed(piece).unwrap(), piece.len());
        }
        assert!(matches!(c.stored.store, Store::File(_)));
        let b = c.finish().unwrap();
        assert_eq!(b.remaining(), Some(body.len() as u64));
        assert_eq!(read_all(b), body);
    }

    #[test]
    fn broken_chunks_and_the_body_limit_are_refused() {
        let mut c = Collector::new(BodyFraming::Chunked, &LIMITS);
        assert!(matches!(
            c.feed(b"zz\r\n"),
            Err(BodyError::Refused(h1::Error::BadChunk))
        ));
        let small = Limits { body: 4, ..LIMITS };
        let mut c = Collector::new(BodyFraming::Chunked, &small);
        assert!(matches!(
            c.feed(b"5\r\nhello\r\n0\r\n\r\n"),
            Err(BodyError::Refused(h1::Error::BodyTooLarge))
        ));
    }
}
