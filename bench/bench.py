#!/usr/bin/env python3
"""runicorn against its peers, on this machine, in one run: throughput and latency (wrk),
memory per worker (smaps_rollup), time from start to the first 200, and time from TTIN to a
serving worker. Prints one table per measure with runicorn's ratio to each peer.

Run it through bench/run.sh, which installs the peers and builds runicorn first. Every
server runs from a private temporary directory on 127.0.0.1, in its own process group;
every process started here is stopped by its group id on exit, Ctrl-C included.
See bench/README.md for what is measured and how.
"""

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_DIR = os.path.join(HERE, "peers")
BODY = b"Hello world\n"

# ---------------------------------------------------------------------------------------
# Processes: every server is started in a new session (its own process group) and stopped
# through that group, so its workers go with it.

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
    """Fields of /proc/PID/stat after the command: [state, ppid, pgrp, ...] shifted so
    that index 2 is the state (index 0 pid, 1 comm)."""
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
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------
# HTTP probes.


def get_status(port, timeout):
    """One `GET /` with `Connection: close`; the status code, or None if refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except (ConnectionRefusedError, socket.timeout, OSError):
        return None
    try:
        s.settimeout(timeout)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
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


# ---------------------------------------------------------------------------------------
# The servers.


def fill(template, **values):
    with open(os.path.join(PEERS_DIR, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    return text


class Server:
    """One server under test: how to start it with N workers on a port."""

    name = "?"
    ttin = False
    keepalive = True  # keeps connections open when the client asks

    def available(self):
        return True

    def version(self):
        return ""

    def command(self, workers, port, work):
        raise NotImplementedError

    def start(self, workers, port, tmp):
        work = tempfile.mkdtemp(prefix=f"{self.name}-w{workers}-", dir=tmp)
        os.chmod(work, 0o755)
        cmd, cwd = self.command(workers, port, work)
        return spawn(cmd, os.path.join(work, "server.log"), cwd=cwd)


class Runicorn(Server):
    ttin = True

    def __init__(self, binary, keepalive_secs):
        self.binary = binary
        self.keepalive_secs = keepalive_secs
        self.name = "runicorn" if keepalive_secs == 0 else "runicorn-ka"
        self.keepalive = keepalive_secs > 0

    def available(self):
        return os.access(self.binary, os.X_OK)

    def version(self):
        try:
            rev = subprocess.run(
                ["git", "-C", ROOT, "describe", "--always", "--dirty"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except OSError:
            rev = "?"
        return f"runicorn {rev} (examples/hello)"

    def command(self, workers, port, work):
        cmd = [self.binary, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
        if self.keepalive_secs:
            cmd += ["--keepalive", str(self.keepalive_secs)]
        return cmd, work


class Nginx(Server):
    name = "nginx"

    def available(self):
        return shutil.which("nginx") is not None

    def version(self):
        return first_line(["nginx", "-v"])

    def command(self, workers, port, work):
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(fill("nginx.conf", WORKERS=workers, PORT=port, DIR=work))
        return ["nginx", "-p", work, "-c", conf, "-e", os.path.join(work, "error.log")], work


class ApachePrefork(Server):
    name = "apache"

    def available(self):
        return shutil.which("apache2") is not None and os.path.exists(
            "/usr/lib/apache2/modules/mod_mpm_prefork.so"
        )

    def version(self):
        return first_line(["apache2", "-v"]) + " prefork"

    def command(self, workers, port, work):
        htdocs = os.path.join(work, "htdocs")
        os.makedirs(htdocs)
        os.chmod(htdocs, 0o755)
        with open(os.path.join(htdocs, "hello.txt"), "wb") as f:
            f.write(BODY)
        os.chmod(os.path.join(htdocs, "hello.txt"), 0o644)
        conf = os.path.join(work, "httpd.conf")
        with open(conf, "w") as f:
            f.write(
                fill(
                    "apache.conf",
                    WORKERS=workers,
                    WORKERS_PLUS_ONE=workers + 1,
                    PORT=port,
                    DIR=work,
                )
            )
        cmd = ["apache2", "-f", conf, "-DFOREGROUND"]
        if os.geteuid() == 0:
            cmd.append("-DRUN_AS_ROOT")
        return cmd, work


class Gunicorn(Server):
    name = "gunicorn"
    ttin = True
    keepalive = False  # sync workers close every connection

    def __init__(self, python):
        self.python = python

    def available(self):
        return (
            subprocess.run(
                [self.python, "-c", "import gunicorn"], capture_output=True, timeout=30
            ).returncode
            == 0
        )

    def version(self):
        return first_line([self.python, "-m", "gunicorn", "--version"]) + " sync"

    def command(self, workers, port, work):
        cmd = [
            self.python, "-m", "gunicorn",
            "--workers", str(workers),
            "--worker-class", "sync",
            "--preload",
            "--bind", f"127.0.0.1:{port}",
            "--backlog", "1024",
            "--chdir", PEERS_DIR,
            "--worker-tmp-dir", work,
            "--pid", os.path.join(work, "gunicorn.pid"),
        ]
        if "--no-control-socket" in gunicorn_help(self.python):
            cmd.append("--no-control-socket")
        return cmd + ["hello_wsgi:app"], work


class Unicorn(Server):
    name = "unicorn"
    ttin = True
    keepalive = False  # Unicorn closes every connection

    def available(self):
        return shutil.which("unicorn") is not None

    def version(self):
        return first_line(["unicorn", "-v"])

    def command(self, workers, port, work):
        conf = os.path.join(work, "unicorn.rb")
        with open(conf, "w") as f:
            f.write(fill("unicorn.rb", WORKERS=workers, PORT=port, DIR=work))
        return ["unicorn", "-E", "none", "-c", conf, os.path.join(PEERS_DIR, "config.ru")], work


class Puma(Server):
    name = "puma"
    ttin = True

    def available(self):
        return shutil.which("puma") is not None

    def version(self):
        return first_line(["puma", "--version"]) + " cluster, 1 thread"

    def command(self, workers, port, work):
        return [
            "puma",
            "--workers", str(workers),
            "--threads", "1:1",
            "--preload",
            "--environment", "production",
            "--bind", f"tcp://127.0.0.1:{port}?backlog=1024",
            "--pidfile", os.path.join(work, "puma.pid"),
            os.path.join(PEERS_DIR, "config.ru"),
        ], work


_GUNICORN_HELP = {}


def gunicorn_help(python):
    if python not in _GUNICORN_HELP:
        _GUNICORN_HELP[python] = subprocess.run(
            [python, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=30
        ).stdout
    return _GUNICORN_HELP[python]


def first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


# ---------------------------------------------------------------------------------------
# Measures.


def parse_duration_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[m.group(2)]


def wrk(port, seconds, connections, keepalive):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if not keepalive:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}/")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    except subprocess.TimeoutExpired:
        return None
    res = {"rps": None, "p50": None, "p99": None, "errors": 0, "requests": 0}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            res["rps"] = float(line.split()[1])
        elif re.match(r"^(50|99)(\.000)?%", line):
            pct, val = line.split()[:2]
            res["p" + pct.split("%")[0].split(".")[0]] = parse_duration_ms(val)
        elif line.startswith("Socket errors:"):
            res["errors"] += sum(int(n) for n in re.findall(r"\d+", line))
        elif line.startswith("Non-2xx or 3xx responses:"):
            res["errors"] += int(line.split(":")[1])
        elif "requests in" in line:
            res["requests"] = int(line.split()[0])
    return res if res["rps"] is not None else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def memory_of(pid):
    """RSS, PSS and USS (Private_Clean + Private_Dirty) in KiB, from smaps_rollup."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    fields[parts[0][:-1]] = int(parts[1])
    except OSError:
        return None
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args, servers):
        self.args = args
        self.servers = servers
        self.tmp = tempfile.mkdtemp(prefix="runicorn-bench-")
        os.chmod(self.tmp, 0o755)
        self.port = args.port_base
        self.results = {"throughput": [], "memory": [], "startup": []}

    def next_port(self):
        self.port = free_port(self.port + 1)
        return self.port

    def up(self, server, workers):
        """Starts a server and waits for its first 200; (proc, port, seconds) or None."""
        port = self.next_port()
        t0 = time.monotonic()
        proc = server.start(workers, port, self.tmp)
        waited = wait_first_200(port, proc)
        if waited is None:
            log(f"  {server.name}: no 200 within 60 s; see its log under {self.tmp}")
            stop(proc)
            return None
        return proc, port, time.monotonic() - t0

    def wait_workers(self, proc, workers, timeout=30.0):
        """Waits until the server has `workers` worker processes (children of the master)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(workers_of(proc.pid)) >= workers:
                return True
            time.sleep(0.05)
        return False

    # -- throughput and latency --------------------------------------------------------

    def throughput(self):
        a = self.args
        for workers in a.workers:
            log(f"throughput: {workers} worker(s), load {load1():.2f}")
            running = {}
            for s in self.servers:
                up = self.up(s, workers)
                if up:
                    running[s.name] = up
                    self.wait_workers(up[0], workers)
            try:
                for mode in ("close", "keepalive"):
                    names = [
                        s.name
                        for s in self.servers
                        if s.name in running
                        and not (s.name == "runicorn" and mode == "keepalive")
                        and not (s.name == "runicorn-ka" and mode == "close")
                    ]
                    for name in names:  # warm-up, not recorded
                        wrk(running[name][1], 1, a.connections, mode == "keepalive")
                    runs = {n: [] for n in names}
                    # Rounds over the servers, so that a change in the machine's load
                    # touches every server alike.
                    for r in range(a.runs):
                        for name in names:
                            res = wrk(running[name][1], a.duration, a.connections, mode == "keepalive")
                            runs[name].append(res)
                            if res:
                                log(f"  {mode:9} {name:11} run {r + 1}: {res['rps']:9.0f} req/s "
                                    f"p99 {res['p99']:.2f} ms errors {res['errors']}")
                    for name in names:
                        ok = [x for x in runs[name] if x]
                        self.results["throughput"].append({
                            "mode": mode,
                            "workers": workers,
                            "server": "runicorn" if name.startswith("runicorn") else name,
                            "rps": median([x["rps"] for x in ok]),
                            "p50": median([x["p50"] for x in ok]),
                            "p99": median([x["p99"] for x in ok]),
                            "errors": sum(x["errors"] for x in ok),
                            "runs": [x["rps"] for x in ok],
                        })
            finally:
                for proc, _, _ in running.values():
                    stop(proc)

    # -- memory ------------------------------------------------------------------------

    def memory(self):
        a = self.args
        for workers in a.memory_workers:
            log(f"memory: {workers} worker(s), load {load1():.2f}")
            for s in self.servers:
                if s.name == "runicorn-ka":
                    continue
                up = self.up(s, workers)
                if not up:
                    continue
                proc, port, _ = up
                try:
                    self.wait_workers(proc, workers)
                    # Every worker serves a little first, so that its pages for serving are
                    # touched as in production; then the figures settle.
                    wrk(port, 1, max(16, workers * 2), False)
                    time.sleep(0.5)
                    ws = workers_of(proc.pid)
                    every = [proc.pid] + descendants(proc.pid)
                    per_worker = [m for m in (memory_of(w) for w in ws) if m]
                    total = [m for m in (memory_of(p) for p in every) if m]
                    self.results["memory"].append({
                        "workers": workers,
                        "server": "runicorn" if s.name.startswith("runicorn") else s.name,
                        "worker_count": len(ws),
                        "worker_rss": median([m["rss"] for m in per_worker]),
                        "worker_pss": median([m["pss"] for m in per_worker]),
                        "worker_uss": median([m["uss"] for m in per_worker]),
                        "total_pss": sum(m["pss"] for m in total),
                        "processes": len(total),
                    })
                finally:
                    stop(proc)

    # -- start to first 200, TTIN to a serving worker ------------------------------------

    def startup(self):
        a = self.args
        log(f"start and TTIN: load {load1():.2f}")
        for s in self.servers:
            if s.name == "runicorn-ka":
                continue
            starts, ttins = [], []
            for _ in range(a.startup_runs):
                up = self.up(s, a.startup_workers)
                if not up:
                    continue
                proc, port, took = up
                starts.append(took * 1000)
                stop(proc)
            if s.ttin:
                ttins = self.ttin(s)
            self.results["startup"].append({
                "server": "runicorn" if s.name.startswith("runicorn") else s.name,
                "start_ms": median(starts),
                "starts": starts,
                "ttin_ms": median(ttins) if s.ttin else None,
                "ttins": ttins,
            })
            log(f"  {s.name:11} start {fmt(median(starts), 1)} ms, TTIN "
                f"{fmt(median(ttins), 1) if s.ttin else 'n/a'} ms")

    def ttin(self, s):
        """TTIN to a serving worker: every existing worker is stopped (SIGSTOP), TTIN goes
        to the master, and one GET is sent at once. Only the new worker can answer it, so
        the time from the signal to the 200 is fork + boot + accept + serve. Repeated on
        the same server (1 worker, then 2, ...), the old workers resumed in between."""
        up = self.up(s, 1)
        if not up:
            return []
        proc, port, _ = up
        out = []
        try:
            for i in range(self.args.startup_runs):
                if not self.wait_workers(proc, i + 1):
                    break
                for _ in range(20):
                    get_status(port, timeout=5)
                old = workers_of(proc.pid)
                for w in old:
                    os.kill(w, signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    os.kill(proc.pid, signal.SIGTTIN)
                    status = get_status(port, timeout=30)
                    took = time.monotonic() - t0
                finally:
                    for w in old:
                        try:
                            os.kill(w, signal.SIGCONT)
                        except ProcessLookupError:
                            pass
                if status == 200:
                    out.append(took * 1000)
        finally:
            stop(proc)
        return out


def workers_of(master):
    """The worker processes: the master's live children."""
    return [p for p in descendants(master) if stat_fields(p) and stat_fields(p)[3] == str(master)]


# ---------------------------------------------------------------------------------------
# Report.


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def ratio(ours, theirs, digits=2):
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.{digits}f}"


def table(rows, header, left=2):
    """Plain-text columns: the first `left` aligned left, the figures right."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def report(res, meta, args):
    out = []
    out.append("runicorn benchmark")
    out.append(f"  machine: {meta['cpus']} CPUs ({meta['cpu_model']}), {meta['mem_gib']:.1f} GiB, "
               f"Linux {meta['kernel']}; load average {meta['load_start']:.2f} at start, "
               f"{meta['load_end']:.2f} at end; {meta['minutes']:.1f} min")
    for name, v in meta["versions"].items():
        out.append(f"  {name}: {v}")
    out.append("")
    out.append(f"Throughput and latency: wrk -t1 -c{args.connections}, median of {args.runs} x "
               f"{args.duration} s, servers measured in rounds. 'x req/s' is runicorn's req/s "
               "divided by the server's; 'x p99' is runicorn's p99 divided by the server's "
               "(below 1: runicorn's is lower).")
    tp = res["throughput"]
    for mode in ("close", "keepalive"):
        rows = []
        for workers in args.workers:
            ours = next((r for r in tp if r["mode"] == mode and r["workers"] == workers
                         and r["server"] == "runicorn"), None)
            for r in [x for x in tp if x["mode"] == mode and x["workers"] == workers]:
                rows.append([
                    workers, r["server"], fmt(r["rps"]), fmt(r["p50"], 2), fmt(r["p99"], 2),
                    r["errors"],
                    "" if r["server"] == "runicorn" else ratio(ours and ours["rps"], r["rps"]),
                    "" if r["server"] == "runicorn" else ratio(ours and ours["p99"], r["p99"]),
                ])
        title = ("Connection: close" if mode == "close"
                 else "keep-alive (runicorn --keepalive 5; gunicorn sync and unicorn close anyway)")
        out.append("")
        out.append(f"  {title}")
        out.append(indent(table(rows, ["workers", "server", "req/s", "p50 ms", "p99 ms",
                                       "errors", "x req/s", "x p99"])))
    out.append("")
    out.append("Memory after a 1 s warm-up (KiB): median per worker of RSS, PSS and USS "
               "(Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup; total PSS over "
               "every process of the server. 'x' columns: runicorn's figure divided by the "
               "server's.")
    mem = res["memory"]
    rows = []
    for workers in args.memory_workers:
        ours = next((r for r in mem if r["workers"] == workers and r["server"] == "runicorn"), None)
        for r in [x for x in mem if x["workers"] == workers]:
            mine = r["server"] == "runicorn"
            rows.append([
                workers, r["server"], r["processes"], fmt(r["worker_rss"]), fmt(r["worker_pss"]),
                fmt(r["worker_uss"]), fmt(r["total_pss"]),
                "" if mine else ratio(ours and ours["worker_pss"], r["worker_pss"]),
                "" if mine else ratio(ours and ours["total_pss"], r["total_pss"]),
            ])
    out.append(indent(table(rows, ["workers", "server", "procs", "worker RSS", "worker PSS",
                                   "worker USS", "total PSS", "x worker PSS", "x total PSS"])))
    out.append("")
    out.append(f"Start to first 200 ({args.startup_workers} workers; spawn to the first 200 of a "
               "GET polled every 0.5 ms) and TTIN to a serving worker (old workers stopped, "
               f"signal to the 200 the new one answers); medians of {args.startup_runs}, ms. "
               "'x' columns: runicorn's time divided by the server's.")
    st = res["startup"]
    ours = next((r for r in st if r["server"] == "runicorn"), None)
    rows = []
    for r in st:
        mine = r["server"] == "runicorn"
        rows.append([
            r["server"], fmt(r["start_ms"], 1),
            fmt(r["ttin_ms"], 1) if r["ttin_ms"] is not None else "n/a",
            "" if mine else ratio(ours and ours["start_ms"], r["start_ms"], 3),
            "" if mine or r["ttin_ms"] is None else ratio(ours and ours["ttin_ms"], r["ttin_ms"], 3),
        ])
    out.append(indent(table(rows, ["server", "start ms", "TTIN ms", "x start", "x TTIN"], left=1)))
    out.append("")
    out.append("Targets (issue 6): throughput at 2 workers, memory at each count measured:")
    out.extend("  " + t for t in targets(res))
    return "\n".join(out)


def indent(text):
    return "\n".join("  " + line for line in text.splitlines())


def targets(res):
    def tp(mode, server, workers=2):
        return next((r for r in res["throughput"] if r["mode"] == mode and r["server"] == server
                     and r["workers"] == workers), None)

    def mem(server, workers):
        return next((r for r in res["memory"] if r["server"] == server and r["workers"] == workers), None)

    def check(label, value, ok):
        if value is None:
            return f"[ ?  ] {label}: not measured"
        return f"[{'met' if ok else 'MISS'}] {label}: {value}"

    out = []
    ours, ngx = tp("close", "runicorn"), tp("close", "nginx")
    if ours and ngx and ours["rps"] and ngx["rps"]:
        r = ours["rps"] / ngx["rps"]
        out.append(check("close req/s >= nginx", f"{r:.2f}x", r >= 1.0))
        r = ours["p99"] / ngx["p99"]
        out.append(check("close p99 within 1.2x nginx", f"{r:.2f}x", r <= 1.2))
    ours, ngx = tp("keepalive", "runicorn"), tp("keepalive", "nginx")
    if ours and ngx and ours["rps"] and ngx["rps"]:
        r = ours["rps"] / ngx["rps"]
        out.append(check("keep-alive req/s >= 0.7x nginx", f"{r:.2f}x", r >= 0.7))
        r = ours["p99"] / ngx["p99"]
        out.append(check("keep-alive p99 within 2x nginx", f"{r:.2f}x", r <= 2.0))
    # Memory: at every worker count measured.
    for workers in sorted({r["workers"] for r in res["memory"]}):
        ours, apa = mem("runicorn", workers), mem("apache", workers)
        if ours and apa:
            out.append(check(f"worker PSS below Apache prefork's ({workers} workers)",
                             f"{ours['worker_pss']} vs {apa['worker_pss']} KiB",
                             ours["worker_pss"] < apa["worker_pss"]))
            out.append(check(f"total PSS below Apache prefork's ({workers} workers)",
                             f"{ours['total_pss']} vs {apa['total_pss']} KiB",
                             ours["total_pss"] < apa["total_pss"]))
    st = {r["server"]: r for r in res["startup"]}
    if "runicorn" in st and "nginx" in st and st["runicorn"]["start_ms"] and st["nginx"]["start_ms"]:
        out.append(check("start to first 200 below nginx's",
                         f"{st['runicorn']['start_ms']:.1f} vs {st['nginx']['start_ms']:.1f} ms",
                         st["runicorn"]["start_ms"] < st["nginx"]["start_ms"]))
    return out


def machine():
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except OSError:
        mem_kib = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gib": mem_kib / 2**20,
        "kernel": platform.release(),
    }


def main():
    p = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="runicorn against nginx, Apache prefork, Gunicorn, Unicorn and Puma: "
        "throughput and latency, memory, start and TTIN times. See bench/README.md.")
    p.add_argument("--runicorn", required=True, help="the hello example binary")
    p.add_argument("--python", default=sys.executable, help="python with gunicorn installed")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                   help="worker counts for the throughput runs (default: 1 2 4)")
    p.add_argument("--memory-workers", type=int, nargs="+", default=[1, 2, 4, 16],
                   help="worker counts for the memory figures (default: 1 2 4 16)")
    p.add_argument("--startup-workers", type=int, default=2,
                   help="workers for the start-to-first-200 measure (default: 2)")
    p.add_argument("--startup-runs", type=int, default=3,
                   help="starts and TTINs per server (default: 3)")
    p.add_argument("--runs", type=int, default=3, help="wrk runs per figure (default: 3)")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default: 5)")
    p.add_argument("--connections", type=int, default=16, help="wrk -c (default: 16)")
    p.add_argument("--port-base", type=int, default=18400,
                   help="first loopback port to try (default: 18400)")
    p.add_argument("--only", nargs="+", help="servers to run (default: every available one)")
    p.add_argument("--skip", nargs="+", default=[], choices=["throughput", "memory", "startup"],
                   help="measures to leave out")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "bench"),
                   help="where the table and the JSON are saved (default: target/bench)")
    p.add_argument("--time-limit", type=int, default=1800,
                   help="seconds; past it the run stops its servers and exits")
    args = p.parse_args()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, on_signal)
    atexit.register(cleanup)
    signal.alarm(args.time_limit)

    servers = [
        Runicorn(args.runicorn, 0),
        Runicorn(args.runicorn, 5),
        Nginx(),
        ApachePrefork(),
        Gunicorn(args.python),
        Unicorn(),
        Puma(),
    ]
    if args.only:
        servers = [s for s in servers if s.name in args.only or
                   (s.name == "runicorn-ka" and "runicorn" in args.only)]
    missing = [s.name for s in servers if not s.available()]
    servers = [s for s in servers if s.available()]
    if missing:
        log(f"not installed, skipped: {', '.join(missing)}")

    started = time.monotonic()
    meta = machine()
    meta["load_start"] = load1()
    meta["versions"] = {s.name: s.version() for s in servers if s.name != "runicorn-ka"}
    meta["versions"]["wrk"] = first_line(["wrk", "-v"])
    bench = Bench(args, servers)
    try:
        if "startup" not in args.skip:
            bench.startup()
        if "memory" not in args.skip:
            bench.memory()
        if "throughput" not in args.skip:
            bench.throughput()
    finally:
        cleanup()
    meta["load_end"] = load1()
    meta["minutes"] = (time.monotonic() - started) / 60
    text = report(bench.results, meta, args)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.out, f"bench-{stamp}.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, f"bench-{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "args": vars(args), "results": bench.results}, f, indent=1)
    log(f"saved to {args.out}/bench-{stamp}.{{txt,json}}; server logs in {bench.tmp}")


if __name__ == "__main__":
    main()
