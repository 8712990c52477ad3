//! Chunked decoder tests. Every input is decoded three ways (in one call, one byte per call,
//! and through a one-byte output buffer) and all three must agree, so splitting never changes
//! the result.

use super::*;

const LIMITS: Limits = Limits {
    request_line: 64,
    fields: 3,
    field_size: 40,
    body: 100,
};

/// What decoding `input` came to: the body, the trailers and how many bytes the chunked body
/// took (`Ok`), the error, or `Incomplete` with the body so far.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done {
        body: Vec<u8>,
        trailers: Vec<(Vec<u8>, Vec<u8>)>,
        consumed: usize,
    },
    Incomplete(Vec<u8>),
    Failed(Error),
}

/// Decodes `input`, giving the decoder at most `piece` input bytes and `room` output bytes
/// per call. Checks the contract of every step on the way.
fn run(input: &[u8], piece: usize, room: usize, limits: &Limits) -> Outcome {
    let mut d = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let mut at = 0usize;
    let mut out = vec![0u8; room];
    loop {
        let end = input.len().min(at.saturating_add(piece));
        let step = match d.decode(&input[at..end], &mut out) {
            Ok(step) => step,
            Err(e) => {
                // An error is final.
                assert_eq!(d.decode(b"0\r\n\r\n", &mut out), Err(e));
                return Outcome::Failed(e);
            }
        };
        assert!(
            step.consumed <= end - at && step.written <= room,
            "{step:?}"
        );
        assert!(
            step.consumed == end - at || step.written == room || step.done,
            "returned early: {step:?}"
        );
        body.extend_from_slice(&out[..step.written]);
        at += step.consumed;
        if step.done {
            let trailers = d.trailers().to_vec();
            // Done is final, and consumes nothing more.
            let again = d.decode(b"more", &mut out).unwrap();
            assert_eq!(
                again,
                Step {
                    consumed: 0,
                    written: 0,
                    done: true
                }
            );
            return Outcome::Done {
                body,
                trailers,
                consumed: at,
            };
        }
        assert!(d.trailers().is_empty());
        if at == input.len() && step.written < room {
            return Outcome::Incomplete(body);
        }
    }
}

/// Decodes `input` whole, byte by byte and through a one-byte window; all must agree.
fn decode_with(input: &[u8], limits: &Limits) -> Outcome {
    let whole = run(input, usize::MAX, 1 << 16, limits);
    assert_eq!(
        run(input, 1, 1 << 16, limits),
        whole,
        "byte by byte: {input:?}"
    );
    assert_eq!(
        run(input, usize::MAX, 1, limits),
        whole,
        "1-byte out: {input:?}"
    );
    assert_eq!(run(input, 3, 2, limits), whole, "3 in, 2 out: {input:?}");
    whole
}

fn decode(input: &str) -> Outcome {
    decode_with(input.as_bytes(), &LIMITS)
}

fn body(input: &str) -> Vec<u8> {
    match decode(input) {
        Outcome::Done { body, .. } => body,
        other => panic!("{input:?}: {other:?}"),
    }
}

fn error(input: &str) -> Error {
    match decode(input) {
        Outcome::Failed(e) => e,
        other => panic!("{input:?} should fail: {other:?}"),
    }
}

fn field(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

#[test]
fn chunks_decode() {
    assert_eq!(
        body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        b"hello world"
    );
    assert_eq!(body("0\r\n\r\n"), b"");
    assert_eq!(body("000\r\n\r\n"), b"");
    assert_eq!(body("0005\r\nhello\r\n0\r\n\r\n"), b"hello");
    assert_eq!(body("A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
    assert_eq!(body("a\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
    assert_eq!(
        body("1e\r\nall your base are belong to us\r\n0\r\n\r\n"),
        b"all your base are belong to us"
    );
    // Data is opaque: CR, LF and "0\r\n\r\n" inside it are just bytes.
    assert_eq!(body("6\r\n0\r\n\r\n\n\r\n0\r\n\r\n"), b"0\r\n\r\n\n");
    let binary = b"3\r\n\x00\xff\r\r\n0\r\n\r\n";
    match decode_with(binary, &LIMITS) {
        Outcome::Done { body, .. } => assert_eq!(body, b"\x00\xff\r"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn extensions_are_checked_then_ignored() {
    for input in [
        "5;a\r\nhello\r\n0\r\n\r\n",
        "5; some; parameters=stuff\r\nhello\r\n0\r\n\r\n",
        "5 ;a\r\nhello\r\n0\r\n\r\n",
        "5\t;\ta\t=\tb\t;c\r\nhello\r\n0\r\n\r\n",
        "5;foo=\"bar baz\"\r\nhello\r\n0\r\n\r\n",
        "5;foo=\"a\\\"b;c\"\r\nhello\r\n0\r\n\r\n",
        "5;foo=\"\"\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\" ;c\r\nhello\r\n0\r\n\r\n",
        "5;a=b;c=d\r\nhello\r\n0;last=1\r\n\r\n",
        "5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(body(input), b"hello", "{input:?}");
    }
    for input in [
        "5;\r\nhello\r\n0\r\n\r\n",
        "5;a=\r\nhello\r\n0\r\n\r\n",
        "5;=b\r\nhello\r\n0\r\n\r\n",
        "5;a b\r\nhello\r\n0\r\n\r\n",
        "5;a=b c\r\nhello\r\n0\r\n\r\n",
        "5;a \r\nhello\r\n0\r\n\r\n",
        "5;a=b \r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\\\x01\"\r\nhello\r\n0\r\n\r\n",
        "5;a(b)\r\nhello\r\n0\r\n\r\n",
        "5;a=b(c)\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5\t\r\nhello\r\n0\r\n\r\n",
        "5;ext=val\rue\r\nhello\r\n0\r\n\r\n",
        "5;a=b\n\r\nhello\r\n0\r\n\r\n",
        "5\n;\r\nhello\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(error(input), Error::BadChunk, "{input:?}");
    }
}

#[test]
fn bad_sizes() {
    for input in [
        "\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "\t5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "6_0\r\nhello\r\n0\r\n\r\n",
        "g\r\n",
        ";a\r\n",
        " ;foo=bar\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0 \r\n\r\n",
        "5\r\nhello\r\n 0\r\n\r\n",
        "\u{b5}\r\n",
        // past u64: 17 hex digits that are not all leading zeros
        "10000000000000000\r\n",
        "fffffffffffffffff\r\n",
    ] {
        assert_eq!(error(input), Error::BadChunk, "{input:?}");
    }
    let unlimited = Limits { body: 0, ..LIMITS };
    // The largest size parses (and then waits for its data) when nothing limits the body.
    match decode_with(b"ffffffffffffffff\r\nabc", &unlimited) {
        Outcome::Incomplete(body) => assert_eq!(body, b"abc"),
        other => panic!("{other:?}"),
    }
    match decode_with(b"10000000000000000\r\n", &unlimited) {
        Outcome::Failed(e) => assert_eq!(e, Error::BadChunk),
        other => panic!("{other:?}"),
    }
    // Leading zeros do not overflow, within the line limit.
    assert_eq!(
        body(&format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(30))),
        b"hello"
    );
}

#[test]
fn every_line_ends_in_crlf() {
    for input in [
        "5\nhello\r\n0\r\n\r\n",
        "5\r\rhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\r0\r\n\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "3\r\nhello\r\n0\r\n\r\n",
        "0\n\r\n",
        "0\r\n\n",
        "0\r\n\rx",
        "0\r\nA: b\n\r\n",
        "0\r\nA: b\rc\r\n\r\n",
    ] {
        assert_eq!(error(input), Error::BadChunk, "{input:?}");
    }
}

#[test]
fn incomplete_bodies_wait() {
    for (input, so_far) in [
        ("", ""),
        ("5", ""),
        ("5\r", ""),
        ("5\r\nhel", "hel"),
        ("5\r\nhello", "hello"),
        ("5\r\nhello\r", "hello"),
        ("5\r\nhello\r\n", "hello"),
        ("5\r\nhello\r\n0", "hello"),
        ("5\r\nhello\r\n0\r\n", "hello"),
        ("5\r\nhello\r\n0\r\nA: b\r\n", "hello"),
        ("5\r\nhello\r\n0\r\n\r", "hello"),
        ("5;a=\"b", ""),
    ] {
        assert_eq!(
            decode(input),
            Outcome::Incomplete(so_far.as_bytes().to_vec()),
            "{input:?}"
        );
    }
}

#[test]
fn trailers() {
    let input = "5\r\nhello\r\n6\r\n world\r\n0\r\nVary: *\r\nContent-Type:  text/plain \r\n\r\n";
    assert_eq!(
        decode(input),
        Outcome::Done {
            body: b"hello world".to_vec(),
            trailers: vec![field("Vary", "*"), field("Content-Type", "text/plain")],
            consumed: input.len(),
        }
    );
    // At the limits: 3 fields, a 40-byte line (with CRLF).
    let at = format!("0\r\nA: 1\r\nB: 2\r\nC: {}\r\n\r\n", "v".repeat(40 - 5));
    assert!(matches!(decode(&at), Outcome::Done { trailers, .. } if trailers.len() == 3));
    let long = format!("0\r\nC: {}\r\n\r\n", "v".repeat(41 - 5));
    assert_eq!(error(&long), Error::FieldTooLarge);
    assert_eq!(
        error("0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
        Error::TooManyFields
    );

    for input in [
        "0\r\nA : b\r\n\r\n",
        "0\r\n b\r\n\r\n",
        "0\r\nA: b\r\n c\r\n\r\n",
        "0\r\nA(: b\r\n\r\n",
        "0\r\nA: \x00\r\n\r\n",
        "0\r\nA: \x7f\r\n\r\n",
        "0\r\nnocolon\r\n\r\n",
    ] {
        assert_eq!(error(input), Error::Malformed, "{input:?}");
    }
}

#[test]
fn forbidden_trailers() {
    for input in [
        "5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n",
        "5\r\nhello\r\n0\r\nHost: evil.example.com\r\n\r\n",
        "5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "0\r\nA: b\r\ntransfer-encoding: gzip\r\n\r\n",
        "0\r\nCONTENT-LENGTH: 0\r\n\r\n",
    ] {
        assert_eq!(error(input), Error::ForbiddenTrailer, "{input:?}");
    }
    // Look-alikes are other fields.
    assert!(matches!(
        decode("0\r\nContent_Length: 1\r\nX-Host: h\r\n\r\n"),
        Outcome::Done { trailers, .. } if trailers.len() == 2
    ));
}

#[test]
fn body_limit_is_exact() {
    // limits.body = 100: 100 bytes in any number of chunks pass, 101 do not.
    let hundred = format!("32\r\n{0}\r\n32\r\n{0}\r\n0\r\n\r\n", "x".repeat(50));
    assert_eq!(body(&hundred).len(), 100);
    let over = format!("32\r\n{0}\r\n33\r\n{0}x\r\n0\r\n\r\n", "x".repeat(50));
    assert_eq!(error(&over), Error::BodyTooLarge);
    // Refused when the size is read, before the data arrives.
    assert_eq!(error("65\r\n"), Error::BodyTooLarge);
    assert_eq!(error("ffffffffffffffff\r\n"), Error::BodyTooLarge);
    // 0 means no limit.
    let unlimited = Limits { body: 0, ..LIMITS };
    let big = format!("1000\r\n{}\r\n0\r\n\r\n", "y".repeat(4096));
    match decode_with(big.as_bytes(), &unlimited) {
        Outcome::Done { body, .. } => assert_eq!(body.len(), 4096),
        other => panic!("{other:?}"),
    }
}

#[test]
fn chunk_lines_are_bounded() {
    // A chunk-size line with extensions may take 38 bytes before its CRLF (field_size - 2).
    let at = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(38 - 2));
    assert_eq!(body(&at), b"hello");
    let over = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(39 - 2));
    assert_eq!(error(&over), Error::BadChunk);
    assert_eq!(error(&"0".repeat(1000)), Error::BadChunk);
}

#[test]
fn consumed_stops_before_a_pipelined_request() {
    let next = "GET /second HTTP/1.1\r\nHost: example.com\r\n\r\n";
    for chunked in [
        "5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n",
        "0\r\n\r\n",
        "0\r\nA: b\r\n\r\n",
    ] {
        let input = format!("{chunked}{next}");
        match decode(&input) {
            Outcome::Done { consumed, .. } => {
                assert_eq!(consumed, chunked.len(), "{chunked:?}");
                assert_eq!(&input[consumed..], next);
            }
            other => panic!("{chunked:?}: {other:?}"),
        }
    }
    // Also when the output is full exactly at the end of the data.
    let mut d = ChunkedDecoder::new(&LIMITS);
    let input = format!("5\r\nhello\r\n0\r\n\r\n{next}");
    let mut out = [0u8; 5];
    let step = d.decode(input.as_bytes(), &mut out).unwrap();
    assert_eq!((step.written, step.done), (5, true));
    assert_eq!(&input[step.consumed..], next);
    assert_eq!(&out, b"hello");
}

#[test]
fn framing_is_consumed_even_without_room() {
    let mut d = ChunkedDecoder::new(&LIMITS);
    let step = d.decode(b"5;a=b\r\nhello", &mut []).unwrap();
    assert_eq!(
        step,
        Step {
            consumed: 7,
            written: 0,
            done: false
        }
    );
    let mut out = [0u8; 8];
    let step = d.decode(b"hello\r\n0\r\n\r\n", &mut out).unwrap();
    assert_eq!((step.consumed, step.written, step.done), (12, 5, true));
}

/// Every byte string up to a small length, over the alphabet the grammar cares about: the
/// decoder never panics, always makes progress, and agrees with itself however it is fed.
#[test]
fn never_panics_on_small_inputs() {
    let alphabet = b"0a5;= \"\\\r\nX:";
    let limits = Limits {
        request_line: 64,
        fields: 2,
        field_size: 16,
        body: 8,
    };
    let mut input = Vec::new();
    for len in 0..=5u32 {
        for mut n in 0..alphabet.len().pow(len) {
            input.clear();
            for _ in 0..len {
                input.push(alphabet[n % alphabet.len()]);
                n /= alphabet.len();
            }
            decode_with(&input, &limits);
        }
    }
}

/// Longer pseudo-random mutations of good bodies: no panic, and the three ways of feeding
/// the decoder agree (checked by `decode_with`).
#[test]
fn mutated_bodies_never_panic() {
    let samples: &[&[u8]] = &[
        b"5;a=\"b\"\r\nhello\r\n1A\r\n0123456789abcdefghijklmnop\r\n0\r\nX: y\r\n\r\nGET",
        b"0000001\r\nz\r\n0;q\r\nA: 1\r\nB: 2\r\n\r\n",
    ];
    let alphabet = b"\r\n ;=\"\\\t\x00\xff0aF:X";
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    for _ in 0..5_000 {
        let mut raw = samples[next() % samples.len()].to_vec();
        for _ in 0..1 + next() % 3 {
            let at = next() % (raw.len() + 1);
            let byte = alphabet[next() % alphabet.len()];
            match next() % 3 {
                0 if at < raw.len() => raw[at] = byte,
                1 => raw.insert(at, byte),
                _ if at < raw.len() => {
                    raw.remove(at);
                }
                _ => {}
            }
        }
        decode_with(&raw, &LIMITS);
    }
}
