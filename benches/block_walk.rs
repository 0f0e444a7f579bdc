//! How fast ringsieve walks the packets of TPACKET_V3 blocks, against a plain
//! `memcpy` of the same bytes in the same run, so the result reads as a ratio
//! that survives a noisy machine.
//!
//! A [`SyntheticRing`] of [`BLOCKS`] blocks of [`BLOCK_SIZE`] bytes is filled
//! the way the kernel fills a ring, with 64-byte or 1514-byte frames. One
//! iteration hands every block to user space, then walks every packet of every
//! block reading its captured length and timestamp, and hands the blocks back.
//! Filling is outside the timed part (`iter_custom` times the walk alone), so
//! the block bytes are cache-warm, as after the kernel just wrote them.
//! The baseline copies the used bytes of every block (headers and frames, as
//! laid out in the ring) from a buffer that was just rewritten.
//!
//! Two groups per frame size report the same timings as packets per second
//! (`Throughput::Elements`) and as frame bytes per second (`Throughput::Bytes`).
//!
//! With `RINGSIEVE_BENCH_ONCE=<frame length>` (64 or 1514; 1 for both) the
//! binary skips criterion and runs [`ONCE_PASSES`] fixed walks, printing one
//! JSON line with the packet count: `scripts/callgrind-block-walk.sh` runs it under callgrind
//! with collection limited to [`walk_ring`], for instructions per packet.
//! It measures the walk only; parsing packets is the `flow` crate's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use af_packet::ring::synthetic::{PacketSpec, SyntheticRing};
use af_packet::ring::BlockRing;
use criterion::{BenchmarkId, Criterion, Throughput};
use testbed::FrameSpec;

/// Bytes per block: the ring geometry of a busy interface.
const BLOCK_SIZE: usize = 1 << 20;
/// Blocks per pass.
const BLOCKS: usize = 4;
/// Frame lengths measured: the minimum-size and the full-MTU Ethernet frame.
const FRAME_LENS: [usize; 2] = [64, 1514];
/// Walks in one `RINGSIEVE_BENCH_ONCE` run.
const ONCE_PASSES: u64 = 10;
/// Offset of the first packet in a block (the descriptor, 16-aligned).
const FIRST_PACKET: usize = 48;

/// A ring and the packets that refill it.
struct Workload {
    ring: SyntheticRing,
    frames: Vec<Vec<u8>>,
    /// Packets in the whole ring after a fill.
    packets: u64,
    /// Frame bytes in the whole ring after a fill.
    frame_bytes: u64,
    /// Bytes of the blocks in use (descriptor, packet headers and frames).
    used_bytes: usize,
    sequence: u64,
}

impl Workload {
    fn new(frame_len: usize) -> Self {
        let per_block = (BLOCK_SIZE - FIRST_PACKET) / SyntheticRing::packet_footprint(frame_len);
        let frames = (0..per_block)
            .map(|i| {
                FrameSpec {
                    frame_len,
                    src_port: 40_000 + (i % 64) as u16,
                    ..FrameSpec::default()
                }
                .build(i as u32)
            })
            .collect();
        let mut workload = Self {
            ring: SyntheticRing::new(BLOCK_SIZE, BLOCKS),
            frames,
            packets: 0,
            frame_bytes: 0,
            used_bytes: 0,
            sequence: 0,
        };
        let placed = workload.fill();
        assert_eq!(placed, per_block * BLOCKS, "every frame fits its block");
        workload.packets = placed as u64;
        workload.frame_bytes = (placed * frame_len) as u64;
        workload.used_bytes = BLOCKS * (FIRST_PACKET + per_block * SyntheticRing::packet_footprint(frame_len));
        // Hand the blocks back so that the first timed fill starts from the same state as the others.
        assert_eq!(walk_ring(workload.ring.ring()), workload.packets);
        workload
    }

    /// Hands every block to user space, full of packets; returns how many.
    fn fill(&mut self) -> usize {
        let mut placed = 0;
        for index in 0..BLOCKS {
            let specs: Vec<PacketSpec<'_>> = self
                .frames
                .iter()
                .enumerate()
                .map(|(i, frame)| PacketSpec {
                    timestamp_ns: 1_700_000_000_000_000_000 + self.sequence * 1_000_000 + i as u64 * 100,
                    ..PacketSpec::new(frame)
                })
                .collect();
            placed += self.ring.fill_block(index, self.sequence, &specs);
            self.sequence += 1;
        }
        placed
    }
}

/// Walks every ready block of `ring`, reading each packet's captured length
/// and timestamp, and hands the blocks back; returns the packets walked.
/// Not inlined, so that callgrind can count its instructions alone.
#[inline(never)]
fn walk_ring(ring: &mut BlockRing) -> u64 {
    let mut packets = 0u64;
    while let Some(block) = ring.next_block() {
        for packet in block.packets() {
            black_box((packet.captured_len(), packet.timestamp_ns()));
            packets += 1;
        }
    }
    packets
}

/// The baseline: one plain copy of `source` into `target`.
#[inline(never)]
fn copy_ring(source: &[u8], target: &mut [u8]) {
    target.copy_from_slice(black_box(source));
    black_box(target);
}

/// Times the walk alone over `iters` fresh fills.
fn time_walks(workload: &mut Workload, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        workload.fill();
        let start = Instant::now();
        let packets = walk_ring(workload.ring.ring());
        total += start.elapsed();
        assert_eq!(packets, workload.packets, "a pass walks every packet");
    }
    total
}

/// Times the copy alone, each over a source rewritten just before, as the
/// walk's blocks are.
fn time_copies(source: &mut [u8], target: &mut [u8], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        source.fill(i as u8);
        let start = Instant::now();
        copy_ring(source, target);
        total += start.elapsed();
    }
    total
}

fn block_walk(c: &mut Criterion) {
    for frame_len in FRAME_LENS {
        let mut workload = Workload::new(frame_len);
        let mut source = vec![0u8; workload.used_bytes];
        let mut target = vec![0u8; workload.used_bytes];
        for (unit, throughput) in [
            ("packets", Throughput::Elements(workload.packets)),
            ("bytes", Throughput::Bytes(workload.frame_bytes)),
        ] {
            let mut group = c.benchmark_group(format!("block_walk/{unit}"));
            group.throughput(throughput);
            group.bench_function(BenchmarkId::new("walk", frame_len), |b| {
                b.iter_custom(|iters| time_walks(&mut workload, iters));
            });
            group.bench_function(BenchmarkId::new("memcpy", frame_len), |b| {
                b.iter_custom(|iters| time_copies(&mut source, &mut target, iters));
            });
            group.finish();
        }
    }
}

/// The fixed run for callgrind: [`ONCE_PASSES`] fills and walks of one frame
/// length (`setting` is 64 or 1514), or of each in turn (`setting` is 1).
fn run_once(setting: &str) -> Result<(), String> {
    match setting.parse::<usize>() {
        Ok(1) => FRAME_LENS.into_iter().try_for_each(walk_fixed_passes),
        Ok(len) if FRAME_LENS.contains(&len) => walk_fixed_passes(len),
        _ => Err(format!(
            "RINGSIEVE_BENCH_ONCE={setting}: expected 1 (all) or one of {FRAME_LENS:?}"
        )),
    }
}

fn walk_fixed_passes(frame_len: usize) -> Result<(), String> {
    let mut workload = Workload::new(frame_len);
    let mut walked = 0;
    for _ in 0..ONCE_PASSES {
        workload.fill();
        walked += walk_ring(workload.ring.ring());
    }
    if walked != workload.packets * ONCE_PASSES {
        return Err(format!(
            "walked {walked} packets, expected {}",
            workload.packets * ONCE_PASSES
        ));
    }
    println!(
        "{{\"frame_len\": {frame_len}, \"passes\": {ONCE_PASSES}, \"packets_per_pass\": {}, \"packets\": {walked}}}",
        workload.packets
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    if let Ok(setting) = std::env::var("RINGSIEVE_BENCH_ONCE") {
        return match run_once(&setting) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("block_walk: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    block_walk(&mut criterion);
    criterion.final_summary();
    std::process::ExitCode::SUCCESS
}
