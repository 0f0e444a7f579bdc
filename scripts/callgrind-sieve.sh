#!/usr/bin/env bash
# Instructions per captured copy of the dedup, counted by callgrind: parse,
# parse + identity and the whole engine (Sieve::process, watermark and
# releases), beside a plain memcpy of the same frames. Numbers that do not
# move with the noise of a shared machine, next to the wall-clock times of
# `cargo bench -p flow --bench sieve`.
#
# Builds the sieve bench binary (crates/flow/benches/sieve.rs) and runs it
# twice under `valgrind --tool=callgrind`, collecting only inside its
# counted_*_pass functions (one pass over the Docker-host mix each: 1 M
# flows, 1 M packets, 2.6 M copies by default), except in
# uncounted_fill_ring, the copy of each block into the ring that stands for
# the kernel's writing it:
#   1. RINGSIEVE_BENCH_ONCE=memcpy,parse,identity  (cheap)
#   2. RINGSIEVE_BENCH_ONCE=sieve: the uncounted warm-up to the steady state
#      first (5 passes), then one counted pass. Slow under valgrind: about
#      40 us per copy, so 10 to 20 minutes at 1 M flows.
# Prints a Markdown table of instructions per copy, then the split of the
# sieve pass by function (inclusive, per copy, so nested rows overlap:
# offer_half is inside learn_nat; a function the compiler inlined everywhere,
# like Sieve::process, hold and release, has no row). Raw files go to
# bench-out/callgrind/.
#
# Usage: scripts/callgrind-sieve.sh
#        RINGSIEVE_BENCH_FLOWS=1000 scripts/callgrind-sieve.sh   (other flow count, same 1 M-packet pass)
#        RINGSIEVE_BENCH_FLOWS=100000 RINGSIEVE_BENCH_PACKETS=200000 scripts/callgrind-sieve.sh   (a shorter pass, minutes instead of tens)
#        SIEVE_BIN=/tmp/sieve-before OUT=bench-out/callgrind-before scripts/callgrind-sieve.sh
#          (a bench binary built and copied earlier, e.g. of another commit, so
#          that a rebuild meanwhile does not replace it under valgrind; raw
#          files to another folder)
set -euo pipefail

cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v callgrind_annotate >/dev/null || { echo "callgrind_annotate is missing (it comes with valgrind)" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is not installed (apt-get install jq)" >&2; exit 1; }

out=${OUT:-bench-out/callgrind}
mkdir -p "$out"

bin=${SIEVE_BIN:-}
[ -n "$bin" ] || bin=$(cargo bench -p flow --bench sieve --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "sieve" and .executable != null) | .executable' |
    tail -n 1)
[ -x "$bin" ] || { echo "could not build the sieve bench binary" >&2; exit 1; }

# Inclusive instructions of function $2 (full Rust path) in callgrind file $1:
# the sum of the calls into it from other functions (callgrind_annotate's
# caller tree). Summing calls, not reading the function's own line, counts
# the code inlined into it from other files (hashbrown, ahash...), which
# callgrind_annotate lists apart under those files' names.
inclusive() {
    callgrind_annotate --tree=caller --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk -v want="$2" '
            function name(s) {
                sub(/^[^:]*:/, "", s)
                sub(/ \[[^]]*\]$/, "", s); sub(/ \([0-9,]+x\)$/, "", s); sub(/ \[[^]]*\]$/, "", s)
                return s
            }
            /^ *[0-9,]+ \( *[0-9.]+%\)  < / {
                c = $1; gsub(",", "", c); s = $0; sub(/^[^<]*< /, "", s)
                n++; cost[n] = c; caller[n] = name(s); next
            }
            /^ *[0-9,]+ \( *[0-9.]+%\)  \* / {
                s = $0; sub(/^[^*]*\*  /, "", s)
                if (name(s) == want) for (i = 1; i <= n; i++) if (caller[i] != want) total += cost[i]
                n = 0; next
            }
            { n = 0 }
            END { if (total > 0) printf "%.0f\n", total }'
}

per_copy() { awk -v i="$1" -v c="$2" 'BEGIN { if (i == "") print "-"; else printf "%.1f", i / c }'; }

run() { # name, ONCE setting
    local file="$out/callgrind.sieve-$1.out"
    RINGSIEVE_BENCH_ONCE="$2" valgrind --tool=callgrind --callgrind-out-file="$file" \
        --toggle-collect='*counted_*_pass*' --toggle-collect='*uncounted_fill_ring*' \
        "$bin" 2>"$out/valgrind-sieve-$1.log"
}

started=$(date -u +%FT%TZ)
light=$(run light memcpy,parse,identity)
full=$(run sieve sieve)
copies=$(jq -r .copies <<<"$light")
[ "$copies" = "$(jq -r .copies <<<"$full")" ] || { echo "the two runs generated different passes" >&2; exit 1; }

light_file="$out/callgrind.sieve-light.out"
sieve_file="$out/callgrind.sieve-sieve.out"
memcpy=$(inclusive "$light_file" sieve::counted_memcpy_pass)
parse=$(inclusive "$light_file" sieve::counted_parse_pass)
identity=$(inclusive "$light_file" sieve::counted_identity_pass)
sieve=$(inclusive "$sieve_file" sieve::counted_sieve_pass)
for value in "$memcpy" "$parse" "$identity" "$sieve"; do
    [ -n "$value" ] || { echo "no counts (see $out/valgrind-sieve-*.log)" >&2; exit 1; }
done

echo "Run of $started: $(jq -c 'del(.copies)' <<<"$full") copies per pass: $copies"
echo
echo "| pass | instructions | instructions / copy |"
echo "|---|---:|---:|"
echo "| memcpy of every frame | $memcpy | $(per_copy "$memcpy" "$copies") |"
echo "| parse_frame | $parse | $(per_copy "$parse" "$copies") |"
echo "| parse_frame + identity | $identity | $(per_copy "$identity" "$copies") |"
echo "| Sieve: process + advance + release | $sieve | $(per_copy "$sieve" "$copies") |"
echo
echo "Split of the sieve pass (inclusive instructions per copy):"
echo
echo "| function | instructions / copy | share |"
echo "|---|---:|---:|"
for fn in flow::parse::parse_frame \
    flow::identity::IdentityHasher::identity \
    flow::flow_key::FlowHasher::symmetric \
    flow::dedup_table::DedupTable::observe_flow \
    flow::sieve::learn_nat \
    flow::nat::NatBindings::offer_half \
    flow::nat::NatBindings::complete \
    flow::nat::NatBindings::learn \
    'flow::sieve::Sieve<M>::delivery' \
    flow::nat::NatBindings::lookup \
    flow::sieve::SieveCounters::pair \
    flow::dedup_table::DedupTable::release \
    flow::tcp_ranges::RangeStore::coverage \
    malloc free realloc; do
    value=$(inclusive "$sieve_file" "$fn")
    [ -n "$value" ] || continue
    share=$(awk -v v="$value" -v s="$sieve" 'BEGIN { printf "%.1f %%", 100 * v / s }')
    echo "| \`$fn\` | $(per_copy "$value" "$copies") | $share |"
done
