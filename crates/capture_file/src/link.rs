//! What the bytes of a packet start with, decided from the interface's link
//! type, and the Linux cooked headers (`LINUX_SLL`, `LINUX_SLL2`) that
//! `tcpdump -i any` writes, decoded into the protocol, ARPHRD type, packet type,
//! ifindex and source address they carry. It does not parse the network layer.
//!
//! Cooked header layouts (tcpdump.org/linktypes), every field big-endian:
//!
//! ```text
//! LINUX_SLL (113), 16 bytes        LINUX_SLL2 (276), 20 bytes
//!  0 packet type   u16              0 protocol      u16
//!  2 ARPHRD type   u16              2 reserved      u16
//!  4 address len   u16              4 ifindex       u32
//!  6 address       8 bytes          8 ARPHRD type   u16
//! 14 protocol      u16             10 packet type   u8
//!                                  11 address len   u8
//!                                  12 address       8 bytes
//! ```

use af_packet::{Direction, PacketType};

/// Link types (tcpdump.org/linktypes) this reader tells apart.
pub mod link_type {
    /// `LINKTYPE_ETHERNET`.
    pub const ETHERNET: u32 = 1;
    /// `LINKTYPE_RAW`: IPv4 or IPv6, told by the version nibble.
    pub const RAW: u32 = 101;
    /// `LINKTYPE_LINUX_SLL`.
    pub const LINUX_SLL: u32 = 113;
    /// `LINKTYPE_IPV4`.
    pub const IPV4: u32 = 228;
    /// `LINKTYPE_IPV6`.
    pub const IPV6: u32 = 229;
    /// `LINKTYPE_LINUX_SLL2`.
    pub const LINUX_SLL2: u32 = 276;
}

/// Length of a `LINUX_SLL` header.
pub const SLL_HEADER_LEN: usize = 16;
/// Length of a `LINUX_SLL2` header.
pub const SLL2_HEADER_LEN: usize = 20;
/// `ARPHRD_ETHER`: the cooked header's address is the source MAC.
pub const ARPHRD_ETHER: u16 = 1;

/// How to parse a packet's bytes, which always start at the link layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// An Ethernet header (destination MAC, source MAC, ethertype...).
    Ethernet,
    /// A 16-byte Linux cooked header (`LINUX_SLL`), then the network layer.
    LinuxSll(CookedHeader),
    /// A 20-byte Linux cooked header v2 (`LINUX_SLL2`), then the network
    /// layer.
    LinuxSll2(CookedHeader),
    /// An IPv4 or IPv6 packet with no link-layer header (link types 101, 228
    /// and 229); the first nibble is the IP version.
    Raw,
    /// Any other link type, or a cooked packet whose captured bytes are
    /// shorter than its header: the value is the interface's link type.
    Other(u32),
}

/// A Linux cooked header, decoded. There is no destination address: the
/// kernel does not report one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookedHeader {
    /// The network-layer protocol: an ethertype (0x0800 IPv4, 0x86dd IPv6...)
    /// or, below 0x0600, a Linux `ETH_P_*` pseudo-protocol such as 4
    /// (802.2 LLC).
    pub protocol: u16,
    /// The ARPHRD type of the interface (1 Ethernet, 772 loopback...).
    pub arphrd: u16,
    /// The raw packet type (`sll_pkttype`, 0 to 4 for the known ones).
    pub packet_type: u16,
    /// Interface index (`LINUX_SLL2` only).
    pub ifindex: Option<u32>,
    /// Offset of the network-layer bytes in the packet's data: the header
    /// length.
    pub payload_offset: usize,
    address: [u8; 8],
    address_len: u8,
}

impl CookedHeader {
    /// Decodes a `LINUX_SLL` header; `None` if `data` is shorter than one.
    pub fn parse_sll(data: &[u8]) -> Option<Self> {
        let header = data.get(..SLL_HEADER_LEN)?;
        let mut address = [0; 8];
        address.copy_from_slice(&header[6..14]);
        Some(Self {
            packet_type: be16(header, 0),
            arphrd: be16(header, 2),
            address_len: be16(header, 4).min(8) as u8,
            address,
            protocol: be16(header, 14),
            ifindex: None,
            payload_offset: SLL_HEADER_LEN,
        })
    }

    /// Decodes a `LINUX_SLL2` header; `None` if `data` is shorter than one.
    pub fn parse_sll2(data: &[u8]) -> Option<Self> {
        let header = data.get(..SLL2_HEADER_LEN)?;
        let mut address = [0; 8];
        address.copy_from_slice(&header[12..20]);
        Some(Self {
            protocol: be16(header, 0),
            ifindex: Some(u32::from_be_bytes([header[4], header[5], header[6], header[7]])),
            arphrd: be16(header, 8),
            packet_type: u16::from(header[10]),
            address_len: header[11].min(8),
            address,
            payload_offset: SLL2_HEADER_LEN,
        })
    }

    /// The link-layer source address the header carries (its length is the
    /// header's address length, at most 8).
    pub fn source_address(&self) -> &[u8] {
        &self.address[..usize::from(self.address_len)]
    }

    /// The source MAC address, when the interface is Ethernet and the header
    /// carries a 6-byte address.
    pub fn source_mac(&self) -> Option<[u8; 6]> {
        if self.arphrd != ARPHRD_ETHER || self.address_len != 6 {
            return None;
        }
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.address[..6]);
        Some(mac)
    }

    /// The packet type, and the direction it implies, for the known values
    /// 0 to 4; `None` for others (5, `PACKET_LOOPBACK`, and up), whose
    /// direction is not certain.
    pub fn kernel_packet_type(&self) -> Option<(PacketType, Direction)> {
        if self.packet_type > 4 {
            return None;
        }
        let packet_type = PacketType::from_raw(self.packet_type as u8);
        Some((packet_type, packet_type.direction()))
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// The link kind of a packet captured with `link_type`, with the cooked
/// header decoded if there is one.
pub(crate) fn classify(link_type: u32, data: &[u8]) -> LinkKind {
    match link_type {
        link_type::ETHERNET => LinkKind::Ethernet,
        link_type::RAW | link_type::IPV4 | link_type::IPV6 => LinkKind::Raw,
        link_type::LINUX_SLL => CookedHeader::parse_sll(data).map_or(LinkKind::Other(link_type), LinkKind::LinuxSll),
        link_type::LINUX_SLL2 => CookedHeader::parse_sll2(data).map_or(LinkKind::Other(link_type), LinkKind::LinuxSll2),
        other => LinkKind::Other(other),
    }
}

/// Decodes pcapng `epb_flags`: direction in bits 0-1 (01 inbound,
/// 10 outbound) and reception type in bits 2-4 (001 unicast, 010 multicast,
/// 011 broadcast, 100 promiscuous). An outbound packet is
/// [`PacketType::Outgoing`]; otherwise the reception type gives the packet
/// type, if it is set.
pub(crate) fn from_epb_flags(flags: u32) -> (Option<Direction>, Option<PacketType>) {
    let direction = match flags & 0b11 {
        0b01 => Some(Direction::Inbound),
        0b10 => Some(Direction::Outbound),
        _ => None,
    };
    let packet_type = if direction == Some(Direction::Outbound) {
        Some(PacketType::Outgoing)
    } else {
        match (flags >> 2) & 0b111 {
            0b001 => Some(PacketType::Host),
            0b010 => Some(PacketType::Multicast),
            0b011 => Some(PacketType::Broadcast),
            0b100 => Some(PacketType::OtherHost),
            _ => None,
        }
    };
    (direction, packet_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_header_decodes_every_field() {
        let mut data = vec![0, 4, 0, 1, 0, 6, 2, 0x42, 0xac, 0x11, 0, 2, 0, 0, 0x86, 0xdd];
        data.extend_from_slice(&[0x60, 0, 0, 0]);
        let LinkKind::LinuxSll(header) = classify(link_type::LINUX_SLL, &data) else {
            panic!("not SLL");
        };
        assert_eq!(header.protocol, 0x86dd);
        assert_eq!(header.arphrd, ARPHRD_ETHER);
        assert_eq!(header.packet_type, 4);
        assert_eq!(header.ifindex, None);
        assert_eq!(header.payload_offset, 16);
        assert_eq!(header.source_mac(), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(header.source_address().len(), 6);
        assert_eq!(
            header.kernel_packet_type(),
            Some((PacketType::Outgoing, Direction::Outbound))
        );
        assert_eq!(data[header.payload_offset], 0x60);
    }

    #[test]
    fn sll2_header_decodes_every_field() {
        let data = [
            0x08, 0, 0, 0, 0, 0, 0, 7, 0x03, 0x04, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x45,
        ];
        let LinkKind::LinuxSll2(header) = classify(link_type::LINUX_SLL2, &data) else {
            panic!("not SLL2");
        };
        assert_eq!(header.protocol, 0x0800);
        assert_eq!(header.ifindex, Some(7));
        assert_eq!(header.arphrd, 772);
        assert_eq!(header.packet_type, 3);
        assert_eq!(header.source_address(), &[] as &[u8]);
        assert_eq!(header.source_mac(), None);
        assert_eq!(header.payload_offset, 20);
        assert_eq!(
            header.kernel_packet_type(),
            Some((PacketType::OtherHost, Direction::Inbound))
        );
    }

    #[test]
    fn cooked_packet_shorter_than_its_header_is_other() {
        assert_eq!(classify(link_type::LINUX_SLL, &[0; 15]), LinkKind::Other(113));
        assert_eq!(classify(link_type::LINUX_SLL2, &[0; 19]), LinkKind::Other(276));
        assert_eq!(classify(link_type::IPV6, &[]), LinkKind::Raw);
        assert_eq!(classify(147, &[1, 2]), LinkKind::Other(147));
    }

    #[test]
    fn unknown_kernel_packet_type_has_no_direction() {
        let mut data = [0u8; 16];
        data[1] = 5; // PACKET_LOOPBACK
        assert_eq!(CookedHeader::parse_sll(&data).unwrap().kernel_packet_type(), None);
    }

    #[test]
    fn epb_flags_decode_direction_and_reception() {
        use Direction::*;
        use PacketType::*;
        assert_eq!(from_epb_flags(0), (None, None));
        assert_eq!(from_epb_flags(0b10), (Some(Outbound), Some(Outgoing)));
        assert_eq!(from_epb_flags(0b001 << 2 | 0b01), (Some(Inbound), Some(Host)));
        assert_eq!(from_epb_flags(0b010 << 2 | 0b01), (Some(Inbound), Some(Multicast)));
        assert_eq!(from_epb_flags(0b011 << 2 | 0b01), (Some(Inbound), Some(Broadcast)));
        assert_eq!(from_epb_flags(0b100 << 2 | 0b01), (Some(Inbound), Some(OtherHost)));
        assert_eq!(from_epb_flags(0b01), (Some(Inbound), None));
        assert_eq!(from_epb_flags(0b11 | 0xffff_0000), (None, None));
    }
}
