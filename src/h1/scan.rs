//! When a head that is still arriving is worth parsing.
//!
//! [`parse_head`] reads a head from its first byte, so calling it after every read would
//! cost a client that trickles a large head a parse of everything received so far per
//! packet: quadratic work, paid by the worker. [`HeadScan`] follows the head as it grows
//! and looks at each new byte once, to find line ends; it calls the parser only when the
//! answer can have changed.

use super::{Error, Limits, Parsed, parse_head};

/// Follows one head as it arrives (see the module docs). The parser runs when:
/// - the request line has ended (and the bytes read so far do not complete the head): a
///   bad one is refused as soon as it is here;
/// - an empty line has ended: the head may be complete (or it was an empty line before the
///   request line, which the parser skips or refuses);
/// - a line, or the line being received, is longer than any line may be, or there are
///   more field lines than allowed: the parser names the limit that was broken.
///
/// A field line that breaks the grammar is thus refused when the head ends (or a limit is
/// crossed), not when it arrives; the wait is bounded by the limits and the header timeout.
/// The work per read is a scan of the new bytes, plus one parse of the whole head at its end.
#[derive(Debug, Default)]
pub struct HeadScan {
    /// Bytes of the buffer already searched for line ends.
    scanned: usize,
    /// Where the line being received starts.
    line_start: usize,
    /// The request line has ended.
    request_line_seen: bool,
    /// ... and the parser has not seen it yet.
    request_line_unchecked: bool,
    /// Field lines ended since the request line.
    fields: usize,
    /// Times the parser ran, for the tests that pin how rarely it does.
    #[cfg(test)]
    parses: usize,
}

impl HeadScan {
    /// Starts over, for a head at the start of a new buffer.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Looks at the bytes added to `buf` since the last call (`buf` holds the head from its
    /// first byte, perhaps followed by body bytes) and says whether the head is complete
    /// (`Ok(Some)`), broken (`Err`, final), or still arriving (`Ok(None)`).
    pub fn advance(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, Error> {
        let longest_line = limits.request_line.max(limits.field_size) + 2;
        while let Some(i) = buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + i;
            let line = &buf[self.line_start..end];
            self.scanned = end + 1;
            self.line_start = end + 1;
            let empty = line.is_empty() || line == b"\r";
            if !empty && self.request_line_seen {
                self.fields += 1;
            } else if !empty {
                self.request_line_seen = true;
                self.request_line_unchecked = true;
            }
            if (empty || line.len() > longest_line || self.fields > limits.fields)
                && let Some(parsed) = self.parse(buf, limits)?
            {
                return Ok(Some(parsed));
            }
        }
        self.scanned = buf.len();
        if self.request_line_unchecked
            || buf.len() - self.line_start > longest_line
            || buf.len() >= limits.max_head_len()
        {
            return self.parse(buf, limits);
        }
        Ok(None)
    }

    fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, Error> {
        self.request_line_unchecked = false;
        #[cfg(test)]
        {
            self.parses += 1;
        }
        parse_head(buf, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            request_line: 8190,
            fields: 100,
            field_size: 8190,
            body: 0,
        }
    }

    /// A head of `n` 8,000-byte field lines after a request line, and its end.
    fn large_head(n: usize) -> Vec<u8> {
        let mut head = b"GET /p HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..n {
            head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(8000)).as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// Feeds `head` in pieces of `step` bytes; the result and the parses it took.
    fn trickle(
        head: &[u8],
        step: usize,
        limits: &Limits,
    ) -> (Result<Option<Parsed>, Error>, usize) {
        let mut scan = HeadScan::default();
        let mut end = 0;
        loop {
            end = (end + step).min(head.len());
            let r = scan.advance(&head[..end], limits);
            if !matches!(r, Ok(None)) || end == head.len() {
                return (r, scan.parses);
            }
        }
    }

    #[test]
    fn a_head_trickled_byte_by_byte_is_parsed_at_its_request_line_and_its_end() {
        let head = large_head(97);
        let (r, parses) = trickle(&head, 1, &limits());
        let parsed = r.unwrap().unwrap();
        assert_eq!(parsed.head_len, head.len());
        assert_eq!(parses, 2);
    }

    #[test]
    fn a_head_sent_a_line_at_a_time_is_parsed_twice_not_once_a_line() {
        let head = large_head(97);
        let (r, parses) = trickle(&head, 8_012, &limits());
        assert!(r.unwrap().is_some());
        assert_eq!(parses, 2);
    }

    #[test]
    fn a_whole_head_with_its_body_behind_it_is_one_parse() {
        let mut buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n".to_vec();
        let head_len = buf.len();
        buf.extend_from_slice(b"a\nb\n");
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.advance(&buf, &limits()).unwrap().unwrap().head_len,
            head_len
        );
        assert_eq!(scan.parses, 1);
    }

    #[test]
    fn a_bad_request_line_is_refused_when_it_ends() {
        let mut scan = HeadScan::default();
        assert!(matches!(
            scan.advance(b"GET / HTTP/1.1", &limits()),
            Ok(None)
        ));
        assert_eq!(scan.parses, 0);
        assert_eq!(
            scan.advance(b"GET / HTTP/1.1 x\r\n", &limits()).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn a_bad_field_line_is_refused_when_the_head_ends() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\nX: y\r\n\r\n";
        let (r, parses) = trickle(head, 1, &limits());
        assert_eq!(r.err(), Some(Error::Malformed));
        assert_eq!(parses, 2);
    }

    #[test]
    fn a_line_too_long_is_refused_before_it_ends() {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
        head.extend(std::iter::repeat_n(b'v', 9000));
        let (r, _) = trickle(&head, 100, &limits());
        assert_eq!(r.err(), Some(Error::FieldTooLarge));
        let (r, _) = trickle(&[b'G'; 9000], 100, &limits());
        assert_eq!(r.err(), Some(Error::RequestLineTooLong));
    }

    #[test]
    fn one_field_line_too_many_is_refused_before_the_head_ends() {
        let limits = Limits {
            fields: 3,
            ..limits()
        };
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
        let (r, parses) = trickle(head, 1, &limits);
        assert_eq!(r.err(), Some(Error::TooManyFields));
        assert_eq!(parses, 2);
    }

    #[test]
    fn empty_lines_before_the_request_line_are_skipped_or_refused_as_the_parser_says() {
        let (r, _) = trickle(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, &limits());
        assert_eq!(r.unwrap().unwrap().head_len, 31);
        let (r, _) = trickle(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, &limits());
        assert_eq!(r.err(), Some(Error::Malformed));
    }

    #[test]
    fn after_reset_a_new_head_is_followed_from_its_start() {
        let mut scan = HeadScan::default();
        assert!(
            scan.advance(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &limits())
                .unwrap()
                .is_some()
        );
        scan.reset();
        assert!(matches!(
            scan.advance(b"GET /b HTTP/1.1\r\n", &limits()),
            Ok(None)
        ));
        let parsed = scan
            .advance(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n", &limits())
            .unwrap()
            .unwrap();
        assert_eq!(parsed.head_len, 28);
    }
}
