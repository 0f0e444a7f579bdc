//! Stable tests of the capture-file fuzz entry points: the seeds are what
//! they claim (they read to a clean end with the packets and interfaces
//! built into them), the committed corpus is the seeds, and the entry points
//! hold their invariants over pseudo-random mutations of the seeds, which is
//! what `cargo fuzz run capture_file` does with coverage guidance.

use super::seed::{self, framed_header, framed_seeds, raw_seeds, Builder};
use super::*;
use crate::tests::XorShift;

fn outcome(file: &[u8]) -> Outcome {
    walk(file, Cursor::new(file.to_vec()))
}

fn read_cleanly(name: &str, file: &[u8]) -> (Vec<Delivered>, Vec<FileInterface>) {
    match outcome(file) {
        Outcome::Read {
            packets,
            ending: Ending::Clean,
            interfaces,
            ..
        } => (packets, interfaces),
        other => panic!("{name}: {other:?}"),
    }
}

fn framed_file(data: &[u8]) -> Vec<u8> {
    let mut file = framed_header(data[0]).bytes().to_vec();
    file.extend_from_slice(&data[1..]);
    file
}

#[test]
fn raw_seeds_read_to_a_clean_end_with_what_was_built() {
    let mut counts = Vec::new();
    for (name, file) in raw_seeds() {
        let (packets, interfaces) = read_cleanly(name, &file);
        read_capture(&file);
        counts.push((name, packets.len(), interfaces.len()));
        match name {
            "seed-pcap-sll-packet-types" => {
                let kinds: Vec<_> = packets.iter().map(|p| (p.packet_type, p.direction)).collect();
                assert_eq!(kinds[4], (Some(PacketType::Outgoing), Some(Direction::Outbound)));
                assert_eq!(kinds[5], (None, None), "PACKET_LOOPBACK has no certain direction");
                assert_eq!(packets[6].link, LinkKind::Other(LINUX_SLL));
            }
            "seed-pcap-be-ns-sll2-ifindexes" => {
                let names: Vec<_> = interfaces.iter().map(|i| i.name.as_str()).collect();
                assert_eq!(names, ["fuzz-input", "ifindex2", "ifindex5", "ifindex9"]);
                let on: Vec<_> = packets.iter().map(|p| p.interface).collect();
                assert_eq!(on, [1, 2, 1, 3, 2, 3]);
            }
            "seed-pcapng-le-interfaces-flags" => {
                let seen: Vec<_> = packets.iter().map(|p| (p.interface, p.packet_type)).collect();
                use PacketType::*;
                assert_eq!(
                    seen,
                    [
                        (0, Some(Host)),
                        (1, Some(Outgoing)),
                        (2, Some(Multicast)),
                        (0, Some(Broadcast)),
                        (1, Some(OtherHost)),
                        (2, None),
                        (1, None),
                    ]
                );
                assert_eq!(packets[0].timestamp_ns, 1_700_000_000 * 1_000_000_000);
                // 2^-20 s units, offset -3600 s: 2 units are 1907.3 ns.
                let expected = (1_700_000_000 - 3_600) * 1_000_000_000 + 1_907;
                assert_eq!(packets[2].timestamp_ns, expected);
            }
            "seed-pcapng-be-spb-pb" => {
                assert_eq!(packets[1].data.len(), 64, "the SPB is cut at the snap length");
                assert!(packets[1].original_len > 64);
                assert_eq!(packets[2].packet_type, Some(PacketType::Outgoing));
            }
            "seed-pcapng-sll2-any" => {
                let names: Vec<_> = interfaces.iter().map(|i| i.name.as_str()).collect();
                assert_eq!(names, ["any", "any-v1", "pcapng2", "ifindex3", "ifindex4", "ifindex17"]);
                assert_eq!(packets[6].link, LinkKind::Other(seed::USER0));
            }
            _ => {}
        }
    }
    assert_eq!(
        counts,
        [
            ("seed-pcap-le-us-ethernet", 7, 1),
            ("seed-pcap-be-ns-raw-snapped", 6, 1),
            ("seed-pcap-sll-packet-types", 7, 1),
            ("seed-pcap-be-ns-sll2-ifindexes", 6, 4),
            ("seed-pcapng-le-interfaces-flags", 7, 3),
            ("seed-pcapng-be-spb-pb", 3, 1),
            ("seed-pcapng-two-sections", 3, 3),
            ("seed-pcapng-sll2-any", 7, 6),
            ("seed-pcap-ipv4-link", 1, 1),
            ("seed-pcap-ipv6-link", 1, 1),
        ]
    );
}

#[test]
fn framed_seeds_read_to_a_clean_end() {
    let mut counts = Vec::new();
    for (name, data) in framed_seeds() {
        let (packets, interfaces) = read_cleanly(name, &framed_file(&data));
        read_framed_capture(&data);
        counts.push((name, packets.len(), interfaces.len()));
    }
    assert_eq!(
        counts,
        [
            ("seed-pcap-ethernet", 6, 1),
            ("seed-pcap-sll2", 6, 4),
            ("seed-pcap-sll-snapped", 6, 1),
            ("seed-pcapng-four-interfaces", 7, 6),
            ("seed-pcapng-snapped-sections", 4, 3),
        ]
    );
}

#[test]
fn every_framed_header_opens_and_ends_cleanly() {
    for selector in 0..=u8::MAX {
        let header = framed_header(selector);
        let (packets, interfaces) = read_cleanly("header", header.bytes());
        assert!(packets.is_empty());
        let expected = match header {
            Builder::Pcap(_) => 1,
            Builder::Pcapng(_) => 1 + usize::from(selector >> 5 & 0b11),
        };
        assert_eq!(interfaces.len(), expected, "selector {selector:#010b}");
        assert_eq!(
            interfaces[0].link_type,
            seed::FRAMED_LINK_TYPES[usize::from(selector >> 2 & 0b111)]
        );
        read_framed_capture(&[selector]);
        let (format, link, option) = (selector & 0b11, selector >> 2 & 0b111, selector >> 5 & 0b11);
        assert_eq!(seed::framed_selector(format, link, option, selector >= 0x80), selector);
    }
}

#[test]
fn committed_corpus_holds_the_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in [("capture_file", raw_seeds()), ("capture_file_records", framed_seeds())] {
        for (name, bytes) in seeds {
            let path = root.join(target).join(name);
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run `cargo run --manifest-path fuzz/Cargo.toml --example write_seed_corpus`",
                    path.display()
                )
            });
            assert_eq!(
                committed,
                bytes,
                "{} differs from the seed built in code",
                path.display()
            );
        }
    }
}

#[test]
fn reads_that_fail_partway_deliver_the_packets_before() {
    for (name, file) in raw_seeds() {
        let whole = outcome(&file);
        for cut in 0..file.len() {
            check_failing_read(&file, cut, &whole);
        }
        let Outcome::Read { packets, .. } = &whole else {
            panic!("{name} opens");
        };
        let last = packets.last().expect("every seed has packets");
        let Outcome::Read { packets: cut_short, .. } = walk(&file, FailAfter::new(&file[..last.end as usize - 1]))
        else {
            panic!("{name} opens");
        };
        assert_eq!(cut_short.len(), packets.len() - 1, "{name}");
    }
}

/// The stable stand-in for `cargo fuzz run capture_file` and
/// `capture_file_records`: 20 000 seeds with a few bytes, a length field or
/// the length overwritten, spliced, or cut.
#[test]
fn entry_points_hold_their_invariants_over_mutated_seeds() {
    let mut rng = XorShift(0x00c0_ffee_d00d_f00d);
    let raw = raw_seeds();
    let framed = framed_seeds();
    for round in 0..20_000 {
        let framing = round % 2 == 1;
        let (_, base) = if framing {
            &framed[rng.below(framed.len())]
        } else {
            &raw[rng.below(raw.len())]
        };
        let mut data = base.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(5) {
                0 if data.len() > 4 => {
                    // A 32-bit word, often a length: 0, tiny, huge, random.
                    let at = rng.below(data.len() - 3) & !3;
                    let value = [0, 1, 12, 0xffff_fff0, rng.next() as u32][rng.below(5)];
                    data[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
                1 if !data.is_empty() => {
                    let at = rng.below(data.len());
                    data[at] = rng.next() as u8;
                }
                2 => data.truncate(rng.below(data.len() + 1)),
                3 => {
                    let (_, other) = &raw[rng.below(raw.len())];
                    let from = rng.below(other.len());
                    data.extend_from_slice(&other[from..]);
                }
                _ if data.len() > 1 => {
                    let at = rng.below(data.len());
                    data.remove(at);
                }
                _ => {}
            }
        }
        if framing {
            read_framed_capture(&data);
        } else {
            read_capture(&data);
        }
    }
}

#[test]
fn short_and_foreign_inputs_are_refused_at_offset_zero() {
    for data in [
        &b""[..],
        b"\x0a",
        b"\xd4\xc3\xb2",
        b"GET / HTTP/1.1\r\n",
        b"\x0a\x0d\x0d\x0a\x1c\0\0\0",
    ] {
        read_capture(data);
        assert!(matches!(
            outcome(data),
            Outcome::Refused(Ending::Error { offset: 0, .. })
        ));
    }
}
