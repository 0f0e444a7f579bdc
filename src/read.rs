//! `ringsieve read`: the dedup over capture files, then the same pipeline as
//! live capture. Delivered packets go, in timestamp order, to a pcapng file
//! with their original interface (one Interface Description Block per input
//! interface, its link type kept) and direction, written by the reading
//! thread so the file does not depend on the workers; and through the
//! fan-out to the worker threads, whose flow tracker writes EVE flow records
//! with timeouts on the packets' own clock. The counters go to the last
//! line of stderr as one JSON object, the same shape as `ringsieve run`
//! prints, with a `dedup` object added.
//!
//! A file that cannot be read, or is cut mid-packet, ends the run with an
//! error naming the file and offset; what was delivered before it is
//! written and counted, and the summary is still printed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use flow::{Delivery, SuppressedCopy};
use output::{InterfaceId as PcapInterfaceId, PacketRecord, PcapngWriter};
use pipeline::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};
use pipeline::offline::{self, DeliveredPacket, DeliverySink, InputInterface, OfflineReport};
use pipeline::worker::{PacketMeta, SuppressedNotice};
use pipeline::worker_pool::{Fanout, FanoutReport, WorkerPool};
use serde_json::json;

use crate::accounting::Accounting;
use crate::dedup_summary::dedup_json;
use crate::detection::Detection;
use crate::host_worker::{open_eve, workers_json, HostWorker};
use crate::settings::ReadSettings;

/// Writes delivered packets to pcapng, adding each interface at its first
/// packet (so the output's interfaces are the ones with delivered packets,
/// in the order of their first one).
struct PcapngSink {
    writer: PcapngWriter<BufWriter<Box<dyn Write>>>,
    ids: HashMap<usize, PcapInterfaceId>,
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

/// What `ringsieve read` does with a delivered packet: pcapng when asked,
/// and the fan-out to the workers always.
struct ReadSink {
    pcap: Option<PcapngSink>,
    /// The fan-out, until the deliveries are done.
    fanout: Option<Fanout>,
    /// Its report once finished, at the end of the deliveries (so the
    /// workers finish while the engine's tables are freed).
    finished: Option<FanoutReport>,
    /// The pipeline's id of each input interface, by input id.
    ids: Vec<Option<InterfaceId>>,
}

impl ReadSink {
    /// The pipeline's id of `interface`, registered with `fanout`'s
    /// interface table on first sight.
    fn interface_id(ids: &mut Vec<Option<InterfaceId>>, fanout: &Fanout, interface: &InputInterface) -> InterfaceId {
        if let Some(Some(id)) = ids.get(interface.id) {
            return *id;
        }
        let id = fanout.interfaces().intern(InterfaceInfo {
            name: interface.name.clone(),
            role: interface.role,
            ifindex: input_ifindex(interface),
            link_type: interface.link_type,
            container: None,
        });
        if ids.len() <= interface.id {
            ids.resize(interface.id + 1, None);
        }
        ids[interface.id] = Some(id);
        id
    }
}

impl DeliverySink for ReadSink {
    type Error = io::Error;

    fn deliver(&mut self, packet: &DeliveredPacket<'_>) -> io::Result<()> {
        if let Some(pcap) = &mut self.pcap {
            pcap.deliver(packet)?;
        }
        let Some(fanout) = &mut self.fanout else {
            return Ok(());
        };
        let interface = Self::interface_id(&mut self.ids, fanout, packet.interface);
        let mut meta = PacketMeta::new(packet.timestamp_ns, packet.original_len, interface, packet.tap);
        meta.packet_type = packet.packet_type;
        meta.flow = packet.delivery.flow;
        meta.flow_hash = packet.delivery.flow_hash;
        meta.nat = packet.delivery.nat;
        meta.overlap_different_data = packet.delivery.overlap_different_data;
        fanout.advance_clock(packet.timestamp_ns);
        fanout.deliver(meta, packet.data);
        Ok(())
    }

    fn wants_suppressed(&self) -> bool {
        self.fanout.as_ref().is_some_and(Fanout::wants_notices)
    }

    fn deliveries_done(&mut self, last_timestamp_ns: u64) {
        if let Some(fanout) = self.fanout.take() {
            self.finished = Some(fanout.finish(last_timestamp_ns));
        }
    }

    fn suppressed(&mut self, interface: &InputInterface, copy: &SuppressedCopy, flow: &Delivery) {
        let Some(fanout) = &mut self.fanout else {
            return;
        };
        let interface = Self::interface_id(&mut self.ids, fanout, interface);
        fanout.suppressed(SuppressedNotice {
            tap: copy.tap,
            interface,
            timestamp_ns: copy.timestamp_ns,
            flow: flow.flow,
            flow_hash: flow.flow_hash,
        });
    }
}

/// Runs `ringsieve read`.
pub fn read(settings: &ReadSettings) -> anyhow::Result<ExitCode> {
    // Files have no host to take HOME_NET from: Suricata's default, unless
    // --var sets it.
    let detection = match &settings.pipeline.detection {
        Some(detection) => Some(Detection::load(detection, &[])?),
        None => None,
    };
    let eve = open_eve(&settings.pipeline).with_context(|| {
        format!(
            "opening the EVE output {}",
            settings.pipeline.eve.as_deref().unwrap_or_default()
        )
    })?;
    let pool_config = &settings.pipeline.pool;
    let interfaces = Arc::new(InterfaceTable::new());
    let pool = WorkerPool::start(pool_config, Arc::clone(&interfaces), |_| {
        HostWorker::new(
            &settings.pipeline,
            eve.as_ref(),
            detection.as_ref(),
            None,
            pool_config.workers,
        )
    })
    .context("starting the worker threads")?;
    let pcap = match &settings.pcap_out {
        Some(path) => {
            let out: Box<dyn Write> = if path == "-" {
                Box::new(io::stdout().lock())
            } else {
                Box::new(File::create(path).with_context(|| format!("creating {path}"))?)
            };
            let writer = PcapngWriter::new(BufWriter::with_capacity(1 << 16, out), "ringsieve read")
                .with_context(|| format!("writing {path}"))?;
            Some(PcapngSink {
                writer,
                ids: HashMap::new(),
            })
        }
        None => None,
    };
    let mut sink = ReadSink {
        pcap,
        fanout: Some(pool.fanout()),
        finished: None,
        ids: Vec::new(),
    };
    let (report, result) = offline::run(&settings.files, &settings.offline, &mut sink);
    // Finished at the end of the deliveries (ReadSink::deliveries_done).
    let mut fanout = match (sink.finished.take(), sink.fanout.take()) {
        (Some(finished), _) => finished,
        (None, Some(fanout)) => fanout.finish(report.last_timestamp_ns),
        (None, None) => FanoutReport::default(),
    };
    let pool_report = pool.finish();
    pool_report.settle(&mut fanout);

    let error = result.err();
    let mut summary = summarize(&report, &fanout, &interfaces);
    let mut failed = !pool_report.panicked.is_empty();
    if let Some(error) = &error {
        eprintln!("ringsieve: {error}");
        failed = true;
    }
    if let Some(pcap) = sink.pcap {
        let path = settings.pcap_out.clone().unwrap_or_default();
        let written = pcap.writer.packets_written();
        if let Err(error) = pcap
            .writer
            .finish()
            .and_then(|mut w| w.flush())
            .with_context(|| format!("finishing {path}"))
        {
            eprintln!("ringsieve: {error:#}");
            failed = true;
        }
        summary["pcap"] = json!({ "file": path, "packets_written": written });
    }
    if let Some(writer) = &eve {
        if let Err(error) = writer.finish() {
            eprintln!("ringsieve: finishing the EVE output: {error}");
            failed = true;
        }
    }
    summary["workers"] = workers_json(pool_config, &pool_report.workers, &pool_report.panicked);
    if let Some(detection) = &detection {
        summary["detection"] = detection.summary_json();
    }
    eprintln!("{summary}");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The pipeline's ifindex of an input interface: its id, so interfaces of
/// several files that share a name stay apart.
fn input_ifindex(interface: &InputInterface) -> i32 {
    i32::try_from(interface.id).unwrap_or(i32::MAX)
}

/// The summary: per input interface, then the dedup's counters.
fn summarize(report: &OfflineReport, fanout: &FanoutReport, table: &InterfaceTable) -> serde_json::Value {
    let mut interfaces = BTreeMap::new();
    let mut total = Accounting::default();
    for (interface, counts) in report.interfaces.iter().zip(&report.counts) {
        // Two files may name an interface alike: the later ones get a suffix.
        let mut name = interface.name.clone();
        let mut n = 1;
        while interfaces.contains_key(&name) {
            n += 1;
            name = format!("{}#{n}", interface.name);
        }
        // What reached the workers: each input interface is one pipeline
        // interface (its ifindex is the input's id).
        let handed = (0..table.len())
            .map(|index| InterfaceId(index as u16))
            .find(|&id| table.get(id).ifindex == input_ifindex(interface))
            .map(|id| fanout.interface(id))
            .unwrap_or_default();
        let row = Accounting {
            captured: counts.captured,
            delivered: handed.delivered,
            duplicates: counts.duplicates,
            malformed: counts.malformed,
            queue_full: handed.drops.queue_full,
            worker_stopped: handed.drops.worker_stopped,
        };
        total.add(&row);
        let mut entry = json!({ "role": interface.role.name(), "file": interface.file });
        row.write(&mut entry);
        interfaces.insert(name, entry);
    }
    let mut total_entry = json!({});
    total.write(&mut total_entry);
    let total = total_entry;
    let label = |id: flow::TapId| {
        report
            .taps
            .get(usize::from(id.0))
            .cloned()
            .unwrap_or_else(|| format!("tap{}", id.0))
    };
    json!({
        "interfaces": interfaces,
        "total": total,
        "dedup": dedup_json(&report.dedup, report.nat_bindings, label),
    })
}
