#!/usr/bin/env bash
# Traffic cases for the Docker-host test bed (scripts/docker-host.sh up N,
# N >= 2): each case runs ringsieve-traffic (crates/testbed/src/bin/traffic.rs)
# or ping with `ip netns exec` in the bed's namespaces and puts a known,
# deterministic number of application packets on the wire, so a capture on
# the host's interfaces can be checked copy by copy against
# docs/docker-host-ground-truth.md (tests/kernel/testbed.rs does). Servers are
# started in the background, waited for until they listen, and killed on exit
# if still running; every step is bounded in time. Prints one line per case
# and the JSON summaries of the programs; exits non-zero when a case did not
# send or receive everything it should.
#
# Usage: scripts/traffic.sh CASE... | all | list
#   c2c-tcp        c1 -> c2:5000, COUNT echo messages of 100 bytes
#   c2c-udp        c1 -> c2:5001, COUNT datagrams of 100 bytes
#   c2c-icmp       c1 pings c2, COUNT echo requests
#   c2h-tcp        c1 -> host 172.17.0.1:5002 (docker0), COUNT echo messages
#   c2out-tcp      c1 -> outside 198.18.0.1:5003 through MASQUERADE, COUNT echo messages
#   published-tcp  outside -> 198.18.0.2:8080, DNAT to c1 172.17.0.2:80, COUNT echo messages
#   arp            c1 broadcasts COUNT ARP requests for c2 (raw frames), c2 replies
#   bulk-c2c       c1 uploads BULK bytes to c2:5004
#   bulk-out       c1 uploads BULK bytes to outside 198.18.0.1:5005 through MASQUERADE
# Environment: RINGSIEVE_BED (namespace prefix, default rsbed), TRAFFIC_COUNT
# (default 10), TRAFFIC_BULK_BYTES (default 1048576), RINGSIEVE_TRAFFIC (the
# binary; default: built with cargo into the workspace's target directory).
# Needs root, iproute2, coreutils `timeout` and ping (iputils-ping).

set -euo pipefail

PREFIX="${RINGSIEVE_BED:-rsbed}"
HOST="$PREFIX-host"
C1="$PREFIX-c1"
C2="$PREFIX-c2"
OUT="$PREFIX-out"
COUNT="${TRAFFIC_COUNT:-10}"
BULK="${TRAFFIC_BULK_BYTES:-1048576}"
# Seconds any one program may run; the client of a case gets this much, its
# server a little more so it outlives the client.
STEP_TIMEOUT=20
READY_TIMEOUT=5
CASES=(c2c-tcp c2c-udp c2c-icmp c2h-tcp c2out-tcp published-tcp arp bulk-c2c bulk-out)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    echo "traffic.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 CASE... | all | list    (cases: ${CASES[*]})" >&2
    exit 2
}

WORK=""
SERVER_PIDS=()
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
    fi
}

traffic_binary() {
    if [[ -n "${RINGSIEVE_TRAFFIC:-}" ]]; then
        [[ -x "$RINGSIEVE_TRAFFIC" ]] || die "RINGSIEVE_TRAFFIC=$RINGSIEVE_TRAFFIC is not executable"
        echo "$RINGSIEVE_TRAFFIC"
        return
    fi
    (cd "$ROOT" && cargo build --quiet -p testbed --bin ringsieve-traffic) >&2
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$target" == /* ]] || target="$ROOT/$target"
    echo "$target/debug/ringsieve-traffic"
}

# Runs ringsieve-traffic in namespace $1, bounded twice: by its own
# --timeout and by coreutils timeout in case it wedges anyway.
traffic() {
    local ns=$1 seconds=$2
    shift 2
    timeout -k 2 $((seconds + 5)) ip netns exec "$ns" "$BIN" --timeout "$seconds" "$@"
}

# Starts a server in namespace $1 in the background and waits until it has
# written its ready file.
start_server() {
    local ns=$1 name=$2
    shift 2
    local ready="$WORK/$CASE-$name.ready"
    rm -f "$ready"
    local seconds=$((STEP_TIMEOUT + 5))
    # Not through `traffic`: a backgrounded function is a subshell, and its
    # pid would not be the process that cleanup must kill.
    timeout -k 2 $((seconds + 5)) ip netns exec "$ns" "$BIN" --timeout "$seconds" "$@" --ready-file "$ready" &
    SERVER_PIDS+=("$!")
    local waited=0
    until [[ -e "$ready" ]]; do
        kill -0 "$!" 2>/dev/null || die "$name exited before it listened"
        ((waited < READY_TIMEOUT * 100)) || die "$name did not listen within ${READY_TIMEOUT}s"
        sleep 0.01
        waited=$((waited + 1))
    done
}

# Waits for the last server started; fails if it did not serve everything.
wait_server() {
    local pid="${SERVER_PIDS[-1]}"
    wait "$pid" || die "server in case $CASE failed (exit $?)"
    unset 'SERVER_PIDS[-1]'
}

echo_case() {
    local server_ns=$1 listen=$2 client_ns=$3 connect=$4
    start_server "$server_ns" server tcp-server --listen "$listen" --mode echo
    traffic "$client_ns" "$STEP_TIMEOUT" tcp-client --connect "$connect" --messages "$COUNT" --size 100
    wait_server
}

upload_case() {
    local server_ns=$1 listen=$2 connect=$3
    start_server "$server_ns" server tcp-server --listen "$listen" --mode sink
    traffic "$C1" "$STEP_TIMEOUT" tcp-client --connect "$connect" --upload "$BULK"
    wait_server
}

run_case() {
    CASE=$1
    echo "== $CASE"
    case "$CASE" in
    c2c-tcp) echo_case "$C2" 0.0.0.0:5000 "$C1" 172.17.0.3:5000 ;;
    c2c-udp)
        start_server "$C2" sink udp-sink --listen 0.0.0.0:5001 --count "$COUNT"
        traffic "$C1" "$STEP_TIMEOUT" udp-send --to 172.17.0.3:5001 --count "$COUNT" --size 100
        wait_server
        ;;
    c2c-icmp)
        timeout -k 2 $((STEP_TIMEOUT + 5)) ip netns exec "$C1" \
            ping -n -q -c "$COUNT" -i 0.1 -w "$STEP_TIMEOUT" 172.17.0.3
        ;;
    c2h-tcp) echo_case "$HOST" 172.17.0.1:5002 "$C1" 172.17.0.1:5002 ;;
    c2out-tcp) echo_case "$OUT" 198.18.0.1:5003 "$C1" 198.18.0.1:5003 ;;
    published-tcp) echo_case "$C1" 0.0.0.0:80 "$OUT" 198.18.0.2:8080 ;;
    arp)
        traffic "$C1" "$STEP_TIMEOUT" arp --interface eth0 --sender-ip 172.17.0.2 --target 172.17.0.3 --count "$COUNT"
        ;;
    bulk-c2c) upload_case "$C2" 0.0.0.0:5004 172.17.0.3:5004 ;;
    bulk-out) upload_case "$OUT" 198.18.0.1:5005 198.18.0.1:5005 ;;
    *) die "unknown case '$CASE' (cases: ${CASES[*]})" ;;
    esac
}

main() {
    (($# > 0)) || usage
    if [[ "$1" == list ]]; then
        printf '%s\n' "${CASES[@]}"
        return
    fi
    local selected=("$@")
    if [[ "$1" == all ]]; then
        (($# == 1)) || usage
        selected=("${CASES[@]}")
    fi
    [[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || die "TRAFFIC_COUNT must be a positive number"
    [[ "$BULK" =~ ^[1-9][0-9]*$ ]] || die "TRAFFIC_BULK_BYTES must be a positive number"
    local ns
    for ns in "$HOST" "$C1" "$C2" "$OUT"; do
        [[ -e "/var/run/netns/$ns" ]] || die "namespace $ns missing: run RINGSIEVE_BED=$PREFIX scripts/docker-host.sh up 2"
    done
    BIN="$(traffic_binary)"
    WORK="$(mktemp -d)"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    local name
    for name in "${selected[@]}"; do
        run_case "$name"
    done
}

main "$@"
