//! `ringsieve read`: the dedup over capture files. Delivered packets go to a
//! pcapng file with their original interface (one Interface Description
//! Block per input interface, its link type kept) and direction; the
//! counters go to the last line of stderr as one JSON object, the same shape
//! as `ringsieve run` prints, with a `dedup` object added.
//!
//! A file that cannot be read, or is cut mid-packet, ends the run with an
//! error naming the file and offset; what was delivered before it is
//! written and counted, and the summary is still printed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use output::{InterfaceId, PacketRecord, PcapngWriter};
use pipeline::offline::{self, DeliveredPacket, DeliverySink, OfflineReport};
use serde_json::json;

use crate::dedup_summary::dedup_json;
use crate::settings::ReadSettings;

/// Writes delivered packets to pcapng, adding each interface at its first
/// packet (so the output's interfaces are the ones with delivered packets,
/// in the order of their first one).
struct PcapngSink {
    writer: PcapngWriter<BufWriter<Box<dyn Write>>>,
    ids: HashMap<usize, InterfaceId>,
}

impl DeliverySink for PcapngSink {
    type Error = io::Error;

    fn deliver(&mut self, packet: &DeliveredPacket<'_>) -> io::Result<()> {
        let interface = packet.interface;
        let id = match self.ids.get(&interface.id) {
            Some(&id) => id,
            None => {
                let id = self.writer.add_interface_with_link_type(
                    &interface.name,
                    interface.link_type,
                    interface.snaplen,
                )?;
                self.ids.insert(interface.id, id);
                id
            }
        };
        self.writer.write_packet(&PacketRecord {
            interface: id,
            timestamp_ns: packet.timestamp_ns,
            original_len: packet.original_len,
            data: packet.data,
            packet_type: packet.packet_type.or_else(|| {
                packet.direction.map(|direction| match direction {
                    af_packet::Direction::Inbound => af_packet::PacketType::Other(u8::MAX),
                    af_packet::Direction::Outbound => af_packet::PacketType::Outgoing,
                })
            }),
            vlan: None,
        })
    }
}

/// Counts only.
struct CountingSink;

impl DeliverySink for CountingSink {
    type Error = io::Error;

    fn deliver(&mut self, _: &DeliveredPacket<'_>) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `ringsieve read`.
pub fn read(settings: &ReadSettings) -> anyhow::Result<ExitCode> {
    let (result, pcap) = match &settings.pcap_out {
        Some(path) => {
            let out: Box<dyn Write> = if path == "-" {
                Box::new(io::stdout().lock())
            } else {
                Box::new(File::create(path).with_context(|| format!("creating {path}"))?)
            };
            let writer = PcapngWriter::new(BufWriter::with_capacity(1 << 16, out), "ringsieve read")
                .with_context(|| format!("writing {path}"))?;
            let mut sink = PcapngSink {
                writer,
                ids: HashMap::new(),
            };
            let result = offline::run(&settings.files, &settings.offline, &mut sink);
            let written = sink.writer.packets_written();
            let finished = sink
                .writer
                .finish()
                .and_then(|mut w| w.flush())
                .with_context(|| format!("finishing {path}"));
            (result, Some((path.clone(), written, finished)))
        }
        None => (
            offline::run(&settings.files, &settings.offline, &mut CountingSink),
            None,
        ),
    };
    let (report, result) = result;
    let error = result.err();
    let mut summary = summarize(&report);
    let mut failed = false;
    if let Some(error) = &error {
        eprintln!("ringsieve: {error}");
        failed = true;
    }
    if let Some((path, written, finished)) = pcap {
        if let Err(error) = finished {
            eprintln!("ringsieve: {error:#}");
            failed = true;
        }
        summary["pcap"] = json!({ "file": path, "packets_written": written });
    }
    eprintln!("{summary}");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The summary: per input interface, then the dedup's counters.
fn summarize(report: &OfflineReport) -> serde_json::Value {
    let mut interfaces = BTreeMap::new();
    for (interface, counts) in report.interfaces.iter().zip(&report.counts) {
        // Two files may name an interface alike: the later ones get a suffix.
        let mut name = interface.name.clone();
        let mut n = 1;
        while interfaces.contains_key(&name) {
            n += 1;
            name = format!("{}#{n}", interface.name);
        }
        interfaces.insert(
            name,
            json!({
                "captured": counts.captured,
                "delivered": counts.delivered,
                "role": interface.role.name(),
                "file": interface.file,
            }),
        );
    }
    let label = |id: flow::TapId| {
        report
            .taps
            .get(usize::from(id.0))
            .cloned()
            .unwrap_or_else(|| format!("tap{}", id.0))
    };
    json!({
        "interfaces": interfaces,
        "dedup": dedup_json(&report.dedup, report.nat_bindings, label),
    })
}
