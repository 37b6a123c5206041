#!/usr/bin/env bash
# Remote write under the watch job (bench/watch_job.sh), into real Prometheus receivers
# (--web.enable-remote-write-receiver), on loopback.
#
#   bench/remote_write.sh cost [WARMUP_SECONDS [MEASURE_SECONDS]]     (defaults: 60 and 180)
#   bench/remote_write.sh outage [BEFORE_SECONDS [OUTAGE_SECONDS]]    (defaults: 120 and 600)
#
# cost: four processes side by side, measured over the same window: the watch job alone and
# the watch job remote writing into receiver 1 (two bench/watch_job.sh runs), and a Prometheus
# scraping the watch job's 100 targets alone and one scraping them with a remote_write section
# into receiver 2. Prints each one's CPU (utime + stime from /proc, CPU-s/min) and the two
# deltas, with the samples per second each receiver took.
#
# outage: the watch job remote writing into one receiver; after BEFORE_SECONDS the receiver is
# stopped for OUTAGE_SECONDS and started again on the same data. Prints how long the backlog
# took to arrive (postflight_remote_write_lag_seconds back under 15 s, and the newest sample
# the receiver holds back within 15 s of now), postflight's RSS before the outage, during it
# and while the backlog is in flight, and the samples each side holds over the outage.
#
# Environment: BIN (default target/release/postflight; built when missing), KEEP=1 keeps the
# temp dir. Every process is started here and stopped by its pid on exit, Ctrl-C included.
set -euo pipefail

MODE=${1:-cost}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/postflight}
CORPUS=${CORPUS:-/work/shared/corpus/exposition/webapp_590_series.prom}
NGINX=${NGINX:-/usr/sbin/nginx}
TCK=$(getconf CLK_TCK)
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi

TMP=$(mktemp -d /tmp/postflight-rw.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ -f "$TMP/nginx.pid" ]; then kill -TERM "$(cat "$TMP/nginx.pid")" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/ports.sh
. "$ROOT/bench/ports.sh"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# appended PORT: samples a Prometheus has appended to its head so far.
appended() { curl -sf "http://127.0.0.1:$1/metrics" | awk '/^prometheus_tsdb_head_samples_appended_total/ {s += $2} END {print s + 0}'; }
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# query PORT PROMQL: the first value of an instant query (empty when none).
query() {
    curl -sfG "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" ${3:+--data-urlencode "time=$3"} |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
# prometheus NAME PORT CONFIG [FLAGS...]: starts a Prometheus with its data in $TMP/NAME;
# its pid goes to $TMP/NAME.pid.
prometheus() {
    local name=$1 port=$2 cfg=$3
    shift 3
    mkdir -p "$TMP/$name"
    echo "$cfg" >"$TMP/$name.yml"
    command prometheus --config.file="$TMP/$name.yml" --storage.tsdb.path="$TMP/$name" \
        --web.listen-address="127.0.0.1:$port" "$@" 2>>"$TMP/$name.log" &
    echo $! >"$TMP/$name.pid"
    PIDS+=($!)
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && return; sleep 0.1; done
    echo "$name did not start: $(tail -5 "$TMP/$name.log")" >&2
    return 1
}
RECEIVER='global:
  scrape_interval: 1h'

cost() {
    local warmup=${1:-60} measure=${2:-180}
    # The Prometheus pair's targets: the watch job's page on 100 nginx ports.
    local base i targets=""
    base=$(free_block 100)
    mkdir -p "$TMP/www" "$TMP/nginx-tmp"
    cp "$CORPUS" "$TMP/www/metrics.prom"
    chmod 644 "$TMP/www/metrics.prom"
    {
        echo "worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx-error.log warn;"
        echo "events { worker_connections 4096; }"
        echo "http { access_log off; keepalive_requests 100000;"
        echo "  client_body_temp_path $TMP/nginx-tmp/body; proxy_temp_path $TMP/nginx-tmp/proxy;"
        echo "  fastcgi_temp_path $TMP/nginx-tmp/fcgi; uwsgi_temp_path $TMP/nginx-tmp/uwsgi; scgi_temp_path $TMP/nginx-tmp/scgi;"
        echo "  server {"
        for i in $(seq 0 99); do echo "    listen 127.0.0.1:$((base + i));"; done
        echo "    location = /metrics { default_type 'text/plain; version=0.0.4'; alias $TMP/www/metrics.prom; }"
        echo "  }"
        echo "}"
    } >"$TMP/nginx.conf"
    "$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log"
    for i in $(seq 0 99); do targets="$targets'127.0.0.1:$((base + i))',"; done
    local scrape="global:
  scrape_interval: 10s
  scrape_timeout: 5s
scrape_configs:
  - job_name: webapp
    static_configs:
      - targets: [${targets%,}]"
    local r1 r2 p0 p1
    r1=$(free_port) r2=$(free_port) p0=$(free_port) p1=$(free_port)
    prometheus receiver1 "$r1" "$RECEIVER" --web.enable-remote-write-receiver
    prometheus receiver2 "$r2" "$RECEIVER" --web.enable-remote-write-receiver
    prometheus prom_alone "$p0" "$scrape"
    prometheus prom_rw "$p1" "$scrape
remote_write:
  - url: http://127.0.0.1:$r2/api/v1/write"
    SKIP_BUILD=1 BIN=$BIN "$ROOT/bench/watch_job.sh" "$warmup" "$measure" >"$TMP/alone.out" 2>&1 &
    local w0=$!
    PIDS+=("$w0")
    SKIP_BUILD=1 BIN=$BIN REMOTE_WRITE="http://127.0.0.1:$r1/api/v1/write" \
        "$ROOT/bench/watch_job.sh" "$warmup" "$measure" >"$TMP/rw.out" 2>&1 &
    local w1=$!
    PIDS+=("$w1")
    # The watch jobs need a few seconds to start nginx and the daemon before their warm-up.
    sleep $((warmup + 3))
    local a0 b0 t0 a1 b1 t1 s10 s20 s11 s21
    a0=$(ticks "$(cat "$TMP/prom_alone.pid")") b0=$(ticks "$(cat "$TMP/prom_rw.pid")") t0=$(date +%s.%N)
    s10=$(appended "$r1") s20=$(appended "$r2")
    sleep "$measure"
    a1=$(ticks "$(cat "$TMP/prom_alone.pid")") b1=$(ticks "$(cat "$TMP/prom_rw.pid")") t1=$(date +%s.%N)
    s11=$(appended "$r1") s21=$(appended "$r2")
    local rate1 rate2
    rate1=$(awk -v a="$s10" -v b="$s11" -v t0="$t0" -v t1="$t1" 'BEGIN {print (b - a) / (t1 - t0)}')
    rate2=$(awk -v a="$s20" -v b="$s21" -v t0="$t0" -v t1="$t1" 'BEGIN {print (b - a) / (t1 - t0)}')
    wait "$w0" "$w1" || true
    echo "== the watch job alone"
    cat "$TMP/alone.out"
    echo "== the watch job remote writing into receiver 1"
    cat "$TMP/rw.out"
    local pf0 pf1
    pf0=$(awk '/^daemon CPU:/ {print $3}' "$TMP/alone.out")
    pf1=$(awk '/^daemon CPU:/ {print $3}' "$TMP/rw.out")
    awk -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v tck="$TCK" \
        -v pf0="$pf0" -v pf1="$pf1" -v r1="$rate1" -v r2="$rate2" 'BEGIN {
        min = (t1 - t0) / 60
        pa = (a1 - a0) / tck / min; pb = (b1 - b0) / tck / min
        printf "== side by side, %.1f s\n", t1 - t0
        printf "postflight: %.3f alone, %.3f remote writing: +%.3f CPU-s/min; receiver 1 took %.0f samples/s\n", pf0, pf1, pf1 - pf0, r1
        printf "Prometheus scraping the 100 targets: %.3f alone, %.3f remote writing: +%.3f CPU-s/min; receiver 2 took %.0f samples/s\n", pa, pb, pb - pa, r2
        if (pb - pa > 0 && r1 > 0 && r2 > 0)
            printf "postflight'"'"'s delta per sample sent is %.2f of Prometheus'"'"'\n", ((pf1 - pf0) / r1) / ((pb - pa) / r2)
    }'
}

outage() {
    local before=${1:-120} length=${2:-600}
    local r
    r=$(free_port)
    prometheus receiver "$r" "$RECEIVER" --web.enable-remote-write-receiver
    SKIP_BUILD=1 BIN=$BIN REMOTE_WRITE="http://127.0.0.1:$r/api/v1/write" READY_FILE="$TMP/ready" \
        "$ROOT/bench/watch_job.sh" 0 $((before + length + 600)) >"$TMP/watch.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 600); do [ -s "$TMP/ready" ] && break; sleep 0.1; done
    local api pid
    read -r api pid <"$TMP/ready"
    lag() { curl -sf "http://127.0.0.1:$api/metrics" | awk '/^postflight_remote_write_lag_seconds\{/ {print $2}'; }
    echo "watch job remote writing; receiver stopped after ${before}s for ${length}s"
    # RSS before the outage: the mean of the last minute of samples.
    local sum=0 n=0 i
    sleep $((before - 60))
    for i in $(seq 1 12); do sum=$((sum + $(rss_kib "$pid"))); n=$((n + 1)); sleep 5; done
    local base=$((sum / n))
    local rpid
    rpid=$(cat "$TMP/receiver.pid")
    kill -TERM "$rpid"
    while kill -0 "$rpid" 2>/dev/null; do sleep 0.1; done
    local down_at
    down_at=$(date +%s)
    local max_out=0 rss
    while [ $(($(date +%s) - down_at)) -lt "$length" ]; do
        rss=$(rss_kib "$pid")
        [ "$rss" -gt "$max_out" ] && max_out=$rss
        sleep 5
    done
    prometheus receiver "$r" "$RECEIVER" --web.enable-remote-write-receiver
    local back_at
    back_at=$(date +%s.%N)
    local max_in=0 l age caught=""
    for _ in $(seq 1 600); do
        rss=$(rss_kib "$pid")
        [ "$rss" -gt "$max_in" ] && max_in=$rss
        l=$(lag)
        age=$(query "$r" 'time() - max(timestamp(probe_success))')
        if [ -n "$l" ] && [ -n "$age" ] && awk -v l="$l" -v a="$age" 'BEGIN {exit !(l < 15 && a < 15)}'; then
            caught=$(date +%s.%N)
            break
        fi
        sleep 1
    done
    [ -n "$caught" ] || { echo "the backlog did not arrive within 10 minutes (lag $l s)"; exit 1; }
    # Samples over the outage (and a minute either side) on both sides, once everything up
    # to the window's end has been sent.
    local at=$((${back_at%.*} + 60))
    while [ "$(date +%s)" -lt $((at + 20)) ]; do sleep 1; done
    local w=$((length + 120))
    local q="sum(count_over_time(probe_success[${w}s])) + sum(count_over_time(up[${w}s]))"
    local ours theirs
    ours=$(query "$api" "$q" "$at")
    theirs=$(query "$r" "$q" "$at")
    awk -v b="$back_at" -v c="$caught" -v base="$base" -v mo="$max_out" -v mi="$max_in" \
        -v ours="$ours" -v theirs="$theirs" 'BEGIN {
        printf "backlog delivered in %.1f s after the receiver came back\n", c - b
        printf "RSS: %.1f MiB before, max %.1f MiB during the outage (+%.1f), max %.1f MiB while the backlog was in flight (+%.1f)\n", base / 1024, mo / 1024, (mo - base) / 1024, mi / 1024, (mi - base) / 1024
        printf "probe_success and up samples over the outage and a minute either side: postflight %d, receiver %d\n", ours, theirs
    }'
}

case "$MODE" in
cost) cost "${2:-}" "${3:-}" ;;
outage) outage "${2:-}" "${3:-}" ;;
*) echo "usage: $0 cost|outage [SECONDS [SECONDS]]" >&2; exit 2 ;;
esac
