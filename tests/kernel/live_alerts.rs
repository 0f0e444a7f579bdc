//! The signature engine live in the test bed: `ringsieve run --rules` with
//! no interface option in the bed's host namespace (so HOME_NET comes from
//! docker0's subnet), while containers send marked payloads:
//!
//! - to the outside through MASQUERADE, and from the outside to the
//!   published port through DNAT: each marker, captured on the veth,
//!   docker0 and eth0, raises exactly one alert, with the container's own
//!   address and the container named;
//! - split across two TCP segments: one alert, from the reassembled stream;
//! - an overlap with different data (raw frames): one anomaly event;
//! - after SIGHUP with a new rule, the new rule alerts; after a SIGHUP whose
//!   file is gone, the rules in use stay and still alert.
//!
//! Every alert's flow_id is that of a flow record marked `alerted`, and the
//! accounting balances with no queue drop.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::netns::privileged;
use crate::process::{in_namespace, Watched};
use crate::testbed::{one_at_a_time, traffic_binary, Bed};

const RINGSIEVE: &str = env!("CARGO_BIN_EXE_ringsieve");

const RULES: &str = r#"alert tcp $HOME_NET any -> $EXTERNAL_NET 5003 (msg:"marker out through MASQUERADE"; flow:to_server,established; content:"RSv1|00 00 00 02|"; classtype:trojan-activity; sid:100; rev:1;)
alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:"marker in through DNAT"; flow:to_server,established; content:"RSv1|00 00 00 01|"; sid:101; rev:1;)
alert tcp any any -> any 5004 (msg:"split marker"; flow:to_server,established; content:"RS-SPLIT-MARKER"; sid:102; rev:1;)
"#;

/// Datagrams sent while the rules are reloaded twice.
const ACROSS_RELOADS: u64 = 2000;

const RELOADED: &str = r#"alert tcp any any -> any 5004 (msg:"split marker"; flow:to_server,established; content:"RS-SPLIT-MARKER"; sid:102; rev:1;)
alert tcp any any -> any 5005 (msg:"after reload"; flow:to_server,established; content:"RS-RELOADED"; sid:103; rev:1;)
"#;

/// Runs `ringsieve-traffic ARGS` in the bed's namespace `role`.
fn traffic(bed: &Bed, role: &str, args: &[&str]) -> Command {
    let mut command = in_namespace(&bed.namespace(role), traffic_binary().to_str().expect("a UTF-8 path"));
    command.args(["--timeout", "20"]).args(args);
    command
}

fn succeeded(what: &str, output: std::io::Result<Output>) {
    let output = output.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The traffic server `args` in `namespace`, in the background, returned
/// once it listens (it touches `ready`).
fn serve(bed: &Bed, namespace: &str, args: &[&str], ready: &Path) -> std::process::Child {
    let _ = std::fs::remove_file(ready);
    let server = traffic(bed, namespace, args)
        .args(["--ready-file", ready.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    for _ in 0..1000 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "the server listens: {namespace} {args:?}");
    server
}

/// A server in the background, and the client that talks to it.
fn exchange(bed: &Bed, server: (&str, &[&str]), client: (&str, &[&str]), ready: &Path) {
    let mut serve = serve(bed, server.0, server.1, ready);
    succeeded(&format!("{client:?}"), traffic(bed, client.0, client.1).output());
    let status = serve.wait().expect("the server ends");
    assert!(status.success(), "{server:?}");
}

fn events(eve: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(eve)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every EVE line is JSON"))
        .collect()
}

fn alerts_with_sid(events: &[serde_json::Value], sid: u64) -> Vec<&serde_json::Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .collect()
}

#[test]
fn each_marker_alerts_once_in_the_containers_address_space() {
    let test = "each_marker_alerts_once_in_the_containers_address_space";
    if !privileged(test) {
        return;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let prefix = bed.namespace("host").trim_end_matches("-host").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let rules = dir.path().join("local.rules");
    let ready = dir.path().join("ready");
    std::fs::write(&rules, RULES).unwrap();

    let mut command = in_namespace(&bed.namespace("host"), RINGSIEVE);
    command
        .args([
            "run",
            "--workers",
            "2",
            "--stats-interval",
            "0",
            "--metrics",
            "19187",
            "--eve",
        ])
        .arg(&eve)
        .arg("--rules")
        .arg(&rules)
        .env("RUST_LOG", "info");
    let mut ringsieve = Watched::spawn(command);
    ringsieve.wait_for("3 rules loaded, 0 skipped", 1);
    ringsieve.wait_for("capture started", 1);

    // c1 → outside through MASQUERADE: three echo messages, #2 is marked.
    exchange(
        &bed,
        ("out", &["tcp-server", "--listen", "198.18.0.1:5003", "--mode", "echo"]),
        ("c1", &["tcp-client", "--connect", "198.18.0.1:5003", "--messages", "3"]),
        &ready,
    );
    // outside → the published port, DNAT'd to c1:80: #1 is marked.
    exchange(
        &bed,
        ("c1", &["tcp-server", "--listen", "0.0.0.0:80", "--mode", "echo"]),
        (
            "out",
            &["tcp-client", "--connect", "198.18.0.2:8080", "--messages", "3"],
        ),
        &ready,
    );
    // c2 → outside, the marker in two segments 100 ms apart.
    exchange(
        &bed,
        ("out", &["tcp-server", "--listen", "198.18.0.1:5004", "--mode", "sink"]),
        (
            "c2",
            &[
                "tcp-send",
                "--connect",
                "198.18.0.1:5004",
                "--chunk",
                "GET /RS-SPLIT",
                // `=`: the text starts with a dash.
                "--chunk=-MARKER HTTP/1.0\r\n\r\n",
            ],
        ),
        &ready,
    );
    // c3 sends one sequence range twice with other bytes.
    succeeded(
        "tcp-overlap",
        traffic(
            &bed,
            "c3",
            &[
                "tcp-overlap",
                "--interface",
                "eth0",
                "--dst-mac",
                "02:42:ac:11:00:01",
                "--src",
                "172.17.0.4:41000",
                "--dst",
                "198.18.0.1:5010",
                "--first",
                "GET /index.html",
                "--second",
                "GET /evil!.html",
            ],
        )
        .output(),
    );

    // Datagrams from c1 to the outside all through both reloads below: a
    // reload must neither stop the capture nor lose a packet.
    let sink_ready = dir.path().join("sink-ready");
    let across = ACROSS_RELOADS.to_string();
    let mut sink = serve(
        &bed,
        "out",
        &["udp-sink", "--listen", "198.18.0.1:5020", "--count", &across],
        &sink_ready,
    );
    let mut sender = traffic(&bed, "c1", &["udp-send", "--to", "198.18.0.1:5020", "--count", &across])
        .args(["--interval-ms", "2"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the sender starts");
    std::thread::sleep(Duration::from_millis(300));

    // A new rule file, then SIGHUP: the new rule alerts.
    std::fs::write(&rules, RELOADED).unwrap();
    let hup = |ringsieve: &Watched| {
        let status = Command::new("kill")
            .args(["-HUP", &ringsieve.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    assert!(
        matches!(sender.try_wait(), Ok(None)),
        "the datagrams flow while the rules are reloaded"
    );
    hup(&ringsieve);
    ringsieve.wait_for("rules reloaded", 1);
    assert!(
        matches!(sender.try_wait(), Ok(None)),
        "the datagrams flow until the rules were reloaded"
    );
    exchange(
        &bed,
        ("out", &["tcp-server", "--listen", "198.18.0.1:5005", "--mode", "sink"]),
        (
            "c2",
            &["tcp-send", "--connect", "198.18.0.1:5005", "--chunk", "RS-RELOADED"],
        ),
        &ready,
    );
    // The file gone, SIGHUP: the reload fails, the rules in use stay.
    std::fs::remove_file(&rules).unwrap();
    hup(&ringsieve);
    ringsieve.wait_for("rule reload failed", 1);
    exchange(
        &bed,
        ("out", &["tcp-server", "--listen", "198.18.0.1:5005", "--mode", "sink"]),
        (
            "c1",
            &[
                "tcp-send",
                "--connect",
                "198.18.0.1:5005",
                "--chunk",
                "RS-RELOADED again",
            ],
        ),
        &ready,
    );

    assert!(sender.wait().expect("the sender ends").success(), "udp-send");
    assert!(
        sink.wait().expect("the sink ends").success(),
        "every datagram reached the outside"
    );

    // The alerts in the metrics, once every worker has published them.
    let mut scraped = 0.0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let metrics = bed.scrape_metrics(19187);
        scraped = (0..2)
            .map(|worker| {
                metrics
                    .get(&format!("ringsieve_worker_alerts_total{{worker=\"{worker}\"}}"))
                    .unwrap_or(0.0)
            })
            .sum();
        if scraped >= 5.0 {
            break;
        }
    }
    assert_eq!(scraped, 5.0, "five alerts in the metrics");
    let (code, lines) = ringsieve.stop("-TERM");
    drop(bed);
    assert_eq!(code, 0, "ringsieve run exit: {lines:?}");
    let summary: serde_json::Value =
        serde_json::from_str(lines.last().expect("a summary line")).expect("the last line is JSON");
    assert_eq!(summary["total"]["balanced"], true, "{summary}");
    assert_eq!(summary["total"]["queue_drops"], 0, "{summary}");
    assert_eq!(summary["detection"]["reloads"], 1, "{summary}");
    assert_eq!(summary["detection"]["failed_reloads"], 1, "{summary}");
    assert!(
        lines.iter().any(|l| l.contains("home_net=[172.17.0.0/16]")),
        "HOME_NET from docker0's subnet: {lines:?}"
    );

    let events = events(&eve);
    for event in events
        .iter()
        .filter(|e| e["event_type"] == "alert" || e["event_type"] == "anomaly")
    {
        println!("{event}");
    }
    println!("{}", summary["workers"]);
    let c1 = serde_json::json!(format!("{prefix}-c1"));
    let c2 = serde_json::json!(format!("{prefix}-c2"));
    let c3 = serde_json::json!(format!("{prefix}-c3"));

    let out = alerts_with_sid(&events, 100);
    assert_eq!(out.len(), 1, "one alert for the marker sent out: {out:?}");
    let alert = out[0];
    assert_eq!(alert["src_ip"], "172.17.0.2", "{alert}");
    assert_eq!(alert["dest_ip"], "198.18.0.1", "{alert}");
    assert_eq!(alert["dest_port"], 5003, "{alert}");
    assert_eq!(alert["src_container"]["name"], c1, "{alert}");
    assert_eq!(alert["alert"]["severity"], 1, "{alert}");
    assert_eq!(
        alert["ringsieve"]["nat"]["src_ip"], "198.18.0.2",
        "the public side: {alert}"
    );

    let inbound = alerts_with_sid(&events, 101);
    assert_eq!(inbound.len(), 1, "one alert for the marker sent in: {inbound:?}");
    let alert = inbound[0];
    assert_eq!(alert["src_ip"], "198.18.0.1", "{alert}");
    assert_eq!(
        alert["dest_ip"], "172.17.0.2",
        "the container's address, not 198.18.0.2: {alert}"
    );
    assert_eq!(alert["dest_port"], 80, "{alert}");
    assert_eq!(alert["dest_container"]["name"], c1, "{alert}");

    let split = alerts_with_sid(&events, 102);
    assert_eq!(split.len(), 1, "the split marker once: {split:?}");
    assert_eq!(split[0]["src_ip"], "172.17.0.3", "{}", split[0]);
    assert_eq!(split[0]["src_container"]["name"], c2, "{}", split[0]);
    assert!(
        split[0]["ringsieve"]["stream_offset"].as_u64().is_some(),
        "{}",
        split[0]
    );

    let reloaded = alerts_with_sid(&events, 103);
    assert_eq!(
        reloaded.len(),
        2,
        "the new rule, before and after the failed reload: {reloaded:?}"
    );

    let across: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event_type"] == "flow" && e["proto"] == "UDP" && e["dest_port"] == 5020)
        .collect();
    assert_eq!(across.len(), 1, "one flow for the datagrams: {across:?}");
    assert_eq!(across[0]["src_ip"], "172.17.0.2", "{}", across[0]);
    assert_eq!(
        across[0]["flow"]["pkts_toserver"], ACROSS_RELOADS,
        "every datagram sent across the reloads: {}",
        across[0]
    );

    let anomalies: Vec<&serde_json::Value> = events.iter().filter(|e| e["event_type"] == "anomaly").collect();
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    let anomaly = anomalies[0];
    assert_eq!(anomaly["anomaly"]["type"], "stream", "{anomaly}");
    assert_eq!(
        anomaly["anomaly"]["event"], "reassembly_overlap_different_data",
        "{anomaly}"
    );
    assert_eq!(anomaly["src_ip"], "172.17.0.4", "{anomaly}");
    assert_eq!(anomaly["src_container"]["name"], c3, "{anomaly}");

    // Every alert's flow has a record with the same id, marked alerted.
    for alert in events.iter().filter(|e| e["event_type"] == "alert") {
        let flow = events
            .iter()
            .find(|e| e["event_type"] == "flow" && e["flow_id"] == alert["flow_id"])
            .unwrap_or_else(|| panic!("no flow record for {alert}"));
        assert_eq!(flow["flow"]["alerted"], true, "{flow}");
    }
}
