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
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from faults import run_fault  # noqa: E402
from procs import cleanup, descendants, free_port, get_status, on_signal, stat_fields, stop, wait_first_200  # noqa: E402
from report import fmt, report  # noqa: E402
from servers import (  # noqa: E402
    HERE, ROOT, ApachePrefork, AxumServe, Gunicorn, Nginx, Puma, Runicorn, RunicornAxum, Unicorn, first_line,
)


def parse_duration_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[m.group(2)]


def wrk(port, seconds, connections, keepalive, path="/"):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if not keepalive:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
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
        self.axum_servers = []  # the --axum section's servers, when it runs
        self.dyno_note = None  # why the leak row runs without a memory cgroup, if it does
        self.results = {"throughput": [], "memory": [], "startup": [],
                        "axum_throughput": [], "axum_memory": [], "axum_faults": []}

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
            log(f"  {server.name}: no 200 within 60 s; its log is under {self.tmp} (--keep-logs keeps it)")
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
        """Start to first 200 and TTIN to a serving worker, in rounds over the servers (as
        for throughput: a burst of load from elsewhere touches every server alike)."""
        a = self.args
        log(f"start and TTIN: load {load1():.2f}")
        servers = [s for s in self.servers if s.name != "runicorn-ka"]
        starts = {s.name: [] for s in servers}
        # Round 0 is not counted: it reads the binary (or the interpreter and its
        # libraries) from disk, which the later rounds find in the page cache.
        for r in range(a.startup_runs + 1):
            for s in servers:
                up = self.up(s, a.startup_workers)
                if up:
                    stop(up[0])
                    if r > 0:
                        starts[s.name].append(up[2] * 1000)
        ttins = self.ttins([s for s in servers if s.ttin])
        for s in servers:
            self.results["startup"].append({
                "server": "runicorn" if s.name.startswith("runicorn") else s.name,
                "start_ms": median(starts[s.name]),
                "starts": starts[s.name],
                "ttin_ms": median(ttins.get(s.name, [])) if s.ttin else None,
                "ttins": ttins.get(s.name, []),
            })
            log(f"  {s.name:11} start {fmt(median(starts[s.name]), 1)} ms, TTIN "
                f"{fmt(median(ttins.get(s.name, [])), 1) if s.ttin else 'n/a'} ms")

    def ttins(self, servers):
        """TTIN to a serving worker: every existing worker is stopped (SIGSTOP), TTIN goes
        to the master, and one GET is sent at once. Only the new worker can answer it, so
        the time from the signal to the 200 is fork + boot + accept + serve. Each server
        starts with 1 worker and is measured once per round (with 1, then 2, ... workers
        already there), the old workers resumed in between."""
        running = {}
        for s in servers:
            up = self.up(s, 1)
            if up:
                running[s.name] = up
        out = {name: [] for name in running}
        try:
            for i in range(self.args.startup_runs):
                for name, (proc, port, _) in running.items():
                    took = self.ttin_once(proc, port, i + 1)
                    if took is not None:
                        out[name].append(took * 1000)
        finally:
            for proc, _, _ in running.values():
                stop(proc)
        return out

    def ttin_once(self, proc, port, workers):
        if not self.wait_workers(proc, workers):
            return None
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
        return took if status == 200 else None

    # -- the axum section (--axum): runicorn-axum against axum::serve ------------------------

    def axum_throughput(self):
        """`/` and `/io` of examples/axum_bench.rs, close and keep-alive, at each worker count:
        runicorn (`--workers N`, `--keepalive 5` for keep-alive, `--worker-connections` for
        `/io`) against axum::serve with N threads, in rounds as for the peers."""
        a = self.args
        names = [s.name for s in self.axum_servers]
        for workers in a.workers:
            for path, conns, wc in (("/", a.connections, 1), ("/io", a.io_connections, a.io_worker_connections)):
                log(f"axum throughput {path}: {workers} worker(s), load {load1():.2f}")
                servers = {}
                if "runicorn-axum" in names:
                    servers["runicorn-axum close"] = RunicornAxum(a.axum_bench, 0, wc)
                    servers["runicorn-axum keepalive"] = RunicornAxum(a.axum_bench, 5, wc)
                if "axum-serve" in names:
                    servers["axum-serve"] = AxumServe(a.axum_bench)
                running = {}
                try:
                    for key, s in servers.items():
                        up = self.up(s, workers)
                        if up:
                            running[key] = up
                            if s.name == "runicorn-axum":
                                self.wait_workers(up[0], workers)
                    for mode in ("close", "keepalive"):
                        keys = [k for k in running if k == "axum-serve" or k.endswith(mode)]
                        for key in keys:  # warm-up, not recorded
                            wrk(running[key][1], 1, conns, mode == "keepalive", path)
                        runs = {k: [] for k in keys}
                        for r in range(a.runs):
                            for key in keys:
                                res = wrk(running[key][1], a.duration, conns, mode == "keepalive", path)
                                runs[key].append(res)
                                if res:
                                    log(f"  {path:3} {mode:9} {key.split()[0]:13} run {r + 1}: {res['rps']:9.0f} "
                                        f"req/s p99 {res['p99']:.2f} ms errors {res['errors']}")
                        for key in keys:
                            ok = [x for x in runs[key] if x]
                            self.results["axum_throughput"].append({
                                "path": path,
                                "mode": mode,
                                "workers": workers,
                                "connections": conns,
                                "server": key.split()[0],
                                "flags": " ".join(servers[key].flags()) if key != "axum-serve" else "",
                                "rps": median([x["rps"] for x in ok]),
                                "p50": median([x["p50"] for x in ok]),
                                "p99": median([x["p99"] for x in ok]),
                                "errors": sum(x["errors"] for x in ok),
                                "runs": [x["rps"] for x in ok],
                            })
                finally:
                    for proc, _, _ in running.values():
                        stop(proc)

    def axum_memory(self):
        """Per worker RSS, PSS and USS of runicorn-axum (each worker holds its Tokio runtime),
        with and without --worker-connections, and axum::serve's one process, after 1 s of
        `/` and 1 s of `/io`."""
        a = self.args
        names = [s.name for s in self.axum_servers]
        servers = []
        if "runicorn-axum" in names:
            servers += [RunicornAxum(a.axum_bench, 0, 1), RunicornAxum(a.axum_bench, 0, a.io_worker_connections)]
        if "axum-serve" in names:
            servers.append(AxumServe(a.axum_bench))
        for workers in a.memory_workers:
            log(f"axum memory: {workers} worker(s), load {load1():.2f}")
            for s in servers:
                up = self.up(s, workers)
                if not up:
                    continue
                proc, port, _ = up
                try:
                    runicorn = s.name == "runicorn-axum"
                    if runicorn:
                        self.wait_workers(proc, workers)
                    wrk(port, 1, max(16, workers * 2), False, "/")
                    wrk(port, 1, a.io_connections, False, "/io")
                    time.sleep(0.5)
                    ws = workers_of(proc.pid) if runicorn else []
                    every = [proc.pid] + descendants(proc.pid)
                    per_worker = [m for m in (memory_of(w) for w in ws) if m]
                    total = [m for m in (memory_of(p) for p in every) if m]
                    self.results["axum_memory"].append({
                        "workers": workers,
                        "server": s.name,
                        "flags": " ".join(s.flags()) if runicorn else f"--threads {workers}",
                        "worker_count": len(ws),
                        "worker_rss": median([m["rss"] for m in per_worker]),
                        "worker_pss": median([m["pss"] for m in per_worker]),
                        "worker_uss": median([m["uss"] for m in per_worker]),
                        "total_rss": sum(m["rss"] for m in total),
                        "total_pss": sum(m["pss"] for m in total),
                        "total_uss": sum(m["uss"] for m in total),
                        "processes": len(total),
                    })
                finally:
                    stop(proc)

    def axum_faults(self):
        """One row per fault route: each server is started afresh (2 workers / 2 threads),
        a steady client loads `/` for --fault-seconds while the fault route is hit
        --fault-hits times, evenly spaced; the leak row runs both servers in a memory cgroup
        (bench/dyno.sh) and hits the leak route in bursts."""
        a = self.args
        dyno_mb = a.dyno_mb if self.dyno_note is None else None
        if self.dyno_note:
            log(f"axum faults: {self.dyno_note}")
        names = [s.name for s in self.axum_servers]
        # The first hit at 1 s, the last 6 s before the end, evenly spaced: with runicorn's
        # --timeout 5 the master kills a stuck worker about 6 s after its request started,
        # so each kill falls inside the run and, 6.5 s apart at 20 s, no two stuck workers
        # overlap.
        last = max(1.0, a.fault_seconds - 6.0)
        step = (last - 1.0) / (a.fault_hits - 1) if a.fault_hits > 1 else 0
        at = [1.0 + i * step for i in range(a.fault_hits)]
        for fault in a.faults:
            leak = fault == "leak"
            for name in names:
                if name == "axum-serve":
                    s = AxumServe(a.axum_bench, dyno_mb=dyno_mb if leak else None)
                else:
                    extra = ["--timeout", str(a.fault_timeout)]
                    if leak:
                        extra += ["--max-worker-memory", str(a.max_worker_memory)]
                    s = RunicornAxum(a.axum_bench, 0, a.fault_worker_connections, extra,
                                     dyno_mb=dyno_mb if leak else None)
                log(f"axum faults: /fault/{fault} on {name}, load {load1():.2f}")
                up = self.up(s, 2)
                if not up:
                    continue
                proc, port, _ = up
                try:
                    if name == "runicorn-axum":
                        self.wait_workers(proc, 2)
                    res = run_fault(port, f"/fault/{fault}", a.fault_seconds, at,
                                    a.leak_burst if leak else 1, a.fault_connections,
                                    a.fault_client_timeout, a.fault_hit_timeout)
                    alive = proc.poll() is None
                    workers_at_end = len(workers_of(proc.pid)) if alive and name == "runicorn-axum" else None
                finally:
                    stop(proc)
                    if s.dyno_mb:
                        remove_dyno(proc.log_path)
                events = server_events(proc.log_path)
                res.update({
                    "fault": fault,
                    "server": name,
                    "flags": (" ".join(s.flags()) if name == "runicorn-axum" else "--threads 2")
                    + (f" (in a {dyno_mb} MiB cgroup)" if s.dyno_mb else ""),
                    "burst": a.leak_burst if leak else 1,
                    "alive_at_end": alive,
                    "workers_at_end": workers_at_end,
                    "events": events,
                    "kills": sum(1 for e in events if 'msg="worker killed"' in e),
                    "replaced": sum(1 for e in events if "over its memory" in e),
                })
                self.results["axum_faults"].append(res)
                log(f"  answered {res['answered']} failed {res['failed']} (timeouts {res['timeouts']}, "
                    f"refused {res['refused']}, errors {res['errors']}, non-2xx {res['non2xx']}), "
                    f"longest gap {res['longest_gap_s']:.2f} s, fault hits {res['fault_outcomes'][:6]}"
                    f"{'...' if len(res['fault_outcomes']) > 6 else ''}, alive {alive}")
                for e in events[:12]:
                    log(f"    {e}")


def workers_of(master):
    """The worker processes: the master's live children."""
    return [p for p in descendants(master) if stat_fields(p) and stat_fields(p)[3] == str(master)]


# What a server's log says about its workers during a fault run: runicorn's master names each
# worker it kills or loses and each it replaces; the kernel's OOM kill of axum::serve shows
# only as the process gone (alive_at_end).
EVENT = re.compile(r'msg="worker (timeout|killed|exited|ended|died|over its memory)')


def server_events(log_path):
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.rstrip() for line in f]
    except OSError:
        return []
    return [line for line in lines if EVENT.search(line) and "dyno.sh" not in line]


def dyno_check():
    """None when bench/dyno.sh can make a memory cgroup here, else why not."""
    try:
        r = subprocess.run([os.path.join(HERE, "dyno.sh"), "16", "--", "true"],
                           capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"no memory cgroup ({e}): the leak row ran without a memory limit"
    m = re.search(r"memory cgroup (\S+) \(cgroup", r.stderr)
    if r.returncode != 0 or not m:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
        return f"no memory cgroup ({why}): the leak row ran without a memory limit"
    try:
        os.rmdir(m.group(1))
    except OSError:
        pass
    return None


def remove_dyno(log_path):
    """Removes the cgroup bench/dyno.sh made for a server (named in the server's log) once
    the server has exited."""
    try:
        with open(log_path, errors="replace") as f:
            m = re.search(r"memory cgroup (\S+) \(cgroup", f.read())
    except OSError:
        return
    if m:
        for _ in range(50):
            try:
                os.rmdir(m.group(1))
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        log(f"could not remove the cgroup {m.group(1)}")

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
    p.add_argument("--startup-runs", type=int, default=5,
                   help="starts and TTINs per server (default: 5)")
    p.add_argument("--runs", type=int, default=3, help="wrk runs per figure (default: 3)")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default: 5)")
    p.add_argument("--connections", type=int, default=16, help="wrk -c (default: 16)")
    p.add_argument("--port-base", type=int, default=18400,
                   help="first loopback port to try (default: 18400)")
    p.add_argument("--only", nargs="+", help="servers to run (default: every available one)")
    p.add_argument("--skip", nargs="+", default=[], choices=["throughput", "memory", "startup", "faults"],
                   help="measures to leave out")
    g = p.add_argument_group(
        "axum section", "runicorn-axum (examples/axum_bench.rs served by runicorn) against "
        "axum-serve (the same Router under axum::serve): throughput on / and /io, memory, "
        "fault isolation. Runs with --axum (then instead of the peers), or when --only names "
        "runicorn-axum or axum-serve.")
    g.add_argument("--axum", action="store_true", help="run the axum section instead of the peers")
    g.add_argument("--axum-bench", help="the axum_bench example binary (bench/run.sh builds it)")
    g.add_argument("--io-connections", type=int, default=64,
                   help="wrk -c for /io, a route that sleeps 20 ms (default: 64)")
    g.add_argument("--io-worker-connections", type=int, default=64,
                   help="runicorn's --worker-connections for /io (default: 64)")
    g.add_argument("--faults", nargs="+", default=["block", "abort", "leak", "spin"],
                   choices=["block", "abort", "leak", "spin"], help="fault rows (default: all four)")
    g.add_argument("--fault-seconds", type=int, default=20, help="seconds of steady load per row (default: 20)")
    g.add_argument("--fault-hits", type=int, default=3,
                   help="times the fault route is hit, evenly spaced (default: 3)")
    g.add_argument("--fault-connections", type=int, default=4,
                   help="connections of the steady client (default: 4)")
    g.add_argument("--fault-client-timeout", type=float, default=2.0,
                   help="seconds the steady client waits for an answer (default: 2)")
    g.add_argument("--fault-hit-timeout", type=float, default=1.0,
                   help="seconds a fault request waits (default: 1)")
    g.add_argument("--fault-worker-connections", type=int, default=16,
                   help="runicorn's --worker-connections in the fault rows (default: 16)")
    g.add_argument("--fault-timeout", type=int, default=5,
                   help="runicorn's --timeout in the fault rows (default: 5)")
    g.add_argument("--leak-burst", type=int, default=100,
                   help="leak requests (1 MiB each) per hit of the leak row (default: 100)")
    g.add_argument("--dyno-mb", type=int, default=256,
                   help="memory cgroup of the leak row, MiB, for both servers (default: 256)")
    g.add_argument("--max-worker-memory", type=int, default=32,
                   help="runicorn's --max-worker-memory in the leak row, MiB (default: 32)")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "bench"),
                   help="where the table and the JSON are saved (default: target/bench)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the servers' temporary configs and logs (default: removed)")
    p.add_argument("--time-limit", type=int, default=1800,
                   help="seconds; past it the run stops its servers and exits")
    args = p.parse_args()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, on_signal)
    atexit.register(cleanup)
    signal.alarm(args.time_limit)

    axum_names = ["runicorn-axum", "axum-serve"]
    axum_run = args.axum or any(n in axum_names for n in (args.only or []))
    if axum_run and not args.axum_bench:
        p.error("the axum section needs --axum-bench (bench/run.sh passes it)")
    axum_servers = []
    if axum_run:
        axum_servers = [RunicornAxum(args.axum_bench), AxumServe(args.axum_bench)]
        if args.only and not args.axum:
            axum_servers = [s for s in axum_servers if s.name in args.only]
        if not all(s.available() for s in axum_servers):
            p.error(f"not executable: {args.axum_bench}")
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
    elif args.axum:
        servers = []
    missing = [s.name for s in servers if not s.available()]
    servers = [s for s in servers if s.available()]
    if missing:
        log(f"not installed, skipped: {', '.join(missing)}")

    started = time.monotonic()
    meta = machine()
    meta["load_start"] = load1()
    meta["versions"] = {s.name: s.version() for s in servers if s.name != "runicorn-ka"}
    meta["versions"].update({s.name: s.version() for s in axum_servers})
    meta["versions"]["wrk"] = first_line(["wrk", "-v"])
    bench = Bench(args, servers)
    bench.axum_servers = axum_servers
    if axum_servers and "faults" not in args.skip and "leak" in args.faults:
        bench.dyno_note = dyno_check()
        meta["dyno_note"] = bench.dyno_note
    try:
        if servers and "startup" not in args.skip:
            bench.startup()
        if servers and "memory" not in args.skip:
            bench.memory()
        if servers and "throughput" not in args.skip:
            bench.throughput()
        if axum_servers:
            if "memory" not in args.skip:
                bench.axum_memory()
            if "faults" not in args.skip:
                bench.axum_faults()
            if "throughput" not in args.skip:
                bench.axum_throughput()
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
    if args.keep_logs:
        log(f"server configs and logs kept in {bench.tmp}")
    else:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    log(f"saved to {args.out}/bench-{stamp}.{{txt,json}}")


if __name__ == "__main__":
    main()
