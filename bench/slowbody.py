#!/usr/bin/env python3
"""What a client trickling a request body costs the others: with one worker, a POST whose
40-byte body arrives one byte every 50 ms (with `Expect: 100-continue`, then without),
while GETs on new connections are timed, 5 for each byte sent. The worker collects the
body while the connection waits parked, so the GETs should not wait for it.

    cargo build --release --example hello && bench/slowbody.py
"""

import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import free_port, read_to_end, spawn, stop, wait_first_200  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = 40


def get(port):
    """One GET on a new connection: its time to the whole response, in ms, and the status."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        answer = read_to_end(c)
    return (time.perf_counter() - start) * 1000, answer.split(b" ", 2)[1].decode()


def trickle(port, expect):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {BODY}\r\n"
    if expect:
        head += "Expect: 100-continue\r\n"
    c.sendall((head + "\r\n").encode())
    interim = c.recv(64) if expect else b""
    times, statuses = [], set()
    for _ in range(BODY):
        c.sendall(b"x")
        sent = time.perf_counter()
        for _ in range(5):
            ms, status = get(port)
            times.append(ms)
            statuses.add(status)
        time.sleep(max(0.0, 0.05 - (time.perf_counter() - sent)))
    final = c.recv(64).split(b"\r\n")[0].decode()
    c.close()
    return interim.split(b"\r\n")[0].decode(), final, times, statuses


def main():
    binary = os.path.join(ROOT, "target/release/examples/hello")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: build it first: cargo build --release --example hello")
    port = free_port(18650)
    proc = spawn([binary, "--workers", "1", "--bind", f"127.0.0.1:{port}"], os.devnull)
    try:
        if wait_first_200(port, proc) is None:
            sys.exit("the server did not start")
        for expect in (True, False):
            interim, final, times, statuses = trickle(port, expect)
            times.sort()
            p99 = times[min(len(times) - 1, round(0.99 * len(times)) - 1)]
            name = "with Expect" if expect else "without"
            print(f"{name:>12}: {len(times)} GETs, statuses {sorted(statuses)}, median "
                  f"{statistics.median(times):.2f} ms, p99 {p99:.2f} ms, max {times[-1]:.2f} ms; "
                  f"the POST: {interim + ', ' if interim else ''}{final}")
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
