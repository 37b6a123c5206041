#!/usr/bin/env bash
# The import benchmark: one OpenMetrics history file of SAMPLES samples over DAYS days
# (bench/gen_openmetrics.py: counters, gauges, a histogram, 60 s step) imported by
# `postflight import openmetrics` into an empty store and by `promtool tsdb create-blocks-from
# openmetrics` into an empty directory, one after the other on the same file. Prints each
# tool's wall time, CPU time and peak RSS (GNU time), and the size of what each wrote.
#
#   bench/import.sh [SAMPLES [DAYS]]     (defaults: 10000000 and 2)
#
# Environment: FILE=path reuses (or writes) the history file there instead of a temp one,
# BIN=path/to/postflight (default target/release/postflight, built when missing
# unless SKIP_BUILD=1), KEEP=1 keeps the temp dir. The file is read once before the runs so
# that both read it from the page cache.
set -euo pipefail

SAMPLES=${1:-10000000}
DAYS=${2:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/postflight}
if [ ! -x "$BIN" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --bin postflight)
fi

TMP=$(mktemp -d /tmp/postflight-import.XXXXXX)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

FILE=${FILE:-$TMP/history.om}
[ -s "$FILE" ] || python3 "$ROOT/bench/gen_openmetrics.py" "$SAMPLES" "$DAYS" > "$FILE"
echo "file: $(wc -l < "$FILE") lines, $(du -m "$FILE" | cut -f1) MiB"
cat "$FILE" > /dev/null
printf '[storage]\npath = "%s/store"\nretention = "30d"\n' "$TMP" > "$TMP/postflight.toml"

run() {
    local name=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$TMP/$name.time" "$@" > "$TMP/$name.out" 2>&1 || {
        cat "$TMP/$name.out" >&2
        exit 1
    }
    read -r wall user sys rss < "$TMP/$name.time"
    printf '%-10s wall %7.2f s  cpu %7.2f s  peak RSS %6.1f MiB\n' "$name" "$wall" \
        "$(echo "$user + $sys" | bc)" "$(echo "scale=1; $rss / 1024" | bc)"
}

run postflight "$BIN" import openmetrics "$FILE" -c "$TMP/postflight.toml"
tail -1 "$TMP/postflight.out"
run promtool promtool tsdb create-blocks-from openmetrics -q "$FILE" "$TMP/tsdb"
echo "written: postflight $(du -sm "$TMP/store" | cut -f1) MiB, promtool $(du -sm "$TMP/tsdb" | cut -f1) MiB"
