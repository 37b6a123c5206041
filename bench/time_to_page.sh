#!/usr/bin/env bash
# Time from a service's error rate rising to 5 % to the webhook receiving the page, for
# postflight and, in the same run, Prometheus + Alertmanager (Debian packages): both scrape the
# same target every 1 s (and themselves, as a daemon watches more than one thing), evaluate the
# same rule every 1 s (`for: 0s`) and page the same receiver with `group_wait: 0s`, everything
# on loopback.
#
#   bench/time_to_page.sh [RUNS]      (default 24)
#
# SKIP_BUILD=1 uses target/release/postflight (BIN=path another binary); STACK=0 leaves
# Prometheus and Alertmanager out; KEEP=1 keeps the temp dir (configs, logs).
# bench/time_to_page.py is the target (counters whose error ratio rises) and the receiver.
set -euo pipefail

RUNS=${1:-24}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/postflight}
STACK=${STACK:-1}
TMP=$(mktemp -d /tmp/postflight-page.XXXXXX)
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$STACK" = 1 ]; then
    for b in /usr/bin/prometheus /usr/bin/prometheus-alertmanager; do
        [ -x "$b" ] || { echo "$b is missing: apt-get install -y prometheus prometheus-alertmanager" >&2; exit 1; }
    done
    SENDERS=postflight,prometheus
else
    SENDERS=postflight
fi

# Free loopback ports: postflight's API, the target, the receiver, Prometheus, Alertmanager.
read -r API_PORT TARGET_PORT HOOK_PORT PROM_PORT AM_PORT < <(python3 - <<'EOF'
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
EOF
)

# The rule both evaluate: the error ratio between the last two scrapes above 0.1 % (a 99.9 %
# availability objective), with the run's `iter` label.
EXPR='(irate(app_errors_total[5s]) / irate(app_requests_total[5s]) > 0.001) * on() group_left(iter) app_iteration'

cat >"$TMP/postflight.toml" <<EOF
[server]
listen = "127.0.0.1:$API_PORT"
[storage]
path = "$TMP/data"
[global]
scrape_interval = "1s"
evaluation_interval = "1s"

[[job]]
name = "app"
targets = ["127.0.0.1:$TARGET_PORT"]

[[job]]
name = "postflight"
targets = ["127.0.0.1:$API_PORT"]

[[rule]]
alert = "AppErrors"
expr = '$EXPR'
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
url = "http://127.0.0.1:$HOOK_PORT/postflight"
EOF

cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$TMP/rules.yml"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$AM_PORT"]
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ["127.0.0.1:$TARGET_PORT"]
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROM_PORT"]
EOF
cat >"$TMP/rules.yml" <<EOF
groups:
  - name: app
    rules:
      - alert: AppErrors
        expr: '$EXPR'
        for: 0s
        labels: { severity: page }
EOF
if [ "$STACK" = 1 ]; then
    # Each run moves the rule into a group of its own name (see time_to_page.py).
    export PROM_URL="http://127.0.0.1:$PROM_PORT" PROM_RULES="$TMP/rules.yml" RULE_EXPR="$EXPR"
fi
cat >"$TMP/alertmanager.yml" <<EOF
route:
  receiver: hook
  group_by: [alertname, iter]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$HOOK_PORT/prometheus
        send_resolved: true
EOF

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi
"$BIN" check -c "$TMP/postflight.toml" >/dev/null
if [ "$STACK" = 1 ]; then
    promtool check config "$TMP/prometheus.yml" >/dev/null
    amtool check-config "$TMP/alertmanager.yml" >/dev/null
fi

python3 -u "$ROOT/bench/time_to_page.py" "$TARGET_PORT" "$HOOK_PORT" "$RUNS" "$SENDERS" >"$TMP/helper.out" &
HELPER_PID=$!
PIDS+=("$HELPER_PID")
for _ in $(seq 1 50); do grep -q ready "$TMP/helper.out" 2>/dev/null && break; sleep 0.1; done
"$BIN" run -c "$TMP/postflight.toml" 2>"$TMP/postflight.log" &
PIDS+=($!)
if [ "$STACK" = 1 ]; then
    # No cluster: a single Alertmanager would otherwise wait for gossip to settle.
    /usr/bin/prometheus-alertmanager --config.file="$TMP/alertmanager.yml" \
        --storage.path="$TMP/am" --web.listen-address="127.0.0.1:$AM_PORT" \
        --cluster.listen-address= 2>"$TMP/alertmanager.log" &
    PIDS+=($!)
    /usr/bin/prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom" \
        --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-lifecycle \
        2>"$TMP/prometheus.log" &
    PIDS+=($!)
fi
echo "time to page: $RUNS runs, scrape/evaluation every 1s, for 0s, group_wait 0s ($SENDERS)"
# The helper bounds every run (2 × 30 s); this bounds the whole.
for _ in $(seq 1 $((RUNS * 70 + 30))); do
    kill -0 "$HELPER_PID" 2>/dev/null || break
    sleep 1
done
wait "$HELPER_PID" || {
    cat "$TMP/helper.out"
    for l in "$TMP"/*.log; do echo "== $l"; tail -20 "$l"; done
    exit 1
}
grep -v '^ready$' "$TMP/helper.out"
