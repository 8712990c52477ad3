//! Fuzzes the request-head parser: `runicorn::fuzzing::parse_head`.
//!
//! The input is the bytes a client sent, as the worker's buffer holds them. Each input is
//! parsed under small limits and under the defaults. Besides "never panics", it checks:
//!
//! - `Ok(Some(p))`: `0 < p.head_len <= input.len()`, and parsing `&input[..p.head_len]`
//!   alone gives the same head (same `head_len`, method, target, version, fields, framing):
//!   what follows the head never changes the head.
//! - `Ok(None)`: no prefix is complete either (checked on `len - 1` and `len / 2`).
//! - Limits are monotone: the small limits are tighter than the defaults in every
//!   dimension, so a head accepted under the small ones is accepted under the defaults,
//!   with the same `head_len`.
//! - `HeadScan`, which the worker uses to parse a head only when that can change the
//!   answer, fed the input byte by byte and in pieces of 7 and 61 bytes, never misses a
//!   complete head: when the whole input holds one, it reports it (same `head_len`) at the
//!   first piece that completes it. It refuses only what the parser refuses on the same
//!   bytes, and it may wait for the head's end to refuse a bad field line, so when the whole
//!   input is refused it says refused or not yet, never complete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn::fuzzing::{HeadScan, Limits, parse_head};

const SMALL: Limits = Limits {
    request_line: 256,
    fields: 16,
    field_size: 256,
    body: 1 << 20,
};

/// The server's defaults (`--limit-request-line`, `-fields`, `-field-size`, `-body`).
const DEFAULT: Limits = Limits {
    request_line: 8190,
    fields: 100,
    field_size: 8190,
    body: 100 * 1024 * 1024,
};

/// Parses `data` under `limits`, checks the invariants, and returns the head length if a
/// head was accepted.
fn check(data: &[u8], limits: &Limits) -> Option<usize> {
    match parse_head(data, limits) {
        Ok(Some(p)) => {
            let n = p.head_len;
            assert!(n > 0, "empty head accepted: {limits:?}");
            assert!(
                n <= data.len(),
                "head_len {n} > input {} ({limits:?})",
                data.len()
            );
            let again = parse_head(&data[..n], limits);
            let q = match again {
                Ok(Some(q)) => q,
                other => panic!(
                    "the head alone ({n} bytes) does not parse as it did with what follows: \
                     {other:?} ({limits:?})"
                ),
            };
            assert_eq!(
                q.head_len, n,
                "head_len changed on the head alone ({limits:?})"
            );
            assert_eq!(q.request.method(), p.request.method());
            assert_eq!(q.request.uri(), p.request.uri());
            assert_eq!(q.request.version(), p.request.version());
            assert_eq!(q.request.headers(), p.request.headers());
            assert_eq!(q.body, p.body);
            Some(n)
        }
        Ok(None) => {
            // A couple of prefixes only: the full check is quadratic.
            for cut in [data.len().saturating_sub(1), data.len() / 2] {
                if let Ok(Some(p)) = parse_head(&data[..cut], limits) {
                    panic!(
                        "prefix of {cut} bytes is a complete head (head_len {}) but the whole \
                         input ({} bytes) is incomplete ({limits:?})",
                        p.head_len,
                        data.len()
                    );
                }
            }
            None
        }
        Err(e) => {
            // Every error maps to a status and a name without panicking.
            let _ = (e.status(), e.name());
            None
        }
    }
}

/// Feeds `data` to a `HeadScan` in pieces of `step` bytes, as the worker's reads would add
/// them, and compares where it stops with the parser's verdict on the whole input.
fn check_scan(data: &[u8], limits: &Limits, step: usize) {
    let whole = parse_head(data, limits);
    let mut scan = HeadScan::default();
    let mut end = 0;
    let (at, verdict) = loop {
        end = (end + step).min(data.len());
        match scan.advance(&data[..end], limits) {
            Ok(None) if end < data.len() => {}
            r => break (end, r),
        }
    };
    match (&whole, &verdict) {
        (Ok(Some(p)), Ok(Some(q))) => {
            assert_eq!(
                q.head_len, p.head_len,
                "the scan's head differs ({limits:?}, step {step})"
            );
            assert!(
                at >= p.head_len && at < p.head_len + step,
                "the scan reported the head at {at}, not at the piece that completed it \
                 (head_len {}, step {step}, {limits:?})",
                p.head_len
            );
        }
        (Ok(Some(p)), other) => panic!(
            "the scan missed a complete head (head_len {}): {other:?} at {at} \
             (step {step}, {limits:?})",
            p.head_len
        ),
        (Err(_), Ok(Some(q))) => panic!(
            "the scan accepted a head (head_len {}) the parser refuses ({limits:?}, step {step})",
            q.head_len
        ),
        (Ok(None), Err(e)) => panic!(
            "the scan refused ({e:?} at {at}) what the parser finds incomplete \
             ({limits:?}, step {step})"
        ),
        (Ok(None), Ok(Some(q))) => panic!(
            "the scan found a head (head_len {}) in an incomplete input ({limits:?})",
            q.head_len
        ),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let small = check(data, &SMALL);
    let default = check(data, &DEFAULT);
    for step in [1, 7, 61] {
        check_scan(data, &SMALL, step);
        check_scan(data, &DEFAULT, step);
    }
    if let Some(n) = small {
        assert_eq!(
            default,
            Some(n),
            "accepted under the small limits (head_len {n}) but not the same under the defaults"
        );
    }
});
