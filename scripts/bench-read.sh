#!/usr/bin/env bash
# `ringsieve read` against `editcap -d` on the same large capture of a busy
# Docker host, timed in the same run, with `cat FILE > /dev/null` as the
# baseline of reading the file.
#
# 1. Builds target/release/ringsieve and ringsieve-docker-mix, and writes
#    FILE with `ringsieve-docker-mix` (every copy of every packet on the
#    host's vethc*, docker0 and eth0, NAT rewrites included, directions in
#    epb_flags; its JSON line says how many packets a correct dedup keeps).
# 2. Reads the file once untimed (page cache), then REPEATS times, in this
#    order each time: cat FILE > /dev/null; ringsieve read FILE -w OUT;
#    editcap -d FILE OUT2. Wall and CPU (user + sys) seconds of each, by
#    bash's `time`.
# 3. Counts the packets of the input and of both outputs (capinfos -c) and
#    keeps ringsieve's own counters (the JSON on its last stderr line).
# Prints one JSON line: medians, ratios, counts, every repeat's times. The
# files go to $WORK (default /tmp/ringsieve-bench-read) and are deleted at
# the end unless KEEP=1.
#
# editcap -d removes a frame only when its length and MD5 equal one of the
# previous 4 frames' (its default window): copies NAT rewrote never match,
# and identical copies further apart than 4 frames survive. ringsieve read
# keeps one copy per packet whatever NAT did, within its 20 ms window.
#
# Usage: scripts/bench-read.sh
#   PACKETS=700000 FLOWS=100000 COPIES_PER_SECOND=20000000 REPEATS=5 \
#   READ_ARGS="--dedup-table 2M" KEEP=1 WORK=/tmp/x scripts/bench-read.sh
set -euo pipefail

cd "$(dirname "$0")/.."
for tool in editcap capinfos jq; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install wireshark-common jq)" >&2; exit 1; }
done

packets=${PACKETS:-700000}
flows=${FLOWS:-100000}
rate=${COPIES_PER_SECOND:-20000000}
repeats=${REPEATS:-5}
read_args=${READ_ARGS:-}
work=${WORK:-/tmp/ringsieve-bench-read}
mkdir -p "$work"
input="$work/mix.pcapng"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -f "$input" "$work"/out-*.pcapng "$work"/*.err "$work"/*.time; }
trap cleanup EXIT

cargo build --release -p ringsieve -p testbed --bin ringsieve --bin ringsieve-docker-mix >&2
ringsieve=target/release/ringsieve

generated=$(target/release/ringsieve-docker-mix --packets "$packets" --flows "$flows" \
    --copies-per-second "$rate" -w "$input")

count() { capinfos -c -M "$1" | awk '/Number of packets/ { print $NF }'; }

# Runs "$@" with its stderr in $work/$name.err; its wall, user and sys
# seconds go to $work/$name.time.
timed() {
    local name=$1
    shift
    local TIMEFORMAT='%R %U %S'
    { time "$@" 2>"$work/$name.err"; } 2>"$work/$name.time"
}

cat "$input" >/dev/null
declare -A wall cpu
for _ in $(seq 1 "$repeats"); do
    timed cat sh -c "cat '$input' > /dev/null"
    # shellcheck disable=SC2086 # READ_ARGS is a list of options
    timed ringsieve "$ringsieve" read "$input" -w "$work/out-ringsieve.pcapng" $read_args
    timed editcap editcap -d "$input" "$work/out-editcap.pcapng"
    for name in cat ringsieve editcap; do
        read -r real user sys <"$work/$name.time"
        wall[$name]+="$real "
        cpu[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }') "
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
list() { tr ' ' '\n' <<<"$1" | grep -v '^$' | jq -s -c .; }

# ringsieve's counters, without the (long) per tap pair breakdown.
dedup=$(tail -n 1 "$work/ringsieve.err" | jq -c '.dedup | del(.duplicates_by_tap_pair)')
copies=$(count "$input")
jq -n -c \
    --arg date "$(date -u +%FT%TZ)" \
    --arg load "$(cut -d ' ' -f 1-3 /proc/loadavg)" \
    --argjson generated "$generated" \
    --argjson file_bytes "$(stat -c %s "$input")" \
    --argjson repeats "$repeats" \
    --arg read_args "$read_args" \
    --argjson cat "$(median "${wall[cat]}")" \
    --argjson ringsieve "$(median "${wall[ringsieve]}")" \
    --argjson editcap "$(median "${wall[editcap]}")" \
    --argjson ringsieve_cpu "$(median "${cpu[ringsieve]}")" \
    --argjson editcap_cpu "$(median "${cpu[editcap]}")" \
    --argjson cat_all "$(list "${wall[cat]}")" \
    --argjson ringsieve_all "$(list "${wall[ringsieve]}")" \
    --argjson editcap_all "$(list "${wall[editcap]}")" \
    --argjson copies "$copies" \
    --argjson ringsieve_out "$(count "$work/out-ringsieve.pcapng")" \
    --argjson editcap_out "$(count "$work/out-editcap.pcapng")" \
    --argjson dedup "$dedup" \
    '{
        date: $date, load_average: $load, file_bytes: $file_bytes, copies: $copies,
        packets: $generated.packets, flows: $generated.flows,
        copies_per_second: $generated.copies_per_second, repeats: $repeats, read_args: $read_args,
        median_wall_s: { cat: $cat, ringsieve_read: $ringsieve, editcap_d: $editcap },
        median_cpu_s: { ringsieve_read: $ringsieve_cpu, editcap_d: $editcap_cpu },
        editcap_over_ringsieve_wall: (($editcap / $ringsieve) * 100 | round / 100),
        editcap_over_ringsieve_cpu: (($editcap_cpu / $ringsieve_cpu) * 100 | round / 100),
        ringsieve_copies_per_s: (($copies / $ringsieve) | round),
        editcap_copies_per_s: (($copies / $editcap) | round),
        delivered: { expected: $generated.packets, ringsieve_read: $ringsieve_out, editcap_d: $editcap_out },
        ringsieve_dedup: $dedup,
        wall_s: { cat: $cat_all, ringsieve_read: $ringsieve_all, editcap_d: $editcap_all }
    }'
