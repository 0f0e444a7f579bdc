//! The parsed form of one signature: its header (action, protocol,
//! addresses, ports, direction), its metadata (msg, sid, classtype, ...)
//! and its detection elements, in the order the matcher evaluates them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use memchr::memmem;

use crate::addr::{AddrExpr, PortExpr};
use crate::classification::Classification;

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Raise an alert.
    Alert,
    /// Let the packet through: suppresses every alert of the packet, as
    /// Suricata's default action order evaluates `pass` before `alert`.
    Pass,
}

/// The protocol a rule header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleProto {
    /// Any IP packet.
    Ip,
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// ICMPv4 and ICMPv6, as Suricata's `icmp`.
    Icmp,
}

/// A rule's place of origin, for warnings and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file it was read from (or the name given to an in-memory text).
    pub file: PathBuf,
    /// The line where the rule starts (1-based).
    pub line: usize,
}

/// One loaded signature. The metadata fields are public; the detection
/// elements are the engine's own.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The action.
    pub action: Action,
    /// The header protocol.
    pub proto: RuleProto,
    /// Signature id.
    pub sid: u32,
    /// Generator id (1 unless the rule says otherwise).
    pub gid: u32,
    /// Revision (0 unless the rule says otherwise).
    pub rev: u32,
    /// The alert message.
    pub msg: Arc<str>,
    /// The rule's class, from the classification table.
    pub classtype: Option<Classification>,
    /// The priority: the rule's `priority`, else its class's, else 3.
    pub priority: u8,
    /// `reference` values, as written.
    pub references: Vec<String>,
    /// `metadata` values, as written.
    pub metadata: Vec<String>,
    /// Where the rule was read.
    pub origin: Origin,
    pub(crate) src: AddrExpr,
    pub(crate) src_ports: PortExpr,
    pub(crate) dst: AddrExpr,
    pub(crate) dst_ports: PortExpr,
    pub(crate) bidirectional: bool,
    pub(crate) payload: Vec<PayloadElem>,
    pub(crate) dsize: Option<NumCmp>,
    pub(crate) flags: Option<TcpFlagsMatch>,
    pub(crate) flow: FlowOpts,
    pub(crate) flowbits: Vec<FlowbitCmd>,
    pub(crate) noalert: bool,
    pub(crate) threshold: Option<Threshold>,
    pub(crate) itype: Option<NumCmp>,
    pub(crate) icode: Option<NumCmp>,
    pub(crate) ttl: Option<NumCmp>,
    /// The prefilter pattern and whether it is matched without case.
    pub(crate) fast_pattern: Option<(Vec<u8>, bool)>,
}

impl Rule {
    /// Whether the rule inspects payload bytes (content, pcre, byte_test,
    /// byte_jump or isdataat).
    pub fn inspects_payload(&self) -> bool {
        !self.payload.is_empty()
    }

    /// The rule's fast pattern, if it has one: the bytes the prefilter looks
    /// for, and whether without case.
    pub fn fast_pattern(&self) -> Option<(&[u8], bool)> {
        self.fast_pattern.as_ref().map(|(p, nocase)| (p.as_slice(), *nocase))
    }

    pub(crate) fn header_matches(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, has_ports: bool) -> bool {
        let ports_ok = |sp: &PortExpr, dp: &PortExpr, s: u16, d: u16| {
            if has_ports {
                sp.matches(s) && dp.matches(d)
            } else {
                sp.is_any() && dp.is_any()
            }
        };
        let forward =
            self.src.matches(src) && self.dst.matches(dst) && ports_ok(&self.src_ports, &self.dst_ports, sport, dport);
        forward
            || (self.bidirectional
                && self.src.matches(dst)
                && self.dst.matches(src)
                && ports_ok(&self.src_ports, &self.dst_ports, dport, sport))
    }
}

/// A detection element on the payload (or stream) buffer, in rule order.
#[derive(Clone, Debug)]
pub(crate) enum PayloadElem {
    /// Boxed: the compiled finder makes it several times larger than the
    /// others.
    Content(Box<Content>),
    Pcre(Pcre),
    ByteTest(ByteTest),
    ByteJump(ByteJump),
    IsDataAt(IsDataAt),
}

impl PayloadElem {
    /// Whether the element's position depends on the previous match.
    pub(crate) fn is_relative(&self) -> bool {
        match self {
            PayloadElem::Content(c) => c.is_relative(),
            PayloadElem::Pcre(p) => p.relative,
            PayloadElem::ByteTest(b) => b.relative,
            PayloadElem::ByteJump(b) => b.relative,
            PayloadElem::IsDataAt(i) => i.relative,
        }
    }
}

/// `content` and its modifiers.
#[derive(Clone, Debug)]
pub(crate) struct Content {
    /// The bytes; lower-cased when `nocase`.
    pub(crate) pattern: Vec<u8>,
    pub(crate) nocase: bool,
    pub(crate) negated: bool,
    pub(crate) offset: Option<u32>,
    pub(crate) depth: Option<u32>,
    pub(crate) distance: Option<i32>,
    pub(crate) within: Option<u32>,
    pub(crate) startswith: bool,
    pub(crate) endswith: bool,
    /// `fast_pattern` with its optional `offset,length` slice; `only` is
    /// recorded as a plain mark (the content is still verified).
    pub(crate) fast_pattern: Option<Option<(usize, usize)>>,
    pub(crate) finder: Option<memmem::Finder<'static>>,
}

impl Content {
    pub(crate) fn new(pattern: Vec<u8>, negated: bool) -> Content {
        Content {
            pattern,
            nocase: false,
            negated,
            offset: None,
            depth: None,
            distance: None,
            within: None,
            startswith: false,
            endswith: false,
            fast_pattern: None,
            finder: None,
        }
    }

    pub(crate) fn is_relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }

    /// Lower-cases a `nocase` pattern and builds the case-sensitive finder.
    pub(crate) fn finish(&mut self) {
        if self.nocase {
            self.pattern.make_ascii_lowercase();
            self.finder = None;
        } else {
            self.finder = Some(memmem::Finder::new(&self.pattern).into_owned());
        }
    }

    /// The first occurrence of the pattern in `hay`.
    pub(crate) fn find(&self, hay: &[u8]) -> Option<usize> {
        if let Some(f) = &self.finder {
            return f.find(hay);
        }
        let n = self.pattern.len();
        let first = self.pattern[0];
        let upper = first.to_ascii_uppercase();
        let mut start = 0;
        while start + n <= hay.len() {
            let i = start + memchr::memchr2(first, upper, &hay[start..=hay.len() - n])?;
            if hay[i..i + n].eq_ignore_ascii_case(&self.pattern) {
                return Some(i);
            }
            start = i + 1;
        }
        None
    }
}

/// `pcre`, compiled with the `regex` crate's bytes API.
#[derive(Clone, Debug)]
pub(crate) struct Pcre {
    pub(crate) regex: regex::bytes::Regex,
    pub(crate) negated: bool,
    pub(crate) relative: bool,
}

/// How a `byte_test`/`byte_jump` reads its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumberFormat {
    Big,
    Little,
    /// ASCII digits in the given base.
    String(u32),
}

/// `byte_test` operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ByteOp {
    Lt,
    Gt,
    Eq,
    Le,
    Ge,
    And,
    Xor,
}

#[derive(Clone, Debug)]
pub(crate) struct ByteTest {
    pub(crate) nbytes: usize,
    pub(crate) op: ByteOp,
    pub(crate) negate: bool,
    pub(crate) value: u64,
    pub(crate) offset: i32,
    pub(crate) relative: bool,
    pub(crate) format: NumberFormat,
    pub(crate) bitmask: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct ByteJump {
    pub(crate) nbytes: usize,
    pub(crate) offset: i32,
    pub(crate) relative: bool,
    pub(crate) multiplier: u64,
    pub(crate) format: NumberFormat,
    pub(crate) align: bool,
    pub(crate) from_beginning: bool,
    pub(crate) from_end: bool,
    pub(crate) post_offset: i64,
    pub(crate) bitmask: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct IsDataAt {
    pub(crate) n: u32,
    pub(crate) negated: bool,
    pub(crate) relative: bool,
}

/// A numeric comparison: `dsize`, `itype`, `icode`, `ttl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumCmp {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Gt(u64),
    Le(u64),
    Ge(u64),
    /// Exclusive range `a<>b`.
    Between(u64, u64),
}

impl NumCmp {
    pub(crate) fn matches(self, v: u64) -> bool {
        match self {
            NumCmp::Eq(n) => v == n,
            NumCmp::Ne(n) => v != n,
            NumCmp::Lt(n) => v < n,
            NumCmp::Gt(n) => v > n,
            NumCmp::Le(n) => v <= n,
            NumCmp::Ge(n) => v >= n,
            NumCmp::Between(a, b) => a < v && v < b,
        }
    }
}

/// `flags` modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlagsMode {
    /// Exactly these flags (after the mask).
    Exact,
    /// `+`: these and maybe others.
    All,
    /// `*`: any of these.
    Any,
    /// `!`: none of these.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpFlagsMatch {
    pub(crate) mode: FlagsMode,
    pub(crate) flags: u8,
    /// Flags ignored in the comparison.
    pub(crate) ignore: u8,
}

impl TcpFlagsMatch {
    pub(crate) fn matches(&self, pkt: u8) -> bool {
        let pkt = pkt & !self.ignore;
        match self.mode {
            FlagsMode::Exact => pkt == self.flags,
            FlagsMode::All => pkt & self.flags == self.flags,
            FlagsMode::Any => pkt & self.flags != 0,
            FlagsMode::None => pkt & self.flags == 0,
        }
    }
}

/// `flow` options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlowOpts {
    /// `Some(true)`: to_server; `Some(false)`: to_client.
    pub(crate) to_server: Option<bool>,
    /// `Some(true)`: established; `Some(false)`: not_established.
    pub(crate) established: Option<bool>,
    pub(crate) only_stream: bool,
    pub(crate) no_stream: bool,
}

/// One `flowbits` keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FlowbitCmd {
    Set(Vec<Arc<str>>),
    Unset(Vec<Arc<str>>),
    Toggle(Vec<Arc<str>>),
    /// `any`: the names were joined with `|`.
    IsSet {
        names: Vec<Arc<str>>,
        any: bool,
    },
    IsNotSet {
        names: Vec<Arc<str>>,
        any: bool,
    },
}

/// Whose address a threshold counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// The packet's source address.
    BySrc,
    /// The packet's destination address.
    ByDst,
    /// The pair of addresses.
    ByBoth,
    /// One counter for the rule.
    ByRule,
}

/// `threshold` types, and `detection_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThresholdKind {
    Limit,
    Threshold,
    Both,
    DetectionFilter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Threshold {
    pub(crate) kind: ThresholdKind,
    pub(crate) track: Track,
    pub(crate) count: u32,
    pub(crate) seconds: u32,
}
