use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;

use crate::support::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = runicorn(args);
    cmd.envs(env.iter().copied());
    let r = run_bounded(cmd, None, DEADLINE);
    (r.status.code(), r.out, r.err)
}

#[test]
fn a_bad_value_exits_2_with_one_line_naming_the_setting() {
    for (args, env, setting) in [
        (&["--workers", "many"][..], &[][..], "workers (--workers)"),
        (
            &[],
            &[("WEB_CONCURRENCY", "-3")][..],
            "workers (WEB_CONCURRENCY)",
        ),
        (&["--timeout", "soon"], &[], "timeout (--timeout)"),
        (&[], &[("PORT", "eighty")], "bind (PORT)"),
        (&["--bind", "example.com"], &[], "bind (--bind)"),
        (&["--frobnicate"], &[], "unknown argument '--frobnicate'"),
    ] {
        let (code, _, err) = run(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(setting), "{setting} not in {err}");
        assert!(err.contains("accepts") || err.contains("unknown"), "{err}");
    }
}

#[test]
fn help_lists_every_setting_and_version_prints() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    let doc =
        std::fs::read_to_string(format!("{}/docs/settings.md", crate::support::ROOT)).unwrap();
    let flags: Vec<&str> = doc
        .split('`')
        .filter(|s| s.starts_with("--"))
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    assert!(flags.len() >= 18, "{flags:?}");
    for flag in flags {
        assert!(out.contains(flag), "{flag} missing from --help");
    }
    assert!(out.contains("WEB_CONCURRENCY"));
    // The runicorn command's main is runicorn_tools::run: the subcommands are listed after
    // the settings, as for any app whose main is that one call.
    let subcommands = out
        .find("Subcommands (each takes --help):")
        .expect("subcommands listed");
    assert!(out.find("Settings:").unwrap() < subcommands);
    assert!(out[subcommands..].contains("\n  tune "), "{out}");
    assert!(out[subcommands..].contains("\n  metrics "), "{out}");
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(out, format!("runicorn {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_validates_without_binding() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The address is in use, but --check-config does not bind.
    let (code, _, err) = run(&["--check-config", "--bind", &addr], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("configuration ok"), "{err}");
    let (code, _, _) = run(&["--check-config", "--workers", "0"], &[]);
    assert_eq!(code, Some(2));
}

#[test]
fn an_address_in_use_is_a_startup_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(&["--bind", &addr, "--workers", "1"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot listen on") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn port_is_honoured() {
    // The one test that needs a port number in the environment: pick a free one.
    let port = free_port();
    let s = Spawn::new(&["--workers", "1"])
        .no_listen_fd()
        .env("PORT", &port.to_string())
        .start();
    s.wait_log(&["worker ready"], 1);
    let line = &s.wait_log(&["listening"], 1)[0];
    assert!(line.contains(&format!(":{port}")), "{line}");
    let r = request(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn serves_on_several_binds_including_a_unix_socket_and_removes_it_on_exit() {
    let dir = std::env::temp_dir().join(format!("runicorn-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("app.sock");
    let bind_unix = format!("unix:{}", sock.display());
    let mut s = Spawn::new(&[
        "--workers",
        "1",
        "--bind",
        &bind_unix,
        "--bind",
        "127.0.0.1:0",
        "--bind",
        "[::1]:0",
    ])
    .no_listen_fd()
    .start();
    s.wait_log(&["worker ready"], 1);
    let listening = s.wait_log(&["listening"], 2);
    let tcp = listening
        .iter()
        .find(|l| l.contains("addr=127.0.0.1:"))
        .expect("tcp listener");
    let addr = tcp.rsplit("addr=").next().unwrap().trim().parse().unwrap();
    assert_eq!(
        request(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );

    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut bytes = Vec::new();
    c.read_to_end(&mut bytes).unwrap();
    assert_eq!(parse_response(&bytes).status, 200);

    // IPv6 loopback, where the machine has it.
    if let Some(v6) = s.logs().iter().find(|l| l.contains("addr=[::1]:")) {
        let addr = v6.rsplit("addr=").next().unwrap().trim().parse().unwrap();
        assert_eq!(
            request(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
            200
        );
    } else {
        eprintln!(
            "not checked here: a request served on [::1]; the server logged no listener there \
             (no IPv6 loopback on this machine?)"
        );
    }

    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
    assert!(!sock.exists(), "the socket file is removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_pid_file_is_written_and_removed() {
    let path = std::env::temp_dir().join(format!("runicorn-it-{}.pid", std::process::id()));
    let mut s = Server::start(&["--workers", "1", "--pid", path.to_str().unwrap()]);
    s.wait_log(&["worker ready"], 1);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        s.pid.to_string()
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
    assert!(!path.exists());
}
