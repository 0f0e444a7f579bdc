//! One capture thread: waits on its rings, reads every ready block, hands each
//! packet to its sink, refreshes the kernel counters periodically, and on stop
//! drains what the rings still hold before reporting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use af_packet::{CloseReason, Interface, KernelCounters, Packet, RingGeometry, RingSet};

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

/// Runs a capture loop on the calling thread until `stop` is set.
pub fn run<S: PacketSink>(
    mut rings: RingSet,
    config: CaptureThreadConfig,
    stop: &AtomicBool,
    mut sink: S,
) -> CaptureReport {
    if let Some(cpu) = config.cpu {
        match af_packet::cpu::pin_current_thread(cpu) {
            Ok(()) => tracing::debug!(cpu, "capture thread pinned"),
            Err(e) => tracing::warn!(error = %e, "capture thread not pinned"),
        }
    }
    let mut reports: Vec<Option<InterfaceReport>> = Vec::new();
    for (id, ring) in rings.rings() {
        if reports.len() <= id.index() {
            reports.resize(id.index() + 1, None);
        }
        reports[id.index()] = Some(InterfaceReport {
            interface: ring.interface().clone(),
            counters: KernelCounters::default(),
            captured: 0,
            geometry: ring.geometry(),
            closed: None,
            malformed_blocks: 0,
        });
    }
    let mut captured = vec![0u64; reports.len()];
    let timeout_ms = i32::try_from(config.poll_timeout.as_millis()).unwrap_or(i32::MAX);
    let mut last_counters = Instant::now();
    let mut error = None;

    while !stop.load(Ordering::Relaxed) && !rings.is_empty() {
        let result = rings.poll(timeout_ms, config.blocks_per_turn, |id, interface, packet| {
            captured[id.index()] += 1;
            sink.packet(interface, packet);
        });
        sink.end_of_turn();
        if let Err(e) = result {
            tracing::error!(error = %e, "capture thread stopped");
            error = Some(e.to_string());
            break;
        }
        for closed in rings.take_closed() {
            if let Some(Some(report)) = reports.get_mut(closed.id.index()) {
                report.counters = closed.counters;
                report.closed = Some(closed.reason);
            }
        }
        if last_counters.elapsed() >= config.counters_interval {
            rings.update_counters();
            last_counters = Instant::now();
        }
    }

    // Stop requested: whatever the rings already hold was captured and is
    // delivered. The kernel hands over a partly filled block only on the
    // retire timeout, so wait for one last turn of it.
    let retire = rings
        .rings()
        .map(|(_, r)| r.geometry().retire_timeout_ms)
        .max()
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_millis(u64::from(retire) * 2 + 10);
    loop {
        let read = rings.drain_ready(usize::MAX, |id, interface, packet| {
            captured[id.index()] += 1;
            sink.packet(interface, packet);
        });
        sink.end_of_turn();
        if Instant::now() >= deadline {
            break;
        }
        if read == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    rings.update_counters();
    sink.finish();

    for (id, ring) in rings.rings() {
        if let Some(Some(report)) = reports.get_mut(id.index()) {
            report.counters = ring.counters();
            report.malformed_blocks = ring.malformed_blocks();
        }
    }
    for closed in rings.take_closed() {
        if let Some(Some(report)) = reports.get_mut(closed.id.index()) {
            report.counters = closed.counters;
            report.closed = Some(closed.reason);
        }
    }
    let interfaces = reports
        .into_iter()
        .zip(captured)
        .filter_map(|(report, captured)| report.map(|r| InterfaceReport { captured, ..r }))
        .collect();
    CaptureReport { interfaces, error }
}
