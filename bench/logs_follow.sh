#!/usr/bin/env bash
# Following a fast log while the watch job runs: two watch jobs at once (bench/watch_job.sh:
# 1,000 probes and 100 scrape targets every 10 s each), the first with a `[[log]]` source on a
# file, the second without. After a warm-up and a baseline minute, a writer appends 200-byte
# lines to the first one's file at 20 MB/s for a minute. Then:
#
# - no line lost: the first daemon's `log_lines_total` reaches the lines written (and the
#   matches the matching lines written), within a bounded wait;
# - RSS: the first daemon's RSS sampled every second, before (the baseline minute's mean),
#   during (mean and max) and after; its growth (max during over the baseline) must stay
#   within 10 MiB;
# - the probes keep their timing: p50/p99/max of `probe_duration_seconds` (every probe run of
#   the window, from the daemon's head), for the baseline minute and the writer's minute, in
#   both daemons, and the probe ticks skipped because a run was late.
#
#   bench/logs_follow.sh                       # builds the release binary first
#   SKIP_BUILD=1 BIN=target/release/postflight bench/logs_follow.sh
#
# Environment: RATE_MB (20, MB/s of 10^6 bytes), WRITE (60 s), WARMUP (60 s), BASELINE (60 s),
# AFTER (20 s), PROBES/TARGETS as in watch_job.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
RATE_MB=${RATE_MB:-20}
WRITE=${WRITE:-60}
WARMUP=${WARMUP:-60}
BASELINE=${BASELINE:-60}
AFTER=${AFTER:-20}
CATCH_UP=60
bin=${BIN:-$root/target/release/postflight}
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$root" && cargo build --release --locked --bin postflight >/dev/null)
fi

work=$(mktemp -d /tmp/postflight-follow.XXXXXX)
a_job="" b_job="" writer=""
cleanup() {
  trap - EXIT INT TERM
  for p in $writer $a_job $b_job; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $writer $a_job $b_job; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/logs"
: >"$work/logs/app.log"
cat >"$work/extra.toml" <<EOF

[[log]]
name = "follow"
path = "$work/logs/*.log"
start_at = "beginning"
[[log.match]]
name = "errors"
regex = '\bERROR\b'
[[log.match]]
name = "fatal"
regex = '\bFATAL\b'
EOF

# The whole watch job runs through the phases below (with a margin); it is stopped at the end.
measure=$((BASELINE + WRITE + CATCH_UP + AFTER + 60))
SKIP_BUILD=1 BIN=$bin EXTRA_CONFIG=$work/extra.toml DIR_FILE=$work/a.dir \
  "$root/bench/watch_job.sh" "$WARMUP" "$measure" >"$work/a.out" 2>&1 &
a_job=$!
sleep 4 # the second picks its port block once the first holds its own
SKIP_BUILD=1 BIN=$bin DIR_FILE=$work/b.dir \
  "$root/bench/watch_job.sh" "$WARMUP" "$measure" >"$work/b.out" 2>&1 &
b_job=$!

# Each job's daemon: its port from its config, its pid from its command line.
daemon_of() { # $1 = a or b; prints "port pid"
  local dir port pid
  for _ in $(seq 1 600); do
    dir=$(cat "$work/$1.dir" 2>/dev/null || true)
    if [ -n "$dir" ] && [ -f "$dir/postflight.toml" ]; then
      port=$(awk -F'[:"]' '/^listen = / {print $3; exit}' "$dir/postflight.toml")
      pid=$(pgrep -o -f -- "run -c $dir/postflight.toml" || true)
      if [ -n "$pid" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
        echo "$port $pid"
        return
      fi
    fi
    sleep 0.5
  done
  echo "the $1 job's daemon did not become ready" >&2
  cat "$work/$1.out" >&2
  return 1
}
read -r a_port a_pid < <(daemon_of a)
read -r b_port b_pid < <(daemon_of b)
[ -n "${a_pid:-}" ] && [ -n "${b_pid:-}" ] || exit 1
echo "with the log source: port $a_port pid $a_pid; without: port $b_port pid $b_pid"

rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
metric() { # $1 port, $2 exact series name with labels
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}
q() { # $1 port, $2 PromQL: the value of the one series, or -1
  curl -s "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else -1)'
}
# Samples both RSS every second for $1 seconds into $2 (lines "t rss_a rss_b behind_a").
sample() {
  local end=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$end" ]; do
    echo "$(date +%s.%N) $(rss_kib "$a_pid") $(rss_kib "$b_pid") $(metric "$a_port" 'postflight_log_bytes_behind{log="follow"}')" >>"$2"
    sleep 1
  done
}

echo "warm-up ${WARMUP}s"
sleep "$WARMUP"
skipped() { curl -sf "http://127.0.0.1:$1/metrics" | awk '/^postflight_probe_skipped_ticks_total/ {s += $2} END {print s + 0}'; }
a_skip0=$(skipped "$a_port") b_skip0=$(skipped "$b_port")
echo "baseline ${BASELINE}s"
t_b0=$(date +%s.%N)
sample "$BASELINE" "$work/rss.baseline"
t_b1=$(date +%s.%N)
a_skip1=$(skipped "$a_port") b_skip1=$(skipped "$b_port")

echo "writing ${RATE_MB} MB/s for ${WRITE}s"
# 1,000 lines of 200 bytes (1 % ERROR, 0.1 % FATAL) every 10 ms at 20 MB/s, on an absolute
# schedule (a late write catches up); prints lines, errors, fatal and the rate achieved.
python3 - "$work/logs/app.log" "$RATE_MB" "$WRITE" >"$work/writer.out" <<'EOF' &
import os, sys, time
path, rate_mb, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
per_block = 1000
lines = []
for i in range(per_block):
    if i % 100 == 7:
        body = f"level=error msg=\"ERROR request failed\" id={i}"
    elif i == 500:
        body = f"level=fatal msg=\"FATAL cannot continue\" id={i}"
    else:
        body = f"level=info msg=\"request served\" path=/api/v1/items/{i} status=200 id={i}"
    line = f"2026-12-06T12:00:00.{i:03d}Z host=web-1 {body} "
    lines.append(line.ljust(199, "x")[:199] + "\n")
block = "".join(lines).encode()
every = len(block) / (rate_mb * 1e6)
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
start = time.monotonic()
n = 0
while time.monotonic() - start < secs:
    due = start + n * every
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    os.write(fd, block)
    n += 1
took = time.monotonic() - start
print(n * per_block, n * 10, n, n * len(block) / took / 1e6)
EOF
writer=$!
t_w0=$(date +%s.%N)
sample "$WRITE" "$work/rss.write"
wait "$writer"
writer=""
t_w1=$(date +%s.%N)
a_skip2=$(skipped "$a_port") b_skip2=$(skipped "$b_port")
read -r w_lines w_errors w_fatal w_rate <"$work/writer.out"

# No line lost: the counters reach what was written (bounded wait; the head shows the stored
# counters, updated each second).
same() { python3 -c "import sys; sys.exit(0 if float('$1') == float('$2') else 1)"; }
caught=""
for _ in $(seq 1 $((CATCH_UP * 2))); do
  if same "$(q "$a_port" 'log_lines_total{log="follow"}')" "$w_lines"; then
    caught=$(python3 -c "print(f'{$(date +%s.%N) - $t_w1:.1f}')")
    break
  fi
  sleep 0.5
done
p_lines=$(q "$a_port" 'log_lines_total{log="follow"}')
p_errors=$(q "$a_port" 'log_matches_total{log="follow",match="errors"}')
p_fatal=$(q "$a_port" 'log_matches_total{log="follow",match="fatal"}')
echo "after ${AFTER}s"
sample "$AFTER" "$work/rss.after"

# Every probe run in each window, from each daemon's head.
probe_stats() { # $1 port, $2 window start, $3 window end: "p50 p99 max runs"
  local len
  len=$(python3 -c "print(int($3 - $2))")
  curl -s "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=probe_duration_seconds[${len}s]" \
    --data-urlencode "time=$3" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
d = [float(v[1]) for s in r for v in s["values"]]
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
print(f"{q(d, .5) * 1e3:.2f} {q(d, .99) * 1e3:.2f} {max(d) * 1e3:.2f} {len(d)}")'
}
read -r a_b50 a_b99 a_bmax a_bn < <(probe_stats "$a_port" "$t_b0" "$t_b1")
read -r a_w50 a_w99 a_wmax a_wn < <(probe_stats "$a_port" "$t_w0" "$t_w1")
read -r b_b50 b_b99 b_bmax b_bn < <(probe_stats "$b_port" "$t_b0" "$t_b1")
read -r b_w50 b_w99 b_wmax b_wn < <(probe_stats "$b_port" "$t_w0" "$t_w1")

rss() { # $1 file, $2 column (2 = a, 3 = b), $3 mean|max: MiB
  awk -v c="$2" -v f="$3" '{s += $c; n++; if ($c > m) m = $c} END {printf "%.1f", (f == "max" ? m : s / n) / 1024}' "$1"
}
a_before=$(rss "$work/rss.baseline" 2 mean)
a_during=$(rss "$work/rss.write" 2 max)
a_during_mean=$(rss "$work/rss.write" 2 mean)
b_during_mean=$(rss "$work/rss.write" 3 mean)
a_after=$(rss "$work/rss.after" 2 mean)
b_before=$(rss "$work/rss.baseline" 3 mean)
b_during=$(rss "$work/rss.write" 3 max)
b_after=$(rss "$work/rss.after" 3 mean)
behind_max=$(awk '{if ($4 > m) m = $4} END {printf "%.1f", m / 1e6}' "$work/rss.write")
growth=$(python3 -c "print(f'{$a_during - $a_before:.1f}')")

echo
printf 'writer: %s lines (%s ERROR, %s FATAL) at %.2f MB/s for %ss\n' "$w_lines" "$w_errors" "$w_fatal" "$w_rate" "$WRITE"
printf 'counted: %s lines, %s errors, %s fatal; caught up %ss after the writer stopped; max bytes behind at a poll end %s MB\n' \
  "$p_lines" "$p_errors" "$p_fatal" "${caught:-never}" "$behind_max"
printf '%-24s %10s %11s %10s %10s\n' "RSS MiB" before "during mean" "during max" after
printf '%-24s %10s %11s %10s %10s   growth %s MiB\n' "with the log source" "$a_before" "$a_during_mean" "$a_during" "$a_after" "$growth"
printf '%-24s %10s %11s %10s %10s\n' "without" "$b_before" "$b_during_mean" "$b_during" "$b_after"
printf '%-40s %8s %8s %8s %6s %8s\n' "probe duration ms" p50 p99 max runs skipped
printf '%-40s %8s %8s %8s %6s %8s\n' "with the log source, baseline minute" "$a_b50" "$a_b99" "$a_bmax" "$a_bn" $((a_skip1 - a_skip0))
printf '%-40s %8s %8s %8s %6s %8s\n' "with the log source, writer's minute" "$a_w50" "$a_w99" "$a_wmax" "$a_wn" $((a_skip2 - a_skip1))
printf '%-40s %8s %8s %8s %6s %8s\n' "without, baseline minute" "$b_b50" "$b_b99" "$b_bmax" "$b_bn" $((b_skip1 - b_skip0))
printf '%-40s %8s %8s %8s %6s %8s\n' "without, writer's minute" "$b_w50" "$b_w99" "$b_wmax" "$b_wn" $((b_skip2 - b_skip1))

ok=1
if same "$p_lines" "$w_lines" && same "$p_errors" "$w_errors" && same "$p_fatal" "$w_fatal"; then
  echo "no line lost: yes"
else
  echo "no line lost: NO" >&2
  ok=0
fi
if python3 -c "import sys; sys.exit(0 if $growth <= 10 else 1)"; then
  echo "RSS growth within 10 MiB: yes ($growth)"
else
  echo "RSS growth within 10 MiB: NO ($growth)" >&2
  ok=0
fi
[ "$ok" = 1 ]
