#!/bin/sh
# Instructions per sample / per context for each phase of the metrics bench: runs the bench
# binary under callgrind (2 runs: the first creates the contexts, the second is steady state)
# and prints the inclusive instruction count of each `phase_*` function.
# Usage: bench/metrics/callgrind.sh [BENCH_BINARY] [CONTEXTS]
set -eu
bin=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/metrics-* | grep -v '\.d$' | head -1)}
contexts=${2:-10000}
out=$(mktemp /tmp/metrics-callgrind.XXXXXX)
CAIRN_BENCH_RUNS=2 CAIRN_BENCH_CONTEXTS=$contexts \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
# Function summary lines only ("<file>:metrics::phase_x [<binary>]"), not inlined fragments.
callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
    grep -E 'metrics\.rs:metrics::phase_[a-z_]+ \[' |
    awk -v n="$contexts" '{
        gsub(",", "", $1); ir = $1; name = $0
        sub(/.*metrics::/, "", name); sub(/ .*/, "", name)
        # Two runs: the first calls phase_add_first, the second phase_add; the rest run twice.
        runs = (name ~ /^phase_add/) ? 1 : 2
        if (name ~ /^phase_(floor|add)/) printf "%-22s %10.1f instructions per sample\n", name, ir / runs / 1000000
        else printf "%-22s %10.1f instructions per context\n", name, ir / runs / n
    }' | sort
rm -f "$out"
