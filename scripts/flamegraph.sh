#!/usr/bin/env bash
# Draws a flamegraph of any command: `perf record -e cpu-clock` (this machine
# has no hardware counters) with DWARF call graphs, folded by
# inferno-collapse-perf and drawn by inferno-flamegraph.
#
# Usage: scripts/flamegraph.sh OUT.svg COMMAND [ARGS...]
#   scripts/flamegraph.sh docs/flamegraphs/bench-null.svg target/release/ringsieve bench --packets 2M
#   scripts/flamegraph.sh read.svg target/release/ringsieve read big.pcapng --eve /dev/null
#   scripts/flamegraph.sh sieve.svg target/release/deps/sieve-HASH --bench sieve/threads/1 --profile-time 20
# Settings: FREQ (samples per second, default 499), CALL_GRAPH (default
# dwarf,16384; `fp` is cheaper but our release builds keep no frame
# pointers). perf and inferno are installed if missing (apt-get, cargo).
# The raw perf.data and folded stacks stay in bench-out/flamegraph/.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
out=$1
shift
cd "$(dirname "$0")/.."
if ! command -v perf >/dev/null; then
    apt-get install -y -qq linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
    cargo install --quiet inferno
fi
work=bench-out/flamegraph
mkdir -p "$work"
name=$(basename "$out" .svg)
perf record -q -e cpu-clock -F "${FREQ:-499}" --call-graph "${CALL_GRAPH:-dwarf,16384}" \
    -o "$work/$name.perf.data" -- "$@"
perf script -i "$work/$name.perf.data" 2>/dev/null | inferno-collapse-perf >"$work/$name.folded"
mkdir -p "$(dirname "$out")"
inferno-flamegraph --title "$name: $*" <"$work/$name.folded" >"$out"
echo "flamegraph: $out ($(wc -l <"$work/$name.folded") distinct stacks)" >&2
