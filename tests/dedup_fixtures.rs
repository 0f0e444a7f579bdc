//! `ringsieve read` over the dedup fixtures recorded in the Docker-host test
//! bed (tests/fixtures/dedup, scripts/record-fixtures.sh): for every
//! duplication case, the packets delivered are exactly the packets that
//! crossed the host, as the containers' own captures show them (counted
//! without any of ringsieve's code, see `testbed::fixtures`), in the
//! containers' address space; and the output is the same file, byte for
//! byte, whatever order the interfaces' packets are read in.
//!
//! Needs no privileges: it runs the binary on files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use capture_file::{CaptureFile, LinkKind};
use testbed::fixtures::{load_all, Fixture};

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedup");
    let fixtures = load_all(&dir).expect("the fixture manifests load");
    assert!(fixtures.len() >= 11, "{} fixtures in {}", fixtures.len(), dir.display());
    fixtures
}

/// Runs `ringsieve read` on a fixture's host capture with `extra` options;
/// returns the summary (last line of stderr) and the output file.
fn read(fixture: &Fixture, out: &Path, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_ringsieve"))
        .arg("read")
        .arg(&fixture.host_capture)
        .arg("--role")
        .arg(fixture.roles_arg())
        .arg("-w")
        .arg(out)
        .args(extra)
        .output()
        .expect("ringsieve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: ringsieve read failed: {stderr}",
        fixture.case
    );
    let last = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{}: summary {last:?}: {e}", fixture.case))
}

/// The network-layer bytes of every packet of a capture (Ethernet or cooked).
fn network_packets(path: &Path) -> Vec<Vec<u8>> {
    let mut file = CaptureFile::open(path).expect("the capture opens");
    let mut packets = Vec::new();
    while let Some(packet) = file.next_packet().expect("the capture reads") {
        let offset = match packet.link {
            LinkKind::Ethernet => 14,
            LinkKind::LinuxSll(header) | LinkKind::LinuxSll2(header) => header.payload_offset,
            other => panic!("{}: unexpected link {other:?}", path.display()),
        };
        packets.push(packet.data[offset..].to_vec());
    }
    packets
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

#[test]
fn every_fixture_delivers_exactly_the_packets_the_containers_saw() {
    let dir = temp_dir();
    for fixture in fixtures() {
        let out = dir.path().join(format!("{}.pcapng", fixture.case));
        let summary = read(&fixture, &out, &[]);
        let dedup = &summary["dedup"];
        let case = &fixture.case;
        assert_eq!(dedup["delivered"], fixture.expected_delivered, "{case}: {summary}");
        assert_eq!(summary["pcap"]["packets_written"], fixture.expected_delivered, "{case}");
        assert_eq!(dedup["captured"], fixture.host_copies, "{case}");
        assert_eq!(
            dedup["delivered"].as_u64().unwrap()
                + dedup["duplicates"].as_u64().unwrap()
                + dedup["malformed"].as_u64().unwrap(),
            fixture.host_copies,
            "{case}: every copy accounted for"
        );
        assert_eq!(dedup["malformed"], 0, "{case}");
        // The same packets, byte for byte from the network layer on (so in
        // the containers' address space: an uplink copy differs after NAT).
        let delivered: Vec<Vec<u8>> = network_packets(&out);
        let delivered_set: BTreeSet<&Vec<u8>> = delivered.iter().collect();
        let container: Vec<Vec<u8>> = fixture
            .container_captures
            .iter()
            .flat_map(|c| network_packets(c))
            .collect();
        let container_set: BTreeSet<&Vec<u8>> = container.iter().collect();
        assert!(
            delivered_set == container_set,
            "{case}: {} distinct packets delivered that no container saw, {} seen by a container and not delivered",
            delivered_set.difference(&container_set).count(),
            container_set.difference(&delivered_set).count()
        );
        let nat = fixture.roles.iter().any(|(_, role)| role == "uplink")
            && fixture
                .host_per_interface
                .iter()
                .any(|(name, count)| *count > 0 && fixture.roles.iter().any(|(n, role)| n == name && role == "uplink"));
        if nat {
            assert!(
                dedup["nat_bindings"].as_u64().unwrap() >= 1,
                "{case}: NAT binding learned: {summary}"
            );
        }
        if fixture.tso_off {
            assert!(dedup["tcp_range_duplicates"].as_u64().unwrap() > 0, "{case}: {summary}");
        }
    }
}

#[test]
fn ring_order_gives_the_same_output_byte_for_byte() {
    let dir = temp_dir();
    for fixture in fixtures() {
        let reference: PathBuf = dir.path().join(format!("{}.ts.pcapng", fixture.case));
        read(&fixture, &reference, &[]);
        let expected = std::fs::read(&reference).unwrap();
        for (timeout, seed) in [("8", "0"), ("8", "1"), ("2", "7"), ("30", "3")] {
            let out = dir
                .path()
                .join(format!("{}.ring.{timeout}.{seed}.pcapng", fixture.case));
            let summary = read(
                &fixture,
                &out,
                &["--read-order", "ring", "--ring-timeout", timeout, "--ring-seed", seed],
            );
            assert_eq!(
                summary["dedup"]["delivered"], fixture.expected_delivered,
                "{}",
                fixture.case
            );
            assert!(
                std::fs::read(&out).unwrap() == expected,
                "{}: ring order (timeout {timeout} ms, seed {seed}) changed the output",
                fixture.case
            );
        }
    }
}

#[test]
fn tshark_and_capinfos_read_the_output() {
    if Command::new("capinfos").arg("-h").output().is_err() || Command::new("tshark").arg("-v").output().is_err() {
        println!("skipped: capinfos or tshark not installed (scripts/setup.sh installs them)");
        return;
    }
    let dir = temp_dir();
    let fixture = fixtures()
        .into_iter()
        .find(|f| f.case == "c2out-tcp")
        .expect("the c2out-tcp fixture");
    let out = dir.path().join("c2out.pcapng");
    read(&fixture, &out, &[]);
    let capinfos = Command::new("capinfos")
        .args(["-M", "-c", "-T"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&capinfos.stdout);
    assert!(
        capinfos.status.success(),
        "capinfos: {text} {}",
        String::from_utf8_lossy(&capinfos.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.ends_with(&format!("\t{}", fixture.expected_delivered))),
        "capinfos counts: {text}"
    );
    let tshark = Command::new("tshark")
        .args(["-r"])
        .arg(&out)
        .args(["-T", "fields", "-e", "ip.src", "-e", "ip.dst"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tshark.stdout);
    assert!(
        tshark.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    assert_eq!(text.lines().count() as u64, fixture.expected_delivered);
    // Container side only: the uplink's translated address never shows.
    assert!(text.lines().all(|l| l.contains("172.17.0.2")), "{text}");
    assert!(!text.contains("198.18.0.2"), "{text}");
}

#[test]
fn unreadable_and_truncated_inputs_are_clear_errors_that_keep_what_was_delivered() {
    let dir = temp_dir();
    let missing = Command::new(env!("CARGO_BIN_EXE_ringsieve"))
        .args(["read", "/nonexistent/capture.pcap"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/nonexistent/capture.pcap"), "{stderr}");

    let fixture = fixtures().into_iter().find(|f| f.case == "c2c-udp").expect("c2c-udp");
    let bytes = std::fs::read(&fixture.host_capture).unwrap();
    let cut = dir.path().join("cut.pcap");
    // Half the file: the cut falls inside a packet (or between two).
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).unwrap();
    let out = dir.path().join("cut.pcapng");
    let output = Command::new(env!("CARGO_BIN_EXE_ringsieve"))
        .arg("read")
        .arg(&cut)
        .arg("-w")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cut.pcap"), "the error names the file: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let written = summary["pcap"]["packets_written"].as_u64().unwrap();
    assert!(written > 0, "packets before the cut are delivered: {summary}");
    assert_eq!(
        network_packets(&out).len() as u64,
        written,
        "and the output is complete pcapng"
    );
}

#[test]
fn bad_read_settings_exit_2_naming_the_option() {
    for (args, env, needle) in [
        (vec!["--role", "eth0=wan"], None, "--role"),
        (vec!["--read-order", "random"], None, "--read-order"),
        (vec![], Some(("RINGSIEVE_DEDUP_WINDOW", "0")), "RINGSIEVE_DEDUP_WINDOW"),
        (vec!["--dedup-table", "12"], None, "--dedup-table"),
        (vec!["--nat-bindings", "100"], None, "--nat-bindings"),
        (
            vec![],
            Some(("RINGSIEVE_NAT_BINDINGS", "lots")),
            "RINGSIEVE_NAT_BINDINGS",
        ),
        (vec!["--workers", "0"], None, "--workers"),
        (vec![], Some(("RINGSIEVE_WORKERS", "many")), "RINGSIEVE_WORKERS"),
        (vec!["--worker-cpus", "0-x"], None, "--worker-cpus"),
        (vec!["--workers", "2", "--worker-cpus", "1"], None, "one CPU per worker"),
        (vec!["--queue-depth", "5"], None, "--queue-depth"),
        (vec!["--overflow", "block"], None, "drop or wait"),
        (
            vec![],
            Some(("RINGSIEVE_STATS_INTERVAL", "-1")),
            "RINGSIEVE_STATS_INTERVAL",
        ),
        (vec!["--flow-timeouts", "tcp.forever=1"], None, "--flow-timeouts"),
        (vec!["--max-flows", "10"], None, "--max-flows"),
        (
            vec!["--eve", "-", "-w", "-"],
            None,
            "--pcap-out already writes to stdout",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringsieve"));
        command.args(["read", "x.pcap"]).args(&args);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
