"""The fleet harness's pure parts: the HAProxy configuration, logfmt, percentiles, the
attribution of requests to steps, and the tables. No process, socket or clock here; the
tests are in test_fleetlib.py (`python3 -B -m unittest discover -s bench/fleet`)."""

import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# The balance policies the harness offers, as HAProxy spells them.
POLICIES = {
    # Heroku's router picks a dyno at random for each request.
    "random": "random(1)",
    # The better of two random draws (HAProxy's `random` without an argument).
    "p2c": "random(2)",
    "leastconn": "leastconn",
    "roundrobin": "roundrobin",
}

# The outcomes of the load generator (tools/src/load/open.rs, Outcome::KINDS).
OUTCOMES = ["ok", "http_error", "connect", "reset", "timeout", "malformed", "not_sent"]


def haproxy_config(frontend, socket_path, policy, servers, retries=3, template=None):
    """The configuration of bench/fleet/haproxy.cfg with its @NAMES@ filled in: the
    frontend address, the runtime API socket, the policy (a key of POLICIES), the servers
    as (name, "127.0.0.1:port") pairs."""
    if template is None:
        with open(os.path.join(HERE, "haproxy.cfg")) as f:
            template = f.read()
    lines = "".join(f"    server {name} {addr}\n" for name, addr in servers)
    return (
        template.replace("@FRONTEND@", frontend)
        .replace("@SOCKET@", socket_path)
        .replace("@BALANCE@", POLICIES[policy])
        .replace("@RETRIES@", str(retries))
        .replace("@SERVERS@\n", lines)
    )


def service_path(dist, mean_ms, median_ms=None, sigma=None):
    """The demo app's /service route for a distribution."""
    if dist == "exp":
        return f"/service?dist=exp&mean_ms={mean_ms:g}"
    if dist == "const":
        return f"/service?dist=const&ms={mean_ms:g}"
    if dist == "lognormal":
        return f"/service?dist=lognormal&median_ms={median_ms:g}&sigma={sigma:g}"
    raise ValueError(f"unknown distribution {dist!r}")


# --- logfmt ---------------------------------------------------------------------------


def logfmt(line):
    """The key=value pairs of one logfmt line, as a dict of strings.

    Values are bare (up to the next space) or double-quoted, with runicorn's escapes
    (docs/logging.md, "Format"): \\" \\\\ \\n \\r \\t and \\u{XXXX}. A key without `=`
    has the value ''."""
    out = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and line[j] not in " =":
            j += 1
        key = line[i:j]
        value = ""
        if j < n and line[j] == "=":
            j += 1
            if j < n and line[j] == '"':
                j += 1
                chars = []
                while j < n and line[j] != '"':
                    c = line[j]
                    if c == "\\" and j + 1 < n:
                        j += 1
                        e = line[j]
                        if e == "u" and line[j + 1 : j + 2] == "{":
                            end = line.index("}", j)
                            chars.append(chr(int(line[j + 2 : end], 16)))
                            j = end
                        else:
                            chars.append({"n": "\n", "r": "\r", "t": "\t"}.get(e, e))
                    else:
                        chars.append(c)
                    j += 1
                j += 1  # the closing quote
                value = "".join(chars)
            else:
                k = j
                while j < n and line[j] != " ":
                    j += 1
                value = line[k:j]
        out[key] = value
        i = j
    return out


def number(value, unit=""):
    """A metric value without its unit (`12.500ms` with unit `ms`), as a float."""
    if unit and value.endswith(unit):
        value = value[: -len(unit)]
    return float(value)


def request_line(fields):
    """The figures of a metric line of the request kind (the one with count#requests), in
    ms and counts; None for the other kinds. Queue and service keys are absent when the
    interval had no such request (docs/metrics.md), and are None here then."""
    if "count#requests" not in fields:
        return None

    def ms(key):
        v = fields.get(key)
        return number(v, "ms") if v is not None else None

    out = {
        "source": fields.get("source"),
        "requests": int(fields["count#requests"]),
        "requests_2xx": int(fields.get("count#requests_2xx", 0)),
        "queued": int(fields.get("count#queued_requests", 0)),
    }
    for kind in ("queue", "service"):
        for p in ("p50", "p95", "p99", "max", "mean"):
            out[f"{kind}_{p}"] = ms(f"sample#{kind}_{p}")
    for key in ("backlog", "workers_busy", "workers_idle"):
        v = fields.get(f"sample#{key}")
        out[key] = int(v) if v is not None else None
    return out


# --- percentiles ------------------------------------------------------------------------


def nearest_rank(sorted_values, q):
    """The q-quantile (0..1) by nearest rank, as runicorn and the load generator compute
    it; None for no values."""
    if not sorted_values:
        return None
    i = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[min(i, len(sorted_values) - 1)]


def mixture_quantile(parts, q):
    """An approximate q-quantile of several instances' requests together, from what each
    instance's metric line gives: its count and its p50, p95, p99 and max.

    Percentiles do not add up, so each instance's distribution is rebuilt from its line: a
    CDF through (0, 0), (p50, 0.5), (p95, 0.95), (p99, 0.99) and (max, 1). Below the median
    it is linear; from p50 to p99 the survival 1 - F is interpolated geometrically
    (log-linear), which is exact for an exponential tail, the shape of the wait in a queue
    of exponential service times (M/M/c); from p99 to max, linear again. The quantile of the
    count-weighted mixture of these CDFs is then found by bisection. Equal instances give
    their own figures back; different ones, an interpolation. `parts` is a list of
    (count, p50, p95, p99, max); parts with no count are left out."""
    parts = [p for p in parts if p[0] > 0 and p[4] is not None]
    if not parts:
        return None
    total = sum(p[0] for p in parts)

    def cdf(part, x):
        points = [(0.0, 0.0), (part[1], 0.5), (part[2], 0.95), (part[3], 0.99), (part[4], 1.0)]
        if x >= points[-1][0]:
            return 1.0
        for (x0, f0), (x1, f1) in zip(points, points[1:]):
            if x < x1:
                if x1 <= x0:
                    return f1
                t = (x - x0) / (x1 - x0)
                if f0 >= 0.5 and f1 < 1.0:
                    return 1.0 - (1.0 - f0) * ((1.0 - f1) / (1.0 - f0)) ** t
                return f0 + (f1 - f0) * t
        return 1.0

    lo, hi = 0.0, max(p[4] for p in parts)
    for _ in range(100):
        mid = (lo + hi) / 2
        if sum(p[0] * cdf(p, mid) for p in parts) / total >= q:
            hi = mid
        else:
            lo = mid
    return hi


# --- the load generator's records, by step ---------------------------------------------


def read_records(path):
    """The load generator's --records CSV: (start_unix_us, [records]), each record a dict
    with scheduled_us, lag_us, outcome, status, latency_us."""
    start = None
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# start_unix_us="):
                start = int(line.split("=", 1)[1])
                continue
            if not line or line.startswith("scheduled_us"):
                continue
            sched, lag, outcome, status, latency = line.split(",")
            records.append(
                {
                    "scheduled_us": int(sched),
                    "lag_us": int(lag),
                    "outcome": outcome,
                    "status": int(status) if status else None,
                    "latency_us": int(latency),
                }
            )
    if start is None:
        raise ValueError(f"{path}: no '# start_unix_us=' line")
    return start, records


def summarize(records):
    """Counts per outcome, and latency percentiles of the ok requests (ms, nearest rank)."""
    counts = {k: 0 for k in OUTCOMES}
    ok = []
    lag = []
    for r in records:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        if r["outcome"] == "ok":
            ok.append(r["latency_us"] / 1000)
        if r["outcome"] != "not_sent":
            lag.append(r["lag_us"] / 1000)
    ok.sort()
    lag.sort()
    sent = sum(counts.values())
    return {
        "sent": sent,
        "counts": counts,
        "failed": sent - counts["ok"],
        "p50": nearest_rank(ok, 0.50),
        "p95": nearest_rank(ok, 0.95),
        "p99": nearest_rank(ok, 0.99),
        "max": ok[-1] if ok else None,
        "lag_p99": nearest_rank(lag, 0.99),
        "lag_max": lag[-1] if lag else None,
    }


def ended_us(r):
    """When a request ended (its response, or its failure), from the run's start, in µs."""
    return r["scheduled_us"] + r["latency_us"]


def by_step(start_unix_us, records, marks):
    """The records split by step: a request belongs to the step in which it ended. An
    operation starts at its mark, so what it does to requests (a reset, a retry, a longer
    wait) comes after the mark: a request sent just before and still in flight is charged
    to the operation it met, not to the step before. `marks` are (name, unix time in s) in
    time order, each starting a step that lasts until the next mark; the last mark ends the
    run, and requests that ended after it (in flight when the load was stopped) belong to
    the last step. Requests that ended before the first mark belong to none.
    Returns [(name, [records])]."""
    out = [(name, []) for name, _ in marks[:-1]]
    starts = [t * 1e6 - start_unix_us for _, t in marks[:-1]]
    for r in sorted(records, key=ended_us):
        t = ended_us(r)
        if not out or t < starts[0]:
            continue
        i = next((k for k in range(len(starts) - 1, -1, -1) if t >= starts[k]))
        out[i][1].append(r)
    return out


def window(start_unix_us, records, t_from, t_to):
    """The records scheduled in [t_from, t_to) (unix times in s)."""
    a, b = t_from * 1e6 - start_unix_us, t_to * 1e6 - start_unix_us
    return [r for r in records if a <= r["scheduled_us"] < b]


# --- tables ---------------------------------------------------------------------------


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(header, rows):
    """Columns aligned right, the first left."""
    cells = [header] + [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
