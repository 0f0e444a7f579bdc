//! ARP packets (RFC 826) of any hardware and protocol address sizes, as
//! carried in EtherType 0x0806. Not an ARP cache or responder: a view only.

use crate::error::{Layer, ParseError};
use crate::read::u16_at;

/// Field offsets of the fixed part of the ARP header; the addresses follow at
/// offsets that depend on the two length bytes.
mod field {
    use std::ops::Range;
    pub const HARDWARE_TYPE: Range<usize> = 0..2;
    pub const PROTOCOL_TYPE: Range<usize> = 2..4;
    pub const HARDWARE_LEN: usize = 4;
    pub const PROTOCOL_LEN: usize = 5;
    pub const OPERATION: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// The operation an ARP packet asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Who has this protocol address? (1)
    Request,
    /// It is at this hardware address. (2)
    Reply,
    /// Any other value (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Self::Request,
            2 => Self::Reply,
            other => Self::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A view of an ARP packet over bytes `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Views `buffer` as an ARP packet, checking that the fixed header and the
    /// four addresses it announces are present. After this no accessor
    /// panics. Bytes after the addresses (Ethernet padding) are allowed.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::ADDRESSES {
            return Err(ParseError::truncated(Layer::Arp));
        }
        let packet = Self { buffer };
        if packet.buffer.as_ref().len() < packet.len() {
            return Err(ParseError::truncated(Layer::Arp));
        }
        Ok(packet)
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::HARDWARE_TYPE.start)
    }

    /// Protocol type, an EtherType (0x0800 for IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::PROTOCOL_TYPE.start)
    }

    /// Length of a hardware address in bytes.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HARDWARE_LEN]
    }

    /// Length of a protocol address in bytes.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL_LEN]
    }

    /// The operation.
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(u16_at(self.buffer.as_ref(), field::OPERATION.start))
    }

    /// Length of the ARP packet, addresses included, padding excluded.
    #[allow(clippy::len_without_is_empty, reason = "an ARP packet is never empty")]
    #[inline]
    pub fn len(&self) -> usize {
        field::ADDRESSES + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    /// The ARP packet's bytes, without trailing padding.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.len()]
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_hardware_addr(&self) -> &[u8] {
        self.address(0)
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_protocol_addr(&self) -> &[u8] {
        self.address(1)
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.address(2)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.address(3)
    }

    /// The `index`th address: sender hardware, sender protocol, target
    /// hardware, target protocol.
    #[inline]
    fn address(&self, index: usize) -> &[u8] {
        let hardware = usize::from(self.hardware_len());
        let protocol = usize::from(self.protocol_len());
        let start = field::ADDRESSES + (index / 2) * (hardware + protocol) + (index % 2) * hardware;
        let len = if index % 2 == 0 { hardware } else { protocol };
        &self.buffer.as_ref()[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    #[test]
    fn request_fields() {
        let arp = ArpPacket::new_checked(&seeds::ARP_REQUEST[14..]).unwrap();
        assert_eq!(arp.hardware_type(), 1);
        assert_eq!(arp.protocol_type(), 0x0800);
        assert_eq!(arp.operation(), Operation::Request);
        assert_eq!(arp.sender_hardware_addr(), &[0x02, 0x42, 0xac, 0x11, 0x00, 0x03]);
        assert_eq!(arp.sender_protocol_addr(), &[172, 17, 0, 3]);
        assert_eq!(arp.target_hardware_addr(), &[0; 6]);
        assert_eq!(arp.target_protocol_addr(), &[172, 17, 0, 2]);
        // 18 bytes of Ethernet padding follow the 28-byte packet.
        assert_eq!(arp.len(), 28);
        assert_eq!(arp.as_bytes().len(), 28);
    }

    #[test]
    fn every_prefix_shorter_than_the_addresses_is_truncated() {
        let bytes = &seeds::ARP_REQUEST[14..];
        for len in 0..28 {
            assert_eq!(
                ArpPacket::new_checked(&bytes[..len]),
                Err(ParseError::truncated(Layer::Arp)),
                "{len}"
            );
        }
    }

    #[test]
    fn odd_address_sizes_are_viewed_not_rejected() {
        // Hardware length 0 and protocol length 255: the addresses need 510 bytes.
        let mut bytes = vec![0u8; 8 + 510];
        bytes[5] = 255;
        let arp = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(arp.sender_hardware_addr(), &[] as &[u8]);
        assert_eq!(arp.target_protocol_addr().len(), 255);
        assert!(ArpPacket::new_checked(&bytes[..517]).is_err());
        assert_eq!(u16::from(Operation::from(9)), 9);
    }
}
