//! A synthetic Docker host's traffic as its interfaces show it: for `N`
//! flows (distinct TCP 5-tuples) between containers, the host and the
//! outside, every copy of every packet that the container veths, `docker0`
//! and the uplink `eth0` would capture, with the bytes, packet type and
//! kernel timestamp of each, in timestamp order. It feeds the dedup
//! benchmarks (`crates/flow/benches/sieve.rs`) and, through the
//! `ringsieve-docker-mix` binary, the pcapng files that `ringsieve read` and
//! `editcap -d` are timed on (`scripts/bench-read.sh`).
//!
//! It is a load model built from the measured ground truth
//! (`docs/docker-host-ground-truth.md` in the shared docs), not a network:
//! nothing is sent, and every packet is delivered by a correct dedup exactly
//! once, so a run's expected delivered count is [`MixConfig::packets`].
//!
//! # The host
//!
//! `containers` containers `c1..cK` at 172.17.0.2.., host-side veths
//! `vethc1..vethcK` (role container veth), the bridge `docker0` at
//! 172.17.0.1, the uplink `eth0` at [`UPLINK_IP`] with its peers in
//! 198.18.0.0/15. The first [`PUBLISHED_CONTAINERS`] containers publish port
//! 80 as `eth0` port 8000 + index (DNAT). Interface names give the roles
//! (`TapRole::from_interface_name`), packet types the directions.
//!
//! # The flows and their copies
//!
//! Each flow is one of four classes, drawn per flow with the weights of
//! [`MixConfig::class_weights`] (default 35 % container to container, 5 %
//! container to host, 40 % container to outside through MASQUERADE, 20 %
//! outside to a published port through DNAT: 2.6 copies per packet on
//! average). A packet of each class has these copies, in kernel order
//! (ground truth, docker0 not promiscuous):
//!
//! | class | request | reply | differs between copies |
//! |---|---|---|---|
//! | container to container | vethA in/OTHERHOST, vethB OUT | vethB in/OTHERHOST, vethA OUT | nothing |
//! | container to host | vethA in/OTHERHOST, docker0 in/HOST | docker0 OUT, vethA OUT | nothing |
//! | MASQUERADE | vethA in/OTHERHOST, docker0 in/HOST, eth0 OUT | eth0 in/HOST, docker0 OUT, vethA OUT | eth0 copy: MACs, source (dest for the reply) IP rewritten to the uplink's, TTL one lower after forwarding, checksums |
//! | published port (DNAT) | eth0 in/HOST, docker0 OUT, vethC OUT | vethC in/OTHERHOST, docker0 in/HOST, eth0 OUT | eth0 copy: MACs, dest (source for the reply) IP and port, TTL, checksums |
//!
//! Copies of one packet are 10 to 60 µs apart in kernel time each; in one
//! packet in 8 whose last two copies are docker0 OUT and a veth OUT, the
//! veth copy comes first (the ground truth saw docker0's copy after the
//! veth's sometimes).
//!
//! # Packets
//!
//! Each packet is one TCP segment (ACK+PSH) with a payload, frame sizes
//! drawn per packet like the simple IMIX: 7 in 12 from 64 to 127 bytes, 4 in
//! 12 of 576, 1 in 12 of 1514 (about 373 bytes on average). IPv4 and TCP
//! checksums are correct in every copy.
//!
//! The payload is random bytes ([`PayloadKind::Random`], the default), or
//! ([`PayloadKind::Http`]) each flow direction's [`HttpStream`]: HTTP/1.1
//! requests from the client, responses from the server, cut into the
//! direction's segments in order, so the bytes a reassembler puts together
//! are a keep-alive conversation. For that, in HTTP mode each flow
//! direction keeps one frame size (drawn with the same IMIX weights per
//! direction instead of per packet) and its sequence numbers advance by the
//! payload length (random mode advances them by 1448 whatever the length,
//! which leaves a hole after every short segment), and acknowledgments
//! follow the other direction's bytes. Packets visit the flows in rounds:
//! round `r` sends one packet on every flow, in a fixed shuffled order, the
//! request direction on even `(r + flow)`, the reply on odd (HTTP payloads:
//! on even and odd `r`, so every conversation starts with a request), each direction
//! with its own IP ID and sequence counters, so IP ID and sequence number
//! are unique per flow and direction and every flow stays live. Packets are
//! evenly spaced at the rate that makes [`MixConfig::copies_per_second`]
//! copies per second, so the packets of any 40 ms (the dedup table's
//! retention: two 20 ms windows) number `copies_per_second * 0.04 / 2.6`.
//!
//! The generator streams ([`DockerMix`] is an iterator): it keeps only the
//! copies of the last ~120 µs to put them in timestamp order, so files of
//! any size are written in constant memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use af_packet::{Direction, InterfaceRole, PacketType};

use crate::http_payload::HttpStream;
use crate::internet_checksum;

/// The uplink's address: the public side of MASQUERADE and DNAT.
pub const UPLINK_IP: [u8; 4] = [198, 18, 0, 2];
/// docker0's address, the containers' gateway.
pub const BRIDGE_IP: [u8; 4] = [172, 17, 0, 1];
/// Containers that publish port 80 (as uplink port 8000 + their index).
pub const PUBLISHED_CONTAINERS: u16 = 16;
/// First client port (Linux's default ephemeral range starts here).
pub const FIRST_CLIENT_PORT: u16 = 32768;
/// Client ports per client address (32768..=60999, Linux's default range).
pub const CLIENT_PORTS: u64 = 28232;
/// Most containers: each gets a /24 of outside peers of its own (see
/// [`DockerMix`]), and 198.18.0.0/15 holds 511 of them past the uplink's.
pub const MAX_CONTAINERS: u16 = 500;
/// 1 January 2026 00:00 UTC in nanoseconds: the default start of the mix.
pub const DEFAULT_START_NS: u64 = 1_767_225_600_000_000_000;

const BRIDGE_MAC: [u8; 6] = [0x02, 0x42, 0x5e, 0x00, 0x00, 0x01];
const UPLINK_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GATEWAY_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
/// Server ports of containers' services (container to container).
const SERVICE_PORTS: [u16; 5] = [80, 443, 5432, 6379, 8080];
/// Ports of outside servers (MASQUERADE).
const OUTSIDE_PORTS: [u16; 2] = [443, 80];
/// A service on the host (container to host).
const HOST_PORT: u16 = 9100;
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const TCP_LEN: usize = 20;
/// Headers of every frame: Ethernet, IPv4, TCP without options.
pub const HEADERS_LEN: usize = ETH_LEN + IPV4_LEN + TCP_LEN;
/// TTL of packets sent by containers and the host.
const LOCAL_TTL: u8 = 64;
/// TTL of packets from the outside as they reach the uplink.
const OUTSIDE_TTL: u8 = 57;

/// The kinds of traffic on a Docker host, by the path packets take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficClass {
    /// Bridged between two containers: 2 identical copies.
    ContainerToContainer,
    /// Between a container and a service on the host: 2 identical copies.
    ContainerToHost,
    /// From a container to the outside through MASQUERADE: 3 copies, the
    /// uplink's rewritten.
    Masquerade,
    /// From the outside to a published port through DNAT: 3 copies, the
    /// uplink's rewritten.
    PublishedPort,
}

impl TrafficClass {
    /// Every class, in the order of [`MixConfig::class_weights`].
    pub const ALL: [TrafficClass; 4] = [
        TrafficClass::ContainerToContainer,
        TrafficClass::ContainerToHost,
        TrafficClass::Masquerade,
        TrafficClass::PublishedPort,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            TrafficClass::ContainerToContainer => "container_to_container",
            TrafficClass::ContainerToHost => "container_to_host",
            TrafficClass::Masquerade => "masquerade",
            TrafficClass::PublishedPort => "published_port",
        }
    }

    /// Copies of each of its packets the host's interfaces capture.
    pub fn copies(self) -> u32 {
        match self {
            TrafficClass::ContainerToContainer | TrafficClass::ContainerToHost => 2,
            TrafficClass::Masquerade | TrafficClass::PublishedPort => 3,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the TCP payloads carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// Random bytes, a fresh draw per packet.
    #[default]
    Random,
    /// An HTTP/1.1 conversation per flow ([`HttpStream`]): requests to the
    /// server, responses to the client, contiguous in sequence space.
    Http,
}

impl PayloadKind {
    /// Its name in options and reports: `random` or `http`.
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Random => "random",
            PayloadKind::Http => "http",
        }
    }
}

impl std::str::FromStr for PayloadKind {
    type Err = MixError;

    fn from_str(text: &str) -> Result<Self, MixError> {
        match text {
            "random" => Ok(PayloadKind::Random),
            "http" => Ok(PayloadKind::Http),
            other => Err(MixError(format!("payload: {other:?} is not random or http"))),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixConfig {
    /// Distinct flows (5-tuples on the container side), at most
    /// `containers * CLIENT_PORTS`.
    pub flows: u64,
    /// Packets to generate (each with all its copies).
    pub packets: u64,
    /// Containers on the host, 2 to [`MAX_CONTAINERS`].
    pub containers: u16,
    /// Copies captured per second of kernel time: sets the packet spacing.
    pub copies_per_second: u64,
    /// Kernel timestamp of the first packet, nanoseconds since the epoch.
    pub start_ns: u64,
    /// Varies flow classes, sizes, payloads and copy delays.
    pub seed: u64,
    /// Relative weights of the classes, in [`TrafficClass::ALL`] order.
    pub class_weights: [u32; 4],
    /// Every frame this many bytes ([`HEADERS_LEN`] + 1 to 1514); `None`
    /// for the IMIX sizes.
    pub frame_len: Option<u16>,
    /// What the payloads carry.
    pub payload: PayloadKind,
}

impl Default for MixConfig {
    fn default() -> Self {
        Self {
            flows: 1_000_000,
            packets: 1_000_000,
            containers: 64,
            copies_per_second: 20_000_000,
            start_ns: DEFAULT_START_NS,
            seed: 1,
            class_weights: [35, 5, 40, 20],
            frame_len: None,
            payload: PayloadKind::Random,
        }
    }
}

/// A setting the generator cannot honour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixError(String);

impl fmt::Display for MixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MixError {}

/// An interface of the synthetic host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixInterface {
    /// Its name (`vethc1`, `docker0`, `eth0`), which gives its role.
    pub name: String,
    /// Its role.
    pub role: InterfaceRole,
}

/// One captured copy of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixCopy {
    /// Index into [`DockerMix::interfaces`].
    pub interface: usize,
    /// The kernel's packet type (OUTGOING for transmitted copies).
    pub packet_type: PacketType,
    /// Kernel timestamp, nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// The Ethernet frame.
    pub frame: Vec<u8>,
    /// The packet's number (0-based): copies of one packet share it.
    pub packet: u64,
    /// The class of its flow.
    pub class: TrafficClass,
}

impl MixCopy {
    /// Whether the copy entered or left its interface.
    pub fn direction(&self) -> Direction {
        self.packet_type.direction()
    }
}

/// An IPv4 address and TCP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint {
    ip: [u8; 4],
    port: u16,
}

/// One flow: its class, its client and server as the container side sees
/// them, and the public endpoint NAT puts on the uplink.
#[derive(Clone, Copy, Debug)]
struct Flow {
    class: TrafficClass,
    client: Endpoint,
    server: Endpoint,
    /// Container of the client (container classes) and of the server
    /// (container to container, published port), as indexes.
    client_container: u16,
    server_container: u16,
    /// MASQUERADE: the client as the uplink shows it. DNAT: the server as
    /// the uplink shows it.
    public: Endpoint,
}

/// The synthetic host's traffic: an iterator over every copy in timestamp
/// order (ties in generation order).
#[derive(Debug)]
pub struct DockerMix {
    config: MixConfig,
    interfaces: Vec<MixInterface>,
    /// Multiplier and offset of the per-round flow permutation.
    permutation: (u64, u64),
    /// Picoseconds between two packets.
    spacing_ps: u128,
    next_packet: u64,
    next_order: u64,
    /// Copies generated but not yet emitted, earliest first.
    pending: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<Option<MixCopy>>,
    free_slots: Vec<usize>,
}

impl DockerMix {
    /// A generator for `config`.
    pub fn new(config: MixConfig) -> Result<Self, MixError> {
        if !(2..=MAX_CONTAINERS).contains(&config.containers) {
            return Err(MixError(format!(
                "containers: {} is not within 2..={MAX_CONTAINERS}",
                config.containers
            )));
        }
        let most_flows = u64::from(config.containers) * CLIENT_PORTS;
        if config.flows == 0 || config.flows > most_flows {
            return Err(MixError(format!(
                "flows: {} is not within 1..={most_flows} (containers x {CLIENT_PORTS} client ports)",
                config.flows
            )));
        }
        if config.copies_per_second == 0 {
            return Err(MixError("copies_per_second: must be at least 1".into()));
        }
        if let Some(len) = config.frame_len {
            if !(HEADERS_LEN + 1..=1514).contains(&usize::from(len)) {
                return Err(MixError(format!(
                    "frame_len: {len} is outside {} to 1514 bytes",
                    HEADERS_LEN + 1
                )));
            }
        }
        if config.class_weights.iter().all(|&w| w == 0) {
            return Err(MixError("class_weights: at least one must be above 0".into()));
        }
        let mut interfaces: Vec<MixInterface> = (1..=config.containers)
            .map(|n| MixInterface {
                name: format!("vethc{n}"),
                role: InterfaceRole::ContainerVeth,
            })
            .collect();
        interfaces.push(MixInterface {
            name: "docker0".into(),
            role: InterfaceRole::Bridge,
        });
        interfaces.push(MixInterface {
            name: "eth0".into(),
            role: InterfaceRole::Uplink,
        });
        let flows = config.flows;
        let mut multiplier = (0x9e37_79b9_7f4a_7c15 % flows).max(1);
        while gcd(multiplier, flows) != 1 {
            multiplier += 1;
        }
        let permutation = (multiplier, mix64(config.seed) % flows);
        let weights: u64 = config.class_weights.iter().map(|&w| u64::from(w)).sum();
        let copies: u64 = TrafficClass::ALL
            .iter()
            .map(|c| u64::from(config.class_weights[c.index()]) * u64::from(c.copies()))
            .sum();
        // packets/s = copies/s * weights / copies, spacing = 1 / that.
        let spacing_ps =
            1_000_000_000_000u128 * u128::from(copies) / (u128::from(config.copies_per_second) * u128::from(weights));
        Ok(Self {
            config,
            interfaces,
            permutation,
            spacing_ps: spacing_ps.max(1),
            next_packet: 0,
            next_order: 0,
            pending: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &MixConfig {
        &self.config
    }

    /// The interfaces, by the index [`MixCopy::interface`] uses: the veths,
    /// then docker0, then eth0.
    pub fn interfaces(&self) -> &[MixInterface] {
        &self.interfaces
    }

    /// Copies per packet expected from the class weights.
    pub fn mean_copies_per_packet(&self) -> f64 {
        let weights: u32 = self.config.class_weights.iter().sum();
        let copies: u32 = TrafficClass::ALL
            .iter()
            .map(|c| self.config.class_weights[c.index()] * c.copies())
            .sum();
        f64::from(copies) / f64::from(weights)
    }

    /// Kernel time between the first packet of the mix and the packet after
    /// its last: where a replay of the same packets would start.
    pub fn span_ns(&self) -> u64 {
        (u128::from(self.config.packets) * self.spacing_ps / 1000) as u64
    }

    /// The kernel timestamp of packet `n`'s first copy.
    pub fn packet_time_ns(&self, n: u64) -> u64 {
        self.config.start_ns + (u128::from(n) * self.spacing_ps / 1000) as u64
    }

    /// The class of flow `flow` (0-based).
    pub fn class_of_flow(&self, flow: u64) -> TrafficClass {
        let weights = &self.config.class_weights;
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut pick = mix64(self.config.seed ^ flow.wrapping_mul(0xa076_1d64_78bd_642f)) % total;
        for class in TrafficClass::ALL {
            let weight = u64::from(weights[class.index()]);
            if pick < weight {
                return class;
            }
            pick -= weight;
        }
        unreachable!("pick < total")
    }

    /// The flow of packet `n` and whether it goes the reply way: random
    /// payloads alternate per flow (half the flows start with a reply),
    /// HTTP conversations start with the client's request (a tracker that
    /// picks a flow up mid-stream takes the first sender for the client).
    pub fn flow_of_packet(&self, n: u64) -> (u64, bool) {
        let flows = self.config.flows;
        let round = n / flows;
        let (multiplier, offset) = self.permutation;
        let flow = ((u128::from(n % flows) * u128::from(multiplier) + u128::from(offset)) % u128::from(flows)) as u64;
        let reply = match self.config.payload {
            PayloadKind::Random => (round + flow) % 2 == 1,
            PayloadKind::Http => round % 2 == 1,
        };
        (flow, reply)
    }

    fn flow(&self, f: u64) -> Flow {
        let class = self.class_of_flow(f);
        let containers = u64::from(self.config.containers);
        let h = mix64(self.config.seed.rotate_left(17) ^ f);
        // Client endpoints are unique per flow: (client index, port), the
        // index spreading flows over every container.
        let client_index = (f % containers) as u16;
        let client_port = FIRST_CLIENT_PORT + (f / containers) as u16;
        let client_container = client_index;
        // Outside peers: a /24 per client index, so that two flows of one
        // port from two containers never share a public tuple.
        let peer = outside_peer(client_index, (h >> 8) as u8);
        let container = |i: u16| Endpoint {
            ip: container_ip(i),
            port: 0,
        };
        match class {
            TrafficClass::ContainerToContainer => {
                let other = 1 + (h % (containers - 1)) as u16;
                let server_container = (client_container + other) % self.config.containers;
                let client = Endpoint {
                    port: client_port,
                    ..container(client_container)
                };
                let server = Endpoint {
                    port: SERVICE_PORTS[(h >> 32) as usize % SERVICE_PORTS.len()],
                    ..container(server_container)
                };
                Flow {
                    class,
                    client,
                    server,
                    client_container,
                    server_container,
                    public: client,
                }
            }
            TrafficClass::ContainerToHost => {
                let client = Endpoint {
                    port: client_port,
                    ..container(client_container)
                };
                Flow {
                    class,
                    client,
                    server: Endpoint {
                        ip: BRIDGE_IP,
                        port: HOST_PORT,
                    },
                    client_container,
                    server_container: client_container,
                    public: client,
                }
            }
            TrafficClass::Masquerade => Flow {
                class,
                client: Endpoint {
                    port: client_port,
                    ..container(client_container)
                },
                server: Endpoint {
                    ip: peer,
                    port: OUTSIDE_PORTS[(h >> 32) as usize % OUTSIDE_PORTS.len()],
                },
                client_container,
                server_container: client_container,
                public: Endpoint {
                    ip: UPLINK_IP,
                    port: client_port,
                },
            },
            TrafficClass::PublishedPort => {
                let published = PUBLISHED_CONTAINERS.min(self.config.containers);
                let server_container = (h % u64::from(published)) as u16;
                Flow {
                    class,
                    client: Endpoint {
                        ip: peer,
                        port: client_port,
                    },
                    server: Endpoint {
                        port: 80,
                        ..container(server_container)
                    },
                    client_container: server_container,
                    server_container,
                    public: Endpoint {
                        ip: UPLINK_IP,
                        port: 8000 + server_container,
                    },
                }
            }
        }
    }

    /// A frame length: the fixed one, or an IMIX draw from `h`.
    fn frame_len(&self, h: u64) -> usize {
        match (self.config.frame_len, h % 12) {
            (Some(len), _) => usize::from(len),
            (None, 0..=6) => 64 + ((h >> 8) % 64) as usize,
            (None, 7..=10) => 576,
            (None, _) => 1514,
        }
    }

    /// HTTP mode: the payload length of every segment of the flow
    /// direction whose sequence seed is `side`.
    fn payload_len_of_direction(&self, side: u64) -> usize {
        self.frame_len(mix64(side ^ self.config.seed ^ 0x51ce)) - HEADERS_LEN
    }

    /// Builds packet `n` and queues its copies.
    fn generate(&mut self, n: u64) {
        let (f, reply) = self.flow_of_packet(n);
        let flow = self.flow(f);
        let round = n / self.config.flows;
        let h = mix64(self.config.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5151);
        // Each direction sends on every other round: its packet count so far.
        let sent = round / 2;
        let side = mix64(f ^ if reply { 0xdead_beef } else { 0x1234_5678 });
        let other = mix64(f ^ if reply { 0x1234_5678 } else { 0xdead_beef });
        let (seq, ack, payload) = match self.config.payload {
            PayloadKind::Random => {
                let payload_len = self.frame_len(h) - HEADERS_LEN;
                let mut payload = Vec::with_capacity(payload_len);
                let mut fill = h;
                while payload.len() < payload_len {
                    fill = mix64(fill);
                    let take = (payload_len - payload.len()).min(8);
                    payload.extend_from_slice(&fill.to_le_bytes()[..take]);
                }
                (
                    (side >> 32) as u32 + (sent as u32).wrapping_mul(1448),
                    (other >> 32) as u32 + (sent as u32).wrapping_mul(1448),
                    payload,
                )
            }
            PayloadKind::Http => {
                // This direction has sent `sent` segments of its length
                // before; the other `(round + 1) / 2` of its own.
                let mine = self.payload_len_of_direction(side);
                let theirs = self.payload_len_of_direction(other);
                let stream = HttpStream::new(side ^ self.config.seed.rotate_left(29), !reply);
                let mut payload = Vec::with_capacity(mine);
                stream.fill(sent * mine as u64, mine, &mut payload);
                (
                    ((side >> 32) as u32).wrapping_add((sent as u32).wrapping_mul(mine as u32)),
                    ((other >> 32) as u32).wrapping_add((round.div_ceil(2) as u32).wrapping_mul(theirs as u32)),
                    payload,
                )
            }
        };
        let segment = Segment {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src: flow.client,
            dst: flow.server,
            ttl: LOCAL_TTL,
            ip_id: (side as u16).wrapping_add(sent as u16),
            seq,
            ack,
        };
        let segment = if reply { segment.reversed() } else { segment };
        let veth = |c: u16| usize::from(c);
        let bridge = usize::from(self.config.containers);
        let uplink = bridge + 1;
        let client_mac = container_mac(flow.client_container);
        let server_mac = container_mac(flow.server_container);
        // (interface, packet type, frame) in kernel order.
        let copies: Vec<(usize, PacketType, Vec<u8>)> = match (flow.class, reply) {
            (TrafficClass::ContainerToContainer, false) => {
                let frame = segment.macs(client_mac, server_mac).frame(&payload);
                vec![
                    (veth(flow.client_container), PacketType::OtherHost, frame.clone()),
                    (veth(flow.server_container), PacketType::Outgoing, frame),
                ]
            }
            (TrafficClass::ContainerToContainer, true) => {
                let frame = segment.macs(server_mac, client_mac).frame(&payload);
                vec![
                    (veth(flow.server_container), PacketType::OtherHost, frame.clone()),
                    (veth(flow.client_container), PacketType::Outgoing, frame),
                ]
            }
            (TrafficClass::ContainerToHost, false) => {
                let frame = segment.macs(client_mac, BRIDGE_MAC).frame(&payload);
                vec![
                    (veth(flow.client_container), PacketType::OtherHost, frame.clone()),
                    (bridge, PacketType::Host, frame),
                ]
            }
            (TrafficClass::ContainerToHost, true) => {
                let frame = segment.macs(BRIDGE_MAC, client_mac).frame(&payload);
                vec![
                    (bridge, PacketType::Outgoing, frame.clone()),
                    (veth(flow.client_container), PacketType::Outgoing, frame),
                ]
            }
            (TrafficClass::Masquerade, false) => {
                let inside = segment.macs(client_mac, BRIDGE_MAC).frame(&payload);
                let mut public = segment.macs(UPLINK_MAC, GATEWAY_MAC);
                public.src = flow.public;
                public.ttl -= 1;
                vec![
                    (veth(flow.client_container), PacketType::OtherHost, inside.clone()),
                    (bridge, PacketType::Host, inside),
                    (uplink, PacketType::Outgoing, public.frame(&payload)),
                ]
            }
            (TrafficClass::Masquerade, true) => {
                let mut public = segment.macs(GATEWAY_MAC, UPLINK_MAC);
                public.ttl = OUTSIDE_TTL;
                public.dst = flow.public;
                let mut inside = segment.macs(BRIDGE_MAC, client_mac);
                inside.ttl = OUTSIDE_TTL - 1;
                let inside = inside.frame(&payload);
                vec![
                    (uplink, PacketType::Host, public.frame(&payload)),
                    (bridge, PacketType::Outgoing, inside.clone()),
                    (veth(flow.client_container), PacketType::Outgoing, inside),
                ]
            }
            (TrafficClass::PublishedPort, false) => {
                let mut public = segment.macs(GATEWAY_MAC, UPLINK_MAC);
                public.ttl = OUTSIDE_TTL;
                public.dst = flow.public;
                let mut inside = segment.macs(BRIDGE_MAC, server_mac);
                inside.ttl = OUTSIDE_TTL - 1;
                let inside = inside.frame(&payload);
                vec![
                    (uplink, PacketType::Host, public.frame(&payload)),
                    (bridge, PacketType::Outgoing, inside.clone()),
                    (veth(flow.server_container), PacketType::Outgoing, inside),
                ]
            }
            (TrafficClass::PublishedPort, true) => {
                let inside = segment.macs(server_mac, BRIDGE_MAC).frame(&payload);
                let mut public = segment.macs(UPLINK_MAC, GATEWAY_MAC);
                public.src = flow.public;
                public.ttl -= 1;
                vec![
                    (veth(flow.server_container), PacketType::OtherHost, inside.clone()),
                    (bridge, PacketType::Host, inside),
                    (uplink, PacketType::Outgoing, public.frame(&payload)),
                ]
            }
        };
        let base = self.packet_time_ns(n);
        let mut times = Vec::with_capacity(copies.len());
        let mut t = base;
        for i in 0..copies.len() {
            if i > 0 {
                t += 10_000 + (mix64(h ^ i as u64) % 50_001);
            }
            times.push(t);
        }
        // docker0 OUT then a veth OUT: the veth's copy first, 1 in 8.
        let last = copies.len() - 1;
        if copies[last - 1].0 == bridge
            && copies[last - 1].1 == PacketType::Outgoing
            && copies[last].1 == PacketType::Outgoing
            && (h >> 40) % 8 == 0
        {
            times.swap(last - 1, last);
        }
        for ((interface, packet_type, frame), timestamp_ns) in copies.into_iter().zip(times) {
            let copy = MixCopy {
                interface,
                packet_type,
                timestamp_ns,
                frame,
                packet: n,
                class: flow.class,
            };
            let slot = match self.free_slots.pop() {
                Some(slot) => {
                    self.slots[slot] = Some(copy);
                    slot
                }
                None => {
                    self.slots.push(Some(copy));
                    self.slots.len() - 1
                }
            };
            self.pending.push(Reverse((timestamp_ns, self.next_order, slot)));
            self.next_order += 1;
        }
    }
}

impl Iterator for DockerMix {
    type Item = MixCopy;

    fn next(&mut self) -> Option<MixCopy> {
        // Every copy of a later packet is at or after that packet's time:
        // a pending copy before it can go.
        while self.next_packet < self.config.packets {
            let next_time = self.packet_time_ns(self.next_packet);
            match self.pending.peek() {
                Some(Reverse((ts, _, _))) if *ts < next_time => break,
                _ => {
                    self.generate(self.next_packet);
                    self.next_packet += 1;
                }
            }
        }
        let Reverse((_, _, slot)) = self.pending.pop()?;
        self.free_slots.push(slot);
        self.slots[slot].take()
    }
}

/// A TCP segment as one tap point shows it.
#[derive(Clone, Copy, Debug)]
struct Segment {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Endpoint,
    dst: Endpoint,
    ttl: u8,
    ip_id: u16,
    seq: u32,
    ack: u32,
}

impl Segment {
    /// The same segment the other way (a reply built from a request's
    /// template: endpoints and sequence spaces swapped).
    fn reversed(self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            ..self
        }
    }

    fn macs(self, src: [u8; 6], dst: [u8; 6]) -> Self {
        Self {
            src_mac: src,
            dst_mac: dst,
            ..self
        }
    }

    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let len = HEADERS_LEN + payload.len();
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = [0u8; IPV4_LEN];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((IPV4_LEN + TCP_LEN + payload.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = self.ttl;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&self.src.ip);
        ip[16..20].copy_from_slice(&self.dst.ip);
        let checksum = internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&ip);
        let tcp_start = frame.len();
        frame.extend_from_slice(&self.src.port.to_be_bytes());
        frame.extend_from_slice(&self.dst.port.to_be_bytes());
        frame.extend_from_slice(&self.seq.to_be_bytes());
        frame.extend_from_slice(&self.ack.to_be_bytes());
        // Data offset 5, flags ACK+PSH, window 502, checksum, urgent.
        frame.extend_from_slice(&[0x50, 0x18, 0x01, 0xf6, 0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        debug_assert_eq!(frame.len(), len);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&self.src.ip);
        pseudo[4..8].copy_from_slice(&self.dst.ip);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&((TCP_LEN + payload.len()) as u16).to_be_bytes());
        let checksum = internet_checksum(&[&pseudo, &frame[tcp_start..]]);
        frame[tcp_start + 16..tcp_start + 18].copy_from_slice(&checksum.to_be_bytes());
        frame
    }
}

/// Container `index`'s address: 172.17.0.2 onwards.
fn container_ip(index: u16) -> [u8; 4] {
    let host = index + 2;
    [172, 17, (host >> 8) as u8, host as u8]
}

/// Container `index`'s MAC, Docker's 02:42 + its address.
fn container_mac(index: u16) -> [u8; 6] {
    let ip = container_ip(index);
    [0x02, 0x42, ip[0], ip[1], ip[2], ip[3]]
}

/// An outside peer: 198.18.1.0/24 for client index 0, and on, host `host`
/// (1..=254).
fn outside_peer(client_index: u16, host: u8) -> [u8; 4] {
    let block = u32::from(client_index) + 1 + (198 << 24 | 18 << 16) / 256;
    let net = block * 256;
    let [a, b, c, _] = net.to_be_bytes();
    [a, b, c, host.clamp(1, 254)]
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// splitmix64's finalizer.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// Source address and port, destination address and port.
    type Tuple = ([u8; 4], u16, [u8; 4], u16);

    fn small(flows: u64, packets: u64) -> DockerMix {
        small_with(flows, packets, PayloadKind::Random)
    }

    fn small_with(flows: u64, packets: u64, payload: PayloadKind) -> DockerMix {
        DockerMix::new(MixConfig {
            flows,
            packets,
            containers: 8,
            copies_per_second: 1_000_000,
            payload,
            ..MixConfig::default()
        })
        .unwrap()
    }

    const KINDS: [PayloadKind; 2] = [PayloadKind::Random, PayloadKind::Http];

    fn ipv4(frame: &[u8]) -> ([u8; 4], [u8; 4], u8, u16) {
        let ip = &frame[ETH_LEN..ETH_LEN + IPV4_LEN];
        (
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
            ip[8],
            u16::from_be_bytes([ip[4], ip[5]]),
        )
    }

    fn ports(frame: &[u8]) -> (u16, u16) {
        let tcp = &frame[ETH_LEN + IPV4_LEN..];
        (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        )
    }

    #[test]
    fn copies_come_in_timestamp_order_with_the_classes_copy_counts_and_valid_checksums() {
        for kind in KINDS {
            copies_in_order_with_counts_and_checksums(kind);
        }
    }

    fn copies_in_order_with_counts_and_checksums(kind: PayloadKind) {
        let mix = small_with(500, 3000, kind);
        let interfaces = mix.interfaces().to_vec();
        let copies: Vec<MixCopy> = mix.collect();
        assert!(copies.windows(2).all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
        let mut by_packet: HashMap<u64, Vec<&MixCopy>> = HashMap::new();
        for copy in &copies {
            by_packet.entry(copy.packet).or_default().push(copy);
            let frame = &copy.frame;
            assert!((64..=1514).contains(&frame.len()), "{}", frame.len());
            assert_eq!(internet_checksum(&[&frame[ETH_LEN..ETH_LEN + IPV4_LEN]]), 0);
            let (src, dst, _, _) = ipv4(frame);
            let tcp_len = frame.len() - ETH_LEN - IPV4_LEN;
            let mut pseudo = [0u8; 12];
            pseudo[0..4].copy_from_slice(&src);
            pseudo[4..8].copy_from_slice(&dst);
            pseudo[9] = 6;
            pseudo[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            assert_eq!(internet_checksum(&[&pseudo, &frame[ETH_LEN + IPV4_LEN..]]), 0);
        }
        assert_eq!(by_packet.len(), 3000, "every packet has copies");
        for group in by_packet.values() {
            let class = group[0].class;
            assert_eq!(group.len() as u32, class.copies(), "{class:?}");
            let first = group.iter().map(|c| c.timestamp_ns).min().unwrap();
            let last = group.iter().map(|c| c.timestamp_ns).max().unwrap();
            assert!((10_000..=120_000).contains(&(last - first)), "{}", last - first);
            let taps: HashSet<(usize, Direction)> = group.iter().map(|c| (c.interface, c.direction())).collect();
            assert_eq!(taps.len(), group.len(), "one copy per tap point");
            // Identical bytes on the container side; the uplink's copy is
            // rewritten (addresses, TTL) but keeps IP ID, length and payload.
            let inside: Vec<&&MixCopy> = group
                .iter()
                .filter(|c| interfaces[c.interface].role != InterfaceRole::Uplink)
                .collect();
            assert!(inside.windows(2).all(|w| w[0].frame == w[1].frame));
            if let Some(public) = group
                .iter()
                .find(|c| interfaces[c.interface].role == InterfaceRole::Uplink)
            {
                let private = inside[0];
                let (ps, pd, pttl, pid) = ipv4(&public.frame);
                let (cs, cd, cttl, cid) = ipv4(&private.frame);
                assert_eq!(pid, cid);
                assert_eq!(public.frame.len(), private.frame.len());
                assert_eq!(public.frame[HEADERS_LEN..], private.frame[HEADERS_LEN..]);
                assert_eq!(pttl.abs_diff(cttl), 1);
                assert!(ps == UPLINK_IP || pd == UPLINK_IP);
                assert!(cs != UPLINK_IP && cd != UPLINK_IP);
                assert!(matches!(class, TrafficClass::Masquerade | TrafficClass::PublishedPort));
            }
        }
    }

    #[test]
    fn every_flow_is_distinct_and_each_sends_both_ways_with_fresh_ip_ids() {
        for kind in KINDS {
            flows_distinct_with_fresh_ip_ids(kind);
        }
    }

    fn flows_distinct_with_fresh_ip_ids(kind: PayloadKind) {
        let flows = 700;
        let mix = small_with(flows, flows * 4, kind);
        let interfaces = mix.interfaces().to_vec();
        let mut tuples = HashSet::new();
        let mut ids = HashSet::new();
        let mut seen_packets = HashSet::new();
        for copy in mix {
            if interfaces[copy.interface].role == InterfaceRole::Uplink || !seen_packets.insert(copy.packet) {
                continue;
            }
            let (src, dst, _, ip_id) = ipv4(&copy.frame);
            let (sport, dport) = ports(&copy.frame);
            // One flow: both directions under one key.
            let key = if (src, sport) < (dst, dport) {
                (src, sport, dst, dport)
            } else {
                (dst, dport, src, sport)
            };
            tuples.insert(key);
            assert!(
                ids.insert((src, sport, dst, dport, ip_id)),
                "IP ID repeated in a direction"
            );
        }
        assert_eq!(tuples.len() as u64, flows, "one 5-tuple per flow");
    }

    #[test]
    fn http_payloads_are_each_directions_conversation_contiguous_in_sequence_space() {
        let mix = small_with(300, 300 * 12, PayloadKind::Http);
        let interfaces = mix.interfaces().to_vec();
        // Per direction (container-side tuple): (seq, payload) in order.
        let mut streams: HashMap<Tuple, Vec<(u32, Vec<u8>)>> = HashMap::new();
        let mut seen = HashSet::new();
        for copy in mix {
            if interfaces[copy.interface].role == InterfaceRole::Uplink || !seen.insert(copy.packet) {
                continue;
            }
            let (src, dst, _, _) = ipv4(&copy.frame);
            let (sport, dport) = ports(&copy.frame);
            let tcp = &copy.frame[ETH_LEN + IPV4_LEN..];
            let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
            let payload = copy.frame[HEADERS_LEN..].to_vec();
            assert!(payload
                .iter()
                .all(|&b| b == b'\r' || b == b'\n' || (0x20..0x7f).contains(&b)));
            streams
                .entry((src, sport, dst, dport))
                .or_default()
                .push((seq, payload));
        }
        assert_eq!(streams.len(), 600, "both directions of every flow");
        // Every conversation starts with the client's request.
        let mut first_of_flow = HashSet::new();
        for copy in small_with(300, 300, PayloadKind::Http) {
            let (_, dport) = ports(&copy.frame);
            let (src, dst, _, _) = ipv4(&copy.frame);
            if first_of_flow.insert(copy.packet) && interfaces[copy.interface].role != InterfaceRole::Uplink {
                assert!(
                    dport < FIRST_CLIENT_PORT,
                    "packet {} from {src:?} to {dst:?}",
                    copy.packet
                );
            }
        }
        let (mut requests, mut responses) = (0, 0);
        for ((_, _, _, dport), segments) in &streams {
            // One length per direction, and each segment starts where the
            // one before ended.
            let len = segments[0].1.len();
            assert!(segments.iter().all(|(_, p)| p.len() == len));
            assert!(segments.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(len as u32)));
            let bytes: Vec<u8> = segments.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let text = String::from_utf8(bytes).unwrap();
            // Client ports are ephemeral, servers' below them.
            if *dport < FIRST_CLIENT_PORT {
                assert!(text.starts_with("GET /") || text.starts_with("POST /"), "{text:.40}");
                requests += text.matches(" HTTP/1.1\r\nHost: ").count();
            } else {
                assert!(text.starts_with("HTTP/1.1 "), "{text:.40}");
                responses += text.matches("HTTP/1.1 ").count();
            }
        }
        assert!(
            requests > 300 && responses > 300,
            "{requests} requests, {responses} responses"
        );
    }

    #[test]
    fn a_mix_is_the_same_for_the_same_seed_and_differs_for_another() {
        for kind in KINDS {
            let frames = |seed: u64| -> Vec<Vec<u8>> {
                DockerMix::new(MixConfig {
                    flows: 50,
                    packets: 400,
                    containers: 8,
                    seed,
                    payload: kind,
                    ..MixConfig::default()
                })
                .unwrap()
                .map(|c| c.frame)
                .collect()
            };
            assert_eq!(frames(3), frames(3), "{kind:?}");
            assert_ne!(frames(3), frames(4), "{kind:?}");
        }
    }

    #[test]
    fn public_tuples_of_nat_flows_never_clash() {
        let mix = small(20_000, 20_000);
        let interfaces = mix.interfaces().to_vec();
        let mut by_public: HashMap<Tuple, Tuple> = HashMap::new();
        let mut inside_of_packet: HashMap<u64, Tuple> = HashMap::new();
        let copies: Vec<MixCopy> = mix.collect();
        for copy in &copies {
            if interfaces[copy.interface].role != InterfaceRole::Uplink {
                let (s, d, _, _) = ipv4(&copy.frame);
                let (sp, dp) = ports(&copy.frame);
                inside_of_packet.insert(copy.packet, (s, sp, d, dp));
            }
        }
        for copy in &copies {
            if interfaces[copy.interface].role == InterfaceRole::Uplink {
                let (s, d, _, _) = ipv4(&copy.frame);
                let (sp, dp) = ports(&copy.frame);
                let inside = inside_of_packet[&copy.packet];
                let previous = by_public.insert((s, sp, d, dp), inside);
                assert!(
                    previous.is_none() || previous == Some(inside),
                    "two flows behind one public tuple"
                );
            }
        }
        assert!(by_public.len() > 5000);
    }

    #[test]
    fn the_rate_sets_the_spacing_and_the_default_mix_has_2_6_copies_per_packet() {
        let mix = DockerMix::new(MixConfig::default()).unwrap();
        assert!((mix.mean_copies_per_packet() - 2.6).abs() < 1e-9);
        // 20 M copies/s at 2.6 copies per packet: 130 ns per packet.
        assert_eq!(mix.packet_time_ns(1_000) - mix.packet_time_ns(0), 130_000);
        assert_eq!(mix.span_ns(), 130_000_000);
        let copies = small(1000, 10_000).count();
        assert!((24_000..28_000).contains(&copies), "{copies}");
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let bad = |config: MixConfig| DockerMix::new(config).unwrap_err().to_string();
        assert!(bad(MixConfig {
            containers: 1,
            ..MixConfig::default()
        })
        .starts_with("containers"));
        assert!(bad(MixConfig {
            flows: 3 * CLIENT_PORTS,
            containers: 2,
            ..MixConfig::default()
        })
        .starts_with("flows"));
        assert!(bad(MixConfig {
            copies_per_second: 0,
            ..MixConfig::default()
        })
        .starts_with("copies_per_second"));
    }
}
