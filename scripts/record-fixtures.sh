#!/usr/bin/env bash
# Records the dedup fixtures of tests/fixtures/dedup/ in the Docker-host test
# bed (scripts/docker-host.sh, 3 containers). For each case it builds a fresh
# bed, sets docker0 promiscuous or the uplink's TSO/GSO off when the case says
# so, starts tcpdump in the bed's host namespace on all interfaces
# (`-i any -y LINUX_SLL2`: every copy, with its ifindex and packet type) and
# on eth0 inside every container taking part, all with the same BPF filter
# (the case's traffic only: no ARP or IPv6 noise), waits until every tcpdump
# listens, runs the case with scripts/traffic.sh, stops the captures with
# SIGINT and checks that none dropped a packet (a case that dropped is
# recorded once more, then fails). ringsieve-fixture-manifest then writes
# <case>.json: the files, each host ifindex's name and role (from
# `ip -j link` at record time), the flags, the expected delivered count from
# the container-side captures and the host capture's counts. The bed is torn
# down after every case and on every exit path; nothing outside the bed's
# namespaces is touched and no traffic leaves them.
#
# Usage: scripts/record-fixtures.sh [CASE...]   (default: every case; `list`)
# Environment: RINGSIEVE_BED (namespace prefix, default rsfix), FIXTURE_DIR
# (default tests/fixtures/dedup). Needs root, iproute2, iptables, ethtool,
# tcpdump and cargo. TRAFFIC_COUNT=10 and TRAFFIC_BULK_BYTES=262144 are fixed
# here: they define the fixtures (a bulk fixture is about 1 MB).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${RINGSIEVE_BED:-rsfix}"
export RINGSIEVE_BED="$PREFIX"
HOST="$PREFIX-host"
DIR="${FIXTURE_DIR:-$ROOT/tests/fixtures/dedup}"
export TRAFFIC_COUNT=10
export TRAFFIC_BULK_BYTES=262144
CONTAINERS=3
# tcpdump's kernel buffer in KiB (64 MiB): libpcap's default drops packets.
BUFFER_KIB=65536
READY_TIMEOUT=10
# Lets the last copies of the last packet reach every tap before the stop.
SETTLE=0.5
CASES=(c2c-tcp c2c-tcp-promisc c2c-udp c2c-icmp c2h-tcp c2out-tcp published-tcp arp bulk-c2c bulk-out bulk-out-tso-off)

die() {
    echo "record-fixtures.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 [CASE...] | list    (cases: ${CASES[*]})" >&2
    exit 2
}

# What each case records: the traffic.sh case, the filter, the containers
# taking part, docker0 promiscuous, uplink TSO/GSO off.
case_spec() {
    PROMISC=0
    TSO_OFF=0
    PARTS=(1 2)
    case "$1" in
    c2c-tcp) TRAFFIC=c2c-tcp FILTER="ip and tcp port 5000" ;;
    c2c-tcp-promisc) TRAFFIC=c2c-tcp FILTER="ip and tcp port 5000" PROMISC=1 ;;
    c2c-udp) TRAFFIC=c2c-udp FILTER="ip and udp port 5001" ;;
    c2c-icmp) TRAFFIC=c2c-icmp FILTER="ip and icmp" ;;
    c2h-tcp) TRAFFIC=c2h-tcp FILTER="ip and tcp port 5002" PARTS=(1) ;;
    c2out-tcp) TRAFFIC=c2out-tcp FILTER="ip and tcp port 5003" PARTS=(1) ;;
    published-tcp) TRAFFIC=published-tcp FILTER="ip and tcp and (port 80 or port 8080)" PARTS=(1) ;;
    arp) TRAFFIC=arp FILTER="arp" PARTS=(1 2 3) ;;
    bulk-c2c) TRAFFIC=bulk-c2c FILTER="ip and tcp port 5004" ;;
    bulk-out) TRAFFIC=bulk-out FILTER="ip and tcp port 5005" PARTS=(1) ;;
    bulk-out-tso-off) TRAFFIC=bulk-out FILTER="ip and tcp port 5005" PARTS=(1) TSO_OFF=1 ;;
    *) die "unknown case '$1' (cases: ${CASES[*]})" ;;
    esac
}

WORK=""
CAPTURE_PIDS=()
DROPPED=0

bed() {
    bash "$ROOT/scripts/docker-host.sh" "$@"
}

stop_captures() {
    local pid
    for pid in "${CAPTURE_PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${CAPTURE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    CAPTURE_PIDS=()
}

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$?
    stop_captures
    bed down >/dev/null 2>&1 || rc=1
    if ip netns list | grep -q "^$PREFIX-"; then
        echo "record-fixtures.sh: namespaces of $PREFIX left behind:" >&2
        ip netns list | grep "^$PREFIX-" >&2
        rc=1
    fi
    [[ -z "$WORK" ]] || rm -rf "$WORK"
    exit "$rc"
}

# Starts tcpdump in namespace $1 writing $2, stderr to $3; the rest are
# tcpdump's interface options. Records its pid (ip netns exec execs it).
start_capture() {
    local ns=$1 file=$2 log=$3
    shift 3
    ip netns exec "$ns" tcpdump -Z root "$@" -s 0 -B "$BUFFER_KIB" --immediate-mode \
        --time-stamp-precision nano -w "$file" "$FILTER" 2>"$log" &
    CAPTURE_PIDS+=("$!")
}

# Waits until every capture says it is listening and its file exists.
wait_listening() {
    local i waited=0 log file
    for ((i = 0; i < ${#CAPTURE_LOGS[@]}; i++)); do
        log=${CAPTURE_LOGS[i]}
        file=${CAPTURE_FILES[i]}
        until grep -q "listening on" "$log" 2>/dev/null && [[ -e "$file" ]]; do
            kill -0 "${CAPTURE_PIDS[i]}" 2>/dev/null || die "tcpdump for $file exited: $(cat "$log")"
            ((waited < READY_TIMEOUT * 100)) || die "tcpdump for $file not listening within ${READY_TIMEOUT}s"
            sleep 0.01
            waited=$((waited + 1))
        done
    done
    # "listening on" comes once the socket is bound and filtered; the moment
    # more is margin for the last tcpdump started.
    sleep 0.2
}

# Records one case once; sets DROPPED=1 (and writes no manifest) when a
# capture dropped packets.
record_once() {
    local case=$1 k ns
    echo "== $case (traffic $TRAFFIC, filter '$FILTER', containers ${PARTS[*]}, promisc $PROMISC, tso_off $TSO_OFF)"
    bed up "$CONTAINERS" >"$WORK/bed.log" 2>&1 || die "docker-host.sh up failed: $(cat "$WORK/bed.log")"
    if ((PROMISC)); then
        ip -n "$HOST" link set docker0 promisc on
    fi
    if ((TSO_OFF)); then
        ip netns exec "$HOST" ethtool -K eth0 tso off gso off
    fi
    ip -n "$HOST" -j link show >"$WORK/links.json"

    # Recorded aside, moved into place only once complete: an interrupted
    # run leaves the previous fixture as it was.
    local rec="$WORK/rec"
    rm -rf "$rec"
    mkdir "$rec"
    CAPTURE_FILES=("$rec/$case.pcap")
    CAPTURE_LOGS=("$WORK/$case.host.log")
    start_capture "$HOST" "${CAPTURE_FILES[0]}" "${CAPTURE_LOGS[0]}" -i any -y LINUX_SLL2
    for k in "${PARTS[@]}"; do
        ns="$PREFIX-c$k"
        CAPTURE_FILES+=("$rec/$case.c$k.pcap")
        CAPTURE_LOGS+=("$WORK/$case.c$k.log")
        # -p: leave the container's eth0 as the bed built it (a veth's taps
        # see every frame either way).
        start_capture "$ns" "${CAPTURE_FILES[-1]}" "${CAPTURE_LOGS[-1]}" -p -i eth0
    done
    wait_listening

    RINGSIEVE_TRAFFIC="$TRAFFIC_BIN" bash "$ROOT/scripts/traffic.sh" "$TRAFFIC" >"$WORK/traffic.log" 2>&1 ||
        die "traffic.sh $TRAFFIC failed: $(cat "$WORK/traffic.log")"
    sleep "$SETTLE"
    stop_captures

    local i log dropped captured dropped_any=0
    for ((i = 0; i < ${#CAPTURE_LOGS[@]}; i++)); do
        log=${CAPTURE_LOGS[i]}
        captured=$(sed -n 's/^\([0-9]\+\) packets\? captured$/\1/p' "$log")
        dropped=$(sed -n 's/^\([0-9]\+\) packets\? dropped by kernel$/\1/p' "$log")
        [[ -n "$captured" && -n "$dropped" ]] || die "no statistics from tcpdump for ${CAPTURE_FILES[i]}: $(cat "$log")"
        echo "   $(basename "${CAPTURE_FILES[i]}"): $captured captured, $dropped dropped by kernel"
        ((captured > 0)) || die "${CAPTURE_FILES[i]} captured nothing"
        ((dropped == 0)) || dropped_any=1
    done
    DROPPED=$dropped_any
    if ((DROPPED)); then
        bed down >/dev/null
        return
    fi

    local captures=()
    for k in "${PARTS[@]}"; do
        captures+=(--container-capture "$case.c$k.pcap")
    done
    local flags=()
    ((PROMISC == 0)) || flags+=(--docker0-promisc)
    ((TSO_OFF == 0)) || flags+=(--tso-off)
    "$MANIFEST_BIN" --dir "$rec" --case "$case" --traffic "$TRAFFIC" --filter "$FILTER" \
        --host-capture "$case.pcap" "${captures[@]}" --links "$WORK/links.json" "${flags[@]}" |
        sed 's/^/   /'
    bed down >/dev/null
    rm -f "$DIR/$case.pcap" "$DIR/$case".c*.pcap "$DIR/$case.json"
    mv "$rec"/* "$DIR/"
}

record_case() {
    local case=$1
    case_spec "$case"
    record_once "$case"
    if ((DROPPED)); then
        echo "   a capture dropped packets; recording $case once more"
        record_once "$case"
        ((DROPPED == 0)) || die "$case: a capture dropped packets twice"
    fi
}

main() {
    local selected=("$@")
    if (($# == 0)); then
        selected=("${CASES[@]}")
    elif [[ "$1" == list ]]; then
        printf '%s\n' "${CASES[@]}"
        return
    fi
    local name
    for name in "${selected[@]}"; do
        [[ " ${CASES[*]} " == *" $name "* ]] || usage
    done
    ((EUID == 0)) || die "needs root (network namespaces, tcpdump)"
    for name in ip iptables ethtool tcpdump cargo timeout; do
        command -v "$name" >/dev/null || die "$name not found"
    done

    (cd "$ROOT" && cargo build --quiet -p testbed --bin ringsieve-traffic --bin ringsieve-fixture-manifest)
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$target" == /* ]] || target="$ROOT/$target"
    TRAFFIC_BIN="$target/debug/ringsieve-traffic"
    MANIFEST_BIN="$target/debug/ringsieve-fixture-manifest"

    mkdir -p "$DIR"
    WORK="$(mktemp -d)"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    for name in "${selected[@]}"; do
        record_case "$name"
    done
    echo "fixtures in $DIR:"
    (cd "$DIR" && du -ch -- *.pcap | tail -1)
}

main "$@"
