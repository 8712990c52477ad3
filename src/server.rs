//! The entry points an app binary calls: [`run`] (parse settings, serve, exit) and
//! [`serve`] (the same, returning errors).

use std::io::Write as _;

use tracing::{error, info, warn};

use crate::config::{self, Command, Config};
use crate::error::{EXIT_CONFIG, EXIT_OK, Error, ErrorKind};
use crate::handler::App;
use crate::listener;
use crate::master::{Master, Startup};
use crate::notify::Notifier;
use crate::sys;
use crate::upgrade;

/// What an app binary says about itself beyond runicorn's own text: its version, for
/// `--version`, and more sections for `--help` (the subcommands it takes, say). Give it to
/// [`run_with`]; [`about!`](crate::about) makes one with the app's version from its
/// Cargo.toml.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct About {
    /// The app's version: `myapp --version` prints `myapp 1.4.2 (runicorn 0.1.0)`.
    pub version: Option<&'static str>,
    /// Text printed after runicorn's `--help`.
    pub help: Option<String>,
}

impl About {
    /// An app of this version.
    pub fn version(version: &'static str) -> About {
        About {
            version: Some(version),
            help: None,
        }
    }

    /// Adds `text` after runicorn's `--help` (after what was added before).
    pub fn with_help(mut self, text: &str) -> About {
        let help = self.help.get_or_insert_with(String::new);
        if !help.is_empty() && !help.ends_with("\n\n") {
            help.push('\n');
        }
        help.push_str(text);
        self
    }
}

/// The [`About`] of the crate this is written in: its Cargo.toml version, for `--version`.
///
/// ```no_run
/// runicorn::run_with(runicorn::about!(), || |_req: runicorn::Request<'_>| {
///     runicorn::Response::new("hi\n".into())
/// })
/// ```
#[macro_export]
macro_rules! about {
    () => {
        $crate::About::version(env!("CARGO_PKG_VERSION"))
    };
}

/// Runs an app binary: reads the settings from the command line and the environment,
/// builds the app with `build` (once, in the master, before the workers are forked), serves
/// until stopped, and exits the process with the right code.
///
/// Every binary built on runicorn thus accepts the same flags and environment variables as
/// `runicorn` itself; `--help` lists them. Exit codes: 0 after a stop, 1 when the server
/// could not start, 2 for a bad setting, 3 for a crash loop. [`run_with`] adds the app's
/// version and help text.
pub fn run<A: App>(build: impl FnOnce() -> A) -> ! {
    run_with(About::default(), build)
}

/// [`run`], with what the binary says about itself in `--version` and `--help`.
pub fn run_with<A: App>(about: About, build: impl FnOnce() -> A) -> ! {
    let (program, args) = program_and_args();
    let command = config::parse(&program, &args, &|k| std::env::var(k).ok());
    let config = match command {
        Ok(Command::Serve(c)) => c,
        Ok(Command::Help(text)) => {
            print!("{text}");
            if let Some(more) = &about.help {
                print!("\n{more}");
            }
            exit(EXIT_OK)
        }
        Ok(Command::Version) => {
            println!("{}", version_line(&program, about.version));
            exit(EXIT_OK)
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            exit(EXIT_CONFIG)
        }
    };
    crate::log::init(config.log_level);
    match serve(&config, build) {
        Ok(code) => exit(code),
        Err(e) => {
            error!(error = %e, "cannot start");
            exit(e.exit_code())
        }
    }
}

/// The binary's name as it was run (the file name of `argv[0]`, `runicorn` if none), for
/// usage and error lines, and its arguments.
pub fn program_and_args() -> (String, Vec<String>) {
    let mut args = std::env::args();
    let program = args
        .next()
        .as_deref()
        .and_then(|p| {
            std::path::Path::new(p)
                .file_name()?
                .to_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "runicorn".to_string());
    (program, args.collect())
}

/// `myapp 1.4.2 (runicorn 0.1.0)`, or `myapp (runicorn 0.1.0)` without the app's version.
fn version_line(program: &str, version: Option<&str>) -> String {
    let ours = env!("CARGO_PKG_VERSION");
    match version {
        // The runicorn command itself: one name, one version.
        Some(v) if program == "runicorn" && v == ours => format!("runicorn {ours}"),
        Some(v) => format!("{program} {v} (runicorn {})", env!("CARGO_PKG_VERSION")),
        None => format!("{program} (runicorn {})", env!("CARGO_PKG_VERSION")),
    }
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Serves with `config` until stopped; returns the exit code (0 after TERM/QUIT/INT, 3 for
/// a crash loop). `Err` when the server could not start.
pub fn serve<A: App>(config: &Config, build: impl FnOnce() -> A) -> Result<i32, Error> {
    if config.check_config {
        let _app = build();
        info!(
            workers = config.workers,
            binds = config.binds.len(),
            "configuration ok"
        );
        return Ok(EXIT_OK);
    }
    // What a USR2 upgrade needs, read before the app runs (it could change the working
    // directory or the environment).
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let args: Vec<std::ffi::OsString> = argv.collect();
    let exe = std::env::current_dir()
        .ok()
        .and_then(|cwd| upgrade::startup_exe(std::path::Path::new(&argv0), &cwd));
    let handover = upgrade::take_from_env().map_err(|e| {
        Error::new(
            ErrorKind::System,
            format!("cannot take over from the previous binary: {e}"),
        )
    })?;
    let notifier = Notifier::from_env();
    sys::remember_log_paths();
    let listeners = listener::open(
        &config.binds,
        config.bind_fallback.as_ref(),
        config.backlog,
        handover.as_ref().map(|h| h.listen_fds.as_slice()),
    )?;
    for l in &listeners {
        info!(addr = l.describe(), "listening");
    }
    let metrics = metrics_listener(config, handover.as_ref().and_then(|h| h.metrics_fd))?;
    let mut app = build();
    if config.worker_connections > 1 && app.concurrent().is_none() {
        warn!(
            worker_connections = config.worker_connections,
            "this app answers one request at a time: --worker-connections has no effect (it is for async apps, such as tower services)"
        );
    }
    // fork(2) is only sound in a single-threaded process: an app that started a thread
    // while being built (a runtime, a pool) must start it in `after_fork` instead.
    if let Some(n) = sys::thread_count().filter(|&n| n != 1) {
        return Err(Error::new(
            ErrorKind::App,
            format!(
                "the master has {n} threads after building the app; start threads in after_fork, not before"
            ),
        ));
    }
    let pid_file = config.pid_file.as_deref().map(PidFile::write).transpose()?;
    let startup = Startup {
        exe,
        args,
        notifier,
        handover,
        metrics,
    };
    let mut master = Master::new(config, app, listeners, startup)
        .map_err(|e| Error::io(ErrorKind::System, "cannot set up the master", e))?;
    info!(
        pid = std::process::id(),
        workers = config.workers,
        "master started"
    );
    let code = master.run();
    master.cleanup();
    drop(pid_file);
    info!(code, "master exiting");
    Ok(code)
}

/// The Prometheus endpoint's socket (`--metrics-bind`): the one the previous image handed
/// over (USR2), when it serves the same address, so that scrapes queue in the kernel across
/// the exec instead of being refused; else bound now. A handed-over socket no longer wanted
/// is closed.
fn metrics_listener(
    config: &Config,
    handed: Option<std::os::fd::RawFd>,
) -> Result<Option<std::net::TcpListener>, Error> {
    use crate::metrics::exporter;
    let fail = |addr: std::net::SocketAddr, e| {
        Error::io(
            ErrorKind::Listen,
            format!("cannot listen on --metrics-bind {addr}"),
            e,
        )
    };
    let kept = match (handed, config.metrics_bind) {
        (Some(fd), Some(addr)) => exporter::adopt(fd, addr).map_err(|e| fail(addr, e))?,
        (Some(fd), None) => {
            drop(sys::adopt_fd(fd));
            None
        }
        (None, _) => None,
    };
    let Some(addr) = config.metrics_bind else {
        return Ok(None);
    };
    let from = if kept.is_some() { "upgrade" } else { "bind" };
    let listener = match kept {
        Some(l) => l,
        None => exporter::bind(addr).map_err(|e| fail(addr, e))?,
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    info!(addr = bound.as_str(), from, "prometheus: serving /metrics");
    Ok(Some(listener))
}

/// The pid file: written atomically (a temporary file renamed over the path, so a reader
/// never sees it half-written) and removed on exit if it still holds our pid.
struct PidFile {
    path: std::path::PathBuf,
}

impl PidFile {
    fn write(path: &std::path::Path) -> Result<PidFile, Error> {
        let pid = std::process::id();
        let tmp = path.with_extension(format!("tmp.{pid}"));
        let fail = |e| {
            Error::io(
                ErrorKind::System,
                format!("cannot write pid file {}", path.display()),
                e,
            )
        };
        std::fs::write(&tmp, format!("{pid}\n")).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_the_app_and_runicorn() {
        let ours = env!("CARGO_PKG_VERSION");
        assert_eq!(
            version_line("myapp", Some("1.4.2")),
            format!("myapp 1.4.2 (runicorn {ours})")
        );
        assert_eq!(
            version_line("myapp", None),
            format!("myapp (runicorn {ours})")
        );
        assert_eq!(
            version_line("runicorn", Some(ours)),
            format!("runicorn {ours}")
        );
    }

    #[test]
    fn help_sections_follow_one_another() {
        let about = About::version("1.0")
            .with_help("Subcommands:\n  tune\n")
            .with_help("Routes:\n  /\n");
        assert_eq!(
            about.help.unwrap(),
            "Subcommands:\n  tune\n\nRoutes:\n  /\n"
        );
    }
}
