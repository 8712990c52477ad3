"""Tests of the fleet harness's pure parts: python3 -B -m unittest discover -s bench/fleet"""

import math
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fleetlib import (  # noqa: E402
    by_step, haproxy_config, logfmt, mixture_quantile, nearest_rank, read_records, request_line,
    service_path, summarize, table, window,
)

# A request line as runicorn prints it (docs/metrics.md).
LINE = (
    "source=web.1 dyno=vm count#requests=159791 count#requests_1xx=0 count#requests_2xx=159791 "
    "count#requests_3xx=0 count#requests_4xx=0 count#requests_5xx=0 sample#service_p50=0.005ms "
    "sample#service_p95=0.023ms sample#service_p99=0.027ms sample#service_max=100.290ms "
    "count#queued_requests=2 sample#queue_p50=204.800ms sample#queue_p95=214.515ms "
    "sample#queue_p99=214.515ms sample#queue_max=214.515ms sample#backlog=0 sample#backlog_limit=1024 "
    "sample#workers_busy=0 sample#workers_idle=2"
)


class Logfmt(unittest.TestCase):
    def test_bare_and_quoted_values(self):
        f = logfmt('at=info msg="worker ready" worker=0 path="/a \\"b\\" \\\\ \\u{001b}" empty="" flag')
        self.assertEqual(f["at"], "info")
        self.assertEqual(f["msg"], "worker ready")
        self.assertEqual(f["worker"], "0")
        self.assertEqual(f["path"], '/a "b" \\ \x1b')
        self.assertEqual(f["empty"], "")
        self.assertEqual(f["flag"], "")

    def test_the_request_line(self):
        r = request_line(logfmt(LINE))
        self.assertEqual(r["source"], "web.1")
        self.assertEqual((r["requests"], r["requests_2xx"], r["queued"]), (159791, 159791, 2))
        self.assertEqual((r["queue_p50"], r["queue_p99"], r["queue_max"]), (204.8, 214.515, 214.515))
        self.assertEqual(r["service_max"], 100.29)
        self.assertEqual((r["backlog"], r["workers_busy"], r["workers_idle"]), (0, 0, 2))
        # Other kinds of line are not request lines; absent keys are None.
        self.assertIsNone(request_line(logfmt("source=web.1 dyno=vm sample#load_avg_1m=0.15")))
        quiet = request_line(logfmt("source=web.1 count#requests=0 count#queued_requests=0"))
        self.assertIsNone(quiet["queue_p50"])


class Percentiles(unittest.TestCase):
    def test_nearest_rank(self):
        v = list(range(1, 101))
        self.assertEqual(nearest_rank(v, 0.5), 50)
        self.assertEqual(nearest_rank(v, 0.99), 99)
        self.assertEqual(nearest_rank(v, 1.0), 100)
        self.assertEqual(nearest_rank([7], 0.5), 7)
        self.assertIsNone(nearest_rank([], 0.5))

    def test_a_mixture_of_equal_instances_is_each_of_them(self):
        part = (100, 1.0, 10.0, 20.0, 30.0)
        for q, want in ((0.5, 1.0), (0.95, 10.0), (0.99, 20.0)):
            self.assertAlmostEqual(mixture_quantile([part, part, part], q), want, places=6)

    def test_a_mixture_of_exponential_tails_is_exact(self):
        # Two queues whose waits have exponential tails past their medians a:
        # F(x) = 1 - 0.5 e^(-(x - a) / m), so p95 = a + m ln 10 and p99 = a + m ln 50.
        queues = [(300, 0.2, 5.0), (100, 0.3, 12.0)]  # (count, a, m)

        def true_quantile(q):
            lo, hi = 0.3, 500.0
            for _ in range(200):
                x = (lo + hi) / 2
                f = sum(n * (1 - 0.5 * math.exp(-(x - a) / m)) for n, a, m in queues) / 400
                lo, hi = (lo, x) if f >= q else (x, hi)
            return hi

        parts = [(n, a, a + m * math.log(10), a + m * math.log(50), a + m * 8) for n, a, m in queues]
        for q in (0.8, 0.9, 0.95):  # below both p99s, where the interpolation is exact
            self.assertAlmostEqual(mixture_quantile(parts, q), true_quantile(q), places=3)

    def test_a_mixture_lies_between_its_parts_and_leans_to_the_larger(self):
        a, b = (100, 1.0, 5.0, 9.0, 10.0), (300, 3.0, 15.0, 27.0, 30.0)
        m = mixture_quantile([a, b], 0.5)
        self.assertTrue(1.0 < m < 3.0 and m > 2.0, m)
        self.assertEqual(mixture_quantile([(0, None, None, None, None), a], 0.95), mixture_quantile([a], 0.95))
        self.assertIsNone(mixture_quantile([], 0.5))


def rec(ms, outcome="ok", latency_ms=10):
    return {"scheduled_us": ms * 1000, "lag_us": 100, "outcome": outcome,
            "status": 200 if outcome == "ok" else None, "latency_us": latency_ms * 1000}


class Steps(unittest.TestCase):
    def test_each_request_goes_to_the_step_it_ended_in(self):
        start_us = 1_000_000_000  # unix 1000 s
        records = [
            rec(10),  # ends at 0.02 s: before the first mark
            rec(600),  # 0.61 s: baseline
            rec(980, "reset", latency_ms=40),  # sent in the baseline, reset by the upgrade
            rec(1500, "reset"),  # upgrade
            rec(2100),  # restart
            rec(2995, latency_ms=30),  # ends after the last mark: the last step
        ]
        marks = [("baseline", 1000.5), ("upgrade s1", 1001.0), ("restart s1", 1002.0), ("end", 1003.0)]
        steps = by_step(start_us, records, marks)
        self.assertEqual([n for n, _ in steps], ["baseline", "upgrade s1", "restart s1"])
        self.assertEqual([len(rs) for _, rs in steps], [1, 2, 2])
        self.assertEqual([r["outcome"] for r in steps[1][1]], ["reset", "reset"])
        self.assertEqual(len(window(start_us, records, 1000.0, 1001.0)), 3, "by scheduled time")

    def test_summaries(self):
        s = summarize([rec(1, latency_ms=5), rec(2, latency_ms=7), rec(3, "timeout"), rec(4, "not_sent")])
        self.assertEqual((s["sent"], s["failed"]), (4, 2))
        self.assertEqual(s["counts"]["timeout"], 1)
        self.assertEqual((s["p50"], s["max"]), (5.0, 7.0))

    def test_records_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("# start_unix_us=42\nscheduled_us,lag_us,outcome,status,latency_us\n"
                    "10,1,ok,200,500\n20,2,reset,,7\n")
        try:
            start, records = read_records(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(start, 42)
        self.assertEqual(records[1], {"scheduled_us": 20, "lag_us": 2, "outcome": "reset", "status": None,
                                      "latency_us": 7})


class Config(unittest.TestCase):
    def test_the_template_is_filled(self):
        cfg = haproxy_config("127.0.0.1:9000", "/x/h.sock", "random",
                             [("s1", "127.0.0.1:9001"), ("s2", "127.0.0.1:9002")], retries=0)
        self.assertNotIn("@", cfg)
        self.assertIn("    bind 127.0.0.1:9000\n", cfg)
        self.assertIn("    balance random(1)\n", cfg)
        self.assertIn("    retries 0\n", cfg)
        self.assertIn("stats socket /x/h.sock ", cfg)
        self.assertIn("    server s1 127.0.0.1:9001\n    server s2 127.0.0.1:9002\n", cfg)
        self.assertIn("http-request set-header X-Request-Start t=%[date(0,us)]", cfg)
        self.assertIn("balance leastconn", haproxy_config("a", "b", "leastconn", []))

    def test_service_paths(self):
        self.assertEqual(service_path("exp", 20.0), "/service?dist=exp&mean_ms=20")
        self.assertEqual(service_path("const", 2.5), "/service?dist=const&ms=2.5")
        self.assertEqual(service_path("lognormal", 0, 10.0, 0.5), "/service?dist=lognormal&median_ms=10&sigma=0.5")

    def test_table(self):
        t = table(["step", "n", "ms"], [["baseline", 12, 1.25], ["x", 3, None]])
        self.assertEqual(t.splitlines(), ["step       n   ms", "baseline  12  1.2", "x          3    -"])


if __name__ == "__main__":
    unittest.main()
