#!/usr/bin/env bash
# The "watch job" benchmark: 1000 HTTP health probes with a JSON check plus 100 scrapes of a
# 590-series page, every 10 s, against a local nginx on loopback. Prints the daemon's CPU time
# per minute and its RSS (steady and peak), and nginx's CPU for reference.
#
#   bench/watch_job.sh [WARMUP_SECONDS [MEASURE_SECONDS]]     (defaults: 60 and 180)
#
# Environment: PROBES (1000), TARGETS (100), INTERVAL (10s), KEEP=1 keeps the temp dir,
# CHECKPOINT=30s sets storage.checkpoint_interval, RETENTION=20m storage.retention, STORE_EVERY=60
# prints the store's size (postflight_store_size_bytes and du), RSS and CPU every 60 s of the
# measurement (the one-hour bounded-size run: RETENTION=20m STORE_EVERY=60 bench/watch_job.sh 60 3600). SKIP_BUILD=1 uses the existing target/release/postflight, PERF=1 records a profile of the
# measurement window into the temp dir (with KEEP=1: perf report -i DIR/perf.data).
# WRAP='heaptrack -o FILE' runs the daemon under a profiler (heaptrack sees only malloc: give it
# BIN= a binary built with --features system-allocator; RSS and CPU are then the profiled
# process'). RSS_TRACE=1 prints every RSS sample (every 5 s: the rule rounds and checkpoints
# show as peaks); EVAL_INTERVAL=1h sets the rules' interval apart from the others (effectively
# no rule rounds in a short run).
# IMPORT=file.om imports an OpenMetrics history into the store before the daemon starts
# (bench/gen_openmetrics.py SAMPLES 7 writes 7 days of it); QUERY='expr' sends that range
# query over the last QUERY_RANGE seconds (7 days) at a QUERY_STEP (300 s) every 10 s of the
# measurement and prints how long the queries took. EXTRA_CONFIG=FILE appends FILE to the
# generated config; DIR_FILE=FILE writes the temp dir's path there (bench/logs_follow.sh uses
# both).
# Everything listens on 127.0.0.1; nginx and the daemon are stopped on exit, Ctrl-C included.
set -euo pipefail

WARMUP=${1:-60}
MEASURE=${2:-180}
PROBES=${PROBES:-1000}
TARGETS=${TARGETS:-100}
INTERVAL=${INTERVAL:-10s}
SAMPLE_EVERY=5

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${CORPUS:-$ROOT/../../shared/corpus/exposition/webapp_590_series.prom}
[ -f "$CORPUS" ] || CORPUS=/work/shared/corpus/exposition/webapp_590_series.prom
NGINX=${NGINX:-/usr/sbin/nginx}

if [ ! -x "$NGINX" ]; then
    echo "nginx missing: installing nginx-light" >&2
    apt-get install -y nginx-light >/dev/null || apt-get install -y nginx >/dev/null
fi

TMP=$(mktemp -d /tmp/postflight-watch.XXXXXX)
[ -n "${DIR_FILE:-}" ] && echo "$TMP" >"$DIR_FILE"
chmod 755 "$TMP"
DAEMON_PID=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    if [ -f "$TMP/nginx.pid" ]; then
        kill -TERM "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 1 50); do [ -f "$TMP/nginx.pid" ] || break; sleep 0.1; done
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/ports.sh
. "$ROOT/bench/ports.sh"
BASE=$(free_block $((TARGETS + 2)))
API_PORT=$BASE
HEALTH_PORT=$((BASE + 1))
METRICS_BASE=$((BASE + 2))

# --- nginx: /health on one port, the page on TARGETS ports (one instance each) ---
mkdir -p "$TMP/www" "$TMP/nginx-tmp"
cp "$CORPUS" "$TMP/www/metrics.prom"
chmod 644 "$TMP/www/metrics.prom"
{
    echo "worker_processes 1;"
    echo "pid $TMP/nginx.pid;"
    echo "error_log $TMP/nginx-error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    echo "  client_body_temp_path $TMP/nginx-tmp/body; proxy_temp_path $TMP/nginx-tmp/proxy;"
    echo "  fastcgi_temp_path $TMP/nginx-tmp/fcgi; uwsgi_temp_path $TMP/nginx-tmp/uwsgi; scgi_temp_path $TMP/nginx-tmp/scgi;"
    echo "  keepalive_requests 100000;"
    echo "  server {"
    echo "    listen 127.0.0.1:$HEALTH_PORT;"
    echo "    location /health { default_type application/json; return 200 '{\"status\":\"ok\",\"database\":\"connected\"}'; }"
    echo "  }"
    echo "  server {"
    for i in $(seq 0 $((TARGETS - 1))); do echo "    listen 127.0.0.1:$((METRICS_BASE + i));"; done
    echo "    location = /metrics { default_type 'text/plain; version=0.0.4'; alias $TMP/www/metrics.prom; }"
    echo "  }"
    echo "}"
} >"$TMP/nginx.conf"
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log"
for _ in $(seq 1 50); do [ -s "$TMP/nginx.pid" ] && break; sleep 0.1; done
NGINX_MASTER=$(cat "$TMP/nginx.pid")
curl -sf "http://127.0.0.1:$HEALTH_PORT/health?i=0" >/dev/null
curl -sf "http://127.0.0.1:$METRICS_BASE/metrics" >/dev/null

# --- the postflight config ---
CFG=$TMP/postflight.toml
{
    echo "[server]"
    echo "listen = \"127.0.0.1:$API_PORT\""
    echo "[storage]"
    echo "path = \"$TMP/data\""
    [ -n "${CHECKPOINT:-}" ] && echo "checkpoint_interval = \"$CHECKPOINT\""
    [ -n "${RETENTION:-}" ] && echo "retention = \"$RETENTION\""
    echo "[global]"
    echo "scrape_interval = \"$INTERVAL\""
    echo "probe_interval = \"$INTERVAL\""
    echo "evaluation_interval = \"${EVAL_INTERVAL:-$INTERVAL}\""
    echo "probe_timeout = \"5s\""
    echo
    echo "[[job]]"
    echo "name = \"webapp\""
    printf 'targets = ['
    for i in $(seq 0 $((TARGETS - 1))); do
        [ "$i" -gt 0 ] && printf ', '
        printf '"127.0.0.1:%d"' $((METRICS_BASE + i))
    done
    echo "]"
    for i in $(seq 0 $((PROBES - 1))); do
        echo
        echo "[[probe]]"
        echo "name = \"health-$i\""
        echo "url = \"http://127.0.0.1:$HEALTH_PORT/health?i=$i\""
        echo "job = \"webapp\""
        echo "expect_status = [200]"
        echo "json = { \"status\" = \"ok\", \"database\" = \"connected\" }"
    done
    cat <<'EOF'

[[rule]]
alert = "HighErrorRate"
expr = 'sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m])) > 0.01'
for = "2m"
labels = { severity = "page" }
annotations = { summary = "error rate {{ $value | humanizePercentage }} on {{ $labels.job }}" }

[[rule]]
alert = "HighLatencyP99"
expr = 'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m]))) > 2'
for = "5m"
labels = { severity = "warning" }

[[rule]]
alert = "TargetDown"
expr = 'up == 0'
for = "1m"
labels = { severity = "page" }

[[rule]]
alert = "HighMemory"
expr = 'process_resident_memory_bytes > 4e9'
for = "10m"
labels = { severity = "warning" }
EOF
    # REMOTE_WRITE=URL: every sample also remote written there (a Prometheus started with
    # --web.enable-remote-write-receiver, for the remote-write cost).
    if [ -n "${REMOTE_WRITE:-}" ]; then printf '\n[[remote_write]]\nurl = "%s"\n' "$REMOTE_WRITE"; fi
    if [ -n "${EXTRA_CONFIG:-}" ]; then cat "$EXTRA_CONFIG"; fi
} >"$CFG"

# --- build once, check, run ---
BIN=${BIN:-$ROOT/target/release/postflight}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi
"$BIN" check -c "$CFG" >/dev/null
if [ -n "${IMPORT:-}" ]; then
    "$BIN" import openmetrics "$IMPORT" -c "$CFG" | tail -1
fi
# shellcheck disable=SC2086 # WRAP is a command prefix, split on purpose
${WRAP:-} "$BIN" run -c "$CFG" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
if [ -n "${WRAP:-}" ]; then
    # The wrapper's descendant running the binary itself is the daemon: measure and stop
    # that process (not a shell of the wrapper's that exits meanwhile).
    EXE=$(readlink -f "$BIN")
    for _ in $(seq 1 100); do
        for p in $(pgrep -f -- "run -c $CFG" || true); do
            [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$EXE" ] && [ "$p" != "$DAEMON_PID" ] && DAEMON_PID=$p && break 2
        done
        sleep 0.1
    done
fi
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null
# READY_FILE=PATH: the API port and the daemon's pid are written there once it is ready (for
# bench/remote_write.sh, which reads the daemon's metrics and RSS while it runs).
if [ -n "${READY_FILE:-}" ]; then echo "$API_PORT $DAEMON_PID" >"$READY_FILE"; fi

TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of pid $1
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
nginx_ticks() {
    local t=0 p
    for p in $NGINX_MASTER $(pgrep -P "$NGINX_MASTER"); do t=$((t + $(cpu_ticks "$p"))); done
    echo $t
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

echo "postflight watch job: $PROBES probes + $TARGETS scrape targets every $INTERVAL; warm-up ${WARMUP}s, measure ${MEASURE}s"
sleep "$WARMUP"
kill -0 "$DAEMON_PID"
if [ "${PERF:-0}" = 1 ]; then
    perf record -F 199 -g -p "$DAEMON_PID" -o "$TMP/perf.data" -- sleep "$MEASURE" >/dev/null 2>&1 &
fi
QUERY_PID=""
if [ -n "${QUERY:-}" ]; then
    (
        end=$(($(date +%s) + MEASURE))
        while [ "$(date +%s)" -lt "$end" ]; do
            now=$(date +%s)
            curl -s -o /dev/null -w '%{time_total}\n' --data-urlencode "query=$QUERY" \
                --data-urlencode "start=$((now - ${QUERY_RANGE:-604800}))" --data-urlencode "end=$now" \
                --data-urlencode "step=${QUERY_STEP:-300}" "http://127.0.0.1:$API_PORT/api/v1/query_range" \
                >>"$TMP/query-times"
            sleep 10
        done
    ) &
    QUERY_PID=$!
fi
d0=$(cpu_ticks "$DAEMON_PID")
n0=$(nginx_ticks)
t0=$(date +%s.%N)
rss_sum=0
rss_n=0
rss_max=0
elapsed=0
while [ "$elapsed" -lt "$MEASURE" ]; do
    step=$((MEASURE - elapsed < SAMPLE_EVERY ? MEASURE - elapsed : SAMPLE_EVERY))
    sleep "$step"
    elapsed=$((elapsed + step))
    kill -0 "$DAEMON_PID"
    rss=$(status_kb "$DAEMON_PID" VmRSS)
    rss_sum=$((rss_sum + rss))
    rss_n=$((rss_n + 1))
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    [ -n "${RSS_TRACE:-}" ] && echo "t=$elapsed rss=$rss anon=$(status_kb "$DAEMON_PID" RssAnon)"
    if [ -n "${STORE_EVERY:-}" ] && [ $((elapsed % STORE_EVERY)) -lt "$SAMPLE_EVERY" ]; then
        m=$(curl -sf "http://127.0.0.1:$API_PORT/metrics")
        size=$(echo "$m" | awk '/^postflight_store_size_bytes / {print $2}')
        head_b=$(echo "$m" | awk '/^postflight_head_bytes / {print $2}')
        du_b=$(du -sb "$TMP/data" | cut -f1)
        cpu=$(cpu_ticks "$DAEMON_PID")
        printf 't=%5ds store_size_bytes=%s du=%s head_bytes=%s rss_kib=%s cpu_s=%.1f\n' "$elapsed" "$size" "$du_b" "$head_b" "$rss" "$(echo "$cpu $TCK" | awk '{print $1 / $2}')"
    fi
done
d1=$(cpu_ticks "$DAEMON_PID")
n1=$(nginx_ticks)
t1=$(date +%s.%N)
hwm=$(status_kb "$DAEMON_PID" VmHWM)
rss_anon=$(status_kb "$DAEMON_PID" RssAnon)
rss_file=$(status_kb "$DAEMON_PID" RssFile)
metrics=$(curl -sf "http://127.0.0.1:$API_PORT/metrics")
targets=$(curl -sf "http://127.0.0.1:$API_PORT/api/v1/targets")

awk -v d0="$d0" -v d1="$d1" -v n0="$n0" -v n1="$n1" -v t0="$t0" -v t1="$t1" -v tck="$TCK" \
    -v rs="$rss_sum" -v rn="$rss_n" -v rmax="$rss_max" -v hwm="$hwm" -v ra="$rss_anon" -v rf="$rss_file" 'BEGIN {
    min = (t1 - t0) / 60
    printf "measured %.1f s\n", t1 - t0
    printf "daemon CPU: %.3f CPU-s/min (%.2f s total)\n", (d1 - d0) / tck / min, (d1 - d0) / tck
    printf "daemon RSS: steady %.1f MiB (mean of %d samples), max sampled %.1f MiB, peak (VmHWM) %.1f MiB\n", rs / rn / 1024, rn, rmax / 1024, hwm / 1024
    printf "daemon RSS at the end: heap and stacks (RssAnon) %.1f MiB, the binary'"'"'s code and other files (RssFile) %.1f MiB\n", ra / 1024, rf / 1024
    printf "nginx CPU:  %.3f CPU-s/min\n", (n1 - n0) / tck / min
}'
if [ -n "$QUERY_PID" ]; then
    kill "$QUERY_PID" 2>/dev/null || true
    sort -n "$TMP/query-times" | awk '{a[NR]=$1} END {printf "range queries: %d, median %.3f s, max %.3f s\n", NR, a[int((NR+1)/2)], a[NR]}'
fi
up=$(echo "$metrics" | grep -c '^probe_success{.*} 1' || true)
scr=$(echo "$metrics" | awk '/^postflight_scrapes_total\{/ {print}' | tr '\n' ' ')
down=$(echo "$targets" | grep -o '"health":"down"' | wc -l || true)
echo "probes succeeding: $up of $PROBES; targets down: $down; $scr"
