//! VXLAN (RFC 7348): the 8-byte header in a UDP datagram to port 4789 (the
//! port Docker's overlay network uses), its VNI, and the inner Ethernet
//! frame. Parsing the inner frame is the caller's, one level down; Linux's
//! legacy default port 8472 and VXLAN-GPE (4790) are not recognised.

use crate::error::{Layer, ParseError};
use crate::read::u32_at;

/// The IANA UDP destination port of VXLAN.
pub const PORT: u16 = 4789;

/// Field offsets of the VXLAN header.
mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 0;
    /// VNI (24 bits) then a reserved byte.
    pub const VNI_RESERVED: Range<usize> = 4..8;
    pub const HEADER_LEN: usize = 8;
}

/// The I flag: the VNI is valid. RFC 7348 requires it.
const FLAG_VNI_VALID: u8 = 0x08;

/// A view of a VXLAN packet (header and inner frame) over bytes `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Views `buffer` (a UDP payload) as VXLAN, checking that the header is
    /// present and its I flag set. After this no accessor panics. The inner
    /// frame is not checked.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Vxlan));
        }
        if bytes[field::FLAGS] & FLAG_VNI_VALID == 0 {
            return Err(ParseError::BadFlags { layer: Layer::Vxlan });
        }
        Ok(Self { buffer })
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The 24-bit VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VNI_RESERVED.start) >> 8
    }

    /// Length of the VXLAN header: 8.
    #[inline]
    pub fn header_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn inner_frame(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    #[test]
    fn header_and_inner_frame() {
        let vxlan = VxlanPacket::new_checked(&seeds::VXLAN_TCP[42..]).unwrap();
        assert_eq!(vxlan.flags(), 0x08);
        assert_eq!(vxlan.vni(), 4096);
        assert_eq!(vxlan.inner_frame().len(), 59);
        assert_eq!(&vxlan.inner_frame()[12..14], &[0x08, 0x00]);
    }

    #[test]
    fn short_or_unflagged_headers_are_errors() {
        let mut bytes = seeds::VXLAN_TCP[42..].to_vec();
        for len in 0..8 {
            assert_eq!(
                VxlanPacket::new_checked(&bytes[..len]),
                Err(ParseError::truncated(Layer::Vxlan))
            );
        }
        bytes[0] = 0;
        assert_eq!(
            VxlanPacket::new_checked(&bytes[..]),
            Err(ParseError::BadFlags { layer: Layer::Vxlan })
        );
    }
}
