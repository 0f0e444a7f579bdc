//! The ctnetlink wire format, decoded by hand with safe byte slicing: the
//! netlink messages of one datagram ([`messages`]), the conntrack entries
//! they carry ([`Conntrack`], with its original and reply [`CtTuple`]s,
//! status, id and zone), and the one request this crate sends, a dump of the
//! conntrack table ([`dump_request`]).
//!
//! Decoding follows one contract: whatever the bytes, nothing panics; a
//! length that does not fit, a missing tuple or an address of the wrong size
//! is a [`ParseError`]. Attributes this crate has no use for are skipped.
//! netlink headers and attribute headers are in host byte order, attribute
//! payloads in network byte order (the ctnetlink convention).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flow::{Endpoint, FlowTuple};

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Length of `struct nfgenmsg`.
pub const NFGENMSG_LEN: usize = 4;

/// netlink control message: error or acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// netlink control message: end of a dump.
pub const NLMSG_DONE: u16 = 3;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: part of a multipart (dump) answer.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_DUMP_INTR`: the table changed while it was dumped.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_EXCL`: with `NLM_F_CREATE`, marks a NEW event (an UPDATE has neither).
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;

/// nfnetlink subsystem of conntrack entries.
pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
/// `IPCTNL_MSG_CT_NEW`: NEW and UPDATE events.
pub const IPCTNL_MSG_CT_NEW: u8 = 0;
/// `IPCTNL_MSG_CT_GET`: dump requests and their answers.
pub const IPCTNL_MSG_CT_GET: u8 = 1;
/// `IPCTNL_MSG_CT_DELETE`: DESTROY events.
pub const IPCTNL_MSG_CT_DELETE: u8 = 2;

/// Multicast group of NEW events.
pub const NFNLGRP_CONNTRACK_NEW: u32 = 1;
/// Multicast group of UPDATE events.
pub const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
/// Multicast group of DESTROY events.
pub const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;

/// Status bit: the connection's source is translated.
pub const IPS_SRC_NAT: u32 = 1 << 4;
/// Status bit: the connection's destination is translated.
pub const IPS_DST_NAT: u32 = 1 << 5;
/// Status bit: source NAT was set up.
pub const IPS_SRC_NAT_DONE: u32 = 1 << 7;
/// Status bit: destination NAT was set up.
pub const IPS_DST_NAT_DONE: u32 = 1 << 8;

const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;

const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;

const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;

const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// Why bytes are not a valid ctnetlink message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A netlink header's length is below its minimum or past the datagram.
    BadMessageLength {
        /// The length the header claims.
        claimed: usize,
        /// The bytes left in the datagram.
        available: usize,
    },
    /// A message is shorter than its fixed header(s).
    ShortMessage {
        /// What was being read.
        what: &'static str,
    },
    /// An attribute's length is below 4 or past its container.
    BadAttributeLength {
        /// The attribute's container.
        within: &'static str,
        /// The length the attribute claims.
        claimed: usize,
        /// The bytes left in the container.
        available: usize,
    },
    /// An attribute's payload has the wrong size for its type.
    BadValue {
        /// The attribute.
        what: &'static str,
        /// Its payload length.
        len: usize,
    },
    /// A required attribute is absent.
    Missing(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMessageLength { claimed, available } => {
                write!(f, "netlink message claims {claimed} bytes, {available} left")
            }
            Self::ShortMessage { what } => write!(f, "message too short for its {what}"),
            Self::BadAttributeLength {
                within,
                claimed,
                available,
            } => write!(f, "attribute in {within} claims {claimed} bytes, {available} left"),
            Self::BadValue { what, len } => write!(f, "{what} has a {len}-byte payload"),
            Self::Missing(what) => write!(f, "{what} is missing"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The fixed part of one netlink message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NlHeader {
    /// Total length, header included.
    pub len: u32,
    /// `nlmsg_type`: a control type or `subsystem << 8 | message`.
    pub msg_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// Sequence number (0 for events).
    pub seq: u32,
    /// Sender's port id (0 for the kernel).
    pub pid: u32,
}

/// One netlink message of a datagram: its header and payload (after the
/// netlink header).
#[derive(Clone, Copy, Debug)]
pub struct RawMessage<'a> {
    /// The header.
    pub header: NlHeader,
    /// The bytes after the header, within the message's length.
    pub payload: &'a [u8],
}

/// The netlink messages of a datagram, in order. After an error the
/// iterator ends: a bad length leaves no way to find the next message.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

/// Iterator returned by [`messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<RawMessage<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLMSG_HDRLEN {
            // Nothing, or padding too short to be a message.
            return None;
        }
        let header = NlHeader {
            len: u32_ne(self.rest, 0),
            msg_type: u16_ne(self.rest, 4),
            flags: u16_ne(self.rest, 6),
            seq: u32_ne(self.rest, 8),
            pid: u32_ne(self.rest, 12),
        };
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > self.rest.len() {
            let available = self.rest.len();
            self.rest = &[];
            return Some(Err(ParseError::BadMessageLength {
                claimed: len,
                available,
            }));
        }
        let payload = &self.rest[NLMSG_HDRLEN..len];
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(RawMessage { header, payload }))
    }
}

/// The error code of an `NLMSG_ERROR` payload: 0 for an acknowledgement,
/// else a negative errno.
pub fn error_code(payload: &[u8]) -> Result<i32, ParseError> {
    payload
        .get(0..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(ParseError::ShortMessage { what: "error code" })
}

/// What a conntrack message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtKind {
    /// A NEW event: the connection was confirmed (its first packet left
    /// the stack), NAT already set up.
    New,
    /// An UPDATE event (state, status or mark changed).
    Update,
    /// A DESTROY event: the entry is gone.
    Destroy,
    /// An entry of a dump of the table.
    Dump,
}

/// One direction's tuple as conntrack keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtTuple {
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (protocols with ports).
    pub src_port: Option<u16>,
    /// Destination port (protocols with ports).
    pub dst_port: Option<u16>,
    /// ICMP or ICMPv6 identifier.
    pub icmp_id: Option<u16>,
    /// ICMP or ICMPv6 type.
    pub icmp_type: Option<u8>,
    /// ICMP or ICMPv6 code.
    pub icmp_code: Option<u8>,
}

impl CtTuple {
    /// The tuple in ringsieve's terms, exactly as [`FlowTuple::of`] would
    /// build it from a packet of this direction: TCP and UDP ports; for ICMP
    /// queries (types 0, 8, 13 to 18) and ICMPv6 echo (128, 129) the
    /// identifier as both ports; 0 for everything else.
    pub fn flow_tuple(&self) -> FlowTuple {
        let (src_port, dst_port) = match self.protocol {
            IPPROTO_TCP | IPPROTO_UDP => (self.src_port.unwrap_or(0), self.dst_port.unwrap_or(0)),
            IPPROTO_ICMP if matches!(self.icmp_type, Some(0 | 8 | 13..=18)) => {
                let id = self.icmp_id.unwrap_or(0);
                (id, id)
            }
            IPPROTO_ICMPV6 if matches!(self.icmp_type, Some(128 | 129)) => {
                let id = self.icmp_id.unwrap_or(0);
                (id, id)
            }
            _ => (0, 0),
        };
        FlowTuple {
            protocol: self.protocol,
            src: Endpoint {
                addr: self.src,
                port: src_port,
            },
            dst: Endpoint {
                addr: self.dst,
                port: dst_port,
            },
        }
    }
}

/// One conntrack entry as a ctnetlink message reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conntrack {
    /// Event or dump entry.
    pub kind: CtKind,
    /// `nfgen_family` (2 IPv4, 10 IPv6).
    pub family: u8,
    /// The original direction: the first packet, before NAT.
    pub orig: CtTuple,
    /// The reply direction: a reply as it arrives, before de-NAT.
    pub reply: CtTuple,
    /// `CTA_STATUS` (`IPS_*` bits), when present.
    pub status: Option<u32>,
    /// `CTA_ID`, the entry's id, when present.
    pub id: Option<u32>,
    /// `CTA_ZONE`, when present.
    pub zone: Option<u16>,
    /// The dump this entry belongs to was interrupted by table changes.
    pub dump_interrupted: bool,
}

/// Decodes a ctnetlink conntrack message (`NFNL_SUBSYS_CTNETLINK` with
/// `IPCTNL_MSG_CT_NEW`, `_GET` or `_DELETE`). `Ok(None)` for any other
/// netlink message (control messages, expectations, other subsystems).
pub fn parse_conntrack(message: &RawMessage<'_>) -> Result<Option<Conntrack>, ParseError> {
    let [subsystem, ct_message] = message.header.msg_type.to_be_bytes();
    if subsystem != NFNL_SUBSYS_CTNETLINK {
        return Ok(None);
    }
    let flags = message.header.flags;
    let kind = match ct_message {
        IPCTNL_MSG_CT_DELETE => CtKind::Destroy,
        IPCTNL_MSG_CT_GET => CtKind::Dump,
        IPCTNL_MSG_CT_NEW if flags & NLM_F_MULTI != 0 => CtKind::Dump,
        IPCTNL_MSG_CT_NEW if flags & (NLM_F_CREATE | NLM_F_EXCL) != 0 => CtKind::New,
        IPCTNL_MSG_CT_NEW => CtKind::Update,
        _ => return Ok(None),
    };
    let payload = message.payload;
    if payload.len() < NFGENMSG_LEN {
        return Err(ParseError::ShortMessage { what: "nfgenmsg" });
    }
    let family = payload[0];
    let mut orig = None;
    let mut reply = None;
    let mut status = None;
    let mut id = None;
    let mut zone = None;
    for attribute in attributes(&payload[NFGENMSG_LEN..], "conntrack message") {
        let (kind, value) = attribute?;
        match kind {
            CTA_TUPLE_ORIG => orig = Some(parse_tuple(value, "CTA_TUPLE_ORIG")?),
            CTA_TUPLE_REPLY => reply = Some(parse_tuple(value, "CTA_TUPLE_REPLY")?),
            CTA_STATUS => status = Some(be_u32(value, "CTA_STATUS")?),
            CTA_ID => id = Some(be_u32(value, "CTA_ID")?),
            CTA_ZONE => zone = Some(be_u16(value, "CTA_ZONE")?),
            _ => {}
        }
    }
    Ok(Some(Conntrack {
        kind,
        family,
        orig: orig.ok_or(ParseError::Missing("CTA_TUPLE_ORIG"))?,
        reply: reply.ok_or(ParseError::Missing("CTA_TUPLE_REPLY"))?,
        status,
        id,
        zone,
        dump_interrupted: flags & NLM_F_DUMP_INTR != 0,
    }))
}

fn parse_tuple(bytes: &[u8], what: &'static str) -> Result<CtTuple, ParseError> {
    let mut src = None;
    let mut dst = None;
    let mut protocol = None;
    let mut tuple = CtTuple {
        protocol: 0,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        src_port: None,
        dst_port: None,
        icmp_id: None,
        icmp_type: None,
        icmp_code: None,
    };
    for attribute in attributes(bytes, what) {
        match attribute? {
            (CTA_TUPLE_IP, ip) => {
                for attribute in attributes(ip, "CTA_TUPLE_IP") {
                    match attribute? {
                        (CTA_IP_V4_SRC, v) => src = Some(IpAddr::V4(v4(v, "CTA_IP_V4_SRC")?)),
                        (CTA_IP_V4_DST, v) => dst = Some(IpAddr::V4(v4(v, "CTA_IP_V4_DST")?)),
                        (CTA_IP_V6_SRC, v) => src = Some(IpAddr::V6(v6(v, "CTA_IP_V6_SRC")?)),
                        (CTA_IP_V6_DST, v) => dst = Some(IpAddr::V6(v6(v, "CTA_IP_V6_DST")?)),
                        _ => {}
                    }
                }
            }
            (CTA_TUPLE_PROTO, proto) => {
                for attribute in attributes(proto, "CTA_TUPLE_PROTO") {
                    match attribute? {
                        (CTA_PROTO_NUM, v) => protocol = Some(be_u8(v, "CTA_PROTO_NUM")?),
                        (CTA_PROTO_SRC_PORT, v) => tuple.src_port = Some(be_u16(v, "CTA_PROTO_SRC_PORT")?),
                        (CTA_PROTO_DST_PORT, v) => tuple.dst_port = Some(be_u16(v, "CTA_PROTO_DST_PORT")?),
                        (CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID, v) => {
                            tuple.icmp_id = Some(be_u16(v, "CTA_PROTO_ICMP_ID")?);
                        }
                        (CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE, v) => {
                            tuple.icmp_type = Some(be_u8(v, "CTA_PROTO_ICMP_TYPE")?);
                        }
                        (CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE, v) => {
                            tuple.icmp_code = Some(be_u8(v, "CTA_PROTO_ICMP_CODE")?);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    tuple.protocol = protocol.ok_or(ParseError::Missing("CTA_PROTO_NUM"))?;
    tuple.src = src.ok_or(ParseError::Missing("CTA_IP_*_SRC"))?;
    tuple.dst = dst.ok_or(ParseError::Missing("CTA_IP_*_DST"))?;
    if tuple.src.is_ipv4() != tuple.dst.is_ipv4() {
        return Err(ParseError::BadValue {
            what: "CTA_TUPLE_IP (mixed families)",
            len: 0,
        });
    }
    Ok(tuple)
}

/// The netlink attributes of `bytes`: `(type without flag bits, payload)`.
fn attributes<'a>(bytes: &'a [u8], within: &'static str) -> Attributes<'a> {
    Attributes { rest: bytes, within }
}

struct Attributes<'a> {
    rest: &'a [u8],
    within: &'static str,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(u16, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLA_HDRLEN {
            // Empty, or alignment padding.
            return None;
        }
        let len = usize::from(u16_ne(self.rest, 0));
        let kind = u16_ne(self.rest, 2) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.rest.len() {
            let available = self.rest.len();
            self.rest = &[];
            return Some(Err(ParseError::BadAttributeLength {
                within: self.within,
                claimed: len,
                available,
            }));
        }
        let value = &self.rest[NLA_HDRLEN..len];
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((kind, value)))
    }
}

/// A request to dump every conntrack entry of every family, with sequence
/// number `seq`.
pub fn dump_request(seq: u32) -> [u8; NLMSG_HDRLEN + NFGENMSG_LEN] {
    let mut request = [0u8; NLMSG_HDRLEN + NFGENMSG_LEN];
    let msg_type = u16::from_be_bytes([NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET]);
    request[0..4].copy_from_slice(&((NLMSG_HDRLEN + NFGENMSG_LEN) as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0 (the kernel fills in ours), nfgenmsg: AF_UNSPEC (all families),
    // NFNETLINK_V0, res_id 0.
    request
}

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

// Callers check the length first.
fn u16_ne(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_ne(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn be_u8(value: &[u8], what: &'static str) -> Result<u8, ParseError> {
    match value {
        [b] => Ok(*b),
        _ => Err(ParseError::BadValue { what, len: value.len() }),
    }
}

fn be_u16(value: &[u8], what: &'static str) -> Result<u16, ParseError> {
    <[u8; 2]>::try_from(value)
        .map(u16::from_be_bytes)
        .map_err(|_| ParseError::BadValue { what, len: value.len() })
}

fn be_u32(value: &[u8], what: &'static str) -> Result<u32, ParseError> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_be_bytes)
        .map_err(|_| ParseError::BadValue { what, len: value.len() })
}

fn v4(value: &[u8], what: &'static str) -> Result<Ipv4Addr, ParseError> {
    <[u8; 4]>::try_from(value)
        .map(Ipv4Addr::from)
        .map_err(|_| ParseError::BadValue { what, len: value.len() })
}

fn v6(value: &[u8], what: &'static str) -> Result<Ipv6Addr, ParseError> {
    <[u8; 16]>::try_from(value)
        .map(Ipv6Addr::from)
        .map_err(|_| ParseError::BadValue { what, len: value.len() })
}
