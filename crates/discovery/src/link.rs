//! A network interface as rtnetlink reports it: [`Link`], a snapshot of the
//! attributes of one RTM_NEWLINK message that discovery needs to decide what
//! the interface is (its kind, its bridge, where its veth peer lives) and
//! whether it can carry traffic. This module only converts messages; it
//! opens no socket.

use std::fmt;

use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};
use netlink_packet_route::AddressFamily;

/// One interface at the time of a message.
///
/// Two snapshots of the same interface compare equal exactly when nothing
/// discovery reports changed between them, so a repeated RTM_NEWLINK that
/// only carries new counters produces no event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Index in the interface's namespace (`ifi_index`).
    pub ifindex: u32,
    /// Name (`IFLA_IFNAME`).
    pub name: String,
    /// Link kind (`IFLA_LINKINFO`/`IFLA_INFO_KIND`): `veth`, `bridge`, ...;
    /// `None` for physical devices and loopback, which have none.
    pub kind: Option<String>,
    /// Index of the device this one is enslaved to (`IFLA_MASTER`): the
    /// bridge of a bridge port.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// RFC 2863 operational state (`IFLA_OPERSTATE`).
    pub oper_state: OperState,
    /// The loopback device (`IFF_LOOPBACK`).
    pub loopback: bool,
    /// Hardware address (`IFLA_ADDRESS`) when it is a 6-byte MAC.
    pub mac: Option<[u8; 6]>,
    /// For a link whose other end lives in another namespace (a veth's peer),
    /// that namespace's id as this namespace numbers it
    /// (`IFLA_LINK_NETNSID`).
    pub link_netnsid: Option<i32>,
    /// `IFLA_LINK`: for a veth, the peer's index (in the namespace
    /// [`Self::link_netnsid`] names, or this one when that is `None`).
    pub peer_ifindex: Option<u32>,
    /// MTU (`IFLA_MTU`).
    pub mtu: u32,
    /// `IFF_PROMISC` in the message's flags: promiscuity asked for through
    /// the interface's flags (`ip link set promisc on`); the kernel reports
    /// only that one there, not a bridge's or a packet socket's.
    pub promiscuous: bool,
    /// How many holders keep it promiscuous (`IFLA_PROMISCUITY`: the flag,
    /// a bridge for its ports, packet-socket memberships); 0 when the
    /// message did not carry it.
    pub promiscuity: u32,
}

/// Operational state (`IF_OPER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperState {
    /// Unknown (virtual devices without carrier logic, loopback).
    Unknown,
    /// Some component is missing.
    NotPresent,
    /// Down.
    Down,
    /// Down because a lower device is (a veth whose peer is down).
    LowerLayerDown,
    /// In a test mode.
    Testing,
    /// Waiting for an external event.
    Dormant,
    /// Up.
    Up,
    /// A value this crate does not know.
    Other(u8),
}

impl From<State> for OperState {
    fn from(state: State) -> Self {
        match state {
            State::Unknown => OperState::Unknown,
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            State::Other(v) => OperState::Other(v),
            // State is non-exhaustive; a later variant is a value we do not
            // know.
            _ => OperState::Other(u8::MAX),
        }
    }
}

/// Why a link message was not turned into a [`Link`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMessageError {
    /// Not a generic link message: the bridge's per-port messages
    /// (`AF_BRIDGE`) and IPv6's (`AF_INET6`) share the message types but
    /// describe something else.
    NotGeneric,
    /// No `IFLA_IFNAME`.
    NoName,
    /// Index 0.
    NoIndex,
}

impl fmt::Display for LinkMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkMessageError::NotGeneric => "not a generic (AF_UNSPEC) link message",
            LinkMessageError::NoName => "link message without IFLA_IFNAME",
            LinkMessageError::NoIndex => "link message with index 0",
        })
    }
}

impl std::error::Error for LinkMessageError {}

impl Link {
    /// The snapshot an RTM_NEWLINK (or RTM_DELLINK) message describes.
    pub fn from_message(message: &LinkMessage) -> Result<Self, LinkMessageError> {
        if message.header.interface_family != AddressFamily::Unspec {
            return Err(LinkMessageError::NotGeneric);
        }
        if message.header.index == 0 {
            return Err(LinkMessageError::NoIndex);
        }
        let flags = message.header.flags;
        let mut link = Link {
            ifindex: message.header.index,
            name: String::new(),
            kind: None,
            master: None,
            admin_up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            oper_state: OperState::Unknown,
            loopback: flags.contains(LinkFlags::Loopback),
            mac: None,
            link_netnsid: None,
            peer_ifindex: None,
            mtu: 0,
            promiscuous: flags.contains(LinkFlags::Promisc),
            promiscuity: 0,
        };
        let mut named = false;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => {
                    link.name.clone_from(name);
                    named = true;
                }
                LinkAttribute::LinkInfo(infos) => link.kind = kind_of(infos),
                LinkAttribute::Controller(master) if *master != 0 => link.master = Some(*master),
                LinkAttribute::OperState(state) => link.oper_state = (*state).into(),
                LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                LinkAttribute::LinkNetNsId(id) if *id >= 0 => link.link_netnsid = Some(*id),
                LinkAttribute::Link(peer) if *peer != 0 => link.peer_ifindex = Some(*peer),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Promiscuity(count) => link.promiscuity = *count,
                _ => {}
            }
        }
        if !named {
            return Err(LinkMessageError::NoName);
        }
        Ok(link)
    }

    /// Whether the interface is in promiscuous mode now, for whatever
    /// reason.
    pub fn in_promiscuous_mode(&self) -> bool {
        self.promiscuous || self.promiscuity > 0
    }

    /// Whether the link kind is `veth`.
    pub fn is_veth(&self) -> bool {
        self.kind.as_deref() == Some("veth")
    }

    /// Whether the link kind is `bridge`.
    pub fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some("bridge")
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`, if the link has one.
    pub fn mac_string(&self) -> Option<String> {
        self.mac.map(|m| {
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )
        })
    }
}

fn kind_of(infos: &[LinkInfo]) -> Option<String> {
    infos.iter().find_map(|info| match info {
        LinkInfo::Kind(InfoKind::Other(kind)) => Some(kind.clone()),
        LinkInfo::Kind(kind) => Some(kind.to_string()),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;

    /// A link message as the kernel sends it for the host end of a
    /// container's veth: vethc1, index 7, enslaved to 3, peer index 2 in
    /// namespace id 0.
    pub(crate) fn veth_message(index: u32, name: &str, master: Option<u32>, up: bool) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = if up {
            LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running
        } else {
            LinkFlags::Broadcast | LinkFlags::Multicast
        };
        message.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Address(vec![0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
            LinkAttribute::OperState(if up { State::Up } else { State::Down }),
            LinkAttribute::Link(2),
            LinkAttribute::LinkNetNsId(0),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        if let Some(master) = master {
            message.attributes.push(LinkAttribute::Controller(master));
        }
        message
    }

    /// Serializes `message` as an RTM_NEWLINK and parses it back, the path
    /// every message from the kernel takes.
    fn round_trip(message: LinkMessage) -> LinkMessage {
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(message)),
        );
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes)
            .expect("a message we serialized parses")
            .payload
        {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => m,
            other => panic!("expected NewLink, got {other:?}"),
        }
    }

    #[test]
    fn veth_message_gives_every_field() {
        // Promiscuous, held so by two (a bridge and a packet socket).
        let mut message = veth_message(7, "vethc1", Some(3), true);
        message.header.flags |= LinkFlags::Promisc;
        message.attributes.push(LinkAttribute::Promiscuity(2));
        let link = Link::from_message(&round_trip(message)).unwrap();
        assert_eq!(
            link,
            Link {
                ifindex: 7,
                name: "vethc1".into(),
                kind: Some("veth".into()),
                master: Some(3),
                admin_up: true,
                lower_up: true,
                oper_state: OperState::Up,
                loopback: false,
                mac: Some([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
                link_netnsid: Some(0),
                peer_ifindex: Some(2),
                mtu: 1500,
                promiscuous: true,
                promiscuity: 2,
            }
        );
        assert!(link.is_veth() && !link.is_bridge() && link.in_promiscuous_mode());
        // A bridge port: promiscuous, not through its flags.
        let port = Link {
            promiscuous: false,
            promiscuity: 1,
            ..link.clone()
        };
        assert!(port.in_promiscuous_mode());
        assert_eq!(link.mac_string().as_deref(), Some("02:42:ac:11:00:02"));
    }

    #[test]
    fn down_veth_without_master() {
        let link = Link::from_message(&round_trip(veth_message(7, "vethc1", None, false))).unwrap();
        assert_eq!(link.master, None);
        assert!(!link.admin_up && !link.lower_up);
        assert_eq!(link.oper_state, OperState::Down);
        assert!(!link.promiscuous && !link.in_promiscuous_mode());
        assert_eq!(link.promiscuity, 0);
    }

    #[test]
    fn loopback_and_unknown_kinds() {
        let mut lo = LinkMessage::default();
        lo.header.index = 1;
        lo.header.flags = LinkFlags::Up | LinkFlags::Loopback | LinkFlags::LowerUp;
        lo.attributes = vec![
            LinkAttribute::IfName("lo".into()),
            LinkAttribute::Address(vec![0; 6]),
            LinkAttribute::OperState(State::Unknown),
            LinkAttribute::Mtu(65536),
        ];
        let link = Link::from_message(&round_trip(lo)).unwrap();
        assert!(link.loopback && link.admin_up);
        assert_eq!((link.kind, link.master, link.link_netnsid), (None, None, None));

        let mut odd = LinkMessage::default();
        odd.header.index = 9;
        odd.attributes = vec![
            LinkAttribute::IfName("x0".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Other("made-up".into()))]),
            // IFLA_MASTER 0 and IFLA_LINK_NETNSID -1 mean "none".
            LinkAttribute::Controller(0),
            LinkAttribute::LinkNetNsId(-1),
            // A 4-byte hardware address (ipip) is no MAC.
            LinkAttribute::Address(vec![10, 0, 0, 1]),
        ];
        let link = Link::from_message(&round_trip(odd)).unwrap();
        assert_eq!(link.kind.as_deref(), Some("made-up"));
        assert_eq!((link.master, link.link_netnsid, link.mac), (None, None, None));
    }

    #[test]
    fn bridge_port_and_nameless_messages_are_rejected() {
        let mut port = veth_message(7, "vethc1", Some(3), true);
        port.header.interface_family = AddressFamily::Bridge;
        assert_eq!(Link::from_message(&port), Err(LinkMessageError::NotGeneric));
        let mut nameless = veth_message(7, "vethc1", None, true);
        nameless.attributes.retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        assert_eq!(Link::from_message(&nameless), Err(LinkMessageError::NoName));
        assert_eq!(
            Link::from_message(&veth_message(0, "x", None, true)),
            Err(LinkMessageError::NoIndex)
        );
    }
}
