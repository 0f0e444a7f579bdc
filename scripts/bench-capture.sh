#!/usr/bin/env bash
# Capture benchmark: ringsieve against tcpdump and netsniff-ng at fixed offered
# rates, on a veth pair between two fresh network namespaces, one capturer at
# a time, in one run, so that the results read as ratios against tcpdump.
#
# For every repeat, rate and capturer: create namespaces <tag>-tx and <tag>-rx
# joined by a veth pair (vtx -- vrx, IPv6 off so nothing but the blast
# crosses it), start the capturer on vrx inside <tag>-rx pinned to CAP_CPU,
# wait until its packet socket is bound to vrx, run ringsieve-blast on vtx
# inside <tag>-tx pinned to TX_CPU for DURATION seconds, let the capturer
# drain, read its CPU time (the scheduler's run time summed over its threads,
# /proc/PID/task/*/sched, ns resolution; utime+stime from /proc/PID/stat kept
# as a 10 ms-resolution cross-check; from just before the blast to just before
# the stop),
# stop it with SIGINT and read its own counters. "delivered" is vrx's
# rx_packets: the frames that reached the interface and so every capturer's
# socket; frames the veth dropped before that show up as veth_drops.
# The kernel's copy into the capture socket runs in the sender's softirq on
# TX_CPU, so the capturer's CPU is its user-space side plus its system calls.
#
# Prints a Markdown table (medians over REPEATS) on stdout; every run is a
# JSON line in bench-out/capture-<time>.jsonl, the table in the matching .md.
# Never touches the root namespace's interfaces; the trap deletes the
# namespaces and stops every process this script started, on every exit path
# (any failing step aborts the whole run: no half-measured rows).
#
# Settings (environment): RATES ("100000 300000 max"), DURATION (5), SIZE (64),
# FLOWS (64), REPEATS (3), CAPTURERS ("tcpdump netsniff-ng ringsieve
# ringsieve-rt1000"; the last is ringsieve with tcpdump's 1 s block timeout;
# ringsieve-dedup is ringsieve with its dedup on, not run by default),
# RING_MIB (64: each capturer's ring/buffer), TX_CPU (0), CAP_CPU (1).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

RATES=${RATES:-"100000 300000 max"}
DURATION=${DURATION:-5}
SIZE=${SIZE:-64}
FLOWS=${FLOWS:-64}
REPEATS=${REPEATS:-3}
CAPTURERS=${CAPTURERS:-"tcpdump netsniff-ng ringsieve ringsieve-rt1000"}
RING_MIB=${RING_MIB:-64}
TX_CPU=${TX_CPU:-0}
CAP_CPU=${CAP_CPU:-1}
DRAIN_SECS=2
READY_TIMEOUT_SECS=30
STOP_TIMEOUT_SECS=20

tag="rsbench-$$"
ns_tx="$tag-tx"
ns_rx="$tag-rx"
capture_pid=""
blast_pid=""

log() { echo "bench-capture: $*" >&2; }

stop_pid() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

delete_namespaces() {
    local ns pid
    for ns in "$ns_tx" "$ns_rx"; do
        ip netns list | grep -qw "^$ns" || continue
        # Only processes this script started can live in its namespaces.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
}

cleanup() {
    stop_pid "$capture_pid"
    stop_pid "$blast_pid"
    capture_pid=""
    blast_pid=""
    delete_namespaces
}
trap 'log "interrupted"; exit 130' INT TERM HUP

for tool in ip jq taskset awk; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done
[ "$(id -u)" = 0 ] || { log "must run as root (network namespaces, packet sockets)"; exit 1; }

log "building ringsieve-blast and ringsieve (release)"
cargo build --release --quiet -p testbed --bin ringsieve-blast
blast="$repo/target/release/ringsieve-blast"
capturers=()
for capturer in $CAPTURERS; do
    case $capturer in
    ringsieve | ringsieve-rt1000 | ringsieve-dedup)
        if cargo build --release --quiet --bin ringsieve &&
            "$repo/target/release/ringsieve" run --help >/dev/null 2>&1; then
            capturers+=("$capturer")
        else
            log "skipping ringsieve: \`target/release/ringsieve run --help\` does not work"
        fi
        ;;
    tcpdump | netsniff-ng)
        if command -v "$capturer" >/dev/null; then capturers+=("$capturer"); else log "skipping $capturer: not installed"; fi
        ;;
    *) log "unknown capturer $capturer"; exit 1 ;;
    esac
done
[ ${#capturers[@]} -gt 0 ] || { log "no capturer to run"; exit 1; }

mkdir -p bench-out
stamp=$(date -u +%Y%m%dT%H%M%SZ)
jsonl="bench-out/capture-$stamp.jsonl"
md="bench-out/capture-$stamp.md"
work=$(mktemp -d)
trap 'cleanup; rm -rf "$work"' EXIT
clk_tck=$(getconf CLK_TCK)

# The capturer command line, run as `ip netns exec RX taskset -c CAP_CPU ...`.
capture_command() {
    case $1 in
    tcpdump) echo "tcpdump -i vrx -w /dev/null -B $((RING_MIB * 1024)) -n -p" ;;
    netsniff-ng) echo "netsniff-ng --in vrx --out /dev/null --silent --no-promisc --notouch-irq --ring-size ${RING_MIB}MiB" ;;
    # Capture alone, as tcpdump and netsniff-ng do: every copy written.
    ringsieve) echo "$repo/target/release/ringsieve run --interface vrx --pcap-out /dev/null --block-size 1048576 --block-count $RING_MIB --dedup false" ;;
    # With the dedup (the default of `ringsieve run`): every frame parsed,
    # identified and looked up; on this lone interface of role "other" each
    # is held a window (20 ms) before delivery, the worst case of the engine.
    ringsieve-dedup) echo "$repo/target/release/ringsieve run --interface vrx --pcap-out /dev/null --block-size 1048576 --block-count $RING_MIB" ;;
    # The same with libpcap's default timeout (1000 ms, which tcpdump uses):
    # fewer wake-ups at low rates, more latency.
    ringsieve-rt1000) echo "$(capture_command ringsieve) --retire-timeout 1000" ;;
    esac
}

setup_namespaces() {
    local ns
    for ns in "$ns_tx" "$ns_rx"; do
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip -n "$ns_tx" link add vtx type veth peer name vrx netns "$ns_rx"
    ip -n "$ns_tx" link set vtx up
    ip -n "$ns_rx" link set vrx up
}

# Waits until a packet socket of the capturer is bound to vrx and running.
wait_ready() {
    local pid=$1 ifindex deadline
    ifindex=$(ip netns exec "$ns_rx" cat /sys/class/net/vrx/ifindex)
    deadline=$((SECONDS + READY_TIMEOUT_SECS))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        if ip netns exec "$ns_rx" cat /proc/net/packet | awk -v i="$ifindex" 'NR > 1 && $5 == i && $6 == 1 { found = 1 } END { exit !found }'; then
            sleep 1 # ring set up after bind (libpcap), BPF and writer start
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# CPU time of a process, all its threads: utime+stime in clock ticks (coarse:
# 10 ms), and the scheduler's nanosecond run time, in ms, summed over threads
# (/proc/PID/task/*/sched, se.sum_exec_runtime).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
cpu_ms() { cat /proc/"$1"/task/*/sched 2>/dev/null | awk '/^se.sum_exec_runtime/ { s += $3 } END { printf "%.3f", s }'; }
rx_stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

# Prints {"received": N, "kernel_drops": N, "freezes": N|null, "extra": {...}}
# from the capturer's own exit report.
capturer_counts() {
    local capturer=$1 out=$2 err=$3
    case $capturer in
    tcpdump)
        jq -n --argjson r "$(awk '/packets captured/ { print $1 }' "$err")" \
            --argjson d "$(awk '/packets dropped by kernel/ { print $1 }' "$err")" \
            --argjson f "$(awk '/packets received by filter/ { print $1 }' "$err")" \
            '{received: $r, kernel_drops: $d, freezes: null, extra: {received_by_filter: $f}}'
        ;;
    netsniff-ng)
        tr '\r' '\n' <"$out" | awk '
            /packets incoming/ { incoming = $1; unread = $5; sub(/\(/, "", unread) }
            /packets passed filter/ { passed = $1 }
            /failed filter \(out of space\)/ { failed = $1 }
            END { printf "{\"received\": %d, \"kernel_drops\": %d, \"freezes\": null, \"extra\": {\"incoming\": %d, \"unread_on_exit\": %d}}\n", passed - unread, failed, incoming, unread }'
        ;;
    ringsieve | ringsieve-rt1000 | ringsieve-dedup)
        tail -n 1 "$err" | jq -c '.interfaces.vrx | {received, kernel_drops, freezes, extra: {captured, malformed_blocks, ring_bytes}}'
        ;;
    esac
}

run_one() {
    local capturer=$1 rate=$2 rep=$3
    local out="$work/$capturer.out" err="$work/$capturer.err" blast_out="$work/blast.out"
    local load cpu_before cpu_after ms_before ms_after stopped=ok delivered veth_drops counts blast_json
    setup_namespaces
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    # shellcheck disable=SC2046 # the command line is split on purpose
    ip netns exec "$ns_rx" taskset -c "$CAP_CPU" $(capture_command "$capturer") >"$out" 2>"$err" &
    capture_pid=$!
    if ! wait_ready "$capture_pid"; then
        log "$capturer did not start on vrx; its stderr:"
        tail -n 5 "$err" >&2
        exit 1
    fi
    cpu_before=$(cpu_ticks "$capture_pid")
    ms_before=$(cpu_ms "$capture_pid")
    ip netns exec "$ns_tx" taskset -c "$TX_CPU" "$blast" --interface vtx --rate "$rate" --duration "$DURATION" \
        --size "$SIZE" --flows "$FLOWS" >"$blast_out" &
    blast_pid=$!
    wait "$blast_pid"
    blast_pid=""
    blast_json=$(tail -n 1 "$blast_out")
    sleep "$DRAIN_SECS"
    cpu_after=$(cpu_ticks "$capture_pid")
    ms_after=$(cpu_ms "$capture_pid")
    delivered=$(rx_stat "$ns_rx" vrx rx_packets)
    veth_drops=$(rx_stat "$ns_tx" vtx tx_dropped)
    kill -INT "$capture_pid"
    local waited=0
    while kill -0 "$capture_pid" 2>/dev/null && [ $waited -lt $((STOP_TIMEOUT_SECS * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$capture_pid" 2>/dev/null; then
        stopped=killed
        stop_pid "$capture_pid"
    else
        wait "$capture_pid" || stopped="exit $?"
    fi
    capture_pid=""
    counts=$(capturer_counts "$capturer" "$out" "$err") || counts='{"received": null, "kernel_drops": null, "freezes": null}'
    delete_namespaces
    jq -nc --arg capturer "$capturer" --arg rate "$rate" --argjson rep "$rep" --arg size "$SIZE" \
        --argjson flows "$FLOWS" --argjson duration "$DURATION" --argjson ring_mib "$RING_MIB" \
        --argjson blast "$blast_json" --argjson delivered "$delivered" --argjson veth_drops "$veth_drops" \
        --argjson counts "$counts" --argjson cpu_ticks "$((cpu_after - cpu_before))" --argjson clk "$clk_tck" \
        --argjson cpu_ms "$(awk -v a="$ms_after" -v b="$ms_before" 'BEGIN { printf "%.3f", a - b }')" \
        --arg load "$load" --arg stopped "$stopped" --arg command "$(capture_command "$capturer")" '
        {capturer: $capturer, rate: $rate, rep: $rep, frame_len: ($size | tonumber? // $size), flows: $flows, duration_s: $duration,
         ring_mib: $ring_mib, blaster: $blast, delivered: $delivered, veth_drops: $veth_drops} + $counts +
        {cpu_s: ($cpu_ms / 1000), cpu_s_from_ticks: ($cpu_ticks / $clk),
         cpu_s_per_mpkt: (if $delivered > 0 then ($cpu_ms / 1000) / ($delivered / 1e6) else null end),
         loadavg_at_start: $load, stopped: $stopped, command: $command}' >"$work/record.json"
}

log "writing $jsonl; ${#capturers[@]} capturers x $(wc -w <<<"$RATES") rates x $REPEATS repeats of ${DURATION}s"
for rep in $(seq 1 "$REPEATS"); do
    for rate in $RATES; do
        for capturer in "${capturers[@]}"; do
            log "repeat $rep, rate $rate: $capturer"
            run_one "$capturer" "$rate" "$rep"
            cat "$work/record.json" >>"$jsonl"
            jq -r '"bench-capture:   blaster \(.blaster.pps | round) pps, delivered \(.delivered), received \(.received), drops \(.kernel_drops), cpu \(.cpu_s)s (ticks: \(.cpu_s_from_ticks)s)"' "$work/record.json" >&2
        done
    done
done

{
    echo "Capture benchmark $stamp: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r)."
    echo "Frames of $SIZE bytes, $FLOWS flows, ${DURATION}s per run, ${RING_MIB} MiB ring per capturer, capturer on CPU $CAP_CPU, blaster on CPU $TX_CPU; medians of $REPEATS repeats (CPU: median, min-max)."
    echo
    echo "| capturer | offered rate (pps) | blaster pps | sent | delivered to vrx | received | kernel drops | lost % | CPU s | CPU s / Mpkt | CPU vs tcpdump |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -rs '
        def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def r(n): if . == null then "-" else (. * pow(10; n) | round / pow(10; n) | tostring) end;
        def i: if . == null then "-" else (round | tostring) end;
        [group_by(.rate, .capturer)[] | {
            rate: .[0].rate, capturer: .[0].capturer,
            pps: (map(.blaster.pps) | median), sent: (map(.blaster.sent) | median), delivered: (map(.delivered) | median),
            received: (map(.received // empty) | median), drops: (map(.kernel_drops // empty) | median),
            lost: (map(select(.delivered > 0 and .received != null) | 100 * (.delivered - .received) / .delivered) | median),
            cpu: (map(.cpu_s) | median), cpm: (map(.cpu_s_per_mpkt // empty) | median),
            cpm_min: (map(.cpu_s_per_mpkt // empty) | min), cpm_max: (map(.cpu_s_per_mpkt // empty) | max)}] as $rows
        | ($rows | map(select(.capturer == "tcpdump") | {key: .rate, value: .cpm}) | from_entries) as $base
        | ["tcpdump", "netsniff-ng", "ringsieve", "ringsieve-rt1000", "ringsieve-dedup"] as $order
        | $rows | sort_by((.rate | if . == "max" then 1e12 else tonumber end), (.capturer as $c | $order | index($c)))[]
        | "| \(.capturer) | \(.rate) | \(.pps | i) | \(.sent | i) | \(.delivered | i) | \(.received | i) | \(.drops | i) | \(.lost | r(2)) | \(.cpu | r(2)) | \(.cpm | r(3)) (\(.cpm_min | r(3))-\(.cpm_max | r(3))) | \(if $base[.rate] and .cpm then (.cpm / $base[.rate] | r(2)) else "-" end) |"
    ' "$jsonl"
} | tee "$md"
log "runs: $jsonl, table: $md"
