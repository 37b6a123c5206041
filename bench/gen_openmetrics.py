#!/usr/bin/env python3
"""Writes an OpenMetrics history file for `postflight import` and `promtool tsdb
create-blocks-from openmetrics`: counters, gauges and a histogram over the last DAYS days.

usage: gen_openmetrics.py SAMPLES DAYS > history.om

SAMPLES is the total number of samples (about); series = SAMPLES / points, points = DAYS days
at a 60 s step. Values are deterministic (seeded), so two runs write the same file. The file
ends an hour before now, so that every sample is within a 15-day retention and before the
daemon's head window.
"""
import math
import random
import sys
import time

STEP = 60
BUCKETS = ["0.005", "0.01", "0.05", "0.1", "0.5", "1.0", "5.0", "+Inf"]


def main():
    total = int(sys.argv[1])
    days = float(sys.argv[2])
    points = int(days * 86400 / STEP)
    end = (int(time.time()) // 3600 - 1) * 3600
    start = end - (points - 1) * STEP
    rnd = random.Random(42)
    out = sys.stdout
    # Series per family: one histogram instance is len(BUCKETS) + 2 series.
    per_series = points
    n_series = max(3, total // per_series)
    hist_instances = max(1, n_series // 3 // (len(BUCKETS) + 2))
    counters = max(1, n_series // 3)
    gauges = max(1, n_series - counters - hist_instances * (len(BUCKETS) + 2))
    w = out.write

    w("# HELP http_requests Requests served.\n# TYPE http_requests counter\n")
    for i in range(counters):
        v = 0.0
        rate = rnd.uniform(0.1, 20)
        code = ("200", "500")[i % 2]
        lbl = f'{{code="{code}",instance="host-{i // 2}",job="api"}}'
        lines = []
        for k in range(points):
            v += rate * STEP * rnd.uniform(0.5, 1.5)
            if k == points // 2 and i % 5 == 0:
                v = rate  # a restart: counter reset
            lines.append(f"http_requests_total{lbl} {v:.3f} {start + k * STEP}\n")
        w("".join(lines))

    w("# HELP temperature_celsius Room temperature.\n# TYPE temperature_celsius gauge\n"
      "# UNIT temperature_celsius celsius\n")
    for i in range(gauges):
        v = rnd.uniform(15, 25)
        lbl = f'{{instance="host-{i}",job="env",room="r{i % 7}"}}'
        lines = []
        for k in range(points):
            v += rnd.uniform(-0.5, 0.5)
            lines.append(f"temperature_celsius{lbl} {v:.2f} {start + k * STEP}\n")
        w("".join(lines))

    w("# HELP request_duration_seconds Request latency.\n"
      "# TYPE request_duration_seconds histogram\n")
    for i in range(hist_instances):
        lbl = f'instance="host-{i}",job="api"'
        counts = [0] * len(BUCKETS)
        total_sum = 0.0
        rows = [[] for _ in range(len(BUCKETS) + 2)]
        for k in range(points):
            t = start + k * STEP
            n = rnd.randint(10, 100)
            mean = 0.05 + 0.05 * (i % 3) + (0.1 if k > points // 2 and i % 2 else 0)
            for b, le in enumerate(BUCKETS):
                share = 1.0 if le == "+Inf" else 1 - math.exp(-float(le) / mean)
                counts[b] += round(n * share)
            total_sum += n * mean * rnd.uniform(0.8, 1.2)
            for b, le in enumerate(BUCKETS):
                rows[b].append(f'request_duration_seconds_bucket{{{lbl},le="{le}"}} {counts[b]} {t}\n')
            rows[-2].append(f"request_duration_seconds_sum{{{lbl}}} {total_sum:.4f} {t}\n")
            rows[-1].append(f"request_duration_seconds_count{{{lbl}}} {counts[-1]} {t}\n")
        for r in rows:
            w("".join(r))
    w("# EOF\n")


if __name__ == "__main__":
    main()
