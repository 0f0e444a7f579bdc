//! Address and port groups of rule headers (`any`, CIDR blocks, ranges,
//! lists, nested lists, negation) and the variables (`$HOME_NET`,
//! `$HTTP_PORTS`, ...) that name them.
//!
//! The CIDR code is our own (about fifty lines: an IPv4 block is a `u32`
//! and a prefix, an IPv6 block a `u128` and a prefix) rather than `ipnet`:
//! the matcher only needs "parse" and "contains", and a group is evaluated
//! as an expression tree, not as a set of merged ranges.
//!
//! Semantics of a list, as Suricata's: the address matches when it is in at
//! least one positive element (or the list has none) and in no negated
//! element, so `[10.0.0.0/8,!10.1.0.0/16]` is "10/8 but not 10.1/16" and
//! `[!1.2.3.4]` is "anything but 1.2.3.4".

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How deep variables may refer to variables and lists nest: past this the
/// group is rejected (it also stops `A=$B`, `B=$A` cycles).
const MAX_NESTING: usize = 16;

/// An IPv4 or IPv6 network block; host bits are cleared on parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    /// An IPv4 block.
    V4 {
        /// The network address, host bits cleared.
        addr: u32,
        /// The prefix length, 0 to 32.
        prefix: u8,
    },
    /// An IPv6 block.
    V6 {
        /// The network address, host bits cleared.
        addr: u128,
        /// The prefix length, 0 to 128.
        prefix: u8,
    },
}

impl Cidr {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `::1` or
    /// `fd00::/8`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip.trim().parse().map_err(|_| format!("invalid address `{s}`"))?;
        match ip {
            IpAddr::V4(v4) => {
                let prefix = match prefix {
                    None => 32,
                    Some(p) if p.contains('.') => {
                        let mask: Ipv4Addr = p.parse().map_err(|_| format!("invalid netmask in `{s}`"))?;
                        let m = u32::from(mask);
                        if m.leading_ones() + m.trailing_zeros() != 32 {
                            return Err(format!("non-contiguous netmask in `{s}`"));
                        }
                        m.leading_ones() as u8
                    }
                    Some(p) => match p.parse::<u8>() {
                        Ok(p) if p <= 32 => p,
                        _ => return Err(format!("invalid prefix length in `{s}`")),
                    },
                };
                Ok(Cidr::V4 {
                    addr: u32::from(v4) & mask32(prefix),
                    prefix,
                })
            }
            IpAddr::V6(v6) => {
                let prefix = match prefix {
                    None => 128,
                    Some(p) => match p.parse::<u8>() {
                        Ok(p) if p <= 128 => p,
                        _ => return Err(format!("invalid prefix length in `{s}`")),
                    },
                };
                Ok(Cidr::V6 {
                    addr: u128::from(v6) & mask128(prefix),
                    prefix,
                })
            }
        }
    }

    /// Whether `ip` is inside the block (an IPv4 address is never inside an
    /// IPv6 block and the reverse).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4 { addr, prefix }, IpAddr::V4(v4)) => u32::from(v4) & mask32(*prefix) == *addr,
            (Cidr::V6 { addr, prefix }, IpAddr::V6(v6)) => u128::from(v6) & mask128(*prefix) == *addr,
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4 { addr, prefix } => write!(f, "{}/{}", Ipv4Addr::from(*addr), prefix),
            Cidr::V6 { addr, prefix } => write!(f, "{}/{}", Ipv6Addr::from(*addr), prefix),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

/// Rule variables: address groups (`HOME_NET`, `EXTERNAL_NET`, ...) and port
/// groups (`HTTP_PORTS`, ...) share one namespace, as in a rule file the
/// `$` name alone tells nothing of its kind.
///
/// Lookups fall back to Suricata's stock `suricata.yaml` values, so rules
/// of public rule sets load: `EXTERNAL_NET` is `!$HOME_NET`, the `*_SERVERS`
/// groups are `$HOME_NET`, `HTTP_PORTS` is `80`, and so on.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    map: HashMap<String, String>,
}

/// Suricata's default `HOME_NET` when the caller found no subnet.
pub const DEFAULT_HOME_NET: &str = "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]";

impl Vars {
    /// Variables with `HOME_NET` set to the given networks (the container
    /// subnets found on the host), or [`DEFAULT_HOME_NET`] when there are
    /// none.
    pub fn with_home_net<I, S>(nets: I) -> Vars
    where
        I: IntoIterator<Item = S>,
        S: fmt::Display,
    {
        let nets: Vec<String> = nets.into_iter().map(|n| n.to_string()).collect();
        let mut vars = Vars::default();
        let home = if nets.is_empty() {
            DEFAULT_HOME_NET.to_string()
        } else {
            format!("[{}]", nets.join(","))
        };
        vars.set("HOME_NET", &home);
        vars
    }

    /// Sets `name` (with or without its `$`) to `value`, replacing any
    /// earlier value.
    pub fn set(&mut self, name: &str, value: &str) {
        self.map
            .insert(name.trim_start_matches('$').to_string(), value.trim().to_string());
    }

    /// Applies a `--var NAME=VALUE` override.
    pub fn apply_override(&mut self, spec: &str) -> Result<(), String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}`: expected NAME=VALUE"))?;
        let name = name.trim().trim_start_matches('$');
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`{spec}`: invalid variable name"));
        }
        if value.trim().is_empty() {
            return Err(format!("`{spec}`: empty value"));
        }
        self.set(name, value);
        Ok(())
    }

    /// The value of `name`: the one set, else Suricata's stock default.
    pub fn get(&self, name: &str) -> Option<&str> {
        if let Some(v) = self.map.get(name) {
            return Some(v);
        }
        Some(match name {
            "HOME_NET" => DEFAULT_HOME_NET,
            "EXTERNAL_NET" => "!$HOME_NET",
            "HTTP_SERVERS" | "SMTP_SERVERS" | "SQL_SERVERS" | "DNS_SERVERS" | "TELNET_SERVERS" | "AIM_SERVERS"
            | "DC_SERVERS" | "DNP3_SERVER" | "DNP3_CLIENT" | "MODBUS_CLIENT" | "MODBUS_SERVER" | "ENIP_CLIENT"
            | "ENIP_SERVER" => "$HOME_NET",
            "HTTP_PORTS" => "80",
            "SHELLCODE_PORTS" => "!80",
            "ORACLE_PORTS" => "1521",
            "SSH_PORTS" => "22",
            "DNP3_PORTS" => "20000",
            "MODBUS_PORTS" => "502",
            "FILE_DATA_PORTS" => "[$HTTP_PORTS,110,143]",
            "FTP_PORTS" => "21",
            "GENEVE_PORTS" => "6081",
            "VXLAN_PORTS" => "4789",
            "TEREDO_PORTS" => "3544",
            _ => return None,
        })
    }
}

/// An address group of a rule header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AddrExpr {
    Any,
    Cidr(Cidr),
    List(Vec<AddrExpr>),
    Not(Box<AddrExpr>),
}

impl AddrExpr {
    pub(crate) fn parse(s: &str, vars: &Vars) -> Result<AddrExpr, String> {
        parse_group(s, vars, 0, &|atom| {
            if atom == "any" {
                Ok(AddrExpr::Any)
            } else {
                Cidr::parse(atom).map(AddrExpr::Cidr)
            }
        })
    }

    pub(crate) fn is_any(&self) -> bool {
        matches!(self, AddrExpr::Any)
    }

    pub(crate) fn matches(&self, ip: IpAddr) -> bool {
        match self {
            AddrExpr::Any => true,
            AddrExpr::Cidr(c) => c.contains(ip),
            AddrExpr::Not(e) => !e.matches(ip),
            AddrExpr::List(items) => list_matches(
                items,
                |e| e.matches(ip),
                |e| match e {
                    AddrExpr::Not(inner) => Some(inner),
                    _ => None,
                },
            ),
        }
    }
}

/// A port group of a rule header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PortExpr {
    Any,
    Range(u16, u16),
    List(Vec<PortExpr>),
    Not(Box<PortExpr>),
}

impl PortExpr {
    pub(crate) fn parse(s: &str, vars: &Vars) -> Result<PortExpr, String> {
        parse_group(s, vars, 0, &|atom| {
            if atom == "any" {
                return Ok(PortExpr::Any);
            }
            let port = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("invalid port `{atom}`"));
            match atom.split_once(':') {
                None => port(atom).map(|p| PortExpr::Range(p, p)),
                Some((lo, hi)) => {
                    let lo = if lo.trim().is_empty() { 0 } else { port(lo)? };
                    let hi = if hi.trim().is_empty() { u16::MAX } else { port(hi)? };
                    if lo > hi {
                        return Err(format!("invalid port range `{atom}`: start above end"));
                    }
                    Ok(PortExpr::Range(lo, hi))
                }
            }
        })
    }

    pub(crate) fn is_any(&self) -> bool {
        matches!(self, PortExpr::Any)
    }

    pub(crate) fn matches(&self, port: u16) -> bool {
        match self {
            PortExpr::Any => true,
            PortExpr::Range(lo, hi) => (*lo..=*hi).contains(&port),
            PortExpr::Not(e) => !e.matches(port),
            PortExpr::List(items) => list_matches(
                items,
                |e| e.matches(port),
                |e| match e {
                    PortExpr::Not(inner) => Some(inner),
                    _ => None,
                },
            ),
        }
    }
}

/// A list matches when some positive element matches (or there is none)
/// and no negated element does.
fn list_matches<T>(items: &[T], matches: impl Fn(&T) -> bool, negated: impl Fn(&T) -> Option<&T>) -> bool {
    let mut has_positive = false;
    let mut positive = false;
    for item in items {
        match negated(item) {
            Some(inner) => {
                if matches(inner) {
                    return false;
                }
            }
            None => {
                has_positive = true;
                positive = positive || matches(item);
            }
        }
    }
    !has_positive || positive
}

/// The shape shared by address and port groups.
trait GroupExpr: Sized {
    fn list(items: Vec<Self>) -> Self;
    fn not(inner: Self) -> Self;
    fn is_any(&self) -> bool;
}

impl GroupExpr for AddrExpr {
    fn list(items: Vec<Self>) -> Self {
        AddrExpr::List(items)
    }
    fn not(inner: Self) -> Self {
        AddrExpr::Not(Box::new(inner))
    }
    fn is_any(&self) -> bool {
        AddrExpr::is_any(self)
    }
}

impl GroupExpr for PortExpr {
    fn list(items: Vec<Self>) -> Self {
        PortExpr::List(items)
    }
    fn not(inner: Self) -> Self {
        PortExpr::Not(Box::new(inner))
    }
    fn is_any(&self) -> bool {
        PortExpr::is_any(self)
    }
}

fn parse_group<T: GroupExpr>(
    s: &str,
    vars: &Vars,
    depth: usize,
    atom: &dyn Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    if depth > MAX_NESTING {
        return Err(format!("`{s}`: variables or lists nested too deep (cycle?)"));
    }
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address or port group".to_string());
    }
    if let Some(rest) = s.strip_prefix('!') {
        let inner = parse_group(rest, vars, depth + 1, atom)?;
        if inner.is_any() {
            return Err(format!("`{s}`: negating `any` matches nothing"));
        }
        return Ok(T::not(inner));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let inner = rest
            .strip_suffix(']')
            .ok_or_else(|| format!("`{s}`: unbalanced brackets"))?;
        let mut items = Vec::new();
        for part in split_top_level(inner).map_err(|e| format!("`{s}`: {e}"))? {
            items.push(parse_group(part, vars, depth + 1, atom)?);
        }
        if items.is_empty() {
            return Err(format!("`{s}`: empty list"));
        }
        return Ok(T::list(items));
    }
    if let Some(name) = s.strip_prefix('$') {
        let value = vars.get(name).ok_or_else(|| format!("undefined variable `${name}`"))?;
        return parse_group(value, vars, depth + 1, atom);
    }
    if s.contains([']', ',']) {
        return Err(format!("`{s}`: unbalanced brackets"));
    }
    atom(s)
}

/// Splits a list body at commas outside brackets.
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1).ok_or("unbalanced brackets")?,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced brackets".to_string());
    }
    parts.push(&s[start..]);
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err("empty list element".to_string());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.200.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        assert_eq!(
            Cidr::parse("192.168.1.0/255.255.255.0").unwrap(),
            Cidr::parse("192.168.1.0/24").unwrap()
        );
        assert!(Cidr::parse("1.2.3.4/33").is_err());
        assert!(Cidr::parse("1.2.3.4/255.0.255.0").is_err());
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    }

    #[test]
    fn nested_lists_and_negation() {
        let vars = Vars::with_home_net(["172.17.0.0/16"]);
        let e = AddrExpr::parse("[10.0.0.0/8,!10.1.0.0/16,[192.168.1.1,::1]]", &vars).unwrap();
        assert!(e.matches(ip("10.2.0.1")));
        assert!(!e.matches(ip("10.1.0.1")));
        assert!(e.matches(ip("192.168.1.1")));
        assert!(e.matches(ip("::1")));
        assert!(!e.matches(ip("8.8.8.8")));
        let only_neg = AddrExpr::parse("[!1.2.3.4]", &vars).unwrap();
        assert!(only_neg.matches(ip("1.2.3.5")));
        assert!(!only_neg.matches(ip("1.2.3.4")));
        let ext = AddrExpr::parse("$EXTERNAL_NET", &vars).unwrap();
        assert!(!ext.matches(ip("172.17.0.2")));
        assert!(ext.matches(ip("8.8.8.8")));
        assert!(AddrExpr::parse("!any", &vars).is_err());
        assert!(AddrExpr::parse("[1.2.3.4", &vars).is_err());
        assert!(AddrExpr::parse("$NOPE", &vars).is_err());
    }

    #[test]
    fn variable_cycle_is_rejected() {
        let mut vars = Vars::default();
        vars.set("A", "$B");
        vars.set("B", "[$A]");
        assert!(AddrExpr::parse("$A", &vars).unwrap_err().contains("too deep"));
    }

    #[test]
    fn ports() {
        let vars = Vars::default();
        let p = PortExpr::parse("[1:1024,!80,8080]", &vars).unwrap();
        assert!(p.matches(22) && p.matches(8080) && !p.matches(80) && !p.matches(2000));
        assert!(PortExpr::parse(":100", &vars).unwrap().matches(0));
        assert!(PortExpr::parse("1024:", &vars).unwrap().matches(65535));
        assert!(!PortExpr::parse("!$HTTP_PORTS", &vars).unwrap().matches(80));
        assert!(PortExpr::parse("100:1", &vars).is_err());
        assert!(PortExpr::parse("70000", &vars).is_err());
    }

    #[test]
    fn overrides() {
        let mut vars = Vars::default();
        vars.apply_override("HOME_NET=[10.0.0.0/8]").unwrap();
        assert_eq!(vars.get("HOME_NET"), Some("[10.0.0.0/8]"));
        assert!(vars.apply_override("novalue").is_err());
        assert!(vars.apply_override("BAD NAME=1").is_err());
    }
}
