"""Fault isolation: a steady client on `GET /` while a fault route is hit a few times.

wrk cannot be the steady client here: it counts a timeout only when the late answer
finally comes, so a request that never gets one (a server whose threads are all blocked or
spinning) is counted nowhere. This client gives every request the same deadline and counts
what happened to it. Each of its connections sends one request after the other, each on a
new connection with `Connection: close` (as runicorn answers by default), so that both
servers see the same client and a failure is a request lost, never a stale keep-alive
connection that a real client would retry. After a failure a connection waits 100 ms before
its next request, as a client that backs off, so that a dead server's refused connections
are not counted by the thousand.
"""

import re
import socket
import threading
import time

from procs import BODY, read_to_end

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
BACKOFF_S = 0.1


class Conn:
    """One client connection of the steady load: sends `GET /` and reads the answer."""

    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, b""

    def request(self):
        """'ok', 'non2xx', 'timeout', 'refused' or 'error' (reset, closed early, bad answer)."""
        deadline = time.monotonic() + self.timeout
        try:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(REQUEST)
            status, close = self.read_answer(deadline)
        except ConnectionRefusedError:
            self.close()
            return "refused"
        except (socket.timeout, TimeoutError):
            self.close()
            return "timeout"
        except OSError:
            self.close()
            return "error"
        if close:
            self.close()
        if status is None:
            return "error"
        return "ok" if 200 <= status < 300 else "non2xx"

    def read_answer(self, deadline):
        """(status, server closes) of one answer with a Content-Length body; (None, True)
        when the connection ends before a whole answer."""
        while b"\r\n\r\n" not in self.buf:
            if not self.recv(deadline):
                return None, True
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not m or not length:
            return None, True
        n = int(length.group(1))
        while len(rest) < n:
            if not self.recv(deadline):
                return None, True
            rest = self.buf.partition(b"\r\n\r\n")[2]
        self.buf = rest[n:]
        close = re.search(rb"(?im)^connection:\s*close", head) is not None
        status = int(m.group(1))
        if status == 200 and rest[:n] != BODY:
            return None, True
        return status, close

    def recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)


def steady(port, seconds, connections, timeout, t0):
    """Runs the steady load until t0 + seconds; returns every request as (start offset s,
    latency s, outcome)."""
    results = [[] for _ in range(connections)]
    end = t0 + seconds

    def loop(out):
        c = Conn(port, timeout)
        while True:
            start = time.monotonic()
            if start >= end:
                break
            outcome = c.request()
            out.append((start - t0, time.monotonic() - start, outcome))
            if outcome != "ok":
                time.sleep(BACKOFF_S)
        c.close()

    threads = [threading.Thread(target=loop, args=(results[i],), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 5)
    return [r for out in results for r in out]


def hit(port, path, timeout):
    """One `GET path` with `Connection: close`; the status, or the reason there is none."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"
    try:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = read_to_end(s)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else "error"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError:
        return "error"
    finally:
        s.close()


def run_fault(port, path, seconds, at, burst, steady_conns, steady_timeout, hit_timeout):
    """The steady load for `seconds`, and `burst` requests to `path` at each offset of `at`
    (seconds from the start). Returns a summary of both."""
    t0 = time.monotonic()
    hits = []

    def faults():
        for offset in at:
            wait = t0 + offset - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for _ in range(burst):
                hits.append((time.monotonic() - t0, hit(port, path, hit_timeout)))

    ft = threading.Thread(target=faults, daemon=True)
    ft.start()
    reqs = steady(port, seconds, steady_conns, steady_timeout, t0)
    ft.join(hit_timeout * burst * len(at) + 5)
    return summarize(reqs, hits, seconds)


def summarize(reqs, hits, seconds):
    count = {k: 0 for k in ("ok", "non2xx", "timeout", "refused", "error")}
    for _, _, outcome in reqs:
        count[outcome] += 1
    # The longest stretch of the run in which no request to / was answered.
    done = sorted(start + took for start, took, outcome in reqs if outcome == "ok")
    edges = [0.0] + done + [float(seconds)]
    gap = max(b - a for a, b in zip(edges, edges[1:]))
    fault_ok = sum(1 for _, h in hits if isinstance(h, int) and 200 <= h < 300)
    return {
        "answered": count["ok"],
        "failed": count["non2xx"] + count["timeout"] + count["refused"] + count["error"],
        "timeouts": count["timeout"],
        "refused": count["refused"],
        "errors": count["error"],
        "non2xx": count["non2xx"],
        "longest_gap_s": gap,
        "fault_hits": len(hits),
        "fault_answered": fault_ok,
        "fault_outcomes": [h for _, h in hits],
    }
