//! Entry points of the capture-file fuzz targets: arbitrary bytes read as a
//! pcap or pcapng file by [`capture_file::CaptureFile`], every packet walked
//! to the end or the first error, asserting what must hold for any input
//! ([`read_capture`]); the same with a valid file header chosen by the first
//! byte in front ([`read_framed_capture`]); and, in [`seed`], builders of the
//! valid files the seed corpus and the stable tests start from.
//!
//! It tests `capture_file`'s public API from outside, as `ringsieve read`
//! uses it, and adds nothing to that crate.

pub mod seed;

use std::io::{self, Cursor, Read};

use af_packet::{Direction, PacketType};
use capture_file::link_type::{ETHERNET, IPV4, IPV6, LINUX_SLL, LINUX_SLL2, RAW};
use capture_file::{CaptureFile, CaptureFormat, CookedHeader, FileInterface, LinkKind, ReadError, MAX_BLOCK_LEN};

/// The name the input is read under; a pcap file's interface is named after
/// its stem.
const NAME: &str = "fuzz-input.pcap";
/// The smallest record that can hold a packet: a pcap record header, or a
/// pcapng Simple Packet Block (12 bytes of block overhead and the original
/// length). Bounds the number of packets an input can hold.
const MIN_PACKET_RECORD: usize = 16;

/// One delivered packet, owned, with the reader's offset after it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Delivered {
    interface: u32,
    timestamp_ns: u64,
    original_len: u32,
    data: Vec<u8>,
    link: LinkKind,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
    /// [`CaptureFile::offset`] after the packet: the end of its record.
    end: u64,
}

/// How a read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ending {
    /// `Ok(None)`: the end of the file.
    Clean,
    /// An error: its offset, message and whether it was an I/O error.
    Error { offset: u64, message: String, io: bool },
}

impl Ending {
    fn of(error: &ReadError) -> Self {
        Self::Error {
            offset: error.offset(),
            message: error.to_string(),
            io: matches!(error, ReadError::Io { .. }),
        }
    }
}

/// Everything one read of an input produced.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// `from_reader` refused the file.
    Refused(Ending),
    /// The file opened; its packets, how it ended, its interfaces at the end.
    Read {
        header_end: u64,
        packets: Vec<Delivered>,
        ending: Ending,
        interfaces: Vec<FileInterface>,
    },
}

/// Reads `file` as a capture file and asserts, for any bytes:
///
/// - nothing panics; opening either succeeds with the format the magic
///   number names, or fails at offset 0;
/// - the walk ends (a clean end or an error) within one call per 16 bytes of
///   input, and stays ended: later calls return `Ok(None)`;
/// - every packet advances the reader, its bytes are exactly those its
///   record (a pcap record, or the pcapng packet block ending at the new
///   offset) holds, and a Simple Packet Block's are no more than its
///   original length and the interface's snap length;
/// - every packet's interface is valid in [`CaptureFile::interfaces`], which
///   only grows and never changes an entry; a packet is on a `LINUX_SLL2`
///   ifindex interface exactly when its link is `LinuxSll2` with that
///   ifindex;
/// - the link kind, cooked header, timestamp (pcap), direction and packet
///   type agree with the record and the interface;
/// - a clean end consumed every byte; an error is at the reader's offset,
///   inside the input, names the file, and every packet before it was
///   delivered;
/// - the same bytes read through a reader that returns odd-sized pieces and
///   `Interrupted` errors give exactly the same result, and through one that
///   fails partway give the packets that lie wholly before the failure, then
///   an I/O error there (or the same error as the whole file).
///
/// Panics (a fuzzer finding) when one does not hold. The pcap/pcapng
/// contract does not promise `data.len() <= original_len` for pcap records
/// and pcapng Enhanced and obsolete Packet Blocks (both fields come from the
/// file, and libpcap delivers them as they are), so that is asserted only
/// for Simple Packet Blocks, whose captured length the reader computes.
pub fn read_capture(file: &[u8]) {
    let whole = walk(file, Cursor::new(file.to_vec()));
    let pieces = walk(file, Pieces::new(file));
    assert_eq!(pieces, whole, "reading in odd-sized pieces changed the result");
    if !file.is_empty() {
        let cut = usize::from(file[file.len() - 1]) * file.len() / 256;
        check_failing_read(file, cut, &whole);
    }
}

/// Reads `data[1..]` after the valid file header that `data[0]` selects
/// ([`seed::framed_header`]), with the checks of [`read_capture`].
pub fn read_framed_capture(data: &[u8]) {
    let Some((&selector, records)) = data.split_first() else {
        return;
    };
    let mut file = seed::framed_header(selector).bytes().to_vec();
    file.extend_from_slice(records);
    read_capture(&file);
}

/// Reads `file` from `reader` to the end, checking every packet.
fn walk(file: &[u8], reader: impl Read + Send + 'static) -> Outcome {
    let mut capture = match CaptureFile::from_reader(NAME, reader) {
        Ok(capture) => capture,
        Err(error) => {
            assert_eq!(error.offset(), 0, "opening failed past the header: {error}");
            assert_eq!(error.file().to_str(), Some(NAME));
            if file.len() < 4 && !matches!(error, ReadError::Io { .. }) {
                assert!(matches!(error, ReadError::NotACaptureFile { .. }), "{error:?}");
            }
            return Outcome::Refused(Ending::of(&error));
        }
    };
    check_format(file, capture.format());
    let header_end = capture.offset();
    assert!(header_end > 0 && header_end as usize <= file.len());
    let mut interfaces = capture.interfaces().to_vec();
    if matches!(capture.format(), CaptureFormat::Pcap { .. }) {
        assert_eq!(header_end, 24);
        assert_eq!(interfaces.len(), 1, "a pcap file has one interface");
        assert_eq!(interfaces[0].name, "fuzz-input");
    }

    let limit = file.len() / MIN_PACKET_RECORD + 1;
    let mut packets = Vec::new();
    let mut before = header_end;
    let mut ending = None;
    for _ in 0..limit + 1 {
        let packet = match capture.next_packet() {
            Ok(Some(packet)) => Delivered {
                interface: packet.interface,
                timestamp_ns: packet.timestamp_ns,
                original_len: packet.original_len,
                data: packet.data.to_vec(),
                link: packet.link,
                direction: packet.direction,
                packet_type: packet.packet_type,
                end: 0,
            },
            Ok(None) => {
                ending = Some(Ending::Clean);
                break;
            }
            Err(error) => {
                check_error(file, &capture, &error, before);
                ending = Some(Ending::of(&error));
                break;
            }
        };
        let end = capture.offset();
        interfaces = grown(&interfaces, capture.interfaces());
        check_packet(file, capture.format(), &interfaces, &packet, before, end);
        packets.push(Delivered { end, ..packet });
        before = end;
    }
    let ending = ending.unwrap_or_else(|| {
        panic!(
            "no end after {} packets of a {}-byte input: the reader does not terminate",
            packets.len(),
            file.len()
        )
    });
    assert!(
        packets.len() <= limit,
        "{} packets in {} bytes",
        packets.len(),
        file.len()
    );
    if ending == Ending::Clean {
        assert_eq!(
            capture.offset(),
            file.len() as u64,
            "a clean end left bytes unread (a cut record must be Truncated)"
        );
    }
    for _ in 0..2 {
        assert!(
            matches!(capture.next_packet(), Ok(None)),
            "the reader went on after its end"
        );
    }
    assert_eq!(capture.packets_read(), packets.len() as u64);
    let interfaces = grown(&interfaces, capture.interfaces());
    Outcome::Read {
        header_end,
        packets,
        ending,
        interfaces,
    }
}

/// `now`, after checking that it is `before` with entries added.
fn grown(before: &[FileInterface], now: &[FileInterface]) -> Vec<FileInterface> {
    assert!(
        now.len() >= before.len() && now[..before.len()] == *before,
        "interfaces changed: {before:?} became {now:?}"
    );
    now.to_vec()
}

/// The format matches the magic number.
fn check_format(file: &[u8], format: CaptureFormat) {
    let magic: [u8; 4] = file[..4].try_into().expect("a file that opened has a magic number");
    let expected = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
        (0x0a0d_0d0a, _) => CaptureFormat::Pcapng,
        (0xa1b2_c3d4, _) => CaptureFormat::Pcap {
            big_endian: false,
            nanosecond: false,
        },
        (0xa1b2_3c4d, _) => CaptureFormat::Pcap {
            big_endian: false,
            nanosecond: true,
        },
        (_, 0xa1b2_c3d4) => CaptureFormat::Pcap {
            big_endian: true,
            nanosecond: false,
        },
        (_, 0xa1b2_3c4d) => CaptureFormat::Pcap {
            big_endian: true,
            nanosecond: true,
        },
        _ => panic!("opened a file with magic {magic:02x?}"),
    };
    assert_eq!(format, expected);
}

/// An error from `next_packet`: at the reader's offset, after the last
/// packet, inside the input (I/O errors aside, it is about a record that
/// starts there).
fn check_error(file: &[u8], capture: &CaptureFile, error: &ReadError, last_end: u64) {
    assert_eq!(error.file().to_str(), Some(NAME));
    assert_eq!(
        error.offset(),
        capture.offset(),
        "{error}: the error is not where the reader stopped"
    );
    assert!(
        error.offset() >= last_end,
        "{error}: before the last packet's end {last_end}"
    );
    if !matches!(error, ReadError::Io { .. }) {
        assert!((error.offset() as usize) < file.len(), "{error}: past the input's end");
    }
    if let ReadError::BadBlockLength { length, .. } = error {
        // The length the file states, as it is at the offset.
        let at = error.offset() as usize;
        let stated = |range: std::ops::Range<usize>| {
            file.get(range).map(|b| {
                let b: [u8; 4] = b.try_into().expect("4 bytes");
                [u32::from_le_bytes(b), u32::from_be_bytes(b)]
            })
        };
        let candidates: Vec<u32> = [stated(at + 4..at + 8), stated(at + 8..at + 12)]
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert!(
            candidates.contains(length),
            "{error}: {length} is not a length field of the record ({candidates:?})"
        );
    }
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    })
}

/// Which pcapng packet block ends at `end` and holds `data`, trying both
/// byte orders: `(block type, start of the block, big-endian)`.
fn packet_block_at(file: &[u8], end: usize, data: &[u8]) -> Vec<(u32, usize, bool)> {
    let mut found = Vec::new();
    for big_endian in [false, true] {
        let Some(length) = read_u32(file, end.saturating_sub(4), big_endian) else {
            continue;
        };
        let Some(start) = end.checked_sub(length as usize) else {
            continue;
        };
        if read_u32(file, start + 4, big_endian) != Some(length) {
            continue;
        }
        let Some(block_type) = read_u32(file, start, big_endian) else {
            continue;
        };
        let data_at = match block_type {
            2 | 6 => start + 28,
            3 => start + 12,
            _ => continue,
        };
        if file.get(data_at..data_at + data.len()) == Some(data) {
            found.push((block_type, start, big_endian));
        }
    }
    found
}

/// The checks of one packet, read between offsets `before` and `end`.
fn check_packet(
    file: &[u8],
    format: CaptureFormat,
    interfaces: &[FileInterface],
    packet: &Delivered,
    before: u64,
    end: u64,
) {
    assert!(end > before, "a packet did not advance the reader ({before} to {end})");
    assert!(
        end as usize <= file.len(),
        "offset {end} past the input's {} bytes",
        file.len()
    );
    let (before, end) = (before as usize, end as usize);
    let len = packet.data.len();
    assert!(len <= end - before, "{len} bytes from a {}-byte record", end - before);
    assert!(len <= MAX_BLOCK_LEN as usize);
    let interface = interfaces
        .get(packet.interface as usize)
        .unwrap_or_else(|| panic!("interface {} of {}", packet.interface, interfaces.len()));

    match format {
        CaptureFormat::Pcap { big_endian, nanosecond } => {
            // The record is the 16-byte header and the data, ending at `end`.
            assert_eq!(before + 16 + len, end, "a pcap record is its header and data");
            assert_eq!(&file[end - len..end], &packet.data[..]);
            let field = |i: usize| u64::from(read_u32(file, before + 4 * i, big_endian).expect("in the record"));
            assert_eq!(field(2), len as u64, "captured length");
            assert_eq!(u64::from(packet.original_len), field(3), "original length");
            let unit = if nanosecond { 1 } else { 1_000 };
            assert_eq!(packet.timestamp_ns, field(0) * 1_000_000_000 + field(1) * unit);
            let root = interface.parent.unwrap_or(packet.interface);
            assert_eq!(root, 0, "a pcap packet on an interface not split from the file's");
        }
        CaptureFormat::Pcapng => {
            let blocks = packet_block_at(file, end, &packet.data);
            assert!(
                !blocks.is_empty(),
                "no packet block ends at {end} holding the packet's {len} bytes"
            );
            assert!(blocks.iter().all(|&(_, start, _)| start >= before));
            if let [(3, _, _)] = blocks[..] {
                // Simple Packet Block: the reader computed the captured length.
                assert!(len as u64 <= u64::from(packet.original_len), "SPB: {len} > original");
                let described = &interfaces[interface.parent.unwrap_or(packet.interface) as usize];
                if described.snaplen != 0 {
                    assert!(len as u64 <= u64::from(described.snaplen), "SPB: {len} > snaplen");
                }
                assert_eq!(packet.timestamp_ns, 0, "an SPB has no timestamp");
            }
        }
        other => panic!("a format the fuzz target does not know: {other:?}"),
    }

    check_link(interfaces, interface, packet);
    assert_eq!(
        packet.packet_type == Some(PacketType::Outgoing),
        packet.direction == Some(Direction::Outbound),
        "outgoing is exactly outbound: {:?} {:?}",
        packet.packet_type,
        packet.direction
    );
}

/// The link kind is what the interface's link type and the bytes make it.
fn check_link(interfaces: &[FileInterface], interface: &FileInterface, packet: &Delivered) {
    let data = &packet.data[..];
    let cooked = match interface.link_type {
        ETHERNET => {
            assert_eq!(packet.link, LinkKind::Ethernet);
            None
        }
        RAW | IPV4 | IPV6 => {
            assert_eq!(packet.link, LinkKind::Raw);
            None
        }
        LINUX_SLL => match CookedHeader::parse_sll(data) {
            Some(header) => {
                assert_eq!(packet.link, LinkKind::LinuxSll(header));
                Some(header)
            }
            None => {
                assert!(data.len() < 16);
                assert_eq!(packet.link, LinkKind::Other(LINUX_SLL));
                None
            }
        },
        LINUX_SLL2 => match CookedHeader::parse_sll2(data) {
            Some(header) => {
                assert_eq!(packet.link, LinkKind::LinuxSll2(header));
                Some(header)
            }
            None => {
                assert!(data.len() < 20);
                assert_eq!(packet.link, LinkKind::Other(LINUX_SLL2));
                None
            }
        },
        other => {
            assert_eq!(packet.link, LinkKind::Other(other));
            None
        }
    };
    if let Some(header) = cooked {
        assert!(header.payload_offset <= data.len());
        assert!(header.source_address().len() <= 8);
        if let Some((packet_type, direction)) = header.kernel_packet_type() {
            assert_eq!(packet.packet_type, Some(packet_type));
            assert_eq!(packet.direction, Some(direction));
        }
    }
    // A packet is on a split interface exactly when it has a LINUX_SLL2
    // header, and the split is for its ifindex, under a described interface.
    match packet.link {
        LinkKind::LinuxSll2(header) => {
            assert_eq!(interface.ifindex, header.ifindex);
            assert_eq!(
                interface.name,
                format!("ifindex{}", header.ifindex.expect("SLL2 has one"))
            );
            let parent = interface.parent.expect("a split interface has a parent") as usize;
            assert!(parent < interfaces.len() && parent != packet.interface as usize);
            let described = &interfaces[parent];
            assert!(described.parent.is_none() && described.ifindex.is_none());
            assert_eq!(described.link_type, LINUX_SLL2);
            assert_eq!(
                (described.resolution, described.offset_s, described.section),
                (interface.resolution, interface.offset_s, interface.section)
            );
        }
        _ => assert!(
            interface.parent.is_none() && interface.ifindex.is_none(),
            "a {:?} packet on split interface {interface:?}",
            packet.link
        ),
    }
}

/// Reads `file` through a reader that hands out its first `cut` bytes and
/// then fails: the packets are those of `whole` that end by `cut`, and the
/// read ends with an I/O error at or after the last of them (or with the
/// same error as `whole`, if that one needed no byte past `cut`).
fn check_failing_read(file: &[u8], cut: usize, whole: &Outcome) {
    if cut >= file.len() {
        return;
    }
    let failing = walk(file, FailAfter::new(&file[..cut]));
    let io_at = |ending: &Ending, from: u64| match ending {
        Ending::Error { offset, io: true, .. } => *offset >= from && *offset <= cut as u64,
        _ => false,
    };
    match (whole, &failing) {
        (Outcome::Refused(expected), Outcome::Refused(got)) => {
            assert!(
                got == expected || io_at(got, 0),
                "{got:?} where the whole file gave {expected:?}"
            );
        }
        (Outcome::Read { header_end, .. }, Outcome::Refused(got)) => {
            assert!(
                *header_end > cut as u64 && io_at(got, 0),
                "refused with {got:?} though the header ends at {header_end}, before the failure at {cut}"
            );
        }
        (
            Outcome::Read {
                packets: expected,
                ending: expected_ending,
                ..
            },
            Outcome::Read { packets, ending, .. },
        ) => {
            let before_cut: Vec<_> = expected.iter().filter(|p| p.end <= cut as u64).cloned().collect();
            assert_eq!(packets, &before_cut, "a read failing at {cut} delivered other packets");
            let last_end = packets.last().map_or(0, |p| p.end);
            if ending == expected_ending {
                assert_eq!(packets, expected);
            } else {
                assert!(io_at(ending, last_end), "{ending:?} from a read failing at {cut}");
            }
        }
        (Outcome::Refused(expected), got) => panic!("the whole file was refused ({expected:?}), a part read: {got:?}"),
    }
}

/// A reader that returns pieces of 1 to 4093 bytes and an `Interrupted`
/// error every fifth call, like a slow pipe.
struct Pieces {
    bytes: Vec<u8>,
    at: usize,
    calls: usize,
}

impl Pieces {
    fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
            at: 0,
            calls: 0,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        const SIZES: [usize; 6] = [1, 7, 3, 64, 2, 4093];
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        let n = SIZES[self.calls % SIZES.len()]
            .min(out.len())
            .min(self.bytes.len() - self.at);
        out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A reader that returns `bytes`, then fails every call.
struct FailAfter(Cursor<Vec<u8>>);

impl FailAfter {
    fn new(bytes: &[u8]) -> Self {
        Self(Cursor::new(bytes.to_vec()))
    }
}

impl Read for FailAfter {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self.0.read(out)? {
            0 if !out.is_empty() => Err(io::Error::other("device went away")),
            n => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests;
