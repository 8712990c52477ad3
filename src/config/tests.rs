//! Settings parsing: precedence, platform aliases, errors and the generated docs.

use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

fn config(args: &[&str], env: &'static [(&'static str, &'static str)]) -> Result<Config, String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match parse("runicorn", &args, &env_of(env)) {
        Ok(Command::Serve(c)) => Ok(*c),
        Ok(other) => panic!("expected Serve, got {other:?}"),
        Err(e) => Err(e.0),
    }
}

#[test]
fn defaults_without_platform() {
    let c = config(&[], &[]).unwrap();
    assert_eq!(
        c.binds,
        vec![BindAddr::Tcp("127.0.0.1:8080".parse().unwrap())]
    );
    assert_eq!(c.bind_fallback, None);
    assert_eq!(c.workers, settings::available_cpus());
    assert_eq!(c.timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.graceful_timeout, Duration::from_secs(25));
    assert_eq!(c.backlog, 1024);
    assert_eq!(c.keepalive, 0);
    assert_eq!(c.metrics_interval, Some(Duration::from_secs(20)));
    assert!(!c.access_log);
    assert_eq!(
        c.limits,
        Limits {
            request_line: 8190,
            fields: 100,
            field_size: 8190,
            body: 104_857_600
        }
    );
}

#[test]
fn port_and_web_concurrency() {
    let c = config(&[], &[("PORT", "5000"), ("WEB_CONCURRENCY", "3")]).unwrap();
    assert_eq!(c.binds, vec![BindAddr::Tcp("[::]:5000".parse().unwrap())]);
    assert_eq!(
        c.bind_fallback,
        Some(BindAddr::Tcp("0.0.0.0:5000".parse().unwrap()))
    );
    assert_eq!(c.workers, 3);
}

#[test]
fn flag_beats_env_beats_default() {
    let env = &[
        ("WEB_CONCURRENCY", "3"),
        ("RUNICORN_WORKERS", "4"),
        ("RUNICORN_TIMEOUT", "7"),
    ];
    let c = config(&["--workers", "5"], env).unwrap();
    assert_eq!(c.workers, 5);
    assert_eq!(c.timeout, Some(Duration::from_secs(7)));
    let c = config(&[], env).unwrap();
    assert_eq!(c.workers, 4, "RUNICORN_WORKERS wins over WEB_CONCURRENCY");
    let c = config(&["--timeout=0"], env).unwrap();
    assert_eq!(c.timeout, None);
}

#[test]
fn binds_repeat_and_split() {
    let c = config(
        &[
            "--bind",
            "127.0.0.1:1",
            "--bind",
            "[::1]:2",
            "--bind",
            "unix:/tmp/s",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.binds.len(), 3);
    assert_eq!(c.binds[2], BindAddr::Unix("/tmp/s".into()));
    let c = config(
        &[],
        &[("RUNICORN_BIND", "localhost:3, 0.0.0.0:4"), ("PORT", "9")],
    )
    .unwrap();
    assert_eq!(c.binds.len(), 2);
    assert_eq!(c.bind_fallback, None, "an explicit bind has no fallback");
    assert_eq!(c.binds[0].to_string(), "127.0.0.1:3");
}

#[test]
fn switches() {
    assert!(config(&["--access-log"], &[]).unwrap().access_log);
    assert!(
        config(&[], &[("RUNICORN_ACCESS_LOG", "yes")])
            .unwrap()
            .access_log
    );
    assert!(
        !config(&[], &[("RUNICORN_ACCESS_LOG", "0")])
            .unwrap()
            .access_log
    );
}

#[test]
fn bad_values_name_the_setting_and_what_it_accepts() {
    type Env = &'static [(&'static str, &'static str)];
    let cases: &[(&[&str], Env, &str)] = &[
        (
            &["--workers", "zero"],
            &[],
            "workers (--workers): invalid value 'zero': accepts a whole number from 1 to 1024",
        ),
        (
            &[],
            &[("WEB_CONCURRENCY", "0")],
            "workers (WEB_CONCURRENCY): invalid value '0'",
        ),
        (
            &["--timeout", "-1"],
            &[],
            "timeout (--timeout): invalid value '-1': accepts a whole number of seconds",
        ),
        (
            &["--bind", "nowhere"],
            &[],
            "bind (--bind): invalid value 'nowhere': accepts HOST:PORT",
        ),
        (
            &[],
            &[("PORT", "http")],
            "bind (PORT): invalid value 'http'",
        ),
        (
            &["--log-level", "loud"],
            &[],
            "log_level (--log-level): invalid value 'loud': accepts trace, debug",
        ),
        (
            &["--keepalive", "5s"],
            &[],
            "keepalive (--keepalive): invalid value '5s': accepts a whole number of seconds",
        ),
        (&["--nope"], &[], "unknown argument '--nope'"),
        (&["--timeout"], &[], "timeout: --timeout needs a value"),
    ];
    for (args, env, want) in cases {
        let err = config(args, env).unwrap_err();
        assert!(
            err.starts_with(want),
            "{args:?} {env:?}: got {err:?}, want {want:?}"
        );
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
}

#[test]
fn help_lists_every_setting() {
    let Ok(Command::Help(text)) = parse("myapp", &["--help".into()], &env_of(&[])) else {
        panic!("--help should print help");
    };
    for s in SETTINGS {
        assert!(text.contains(s.flag), "{} missing from --help", s.flag);
        assert!(
            text.contains(&s.env_var()),
            "{} missing from --help",
            s.env_var()
        );
    }
    assert!(text.contains("WEB_CONCURRENCY"));
    assert!(text.starts_with("myapp:"));
}

/// `docs/settings.md` is generated; regenerate with `RUNICORN_BLESS=1 cargo test settings_doc`.
#[test]
fn settings_doc_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/settings.md");
    let want = settings_markdown();
    if std::env::var_os("RUNICORN_BLESS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/settings.md is stale: run `RUNICORN_BLESS=1 cargo test settings_doc` and commit it"
    );
}

#[test]
fn statsd_settings() {
    let c = config(&[], &[]).unwrap();
    assert_eq!(c.statsd_host, None);
    assert_eq!(c.sample_interval(), Some(Duration::from_secs(20)));
    let udp = |host: &str, port| StatsdAddr::Udp {
        host: host.into(),
        port,
    };
    for (v, want) in [
        ("127.0.0.1:9125", udp("127.0.0.1", 9125)),
        ("statsd.internal:8126", udp("statsd.internal", 8126)),
        ("localhost", udp("localhost", 8125)),
        ("[::1]:9000", udp("::1", 9000)),
        ("[::1]", udp("::1", 8125)),
        (
            "unix:/var/run/dsd.socket",
            StatsdAddr::Unix("/var/run/dsd.socket".into()),
        ),
        (
            "unix:///var/run/dsd.socket",
            StatsdAddr::Unix("/var/run/dsd.socket".into()),
        ),
    ] {
        let c = config(&["--statsd-host", v], &[]).unwrap();
        assert_eq!(c.statsd_host, Some(want), "{v}");
    }
    assert_eq!(udp("::1", 1).to_string(), "[::1]:1");
    for bad in [
        "",
        ":8125",
        "host:",
        "host:0",
        "host:65536",
        "::1",
        "[::1",
        "[x]:1",
        "a b:1",
        "unix:",
    ] {
        if bad.is_empty() {
            continue; // empty is "off"
        }
        let err = config(&["--statsd-host", bad], &[]).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "statsd_host (--statsd-host): invalid value '{bad}': accepts HOST:PORT, [V6]:PORT or unix:PATH"
            )),
            "{err}"
        );
    }
    // Metrics lines off, StatsD on: the master still samples, every 20 s.
    let c = config(
        &["--metrics-interval", "0"],
        &[("RUNICORN_STATSD_HOST", "127.0.0.1:8125")],
    )
    .unwrap();
    assert_eq!(c.metrics_interval, None);
    assert_eq!(c.sample_interval(), Some(STATSD_ONLY_INTERVAL));
    let c = config(&["--metrics-interval", "0"], &[]).unwrap();
    assert_eq!(c.sample_interval(), None);
}

#[test]
fn statsd_prefix_is_joined_with_one_dot() {
    let prefix = |v: &str| config(&["--statsd-prefix", v], &[]).map(|c| c.statsd_prefix);
    assert_eq!(config(&[], &[]).unwrap().statsd_prefix, "");
    assert_eq!(prefix("myapp").unwrap(), "myapp.");
    assert_eq!(prefix("myapp.web-1..").unwrap(), "myapp.web-1.");
    assert_eq!(prefix("").unwrap(), "");
    for bad in ["my app", "a..b", ".a", "a:b", "a|b", &"x".repeat(201)] {
        let err = prefix(bad).unwrap_err();
        assert!(
            err.starts_with("statsd_prefix (--statsd-prefix): invalid value"),
            "{err}"
        );
    }
}

#[test]
fn dogstatsd_tags_are_a_comma_list() {
    let tags = |v: &str| {
        let v: &'static str = Box::leak(v.to_string().into_boxed_str());
        let env: &'static [(&str, &str)] = Box::leak(Box::new([("RUNICORN_DOGSTATSD_TAGS", v)]));
        config(&[], env).map(|c| c.dogstatsd_tags)
    };
    assert_eq!(
        config(&[], &[]).unwrap().dogstatsd_tags,
        Vec::<String>::new()
    );
    assert_eq!(
        tags("env:prod, service:web,canary").unwrap(),
        ["env:prod", "service:web", "canary"]
    );
    for bad in ["a b", "a|b", "a#b", "a@b", &"x".repeat(501)] {
        let err = tags(bad).unwrap_err();
        assert!(
            err.starts_with("dogstatsd_tags (RUNICORN_DOGSTATSD_TAGS): invalid value"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}

#[test]
fn metrics_bind_takes_an_ip_and_a_port() {
    assert_eq!(config(&[], &[]).unwrap().metrics_bind, None);
    for (v, want) in [
        ("127.0.0.1:9394", "127.0.0.1:9394"),
        ("[::1]:9394", "[::1]:9394"),
        ("0.0.0.0:9394", "0.0.0.0:9394"),
        ("[::]:9394", "[::]:9394"),
        ("localhost:9394", "127.0.0.1:9394"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        let c = config(&["--metrics-bind", v], &[]).unwrap();
        assert_eq!(c.metrics_bind, Some(want.parse().unwrap()), "{v}");
    }
    let c = config(&[], &[("RUNICORN_METRICS_BIND", "[::1]:9000")]).unwrap();
    assert_eq!(c.metrics_bind, Some("[::1]:9000".parse().unwrap()));
    let c = config(&["--metrics-bind", ""], &[]).unwrap();
    assert_eq!(c.metrics_bind, None, "empty is off");
    for bad in [
        "9394",
        ":9394",
        "localhost",
        "example.com:9394",
        "127.0.0.1:65536",
        "127.0.0.1:",
        "::1:9394",
        "unix:/run/metrics.sock",
        "http://127.0.0.1:9394/metrics",
    ] {
        let err = config(&["--metrics-bind", bad], &[]).unwrap_err();
        assert_eq!(
            err,
            format!(
                "metrics_bind (--metrics-bind): invalid value '{bad}': accepts IP:PORT or [V6]:PORT, such as 127.0.0.1:9394 or [::1]:9394 (localhost:PORT too; port 0 picks a free port)"
            )
        );
    }
}
