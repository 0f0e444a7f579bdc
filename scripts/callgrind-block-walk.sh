#!/usr/bin/env bash
# Instructions per packet of the TPACKET_V3 block walk, counted by callgrind:
# a number that does not move with the noise of a shared machine, beside the
# wall-clock times of `cargo bench --bench block_walk`.
#
# Builds the block_walk bench binary, runs it with RINGSIEVE_BENCH_ONCE=<len>
# (a fixed 10 fills and walks of a 4 x 1 MiB synthetic ring, no criterion)
# under `valgrind --tool=callgrind`, collecting only inside `walk_ring` (the
# fills are not counted), and divides the instructions by the packets walked.
# Prints a Markdown table; raw callgrind files go to bench-out/callgrind/.
#
# Usage: scripts/callgrind-block-walk.sh [FRAME_LEN ...]   (default: 64 1514)
set -euo pipefail

cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is not installed (apt-get install jq)" >&2; exit 1; }

frame_lens=("$@")
[ ${#frame_lens[@]} -gt 0 ] || frame_lens=(64 1514)
out=bench-out/callgrind
mkdir -p "$out"

bin=$(cargo bench --bench block_walk --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "block_walk" and .executable != null) | .executable' |
    tail -n 1)
[ -x "$bin" ] || { echo "could not build the block_walk bench binary" >&2; exit 1; }

echo "| frame bytes | packets walked | instructions in walk_ring | instructions / packet |"
echo "|---:|---:|---:|---:|"
for len in "${frame_lens[@]}"; do
    file="$out/callgrind.walk-$len.out"
    summary=$(RINGSIEVE_BENCH_ONCE="$len" valgrind --tool=callgrind --callgrind-out-file="$file" \
        --toggle-collect='*walk_ring*' "$bin" 2>"$out/valgrind-$len.log")
    packets=$(jq -r .packets <<<"$summary")
    instructions=$(awk '/^summary:/ { print $2 }' "$file")
    if [ -z "$instructions" ] || [ "$packets" -le 0 ]; then
        echo "no counts for $len (see $out/valgrind-$len.log)" >&2
        exit 1
    fi
    per_packet=$(awk -v i="$instructions" -v p="$packets" 'BEGIN { printf "%.1f", i / p }')
    echo "| $len | $packets | $instructions | $per_packet |"
done
