//! What IPv4 and IPv6 share: the protocol numbers of the next header
//! ([`IpProtocol`]), and the fragment a packet is part of ([`Fragment`]).
//! Addresses are `std::net` types: `Copy`, 4 or 16 bytes, built for free from
//! the header bytes.

/// An IP protocol number (IPv4 protocol, IPv6 next header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpProtocol {
    /// IPv6 hop-by-hop options, 0.
    HopByHop,
    /// ICMP, 1.
    Icmp,
    /// IGMP, 2.
    Igmp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// IPv6 routing header, 43.
    Ipv6Route,
    /// IPv6 fragment header, 44.
    Ipv6Fragment,
    /// Encapsulating security payload, 50: opaque, ends the header chain.
    Esp,
    /// Authentication header, 51.
    Ah,
    /// ICMPv6, 58.
    Icmpv6,
    /// IPv6 "no next header", 59: nothing follows.
    Ipv6NoNext,
    /// IPv6 destination options, 60.
    Ipv6Options,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    // Always inlined: out of line it was a call and a jump table on every
    // parse, before the parse's own match on the protocol.
    #[inline(always)]
    fn from(value: u8) -> Self {
        match value {
            0 => Self::HopByHop,
            1 => Self::Icmp,
            2 => Self::Igmp,
            6 => Self::Tcp,
            17 => Self::Udp,
            43 => Self::Ipv6Route,
            44 => Self::Ipv6Fragment,
            50 => Self::Esp,
            51 => Self::Ah,
            58 => Self::Icmpv6,
            59 => Self::Ipv6NoNext,
            60 => Self::Ipv6Options,
            other => Self::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    // The known numbers are read from a table by the variant's position,
    // which the compiler computes without a branch (the match below maps
    // each variant to its own index); then the unknown number is picked
    // with a conditional move. A match straight to the numbers was a jump
    // table, one indirect jump per packet identity and per flow tuple.
    #[inline(always)]
    fn from(value: IpProtocol) -> Self {
        /// The numbers of the variants, in declaration order (the last,
        /// `Unknown`, is never read).
        const NUMBERS: [u8; 13] = [0, 1, 2, 6, 17, 43, 44, 50, 51, 58, 59, 60, 0];
        let position = match value {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::Tcp => 3,
            IpProtocol::Udp => 4,
            IpProtocol::Ipv6Route => 5,
            IpProtocol::Ipv6Fragment => 6,
            IpProtocol::Esp => 7,
            IpProtocol::Ah => 8,
            IpProtocol::Icmpv6 => 9,
            IpProtocol::Ipv6NoNext => 10,
            IpProtocol::Ipv6Options => 11,
            IpProtocol::Unknown(_) => 12,
        };
        match value {
            IpProtocol::Unknown(other) => other,
            _ => NUMBERS[position],
        }
    }
}

/// Where a fragment sits in its original packet.
///
/// IPv4 packets have one when the more-fragments flag is set or the offset is
/// not zero; IPv6 packets have one when they carry a fragment header (an
/// "atomic fragment", offset 0 and no more, is a whole packet in all but
/// name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// The identification shared by all fragments of a packet: the IPv4 IP ID
    /// (16 bits) or the IPv6 fragment header's identification (32 bits).
    pub ident: u32,
    /// Offset of this fragment's data in the original payload, in bytes (a
    /// multiple of 8).
    pub offset: u16,
    /// Whether more fragments follow (the M / MF flag).
    pub more: bool,
}

impl Fragment {
    /// Whether this fragment starts the original payload, and so carries the
    /// transport header (if it is long enough).
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers_round_trip() {
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(IpProtocol::from(value)), value);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(132), IpProtocol::Unknown(132));
    }
}
