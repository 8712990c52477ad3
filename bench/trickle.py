#!/usr/bin/env python3
"""What a head trickled one byte at a time costs the worker, after a small start and after
an 800 KB one: the worker's CPU time (from /proc/PID/schedstat, in ns) for 1,000 one-byte packets
sent 0.5 ms apart. A worker that parsed the whole head again at each byte would spend about
a millisecond a byte after 800 KB; one that scans only the new bytes spends the same after
either start.

    cargo build --release --example hello && bench/trickle.py
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import free_port, spawn, stop, wait_first_200  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_ns(pid):
    """Time the process has run on a CPU, in nanoseconds (/proc/PID/schedstat): the clock
    ticks of /proc/PID/stat are 10 ms, as coarse as the whole figure."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def worker_of(master):
    with open(f"/proc/{master}/task/{master}/children") as f:
        return int(f.read().split()[0])


def trickle(port, worker, start):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(start)
    time.sleep(0.1)
    before = cpu_ns(worker)
    for _ in range(1000):
        c.sendall(b"x")
        time.sleep(0.0005)
    time.sleep(0.05)
    used = cpu_ns(worker) - before
    c.sendall(b"\r\n\r\n")
    answer = c.recv(64)
    c.close()
    return used, answer.split(b"\r\n")[0].decode()


def main():
    binary = os.path.join(ROOT, "target/release/examples/hello")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: build it first: cargo build --release --example hello")
    port = free_port(18600)
    proc = spawn([binary, "--workers", "1", "--header-timeout", "30", "--bind", f"127.0.0.1:{port}"],
                 os.devnull)
    try:
        if wait_first_200(port, proc) is None:
            sys.exit("the server did not start")
        worker = worker_of(proc.pid)
        small = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "
        large = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(
            f"X-Pad-{i}: {'p' * 8000}\r\n".encode() for i in range(97)) + b"X-Slow: "
        for name, start in (("small head", small), (f"{len(large) // 1000} KB head", large)):
            ns, status = trickle(port, worker, start)
            print(f"{name:>12}: worker CPU {ns / 1e6:.1f} ms for 1,000 one-byte packets "
                  f"({ns / 1e6:.1f} µs a packet); then {status}")
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
