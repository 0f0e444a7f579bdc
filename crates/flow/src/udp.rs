//! UDP datagrams (RFC 768): ports, length and the payload bounded by the
//! length field. The checksum is read, never verified (captured checksums
//! are often partial, TP_STATUS_CSUMNOTREADY).

use crate::error::{Layer, ParseError};
use crate::read::u16_at;

/// Field offsets of the UDP header.
mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const HEADER_LEN: usize = 8;
}

/// Largest length the 16-bit field can state.
const MAX_LEN: usize = u16::MAX as usize;

/// A view of a UDP datagram over bytes `T`: the transport payload of one IP
/// packet.
///
/// A length of 0 in a buffer longer than 65535 bytes is an IPv6 jumbogram
/// (RFC 2675) or a GSO packet over 64 KiB: the payload runs to the end of the
/// buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Views `buffer` as a whole UDP datagram, checking that the header is
    /// present and that the length field is at least 8 and fits the buffer.
    /// After this no accessor panics.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let datagram = Self::new_checked_first_fragment(buffer)?;
        let bytes = datagram.buffer.as_ref();
        if usize::from(datagram.length()) > bytes.len() {
            return Err(ParseError::truncated(Layer::Udp));
        }
        Ok(datagram)
    }

    /// Views `buffer` as the first fragment of a UDP datagram: like
    /// [`UdpDatagram::new_checked`], but the length field (of the whole
    /// datagram) may exceed the buffer, and the payload is what the buffer
    /// holds of it.
    #[inline]
    pub fn new_checked_first_fragment(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Udp));
        }
        let length = usize::from(u16_at(bytes, field::LENGTH.start));
        if length < field::HEADER_LEN && !(length == 0 && bytes.len() > MAX_LEN) {
            return Err(ParseError::BadTotalLength { layer: Layer::Udp });
        }
        Ok(Self { buffer })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header and payload of the whole datagram.
    #[inline]
    pub fn length(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The checksum, as captured (not verified; 0 means none over IPv4).
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload: to the length field's end, or to the buffer's end if that
    /// comes first (a first fragment) or the length is 0 (a jumbogram).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let bytes = self.buffer.as_ref();
        let end = match usize::from(self.length()) {
            0 => bytes.len(),
            // At least the header: checked by the constructors.
            length => length.min(bytes.len()),
        };
        &bytes[field::HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    #[test]
    fn dns_query_fields() {
        let udp = UdpDatagram::new_checked(&seeds::UDP_DNS[34..]).unwrap();
        assert_eq!(udp.src_port(), 45678);
        assert_eq!(udp.dst_port(), 53);
        assert_eq!(udp.length(), 37);
        assert_ne!(udp.checksum(), 0);
        assert_eq!(udp.payload().len(), 29);
        assert_eq!(&udp.payload()[..2], &[0xab, 0xcd]);
    }

    #[test]
    fn first_fragment_is_shorter_than_its_length() {
        let bytes = &seeds::IPV4_FRAG_FIRST[34..];
        assert_eq!(UdpDatagram::new_checked(bytes), Err(ParseError::truncated(Layer::Udp)));
        let udp = UdpDatagram::new_checked_first_fragment(bytes).unwrap();
        assert_eq!(udp.length(), 108);
        assert_eq!(udp.payload().len(), 48);
    }

    #[test]
    fn bad_lengths() {
        let mut bytes = seeds::UDP_DNS[34..].to_vec();
        for len in 0..8 {
            assert_eq!(
                UdpDatagram::new_checked(&bytes[..len]),
                Err(ParseError::truncated(Layer::Udp))
            );
        }
        bytes[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpDatagram::new_checked(&bytes[..]),
            Err(ParseError::BadTotalLength { layer: Layer::Udp })
        );
        // Length 8 in a longer buffer: an empty payload, the rest ignored.
        bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(UdpDatagram::new_checked(&bytes[..]).unwrap().payload().is_empty());
        // Length 0: only for jumbograms.
        bytes[4..6].copy_from_slice(&0u16.to_be_bytes());
        assert!(UdpDatagram::new_checked(&bytes[..]).is_err());
        let mut jumbo = vec![0u8; 70_000];
        jumbo[..8].copy_from_slice(&bytes[..8]);
        assert_eq!(
            UdpDatagram::new_checked(&jumbo[..]).unwrap().payload().len(),
            70_000 - 8
        );
    }
}
