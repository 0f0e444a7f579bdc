//! Kernel tests of discovery in throw-away network namespaces: a small
//! Docker-like host (bridge, container veths whose peers live in other
//! namespaces, an uplink veth with the default route) with the watcher
//! running inside the host namespace. They check the initial dump's roles
//! and peer namespace ids against iproute2, the events of a container's
//! veth life (added, mastered, up, renamed, deleted, moved away), the
//! resync after the kernel drops notifications, container attribution by
//! namespace name and pid, and print how fast an added link is reported.
//! Each skips with a printed reason without root; every namespace is a
//! `testbed::netns::NetNs` that deletes itself on every exit path. Nothing
//! touches the root namespace's interfaces.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use discovery::{Attributor, Inventory, InventoryChange, LinkEvent, LinkWatcher, TapRole, WatcherConfig, WatcherStats};
use testbed::netns::{privileged, NetNs};

/// Longest wait for one expected event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Quiet time after which the watcher is taken to have said everything.
const SETTLE: Duration = Duration::from_millis(300);

/// What the watcher thread sends.
enum Report {
    Ready,
    Event(Instant, LinkEvent),
}

/// A watcher running on a thread inside a namespace, its events mirrored
/// into an [`Inventory`] on the test's thread.
struct Watch {
    reports: Receiver<Report>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<WatcherStats>>>,
    inventory: Inventory,
    seen: Vec<LinkEvent>,
}

impl Watch {
    fn start(ns: &NetNs, config: WatcherConfig) -> Self {
        let (tx, reports) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = ns.spawn(move || {
            let mut watcher = LinkWatcher::with_config(config)?;
            let _ = tx.send(Report::Ready);
            while !stopped.load(Ordering::Relaxed) {
                if let Some(event) = watcher.next_event(Some(Duration::from_millis(50)))? {
                    if tx.send(Report::Event(Instant::now(), event)).is_err() {
                        break;
                    }
                }
            }
            Ok(watcher.stats())
        });
        let mut watch = Self {
            reports,
            stop,
            thread: Some(thread),
            inventory: Inventory::new(),
            seen: Vec::new(),
        };
        match watch.reports.recv_timeout(EVENT_TIMEOUT) {
            Ok(Report::Ready) => {}
            _ => panic!("watcher did not start: {:?}", watch.finish()),
        }
        watch
    }

    /// The next event within `timeout`, applied to the inventory.
    fn next(&mut self, timeout: Duration) -> Option<(Instant, LinkEvent, Vec<InventoryChange>)> {
        match self.reports.recv_timeout(timeout) {
            Ok(Report::Event(at, event)) => {
                let changes = self.inventory.apply(&event);
                self.seen.push(event.clone());
                Some((at, event, changes))
            }
            Ok(Report::Ready) => unreachable!("Ready is sent once"),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("watcher thread ended: {:?}", self.finish()),
        }
    }

    /// Waits for the first event `wanted` accepts, applying the others.
    fn expect(
        &mut self,
        what: &str,
        wanted: impl Fn(&LinkEvent) -> bool,
    ) -> (Instant, LinkEvent, Vec<InventoryChange>) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let first = self.seen.len();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next(remaining) {
                Some(found) if wanted(&found.1) => return found,
                Some(_) => {}
                None => panic!("no {what} within {EVENT_TIMEOUT:?}; saw {:#?}", &self.seen[first..]),
            }
        }
    }

    /// Applies events until none came for [`SETTLE`].
    fn settle(&mut self) -> Vec<LinkEvent> {
        let first = self.seen.len();
        while self.next(SETTLE).is_some() {}
        self.seen[first..].to_vec()
    }

    fn role(&self, name: &str) -> Option<TapRole> {
        let link = self.inventory.by_name(name)?;
        self.inventory.role(link.ifindex)
    }

    fn ifindex(&self, name: &str) -> u32 {
        self.inventory
            .by_name(name)
            .unwrap_or_else(|| panic!("{name} not in the inventory"))
            .ifindex
    }

    fn finish(&mut self) -> Option<io::Result<WatcherStats>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().expect("watcher thread panicked"))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `ip -j link show` of a namespace: name -> the JSON object.
fn ip_links(ns: &NetNs) -> BTreeMap<String, serde_json::Value> {
    let output = ns.ip(&["-j", "link", "show"]);
    let links: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("ip -j output");
    links
        .into_iter()
        .map(|l| (l["ifname"].as_str().expect("ifname").to_owned(), l))
        .collect()
}

/// A Docker-like host: `docker0`; `vethc1` created with its peer `eth0`
/// already in c1 (as Docker does); `vethc2` created in the host and its peer
/// moved to c2 afterwards; uplink `eth0`, a veth to `out`, with the default
/// route. The guards drop in reverse order, the host last.
struct Host {
    host: NetNs,
    c1: NetNs,
    c2: NetNs,
    out: NetNs,
}

impl Host {
    fn build() -> Self {
        let host = NetNs::new("host");
        let c1 = NetNs::new("c1");
        let c2 = NetNs::new("c2");
        let out = NetNs::new("out");
        host.ip(&["link", "add", "docker0", "type", "bridge"]);
        host.ip(&["link", "set", "docker0", "up"]);
        host.ip(&[
            "link",
            "add",
            "vethc1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            c1.name(),
        ]);
        host.ip(&["link", "add", "vethc2", "type", "veth", "peer", "name", "peer2"]);
        host.ip(&["link", "set", "peer2", "netns", c2.name()]);
        c2.ip(&["link", "set", "peer2", "name", "eth0"]);
        for (veth, c) in [("vethc1", &c1), ("vethc2", &c2)] {
            host.ip(&["link", "set", veth, "master", "docker0"]);
            host.ip(&["link", "set", veth, "up"]);
            c.ip(&["link", "set", "eth0", "up"]);
        }
        out.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.name(),
        ]);
        out.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
        out.ip(&["link", "set", "eth0", "up"]);
        host.ip(&["addr", "add", "198.18.0.2/24", "dev", "eth0"]);
        host.ip(&["link", "set", "eth0", "up"]);
        host.ip(&["route", "add", "default", "via", "198.18.0.1"]);
        Self { host, c1, c2, out }
    }
}

#[test]
fn initial_dump_gives_roles_and_peer_namespaces() {
    if !privileged("initial_dump_gives_roles_and_peer_namespaces") {
        return;
    }
    let bed = Host::build();
    let mut watch = Watch::start(&bed.host, WatcherConfig::default());
    let events = watch.settle();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LinkEvent::DefaultRoutesChanged { .. })),
        "{events:#?}"
    );

    assert_eq!(watch.role("docker0"), Some(TapRole::Bridge));
    assert_eq!(watch.role("vethc1"), Some(TapRole::ContainerVeth));
    assert_eq!(watch.role("vethc2"), Some(TapRole::ContainerVeth));
    assert_eq!(watch.role("eth0"), Some(TapRole::Uplink));
    assert_eq!(watch.role("lo"), None, "loopback has no role");
    assert!(watch.inventory.by_name("lo").is_some_and(|l| l.loopback));
    assert_eq!(
        watch.inventory.default_route_ifindexes(),
        &BTreeSet::from([watch.ifindex("eth0")])
    );

    // Every field against iproute2's view.
    let ip = ip_links(&bed.host);
    let names: BTreeSet<&str> = watch.inventory.links().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ip.keys().map(String::as_str).collect());
    let docker0 = watch.ifindex("docker0");
    for name in ["vethc1", "vethc2", "eth0"] {
        let link = watch.inventory.by_name(name).unwrap();
        let json = &ip[name];
        assert_eq!(u64::from(link.ifindex), json["ifindex"].as_u64().unwrap(), "{name}");
        assert_eq!(link.kind.as_deref(), Some("veth"), "{name}");
        assert_eq!(link.mtu, 1500);
        assert_eq!(link.mac_string().as_deref(), json["address"].as_str(), "{name}");
        assert_eq!(
            link.link_netnsid.map(i64::from),
            json["link_netnsid"].as_i64(),
            "{name}: {json}"
        );
        assert_eq!(link.peer_ifindex.map(u64::from), json["link_index"].as_u64(), "{name}");
        assert!(link.admin_up, "{name}");
    }
    for veth in ["vethc1", "vethc2"] {
        assert_eq!(watch.inventory.by_name(veth).unwrap().master, Some(docker0));
    }
    let nsid = |name: &str| watch.inventory.by_name(name).unwrap().link_netnsid.unwrap();
    let (c1, c2, out) = (nsid("vethc1"), nsid("vethc2"), nsid("eth0"));
    assert!(c1 != c2 && c1 != out && c2 != out);
    // The peer index is the peer's index in its own namespace.
    let c1_eth0 = ip_links(&bed.c1)["eth0"]["ifindex"].as_u64().unwrap();
    assert_eq!(
        watch.inventory.by_name("vethc1").unwrap().peer_ifindex.map(u64::from),
        Some(c1_eth0)
    );
    assert!(watch.inventory.by_name("docker0").unwrap().is_bridge());

    // Attribution: the peers' namespaces by their /var/run/netns names, and
    // a process running in c2 by its pid.
    let mut sleeper = bed.c2.command("sleep").arg("30").spawn().expect("spawn sleep in c2");
    let pid = sleeper.id();
    let c2_ino = std::fs::metadata(bed.c2.path()).unwrap().ino();
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino()).ok() != Some(c2_ino) {
        assert!(Instant::now() < deadline, "sleep never entered c2");
        std::thread::sleep(Duration::from_millis(5));
    }
    let scan = bed.host.spawn(|| Attributor::new()?.scan()).join().unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let scan = scan.expect("attribution scan");
    let info = |nsid: i32| {
        scan.get(&nsid)
            .unwrap_or_else(|| panic!("nsid {nsid} not found in {scan:#?}"))
    };
    assert_eq!(info(c1).netns.as_deref(), Some(bed.c1.name()));
    assert_eq!(info(c1).netns_path.as_deref(), Some(bed.c1.path().as_path()));
    assert_eq!(info(c1).pid, None, "nothing runs in c1");
    assert_eq!(info(c2).netns.as_deref(), Some(bed.c2.name()));
    assert_eq!(info(c2).pid, Some(pid));
    assert_eq!(info(out).netns.as_deref(), Some(bed.out.name()));
    // The sleeper's container id is whatever its cgroup says (none on a
    // plain host, the outer container's inside one).
    let cgroup_id = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| discovery::container_id_from_cgroup(&c))
        .map(|c| c.id);
    assert_eq!(info(c2).id, cgroup_id);
    // Through a link, as a caller would.
    let vethc1 = watch.inventory.by_name("vethc1").unwrap().clone();
    let attributed = bed
        .host
        .spawn(move || Attributor::new()?.attribute(&vethc1))
        .join()
        .unwrap();
    assert_eq!(
        attributed.expect("attribute").and_then(|i| i.netns),
        Some(bed.c1.name().to_owned())
    );

    let stats = watch.finish().unwrap().expect("watcher ran");
    assert_eq!((stats.overflows, stats.undecodable), (0, 0), "{stats:?}");
}

#[test]
fn container_veth_life_gives_added_changed_removed() {
    if !privileged("container_veth_life_gives_added_changed_removed") {
        return;
    }
    let host = NetNs::new("host");
    let container = NetNs::new("ctr");
    host.ip(&["link", "add", "docker0", "type", "bridge"]);
    host.ip(&["link", "set", "docker0", "up"]);
    let mut watch = Watch::start(&host, WatcherConfig::default());
    watch.settle();
    let docker0 = watch.ifindex("docker0");

    // Docker's order: created with the peer in the container, no master,
    // down; then master; then up.
    host.ip(&[
        "link",
        "add",
        "vethx",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        container.name(),
    ]);
    let (_, event, changes) = watch.expect(
        "Added(vethx)",
        |e| matches!(e, LinkEvent::Added(l) if l.name == "vethx"),
    );
    let LinkEvent::Added(added) = event else { unreachable!() };
    assert_eq!(added.master, None);
    assert!(!added.admin_up);
    assert!(added.link_netnsid.is_some(), "{added:?}");
    assert_eq!(
        changes,
        [InventoryChange::Appeared {
            ifindex: added.ifindex,
            name: "vethx".into(),
            role: TapRole::Other
        }]
    );

    host.ip(&["link", "set", "vethx", "master", "docker0"]);
    let (_, _, changes) = watch.expect(
        "Changed(vethx) with master",
        |e| matches!(e, LinkEvent::Changed(l) if l.name == "vethx" && l.master == Some(docker0)),
    );
    assert_eq!(
        changes,
        [InventoryChange::RoleChanged {
            ifindex: added.ifindex,
            name: "vethx".into(),
            from: TapRole::Other,
            to: TapRole::ContainerVeth
        }]
    );

    host.ip(&["link", "set", "vethx", "up"]);
    watch.expect(
        "Changed(vethx) up",
        |e| matches!(e, LinkEvent::Changed(l) if l.name == "vethx" && l.admin_up),
    );
    assert_eq!(watch.role("vethx"), Some(TapRole::ContainerVeth));

    host.ip(&["link", "set", "vethx", "name", "vethy"]);
    let (_, _, changes) = watch.expect(
        "Changed(vethy) renamed",
        |e| matches!(e, LinkEvent::Changed(l) if l.ifindex == added.ifindex && l.name == "vethy"),
    );
    assert!(
        changes.contains(&InventoryChange::Renamed {
            ifindex: added.ifindex,
            from: "vethx".into(),
            to: "vethy".into()
        }),
        "{changes:?}"
    );

    // Leaving the bridge is an AF_BRIDGE RTM_DELLINK; the link stays.
    host.ip(&["link", "set", "vethy", "nomaster"]);
    let (_, _, changes) = watch.expect(
        "Changed(vethy) without master",
        |e| matches!(e, LinkEvent::Changed(l) if l.ifindex == added.ifindex && l.master.is_none()),
    );
    assert!(changes
        .iter()
        .any(|c| matches!(c, InventoryChange::RoleChanged { to: TapRole::Other, .. })));
    assert!(watch.inventory.link(added.ifindex).is_some());

    host.ip(&["link", "del", "vethy"]);
    let (_, event, changes) = watch.expect("Removed(vethy)", |e| matches!(e, LinkEvent::Removed { .. }));
    assert_eq!(
        event,
        LinkEvent::Removed {
            ifindex: added.ifindex,
            name: "vethy".into()
        }
    );
    assert_eq!(
        changes,
        [InventoryChange::Disappeared {
            ifindex: added.ifindex,
            name: "vethy".into()
        }]
    );

    // Moving a link to another namespace is a removal here.
    host.ip(&["link", "add", "mv0", "type", "veth", "peer", "name", "mv1"]);
    let (_, event, _) = watch.expect("Added(mv0)", |e| matches!(e, LinkEvent::Added(l) if l.name == "mv0"));
    let LinkEvent::Added(mv0) = event else { unreachable!() };
    assert_eq!(mv0.link_netnsid, None, "both ends here");
    host.ip(&["link", "set", "mv0", "netns", container.name()]);
    let (_, event, _) = watch.expect(
        "Removed(mv0)",
        |e| matches!(e, LinkEvent::Removed { name, .. } if name == "mv0"),
    );
    assert_eq!(
        event,
        LinkEvent::Removed {
            ifindex: mv0.ifindex,
            name: "mv0".into()
        }
    );
    watch.settle();
    let ip: BTreeSet<String> = ip_links(&host).into_keys().collect();
    let known: BTreeSet<String> = watch.inventory.links().map(|l| l.name.clone()).collect();
    assert_eq!(known, ip);
    let stats = watch.finish().unwrap().expect("watcher ran");
    assert_eq!(stats.overflows, 0);
}

#[test]
fn added_event_latency() {
    if !privileged("added_event_latency") {
        return;
    }
    const ITERATIONS: usize = 50;
    let host = NetNs::new("host");
    let mut watch = Watch::start(&host, WatcherConfig::default());
    watch.settle();
    // Signed microseconds from the command's completion (an event before it
    // is negative) and from its start.
    let mut from_completion = Vec::with_capacity(ITERATIONS);
    let mut from_start = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS {
        let name = format!("lat{i}");
        let peer = format!("latp{i}");
        let started = Instant::now();
        host.ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        let completed = Instant::now();
        let (at, _, _) = watch.expect("Added", |e| matches!(e, LinkEvent::Added(l) if l.name == name));
        let signed = |from: Instant| {
            if at >= from {
                at.duration_since(from).as_micros() as i64
            } else {
                -(from.duration_since(at).as_micros() as i64)
            }
        };
        from_completion.push(signed(completed));
        from_start.push(signed(started));
        host.ip(&["link", "del", &name]);
        watch.expect(
            "Removed",
            |e| matches!(e, LinkEvent::Removed { name: n, .. } if *n == name),
        );
    }
    let percentile = |v: &mut Vec<i64>, p: usize| {
        v.sort_unstable();
        v[(v.len() * p / 100).min(v.len() - 1)]
    };
    println!(
        "RTM_NEWLINK -> LinkEvent::Added over {ITERATIONS} veth adds: from `ip link add` completion p50 {} us, p99 {} us; from its start p50 {} us, p99 {} us",
        percentile(&mut from_completion, 50),
        percentile(&mut from_completion, 99),
        percentile(&mut from_start, 50),
        percentile(&mut from_start, 99),
    );
}

#[test]
fn overflow_resyncs_to_the_kernels_state() {
    if !privileged("overflow_resyncs_to_the_kernels_state") {
        return;
    }
    let host = NetNs::new("host");
    for i in 0..10 {
        host.ip(&[
            "link",
            "add",
            &format!("d{i}"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("p{i}"),
        ]);
    }
    let ns = host.name().to_owned();
    // Everything on one thread in the namespace, so the watcher reads
    // nothing while the burst happens.
    let outcome = host
        .spawn(move || {
            let config = WatcherConfig {
                receive_buffer: 4096,
                ..WatcherConfig::default()
            };
            let mut watcher = LinkWatcher::with_config(config)?;
            let mut inventory = Inventory::new();
            let mut events = Vec::new();
            while let Some(event) = watcher.next_event(Some(Duration::ZERO))? {
                inventory.apply(&event);
            }
            // The burst: removals, a rename, 60 new pairs.
            let mut batch = String::new();
            for i in 0..5 {
                batch += &format!("link del d{i}\n");
            }
            batch += "link set d5 name r5\n";
            for i in 0..60 {
                batch += &format!("link add n{i} type veth peer name q{i}\n");
            }
            let file = std::env::temp_dir().join(format!("discovery-overflow-{}.batch", std::process::id()));
            std::fs::write(&file, batch)?;
            let status = std::process::Command::new("ip")
                .args(["-n", &ns, "-batch"])
                .arg(&file)
                .status()?;
            let _ = std::fs::remove_file(&file);
            assert!(status.success(), "ip -batch failed");
            while let Some(event) = watcher.next_event(Some(SETTLE))? {
                inventory.apply(&event);
                events.push(event);
            }
            Ok::<_, io::Error>((watcher.stats(), inventory, events))
        })
        .join()
        .expect("watcher thread");
    let (stats, inventory, events) = outcome.expect("watcher");
    assert!(
        stats.overflows >= 1,
        "the 8 KiB buffer should have overflowed: {stats:?}"
    );
    assert!(stats.resyncs >= 1);
    assert!(events.contains(&LinkEvent::Resynced), "{events:#?}");
    // The inventory fed only by events is the kernel's state.
    let ip = ip_links(&host);
    let known: BTreeMap<String, u32> = inventory.links().map(|l| (l.name.clone(), l.ifindex)).collect();
    let expected: BTreeMap<String, u32> = ip
        .iter()
        .map(|(name, json)| (name.clone(), json["ifindex"].as_u64().unwrap() as u32))
        .collect();
    assert_eq!(known, expected);
    assert!(inventory.by_name("d0").is_none() && inventory.by_name("d5").is_none());
    assert!(inventory.by_name("r5").is_some() && inventory.by_name("q59").is_some());
    println!(
        "overflow test: {} overflows, {} resyncs, {} events after the burst",
        stats.overflows,
        stats.resyncs,
        events.len()
    );
}
