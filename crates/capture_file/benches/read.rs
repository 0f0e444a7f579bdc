//! Cost of reading a large capture file, packet by packet: this crate's
//! reader against pcap-file 2.0's `PcapNgReader` and `PcapReader`, both over
//! the same bytes held in memory (so the disk is out of the measurement),
//! against a baseline that only copies the bytes once through a 1 MiB buffer,
//! the least any reader must do. Our reader is also measured from the file
//! itself (page cache), as `ringsieve read` uses it. It measures reading only:
//! no deduplication, no output.
//!
//! The files, [`PACKETS`] Ethernet frames of mixed sizes over [`INTERFACES`]
//! interfaces, as pcapng (written by `output::PcapngWriter`) and as pcap, are
//! written once to `$CARGO_TARGET_TMPDIR/capture_file-bench/` and kept there,
//! for timing other tools on the same bytes (`editcap -d`).
//!
//! Wall time: `cargo bench -p capture_file --bench read`.

use std::fs;
use std::hint::black_box;
use std::io::{BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use af_packet::PacketType;
use capture_file::CaptureFile;
use criterion::{BenchmarkId, Criterion, Throughput};
use output::{PacketRecord, PcapngWriter};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// Packets in each file.
const PACKETS: usize = 200_000;
/// Capture interfaces in the pcapng file.
const INTERFACES: usize = 4;
/// Frame lengths, cycled: a rough mix of ACKs, small requests and full frames.
const FRAME_LENS: [usize; 8] = [66, 66, 74, 150, 590, 1514, 1514, 1514];

/// A file's path and its bytes, loaded once for the whole run.
struct Fixture {
    path: PathBuf,
    bytes: &'static [u8],
}

fn frame(i: usize) -> Vec<u8> {
    let len = FRAME_LENS[i % FRAME_LENS.len()];
    let mut frame = vec![(i % 251) as u8; len];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    frame
}

fn write_pcapng(path: &Path) {
    let file = BufWriter::with_capacity(1 << 20, fs::File::create(path).expect("create pcapng"));
    let mut writer = PcapngWriter::new(file, "capture_file bench").expect("pcapng header");
    let interfaces: Vec<_> = (0..INTERFACES)
        .map(|i| writer.add_interface(&format!("veth{i}"), 262_144).expect("idb"))
        .collect();
    for i in 0..PACKETS {
        let data = frame(i);
        let record = PacketRecord {
            interface: interfaces[i % INTERFACES],
            timestamp_ns: 1_700_000_000_000_000_000 + i as u64 * 1_000,
            original_len: data.len() as u32,
            data: &data,
            packet_type: Some(if i % 2 == 0 {
                PacketType::Outgoing
            } else {
                PacketType::Host
            }),
            vlan: None,
        };
        writer.write_packet(&record).expect("epb");
    }
    writer.finish().expect("finish").flush().expect("flush");
}

fn write_pcap(path: &Path) {
    let mut file = BufWriter::with_capacity(1 << 20, fs::File::create(path).expect("create pcap"));
    let header: [u32; 6] = [0xa1b2_3c4d, 0x0004_0002, 0, 0, 262_144, 1];
    for word in header {
        file.write_all(&word.to_le_bytes()).expect("header");
    }
    for i in 0..PACKETS {
        let data = frame(i);
        let ts_ns = 1_700_000_000_000_000_000 + i as u64 * 1_000;
        for word in [
            (ts_ns / 1_000_000_000) as u32,
            (ts_ns % 1_000_000_000) as u32,
            data.len() as u32,
            data.len() as u32,
        ] {
            file.write_all(&word.to_le_bytes()).expect("record header");
        }
        file.write_all(&data).expect("record");
    }
    file.flush().expect("flush");
}

fn fixture(name: &str, write: fn(&Path)) -> Fixture {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capture_file-bench");
    fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join(name);
    if !path.exists() {
        let partial = dir.join(format!("{name}.partial"));
        write(&partial);
        fs::rename(&partial, &path).expect("rename");
    }
    let bytes = fs::read(&path).expect("read fixture").leak();
    Fixture { path, bytes }
}

/// Baseline: every byte copied once through a 1 MiB buffer.
fn copy_once(bytes: &[u8]) -> u64 {
    let mut reader = Cursor::new(bytes);
    let mut buf = vec![0u8; 1 << 20];
    let mut sum = 0u64;
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            return sum;
        }
        sum += u64::from(black_box(&buf[..n])[n - 1]) + n as u64;
    }
}

/// Our reader over any source: packets and captured bytes.
fn ours(file: &mut CaptureFile) -> (u64, u64) {
    let (mut packets, mut bytes) = (0u64, 0u64);
    while let Some(packet) = file.next_packet().expect("read") {
        black_box((packet.interface, packet.timestamp_ns, packet.direction));
        packets += 1;
        bytes += packet.data.len() as u64;
    }
    (packets, bytes)
}

fn pcap_file_ng(bytes: &[u8]) -> (u64, u64) {
    let mut reader = PcapNgReader::new(Cursor::new(bytes)).expect("pcapng");
    let (mut packets, mut total) = (0u64, 0u64);
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(epb) = block.expect("block") {
            black_box((epb.interface_id, epb.timestamp, &epb.options));
            packets += 1;
            total += epb.data.len() as u64;
        }
    }
    (packets, total)
}

fn pcap_file_pcap(bytes: &[u8]) -> (u64, u64) {
    let mut reader = PcapReader::new(Cursor::new(bytes)).expect("pcap");
    let (mut packets, mut total) = (0u64, 0u64);
    while let Some(packet) = reader.next_packet() {
        let packet = packet.expect("packet");
        black_box(packet.timestamp);
        packets += 1;
        total += packet.data.len() as u64;
    }
    (packets, total)
}

fn bench(c: &mut Criterion) {
    let pcapng = fixture("large.pcapng", write_pcapng);
    let pcap = fixture("large.pcap", write_pcap);
    let captured: u64 = (0..PACKETS).map(|i| FRAME_LENS[i % FRAME_LENS.len()] as u64).sum();
    for (format, fx) in [("pcapng", &pcapng), ("pcap", &pcap)] {
        // Every reader must see every packet.
        let memory = || CaptureFile::from_reader(&fx.path, Cursor::new(fx.bytes)).expect("open");
        assert_eq!(ours(&mut memory()), (PACKETS as u64, captured));
        let theirs = if format == "pcapng" {
            pcap_file_ng(fx.bytes)
        } else {
            pcap_file_pcap(fx.bytes)
        };
        assert_eq!(theirs, (PACKETS as u64, captured));

        for throughput in [
            Throughput::Elements(PACKETS as u64),
            Throughput::Bytes(fx.bytes.len() as u64),
        ] {
            let unit = if matches!(throughput, Throughput::Elements(_)) {
                "packets"
            } else {
                "bytes"
            };
            let mut group = c.benchmark_group(format!("read/{format}/{unit}"));
            group.throughput(throughput);
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(5));
            group.bench_function(BenchmarkId::from_parameter("copy-once"), |b| {
                b.iter(|| copy_once(fx.bytes))
            });
            group.bench_function(BenchmarkId::from_parameter("capture_file"), |b| {
                b.iter(|| ours(&mut memory()))
            });
            group.bench_function(BenchmarkId::from_parameter("capture_file-from-disk"), |b| {
                b.iter(|| ours(&mut CaptureFile::open(&fx.path).expect("open")))
            });
            group.bench_function(BenchmarkId::from_parameter("pcap-file"), |b| {
                if format == "pcapng" {
                    b.iter(|| pcap_file_ng(fx.bytes))
                } else {
                    b.iter(|| pcap_file_pcap(fx.bytes))
                }
            });
            group.finish();
        }
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
