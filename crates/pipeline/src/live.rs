//! Counters of a running capture, readable while it runs: each capture
//! thread publishes a snapshot of its interfaces about once a second (what
//! its rings captured and the kernel counted, what its dedup and fan-out did
//! with the packets), replacing its previous one; a reader sums the
//! threads' latest snapshots. The EVE `stats` events and the Prometheus
//! endpoint read them.
//!
//! Snapshots are per thread and replaced, never added up over time, so a
//! reader always sees totals since the start, consistent per thread.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use flow::SieveCounters;

/// One interface's counters as one capture thread saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceLive {
    /// Packets the kernel put in the ring (`tp_packets - tp_drops`).
    pub kernel_received: u64,
    /// Packets the kernel dropped because the ring was full.
    pub kernel_drops: u64,
    /// Packets read from the ring.
    pub captured: u64,
    /// Handed to a worker's queue.
    pub delivered: u64,
    /// Suppressed as duplicates.
    pub duplicates: u64,
    /// Did not parse.
    pub malformed: u64,
    /// Held now, waiting for a better copy.
    pub held: u64,
    /// Dropped at a full worker queue.
    pub queue_full: u64,
    /// Dropped because a worker had stopped.
    pub worker_stopped: u64,
    /// Times the kernel froze the ring's queue because it was full.
    pub freezes: u64,
    /// Ring blocks whose headers did not hold together (skipped whole).
    pub malformed_blocks: u64,
}

impl InterfaceLive {
    /// Adds `other`.
    pub fn add(&mut self, other: &InterfaceLive) {
        self.kernel_received += other.kernel_received;
        self.kernel_drops += other.kernel_drops;
        self.captured += other.captured;
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.malformed += other.malformed;
        self.held += other.held;
        self.queue_full += other.queue_full;
        self.worker_stopped += other.worker_stopped;
        self.freezes += other.freezes;
        self.malformed_blocks += other.malformed_blocks;
    }
}

/// Counters by interface name.
pub type LiveSnapshot = BTreeMap<String, InterfaceLive>;

/// The latest snapshot of every capture thread, and of its dedup engine's
/// counters when it has one.
#[derive(Debug, Default)]
pub struct LiveCounters {
    threads: Mutex<Vec<LiveSnapshot>>,
    engines: Mutex<Vec<Option<SieveCounters>>>,
}

impl LiveCounters {
    /// No thread has published yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the snapshot of capture thread `thread`.
    pub fn publish(&self, thread: usize, snapshot: LiveSnapshot) {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if threads.len() <= thread {
            threads.resize(thread + 1, LiveSnapshot::new());
        }
        threads[thread] = snapshot;
    }

    /// Replaces the dedup engine counters of capture thread `thread`.
    pub fn publish_engine(&self, thread: usize, counters: Option<SieveCounters>) {
        let mut engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        if engines.len() <= thread {
            engines.resize(thread + 1, None);
        }
        engines[thread] = counters;
    }

    /// Every thread's latest dedup engine counters summed; `None` without
    /// a dedup.
    pub fn engine(&self) -> Option<SieveCounters> {
        let engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sum: Option<SieveCounters> = None;
        for counters in engines.iter().flatten() {
            sum.get_or_insert_with(SieveCounters::default).add(counters);
        }
        sum
    }

    /// Every thread's latest snapshot summed, by interface.
    pub fn snapshot(&self) -> LiveSnapshot {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sum = LiveSnapshot::new();
        for snapshot in threads.iter() {
            for (name, counts) in snapshot {
                sum.entry(name.clone()).or_default().add(counts);
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_replace_per_thread_and_sum_across_threads() {
        let live = LiveCounters::new();
        let one = |captured| {
            let mut snapshot = LiveSnapshot::new();
            snapshot.insert(
                "eth0".to_owned(),
                InterfaceLive {
                    captured,
                    ..InterfaceLive::default()
                },
            );
            snapshot
        };
        live.publish(0, one(10));
        live.publish(1, one(5));
        live.publish(0, one(12));
        assert_eq!(live.snapshot()["eth0"].captured, 17);
        assert!(live.engine().is_none());
        let engine = |copies| SieveCounters {
            copies,
            ..SieveCounters::default()
        };
        live.publish_engine(1, Some(engine(4)));
        live.publish_engine(0, Some(engine(2)));
        live.publish_engine(1, Some(engine(5)));
        assert_eq!(live.engine().map(|e| e.copies), Some(7));
    }
}
