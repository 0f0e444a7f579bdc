//! Tests of [`CaptureFile`] on byte fixtures built with [`crate::fixture`]:
//! every format variant, the pcapng block types, cooked headers, the error
//! cases, and files cut at every byte. Tests against files made by real tools
//! are in `tests/real_tools.rs`.

use std::io::{self, Cursor, Read};

use af_packet::{Direction, PacketType};

use crate::fixture::{sll, sll2, Boundary, PcapBuilder, PcapngBuilder};
use crate::{CaptureFile, CaptureFormat, FilePacket, LinkKind, ReadAhead, ReadError, TimestampResolution};

/// A delivered packet, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    interface: u32,
    timestamp_ns: u64,
    original_len: u32,
    data: Vec<u8>,
    link: LinkKind,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
}

/// A reader of packets, [`CaptureFile`] or [`ReadAhead`], as [`drain`]
/// walks it.
trait PacketSource {
    fn next_owned(&mut self) -> Result<Option<Owned>, ReadError>;
    fn current_owned(&self) -> Option<Owned>;
    /// Checks what the reader says of the packet it just returned, the
    /// `count`th.
    fn check_current(&self, last: &Owned, count: usize);
}

impl PacketSource for CaptureFile {
    fn next_owned(&mut self) -> Result<Option<Owned>, ReadError> {
        Ok(self.next_packet()?.map(|p| owned(&p)))
    }

    fn current_owned(&self) -> Option<Owned> {
        self.current_packet().map(|p| owned(&p))
    }

    fn check_current(&self, _: &Owned, _: usize) {}
}

impl PacketSource for ReadAhead {
    fn next_owned(&mut self) -> Result<Option<Owned>, ReadError> {
        Ok(self.next_packet()?.map(|p| owned(&p)))
    }

    fn current_owned(&self) -> Option<Owned> {
        self.current_packet().map(|p| owned(&p))
    }

    /// Its interface is already described, and the head and count agree.
    fn check_current(&self, last: &Owned, count: usize) {
        assert!((last.interface as usize) < self.interfaces().len());
        assert_eq!(self.current_head(), Some((last.interface, last.timestamp_ns)));
        assert_eq!(self.packets_read(), count as u64);
    }
}

/// Reads every packet, and the error that ended the file if any.
fn drain(file: &mut impl PacketSource) -> (Vec<Owned>, Option<ReadError>) {
    let mut packets = Vec::new();
    assert!(file.current_owned().is_none(), "no current packet before the first");
    loop {
        match file.next_owned() {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => {
                assert!(file.current_owned().is_none(), "no current packet at the end");
                return (packets, None);
            }
            Err(error) => {
                assert!(file.current_owned().is_none(), "no current packet after an error");
                // Fused after an error.
                assert!(matches!(file.next_owned(), Ok(None)));
                return (packets, Some(error));
            }
        }
        // The packet just returned, again, bytes and all.
        let again = file.current_owned();
        assert_eq!(again.as_ref(), packets.last());
        let last = packets.last().expect("just pushed");
        file.check_current(last, packets.len());
    }
}

fn owned(p: &FilePacket<'_>) -> Owned {
    Owned {
        interface: p.interface,
        timestamp_ns: p.timestamp_ns,
        original_len: p.original_len,
        data: p.data.to_vec(),
        link: p.link,
        direction: p.direction,
        packet_type: p.packet_type,
    }
}

fn open(bytes: &[u8]) -> Result<CaptureFile, ReadError> {
    CaptureFile::from_reader("dir/fixture.cap", Cursor::new(bytes.to_vec()))
}

fn read_ok(bytes: &[u8]) -> (CaptureFile, Vec<Owned>) {
    let mut file = open(bytes).expect("opens");
    let (packets, error) = drain(&mut file);
    assert!(error.is_none(), "{error:?}");
    (file, packets)
}

const SECOND: u64 = 1_000_000_000;

#[test]
fn pcap_every_byte_order_and_resolution() {
    for big_endian in [false, true] {
        for nanosecond in [false, true] {
            let fraction = if nanosecond { 123_456_789 } else { 123_456 };
            let mut builder = PcapBuilder::new(big_endian, nanosecond, 1, 65535);
            builder.record(1_700_000_000, fraction, &[1, 2, 3, 4, 5], 60);
            builder.record(u32::MAX, 0, &[9; 14], 14);
            let (file, packets) = read_ok(&builder.bytes);
            assert_eq!(file.format(), CaptureFormat::Pcap { big_endian, nanosecond });
            let interfaces = file.interfaces();
            assert_eq!(interfaces.len(), 1);
            assert_eq!(interfaces[0].name, "fixture");
            assert_eq!(interfaces[0].snaplen, 65535);
            assert_eq!(interfaces[0].link_type, 1);
            let fraction_ns = if nanosecond { 123_456_789 } else { 123_456_000 };
            assert_eq!(packets.len(), 2);
            assert_eq!(packets[0].timestamp_ns, 1_700_000_000 * SECOND + fraction_ns);
            assert_eq!(packets[0].data, [1, 2, 3, 4, 5]);
            assert_eq!(packets[0].original_len, 60);
            assert_eq!(packets[0].link, LinkKind::Ethernet);
            assert_eq!(packets[0].direction, None);
            assert_eq!(packets[0].packet_type, None);
            assert_eq!(packets[1].timestamp_ns, u64::from(u32::MAX) * SECOND);
            assert_eq!(file.packets_read(), 2);
            assert_eq!(file.offset(), builder.bytes.len() as u64);
        }
    }
}

#[test]
fn pcap_without_a_stem_is_pcap0() {
    let builder = PcapBuilder::new(false, false, 1, 0);
    let file = CaptureFile::from_reader("", Cursor::new(builder.bytes)).unwrap();
    assert_eq!(file.interfaces()[0].name, "pcap0");
}

/// Two sections (the second big-endian), interfaces with if_tsresol 9, 6
/// (default) and 2^-10 and an if_tsoffset, EPBs with both directions and
/// every reception type, an SPB, an obsolete PB, and blocks to skip.
fn multi_section_pcapng() -> PcapngBuilder {
    let mut b = PcapngBuilder::new(false);
    b.interface(1, 0, &[PcapngBuilder::name("eth0"), PcapngBuilder::tsresol(9)]);
    b.other(4, &[1, 0, 4, 0, 10, 0, 0, 1, 0, 0, 0, 0]); // name resolution
    b.interface(1, 0, &[PcapngBuilder::name("veth1\0\0")]);
    b.epb(0, 5 * SECOND + 7, &[0xaa; 3], 3, Some(0b10));
    b.epb(1, 5_000_001, &[0xbb; 64], 1500, Some(0b001 << 2 | 0b01));
    b.other(0x0bad_cafe, b"unknown block type");
    b.other(5, &[0; 20]); // interface statistics
    b.epb(1, 6_000_000, &[0xcc; 1], 1, Some(0b010 << 2 | 0b01));
    b.epb(1, 6_000_000, &[0xcd; 2], 2, Some(0b011 << 2 | 0b01));
    b.epb(1, 6_000_000, &[0xce; 3], 3, Some(0b100 << 2 | 0b01));
    b.epb(0, 0, &[], 0, None);
    b.section(true);
    let offset = b.tsoffset(100);
    b.interface(101, 4, &[PcapngBuilder::tsresol(0x80 | 10), offset]);
    b.epb(0, 2048, &[0x45, 0, 0, 20, 0xff], 20, Some(0b01));
    b.spb(&[0x60, 1, 2, 3, 4, 5], 40);
    b.packet_block(0, 1024, &[0x45], Some(0b10));
    b.other(0x0000_0bad, &[1, 2, 3]);
    b
}

#[test]
fn pcapng_sections_interfaces_and_blocks() {
    let builder = multi_section_pcapng();
    let (file, packets) = read_ok(&builder.bytes);
    assert_eq!(file.format(), CaptureFormat::Pcapng);
    let names: Vec<_> = file.interfaces().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "veth1", "pcapng2"]);
    let interfaces = file.interfaces();
    assert_eq!(interfaces[0].resolution, TimestampResolution::Decimal(9));
    assert_eq!(interfaces[1].resolution, TimestampResolution::MICROSECONDS);
    assert_eq!(interfaces[2].resolution, TimestampResolution::Binary(10));
    assert_eq!(interfaces[2].offset_s, 100);
    assert_eq!(interfaces[2].link_type, 101);
    assert_eq!(interfaces[2].snaplen, 4);
    assert_eq!([interfaces[0].section, interfaces[2].section], [0, 1]);

    let summary: Vec<_> = packets
        .iter()
        .map(|p| {
            (
                p.interface,
                p.timestamp_ns,
                p.data.len(),
                p.original_len,
                p.direction,
                p.packet_type,
            )
        })
        .collect();
    use Direction::*;
    use PacketType::*;
    assert_eq!(
        summary,
        [
            (0, 5 * SECOND + 7, 3, 3, Some(Outbound), Some(Outgoing)),
            (1, 5 * SECOND + 1_000, 64, 1500, Some(Inbound), Some(Host)),
            (1, 6 * SECOND, 1, 1, Some(Inbound), Some(Multicast)),
            (1, 6 * SECOND, 2, 2, Some(Inbound), Some(Broadcast)),
            (1, 6 * SECOND, 3, 3, Some(Inbound), Some(OtherHost)),
            (0, 0, 0, 0, None, None),
            // Second section: its interface 0 is the file's interface 2.
            (2, 102 * SECOND, 5, 20, Some(Inbound), None),
            // SPB: no timestamp, captured bytes clipped to the snaplen.
            (2, 0, 4, 40, None, None),
            (2, 101 * SECOND, 1, 1, Some(Outbound), Some(Outgoing)),
        ]
    );
    assert_eq!(packets[1].data, [0xbb; 64]);
    assert_eq!(packets[6].data, [0x45, 0, 0, 20, 0xff]);
    assert_eq!(packets[6].link, LinkKind::Raw);
    assert_eq!(packets[7].data, [0x60, 1, 2, 3]);
}

#[test]
fn big_endian_first_section() {
    let mut b = PcapngBuilder::new(true);
    b.interface(1, 0, &[PcapngBuilder::name("be0")]);
    b.epb(0, 1, &[1, 2, 3, 4, 5, 6, 7], 7, Some(0b01));
    let (file, packets) = read_ok(&b.bytes);
    assert_eq!(file.interfaces()[0].name, "be0");
    assert_eq!(packets[0].timestamp_ns, 1_000);
    assert_eq!(packets[0].data, [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn interfaces_may_be_described_between_packets() {
    let mut b = PcapngBuilder::new(false);
    b.interface(1, 0, &[PcapngBuilder::name("a")]);
    b.epb(0, 1, &[1], 1, None);
    b.interface(1, 0, &[PcapngBuilder::name("b")]);
    b.epb(1, 1, &[2], 1, None);
    let (file, packets) = read_ok(&b.bytes);
    assert_eq!(file.interfaces().len(), 2);
    assert_eq!(packets.iter().map(|p| p.interface).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn sll_packet_types_give_packet_type_and_direction() {
    let mac = [2, 0, 0, 0, 0, 9];
    let mut b = PcapBuilder::new(false, false, 113, 262144);
    for packet_type in 0..=5u16 {
        b.record(1, 0, &sll(packet_type, mac, 0x0800, &[0x45, 0]), 18);
    }
    b.record(1, 0, &[0; 10], 10); // shorter than the header
    let (file, packets) = read_ok(&b.bytes);
    assert_eq!(file.interfaces().len(), 1);
    use Direction::*;
    use PacketType::*;
    let kinds: Vec<_> = packets.iter().map(|p| (p.packet_type, p.direction)).collect();
    assert_eq!(
        kinds,
        [
            (Some(Host), Some(Inbound)),
            (Some(Broadcast), Some(Inbound)),
            (Some(Multicast), Some(Inbound)),
            (Some(OtherHost), Some(Inbound)),
            (Some(Outgoing), Some(Outbound)),
            (None, None),
            (None, None),
        ]
    );
    let LinkKind::LinuxSll(header) = packets[0].link else {
        panic!("{:?}", packets[0].link);
    };
    assert_eq!(header.protocol, 0x0800);
    assert_eq!(header.source_mac(), Some(mac));
    assert_eq!(packets[0].data[header.payload_offset..], [0x45, 0]);
    assert_eq!(packets[6].link, LinkKind::Other(113));
}

#[test]
fn sll2_ifindexes_become_interfaces() {
    let mac = [2, 0, 0, 0, 0, 1];
    let mut b = PcapBuilder::new(true, true, 276, 0);
    b.record(1, 0, &sll2(0, 7, mac, 0x86dd, &[0x60]), 21);
    b.record(1, 1, &sll2(4, 9, mac, 0x86dd, &[0x60]), 21);
    b.record(1, 2, &sll2(3, 7, mac, 0x0800, &[0x45]), 21);
    b.record(1, 3, &sll2(1, 3, mac, 0x0806, &[0]), 21);
    b.record(1, 4, &sll2(2, 9, mac, 0x0800, &[0x45]), 21);
    let (file, packets) = read_ok(&b.bytes);
    let names: Vec<_> = file.interfaces().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["fixture", "ifindex7", "ifindex9", "ifindex3"]);
    let split = &file.interfaces()[2];
    assert_eq!((split.ifindex, split.parent, split.link_type), (Some(9), Some(0), 276));
    assert_eq!(split.resolution, TimestampResolution::NANOSECONDS);
    use PacketType::*;
    let seen: Vec<_> = packets.iter().map(|p| (p.interface, p.packet_type.unwrap())).collect();
    assert_eq!(
        seen,
        [(1, Host), (2, Outgoing), (1, OtherHost), (3, Broadcast), (2, Multicast)]
    );
    assert_eq!(packets[1].direction, Some(Direction::Outbound));
    let LinkKind::LinuxSll2(header) = packets[0].link else {
        panic!("{:?}", packets[0].link);
    };
    assert_eq!(
        (header.protocol, header.ifindex, header.payload_offset),
        (0x86dd, Some(7), 20)
    );
    assert_eq!(packets[4].timestamp_ns, SECOND + 4);
}

#[test]
fn sll2_in_pcapng_splits_per_interface_and_prefers_the_cooked_packet_type() {
    let mac = [2, 0, 0, 0, 0, 1];
    let mut b = PcapngBuilder::new(false);
    b.interface(276, 0, &[PcapngBuilder::name("any")]);
    b.interface(276, 0, &[PcapngBuilder::name("any")]);
    b.epb(0, 1, &sll2(4, 2, mac, 0x0800, &[0x45]), 21, Some(0b001 << 2 | 0b01));
    b.epb(1, 1, &sll2(0, 2, mac, 0x0800, &[0x45]), 21, None);
    b.epb(0, 1, &sll2(9, 2, mac, 0x0800, &[0x45]), 21, Some(0b011 << 2 | 0b01));
    let (file, packets) = read_ok(&b.bytes);
    assert_eq!(file.interfaces().len(), 4);
    assert_eq!(file.interfaces()[3].parent, Some(1));
    let seen: Vec<_> = packets.iter().map(|p| (p.interface, p.packet_type)).collect();
    assert_eq!(
        seen,
        [
            (2, Some(PacketType::Outgoing)),
            (3, Some(PacketType::Host)),
            // Unknown kernel packet type: epb_flags fill in.
            (2, Some(PacketType::Broadcast)),
        ]
    );
}

#[test]
fn records_larger_than_the_buffer_and_many_refills() {
    let mut b = PcapBuilder::new(false, false, 1, 0);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    b.record(0, 0, &big, big.len() as u32);
    let mut expected = vec![big.len()];
    for i in 0..20_000u32 {
        let len = (i * 7919 % 1600) as usize;
        b.record(i, 0, &vec![i as u8; len], len as u32);
        expected.push(len);
    }
    /// A reader that returns odd-sized pieces, like a pipe.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(65_521);
            self.0.read(&mut out[..n])
        }
    }
    let mut file = CaptureFile::from_reader("x.pcap", Trickle(Cursor::new(b.bytes))).unwrap();
    let (packets, error) = drain(&mut file);
    assert!(error.is_none());
    assert_eq!(packets.iter().map(|p| p.data.len()).collect::<Vec<_>>(), expected);
    assert_eq!(packets[0].data, big);
    for (i, p) in packets[1..].iter().enumerate() {
        assert!(p.data.iter().all(|b| *b == i as u8));
        assert_eq!(p.timestamp_ns, i as u64 * SECOND);
    }
}

/// Cuts `bytes` at every length and checks that each cut file delivers
/// exactly the packets of the records it holds whole, then ends cleanly at a
/// record boundary or with `Truncated` at the cut record, never panicking.
fn check_every_cut(bytes: &[u8], boundaries: &[Boundary], header_end: usize) {
    let (_, all) = read_ok(bytes);
    for cut in 0..=bytes.len() {
        let file = open(&bytes[..cut]);
        if cut < header_end {
            let error = file.expect_err("a cut header does not open");
            match error {
                ReadError::NotACaptureFile { offset: 0, .. } => assert!(cut < 4, "cut {cut}"),
                ReadError::Truncated { offset: 0, .. } => assert!(cut >= 4, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
            continue;
        }
        let mut file = file.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let (packets, error) = drain(&mut file);
        let whole = boundaries.iter().filter(|b| b.end <= cut && b.packet).count();
        assert_eq!(packets, all[..whole], "cut {cut}");
        let last_end = boundaries
            .iter()
            .map(|b| b.end)
            .filter(|end| *end <= cut)
            .max()
            .unwrap_or(0);
        match error {
            None => assert_eq!(last_end, cut, "cut {cut} inside a record ended cleanly"),
            Some(ReadError::Truncated { offset, ref file }) => {
                assert_eq!(offset, last_end as u64, "cut {cut}");
                assert_eq!(file.to_str(), Some("dir/fixture.cap"));
                assert_ne!(last_end, cut);
            }
            Some(other) => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn truncated_pcap_at_every_byte() {
    let mut b = PcapBuilder::new(false, true, 113, 0);
    b.record(1, 2, &sll(4, [1; 6], 0x0800, &[0x45, 1, 2]), 19);
    b.record(3, 4, &[], 0);
    b.record(5, 6, &[7; 9], 9);
    check_every_cut(&b.bytes, &b.boundaries, 24);
}

#[test]
fn truncated_pcapng_at_every_byte() {
    let b = multi_section_pcapng();
    let header_end = b.boundaries[0].end;
    check_every_cut(&b.bytes, &b.boundaries, header_end);
}

#[test]
fn not_a_capture_file() {
    for bytes in [&b""[..], b"abc", b"GET / HTTP/1.1\r\n\r\n", &[0xd4, 0xc3, 0xb2]] {
        let error = open(bytes).unwrap_err();
        assert!(
            matches!(error, ReadError::NotACaptureFile { offset: 0, .. }),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .starts_with("dir/fixture.cap: not a pcap or pcapng file"));
    }
    // An SHB magic with no valid byte-order mark.
    let mut bytes = PcapngBuilder::new(false).bytes;
    bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
    assert!(matches!(
        open(&bytes),
        Err(ReadError::NotACaptureFile { offset: 0, .. })
    ));
    // ... also in a later section, after the packets before it.
    let mut b = PcapngBuilder::new(false);
    b.interface(1, 0, &[]).epb(0, 0, &[1], 1, None);
    let second = b.bytes.len();
    b.section(false);
    b.bytes[second + 8] = 0;
    let mut file = open(&b.bytes).unwrap();
    let (packets, error) = drain(&mut file);
    assert_eq!(packets.len(), 1);
    assert!(matches!(error, Some(ReadError::NotACaptureFile { offset, .. }) if offset == second as u64));
}

#[test]
fn unsupported_versions() {
    let mut bytes = PcapBuilder::new(true, false, 1, 0).bytes;
    bytes[4..6].copy_from_slice(&3u16.to_be_bytes());
    let error = open(&bytes).unwrap_err();
    assert!(matches!(
        error,
        ReadError::UnsupportedVersion {
            major: 3,
            minor: 4,
            offset: 0,
            ..
        }
    ));
    assert!(error.to_string().contains("version 3.4"));
    let mut bytes = PcapngBuilder::new(false).bytes;
    bytes[12..14].copy_from_slice(&2u16.to_le_bytes());
    assert!(matches!(
        open(&bytes),
        Err(ReadError::UnsupportedVersion { major: 2, .. })
    ));
}

#[test]
fn bad_block_lengths_end_the_file_after_the_packets_before() {
    let mut base = PcapngBuilder::new(false);
    base.interface(1, 0, &[]).epb(0, 0, &[1, 2], 2, None);
    let good = base.bytes.len();
    base.epb(0, 0, &[3, 4, 5, 6, 7], 5, None);
    let patch = |at: usize, value: u32| {
        let mut bytes = base.bytes.clone();
        bytes[good + at..good + at + 4].copy_from_slice(&value.to_le_bytes());
        bytes
    };
    let cases = [
        patch(4, 8),                  // shorter than a block can be
        patch(4, 45),                 // not a multiple of 4
        patch(4, 36),                 // trailer disagrees
        patch(4, MAX_BLOCK_LEN_PLUS), // beyond the limit
        patch(20, 9),                 // captured length overruns the block
        patch(20, u32::MAX),          // ... by far
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let mut file = open(bytes).unwrap();
        let (packets, error) = drain(&mut file);
        assert_eq!(packets.len(), 1, "case {i}");
        match error {
            Some(ReadError::BadBlockLength { offset, .. }) => assert_eq!(offset, good as u64, "case {i}"),
            other => panic!("case {i}: {other:?}"),
        }
    }
    // A pcap record that claims more than the limit.
    let mut b = PcapBuilder::new(false, false, 1, 0);
    b.record(0, 0, &[1], 1);
    b.u32(0);
    b.u32(0);
    b.u32(MAX_BLOCK_LEN_PLUS);
    b.u32(0);
    let mut file = open(&b.bytes).unwrap();
    let (packets, error) = drain(&mut file);
    assert_eq!(packets.len(), 1);
    assert!(
        matches!(error, Some(ReadError::BadBlockLength { offset: 41, .. })),
        "{error:?}"
    );
}

const MAX_BLOCK_LEN_PLUS: u32 = crate::MAX_BLOCK_LEN + 4;

#[test]
fn packet_of_an_undescribed_interface() {
    let mut b = PcapngBuilder::new(false);
    b.interface(1, 0, &[]);
    b.section(false); // drops the interface
    let at = b.bytes.len() as u64;
    b.epb(0, 0, &[1], 1, None);
    let mut file = open(&b.bytes).unwrap();
    let (_, error) = drain(&mut file);
    assert!(matches!(error, Some(ReadError::UnknownInterface { interface: 0, offset, .. }) if offset == at));
    let mut b = PcapngBuilder::new(false);
    b.spb(&[1], 1);
    let (_, error) = drain(&mut open(&b.bytes).unwrap());
    assert!(matches!(error, Some(ReadError::UnknownInterface { interface: 0, .. })));
}

#[test]
fn io_errors_name_the_file_and_offset() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let header = PcapBuilder::new(false, false, 1, 0).bytes;
            if self.0 == 0 {
                self.0 = 1;
                out[..24].copy_from_slice(&header);
                return Ok(24);
            }
            Err(io::Error::other("disk on fire"))
        }
    }
    let mut file = CaptureFile::from_reader("broken.pcap", Failing(0)).unwrap();
    let error = file.next_packet().unwrap_err();
    assert!(matches!(error, ReadError::Io { offset: 24, .. }));
    assert_eq!(error.to_string(), "broken.pcap: read failed at byte 24: disk on fire");
    assert!(std::error::Error::source(&error).is_some());
    let error = CaptureFile::open("/nonexistent/ringsieve.pcap").unwrap_err();
    assert!(matches!(error, ReadError::Io { .. }));
    assert_eq!(error.file().to_str(), Some("/nonexistent/ringsieve.pcap"));
}

#[test]
fn reads_back_what_the_output_writer_wrote() {
    let mut writer = output::PcapngWriter::new(Vec::new(), "test").unwrap();
    let eth0 = writer.add_interface("eth0", 262144).unwrap();
    let veth = writer.add_interface("veth9", 128).unwrap();
    let types = [
        PacketType::Host,
        PacketType::Broadcast,
        PacketType::Multicast,
        PacketType::OtherHost,
        PacketType::Outgoing,
    ];
    for (i, packet_type) in types.iter().enumerate() {
        let data = vec![i as u8; 60 + i];
        let record = output::PacketRecord {
            interface: if i % 2 == 0 { eth0 } else { veth },
            timestamp_ns: 1_700_000_000 * SECOND + i as u64,
            original_len: 100,
            data: &data,
            packet_type: Some(*packet_type),
            vlan: None,
        };
        writer.write_packet(&record).unwrap();
    }
    let bytes = writer.finish().unwrap();
    let (file, packets) = read_ok(&bytes);
    let names: Vec<_> = file.interfaces().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "veth9"]);
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p.interface, (i % 2) as u32);
        assert_eq!(p.timestamp_ns, 1_700_000_000 * SECOND + i as u64);
        assert_eq!(p.data, vec![i as u8; 60 + i]);
        assert_eq!(p.packet_type, Some(types[i]));
        assert_eq!(p.direction, Some(types[i].direction()));
    }
}

/// The read-ahead returns what the reader does, in the same order (and the
/// same error after the same packets), batches and interfaces described
/// between packets included.
#[test]
fn read_ahead_returns_what_the_reader_does() {
    let mut interleaved = PcapngBuilder::new(false);
    interleaved.interface(1, 0, &[PcapngBuilder::name("a")]);
    for i in 0..3_000u32 {
        if i % 1_000 == 999 {
            interleaved.interface(1, 0, &[PcapngBuilder::name(&format!("if{i}"))]);
        }
        let interface = i % (1 + i / 1_000);
        let len = (i * 7919 % 1600) as usize;
        interleaved.epb(interface, u64::from(i), &vec![i as u8; len], len as u32, Some(0b01));
    }
    // Records larger than a batch, between small ones.
    let mut large = PcapBuilder::new(false, false, 1, 0);
    for i in 0..20u32 {
        let len = if i % 7 == 3 { 3 * crate::BATCH_BYTES / 2 } else { 100 };
        large.record(i, 0, &vec![i as u8; len], len as u32);
    }
    // Empty records: batches end by their count.
    let mut tiny = PcapBuilder::new(false, false, 1, 0);
    for i in 0..(2 * crate::BATCH_PACKETS as u32 + 5) {
        tiny.record(i, 0, &[], 0);
    }
    for bytes in [multi_section_pcapng().bytes, interleaved.bytes, large.bytes, tiny.bytes] {
        // Whole, and cut mid-record near the end.
        for cut in [0, 5] {
            let bytes = &bytes[..bytes.len() - cut];
            let mut file = open(bytes).expect("opens");
            let (expected, expected_error) = drain(&mut file);
            let mut ahead = ReadAhead::start(open(bytes).expect("opens")).expect("starts");
            let (packets, error) = drain(&mut ahead);
            assert_eq!(packets, expected);
            assert_eq!(format!("{error:?}"), format!("{expected_error:?}"));
            assert_eq!(ahead.interfaces(), file.interfaces());
        }
    }
}

/// Dropped before the end, the read-ahead stops its thread (the test would
/// hang otherwise).
#[test]
fn read_ahead_dropped_early_stops() {
    let mut b = PcapBuilder::new(false, false, 1, 0);
    for i in 0..50_000u32 {
        b.record(i, 0, &[i as u8; 200], 200);
    }
    let mut ahead = ReadAhead::start(open(&b.bytes).unwrap()).unwrap();
    assert!(ahead.next_packet().unwrap().is_some());
    drop(ahead);
}
