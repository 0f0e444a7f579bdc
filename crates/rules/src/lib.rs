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
//! PCRE support and its limits are described in the `pcre` module's source
//! documentation: the `regex` crate lacks backreferences, lookaround,
//! atomic groups and possessive quantifiers, and rules using them are
//! skipped with a warning.

pub mod addr;
pub mod classification;
mod detect;
mod inspect;
mod parse;
mod pcre;
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
