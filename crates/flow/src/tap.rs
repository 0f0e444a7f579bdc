//! Tap points: where on the host a copy of a packet was captured, an
//! (interface, direction) pair, and how close it is to the container, which
//! decides which copy of a packet the dedup delivers.
//!
//! The rank ([`TapPoint::rank`], 0 best) follows the path of a packet through
//! a Docker host (docs/docker-host-ground-truth.md): the container's veth,
//! where a container's packet enters the host (incoming) before it leaves to
//! another container (outgoing); then the bridge; then the uplink, where NAT
//! has rewritten the addresses; then anything else. The copy delivered is
//! therefore in the container's address space whenever the packet has one.
//!
//! [`TapRegistry`] interns tap points into the small [`TapId`]s the dedup
//! table records, and keeps their names for the per-tap-pair counters.

use std::sync::{Mutex, PoisonError};

use crate::dedup_table::TapId;

/// What an interface is on a Docker host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TapRole {
    /// The host end of a container's veth pair, enslaved to a bridge.
    ContainerVeth,
    /// A bridge (docker0, br-*).
    Bridge,
    /// The interface with the default route, where NAT's public side is.
    Uplink,
    /// Anything else.
    Other,
}

impl TapRole {
    /// The role that an interface's name suggests when nothing better is
    /// known (captures read from files): `docker0` and `br-*` are bridges,
    /// `veth*` container veths, `lo` other, the rest uplinks.
    pub fn from_interface_name(name: &str) -> Self {
        if name == "docker0" || name.starts_with("br-") {
            TapRole::Bridge
        } else if name.starts_with("veth") {
            TapRole::ContainerVeth
        } else if name == "lo" {
            TapRole::Other
        } else {
            TapRole::Uplink
        }
    }

    /// Parses a role as users write it: `veth` (or `container-veth`),
    /// `bridge`, `uplink`, `other`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "veth" | "container-veth" | "container_veth" => Some(TapRole::ContainerVeth),
            "bridge" => Some(TapRole::Bridge),
            "uplink" => Some(TapRole::Uplink),
            "other" => Some(TapRole::Other),
            _ => None,
        }
    }

    /// The values [`Self::parse`] accepts, for error messages.
    pub const ACCEPTED: &'static str = "veth, bridge, uplink, other";

    /// The name [`Self::parse`] reads back.
    pub fn name(self) -> &'static str {
        match self {
            TapRole::ContainerVeth => "veth",
            TapRole::Bridge => "bridge",
            TapRole::Uplink => "uplink",
            TapRole::Other => "other",
        }
    }

    /// Whether copies seen here are in the containers' address space (before
    /// SNAT, after DNAT).
    pub fn is_container_side(self) -> bool {
        matches!(self, TapRole::ContainerVeth | TapRole::Bridge)
    }
}

/// Which way a copy crossed its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TapDirection {
    /// Received by the interface (every kernel packet type but OUTGOING).
    Incoming,
    /// Sent by the interface (PACKET_OUTGOING).
    Outgoing,
    /// Not recorded (a classic pcap file).
    Unknown,
}

impl TapDirection {
    /// A short name: `in`, `out`, `any`.
    pub fn name(self) -> &'static str {
        match self {
            TapDirection::Incoming => "in",
            TapDirection::Outgoing => "out",
            TapDirection::Unknown => "any",
        }
    }
}

/// A tap point: the interned id the dedup table records, and what decides
/// its rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TapPoint {
    /// The interned (interface, direction).
    pub id: TapId,
    /// The interface's role.
    pub role: TapRole,
    /// The direction.
    pub direction: TapDirection,
}

impl TapPoint {
    /// The rank of copies seen here, 0 best: by role, container veth,
    /// bridge, uplink, other; within a role incoming (where the packet
    /// entered the host) before outgoing or unknown. Distinct tap points of
    /// one packet thus differ in rank (unless two lack a direction), so the
    /// copy delivered does not depend on the order copies are read in.
    pub fn rank(&self) -> u8 {
        let role = match self.role {
            TapRole::ContainerVeth => 0,
            TapRole::Bridge => 1,
            TapRole::Uplink => 2,
            TapRole::Other => 3,
        };
        let direction = match self.direction {
            TapDirection::Incoming => 0,
            TapDirection::Outgoing | TapDirection::Unknown => 1,
        };
        role * 2 + direction
    }
}

/// A tap point's description, for counters and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapInfo {
    /// The tap point.
    pub tap: TapPoint,
    /// The interface's name.
    pub interface: String,
}

impl TapInfo {
    /// `interface/direction`, e.g. `vethc1/in`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.interface, self.tap.direction.name())
    }
}

/// Interns (interface, direction) pairs into [`TapId`]s, shared by every
/// capture thread (interning is rare: once per interface and direction).
#[derive(Debug, Default)]
pub struct TapRegistry {
    taps: Mutex<Vec<TapInfo>>,
}

/// The most tap points one registry hands out ([`TapId`] `u16::MAX` is
/// reserved by the dedup table).
pub const MAX_TAPS: usize = u16::MAX as usize;

impl TapRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tap point of `interface` in `direction`, registered with `role`
    /// on first use (a later call with another role updates it: roles can be
    /// learned late). `None` once [`MAX_TAPS`] are registered.
    pub fn intern(&self, interface: &str, role: TapRole, direction: TapDirection) -> Option<TapPoint> {
        let mut taps = self.taps.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(info) = taps
            .iter_mut()
            .find(|info| info.interface == interface && info.tap.direction == direction)
        {
            info.tap.role = role;
            return Some(info.tap);
        }
        if taps.len() >= MAX_TAPS {
            return None;
        }
        let tap = TapPoint {
            id: TapId(taps.len() as u16),
            role,
            direction,
        };
        taps.push(TapInfo {
            tap,
            interface: interface.to_owned(),
        });
        Some(tap)
    }

    /// Every tap point registered so far, in id order.
    pub fn snapshot(&self) -> Vec<TapInfo> {
        self.taps.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The label of a tap (`interface/direction`), or `tap<N>` if unknown.
    pub fn label(&self, id: TapId) -> String {
        self.taps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(usize::from(id.0))
            .map_or_else(|| format!("tap{}", id.0), TapInfo::label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_path_from_the_container() {
        let tap = |role, direction| TapPoint {
            id: TapId(0),
            role,
            direction,
        };
        let order = [
            tap(TapRole::ContainerVeth, TapDirection::Incoming),
            tap(TapRole::ContainerVeth, TapDirection::Outgoing),
            tap(TapRole::Bridge, TapDirection::Incoming),
            tap(TapRole::Bridge, TapDirection::Unknown),
            tap(TapRole::Uplink, TapDirection::Incoming),
            tap(TapRole::Uplink, TapDirection::Outgoing),
            tap(TapRole::Other, TapDirection::Incoming),
        ];
        let ranks: Vec<u8> = order.iter().map(TapPoint::rank).collect();
        assert_eq!(ranks, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn names_give_roles_and_roles_parse_back() {
        assert_eq!(TapRole::from_interface_name("docker0"), TapRole::Bridge);
        assert_eq!(TapRole::from_interface_name("br-1a2b"), TapRole::Bridge);
        assert_eq!(TapRole::from_interface_name("veth12ab"), TapRole::ContainerVeth);
        assert_eq!(TapRole::from_interface_name("eth0"), TapRole::Uplink);
        for role in [TapRole::ContainerVeth, TapRole::Bridge, TapRole::Uplink, TapRole::Other] {
            assert_eq!(TapRole::parse(role.name()), Some(role));
        }
        assert_eq!(TapRole::parse("wan"), None);
    }

    #[test]
    fn interning_is_stable_per_interface_and_direction() {
        let registry = TapRegistry::new();
        let a = registry
            .intern("vethc1", TapRole::ContainerVeth, TapDirection::Incoming)
            .unwrap();
        let b = registry
            .intern("vethc1", TapRole::ContainerVeth, TapDirection::Outgoing)
            .unwrap();
        let again = registry
            .intern("vethc1", TapRole::ContainerVeth, TapDirection::Incoming)
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a, again);
        assert_eq!(registry.label(b.id), "vethc1/out");
        assert_eq!(registry.label(TapId(99)), "tap99");
    }
}
