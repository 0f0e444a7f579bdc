//! Cost of the whole dedup per captured copy: [`flow::Sieve::process`]
//! (parse, NAT-invariant identity, flow hash, dedup table, NAT learning,
//! the hold of copies that a better one may still follow) plus the
//! watermark and the releases, on the traffic of a busy Docker host, with
//! baselines measured in the same run.
//!
//! # Workload
//!
//! [`testbed::docker_mix`] with 1 M flows (distinct 5-tuples, all live:
//! every flow sends one packet per 1 M packets), 64 containers, the default
//! class mix (35 % container to container, 5 % to the host, 40 %
//! MASQUERADE, 20 % DNAT to published ports: 2.6 copies per packet), IMIX
//! frame sizes, at 20 M copies per second of kernel time (the issue's
//! target rate), so the 40 ms the dedup table retains hold 308 k packets.
//! One pass is 1 M packets (2.6 M copies, about 970 MB of frames, laid out
//! one after the other as a ring would hold them). Passes repeat with
//! timestamps moved on by the pass's span (130 ms) and every IPv4 ID XORed
//! with a value of the pass ([`fill_ring`]), so each pass's packets are new
//! packets of the same flows.
//!
//! Frames reach the engine as from a ring: the copies are cut into blocks
//! of up to 1 MiB, and each block is copied into a ring buffer before it is
//! read, not timed (the kernel writes a block before the capture thread
//! reads it, so its bytes are in cache then; reading them all from memory
//! instead, as a first version of this bench did, cost parse about 65 ns
//! more per copy).
//!
//! The table has 4 times the packets of 40 ms, rounded up to a power of two
//! (2 Mi entries, 128 MiB; the sizing note of [`flow::dedup_table`]) on
//! transparent huge pages as `ringsieve` allocates it; other settings are
//! [`SieveConfig::default`]'s, as `ringsieve run` and `read` use them (the
//! hold budget per thread; NAT bindings below), with fixed hash keys. Before
//! measuring, the engine runs over enough passes to have cycled the whole
//! table (steady state: slots full of live and expired instances, holds and
//! NAT tables at their running size); it prints its counters after that.
//!
//! # Groups (`sieve/...`, time per copy, throughput in copies)
//!
//! - `memcpy`: every copy's bytes copied once into a scratch buffer: what
//!   reading the frames costs.
//! - `parse_only`: [`flow::parse_frame`] of every copy.
//! - `parse_identity`: the same plus [`flow::IdentityHasher::identity`].
//! - `threads/1`: one [`Sieve`] over every copy in timestamp order; after
//!   each 1 MiB of frames (a ring block) it publishes its watermark and
//!   ends the holds it allows ([`Sieve::advance`], [`Sieve::release`]).
//!   Each copy goes through one [`Sieve::process`], as the capture
//!   threads' `DedupStage` and `ringsieve read` hand the engine one packet
//!   at a time. `RINGSIEVE_BENCH_BATCH=1` gives a block's copies to
//!   [`Sieve::process_batch`] instead (the same decisions, with the batch's
//!   table slots loaded ahead); in session 8 the two did not differ beyond
//!   this machine's noise (BENCHMARKS.md section 4).
//! - `threads/2`: two Sieves of one [`SieveShared`] on two threads, the
//!   interfaces split between them as capture threads split rings (docker0
//!   and the odd veths on one, eth0 and the even veths on the other: half
//!   the copies each, and the copies of a NAT'd packet on both). Both read
//!   the same span of kernel time in steps of 64 Ki copies (3.3 ms), meeting
//!   at a barrier after each, so neither runs ahead of the other's
//!   watermark (as capture threads reading live rings cannot). A step
//!   counts the engine time of its slower thread (ring fills and the wait
//!   at the barrier left out), per copy of both threads: per core, double
//!   it.
//!
//! `cargo bench -p flow --bench sieve`. Under `cargo test` (no `--bench`
//! argument) the same code runs once on 5 k flows at 1 M copies per second
//! (a 64 Ki-entry table) with one pass of warm-up, to stay quick and small.
//! NAT bindings are sized for the live flows, as `ringsieve run
//! --nat-bindings` should be: [`SieveConfig::nat_capacity`] is two entries
//! per flow (room for every flow to be NAT'd; 60 % are here). With fewer
//! (the 262 144 entries that were the default until branch `natperf`,
//! room for 131 k of the 600 k NAT'd flows) the bindings evict one another
//! before their flow's next packet, which learns its binding again.
//! `RINGSIEVE_BENCH_NAT_CAPACITY` sets the entries.
//! `RINGSIEVE_BENCH_FLOWS` sets the flow count in either mode; a pass of
//! `cargo bench` stays 1 M packets (or the flow count if larger), the flows
//! taking turns, so only the flow-related state changes with it.
//! `RINGSIEVE_BENCH_PACKETS` sets those packets (for quicker instruction
//! counts: `RINGSIEVE_BENCH_FLOWS=100000 RINGSIEVE_BENCH_PACKETS=200000`).
//! `RINGSIEVE_BENCH_RATE` sets the copies per second of kernel time, and so
//! the table's size (4 times the packets of 40 ms): at 200000 it is 16 Ki
//! entries (1 MiB), small enough to stay in cache, which shows what the
//! engine costs without its table's cache misses.
//!
//! With `RINGSIEVE_BENCH_ONCE=<what>` (`memcpy`, `parse`, `identity`,
//! `sieve`, or several separated by commas; 1 for all) the binary skips
//! criterion and runs one pass of each in [`counted_memcpy_pass`],
//! [`counted_parse_pass`],
//! [`counted_identity_pass`] and [`counted_sieve_pass`] (the last after the
//! uncounted warm-up), printing one JSON line, for instruction counts under
//! callgrind (`scripts/callgrind-sieve.sh`).

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use af_packet::Direction;
use criterion::{BenchmarkId, Criterion, Throughput};
use flow::dedup_table::{DEFAULT_WINDOW_NS, RETENTION_WINDOWS};
use flow::{
    parse_frame, CapturedCopy, IdentityHasher, LinkLayer, Outcome, Sieve, SieveConfig, SieveCounters, SieveShared,
    TapDirection, TapPoint, TapRegistry, TapRole,
};
use testbed::docker_mix::{DockerMix, MixConfig};

/// Flows of `cargo bench`.
const BENCH_FLOWS: u64 = 1_000_000;
/// Packets per pass of `cargo bench`, at least.
const BENCH_PACKETS: u64 = 1_000_000;
/// Copies per second of kernel time in `cargo bench`: the target.
const BENCH_COPIES_PER_SECOND: u64 = 20_000_000;
/// Flows under `cargo test`.
const TEST_FLOWS: u64 = 5_000;
/// Copies per second under `cargo test`: a small table.
const TEST_COPIES_PER_SECOND: u64 = 1_000_000;
/// Frame bytes after which a reader publishes its watermark and releases.
const BLOCK_BYTES: usize = 1 << 20;
/// Copies of the merged stream two threads read between two barriers.
const STEP_COPIES: u64 = 1 << 16;
/// The IPv4 ID in an untagged Ethernet frame, as the mix builds them.
const IP_ID_OFFSET: usize = 14 + 4;
/// Fixed hash keys: the same buckets in every run.
const SEEDS: [u64; 4] = [0x5eed_0001, 0x5eed_0002, 0x5eed_0003, 0x5eed_0004];

/// One copy of the stream.
#[derive(Clone, Copy, Debug)]
struct LaneCopy {
    /// Where its bytes start in its block (and in the ring once the block
    /// is filled in).
    ring_offset: u32,
    len: u32,
    tap: TapPoint,
    timestamp_ns: u64,
    /// Its index among the copies of every lane, in timestamp order.
    merged: u64,
    /// Its block, in [`Lane::blocks`].
    block: u32,
    /// The last copy of its block: advance and release after it.
    block_end: bool,
}

/// Up to [`BLOCK_BYTES`] of frames, one after the other, as in a ring block.
#[derive(Clone, Copy, Debug)]
struct Block {
    /// Where the block's bytes start in [`Lane::bytes`].
    offset: usize,
    len: usize,
    /// Its first copy, in [`Lane::copies`].
    first_copy: usize,
    /// One past its last copy.
    end_copy: usize,
}

/// The copies one capture thread reads, in timestamp order, in blocks.
#[derive(Debug, Default)]
struct Lane {
    bytes: Vec<u8>,
    copies: Vec<LaneCopy>,
    blocks: Vec<Block>,
}

impl Lane {
    fn len(&self) -> u64 {
        self.copies.len() as u64
    }

    fn push(&mut self, frame: &[u8], tap: TapPoint, timestamp_ns: u64, merged: u64) {
        let open = self.blocks.last().is_some_and(|b| b.len + frame.len() <= BLOCK_BYTES);
        if !open {
            if let Some(last) = self.copies.last_mut() {
                last.block_end = true;
            }
            self.blocks.push(Block {
                offset: self.bytes.len(),
                len: 0,
                first_copy: self.copies.len(),
                end_copy: self.copies.len(),
            });
        }
        let block_index = (self.blocks.len() - 1) as u32;
        let block = self.blocks.last_mut().expect("a block is open");
        self.copies.push(LaneCopy {
            ring_offset: block.len as u32,
            len: frame.len() as u32,
            tap,
            timestamp_ns,
            merged,
            block: block_index,
            block_end: false,
        });
        block.len += frame.len();
        block.end_copy += 1;
        self.bytes.extend_from_slice(frame);
    }

    fn close(&mut self) {
        if let Some(last) = self.copies.last_mut() {
            last.block_end = true;
        }
    }
}

/// How a block gets into the ring: [`fill_ring`], or [`uncounted_fill_ring`]
/// inside the passes callgrind counts. Arguments: the ring, the block's
/// bytes, its copies, the pass.
type Fill = fn(&mut [u8], &[u8], &[LaneCopy], u64);

/// Copies a block into the ring, as the kernel fills one, and makes its
/// packets new ones for pass `pass`: their IPv4 ID XORed with a value of the
/// pass, the same in every copy of a packet. A repeated pass then has
/// identities of its own, as new traffic would, instead of meeting its
/// expired instances in the table (same tag, so read in full). The IP
/// checksum is not fixed up: the engine never checks it.
#[inline(never)]
fn fill_ring(ring: &mut [u8], block: &[u8], copies: &[LaneCopy], pass: u64) {
    ring.copy_from_slice(block);
    let stamp = (pass as u16).wrapping_mul(0x9e37).to_be_bytes();
    if stamp != [0, 0] {
        for copy in copies {
            let ip_id = copy.ring_offset as usize + IP_ID_OFFSET;
            ring[ip_id] ^= stamp[0];
            ring[ip_id + 1] ^= stamp[1];
        }
    }
}

/// [`fill_ring`] under another name, which callgrind's `--toggle-collect`
/// turns collection off in. The `black_box` at the end keeps its last call
/// from being a tail call (callgrind would count the callee as outside this
/// function) and the two bodies different (not merged into one symbol).
#[inline(never)]
fn uncounted_fill_ring(ring: &mut [u8], block: &[u8], copies: &[LaneCopy], pass: u64) {
    fill_ring(ring, block, copies, pass);
    black_box(&*ring);
}

/// Runs `work` over lane positions `from..to` (counting on over passes),
/// block by block: each block is first copied into `ring` with `fill`, not
/// timed (the kernel writes a ring block before the capture thread reads
/// it, so its bytes are in cache), then `work` gets the ring and the
/// positions of the block to read. Returns the time spent in `work`.
fn for_each_block(
    lane: &Lane,
    ring: &mut [u8],
    fill: Fill,
    from: u64,
    to: u64,
    mut work: impl FnMut(&[u8], u64, u64),
) -> Duration {
    let mut timed = Duration::ZERO;
    let mut position = from;
    while position < to {
        let index = position % lane.len();
        let block = lane.blocks[lane.copies[index as usize].block as usize];
        let end = (position - index + block.end_copy as u64).min(to);
        let ring = &mut ring[..block.len];
        let copies = &lane.copies[block.first_copy..block.end_copy];
        fill(
            ring,
            &lane.bytes[block.offset..block.offset + block.len],
            copies,
            position / lane.len(),
        );
        let start = Instant::now();
        work(ring, position, end);
        timed += start.elapsed();
        position = end;
    }
    timed
}

/// The generated traffic, split into lanes, and what the engine needs.
#[derive(Debug)]
struct Workload {
    lanes: Vec<Lane>,
    /// Copies of one pass, all lanes.
    copies: u64,
    packets: u64,
    flows: u64,
    /// Kernel time between two passes.
    pass_ns: u64,
    config: SieveConfig,
    full_warm_up: bool,
}

/// The sizes of one mode of the binary.
#[derive(Clone, Copy, Debug)]
struct Scale {
    flows: u64,
    packets: u64,
    copies_per_second: u64,
    /// Passes of warm-up: enough to cycle the table twice, or one (tests).
    full_warm_up: bool,
}

impl Scale {
    fn of_run(bench: bool) -> Scale {
        let (default_flows, least_packets, copies_per_second) = if bench {
            (BENCH_FLOWS, BENCH_PACKETS, BENCH_COPIES_PER_SECOND)
        } else {
            (TEST_FLOWS, 0, TEST_COPIES_PER_SECOND)
        };
        let flows = std::env::var("RINGSIEVE_BENCH_FLOWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_flows);
        let least_packets = std::env::var("RINGSIEVE_BENCH_PACKETS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(least_packets);
        let copies_per_second = std::env::var("RINGSIEVE_BENCH_RATE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&rate| rate > 0)
            .unwrap_or(copies_per_second);
        Scale {
            flows,
            packets: flows.max(least_packets),
            copies_per_second,
            full_warm_up: bench,
        }
    }
}

/// The dedup table on transparent huge pages, as `ringsieve` asks for it.
fn advise_huge_pages(addr: usize, len: usize) {
    if let Err(error) = af_packet::memory::advise_huge_pages(addr, len) {
        eprintln!("sieve bench: no huge pages for the dedup table: {error}");
    }
}

/// Which lane reads interface `index` of the mix: with two, docker0 and
/// the odd veths on one, eth0 and the even veths on the other.
fn lane_of(name: &str, index: usize, lanes: usize) -> usize {
    match name {
        _ if lanes == 1 => 0,
        "docker0" => 0,
        "eth0" => 1,
        _ => index % 2,
    }
}

impl Workload {
    fn generate(scale: Scale, lanes: usize) -> Workload {
        let started = Instant::now();
        let mix = DockerMix::new(MixConfig {
            flows: scale.flows,
            packets: scale.packets,
            copies_per_second: scale.copies_per_second,
            ..MixConfig::default()
        })
        .expect("valid mix settings");
        let registry = TapRegistry::new();
        let interfaces: Vec<(usize, TapPoint, TapPoint)> = mix
            .interfaces()
            .iter()
            .enumerate()
            .map(|(index, interface)| {
                let role = TapRole::from_interface_name(&interface.name);
                let tap = |direction| registry.intern(&interface.name, role, direction).expect("few taps");
                (
                    lane_of(&interface.name, index, lanes),
                    tap(TapDirection::Incoming),
                    tap(TapDirection::Outgoing),
                )
            })
            .collect();
        let packets = mix.config().packets;
        let window_ns = DEFAULT_WINDOW_NS;
        // The packets of the table's retention (2 windows), times 4.
        let retained = (RETENTION_WINDOWS * window_ns) as f64 * scale.copies_per_second as f64
            / 1e9
            / mix.mean_copies_per_packet();
        let config = SieveConfig {
            table_capacity: ((retained * 4.0) as usize).next_power_of_two().max(1 << 12),
            window_ns,
            seeds: Some(SEEDS),
            memory_advice: Some(advise_huge_pages),
            nat_capacity: std::env::var("RINGSIEVE_BENCH_NAT_CAPACITY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2 * scale.flows as usize),
            ..SieveConfig::default()
        };
        // A repeated pass must find only expired instances: passes follow
        // one another without a gap when a pass spans more than 3 windows.
        let pass_ns = mix.span_ns().max((RETENTION_WINDOWS + 1) * window_ns);
        let mut workload = Workload {
            lanes: (0..lanes).map(|_| Lane::default()).collect(),
            copies: 0,
            packets,
            flows: scale.flows,
            pass_ns,
            config,
            full_warm_up: scale.full_warm_up,
        };
        for (merged, copy) in mix.enumerate() {
            let (lane, incoming, outgoing) = interfaces[copy.interface];
            let tap = match copy.direction() {
                Direction::Inbound => incoming,
                Direction::Outbound => outgoing,
            };
            workload.lanes[lane].push(&copy.frame, tap, copy.timestamp_ns, merged as u64);
            workload.copies += 1;
        }
        for lane in &mut workload.lanes {
            lane.close();
        }
        eprintln!(
            "sieve bench: {} flows, {} packets, {} copies ({} MB of frames) per pass in {} lane(s), {} ns of kernel time per pass, table {} entries; generated in {:.1?}",
            workload.flows,
            workload.packets,
            workload.copies,
            workload.lanes.iter().map(|l| l.bytes.len()).sum::<usize>() / 1_000_000,
            lanes,
            pass_ns,
            workload.config.table_capacity,
            started.elapsed()
        );
        workload
    }

    /// The position in `lane` (counting on over passes) of the first of its
    /// copies at or after merged position `merged`.
    fn lane_position(&self, lane: usize, merged: u64) -> u64 {
        let lane = &self.lanes[lane];
        let pass = merged / self.copies;
        let within = merged % self.copies;
        pass * lane.len() + lane.copies.partition_point(|c| c.merged < within) as u64
    }

    /// Copies of the passes needed to cycle the whole table at least twice
    /// over (the steady state); one pass under `cargo test`.
    fn warm_up_copies(&self) -> u64 {
        if !self.full_warm_up {
            return self.copies;
        }
        let passes = (2 * self.config.table_capacity as u64).div_ceil(self.packets).max(2);
        passes * self.copies
    }
}

/// What the engine did with the copies it was given.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    delivered: u64,
    held: u64,
    duplicates: u64,
    malformed: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.delivered += other.delivered;
        self.held += other.held;
        self.duplicates += other.duplicates;
        self.malformed += other.malformed;
    }
}

/// The copies at lane positions `from..to`, all in one block now in `ring`.
fn frames<'a>(
    lane: &'a Lane,
    ring: &'a [u8],
    from: u64,
    to: u64,
) -> impl Iterator<Item = (u64, &'a LaneCopy, &'a [u8])> {
    (from..to).map(move |position| {
        let copy = &lane.copies[(position % lane.len()) as usize];
        let start = copy.ring_offset as usize;
        (position, copy, &ring[start..start + copy.len as usize])
    })
}

/// Copies each frame of lane positions `from..to` into a scratch buffer.
#[inline(never)]
fn memcpy_span(lane: &Lane, ring: &[u8], from: u64, to: u64, scratch: &mut [u8]) -> u64 {
    let mut sum = 0u64;
    for (_, _, frame) in frames(lane, ring, from, to) {
        scratch[..frame.len()].copy_from_slice(frame);
        sum += u64::from(black_box(&scratch[..])[frame.len() / 2]);
    }
    sum
}

/// Parses the copies at lane positions `from..to`.
#[inline(never)]
fn parse_span(lane: &Lane, ring: &[u8], from: u64, to: u64) -> u64 {
    let mut sum = 0u64;
    for (_, _, frame) in frames(lane, ring, from, to) {
        if let Ok(packet) = parse_frame(black_box(frame), None) {
            sum += packet.transport.map_or(0, |t| t.payload().len() as u64);
        }
    }
    sum
}

/// Parses the copies at lane positions `from..to` and computes their
/// identities.
#[inline(never)]
fn identity_span(lane: &Lane, ring: &[u8], hasher: &IdentityHasher, from: u64, to: u64) -> u64 {
    let mut sum = 0u64;
    for (_, _, frame) in frames(lane, ring, from, to) {
        let frame = black_box(frame);
        if let Ok(packet) = parse_frame(frame, None) {
            sum ^= hasher.identity(frame, &packet).hash;
        }
    }
    sum
}

/// Gives the copies at lane positions `from..to` to `sieve`, timestamps
/// moved on by `pass_ns` per pass, publishing the watermark and releasing
/// after the last copy of each block. `batch`: through
/// [`Sieve::process_batch`], else one [`Sieve::process`] per copy (the
/// default).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn sieve_span(
    sieve: &mut Sieve<u32>,
    lane: &Lane,
    ring: &[u8],
    pass_ns: u64,
    from: u64,
    to: u64,
    batch: bool,
    tally: &mut Tally,
) {
    let captured = |position: u64, copy: &LaneCopy, frame| {
        let timestamp_ns = copy.timestamp_ns + position / lane.len() * pass_ns;
        let captured = CapturedCopy {
            bytes: frame,
            link: LinkLayer::Ethernet,
            vlan: None,
            tap: copy.tap,
            timestamp_ns,
        };
        (captured, (position % lane.len()) as u32)
    };
    let mut count = |outcome| match outcome {
        Outcome::Deliver { meta, .. } => {
            black_box(meta);
            tally.delivered += 1;
        }
        Outcome::Held => tally.held += 1,
        Outcome::Duplicate(..) => tally.duplicates += 1,
        Outcome::Malformed(..) => tally.malformed += 1,
    };
    // A span is one block or the start of one: only its last copy can end
    // a block.
    let mut block_end = None;
    if batch {
        let copies = frames(lane, ring, from, to).map(|(position, copy, frame)| {
            let (captured, meta) = captured(position, copy, frame);
            if copy.block_end {
                block_end = Some(captured.timestamp_ns);
            }
            (captured, meta)
        });
        sieve.process_batch(copies, &mut count);
    } else {
        for (position, copy, frame) in frames(lane, ring, from, to) {
            let (captured, meta) = captured(position, copy, frame);
            if copy.block_end {
                block_end = Some(captured.timestamp_ns);
            }
            count(sieve.process(&captured, meta));
        }
    }
    if let Some(timestamp_ns) = block_end {
        sieve.advance(timestamp_ns);
        sieve.release(|released| {
            black_box(released.bytes.len());
            tally.delivered += 1;
        });
    }
}

/// A ring buffer big enough for any block.
fn ring() -> Vec<u8> {
    vec![0; BLOCK_BYTES]
}

/// The engine, the ring of each of its threads and where they are.
struct Engine {
    shared: std::sync::Arc<SieveShared>,
    sieves: Vec<Sieve<u32>>,
    rings: Vec<Vec<u8>>,
    /// Merged-stream position every lane has read up to.
    merged: u64,
    tally: Tally,
    /// Copies go through [`Sieve::process_batch`] (else one
    /// [`Sieve::process`] each, the default): `RINGSIEVE_BENCH_BATCH=1`.
    batch: bool,
}

impl Engine {
    fn new(workload: &Workload) -> Engine {
        let shared = SieveShared::new(&workload.config);
        let sieves = (0..workload.lanes.len())
            .map(|_| shared.thread().expect("two threads fit"))
            .collect();
        Engine {
            shared,
            sieves,
            rings: workload.lanes.iter().map(|_| ring()).collect(),
            merged: 0,
            tally: Tally::default(),
            batch: std::env::var("RINGSIEVE_BENCH_BATCH").is_ok_and(|v| v == "1"),
        }
    }

    /// Runs every lane over the next `copies` copies of the merged stream
    /// and returns the time spent in the engine. With several lanes, one
    /// thread each, in steps of [`STEP_COPIES`] with a barrier after each;
    /// a step takes as long as its slower thread.
    fn run(&mut self, workload: &Workload, copies: u64, fill: Fill) -> Duration {
        let from = self.merged;
        let to = from + copies;
        self.merged = to;
        let pass_ns = workload.pass_ns;
        let batch = self.batch;
        if let ([sieve], [ring]) = (&mut self.sieves[..], &mut self.rings[..]) {
            let lane = &workload.lanes[0];
            let mut tally = Tally::default();
            let timed = for_each_block(lane, ring, fill, from, to, |ring, a, b| {
                sieve_span(sieve, lane, ring, pass_ns, a, b, batch, &mut tally)
            });
            self.tally.add(tally);
            return timed;
        }
        let barrier = Barrier::new(self.sieves.len());
        let results: Vec<(Tally, Vec<Duration>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .sieves
                .iter_mut()
                .zip(&mut self.rings)
                .enumerate()
                .map(|(index, (sieve, ring))| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let lane = &workload.lanes[index];
                        let mut tally = Tally::default();
                        let mut steps = Vec::new();
                        let mut step = from;
                        while step < to {
                            let end = (step + STEP_COPIES).min(to);
                            let (a, b) = (workload.lane_position(index, step), workload.lane_position(index, end));
                            steps.push(for_each_block(lane, ring, fill, a, b, |ring, a, b| {
                                sieve_span(sieve, lane, ring, pass_ns, a, b, batch, &mut tally)
                            }));
                            barrier.wait();
                            step = end;
                        }
                        (tally, steps)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a sieve thread panicked"))
                .collect()
        });
        let steps = results.iter().map(|(_, steps)| steps.len()).max().unwrap_or(0);
        let timed = (0..steps)
            .map(|i| results.iter().map(|(_, steps)| steps[i]).max().unwrap_or_default())
            .sum();
        for (tally, _) in results {
            self.tally.add(tally);
        }
        timed
    }

    fn counters(&self) -> SieveCounters {
        let mut total = SieveCounters::default();
        for sieve in &self.sieves {
            total.add(sieve.counters());
        }
        total
    }

    /// Runs the warm-up and reports the engine's state after it.
    fn warm_up(&mut self, workload: &Workload) {
        let started = Instant::now();
        let copies = workload.warm_up_copies();
        self.run(workload, copies, fill_ring);
        let counters = self.counters();
        let passes = copies / workload.copies;
        let held_now = self.sieves.iter().map(Sieve::held_now).sum::<usize>() as u64;
        eprintln!(
            "sieve warm-up, {} thread(s), {passes} passes in {:.1?}: delivered {} of {} packets ({held_now} copies \
             still held), duplicates {}, held {}, hold_overflow {}, table_full_passes {}, late_duplicates {}, \
             malformed {}; table {:?}; NAT bindings learned {}, evicted {}",
            self.sieves.len(),
            started.elapsed(),
            counters.delivered,
            passes * workload.packets,
            counters.duplicates,
            counters.held,
            counters.hold_overflow,
            counters.table_full_passes,
            counters.late_duplicates,
            counters.malformed,
            self.shared.table().counters(),
            self.shared.nat().learned(),
            self.shared.nat().evicted(),
        );
        assert_eq!(counters.malformed, 0, "every generated frame parses");
        let packets = passes * workload.packets;
        assert!(
            counters.delivered + held_now >= packets && counters.delivered <= packets + packets / 100,
            "the engine must deliver each packet once (within 1 % of duplicates delivered)"
        );
    }
}

fn bench(c: &mut Criterion, scale: Scale) {
    let mut group = c.benchmark_group("sieve");
    group.throughput(Throughput::Elements(1));
    // Workloads and engines are built at their first use: criterion calls
    // only the functions whose names pass its filter.
    let mut single: Option<Workload> = None;
    let (mut ring, mut scratch) = (ring(), ring());
    let mut position = 0;
    let hasher = IdentityHasher::with_seeds(SEEDS);
    for name in ["memcpy", "parse_only", "parse_identity"] {
        group.bench_function(name, |b| {
            let lane = &single.get_or_insert_with(|| Workload::generate(scale, 1)).lanes[0];
            b.iter_custom(|iters| {
                let timed = for_each_block(lane, &mut ring, fill_ring, position, position + iters, |ring, a, b| {
                    match name {
                        "memcpy" => black_box(memcpy_span(lane, ring, a, b, &mut scratch)),
                        "parse_only" => black_box(parse_span(lane, ring, a, b)),
                        _ => black_box(identity_span(lane, ring, &hasher, a, b)),
                    };
                });
                position += iters;
                timed
            })
        });
    }
    for threads in [1, 2] {
        let mut engine: Option<Engine> = None;
        let mut workload: Option<Workload> = if threads == 1 { single.take() } else { None };
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            let workload = &*workload.get_or_insert_with(|| Workload::generate(scale, threads));
            let engine = engine.get_or_insert_with(|| {
                let mut engine = Engine::new(workload);
                engine.warm_up(workload);
                engine
            });
            b.iter_custom(|iters| engine.run(workload, iters, fill_ring))
        });
    }
    group.finish();
}

/// One pass of memcpy, counted by callgrind (not the ring fills).
#[inline(never)]
fn counted_memcpy_pass(lane: &Lane) -> u64 {
    let (mut ring, mut scratch, mut sum) = (ring(), ring(), 0);
    for_each_block(lane, &mut ring, uncounted_fill_ring, 0, lane.len(), |ring, a, b| {
        sum += memcpy_span(lane, ring, a, b, &mut scratch)
    });
    sum
}

/// One pass of parsing, counted by callgrind.
#[inline(never)]
fn counted_parse_pass(lane: &Lane) -> u64 {
    let (mut ring, mut sum) = (ring(), 0);
    for_each_block(lane, &mut ring, uncounted_fill_ring, 0, lane.len(), |ring, a, b| {
        sum += parse_span(lane, ring, a, b)
    });
    sum
}

/// One pass of parsing and identities, counted by callgrind.
#[inline(never)]
fn counted_identity_pass(lane: &Lane, hasher: &IdentityHasher) -> u64 {
    let (mut ring, mut sum) = (ring(), 0);
    for_each_block(lane, &mut ring, uncounted_fill_ring, 0, lane.len(), |ring, a, b| {
        sum ^= identity_span(lane, ring, hasher, a, b)
    });
    sum
}

/// One pass of the whole engine after the warm-up, counted by callgrind.
#[inline(never)]
fn counted_sieve_pass(engine: &mut Engine, workload: &Workload) {
    engine.run(workload, workload.copies, uncounted_fill_ring);
}

/// The fixed run for callgrind: one pass of each chosen measurement.
fn run_once(setting: &str, scale: Scale) -> Result<(), String> {
    const CHOICES: [&str; 4] = ["memcpy", "parse", "identity", "sieve"];
    let names: Vec<&str> = setting.split(',').map(str::trim).collect();
    if setting != "1" && !names.iter().all(|name| CHOICES.contains(name)) {
        return Err(format!(
            "RINGSIEVE_BENCH_ONCE={setting}: expected 1 (all) or a comma-separated list of {CHOICES:?}"
        ));
    }
    let chosen = |name: &str| setting == "1" || names.contains(&name);
    let workload = Workload::generate(scale, 1);
    let lane = &workload.lanes[0];
    let mut summary = format!(
        "{{\"flows\": {}, \"packets\": {}, \"copies\": {}, \"table_capacity\": {}",
        workload.flows, workload.packets, workload.copies, workload.config.table_capacity
    );
    if chosen("memcpy") {
        black_box(counted_memcpy_pass(lane));
    }
    if chosen("parse") {
        black_box(counted_parse_pass(lane));
    }
    if chosen("identity") {
        black_box(counted_identity_pass(lane, &IdentityHasher::with_seeds(SEEDS)));
    }
    if chosen("sieve") {
        let mut engine = Engine::new(&workload);
        engine.warm_up(&workload);
        let before = (engine.tally, engine.counters());
        counted_sieve_pass(&mut engine, &workload);
        let after = engine.counters();
        summary += &format!(
            ", \"sieve_delivered\": {}, \"sieve_duplicates\": {}, \"sieve_held\": {}, \"sieve_hold_overflow\": {}, \"nat_evicted\": {}",
            engine.tally.delivered - before.0.delivered,
            after.duplicates - before.1.duplicates,
            after.held - before.1.held,
            after.hold_overflow - before.1.hold_overflow,
            engine.shared.nat().evicted(),
        );
    }
    println!("{summary}}}");
    Ok(())
}

fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test` runs the binary without it
    // and criterion then runs each function once: keep that small.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    if let Ok(setting) = std::env::var("RINGSIEVE_BENCH_ONCE") {
        return match run_once(&setting, Scale::of_run(true)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("sieve: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    bench(&mut criterion, Scale::of_run(measuring));
    criterion.final_summary();
    ExitCode::SUCCESS
}
