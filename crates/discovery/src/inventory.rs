//! What each interface of the host is for capture: [`role_of`] decides an
//! interface's [`TapRole`] from its link, the links around it and the
//! default routes; [`Inventory`] keeps the roles of all interfaces current
//! as [`LinkEvent`]s arrive and reports what a capture engine must act on
//! (an interface to open, one to close, one whose role changed). It reads
//! no socket itself; a [`crate::LinkWatcher`] feeds it.

use std::collections::{BTreeMap, BTreeSet};

use flow::TapRole;

use crate::link::Link;
use crate::selection::Selection;
use crate::watcher::LinkEvent;

/// The role of `link` on the host, or `None` for loopback, which is never
/// captured.
///
/// In order: an interface that carries a default route (IPv4 or IPv6, main
/// table, `default_routes`) is the uplink, even a bridge, since NAT's public
/// side is there; a `bridge` is a bridge; a `veth` enslaved to a bridge whose
/// peer lives in another namespace (it has `IFLA_LINK_NETNSID`) is a
/// container's veth; anything else (a veth before it gets its bridge, one
/// whose peer is in this namespace, a physical NIC without the default
/// route, a tunnel) is other.
pub fn role_of(link: &Link, links: &BTreeMap<u32, Link>, default_routes: &BTreeSet<u32>) -> Option<TapRole> {
    if link.loopback {
        return None;
    }
    let role = if default_routes.contains(&link.ifindex) {
        TapRole::Uplink
    } else if link.is_bridge() {
        TapRole::Bridge
    } else if link.is_veth()
        && link.link_netnsid.is_some()
        && link.master.and_then(|m| links.get(&m)).is_some_and(Link::is_bridge)
    {
        TapRole::ContainerVeth
    } else {
        TapRole::Other
    };
    Some(role)
}

/// What a capture engine has to act on after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InventoryChange {
    /// A capturable (non-loopback) interface appeared.
    Appeared {
        /// Its index.
        ifindex: u32,
        /// Its name.
        name: String,
        /// Its role.
        role: TapRole,
    },
    /// An interface's role changed (a veth got its bridge, a default route
    /// appeared).
    RoleChanged {
        /// Its index.
        ifindex: u32,
        /// Its name.
        name: String,
        /// The role it had.
        from: TapRole,
        /// The role it has.
        to: TapRole,
    },
    /// An interface was renamed.
    Renamed {
        /// Its index.
        ifindex: u32,
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A capturable interface is gone (deleted or moved away).
    Disappeared {
        /// Its index.
        ifindex: u32,
        /// Its last name.
        name: String,
    },
}

/// The interfaces of a namespace with their roles, kept by applying every
/// [`LinkEvent`] of one watcher, from the first.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    links: BTreeMap<u32, Link>,
    default_routes: BTreeSet<u32>,
    /// The role of every non-loopback link in `links`.
    roles: BTreeMap<u32, TapRole>,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `event` and returns what changed for capture, appearances
    /// first.
    pub fn apply(&mut self, event: &LinkEvent) -> Vec<InventoryChange> {
        let mut changes = Vec::new();
        let mut appeared = Vec::new();
        let mut affected = BTreeSet::new();
        match event {
            LinkEvent::Added(link) | LinkEvent::Changed(link) => {
                if let Some(old) = self.links.insert(link.ifindex, link.clone()) {
                    if old.name != link.name && !link.loopback {
                        changes.push(InventoryChange::Renamed {
                            ifindex: link.ifindex,
                            from: old.name,
                            to: link.name.clone(),
                        });
                    }
                }
                affected.insert(link.ifindex);
                affected.extend(self.ports_of(link.ifindex));
            }
            LinkEvent::Removed { ifindex, name } => {
                self.links.remove(ifindex);
                if self.roles.remove(ifindex).is_some() {
                    changes.push(InventoryChange::Disappeared {
                        ifindex: *ifindex,
                        name: name.clone(),
                    });
                }
                affected.extend(self.ports_of(*ifindex));
            }
            LinkEvent::DefaultRoutesChanged { ifindexes } => {
                let new: BTreeSet<u32> = ifindexes.iter().copied().collect();
                affected.extend(self.default_routes.symmetric_difference(&new).copied());
                self.default_routes = new;
            }
            LinkEvent::Resynced => affected.extend(self.links.keys().copied()),
        }
        for ifindex in affected {
            let Some(link) = self.links.get(&ifindex) else {
                continue;
            };
            let role = role_of(link, &self.links, &self.default_routes);
            let old = match role {
                Some(role) => self.roles.insert(ifindex, role),
                None => self.roles.remove(&ifindex),
            };
            match (old, role) {
                (None, Some(role)) => appeared.push(InventoryChange::Appeared {
                    ifindex,
                    name: link.name.clone(),
                    role,
                }),
                (Some(from), Some(to)) if from != to => changes.push(InventoryChange::RoleChanged {
                    ifindex,
                    name: link.name.clone(),
                    from,
                    to,
                }),
                (Some(_), None) => changes.push(InventoryChange::Disappeared {
                    ifindex,
                    name: link.name.clone(),
                }),
                _ => {}
            }
        }
        appeared.append(&mut changes);
        appeared
    }

    /// The role of interface `ifindex`; `None` for loopback or an unknown
    /// index.
    pub fn role(&self, ifindex: u32) -> Option<TapRole> {
        self.roles.get(&ifindex).copied()
    }

    /// The link with index `ifindex`.
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.get(&ifindex)
    }

    /// The link named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// Every link, loopback included.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    /// The capturable interfaces (all but loopback) with their roles, by
    /// index.
    pub fn entries(&self) -> impl Iterator<Item = (&Link, TapRole)> {
        self.roles.iter().filter_map(|(i, r)| Some((self.links.get(i)?, *r)))
    }

    /// The interfaces `selection` picks, with their roles.
    pub fn selected<'a>(&'a self, selection: &'a Selection) -> impl Iterator<Item = (&'a Link, TapRole)> + 'a {
        self.entries().filter(|(link, _)| selection.selects_link(link))
    }

    /// The interfaces with a default route.
    pub fn default_route_ifindexes(&self) -> &BTreeSet<u32> {
        &self.default_routes
    }

    fn ports_of(&self, master: u32) -> Vec<u32> {
        self.links
            .values()
            .filter(|l| l.master == Some(master))
            .map(|l| l.ifindex)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::OperState;

    fn link(ifindex: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            ifindex,
            name: name.into(),
            kind: kind.map(str::to_owned),
            master: None,
            admin_up: true,
            lower_up: true,
            oper_state: OperState::Up,
            loopback: false,
            mac: None,
            link_netnsid: None,
            peer_ifindex: None,
            mtu: 1500,
            promiscuous: false,
            promiscuity: 0,
        }
    }

    fn container_veth(ifindex: u32, name: &str, master: Option<u32>) -> Link {
        Link {
            master,
            link_netnsid: Some(0),
            peer_ifindex: Some(2),
            ..link(ifindex, name, Some("veth"))
        }
    }

    fn lo() -> Link {
        Link {
            loopback: true,
            ..link(1, "lo", None)
        }
    }

    #[test]
    fn roles_on_a_docker_host() {
        let links: BTreeMap<u32, Link> = [
            lo(),
            link(2, "eth0", Some("veth")),
            link(3, "docker0", Some("bridge")),
            container_veth(4, "vethc1", Some(3)),
            container_veth(5, "vethnew", None),
            // Both ends in this namespace: no IFLA_LINK_NETNSID.
            Link {
                master: Some(3),
                ..link(6, "vethlocal", Some("veth"))
            },
            link(7, "bond0", Some("bond")),
            // Enslaved, but to a bond, not a bridge.
            container_veth(8, "vethbond", Some(7)),
            link(9, "ens3", None),
        ]
        .into_iter()
        .map(|l| (l.ifindex, l))
        .collect();
        let routes = BTreeSet::from([2]);
        let role = |i: u32| role_of(&links[&i], &links, &routes);
        assert_eq!(role(1), None);
        assert_eq!(role(2), Some(TapRole::Uplink));
        assert_eq!(role(3), Some(TapRole::Bridge));
        assert_eq!(role(4), Some(TapRole::ContainerVeth));
        assert_eq!(role(5), Some(TapRole::Other));
        assert_eq!(role(6), Some(TapRole::Other));
        assert_eq!(role(8), Some(TapRole::Other));
        assert_eq!(role(9), Some(TapRole::Other));
        // A bridge with the default route is the uplink.
        assert_eq!(role_of(&links[&3], &links, &BTreeSet::from([3])), Some(TapRole::Uplink));
    }

    #[test]
    fn veth_becomes_container_veth_when_mastered() {
        let mut inventory = Inventory::new();
        assert!(inventory.apply(&LinkEvent::Added(lo())).is_empty());
        inventory.apply(&LinkEvent::Added(link(3, "docker0", Some("bridge"))));
        let changes = inventory.apply(&LinkEvent::Added(container_veth(4, "vethc1", None)));
        assert_eq!(
            changes,
            [InventoryChange::Appeared {
                ifindex: 4,
                name: "vethc1".into(),
                role: TapRole::Other
            }]
        );
        let changes = inventory.apply(&LinkEvent::Changed(container_veth(4, "vethc1", Some(3))));
        assert_eq!(
            changes,
            [InventoryChange::RoleChanged {
                ifindex: 4,
                name: "vethc1".into(),
                from: TapRole::Other,
                to: TapRole::ContainerVeth
            }]
        );
        // Up/down changes nothing for capture.
        let down = Link {
            admin_up: false,
            ..container_veth(4, "vethc1", Some(3))
        };
        assert!(inventory.apply(&LinkEvent::Changed(down)).is_empty());
        assert_eq!(inventory.role(4), Some(TapRole::ContainerVeth));
        assert_eq!(inventory.role(1), None);
        assert!(inventory.link(1).is_some());
    }

    #[test]
    fn ports_follow_their_bridge() {
        let mut inventory = Inventory::new();
        // The port arrives before its bridge (a resync can order them so).
        inventory.apply(&LinkEvent::Added(container_veth(4, "vethc1", Some(3))));
        assert_eq!(inventory.role(4), Some(TapRole::Other));
        let changes = inventory.apply(&LinkEvent::Added(link(3, "docker0", Some("bridge"))));
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(changes[0], InventoryChange::Appeared { ifindex: 3, .. }));
        assert_eq!(inventory.role(4), Some(TapRole::ContainerVeth));
        let changes = inventory.apply(&LinkEvent::Removed {
            ifindex: 3,
            name: "docker0".into(),
        });
        assert_eq!(
            changes,
            [
                InventoryChange::Disappeared {
                    ifindex: 3,
                    name: "docker0".into()
                },
                InventoryChange::RoleChanged {
                    ifindex: 4,
                    name: "vethc1".into(),
                    from: TapRole::ContainerVeth,
                    to: TapRole::Other
                }
            ]
        );
    }

    #[test]
    fn default_route_makes_and_unmakes_the_uplink() {
        let mut inventory = Inventory::new();
        inventory.apply(&LinkEvent::Added(link(2, "eth0", Some("veth"))));
        inventory.apply(&LinkEvent::Added(link(9, "ens3", None)));
        let changes = inventory.apply(&LinkEvent::DefaultRoutesChanged { ifindexes: vec![2] });
        assert_eq!(
            changes,
            [InventoryChange::RoleChanged {
                ifindex: 2,
                name: "eth0".into(),
                from: TapRole::Other,
                to: TapRole::Uplink
            }]
        );
        let changes = inventory.apply(&LinkEvent::DefaultRoutesChanged { ifindexes: vec![9] });
        assert_eq!(changes.len(), 2);
        assert_eq!(inventory.role(2), Some(TapRole::Other));
        assert_eq!(inventory.role(9), Some(TapRole::Uplink));
        assert_eq!(inventory.default_route_ifindexes(), &BTreeSet::from([9]));
    }

    #[test]
    fn rename_is_reported_and_selection_filters() {
        let mut inventory = Inventory::new();
        inventory.apply(&LinkEvent::Added(lo()));
        inventory.apply(&LinkEvent::Added(link(2, "eth0", None)));
        inventory.apply(&LinkEvent::Added(link(3, "docker0", Some("bridge"))));
        let changes = inventory.apply(&LinkEvent::Changed(link(2, "wan0", None)));
        assert_eq!(
            changes,
            [InventoryChange::Renamed {
                ifindex: 2,
                from: "eth0".into(),
                to: "wan0".into()
            }]
        );
        assert_eq!(inventory.by_name("wan0").map(|l| l.ifindex), Some(2));
        let all = Selection::default();
        let names: Vec<&str> = inventory.selected(&all).map(|(l, _)| l.name.as_str()).collect();
        assert_eq!(names, ["wan0", "docker0"]);
        let only_bridges = Selection::new(&["docker*", "br-*"], &[]).unwrap();
        let names: Vec<&str> = inventory
            .selected(&only_bridges)
            .map(|(l, _)| l.name.as_str())
            .collect();
        assert_eq!(names, ["docker0"]);
    }

    #[test]
    fn resync_recomputes_everything() {
        let mut inventory = Inventory::new();
        inventory.apply(&LinkEvent::Added(link(3, "docker0", Some("bridge"))));
        inventory.apply(&LinkEvent::Added(container_veth(4, "vethc1", Some(3))));
        assert!(inventory.apply(&LinkEvent::Resynced).is_empty());
        assert_eq!(inventory.entries().count(), 2);
    }
}
