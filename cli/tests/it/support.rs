use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_runicorn");

/// How long any single wait in these tests may take before the test fails. Generous: the
/// machine is shared, and nothing here is a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A running server in its own process group; killed (the whole group) on drop.
pub struct Server {
    child: Option<Child>,
    pub pid: i32,
    pub addr: Option<SocketAddr>,
    logs: Arc<Logs>,
    out: Arc<Logs>,
    exited: Option<ExitStatus>,
}

pub struct Spawn<'a> {
    pub bin: &'a str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Hand a fresh 127.0.0.1:0 listener to the server through LISTEN_FDS.
    pub listen_fd: bool,
    /// Move the server into this cgroup (its `cgroup.procs` file) before it starts.
    pub cgroup_procs: Option<std::path::PathBuf>,
}

impl<'a> Spawn<'a> {
    pub fn new(args: &[&str]) -> Spawn<'a> {
        Spawn {
            bin: BIN,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            listen_fd: true,
            cgroup_procs: None,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn bin(mut self, bin: &'a str) -> Self {
        self.bin = bin;
        self
    }

    pub fn in_cgroup(mut self, procs: std::path::PathBuf) -> Self {
        self.cgroup_procs = Some(procs);
        self
    }

    pub fn no_listen_fd(mut self) -> Self {
        self.listen_fd = false;
        self
    }

    pub fn start(self) -> Server {
        let listener = self
            .listen_fd
            .then(|| TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.as_ref().map(|l| l.local_addr().unwrap());
        let mut cmd = Command::new("sh");
        // `exec` keeps the shell's pid, so $$ is the server's pid, as systemd's LISTEN_PID.
        let mut script = String::new();
        if let Some(procs) = &self.cgroup_procs {
            script.push_str(&format!("echo $$ > '{}' && ", procs.display()));
        }
        script.push_str(if listener.is_some() {
            r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#
        } else {
            r#"exec "$0" "$@""#
        });
        cmd.arg("-c").arg(script).arg(self.bin).args(&self.args);
        without_server_env(&mut cmd);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.process_group(0);
        if let Some(l) = &listener {
            let fd = l.as_raw_fd();
            // SAFETY: dup2 and fcntl are async-signal-safe; nothing else runs in the child
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == 3 {
                        if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, 3) != 3 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn server");
        drop(listener); // the server holds the socket now
        let logs = collect(child.stderr.take().unwrap());
        let out = collect(child.stdout.take().unwrap());
        Server {
            pid: child.id() as i32,
            child: Some(child),
            addr,
            logs,
            out,
            exited: None,
        }
    }
}

/// Collects the lines of a child's pipe in a thread.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Logs> {
    let logs = Arc::new(Logs::default());
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lines.lock().unwrap().push(line);
            sink.changed.notify_all();
        }
    });
    logs
}

/// Waits until at least `n` lines of `logs` contain every one of `parts`, then returns them.
fn wait_lines(
    logs: &Logs,
    parts: &[&str],
    n: usize,
    what: &str,
    dump: &dyn Fn() -> String,
) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut lines = logs.lines.lock().unwrap();
    loop {
        let hits: Vec<String> = lines
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .cloned()
            .collect();
        if hits.len() >= n {
            return hits;
        }
        let now = Instant::now();
        if now >= deadline {
            drop(lines);
            panic!(
                "waited for {n} {what} lines with {parts:?}; log:\n{}",
                dump()
            );
        }
        lines = logs.changed.wait_timeout(lines, deadline - now).unwrap().0;
    }
}

impl Server {
    /// A server of the demo app with these flags, serving on a socket the test made.
    pub fn start(args: &[&str]) -> Server {
        Spawn::new(args).start()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lines.lock().unwrap().clone()
    }

    /// Waits until at least `n` log lines (stderr) contain every one of `parts`.
    pub fn wait_log(&self, parts: &[&str], n: usize) -> Vec<String> {
        wait_lines(&self.logs, parts, n, "log", &|| self.logs().join("\n"))
    }

    /// Waits until at least `n` lines of stdout (metrics) contain every one of `parts`.
    pub fn wait_out(&self, parts: &[&str], n: usize) -> Vec<String> {
        let dump = || {
            format!(
                "{}\n--- stdout ---\n{}",
                self.logs().join("\n"),
                self.out_lines().join("\n")
            )
        };
        wait_lines(&self.out, parts, n, "stdout", &dump)
    }

    /// Every line the server wrote to stdout so far.
    pub fn out_lines(&self) -> Vec<String> {
        self.out.lines.lock().unwrap().clone()
    }

    /// How many log lines contain every one of `parts`, now.
    pub fn count_log(&self, parts: &[&str]) -> usize {
        self.logs()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2).
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    pub fn signal_group(&self, sig: i32) {
        // SAFETY: plain kill(2) to our process group.
        assert_eq!(unsafe { libc::kill(-self.pid, sig) }, 0);
    }

    /// The server's live child processes (its workers).
    pub fn workers(&self) -> Vec<i32> {
        children(self.pid)
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let deadline = Instant::now() + DEADLINE;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.exited = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                panic!("server did not exit; log:\n{}", self.logs().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        request(
            self.addr.unwrap(),
            &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"),
        )
    }

    pub fn fail(&self, what: &str) -> ! {
        panic!("{what}; log:\n{}", self.logs().join("\n"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) to the server's process group (workers included).
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.logs().join("\n"));
        }
    }
}

/// Pids whose parent is `pid`, from /proc (zombies excluded).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[1].parse() == Ok(pid) && fields[0] != "Z" {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Is `pid` alive (and not a zombie)?
/// A free port on 127.0.0.1, bound then let go: for a test that must name a port to a
/// program it starts (a small race with other programs, as always with such a port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends raw bytes, reads until the server closes, and parses one response. Status 0 means
/// the connection closed (or was reset) with no response.
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    read_response(s)
}

pub fn read_response(mut s: impl Read) -> Response {
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes); // a reset after a partial read still keeps the bytes
    parse_response(&bytes)
}

pub fn parse_response(bytes: &[u8]) -> Response {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Response {
            status: 0,
            head: String::from_utf8_lossy(bytes).into(),
            body: vec![],
        };
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head,
        body: bytes[end + 4..].to_vec(),
    }
}

/// The repository's root (the workspace), where docs/, examples/ and tests/data/ are.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Builds an example of the workspace's `package` (`cargo build -p PACKAGE --example NAME`,
/// with the package's cargo `features`, same profile and target directory as the test
/// binary) and returns its path.
pub fn example_bin(package: &str, name: &str, features: &[&str]) -> String {
    let bin = std::path::Path::new(BIN);
    let profile_dir = bin.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        package,
        "--example",
        name,
        "--manifest-path",
    ])
    .arg(format!("{ROOT}/Cargo.toml"))
    .arg("--target-dir")
    .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let status = cmd.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name} failed");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path.to_str().unwrap().to_string()
}

/// `examples/echo.rs`, built once per test run with the same profile and target directory
/// as the `runicorn` binary (`cargo test` builds the echo example as a test harness for its
/// own unit tests, not as a program). Several test files serve it: the conformance kit, the
/// RFC 9112 statuses, the upgrade to a different binary.
pub fn echo_bin() -> String {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| example_bin("runicorn", "echo", &[]))
        .clone()
}

/// Removes the settings runicorn also takes from the environment, so that a developer's
/// exported WEB_CONCURRENCY (or PORT) cannot change what a test sees.
fn without_server_env(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("WEB_CONCURRENCY")
        .env_remove("PORT")
        .env_remove("RUNICORN_WORKERS")
}

/// `runicorn ARGS` as a user types it (a tool, a check, a flag error), for [`run_bounded`];
/// a server a test talks to is a [`Spawn`] instead.
pub fn runicorn(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    without_server_env(&mut cmd);
    cmd
}

/// How a command run by [`run_bounded`] ended, and everything it wrote.
pub struct Ran {
    pub status: ExitStatus,
    pub out: String,
    pub err: String,
}

/// Runs `cmd` to its end, with `stdin` written to it (or none), and returns what it wrote.
///
/// The deadline turns a hung program into a failure that names it, instead of a test run
/// that never ends; the child is killed through its own pid (`Child::kill`, before it is
/// reaped, so the pid is still its own), never by name: other processes on a shared machine
/// are left alone. Stdin is written, and stdout and stderr read, on threads of their own: a
/// child that fills one pipe while the test writes or reads another would otherwise wait
/// forever on the test, and the test on it.
pub fn run_bounded(mut cmd: Command, stdin: Option<Vec<u8>>, deadline: Duration) -> Ran {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits before reading it all breaks the pipe; its status tells why.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let out = Drain::start(child.stdout.take().unwrap());
    let err = Drain::start(child.stderr.take().unwrap());
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} ran past {deadline:?} and was killed; its stderr:\n{}",
                err.so_far()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        out: out.finish(),
        err: err.finish(),
    }
}

/// A child's pipe read to its end on a thread, kept where a failing test can still see it.
struct Drain {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Drain {
    fn start(mut pipe: impl Read + Send + 'static) -> Drain {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Drain { bytes, thread }
    }

    /// Everything, once the pipe closes.
    fn finish(self) -> String {
        self.thread.join().unwrap();
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// What has come so far. After a kill the pipe closes at once, unless a grandchild still
    /// holds it: wait a little for the rest, not for that grandchild.
    fn so_far(&self) -> String {
        let until = Instant::now() + Duration::from_secs(1);
        while !self.thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

/// Makes sure `python3` can import `import_name`, installing `pip_spec` with pip if not.
///
/// Some tests check against a real third-party implementation (a logfmt parser, a Procfile
/// runner) rather than one written for the tests. `.ci/run` installs them; this installs
/// them on a developer's machine, once per run, and fails with the command to run by hand
/// when pip cannot. One lock for every module: two pip installs at once can trip over each
/// other.
pub fn python_module(import_name: &str, pip_spec: &str) {
    static READY: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // Poisoned by a failed install: the next test tries again, and fails with its own message.
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if ready.iter().any(|m| m == import_name) {
        return;
    }
    let quiet = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !quiet(Command::new("python3").args(["-c", &format!("import {import_name}")])) {
        let installed =
            quiet(Command::new("python3").args(["-m", "pip", "install", "--quiet", pip_spec]));
        assert!(
            installed,
            "these tests need Python's {import_name}: python3 -m pip install {pip_spec}"
        );
    }
    ready.push(import_name.to_string());
}

/// The path of `binary` if it is on the `PATH` and executable.
pub fn which(binary: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Makes sure `binary` is on the `PATH`, installing Debian's `package` with apt-get if not,
/// and returns its path.
///
/// As [`python_module`] does for Python modules: some tests check against the real tool
/// (promtool, a Prometheus server) rather than one written for the tests. `.ci/run` or the
/// machine may already have it; otherwise this installs it once per run (as root, the way
/// CI and a fresh machine run the tests), running `apt-get update` only when the install
/// fails, and fails with the command to run by hand when it cannot.
pub fn debian_package(binary: &str, package: &str) -> String {
    static LOCK: Mutex<()> = Mutex::new(());
    // Poisoned by a failed install: the next test tries again, and fails with its own message.
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = which(binary) {
        return p.to_string_lossy().into_owned();
    }
    // The project's own installer, as the benchmarks and .ci/run use it: no packaged
    // service starts, and the package lists are fetched only when needed.
    let installer = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/apt-install.sh");
    let mut cmd = Command::new("bash");
    cmd.args([installer, package]);
    run_bounded(cmd, None, Duration::from_secs(1800));
    match which(binary) {
        Some(p) => p.to_string_lossy().into_owned(),
        None => {
            panic!("these tests need {binary}: apt-get install --no-install-recommends {package}")
        }
    }
}

/// Reads exactly one response (head and Content-Length body) from a kept connection.
pub fn read_one(c: &mut impl Read) -> Response {
    read_one_of(c, false)
}

/// The same for the answer to HEAD, whose Content-Length describes a body not sent.
pub fn read_one_of(c: &mut impl Read, head_request: bool) -> Response {
    let mut bytes = Vec::new();
    let mut b = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut b).unwrap(),
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.push(b[0]);
    }
    let mut r = parse_response(&bytes);
    let len: usize = if head_request {
        0
    } else {
        r.header("content-length").map_or(0, |v| v.parse().unwrap())
    };
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    r.body = body;
    r
}

pub fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.addr.unwrap()).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c
}
