//! IPv4 packets (RFC 791): the header with its options, fragmentation
//! fields, and the payload bounded by the total length. Checksums are read,
//! never verified: captures taken before a NIC finishes them are the norm.

use std::net::Ipv4Addr;

use crate::error::{Layer, ParseError};
use crate::ip::{Fragment, IpProtocol};
use crate::read::{array_at, u16_at};

/// Field offsets of the fixed IPv4 header.
mod field {
    use std::ops::Range;
    pub const VERSION_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAGMENT: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SOURCE: Range<usize> = 12..16;
    pub const DESTINATION: Range<usize> = 16..20;
    pub const HEADER_LEN: usize = 20;
}

/// The don't-fragment flag in the flags/fragment-offset field.
const DONT_FRAGMENT: u16 = 0x4000;
/// The more-fragments flag.
const MORE_FRAGMENTS: u16 = 0x2000;
/// The fragment offset, in units of 8 bytes.
const OFFSET_MASK: u16 = 0x1fff;
/// Largest total length the 16-bit field can state.
const MAX_TOTAL_LEN: usize = u16::MAX as usize;

/// A view of an IPv4 packet over bytes `T`.
///
/// The buffer may hold more bytes than the packet (Ethernet padding of short
/// frames): [`Ipv4Packet::payload`] stops at the total length.
///
/// A total length of 0 in a buffer longer than 65535 bytes is a Linux BIG TCP
/// GSO packet (more than 64 KiB, which the field cannot state): its payload
/// runs to the end of the buffer and [`Ipv4Packet::packet_len`] is the
/// buffer's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Views `buffer` as an IPv4 packet, checking the version, that the header
    /// length is at least 20, and that the header and the total length fit
    /// the buffer. After this no accessor panics.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Ipv4));
        }
        if bytes[field::VERSION_IHL] >> 4 != 4 {
            return Err(ParseError::BadVersion { layer: Layer::Ipv4 });
        }
        let header_len = usize::from(bytes[field::VERSION_IHL] & 0x0f) * 4;
        if header_len < field::HEADER_LEN {
            return Err(ParseError::BadHeaderLength { layer: Layer::Ipv4 });
        }
        if bytes.len() < header_len {
            return Err(ParseError::truncated(Layer::Ipv4));
        }
        let total_len = usize::from(u16_at(bytes, field::TOTAL_LEN.start));
        if total_len == 0 && bytes.len() > MAX_TOTAL_LEN {
            // BIG TCP: see the type's documentation.
        } else if total_len < header_len {
            return Err(ParseError::BadTotalLength { layer: Layer::Ipv4 });
        } else if bytes.len() < total_len {
            return Err(ParseError::truncated(Layer::Ipv4));
        }
        Ok(Self { buffer })
    }

    /// The version field: 4 once checked.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_IHL] >> 4
    }

    /// Header length in bytes, options included (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VERSION_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte (the old type of service).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length field, header included.
    #[inline]
    pub fn total_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }

    /// Length of the packet in bytes: the total length, or the buffer's length
    /// for a BIG TCP packet (total length 0).
    #[inline]
    pub fn packet_len(&self) -> usize {
        match self.total_len() {
            0 if self.buffer.as_ref().len() > MAX_TOTAL_LEN => self.buffer.as_ref().len(),
            len => usize::from(len),
        }
    }

    /// The identification field (IP ID).
    #[inline]
    pub fn ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The don't-fragment flag.
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.flags_fragment() & DONT_FRAGMENT != 0
    }

    /// The more-fragments flag.
    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.flags_fragment() & MORE_FRAGMENTS != 0
    }

    /// The fragment offset in bytes (the field × 8).
    #[inline]
    pub fn fragment_offset(&self) -> u16 {
        (self.flags_fragment() & OFFSET_MASK) << 3
    }

    /// The fragment this packet is, if it is one (more fragments, or an offset).
    #[inline]
    pub fn fragment(&self) -> Option<Fragment> {
        let more = self.more_fragments();
        let offset = self.fragment_offset();
        (more || offset != 0).then_some(Fragment {
            ident: u32::from(self.ident()),
            offset,
            more,
        })
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    #[inline(always)]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum, as captured (not verified).
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array_at::<4>(self.buffer.as_ref(), field::SOURCE.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array_at::<4>(self.buffer.as_ref(), field::DESTINATION.start))
    }

    /// The options, raw (empty when the IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to the total length, without
    /// link-layer padding.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.packet_len()]
    }

    /// The packet's bytes, header and payload, without link-layer padding.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.packet_len()]
    }

    #[inline]
    fn flags_fragment(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::FLAGS_FRAGMENT.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    #[test]
    fn syn_header_fields() {
        let ip = Ipv4Packet::new_checked(&seeds::TCP_SYN[14..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.total_len(), 60);
        assert_eq!(ip.ident(), 0x1c46);
        assert!(ip.dont_fragment());
        assert_eq!(ip.fragment(), None);
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.protocol(), IpProtocol::Tcp);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(172, 17, 0, 3));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(172, 17, 0, 2));
        assert!(ip.options().is_empty());
        assert_eq!(ip.payload().len(), 40);
    }

    #[test]
    fn options_and_padding() {
        // IGMP with a router alert option, in a frame padded to 60 bytes.
        let ip = Ipv4Packet::new_checked(&seeds::IPV4_OPTIONS_IGMP[14..]).unwrap();
        assert_eq!(ip.header_len(), 24);
        assert_eq!(ip.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(ip.protocol(), IpProtocol::Igmp);
        assert_eq!(ip.ttl(), 1);
        assert_eq!(ip.payload().len(), 8);
        assert_eq!(ip.as_bytes().len(), 32);
    }

    #[test]
    fn fragments_first_and_last() {
        let first = Ipv4Packet::new_checked(&seeds::IPV4_FRAG_FIRST[14..]).unwrap();
        let last = Ipv4Packet::new_checked(&seeds::IPV4_FRAG_LAST[14..]).unwrap();
        assert_eq!(
            first.fragment(),
            Some(Fragment {
                ident: 0x4321,
                offset: 0,
                more: true
            })
        );
        assert_eq!(
            last.fragment(),
            Some(Fragment {
                ident: 0x4321,
                offset: 56,
                more: false
            })
        );
        assert_eq!(first.payload().len(), 56);
        assert_eq!(last.payload().len(), 52);
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let good = &seeds::TCP_SYN[14..];
        let mut bytes = good.to_vec();
        bytes[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::BadVersion { layer: Layer::Ipv4 })
        );
        bytes[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::BadHeaderLength { layer: Layer::Ipv4 })
        );
        bytes[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..40]),
            Err(ParseError::truncated(Layer::Ipv4))
        );
        let mut bytes = good.to_vec();
        bytes[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::BadTotalLength { layer: Layer::Ipv4 })
        );
        // A total length beyond the buffer: cut by a snapshot length.
        for len in 0..good.len() {
            assert_eq!(
                Ipv4Packet::new_checked(&good[..len]),
                Err(ParseError::truncated(Layer::Ipv4))
            );
        }
    }

    #[test]
    fn big_tcp_total_length_zero_runs_to_the_end() {
        let mut bytes = vec![0u8; 70_000];
        bytes[..40].copy_from_slice(&seeds::TCP_SYN[14..54]);
        bytes[2..4].copy_from_slice(&0u16.to_be_bytes());
        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.packet_len(), 70_000);
        assert_eq!(ip.payload().len(), 70_000 - 20);
        // In a buffer that the field could describe, 0 is an error.
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..1000]),
            Err(ParseError::BadTotalLength { layer: Layer::Ipv4 })
        );
    }
}
