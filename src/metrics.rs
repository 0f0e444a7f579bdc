//! `--metrics ADDR`: a Prometheus text endpoint (`GET /metrics`, exposition
//! format 0.0.4) on a thread of its own, rendering the capture's live
//! counters at each scrape: per interface (kernel, freezes, malformed
//! blocks, captured, delivered, duplicates, malformed, copies held now,
//! queue drops by reason), the worker pool (queued, dropped), per worker
//! (packets, latency from kernel timestamp to receipt as a histogram and as
//! quantiles, and with EVE output the flow tracker's packets, flows and
//! records), the dedup engines (every counter of the exit summary's
//! `dedup` object, duplicates by tap pair), conntrack (every counter of its
//! `conntrack` object) and the discovery (interfaces that appeared and went, role
//! changes, containers named, rtnetlink overflows and resyncs, rings opened
//! and released, the time from an interface's event to its rings being
//! open).
//!
//! The HTTP side is `tiny_http` (a small, well-kept synchronous server: one
//! endpoint, no async runtime needed); the text format is written here, as
//! the metrics are snapshots of counters the pipeline already keeps rather
//! than a registry of their own.

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;

use eve::FlowTrackerCounters;
use pipeline::live::LiveSnapshot;
use pipeline::worker_pool::{PoolLive, LATENCY_BUCKET_BOUNDS_NS};

use crate::host::DiscoverySnapshot;

/// Parses `--metrics`: `PORT`, `:PORT` (both on 127.0.0.1), `HOST:PORT` or
/// `[V6]:PORT`.
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let with_host = match text.strip_prefix(':') {
        Some(port) => format!("127.0.0.1:{port}"),
        None if text.parse::<u16>().is_ok() => format!("127.0.0.1:{text}"),
        None => text.to_owned(),
    };
    with_host
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| "PORT, :PORT, HOST:PORT or [IPV6]:PORT (a host alone binds nothing)".to_owned())
}

/// The running endpoint.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    address: SocketAddr,
}

impl MetricsServer {
    /// Listens on `address` and answers each scrape with `render()`.
    pub fn start(
        address: SocketAddr,
        render: impl Fn() -> String + Send + 'static,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let server = Arc::new(tiny_http::Server::http(address)?);
        let bound = server.server_addr().to_ip().unwrap_or(address);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new().name("metrics".to_owned()).spawn(move || {
            for request in serving.incoming_requests() {
                let response = if request.method() == &tiny_http::Method::Get
                    && (request.url() == "/metrics" || request.url().starts_with("/metrics?"))
                {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4; charset=utf-8"[..],
                    )
                    .expect("a valid header");
                    tiny_http::Response::from_string(render()).with_header(header)
                } else {
                    tiny_http::Response::from_string("ringsieve serves GET /metrics\n").with_status_code(404)
                };
                if let Err(error) = request.respond(response) {
                    tracing::debug!(%error, "a metrics scrape ended early");
                }
            }
        })?;
        Ok(Self {
            server,
            thread: Some(thread),
            address: bound,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What one scrape renders.
pub struct Sources<'a> {
    /// The capture's counters per interface.
    pub interfaces: &'a LiveSnapshot,
    /// The workers' packets and latency.
    pub pool: &'a PoolLive,
    /// The discovery's counters.
    pub discovery: &'a DiscoverySnapshot,
    /// Each worker's flow-tracker counters (`None`: no tracker, or not
    /// published yet).
    pub flows: &'a [Option<FlowTrackerCounters>],
    /// Seconds since the capture started.
    pub uptime_seconds: f64,
    /// The dedup engines' counters, as the exit summary's `dedup` object
    /// (`None`: no dedup).
    pub dedup: Option<&'a serde_json::Value>,
    /// The conntrack feed's counters, as the exit summary's `conntrack`
    /// object (`None`: no feed).
    pub conntrack: Option<&'a serde_json::Value>,
}

/// The exposition text of `sources`.
pub fn render(sources: &Sources<'_>) -> String {
    let Sources {
        interfaces,
        pool,
        discovery,
        flows,
        uptime_seconds,
        dedup,
        conntrack,
    } = *sources;
    let mut out = String::with_capacity(8192);
    family(
        &mut out,
        "ringsieve_uptime_seconds",
        "gauge",
        "Seconds since the capture started.",
    );
    let _ = writeln!(out, "ringsieve_uptime_seconds {uptime_seconds}");
    type Field = fn(&pipeline::live::InterfaceLive) -> u64;
    let per_interface: [(&str, &str, Field); 8] = [
        (
            "ringsieve_kernel_packets_total",
            "Packets the kernel put in the interface's rings.",
            |c| c.kernel_received,
        ),
        (
            "ringsieve_kernel_drops_total",
            "Packets the kernel dropped because a ring was full.",
            |c| c.kernel_drops,
        ),
        (
            "ringsieve_freezes_total",
            "Times the kernel froze a ring's queue because it was full.",
            |c| c.freezes,
        ),
        (
            "ringsieve_malformed_blocks_total",
            "Ring blocks whose headers did not hold together, skipped whole.",
            |c| c.malformed_blocks,
        ),
        ("ringsieve_captured_total", "Packets read from the rings.", |c| {
            c.captured
        }),
        (
            "ringsieve_delivered_total",
            "Packets handed to an IDS worker's queue.",
            |c| c.delivered,
        ),
        (
            "ringsieve_duplicates_total",
            "Copies suppressed as duplicates of a copy seen at another tap point.",
            |c| c.duplicates,
        ),
        ("ringsieve_malformed_total", "Packets that did not parse.", |c| {
            c.malformed
        }),
    ];
    for (name, help, field) in per_interface {
        family(&mut out, name, "counter", help);
        for (interface, counts) in interfaces {
            let _ = writeln!(out, "{name}{{interface=\"{}\"}} {}", label(interface), field(counts));
        }
    }
    family(
        &mut out,
        "ringsieve_held",
        "gauge",
        "Copies of the interface the dedup holds now, waiting for a better copy.",
    );
    for (interface, counts) in interfaces {
        let _ = writeln!(
            out,
            "ringsieve_held{{interface=\"{}\"}} {}",
            label(interface),
            counts.held
        );
    }
    family(
        &mut out,
        "ringsieve_queue_drops_total",
        "counter",
        "Packets dropped between capture and a worker, by reason.",
    );
    for (interface, counts) in interfaces {
        for (reason, value) in [
            ("queue_full", counts.queue_full),
            ("worker_stopped", counts.worker_stopped),
        ] {
            let _ = writeln!(
                out,
                "ringsieve_queue_drops_total{{interface=\"{}\",reason=\"{reason}\"}} {value}",
                label(interface)
            );
        }
    }
    for (name, help, value) in [
        (
            "ringsieve_pool_queued_total",
            "Packets handed to the workers' queues.",
            pool.queued,
        ),
        (
            "ringsieve_pool_dropped_total",
            "Packets dropped at a full queue or a stopped worker.",
            pool.dropped,
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "ringsieve_worker_packets_total",
        "counter",
        "Packets an IDS worker took off its queue.",
    );
    for (index, (packets, _)) in pool.workers.iter().enumerate() {
        let _ = writeln!(out, "ringsieve_worker_packets_total{{worker=\"{index}\"}} {packets}");
    }
    family(
        &mut out,
        "ringsieve_worker_latency_seconds",
        "summary",
        "From a packet's kernel timestamp to its worker taking it, refreshed every second.",
    );
    for (index, (_, latency)) in pool.workers.iter().enumerate() {
        for (quantile, ns) in [
            ("0.5", latency.p50),
            ("0.99", latency.p99),
            ("0.999", latency.p999),
            ("1", latency.max),
        ] {
            let _ = writeln!(
                out,
                "ringsieve_worker_latency_seconds{{worker=\"{index}\",quantile=\"{quantile}\"}} {}",
                ns as f64 / 1e9
            );
        }
        let _ = writeln!(
            out,
            "ringsieve_worker_latency_seconds_sum{{worker=\"{index}\"}} {}",
            latency.sum_ns as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "ringsieve_worker_latency_seconds_count{{worker=\"{index}\"}} {}",
            latency.count
        );
    }
    let name = "ringsieve_worker_latency_histogram_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "From a packet's kernel timestamp to its worker taking it, refreshed every second (three significant digits).",
    );
    for (index, (_, latency)) in pool.workers.iter().enumerate() {
        for (bound, count) in LATENCY_BUCKET_BOUNDS_NS.iter().zip(latency.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{worker=\"{index}\",le=\"{}\"}} {count}",
                *bound as f64 / 1e9
            );
        }
        let _ = writeln!(out, "{name}_bucket{{worker=\"{index}\",le=\"+Inf\"}} {}", latency.count);
        let _ = writeln!(out, "{name}_sum{{worker=\"{index}\"}} {}", latency.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{worker=\"{index}\"}} {}", latency.count);
    }
    render_flows(&mut out, flows);
    if let Some(dedup) = dedup {
        render_dedup(&mut out, dedup);
    }
    if let Some(conntrack) = conntrack {
        render_conntrack(&mut out, conntrack);
    }
    render_discovery(&mut out, discovery);
    out
}

/// Each whole-number counter of the exit summary's object `section`, as
/// `ringsieve_SECTION_KEY_total`; `whose` starts its help text.
fn render_summary_counters(
    out: &mut String,
    object: &serde_json::Map<String, serde_json::Value>,
    section: &str,
    whose: &str,
) {
    for (key, value) in object {
        if let Some(value) = value.as_u64() {
            let name = format!("ringsieve_{section}_{key}_total");
            family(
                out,
                &name,
                "counter",
                &format!("{whose} {key} (the exit summary's {section}.{key})."),
            );
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// Every counter of the summary's `dedup` object, `ringsieve_dedup_KEY_total`;
/// its duplicates by tap pair labelled with the pair.
fn render_dedup(out: &mut String, dedup: &serde_json::Value) {
    let Some(object) = dedup.as_object() else {
        return;
    };
    render_summary_counters(out, object, "dedup", "The dedup engines'");
    let name = "ringsieve_dedup_duplicates_by_tap_pair_total";
    family(
        out,
        name,
        "counter",
        "Duplicates by the tap point of the copy kept and that of the copy suppressed.",
    );
    if let Some(pairs) = object.get("duplicates_by_tap_pair").and_then(|p| p.as_object()) {
        for (pair, count) in pairs {
            let (kept, suppressed) = pair.split_once(" > ").unwrap_or((pair, ""));
            let _ = writeln!(
                out,
                "{name}{{kept=\"{}\",suppressed=\"{}\"}} {}",
                label(kept),
                label(suppressed),
                count.as_u64().unwrap_or(0)
            );
        }
    }
}

/// Every counter of the summary's `conntrack` object,
/// `ringsieve_conntrack_KEY_total`, and whether conntrack could be read.
fn render_conntrack(out: &mut String, conntrack: &serde_json::Value) {
    let Some(object) = conntrack.as_object() else {
        return;
    };
    render_summary_counters(out, object, "conntrack", "The conntrack feed's");
    for (key, value) in object {
        if let Some(flag) = value.as_bool() {
            let name = format!("ringsieve_conntrack_{key}");
            family(
                out,
                &name,
                "gauge",
                &format!("1 when the conntrack feed's {key} holds (conntrack.{key})."),
            );
            let _ = writeln!(out, "{name} {}", u8::from(flag));
        }
    }
}

/// The flow trackers' counters per worker; nothing without trackers.
fn render_flows(out: &mut String, flows: &[Option<FlowTrackerCounters>]) {
    let trackers: Vec<(usize, &FlowTrackerCounters)> = flows
        .iter()
        .enumerate()
        .filter_map(|(index, counters)| counters.as_ref().map(|c| (index, c)))
        .collect();
    if trackers.is_empty() {
        return;
    }
    type Field = fn(&FlowTrackerCounters) -> u64;
    let per_worker: [(&str, &str, &str, Field); 6] = [
        (
            "ringsieve_worker_flow_packets_total",
            "counter",
            "Packets the worker's flow tracker counted.",
            |c| c.packets,
        ),
        (
            "ringsieve_worker_flows_started_total",
            "counter",
            "Flows the worker's flow tracker started.",
            |c| c.flows_started,
        ),
        (
            "ringsieve_worker_flows_active",
            "gauge",
            "Flows the worker's flow tracker holds now.",
            |c| c.flows_active,
        ),
        (
            "ringsieve_worker_flow_records_lost_total",
            "counter",
            "Flow records lost in EVE writes that failed.",
            |c| c.records_lost,
        ),
        (
            "ringsieve_worker_alerts_total",
            "counter",
            "EVE alert events the worker's signature engine wrote.",
            |c| c.alerts,
        ),
        (
            "ringsieve_worker_anomalies_total",
            "counter",
            "EVE anomaly events (TCP overlaps with different data) the worker wrote.",
            |c| c.anomalies,
        ),
    ];
    for (name, kind, help, field) in per_worker {
        family(out, name, kind, help);
        for (index, counters) in &trackers {
            let _ = writeln!(out, "{name}{{worker=\"{index}\"}} {}", field(counters));
        }
    }
    family(
        out,
        "ringsieve_worker_flow_records_total",
        "counter",
        "EVE flow records the worker wrote, by why the flow ended.",
    );
    for (index, counters) in &trackers {
        for (reason, value) in [
            ("timeout", counters.records_timeout),
            ("forced", counters.records_forced),
            ("shutdown", counters.records_shutdown),
        ] {
            let _ = writeln!(
                out,
                "ringsieve_worker_flow_records_total{{worker=\"{index}\",reason=\"{reason}\"}} {value}"
            );
        }
    }
}

/// The discovery's counters and its event-to-capture quantiles.
fn render_discovery(out: &mut String, discovery: &DiscoverySnapshot) {
    let counters: [(&str, &str, u64); 8] = [
        (
            "ringsieve_discovery_interfaces_appeared_total",
            "Selected interfaces that appeared after the start.",
            discovery.interfaces_appeared,
        ),
        (
            "ringsieve_discovery_interfaces_disappeared_total",
            "Captured interfaces that went away.",
            discovery.interfaces_disappeared,
        ),
        (
            "ringsieve_discovery_role_changes_total",
            "Role changes of captured interfaces (a veth enslaved to a bridge becomes a container veth).",
            discovery.role_changes,
        ),
        (
            "ringsieve_discovery_containers_named_total",
            "Container veths whose container was found.",
            discovery.containers_named,
        ),
        (
            "ringsieve_discovery_netlink_overflows_total",
            "Times rtnetlink lost notifications (each followed by a resync).",
            discovery.netlink_overflows,
        ),
        (
            "ringsieve_discovery_resyncs_total",
            "Full re-reads of the interfaces after the initial one.",
            discovery.resyncs,
        ),
        (
            "ringsieve_discovery_rings_opened_total",
            "Capture rings opened, one per capture thread and interface.",
            discovery.rings_opened,
        ),
        (
            "ringsieve_discovery_rings_released_total",
            "Capture rings released because their interface went away or left the selection.",
            discovery.rings_released,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let name = "ringsieve_discovery_event_to_capture_seconds";
    family(
        out,
        name,
        "summary",
        "From reading an interface's discovery event to its capture rings being open.",
    );
    let latency = &discovery.event_to_capture;
    for (quantile, ns) in [("0.5", latency.p50_ns), ("0.99", latency.p99_ns), ("1", latency.max_ns)] {
        let _ = writeln!(out, "{name}{{quantile=\"{quantile}\"}} {}", ns as f64 / 1e9);
    }
    let _ = writeln!(out, "{name}_sum {}", latency.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {}", latency.interfaces);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::live::InterfaceLive;
    use pipeline::worker_pool::LatencySummary;

    #[test]
    fn addresses_without_a_host_bind_loopback() {
        assert_eq!(parse_address("9100").unwrap(), "127.0.0.1:9100".parse().unwrap());
        assert_eq!(parse_address(":9100").unwrap(), "127.0.0.1:9100".parse().unwrap());
        assert_eq!(parse_address("0.0.0.0:9100").unwrap(), "0.0.0.0:9100".parse().unwrap());
        assert_eq!(parse_address("[::1]:9100").unwrap(), "[::1]:9100".parse().unwrap());
        for bad in ["", "localhost", "99999", ":x", "1.2.3.4"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let mut interfaces = LiveSnapshot::new();
        interfaces.insert(
            "veth\"x".to_owned(),
            InterfaceLive {
                captured: 7,
                queue_full: 2,
                ..InterfaceLive::default()
            },
        );
        let pool = PoolLive {
            workers: vec![(
                5,
                LatencySummary {
                    count: 5,
                    p50: 1_000,
                    p99: 2_000,
                    p999: 3_000,
                    max: 4_000,
                    buckets: [5; LATENCY_BUCKET_BOUNDS_NS.len()],
                    sum_ns: 10_000,
                },
            )],
            queued: 5,
            dropped: 2,
        };
        let discovery = DiscoverySnapshot {
            interfaces_appeared: 3,
            rings_opened: 8,
            event_to_capture: crate::host::EventToCapture {
                interfaces: 3,
                p50_ns: 150_000,
                p99_ns: 2_000_000,
                max_ns: 2_000_000,
                sum_ns: 2_300_000,
            },
            ..DiscoverySnapshot::default()
        };
        let flows = [
            Some(FlowTrackerCounters {
                packets: 11,
                flows_active: 2,
                records_timeout: 4,
                ..FlowTrackerCounters::default()
            }),
            None,
        ];
        let text = render(&Sources {
            interfaces: &interfaces,
            pool: &pool,
            discovery: &discovery,
            flows: &flows,
            uptime_seconds: 1.5,
            dedup: None,
            conntrack: None,
        });
        assert!(
            text.contains("ringsieve_captured_total{interface=\"veth\\\"x\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("reason=\"queue_full\"} 2\n"), "{text}");
        assert!(
            text.contains("ringsieve_worker_latency_seconds{worker=\"0\",quantile=\"0.99\"} 0.000002\n"),
            "{text}"
        );
        for series in [
            "ringsieve_discovery_interfaces_appeared_total 3\n",
            "ringsieve_discovery_rings_opened_total 8\n",
            "ringsieve_discovery_rings_released_total 0\n",
            "ringsieve_discovery_event_to_capture_seconds{quantile=\"0.5\"} 0.00015\n",
            "ringsieve_discovery_event_to_capture_seconds_sum 0.0023\n",
            "ringsieve_discovery_event_to_capture_seconds_count 3\n",
            "ringsieve_worker_flow_packets_total{worker=\"0\"} 11\n",
            "ringsieve_worker_flows_active{worker=\"0\"} 2\n",
            "ringsieve_worker_flow_records_total{worker=\"0\",reason=\"timeout\"} 4\n",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        // A worker without a flow tracker has no flow series.
        assert!(!text.contains("worker=\"1\""), "{text}");
        // Without a dedup or conntrack, none of their families.
        assert!(
            !text.contains("ringsieve_dedup_") && !text.contains("ringsieve_conntrack_"),
            "{text}"
        );
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().expect("a name");
                assert!(!declared.contains(&name.to_owned()), "{name} declared twice");
                declared.push(name.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("ringsieve_"), "{line}");
            // Every sample follows its family's TYPE line.
            let name = series.split('{').next().expect("a name");
            let family = ["", "_sum", "_count", "_bucket"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|family| declared.iter().any(|d| d == family));
            assert!(family.is_some(), "{line} before its TYPE");
        }
        // Without flow trackers (no EVE output), no flow families at all.
        let text = render(&Sources {
            interfaces: &interfaces,
            pool: &pool,
            discovery: &discovery,
            flows: &[None, None],
            uptime_seconds: 1.5,
            dedup: None,
            conntrack: None,
        });
        assert!(!text.contains("ringsieve_worker_flow"), "{text}");
        assert!(text.contains("ringsieve_discovery_resyncs_total 0\n"), "{text}");
    }

    #[test]
    fn every_family_is_rendered_with_the_summary_s_counters() {
        let mut interfaces = LiveSnapshot::new();
        interfaces.insert(
            "eth0".to_owned(),
            InterfaceLive {
                freezes: 3,
                malformed_blocks: 4,
                held: 5,
                ..InterfaceLive::default()
            },
        );
        let latency = LatencySummary {
            count: 9,
            buckets: [1, 2, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 9, 9],
            sum_ns: 1_500_000,
            ..LatencySummary::default()
        };
        let pool = PoolLive {
            workers: vec![(9, latency), (0, LatencySummary::default())],
            queued: 12,
            dropped: 3,
        };
        let mut counters = flow::SieveCounters {
            copies: 20,
            held: 6,
            released_after_window: 5,
            released_early: 1,
            table_full_passes: 2,
            late_duplicates: 7,
            hold_overflow: 8,
            ..flow::SieveCounters::default()
        };
        counters.by_tap_pair.insert((flow::TapId(0), flow::TapId(1)), 4);
        let dedup = crate::dedup_summary::dedup_json(&counters, 2, |id| format!("tap{}", id.0));
        let conntrack = crate::nat_feed::NatFeedReport {
            available: true,
            learned: 5,
            counters: conntrack::WatcherCounters {
                bound: 6,
                destroy_events: 1,
                ..conntrack::WatcherCounters::default()
            },
        }
        .summary();
        let text = render(&Sources {
            interfaces: &interfaces,
            pool: &pool,
            discovery: &DiscoverySnapshot::default(),
            flows: &[Some(FlowTrackerCounters::default()), None],
            uptime_seconds: 2.0,
            dedup: Some(&dedup),
            conntrack: Some(&conntrack),
        });
        let families: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split_once(' '))
            .collect();
        let has = |name: &str, kind: &str| families.contains(&(name, kind));
        // Every counter of the summary's dedup and conntrack objects, by
        // the summary's key.
        for (key, value) in dedup.as_object().expect("an object") {
            if value.is_u64() {
                let name = format!("ringsieve_dedup_{key}_total");
                assert!(has(&name, "counter"), "{name}: {text}");
                assert!(text.contains(&format!("\n{name} {value}\n")), "{name}: {text}");
            }
        }
        for (key, value) in conntrack.as_object().expect("an object") {
            let name = match value.as_u64() {
                Some(_) => format!("ringsieve_conntrack_{key}_total"),
                None => format!("ringsieve_conntrack_{key}"),
            };
            let kind = if value.is_u64() { "counter" } else { "gauge" };
            let shown = value.as_u64().unwrap_or(u64::from(value == true));
            assert!(has(&name, kind), "{name}: {text}");
            assert!(text.contains(&format!("\n{name} {shown}\n")), "{name}: {text}");
        }
        for series in [
            "ringsieve_freezes_total{interface=\"eth0\"} 3\n",
            "ringsieve_malformed_blocks_total{interface=\"eth0\"} 4\n",
            "ringsieve_held{interface=\"eth0\"} 5\n",
            "ringsieve_pool_queued_total 12\n",
            "ringsieve_pool_dropped_total 3\n",
            "ringsieve_dedup_released_after_window_total 5\n",
            "ringsieve_dedup_nat_bindings_total 2\n",
            "ringsieve_dedup_duplicates_by_tap_pair_total{kept=\"tap0\",suppressed=\"tap1\"} 4\n",
            "ringsieve_conntrack_bindings_learned_total 5\n",
            "ringsieve_conntrack_available 1\n",
            "ringsieve_worker_latency_seconds_sum{worker=\"0\"} 0.0015\n",
            "ringsieve_worker_latency_histogram_seconds_bucket{worker=\"0\",le=\"0.00001\"} 1\n",
            "ringsieve_worker_latency_histogram_seconds_bucket{worker=\"0\",le=\"1\"} 9\n",
            "ringsieve_worker_latency_histogram_seconds_bucket{worker=\"0\",le=\"+Inf\"} 9\n",
            "ringsieve_worker_latency_histogram_seconds_sum{worker=\"0\"} 0.0015\n",
            "ringsieve_worker_latency_histogram_seconds_count{worker=\"0\"} 9\n",
            "ringsieve_worker_latency_histogram_seconds_count{worker=\"1\"} 0\n",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        // Every family there is, each of its kind.
        for (name, kind) in [
            ("ringsieve_uptime_seconds", "gauge"),
            ("ringsieve_kernel_packets_total", "counter"),
            ("ringsieve_kernel_drops_total", "counter"),
            ("ringsieve_freezes_total", "counter"),
            ("ringsieve_malformed_blocks_total", "counter"),
            ("ringsieve_captured_total", "counter"),
            ("ringsieve_delivered_total", "counter"),
            ("ringsieve_duplicates_total", "counter"),
            ("ringsieve_malformed_total", "counter"),
            ("ringsieve_held", "gauge"),
            ("ringsieve_queue_drops_total", "counter"),
            ("ringsieve_pool_queued_total", "counter"),
            ("ringsieve_pool_dropped_total", "counter"),
            ("ringsieve_worker_packets_total", "counter"),
            ("ringsieve_worker_latency_seconds", "summary"),
            ("ringsieve_worker_latency_histogram_seconds", "histogram"),
            ("ringsieve_worker_flow_packets_total", "counter"),
            ("ringsieve_worker_flows_started_total", "counter"),
            ("ringsieve_worker_flows_active", "gauge"),
            ("ringsieve_worker_flow_records_lost_total", "counter"),
            ("ringsieve_worker_alerts_total", "counter"),
            ("ringsieve_worker_anomalies_total", "counter"),
            ("ringsieve_worker_flow_records_total", "counter"),
            ("ringsieve_dedup_duplicates_by_tap_pair_total", "counter"),
            ("ringsieve_discovery_interfaces_appeared_total", "counter"),
            ("ringsieve_discovery_interfaces_disappeared_total", "counter"),
            ("ringsieve_discovery_role_changes_total", "counter"),
            ("ringsieve_discovery_containers_named_total", "counter"),
            ("ringsieve_discovery_netlink_overflows_total", "counter"),
            ("ringsieve_discovery_resyncs_total", "counter"),
            ("ringsieve_discovery_rings_opened_total", "counter"),
            ("ringsieve_discovery_rings_released_total", "counter"),
            ("ringsieve_discovery_event_to_capture_seconds", "summary"),
        ] {
            assert!(has(name, kind), "{name} {kind}: {text}");
        }
        // The dedup's and conntrack's numbers, and the 33 above: nothing
        // else.
        let numbers = |object: &serde_json::Value| {
            object
                .as_object()
                .map_or(0, |o| o.values().filter(|v| v.is_u64() || v.is_boolean()).count())
        };
        assert_eq!(families.len(), 33 + numbers(&dedup) + numbers(&conntrack), "{text}");
        // The buckets are cumulative.
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("ringsieve_worker_latency_histogram_seconds_bucket{worker=\"0\""))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKET_BOUNDS_NS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    }

    #[test]
    fn a_real_scrape_gets_the_text_and_other_paths_get_404() {
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), || "ringsieve_up 1\n".to_owned())
            .expect("the endpoint starts");
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(server.address()).unwrap();
            write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.0 200") || ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("ringsieve_up 1\n"), "{ok}");
        let missing = get("/");
        assert!(missing.contains(" 404 "), "{missing}");
    }
}
