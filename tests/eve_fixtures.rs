//! `ringsieve read --eve` over the dedup fixtures recorded in the Docker-host
//! test bed: one EVE flow record per connection, in the containers' address
//! space, with the packet counts the containers' own captures show; and the
//! accounting of the exit summary balances. The expected connections come
//! from the container-side captures alone: their distinct packets
//! (`testbed::fixtures::distinct_frames`), grouped by 5-tuple with both
//! directions together.
//!
//! Needs no privileges: it runs the binary on files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use testbed::fixtures::{connections, distinct_frames, load_all, Fixture};

/// A connection as the test compares it: protocol name as EVE writes it,
/// and its two endpoints in order (`ip` or `ip:port`).
type ConnectionKey = (String, String, String);

fn key(protocol: String, a: String, b: String) -> ConnectionKey {
    if a <= b {
        (protocol, a, b)
    } else {
        (protocol, b, a)
    }
}

/// An EVE record's endpoint as `connection_key` writes it.
fn endpoint(ip: &str, port: Option<u64>) -> String {
    match port {
        Some(port) => format!("{ip}:{port}"),
        None => ip.to_owned(),
    }
}

/// The connection key and packet count of an EVE flow record.
pub fn record_connection(event: &serde_json::Value) -> (ConnectionKey, u64) {
    let protocol = event["proto"].as_str().expect("proto").to_owned();
    let src = endpoint(event["src_ip"].as_str().expect("src_ip"), event["src_port"].as_u64());
    let dest = endpoint(event["dest_ip"].as_str().expect("dest_ip"), event["dest_port"].as_u64());
    let flow = &event["flow"];
    let packets =
        flow["pkts_toserver"].as_u64().expect("pkts_toserver") + flow["pkts_toclient"].as_u64().expect("pkts_toclient");
    (key(protocol, src, dest), packets)
}

/// Packets per connection among the distinct packets the containers saw.
fn expected_connections(fixture: &Fixture) -> BTreeMap<ConnectionKey, u64> {
    let frames = distinct_frames(&fixture.container_captures).expect("the container captures read");
    connections(frames.iter().map(|(_, frame)| frame.as_slice()))
}

/// Runs `ringsieve read --eve` on a fixture with `workers` workers; returns
/// the summary and the EVE lines.
fn read_eve(fixture: &Fixture, dir: &Path, workers: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let eve = dir.join(format!("{}-{workers}.json", fixture.case));
    let output = Command::new(env!("CARGO_BIN_EXE_ringsieve"))
        .arg("read")
        .arg(&fixture.host_capture)
        .arg("--role")
        .arg(fixture.roles_arg())
        .arg("--eve")
        .arg(&eve)
        .args(["--workers", workers])
        .output()
        .expect("ringsieve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: ringsieve read failed: {stderr}",
        fixture.case
    );
    let last = stderr.lines().last().unwrap_or_default();
    let summary = serde_json::from_str(last).unwrap_or_else(|e| panic!("{}: summary {last:?}: {e}", fixture.case));
    let text = std::fs::read_to_string(&eve).expect("the EVE file exists");
    let events = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: EVE line {line:?}: {e}", fixture.case)))
        .collect();
    (summary, events)
}

#[test]
fn one_flow_record_per_connection_in_the_containers_address_space() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fixtures = load_all(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedup"))
        .expect("the fixture manifests load");
    assert!(fixtures.len() >= 11);
    for fixture in &fixtures {
        let case = &fixture.case;
        let expected = expected_connections(fixture);
        for workers in ["1", "3"] {
            let (summary, events) = read_eve(fixture, dir.path(), workers);
            assert_eq!(summary["total"]["balanced"], true, "{case}: {summary}");
            assert_eq!(
                summary["total"]["delivered"], fixture.expected_delivered,
                "{case}: {summary}"
            );
            let mut found: BTreeMap<ConnectionKey, u64> = BTreeMap::new();
            let mut flow_ids = std::collections::HashSet::new();
            for event in events.iter().filter(|e| e["event_type"] == "flow") {
                let (connection, packets) = record_connection(event);
                let flow = &event["flow"];
                let previous = found.insert(connection, packets);
                assert!(previous.is_none(), "{case}: two records for one connection: {event}");
                assert!(
                    flow_ids.insert(event["flow_id"].as_u64().expect("flow_id")),
                    "{case}: flow_id reused"
                );
                assert_eq!(flow["reason"], "shutdown", "{case}: {event}");
                assert!(
                    event["in_iface"].as_str().is_some_and(|i| !i.is_empty()),
                    "{case}: {event}"
                );
                assert!(
                    event["ringsieve"]["taps"].as_array().is_some_and(|t| !t.is_empty()),
                    "{case}: {event}"
                );
            }
            assert_eq!(found, expected, "{case} with {workers} workers");
        }
    }
}

#[test]
fn outbound_nat_flows_name_their_public_tuple_and_suppressed_copies() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fixtures = load_all(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedup"))
        .expect("the fixture manifests load");
    let fixture = fixtures
        .iter()
        .find(|f| f.case == "c2out-tcp")
        .expect("the c2out-tcp fixture");
    let (_, events) = read_eve(fixture, dir.path(), "2");
    let flows: Vec<_> = events.iter().filter(|e| e["event_type"] == "flow").collect();
    assert!(!flows.is_empty());
    for event in flows {
        // The container's address, not the uplink's: 172.17.0.0/16.
        assert!(
            event["src_ip"].as_str().is_some_and(|ip| ip.starts_with("172.17.")),
            "{event}"
        );
        let ringsieve = &event["ringsieve"];
        let nat = &ringsieve["nat"];
        assert!(nat.is_object(), "a MASQUERADEd flow names its public tuple: {event}");
        assert_ne!(nat["src_ip"], event["src_ip"], "{event}");
        assert_eq!(
            nat["dest_ip"], event["dest_ip"],
            "MASQUERADE leaves the destination: {event}"
        );
        // Every packet was seen on the veth, docker0 and eth0: two copies
        // suppressed for most of them.
        let delivered = ringsieve["delivered"].as_u64().expect("delivered");
        let suppressed = ringsieve["copies_suppressed"].as_u64().expect("copies_suppressed");
        assert!(suppressed >= delivered, "{event}");
        let taps: Vec<&str> = ringsieve["taps"]
            .as_array()
            .expect("taps")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert!(taps.len() >= 3, "{event}");
    }
}
