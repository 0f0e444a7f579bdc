//! The live pipeline under stress in the test bed: a worker that stalls
//! (its pcapng output is a FIFO nobody reads) costs counted queue drops,
//! not a hang, and the accounting still balances; SIGTERM in the middle of
//! traffic drains the queues, ends every open flow and leaves an EVE file
//! whose every line is complete JSON.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::time::Duration;

use crate::netns::privileged;
use crate::process::{in_namespace, Watched};
use crate::testbed::{one_at_a_time, Bed};

const RINGSIEVE: &str = env!("CARGO_BIN_EXE_ringsieve");

/// `O_NONBLOCK`: opens a FIFO's read end without waiting for a writer.
const O_NONBLOCK: i32 = 0o4000;

/// Waits (up to 60 s: the first traffic case may build its generator) for
/// an EVE `stats` event for which `done` holds.
fn wait_for_stats(eve: &std::path::Path, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(eve).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["event_type"] == "stats")
            .any(|event| done(&event["stats"]));
        if found {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no such stats event in {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stalled_worker_drops_counted_packets_and_sigterm_mid_traffic_leaves_complete_eve() {
    let test = "a_stalled_worker_drops_counted_packets_and_sigterm_mid_traffic_leaves_complete_eve";
    if !privileged(test) {
        return;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pcap.fifo");
    let eve = dir.path().join("eve.json");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(status.success());
    // The read end is open (so ringsieve's open of the write end returns)
    // but nobody reads: once the pipe's buffer is full, the worker writing
    // pcapng blocks, as a worker stalled by a slow disk or a slow IDS.
    let mut reader = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(&fifo)
        .expect("the FIFO opens");

    let mut command = in_namespace(&bed.namespace("host"), RINGSIEVE);
    command
        .args(["run", "-i", "docker0,vethc1,vethc2,vethc3,eth0", "--workers", "1"])
        .args([
            "--queue-depth",
            "128",
            "--stats-interval",
            "1",
            "--metrics",
            "19185",
            "-w",
        ])
        .arg(&fifo)
        .arg("--eve")
        .arg(&eve)
        .env("RUST_LOG", "info");
    let mut ringsieve = Watched::spawn(command);
    ringsieve.wait_for("capturing", 5);

    std::thread::scope(|scope| {
        let bed = &bed;
        let traffic = scope.spawn(move || {
            for case in ["bulk-out", "c2c-udp", "bulk-c2c"] {
                println!("{}", bed.traffic(case));
            }
        });
        // Mid-traffic: once a stats event shows queue drops, the worker has
        // been stalled for a while and traffic is still running.
        wait_for_stats(&eve, |stats| stats["queue_drops"].as_u64().unwrap_or(0) > 0);
        // A real scrape of the Prometheus endpoint, inside the host
        // namespace (its loopback), in exposition format: counters per
        // interface, drops by reason, the workers' latency and flow
        // trackers, the discovery (with interface options nothing appears,
        // but the initial interfaces' rings are counted).
        let metrics = bed.scrape_metrics(19185);
        assert!(
            metrics.value("ringsieve_captured_total{interface=\"vethc1\"}") > 0.0,
            "{}",
            metrics.text
        );
        assert!(
            metrics.value("ringsieve_kernel_packets_total{interface=\"eth0\"}") > 0.0,
            "{}",
            metrics.text
        );
        for series in [
            "ringsieve_queue_drops_total{interface=\"vethc1\",reason=\"queue_full\"}",
            "ringsieve_worker_latency_seconds{worker=\"0\",quantile=\"0.99\"}",
            "ringsieve_worker_flows_active{worker=\"0\"}",
            "ringsieve_worker_flow_records_total{worker=\"0\",reason=\"shutdown\"}",
            "ringsieve_discovery_event_to_capture_seconds{quantile=\"0.99\"}",
            "ringsieve_discovery_resyncs_total",
        ] {
            metrics.value(series);
        }
        assert_eq!(
            metrics.value("ringsieve_discovery_interfaces_appeared_total"),
            0.0,
            "{}",
            metrics.text
        );
        assert_eq!(
            metrics.value("ringsieve_discovery_event_to_capture_seconds_count"),
            0.0,
            "{}",
            metrics.text
        );
        assert!(
            metrics.value("ringsieve_discovery_rings_opened_total") >= 5.0,
            "a ring at least on each of the five interfaces: {}",
            metrics.text
        );
        // The FIFO is drained a second after SIGTERM, so the stop starts
        // while the worker is still stalled.
        let drain = scope.spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let mut pcap = Vec::new();
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => pcap.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("reading the FIFO: {e}"),
                }
            }
            pcap
        });
        let (code, lines) = ringsieve.stop("-TERM");
        let pcap = drain.join().expect("the drain thread");
        traffic.join().expect("the traffic thread");

        assert_eq!(code, 0, "ringsieve run exit: {lines:?}");
        let summary: serde_json::Value =
            serde_json::from_str(lines.last().expect("a summary line")).expect("the last line is JSON");
        // Every series the scrape mid-traffic had is at most the summary's;
        // the pool had dropped already, and the dedup counted. (The
        // stalled worker's latency is not refreshed: its histogram may be
        // empty still.)
        metrics.check_against(&summary, false);
        assert!(metrics.value("ringsieve_pool_dropped_total") > 0.0, "{}", metrics.text);
        assert!(
            metrics.value("ringsieve_dedup_captured_total") > 0.0,
            "{}",
            metrics.text
        );
        let total = &summary["total"];
        assert_eq!(
            total["balanced"], true,
            "captured = delivered + duplicates + malformed + queue drops: {summary}"
        );
        assert!(
            total["queue_drops_by_reason"]["queue_full"].as_u64().unwrap_or(0) > 0,
            "a stalled worker's queue fills: {summary}"
        );
        assert_eq!(summary["pcap"]["packets_written"], total["delivered"], "{summary}");

        // The pcapng that went through the FIFO is whole.
        let copy = dir.path().join("drained.pcapng");
        std::fs::write(&copy, &pcap).unwrap();
        let capinfos = Command::new("capinfos")
            .args(["-c", "-M"])
            .arg(&copy)
            .output()
            .expect("capinfos runs");
        let report = String::from_utf8_lossy(&capinfos.stdout);
        assert!(
            capinfos.status.success(),
            "capinfos: {report} {}",
            String::from_utf8_lossy(&capinfos.stderr)
        );
        let packets = report
            .lines()
            .find_map(|l| l.strip_prefix("Number of packets:"))
            .map(|n| n.trim().parse::<u64>().expect("a count"))
            .expect("capinfos gives a count");
        assert_eq!(Some(packets), summary["pcap"]["packets_written"].as_u64(), "{report}");

        // Every EVE line is complete JSON; flows ended, stats were written.
        let text = std::fs::read_to_string(&eve).expect("the EVE file");
        assert!(text.ends_with('\n'), "the last EVE line is complete");
        let mut flows = 0;
        let mut stats = 0;
        for line in text.lines() {
            let event: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("EVE line {line:?}: {e}"));
            match event["event_type"].as_str() {
                Some("flow") => {
                    flows += 1;
                    let reason = event["flow"]["reason"].as_str().unwrap_or_default();
                    assert!(["shutdown", "timeout", "forced"].contains(&reason), "{event}");
                }
                Some("stats") => stats += 1,
                other => panic!("unexpected event type {other:?}: {event}"),
            }
        }
        assert!(flows > 0, "flow records written at shutdown");
        assert!(stats > 0, "stats events every second");
    });
    drop(bed);
}
