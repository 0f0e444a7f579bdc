//! `ringsieve run`: open a ring on every requested interface (one per capture
//! thread, in a fanout group when there are several threads), capture until
//! SIGINT or SIGTERM, write packets to pcapng, and print the counters as one
//! JSON object on the last line of stderr.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use af_packet::{CaptureRing, FanoutGroup, Interface, InterfaceRole, Packet, RingConfig, RingSet};
use anyhow::Context;
use flow::{SieveShared, TapRegistry, TapRole};
use pipeline::dedup_stage::{tap_role, DedupReport, DedupStage, DeliveredSink, LivePacket};
use pipeline::{CaptureReport, CaptureThreadConfig, PacketSink};
use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::dedup_summary::dedup_json;
use crate::interface_roles::role_of;
use crate::pcap_sink::{PcapOutput, PcapSink};
use crate::settings::{RunSettings, SettingError};

/// Where a capture thread's packets end: pcapng when asked, otherwise
/// counted only.
enum Output {
    Pcap(PcapSink),
    Discard,
}

impl PacketSink for Output {
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>) {
        if let Self::Pcap(sink) = self {
            PacketSink::packet(sink, interface, packet);
        }
    }

    fn end_of_turn(&mut self) {
        if let Self::Pcap(sink) = self {
            PacketSink::end_of_turn(sink);
        }
    }

    fn finish(&mut self) {
        if let Self::Pcap(sink) = self {
            PacketSink::finish(sink);
        }
    }
}

impl DeliveredSink for Output {
    fn delivered(&mut self, packet: &LivePacket<'_>) {
        if let Self::Pcap(sink) = self {
            sink.delivered(packet);
        }
    }

    fn end_of_turn(&mut self) {
        if let Self::Pcap(sink) = self {
            DeliveredSink::end_of_turn(sink);
        }
    }

    fn finish(&mut self) {
        if let Self::Pcap(sink) = self {
            DeliveredSink::finish(sink);
        }
    }
}

/// The sink of a capture thread: every copy to the output, or through the
/// dedup first.
enum Sink {
    Every(Output),
    Dedup(Box<DedupStage<Output>>),
}

impl PacketSink for Sink {
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>) {
        match self {
            Self::Every(output) => output.packet(interface, packet),
            Self::Dedup(stage) => stage.packet(interface, packet),
        }
    }

    fn end_of_turn(&mut self) {
        match self {
            Self::Every(output) => PacketSink::end_of_turn(output),
            Self::Dedup(stage) => stage.end_of_turn(),
        }
    }

    fn finish(&mut self) {
        match self {
            Self::Every(output) => PacketSink::finish(output),
            Self::Dedup(stage) => stage.finish(),
        }
    }
}

/// One interface to capture, with its role and ring configuration.
struct Target {
    interface: Interface,
    role: InterfaceRole,
    config: RingConfig,
}

/// Runs the capture described by `settings` until a stop signal.
pub fn run(settings: &RunSettings, origin: &crate::settings::Origin<'_>) -> anyhow::Result<ExitCode> {
    // Installed first, so a signal that arrives while rings are opening is
    // kept and ends the capture as soon as it starts.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let stop = Arc::new(AtomicBool::new(false));

    let mut targets = Vec::new();
    for name in &settings.interfaces {
        let interface = Interface::by_name(name).map_err(|e| SettingError {
            source: origin.of("interfaces"),
            value: name.clone(),
            expected: format!("an existing interface ({e})"),
        })?;
        let role = role_of(name);
        let mut config = RingConfig::for_role(role);
        config.geometry = settings.geometry.apply(config.geometry);
        config.promiscuous = settings.promiscuous;
        targets.push(Target {
            interface,
            role,
            config,
        });
    }

    let output = match &settings.pcap_out {
        Some(path) => Some(
            PcapOutput::create(path, targets.iter().map(|t| t.interface.name())).map_err(|e| SettingError {
                source: origin.of("pcap_out"),
                value: path.clone(),
                expected: format!("a file that can be created ({e})"),
            })?,
        ),
        None => None,
    };

    // Every ring exists before any thread starts reading, so the first
    // packets of every interface are captured.
    let groups: Vec<FanoutGroup> = targets.iter().map(|_| FanoutGroup::new(settings.fanout)).collect();
    let mut ring_sets = Vec::new();
    for _ in 0..settings.capture_threads {
        let mut set = RingSet::new().context("creating the epoll set of a capture thread")?;
        for (target, group) in targets.iter().zip(&groups) {
            let ring = CaptureRing::open(&target.interface, &target.config)?;
            if settings.capture_threads > 1 {
                ring.join_fanout(group)
                    .with_context(|| format!("joining the fanout group of {}", target.interface))?;
            }
            set.add(ring)?;
        }
        ring_sets.push(set);
    }
    for target in &targets {
        tracing::info!(
            interface = target.interface.name(),
            role = %target.role,
            ring = %target.config.geometry,
            rings = settings.capture_threads,
            promiscuous = target.config.promiscuous,
            "capturing"
        );
    }

    // The main thread sleeps until a signal, or until the last capture thread
    // ends on its own (every interface gone), which closes `signals`.
    let signal_handle = signals.handle();
    let running = Arc::new(AtomicUsize::new(ring_sets.len()));
    let dedup = settings.dedup.as_ref().map(|config| {
        let roles: HashMap<String, TapRole> = targets
            .iter()
            .map(|t| (t.interface.name().to_owned(), tap_role(t.role)))
            .collect();
        (
            SieveShared::new(config),
            Arc::new(TapRegistry::new()),
            Arc::new(roles),
            Arc::new(Mutex::new(DedupReport::default())),
        )
    });
    let retire_timeout_ms = targets
        .iter()
        .map(|t| t.config.geometry.retire_timeout_ms)
        .max()
        .unwrap_or(0);
    let mut threads = Vec::new();
    for (index, set) in ring_sets.into_iter().enumerate() {
        let output = match &output {
            Some(output) => Output::Pcap(output.sink()),
            None => Output::Discard,
        };
        let sink = match &dedup {
            Some((shared, registry, roles, report)) => Sink::Dedup(Box::new(DedupStage::new(
                shared,
                Arc::clone(registry),
                Arc::clone(roles),
                retire_timeout_ms,
                Arc::clone(report),
                output,
            )?)),
            None => Sink::Every(output),
        };
        let config = CaptureThreadConfig {
            cpu: settings.capture_cpus.as_ref().map(|cpus| cpus[index]),
            // Holds end on the turn after their window: turn often.
            poll_timeout: if dedup.is_some() {
                std::time::Duration::from_millis(10)
            } else {
                CaptureThreadConfig::default().poll_timeout
            },
            ..CaptureThreadConfig::default()
        };
        let (stop, running, signal_handle) = (Arc::clone(&stop), Arc::clone(&running), signal_handle.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("capture-{index}"))
                .spawn(move || {
                    let report = pipeline::capture_thread::run(set, config, &stop, sink);
                    if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                        signal_handle.close();
                    }
                    report
                })?,
        );
    }

    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stopping: draining the rings");
    }
    stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for thread in threads {
        reports.push(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a capture thread panicked"))?,
        );
    }
    let pcap_summary = match output {
        Some(output) => Some(output.finish().context("finishing the pcapng file")?),
        None => None,
    };

    let mut summary = summarize(&targets, &reports, pcap_summary);
    if let Some((shared, registry, _, report)) = &dedup {
        let report = report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        add_dedup(&mut summary, &report, shared, registry);
    }
    eprintln!("{summary}");
    let failed = reports.iter().any(|r| r.error.is_some());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Adds the dedup's counters to the summary: per interface (`delivered`,
/// `duplicates`, `malformed`) and a `dedup` object as `ringsieve read`
/// prints it.
fn add_dedup(summary: &mut serde_json::Value, report: &DedupReport, shared: &SieveShared, registry: &TapRegistry) {
    for (name, counts) in &report.interfaces {
        if let Some(entry) = summary["interfaces"].get_mut(name) {
            entry["delivered"] = json!(counts.delivered);
            entry["duplicates"] = json!(counts.duplicates);
            entry["malformed"] = json!(counts.malformed);
        }
    }
    summary["dedup"] = dedup_json(&report.counters, shared.nat().learned(), |id| registry.label(id));
}

/// The exit summary: per-interface counters summed over the rings of every
/// capture thread.
fn summarize(
    targets: &[Target],
    reports: &[CaptureReport],
    pcap: Option<crate::pcap_sink::PcapSummary>,
) -> serde_json::Value {
    let mut interfaces = BTreeMap::new();
    for target in targets {
        let name = target.interface.name();
        let rings: Vec<_> = reports
            .iter()
            .flat_map(|r| &r.interfaces)
            .filter(|r| r.interface.name() == name)
            .collect();
        let sum = |f: &dyn Fn(&pipeline::InterfaceReport) -> u64| rings.iter().map(|r| f(r)).sum::<u64>();
        let closed = rings.iter().find_map(|r| r.closed).map(|reason| reason.to_string());
        interfaces.insert(
            name.to_owned(),
            json!({
                "received": sum(&|r| r.counters.received()),
                "kernel_drops": sum(&|r| r.counters.drops),
                "freezes": sum(&|r| r.counters.freezes),
                "captured": sum(&|r| r.captured),
                "malformed_blocks": sum(&|r| r.malformed_blocks),
                "role": target.role.as_str(),
                "rings": rings.len(),
                "ring_bytes": rings.iter().map(|r| r.geometry.memory_bytes()).sum::<u64>(),
                "closed": closed,
            }),
        );
    }
    let mut summary = json!({ "interfaces": interfaces });
    if let Some(pcap) = pcap {
        summary["pcap"] = json!({ "file": pcap.path, "packets_written": pcap.packets_written });
    }
    summary
}
