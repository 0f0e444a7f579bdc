//! IPv6 packets (RFC 8200): the fixed header, the payload bounded by the
//! payload length, and a bounded walk of the extension headers (hop-by-hop,
//! routing, fragment, destination options, authentication) to the
//! upper-layer protocol. It does not interpret options or routing types, and
//! does not reassemble fragments.

use std::net::Ipv6Addr;

use crate::error::{Layer, ParseError};
use crate::ip::{Fragment, IpProtocol};
use crate::read::{array_at, u16_at, u32_at};

/// Field offsets of the fixed IPv6 header.
mod field {
    use std::ops::Range;
    pub const VERSION_CLASS_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Range<usize> = 8..24;
    pub const DESTINATION: Range<usize> = 24..40;
    pub const HEADER_LEN: usize = 40;
}

/// Field offsets inside an extension header.
mod ext_field {
    pub const NEXT_HEADER: usize = 0;
    pub const LENGTH: usize = 1;
    /// Every extension header is at least this long.
    pub const MIN_LEN: usize = 8;
    /// The fragment header's offset and M flag.
    pub const FRAGMENT_OFFSET: usize = 2;
    /// The fragment header's identification.
    pub const FRAGMENT_IDENT: usize = 4;
}

/// Most extension headers walked before the upper-layer protocol. RFC 8200's
/// recommended order has at most 6 (destination options twice); 8 leaves
/// room for an AH and one surprise, and bounds the work per packet.
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// Largest payload the 16-bit field can state.
const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;

/// A view of an IPv6 packet over bytes `T`.
///
/// The buffer may hold more bytes than the packet (Ethernet padding):
/// [`Ipv6Packet::payload`] stops at the payload length. A payload length of 0
/// with more than 65535 bytes after the header is a jumbogram or a Linux BIG
/// TCP GSO packet: the payload runs to the end of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Views `buffer` as an IPv6 packet, checking the version and that the
    /// fixed header and the payload length fit the buffer. After this no
    /// accessor panics. Extension headers are checked by
    /// [`Ipv6Packet::upper_layer`] and [`Ipv6Packet::extension_headers`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Ipv6));
        }
        if bytes[0] >> 4 != 6 {
            return Err(ParseError::BadVersion { layer: Layer::Ipv6 });
        }
        let payload_len = usize::from(u16_at(bytes, field::PAYLOAD_LEN.start));
        if bytes.len() < field::HEADER_LEN + payload_len {
            return Err(ParseError::truncated(Layer::Ipv6));
        }
        Ok(Self { buffer })
    }

    /// The version field: 6 once checked.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (u32_at(self.buffer.as_ref(), field::VERSION_CLASS_FLOW.start) >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VERSION_CLASS_FLOW.start) & 0x000f_ffff
    }

    /// The payload length field (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    /// Length of the packet in bytes: 40 plus the payload length, or the
    /// buffer's length for a jumbogram (payload length 0, see the type).
    #[inline]
    pub fn packet_len(&self) -> usize {
        let buffer_len = self.buffer.as_ref().len();
        match self.payload_len() {
            0 if buffer_len - field::HEADER_LEN > MAX_PAYLOAD_LEN => buffer_len,
            len => field::HEADER_LEN + usize::from(len),
        }
    }

    /// The next header field of the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// The hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array_at::<16>(self.buffer.as_ref(), field::SOURCE.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array_at::<16>(self.buffer.as_ref(), field::DESTINATION.start))
    }

    /// The payload: extension headers and upper-layer data, without
    /// link-layer padding.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.packet_len()]
    }

    /// The packet's bytes, without link-layer padding.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.packet_len()]
    }

    /// The extension headers, in order. The iterator ends at the upper-layer
    /// protocol, after a fragment header with a non-zero offset (what follows
    /// is fragment data, not headers), or after its first error.
    #[inline]
    pub fn extension_headers(&self) -> ExtensionHeaders<'_> {
        ExtensionHeaders {
            payload: self.payload(),
            next_header: self.next_header(),
            offset: 0,
            count: 0,
            done: false,
        }
    }

    /// Walks the extension headers to the upper-layer protocol.
    #[inline]
    pub fn upper_layer(&self) -> Result<UpperLayer<'_>, ParseError> {
        let mut headers = self.extension_headers();
        let mut fragment = None;
        for header in &mut headers {
            if let Some(found) = header?.fragment() {
                fragment = Some(found);
            }
        }
        let payload = &self.payload()[headers.offset..];
        Ok(UpperLayer {
            protocol: headers.next_header,
            header_len: field::HEADER_LEN + headers.offset,
            fragment,
            payload,
        })
    }
}

/// Where the extension headers of an IPv6 packet lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer<'a> {
    /// The upper-layer protocol (the last next header). After a non-first
    /// fragment, the protocol of the fragmented part.
    pub protocol: IpProtocol,
    /// Bytes from the start of the IPv6 header to the upper-layer data: 40
    /// plus the extension headers.
    pub header_len: usize,
    /// The fragment header's information, if there is one.
    pub fragment: Option<Fragment>,
    /// The upper-layer bytes (or fragment data), to the end of the packet.
    pub payload: &'a [u8],
}

/// One extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionHeader<'a> {
    /// Which header this is (hop-by-hop, routing, fragment, ...).
    pub kind: IpProtocol,
    /// The header's bytes, from its next header field to its end.
    pub bytes: &'a [u8],
}

impl ExtensionHeader<'_> {
    /// The next header field.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.bytes[ext_field::NEXT_HEADER])
    }

    /// For a fragment header, the fragment it describes.
    #[inline]
    pub fn fragment(&self) -> Option<Fragment> {
        (self.kind == IpProtocol::Ipv6Fragment).then(|| {
            let offset_more = u16_at(self.bytes, ext_field::FRAGMENT_OFFSET);
            Fragment {
                ident: u32_at(self.bytes, ext_field::FRAGMENT_IDENT),
                offset: offset_more & 0xfff8,
                more: offset_more & 1 != 0,
            }
        })
    }
}

/// Iterator over the extension headers of an IPv6 packet, from
/// [`Ipv6Packet::extension_headers`]. Yields at most
/// [`MAX_EXTENSION_HEADERS`] headers, then
/// [`ParseError::TooManyExtensionHeaders`] if the chain goes on.
#[derive(Clone, Debug)]
pub struct ExtensionHeaders<'a> {
    /// The IPv6 payload.
    payload: &'a [u8],
    /// The next header field of the last header walked.
    next_header: IpProtocol,
    /// Offset in `payload` of the next header to walk; the upper-layer data
    /// once the walk ends.
    offset: usize,
    /// Headers walked.
    count: usize,
    /// Whether the walk ended (upper layer, fragment data, or error).
    done: bool,
}

impl<'a> ExtensionHeaders<'a> {
    /// The protocol that follows the headers walked so far.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        self.next_header
    }

    /// Offset in the IPv6 payload of what follows the headers walked so far.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    fn fail(&mut self, error: ParseError) -> Option<Result<ExtensionHeader<'a>, ParseError>> {
        self.done = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for ExtensionHeaders<'a> {
    type Item = Result<ExtensionHeader<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let kind = self.next_header;
        if !matches!(
            kind,
            IpProtocol::HopByHop
                | IpProtocol::Ipv6Route
                | IpProtocol::Ipv6Fragment
                | IpProtocol::Ipv6Options
                | IpProtocol::Ah
        ) {
            self.done = true;
            return None;
        }
        if self.count == MAX_EXTENSION_HEADERS {
            return self.fail(ParseError::TooManyExtensionHeaders);
        }
        let rest = &self.payload[self.offset..];
        if rest.len() < ext_field::MIN_LEN {
            return self.fail(ParseError::truncated(Layer::Ipv6Extension));
        }
        let length_field = usize::from(rest[ext_field::LENGTH]);
        let len = match kind {
            // Fixed size; the length byte is reserved.
            IpProtocol::Ipv6Fragment => ext_field::MIN_LEN,
            // RFC 4302: in 4-byte units, minus 2.
            IpProtocol::Ah => (length_field + 2) * 4,
            // In 8-byte units, not counting the first 8.
            _ => (length_field + 1) * 8,
        };
        if rest.len() < len {
            return self.fail(ParseError::truncated(Layer::Ipv6Extension));
        }
        let header = ExtensionHeader {
            kind,
            bytes: &rest[..len],
        };
        self.count += 1;
        self.offset += len;
        self.next_header = header.next_header();
        if header.fragment().is_some_and(|fragment| !fragment.is_first()) {
            // The rest is the middle of the original payload, not headers.
            self.done = true;
        }
        Some(Ok(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    #[test]
    fn echo_fixed_header() {
        let ip = Ipv6Packet::new_checked(&seeds::ICMPV6_ECHO[14..]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.traffic_class(), 0);
        assert_eq!(ip.flow_label(), 0x12345);
        assert_eq!(ip.payload_len(), 40);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.src_addr(), "fd00::3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.dst_addr(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        let upper = ip.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::Icmpv6);
        assert_eq!(upper.header_len, 40);
        assert_eq!(upper.fragment, None);
        assert_eq!(upper.payload.len(), 40);
    }

    #[test]
    fn hop_by_hop_then_first_fragment() {
        let ip = Ipv6Packet::new_checked(&seeds::IPV6_HBH_FRAG_FIRST[14..]).unwrap();
        let kinds: Vec<_> = ip.extension_headers().map(|h| h.unwrap().kind).collect();
        assert_eq!(kinds, [IpProtocol::HopByHop, IpProtocol::Ipv6Fragment]);
        let upper = ip.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::Udp);
        assert_eq!(upper.header_len, 56);
        assert_eq!(
            upper.fragment,
            Some(Fragment {
                ident: 0xcafe_0001,
                offset: 0,
                more: true
            })
        );
        assert_eq!(upper.payload.len(), 64);
    }

    #[test]
    fn last_fragment_stops_the_walk() {
        let ip = Ipv6Packet::new_checked(&seeds::IPV6_FRAG_LAST[14..]).unwrap();
        let upper = ip.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::Udp);
        assert_eq!(
            upper.fragment,
            Some(Fragment {
                ident: 0xcafe_0001,
                offset: 64,
                more: false
            })
        );
        assert_eq!(upper.payload.len(), 208 - 64);
    }

    #[test]
    fn long_chains_and_short_headers_are_errors() {
        let mut bytes = seeds::ICMPV6_ECHO[14..54].to_vec();
        bytes[6] = 60;
        for _ in 0..=MAX_EXTENSION_HEADERS {
            bytes.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let payload_len = (bytes.len() - 40) as u16;
        bytes[4..6].copy_from_slice(&payload_len.to_be_bytes());
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.upper_layer(), Err(ParseError::TooManyExtensionHeaders));
        assert_eq!(ip.extension_headers().count(), MAX_EXTENSION_HEADERS + 1);

        // A routing header announcing 16 more bytes than there are.
        let mut bytes = seeds::ICMPV6_ECHO[14..54].to_vec();
        bytes[6] = 43;
        bytes.extend_from_slice(&[59, 2, 0, 0, 0, 0, 0, 0]);
        bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.upper_layer(), Err(ParseError::truncated(Layer::Ipv6Extension)));
        bytes[41] = 0;
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let upper = ip.upper_layer().unwrap();
        assert_eq!(upper.protocol, IpProtocol::Ipv6NoNext);
        assert!(upper.payload.is_empty());
    }

    #[test]
    fn authentication_header_length_is_in_four_byte_units() {
        let mut bytes = seeds::ICMPV6_ECHO[14..54].to_vec();
        bytes[6] = 51;
        // AH with payload length 4: (4 + 2) * 4 = 24 bytes, then no next header.
        bytes.extend_from_slice(&[59, 4]);
        bytes.extend_from_slice(&[0; 22]);
        bytes[4..6].copy_from_slice(&24u16.to_be_bytes());
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let upper = ip.upper_layer().unwrap();
        assert_eq!(upper.header_len, 64);
        assert_eq!(upper.protocol, IpProtocol::Ipv6NoNext);
    }

    #[test]
    fn wrong_version_and_short_payload() {
        let mut bytes = seeds::ICMPV6_ECHO[14..].to_vec();
        for len in 0..bytes.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&bytes[..len]),
                Err(ParseError::truncated(Layer::Ipv6))
            );
        }
        bytes[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..]),
            Err(ParseError::BadVersion { layer: Layer::Ipv6 })
        );
    }
}
