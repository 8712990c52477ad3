//! HTTP/1.1 as pure functions: request heads in (bytes), requests out; chunked bodies in,
//! body bytes out; responses in, bytes out.
//!
//! No sockets, signals or settings here (docs/design.md, "Module layers"): the worker owns the connection
//! and calls these functions with the bytes it has read. [`parse_head`] applies RFC 9112 and
//! RFC 9110 strictly (the decisions, each with the sentence it rests on, are documented where
//! they are made: `parse.rs`, `target.rs`, `grammar.rs`, `chunked.rs`), and
//! [`ChunkedDecoder`] removes the chunked transfer coding incrementally. The one place a
//! parse failure becomes a status code is [`Error::status`].

mod chunked;
#[cfg(test)]
mod corpus_tests;
pub mod date;
mod grammar;
mod parse;
mod response;
mod scan;
mod target;

#[allow(
    unused_imports,
    reason = "API for the worker, which names `Step` only through `decode`'s result so far"
)]
pub use chunked::{ChunkedDecoder, Step};
pub use date::DateCache;
pub use parse::{BodyFraming, HeadNotes, Limits, Parsed, RawHead, parse_head};
pub use response::{Framing, Persist, chunk_header, encode_head, framing_for};
pub use scan::HeadScan;

use http::StatusCode;

/// Why a request was refused. `Copy` and small: the worker maps it to a response with
/// [`Error::status`] and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The head does not follow RFC 9112's grammar: the request line, a line ending (bare CR
    /// or LF), a field name, or a byte in a field value (a trailer field's too).
    Malformed,
    /// A method with lower-case letters (policy: see `parse.rs`).
    UnsupportedMethod,
    /// A CONNECT request: this server is not a proxy and opens no tunnels (see `parse.rs`).
    ConnectNotImplemented,
    /// The request-target is not in a form RFC 9112 section 3.2 allows for this method, or
    /// does not follow RFC 3986.
    BadTarget,
    /// An HTTP/1.1 request without `Host`.
    MissingHost,
    /// More than one `Host` line, or a value that is not `uri-host [ ":" port ]`.
    BadHost,
    /// The request line is longer than `--limit-request-line`.
    RequestLineTooLong,
    /// More field lines than `--limit-request-fields` (in the head or the trailer section).
    TooManyFields,
    /// One field line is longer than `--limit-request-field-size` (head or trailer section).
    FieldTooLarge,
    /// A field that must not repeat (`Content-Type`, `Authorization`, ...) came twice.
    DuplicateField,
    /// `Content-Length` is not one decimal number, or appears more than once.
    BadContentLength,
    /// `Transfer-Encoding` that cannot frame the body: in HTTP/1.0, together with
    /// `Content-Length`, malformed, or without chunked exactly once and last.
    BadTransferEncoding,
    /// A transfer coding this server does not decode (anything before the final chunked).
    UnsupportedTransferCoding,
    /// A well-formed HTTP version whose major is not 1.
    UnsupportedVersion,
    /// `Content-Length`, or the decoded chunked body, above `--limit-request-body`.
    BodyTooLarge,
    /// The chunked body breaks RFC 9112 section 7.1: chunk size, extension or line ending.
    BadChunk,
    /// A trailer field that must not be sent as one (`Content-Length`, `Host`,
    /// `Transfer-Encoding`).
    ForbiddenTrailer,
    /// The head did not arrive within `--header-timeout`.
    HeadTimeout,
    /// The request body did not arrive within `--body-timeout`.
    BodyTimeout,
}

impl Error {
    /// The status the client gets. The connection is closed after it in every case.
    pub fn status(self) -> StatusCode {
        match self {
            Error::Malformed
            | Error::BadTarget
            | Error::MissingHost
            | Error::BadHost
            | Error::DuplicateField
            | Error::BadContentLength
            | Error::BadTransferEncoding
            | Error::BadChunk
            | Error::ForbiddenTrailer => StatusCode::BAD_REQUEST,
            Error::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            Error::TooManyFields | Error::FieldTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::UnsupportedMethod
            | Error::ConnectNotImplemented
            | Error::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Error::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadTimeout | Error::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// A stable snake_case name for logs (`reason=`).
    pub fn name(self) -> &'static str {
        match self {
            Error::Malformed => "malformed",
            Error::UnsupportedMethod => "unsupported_method",
            Error::ConnectNotImplemented => "connect_not_implemented",
            Error::BadTarget => "bad_target",
            Error::MissingHost => "missing_host",
            Error::BadHost => "bad_host",
            Error::RequestLineTooLong => "request_line_too_long",
            Error::TooManyFields => "too_many_fields",
            Error::FieldTooLarge => "field_too_large",
            Error::DuplicateField => "duplicate_field",
            Error::BadContentLength => "bad_content_length",
            Error::BadTransferEncoding => "bad_transfer_encoding",
            Error::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Error::UnsupportedVersion => "unsupported_version",
            Error::BodyTooLarge => "body_too_large",
            Error::BadChunk => "bad_chunk",
            Error::ForbiddenTrailer => "forbidden_trailer",
            Error::HeadTimeout => "head_timeout",
            Error::BodyTimeout => "body_timeout",
        }
    }
}

/// When the router received the request, from `X-Request-Start`, in microseconds since the
/// Unix epoch.
///
/// Heroku's router sends integer milliseconds (`1700000000123`); New Relic's convention and
/// nginx configurations send `t=` followed by microseconds (`t=1700000000123456`) or by
/// seconds with a fraction (`t=1700000000.123`). The unit of a plain integer is told by its
/// size: below 10^11 seconds, below 10^14 milliseconds, else microseconds.
pub fn parse_request_start(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let text = text.strip_prefix("t=").unwrap_or(text);
    if let Some((secs, frac)) = text.split_once('.') {
        let secs: u64 = secs.parse().ok()?;
        let digits = frac.get(..frac.len().min(6))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let micros: u64 = digits.parse().ok()?;
        return secs
            .checked_mul(1_000_000)?
            .checked_add(micros * 10u64.pow(6 - digits.len() as u32));
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = text.parse().ok()?;
    match n {
        0..100_000_000_000 => n.checked_mul(1_000_000),
        100_000_000_000..100_000_000_000_000 => n.checked_mul(1_000),
        _ => Some(n),
    }
}

#[cfg(test)]
mod request_start_tests {
    use super::parse_request_start as p;

    #[test]
    fn every_form_the_routers_send() {
        assert_eq!(p(b"1700000000123"), Some(1_700_000_000_123_000));
        assert_eq!(p(b"t=1700000000123456"), Some(1_700_000_000_123_456));
        assert_eq!(p(b"t=1700000000.123"), Some(1_700_000_000_123_000));
        assert_eq!(p(b"1700000000.5"), Some(1_700_000_000_500_000));
        assert_eq!(p(b"1700000000"), Some(1_700_000_000_000_000));
        assert_eq!(p(b" 1700000000123 "), Some(1_700_000_000_123_000));
    }

    #[test]
    fn garbage_is_ignored() {
        for bad in [
            &b""[..],
            b"t=",
            b"soon",
            b"-5",
            b"1.x",
            b"t=1.",
            b"\xff",
            b"99999999999999999999999",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
