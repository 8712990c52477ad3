#!/usr/bin/env python3
"""The planner checked against the fleet: queue time p50 and p99 as runicorn's own metric
lines report them, at three loads and two HAProxy policies, against what `runicorn plan`
predicts for the same inputs. Prints the comparison as a Markdown table.

    bench/fleet/check_plan.py                        # 3 x 4 workers, exp 20 ms, 60 s a cell
    bench/fleet/check_plan.py --duration 30 --loads 0.5 0.9

First the transit is measured: the queue time of a request that waits for nothing (HAProxy
to a worker), as the queue p50 at 30 % load with least connections, where almost no request
waits; `runicorn plan --transit` adds it to every queue time.
Then each cell runs `bench/fleet/run.sh measure` (with --access-log, for exact figures to
compare the lines' with) and `runicorn plan --dynos N --workers W --router P`.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(a, rate, policy, duration):
    before = set(glob.glob(os.path.join(ROOT, "target/fleet/measure-*")))
    cmd = [
        os.path.join(ROOT, "bench/fleet/run.sh"), "measure",
        "--instances", str(a.instances), "--workers", str(a.workers),
        "--rate", f"{rate:g}", "--policy", policy, "--dist", "exp",
        "--mean-ms", f"{a.mean_ms:g}", "--duration", str(duration), "--access-log",
        "--seed", str(a.seed),
    ]
    print("+ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    made = sorted(set(glob.glob(os.path.join(ROOT, "target/fleet/measure-*"))) - before)
    with open(os.path.join(made[-1], "measure.json")) as f:
        return json.load(f)


def plan(a, rate, policy, transit_ms, service=None):
    cmd = [
        os.path.join(ROOT, "target/release/runicorn"), "plan",
        "--rps", f"{rate:g}", "--service", service or f"exp:{a.mean_ms:g}ms",
        "--dynos", str(a.instances), "--workers", str(a.workers),
        "--router", policy, "--transit", f"{transit_ms:.3f}ms",
        "--requests", "2000000", "--seed", str(a.seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cols = line.split()
        if len(cols) > 3 and cols[0] == str(a.instances) and cols[1] == str(a.workers):
            # dynos workers util p50 "ms" p95 "ms" p99 "ms" waited memory
            return float(cols[3]), float(cols[5]), float(cols[7])
    raise SystemExit(f"no row in the plan:\n{out}")


def lines_inputs(m):
    """What the lines themselves say of the window: the rate of requests that came through
    HAProxy (those with X-Request-Start) and the service-time percentiles and mean,
    request-weighted over the instances, as `runicorn plan --lines` reads them."""
    rate = m["combined"]["queued"] / m["window_s"]
    total = sum(i["requests"] for i in m["per_instance"])
    pct = {k: sum(i[k] * i["requests"] for i in m["per_instance"]) / total
           for k in ("service_p50", "service_p95", "service_p99")}
    service = f"p50={pct['service_p50']:.3f}ms,p95={pct['service_p95']:.3f}ms,p99={pct['service_p99']:.3f}ms"
    # The exact mean, where the lines have it (sample#service_mean): the percentiles are
    # bucket midpoints, and the mean is what sets how busy the workers are.
    # HAProxy's health checks (GET /, tens of µs, no X-Request-Start) are in the lines'
    # requests too: their share (requests - queued) is taken out of the mean, at 0 ms.
    if all(i.get("service_mean") is not None for i in m["per_instance"]):
        work = sum(i["service_mean"] * i["requests"] for i in m["per_instance"])
        queued = sum(i["queued"] for i in m["per_instance"])
        service += f",mean={work / queued:.3f}ms"
    return rate, service


def err(pred, meas):
    return (pred - meas) / meas if meas > 0 else float("inf")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--mean-ms", type=float, default=20.0)
    p.add_argument("--loads", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    p.add_argument("--policies", nargs="+", default=["random", "leastconn"])
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--from-runs", nargs="+", metavar="DIR",
                   help="plan again from earlier measure runs (their measure.json) instead of "
                   "running the fleet: the light-load run first, then one per cell")
    a = p.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "runicorn-cli"], cwd=ROOT, check=True)

    capacity = a.instances * a.workers / (a.mean_ms / 1000.0)
    runs = None
    if a.from_runs:
        runs = []
        for d in a.from_runs:
            with open(os.path.join(d, "measure.json")) as f:
                runs.append(json.load(f))
        a.duration = runs[1]["window_s"]
    # The transit: queue p50 where (almost) no request waits, yet the processes are busy
    # enough to stay awake: least connections at 30 %. At a light load (5 %) HAProxy and
    # idle workers wake from a deeper sleep, and the same p50 read 0.25 ms against 0.17 ms
    # at 50 % with least connections.
    light = runs.pop(0) if runs else measure(a, 0.3 * capacity, "leastconn", 30)
    transit = light["combined"]["queue_p50"]
    print(f"transit (queue p50 at {light['rate'] / capacity:.0%} load, {light['policy']}, from the lines): "
          f"{transit:.3f} ms", file=sys.stderr)

    rows = []
    cells = [(policy, load) for policy in a.policies for load in a.loads]
    if runs:
        cells = [(m["policy"], m["rate"] / capacity) for m in runs]
    for i, (policy, load) in enumerate(cells):
        rate = load * capacity
        m = runs[i] if runs else measure(a, rate, policy, a.duration)
        c, x = m["combined"], m["access_log"]["combined"]
        nominal = plan(a, rate, policy, transit)
        seen_rate, seen_service = lines_inputs(m)
        pred = plan(a, seen_rate, policy, transit, seen_service)
        rows.append((policy, load, rate, c, x, pred, nominal, seen_rate, seen_service))
        print(f"{policy} {load:.0%}: lines p50 {c['queue_p50']:.3f} p99 {c['queue_p99']:.3f}; "
              f"exact p50 {x['p50']:.3f} p99 {x['p99']:.3f}; plan p50 {pred[0]:.3f} p99 {pred[2]:.3f} "
              f"({seen_rate:.1f} req/s, {seen_service}); nominal p50 {nominal[0]:.3f} p99 {nominal[2]:.3f}",
              file=sys.stderr, flush=True)

    print(f"\n{a.instances} instances x {a.workers} workers, service exponential with mean {a.mean_ms:g} ms, "
          f"{a.duration} s a cell; transit {transit:.3f} ms (queue p50 at {light['rate'] / capacity:.0%} load, {light['policy']}). The plan's inputs are the lines' own: the rate of "
          f"requests that came through HAProxy in the window, and the service-time percentiles.\n")
    print("| policy | load | req/s (lines) | queue p50: lines | plan | error | queue p99: lines | plan | error | exact p50 / p99 (access log) | plan from the nominal inputs: p50 / p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    within = 0
    for policy, load, rate, c, x, pred, nominal, seen_rate, _ in rows:
        rate = seen_rate
        e50, e99 = err(pred[0], c["queue_p50"]), err(pred[2], c["queue_p99"])
        ok50, ok99 = abs(e50) <= 0.25, abs(e99) <= 0.40
        within += ok50 + ok99
        print(f"| {policy} | {load:.0%} | {rate:.0f} | {c['queue_p50']:.3f} ms | {pred[0]:.3f} ms | {e50:+.0%}{'' if ok50 else ' (out)'} "
              f"| {c['queue_p99']:.2f} ms | {pred[2]:.2f} ms | {e99:+.0%}{'' if ok99 else ' (out)'} | {x['p50']:.3f} / {x['p99']:.2f} ms "
              f"| {nominal[0]:.3f} / {nominal[2]:.2f} ms |")
    print(f"\nwithin bounds (p50 25 %, p99 40 %): {within} of {2 * len(rows)} cells")


if __name__ == "__main__":
    main()
