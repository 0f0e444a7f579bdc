//! The one-call parse of the capture hot path: [`parse_frame`] for Ethernet
//! frames, [`parse_network`] for captures that give the protocol and the
//! network-layer bytes (Linux cooked SLL/SLL2). Each returns a
//! [`ParsedPacket`]: a `Copy` summary of values and borrowed slices, with no
//! allocation, holding what packet identity, flow keys, TCP byte ranges and
//! fragment handling need. Packets of the common shape (at most one VLAN
//! tag, IPv4 without options or IPv6 without extension headers, whole, TCP
//! or UDP) take a short path that checks the shape in a few reads; the rest
//! go layer by layer, and both give the same result (the fuzz checks compare
//! them).
//!
//! What it does not do: verify checksums (TCP, UDP and ICMP checksums of
//! captured packets are often partial, TP_STATUS_CSUMNOTREADY, and IPv4
//! header checksums are not needed to trust the lengths), read TCP options
//! (the raw bytes are given; see [`TcpOptions`](crate::tcp::TcpOptions)),
//! parse the packet inside ICMP errors, or reassemble fragments.
//!
//! Errors: a frame fails with the [`ParseError`] of the first layer that
//! does not check, up to the transport header. The VXLAN header is the
//! exception: a UDP datagram to port 4789 that is not valid VXLAN is still a
//! valid UDP datagram, so it gives `vxlan_inner: None`, not an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::arp::ArpPacket;
use crate::error::{Layer, ParseError};
use crate::ethernet::{EtherType, EthernetFrame};
use crate::icmpv4::{Echo, Icmpv4Packet, Icmpv4Type};
use crate::icmpv6::{Icmpv6Packet, Icmpv6Type};
use crate::ip::{Fragment, IpProtocol};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::read::{array_at, u16_at};
use crate::tcp::{SeqNumber, TcpFlags, TcpSegment};
use crate::udp::UdpDatagram;
use crate::vxlan::{self, VxlanPacket};

/// Most VLAN tags a frame may carry in its bytes (802.1ad outside 802.1Q).
const MAX_IN_BAND_TAGS: usize = 2;
/// Size of a VLAN tag after its TPID: TCI and the next EtherType.
const TAG_BODY_LEN: usize = 4;

// The numbers the common shape's checks compare with (see `parse_frame`).
/// An untagged Ethernet header: two MACs and the EtherType.
const ETHERNET_HEADER_LEN: usize = 14;
/// The 802.1Q tag's TPID.
const VLAN_TPID: u16 = 0x8100;
/// The 802.1ad tag's TPID.
const QINQ_TPID: u16 = 0x88a8;
/// IPv4's EtherType.
const IPV4_ETHERTYPE: u16 = 0x0800;
/// IPv6's EtherType.
const IPV6_ETHERTYPE: u16 = 0x86dd;
/// An IPv4 header without options.
const IPV4_HEADER_LEN: usize = 20;
/// The IPv4 flags/fragment-offset bits that make a packet a fragment: more
/// fragments and the offset.
const IPV4_FRAGMENT_BITS: u16 = 0x3fff;
/// The IPv4 don't-fragment flag.
const IPV4_DONT_FRAGMENT: u16 = 0x4000;
/// The fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;
/// TCP's protocol number.
const TCP_PROTOCOL: u8 = 6;
/// UDP's protocol number.
const UDP_PROTOCOL: u8 = 17;
/// A TCP header without options.
const TCP_HEADER_LEN: usize = 20;
/// The UDP header.
const UDP_HEADER_LEN: usize = 8;

/// One VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The tag protocol identifier: 802.1Q (0x8100) or 802.1ad (0x88a8), or
    /// whatever the ring reported for an out-of-band tag.
    pub tpid: EtherType,
    /// The tag control information: priority (3 bits), DEI, VLAN id (12 bits).
    pub tci: u16,
    /// Whether the ring reported this tag beside the frame (VLAN offload)
    /// rather than in its bytes.
    pub out_of_band: bool,
}

impl VlanTag {
    /// The 12-bit VLAN identifier.
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// The 3-bit priority code point.
    pub fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// The drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// The VLAN tags of a frame, outermost first: the out-of-band tag (if any),
/// then up to two tags from the frame's bytes. Stored as two small arrays
/// (14 bytes) because every parse writes it; [`VlanTags::get`] and
/// [`VlanTags::iter`] give [`VlanTag`] values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTags {
    /// TPIDs of the first `len` tags; the rest are zero.
    tpids: [u16; VlanTags::CAPACITY],
    /// TCIs of the first `len` tags; the rest are zero.
    tcis: [u16; VlanTags::CAPACITY],
    /// Number of tags, at most `CAPACITY`.
    len: u8,
    /// Whether the first tag was reported out of band.
    out_of_band: bool,
}

impl VlanTags {
    /// Most tags held: one out of band and two in band.
    pub const CAPACITY: usize = 1 + MAX_IN_BAND_TAGS;

    const NONE: Self = Self {
        tpids: [0; VlanTags::CAPACITY],
        tcis: [0; VlanTags::CAPACITY],
        len: 0,
        out_of_band: false,
    };

    /// The tag at `index`, outermost first.
    pub fn get(&self, index: usize) -> Option<VlanTag> {
        (index < self.len()).then(|| VlanTag {
            tpid: EtherType::from(self.tpids[index]),
            tci: self.tcis[index],
            out_of_band: index == 0 && self.out_of_band,
        })
    }

    /// The tags, outermost first.
    pub fn iter(&self) -> impl Iterator<Item = VlanTag> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The outermost tag.
    pub fn outermost(&self) -> Option<VlanTag> {
        self.get(0)
    }

    /// The innermost tag (for 802.1Q-in-802.1ad, the customer VLAN).
    pub fn innermost(&self) -> Option<VlanTag> {
        self.len().checked_sub(1).and_then(|index| self.get(index))
    }

    /// Appends a tag inside the others; callers keep to the capacity.
    #[inline(always)]
    fn push(&mut self, tpid: u16, tci: u16) {
        let index = usize::from(self.len);
        if index < Self::CAPACITY {
            self.tpids[index] = tpid;
            self.tcis[index] = tci;
            self.len += 1;
        }
    }
}

impl Default for VlanTags {
    fn default() -> Self {
        Self::NONE
    }
}

/// What the link layer carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// ARP: no network summary; `network_bytes` is the ARP packet.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// Any other EtherType (or an 802.3 length): `network_bytes` is
    /// everything after the link header, and nothing else is parsed.
    Other(EtherType),
}

/// The IP header's values, for IPv4 and IPv6 alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetworkSummary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol: IPv4's protocol, or the last next header
    /// after IPv6 extension headers.
    pub protocol: IpProtocol,
    /// The IPv4 identification; `None` for IPv6, which has none outside a
    /// fragment header (see `fragment`).
    pub ip_id: Option<u16>,
    /// The packet's length, header included: the IPv4 total length or 40 +
    /// the IPv6 payload length (the buffer's length for BIG TCP and
    /// jumbograms). Equals `network_bytes.len()`.
    pub total_len: u32,
    /// Bytes before the upper-layer data: IPv4 IHL × 4, or 40 plus the IPv6
    /// extension headers.
    pub header_len: u16,
    /// IPv4 TTL or IPv6 hop limit (forwarding changes it).
    pub ttl: u8,
    /// IPv4 DSCP/ECN byte or IPv6 traffic class.
    pub dscp_ecn: u8,
    /// IPv4 don't-fragment flag; false for IPv6.
    pub dont_fragment: bool,
    /// The fragment this packet is, if it is one.
    pub fragment: Option<Fragment>,
}

/// A TCP header's values and the segment's options and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSummary<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNumber,
    /// Acknowledgement number.
    pub ack: SeqNumber,
    /// The flags.
    pub flags: TcpFlags,
    /// The window field, unscaled.
    pub window: u16,
    /// The options, raw.
    pub options: &'a [u8],
    /// The payload, to the end of the IP packet (part of it in a first
    /// fragment).
    pub payload: &'a [u8],
}

impl TcpSummary<'_> {
    /// The sequence space the segment occupies: payload bytes, plus one for
    /// SYN and one for FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.flags.contains(TcpFlags::SYN))
            + u32::from(self.flags.contains(TcpFlags::FIN))
    }
}

/// A UDP header's values and the datagram's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpSummary<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The length field (of the whole datagram, even in a first fragment).
    pub length: u16,
    /// The payload: to the length field's end, or what a first fragment
    /// holds of it.
    pub payload: &'a [u8],
}

/// An ICMP message's values.
///
/// For error messages the payload is the offending packet's header and first
/// bytes, which NAT rewrites like the packet itself (addresses, ports,
/// checksums): unlike echo data, it is not NAT-invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv4Summary<'a> {
    /// The message type.
    pub msg_type: Icmpv4Type,
    /// The code.
    pub code: u8,
    /// Identifier and sequence of query messages (echo and the like).
    pub echo: Option<Echo>,
    /// The 4 type-dependent bytes after the checksum (the echo identifier and
    /// sequence, an MTU, a pointer, or unused).
    pub rest_of_header: [u8; 4],
    /// The bytes after the 8-byte header.
    pub payload: &'a [u8],
}

/// An ICMPv6 message's values. The payload of error messages is not
/// NAT-invariant; see [`Icmpv4Summary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv6Summary<'a> {
    /// The message type.
    pub msg_type: Icmpv6Type,
    /// The code.
    pub code: u8,
    /// Identifier and sequence of echo messages.
    pub echo: Option<Echo>,
    /// The 4 type-dependent bytes after the checksum.
    pub message_head: [u8; 4],
    /// The bytes after the 8-byte header.
    pub payload: &'a [u8],
}

/// The transport layer of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP.
    Tcp(TcpSummary<'a>),
    /// UDP.
    Udp(UdpSummary<'a>),
    /// ICMP (IP protocol 1).
    Icmpv4(Icmpv4Summary<'a>),
    /// ICMPv6 (IP protocol 58).
    Icmpv6(Icmpv6Summary<'a>),
    /// A fragment with a non-zero offset: no transport header, only the
    /// middle or end of the original payload.
    NonFirstFragment {
        /// The protocol of the fragmented payload.
        protocol: IpProtocol,
        /// This fragment's data.
        payload: &'a [u8],
    },
    /// Any other protocol (IGMP, ESP, SCTP, GRE, "no next header", ...),
    /// unparsed.
    Other {
        /// The protocol.
        protocol: IpProtocol,
        /// The bytes after the IP header (and IPv6 extension headers).
        payload: &'a [u8],
    },
}

impl<'a> Transport<'a> {
    /// The transport payload: application data, ICMP body, or the unparsed
    /// bytes.
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Transport::Tcp(tcp) => tcp.payload,
            Transport::Udp(udp) => udp.payload,
            Transport::Icmpv4(icmp) => icmp.payload,
            Transport::Icmpv6(icmp) => icmp.payload,
            Transport::NonFirstFragment { payload, .. } | Transport::Other { payload, .. } => payload,
        }
    }

    /// Source and destination ports, for TCP and UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self {
            Transport::Tcp(tcp) => Some((tcp.src_port, tcp.dst_port)),
            Transport::Udp(udp) => Some((udp.src_port, udp.dst_port)),
            _ => None,
        }
    }
}

/// The inner frame of a VXLAN packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanInner<'a> {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// Offset of the inner Ethernet frame in the parsed bytes.
    pub offset: usize,
    /// The inner Ethernet frame, to the end of the UDP payload: parse it with
    /// [`parse_frame`] (with no out-of-band tag).
    pub frame: &'a [u8],
}

/// What one call of [`parse_frame`] or [`parse_network`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedPacket<'a> {
    /// VLAN tags, outermost first (an out-of-band tag first of all).
    pub vlan: VlanTags,
    /// What the link layer carried.
    pub link: LinkKind,
    /// Offset of the network layer in the parsed bytes: after the Ethernet
    /// header and tags, or after the tags that start a cooked payload.
    pub network_offset: usize,
    /// The network-layer bytes, from `network_offset`: the IP packet to its
    /// total length, the ARP packet to its last address (both without
    /// Ethernet padding), or all the rest for other EtherTypes.
    pub network_bytes: &'a [u8],
    /// The IP header, for IPv4 and IPv6.
    pub network: Option<NetworkSummary>,
    /// The transport layer, for IPv4 and IPv6 (always `Some` then).
    pub transport: Option<Transport<'a>>,
    /// The inner frame, for a UDP datagram to port 4789 with a valid VXLAN
    /// header.
    pub vxlan_inner: Option<VxlanInner<'a>>,
}

/// Parses an Ethernet frame, with the VLAN tag the ring reported beside it
/// (`out_of_band_vlan`: TPID, TCI; Linux strips it from the bytes when VLAN
/// offload is on), down to the transport header.
///
/// Nearly every captured frame has one shape: Ethernet, at most one VLAN
/// tag, IPv4 without options or IPv6 without extension headers, not a
/// fragment, TCP or UDP (not to the VXLAN port). Those are parsed by
/// [`common_ipv4`] and [`common_ipv6`], which check the shape and every
/// length in a few reads and build the same [`ParsedPacket`] straight from
/// the header bytes; every other frame, and every malformed one (so every
/// error), takes the layer-by-layer parse.
pub fn parse_frame(frame: &[u8], out_of_band_vlan: Option<(u16, u16)>) -> Result<ParsedPacket<'_>, ParseError> {
    parse_frame_inlined(frame, out_of_band_vlan)
}

/// [`parse_frame`], inlined into its caller: a caller that keeps a few
/// fields of the result (as [`crate::FlowTuple::of_frame`] does) lets the
/// compiler drop the rest of the common path's work.
#[inline(always)]
pub(crate) fn parse_frame_inlined(
    frame: &[u8],
    out_of_band_vlan: Option<(u16, u16)>,
) -> Result<ParsedPacket<'_>, ParseError> {
    if let Some((offset, IPV4_ETHERTYPE, vlan)) = common_ethernet(frame, out_of_band_vlan) {
        if let Some(parsed) = common_ipv4(frame, offset, vlan) {
            return Ok(parsed);
        }
    }
    parse_frame_beyond_ipv4(frame, out_of_band_vlan)
}

/// [`parse_frame`] past its IPv4 path: IPv6 of the common shape, and then
/// every frame layer by layer. Out of line, so that the IPv4 path saves no
/// registers for it and builds its result alone (inlined, the two common
/// paths shared their stores, through the stack).
#[inline(never)]
fn parse_frame_beyond_ipv4(frame: &[u8], out_of_band_vlan: Option<(u16, u16)>) -> Result<ParsedPacket<'_>, ParseError> {
    if let Some((offset, IPV6_ETHERTYPE, vlan)) = common_ethernet(frame, out_of_band_vlan) {
        if let Some(parsed) = common_ipv6(frame, offset, vlan) {
            return Ok(parsed);
        }
    }
    parse_frame_by_layers(frame, out_of_band_vlan)
}

/// The tags of a frame before any in its bytes: the out-of-band one, if any.
#[inline(always)]
fn out_of_band_tags(out_of_band_vlan: Option<(u16, u16)>) -> VlanTags {
    let mut vlan = VlanTags::NONE;
    if let Some((tpid, tci)) = out_of_band_vlan {
        vlan.push(tpid, tci);
        vlan.out_of_band = true;
    }
    vlan
}

/// [`parse_frame`] layer by layer, for every shape (the fuzz checks compare
/// the two).
#[inline(never)]
pub(crate) fn parse_frame_by_layers(
    frame: &[u8],
    out_of_band_vlan: Option<(u16, u16)>,
) -> Result<ParsedPacket<'_>, ParseError> {
    let ethernet = EthernetFrame::new_checked(frame)?;
    let mut vlan = out_of_band_tags(out_of_band_vlan);
    // The tags sit between the source MAC and the innermost EtherType, which `new_checked` found.
    let mut at = 12;
    while at + 2 < ethernet.header_len() {
        vlan.push(u16_at(frame, at), u16_at(frame, at + 2));
        at += TAG_BODY_LEN;
    }
    parse_at(frame, ethernet.header_len(), ethernet.ethertype(), vlan)
}

/// The Ethernet header of the common shape: no tag or one 802.1Q or 802.1ad
/// tag. Gives the offset of the network layer, its EtherType (any, even a
/// second tag's TPID, which then fits neither common path) and the tags,
/// after the out-of-band one; `None` for a frame too short for its header.
#[inline(always)]
fn common_ethernet(frame: &[u8], out_of_band_vlan: Option<(u16, u16)>) -> Option<(usize, u16, VlanTags)> {
    let mut vlan = out_of_band_tags(out_of_band_vlan);
    let header: &[u8; ETHERNET_HEADER_LEN] = frame.first_chunk()?;
    let ethertype = u16::from_be_bytes([header[12], header[13]]);
    if ethertype != VLAN_TPID && ethertype != QINQ_TPID {
        return Some((ETHERNET_HEADER_LEN, ethertype, vlan));
    }
    let tag: &[u8; TAG_BODY_LEN] = frame.get(ETHERNET_HEADER_LEN..)?.first_chunk()?;
    vlan.push(ethertype, u16::from_be_bytes([tag[0], tag[1]]));
    Some((
        ETHERNET_HEADER_LEN + TAG_BODY_LEN,
        u16::from_be_bytes([tag[2], tag[3]]),
        vlan,
    ))
}

/// Parses an IPv4 packet of the common shape at `input[offset..]`, after
/// the tags `vlan`: a 20-byte header, not a fragment, carrying TCP or UDP
/// (see [`common_transport`]). The result is the one [`parse_at`] gives;
/// `None` for any other packet and for any length that does not check,
/// which [`parse_at`] then parses (or names the error of).
#[inline(always)]
fn common_ipv4(input: &[u8], offset: usize, vlan: VlanTags) -> Option<ParsedPacket<'_>> {
    let header: &[u8; IPV4_HEADER_LEN] = input.get(offset..)?.first_chunk()?;
    let flags_fragment = u16::from_be_bytes([header[6], header[7]]);
    // Version 4, IHL 5; neither more fragments nor an offset.
    if header[0] != 0x45 || flags_fragment & IPV4_FRAGMENT_BITS != 0 {
        return None;
    }
    let packet_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let packet = input.get(offset..offset + packet_len)?;
    let payload = packet.get(IPV4_HEADER_LEN..)?;
    let (protocol, transport) = common_transport(header[9], payload)?;
    Some(ParsedPacket {
        vlan,
        link: LinkKind::Ipv4,
        network_offset: offset,
        network_bytes: packet,
        network: Some(NetworkSummary {
            src: IpAddr::V4(Ipv4Addr::new(header[12], header[13], header[14], header[15])),
            dst: IpAddr::V4(Ipv4Addr::new(header[16], header[17], header[18], header[19])),
            protocol,
            ip_id: Some(u16::from_be_bytes([header[4], header[5]])),
            total_len: packet_len as u32,
            header_len: IPV4_HEADER_LEN as u16,
            ttl: header[8],
            dscp_ecn: header[1],
            dont_fragment: flags_fragment & IPV4_DONT_FRAGMENT != 0,
            fragment: None,
        }),
        transport: Some(transport),
        vxlan_inner: None,
    })
}

/// Parses an IPv6 packet of the common shape at `input[offset..]`, after
/// the tags `vlan`: TCP or UDP right after the fixed header, no extension
/// header (see [`common_transport`]). As [`common_ipv4`], `None` for
/// anything else.
#[inline(always)]
fn common_ipv6(input: &[u8], offset: usize, vlan: VlanTags) -> Option<ParsedPacket<'_>> {
    let header: &[u8; IPV6_HEADER_LEN] = input.get(offset..)?.first_chunk()?;
    if header[0] >> 4 != 6 {
        return None;
    }
    let packet_len = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([header[4], header[5]]));
    let packet = input.get(offset..offset + packet_len)?;
    let payload = packet.get(IPV6_HEADER_LEN..)?;
    let (protocol, transport) = common_transport(header[6], payload)?;
    Some(ParsedPacket {
        vlan,
        link: LinkKind::Ipv6,
        network_offset: offset,
        network_bytes: packet,
        network: Some(NetworkSummary {
            src: IpAddr::V6(Ipv6Addr::from(array_at::<16>(header, 8))),
            dst: IpAddr::V6(Ipv6Addr::from(array_at::<16>(header, 24))),
            protocol,
            ip_id: None,
            total_len: packet_len as u32,
            header_len: IPV6_HEADER_LEN as u16,
            ttl: header[7],
            // The 8 bits after the version.
            dscp_ecn: (u16::from_be_bytes([header[0], header[1]]) >> 4) as u8,
            dont_fragment: false,
            fragment: None,
        }),
        transport: Some(transport),
        vxlan_inner: None,
    })
}

/// The transport layer of the common shape, in an IP `payload` of protocol
/// number `protocol`: a TCP segment whose header fits, or a whole UDP
/// datagram whose length fits and that is not to the VXLAN port. `None` for
/// anything else, [`parse_transport`]'s to parse.
#[inline(always)]
fn common_transport(protocol: u8, payload: &[u8]) -> Option<(IpProtocol, Transport<'_>)> {
    if protocol == TCP_PROTOCOL {
        let header: &[u8; TCP_HEADER_LEN] = payload.first_chunk()?;
        let header_len = usize::from(header[12] >> 4) * 4;
        let tcp = TcpSummary {
            src_port: u16::from_be_bytes([header[0], header[1]]),
            dst_port: u16::from_be_bytes([header[2], header[3]]),
            seq: SeqNumber(u32::from_be_bytes([header[4], header[5], header[6], header[7]])),
            ack: SeqNumber(u32::from_be_bytes([header[8], header[9], header[10], header[11]])),
            flags: TcpFlags::from_bits(u16::from_be_bytes([header[12], header[13]])),
            window: u16::from_be_bytes([header[14], header[15]]),
            // A data offset below 5, or past the packet, is the layer-by-layer parse's error.
            options: payload.get(TCP_HEADER_LEN..header_len)?,
            payload: payload.get(header_len..)?,
        };
        Some((IpProtocol::Tcp, Transport::Tcp(tcp)))
    } else if protocol == UDP_PROTOCOL {
        let header: &[u8; UDP_HEADER_LEN] = payload.first_chunk()?;
        let dst_port = u16::from_be_bytes([header[2], header[3]]);
        let length = u16::from_be_bytes([header[4], header[5]]);
        if dst_port == vxlan::PORT {
            return None;
        }
        let udp = UdpSummary {
            src_port: u16::from_be_bytes([header[0], header[1]]),
            dst_port,
            length,
            // A length below the header's, or past the packet, is the layer-by-layer parse's error.
            payload: payload.get(UDP_HEADER_LEN..usize::from(length))?,
        };
        Some((IpProtocol::Udp, Transport::Udp(udp)))
    } else {
        None
    }
}

/// Parses network-layer `bytes` whose protocol the capture gave as
/// `ethertype` (Linux cooked captures, SLL and SLL2). An 802.1Q or 802.1ad
/// `ethertype` means `bytes` starts with the tag's TCI and the next
/// EtherType, as in cooked captures of tagged frames.
///
/// IPv4 and IPv6 packets of the common shape take the same short path as in
/// [`parse_frame`].
pub fn parse_network(ethertype: u16, bytes: &[u8]) -> Result<ParsedPacket<'_>, ParseError> {
    let common = match ethertype {
        IPV4_ETHERTYPE => common_ipv4(bytes, 0, VlanTags::NONE),
        IPV6_ETHERTYPE => common_ipv6(bytes, 0, VlanTags::NONE),
        _ => None,
    };
    match common {
        Some(parsed) => Ok(parsed),
        None => parse_network_by_layers(ethertype, bytes),
    }
}

/// [`parse_network`] layer by layer, for every shape (the fuzz checks
/// compare it with [`parse_network`]).
#[inline(never)]
pub(crate) fn parse_network_by_layers(ethertype: u16, bytes: &[u8]) -> Result<ParsedPacket<'_>, ParseError> {
    let mut vlan = VlanTags::NONE;
    let mut ethertype = EtherType::from(ethertype);
    let mut offset = 0;
    while ethertype.is_vlan_tag() {
        if vlan.len() == MAX_IN_BAND_TAGS {
            return Err(ParseError::TooManyTags);
        }
        if bytes.len() < offset + TAG_BODY_LEN {
            return Err(ParseError::truncated(Layer::Vlan));
        }
        vlan.push(u16::from(ethertype), u16_at(bytes, offset));
        ethertype = EtherType::from(u16_at(bytes, offset + 2));
        offset += TAG_BODY_LEN;
    }
    parse_at(bytes, offset, ethertype, vlan)
}

/// Parses the network layer at `input[offset..]`, of protocol `ethertype`.
///
/// The result is built in one struct expression per branch, so that it is
/// written straight into the caller's return slot, not built and copied.
#[inline(always)]
fn parse_at(input: &[u8], offset: usize, ethertype: EtherType, vlan: VlanTags) -> Result<ParsedPacket<'_>, ParseError> {
    let bytes = &input[offset..];
    match ethertype {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(bytes)?;
            // Sliced from `bytes`, not the view, to borrow the input rather than the local view.
            let (header_len, packet_len) = (ip.header_len(), ip.packet_len());
            let protocol = ip.protocol();
            let fragment = ip.fragment();
            let payload = &bytes[header_len..packet_len];
            let (transport, vxlan_inner) = parse_transport(protocol, payload, fragment, offset + header_len)?;
            Ok(ParsedPacket {
                vlan,
                link: LinkKind::Ipv4,
                network_offset: offset,
                network_bytes: &bytes[..packet_len],
                network: Some(NetworkSummary {
                    src: IpAddr::V4(ip.src_addr()),
                    dst: IpAddr::V4(ip.dst_addr()),
                    protocol,
                    ip_id: Some(ip.ident()),
                    // At most 65535, or the buffer's length for BIG TCP (a GSO super-frame, far below 4 GiB).
                    total_len: packet_len as u32,
                    // At most 60.
                    header_len: header_len as u16,
                    ttl: ip.ttl(),
                    dscp_ecn: ip.dscp_ecn(),
                    dont_fragment: ip.dont_fragment(),
                    fragment,
                }),
                transport: Some(transport),
                vxlan_inner,
            })
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(bytes)?;
            let upper = ip.upper_layer()?;
            let (header_len, packet_len) = (upper.header_len, ip.packet_len());
            let payload = &bytes[header_len..packet_len];
            let (transport, vxlan_inner) =
                parse_transport(upper.protocol, payload, upper.fragment, offset + header_len)?;
            Ok(ParsedPacket {
                vlan,
                link: LinkKind::Ipv6,
                network_offset: offset,
                network_bytes: &bytes[..packet_len],
                network: Some(NetworkSummary {
                    src: IpAddr::V6(ip.src_addr()),
                    dst: IpAddr::V6(ip.dst_addr()),
                    protocol: upper.protocol,
                    ip_id: None,
                    total_len: packet_len as u32,
                    // At most 40 + 8 extension headers of at most 2048 bytes each.
                    header_len: header_len as u16,
                    ttl: ip.hop_limit(),
                    dscp_ecn: ip.traffic_class(),
                    dont_fragment: false,
                    fragment: upper.fragment,
                }),
                transport: Some(transport),
                vxlan_inner,
            })
        }
        EtherType::Arp => {
            let arp = ArpPacket::new_checked(bytes)?;
            Ok(ParsedPacket {
                vlan,
                link: LinkKind::Arp,
                network_offset: offset,
                network_bytes: &bytes[..arp.len()],
                network: None,
                transport: None,
                vxlan_inner: None,
            })
        }
        _ => Ok(ParsedPacket {
            vlan,
            link: LinkKind::Other(ethertype),
            network_offset: offset,
            network_bytes: bytes,
            network: None,
            transport: None,
            vxlan_inner: None,
        }),
    }
}

/// Parses the transport layer `payload` of protocol `protocol`, found at
/// `offset` in the parsed bytes; with the VXLAN inner frame if there is one.
#[inline(always)]
fn parse_transport(
    protocol: IpProtocol,
    payload: &[u8],
    fragment: Option<Fragment>,
    offset: usize,
) -> Result<(Transport<'_>, Option<VxlanInner<'_>>), ParseError> {
    let whole = fragment.is_none();
    if fragment.is_some_and(|fragment| !fragment.is_first()) {
        return Ok((Transport::NonFirstFragment { protocol, payload }, None));
    }
    let transport = match protocol {
        IpProtocol::Tcp => {
            let tcp = TcpSegment::new_checked(payload)?;
            let header_len = tcp.header_len();
            Transport::Tcp(TcpSummary {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                seq: tcp.seq_number(),
                ack: tcp.ack_number(),
                flags: tcp.flags(),
                window: tcp.window(),
                options: &payload[20..header_len],
                payload: &payload[header_len..],
            })
        }
        IpProtocol::Udp => {
            // A first fragment holds only the start of the datagram its length describes.
            let udp = if whole {
                UdpDatagram::new_checked(payload)?
            } else {
                UdpDatagram::new_checked_first_fragment(payload)?
            };
            let udp_payload = &payload[8..8 + udp.payload().len()];
            let mut vxlan_inner = None;
            if whole && udp.dst_port() == vxlan::PORT {
                if let Ok(vxlan) = VxlanPacket::new_checked(udp_payload) {
                    let header_len = vxlan.header_len();
                    vxlan_inner = Some(VxlanInner {
                        vni: vxlan.vni(),
                        offset: offset + 8 + header_len,
                        frame: &udp_payload[header_len..],
                    });
                }
            }
            let udp = Transport::Udp(UdpSummary {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
                length: udp.length(),
                payload: udp_payload,
            });
            return Ok((udp, vxlan_inner));
        }
        IpProtocol::Icmp => {
            let icmp = Icmpv4Packet::new_checked(payload)?;
            Transport::Icmpv4(Icmpv4Summary {
                msg_type: icmp.msg_type(),
                code: icmp.code(),
                echo: icmp.echo(),
                rest_of_header: icmp.rest_of_header(),
                payload: &payload[8..],
            })
        }
        IpProtocol::Icmpv6 => {
            let icmp = Icmpv6Packet::new_checked(payload)?;
            Transport::Icmpv6(Icmpv6Summary {
                msg_type: icmp.msg_type(),
                code: icmp.code(),
                echo: icmp.echo(),
                message_head: icmp.message_head(),
                payload: &payload[8..],
            })
        }
        _ => Transport::Other { protocol, payload },
    };
    Ok((transport, None))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{parse_everything, seeds};

    fn tcp<'a>(parsed: &ParsedPacket<'a>) -> TcpSummary<'a> {
        match parsed.transport {
            Some(Transport::Tcp(tcp)) => tcp,
            other => panic!("not TCP: {other:?}"),
        }
    }

    fn udp<'a>(parsed: &ParsedPacket<'a>) -> UdpSummary<'a> {
        match parsed.transport {
            Some(Transport::Udp(udp)) => udp,
            other => panic!("not UDP: {other:?}"),
        }
    }

    fn ip(parsed: &ParsedPacket<'_>) -> NetworkSummary {
        parsed.network.expect("an IP packet")
    }

    #[test]
    fn tcp_syn_with_options() {
        let parsed = parse_frame(seeds::TCP_SYN, None).unwrap();
        assert_eq!(parsed.link, LinkKind::Ipv4);
        assert!(parsed.vlan.is_empty());
        assert_eq!(parsed.network_offset, 14);
        assert_eq!(parsed.network_bytes.len(), 60);
        let network = ip(&parsed);
        assert_eq!(network.src, IpAddr::V4(Ipv4Addr::new(172, 17, 0, 3)));
        assert_eq!(network.dst, IpAddr::V4(Ipv4Addr::new(172, 17, 0, 2)));
        assert_eq!(network.protocol, IpProtocol::Tcp);
        assert_eq!(network.ip_id, Some(0x1c46));
        assert_eq!(network.total_len, 60);
        assert_eq!(network.header_len, 20);
        assert_eq!(network.ttl, 64);
        assert!(network.dont_fragment);
        assert_eq!(network.fragment, None);
        let tcp = tcp(&parsed);
        assert_eq!((tcp.src_port, tcp.dst_port), (40000, 80));
        assert_eq!(tcp.seq, SeqNumber(0x1234_5678));
        assert_eq!(tcp.flags, TcpFlags::SYN);
        assert_eq!(tcp.window, 64240);
        assert_eq!(tcp.options.len(), 20);
        assert!(tcp.payload.is_empty());
        assert_eq!(tcp.seq_len(), 1);
        assert_eq!(parsed.transport.unwrap().ports(), Some((40000, 80)));
        assert_eq!(parsed.vxlan_inner, None);
    }

    #[test]
    fn padding_is_not_payload() {
        let parsed = parse_frame(seeds::TCP_ACK_64, None).unwrap();
        assert_eq!(parsed.network_bytes.len(), 40);
        let tcp = tcp(&parsed);
        assert_eq!(tcp.flags, TcpFlags::ACK);
        assert_eq!(tcp.ack, SeqNumber(0x9abc_def1));
        assert!(tcp.payload.is_empty());

        let parsed = parse_frame(seeds::ARP_REQUEST, None).unwrap();
        assert_eq!(parsed.link, LinkKind::Arp);
        assert_eq!(parsed.network_bytes, &seeds::ARP_REQUEST[14..42]);
        assert_eq!((parsed.network, parsed.transport), (None, None));

        let parsed = parse_frame(seeds::IPV4_OPTIONS_IGMP, None).unwrap();
        assert_eq!(ip(&parsed).header_len, 24);
        assert_eq!(parsed.network_bytes.len(), 32);
        assert_eq!(
            parsed.transport,
            Some(Transport::Other {
                protocol: IpProtocol::Igmp,
                payload: &seeds::IPV4_OPTIONS_IGMP[38..46]
            })
        );
    }

    #[test]
    fn udp_and_icmp_echo() {
        let parsed = parse_frame(seeds::UDP_DNS, None).unwrap();
        let udp = udp(&parsed);
        assert_eq!((udp.src_port, udp.dst_port, udp.length), (45678, 53, 37));
        assert_eq!(udp.payload, &seeds::UDP_DNS[42..]);
        assert_eq!(ip(&parsed).ip_id, Some(0x3039));
        assert!(!ip(&parsed).dont_fragment);

        let parsed = parse_frame(seeds::ICMP_ECHO, None).unwrap();
        let Some(Transport::Icmpv4(icmp)) = parsed.transport else {
            panic!("not ICMP: {parsed:?}");
        };
        assert_eq!(icmp.msg_type, Icmpv4Type::EchoRequest);
        assert_eq!(icmp.echo, Some(Echo { ident: 0x42, seq_no: 7 }));
        assert_eq!(icmp.payload.len(), 32);
        assert_eq!(parsed.transport.unwrap().ports(), None);

        let parsed = parse_frame(seeds::ICMPV6_ECHO, None).unwrap();
        assert_eq!(parsed.link, LinkKind::Ipv6);
        let network = ip(&parsed);
        assert_eq!(network.ip_id, None);
        assert_eq!(network.src, IpAddr::V6("fd00::3".parse::<Ipv6Addr>().unwrap()));
        assert_eq!(network.total_len, 80);
        assert_eq!(network.ttl, 64);
        let Some(Transport::Icmpv6(icmp)) = parsed.transport else {
            panic!("not ICMPv6: {parsed:?}");
        };
        assert_eq!(icmp.msg_type, Icmpv6Type::EchoRequest);
        assert_eq!(icmp.echo, Some(Echo { ident: 0x43, seq_no: 9 }));
        assert_eq!(icmp.payload.len(), 32);
    }

    #[test]
    fn ipv4_fragments_first_and_non_first() {
        let first = parse_frame(seeds::IPV4_FRAG_FIRST, None).unwrap();
        let fragment = ip(&first).fragment.unwrap();
        assert_eq!((fragment.ident, fragment.offset, fragment.more), (0x4321, 0, true));
        let udp = udp(&first);
        assert_eq!(udp.length, 108);
        assert_eq!(udp.payload.len(), 48);

        let last = parse_frame(seeds::IPV4_FRAG_LAST, None).unwrap();
        let fragment = ip(&last).fragment.unwrap();
        assert_eq!((fragment.ident, fragment.offset, fragment.more), (0x4321, 56, false));
        assert_eq!(
            last.transport,
            Some(Transport::NonFirstFragment {
                protocol: IpProtocol::Udp,
                payload: &seeds::IPV4_FRAG_LAST[34..]
            })
        );
    }

    #[test]
    fn ipv6_hop_by_hop_and_fragments() {
        let first = parse_frame(seeds::IPV6_HBH_FRAG_FIRST, None).unwrap();
        let network = ip(&first);
        assert_eq!(network.protocol, IpProtocol::Udp);
        assert_eq!(network.header_len, 56);
        assert_eq!(network.total_len, 120);
        assert_eq!(
            network.fragment,
            Some(Fragment {
                ident: 0xcafe_0001,
                offset: 0,
                more: true
            })
        );
        let udp = udp(&first);
        assert_eq!((udp.src_port, udp.dst_port, udp.length), (5353, 5353, 208));
        assert_eq!(udp.payload.len(), 56);

        let last = parse_frame(seeds::IPV6_FRAG_LAST, None).unwrap();
        assert_eq!(ip(&last).fragment.map(|f| (f.offset, f.more)), Some((64, false)));
        match last.transport {
            Some(Transport::NonFirstFragment { protocol, payload }) => {
                assert_eq!(protocol, IpProtocol::Udp);
                assert_eq!(payload.len(), 144);
            }
            other => panic!("not a non-first fragment: {other:?}"),
        }
    }

    #[test]
    fn vxlan_inner_frame_parses_again() {
        let outer = parse_frame(seeds::VXLAN_TCP, None).unwrap();
        assert_eq!(udp(&outer).dst_port, vxlan::PORT);
        let inner = outer.vxlan_inner.unwrap();
        assert_eq!(inner.vni, 4096);
        assert_eq!(inner.offset, 50);
        assert_eq!(inner.frame, &seeds::VXLAN_TCP[50..]);
        let parsed = parse_frame(inner.frame, None).unwrap();
        assert_eq!(ip(&parsed).src, IpAddr::V4(Ipv4Addr::new(10, 0, 1, 3)));
        let tcp = tcp(&parsed);
        assert_eq!((tcp.src_port, tcp.dst_port), (41000, 8080));
        assert_eq!(tcp.flags, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(tcp.payload, b"hello");

        // Without the I flag it is a plain UDP datagram.
        let mut bytes = seeds::VXLAN_TCP.to_vec();
        bytes[42] = 0;
        let parsed = parse_frame(&bytes, None).unwrap();
        assert_eq!(parsed.vxlan_inner, None);
        assert_eq!(udp(&parsed).payload.len(), 67);
    }

    #[test]
    fn qinq_and_out_of_band_tags() {
        let parsed = parse_frame(seeds::QINQ_UDP, None).unwrap();
        let tags: Vec<_> = parsed.vlan.iter().collect();
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].tpid, tags[0].vid()), (EtherType::QinQ, 100));
        assert_eq!((tags[1].tpid, tags[1].vid(), tags[1].pcp()), (EtherType::Vlan, 10, 1));
        assert_eq!(parsed.network_offset, 22);
        assert_eq!(udp(&parsed).payload, b"qinq");

        // The ring stripped the outer tag and reports it beside the frame.
        let parsed = parse_frame(seeds::UDP_DNS, Some((0x8100, 0xa064))).unwrap();
        let tag = parsed.vlan.outermost().unwrap();
        assert!(tag.out_of_band);
        assert_eq!(
            (tag.tpid, tag.vid(), tag.pcp(), tag.dei()),
            (EtherType::Vlan, 100, 5, false)
        );
        assert_eq!(parsed.vlan.innermost(), Some(tag));
        assert_eq!(parsed.vlan.get(1), None);
        assert_eq!(udp(&parsed).dst_port, 53);

        // An out-of-band tag outside two in-band ones: three tags, outermost first.
        let parsed = parse_frame(seeds::QINQ_UDP, Some((0x88a8, 7))).unwrap();
        let vids: Vec<_> = parsed.vlan.iter().map(|t| (t.vid(), t.out_of_band)).collect();
        assert_eq!(vids, [(7, true), (100, false), (10, false)]);
    }

    #[test]
    fn cooked_network_layer() {
        let from_frame = parse_frame(seeds::UDP_DNS, None).unwrap();
        let parsed = parse_network(0x0800, &seeds::UDP_DNS[14..]).unwrap();
        assert_eq!(parsed.network_offset, 0);
        assert_eq!(
            (parsed.network, parsed.transport),
            (from_frame.network, from_frame.transport)
        );

        // A cooked capture of a tagged frame: protocol 0x8100, then TCI and EtherType.
        let mut bytes = vec![0x00, 0x64];
        bytes.extend_from_slice(&seeds::QINQ_UDP[20..]);
        let parsed = parse_network(0x8100, &bytes).unwrap();
        assert_eq!(parsed.vlan.len(), 1);
        assert_eq!(parsed.network_offset, 4);
        assert_eq!(udp(&parsed).payload, b"qinq");
        let mut three = vec![0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00];
        three.extend_from_slice(&bytes);
        assert_eq!(parse_network(0x88a8, &three), Err(ParseError::TooManyTags));
        assert_eq!(
            parse_network(0x8100, &[0, 1, 8]),
            Err(ParseError::truncated(Layer::Vlan))
        );

        let parsed = parse_network(0x88cc, b"lldp").unwrap();
        assert_eq!(parsed.link, LinkKind::Other(EtherType::Unknown(0x88cc)));
        assert_eq!(parsed.network_bytes, b"lldp");
        assert_eq!(parse_network(0x0806, &[0; 7]), Err(ParseError::truncated(Layer::Arp)));
    }

    #[test]
    fn errors_name_the_failing_layer() {
        // IPv6 bytes announced as IPv4.
        assert_eq!(
            parse_network(0x0800, &seeds::ICMPV6_ECHO[14..]),
            Err(ParseError::BadVersion { layer: Layer::Ipv4 })
        );
        // A TCP header cut by the IP total length.
        let mut bytes = seeds::TCP_SYN[..14 + 20 + 10].to_vec();
        bytes[16..18].copy_from_slice(&30u16.to_be_bytes());
        assert_eq!(parse_frame(&bytes, None), Err(ParseError::truncated(Layer::Tcp)));
        // A UDP length past the IP packet.
        let mut bytes = seeds::UDP_DNS.to_vec();
        bytes[38..40].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse_frame(&bytes, None), Err(ParseError::truncated(Layer::Udp)));
        // The out-of-band tag does not count toward the two in the frame.
        let mut bytes = seeds::QINQ_UDP[..12].to_vec();
        bytes.extend_from_slice(&[0x81, 0x00, 0, 3]);
        bytes.extend_from_slice(&seeds::QINQ_UDP[12..]);
        assert_eq!(parse_frame(&bytes, None), Err(ParseError::TooManyTags));
    }

    #[test]
    fn every_prefix_of_every_seed_is_an_error_or_consistent() {
        for (name, seed) in seeds::ALL {
            let full = parse_frame(seed, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            let needed = full.network_offset + full.network_bytes.len();
            for len in 0..=seed.len() {
                let prefix = &seed[..len];
                parse_everything(prefix);
                if len < needed {
                    assert!(parse_frame(prefix, None).is_err(), "{name}[..{len}] parsed");
                } else {
                    // Only padding is missing: the same packet.
                    let parsed = parse_frame(prefix, None).unwrap();
                    assert_eq!((parsed.network, parsed.transport), (full.network, full.transport));
                }
            }
        }
    }

    #[test]
    fn every_single_byte_change_of_every_seed_is_an_error_or_consistent() {
        for (_, seed) in seeds::ALL {
            let mut bytes = seed.to_vec();
            for at in 0..bytes.len() {
                let original = bytes[at];
                for value in [0x00, 0x01, 0x05, 0x0f, 0x40, 0x80, 0xff, original ^ 0x10] {
                    bytes[at] = value;
                    parse_everything(&bytes);
                }
                bytes[at] = original;
            }
        }
    }

    #[test]
    fn mtu_segment() {
        let frame = seeds::tcp_segment(1460);
        assert_eq!(frame.len(), 1514);
        let parsed = parse_frame(&frame, None).unwrap();
        assert_eq!(tcp(&parsed).payload.len(), 1460);
        parse_everything(&frame);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            parse_everything(&data);
        }

        #[test]
        fn mutated_seeds_never_panic(
            seed in 0..seeds::ALL.len(),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = seeds::ALL[seed].1.to_vec();
            for (at, value) in changes {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            parse_everything(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            parse_everything(&bytes);
        }

        #[test]
        fn arbitrary_ip_after_a_valid_header_never_panics(
            ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100), Just(0x88a8)],
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut frame = seeds::TCP_SYN[..12].to_vec();
            frame.extend_from_slice(&ethertype.to_be_bytes());
            frame.extend_from_slice(&body);
            parse_everything(&frame);
        }

        /// Frames of the common shape and their near misses: the short path
        /// and the layer-by-layer parse agree on each (`parse_everything`
        /// compares them, with and without an out-of-band tag, and as
        /// cooked network layers), the valid ones parse, and a few changed
        /// bytes in the headers or a cut anywhere give the same error or
        /// the same packet through both.
        #[test]
        fn the_common_shape_parses_as_layer_by_layer(
            shape in common_shape_frame(),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let (mut frame, headers_len) = shape;
            prop_assert!(parse_frame(&frame, None).is_ok());
            parse_everything(&frame);
            for (at, value) in changes {
                frame[at % headers_len] = value;
            }
            parse_everything(&frame);
            frame.truncate(cut % (frame.len() + 1));
            parse_everything(&frame);
        }
    }

    /// A valid frame of the common shape, with its headers' length: no tag
    /// or one (802.1Q or 802.1ad), IPv4 without options or IPv6, TCP with 0
    /// to 40 bytes of options or UDP (sometimes to the VXLAN port), random
    /// header fields (sometimes a fragment's), payload and Ethernet padding.
    fn common_shape_frame() -> impl Strategy<Value = (Vec<u8>, usize)> {
        (
            prop_oneof![Just(None), Just(Some(0x8100u16)), Just(Some(0x88a8))],
            any::<bool>(),
            any::<bool>(),
            0..=10usize,
            proptest::collection::vec(any::<u8>(), 64),
            proptest::collection::vec(any::<u8>(), 0..100),
            0..20usize,
            prop_oneof![Just(0u16), Just(0x4000), Just(0x2000), any::<u16>()],
            prop_oneof![Just(0u16), Just(vxlan::PORT), any::<u16>()],
        )
            .prop_map(
                |(tag, ipv6, udp, option_words, fields, payload, padding, flags_fragment, dst_port)| {
                    let mut frame = fields[..12].to_vec();
                    if let Some(tpid) = tag {
                        frame.extend_from_slice(&tpid.to_be_bytes());
                        frame.extend_from_slice(&fields[12..14]);
                    }
                    let transport_len = if udp { 8 } else { 20 + 4 * option_words };
                    let ip_payload_len = transport_len + payload.len();
                    if ipv6 {
                        frame.extend_from_slice(&0x86ddu16.to_be_bytes());
                        frame.extend_from_slice(&[0x60 | (fields[14] & 0x0f), fields[15], fields[16], fields[17]]);
                        frame.extend_from_slice(&(ip_payload_len as u16).to_be_bytes());
                        frame.extend_from_slice(&[if udp { 17 } else { 6 }, fields[18]]);
                        frame.extend_from_slice(&fields[19..51]);
                    } else {
                        frame.extend_from_slice(&0x0800u16.to_be_bytes());
                        frame.extend_from_slice(&[0x45, fields[14]]);
                        frame.extend_from_slice(&((20 + ip_payload_len) as u16).to_be_bytes());
                        frame.extend_from_slice(&fields[15..17]);
                        frame.extend_from_slice(&flags_fragment.to_be_bytes());
                        frame.extend_from_slice(&[fields[17], if udp { 17 } else { 6 }]);
                        frame.extend_from_slice(&fields[18..28]);
                    }
                    frame.extend_from_slice(&fields[51..53]);
                    frame.extend_from_slice(&dst_port.to_be_bytes());
                    if udp {
                        frame.extend_from_slice(&(ip_payload_len as u16).to_be_bytes());
                        frame.extend_from_slice(&fields[53..55]);
                    } else {
                        frame.extend_from_slice(&fields[53..61]);
                        frame.push(((5 + option_words as u8) << 4) | (fields[61] & 0x0f));
                        frame.extend_from_slice(&fields[62..64]);
                        frame.extend_from_slice(&fields[..5]);
                        frame.resize(frame.len() + 4 * option_words, 1);
                    }
                    let headers_len = frame.len();
                    frame.extend_from_slice(&payload);
                    frame.resize(frame.len() + padding, 0);
                    (frame, headers_len)
                },
            )
    }
}
