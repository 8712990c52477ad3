//! Fuzzes the worker's request-body collector: `runicorn::fuzzing::Collector` (with the
//! `CompleteBody` it gives back), the code between the parsed head and the app.
//!
//! Input layout: `[mode, cut, len_lo, len_hi, data...]`
//!
//! - byte 0 (`mode`): bit 0: the framing (0: `Content-Length`, 1: chunked); bits 1-2: the
//!   limits (small, default, no body limit, tiny); bit 3: large (see below); bit 4: piece
//!   sizes vary pseudo-randomly in 1..=the piece size; bit 5: the socket is interrupted
//!   (EINTR) once before each piece, and ends with a reset instead of EOF; bits 6-7: the
//!   `read_from` scratch buffer (1, 7, 64 bytes or 16 KiB; large: 1021, 7001, 64 KiB, 16 KiB).
//! - byte 1 (`cut`): bits 0-4: piece size 1..=32 (large: times 997); bits 5-7: how many bytes
//!   arrived with the head, fed before the socket is read, 5 * (0..=7) (large: 9973 * (0..=7)).
//! - bytes 2-3 (`len`, little-endian u16): the `Content-Length`, modulo 1024 (large:
//!   `MEMORY_BODY - 32 KiB + len`, 32-96 KiB). Above the body limit, the head parser would
//!   have refused it, so it is reduced modulo `limit + 1`.
//! - the rest (`data`): the bytes after the head. Large (bit 3) makes a body past the
//!   in-memory part (`MEMORY_BODY`, 64 KiB), so the temporary-file path runs, without large
//!   inputs: for `Content-Length`, `data` repeated to `MEMORY_BODY + 16 KiB` bytes; for
//!   chunked, chunks of `data` repeated to at least 1 KiB (`<size hex>\r\n<data...>\r\n`)
//!   until at least `MEMORY_BODY - 32 KiB + len` body bytes, then `data` itself, as framing
//!   (so that a short `data` such as `0\r\n\r\n` ends the body). In large mode
//!   the tiny limits allow `MEMORY_BODY + 1 KiB` body bytes, so the limit is met in the file.
//!
//! The wire is collected four ways: fed whole; fed in pieces; fed byte by byte (large: byte
//! by byte within 512 bytes of the start, of the end and of offset `MEMORY_BODY`, in pieces of
//! up to 4093 bytes between); and as the worker does, by feeding the bytes that came with
//! the head and then calling `read_from` on a socket that hands out one piece per readable
//! event and says WouldBlock in between. Besides "never panics", it checks:
//!
//! - the four give the same outcome (complete after the same number of consumed bytes, the
//!   same refusal, or incomplete), and the same body read back through `CompleteBody` (after
//!   a refusal, only prefixes are compared: the bytes of the failing step are not stored);
//! - the body never exceeds the body limit, and `remaining()` announces its length;
//! - `feed` consumes its whole input unless the body is complete (the worker would lose the
//!   rest otherwise), and nothing after completion;
//! - `read_from` never asks for 0 bytes (a socket answers 0, which means EOF), reads no byte
//!   past a `Content-Length` body, hands back exactly the bytes it read past a chunked body,
//!   says Drained only when the socket has nothing, Eof only once the client closed, and
//!   reads nothing once complete;
//! - for `Content-Length`: the body is the first `Content-Length` bytes, complete exactly when
//!   they are all there, never refused.
//!
//! A body past 64 KiB goes to an unlinked temporary file in `TMPDIR`: point it at a scratch
//! directory while fuzzing (see fuzz/README.md) and check that it stays empty.
#![no_main]

use std::io::{self, ErrorKind, Read};

use libfuzzer_sys::fuzz_target;
use runicorn::fuzzing::{BodyError, BodyFraming, Collector, Limits, MEMORY_BODY, Readable};

#[path = "common/limits.rs"]
mod limits;
use limits::LIMITS;

/// Piece sizes, the same sequence for every run that uses them.
#[derive(Clone)]
struct Pieces {
    max: usize,
    vary: bool,
    rng: u32,
}

impl Pieces {
    fn next(&mut self) -> usize {
        if !self.vary {
            return self.max;
        }
        // xorshift32
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        1 + self.rng as usize % self.max
    }
}

/// One input, decoded from the control bytes.
struct Case {
    framing: BodyFraming,
    limits: Limits,
    large: bool,
    pieces: Pieces,
    eintr: bool,
    scratch: usize,
    with_head: usize,
    wire: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The body is complete; this many wire bytes were consumed in all.
    Complete(usize),
    /// The collector refused the body (the error's Debug text).
    Refused(String),
    /// The wire ran out before the body was complete (all of it consumed).
    Incomplete,
}

#[derive(Debug)]
struct Outcome {
    end: End,
    /// The body bytes stored, read back through `CompleteBody`.
    body: Vec<u8>,
}

/// Reads back what `c` stored, checking that the announced length is the length read.
fn read_back(c: Collector) -> Vec<u8> {
    let mut b = c
        .finish()
        .expect("finish: rewinding the body's temporary file");
    let announced = b.remaining();
    let body = b.read_to_vec().expect("reading back the body");
    assert_eq!(
        announced,
        Some(body.len() as u64),
        "remaining() before reading vs the bytes read"
    );
    assert_eq!(b.remaining(), Some(0), "remaining() after reading all");
    body
}

/// What a refused or failed step ends with. A body that cannot be stored is the machine's
/// trouble (no temporary file), not the input's: the harness stops on it.
fn refused(e: BodyError) -> End {
    match e {
        BodyError::Refused(e) => End::Refused(format!("{e:?}")),
        BodyError::Store(e) => panic!("cannot store the body (TMPDIR?): {e}"),
    }
}

/// Feeds the wire in pieces of the sizes `next` gives (from the offset fed so far).
fn run_feed(case: &Case, mut next: impl FnMut(usize) -> usize) -> Outcome {
    let wire = &case.wire[..];
    let mut c = Collector::new(case.framing, &case.limits);
    let mut fed = 0;
    let end = loop {
        if c.is_complete() {
            // Only a `Content-Length: 0` body is complete before the first byte.
            break End::Complete(fed);
        }
        if fed == wire.len() {
            break End::Incomplete;
        }
        let n = next(fed).clamp(1, wire.len() - fed);
        match c.feed(&wire[fed..fed + n]) {
            Ok(used) => {
                assert!(used <= n, "feed consumed {used} of {n} bytes");
                if c.is_complete() {
                    let rest = &wire[fed + used..];
                    assert_eq!(c.feed(rest).ok(), Some(0), "feed after the body's end");
                    break End::Complete(fed + used);
                }
                assert_eq!(
                    used, n,
                    "feed stopped short of its input without completing the body (at {fed})"
                );
                fed += n;
            }
            Err(e) => break refused(e),
        }
    };
    Outcome {
        end,
        body: read_back(c),
    }
}

/// A non-blocking socket: what has "arrived" is `wire[..avail]`; it says WouldBlock once
/// that is read, until the harness's poll makes the next piece arrive.
struct Sock<'a> {
    wire: &'a [u8],
    /// Bytes handed out.
    at: usize,
    /// Bytes arrived.
    avail: usize,
    /// Interrupt the first read of each piece (and reset instead of EOF).
    eintr: bool,
    interrupted: bool,
    /// The client closed its side (after the whole wire).
    eof: bool,
}

impl Read for Sock<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        assert!(
            !out.is_empty(),
            "read_from asked for 0 bytes: a socket answers 0, which read_from takes for EOF"
        );
        if self.at == self.avail {
            if self.eof {
                return if self.eintr {
                    Err(ErrorKind::ConnectionReset.into())
                } else {
                    Ok(0)
                };
            }
            return Err(ErrorKind::WouldBlock.into());
        }
        if self.eintr && !self.interrupted {
            self.interrupted = true;
            return Err(ErrorKind::Interrupted.into());
        }
        let n = out.len().min(self.avail - self.at);
        out[..n].copy_from_slice(&self.wire[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// As the worker collects a body: feeds the bytes that came with the head, then reads the
/// socket on each readable event, one piece arriving per event.
fn run_socket(case: &Case) -> Outcome {
    let wire = &case.wire[..];
    let mut c = Collector::new(case.framing, &case.limits);
    let first = case.with_head.min(wire.len());
    let used = match c.feed(&wire[..first]) {
        Ok(used) => used,
        Err(e) => {
            let end = refused(e);
            return Outcome {
                end,
                body: read_back(c),
            };
        }
    };
    if c.is_complete() {
        return Outcome {
            end: End::Complete(used),
            body: read_back(c),
        };
    }
    assert_eq!(
        used, first,
        "feed stopped short of the bytes after the head"
    );

    let mut sock = Sock {
        wire: &wire[first..],
        at: 0,
        avail: 0,
        eintr: case.eintr,
        interrupted: false,
        eof: false,
    };
    let mut pieces = case.pieces.clone();
    let mut scratch = vec![0u8; case.scratch];
    let mut rest = Vec::new();
    let mut events = 0;
    let end = loop {
        // Each event but the first makes at least one byte arrive.
        events += 1;
        assert!(events <= wire.len() + 2, "read_from does not get anywhere");
        match c.read_from(&mut sock, &mut scratch, &mut rest) {
            Ok(Readable::Complete) => {
                assert!(c.is_complete());
                let read = first + sock.at;
                assert!(rest.len() <= sock.at, "more handed back than read");
                let consumed = read - rest.len();
                if matches!(case.framing, BodyFraming::Length(_)) {
                    assert!(rest.is_empty(), "read past a Content-Length body");
                }
                assert_eq!(
                    rest,
                    &wire[consumed..read],
                    "handed back other bytes than those read past the body"
                );
                let (at, kept) = (sock.at, rest.len());
                assert_eq!(
                    c.read_from(&mut sock, &mut scratch, &mut rest).ok(),
                    Some(Readable::Complete)
                );
                assert_eq!((sock.at, rest.len()), (at, kept), "read once complete");
                break End::Complete(consumed);
            }
            Ok(Readable::Drained) => {
                assert!(!c.is_complete());
                assert_eq!(sock.at, sock.avail, "Drained with bytes still there");
                assert!(rest.is_empty(), "bytes handed back before the body's end");
                if sock.avail == sock.wire.len() {
                    // Nothing more comes: the client closes.
                    sock.eof = true;
                    assert_eq!(
                        c.read_from(&mut sock, &mut scratch, &mut rest).ok(),
                        Some(Readable::Eof),
                        "the client's close"
                    );
                    break End::Incomplete;
                }
                sock.avail = (sock.avail + pieces.next()).min(sock.wire.len());
                sock.interrupted = false;
            }
            Ok(Readable::Eof) => panic!("Eof from a socket that is still open"),
            Err(e) => break refused(e),
        }
    };
    Outcome {
        end,
        body: read_back(c),
    }
}

/// `data` (not empty) repeated to `len` bytes, the last copy cut short.
fn repeat(data: &[u8], len: usize) -> Vec<u8> {
    let mut v = data.repeat(len.div_ceil(data.len()));
    v.truncate(len);
    v
}

fuzz_target!(|data: &[u8]| {
    let [mode, cut, len_lo, len_hi, data @ ..] = data else {
        return;
    };
    let chunked = mode & 1 != 0;
    let large = mode & 0x08 != 0;
    let limit_index = usize::from((mode >> 1) & 3);
    let mut limits = LIMITS[limit_index];
    if large && limit_index == 3 {
        limits.body = MEMORY_BODY as u64 + 1024;
    }
    let scale = |small: usize, big: usize| if large { big } else { small };
    let pieces = Pieces {
        max: (usize::from(cut & 0x1f) + 1) * scale(1, 997),
        vary: mode & 0x10 != 0,
        rng: u32::from_le_bytes([*mode, *cut, *len_lo, *len_hi]) | 1,
    };
    let scratch = [scale(1, 1021), scale(7, 7001), scale(64, 65536), 16384][usize::from(mode >> 6)];
    let with_head = usize::from(cut >> 5) * scale(5, 9973);
    let len = u64::from(u16::from_le_bytes([*len_lo, *len_hi]));
    let size = MEMORY_BODY as u64 - 32768 + len;

    let (framing, wire) = if chunked {
        let mut wire = Vec::new();
        if large && !data.is_empty() {
            // Chunks of at least 1 KiB, so that the decoder spends its time on chunk data
            // (copied), not on framing (byte by byte): fewer, faster runs otherwise.
            let chunk = repeat(data, data.len().max(1024));
            let line = format!("{:x}\r\n", chunk.len());
            let mut body = 0;
            while body < size {
                wire.extend_from_slice(line.as_bytes());
                wire.extend_from_slice(&chunk);
                wire.extend_from_slice(b"\r\n");
                body += chunk.len() as u64;
            }
        }
        wire.extend_from_slice(data);
        (BodyFraming::Chunked, wire)
    } else {
        let mut cl = if large { size } else { len % 1024 };
        if limits.body > 0 && cl > limits.body {
            cl %= limits.body + 1;
        }
        let wire = if large && !data.is_empty() {
            repeat(data, MEMORY_BODY + 16384)
        } else {
            data.to_vec()
        };
        (BodyFraming::Length(cl), wire)
    };
    let case = Case {
        framing,
        limits,
        large,
        pieces,
        eintr: mode & 0x20 != 0,
        scratch,
        with_head,
        wire,
    };
    let len = case.wire.len();

    let whole = run_feed(&case, |_| len);
    let mut pieces = case.pieces.clone();
    let in_pieces = run_feed(&case, |_| pieces.next());
    let by_byte = run_feed(&case, |fed| {
        if !case.large {
            return 1;
        }
        // Byte by byte near the start, the end and the switch to a file; 4093 at most
        // between, stopping at the next of those.
        let windows = [
            (0, 512),
            (MEMORY_BODY - 512, MEMORY_BODY + 512),
            (len.saturating_sub(512), len),
        ];
        let mut step = 4093;
        for (start, end) in windows {
            if (start..end).contains(&fed) {
                return 1;
            }
            if fed < start {
                step = step.min(start - fed);
            }
        }
        step
    });
    let socket = run_socket(&case);

    for (name, o) in [
        ("whole", &whole),
        ("in pieces", &in_pieces),
        ("byte by byte", &by_byte),
        ("socket", &socket),
    ] {
        if limits.body > 0 {
            assert!(
                o.body.len() as u64 <= limits.body,
                "{name}: a {}-byte body under a {}-byte limit",
                o.body.len(),
                limits.body
            );
        }
        if let BodyFraming::Length(cl) = case.framing {
            let cl = cl as usize;
            let expected = if len >= cl {
                End::Complete(cl)
            } else {
                End::Incomplete
            };
            assert_eq!(o.end, expected, "{name}: Content-Length {cl}, {len} bytes");
            assert!(
                o.body == case.wire[..cl.min(len)],
                "{name}: not the first Content-Length bytes"
            );
        }
        if name == "whole" {
            continue;
        }
        assert_eq!(
            whole.end, o.end,
            "fed whole vs {name}: different ends ({limits:?})"
        );
        let same = match whole.end {
            End::Refused(_) => {
                let n = whole.body.len().min(o.body.len());
                whole.body[..n] == o.body[..n]
            }
            _ => whole.body == o.body,
        };
        assert!(
            same,
            "fed whole vs {name}: different bodies ({:?}, {} and {} bytes)",
            whole.end,
            whole.body.len(),
            o.body.len()
        );
    }
});
