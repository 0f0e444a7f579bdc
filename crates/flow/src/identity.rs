//! NAT-invariant packet identity: what makes two captured copies "the same
//! packet" although NAT and forwarding rewrote some of their bytes.
//!
//! On a Docker host one packet is seen on the container's veth, on docker0
//! and on the uplink, and MASQUERADE or DNAT rewrite the uplink copy's
//! addresses, ports, TTL and checksums (ground truth: shared/docs). The
//! identity therefore covers only fields that MASQUERADE, DNAT and forwarding
//! leave alone:
//!
//! | packet | in the identity |
//! |---|---|
//! | IPv4 | IP ID, total length, protocol (and the fragment offset and flag) |
//! | IPv6 | payload length, upper-layer protocol (and the fragment id and offset) |
//! | TCP | sequence, acknowledgement, flags, window, options, payload |
//! | UDP | length, payload |
//! | ICMP / ICMPv6 echo | type, code, sequence, payload (not the identifier, which NAT rewrites like a port) |
//! | ICMP error | type, code, the 4 header bytes after the checksum, the quoted packet's IP ID and protocol, the quoted length (NAT rewrites the quoted addresses and ports) |
//! | other ICMP, other IP protocols, non-first fragments | their payload |
//! | ARP and other non-IP frames | the whole frame from the MACs on, VLAN tags aside |
//!
//! Never the MACs of an IP packet, TTL or hop limit, checksums, addresses or
//! ports. VLAN tags are left out everywhere: a bridge may tag or untag a frame
//! between two tap points.
//!
//! An identity is 128 bits: a 64-bit keyed hash of all those fields
//! ([`crate::keyed_hash`], with random keys chosen at start-up, so crafted
//! traffic cannot aim at collisions; about half the instructions per payload
//! byte of the `ahash` it replaced) and 64 bits of the fields themselves,
//! compared exactly.
//! Two copies are merged only if both halves match; packets with the same
//! headers and different payloads never are.

use std::hash::Hasher;

use crate::keyed_hash::HashKeys;
use crate::parse::{LinkKind, NetworkSummary, ParsedPacket, Transport};

/// The identity of one packet: equal for every copy of it on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketIdentity {
    /// Keyed hash of every invariant field, payload included.
    pub hash: u64,
    /// Invariant header fields kept as they are (e.g. IP ID, length and TCP
    /// sequence), a second, exact check beside the hash.
    pub fields: u64,
}

/// Computes packet identities with one set of random hash keys. Every thread
/// that compares identities must use the same hasher (clone it).
#[derive(Clone, Debug)]
pub struct IdentityHasher {
    keys: HashKeys,
}

impl Default for IdentityHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// Distinguishes the kinds of packet inside the hash, so a UDP payload can
/// never hash like a TCP one.
mod kind {
    pub const NON_IP: u8 = 1;
    pub const TCP: u8 = 2;
    pub const UDP: u8 = 3;
    pub const ICMP_ECHO: u8 = 4;
    pub const ICMP_ERROR: u8 = 5;
    pub const ICMP_OTHER: u8 = 6;
    pub const FRAGMENT: u8 = 7;
    pub const OTHER_IP: u8 = 8;
}

impl IdentityHasher {
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

    /// The identity of `packet`, parsed from `frame` (the bytes
    /// [`crate::parse_frame`] was given).
    pub fn identity(&self, frame: &[u8], packet: &ParsedPacket<'_>) -> PacketIdentity {
        let mut h = self.keys.hasher();
        let fields = match (&packet.network, &packet.transport) {
            (Some(network), Some(transport)) => {
                let header = ip_fields(&mut h, network);
                header | transport_fields(&mut h, network, packet.network_bytes, transport)
            }
            _ => non_ip_fields(&mut h, frame, packet),
        };
        PacketIdentity {
            hash: h.finish(),
            fields,
        }
    }
}

/// Hashes the network-layer invariants and returns them packed in the upper
/// 32 bits of the exact check. Fields go in packed into 64-bit words, one
/// folded multiply each: the length and IP ID in one, the protocol and
/// whether a fragment header follows in the next (so a fragment's word is
/// never read as a transport word), the fragment's fields in a third.
fn ip_fields(h: &mut impl Hasher, network: &NetworkSummary) -> u64 {
    let protocol = u8::from(network.protocol);
    let ip_id = network.ip_id.map_or(0xffff_ffff, u32::from);
    h.write_u64(u64::from(network.total_len) << 32 | u64::from(ip_id));
    match network.fragment {
        Some(fragment) => {
            h.write_u64(0x100 | u64::from(protocol));
            // The IPv4 fragment ident is the IP ID again; IPv6 has only this one.
            h.write_u64(u64::from(fragment.ident) << 32 | u64::from(fragment.offset) << 8 | u64::from(fragment.more));
        }
        None => h.write_u64(u64::from(protocol)),
    }
    (u64::from(ip_id as u16) << 48) | (u64::from(network.total_len as u16) << 32)
}

/// Hashes the transport-layer invariants and returns 32 bits of them for the
/// exact check. TCP's fixed fields go in as two words, then its options and
/// payload in one byte string (they are contiguous in the frame; the
/// options' length is in the first word, so the split stays known).
fn transport_fields(h: &mut impl Hasher, network: &NetworkSummary, ip_bytes: &[u8], transport: &Transport<'_>) -> u64 {
    match transport {
        Transport::Tcp(tcp) => {
            let options_len = tcp.options.len() as u64 & 0xffff;
            h.write_u64(
                u64::from(kind::TCP) << 56
                    | options_len << 32
                    | u64::from(tcp.flags.bits()) << 16
                    | u64::from(tcp.window),
            );
            h.write_u64(u64::from(tcp.seq.0) << 32 | u64::from(tcp.ack.0));
            match joined(ip_bytes, tcp.options, tcp.payload) {
                Some(segment) => h.write(segment),
                None => {
                    h.write(tcp.options);
                    h.write(tcp.payload);
                }
            }
            u64::from(tcp.seq.0)
        }
        Transport::Udp(udp) => {
            h.write_u64(u64::from(kind::UDP) << 56 | u64::from(udp.length));
            h.write(udp.payload);
            (u64::from(udp.length) << 16) | u64::from(first_u16(udp.payload))
        }
        Transport::Icmpv4(icmp) => {
            let msg_type = u8::from(icmp.msg_type);
            icmp_fields(
                h,
                msg_type,
                icmp.code,
                icmp.echo.map(|e| e.seq_no),
                is_icmpv4_error(msg_type),
                icmp.rest_of_header,
                icmp.payload,
            )
        }
        Transport::Icmpv6(icmp) => {
            let msg_type = u8::from(icmp.msg_type);
            // ICMPv6 errors are the types below 128 (RFC 4443).
            icmp_fields(
                h,
                msg_type,
                icmp.code,
                icmp.echo.map(|e| e.seq_no),
                msg_type < 128,
                icmp.message_head,
                icmp.payload,
            )
        }
        Transport::NonFirstFragment { payload, .. } => {
            h.write_u8(kind::FRAGMENT);
            h.write(payload);
            u64::from(network.fragment.map_or(0, |f| f.offset))
        }
        Transport::Other { payload, .. } => {
            h.write_u8(kind::OTHER_IP);
            h.write(payload);
            u64::from(first_u16(payload))
        }
    }
}

fn icmp_fields(
    h: &mut impl Hasher,
    msg_type: u8,
    code: u8,
    echo_sequence: Option<u16>,
    is_error: bool,
    head: [u8; 4],
    payload: &[u8],
) -> u64 {
    let check = (u64::from(msg_type) << 24) | (u64::from(code) << 16);
    if let Some(sequence) = echo_sequence {
        h.write_u8(kind::ICMP_ECHO);
        h.write_u8(msg_type);
        h.write_u8(code);
        h.write_u16(sequence);
        h.write(payload);
        check | u64::from(sequence)
    } else if is_error {
        // The quoted packet's addresses, ports and checksums are rewritten
        // by NAT along with the outer ones; its IP ID and protocol are not.
        h.write_u8(kind::ICMP_ERROR);
        h.write_u8(msg_type);
        h.write_u8(code);
        h.write(&head);
        h.write_usize(payload.len());
        if let Some(quoted) = payload.get(..20).filter(|q| q[0] >> 4 == 4) {
            h.write(&quoted[4..6]);
            h.write_u8(quoted[9]);
        }
        check | u64::from(payload.len() as u16)
    } else {
        h.write_u8(kind::ICMP_OTHER);
        h.write_u8(msg_type);
        h.write_u8(code);
        h.write(&head);
        h.write(payload);
        check | u64::from(first_u16(payload))
    }
}

/// ICMPv4 error messages (RFC 792 and later): destination unreachable,
/// source quench, redirect, time exceeded, parameter problem.
fn is_icmpv4_error(msg_type: u8) -> bool {
    matches!(msg_type, 3 | 4 | 5 | 11 | 12)
}

/// ARP and other non-IP frames: the MAC addresses, the EtherType after any
/// VLAN tags, and everything from the network layer on.
fn non_ip_fields(h: &mut impl Hasher, frame: &[u8], packet: &ParsedPacket<'_>) -> u64 {
    h.write_u8(kind::NON_IP);
    let macs = frame.get(..12).unwrap_or(frame);
    h.write(macs);
    let ethertype = match packet.link {
        LinkKind::Arp => 0x0806,
        LinkKind::Ipv4 => 0x0800,
        LinkKind::Ipv6 => 0x86dd,
        LinkKind::Other(ethertype) => u16::from(ethertype),
    };
    h.write_u16(ethertype);
    h.write(packet.network_bytes);
    (u64::from(ethertype) << 48)
        | ((packet.network_bytes.len() as u64 & 0xffff) << 32)
        | u64::from(first_u32(packet.network_bytes))
}

fn first_u16(bytes: &[u8]) -> u16 {
    match bytes {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        [a] => u16::from(*a) << 8,
        [] => 0,
    }
}

fn first_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    let n = bytes.len().min(4);
    word[..n].copy_from_slice(&bytes[..n]);
    u32::from_be_bytes(word)
}

/// `a` and then `b` as one slice of `within`, when `b` starts where `a`
/// ends and both lie in `within` (a TCP header's options and its payload,
/// in the IP packet's bytes). Found from the slices' addresses, in safe
/// code; `None` otherwise (the caller then hashes the two one after the
/// other).
fn joined<'a>(within: &'a [u8], a: &[u8], b: &[u8]) -> Option<&'a [u8]> {
    let start = (a.as_ptr() as usize).checked_sub(within.as_ptr() as usize)?;
    let end = start.checked_add(a.len())?;
    (b.as_ptr() as usize == within.as_ptr() as usize + end).then_some(())?;
    within.get(start..end.checked_add(b.len())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;
    use crate::parse_frame;

    fn hasher() -> IdentityHasher {
        IdentityHasher::with_seeds([1, 2, 3, 4])
    }

    fn identity(frame: &[u8]) -> PacketIdentity {
        let packet = parse_frame(frame, None).expect("fixture parses");
        hasher().identity(frame, &packet)
    }

    /// What MASQUERADE does to the uplink copy of an IPv4 packet from a
    /// container: new MACs, source address, TTL - 1, new checksums (and, for
    /// a port clash or ICMP, a new source port or echo identifier).
    fn masquerade(frame: &[u8], new_source_port: Option<u16>) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[..12].copy_from_slice(&[0x02, 0, 0xc6, 0x12, 0, 1, 0x02, 0, 0xc6, 0x12, 0, 2]);
        f[26..30].copy_from_slice(&[198, 18, 0, 2]);
        f[22] -= 1;
        f[24] ^= 0x5a;
        f[25] ^= 0xa5;
        if let Some(port) = new_source_port {
            f[34..36].copy_from_slice(&port.to_be_bytes());
        }
        f
    }

    /// What DNAT does to the container-side copy of a packet to a published
    /// port: destination address and port rewritten, TTL - 1, checksums.
    fn dnat(frame: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[30..34].copy_from_slice(&[172, 17, 0, 9]);
        f[36..38].copy_from_slice(&8080u16.to_be_bytes());
        f[22] -= 1;
        f[24] = 0;
        f
    }

    #[test]
    fn nat_and_forwarding_keep_the_identity() {
        for (name, frame) in [
            ("tcp syn", seeds::TCP_SYN),
            ("tcp ack", seeds::TCP_ACK_64),
            ("udp", seeds::UDP_DNS),
        ] {
            let original = identity(frame);
            assert_eq!(identity(&masquerade(frame, None)), original, "{name}: MASQUERADE");
            assert_eq!(
                identity(&masquerade(frame, Some(61_000))),
                original,
                "{name}: MASQUERADE, new port"
            );
            assert_eq!(identity(&dnat(frame)), original, "{name}: DNAT");
        }
    }

    #[test]
    fn icmp_echo_identity_ignores_the_identifier_nat_rewrites() {
        let original = identity(seeds::ICMP_ECHO);
        // MASQUERADE gives the echo a new identifier, as it would a new port.
        let mut rewritten = masquerade(seeds::ICMP_ECHO, None);
        rewritten[38..40].copy_from_slice(&0x9999u16.to_be_bytes());
        assert_eq!(identity(&rewritten), original);
        let mut other_sequence = seeds::ICMP_ECHO.to_vec();
        other_sequence[41] = 8;
        assert_ne!(identity(&other_sequence), original);
    }

    #[test]
    fn any_change_of_an_invariant_field_or_the_payload_changes_the_identity() {
        let original = identity(seeds::TCP_ACK_64);
        // IP ID, sequence, acknowledgement, flags, window.
        for byte in [18, 19, 38, 41, 42, 45, 47, 48, 49] {
            let mut changed = seeds::TCP_ACK_64.to_vec();
            changed[byte] ^= 0x01;
            assert_ne!(identity(&changed), original, "byte {byte}");
        }
        let payload = seeds::tcp_segment(100);
        let mut other_payload = payload.clone();
        *other_payload.last_mut().unwrap() ^= 0xff;
        assert_ne!(
            identity(&payload),
            identity(&other_payload),
            "same headers, other payload"
        );
        assert_eq!(identity(&payload).fields, identity(&other_payload).fields);
    }

    #[test]
    fn tcp_options_and_payload_are_hashed_as_one_string_that_keeps_their_split() {
        // Data offset 5 (no options) against 6 (4 bytes of the same segment
        // taken as options): the bytes after the fixed header are the same.
        let plain = seeds::tcp_segment(40);
        let mut with_options = plain.clone();
        with_options[46] = (with_options[46] & 0x0f) | 6 << 4;
        let packet = parse_frame(&with_options, None).unwrap();
        let Some(Transport::Tcp(tcp)) = packet.transport else {
            panic!("TCP")
        };
        assert_eq!((tcp.options.len(), tcp.payload.len()), (4, 36));
        let joined = joined(packet.network_bytes, tcp.options, tcp.payload).expect("adjacent in the packet");
        assert_eq!(joined, &with_options[54..]);
        assert_ne!(identity(&plain), identity(&with_options));
        // Slices that are not adjacent in the packet are not joined.
        assert_eq!(joined_of_other(&packet), None);
    }

    fn joined_of_other<'a>(packet: &ParsedPacket<'a>) -> Option<&'a [u8]> {
        let bytes = packet.network_bytes;
        joined(bytes, &bytes[..4], &bytes[8..12])
    }

    #[test]
    fn udp_payloads_never_merge() {
        let mut a = seeds::UDP_DNS.to_vec();
        let original = identity(&a);
        let last = a.len() - 1;
        a[last] ^= 1;
        assert_ne!(identity(&a), original);
    }

    #[test]
    fn arp_identity_is_the_whole_frame_without_padding() {
        let original = identity(seeds::ARP_REQUEST);
        assert_eq!(identity(seeds::ARP_REQUEST), original);
        let mut padded = seeds::ARP_REQUEST.to_vec();
        padded.extend_from_slice(&[0xee; 8]);
        assert_eq!(
            identity(&padded),
            original,
            "Ethernet padding is not part of the packet"
        );
        let mut other_mac = seeds::ARP_REQUEST.to_vec();
        other_mac[6] ^= 1;
        assert_ne!(identity(&other_mac), original);
    }

    #[test]
    fn an_out_of_band_vlan_tag_does_not_change_the_identity() {
        let frame = seeds::TCP_SYN;
        let untagged = identity(frame);
        let packet = parse_frame(frame, Some((0x8100, 100))).unwrap();
        assert_eq!(hasher().identity(frame, &packet), untagged);
    }

    #[test]
    fn keys_differ_between_hashers_so_hashes_cannot_be_precomputed() {
        let packet = parse_frame(seeds::TCP_SYN, None).unwrap();
        let a = IdentityHasher::new().identity(seeds::TCP_SYN, &packet);
        let b = IdentityHasher::new().identity(seeds::TCP_SYN, &packet);
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.fields, b.fields);
    }

    #[test]
    fn every_seed_has_an_identity_and_fragments_keep_theirs_apart() {
        let ids: Vec<_> = seeds::ALL.iter().map(|(_, f)| identity(f)).collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
