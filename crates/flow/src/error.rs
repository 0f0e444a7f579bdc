//! The one error type of packet parsing, [`ParseError`], and the [`Layer`] it
//! names, so that a capture can count malformed packets per protocol.
//!
//! Errors are small `Copy` values that describe the bytes, never the caller's
//! mistake: they come from network input, and each variant says which check
//! the input failed. It holds no counters itself; see [`Layer::index`] for
//! an array of them.

use std::fmt;

/// The protocol layer whose header failed a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Layer {
    /// The Ethernet II header.
    Ethernet,
    /// An 802.1Q or 802.1ad tag, in a frame or after a cooked header.
    Vlan,
    /// An ARP packet.
    Arp,
    /// The IPv4 header.
    Ipv4,
    /// The IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, fragment, destination
    /// options, authentication).
    Ipv6Extension,
    /// The TCP header.
    Tcp,
    /// The UDP header.
    Udp,
    /// An ICMP (v4) message.
    Icmpv4,
    /// An ICMPv6 message.
    Icmpv6,
    /// The VXLAN header.
    Vxlan,
}

impl Layer {
    /// Every layer, in the order of [`Layer::index`].
    pub const ALL: [Layer; 11] = [
        Layer::Ethernet,
        Layer::Vlan,
        Layer::Arp,
        Layer::Ipv4,
        Layer::Ipv6,
        Layer::Ipv6Extension,
        Layer::Tcp,
        Layer::Udp,
        Layer::Icmpv4,
        Layer::Icmpv6,
        Layer::Vxlan,
    ];

    /// A dense index below `Layer::ALL.len()`, for an array of counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name, for metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "vlan",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Ipv6Extension => "ipv6_extension",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmpv4 => "icmpv4",
            Layer::Icmpv6 => "icmpv6",
            Layer::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be viewed as a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than `layer` needs: shorter than its fixed header, than the
    /// header length it announces (IPv4 IHL, TCP data offset, an IPv6
    /// extension header's length, ARP address lengths), or than the total
    /// length it announces (IPv4 total length, IPv6 payload length, UDP
    /// length). A capture cut by its snapshot length lands here.
    Truncated {
        /// The layer that ran out of bytes.
        layer: Layer,
    },
    /// More VLAN tags in the frame than the two it may carry (802.1ad outside
    /// 802.1Q). A tag reported out of band by the ring does not count.
    TooManyTags,
    /// The IP version field disagrees with the EtherType or protocol that
    /// announced the header (e.g. version 6 in an EtherType 0x0800 packet).
    BadVersion {
        /// [`Layer::Ipv4`] or [`Layer::Ipv6`].
        layer: Layer,
    },
    /// A header length field below the fixed header's size: IPv4 IHL < 5 or
    /// TCP data offset < 5.
    BadHeaderLength {
        /// [`Layer::Ipv4`] or [`Layer::Tcp`].
        layer: Layer,
    },
    /// A total length field below the header it covers: IPv4 total length
    /// below the IHL, UDP length below 8.
    BadTotalLength {
        /// [`Layer::Ipv4`] or [`Layer::Udp`].
        layer: Layer,
    },
    /// More IPv6 extension headers than
    /// [`ipv6::MAX_EXTENSION_HEADERS`](crate::ipv6::MAX_EXTENSION_HEADERS)
    /// before the upper-layer protocol.
    TooManyExtensionHeaders,
    /// A TCP option whose length byte is below 2, runs past the options, or
    /// does not fit its kind (e.g. an MSS option that is not 4 bytes long).
    /// Only the option iterator reports it; parsing a packet does not read
    /// options.
    BadOption {
        /// [`Layer::Tcp`].
        layer: Layer,
    },
    /// Flags that the protocol requires are missing: a VXLAN header without
    /// its I (valid VNI) flag.
    BadFlags {
        /// [`Layer::Vxlan`].
        layer: Layer,
    },
}

impl ParseError {
    /// The layer that failed, for counting by layer. [`ParseError::TooManyTags`]
    /// is [`Layer::Vlan`]; [`ParseError::TooManyExtensionHeaders`] is
    /// [`Layer::Ipv6Extension`].
    pub fn layer(self) -> Layer {
        match self {
            Self::Truncated { layer }
            | Self::BadVersion { layer }
            | Self::BadHeaderLength { layer }
            | Self::BadTotalLength { layer }
            | Self::BadOption { layer }
            | Self::BadFlags { layer } => layer,
            Self::TooManyTags => Layer::Vlan,
            Self::TooManyExtensionHeaders => Layer::Ipv6Extension,
        }
    }

    /// Shorthand for [`ParseError::Truncated`].
    pub(crate) const fn truncated(layer: Layer) -> Self {
        Self::Truncated { layer }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { layer } => write!(f, "truncated {layer} header or packet"),
            Self::TooManyTags => f.write_str("more than two VLAN tags"),
            Self::BadVersion { layer } => write!(f, "wrong IP version in {layer} packet"),
            Self::BadHeaderLength { layer } => write!(f, "{layer} header length below the minimum"),
            Self::BadTotalLength { layer } => write!(f, "{layer} total length below its header"),
            Self::TooManyExtensionHeaders => f.write_str("too many IPv6 extension headers"),
            Self::BadOption { layer } => write!(f, "malformed {layer} option"),
            Self::BadFlags { layer } => write!(f, "required {layer} flag missing"),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_indexes_are_dense_and_in_order() {
        for (i, layer) in Layer::ALL.iter().enumerate() {
            assert_eq!(layer.index(), i);
        }
    }

    #[test]
    fn every_error_names_its_layer() {
        assert_eq!(ParseError::TooManyTags.layer(), Layer::Vlan);
        assert_eq!(ParseError::TooManyExtensionHeaders.layer(), Layer::Ipv6Extension);
        assert_eq!(ParseError::truncated(Layer::Tcp).layer(), Layer::Tcp);
        assert_eq!(
            ParseError::truncated(Layer::Udp).to_string(),
            "truncated udp header or packet"
        );
    }
}
