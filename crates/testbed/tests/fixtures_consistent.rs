//! The recorded dedup fixtures (`tests/fixtures/dedup/`, made by
//! `scripts/record-fixtures.sh`) are consistent: every manifest's files exist
//! and read with our capture reader, its expected delivered count is what
//! the container-side captures give today, its host counts are the host
//! capture's, the host capture holds duplicates, and every interface in it
//! has a role. A fixture edited, cut or re-recorded without its manifest
//! fails here, before any dedup test trusts it. Needs no privileges.

use std::path::{Path, PathBuf};

use capture_file::CaptureFile;
use testbed::fixtures::{expected_delivered, host_counts, load_all, Fixture};

/// The cases `scripts/record-fixtures.sh` records.
const CASES: [&str; 11] = [
    "arp",
    "bulk-c2c",
    "bulk-out",
    "bulk-out-tso-off",
    "c2c-icmp",
    "c2c-tcp",
    "c2c-tcp-promisc",
    "c2c-udp",
    "c2h-tcp",
    "c2out-tcp",
    "published-tcp",
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dedup")
}

fn fixtures() -> Vec<Fixture> {
    load_all(&fixture_dir()).unwrap_or_else(|e| panic!("loading the fixture manifests: {e}"))
}

/// Reads a whole capture with our reader; its packet count.
fn packets_in(path: &Path) -> u64 {
    let mut file = CaptureFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut count = 0;
    while file.next_packet().unwrap_or_else(|e| panic!("{e}")).is_some() {
        count += 1;
    }
    count
}

#[test]
fn every_case_has_a_fixture() {
    let cases: Vec<String> = fixtures().into_iter().map(|f| f.case).collect();
    assert_eq!(cases, CASES, "the manifests in {}", fixture_dir().display());
}

#[test]
fn manifests_match_their_captures() {
    for fixture in fixtures() {
        let case = &fixture.case;
        assert_eq!(
            fixture.manifest.file_stem().and_then(|s| s.to_str()),
            Some(case.as_str()),
            "a manifest is named after its case"
        );
        assert!(
            fixture.host_capture.is_file(),
            "{case}: {} missing",
            fixture.host_capture.display()
        );
        assert!(!fixture.container_captures.is_empty(), "{case}: no container capture");
        for capture in &fixture.container_captures {
            assert!(capture.is_file(), "{case}: {} missing", capture.display());
            assert!(packets_in(capture) > 0, "{case}: {} is empty", capture.display());
        }

        let expected = expected_delivered(&fixture.container_captures).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            expected, fixture.expected_delivered,
            "{case}: expected_delivered recomputed"
        );

        let (host_copies, per_interface) = host_counts(&fixture.host_capture).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(host_copies, packets_in(&fixture.host_capture), "{case}");
        assert_eq!(host_copies, fixture.host_copies, "{case}: host_copies");
        assert_eq!(per_interface, fixture.host_per_interface, "{case}: host_per_interface");
        assert!(
            host_copies > expected,
            "{case}: the host capture has {host_copies} packets, no more than the {expected} to deliver"
        );
        for (interface, count) in &per_interface {
            assert!(
                fixture.role(interface).is_some(),
                "{case}: {count} packets on {interface}, which has no role in the manifest"
            );
            assert!(fixture.name(interface).is_some(), "{case}: {interface} has no name");
        }
    }
}

#[test]
fn fixtures_show_what_their_flags_say() {
    for fixture in fixtures() {
        let case = &fixture.case;
        assert_eq!(
            fixture.docker0_promisc,
            case.ends_with("-promisc"),
            "{case}: docker0_promisc"
        );
        assert_eq!(fixture.tso_off, case.ends_with("-tso-off"), "{case}: tso_off");
        let count_on = |name: &str| -> u64 {
            fixture
                .host_per_interface
                .iter()
                .filter(|(interface, _)| fixture.name(interface) == Some(name))
                .map(|(_, count)| *count)
                .sum()
        };
        // Bridged traffic shows on docker0 only when it is promiscuous.
        if case.starts_with("c2c-") {
            assert_eq!(
                count_on("docker0") > 0,
                fixture.docker0_promisc,
                "{case}: docker0 copies"
            );
        }
        // With the uplink's segmentation off, eth0 carries more frames than
        // the container's veth; with it on, as many.
        if case.starts_with("bulk-out") {
            let (veth, uplink) = (count_on("vethc1"), count_on("eth0"));
            if fixture.tso_off {
                assert!(uplink > veth, "{case}: eth0 {uplink} frames, vethc1 {veth}");
            } else {
                assert_eq!(uplink, veth, "{case}: eth0 and vethc1");
            }
        }
    }
}
