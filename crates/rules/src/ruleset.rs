//! A loaded, ordered rule set with its prefilter, and the two ways of
//! matching it: a packet's payload ([`RuleSet::match_packet`]) and the new
//! data of a reassembled stream ([`RuleSet::match_stream`]).
//!
//! Rule order, as Suricata's default: `pass` rules first, then rules that
//! set flowbits without checking any, then rules that check and set, then
//! rules that only check, then the rest; within each, by priority (1
//! first), then by file order. A matching `pass` rule ends the packet's
//! evaluation, so no alert is raised for it.
//!
//! The prefilter: the rules are split into protocol groups (TCP, UDP,
//! ICMP, other; `ip` rules are in all four). Each group has two
//! `aho-corasick` automata over its rules' fast patterns, one
//! case-sensitive and one ASCII case-insensitive (for `nocase` patterns).
//! A rule is a candidate when its fast pattern occurs in the buffer, or
//! always when it has none (no positive content). Candidates are evaluated
//! fully, in rule order.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::addr::Vars;
use crate::classification::ClassificationTable;
use crate::detect::{Detector, Match, Packet, Protocol, Verdict};
use crate::inspect::Inspection;
use crate::parse::{parse_text, LoadError, LoadReport, Warning};
use crate::rule::{Action, FlowbitCmd, PayloadElem, Rule, RuleProto};
use crate::stream::StreamReassembler;

/// The relative span (bytes between the start of a rule's first content
/// and the end of its last element) the stream window supports beyond the
/// longest content: chains that are unbounded (no `within`, a pcre, a
/// `byte_jump`) are only guaranteed to match across a chunk boundary when
/// they fit in this.
pub const MAX_RELATIVE_SPAN: usize = 1024;

/// Fast patterns being collected: the patterns, their index, and per
/// pattern the rules it stands for.
type PatternSet = (Vec<Vec<u8>>, HashMap<Vec<u8>, usize>, Vec<Vec<u32>>);

/// One automaton and, per pattern, the rules it stands for.
#[derive(Debug)]
struct Automaton {
    ac: AhoCorasick,
    rules: Vec<Vec<u32>>,
    /// The first index of this automaton's patterns in the detector's
    /// stamp array.
    stamp_base: usize,
}

/// The prefilter of one protocol group.
#[derive(Debug, Default)]
struct Group {
    automata: Vec<Automaton>,
    /// Rules without a fast pattern: always candidates.
    always: Vec<u32>,
    /// Rules with a fast pattern that packet matching evaluates even when
    /// the payload also goes to a stream (`dsize`, `flow:no_stream`).
    packet_payload: Vec<u32>,
}

/// How a stream chunk is evaluated.
#[derive(Clone, Copy, Debug)]
struct StreamBounds {
    /// The buffer index a match must end after.
    min_end: usize,
    /// Whether more data may follow the buffer.
    open: bool,
}

/// The outcome of evaluating one rule.
#[derive(Clone, Copy, Debug)]
struct Evaluation {
    /// The buffer index where the match ends, when it matched.
    end: Option<usize>,
    /// Whether a match could not be decided until more data arrives.
    undecided: bool,
}

impl Evaluation {
    const NO_MATCH: Evaluation = Evaluation {
        end: None,
        undecided: false,
    };
}

/// Most rules of [`Group::packet_payload`] evaluated without the
/// prefilter for a payload that also goes to a stream: beyond, scanning
/// the payload to pick among them is cheaper.
const PACKET_PAYLOAD_UNFILTERED: usize = 64;

/// Rules, ordered and indexed for matching. Immutable once built: share it
/// between workers with an `Arc` and swap the `Arc` on reload.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Per rule: whether a stream match of it may wait for more data (its
    /// span is bounded and fits the stream window, so the bytes it matched
    /// are still there when the data arrives or the stream ends).
    may_wait: Vec<bool>,
    groups: [Group; 4],
    patterns: usize,
    stream_window: usize,
}

fn group_of(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Icmp | Protocol::Icmpv6 => 2,
        Protocol::Other(_) => 3,
    }
}

fn proto_matches(rule: RuleProto, pkt: Protocol) -> bool {
    match rule {
        RuleProto::Ip => true,
        RuleProto::Tcp => pkt == Protocol::Tcp,
        RuleProto::Udp => pkt == Protocol::Udp,
        RuleProto::Icmp => matches!(pkt, Protocol::Icmp | Protocol::Icmpv6),
    }
}

/// The flowbits rank of the ordering (0 sorts first).
fn flowbits_rank(rule: &Rule) -> u8 {
    let sets = rule
        .flowbits
        .iter()
        .any(|f| matches!(f, FlowbitCmd::Set(_) | FlowbitCmd::Unset(_) | FlowbitCmd::Toggle(_)));
    let reads = rule
        .flowbits
        .iter()
        .any(|f| matches!(f, FlowbitCmd::IsSet { .. } | FlowbitCmd::IsNotSet { .. }));
    match (sets, reads) {
        (true, false) => 0,
        (true, true) => 1,
        (false, true) => 2,
        (false, false) => 3,
    }
}

/// How far (in bytes) one match of the rule may stretch, `None` when
/// unbounded.
fn rule_span(rule: &Rule) -> Option<usize> {
    let mut span = 0usize;
    let mut started = false;
    for e in &rule.payload {
        match e {
            PayloadElem::Content(c) if c.is_relative() => {
                let w = c.within? as usize;
                span += c.distance.unwrap_or(0).max(0) as usize + w;
            }
            PayloadElem::Content(c) if c.negated => {}
            PayloadElem::Content(c) => {
                if started {
                    return None;
                }
                span = c.pattern.len();
            }
            PayloadElem::Pcre(_) | PayloadElem::ByteJump(_) => return None,
            PayloadElem::ByteTest(b) if b.relative => span += b.offset.max(0) as usize + b.nbytes,
            PayloadElem::IsDataAt(d) if d.relative => span += d.n as usize,
            PayloadElem::ByteTest(_) | PayloadElem::IsDataAt(_) => {}
        }
        started = true;
    }
    Some(span)
}

impl RuleSet {
    /// Loads rule files with Suricata's standard classification table.
    /// Rules that do not parse are skipped and reported; a file that
    /// cannot be read is an error.
    pub fn load<P: AsRef<Path>>(files: &[P], vars: &Vars) -> Result<(RuleSet, LoadReport), LoadError> {
        RuleSet::load_with_classification(files, vars, &ClassificationTable::suricata_default())
    }

    /// Loads rule files with the given classification table.
    pub fn load_with_classification<P: AsRef<Path>>(
        files: &[P],
        vars: &Vars,
        classes: &ClassificationTable,
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let mut rules = Vec::new();
        let mut report = LoadReport::default();
        for f in files {
            let path = f.as_ref();
            let text = std::fs::read(path).map_err(|source| LoadError {
                path: path.to_path_buf(),
                source,
            })?;
            let text = String::from_utf8_lossy(&text);
            parse_text(path, &text, vars, classes, &mut rules, &mut report);
        }
        Ok(RuleSet::build(rules, report))
    }

    /// Parses rules from a string (`name` stands for the file in
    /// warnings), with the given classification table.
    pub fn parse(name: &str, text: &str, vars: &Vars, classes: &ClassificationTable) -> (RuleSet, LoadReport) {
        let mut rules = Vec::new();
        let mut report = LoadReport::default();
        parse_text(Path::new(name), text, vars, classes, &mut rules, &mut report);
        RuleSet::build(rules, report)
    }

    fn build(rules: Vec<Rule>, mut report: LoadReport) -> (RuleSet, LoadReport) {
        // Duplicates of (gid, sid): the higher rev stays, as Suricata.
        let mut by_id: HashMap<(u32, u32), usize> = HashMap::new();
        let mut kept: Vec<Option<Rule>> = Vec::with_capacity(rules.len());
        for rule in rules {
            let key = (rule.gid, rule.sid);
            let dup = match by_id.get(&key) {
                Some(&i) => {
                    let old = kept[i].as_ref().expect("kept rules are present");
                    if rule.rev > old.rev {
                        let old = kept[i].take().expect("present");
                        kept.push(Some(rule));
                        by_id.insert(key, kept.len() - 1);
                        Some(old)
                    } else {
                        Some(rule)
                    }
                }
                None => {
                    by_id.insert(key, kept.len());
                    kept.push(Some(rule));
                    None
                }
            };
            if let Some(d) = dup {
                report.loaded -= 1;
                report.skipped += 1;
                report.warnings.push(Warning {
                    file: d.origin.file.clone(),
                    line: d.origin.line,
                    keyword: Some("sid".to_string()),
                    message: format!(
                        "duplicate signature {}:{} (rev {}): the higher revision is kept",
                        d.gid, d.sid, d.rev
                    ),
                });
            }
        }
        let mut rules: Vec<Rule> = kept.into_iter().flatten().collect();
        rules.sort_by_key(|r| (r.action != Action::Pass, flowbits_rank(r), r.priority));

        let mut groups: [Group; 4] = Default::default();
        let mut patterns = 0;
        let mut longest = 0;
        let mut widest: Option<usize> = Some(0);
        for r in &rules {
            for e in &r.payload {
                if let PayloadElem::Content(c) = e {
                    longest = longest.max(c.pattern.len());
                }
            }
            widest = match (widest, rule_span(r)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        for (g, group) in groups.iter_mut().enumerate() {
            let members = rules.iter().enumerate().filter(|(_, r)| match r.proto {
                RuleProto::Ip => true,
                RuleProto::Tcp => g == 0,
                RuleProto::Udp => g == 1,
                RuleProto::Icmp => g == 2,
            });
            let mut sets: [PatternSet; 2] = Default::default();
            for (i, r) in members {
                match &r.fast_pattern {
                    None => group.always.push(i as u32),
                    Some((bytes, nocase)) => {
                        if !r.flow.only_stream && (r.flow.no_stream || r.dsize.is_some()) {
                            group.packet_payload.push(i as u32);
                        }
                        let (pats, index, owners) = &mut sets[usize::from(*nocase)];
                        let id = *index.entry(bytes.clone()).or_insert_with(|| {
                            pats.push(bytes.clone());
                            owners.push(Vec::new());
                            pats.len() - 1
                        });
                        owners[id].push(i as u32);
                    }
                }
            }
            for (nocase, (pats, _, owners)) in sets.into_iter().enumerate() {
                if pats.is_empty() {
                    continue;
                }
                let ac = AhoCorasickBuilder::new()
                    .ascii_case_insensitive(nocase == 1)
                    .match_kind(MatchKind::Standard)
                    .build(&pats)
                    .expect("fast patterns are non-empty byte strings");
                let n = pats.len();
                group.automata.push(Automaton {
                    ac,
                    rules: owners,
                    stamp_base: patterns,
                });
                patterns += n;
            }
        }
        let stream_window = match widest {
            Some(w) => w.max(longest),
            None => longest + MAX_RELATIVE_SPAN,
        }
        .min(longest + MAX_RELATIVE_SPAN);
        let may_wait = rules
            .iter()
            .map(|r| rule_span(r).is_some_and(|span| span <= stream_window))
            .collect();
        (
            RuleSet {
                rules,
                may_wait,
                groups,
                patterns,
                stream_window,
            },
            report,
        )
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many rules the set holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set holds no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The bytes of already-scanned stream data to keep so that a match
    /// straddling two chunks is found: the longest bounded span of a rule,
    /// at most the longest content plus [`MAX_RELATIVE_SPAN`].
    pub fn stream_window(&self) -> usize {
        self.stream_window
    }

    /// Fills `det.candidates` with the rules of `group` to evaluate on
    /// `buf`, in rule order.
    fn prefilter(&self, det: &mut Detector, group: usize, buf: &[u8]) {
        let g = &self.groups[group];
        det.candidates.clear();
        det.candidates.extend_from_slice(&g.always);
        if buf.is_empty() || g.automata.is_empty() {
            return;
        }
        if det.pattern_stamp.len() < self.patterns {
            det.pattern_stamp.resize(self.patterns, 0);
        }
        det.stamp = det.stamp.wrapping_add(1);
        if det.stamp == 0 {
            det.pattern_stamp.iter_mut().for_each(|s| *s = 0);
            det.stamp = 1;
        }
        let stamp = det.stamp;
        for a in &g.automata {
            for m in a.ac.find_overlapping_iter(buf) {
                let p = m.pattern().as_usize();
                let slot = &mut det.pattern_stamp[a.stamp_base + p];
                if *slot != stamp {
                    *slot = stamp;
                    det.candidates.extend_from_slice(&a.rules[p]);
                }
            }
        }
        if det.candidates.len() > g.always.len() {
            det.candidates.sort_unstable();
        }
    }

    /// Matches one packet: header, flow, flowbits and payload rules. See
    /// [`Packet::payload_in_stream`] for TCP payloads also fed to a
    /// [`StreamReassembler`].
    pub fn match_packet(&self, det: &mut Detector, pkt: &mut Packet<'_>) -> Verdict {
        det.stats.packets += 1;
        let group = &self.groups[group_of(pkt.proto)];
        if pkt.payload_in_stream && group.packet_payload.len() <= PACKET_PAYLOAD_UNFILTERED {
            // The stream scan covers the payload rules but these few: no
            // need to scan the payload to pick candidates.
            det.candidates.clear();
            det.candidates.extend_from_slice(&group.always);
            det.candidates.extend_from_slice(&group.packet_payload);
            det.candidates.sort_unstable();
        } else {
            self.prefilter(det, group_of(pkt.proto), pkt.payload);
        }
        let payload = pkt.payload;
        let mut verdict = Verdict::default();
        let candidates = std::mem::take(&mut det.candidates);
        for &ri in &candidates {
            let rule = &self.rules[ri as usize];
            if rule.flow.only_stream {
                continue;
            }
            let stream_covers = rule.inspects_payload() && !rule.flow.no_stream && rule.dsize.is_none();
            if pkt.payload_in_stream && stream_covers {
                continue;
            }
            if self.evaluate(det, rule, pkt, payload, 0, None).end.is_some()
                && self.raise(det, rule, pkt, &mut verdict, None)
            {
                break;
            }
        }
        det.candidates = candidates;
        verdict
    }

    /// Scans the stream data that became contiguous since the last call
    /// (with the kept window before it, so a pattern split across segments
    /// matches) and returns each match once: a match must end in the new
    /// data and after the rule's previous match in this stream. `pkt` is
    /// the packet whose segment made the data available: its header, flow
    /// state and timestamp are used; its payload is not.
    ///
    /// Rules without payload elements, with `dsize` or with
    /// `flow:no_stream` are packet rules and are not evaluated here.
    ///
    /// A match whose negated relative check (a negated content with
    /// `within`, a negated relative `isdataat`) reaches past the data
    /// scanned is not decided: the check could fail on data not arrived
    /// yet. It is decided by a later chunk (the match then ends where the
    /// check's window ends, in the new data), or, once the stream is
    /// finished ([`StreamReassembler::close`], or its depth reached), with
    /// the data there is. Either way it alerts at most once. This needs
    /// the rule's span to fit the stream window; other rules, absolute
    /// negated checks, negated contents without `within` and negated pcres
    /// are decided on the data scanned.
    pub fn match_stream(&self, det: &mut Detector, pkt: &mut Packet<'_>, stream: &mut StreamReassembler) -> Verdict {
        let mut verdict = Verdict::default();
        let mut reported: Vec<((u32, u32), u64)> = Vec::new();
        let mut pending: Vec<((u32, u32), Option<u64>)> = Vec::new();
        let open = !stream.is_finished();
        let mut passed = false;
        while stream.has_new_data() {
            det.stats.stream_chunks += 1;
            let (buf, base, new_start) = stream.scan_view();
            self.prefilter(det, group_of(Protocol::Tcp), buf);
            let candidates = std::mem::take(&mut det.candidates);
            for &ri in &candidates {
                let rule = &self.rules[ri as usize];
                if !rule.inspects_payload() || rule.flow.no_stream || rule.dsize.is_some() {
                    continue;
                }
                let key = (rule.gid, rule.sid);
                let last = reported
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == key)
                    .map(|(_, e)| *e)
                    .or_else(|| stream.last_reported(key));
                let min_end = last.map_or(new_start, |e| new_start.max(e.saturating_sub(base) as usize));
                let bounds = StreamBounds {
                    min_end,
                    open: open && self.may_wait[ri as usize],
                };
                let eval = self.evaluate(det, rule, pkt, buf, base, Some(bounds));
                let after = eval.undecided.then(|| base + eval.end.unwrap_or(min_end) as u64);
                pending.push((key, after));
                if let Some(end) = eval.end {
                    reported.push((key, base + end as u64));
                    if self.raise(det, rule, pkt, &mut verdict, Some(base + end as u64)) {
                        passed = true;
                        break;
                    }
                }
            }
            det.candidates = candidates;
            stream.mark_scanned();
            for (key, end) in reported.drain(..) {
                stream.set_reported(key, end);
            }
            for (key, after) in pending.drain(..) {
                stream.set_pending(key, after);
            }
            if passed {
                // The pass covers the data scanned; later data is scanned
                // at the next call.
                break;
            }
        }
        if !open && !passed && stream.has_pending() {
            self.decide_pending(det, pkt, stream, &mut verdict);
        }
        verdict
    }

    /// At the end of a stream, decides the matches that waited for more
    /// data, over the kept window, in rule order.
    fn decide_pending(
        &self,
        det: &mut Detector,
        pkt: &mut Packet<'_>,
        stream: &mut StreamReassembler,
        verdict: &mut Verdict,
    ) {
        let mut waiting: Vec<(usize, u64)> = stream
            .take_pending()
            .into_iter()
            .filter_map(|(key, after)| {
                let ri = self.rules.iter().position(|r| (r.gid, r.sid) == key)?;
                Some((ri, after))
            })
            .collect();
        waiting.sort_unstable();
        let mut reported = Vec::new();
        let (buf, base, _) = stream.scan_view();
        for (ri, after) in waiting {
            let rule = &self.rules[ri];
            let key = (rule.gid, rule.sid);
            let after = stream.last_reported(key).map_or(after, |e| e.max(after));
            let bounds = StreamBounds {
                min_end: after.saturating_sub(base) as usize,
                open: false,
            };
            if let Some(end) = self.evaluate(det, rule, pkt, buf, base, Some(bounds)).end {
                reported.push((key, base + end as u64));
                if self.raise(det, rule, pkt, verdict, Some(base + end as u64)) {
                    break;
                }
            }
        }
        for (key, end) in reported {
            stream.set_reported(key, end);
        }
    }

    /// Everything but side effects: the buffer index where the payload
    /// match ends (0 for rules without payload elements), or `None`.
    fn evaluate(
        &self,
        det: &mut Detector,
        rule: &Rule,
        pkt: &Packet<'_>,
        buf: &[u8],
        base: u64,
        stream: Option<StreamBounds>,
    ) -> Evaluation {
        if !proto_matches(rule.proto, pkt.proto)
            || !rule.header_matches(pkt.src, pkt.src_port, pkt.dst, pkt.dst_port, pkt.proto.has_ports())
        {
            return Evaluation::NO_MATCH;
        }
        det.stats.candidates += 1;
        if let Some(to_server) = rule.flow.to_server {
            let want = if to_server {
                crate::Direction::ToServer
            } else {
                crate::Direction::ToClient
            };
            if pkt.direction != Some(want) {
                return Evaluation::NO_MATCH;
            }
        }
        if rule.flow.established.is_some_and(|e| e != pkt.established) {
            return Evaluation::NO_MATCH;
        }
        if let Some(f) = &rule.flags {
            if pkt.proto != Protocol::Tcp || !f.matches(pkt.tcp_flags) {
                return Evaluation::NO_MATCH;
            }
        }
        let is_icmp = matches!(pkt.proto, Protocol::Icmp | Protocol::Icmpv6);
        if rule
            .itype
            .is_some_and(|c| !is_icmp || !c.matches(u64::from(pkt.icmp_type)))
            || rule
                .icode
                .is_some_and(|c| !is_icmp || !c.matches(u64::from(pkt.icmp_code)))
            || rule.ttl.is_some_and(|c| !c.matches(u64::from(pkt.ttl)))
            || rule.dsize.is_some_and(|c| !c.matches(pkt.payload.len() as u64))
        {
            return Evaluation::NO_MATCH;
        }
        for cmd in &rule.flowbits {
            let ok = match cmd {
                FlowbitCmd::IsSet { names, any } => {
                    if *any {
                        names.iter().any(|n| pkt.flow.is_set(n))
                    } else {
                        names.iter().all(|n| pkt.flow.is_set(n))
                    }
                }
                FlowbitCmd::IsNotSet { names, any } => {
                    if *any {
                        names.iter().any(|n| !pkt.flow.is_set(n))
                    } else {
                        names.iter().all(|n| !pkt.flow.is_set(n))
                    }
                }
                _ => true,
            };
            if !ok {
                return Evaluation::NO_MATCH;
            }
        }
        if !rule.inspects_payload() {
            return Evaluation {
                end: Some(0),
                undecided: false,
            };
        }
        if buf.is_empty() {
            return Evaluation::NO_MATCH;
        }
        let mut insp = Inspection {
            buf,
            base,
            min_end: stream.map(|s| s.min_end),
            open: stream.is_some_and(|s| s.open),
            undecided: false,
            budget: det.config.inspection_limit,
            exhausted: false,
        };
        let end = insp.run(&rule.payload);
        if insp.exhausted {
            det.stats.inspection_limit_hits += 1;
        }
        Evaluation {
            end,
            undecided: insp.undecided,
        }
    }

    /// Applies a match: flowbits, pass, noalert, thresholds. Returns true
    /// when a pass rule ends the evaluation.
    fn raise(
        &self,
        det: &mut Detector,
        rule: &Rule,
        pkt: &mut Packet<'_>,
        verdict: &mut Verdict,
        stream_offset: Option<u64>,
    ) -> bool {
        det.stats.matches += 1;
        for cmd in &rule.flowbits {
            match cmd {
                FlowbitCmd::Set(names) => names.iter().for_each(|n| pkt.flow.set_shared(n)),
                FlowbitCmd::Unset(names) => names.iter().for_each(|n| pkt.flow.unset(n)),
                FlowbitCmd::Toggle(names) => names.iter().for_each(|n| pkt.flow.toggle(n)),
                FlowbitCmd::IsSet { .. } | FlowbitCmd::IsNotSet { .. } => {}
            }
        }
        let m = || Match {
            sid: rule.sid,
            gid: rule.gid,
            rev: rule.rev,
            msg: rule.msg.clone(),
            action: rule.action,
            classtype: rule.classtype.as_ref().map(|c| c.name.clone()),
            class_description: rule.classtype.as_ref().map(|c| c.description.clone()),
            priority: rule.priority,
            stream_offset,
        };
        if rule.action == Action::Pass {
            det.stats.passed += 1;
            verdict.alerts.clear();
            verdict.pass = Some(m());
            return true;
        }
        if rule.noalert {
            return false;
        }
        if let Some(t) = &rule.threshold {
            if !det
                .thresholds
                .check(rule.gid, rule.sid, t, pkt.src, pkt.dst, pkt.timestamp)
            {
                det.stats.suppressed += 1;
                verdict.suppressed += 1;
                return false;
            }
        }
        det.stats.alerts += 1;
        verdict.alerts.push(m());
        false
    }
}
