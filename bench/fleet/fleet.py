#!/usr/bin/env python3
"""A fleet of runicorn instances behind HAProxy on 127.0.0.1, under open-loop load.

    fleet.py [rolling] [OPTIONS]     rolling upgrade (USR2), then rolling restart (TERM and
                                     start again), each instance in turn, under load; a table
                                     of outcomes and latency per step; exit 1 if a request failed
    fleet.py measure [OPTIONS]       the fleet at a rate for --duration seconds after a warm-up:
                                     queue time per instance from runicorn's own metric lines,
                                     and the load generator's latency

Run it through bench/fleet/run.sh, which installs HAProxy and builds runicorn and the load
generator first. Every process started here runs in a session of its own and is stopped
through its own process group on exit (Ctrl-C and the time limit included); nothing else
is touched. See bench/fleet/README.md.
"""

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

from fleetlib import (  # noqa: E402
    POLICIES, by_step, fmt, haproxy_config, logfmt, mixture_quantile, nearest_rank, read_records,
    request_line, service_path, summarize, table, window,
)
from procs import free_port, group_alive, read_to_end, stat_fields  # noqa: E402

STARTED = []
TEMP_DIRS = []


def log(*args):
    print("fleet:", *args, file=sys.stderr, flush=True)


class Lines:
    """A child's pipe, read on a thread: every line with the time it arrived, also
    appended to a file."""

    def __init__(self, pipe, path):
        self.lines = []  # (unix time, text)
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(pipe, path), daemon=True)
        self.thread.start()

    def _read(self, pipe, path):
        with open(path, "a") as out:
            for raw in pipe:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                out.write(text + "\n")
                out.flush()
                with self.cond:
                    self.lines.append((time.time(), text))
                    self.cond.notify_all()

    def count(self, *parts):
        with self.cond:
            return sum(1 for _, l in self.lines if all(p in l for p in parts))

    def wait(self, parts, n=1, timeout=30.0, proc=None):
        """Waits until n lines contain every one of `parts`; returns the nth (time, text)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [(t, l) for t, l in self.lines if all(p in l for p in parts)]
                if len(hits) >= n:
                    return hits[n - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (proc is not None and proc.poll() is not None and not self.thread.is_alive()):
                    raise TimeoutError(f"no line with {parts} (wanted {n}, got {len(hits)})")
                self.cond.wait(min(left, 0.2))


class Process:
    """A child in a session of its own, its stdout and stderr read by threads."""

    def __init__(self, name, argv, out_dir, env=None):
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        STARTED.append(self)
        self.out = Lines(self.proc.stdout, os.path.join(out_dir, f"{name}.out"))
        self.err = Lines(self.proc.stderr, os.path.join(out_dir, f"{name}.err"))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=5.0):
        """TERM to its process group, KILL after `grace` s; then reaped."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and group_alive(self.pid):
                self.proc.poll()
                time.sleep(0.02)
            if not group_alive(self.pid):
                break
        self.wait_exit(5)
        if self in STARTED:
            STARTED.remove(self)


def cleanup():
    for p in list(STARTED):
        p.stop(grace=2.0)
    for d in TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def on_signal(signum, _frame):
    log(f"{signal.Signals(signum).name}: stopping every process started here")
    raise SystemExit(128 + signum)


def children(pid):
    """Live children of `pid`, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = stat_fields(int(name))
            if st and st[3] == str(pid) and st[2] != "Z":
                out.append(int(name))
    return sorted(out)


def alive(pid):
    st = stat_fields(pid)
    return st is not None and st[2] != "Z"


def wait_until(what, check, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(every)


class HAProxy:
    def __init__(self, args, out_dir, servers):
        # A Unix socket's path is limited to 107 bytes: a private directory of the system's
        # temporary one keeps it short wherever the repository is. Removed at exit.
        self.sock_dir = tempfile.mkdtemp(prefix="runicorn-fleet-")
        TEMP_DIRS.append(self.sock_dir)
        self.sock = os.path.join(self.sock_dir, "haproxy.sock")
        self.port = args.port or free_port(18000)
        self.cfg = os.path.join(out_dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(haproxy_config(f"127.0.0.1:{self.port}", self.sock, args.policy, servers, args.retries))
        check = subprocess.run([args.haproxy, "-c", "-q", "-f", self.cfg], capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"haproxy rejects {self.cfg}:\n{check.stdout}{check.stderr}")
        self.proc = Process("haproxy", [args.haproxy, "-db", "-f", self.cfg], out_dir)

    def cmd(self, text):
        """One command on the runtime API; its answer."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall(text.encode() + b"\n")
        data = read_to_end(s)
        s.close()
        return data.decode()

    def stat(self):
        """`show stat` of the backend: {svname: {field: value}}."""
        lines = self.cmd("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            if line.strip():
                row = dict(zip(header, line.split(",")))
                if row.get("pxname") == "runicorn":
                    out[row["svname"]] = row
        return out

    def server_state(self, name):
        """(operational state, administrative state) from `show servers state`: op 2 is
        running (the checks pass), admin bit 0x08 is drain set by the API."""
        for line in self.cmd("show servers state runicorn").splitlines():
            f = line.split()
            if len(f) > 6 and f[3] == name:
                return int(f[5]), int(f[6])
        raise RuntimeError(f"no server {name} in `show servers state`")

    def wait_ready(self, timeout=30):
        try:
            wait_until("haproxy's runtime API", lambda: os.path.exists(self.sock), timeout)
        except TimeoutError:
            raise SystemExit("haproxy did not start; see haproxy.err")


class Instance:
    """One runicorn master and its workers on a fixed port; restarted on the same port."""

    def __init__(self, fleet, index, port):
        self.fleet = fleet
        self.name = f"s{index}"
        self.index = index
        self.port = port
        self.incarnation = 0
        self.proc = None
        self.started_at = None  # unix time of its `master started` line

    def start(self):
        a = self.fleet.args
        self.incarnation += 1
        env = dict(os.environ)
        for k in ("WEB_CONCURRENCY", "PORT", "RUNICORN_WORKERS"):
            env.pop(k, None)
        env["DYNO"] = f"web.{self.index}"  # the metric lines' source=
        argv = [
            a.runicorn, "--bind", f"127.0.0.1:{self.port}", "--workers", str(a.workers),
            "--metrics-interval", str(self.fleet.metrics_interval),
        ]
        if getattr(a, "access_log", False):
            argv.append("--access-log")
        self.proc = Process(f"{self.name}.{self.incarnation}", argv, self.fleet.out_dir, env)

    def wait_started(self, timeout=30):
        t, _ = self.proc.err.wait(['msg="master started"'], timeout=timeout, proc=self.proc.proc)
        self.started_at = t
        self.proc.err.wait(['msg="workers ready"'], timeout=timeout, proc=self.proc.proc)

    def workers(self):
        return children(self.proc.pid)


class Fleet:
    def __init__(self, args, metrics_interval):
        self.args = args
        self.metrics_interval = metrics_interval
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out_dir = os.path.join(args.out, f"{args.mode}-{stamp}")
        os.makedirs(self.out_dir, exist_ok=True)
        base = free_port(args.base_port)
        ports = []
        for _ in range(args.instances):
            ports.append(base)
            base = free_port(base + 1)
        self.instances = [Instance(self, i + 1, p) for i, p in enumerate(ports)]
        self.haproxy = None
        self.path = args.path or service_path(args.dist, args.mean_ms, args.median_ms, args.sigma)

    def start(self):
        for inst in self.instances:  # all at once: their metric intervals nearly line up
            inst.start()
        for inst in self.instances:
            inst.wait_started()
        servers = [(i.name, f"127.0.0.1:{i.port}") for i in self.instances]
        self.haproxy = HAProxy(self.args, self.out_dir, servers)
        self.haproxy.wait_ready()
        for inst in self.instances:
            self.wait_up(inst)
        log(
            f"{len(self.instances)} instances x {self.args.workers} workers on ports "
            f"{','.join(str(i.port) for i in self.instances)}, HAProxy on 127.0.0.1:{self.haproxy.port} "
            f"(balance {POLICIES[self.args.policy]}); output in {os.path.relpath(self.out_dir, ROOT)}"
        )

    def wait_up(self, inst, timeout=30):
        """Until HAProxy's checks pass for the instance (it may still be drained)."""
        wait_until(f"HAProxy sees {inst.name} up", lambda: self.haproxy.server_state(inst.name)[0] == 2, timeout)

    def start_load(self, duration, records, summary):
        a = self.args
        argv = [
            a.openloop, "--addr", f"127.0.0.1:{self.haproxy.port}", "--path", self.path,
            "--rate", f"{a.rate:g}", "--duration", f"{duration:.3f}", "--seed", str(a.seed),
            "--timeout", str(a.request_timeout), "--records", records, "--json", summary,
        ]
        return Process("openloop", argv, self.out_dir)

    # --- operations -----------------------------------------------------------------

    def upgrade(self, inst, timeout=60):
        """USR2 to the master; done when the new binary's workers are ready (a new
        `workers ready` line) and every old worker has exited."""
        old = set(inst.workers())
        ready = inst.proc.err.count('msg="workers ready"')
        pid = inst.proc.pid
        inst.proc.signal(signal.SIGUSR2)
        inst.proc.err.wait(['msg="workers ready"'], n=ready + 1, timeout=timeout, proc=inst.proc.proc)

        def done():
            now = set(inst.workers())
            return not (old & now) and len(now) == self.args.workers and not any(alive(p) for p in old)

        wait_until(f"{inst.name}'s old workers to exit", done, timeout)
        if inst.proc.err.count("upgrade aborted") or not alive(pid):
            raise RuntimeError(f"{inst.name}: the upgrade failed; see {inst.proc.name}.err")

    def restart(self, inst, timeout=60):
        """As a platform restarts a dyno, without losing a request: drained in HAProxy
        (no new request goes to it), TERM once HAProxy has no request on it, wait for the
        exit and for HAProxy's checks to see it down, start a new one on the same port,
        and put it back in HAProxy once the checks see it up."""
        h = self.haproxy
        if self.args.no_drain:
            return self.restart_without_drain(inst, timeout)
        h.cmd(f"set server runicorn/{inst.name} state drain")
        wait_until(f"{inst.name} drained", lambda: h.stat()[inst.name]["scur"] == "0", timeout)
        self.stop_master(inst, timeout)
        # Down first, so that "up" below is a check of the new instance, not the old state.
        wait_until(f"HAProxy sees {inst.name} down", lambda: h.server_state(inst.name)[0] == 0, timeout)
        inst.start()
        inst.wait_started(timeout)
        self.wait_up(inst, timeout)
        h.cmd(f"set server runicorn/{inst.name} state ready")
        wait_until(f"{inst.name} back in HAProxy", lambda: h.stat()[inst.name]["status"] == "UP", timeout)

    @staticmethod
    def stop_master(inst, timeout):
        """TERM to an instance's master; it must exit 0 (a graceful stop) within timeout."""
        inst.proc.signal(signal.SIGTERM)
        code = inst.proc.wait_exit(timeout)
        if code != 0:
            raise RuntimeError(f"{inst.name}: the master exited with {code} after TERM")
        if inst.proc in STARTED:
            STARTED.remove(inst.proc)

    def restart_without_drain(self, inst, timeout):
        """--no-drain, for comparison: TERM while HAProxy still sends requests to it, then
        a new one on the same port as soon as the old one has exited."""
        self.stop_master(inst, timeout)
        inst.start()
        inst.wait_started(timeout)
        self.wait_up(inst, timeout)

    def stop(self):
        for p in list(STARTED):
            p.stop()


# --- rolling: upgrade and restart under load --------------------------------------------


def rolling(args):
    fleet = Fleet(args, metrics_interval=args.metrics_interval)
    fleet.start()
    records = os.path.join(fleet.out_dir, "records.csv")
    summary = os.path.join(fleet.out_dir, "load.json")
    # The load runs until stopped (SIGTERM, once the steps are done); the time limit bounds it.
    load = fleet.start_load(args.time_limit, records, summary)
    time.sleep(0.5)  # the first arrivals
    marks = []  # (name, unix time)
    stats = []  # HAProxy's counters at each mark
    ops = {}  # step name -> operation
    took = {}  # step name -> how long its operation took, s

    def mark(name, op=None):
        stats.append(fleet.haproxy.stat())
        marks.append((name, time.time()))
        if op:
            ops[name] = op
        log(name)

    error = None
    try:
        mark("baseline")
        time.sleep(args.duration)
        for op, verb, do in (("rolling upgrade", "upgrade", fleet.upgrade), ("rolling restart", "restart", fleet.restart)):
            for inst in fleet.instances:
                name = f"{verb} {inst.name}"
                mark(name, op)
                t = time.monotonic()
                do(inst)
                took[name] = time.monotonic() - t
                time.sleep(args.gap)
        mark("after")
        time.sleep(args.duration)
    except (RuntimeError, TimeoutError) as e:
        error = str(e)
        log(f"error: {e}")
    mark("end")
    load.signal(signal.SIGTERM)
    if load.wait_exit(args.request_timeout + 30) is None:
        raise SystemExit("the load generator did not stop")
    start_us, recs = read_records(records)
    steps = by_step(start_us, recs, marks)
    names = [i.name for i in fleet.instances]
    rows = []
    failed_by_op = {}
    for k, (name, rs) in enumerate(steps):
        s = summarize(rs)
        secs = marks[k + 1][1] - marks[k][1]
        before, after = stats[k], stats[k + 1]
        served = [int(after[n]["stot"]) - int(before[n]["stot"]) for n in names]
        retries = int(after["BACKEND"]["wretr"] or 0) - int(before["BACKEND"]["wretr"] or 0)
        redisp = int(after["BACKEND"]["wredis"] or 0) - int(before["BACKEND"]["wredis"] or 0)
        c = s["counts"]
        rows.append(
            [name, secs, took.get(name), s["sent"], c["ok"], c["http_error"], c["connect"], c["reset"], c["timeout"],
             c["malformed"] + c["not_sent"], s["p50"], s["p99"], s["max"], s["lag_max"], retries + redisp,
             "/".join(str(x) for x in served)]
        )
        if name in ops:
            failed_by_op[ops[name]] = failed_by_op.get(ops[name], 0) + s["failed"]
    header = ["step", "secs", "op_s", "sent", "ok", "http_err", "connect", "reset", "timeout", "other",
              "p50_ms", "p99_ms", "max_ms", "lag_max", "retries", "served " + "/".join(names)]
    total = summarize(recs)
    print(
        f"\n{len(names)} instances x {args.workers} workers behind HAProxy (balance "
        f"{POLICIES[args.policy]}), GET {fleet.path}, open loop at {args.rate:g} req/s (Poisson, "
        f"seed {args.seed})"
    )
    print(table(header, rows))
    print(
        f"total: {total['sent']} requests, {total['counts']['ok']} ok; latency p50 {fmt(total['p50'])} ms, "
        f"p99 {fmt(total['p99'])} ms, max {fmt(total['max'])} ms; schedule lag max {fmt(total['lag_max'], 2)} ms"
    )
    failed_any = total["failed"]
    statuses = {}
    for r in recs:
        if r["outcome"] == "http_error":
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    if statuses:
        print("http_error statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    for op in ("rolling upgrade", "rolling restart"):
        print(f"{op}: failed requests: {failed_by_op.get(op, 0)}")
    with open(os.path.join(fleet.out_dir, "table.txt"), "w") as f:
        f.write(table(header, rows) + "\n")
    fleet.stop()
    if error:
        print(f"error: {error}")
        return 1
    unserved = [n for n, v in zip(names, rows[-1][-1].split("/")) if v == "0"]
    if unserved:
        print(f"error: no request served after the restarts by {', '.join(unserved)}")
        return 1
    return 1 if failed_any else 0


# --- measure: queue time from the metric lines ----------------------------------------------


def measure(args):
    S = args.duration
    if S != int(S) or S < 1:
        raise SystemExit("measure: --duration is whole seconds (runicorn's --metrics-interval)")
    S = int(S)
    # One metric interval per instance covers the measured window: --metrics-interval S,
    # and the load runs from `warmup` before the start of an interval to its end.
    fleet = Fleet(args, metrics_interval=S)
    fleet.start()
    t0 = [i.started_at for i in fleet.instances]
    now = time.time()
    k = max(1, math.ceil((now + args.warmup + 0.5 - min(t0)) / S))
    win_from = [t + k * S for t in t0]
    win_to = [t + (k + 1) * S for t in t0]
    load_start = min(win_from) - args.warmup
    load_end = max(win_to) + 0.2
    log(
        f"measured window: interval {k + 1} of each instance ({S} s, starts {min(win_from) - now:.1f} s "
        f"from now; the instances' intervals start within {1000 * (max(t0) - min(t0)):.0f} ms of each other)"
    )
    time.sleep(max(0.0, load_start - time.time()))
    records = os.path.join(fleet.out_dir, "records.csv")
    summary = os.path.join(fleet.out_dir, "load.json")
    load = fleet.start_load(load_end - time.time(), records, summary)
    if load.wait_exit(load_end - time.time() + args.request_timeout + 30) is None:
        raise SystemExit("the load generator did not stop")
    per = []
    exact = []  # from the access log: (name, [queue_ms])
    for inst, a, b in zip(fleet.instances, win_from, win_to):
        if args.access_log:
            # Each line is written right after its response, as the request is counted in the
            # metric interval: the lines that arrived in the instance's interval.
            with inst.proc.err.cond:
                lines = [l for t, l in inst.proc.err.lines if a < t <= b and 'msg=request ' in l]
            qs = sorted(float(f["queue_ms"]) for f in map(logfmt, lines) if f.get("queue_ms", "-") != "-")
            exact.append((inst.name, qs))
        # The request line of sample k+1: the interval (t0 + kS, t0 + (k+1)S].
        t, line = inst.proc.out.wait(["count#requests="], n=k + 1, timeout=S + 10)
        fields = request_line(logfmt(line))
        fields["name"] = inst.name
        fields["interval"] = (a - load_start, b - load_start)
        fields["printed_late_ms"] = 1000 * (t - b)
        per.append(fields)
    start_us, recs = read_records(records)
    mean_from, mean_to = sum(win_from) / len(win_from), sum(win_to) / len(win_to)
    gen = summarize(window(start_us, recs, mean_from, mean_to))
    warm = summarize(window(start_us, recs, 0, mean_from))
    stats = fleet.haproxy.stat()
    fleet.stop()

    q = ("queue_p50", "queue_p95", "queue_p99", "queue_max")
    comb = {"requests": sum(p["requests"] for p in per), "queued": sum(p["queued"] for p in per)}
    for kind in ("queue", "service"):
        parts = [(p["queued"] if kind == "queue" else p["requests"], p[f"{kind}_p50"], p[f"{kind}_p95"],
                  p[f"{kind}_p99"], p[f"{kind}_max"]) for p in per]
        for name, qq in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            comb[f"{kind}_{name}"] = mixture_quantile(parts, qq)
        maxes = [p[f"{kind}_max"] for p in per if p[f"{kind}_max"] is not None]
        comb[f"{kind}_max"] = max(maxes) if maxes else None

    print(
        f"\nmeasure: {len(per)} instances x {args.workers} workers behind HAProxy (balance "
        f"{POLICIES[args.policy]}), GET {fleet.path}, open loop at {args.rate:g} req/s (Poisson, seed "
        f"{args.seed}), {S} s window after {args.warmup:g} s of warm-up"
    )
    print("\nrunicorn's metric lines (one interval per instance, the window; times in ms):")
    header = ["instance", "interval_s", "requests", "queued", "queue_p50", "queue_p95", "queue_p99",
              "queue_max", "service_p50", "service_p99", "busy_at_end"]
    rows = []
    for p in per:
        rows.append([p["name"], f"{p['interval'][0]:.2f}-{p['interval'][1]:.2f}", p["requests"], p["queued"]]
                    + [p[x] for x in q] + [p["service_p50"], p["service_p99"], p["workers_busy"]])
    rows.append(["combined*", "", comb["requests"], comb["queued"]] + [comb[x] for x in q]
                + [comb["service_p50"], comb["service_p99"], ""])
    print(table(header, [[c if not isinstance(c, float) else f"{c:.3f}" for c in r] for r in rows]))
    print("* combined: the count-weighted mixture of the instances' distributions, each rebuilt from its "
          "line's p50/p95/p99/max\n  (an exponential tail between p50 and p99): an approximation "
          "(--access-log checks it); max is exact.")
    if exact:
        print("\nthe same from the access log (every request's queue_ms, exact percentiles by nearest rank):")
        rows = []
        everyone = sorted(q for _, qs in exact for q in qs)
        for name, qs in exact + [("combined", everyone)]:
            rows.append([name, len(qs)] + [nearest_rank(qs, x) for x in (0.5, 0.95, 0.99)] + [qs[-1] if qs else None])
        print(table(["instance", "queued", "queue_p50", "queue_p95", "queue_p99", "queue_max"],
                    [[c if not isinstance(c, float) else f"{c:.3f}" for c in r] for r in rows]))
        result_exact = {name: {"queued": len(qs), "p50": nearest_rank(qs, 0.5), "p95": nearest_rank(qs, 0.95),
                               "p99": nearest_rank(qs, 0.99), "max": qs[-1] if qs else None}
                        for name, qs in exact + [("combined", everyone)]}
    else:
        result_exact = None
    print("\nload generator (requests scheduled in the window; latency of the 2xx from the scheduled time, ms):")
    c = gen["counts"]
    print(table(
        ["sent", "ok", "failed", "rate_per_s", "p50", "p95", "p99", "max", "lag_p99", "lag_max"],
        [[gen["sent"], c["ok"], gen["failed"], gen["sent"] / S, gen["p50"], gen["p95"], gen["p99"], gen["max"],
          gen["lag_p99"], gen["lag_max"]]],
    ))
    print(f"(warm-up: {warm['sent']} requests, {warm['failed']} failed; HAProxy retries in all: "
          f"{stats['BACKEND']['wretr']}, served " + "/".join(stats[i.name]["stot"] for i in fleet.instances) + ")")
    result = {
        "instances": args.instances, "workers": args.workers, "policy": args.policy,
        "balance": POLICIES[args.policy], "path": fleet.path, "rate": args.rate, "seed": args.seed,
        "window_s": S, "warmup_s": args.warmup, "per_instance": per, "combined": comb, "generator": gen,
        "access_log": result_exact,
    }
    with open(os.path.join(fleet.out_dir, "measure.json"), "w") as f:
        json.dump(result, f, indent=1)
    log(f"written {os.path.relpath(os.path.join(fleet.out_dir, 'measure.json'), ROOT)}")
    return 1 if gen["failed"] else 0


def parse_args(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(prog="bench/fleet/run.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="rolling", choices=["rolling", "measure"])
    p.add_argument("--instances", type=int, default=int(env("FLEET_INSTANCES", 3)), help="runicorn instances (3)")
    p.add_argument("--workers", type=int, default=int(env("FLEET_WORKERS", 4)), help="workers each (4)")
    p.add_argument("--rate", type=float, default=float(env("FLEET_RATE", 300)), help="requests a second (300)")
    p.add_argument("--policy", choices=sorted(POLICIES), default=env("FLEET_POLICY", "random"),
                   help="HAProxy's balance: random (random(1), as Heroku), p2c (random(2)), leastconn, roundrobin")
    p.add_argument("--duration", type=float, default=None,
                   help="rolling: the baseline and final steps, s (5); measure: the measured window, whole s (30)")
    p.add_argument("--dist", choices=["exp", "const", "lognormal"], default="exp", help="service times (exp)")
    p.add_argument("--mean-ms", type=float, default=20.0, help="mean service time, exp and const (20)")
    p.add_argument("--median-ms", type=float, default=20.0, help="median, lognormal (20)")
    p.add_argument("--sigma", type=float, default=1.0, help="sigma, lognormal (1)")
    p.add_argument("--path", help="request this target instead of /service?...")
    p.add_argument("--gap", type=float, default=2.0, help="rolling: load after each operation before the next, s (2)")
    p.add_argument("--warmup", type=float, default=5.0, help="measure: load before the window, s (5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the arrivals (1)")
    p.add_argument("--retries", type=int, default=3, help="HAProxy's retries on a failed connection (3)")
    p.add_argument("--access-log", action="store_true",
                   help="measure: also run runicorn with --access-log, for exact queue-time percentiles to compare")
    p.add_argument("--no-drain", action="store_true",
                   help="rolling: restart without taking the instance out of HAProxy first (to compare)")
    p.add_argument("--metrics-interval", type=int, default=5, help="rolling: runicorn's --metrics-interval (5)")
    p.add_argument("--request-timeout", type=int, default=30, help="the load generator's per request, s (30)")
    p.add_argument("--port", type=int, default=0, help="HAProxy's port (a free one from 18000)")
    p.add_argument("--base-port", type=int, default=18100, help="the instances' ports: free ones from here")
    p.add_argument("--time-limit", type=float, default=600, help="the whole run, s (600)")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "fleet"), help="output directory")
    p.add_argument("--runicorn", default=os.path.join(ROOT, "target", "release", "runicorn"))
    p.add_argument("--openloop", default=os.path.join(ROOT, "target", "release", "examples", "openloop"))
    p.add_argument("--haproxy", default="haproxy")
    a = p.parse_args(argv)
    if a.duration is None:
        a.duration = float(env("FLEET_DURATION", 30 if a.mode == "measure" else 5))
    if a.instances < 1 or a.workers < 1 or a.rate <= 0:
        p.error("--instances, --workers and --rate must be positive")
    a.runicorn = os.path.abspath(a.runicorn)  # USR2 re-executes the path it was started from
    return a


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, on_signal)
    signal.alarm(int(args.time_limit) + 60)
    try:
        return measure(args) if args.mode == "measure" else rolling(args)
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
