//! The worker each IDS worker thread of `ringsieve run` and `read` runs:
//! the flow tracker writing EVE flow records (with the signature engine
//! inside it, writing alerts, when rules were given), and (live) the pcapng
//! writer of delivered packets, each present when its output was asked
//! for. Also the parts of the exit summary and of the EVE `stats` event that
//! come from the workers: packets taken, latency percentiles, flow and
//! detection counters.

use std::sync::Arc;

use pipeline::live::{InterfaceLive, LiveSnapshot};
use pipeline::reorder::{Reorder, ReorderCounters};
use pipeline::worker::{PacketBatch, Worker};
use pipeline::worker_pool::{LatencySummary, PoolConfig, PoolLive, WorkerReport};
use serde_json::json;

use crate::detection::Detection;
use crate::pcap_worker::PcapWorker;
use crate::settings::PipelineSettings;

/// A worker's flow tracker: alone, or with the signature engine inside.
pub enum Tracker {
    /// Flow records only.
    Flows(Box<eve::FlowTracker>),
    /// Flow records, alerts and anomalies.
    Detecting(Box<eve::FlowTracker<ids::SignatureInspector>>),
}

impl Tracker {
    /// A tracker with its share (`1/workers`) of the flow table, running
    /// `detection` when given.
    pub fn new(
        settings: &PipelineSettings,
        writer: &Arc<eve::EveWriter>,
        detection: Option<&Detection>,
        workers: usize,
    ) -> Self {
        let config = eve::FlowTrackerConfig {
            timeouts: settings.flow_timeouts.clone(),
            max_flows: settings.max_flows.div_ceil(workers.max(1)),
        };
        match detection {
            Some(detection) => Tracker::Detecting(Box::new(eve::FlowTracker::with_inspector(
                config,
                Arc::clone(writer),
                detection.inspector(),
            ))),
            None => Tracker::Flows(Box::new(eve::FlowTracker::new(config, Arc::clone(writer)))),
        }
    }

    /// The flow counters.
    pub fn counters(&self) -> eve::FlowTrackerCounters {
        match self {
            Tracker::Flows(tracker) => tracker.counters(),
            Tracker::Detecting(tracker) => tracker.counters(),
        }
    }

    /// The detection counters, when it detects.
    pub fn detection(&self) -> Option<ids::DetectionCounters> {
        match self {
            Tracker::Flows(_) => None,
            Tracker::Detecting(tracker) => Some(tracker.inspector().counters()),
        }
    }

    fn worker(&mut self) -> &mut dyn Worker {
        match self {
            Tracker::Flows(tracker) => tracker.as_mut(),
            Tracker::Detecting(tracker) => tracker.as_mut(),
        }
    }
}

impl Worker for Tracker {
    fn batch(&mut self, batch: &PacketBatch) {
        self.worker().batch(batch);
    }

    fn tick(&mut self, clock_ns: u64) {
        self.worker().tick(clock_ns);
    }

    fn finish(&mut self, clock_ns: u64) {
        self.worker().finish(clock_ns);
    }
}

/// Most packets one worker holds to put them in timestamp order: past it
/// (or [`REORDER_MAX_BYTES`]), the oldest go on early (counted).
pub const REORDER_MAX_PACKETS: usize = 256 << 10;
/// Most bytes of packets one worker holds to put them in order.
pub const REORDER_MAX_BYTES: usize = 64 << 20;

/// The work of one worker thread.
pub struct HostWorker {
    /// EVE flow records (and alerts), fed in timestamp order.
    pub flows: Option<Reorder<Tracker>>,
    /// Delivered packets to pcapng.
    pub pcap: Option<PcapWorker>,
}

impl HostWorker {
    /// The worker of one of `workers` threads: a flow tracker when EVE
    /// output is open (its share of the flow table, detecting when
    /// `detection` is given), a pcapng writer when `pcap` gives one.
    pub fn new(
        settings: &PipelineSettings,
        eve: Option<&Arc<eve::EveWriter>>,
        detection: Option<&Detection>,
        pcap: Option<PcapWorker>,
        workers: usize,
    ) -> Self {
        let flows = eve.map(|writer| {
            Reorder::new(
                Tracker::new(settings, writer, detection, workers),
                settings.reorder_window_ns,
                REORDER_MAX_PACKETS,
                REORDER_MAX_BYTES,
            )
        });
        Self { flows, pcap }
    }
}

impl Worker for HostWorker {
    fn batch(&mut self, batch: &PacketBatch) {
        if let Some(flows) = &mut self.flows {
            flows.batch(batch);
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.batch(batch);
        }
    }

    fn tick(&mut self, clock_ns: u64) {
        if let Some(flows) = &mut self.flows {
            flows.tick(clock_ns);
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.tick(clock_ns);
        }
    }

    fn finish(&mut self, clock_ns: u64) {
        if let Some(flows) = &mut self.flows {
            flows.finish(clock_ns);
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.finish(clock_ns);
        }
    }
}

/// Opens the EVE output of `settings`, if any.
pub fn open_eve(settings: &PipelineSettings) -> std::io::Result<Option<Arc<eve::EveWriter>>> {
    match &settings.eve {
        Some(path) if path == "-" => Ok(Some(Arc::new(eve::EveWriter::stdout()))),
        Some(path) => Ok(Some(Arc::new(eve::EveWriter::open(path)?))),
        None => Ok(None),
    }
}

/// Latency percentiles in microseconds, as printed.
pub fn latency_json(latency: &LatencySummary) -> serde_json::Value {
    let us = |ns: u64| ns as f64 / 1000.0;
    json!({
        "packets": latency.count,
        "p50_us": us(latency.p50),
        "p99_us": us(latency.p99),
        "p99_9_us": us(latency.p999),
        "max_us": us(latency.max),
    })
}

/// The `workers` object of the exit summary: the pool's settings, each
/// worker's packets and latency, the flow tracker's counters summed.
pub fn workers_json(config: &PoolConfig, done: &[(HostWorker, WorkerReport)], panicked: &[usize]) -> serde_json::Value {
    let mut flows: Option<eve::FlowTrackerCounters> = None;
    let mut reorder = ReorderCounters::default();
    let mut detection: Option<ids::DetectionCounters> = None;
    let mut each = Vec::new();
    for (worker, report) in done {
        if let Some(reordered) = &worker.flows {
            let counts = reordered.counters();
            reorder.packets += counts.packets;
            reorder.reordered += counts.reordered;
            reorder.late += counts.late;
            reorder.forced += counts.forced;
            let tracker = reordered.inner();
            flows.get_or_insert_with(Default::default).add(&tracker.counters());
            if let Some(counters) = tracker.detection() {
                detection.get_or_insert_with(Default::default).add(&counters);
            }
        }
        let mut entry = json!({ "worker": report.index, "packets": report.packets, "batches": report.batches });
        if let Some(latency) = &report.latency {
            entry["latency"] = latency_json(latency);
        }
        each.push(entry);
    }
    let mut out = json!({
        "count": config.workers,
        "queue_depth": config.queue_depth,
        "overflow": config.overflow.name(),
        "each": each,
        "panicked": panicked,
    });
    if let Some(flows) = flows {
        out["flows"] = flows.to_json();
        out["flows"]["reorder"] = json!({
            "packets": reorder.packets,
            "reordered": reorder.reordered,
            "late": reorder.late,
            "forced": reorder.forced,
        });
    }
    if let Some(detection) = detection {
        out["detection"] = detection.to_json();
    }
    out
}

/// The `ringsieve` part of a periodic EVE `stats` event: the workers'
/// figures, and the capture's counters per interface and in total.
pub fn live_json(live: &PoolLive, interfaces: &LiveSnapshot) -> serde_json::Value {
    let mut total = InterfaceLive::default();
    let mut by_name = serde_json::Map::new();
    for (name, counts) in interfaces {
        total.add(counts);
        by_name.insert(name.clone(), interface_live_json(counts));
    }
    let workers: Vec<serde_json::Value> = live
        .workers
        .iter()
        .enumerate()
        .map(|(index, (packets, latency))| {
            json!({ "worker": index, "packets": packets, "latency": latency_json(latency) })
        })
        .collect();
    json!({
        "capture": interface_live_json(&total),
        "interfaces": by_name,
        "queued": live.queued,
        "queue_drops": live.dropped,
        "workers": workers,
    })
}

fn interface_live_json(counts: &InterfaceLive) -> serde_json::Value {
    json!({
        "kernel_packets": counts.kernel_received,
        "kernel_drops": counts.kernel_drops,
        "captured": counts.captured,
        "delivered": counts.delivered,
        "duplicates": counts.duplicates,
        "malformed": counts.malformed,
        "queue_drops": counts.queue_full + counts.worker_stopped,
    })
}
