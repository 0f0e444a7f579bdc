//! The IDS worker threads and the fan-out that feeds them: each capture
//! thread (or the file reader) owns a [`Fanout`] that sorts its delivered
//! packets into one batch per worker, by the canonical symmetric flow hash,
//! and hands full batches (and, at the end of each turn, partial ones) to
//! that worker's bounded lock-free queue (`crossbeam_queue::ArrayQueue`).
//!
//! # Bounds
//!
//! A batch holds at most [`BATCH_PACKETS`] packets and [`BATCH_BYTES`]
//! bytes of packet data (a single larger frame gets a batch of its own). A
//! worker's queue holds `queue_depth / BATCH_PACKETS` batches (at least 2),
//! so the memory waiting for one worker is bounded by that many batches.
//! Batches are recycled through a shared pool, so the steady state
//! allocates nothing.
//!
//! # A full queue
//!
//! [`Overflow::Drop`] (the default) drops the newest batch and counts its
//! packets as `queue_full` drops on their interfaces; [`Overflow::Wait`]
//! waits for room, so capture falls behind and the kernel drops instead
//! (counted by the kernel). A worker whose thread ended early (it panicked)
//! takes nothing more: what was meant for it is counted as
//! `worker_stopped` drops, never waited for.
//!
//! # Latency
//!
//! Live, each worker records, per packet, the time from its kernel
//! timestamp to the worker taking its batch off the queue, in an
//! hdrhistogram (nanoseconds, 3 significant digits, up to an hour).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use hdrhistogram::Histogram;

use crate::clock::wall_clock_ns;
use crate::interfaces::{InterfaceId, InterfaceTable};
use crate::worker::{PacketBatch, PacketMeta, SuppressedNotice, Worker};

/// Most packets in one batch.
pub const BATCH_PACKETS: usize = 64;

/// Most bytes of packet data in one batch.
pub const BATCH_BYTES: usize = 256 * 1024;

/// Most suppressed-copy notices in one batch.
pub const BATCH_NOTICES: usize = 4 * BATCH_PACKETS;

/// The longest latency the histograms record (longer ones count as this).
pub const LATENCY_MAX_NS: u64 = 3_600_000_000_000;

/// What a producer does when a worker's queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the newest batch, counted.
    #[default]
    Drop,
    /// Wait for room.
    Wait,
}

impl Overflow {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Wait => "wait",
        }
    }
}

/// What clock workers' timeouts follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolClock {
    /// Wall-clock time (live capture): workers tick while idle, and latency
    /// is recorded.
    Wall,
    /// The packets' own timestamps (capture files): workers tick after each
    /// batch, with the producer's clock, so results do not depend on how
    /// fast the files were read.
    Packets,
}

/// How a worker pool runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads.
    pub workers: usize,
    /// CPUs to pin them to, one per worker, in order.
    pub cpus: Option<Vec<usize>>,
    /// Packets one worker's queue holds, in batches of [`BATCH_PACKETS`].
    pub queue_depth: usize,
    /// What to do when it is full.
    pub overflow: Overflow,
    /// Whether producers send notices of suppressed copies.
    pub suppressed_notices: bool,
    /// The clock of timeouts.
    pub clock: PoolClock,
    /// How often an idle worker ticks (wall clock only).
    pub tick_interval: Duration,
    /// How long a busy worker whose queue ran dry keeps looking at it
    /// (yielding the CPU between looks) before it sleeps until a producer
    /// wakes it. A sleeping worker is woken within a futex call, but on a
    /// virtual machine an idle CPU can take milliseconds to run it again: a
    /// worker that polls for longer than blocks take to come (the retire
    /// timeout) never sleeps while traffic flows. Only a worker that has
    /// been receiving at least [`POLL_MIN_PACKETS_PER_SECOND`] polls: below
    /// that, a core spent polling would buy little, and it sleeps after a
    /// short backoff. Zero: never poll.
    pub idle_poll: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            cpus: None,
            queue_depth: 16_384,
            overflow: Overflow::Drop,
            suppressed_notices: false,
            clock: PoolClock::Wall,
            tick_interval: Duration::from_millis(100),
            idle_poll: DEFAULT_IDLE_POLL,
        }
    }
}

/// [`PoolConfig::idle_poll`] by default: longer than the default block
/// retire timeout (8 ms), so that a busy worker fed by every block never
/// sleeps.
pub const DEFAULT_IDLE_POLL: Duration = Duration::from_millis(10);

/// The packet rate from which an idle worker polls its queue rather than
/// sleeping (see [`PoolConfig::idle_poll`]).
pub const POLL_MIN_PACKETS_PER_SECOND: u64 = 50_000;

/// The packets a worker received lately, in periods of [`Self::PERIOD`]: the
/// current one and the one before. Decides whether the worker is busy enough
/// to poll.
#[derive(Debug)]
struct RecentRate {
    period_start: Instant,
    this_period: u64,
    last_period: u64,
}

impl RecentRate {
    const PERIOD: Duration = Duration::from_millis(10);
    /// [`POLL_MIN_PACKETS_PER_SECOND`] over one period.
    const BUSY_PACKETS: u64 = POLL_MIN_PACKETS_PER_SECOND / (1000 / Self::PERIOD.as_millis() as u64);

    fn new(now: Instant) -> Self {
        Self {
            period_start: now,
            this_period: 0,
            last_period: 0,
        }
    }

    /// `packets` arrived at `now`.
    fn record(&mut self, now: Instant, packets: u64) {
        let elapsed = now.saturating_duration_since(self.period_start);
        if elapsed >= Self::PERIOD {
            // A period with nothing between the two counts as the last one.
            self.last_period = if elapsed < 2 * Self::PERIOD {
                self.this_period
            } else {
                0
            };
            self.this_period = 0;
            self.period_start = now;
        }
        self.this_period += packets;
    }

    /// Whether the last full period, or the current one so far, reached the
    /// busy rate.
    fn busy(&self) -> bool {
        self.last_period.max(self.this_period) >= Self::BUSY_PACKETS
    }
}

/// The upper bounds (ns) of the latency histogram's buckets as
/// [`LatencySummary::buckets`] counts them, from 10 µs to 1 s; the last,
/// unbounded bucket is [`LatencySummary::count`].
pub const LATENCY_BUCKET_BOUNDS_NS: [u64; 14] = [
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Latency percentiles and histogram of one worker, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Packets recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Packets whose latency was at most each bound of
    /// [`LATENCY_BUCKET_BOUNDS_NS`] (cumulative, to the histogram's three
    /// significant digits).
    pub buckets: [u64; LATENCY_BUCKET_BOUNDS_NS.len()],
    /// The sum of every latency recorded, each as the histogram keeps it
    /// (three significant digits).
    pub sum_ns: u64,
}

impl LatencySummary {
    /// The summary of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let mut buckets = [0; LATENCY_BUCKET_BOUNDS_NS.len()];
        for (bucket, bound) in buckets.iter_mut().zip(LATENCY_BUCKET_BOUNDS_NS) {
            *bucket = histogram.count_between(0, bound);
        }
        let sum_ns = histogram.iter_recorded().fold(0u64, |sum, value| {
            sum.saturating_add(
                histogram
                    .median_equivalent(value.value_iterated_to())
                    .saturating_mul(value.count_at_value()),
            )
        });
        Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            buckets,
            sum_ns,
        }
    }
}

/// One worker's queue and live figures.
struct WorkerSlot {
    queue: ArrayQueue<PacketBatch>,
    /// Set while the worker is parked, so a producer knows to wake it.
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
    /// Cleared when the worker's thread ends, however it ends.
    alive: AtomicBool,
    /// Packets taken off the queue.
    received: AtomicU64,
    /// Refreshed about once a second.
    latency: Mutex<LatencySummary>,
}

struct Shared {
    slots: Box<[WorkerSlot]>,
    /// Fanouts not finished, plus one for the pool until it is finished.
    open_producers: AtomicUsize,
    /// The latest clock a finished producer reported.
    final_clock_ns: AtomicU64,
    spare: ArrayQueue<PacketBatch>,
    interfaces: Arc<InterfaceTable>,
    overflow: Overflow,
    suppressed_notices: bool,
    /// Packets handed to workers' queues, and dropped, over all producers.
    queued: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn wake(&self, worker: usize) {
        let slot = &self.slots[worker];
        // The first producer to see the worker asleep wakes it (one futex
        // call per sleep, not one per batch).
        if slot.sleeping.load(Ordering::SeqCst) && slot.sleeping.swap(false, Ordering::SeqCst) {
            if let Some(thread) = slot.thread.get() {
                thread.unpark();
            }
        }
    }
}

/// Clears a worker's `alive` flag when its thread ends, by return or panic.
struct AliveGuard<'a>(&'a WorkerSlot);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

/// What one worker thread did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerReport {
    /// Its index.
    pub index: usize,
    /// Batches taken.
    pub batches: u64,
    /// Packets taken.
    pub packets: u64,
    /// Suppressed-copy notices taken.
    pub notices: u64,
    /// Kernel timestamp to receipt (live only).
    pub latency: Option<LatencySummary>,
}

/// Worker threads and their queues.
pub struct WorkerPool<W: Worker + 'static> {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<(W, WorkerReport)>>,
}

impl<W: Worker + 'static> WorkerPool<W> {
    /// Starts `config.workers` threads, worker `i` made by `make(i)`.
    pub fn start(
        config: &PoolConfig,
        interfaces: Arc<InterfaceTable>,
        mut make: impl FnMut(usize) -> W,
    ) -> std::io::Result<Self> {
        let workers = config.workers.max(1);
        let capacity = config.queue_depth.div_ceil(BATCH_PACKETS).max(2);
        let slots = (0..workers)
            .map(|_| WorkerSlot {
                queue: ArrayQueue::new(capacity),
                sleeping: AtomicBool::new(false),
                thread: OnceLock::new(),
                alive: AtomicBool::new(true),
                received: AtomicU64::new(0),
                latency: Mutex::new(LatencySummary::default()),
            })
            .collect();
        let shared = Arc::new(Shared {
            slots,
            open_producers: AtomicUsize::new(1),
            final_clock_ns: AtomicU64::new(0),
            spare: ArrayQueue::new(workers * (capacity + 4)),
            interfaces,
            overflow: config.overflow,
            suppressed_notices: config.suppressed_notices,
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let mut threads = Vec::with_capacity(workers);
        for index in 0..workers {
            let worker = make(index);
            let thread_shared = Arc::clone(&shared);
            let cpu = config.cpus.as_ref().and_then(|cpus| cpus.get(index).copied());
            let pace = Pace {
                clock: config.clock,
                tick_interval: config.tick_interval,
                idle_poll: config.idle_poll,
            };
            let handle = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || run_worker(index, worker, &thread_shared, cpu, pace))?;
            let _ = shared.slots[index].thread.set(handle.thread().clone());
            threads.push(handle);
        }
        Ok(Self { shared, threads })
    }

    /// A producer's handle: one per capture thread.
    pub fn fanout(&self) -> Fanout {
        self.shared.open_producers.fetch_add(1, Ordering::AcqRel);
        Fanout::new(Arc::clone(&self.shared))
    }

    /// The interfaces packets name.
    pub fn interfaces(&self) -> &Arc<InterfaceTable> {
        &self.shared.interfaces
    }

    /// Live figures: per worker (packets received, latency so far), and
    /// packets queued and dropped over all producers.
    pub fn live(&self) -> PoolLive {
        self.watcher().live()
    }

    /// A handle that reads the live figures from another thread.
    pub fn watcher(&self) -> PoolWatcher {
        PoolWatcher(Arc::clone(&self.shared))
    }

    /// Waits for every fanout to finish and every queue to drain, ends the
    /// workers and returns them with their reports, in worker order.
    pub fn finish(self) -> PoolReport<W> {
        self.shared.open_producers.fetch_sub(1, Ordering::AcqRel);
        for index in 0..self.shared.slots.len() {
            self.shared.slots[index].sleeping.store(true, Ordering::SeqCst);
            self.shared.wake(index);
        }
        let mut report = PoolReport {
            workers: Vec::with_capacity(self.threads.len()),
            panicked: Vec::new(),
            stranded: Vec::new(),
        };
        for (index, thread) in self.threads.into_iter().enumerate() {
            match thread.join() {
                Ok(done) => report.workers.push(done),
                Err(_) => report.panicked.push(index),
            }
        }
        // A worker that panicked left its queue behind: those packets were
        // counted as handed over, and are lost.
        for &index in &report.panicked {
            while let Some(batch) = self.shared.slots[index].queue.pop() {
                for meta in &batch.packets {
                    let slot = meta.interface.index();
                    if report.stranded.len() <= slot {
                        report.stranded.resize(slot + 1, 0);
                    }
                    report.stranded[slot] += 1;
                }
            }
        }
        report
    }
}

/// How a pool ended.
pub struct PoolReport<W> {
    /// The workers that ended normally, with their reports, in order.
    pub workers: Vec<(W, WorkerReport)>,
    /// The indices of those that panicked.
    pub panicked: Vec<usize>,
    /// Packets left in the queues of panicked workers, by interface id:
    /// handed over, never taken (count them as `worker_stopped` drops).
    pub stranded: Vec<u64>,
}

impl<W> PoolReport<W> {
    /// Folds the stranded packets into `fanout` (moving them from
    /// delivered to `worker_stopped`).
    pub fn settle(&self, fanout: &mut FanoutReport) {
        for (index, &count) in self.stranded.iter().enumerate() {
            if fanout.interfaces.len() <= index {
                fanout.interfaces.resize(index + 1, InterfaceFanout::default());
            }
            let entry = &mut fanout.interfaces[index];
            entry.delivered = entry.delivered.saturating_sub(count);
            entry.drops.worker_stopped += count;
        }
    }
}

/// Reads a pool's live figures from any thread.
#[derive(Clone)]
pub struct PoolWatcher(Arc<Shared>);

impl PoolWatcher {
    /// Per worker (packets received, latency so far), and packets queued
    /// and dropped over all producers.
    pub fn live(&self) -> PoolLive {
        let shared = &self.0;
        PoolLive {
            workers: shared
                .slots
                .iter()
                .map(|slot| {
                    (
                        slot.received.load(Ordering::Relaxed),
                        *slot.latency.lock().unwrap_or_else(PoisonError::into_inner),
                    )
                })
                .collect(),
            queued: shared.queued.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Live figures of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolLive {
    /// Per worker: packets received, latency.
    pub workers: Vec<(u64, LatencySummary)>,
    /// Packets handed to queues.
    pub queued: u64,
    /// Packets dropped at full queues or stopped workers.
    pub dropped: u64,
}

/// A worker thread's clock and timings, from [`PoolConfig`].
#[derive(Clone, Copy)]
struct Pace {
    clock: PoolClock,
    tick_interval: Duration,
    idle_poll: Duration,
}

fn run_worker<W: Worker>(
    index: usize,
    mut worker: W,
    shared: &Shared,
    cpu: Option<usize>,
    Pace {
        clock,
        tick_interval,
        idle_poll,
    }: Pace,
) -> (W, WorkerReport) {
    let slot = &shared.slots[index];
    let _alive = AliveGuard(slot);
    if let Some(cpu) = cpu {
        match af_packet::cpu::pin_current_thread(cpu) {
            Ok(()) => tracing::debug!(worker = index, cpu, "worker pinned"),
            Err(e) => tracing::warn!(worker = index, cpu, error = %e, "worker not pinned"),
        }
    }
    let mut latency = match clock {
        PoolClock::Wall => Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_NS, 3).ok(),
        PoolClock::Packets => None,
    };
    let mut report = WorkerReport {
        index,
        batches: 0,
        packets: 0,
        notices: 0,
        latency: None,
    };
    let mut packet_clock = 0u64;
    let mut last_tick = Instant::now();
    let mut last_publish = Instant::now();
    let backoff = Backoff::new();
    let mut last_batch = Instant::now();
    let mut rate = RecentRate::new(last_batch);
    loop {
        if let Some(mut batch) = slot.queue.pop() {
            backoff.reset();
            last_batch = Instant::now();
            rate.record(last_batch, batch.packets.len() as u64);
            if let Some(histogram) = &mut latency {
                let now = wall_clock_ns();
                for meta in &batch.packets {
                    histogram.saturating_record(now.saturating_sub(meta.timestamp_ns).clamp(1, LATENCY_MAX_NS));
                }
            }
            report.batches += 1;
            report.packets += batch.packets.len() as u64;
            report.notices += batch.suppressed.len() as u64;
            slot.received.fetch_add(batch.packets.len() as u64, Ordering::Relaxed);
            worker.batch(&batch);
            if clock == PoolClock::Packets && batch.clock_ns > packet_clock {
                packet_clock = batch.clock_ns;
                worker.tick(packet_clock);
            }
            batch.clear();
            let _ = shared.spare.push(batch);
        } else if shared.open_producers.load(Ordering::Acquire) == 0 {
            // Every producer has finished: what they queued is in the queue
            // now, or was taken above.
            if slot.queue.is_empty() {
                break;
            }
            continue;
        } else if !backoff.is_completed() {
            backoff.snooze();
        } else if rate.busy() && last_batch.elapsed() < idle_poll {
            std::thread::yield_now();
        } else {
            slot.sleeping.store(true, Ordering::SeqCst);
            if slot.queue.is_empty() && shared.open_producers.load(Ordering::Acquire) != 0 {
                std::thread::park_timeout(tick_interval.min(Duration::from_millis(1)));
            }
            slot.sleeping.store(false, Ordering::SeqCst);
        }
        if clock == PoolClock::Wall && last_tick.elapsed() >= tick_interval {
            worker.tick(wall_clock_ns());
            last_tick = Instant::now();
        }
        if let Some(histogram) = &latency {
            if last_publish.elapsed() >= Duration::from_secs(1) {
                *slot.latency.lock().unwrap_or_else(PoisonError::into_inner) = LatencySummary::of(histogram);
                last_publish = Instant::now();
            }
        }
    }
    let end = match clock {
        PoolClock::Wall => wall_clock_ns(),
        PoolClock::Packets => packet_clock.max(shared.final_clock_ns.load(Ordering::Acquire)),
    };
    worker.finish(end);
    if let Some(histogram) = &latency {
        let summary = LatencySummary::of(histogram);
        *slot.latency.lock().unwrap_or_else(PoisonError::into_inner) = summary;
        report.latency = Some(summary);
    }
    (worker, report)
}

/// Why packets were dropped between a producer and the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDrops {
    /// The worker's queue was full ([`Overflow::Drop`]).
    pub queue_full: u64,
    /// The worker's thread had ended.
    pub worker_stopped: u64,
}

impl QueueDrops {
    /// Both reasons together.
    pub fn total(&self) -> u64 {
        self.queue_full + self.worker_stopped
    }

    /// Adds `other`.
    pub fn add(&mut self, other: QueueDrops) {
        self.queue_full += other.queue_full;
        self.worker_stopped += other.worker_stopped;
    }
}

/// What one producer handed over, per interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceFanout {
    /// Packets in a worker's queue.
    pub delivered: u64,
    /// Packets dropped on the way.
    pub drops: QueueDrops,
}

/// What one producer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FanoutReport {
    /// Indexed by [`InterfaceId::index`].
    pub interfaces: Vec<InterfaceFanout>,
    /// Batches handed over.
    pub batches: u64,
    /// Times a full queue was waited on ([`Overflow::Wait`]).
    pub waits: u64,
}

impl FanoutReport {
    /// The counts of `interface`.
    pub fn interface(&self, interface: InterfaceId) -> InterfaceFanout {
        self.interfaces.get(interface.index()).copied().unwrap_or_default()
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &FanoutReport) {
        if self.interfaces.len() < other.interfaces.len() {
            self.interfaces
                .resize(other.interfaces.len(), InterfaceFanout::default());
        }
        for (mine, theirs) in self.interfaces.iter_mut().zip(&other.interfaces) {
            mine.delivered += theirs.delivered;
            mine.drops.add(theirs.drops);
        }
        self.batches += other.batches;
        self.waits += other.waits;
    }

    /// Packets delivered over every interface.
    pub fn delivered(&self) -> u64 {
        self.interfaces.iter().map(|i| i.delivered).sum()
    }

    /// Packets dropped over every interface.
    pub fn drops(&self) -> QueueDrops {
        let mut total = QueueDrops::default();
        for interface in &self.interfaces {
            total.add(interface.drops);
        }
        total
    }
}

/// One producer's side of the pool: sorts packets into per-worker batches
/// and hands them over. Call [`Fanout::flush`] at the end of each turn of
/// the capture loop, so no packet waits for a batch to fill, and
/// [`Fanout::finish`] at the end.
pub struct Fanout {
    shared: Arc<Shared>,
    pending: Vec<PacketBatch>,
    spare: Vec<PacketBatch>,
    report: FanoutReport,
    clock_ns: u64,
    finished: bool,
}

impl Fanout {
    fn new(shared: Arc<Shared>) -> Self {
        let workers = shared.slots.len();
        let pending = (0..workers)
            .map(|_| PacketBatch::new(Arc::clone(&shared.interfaces)))
            .collect();
        Self {
            shared,
            pending,
            spare: Vec::new(),
            report: FanoutReport::default(),
            clock_ns: 0,
            finished: false,
        }
    }

    /// The worker of a flow hash: the same for every producer.
    #[inline]
    pub fn worker_of(&self, flow_hash: u64) -> usize {
        worker_of(flow_hash, self.pending.len())
    }

    /// Whether the workers want suppressed-copy notices.
    pub fn wants_notices(&self) -> bool {
        self.shared.suppressed_notices
    }

    /// The interfaces packets name.
    pub fn interfaces(&self) -> &Arc<InterfaceTable> {
        &self.shared.interfaces
    }

    /// Sends one packet to the worker of `meta.flow_hash`.
    pub fn deliver(&mut self, meta: PacketMeta, data: &[u8]) {
        let worker = self.worker_of(meta.flow_hash);
        let batch = &self.pending[worker];
        if batch.packets.len() >= BATCH_PACKETS
            || (!batch.packets.is_empty() && batch.bytes.len() + data.len() > BATCH_BYTES)
        {
            self.hand_over(worker);
        }
        self.pending[worker].push(meta, data);
    }

    /// Sends a suppressed-copy notice to the worker of its flow (when the
    /// workers want them).
    pub fn suppressed(&mut self, notice: SuppressedNotice) {
        if !self.shared.suppressed_notices {
            return;
        }
        let worker = self.worker_of(notice.flow_hash);
        if self.pending[worker].suppressed.len() >= BATCH_NOTICES {
            self.hand_over(worker);
        }
        self.pending[worker].push_suppressed(notice);
    }

    /// Moves the producer's clock on (offline: the time of the packet just
    /// read), for the batches handed over from now.
    #[inline]
    pub fn advance_clock(&mut self, clock_ns: u64) {
        self.clock_ns = self.clock_ns.max(clock_ns);
    }

    /// Hands every non-empty batch over; `clock_ns` is the producer's clock
    /// (wall time live, the last packet's time offline).
    pub fn flush(&mut self, clock_ns: u64) {
        self.clock_ns = self.clock_ns.max(clock_ns);
        for worker in 0..self.pending.len() {
            if !self.pending[worker].is_empty() {
                self.hand_over(worker);
            }
        }
    }

    /// Hands everything over and tells the workers this producer is done.
    pub fn finish(mut self, clock_ns: u64) -> FanoutReport {
        self.flush(clock_ns);
        self.close();
        std::mem::take(&mut self.report)
    }

    /// The counts so far.
    pub fn report(&self) -> &FanoutReport {
        &self.report
    }

    fn close(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.shared.final_clock_ns.fetch_max(self.clock_ns, Ordering::AcqRel);
        self.shared.open_producers.fetch_sub(1, Ordering::AcqRel);
        for worker in 0..self.shared.slots.len() {
            self.shared.wake(worker);
        }
    }

    fn fresh_batch(&mut self) -> PacketBatch {
        self.spare
            .pop()
            .or_else(|| self.shared.spare.pop())
            .unwrap_or_else(|| PacketBatch::new(Arc::clone(&self.shared.interfaces)))
    }

    fn counts(&mut self, interface: InterfaceId) -> &mut InterfaceFanout {
        let index = interface.index();
        if self.report.interfaces.len() <= index {
            self.report.interfaces.resize(index + 1, InterfaceFanout::default());
        }
        &mut self.report.interfaces[index]
    }

    fn hand_over(&mut self, worker: usize) {
        let replacement = self.fresh_batch();
        let mut batch = std::mem::replace(&mut self.pending[worker], replacement);
        batch.clock_ns = self.clock_ns;
        let packets = batch.packets.len() as u64;
        // Counted as delivered first: once pushed, the batch is the
        // worker's. A drop below takes the count back.
        for index in 0..batch.packets.len() {
            let interface = batch.packets[index].interface;
            self.counts(interface).delivered += 1;
        }
        let slot = &self.shared.slots[worker];
        let mut waited = false;
        let backoff = Backoff::new();
        let (mut dropped, stopped) = loop {
            if !slot.alive.load(Ordering::Acquire) {
                break (batch, true);
            }
            match slot.queue.push(batch) {
                Ok(()) => {
                    self.report.batches += 1;
                    self.shared.queued.fetch_add(packets, Ordering::Relaxed);
                    self.shared.wake(worker);
                    return;
                }
                Err(full) if self.shared.overflow == Overflow::Wait => {
                    batch = full;
                    if !waited {
                        waited = true;
                        self.report.waits += 1;
                    }
                    self.shared.wake(worker);
                    if backoff.is_completed() {
                        std::thread::sleep(Duration::from_micros(50));
                    } else {
                        backoff.snooze();
                    }
                }
                Err(full) => break (full, false),
            }
        };
        self.shared.dropped.fetch_add(packets, Ordering::Relaxed);
        for index in 0..dropped.packets.len() {
            let interface = dropped.packets[index].interface;
            let counts = self.counts(interface);
            counts.delivered -= 1;
            if stopped {
                counts.drops.worker_stopped += 1;
            } else {
                counts.drops.queue_full += 1;
            }
        }
        dropped.clear();
        self.spare.push(dropped);
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        // A producer that ends without finish (its thread unwinding) must
        // not keep the workers waiting for it.
        self.close();
    }
}

/// The worker of `flow_hash` among `workers`: the high bits of the hash
/// times the count, so every worker gets an equal share of a uniform hash.
#[inline]
pub fn worker_of(flow_hash: u64, workers: usize) -> usize {
    ((u128::from(flow_hash) * workers as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_worker_is_busy_enough_to_poll_from_the_minimum_rate_and_not_after_a_pause() {
        use super::RecentRate;
        let start = std::time::Instant::now();
        let period = RecentRate::PERIOD;
        let busy = RecentRate::BUSY_PACKETS;
        assert_eq!(busy, 500, "50 000 packets per second over 10 ms");
        let mut rate = RecentRate::new(start);
        assert!(!rate.busy());
        rate.record(start, busy - 1);
        assert!(!rate.busy(), "one packet short");
        rate.record(start + period / 2, 1);
        assert!(rate.busy(), "the current period reached it");
        // The next period remembers the last one.
        rate.record(start + period, 1);
        assert!(rate.busy());
        // A period later with few packets: the busy one is two periods back.
        rate.record(start + period * 2, 1);
        assert!(!rate.busy());
        // After a pause longer than a period, the last one counts as empty.
        let mut rate = RecentRate::new(start);
        rate.record(start, busy);
        rate.record(start + period * 3, 1);
        assert!(!rate.busy());
    }

    use std::collections::HashMap;

    use flow::{TapDirection, TapId, TapPoint, TapRole};

    use super::*;
    use crate::interfaces::InterfaceInfo;

    #[test]
    fn latency_summary_counts_cumulative_buckets_and_the_sum() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_NS, 3).unwrap();
        for ns in [5_000, 60_000, 2_000_000, 2_000_000_000] {
            histogram.record(ns).unwrap();
        }
        let summary = LatencySummary::of(&histogram);
        assert_eq!(summary.count, 4);
        // <= 10 us, 50 us, 100 us, 250 us, 500 us, 1 ms, 2.5 ms, ... 1 s.
        assert_eq!(summary.buckets, [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3]);
        let sum = 5_000 + 60_000 + 2_000_000 + 2_000_000_000u64;
        assert!(summary.sum_ns.abs_diff(sum) <= sum / 1000, "{summary:?}");
        assert_eq!(LatencySummary::default().buckets, [0; LATENCY_BUCKET_BOUNDS_NS.len()]);
    }

    /// Remembers which flow hashes and timestamps it saw, optionally
    /// sleeping per batch (a stalled IDS).
    struct Recorder {
        seen: Vec<(u64, u64)>,
        delay: Duration,
        panic_at: Option<u64>,
    }

    impl Worker for Recorder {
        fn batch(&mut self, batch: &PacketBatch) {
            for packet in batch.packets() {
                if Some(packet.meta.timestamp_ns) == self.panic_at {
                    panic!("this worker fails on purpose");
                }
                assert_eq!(packet.data, &packet.meta.timestamp_ns.to_le_bytes()[..]);
                self.seen.push((packet.meta.flow_hash, packet.meta.timestamp_ns));
            }
            std::thread::sleep(self.delay);
        }
    }

    fn pool(config: &PoolConfig, delay: Duration, panic_at: Option<u64>) -> (WorkerPool<Recorder>, InterfaceId) {
        let interfaces = Arc::new(InterfaceTable::new());
        let eth0 = interfaces.intern(InterfaceInfo {
            name: "eth0".to_owned(),
            role: TapRole::Uplink,
            ifindex: 2,
            link_type: 1,
            container: None,
        });
        let pool = WorkerPool::start(config, interfaces, |_| Recorder {
            seen: Vec::new(),
            delay,
            panic_at,
        })
        .expect("worker threads start");
        (pool, eth0)
    }

    fn send(fanout: &mut Fanout, interface: InterfaceId, packets: u64, flows: u64) {
        let tap = TapPoint {
            id: TapId(0),
            role: TapRole::Uplink,
            direction: TapDirection::Incoming,
        };
        for i in 0..packets {
            let mut meta = PacketMeta::new(i, 8, interface, tap);
            meta.flow_hash = (i % flows).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            fanout.deliver(meta, &i.to_le_bytes());
            if i % 1000 == 999 {
                fanout.flush(i);
            }
        }
    }

    #[test]
    fn every_flow_goes_to_one_worker_in_order_and_nothing_is_lost_when_waiting() {
        let config = PoolConfig {
            workers: 3,
            queue_depth: 128,
            overflow: Overflow::Wait,
            ..PoolConfig::default()
        };
        let (pool, eth0) = pool(&config, Duration::ZERO, None);
        let mut producers = Vec::new();
        for _ in 0..2 {
            let mut fanout = pool.fanout();
            producers.push(std::thread::spawn(move || {
                send(&mut fanout, eth0, 20_000, 97);
                fanout.finish(20_000)
            }));
        }
        let mut report = FanoutReport::default();
        for producer in producers {
            report.add(&producer.join().expect("producer"));
        }
        let done = pool.finish();
        assert!(done.panicked.is_empty());
        let workers = done.workers;
        assert_eq!(report.delivered(), 40_000);
        assert_eq!(report.drops().total(), 0);
        let mut owner = HashMap::new();
        let mut total = 0;
        for (worker, done) in &workers {
            total += worker.seen.len();
            assert_eq!(done.packets as usize, worker.seen.len());
            // Per flow, each producer's packets arrive in the order it sent
            // them; both send the same timestamps, so a flow's timestamps
            // are two increasing runs merged: never more than two equal.
            let mut per_flow: HashMap<u64, Vec<u64>> = HashMap::new();
            for &(hash, ts) in &worker.seen {
                assert_eq!(
                    *owner.entry(hash).or_insert(done.index),
                    done.index,
                    "a flow on two workers"
                );
                per_flow.entry(hash).or_default().push(ts);
            }
            for times in per_flow.values() {
                let mut runs: Vec<u64> = Vec::new();
                for &ts in times {
                    // Greedy: each timestamp extends a run it does not go
                    // back from; a third run means a reordering.
                    match runs.iter_mut().find(|last| **last <= ts) {
                        Some(last) => *last = ts,
                        None => runs.push(ts),
                    }
                }
                assert!(runs.len() <= 2, "a flow's packets were reordered: {} runs", runs.len());
            }
        }
        assert_eq!(total, 40_000);
        assert!(owner.values().collect::<std::collections::HashSet<_>>().len() > 1);
    }

    #[test]
    fn a_stalled_worker_costs_counted_drops_not_a_hang() {
        let config = PoolConfig {
            workers: 1,
            queue_depth: 128,
            overflow: Overflow::Drop,
            ..PoolConfig::default()
        };
        let (pool, eth0) = pool(&config, Duration::from_millis(20), None);
        let mut fanout = pool.fanout();
        send(&mut fanout, eth0, 50_000, 10);
        let report = fanout.finish(50_000);
        let done = pool.finish();
        assert!(done.panicked.is_empty());
        let received: u64 = done.workers.iter().map(|(_, r)| r.packets).sum();
        let drops = report.interface(eth0).drops;
        assert!(drops.queue_full > 0, "the queue never filled");
        assert_eq!(drops.worker_stopped, 0);
        assert_eq!(report.interface(eth0).delivered, received);
        assert_eq!(received + drops.queue_full, 50_000);
    }

    #[test]
    fn a_worker_that_panics_stops_taking_packets_and_they_are_counted() {
        let config = PoolConfig {
            workers: 1,
            queue_depth: 64,
            overflow: Overflow::Wait,
            ..PoolConfig::default()
        };
        let (pool, eth0) = pool(&config, Duration::ZERO, Some(100));
        let mut fanout = pool.fanout();
        send(&mut fanout, eth0, 20_000, 5);
        let mut report = fanout.finish(20_000);
        let done = pool.finish();
        assert_eq!(done.panicked, vec![0]);
        done.settle(&mut report);
        let counts = report.interface(eth0);
        assert!(counts.drops.worker_stopped > 0);
        assert_eq!(counts.delivered + counts.drops.total(), 20_000);
        // What the worker took before it failed: the batches up to and with
        // the one it panicked in.
        assert!(
            counts.delivered >= 101 && counts.delivered <= 100 + BATCH_PACKETS as u64,
            "{counts:?}"
        );
    }

    #[test]
    fn the_worker_of_a_hash_is_spread_evenly() {
        let mut per = [0u32; 4];
        for i in 0..40_000u64 {
            per[worker_of(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), 4)] += 1;
        }
        for count in per {
            assert!((9_000..11_000).contains(&count), "{per:?}");
        }
    }
}
