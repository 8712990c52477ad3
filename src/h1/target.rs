//! The request-target and the `Host` field: which of the four forms of RFC 9112 section 3.2 a
//! target takes, and whether it and a `Host` value follow RFC 3986's grammar.
//!
//! Pure checks over bytes. Strict by choice: RFC 9112 section 3 says "Recipients of an
//! invalid request-line SHOULD respond with either a 400 (Bad Request) error or a 301 (Moved
//! Permanently) redirect with the request-target properly encoded", and a server that passes
//! an unencoded `"`, `<`, `#` or non-ASCII byte to the app invites it to mis-split the URL.
//! Scope note: browsers leave `[ ] { } | ^` unencoded in some queries (WHATWG URL); they are
//! refused here, as RFC 3986 says. Loosen [`is_query_byte`] if a real client needs them.

use std::net::Ipv6Addr;

use super::Error;
use super::grammar::{all_or_pct, is_sub_delim, is_unreserved};

/// The form of a request-target (RFC 9112 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetForm {
    /// `absolute-path [ "?" query ]`: the authority comes from `Host`.
    Origin,
    /// `scheme "://" authority path [ "?" query ]`: the authority is in the target.
    Absolute,
    /// `uri-host ":" port`, for CONNECT (which `parse_head` then refuses with 501).
    Authority,
    /// `*`, for a server-wide OPTIONS.
    Asterisk,
}

/// Which form `target` takes, given the request's method, or [`Error::BadTarget`].
///
/// RFC 9112 section 3.2.3: "The authority-form of request-target is only used for CONNECT
/// requests"; RFC 9110 section 9.3.6: "CONNECT uses a special form of request target, unique
/// to this method, consisting of only the host and port number of the tunnel destination", so
/// CONNECT with any other form is refused too. Section 3.2.4: "The asterisk-form of
/// request-target is only used for a server-wide OPTIONS request". Section 3.2.2: "A server
/// MUST accept the absolute-form in requests", whatever the method. Method names are
/// case-sensitive (RFC 9110 section 9.1), so `connect` is not CONNECT.
pub(crate) fn classify(method: &[u8], target: &[u8]) -> Result<TargetForm, Error> {
    let connect = method == b"CONNECT";
    let form = if target == b"*" {
        (method == b"OPTIONS").then_some(TargetForm::Asterisk)
    } else if target.first() == Some(&b'/') {
        (!connect && is_path_and_query(target)).then_some(TargetForm::Origin)
    } else if let Some(scheme_len) = absolute_scheme(target) {
        (!connect && is_absolute(target, scheme_len)).then_some(TargetForm::Absolute)
    } else if connect {
        is_connect_authority(target).then_some(TargetForm::Authority)
    } else {
        None
    };
    form.ok_or(Error::BadTarget)
}

/// RFC 3986 section 3.3: `pchar = unreserved / pct-encoded / sub-delims / ":" / "@"`.
fn is_pchar_byte(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@'
}

/// RFC 3986 section 3.4: `query = *( pchar / "/" / "?" )`, plus what browsers leave
/// unencoded in queries (see [`is_browser_byte`]) and the backtick.
fn is_query_byte(b: u8) -> bool {
    is_pchar_byte(b) || b == b'/' || b == b'?' || is_browser_byte(b) || b == b'`'
}

/// Bytes RFC 3986 does not allow in a path or query but that browsers send unencoded
/// (`[ ] { } | ^ \`, as in `?ids[]=1` or `?q=a|b`; the WHATWG URL standard's path and query
/// percent-encode sets leave them alone). Refusing them would break real clients for no
/// safety gain: they are printable, never whitespace or CTLs, and change no framing; nginx
/// and Gunicorn accept them, and the `http` crate's URI parser does too. The conformance
/// kit allows either answer for them (tag `lenient-target`).
fn is_browser_byte(b: u8) -> bool {
    matches!(b, b'[' | b']' | b'{' | b'}' | b'|' | b'^' | b'\\')
}

/// `path-abempty [ "?" query ]` (the origin-form when it starts with `/`; RFC 9112 section
/// 3.2.1: `origin-form = absolute-path [ "?" query ]`). No fragment: `#` is not a query byte,
/// and RFC 9112 leaves the fragment out of every form.
fn is_path_and_query(s: &[u8]) -> bool {
    let (path, query) = match s.iter().position(|&b| b == b'?') {
        Some(q) => (&s[..q], &s[q + 1..]),
        None => (s, &b""[..]),
    };
    let path_ok = path.is_empty() || path[0] == b'/';
    path_ok
        && all_or_pct(path, |b| {
            is_pchar_byte(b) || b == b'/' || is_browser_byte(b)
        })
        && all_or_pct(query, is_query_byte)
}

/// If `s` starts with `scheme "://"`, the length of the scheme. RFC 3986 section 3.1:
/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`. Only the hierarchical `//` form is
/// taken as absolute-form: a target URI an origin server can answer has an authority, and
/// without the `//` requirement `example.com:443` would read as scheme `example.com`.
fn absolute_scheme(s: &[u8]) -> Option<usize> {
    let colon = s.iter().position(|&b| b == b':')?;
    let scheme = &s[..colon];
    let well_formed = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (well_formed && s[colon..].starts_with(b"://")).then_some(colon)
}

/// `scheme "://" authority path-abempty [ "?" query ]` (RFC 3986 section 3), given the
/// scheme's length. For `http` and `https`, RFC 9110 section 4.2.1: "A sender MUST NOT
/// generate an "http" URI with an empty host identifier. A recipient that processes such a URI
/// reference MUST reject it as invalid", and section 4.2.4: "a recipient SHOULD parse for
/// userinfo and treat its presence as an error".
fn is_absolute(s: &[u8], scheme_len: usize) -> bool {
    let scheme = &s[..scheme_len];
    let http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    let rest = &s[scheme_len + 3..];
    let authority_end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    let host_port = match authority.iter().position(|&b| b == b'@') {
        Some(_) if http => return false,
        Some(at) => {
            let userinfo = &authority[..at];
            if !all_or_pct(userinfo, |b| {
                is_unreserved(b) || is_sub_delim(b) || b == b':'
            }) {
                return false;
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    let Some((host, _port)) = host_and_port(host_port) else {
        return false;
    };
    if http && host.is_empty() {
        return false;
    }
    is_path_and_query(path_and_query)
}

/// The host information of an absolute-form target (`uri-host [ ":" port ]`, RFC 3986
/// section 3.2, without any userinfo), for a target [`classify`] found to be absolute-form.
pub(crate) fn absolute_host(target: &[u8]) -> &[u8] {
    let Some(scheme_len) = absolute_scheme(target) else {
        return b"";
    };
    let rest = &target[scheme_len + 3..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.iter().position(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    }
}

/// RFC 9112 section 3.2.3: `authority-form = uri-host ":" port`, with a host and a usable
/// port: RFC 9110 section 9.3.6, "A server MUST reject a CONNECT request that targets an
/// empty or invalid port number, typically by responding with a 400 (Bad Request) status code".
fn is_connect_authority(s: &[u8]) -> bool {
    match host_and_port(s) {
        Some((host, Some(port))) if !host.is_empty() && (1..=5).contains(&port.len()) => {
            let number = port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
            (1..=65535).contains(&number)
        }
        _ => false,
    }
}

/// Splits `uri-host [ ":" port ]` (RFC 3986 section 3.2.2 and 3.2.3) if `s` is one:
/// `host = IP-literal / IPv4address / reg-name`, `port = *DIGIT`. An IPv4address is also a
/// reg-name, so it needs no rule of its own. The host may be empty (an empty reg-name); the
/// caller decides whether that is allowed.
pub(crate) fn host_and_port(s: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (host, rest) = if s.first() == Some(&b'[') {
        let close = s.iter().position(|&b| b == b']')?;
        if !is_ip_literal_inner(&s[1..close]) {
            return None;
        }
        s.split_at(close + 1)
    } else {
        let end = s.iter().position(|&b| b == b':').unwrap_or(s.len());
        let host = &s[..end];
        if !all_or_pct(host, |b| is_unreserved(b) || is_sub_delim(b)) {
            return None;
        }
        s.split_at(end)
    };
    match rest {
        [] => Some((host, None)),
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Some((host, Some(port))),
        _ => None,
    }
}

/// RFC 3986 section 3.2.2: `IP-literal = "[" ( IPv6address / IPvFuture ) "]"`, the part
/// between the brackets; `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ip_literal_inner(s: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = s {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(s).is_ok_and(|text| text.parse::<Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests;
