//! One tracked flow: its counters per direction, its Suricata-like state
//! (`new`, `established`, `closed`, and for TCP the stream state and the
//! flags seen each way), where it was seen, and its EVE `flow` record.
//!
//! Directions are the client's: the sender of the flow's first packet is
//! the client, except when that packet is a TCP SYN+ACK (the handshake's
//! SYN was missed), whose receiver is the client.

use std::collections::HashMap;

use flow::{Endpoint, FlowTuple, TapDirection, TcpFlags};
use pipeline::interfaces::InterfaceId;

use pipeline::host_book::ContainerLabel;

use crate::inspect::FlowEvent;
use crate::json::{push_str_content, Object};
use crate::timeouts::{FlowState, FlowTimeouts, TimeoutProtocol};
use crate::timestamp::{seconds, timestamp_text};

/// Suricata masks flow ids to 51 bits, so they are exact as JSON numbers
/// (doubles).
pub const FLOW_ID_MASK: u64 = 0x0007_ffff_ffff_ffff;

/// Most distinct tap points one flow remembers.
const MAX_TAPS_PER_FLOW: usize = 64;

/// Why a flow's record was written, Suricata's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// No packet for its timeout.
    Timeout,
    /// Evicted to make room in a full table.
    Forced,
    /// The capture ended with the flow still open.
    Shutdown,
}

impl EndReason {
    /// `timeout`, `forced`, `shutdown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Forced => "forced",
            Self::Shutdown => "shutdown",
        }
    }
}

/// A flow's key in the table: the canonical tuple with its endpoints
/// ordered, the same for both directions, packed into words so comparing
/// two keys is five word compares; hashed by the canonical flow's
/// symmetric hash, which the dedup already computed with random keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableKey {
    hash: u64,
    /// Protocol, ports, address families; then each endpoint's address as
    /// two words (IPv4 in the low bytes of the first).
    words: [u64; 5],
}

impl std::hash::Hash for TableKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl TableKey {
    pub(crate) fn of(tuple: &FlowTuple, hash: u64) -> Self {
        let (low, high) = tuple.ordered_endpoints();
        let address = |endpoint: &Endpoint| -> (u64, u64, u64) {
            match endpoint.addr {
                std::net::IpAddr::V4(v4) => (u64::from(u32::from(v4)), 0, 4),
                std::net::IpAddr::V6(v6) => {
                    let bits = u128::from(v6);
                    ((bits >> 64) as u64, bits as u64, 6)
                }
            }
        };
        let (l0, l1, lf) = address(&low);
        let (h0, h1, hf) = address(&high);
        let head =
            u64::from(tuple.protocol) | u64::from(low.port) << 8 | u64::from(high.port) << 24 | lf << 40 | hf << 48;
        Self {
            hash,
            words: [head, l0, l1, h0, h1],
        }
    }

    /// The protocol number.
    pub(crate) fn protocol(&self) -> u8 {
        self.words[0] as u8
    }
}

/// Hashes a [`TableKey`] by the hash it carries: it is already a keyed
/// hash of the tuple.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CarriedHash(u64);

impl std::hash::Hasher for CarriedHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `TableKey`; anything else still
        // hashes, byte by byte.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The build-hasher of tables keyed by [`TableKey`].
pub(crate) type CarriedHashBuilder = std::hash::BuildHasherDefault<CarriedHash>;

/// What named a flow endpoint's container.
///
/// A container veth's copy coming into the host was sent by its container,
/// which is then the packet's source: that names the source for good. A
/// copy going out of the host on a container veth is the container's to
/// receive, but a bridge that has not learned the destination's MAC floods
/// a unicast frame to every port, so other containers' veths show it too.
/// One veth's outgoing copies name the destination until a second veth's
/// do (a flood: the endpoint is left unnamed) or the container itself
/// sends from that address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContainerEvidence {
    /// Not named.
    None,
    /// Named by copies going out on this container veth only.
    Received(InterfaceId),
    /// Copies going out on two container veths: maybe a flood, not named.
    Ambiguous,
    /// Named by a copy its container sent.
    Sent,
}

/// The way a packet travelled, relative to the flow's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    ToServer = 0,
    ToClient = 1,
}

/// What the tracker reads from a packet's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PacketInfo {
    /// TCP flags (the low 8 bits, as Suricata keeps them).
    pub(crate) tcp_flags: Option<u8>,
    /// Whether a TCP segment carries data.
    pub(crate) tcp_data: bool,
    /// ICMP or ICMPv6 type and code.
    pub(crate) icmp: Option<(u8, u8)>,
}

// The header's flag bits (RFC 9293), as `flow::TcpFlags` numbers them.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What TCP has shown of the connection.
#[derive(Clone, Copy, Debug, Default)]
struct TcpSeen {
    flags: [u8; 2],
    syn: bool,
    syn_ack: bool,
    handshake: bool,
    data: [bool; 2],
    fin: [bool; 2],
    rst: bool,
}

impl TcpSeen {
    fn update(&mut self, side: Side, flags: u8, data: bool) {
        let s = side as usize;
        self.flags[s] |= flags;
        let (syn, ack) = (flags & SYN != 0, flags & ACK != 0);
        match side {
            Side::ToServer if syn && !ack => self.syn = true,
            Side::ToClient if syn && ack => self.syn_ack = true,
            // The client's ACK of the SYN+ACK completes the handshake. A
            // client ACKs after its SYN only once it has the SYN+ACK, so its
            // ACK completes it even when the SYN+ACK reaches the tracker
            // later (the dedup can deliver a reply after the client's next
            // packet).
            Side::ToServer if ack && !syn && (self.syn_ack || self.syn) => self.handshake = true,
            _ => {}
        }
        self.data[s] |= data;
        self.fin[s] |= flags & FIN != 0;
        self.rst |= flags & RST != 0;
    }

    fn closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }

    fn established(&self) -> bool {
        self.handshake || (self.data[0] && self.data[1])
    }

    /// The stream state, with Suricata's names (simplified: both FINs or a
    /// RST is `closed`, the FIN_WAIT2/CLOSING/TIME_WAIT steps are not told
    /// apart). Like Suricata's they are the server's: a client's FIN puts
    /// it in `close_wait`, its own FIN in `fin_wait1`.
    fn stream_state(&self) -> &'static str {
        if self.closed() {
            "closed"
        } else if self.fin[Side::ToServer as usize] {
            "close_wait"
        } else if self.fin[Side::ToClient as usize] {
            "fin_wait1"
        } else if self.established() {
            "established"
        } else if self.syn_ack {
            "syn_recv"
        } else if self.syn {
            "syn_sent"
        } else {
            "none"
        }
    }
}

/// One flow being tracked.
#[derive(Clone, Debug)]
pub(crate) struct Flow {
    pub(crate) key: TableKey,
    /// Creation order in this tracker: identifies the flow in the expiry
    /// heap and orders flows that end at the same instant.
    pub(crate) seq: u64,
    /// The flow id, fixed when the flow starts so the events written while
    /// it lives and its record all carry the same one.
    id: u64,
    client: Endpoint,
    server: Endpoint,
    pub(crate) start_ns: u64,
    pub(crate) last_ns: u64,
    in_iface: InterfaceId,
    pkts: [u64; 2],
    bytes: [u64; 2],
    state: FlowState,
    tcp: TcpSeen,
    icmp: [Option<(u8, u8)>; 2],
    taps: Vec<(InterfaceId, TapDirection)>,
    copies_suppressed: u64,
    /// The containers of the client and the server, when a container veth
    /// showed one of its packets: their EVE objects, rendered once.
    containers: [Option<Box<str>>; 2],
    /// What named each of `containers` (see [`ContainerEvidence`]).
    evidence: [ContainerEvidence; 2],
    /// The public tuple, client to server.
    nat: Option<FlowTuple>,
    overlap_different_data: u64,
    pub(crate) out_of_order: u64,
    /// Whether an alert was written about it.
    alerted: bool,
    /// The expiry of the flow's entry in the tracker's heap.
    pub(crate) queued_expiry: u64,
}

impl Flow {
    /// A flow whose first packet has `tuple` (canonical, its direction).
    pub(crate) fn new(
        tuple: &FlowTuple,
        hash: u64,
        seq: u64,
        timestamp_ns: u64,
        in_iface: InterfaceId,
        first: &PacketInfo,
    ) -> Self {
        let reply_first = first.tcp_flags.is_some_and(|f| f & (SYN | ACK) == SYN | ACK);
        let (client, server) = if reply_first {
            (tuple.dst, tuple.src)
        } else {
            (tuple.src, tuple.dst)
        };
        Self {
            key: TableKey::of(tuple, hash),
            seq,
            id: mix64(hash ^ mix64(timestamp_ns)) & FLOW_ID_MASK,
            client,
            server,
            start_ns: timestamp_ns,
            last_ns: timestamp_ns,
            in_iface,
            pkts: [0; 2],
            bytes: [0; 2],
            state: FlowState::New,
            tcp: TcpSeen::default(),
            icmp: [None; 2],
            taps: Vec::new(),
            copies_suppressed: 0,
            containers: [None, None],
            evidence: [ContainerEvidence::None; 2],
            nat: None,
            overlap_different_data: 0,
            out_of_order: 0,
            alerted: false,
            queued_expiry: u64::MAX,
        }
    }

    fn protocol(&self) -> u8 {
        self.key.protocol()
    }

    /// The side a packet with `tuple` travelled.
    pub(crate) fn side(&self, tuple: &FlowTuple) -> Side {
        if tuple.src == self.client && tuple.dst == self.server {
            Side::ToServer
        } else if tuple.src == self.server {
            Side::ToClient
        } else {
            Side::ToServer
        }
    }

    /// A packet of `side` at `timestamp_ns` came in after later ones: if it
    /// is the flow's earliest and came from the server, its sender is the
    /// client after all (packets of one flow read from two rings can reach
    /// the tracker out of time order). Not for TCP, whose SYN decides.
    /// Returns the side the packet has now.
    pub(crate) fn reorient(&mut self, side: Side, timestamp_ns: u64, interface: InterfaceId) -> Side {
        if self.protocol() == 6 || side != Side::ToClient || timestamp_ns >= self.start_ns {
            return side;
        }
        std::mem::swap(&mut self.client, &mut self.server);
        self.pkts.swap(0, 1);
        self.bytes.swap(0, 1);
        self.icmp.swap(0, 1);
        self.containers.swap(0, 1);
        self.evidence.swap(0, 1);
        self.nat = self.nat.map(FlowTuple::reversed);
        self.in_iface = interface;
        Side::ToServer
    }

    /// Counts a packet (out-of-order ones are counted by the caller first).
    pub(crate) fn packet(&mut self, side: Side, timestamp_ns: u64, wire_len: u32, info: &PacketInfo) {
        let s = side as usize;
        self.pkts[s] += 1;
        self.bytes[s] += u64::from(wire_len);
        self.start_ns = self.start_ns.min(timestamp_ns);
        self.last_ns = self.last_ns.max(timestamp_ns);
        if let Some(icmp) = info.icmp {
            self.icmp[s].get_or_insert(icmp);
        }
        if self.protocol() == 6 {
            if let Some(flags) = info.tcp_flags {
                self.tcp.update(side, flags, info.tcp_data);
            }
            if self.tcp.closed() {
                self.state = FlowState::Closed;
            } else if self.state == FlowState::New && self.tcp.established() {
                self.state = FlowState::Established;
            }
        } else if self.pkts[0] > 0 && self.pkts[1] > 0 {
            self.state = FlowState::Established;
        }
    }

    /// Remembers a tap point the flow was seen at; `true` when new.
    pub(crate) fn add_tap(&mut self, interface: InterfaceId, direction: TapDirection) -> bool {
        if self.taps.contains(&(interface, direction)) || self.taps.len() >= MAX_TAPS_PER_FLOW {
            return false;
        }
        self.taps.push((interface, direction));
        true
    }

    /// Names the container behind container veth `interface`, which showed
    /// a packet of `side` in `direction`: received by the host-side veth,
    /// the container sent it (it is the packet's source); sent, the
    /// container receives it, or the bridge flooded it there (see
    /// [`ContainerEvidence`]).
    pub(crate) fn attribute(
        &mut self,
        side: Side,
        direction: TapDirection,
        interface: InterfaceId,
        container: Box<str>,
    ) {
        let Some(endpoint) = Self::container_endpoint(side, direction) else {
            return;
        };
        let evidence = &mut self.evidence[endpoint];
        let named = &mut self.containers[endpoint];
        match (direction, *evidence) {
            (_, ContainerEvidence::Sent) => {}
            (TapDirection::Incoming, _) => {
                *named = Some(container);
                *evidence = ContainerEvidence::Sent;
            }
            (_, ContainerEvidence::None) => {
                *named = Some(container);
                *evidence = ContainerEvidence::Received(interface);
            }
            (_, ContainerEvidence::Received(by)) if by != interface => {
                *named = None;
                *evidence = ContainerEvidence::Ambiguous;
            }
            _ => {}
        }
    }

    /// Whether container veth `interface`'s packet of `side` in `direction`
    /// would change what names an endpoint's container.
    pub(crate) fn wants_container(&self, side: Side, direction: TapDirection, interface: InterfaceId) -> bool {
        Self::container_endpoint(side, direction).is_some_and(|endpoint| match (direction, self.evidence[endpoint]) {
            (_, ContainerEvidence::Sent) => false,
            (TapDirection::Incoming, _) | (_, ContainerEvidence::None) => true,
            (_, ContainerEvidence::Received(by)) => by != interface,
            (_, ContainerEvidence::Ambiguous) => false,
        })
    }

    /// The endpoint (0 client, 1 server) inside the container of a veth
    /// that showed a packet of `side` in `direction`.
    fn container_endpoint(side: Side, direction: TapDirection) -> Option<usize> {
        match (direction, side) {
            (TapDirection::Incoming, Side::ToServer) | (TapDirection::Outgoing, Side::ToClient) => Some(0),
            (TapDirection::Incoming, Side::ToClient) | (TapDirection::Outgoing, Side::ToServer) => Some(1),
            (TapDirection::Unknown, _) => None,
        }
    }

    /// A suppressed copy of one of its packets.
    pub(crate) fn suppressed_copy(&mut self) {
        self.copies_suppressed += 1;
    }

    /// The NAT binding a packet of `side` carried (in its direction); the
    /// first one seen is kept.
    pub(crate) fn nat(&mut self, side: Side, public: FlowTuple) {
        if self.nat.is_none() {
            self.nat = Some(match side {
                Side::ToServer => public,
                Side::ToClient => public.reversed(),
            });
        }
    }

    pub(crate) fn overlap_different_data(&mut self) {
        self.overlap_different_data += 1;
    }

    /// When the flow times out: its last packet plus the timeout of its
    /// protocol and state.
    pub(crate) fn expiry(&self, timeouts: &FlowTimeouts) -> u64 {
        let timeout = timeouts.nanos(TimeoutProtocol::of(self.protocol()), self.state);
        self.last_ns.saturating_add(timeout)
    }

    /// The flow id: the canonical flow hash mixed with the time of the
    /// flow's first packet, masked to 51 bits as Suricata does.
    pub(crate) fn flow_id(&self) -> u64 {
        self.id
    }

    /// Whether the flow is established (the state its record will show).
    pub(crate) fn established(&self) -> bool {
        self.state == FlowState::Established
    }

    /// Appends the flow's EVE record and a newline to `out`.
    pub(crate) fn render(
        &self,
        out: &mut Vec<u8>,
        reason: EndReason,
        names: &HashMap<InterfaceId, Box<str>, ahash::RandomState>,
    ) {
        let name = |id: InterfaceId| names.get(&id).map_or("?", |name| &**name);
        let protocol = self.protocol();
        let mut record = Object::begin(out);
        // The record's timestamp is the flow's start: formatted once.
        let start = timestamp_text(self.start_ns);
        record.timestamp_text("timestamp", &start);
        record.u64("flow_id", self.flow_id());
        record.str("in_iface", name(self.in_iface));
        record.literal("event_type", "flow");
        let has_ports = matches!(protocol, 6 | 17);
        record.ip("src_ip", self.client.addr);
        if has_ports {
            record.u64("src_port", u64::from(self.client.port));
        }
        record.ip("dest_ip", self.server.addr);
        if has_ports {
            record.u64("dest_port", u64::from(self.server.port));
        }
        push_proto(&mut record, protocol);
        self.push_containers(&mut record, 0, 1);
        if matches!(protocol, 1 | 58) {
            if let Some((icmp_type, code)) = self.icmp[Side::ToServer as usize] {
                record.u64("icmp_type", u64::from(icmp_type));
                record.u64("icmp_code", u64::from(code));
            }
            if let Some((icmp_type, code)) = self.icmp[Side::ToClient as usize] {
                record.u64("response_icmp_type", u64::from(icmp_type));
                record.u64("response_icmp_code", u64::from(code));
            }
        }

        let mut flow = record.object("flow");
        flow.u64("pkts_toserver", self.pkts[0]);
        flow.u64("pkts_toclient", self.pkts[1]);
        flow.u64("bytes_toserver", self.bytes[0]);
        flow.u64("bytes_toclient", self.bytes[1]);
        flow.timestamp_text("start", &start);
        flow.timestamp("end", self.last_ns);
        // As Suricata: the difference of the whole seconds.
        flow.u64("age", seconds(self.last_ns) - seconds(self.start_ns));
        flow.literal("state", self.state.name());
        flow.literal("reason", reason.name());
        flow.bool("alerted", self.alerted);
        flow.end();

        if protocol == 6 {
            let mut tcp = record.object("tcp");
            let [ts, tc] = self.tcp.flags;
            let all = ts | tc;
            tcp.hex_byte("tcp_flags", all);
            tcp.hex_byte("tcp_flags_ts", ts);
            tcp.hex_byte("tcp_flags_tc", tc);
            const NAMED: [(&str, u16); 8] = [
                ("syn", TcpFlags::SYN.bits()),
                ("fin", TcpFlags::FIN.bits()),
                ("rst", TcpFlags::RST.bits()),
                ("psh", TcpFlags::PSH.bits()),
                ("ack", TcpFlags::ACK.bits()),
                ("urg", TcpFlags::URG.bits()),
                ("ecn", TcpFlags::ECE.bits()),
                ("cwr", TcpFlags::CWR.bits()),
            ];
            for (key, bit) in NAMED {
                if u16::from(all) & bit != 0 {
                    tcp.bool(key, true);
                }
            }
            tcp.literal("state", self.tcp.stream_state());
            tcp.end();
        }

        let mut ours = record.object("ringsieve");
        self.push_taps(&mut ours, names);
        ours.u64("copies_suppressed", self.copies_suppressed);
        ours.u64("delivered", self.pkts[0] + self.pkts[1]);
        if let Some(public) = &self.nat {
            push_nat(&mut ours, public);
        }
        if self.overlap_different_data > 0 {
            ours.u64("overlap_different_data", self.overlap_different_data);
        }
        if self.out_of_order > 0 {
            ours.u64("out_of_order", self.out_of_order);
        }
        ours.end();
        record.end();
        out.push(b'\n');
    }
}

/// Where and when the packet an event is about was seen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventPacket<'a> {
    pub(crate) timestamp_ns: u64,
    pub(crate) interface: InterfaceId,
    pub(crate) direction: TapDirection,
    /// Its canonical tuple, in its direction.
    pub(crate) tuple: &'a FlowTuple,
    pub(crate) side: Side,
    pub(crate) icmp: Option<(u8, u8)>,
}

impl Flow {
    /// Appends an EVE `alert` or `anomaly` event about `packet` of this flow
    /// and a newline to `out`; an alert marks the flow `alerted`. The
    /// tuple is the packet's (container side), as Suricata gives an alert
    /// the packet's addresses; `flow` gives the flow's client and server
    /// and its counts so far.
    pub(crate) fn render_event(
        &mut self,
        out: &mut Vec<u8>,
        event: &FlowEvent,
        packet: &EventPacket<'_>,
        names: &HashMap<InterfaceId, Box<str>, ahash::RandomState>,
    ) {
        if matches!(event, FlowEvent::Alert(_)) {
            self.alerted = true;
        }
        let name = |id: InterfaceId| names.get(&id).map_or("?", |name| &**name);
        let protocol = self.protocol();
        let has_ports = matches!(protocol, 6 | 17);
        let mut record = Object::begin(out);
        record.timestamp("timestamp", packet.timestamp_ns);
        record.u64("flow_id", self.flow_id());
        record.str("in_iface", name(packet.interface));
        record.str(
            "event_type",
            match event {
                FlowEvent::Alert(_) => "alert",
                FlowEvent::Anomaly(_) => "anomaly",
            },
        );
        record.ip("src_ip", packet.tuple.src.addr);
        if has_ports {
            record.u64("src_port", u64::from(packet.tuple.src.port));
        }
        record.ip("dest_ip", packet.tuple.dst.addr);
        if has_ports {
            record.u64("dest_port", u64::from(packet.tuple.dst.port));
        }
        push_proto(&mut record, protocol);
        if let Some((icmp_type, code)) = packet.icmp {
            record.u64("icmp_type", u64::from(icmp_type));
            record.u64("icmp_code", u64::from(code));
        }
        let (src, dest) = match packet.side {
            Side::ToServer => (0, 1),
            Side::ToClient => (1, 0),
        };
        record.str(
            "direction",
            match packet.side {
                Side::ToServer => "to_server",
                Side::ToClient => "to_client",
            },
        );
        self.push_containers(&mut record, src, dest);
        let mut ours_stream_offset = None;
        let mut ours_seq = None;
        match event {
            FlowEvent::Alert(alert) => {
                let mut object = record.object("alert");
                object.str("action", alert.action);
                object.u64("gid", u64::from(alert.gid));
                object.u64("signature_id", u64::from(alert.signature_id));
                object.u64("rev", u64::from(alert.rev));
                object.str("signature", &alert.signature);
                object.str("category", &alert.category);
                object.u64("severity", u64::from(alert.severity));
                object.end();
                ours_stream_offset = alert.stream_offset;
            }
            FlowEvent::Anomaly(anomaly) => {
                let mut object = record.object("anomaly");
                object.str("type", anomaly.kind);
                object.str("event", anomaly.event);
                object.end();
                ours_seq = anomaly.seq_range;
            }
        }

        let mut flow = record.object("flow");
        flow.u64("pkts_toserver", self.pkts[0]);
        flow.u64("pkts_toclient", self.pkts[1]);
        flow.u64("bytes_toserver", self.bytes[0]);
        flow.u64("bytes_toclient", self.bytes[1]);
        flow.timestamp("start", self.start_ns);
        flow.ip("src_ip", self.client.addr);
        flow.ip("dest_ip", self.server.addr);
        if has_ports {
            flow.u64("src_port", u64::from(self.client.port));
            flow.u64("dest_port", u64::from(self.server.port));
        }
        flow.end();

        let mut ours = record.object("ringsieve");
        let tap = format!("{}:{}", name(packet.interface), packet.direction.name());
        ours.str("tap", &tap);
        self.push_taps(&mut ours, names);
        ours.u64("copies_suppressed", self.copies_suppressed);
        if let Some(public) = &self.nat {
            push_nat(&mut ours, public);
        }
        if let Some(offset) = ours_stream_offset {
            ours.u64("stream_offset", offset);
        }
        if let Some((start, end)) = ours_seq {
            ours.u64("seq_start", u64::from(start));
            ours.u64("seq_end", u64::from(end));
        }
        ours.end();
        record.end();
        out.push(b'\n');
    }
}

impl Flow {
    /// `taps`: every tap point the flow was seen at, `interface:direction`,
    /// sorted as those strings sort (bytewise), each once. Sorted as
    /// (name, direction) pairs compared as the strings they make, so no
    /// string is built per tap.
    fn push_taps(&self, ours: &mut Object<'_>, names: &HashMap<InterfaceId, Box<str>, ahash::RandomState>) {
        let name = |id: InterfaceId| names.get(&id).map_or("?", |name| &**name);
        let label = |&(interface, direction): &(InterfaceId, TapDirection)| {
            let (name, direction) = (name(interface), direction.name());
            (label_prefix(name, direction), name, direction)
        };
        // Most flows have a few taps: sorted on the stack, not in a buffer
        // of MAX_TAPS_PER_FLOW cleared for each record.
        let count = self.taps.len().min(MAX_TAPS_PER_FLOW);
        let mut few = [(0, "", ""); FEW_TAPS];
        let mut many = Vec::new();
        let labels: &mut [TapLabel<'_>] = if count <= FEW_TAPS {
            for (slot, tap) in few.iter_mut().zip(&self.taps) {
                *slot = label(tap);
            }
            &mut few[..count]
        } else {
            many.extend(self.taps.iter().take(count).map(label));
            &mut many
        };
        // By the label's first 16 bytes as a number (the order of the bytes),
        // then, for labels that long or NUL-padded alike, as `name:direction`.
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| label_order((a.1, a.2), (b.1, b.2))));
        // A direction has no ':', so two labels are the same string exactly
        // when their names and directions are the same.
        let mut kept = 0;
        for index in 0..labels.len() {
            if kept == 0 || (labels[kept - 1].1, labels[kept - 1].2) != (labels[index].1, labels[index].2) {
                labels[kept] = labels[index];
                kept += 1;
            }
        }
        ours.str_array_with("taps", kept, |out, index| {
            let (_, interface, direction) = labels[index];
            push_str_content(out, interface);
            out.push(b':');
            out.extend_from_slice(direction.as_bytes());
        });
    }

    /// `src_container` and `dest_container`: the objects of the endpoints
    /// `src` and `dest` (0 the client, 1 the server), when known.
    fn push_containers(&self, record: &mut Object<'_>, src: usize, dest: usize) {
        if let Some(container) = &self.containers[src] {
            record.raw("src_container", container);
        }
        if let Some(container) = &self.containers[dest] {
            record.raw("dest_container", container);
        }
    }
}

/// Taps of a flow sorted on the stack ([`Flow::push_taps`]); more take a
/// buffer.
const FEW_TAPS: usize = 8;

/// A tap's label `name:direction`: its first 16 bytes as a big-endian
/// number (zero-padded), its name and its direction.
type TapLabel<'a> = (u128, &'a str, &'a str);

/// The first 16 bytes of the label `name:direction`, zero-padded, as a
/// big-endian number: labels whose numbers differ are in the order of
/// their numbers; equal numbers leave the order to [`label_order`].
fn label_prefix(name: &str, direction: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let name = name.as_bytes();
    let from_name = name.len().min(16);
    bytes[..from_name].copy_from_slice(&name[..from_name]);
    if from_name < 16 {
        bytes[from_name] = b':';
        let direction = direction.as_bytes();
        let from_direction = direction.len().min(15 - from_name);
        bytes[from_name + 1..from_name + 1 + from_direction].copy_from_slice(&direction[..from_direction]);
    }
    u128::from_be_bytes(bytes)
}

/// The order of the tap labels `name:direction` that `a` and `b` make,
/// without making them.
fn label_order(a: (&str, &str), b: (&str, &str)) -> std::cmp::Ordering {
    let (left, right) = (a.0.as_bytes(), b.0.as_bytes());
    let common = left.len().min(right.len());
    match left[..common].cmp(&right[..common]) {
        std::cmp::Ordering::Equal => {}
        unequal => return unequal,
    }
    match left.len().cmp(&right.len()) {
        std::cmp::Ordering::Equal => return a.1.cmp(b.1),
        // One name goes on where the other's label has its ':'.
        std::cmp::Ordering::Greater if left[common] != b':' => return left[common].cmp(&b':'),
        std::cmp::Ordering::Less if right[common] != b':' => return b':'.cmp(&right[common]),
        _ => {}
    }
    label_bytes(a).cmp(label_bytes(b))
}

/// The bytes of the label `name:direction`.
fn label_bytes<'a>((name, direction): (&'a str, &'a str)) -> impl Iterator<Item = u8> + 'a {
    name.bytes().chain(std::iter::once(b':')).chain(direction.bytes())
}

/// The `proto` field, with Suricata's names.
fn push_proto(record: &mut Object<'_>, protocol: u8) {
    match protocol {
        6 => record.literal("proto", "TCP"),
        17 => record.literal("proto", "UDP"),
        1 => record.literal("proto", "ICMP"),
        58 => record.literal("proto", "IPv6-ICMP"),
        other => record.display_str("proto", other),
    }
}

/// The public tuple of a NAT'd flow, client to server.
fn push_nat(ours: &mut Object<'_>, public: &FlowTuple) {
    let mut nat = ours.object("nat");
    nat.ip("src_ip", public.src.addr);
    nat.u64("src_port", u64::from(public.src.port));
    nat.ip("dest_ip", public.dst.addr);
    nat.u64("dest_port", u64::from(public.dst.port));
    nat.end();
}

/// A container's EVE object: `{"id", "name", "image", "netns"}`, each
/// present when known, `name` falling back to the namespace's name; `None`
/// when nothing is known.
pub(crate) fn container_json(label: &ContainerLabel) -> Option<Box<str>> {
    if label.id.is_none() && label.name_or_netns().is_none() && label.image.is_none() {
        return None;
    }
    let mut out = Vec::with_capacity(160);
    let mut object = Object::begin(&mut out);
    if let Some(id) = &label.id {
        object.str("id", id);
    }
    if let Some(name) = label.name_or_netns() {
        object.str("name", name);
    }
    if let Some(image) = &label.image {
        object.str("image", image);
    }
    if let Some(netns) = &label.netns {
        object.str("netns", netns);
    }
    object.end();
    // Object writes UTF-8 only.
    String::from_utf8(out).ok().map(String::into_boxed_str)
}

/// splitmix64's finalizer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod label_tests {
    use super::*;

    /// The labels sort as the `name:direction` strings they stand for,
    /// with names that sort before and after ':' and prefixes of one
    /// another.
    #[test]
    fn tap_labels_sort_as_their_strings() {
        let names = [
            "veth1", "veth10", "veth1a", "veth", "eth0", "eth0.5", "a:b", "a", "a;", "ü", "Z",
        ];
        let directions = ["in", "out", "any"];
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for name in names {
            for direction in directions {
                pairs.push((name, direction));
            }
        }
        for a in &pairs {
            for b in &pairs {
                let (sa, sb) = (format!("{}:{}", a.0, a.1), format!("{}:{}", b.0, b.1));
                assert_eq!(label_order(*a, *b), sa.cmp(&sb), "{sa} against {sb}");
            }
        }
    }
}
