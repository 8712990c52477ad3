//! The chunked transfer coding (RFC 9112 section 7.1), removed incrementally: framing bytes
//! in, body bytes out, in whatever pieces the socket delivers.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! A byte-at-a-time state machine for the framing and a plain copy for chunk data, so the
//! result does not depend on how the input is split. It never panics: sizes are checked for
//! overflow, every line is bounded, and each call either consumes input, writes output, or
//! reports that it needs one of them. Pure: no I/O; the worker feeds it what it has read.
//!
//! Strict on line endings: every line ends in CRLF. RFC 9112 section 2.2's leniency ("a
//! recipient MAY recognize a single LF as a line terminator") is about "the start-line and
//! fields"; the chunk grammar says CRLF, and a bare LF that one hop accepts and the next does
//! not is how chunked smuggling works. Chunk extensions are checked against the grammar and
//! then ignored (section 7.1.1: "A recipient MUST ignore unrecognized chunk extensions").

use super::grammar::{field_line, is_ows, is_tchar};
use super::{Error, Limits};

/// The outcome of one [`ChunkedDecoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed (framing and data).
    pub consumed: usize,
    /// Body bytes written to the output.
    pub written: usize,
    /// The body is complete: the last chunk, the trailer section and its final CRLF were read.
    /// `consumed` then ends exactly after that CRLF.
    pub done: bool,
}

/// Decodes the chunked transfer coding (RFC 9112 section 7.1) incrementally.
///
/// Call [`decode`](Self::decode) with the bytes that follow the head, then again with more
/// bytes until `done`. After an error the decoder stays failed and returns the same error.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Largest decoded body; 0 means no limit.
    body_limit: u64,
    /// Body bytes announced by the chunk sizes so far.
    decoded: u64,
    /// Longest chunk-size line or trailer line, not counting its CRLF.
    max_line: usize,
    /// Most trailer fields.
    max_fields: usize,
    /// Bytes of the current chunk-size line so far.
    line_len: usize,
    /// The trailer line being read.
    line: Vec<u8>,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where the decoder is in the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In chunk-size; `digits` says whether a HEXDIG came yet.
    Size { size: u64, digits: bool },
    /// In the chunk extensions of a chunk of `size` bytes.
    Ext { size: u64, at: Ext },
    /// The CR that ends the chunk-size line came; the LF must follow.
    SizeLf { size: u64 },
    /// In chunk-data, `left` bytes to go.
    Data { left: u64 },
    /// After chunk-data: the CR must come.
    DataCr,
    /// After chunk-data and CR: the LF must come.
    DataLf,
    /// In the trailer section: reading a field line, or the final empty line.
    Trailer,
    /// A trailer line's CR came; the LF must follow.
    TrailerLf,
    /// The body is complete.
    Done,
    /// An error was returned; it is returned again.
    Failed(Error),
}

/// Where the decoder is in `chunk-ext` (RFC 9112 section 7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// BWS after the size or a value: only `;` may follow it.
    BeforeSemi,
    /// After `;`: BWS, then a name.
    BeforeName,
    /// In `chunk-ext-name = token`.
    Name,
    /// BWS after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: BWS, then the value.
    BeforeValue,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    QuotedPair,
    /// Right after a quoted-string's closing quote.
    AfterQuoted,
}

impl ChunkedDecoder {
    /// A decoder for one body. `limits.body` (0 = no limit) caps the decoded size
    /// ([`Error::BodyTooLarge`]); `limits.fields` and `limits.field_size` cap the trailer
    /// section as they cap the head ([`Error::TooManyFields`], [`Error::FieldTooLarge`]), and
    /// `limits.field_size` also caps a chunk-size line with its extensions
    /// ([`Error::BadChunk`]; section 7.1.1: "A server ought to limit the total length of chunk
    /// extensions received in a request").
    pub fn new(limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size {
                size: 0,
                digits: false,
            },
            body_limit: limits.body,
            decoded: 0,
            max_line: limits.field_size.saturating_sub(2),
            max_fields: limits.fields,
            line_len: 0,
            line: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// Consumes framing and data from `input`, copies body bytes into `out`. Returns how many
    /// input bytes were consumed, how many body bytes written, and whether the body is
    /// complete (after the last-chunk, the trailer section and its final CRLF; `consumed`
    /// then stops exactly there so the bytes of a pipelined next request stay unconsumed).
    /// Returns with consumed == input.len() or written == out.len() or done. Call again with
    /// more input (and the unconsumed rest).
    ///
    /// Framing bytes are consumed even when `out` is full; chunk data waits for room, so pass
    /// a non-empty `out` to make progress through data. An error is final; the body bytes
    /// written by the failing call are not counted.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, Error> {
        let (mut consumed, mut written) = (0usize, 0usize);
        loop {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data { left } => {
                    let room = (input.len() - consumed).min(out.len() - written);
                    let n = usize::try_from(left).map_or(room, |left| left.min(room));
                    if n == 0 {
                        break;
                    }
                    out[written..written + n].copy_from_slice(&input[consumed..consumed + n]);
                    consumed += n;
                    written += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                }
                _ => {
                    let Some(&b) = input.get(consumed) else {
                        break;
                    };
                    consumed += 1;
                    if let Err(e) = self.byte(b) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
        Ok(Step {
            consumed,
            written,
            done: self.state == State::Done,
        })
    }

    /// The trailer fields received, in order, as (name, value) bytes (empty until done).
    /// Values are without surrounding whitespace, as in [`RawHead`](super::RawHead).
    #[allow(
        dead_code,
        reason = "API for the worker, which does not hand trailers to the app yet"
    )]
    pub fn trailers(&self) -> &[(Vec<u8>, Vec<u8>)] {
        if self.state == State::Done {
            &self.trailers
        } else {
            &[]
        }
    }

    /// Advances the framing by one byte (any state but `Data`, `Done` and `Failed`).
    fn byte(&mut self, b: u8) -> Result<(), Error> {
        self.state = match self.state {
            State::Size { size, digits } => {
                self.count_line_byte(b)?;
                if let Some(d) = hex_value(b) {
                    // Section 7.1: "a recipient MUST anticipate potentially large hexadecimal
                    // numerals and prevent parsing errors due to integer conversion overflows".
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or(Error::BadChunk)?;
                    State::Size { size, digits: true }
                } else if !digits {
                    // `chunk-size = 1*HEXDIG`: no sign, no `0x`, no whitespace before it.
                    return Err(Error::BadChunk);
                } else {
                    self.after_size_or_value(size, b)?
                }
            }
            State::Ext { size, at } => {
                self.count_line_byte(b)?;
                self.extension(size, at, b)?
            }
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(Error::BadChunk);
                }
                self.line_len = 0;
                if size == 0 {
                    State::Trailer
                } else {
                    self.decoded = self.decoded.saturating_add(size);
                    if self.body_limit > 0 && self.decoded > self.body_limit {
                        return Err(Error::BodyTooLarge);
                    }
                    State::Data { left: size }
                }
            }
            // `chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF`: exactly CRLF after data.
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size {
                size: 0,
                digits: false,
            },
            State::DataCr | State::DataLf => return Err(Error::BadChunk),
            State::Trailer => self.trailer_byte(b)?,
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(Error::BadChunk);
                }
                if self.line.is_empty() {
                    State::Done
                } else {
                    self.finish_trailer()?;
                    State::Trailer
                }
            }
            State::Data { .. } | State::Done | State::Failed(_) => self.state,
        };
        Ok(())
    }

    /// Counts one more byte of the chunk-size line against its limit.
    fn count_line_byte(&mut self, b: u8) -> Result<(), Error> {
        if b != b'\r' {
            self.line_len += 1;
            if self.line_len > self.max_line {
                return Err(Error::BadChunk);
            }
        }
        Ok(())
    }

    /// What may follow the chunk size, a token value or a closing quote: `;`, BWS (then
    /// `;`), or the CR that ends the line. BWS before the CR is not in the grammar
    /// (`5 \r\n` is refused).
    fn after_size_or_value(&self, size: u64, b: u8) -> Result<State, Error> {
        match b {
            b';' => Ok(State::Ext {
                size,
                at: Ext::BeforeName,
            }),
            b'\r' => Ok(State::SizeLf { size }),
            _ if is_ows(b) => Ok(State::Ext {
                size,
                at: Ext::BeforeSemi,
            }),
            _ => Err(Error::BadChunk),
        }
    }

    /// One byte of `chunk-ext`: `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`
    /// with `chunk-ext-name = token` and `chunk-ext-val = token / quoted-string`.
    fn extension(&self, size: u64, at: Ext, b: u8) -> Result<State, Error> {
        let next = |at| Ok(State::Ext { size, at });
        match at {
            Ext::BeforeSemi if is_ows(b) => next(Ext::BeforeSemi),
            Ext::BeforeSemi if b == b';' => next(Ext::BeforeName),
            Ext::BeforeName if is_ows(b) => next(Ext::BeforeName),
            Ext::BeforeName if is_tchar(b) => next(Ext::Name),
            Ext::Name if is_tchar(b) => next(Ext::Name),
            Ext::Name | Ext::AfterName if b == b'=' => next(Ext::BeforeValue),
            Ext::Name | Ext::AfterName if is_ows(b) => next(Ext::AfterName),
            Ext::Name | Ext::AfterName if b == b';' => next(Ext::BeforeName),
            Ext::Name if b == b'\r' => Ok(State::SizeLf { size }),
            Ext::BeforeValue if is_ows(b) => next(Ext::BeforeValue),
            Ext::BeforeValue if is_tchar(b) => next(Ext::Token),
            Ext::BeforeValue if b == b'"' => next(Ext::Quoted),
            Ext::Token if is_tchar(b) => next(Ext::Token),
            Ext::Token | Ext::AfterQuoted => self.after_size_or_value(size, b),
            // RFC 9110 section 5.6.4: `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E /
            // obs-text`, `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`.
            Ext::Quoted if b == b'"' => next(Ext::AfterQuoted),
            Ext::Quoted if b == b'\\' => next(Ext::QuotedPair),
            Ext::Quoted | Ext::QuotedPair if is_text(b) => next(Ext::Quoted),
            _ => Err(Error::BadChunk),
        }
    }

    /// One byte of a trailer line (RFC 9112 section 7.1.2: `trailer-section = *( field-line
    /// CRLF )`), under the head's limits.
    fn trailer_byte(&mut self, b: u8) -> Result<State, Error> {
        if self.line.is_empty() && b != b'\r' && self.trailers.len() == self.max_fields {
            return Err(Error::TooManyFields);
        }
        match b {
            b'\r' => Ok(State::TrailerLf),
            b'\n' => Err(Error::BadChunk),
            _ if self.line.len() == self.max_line => Err(Error::FieldTooLarge),
            _ => {
                self.line.push(b);
                Ok(State::Trailer)
            }
        }
    }

    /// Checks and keeps the trailer line just read.
    ///
    /// RFC 9110 section 6.5.1: "Many fields cannot be processed outside the header section
    /// because their evaluation is necessary prior to receiving the content, such as those
    /// that describe message framing, routing, [...]". Content-Length and Transfer-Encoding
    /// (framing) and Host (routing) are refused outright (policy, as Gunicorn): an app or
    /// proxy that merges trailers into the head must never see them change there.
    fn finish_trailer(&mut self) -> Result<(), Error> {
        let (name, value) = field_line(&self.line)?;
        let name = &self.line[name];
        if [&b"content-length"[..], b"transfer-encoding", b"host"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f))
        {
            return Err(Error::ForbiddenTrailer);
        }
        let field = (name.to_vec(), self.line[value].to_vec());
        self.trailers.push(field);
        self.line.clear();
        Ok(())
    }
}

/// The value of a HEXDIG.
fn hex_value(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

/// HTAB, SP, VCHAR or obs-text: what a quoted-string may hold (besides `"` and `\`).
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests;
