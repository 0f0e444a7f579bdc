//! The IP subnets configured on the host's interfaces, from one
//! RTM_GETADDR dump: the signature engine's default `HOME_NET` is the
//! subnets of the container bridges (docker0's 172.17.0.0/16 and each
//! user-defined network's), as Suricata's users set it by hand.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkPayload, NLM_F_DUMP};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::socket::{Received, RouteSocket};

/// How long the dump may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

/// A subnet configured on an interface: the interface's address with its
/// prefix, and the network it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceSubnet {
    /// The interface.
    pub ifindex: u32,
    /// The address configured.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl InterfaceSubnet {
    /// The network: the address with the host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len.min(32)))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    /// `network/prefix`, as rules write it.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network(), self.prefix_len)
    }
}

/// Every address configured in the calling thread's network namespace, from
/// an RTM_GETADDR dump (IPv4 and IPv6).
pub fn interface_subnets() -> io::Result<Vec<InterfaceSubnet>> {
    let mut socket = RouteSocket::open(&[])?;
    let sequence = socket.send(RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP)?;
    let deadline = Instant::now() + DUMP_TIMEOUT;
    let mut subnets = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "rtnetlink address dump did not finish in time",
            ));
        }
        let messages = match socket.receive(Some(remaining))? {
            Received::Messages { messages, .. } => messages,
            Received::TimedOut => continue,
            Received::Overflow => {
                return Err(io::Error::other("rtnetlink address dump overflowed"));
            }
        };
        for message in messages {
            if message.header.sequence_number != sequence {
                continue;
            }
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(subnets),
                NetlinkPayload::Error(error) => {
                    return Err(io::Error::new(
                        error.to_io().kind(),
                        format!("rtnetlink address dump refused: {error}"),
                    ))
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(address)) => {
                    subnets.extend(subnet_of(&address));
                }
                _ => {}
            }
        }
    }
}

/// The subnet an RTM_NEWADDR message describes: its IFA_LOCAL (IFA_ADDRESS
/// is the peer on point-to-point links), else its IFA_ADDRESS.
fn subnet_of(message: &AddressMessage) -> Option<InterfaceSubnet> {
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    Some(InterfaceSubnet {
        ifindex: message.header.index,
        address: local.or(address)?,
        prefix_len: message.header.prefix_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_clears_the_host_bits() {
        let subnet = InterfaceSubnet {
            ifindex: 3,
            address: "172.17.0.1".parse().unwrap(),
            prefix_len: 16,
        };
        assert_eq!(subnet.cidr(), "172.17.0.0/16");
        let v6 = InterfaceSubnet {
            ifindex: 3,
            address: "fd00:1:2:3::1".parse().unwrap(),
            prefix_len: 48,
        };
        assert_eq!(v6.cidr(), "fd00:1:2::/48");
        let host = InterfaceSubnet {
            ifindex: 1,
            address: "10.1.2.3".parse().unwrap(),
            prefix_len: 32,
        };
        assert_eq!(host.cidr(), "10.1.2.3/32");
        let all = InterfaceSubnet {
            ifindex: 1,
            address: "10.1.2.3".parse().unwrap(),
            prefix_len: 0,
        };
        assert_eq!(all.cidr(), "0.0.0.0/0");
    }

    #[test]
    fn the_dump_lists_the_loopback_address() {
        // Every namespace this runs in has lo's 127.0.0.1/8 once lo is up;
        // when it is down the dump is still valid.
        let subnets = interface_subnets().expect("address dump");
        if let Some(lo) = subnets.iter().find(|s| s.address == IpAddr::from([127, 0, 0, 1])) {
            assert_eq!(lo.prefix_len, 8);
        }
    }
}
