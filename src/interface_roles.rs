//! The role of an interface on a Docker host, read from sysfs and procfs of
//! the current network namespace: uplink (carries the default route), bridge,
//! container veth (a veth enslaved to a bridge), or other. Roles choose ring
//! sizes. (Netlink-based discovery with peer namespaces replaces this when
//! the host agent lands.)

use std::fs;
use std::path::Path;

use af_packet::InterfaceRole;

/// The role of interface `name`.
pub fn role_of(name: &str) -> InterfaceRole {
    let sys = Path::new("/sys/class/net").join(name);
    let routes = fs::read_to_string("/proc/net/route").unwrap_or_default();
    classify(
        name,
        sys.join("bridge").exists(),
        sys.join("brport").exists(),
        is_veth(&sys),
        &routes,
    )
}

fn is_veth(sys: &Path) -> bool {
    // A veth's iflink is its peer's index, unlike a physical device's, whose
    // iflink is its own; the uevent has no DEVTYPE for veths, so the driver
    // link in sysfs is not reliable either way.
    let read = |file: &str| fs::read_to_string(sys.join(file)).ok().map(|s| s.trim().to_owned());
    match (read("ifindex"), read("iflink")) {
        (Some(index), Some(link)) => index != link && !sys.join("device").exists(),
        _ => false,
    }
}

/// The pure decision, for tests: `routes` is `/proc/net/route`.
fn classify(name: &str, is_bridge: bool, is_bridge_port: bool, is_veth: bool, routes: &str) -> InterfaceRole {
    let carries_default_route = routes.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        fields.next() == Some(name) && fields.next() == Some("00000000")
    });
    if carries_default_route {
        InterfaceRole::Uplink
    } else if is_bridge {
        InterfaceRole::Bridge
    } else if is_veth && is_bridge_port {
        InterfaceRole::ContainerVeth
    } else {
        InterfaceRole::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0112A8C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

    #[test]
    fn default_route_makes_an_uplink() {
        assert_eq!(classify("eth0", false, false, true, ROUTES), InterfaceRole::Uplink);
    }

    #[test]
    fn bridges_and_enslaved_veths() {
        assert_eq!(classify("docker0", true, false, false, ROUTES), InterfaceRole::Bridge);
        assert_eq!(
            classify("vethc1", false, true, true, ROUTES),
            InterfaceRole::ContainerVeth
        );
        assert_eq!(classify("veth9", false, false, true, ROUTES), InterfaceRole::Other);
        assert_eq!(classify("ens3", false, true, false, ROUTES), InterfaceRole::Other);
    }
}
