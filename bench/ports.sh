# Sourced by the benchmarks: free_block N prints the first of N consecutive loopback ports,
# somewhere in 20000-59999, that no socket uses now.
free_block() {
    local n=$1 base used
    used=$(ss -Htan | awk '{print $4}' | sed 's/.*://' | sort -u)
    for _ in $(seq 1 50); do
        base=$((20000 + RANDOM % 40000))
        if ! echo "$used" | awk -v lo="$base" -v hi="$((base + n))" '$1 >= lo && $1 < hi {f=1} END {exit !f}'; then
            echo "$base"
            return
        fi
    done
    echo "no free block of $n ports" >&2
    return 1
}
