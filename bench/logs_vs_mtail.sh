#!/usr/bin/env bash
# Counting a log: postflight against Debian's mtail, in one run, on the same generated file.
#
#   bench/logs_vs_mtail.sh [SIZE_MIB]          # default 1024 (1 GiB of 200-byte lines)
#   SKIP_BUILD=1 BIN=target/release/postflight bench/logs_vs_mtail.sh 1024
#
# The file has 200-byte lines, a mix of matching and non-matching ones, and three patterns are
# counted: ERROR and FATAL as words, and "timeout after N ms". mtail reads it in its one-shot
# mode (compile, read from the start to EOF, print the counters, exit); postflight follows it
# with `start_at = "beginning"` until `log_lines_total` reaches the file's line count. Each
# side's CPU seconds (user + system, from /proc or time) are divided by the GiB read, and the
# totals of both are compared: the run fails if they differ.
set -euo pipefail

size_mib=${1:-1024}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bin=${BIN:-$root/target/release/postflight}
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$root" && cargo build --release --bin postflight >/dev/null)
fi
command -v mtail >/dev/null || { echo "mtail is not installed (apt-get install mtail)" >&2; exit 1; }

# The log: a block of 10,000 distinct 200-byte lines, repeated. 3 % ERROR, 0.5 % FATAL,
# 2 % timeouts, the rest ordinary lines.
mkdir -p "$work/logs" "$work/progs"
python3 - "$work/logs/app.log" "$size_mib" <<'EOF'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
lines = []
for i in range(10_000):
    if i % 100 < 3:
        body = f"level=error msg=\"ERROR request failed\" id={i}"
    elif i % 200 == 50:
        body = f"level=fatal msg=\"FATAL cannot continue\" id={i}"
    elif i % 100 in (10, 60):
        body = f"level=warn msg=\"upstream timeout after {i % 900 + 100}ms\" id={i}"
    else:
        body = f"level=info msg=\"request served\" path=/api/v1/items/{i} status=200 id={i}"
    line = f"2026-12-06T12:00:00.{i % 1000:03d}Z host=web-1 {body} "
    lines.append(line.ljust(199, "x")[:199] + "\n")
block = "".join(lines).encode()
target = mib << 20
with open(path, "wb") as f:
    written = 0
    while written + len(block) <= target:
        f.write(block)
        written += len(block)
print(written, file=sys.stderr)
EOF
file="$work/logs/app.log"
bytes=$(stat -c %s "$file")
nlines=$((bytes / 200))
gib=$(python3 -c "print($bytes / (1 << 30))")
cat "$file" > /dev/null   # both read it from the page cache

cat > "$work/progs/app.mtail" <<'EOF'
counter log_lines_total
counter log_matches_total by match
/$/ {
  log_lines_total++
}
/\bERROR\b/ {
  log_matches_total["errors"]++
}
/\bFATAL\b/ {
  log_matches_total["fatal"]++
}
/timeout after [0-9]+ms/ {
  log_matches_total["timeouts"]++
}
EOF

# --- mtail -------------------------------------------------------------------------------
/usr/bin/time -f "%U %S" -o "$work/mtail.time" \
  mtail --one_shot --one_shot_format=prometheus --progs "$work/progs" --logs "$file" \
  --logtostderr >"$work/mtail.out" 2>"$work/mtail.err"
mtail_cpu=$(awk '{print $1 + $2}' "$work/mtail.time")
mval() { grep -E "^$1" "$work/mtail.out" | awk '{print $NF}' | head -1; }
m_lines=$(mval 'log_lines_total[{ ]')
m_err=$(mval 'log_matches_total\{.*match="errors"')
m_fatal=$(mval 'log_matches_total\{.*match="fatal"')
m_to=$(mval 'log_matches_total\{.*match="timeouts"')

# --- postflight --------------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/postflight.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
[storage]
path = "$work/db"
[[log]]
name = "app"
path = "$work/logs/*.log"
start_at = "beginning"
[[log.match]]
name = "errors"
regex = '\bERROR\b'
[[log.match]]
name = "fatal"
regex = '\bFATAL\b'
[[log.match]]
name = "timeouts"
regex = 'timeout after [0-9]+ms'
EOF
# The clock and the CPU count from the launch: the source starts reading before /readyz answers,
# so the daemon's start-up is counted too.
start=$(date +%s.%N)
"$bin" run -c "$work/postflight.toml" 2>"$work/postflight.log" &
daemon=$!
q() {
  curl -s "http://127.0.0.1:$port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else -1)'
}
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$daemon/stat"; }
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
start_cpu=0
while [ "$(q 'log_lines_total')" != "$nlines" ]; do
  sleep 0.2
  if ! kill -0 "$daemon" 2>/dev/null; then echo "postflight exited" >&2; cat "$work/postflight.log" >&2; exit 1; fi
done
pf_cpu=$(python3 -c "print($(cpu) - $start_cpu)")
pf_wall=$(python3 -c "import time; print(time.time() - $start)")
p_lines=$(q 'log_lines_total')
p_err=$(q 'log_matches_total{match="errors"}')
p_fatal=$(q 'log_matches_total{match="fatal"}')
p_to=$(q 'log_matches_total{match="timeouts"}')
rss=$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$daemon/status")

printf 'file: %s bytes, %s lines (%.3f GiB)\n' "$bytes" "$nlines" "$gib"
printf '%-10s %10s %10s %10s %10s %14s\n' "" lines errors fatal timeouts "CPU-s/GiB"
printf '%-10s %10s %10s %10s %10s %14.2f\n' mtail "$m_lines" "$m_err" "$m_fatal" "$m_to" \
  "$(python3 -c "print($mtail_cpu / $gib)")"
printf '%-10s %10s %10s %10s %10s %14.2f\n' postflight "$p_lines" "$p_err" "$p_fatal" "$p_to" \
  "$(python3 -c "print($pf_cpu / $gib)")"
printf 'postflight: %.1f s wall, peak RSS %.1f MiB; ratio postflight/mtail CPU = %.2f\n' \
  "$pf_wall" "$rss" "$(python3 -c "print($pf_cpu / $mtail_cpu)")"
same() { python3 -c "import sys; sys.exit(0 if float('$1') == float('$2') else 1)"; }
if same "$m_lines" "$p_lines" && same "$m_err" "$p_err" && same "$m_fatal" "$p_fatal" && same "$m_to" "$p_to"; then
  echo "totals: identical"
else
  echo "totals: DIFFER" >&2
  exit 1
fi
