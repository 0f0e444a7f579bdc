//! ICMPv6 messages (RFC 4443): type, code, and the identifier and sequence
//! number of echo messages. Neighbour discovery and MLD bodies, and the
//! packet embedded in error messages, are left in the payload, unparsed. The
//! checksum is not verified.

use crate::error::{Layer, ParseError};
use crate::icmpv4::Echo;
use crate::read::u16_at;

/// Field offsets of the ICMPv6 header.
mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The 4 bytes whose meaning depends on the type.
    pub const MESSAGE_HEAD: Range<usize> = 4..8;
    /// Identifier and sequence number of echo messages.
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ_NO: Range<usize> = 6..8;
    /// Type, code, checksum and the 4 bytes every defined message has next.
    pub const HEADER_LEN: usize = 8;
}

/// An ICMPv6 message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Icmpv6Type {
    /// Destination unreachable, 1.
    DestinationUnreachable,
    /// Packet too big, 2.
    PacketTooBig,
    /// Time exceeded, 3.
    TimeExceeded,
    /// Parameter problem, 4.
    ParameterProblem,
    /// Echo request, 128.
    EchoRequest,
    /// Echo reply, 129.
    EchoReply,
    /// Router solicitation, 133.
    RouterSolicitation,
    /// Router advertisement, 134.
    RouterAdvertisement,
    /// Neighbour solicitation, 135.
    NeighborSolicitation,
    /// Neighbour advertisement, 136.
    NeighborAdvertisement,
    /// Any other value (MLD, redirect, ...).
    Unknown(u8),
}

impl From<u8> for Icmpv6Type {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            1 => Self::DestinationUnreachable,
            2 => Self::PacketTooBig,
            3 => Self::TimeExceeded,
            4 => Self::ParameterProblem,
            128 => Self::EchoRequest,
            129 => Self::EchoReply,
            133 => Self::RouterSolicitation,
            134 => Self::RouterAdvertisement,
            135 => Self::NeighborSolicitation,
            136 => Self::NeighborAdvertisement,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv6Type> for u8 {
    fn from(value: Icmpv6Type) -> Self {
        match value {
            Icmpv6Type::DestinationUnreachable => 1,
            Icmpv6Type::PacketTooBig => 2,
            Icmpv6Type::TimeExceeded => 3,
            Icmpv6Type::ParameterProblem => 4,
            Icmpv6Type::EchoRequest => 128,
            Icmpv6Type::EchoReply => 129,
            Icmpv6Type::RouterSolicitation => 133,
            Icmpv6Type::RouterAdvertisement => 134,
            Icmpv6Type::NeighborSolicitation => 135,
            Icmpv6Type::NeighborAdvertisement => 136,
            Icmpv6Type::Unknown(other) => other,
        }
    }
}

impl Icmpv6Type {
    /// Whether this is an error message (types below 128), which embeds the
    /// packet that caused it.
    #[inline]
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

/// A view of an ICMPv6 message over bytes `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Views `buffer` as an ICMPv6 message, checking that the 8-byte header
    /// (every defined type has one) is present. After this no accessor
    /// panics.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Icmpv6));
        }
        Ok(Self { buffer })
    }

    /// The message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum, as captured (not verified).
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The 4 type-dependent bytes after the checksum (MTU, pointer, flags,
    /// or echo identifier and sequence).
    #[inline]
    pub fn message_head(&self) -> [u8; 4] {
        crate::read::array_at(self.buffer.as_ref(), field::MESSAGE_HEAD.start)
    }

    /// Identifier and sequence number, for echo requests and replies.
    #[inline]
    pub fn echo(&self) -> Option<Echo> {
        matches!(self.msg_type(), Icmpv6Type::EchoRequest | Icmpv6Type::EchoReply).then(|| Echo {
            ident: u16_at(self.buffer.as_ref(), field::IDENT.start),
            seq_no: u16_at(self.buffer.as_ref(), field::SEQ_NO.start),
        })
    }

    /// The bytes after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    #[test]
    fn echo_request_fields() {
        let icmp = Icmpv6Packet::new_checked(&seeds::ICMPV6_ECHO[54..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Type::EchoRequest);
        assert_eq!(icmp.code(), 0);
        assert_eq!(icmp.echo(), Some(Echo { ident: 0x43, seq_no: 9 }));
        assert_eq!(icmp.message_head(), [0, 0x43, 0, 9]);
        assert_ne!(icmp.checksum(), 0);
        assert_eq!(icmp.payload().len(), 32);
        assert!(!icmp.msg_type().is_error());
    }

    #[test]
    fn neighbour_solicitation_has_no_echo() {
        let mut bytes = seeds::ICMPV6_ECHO[54..].to_vec();
        bytes[0] = 135;
        let icmp = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Type::NeighborSolicitation);
        assert_eq!(icmp.echo(), None);
        assert_eq!(
            Icmpv6Packet::new_checked(&bytes[..7]),
            Err(ParseError::truncated(Layer::Icmpv6))
        );
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(Icmpv6Type::from(value)), value);
        }
    }
}
