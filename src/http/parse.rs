//! Request heads: httparse does the grammar, this file applies the limits and turns the result
//! into an `http::Request<()>` plus what the worker needs to frame the body.

use std::ops::Range;

use ::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, header};

use super::Error;

/// The request limits (the `--limit-request-*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, in bytes, not counting its CRLF.
    pub request_line: usize,
    /// Most field lines in a head.
    pub fields: usize,
    /// Longest field line, in bytes, counting name, colon, value and CRLF.
    pub field_size: usize,
    /// Largest `Content-Length` accepted; 0 means no limit.
    pub body: u64,
}

impl Limits {
    /// The most bytes a complete head can take under these limits; a partial head that is
    /// already this long can never become valid.
    pub fn max_head_len(&self) -> usize {
        self.request_line + 2 + self.fields * self.field_size + 2
    }
}

/// The request head exactly as received, kept for apps that need the original bytes: the
/// method and target before any normalisation, and the field lines in their order and case
/// (an `http::HeaderMap` groups repeated names and lowercases them). Available as a request
/// extension.
#[derive(Debug, Clone)]
pub struct RawHead {
    bytes: Box<[u8]>,
    method: Range<usize>,
    target: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
}

impl RawHead {
    /// The method token as received.
    pub fn method(&self) -> &[u8] {
        &self.bytes[self.method.clone()]
    }

    /// The request-target as received.
    pub fn target(&self) -> &[u8] {
        &self.bytes[self.target.clone()]
    }

    /// The field lines as `(name, value)`, in order, names in their original case, values
    /// without surrounding whitespace.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|(n, v)| (&self.bytes[n.clone()], &self.bytes[v.clone()]))
    }
}

/// How the request body is framed (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// A complete, accepted request head.
#[derive(Debug)]
pub struct Parsed {
    /// Method, URI, version and headers; the body is attached by the worker.
    pub request: Request<()>,
    /// Bytes of the buffer the head took (the body, if any, starts there).
    pub head_len: usize,
    /// How the body is framed.
    pub body: BodyFraming,
    /// The client allows the connection to persist.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
}

fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Checks the request line against its limit before the rest has arrived, so a client cannot
/// make the worker buffer an endless line.
fn check_request_line(buf: &[u8], limits: &Limits) -> Result<(), Error> {
    // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line received before
    // the request-line. httparse does; skip them here too so they do not count.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    match line.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let len = if end > 0 && line[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            if len > limits.request_line {
                Err(Error::RequestLineTooLong)
            } else {
                Ok(())
            }
        }
        None if line.len() > limits.request_line + 1 => Err(Error::RequestLineTooLong),
        None => Ok(()),
    }
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means the head is not complete yet: read more and call again with the whole
/// buffer. An error is final: answer `err.status()` and close.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, Error> {
    check_request_line(buf, limits)?;
    // httparse fills at most `fields` slots and says TooManyHeaders on one more.
    let mut headers = vec![httparse::EMPTY_HEADER; limits.fields];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= limits.max_head_len() {
                Err(Error::FieldTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyFields),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(Error::Malformed),
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Error::Malformed);
    };

    let mut raw_fields = Vec::with_capacity(req.headers.len());
    let mut map = HeaderMap::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name_range = offset(buf, h.name.as_bytes());
        let value_range = offset(buf, h.value);
        // The field line runs from its name to the LF that ends it.
        let line_end = buf[value_range.end..head_len]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head_len, |p| value_range.end + p + 1);
        if line_end - name_range.start > limits.field_size {
            return Err(Error::FieldTooLarge);
        }
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Error::Malformed)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| Error::Malformed)?;
        if name == header::CONTENT_LENGTH {
            // RFC 9112 section 6.3: a Content-Length that is not one valid number is an
            // unrecoverable framing error. Repeats are refused too, even when equal: the
            // stricter reading, so that no proxy in front can frame the body differently.
            if content_length.is_some() {
                return Err(Error::BadContentLength);
            }
            content_length = Some(parse_content_length(h.value)?);
        } else if name == header::TRANSFER_ENCODING {
            return Err(Error::UnsupportedTransferCoding);
        } else if name == header::EXPECT && minor == 1 {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
        raw_fields.push((name_range, value_range));
        map.append(name, value);
    }

    let content_length = content_length.unwrap_or(0);
    if limits.body > 0 && content_length > limits.body {
        return Err(Error::BodyTooLarge);
    }

    let method_range = offset(buf, method.as_bytes());
    let target_range = offset(buf, path.as_bytes());
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Error::Malformed)?;
    let uri = Uri::try_from(path.as_bytes()).map_err(|_| Error::Malformed)?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };

    let raw = RawHead {
        bytes: buf[..head_len].into(),
        method: method_range,
        target: target_range,
        fields: raw_fields,
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = map;
    request.extensions_mut().insert(raw);
    let keep_alive = minor == 1;
    let body = if content_length > 0 {
        BodyFraming::Length(content_length)
    } else {
        BodyFraming::None
    };
    Ok(Some(Parsed {
        request,
        head_len,
        body,
        expect_continue,
        keep_alive,
    }))
}

/// RFC 9112 section 6.3: `Content-Length = 1*DIGIT`.
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadContentLength);
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Error::BadContentLength)
    })
}

/// httparse says "bad version" both for `HTTP/2.0` (a version we do not support: 505) and for
/// garbage where the version should be (400).
fn version_error(buf: &[u8]) -> Error {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    let well_formed = version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if well_formed {
        Error::UnsupportedVersion
    } else {
        Error::Malformed
    }
}

#[cfg(test)]
mod tests;
