#!/usr/bin/env bash
# The pipeline's benchmark figures (issue 4), each in one run against its
# baseline:
#
# 1. `ringsieve bench` (synthetic Docker-host traffic in memory through the
#    real dedup stage, fan-out, queues and workers; see src/bench.rs), as
#    fast as it goes: 64-byte frames, dedup off and on, null worker and flow
#    tracker, 1 and 2 workers. Copies and packets per second, ns per copy.
# 2. Latency at half load: the same, paced at half the copies per second the
#    unpaced run reached (dedup off and on), with the workers' latency from
#    kernel timestamp to receipt (p50, p99, p99.9, max). The target is p99 at
#    most the block retire timeout (8 ms) + 1 ms.
# 3. `ringsieve read FILE --eve OUT` against `tcpdump -r FILE -w /dev/null`
#    on a large multi-interface capture (`ringsieve-docker-mix`), both from
#    the page cache, median of REPEATS: the target is within 3 times.
#
# With two CPUs or more, the runs with one worker pin the capture thread to
# CPU 0 and the worker to CPU 1 (PIN=0: neither pinned). Unpinned, the two
# threads sometimes share a CPU and a run takes twice as long (2026-11-28:
# 6 of 8 unpinned runs of `bench --dedup false` at about 220 ns per copy,
# 8 of 8 pinned ones at 106 to 126).
#
# Prints Markdown on stdout; JSON lines go to bench-out/pipeline/.
# Usage: scripts/bench-pipeline.sh
#   PACKETS=2M FLOWS=100K REPEATS=3 READ_PACKETS=700000 scripts/bench-pipeline.sh
set -euo pipefail

cd "$(dirname "$0")/.."
for tool in jq tcpdump; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install jq tcpdump)" >&2; exit 1; }
done
packets=${PACKETS:-2M}
flows=${FLOWS:-100K}
repeats=${REPEATS:-3}
read_packets=${READ_PACKETS:-700000}
pin=${PIN:-1}
out=bench-out/pipeline
mkdir -p "$out"
cargo build --release -p ringsieve -p testbed --bin ringsieve --bin ringsieve-docker-mix >&2
ringsieve=target/release/ringsieve

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# pinning WORKERS: the bench options that pin the capture thread and a
# single worker to CPUs of their own, when PIN allows and there are two.
pinning() {
    if [[ "$pin" == 1 && "$(nproc)" -ge 2 && "$1" == 1 ]]; then
        echo "--capture-cpus 0 --worker-cpus 1"
    fi
}

# bench NAME ARGS...: REPEATS runs, each JSON line kept; prints the line of
# the median copies per second.
bench() {
    local name=$1
    shift
    : >"$out/$name.jsonl"
    for _ in $(seq "$repeats"); do
        "$ringsieve" bench --packets "$packets" --flows "$flows" "$@" >>"$out/$name.jsonl"
    done
    local mid
    mid=$(jq -r '.copies_per_second' "$out/$name.jsonl" | median)
    jq -c --argjson mid "$mid" 'select(.copies_per_second == $mid)' "$out/$name.jsonl" | head -1
}

echo "## ringsieve bench ($(date -u +%FT%TZ), $(git rev-parse --short HEAD), packets $packets, flows $flows, median of $repeats)"
echo
echo "| run | copies/s | packets/s | ns per copy | ns per packet |"
echo "|---|---:|---:|---:|---:|"
declare -A max
for dedup in false true; do
    for worker in null flows; do
        for workers in 1 2; do
            name="dedup-$dedup-$worker-$workers"
            # shellcheck disable=SC2046 # the options are words
            line=$(bench "$name" --dedup "$dedup" --worker "$worker" --workers "$workers" $(pinning "$workers"))
            max[$name]=$(jq -r '.copies_per_second' <<<"$line")
            jq -r --arg n "$name" '"| \($n) | \(.copies_per_second | floor) | \(.packets_per_second | floor) | \(.ns_per_copy * 10 | floor / 10) | \(.ns_per_packet * 10 | floor / 10) |"' <<<"$line"
        done
    done
done
echo
echo "## Latency at half load (null worker, 1 worker)"
echo
echo "| run | paced copies/s | p50 µs | p99 µs | p99.9 µs | max µs | queue drops |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for dedup in false true; do
    half=$(awk -v m="${max[dedup-$dedup-null-1]}" 'BEGIN { printf "%d", m / 2 }')
    # shellcheck disable=SC2046 # the options are words
    line=$(bench "half-load-dedup-$dedup" --dedup "$dedup" --rate "$half" $(pinning 1))
    jq -r --arg n "dedup $dedup" '"| \($n) | \(.paced_copies_per_second) | \(.latency.p50_us) | \(.latency.p99_us) | \(.latency.p99_9_us) | \(.latency.max_us) | \(.queue_drops) |"' <<<"$line"
done

echo
work=${WORK:-/tmp/ringsieve-bench-pipeline}
mkdir -p "$work"
input="$work/mix.pcapng"
trap 'rm -f "$input" "$work"/eve.json' EXIT
target/release/ringsieve-docker-mix --packets "$read_packets" --flows 100000 -w "$input" >/dev/null
cat "$input" >/dev/null
TIMEFORMAT='%R'
tcpdump_times=()
read_times=()
for _ in $(seq "$repeats"); do
    t=$({ time tcpdump -r "$input" -w /dev/null 2>/dev/null; } 2>&1)
    tcpdump_times+=("$t")
    rm -f "$work/eve.json"
    t=$({ time "$ringsieve" read "$input" --eve "$work/eve.json" 2>"$work/read.err"; } 2>&1)
    read_times+=("$t")
done
tcpdump_median=$(printf '%s\n' "${tcpdump_times[@]}" | median)
read_median=$(printf '%s\n' "${read_times[@]}" | median)
records=$(wc -l <"$work/eve.json")
tail -1 "$work/read.err" >"$out/read-eve-summary.json"
echo "## ringsieve read --eve against tcpdump -r (median of $repeats, $read_packets packets, $(stat -c %s "$input") bytes)"
echo
echo "| command | wall s |"
echo "|---|---:|"
echo "| tcpdump -r FILE -w /dev/null | $tcpdump_median |"
echo "| ringsieve read FILE --eve OUT ($records EVE records) | $read_median |"
echo
awk -v r="$read_median" -v t="$tcpdump_median" 'BEGIN { printf "read --eve / tcpdump -r: %.2f (target at most 3)\n", r / t }'
