#!/usr/bin/env python3
"""What the metric outputs cost: runicorn's hello example with Prometheus (--metrics-bind,
scraped every second) and StatsD (--statsd-host, a listener that receives every datagram)
both on, against the same binary without them, in one run.

    bench/observability.py                       # 2 workers, close mode, 7 rounds of 5 s
    bench/observability.py --rounds 3 --duration 3

Each round runs wrk (-t1 -c16, Connection: close) on both servers, the order alternating
from round to round, so that a change in the machine's load touches both alike; the figure
is the median over rounds, and the ratio observed / plain. Both servers sample every second
(--metrics-interval 1, 20 times Heroku's cadence, so that the cost shows), print their
metric lines to a file, and differ only in the two outputs. Needs wrk (bench/run.sh installs
it) and the hello example (cargo build --release --example hello).
"""

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import wrk  # noqa: E402
from procs import free_port, spawn, stop, wait_first_200  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/examples/hello"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=16)
    a = p.parse_args()
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"{a.binary}: build it first: cargo build --release --example hello")

    tmp = tempfile.mkdtemp(prefix="runicorn-observability-")
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd.settimeout(0.5)
    received = {"datagrams": 0, "scrapes": 0, "scrape_failures": 0}
    done = threading.Event()

    def sink():
        while not done.is_set():
            try:
                statsd.recv(65536)
                received["datagrams"] += 1
            except socket.timeout:
                pass

    port = free_port(18700)
    plain_port = free_port(port + 1)
    metrics_port = free_port(plain_port + 1)
    base = [a.binary, "--workers", str(a.workers), "--metrics-interval", "1"]
    servers = {
        "plain": base + ["--bind", f"127.0.0.1:{plain_port}"],
        "observed": base
        + [
            "--bind",
            f"127.0.0.1:{port}",
            "--metrics-bind",
            f"127.0.0.1:{metrics_port}",
            "--statsd-host",
            f"127.0.0.1:{statsd.getsockname()[1]}",
        ],
    }
    ports = {"plain": plain_port, "observed": port}

    def scraper():
        while not done.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                    r.read()
                received["scrapes"] += 1
            except OSError:
                received["scrape_failures"] += 1
            done.wait(1.0)

    procs = {}
    results = {"plain": [], "observed": []}
    try:
        for name, cmd in servers.items():
            procs[name] = spawn(cmd, os.path.join(tmp, f"{name}.log"))
            if wait_first_200(ports[name], procs[name]) is None:
                sys.exit(f"{name} did not start: see {tmp}/{name}.log")
        threads = [threading.Thread(target=sink, daemon=True), threading.Thread(target=scraper, daemon=True)]
        for t in threads:
            t.start()
        for name in servers:
            wrk(ports[name], 1, a.connections, False)  # warm-up
        for r in range(a.rounds):
            order = ["plain", "observed"] if r % 2 == 0 else ["observed", "plain"]
            for name in order:
                res = wrk(ports[name], a.duration, a.connections, False)
                results[name].append(res)
                print(
                    f"round {r + 1} {name:>8}: {res['rps'] if res else float('nan'):9.0f} req/s"
                    f"  p99 {res['p99'] if res else float('nan'):.2f} ms  errors {res['errors'] if res else '?'}",
                    flush=True,
                )
    finally:
        done.set()
        for proc in procs.values():
            stop(proc)

    med = {n: statistics.median(x["rps"] for x in v if x) for n, v in results.items()}
    ratio = med["observed"] / med["plain"]
    print()
    print(f"workers {a.workers}, close mode, wrk -t1 -c{a.connections}, {a.rounds} rounds of {a.duration} s")
    print(f"plain     median {med['plain']:9.0f} req/s")
    print(f"observed  median {med['observed']:9.0f} req/s   (--metrics-bind scraped every 1 s, --statsd-host)")
    print(f"ratio observed / plain: {ratio:.3f}  ({(ratio - 1) * 100:+.1f} %)")
    print(
        f"during the runs: {received['scrapes']} scrapes answered, {received['scrape_failures']} failed; "
        f"{received['datagrams']} StatsD datagrams received"
    )
    print(f"logs: {tmp}")


if __name__ == "__main__":
    main()
