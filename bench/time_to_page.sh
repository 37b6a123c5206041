#!/usr/bin/env bash
# Time from a condition starting to the webhook receiving the page, with scrape and evaluation
# intervals of 1 s, `for = "0s"` and `group_wait = "0s"`, everything on loopback.
#
#   bench/time_to_page.sh [RUNS]      (default 12; SKIP_BUILD=1 uses target/release/postflight)
#
# bench/time_to_page.py is the target (a gauge that flips) and the webhook receiver.
set -euo pipefail

RUNS=${1:-12}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/postflight-page.XXXXXX)
DAEMON_PID=""
HELPER_PID=""
cleanup() {
    trap - EXIT INT TERM
    for p in $DAEMON_PID $HELPER_PID; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $DAEMON_PID $HELPER_PID; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three free loopback ports.
read -r API_PORT TARGET_PORT HOOK_PORT < <(python3 - <<'EOF'
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
EOF
)

cat >"$TMP/postflight.toml" <<EOF
[server]
listen = "127.0.0.1:$API_PORT"
[storage]
path = "$TMP/data"
[global]
scrape_interval = "1s"
probe_interval = "1s"
evaluation_interval = "1s"

[[job]]
name = "app"
targets = ["127.0.0.1:$TARGET_PORT"]

[[rule]]
alert = "AppBroken"
expr = 'app_broken == 1'
for = "0s"
labels = { severity = "page" }

[[route]]
receivers = ["hook"]
group_by = ["alertname", "iter"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "4h"

[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:$HOOK_PORT/hook"
EOF

BIN=$ROOT/target/release/postflight
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi
"$BIN" check -c "$TMP/postflight.toml" >/dev/null

python3 -u "$ROOT/bench/time_to_page.py" "$TARGET_PORT" "$HOOK_PORT" "$RUNS" >"$TMP/helper.out" &
HELPER_PID=$!
for _ in $(seq 1 50); do grep -q ready "$TMP/helper.out" 2>/dev/null && break; sleep 0.1; done
"$BIN" run -c "$TMP/postflight.toml" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
echo "time to page: $RUNS runs, scrape/evaluation every 1s, for 0s, group_wait 0s"
# The helper bounds every run (30 s); this bounds the whole.
for _ in $(seq 1 $((RUNS * 70))); do
    kill -0 "$HELPER_PID" 2>/dev/null || break
    sleep 1
done
wait "$HELPER_PID" || { cat "$TMP/helper.out"; tail -20 "$TMP/daemon.log"; exit 1; }
grep -v '^ready$' "$TMP/helper.out"
