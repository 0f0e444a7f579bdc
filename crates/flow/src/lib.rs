//! Packet parsing, NAT-invariant packet identity and the dedup engine of
//! ringsieve: everything that decides, for each captured copy of a packet,
//! whether it is delivered, and under which canonical flow.
//!
//! Views here are zero-copy and follow one panic contract, written once:
//! a view is built with `new_checked` from untrusted bytes, which verifies the
//! length its accessors rely on; after that no accessor panics, whatever the
//! bytes. Wire codes are open enums (`Unknown(u16)`), so no value is rejected
//! for being unexpected. Errors are small `Copy` enums: one [`ParseError`]
//! for every layer, naming the [`Layer`] that failed so that captures can
//! count malformed packets by protocol.
//!
//! The views, one module per protocol: [`ethernet`] (with 802.1Q and
//! 802.1ad tags), [`arp`], [`ipv4`], [`ipv6`] (extension headers), [`tcp`],
//! [`udp`], [`icmpv4`], [`icmpv6`], [`vxlan`]. The hot path calls
//! [`parse_frame`] or [`parse_network`] once per packet and gets a
//! [`ParsedPacket`] of values and borrowed slices, without allocating.
//! Checksums are never verified: captured TCP and UDP checksums are often
//! partial (TP_STATUS_CSUMNOTREADY).
//!
//! The dedup: [`identity`] (what makes two copies the same packet across
//! NAT), [`dedup_table`] (the lock-free table shared by capture threads),
//! [`tap`] (tap points and their ranks), [`flow_key`] (5-tuples and
//! symmetric hashes), [`nat`] (bindings learned from duplicates),
//! [`tcp_ranges`] (GSO super-frames against their segments) and [`sieve`],
//! the engine that puts them together per capture thread.
//!
//! [`fuzzing`] holds the entry point of the fuzz target, which checks the
//! invariants of the parse, and the seed frames that the tests, the bench and
//! the fuzz corpus share.

#![forbid(unsafe_code)]

pub mod arp;
pub mod dedup_table;
pub mod error;
pub mod ethernet;
pub mod flow_key;
pub mod fuzzing;
pub mod hold_queue;
pub mod icmpv4;
pub mod icmpv6;
pub mod identity;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
mod keyed_hash;
pub mod nat;
pub mod packet_store;
pub mod parse;
mod read;
pub mod sieve;
pub mod tap;
pub mod tcp;
pub mod tcp_ranges;
pub mod udp;
pub mod vxlan;

pub use dedup_table::{DedupCounters, DedupTable, HoldTicket, Observation, TapId, Verdict};
pub use error::{Layer, ParseError};
pub use ethernet::{EtherType, EthernetFrame};
pub use flow_key::{Endpoint, FlowHasher, FlowKey, FlowTuple};
pub use hold_queue::OrderedQueue;
pub use identity::{IdentityHasher, PacketIdentity};
pub use ip::{Fragment, IpProtocol};
pub use nat::{NatBindings, NatTranslation};
pub use parse::{
    parse_frame, parse_network, Icmpv4Summary, Icmpv6Summary, LinkKind, NetworkSummary, ParsedPacket, TcpSummary,
    Transport, UdpSummary, VlanTag, VlanTags, VxlanInner,
};
pub use sieve::{
    CapturedCopy, Delivery, HoldEnd, LinkLayer, Outcome, Released, Sieve, SieveConfig, SieveCounters, SieveShared,
    SuppressedCopy, TooManyThreads,
};
pub use tap::{TapDirection, TapInfo, TapPoint, TapRegistry, TapRole};
pub use tcp::{SeqNumber, TcpFlags};
