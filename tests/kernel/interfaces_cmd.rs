//! `ringsieve interfaces [--json]` in the test bed's host namespace: every
//! interface with its role (docker0 the bridge, the containers' veths
//! container veths named after their namespaces, eth0 the uplink), the ring
//! `ringsieve run` would open on it, the kernel's promiscuity (not the
//! `--promisc` setting) beside whether `run` would set it, and whether it
//! would be captured under `--exclude` and `--interface`; loopback never
//! listed. The plain-text table lists the same interfaces.

use std::process::Command;

use crate::netns::privileged;
use crate::process::in_namespace;
use crate::testbed::{namespaces, one_at_a_time, Bed};

const RINGSIEVE: &str = env!("CARGO_BIN_EXE_ringsieve");
/// A container veth's ring, and the uplink's (af_packet's defaults).
const CONTAINER_VETH_RING: u64 = (512 << 10) * 16;
const UPLINK_RING: u64 = (1 << 20) * 64;

/// Runs `ringsieve interfaces ARGS` in `namespace`; its stdout.
fn interfaces(namespace: &str, args: &[&str]) -> String {
    let out = in_namespace(namespace, RINGSIEVE)
        .arg("interfaces")
        .args(args)
        .output()
        .expect("ringsieve runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ringsieve interfaces {args:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `--json` rows by interface name.
fn rows(namespace: &str, args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = interfaces(namespace, &all);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    rows.into_iter()
        .map(|row| (row["name"].as_str().expect("a name").to_owned(), row))
        .collect()
}

/// `ip ARGS` in `namespace`, which must succeed.
fn ip(namespace: &str, args: &[&str]) {
    let status = Command::new("ip")
        .args(["-n", namespace])
        .args(args)
        .status()
        .expect("ip runs");
    assert!(status.success(), "ip -n {namespace} {args:?}");
}

#[test]
fn interfaces_lists_roles_containers_rings_promiscuity_and_the_selection() {
    let test = "interfaces_lists_roles_containers_rings_promiscuity_and_the_selection";
    if !privileged(test) {
        return;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let prefix = bed.prefix().to_owned();
    let host = bed.namespace("host");
    // eth0 made promiscuous by someone else; a veth not enslaved to any
    // bridge (both ends here), as Docker's is between creating and
    // enslaving it.
    ip(&host, &["link", "set", "eth0", "promisc", "on"]);
    ip(
        &host,
        &["link", "add", "vethnew", "type", "veth", "peer", "name", "vethpeer"],
    );

    let all = rows(&host, &[]);
    assert!(!all.contains_key("lo"), "{all:?}");
    let docker0 = &all["docker0"];
    assert_eq!(docker0["role"], "bridge", "{docker0}");
    assert_eq!(docker0["kind"], "bridge", "{docker0}");
    assert_eq!(docker0["promiscuous"], false, "{docker0}");
    assert!(docker0["container"].is_null(), "{docker0}");
    for k in 1..=3 {
        let veth = &all[&format!("vethc{k}")];
        let container = format!("{prefix}-c{k}");
        assert_eq!(veth["role"], "container-veth", "{veth}");
        assert_eq!(veth["container"], container.as_str(), "{veth}");
        assert_eq!(veth["container_netns"], container.as_str(), "{veth}");
        assert_eq!(veth["ring_bytes"], CONTAINER_VETH_RING, "{veth}");
        // A bridge's port: promiscuous (the bridge holds it so).
        assert_eq!(veth["promiscuous"], true, "{veth}");
    }
    let eth0 = &all["eth0"];
    assert_eq!(eth0["role"], "uplink", "{eth0}");
    assert_eq!(eth0["ring_bytes"], UPLINK_RING, "{eth0}");
    // The kernel's state, not the setting (off): eth0 is promiscuous, held
    // so by one, and ringsieve would not be what sets it.
    assert_eq!(eth0["promiscuous"], true, "{eth0}");
    assert_eq!(eth0["promiscuity"], 1, "{eth0}");
    assert_eq!(eth0["sets_promiscuous"], false, "{eth0}");
    // The veth not enslaved: role other, but the ring `run` opens on a veth,
    // a container veth's.
    for name in ["vethnew", "vethpeer"] {
        let veth = &all[name];
        assert_eq!(veth["role"], "other", "{veth}");
        assert_eq!(veth["ring_bytes"], CONTAINER_VETH_RING, "{veth}");
    }
    assert!(all.values().all(|row| row["captured"] == true), "{all:?}");

    // --exclude and --interface decide what would be captured; --promisc
    // what ringsieve would make promiscuous, which is not the kernel's
    // state.
    let excluded = rows(&host, &["--exclude", "vethc*", "--promisc"]);
    for (name, row) in &excluded {
        let captured = !name.starts_with("vethc");
        assert_eq!(row["captured"], captured, "{row}");
        assert_eq!(row["sets_promiscuous"], captured, "{row}");
    }
    assert_eq!(excluded["docker0"]["promiscuous"], false);
    let included = rows(&host, &["--interface", "eth0", "--interface", "vethc2"]);
    assert_eq!(included.len(), all.len(), "{included:?}");
    for (name, row) in &included {
        assert_eq!(row["captured"], name == "eth0" || name == "vethc2", "{row}");
    }

    // The table: a header, then one line per interface, the same ones.
    let text = interfaces(&host, &[]);
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    assert!(header.starts_with("INTERFACE") && header.contains("PROMISC"), "{text}");
    let listed: std::collections::BTreeSet<&str> = lines.filter_map(|l| l.split_whitespace().next()).collect();
    let expected: std::collections::BTreeSet<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(listed, expected, "{text}");
    let eth0_line = text.lines().find(|l| l.starts_with("eth0 ")).expect("eth0's line");
    let columns: Vec<&str> = eth0_line.split_whitespace().collect();
    assert_eq!(columns[2..], ["uplink", "yes", "-", "64", "yes", "no"], "{text}");

    drop(bed);
    let left: Vec<String> = namespaces().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
