#!/usr/bin/env python3
"""Writes the OpenMetrics history for the query benchmark (bench/query_vs_prometheus.sh):

- `x_total{job, instance}`: SERIES counters (10 jobs) every 60 s over the last 24 h and 10 min;
- `h` histogram: 10 instances of 11 buckets (+ _count, _sum) every 60 s over the last 7 days
  and 10 min.

usage: gen_query_history.py [SERIES] > history.om      (default 10000)

The values are deterministic (seeded). The file ends an hour before now (on the hour), so every
sample is within a 30-day retention and older than the daemon's head window; the last line of
stderr is that end as a Unix timestamp, for the queries' `end`. Samples sit 53 s past the
minute, off the queries' steps: Prometheus 2.42's range windows are closed on the left and
3.x's (postflight's) open, and with no sample on a window's edge both agree.
"""
import random
import sys
import time

STEP = 60
# The share of observations at or below each bound (raised to a power per step, so the
# quantiles move), and the bounds.
FRACTION = [0.02, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95, 0.985, 0.995, 1.0]
LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    end = (int(time.time()) // 3600 - 1) * 3600
    off = -7
    rnd = random.Random(7)
    w = sys.stdout.write

    points = (24 * 3600 + 600) // STEP + 1
    start = end - (points - 1) * STEP
    w("# HELP x Requests served.\n# TYPE x counter\n")
    for i in range(n):
        lbl = f'{{instance="host-{i}",job="job-{i % 10}"}}'
        v = 0.0
        rate = rnd.uniform(0.1, 50)
        lines = []
        for k in range(points):
            v += rate * STEP * rnd.uniform(0.8, 1.2)
            lines.append(f"x_total{lbl} {v:.1f} {start + k * STEP + off}\n")
        w("".join(lines))

    points = (7 * 86400 + 600) // STEP + 1
    start = end - (points - 1) * STEP
    w("# HELP h Request latency.\n# TYPE h histogram\n")
    for i in range(10):
        counts = [0] * len(LE)
        total = 0.0
        rows = [[] for _ in range(len(LE) + 2)]
        for k in range(points):
            t = start + k * STEP + off
            seen = rnd.randint(50, 150)
            slow = rnd.uniform(0.5, 1.5)
            for b in range(len(LE)):
                counts[b] += round(seen * FRACTION[b] ** slow)
            total += seen * 0.08 * slow
            for b, le in enumerate(LE):
                rows[b].append(f'h_bucket{{instance="host-{i}",le="{le}"}} {counts[b]} {t}\n')
            rows[-2].append(f'h_count{{instance="host-{i}"}} {counts[-1]} {t}\n')
            rows[-1].append(f'h_sum{{instance="host-{i}"}} {total:.3f} {t}\n')
        for r in rows:
            w("".join(r))
    w("# EOF\n")
    print(end, file=sys.stderr)


if __name__ == "__main__":
    main()
