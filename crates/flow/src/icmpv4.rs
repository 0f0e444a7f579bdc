//! ICMP messages for IPv4 (RFC 792): type, code, and the identifier and
//! sequence number of query messages (echo and the other query pairs that
//! NAT tracks by identifier). For error messages the embedded IP header is
//! left in the payload, unparsed. The checksum is not verified.

use crate::error::{Layer, ParseError};
use crate::read::u16_at;

/// Field offsets of the ICMP header.
mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The 4 bytes whose meaning depends on the type.
    pub const REST_OF_HEADER: Range<usize> = 4..8;
    /// Identifier and sequence number of query messages.
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ_NO: Range<usize> = 6..8;
    pub const HEADER_LEN: usize = 8;
}

/// An ICMP message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Icmpv4Type {
    /// Echo reply, 0.
    EchoReply,
    /// Destination unreachable, 3.
    DestinationUnreachable,
    /// Redirect, 5.
    Redirect,
    /// Echo request, 8.
    EchoRequest,
    /// Time exceeded, 11.
    TimeExceeded,
    /// Parameter problem, 12.
    ParameterProblem,
    /// Timestamp request, 13.
    Timestamp,
    /// Timestamp reply, 14.
    TimestampReply,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for Icmpv4Type {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => Self::EchoReply,
            3 => Self::DestinationUnreachable,
            5 => Self::Redirect,
            8 => Self::EchoRequest,
            11 => Self::TimeExceeded,
            12 => Self::ParameterProblem,
            13 => Self::Timestamp,
            14 => Self::TimestampReply,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv4Type> for u8 {
    fn from(value: Icmpv4Type) -> Self {
        match value {
            Icmpv4Type::EchoReply => 0,
            Icmpv4Type::DestinationUnreachable => 3,
            Icmpv4Type::Redirect => 5,
            Icmpv4Type::EchoRequest => 8,
            Icmpv4Type::TimeExceeded => 11,
            Icmpv4Type::ParameterProblem => 12,
            Icmpv4Type::Timestamp => 13,
            Icmpv4Type::TimestampReply => 14,
            Icmpv4Type::Unknown(other) => other,
        }
    }
}

impl Icmpv4Type {
    /// Whether messages of this type carry an identifier and sequence number
    /// that NAT rewrites (Linux conntrack's ICMP queries): echo, timestamp,
    /// information (15, 16) and address mask (17, 18) requests and replies.
    #[inline]
    pub fn is_query(self) -> bool {
        matches!(u8::from(self), 0 | 8 | 13..=18)
    }
}

/// The identifier and sequence number of an ICMP or ICMPv6 query (echo).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Echo {
    /// The identifier: NAT rewrites it as it rewrites a port.
    pub ident: u16,
    /// The sequence number.
    pub seq_no: u16,
}

/// A view of an ICMP message over bytes `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Views `buffer` as an ICMP message, checking that the 8-byte header
    /// (every type has one) is present. After this no accessor panics.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Icmpv4));
        }
        Ok(Self { buffer })
    }

    /// The message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv4Type {
        Icmpv4Type::from(self.buffer.as_ref()[field::TYPE])
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

    /// The 4 type-dependent bytes after the checksum.
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        crate::read::array_at(self.buffer.as_ref(), field::REST_OF_HEADER.start)
    }

    /// Identifier and sequence number, for query types
    /// ([`Icmpv4Type::is_query`]).
    #[inline]
    pub fn echo(&self) -> Option<Echo> {
        self.msg_type().is_query().then(|| Echo {
            ident: u16_at(self.buffer.as_ref(), field::IDENT.start),
            seq_no: u16_at(self.buffer.as_ref(), field::SEQ_NO.start),
        })
    }

    /// The bytes after the 8-byte header: echo data, or for errors the
    /// offending packet's IP header and first bytes.
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
        let icmp = Icmpv4Packet::new_checked(&seeds::ICMP_ECHO[34..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv4Type::EchoRequest);
        assert_eq!(icmp.code(), 0);
        assert_eq!(icmp.echo(), Some(Echo { ident: 0x42, seq_no: 7 }));
        assert_eq!(icmp.rest_of_header(), [0, 0x42, 0, 7]);
        assert_eq!(icmp.payload().len(), 32);
        assert_eq!(icmp.payload()[0], 0x10);
    }

    #[test]
    fn errors_have_no_echo_and_keep_the_embedded_header_as_payload() {
        let mut bytes = vec![3, 3, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&seeds::UDP_DNS[14..42]);
        let icmp = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv4Type::DestinationUnreachable);
        assert_eq!(icmp.echo(), None);
        assert_eq!(icmp.payload(), &seeds::UDP_DNS[14..42]);
        for len in 0..8 {
            assert_eq!(
                Icmpv4Packet::new_checked(&bytes[..len]),
                Err(ParseError::truncated(Layer::Icmpv4))
            );
        }
    }

    #[test]
    fn types_round_trip() {
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(Icmpv4Type::from(value)), value);
        }
        assert!(Icmpv4Type::Unknown(17).is_query());
        assert!(!Icmpv4Type::TimeExceeded.is_query());
    }
}
