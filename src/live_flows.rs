//! The flow trackers' counters while `ringsieve run` runs, for the metrics
//! endpoint: each worker thread copies its tracker's counters into its slot
//! of [`LiveFlows`] at every tick of the pool (about every 100 ms, busy or
//! idle) and when it finishes, and a scrape reads the slots. One lock per
//! worker and tick, never one per packet. The exit summary does not read
//! these copies: it reads the trackers themselves once the workers ended.

use std::sync::{Arc, Mutex, PoisonError};

use eve::FlowTrackerCounters;
use pipeline::worker::{PacketBatch, Worker};
use pipeline::worker_pool::PoolReport;

use crate::host_worker::HostWorker;

/// The latest flow-tracker counters of each worker; `None` for a worker
/// without a tracker (no EVE output).
#[derive(Debug)]
pub struct LiveFlows {
    slots: Vec<Mutex<Option<FlowTrackerCounters>>>,
}

impl LiveFlows {
    /// Slots for `workers` workers.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// Each worker's latest counters, in worker order.
    pub fn snapshot(&self) -> Vec<Option<FlowTrackerCounters>> {
        self.slots
            .iter()
            .map(|slot| *slot.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    fn publish(&self, slot: usize, counters: FlowTrackerCounters) {
        if let Some(slot) = self.slots.get(slot) {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(counters);
        }
    }
}

/// A worker of `ringsieve run` that publishes its flow tracker's counters
/// to [`LiveFlows`].
pub struct PublishingWorker {
    worker: HostWorker,
    live: Arc<LiveFlows>,
    slot: usize,
}

impl PublishingWorker {
    /// `worker`, publishing into slot `slot` of `live`. Its tracker's
    /// counters (zero) are published at once: a worker whose first batch
    /// blocks (a stalled output) before its first tick still shows its
    /// tracker in a scrape.
    pub fn new(worker: HostWorker, live: Arc<LiveFlows>, slot: usize) -> Self {
        let publishing = Self { worker, live, slot };
        publishing.publish();
        publishing
    }

    fn publish(&self) {
        if let Some(flows) = &self.worker.flows {
            self.live.publish(self.slot, flows.inner().counters());
        }
    }
}

impl Worker for PublishingWorker {
    fn batch(&mut self, batch: &PacketBatch) {
        self.worker.batch(batch);
    }

    fn tick(&mut self, clock_ns: u64) {
        self.worker.tick(clock_ns);
        self.publish();
    }

    fn finish(&mut self, clock_ns: u64) {
        self.worker.finish(clock_ns);
        self.publish();
    }
}

/// The pool's report with each worker unwrapped, for the summary.
pub fn host_workers(report: PoolReport<PublishingWorker>) -> PoolReport<HostWorker> {
    PoolReport {
        workers: report
            .workers
            .into_iter()
            .map(|(worker, done)| (worker.worker, done))
            .collect(),
        panicked: report.panicked,
        stranded: report.stranded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::PipelineSettings;

    fn settings() -> PipelineSettings {
        PipelineSettings {
            pool: pipeline::worker_pool::PoolConfig::default(),
            eve: None,
            stats_interval: None,
            flow_timeouts: eve::FlowTimeouts::default(),
            max_flows: 1024,
            detection: None,
            reorder_window_ns: 0,
        }
    }

    #[test]
    fn a_worker_with_a_tracker_is_in_the_snapshot_before_any_batch_or_tick() {
        let eve = tempfile::NamedTempFile::new().unwrap();
        let writer = Arc::new(eve::EveWriter::open(eve.path()).unwrap());
        let live = LiveFlows::new(2);
        let worker = HostWorker::new(&settings(), Some(&writer), None, None, 2);
        let _publishing = PublishingWorker::new(worker, Arc::clone(&live), 1);
        let snapshot = live.snapshot();
        assert!(snapshot[0].is_none());
        assert_eq!(snapshot[1], Some(FlowTrackerCounters::default()));
    }

    #[test]
    fn a_worker_without_a_tracker_stays_out_of_the_snapshot() {
        let live = LiveFlows::new(1);
        let worker = HostWorker::new(&settings(), None, None, None, 1);
        let _publishing = PublishingWorker::new(worker, Arc::clone(&live), 0);
        assert_eq!(live.snapshot(), vec![None]);
    }
}
