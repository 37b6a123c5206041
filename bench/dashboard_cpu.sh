#!/usr/bin/env bash
# What an open dashboard tab costs the daemon: two watch jobs at once (bench/watch_job.sh 60 180),
# the first with one headless Chromium tab on its overview (it refreshes every 10 s), the second
# with none; prints both jobs' CPU and RSS. Needs /usr/bin/chromium.
#
#   BIN=target/release/postflight bench/dashboard_cpu.sh
#
# WARMUP and MEASURE (60 and 180 s) set the watch jobs' durations: two identical jobs side by
# side differ by a few per cent over 3 minutes, so a small difference needs a longer MEASURE.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-$(pwd)/target/release/postflight}
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
before=$(ls -d /tmp/postflight-watch.* 2>/dev/null | sort)
SKIP_BUILD=1 BIN=$BIN bench/watch_job.sh "${WARMUP:-60}" "${MEASURE:-180}" > "$LOGS/a.log" 2>&1 &
A_PID=$!
sleep 4
A_DIR=$(comm -13 <(echo "$before") <(ls -d /tmp/postflight-watch.* | sort) | head -1)
SKIP_BUILD=1 BIN=$BIN bench/watch_job.sh "${WARMUP:-60}" "${MEASURE:-180}" > "$LOGS/b.log" 2>&1 &
B_PID=$!
PORT=$(grep -o '127.0.0.1:[0-9]*' "$A_DIR/postflight.toml" | head -1)
for _ in $(seq 1 60); do curl -sf "http://$PORT/readyz" >/dev/null && break; sleep 1; done
chromium --headless=new --no-sandbox --disable-gpu --remote-debugging-port=0 --user-data-dir="$LOGS/profile" "http://$PORT/" > "$LOGS/chromium.log" 2>&1 &
CHR=$!
echo "A dir $A_DIR port $PORT chromium $CHR"
wait $A_PID $B_PID
kill $CHR 2>/dev/null; sleep 1; kill -9 $CHR 2>/dev/null
echo "== A (one dashboard tab)"; tail -8 "$LOGS/a.log"
echo "== B (no tab)"; tail -8 "$LOGS/b.log"
