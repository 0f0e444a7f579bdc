//! Live dedup in the test bed: `ringsieve run` on every interface of the
//! bed's host namespace (docker0, the container veths, the uplink) while the
//! traffic cases run, against tcpdump inside each container. The packets it
//! delivers must be exactly the IPv4 packets the containers sent and
//! received, each once, byte for byte as the containers saw them (so in the
//! containers' address space, never the uplink's NAT copy), and its counters
//! must account for every copy it captured. The same check that the
//! recorded fixtures pass offline (tests/dedup_fixtures.rs), here live.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use capture_file::{CaptureFile, LinkKind};

use crate::netns::privileged;
use crate::process::{in_namespace, tcpdump, Watched};
use crate::testbed::{one_at_a_time, Bed};

const RINGSIEVE: &str = env!("CARGO_BIN_EXE_ringsieve");

/// IPv4 packets (network layer on) of a capture.
fn ipv4_packets(path: &Path) -> Vec<Vec<u8>> {
    let mut file = CaptureFile::open(path).expect("the capture opens");
    let mut packets = Vec::new();
    while let Some(packet) = file.next_packet().expect("the capture reads") {
        let (ethertype, offset) = match packet.link {
            LinkKind::Ethernet if packet.data.len() >= 14 => {
                (u16::from_be_bytes([packet.data[12], packet.data[13]]), 14)
            }
            LinkKind::LinuxSll(h) | LinkKind::LinuxSll2(h) => (h.protocol, h.payload_offset),
            _ => continue,
        };
        if ethertype == 0x0800 {
            packets.push(packet.data[offset..].to_vec());
        }
    }
    packets
}

/// Whether an IPv4 unicast packet has a container address (172.17.0.0/16,
/// not the bridge's own .1) at either end: the traffic the containers'
/// captures (filtered alike) show.
pub(crate) fn touches_a_container(packet: &[u8]) -> bool {
    let container = |a: &[u8]| a[0] == 172 && a[1] == 17 && a != [172, 17, 0, 1];
    let multicast = packet.len() >= 20 && (224..240).contains(&packet[16]);
    packet.len() >= 20 && !multicast && (container(&packet[12..16]) || container(&packet[16..20]))
}

#[test]
fn run_delivers_each_packet_once_as_the_containers_saw_it() {
    let test = "run_delivers_each_packet_once_as_the_containers_saw_it";
    if !privileged(test) {
        return;
    }
    if Command::new("tcpdump").arg("--version").output().is_err() {
        panic!("tcpdump is needed (scripts/setup.sh installs it)");
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let dir = tempfile::tempdir().unwrap();
    let host_out: PathBuf = dir.path().join("host.pcapng");
    let eve_out: PathBuf = dir.path().join("eve.json");

    let mut containers = Vec::new();
    for n in 1..=3 {
        let file = dir.path().join(format!("c{n}.pcap"));
        // Unicast only: the host's own IGMP reports on docker0 come and go
        // with the bed's timing and touch no container's address.
        let watched = tcpdump(
            &bed.namespace(&format!("c{n}")),
            "eth0",
            "ip and not ip multicast",
            &file,
        );
        containers.push((watched, file));
    }
    let mut command = in_namespace(&bed.namespace("host"), RINGSIEVE);
    command
        .args(["run", "-i", "docker0,vethc1,vethc2,vethc3,eth0", "--workers", "2", "-w"])
        .arg(&host_out)
        .arg("--eve")
        .arg(&eve_out)
        .env("RUST_LOG", "info");
    let mut ringsieve = Watched::spawn(command);
    ringsieve.wait_for("capturing", 5);

    for case in [
        "c2c-tcp",
        "c2c-udp",
        "c2c-icmp",
        "c2h-tcp",
        "c2out-tcp",
        "published-tcp",
        "bulk-out",
    ] {
        println!("{}", bed.traffic(case));
    }
    // Let the last copies reach every ring, then stop in the middle of
    // nothing: SIGTERM drains the rings and releases the holds.
    std::thread::sleep(Duration::from_millis(200));
    let (code, lines) = ringsieve.stop("-TERM");
    let mut container_files = Vec::new();
    for (watched, file) in containers {
        let (_, lines) = watched.stop("-INT");
        let dropped = lines
            .iter()
            .find(|l| l.contains("dropped by kernel"))
            .cloned()
            .unwrap_or_default();
        assert!(
            dropped.starts_with("0 "),
            "tcpdump in a container dropped packets: {lines:?}"
        );
        container_files.push(file);
    }
    drop(bed);

    assert_eq!(code, 0, "ringsieve run exit: {lines:?}");
    let summary: serde_json::Value =
        serde_json::from_str(lines.last().expect("a summary line")).expect("the last line is JSON");
    let dedup = &summary["dedup"];
    let count = |key: &str| dedup[key].as_u64().unwrap_or_else(|| panic!("{key} in {summary}"));
    assert_eq!(
        count("captured"),
        count("delivered") + count("duplicates") + count("malformed"),
        "every copy accounted for: {summary}"
    );
    assert!(
        count("nat_bindings") >= 2,
        "MASQUERADE and DNAT bindings learned: {summary}"
    );
    assert_eq!(count("late_duplicates"), 0, "{summary}");
    assert_eq!(summary["pcap"]["packets_written"], dedup["delivered"], "{summary}");
    // conntrack told of the MASQUERADE and DNAT connections.
    let conntrack = &summary["conntrack"];
    assert_eq!(conntrack["available"], true, "{summary}");
    assert!(conntrack["bound"].as_u64().unwrap_or(0) >= 2, "{summary}");
    let total = &summary["total"];
    assert_eq!(
        total["balanced"], true,
        "captured = delivered + duplicates + malformed + queue drops: {summary}"
    );
    assert_eq!(total["queue_drops"], 0, "{summary}");
    assert_eq!(total["delivered"], dedup["delivered"], "{summary}");

    // What the containers saw, each packet once (a container-to-container
    // packet is in two captures, identical), against what ringsieve
    // delivered that concerns a container.
    let expected = testbed::fixtures::expected_delivered(&container_files).expect("container captures read");
    let delivered: Vec<Vec<u8>> = ipv4_packets(&host_out)
        .into_iter()
        .filter(|p| touches_a_container(p))
        .collect();
    let delivered_set: BTreeSet<&Vec<u8>> = delivered.iter().collect();
    let container: Vec<Vec<u8>> = container_files.iter().flat_map(|f| ipv4_packets(f)).collect();
    let container_set: BTreeSet<&Vec<u8>> = container.iter().collect();
    let describe = |set: std::collections::btree_set::Difference<'_, &Vec<u8>>| -> Vec<String> {
        set.map(|p| {
            format!(
                "{:?} -> {:?} proto {} id {}",
                &p[12..16],
                &p[16..20],
                p[9],
                u16::from_be_bytes([p[4], p[5]])
            )
        })
        .collect()
    };
    let unseen = describe(delivered_set.difference(&container_set));
    let missing = describe(container_set.difference(&delivered_set));
    assert_eq!(
        delivered.len() as u64,
        expected,
        "delivered no container saw: {unseen:?}; seen by a container, not delivered: {missing:?}; {summary}"
    );
    assert!(
        unseen.is_empty() && missing.is_empty(),
        "delivered packets no container saw (e.g. NAT copies): {unseen:?}; container packets not delivered: {missing:?}"
    );

    // The EVE flow records: one per connection that touched a container,
    // with the containers' packet counts, in their address space.
    let frames = testbed::fixtures::distinct_frames(&container_files).expect("container captures read");
    let expected = testbed::fixtures::connections(
        frames
            .iter()
            .map(|(_, frame)| frame.as_slice())
            .filter(|frame| frame.len() > 14 && touches_a_container(&frame[14..])),
    );
    let text = std::fs::read_to_string(&eve_out).expect("the EVE file");
    let mut found = std::collections::BTreeMap::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("EVE line {line:?}: {e}"));
        if event["event_type"] != "flow" {
            continue;
        }
        let (connection, packets) = flow_record_connection(&event);
        let touches = [&connection.1, &connection.2].iter().any(|endpoint| {
            endpoint.starts_with("172.17.") && !endpoint.starts_with("172.17.0.1:") && *endpoint != "172.17.0.1"
        });
        if touches {
            assert!(
                found.insert(connection, packets).is_none(),
                "two records for one connection: {event}"
            );
        }
    }
    assert_eq!(found, expected, "flow records against the containers' connections");
}

/// The connection key (as `testbed::fixtures::connection_key` writes it)
/// and packet count of an EVE flow record.
fn flow_record_connection(event: &serde_json::Value) -> ((String, String, String), u64) {
    let endpoint = |ip: &str, port: Option<u64>| match port {
        Some(port) => format!("{ip}:{port}"),
        None => ip.to_owned(),
    };
    let protocol = event["proto"].as_str().expect("proto").to_owned();
    let a = endpoint(event["src_ip"].as_str().expect("src_ip"), event["src_port"].as_u64());
    let b = endpoint(event["dest_ip"].as_str().expect("dest_ip"), event["dest_port"].as_u64());
    let flow = &event["flow"];
    let packets =
        flow["pkts_toserver"].as_u64().expect("pkts_toserver") + flow["pkts_toclient"].as_u64().expect("pkts_toclient");
    let key = if a <= b { (protocol, a, b) } else { (protocol, b, a) };
    (key, packets)
}

/// With only the uplink and a container veth the NAT'd connections do not
/// cross (c2's), the dedup never sees two copies of them: the uplink's
/// copies reach their containers' flows (c1's 172.17.0.2, the MASQUERADE
/// client and the DNAT server) only through the bindings conntrack feeds.
/// Without that feed, their flow records would be in the uplink's
/// addresses (198.18.0.2).
#[test]
fn conntrack_alone_puts_uplink_copies_in_their_containers_flows() {
    let test = "conntrack_alone_puts_uplink_copies_in_their_containers_flows";
    if !privileged(test) {
        return;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let dir = tempfile::tempdir().unwrap();
    let eve_out: PathBuf = dir.path().join("eve.json");
    let mut command = in_namespace(&bed.namespace("host"), RINGSIEVE);
    command
        .args([
            "run",
            "-i",
            "eth0,vethc2",
            "--workers",
            "1",
            "--stats-interval",
            "0",
            "--eve",
        ])
        .arg(&eve_out)
        .env("RUST_LOG", "info");
    let mut ringsieve = Watched::spawn(command);
    ringsieve.wait_for("capturing", 2);
    // Subscribed to conntrack's events before the first connection: its
    // NEW event is then read before the connection's first uplink copy.
    ringsieve.wait_for("following NAT bindings from conntrack", 1);
    for case in ["c2out-tcp", "published-tcp"] {
        println!("{}", bed.traffic(case));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (code, lines) = ringsieve.stop("-TERM");
    drop(bed);
    assert_eq!(code, 0, "ringsieve run exit: {lines:?}");
    let summary: serde_json::Value =
        serde_json::from_str(lines.last().expect("a summary line")).expect("the last line is JSON");
    let conntrack = &summary["conntrack"];
    assert_eq!(conntrack["available"], true, "{summary}");
    // No copy of these connections crossed two captured interfaces: every
    // binding the dedup has came from conntrack.
    assert_eq!(summary["dedup"]["duplicates"], 0, "{summary}");
    let learned = conntrack["bindings_learned"].as_u64().unwrap_or(0);
    assert!(learned >= 2, "MASQUERADE and DNAT bindings from conntrack: {summary}");
    assert_eq!(summary["dedup"]["nat_bindings"], learned, "{summary}");

    // One TCP flow record per connection, each in c1's address.
    let text = std::fs::read_to_string(&eve_out).expect("the EVE file");
    let mut records = Vec::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("EVE line {line:?}: {e}"));
        if event["event_type"] == "flow" && event["proto"] == "TCP" {
            records.push(flow_record_connection(&event).0);
        }
    }
    let masquerade: Vec<_> = records
        .iter()
        .filter(|(_, a, b)| b == "198.18.0.1:5003" || a == "198.18.0.1:5003")
        .collect();
    let dnat: Vec<_> = records
        .iter()
        .filter(|(_, a, b)| [a, b].iter().any(|e| e.ends_with(":8080") || e.ends_with(":80")))
        .collect();
    assert_eq!(
        masquerade.len(),
        1,
        "one record of the MASQUERADE connection: {records:?}"
    );
    assert!(
        masquerade[0].1.starts_with("172.17.0.2:"),
        "in c1's address: {records:?}"
    );
    assert_eq!(dnat.len(), 1, "one record of the DNAT connection: {records:?}");
    assert!(
        [&dnat[0].1, &dnat[0].2].contains(&&"172.17.0.2:80".to_owned()),
        "to c1's port 80: {records:?}"
    );
    assert!(
        records
            .iter()
            .all(|(_, a, b)| !a.starts_with("198.18.0.2") && !b.starts_with("198.18.0.2")),
        "a record in the uplink's address: {records:?}"
    );
}
