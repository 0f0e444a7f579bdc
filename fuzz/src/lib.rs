//! Entry points of ringsieve's fuzz targets, and the seeds they start from.
//! Each entry point takes arbitrary bytes and asserts the invariants of the
//! code under test; the fuzz targets are one line calling them, and the
//! stable tests call them over seeded pseudo-random inputs where `cargo fuzz`
//! (nightly) is not available.
//!
//! Here: the TPACKET_V3 block walk ([`walk_block`]), tested through the safe
//! API of `af_packet` from outside, as a capture thread uses it. In
//! [`capture`]: the pcap/pcapng reader of `capture_file`. Packet parsing's
//! entry point lives in `flow::fuzzing`. None of them adds anything to the
//! crate it tests.

#![forbid(unsafe_code)]

pub mod capture;

use af_packet::ring::synthetic::{PacketSpec, SyntheticRing};
use af_packet::ring::{Packet, Packets};

/// Size of `struct tpacket_block_desc`: no packet starts before it.
pub const BLOCK_DESC_LEN: usize = 48;
/// Largest block the entry point builds from an input.
pub const MAX_BLOCK: usize = 1 << 16;

/// The block size the fuzzer's input of `len` bytes becomes: its length
/// rounded up to the 8-byte multiple the ring requires, between the
/// descriptor size and [`MAX_BLOCK`]. Longer inputs are cut, shorter ones
/// zero-padded, by `publish_raw_block`.
pub fn block_size_for(len: usize) -> usize {
    len.clamp(BLOCK_DESC_LEN, MAX_BLOCK).next_multiple_of(8)
}

/// Publishes `data` as the only block of a one-block ring, walks every packet
/// of it through the ring, and asserts:
///
/// - every packet's bytes lie inside the block, after the descriptor (so
///   `captured_len <= block size`);
/// - the ring walk sees exactly the packets, fields and end state (malformed
///   or not) of a plain [`Packets`] walk of the same bytes, whose slices can
///   be checked against the buffer's address range;
/// - no more packets than the descriptor claims, and all of them unless the
///   walk stopped on a malformed header;
/// - dropping the block hands it back: one block read, counted malformed
///   exactly when the walk was, and nothing ready afterwards.
///
/// Panics (a fuzzer finding) when one does not hold.
pub fn walk_block(data: &[u8]) {
    let size = block_size_for(data.len());
    let mut bytes = vec![0u8; size];
    let n = data.len().min(size);
    bytes[..n].copy_from_slice(&data[..n]);

    let mut reference = Packets::new(&bytes);
    let expected: Vec<Packet<'_>> = reference.by_ref().collect();
    let expected_malformed = reference.malformed();
    let block_start = bytes.as_ptr() as usize;
    for packet in &expected {
        let start = packet.data().as_ptr() as usize;
        assert!(
            start >= block_start + BLOCK_DESC_LEN && start + packet.data().len() <= block_start + size,
            "packet data at block offset {} + {} bytes is outside the {size}-byte block",
            start.wrapping_sub(block_start),
            packet.data().len()
        );
        assert!(packet.captured_len() as usize <= size - BLOCK_DESC_LEN);
        assert_eq!(packet.captured_len() as usize, packet.data().len());
    }

    let mut synthetic = SyntheticRing::new(size, 1);
    synthetic.publish_raw_block(0, data);
    let ring = synthetic.ring();
    {
        let block = ring.next_block().expect("a published block belongs to user space");
        let claimed = block.packet_count();
        let mut walk = block.packets();
        let mut walked = 0usize;
        for packet in walk.by_ref() {
            let reference = expected
                .get(walked)
                .expect("the ring walk yields more packets than the reference");
            assert_same(&packet, reference, walked);
            walked += 1;
        }
        assert_eq!(walked, expected.len(), "the ring walk stopped early");
        assert_eq!(walk.malformed(), expected_malformed);
        assert!(
            walked as u64 <= u64::from(claimed),
            "{walked} packets from a block claiming {claimed}"
        );
        if !walk.malformed() {
            assert_eq!(
                walked as u64,
                u64::from(claimed),
                "a well-formed walk yields every packet"
            );
        }
    }
    assert_eq!(ring.blocks_read(), 1);
    assert_eq!(ring.malformed_blocks(), u64::from(expected_malformed));
    assert!(ring.next_block().is_none(), "the walked block went back to the kernel");
}

fn assert_same(got: &Packet<'_>, want: &Packet<'_>, index: usize) {
    let fields = |p: &Packet<'_>| {
        (
            p.original_len(),
            p.timestamp_ns(),
            p.ifindex(),
            p.packet_type(),
            p.status(),
            p.vlan(),
            p.rx_hash(),
        )
    };
    assert_eq!(got.data(), want.data(), "packet {index}: bytes differ");
    assert_eq!(fields(got), fields(want), "packet {index}: metadata differs");
}

/// Whole blocks laid out byte for byte as the kernel (and
/// `SyntheticRing::fill_block`) lays them out, for the seed corpus and the
/// stable test's mutations. Offsets from linux/if_packet.h.
pub mod seed {
    use super::*;

    /// `tpacket_block_desc.hdr.bh1` fields.
    const BLOCK_STATUS: usize = 8;
    const NUM_PKTS: usize = 12;
    const OFFSET_TO_FIRST_PKT: usize = 16;
    const BLK_LEN: usize = 20;
    const SEQ_NUM: usize = 24;
    /// `tpacket3_hdr` fields.
    pub const NEXT_OFFSET: usize = 0;
    const SEC: usize = 4;
    const NSEC: usize = 8;
    /// `tp_snaplen`.
    pub const SNAPLEN: usize = 12;
    const LEN: usize = 16;
    const STATUS: usize = 20;
    /// `tp_mac`.
    pub const MAC: usize = 24;
    const VLAN_TCI: usize = 32;
    const VLAN_TPID: usize = 36;
    const SLL_IFINDEX: usize = 52;
    const SLL_PKTTYPE: usize = 58;
    /// Where the kernel puts the frame, from the packet header.
    const MAC_OFFSET: usize = 82;
    /// `TP_STATUS_USER`.
    pub const STATUS_USER: u32 = 1;
    /// `TP_STATUS_BLK_TMO`: the block was closed by the retire timer.
    pub const STATUS_BLK_TMO: u32 = 1 << 5;

    /// A `block_size`-byte block holding as many of `packets` as fit, with
    /// `block_status` in its descriptor; returns the block and the packets
    /// placed, and the offset of each packet header.
    pub fn block(
        block_size: usize,
        sequence: u64,
        block_status: u32,
        packets: &[PacketSpec<'_>],
    ) -> (Vec<u8>, Vec<usize>) {
        let mut block = vec![0u8; block_size];
        let first = BLOCK_DESC_LEN.next_multiple_of(16);
        let mut offset = first;
        let mut headers = vec![];
        for spec in packets {
            let footprint = SyntheticRing::packet_footprint(spec.data.len());
            if offset + footprint > block_size {
                break;
            }
            if let Some(&previous) = headers.last() {
                put(
                    &mut block,
                    previous + NEXT_OFFSET,
                    &((offset - previous) as u32).to_ne_bytes(),
                );
            }
            put(
                &mut block,
                offset + SEC,
                &((spec.timestamp_ns / 1_000_000_000) as u32).to_ne_bytes(),
            );
            put(
                &mut block,
                offset + NSEC,
                &((spec.timestamp_ns % 1_000_000_000) as u32).to_ne_bytes(),
            );
            put(&mut block, offset + SNAPLEN, &(spec.data.len() as u32).to_ne_bytes());
            put(&mut block, offset + LEN, &spec.original_len.to_ne_bytes());
            put(&mut block, offset + STATUS, &(spec.status | STATUS_USER).to_ne_bytes());
            put(&mut block, offset + MAC, &(MAC_OFFSET as u16).to_ne_bytes());
            put(&mut block, offset + VLAN_TCI, &u32::from(spec.vlan_tci).to_ne_bytes());
            put(&mut block, offset + VLAN_TPID, &spec.vlan_tpid.to_ne_bytes());
            put(&mut block, offset + SLL_IFINDEX, &spec.ifindex.to_ne_bytes());
            block[offset + SLL_PKTTYPE] = spec.pkttype;
            put(&mut block, offset + MAC_OFFSET, spec.data);
            headers.push(offset);
            offset += footprint;
        }
        put(&mut block, BLOCK_STATUS, &block_status.to_ne_bytes());
        put(&mut block, NUM_PKTS, &(headers.len() as u32).to_ne_bytes());
        put(&mut block, OFFSET_TO_FIRST_PKT, &(first as u32).to_ne_bytes());
        put(&mut block, BLK_LEN, &(offset as u32).to_ne_bytes());
        put(&mut block, SEQ_NUM, &sequence.to_ne_bytes());
        (block, headers)
    }

    fn put(block: &mut [u8], at: usize, bytes: &[u8]) {
        block[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// A plausible Ethernet/IPv4/UDP frame of `len` bytes (checksums not
    /// computed: the walker does not look inside frames).
    pub fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut frame = vec![fill; len.max(42)];
        frame[..12].copy_from_slice(&[2, 0x42, 0xac, 0x11, 0, 2, 2, 0x42, 0xac, 0x11, 0, 3]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[23] = 17;
        frame.truncate(len);
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::seed::{self, frame};
    use super::*;

    /// A xorshift64* generator: deterministic, so a failure replays.
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn specs<'a>(frames: &'a [Vec<u8>], rng: &mut XorShift) -> Vec<PacketSpec<'a>> {
        frames
            .iter()
            .map(|f| PacketSpec {
                original_len: f.len() as u32 + if rng.below(4) == 0 { 100 } else { 0 },
                timestamp_ns: rng.next() >> 4,
                ifindex: rng.below(64) as i32,
                pkttype: rng.below(6) as u8,
                status: (rng.next() as u32) & 0xfc,
                vlan_tci: rng.next() as u16,
                vlan_tpid: if rng.below(2) == 0 { 0x8100 } else { 0x88a8 },
                ..PacketSpec::new(f)
            })
            .collect()
    }

    #[test]
    fn hand_built_blocks_walk_like_fill_block() {
        let mut rng = XorShift(0x5eed);
        for round in 0..200 {
            let frames: Vec<Vec<u8>> = (0..1 + rng.below(12))
                .map(|i| frame(rng.below(1515), i as u8))
                .collect();
            let specs = specs(&frames, &mut rng);
            let size = 4096 * (1 + rng.below(3));
            let (raw, headers) = seed::block(size, round, seed::STATUS_USER, &specs);

            let mut filled = SyntheticRing::new(size, 1);
            assert_eq!(filled.fill_block(0, round, &specs), headers.len());
            let mut published = SyntheticRing::new(size, 1);
            published.publish_raw_block(0, &raw);
            let a = filled.ring().next_block().unwrap();
            let b = published.ring().next_block().unwrap();
            assert_eq!((a.sequence(), a.packet_count()), (b.sequence(), b.packet_count()));
            let (pa, pb): (Vec<_>, Vec<_>) = (a.packets().collect(), b.packets().collect());
            assert_eq!(pa.len(), headers.len());
            for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
                assert_same(x, y, i);
            }
            walk_block(&raw);
        }
    }

    /// The stable stand-in for `cargo fuzz run block_walk`: 100 000 blocks,
    /// a quarter random bytes, the rest real blocks with a few header words
    /// overwritten or the block cut short.
    #[test]
    fn walk_block_holds_its_invariants_over_100k_pseudo_random_blocks() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let frames: Vec<Vec<u8>> = (0..16).map(|i| frame(42 + 98 * i, i as u8)).collect();
        for _ in 0..100_000 {
            if rng.below(4) == 0 {
                let data: Vec<u8> = (0..rng.below(4096)).map(|_| rng.next() as u8).collect();
                walk_block(&data);
                continue;
            }
            let chosen: Vec<Vec<u8>> = (0..rng.below(10)).map(|_| frames[rng.below(16)].clone()).collect();
            let specs = specs(&chosen, &mut rng);
            let (mut raw, headers) = seed::block(2048 * (1 + rng.below(3)), 0, seed::STATUS_USER, &specs);
            for _ in 0..1 + rng.below(4) {
                let at = match (rng.below(3), headers.is_empty()) {
                    (0, false) => {
                        let field = [seed::NEXT_OFFSET, seed::SNAPLEN, seed::MAC][rng.below(3)];
                        headers[rng.below(headers.len())] + field
                    }
                    (1, _) => 12 + 4 * rng.below(3), // num_pkts, offset_to_first_pkt, blk_len
                    _ => rng.below(raw.len() - 4),
                };
                let value = match rng.below(4) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => rng.below(raw.len() + 64) as u32,
                    _ => rng.next() as u32,
                };
                raw[at..at + 4].copy_from_slice(&value.to_ne_bytes());
            }
            if rng.below(8) == 0 {
                raw.truncate(rng.below(raw.len()));
            }
            walk_block(&raw);
        }
    }

    #[test]
    fn committed_seed_corpus_walks_cleanly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/block_walk");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/block_walk exists") {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                walk_block(&std::fs::read(&path).unwrap());
                seen += 1;
            }
        }
        assert!(seen >= 5, "only {seen} seed blocks in {}", dir.display());
    }
}
