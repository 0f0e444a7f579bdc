//! `ringsieve bench`: the whole live pipeline on synthetic traffic in
//! memory. A generator (`testbed::docker_mix`) makes every copy that a
//! Docker host's container veths, docker0 and eth0 would capture for a
//! number of flows; they are written into TPACKET_V3 blocks as the kernel
//! writes a ring (`af_packet::ring::synthetic`), and one capture thread
//! walks the blocks through the real dedup stage, fan-out, queues and
//! worker threads (the null worker, or the flow tracker writing EVE to
//! nowhere).
//!
//! Writing the blocks is the kernel's work: it is timed apart and left out
//! of the pipeline's time, so the figures are the capture thread's cost per
//! copy (walk, parse, dedup, hand-over) with the workers keeping up (the
//! queues wait when full, so a slow worker slows the capture thread and
//! shows). Without `--rate` the blocks go as fast as the pipeline takes
//! them; with `--rate COPIES` each block is handed over when the kernel
//! would close it (full, or the retire timeout after its first packet) on
//! a clock where the copies arrive at that rate, and the workers' latency,
//! from each packet's timestamp to its batch leaving the queue, is the
//! latency live capture would have at that load. How late the harness
//! itself handed the blocks over (after their close time) is reported as
//! `handover_late`: it is in the latency, and is not the pipeline's.
//!
//! The payloads are random bytes, or with `--payload http` an HTTP/1.1
//! conversation per flow (`testbed::http_payload`), what the signature
//! engine (`--worker ids --rules FILE`) is measured on.
//!
//! Prints one JSON object on stdout: copies, packets and bytes delivered,
//! seconds, copies, packets and bits per second, ns per copy, the workers'
//! wall and CPU time inside their batches (all workers together) per
//! packet, the capture thread's CPU time, latency
//! percentiles (paced runs only), and with `--worker ids` the detection
//! counters of all workers together (packets inspected, stream chunks,
//! candidates, alerts, streams...) and the stream memory (cap, used at the
//! end, peak).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use af_packet::ring::synthetic::{PacketSpec, SyntheticRing};
use af_packet::Interface;
use anyhow::Context;
use flow::{FlowHasher, SieveShared, TapRegistry, TapRole};
use pipeline::clock::wall_clock_ns;
use pipeline::dedup_stage::{tap_role, DedupReport, DedupStage};
use pipeline::fanout_stage::{EveryCopy, LiveFanout};
use pipeline::host_book::HostBook;
use pipeline::interfaces::InterfaceTable;
use pipeline::reorder::Reorder;
use pipeline::worker::{NullWorker, PacketBatch, Worker};
use pipeline::worker_pool::{FanoutReport, LatencySummary, PoolClock, PoolConfig, WorkerPool, WorkerReport};
use pipeline::PacketSink;
use serde_json::json;
use testbed::docker_mix::{DockerMix, MixConfig, MixCopy};

use crate::detection::Detection;
use crate::host_worker::{latency_json, Tracker};
use crate::settings::BenchSettings;

/// Bytes per synthetic block: a busy interface's ring block.
const BLOCK_SIZE: usize = 1 << 20;
/// The kernel closes a block this long after its first packet (paced runs).
const RETIRE_TIMEOUT_MS: u32 = 8;
/// Paced, the harness spins (rather than sleeps) this last stretch before a
/// block's close time.
const HANDOVER_SPIN_NS: u64 = 1_000_000;

/// The worker a bench runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchWorker {
    /// Takes batches and does nothing: the pipeline's own cost.
    Null,
    /// The flow tracker, writing EVE flow records to nowhere.
    Flows,
    /// The flow tracker with the signature engine (`--rules`), writing
    /// records and alerts to nowhere.
    Ids,
}

impl BenchWorker {
    fn name(self) -> &'static str {
        match self {
            BenchWorker::Null => "null",
            BenchWorker::Flows => "flows",
            BenchWorker::Ids => "ids",
        }
    }
}

enum AnyWorker {
    Null(NullWorker),
    Tracker(Box<Reorder<Tracker>>),
}

/// A bench worker, the bytes (wire lengths) of the packets it took, and
/// the wall and CPU time it spent in them: the worker's own cost per
/// packet, which the pipeline's time hides when the capture thread is the
/// slower one (and its CPU time, which other processes on a busy machine
/// do not inflate).
struct CountingWorker {
    worker: AnyWorker,
    bytes: u64,
    busy: Duration,
    cpu_ns: u64,
}

impl Worker for CountingWorker {
    fn batch(&mut self, batch: &PacketBatch) {
        let cpu_before = thread_cpu_ns();
        let started = Instant::now();
        self.bytes += batch.packets().map(|p| u64::from(p.meta.original_len)).sum::<u64>();
        match &mut self.worker {
            AnyWorker::Null(worker) => worker.batch(batch),
            AnyWorker::Tracker(worker) => worker.batch(batch),
        }
        self.busy += started.elapsed();
        self.cpu_ns += thread_cpu_ns().saturating_sub(cpu_before);
    }

    fn tick(&mut self, clock_ns: u64) {
        if let AnyWorker::Tracker(worker) = &mut self.worker {
            worker.tick(clock_ns);
        }
    }

    fn finish(&mut self, clock_ns: u64) {
        if let AnyWorker::Tracker(worker) = &mut self.worker {
            worker.finish(clock_ns);
        }
    }
}

enum Stage {
    Dedup(Box<DedupStage<LiveFanout>>),
    Every(Box<EveryCopy>),
}

impl Stage {
    fn sink(&mut self) -> &mut dyn PacketSink {
        match self {
            Self::Dedup(stage) => stage.as_mut(),
            Self::Every(stage) => stage.as_mut(),
        }
    }
}

/// Runs `ringsieve bench`.
pub fn bench(settings: &BenchSettings) -> anyhow::Result<ExitCode> {
    let paced = settings.rate.is_some();
    let copies_per_second = settings.rate.unwrap_or(settings.timestamp_rate);
    // Stamped an hour back, so (unpaced) every hold ends as soon as the
    // copies after it are read, as on a host whose rings are always full.
    // Paced, the blocks are moved onto the wall clock as the timed part
    // starts.
    let start_ns = wall_clock_ns() - 3_600_000_000_000;
    let mix = DockerMix::new(MixConfig {
        flows: settings.flows,
        packets: settings.packets,
        copies_per_second,
        start_ns,
        frame_len: settings.frame_len,
        payload: settings.payload,
        ..MixConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("the synthetic traffic: {e}"))?;
    let interfaces: Vec<Interface> = mix
        .interfaces()
        .iter()
        .enumerate()
        .map(|(index, interface)| Interface::new(interface.name.clone(), index as i32 + 1))
        .collect();
    let roles: Arc<HostBook> = Arc::new(HostBook::with_roles(
        mix.interfaces()
            .iter()
            .map(|interface| (interface.name.clone(), tap_role(interface.role)))
            .collect::<HashMap<String, TapRole>>(),
    ));

    let table = Arc::new(InterfaceTable::new());
    // Unpaced, the copies go faster than their timestamps say: timeouts
    // follow the packets' clock. Paced, the wall clock, and latency counts.
    let pool_config = &PoolConfig {
        clock: if paced { PoolClock::Wall } else { PoolClock::Packets },
        ..settings.pipeline.pool.clone()
    };
    let workers = pool_config.workers;
    let detection = match (&settings.pipeline.detection, settings.worker) {
        (Some(detection), BenchWorker::Ids) => Some(Detection::load(detection, &[])?),
        _ => None,
    };
    let eve = Arc::new(eve::EveWriter::from_writer("(nowhere)", std::io::sink()));
    let pool = WorkerPool::start(pool_config, Arc::clone(&table), |_| CountingWorker {
        worker: match settings.worker {
            BenchWorker::Null => AnyWorker::Null(NullWorker),
            BenchWorker::Flows | BenchWorker::Ids => AnyWorker::Tracker(Box::new(Reorder::new(
                Tracker::new(&settings.pipeline, &eve, detection.as_ref(), workers),
                settings.pipeline.reorder_window_ns,
                crate::host_worker::REORDER_MAX_PACKETS,
                crate::host_worker::REORDER_MAX_BYTES,
            ))),
        },
        bytes: 0,
        busy: Duration::ZERO,
        cpu_ns: 0,
    })
    .context("starting the worker threads")?;
    let fanout_report = Arc::new(Mutex::new(FanoutReport::default()));
    let mut fanout = LiveFanout::new(pool.fanout(), Arc::clone(&roles), Arc::clone(&fanout_report));
    if !paced {
        fanout = fanout.with_packet_clock();
    }
    let registry = Arc::new(TapRegistry::new());
    let dedup_report = Arc::new(Mutex::new(DedupReport::default()));
    // The mix's host sends from docker0's address.
    let shared = settings.dedup.as_ref().map(|config| {
        SieveShared::new(&flow::SieveConfig {
            host_addresses: vec![std::net::IpAddr::from(testbed::docker_mix::BRIDGE_IP)],
            ..config.clone()
        })
    });
    let mut stage = match &shared {
        Some(shared) => Stage::Dedup(Box::new(DedupStage::new(
            shared,
            Arc::clone(&registry),
            Arc::clone(&roles),
            RETIRE_TIMEOUT_MS,
            Arc::clone(&dedup_report),
            fanout,
        )?)),
        None => Stage::Every(Box::new(EveryCopy::new(
            fanout,
            FlowHasher::new(),
            Arc::clone(&registry),
        ))),
    };

    // The blocks are cut and encoded before anything is timed: generating
    // the traffic is not the pipeline's work (nor the kernel's).
    let retire_ns = u64::from(RETIRE_TIMEOUT_MS) * 1_000_000;
    let mut prepared = prepare_blocks(mix, paced, retire_ns);
    let copies: u64 = prepared.iter().map(|b| b.copies).sum();
    let mut ring = SyntheticRing::new(BLOCK_SIZE, 1);
    let mut pipeline_time = Duration::ZERO;
    let mut fill_time = Duration::ZERO;
    let mut handover_late = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    // Pinned only now: the worker threads, started above, would otherwise
    // inherit this thread's CPU.
    if let Some(cpu) = settings.capture_cpu {
        af_packet::cpu::pin_current_thread(cpu).map_err(|e| anyhow::anyhow!("pinning the capture thread: {e}"))?;
    }
    let capture_cpu_before = thread_cpu_ns();
    let started = Instant::now();
    // Paced: the first copy arrives 10 ms from now.
    let shift = wall_clock_ns() + 10_000_000 - start_ns;
    for block in &mut prepared {
        if paced {
            SyntheticRing::shift_timestamps(&mut block.bytes, shift);
            block.close_ns += shift;
        }
        if paced {
            // The kernel hands the block over when it is full or its
            // retire timeout has passed, whichever comes first. Sleep until
            // shortly before and spin the rest: this VM's idle CPUs wake
            // milliseconds late, which is the harness's lateness, not the
            // pipeline's (it is reported as `handover_late`).
            let now = wall_clock_ns();
            if block.close_ns > now + HANDOVER_SPIN_NS {
                std::thread::sleep(Duration::from_nanos(block.close_ns - now - HANDOVER_SPIN_NS));
            }
            while wall_clock_ns() < block.close_ns {
                std::hint::spin_loop();
            }
            handover_late.saturating_record(wall_clock_ns().saturating_sub(block.close_ns).max(1));
        }
        let filled = Instant::now();
        ring.publish_raw_block(0, &block.bytes);
        fill_time += filled.elapsed();
        let walked = Instant::now();
        let sink = stage.sink();
        if let Some(ready) = ring.ring().next_block() {
            for packet in ready.packets() {
                let interface = &interfaces[(packet.ifindex() - 1) as usize];
                sink.packet(interface, &packet);
            }
        }
        sink.end_of_turn();
        pipeline_time += walked.elapsed();
    }
    let walked = Instant::now();
    stage.sink().finish();
    let pool_report = pool.finish();
    pipeline_time += walked.elapsed();
    let elapsed = started.elapsed();
    let capture_cpu_ns = thread_cpu_ns().saturating_sub(capture_cpu_before);

    let mut fanout = std::mem::take(&mut *fanout_report.lock().unwrap_or_else(PoisonError::into_inner));
    pool_report.settle(&mut fanout);
    let delivered = fanout.delivered();
    let delivered_bytes: u64 = pool_report.workers.iter().map(|(worker, _)| worker.bytes).sum();
    let worker_busy: f64 = pool_report
        .workers
        .iter()
        .map(|(worker, _)| worker.busy.as_secs_f64())
        .sum();
    let worker_cpu: f64 = pool_report
        .workers
        .iter()
        .map(|(worker, _)| worker.cpu_ns as f64 / 1e9)
        .sum();
    let dedup = dedup_report.lock().unwrap_or_else(PoisonError::into_inner);
    let seconds = pipeline_time.as_secs_f64();
    let mut out = json!({
        "flows": settings.flows,
        "packets": settings.packets,
        "frame_len": settings.frame_len.map_or_else(|| json!("imix"), |len| json!(len)),
        "payload": settings.payload.name(),
        "copies": copies,
        "delivered": delivered,
        "delivered_bytes": delivered_bytes,
        "duplicates": dedup.counters.duplicates,
        "held": dedup.counters.held,
        "released_after_window": dedup.counters.released_after_window,
        "released_early": dedup.counters.released_early,
        "queue_drops": fanout.drops().total(),
        "workers": workers,
        "capture_cpu": settings.capture_cpu,
        "worker_cpus": pool_config.cpus,
        "worker": settings.worker.name(),
        "dedup": shared.is_some(),
        "paced_copies_per_second": settings.rate,
        "pipeline_seconds": seconds,
        "kernel_fill_seconds": fill_time.as_secs_f64(),
        "wall_seconds": elapsed.as_secs_f64(),
        "copies_per_second": copies as f64 / seconds,
        "packets_per_second": delivered as f64 / seconds,
        "bits_per_second": delivered_bytes as f64 * 8.0 / seconds,
        "ns_per_copy": seconds * 1e9 / copies.max(1) as f64,
        "ns_per_packet": seconds * 1e9 / delivered.max(1) as f64,
        "worker_busy_seconds": worker_busy,
        "worker_ns_per_packet": worker_busy * 1e9 / delivered.max(1) as f64,
        "worker_cpu_seconds": worker_cpu,
        "worker_cpu_ns_per_packet": worker_cpu * 1e9 / delivered.max(1) as f64,
        "capture_cpu_seconds": capture_cpu_ns as f64 / 1e9,
    });
    if let Some(detection) = &detection {
        let mut counters = ids::DetectionCounters::default();
        for (worker, _) in &pool_report.workers {
            if let AnyWorker::Tracker(tracker) = &worker.worker {
                counters.add(&tracker.inner().detection().unwrap_or_default());
            }
        }
        let mut json = counters.to_json();
        let summary = detection.summary_json();
        json["rules"] = summary["rules"].clone();
        json["stream_memory"] = summary["stream_memory"].clone();
        out["detection"] = json;
    }
    if paced {
        out["latency"] = latency_json(&merged_latency(&pool_report.workers));
        let late = LatencySummary::of(&handover_late);
        out["handover_late"] = json!({
            "blocks": late.count,
            "p50_us": late.p50 as f64 / 1e3,
            "p99_us": late.p99 as f64 / 1e3,
            "max_us": late.max as f64 / 1e3,
        });
        out["latency_by_worker"] = pool_report
            .workers
            .iter()
            .filter_map(|(_, report)| report.latency.as_ref().map(latency_json))
            .collect();
    }
    println!("{out}");
    Ok(if pool_report.panicked.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The calling thread's CPU time, nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`); 0 if the clock cannot be read.
fn thread_cpu_ns() -> u64 {
    cpu_time::ThreadTime::try_now().map_or(0, |t| t.as_duration().as_nanos() as u64)
}

/// One block as the kernel would hand it over.
struct PreparedBlock {
    /// Its bytes up to the end of its last packet.
    bytes: Vec<u8>,
    /// When the kernel would close it: its last packet's time when full,
    /// the retire timeout after its first otherwise.
    close_ns: u64,
    /// Packets in it.
    copies: u64,
}

/// Cuts the copies of `mix` into blocks as a ring of [`BLOCK_SIZE`] blocks
/// would hold them (and, when `paced`, as the retire timeout closes them).
fn prepare_blocks(mix: DockerMix, paced: bool, retire_ns: u64) -> Vec<PreparedBlock> {
    let mut blocks = Vec::new();
    let mut pending: Vec<MixCopy> = Vec::new();
    let mut used = 0usize;
    let mut close = |pending: &mut Vec<MixCopy>, full: bool| {
        if pending.is_empty() {
            return;
        }
        let specs: Vec<PacketSpec<'_>> = pending
            .iter()
            .map(|copy| PacketSpec {
                timestamp_ns: copy.timestamp_ns,
                ifindex: copy.interface as i32 + 1,
                pkttype: copy.packet_type.to_raw(),
                original_len: copy.frame.len() as u32,
                ..PacketSpec::new(&copy.frame)
            })
            .collect();
        let (bytes, placed) = SyntheticRing::encode_block(BLOCK_SIZE, blocks.len() as u64, &specs);
        assert_eq!(placed, specs.len(), "a block holds what was cut for it");
        let first = pending.first().map_or(0, |c| c.timestamp_ns);
        let last = pending.last().map_or(0, |c| c.timestamp_ns);
        blocks.push(PreparedBlock {
            bytes,
            close_ns: if full { last } else { first.saturating_add(retire_ns) },
            copies: placed as u64,
        });
        pending.clear();
    };
    // The block descriptor, 16-aligned.
    const FIRST_PACKET: usize = 48;
    for copy in mix {
        let footprint = SyntheticRing::packet_footprint(copy.frame.len());
        let first = pending.first().map(|c| c.timestamp_ns);
        let full = used + footprint > BLOCK_SIZE;
        let timed_out = paced && first.is_some_and(|first| copy.timestamp_ns > first + retire_ns);
        if full || timed_out {
            close(&mut pending, full);
            used = FIRST_PACKET;
        }
        if pending.is_empty() {
            used = FIRST_PACKET;
        }
        used += footprint;
        pending.push(copy);
    }
    close(&mut pending, false);
    blocks
}

/// The workers' latencies together: counts add; each percentile is the
/// largest of the workers' (an upper bound of the merged one).
fn merged_latency(workers: &[(CountingWorker, WorkerReport)]) -> LatencySummary {
    let mut merged = LatencySummary::default();
    for latency in workers.iter().filter_map(|(_, report)| report.latency) {
        merged.count += latency.count;
        merged.p50 = merged.p50.max(latency.p50);
        merged.p99 = merged.p99.max(latency.p99);
        merged.p999 = merged.p999.max(latency.p999);
        merged.max = merged.max.max(latency.max);
    }
    merged
}
