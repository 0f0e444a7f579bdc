//! The flow tracker worker: one per worker thread, it follows the flows the
//! fan-out sends its thread (every packet of a connection, both directions,
//! reaches one worker) and writes one EVE `flow` record when each ends.
//!
//! # The table
//!
//! Flows are keyed by the canonical tuple with its endpoints ordered (both
//! directions one flow) in an `ahash` map with random keys, and live in a
//! slab. Two structures over the slab keep every operation O(1) or
//! O(log n), never a scan of the table:
//!
//! - an LRU list (intrusive, doubly linked through the slab), in the order
//!   flows last had a packet: when the table holds `max_flows`, the flow at
//!   its head, idle longest, is ended with reason `forced`;
//! - a min-heap of expiries, invalidated lazily: each flow has one current
//!   entry (`queued_expiry`); a packet that makes the expiry later leaves it
//!   (the entry is pushed again at the right time when it comes up), one that
//!   makes it earlier (a TCP flow closing) pushes a new one. Stale entries
//!   are skipped when they come up, and the heap is rebuilt from the live
//!   flows when stale ones outnumber them.
//!
//! # Time and determinism
//!
//! The tracker's clock is the latest packet timestamp or tick clock seen.
//! Whenever it moves (each packet, each tick, the finish), the flows whose
//! last packet + timeout is at or before it end with reason `timeout`, in
//! order of expiry (ties in order of creation). A packet past its flow's
//! timeout thus finds the flow ended and starts a new one with the same
//! tuple. A record's content depends only on the flow's own packets
//! (`end` is its last packet, not the clock that ended it) and its reason on
//! the final clock; the order of records depends only on the order packets
//! are delivered in, not on batch boundaries or tick timing, provided ticks
//! do not run ahead of packets still to be delivered to this worker (true
//! offline, where the tick clock is the reader's, up to the dedup's short
//! holds). At the finish, many flows' `shutdown` records are rendered on
//! two threads in turn and written in order: the same lines.
//!
//! # Suppressed copies
//!
//! A notice names a copy the dedup dropped. It is counted on the live flow
//! with its tuple (if the notice falls within that flow: not before its
//! start less [`NOTICE_WAIT_NS`], not after its timeout), or held up to
//! [`NOTICE_WAIT_NS`] of clock for a flow still to start (offline, notices
//! can overtake the packet they copy), and counted as unmatched otherwise.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use capture_file::{link_type, CookedHeader};
use flow::{parse_frame, parse_network, FlowTuple, ParsedPacket, TapDirection, Transport};
use pipeline::interfaces::InterfaceId;
use pipeline::worker::{BatchPacket, PacketBatch, PacketMeta, SuppressedNotice, Worker};
use serde_json::{json, Value};

use crate::inspect::{FlowEndEvent, FlowEvent, FlowInspector, InspectedPacket, NoInspector};
use crate::record::{container_json, CarriedHashBuilder, EndReason, EventPacket, Flow, PacketInfo, Side, TableKey};
use crate::timeouts::FlowTimeouts;
use crate::writer::{EveWriter, FLUSH_BYTES};

/// How long (of the tracker's clock) a suppressed-copy notice waits for its
/// flow to start, and how long before a flow's start a notice may be.
pub const NOTICE_WAIT_NS: u64 = 1_000_000_000;

/// Most notices waiting for their flow, per tracker.
pub const MAX_PENDING_NOTICES: usize = 65_536;

/// No slot: the end of the LRU list.
const NIL: u32 = u32::MAX;

/// Flows open at the finish from which their `shutdown` records are
/// rendered on two threads ([`FlowTracker::shut_down`]).
const TWO_THREAD_SHUTDOWN_FLOWS: usize = 4096;
/// Records per piece the two threads render in turn: about
/// [`FLUSH_BYTES`] of lines, one write each.
const SHUTDOWN_PIECE_FLOWS: usize = 64;

/// How a flow tracker runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowTrackerConfig {
    /// Timeouts per protocol and state.
    pub timeouts: FlowTimeouts,
    /// Most flows tracked at once by this tracker (one worker's share); at
    /// least 1.
    pub max_flows: usize,
}

impl Default for FlowTrackerConfig {
    fn default() -> Self {
        Self {
            timeouts: FlowTimeouts::default(),
            max_flows: 65_536,
        }
    }
}

/// What a flow tracker counted; [`FlowTrackerCounters::add`] sums workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTrackerCounters {
    /// Packets received.
    pub packets: u64,
    /// Packets with no flow (non-IP): counted, no record.
    pub packets_without_flow: u64,
    /// Packets older than their flow's last packet (still counted in it).
    pub out_of_order: u64,
    /// Flows started.
    pub flows_started: u64,
    /// Flows being tracked when the counters were taken.
    pub flows_active: u64,
    /// Records written because the flow timed out.
    pub records_timeout: u64,
    /// Records written because the table was full.
    pub records_forced: u64,
    /// Records written at the end of the capture.
    pub records_shutdown: u64,
    /// Suppressed-copy notices counted on a flow.
    pub notices_matched: u64,
    /// Notices that matched no flow (or had none).
    pub notices_unmatched: u64,
    /// Notices waiting for their flow when the counters were taken.
    pub notices_pending: u64,
    /// Writes of the EVE output that failed.
    pub write_errors: u64,
    /// Records lost in those writes.
    pub records_lost: u64,
    /// Alert events written (or attempted).
    pub alerts: u64,
    /// Anomaly events written (or attempted).
    pub anomalies: u64,
}

impl FlowTrackerCounters {
    /// Adds `other` (another worker's).
    pub fn add(&mut self, other: &FlowTrackerCounters) {
        self.packets += other.packets;
        self.packets_without_flow += other.packets_without_flow;
        self.out_of_order += other.out_of_order;
        self.flows_started += other.flows_started;
        self.flows_active += other.flows_active;
        self.records_timeout += other.records_timeout;
        self.records_forced += other.records_forced;
        self.records_shutdown += other.records_shutdown;
        self.notices_matched += other.notices_matched;
        self.notices_unmatched += other.notices_unmatched;
        self.notices_pending += other.notices_pending;
        self.write_errors += other.write_errors;
        self.records_lost += other.records_lost;
        self.alerts += other.alerts;
        self.anomalies += other.anomalies;
    }

    /// Records written (or attempted), every reason.
    pub fn records(&self) -> u64 {
        self.records_timeout + self.records_forced + self.records_shutdown
    }

    /// The counters for the exit summary.
    pub fn to_json(&self) -> Value {
        json!({
            "packets": self.packets,
            "packets_without_flow": self.packets_without_flow,
            "out_of_order": self.out_of_order,
            "flows_started": self.flows_started,
            "flows_active": self.flows_active,
            "records": {
                "total": self.records(),
                "timeout": self.records_timeout,
                "forced": self.records_forced,
                "shutdown": self.records_shutdown,
            },
            "notices": {
                "matched": self.notices_matched,
                "unmatched": self.notices_unmatched,
                "pending": self.notices_pending,
            },
            "write_errors": self.write_errors,
            "records_lost": self.records_lost,
            "alerts": self.alerts,
            "anomalies": self.anomalies,
        })
    }
}

/// A slab entry: a flow (or none), its inspector's state and its LRU
/// links.
struct Slot<D> {
    flow: Option<Flow>,
    inspection: Option<D>,
    prev: u32,
    next: u32,
}

/// A notice waiting for its flow to start.
#[derive(Clone, Copy, Debug)]
struct PendingNotice {
    interface: InterfaceId,
    direction: TapDirection,
    timestamp_ns: u64,
}

/// The flow tracker worker. Make one per worker thread, all sharing one
/// [`EveWriter`]; give it a [`FlowInspector`] to run detection on its
/// flows' packets.
pub struct FlowTracker<I: FlowInspector = NoInspector> {
    inspector: I,
    /// The events of the packet being inspected.
    events: Vec<FlowEvent>,
    /// The events of the flow being ended.
    end_events: Vec<FlowEndEvent>,
    timeouts: FlowTimeouts,
    max_flows: usize,
    writer: Arc<EveWriter>,
    /// Lines not yet handed to the writer, and how many records they hold.
    out: Vec<u8>,
    out_records: u64,
    table: HashMap<TableKey, u32, CarriedHashBuilder>,
    slots: Vec<Slot<I::FlowData>>,
    free: Vec<u32>,
    lru_head: u32,
    lru_tail: u32,
    /// (expiry, flow seq, slot), earliest first.
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    clock_ns: u64,
    next_seq: u64,
    names: HashMap<InterfaceId, Box<str>, ahash::RandomState>,
    /// Whether `names` has each interface, by index: checked for every
    /// packet and notice, where a lookup in `names` cost a hash each.
    named: Vec<bool>,
    pending: HashMap<TableKey, Vec<PendingNotice>, CarriedHashBuilder>,
    /// (deadline, key) of each notice put in `pending`, oldest first.
    pending_order: VecDeque<(u64, TableKey)>,
    pending_count: usize,
    counters: FlowTrackerCounters,
    finished: bool,
    /// Open flows at the finish from which their records are rendered on
    /// two threads ([`TWO_THREAD_SHUTDOWN_FLOWS`]; tests change it).
    two_thread_shutdown_flows: usize,
}

impl<I: FlowInspector> std::fmt::Debug for FlowTracker<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTracker")
            .field("max_flows", &self.max_flows)
            .field("flows", &self.table.len())
            .field("clock_ns", &self.clock_ns)
            .finish_non_exhaustive()
    }
}

impl FlowTracker<NoInspector> {
    /// A tracker writing its records to `writer`.
    pub fn new(config: FlowTrackerConfig, writer: Arc<EveWriter>) -> Self {
        Self::with_inspector(config, writer, NoInspector)
    }
}

impl<I: FlowInspector> FlowTracker<I> {
    /// A tracker writing its records, and the events `inspector` finds in
    /// its flows, to `writer`.
    pub fn with_inspector(config: FlowTrackerConfig, writer: Arc<EveWriter>, inspector: I) -> Self {
        Self {
            inspector,
            events: Vec::new(),
            end_events: Vec::new(),
            timeouts: config.timeouts,
            max_flows: config.max_flows.clamp(1, NIL as usize - 1),
            writer,
            out: Vec::with_capacity(FLUSH_BYTES + 4096),
            out_records: 0,
            table: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            lru_head: NIL,
            lru_tail: NIL,
            heap: BinaryHeap::new(),
            clock_ns: 0,
            next_seq: 0,
            names: HashMap::with_hasher(ahash::RandomState::new()),
            named: Vec::new(),
            pending: HashMap::default(),
            pending_order: VecDeque::new(),
            pending_count: 0,
            counters: FlowTrackerCounters::default(),
            finished: false,
            two_thread_shutdown_flows: TWO_THREAD_SHUTDOWN_FLOWS,
        }
    }

    /// Its counters so far.
    pub fn counters(&self) -> FlowTrackerCounters {
        FlowTrackerCounters {
            flows_active: self.table.len() as u64,
            notices_pending: self.pending_count as u64,
            ..self.counters
        }
    }

    /// Its inspector.
    pub fn inspector(&self) -> &I {
        &self.inspector
    }

    /// Its inspector, to change.
    pub fn inspector_mut(&mut self) -> &mut I {
        &mut self.inspector
    }

    /// Flows being tracked.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Entries in the expiry heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// The tracker's clock: the latest packet or tick time seen.
    pub fn clock_ns(&self) -> u64 {
        self.clock_ns
    }

    /// Open flows at the finish from which their records are rendered on
    /// two threads.
    #[cfg(test)]
    pub(crate) fn set_two_thread_shutdown_flows(&mut self, flows: usize) {
        self.two_thread_shutdown_flows = flows;
    }

    fn packet(&mut self, batch: &PacketBatch, packet: BatchPacket<'_>) {
        let meta = packet.meta;
        self.counters.packets += 1;
        let Some(key) = meta.flow else {
            self.counters.packets_without_flow += 1;
            return;
        };
        self.advance(meta.timestamp_ns);
        let table_key = TableKey::of(&key.tuple, key.hash);
        let parsed = if I::ACTIVE || matches!(key.tuple.protocol, 6 | 1 | 58) {
            parse_packet(batch, packet)
        } else {
            None
        };
        let info = parsed.as_ref().map(packet_info).unwrap_or_default();
        let slot = match self.table.get(&table_key) {
            Some(&slot) => slot,
            None => self.start_flow(batch, &key, table_key, meta.timestamp_ns, meta.interface, &info),
        };
        self.lru_touch(slot);
        let timeouts = &self.timeouts;
        let mut new_tap = false;
        let mut out_of_order = false;
        let mut push = None;
        let mut inspect = None;
        if let Some(flow) = self.slots.get_mut(slot as usize).and_then(|s| s.flow.as_mut()) {
            if meta.timestamp_ns < flow.last_ns {
                flow.out_of_order += 1;
                out_of_order = true;
            }
            let side = flow.reorient(flow.side(&key.tuple), meta.timestamp_ns, meta.interface);
            flow.packet(side, meta.timestamp_ns, meta.original_len, &info);
            new_tap = flow.add_tap(meta.interface, meta.tap.direction);
            if flow.wants_container(side, meta.tap.direction, meta.interface) {
                if let Some(container) = container_of(batch, meta.interface) {
                    flow.attribute(side, meta.tap.direction, meta.interface, container);
                }
            }
            if let Some(nat) = meta.nat {
                flow.nat(side, nat.public);
            }
            if meta.overlap_different_data {
                flow.overlap_different_data();
            }
            inspect = Some((side, flow.established()));
            let expiry = flow.expiry(timeouts);
            if expiry < flow.queued_expiry {
                flow.queued_expiry = expiry;
                push = Some((expiry, flow.seq));
            }
        }
        if out_of_order {
            self.counters.out_of_order += 1;
        }
        if new_tap {
            self.remember_name(batch, meta.interface);
        }
        if let Some((expiry, seq)) = push {
            self.push_expiry(expiry, seq, slot);
        }
        if let (true, Some((side, established)), Some(parsed)) = (I::ACTIVE, inspect, parsed.as_ref()) {
            self.inspect(slot, meta, &key.tuple, side, established, parsed, info.icmp);
        }
    }

    /// Runs the inspector on a packet of the flow in `slot` and writes
    /// what it found.
    #[allow(clippy::too_many_arguments)]
    fn inspect(
        &mut self,
        slot: u32,
        meta: &PacketMeta,
        tuple: &FlowTuple,
        side: Side,
        established: bool,
        parsed: &ParsedPacket<'_>,
        icmp: Option<(u8, u8)>,
    ) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let (Some(flow), Some(data)) = (entry.flow.as_mut(), entry.inspection.as_mut()) else {
            return;
        };
        let packet = InspectedPacket {
            meta,
            tuple,
            to_server: side == Side::ToServer,
            established,
            parsed,
        };
        self.events.clear();
        self.inspector.inspect(data, &packet, &mut self.events);
        if self.events.is_empty() {
            return;
        }
        let at = EventPacket {
            timestamp_ns: meta.timestamp_ns,
            interface: meta.interface,
            direction: meta.tap.direction,
            tuple,
            side,
            icmp,
        };
        for event in &self.events {
            flow.render_event(&mut self.out, event, &at, &self.names);
            match event {
                FlowEvent::Alert(_) => self.counters.alerts += 1,
                FlowEvent::Anomaly(_) => self.counters.anomalies += 1,
            }
        }
        if self.out.len() >= FLUSH_BYTES {
            self.write_out();
        }
    }

    fn start_flow(
        &mut self,
        batch: &PacketBatch,
        key: &flow::FlowKey,
        table_key: TableKey,
        timestamp_ns: u64,
        interface: InterfaceId,
        info: &PacketInfo,
    ) -> u32 {
        if self.table.len() >= self.max_flows && self.lru_head != NIL {
            self.end(self.lru_head, EndReason::Forced);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut flow = Flow::new(&key.tuple, key.hash, seq, timestamp_ns, interface, info);
        self.remember_name(batch, interface);
        if let Some(waiting) = self.pending.remove(&table_key) {
            self.pending_count -= waiting.len();
            for notice in waiting {
                if notice.timestamp_ns.saturating_add(NOTICE_WAIT_NS) >= timestamp_ns {
                    flow.suppressed_copy();
                    flow.add_tap(notice.interface, notice.direction);
                    self.counters.notices_matched += 1;
                } else {
                    self.counters.notices_unmatched += 1;
                }
            }
        }
        let inspection = I::ACTIVE.then(|| self.inspector.flow_started());
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.flow = Some(flow);
                entry.inspection = inspection;
                slot
            }
            None => {
                self.slots.push(Slot {
                    flow: Some(flow),
                    inspection,
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.table.insert(table_key, slot);
        self.counters.flows_started += 1;
        slot
    }

    fn notice(&mut self, batch: &PacketBatch, notice: &SuppressedNotice) {
        let Some(key) = notice.flow else {
            self.counters.notices_unmatched += 1;
            return;
        };
        let table_key = TableKey::of(&key.tuple, key.hash);
        if let Some(&slot) = self.table.get(&table_key) {
            let timeouts = &self.timeouts;
            let mut matched = false;
            if let Some(flow) = self.slots.get_mut(slot as usize).and_then(|s| s.flow.as_mut()) {
                let within = notice.timestamp_ns.saturating_add(NOTICE_WAIT_NS) >= flow.start_ns
                    && notice.timestamp_ns < flow.expiry(timeouts);
                if within {
                    flow.suppressed_copy();
                    flow.add_tap(notice.interface, notice.tap.direction);
                    let side = flow.side(&key.tuple);
                    if flow.wants_container(side, notice.tap.direction, notice.interface) {
                        if let Some(container) = container_of(batch, notice.interface) {
                            flow.attribute(side, notice.tap.direction, notice.interface, container);
                        }
                    }
                    matched = true;
                } else if notice.timestamp_ns < flow.start_ns {
                    // From an earlier flow with this tuple, already ended.
                    self.counters.notices_unmatched += 1;
                    return;
                }
            }
            if matched {
                self.counters.notices_matched += 1;
                self.remember_name(batch, notice.interface);
                return;
            }
        }
        // Its flow has not started (or starts anew after this one's timeout).
        self.remember_name(batch, notice.interface);
        while self.pending_count >= MAX_PENDING_NOTICES || self.pending_order.len() >= 2 * MAX_PENDING_NOTICES {
            let Some((_, oldest)) = self.pending_order.pop_front() else {
                break;
            };
            self.drop_pending(oldest, |_| true, 1);
        }
        self.pending.entry(table_key).or_default().push(PendingNotice {
            interface: notice.interface,
            direction: notice.tap.direction,
            timestamp_ns: notice.timestamp_ns,
        });
        self.pending_order
            .push_back((notice.timestamp_ns.saturating_add(NOTICE_WAIT_NS), table_key));
        self.pending_count += 1;
    }

    /// Counts as unmatched up to `limit` notices waiting under `key` that
    /// `expired` says are done waiting (oldest first).
    fn drop_pending(&mut self, key: TableKey, expired: impl Fn(&PendingNotice) -> bool, limit: usize) {
        let Some(waiting) = self.pending.get_mut(&key) else {
            return;
        };
        let mut dropped = 0;
        waiting.retain(|notice| {
            if dropped < limit && expired(notice) {
                dropped += 1;
                false
            } else {
                true
            }
        });
        if waiting.is_empty() {
            self.pending.remove(&key);
        }
        self.pending_count -= dropped;
        self.counters.notices_unmatched += dropped as u64;
    }

    fn remember_name(&mut self, batch: &PacketBatch, interface: InterfaceId) {
        let index = interface.index();
        if self.named.get(index).copied().unwrap_or(false) {
            return;
        }
        self.names
            .entry(interface)
            .or_insert_with(|| batch.interface(interface).name.clone().into_boxed_str());
        if self.named.len() <= index {
            self.named.resize(index + 1, false);
        }
        self.named[index] = true;
    }

    /// Moves the clock to `clock_ns` (if later) and ends the flows due.
    fn advance(&mut self, clock_ns: u64) {
        self.clock_ns = self.clock_ns.max(clock_ns);
        let clock = self.clock_ns;
        while let Some(&Reverse((expiry, seq, slot))) = self.heap.peek() {
            if expiry > clock {
                break;
            }
            self.heap.pop();
            let Some(flow) = self.slots.get_mut(slot as usize).and_then(|s| s.flow.as_mut()) else {
                continue;
            };
            if flow.seq != seq || flow.queued_expiry != expiry {
                continue;
            }
            let actual = flow.expiry(&self.timeouts);
            if actual > expiry {
                // Packets came since: back in line at its real expiry (which
                // may still be due, in its turn).
                flow.queued_expiry = actual;
                self.push_expiry(actual, seq, slot);
                continue;
            }
            self.end(slot, EndReason::Timeout);
        }
        while let Some(&(deadline, key)) = self.pending_order.front() {
            if deadline > clock {
                break;
            }
            self.pending_order.pop_front();
            self.drop_pending(
                key,
                |n| n.timestamp_ns.saturating_add(NOTICE_WAIT_NS) <= clock,
                usize::MAX,
            );
        }
    }

    fn push_expiry(&mut self, expiry: u64, seq: u64, slot: u32) {
        self.heap.push(Reverse((expiry, seq, slot)));
        if self.heap.len() > 2 * self.table.len() + 1024 {
            // Mostly stale entries: rebuild from the live flows' current ones.
            let live: Vec<Reverse<(u64, u64, u32)>> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(slot, s)| s.flow.as_ref().map(|f| Reverse((f.queued_expiry, f.seq, slot as u32))))
                .collect();
            self.heap = BinaryHeap::from(live);
        }
    }

    /// Takes the flow in `slot` out of the table (its slot freed, its
    /// inspector's state dropped), to be ended.
    fn take_flow(&mut self, slot: u32) -> Option<Flow> {
        self.lru_unlink(slot);
        let entry = self.slots.get_mut(slot as usize)?;
        // The inspector's state (stream buffers) goes with the flow, after
        // the inspector had its last word.
        let inspection = entry.inspection.take();
        let mut flow = entry.flow.take()?;
        self.table.remove(&flow.key);
        self.free.push(slot);
        if let Some(mut data) = inspection {
            self.flow_ended(&mut flow, &mut data);
        }
        Some(flow)
    }

    /// Runs the inspector's end of flow and writes what it found.
    fn flow_ended(&mut self, flow: &mut Flow, data: &mut I::FlowData) {
        self.end_events.clear();
        self.inspector.flow_ended(data, &mut self.end_events);
        for end in &self.end_events {
            let at = EventPacket {
                timestamp_ns: end.timestamp_ns,
                interface: end.interface,
                direction: end.direction,
                tuple: &end.tuple,
                side: if end.to_server { Side::ToServer } else { Side::ToClient },
                icmp: None,
            };
            flow.render_event(&mut self.out, &end.event, &at, &self.names);
            match end.event {
                FlowEvent::Alert(_) => self.counters.alerts += 1,
                FlowEvent::Anomaly(_) => self.counters.anomalies += 1,
            }
        }
    }

    /// Ends the flow in `slot`: its record, out of the table.
    fn end(&mut self, slot: u32, reason: EndReason) {
        let Some(flow) = self.take_flow(slot) else {
            return;
        };
        flow.render(&mut self.out, reason, &self.names);
        self.out_records += 1;
        match reason {
            EndReason::Timeout => self.counters.records_timeout += 1,
            EndReason::Forced => self.counters.records_forced += 1,
            EndReason::Shutdown => self.counters.records_shutdown += 1,
        }
        if self.out.len() >= FLUSH_BYTES {
            self.write_out();
        }
    }

    /// Ends the flows in `open`'s slots, in its order, with reason
    /// `shutdown`, as [`FlowTracker::end`] one by one would, with the same
    /// lines in the same order; but their records are rendered in pieces
    /// of [`SHUTDOWN_PIECE_FLOWS`] by this thread and a helper in turn,
    /// and written by this one in order. Every flow of an offline run ends
    /// here, after the reading thread is done, so a core is free: the
    /// records (about 9 000 instructions each) take half the time.
    fn shut_down(&mut self, open: &[(u64, u32)]) {
        let mut flows = Vec::with_capacity(open.len());
        for &(_, slot) in open {
            if let Some(flow) = self.take_flow(slot) {
                self.counters.records_shutdown += 1;
                flows.push(flow);
            }
        }
        // The lines already buffered come first.
        self.write_out();
        let names = &self.names;
        let writer = &self.writer;
        let counters = &mut self.counters;
        let mut write = |lines: &[u8], records: usize| {
            if writer.write_lines(lines).is_err() {
                counters.write_errors += 1;
                counters.records_lost += records as u64;
            }
        };
        let render = |piece: &[Flow], out: &mut Vec<u8>| {
            out.clear();
            for flow in piece {
                flow.render(out, EndReason::Shutdown, names);
            }
        };
        let pieces: Vec<&[Flow]> = flows.chunks(SHUTDOWN_PIECE_FLOWS).collect();
        std::thread::scope(|scope| {
            // The helper renders the odd pieces, in order, into buffers
            // this thread gives back once written.
            let (to_writer, rendered) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
            let odd: Vec<&[Flow]> = pieces.iter().skip(1).step_by(2).copied().collect();
            let helper = std::thread::Builder::new()
                .name("eve-shutdown".into())
                .spawn_scoped(scope, move || {
                    for piece in odd {
                        let mut out = spare.try_recv().unwrap_or_default();
                        render(piece, &mut out);
                        if to_writer.send(out).is_err() {
                            return;
                        }
                    }
                });
            let mut mine = Vec::with_capacity(FLUSH_BYTES + 4096);
            for (index, piece) in pieces.iter().enumerate() {
                let helped = helper.is_ok() && index % 2 == 1;
                if !helped {
                    render(piece, &mut mine);
                    write(&mine, piece.len());
                    continue;
                }
                match rendered.recv() {
                    Ok(out) => {
                        write(&out, piece.len());
                        let _ = give_back.send(out);
                    }
                    // The helper is gone (it panicked): this thread
                    // renders what is left.
                    Err(_) => {
                        render(piece, &mut mine);
                        write(&mine, piece.len());
                    }
                }
            }
        });
    }

    /// Hands the buffered lines to the writer.
    fn write_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if self.writer.write_lines(&self.out).is_err() {
            self.counters.write_errors += 1;
            self.counters.records_lost += self.out_records;
        }
        self.out.clear();
        self.out_records = 0;
    }

    fn lru_unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let s = &self.slots[slot as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            if self.lru_head == slot {
                self.lru_head = next;
            }
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            if self.lru_tail == slot {
                self.lru_tail = prev;
            }
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[slot as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    /// Moves `slot` to the tail (most recent) of the LRU list.
    fn lru_touch(&mut self, slot: u32) {
        if self.lru_tail == slot {
            return;
        }
        self.lru_unlink(slot);
        self.slots[slot as usize].prev = self.lru_tail;
        if self.lru_tail == NIL {
            self.lru_head = slot;
        } else {
            self.slots[self.lru_tail as usize].next = slot;
        }
        self.lru_tail = slot;
    }
}

impl<I: FlowInspector> Worker for FlowTracker<I> {
    /// Packets in order, each notice after the packets up to its time (so
    /// where batches end does not decide which flow it finds).
    fn batch(&mut self, batch: &PacketBatch) {
        self.inspector.batch_started();
        let mut notices = batch.suppressed().iter().peekable();
        for packet in batch.packets() {
            while let Some(notice) = notices.next_if(|n| n.timestamp_ns < packet.meta.timestamp_ns) {
                self.notice(batch, notice);
            }
            self.packet(batch, packet);
        }
        for notice in notices {
            self.notice(batch, notice);
        }
    }

    fn tick(&mut self, clock_ns: u64) {
        self.advance(clock_ns);
        self.write_out();
    }

    /// Flows past their timeout at `clock_ns` end with `timeout`, the rest
    /// with `shutdown` (in order of creation); then everything is written
    /// and the writer flushed.
    fn finish(&mut self, clock_ns: u64) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.advance(clock_ns);
        let mut open: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| s.flow.as_ref().map(|f| (f.seq, slot as u32)))
            .collect();
        open.sort_unstable();
        if open.len() >= self.two_thread_shutdown_flows {
            self.shut_down(&open);
        } else {
            for (_, slot) in open {
                self.end(slot, EndReason::Shutdown);
            }
        }
        self.heap.clear();
        self.counters.notices_unmatched += self.pending_count as u64;
        self.pending.clear();
        self.pending_order.clear();
        self.pending_count = 0;
        self.write_out();
        if self.writer.flush().is_err() {
            self.counters.write_errors += 1;
        }
    }
}

/// Parses a delivered packet as its interface's link type gives it.
fn parse_packet<'a>(batch: &PacketBatch, packet: BatchPacket<'a>) -> Option<ParsedPacket<'a>> {
    let link = batch.interface(packet.meta.interface).link_type;
    let vlan = packet.meta.vlan.map(|tag| (tag.tpid, tag.tci));
    parse_link(packet.data, link, vlan)
}

/// What the tracker needs from a packet's headers: TCP flags and whether
/// it carries data, ICMP type and code.
fn packet_info(parsed: &ParsedPacket<'_>) -> PacketInfo {
    match &parsed.transport {
        Some(Transport::Tcp(tcp)) => PacketInfo {
            tcp_flags: Some(tcp.flags.bits() as u8),
            tcp_data: !tcp.payload.is_empty(),
            icmp: None,
        },
        Some(Transport::Icmpv4(icmp)) => PacketInfo {
            icmp: Some((u8::from(icmp.msg_type), icmp.code)),
            ..PacketInfo::default()
        },
        Some(Transport::Icmpv6(icmp)) => PacketInfo {
            icmp: Some((u8::from(icmp.msg_type), icmp.code)),
            ..PacketInfo::default()
        },
        _ => PacketInfo::default(),
    }
}

/// Parses `data` as its interface's link type gives it (Ethernet, Linux
/// cooked v1 and v2, raw IP).
pub(crate) fn parse_link(data: &[u8], link: u32, vlan: Option<(u16, u16)>) -> Option<ParsedPacket<'_>> {
    let cooked = |header: Option<CookedHeader>| {
        let header = header?;
        parse_network(header.protocol, data.get(header.payload_offset..)?).ok()
    };
    match link {
        link_type::ETHERNET => parse_frame(data, vlan).ok(),
        link_type::LINUX_SLL => cooked(CookedHeader::parse_sll(data)),
        link_type::LINUX_SLL2 => cooked(CookedHeader::parse_sll2(data)),
        link_type::RAW | link_type::IPV4 | link_type::IPV6 => {
            let ethertype = match data.first()? >> 4 {
                4 => 0x0800,
                6 => 0x86dd,
                _ => return None,
            };
            parse_network(ethertype, data).ok()
        }
        _ => None,
    }
}

/// The EVE object of the container behind `interface`, when it is a
/// container veth whose container is known.
fn container_of(batch: &PacketBatch, interface: InterfaceId) -> Option<Box<str>> {
    let info = batch.interface(interface);
    if info.role != flow::TapRole::ContainerVeth {
        return None;
    }
    info.container.as_ref().and_then(container_json)
}
