#!/usr/bin/env python3
"""The dashboard against a daemon under load (the watch job: 1,000 probes, 100 targets).

    bench/watch_job.sh 60 600 &          # or any running daemon
    bench/dashboard.py http://127.0.0.1:PORT [RUNS]

Prints: the answer time of the overview's HTML (`GET /`) and of the JSON it reads, the bytes
of every asset the page loads (as sent, and gzip -9), and the time until the overview is drawn
in headless Chromium (the page's `overview-drawn` performance mark: navigation start to every
row and sparkline on screen), each as a median over RUNS (default 20; 5 for the browser).
Needs /usr/bin/chromium and /usr/bin/chromedriver; chromedriver is started on a free port and
stopped at the end.
"""

import gzip
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def fetch(url, body=None, method=None):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
    return time.perf_counter() - t0, data


def median_ms(url, runs):
    return statistics.median(fetch(url)[0] for _ in range(runs)) * 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    base = sys.argv[1].rstrip("/")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    fetch(base + "/")  # warm

    now = time.time()
    print(f"GET /                               median {median_ms(base + '/', runs):7.2f} ms")
    for path in [
        "/api/v1/targets",
        "/api/v1/alerts",
        f"/api/v1/query_range?query=probe_duration_seconds%7Bexported_instance%3D%22%22%7D&start={now - 3600:.0f}&end={now:.0f}&step=60",
    ]:
        print(f"GET {path[:31]:31s} median {median_ms(base + path, runs):7.2f} ms")

    _, page = fetch(base + "/")
    assets = re.findall(r'(?:href|src)="(/ui/[^"]+)"', page.decode())
    raw, gz = len(page), len(gzip.compress(page, 9))
    for a in assets:
        _, body = fetch(base + a)
        raw += len(body)
        gz += len(gzip.compress(body, 9))
    print(f"page + {len(assets)} assets: {raw / 1024:.1f} KiB as sent, {gz / 1024:.1f} KiB gzip -9")

    port = free_port()
    driver = subprocess.Popen(
        ["/usr/bin/chromedriver", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wd = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                fetch(wd + "/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}}
        _, r = fetch(wd + "/session", json.dumps(caps).encode())
        sid = json.loads(r)["value"]["sessionId"]
        s = f"{wd}/session/{sid}"

        def script(js):
            _, r = fetch(s + "/execute/sync", json.dumps({"script": js, "args": []}).encode())
            return json.loads(r)["value"]

        drawn, rows = [], 0
        for i in range(max(3, runs // 4)):
            fetch(s + "/url", json.dumps({"url": f"{base}/?run={i}#/"}).encode())
            deadline = time.time() + 30
            t = None
            while t is None and time.time() < deadline:
                t = script('const e = performance.getEntriesByName("overview-drawn")[0]; return e ? e.startTime : null;')
                if t is None:
                    time.sleep(0.05)
            rows = script('return document.querySelectorAll("#targets tbody tr").length;')
            drawn.append(t)
        fetch(s, method="DELETE")
        print(f"overview drawn in Chromium ({rows} rows): median {statistics.median(drawn):.0f} ms "
              f"(min {min(drawn):.0f}, max {max(drawn):.0f}, {len(drawn)} loads)")
    finally:
        driver.terminate()
        driver.wait(timeout=10)


if __name__ == "__main__":
    main()
