//! The settings table: each setting declared once, with its flag, environment variables,
//! default, documentation and parser. `--help`, `docs/settings.md` and the parser all read it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{BindAddr, Config, ConfigError, MAX_WORKERS, StatsdAddr};

/// Looks an environment variable up.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One setting.
pub struct Setting {
    /// snake_case name, as in logs and errors.
    pub name: &'static str,
    /// The long flag, `--foo-bar`.
    pub flag: &'static str,
    /// The value's placeholder in `--help`; empty for a switch (a flag without value).
    pub metavar: &'static str,
    /// Environment variables read besides `RUNICORN_FOO_BAR`, in order of precedence after it.
    pub env_aliases: &'static [&'static str],
    /// The default, as documented.
    pub default_doc: &'static str,
    /// The default, as text for `apply`.
    pub default: DefaultValue,
    /// What a valid value looks like (the end of the error line).
    pub accepts: &'static str,
    /// What the setting does.
    pub doc: &'static str,
    /// The flag may be given several times (and the environment holds a comma list).
    pub repeatable: bool,
    /// Parses one value into the config; `None` when the value is not accepted.
    pub apply: fn(&mut Config, &str) -> Option<()>,
}

/// A setting's default value, given as the text a user would type.
pub enum DefaultValue {
    /// Always this text.
    Text(&'static str),
    /// Computed from the environment (e.g. `PORT`) or the machine (e.g. its CPUs).
    From(fn(Env<'_>) -> Result<String, ConfigError>),
}

impl DefaultValue {
    /// The default's text.
    pub fn text(&self, env: Env<'_>) -> Result<String, ConfigError> {
        match self {
            DefaultValue::Text(t) => Ok((*t).to_string()),
            DefaultValue::From(f) => f(env),
        }
    }
}

impl Setting {
    /// `RUNICORN_FOO_BAR` for `--foo-bar`.
    pub fn env_var(&self) -> String {
        format!(
            "RUNICORN_{}",
            self.flag
                .trim_start_matches('-')
                .replace('-', "_")
                .to_uppercase()
        )
    }
}

fn whole(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn secs(v: &str) -> Option<Duration> {
    whole(v)
        .filter(|&n| n <= 365 * 86_400)
        .map(Duration::from_secs)
}

fn switch(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// `HOST:PORT`, `[V6]:PORT` or `unix:PATH`. HOST is an IP address or `localhost`.
pub fn parse_bind(v: &str) -> Option<BindAddr> {
    if let Some(path) = v.strip_prefix("unix:") {
        return (!path.is_empty()).then(|| BindAddr::Unix(PathBuf::from(path)));
    }
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Some(BindAddr::Tcp(addr));
    }
    let (host, port) = v.rsplit_once(':')?;
    let port: u16 = whole(port)?.try_into().ok()?;
    let ip: IpAddr = match host {
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        "" | "*" => Ipv4Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    Some(BindAddr::Tcp(SocketAddr::new(ip, port)))
}

/// StatsD's own port, as Gunicorn defaults it.
const STATSD_PORT: u16 = 8125;

/// `HOST[:PORT]`, `[V6][:PORT]` or `unix:PATH` (Gunicorn's `unix://PATH` too); the port
/// defaults to 8125. HOST is a host name or an IPv4 address; it is resolved at start.
pub fn parse_statsd_host(v: &str) -> Option<StatsdAddr> {
    if let Some(path) = v.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        return (!path.is_empty()).then(|| StatsdAddr::Unix(PathBuf::from(path)));
    }
    let port = |p: Option<&str>| -> Option<u16> {
        match p {
            None => Some(STATSD_PORT),
            Some(p) => whole(p)?.try_into().ok().filter(|&n| n != 0),
        }
    };
    if let Some(rest) = v.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = ip.parse().ok()?;
        let port = match after {
            "" => port(None)?,
            _ => port(Some(after.strip_prefix(':')?))?,
        };
        return Some(StatsdAddr::Udp {
            host: ip.to_string(),
            port,
        });
    }
    let (host, p) = match v.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (v, None),
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    name_ok.then_some(())?;
    Some(StatsdAddr::Udp {
        host: host.to_string(),
        port: port(p)?,
    })
}

/// A StatsD name prefix: dot-separated parts of letters, digits, `_` and `-`, at most 200
/// bytes. Trailing dots are dropped and one is added, as Gunicorn does (`myapp` ->
/// `myapp.`); empty stays empty.
pub fn parse_statsd_prefix(v: &str) -> Option<String> {
    let v = v.trim_end_matches('.');
    if v.is_empty() {
        return Some(String::new());
    }
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    (v.len() <= 200 && v.split('.').all(part_ok)).then(|| format!("{v}."))
}

/// DogStatsD tags: a comma list of `key:value` or bare tags of letters, digits and
/// `_-:./`, at most 500 bytes in all; spaces around commas are dropped.
pub fn parse_dogstatsd_tags(v: &str) -> Option<Vec<String>> {
    if v.len() > 500 {
        return None;
    }
    let tag_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:./".contains(&b))
    };
    let tags: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    tags.iter().all(|t| tag_ok(t)).then_some(tags)
}

/// `IP:PORT`, `[V6]:PORT` or `localhost:PORT`: where the master serves Prometheus metrics.
/// Port 0 picks a free port (logged at start).
pub fn parse_metrics_bind(v: &str) -> Option<SocketAddr> {
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Some(addr);
    }
    let port: u16 = whole(v.strip_prefix("localhost:")?)?.try_into().ok()?;
    Some(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
}

fn default_bind(env: Env<'_>) -> Result<String, ConfigError> {
    match env("PORT").filter(|p| !p.is_empty()) {
        Some(p) => match whole(&p).filter(|&n| n <= 65_535) {
            Some(port) => Ok(format!("[::]:{port}")),
            None => Err(ConfigError(format!(
                "bind (PORT): invalid value '{p}': accepts a TCP port number from 0 to 65535"
            ))),
        },
        None => Ok("127.0.0.1:8080".into()),
    }
}

/// The CPUs this process may run on (affinity and cgroup quota, as the standard library
/// reads them).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn default_workers(_: Env<'_>) -> Result<String, ConfigError> {
    Ok(available_cpus().to_string())
}

fn apply_workers(c: &mut Config, v: &str) -> Option<()> {
    c.workers_auto = v.eq_ignore_ascii_case("auto");
    let n = if c.workers_auto {
        available_cpus()
    } else {
        whole(v)? as usize
    };
    c.workers = Some(n).filter(|n| (1..=MAX_WORKERS).contains(n))?;
    Some(())
}

fn apply_log_level(c: &mut Config, v: &str) -> Option<()> {
    c.log_level = match v.to_ascii_lowercase().as_str() {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => return None,
    };
    Some(())
}

/// Every setting, in the order `--help` and `docs/settings.md` list them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "bind",
        flag: "--bind",
        metavar: "ADDR",
        env_aliases: &[],
        default_doc: "`[::]:$PORT` (dual-stack; `0.0.0.0:$PORT` without IPv6) when `PORT` is set, else `127.0.0.1:8080`",
        default: DefaultValue::From(default_bind),
        accepts: "HOST:PORT, [V6]:PORT or unix:PATH (HOST is an IP address or localhost); repeat the flag, or give a comma list in RUNICORN_BIND",
        doc: "Address to listen on. Repeat for several listeners. Ignored when systemd passes \
              sockets with LISTEN_FDS and LISTEN_PID (socket activation): the server then \
              serves on the sockets it was given.",
        repeatable: true,
        apply: |c, v| {
            c.binds.push(parse_bind(v)?);
            Some(())
        },
    },
    Setting {
        name: "workers",
        flag: "--workers",
        metavar: "N|auto",
        env_aliases: &["WEB_CONCURRENCY"],
        default_doc: "the number of CPUs available to the process",
        default: DefaultValue::From(default_workers),
        accepts: "a whole number from 1 to 1024, or auto",
        doc: "Number of worker processes. Each serves one request at a time, so this is the \
              number of requests served at once. On Heroku set WEB_CONCURRENCY; \
              RUNICORN_WORKERS wins over it, and the flag over both. TTIN and TTOU change it \
              at run time. auto: the master picks the count from the CPUs available to it \
              (affinity and cgroup CPU quota) and its memory quota (the cgroup limit, else the \
              machine's memory), assuming 32 MiB a worker at boot; then every \
              --auto-interval, once workers have served traffic, it recomputes from their \
              measured memory (USS) and the master's (PSS) and from how much of their busy \
              time is spent on (or waiting for) a CPU, and grows or shrinks the pool (between 1 and 8 a CPU, \
              keeping 20% of the quota free; see docs/tuning.md). TTIN, TTOU and WINCH turn \
              auto off.",
        repeatable: false,
        apply: apply_workers,
    },
    Setting {
        name: "auto_interval",
        flag: "--auto-interval",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "30",
        default: DefaultValue::Text("30"),
        accepts: "a whole number of seconds from 1",
        doc: "How often --workers auto re-evaluates the worker count. Two evaluations in a \
              row must agree before the pool grows (or shrinks for CPU's sake); too little \
              memory shrinks it at once.",
        repeatable: false,
        apply: |c, v| {
            c.auto_interval = Some(secs(v)?).filter(|d| !d.is_zero())?;
            Some(())
        },
    },
    Setting {
        name: "timeout",
        flag: "--timeout",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "30",
        default: DefaultValue::Text("30"),
        accepts: "a whole number of seconds (0 turns the timeout off)",
        doc: "A worker busy with one request (or booting) for longer than this is killed \
              with SIGKILL and replaced; the log line names the request. Heroku's router \
              gives up on a request after 30 s. An idle worker is never killed.",
        repeatable: false,
        apply: |c, v| {
            c.timeout = Some(secs(v)?).filter(|d| !d.is_zero());
            Some(())
        },
    },
    Setting {
        name: "graceful_timeout",
        flag: "--graceful-timeout",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "25",
        default: DefaultValue::Text("25"),
        accepts: "a whole number of seconds",
        doc: "On TERM or QUIT, how long in-flight requests may take before the workers still \
              running are killed. Below Heroku's 30 s between SIGTERM and SIGKILL.",
        repeatable: false,
        apply: |c, v| {
            c.graceful_timeout = secs(v)?;
            Some(())
        },
    },
    Setting {
        name: "max_requests",
        flag: "--max-requests",
        metavar: "N",
        env_aliases: &[],
        default_doc: "0 (off)",
        default: DefaultValue::Text("0"),
        accepts: "a whole number (0 turns recycling off)",
        doc: "A worker that has served this many requests finishes its current one and is \
              replaced by a fresh process (a cure for slow leaks).",
        repeatable: false,
        apply: |c, v| {
            c.max_requests = whole(v)?;
            Some(())
        },
    },
    Setting {
        name: "max_requests_jitter",
        flag: "--max-requests-jitter",
        metavar: "N",
        env_aliases: &[],
        default_doc: "0",
        default: DefaultValue::Text("0"),
        accepts: "a whole number",
        doc: "Adds a random 0..=N to each worker's max-requests, so that workers started \
              together are not all replaced at once.",
        repeatable: false,
        apply: |c, v| {
            c.max_requests_jitter = whole(v)?;
            Some(())
        },
    },
    Setting {
        name: "max_worker_memory",
        flag: "--max-worker-memory",
        metavar: "MB",
        env_aliases: &[],
        default_doc: "0",
        default: DefaultValue::Text("0"),
        accepts: "a whole number of MiB (0 turns the limit off)",
        doc: "A worker whose memory (see --worker-memory) grows past this many MiB finishes \
              its current request and is replaced, with a log line; the master checks every \
              second. Each worker's limit is set at random between 90% and 100% of this, and \
              one worker at a time is replaced, so that workers that grow alike do not all \
              restart together. For an app that leaks or bloats; size it from the metric \
              lines' memory_uss.",
        repeatable: false,
        apply: |c, v| {
            c.max_worker_memory_mib = whole(v).filter(|&n| n <= 1 << 30)?;
            Some(())
        },
    },
    Setting {
        name: "worker_memory",
        flag: "--worker-memory",
        metavar: "uss|rss",
        env_aliases: &[],
        default_doc: "uss",
        default: DefaultValue::Text("uss"),
        accepts: "uss or rss",
        doc: "Which figure --max-worker-memory limits: uss, the memory only this worker \
              holds (what replacing it frees), or rss, which also counts the pages it \
              shares copy-on-write with the master and the other workers (what uWSGI's \
              reload-on-rss and most process monitors use).",
        repeatable: false,
        apply: |c, v| {
            c.worker_memory = match v.to_ascii_lowercase().as_str() {
                "uss" => super::MemoryMeasure::Uss,
                "rss" => super::MemoryMeasure::Rss,
                _ => return None,
            };
            Some(())
        },
    },
    Setting {
        name: "backlog",
        flag: "--backlog",
        metavar: "N",
        env_aliases: &[],
        default_doc: "1024",
        default: DefaultValue::Text("1024"),
        accepts: "a whole number from 1 to 65535 (the kernel caps it at net.core.somaxconn)",
        doc: "Length of the kernel's queue of connections waiting for a worker (listen(2)).",
        repeatable: false,
        apply: |c, v| {
            c.backlog = whole(v).filter(|n| (1..=65_535).contains(n))? as i32;
            Some(())
        },
    },
    Setting {
        name: "keepalive",
        flag: "--keepalive",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "0",
        default: DefaultValue::Text("0"),
        accepts: "a whole number of seconds (0 closes every connection after its response)",
        doc: "How long a connection may stay idle between requests. 0: every response says \
              `Connection: close`. Above 0, a worker keeps a connection for the client's next \
              request (and answers pipelined requests in order) only while no other \
              connection waits in the listen queue; otherwise its response says \
              `Connection: close`. Idle connections wait parked in the worker's poll, not \
              holding it. Heroku's Router 2.0 keeps idle connections to the app up to 90 s.",
        repeatable: false,
        apply: |c, v| {
            c.keepalive = secs(v)?.as_secs();
            Some(())
        },
    },
    Setting {
        name: "worker_connections",
        flag: "--worker-connections",
        metavar: "N",
        env_aliases: &[],
        default_doc: "1",
        default: DefaultValue::Text("1"),
        accepts: "a whole number from 1 to 1024",
        doc: "How many requests one worker serves at once, for an async app (a tower service \
              or axum Router served with runicorn::tower). 1: one request at a time, as for \
              every app. Above 1, the worker runs up to N requests interleaved on its \
              runtime, and --timeout applies to each request in the worker (its work is \
              dropped and the client gets 503); the master still kills a worker whose loop \
              stops (a handler that blocks its thread) after --timeout. An app that answers \
              one request at a time ignores it (and the master says so at start).",
        repeatable: false,
        apply: |c, v| {
            c.worker_connections = whole(v).filter(|n| (1..=1024).contains(n))? as usize;
            Some(())
        },
    },
    Setting {
        name: "metrics_interval",
        flag: "--metrics-interval",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "20",
        default: DefaultValue::Text("20"),
        accepts: "a whole number of seconds (0 turns metrics off)",
        doc: "How often the master prints runtime metric lines to stdout, in Heroku's \
              log-runtime-metrics format: load, dyno memory, memory per worker and for the \
              master, and the interval's requests, latency, queue time and backlog (see \
              docs/metrics.md). Heroku's own cadence is 20 s. With --statsd-host, the same \
              sample is also pushed to StatsD at this interval.",
        repeatable: false,
        apply: |c, v| {
            c.metrics_interval = Some(secs(v)?).filter(|d| !d.is_zero());
            Some(())
        },
    },
    Setting {
        name: "statsd_host",
        flag: "--statsd-host",
        metavar: "ADDR",
        env_aliases: &[],
        default_doc: "off",
        default: DefaultValue::Text(""),
        accepts: "HOST:PORT, [V6]:PORT or unix:PATH (the port defaults to 8125)",
        doc: "Push the metrics to a StatsD server (or a DogStatsD agent) too, as Gunicorn's \
              --statsd-host: every --metrics-interval the master sends the sample the metric \
              lines come from as StatsD gauges and counters, over one non-blocking UDP (or \
              Unix datagram) socket; workers send nothing. The host is resolved once, at \
              start. A lost or refused datagram never slows serving. With \
              --metrics-interval 0 the master prints no lines and pushes every 20 s. Names \
              and units: docs/metrics.md, \"StatsD\".",
        repeatable: false,
        apply: |c, v| {
            c.statsd_host = match v {
                "" => None,
                v => Some(parse_statsd_host(v)?),
            };
            Some(())
        },
    },
    Setting {
        name: "statsd_prefix",
        flag: "--statsd-prefix",
        metavar: "STR",
        env_aliases: &[],
        default_doc: "none",
        default: DefaultValue::Text(""),
        accepts: "dot-separated names of letters, digits, _ and - (at most 200 bytes)",
        doc: "Prepended to every StatsD name, joined with a dot as Gunicorn does: \
              --statsd-prefix myapp sends myapp.runicorn.requests.",
        repeatable: false,
        apply: |c, v| {
            c.statsd_prefix = parse_statsd_prefix(v)?;
            Some(())
        },
    },
    Setting {
        name: "dogstatsd_tags",
        flag: "--dogstatsd-tags",
        metavar: "TAGS",
        env_aliases: &[],
        default_doc: "none",
        default: DefaultValue::Text(""),
        accepts: "a comma list of key:value or bare tags of letters, digits and _-:./ (at most 500 bytes)",
        doc: "DogStatsD tags sent with every StatsD metric, as Gunicorn's --dogstatsd-tags: \
              env:prod,service:web adds |#env:prod,service:web to each line. Only DogStatsD \
              (the Datadog agent) and servers that accept its extension read them.",
        repeatable: false,
        apply: |c, v| {
            c.dogstatsd_tags = parse_dogstatsd_tags(v)?;
            Some(())
        },
    },
    Setting {
        name: "metrics_bind",
        flag: "--metrics-bind",
        metavar: "ADDR",
        env_aliases: &[],
        default_doc: "off",
        default: DefaultValue::Text(""),
        accepts: "IP:PORT or [V6]:PORT, such as 127.0.0.1:9394 or [::1]:9394 (localhost:PORT too; port 0 picks a free port)",
        doc: "Serve Prometheus metrics at http://ADDR/metrics, in the text format 0.0.4: \
              requests by status class, service and queue time histograms in seconds, \
              workers by state, worker exits by reason, the listen queue, and each \
              process's memory, as running totals read at scrape time (names: \
              docs/metrics.md, \"Prometheus\"). The master answers scrapes itself, inside \
              its loop and without a thread: at most 8 connections, each with 5 s to send \
              its request and 5 s to take the response; workers never see them. The \
              socket crosses a USR2 upgrade. Independent of --metrics-interval and \
              --statsd-host. The page has no authentication: bind a private address.",
        repeatable: false,
        apply: |c, v| {
            c.metrics_bind = match v {
                "" => None,
                v => Some(parse_metrics_bind(v)?),
            };
            Some(())
        },
    },
    Setting {
        name: "access_log",
        flag: "--access-log",
        metavar: "",
        env_aliases: &[],
        default_doc: "off",
        default: DefaultValue::Text("false"),
        accepts: "no value as a flag; true/false, 1/0, yes/no or on/off in the environment",
        doc: "Log one line per request (method, path, status, bytes, time, worker). Off by \
              default: on Heroku the router already logs every request.",
        repeatable: false,
        apply: |c, v| {
            c.access_log = switch(v)?;
            Some(())
        },
    },
    Setting {
        name: "log_level",
        flag: "--log-level",
        metavar: "LEVEL",
        env_aliases: &[],
        default_doc: "info",
        default: DefaultValue::Text("info"),
        accepts: "trace, debug, info, warn or error",
        doc: "The least severe log level written to stderr.",
        repeatable: false,
        apply: apply_log_level,
    },
    Setting {
        name: "pid",
        flag: "--pid",
        metavar: "PATH",
        env_aliases: &[],
        default_doc: "none",
        default: DefaultValue::Text(""),
        accepts: "a file path",
        doc: "Write the master's pid to this file (atomically, through a rename) and remove \
              it on exit.",
        repeatable: false,
        apply: |c, v| {
            c.pid_file = (!v.is_empty()).then(|| PathBuf::from(v));
            Some(())
        },
    },
    Setting {
        name: "header_timeout",
        flag: "--header-timeout",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "10",
        default: DefaultValue::Text("10"),
        accepts: "a whole number of seconds from 1",
        doc: "A client must send its whole request head within this time, or it gets 408 \
              and the connection is closed.",
        repeatable: false,
        apply: |c, v| {
            c.header_timeout = secs(v).filter(|d| !d.is_zero())?;
            Some(())
        },
    },
    Setting {
        name: "body_timeout",
        flag: "--body-timeout",
        metavar: "SECS",
        env_aliases: &[],
        default_doc: "30",
        default: DefaultValue::Text("30"),
        accepts: "a whole number of seconds from 1",
        doc: "Once its head is complete, a client must send its whole request body within \
              this time, or it gets 408 and the connection is closed. The body is collected \
              while the connection waits parked, before the app sees the request: in memory \
              up to 64 KiB, in an unlinked temporary file (in TMPDIR) beyond, up to \
              --limit-request-body.",
        repeatable: false,
        apply: |c, v| {
            c.body_timeout = secs(v).filter(|d| !d.is_zero())?;
            Some(())
        },
    },
    Setting {
        name: "check_config",
        flag: "--check-config",
        metavar: "",
        env_aliases: &[],
        default_doc: "off",
        default: DefaultValue::Text("false"),
        accepts: "no value as a flag; true/false in the environment",
        doc: "Validate the settings and build the app, then exit 0 (or 2 with the reason) \
              without binding or forking.",
        repeatable: false,
        apply: |c, v| {
            c.check_config = switch(v)?;
            Some(())
        },
    },
    Setting {
        name: "limit_request_line",
        flag: "--limit-request-line",
        metavar: "BYTES",
        env_aliases: &[],
        default_doc: "8190",
        default: DefaultValue::Text("8190"),
        accepts: "a whole number of bytes from 1 to 1048576",
        doc: "Longest request line (method, target, version) accepted; longer gets 414.",
        repeatable: false,
        apply: |c, v| {
            c.limits.request_line = whole(v).filter(|n| (1..=1 << 20).contains(n))? as usize;
            Some(())
        },
    },
    Setting {
        name: "limit_request_fields",
        flag: "--limit-request-fields",
        metavar: "N",
        env_aliases: &[],
        default_doc: "100",
        default: DefaultValue::Text("100"),
        accepts: "a whole number from 1 to 32768",
        doc: "Most header fields in one request; more gets 431.",
        repeatable: false,
        apply: |c, v| {
            c.limits.fields = whole(v).filter(|n| (1..=32_768).contains(n))? as usize;
            Some(())
        },
    },
    Setting {
        name: "limit_request_field_size",
        flag: "--limit-request-field-size",
        metavar: "BYTES",
        env_aliases: &[],
        default_doc: "8190",
        default: DefaultValue::Text("8190"),
        accepts: "a whole number of bytes from 1 to 1048576",
        doc: "Longest header field line (name, colon, value and CRLF); longer gets 431.",
        repeatable: false,
        apply: |c, v| {
            c.limits.field_size = whole(v).filter(|n| (1..=1 << 20).contains(n))? as usize;
            Some(())
        },
    },
    Setting {
        name: "limit_request_body",
        flag: "--limit-request-body",
        metavar: "BYTES",
        env_aliases: &[],
        default_doc: "104857600 (100 MiB)",
        default: DefaultValue::Text("104857600"),
        accepts: "a whole number of bytes (0 means no limit)",
        doc: "Largest request body accepted; a larger Content-Length gets 413 before the app \
              runs.",
        repeatable: false,
        apply: |c, v| {
            c.limits.body = whole(v)?;
            Some(())
        },
    },
];
