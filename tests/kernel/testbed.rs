//! The test bed itself: `scripts/docker-host.sh` builds a host whose interfaces show the copies the ground truth
//! measured.
//!
//! Each test brings up its own bed (three containers) under a prefix
//! `rstest-<pid>-<n>-bed`, held by a [`Bed`] guard whose `Drop` runs
//! `docker-host.sh down`, so a failing test leaves no namespace behind. It
//! opens a capture ring with our own `af_packet` crate on every host-side
//! interface (docker0, vethc1..3, eth0; docker0 not promiscuous) from a thread
//! inside the bed's host namespace, runs one `scripts/traffic.sh` case, and
//! checks every copy of every application packet against the table in
//! docs/docker-host-ground-truth.md: on which interfaces it appears, with
//! which `sll_pkttype`, and which header fields differ between copies (only
//! what NAT and forwarding change). Headers are read at fixed byte offsets
//! here; the real parser is the `flow` crate's.
//!
//! The cases run one at a time (a lock), since copy timing on two cores is
//! what the rings must keep up with, and the traffic binary is built once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use af_packet::{CaptureRing, Interface, InterfaceRole, PacketType, RingConfig, RingSet};

use crate::netns::{privileged, PREFIX};

/// Containers in every bed: two talk, the third shows what is *not* copied.
const CONTAINERS: usize = 3;
/// Application packets per case (`TRAFFIC_COUNT`).
const COUNT: usize = 6;
/// Bytes of the bulk uploads (`TRAFFIC_BULK_BYTES`).
const BULK: usize = 1 << 20;
/// The host namespace's interfaces that are captured, with their roles.
const HOST_INTERFACES: [(&str, InterfaceRole); 5] = [
    ("docker0", InterfaceRole::Bridge),
    ("vethc1", InterfaceRole::ContainerVeth),
    ("vethc2", InterfaceRole::ContainerVeth),
    ("vethc3", InterfaceRole::ContainerVeth),
    ("eth0", InterfaceRole::Uplink),
];

const C1: [u8; 4] = [172, 17, 0, 2];
const C2: [u8; 4] = [172, 17, 0, 3];
const DOCKER0: [u8; 4] = [172, 17, 0, 1];
const UPLINK: [u8; 4] = [198, 18, 0, 2];
const OUTSIDE: [u8; 4] = [198, 18, 0, 1];
const C1_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
const C2_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];
const DOCKER0_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x01];
const UPLINK_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x02];
const OUTSIDE_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x01];
const MAGIC: &[u8; 4] = b"RSv1";

static NEXT_BED: AtomicUsize = AtomicUsize::new(0);
static ONE_CASE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Holds the lock that runs one case at a time; a test that panicked while
/// holding it does not stop the others.
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CASE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `ringsieve-traffic` binary, built once per test run.
pub(crate) fn traffic_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "testbed", "--bin", "ringsieve-traffic"])
            .current_dir(repo())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p testbed --bin ringsieve-traffic failed"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target"));
        repo().join(target).join("debug/ringsieve-traffic")
    })
}

/// Runs a script of `scripts/` with the bed's prefix; returns its output,
/// panicking with its stderr if it fails.
fn script(prefix: &str, name: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let output = Command::new(repo().join("scripts").join(name))
        .args(args)
        .env("RINGSIEVE_BED", prefix)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        output.status.success(),
        "{name} {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The namespaces that exist now, by name.
pub(crate) fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Deletes namespaces of test processes that no longer run, as
/// `netns::NetNs` does for its own (a killed run never reaches `Drop`).
fn stale_cleanup() {
    for name in namespaces() {
        let Some(rest) = name.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// A bed that exists as long as this guard: `up` on creation, `down` on drop.
pub(crate) struct Bed {
    prefix: String,
}

impl Bed {
    pub(crate) fn up() -> Self {
        stale_cleanup();
        let n = NEXT_BED.fetch_add(1, Ordering::Relaxed);
        // The guard exists before `up` runs, so even a failed `up` is followed
        // by `down`.
        let bed = Self {
            prefix: format!("{PREFIX}-{}-{n}-bed", std::process::id()),
        };
        bed.script("docker-host.sh", &["up", &CONTAINERS.to_string()]);
        bed
    }

    fn script(&self, name: &str, args: &[&str]) -> Output {
        script(&self.prefix, name, args, &[])
    }

    pub(crate) fn namespace(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The namespaces' prefix (`RINGSIEVE_BED`): container K is
    /// `<prefix>-cK`, which is also the name the agent gives it.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs `scripts/docker-host.sh ARGS` on this bed (`start K ...`,
    /// `stop K`), panicking with its output if it fails; returns its stdout.
    pub(crate) fn docker_host(&self, args: &[&str]) -> String {
        let out = self.script("docker-host.sh", args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Scrapes `http://127.0.0.1:PORT/metrics` with curl inside the host
    /// namespace and checks the text is Prometheus exposition format.
    pub(crate) fn scrape_metrics(&self, port: u16) -> Metrics {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespace("host"),
                "curl",
                "-sS",
                "--max-time",
                "5",
            ])
            .arg(format!("http://127.0.0.1:{port}/metrics"))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "scrape of port {port}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Metrics::parse(&text)
    }

    /// Runs traffic case `case` through `scripts/traffic.sh`.
    pub(crate) fn traffic(&self, case: &str) -> String {
        let env = [
            ("TRAFFIC_COUNT", COUNT.to_string()),
            ("TRAFFIC_BULK_BYTES", BULK.to_string()),
            ("RINGSIEVE_TRAFFIC", traffic_binary().display().to_string()),
        ];
        let out = script(&self.prefix, "traffic.sh", &[case], &env);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let out = Command::new(repo().join("scripts/docker-host.sh"))
            .arg("down")
            .env("RINGSIEVE_BED", &self.prefix)
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "docker-host.sh down failed for {}: {}",
                self.prefix,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("cannot run docker-host.sh down for {}: {e}", self.prefix),
        }
    }
}

/// One scrape of a Prometheus endpoint: every sample by its series (name
/// and labels as written, `name{a="x"}`), and the text.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) samples: BTreeMap<String, f64>,
    pub(crate) text: String,
}

/// How far a settled scrape may lag the exit summary: the host's own
/// packets (neighbour probes, router solicitations) captured between the
/// scrape and the stop.
const SETTLED_SLACK: f64 = 16.0;

impl Metrics {
    /// Parses exposition text (format 0.0.4), panicking where it does not
    /// conform: a metric name that is not `[a-zA-Z_:][a-zA-Z0-9_:]*`, a
    /// family without `# HELP` and `# TYPE` before its samples or declared
    /// twice, a sample whose family is not declared (a summary's `_sum` and
    /// `_count` belong to it, a histogram's `_bucket` with an `le` label,
    /// `_sum` and `_count`, and nothing else), a value that is not a
    /// number, a series given twice.
    pub(crate) fn parse(text: &str) -> Self {
        let valid_name = |name: &str| {
            let mut chars = name.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        let mut helped = BTreeSet::new();
        let mut typed = BTreeMap::new();
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|line| !line.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(valid_name(name), "bad metric name in {line:?}");
                assert!(helped.insert(name.to_owned()), "HELP twice for {name}:\n{text}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(
                    ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                    "bad TYPE line {line:?}"
                );
                assert!(helped.contains(name), "TYPE before HELP for {name}:\n{text}");
                assert!(
                    typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "TYPE twice for {name}:\n{text}"
                );
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?} is not a number"));
            let name = series.split('{').next().unwrap_or_default();
            assert!(valid_name(name), "bad metric name in {line:?}");
            if series.contains('{') {
                assert!(series.ends_with('}'), "unterminated labels in {line:?}");
            }
            let family = [
                name,
                name.strip_suffix("_sum").unwrap_or(name),
                name.strip_suffix("_count").unwrap_or(name),
                name.strip_suffix("_bucket").unwrap_or(name),
            ]
            .into_iter()
            .find(|family| match typed.get(*family).map(String::as_str) {
                // A histogram's samples are its _bucket (with an `le`), _sum
                // and _count; a summary's its quantiles, _sum and _count.
                Some("histogram") => *family != name && (!name.ends_with("_bucket") || series.contains("le=\"")),
                Some("summary") => true,
                Some(_) => *family == name,
                None => false,
            })
            .unwrap_or_else(|| panic!("{line:?}: no TYPE for its family before it"));
            assert!(family.starts_with("ringsieve_"), "{line:?}");
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "series {series} twice:\n{text}"
            );
        }
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of `series` (`name` or `name{labels}` as written).
    pub(crate) fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }

    /// The value of `series`, panicking with the whole scrape if absent.
    pub(crate) fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no {series} in the scrape:\n{}", self.text))
    }

    /// Checks every series that has a counterpart in `ringsieve run`'s exit
    /// `summary` against it: when `settled` (the test's traffic was over
    /// before this scrape), at most the summary's and at most
    /// [`SETTLED_SLACK`] below it (the host's own stray packets, a
    /// neighbour probe a few seconds after the traffic, can still come
    /// between the scrape and the stop), else at most the summary's
    /// (counters only grow). Per interface: the kernel's, freezes,
    /// malformed blocks, captured, delivered, duplicates, malformed, queue drops by reason,
    /// and the copies held now (none once settled);
    /// the pool's queued and dropped; per worker its packets, and its
    /// latency histogram (cumulative, its +Inf bucket its count, the
    /// quantile summary's count and sum the same, at most the summary's
    /// packets: the latency is refreshed every second); every counter of
    /// the summary's `dedup` and `conntrack` objects (each must be
    /// exported; of conntrack's, only the NAT bindings are compared equal:
    /// other connections and time-outs come at any moment).
    pub(crate) fn check_against(&self, summary: &serde_json::Value, settled: bool) {
        let text = &self.text;
        let compare = |series: &str, scraped: f64, expected: &serde_json::Value, exact: bool| {
            let expected = expected
                .as_u64()
                .unwrap_or_else(|| panic!("{series}: no counterpart in the summary {summary}"))
                as f64;
            if exact {
                assert!(
                    scraped <= expected && expected - scraped <= SETTLED_SLACK,
                    "{series}: scraped {scraped}, summary {expected} (at most {SETTLED_SLACK} apart): {summary}\n{text}"
                );
            } else {
                assert!(
                    scraped <= expected,
                    "{series}: scraped {scraped} > summary's {expected}: {summary}\n{text}"
                );
            }
        };
        let label = |series: &str, name: &str| -> Option<String> {
            let start = series.find(&format!("{name}=\""))? + name.len() + 2;
            let end = series[start..].find('"')? + start;
            Some(series[start..end].to_owned())
        };
        let interfaces = &summary["interfaces"];
        for (series, value) in &self.samples {
            let name = series.split('{').next().unwrap_or_default();
            let per_interface = [
                ("ringsieve_kernel_packets_total", "received"),
                ("ringsieve_kernel_drops_total", "kernel_drops"),
                ("ringsieve_freezes_total", "freezes"),
                ("ringsieve_malformed_blocks_total", "malformed_blocks"),
                ("ringsieve_captured_total", "captured"),
                ("ringsieve_delivered_total", "delivered"),
                ("ringsieve_duplicates_total", "duplicates"),
                ("ringsieve_malformed_total", "malformed"),
            ];
            if let Some((_, key)) = per_interface.iter().find(|(family, _)| *family == name) {
                let interface = label(series, "interface").expect("an interface label");
                compare(series, *value, &interfaces[&interface][key], settled);
            } else if name == "ringsieve_held" {
                // Copies held now: none once settled, never more than
                // were ever held.
                if settled {
                    assert!(*value <= SETTLED_SLACK, "{series}: {text}");
                }
                compare(series, *value, &summary["dedup"]["held"], false);
            } else if name == "ringsieve_queue_drops_total" {
                let interface = label(series, "interface").expect("an interface label");
                let reason = label(series, "reason").expect("a reason label");
                compare(
                    series,
                    *value,
                    &interfaces[&interface]["queue_drops_by_reason"][&reason],
                    settled,
                );
            } else if name == "ringsieve_pool_queued_total" {
                compare(series, *value, &summary["total"]["delivered"], settled);
            } else if name == "ringsieve_pool_dropped_total" {
                compare(series, *value, &summary["total"]["queue_drops"], settled);
            } else if name == "ringsieve_worker_packets_total" {
                let worker: usize = label(series, "worker").and_then(|w| w.parse().ok()).expect("a worker");
                compare(series, *value, &summary["workers"]["each"][worker]["packets"], settled);
            } else if name == "ringsieve_dedup_duplicates_by_tap_pair_total" {
                let pair = format!(
                    "{} > {}",
                    label(series, "kept").expect("kept"),
                    label(series, "suppressed").expect("suppressed")
                );
                compare(
                    series,
                    *value,
                    &summary["dedup"]["duplicates_by_tap_pair"][&pair],
                    settled,
                );
            } else if let Some(key) = name
                .strip_prefix("ringsieve_dedup_")
                .and_then(|k| k.strip_suffix("_total"))
            {
                compare(series, *value, &summary["dedup"][key], settled);
            } else if let Some(key) = name
                .strip_prefix("ringsieve_conntrack_")
                .and_then(|k| k.strip_suffix("_total"))
            {
                // Any new connection in the namespace is a NEW event (most
                // not NAT'd), and entries time out at any moment: only the
                // NAT bindings are settled once the NAT'd traffic is.
                let settles = ["bindings_learned", "bound", "malformed"];
                compare(
                    series,
                    *value,
                    &summary["conntrack"][key],
                    settled && settles.contains(&key),
                );
            }
        }
        // Every counter of the dedup and conntrack objects is exported.
        for (object, prefix) in [("dedup", "ringsieve_dedup_"), ("conntrack", "ringsieve_conntrack_")] {
            for (key, value) in summary[object].as_object().into_iter().flatten() {
                if value.is_u64() {
                    self.value(&format!("{prefix}{key}_total"));
                }
            }
        }
        if summary["conntrack"].is_object() {
            let available = f64::from(u8::from(summary["conntrack"]["available"] == true));
            assert_eq!(self.value("ringsieve_conntrack_available"), available, "{text}");
        }
        // The latency histogram per worker.
        let workers = summary["workers"]["each"].as_array().expect("workers");
        for (index, worker) in workers.iter().enumerate() {
            let histogram = "ringsieve_worker_latency_histogram_seconds";
            let prefix = format!("{histogram}_bucket{{worker=\"{index}\",le=\"");
            let mut ordered: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter(|(series, _)| series.starts_with(&prefix))
                .map(|(series, value)| {
                    let le = &series[prefix.len()..series.len() - 2];
                    (
                        if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().expect("a bound")
                        },
                        *value,
                    )
                })
                .collect();
            ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(ordered.len() > 1, "worker {index}'s buckets: {text}");
            assert!(
                ordered.windows(2).all(|w| w[0].1 <= w[1].1),
                "cumulative buckets: {ordered:?}"
            );
            let count = self.value(&format!("{histogram}_count{{worker=\"{index}\"}}"));
            let last = ordered.last().expect("a bucket");
            assert_eq!(
                (last.0, last.1),
                (f64::INFINITY, count),
                "the +Inf bucket is the count: {text}"
            );
            let quantiles = "ringsieve_worker_latency_seconds";
            assert_eq!(
                self.value(&format!("{quantiles}_count{{worker=\"{index}\"}}")),
                count,
                "{text}"
            );
            assert_eq!(
                self.value(&format!("{quantiles}_sum{{worker=\"{index}\"}}")),
                self.value(&format!("{histogram}_sum{{worker=\"{index}\"}}")),
                "{text}"
            );
            compare(
                &format!("{histogram}_count"),
                count,
                &worker["latency"]["packets"],
                false,
            );
        }
    }
}

/// One copy of a packet as a host-side ring saw it.
#[derive(Clone, Debug)]
struct PacketCopy {
    interface: &'static str,
    packet_type: PacketType,
    data: Vec<u8>,
    original_len: u32,
}

impl PacketCopy {
    /// Where the copy was seen, as the ground truth writes it:
    /// `vethc1 in/OtherHost`, `eth0 OUT`.
    fn place(&self) -> String {
        match self.packet_type {
            PacketType::Outgoing => format!("{} OUT", self.interface),
            other => format!("{} in/{other:?}", self.interface),
        }
    }
}

/// Rings on every host interface, read by a thread in the host namespace
/// until [`Capture::finish`].
struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Captured>,
}

/// What the capture thread hands back: the copies and each ring's drops.
struct Captured {
    copies: Vec<PacketCopy>,
    drops: Vec<(&'static str, u64)>,
}

/// Copies of packets grouped by a key that names the packet.
type Groups<'c, K> = BTreeMap<K, Vec<&'c PacketCopy>>;

impl Capture {
    fn start(bed: &Bed) -> Self {
        let path = PathBuf::from("/var/run/netns").join(bed.namespace("host"));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            af_packet::netns::enter_thread(&path).expect("enter the bed's host namespace");
            let mut set = RingSet::new().unwrap();
            let mut names = BTreeMap::new();
            for (name, role) in HOST_INTERFACES {
                let interface = Interface::by_name(name).unwrap_or_else(|e| panic!("{e}"));
                let ring = CaptureRing::open(&interface, &RingConfig::for_role(role)).unwrap();
                assert!(!ring.promiscuous());
                names.insert(set.add(ring).unwrap(), name);
            }
            ready_tx.send(()).unwrap();
            let mut copies = vec![];
            let mut on_packet = |id, _: &Interface, packet: &af_packet::Packet<'_>| {
                copies.push(PacketCopy {
                    interface: names[&id],
                    packet_type: packet.packet_type(),
                    data: packet.data().to_vec(),
                    original_len: packet.original_len(),
                })
            };
            // After the stop request, read on for longer than the retire
            // timeout so the last, partly filled blocks are handed over.
            let mut stop_at = None;
            loop {
                set.poll(20, 16, &mut on_packet).unwrap();
                match stop_at {
                    None if stop_flag.load(Ordering::Acquire) => {
                        stop_at = Some(Instant::now() + Duration::from_millis(300))
                    }
                    Some(at) if Instant::now() >= at => break,
                    _ => {}
                }
            }
            set.drain_ready(usize::MAX, &mut on_packet);
            set.update_counters();
            let drops = set
                .rings()
                .map(|(id, ring)| (names[&id], ring.counters().drops))
                .collect();
            assert!(set.take_closed().is_empty(), "no interface disappeared");
            Captured { copies, drops }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("capture rings open in the host namespace");
        Self { stop, thread }
    }

    /// Stops capturing and returns every copy seen, asserting that no ring
    /// dropped a packet.
    fn finish(self) -> Vec<PacketCopy> {
        self.stop.store(true, Ordering::Release);
        let Captured { copies, drops } = self.thread.join().expect("capture thread");
        for (interface, dropped) in drops {
            assert_eq!(dropped, 0, "ring on {interface} dropped packets");
        }
        copies
    }
}

/// The IPv4 header fields the checks need, read at fixed offsets.
#[derive(Clone, Copy, Debug)]
struct Ipv4<'a> {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    id: u16,
    ttl: u8,
    protocol: u8,
    src: [u8; 4],
    dst: [u8; 4],
    /// The transport header and payload, as long as the IP total length says.
    l4: &'a [u8],
}

fn ipv4(frame: &[u8]) -> Option<Ipv4<'_>> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?));
    Some(Ipv4 {
        dst_mac: frame[0..6].try_into().ok()?,
        src_mac: frame[6..12].try_into().ok()?,
        id: u16::from_be_bytes(ip.get(4..6)?.try_into().ok()?),
        ttl: *ip.get(8)?,
        protocol: *ip.get(9)?,
        src: ip.get(12..16)?.try_into().ok()?,
        dst: ip.get(16..20)?.try_into().ok()?,
        l4: ip.get(header_len..total_len)?,
    })
}

/// TCP or UDP: ports and payload (and for TCP, seq and flags).
#[derive(Clone, Copy, Debug)]
struct Transport<'a> {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    flags: u8,
    payload: &'a [u8],
}

fn transport<'a>(ip: &Ipv4<'a>, protocol: u8) -> Option<Transport<'a>> {
    if ip.protocol != protocol {
        return None;
    }
    let l4 = ip.l4;
    let port = |at: usize| Some(u16::from_be_bytes(l4.get(at..at + 2)?.try_into().ok()?));
    let (seq, flags, header_len) = match protocol {
        6 => (
            u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?),
            *l4.get(13)?,
            usize::from(l4.get(12)? >> 4) * 4,
        ),
        17 => (0, 0, 8),
        _ => return None,
    };
    Some(Transport {
        src_port: port(0)?,
        dst_port: port(2)?,
        seq,
        flags,
        payload: l4.get(header_len..)?,
    })
}

fn tcp<'a>(ip: &Ipv4<'a>) -> Option<Transport<'a>> {
    transport(ip, 6)
}

fn udp<'a>(ip: &Ipv4<'a>) -> Option<Transport<'a>> {
    transport(ip, 17)
}

/// The sequence number of a marked application payload (`RSv1` + u32).
fn marker(payload: &[u8]) -> Option<u32> {
    (payload.get(..4)? == MAGIC).then(|| u32::from_be_bytes(payload[4..8].try_into().unwrap()))
}

/// The copies of each packet that `key` recognises, grouped by key.
fn group_by<K: Ord>(copies: &[PacketCopy], key: impl Fn(&Ipv4<'_>) -> Option<K>) -> Groups<'_, K> {
    let mut groups: Groups<'_, K> = BTreeMap::new();
    for copy in copies {
        if let Some(k) = ipv4(&copy.data).and_then(|ip| key(&ip)) {
            groups.entry(k).or_default().push(copy);
        }
    }
    groups
}

/// Asserts `packets` distinct packets, each seen exactly once at every place
/// of `places` and nowhere else; returns each packet's copies by place.
fn assert_places<'c, K: Ord + std::fmt::Debug>(
    what: &str,
    groups: &Groups<'c, K>,
    packets: usize,
    places: &[&str],
) -> Vec<BTreeMap<String, &'c PacketCopy>> {
    assert_eq!(
        groups.len(),
        packets,
        "{what}: distinct packets seen: {:?}",
        groups.keys().collect::<Vec<_>>()
    );
    let mut expected: Vec<&str> = places.to_vec();
    expected.sort_unstable();
    groups
        .iter()
        .map(|(key, copies)| {
            let mut seen: Vec<String> = copies.iter().map(|c| c.place()).collect();
            seen.sort_unstable();
            assert_eq!(seen, expected, "{what}: copies of packet {key:?}");
            for copy in copies {
                assert_eq!(
                    copy.original_len as usize,
                    copy.data.len(),
                    "{what}: copy at {} truncated",
                    copy.place()
                );
            }
            copies.iter().map(|c| (c.place(), *c)).collect()
        })
        .collect()
}

/// Asserts that every copy of every packet is the same bytes.
fn assert_identical(what: &str, packets: &[BTreeMap<String, &PacketCopy>]) {
    for copies in packets {
        let mut iter = copies.iter();
        let (first_place, first) = iter.next().unwrap();
        for (place, copy) in iter {
            assert!(
                copy.data == first.data,
                "{what}: copy at {place} differs from the one at {first_place}"
            );
        }
    }
}

/// Echo messages of a TCP flow, by direction and marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Leg {
    Request,
    Response,
}

/// Groups the marked TCP payloads: requests go to a port in `server_ports`,
/// responses come from one.
fn echo_groups<'c>(copies: &'c [PacketCopy], server_ports: &[u16]) -> Groups<'c, (Leg, u32)> {
    group_by(copies, |ip| {
        let tcp = tcp(ip)?;
        let sequence = marker(tcp.payload)?;
        if server_ports.contains(&tcp.dst_port) {
            Some((Leg::Request, sequence))
        } else if server_ports.contains(&tcp.src_port) {
            Some((Leg::Response, sequence))
        } else {
            None
        }
    })
}

/// Splits echo groups into (requests, responses).
fn legs(groups: Groups<'_, (Leg, u32)>) -> (Groups<'_, u32>, Groups<'_, u32>) {
    let mut requests = BTreeMap::new();
    let mut responses = BTreeMap::new();
    for ((leg, sequence), copies) in groups {
        match leg {
            Leg::Request => requests.insert(sequence, copies),
            Leg::Response => responses.insert(sequence, copies),
        };
    }
    (requests, responses)
}

fn at<'c>(copies: &BTreeMap<String, &'c PacketCopy>, place: &str) -> Ipv4<'c> {
    let copy = copies.get(place).unwrap_or_else(|| panic!("no copy at {place}"));
    ipv4(&copy.data).expect("an IPv4 copy")
}

/// Runs one case on a fresh bed and returns every copy the host captured.
fn capture_case(test: &str, case: &str) -> Option<Vec<PacketCopy>> {
    if !privileged(test) {
        return None;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let capture = Capture::start(&bed);
    let summary = bed.traffic(case);
    println!("{summary}");
    let copies = capture.finish();
    drop(bed);
    Some(copies)
}

#[test]
fn bed_up_is_idempotent_and_down_removes_every_namespace() {
    if !privileged("bed_up_is_idempotent_and_down_removes_every_namespace") {
        return;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let mut expected: Vec<String> = ["host", "out", "c1", "c2", "c3"]
        .iter()
        .map(|r| bed.namespace(r))
        .collect();
    expected.sort();
    let ours = || {
        let mut names: Vec<String> = namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&format!("{}-", bed.prefix)))
            .collect();
        names.sort();
        names
    };
    assert_eq!(ours(), expected);
    let first = bed.script("docker-host.sh", &["status"]);
    bed.script("docker-host.sh", &["up", &CONTAINERS.to_string()]);
    assert_eq!(ours(), expected, "a second `up` gives the same bed");
    let second = bed.script("docker-host.sh", &["status"]);
    let links = |out: &Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines: Vec<String> = text.lines().map(|l| l.split('@').next().unwrap().to_owned()).collect();
        lines.sort();
        lines
    };
    assert_eq!(links(&first), links(&second));
    let host_nat = Command::new("ip")
        .args([
            "netns",
            "exec",
            &bed.namespace("host"),
            "iptables",
            "-w",
            "5",
            "-t",
            "nat",
            "-S",
        ])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&host_nat.stdout);
    assert_eq!(
        rules
            .matches("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE")
            .count(),
        1,
        "{rules}"
    );
    assert_eq!(rules.matches("--to-destination 172.17.0.2:80").count(), 1, "{rules}");
    bed.script("docker-host.sh", &["down"]);
    assert!(ours().is_empty());
    bed.script("docker-host.sh", &["down"]);
}

#[test]
fn container_to_container_udp_is_seen_on_both_veths_only() {
    let Some(copies) = capture_case("container_to_container_udp_is_seen_on_both_veths_only", "c2c-udp") else {
        return;
    };
    let groups = group_by(&copies, |ip| {
        let udp = udp(ip)?;
        (udp.dst_port == 5001).then(|| marker(udp.payload)).flatten()
    });
    let packets = assert_places("c1 -> c2 UDP", &groups, COUNT, &["vethc1 in/OtherHost", "vethc2 OUT"]);
    assert_identical("c1 -> c2 UDP", &packets);
    for p in &packets {
        let ip = at(p, "vethc1 in/OtherHost");
        assert_eq!((ip.src, ip.dst, ip.ttl), (C1, C2, 64));
        assert_eq!((ip.src_mac, ip.dst_mac), (C1_MAC, C2_MAC));
        assert_eq!(udp(&ip).unwrap().payload.len(), 100);
    }
}

#[test]
fn container_to_container_tcp_is_seen_on_both_veths_only() {
    let Some(copies) = capture_case("container_to_container_tcp_is_seen_on_both_veths_only", "c2c-tcp") else {
        return;
    };
    let (requests, responses) = legs(echo_groups(&copies, &[5000]));
    let requests = assert_places("c1 -> c2 TCP", &requests, COUNT, &["vethc1 in/OtherHost", "vethc2 OUT"]);
    let responses = assert_places(
        "c2 -> c1 TCP",
        &responses,
        COUNT,
        &["vethc2 in/OtherHost", "vethc1 OUT"],
    );
    assert_identical("c1 -> c2 TCP", &requests);
    assert_identical("c2 -> c1 TCP", &responses);
    // The handshake is bridged the same way.
    let syns = group_by(&copies, |ip| {
        let tcp = tcp(ip)?;
        (tcp.dst_port == 5000 && tcp.flags & 0x12 == 0x02).then_some(tcp.seq)
    });
    let syns = assert_places("SYN", &syns, 1, &["vethc1 in/OtherHost", "vethc2 OUT"]);
    assert_identical("SYN", &syns);
}

#[test]
fn container_to_container_icmp_is_seen_on_both_veths_only() {
    let Some(copies) = capture_case("container_to_container_icmp_is_seen_on_both_veths_only", "c2c-icmp") else {
        return;
    };
    // (ICMP type, echo sequence) of echo requests and replies between c1 and c2.
    let groups = group_by(&copies, |ip| {
        let between = (ip.src, ip.dst) == (C1, C2) || (ip.src, ip.dst) == (C2, C1);
        let icmp = ip.l4;
        (ip.protocol == 1 && between && matches!(icmp.first(), Some(0 | 8)))
            .then(|| (icmp[0], u16::from_be_bytes([icmp[6], icmp[7]])))
    });
    let (requests, replies): (BTreeMap<_, _>, BTreeMap<_, _>) = groups.into_iter().partition(|((t, _), _)| *t == 8);
    let requests = assert_places(
        "ping c1 -> c2",
        &requests,
        COUNT,
        &["vethc1 in/OtherHost", "vethc2 OUT"],
    );
    let replies = assert_places(
        "reply c2 -> c1",
        &replies,
        COUNT,
        &["vethc2 in/OtherHost", "vethc1 OUT"],
    );
    assert_identical("ping c1 -> c2", &requests);
    assert_identical("reply c2 -> c1", &replies);
}

#[test]
fn container_to_host_is_seen_on_its_veth_and_docker0() {
    let Some(copies) = capture_case("container_to_host_is_seen_on_its_veth_and_docker0", "c2h-tcp") else {
        return;
    };
    let (requests, responses) = legs(echo_groups(&copies, &[5002]));
    let requests = assert_places(
        "c1 -> host TCP",
        &requests,
        COUNT,
        &["vethc1 in/OtherHost", "docker0 in/Host"],
    );
    let responses = assert_places("host -> c1 TCP", &responses, COUNT, &["docker0 OUT", "vethc1 OUT"]);
    assert_identical("c1 -> host TCP", &requests);
    assert_identical("host -> c1 TCP", &responses);
    for p in &requests {
        let ip = at(p, "docker0 in/Host");
        assert_eq!((ip.src, ip.dst, ip.dst_mac), (C1, DOCKER0, DOCKER0_MAC));
    }
}

#[test]
fn container_to_outside_is_masqueraded_on_eth0_only() {
    let Some(copies) = capture_case("container_to_outside_is_masqueraded_on_eth0_only", "c2out-tcp") else {
        return;
    };
    let (requests, responses) = legs(echo_groups(&copies, &[5003]));
    let requests = assert_places(
        "c1 -> outside",
        &requests,
        COUNT,
        &["vethc1 in/OtherHost", "docker0 in/Host", "eth0 OUT"],
    );
    for p in &requests {
        let (veth, bridge, uplink) = (p["vethc1 in/OtherHost"], at(p, "docker0 in/Host"), at(p, "eth0 OUT"));
        assert_eq!(
            veth.data, p["docker0 in/Host"].data,
            "veth and docker0 copies identical"
        );
        assert_eq!((bridge.src, bridge.dst, bridge.ttl), (C1, OUTSIDE, 64));
        assert_eq!(
            (uplink.src, uplink.dst, uplink.ttl),
            (UPLINK, OUTSIDE, 63),
            "SNAT, TTL one lower"
        );
        assert_eq!((uplink.src_mac, uplink.dst_mac), (UPLINK_MAC, OUTSIDE_MAC));
        assert_eq!(uplink.id, bridge.id, "IP ID unchanged by MASQUERADE");
        let (before, after) = (tcp(&bridge).unwrap(), tcp(&uplink).unwrap());
        assert_eq!(
            (after.src_port, after.dst_port, after.seq, after.payload),
            (before.src_port, before.dst_port, before.seq, before.payload),
            "ports, seq and payload unchanged"
        );
        assert_eq!(p["eth0 OUT"].data.len(), p["docker0 in/Host"].data.len());
    }
    let responses = assert_places(
        "outside -> c1",
        &responses,
        COUNT,
        &["eth0 in/Host", "docker0 OUT", "vethc1 OUT"],
    );
    for p in &responses {
        let (uplink, bridge) = (at(p, "eth0 in/Host"), at(p, "docker0 OUT"));
        assert_eq!(p["docker0 OUT"].data, p["vethc1 OUT"].data);
        assert_eq!(
            (uplink.src, uplink.dst, uplink.ttl),
            (OUTSIDE, UPLINK, 64),
            "seen before de-NAT"
        );
        assert_eq!((bridge.src, bridge.dst, bridge.ttl), (OUTSIDE, C1, 63));
        assert_eq!((bridge.src_mac, bridge.dst_mac), (DOCKER0_MAC, C1_MAC));
        assert_eq!(uplink.id, bridge.id);
    }
}

#[test]
fn published_port_is_dnatted_to_the_container() {
    let Some(copies) = capture_case("published_port_is_dnatted_to_the_container", "published-tcp") else {
        return;
    };
    let (requests, responses) = legs(echo_groups(&copies, &[8080, 80]));
    let requests = assert_places(
        "outside -> 198.18.0.2:8080",
        &requests,
        COUNT,
        &["eth0 in/Host", "docker0 OUT", "vethc1 OUT"],
    );
    for p in &requests {
        let (uplink, bridge) = (at(p, "eth0 in/Host"), at(p, "docker0 OUT"));
        assert_eq!(p["docker0 OUT"].data, p["vethc1 OUT"].data);
        assert_eq!((uplink.src, uplink.dst, uplink.ttl), (OUTSIDE, UPLINK, 64));
        assert_eq!(tcp(&uplink).unwrap().dst_port, 8080);
        assert_eq!(
            (bridge.src, bridge.dst, bridge.ttl),
            (OUTSIDE, C1, 63),
            "DNAT, TTL one lower"
        );
        assert_eq!(tcp(&bridge).unwrap().dst_port, 80);
        assert_eq!(tcp(&bridge).unwrap().seq, tcp(&uplink).unwrap().seq);
        assert_eq!(bridge.id, uplink.id);
    }
    let responses = assert_places(
        "c1:80 -> outside",
        &responses,
        COUNT,
        &["vethc1 in/OtherHost", "docker0 in/Host", "eth0 OUT"],
    );
    for p in &responses {
        let (bridge, uplink) = (at(p, "docker0 in/Host"), at(p, "eth0 OUT"));
        assert_eq!(p["vethc1 in/OtherHost"].data, p["docker0 in/Host"].data);
        assert_eq!((bridge.src, bridge.dst, bridge.ttl), (C1, OUTSIDE, 64));
        assert_eq!(tcp(&bridge).unwrap().src_port, 80);
        assert_eq!((uplink.src, uplink.dst, uplink.ttl), (UPLINK, OUTSIDE, 63));
        assert_eq!(tcp(&uplink).unwrap().src_port, 8080);
    }
}

#[test]
fn arp_broadcast_reaches_every_other_container_and_the_reply_is_unicast() {
    let test = "arp_broadcast_reaches_every_other_container_and_the_reply_is_unicast";
    let Some(copies) = capture_case(test, "arp") else {
        return;
    };
    let arp = |copy: &PacketCopy| -> Option<(u8, [u8; 4], [u8; 4])> {
        let d = &copy.data;
        (d.get(12..14)? == [0x08, 0x06]).then_some(())?;
        Some((
            *d.get(21)?,
            d.get(28..32)?.try_into().ok()?,
            d.get(38..42)?.try_into().ok()?,
        ))
    };
    let mut requests: Groups<'_, u32> = BTreeMap::new();
    let mut replies: BTreeMap<String, usize> = BTreeMap::new();
    for copy in &copies {
        match arp(copy) {
            Some((1, C1, C2)) => {
                let sequence = marker(&copy.data[42..]).expect("our request, marked in its padding");
                requests.entry(sequence).or_default().push(copy);
            }
            Some((2, C2, C1)) => *replies.entry(copy.place()).or_default() += 1,
            _ => {}
        }
    }
    // N + 1 copies of each request with N containers: c1's veth and docker0
    // inbound, every other container's veth outbound.
    let requests = assert_places(
        "ARP request",
        &requests,
        COUNT,
        &[
            "vethc1 in/Broadcast",
            "docker0 in/Broadcast",
            "vethc2 OUT",
            "vethc3 OUT",
        ],
    );
    assert_identical("ARP request", &requests);
    let expected: BTreeMap<String, usize> = [
        ("vethc2 in/OtherHost".to_owned(), COUNT),
        ("vethc1 OUT".to_owned(), COUNT),
    ]
    .into_iter()
    .collect();
    assert_eq!(replies, expected, "each unicast reply: 2 copies");
}

/// The bytes of sequence space that `(seq, length)` segments cover, each
/// counted once (an upload of a few MiB spans far less than half the
/// sequence space, so sequence numbers are compared by their signed
/// distance from the first).
fn covered_bytes(ranges: &BTreeSet<(u32, usize)>) -> usize {
    let Some(&(anchor, _)) = ranges.first() else {
        return 0;
    };
    let mut spans: Vec<(i64, i64)> = ranges
        .iter()
        .map(|&(seq, len)| {
            let start = i64::from(seq.wrapping_sub(anchor) as i32);
            (start, start + len as i64)
        })
        .collect();
    spans.sort_unstable();
    let mut covered = 0;
    let mut reached = i64::MIN;
    for (start, end) in spans {
        let from = start.max(reached);
        if end > from {
            covered += (end - from) as usize;
        }
        reached = reached.max(end);
    }
    covered
}

#[test]
fn covered_bytes_counts_a_resegmented_retransmission_once_across_the_sequence_wrap() {
    let ranges: BTreeSet<(u32, usize)> = [(u32::MAX - 99, 100), (0, 100), (50, 100), (50, 20), (300, 10)].into();
    // 200 bytes from 2^32 - 100 to 100, 50 more to 150, 10 at 300.
    assert_eq!(covered_bytes(&ranges), 260);
    assert_eq!(covered_bytes(&BTreeSet::new()), 0);
}

/// The data segments of an upload to `port`, keyed by (seq, length).
/// Upload segments keyed by (seq, length, IP ID): a TCP retransmission gets a
/// new IP ID on Linux, so it is a packet of its own, as it is for the dedup.
fn upload_groups(copies: &[PacketCopy], port: u16) -> Groups<'_, (u32, usize, u16)> {
    group_by(copies, |ip| {
        let tcp = tcp(ip)?;
        (tcp.dst_port == port && !tcp.payload.is_empty()).then_some((tcp.seq, tcp.payload.len(), ip.id))
    })
}

/// Asserts the segments cover `BULK` bytes of sequence space in all and
/// returns how many there are. Covered, not summed: under load TCP may
/// retransmit a stretch cut differently, which overlaps the first cut.
fn assert_bulk_bytes(what: &str, groups: &Groups<'_, (u32, usize, u16)>) -> usize {
    let ranges: BTreeSet<(u32, usize)> = groups.keys().map(|&(seq, len, _)| (seq, len)).collect();
    assert_eq!(
        covered_bytes(&ranges),
        BULK,
        "{what}: payload bytes covered by the segments"
    );
    let largest = groups.values().flatten().map(|c| c.data.len()).max().unwrap();
    assert!(
        largest > 1514,
        "{what}: GSO super-frames expected, largest copy {largest}"
    );
    groups.len()
}

#[test]
fn bulk_upload_between_containers_is_the_same_frames_on_both_veths() {
    let test = "bulk_upload_between_containers_is_the_same_frames_on_both_veths";
    let Some(copies) = capture_case(test, "bulk-c2c") else {
        return;
    };
    let groups = upload_groups(&copies, 5004);
    let segments = assert_bulk_bytes("bulk c1 -> c2", &groups);
    let packets = assert_places(
        "bulk c1 -> c2",
        &groups,
        segments,
        &["vethc1 in/OtherHost", "vethc2 OUT"],
    );
    assert_identical("bulk c1 -> c2", &packets);
}

#[test]
fn bulk_upload_to_outside_keeps_frame_sizes_through_masquerade() {
    let test = "bulk_upload_to_outside_keeps_frame_sizes_through_masquerade";
    let Some(copies) = capture_case(test, "bulk-out") else {
        return;
    };
    let groups = upload_groups(&copies, 5005);
    let segments = assert_bulk_bytes("bulk c1 -> outside", &groups);
    let packets = assert_places(
        "bulk c1 -> outside",
        &groups,
        segments,
        &["vethc1 in/OtherHost", "docker0 in/Host", "eth0 OUT"],
    );
    for p in &packets {
        assert_eq!(p["vethc1 in/OtherHost"].data, p["docker0 in/Host"].data);
        assert_eq!(
            p["eth0 OUT"].data.len(),
            p["docker0 in/Host"].data.len(),
            "same size after NAT"
        );
        let (bridge, uplink) = (at(p, "docker0 in/Host"), at(p, "eth0 OUT"));
        assert_eq!((uplink.src, uplink.ttl, uplink.id), (UPLINK, bridge.ttl - 1, bridge.id));
    }
}
