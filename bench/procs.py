"""Starting and stopping the servers under test, and probing them over HTTP.

Every server is started in a new session (its own process group) and stopped through that
group, so that its workers go with it; `cleanup` stops whatever is still running.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

BODY = b"Hello world\n"

STARTED = []


def spawn(cmd, log_path, cwd=None, env=None):
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    finally:
        log.close()
    STARTED.append(proc)
    return proc


def stop(proc, grace=5.0):
    """TERM to the server's process group, KILL after `grace` seconds, then reap."""
    if proc in STARTED:
        STARTED.remove(proc)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
            # A worker left stopped by an interrupted TTIN measure must see the TERM.
            os.killpg(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(proc.pid):
            proc.poll()
            time.sleep(0.02)
        if not group_alive(proc.pid):
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg; they are gone once every member is a zombie.
    return any(state(p) not in ("Z", None) for p in group_members(pgid))


def group_members(pgid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = stat_fields(int(name))
            if st and st[4] == str(pgid):
                out.append(int(name))
    return out


def stat_fields(pid):
    """The fields of /proc/PID/stat as [pid, comm, state, ppid, pgrp, ...] (the command,
    which may hold spaces, as one field), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm_end = text.rfind(")")
    rest = text[comm_end + 2 :].split()
    return [str(pid), text[text.find("(") + 1 : comm_end]] + rest


def state(pid):
    st = stat_fields(pid)
    return st[2] if st else None


def descendants(pid):
    """Every live descendant of `pid` (children first), from /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = stat_fields(int(name))
            if st and st[2] != "Z":
                children.setdefault(int(st[3]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in sorted(children.get(todo.pop(0), [])):
            out.append(c)
            todo.append(c)
    return out


def cleanup():
    for proc in list(STARTED):
        stop(proc, grace=2.0)


def on_signal(signum, _frame):
    """SIGINT, SIGTERM, SIGHUP, and SIGALRM at the time limit: stop every server, exit."""
    name = signal.Signals(signum).name
    print(f"{name}: stopping the servers and exiting", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------
# HTTP probes.


def read_to_end(sock):
    """Everything the peer sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def get_status(port, timeout):
    """One `GET /` with `Connection: close`; the status code, or None if refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except (ConnectionRefusedError, socket.timeout, OSError):
        return None
    try:
        s.settimeout(timeout)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = read_to_end(s)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        if m and data.endswith(BODY):
            return int(m.group(1))
        return -1
    except (socket.timeout, OSError):
        return None
    finally:
        s.close()


def wait_first_200(port, proc, deadline_s=60.0, interval_s=0.0005):
    """Polls connect + GET every ~0.5 ms until a 200; seconds waited, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        if proc.poll() is not None:
            return None
        if get_status(port, timeout=deadline_s) == 200:
            return time.monotonic() - t0
        time.sleep(interval_s)
    return None


def free_port(start):
    port = start
    while port < 65000:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                port += 1
    raise SystemExit("no free port")
