//! `ringsieve run` as the host agent, in the test bed: started with no
//! interface option in the host namespace, it captures every interface,
//! follows containers that start and stop while it runs (the first packets
//! a new container sends included), names them in its flow records, and
//! over 100 container start/stop cycles leaks no ring, file descriptor or
//! thread and keeps its memory flat.

use std::time::{Duration, Instant};

use crate::netns::privileged;
use crate::process::{in_namespace, Watched};
use crate::testbed::{one_at_a_time, Bed};

const RINGSIEVE: &str = env!("CARGO_BIN_EXE_ringsieve");

/// Open file descriptors, threads and resident kB of process `pid`.
fn footprint(pid: u32) -> (usize, usize, u64) {
    let count = |dir: String| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    (
        count(format!("/proc/{pid}/fd")),
        count(format!("/proc/{pid}/task")),
        rss,
    )
}

#[test]
fn the_agent_follows_containers_names_them_and_leaks_nothing_over_100_cycles() {
    let test = "the_agent_follows_containers_names_them_and_leaks_nothing_over_100_cycles";
    if !privileged(test) {
        return;
    }
    let _serial = one_at_a_time();
    let bed = Bed::up();
    let prefix = bed.prefix().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let mut command = in_namespace(&bed.namespace("host"), RINGSIEVE);
    command
        .args(["run", "--workers", "2", "--stats-interval", "0", "--eve"])
        .arg(&eve)
        .env("RUST_LOG", "info");
    let mut ringsieve = Watched::spawn(command);
    ringsieve.wait_for("capture started", 1);
    let pid = ringsieve.pid();

    // A container starts while the agent runs and pings another at once:
    // its veth must be captured before its first packet.
    bed.docker_host(&["start", "4"]);
    let ping = in_namespace(&format!("{prefix}-c4"), "ping")
        .args(["-c", "5", "-i", "0.01", "-W", "1", "172.17.0.2"])
        .output()
        .expect("ping runs");
    assert!(
        ping.status.success(),
        "ping from the new container: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    bed.docker_host(&["stop", "4"]);

    // 100 container lives under the agent; its footprint before and after
    // (once the stopped container's ring is closed).
    std::thread::sleep(Duration::from_millis(300));
    let before = footprint(pid);
    let started = Instant::now();
    for _ in 0..100 {
        bed.docker_host(&["start", "5"]);
        bed.docker_host(&["stop", "5"]);
    }
    let cycles = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let after = footprint(pid);

    let (code, lines) = ringsieve.stop("-TERM");
    drop(bed);
    assert_eq!(code, 0, "ringsieve run exit: {lines:?}");
    let summary: serde_json::Value =
        serde_json::from_str(lines.last().expect("a summary line")).expect("the last line is JSON");
    println!("100 container cycles in {cycles:?}; fds, threads, RSS kB before {before:?}, after {after:?}");
    println!("discovery: {}", summary["discovery"]);

    assert!(
        after.0 <= before.0,
        "file descriptors leaked over 100 cycles: {before:?} -> {after:?}"
    );
    assert!(
        after.1 <= before.1,
        "threads leaked over 100 cycles: {before:?} -> {after:?}"
    );
    assert!(
        after.2 < before.2 + 16 * 1024,
        "resident memory grew by more than 16 MiB over 100 cycles: {before:?} -> {after:?}"
    );
    let discovery = &summary["discovery"];
    assert!(
        discovery["interfaces_appeared"].as_u64().unwrap_or(0) >= 101,
        "{summary}"
    );
    assert!(
        discovery["interfaces_disappeared"].as_u64().unwrap_or(0) >= 101,
        "{summary}"
    );
    assert_eq!(summary["total"]["balanced"], true, "{summary}");
    // Timings are printed above and recorded in BENCHMARKS.md, not
    // asserted: the count says every new veth was captured.
    assert!(
        discovery["event_to_capture"]["interfaces"].as_u64().unwrap_or(0) >= 101,
        "{summary}"
    );

    // The new container's ping: one flow, every packet, both containers
    // named.
    let text = std::fs::read_to_string(&eve).expect("the EVE file");
    let flows: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("EVE line {line:?}: {e}")))
        .filter(|event: &serde_json::Value| {
            event["event_type"] == "flow" && event["src_ip"] == "172.17.0.5" && event["proto"] == "ICMP"
        })
        .collect();
    let icmp: Vec<&str> = text.lines().filter(|l| l.contains("ICMP")).collect();
    assert_eq!(flows.len(), 1, "one ICMP flow from the new container: {icmp:?}");
    let flow = &flows[0];
    assert_eq!(flow["dest_ip"], "172.17.0.2", "{flow}");
    assert_eq!(
        flow["flow"]["pkts_toserver"], 5,
        "every echo request, the first included: {flow}"
    );
    assert_eq!(flow["flow"]["pkts_toclient"], 5, "{flow}");
    assert_eq!(flow["src_container"]["name"], format!("{prefix}-c4"), "{flow}");
    assert_eq!(flow["src_container"]["netns"], format!("{prefix}-c4"), "{flow}");
    assert_eq!(flow["dest_container"]["name"], format!("{prefix}-c1"), "{flow}");
}
