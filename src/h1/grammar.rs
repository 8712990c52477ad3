//! The byte classes and small rules HTTP/1.1 is built from (RFC 9110 section 5.6, RFC 3986
//! section 2), and the field line that the request head and the chunked trailer section share.
//!
//! Pure predicates over bytes: no allocation, no state, nothing here decides a status code
//! (callers return an [`Error`] and [`Error::status`] maps it).

use std::ops::Range;

use super::Error;

/// RFC 9110 section 5.6.2: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "."
/// / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// RFC 9110 section 5.6.2: `token = 1*tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// RFC 9110 section 5.6.3: `OWS = *( SP / HTAB )`.
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A byte allowed in a field value: `field-vchar = VCHAR / obs-text` and the SP / HTAB between
/// them (RFC 9110 section 5.5). obs-text (0x80-0xFF) is allowed: RFC 9110 keeps it for
/// legacy values. Everything else is refused, which is stricter than the RFC in one place:
/// "Field values containing other CTL characters are also invalid; however, recipients MAY
/// retain such characters for the sake of robustness". We do not retain them (policy, as
/// Gunicorn): no app needs a BEL or a DEL in a header, and a downstream parser may choke.
/// CR, LF and NUL are refused as the same section requires: "a recipient of CR, LF, or NUL
/// within a field value MUST either reject the message or replace each of those characters
/// with SP".
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// The part of `s` inside leading and trailing OWS, as a range of `s`.
pub(crate) fn trim_ows(s: &[u8]) -> Range<usize> {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    start..end
}

/// Splits a field line (without its CRLF) into its name and its value, as ranges of `line`;
/// the value without surrounding whitespace.
///
/// RFC 9112 section 5: `field-line = field-name ":" OWS field-value OWS`, where
/// `field-name = token`. So a line that starts with whitespace (an obs-fold continuation,
/// refused as RFC 9112 section 5.2 allows: "MUST either reject the message by sending a 400
/// (Bad Request) ... or replace each received obs-fold with one or more SP octets"), whitespace
/// before the colon (section 5.1: "A server MUST reject, with a response status code of 400
/// (Bad Request), any received request message that contains whitespace between a header
/// field name and colon"), or any other non-token byte in the name is
/// [`Error::Malformed`], as is a value byte that [`is_field_value_byte`] refuses.
pub(crate) fn field_line(line: &[u8]) -> Result<(Range<usize>, Range<usize>), Error> {
    let colon = line
        .iter()
        .position(|&b| !is_tchar(b))
        .filter(|&i| i > 0 && line[i] == b':')
        .ok_or(Error::Malformed)?;
    let value = &line[colon + 1..];
    if !value.iter().all(|&b| is_field_value_byte(b)) {
        return Err(Error::Malformed);
    }
    let trimmed = trim_ows(value);
    Ok((0..colon, colon + 1 + trimmed.start..colon + 1 + trimmed.end))
}

/// The elements of a comma-separated list (RFC 9110 section 5.6.1: `#element`), each without
/// surrounding OWS. Empty elements are skipped: "a recipient MUST parse and ignore a
/// reasonable number of empty list elements". Commas inside a quoted-string do not split.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let (mut quoted, mut escaped) = (false, false);
            let end = rest
                .iter()
                .position(|&b| {
                    if escaped {
                        escaped = false;
                    } else if quoted && b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        quoted = !quoted;
                    } else if b == b',' && !quoted {
                        return true;
                    }
                    false
                })
                .unwrap_or(rest.len());
            let element = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or(&[]);
            let element = &element[trim_ows(element)];
            if !element.is_empty() {
                return Some(element);
            }
        }
    })
}

/// RFC 9110 section 5.6.4: `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`, with
/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text` and
/// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`. Whether `s` is exactly one.
pub(crate) fn is_quoted_string(s: &[u8]) -> bool {
    let [b'"', inner @ .., b'"'] = s else {
        return false;
    };
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(&q) if is_field_value_byte(q) => {}
                _ => return false,
            },
            b'"' => return false,
            _ if is_field_value_byte(b) => {}
            _ => return false,
        }
    }
    true
}

/// Whether `s` is `token *( OWS ";" OWS name "=" value )`, the shape of a transfer-coding
/// with its parameters (RFC 9112 section 7: `transfer-coding = token *( OWS ";" OWS
/// transfer-parameter )`, `transfer-parameter = token BWS "=" BWS ( token / quoted-string )`).
/// Returns the leading token and whether parameters follow it.
pub(crate) fn token_with_params(s: &[u8]) -> Option<(&[u8], bool)> {
    let name_end = s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len());
    let (name, mut rest) = s.split_at(name_end);
    if name.is_empty() {
        return None;
    }
    let has_params = !rest.is_empty();
    while !rest.is_empty() {
        // OWS ";" OWS token BWS "=" BWS ( token / quoted-string )
        rest = &rest[rest.iter().position(|&b| !is_ows(b))?..];
        rest = rest.strip_prefix(b";")?;
        rest = &rest[rest.iter().position(|&b| !is_ows(b))?..];
        let key_end = rest.iter().position(|&b| !is_tchar(b))?;
        if key_end == 0 {
            return None;
        }
        rest = &rest[key_end..];
        rest = &rest[rest.iter().position(|&b| !is_ows(b))?..];
        rest = rest.strip_prefix(b"=")?;
        rest = &rest[rest.iter().position(|&b| !is_ows(b))?..];
        let value_end = if rest[0] == b'"' {
            quoted_string_len(rest)?
        } else {
            rest.iter()
                .position(|&b| !is_tchar(b))
                .unwrap_or(rest.len())
        };
        if value_end == 0 {
            return None;
        }
        rest = &rest[value_end..];
    }
    Some((name, has_params))
}

/// The length of the quoted-string that `s` starts with, if it starts with a valid one.
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return is_quoted_string(&s[..=i]).then_some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// RFC 3986 section 2.3: `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 section 2.2: `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / ","
/// / ";" / "="`.
pub(crate) fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether every byte of `s` is in `allowed` or is part of a `pct-encoded = "%" HEXDIG
/// HEXDIG` triplet (RFC 3986 section 2.1).
pub(crate) fn all_or_pct(s: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            match s.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if allowed(s[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(v: &str) -> Vec<&[u8]> {
        list_elements(v.as_bytes()).collect()
    }

    #[test]
    fn lists_split_on_commas_outside_quotes() {
        assert_eq!(elements(" a , b,,c ,"), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(elements(""), Vec::<&[u8]>::new());
        assert_eq!(elements(" , ,"), Vec::<&[u8]>::new());
        assert_eq!(
            elements(r#"x;q="a,b", y"#),
            vec![&br#"x;q="a,b""#[..], b"y"]
        );
        assert_eq!(elements(r#"x;q="a\",b", y"#).len(), 2);
    }

    #[test]
    fn field_lines() {
        let line = b"Name:\t v a l \t";
        let (n, v) = field_line(line).unwrap();
        assert_eq!(&line[n], b"Name");
        assert_eq!(&line[v], b"v a l");
        let (_, v) = field_line(b"Empty:").unwrap();
        assert!(v.is_empty());
        for bad in [
            &b"Name : v"[..],
            b" Name: v",
            b"\tName: v",
            b": v",
            b"Na\x00me: v",
            b"Name v",
            b"Name: a\rb",
            b"Name: a\nb",
            b"Name: a\x00b",
            b"Name: a\x07b",
            b"Name: a\x7fb",
            b"N\xc3\xa4me: v",
        ] {
            assert_eq!(field_line(bad), Err(Error::Malformed), "{bad:?}");
        }
        assert!(field_line(b"X: caf\xc3\xa9").is_ok());
    }

    #[test]
    fn quoted_strings() {
        assert!(is_quoted_string(br#""""#));
        assert!(is_quoted_string(br#""a b\"c""#));
        assert!(!is_quoted_string(br#"""#));
        assert!(!is_quoted_string(br#""a"b""#));
        assert!(!is_quoted_string(b"\"a\x01\""));
        assert!(!is_quoted_string(br#""a\""#));
    }

    #[test]
    fn codings_with_parameters() {
        assert_eq!(
            token_with_params(b"chunked"),
            Some((&b"chunked"[..], false))
        );
        assert_eq!(token_with_params(b"gzip ; q=1"), Some((&b"gzip"[..], true)));
        assert_eq!(
            token_with_params(br#"x;a="b;c" ;d=e"#),
            Some((&b"x"[..], true))
        );
        for bad in [
            &b""[..],
            b" chunked",
            b"chunked ",
            b"chunked;",
            b"chunked;a",
            b"chunked;a=",
            b"chunked;=b",
            b"chunked x",
            b"chunked;a=\"b",
            b"\tchunked",
        ] {
            assert_eq!(token_with_params(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percent_encoding() {
        assert!(all_or_pct(b"a%20b%7e", is_unreserved));
        assert!(!all_or_pct(b"a%2", is_unreserved));
        assert!(!all_or_pct(b"a%zz", is_unreserved));
        assert!(!all_or_pct(b"a b", is_unreserved));
    }
}
