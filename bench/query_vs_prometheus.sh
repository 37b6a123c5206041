#!/usr/bin/env bash
# Range queries over days of history, postflight against Prometheus on the same data.
#
# bench/gen_query_history.py writes one OpenMetrics file (10,000 counters over 24 h, a
# histogram over 7 days, 60 s step); `postflight import openmetrics` and `promtool tsdb
# create-blocks-from openmetrics` load it, then a postflight daemon and a Prometheus are
# started on what they wrote, and each query below is sent to both in turn, RUNS times (5):
#
#   sum by (job) (rate(x_total[5m]))                          24 h at a 60 s step
#   histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))  7 days at a 5 m step
#
# For each run: the request's wall time (curl) and the process' peak RSS during it (the peak
# is reset through /proc/PID/clear_refs before the request, read from VmHWM after). The
# answers of both are compared (same series, values within 1e-9 relative).
#
#   bench/query_vs_prometheus.sh [SERIES]     (default 10000)
#
# Environment: BIN=path/to/postflight (default target/release/postflight, built when missing
# unless SKIP_BUILD=1), RUNS, KEEP=1 keeps the temp dir, FILE=path reuses a history file.
set -euo pipefail

SERIES=${1:-10000}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/postflight}
if [ ! -x "$BIN" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --bin postflight)
fi

TMP=$(mktemp -d /tmp/postflight-qbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

FILE=${FILE:-$TMP/history.om}
if [ ! -s "$FILE" ]; then
    python3 "$ROOT/bench/gen_query_history.py" "$SERIES" > "$FILE" 2> "$FILE.end"
fi
END=$(tail -1 "$FILE.end")
echo "file: $(wc -l < "$FILE") lines, $(du -m "$FILE" | cut -f1) MiB, ends at $END"

PF_PORT=$(free_port)
PROM_PORT=$(free_port)
cat > "$TMP/postflight.toml" <<EOF
[server]
listen = "127.0.0.1:$PF_PORT"

[storage]
path = "$TMP/store"
retention = "30d"
EOF
printf 'global:\n  scrape_interval: 1h\n' > "$TMP/prometheus.yml"

"$BIN" import openmetrics "$FILE" -c "$TMP/postflight.toml" > "$TMP/import.out" 2>&1
promtool tsdb create-blocks-from openmetrics -q "$FILE" "$TMP/tsdb" > "$TMP/promtool.out" 2>&1

"$BIN" run -c "$TMP/postflight.toml" > "$TMP/postflight.log" 2>&1 &
PF_PID=$!
PIDS+=("$PF_PID")
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
    --storage.tsdb.retention.time=30d --web.listen-address="127.0.0.1:$PROM_PORT" \
    > "$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
PIDS+=("$PROM_PID")
for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$PF_PORT/readyz" > /dev/null &&
        curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" > /dev/null; then
        break
    fi
    sleep 0.5
done
echo "ready: postflight $(($(grep VmRSS /proc/$PF_PID/status | awk '{print $2}') / 1024)) MiB," \
    "prometheus $(($(grep VmRSS /proc/$PROM_PID/status | awk '{print $2}') / 1024)) MiB"

# One request: prints "wall_seconds peak_rss_mib" and keeps the answer in $TMP/$3.json.
request() {
    local pid=$1 port=$2 out=$3 query=$4 start=$5 step=$6
    echo 5 > "/proc/$pid/clear_refs"
    local wall
    wall=$(curl -s -o "$TMP/$out.json" -w '%{time_total}' \
        --data-urlencode "query=$query" --data-urlencode "start=$start" \
        --data-urlencode "end=$END" --data-urlencode "step=$step" \
        "http://127.0.0.1:$port/api/v1/query_range")
    local hwm
    hwm=$(grep VmHWM "/proc/$pid/status" | awk '{print $2}')
    printf '%s %s\n' "$wall" "$((hwm / 1024))"
}

bench() {
    local name=$1 query=$2 range=$3 step=$4
    local start=$((END - range))
    echo "== $name: $query, $((range / 3600)) h at ${step} s"
    for sys in postflight prometheus; do
        local pid port
        if [ "$sys" = postflight ]; then pid=$PF_PID port=$PF_PORT; else pid=$PROM_PID port=$PROM_PORT; fi
        local walls=() peaks=()
        for _ in $(seq 1 "$RUNS"); do
            read -r wall peak < <(request "$pid" "$port" "$sys-$name" "$query" "$start" "$step")
            walls+=("$wall")
            peaks+=("$peak")
        done
        local sorted
        sorted=$(printf '%s\n' "${walls[@]:1}" | sort -n)
        printf '%-10s first %6.3f s  then median %6.3f s (%s)  peak RSS %s MiB\n' "$sys" \
            "${walls[0]}" "$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
            "$(echo "${walls[@]:1}")" "$(echo "${peaks[@]}")"
    done
    python3 - "$TMP/postflight-$name.json" "$TMP/prometheus-$name.json" <<'EOF'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["status"] == "success", a
assert b["status"] == "success", b
def table(r):
    return {json.dumps(s["metric"], sort_keys=True): s["values"] for s in r["data"]["result"]}
ta, tb = table(a), table(b)
assert ta.keys() == tb.keys(), (sorted(ta)[:3], sorted(tb)[:3])
points = 0
for k in ta:
    assert [t for t, _ in ta[k]] == [t for t, _ in tb[k]], k
    for (_, x), (_, y) in zip(ta[k], tb[k]):
        x, y = float(x), float(y)
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-9 * max(1, abs(x), abs(y)), (k, x, y)
        points += 1
print(f"answers equal: {len(ta)} series, {points} points")
EOF
}

bench rate 'sum by (job) (rate(x_total[5m]))' $((24 * 3600)) 60
bench histogram 'histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))' $((7 * 86400)) 300
