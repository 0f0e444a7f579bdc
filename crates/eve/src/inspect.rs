//! The hook through which detection runs inside the flow tracker: a
//! [`FlowInspector`] sees every packet of a flow after the tracker has
//! counted it, keeps its own state per flow (created with the flow, dropped
//! when the flow's record is written, so it is bounded by the tracker's
//! table), and returns [`FlowEvent`]s: alerts and anomalies, which the
//! tracker writes as EVE `alert` and `anomaly` events with the flow's
//! context (its `flow_id`, containers, taps and NAT tuple), and which mark
//! the flow's record `alerted`.
//!
//! The flow tracker without an inspector uses [`NoInspector`], which costs
//! nothing: packets are not parsed for it.

use std::sync::Arc;

use flow::{FlowTuple, ParsedPacket, TapDirection};
use pipeline::interfaces::InterfaceId;
use pipeline::worker::PacketMeta;

/// One packet as an inspector sees it, with its place in the flow.
#[derive(Debug)]
pub struct InspectedPacket<'a> {
    /// The delivered packet's metadata.
    pub meta: &'a PacketMeta,
    /// Its canonical (container-side) tuple, in the packet's direction.
    pub tuple: &'a FlowTuple,
    /// Whether it travelled from the flow's client to its server.
    pub to_server: bool,
    /// Whether the flow is established after this packet (TCP: the
    /// handshake completed or both sides sent data; other protocols: both
    /// sides sent).
    pub established: bool,
    /// Its headers, parsed from the bytes delivered.
    pub parsed: &'a ParsedPacket<'a>,
}

/// What an inspector found in a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// A signature matched.
    Alert(Alert),
    /// Something the inspection had to report about the traffic itself.
    Anomaly(Anomaly),
}

/// An alert, in the terms of Suricata's EVE `alert` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `allowed` (an IDS lets every packet through).
    pub action: &'static str,
    /// Generator id.
    pub gid: u32,
    /// The rule's sid.
    pub signature_id: u32,
    /// The rule's revision.
    pub rev: u32,
    /// The rule's message.
    pub signature: Arc<str>,
    /// The description of the rule's classtype, empty without one.
    pub category: Arc<str>,
    /// The rule's priority: 1 is the most severe.
    pub severity: u8,
    /// For a match in reassembled stream data, the stream offset (of the
    /// packet's direction) where the match ended.
    pub stream_offset: Option<u64>,
}

/// An anomaly, in the terms of Suricata's EVE `anomaly` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The layer that found it: `stream` for TCP reassembly.
    pub kind: &'static str,
    /// What it was, e.g. `reassembly_overlap_different_data`.
    pub event: &'static str,
    /// The TCP sequence range concerned (end exclusive), when there is one.
    pub seq_range: Option<(u32, u32)>,
}

/// An event an inspector found when its flow ended, with the packet it is
/// about (the last one the inspector saw in that direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEndEvent {
    /// The event.
    pub event: FlowEvent,
    /// The packet's canonical (container-side) tuple, in its direction.
    pub tuple: FlowTuple,
    /// Whether the packet travelled from the flow's client to its server.
    pub to_server: bool,
    /// When it was captured.
    pub timestamp_ns: u64,
    /// Where it was captured.
    pub interface: InterfaceId,
    /// Which way it crossed that interface.
    pub direction: TapDirection,
}

/// Detection run by the flow tracker on each of its packets.
pub trait FlowInspector: Send {
    /// What the inspector keeps per flow.
    type FlowData: Send;

    /// `false` for an inspector that does nothing: the tracker then skips
    /// parsing packets for it.
    const ACTIVE: bool = true;

    /// The state of a flow that starts.
    fn flow_started(&mut self) -> Self::FlowData;

    /// Inspects one packet of the flow whose state is `flow`, pushing what
    /// it found to `events`.
    fn inspect(&mut self, flow: &mut Self::FlowData, packet: &InspectedPacket<'_>, events: &mut Vec<FlowEvent>);

    /// Called at each batch start, before any packet: the place to take a
    /// new rule set.
    fn batch_started(&mut self) {}

    /// Called once when the flow ends (timeout, eviction, shutdown), just
    /// before its state is dropped: the place to decide what waited for
    /// more data. The tracker writes the events before the flow's record.
    fn flow_ended(&mut self, _flow: &mut Self::FlowData, _events: &mut Vec<FlowEndEvent>) {}
}

/// The inspector of a tracker that only writes flow records.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoInspector;

impl FlowInspector for NoInspector {
    type FlowData = ();

    const ACTIVE: bool = false;

    fn flow_started(&mut self) {}

    fn inspect(&mut self, _flow: &mut (), _packet: &InspectedPacket<'_>, _events: &mut Vec<FlowEvent>) {}
}
