//! Cost of writing packets to pcapng, per frame size (64 and 1514 bytes):
//! our hand-written Enhanced Packet Blocks, untagged and with a VLAN tag to
//! put back, and pcap-file 2.0's `EnhancedPacketBlock` for comparison, each
//! against a plain copy of the same frame bytes into the same reused
//! in-memory buffer, so results read as ratios that survive a noisy machine.
//! It measures the encoder only, not a file, a lock or the capture.
//!
//! Wall time: `cargo bench -p output --bench pcapng_write`.
//!
//! With `RINGSIEVE_BENCH_ONCE=<variant>/<frame length>` (e.g. `ringsieve/64`)
//! the binary skips criterion and writes [`ONCE_BATCHES`] batches, for
//! instruction counts under callgrind:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*write_batch*' \
//!     target/release/deps/pcapng_write-<hash> # with RINGSIEVE_BENCH_ONCE set
//! ```

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{self, Write};
use std::time::Duration;

use af_packet::{PacketType, VlanTag};
use criterion::{BenchmarkId, Criterion, Throughput};
use output::{InterfaceId, PacketRecord, PcapngWriter};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

/// Packets per batch (one criterion iteration).
const PACKETS: usize = 1000;
/// Frame lengths measured: the minimum-size and the full-MTU Ethernet frame.
const FRAME_LENS: [usize; 2] = [64, 1514];
/// Batches in one `RINGSIEVE_BENCH_ONCE` run.
const ONCE_BATCHES: usize = 100;
/// Timestamp of the first packet of a batch.
const EPOCH_NS: u64 = 1_700_000_000_000_000_000;

/// An in-memory output over one allocation, reused forever: when a write
/// would not fit, it starts again from the beginning. Every variant writes
/// through it, so they differ only in what they write.
struct ReusedBuffer {
    bytes: Vec<u8>,
}

impl ReusedBuffer {
    fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(8 << 20),
        }
    }
}

impl Write for ReusedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.bytes.capacity() - self.bytes.len() < buf.len() {
            self.bytes.clear();
        }
        self.bytes.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One way of writing a batch of packets.
enum Variant {
    /// The baseline: the frame bytes alone.
    Memcpy(ReusedBuffer),
    /// [`PcapngWriter`], with or without a VLAN tag to put back.
    Ringsieve(PcapngWriter<ReusedBuffer>, InterfaceId, Option<VlanTag>),
    /// pcap-file 2.0's writer with one `epb_flags` option.
    PcapFile(PcapNgWriter<ReusedBuffer>),
}

impl Variant {
    const NAMES: [&'static str; 4] = ["memcpy", "ringsieve", "ringsieve_vlan", "pcap_file"];

    fn new(name: &str) -> Option<Self> {
        let ringsieve = |vlan| {
            let mut writer = PcapngWriter::new(ReusedBuffer::new(), "bench").unwrap();
            let eth0 = writer.add_interface("eth0", 0).unwrap();
            Self::Ringsieve(writer, eth0, vlan)
        };
        Some(match name {
            "memcpy" => Self::Memcpy(ReusedBuffer::new()),
            "ringsieve" => ringsieve(None),
            "ringsieve_vlan" => ringsieve(Some(VlanTag { tci: 100, tpid: 0x8100 })),
            "pcap_file" => {
                let mut writer = PcapNgWriter::new(ReusedBuffer::new()).unwrap();
                let idb = InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: 0,
                    options: vec![InterfaceDescriptionOption::IfTsResol(9)],
                };
                writer.write_pcapng_block(idb).unwrap();
                Self::PcapFile(writer)
            }
            _ => return None,
        })
    }

    /// Writes [`PACKETS`] copies of `data`.
    #[inline(never)]
    fn write_batch(&mut self, data: &[u8]) {
        match self {
            Self::Memcpy(sink) => {
                for _ in 0..PACKETS {
                    sink.write_all(black_box(data)).unwrap();
                }
            }
            Self::Ringsieve(writer, interface, vlan) => {
                for i in 0..PACKETS {
                    let packet = PacketRecord {
                        interface: *interface,
                        timestamp_ns: EPOCH_NS + i as u64,
                        original_len: data.len() as u32,
                        data,
                        packet_type: Some(PacketType::Host),
                        vlan: *vlan,
                    };
                    writer.write_packet(black_box(&packet)).unwrap();
                }
            }
            Self::PcapFile(writer) => {
                for i in 0..PACKETS {
                    let packet = EnhancedPacketBlock {
                        interface_id: 0,
                        timestamp: Duration::from_nanos(EPOCH_NS + i as u64),
                        original_len: data.len() as u32,
                        data: Cow::Borrowed(black_box(data)),
                        options: vec![EnhancedPacketOption::Flags(0b101)],
                    };
                    writer.write_pcapng_block(packet).unwrap();
                }
            }
        }
    }
}

fn frame(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    bytes
}

fn pcapng_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("pcapng_write");
    group.measurement_time(Duration::from_secs(3));
    for len in FRAME_LENS {
        let data = frame(len);
        group.throughput(Throughput::Bytes((PACKETS * len) as u64));
        for name in Variant::NAMES {
            let mut variant = Variant::new(name).unwrap();
            group.bench_with_input(BenchmarkId::new(name, len), &data, |b, data| {
                b.iter(|| variant.write_batch(data))
            });
        }
    }
    group.finish();
}

/// The fixed run for callgrind: [`ONCE_BATCHES`] batches of one variant.
fn run_once(setting: &str) -> Result<(), String> {
    let usage = || {
        format!(
            "RINGSIEVE_BENCH_ONCE={setting}: expected <variant>/<frame length>, variants {:?}, lengths {FRAME_LENS:?}",
            Variant::NAMES
        )
    };
    let (name, len) = setting.split_once('/').ok_or_else(usage)?;
    let len: usize = len
        .parse()
        .ok()
        .filter(|len| FRAME_LENS.contains(len))
        .ok_or_else(usage)?;
    let mut variant = Variant::new(name).ok_or_else(usage)?;
    let data = frame(len);
    for _ in 0..ONCE_BATCHES {
        variant.write_batch(&data);
    }
    println!(
        "{{\"variant\": \"{name}\", \"frame_len\": {len}, \"packets\": {}}}",
        ONCE_BATCHES * PACKETS
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    if let Ok(setting) = std::env::var("RINGSIEVE_BENCH_ONCE") {
        return match run_once(&setting) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("pcapng_write: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut criterion = Criterion::default().configure_from_args();
    pcapng_write(&mut criterion);
    criterion.final_summary();
    std::process::ExitCode::SUCCESS
}
