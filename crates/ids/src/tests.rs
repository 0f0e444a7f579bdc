//! Detection inside the flow tracker, driven as the worker pool drives it:
//! real Ethernet frames in batches with canonical flow keys, the EVE lines
//! read back. Checks what the alert and anomaly events carry (the flow's
//! `flow_id`, the packet's container-side tuple, the container), that a
//! marker split across segments alerts once, that retransmissions do not
//! alert again, that overlaps with different data are reported whether the
//! reassembler or only the dedup saw them, and that a reload reaches the
//! workers between batches, that the stream memory cap is global across
//! workers sharing one account, and the default stream depth.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use eve::{EveWriter, FlowTracker, FlowTrackerConfig};
use flow::{FlowHasher, FlowKey, FlowTuple, TapDirection, TapId, TapPoint, TapRole};
use pipeline::host_book::ContainerLabel;
use pipeline::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};
use pipeline::worker::{PacketBatch, PacketMeta, Worker};
use rules::{DetectorConfig, RuleSet, StreamMemory, Vars};
use serde_json::Value;

use crate::{RuleSource, RuleSpec, SignatureInspector};

const T0: u64 = 1_795_761_154_000_000_000;
const MS: u64 = 1_000_000;

const SYN: u8 = 0x02;
const PSH_ACK: u8 = 0x18;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;

const CONTAINER: [u8; 4] = [172, 17, 0, 2];
const OUTSIDE: [u8; 4] = [198, 18, 0, 1];

fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0x42, 0xac, 0x11, 0, 0x02, 0x08, 0x00];
    let total = (40 + payload.len()) as u16;
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.1.to_be_bytes());
    frame.extend_from_slice(&dst.1.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0x42, 0xac, 0x11, 0, 0x02, 0x08, 0x00];
    let total = (28 + payload.len()) as u16;
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x35, 0x40, 0, 64, 17, 0, 0]);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.1.to_be_bytes());
    frame.extend_from_slice(&dst.1.to_be_bytes());
    frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// A `Write` into memory shared with the test.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One worker, its interfaces (a container's veth named after the
/// container, and the uplink) and its EVE output.
struct Bed {
    interfaces: Arc<InterfaceTable>,
    hasher: FlowHasher,
    veth: InterfaceId,
    uplink: InterfaceId,
    memory: Memory,
    tracker: FlowTracker<SignatureInspector>,
}

const RULES: &str = r#"
alert tcp $HOME_NET any -> any 80 (msg:"marker to outside"; flow:to_server,established; content:"RS-MARKER-1"; classtype:trojan-activity; sid:1001; rev:2;)
alert tcp any any -> $HOME_NET 80 (msg:"marker from outside"; flow:to_server; content:"RS-MARKER-2"; sid:1002; rev:1;)
alert udp any any -> any 53 (msg:"udp marker"; content:"RS-UDP"; sid:1003; rev:1;)
"#;

impl Bed {
    fn new(rules: &str) -> Self {
        let (set, report) = RuleSet::parse(
            "test.rules",
            rules,
            &Vars::with_home_net(["172.17.0.0/16"]),
            &rules::ClassificationTable::suricata_default(),
        );
        assert_eq!(report.skipped, 0, "{:?}", report.warnings);
        Self::with_source(RuleSource::fixed(set))
    }

    fn with_source(source: Arc<RuleSource>) -> Self {
        Self::with_memory(source, StreamMemory::new(1 << 20))
    }

    /// A bed whose worker charges its streams to `memory`.
    fn with_memory(source: Arc<RuleSource>, memory: Arc<StreamMemory>) -> Self {
        let interfaces = Arc::new(InterfaceTable::new());
        let veth = interfaces.intern(InterfaceInfo {
            name: "vethc1".to_owned(),
            role: TapRole::ContainerVeth,
            ifindex: 5,
            link_type: 1,
            container: Some(ContainerLabel {
                id: Some("4f1c0a9e2b7d".repeat(5) + "abcd"),
                name: Some("web-1".to_owned()),
                image: Some("nginx:1.27".to_owned()),
                netns: Some("ab12cd34ef56".to_owned()),
            }),
        });
        let uplink = interfaces.intern(InterfaceInfo {
            name: "eth0".to_owned(),
            role: TapRole::Uplink,
            ifindex: 2,
            link_type: 1,
            container: None,
        });
        let inspector = SignatureInspector::new(source, DetectorConfig::default(), memory);
        let memory = Memory::default();
        let writer = Arc::new(EveWriter::from_writer("memory", memory.clone()));
        let tracker = FlowTracker::with_inspector(FlowTrackerConfig::default(), writer, inspector);
        Self {
            interfaces,
            hasher: FlowHasher::with_seeds([1, 2, 3, 4]),
            veth,
            uplink,
            memory,
            tracker,
        }
    }

    /// Feeds `frames` as one batch, each seen at `(interface, direction)`.
    fn feed(&mut self, frames: &[(u64, Vec<u8>, InterfaceId, TapDirection)]) {
        let mut batch = PacketBatch::new(Arc::clone(&self.interfaces));
        for (timestamp_ns, frame, interface, direction) in frames {
            let role = self.interfaces.get(*interface).role;
            let tap = TapPoint {
                id: TapId(interface.0 * 2 + u16::from(*direction == TapDirection::Outgoing)),
                role,
                direction: *direction,
            };
            let mut meta = PacketMeta::new(*timestamp_ns, frame.len() as u32, *interface, tap);
            let parsed = flow::parse_frame(frame, None).unwrap();
            meta.flow = FlowTuple::of(&parsed).map(|tuple| FlowKey {
                tuple,
                hash: self.hasher.symmetric(&tuple),
            });
            meta.flow_hash = meta.flow.map_or(0, |f| f.hash);
            batch.push(meta, frame);
        }
        self.tracker.batch(&batch);
    }

    /// Feeds frames as the container's veth shows them: what the container
    /// sent comes in, the rest goes out to it.
    fn on_veth(&mut self, frames: &[(u64, Vec<u8>)]) {
        let veth = self.veth;
        let frames: Vec<_> = frames
            .iter()
            .map(|(t, f)| {
                let sent_by_container = f[26..30] == CONTAINER;
                let direction = if sent_by_container {
                    TapDirection::Incoming
                } else {
                    TapDirection::Outgoing
                };
                (*t, f.clone(), veth, direction)
            })
            .collect();
        self.feed(&frames);
    }

    /// Ends the capture and returns every EVE line.
    fn finish(mut self) -> Vec<Value> {
        self.tracker.finish(T0 + 1_000 * MS);
        let bytes = self.memory.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is JSON"))
            .collect()
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == kind).collect()
}

/// The handshake of container:`port` → outside:80, and the client's ACK.
fn handshake(port: u16, client_isn: u32, server_isn: u32) -> Vec<(u64, Vec<u8>)> {
    let c = (CONTAINER, port);
    let s = (OUTSIDE, 80);
    vec![
        (T0, tcp(c, s, client_isn, SYN, b"")),
        (T0 + MS, tcp(s, c, server_isn, SYN_ACK, b"")),
        (T0 + 2 * MS, tcp(c, s, client_isn + 1, ACK, b"")),
    ]
}

#[test]
fn a_marker_split_across_two_segments_alerts_once_with_the_flows_id() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 40000);
    let s = (OUTSIDE, 80);
    let mut frames = handshake(40000, 1000, 5000);
    frames.push((T0 + 3 * MS, tcp(c, s, 1001, PSH_ACK, b"GET /RS-MAR")));
    frames.push((T0 + 4 * MS, tcp(c, s, 1012, PSH_ACK, b"KER-1 HTTP/1.1\r\n\r\n")));
    // The same two segments again (retransmitted): no second alert.
    frames.push((T0 + 300 * MS, tcp(c, s, 1001, PSH_ACK, b"GET /RS-MAR")));
    frames.push((T0 + 301 * MS, tcp(c, s, 1012, PSH_ACK, b"KER-1 HTTP/1.1\r\n\r\n")));
    bed.on_veth(&frames);
    let events = bed.finish();

    let alerts = of_type(&events, "alert");
    assert_eq!(alerts.len(), 1, "{events:#?}");
    let alert = alerts[0];
    let flows = of_type(&events, "flow");
    assert_eq!(flows.len(), 1);
    let record = flows[0];
    assert_eq!(alert["flow_id"], record["flow_id"]);
    assert_eq!(record["flow"]["alerted"], true);
    assert_eq!(alert["alert"]["signature_id"], 1001);
    assert_eq!(alert["alert"]["rev"], 2);
    assert_eq!(alert["alert"]["gid"], 1);
    assert_eq!(alert["alert"]["action"], "allowed");
    assert_eq!(alert["alert"]["signature"], "marker to outside");
    assert_eq!(alert["alert"]["category"], "A Network Trojan was detected");
    assert_eq!(alert["alert"]["severity"], 1);
    assert_eq!(alert["src_ip"], "172.17.0.2");
    assert_eq!(alert["src_port"], 40000);
    assert_eq!(alert["dest_ip"], "198.18.0.1");
    assert_eq!(alert["dest_port"], 80);
    assert_eq!(alert["proto"], "TCP");
    assert_eq!(alert["direction"], "to_server");
    assert_eq!(alert["in_iface"], "vethc1");
    assert_eq!(alert["src_container"]["name"], "web-1");
    assert_eq!(alert["src_container"]["image"], "nginx:1.27");
    assert_eq!(alert["src_container"]["netns"], "ab12cd34ef56");
    assert_eq!(alert["src_container"]["id"].as_str().unwrap().len(), 64);
    assert!(alert.get("dest_container").is_none());
    // The match ends in the second segment: stream offset 11 + 5.
    assert_eq!(alert["ringsieve"]["stream_offset"], 16);
    assert_eq!(alert["ringsieve"]["tap"], "vethc1:in");
    // The packet that completed the marker, not the flow's start.
    assert_ne!(alert["timestamp"], record["timestamp"]);
    assert_eq!(alert["flow"]["src_ip"], "172.17.0.2");
    assert!(of_type(&events, "anomaly").is_empty());
}

#[test]
fn an_unestablished_flow_does_not_match_an_established_rule() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 40001);
    let s = (OUTSIDE, 80);
    // No handshake seen: data from one side only is not established.
    bed.on_veth(&[(T0, tcp(c, s, 1, PSH_ACK, b"GET /RS-MARKER-1"))]);
    let events = bed.finish();
    assert!(of_type(&events, "alert").is_empty(), "{events:#?}");
    assert_eq!(of_type(&events, "flow")[0]["flow"]["alerted"], false);
}

#[test]
fn an_overlap_with_different_bytes_raises_the_stream_anomaly_once() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 40002);
    let s = (OUTSIDE, 80);
    let mut frames = handshake(40002, 1000, 5000);
    frames.push((T0 + 3 * MS, tcp(c, s, 1001, PSH_ACK, b"GET /index.html")));
    // Same sequence range, other bytes.
    frames.push((T0 + 4 * MS, tcp(c, s, 1001, PSH_ACK, b"GET /evil!.html")));
    bed.on_veth(&frames);
    let events = bed.finish();
    let anomalies = of_type(&events, "anomaly");
    assert_eq!(anomalies.len(), 1, "{events:#?}");
    let anomaly = anomalies[0];
    assert_eq!(anomaly["anomaly"]["type"], "stream");
    assert_eq!(anomaly["anomaly"]["event"], "reassembly_overlap_different_data");
    assert_eq!(anomaly["flow_id"], of_type(&events, "flow")[0]["flow_id"]);
    assert_eq!(anomaly["src_container"]["name"], "web-1");
    assert_eq!(anomaly["ringsieve"]["seq_start"], 1006);
    assert_eq!(anomaly["ringsieve"]["seq_end"], 1011);
    // An anomaly is not an alert.
    assert_eq!(of_type(&events, "flow")[0]["flow"]["alerted"], false);
}

#[test]
fn an_overlap_only_the_dedup_saw_is_still_reported() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 40003);
    let s = (OUTSIDE, 80);
    bed.on_veth(&handshake(40003, 1000, 5000));
    // The dedup flagged this segment (its copy at another tap point had
    // other bytes); the reassembler never saw those.
    let mut batch = PacketBatch::new(Arc::clone(&bed.interfaces));
    let frame = tcp(c, s, 1001, PSH_ACK, b"hello");
    let tap = TapPoint {
        id: TapId(bed.veth.0 * 2),
        role: TapRole::ContainerVeth,
        direction: TapDirection::Incoming,
    };
    let mut meta = PacketMeta::new(T0 + 5 * MS, frame.len() as u32, bed.veth, tap);
    let tuple = FlowTuple::of(&flow::parse_frame(&frame, None).unwrap()).unwrap();
    meta.flow = Some(FlowKey {
        tuple,
        hash: bed.hasher.symmetric(&tuple),
    });
    meta.overlap_different_data = true;
    batch.push(meta, &frame);
    bed.tracker.batch(&batch);
    let counters = bed.tracker.inspector().counters();
    assert_eq!(counters.overlaps_from_dedup, 1);
    let events = bed.finish();
    let anomalies = of_type(&events, "anomaly");
    assert_eq!(anomalies.len(), 1, "{events:#?}");
    assert_eq!(anomalies[0]["ringsieve"]["seq_start"], 1001);
    assert_eq!(anomalies[0]["ringsieve"]["seq_end"], 1006);
}

#[test]
fn a_packet_from_outside_alerts_with_the_containers_address_as_destination() {
    let mut bed = Bed::new(RULES);
    // A DNAT'd connection as the container's veth shows it: outside client
    // to the container's port 80 (the veth sends it to the container).
    let client = (OUTSIDE, 51000);
    let server = (CONTAINER, 80);
    let veth = bed.veth;
    let frames = vec![
        (T0, tcp(client, server, 7000, SYN, b""), veth, TapDirection::Outgoing),
        (
            T0 + MS,
            tcp(server, client, 9000, SYN_ACK, b""),
            veth,
            TapDirection::Incoming,
        ),
        (
            T0 + 2 * MS,
            tcp(client, server, 7001, ACK, b""),
            veth,
            TapDirection::Outgoing,
        ),
        (
            T0 + 3 * MS,
            tcp(client, server, 7001, PSH_ACK, b"POST /RS-MARKER-2"),
            veth,
            TapDirection::Outgoing,
        ),
    ];
    bed.feed(&frames);
    let events = bed.finish();
    let alerts = of_type(&events, "alert");
    assert_eq!(alerts.len(), 1, "{events:#?}");
    assert_eq!(alerts[0]["alert"]["signature_id"], 1002);
    assert_eq!(alerts[0]["dest_ip"], "172.17.0.2");
    assert_eq!(alerts[0]["dest_container"]["name"], "web-1");
    assert!(alerts[0].get("src_container").is_none());
    assert_eq!(alerts[0]["alert"]["category"], "");
    assert_eq!(alerts[0]["alert"]["severity"], 3);
}

#[test]
fn udp_payloads_are_matched_per_packet() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 33000);
    let s = (OUTSIDE, 53);
    bed.on_veth(&[
        (T0, udp(c, s, b"query RS-UDP")),
        (T0 + MS, udp(c, s, b"query RS-UDP again")),
        (T0 + 2 * MS, udp(c, s, b"nothing")),
    ]);
    let uplink = bed.uplink;
    // A packet on the uplink that only the uplink saw still counts.
    bed.feed(&[(T0 + 3 * MS, udp(c, s, b"RS-UDP"), uplink, TapDirection::Outgoing)]);
    let events = bed.finish();
    let alerts = of_type(&events, "alert");
    assert_eq!(alerts.len(), 3, "{events:#?}");
    assert!(alerts
        .iter()
        .all(|a| a["proto"] == "UDP" && a["alert"]["signature_id"] == 1003));
    assert_eq!(alerts[2]["in_iface"], "eth0");
}

#[test]
fn a_reload_reaches_the_worker_at_its_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.rules");
    std::fs::write(
        &path,
        "alert udp any any -> any any (msg:\"one\"; content:\"AAA\"; sid:1;)\n",
    )
    .unwrap();
    let (source, _) = RuleSource::load(RuleSpec {
        files: vec![path.clone()],
        vars: Vars::default(),
        classification: None,
    })
    .unwrap();
    let mut bed = Bed::with_source(Arc::clone(&source));
    let c = (CONTAINER, 33001);
    let s = (OUTSIDE, 9999);
    bed.on_veth(&[(T0, udp(c, s, b"AAA BBB"))]);
    std::fs::write(
        &path,
        "alert udp any any -> any any (msg:\"two\"; content:\"BBB\"; sid:2;)\n",
    )
    .unwrap();
    source.reload().unwrap();
    bed.on_veth(&[(T0 + MS, udp(c, s, b"AAA BBB"))]);
    assert_eq!(bed.tracker.inspector().counters().rule_reloads, 1);
    let events = bed.finish();
    let sids: Vec<_> = of_type(&events, "alert")
        .iter()
        .map(|a| a["alert"]["signature_id"].clone())
        .collect();
    assert_eq!(sids, [1, 2]);
}

#[test]
fn stream_memory_is_given_back_when_the_flow_ends() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 40004);
    let s = (OUTSIDE, 80);
    let mut frames = handshake(40004, 1000, 5000);
    // Out of order: held by the reassembler.
    frames.push((T0 + 3 * MS, tcp(c, s, 2001, PSH_ACK, &[b'x'; 500])));
    bed.on_veth(&frames);
    let memory = Arc::clone(bed.tracker.inspector().stream_memory());
    assert!(memory.used() > 0);
    let events = bed.finish();
    assert_eq!(memory.used(), 0);
    assert_eq!(of_type(&events, "flow").len(), 1);
}

#[test]
fn a_syn_ack_delivered_after_the_clients_data_does_not_hide_the_established_flow() {
    let mut bed = Bed::new(RULES);
    let c = (CONTAINER, 40005);
    let s = (OUTSIDE, 80);
    // The dedup can deliver the reply after the client's next packets.
    bed.on_veth(&[
        (T0, tcp(c, s, 1000, SYN, b"")),
        (T0 + 2 * MS, tcp(c, s, 1001, ACK, b"")),
        (T0 + 3 * MS, tcp(c, s, 1001, PSH_ACK, b"GET /RS-MARKER-1")),
        (T0 + MS, tcp(s, c, 5000, SYN_ACK, b"")),
    ]);
    let events = bed.finish();
    assert_eq!(of_type(&events, "alert").len(), 1, "{events:#?}");
}

const FIN_ACK: u8 = 0x11;
const RST: u8 = 0x04;

/// `RS-NB` not followed by `b`.
const NOT_B: &str =
    r#"alert tcp any any -> any 80 (msg:"no b"; flow:to_server; content:"RS-NB"; content:!"b"; within:1; sid:7;)"#;

/// The alerts of a connection from the container whose client sends
/// `segments` (contiguous, from sequence 1001) then `last_flags`.
fn alerts_of_segments(segments: &[&[u8]], last_flags: Option<u8>) -> usize {
    let mut bed = Bed::new(NOT_B);
    let c = (CONTAINER, 40010);
    let s = (OUTSIDE, 80);
    let mut frames = handshake(40010, 1000, 5000);
    let mut seq = 1001;
    for (i, seg) in segments.iter().enumerate() {
        frames.push((T0 + (3 + i as u64) * MS, tcp(c, s, seq, PSH_ACK, seg)));
        seq += seg.len() as u32;
    }
    if let Some(flags) = last_flags {
        frames.push((T0 + 20 * MS, tcp(c, s, seq, flags, b"")));
        // A retransmitted FIN decides nothing again.
        frames.push((T0 + 21 * MS, tcp(c, s, seq, flags, b"")));
    }
    bed.on_veth(&frames);
    let events = bed.finish();
    of_type(&events, "alert").len()
}

#[test]
fn a_negated_content_at_a_segment_boundary_is_decided_by_the_next_segment_or_the_fin() {
    assert_eq!(alerts_of_segments(&[b"GET RS-NB", b"b"], Some(FIN_ACK)), 0);
    assert_eq!(alerts_of_segments(&[b"GET RS-NB", b"c"], Some(FIN_ACK)), 1);
    assert_eq!(alerts_of_segments(&[b"GET RS-NB"], Some(FIN_ACK)), 1);
    assert_eq!(alerts_of_segments(&[b"GET RS-NB"], Some(RST)), 1);
    // Neither more data nor a FIN: decided when the flow ends.
    assert_eq!(alerts_of_segments(&[b"GET RS-NB"], None), 1);
    assert_eq!(alerts_of_segments(&[b"GET RS-NB", b"b"], None), 0);
}

#[test]
fn a_match_decided_at_the_flow_end_is_about_the_last_segment_and_marks_the_flow() {
    let mut bed = Bed::new(NOT_B);
    let c = (CONTAINER, 40011);
    let s = (OUTSIDE, 80);
    let mut frames = handshake(40011, 1000, 5000);
    frames.push((T0 + 3 * MS, tcp(c, s, 1001, PSH_ACK, b"GET RS-NB")));
    bed.on_veth(&frames);
    let events = bed.finish();
    let alerts = of_type(&events, "alert");
    assert_eq!(alerts.len(), 1, "{events:#?}");
    let flows = of_type(&events, "flow");
    assert_eq!(alerts[0]["flow_id"], flows[0]["flow_id"]);
    assert_eq!(flows[0]["flow"]["alerted"], true);
    assert_eq!(alerts[0]["src_ip"], "172.17.0.2");
    assert_eq!(alerts[0]["dest_port"], 80);
    assert_eq!(alerts[0]["direction"], "to_server");
    assert_eq!(alerts[0]["ringsieve"]["stream_offset"], 9);
    let position = |e: &Value| events.iter().position(|x| x == e).unwrap();
    assert!(
        position(alerts[0]) < position(flows[0]),
        "the alert is written before the record"
    );
}

#[test]
fn the_rules_gid_and_priority_are_the_alerts_gid_and_severity() {
    let mut bed = Bed::new(
        r#"alert udp any any -> any 53 (msg:"custom"; content:"RS-GID"; classtype:trojan-activity; priority:4; gid:3; sid:9; rev:2;)"#,
    );
    bed.on_veth(&[(T0, udp((CONTAINER, 33001), (OUTSIDE, 53), b"RS-GID"))]);
    let events = bed.finish();
    let alerts = of_type(&events, "alert");
    assert_eq!(alerts.len(), 1, "{events:#?}");
    let alert = &alerts[0]["alert"];
    assert_eq!(alert["gid"], 3);
    assert_eq!(alert["signature_id"], 9);
    assert_eq!(alert["rev"], 2);
    assert_eq!(alert["severity"], 4);
    assert_eq!(alert["category"], "A Network Trojan was detected");
}

#[test]
fn the_stream_memory_cap_is_shared_by_the_workers() {
    let rules = || {
        let (set, _) = RuleSet::parse(
            "test.rules",
            RULES,
            &Vars::with_home_net(["172.17.0.0/16"]),
            &rules::ClassificationTable::suricata_default(),
        );
        RuleSource::fixed(set)
    };
    // Room for one 4000-byte out-of-order segment, not two.
    let memory = StreamMemory::new(6000);
    let mut first = Bed::with_memory(rules(), Arc::clone(&memory));
    let mut second = Bed::with_memory(rules(), Arc::clone(&memory));
    let held = |port: u16| {
        let mut frames = handshake(port, 1000, 5000);
        // A gap at 1001: the segment waits, charged to the account.
        frames.push((
            T0 + 3 * MS,
            tcp((CONTAINER, port), (OUTSIDE, 80), 2001, PSH_ACK, &[b'x'; 4000]),
        ));
        frames
    };
    first.on_veth(&held(40020));
    assert!(memory.used() >= 4000, "{}", memory.used());
    assert_eq!(first.tracker.inspector().counters().out_of_order_dropped, 0);
    // The other worker's stream alone would fit in the cap; with the first
    // one's it does not.
    second.on_veth(&held(40021));
    assert_eq!(second.tracker.inspector().counters().out_of_order_dropped, 1);
    assert_eq!(memory.dropped_segments(), 1);
    assert!(memory.used() <= memory.cap());
    let mut alone = Bed::with_memory(rules(), StreamMemory::new(6000));
    alone.on_veth(&held(40022));
    assert_eq!(alone.tracker.inspector().counters().out_of_order_dropped, 0);
}

#[test]
fn the_default_stream_depth_is_one_mebibyte() {
    assert_eq!(rules::StreamConfig::default().depth, 1 << 20);
    assert_eq!(DetectorConfig::default().stream.depth, 1 << 20);
}
