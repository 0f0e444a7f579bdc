//! `ringsieve-docker-mix`: writes the synthetic Docker host traffic of
//! [`testbed::docker_mix`] to a pcapng file, as a capture on every
//! interface of the host would record it: one Interface Description Block
//! per interface (`vethc1..`, `docker0`, `eth0`, so `ringsieve read` gives
//! them their roles by name), every copy of every packet in kernel
//! timestamp order, its direction and reception type in `epb_flags`.
//!
//! It is the input of `scripts/bench-read.sh`, which times `ringsieve read`
//! against `editcap -d` on it. On stdout it prints one JSON line: the
//! packets (what a correct dedup delivers), the copies written, and copies
//! by class and by interface role.
//!
//! ```text
//! ringsieve-docker-mix --packets 600000 --flows 1000000 -w /tmp/mix.pcapng
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use output::{PacketRecord, PcapngWriter};
use serde_json::json;
use testbed::docker_mix::{DockerMix, MixConfig, PayloadKind, DEFAULT_START_NS};

/// Writes a synthetic Docker host's captured traffic to pcapng.
#[derive(Debug, Parser)]
#[command(name = "ringsieve-docker-mix", version, about)]
struct Args {
    /// The pcapng file to write (`-` for stdout, then the JSON goes to stderr).
    #[arg(long, short = 'w')]
    write: String,
    /// Packets to generate; each is written as all its copies (2 or 3).
    #[arg(long, short = 'p', default_value_t = 1_000_000)]
    packets: u64,
    /// Distinct flows (TCP 5-tuples); packets visit them round-robin.
    #[arg(long, short = 'f', default_value_t = 1_000_000)]
    flows: u64,
    /// Containers on the host (2 to 500).
    #[arg(long, default_value_t = 64)]
    containers: u16,
    /// Copies per second of kernel time, which spaces the packets.
    #[arg(long, default_value_t = 20_000_000)]
    copies_per_second: u64,
    /// Varies classes, sizes, payloads and delays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Kernel timestamp of the first packet, nanoseconds since the epoch.
    #[arg(long, default_value_t = DEFAULT_START_NS)]
    start_ns: u64,
    /// What the TCP payloads carry: random bytes, or an HTTP/1.1
    /// conversation per flow (`http`).
    #[arg(long, default_value = "random")]
    payload: PayloadKind,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringsieve-docker-mix: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mix = DockerMix::new(MixConfig {
        flows: args.flows,
        packets: args.packets,
        containers: args.containers,
        copies_per_second: args.copies_per_second,
        start_ns: args.start_ns,
        seed: args.seed,
        payload: args.payload,
        ..MixConfig::default()
    })?;
    let out: Box<dyn Write> = if args.write == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(&args.write).with_context(|| format!("creating {}", args.write))?)
    };
    let mut writer = PcapngWriter::new(BufWriter::with_capacity(1 << 20, out), "ringsieve-docker-mix")?;
    let mut ids = Vec::new();
    for interface in mix.interfaces() {
        ids.push(writer.add_interface(&interface.name, 262_144)?);
    }
    let roles: Vec<&'static str> = mix.interfaces().iter().map(|i| i.role.as_str()).collect();
    let mean = mix.mean_copies_per_packet();
    let span_ns = mix.span_ns();
    let mut by_class: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_role: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut copies = 0u64;
    let mut bytes = 0u64;
    for copy in mix {
        writer
            .write_packet(&PacketRecord {
                interface: ids[copy.interface],
                timestamp_ns: copy.timestamp_ns,
                original_len: copy.frame.len() as u32,
                data: &copy.frame,
                packet_type: Some(copy.packet_type),
                vlan: None,
            })
            .with_context(|| format!("writing {}", args.write))?;
        *by_class.entry(copy.class.name()).or_default() += 1;
        *by_role.entry(roles[copy.interface]).or_default() += 1;
        copies += 1;
        bytes += copy.frame.len() as u64;
    }
    writer
        .finish()
        .and_then(|mut w| w.flush())
        .with_context(|| format!("finishing {}", args.write))?;
    let summary = json!({
        "file": args.write,
        "packets": args.packets,
        "copies": copies,
        "frame_bytes": bytes,
        "flows": args.flows,
        "payload": args.payload.name(),
        "containers": args.containers,
        "copies_per_second": args.copies_per_second,
        "mean_copies_per_packet": mean,
        "span_ns": span_ns,
        "copies_by_class": by_class,
        "copies_by_role": by_role,
    });
    if args.write == "-" {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}
