#!/usr/bin/env python3
"""Time to page: a scrape target and a webhook receiver on loopback, driven by time_to_page.sh.

The target serves `app_broken{iter="N"} 1` while iteration N's condition holds, nothing else
otherwise; the rule `app_broken == 1` (for 0s) pages through a webhook receiver (group_wait 0s,
grouped by iter, so every iteration is a new group). Each iteration records the time from the
flip to the webhook request carrying the firing alert of that iteration.

    time_to_page.py TARGET_PORT HOOK_PORT RUNS   (prints one line per run, then a summary)
"""

import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET_PORT, HOOK_PORT, RUNS = (int(a) for a in sys.argv[1:4])

lock = threading.Lock()
broken_iter = None  # the iteration whose condition holds, or None
paged = {}  # iter -> monotonic time the firing webhook arrived
resolved = set()
cond = threading.Condition(lock)


class Target(BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            it = broken_iter
        body = b"app_ok 1\n"
        if it is not None:
            body += b'app_broken{iter="%d"} 1\n' % it
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
        n = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(n) or b"{}")
        with cond:
            for a in payload.get("alerts", []):
                it = a.get("labels", {}).get("iter")
                if it is None:
                    continue
                if a.get("status") == "firing":
                    paged.setdefault(int(it), now)
                else:
                    resolved.add(int(it))
            cond.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def serve(port, handler):
    s = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


serve(TARGET_PORT, Target)
serve(HOOK_PORT, Hook)
print("ready", flush=True)
# Give the daemon time to scrape the healthy page once.
time.sleep(3)

lat = []
for it in range(1, RUNS + 1):
    # A random phase against the 1 s scrape and evaluation ticks.
    time.sleep(random.uniform(0, 1))
    global_start = time.monotonic()
    with cond:
        broken_iter = it
        ok = cond.wait_for(lambda: it in paged, timeout=30)
    if not ok:
        print(f"run {it}: no page within 30 s", flush=True)
        sys.exit(1)
    d = paged[it] - global_start
    lat.append(d)
    print(f"run {it}: paged after {d:.3f} s", flush=True)
    with cond:
        broken_iter = None
        # Let the alert resolve before the next run (bounded).
        cond.wait_for(lambda: it in resolved, timeout=30)

lat.sort()
med = lat[len(lat) // 2] if len(lat) % 2 else (lat[len(lat) // 2 - 1] + lat[len(lat) // 2]) / 2
print(f"time to page over {len(lat)} runs: min {lat[0]:.3f} s, median {med:.3f} s, max {lat[-1]:.3f} s")
