//! The conntrack watcher against the kernel, in namespaces of its own: a
//! Docker-like host (a container behind a veth, an uplink to an outside
//! namespace, Docker's MASQUERADE and published-port DNAT rules from
//! scripts/docker-host.sh) with the watcher running inside the host
//! namespace. Checks the Bound tuples of an outbound TCP connection, an
//! inbound one to the published port, an ICMP echo and a connection older
//! than the watcher (from the initial dump) exactly, that each event-bound
//! one is Released after it closed (conntrack timeouts shortened inside the host
//! namespace only), and that an unprivileged process gets
//! `ConntrackError::Unavailable`. Prints the delay from each connection's
//! first packet to its Bound event, and every message the kernel sent.
//! Skips, saying why, when not root or without iptables.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conntrack::{
    ConntrackError, ConntrackWatcher, CtKind, NatBinding, NatEvent, NatKind, WatcherConfig, WatcherCounters,
};
use flow::{Endpoint, FlowTuple};
use testbed::netns::{privileged, veth_pair, NetNs};

/// How long the test waits for every binding to be bound and released.
const DEADLINE: Duration = Duration::from_secs(40);

fn ep(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
}

fn tcp(src: Endpoint, dst: Endpoint) -> FlowTuple {
    FlowTuple { protocol: 6, src, dst }
}

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// The host (with `vethc1` to the container standing in for docker0 and an
/// uplink eth0), the container and the outside, with Docker's NAT rules.
struct Bed {
    host: NetNs,
    container: NetNs,
    outside: NetNs,
}

fn build_bed() -> Bed {
    let host = NetNs::new("cthost");
    let container = NetNs::new("ctc1");
    let outside = NetNs::new("ctout");
    veth_pair(&host, "vethc1", &container, "eth0");
    veth_pair(&host, "eth0", &outside, "eth0");
    host.ip(&["addr", "add", "172.17.0.1/16", "dev", "vethc1"]);
    host.ip(&["addr", "add", "198.18.0.2/24", "dev", "eth0"]);
    host.ip(&["route", "add", "default", "via", "198.18.0.1"]);
    container.ip(&["addr", "add", "172.17.0.2/16", "dev", "eth0"]);
    container.ip(&["route", "add", "default", "via", "172.17.0.1"]);
    outside.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    host.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    // Docker's nat rules (scripts/docker-host.sh), docker0 being vethc1.
    let ipt = |args: &[&str]| {
        let mut full = vec!["-w", "5", "-t", "nat"];
        full.extend_from_slice(args);
        host.exec("iptables", &full);
    };
    ipt(&["-N", "DOCKER"]);
    ipt(&[
        "-A",
        "PREROUTING",
        "-m",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "-j",
        "DOCKER",
    ]);
    ipt(&[
        "-A",
        "POSTROUTING",
        "-s",
        "172.17.0.0/16",
        "!",
        "-o",
        "vethc1",
        "-j",
        "MASQUERADE",
    ]);
    ipt(&["-A", "DOCKER", "-i", "vethc1", "-j", "RETURN"]);
    ipt(&[
        "-A",
        "DOCKER",
        "!",
        "-i",
        "vethc1",
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        "8080",
        "-j",
        "DNAT",
        "--to-destination",
        "172.17.0.2:80",
    ]);
    // Short conntrack timeouts, in the host namespace only (per-netns
    // sysctls): closed connections are destroyed within seconds.
    host.exec(
        "sysctl",
        &[
            "-qw",
            "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
            "net.netfilter.nf_conntrack_icmp_timeout=2",
        ],
    );
    Bed {
        host,
        container,
        outside,
    }
}

/// A TCP server inside `ns` on `addr`: accepts one connection, reads it to
/// its end, answers and closes. Returns once it listens.
fn serve_once(ns: &NetNs, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let (ready, listening) = mpsc::channel();
    let server = ns.spawn(move || {
        let listener = TcpListener::bind(addr).expect("bind the server");
        ready.send(()).expect("tell the test");
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        stream.read_to_end(&mut request).expect("read the request");
        stream.write_all(b"bye").expect("answer");
    });
    listening
        .recv_timeout(Duration::from_secs(5))
        .expect("server listening");
    server
}

/// A client inside `ns`: connects to `to`, says hello, closes its side,
/// reads the answer to its end. Returns when it connected (just before the
/// SYN) and its local address.
fn client(ns: &NetNs, to: SocketAddr) -> (Instant, SocketAddr) {
    ns.spawn(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
        let local = stream.local_addr().expect("local address");
        stream.write_all(b"hello").expect("send");
        stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
        assert_eq!(answer, b"bye");
        (started, local)
    })
    .join()
    .expect("client thread")
}

/// What the watcher threads report.
enum Report {
    Ready(WatcherCounters, usize),
    Failed(String),
    Event(Instant, NatEvent),
    Entry(Instant, conntrack::Conntrack),
    Done(WatcherCounters),
}

/// Runs a watcher inside `ns` until `stop`: NAT events (`raw` false) or
/// every entry, with UPDATE events too (`raw` true).
fn watch(ns: &NetNs, raw: bool, stop: Arc<AtomicBool>) -> mpsc::Receiver<Report> {
    let (tx, rx) = mpsc::channel();
    ns.spawn(move || {
        let config = WatcherConfig {
            updates: raw,
            ..WatcherConfig::default()
        };
        let mut watcher = match ConntrackWatcher::with_config(config) {
            Ok(watcher) => watcher,
            Err(e) => {
                let _ = tx.send(Report::Failed(e.to_string()));
                return;
            }
        };
        let _ = tx.send(Report::Ready(watcher.counters(), watcher.receive_buffer()));
        let tick = Some(Duration::from_millis(50));
        while !stop.load(Ordering::Relaxed) {
            let report = if raw {
                watcher
                    .next_entry(tick)
                    .map(|e| e.map(|e| Report::Entry(Instant::now(), e)))
            } else {
                watcher
                    .next_event(tick)
                    .map(|e| e.map(|e| Report::Event(Instant::now(), e)))
            };
            match report {
                Ok(Some(report)) => {
                    if tx.send(report).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Report::Failed(e.to_string()));
                    return;
                }
            }
        }
        let _ = tx.send(Report::Done(watcher.counters()));
    });
    rx
}

fn status_names(status: Option<u32>) -> String {
    const NAMES: [&str; 15] = [
        "EXPECTED",
        "SEEN_REPLY",
        "ASSURED",
        "CONFIRMED",
        "SRC_NAT",
        "DST_NAT",
        "SEQ_ADJUST",
        "SRC_NAT_DONE",
        "DST_NAT_DONE",
        "DYING",
        "FIXED_TIMEOUT",
        "TEMPLATE",
        "UNTRACKED",
        "HELPER",
        "OFFLOAD",
    ];
    let Some(status) = status else {
        return "no status".into();
    };
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| status & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn watcher_reports_masquerade_dnat_and_icmp_bindings_and_their_release() {
    if !privileged("watcher_reports_masquerade_dnat_and_icmp_bindings_and_their_release") {
        return;
    }
    if !have("iptables") || !have("sysctl") || !have("ping") {
        println!("skipped: needs iptables, sysctl and ping");
        return;
    }
    let root_time_wait = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait").ok();
    let bed = build_bed();
    // A connection opened before any watcher: only the initial dump knows it.
    let early_server = serve_once(&bed.outside, "198.18.0.1:5006".parse().unwrap());
    let (close_early, early_close) = mpsc::channel::<()>();
    let (early_tx, early_rx) = mpsc::channel();
    let early_client = bed.container.spawn(move || {
        let to: SocketAddr = "198.18.0.1:5006".parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect early");
        early_tx
            .send(stream.local_addr().expect("local address"))
            .expect("tell the test");
        let _ = early_close.recv();
        stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
    });
    let early_local = early_rx.recv_timeout(Duration::from_secs(5)).expect("early connection");
    let early = NatBinding {
        container: tcp(ep([172, 17, 0, 2], early_local.port()), ep([198, 18, 0, 1], 5006)),
        public: tcp(ep([198, 18, 0, 2], early_local.port()), ep([198, 18, 0, 1], 5006)),
        kind: NatKind::Source,
        id: None,
        zone: None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let events = watch(&bed.host, false, stop.clone());
    let entries = watch(&bed.host, true, stop.clone());
    for (name, rx) in [("events", &events), ("entries", &entries)] {
        match rx.recv_timeout(Duration::from_secs(10)).expect("watcher started") {
            Report::Ready(counters, rcvbuf) => {
                println!("{name} watcher open: receive buffer {rcvbuf} bytes, initial dump {counters:?}")
            }
            Report::Failed(reason) => panic!("watcher failed in the host namespace: {reason}"),
            _ => panic!("unexpected first report"),
        }
    }
    // The sysctls are the host namespace's own.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait").ok(),
        root_time_wait,
        "the root namespace's timeout changed"
    );

    // Outbound: container -> outside, MASQUERADEd.
    let outbound_server = serve_once(&bed.outside, "198.18.0.1:5005".parse().unwrap());
    let (out_started, out_local) = client(&bed.container, "198.18.0.1:5005".parse().unwrap());
    outbound_server.join().expect("outside server");
    // Inbound: outside -> published port 8080, DNATed to the container's 80.
    let inbound_server = serve_once(&bed.container, "0.0.0.0:80".parse().unwrap());
    let (in_started, in_local) = client(&bed.outside, "198.18.0.2:8080".parse().unwrap());
    inbound_server.join().expect("container server");
    // ICMP echo from the container.
    let ping_started = Instant::now();
    bed.container.exec("ping", &["-c", "1", "-W", "2", "198.18.0.1"]);
    close_early.send(()).expect("close the early connection");
    early_client.join().expect("early client");
    early_server.join().expect("early server");

    let masquerade = NatBinding {
        container: tcp(ep([172, 17, 0, 2], out_local.port()), ep([198, 18, 0, 1], 5005)),
        public: tcp(ep([198, 18, 0, 2], out_local.port()), ep([198, 18, 0, 1], 5005)),
        kind: NatKind::Source,
        id: None,
        zone: None,
    };
    let dnat = NatBinding {
        container: tcp(ep([198, 18, 0, 1], in_local.port()), ep([172, 17, 0, 2], 80)),
        public: tcp(ep([198, 18, 0, 1], in_local.port()), ep([198, 18, 0, 2], 8080)),
        kind: NatKind::Destination,
        id: None,
        zone: None,
    };
    let same = |a: &NatBinding, b: &NatBinding| (a.container, a.public, a.kind) == (b.container, b.public, b.kind);

    let mut bound: Vec<(Instant, NatBinding)> = Vec::new();
    let mut released: Vec<(Instant, NatBinding)> = Vec::new();
    let give_up = Instant::now() + DEADLINE;
    let complete = |bound: &[(Instant, NatBinding)], released: &[(Instant, NatBinding)]| {
        let icmp_released = released.iter().any(|(_, b)| b.container.protocol == 1);
        [&masquerade, &dnat]
            .iter()
            .all(|want| released.iter().any(|(_, b)| same(b, want)) && bound.iter().any(|(_, b)| same(b, want)))
            && icmp_released
    };
    // Expired entries are destroyed by conntrack's garbage collector, which
    // here ran some 30 s later; a dump of the table evicts them at once
    // (ctnetlink kills the expired entries it walks over). Once every
    // timeout ran out, one dump, as a resync or `conntrack -L` would do.
    let all_closed = Instant::now();
    let reap_after = Duration::from_millis(2500);
    let mut reaped_at = None;
    while !complete(&bound, &released) && Instant::now() < give_up {
        if reaped_at.is_none() && all_closed.elapsed() >= reap_after {
            reaped_at = Some(Instant::now());
            let one_dump = bed.host.spawn(|| ConntrackWatcher::open().map(|w| w.counters()));
            let counters = one_dump
                .join()
                .expect("dump thread")
                .expect("dump in the host namespace");
            println!("reaping dump after {reap_after:?}: {} entries", counters.dump_entries);
        }
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(Report::Event(at, NatEvent::Bound(b))) => bound.push((at, b)),
            Ok(Report::Event(at, NatEvent::Released(b))) => released.push((at, b)),
            Ok(Report::Failed(reason)) => panic!("watcher: {reason}"),
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("watcher thread gone: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut event_counters = None;
    while let Ok(report) = events.recv_timeout(Duration::from_secs(2)) {
        if let Report::Done(counters) = report {
            event_counters = Some(counters);
            break;
        }
    }
    let mut raw = Vec::new();
    while let Ok(report) = entries.recv_timeout(Duration::from_secs(2)) {
        match report {
            Report::Entry(at, entry) => raw.push((at, entry)),
            Report::Done(counters) => {
                println!("entries watcher counters: {counters:?}");
                break;
            }
            _ => {}
        }
    }
    let first = out_started.min(in_started);
    println!("what the kernel sent (all entries, UPDATE included):");
    for (at, entry) in &raw {
        println!(
            "  +{:>8.3} ms {:?} {} -> reply {} [{}]",
            at.saturating_duration_since(first).as_secs_f64() * 1e3,
            entry.kind,
            entry.orig.flow_tuple(),
            entry.reply.flow_tuple(),
            status_names(entry.status)
        );
    }
    println!("events watcher counters: {event_counters:?}");
    for (_, b) in &bound {
        println!("  Bound    {:?} container {} public {}", b.kind, b.container, b.public);
    }
    for (_, b) in &released {
        println!("  Released {:?} container {} public {}", b.kind, b.container, b.public);
    }

    for (want, started, what) in [(&masquerade, out_started, "MASQUERADE"), (&dnat, in_started, "DNAT")] {
        let (bound_at, got) = bound
            .iter()
            .find(|(_, b)| same(b, want))
            .unwrap_or_else(|| panic!("no Bound for {what} {want:?}; got {bound:?}"));
        assert!(got.id.is_some(), "conntrack reports CTA_ID");
        let (released_at, _) = released
            .iter()
            .find(|(_, b)| same(b, want))
            .unwrap_or_else(|| panic!("no Released for {what} within {DEADLINE:?}"));
        assert!(released_at > bound_at, "{what}: Released before Bound");
        println!(
            "{what}: Bound {:.3} ms after connect(), Released {:.3} s after connect() ({})",
            bound_at.saturating_duration_since(started).as_secs_f64() * 1e3,
            released_at.saturating_duration_since(started).as_secs_f64(),
            match reaped_at {
                Some(at) if at <= *released_at => format!(
                    "{:.3} ms after the reaping dump",
                    released_at.saturating_duration_since(at).as_secs_f64() * 1e3
                ),
                _ => "by the garbage collector".to_string(),
            }
        );
    }
    // Each connection is bound once (by its NEW event) and released once.
    for want in [&masquerade, &dnat] {
        assert_eq!(bound.iter().filter(|(_, b)| same(b, want)).count(), 1);
        assert_eq!(released.iter().filter(|(_, b)| same(b, want)).count(), 1);
    }
    // The connection older than the watcher came from the initial dump.
    assert_eq!(
        bound.iter().filter(|(_, b)| same(b, &early)).count(),
        1,
        "the initial dump binds the connection opened before the watcher"
    );
    println!(
        "connection older than the watcher: Bound by the initial dump; {}",
        if released.iter().any(|(_, b)| same(b, &early)) {
            "Released too"
        } else {
            "never Released (its entry was created without an event cache: nf_conntrack_events=2)"
        }
    );
    let (ping_bound_at, icmp) = bound
        .iter()
        .find(|(_, b)| b.container.protocol == 1)
        .unwrap_or_else(|| panic!("no Bound for the ICMP echo"));
    assert_eq!(icmp.kind, NatKind::Source);
    assert_eq!(icmp.container.src.addr, ep([172, 17, 0, 2], 0).addr);
    assert_eq!(icmp.container.dst.addr, ep([198, 18, 0, 1], 0).addr);
    assert_eq!(icmp.public.src.addr, ep([198, 18, 0, 2], 0).addr);
    assert_eq!(icmp.public.dst, icmp.container.dst);
    assert_eq!(
        icmp.container.src.port, icmp.container.dst.port,
        "the echo id stands in for both ports"
    );
    assert_eq!(icmp.public.src.port, icmp.public.dst.port);
    println!(
        "ICMP echo (id {}): Bound {:.3} ms after ping started",
        icmp.container.src.port,
        ping_bound_at.saturating_duration_since(ping_started).as_secs_f64() * 1e3
    );
    // The NEW events carried the NAT already: the NEW entry's reply tuple
    // is the translated one.
    let new_masquerade = raw
        .iter()
        .find(|(_, e)| e.kind == CtKind::New && e.orig.flow_tuple() == masquerade.container)
        .expect("a NEW event for the outbound connection");
    assert_eq!(new_masquerade.1.reply.flow_tuple().reversed(), masquerade.public);
    let counters = event_counters.expect("events watcher stopped");
    assert_eq!(counters.overflows, 0);
    assert_eq!(counters.malformed, 0);
    assert!(counters.bound >= 4 && counters.released >= 3, "{counters:?}");
    assert!(counters.dump_entries >= 1, "{counters:?}");
    drop(bed);
}

/// Set in the environment of the unprivileged child run of the test below.
const CHILD: &str = "CONNTRACK_TEST_UNPRIVILEGED_CHILD";

#[test]
fn without_privilege_conntrack_is_unavailable() {
    let open = || match ConntrackWatcher::open() {
        Err(ConntrackError::Unavailable(reason)) => Ok(reason),
        Err(other) => Err(format!("not Unavailable: {other}")),
        Ok(_) => Err("opened".to_string()),
    };
    if std::env::var_os(CHILD).is_some() {
        // The child: report what opening gave.
        match open() {
            Ok(reason) => println!("UNAVAILABLE: {reason}"),
            Err(other) => println!("UNEXPECTED: {other}"),
        }
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0);
    if !root {
        // Already without CAP_NET_ADMIN: check it here.
        let reason = open().expect("unprivileged open is Unavailable");
        println!("unprivileged: {reason}");
        return;
    }
    if !privileged("without_privilege_conntrack_is_unavailable") {
        return;
    }
    if !have("setpriv") {
        println!("skipped without_privilege_conntrack_is_unavailable: needs setpriv (util-linux)");
        return;
    }
    // Run this very test again as nobody, without capabilities, inside a
    // namespace of its own.
    let ns = NetNs::new("ctnopriv");
    let exe = std::env::current_exe().expect("test binary");
    let output = ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(exe)
        .args([
            "--exact",
            "without_privilege_conntrack_is_unavailable",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the unprivileged child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The harness prints the test's name on the same line.
    let line = stdout
        .lines()
        .find_map(|l| {
            l.find("UNAVAILABLE: ")
                .or_else(|| l.find("UNEXPECTED: "))
                .map(|at| &l[at..])
        })
        .unwrap_or_else(|| panic!("child said nothing: {stdout}"));
    println!("unprivileged child: {line}");
    assert!(line.starts_with("UNAVAILABLE: "), "{line}");
    assert!(line.contains("CAP_NET_ADMIN"), "{line}");
}

#[test]
fn an_overflow_is_counted_and_resynced_by_a_dump() {
    if !privileged("an_overflow_is_counted_and_resynced_by_a_dump") {
        return;
    }
    if !have("iptables") || !have("sysctl") {
        println!("skipped: needs iptables and sysctl");
        return;
    }
    const FLOWS: u16 = 300;
    let bed = build_bed();
    // A watcher with the smallest receive buffer, that reads nothing while
    // the container opens FLOWS UDP flows (each a NEW event, MASQUERADEd).
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let watcher = bed.host.spawn(move || {
        let config = WatcherConfig {
            receive_buffer: 4096,
            ..WatcherConfig::default()
        };
        let mut watcher = ConntrackWatcher::with_config(config).expect("watcher in the host namespace");
        // Drain the (empty) initial dump.
        while watcher
            .next_event(Some(Duration::from_millis(100)))
            .expect("read")
            .is_some()
        {}
        ready_tx.send(watcher.receive_buffer()).expect("tell the test");
        go_rx.recv().expect("go");
        let mut bound = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            match watcher.next_event(Some(Duration::from_millis(200))).expect("read") {
                Some(NatEvent::Bound(b)) => bound.push(b),
                Some(NatEvent::Released(_)) => {}
                None if !watcher.dump_running() => break,
                None => {}
            }
        }
        (bound, watcher.counters())
    });
    let rcvbuf = ready_rx.recv_timeout(Duration::from_secs(10)).expect("watcher ready");
    let ports = bed
        .container
        .spawn(|| {
            (0..FLOWS)
                .map(|_| {
                    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
                    socket.send_to(b"x", "198.18.0.1:9").expect("send");
                    socket.local_addr().expect("local").port()
                })
                .collect::<Vec<u16>>()
        })
        .join()
        .expect("sender");
    // Let the events pile up in the small buffer.
    std::thread::sleep(Duration::from_millis(300));
    go_tx.send(()).expect("go");
    let (bound, counters) = watcher.join().expect("watcher thread");
    println!("receive buffer {rcvbuf} bytes, {FLOWS} UDP flows: {counters:?}");
    assert!(counters.overflows >= 1, "no overflow: {counters:?}");
    assert!(counters.resyncs >= counters.overflows, "{counters:?}");
    assert!(counters.dumps_completed >= 2, "no resync dump finished: {counters:?}");
    assert!(counters.dump_entries >= u64::from(FLOWS), "{counters:?}");
    for port in ports {
        let container = FlowTuple {
            protocol: 17,
            src: ep([172, 17, 0, 2], port),
            dst: ep([198, 18, 0, 1], 9),
        };
        assert!(
            bound
                .iter()
                .any(|b| b.container == container && b.public.src.addr == ep([198, 18, 0, 2], 0).addr),
            "flow from port {port} not bound after the resync"
        );
    }
}
