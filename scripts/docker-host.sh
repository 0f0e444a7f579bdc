#!/usr/bin/env bash
# The Docker-host test bed, built from network namespaces only: no Docker
# daemon, nothing changed in the root namespace. `up N` builds a "host"
# namespace with a docker0 bridge (172.17.0.1/16), N "container" namespaces
# joined to it by veth pairs (host end vethcK on docker0, container end eth0
# with 172.17.0.(K+1)/16 and MAC 02:42:ac:11:00:(K+1)), an uplink eth0
# (198.18.0.2/24) that is a veth to an "outside" namespace (198.18.0.1/24),
# Docker's iptables rules (MASQUERADE of 172.17/16, tcp 8080 published as
# 172.17.0.2:80, the FORWARD chains), ip_forward=1 and, when br_netfilter is
# there, bridge-nf-call-iptables=1. This is the bed the ground truth in
# docs/docker-host-ground-truth.md was measured on; scripts/traffic.sh drives
# traffic through it and tests/kernel/testbed.rs checks what it shows.
# IPv6 is disabled in every namespace of the bed so captures hold only the
# traffic a test sends (plus ARP).
#
# Usage: scripts/docker-host.sh up N | down | status
#                               | start K [--tcpdump DIR] [--publish PORT] | stop K
#
# `start K` adds container K to a running bed the way `docker run` does;
# `stop K` removes it the way `docker rm -f` does. Two options of `start`:
#   --tcpdump DIR  the container-side ground truth of a container that starts
#                  while a capture runs: `tcpdump -i eth0` inside the container
#                  writes DIR/cK.pcap (every frame, whole, packet-buffered),
#                  its messages and exit statistics to DIR/cK.tcpdump.log.
#                  It is started after the veth pair exists and before the
#                  host end is enslaved and up, and `start` returns only once
#                  it listens, so it holds every frame the container ever
#                  sends or receives. (libpcap refuses a link that is down, so
#                  the container end is set up first, without an address; it
#                  has no carrier until the host end is up, and nothing is
#                  sent before; `start` then waits for its operstate UP, when
#                  the kernel has given it its transmit queue.) `stop K`
#                  ends every tcpdump in the container with SIGINT and
#                  waits for it to exit before deleting the namespace, so
#                  the pcap is complete and the log ends with tcpdump's
#                  "packets dropped by kernel" line.
#   --publish PORT tcp PORT on the host is published as the container's port
#                  80, with the rules Docker adds for `-p PORT:80` (DNAT in
#                  the DOCKER chain, the FORWARD accept, the hairpin
#                  MASQUERADE), each tagged with an iptables comment that
#                  `stop K` finds and deletes them by. Container 1's 8080
#                  from `up` is not such a rule and stays.
# Namespaces are named from $RINGSIEVE_BED (default rsbed): PREFIX-host,
# PREFIX-c1..PREFIX-cN, PREFIX-out. `up` tears down any previous bed of that
# prefix first and removes what it built when a step fails; `down` kills the
# processes inside the bed's namespaces and deletes them, and succeeds when
# there is nothing to delete. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN),
# iproute2 and iptables (nft or legacy backend).

set -euo pipefail

PREFIX="${RINGSIEVE_BED:-rsbed}"
HOST="$PREFIX-host"
OUT="$PREFIX-out"
# 172.17.0.(K+1) and the MAC's last byte must stay below 255.
MAX_CONTAINERS=253
# Set once `up` finished; until then its exit trap removes the partial bed.
BUILT=0

die() {
    echo "docker-host.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 up N | down | status | start K [--tcpdump DIR] [--publish PORT] | stop K   (namespace prefix: \$RINGSIEVE_BED, now '$PREFIX')" >&2
    exit 2
}

# Every command that changes the network runs through one of these two, so
# nothing reaches the root namespace.
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

ipn() {
    local ns=$1
    shift
    ip -n "$ns" "$@"
}

# The namespaces of this bed that exist now, one a line.
bed_namespaces() {
    local name
    ip netns list | while read -r name _; do
        case "$name" in
        "$HOST" | "$OUT") echo "$name" ;;
        "$PREFIX"-c*)
            if [[ "${name#"$PREFIX"-c}" =~ ^[0-9]+$ ]]; then
                echo "$name"
            fi
            ;;
        esac
    done
}

cmd_down() {
    local ns pid
    for ns in $(bed_namespaces); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        ip netns del "$ns"
        echo "deleted $ns"
    done
}

# Docker's rules (docker 20-24, iptables backend), in the host namespace.
docker_iptables() {
    local ipt=(in_ns "$HOST" iptables -w 5)
    # nat: published ports through the DOCKER chain for local destinations,
    # containers masqueraded out of every interface but the bridge.
    "${ipt[@]}" -t nat -N DOCKER
    "${ipt[@]}" -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    "${ipt[@]}" -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
    "${ipt[@]}" -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
    "${ipt[@]}" -t nat -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
    "${ipt[@]}" -t nat -A DOCKER -i docker0 -j RETURN
    "${ipt[@]}" -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
    # filter: FORWARD policy DROP, user chain, isolation, replies and
    # container-originated traffic accepted, the published port let in.
    "${ipt[@]}" -N DOCKER
    "${ipt[@]}" -N DOCKER-ISOLATION-STAGE-1
    "${ipt[@]}" -N DOCKER-ISOLATION-STAGE-2
    "${ipt[@]}" -N DOCKER-USER
    "${ipt[@]}" -P FORWARD DROP
    "${ipt[@]}" -A FORWARD -j DOCKER-USER
    "${ipt[@]}" -A FORWARD -j DOCKER-ISOLATION-STAGE-1
    "${ipt[@]}" -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    "${ipt[@]}" -A FORWARD -o docker0 -j DOCKER
    "${ipt[@]}" -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
    "${ipt[@]}" -A FORWARD -i docker0 -o docker0 -j ACCEPT
    "${ipt[@]}" -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
    "${ipt[@]}" -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
    "${ipt[@]}" -A DOCKER-ISOLATION-STAGE-1 -j RETURN
    "${ipt[@]}" -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
    "${ipt[@]}" -A DOCKER-ISOLATION-STAGE-2 -j RETURN
    "${ipt[@]}" -A DOCKER-USER -j RETURN
}

new_namespace() {
    local ns=$1
    ip netns add "$ns"
    ipn "$ns" link set lo up
    if in_ns "$ns" test -e /proc/sys/net/ipv6/conf/all/disable_ipv6; then
        in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
}

# The state of process PID ("R", "S", "Z"...), empty once it is gone.
process_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    echo "${stat%% *}"
}

# Whether process PID still runs (a zombie has exited: nobody may reap it).
running() {
    local state
    state=$(process_state "$1")
    [[ -n "$state" && "$state" != Z ]]
}

# tcpdump on eth0 inside container K, writing DIR/cK.pcap: every frame,
# whole (-s 0), not promiscuous, each written as it arrives (--immediate-mode,
# -U), with a 64 MiB buffer (libpcap's default 2 MiB dropped packets in the
# ground-truth runs), as root so it can write where root can. Detached: its
# stdin and outputs are files, so a caller waiting for this script's output
# is not held by it. Returns once it listens.
start_tcpdump() {
    local k=$1 dir=$2 ns pid log waited=0
    ns="$PREFIX-c$k"
    log="$dir/c$k.tcpdump.log"
    in_ns "$ns" tcpdump -i eth0 -p -s 0 -B 65536 --immediate-mode -U -Z root -w "$dir/c$k.pcap" \
        </dev/null >"$log" 2>&1 &
    pid=$!
    until grep -q "listening on" "$log" 2>/dev/null; do
        running "$pid" || die "tcpdump in $ns exited before it listened: $(cat "$log")"
        ((waited < 1000)) || die "tcpdump in $ns did not listen within 10 s: $(cat "$log")"
        sleep 0.01
        waited=$((waited + 1))
    done
}

# Ends every tcpdump in namespace NS with SIGINT (it then writes what it
# holds and its statistics) and waits up to 10 s for each; fails if one is
# still running then.
stop_tcpdumps() {
    local ns=$1 pid waited left=0
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == tcpdump ]] || continue
        kill -INT "$pid" 2>/dev/null || continue
        waited=0
        while running "$pid" && ((waited < 1000)); do
            sleep 0.01
            waited=$((waited + 1))
        done
        if running "$pid"; then
            echo "docker-host.sh: tcpdump $pid in $ns ignored SIGINT for 10 s: killed, its capture is incomplete" >&2
            left=1
        fi
    done
    return "$left"
}

# Docker's rules for a container started with `-p PORT:80`, added (-A) or
# deleted (-D), each with a comment naming the container.
publish_rules() {
    local action=$1 k=$2 port=$3 ip tag
    ip="172.17.0.$((k + 1))"
    tag="rsbed-publish-c$k"
    local ipt=(in_ns "$HOST" iptables -w 5)
    "${ipt[@]}" -t nat "$action" POSTROUTING -s "$ip/32" -d "$ip/32" -p tcp -m tcp --dport 80 \
        -m comment --comment "$tag" -j MASQUERADE
    "${ipt[@]}" -t nat "$action" DOCKER ! -i docker0 -p tcp -m tcp --dport "$port" \
        -m comment --comment "$tag" -j DNAT --to-destination "$ip:80"
    "${ipt[@]}" "$action" DOCKER -d "$ip/32" ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 \
        -m comment --comment "$tag" -j ACCEPT
}

# The host ports published to container K by `start K --publish`, one a line.
published_ports() {
    local rules
    rules=$(in_ns "$HOST" iptables -w 5 -t nat -S DOCKER)
    echo "$rules" | sed -n "s/.* --dport \([0-9]*\) .*--comment \"\{0,1\}rsbed-publish-c$1\"\{0,1\} .*/\1/p"
}

# Container K, started the way Docker does: the veth is created with its
# peer already in the container, then enslaved to docker0, then set up.
# With CAPTURE_DIR, tcpdump listens in the container before the host end is
# enslaved (see --tcpdump above).
start_container() {
    local k=$1 capture_dir=${2:-} ns mac
    ns="$PREFIX-c$k"
    mac=$(printf '02:42:ac:11:00:%02x' $((k + 1)))
    new_namespace "$ns"
    ipn "$HOST" link add "vethc$k" type veth peer name eth0 address "$mac" netns "$ns"
    if [[ -n "$capture_dir" ]]; then
        ipn "$ns" link set eth0 up
        start_tcpdump "$k" "$capture_dir"
    fi
    ipn "$HOST" link set "vethc$k" master docker0
    ipn "$HOST" link set "vethc$k" up
    ipn "$ns" addr add "172.17.0.$((k + 1))/16" dev eth0
    ipn "$ns" link set eth0 up
    ipn "$ns" route add default via 172.17.0.1
    # An eth0 that came up before its peer (--tcpdump) gets its transmit
    # queue only when the kernel's linkwatch work sees the carrier, which
    # is late under load; until then it drops what it sends. Its operstate
    # turns UP in that same work, so the container sends nothing before.
    local tries=0
    until ipn "$ns" -o link show eth0 | grep -q "state UP"; do
        ((++tries < 200)) || die "c$k: eth0 did not come up"
        sleep 0.01
    done
}

# `start K`: container K joins a running bed; `stop K`: it leaves (its
# captures ended, its published ports withdrawn, its processes killed, its
# namespace deleted, which deletes the veth pair), as `docker run` and
# `docker rm -f` do.
cmd_start() {
    local k=$1 capture_dir="" port="" rules
    shift
    if ! [[ "$k" =~ ^[0-9]+$ ]] || ((k < 1 || k > MAX_CONTAINERS)); then
        die "K must be 1..$MAX_CONTAINERS, got '$k'"
    fi
    while (($# > 0)); do
        case "$1" in
        --tcpdump)
            (($# >= 2)) || usage
            capture_dir=$2
            [[ -d "$capture_dir" && -w "$capture_dir" ]] || die "--tcpdump $capture_dir: not a writable directory"
            command -v tcpdump >/dev/null || die "--tcpdump needs tcpdump (scripts/setup.sh installs it)"
            shift 2
            ;;
        --publish)
            (($# >= 2)) || usage
            port=$2
            if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
                die "--publish PORT must be 1..65535, got '$port'"
            fi
            shift 2
            ;;
        *) usage ;;
        esac
    done
    ip netns list | grep -qw "$HOST" || die "no bed '$PREFIX': run up first"
    ! ip netns list | grep -qw "$PREFIX-c$k" || die "container $k is already running"
    if [[ -n "$port" ]]; then
        rules=$(in_ns "$HOST" iptables -w 5 -t nat -S DOCKER)
        [[ "$rules" != *"--dport $port "* ]] || die "host port $port is published already"
    fi
    start_container "$k" "$capture_dir"
    if [[ -n "$port" ]]; then
        publish_rules -A "$k" "$port"
    fi
    echo "started $PREFIX-c$k (vethc$k, 172.17.0.$((k + 1))${port:+, tcp $port published as :80}${capture_dir:+, tcpdump to $capture_dir/c$k.pcap})"
}

cmd_stop() {
    local k=$1 ns pid port complete=1
    [[ "$k" =~ ^[0-9]+$ ]] || die "K must be a number, got '$k'"
    ns="$PREFIX-c$k"
    ip netns list | grep -qw "$ns" || die "container $k is not running"
    stop_tcpdumps "$ns" || complete=0
    for port in $(published_ports "$k"); do
        publish_rules -D "$k" "$port"
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns"
    # The veth pair goes with the namespace, asynchronously: wait for it.
    for _ in $(seq 100); do
        ipn "$HOST" link show "vethc$k" >/dev/null 2>&1 || break
        sleep 0.01
    done
    ((complete)) || die "stopped $ns, but a tcpdump there had to be killed"
    echo "stopped $ns"
}

cmd_up() {
    local n=$1 k ns mac
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > MAX_CONTAINERS)); then
        die "N must be 1..$MAX_CONTAINERS, got '$n'"
    fi
    [[ "$PREFIX" =~ ^[A-Za-z0-9_.-]+$ ]] || die "RINGSIEVE_BED '$PREFIX' must be letters, digits, '.', '_' or '-'"

    # Idempotent: whatever an earlier run left is removed first.
    cmd_down >/dev/null

    BUILT=0
    # shellcheck disable=SC2317  # invoked by the trap
    on_exit() {
        local rc=$?
        if ((BUILT == 0)); then
            echo "docker-host.sh: up failed; removing the partial bed" >&2
            cmd_down >/dev/null 2>&1 || true
            ((rc != 0)) || rc=1
        fi
        exit "$rc"
    }
    trap on_exit EXIT
    trap 'exit 130' INT TERM

    # The host: docker0 with Docker's gateway address and a Docker-style MAC.
    new_namespace "$HOST"
    in_ns "$HOST" sysctl -qw net.ipv4.ip_forward=1
    ipn "$HOST" link add docker0 address 02:42:ac:11:00:01 type bridge
    ipn "$HOST" addr add 172.17.0.1/16 dev docker0
    ipn "$HOST" link set docker0 up
    if in_ns "$HOST" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
        in_ns "$HOST" sysctl -qw net.bridge.bridge-nf-call-iptables=1
        echo "bridge-nf-call-iptables=1 in $HOST"
    else
        echo "br_netfilter not available: bridged traffic bypasses iptables (as on a host without it)"
    fi

    for ((k = 1; k <= n; k++)); do
        start_container "$k"
    done

    # The uplink: eth0 in the host, a veth to the outside router.
    new_namespace "$OUT"
    ipn "$OUT" link add eth0 address 02:00:c6:12:00:01 type veth peer name eth0 address 02:00:c6:12:00:02 netns "$HOST"
    ipn "$OUT" addr add 198.18.0.1/24 dev eth0
    ipn "$OUT" link set eth0 up
    ipn "$HOST" addr add 198.18.0.2/24 dev eth0
    ipn "$HOST" link set eth0 up
    ipn "$HOST" route add default via 198.18.0.1

    docker_iptables

    BUILT=1
    trap - EXIT INT TERM
    echo "host namespace:       $HOST (docker0 172.17.0.1/16, eth0 198.18.0.2/24, vethc1..vethc$n)"
    for ((k = 1; k <= n; k++)); do
        echo "container namespace:  $PREFIX-c$k (eth0 172.17.0.$((k + 1))/16 $(printf '02:42:ac:11:00:%02x' $((k + 1))))"
    done
    echo "outside namespace:    $OUT (eth0 198.18.0.1/24)"
}

cmd_status() {
    local ns found=0
    for ns in $(bed_namespaces); do
        found=1
        echo "== $ns"
        ipn "$ns" -br addr show
    done
    ((found)) || echo "no bed with prefix '$PREFIX'"
}

case "${1:-}" in
up)
    [[ $# -eq 2 ]] || usage
    cmd_up "$2"
    ;;
down)
    [[ $# -eq 1 ]] || usage
    cmd_down
    ;;
status)
    [[ $# -eq 1 ]] || usage
    cmd_status
    ;;
start)
    [[ $# -ge 2 ]] || usage
    shift
    cmd_start "$@"
    ;;
stop)
    [[ $# -eq 2 ]] || usage
    cmd_stop "$2"
    ;;
*) usage ;;
esac
