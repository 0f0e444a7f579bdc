//! What the caller hands the engine per packet ([`Packet`], with the
//! flow's [`FlowState`]), what it gets back ([`Verdict`] of [`Match`]es),
//! and the per-worker [`Detector`] that owns threshold counters, the stream
//! memory account and the scratch space of the prefilter.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::inspect::DEFAULT_INSPECTION_LIMIT;
use crate::rule::Action;
use crate::stream::{StreamConfig, StreamMemory, StreamReassembler, DEFAULT_STREAM_MEMCAP};
use crate::threshold::{ThresholdTable, DEFAULT_THRESHOLD_ENTRIES};
use crate::RuleSet;

/// The packet's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMPv4.
    Icmp,
    /// ICMPv6 (matched by `icmp` rules, as in Suricata).
    Icmpv6,
    /// Any other IP protocol number.
    Other(u8),
}

impl Protocol {
    pub(crate) fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

/// The packet's direction within its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that opened the flow) to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// Per-flow detection state the caller keeps with its flow: the flowbits.
///
/// Names are stored as strings, so the state stays valid across a rule
/// reload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    bits: Vec<Arc<str>>,
}

impl FlowState {
    /// An empty state.
    pub fn new() -> FlowState {
        FlowState::default()
    }

    /// Whether flowbit `name` is set.
    pub fn is_set(&self, name: &str) -> bool {
        self.bits.iter().any(|b| &**b == name)
    }

    /// Sets flowbit `name`.
    pub fn set(&mut self, name: &str) {
        if !self.is_set(name) {
            self.bits.push(Arc::from(name));
        }
    }

    pub(crate) fn set_shared(&mut self, name: &Arc<str>) {
        if !self.is_set(name) {
            self.bits.push(name.clone());
        }
    }

    /// Clears flowbit `name`.
    pub fn unset(&mut self, name: &str) {
        self.bits.retain(|b| &**b != name);
    }

    pub(crate) fn toggle(&mut self, name: &Arc<str>) {
        if self.is_set(name) {
            self.unset(name);
        } else {
            self.set_shared(name);
        }
    }

    /// The flowbits set, in the order they were set.
    pub fn bits(&self) -> impl Iterator<Item = &str> {
        self.bits.iter().map(|b| &**b)
    }
}

/// One packet as the matcher sees it; the caller fills it from its parsed
/// headers. Fields that do not apply (ports of ICMP, flags of UDP) are 0.
#[derive(Debug)]
pub struct Packet<'a> {
    /// The transport protocol.
    pub proto: Protocol,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP, UDP).
    pub src_port: u16,
    /// Destination port (TCP, UDP).
    pub dst_port: u16,
    /// TCP flags byte (FIN 0x01 ... CWR 0x80).
    pub tcp_flags: u8,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The transport payload.
    pub payload: &'a [u8],
    /// The direction in the flow, when the flow is known.
    pub direction: Option<Direction>,
    /// Whether the flow is established (TCP: after the handshake; UDP:
    /// both directions seen).
    pub established: bool,
    /// Set when this packet's payload is fed to a [`StreamReassembler`]
    /// whose data the caller scans with
    /// [`RuleSet::match_stream`]: packet matching then skips the payload
    /// rules the stream scan covers (all but `flow:no_stream` and `dsize`
    /// ones), so a match is raised once.
    pub payload_in_stream: bool,
    /// The capture time, for threshold and detection_filter windows.
    pub timestamp: Duration,
    /// The flow's detection state (flowbits).
    pub flow: &'a mut FlowState,
}

impl<'a> Packet<'a> {
    /// A packet with ports, flags, ICMP fields and flow information zeroed
    /// (TTL 64): set the fields that apply.
    pub fn new(proto: Protocol, src: IpAddr, dst: IpAddr, payload: &'a [u8], flow: &'a mut FlowState) -> Packet<'a> {
        Packet {
            proto,
            src,
            dst,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            ttl: 64,
            payload,
            direction: None,
            established: false,
            payload_in_stream: false,
            timestamp: Duration::ZERO,
            flow,
        }
    }
}

/// A rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Signature id.
    pub sid: u32,
    /// Generator id.
    pub gid: u32,
    /// Revision.
    pub rev: u32,
    /// The rule's message.
    pub msg: Arc<str>,
    /// The rule's action.
    pub action: Action,
    /// The class name, if the rule has a classtype.
    pub classtype: Option<Arc<str>>,
    /// The class description.
    pub class_description: Option<Arc<str>>,
    /// The priority (EVE's `severity`): 1 is the most severe.
    pub priority: u8,
    /// For a stream match, the stream offset where the match ended.
    pub stream_offset: Option<u64>,
}

/// What matching one packet (or one stream chunk) produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Alerts to raise, in rule order.
    pub alerts: Vec<Match>,
    /// The `pass` rule that matched: when set, `alerts` is empty.
    pub pass: Option<Match>,
    /// Matches whose alert a threshold or detection_filter suppressed.
    pub suppressed: u32,
}

/// Settings of a [`Detector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Keys the threshold table may hold.
    pub threshold_entries: usize,
    /// The memory cap shared by this worker's streams.
    pub stream_memcap: usize,
    /// Reassembly settings of the streams this detector creates.
    pub stream: StreamConfig,
    /// Evaluation steps per rule and buffer (Suricata's
    /// `inspection-recursion-limit`).
    pub inspection_limit: u32,
}

impl Default for DetectorConfig {
    fn default() -> DetectorConfig {
        DetectorConfig {
            threshold_entries: DEFAULT_THRESHOLD_ENTRIES,
            stream_memcap: DEFAULT_STREAM_MEMCAP,
            stream: StreamConfig::default(),
            inspection_limit: DEFAULT_INSPECTION_LIMIT,
        }
    }
}

/// Counters of a [`Detector`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Packets matched.
    pub packets: u64,
    /// Stream chunks scanned.
    pub stream_chunks: u64,
    /// Rules the prefilter let through (summed).
    pub candidates: u64,
    /// Rule matches (before pass and thresholds).
    pub matches: u64,
    /// Alerts returned.
    pub alerts: u64,
    /// Packets a pass rule let through.
    pub passed: u64,
    /// Alerts suppressed by threshold or detection_filter.
    pub suppressed: u64,
    /// Evaluations cut by the inspection limit.
    pub inspection_limit_hits: u64,
}

/// One worker thread's detection state: threshold counters, the stream
/// memory account, scratch space and counters. The rule set itself is
/// shared (`Arc<RuleSet>`) between workers and swapped on reload.
#[derive(Debug)]
pub struct Detector {
    pub(crate) thresholds: ThresholdTable,
    pub(crate) memory: Arc<StreamMemory>,
    pub(crate) config: DetectorConfig,
    pub(crate) stats: DetectorStats,
    /// Prefilter scratch: the stamp of each pattern already seen in the
    /// current buffer, and the candidate rules.
    pub(crate) pattern_stamp: Vec<u32>,
    pub(crate) stamp: u32,
    pub(crate) candidates: Vec<u32>,
}

impl Detector {
    /// A detector with the given settings, its streams charged to an
    /// account of its own of `config.stream_memcap` bytes.
    pub fn new(config: DetectorConfig) -> Detector {
        Detector::with_memory(config, StreamMemory::new(config.stream_memcap))
    }

    /// A detector whose streams are charged to `memory`, an account the
    /// caller may share between the detectors of all its workers (one
    /// global cap); `config.stream_memcap` is then not used.
    pub fn with_memory(config: DetectorConfig, memory: Arc<StreamMemory>) -> Detector {
        Detector {
            thresholds: ThresholdTable::new(config.threshold_entries),
            memory,
            config,
            stats: DetectorStats::default(),
            pattern_stamp: Vec::new(),
            stamp: 0,
            candidates: Vec::new(),
        }
    }

    /// A reassembler for one direction of a new TCP flow, charged to this
    /// worker's memory account, keeping the window `rules` need.
    pub fn new_stream(&self, rules: &RuleSet, first_seq: u32) -> StreamReassembler {
        let mut config = self.config.stream;
        config.window = config.window.max(rules.stream_window());
        StreamReassembler::new(first_seq, config, self.memory.clone())
    }

    /// The memory account of this worker's streams.
    pub fn stream_memory(&self) -> &Arc<StreamMemory> {
        &self.memory
    }

    /// The counters.
    pub fn stats(&self) -> &DetectorStats {
        &self.stats
    }

    /// The threshold table.
    pub fn thresholds(&self) -> &ThresholdTable {
        &self.thresholds
    }
}

impl Default for Detector {
    fn default() -> Detector {
        Detector::new(DetectorConfig::default())
    }
}
