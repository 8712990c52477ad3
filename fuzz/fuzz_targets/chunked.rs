//! Fuzzes the chunked request-body decoder: `runicorn::fuzzing::ChunkedDecoder`.
//!
//! Input layout: `[pieces, out, stream...]`
//!
//! - byte 0 (`pieces`): how the stream is cut into the pieces that "arrive from the socket".
//!   Bits 0-4: piece size 1..=32; bit 5: sizes vary pseudo-randomly in 1..=that size;
//!   bits 6-7: the limits (small, default, unlimited body, tiny).
//! - byte 1 (`out`): bits 0-4: `out` buffer size 1..=32 for the whole and piecewise runs;
//!   bits 5-7: `out` size 1..=8 for the byte-by-byte run.
//! - the rest: the bytes after the request head (the chunked body, maybe followed by the
//!   next pipelined request).
//!
//! The harness is a worker's read loop: it keeps the bytes not yet consumed, calls `decode`
//! with them, and appends the next piece only when a call makes no progress (consumes and
//! writes nothing). It checks that `decode` never panics; that each step stays within its
//! arguments (`consumed <= input.len()`, `written <= out.len()`); that the number of calls
//! is bounded (each call consumes or writes at least one byte, or asks for more input, so
//! at most 3 * len + 64 calls: a decoder that spins without progress trips the assert);
//! that after `done` the total consumed is <= the stream's length; and that feeding the
//! stream whole, in the pieces of byte 0, or byte by byte gives the same outcome (done,
//! the same error, or incomplete), the same decoded bytes and, when done, the same count of
//! consumed bytes. (After an error only prefixes are compared: a call that fails reports
//! nothing of what it wrote, so how much was decoded before the error depends on the calls.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn::fuzzing::{ChunkedDecoder, Limits};

#[path = "common/limits.rs"]
mod limits;
use limits::LIMITS;

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// `done`, after this many stream bytes were consumed in all.
    Done(usize),
    /// The decoder refused the stream (the error's Debug text).
    Err(String),
    /// The stream ran out before the body was complete.
    Incomplete,
}

#[derive(Debug)]
struct Outcome {
    end: End,
    decoded: Vec<u8>,
}

/// Runs the decoder over `stream`, making the next piece (of a size from `piece`) available
/// whenever a call makes no progress.
fn run(
    stream: &[u8],
    limits: &Limits,
    out_size: usize,
    mut piece: impl FnMut() -> usize,
) -> Outcome {
    let mut dec = ChunkedDecoder::new(limits);
    let mut out = vec![0u8; out_size];
    let mut decoded = Vec::new();
    let mut fed = 0; // stream[..fed] has "arrived"
    let mut consumed = 0; // stream[..consumed] was consumed by the decoder
    let max_calls = 3 * stream.len() + 64;
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(
            calls <= max_calls,
            "{calls} calls for a {}-byte stream without an end (consumed {consumed}, \
             fed {fed}, out {out_size}): decode spins",
            stream.len()
        );
        let input = &stream[consumed..fed];
        let step = match dec.decode(input, &mut out) {
            Ok(step) => step,
            Err(e) => {
                return Outcome {
                    end: End::Err(format!("{e:?}")),
                    decoded,
                };
            }
        };
        assert!(
            step.consumed <= input.len(),
            "consumed {} of a {}-byte input",
            step.consumed,
            input.len()
        );
        assert!(
            step.written <= out.len(),
            "wrote {} into a {}-byte buffer",
            step.written,
            out.len()
        );
        decoded.extend_from_slice(&out[..step.written]);
        consumed += step.consumed;
        assert!(
            decoded.len() <= consumed,
            "decoded {} bytes from {consumed} consumed",
            decoded.len()
        );
        if step.done {
            assert!(consumed <= stream.len());
            return Outcome {
                end: End::Done(consumed),
                decoded,
            };
        }
        if step.consumed == 0 && step.written == 0 {
            if fed == stream.len() {
                return Outcome {
                    end: End::Incomplete,
                    decoded,
                };
            }
            fed = (fed + piece().max(1)).min(stream.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [ctl_pieces, ctl_out, stream @ ..] = data else {
        return;
    };
    let limits = &LIMITS[usize::from(ctl_pieces >> 6)];
    let max_piece = usize::from(ctl_pieces & 0x1f) + 1;
    let vary = ctl_pieces & 0x20 != 0;
    let out_size = usize::from(ctl_out & 0x1f) + 1;
    let byte_out_size = usize::from(ctl_out >> 5) + 1;

    let whole = run(stream, limits, out_size, || stream.len());
    let whole_big = run(stream, limits, 8192, || stream.len());
    let mut rng = u32::from(*ctl_pieces) | 0x100;
    let pieces = run(stream, limits, out_size, || {
        if vary {
            // xorshift32
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            1 + rng as usize % max_piece
        } else {
            max_piece
        }
    });
    let bytes = run(stream, limits, byte_out_size, || 1);

    for (name, other) in [
        ("whole, 8 KiB out", &whole_big),
        ("in pieces", &pieces),
        ("byte by byte", &bytes),
    ] {
        assert_eq!(
            whole.end, other.end,
            "fed whole (out {out_size}) vs {name}: different ends ({limits:?})"
        );
        // A call that fails reports no `written`, so after an error each run has decoded
        // a prefix of the body, of a length that depends on how the calls fell: compare
        // prefixes then, the whole bytes otherwise.
        let same = match whole.end {
            End::Err(_) => {
                let n = whole.decoded.len().min(other.decoded.len());
                whole.decoded[..n] == other.decoded[..n]
            }
            _ => whole.decoded == other.decoded,
        };
        assert!(
            same,
            "fed whole (out {out_size}) vs {name}: different bytes decoded ({:?})\n  whole: \
             {:?}\n  {name}: {:?}",
            whole.end,
            String::from_utf8_lossy(&whole.decoded),
            String::from_utf8_lossy(&other.decoded),
        );
    }
});
