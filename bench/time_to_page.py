#!/usr/bin/env python3
"""Time to page: a scrape target and a webhook receiver on loopback, driven by time_to_page.sh.

The target is a service answering 1,000 requests a second: it exposes the counters
`app_requests_total` and `app_errors_total`, computed from the clock at each scrape, and
`app_iteration{iter="N"} 1`. In each run its error rate rises from 0 to 5 % (iteration N
starts at that moment); the rule turns the counters into a ratio and carries `iter`, so every
run is a new alert and a new group. Both postflight (`POST /postflight`) and Prometheus +
Alertmanager (`POST /prometheus`) scrape the target and page the same receiver; each run
records the time from the rise to each one's firing notification, then the error rate falls
back to 0 and the run waits for both resolutions.

Prometheus evaluates a rule group at an offset in the interval that comes from a hash of the
group's name, so one name would measure one phase of its evaluations against the scrapes. With
PROM_URL and PROM_RULES set, each run writes the rule (RULE_EXPR) into a group named after the
run and reloads Prometheus: the runs sample its phases as the rises sample the scrapes'.

    time_to_page.py TARGET_PORT HOOK_PORT RUNS SENDERS   (SENDERS: postflight,prometheus)
"""

import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET_PORT, HOOK_PORT, RUNS = (int(a) for a in sys.argv[1:4])
SENDERS = sys.argv[4].split(",")
RATE = 1000.0  # requests a second
ERRORS = 0.05  # the error ratio during a run

lock = threading.Condition()
iteration = 0
broken_since = None  # monotonic time the error rate rose, while it is up
errors_before = 0.0  # errors counted in earlier runs
start = time.monotonic()
paged = {}  # (sender, iter) -> monotonic time of the firing notification
resolved = set()  # (sender, iter)


def errors_now(now):
    e = errors_before
    if broken_since is not None:
        e += RATE * ERRORS * (now - broken_since)
    return e


class Target(BaseHTTPRequestHandler):
    def do_GET(self):
        now = time.monotonic()
        with lock:
            requests = RATE * (now - start)
            errors = errors_now(now)
            it = iteration
        body = (
            "# TYPE app_requests_total counter\n"
            f"app_requests_total {requests:.3f}\n"
            "# TYPE app_errors_total counter\n"
            f"app_errors_total {errors:.3f}\n"
            "# TYPE app_iteration gauge\n"
            f'app_iteration{{iter="{it}"}} 1\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        now = time.monotonic()
        sender = self.path.strip("/")
        n = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(n) or b"{}")
        with lock:
            for a in payload.get("alerts", []):
                it = a.get("labels", {}).get("iter")
                if it is None:
                    continue
                key = (sender, int(it))
                if a.get("status") == "firing":
                    paged.setdefault(key, now)
                else:
                    resolved.add(key)
            lock.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def serve(port, handler):
    s = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


def prometheus_group(name):
    """Puts the rule into a group called `name` and reloads Prometheus."""
    url, path = os.environ.get("PROM_URL"), os.environ.get("PROM_RULES")
    if not url or not path:
        return
    expr = os.environ["RULE_EXPR"].replace("'", "''")
    with open(path + ".tmp", "w") as f:
        f.write(
            f"groups:\n  - name: {name}\n    rules:\n      - alert: AppErrors\n"
            f"        expr: '{expr}'\n        for: 0s\n        labels: {{ severity: page }}\n"
        )
    os.replace(path + ".tmp", path)
    req = urllib.request.Request(url + "/-/reload", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    # A reload empties the notifier's list of Alertmanagers until discovery fills it again (up
    # to 5 s): an alert that fires meanwhile is dropped until the resend a minute later.
    for _ in range(150):
        am = json.load(urllib.request.urlopen(url + "/api/v1/alertmanagers", timeout=10))
        if am["data"]["activeAlertmanagers"]:
            return
        time.sleep(0.1)
    raise SystemExit("Prometheus lists no Alertmanager 15 s after a reload")


def median(v):
    return statistics.median(v) if v else float("nan")


serve(TARGET_PORT, Target)
serve(HOOK_PORT, Hook)
print("ready", flush=True)
# The script starts the daemons now: let them scrape the healthy service for a while.
time.sleep(10)

lat = {s: [] for s in SENDERS}
for it in range(1, RUNS + 1):
    prometheus_group(f"app-{it}")
    # The new group evaluates a few times; then a random phase against the scrapes.
    time.sleep(2 + random.uniform(0, 1))
    with lock:
        iteration = it
        broken_since = rise = time.monotonic()
        ok = lock.wait_for(lambda: all((s, it) in paged for s in SENDERS), timeout=30)
    if not ok:
        missing = [s for s in SENDERS if (s, it) not in paged]
        print(f"run {it}: no page from {', '.join(missing)} within 30 s", flush=True)
        if os.environ.get("PROM_URL") and "prometheus" in missing:
            rules = urllib.request.urlopen(os.environ["PROM_URL"] + "/api/v1/rules", timeout=10)
            print(rules.read().decode(), flush=True)
        sys.exit(1)
    line = []
    for s in SENDERS:
        d = paged[(s, it)] - rise
        lat[s].append(d)
        line.append(f"{s} {d:.3f} s")
    print(f"run {it}: paged after " + ", ".join(line), flush=True)
    with lock:
        errors_before = errors_now(time.monotonic())
        broken_since = None
        # Both resolve before the next run (bounded).
        lock.wait_for(lambda: all((s, it) in resolved for s in SENDERS), timeout=30)

print(f"time to page over {RUNS} runs:")
for s in SENDERS:
    v = sorted(lat[s])
    print(f"  {s}: median {median(v):.3f} s (min {v[0]:.3f}, max {v[-1]:.3f})")
if len(SENDERS) == 2:
    a, b = (median(lat[s]) for s in SENDERS)
    print(f"  ratio {SENDERS[0]} / {SENDERS[1]}: {a / b:.2f}")
