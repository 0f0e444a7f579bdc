//! Ethernet II frames with up to two VLAN tags (802.1Q inside 802.1ad), as
//! they appear in captured bytes.

use crate::error::{Layer, ParseError};
use crate::read::{array_at, u16_at};

/// Field offsets of the Ethernet header.
mod field {
    use std::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const HEADER_LEN: usize = 14;
    pub const TAG_LEN: usize = 4;
}

/// The protocol an Ethernet frame (or VLAN tag) carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, 0x0800.
    Ipv4,
    /// ARP, 0x0806.
    Arp,
    /// 802.1Q customer VLAN tag, 0x8100.
    Vlan,
    /// 802.1ad service VLAN tag, 0x88a8.
    QinQ,
    /// IPv6, 0x86dd.
    Ipv6,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            0x0800 => Self::Ipv4,
            0x0806 => Self::Arp,
            0x8100 => Self::Vlan,
            0x88a8 => Self::QinQ,
            0x86dd => Self::Ipv6,
            other => Self::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(other) => other,
        }
    }
}

impl EtherType {
    /// Whether this value introduces a VLAN tag.
    #[inline]
    pub fn is_vlan_tag(self) -> bool {
        matches!(self, Self::Vlan | Self::QinQ)
    }
}

/// A view of an Ethernet frame over bytes `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
    /// Offset of the innermost EtherType field (12, 16 or 20).
    ethertype_at: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Views `buffer` as a frame, checking that the header and every VLAN tag
    /// it announces are present. After this no accessor panics.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Ethernet));
        }
        let mut ethertype_at = field::ETHERTYPE.start;
        let mut tags = 0;
        while EtherType::from(u16_at(bytes, ethertype_at)).is_vlan_tag() {
            tags += 1;
            if tags > 2 {
                return Err(ParseError::TooManyTags);
            }
            ethertype_at += field::TAG_LEN;
            if bytes.len() < ethertype_at + 2 {
                return Err(ParseError::truncated(Layer::Vlan));
            }
        }
        Ok(Self { buffer, ethertype_at })
    }

    /// Destination MAC address.
    #[inline]
    pub fn destination(&self) -> [u8; 6] {
        array_at(self.buffer.as_ref(), field::DESTINATION.start)
    }

    /// Source MAC address.
    #[inline]
    pub fn source(&self) -> [u8; 6] {
        array_at(self.buffer.as_ref(), field::SOURCE.start)
    }

    /// The VLAN tags in the frame, outermost first: (TPID, TCI).
    #[inline]
    pub fn vlan_tags(&self) -> impl Iterator<Item = (EtherType, u16)> + '_ {
        let bytes = self.buffer.as_ref();
        (field::ETHERTYPE.start..self.ethertype_at)
            .step_by(field::TAG_LEN)
            .map(move |at| (EtherType::from(u16_at(bytes, at)), u16_at(bytes, at + 2)))
    }

    /// The protocol of the payload, after any VLAN tags.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), self.ethertype_at))
    }

    /// Length of the header, tags included.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.ethertype_at + 2
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x08, 0x00, 0x45, 0x00,
    ];

    #[test]
    fn untagged_frame_fields() {
        let frame = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(frame.destination(), [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(frame.source(), [0x02, 0x42, 0xac, 0x11, 0x00, 0x03]);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.vlan_tags().count(), 0);
        assert_eq!(frame.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn qinq_frame_reports_both_tags_outermost_first() {
        let mut bytes = UNTAGGED[..12].to_vec();
        bytes.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x20, 0x0a, 0x86, 0xdd, 0x60]);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        let tags: Vec<_> = frame.vlan_tags().collect();
        assert_eq!(tags, vec![(EtherType::QinQ, 0x0064), (EtherType::Vlan, 0x200a)]);
        assert_eq!(frame.ethertype(), EtherType::Ipv6);
        assert_eq!(frame.header_len(), 22);
        assert_eq!(frame.payload(), &[0x60]);
    }

    #[test]
    fn short_and_over_tagged_frames_are_errors() {
        assert_eq!(
            EthernetFrame::new_checked(&UNTAGGED[..13]),
            Err(ParseError::truncated(Layer::Ethernet))
        );
        let mut bytes = UNTAGGED[..12].to_vec();
        bytes.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&bytes[..]),
            Err(ParseError::truncated(Layer::Vlan))
        );
        let mut bytes = UNTAGGED[..12].to_vec();
        for _ in 0..3 {
            bytes.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        bytes.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(EthernetFrame::new_checked(&bytes[..]), Err(ParseError::TooManyTags));
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of a tagged frame, and every 2-byte value at the type field.
        let mut bytes = UNTAGGED[..12].to_vec();
        bytes.extend_from_slice(&[0x81, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45]);
        for len in 0..=bytes.len() {
            let _ = EthernetFrame::new_checked(&bytes[..len]).map(|f| (f.payload().len(), f.vlan_tags().count()));
        }
        for value in 0..=u16::MAX {
            let mut frame = UNTAGGED.to_vec();
            frame[12..14].copy_from_slice(&value.to_be_bytes());
            if let Ok(f) = EthernetFrame::new_checked(&frame[..]) {
                assert_eq!(u16::from(f.ethertype()), value);
            }
        }
    }
}
