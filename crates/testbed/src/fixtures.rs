//! The recorded dedup fixtures of `tests/fixtures/dedup/` (made by
//! `scripts/record-fixtures.sh` in the Docker-host test bed): their JSON
//! manifests, and the number of packets a deduplicating capture of the host
//! must deliver for each, derived only from the container-side captures,
//! never from any dedup code.
//!
//! # What a fixture is
//!
//! One traffic case recorded twice at the same time with the same BPF
//! filter: the *host capture* (`tcpdump -i any -y LINUX_SLL2` in the bed's
//! host namespace: every copy of every packet on docker0, the vethcN and the
//! uplink, each with its ifindex and packet type) and one *container
//! capture* per container that takes part (`tcpdump -i eth0` inside the
//! container's namespace, Ethernet link type). The manifest names the files,
//! gives each host ifindex its role and name, says whether docker0 was
//! promiscuous and the uplink's TSO/GSO off, and holds the expected
//! delivered count and the host capture's packet counts.
//!
//! # What [`expected_delivered`] counts, and why it is "every packet
//! crossing the host exactly once"
//!
//! It counts the frames of all container captures, where one group of
//! byte-identical frames (link layer on, whole frame) taken from *different*
//! captures within [`MERGE_WINDOW_NS`] (20 ms) of the group's first frame
//! counts once, and a frame repeated within *one* capture counts each time.
//! That is the number of distinct packets that crossed the host, because:
//!
//! - Every packet of a case has a container endpoint (a sender, a receiver or
//!   both), and every container that takes part is captured: each packet
//!   crossing the host is in at least one container capture.
//! - A container's `eth0` is the other end of the host's `vethcN`, and a veth
//!   pair hands the frame over as it is: the container capture holds exactly
//!   the frames the host-side veth carries, with the same bytes and the same
//!   segmentation (a GSO super-frame crosses the pair whole, so the container
//!   side sees it as one frame, just as the veth does).
//! - A frame bridged from one container to another is not modified (no NAT,
//!   no TTL decrement on a bridge), so its copies in the sender's capture
//!   (outgoing) and the receiver's (incoming) are byte-identical and merge
//!   into one. An ARP broadcast from c1 with three containers is one frame in
//!   each of the three captures (c1 out, c2 in, c3 in), merged into one; the
//!   unicast reply is in two (c2 out, c1 in), merged into one.
//! - One capture never holds the same packet twice (one interface, one
//!   tap), so identical frames inside one capture are real repeats and count
//!   each, and a group takes at most one frame from each capture. Different
//!   IP packets are not byte-identical anyway (Linux gives every IPv4
//!   transmission a new IP ID, a TCP retransmission included, with a new
//!   TSval too; the traffic cases number their payloads). Different frames
//!   that are byte-identical, like c2's ARP replies to repeated requests,
//!   still count right: n of them out of one container and n into another
//!   make n groups of two, whatever the spacing, because copies of one
//!   packet are microseconds apart and each capture holds its frames in
//!   order.
//! - Packets NAT rewrites (MASQUERADE, DNAT) or the uplink segments
//!   differently (TSO/GSO off on eth0: one veth super-frame is N frames on
//!   eth0) appear on the container side once, in the container's own address
//!   space and segmentation: the form the engine delivers, which attributes
//!   packets to containers. So the count is per packet as its container saw
//!   it, and the uplink's segments of a super-frame are duplicates of it.
//!
//! The count is exact only for captures that dropped nothing (the recorder
//! checks tcpdump's "dropped by kernel" for every capture) and frames that
//! were not snapped (this module refuses a snapped frame).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use af_packet::InterfaceRole;
use capture_file::{CaptureFile, LinkKind};
use serde_json::{json, Map, Value};

/// Identical frames in two different container captures are one packet when
/// they are at most this far apart (copies of one packet are microseconds
/// apart; the ground truth saw at most 2 ms).
pub const MERGE_WINDOW_NS: u64 = 20_000_000;

/// The role names manifests use, by interface name in the bed's host
/// namespace: `vethc<N>` is `"veth"`, `docker0` `"bridge"`, `eth0`
/// `"uplink"`, anything else (`lo`) `"other"`.
pub fn role_of_interface(name: &str) -> &'static str {
    match name {
        "docker0" => "bridge",
        "eth0" => "uplink",
        _ if name
            .strip_prefix("vethc")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            "veth"
        }
        _ => "other",
    }
}

/// A manifest role name as the capture engine's interface role; `None` for a
/// name manifests do not use.
pub fn interface_role(role: &str) -> Option<InterfaceRole> {
    match role {
        "veth" => Some(InterfaceRole::ContainerVeth),
        "bridge" => Some(InterfaceRole::Bridge),
        "uplink" => Some(InterfaceRole::Uplink),
        "other" => Some(InterfaceRole::Other),
        _ => None,
    }
}

/// One recorded fixture, as its manifest `<case>.json` describes it. Paths
/// are absolute (the manifest's directory joined with the file names it
/// holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fixture {
    /// The case's name, also the stem of its files.
    pub case: String,
    /// The directory of the manifest and captures.
    pub dir: PathBuf,
    /// The manifest itself.
    pub manifest: PathBuf,
    /// The host namespace's `LINUX_SLL2` capture of all interfaces.
    pub host_capture: PathBuf,
    /// One Ethernet capture of `eth0` per container taking part.
    pub container_captures: Vec<PathBuf>,
    /// Role (`"veth"`, `"bridge"`, `"uplink"`, `"other"`) of each host
    /// interface, by the name the capture reader gives it (`ifindex<N>`),
    /// in ifindex order.
    pub roles: InterfaceTable,
    /// Name in the host namespace (`vethc1`, `docker0`...) of each host
    /// interface, by reader name (`ifindex<N>`), in ifindex order.
    pub names: InterfaceTable,
    /// Whether docker0 was promiscuous while recording (a third copy of
    /// bridged packets).
    pub docker0_promisc: bool,
    /// Whether TSO and GSO were off on the uplink while recording.
    pub tso_off: bool,
    /// Distinct packets that crossed the host: [`expected_delivered`] of the
    /// container captures.
    pub expected_delivered: u64,
    /// Packets in the host capture: every copy.
    pub host_copies: u64,
    /// Packets in the host capture per interface (`ifindex<N>`), in ifindex
    /// order.
    pub host_per_interface: Vec<(String, u64)>,
    /// The BPF filter both sides were recorded with.
    pub filter: String,
    /// The `scripts/traffic.sh` case that made the traffic.
    pub traffic: String,
    /// The kernel release the fixture was recorded on.
    pub kernel: String,
}

impl Fixture {
    /// Reads one manifest.
    pub fn load(manifest: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(manifest).map_err(|e| format!("{}: cannot read: {e}", manifest.display()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", manifest.display()))?;
        let dir = manifest.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_json(&value, &dir, manifest).map_err(|e| format!("{}: {e}", manifest.display()))
    }

    fn from_json(value: &Value, dir: &Path, manifest: &Path) -> Result<Self, String> {
        let object = value.as_object().ok_or("the manifest is not a JSON object")?;
        let string = |key: &str| -> Result<String, String> {
            object
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("\"{key}\" missing or not a string"))
        };
        let boolean = |key: &str| -> Result<bool, String> {
            object
                .get(key)
                .and_then(Value::as_bool)
                .ok_or_else(|| format!("\"{key}\" missing or not a boolean"))
        };
        let number = |key: &str| -> Result<u64, String> {
            object
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("\"{key}\" missing or not a non-negative integer"))
        };
        let table = |key: &str| -> Result<Vec<(String, Value)>, String> {
            let map = object
                .get(key)
                .and_then(Value::as_object)
                .ok_or_else(|| format!("\"{key}\" missing or not an object"))?;
            let mut entries: Vec<(String, Value)> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            entries.sort_by_key(|(k, _)| interface_order(k));
            Ok(entries)
        };
        let strings = |key: &str| -> Result<Vec<(String, String)>, String> {
            table(key)?
                .into_iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => Ok((k, s.to_owned())),
                    None => Err(format!("\"{key}\".\"{k}\" is not a string")),
                })
                .collect()
        };
        let container_captures = object
            .get("container_captures")
            .and_then(Value::as_array)
            .ok_or("\"container_captures\" missing or not an array")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|name| dir.join(name))
                    .ok_or_else(|| "\"container_captures\" holds a non-string".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let roles = strings("roles")?;
        if let Some((interface, role)) = roles.iter().find(|(_, role)| interface_role(role).is_none()) {
            return Err(format!(
                "interface {interface} has role \"{role}\"; roles are veth, bridge, uplink, other"
            ));
        }
        let host_per_interface = table("host_per_interface")?
            .into_iter()
            .map(|(k, v)| match v.as_u64() {
                Some(n) => Ok((k, n)),
                None => Err(format!("\"host_per_interface\".\"{k}\" is not a count")),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            case: string("case")?,
            dir: dir.to_path_buf(),
            manifest: manifest.to_path_buf(),
            host_capture: dir.join(string("host_capture")?),
            container_captures,
            roles,
            names: strings("names")?,
            docker0_promisc: boolean("docker0_promisc")?,
            tso_off: boolean("tso_off")?,
            expected_delivered: number("expected_delivered")?,
            host_copies: number("host_copies")?,
            host_per_interface,
            filter: string("filter")?,
            traffic: string("traffic")?,
            kernel: string("kernel")?,
        })
    }

    /// The manifest's JSON: file names relative to the manifest's directory.
    pub fn to_json(&self) -> Value {
        let file_name = |path: &Path| -> String {
            path.strip_prefix(&self.dir)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned()
        };
        let strings = |entries: &[(String, String)]| -> Value {
            Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        json!({
            "case": self.case,
            "traffic": self.traffic,
            "filter": self.filter,
            "kernel": self.kernel,
            "host_capture": file_name(&self.host_capture),
            "container_captures": self.container_captures.iter().map(|p| file_name(p)).collect::<Vec<_>>(),
            "roles": strings(&self.roles),
            "names": strings(&self.names),
            "docker0_promisc": self.docker0_promisc,
            "tso_off": self.tso_off,
            "expected_delivered": self.expected_delivered,
            "host_copies": self.host_copies,
            "host_per_interface": Value::Object(
                self.host_per_interface.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<Map<_, _>>()
            ),
        })
    }

    /// The `--role` value for `ringsieve read` on the host capture:
    /// `ifindex2=bridge,ifindex3=veth,...`.
    pub fn roles_arg(&self) -> String {
        self.roles
            .iter()
            .map(|(name, role)| format!("{name}={role}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The role of a host interface by its reader name (`ifindex<N>`).
    pub fn role(&self, interface: &str) -> Option<InterfaceRole> {
        self.roles
            .iter()
            .find(|(name, _)| name == interface)
            .and_then(|(_, role)| interface_role(role))
    }

    /// The host namespace's name (`vethc1`...) of a host interface by its
    /// reader name (`ifindex<N>`).
    pub fn name(&self, interface: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|(name, _)| name == interface)
            .map(|(_, n)| n.as_str())
    }
}

/// Sorts `ifindex<N>` names by N, anything else after them by name.
fn interface_order(name: &str) -> (u64, String) {
    let index = name
        .strip_prefix("ifindex")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (index, name.to_owned())
}

/// Every fixture whose manifest (`*.json`) is in `dir`, sorted by case.
pub fn load_all(dir: &Path) -> Result<Vec<Fixture>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
    let mut fixtures = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: cannot list: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "json") {
            fixtures.push(Fixture::load(&path)?);
        }
    }
    fixtures.sort_by(|a, b| a.case.cmp(&b.case));
    Ok(fixtures)
}

/// `(reader name ifindex<N>, value)` pairs in ifindex order: a manifest's
/// roles or names.
pub type InterfaceTable = Vec<(String, String)>;

/// The host namespace's interfaces from `ip -j link` output: their roles and
/// their names, each by reader name (`ifindex<N>`), in ifindex order.
pub fn host_interfaces(ip_link_json: &str) -> Result<(InterfaceTable, InterfaceTable), String> {
    let links: Value = serde_json::from_str(ip_link_json).map_err(|e| format!("`ip -j link` output: {e}"))?;
    let links = links.as_array().ok_or("`ip -j link` output is not an array")?;
    let mut interfaces = Vec::new();
    for link in links {
        let index = link
            .get("ifindex")
            .and_then(Value::as_u64)
            .ok_or("`ip -j link`: a link without \"ifindex\"")?;
        let name = link
            .get("ifname")
            .and_then(Value::as_str)
            .ok_or("`ip -j link`: a link without \"ifname\"")?;
        interfaces.push((index, name.to_owned()));
    }
    interfaces.sort();
    let roles = interfaces
        .iter()
        .map(|(index, name)| (format!("ifindex{index}"), role_of_interface(name).to_owned()))
        .collect();
    let names = interfaces
        .into_iter()
        .map(|(index, name)| (format!("ifindex{index}"), name))
        .collect();
    Ok((roles, names))
}

/// The packets of a host capture: in all, and per interface (the reader's
/// `ifindex<N>` names) in ifindex order. Every packet must carry a
/// `LINUX_SLL2` header, or its interface would be unknown.
pub fn host_counts(host_capture: &Path) -> Result<(u64, Vec<(String, u64)>), String> {
    let mut file = CaptureFile::open(host_capture).map_err(|e| e.to_string())?;
    let mut per_interface: BTreeMap<u32, u64> = BTreeMap::new();
    let mut total = 0;
    while let Some(packet) = file.next_packet().map_err(|e| e.to_string())? {
        if !matches!(packet.link, LinkKind::LinuxSll2(_)) {
            return Err(format!(
                "{}: packet {} is not LINUX_SLL2 ({:?}): no ifindex",
                host_capture.display(),
                total + 1,
                packet.link
            ));
        }
        *per_interface.entry(packet.interface).or_default() += 1;
        total += 1;
    }
    let mut named: Vec<(String, u64)> = per_interface
        .into_iter()
        .map(|(index, count)| (file.interfaces()[index as usize].name.clone(), count))
        .collect();
    named.sort_by_key(|(name, _)| interface_order(name));
    Ok((total, named))
}

/// One frame of a container capture.
struct ContainerFrame {
    capture: usize,
    timestamp_ns: u64,
    data: Vec<u8>,
}

/// The distinct packets that crossed the host, from the container-side
/// captures alone (see the module docs for what is counted and why):
/// byte-identical frames of different captures within [`MERGE_WINDOW_NS`]
/// of the first of them count once, repeats within one capture each time.
///
/// Every capture must be Ethernet (the cooked headers of `-i any` differ
/// between copies) and hold whole frames (a snapped frame's identity is
/// unknown).
pub fn expected_delivered(container_captures: &[PathBuf]) -> Result<u64, String> {
    Ok(distinct_frames(container_captures)?.len() as u64)
}

/// The distinct packets of [`expected_delivered`] themselves: for each, the
/// first frame of its group (timestamp and bytes), in time order.
pub fn distinct_frames(container_captures: &[PathBuf]) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut frames = Vec::new();
    for (capture, path) in container_captures.iter().enumerate() {
        let mut file = CaptureFile::open(path).map_err(|e| e.to_string())?;
        let mut number = 0u64;
        while let Some(packet) = file.next_packet().map_err(|e| e.to_string())? {
            number += 1;
            if packet.link != LinkKind::Ethernet {
                return Err(format!(
                    "{}: packet {number} is {:?}, not Ethernet: container captures are `tcpdump -i eth0`",
                    path.display(),
                    packet.link
                ));
            }
            if packet.data.len() != packet.original_len as usize {
                return Err(format!(
                    "{}: packet {number} is snapped ({} of {} bytes): record with -s 0",
                    path.display(),
                    packet.data.len(),
                    packet.original_len
                ));
            }
            frames.push(ContainerFrame {
                capture,
                timestamp_ns: packet.timestamp_ns,
                data: packet.data.to_vec(),
            });
        }
    }
    Ok(first_of_each_packet(&mut frames))
}

/// The connection an IPv4 Ethernet frame belongs to, as EVE names it: the
/// protocol (`TCP`, `UDP`, `ICMP`, or the number) and its two endpoints
/// (`ip:port`, or `ip` for protocols without ports), the lesser first, so
/// both directions give one key. Parsed here without any of ringsieve's
/// code; `None` for anything but an unfragmented IPv4 frame.
pub fn connection_key(frame: &[u8]) -> Option<(String, String, String)> {
    let (protocol, a, b) = frame_endpoints(frame)?;
    Some(if a <= b { (protocol, a, b) } else { (protocol, b, a) })
}

/// The protocol, source and destination of an IPv4 Ethernet frame, named as
/// in [`connection_key`] but in the frame's own direction.
pub fn frame_endpoints(frame: &[u8]) -> Option<(String, String, String)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let header = usize::from(ip[0] & 0x0f) * 4;
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if ip[0] >> 4 != 4 || header < 20 || ip.len() < header || fragment != 0 {
        return None;
    }
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let transport = &ip[header..];
    let (protocol, ports) = match ip[9] {
        6 => ("TCP".to_owned(), true),
        17 => ("UDP".to_owned(), true),
        1 => ("ICMP".to_owned(), false),
        other => (other.to_string(), false),
    };
    if ports {
        if transport.len() < 4 {
            return None;
        }
        let port = |at: usize| u16::from_be_bytes([transport[at], transport[at + 1]]);
        Some((protocol, format!("{src}:{}", port(0)), format!("{dst}:{}", port(2))))
    } else {
        Some((protocol, src.to_string(), dst.to_string()))
    }
}

/// One connection's packets in each direction, the client being the
/// endpoint that sent its first packet (as Suricata, and ringsieve's EVE
/// records, turn a flow to its earliest sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectedCounts {
    /// Packets from the client to the server (`pkts_toserver`).
    pub to_server: u64,
    /// Packets from the server to the client (`pkts_toclient`).
    pub to_client: u64,
}

/// The connections among `frames`, which must be in time order (as
/// [`distinct_frames`] gives them), keyed `(protocol, client, server)`
/// with endpoints named as in [`connection_key`], and their packets each
/// way. Parsed here without any of ringsieve's code.
pub fn directed_connections<'a>(
    frames: impl IntoIterator<Item = &'a [u8]>,
) -> BTreeMap<(String, String, String), DirectedCounts> {
    // By unordered key: the client (the first frame's source), the counts.
    let mut by_key: BTreeMap<(String, String, String), (String, DirectedCounts)> = BTreeMap::new();
    for frame in frames {
        let Some((protocol, src, dst)) = frame_endpoints(frame) else {
            continue;
        };
        let key = if src <= dst {
            (protocol, src.clone(), dst)
        } else {
            (protocol, dst, src.clone())
        };
        let (client, counts) = by_key
            .entry(key)
            .or_insert_with(|| (src.clone(), DirectedCounts::default()));
        if *client == src {
            counts.to_server += 1;
        } else {
            counts.to_client += 1;
        }
    }
    by_key
        .into_iter()
        .map(|((protocol, a, b), (client, counts))| {
            let server = if client == a { b } else { a };
            ((protocol, client, server), counts)
        })
        .collect()
}

/// The start of every application payload the traffic generator
/// (`ringsieve-traffic`) sends: this magic, then the message's 32-bit
/// sequence number.
pub const MESSAGE_MAGIC: &[u8; 4] = b"RSv1";

/// What the signature tests read of an IPv4 Ethernet frame, parsed here
/// without ringsieve's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameView<'a> {
    /// `TCP`, `UDP`, `ICMP` or the protocol number.
    pub protocol: String,
    /// The sender, `ip:port` (or `ip`).
    pub src: String,
    /// The receiver, `ip:port` (or `ip`).
    pub dst: String,
    /// TCP flags.
    pub tcp_flags: Option<u8>,
    /// ICMP type.
    pub icmp_type: Option<u8>,
    /// The transport payload (to the IP total length).
    pub payload: &'a [u8],
}

impl FrameView<'_> {
    /// The sequence number of the generator's message this payload starts
    /// with, if it starts with one.
    pub fn message(&self) -> Option<u32> {
        let rest = self.payload.strip_prefix(MESSAGE_MAGIC)?;
        Some(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?))
    }
}

/// The [`FrameView`] of an unfragmented IPv4 Ethernet frame.
pub fn frame_view(frame: &[u8]) -> Option<FrameView<'_>> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if ip[0] >> 4 != 4 || header < 20 || total < header || fragment != 0 {
        return None;
    }
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let transport = &ip[header..total];
    let port = |at: usize| u16::from_be_bytes([transport[at], transport[at + 1]]);
    let view = |protocol: &str, src: String, dst: String, payload_at: usize| FrameView {
        protocol: protocol.to_owned(),
        src,
        dst,
        tcp_flags: None,
        icmp_type: None,
        payload: transport.get(payload_at..).unwrap_or_default(),
    };
    match ip[9] {
        6 if transport.len() >= 20 => {
            let offset = usize::from(transport[12] >> 4) * 4;
            let mut tcp = view(
                "TCP",
                format!("{src}:{}", port(0)),
                format!("{dst}:{}", port(2)),
                offset,
            );
            tcp.tcp_flags = Some(transport[13]);
            Some(tcp)
        }
        17 if transport.len() >= 8 => Some(view(
            "UDP",
            format!("{src}:{}", port(0)),
            format!("{dst}:{}", port(2)),
            8,
        )),
        1 if transport.len() >= 8 => {
            let mut icmp = view("ICMP", src.to_string(), dst.to_string(), 8);
            icmp.icmp_type = Some(transport[0]);
            Some(icmp)
        }
        _ => None,
    }
}

/// Packets per connection ([`connection_key`]) among `frames`.
pub fn connections<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for frame in frames {
        if let Some(key) = connection_key(frame) {
            *out.entry(key).or_default() += 1;
        }
    }
    out
}

/// A set of byte-identical frames from different captures: one packet.
struct Group {
    first_ns: u64,
    captures: Vec<usize>,
}

fn first_of_each_packet(frames: &mut [ContainerFrame]) -> Vec<(u64, Vec<u8>)> {
    // Stable: frames of one capture at one instant keep their file order.
    frames.sort_by_key(|frame| frame.timestamp_ns);
    let mut open: HashMap<&[u8], Vec<Group>> = HashMap::new();
    let mut distinct = Vec::new();
    for frame in frames.iter() {
        let groups = open.entry(frame.data.as_slice()).or_default();
        // Frames come in time order: a group whose first frame is further
        // back than the window takes no more frames.
        groups.retain(|group| frame.timestamp_ns - group.first_ns <= MERGE_WINDOW_NS);
        match groups.iter_mut().find(|group| !group.captures.contains(&frame.capture)) {
            Some(group) => group.captures.push(frame.capture),
            None => {
                groups.push(Group {
                    first_ns: frame.timestamp_ns,
                    captures: vec![frame.capture],
                });
                distinct.push((frame.timestamp_ns, frame.data.clone()));
            }
        }
    }
    distinct
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::Duration;

    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::{DataLink, TsResolution};

    use super::*;
    use crate::FrameSpec;

    /// Writes an Ethernet pcap (nanosecond timestamps) of `(time in µs, frame)`.
    fn write_capture(dir: &Path, name: &str, frames: &[(u64, Vec<u8>)]) -> PathBuf {
        let path = dir.join(name);
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
        for (micros, data) in frames {
            let timestamp = Duration::from_secs(1_700_000_000) + Duration::from_micros(*micros);
            writer
                .write_packet(&PcapPacket::new(timestamp, data.len() as u32, data))
                .unwrap();
        }
        path
    }

    fn frame(sequence: u32) -> Vec<u8> {
        FrameSpec::default().build(sequence)
    }

    #[test]
    fn identical_frames_of_different_containers_are_one_packet() {
        let dir = tempfile::tempdir().unwrap();
        // c1 sends 1 and 2 to c2, c2 answers 3; each is out in one capture
        // and in in the other, 30-2000 µs apart, in either order.
        let c1 = write_capture(
            dir.path(),
            "c1.pcap",
            &[(0, frame(1)), (1_000, frame(2)), (5_030, frame(3))],
        );
        let c2 = write_capture(
            dir.path(),
            "c2.pcap",
            &[(30, frame(1)), (3_000, frame(2)), (5_000, frame(3))],
        );
        assert_eq!(expected_delivered(&[c1.clone(), c2.clone()]).unwrap(), 3);
        // A broadcast in three captures is one packet too.
        let c3 = write_capture(dir.path(), "c3.pcap", &[(60, frame(1))]);
        assert_eq!(expected_delivered(&[c1.clone(), c2, c3]).unwrap(), 3);
        // One capture alone: each frame once.
        assert_eq!(expected_delivered(&[c1]).unwrap(), 3);
    }

    #[test]
    fn a_frame_repeated_in_one_capture_counts_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = write_capture(
            dir.path(),
            "c1.pcap",
            &[(0, frame(7)), (200, frame(7)), (400, frame(7))],
        );
        assert_eq!(expected_delivered(std::slice::from_ref(&c1)).unwrap(), 3);
        // Seen twice on the other side too: two of the three merge, one pair
        // each, and the third stays its own packet.
        let c2 = write_capture(dir.path(), "c2.pcap", &[(50, frame(7)), (250, frame(7))]);
        assert_eq!(expected_delivered(&[c1, c2]).unwrap(), 3);
    }

    #[test]
    fn identical_frames_further_apart_than_the_window_are_two_packets() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = write_capture(dir.path(), "c1.pcap", &[(0, frame(9))]);
        let far = write_capture(dir.path(), "far.pcap", &[(20_001, frame(9))]);
        assert_eq!(expected_delivered(&[c1.clone(), far]).unwrap(), 2);
        let edge = write_capture(dir.path(), "edge.pcap", &[(20_000, frame(9))]);
        assert_eq!(expected_delivered(&[c1, edge]).unwrap(), 1);
    }

    #[test]
    fn different_frames_at_the_same_time_are_different_packets() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = write_capture(dir.path(), "c1.pcap", &[(0, frame(1))]);
        let c2 = write_capture(dir.path(), "c2.pcap", &[(0, frame(2))]);
        assert_eq!(expected_delivered(&[c1, c2]).unwrap(), 2);
        assert_eq!(expected_delivered(&[]).unwrap(), 0);
    }

    #[test]
    fn snapped_and_cooked_captures_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapped.pcap");
        let mut writer = PcapWriter::new(File::create(&path).unwrap()).unwrap();
        let data = frame(1);
        writer
            .write_packet(&PcapPacket::new(Duration::from_secs(1), data.len() as u32 + 10, &data))
            .unwrap();
        drop(writer);
        let error = expected_delivered(&[path]).unwrap_err();
        assert!(error.contains("snapped"), "{error}");

        let path = dir.path().join("cooked.pcap");
        let header = PcapHeader {
            datalink: DataLink::LINUX_SLL2,
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
        let mut cooked = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0x42, 0xac, 0x11, 0, 2, 0, 0,
        ];
        cooked.extend_from_slice(&data[14..]);
        writer
            .write_packet(&PcapPacket::new(Duration::from_secs(1), cooked.len() as u32, &cooked))
            .unwrap();
        drop(writer);
        let error = expected_delivered(std::slice::from_ref(&path)).unwrap_err();
        assert!(error.contains("not Ethernet"), "{error}");
        // As a host capture it is fine: one packet on ifindex 3.
        assert_eq!(host_counts(&path).unwrap(), (1, vec![("ifindex3".to_owned(), 1)]));
    }

    #[test]
    fn directed_connections_take_the_first_sender_as_client() {
        let spec = |src_ip, src_port, dst_ip, dst_port| FrameSpec {
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            ..FrameSpec::default()
        };
        let (a, b) = ([172, 17, 0, 5], [198, 18, 0, 1]);
        let request = spec(a, 40_000, b, 53);
        let reply = spec(b, 53, a, 40_000);
        let other = spec(a, 40_001, b, 53);
        let frames = [
            request.build(1),
            reply.build(2),
            request.build(3),
            other.build(4),
            // Not IPv4: ignored.
            vec![0u8; 60],
        ];
        let directed = directed_connections(frames.iter().map(Vec::as_slice));
        let key = |client: &str, server: &str| ("UDP".to_owned(), client.to_owned(), server.to_owned());
        assert_eq!(
            directed,
            BTreeMap::from([
                (
                    key("172.17.0.5:40000", "198.18.0.1:53"),
                    DirectedCounts {
                        to_server: 2,
                        to_client: 1
                    }
                ),
                (
                    key("172.17.0.5:40001", "198.18.0.1:53"),
                    DirectedCounts {
                        to_server: 1,
                        to_client: 0
                    }
                ),
            ])
        );
        // The first frame decides: the same frames led by the reply make
        // the other end the client.
        let turned = directed_connections([reply.build(2), request.build(1)].iter().map(Vec::as_slice));
        assert_eq!(
            turned,
            BTreeMap::from([(
                key("198.18.0.1:53", "172.17.0.5:40000"),
                DirectedCounts {
                    to_server: 1,
                    to_client: 1
                }
            )])
        );
        // Undirected, both connections count every packet.
        let undirected = connections(frames.iter().map(Vec::as_slice));
        assert_eq!(undirected.values().copied().collect::<Vec<_>>(), vec![3, 1]);
    }

    #[test]
    fn host_interfaces_get_roles_from_their_names() {
        let links = r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":12,"ifname":"eth0"},
            {"ifindex":2,"ifname":"docker0"},{"ifindex":3,"ifname":"vethc1"},{"ifindex":4,"ifname":"vethc2"}]"#;
        let (roles, names) = host_interfaces(links).unwrap();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert_eq!(
            roles,
            pairs(&[
                ("ifindex1", "other"),
                ("ifindex2", "bridge"),
                ("ifindex3", "veth"),
                ("ifindex4", "veth"),
                ("ifindex12", "uplink"),
            ])
        );
        assert_eq!(names[4], ("ifindex12".to_owned(), "eth0".to_owned()));
        assert_eq!(role_of_interface("vethc"), "other");
        assert_eq!(role_of_interface("vethcx"), "other");
        assert!(host_interfaces("{}").is_err());
    }

    #[test]
    fn manifests_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Fixture {
            case: "c2c-tcp".into(),
            dir: dir.path().to_path_buf(),
            manifest: dir.path().join("c2c-tcp.json"),
            host_capture: dir.path().join("c2c-tcp.pcap"),
            container_captures: vec![dir.path().join("c2c-tcp.c1.pcap"), dir.path().join("c2c-tcp.c2.pcap")],
            roles: vec![
                ("ifindex2".into(), "bridge".into()),
                ("ifindex10".into(), "veth".into()),
            ],
            names: vec![
                ("ifindex2".into(), "docker0".into()),
                ("ifindex10".into(), "vethc1".into()),
            ],
            docker0_promisc: true,
            tso_off: false,
            expected_delivered: 42,
            host_copies: 126,
            host_per_interface: vec![("ifindex2".into(), 42), ("ifindex10".into(), 84)],
            filter: "ip and tcp port 5000".into(),
            traffic: "c2c-tcp".into(),
            kernel: "6.18".into(),
        };
        let json = fixture.to_json();
        assert_eq!(json["container_captures"][1], "c2c-tcp.c2.pcap");
        std::fs::write(&fixture.manifest, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        let loaded = load_all(dir.path()).unwrap();
        assert_eq!(loaded, vec![fixture.clone()]);
        assert_eq!(loaded[0].role("ifindex10"), Some(InterfaceRole::ContainerVeth));
        assert_eq!(loaded[0].name("ifindex2"), Some("docker0"));
        assert_eq!(loaded[0].role("ifindex3"), None);

        let mut bad = json.clone();
        bad["roles"]["ifindex2"] = json!("switch");
        std::fs::write(&fixture.manifest, bad.to_string()).unwrap();
        let error = load_all(dir.path()).unwrap_err();
        assert!(error.contains("switch"), "{error}");
        let mut bad = json;
        bad.as_object_mut().unwrap().remove("expected_delivered");
        std::fs::write(&fixture.manifest, bad.to_string()).unwrap();
        let error = load_all(dir.path()).unwrap_err();
        assert!(error.contains("expected_delivered"), "{error}");
    }
}
