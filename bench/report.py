"""The report: one plain-text table per measure, runicorn's ratio to each peer, and the
targets runicorn is held to: close-mode and keep-alive throughput and p99 against nginx's,
worker and total PSS against Apache prefork's, start to first 200 against nginx's.
"""


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
    out = ["runicorn benchmark"]
    out.append(f"  machine: {meta['cpus']} CPUs ({meta['cpu_model']}), {meta['mem_gib']:.1f} GiB, "
               f"Linux {meta['kernel']}; load average {meta['load_start']:.2f} at start, "
               f"{meta['load_end']:.2f} at end; {meta['minutes']:.1f} min")
    for name, v in meta["versions"].items():
        out.append(f"  {name}: {v}")
    for section in (throughput_section, memory_section, startup_section):
        lines = section(res, args)
        if lines:
            out += [""] + lines
    if res["throughput"] or res["memory"] or res["startup"]:
        out += ["", "Targets: req/s and p99 against nginx at 2 workers, PSS against Apache prefork "
                "at each count measured, start against nginx:"]
        out.extend("  " + t for t in targets(res))
    for section in (axum_throughput_section, axum_memory_section, axum_faults_section):
        lines = section(res, args, meta)
        if lines:
            out += [""] + lines
    return "\n".join(out)


def throughput_section(res, args):
    tp = res["throughput"]
    if not tp:
        return []
    out = [f"Throughput and latency: wrk -t1 -c{args.connections}, median of {args.runs} x "
           f"{args.duration} s, servers measured in rounds. 'x req/s' is runicorn's req/s "
           "divided by the server's; 'x p99' is runicorn's p99 divided by the server's "
           "(below 1: runicorn's is lower)."]
    for mode in ("close", "keepalive"):
        rows = []
        for workers in args.workers:
            ours = next((r for r in tp if r["mode"] == mode and r["workers"] == workers
                         and r["server"] == "runicorn"), None)
            for r in [x for x in tp if x["mode"] == mode and x["workers"] == workers]:
                mine = r["server"] == "runicorn"
                rows.append([
                    workers, r["server"], fmt(r["rps"]), fmt(r["p50"], 2), fmt(r["p99"], 2),
                    r["errors"],
                    "" if mine else ratio(ours and ours["rps"], r["rps"]),
                    "" if mine else ratio(ours and ours["p99"], r["p99"]),
                ])
        title = ("Connection: close" if mode == "close"
                 else "keep-alive (runicorn --keepalive 5; gunicorn sync and unicorn close anyway)")
        out += ["", f"  {title}"]
        out.append(indent(table(rows, ["workers", "server", "req/s", "p50 ms", "p99 ms",
                                       "errors", "x req/s", "x p99"])))
    return out


def memory_section(res, args):
    mem = res["memory"]
    if not mem:
        return []
    out = ["Memory after a 1 s warm-up (KiB): median per worker of RSS, PSS and USS "
           "(Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup; total PSS over "
           "every process of the server. 'x' columns: runicorn's figure divided by the "
           "server's."]
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
    return out


def startup_section(res, args):
    st = res["startup"]
    if not st:
        return []
    out = [f"Start to first 200 ({args.startup_workers} workers; spawn to the first 200 of a "
           "GET polled every 0.5 ms) and TTIN to a serving worker (old workers stopped, "
           f"signal to the 200 the new one answers); medians of {args.startup_runs}, ms. "
           "'x' columns: runicorn's time divided by the server's."]
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
    return out


def axum_throughput_section(res, args, meta):
    tp = res.get("axum_throughput")
    if not tp:
        return []
    out = [f"axum: examples/axum_bench.rs served by runicorn (runicorn-axum: --workers N) and by "
           f"axum::serve on a Tokio multi-thread runtime with N threads (axum-serve). wrk -t1, "
           f"-c{args.connections} on /, -c{args.io_connections} on /io (20 ms sleep); median of "
           f"{args.runs} x {args.duration} s, in rounds. 'x req/s' and 'x p99': runicorn-axum's "
           "figure divided by axum-serve's."]
    for path in ("/", "/io"):
        for mode in ("close", "keepalive"):
            rows = []
            for workers in args.workers:
                sel = [x for x in tp if x["path"] == path and x["mode"] == mode and x["workers"] == workers]
                ours = next((x for x in sel if x["server"] == "runicorn-axum"), None)
                theirs = next((x for x in sel if x["server"] == "axum-serve"), None)
                for r in sel:
                    mine = r["server"] == "runicorn-axum"
                    rows.append([
                        workers, r["server"], fmt(r["rps"]), fmt(r["p50"], 2), fmt(r["p99"], 2),
                        r["errors"],
                        ratio(ours and ours["rps"], theirs and theirs["rps"]) if mine else "",
                        ratio(ours and ours["p99"], theirs and theirs["p99"]) if mine else "",
                    ])
            if not rows:
                continue
            flags = next((x["flags"] for x in tp if x["path"] == path and x["mode"] == mode
                          and x["server"] == "runicorn-axum"), "")
            title = f"GET {path}, " + ("Connection: close" if mode == "close" else "keep-alive")
            out += ["", f"  {title} (runicorn-axum {flags or 'defaults'}; axum-serve: hyper's keep-alive)"]
            out.append(indent(table(rows, ["workers", "server", "req/s", "p50 ms", "p99 ms",
                                           "errors", "x req/s", "x p99"])))
    return out


def axum_memory_section(res, args, meta):
    mem = res.get("axum_memory")
    if not mem:
        return []
    out = ["axum memory after 1 s of / and 1 s of /io (KiB): median per worker of RSS, PSS "
           "and USS (each runicorn worker holds its own Tokio runtime); total over every "
           "process of the server. axum-serve is one process (N threads): no worker columns. "
           "'x total PSS': the server's total PSS divided by axum-serve's."]
    rows = []
    for workers in args.memory_workers:
        sel = [x for x in mem if x["workers"] == workers]
        theirs = next((x for x in sel if x["server"] == "axum-serve"), None)
        for r in sel:
            mine = r["server"] == "runicorn-axum"
            rows.append([
                workers, r["server"], r["flags"] or "-", r["processes"],
                fmt(r["worker_rss"]), fmt(r["worker_pss"]), fmt(r["worker_uss"]),
                fmt(r["total_rss"]), fmt(r["total_pss"]), fmt(r["total_uss"]),
                ratio(r["total_pss"], theirs and theirs["total_pss"]) if mine else "",
            ])
    out.append(indent(table(rows, ["workers", "server", "settings", "procs", "worker RSS",
                                   "worker PSS", "worker USS", "total RSS", "total PSS",
                                   "total USS", "x total PSS"], left=3)))
    uss = [x["worker_uss"] for x in mem if x["server"] == "runicorn-axum" and x["worker_uss"]]
    if uss:
        worst = max(uss)
        out.append(f"  runicorn-axum worker USS: {fmt(min(uss))} to {fmt(worst)} KiB "
                   f"({'below' if worst < 400 else 'NOT below'} 400 KiB)")
    return out


def axum_faults_section(res, args, meta):
    fl = res.get("axum_faults")
    if not fl:
        return []
    out = [f"axum fault isolation: {args.fault_connections} connections load GET / for "
           f"{args.fault_seconds} s (each request given {args.fault_client_timeout:g} s; "
           f"100 ms pause after a failure) while /fault/ROUTE is hit {args.fault_hits} times, "
           f"evenly spaced, each hit waiting {args.fault_hit_timeout:g} s (the leak row: "
           f"{args.leak_burst} requests of 1 MiB per hit). Each server is started afresh for "
           "each row, with 2 workers (runicorn-axum) or 2 threads (axum-serve). 'failed': "
           "timeouts + refused + other socket errors + non-2xx; 'gap': the longest stretch "
           "with no request to / answered; 'fault ok': fault requests answered 2xx; 'alive': "
           "the server (master) still running at the end; 'killed/replaced': runicorn's log "
           "lines 'worker killed' (timeout, abort) and 'worker over its memory limit'."]
    if meta.get("dyno_note"):
        out.append(f"  NOTE: {meta['dyno_note']}")
    rows = []
    for r in fl:
        rows.append([
            r["fault"], r["server"], r["answered"], r["failed"], r["timeouts"], r["refused"],
            r["errors"], r["non2xx"], f"{r['longest_gap_s']:.2f}",
            f"{r['fault_answered']}/{r['fault_hits']}",
            "yes" if r["alive_at_end"] else "no",
            f"{r['kills']}/{r['replaced']}" if r["server"] == "runicorn-axum" else "-",
        ])
    out.append(indent(table(rows, ["fault", "server", "answered", "failed", "timeouts", "refused",
                                   "errors", "non-2xx", "gap s", "fault ok", "alive",
                                   "killed/replaced"])))
    for r in fl:
        out.append(f"  {r['fault']:5} {r['server']:13} {r['flags']}")
    return out


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
                             f"{fmt(ours['worker_pss'])} vs {fmt(apa['worker_pss'])} KiB",
                             ours["worker_pss"] < apa["worker_pss"]))
            out.append(check(f"total PSS below Apache prefork's ({workers} workers)",
                             f"{fmt(ours['total_pss'])} vs {fmt(apa['total_pss'])} KiB",
                             ours["total_pss"] < apa["total_pss"]))
    st = {r["server"]: r for r in res["startup"]}
    if "runicorn" in st and "nginx" in st and st["runicorn"]["start_ms"] and st["nginx"]["start_ms"]:
        out.append(check("start to first 200 below nginx's",
                         f"{st['runicorn']['start_ms']:.1f} vs {st['nginx']['start_ms']:.1f} ms",
                         st["runicorn"]["start_ms"] < st["nginx"]["start_ms"]))
    return out
