//! Flow keys: the 5-tuple of a packet as one tap point saw it
//! ([`FlowTuple`]), and a symmetric hash of it ([`FlowHasher`]) that is equal
//! for both directions of a connection, so that every packet of a
//! connection, request and reply, can be sent to the same worker.
//!
//! Ports are the TCP and UDP ports; for ICMP and ICMPv6 echo messages the
//! identifier stands in for both ports (NAT rewrites it as it rewrites a
//! port, and request and reply carry the same one). Fragments of an IP packet
//! carry ports only in the first fragment, so every fragmented packet gets
//! ports 0 and all its fragments fall in one flow: the connection's other
//! packets may then hash elsewhere, which is what Suricata's defrag-less
//! flow hashing does as well. Other IP protocols have ports 0.

use std::hash::Hasher;
use std::net::IpAddr;

use crate::keyed_hash::HashKeys;

use crate::parse::{ParsedPacket, Transport};

/// One end of a flow: an address and a port (0 where the protocol has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The IP address.
    pub addr: IpAddr,
    /// The port, or the ICMP echo identifier, or 0.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(addr) => write!(f, "{addr}:{}", self.port),
            IpAddr::V6(addr) => write!(f, "[{addr}]:{}", self.port),
        }
    }
}

/// A packet's 5-tuple in the direction it travelled, as seen at one tap
/// point (so after NAT on one side of it, before on the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowTuple {
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6...).
    pub protocol: u8,
    /// Where the packet came from.
    pub src: Endpoint,
    /// Where it went.
    pub dst: Endpoint,
}

impl FlowTuple {
    /// The tuple of a parsed IP packet; `None` for ARP and other non-IP
    /// frames.
    #[inline]
    pub fn of(packet: &ParsedPacket<'_>) -> Option<Self> {
        let network = packet.network.as_ref()?;
        let (src_port, dst_port) = if network.fragment.is_some() {
            (0, 0)
        } else {
            match &packet.transport {
                Some(Transport::Tcp(tcp)) => (tcp.src_port, tcp.dst_port),
                Some(Transport::Udp(udp)) => (udp.src_port, udp.dst_port),
                Some(Transport::Icmpv4(icmp)) => icmp.echo.map_or((0, 0), |e| (e.ident, e.ident)),
                Some(Transport::Icmpv6(icmp)) => icmp.echo.map_or((0, 0), |e| (e.ident, e.ident)),
                _ => (0, 0),
            }
        };
        Some(Self {
            protocol: u8::from(network.protocol),
            src: Endpoint {
                addr: network.src,
                port: src_port,
            },
            dst: Endpoint {
                addr: network.dst,
                port: dst_port,
            },
        })
    }

    /// The tuple of an Ethernet frame (with the VLAN tag the capture gave
    /// out of band, if any): [`FlowTuple::of`] its [`crate::parse_frame`],
    /// `None` for a non-IP or malformed frame. Faster than the two calls when
    /// only the tuple is wanted, for IPv4 TCP and UDP of the common shape:
    /// the parse is inlined, and what the tuple does not need is never built.
    #[inline]
    pub fn of_frame(frame: &[u8], out_of_band_vlan: Option<(u16, u16)>) -> Option<Self> {
        crate::parse::parse_frame_inlined(frame, out_of_band_vlan)
            .ok()
            .and_then(|packet| Self::of(&packet))
    }

    /// The same flow in the other direction.
    pub fn reversed(self) -> Self {
        Self {
            protocol: self.protocol,
            src: self.dst,
            dst: self.src,
        }
    }

    /// The endpoints ordered low, high: the same for both directions.
    pub fn ordered_endpoints(&self) -> (Endpoint, Endpoint) {
        if self.src <= self.dst {
            (self.src, self.dst)
        } else {
            (self.dst, self.src)
        }
    }
}

impl std::fmt::Display for FlowTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} proto {}", self.src, self.dst, self.protocol)
    }
}

/// A packet's flow in the container's address space, with its symmetric
/// hash: what the dedup hands on with every delivered packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The 5-tuple, container side, in the packet's direction.
    pub tuple: FlowTuple,
    /// [`FlowHasher::symmetric`] of `tuple`.
    pub hash: u64,
}

/// Keyed symmetric flow hashing: random keys at start-up, so crafted traffic
/// cannot aim many flows at one worker or one table bucket. The hash is
/// [`crate::keyed_hash`]'s over the ordered endpoints packed into 64-bit
/// words (two words and a third of ports and protocol for IPv4).
#[derive(Clone, Debug)]
pub struct FlowHasher {
    keys: HashKeys,
}

impl Default for FlowHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowHasher {
    /// A hasher with random keys.
    pub fn new() -> Self {
        Self {
            keys: HashKeys::random(),
        }
    }

    /// A hasher with fixed keys, for tests and for reproducing a run.
    pub fn with_seeds(seeds: [u64; 4]) -> Self {
        Self {
            keys: HashKeys::from_seeds(seeds),
        }
    }

    /// The hash of a flow, equal for `tuple` and `tuple.reversed()`.
    pub fn symmetric(&self, tuple: &FlowTuple) -> u64 {
        let mut h = self.keys.hasher();
        if let (IpAddr::V4(src), IpAddr::V4(dst)) = (tuple.src.addr, tuple.dst.addr) {
            // The common case without the generic endpoint comparison: an
            // IPv4 endpoint orders as its address then port, which is the
            // order of the 48-bit number address << 16 | port. Same words,
            // so the same hash, as the general path below.
            let src = u64::from(u32::from(src)) << 16 | u64::from(tuple.src.port);
            let dst = u64::from(u32::from(dst)) << 16 | u64::from(tuple.dst.port);
            let (low, high) = (src.min(dst), src.max(dst));
            h.write_u64((low >> 16) << 32 | high >> 16);
            h.write_u64(4 << 40 | u64::from(tuple.protocol) << 32 | (low & 0xffff) << 16 | (high & 0xffff));
            return h.finish();
        }
        self.symmetric_by_endpoints(tuple)
    }

    /// [`Self::symmetric`] through the generic endpoint order, for every
    /// address family. Out of line, so the IPv4 path saves no registers
    /// for it.
    #[inline(never)]
    fn symmetric_by_endpoints(&self, tuple: &FlowTuple) -> u64 {
        let mut h = self.keys.hasher();
        let (low, high) = tuple.ordered_endpoints();
        let family = match (low.addr, high.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                h.write_u64(u64::from(u32::from(a)) << 32 | u64::from(u32::from(b)));
                4
            }
            (a, b) => {
                write_address(&mut h, a);
                write_address(&mut h, b);
                6
            }
        };
        h.write_u64(family << 40 | u64::from(tuple.protocol) << 32 | u64::from(low.port) << 16 | u64::from(high.port));
        h.finish()
    }

    /// The hash of a non-IP frame's flow: its two MAC addresses, ordered, so
    /// an ARP request and its reply hash alike. Frames shorter than two MACs
    /// hash as one flow.
    pub fn link_symmetric(&self, frame: &[u8]) -> u64 {
        let mut h = self.keys.hasher();
        if let (Some(dst), Some(src)) = (frame.get(0..6), frame.get(6..12)) {
            let (low, high) = if src <= dst { (src, dst) } else { (dst, src) };
            h.write(low);
            h.write(high);
        }
        h.finish()
    }
}

/// An address of a flow with an IPv6 end: IPv4 addresses as their
/// IPv4-mapped IPv6 form, so each address is two words.
fn write_address(h: &mut impl Hasher, addr: IpAddr) {
    let bits = match addr {
        IpAddr::V4(addr) => u128::from(addr.to_ipv6_mapped()),
        IpAddr::V6(addr) => u128::from(addr),
    };
    h.write_u64((bits >> 64) as u64);
    h.write_u64(bits as u64);
}

/// The 32-bit flow tag the dedup table keeps per packet: the low half of
/// the symmetric hash, never 0 (0 means "no flow").
pub fn flow_tag(symmetric_hash: u64) -> u32 {
    (symmetric_hash as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;
    use crate::parse_frame;

    #[test]
    fn both_directions_hash_alike_and_other_flows_do_not() {
        let hasher = FlowHasher::with_seeds([1, 2, 3, 4]);
        let packet = parse_frame(seeds::TCP_SYN, None).unwrap();
        let tuple = FlowTuple::of(&packet).unwrap();
        assert_eq!(tuple.protocol, 6);
        assert_eq!(hasher.symmetric(&tuple), hasher.symmetric(&tuple.reversed()));
        let mut other = tuple;
        other.src.port ^= 1;
        assert_ne!(hasher.symmetric(&tuple), hasher.symmetric(&other));
        let mut swapped_ports = tuple;
        std::mem::swap(&mut swapped_ports.src.port, &mut swapped_ports.dst.port);
        assert_ne!(hasher.symmetric(&tuple), hasher.symmetric(&swapped_ports));
    }

    #[test]
    fn icmp_echo_uses_the_identifier_as_both_ports_and_arp_has_no_tuple() {
        let packet = parse_frame(seeds::ICMP_ECHO, None).unwrap();
        let tuple = FlowTuple::of(&packet).unwrap();
        assert_eq!(tuple.src.port, tuple.dst.port);
        assert_ne!(tuple.src.port, 0);
        let arp = parse_frame(seeds::ARP_REQUEST, None).unwrap();
        assert_eq!(FlowTuple::of(&arp), None);
    }

    proptest::proptest! {
        #[test]
        fn the_ipv4_shortcut_hashes_as_the_generic_order(
            a in proptest::prelude::any::<u32>(),
            b in proptest::prelude::any::<u32>(),
            ports in proptest::prelude::any::<(u16, u16)>(),
            same_address in proptest::prelude::any::<bool>(),
            protocol in proptest::prelude::any::<u8>(),
        ) {
            let hasher = FlowHasher::with_seeds([4, 3, 2, 1]);
            let b = if same_address { a } else { b };
            let tuple = FlowTuple {
                protocol,
                src: Endpoint { addr: IpAddr::V4(a.into()), port: ports.0 },
                dst: Endpoint { addr: IpAddr::V4(b.into()), port: ports.1 },
            };
            let hash = hasher.symmetric(&tuple);
            proptest::prop_assert_eq!(hash, hasher.symmetric_by_endpoints(&tuple));
            proptest::prop_assert_eq!(hash, hasher.symmetric(&tuple.reversed()));
        }
    }

    #[test]
    fn link_hash_is_symmetric_in_the_macs() {
        let hasher = FlowHasher::with_seeds([5, 6, 7, 8]);
        let mut frame = seeds::ARP_REQUEST.to_vec();
        let forward = hasher.link_symmetric(&frame);
        let (dst, src) = frame.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
        assert_eq!(hasher.link_symmetric(&frame), forward);
        assert_eq!(flow_tag(0), 1);
    }
}
