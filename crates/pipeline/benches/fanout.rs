//! Cost of the hand-over from a capture thread to the IDS workers, per
//! packet: [`Fanout::deliver`] (pick the worker by flow hash, copy bytes and
//! metadata into its batch), the push of full batches onto the workers'
//! lock-free queues, and the workers taking them ([`NullWorker`]), against
//! a plain copy of the same bytes in the same run.
//!
//! Groups (`fanout/<frame bytes>/...`, time per packet):
//! - `memcpy`: each frame copied into a scratch buffer.
//! - `workers/N`: one producer (this thread) feeds N worker threads through
//!   queues that wait when full, so the time includes any stall of the
//!   workers; packets of 4096 flows, 64 or 1514 bytes.
//!
//! `cargo bench -p pipeline --bench fanout`. Under `cargo test` the same
//! code runs once, briefly.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use flow::{TapDirection, TapId, TapPoint, TapRole};
use pipeline::interfaces::{InterfaceInfo, InterfaceTable};
use pipeline::worker::{NullWorker, PacketMeta};
use pipeline::worker_pool::{Overflow, PoolConfig, WorkerPool};

/// Packets per timed chunk.
const CHUNK: u64 = 65_536;
/// Flows the packets belong to.
const FLOWS: u64 = 4096;

fn frames(len: usize) -> Vec<Vec<u8>> {
    (0..256u32)
        .map(|i| {
            let mut frame = vec![0u8; len];
            frame[..4].copy_from_slice(&i.to_le_bytes());
            frame
        })
        .collect()
}

fn fanout_run(workers: usize, frames: &[Vec<u8>], packets: u64) -> Duration {
    let interfaces = Arc::new(InterfaceTable::new());
    let eth0 = interfaces.intern(InterfaceInfo {
        name: "eth0".to_owned(),
        role: TapRole::Uplink,
        ifindex: 2,
        link_type: 1,
        container: None,
    });
    let config = PoolConfig {
        workers,
        overflow: Overflow::Wait,
        ..PoolConfig::default()
    };
    let pool = WorkerPool::start(&config, interfaces, |_| NullWorker).expect("workers start");
    let mut fanout = pool.fanout();
    let tap = TapPoint {
        id: TapId(0),
        role: TapRole::Uplink,
        direction: TapDirection::Incoming,
    };
    let started = Instant::now();
    for i in 0..packets {
        let mut meta = PacketMeta::new(i, 64, eth0, tap);
        meta.flow_hash = (i % FLOWS).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        fanout.deliver(meta, &frames[(i % 256) as usize]);
        if i % 4096 == 4095 {
            // A capture loop's turn: partial batches go too.
            fanout.flush(i);
        }
    }
    fanout.finish(packets);
    let done = pool.finish();
    let elapsed = started.elapsed();
    assert!(done.panicked.is_empty());
    assert_eq!(done.workers.iter().map(|(_, r)| r.packets).sum::<u64>(), packets);
    elapsed
}

fn memcpy_run(frames: &[Vec<u8>], packets: u64, scratch: &mut [u8]) -> Duration {
    let started = Instant::now();
    let mut at = 0usize;
    for i in 0..packets {
        let frame = &frames[(i % 256) as usize];
        if at + frame.len() > scratch.len() {
            at = 0;
        }
        scratch[at..at + frame.len()].copy_from_slice(frame);
        at += frame.len();
    }
    black_box(&scratch);
    started.elapsed()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        for len in [64, 1514] {
            let frames = frames(len);
            fanout_run(2, &frames, 10_000);
        }
        return;
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for len in [64usize, 1514] {
        let frames = frames(len);
        let mut group = criterion.benchmark_group(format!("fanout/{len}"));
        group.throughput(Throughput::Elements(CHUNK));
        let mut scratch = vec![0u8; 1 << 22];
        group.bench_function("memcpy", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| memcpy_run(&frames, CHUNK, &mut scratch)).sum());
        });
        for workers in [1usize, 2] {
            group.bench_with_input(BenchmarkId::new("workers", workers), &workers, |b, &workers| {
                b.iter_custom(|iters| fanout_run(workers, &frames, CHUNK * iters));
            });
        }
        group.finish();
    }
    criterion.final_summary();
}
