//! The signature engine as the flow tracker's [`FlowInspector`]: each
//! packet a worker's tracker counts is matched against the rules (header,
//! flow, flowbits, payload), and each TCP segment's payload also goes into
//! its direction's [`StreamReassembler`], whose new contiguous data is
//! scanned, so content split across segments matches once. Overlaps with
//! different data (found by the reassembler, or flagged by the dedup when
//! it saw two copies differ) become EVE anomaly events. A FIN or RST ends
//! its sender's direction: stream matches that waited for more data (a
//! negated check at a segment boundary) are decided then; those of a flow
//! that ends without either (timeout, eviction, shutdown) are decided when
//! the tracker ends it, as about the direction's last segment.
//!
//! The per-flow state (flowbits, the two reassemblers) lives in the
//! tracker's table and is dropped with the flow, so it is bounded by the
//! tracker's `max_flows`; stream buffers are also bounded by the depth per
//! direction and a memory account the caller may share between workers.

use std::sync::Arc;
use std::time::Duration;

use eve::{Alert, Anomaly, FlowEndEvent, FlowEvent, FlowInspector, InspectedPacket};
use flow::{FlowTuple, TapDirection, TcpFlags, Transport};
use pipeline::interfaces::InterfaceId;
use rules::{
    Detector, DetectorConfig, DetectorStats, Direction, FlowState, Match, Packet, Protocol, RuleSet, StreamAnomaly,
    StreamMemory, StreamReassembler, Verdict,
};

use crate::source::RuleSource;

/// What detection keeps per flow.
#[derive(Debug, Default)]
pub struct FlowDetection {
    bits: FlowState,
    /// The reassembler of each direction: to server, to client.
    streams: [Option<StreamReassembler>; 2],
    /// The last TCP segment of each direction: the packet an alert raised
    /// when the flow ends is about.
    last_segments: [Option<LastSegment>; 2],
}

/// What matching and the EVE event need of a direction's last segment.
#[derive(Clone, Copy, Debug)]
struct LastSegment {
    tuple: FlowTuple,
    timestamp_ns: u64,
    interface: InterfaceId,
    direction: TapDirection,
    ttl: u8,
    tcp_flags: u8,
    established: bool,
}

/// Counters of one worker's detection, beyond the matcher's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectionCounters {
    /// The matcher's counters (packets, stream chunks, candidates, matches,
    /// alerts, passes, suppressed alerts, inspection-limit hits).
    pub matcher: DetectorStats,
    /// Stream directions reassembled.
    pub streams: u64,
    /// Segments whose bytes differed from bytes already seen (anomaly
    /// events written).
    pub overlaps_different_data: u64,
    /// Of those, the ones only the dedup saw (the reassembler had no more
    /// bytes to compare).
    pub overlaps_from_dedup: u64,
    /// Stream directions that reached their depth.
    pub depth_reached: u64,
    /// Out-of-order segments dropped at the memory cap.
    pub out_of_order_dropped: u64,
    /// Gaps skipped by a stream.
    pub gaps_skipped: u64,
    /// Rule sets taken up after a reload.
    pub rule_reloads: u64,
}

impl DetectionCounters {
    /// Adds `other` (another worker's).
    pub fn add(&mut self, other: &DetectionCounters) {
        let (m, o) = (&mut self.matcher, &other.matcher);
        m.packets += o.packets;
        m.stream_chunks += o.stream_chunks;
        m.candidates += o.candidates;
        m.matches += o.matches;
        m.alerts += o.alerts;
        m.passed += o.passed;
        m.suppressed += o.suppressed;
        m.inspection_limit_hits += o.inspection_limit_hits;
        self.streams += other.streams;
        self.overlaps_different_data += other.overlaps_different_data;
        self.overlaps_from_dedup += other.overlaps_from_dedup;
        self.depth_reached += other.depth_reached;
        self.out_of_order_dropped += other.out_of_order_dropped;
        self.gaps_skipped += other.gaps_skipped;
        self.rule_reloads += other.rule_reloads;
    }

    /// The counters for the exit summary.
    pub fn to_json(&self) -> serde_json::Value {
        let m = &self.matcher;
        serde_json::json!({
            "packets": m.packets,
            "stream_chunks": m.stream_chunks,
            "candidates": m.candidates,
            "matches": m.matches,
            "alerts": m.alerts,
            "passed": m.passed,
            "suppressed": m.suppressed,
            "inspection_limit_hits": m.inspection_limit_hits,
            "streams": self.streams,
            "overlaps_different_data": self.overlaps_different_data,
            "overlaps_from_dedup": self.overlaps_from_dedup,
            "depth_reached": self.depth_reached,
            "out_of_order_dropped": self.out_of_order_dropped,
            "gaps_skipped": self.gaps_skipped,
            "rule_reloads": self.rule_reloads,
        })
    }
}

/// One worker's signature detection.
#[derive(Debug)]
pub struct SignatureInspector {
    source: Arc<RuleSource>,
    generation: u64,
    rules: Arc<RuleSet>,
    detector: Detector,
    counters: DetectionCounters,
}

impl SignatureInspector {
    /// A worker's detection with the rules of `source`, its stream buffers
    /// charged to `memory` (share one account between workers for a global
    /// cap).
    pub fn new(source: Arc<RuleSource>, config: DetectorConfig, memory: Arc<StreamMemory>) -> SignatureInspector {
        let (generation, rules) = source.current();
        SignatureInspector {
            source,
            generation,
            rules,
            detector: Detector::with_memory(config, memory),
            counters: DetectionCounters::default(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> DetectionCounters {
        DetectionCounters {
            matcher: *self.detector.stats(),
            ..self.counters
        }
    }

    /// The rules in use by this worker.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The stream memory account.
    pub fn stream_memory(&self) -> &Arc<StreamMemory> {
        self.detector.stream_memory()
    }
}

impl FlowInspector for SignatureInspector {
    type FlowData = FlowDetection;

    fn flow_started(&mut self) -> FlowDetection {
        FlowDetection::default()
    }

    fn flow_ended(&mut self, flow: &mut FlowDetection, events: &mut Vec<FlowEndEvent>) {
        self.decide_at_flow_end(flow, events);
    }

    fn batch_started(&mut self) {
        if self.source.generation() != self.generation {
            let (generation, rules) = self.source.current();
            self.generation = generation;
            self.rules = rules;
            self.counters.rule_reloads += 1;
        }
    }

    fn inspect(&mut self, flow: &mut FlowDetection, packet: &InspectedPacket<'_>, events: &mut Vec<FlowEvent>) {
        let Some(transport) = &packet.parsed.transport else {
            return;
        };
        let direction = if packet.to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let (proto, payload) = match transport {
            Transport::Tcp(tcp) => (Protocol::Tcp, tcp.payload),
            Transport::Udp(udp) => (Protocol::Udp, udp.payload),
            Transport::Icmpv4(icmp) => (Protocol::Icmp, icmp.payload),
            Transport::Icmpv6(icmp) => (Protocol::Icmpv6, icmp.payload),
            Transport::NonFirstFragment { protocol, payload } | Transport::Other { protocol, payload } => {
                (Protocol::Other(u8::from(*protocol)), *payload)
            }
        };
        let FlowDetection {
            bits,
            streams,
            last_segments,
        } = flow;
        let mut pkt = Packet::new(proto, packet.tuple.src.addr, packet.tuple.dst.addr, payload, bits);
        pkt.src_port = packet.tuple.src.port;
        pkt.dst_port = packet.tuple.dst.port;
        pkt.direction = Some(direction);
        pkt.established = packet.established;
        pkt.timestamp = Duration::from_nanos(packet.meta.timestamp_ns);
        if let Some(network) = &packet.parsed.network {
            pkt.ttl = network.ttl;
        }
        // The direction whose reassembled data is scanned after the packet.
        let mut stream_side = None;
        let mut overlap_reported = false;
        match transport {
            Transport::Tcp(tcp) => {
                pkt.tcp_flags = tcp.flags.bits() as u8;
                let side = usize::from(!packet.to_server);
                last_segments[side] = Some(LastSegment {
                    tuple: *packet.tuple,
                    timestamp_ns: packet.meta.timestamp_ns,
                    interface: packet.meta.interface,
                    direction: packet.meta.tap.direction,
                    ttl: pkt.ttl,
                    tcp_flags: pkt.tcp_flags,
                    established: packet.established,
                });
                let slot = &mut streams[side];
                if slot.is_none() && tcp.flags.contains(TcpFlags::SYN) {
                    *slot = Some(self.detector.new_stream(&self.rules, tcp.seq.0.wrapping_add(1)));
                    self.counters.streams += 1;
                }
                if !tcp.payload.is_empty() {
                    if slot.is_none() {
                        // Picked up mid-connection: the stream starts here.
                        *slot = Some(self.detector.new_stream(&self.rules, tcp.seq.0));
                        self.counters.streams += 1;
                    }
                    if let Some(reassembler) = slot.as_mut() {
                        let outcome = reassembler.insert(tcp.seq.0, tcp.payload);
                        for anomaly in outcome.anomalies {
                            match anomaly {
                                StreamAnomaly::OverlapDifferentData { seq_start, seq_end } => {
                                    overlap_reported = true;
                                    self.counters.overlaps_different_data += 1;
                                    events.push(overlap_event(seq_start, seq_end));
                                }
                                StreamAnomaly::DepthReached => self.counters.depth_reached += 1,
                                StreamAnomaly::OutOfOrderDropped { .. } => self.counters.out_of_order_dropped += 1,
                                StreamAnomaly::GapSkipped { .. } => self.counters.gaps_skipped += 1,
                            }
                        }
                        pkt.payload_in_stream = true;
                        stream_side = Some(side);
                    }
                }
                if tcp.flags.contains(TcpFlags::FIN) || tcp.flags.contains(TcpFlags::RST) {
                    // The sender ends its direction: matches that waited
                    // for more of its data are decided now.
                    if let Some(reassembler) = slot.as_mut() {
                        reassembler.close();
                        stream_side = Some(side);
                    }
                }
                if packet.meta.overlap_different_data && !overlap_reported {
                    // The dedup saw this segment's bytes differ from a copy
                    // at another tap point; the reassembler no longer held
                    // the bytes to compare. Never hidden.
                    self.counters.overlaps_different_data += 1;
                    self.counters.overlaps_from_dedup += 1;
                    let start = tcp.seq.0;
                    events.push(overlap_event(start, start.wrapping_add(tcp.payload.len() as u32)));
                }
            }
            Transport::Icmpv4(icmp) => {
                pkt.icmp_type = u8::from(icmp.msg_type);
                pkt.icmp_code = icmp.code;
            }
            Transport::Icmpv6(icmp) => {
                pkt.icmp_type = u8::from(icmp.msg_type);
                pkt.icmp_code = icmp.code;
            }
            _ => {}
        }
        let verdict = self.rules.match_packet(&mut self.detector, &mut pkt);
        push_alerts(verdict, events);
        if let Some(reassembler) = stream_side.and_then(|side| streams[side].as_mut()) {
            let verdict = self.rules.match_stream(&mut self.detector, &mut pkt, reassembler);
            push_alerts(verdict, events);
        }
    }
}

impl SignatureInspector {
    /// Decides, with the data there is, the stream matches of `flow` that
    /// waited for more: the flow ended without a FIN or RST closing them.
    fn decide_at_flow_end(&mut self, flow: &mut FlowDetection, events: &mut Vec<FlowEndEvent>) {
        let FlowDetection {
            bits,
            streams,
            last_segments,
        } = flow;
        for (side, (stream, last)) in streams.iter_mut().zip(last_segments.iter()).enumerate() {
            let (Some(stream), Some(last)) = (stream.as_mut(), last) else {
                continue;
            };
            if !stream.has_pending() {
                continue;
            }
            stream.close();
            let to_server = side == 0;
            let mut pkt = Packet::new(Protocol::Tcp, last.tuple.src.addr, last.tuple.dst.addr, b"", bits);
            pkt.src_port = last.tuple.src.port;
            pkt.dst_port = last.tuple.dst.port;
            pkt.direction = Some(if to_server {
                Direction::ToServer
            } else {
                Direction::ToClient
            });
            pkt.established = last.established;
            pkt.ttl = last.ttl;
            pkt.tcp_flags = last.tcp_flags;
            pkt.timestamp = Duration::from_nanos(last.timestamp_ns);
            pkt.payload_in_stream = true;
            let verdict = self.rules.match_stream(&mut self.detector, &mut pkt, stream);
            events.extend(verdict.alerts.into_iter().map(|m| FlowEndEvent {
                event: FlowEvent::Alert(alert_of(m)),
                tuple: last.tuple,
                to_server,
                timestamp_ns: last.timestamp_ns,
                interface: last.interface,
                direction: last.direction,
            }));
        }
    }
}

fn overlap_event(seq_start: u32, seq_end: u32) -> FlowEvent {
    FlowEvent::Anomaly(Anomaly {
        kind: "stream",
        event: "reassembly_overlap_different_data",
        seq_range: Some((seq_start, seq_end)),
    })
}

fn push_alerts(verdict: Verdict, events: &mut Vec<FlowEvent>) {
    events.extend(verdict.alerts.into_iter().map(|m| FlowEvent::Alert(alert_of(m))));
}

/// An EVE alert from a match: Suricata's defaults where the rule says
/// nothing (category empty, severity the priority, 3 without classtype).
fn alert_of(m: Match) -> Alert {
    Alert {
        action: "allowed",
        gid: m.gid,
        signature_id: m.sid,
        rev: m.rev,
        signature: m.msg,
        category: m.class_description.unwrap_or_else(|| Arc::from("")),
        severity: m.priority,
        stream_offset: m.stream_offset,
    }
}
