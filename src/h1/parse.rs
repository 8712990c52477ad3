//! Request heads (RFC 9112 sections 2 to 6 and 9.3): bytes in, an `http::Request<()>` out,
//! plus what the worker needs to read the body and to decide whether the connection persists.
//!
//! Hand-written rather than httparse, for two reasons. Every line must end in CRLF: RFC 9112
//! section 2.2 lets a recipient "recognize a single LF as a line terminator", but a front end
//! that does not would read `X: a\nContent-Length: 5` as one field, and we would see two (the
//! LF-in-a-value smuggling that RFC 9110 section 5.5 warns about). And the limits must hold at
//! exact byte boundaries while the head is still arriving, so that a client cannot make the
//! worker buffer an endless line.
//!
//! Each call parses the whole buffer again (the API is stateless). Errors are found in the
//! order the bytes come, so a head refused when it arrives at once is refused with the same
//! error when it trickles in.
//!
//! An accepted head is copied once, into one shared buffer: the URI, every header value and
//! the [`RawHead`] are views of it, so a request costs the same two allocations for its head
//! whatever its number of fields (a copy per field value would cost one each).

use std::ops::Range;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use super::Error;
use super::grammar::{field_line, is_token, list_elements, token_with_params};
use super::target::{TargetForm, absolute_host, classify, host_and_port};

/// The request limits (the `--limit-request-*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, in bytes, not counting its CRLF.
    pub request_line: usize,
    /// Most field lines in a head (and in a chunked trailer section).
    pub fields: usize,
    /// Longest field line, in bytes, counting name, colon, value and CRLF.
    pub field_size: usize,
    /// Largest body accepted (`Content-Length`, or the decoded chunked body); 0 means no limit.
    pub body: u64,
}

/// How many bytes of empty lines may come before the request line. RFC 9112 section 2.2:
/// "a server that is expecting to receive and parse a request-line SHOULD ignore at least one
/// empty line (CRLF) received prior to the request-line". A few are ignored; an endless
/// stream of them is refused like any other garbage. An empty line is a CRLF: a bare LF
/// there is refused, as everywhere else in the head (see [`line_end`]).
const EMPTY_LINES_MAX: usize = 256;

impl Limits {
    /// The most bytes a complete head can take under these limits; a partial head that is
    /// already this long can never become valid.
    pub fn max_head_len(&self) -> usize {
        EMPTY_LINES_MAX + self.request_line + 2 + self.fields * self.field_size + 2
    }
}

/// The request head exactly as received, kept for apps that need the original bytes: the
/// method and target before any normalisation, and the field lines in their order and case
/// (an `http::HeaderMap` groups repeated names and lowercases them). Available as a request
/// extension.
#[derive(Debug, Clone)]
pub struct RawHead {
    bytes: Bytes,
    method: Range<usize>,
    target: Range<usize>,
    version: Range<usize>,
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

    /// The HTTP-version as received (`HTTP/1.1`; `HTTP/1.2` is served as HTTP/1.1 but
    /// reported here as it came).
    pub fn version(&self) -> &[u8] {
        &self.bytes[self.version.clone()]
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
    /// Neither `Transfer-Encoding` nor `Content-Length`: no body, whatever the method.
    /// Section 6.3: "If this is a request message and none of the above are true, then the
    /// message body length is zero (no message body is present)."
    None,
    /// `Content-Length` bytes follow the head (possibly 0).
    Length(u64),
    /// The chunked transfer coding: read it with a [`ChunkedDecoder`](super::ChunkedDecoder).
    Chunked,
}

/// A complete, accepted request head.
#[derive(Debug)]
pub struct Parsed {
    /// Method, URI, version and headers, with the [`RawHead`] extension; the body is attached
    /// by the worker.
    pub request: Request<()>,
    /// Bytes of the buffer the head took (the body, if any, starts there).
    pub head_len: usize,
    /// How the body is framed.
    pub body: BodyFraming,
    /// The client sent `Expect: 100-continue` on an HTTP/1.1 request that has a body
    /// (`Length(n > 0)` or `Chunked`): it may wait for `100 Continue` before sending it.
    /// RFC 9110 section 10.1.1: "A server that receives a 100-continue expectation in an
    /// HTTP/1.0 request MUST ignore that expectation", and "A server MAY omit sending a 100
    /// (Continue) response if ... the framing indicates that there is no content."
    pub expect_continue: bool,
    /// The client allows the connection to persist after the response (RFC 9112 section 9.3):
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive` (and
    /// no `close`). Whether the server keeps it is the worker's decision.
    pub keep_alive: bool,
    /// What the worker logs and counts about the request, noted in the same pass over the
    /// fields, so that it need not look them up again in the header map.
    pub notes: HeadNotes,
}

/// The fields the worker itself reads, as received (the first line of each).
#[derive(Debug, Clone, Default)]
pub struct HeadNotes {
    /// `X-Request-Id`: the router's id for the request, logged with it.
    pub request_id: Option<HeaderValue>,
    /// `X-Request-Start`: when the router received the request (see
    /// [`parse_request_start`](super::parse_request_start)).
    pub request_start: Option<HeaderValue>,
    /// `TE` lists `trailers`: the client accepts trailer fields after a chunked response
    /// (RFC 9110 section 10.1.4).
    pub trailers_accepted: bool,
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means the head is not complete yet: read more and call again with the whole
/// buffer. An error is final: answer `err.status()` and close.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, Error> {
    let Some(head) = scan(buf, limits)? else {
        return Ok(None);
    };
    let method = &buf[head.method.clone()];
    let target = &buf[head.target.clone()];
    check_method(method)?;
    let form = classify(method, target)?;
    let fields = Fields::collect(buf, &head.fields);

    check_host(&fields, head.minor, form)?;
    if fields.repeated_singleton {
        return Err(Error::DuplicateField);
    }
    let body = framing(&fields, head.minor, limits)?;
    refuse_connect(form)?;
    let expect_continue = head.minor == 1
        && fields.expect_continue
        && matches!(body, BodyFraming::Chunked | BodyFraming::Length(1..));
    // RFC 9112 section 9.3: "If the "close" connection option is present, the connection will
    // not persist after the current response; else, If the received protocol is HTTP/1.1 (or
    // later), the connection will persist after the current response; else, If the received
    // protocol is HTTP/1.0, the "keep-alive" connection option is present, [...] the
    // connection will persist after the current response; otherwise, The connection will
    // close after the current response."
    let keep_alive = !fields.close && (head.minor == 1 || fields.keep_alive);

    // The `http` crate cannot hold a URI this long (u16 offsets); RFC 9112 section 3: "A
    // server that receives a request-target longer than any URI it wishes to parse MUST
    // respond with a 414 (URI Too Long) status code".
    if target.len() >= usize::from(u16::MAX) {
        return Err(Error::RequestLineTooLong);
    }
    // One copy of the head, shared by the URI, the header values and the raw head.
    let bytes = Bytes::copy_from_slice(&buf[..head.len]);
    let uri =
        Uri::from_maybe_shared(bytes.slice(head.target.clone())).map_err(|_| Error::BadTarget)?;
    let method = Method::from_bytes(method).map_err(|_| Error::Malformed)?;
    // A `HeaderMap` holds at most about 24k distinct names and panics past that in `append`;
    // `--limit-request-fields` goes up to 32768, so its fallible twins are used.
    let mut map = HeaderMap::try_with_capacity(head.fields.len()).unwrap_or_default();
    let mut notes = HeadNotes::default();
    for (i, (name, value)) in head.fields.iter().enumerate() {
        let name = HeaderName::from_bytes(&buf[name.clone()]).map_err(|_| Error::Malformed)?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(value.clone()))
            .map_err(|_| Error::Malformed)?;
        if Some(i) == fields.request_id {
            notes.request_id = Some(value.clone());
        } else if Some(i) == fields.request_start {
            notes.request_start = Some(value.clone());
        }
        map.try_append(name, value)
            .map_err(|_| Error::TooManyFields)?;
    }
    notes.trailers_accepted = fields.trailers_accepted;
    // RFC 9112 section 3.2.2: "When an origin server receives a request with an
    // absolute-form of request-target, the origin server MUST ignore the received Host header
    // field (if any) and instead use the host information of the request-target", and "When a
    // proxy receives a request with an absolute-form of request-target, the proxy MUST ignore
    // the received Host header field (if any) and instead replace it with the host information
    // of the request-target". The app reads the authority from `Host` (virtual hosts,
    // redirects, absolute URLs it builds), so `Host` is replaced, in its place among the
    // fields (or added, for an HTTP/1.0 request that had none): the app cannot be handed one
    // authority in the target and another in `Host`. The raw head keeps what was received.
    if form == TargetForm::Absolute {
        let host = HeaderValue::from_bytes(absolute_host(target)).map_err(|_| Error::BadTarget)?;
        map.try_insert(http::header::HOST, host)
            .map_err(|_| Error::TooManyFields)?;
    }

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if head.minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = map;
    request.extensions_mut().insert(RawHead {
        bytes,
        method: head.method,
        target: head.target,
        version: head.version,
        fields: head.fields,
    });
    Ok(Some(Parsed {
        request,
        head_len: head.len,
        body,
        expect_continue,
        keep_alive,
        notes,
    }))
}

/// A head whose lines are all complete and well-formed, as ranges of the buffer.
struct Head {
    method: Range<usize>,
    target: Range<usize>,
    version: Range<usize>,
    /// The minor version: 0, or 1 for HTTP/1.1 and later 1.x.
    minor: u8,
    /// Each field line's name and (trimmed) value.
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// Bytes up to and including the empty line that ends the head.
    len: usize,
}

/// Finds the lines of the head and checks each as it completes: the limits, line endings,
/// the request line and the field-line grammar. `Ok(None)`: not complete yet.
fn scan(buf: &[u8], limits: &Limits) -> Result<Option<Head>, Error> {
    let mut start = 0;
    loop {
        match &buf[start..] {
            [b'\r', b'\n', ..] => start += 2,
            [b'\n', ..] => return Err(Error::Malformed),
            [] | [b'\r'] => return Ok(None),
            _ => break,
        }
        if start > EMPTY_LINES_MAX {
            return Err(Error::Malformed);
        }
    }

    let Some(end) = line_end(buf, start, limits.request_line, Error::RequestLineTooLong)? else {
        return Ok(None);
    };
    let (method, target, minor) = request_line(buf, start..end)?;
    let version = target.end + 1..end;

    // Most heads have a few fields: one allocation for them, not a growth at each doubling.
    let mut fields = Vec::with_capacity(16);
    let mut at = end + 2;
    loop {
        match &buf[at..] {
            [b'\r', b'\n', ..] => break,
            [] | [b'\r'] => return Ok(None),
            _ => {}
        }
        if fields.len() == limits.fields {
            return Err(Error::TooManyFields);
        }
        // The limit counts the CRLF; line_end's does not.
        let max = limits.field_size.saturating_sub(2);
        let Some(end) = line_end(buf, at, max, Error::FieldTooLarge)? else {
            return Ok(None);
        };
        let (name, value) = field_line(&buf[at..end])?;
        fields.push((
            at + name.start..at + name.end,
            at + value.start..at + value.end,
        ));
        at = end + 2;
    }
    Ok(Some(Head {
        method,
        target,
        version,
        minor,
        fields,
        len: at + 2,
    }))
}

/// The index of the CR of the CRLF that ends the line starting at `start`, or `Ok(None)` if
/// the line is not complete yet. Refused, in the order the bytes come: more than `max` bytes
/// before the CRLF (`too_long`), a CR not followed by LF, and an LF without a CR before it.
///
/// RFC 9112 section 2.2: "A recipient of such a bare CR MUST consider that element to be
/// invalid or replace each bare CR with SP". A bare LF is the MAY this parser declines (see
/// the module docs); both are [`Error::Malformed`].
fn line_end(buf: &[u8], start: usize, max: usize, too_long: Error) -> Result<Option<usize>, Error> {
    let line = &buf[start..];
    let Some(i) = line.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if line.len() > max {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    if i > max {
        return Err(too_long);
    }
    match (line[i], line.get(i + 1)) {
        (b'\r', Some(b'\n')) => Ok(Some(start + i)),
        (b'\r', None) => Ok(None),
        _ => Err(Error::Malformed),
    }
}

/// RFC 9112 section 3: `request-line = method SP request-target SP HTTP-version`, one SP
/// each ("recipients MAY instead parse on whitespace-delimited word boundaries": we do not).
/// Returns the method and target ranges and the minor version.
fn request_line(buf: &[u8], line: Range<usize>) -> Result<(Range<usize>, Range<usize>, u8), Error> {
    let text = &buf[line.clone()];
    let sp1 = text
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Error::Malformed)?;
    let sp2 = text
        .iter()
        .rposition(|&b| b == b' ')
        .filter(|&i| i > sp1)
        .ok_or(Error::Malformed)?;
    // Section 3.1: `method = token`.
    if !is_token(&text[..sp1]) {
        return Err(Error::Malformed);
    }
    let minor = version(&text[sp2 + 1..])?;
    let target = &text[sp1 + 1..sp2];
    // Section 3.2: "No whitespace is allowed in the request-target." The target's own grammar
    // (and its non-ASCII and control bytes) is checked with the method, in `classify`.
    if target.is_empty() || target.contains(&b' ') {
        return Err(Error::Malformed);
    }
    let start = line.start;
    Ok((start..start + sp1, start + sp1 + 1..start + sp2, minor))
}

/// RFC 9112 section 2.3: `HTTP-version = HTTP-name "/" DIGIT "." DIGIT`, `HTTP-name = %s"HTTP"`
/// (case-sensitive). Anything else is [`Error::Malformed`]; a well-formed version with a
/// major other than 1 is [`Error::UnsupportedVersion`] (RFC 9110 section 15.6.6: 505 is for
/// "the major version of HTTP that was used in the request message").
///
/// A minor above 1 is served as HTTP/1.1. RFC 9110 section 2.5: "A recipient that receives a
/// message with a major version number that it implements and a minor version number higher
/// than what it implements SHOULD process the message as if it were in the highest minor
/// version within that major version to which the recipient is conformant."
fn version(v: &[u8]) -> Result<u8, Error> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0') => Ok(0),
                (b'1', _) => Ok(1),
                _ => Err(Error::UnsupportedVersion),
            }
        }
        _ => Err(Error::Malformed),
    }
}

/// Methods are case-sensitive tokens (RFC 9110 section 9.1), and every method in the IANA
/// registry is upper-case. A method with lower-case letters is refused (policy, as Gunicorn):
/// a hop that case-folds it (`get` to `GET`) and one that does not would disagree about what
/// the request is. RFC 9110 section 9.1: "An origin server that receives a request method that
/// is unrecognized or not implemented SHOULD respond with the 501 (Not Implemented) status
/// code", hence [`Error::UnsupportedMethod`]. Other tokens (`-BLARGH`, `M-SEARCH`) reach the
/// app, which decides.
fn check_method(method: &[u8]) -> Result<(), Error> {
    if method.iter().any(u8::is_ascii_lowercase) {
        return Err(Error::UnsupportedMethod);
    }
    Ok(())
}

/// CONNECT is refused, once its head is complete and otherwise valid (a malformed CONNECT
/// gets the status of its fault, as any method does, and a head gets the same answer whether
/// it arrives at once or trickles in).
///
/// RFC 9110 section 9.3.6: CONNECT asks the recipient "to establish a tunnel to the
/// destination origin server identified by the request target"; "A server MUST NOT send any
/// Transfer-Encoding or Content-Length header fields in a 2xx (Successful) response to
/// CONNECT", and after one the client treats the connection as a tunnel. An app server behind
/// a router is not a proxy: a worker would pass CONNECT to the app, frame its answer like any
/// other and read the next bytes as HTTP again. So CONNECT never reaches the app.
///
/// 501 rather than 405: section 15.6.2 calls 501 "the appropriate response when the server
/// does not recognize the request method and is not capable of supporting it for any
/// resource", which is the case; section 15.5.6 makes 405 a statement about one target
/// resource, and "The origin server MUST generate an Allow header field in a 405 response
/// containing a list of the target resource's currently supported methods", which only the
/// app knows. The connection is closed after it, as after every refusal.
fn refuse_connect(form: TargetForm) -> Result<(), Error> {
    // `classify` gives the authority-form to CONNECT, and only to CONNECT.
    if form == TargetForm::Authority {
        return Err(Error::ConnectNotImplemented);
    }
    Ok(())
}

/// Request fields whose grammar is one value, not a list, so that they must not repeat.
/// RFC 9110 section 5.3: "A sender MUST NOT generate multiple field lines with the same name
/// in a message [...] unless that field's definition allows multiple field line values to be
/// recombined as a comma-separated list". Repeats are refused (policy, as Gunicorn): one hop
/// may act on the first line and the next on the last (a WAF reading one Content-Type while
/// the app parses the body by the other). `Host` and `Content-Length` have rules of their own.
/// `Cookie` is left out: RFC 6265 section 5.4 forbids repeats too, but some clients send one
/// line per cookie, and RFC 9113 section 8.2.3 lets HTTP/2 split it across fields.
const SINGLETONS: [&str; 13] = [
    "authorization",       // RFC 9110 section 11.6.2
    "content-location",    // RFC 9110 section 8.7
    "content-range",       // RFC 9110 section 14.4
    "content-type",        // RFC 9110 section 8.3
    "date",                // RFC 9110 section 6.6.1
    "from",                // RFC 9110 section 10.1.2
    "if-modified-since",   // RFC 9110 section 13.1.3
    "if-range",            // RFC 9110 section 13.1.5
    "if-unmodified-since", // RFC 9110 section 13.1.4
    "max-forwards",        // RFC 9110 section 7.6.2
    "proxy-authorization", // RFC 9110 section 11.7.2
    "range",               // RFC 9110 section 14.2
    "referer",             // RFC 9110 section 10.1.3
];

/// What the head's fields say about routing, framing and the connection, gathered in one pass.
#[derive(Default)]
struct Fields<'a> {
    /// The `Host` lines.
    hosts: Repeats<'a>,
    /// The `Content-Length` lines.
    content_lengths: Repeats<'a>,
    /// Every `Transfer-Encoding` value, in order (rare: a `Vec` allocates only when pushed).
    transfer_encodings: Vec<&'a [u8]>,
    /// `Connection` has the `close` option.
    close: bool,
    /// `Connection` has the `keep-alive` option.
    keep_alive: bool,
    /// `Expect` has `100-continue`.
    expect_continue: bool,
    /// A field of [`SINGLETONS`] came more than once.
    repeated_singleton: bool,
    /// The index of the first `X-Request-Id` line.
    request_id: Option<usize>,
    /// The index of the first `X-Request-Start` line.
    request_start: Option<usize>,
    /// A `TE` line lists `trailers`.
    trailers_accepted: bool,
}

/// How many lines a field came in, and the first one's value: all the rules of `Host` and
/// `Content-Length` need (exactly one line, or none).
#[derive(Default, Clone, Copy)]
struct Repeats<'a> {
    count: usize,
    first: &'a [u8],
}

impl<'a> Repeats<'a> {
    fn push(&mut self, value: &'a [u8]) {
        if self.count == 0 {
            self.first = value;
        }
        self.count += 1;
    }

    /// The value, if the field came in exactly one line.
    fn one(&self) -> Option<&'a [u8]> {
        (self.count == 1).then_some(self.first)
    }
}

impl<'a> Fields<'a> {
    fn collect(buf: &'a [u8], fields: &[(Range<usize>, Range<usize>)]) -> Fields<'a> {
        let mut f = Fields::default();
        let mut singletons_seen = [false; SINGLETONS.len()];
        for (i, (name, value)) in fields.iter().enumerate() {
            let (name, value) = (&buf[name.clone()], &buf[value.clone()]);
            if let Some(i) = SINGLETONS
                .iter()
                .position(|s| name.eq_ignore_ascii_case(s.as_bytes()))
            {
                f.repeated_singleton |= singletons_seen[i];
                singletons_seen[i] = true;
            } else if name.eq_ignore_ascii_case(b"host") {
                f.hosts.push(value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                f.content_lengths.push(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                f.transfer_encodings.push(value);
            } else if name.eq_ignore_ascii_case(b"connection") {
                // RFC 9110 section 7.6.1: `Connection = #connection-option`, and "Connection
                // options are case-insensitive."
                for option in list_elements(value) {
                    f.close |= option.eq_ignore_ascii_case(b"close");
                    f.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"expect") {
                // RFC 9110 section 10.1.1: `Expect = #expectation`; "The expectation token is
                // case-insensitive" (and 100-continue takes no value).
                f.expect_continue |=
                    list_elements(value).any(|e| e.eq_ignore_ascii_case(b"100-continue"));
            } else if name.eq_ignore_ascii_case(b"x-request-id") {
                f.request_id.get_or_insert(i);
            } else if name.eq_ignore_ascii_case(b"x-request-start") {
                f.request_start.get_or_insert(i);
            } else if name.eq_ignore_ascii_case(b"te") {
                // RFC 9110 section 10.1.4: `TE = #t-codings`, `t-codings = "trailers" / (
                // transfer-coding [ weight ] )`.
                f.trailers_accepted |= list_elements(value).any(|t| {
                    let name = t.split(|&b| b == b';').next().unwrap_or_default();
                    name.trim_ascii().eq_ignore_ascii_case(b"trailers")
                });
            }
        }
        f
    }
}

/// RFC 9112 section 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request message that
/// contains more than one Host header field line or a Host header field with an invalid field
/// value." The value is RFC 9110 section 7.2's `Host = uri-host [ ":" port ]`.
///
/// An empty value: the same section says "If the authority component is missing or undefined
/// for the target URI, then a client MUST send a Host header field with an empty field value."
/// With absolute-form or authority-form the target carries the authority itself (section
/// 3.2.2: "the origin server MUST ignore the received Host header field (if any) and instead
/// use the host information of the request-target"), so an empty Host is accepted there. With
/// origin-form or asterisk-form the target URI is `http://` + Host, and an empty Host leaves
/// it with no authority, which "http" does not allow (RFC 9110 section 4.2.1: "A recipient
/// that processes such a URI reference MUST reject it as invalid"); RFC 9112 section 3.3 lets
/// the server "reject the request or determine whether a configured default applies". This
/// server has no configured default authority, so it rejects: [`Error::BadHost`].
fn check_host(fields: &Fields<'_>, minor: u8, form: TargetForm) -> Result<(), Error> {
    match (fields.hosts.count, fields.hosts.one()) {
        (0, _) if minor == 0 => Ok(()),
        (0, _) => Err(Error::MissingHost),
        (_, Some([])) => match form {
            TargetForm::Absolute | TargetForm::Authority => Ok(()),
            TargetForm::Origin | TargetForm::Asterisk => Err(Error::BadHost),
        },
        (_, Some(host)) if host_and_port(host).is_some() => Ok(()),
        _ => Err(Error::BadHost),
    }
}

/// The body's framing, RFC 9112 section 6.
///
/// * `Transfer-Encoding` in HTTP/1.0: section 6.1, "A server or client that receives an
///   HTTP/1.0 message containing a Transfer-Encoding header field MUST treat the message as if
///   the framing is faulty, even if a Content-Length is present": refused.
/// * Both fields: section 6.3, "Such a message might indicate an attempt to perform request
///   smuggling [...] and ought to be handled as an error": refused (policy; the RFC also lets
///   Transfer-Encoding win, but then a front end that read Content-Length disagrees with us).
/// * The codings of every `Transfer-Encoding` line, in order, form one list. Section 6.3: "If
///   a Transfer-Encoding header field is present in a request and the chunked transfer coding
///   is not the final encoding, the message body length cannot be determined reliably; the
///   server MUST respond with the 400 (Bad Request) status code"; section 6.1: "A sender MUST
///   NOT apply the chunked transfer coding more than once". A malformed list, chunked not
///   last or chunked twice: [`Error::BadTransferEncoding`].
/// * Any other coding before the final chunked (gzip, identity, unknown) or parameters on
///   chunked: [`Error::UnsupportedTransferCoding`]. Section 6.1: "A server that receives a
///   request message with a transfer coding it does not understand SHOULD respond with 501
///   (Not Implemented)." This server only removes chunked, and passing a still-gzipped body
///   to the app as if it were the content would be wrong.
/// * `Content-Length = 1*DIGIT`, on one line only. Section 6.3 lets a recipient accept a
///   list or repeats of one same value ("unless the field value can be successfully parsed as
///   a comma-separated list [...] and all values in the list are the same"), and RFC 9110
///   section 8.6 says it "MAY either reject the message as invalid or replace that invalid
///   field value with a single instance". We reject (the safer choice, as Gunicorn): a proxy
///   in front that takes the first number of `5, 50` or of two lines frames the body
///   differently, and no client that follows the RFC sends repeats.
fn framing(fields: &Fields<'_>, minor: u8, limits: &Limits) -> Result<BodyFraming, Error> {
    if !fields.transfer_encodings.is_empty() {
        if minor == 0 || fields.content_lengths.count > 0 {
            return Err(Error::BadTransferEncoding);
        }
        let mut codings = Vec::new();
        for value in &fields.transfer_encodings {
            for element in list_elements(value) {
                codings.push(token_with_params(element).ok_or(Error::BadTransferEncoding)?);
            }
        }
        // RFC 9112 section 7: "All transfer-coding names are case-insensitive".
        let chunked = |name: &[u8]| name.eq_ignore_ascii_case(b"chunked");
        let chunked_count = codings.iter().filter(|(name, _)| chunked(name)).count();
        if chunked_count != 1 || !codings.last().is_some_and(|(name, _)| chunked(name)) {
            return Err(Error::BadTransferEncoding);
        }
        if codings.len() > 1 || codings[0].1 {
            return Err(Error::UnsupportedTransferCoding);
        }
        return Ok(BodyFraming::Chunked);
    }
    match (fields.content_lengths.count, fields.content_lengths.one()) {
        (0, _) => Ok(BodyFraming::None),
        (_, Some(value)) => {
            let n = parse_content_length(value)?;
            if limits.body > 0 && n > limits.body {
                return Err(Error::BodyTooLarge);
            }
            Ok(BodyFraming::Length(n))
        }
        _ => Err(Error::BadContentLength),
    }
}

/// RFC 9110 section 8.6: `Content-Length = 1*DIGIT`; a number past `u64` is invalid too.
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

#[cfg(test)]
mod tests;
