//! `ringsieve run`: open a ring on every requested interface (one per capture
//! thread, in a fanout group when there are several threads), capture until
//! SIGINT or SIGTERM, dedup, fan the delivered packets out to the IDS worker
//! threads (flow records to EVE, packets to pcapng), and print the counters
//! as one JSON object on the last line of stderr.
//!
//! On a stop signal the capture threads drain their rings and release their
//! holds, the workers drain their queues and end every open flow (reason
//! "shutdown"), and the files are flushed and closed, so every EVE line is
//! complete.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use af_packet::{CaptureRing, CloseReason, FanoutGroup, Interface, RingSet, UnboundRing};
use anyhow::Context;
use flow::{FlowHasher, SieveShared, TapRegistry, TapRole};
use pipeline::capture_thread::LivePublisher;
use pipeline::capture_thread::RingCommand;
use pipeline::clock::wall_clock_ns;
use pipeline::dedup_stage::{DedupReport, DedupStage};
use pipeline::fanout_stage::{EveryCopy, LiveFanout};
use pipeline::host_book::HostBook;
use pipeline::interfaces::InterfaceTable;
use pipeline::live::LiveCounters;
use pipeline::worker_pool::{FanoutReport, WorkerPool};
use pipeline::{CaptureReport, CaptureThreadConfig, PacketSink};
use serde_json::json;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::accounting::Accounting;
use crate::dedup_summary::dedup_json;
use crate::detection::Detection;
use crate::host::{ring_config, ring_role, DiscoveryCounters, Host, HostChange};
use crate::host_worker::{live_json, open_eve, workers_json, HostWorker};
use crate::live_flows::{LiveFlows, PublishingWorker};
use crate::metrics::MetricsServer;
use crate::pcap_worker::PcapOutput;
use crate::settings::{RunSettings, SettingError};

/// What a capture thread of `ringsieve run` is started with, whatever its
/// sink.
struct CaptureThread {
    index: usize,
    config: CaptureThreadConfig,
    stop: Arc<AtomicBool>,
    /// Capture threads still running; this one takes itself off at its end.
    running: Arc<AtomicUsize>,
    commands: Receiver<RingCommand>,
    publisher: LivePublisher,
}

impl CaptureThread {
    /// Starts the thread, capturing into `sink` (the capture loop is
    /// generic over it, so each PacketSink method reaches it directly).
    fn spawn<S: PacketSink + 'static>(self, sink: S) -> std::io::Result<std::thread::JoinHandle<CaptureReport>> {
        let Self {
            index,
            config,
            stop,
            running,
            commands,
            publisher,
        } = self;
        std::thread::Builder::new()
            .name(format!("capture-{index}"))
            .spawn(move || {
                let report = match RingSet::new() {
                    Ok(set) => pipeline::capture_thread::run_controlled(
                        set,
                        config,
                        &stop,
                        sink,
                        Some(commands),
                        Some(publisher),
                    ),
                    Err(error) => CaptureReport {
                        interfaces: Vec::new(),
                        error: Some(format!("creating the epoll set of a capture thread: {error}")),
                    },
                };
                running.fetch_sub(1, Ordering::AcqRel);
                report
            })
    }
}

/// The names of the interfaces the capture threads had rings on, each once.
fn interface_names(reports: &[CaptureReport]) -> std::collections::BTreeSet<String> {
    reports
        .iter()
        .flat_map(|r| &r.interfaces)
        .map(|r| r.interface.name().to_owned())
        .collect()
}

/// The rings of every capture thread: opened here (on the thread that
/// discovered the interface), handed to the threads through their control
/// channels, one ring per interface and thread, in one fanout group per
/// interface when there are several threads.
struct Rings<'s> {
    settings: &'s RunSettings,
    senders: Vec<Sender<RingCommand>>,
    receivers: Vec<Receiver<RingCommand>>,
    groups: HashMap<i32, FanoutGroup>,
    /// The role each captured interface had, by name, for the summary.
    roles: BTreeMap<String, TapRole>,
    /// Rings open per interface, by index.
    open_rings: HashMap<i32, usize>,
    /// Rings opened and released, and the time from reading an interface's
    /// discovery event to its rings being open.
    counters: Arc<DiscoveryCounters>,
    /// Container-veth rings prepared ahead by a thread of their own, so a
    /// new container's veth is captured as soon as it appears.
    spares: Receiver<UnboundRing>,
}

impl<'s> Rings<'s> {
    fn new(settings: &'s RunSettings, counters: Arc<DiscoveryCounters>) -> Self {
        let (senders, receivers) = (0..settings.capture_threads).map(|_| mpsc::channel()).unzip();
        Self {
            settings,
            senders,
            receivers,
            groups: HashMap::new(),
            roles: BTreeMap::new(),
            open_rings: HashMap::new(),
            counters,
            spares: spare_rings(settings),
        }
    }

    fn take_receivers(&mut self) -> Vec<Receiver<RingCommand>> {
        std::mem::take(&mut self.receivers)
    }

    /// Opens interface `ifindex`'s rings and hands them to the threads; a
    /// veth takes prepared container-veth rings when there are.
    fn open(
        &mut self,
        ifindex: i32,
        name: &str,
        role: TapRole,
        veth: bool,
        seen: Option<Instant>,
    ) -> anyhow::Result<()> {
        let settings = self.settings;
        let interface = Interface::new(name, ifindex);
        // Sized once, by the role it has now: a later role change does not
        // resize it (see `RingGeometry::for_role`).
        let sized_as = crate::host::sized_as(role, veth);
        let config = ring_config(sized_as, &settings.geometry, settings.promiscuous);
        let group = self
            .groups
            .entry(ifindex)
            .or_insert_with(|| FanoutGroup::new(settings.fanout));
        let mut opened = Vec::with_capacity(self.senders.len());
        for _ in 0..self.senders.len() {
            let spare = if sized_as == TapRole::ContainerVeth {
                self.spares.try_recv().ok()
            } else {
                None
            };
            let ring = match spare {
                Some(spare) => spare.bind(&interface),
                None => CaptureRing::open(&interface, &config),
            }
            .with_context(|| format!("opening a ring on {name}"))?;
            if self.senders.len() > 1 {
                ring.join_fanout(group)
                    .with_context(|| format!("joining the fanout group of {name}"))?;
            }
            opened.push(ring);
        }
        self.counters
            .rings_opened(opened.len(), seen.map(|seen| seen.elapsed()));
        self.open_rings.insert(ifindex, opened.len());
        if let Some(seen) = seen {
            tracing::debug!(
                interface = name,
                after_event_us = seen.elapsed().as_micros() as u64,
                "rings open"
            );
        }
        for (ring, sender) in opened.into_iter().zip(&self.senders) {
            let _ = sender.send(RingCommand::Add(ring));
        }
        self.roles.insert(name.to_owned(), role);
        tracing::info!(
            interface = name,
            role = %ring_role(role),
            ring = %config.geometry,
            rings = self.senders.len(),
            promiscuous = config.promiscuous,
            "capturing"
        );
        Ok(())
    }

    /// Acts on a discovery change; a ring that cannot be opened (the
    /// interface went away meanwhile) is logged, not fatal.
    fn apply(&mut self, change: HostChange) {
        match change {
            HostChange::Capture {
                ifindex,
                name,
                role,
                veth,
                seen,
            } => {
                if let Err(error) = self.open(ifindex, &name, role, veth, Some(seen)) {
                    tracing::warn!(interface = %name, error = format!("{error:#}"), "not captured");
                }
            }
            HostChange::Updated { ifindex, name, role } => {
                if self.open_rings.contains_key(&ifindex) {
                    self.roles.insert(name, role);
                }
                for sender in &self.senders {
                    let _ = sender.send(RingCommand::Updated { ifindex });
                }
            }
            HostChange::Release { ifindex, name } => {
                self.groups.remove(&ifindex);
                if let Some(rings) = self.open_rings.remove(&ifindex) {
                    self.counters.rings_released(rings);
                }
                for sender in &self.senders {
                    let _ = sender.send(RingCommand::Remove {
                        ifindex,
                        reason: CloseReason::InterfaceGone,
                    });
                }
                tracing::info!(interface = %name, "released");
            }
        }
    }
}

/// Starts the thread that keeps container-veth rings ready (socket, ring
/// memory and mapping done, not bound): it blocks once it has
/// `--spare-rings` per capture thread waiting, and ends when the receiver
/// is dropped. It runs in the namespace of the calling thread, where the
/// rings' sockets are then created. With `--spare-rings 0` there is no such
/// thread: each new veth's ring is prepared when it appears.
fn spare_rings(settings: &RunSettings) -> Receiver<UnboundRing> {
    let waiting = settings.spare_rings * settings.capture_threads;
    let (sender, receiver) = mpsc::sync_channel(waiting.saturating_sub(1));
    if waiting == 0 {
        return receiver;
    }
    let config = ring_config(TapRole::ContainerVeth, &settings.geometry, settings.promiscuous);
    let spawned = std::thread::Builder::new()
        .name("spare-rings".to_owned())
        .spawn(move || loop {
            match UnboundRing::prepare(&config, "a spare container-veth ring") {
                Ok(ring) => {
                    if sender.send(ring).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "no spare rings: new veths get theirs when they appear");
                    return;
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no spare rings: new veths get theirs when they appear");
    }
    receiver
}

/// Runs the capture described by `settings` until a stop signal.
pub fn run(settings: &RunSettings, origin: &crate::settings::Origin<'_>) -> anyhow::Result<ExitCode> {
    // Installed first, so a signal that arrives while rings are opening is
    // kept and ends the capture as soon as it starts.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let stop = Arc::new(AtomicBool::new(false));

    // Discovery reads this namespace's interfaces now and follows them:
    // every selected interface is captured, those that appear later too.
    let book = Arc::new(HostBook::default());
    let mut host =
        Host::open(settings.selection.clone(), Arc::clone(&book)).context("reading the interfaces (rtnetlink)")?;
    let initial = host.initial();
    // The rules, before any ring: a file that cannot be read ends the run
    // here (exit 2). HOME_NET: the subnets of the host's bridges.
    let detection = match &settings.pipeline.detection {
        Some(detection) => Some(Detection::load(
            detection,
            &crate::addresses::bridge_subnets(&host.bridges()),
        )?),
        None => None,
    };
    for name in &settings.literal_interfaces {
        if !initial.iter().any(|(_, n, _)| n == name) {
            return Err(SettingError {
                source: origin.of("interfaces"),
                value: name.clone(),
                expected: "an existing, non-loopback interface (or a glob such as veth*)".to_owned(),
            }
            .into());
        }
    }
    if initial.is_empty() {
        tracing::warn!("no interface to capture yet: waiting for one to appear");
    }

    let pcap = match &settings.pcap_out {
        Some(path) => Some(
            PcapOutput::create(path, initial.iter().map(|(_, name, _)| name.as_str())).map_err(|e| SettingError {
                source: origin.of("pcap_out"),
                value: path.clone(),
                expected: format!("a file that can be created ({e})"),
            })?,
        ),
        None => None,
    };
    let eve = open_eve(&settings.pipeline).map_err(|e| SettingError {
        source: origin.of("eve"),
        value: settings.pipeline.eve.clone().unwrap_or_default(),
        expected: format!("a file that can be opened for appending, or - ({e})"),
    })?;

    // Every initial ring is open (so capturing) before any thread starts
    // reading; the threads take them from their control channels.
    let mut rings = Rings::new(settings, host.counters());
    for (ifindex, name, role) in &initial {
        rings.open(*ifindex, name, *role, host.is_veth(*ifindex), None)?;
    }
    // Containers are looked up from here on, on a thread of their own.
    host.start_attribution();

    let pool_config = &settings.pipeline.pool;
    let interfaces = Arc::new(InterfaceTable::new());
    let live_flows = LiveFlows::new(pool_config.workers.max(1));
    let pool = WorkerPool::start(pool_config, Arc::clone(&interfaces), |index| {
        let worker = HostWorker::new(
            &settings.pipeline,
            eve.as_ref(),
            detection.as_ref(),
            pcap.as_ref().map(PcapOutput::worker),
            pool_config.workers,
        );
        PublishingWorker::new(worker, Arc::clone(&live_flows), index)
    })
    .context("starting the worker threads")?;

    // The main thread waits for a signal, or for the last capture thread to
    // end on its own (every interface gone), writing stats events meanwhile.
    let running = Arc::new(AtomicUsize::new(settings.capture_threads));
    let registry = Arc::new(TapRegistry::new());
    // The host's own addresses: a packet from one of them going out of a
    // container veth is delivered without a hold.
    let host_addresses = crate::addresses::host_addresses();
    let dedup = settings.dedup.as_ref().map(|config| {
        let config = flow::SieveConfig {
            host_addresses: host_addresses.clone(),
            ..config.clone()
        };
        (SieveShared::new(&config), Arc::new(Mutex::new(DedupReport::default())))
    });
    // With the dedup off, flows are hashed by one hasher of random keys,
    // shared by every capture thread.
    let hasher = FlowHasher::new();
    let fanout_report = Arc::new(Mutex::new(FanoutReport::default()));
    let live = Arc::new(LiveCounters::new());
    let retire_timeout_ms = settings.geometry.retire_timeout_ms;
    let mut threads = Vec::new();
    for (index, commands) in rings.take_receivers().into_iter().enumerate() {
        let fanout = LiveFanout::new(pool.fanout(), Arc::clone(&book), Arc::clone(&fanout_report));
        let config = CaptureThreadConfig {
            cpu: settings.capture_cpus.as_ref().map(|cpus| cpus[index]),
            // Holds end, and batches go to the workers, at the end of each
            // turn: turn often.
            poll_timeout: std::time::Duration::from_millis(10),
            ..CaptureThreadConfig::default()
        };
        let thread = CaptureThread {
            index,
            config,
            stop: Arc::clone(&stop),
            running: Arc::clone(&running),
            commands,
            publisher: LivePublisher {
                counters: Arc::clone(&live),
                slot: index,
            },
        };
        // Each kind of sink gets a capture loop of its own type: no layer
        // between the loop and the stage, so every PacketSink call (packets,
        // role and container updates, closes, live counts) reaches the stage
        // as the loop makes it.
        threads.push(match &dedup {
            Some((shared, report)) => thread.spawn(DedupStage::new(
                shared,
                Arc::clone(&registry),
                Arc::clone(&book),
                retire_timeout_ms,
                Arc::clone(report),
                fanout,
            )?)?,
            None => thread.spawn(EveryCopy::new(fanout, hasher.clone(), Arc::clone(&registry)))?,
        });
    }

    let conntrack_live = Arc::new(Mutex::new(crate::nat_feed::NatFeedReport::default()));
    let nat_feed = match (&dedup, settings.conntrack) {
        (Some((shared, _)), true) => Some(
            crate::nat_feed::start(Arc::clone(shared), Arc::clone(&stop), Arc::clone(&conntrack_live))
                .context("starting the conntrack thread")?,
        ),
        _ => None,
    };
    let started = Instant::now();
    let _metrics = match settings.metrics {
        Some(address) => {
            let (live, pool) = (Arc::clone(&live), pool.watcher());
            let (discovery, flows) = (host.counters(), Arc::clone(&live_flows));
            let (nat, registry) = (
                dedup.as_ref().map(|(shared, _)| Arc::clone(shared)),
                Arc::clone(&registry),
            );
            let conntrack = nat_feed.is_some().then(|| Arc::clone(&conntrack_live));
            let server = MetricsServer::start(address, move || {
                let dedup = nat.as_ref().map(|shared| {
                    dedup_json(&live.engine().unwrap_or_default(), shared.nat().learned(), |id| {
                        registry.label(id)
                    })
                });
                let conntrack = conntrack
                    .as_ref()
                    .map(|report| report.lock().unwrap_or_else(PoisonError::into_inner).summary());
                crate::metrics::render(&crate::metrics::Sources {
                    interfaces: &live.snapshot(),
                    pool: &pool.live(),
                    discovery: &discovery.snapshot(),
                    flows: &flows.snapshot(),
                    uptime_seconds: started.elapsed().as_secs_f64(),
                    dedup: dedup.as_ref(),
                    conntrack: conntrack.as_ref(),
                })
            })
            .map_err(|e| SettingError {
                source: origin.of("metrics"),
                value: address.to_string(),
                expected: format!("an address this host can listen on ({e})"),
            })?;
            tracing::info!(address = %server.address(), "serving Prometheus metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    tracing::info!(interfaces = initial.len(), "capture started");
    let mut next_stats = settings.pipeline.stats_interval.map(|every| started + every);
    loop {
        let mut stopping = false;
        for signal in signals.pending() {
            if signal == SIGHUP {
                match &detection {
                    // HOME_NET follows the bridges: a Docker network
                    // created since the start is in it.
                    Some(detection) => detection.reload(Some(&crate::addresses::bridge_subnets(&host.bridges()))),
                    None => tracing::info!("SIGHUP: no rules to reload"),
                }
            } else {
                tracing::info!(signal, "stopping: draining the rings and the worker queues");
                stopping = true;
            }
        }
        if stopping {
            break;
        }
        if running.load(Ordering::Acquire) == 0 {
            tracing::warn!("every capture thread ended: stopping");
            break;
        }
        if let (Some(due), Some(writer), Some(every)) = (next_stats, &eve, settings.pipeline.stats_interval) {
            if Instant::now() >= due {
                let mut stats = live_json(&pool.live(), &live.snapshot());
                stats["uptime"] = json!(started.elapsed().as_secs());
                writer.write_event(&eve::stats_event(wall_clock_ns(), stats));
                // A reader tailing the file sees each stats event whole, now.
                if let Err(error) = writer.flush() {
                    tracing::warn!(%error, "flushing the EVE output");
                }
                next_stats = Some(due + every);
            }
        }
        // Waits for discovery events up to 50 ms, the loop's tick, or 1 ms
        // while a container lookup is on its way: a new container's flows
        // are named from the moment its answer is booked.
        let tick = if host.awaiting_containers() { 1 } else { 50 };
        match host.poll(std::time::Duration::from_millis(tick)) {
            Ok(changes) => {
                for change in changes {
                    rings.apply(change);
                }
                // Containers are named once their veths are captured, and
                // looked for again while their ids are unknown.
                for change in host.attribute_pending() {
                    rings.apply(change);
                }
            }
            Err(error) => {
                tracing::error!(%error, "rtnetlink failed: no more interfaces are followed");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
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
    let nat_feed = nat_feed.map(|thread| thread.join().unwrap_or_default());
    let mut pool_report = crate::live_flows::host_workers(pool.finish());
    // The workers are done: their handles on the pcapng file go, so it can
    // be finished.
    for (worker, _) in &mut pool_report.workers {
        worker.pcap = None;
    }
    let mut fanout = std::mem::take(&mut *fanout_report.lock().unwrap_or_else(PoisonError::into_inner));
    pool_report.settle(&mut fanout);
    let mut failed = reports.iter().any(|r| r.error.is_some()) || !pool_report.panicked.is_empty();
    let pcap_summary = match pcap {
        Some(output) => Some(output.finish().context("finishing the pcapng file")?),
        None => None,
    };
    if let Some(writer) = &eve {
        if let Err(error) = writer.finish() {
            eprintln!("ringsieve: finishing the EVE output: {error}");
            failed = true;
        }
    }

    let mut summary = summarize(&reports, &rings.roles, pcap_summary);
    let dedup_report = dedup
        .as_ref()
        .map(|(_, report)| std::mem::take(&mut *report.lock().unwrap_or_else(PoisonError::into_inner)));
    account(&mut summary, &reports, dedup_report.as_ref(), &fanout, &interfaces);
    if let (Some((shared, _)), Some(report)) = (&dedup, &dedup_report) {
        summary["dedup"] = dedup_json(&report.counters, shared.nat().learned(), |id| registry.label(id));
    }
    summary["workers"] = workers_json(pool_config, &pool_report.workers, &pool_report.panicked);
    if let Some(detection) = &detection {
        summary["detection"] = detection.summary_json();
    }
    if let Some(feed) = &nat_feed {
        summary["conntrack"] = feed.summary();
    }
    summary["discovery"] = host.summary();
    eprintln!("{summary}");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Adds the accounting of every interface to the summary: what the dedup
/// did with its packets and what reached the workers, and the same in
/// total, where `captured = delivered + duplicates + malformed +
/// queue_drops` holds exactly (`balanced`).
fn account(
    summary: &mut serde_json::Value,
    reports: &[CaptureReport],
    dedup: Option<&DedupReport>,
    fanout: &FanoutReport,
    interfaces: &InterfaceTable,
) {
    let mut total = Accounting::default();
    for name in interface_names(reports) {
        let name = name.as_str();
        let captured: u64 = reports
            .iter()
            .flat_map(|r| &r.interfaces)
            .filter(|r| r.interface.name() == name)
            .map(|r| r.captured)
            .sum();
        let (duplicates, malformed) = dedup
            .and_then(|d| d.interfaces.get(name))
            .map_or((0, 0), |c| (c.duplicates, c.malformed));
        let mut handed = pipeline::worker_pool::InterfaceFanout::default();
        for index in 0..interfaces.len() {
            let id = pipeline::interfaces::InterfaceId(index as u16);
            if interfaces.get(id).name == name {
                let counts = fanout.interface(id);
                handed.delivered += counts.delivered;
                handed.drops.add(counts.drops);
            }
        }
        let row = Accounting {
            captured,
            delivered: handed.delivered,
            duplicates,
            malformed,
            queue_full: handed.drops.queue_full,
            worker_stopped: handed.drops.worker_stopped,
        };
        total.add(&row);
        if let Some(entry) = summary["interfaces"].get_mut(name) {
            row.write(entry);
        }
    }
    let mut out = json!({});
    total.write(&mut out);
    summary["total"] = out;
}

/// The exit summary: per-interface counters summed over the rings of every
/// capture thread.
fn summarize(
    reports: &[CaptureReport],
    roles: &BTreeMap<String, TapRole>,
    pcap: Option<crate::pcap_worker::PcapSummary>,
) -> serde_json::Value {
    let mut interfaces = BTreeMap::new();
    for name in interface_names(reports) {
        let name = name.as_str();
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
                "role": roles.get(name).map_or("other", |role| ring_role(*role).as_str()),
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
