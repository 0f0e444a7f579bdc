//! Cost of [`flow::DedupTable::observe`] per copy, in the steady state of a
//! busy host: about 1 M live instances (4 Mi entries, 256 MiB: a quarter
//! loaded, see the sizing note in the module docs; packets 40 ns apart in
//! kernel time, so the 2-window retention of 40 ms covers 1 M of them), every packet seen as 3 copies (rank 0 first: New, then 2
//! Duplicates), old entries reused as they expire. It measures the table
//! only: no parsing, no identity hashing, no hold queue.
//!
//! The table is on transparent huge pages (`af_packet::memory`), as
//! `ringsieve` allocates it; without them each copy costs about half as
//! much again (TLB misses).
//!
//! `cargo bench -p flow --bench dedup_table`. `threads/1`: one thread;
//! `threads/2`: two threads on the same table, each with its own packets
//! (contention on the table's cache lines and counters, not races on one
//! packet; the tests cover those). Time per element is nanoseconds per copy
//! (for 2 threads: wall time over the copies of both).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use flow::{DedupTable, HoldTicket, PacketIdentity, TapId, Verdict};

const CAPACITY: usize = 1 << 22;
const WINDOW_NS: u64 = 20_000_000;
const SPACING_NS: u64 = 40;
const COPIES: u64 = 3;

fn identity(n: u64) -> PacketIdentity {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    PacketIdentity {
        hash: z ^ (z >> 31),
        fields: n,
    }
}

/// Observes the 3 copies of packets `first..first + count` (packet numbers
/// interleaved over `stride` threads); returns the copies that were not
/// New or Duplicate (TableFull: a few in a million at this load).
#[inline(never)]
fn run(table: &DedupTable, first: u64, count: u64, stride: u64, lane: u64) -> u64 {
    let mut odd = 0;
    for i in first..first + count {
        let packet = i * stride + lane;
        let id = identity(packet);
        let ts = packet * SPACING_NS;
        for copy in 0..COPIES {
            let verdict = table.observe(id, TapId(copy as u16), copy as u8, ts + copy * 1_000, HoldTicket(0));
            odd += u64::from(!matches!(verdict, Verdict::New | Verdict::Duplicate { .. }));
        }
    }
    odd
}

/// The table on transparent huge pages, as `ringsieve` allocates it.
fn huge_pages(addr: usize, len: usize) {
    af_packet::memory::advise_huge_pages(addr, len).expect("madvise(MADV_HUGEPAGE)");
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dedup_observe");
    group.throughput(Throughput::Elements(COPIES));
    group.measurement_time(Duration::from_secs(5));
    for threads in [1u64, 2] {
        let table = DedupTable::with_memory_advice(CAPACITY, WINDOW_NS, Some(huge_pages));
        // Warm up to the steady state: the table full of live and expired instances.
        let next: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
        let warm = CAPACITY as u64 / threads;
        let odd = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|lane| {
                    let table = &table;
                    s.spawn(move || run(table, 0, warm, threads, lane))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        eprintln!(
            "warm-up, {threads} thread(s): {odd} copies not New/Duplicate; {:?}",
            table.counters()
        );
        for n in &next {
            n.store(warm, Ordering::Relaxed);
        }
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| {
                // Each thread observes `iters` packets; the time is per packet
                // of one thread, so divide by the threads for wall time per copy.
                let barrier = Barrier::new(threads as usize);
                let start = Instant::now();
                let odd: u64 = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|lane| {
                            let (table, next, barrier) = (&table, &next, &barrier);
                            s.spawn(move || {
                                barrier.wait();
                                let first = next[lane as usize].fetch_add(iters, Ordering::Relaxed);
                                run(table, first, iters, threads, lane)
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum()
                });
                let elapsed = start.elapsed();
                assert!(
                    odd * 10_000 < iters * COPIES * threads + 10,
                    "{odd} table full: the steady state is off"
                );
                elapsed / threads as u32
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
