//! The dedup engine: turns every captured copy into one decision (deliver,
//! hold, duplicate, malformed) so that each packet crossing the host is
//! delivered exactly once, by its copy closest to the container, with a
//! canonical flow key in the container's address space.
//!
//! [`SieveShared`] is the state all capture threads share: the lock-free
//! [`DedupTable`], the [`NatBindings`], the kept TCP super-frames
//! ([`RangeStore`]) and one watermark per thread. Each capture thread owns a
//! [`Sieve`]: its hold queue and its counters, so the per-packet path
//! touches shared memory only in the table (and, rarely, the NAT and range
//! stores).
//!
//! # Per copy ([`Sieve::process`])
//!
//! Parse, compute the NAT-invariant [`PacketIdentity`], the observed
//! [`FlowTuple`] and its symmetric hash, and ask the table:
//!
//! | verdict | outcome |
//! |---|---|
//! | new, rank 0 (container veth, where the packet entered the host) | delivered now: nothing can be better |
//! | new, worse rank | held: a better copy may still be read |
//! | duplicate | suppressed, counted by (first tap, this tap) |
//! | better than a held copy | held (or delivered if rank 0); the held one is dropped at its release |
//! | table full | delivered now, counted: a unique packet is never dropped |
//!
//! [`Sieve::process_batch`] does the same for a run of copies, parsing a
//! batch first and fetching its table slots together so their cache misses
//! overlap; the decisions are those of [`Sieve::process`] one by one.
//!
//! # Holding and the watermark
//!
//! A held copy is copied out of the ring and released once every capture
//! thread has read a window past it: each thread publishes its watermark
//! ([`Sieve::advance`], the kernel time up to which it has read every
//! ring it serves) and a copy held at `ts` is released when the lowest
//! watermark passes `ts + window` ([`Sieve::release`]). By then every copy of
//! the packet has been read, whatever order the rings were read in, so the
//! decision does not depend on it. At release the table says whether the
//! copy is still its packet's best; a TCP copy is then also checked against
//! kept super-frames ([`crate::tcp_ranges`]). Held bytes per thread are
//! bounded: past the budget the oldest copies are released early (counted as
//! `hold_overflow`; a duplicate may then be delivered, never a unique packet
//! lost).
//!
//! # Holds that end sooner
//!
//! Some copies prove that nothing better can come, since a packet enters
//! the host at one place only. A container veth's outgoing copy waits for a
//! possible incoming copy at another container's veth; it is delivered at
//! once when the packet's copy at an uplink's incoming tap was read before
//! it, or when its source is one of the host's own addresses (the host's
//! stack sent it). When the uplink copy is read after it, the held copy's
//! hold ends at the holder's next release instead of after the window: the
//! thread that read the uplink copy ends it itself when it holds it, and
//! otherwise signals the other threads through a bounded queue each (a
//! signal that finds the queue full is lost, and that hold lasts its
//! window). Counted as `released_early`.
//!
//! # Accounting
//!
//! Every copy given to [`Sieve::process`] ends as exactly one of delivered,
//! duplicate or malformed, once released: `copies = delivered + duplicates +
//! malformed + held_now` ([`SieveCounters::balances`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use crate::dedup_table::{DedupTable, HoldTicket, TapId, Verdict, DEFAULT_WINDOW_NS};
use crate::error::ParseError;
use crate::flow_key::{flow_tag, FlowHasher, FlowKey, FlowTuple};
use crate::hold_queue::{HoldKey, HoldQueue};
use crate::identity::{IdentityHasher, PacketIdentity};
use crate::nat::{NatBindings, NatTranslation};
use crate::packet_store::{PacketStore, StoredBytes};
use crate::parse::{parse_frame, parse_network, ParsedPacket, Transport};
use crate::tap::{TapPoint, TapRole};
use crate::tcp_ranges::{Coverage, RangeStore};

/// The engine's settings, fixed at start-up.
#[derive(Clone, Debug)]
pub struct SieveConfig {
    /// Dedup table entries (rounded up to a power of two); 64 bytes each.
    pub table_capacity: usize,
    /// The dedup window, nanoseconds of kernel time.
    pub window_ns: u64,
    /// Bytes of held copies one thread may keep before releasing early.
    pub hold_budget_bytes: usize,
    /// Payload bytes of TCP super-frames kept for byte-range dedup.
    pub range_budget_bytes: usize,
    /// NAT binding entries kept: two per NAT'd connection (`--nat-bindings`).
    pub nat_capacity: usize,
    /// Capture threads that may use the engine at once.
    pub max_threads: usize,
    /// Hash keys; `None` draws random ones (the default: crafted traffic
    /// cannot aim at buckets). Fixed keys reproduce a run.
    pub seeds: Option<[u64; 4]>,
    /// Called with (address, length) of the dedup table's memory before it
    /// is first written: where the capture binary asks for huge pages.
    pub memory_advice: Option<fn(usize, usize)>,
    /// The host's own addresses (those configured on its interfaces): a
    /// packet from one of them was sent by the host's stack, so it did not
    /// enter at a container's veth, and its copy on the container veth it
    /// goes out of is the best there will be (delivered without a hold).
    pub host_addresses: Vec<std::net::IpAddr>,
}

impl Default for SieveConfig {
    fn default() -> Self {
        Self {
            table_capacity: 1 << 20,
            window_ns: DEFAULT_WINDOW_NS,
            hold_budget_bytes: 64 << 20,
            range_budget_bytes: 64 << 20,
            nat_capacity: 1 << 19,
            max_threads: 64,
            seeds: None,
            memory_advice: None,
            host_addresses: Vec::new(),
        }
    }
}

/// Too many threads asked for a [`Sieve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyThreads {
    /// [`SieveConfig::max_threads`].
    pub max_threads: usize,
}

impl std::fmt::Display for TooManyThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the dedup engine serves at most {} capture threads",
            self.max_threads
        )
    }
}

impl std::error::Error for TooManyThreads {}

/// Watermark of a slot no thread uses: holds nobody back.
const UNUSED: u64 = u64::MAX;

/// The state every capture thread shares.
#[derive(Debug)]
pub struct SieveShared {
    table: DedupTable,
    identities: IdentityHasher,
    flows: FlowHasher,
    nat: NatBindings,
    ranges: RangeStore,
    watermarks: Box<[CachePadded<AtomicU64>]>,
    /// Per thread slot: holds another thread proved needless, for the
    /// holder to end at its next release (see [`EarlyEnd`]).
    early_ends: Box<[ArrayQueue<EarlyEnd>]>,
    slots_in_use: Mutex<Vec<bool>>,
    window_ns: u64,
    hold_budget_bytes: usize,
    host_addresses: Box<[std::net::IpAddr]>,
}

impl SieveShared {
    /// Allocates every table (all memory the engine's shared state will use).
    pub fn new(config: &SieveConfig) -> Arc<Self> {
        let (identities, flows) = match config.seeds {
            Some(seeds) => (
                IdentityHasher::with_seeds(seeds),
                FlowHasher::with_seeds([seeds[3], seeds[2], seeds[1], seeds[0]]),
            ),
            None => (IdentityHasher::new(), FlowHasher::new()),
        };
        Arc::new(Self {
            table: DedupTable::with_memory_advice(config.table_capacity, config.window_ns, config.memory_advice),
            identities,
            nat: NatBindings::new(config.nat_capacity, flows.clone()),
            flows,
            ranges: RangeStore::new(config.range_budget_bytes, config.window_ns),
            watermarks: (0..config.max_threads.max(1))
                .map(|_| CachePadded::new(AtomicU64::new(UNUSED)))
                .collect(),
            early_ends: (0..config.max_threads.max(1))
                .map(|_| ArrayQueue::new(EARLY_END_QUEUE))
                .collect(),
            slots_in_use: Mutex::new(vec![false; config.max_threads.max(1)]),
            window_ns: config.window_ns,
            hold_budget_bytes: config.hold_budget_bytes,
            host_addresses: config.host_addresses.clone().into_boxed_slice(),
        })
    }

    /// Whether `tuple`'s source is one of the host's own addresses.
    fn sent_by_host(&self, tuple: Option<&FlowTuple>) -> bool {
        tuple.is_some_and(|tuple| self.host_addresses.contains(&tuple.src.addr))
    }

    /// A per-thread engine. Its watermark starts at 0, holding every release
    /// back until the thread publishes one.
    pub fn thread<M>(self: &Arc<Self>) -> Result<Sieve<M>, TooManyThreads> {
        let mut in_use = self.slots_in_use.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = in_use.iter().position(|used| !used).ok_or(TooManyThreads {
            max_threads: in_use.len(),
        })?;
        in_use[slot] = true;
        self.watermarks[slot].store(0, Ordering::Release);
        // Signals meant for the thread that used the slot before.
        while self.early_ends[slot].pop().is_some() {}
        Ok(Sieve {
            shared: Arc::clone(self),
            slot,
            held: Vec::new(),
            free_held: Vec::new(),
            order: HoldQueue::default(),
            held_live: 0,
            by_sequence: vec![u32::MAX; 1 << 16].into_boxed_slice(),
            early_ends: Vec::new(),
            // Past the hold budget the oldest holds end early, so the chunks
            // in use stay near it; a quarter more for those a hold ended
            // early (proved needless) keeps from emptying.
            store: PacketStore::with_limit(self.hold_budget_bytes.saturating_add(self.hold_budget_bytes / 4)),
            held_bytes: 0,
            next_order: 0,
            // Threads start their sequences apart.
            next_ticket: (slot as u16).wrapping_mul(4099),
            tap_ranks: Vec::new(),
            counters: SieveCounters::default(),
            pairs: PairCounts::default(),
        })
    }

    /// The lowest watermark of the threads in use (`u64::MAX` if none).
    pub fn low_watermark(&self) -> u64 {
        self.watermarks
            .iter()
            .map(|w| w.load(Ordering::Acquire))
            .min()
            .unwrap_or(UNUSED)
    }

    /// The dedup table.
    pub fn table(&self) -> &DedupTable {
        &self.table
    }

    /// The learned NAT bindings.
    pub fn nat(&self) -> &NatBindings {
        &self.nat
    }

    /// The kept TCP super-frames.
    pub fn ranges(&self) -> &RangeStore {
        &self.ranges
    }

    /// The dedup window, nanoseconds.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// The flow hasher (symmetric flow hashes of delivered packets).
    pub fn flow_hasher(&self) -> &FlowHasher {
        &self.flows
    }
}

/// How a copy's bytes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkLayer {
    /// An Ethernet header.
    Ethernet,
    /// A header the parser skips (a Linux cooked header, or none for raw
    /// IP), then the network layer.
    Network {
        /// The EtherType of the network layer.
        ethertype: u16,
        /// Bytes before the network layer.
        offset: usize,
    },
}

/// One captured copy of a packet.
#[derive(Clone, Copy, Debug)]
pub struct CapturedCopy<'a> {
    /// The captured bytes, starting at `link`.
    pub bytes: &'a [u8],
    /// What the bytes start with.
    pub link: LinkLayer,
    /// A VLAN tag the capture reported out of band: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// Where it was captured.
    pub tap: TapPoint,
    /// Kernel timestamp, nanoseconds since the epoch.
    pub timestamp_ns: u64,
}

/// What the engine hands on with a delivered copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The canonical flow: the container-side 5-tuple in the packet's
    /// direction when a NAT binding is known, the observed one otherwise;
    /// `None` for non-IP frames.
    pub flow: Option<FlowKey>,
    /// The symmetric flow hash to fan out by: the canonical flow's, or the
    /// MAC pair's for non-IP frames. Equal for both directions.
    pub flow_hash: u64,
    /// The NAT binding of the packet's flow, in its direction, when known.
    pub nat: Option<NatTranslation>,
    /// A TCP segment that overlaps bytes seen at another tap point with
    /// different data.
    pub overlap_different_data: bool,
}

/// What became of a copy given to [`Sieve::process`].
#[derive(Debug)]
pub enum Outcome<M> {
    /// Deliver it now.
    Deliver {
        /// The caller's metadata, handed back.
        meta: M,
        /// Flow key and flags.
        delivery: Delivery,
    },
    /// Held (bytes and metadata copied into the engine); it comes out of
    /// [`Sieve::release`] or is dropped there as a duplicate.
    Held,
    /// A duplicate of a copy seen at another tap point: suppressed.
    Duplicate(M, SuppressedCopy),
    /// Not parseable: counted, not delivered.
    Malformed(M, ParseError),
}

/// A copy suppressed as a duplicate, with what attributes it to its flow
/// ([`Sieve::canonical`] gives the flow in the container's address space).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuppressedCopy {
    /// Where it was captured.
    pub tap: TapPoint,
    /// Its kernel timestamp.
    pub timestamp_ns: u64,
    /// Its 5-tuple as captured; `None` for non-IP frames.
    pub tuple: Option<FlowTuple>,
    /// The symmetric hash of that tuple (of the MAC pair for non-IP frames).
    pub flow_hash: u64,
}

/// The rank of a container veth's outgoing copy ([`TapPoint::rank`]).
const VETH_OUT_RANK: u8 = 1;
/// The rank of an uplink's incoming copy.
const UPLINK_IN_RANK: u8 = 4;

/// A held copy whose hold ended with a delivery.
#[derive(Debug)]
pub struct Released<'a, M> {
    /// The copy's bytes.
    pub bytes: &'a [u8],
    /// What they start with.
    pub link: LinkLayer,
    /// The out-of-band VLAN tag it had.
    pub vlan: Option<(u16, u16)>,
    /// Where it was captured.
    pub tap: TapPoint,
    /// Its kernel timestamp.
    pub timestamp_ns: u64,
    /// The caller's metadata.
    pub meta: M,
    /// Flow key and flags.
    pub delivery: Delivery,
}

/// How a hold ended.
#[derive(Debug)]
pub enum HoldEnd<'a, M> {
    /// The copy is delivered.
    Delivered(Released<'a, M>),
    /// The copy was a duplicate after all (a better copy came, or its TCP
    /// bytes were seen at a better tap).
    Suppressed {
        /// The copy.
        copy: SuppressedCopy,
        /// The caller's metadata.
        meta: M,
    },
}

/// One thread's counters; sum them with [`SieveCounters::add`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SieveCounters {
    /// Copies given to [`Sieve::process`].
    pub copies: u64,
    /// Copies delivered (now or after a hold).
    pub delivered: u64,
    /// Copies suppressed as duplicates, for any reason below.
    pub duplicates: u64,
    /// Of the duplicates: held copies a better copy replaced.
    pub superseded: u64,
    /// Of the duplicates: TCP segments covered by a super-frame seen at a
    /// better tap point.
    pub tcp_range_duplicates: u64,
    /// Copies held (each counted once, when held).
    pub held: u64,
    /// Held copies delivered when their hold ended (window passed, hold
    /// budget spent, or the thread stopping).
    pub released_after_window: u64,
    /// Held copies delivered before their window passed because a later
    /// copy proved nothing better could come: a container veth's outgoing
    /// copy of a packet whose uplink copy was read after it.
    pub released_early: u64,
    /// Held copies released before the window passed because the hold
    /// budget was spent.
    pub hold_overflow: u64,
    /// Copies delivered because the table had no room for them.
    pub table_full_passes: u64,
    /// Better copies read after the packet's first copy was delivered: both
    /// were delivered.
    pub late_duplicates: u64,
    /// TCP segments delivered although they overlap bytes seen elsewhere
    /// with different data.
    pub overlap_different_data: u64,
    /// Copies that did not parse.
    pub malformed: u64,
    /// NAT bindings this thread learned.
    pub nat_bindings_learned: u64,
    /// Duplicates by (tap of the copy kept or seen first, tap of the copy
    /// suppressed).
    pub by_tap_pair: HashMap<(TapId, TapId), u64, ahash::RandomState>,
}

impl SieveCounters {
    /// Adds another thread's counters.
    pub fn add(&mut self, other: &SieveCounters) {
        self.copies += other.copies;
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.superseded += other.superseded;
        self.tcp_range_duplicates += other.tcp_range_duplicates;
        self.held += other.held;
        self.released_after_window += other.released_after_window;
        self.released_early += other.released_early;
        self.hold_overflow += other.hold_overflow;
        self.table_full_passes += other.table_full_passes;
        self.late_duplicates += other.late_duplicates;
        self.overlap_different_data += other.overlap_different_data;
        self.malformed += other.malformed;
        self.nat_bindings_learned += other.nat_bindings_learned;
        for (pair, count) in &other.by_tap_pair {
            *self.by_tap_pair.entry(*pair).or_default() += count;
        }
    }

    /// Whether every copy is accounted for, given the copies still held.
    pub fn balances(&self, held_now: u64) -> bool {
        self.copies == self.delivered + self.duplicates + self.malformed + held_now
    }

    fn pair(&mut self, kept: TapId, suppressed: TapId, count: u64) {
        *self.by_tap_pair.entry((kept, suppressed)).or_default() += count;
    }
}

/// Where a TCP copy's payload sits in its bytes.
#[derive(Clone, Copy, Debug)]
struct TcpSegment {
    ack: u32,
    seq: u32,
    offset: usize,
    len: usize,
}

#[derive(Debug)]
struct HeldCopy<M> {
    identity: PacketIdentity,
    ticket: HoldTicket,
    /// Its key's `order` in the hold queue: a key whose copy ended early
    /// (and whose index was reused since) is recognised as stale.
    order: u64,
    /// The copy's bytes, in the thread's [`PacketStore`].
    bytes: StoredBytes,
    link: LinkLayer,
    vlan: Option<(u16, u16)>,
    tap: TapPoint,
    timestamp_ns: u64,
    meta: M,
    tcp: Option<TcpSegment>,
    tuple: Option<FlowTuple>,
    flow_hash: u64,
}

/// One capture thread's engine. Drop it (or call [`Sieve::finish`]) when the
/// thread stops, so it no longer holds other threads' releases back.
#[derive(Debug)]
pub struct Sieve<M> {
    shared: Arc<SieveShared>,
    slot: usize,
    held: Vec<Option<HeldCopy<M>>>,
    free_held: Vec<usize>,
    /// (release after, arrival order, index in `held`), earliest first.
    /// A hold ended early leaves its key behind, skipped when reached.
    order: HoldQueue,
    /// Copies held now.
    held_live: usize,
    /// The index in `held` of the last container veth's outgoing copy held
    /// under each ticket sequence (`u32::MAX`: none): where a signal that
    /// its hold is needless finds it. Checked against the copy's ticket and
    /// identity, so an entry overwritten or gone stale only loses the early
    /// end (the hold lasts its window).
    by_sequence: Box<[u32]>,
    /// This thread's own holds proved needless since its last release.
    early_ends: Vec<EarlyEnd>,
    /// The held copies' bytes: large chunks reused as holds end in about
    /// the order they began, not an allocation per held copy.
    store: PacketStore,
    held_bytes: usize,
    next_order: u64,
    next_ticket: u16,
    /// The rank of each tap point this thread has seen a copy at, by tap
    /// id (`u8::MAX` for unknown).
    tap_ranks: Vec<u8>,
    counters: SieveCounters,
    /// Duplicates by tap pair not yet in `counters.by_tap_pair`: added there
    /// before every public method returns.
    pairs: PairCounts,
}

/// Tap ids below this count their pairs in [`PairCounts`]' array (512 KiB
/// of zeros, of which only the lines of pairs that occur are ever touched):
/// two taps per interface, so 128 interfaces. At 32 the bench's 64
/// containers (130 taps) went past it for most duplicates (callgrind).
const DENSE_TAPS: usize = 256;

/// Per tap pair duplicate counts of the copies processed since the last
/// flush: an array increment per duplicate instead of a hash map update
/// (about 45 instructions per copy), folded into
/// [`SieveCounters::by_tap_pair`] once per call.
#[derive(Debug)]
struct PairCounts {
    counts: Box<[u64]>,
    /// Indexes of `counts` that are not 0.
    touched: Vec<usize>,
}

impl Default for PairCounts {
    fn default() -> Self {
        Self {
            counts: vec![0; DENSE_TAPS * DENSE_TAPS].into_boxed_slice(),
            touched: Vec::new(),
        }
    }
}

impl PairCounts {
    /// Counts a duplicate: `suppressed` against `kept`.
    fn count(&mut self, counters: &mut SieveCounters, kept: TapId, suppressed: TapId) {
        let (k, s) = (usize::from(kept.0), usize::from(suppressed.0));
        if k >= DENSE_TAPS || s >= DENSE_TAPS {
            counters.pair(kept, suppressed, 1);
            return;
        }
        let index = k * DENSE_TAPS + s;
        if self.counts[index] == 0 {
            self.touched.push(index);
        }
        self.counts[index] += 1;
    }

    /// Adds the counts to `counters` and starts again from 0.
    fn flush(&mut self, counters: &mut SieveCounters) {
        for index in self.touched.drain(..) {
            let count = std::mem::take(&mut self.counts[index]);
            counters.pair(
                TapId((index / DENSE_TAPS) as u16),
                TapId((index % DENSE_TAPS) as u16),
                count,
            );
        }
    }
}

/// Signals each thread's queue of early ends holds; past it a signal is
/// lost and its hold lasts the window (nothing else changes).
const EARLY_END_QUEUE: usize = 4096;

/// A copy held under `ticket` whose hold no copy can end any more but its
/// own release: a copy of the same packet proved nothing better will come.
#[derive(Clone, Copy, Debug)]
struct EarlyEnd {
    identity: PacketIdentity,
    ticket: HoldTicket,
}

/// Copies [`Sieve::process_batch`] parses and fetches the table slots of
/// before deciding on them.
pub const BATCH: usize = 16;

/// A parsed copy, ready for the table: see [`Sieve::prepare`].
#[derive(Clone, Copy, Debug)]
struct Prepared {
    identity: PacketIdentity,
    tuple: Option<FlowTuple>,
    flow_hash: u64,
    tag: u32,
    tcp: Option<TcpSegment>,
}

impl<M> Sieve<M> {
    /// The shared state.
    pub fn shared(&self) -> &Arc<SieveShared> {
        &self.shared
    }

    /// This thread's counters. The duplicates by tap pair
    /// ([`SieveCounters::by_tap_pair`]) are those of the copies processed
    /// up to the last [`Self::release`], [`Self::finish`] or
    /// [`Self::process_batch`]; every other counter is up to date.
    pub fn counters(&self) -> &SieveCounters {
        &self.counters
    }

    /// Copies held now.
    pub fn held_now(&self) -> usize {
        self.held_live
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The earliest timestamp among held copies: no delivery of this thread
    /// can have an earlier one any more, except copies yet to be read.
    pub fn oldest_held_ns(&self) -> Option<u64> {
        // Held in order of timestamp + window: the first is the oldest.
        self.order
            .peek()
            .map(|key| key.after.saturating_sub(self.shared.window_ns))
    }

    /// Publishes that this thread has read every copy with a kernel
    /// timestamp below `timestamp_ns` from every ring it serves. Watermarks
    /// only move forward.
    pub fn advance(&self, timestamp_ns: u64) {
        self.shared.watermarks[self.slot].fetch_max(timestamp_ns, Ordering::AcqRel);
    }

    /// Decides what to do with one copy; `meta` is the caller's (interface,
    /// lengths...), handed back or kept with a held copy.
    pub fn process(&mut self, copy: &CapturedCopy<'_>, meta: M) -> Outcome<M> {
        self.counters.copies += 1;
        let outcome = match self.prepare(copy) {
            Ok(prepared) => self.decide(copy, prepared, meta),
            Err(error) => {
                self.counters.malformed += 1;
                Outcome::Malformed(meta, error)
            }
        };
        // The per-tap-pair counts are flushed into `counters` by the next
        // release or finish (a map entry per duplicate here cost 1.5 % of
        // the live pipeline's time).
        outcome
    }

    /// [`Self::process`] for several copies, in order, with the same
    /// outcomes handed to `out` in the same order: the copies are taken
    /// [`BATCH`] at a time, each batch parsed and hashed first and the dedup
    /// table's slots of its copies fetched from memory together
    /// ([`DedupTable::prefetch`]), so their cache misses overlap instead of
    /// each copy waiting for its own. Decisions, counters and releases are
    /// exactly those of calling [`Self::process`] on each copy.
    pub fn process_batch<'a, I>(&mut self, copies: I, mut out: impl FnMut(Outcome<M>))
    where
        I: IntoIterator<Item = (CapturedCopy<'a>, M)>,
    {
        let mut copies = copies.into_iter();
        let mut batch: Vec<(CapturedCopy<'a>, M, Result<Prepared, ParseError>)> = Vec::with_capacity(BATCH);
        loop {
            batch.extend(copies.by_ref().take(BATCH).map(|(copy, meta)| {
                let prepared = self.prepare(&copy);
                (copy, meta, prepared)
            }));
            if batch.is_empty() {
                self.pairs.flush(&mut self.counters);
                return;
            }
            for (_, _, prepared) in &batch {
                if let Ok(prepared) = prepared {
                    self.shared.table.prefetch(prepared.identity);
                }
            }
            for (copy, meta, prepared) in batch.drain(..) {
                self.counters.copies += 1;
                out(match prepared {
                    Ok(prepared) => self.decide(&copy, prepared, meta),
                    Err(error) => {
                        self.counters.malformed += 1;
                        Outcome::Malformed(meta, error)
                    }
                });
            }
        }
    }

    /// What a copy's decision needs from its bytes: parse, identity, flow.
    /// Reads nothing shared but the hash keys.
    fn prepare(&self, copy: &CapturedCopy<'_>) -> Result<Prepared, ParseError> {
        // The bytes from the link layer on, as the identity of non-IP frames
        // covers them: a cooked header differs per tap, so it is left out.
        let link_bytes = match copy.link {
            LinkLayer::Ethernet => copy.bytes,
            LinkLayer::Network { offset, .. } => copy.bytes.get(offset..).unwrap_or_default(),
        };
        // The parse written straight into `parsed` and borrowed there: as a
        // field of a tuple, or moved out by `parsed?`, the whole ParsedPacket
        // (about 190 bytes) was copied once more, 27 to 40 instructions per
        // captured copy.
        let parsed = match copy.link {
            LinkLayer::Ethernet => parse_frame(copy.bytes, copy.vlan),
            LinkLayer::Network { ethertype, .. } => parse_network(ethertype, link_bytes),
        };
        let packet = match &parsed {
            Ok(packet) => packet,
            Err(error) => return Err(*error),
        };
        let shared = &*self.shared;
        let identity = shared.identities.identity(link_bytes, packet);
        let tuple = FlowTuple::of(packet);
        let (flow_hash, tag) = match &tuple {
            Some(tuple) => {
                let hash = shared.flows.symmetric(tuple);
                (hash, flow_tag(hash))
            }
            None => (shared.flows.link_symmetric(link_bytes), 0),
        };
        Ok(Prepared {
            identity,
            tuple,
            flow_hash,
            tag,
            tcp: tcp_segment(copy.bytes, packet),
        })
    }

    /// The decision on a parsed copy (counted in `copies` already).
    fn decide(&mut self, copy: &CapturedCopy<'_>, prepared: Prepared, meta: M) -> Outcome<M> {
        let Prepared {
            identity,
            tuple,
            flow_hash,
            tag,
            tcp,
        } = prepared;
        let shared = &*self.shared;
        let tap = copy.tap;
        let rank = tap.rank();
        let slot = usize::from(tap.id.0);
        if self.tap_ranks.len() <= slot {
            self.tap_ranks.resize(slot + 1, u8::MAX);
        }
        self.tap_ranks[slot] = rank;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let ticket = ticket_for(tap, self.next_ticket);
        let observation = shared
            .table
            .observe_flow(identity, tag, tap.id, rank, copy.timestamp_ns, ticket);
        if let Some(tuple) = tuple {
            let first_tag = observation.first_flow_tag;
            if learn_nat(&shared.nat, tuple, flow_hash, tap, first_tag, copy.timestamp_ns) {
                self.counters.nat_bindings_learned += 1;
            }
        }
        let deliver_now = match observation.verdict {
            Verdict::Duplicate { first_tap } => {
                // The copy that entered the host at an uplink, read after
                // its container veth's outgoing copy: that copy is held in
                // case the packet entered at another container's veth, which
                // this one proves it did not. Its hold can end now.
                if rank == UPLINK_IN_RANK {
                    if let Some((held, VETH_OUT_RANK)) = observation.held_best {
                        self.signal_early_end(EarlyEnd { identity, ticket: held });
                    }
                }
                self.counters.duplicates += 1;
                self.pairs.count(&mut self.counters, first_tap, tap.id);
                let suppressed = SuppressedCopy {
                    tap,
                    timestamp_ns: copy.timestamp_ns,
                    tuple,
                    flow_hash,
                };
                return Outcome::Duplicate(meta, suppressed);
            }
            Verdict::TableFull => {
                self.counters.table_full_passes += 1;
                true
            }
            // A container veth's outgoing copy of a packet the host itself
            // sent: nothing can be better (it did not come in from a
            // container), so no hold; marked delivered in the table.
            Verdict::New => {
                rank == 0
                    || (rank == VETH_OUT_RANK
                        && shared.sent_by_host(tuple.as_ref())
                        && shared.table.release(identity, ticket, copy.timestamp_ns))
            }
            Verdict::Better { superseded: None } => {
                self.counters.late_duplicates += 1;
                true
            }
            Verdict::Better {
                superseded: Some(superseded),
            } => {
                self.pairs.count(&mut self.counters, tap.id, ticket_tap(superseded));
                // A container veth's outgoing copy of a packet that entered
                // the host at an uplink: no copy can be better (a packet
                // that came in from outside does not also come in from a
                // container's veth), so its hold ends now, if the table
                // still says it is this copy's.
                rank == 0
                    || (rank == VETH_OUT_RANK
                        && (observation
                            .first_tap
                            .is_some_and(|first| self.tap_ranks.get(usize::from(first.0)) == Some(&UPLINK_IN_RANK))
                            || shared.sent_by_host(tuple.as_ref()))
                        && shared.table.release(identity, ticket, copy.timestamp_ns))
            }
        };
        if let Some(segment) = tcp {
            if RangeStore::is_super_frame(segment.len) {
                let payload = &copy.bytes[segment.offset..segment.offset + segment.len];
                shared
                    .ranges
                    .keep(segment.ack, segment.seq, payload, tap.id, rank, copy.timestamp_ns);
            }
        }
        if deliver_now {
            self.counters.delivered += 1;
            let delivery = self.delivery(tuple, flow_hash, false);
            return Outcome::Deliver { meta, delivery };
        }
        let bytes = self.store.store(copy.bytes);
        self.hold(HeldCopy {
            identity,
            ticket,
            order: 0,
            bytes,
            link: copy.link,
            vlan: copy.vlan,
            tap,
            timestamp_ns: copy.timestamp_ns,
            meta,
            tcp,
            tuple,
            flow_hash,
        });
        Outcome::Held
    }

    /// Ends the holds that the lowest watermark allows (and, past the hold
    /// budget, the oldest ones early), calling `out` for each copy delivered.
    pub fn release(&mut self, mut out: impl FnMut(Released<'_, M>)) {
        self.release_each(|end| {
            if let HoldEnd::Delivered(released) = end {
                out(released);
            }
        });
    }

    /// [`Self::release`], telling also of the held copies suppressed.
    pub fn release_each(&mut self, mut out: impl FnMut(HoldEnd<'_, M>)) {
        self.end_early(&mut out);
        let low = self.shared.low_watermark();
        // The copies whose window has passed, BATCH at a time: their table
        // slots are fetched together before their holds end one by one, in
        // queue order.
        let mut due = [(0usize, 0u64); BATCH];
        loop {
            let mut count = 0;
            while count < BATCH {
                match self.order.peek() {
                    Some(key) if low > key.after => {
                        self.order.pop();
                        due[count] = (key.index, key.order);
                        count += 1;
                    }
                    _ => break,
                }
            }
            if count == 0 {
                break;
            }
            for &(index, order) in &due[..count] {
                if let Some(copy) = self.held_copy(index, order) {
                    self.shared.table.prefetch(copy.identity);
                }
            }
            for &(index, order) in &due[..count] {
                if self.held_copy(index, order).is_some() {
                    self.end_hold(index, HoldCause::Window, &mut out);
                }
            }
        }
        // Past the hold budget, the oldest copies not due yet end early.
        while let Some(HoldKey { index, order, .. }) = self.order.peek() {
            if self.held_bytes <= self.shared.hold_budget_bytes {
                break;
            }
            self.order.pop();
            if self.held_copy(index, order).is_some() {
                self.counters.hold_overflow += 1;
                self.end_hold(index, HoldCause::Window, &mut out);
            }
        }
        self.skip_stale_keys();
        self.pairs.flush(&mut self.counters);
    }

    /// The copy held at `index` under hold-queue key order `order`, if
    /// that hold has not ended yet.
    fn held_copy(&self, index: usize, order: u64) -> Option<&HeldCopy<M>> {
        self.held[index].as_ref().filter(|copy| copy.order == order)
    }

    /// Drops the keys of holds that ended early from the front of the
    /// queue, so that its first key is the oldest copy still held.
    fn skip_stale_keys(&mut self) {
        while let Some(HoldKey { index, order, .. }) = self.order.peek() {
            if self.held_copy(index, order).is_some() {
                break;
            }
            self.order.pop();
        }
    }

    /// Tells the holder of `end.ticket` that its hold is needless: this
    /// thread when it holds the copy, otherwise every other thread in use
    /// (the ticket does not say which holds it; the others find nothing).
    fn signal_early_end(&mut self, end: EarlyEnd) {
        if self.holds(end).is_some() {
            self.early_ends.push(end);
            return;
        }
        let shared = &*self.shared;
        for (slot, queue) in shared.early_ends.iter().enumerate() {
            if slot != self.slot && shared.watermarks[slot].load(Ordering::Relaxed) != UNUSED {
                // Full: the signal is lost and the hold lasts its window.
                let _ = queue.push(end);
            }
        }
    }

    /// The index in `held` of the copy `end` names, if this thread holds it.
    fn holds(&self, end: EarlyEnd) -> Option<usize> {
        let index = *self.by_sequence.get(usize::from(ticket_sequence(end.ticket)))?;
        let copy = self.held.get(index as usize)?.as_ref()?;
        (copy.ticket == end.ticket && copy.identity == end.identity).then_some(index as usize)
    }

    /// Ends the holds proved needless, this thread's own and those other
    /// threads signalled: delivered now if the table still names them the
    /// best copy (else suppressed, as at the window's end).
    fn end_early(&mut self, out: &mut impl FnMut(HoldEnd<'_, M>)) {
        let mut ends = std::mem::take(&mut self.early_ends);
        while let Some(end) = self.shared.early_ends[self.slot].pop() {
            ends.push(end);
        }
        for end in ends.drain(..) {
            if let Some(index) = self.holds(end) {
                self.end_hold(index, HoldCause::Proved, out);
            }
        }
        self.early_ends = ends;
    }

    /// The thread stops reading: its watermark no longer holds others back,
    /// and every copy it holds is released now (as at the end of a file).
    pub fn finish(&mut self, mut out: impl FnMut(Released<'_, M>)) {
        self.finish_each(|end| {
            if let HoldEnd::Delivered(released) = end {
                out(released);
            }
        });
    }

    /// [`Self::finish`], telling also of the held copies suppressed.
    pub fn finish_each(&mut self, mut out: impl FnMut(HoldEnd<'_, M>)) {
        self.shared.watermarks[self.slot].store(UNUSED, Ordering::Release);
        self.end_early(&mut out);
        while let Some(HoldKey { index, order, .. }) = self.order.pop() {
            if self.held_copy(index, order).is_some() {
                self.end_hold(index, HoldCause::Window, &mut out);
            }
        }
        self.pairs.flush(&mut self.counters);
    }

    /// The flow of a suppressed copy, in the container's address space when
    /// its NAT binding is known (as a delivered copy's [`Delivery`] gives
    /// it): what attributes the copy to the flow a worker tracks.
    pub fn canonical(&self, copy: &SuppressedCopy) -> Delivery {
        self.delivery(copy.tuple, copy.flow_hash, false)
    }

    fn delivery(&self, tuple: Option<FlowTuple>, flow_hash: u64, overlap_different_data: bool) -> Delivery {
        let Some(tuple) = tuple else {
            return Delivery {
                flow: None,
                flow_hash,
                nat: None,
                overlap_different_data,
            };
        };
        let nat = self.shared.nat.lookup(&tuple, flow_hash);
        let flow = match nat {
            Some(translation) if translation.public == tuple => FlowKey {
                tuple: translation.container,
                hash: self.shared.flows.symmetric(&translation.container),
            },
            _ => FlowKey { tuple, hash: flow_hash },
        };
        Delivery {
            flow: Some(flow),
            flow_hash: flow.hash,
            nat,
            overlap_different_data,
        }
    }

    fn hold(&mut self, mut copy: HeldCopy<M>) {
        self.held_bytes += copy.bytes.len();
        self.held_live += 1;
        self.counters.held += 1;
        copy.order = self.next_order;
        let after = copy.timestamp_ns.saturating_add(self.shared.window_ns);
        let (ticket, early_end_possible) = (copy.ticket, copy.tap.rank() == VETH_OUT_RANK);
        let index = match self.free_held.pop() {
            Some(index) => {
                self.held[index] = Some(copy);
                index
            }
            None => {
                self.held.push(Some(copy));
                self.held.len() - 1
            }
        };
        if early_end_possible {
            self.by_sequence[usize::from(ticket_sequence(ticket))] = index as u32;
        }
        self.order.push(HoldKey {
            after,
            order: self.next_order,
            index,
        });
        self.next_order += 1;
    }

    fn end_hold(&mut self, index: usize, cause: HoldCause, out: &mut impl FnMut(HoldEnd<'_, M>)) {
        let Some(copy) = self.held[index].take() else {
            return;
        };
        self.free_held.push(index);
        self.held_live -= 1;
        self.held_bytes -= copy.bytes.len();
        let bytes = self.store.bytes(copy.bytes);
        let shared = &*self.shared;
        let rank = copy.tap.rank();
        let ticket = copy.ticket;
        if let Some(tuple) = copy.tuple {
            // A second chance to complete a NAT binding: every copy of this
            // packet has been read by now, and a half offered for this flow
            // after this copy was read may be waiting.
            if learn_nat(&shared.nat, tuple, copy.flow_hash, copy.tap, None, copy.timestamp_ns) {
                self.counters.nat_bindings_learned += 1;
            }
        }
        let mut overlap = false;
        let suppressed = if !shared.table.release(copy.identity, ticket, copy.timestamp_ns) {
            self.counters.superseded += 1;
            true
        } else if let Some(segment) = copy.tcp {
            let payload = &bytes[segment.offset..segment.offset + segment.len];
            match shared
                .ranges
                .coverage(segment.ack, segment.seq, payload, copy.tap.id, rank, copy.timestamp_ns)
            {
                Coverage::Same { tap } => {
                    self.counters.tcp_range_duplicates += 1;
                    self.pairs.count(&mut self.counters, tap, copy.tap.id);
                    true
                }
                Coverage::Different { .. } => {
                    self.counters.overlap_different_data += 1;
                    overlap = true;
                    false
                }
                Coverage::Uncovered => false,
            }
        } else {
            false
        };
        if suppressed {
            self.counters.duplicates += 1;
            out(HoldEnd::Suppressed {
                copy: SuppressedCopy {
                    tap: copy.tap,
                    timestamp_ns: copy.timestamp_ns,
                    tuple: copy.tuple,
                    flow_hash: copy.flow_hash,
                },
                meta: copy.meta,
            });
        } else {
            self.counters.delivered += 1;
            match cause {
                HoldCause::Window => self.counters.released_after_window += 1,
                HoldCause::Proved => self.counters.released_early += 1,
            }
            let delivery = self.delivery(copy.tuple, copy.flow_hash, overlap);
            out(HoldEnd::Delivered(Released {
                bytes,
                link: copy.link,
                vlan: copy.vlan,
                tap: copy.tap,
                timestamp_ns: copy.timestamp_ns,
                meta: copy.meta,
                delivery,
            }));
        }
        self.store.release(copy.bytes);
    }
}

impl<M> Drop for Sieve<M> {
    fn drop(&mut self) {
        self.shared.watermarks[self.slot].store(UNUSED, Ordering::Release);
        self.shared.slots_in_use.lock().unwrap_or_else(PoisonError::into_inner)[self.slot] = false;
    }
}

/// The ticket of a copy at `tap`: the tap id (so a better copy learns which
/// tap it superseded) and a sequence number of the thread. Copies of one
/// packet held at once are at different taps, so their tickets differ; the
/// sequence keeps apart repeats of one identity at one tap (identical ARP
/// requests, say) held at once.
fn ticket_for(tap: TapPoint, sequence: u16) -> HoldTicket {
    HoldTicket(u32::from(tap.id.0) << 16 | u32::from(sequence))
}

/// The thread's sequence number in `ticket` ([`ticket_for`]).
fn ticket_sequence(ticket: HoldTicket) -> u16 {
    ticket.0 as u16
}

/// Why a hold ends.
#[derive(Clone, Copy, Debug)]
enum HoldCause {
    /// Its window passed (or the hold budget was spent, or the thread
    /// stops).
    Window,
    /// Another copy proved that no better copy can come.
    Proved,
}

/// The tap of a copy held under `ticket` ([`ticket_for`]).
fn ticket_tap(ticket: HoldTicket) -> TapId {
    TapId((ticket.0 >> 16) as u16)
}

/// The NAT learning of one copy with observed `tuple` (flow tag `tag`) at
/// `tap`, which joined a packet whose first copy had `first_tag`: offers its
/// half when the tags differ, and completes a half waiting for its own tag.
/// `true` when a binding was learned.
fn learn_nat(
    nat: &NatBindings,
    tuple: FlowTuple,
    flow_hash: u64,
    tap: TapPoint,
    first_tag: Option<u32>,
    timestamp_ns: u64,
) -> bool {
    let public_side = tap.role == TapRole::Uplink;
    if !public_side && !tap.role.is_container_side() {
        return false;
    }
    let tag = flow_tag(flow_hash);
    if let Some(first_tag) = first_tag {
        // Once the flow's binding is known, its packets teach nothing more.
        if first_tag != 0 && first_tag != tag && !nat.knows(&tuple, flow_hash) {
            nat.offer_half(first_tag, tuple, public_side, timestamp_ns);
        }
    }
    nat.may_complete(tag) && nat.complete(tag, tuple, public_side, timestamp_ns).is_some()
}

/// The TCP payload's place in `bytes`, for a TCP packet with data.
fn tcp_segment(bytes: &[u8], packet: &ParsedPacket<'_>) -> Option<TcpSegment> {
    let Some(Transport::Tcp(tcp)) = &packet.transport else {
        return None;
    };
    if tcp.payload.is_empty() {
        return None;
    }
    // The payload is a subslice of `bytes`: its offset is the distance
    // between the two starts.
    let offset = (tcp.payload.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    (offset + tcp.payload.len() <= bytes.len()).then_some(TcpSegment {
        ack: tcp.ack.0,
        seq: tcp.seq.0,
        offset,
        len: tcp.payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::flow_key::Endpoint;
    use crate::tap::TapDirection;

    const MS: u64 = 1_000_000;
    const CONTAINER: [u8; 4] = [172, 17, 0, 2];
    const PUBLIC: [u8; 4] = [198, 18, 0, 2];
    const OUTSIDE: [u8; 4] = [198, 18, 0, 1];

    /// An IPv4 TCP frame (checksums left 0: never verified).
    #[derive(Clone, Debug)]
    struct Tcp {
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        ip_id: u16,
        ttl: u8,
        seq: u32,
        ack: u32,
        payload: Vec<u8>,
    }

    impl Tcp {
        fn out(ip_id: u16, seq: u32, payload: &[u8]) -> Self {
            Tcp {
                src: (CONTAINER, 40000),
                dst: (OUTSIDE, 80),
                ip_id,
                ttl: 64,
                seq,
                ack: 7,
                payload: payload.to_vec(),
            }
        }

        fn reply(ip_id: u16, seq: u32, payload: &[u8]) -> Self {
            Tcp {
                src: (OUTSIDE, 80),
                dst: (CONTAINER, 40000),
                ip_id,
                ttl: 64,
                seq,
                ack: 9,
                payload: payload.to_vec(),
            }
        }

        /// The copy MASQUERADE and forwarding make on the uplink.
        fn masqueraded(&self) -> Self {
            let mut copy = self.clone();
            copy.ttl -= 1;
            if copy.src.0 == CONTAINER {
                copy.src.0 = PUBLIC;
            }
            if copy.dst.0 == CONTAINER {
                copy.dst.0 = PUBLIC;
            }
            copy
        }

        fn frame(&self) -> Vec<u8> {
            let mut f = vec![0x02, 0x42, 0xac, 0x11, 0, 1, 0x02, 0x42, 0xac, 0x11, 0, 2, 0x08, 0x00];
            let total = 20 + 20 + self.payload.len();
            f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
            f.extend_from_slice(&self.ip_id.to_be_bytes());
            f.extend_from_slice(&[0x40, 0, self.ttl, 6, 0, 0]);
            f.extend_from_slice(&self.src.0);
            f.extend_from_slice(&self.dst.0);
            f.extend_from_slice(&self.src.1.to_be_bytes());
            f.extend_from_slice(&self.dst.1.to_be_bytes());
            f.extend_from_slice(&self.seq.to_be_bytes());
            f.extend_from_slice(&self.ack.to_be_bytes());
            f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
            f.extend_from_slice(&self.payload);
            f
        }
    }

    fn tap(id: u16, role: TapRole, direction: TapDirection) -> TapPoint {
        TapPoint {
            id: TapId(id),
            role,
            direction,
        }
    }

    const VETH_IN: TapPoint = TapPoint {
        id: TapId(0),
        role: TapRole::ContainerVeth,
        direction: TapDirection::Incoming,
    };
    const VETH_OUT: TapPoint = TapPoint {
        id: TapId(1),
        role: TapRole::ContainerVeth,
        direction: TapDirection::Outgoing,
    };
    const BRIDGE_IN: TapPoint = TapPoint {
        id: TapId(2),
        role: TapRole::Bridge,
        direction: TapDirection::Incoming,
    };
    const BRIDGE_OUT: TapPoint = TapPoint {
        id: TapId(3),
        role: TapRole::Bridge,
        direction: TapDirection::Outgoing,
    };
    const UPLINK_IN: TapPoint = TapPoint {
        id: TapId(4),
        role: TapRole::Uplink,
        direction: TapDirection::Incoming,
    };
    const UPLINK_OUT: TapPoint = TapPoint {
        id: TapId(5),
        role: TapRole::Uplink,
        direction: TapDirection::Outgoing,
    };

    fn config() -> SieveConfig {
        SieveConfig {
            table_capacity: 1 << 12,
            seeds: Some([1, 2, 3, 4]),
            ..SieveConfig::default()
        }
    }

    /// One delivered copy: (the caller's label, tap, canonical flow).
    type Delivered = (u32, TapId, Option<FlowKey>);

    /// Feeds `copies` (frame, tap, ts, label) in the given order on one
    /// thread, publishing after each one the lowest timestamp still to come
    /// (what a reader in ring order knows), and returns what was delivered.
    fn run(sieve: &mut Sieve<u32>, copies: &[(Vec<u8>, TapPoint, u64, u32)]) -> Vec<Delivered> {
        let mut delivered = Vec::new();
        for (i, (frame, tap, ts, label)) in copies.iter().enumerate() {
            let copy = CapturedCopy {
                bytes: frame,
                link: LinkLayer::Ethernet,
                vlan: None,
                tap: *tap,
                timestamp_ns: *ts,
            };
            if let Outcome::Deliver { meta, delivery } = sieve.process(&copy, *label) {
                delivered.push((meta, tap.id, delivery.flow));
            }
            let still_to_come = copies[i + 1..].iter().map(|c| c.2).min().unwrap_or(u64::MAX - 1);
            sieve.advance(still_to_come);
            sieve.release(|r| delivered.push((r.meta, r.tap.id, r.delivery.flow)));
        }
        sieve.finish(|r| delivered.push((r.meta, r.tap.id, r.delivery.flow)));
        delivered
    }

    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first.clone());
                all.push(tail);
            }
        }
        all
    }

    fn container_tuple(reply: bool) -> FlowTuple {
        let tuple = FlowTuple {
            protocol: 6,
            src: Endpoint {
                addr: IpAddr::V4(Ipv4Addr::from(CONTAINER)),
                port: 40000,
            },
            dst: Endpoint {
                addr: IpAddr::V4(Ipv4Addr::from(OUTSIDE)),
                port: 80,
            },
        };
        if reply {
            tuple.reversed()
        } else {
            tuple
        }
    }

    /// An Ethernet copy of `frame` at `tap`, stamped `ts`.
    fn copy(frame: &[u8], tap: TapPoint, ts: u64) -> CapturedCopy<'_> {
        CapturedCopy {
            bytes: frame,
            link: LinkLayer::Ethernet,
            vlan: None,
            tap,
            timestamp_ns: ts,
        }
    }

    #[test]
    fn a_veth_copy_of_a_packet_the_host_sent_is_delivered_without_a_hold() {
        // The host (docker0's 172.17.0.1) answers a container.
        let mut answer = Tcp::reply(700, 9000, b"pong");
        answer.src.0 = [172, 17, 0, 1];
        let frame = answer.frame();
        let host = SieveConfig {
            host_addresses: vec!["172.17.0.1".parse().unwrap()],
            ..config()
        };
        for (first, second) in [(VETH_OUT, BRIDGE_OUT), (BRIDGE_OUT, VETH_OUT)] {
            let shared = SieveShared::new(&host);
            let mut sieve: Sieve<u32> = shared.thread().unwrap();
            let mut delivered = Vec::new();
            for (label, tap) in [(1, first), (2, second)] {
                match sieve.process(&copy(&frame, tap, 10 * MS + u64::from(label) * 10_000), label) {
                    Outcome::Deliver { meta, .. } => delivered.push(meta),
                    Outcome::Held | Outcome::Duplicate(..) => {}
                    other => panic!("{other:?}"),
                }
            }
            let veth_label = if first == VETH_OUT { 1 } else { 2 };
            assert_eq!(
                delivered,
                [veth_label],
                "{first:?} then {second:?}: the veth copy at once"
            );
            sieve.advance(u64::MAX - 1);
            sieve.finish(|_| panic!("nothing else is delivered"));
            assert_eq!(sieve.counters().delivered, 1);
        }
        // Without the host's addresses it waits, as it must for a packet
        // that might have come in from another container.
        let shared = SieveShared::new(&config());
        let mut sieve: Sieve<u32> = shared.thread().unwrap();
        assert!(matches!(
            sieve.process(&copy(&frame, VETH_OUT, 10 * MS), 1),
            Outcome::Held
        ));
    }

    #[test]
    fn a_veth_copy_of_a_packet_that_entered_at_the_uplink_is_delivered_without_a_hold() {
        let shared = SieveShared::new(&config());
        let mut sieve: Sieve<u32> = shared.thread().unwrap();
        let reply = Tcp::reply(555, 5000, b"HTTP/1.1 200 OK\r\n\r\n");
        let public = reply.masqueraded().frame();
        let inside = reply.frame();
        // eth0 in, docker0 out, then the container's veth out: the veth copy
        // is the best there will be, delivered at once.
        assert!(matches!(
            sieve.process(&copy(&public, UPLINK_IN, 10 * MS), 1),
            Outcome::Held
        ));
        assert!(matches!(
            sieve.process(&copy(&inside, BRIDGE_OUT, 10 * MS + 20_000), 2),
            Outcome::Held
        ));
        assert!(matches!(
            sieve.process(&copy(&inside, VETH_OUT, 10 * MS + 40_000), 3),
            Outcome::Deliver { meta: 3, .. }
        ));
        // The held copies end as suppressed: one delivery in all.
        sieve.advance(u64::MAX - 1);
        let mut released = 0;
        sieve.finish(|_| released += 1);
        assert_eq!(released, 0);
        assert_eq!(sieve.counters().delivered, 1);

        // Read the other way round (veth out first), the veth copy must wait:
        // for all this thread knows, a veth's incoming copy could still come.
        let other = Tcp::reply(556, 6000, b"more").frame();
        let mut sieve: Sieve<u32> = shared.thread().unwrap();
        assert!(matches!(
            sieve.process(&copy(&other, VETH_OUT, 20 * MS), 4),
            Outcome::Held
        ));
    }

    #[test]
    fn an_uplink_copy_read_after_the_veth_copy_ends_its_hold_before_the_window() {
        let shared = SieveShared::new(&config());
        let mut sieve: Sieve<u32> = shared.thread().unwrap();
        let reply = Tcp::reply(555, 5000, b"HTTP/1.1 200 OK\r\n\r\n");
        let public = reply.masqueraded().frame();
        let inside = reply.frame();
        // The container's veth out, docker0 out, then eth0 in: the veth copy
        // waits until the eth0 copy shows the packet came from outside.
        let mut delivered = Vec::new();
        for (frame, tap, ts, meta) in [
            (&inside, VETH_OUT, 10 * MS, 1),
            (&inside, BRIDGE_OUT, 10 * MS + 20_000, 2),
        ] {
            assert!(!matches!(
                sieve.process(&copy(frame, tap, ts), meta),
                Outcome::Deliver { .. }
            ));
        }
        // Watermark well inside the window: nothing is due.
        sieve.advance(11 * MS);
        sieve.release(|released| delivered.push(released.meta));
        assert!(delivered.is_empty());
        assert_eq!(sieve.held_now(), 1);
        assert!(matches!(
            sieve.process(&copy(&public, UPLINK_IN, 10 * MS - 30_000), 3),
            Outcome::Duplicate(3, _)
        ));
        sieve.release(|released| {
            assert_eq!(released.tap, VETH_OUT);
            delivered.push(released.meta);
        });
        assert_eq!(delivered, vec![1]);
        assert_eq!(sieve.held_now(), 0);
        assert_eq!(sieve.oldest_held_ns(), None);
        let counters = sieve.counters().clone();
        assert_eq!((counters.released_early, counters.released_after_window), (1, 0));
        assert!(counters.balances(0));
        // Its stale key is skipped: nothing more at the end.
        sieve.advance(u64::MAX - 1);
        sieve.finish(|released| delivered.push(released.meta));
        assert_eq!(delivered, vec![1]);
        assert_eq!(sieve.counters().delivered, 1);
    }

    #[test]
    fn a_bridge_copy_after_the_veth_copy_proves_nothing_and_the_hold_lasts_the_window() {
        let shared = SieveShared::new(&config());
        let mut sieve: Sieve<u32> = shared.thread().unwrap();
        let inside = Tcp::reply(555, 5000, b"x").frame();
        assert!(matches!(
            sieve.process(&copy(&inside, VETH_OUT, 10 * MS), 1),
            Outcome::Held
        ));
        assert!(matches!(
            sieve.process(&copy(&inside, BRIDGE_OUT, 10 * MS + 1), 2),
            Outcome::Duplicate(2, _)
        ));
        sieve.advance(11 * MS);
        let mut delivered = 0;
        sieve.release(|_| delivered += 1);
        assert_eq!((delivered, sieve.held_now()), (0, 1));
        sieve.advance(10 * MS + 2 * config().window_ns);
        sieve.release(|_| delivered += 1);
        assert_eq!(delivered, 1);
        assert_eq!(sieve.counters().released_after_window, 1);
        assert_eq!(sieve.counters().released_early, 0);
    }

    #[test]
    fn an_uplink_copy_read_on_another_thread_ends_the_holders_hold() {
        let shared = SieveShared::new(&config());
        let mut veths: Sieve<u32> = shared.thread().unwrap();
        let mut uplink: Sieve<u32> = shared.thread().unwrap();
        let replies: Vec<Tcp> = (0..50)
            .map(|i| Tcp::reply(600 + i, 7000 + u32::from(i), b"data"))
            .collect();
        for (i, reply) in replies.iter().enumerate() {
            let ts = 10 * MS + i as u64 * 1000;
            assert!(matches!(
                veths.process(&copy(&reply.frame(), VETH_OUT, ts), i as u32),
                Outcome::Held
            ));
        }
        for (i, reply) in replies.iter().enumerate() {
            let ts = 10 * MS + i as u64 * 1000 - 500;
            assert!(matches!(
                uplink.process(&copy(&reply.masqueraded().frame(), UPLINK_IN, ts), 100),
                Outcome::Duplicate(100, _)
            ));
        }
        veths.advance(11 * MS);
        uplink.advance(11 * MS);
        let mut delivered = Vec::new();
        veths.release(|released| delivered.push(released.meta));
        assert_eq!(delivered, (0..50).collect::<Vec<u32>>());
        assert_eq!(veths.counters().released_early, 50);
        assert_eq!(veths.held_now(), 0);
    }

    #[test]
    fn masquerade_delivers_the_container_copy_in_every_read_order_and_learns_the_binding() {
        let out = Tcp::out(100, 1000, b"GET / HTTP/1.1\r\n\r\n");
        let reply = Tcp::reply(555, 5000, b"HTTP/1.1 200 OK\r\n\r\n");
        let copies = vec![
            (out.frame(), VETH_IN, 10 * MS, 1),
            (out.frame(), BRIDGE_IN, 10 * MS + 30_000, 2),
            (out.masqueraded().frame(), UPLINK_OUT, 10 * MS + 60_000, 3),
            (reply.masqueraded().frame(), UPLINK_IN, 11 * MS, 4),
            (reply.frame(), BRIDGE_OUT, 11 * MS + 30_000, 5),
            (reply.frame(), VETH_OUT, 11 * MS + 60_000, 6),
        ];
        for order in permutations(&copies) {
            let shared = SieveShared::new(&config());
            let mut sieve = shared.thread::<u32>().unwrap();
            let mut delivered = run(&mut sieve, &order);
            delivered.sort_by_key(|d| d.0);
            let labels: Vec<u32> = delivered.iter().map(|d| d.0).collect();
            assert_eq!(
                labels,
                [1, 6],
                "order {:?}",
                order.iter().map(|c| c.3).collect::<Vec<_>>()
            );
            assert_eq!(delivered[0].2.unwrap().tuple, container_tuple(false));
            assert_eq!(delivered[1].2.unwrap().tuple, container_tuple(true));
            assert_eq!(delivered[0].2.unwrap().hash, delivered[1].2.unwrap().hash, "symmetric");
            let counters = sieve.counters();
            assert!(counters.balances(0), "{counters:?}");
            assert_eq!(counters.duplicates, 4);
            assert_eq!(
                shared.nat().learned(),
                1,
                "order {:?}",
                order.iter().map(|c| c.3).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn an_uplink_only_packet_of_a_bound_flow_gets_the_container_flow() {
        let shared = SieveShared::new(&config());
        let mut sieve = shared.thread::<u32>().unwrap();
        let out = Tcp::out(1, 1, b"a");
        let reply = Tcp::reply(2, 2, b"b");
        // Only seen on the uplink (say, rejected by the host's firewall).
        let stray = Tcp::reply(3, 3, b"c").masqueraded();
        let delivered = run(
            &mut sieve,
            &[
                (out.frame(), VETH_IN, MS, 1),
                (out.masqueraded().frame(), UPLINK_OUT, MS + 10, 2),
                (reply.masqueraded().frame(), UPLINK_IN, 2 * MS, 3),
                (reply.frame(), VETH_OUT, 2 * MS + 10, 4),
                (stray.frame(), UPLINK_IN, 3 * MS, 5),
            ],
        );
        let stray = delivered
            .iter()
            .find(|d| d.0 == 5)
            .expect("the stray packet is delivered");
        assert_eq!(stray.1, UPLINK_IN.id);
        assert_eq!(stray.2.unwrap().tuple, container_tuple(true));
    }

    #[test]
    fn retransmissions_at_one_tap_are_delivered_and_different_payloads_never_merge() {
        let shared = SieveShared::new(&config());
        let mut sieve = shared.thread::<u32>().unwrap();
        let a = Tcp::reply(9, 100, b"same headers, payload one");
        let b = Tcp::reply(9, 100, b"same headers, payload two");
        let delivered = run(
            &mut sieve,
            &[
                (a.frame(), VETH_OUT, MS, 1),
                (a.frame(), VETH_OUT, 2 * MS, 2),
                (b.frame(), BRIDGE_OUT, 2 * MS, 3),
                (b.frame(), VETH_OUT, 3 * MS, 4),
            ],
        );
        let mut labels: Vec<u32> = delivered.iter().map(|d| d.0).collect();
        labels.sort_unstable();
        assert_eq!(labels, [1, 2, 4]);
    }

    #[test]
    fn segments_of_a_super_frame_seen_at_a_better_tap_are_duplicates() {
        let data: Vec<u8> = (0..4 * 1448).map(|i| (i % 253) as u8).collect();
        let super_frame = Tcp::out(50, 7_000, &data);
        let mut copies = vec![
            (super_frame.frame(), VETH_IN, MS, 1),
            (super_frame.frame(), BRIDGE_IN, MS + 10, 2),
        ];
        for i in 0..4 {
            let mut segment = Tcp::out(50 + i as u16, 7_000 + 1448 * i as u32, &data[1448 * i..1448 * (i + 1)]);
            segment = segment.masqueraded();
            copies.push((segment.frame(), UPLINK_OUT, MS + 20 + i as u64, 10 + i as u32));
        }
        // A segment whose bytes differ from the super-frame's: delivered.
        let mut forged = Tcp::out(60, 7_000 + 1448, &data[1448..2896]);
        forged.payload[0] ^= 1;
        copies.push((forged.masqueraded().frame(), UPLINK_OUT, MS + 30, 20));
        for order in [copies.clone(), copies.iter().rev().cloned().collect()] {
            let shared = SieveShared::new(&config());
            let mut sieve = shared.thread::<u32>().unwrap();
            let mut labels: Vec<u32> = run(&mut sieve, &order).iter().map(|d| d.0).collect();
            labels.sort_unstable();
            assert_eq!(labels, [1, 20]);
            assert_eq!(sieve.counters().tcp_range_duplicates, 4);
            assert_eq!(sieve.counters().overlap_different_data, 1);
        }
    }

    #[test]
    fn malformed_copies_are_counted_and_the_accounting_balances() {
        let shared = SieveShared::new(&config());
        let mut sieve = shared.thread::<u32>().unwrap();
        let mut truncated = Tcp::out(1, 1, b"x").frame();
        truncated.truncate(30);
        let copy = CapturedCopy {
            bytes: &truncated,
            link: LinkLayer::Ethernet,
            vlan: None,
            tap: VETH_IN,
            timestamp_ns: 1,
        };
        assert!(matches!(sieve.process(&copy, 7), Outcome::Malformed(7, _)));
        let held = Tcp::reply(1, 1, b"y").frame();
        let copy = CapturedCopy {
            bytes: &held,
            tap: BRIDGE_OUT,
            ..copy
        };
        assert!(matches!(sieve.process(&copy, 8), Outcome::Held));
        assert!(sieve.counters().balances(1));
        let mut released = 0;
        sieve.release(|_| released += 1);
        assert_eq!(released, 0, "the watermark has not moved");
        sieve.advance(1 + DEFAULT_WINDOW_NS + 1);
        sieve.release(|r| {
            assert_eq!(r.meta, 8);
            assert_eq!(r.bytes, &held[..]);
            released += 1;
        });
        assert_eq!(released, 1);
        assert!(sieve.counters().balances(0));
    }

    #[test]
    fn the_hold_budget_releases_early_and_counts_it() {
        let shared = SieveShared::new(&SieveConfig {
            hold_budget_bytes: 1000,
            ..config()
        });
        let mut sieve = shared.thread::<u32>().unwrap();
        for i in 0..10u16 {
            let frame = Tcp::reply(i, u32::from(i), &[0; 200]).frame();
            let copy = CapturedCopy {
                bytes: &frame,
                link: LinkLayer::Ethernet,
                vlan: None,
                tap: UPLINK_IN,
                timestamp_ns: u64::from(i),
            };
            let _ = sieve.process(&copy, u32::from(i));
            sieve.release(|_| {});
            assert!(sieve.held_bytes() <= 1000);
        }
        assert!(sieve.counters().hold_overflow >= 5);
        assert!(sieve.counters().balances(sieve.held_now() as u64));
    }

    #[test]
    fn two_threads_racing_on_copies_of_the_same_packets_deliver_each_once() {
        const PACKETS: u32 = 20_000;
        let shared = SieveShared::new(&SieveConfig {
            table_capacity: 1 << 17,
            ..config()
        });
        let frames: Vec<Vec<u8>> = (0..PACKETS)
            .map(|i| Tcp::reply(i as u16, i, &i.to_be_bytes()).frame())
            .collect();
        let frames = Arc::new(frames);
        // Thread 0 reads the uplink and the bridge, thread 1 the veth: every
        // packet's best copy (veth out) and worse ones race.
        let results: Vec<(Vec<u32>, SieveCounters)> = std::thread::scope(|scope| {
            let handles: Vec<_> = [vec![UPLINK_IN, BRIDGE_OUT], vec![VETH_OUT]]
                .into_iter()
                .map(|taps| {
                    let shared = Arc::clone(&shared);
                    let frames = Arc::clone(&frames);
                    scope.spawn(move || {
                        let mut sieve = shared.thread::<u32>().unwrap();
                        let mut delivered = Vec::new();
                        for (i, frame) in frames.iter().enumerate() {
                            let ts = i as u64 * 1_000;
                            for tap in &taps {
                                let copy = CapturedCopy {
                                    bytes: frame,
                                    link: LinkLayer::Ethernet,
                                    vlan: None,
                                    tap: *tap,
                                    timestamp_ns: ts + u64::from(tap.id.0),
                                };
                                if let Outcome::Deliver { meta, .. } = sieve.process(&copy, i as u32) {
                                    delivered.push(meta);
                                }
                            }
                            sieve.advance(ts);
                            sieve.release(|r| delivered.push(r.meta));
                        }
                        sieve.advance(u64::MAX - 1);
                        while sieve.held_now() > 0 {
                            sieve.release(|r| delivered.push(r.meta));
                            std::thread::yield_now();
                        }
                        (delivered, sieve.counters().clone())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u32> = results.iter().flat_map(|(d, _)| d.iter().copied()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..PACKETS).collect::<Vec<_>>(), "each packet exactly once");
        assert!(results[0].0.is_empty(), "the veth copy always wins");
        let mut total = SieveCounters::default();
        for (_, counters) in &results {
            total.add(counters);
        }
        assert!(total.balances(0));
        assert_eq!(total.duplicates, 2 * u64::from(PACKETS));
    }

    /// One packet of the property test: its copies (tap index into TAPS,
    /// offset from its base time) and whether the same bytes cross the host
    /// again 10 ms later.
    #[derive(Clone, Debug)]
    struct PacketCase {
        taps: Vec<(usize, u64)>,
        retransmitted: bool,
        same_headers_as_previous: bool,
    }

    const TAPS: [TapPoint; 6] = [VETH_IN, VETH_OUT, BRIDGE_IN, BRIDGE_OUT, UPLINK_IN, UPLINK_OUT];

    fn packet_case() -> impl Strategy<Value = PacketCase> {
        (
            proptest::sample::subsequence((0..TAPS.len()).collect::<Vec<_>>(), 1..=3),
            proptest::collection::vec(0..3 * MS, 3),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(mut taps, offsets, retransmitted, same_headers_as_previous)| {
                // A packet comes into the host once: one that entered at the
                // uplink (4) was not also sent by a container (0).
                if taps.contains(&4) && taps.len() > 1 {
                    taps.retain(|&t| t != 0);
                }
                PacketCase {
                    taps: taps.into_iter().zip(offsets).collect(),
                    retransmitted,
                    same_headers_as_previous,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any set of packets, copies at any taps, read in any order: each
        /// packet delivered exactly once by its best copy, each repeat at
        /// one tap delivered, different payloads never merged.
        #[test]
        fn every_packet_is_delivered_once_by_its_best_copy_in_any_read_order(
            packets in proptest::collection::vec(packet_case(), 1..24),
            seed in any::<u64>(),
        ) {
            let mut copies = Vec::new();
            let mut expected = Vec::new();
            for (n, case) in packets.iter().enumerate() {
                let base = n as u64 * 4 * MS;
                // Packets alternate direction; a packet with "same headers"
                // reuses the previous one's IP ID and seq, other payload.
                let key = if case.same_headers_as_previous && n > 0 { n - 1 } else { n };
                let payload = format!("payload {n}");
                let packet = Tcp::reply(key as u16, key as u32, payload.as_bytes());
                let label = n as u32 * 10;
                let best = case.taps.iter().min_by_key(|(t, _)| TAPS[*t].rank()).unwrap();
                expected.push((label, TAPS[best.0].id));
                for &(t, offset) in &case.taps {
                    copies.push((packet.frame(), TAPS[t], base + offset, label));
                }
                if case.retransmitted {
                    // The same bytes cross the host again 10 ms later (an
                    // ARP request repeated, a retransmission with the same
                    // IP ID): a packet of its own, with all its copies.
                    for &(t, offset) in &case.taps {
                        copies.push((packet.frame(), TAPS[t], base + offset + 10 * MS, label + 1));
                    }
                    expected.push((label + 1, TAPS[best.0].id));
                }
            }
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..copies.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                copies.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let shared = SieveShared::new(&config());
            let mut sieve = shared.thread::<u32>().unwrap();
            let mut delivered: Vec<(u32, TapId)> = run(&mut sieve, &copies).iter().map(|d| (d.0, d.1)).collect();
            delivered.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(delivered, expected);
            prop_assert!(sieve.counters().balances(0));
        }
    }

    /// What one copy became, comparable across runs.
    fn outcome_label(outcome: &Outcome<u32>) -> (u8, u32, Option<FlowKey>) {
        match outcome {
            Outcome::Deliver { meta, delivery } => (0, *meta, delivery.flow),
            Outcome::Held => (1, 0, None),
            Outcome::Duplicate(meta, copy) => (2, *meta, copy.tuple.map(|tuple| FlowKey { tuple, hash: 0 })),
            Outcome::Malformed(meta, _) => (3, *meta, None),
        }
    }

    #[test]
    fn process_batch_decides_as_process_does_copy_by_copy() {
        // NAT'd packets in both directions, repeats, a malformed frame, read
        // in an order mixing taps, released as the reads go.
        let mut copies = Vec::new();
        for n in 0..300u32 {
            let base = u64::from(n) * MS / 3;
            let (packet, taps) = if n % 2 == 0 {
                (Tcp::out(n as u16, n, b"request"), [VETH_IN, BRIDGE_IN, UPLINK_OUT])
            } else {
                (Tcp::reply(n as u16, n, b"reply"), [UPLINK_IN, BRIDGE_OUT, VETH_OUT])
            };
            for (i, tap) in taps.into_iter().enumerate() {
                let frame = if tap.role == TapRole::Uplink {
                    packet.masqueraded().frame()
                } else {
                    packet.frame()
                };
                let ts = base + [0, 40_000, 20_000][(i + n as usize) % 3];
                copies.push((frame, tap, ts, n * 10 + i as u32));
            }
            if n % 50 == 7 {
                copies.push((vec![0x45; 10], VETH_IN, base, n * 10 + 9));
            }
        }
        let run_with = |batch: bool| {
            let shared = SieveShared::new(&config());
            let mut sieve = shared.thread::<u32>().unwrap();
            let mut seen = Vec::new();
            for chunk in copies.chunks(37) {
                let captured = chunk.iter().map(|(frame, tap, ts, label)| {
                    let copy = CapturedCopy {
                        bytes: frame,
                        link: LinkLayer::Ethernet,
                        vlan: None,
                        tap: *tap,
                        timestamp_ns: *ts,
                    };
                    (copy, *label)
                });
                if batch {
                    sieve.process_batch(captured, |outcome| seen.push(outcome_label(&outcome)));
                } else {
                    for (copy, label) in captured {
                        seen.push(outcome_label(&sieve.process(&copy, label)));
                    }
                }
                sieve.advance(chunk.iter().map(|c| c.2).min().unwrap().saturating_sub(MS));
                sieve.release(|r| seen.push((4, r.meta, r.delivery.flow)));
            }
            sieve.finish(|r| seen.push((4, r.meta, r.delivery.flow)));
            (seen, sieve.counters().clone(), shared.nat().learned())
        };
        let one_by_one = run_with(false);
        assert!(one_by_one.2 > 0, "bindings were learned");
        assert!(one_by_one.1.malformed > 0 && one_by_one.1.held > 0 && one_by_one.1.duplicates > 0);
        assert_eq!(run_with(true), one_by_one);
    }

    #[test]
    fn too_many_threads_is_an_error_and_a_dropped_sieve_frees_its_slot() {
        let shared = SieveShared::new(&SieveConfig {
            max_threads: 1,
            ..config()
        });
        let first = shared.thread::<()>().unwrap();
        assert_eq!(shared.thread::<()>().unwrap_err(), TooManyThreads { max_threads: 1 });
        assert_eq!(shared.low_watermark(), 0);
        drop(first);
        assert_eq!(shared.low_watermark(), u64::MAX);
        assert!(shared.thread::<()>().is_ok());
        let _ = tap(0, TapRole::Other, TapDirection::Unknown);
    }
}
