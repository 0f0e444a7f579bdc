//! Tests of the flow tracker as the worker pool drives it: real Ethernet
//! frames (IPv4 and IPv6, TCP, UDP, ICMP) in batches with canonical flow
//! keys, ticks and a finish, the records read back from the EVE output.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use flow::{FlowHasher, FlowKey, FlowTuple, NatTranslation, TapDirection, TapId, TapPoint, TapRole};
use pipeline::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};
use pipeline::worker::{PacketBatch, PacketMeta, SuppressedNotice, Worker};
use serde_json::Value;

use crate::{EveWriter, FlowTimeouts, FlowTracker, FlowTrackerConfig, FlowTrackerCounters, FLOW_ID_MASK};

const S: u64 = 1_000_000_000;
/// 2026-11-27T06:32:34 UTC.
const T0: u64 = 1_795_761_154 * S;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const CLIENT: [u8; 4] = [172, 17, 0, 2];
const SERVER: [u8; 4] = [93, 184, 216, 34];

// ---- frames ----

fn ethernet(ethertype: u16, network: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(network);
    frame
}

fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, protocol, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(l4);
    ethernet(0x0800, &ip)
}

fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&src.1.to_be_bytes());
    l4.extend_from_slice(&dst.1.to_be_bytes());
    l4.extend_from_slice(&1000u32.to_be_bytes());
    l4.extend_from_slice(&2000u32.to_be_bytes());
    l4.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    l4.extend_from_slice(payload);
    ipv4(src.0, dst.0, 6, &l4)
}

fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&src.1.to_be_bytes());
    l4.extend_from_slice(&dst.1.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    ipv4(src.0, dst.0, 17, &l4)
}

fn icmp_echo(src: [u8; 4], dst: [u8; 4], icmp_type: u8, ident: u16) -> Vec<u8> {
    let mut l4 = vec![icmp_type, 0, 0, 0];
    l4.extend_from_slice(&ident.to_be_bytes());
    l4.extend_from_slice(&[0, 1]);
    l4.extend_from_slice(b"ping");
    ipv4(src, dst, 1, &l4)
}

fn icmp(src: [u8; 4], dst: [u8; 4], icmp_type: u8, code: u8) -> Vec<u8> {
    ipv4(src, dst, 1, &[icmp_type, code, 0, 0, 0, 0, 0, 0])
}

fn icmpv6_echo(src: u16, dst: u16, icmp_type: u8) -> Vec<u8> {
    let body = [icmp_type, 0, 0, 0, 0x12, 0x34, 0, 1];
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(body.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[58, 64]);
    for last in [src, dst] {
        ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&last.to_be_bytes());
    }
    ip.extend_from_slice(&body);
    ethernet(0x86dd, &ip)
}

fn arp() -> Vec<u8> {
    ethernet(
        0x0806,
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 172, 17, 0, 2, 0, 0, 0, 0, 0, 0, 172, 17, 0, 1,
        ],
    )
}

// ---- the pool's side ----

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

/// A packet as a capture thread hands it over.
#[derive(Clone)]
struct Pkt {
    meta: PacketMeta,
    data: Vec<u8>,
}

struct Bed {
    interfaces: Arc<InterfaceTable>,
    hasher: FlowHasher,
    veth: InterfaceId,
    bridge: InterfaceId,
    uplink: InterfaceId,
    memory: Memory,
    writer: Arc<EveWriter>,
}

impl Bed {
    /// A container veth of the container named `container`.
    fn container_veth(&self, name: &str, ifindex: i32, container: &str) -> InterfaceId {
        self.interfaces.intern(InterfaceInfo {
            name: name.to_owned(),
            role: TapRole::ContainerVeth,
            ifindex,
            link_type: 1,
            container: Some(pipeline::host_book::ContainerLabel {
                name: Some(container.to_owned()),
                ..Default::default()
            }),
        })
    }

    fn new() -> Self {
        let interfaces = Arc::new(InterfaceTable::new());
        let add = |name: &str, role, ifindex| {
            interfaces.intern(InterfaceInfo {
                name: name.to_owned(),
                role,
                ifindex,
                link_type: 1,
                container: None,
            })
        };
        let veth = add("veth1", TapRole::ContainerVeth, 5);
        let bridge = add("br0", TapRole::Bridge, 3);
        let uplink = add("eth0", TapRole::Uplink, 2);
        let memory = Memory::default();
        let writer = Arc::new(EveWriter::from_writer("memory", memory.clone()));
        Self {
            interfaces,
            hasher: FlowHasher::with_seeds([1, 2, 3, 4]),
            veth,
            bridge,
            uplink,
            memory,
            writer,
        }
    }

    fn tracker(&self, max_flows: usize) -> FlowTracker {
        self.tracker_with(max_flows, FlowTimeouts::default())
    }

    fn tracker_with(&self, max_flows: usize, timeouts: FlowTimeouts) -> FlowTracker {
        FlowTracker::new(FlowTrackerConfig { timeouts, max_flows }, Arc::clone(&self.writer))
    }

    fn tap(&self, interface: InterfaceId, direction: TapDirection) -> TapPoint {
        let role = self.interfaces.get(interface).role;
        TapPoint {
            id: TapId(interface.0 * 2 + u16::from(direction == TapDirection::Outgoing)),
            role,
            direction,
        }
    }

    fn key(&self, frame: &[u8]) -> Option<FlowKey> {
        let parsed = flow::parse_frame(frame, None).unwrap();
        let tuple = FlowTuple::of(&parsed)?;
        Some(FlowKey {
            tuple,
            hash: self.hasher.symmetric(&tuple),
        })
    }

    /// A packet seen incoming on the container's veth, its wire length the
    /// frame's plus a 4-byte FCS (to tell it from the captured length).
    fn pkt(&self, timestamp_ns: u64, frame: Vec<u8>) -> Pkt {
        self.pkt_at(timestamp_ns, frame, self.veth, TapDirection::Incoming)
    }

    fn pkt_at(&self, timestamp_ns: u64, frame: Vec<u8>, interface: InterfaceId, direction: TapDirection) -> Pkt {
        let mut meta = PacketMeta::new(
            timestamp_ns,
            frame.len() as u32 + 4,
            interface,
            self.tap(interface, direction),
        );
        meta.flow = self.key(&frame);
        meta.flow_hash = meta.flow.map_or(7, |f| f.hash);
        Pkt { meta, data: frame }
    }

    fn notice(&self, of: &Pkt, interface: InterfaceId, direction: TapDirection) -> SuppressedNotice {
        SuppressedNotice {
            tap: self.tap(interface, direction),
            interface,
            timestamp_ns: of.meta.timestamp_ns + 1_000,
            flow: of.meta.flow,
            flow_hash: of.meta.flow_hash,
        }
    }

    fn batch(&self, packets: &[Pkt], notices: &[SuppressedNotice]) -> PacketBatch {
        let mut batch = PacketBatch::new(Arc::clone(&self.interfaces));
        for packet in packets {
            batch.push(packet.meta, &packet.data);
        }
        for notice in notices {
            batch.push_suppressed(*notice);
        }
        batch
    }

    /// Runs `packets` through `tracker` in one batch and finishes at `end`.
    fn run(&self, tracker: &mut FlowTracker, packets: &[Pkt], end: u64) -> Vec<Value> {
        tracker.batch(&self.batch(packets, &[]));
        tracker.finish(end);
        self.records()
    }

    fn output(&self) -> Vec<u8> {
        self.memory.0.lock().unwrap().clone()
    }

    /// Every line of the output, each checked to be one JSON object.
    fn records(&self) -> Vec<Value> {
        let text = String::from_utf8(self.output()).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(value.is_object(), "{line}");
                value
            })
            .collect()
    }
}

fn c(port: u16) -> ([u8; 4], u16) {
    (CLIENT, port)
}

fn s(port: u16) -> ([u8; 4], u16) {
    (SERVER, port)
}

/// A full TCP connection: handshake, data both ways, FIN both ways.
fn connection(bed: &Bed, at: u64, port: u16) -> Vec<Pkt> {
    let ms = 1_000_000;
    vec![
        bed.pkt(at, tcp(c(port), s(80), SYN, b"")),
        bed.pkt(at + ms, tcp(s(80), c(port), SYN | ACK, b"")),
        bed.pkt(at + 2 * ms, tcp(c(port), s(80), ACK, b"")),
        bed.pkt(at + 3 * ms, tcp(c(port), s(80), PSH | ACK, &[b'g'; 100])),
        bed.pkt(at + 4 * ms, tcp(s(80), c(port), PSH | ACK, &[b'h'; 300])),
        bed.pkt(at + 5 * ms, tcp(c(port), s(80), FIN | ACK, b"")),
        bed.pkt(at + 6 * ms, tcp(s(80), c(port), FIN | ACK, b"")),
        bed.pkt(at + 7 * ms, tcp(c(port), s(80), ACK, b"")),
    ]
}

fn wire_len(packets: &[Pkt], pick: impl Fn(usize) -> bool) -> u64 {
    packets
        .iter()
        .enumerate()
        .filter(|&(i, _)| pick(i))
        .map(|(_, p)| u64::from(p.meta.original_len))
        .sum()
}

#[test]
fn a_tcp_connection_is_one_closed_record_with_counts_per_direction() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = connection(&bed, T0 + 123_456_789, 40_000);
    let records = bed.run(&mut tracker, &packets, T0 + 2 * S);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["event_type"], "flow");
    assert_eq!(r["timestamp"], "2026-11-27T06:32:34.123456+0000");
    assert_eq!(r["in_iface"], "veth1");
    assert_eq!(r["src_ip"], "172.17.0.2");
    assert_eq!(r["src_port"], 40_000);
    assert_eq!(r["dest_ip"], "93.184.216.34");
    assert_eq!(r["dest_port"], 80);
    assert_eq!(r["proto"], "TCP");
    let id = r["flow_id"].as_u64().unwrap();
    assert!(id <= FLOW_ID_MASK && id != 0);
    let f = &r["flow"];
    let toserver = |i: usize| matches!(i, 0 | 2 | 3 | 5 | 7);
    assert_eq!(f["pkts_toserver"], 5);
    assert_eq!(f["pkts_toclient"], 3);
    assert_eq!(f["bytes_toserver"], wire_len(&packets, toserver));
    assert_eq!(f["bytes_toclient"], wire_len(&packets, |i| !toserver(i)));
    assert_eq!(f["start"], "2026-11-27T06:32:34.123456+0000");
    assert_eq!(f["end"], "2026-11-27T06:32:34.130456+0000");
    assert_eq!(f["age"], 0);
    assert_eq!(f["state"], "closed");
    assert_eq!(f["reason"], "shutdown");
    assert_eq!(f["alerted"], false);
    let t = &r["tcp"];
    assert_eq!(t["tcp_flags"], "1b");
    assert_eq!(t["tcp_flags_ts"], "1b");
    assert_eq!(t["tcp_flags_tc"], "1b");
    for flag in ["syn", "fin", "psh", "ack"] {
        assert_eq!(t[flag], true, "{flag}");
    }
    for absent in ["rst", "urg", "ecn", "cwr"] {
        assert!(t.get(absent).is_none(), "{absent}");
    }
    assert_eq!(t["state"], "closed");
    let ours = &r["ringsieve"];
    assert_eq!(ours["taps"], serde_json::json!(["veth1:in"]));
    assert_eq!(ours["delivered"], 8);
    assert_eq!(ours["copies_suppressed"], 0);
    assert!(ours.get("nat").is_none() && ours.get("out_of_order").is_none());
    // Suricata's order of the leading keys.
    let line = String::from_utf8(bed.output()).unwrap();
    assert!(
        line.starts_with(&format!(
            "{{\"timestamp\":\"2026-11-27T06:32:34.123456+0000\",\"flow_id\":{id},\"in_iface\":\"veth1\",\
             \"event_type\":\"flow\",\"src_ip\":\"172.17.0.2\",\"src_port\":40000,\"dest_ip\""
        )),
        "{line}"
    );
    let counters = tracker.counters();
    assert_eq!(
        (counters.flows_started, counters.records_shutdown, counters.packets),
        (1, 1, 8)
    );
}

#[test]
fn a_handshake_makes_tcp_established_and_a_rst_closes_it() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let mut packets = connection(&bed, T0, 40_001)[..3].to_vec();
    packets.extend(connection(&bed, T0, 40_002)[..2].to_vec());
    packets.push(bed.pkt(T0 + S, tcp(c(40_003), s(80), SYN, b"")));
    packets.push(bed.pkt(T0 + S, tcp(s(80), c(40_003), RST | ACK, b"")));
    let records = bed.run(&mut tracker, &packets, T0 + 2 * S);
    let state = |port: u16| {
        let r = records.iter().find(|r| r["src_port"] == port).unwrap();
        (r["flow"]["state"].clone(), r["tcp"]["state"].clone())
    };
    assert_eq!(state(40_001), ("established".into(), "established".into()));
    assert_eq!(state(40_002), ("new".into(), "syn_recv".into()));
    assert_eq!(state(40_003), ("closed".into(), "closed".into()));
}

#[test]
fn a_syn_ack_first_makes_its_receiver_the_client() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0, tcp(s(443), c(50_000), SYN | ACK, b"")),
        bed.pkt(T0 + 1_000, tcp(c(50_000), s(443), ACK, b"")),
    ];
    let records = bed.run(&mut tracker, &packets, T0 + S);
    let r = &records[0];
    assert_eq!(
        (r["src_ip"].as_str(), r["src_port"].as_u64()),
        (Some("172.17.0.2"), Some(50_000))
    );
    assert_eq!(
        (r["dest_ip"].as_str(), r["dest_port"].as_u64()),
        (Some("93.184.216.34"), Some(443))
    );
    assert_eq!(r["flow"]["pkts_toserver"], 1);
    assert_eq!(r["flow"]["pkts_toclient"], 1);
    assert_eq!(r["tcp"]["tcp_flags_ts"], "10");
    assert_eq!(r["tcp"]["tcp_flags_tc"], "12");
    assert_eq!(r["flow"]["state"], "established");
}

#[test]
fn udp_both_ways_is_established_and_one_way_is_new() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0, udp(c(5353), s(53), b"query")),
        bed.pkt(T0 + 2_000_000, udp(s(53), c(5353), b"answer!")),
        bed.pkt(T0 + 3_000_000, udp(c(5354), s(53), b"lost")),
    ];
    let records = bed.run(&mut tracker, &packets, T0 + S);
    assert_eq!(records.len(), 2);
    let (both, one) = (&records[0], &records[1]);
    assert_eq!(both["proto"], "UDP");
    assert_eq!(both["flow"]["state"], "established");
    assert_eq!(both["flow"]["pkts_toclient"], 1);
    assert_eq!(both["flow"]["bytes_toclient"], packets[1].meta.original_len);
    assert!(both.get("tcp").is_none());
    assert_eq!(one["flow"]["state"], "new");
    assert_eq!(one["src_port"], 5354);
}

#[test]
fn icmp_records_type_and_code_instead_of_ports() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0, icmp_echo(CLIENT, SERVER, 8, 77)),
        bed.pkt(T0 + 1_000, icmp_echo(SERVER, CLIENT, 0, 77)),
        bed.pkt(T0 + 2_000, icmp([10, 0, 0, 1], CLIENT, 3, 4)),
        bed.pkt(T0 + 3_000, icmpv6_echo(1, 2, 128)),
    ];
    let records = bed.run(&mut tracker, &packets, T0 + S);
    assert_eq!(records.len(), 3);
    let echo = &records[0];
    assert_eq!(echo["proto"], "ICMP");
    assert_eq!(
        (echo["icmp_type"].as_u64(), echo["icmp_code"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(echo["response_icmp_type"], 0);
    assert_eq!(echo["response_icmp_code"], 0);
    assert_eq!(echo["flow"]["state"], "established");
    assert!(echo.get("src_port").is_none() && echo.get("dest_port").is_none());
    let unreachable = &records[1];
    assert_eq!(
        (unreachable["icmp_type"].as_u64(), unreachable["icmp_code"].as_u64()),
        (Some(3), Some(4))
    );
    assert!(unreachable.get("response_icmp_type").is_none());
    let v6 = &records[2];
    assert_eq!(v6["proto"], "IPv6-ICMP");
    assert_eq!(v6["src_ip"], "fd00::1");
    assert_eq!(v6["dest_ip"], "fd00::2");
    assert_eq!(v6["icmp_type"], 128);
}

#[test]
fn other_protocols_are_named_by_number_without_ports() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![bed.pkt(T0, ipv4(CLIENT, SERVER, 47, &[0; 8]))];
    let records = bed.run(&mut tracker, &packets, T0 + S);
    assert_eq!(records[0]["proto"], "47");
    assert!(records[0].get("src_port").is_none());
}

#[test]
fn a_tick_ends_flows_at_their_timeout() {
    let bed = Bed::new();
    let timeouts: FlowTimeouts = "udp.new=30,tcp.closed=5".parse().unwrap();
    let mut tracker = bed.tracker_with(1024, timeouts);
    let mut packets = vec![bed.pkt(T0, udp(c(1), s(2), b"x"))];
    packets.extend(connection(&bed, T0, 40_000));
    tracker.batch(&bed.batch(&packets, &[]));
    let last_tcp = packets.last().unwrap().meta.timestamp_ns;
    tracker.tick(T0 + 5 * S - 1 + (last_tcp - T0));
    assert!(bed.records().is_empty());
    tracker.tick(last_tcp + 5 * S);
    let records = bed.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["proto"], "TCP");
    assert_eq!(records[0]["flow"]["reason"], "timeout");
    tracker.tick(T0 + 30 * S - 1);
    assert_eq!(bed.records().len(), 1);
    tracker.tick(T0 + 30 * S);
    let records = bed.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["flow"]["reason"], "timeout");
    assert_eq!(records[1]["flow"]["state"], "new");
    assert_eq!(records[1]["flow"]["end"], records[1]["flow"]["start"]);
    assert_eq!(tracker.active_flows(), 0);
    assert_eq!(tracker.counters().records_timeout, 2);
}

#[test]
fn a_packet_after_the_timeout_ends_the_flow_and_starts_another_with_the_same_tuple() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0, udp(c(1), s(2), b"a")),
        bed.pkt(T0 + 10 * S, udp(c(1), s(2), b"b")),
        // 30 s after the last: the first flow has timed out.
        bed.pkt(T0 + 40 * S, udp(s(2), c(1), b"c")),
    ];
    let records = bed.run(&mut tracker, &packets, T0 + 41 * S);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["flow"]["reason"], "timeout");
    assert_eq!(records[0]["flow"]["pkts_toserver"], 2);
    assert_eq!(records[0]["flow"]["age"], 10);
    assert_eq!(records[1]["flow"]["reason"], "shutdown");
    // The second flow's first packet came from the server: it is its client.
    assert_eq!(records[1]["src_port"], 2);
    assert_ne!(records[0]["flow_id"], records[1]["flow_id"]);
    assert_eq!(tracker.counters().flows_started, 2);
}

#[test]
fn a_full_table_ends_the_flow_idle_longest_as_forced() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(2);
    let packets = vec![
        bed.pkt(T0, udp(c(1), s(53), b"a")),
        bed.pkt(T0 + 1_000, udp(c(2), s(53), b"b")),
        bed.pkt(T0 + 2_000, udp(c(1), s(53), b"a again")),
        bed.pkt(T0 + 3_000, udp(c(3), s(53), b"c")),
    ];
    let records = bed.run(&mut tracker, &packets, T0 + S);
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["src_port"], 2);
    assert_eq!(records[0]["flow"]["reason"], "forced");
    assert_eq!(records[1]["flow"]["reason"], "shutdown");
    assert_eq!(records[1]["src_port"], 1);
    assert_eq!(records[1]["flow"]["pkts_toserver"], 2);
    let counters = tracker.counters();
    assert_eq!((counters.records_forced, counters.records_shutdown), (1, 2));
}

/// Many flows open at the finish: their records, rendered on two threads
/// in turn, are the bytes one thread writes, after the lines buffered
/// before (a flow ended by the finish's clock), wherever the pieces end.
#[test]
fn shutdown_records_rendered_on_two_threads_are_the_lines_of_one() {
    let run = |two_threads_from: usize| {
        let bed = Bed::new();
        let mut tracker = bed.tracker(100_000);
        tracker.set_two_thread_shutdown_flows(two_threads_from);
        let mut packets = vec![bed.pkt(T0, udp(c(1), s(53), b"old"))];
        for port in 0..5_000u16 {
            let at = T0 + 100 * S + u64::from(port) * 1_000;
            packets.push(bed.pkt(at, udp(c(2 + port), s(53 + port % 7), b"q")));
            if port % 3 == 0 {
                packets.push(bed.pkt(at + 10, udp(s(53 + port % 7), c(2 + port), b"answer")));
            }
        }
        tracker.batch(&bed.batch(&packets, &[]));
        tracker.finish(T0 + 101 * S);
        (bed.output(), tracker.counters())
    };
    let (one, one_counts) = run(usize::MAX);
    for from in [1, 4096, 5_001] {
        let (two, two_counts) = run(from);
        assert_eq!(
            String::from_utf8(two).unwrap(),
            String::from_utf8(one.clone()).unwrap(),
            "from {from}"
        );
        assert_eq!(two_counts, one_counts);
    }
    let text = String::from_utf8(one).unwrap();
    assert_eq!(text.lines().count(), 5_001);
    assert!(text.lines().next().unwrap().contains("\"timeout\""));
    assert_eq!(one_counts.records_shutdown, 5_000);
}

#[test]
fn finish_ends_flows_past_their_timeout_with_timeout_and_the_rest_with_shutdown() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0, udp(c(1), s(53), b"old")),
        bed.pkt(T0 + 100 * S, udp(c(2), s(53), b"recent")),
    ];
    // Fed without ticks: the old flow is still in the table at the end.
    let records = bed.run(&mut tracker, &packets, T0 + 110 * S);
    assert_eq!(records.len(), 2);
    // Ended when the recent packet moved the clock past its timeout.
    assert_eq!(
        (records[0]["src_port"].as_u64(), records[0]["flow"]["reason"].as_str()),
        (Some(1), Some("timeout"))
    );
    assert_eq!(
        (records[1]["src_port"].as_u64(), records[1]["flow"]["reason"].as_str()),
        (Some(2), Some("shutdown"))
    );

    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0, udp(c(1), s(53), b"one")),
        bed.pkt(T0 + 5 * S, udp(c(2), s(53), b"two")),
    ];
    let records = bed.run(&mut tracker, &packets, T0 + 30 * S);
    assert_eq!(records[0]["flow"]["reason"], "timeout");
    assert_eq!(records[1]["flow"]["reason"], "shutdown");
}

#[test]
fn suppressed_copies_are_counted_on_their_flow_and_their_taps_listed() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let first = bed.pkt(T0, tcp(c(40_000), s(80), SYN, b""));
    let reply = bed.pkt_at(
        T0 + 1_000_000,
        tcp(s(80), c(40_000), SYN | ACK, b""),
        bed.veth,
        TapDirection::Outgoing,
    );
    // A notice that overtook its packet (offline, notices are not held).
    let early = bed.notice(&first, bed.bridge, TapDirection::Incoming);
    tracker.batch(&bed.batch(&[], &[early]));
    let notices = [
        bed.notice(&first, bed.uplink, TapDirection::Outgoing),
        bed.notice(&reply, bed.uplink, TapDirection::Incoming),
        bed.notice(&reply, bed.bridge, TapDirection::Outgoing),
        // No flow, and a flow never seen.
        SuppressedNotice { flow: None, ..early },
        bed.notice(&bed.pkt(T0, udp(c(9), s(9), b"")), bed.bridge, TapDirection::Incoming),
    ];
    tracker.batch(&bed.batch(&[first, reply], &notices));
    assert_eq!(tracker.counters().notices_pending, 1);
    tracker.finish(T0 + S);
    let records = bed.records();
    assert_eq!(records.len(), 1);
    let ours = &records[0]["ringsieve"];
    assert_eq!(ours["copies_suppressed"], 4);
    assert_eq!(ours["delivered"], 2);
    assert_eq!(
        ours["taps"],
        serde_json::json!(["br0:in", "br0:out", "eth0:in", "eth0:out", "veth1:in", "veth1:out"])
    );
    let counters = tracker.counters();
    assert_eq!(
        (
            counters.notices_matched,
            counters.notices_unmatched,
            counters.notices_pending
        ),
        (4, 2, 0)
    );
}

#[test]
fn the_nat_public_tuple_is_written_client_to_server() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let container = |p: &Pkt| p.meta.flow.unwrap().tuple;
    let public_of = |tuple: FlowTuple| FlowTuple {
        src: flow::Endpoint {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            port: 61_000,
        },
        ..tuple
    };
    let query = bed.pkt(T0, udp(c(5353), ([1, 1, 1, 1], 53), b"q"));
    // Only the reply carries the binding, in its own direction.
    let mut answer = bed.pkt(T0 + 1_000, udp(([1, 1, 1, 1], 53), c(5353), b"a"));
    let forward = NatTranslation {
        public: public_of(container(&query)),
        container: container(&query),
    };
    answer.meta.nat = Some(forward.reversed());
    answer.meta.overlap_different_data = true;
    let records = bed.run(&mut tracker, &[query, answer], T0 + S);
    let ours = &records[0]["ringsieve"];
    assert_eq!(
        ours["nat"],
        serde_json::json!({"src_ip": "198.51.100.7", "src_port": 61000, "dest_ip": "1.1.1.1", "dest_port": 53})
    );
    assert_eq!(records[0]["src_ip"], "172.17.0.2");
    assert_eq!(ours["overlap_different_data"], 1);
}

#[test]
fn out_of_order_and_flowless_packets_are_counted() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let packets = vec![
        bed.pkt(T0 + 5_000, udp(c(1), s(2), b"late start")),
        bed.pkt(T0, udp(s(2), c(1), b"earlier")),
        bed.pkt(T0 + 6_000, arp()),
    ];
    assert!(packets[2].meta.flow.is_none());
    let records = bed.run(&mut tracker, &packets, T0 + S);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["ringsieve"]["out_of_order"], 1);
    assert_eq!(records[0]["flow"]["start"], "2026-11-27T06:32:34.000000+0000");
    assert_eq!(records[0]["flow"]["end"], "2026-11-27T06:32:34.000005+0000");
    let counters = tracker.counters();
    assert_eq!(
        (counters.out_of_order, counters.packets_without_flow, counters.packets),
        (1, 1, 3)
    );
}

/// A mix of flows over ten minutes: connections, DNS, pings, reused
/// tuples, timeouts, out-of-order packets, notices, evictions.
fn mix(bed: &Bed) -> (Vec<Pkt>, Vec<(usize, SuppressedNotice)>) {
    let mut packets = Vec::new();
    let mut notices = Vec::new();
    let mut state = 0x1234_5678_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut at = T0;
    for n in 0..600u64 {
        at += next() % (S / 4);
        let port = 30_000 + (next() % 50) as u16;
        match next() % 5 {
            0 => packets.extend(connection(bed, at, port)),
            // Left open: only a shutdown ends it.
            1 => packets.extend(connection(bed, at, port).into_iter().take(5)),
            2 => {
                packets.push(bed.pkt(at, udp(c(port), s(53), b"q")));
                if next() % 3 != 0 {
                    packets.push(bed.pkt(at + 500_000, udp(s(53), c(port), b"answer")));
                }
            }
            3 => packets.push(bed.pkt(at, icmp_echo(CLIENT, SERVER, 8, port))),
            _ => {
                // The second packet is older than the first: out of order.
                packets.push(bed.pkt(at, udp(c(port), s(123), b"ntp")));
                packets.push(bed.pkt(at - next() % 1_000_000, udp(s(123), c(port), b"ntp reply")));
            }
        }
        if n % 5 == 0 {
            let index = packets.len() - 1;
            notices.push((index, bed.notice(&packets[index], bed.uplink, TapDirection::Outgoing)));
        }
    }
    (packets, notices)
}

/// Runs `packets` in batches of the sizes `sizes` gives, each followed by a
/// tick at the batch's latest timestamp (as the pool does offline), with
/// each notice in the batch of its packet.
fn run_in_batches(bed: &Bed, mut sizes: impl FnMut() -> usize, ticks: bool) -> Vec<u8> {
    let (packets, notices) = mix(bed);
    let timeouts: FlowTimeouts = "tcp.closed=2,udp.new=5,udp.established=20,icmp.new=4".parse().unwrap();
    let mut tracker = bed.tracker_with(25, timeouts);
    let mut start = 0;
    let mut clock = 0;
    while start < packets.len() {
        let end = (start + sizes().max(1)).min(packets.len());
        let batch_notices: Vec<SuppressedNotice> = notices
            .iter()
            .filter(|(index, _)| (start..end).contains(index))
            .map(|(_, notice)| *notice)
            .collect();
        tracker.batch(&bed.batch(&packets[start..end], &batch_notices));
        clock = packets[start..end]
            .iter()
            .map(|p| p.meta.timestamp_ns)
            .fold(clock, u64::max);
        if ticks {
            tracker.tick(clock);
        }
        start = end;
    }
    tracker.finish(clock + 7 * S);
    let counters = tracker.counters();
    assert!(
        counters.records_forced > 0 && counters.records_timeout > 0 && counters.records_shutdown > 0,
        "{counters:?}"
    );
    assert!(counters.out_of_order > 0);
    assert!(counters.notices_matched > 0);
    assert_eq!(counters.records(), counters.flows_started);
    assert_eq!(bed.records().len() as u64, counters.records());
    bed.output()
}

#[test]
fn batch_boundaries_and_ticks_do_not_change_the_output() {
    let whole = run_in_batches(&Bed::new(), || usize::MAX, false);
    let singles = run_in_batches(&Bed::new(), || 1, true);
    let mut n = 7usize;
    let varied = run_in_batches(
        &Bed::new(),
        move || {
            n = n * 31 % 97;
            n
        },
        true,
    );
    assert!(whole.len() > 10_000);
    assert!(whole == singles, "one batch and batches of one differ");
    assert!(whole == varied, "one batch and varied batches differ");
}

#[test]
fn stale_heap_entries_stay_bounded() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(100);
    for n in 0..5_000u64 {
        let port = (n % 60_000) as u16 + 1;
        let at = T0 + n * 1_000;
        let packets = [
            bed.pkt(at, tcp(c(port), s(80), SYN, b"")),
            bed.pkt(at + 1, tcp(s(80), c(port), RST | ACK, b"")),
        ];
        tracker.batch(&bed.batch(&packets, &[]));
        assert!(tracker.heap_len() <= 2 * 100 + 1024 + 1, "{}", tracker.heap_len());
    }
    tracker.finish(T0 + S);
    assert_eq!(tracker.counters().records(), 5_000);
    assert_eq!(bed.records().len(), 5_000);
}

#[test]
fn cooked_and_raw_captures_give_tcp_flags_too() {
    let frame = tcp(c(1), s(2), SYN | ACK, b"");
    let ip = &frame[14..];
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 5, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(ip);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(ip);
    for (bytes, link) in [(&frame[..], 1), (&sll2[..], 276), (&sll[..], 113), (ip, 101), (ip, 228)] {
        let parsed = crate::tracker::parse_link(bytes, link, None).unwrap_or_else(|| panic!("link {link}"));
        match parsed.transport {
            Some(flow::Transport::Tcp(tcp)) => assert_eq!(tcp.flags.bits(), u16::from(SYN | ACK), "link {link}"),
            other => panic!("link {link}: {other:?}"),
        }
    }
    assert!(crate::tracker::parse_link(ip, 147, None).is_none());
}

#[test]
fn counters_sum_over_workers_and_render_as_json() {
    let one = FlowTrackerCounters {
        packets: 3,
        flows_started: 2,
        records_timeout: 1,
        records_forced: 1,
        write_errors: 1,
        ..Default::default()
    };
    let mut sum = FlowTrackerCounters::default();
    sum.add(&one);
    sum.add(&one);
    assert_eq!(sum.packets, 6);
    assert_eq!(sum.records(), 4);
    let json = sum.to_json();
    assert_eq!(json["records"]["total"], 4);
    assert_eq!(json["records"]["forced"], 2);
    assert_eq!(json["flows_started"], 4);
    assert_eq!(json["write_errors"], 2);
}

#[test]
fn write_failures_are_counted_not_fatal() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let bed = Bed::new();
    let writer = Arc::new(EveWriter::from_writer("broken", Broken));
    let mut tracker = FlowTracker::new(FlowTrackerConfig::default(), Arc::clone(&writer));
    tracker.batch(&bed.batch(&connection(&bed, T0, 1), &[]));
    tracker.batch(&bed.batch(&connection(&bed, T0, 2), &[]));
    tracker.finish(T0 + S);
    let counters = tracker.counters();
    assert_eq!((counters.write_errors, counters.records_lost), (1, 2));
    assert_eq!(writer.errors(), 1);
    assert!(writer.finish().is_err());
}

#[test]
fn containers_are_named_from_the_veths_that_showed_the_flow() {
    let mut bed = Bed::new();
    let web = bed.container_veth("vethweb", 10, "web");
    let db = bed.container_veth("vethdb", 11, "db");
    bed.veth = web;
    let mut tracker = bed.tracker(1024);
    // web (the client) sends on its veth; the copy on db's veth going out
    // to db is a suppressed duplicate; db's answer comes in on db's veth.
    let query = bed.pkt_at(T0, udp(c(5353), s(53), b"query"), web, TapDirection::Incoming);
    let answer = bed.pkt_at(
        T0 + 1_000_000,
        udp(s(53), c(5353), b"answer"),
        db,
        TapDirection::Incoming,
    );
    let duplicate = bed.notice(&query, db, TapDirection::Outgoing);
    tracker.batch(&bed.batch(&[query, answer], &[duplicate]));
    tracker.finish(T0 + S);
    let records = bed.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["src_container"], serde_json::json!({ "name": "web" }));
    assert_eq!(records[0]["dest_container"], serde_json::json!({ "name": "db" }));

    // A flow to the outside names its container only.
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    let records = bed.run(&mut tracker, &[bed.pkt(T0, udp(c(1), s(2), b"x"))], T0 + S);
    assert!(records[0].get("src_container").is_none() && records[0].get("dest_container").is_none());
}

#[test]
fn a_unicast_frame_the_bridge_flooded_to_another_container_does_not_name_it() {
    let dest = |records: &[serde_json::Value]| records[0].get("dest_container").cloned();
    let setup = || {
        let mut bed = Bed::new();
        let web = bed.container_veth("vethweb", 10, "web");
        let db = bed.container_veth("vethdb", 11, "db");
        let cache = bed.container_veth("vethcache", 12, "cache");
        bed.veth = web;
        (bed, web, db, cache)
    };

    // The bridge has not learned db's MAC yet: web's first query goes out
    // on every other veth, cache's copy read first. db's answer, which it
    // sent itself, names the server.
    let (bed, web, db, cache) = setup();
    let mut tracker = bed.tracker(1024);
    let query = bed.pkt_at(T0, udp(c(5353), s(53), b"query"), web, TapDirection::Incoming);
    let answer = bed.pkt_at(
        T0 + 1_000_000,
        udp(s(53), c(5353), b"answer"),
        db,
        TapDirection::Incoming,
    );
    let flooded = bed.notice(&query, cache, TapDirection::Outgoing);
    let to_db = bed.notice(&query, db, TapDirection::Outgoing);
    tracker.batch(&bed.batch(&[query], &[flooded, to_db]));
    tracker.batch(&bed.batch(&[answer], &[]));
    tracker.finish(T0 + S);
    let records = bed.records();
    assert_eq!(records[0]["src_container"], serde_json::json!({ "name": "web" }));
    assert_eq!(dest(&records), Some(serde_json::json!({ "name": "db" })), "{records:?}");

    // No answer: flooded to two containers, the server is not named
    // rather than named wrongly.
    let (bed, web, db, cache) = setup();
    let mut tracker = bed.tracker(1024);
    let query = bed.pkt_at(T0, udp(c(5353), s(53), b"query"), web, TapDirection::Incoming);
    let flooded = bed.notice(&query, cache, TapDirection::Outgoing);
    let to_db = bed.notice(&query, db, TapDirection::Outgoing);
    tracker.batch(&bed.batch(&[query], &[flooded, to_db]));
    tracker.finish(T0 + S);
    assert_eq!(dest(&bed.records()), None);

    // No answer and no flood: the one veth the packets went out on names
    // the server.
    let (bed, web, db, _) = setup();
    let mut tracker = bed.tracker(1024);
    let query = bed.pkt_at(T0, udp(c(5353), s(53), b"query"), web, TapDirection::Incoming);
    let to_db = bed.notice(&query, db, TapDirection::Outgoing);
    tracker.batch(&bed.batch(&[query], &[to_db]));
    tracker.finish(T0 + S);
    assert_eq!(dest(&bed.records()), Some(serde_json::json!({ "name": "db" })));
}

#[test]
fn a_flow_whose_first_packet_arrives_late_is_turned_to_its_earliest_sender() {
    let bed = Bed::new();
    let mut tracker = bed.tracker(1024);
    // The answer is read before the query it answers (two rings): the
    // query's sender is still the client.
    let answer = bed.pkt(T0 + 1_000_000, udp(s(53), c(5353), b"answer"));
    let query = bed.pkt(T0, udp(c(5353), s(53), b"query"));
    let records = bed.run(&mut tracker, &[answer.clone(), query.clone()], T0 + S);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["src_port"], 5353, "{record}");
    assert_eq!(record["dest_port"], 53, "{record}");
    assert_eq!(record["flow"]["pkts_toserver"], 1);
    assert_eq!(record["flow"]["bytes_toserver"], query.meta.original_len);
    assert_eq!(record["flow"]["bytes_toclient"], answer.meta.original_len);
    assert_eq!(record["ringsieve"]["out_of_order"], 1);
}
