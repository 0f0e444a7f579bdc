//! `ringsieve read --rules --eve` over the dedup fixtures recorded in the
//! Docker-host test bed: every message the traffic generator sent (each
//! starts with `RSv1` and its sequence number) raises exactly one alert,
//! although the host capture holds two or three copies of it, NAT'd ones
//! included; each alert is in the containers' address space and carries
//! the `flow_id` of a flow record marked `alerted`. The expected alerts come
//! from the container-side captures alone (`testbed::fixtures::frame_view`).
//!
//! Also: a rule file that cannot be read is exit 2 naming it, a rule that
//! does not parse is skipped with a warning naming file, line and keyword,
//! `--rules` without `--eve` is exit 2, and `--var` reaches the rules;
//! the same through RINGSIEVE_RULES (a comma-separated list, while the
//! flag takes a path with a comma as it is) and RINGSIEVE_VARS; a
//! `--classification-file` class reaches the alerts; `--stream-depth` and
//! `--stream-memcap` are accepted, and bad values are exit 2 naming them.
//!
//! Needs no privileges: it runs the binary on files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testbed::fixtures::{distinct_frames, frame_view, load_all, Fixture};

const RULES: &str = r#"# The generator's messages, each direction, and pings.
alert tcp any any -> any any (msg:"message to server"; flow:to_server,established; content:"RSv1"; classtype:misc-activity; sid:1; rev:1;)
alert tcp any any -> any any (msg:"message to client"; flow:to_client,established; content:"RSv1"; sid:2; rev:1;)
alert udp any any -> any any (msg:"udp message"; content:"RSv1"; sid:3; rev:1;)
alert icmp any any -> any any (msg:"echo request"; itype:8; sid:4; rev:1;)
"#;

/// (sid, source endpoint, destination endpoint): where alerts are counted.
type AlertKey = (u64, String, String);

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedup");
    load_all(&dir)
        .expect("the fixtures load")
        .into_iter()
        // Bulk uploads carry no per-message marker; ARP no IP at all.
        .filter(|fixture| !fixture.case.starts_with("bulk") && fixture.case != "arp")
        .collect()
}

/// The alerts the rules must raise: one per distinct message (TCP by its
/// marker's sequence number, so a retransmission counts once), per
/// datagram, per echo request the containers saw.
fn expected_alerts(fixture: &Fixture) -> BTreeMap<AlertKey, u64> {
    let frames = distinct_frames(&fixture.container_captures).expect("the container captures read");
    let views: Vec<_> = frames.iter().filter_map(|(_, frame)| frame_view(frame)).collect();
    // The server of each TCP connection: the receiver of its SYN.
    let servers: BTreeSet<String> = views
        .iter()
        .filter(|v| v.tcp_flags.is_some_and(|f| f & 0x12 == 0x02))
        .map(|v| v.dst.clone())
        .collect();
    let mut tcp_messages = BTreeSet::new();
    let mut expected = BTreeMap::new();
    for view in &views {
        match (view.protocol.as_str(), view.message(), view.icmp_type) {
            ("TCP", Some(sequence), _) => {
                let sid = if servers.contains(&view.dst) { 1 } else { 2 };
                if tcp_messages.insert((sid, view.src.clone(), view.dst.clone(), sequence)) {
                    *expected.entry((sid, view.src.clone(), view.dst.clone())).or_default() += 1;
                }
            }
            ("UDP", Some(_), _) => *expected.entry((3, view.src.clone(), view.dst.clone())).or_default() += 1,
            ("ICMP", _, Some(8)) => *expected.entry((4, view.src.clone(), view.dst.clone())).or_default() += 1,
            _ => {}
        }
    }
    expected
}

fn endpoint(event: &serde_json::Value, ip: &str, port: &str) -> String {
    let address = event[ip].as_str().expect("an address");
    match event[port].as_u64() {
        Some(port) => format!("{address}:{port}"),
        None => address.to_owned(),
    }
}

/// `ringsieve read CAPTURE ARGS...`: its output and its stderr as text.
fn read(capture: &Path, args: &[&std::ffi::OsStr]) -> (Output, String) {
    read_with_env(capture, args, &[])
}

/// `ringsieve read CAPTURE ARGS...` with `env` set on top of the test's
/// environment.
fn read_with_env(capture: &Path, args: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)]) -> (Output, String) {
    let mut all: Vec<&std::ffi::OsStr> = vec!["read".as_ref(), capture.as_os_str()];
    all.extend_from_slice(args);
    let output = Command::new(env!("CARGO_BIN_EXE_ringsieve"))
        .args(&all)
        .envs(env.iter().copied())
        .output()
        .expect("ringsieve runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

/// The recorded fixture of `case`.
fn fixture(case: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.case == case)
        .unwrap_or_else(|| panic!("the {case} fixture"))
}

fn write_rules(dir: &Path, text: &str) -> PathBuf {
    write_rules_as(dir, "test.rules", text)
}

/// `text` written to the rule file `name` in `dir`.
fn write_rules_as(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("rules written");
    path
}

/// A rule file `name` in `dir` with one rule, `sid`, alerting on every
/// datagram of the UDP fixtures (their payloads start with "RSv1").
fn any_datagram_rule(dir: &Path, name: &str, sid: u64) -> PathBuf {
    write_rules_as(
        dir,
        name,
        &format!("alert udp any any -> any any (msg:\"{name}\"; content:\"RSv1\"; sid:{sid};)\n"),
    )
}

/// Runs `read --rules --eve` on a fixture; returns the EVE events.
fn read_with_rules(fixture: &Fixture, rules: &Path, dir: &Path, workers: &str) -> Vec<serde_json::Value> {
    let eve = dir.join(format!("{}-{workers}.json", fixture.case));
    let roles = fixture.roles_arg();
    let (output, stderr) = read(
        &fixture.host_capture,
        &[
            "--role".as_ref(),
            roles.as_ref(),
            "--rules".as_ref(),
            rules.as_os_str(),
            "--eve".as_ref(),
            eve.as_os_str(),
            "--workers".as_ref(),
            workers.as_ref(),
        ],
    );
    assert!(output.status.success(), "{}: {stderr}", fixture.case);
    assert!(
        stderr.contains("4 rules loaded, 0 skipped"),
        "{}: the counts at start: {stderr}",
        fixture.case
    );
    let summary: serde_json::Value =
        serde_json::from_str(stderr.lines().last().unwrap_or_default()).expect("the summary is JSON");
    assert_eq!(summary["total"]["balanced"], true, "{}: {summary}", fixture.case);
    assert_eq!(summary["detection"]["rules"], 4, "{summary}");
    std::fs::read_to_string(&eve)
        .expect("the EVE file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("every EVE line is JSON"))
        .collect()
}

#[test]
fn every_message_raises_one_alert_in_the_containers_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), RULES);
    let mut compared = 0;
    for fixture in fixtures() {
        let expected = expected_alerts(&fixture);
        assert!(!expected.is_empty(), "{}: the fixture has messages", fixture.case);
        for workers in ["1", "3"] {
            let events = read_with_rules(&fixture, &rules, dir.path(), workers);
            let mut actual: BTreeMap<AlertKey, u64> = BTreeMap::new();
            let flows: BTreeMap<u64, &serde_json::Value> = events
                .iter()
                .filter(|e| e["event_type"] == "flow")
                .map(|e| (e["flow_id"].as_u64().expect("flow_id"), e))
                .collect();
            for alert in events.iter().filter(|e| e["event_type"] == "alert") {
                let sid = alert["alert"]["signature_id"].as_u64().expect("signature_id");
                let key = (
                    sid,
                    endpoint(alert, "src_ip", "src_port"),
                    endpoint(alert, "dest_ip", "dest_port"),
                );
                *actual.entry(key).or_default() += 1;
                let flow_id = alert["flow_id"].as_u64().expect("flow_id");
                let flow = flows
                    .get(&flow_id)
                    .unwrap_or_else(|| panic!("{}: alert {alert} has no flow record", fixture.case));
                assert_eq!(flow["flow"]["alerted"], true, "{flow}");
                assert_eq!(alert["alert"]["action"], "allowed");
                assert_eq!(alert["alert"]["gid"], 1);
                if sid == 1 {
                    assert_eq!(alert["alert"]["category"], "Misc activity");
                    assert_eq!(alert["alert"]["severity"], 3);
                    assert_eq!(alert["direction"], "to_server");
                }
            }
            for flow in flows.values() {
                let alerted = actual.keys().any(|(_, src, dst)| {
                    let a = endpoint(flow, "src_ip", "src_port");
                    let b = endpoint(flow, "dest_ip", "dest_port");
                    (src == &a && dst == &b) || (src == &b && dst == &a)
                });
                if !alerted {
                    assert_eq!(flow["flow"]["alerted"], false, "{flow}");
                }
            }
            assert_eq!(actual, expected, "{} with {workers} workers", fixture.case);
            compared += expected.values().sum::<u64>();
        }
    }
    eprintln!("{compared} alerts compared");
}

#[test]
fn bad_rules_are_skipped_with_their_place_and_unreadable_files_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let rules = write_rules(
        dir.path(),
        "alert udp any any -> any any (msg:\"ok\"; content:\"RSv1\"; sid:3;)\n\
         alert udp any any -> any any (msg:\"bad\"; frobnicate:1; sid:5;)\n",
    );
    let eve = dir.path().join("eve.json");
    let (output, stderr) = read(
        &fixture.host_capture,
        &["--rules".as_ref(), rules.as_os_str(), "--eve".as_ref(), eve.as_os_str()],
    );
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("1 rules loaded, 1 skipped"), "{stderr}");
    assert!(
        stderr.contains("test.rules:2:") && stderr.contains("frobnicate"),
        "the warning names file, line and keyword: {stderr}"
    );

    let missing = dir.path().join("missing.rules");
    let (output, stderr) = read(
        &fixture.host_capture,
        &[
            "--rules".as_ref(),
            rules.as_os_str(),
            "--rules".as_ref(),
            missing.as_os_str(),
            "--eve".as_ref(),
            eve.as_os_str(),
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--rules") && stderr.contains("missing.rules") && stderr.contains("readable rule file"),
        "{stderr}"
    );

    let (output, stderr) = read(&fixture.host_capture, &["--rules".as_ref(), rules.as_os_str()]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--eve"), "{stderr}");

    let (output, stderr) = read(
        &fixture.host_capture,
        &[
            "--rules".as_ref(),
            rules.as_os_str(),
            "--eve".as_ref(),
            eve.as_os_str(),
            "--var".as_ref(),
            "HOME NET=1.2.3.4".as_ref(),
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--var") && stderr.contains("HOME NET"), "{stderr}");
}

#[test]
fn home_net_from_var_decides_what_matches() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let rules = write_rules(
        dir.path(),
        "alert udp $HOME_NET any -> $HOME_NET any (msg:\"inside\"; content:\"RSv1\"; sid:3;)\n",
    );
    let count_alerts = |home_net: &str| {
        let eve = dir.path().join(format!("eve-{}.json", home_net.len()));
        let var = format!("HOME_NET={home_net}");
        let (output, stderr) = read(
            &fixture.host_capture,
            &[
                "--rules".as_ref(),
                rules.as_os_str(),
                "--eve".as_ref(),
                eve.as_os_str(),
                "--var".as_ref(),
                var.as_ref(),
            ],
        );
        assert!(output.status.success(), "{stderr}");
        std::fs::read_to_string(&eve)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .count()
    };
    let inside = count_alerts("[172.17.0.0/16]");
    assert_eq!(
        inside as u64,
        expected_alerts(&fixture).values().sum::<u64>(),
        "every datagram between two containers"
    );
    assert_eq!(count_alerts("[10.0.0.0/8]"), 0, "no container address is in 10/8");
}

/// The EVE events of a file.
fn eve_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("the EVE file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("every EVE line is JSON"))
        .collect()
}

/// How many alerts of `sid` `events` hold.
fn alerts_of(events: &[serde_json::Value], sid: u64) -> u64 {
    events
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .count() as u64
}

#[test]
fn rules_and_vars_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let datagrams = expected_alerts(&fixture).values().sum::<u64>();
    let inside = dir.path().join("inside.rules");
    std::fs::write(
        &inside,
        "alert udp $HOME_NET any -> $HOME_NET any (msg:\"inside\"; content:\"RSv1\"; sid:3;)\n",
    )
    .unwrap();
    let any = any_datagram_rule(dir.path(), "any.rules", 6);
    let list = format!("{},{}", inside.display(), any.display());
    let run = |home_net: &str| {
        let eve = dir.path().join(format!("eve-env-{}.json", home_net.len()));
        let vars = format!("HOME_NET={home_net};HTTP_PORTS=[80,8080]");
        let (output, stderr) = read_with_env(
            &fixture.host_capture,
            &["--eve".as_ref(), eve.as_os_str()],
            &[("RINGSIEVE_RULES", list.as_ref()), ("RINGSIEVE_VARS", vars.as_ref())],
        );
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("2 rules loaded, 0 skipped"), "both files: {stderr}");
        let events = eve_events(&eve);
        (alerts_of(&events, 3), alerts_of(&events, 6))
    };
    assert_eq!(run("[172.17.0.0/16]"), (datagrams, datagrams));
    assert_eq!(run("[10.0.0.0/8]"), (0, datagrams), "RINGSIEVE_VARS sets HOME_NET");
}

#[test]
fn a_rules_flag_takes_a_path_with_a_comma_as_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let rules = any_datagram_rule(dir.path(), "local,extra.rules", 6);
    let eve = dir.path().join("eve.json");
    let (output, stderr) = read(
        &fixture.host_capture,
        &["--rules".as_ref(), rules.as_os_str(), "--eve".as_ref(), eve.as_os_str()],
    );
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("1 rules loaded, 0 skipped"), "{stderr}");
    assert_eq!(
        alerts_of(&eve_events(&eve), 6),
        expected_alerts(&fixture).values().sum::<u64>()
    );
}

#[test]
fn a_classification_file_class_reaches_the_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let classes = dir.path().join("classification.config");
    std::fs::write(
        &classes,
        "# ringsieve test classes\nconfig classification: rs-custom,RingSieve custom class,2\n",
    )
    .unwrap();
    let rules = write_rules(
        dir.path(),
        "alert udp any any -> any any (msg:\"classed\"; content:\"RSv1\"; classtype:rs-custom; sid:7;)\n",
    );
    let eve = dir.path().join("eve.json");
    let (output, stderr) = read(
        &fixture.host_capture,
        &[
            "--rules".as_ref(),
            rules.as_os_str(),
            "--eve".as_ref(),
            eve.as_os_str(),
            "--classification-file".as_ref(),
            classes.as_os_str(),
        ],
    );
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("1 rules loaded, 0 skipped"), "{stderr}");
    let events = eve_events(&eve);
    let alerts: Vec<_> = events.iter().filter(|e| e["event_type"] == "alert").collect();
    assert!(!alerts.is_empty(), "{stderr}");
    for alert in alerts {
        assert_eq!(alert["alert"]["category"], "RingSieve custom class", "{alert}");
        assert_eq!(alert["alert"]["severity"], 2, "{alert}");
    }
}

#[test]
fn stream_depth_and_memcap_are_accepted_and_bad_values_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let rules = write_rules(dir.path(), RULES);
    let eve = dir.path().join("eve.json");
    let run = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["--rules".as_ref(), rules.as_os_str(), "--eve".as_ref(), eve.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        read(&fixture.host_capture, &args)
    };
    let (output, stderr) = run(&["--stream-depth", "64K", "--stream-memcap", "16M"]);
    assert!(output.status.success(), "{stderr}");
    let (output, stderr) = run(&["--stream-depth", "0"]);
    assert!(output.status.success(), "0 is no limit: {stderr}");
    for (flag, bad) in [
        ("--stream-depth", "lots"),
        ("--stream-depth", "2G"),
        ("--stream-memcap", "1K"),
        ("--stream-memcap", "ten"),
    ] {
        let (output, stderr) = run(&[flag, bad]);
        assert_eq!(output.status.code(), Some(2), "{flag} {bad}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(bad), "{flag} {bad}: {stderr}");
    }
}

/// The stream depth given on the command line reaches the reassembly: in
/// the bulk upload (1 MiB in 64 KiB writes of the bytes `i % 251`), the
/// bytes 15..=24 then 0..=4 stand only where one write ends and the next
/// begins, the first time 65 526 bytes into the stream.
#[test]
fn the_stream_depth_decides_how_far_into_a_connection_content_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedup/bulk-c2c.pcap");
    let rules = write_rules(
        dir.path(),
        "alert tcp any any -> any any (msg:\"write boundary\"; \
         content:\"|0f 10 11 12 13 14 15 16 17 18 00 01 02 03 04|\"; sid:9;)\n",
    );
    let eve = dir.path().join("eve.json");
    let alerts = |depth: &str| {
        let _ = std::fs::remove_file(&eve);
        let (output, stderr) = read(
            &capture,
            &[
                "--rules".as_ref(),
                rules.as_os_str(),
                "--eve".as_ref(),
                eve.as_os_str(),
                "--stream-depth".as_ref(),
                depth.as_ref(),
            ],
        );
        assert!(output.status.success(), "{depth}: {stderr}");
        alerts_of(&eve_events(&eve), 9)
    };
    assert_eq!(alerts("32K"), 0, "the first boundary is past 32 KiB");
    assert!(alerts("1M") > 0, "within the default depth");
    assert_eq!(alerts("0"), alerts("1M"), "0 is no limit");
}

#[test]
fn a_rules_flag_given_twice_loads_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("c2c-udp");
    let datagrams = expected_alerts(&fixture).values().sum::<u64>();
    let first = any_datagram_rule(dir.path(), "first.rules", 11);
    let second = any_datagram_rule(dir.path(), "second.rules", 12);
    let eve = dir.path().join("eve.json");
    let (output, stderr) = read(
        &fixture.host_capture,
        &[
            "--rules".as_ref(),
            first.as_os_str(),
            "--rules".as_ref(),
            second.as_os_str(),
            "--eve".as_ref(),
            eve.as_os_str(),
        ],
    );
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("2 rules loaded, 0 skipped"), "{stderr}");
    let events = eve_events(&eve);
    assert_eq!((alerts_of(&events, 11), alerts_of(&events, 12)), (datagrams, datagrams));
}
