//! The dedup table: one lock-free, fixed-capacity table shared by every
//! capture thread that decides, for each captured copy of a packet, whether it
//! is a new packet, a duplicate of a copy already seen at another tap point, or
//! a better copy of one seen before. It keeps no packets and reads no clock: the
//! caller holds the copies and passes kernel timestamps; the table only keeps,
//! per packet, which tap points saw it and which copy is its best.
//!
//! # The rule
//!
//! A tap point ([`TapId`]: an interned (interface, direction)) sees one copy
//! of a packet at most. A copy is a duplicate only when the same
//! [`PacketIdentity`] was seen at a *different* tap point within the dedup
//! window (default [`DEFAULT_WINDOW_NS`], 20 ms of kernel time); the same
//! identity at the same tap point again is a retransmission and is a new
//! packet. The set of copies of one packet is an *instance*. A copy joins the
//! live instance of its identity that was first seen within the window of its
//! timestamp (either side: copies are read in any order) and has not been seen
//! at its tap yet, the one whose first timestamp is closest when there are
//! several; otherwise it starts a new instance.
//!
//! Of an instance's copies the one delivered is the best ranked (`rank` 0 is
//! best: container veth where the packet entered the host; then bridge; then
//! uplink; the caller ranks). The caller drives it from the [`Verdict`]s:
//!
//! ```text
//! match table.observe(identity, tap, rank, ts, ticket) {
//!     New if rank == 0                 => deliver now        (nothing can be better)
//!     New                              => hold under ticket
//!     Duplicate { first_tap }          => drop, count per (first_tap, tap)
//!     Better { superseded: Some(_) }   => hold under ticket (or deliver if rank == 0);
//!                                         the superseded copy's release answers false
//!     Better { superseded: None }      => deliver now, count a late duplicate
//!     TableFull                        => deliver now (a unique packet is never dropped)
//! }
//! once every capture thread has read past a held copy's ts + window:
//!     if table.release(identity, ticket, ts) { deliver } else { drop }
//! ```
//!
//! `Better { superseded: None }` means the instance's best copy was already
//! delivered (its hold ended) when this better one was read: both are
//! delivered. It happens only when a held copy is released before a capture
//! thread that was behind has read the better copy, so the caller releases on
//! the low watermark of all capture threads' timestamps, not on its own.
//!
//! # Layout: 64 bytes per entry
//!
//! Open addressing over a power-of-two array of entries, one cache line
//! each (1 Mi entries = 64 MiB; [`DedupTable::bytes_per_entry`]). The home
//! slot is the low bits of [`PacketIdentity::hash`], which is a keyed `ahash`
//! (random keys at start-up), so crafted traffic cannot aim at buckets or
//! build long probe chains. Probing is linear and bounded: [`PROBE_LIMIT`]
//! slots; past them the table is full for that identity and the copy passes
//! as [`Verdict::TableFull`] (counted). The probes of the last homes run on
//! into `PROBE_LIMIT - 1` spare entries past the power of two rather than
//! wrapping to the start, so a probe is one contiguous slice: no index is
//! masked or bounds-checked per slot.
//!
//! Sizing: the unexpired instances are the new packets of the last
//! [`RETENTION_WINDOWS`] windows (40 ms at the default window: 1 M packets at
//! 25 Mpps). Keep them at a quarter of the capacity or less: with 16 probes,
//! a table half full of unexpired instances found the probe range full for
//! about 1 packet in 2000 (bench warm-up, 2 Mi entries), a quarter-full one
//! for none in 4 M.
//!
//! | word | holds |
//! |---|---|
//! | `control` | phase (EMPTY, CLAIMED, LIVE), a 30-bit generation, the 32-bit tag (high half of the hash) |
//! | `hash`, `fields` | the identity (its 64 exact bits folded to 32), and the first copy's 32-bit flow tag |
//! | `first_ts` | kernel timestamp of the instance's first copy |
//! | `best` | best copy: rank, HELD(ticket) or DELIVERED, generation stamp |
//! | `taps[3]` | up to 3 taps each (tap + 1, 0 = free cell), generation stamp |
//!
//! An instance records up to [`MAX_TAPS`] = 9 taps: copies of one packet cross
//! at most 3 tap points, an ARP broadcast N+1 (every container veth), so 9
//! taps hold a broadcast on a host of 8 containers. A copy at a 10th tap is
//! still compared with the best copy (Duplicate or Better) but its tap is not
//! recorded, so a second copy at that same tap within the window is also taken
//! for a duplicate, not for a retransmission: a broadcast repeated at one tap
//! within 20 ms is not a real case.
//!
//! # Protocol
//!
//! Slots are claimed the way crossbeam's `ArrayQueue` claims them (Vyukov's
//! bounded MPMC queue: a per-slot stamp moved by CAS, readers that meet a slot
//! being written back off and look again) and read the way crossbeam's
//! `SeqLock` is read (crossbeam-utils `atomic/seq_lock.rs`: stamp, data, Acquire
//! fence, stamp again):
//!
//! 1. *Scan* the probe range. A LIVE slot whose tag matches is read and
//!    validated (seqlock); if it is a matching instance lacking this tap it is
//!    a candidate. A CLAIMED slot with this identity's tag is an insert in
//!    progress, maybe of this very packet: back off and scan again.
//! 2. *Join* the closest candidate: CAS this tap into a `taps` word, then CAS
//!    the `best` word if this copy is better. Both words carry the slot's
//!    generation, so a CAS prepared against an instance that was since
//!    replaced fails (no ABA), and a `best` CAS is the single step that
//!    decides between a better copy and the release of the held one: a held
//!    copy is delivered at most once, a superseded one never.
//! 3. Otherwise *insert* into the empty or oldest expired slot: CAS `control`
//!    to CLAIMED (SeqCst), write the words, then scan the probe range again
//!    (SeqCst loads) for another insert of the same instance that raced this
//!    one (two copies of a new packet read at once on two threads). In the
//!    SeqCst total order, of two racing claims the later one's owner sees the
//!    earlier claim in its second scan (the store-buffering pattern of
//!    Dekker's algorithm): the lower slot keeps the insert, the higher gives
//!    its slot back (EMPTY) and joins it. Then Release-store LIVE.
//!
//! The only waits are on a slot that another thread has CLAIMED for the same
//! tag, for the few stores until it is published or given back, as
//! `ArrayQueue` waits on a slot whose writer has not yet bumped its stamp:
//! lock-free in the same sense as that queue, not wait-free.
//!
//! # Expiry
//!
//! No background thread and no clock: an insert may reuse a slot whose
//! instance is older (by first timestamp, against the inserting copy's
//! timestamp) than [`RETENTION_WINDOWS`] windows, or [`HELD_RETENTION_WINDOWS`]
//! if its best copy is still held, so that a held copy stays findable until
//! released (the caller releases about 2 windows after the first copy). Of
//! several reusable slots the oldest is taken, so instances outlive the
//! minimum by as much as the capacity allows. A release that finds neither its
//! ticket nor any instance of its identity around its timestamp (the instance
//! expired while held) answers `true`: a copy is delivered rather than risk
//! dropping a unique packet; counted as an orphan release.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crossbeam_utils::{Backoff, CachePadded};

use crate::identity::PacketIdentity;

/// The default dedup window, in nanoseconds of kernel time (20 ms): copies of
/// one packet on a Docker host are at most a few milliseconds apart.
pub const DEFAULT_WINDOW_NS: u64 = 20_000_000;

/// Slots probed from an identity's home slot before the table counts as full.
pub const PROBE_LIMIT: usize = 16;

/// Taps recorded per instance (3 per `taps` word, 3 words).
pub const MAX_TAPS: usize = TAP_WORDS * TAPS_PER_WORD;

/// An instance whose best copy was delivered may be reused this many windows
/// after its first copy.
pub const RETENTION_WINDOWS: u64 = 2;

/// An instance whose best copy is still held may be reused this many windows
/// after its first copy: a caller that lost a ticket cannot pin a slot forever.
pub const HELD_RETENTION_WINDOWS: u64 = 16;

const TAP_WORDS: usize = 3;
const TAPS_PER_WORD: usize = 3;

/// Counter shards: the counters of a copy are in the shard of its home slot,
/// so threads working on different packets rarely share a counter line.
const COUNTER_SHARDS: usize = 16;

/// A tap point, (interface, direction), interned by the caller. The value
/// `u16::MAX` is reserved (it marks a free cell): a copy seen there is never
/// recorded as seen at any tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapId(pub u16);

/// The caller's handle on a copy it holds. Tickets of copies held at the same
/// time must differ; a ticket may be reused once its copy was released or
/// superseded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HoldTicket(pub u32);

/// What to do with one captured copy; see the module docs for the caller's
/// side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// No live instance of this identity lacks this tap: a new instance starts
    /// with this copy as its best. The caller delivers now when `rank == 0`
    /// (nothing can be better), otherwise holds it under `ticket` and
    /// releases it after the window.
    New,
    /// A live instance (first seen within the window, not yet seen at this
    /// tap) already has a copy at least as good: suppress this one.
    Duplicate {
        /// The tap the instance started at, for per-tap-pair counters.
        first_tap: TapId,
    },
    /// A live instance lacking this tap had only worse copies: this copy is
    /// its best now, held under `ticket` (delivered if `rank == 0`).
    Better {
        /// The held copy this one replaces (its release answers `false`), or
        /// `None` if the previous best was already delivered: then the caller
        /// delivers this copy too and counts a late duplicate.
        superseded: Option<HoldTicket>,
    },
    /// No empty or expired slot in the probe range: the copy passes
    /// (delivered) and [`DedupCounters::table_full`] counts it.
    TableFull,
}

/// What [`DedupTable::observe_flow`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// What to do with the copy.
    pub verdict: Verdict,
    /// For a copy that joined an instance (Duplicate, Better): the flow tag
    /// of the instance's first copy.
    pub first_flow_tag: Option<u32>,
    /// For a copy that joined an instance (Duplicate, Better): the tap its
    /// first copy was seen at.
    pub first_tap: Option<TapId>,
    /// For a [`Verdict::Duplicate`]: the ticket and rank of the instance's
    /// best copy if it is still held. A duplicate can prove that nothing
    /// better than the held copy will come (a copy at the tap where the
    /// packet entered the host, say), and its holder can end the hold early.
    pub held_best: Option<(HoldTicket, u8)>,
}

/// What [`DedupTable::join`] did.
struct Joined {
    verdict: Verdict,
    /// The tap of the instance's first copy.
    first_tap: TapId,
    /// See [`Observation::held_best`].
    held_best: Option<(HoldTicket, u8)>,
}

/// A snapshot of the table's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupCounters {
    /// Instances started ([`Verdict::New`]).
    pub inserts: u64,
    /// Copies suppressed ([`Verdict::Duplicate`]).
    pub duplicates: u64,
    /// Copies that became their instance's best ([`Verdict::Better`]).
    pub betters: u64,
    /// Copies passed because the probe range was full ([`Verdict::TableFull`]).
    pub table_full: u64,
    /// Inserts that reused the slot of an expired instance.
    pub expired_reuses: u64,
    /// Releases that found neither their ticket nor their instance (it
    /// expired while held) and answered `true`.
    pub orphan_releases: u64,
}

/// The lock-free dedup table, shared by all capture threads (`&self` only).
/// Fixed capacity, allocated once; see the module docs.
pub struct DedupTable {
    /// The slots: a power of two of homes, then `probe_len - 1` spare
    /// entries that only the probes of the last homes reach.
    entries: Box<[Entry]>,
    /// The number of homes minus one.
    mask: usize,
    /// `min(PROBE_LIMIT, homes)`.
    probe_len: usize,
    window_ns: u64,
    counters: Box<[CachePadded<CounterShard>]>,
}

/// One slot, one cache line. Every word is atomic; the invariants below hold
/// for the generation `g` in `control`.
#[derive(Default)]
#[repr(C, align(64))]
struct Entry {
    /// `tag << 32 | g << 2 | phase`. EMPTY (free; tag 0), CLAIMED (one thread
    /// owns the slot and is writing the words below; tag set), LIVE (the words
    /// below are the instance of generation `g`, immutable but for `best` and
    /// `taps`). Moves only EMPTY/LIVE(expired) -> CLAIMED(g + 1) by CAS, then
    /// CLAIMED -> LIVE or CLAIMED -> EMPTY by the owner's store.
    control: AtomicU64,
    /// The identity's hash; written only while CLAIMED.
    hash: AtomicU64,
    /// `fold(identity.fields) << 32 | flow_tag` of the first copy; written
    /// only while CLAIMED.
    fields: AtomicU64,
    /// Kernel timestamp of the instance's first copy; written only while
    /// CLAIMED.
    first_ts: AtomicU64,
    /// `stamp(g) | HELD? | rank << 32 | ticket`: the best copy so far. Set
    /// while CLAIMED; then only CAS'd, by a better copy (rank strictly lower)
    /// or a release (HELD(t) -> DELIVERED, same rank). Rank never rises.
    best: AtomicU64,
    /// `stamp(g) | cell2 << 32 | cell1 << 16 | cell0`: taps seen (tap + 1; 0 =
    /// free). Cells fill in order, word 0 first; a tap is added by CAS only;
    /// a full word never changes again in this generation.
    taps: [AtomicU64; TAP_WORDS],
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

#[derive(Default)]
struct CounterShard {
    inserts: AtomicU64,
    duplicates: AtomicU64,
    betters: AtomicU64,
    table_full: AtomicU64,
    expired_reuses: AtomicU64,
    orphan_releases: AtomicU64,
}

/// The `control` word.
mod control {
    pub(super) const EMPTY: u64 = 0;
    pub(super) const CLAIMED: u64 = 1;
    pub(super) const LIVE: u64 = 2;
    const GENERATION_MASK: u64 = (1 << 30) - 1;

    pub(super) fn pack(phase: u64, generation: u64, tag: u32) -> u64 {
        (u64::from(tag) << 32) | ((generation & GENERATION_MASK) << 2) | phase
    }

    pub(super) fn phase(word: u64) -> u64 {
        word & 0b11
    }

    pub(super) fn generation(word: u64) -> u64 {
        (word >> 2) & GENERATION_MASK
    }

    pub(super) fn tag(word: u64) -> u32 {
        (word >> 32) as u32
    }
}

/// The generation stamp carried by the `best` and `taps` words: the low 16
/// bits of the slot's generation, in bits 48..64. A stale CAS could only
/// succeed if the slot was reused a multiple of 65536 times while its thread
/// stood between a load and a CAS.
fn stamp(generation: u64) -> u64 {
    (generation & 0xffff) << 48
}

const STAMP_MASK: u64 = 0xffff << 48;

/// The `best` word.
mod best {
    use super::{HoldTicket, STAMP_MASK};

    const HELD: u64 = 1 << 40;

    pub(super) fn held(stamp: u64, rank: u8, ticket: HoldTicket) -> u64 {
        stamp | HELD | (u64::from(rank) << 32) | u64::from(ticket.0)
    }

    pub(super) fn delivered(stamp: u64, rank: u8) -> u64 {
        stamp | (u64::from(rank) << 32)
    }

    pub(super) fn stamp(word: u64) -> u64 {
        word & STAMP_MASK
    }

    pub(super) fn rank(word: u64) -> u8 {
        (word >> 32) as u8
    }

    pub(super) fn held_ticket(word: u64) -> Option<HoldTicket> {
        (word & HELD != 0).then_some(HoldTicket(word as u32))
    }
}

/// A `taps` word.
mod taps {
    use super::{TapId, STAMP_MASK, TAPS_PER_WORD};

    fn cell(tap: TapId) -> u64 {
        u64::from(tap.0.wrapping_add(1))
    }

    fn cells(word: u64) -> impl Iterator<Item = u64> {
        (0..TAPS_PER_WORD).map(move |i| (word >> (16 * i)) & 0xffff)
    }

    pub(super) fn first(stamp: u64, tap: TapId) -> u64 {
        stamp | cell(tap)
    }

    pub(super) fn stamp(word: u64) -> u64 {
        word & STAMP_MASK
    }

    pub(super) fn contains(word: u64, tap: TapId) -> bool {
        cell(tap) != 0 && cells(word).any(|c| c == cell(tap))
    }

    pub(super) fn free_cell(word: u64) -> Option<usize> {
        cells(word).position(|c| c == 0)
    }

    pub(super) fn with(word: u64, index: usize, tap: TapId) -> u64 {
        word | (cell(tap) << (16 * index))
    }

    /// The tap in cell 0 (`u16::MAX` for a free cell).
    pub(super) fn first_tap(word: u64) -> TapId {
        TapId((word as u16).wrapping_sub(1))
    }
}

/// An instance as read from a LIVE slot and validated.
struct Snapshot {
    hash: u64,
    /// `fold(identity.fields) << 32 | flow_tag`.
    fields: u64,
    first_ts: u64,
}

impl Snapshot {
    fn is(&self, identity: PacketIdentity) -> bool {
        self.hash == identity.hash && self.fields >> 32 == u64::from(fold(identity.fields))
    }

    fn flow_tag(&self) -> u32 {
        self.fields as u32
    }
}

/// The identity's exact fields folded to the 32 bits an entry keeps beside
/// the first copy's flow tag (with the 64-bit hash and the 32-bit tag: 96
/// bits compared).
fn fold(fields: u64) -> u32 {
    (fields >> 32) as u32 ^ fields as u32
}

/// Where a tap stands in an instance.
enum TapState {
    /// Not recorded (or the instance is full).
    Absent,
    /// Already seen at this tap.
    Present,
    /// The slot was reused since its control word was read.
    Retired,
}

/// The outcome of recording a tap in an instance.
enum Recorded {
    /// The tap is recorded, or it could not be because the instance is full.
    Joined { first_tap: TapId },
    /// Another copy at this tap joined first.
    Present,
    /// The slot was reused since its control word was read.
    Retired,
}

/// What a scan of the probe range found.
enum Scan {
    /// The instance to join: its slot and the control word read.
    Instance { slot: usize, control: u64, flow_tag: u32 },
    /// No instance; the slot to insert into and its control word.
    Free { slot: usize, control: u64 },
    /// Neither.
    Full,
    /// An insert of this tag is in progress, or a slot changed under the
    /// scan: look again.
    Retry,
}

impl Entry {
    /// The instance of a slot whose `control` was just loaded (Acquire) as
    /// LIVE, or `None` if the slot was claimed again meanwhile. Seqlock read:
    /// the Acquire fence pairs with the Release fence a claimer issues after
    /// its claim and before its stores, so if any load here read a value of
    /// a newer generation, the second `control` load sees that claim.
    fn snapshot(&self, control: u64) -> Option<Snapshot> {
        let hash = self.hash.load(Ordering::Relaxed);
        let fields = self.fields.load(Ordering::Relaxed);
        let first_ts = self.first_ts.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (self.control.load(Ordering::Relaxed) == control).then_some(Snapshot { hash, fields, first_ts })
    }

    /// Whether the instance of generation stamp `stamp` has seen `tap`.
    fn tap_state(&self, stamp: u64, tap: TapId) -> TapState {
        for word in &self.taps {
            // Acquire: pairs with the AcqRel CAS that added a tap.
            let current = word.load(Ordering::Acquire);
            if taps::stamp(current) != stamp {
                return TapState::Retired;
            }
            if taps::contains(current, tap) {
                return TapState::Present;
            }
            if taps::free_cell(current).is_some() {
                // Cells fill in order: later words are empty.
                break;
            }
        }
        TapState::Absent
    }

    /// Records `tap` in the instance of generation stamp `stamp`.
    fn record_tap(&self, stamp: u64, tap: TapId) -> Recorded {
        let mut first_tap = TapId(u16::MAX);
        for (index, word) in self.taps.iter().enumerate() {
            let mut current = word.load(Ordering::Acquire);
            loop {
                if taps::stamp(current) != stamp {
                    return Recorded::Retired;
                }
                if index == 0 {
                    first_tap = taps::first_tap(current);
                }
                if taps::contains(current, tap) {
                    return Recorded::Present;
                }
                let Some(cell) = taps::free_cell(current) else {
                    // Full, so immutable in this generation: a copy at this
                    // tap can only have gone into a later word.
                    break;
                };
                // CAS (tap): the word is still the one checked (same stamp, so
                // same instance; this tap absent; `cell` free). Of two copies
                // at one tap racing, one wins; the other reloads, finds the
                // tap and is a retransmission. AcqRel: a thread that sees this
                // tap sees what this thread did before (Acquire side: the same
                // for earlier taps).
                match word.compare_exchange_weak(
                    current,
                    taps::with(current, cell, tap),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Recorded::Joined { first_tap },
                    Err(actual) => current = actual,
                }
            }
        }
        Recorded::Joined { first_tap }
    }
}

impl DedupTable {
    /// A table of `capacity` entries (rounded up to a power of two; at least
    /// one) and a dedup window of `window_ns` nanoseconds of kernel time. All
    /// memory is allocated here: [`Self::bytes_per_entry`] times the capacity.
    pub fn new(capacity: usize, window_ns: u64) -> Self {
        Self::with_memory_advice(capacity, window_ns, None)
    }

    /// [`Self::new`], calling `advise(address, length)` on the entries'
    /// memory after it is allocated and before it is first written: the
    /// place to ask for huge pages (`af_packet::memory::advise_huge_pages`),
    /// which take a third off the time per copy of a large table.
    pub fn with_memory_advice(capacity: usize, window_ns: u64, advise: Option<fn(usize, usize)>) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        let probe_len = PROBE_LIMIT.min(capacity);
        let slots = capacity + probe_len - 1;
        let mut entries: Vec<Entry> = Vec::with_capacity(slots);
        if let Some(advise) = advise {
            advise(entries.as_ptr() as usize, slots * std::mem::size_of::<Entry>());
        }
        entries.extend((0..slots).map(|_| Entry::default()));
        Self {
            entries: entries.into_boxed_slice(),
            mask: capacity - 1,
            probe_len,
            window_ns,
            counters: (0..COUNTER_SHARDS).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Bytes per entry: 64, one cache line (1 Mi entries = 64 MiB).
    pub fn bytes_per_entry() -> usize {
        std::mem::size_of::<Entry>()
    }

    /// The number of entries (homes; the few spare entries past them are
    /// not counted).
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The dedup window, in nanoseconds.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// The counters, summed over their shards (each read relaxed: a
    /// snapshot, not an atomic one).
    pub fn counters(&self) -> DedupCounters {
        let mut sum = DedupCounters::default();
        for shard in self.counters.iter() {
            sum.inserts += shard.inserts.load(Ordering::Relaxed);
            sum.duplicates += shard.duplicates.load(Ordering::Relaxed);
            sum.betters += shard.betters.load(Ordering::Relaxed);
            sum.table_full += shard.table_full.load(Ordering::Relaxed);
            sum.expired_reuses += shard.expired_reuses.load(Ordering::Relaxed);
            sum.orphan_releases += shard.orphan_releases.load(Ordering::Relaxed);
        }
        sum
    }

    /// Decides what to do with one copy: `identity` seen at `tap` (rank
    /// `rank`, 0 best) at kernel time `timestamp_ns`, held under `ticket` if
    /// the verdict says so. See [`Verdict`] and the module docs.
    pub fn observe(
        &self,
        identity: PacketIdentity,
        tap: TapId,
        rank: u8,
        timestamp_ns: u64,
        ticket: HoldTicket,
    ) -> Verdict {
        self.observe_flow(identity, 0, tap, rank, timestamp_ns, ticket).verdict
    }

    /// [`Self::observe`] for a copy whose flow tag (32 bits of its observed
    /// 5-tuple's hash; 0 for none) the instance records when this copy
    /// starts it, and which a copy that joins it gets back: two copies of one
    /// packet whose tags differ crossed NAT (see [`crate::nat`]).
    pub fn observe_flow(
        &self,
        identity: PacketIdentity,
        flow_tag: u32,
        tap: TapId,
        rank: u8,
        timestamp_ns: u64,
        ticket: HoldTicket,
    ) -> Observation {
        let home = self.home(identity);
        let counters = self.shard(home);
        let backoff = Backoff::new();
        loop {
            let mut first_flow_tag = None;
            let mut first_tap = None;
            let mut held_best = None;
            let verdict = match self.scan(identity, home, tap, timestamp_ns) {
                Scan::Instance {
                    slot,
                    control,
                    flow_tag,
                } => {
                    first_flow_tag = Some(flow_tag);
                    self.join(slot, control, tap, rank, ticket).map(|joined| {
                        first_tap = Some(joined.first_tap);
                        held_best = joined.held_best;
                        joined.verdict
                    })
                }
                Scan::Free { slot, control } => {
                    // Lets a test run another copy here, between scan and claim.
                    #[cfg(test)]
                    tests::between_scan_and_claim();
                    let copy = (identity, flow_tag, tap, rank, timestamp_ns, ticket);
                    self.insert(slot, control, copy)
                }
                Scan::Full => Some(Verdict::TableFull),
                Scan::Retry => {
                    backoff.snooze();
                    None
                }
            };
            let Some(verdict) = verdict else { continue };
            let counter = match verdict {
                Verdict::New => &counters.inserts,
                Verdict::Duplicate { .. } => &counters.duplicates,
                Verdict::Better { .. } => &counters.betters,
                Verdict::TableFull => &counters.table_full,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Observation {
                verdict,
                first_flow_tag: first_flow_tag.filter(|_| !matches!(verdict, Verdict::New | Verdict::TableFull)),
                first_tap: first_tap.filter(|_| !matches!(verdict, Verdict::New | Verdict::TableFull)),
                held_best,
            };
        }
    }

    /// Starts fetching the home slot of `identity` into the cache, so that
    /// an [`Self::observe_flow`] or [`Self::release`] of it soon after does
    /// not wait for memory: a caller with several copies to look up
    /// prefetches them all first, and their misses overlap. A plain relaxed
    /// load whose value is discarded (safe code; the processor runs on past
    /// it while the line comes in); it changes nothing.
    #[inline]
    pub fn prefetch(&self, identity: PacketIdentity) {
        let entry = &self.entries[self.home(identity)];
        std::hint::black_box(entry.control.load(Ordering::Relaxed));
    }

    /// Ends the hold of a copy: `identity`, held under `ticket`, read at
    /// kernel time `timestamp_ns`. Call it once every capture thread has read
    /// past `timestamp_ns` + window. `true`: deliver the copy (it is still its
    /// instance's best, now marked delivered; or its instance expired and is
    /// gone, see the module docs). `false`: a better copy superseded it,
    /// drop it.
    pub fn release(&self, identity: PacketIdentity, ticket: HoldTicket, timestamp_ns: u64) -> bool {
        let home = self.home(identity);
        let tag = tag(identity);
        let mut instance_seen = false;
        for (_, entry) in self.probe(home) {
            // Acquire: pairs with the Release store that published LIVE.
            let control = entry.control.load(Ordering::Acquire);
            if control::phase(control) != control::LIVE || control::tag(control) != tag {
                continue;
            }
            let Some(snapshot) = entry.snapshot(control) else {
                // Reused since: not an instance of this identity any more.
                continue;
            };
            if !snapshot.is(identity) {
                continue;
            }
            if !self.within_window(timestamp_ns, snapshot.first_ts) {
                // Another instance of the same identity (a repeat at one tap
                // more than a window away): the copy cannot be held there.
                continue;
            }
            instance_seen = true;
            let stamp = stamp(control::generation(control));
            let mut current = entry.best.load(Ordering::Acquire);
            while best::stamp(current) == stamp && best::held_ticket(current) == Some(ticket) {
                // CAS (release): HELD(ticket) -> DELIVERED, same rank. It races
                // only with a better copy's CAS on this word; exactly one wins,
                // so the held copy is either delivered here or superseded
                // there. Tickets of held copies are unique, so HELD(ticket)
                // names this instance. AcqRel: orders it with the better
                // copy's CAS, which the loser's failure load (Acquire) sees.
                match entry.best.compare_exchange(
                    current,
                    best::delivered(stamp, best::rank(current)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return true,
                    Err(actual) => current = actual,
                }
            }
        }
        if instance_seen {
            false
        } else {
            self.shard(home).orphan_releases.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    fn home(&self, identity: PacketIdentity) -> usize {
        identity.hash as usize & self.mask
    }

    fn shard(&self, home: usize) -> &CounterShard {
        &self.counters[home & (COUNTER_SHARDS - 1)]
    }

    /// The slots a probe from `home` visits, in order, with their indices.
    fn probe(&self, home: usize) -> impl Iterator<Item = (usize, &Entry)> + '_ {
        self.entries[home..home + self.probe_len]
            .iter()
            .enumerate()
            .map(move |(offset, entry)| (home + offset, entry))
    }

    fn within_window(&self, timestamp_ns: u64, first_ts: u64) -> bool {
        timestamp_ns.abs_diff(first_ts) <= self.window_ns
    }

    /// Whether an insert at `timestamp_ns` may reuse the slot of an instance
    /// first seen at `first_ts` whose best copy is `best`.
    fn expired(&self, first_ts: u64, best: u64, timestamp_ns: u64) -> bool {
        let windows = if best::held_ticket(best).is_some() {
            HELD_RETENTION_WINDOWS
        } else {
            RETENTION_WINDOWS
        };
        timestamp_ns.saturating_sub(first_ts) > self.window_ns.saturating_mul(windows)
    }

    /// Step 1: the instance to join, or else the slot to insert into. Two
    /// passes: the first compares only tags, looking for the instance (most
    /// copies are duplicates and stop there); only a copy that found none
    /// looks at the other slots' ages, for the one to reuse.
    fn scan(&self, identity: PacketIdentity, home: usize, tap: TapId, timestamp_ns: u64) -> Scan {
        let tag = tag(identity);
        // (slot, control, distance of first_ts from this copy, flow tag)
        let mut instance: Option<(usize, u64, u64, u32)> = None;
        for (slot, entry) in self.probe(home) {
            // Acquire: pairs with the Release store that published LIVE, so
            // the words written before it are visible.
            let control = entry.control.load(Ordering::Acquire);
            // Most slots hold other identities: one compare of the tag tells,
            // and only those with this tag are looked at closely.
            if control::tag(control) != tag {
                continue;
            }
            match control::phase(control) {
                control::CLAIMED => return Scan::Retry,
                control::LIVE => {
                    let Some(snapshot) = entry.snapshot(control) else {
                        return Scan::Retry;
                    };
                    if snapshot.is(identity) && self.within_window(timestamp_ns, snapshot.first_ts) {
                        match entry.tap_state(stamp(control::generation(control)), tap) {
                            TapState::Absent => {
                                let distance = timestamp_ns.abs_diff(snapshot.first_ts);
                                if instance.is_none_or(|(_, _, closest, _)| distance < closest) {
                                    instance = Some((slot, control, distance, snapshot.flow_tag()));
                                }
                            }
                            TapState::Present => {}
                            TapState::Retired => return Scan::Retry,
                        }
                    }
                }
                // EMPTY, given back by an insert of this tag.
                _ => {}
            }
        }
        if let Some((slot, control, _, flow_tag)) = instance {
            return Scan::Instance {
                slot,
                control,
                flow_tag,
            };
        }
        self.free_slot(home, timestamp_ns)
    }

    /// The slot an insert at `timestamp_ns` takes: the first EMPTY one, else
    /// the oldest LIVE one that has expired. An unexpired instance of this
    /// very identity is never taken: within the window of this copy it is
    /// younger than any retention.
    fn free_slot(&self, home: usize, timestamp_ns: u64) -> Scan {
        // (slot, control, first_ts) of the oldest expired instance so far.
        let mut oldest: Option<(usize, u64, u64)> = None;
        for (slot, entry) in self.probe(home) {
            let control = entry.control.load(Ordering::Acquire);
            match control::phase(control) {
                control::EMPTY => return Scan::Free { slot, control },
                control::LIVE => {
                    // Relaxed: if these were overwritten by a newer
                    // generation, the claim CAS on `control` fails.
                    let first_ts = entry.first_ts.load(Ordering::Relaxed);
                    if oldest.is_some_and(|(_, _, oldest_ts)| oldest_ts <= first_ts) {
                        // No older than the slot already chosen.
                        continue;
                    }
                    let best = entry.best.load(Ordering::Relaxed);
                    if self.expired(first_ts, best, timestamp_ns) {
                        oldest = Some((slot, control, first_ts));
                    }
                }
                // Being written by an insert.
                _ => {}
            }
        }
        match oldest {
            Some((slot, control, _)) => Scan::Free { slot, control },
            None => Scan::Full,
        }
    }

    /// Step 2: joins the instance in `slot` (generation from `control`).
    /// `None`: it changed meanwhile, scan again.
    fn join(&self, slot: usize, control: u64, tap: TapId, rank: u8, ticket: HoldTicket) -> Option<Joined> {
        let entry = &self.entries[slot];
        let stamp = stamp(control::generation(control));
        let first_tap = match entry.record_tap(stamp, tap) {
            Recorded::Joined { first_tap } => first_tap,
            Recorded::Present | Recorded::Retired => return None,
        };
        let mut current = entry.best.load(Ordering::Acquire);
        loop {
            if best::stamp(current) != stamp || rank >= best::rank(current) {
                // At least as good a copy is there. (Or the instance expired
                // and was replaced after this copy joined it: its best copy
                // was delivered, or is held and its release will find no
                // instance and deliver it; this one is a duplicate either way.)
                let held_best = (best::stamp(current) == stamp)
                    .then(|| best::held_ticket(current).map(|held| (held, best::rank(current))))
                    .flatten();
                return Some(Joined {
                    verdict: Verdict::Duplicate { first_tap },
                    first_tap,
                    held_best,
                });
            }
            let superseded = best::held_ticket(current);
            let next = match superseded {
                Some(_) if rank > 0 => best::held(stamp, rank, ticket),
                // Rank 0 is final; after a delivery the caller delivers this one too.
                _ => best::delivered(stamp, rank),
            };
            // CAS (better): the best word is still the one compared (same
            // stamp, so same instance; rank still worse). Races with other
            // better copies and with the release of the held copy; exactly
            // one of a release and a better copy replacing the same HELD(t)
            // wins. AcqRel/Acquire as in `release`.
            match entry
                .best
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(Joined {
                        verdict: Verdict::Better { superseded },
                        first_tap,
                        held_best: None,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Step 3: starts a new instance in `slot`, whose control word was
    /// `control` (EMPTY or expired). `None`: lost the slot or gave way to a
    /// racing insert of the same instance, scan again.
    fn insert(
        &self,
        slot: usize,
        control: u64,
        (identity, flow_tag, tap, rank, timestamp_ns, ticket): (PacketIdentity, u32, TapId, u8, u64, HoldTicket),
    ) -> Option<Verdict> {
        let entry = &self.entries[slot];
        let tag = tag(identity);
        let generation = control::generation(control) + 1;
        // CAS (claim): the slot is still what the scan saw (EMPTY, or LIVE and
        // expired; the generation rules out ABA), so nothing was inserted into
        // it since. SeqCst: the claims and the second scans of two racing
        // inserts are in one total order (see `alone`).
        entry
            .control
            .compare_exchange(
                control,
                control::pack(control::CLAIMED, generation, tag),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .ok()?;
        if control::phase(control) == control::LIVE {
            self.shard(self.home(identity))
                .expired_reuses
                .fetch_add(1, Ordering::Relaxed);
        }
        // Seqlock writer: no store below becomes visible before the claim
        // (pairs with the Acquire fence in `Entry::snapshot`).
        fence(Ordering::Release);
        let stamp = stamp(generation);
        // `best` and `taps` first: a join or release prepared against the
        // previous instance now fails its CAS on the stamp.
        let best = if rank == 0 {
            best::delivered(stamp, 0)
        } else {
            best::held(stamp, rank, ticket)
        };
        entry.best.store(best, Ordering::Relaxed);
        entry.taps[0].store(taps::first(stamp, tap), Ordering::Relaxed);
        for word in &entry.taps[1..] {
            word.store(stamp, Ordering::Relaxed);
        }
        entry.hash.store(identity.hash, Ordering::Relaxed);
        entry.fields.store(
            u64::from(fold(identity.fields)) << 32 | u64::from(flow_tag),
            Ordering::Relaxed,
        );
        entry.first_ts.store(timestamp_ns, Ordering::Relaxed);
        if !self.alone(slot, identity, tap, timestamp_ns) {
            // Give the slot back; Release so the next claimer's Acquire sees
            // this generation's words as written.
            entry
                .control
                .store(control::pack(control::EMPTY, generation, 0), Ordering::Release);
            return None;
        }
        // Publish: Release pairs with the Acquire loads of `control` in the
        // scans, which then see every word written above.
        entry
            .control
            .store(control::pack(control::LIVE, generation, tag), Ordering::Release);
        Some(Verdict::New)
    }

    /// The second scan of an insert that claimed `own`: whether no other
    /// insert of the same instance raced it. SeqCst loads after the SeqCst
    /// claim: of two racing claims, the later one's owner sees the earlier
    /// one here (or what became of it). The lower slot keeps its insert: a
    /// claim in a higher slot is waited for (published: join it if it is this
    /// instance; given back: go on); a claim in a lower slot wins, and this
    /// insert gives way. Waits go from lower to higher slots only, so they
    /// never form a cycle.
    fn alone(&self, own: usize, identity: PacketIdentity, tap: TapId, timestamp_ns: u64) -> bool {
        let tag = tag(identity);
        let backoff = Backoff::new();
        for (slot, entry) in self.probe(self.home(identity)).filter(|&(slot, _)| slot != own) {
            loop {
                let control = entry.control.load(Ordering::SeqCst);
                if control::tag(control) != tag {
                    break;
                }
                match control::phase(control) {
                    control::CLAIMED if slot < own => return false,
                    control::CLAIMED => backoff.snooze(),
                    control::LIVE => {
                        let Some(snapshot) = entry.snapshot(control) else {
                            continue;
                        };
                        if !snapshot.is(identity) || !self.within_window(timestamp_ns, snapshot.first_ts) {
                            break;
                        }
                        match entry.tap_state(stamp(control::generation(control)), tap) {
                            TapState::Absent => return false,
                            TapState::Present => break,
                            TapState::Retired => continue,
                        }
                    }
                    _ => break,
                }
            }
        }
        true
    }
}

impl std::fmt::Debug for DedupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupTable")
            .field("capacity", &self.capacity())
            .field("window_ns", &self.window_ns)
            .field("counters", &self.counters())
            .finish()
    }
}

/// The tag kept in `control`: the high half of the hash (the home slot comes
/// from the low bits).
fn tag(identity: PacketIdentity) -> u32 {
    (identity.hash >> 32) as u32
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicU8;
    use std::sync::{Arc, Barrier};

    use proptest::prelude::*;

    use super::*;

    const WINDOW: u64 = 20_000_000;

    thread_local! {
        /// Run once by this thread's next insert, between its scan and its claim.
        static BETWEEN_SCAN_AND_CLAIM: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            const { std::cell::RefCell::new(None) };
    }

    pub(super) fn between_scan_and_claim() {
        if let Some(hook) = BETWEEN_SCAN_AND_CLAIM.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    /// A deterministic pseudo-random sequence (splitmix64).
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn id(n: u64) -> PacketIdentity {
        PacketIdentity {
            hash: Mix(n).next(),
            fields: n,
        }
    }

    struct Held {
        ticket: HoldTicket,
        identity: PacketIdentity,
        ts: u64,
        packet: usize,
        rank: u8,
    }

    /// What the engine does with the verdicts, on one thread: deliver on New
    /// rank 0, hold otherwise, release after the window.
    struct Caller<'t> {
        table: &'t DedupTable,
        held: Vec<Held>,
        next_ticket: u32,
        /// (packet, rank of the copy delivered)
        delivered: Vec<(usize, u8)>,
        late: usize,
    }

    impl<'t> Caller<'t> {
        fn new(table: &'t DedupTable) -> Self {
            Self {
                table,
                held: Vec::new(),
                next_ticket: 0,
                delivered: Vec::new(),
                late: 0,
            }
        }

        fn copy(&mut self, packet: usize, identity: PacketIdentity, tap: u16, rank: u8, ts: u64) -> Verdict {
            let ticket = HoldTicket(self.next_ticket);
            self.next_ticket += 1;
            let verdict = self.table.observe(identity, TapId(tap), rank, ts, ticket);
            match verdict {
                Verdict::New | Verdict::Better { superseded: Some(_) } if rank > 0 => self.held.push(Held {
                    ticket,
                    identity,
                    ts,
                    packet,
                    rank,
                }),
                Verdict::Better { superseded: None } => {
                    self.late += 1;
                    self.delivered.push((packet, rank));
                }
                Verdict::New | Verdict::Better { .. } | Verdict::TableFull => self.delivered.push((packet, rank)),
                Verdict::Duplicate { .. } => {}
            }
            verdict
        }

        /// Releases the copies whose window ended before `watermark`.
        fn release_before(&mut self, watermark: u64) {
            let window = self.table.window_ns();
            let (due, kept) = self
                .held
                .drain(..)
                .partition(|h| h.ts.saturating_add(window) < watermark);
            self.held = kept;
            for h in due {
                if self.table.release(h.identity, h.ticket, h.ts) {
                    self.delivered.push((h.packet, h.rank));
                }
            }
        }

        fn release_all(&mut self) {
            self.release_before(u64::MAX);
        }
    }

    const PERMUTATIONS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

    #[test]
    fn three_copies_in_every_order_deliver_exactly_the_best_one() {
        let taps = [10, 11, 12];
        let stamps = [1_000_000, 1_040_000, 1_900_000];
        for ranks in [[0, 1, 2], [2, 0, 1], [1, 2, 3], [2, 2, 1]] {
            let best = *ranks.iter().min().unwrap();
            for order in PERMUTATIONS {
                let table = DedupTable::new(64, WINDOW);
                let mut caller = Caller::new(&table);
                let verdicts: Vec<_> = order
                    .iter()
                    .map(|&i| caller.copy(0, id(1), taps[i], ranks[i], stamps[i]))
                    .collect();
                caller.release_all();
                assert_eq!(
                    caller.delivered,
                    [(0, best)],
                    "ranks {ranks:?}, order {order:?}: {verdicts:?}"
                );
                assert_eq!(caller.late, 0);
                assert_eq!(verdicts[0], Verdict::New);
                let counters = table.counters();
                assert_eq!(counters.inserts, 1);
                assert_eq!(counters.duplicates + counters.betters, 2);
                for verdict in &verdicts[1..] {
                    if let Verdict::Duplicate { first_tap } = verdict {
                        assert_eq!(*first_tap, TapId(taps[order[0]]));
                    }
                }
            }
        }
    }

    #[test]
    fn a_retransmission_at_the_same_tap_is_a_new_packet() {
        let table = DedupTable::new(64, WINDOW);
        let packet = id(7);
        let t = 5_000_000;
        assert_eq!(table.observe(packet, TapId(1), 0, t, HoldTicket(0)), Verdict::New);
        assert_eq!(
            table.observe(packet, TapId(2), 1, t + 10, HoldTicket(1)),
            Verdict::Duplicate { first_tap: TapId(1) }
        );
        // The same identity at tap 1 again, within the window: retransmitted.
        assert_eq!(
            table.observe(packet, TapId(1), 0, t + 1_000, HoldTicket(2)),
            Verdict::New
        );
        // Its copy at tap 2 joins the retransmission (the first instance has
        // tap 2 already).
        assert_eq!(
            table.observe(packet, TapId(2), 1, t + 1_010, HoldTicket(3)),
            Verdict::Duplicate { first_tap: TapId(1) }
        );
        assert_eq!(table.counters().inserts, 2);
    }

    #[test]
    fn identities_differing_in_one_half_never_merge() {
        let table = DedupTable::new(64, WINDOW);
        let a = id(3);
        let same_fields = PacketIdentity {
            hash: a.hash ^ 1,
            fields: a.fields,
        };
        let same_hash = PacketIdentity {
            hash: a.hash,
            fields: a.fields ^ 1,
        };
        assert_eq!(table.observe(a, TapId(1), 0, 100, HoldTicket(0)), Verdict::New);
        assert_eq!(
            table.observe(same_fields, TapId(2), 1, 100, HoldTicket(1)),
            Verdict::New
        );
        assert_eq!(table.observe(same_hash, TapId(2), 1, 100, HoldTicket(2)), Verdict::New);
        assert!(table.release(same_fields, HoldTicket(1), 100));
        assert!(table.release(same_hash, HoldTicket(2), 100));
    }

    #[test]
    fn window_edges_match_inclusive_on_both_sides() {
        let t = 10 * WINDOW;
        let table = DedupTable::new(64, WINDOW);
        for (n, copy_ts, expected) in [
            (1, t + WINDOW, Verdict::Duplicate { first_tap: TapId(1) }),
            (2, t + WINDOW + 1, Verdict::New),
            (3, t - WINDOW, Verdict::Duplicate { first_tap: TapId(1) }),
            (4, t - WINDOW - 1, Verdict::New),
        ] {
            assert_eq!(table.observe(id(n), TapId(1), 0, t, HoldTicket(0)), Verdict::New);
            assert_eq!(
                table.observe(id(n), TapId(2), 1, copy_ts, HoldTicket(1)),
                expected,
                "packet {n}"
            );
        }
    }

    #[test]
    fn expired_instances_are_reused_and_held_ones_kept_longer() {
        // Capacity 1: every identity probes the same single slot.
        let table = DedupTable::new(1, WINDOW);
        assert_eq!(table.observe(id(1), TapId(1), 0, 0, HoldTicket(0)), Verdict::New);
        assert_eq!(
            table.observe(id(2), TapId(1), 0, 2 * WINDOW, HoldTicket(1)),
            Verdict::TableFull
        );
        assert_eq!(
            table.observe(id(2), TapId(1), 0, 2 * WINDOW + 1, HoldTicket(2)),
            Verdict::New
        );
        assert_eq!(table.counters().expired_reuses, 1);

        // A held best copy keeps its instance 16 windows.
        let t = 100 * WINDOW;
        assert_eq!(table.observe(id(3), TapId(2), 1, t, HoldTicket(3)), Verdict::New);
        let late = t + HELD_RETENTION_WINDOWS * WINDOW;
        assert_eq!(
            table.observe(id(4), TapId(1), 0, late, HoldTicket(4)),
            Verdict::TableFull
        );
        assert_eq!(table.observe(id(4), TapId(1), 0, late + 1, HoldTicket(5)), Verdict::New);
        // Its release, that late, finds nothing and delivers.
        assert!(table.release(id(3), HoldTicket(3), t));
        let counters = table.counters();
        assert_eq!(counters.orphan_releases, 1);
        // 2 over 1, 3 over 2, 4 over 3.
        assert_eq!(counters.expired_reuses, 3);
        assert_eq!(counters.table_full, 2);
    }

    #[test]
    fn a_full_probe_range_passes_the_copy_and_counts_it() {
        // 4 homes and 3 spare entries past them: 7 slots, each probe 4 long.
        let table = DedupTable::new(4, WINDOW);
        let mut inserted = Vec::new();
        let full = (0..64).find(|&n| match table.observe(id(n), TapId(1), 0, 0, HoldTicket(0)) {
            Verdict::New => {
                inserted.push(n);
                false
            }
            Verdict::TableFull => true,
            other => panic!("{n}: {other:?}"),
        });
        assert!(full.is_some(), "a table of 7 slots took 64 live identities");
        assert!((4..=7).contains(&inserted.len()), "{inserted:?}");
        // Copies of instances already in the table are still matched.
        for &n in &inserted {
            assert_eq!(
                table.observe(id(n), TapId(2), 1, 0, HoldTicket(0)),
                Verdict::Duplicate { first_tap: TapId(1) }
            );
        }
        assert_eq!(table.counters().table_full, 1);
        assert_eq!(table.capacity(), 4);
    }

    #[test]
    fn release_after_better_answers_false_for_the_old_ticket_and_true_for_the_new() {
        let table = DedupTable::new(64, WINDOW);
        let packet = id(11);
        assert_eq!(table.observe(packet, TapId(3), 2, 1_000, HoldTicket(7)), Verdict::New);
        assert_eq!(
            table.observe(packet, TapId(2), 1, 1_100, HoldTicket(8)),
            Verdict::Better {
                superseded: Some(HoldTicket(7))
            }
        );
        assert!(!table.release(packet, HoldTicket(7), 1_000));
        assert!(table.release(packet, HoldTicket(8), 1_100));
        // Delivered already: a second release answers false.
        assert!(!table.release(packet, HoldTicket(8), 1_100));
        // A better copy read after the delivery is a late one: delivered too.
        assert_eq!(
            table.observe(packet, TapId(1), 0, 1_200, HoldTicket(9)),
            Verdict::Better { superseded: None }
        );
        assert_eq!(table.counters().betters, 2);
    }

    #[test]
    fn a_broadcast_at_ten_taps_is_delivered_once() {
        // An ARP request from container 1 on a host of 9 containers: its veth
        // (rank 0), docker0 (rank 1), the 8 other veths (rank 2).
        let table = DedupTable::new(64, WINDOW);
        let mut caller = Caller::new(&table);
        let broadcast = id(21);
        for tap in (0..10u16).rev() {
            let rank = tap.min(2) as u8;
            let _ = caller.copy(0, broadcast, tap, rank, 1_000 + u64::from(tap));
        }
        caller.release_all();
        assert_eq!(caller.delivered, [(0, 0)]);
        // Nine taps were recorded (9..1); the tenth copy, at tap 0, was not.
        // A second copy at the unrecorded tap is taken for a duplicate (the
        // documented limit)...
        assert!(matches!(
            table.observe(broadcast, TapId(0), 0, 2_000, HoldTicket(50)),
            Verdict::Duplicate { .. }
        ));
        // ...one at a recorded tap is a retransmission, a new packet.
        assert_eq!(
            table.observe(broadcast, TapId(5), 2, 2_000, HoldTicket(51)),
            Verdict::New
        );
    }

    #[test]
    fn an_entry_is_one_cache_line_and_capacity_a_power_of_two() {
        assert_eq!(DedupTable::bytes_per_entry(), 64);
        assert_eq!(DedupTable::new(1000, WINDOW).capacity(), 1024);
        assert_eq!(DedupTable::new(0, WINDOW).capacity(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Packets of 1-3 copies at distinct taps, random ranks, timestamps
        /// within one window of each other, read in an order shuffled by up
        /// to half a window of read lag; held copies released when the read
        /// clock minus the lag has passed their window.
        #[test]
        fn every_packet_is_delivered_once_by_its_best_copy(
            packets in proptest::collection::vec(
                (proptest::collection::vec((0u8..4, 0..=WINDOW), 1..=3), 0u16..6, 0..2 * WINDOW),
                1..80,
            ),
            seed in any::<u64>(),
        ) {
            let lag = WINDOW / 2;
            let mut mix = Mix(seed);
            let mut copies = Vec::new();
            let mut base = 0;
            for (packet, (packet_copies, first_tap, gap)) in packets.iter().enumerate() {
                base += gap;
                for (j, &(rank, jitter)) in packet_copies.iter().enumerate() {
                    let ts = base + jitter;
                    let tap = (first_tap + j as u16) % 6;
                    copies.push((ts + mix.below(lag + 1), packet, tap, rank, ts));
                }
            }
            copies.sort_unstable();
            let table = DedupTable::new(1024, WINDOW);
            let mut caller = Caller::new(&table);
            for &(read_at, packet, tap, rank, ts) in &copies {
                caller.release_before(read_at.saturating_sub(lag));
                let _ = caller.copy(packet, id(packet as u64), tap, rank, ts);
            }
            caller.release_all();
            let mut delivered = caller.delivered.clone();
            delivered.sort_unstable();
            let expected: Vec<_> = packets
                .iter()
                .enumerate()
                .map(|(packet, (c, _, _))| (packet, c.iter().map(|&(rank, _)| rank).min().unwrap()))
                .collect();
            prop_assert_eq!(delivered, expected);
            prop_assert_eq!(caller.late, 0);
            prop_assert_eq!(table.counters().table_full, 0);
        }
    }

    /// Two first copies of one packet whose scans chose different slots (one
    /// copy's timestamp, a window later, finds an old held instance expired
    /// that the other's does not) make one instance: the second scan of the
    /// insert finds the other and joins it. Regression test for the race the
    /// second scan exists for, made deterministic by running the other copy
    /// between this one's scan and claim.
    #[test]
    fn a_first_copy_that_chose_another_slot_joins_the_instance_inserted_meanwhile() {
        let w = 1_000;
        let table = Arc::new(DedupTable::new(2, w));
        // Slot contents: a held instance first seen at 0 (reusable after 16
        // windows), a delivered one first seen at 10 (after 2).
        assert_eq!(table.observe(id(1), TapId(1), 1, 0, HoldTicket(1)), Verdict::New);
        assert_eq!(table.observe(id(2), TapId(1), 0, 10, HoldTicket(2)), Verdict::New);
        let packet = id(3);
        let ts = 16 * w + 500;
        let other = Arc::clone(&table);
        BETWEEN_SCAN_AND_CLAIM.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                // Read a window earlier: only the delivered instance has expired.
                let verdict = other.observe(packet, TapId(2), 2, ts - w, HoldTicket(4));
                assert_eq!(verdict, Verdict::New);
            }))
        });
        // Both instances have expired for this copy: it chose the older, held one.
        let verdict = table.observe(packet, TapId(3), 0, ts, HoldTicket(3));
        assert_eq!(
            verdict,
            Verdict::Better {
                superseded: Some(HoldTicket(4))
            }
        );
        assert_eq!(table.counters().inserts, 3);
    }

    /// Two threads read the first copies of the same packets at the same
    /// moment (a barrier per packet): exactly one of them starts the
    /// instance. Checks the claim and second scan of `insert`.
    #[test]
    fn racing_first_copies_start_one_instance() {
        const ROUNDS: u64 = 20_000;
        let table = Arc::new(DedupTable::new(1 << 12, 1_000));
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2u16)
            .map(|tap| {
                let table = Arc::clone(&table);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    (0..ROUNDS)
                        .map(|n| {
                            barrier.wait();
                            let ts = n * 10_000;
                            table.observe(id(n), TapId(tap), tap as u8, ts, HoldTicket(n as u32))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let verdicts: Vec<Vec<Verdict>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (n, (&first, &second)) in verdicts[0].iter().zip(&verdicts[1]).enumerate() {
            let pair = [first, second];
            let news = pair.iter().filter(|v| **v == Verdict::New).count();
            assert_eq!(news, 1, "packet {n}: {pair:?}");
            assert!(!pair.contains(&Verdict::TableFull));
        }
    }

    /// Two capture threads race on copies of the same 100k packets: thread A
    /// reads the rank-0 copies, thread B the rank-1 and rank-2 ones, each in
    /// timestamp order as from a ring, at their own pace (neither more than a
    /// window ahead of the other, as threads fed by the kernel in real time).
    /// Each releases its held copies once both threads have read past the
    /// window (the low watermark). Every packet is delivered exactly once, by
    /// its rank-0 copy.
    #[test]
    fn two_threads_deliver_every_packet_exactly_once() {
        const PACKETS: usize = 100_000;
        const WINDOW: u64 = 200_000;
        const SPACING: u64 = 1_000;
        const JITTER: u64 = 50_000;
        let mut mix = Mix(42);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for packet in 0..PACKETS {
            let base = packet as u64 * SPACING;
            a.push((base + mix.below(JITTER), packet, 0u16, 0u8));
            b.push((base + mix.below(JITTER), packet, 1, 1));
            b.push((base + mix.below(JITTER), packet, 2, 2));
        }
        a.sort_unstable();
        b.sort_unstable();

        let table = Arc::new(DedupTable::new(1 << 14, WINDOW));
        let delivered: Arc<Vec<AtomicU8>> = Arc::new((0..PACKETS).map(|_| AtomicU8::new(0)).collect());
        // Per thread: the timestamp of its next unread copy (u64::MAX when
        // done): every copy with a smaller timestamp has been observed.
        let next: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(a[0].0), AtomicU64::new(b[0].0)]);
        let run = |me: usize, copies: Vec<(u64, usize, u16, u8)>| {
            let (table, delivered, next) = (Arc::clone(&table), Arc::clone(&delivered), Arc::clone(&next));
            std::thread::spawn(move || {
                let other = 1 - me;
                let mut held = VecDeque::new();
                let mut late_or_full = 0;
                let mut deliveries = 0;
                // Releases the held copies whose window ended before the low
                // watermark; returns how many were delivered.
                let release = |held: &mut VecDeque<(u64, usize, HoldTicket)>| {
                    let watermark = next[0].load(Ordering::Acquire).min(next[1].load(Ordering::Acquire));
                    let mut released = 0;
                    while let Some(&(ts, packet, ticket)) = held.front() {
                        if ts + WINDOW >= watermark {
                            break;
                        }
                        held.pop_front();
                        if table.release(id(packet as u64), ticket, ts) {
                            delivered[packet].fetch_add(1, Ordering::Relaxed);
                            released += 1;
                        }
                    }
                    released
                };
                for (i, &(ts, packet, tap, rank)) in copies.iter().enumerate() {
                    while ts > next[other].load(Ordering::Acquire).saturating_add(WINDOW) {
                        std::thread::yield_now();
                    }
                    let ticket = HoldTicket((i as u32) << 1 | me as u32);
                    match table.observe(id(packet as u64), TapId(tap), rank, ts, ticket) {
                        Verdict::New | Verdict::Better { superseded: Some(_) } if rank > 0 => {
                            held.push_back((ts, packet, ticket));
                        }
                        Verdict::Duplicate { .. } => {}
                        verdict => {
                            if matches!(verdict, Verdict::Better { superseded: None } | Verdict::TableFull) {
                                late_or_full += 1;
                            }
                            delivered[packet].fetch_add(1, Ordering::Relaxed);
                            deliveries += 1;
                        }
                    }
                    // Release: the observation above happens before another
                    // thread's release that reads this.
                    let after = copies.get(i + 1).map_or(u64::MAX, |c| c.0);
                    next[me].store(after, Ordering::Release);
                    deliveries += release(&mut held);
                }
                while !held.is_empty() {
                    deliveries += release(&mut held);
                    std::thread::yield_now();
                }
                (deliveries, late_or_full)
            })
        };
        let thread_a = run(0, a);
        let thread_b = run(1, b);
        let (by_a, late_a) = thread_a.join().unwrap();
        let (by_b, late_b) = thread_b.join().unwrap();
        assert_eq!((late_a, late_b), (0, 0), "late duplicates or table full");
        assert_eq!((by_a, by_b), (PACKETS, 0), "every packet by its rank-0 copy");
        let counts: Vec<u8> = delivered.iter().map(|d| d.load(Ordering::Relaxed)).collect();
        let wrong: Vec<_> = counts.iter().enumerate().filter(|(_, &c)| c != 1).take(10).collect();
        assert!(wrong.is_empty(), "packets not delivered exactly once: {wrong:?}");
        let counters = table.counters();
        assert_eq!(counters.inserts, PACKETS as u64);
        assert_eq!(counters.duplicates + counters.betters, 2 * PACKETS as u64);
        assert_eq!(counters.orphan_releases, 0);
        // Which order each packet's copies met in depends on the scheduler
        // (both usually happen: rank 0 first, then duplicates; held copies
        // superseded by the rank-0 one); shown, not asserted, so a loaded
        // machine does not fail the test.
        println!("betters {} duplicates {}", counters.betters, counters.duplicates);
    }
}
