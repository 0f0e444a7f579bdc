//! Flow timeouts per protocol and state, Suricata's defaults, and their
//! command-line form: a comma list such as
//! `tcp.established=600,udp.new=30,icmp.new=10` (seconds).
//!
//! A flow ends when no packet has come for its timeout, which depends on its
//! protocol (TCP, UDP, ICMP and ICMPv6, any other IP protocol) and state
//! (`new`, `established`, and for TCP `closed`: only TCP flows close).

use std::fmt;
use std::str::FromStr;

/// The state of a flow, as Suricata names it in flow records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowState {
    /// Packets in one direction only, or a TCP handshake not complete.
    New,
    /// Packets both ways (TCP: handshake seen or data both ways).
    Established,
    /// TCP: FIN from both sides, or a RST.
    Closed,
}

impl FlowState {
    /// The name in records: `new`, `established`, `closed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Established => "established",
            Self::Closed => "closed",
        }
    }
}

/// The protocol families that have timeouts of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutProtocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1) and ICMPv6 (58).
    Icmp,
    /// Any other IP protocol.
    Other,
}

impl TimeoutProtocol {
    /// The family of IP protocol number `protocol`.
    pub fn of(protocol: u8) -> Self {
        match protocol {
            6 => Self::Tcp,
            17 => Self::Udp,
            1 | 58 => Self::Icmp,
            _ => Self::Other,
        }
    }
}

/// Timeouts in seconds. `Default` gives Suricata's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowTimeouts {
    /// TCP, handshake not complete (60).
    pub tcp_new: u64,
    /// TCP, established (600).
    pub tcp_established: u64,
    /// TCP, closed (60).
    pub tcp_closed: u64,
    /// UDP, one direction seen (30).
    pub udp_new: u64,
    /// UDP, both directions seen (300).
    pub udp_established: u64,
    /// ICMP and ICMPv6, one direction seen (30).
    pub icmp_new: u64,
    /// ICMP and ICMPv6, both directions seen (300).
    pub icmp_established: u64,
    /// Other IP protocols, one direction seen (30).
    pub other_new: u64,
    /// Other IP protocols, both directions seen (300).
    pub other_established: u64,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        Self {
            tcp_new: 60,
            tcp_established: 600,
            tcp_closed: 60,
            udp_new: 30,
            udp_established: 300,
            icmp_new: 30,
            icmp_established: 300,
            other_new: 30,
            other_established: 300,
        }
    }
}

/// The keys [`FlowTimeouts::from_str`] accepts, in the order `Display`
/// writes them.
pub const TIMEOUT_KEYS: [&str; 9] = [
    "tcp.new",
    "tcp.established",
    "tcp.closed",
    "udp.new",
    "udp.established",
    "icmp.new",
    "icmp.established",
    "other.new",
    "other.established",
];

impl FlowTimeouts {
    fn field(&mut self, key: &str) -> Option<&mut u64> {
        Some(match key {
            "tcp.new" => &mut self.tcp_new,
            "tcp.established" => &mut self.tcp_established,
            "tcp.closed" => &mut self.tcp_closed,
            "udp.new" => &mut self.udp_new,
            "udp.established" => &mut self.udp_established,
            "icmp.new" => &mut self.icmp_new,
            "icmp.established" => &mut self.icmp_established,
            "other.new" => &mut self.other_new,
            "other.established" => &mut self.other_established,
            _ => return None,
        })
    }

    fn values(&self) -> [u64; 9] {
        [
            self.tcp_new,
            self.tcp_established,
            self.tcp_closed,
            self.udp_new,
            self.udp_established,
            self.icmp_new,
            self.icmp_established,
            self.other_new,
            self.other_established,
        ]
    }

    /// The timeout in seconds of a flow of `protocol` in `state`. Only TCP
    /// flows close; a closed flow of another protocol (which the tracker
    /// never makes) gets its established timeout.
    pub fn seconds(&self, protocol: TimeoutProtocol, state: FlowState) -> u64 {
        match (protocol, state) {
            (TimeoutProtocol::Tcp, FlowState::New) => self.tcp_new,
            (TimeoutProtocol::Tcp, FlowState::Established) => self.tcp_established,
            (TimeoutProtocol::Tcp, FlowState::Closed) => self.tcp_closed,
            (TimeoutProtocol::Udp, FlowState::New) => self.udp_new,
            (TimeoutProtocol::Udp, _) => self.udp_established,
            (TimeoutProtocol::Icmp, FlowState::New) => self.icmp_new,
            (TimeoutProtocol::Icmp, _) => self.icmp_established,
            (TimeoutProtocol::Other, FlowState::New) => self.other_new,
            (TimeoutProtocol::Other, _) => self.other_established,
        }
    }

    /// The timeout in nanoseconds (saturating).
    pub fn nanos(&self, protocol: TimeoutProtocol, state: FlowState) -> u64 {
        self.seconds(protocol, state).saturating_mul(1_000_000_000)
    }
}

/// Parses `key=seconds` items separated by commas; keys not given keep
/// their defaults, and an empty text gives the defaults.
impl FromStr for FlowTimeouts {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut timeouts = Self::default();
        let mut given: Vec<&str> = Vec::new();
        if text.trim().is_empty() {
            return Ok(timeouts);
        }
        for item in text.split(',') {
            let item = item.trim();
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "flow timeout {item:?}: expected key=seconds, such as tcp.established=600 (keys: {})",
                    TIMEOUT_KEYS.join(", ")
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            let Some(field) = timeouts.field(key) else {
                let hint = if key.ends_with(".closed") {
                    " (only TCP flows close)"
                } else {
                    ""
                };
                return Err(format!(
                    "flow timeout {item:?}: unknown key {key:?}{hint}; accepted keys: {}",
                    TIMEOUT_KEYS.join(", ")
                ));
            };
            *field = value.parse::<u64>().map_err(|_| {
                format!("flow timeout {item:?}: {value:?} is not a whole number of seconds (such as {key}=60)")
            })?;
            if given.contains(&key) {
                return Err(format!("flow timeout {item:?}: {key} is given more than once"));
            }
            given.push(key);
        }
        Ok(timeouts)
    }
}

/// Every key with its value, in the form [`FlowTimeouts::from_str`] reads.
impl fmt::Display for FlowTimeouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (key, value)) in TIMEOUT_KEYS.iter().zip(self.values()).enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_suricatas() {
        let t = FlowTimeouts::default();
        assert_eq!(t.seconds(TimeoutProtocol::Tcp, FlowState::New), 60);
        assert_eq!(t.seconds(TimeoutProtocol::Tcp, FlowState::Established), 600);
        assert_eq!(t.seconds(TimeoutProtocol::Tcp, FlowState::Closed), 60);
        assert_eq!(t.seconds(TimeoutProtocol::of(17), FlowState::New), 30);
        assert_eq!(t.seconds(TimeoutProtocol::of(17), FlowState::Established), 300);
        assert_eq!(t.seconds(TimeoutProtocol::of(58), FlowState::New), 30);
        assert_eq!(t.seconds(TimeoutProtocol::of(1), FlowState::Established), 300);
        assert_eq!(t.seconds(TimeoutProtocol::of(47), FlowState::New), 30);
        assert_eq!(t.seconds(TimeoutProtocol::of(132), FlowState::Established), 300);
        assert_eq!(t.nanos(TimeoutProtocol::Udp, FlowState::New), 30_000_000_000);
    }

    #[test]
    fn a_list_sets_the_keys_it_names_and_display_reads_back() {
        let t: FlowTimeouts = " tcp.established=600, udp.new = 30,icmp.new=10,other.established=0"
            .parse()
            .unwrap();
        assert_eq!(t.icmp_new, 10);
        assert_eq!(t.other_established, 0);
        assert_eq!(t.tcp_new, 60);
        assert_eq!(t.to_string().parse::<FlowTimeouts>().unwrap(), t);
        assert_eq!(
            FlowTimeouts::default().to_string(),
            "tcp.new=60,tcp.established=600,tcp.closed=60,udp.new=30,udp.established=300,\
             icmp.new=30,icmp.established=300,other.new=30,other.established=300"
        );
        assert_eq!("".parse::<FlowTimeouts>().unwrap(), FlowTimeouts::default());
    }

    #[test]
    fn bad_items_are_refused_with_the_item_and_what_is_accepted() {
        let err = "tcp.new=60,udp.closed=5".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("\"udp.closed=5\""), "{err}");
        assert!(err.contains("only TCP flows close"), "{err}");
        assert!(err.contains("tcp.established"), "{err}");
        let err = "tcp.bogus=1".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("unknown key \"tcp.bogus\""), "{err}");
        assert!(err.contains("accepted keys: tcp.new, tcp.established"), "{err}");
        let err = "udp.new=ten".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("\"ten\" is not a whole number of seconds"), "{err}");
        let err = "udp.new=-1".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("\"-1\""), "{err}");
        let err = "udp.new".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("expected key=seconds"), "{err}");
        let err = "udp.new=1,,tcp.new=2".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("expected key=seconds"), "{err}");
        let err = "udp.new=1,udp.new=2".parse::<FlowTimeouts>().unwrap_err();
        assert!(err.contains("more than once"), "{err}");
    }
}
