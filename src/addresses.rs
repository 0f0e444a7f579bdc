//! The host's own addresses and its bridges' subnets, from one rtnetlink
//! address dump each: the dedup delivers a container veth's copy of a
//! packet the host itself sent without a hold, and the signature engine's
//! HOME_NET is the bridges' subnets.

/// The subnets of the host's bridges (docker0 and user-defined networks),
/// for HOME_NET: every address configured on an interface of `bridges`.
/// Empty (the default applies) when the dump fails.
pub fn bridge_subnets(bridges: &[u32]) -> Vec<String> {
    match discovery::interface_subnets() {
        Ok(subnets) => {
            let mut nets: Vec<String> = subnets
                .iter()
                .filter(|s| bridges.contains(&s.ifindex))
                .filter(|s| !s.address.is_ipv6() || !is_link_local_v6(s.address))
                .map(discovery::InterfaceSubnet::cidr)
                .collect();
            nets.sort();
            nets.dedup();
            nets
        }
        Err(error) => {
            tracing::warn!(%error, "cannot list the bridges' subnets; HOME_NET takes its default");
            Vec::new()
        }
    }
}

/// Every address configured on the host's interfaces (this namespace's),
/// for the dedup: empty when the dump fails.
pub fn host_addresses() -> Vec<std::net::IpAddr> {
    match discovery::interface_subnets() {
        Ok(subnets) => {
            let mut addresses: Vec<std::net::IpAddr> = subnets.iter().map(|s| s.address).collect();
            addresses.sort();
            addresses.dedup();
            addresses
        }
        Err(error) => {
            tracing::warn!(%error, "cannot list the host's addresses; its replies to containers wait a dedup window");
            Vec::new()
        }
    }
}

fn is_link_local_v6(address: std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        std::net::IpAddr::V4(_) => false,
    }
}
