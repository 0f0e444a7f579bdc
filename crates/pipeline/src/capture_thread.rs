//! One capture thread: waits on its rings, reads every ready block, hands each
//! packet to its sink, refreshes the kernel counters periodically, and on stop
//! drains what the rings still hold before reporting. A ring that stops (the
//! thread stopping, or the ring closing) first takes no new frame, through a
//! reject-all socket filter, and is then read until every frame its kernel
//! counters counted has been read, so a report's `captured` is its
//! `counters.received()` whatever traffic still arrives.
//!
//! A thread started with [`run_controlled`] also takes rings to add and
//! remove while it runs ([`RingCommand`], checked at every turn of its loop),
//! so host discovery can open a ring for a new interface on its own thread
//! (the kernel captures into a ring from the moment it is bound) and hand it
//! over, and keeps running with no ring at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use af_packet::{CaptureRing, CloseReason, Interface, KernelCounters, Packet, RingGeometry, RingId, RingSet};

use crate::live::{LiveCounters, LiveSnapshot};

/// Where a capture thread delivers packets. Each capture thread owns its sink,
/// so a sink needs no locking of its own for per-packet work.
pub trait PacketSink: Send {
    /// One captured packet, valid only during the call.
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>);

    /// The end of one turn of the capture loop (all packets of the blocks
    /// just read were delivered): the place to push batched output.
    fn end_of_turn(&mut self) {}

    /// The capture thread is stopping; nothing more will be delivered.
    fn finish(&mut self) {}

    /// `interface`'s ring closed: its ifindex may name another interface
    /// from now on.
    fn interface_closed(&mut self, interface: &Interface) {
        let _ = interface;
    }

    /// What host discovery knows of `interface` changed (its role, its
    /// container): look it up again.
    fn interface_updated(&mut self, interface: &Interface) {
        let _ = interface;
    }

    /// Adds what it counted per interface (duplicates, delivered...) to a
    /// live snapshot; the capture thread fills in what its rings counted.
    fn live_counts(&self, out: &mut LiveSnapshot) {
        let _ = out;
    }

    /// The dedup engine's counters so far, when it has one.
    fn engine_counts(&self) -> Option<flow::SieveCounters> {
        None
    }
}

/// A change to the rings of a running capture thread.
#[derive(Debug)]
pub enum RingCommand {
    /// Serve this ring too.
    Add(CaptureRing),
    /// What discovery knows of this interface changed (see
    /// [`PacketSink::interface_updated`]).
    Updated {
        /// The interface's index.
        ifindex: i32,
    },
    /// Close the ring of this interface (it was deleted, moved to another
    /// namespace, or is no longer selected).
    Remove {
        /// The interface's index.
        ifindex: i32,
        /// Why.
        reason: CloseReason,
    },
}

/// How a capture thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureThreadConfig {
    /// CPU to pin the thread to.
    pub cpu: Option<usize>,
    /// Longest wait for a block, which bounds how late a stop request is seen.
    pub poll_timeout: Duration,
    /// Blocks read from one ring before turning to the next.
    pub blocks_per_turn: usize,
    /// How often the kernel counters are read into the running totals (the
    /// kernel's are 32-bit and reset on read, so they must be read before
    /// they can wrap).
    pub counters_interval: Duration,
}

impl Default for CaptureThreadConfig {
    fn default() -> Self {
        Self {
            cpu: None,
            poll_timeout: Duration::from_millis(100),
            blocks_per_turn: af_packet::ring_set::DEFAULT_BLOCKS_PER_TURN,
            counters_interval: Duration::from_secs(1),
        }
    }
}

/// What one ring of a capture thread did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceReport {
    /// The interface captured.
    pub interface: Interface,
    /// Kernel counters at the end (or when the ring closed).
    pub counters: KernelCounters,
    /// Packets read from the ring and delivered to the sink.
    pub captured: u64,
    /// The ring's geometry.
    pub geometry: RingGeometry,
    /// Why the ring closed before the thread stopped, if it did.
    pub closed: Option<CloseReason>,
    /// Blocks whose headers did not fit the block (walk stopped early).
    pub malformed_blocks: u64,
}

/// What a capture thread did, ring by ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureReport {
    /// One entry per ring the thread served.
    pub interfaces: Vec<InterfaceReport>,
    /// Set when the thread stopped on an error rather than on request.
    pub error: Option<String>,
}

/// Runs a capture loop on the calling thread until `stop` is set, or until
/// its last ring closed.
pub fn run<S: PacketSink>(rings: RingSet, config: CaptureThreadConfig, stop: &AtomicBool, sink: S) -> CaptureReport {
    run_controlled(rings, config, stop, sink, None, None)
}

/// Where a capture thread publishes its live counters: the shared counters
/// and its slot in them.
#[derive(Clone, Debug)]
pub struct LivePublisher {
    /// The shared counters.
    pub counters: Arc<LiveCounters>,
    /// This thread's slot.
    pub slot: usize,
}

/// How long a stopping thread waits, once its rings stopped taking frames,
/// for the frames the kernel was already counting: they passed the filter
/// just before it was attached, and are counted within microseconds.
const STOP_IN_FLIGHT: Duration = Duration::from_millis(1);

/// The longest a stopping thread reads its rings for the frames the kernel
/// counted: far past a retire timeout, for a kernel whose timers run late.
/// Only frames lost in a malformed block make it wait this long.
const STOP_READ_LIMIT: Duration = Duration::from_secs(1);

/// [`run`], also taking ring changes from `control`; with a control
/// channel the thread runs until `stop` even with no ring.
pub fn run_controlled<S: PacketSink>(
    mut rings: RingSet,
    config: CaptureThreadConfig,
    stop: &AtomicBool,
    mut sink: S,
    control: Option<Receiver<RingCommand>>,
    live: Option<LivePublisher>,
) -> CaptureReport {
    if let Some(cpu) = config.cpu {
        match af_packet::cpu::pin_current_thread(cpu) {
            Ok(()) => tracing::debug!(cpu, "capture thread pinned"),
            Err(e) => tracing::warn!(error = %e, "capture thread not pinned"),
        }
    }
    let mut book = Bookkeeping::default();
    for (id, ring) in rings.rings() {
        book.open(id.index(), ring);
    }
    let timeout_ms = i32::try_from(config.poll_timeout.as_millis()).unwrap_or(i32::MAX);
    let mut last_counters = Instant::now();
    let mut error = None;

    while !stop.load(Ordering::Relaxed) && (control.is_some() || !rings.is_empty()) {
        if let Some(control) = &control {
            apply_commands(control, &mut rings, &mut book, &mut sink);
        }
        let result = rings.poll(timeout_ms, config.blocks_per_turn, |id, interface, packet| {
            book.captured[id.index()] += 1;
            sink.packet(interface, packet);
        });
        sink.end_of_turn();
        if let Err(e) = result {
            tracing::error!(error = %e, "capture thread stopped");
            error = Some(e.to_string());
            break;
        }
        book.close_due(&mut rings, &mut sink);
        book.retire_closed(&mut rings, &mut sink);
        if last_counters.elapsed() >= config.counters_interval {
            rings.update_counters();
            if let Some(live) = &live {
                live.counters.publish(live.slot, book.snapshot(&rings, &sink));
                live.counters.publish_engine(live.slot, sink.engine_counts());
            }
            last_counters = Instant::now();
        }
    }

    // Stop requested: whatever the rings already hold was captured and is
    // delivered. First the rings stop taking frames, so the kernel's counts
    // stop too; then they are read until every frame the kernel counted has
    // been read. The kernel hands over a partly filled block only on the
    // retire timeout, and later when the machine is loaded, so this waits
    // for what is counted rather than for a fixed time.
    rings.stop_accepting();
    std::thread::sleep(STOP_IN_FLIGHT);
    let deadline = Instant::now() + STOP_READ_LIMIT;
    loop {
        let read = rings.drain_ready(usize::MAX, |id, interface, packet| {
            book.captured[id.index()] += 1;
            sink.packet(interface, packet);
        });
        sink.end_of_turn();
        rings.read_counters();
        let unread = book.unread(&rings);
        if unread == 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(unread, "frames the kernel counted were still unread at stop");
            break;
        }
        if read == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Rings that were closing are done now too.
    for closing in std::mem::take(&mut book.closing) {
        rings.close(closing.id, closing.reason);
    }
    rings.update_counters();
    sink.finish();

    for (id, ring) in rings.rings() {
        if let Some(Some(report)) = book.open.get_mut(id.index()) {
            report.counters = ring.counters();
            report.malformed_blocks = ring.malformed_blocks();
        }
    }
    book.retire_closed(&mut rings, &mut sink);
    if let Some(live) = &live {
        live.counters.publish(live.slot, book.snapshot(&rings, &sink));
        live.counters.publish_engine(live.slot, sink.engine_counts());
    }
    let Bookkeeping {
        open,
        captured,
        mut finished,
        closing: _,
    } = book;
    finished.extend(
        open.into_iter()
            .zip(captured)
            .filter_map(|(report, captured)| report.map(|r| InterfaceReport { captured, ..r })),
    );
    CaptureReport {
        interfaces: finished,
        error,
    }
}

/// The reports of a thread's rings: by slot while open, in a list once
/// closed (a slot is reused by the next ring added).
#[derive(Default)]
struct Bookkeeping {
    open: Vec<Option<InterfaceReport>>,
    captured: Vec<u64>,
    finished: Vec<InterfaceReport>,
    /// Rings asked to close, read until their last block is handed over.
    closing: Vec<Closing>,
}

/// A ring asked to close.
struct Closing {
    id: RingId,
    reason: CloseReason,
    /// When it stops taking frames: the end of the retire timeout during
    /// which the kernel may still hand over the block it was filling.
    at: Instant,
    /// When its reject-all filter was attached.
    stopped_at: Option<Instant>,
}

impl Bookkeeping {
    fn open(&mut self, slot: usize, ring: &CaptureRing) {
        if self.open.len() <= slot {
            self.open.resize(slot + 1, None);
            self.captured.resize(slot + 1, 0);
        }
        self.open[slot] = Some(InterfaceReport {
            interface: ring.interface().clone(),
            counters: KernelCounters::default(),
            captured: 0,
            geometry: ring.geometry(),
            closed: None,
            malformed_blocks: 0,
        });
        self.captured[slot] = 0;
    }

    /// Frames the open rings' kernel counters (as last read) hold that this
    /// thread has not read yet.
    fn unread(&self, rings: &RingSet) -> u64 {
        rings.rings().map(|(id, ring)| self.unread_in(id, ring)).sum()
    }

    /// Frames `ring`'s kernel counters (as last read) hold that this thread
    /// has not read yet. A block the walk gave up on as malformed leaves its
    /// frames here for good.
    fn unread_in(&self, id: RingId, ring: &CaptureRing) -> u64 {
        let read = self.captured.get(id.index()).copied().unwrap_or(0);
        ring.counters().received().saturating_sub(read)
    }

    /// What the rings (open and closed) and the sink counted, by interface.
    fn snapshot<S: PacketSink>(&self, rings: &RingSet, sink: &S) -> LiveSnapshot {
        let mut out = LiveSnapshot::new();
        let mut add = |interface: &Interface, counters: KernelCounters, captured: u64, malformed_blocks: u64| {
            let entry = out.entry(interface.name().to_owned()).or_default();
            entry.kernel_received += counters.received();
            entry.kernel_drops += counters.drops;
            entry.freezes += counters.freezes;
            entry.captured += captured;
            entry.malformed_blocks += malformed_blocks;
        };
        for report in &self.finished {
            add(
                &report.interface,
                report.counters,
                report.captured,
                report.malformed_blocks,
            );
        }
        for (id, ring) in rings.rings() {
            let captured = self.captured.get(id.index()).copied().unwrap_or(0);
            add(ring.interface(), ring.counters(), captured, ring.malformed_blocks());
        }
        sink.live_counts(&mut out);
        out
    }

    /// Closes the rings whose closing time has come, after reading what
    /// they hold.
    fn close_due<S: PacketSink>(&mut self, rings: &mut RingSet, sink: &mut S) {
        if self.closing.is_empty() {
            return;
        }
        let now = Instant::now();
        if !self.closing.iter().any(|closing| closing.at <= now) {
            return;
        }
        let captured = &mut self.captured;
        rings.drain_ready(usize::MAX, |id, interface, packet| {
            captured[id.index()] += 1;
            sink.packet(interface, packet);
        });
        sink.end_of_turn();
        let (due, waiting): (Vec<_>, Vec<_>) = self.closing.drain(..).partition(|closing| closing.at <= now);
        self.closing = waiting;
        for mut closing in due {
            // From its closing time the ring takes no new frame (an
            // interface renamed is captured again by a new ring by then),
            // and a block the kernel has not handed over yet (its retire
            // timer runs late on a loaded machine) holds counted frames:
            // it is read until they are, as at stop, up to the same limit.
            let Some(ring) = rings.ring_mut(closing.id) else {
                continue;
            };
            let stopped_at = *closing.stopped_at.get_or_insert_with(|| {
                if let Err(error) = ring.stop_accepting() {
                    tracing::debug!(interface = ring.interface().name(), %error, "closing ring still accepting frames");
                }
                now
            });
            if now < stopped_at + STOP_IN_FLIGHT {
                self.closing.push(closing);
                continue;
            }
            let _ = ring.update_counters();
            let unread = self.unread_in(closing.id, ring);
            if unread > 0 && now < stopped_at + STOP_READ_LIMIT {
                self.closing.push(closing);
                continue;
            }
            if unread > 0 {
                tracing::warn!(
                    unread,
                    "frames the kernel counted were still unread when the ring closed"
                );
            }
            rings.close(closing.id, closing.reason);
        }
    }

    /// Moves the reports of the rings that closed to the finished list.
    fn retire_closed<S: PacketSink>(&mut self, rings: &mut RingSet, sink: &mut S) {
        for closed in rings.take_closed() {
            sink.interface_closed(&closed.interface);
            let slot = closed.id.index();
            if let Some(report) = self.open.get_mut(slot).and_then(Option::take) {
                self.finished.push(InterfaceReport {
                    counters: closed.counters,
                    closed: Some(closed.reason),
                    captured: std::mem::take(&mut self.captured[slot]),
                    ..report
                });
            }
        }
    }
}

/// Applies the ring changes waiting in `control`.
fn apply_commands<S: PacketSink>(
    control: &Receiver<RingCommand>,
    rings: &mut RingSet,
    book: &mut Bookkeeping,
    sink: &mut S,
) {
    while let Ok(command) = control.try_recv() {
        match command {
            RingCommand::Add(ring) => {
                let interface = ring.interface().clone();
                let geometry = ring.geometry();
                match rings.add(ring) {
                    Ok(id) => {
                        if let Some(ring) = rings.rings().find(|(i, _)| *i == id).map(|(_, r)| r) {
                            book.open(id.index(), ring);
                        }
                        tracing::debug!(%interface, %geometry, "ring added to a capture thread");
                    }
                    Err(error) => {
                        tracing::error!(%interface, %error, "a new ring could not join the capture thread");
                    }
                }
            }
            RingCommand::Updated { ifindex } => {
                let interface = rings
                    .rings()
                    .find(|(_, ring)| ring.interface().ifindex() == ifindex)
                    .map(|(_, ring)| ring.interface().clone());
                if let Some(interface) = interface {
                    sink.interface_updated(&interface);
                }
            }
            RingCommand::Remove { ifindex, reason } => {
                let found = rings
                    .rings()
                    .find(|(_, ring)| ring.interface().ifindex() == ifindex)
                    .map(|(id, _)| id);
                if let Some(id) = found {
                    // The kernel hands over the block it is filling only at
                    // the retire timeout: keep reading the ring until then,
                    // so the last packets of a container deleted right after
                    // sending them are delivered. Its slot stays taken until
                    // it closes.
                    let retire = rings
                        .rings()
                        .find(|(i, _)| *i == id)
                        .map_or(0, |(_, ring)| ring.geometry().retire_timeout_ms);
                    let at = Instant::now() + Duration::from_millis(u64::from(retire) * 2 + 10);
                    if !book.closing.iter().any(|closing| closing.id == id) {
                        book.closing.push(Closing {
                            id,
                            reason,
                            at,
                            stopped_at: None,
                        });
                    }
                }
            }
        }
    }
}
