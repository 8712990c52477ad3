//! HTTP/1.1 as pure functions: request heads in (bytes), requests out; responses in, bytes out.
//!
//! No sockets, signals or settings here (DESIGN.md, "Layers"): the worker owns the connection
//! and calls these functions with the bytes it has read. Parsing uses httparse; the one place
//! a parse failure becomes a status code is [`Error::status`].
//!
//! Scope: what real clients (curl, wrk, browsers, Heroku's router) send. Requests framed by
//! `Content-Length` or without a body; `Transfer-Encoding` is answered 501 until chunked
//! request bodies land with the RFC 9112 conformance work.

mod date;
mod parse;
mod response;

pub use date::DateCache;
pub use parse::{Limits, Parsed, RawHead, parse_head};
pub use response::{Framing, chunk_header, encode_head, framing_for};

use ::http::StatusCode;

/// Why a request head was refused. `Copy` and small: the worker maps it to a response with
/// [`Error::status`] and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The head does not follow RFC 9112's grammar (httparse refused it, or the method, target
    /// or a field could not be represented).
    Malformed,
    /// The request line is longer than `--limit-request-line`.
    RequestLineTooLong,
    /// More field lines than `--limit-request-fields`.
    TooManyFields,
    /// One field line is longer than `--limit-request-field-size`.
    FieldTooLarge,
    /// `Content-Length` is not one decimal number, or appears more than once.
    BadContentLength,
    /// A transfer coding this server does not decode.
    UnsupportedTransferCoding,
    /// An HTTP version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// `Content-Length` above `--limit-request-body`.
    BodyTooLarge,
    /// The head did not arrive within `--header-timeout`.
    HeadTimeout,
}

impl Error {
    /// The status the client gets. The connection is closed after it in every case.
    pub fn status(self) -> StatusCode {
        match self {
            Error::Malformed | Error::BadContentLength => StatusCode::BAD_REQUEST,
            Error::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            Error::TooManyFields | Error::FieldTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Error::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// A stable snake_case name for logs (`reason=`).
    pub fn name(self) -> &'static str {
        match self {
            Error::Malformed => "malformed",
            Error::RequestLineTooLong => "request_line_too_long",
            Error::TooManyFields => "too_many_fields",
            Error::FieldTooLarge => "field_too_large",
            Error::BadContentLength => "bad_content_length",
            Error::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Error::UnsupportedVersion => "unsupported_version",
            Error::BodyTooLarge => "body_too_large",
            Error::HeadTimeout => "head_timeout",
        }
    }
}
