#!/usr/bin/env bash
# The signature engine's benchmark (issue 6), in one run against its
# baselines:
#
# 1. Rule files of 0, 1 000 and 10 000 Suricata content rules
#    (`ringsieve-bench-rules N`, from crates/testbed/src/http_payload.rs:
#    one rule per token, of four forms: a request path, a POST with a
#    second content at distance/within, a crawler User-Agent with nocase,
#    a response header; with N rules, N/10000 of the 1 message in 20 that
#    carries a token alerts).
# 2. `ringsieve bench --payload http` (synthetic Docker-host traffic whose
#    flows are HTTP/1.1 conversations, through the real dedup, fan-out,
#    queues and ONE worker thread: `--workers 1`, per core) with the null
#    worker, the flow tracker (`flows`) and the flow tracker with the
#    signature engine (`ids`) at each rule count, interleaved, REPEATS
#    times, for each frame size in SIZES. The capture thread and the worker
#    are two threads on their own cores (2 on the machine of BENCHMARKS.md,
#    shared with whatever else runs). Printed per configuration (medians):
#    pipeline packets/s and Gbit/s, ns per packet, the ratio of its ns per
#    packet to the null worker's and the flow tracker's, the worker
#    thread's CPU time inside its batches per packet
#    (CLOCK_THREAD_CPUTIME_ID: what one core of workers costs, even when
#    the capture thread is the slower one, and which other processes on a
#    busy machine inflate less than wall time) and the packets and Gbit/s
#    one worker core would then take, alerts, streams, and the stream
#    memory peak in all and per flow.
# 3. With CALLGRIND=1 (default), instructions per delivered packet in the
#    worker (inclusive cost of the flow tracker's batch, the signature
#    inspector's inspect, packet and stream matching, reassembly) under
#    valgrind --tool=callgrind for flows, ids@1000 and ids@10000 on
#    CALLGRIND_PACKETS packets: the stable cost split the noisy wall clock
#    cannot give.
#
# Prints Markdown on stdout; JSON lines and rule files go to bench-out/ids/.
# Usage: scripts/bench-ids.sh
#   PACKETS=200K FLOWS=10000 SIZES="1514 imix" REPEATS=3 CALLGRIND=1 CALLGRIND_PACKETS=20000 scripts/bench-ids.sh
set -euo pipefail

cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "jq is not installed (apt-get install jq)" >&2; exit 1; }
packets=${PACKETS:-200K}
flows=${FLOWS:-10000}
sizes=${SIZES:-1514 imix}
repeats=${REPEATS:-3}
rule_counts=${RULE_COUNTS:-0 1000 10000}
callgrind=${CALLGRIND:-1}
callgrind_packets=${CALLGRIND_PACKETS:-20000}
out=bench-out/ids
mkdir -p "$out"
cargo build --release -p ringsieve -p testbed --bin ringsieve --bin ringsieve-bench-rules >&2
ringsieve=target/release/ringsieve

for n in $rule_counts; do
    target/release/ringsieve-bench-rules "$n" >"$out/rules-$n.rules"
done

configs="null flows"
for n in $rule_counts; do configs="$configs ids-$n"; done

# args CONFIG: the worker options of a configuration.
args() {
    case $1 in
        null | flows) echo "--worker $1" ;;
        ids-*) echo "--worker ids --rules $out/rules-${1#ids-}.rules" ;;
    esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
load() { cut -d' ' -f1 /proc/loadavg; }

started=$(date -u +%FT%TZ)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench-out' || echo "+changes")
for size in $sizes; do
    for config in $configs; do : >"$out/$size-$config.jsonl"; done
done
# Interleaved: every configuration once per repeat, so the machine's noise
# falls on all of them alike.
for repeat in $(seq "$repeats"); do
    for size in $sizes; do
        for config in $configs; do
            before=$(load)
            # shellcheck disable=SC2046 # the options are words
            line=$("$ringsieve" bench --payload http --workers 1 --packets "$packets" --flows "$flows" \
                --frame-size "$size" $(args "$config"))
            echo "$line" | jq -c --arg load "$before-$(load)" --argjson repeat "$repeat" \
                '. + {load: $load, repeat: $repeat}' >>"$out/$size-$config.jsonl"
            echo "repeat $repeat size $size $config: $(echo "$line" | jq -r '.packets_per_second | floor') packets/s" >&2
        done
    done
done
finished=$(date -u +%FT%TZ)

# mid SIZE CONFIG FIELD: the median of FIELD over the repeats.
mid() { jq -r "$3" "$out/$1-$2.jsonl" | median; }

echo "## ringsieve bench --payload http --workers 1 ($started to $finished, $commit, packets $packets, flows $flows, median of $repeats)"
echo
echo "1-minute load average before-after each run: $(jq -r .load "$out"/*.jsonl | tr '\n' ' ')"
for size in $sizes; do
    echo
    echo "### frame size $size"
    echo
    echo "| worker | rules | packets/s | Gbit/s | ns/packet | x null | x flows | worker CPU ns/packet | worker packets/s per core | worker Gbit/s per core | alerts | streams | stream memory peak | per flow |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    null_ns=$(mid "$size" null .ns_per_packet)
    flows_ns=$(mid "$size" flows .ns_per_packet)
    for config in $configs; do
        ns=$(mid "$size" "$config" .ns_per_packet)
        pps=$(mid "$size" "$config" .packets_per_second)
        bps=$(mid "$size" "$config" .bits_per_second)
        wns=$(mid "$size" "$config" .worker_cpu_ns_per_packet)
        bytes=$(jq -r '.delivered_bytes / .delivered' "$out/$size-$config.jsonl" | head -1)
        alerts=$(mid "$size" "$config" '.detection.alerts // "-"')
        streams=$(mid "$size" "$config" '.detection.streams // "-"')
        peak=$(mid "$size" "$config" '.detection.stream_memory.peak // "-"')
        rules=${config#ids-}
        [[ $config == ids-* ]] || rules="-"
        awk -v c="${config%%-*}" -v r="$rules" -v pps="$pps" -v bps="$bps" -v ns="$ns" -v nn="$null_ns" \
            -v fn="$flows_ns" -v wns="$wns" -v b="$bytes" -v a="$alerts" -v s="$streams" -v p="$peak" -v f="$flows" \
            'BEGIN {
                per = (p == "-") ? "-" : sprintf("%.0f B", p / f)
                printf "| %s | %s | %.0f | %.3f | %.0f | %.2f | %.2f | %.0f | %.0f | %.3f | %s | %s | %s | %s |\n",
                    c, r, pps, bps / 1e9, ns, ns / nn, ns / fn, wns, 1e9 / wns, 1e9 / wns * b * 8 / 1e9, a, s, p, per
            }'
    done
done

if [[ $callgrind == 1 ]] && command -v valgrind >/dev/null; then
    echo
    echo "### Instructions per delivered packet in the worker (callgrind, $callgrind_packets packets, flows $flows, frame size ${sizes%% *})"
    echo
    echo "| worker | rules | delivered | FlowTracker batch | inspect | match_packet | match_stream | of both: prefilter | reassembly insert |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for config in flows ids-1000 ids-10000; do
        file="$out/callgrind-$config.out"
        # shellcheck disable=SC2046
        line=$(valgrind --tool=callgrind --callgrind-out-file="$file" "$ringsieve" bench --payload http \
            --workers 1 --packets "$callgrind_packets" --flows "$flows" --frame-size "${sizes%% *}" \
            $(args "$config") 2>/dev/null)
        delivered=$(echo "$line" | jq -r .delivered)
        annotated=$(callgrind_annotate --inclusive=yes --threshold=100 "$file" 2>/dev/null)
        # cost FUNCTION-PATTERN: the largest inclusive count of a matching
        # function, per delivered packet ("-" when inlined away).
        cost() {
            echo "$annotated" | grep -E "$1" | awk -v d="$delivered" '
                { gsub(",", "", $1); if ($1 + 0 > m) m = $1 + 0 }
                END { if (m > 0) printf "%.0f", m / d; else printf "-" }'
        }
        rules=${config#ids-}
        [[ $config == ids-* ]] || rules="-"
        echo "| ${config%%-*} | $rules | $delivered | $(cost 'FlowTracker.*as pipeline::worker::Worker>::batch') | $(cost 'SignatureInspector as eve::.*inspect') | $(cost 'RuleSet::match_packet') | $(cost 'RuleSet::match_stream') | $(cost 'RuleSet::prefilter') | $(cost 'StreamReassembler::insert') |"
    done
fi
