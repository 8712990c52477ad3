//! Request-target and Host grammar tables.

use super::*;

use TargetForm::{Absolute, Asterisk, Authority, Origin};

#[test]
fn forms_by_method() {
    let ok: &[(&str, &str, TargetForm)] = &[
        ("GET", "/", Origin),
        ("GET", "/a/b?c=d&e=%20f", Origin),
        ("GET", "///keeping_slashes", Origin),
        ("GET", "/?", Origin),
        ("GET", "/a?b?c/d", Origin),
        ("GET", "/:@!$&'()*+,;=-._~", Origin),
        ("POST", "/p?q=:@/?", Origin),
        ("OPTIONS", "*", Asterisk),
        ("OPTIONS", "/", Origin),
        ("GET", "http://example.com/foo?q=1", Absolute),
        ("GET", "https://example.com", Absolute),
        ("GET", "HTTP://EXAMPLE.COM/", Absolute),
        ("GET", "http://example.com?x", Absolute),
        ("GET", "http://[::1]:8080/foo", Absolute),
        ("GET", "http://[v1.fe]/", Absolute),
        ("GET", "http://1.2.3.4:/", Absolute),
        ("POST", "ftp://user:pw@host/x", Absolute),
        ("DELETE", "x-y.z+w://h/", Absolute),
        ("OPTIONS", "http://example.com", Absolute),
        ("CONNECT", "example.com:443", Authority),
        ("CONNECT", "[::1]:443", Authority),
        ("CONNECT", "1.2.3.4:1", Authority),
        ("CONNECT", "h:65535", Authority),
    ];
    for (method, target, form) in ok {
        assert_eq!(
            classify(method.as_bytes(), target.as_bytes()),
            Ok(*form),
            "{method} {target}"
        );
    }

    let bad: &[(&str, &str)] = &[
        // asterisk-form only with OPTIONS, authority-form only with CONNECT (case-sensitive)
        ("GET", "*"),
        ("options", "*"),
        ("OPTIONS", "**"),
        ("GET", "example.com:443"),
        ("connect", "example.com:443"),
        ("POST", "example.com"),
        // CONNECT only with authority-form, host and a port 1..=65535
        ("CONNECT", "/"),
        ("CONNECT", "*"),
        ("CONNECT", "http://example.com:443/"),
        ("CONNECT", "example.com"),
        ("CONNECT", "example.com:"),
        ("CONNECT", ":443"),
        ("CONNECT", "example.com:0"),
        ("CONNECT", "example.com:65536"),
        ("CONNECT", "example.com:000443"),
        ("CONNECT", "user@example.com:443"),
        ("CONNECT", "[::1:443"),
        // relative and empty-ish targets
        ("GET", "foo/bar"),
        ("GET", "?x"),
        ("GET", "#x"),
        // bytes RFC 3986 does not allow, unencoded
        ("GET", "/a#frag"),
        ("GET", "/with_\"quotes\""),
        ("GET", "/a<b>"),
        ("GET", "/a`b"),
        ("GET", "/\u{e0}"),
        ("GET", "/a\x01"),
        ("GET", "/a\x7f"),
        ("GET", "/a%2"),
        ("GET", "/a%zz"),
        ("GET", "/a%"),
        // absolute-form with a bad authority, userinfo or fragment
        ("PUT", "s://]ufd/:"),
        ("GET", "http:///foo"),
        ("GET", "http://"),
        ("GET", "http://user:pass@example.com/"),
        ("GET", "https://@example.com/"),
        ("GET", "http://exa mple.com/"),
        ("GET", "http://example.com:80x/"),
        ("GET", "http://[::g]/"),
        ("GET", "http://[::1/"),
        ("GET", "http://example.com/#f"),
        ("GET", "http:/example.com/"),
        ("GET", "1http://example.com/"),
        ("GET", "ht_tp://example.com/"),
        ("GET", "http://a@b@c/"),
    ];
    // What browsers send unencoded is accepted (target.rs, `is_browser_byte`); a backtick
    // only in the query, as the `http` crate's URI parser has it.
    for target in [
        "/a\\b",
        "/a{b}",
        "/a|b",
        "/a^b",
        "/a?b[]=1",
        "/a?q=a|b^c",
        "/a?x=`1`",
        "/a[0]",
    ] {
        assert_eq!(
            classify(b"GET", target.as_bytes()),
            Ok(TargetForm::Origin),
            "{target}"
        );
    }
    for (method, target) in bad {
        assert_eq!(
            classify(method.as_bytes(), target.as_bytes()),
            Err(Error::BadTarget),
            "{method} {target}"
        );
    }
}

#[test]
fn host_values() {
    let ok: &[(&str, &str, Option<&str>)] = &[
        ("example.com", "example.com", None),
        ("example.com:8080", "example.com", Some("8080")),
        ("example.com:", "example.com", Some("")),
        ("0.0.0.0=5000", "0.0.0.0=5000", None),
        ("1.2.3.4:5", "1.2.3.4", Some("5")),
        ("[::1]", "[::1]", None),
        ("[::1]:443", "[::1]", Some("443")),
        ("[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]", None),
        ("[v7.a:b]", "[v7.a:b]", None),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
        ("a%20b", "a%20b", None),
        ("", "", None),
    ];
    for (value, host, port) in ok {
        let got = host_and_port(value.as_bytes());
        assert_eq!(
            got,
            Some((host.as_bytes(), port.map(str::as_bytes))),
            "{value}"
        );
    }
    for bad in [
        "exa mple.com",
        "example.com:80:90",
        "example.com:8o",
        "user@example.com",
        "[::1",
        "::1",
        "[::1]x",
        "[::1]:x",
        "[127.0.0.1]",
        "[v.x]",
        "[v1.]",
        "[fe80::1%25eth0]",
        "a/b",
        "a?b",
        "a#b",
        "a%2",
        "caf\u{e9}",
        "a\tb",
    ] {
        assert_eq!(host_and_port(bad.as_bytes()), None, "{bad}");
    }
}

#[test]
fn the_host_of_an_absolute_target() {
    for (target, host) in [
        ("http://good.example/p", "good.example"),
        ("http://good.example", "good.example"),
        ("http://good.example:8080?q", "good.example:8080"),
        ("HTTPS://[::1]:8443/p", "[::1]:8443"),
        ("foo://u:p@a.example:1/p", "a.example:1"),
        ("foo:///p", ""),
    ] {
        assert_eq!(
            absolute_host(target.as_bytes()),
            host.as_bytes(),
            "{target}"
        );
    }
}
