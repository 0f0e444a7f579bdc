//! The host agent against the containers' own view of their traffic.
//! `ringsieve run` runs with no interface option in the test bed's host
//! namespace; new containers start while it runs, each with tcpdump
//! listening inside it before its veth is enslaved and up
//! (`docker-host.sh start K --tcpdump DIR --publish PORT`), and each at once
//! talks to another container (TCP, ping), to the host (TCP), to the
//! outside through MASQUERADE (TCP, UDP, ping), and is reached from the
//! outside through its published port (DNAT). The containers are then
//! deleted and the agent stopped. Its EVE flow records must be exactly the
//! connections the container-side captures hold: one record per
//! connection, in the containers' addresses, with the captures' client,
//! server and packet count each way, and every endpoint that is a
//! container of the bed named. The captures are turned into connections by
//! `testbed::fixtures` (its own header parsing, none of ringsieve's flow
//! code). The `--metrics` endpoint is scraped before the stop; its
//! discovery, flow-tracker, per-interface, pool, worker, dedup and
//! conntrack series must be the summary's. Not timed:
//! every wait polls a condition under a generous deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capture_file::CaptureFile;
use testbed::fixtures::DirectedCounts;

use crate::live_dedup::touches_a_container;
use crate::netns::privileged;
use crate::process::{in_namespace, start_agent};
use crate::testbed::{namespaces, one_at_a_time, traffic_binary, Bed};

/// The containers started under the agent (the bed has 1..=3 already).
const NEW_CONTAINERS: std::ops::RangeInclusive<usize> = 4..=7;
/// Echo messages, datagrams or pings of each kind per container.
const COUNT: usize = 6;
/// The agent's metrics port, on the host namespace's loopback.
const METRICS_PORT: u16 = 19186;
/// How long any wait of this test may last.
const DEADLINE: Duration = Duration::from_secs(60);

/// A child process killed on drop unless it was waited for.
struct Spawned {
    what: String,
    child: Option<Child>,
}

impl Spawned {
    /// Runs `program ARGS` in namespace `namespace`.
    fn start(namespace: &str, program: &str, args: &[String]) -> Self {
        let child = in_namespace(namespace, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} in {namespace}: {e}"));
        Self {
            what: format!("{program} {} in {namespace}", args.join(" ")),
            child: Some(child),
        }
    }

    /// `ringsieve-traffic ARGS` in `namespace`, bounded by `--timeout`.
    fn traffic(namespace: &str, args: &[String]) -> Self {
        let mut all = vec!["--timeout".to_owned(), "45".to_owned()];
        all.extend_from_slice(args);
        Self::start(namespace, &traffic_binary().display().to_string(), &all)
    }

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Waits for it; panics unless it exited 0. Returns its stdout.
    fn finish(mut self) -> String {
        let out = self
            .child
            .take()
            .expect("not waited for yet")
            .wait_with_output()
            .expect("the child is waited for");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{} failed ({}): {stdout} {}",
            self.what,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for a server's ready file.
fn wait_ready(server: &mut Spawned, ready: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while !ready.exists() {
        assert!(server.running(), "{} exited before it was ready", server.what);
        assert!(
            Instant::now() < deadline,
            "{} not ready within {DEADLINE:?}",
            server.what
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `ringsieve-traffic ARGS --ready-file` in `namespace` and waits
/// until it listens.
fn server(namespace: &str, dir: &Path, name: &str, args: &[String]) -> Spawned {
    let ready = dir.join(format!("{name}.ready"));
    let mut all = args.to_vec();
    all.extend(["--ready-file".to_owned(), ready.display().to_string()]);
    let mut spawned = Spawned::traffic(namespace, &all);
    wait_ready(&mut spawned, &ready);
    spawned
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Frames in a pcap being written (`tcpdump -U`), or `None` while its last
/// record is incomplete.
fn frames_in(path: &Path) -> Option<u64> {
    let mut file = CaptureFile::open(path).ok()?;
    let mut frames = 0;
    while file.next_packet().ok()?.is_some() {
        frames += 1;
    }
    Some(frames)
}

/// What [`frames_of_connection`] shows of each frame.
const FRAME_FIELDS: [&str; 15] = [
    "frame.time_epoch",
    "frame.interface_name",
    "frame.packet_flags_direction",
    "ip.src",
    "ip.dst",
    "ip.id",
    "ip.ttl",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags.str",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    "udp.srcport",
    "udp.dstport",
];

/// The frames of connection `key` (protocol, client, server) as tshark
/// shows them, in the agent's delivered packets and in the containers'
/// captures: matched by the client's port (NAT keeps it for a connection
/// from the outside, and a container's own port is its own), or for ICMP
/// by the container's address.
fn frames_of_connection(key: &(String, String, String), delivered: &Path, captures: &[PathBuf]) -> String {
    let (protocol, client, server) = key;
    let filter = match client.split_once(':') {
        Some((_, port)) => format!("{}.port == {port}", protocol.to_lowercase()),
        None => {
            let container = [client, server]
                .into_iter()
                .find(|ip| ip.starts_with("172.17."))
                .unwrap_or(client);
            format!("icmp && ip.addr == {container}")
        }
    };
    let mut out = format!("{protocol} {client} -> {server} ({filter}):");
    for file in std::iter::once(delivered).chain(captures.iter().map(PathBuf::as_path)) {
        let mut tshark = Command::new("tshark");
        tshark.arg("-r").arg(file);
        tshark.args(["-Y", &filter, "-T", "fields", "-E", "separator= "]);
        for field in FRAME_FIELDS {
            tshark.args(["-e", field]);
        }
        let shown = tshark.output();
        let text = match shown {
            Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
            Err(e) => format!("tshark: {e}"),
        };
        out.push_str(&format!("\n  {}:\n{text}", file.display()));
    }
    out
}

/// The container of the bed at `ip` (172.17.0.(K+1) is container K).
fn container_at(prefix: &str, ip: &str) -> Option<String> {
    let host: u8 = ip.strip_prefix("172.17.0.")?.parse().ok()?;
    (host >= 2).then(|| format!("{prefix}-c{}", host - 1))
}

/// The IP of an endpoint (`ip:port` or `ip`).
fn ip_of(endpoint: &str) -> &str {
    endpoint.split(':').next().unwrap_or(endpoint)
}

#[test]
fn flow_records_of_new_containers_match_their_own_captures_and_name_them() {
    let test = "flow_records_of_new_containers_match_their_own_captures_and_name_them";
    if !privileged(test) {
        return;
    }
    for tool in ["tcpdump", "curl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!("{tool} is needed (scripts/setup.sh installs it)");
        }
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let prefix = bed.prefix().to_owned();
    let (host, outside, c1) = (bed.namespace("host"), bed.namespace("out"), bed.namespace("c1"));
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let count = COUNT.to_string();
    let containers = NEW_CONTAINERS.count();
    let serving = containers.to_string();

    // The delivered packets too: when a record and a capture disagree,
    // the message lists the connection's frames in both.
    let delivered = dir.path().join("delivered.pcapng");
    let mut ringsieve = start_agent(
        &host,
        &eve,
        Some(METRICS_PORT),
        &[OsStr::new("-w"), delivered.as_os_str()],
    );

    // The servers every new container talks to: one connection each.
    let echo = |listen: &str| strings(&["tcp-server", "--listen", listen, "--connections", &serving]);
    let servers = vec![
        server(&c1, dir.path(), "c1-5000", &echo("0.0.0.0:5000")),
        server(&host, dir.path(), "host-5002", &echo("172.17.0.1:5002")),
        server(&outside, dir.path(), "out-5003", &echo("198.18.0.1:5003")),
        server(
            &outside,
            dir.path(),
            "out-5001",
            &strings(&[
                "udp-sink",
                "--listen",
                "198.18.0.1:5001",
                "--count",
                &(containers * COUNT).to_string(),
            ]),
        ),
    ];

    // Each container starts while the others still talk, and talks at
    // once: its clients start as soon as `start` returns.
    let mut clients = Vec::new();
    let dir_arg = dir.path().display().to_string();
    for k in NEW_CONTAINERS {
        let ns = bed.namespace(&format!("c{k}"));
        let published = (8080 + k).to_string();
        println!(
            "{}",
            bed.docker_host(&["start", &k.to_string(), "--tcpdump", &dir_arg, "--publish", &published])
                .trim()
        );
        let tcp = |to: &str| strings(&["tcp-client", "--connect", to, "--messages", &count]);
        let ping = |to: &str| strings(&["-n", "-q", "-c", &count, "-i", "0.05", "-w", "30", to]);
        clients.push(Spawned::traffic(&ns, &tcp("172.17.0.2:5000")));
        clients.push(Spawned::start(&ns, "ping", &ping("172.17.0.2")));
        clients.push(Spawned::traffic(&ns, &tcp("172.17.0.1:5002")));
        clients.push(Spawned::traffic(&ns, &tcp("198.18.0.1:5003")));
        clients.push(Spawned::traffic(
            &ns,
            &strings(&["udp-send", "--to", "198.18.0.1:5001", "--count", &count]),
        ));
        clients.push(Spawned::start(&ns, "ping", &ping("198.18.0.1")));
        // Its published port, from the outside.
        let own = strings(&["tcp-server", "--listen", "0.0.0.0:80", "--connections", "1"]);
        clients.push(server(&ns, dir.path(), &format!("c{k}-80"), &own));
        clients.push(Spawned::traffic(&outside, &tcp(&format!("198.18.0.2:{published}"))));
    }
    for client in clients {
        client.finish();
    }
    for server in servers {
        server.finish();
    }

    // The agent has read every frame of every container (its capture
    // counters, published about once a second, reach the captures' frame
    // counts) before the containers go: a deleted veth's ring is closed.
    let pcap = |k: usize| dir.path().join(format!("c{k}.pcap"));
    let deadline = Instant::now() + DEADLINE;
    let (mut behind, mut metrics): (Vec<String>, _);
    loop {
        metrics = bed.scrape_metrics(METRICS_PORT);
        behind = NEW_CONTAINERS
            .filter_map(|k| {
                let captured = metrics
                    .get(&format!("ringsieve_captured_total{{interface=\"vethc{k}\"}}"))
                    .unwrap_or(0.0) as u64;
                match frames_in(&pcap(k)) {
                    Some(frames) if captured >= frames => None,
                    Some(frames) => Some(format!("vethc{k}: {captured} of {frames}")),
                    None => Some(format!("c{k}.pcap: a record being written")),
                }
            })
            .collect();
        if behind.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !behind.is_empty() {
        println!(
            "the agent had not read every container frame after {DEADLINE:?}: {behind:?}\n{}",
            metrics.text
        );
    }

    // Containers deleted (each tcpdump stopped first, its pcap complete).
    for k in NEW_CONTAINERS {
        println!("{}", bed.docker_host(&["stop", &k.to_string()]).trim());
    }
    for k in NEW_CONTAINERS {
        let log = std::fs::read_to_string(dir.path().join(format!("c{k}.tcpdump.log"))).unwrap_or_default();
        assert!(
            log.lines().any(|l| l == "0 packets dropped by kernel"),
            "tcpdump in container {k} dropped packets or did not end cleanly: {log}"
        );
    }
    // The agent saw them go (released their rings) before it stops.
    ringsieve.wait_for("released", containers);
    // Its metrics once the flow trackers' counters (published on the
    // workers' ticks) caught up with the packets the workers took: nothing
    // changes from here to the summary after the stop.
    let deadline = Instant::now() + DEADLINE;
    let metrics = loop {
        let metrics = bed.scrape_metrics(METRICS_PORT);
        let sum = |family: &str| -> f64 {
            (0..2)
                .map(|worker| metrics.value(&format!("{family}{{worker=\"{worker}\"}}")))
                .sum()
        };
        // And the capture threads' counters (published about once a
        // second) have every copy the workers were handed.
        let handed = metrics.value("ringsieve_pool_queued_total") + metrics.value("ringsieve_pool_dropped_total");
        if sum("ringsieve_worker_flow_packets_total") == sum("ringsieve_worker_packets_total")
            && metrics.value("ringsieve_dedup_delivered_total") == handed
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "the flow trackers' counters never caught up: {}",
            metrics.text
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let (code, lines) = ringsieve.stop("-TERM");
    let summary: serde_json::Value =
        serde_json::from_str(lines.last().expect("a summary line")).expect("the last line is JSON");
    drop(bed);
    let left: Vec<String> = namespaces().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert_eq!(code, 0, "ringsieve run exit: {lines:?}");
    let total = &summary["total"];
    assert_eq!(total["balanced"], true, "{summary}");
    assert_eq!(total["queue_drops"], 0, "{summary}");
    for k in NEW_CONTAINERS {
        let veth = &summary["interfaces"][format!("vethc{k}")];
        assert_eq!(veth["kernel_drops"], 0, "vethc{k}: {summary}");
    }
    println!("discovery: {}", summary["discovery"]);
    // Every series with a counterpart in the summary is the summary's:
    // per interface, the pool, the workers, the dedup, conntrack.
    metrics.check_against(&summary, true);

    // The discovery in the metrics is the summary's, which counts what
    // happened: each new container's veth appeared, was timed from its
    // event to its rings, and went; the rings opened are those the capture
    // threads report, and those released the new veths'.
    let discovery = &summary["discovery"];
    let number = |value: &serde_json::Value| value.as_u64().unwrap_or_else(|| panic!("a count: {summary}"));
    for key in [
        "interfaces_appeared",
        "interfaces_disappeared",
        "role_changes",
        "containers_named",
        "netlink_overflows",
        "resyncs",
        "rings_opened",
        "rings_released",
    ] {
        assert_eq!(
            metrics.value(&format!("ringsieve_discovery_{key}_total")),
            number(&discovery[key]) as f64,
            "{key}: {}\n{summary}",
            metrics.text
        );
    }
    let timed = &discovery["event_to_capture"];
    assert_eq!(
        metrics.value("ringsieve_discovery_event_to_capture_seconds_count"),
        number(&timed["interfaces"]) as f64
    );
    for (quantile, key) in [("0.5", "p50_us"), ("0.99", "p99_us"), ("1", "max_us")] {
        let seconds = metrics.value(&format!(
            "ringsieve_discovery_event_to_capture_seconds{{quantile=\"{quantile}\"}}"
        ));
        let us = timed[key].as_f64().expect("a time");
        assert!(
            (seconds * 1e6 - us).abs() <= 1e-6 * us.max(1.0),
            "{quantile}: {seconds} s, {us} us"
        );
    }
    assert_eq!(
        number(&discovery["interfaces_appeared"]),
        containers as u64,
        "{summary}"
    );
    assert_eq!(
        number(&discovery["interfaces_disappeared"]),
        containers as u64,
        "{summary}"
    );
    assert_eq!(number(&timed["interfaces"]), containers as u64, "{summary}");
    let interfaces = summary["interfaces"].as_object().expect("interfaces");
    let rings = |name: &str| number(&interfaces[name]["rings"]);
    assert_eq!(
        number(&discovery["rings_opened"]),
        interfaces.keys().map(|name| rings(name)).sum::<u64>(),
        "{summary}"
    );
    assert_eq!(
        number(&discovery["rings_released"]),
        NEW_CONTAINERS.map(|k| rings(&format!("vethc{k}"))).sum::<u64>(),
        "{summary}"
    );
    // The flow trackers' counters in the metrics are the summary's.
    let flows = &summary["workers"]["flows"];
    for (family, key) in [
        ("ringsieve_worker_flow_packets_total", "packets"),
        ("ringsieve_worker_flows_started_total", "flows_started"),
    ] {
        let scraped: f64 = (0..2)
            .map(|worker| metrics.value(&format!("{family}{{worker=\"{worker}\"}}")))
            .sum();
        assert_eq!(scraped, number(&flows[key]) as f64, "{family}: {summary}");
    }

    // The containers' connections, from their captures alone.
    let files: Vec<PathBuf> = NEW_CONTAINERS.map(pcap).collect();
    let frames = testbed::fixtures::distinct_frames(&files).expect("container captures read");
    let expected = testbed::fixtures::directed_connections(
        frames
            .iter()
            .map(|(_, frame)| frame.as_slice())
            .filter(|frame| frame.len() > 14 && touches_a_container(&frame[14..])),
    );

    // The agent's records of connections that touch a container.
    let text = std::fs::read_to_string(&eve).expect("the EVE file");
    let mut found: BTreeMap<(String, String, String), DirectedCounts> = BTreeMap::new();
    let mut undirected = BTreeSet::new();
    let mut misnamed = Vec::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("EVE line {line:?}: {e}"));
        if event["event_type"] != "flow" {
            continue;
        }
        let endpoint = |ip: &str, port: &str| {
            let ip = event[ip].as_str().unwrap_or_else(|| panic!("{ip} in {event}"));
            match event[port].as_u64() {
                Some(port) => format!("{ip}:{port}"),
                None => ip.to_owned(),
            }
        };
        let (src, dest) = (endpoint("src_ip", "src_port"), endpoint("dest_ip", "dest_port"));
        let is_container = |endpoint: &str| container_at(&prefix, ip_of(endpoint)).is_some();
        let multicast = ip_of(&dest)
            .split('.')
            .next()
            .and_then(|o| o.parse::<u8>().ok())
            .is_some_and(|o| (224..240).contains(&o));
        if multicast || !(is_container(&src) || is_container(&dest)) {
            continue;
        }
        let protocol = event["proto"].as_str().expect("proto").to_owned();
        let flow = &event["flow"];
        let counts = DirectedCounts {
            to_server: flow["pkts_toserver"].as_u64().expect("pkts_toserver"),
            to_client: flow["pkts_toclient"].as_u64().expect("pkts_toclient"),
        };
        let pair = if src <= dest {
            (protocol.clone(), src.clone(), dest.clone())
        } else {
            (protocol.clone(), dest.clone(), src.clone())
        };
        assert!(undirected.insert(pair), "two records for one connection: {event}");
        for (endpoint, field) in [(&src, "src_container"), (&dest, "dest_container")] {
            // The container object's name (the namespace's, without Docker),
            // and its netns the same.
            let named = event.get(field).and_then(|v| v["name"].as_str()).map(str::to_owned);
            if let Some(object) = event.get(field) {
                if object["netns"] != object["name"] {
                    misnamed.push(format!("{field} netns differs from the name: {event}"));
                }
            }
            let expected = container_at(&prefix, ip_of(endpoint));
            if named != expected {
                misnamed.push(format!("{field} {named:?}, expected {expected:?}: {event}"));
            }
        }
        found.insert((protocol, src, dest), counts);
    }

    let missing: Vec<_> = expected.iter().filter(|(k, _)| !found.contains_key(*k)).collect();
    let extra: Vec<_> = found.iter().filter(|(k, _)| !expected.contains_key(*k)).collect();
    let differing: Vec<_> = expected
        .iter()
        .filter_map(|(k, want)| found.get(k).filter(|got| *got != want).map(|got| (k, want, got)))
        .collect();
    let mut by_protocol = BTreeMap::new();
    for (protocol, _, _) in expected.keys() {
        *by_protocol.entry(protocol.as_str()).or_insert(0) += 1;
    }
    let packets: u64 = expected.values().map(|c| c.to_server + c.to_client).sum();
    println!(
        "{containers} new containers: {} connections ({by_protocol:?}), {packets} packets in their captures; {} flow records touch a container",
        expected.len(),
        found.len()
    );
    let frames_of_disagreements = if missing.is_empty() && extra.is_empty() && differing.is_empty() {
        String::new()
    } else {
        let keys = missing
            .iter()
            .map(|(k, _)| *k)
            .chain(extra.iter().map(|(k, _)| *k))
            .chain(differing.iter().map(|(k, _, _)| *k));
        keys.map(|key| frames_of_connection(key, &delivered, &files))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "flow records against the containers' captures (client, server: packets to server, to client):\n\
         in the captures, no record: {missing:#?}\nrecords no capture shows: {extra:#?}\n\
         counts differ (capture, record): {differing:#?}\n{frames_of_disagreements}"
    );
    assert!(misnamed.is_empty(), "containers named wrong: {misnamed:#?}");
    // Every kind of traffic took part: per container, two connections to
    // c1 (TCP, ICMP), one to the host, three to the outside, one from it.
    assert_eq!(expected.len(), containers * 7, "{expected:#?}");
}
