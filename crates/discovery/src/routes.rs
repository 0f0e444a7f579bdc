//! Default routes of the main table, IPv4 and IPv6, kept from RTM_NEWROUTE
//! and RTM_DELROUTE messages: which interfaces carry one, the uplinks. Only
//! the output interfaces matter here; gateways, metrics and other tables
//! are not tracked beyond telling one default route from another.

use std::collections::{BTreeMap, BTreeSet};

use netlink_packet_route::route::{RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::AddressFamily;

/// What tells two default routes apart: the kernel replaces a route with the
/// same family, table, TOS and metric, and a multipath route is one route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    family: u8,
    tos: u8,
    metric: u32,
    /// The output interfaces, sorted; IPv6 multipath routes are notified
    /// one nexthop at a time, as routes of the same metric with different
    /// interfaces.
    interfaces: Vec<u32>,
}

/// The set of default routes of the main table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DefaultRoutes {
    routes: BTreeMap<RouteKey, ()>,
}

impl DefaultRoutes {
    /// Records a new route; true when the set of uplinks changed.
    pub(crate) fn add(&mut self, message: &RouteMessage) -> bool {
        let Some(key) = default_route_key(message) else {
            return false;
        };
        let before = self.interfaces();
        self.routes.insert(key, ());
        before != self.interfaces()
    }

    /// Forgets a deleted route; true when the set of uplinks changed.
    pub(crate) fn remove(&mut self, message: &RouteMessage) -> bool {
        let Some(key) = default_route_key(message) else {
            return false;
        };
        let before = self.interfaces();
        self.routes.remove(&key);
        before != self.interfaces()
    }

    /// Forgets every route through `ifindex`: the kernel drops IPv4 routes of
    /// a device that goes down or away without an RTM_DELROUTE.
    pub(crate) fn remove_interface(&mut self, ifindex: u32) -> bool {
        let before = self.routes.len();
        self.routes.retain(|key, ()| !key.interfaces.contains(&ifindex));
        before != self.routes.len()
    }

    /// The interfaces that carry a default route.
    pub(crate) fn interfaces(&self) -> BTreeSet<u32> {
        self.routes.keys().flat_map(|k| k.interfaces.iter().copied()).collect()
    }
}

/// The key of `message` if it is a default unicast route of the main table
/// with at least one output interface.
fn default_route_key(message: &RouteMessage) -> Option<RouteKey> {
    let header = &message.header;
    let family = match header.address_family {
        AddressFamily::Inet => libc::AF_INET as u8,
        AddressFamily::Inet6 => libc::AF_INET6 as u8,
        _ => return None,
    };
    if header.destination_prefix_length != 0 || header.kind != RouteType::Unicast {
        return None;
    }
    // RTA_TABLE carries tables above 255; the header's byte says
    // RT_TABLE_COMPAT (252) for them.
    let table = message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let mut interfaces = Vec::new();
    let mut metric = 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Oif(oif) => interfaces.push(*oif),
            RouteAttribute::MultiPath(hops) => interfaces.extend(hops.iter().map(|h| h.interface_index)),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    interfaces.retain(|&i| i != 0);
    interfaces.sort_unstable();
    interfaces.dedup();
    if interfaces.is_empty() {
        return None;
    }
    Some(RouteKey {
        family,
        tos: header.tos,
        metric,
        interfaces,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteAddress, RouteNextHop};
    use std::net::Ipv4Addr;

    /// `default via 198.18.0.1 dev <oif> metric <metric>` in the main table.
    pub(crate) fn default_route(family: AddressFamily, oif: u32, metric: u32) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = family;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.kind = RouteType::Unicast;
        message.attributes = vec![
            RouteAttribute::Table(u32::from(RouteHeader::RT_TABLE_MAIN)),
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, 1))),
            RouteAttribute::Oif(oif),
        ];
        if metric != 0 {
            message.attributes.push(RouteAttribute::Priority(metric));
        }
        message
    }

    #[test]
    fn default_routes_add_and_remove() {
        let mut routes = DefaultRoutes::default();
        assert!(routes.add(&default_route(AddressFamily::Inet, 4, 0)));
        // The same interface again (IPv6, another metric): no change in uplinks.
        assert!(!routes.add(&default_route(AddressFamily::Inet6, 4, 1024)));
        assert!(routes.add(&default_route(AddressFamily::Inet, 5, 100)));
        assert_eq!(routes.interfaces(), BTreeSet::from([4, 5]));
        assert!(!routes.remove(&default_route(AddressFamily::Inet, 4, 0)));
        assert!(routes.remove(&default_route(AddressFamily::Inet6, 4, 1024)));
        assert_eq!(routes.interfaces(), BTreeSet::from([5]));
        assert!(routes.remove_interface(5));
        assert!(routes.interfaces().is_empty());
    }

    #[test]
    fn other_routes_are_ignored() {
        let mut routes = DefaultRoutes::default();
        let mut subnet = default_route(AddressFamily::Inet, 4, 0);
        subnet.header.destination_prefix_length = 24;
        let mut local_table = default_route(AddressFamily::Inet, 4, 0);
        local_table.header.table = 255;
        local_table.attributes[0] = RouteAttribute::Table(255);
        let mut high_table = default_route(AddressFamily::Inet, 4, 0);
        high_table.header.table = 252;
        high_table.attributes[0] = RouteAttribute::Table(1000);
        let mut blackhole = default_route(AddressFamily::Inet, 4, 0);
        blackhole.header.kind = RouteType::BlackHole;
        let mut no_interface = default_route(AddressFamily::Inet, 4, 0);
        no_interface.attributes.retain(|a| !matches!(a, RouteAttribute::Oif(_)));
        for message in [subnet, local_table, high_table, blackhole, no_interface] {
            assert!(!routes.add(&message), "{message:?}");
        }
        assert!(routes.interfaces().is_empty());
    }

    #[test]
    fn multipath_default_route_names_every_nexthop() {
        let mut message = default_route(AddressFamily::Inet, 0, 0);
        message.attributes.retain(|a| !matches!(a, RouteAttribute::Oif(_)));
        let mut a = RouteNextHop::default();
        a.interface_index = 6;
        let mut b = RouteNextHop::default();
        b.interface_index = 3;
        message.attributes.push(RouteAttribute::MultiPath(vec![a, b]));
        let mut routes = DefaultRoutes::default();
        assert!(routes.add(&message));
        assert_eq!(routes.interfaces(), BTreeSet::from([3, 6]));
        assert!(routes.remove(&message));
    }
}
