//! Cost of putting a worker's packets back in timestamp order
//! ([`Reorder`]) before its flow tracker, per packet, against handing the
//! same batches straight to the worker, in the same run.
//!
//! Groups (`reorder/<frame bytes>/...`, time per packet): `direct` (the
//! batch to a [`NullWorker`]) and `reorder` (through a 48 ms window, the
//! default for a 20 ms dedup window and 8 ms retire timeout), on batches of
//! 64 packets 1 µs apart in which one packet in 8 comes 5 ms late, as a
//! held reply does.
//!
//! `cargo bench -p pipeline --bench reorder`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use flow::{TapDirection, TapId, TapPoint, TapRole};
use pipeline::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};
use pipeline::reorder::Reorder;
use pipeline::worker::{NullWorker, PacketBatch, PacketMeta, Worker};

/// Batches in a timed pass.
const BATCHES: u64 = 1024;
const PER_BATCH: u64 = 64;
const WINDOW_NS: u64 = 48_000_000;

fn batches(len: usize) -> Vec<PacketBatch> {
    let interfaces = Arc::new(InterfaceTable::new());
    interfaces.intern(InterfaceInfo {
        name: "vethc1".to_owned(),
        role: TapRole::ContainerVeth,
        ifindex: 5,
        link_type: 1,
        container: None,
    });
    let tap = TapPoint {
        id: TapId(0),
        role: TapRole::ContainerVeth,
        direction: TapDirection::Incoming,
    };
    let frame = vec![0x5au8; len];
    (0..BATCHES)
        .map(|b| {
            let mut batch = PacketBatch::new(Arc::clone(&interfaces));
            for p in 0..PER_BATCH {
                let n = b * PER_BATCH + p;
                let late = if n % 8 == 7 { 5_000_000 } else { 0 };
                let ts = 1_000_000_000 + n * 1_000 - late;
                batch.push(PacketMeta::new(ts, len as u32, InterfaceId(0), tap), &frame);
            }
            batch
        })
        .collect()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("reorder");
    for len in [64usize, 1514] {
        let input = batches(len);
        group.throughput(Throughput::Elements(BATCHES * PER_BATCH));
        group.bench_with_input(BenchmarkId::new(format!("{len}"), "direct"), &input, |b, input| {
            b.iter(|| {
                let mut worker = NullWorker;
                for batch in input {
                    worker.batch(black_box(batch));
                }
            })
        });
        group.bench_with_input(BenchmarkId::new(format!("{len}"), "reorder"), &input, |b, input| {
            let mut reorder = Reorder::new(NullWorker, WINDOW_NS, 256 << 10, 1 << 30);
            b.iter(|| {
                for batch in input {
                    reorder.batch(black_box(batch));
                }
                // Everything out before the next pass, whose times repeat;
                // the buffers stay, as in a worker that runs for long.
                reorder.finish(u64::MAX);
                reorder.restart();
            })
        });
    }
    group.finish();
    c.final_summary();
}
