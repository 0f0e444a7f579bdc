//! A Suricata-format signature engine as a library: the rule-file parser,
//! an `aho-corasick` prefilter, full evaluation of packets and of
//! reassembled TCP streams, thresholds, flowbits, and the TCP stream
//! reassembler the stream matching reads from.
//!
//! Usage, per worker thread:
//!
//! ```
//! use std::sync::Arc;
//! use rules::{Detector, DetectorConfig, FlowState, Packet, Protocol, RuleSet, Vars};
//!
//! // Once (and on reload): HOME_NET from the host's container subnets.
//! let vars = Vars::with_home_net(["172.17.0.0/16"]);
//! let text = r#"alert tcp any any -> $HOME_NET 80 (msg:"admin"; flow:to_server; content:"/admin"; sid:1;)"#;
//! let (rules, report) = RuleSet::parse("inline.rules", text, &vars, &Default::default());
//! assert_eq!((report.loaded, report.skipped), (1, 0));
//! let rules = Arc::new(rules);
//!
//! // Per worker.
//! let mut det = Detector::new(DetectorConfig::default());
//!
//! // Per flow: the flowbits; per direction of a TCP flow: a reassembler.
//! let mut flow = FlowState::new();
//! let mut to_server = det.new_stream(&rules, 1000);
//!
//! // A packet whose payload also goes to the stream.
//! let payload = b"GET /adm";
//! let out = to_server.insert(1000, payload);
//! assert!(out.anomalies.is_empty());
//! let mut pkt = Packet::new(Protocol::Tcp, "10.0.0.1".parse().unwrap(), "172.17.0.2".parse().unwrap(), payload, &mut flow);
//! pkt.dst_port = 80;
//! pkt.direction = Some(rules::Direction::ToServer);
//! pkt.payload_in_stream = true;
//! assert!(rules.match_packet(&mut det, &mut pkt).alerts.is_empty());
//! assert!(rules.match_stream(&mut det, &mut pkt, &mut to_server).alerts.is_empty());
//!
//! // The next segment completes "/admin": one alert, from the stream.
//! let payload = b"in HTTP/1.1\r\n";
//! to_server.insert(1008, payload);
//! pkt.payload = payload;
//! let verdict = rules.match_stream(&mut det, &mut pkt, &mut to_server);
//! assert_eq!(verdict.alerts.len(), 1);
//! assert_eq!(verdict.alerts[0].sid, 1);
//! ```
//!
//! Modules: [`addr`] (address and port groups, variables), [`classification`]
//! (the classtype table), the parser (`RuleSet::load`, [`LoadReport`]), the
//! prefilter and evaluation ([`RuleSet::match_packet`],
//! [`RuleSet::match_stream`]), [`threshold`] and [`stream`] (reassembly).
//! PCRE support and its limits are listed in [`pcre`]: the `regex` crate
//! lacks backreferences, lookaround, atomic groups, possessive quantifiers,
//! recursion and conditionals, and the HTTP buffer flags (`U`, `H`, `P`,
//! `C`, `I`, `D`, `M`, `S`, `Y`, `V`, `W`, `Q`) name buffers this engine
//! does not have; rules using them are skipped with a warning.
//!
//! # Matching on a stream
//!
//! [`RuleSet::match_stream`] scans the data of a TCP direction as it
//! becomes contiguous, in chunks, with a window of the previous chunk kept
//! so that a match split across segments is found once. Positions are
//! stream offsets: `offset`, `depth`, `startswith` and absolute
//! `byte_test`/`byte_jump`/`isdataat` count from the first byte of the
//! direction, not of the packet. A match ends at the furthest byte it
//! needed (including the bytes a `byte_test`/`byte_jump` read and the byte
//! an `isdataat` asked for), and is raised by the chunk holding that byte.
//!
//! `endswith` means *at the end of the data available when the chunk was
//! scanned*: a content that ends a segment matches, even if more data
//! follows later; the end of the connection is not waited for.
//!
//! A negated relative content with `within`, or a negated relative
//! `isdataat`, that reaches past the data available is not decided until
//! the data arrives, or the direction ends ([`StreamReassembler::close`],
//! the depth): the match is then raised once, or not at all. This holds
//! for rules whose whole match fits the stream window
//! ([`RuleSet::stream_window`]); absolute negated checks (`depth`,
//! absolute `isdataat`), negated contents without `within`, negated pcres
//! and rules with an unbounded span are decided on the data scanned.

pub mod addr;
pub mod classification;
mod detect;
mod inspect;
mod parse;
pub mod pcre;
mod rule;
mod ruleset;
pub mod stream;
pub mod threshold;

pub use addr::{Cidr, Vars};
pub use classification::{Classification, ClassificationTable};
pub use detect::{Detector, DetectorConfig, DetectorStats, Direction, FlowState, Match, Packet, Protocol, Verdict};
pub use inspect::DEFAULT_INSPECTION_LIMIT;
pub use parse::{LoadError, LoadReport, Warning};
pub use rule::{Action, Origin, Rule, RuleProto, Track};
pub use ruleset::{RuleSet, MAX_RELATIVE_SPAN};
pub use stream::{InsertOutcome, StreamAnomaly, StreamConfig, StreamMemory, StreamReassembler, StreamStats};
