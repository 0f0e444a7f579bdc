//! Writes the seed corpus of every fuzz target into `fuzz/corpus/TARGET/seed-*`:
//! a handful of real TPACKET_V3 blocks (laid out as the kernel fills them) for
//! `block_walk`, `flow`'s real frames for `parse_frame`, and small valid pcap
//! and pcapng files (several sections and interfaces, `epb_flags`, Simple and
//! obsolete Packet Blocks, `LINUX_SLL` and `LINUX_SLL2`) for `capture_file`
//! and, after their selector byte, `capture_file_records`. The seeds are built
//! in code, so the output is the same on every run; `scripts/fuzz.sh` runs it
//! when a target has no seeds. By hand:
//! `cargo run --manifest-path fuzz/Cargo.toml --example write_seed_corpus`.

use af_packet::ring::synthetic::PacketSpec;
use ringsieve_fuzz::seed::{self, frame, STATUS_BLK_TMO, STATUS_USER};

/// `TP_STATUS_LOSING`, `TP_STATUS_CSUMNOTREADY`, `TP_STATUS_VLAN_VALID`, `TP_STATUS_VLAN_TPID_VALID`.
const LOSING: u32 = 1 << 2;
const CSUMNOTREADY: u32 = 1 << 3;
const VLAN_VALID: u32 = 1 << 4;
const VLAN_TPID_VALID: u32 = 1 << 6;

fn main() -> std::io::Result<()> {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    write_block_walk(&corpus.join("block_walk"))?;
    let parse_frame: Vec<(String, Vec<u8>)> = flow::fuzzing::seeds::ALL
        .iter()
        .map(|(name, frame)| (format!("seed-{name}"), frame.to_vec()))
        .collect();
    write(
        &corpus.join("parse_frame"),
        parse_frame,
        flow::fuzzing::parse_everything,
    )?;
    write(
        &corpus.join("capture_file"),
        owned(ringsieve_fuzz::capture::seed::raw_seeds()),
        ringsieve_fuzz::capture::read_capture,
    )?;
    write(
        &corpus.join("capture_file_records"),
        owned(ringsieve_fuzz::capture::seed::framed_seeds()),
        ringsieve_fuzz::capture::read_framed_capture,
    )
}

fn owned(seeds: Vec<(&str, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    seeds
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect()
}

/// Checks each seed with the target's entry point, then writes it.
fn write(dir: &std::path::Path, seeds: Vec<(String, Vec<u8>)>, check: fn(&[u8])) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in seeds {
        check(&bytes);
        std::fs::write(dir.join(&name), &bytes)?;
        println!("{}/{name}: {} bytes", dir.display(), bytes.len());
    }
    Ok(())
}

fn write_block_walk(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let t = 1_700_000_000_123_456_789u64;
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![];

    let (a, b) = (frame(60, 0xaa), frame(64, 0xbb));
    let tagged = PacketSpec {
        timestamp_ns: t + 1_000,
        status: VLAN_VALID | VLAN_TPID_VALID,
        vlan_tci: 0x2064,
        vlan_tpid: 0x88a8,
        ..PacketSpec::new(&b)
    };
    let specs = [
        PacketSpec {
            timestamp_ns: t,
            ..PacketSpec::new(&a)
        },
        tagged,
    ];
    seeds.push((
        "seed-two-small-frames-vlan",
        seed::block(1024, 1, STATUS_USER, &specs).0,
    ));

    let (mtu, small) = (frame(1514, 0x11), frame(60, 0x22));
    let specs = [
        PacketSpec::new(&mtu),
        PacketSpec {
            pkttype: 4,
            ..PacketSpec::new(&small)
        },
    ];
    seeds.push(("seed-mtu-then-outgoing", seed::block(2048, 2, STATUS_USER, &specs).0));

    let mixed: Vec<Vec<u8>> = [60, 64, 127, 128, 511, 1000, 1513, 1514]
        .iter()
        .map(|&n| frame(n, n as u8))
        .collect();
    let specs: Vec<PacketSpec<'_>> = mixed
        .iter()
        .enumerate()
        .map(|(i, f)| PacketSpec {
            timestamp_ns: t + i as u64 * 977,
            ifindex: 3,
            ..PacketSpec::new(f)
        })
        .collect();
    seeds.push(("seed-mixed-sizes", seed::block(6144, 3, STATUS_USER, &specs).0));

    seeds.push((
        "seed-empty-timed-out",
        seed::block(128, 4, STATUS_USER | STATUS_BLK_TMO, &[]).0,
    ));

    let cut = frame(128, 0x33);
    let specs = [PacketSpec {
        original_len: 1514,
        status: LOSING | CSUMNOTREADY,
        pkttype: 3,
        ..PacketSpec::new(&cut)
    }];
    seeds.push(("seed-truncated-losing", seed::block(512, 5, STATUS_USER, &specs).0));

    write(dir, owned(seeds), ringsieve_fuzz::walk_block)
}
