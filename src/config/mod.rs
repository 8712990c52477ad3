//! Settings: one table ([`settings::SETTINGS`]) read from flags, then environment, then
//! defaults, into a validated [`Config`].
//!
//! No I/O happens here beyond reading the arguments and environment it is handed: binding,
//! writing pid files and the like belong to the master. `--help` and `docs/settings.md` are
//! rendered from the same table, so they cannot drift from the parser.

mod settings;
pub use settings::available_cpus;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The request size limits (`--limit-request-line`, `-fields`, `-field-size`, `-body`).
pub use crate::h1::Limits;

pub use settings::{SETTINGS, Setting};

/// Most workers one server runs (the scoreboard is sized for it).
pub const MAX_WORKERS: usize = 1024;

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// A TCP address (IPv4 or IPv6).
    Tcp(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for BindAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindAddr::Tcp(a) => write!(f, "{a}"),
            BindAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Where the master sends StatsD metrics (`--statsd-host`). The host is resolved by the
/// master when it starts, not here: parsing does no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdAddr {
    /// A UDP address: a host name or IP address, and a port.
    Udp {
        /// A host name, an IPv4 address, or an IPv6 address (without brackets).
        host: String,
        /// The port (8125, StatsD's, when none was given).
        port: u16,
    },
    /// A Unix datagram socket (DogStatsD's `dsd.socket`).
    Unix(PathBuf),
}

impl std::fmt::Display for StatsdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsdAddr::Udp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            StatsdAddr::Udp { host, port } => write!(f, "{host}:{port}"),
            StatsdAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How often the master samples when `--metrics-interval` is 0 (no metric lines) but
/// `--statsd-host` is set: the metrics interval's own default.
pub const STATSD_ONLY_INTERVAL: Duration = Duration::from_secs(20);

/// The validated settings of a server: made by [`parse`] (or [`Config::defaults`] and the
/// fields set one by one), read by [`serve`](crate::serve). New settings add fields, so it
/// cannot be built with a struct literal outside this crate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Addresses to listen on (ignored when systemd hands us sockets through `LISTEN_FDS`).
    pub binds: Vec<BindAddr>,
    /// When `bind` was not given and `PORT` is set: the IPv4 address to fall back to when the
    /// machine has no IPv6.
    pub bind_fallback: Option<BindAddr>,
    /// Number of worker processes (with `workers_auto`, the count before the master's own
    /// estimate replaces it).
    pub workers: usize,
    /// `--workers auto`: the master sizes the pool from the CPUs and the memory quota.
    pub workers_auto: bool,
    /// How often `--workers auto` re-evaluates the count.
    pub auto_interval: Duration,
    /// Kill a worker busy (or booting) for longer than this; `None` never.
    pub timeout: Option<Duration>,
    /// How long a graceful stop waits for in-flight requests before SIGKILL.
    pub graceful_timeout: Duration,
    /// Requests a worker serves before it is replaced; 0 never.
    pub max_requests: u64,
    /// Up to this many requests added to `max_requests` per worker, at random.
    pub max_requests_jitter: u64,
    /// A worker whose memory passes this many MiB is replaced after its request; 0 never.
    pub max_worker_memory_mib: u64,
    /// Which figure `max_worker_memory_mib` limits.
    pub worker_memory: MemoryMeasure,
    /// The listen(2) backlog.
    pub backlog: i32,
    /// Keep-alive timeout in seconds; 0 closes every connection after its response.
    pub keepalive: u64,
    /// Requests one worker serves at once (an async app's); 1 for one at a time.
    pub worker_connections: usize,
    /// Metrics sampling interval; `None` off.
    pub metrics_interval: Option<Duration>,
    /// Where to push StatsD metrics; `None` off.
    pub statsd_host: Option<StatsdAddr>,
    /// Prepended to every StatsD name: empty, or ending in one dot (`myapp.`).
    pub statsd_prefix: String,
    /// DogStatsD tags sent with every StatsD metric (`k:v` or bare); empty none.
    pub dogstatsd_tags: Vec<String>,
    /// Where the master serves Prometheus metrics (`GET /metrics`); `None` off.
    pub metrics_bind: Option<SocketAddr>,
    /// Write one log line per request.
    pub access_log: bool,
    /// The least severe level logged.
    pub log_level: tracing::Level,
    /// Where to write the master's pid.
    pub pid_file: Option<PathBuf>,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// How long a client may take to send a request body, once its head is complete.
    pub body_timeout: Duration,
    /// Validate and exit.
    pub check_config: bool,
    /// Request size limits.
    pub limits: Limits,
}

/// Which memory figure of a worker `--max-worker-memory` limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMeasure {
    /// Unique set size: the pages only this worker maps, what replacing it frees.
    Uss,
    /// Resident set size: shared copy-on-write pages counted in full.
    Rss,
}

impl MemoryMeasure {
    /// `uss` or `rss`, as in the setting and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryMeasure::Uss => "uss",
            MemoryMeasure::Rss => "rss",
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve with these settings.
    Serve(Box<Config>),
    /// Print this help text and exit 0.
    Help(String),
    /// Print the version and exit 0.
    Version,
}

/// A bad setting: renders as the one line the operator sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where a setting's text came from, for the error line.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Flag,
    Env(&'a str),
    Default,
}

impl Config {
    /// How often the master samples metrics: `--metrics-interval`, or
    /// [`STATSD_ONLY_INTERVAL`] when only StatsD wants them; `None` when nothing does.
    pub fn sample_interval(&self) -> Option<Duration> {
        self.metrics_interval
            .or(self.statsd_host.as_ref().map(|_| STATSD_ONLY_INTERVAL))
    }

    /// The starting point before the settings table is applied (every field is then set from
    /// a flag, the environment or the table's default).
    pub fn defaults() -> Config {
        Config {
            binds: Vec::new(),
            bind_fallback: None,
            workers: 1,
            workers_auto: false,
            auto_interval: Duration::from_secs(30),
            timeout: None,
            graceful_timeout: Duration::ZERO,
            max_requests: 0,
            max_requests_jitter: 0,
            max_worker_memory_mib: 0,
            worker_memory: MemoryMeasure::Uss,
            backlog: 1024,
            keepalive: 0,
            worker_connections: 1,
            metrics_interval: None,
            statsd_host: None,
            statsd_prefix: String::new(),
            dogstatsd_tags: Vec::new(),
            metrics_bind: None,
            access_log: false,
            log_level: tracing::Level::INFO,
            pid_file: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            check_config: false,
            limits: Limits {
                request_line: 8190,
                fields: 100,
                field_size: 8190,
                body: 0,
            },
        }
    }
}

/// Parses the command line (`args` without the program name) and the environment (`env`
/// looks a variable up) into a [`Command`]. Precedence: flag, then environment, then default.
pub fn parse(
    program: &str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError> {
    let mut given: Vec<(&'static Setting, Vec<String>)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help(help_text(program))),
            "-V" | "--version" => return Ok(Command::Version),
            _ => {}
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let Some(setting) = SETTINGS.iter().find(|s| s.flag == flag) else {
            return Err(ConfigError(format!(
                "unknown argument '{arg}' (see '{program} --help' for the settings)"
            )));
        };
        let value = if setting.metavar.is_empty() {
            inline.unwrap_or_else(|| "true".to_string())
        } else if let Some(v) = inline {
            v
        } else if i < args.len() {
            i += 1;
            args[i - 1].clone()
        } else {
            return Err(ConfigError(format!(
                "{}: {} needs a value: {}",
                setting.name, setting.flag, setting.accepts
            )));
        };
        match given.iter_mut().find(|(s, _)| s.name == setting.name) {
            Some((_, values)) if setting.repeatable => values.push(value),
            Some((_, values)) => *values = vec![value],
            None => given.push((setting, vec![value])),
        }
    }

    let mut config = Config::defaults();
    for setting in SETTINGS {
        let env_name = setting.env_var();
        let (values, source) =
            if let Some((_, v)) = given.iter().find(|(s, _)| s.name == setting.name) {
                (v.clone(), Source::Flag)
            } else if let Some((name, v)) = std::iter::once(env_name.as_str())
                .chain(setting.env_aliases.iter().copied())
                .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
            {
                let values = if setting.repeatable {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                } else {
                    vec![v]
                };
                (values, Source::Env(name))
            } else {
                (vec![setting.default.text(env)?], Source::Default)
            };
        if setting.name == "bind" && matches!(source, Source::Default) {
            // The platform default `[::]:$PORT` falls back to IPv4 on a machine without IPv6.
            if let Some(port) = env("PORT").and_then(|p| p.parse::<u16>().ok()) {
                config.bind_fallback = Some(BindAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port))));
            }
        }
        for value in &values {
            (setting.apply)(&mut config, value).ok_or_else(|| {
                let from = match source {
                    Source::Flag => setting.flag.to_string(),
                    Source::Env(name) => name.to_string(),
                    Source::Default => "default".to_string(),
                };
                ConfigError(format!(
                    "{} ({from}): invalid value '{value}': accepts {}",
                    setting.name, setting.accepts
                ))
            })?;
        }
    }
    if config.binds.is_empty() {
        return Err(ConfigError(
            "bind: no address to listen on: accepts HOST:PORT, [V6]:PORT or unix:PATH".into(),
        ));
    }
    Ok(Command::Serve(Box::new(config)))
}

/// The `--help` text.
pub(crate) fn help_text(program: &str) -> String {
    let mut out = format!(
        "{program}: a pre-forking HTTP/1.1 server (runicorn {})\n\n\
         Usage: {program} [SETTINGS]\n\n\
         Every flag --foo-bar can also be set with the environment variable RUNICORN_FOO_BAR.\n\
         Precedence: flag, then environment, then default.\n\n\
         Settings:\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in SETTINGS {
        let left = if s.metavar.is_empty() {
            format!("  {}", s.flag)
        } else {
            format!("  {} {}", s.flag, s.metavar)
        };
        out.push_str(&left);
        out.push('\n');
        for line in wrap(s.doc, 72) {
            out.push_str("        ");
            out.push_str(&line);
            out.push('\n');
        }
        let mut envs = vec![s.env_var()];
        envs.extend(s.env_aliases.iter().map(|e| e.to_string()));
        out.push_str(&format!(
            "        [env: {}] [default: {}]\n",
            envs.join(", "),
            s.default_doc
        ));
    }
    out.push_str("  -h, --help\n        Print this help and exit.\n  -V, --version\n        Print the version and exit.\n");
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `docs/settings.md`, generated from the settings table (a test keeps the file in step).
#[cfg(test)]
pub(crate) fn settings_markdown() -> String {
    let mut out = String::from(
        "# Settings\n\n\
         <!-- Generated from src/config/settings.rs by `RUNICORN_BLESS=1 cargo test settings_doc`. Do not edit. -->\n\n\
         Every setting can be given as a flag or as an environment variable. Precedence: flag,\n\
         then environment, then default. Every flag `--foo-bar` also reads `RUNICORN_FOO_BAR`.\n\
         A bad value stops the server before it binds anything, with one line on stderr that\n\
         names the setting and what it accepts, and exit code 2.\n\n\
         | setting | flag | environment | default |\n|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let flag = if s.metavar.is_empty() {
            format!("`{}`", s.flag)
        } else {
            format!("`{} {}`", s.flag, s.metavar)
        };
        let mut envs = vec![format!("`{}`", s.env_var())];
        envs.extend(s.env_aliases.iter().map(|e| format!("`{e}`")));
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} | {} |\n",
            s.name,
            s.name.replace('_', "-"),
            flag,
            envs.join(", "),
            s.default_doc
        ));
    }
    for s in SETTINGS {
        out.push_str(&format!(
            "\n## {}\n\n{}\n\nAccepts: {}.\n",
            s.name.replace('_', "-"),
            s.doc,
            s.accepts
        ));
    }
    out
}

#[cfg(test)]
mod tests;
