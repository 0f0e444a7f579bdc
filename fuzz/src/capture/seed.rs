//! Builders of small, valid capture files (classic pcap in either byte order
//! and resolution, pcapng with several sections and interfaces, Linux cooked
//! headers), written here from the format specifications rather than with
//! `capture_file`, so a seed the reader misreads is a finding, not a copy of
//! its bug; the fixed headers [`framed_header`] puts in front of the
//! `capture_file_records` target's input; and the seed files of both capture
//! targets ([`raw_seeds`], [`framed_seeds`]).
//!
//! Layouts: wiki.wireshark.org/Development/LibpcapFileFormat,
//! draft-ietf-opsawg-pcapng, tcpdump.org/linktypes (`LINUX_SLL`,
//! `LINUX_SLL2`).

use capture_file::link_type::{ETHERNET, IPV4, IPV6, LINUX_SLL, LINUX_SLL2, RAW};
use flow::fuzzing::seeds;

/// A pcapng option: code and value (already in the section's byte order).
pub type Opt = (u16, Vec<u8>);

/// `if_name`.
pub const IF_NAME: u16 = 2;
/// `if_tsresol`.
pub const IF_TSRESOL: u16 = 9;
/// `if_tsoffset`.
pub const IF_TSOFFSET: u16 = 14;
/// `opt_comment`.
pub const OPT_COMMENT: u16 = 1;
/// `epb_flags` (and `pack_flags` of the obsolete Packet Block).
pub const EPB_FLAGS: u16 = 2;
/// `epb_flags` direction bits: inbound.
pub const INBOUND: u32 = 0b01;
/// `epb_flags` direction bits: outbound.
pub const OUTBOUND: u32 = 0b10;
/// `epb_flags` reception type: unicast, multicast, broadcast, promiscuous.
pub const UNICAST: u32 = 1 << 2;
/// See [`UNICAST`].
pub const MULTICAST: u32 = 2 << 2;
/// See [`UNICAST`].
pub const BROADCAST: u32 = 3 << 2;
/// See [`UNICAST`].
pub const PROMISCUOUS: u32 = 4 << 2;
/// A link type the reader does not know (`LINKTYPE_USER0`).
pub const USER0: u32 = 147;

fn u16_bytes(value: u16, big_endian: bool) -> [u8; 2] {
    if big_endian {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    }
}

fn u32_bytes(value: u32, big_endian: bool) -> [u8; 4] {
    if big_endian {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    }
}

/// `data` zero-padded to a multiple of 4 bytes.
fn padded(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    bytes.resize(data.len().next_multiple_of(4), 0);
    bytes
}

/// A classic pcap file: the 24-byte file header, then records.
#[derive(Clone, Debug)]
pub struct Pcap {
    big_endian: bool,
    /// The file so far.
    pub bytes: Vec<u8>,
}

impl Pcap {
    /// A file header, version 2.4, for microsecond (magic 0xa1b2c3d4) or
    /// nanosecond (0xa1b23c4d) timestamps.
    pub fn new(big_endian: bool, nanosecond: bool, link_type: u32, snaplen: u32) -> Self {
        let mut file = Self {
            big_endian,
            bytes: Vec::new(),
        };
        file.u32(if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        file.bytes.extend(u16_bytes(2, big_endian));
        file.bytes.extend(u16_bytes(4, big_endian));
        file.u32(0); // thiszone
        file.u32(0); // sigfigs
        file.u32(snaplen);
        file.u32(link_type);
        file
    }

    /// A record: timestamp, captured length `data.len()`, `original_len`.
    pub fn record(&mut self, seconds: u32, fraction: u32, data: &[u8], original_len: u32) -> &mut Self {
        self.u32(seconds);
        self.u32(fraction);
        self.u32(data.len() as u32);
        self.u32(original_len);
        self.bytes.extend_from_slice(data);
        self
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend(u32_bytes(value, self.big_endian));
    }
}

/// A pcapng file; each section has its own byte order.
#[derive(Clone, Debug)]
pub struct Pcapng {
    big_endian: bool,
    /// The file so far.
    pub bytes: Vec<u8>,
}

impl Pcapng {
    /// A file whose first section has the given byte order.
    pub fn new(big_endian: bool) -> Self {
        let mut file = Self {
            big_endian,
            bytes: Vec::new(),
        };
        file.section(big_endian);
        file
    }

    /// A Section Header Block (version 1.0, unknown section length, an
    /// `shb_userappl` option) starting a section in `big_endian` order.
    pub fn section(&mut self, big_endian: bool) -> &mut Self {
        self.big_endian = big_endian;
        let mut body = Vec::new();
        body.extend(self.u32(0x1a2b_3c4d));
        body.extend(self.u16(1));
        body.extend(self.u16(0));
        body.extend([0xff; 8]); // section length -1: not given
        body.extend(self.options(&[(4, b"ringsieve-fuzz".to_vec())]));
        self.block(0x0a0d_0d0a, &body)
    }

    /// An Interface Description Block.
    pub fn interface(&mut self, link_type: u16, snaplen: u32, options: &[Opt]) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u16(link_type));
        body.extend(self.u16(0));
        body.extend(self.u32(snaplen));
        body.extend(self.options(options));
        self.block(1, &body)
    }

    /// An Enhanced Packet Block with `options`.
    pub fn epb(&mut self, interface: u32, units: u64, data: &[u8], original_len: u32, options: &[Opt]) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u32(interface));
        body.extend(self.u32((units >> 32) as u32));
        body.extend(self.u32(units as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(self.u32(original_len));
        body.extend(padded(data));
        if !options.is_empty() {
            body.extend(self.options(options));
        }
        self.block(6, &body)
    }

    /// A Simple Packet Block (interface 0 of the section, no timestamp).
    pub fn spb(&mut self, data: &[u8], original_len: u32) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u32(original_len));
        body.extend(padded(data));
        self.block(3, &body)
    }

    /// An obsolete Packet Block, with `pack_flags` if given.
    pub fn packet_block(&mut self, interface: u16, units: u64, data: &[u8], flags: Option<u32>) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u16(interface));
        body.extend(self.u16(0)); // drops
        body.extend(self.u32((units >> 32) as u32));
        body.extend(self.u32(units as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(padded(data));
        if let Some(flags) = flags {
            body.extend(self.options(&[self.flags(flags)]));
        }
        self.block(2, &body)
    }

    /// Any other block, its body zero-padded.
    pub fn other(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
        self.block(block_type, &padded(body))
    }

    /// `if_name`.
    pub fn name(name: &str) -> Opt {
        (IF_NAME, name.as_bytes().to_vec())
    }

    /// `if_tsresol`.
    pub fn tsresol(raw: u8) -> Opt {
        (IF_TSRESOL, vec![raw])
    }

    /// `if_tsoffset` in this section's byte order.
    pub fn tsoffset(&self, seconds: i64) -> Opt {
        let bytes = if self.big_endian {
            seconds.to_be_bytes()
        } else {
            seconds.to_le_bytes()
        };
        (IF_TSOFFSET, bytes.to_vec())
    }

    /// `epb_flags` in this section's byte order.
    pub fn flags(&self, flags: u32) -> Opt {
        (EPB_FLAGS, self.u32(flags).to_vec())
    }

    /// `opt_comment`.
    pub fn comment(text: &str) -> Opt {
        (OPT_COMMENT, text.as_bytes().to_vec())
    }

    fn block(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
        debug_assert_eq!(body.len() % 4, 0);
        let length = (body.len() + 12) as u32;
        let head = [self.u32(block_type), self.u32(length)].concat();
        self.bytes.extend(head);
        self.bytes.extend_from_slice(body);
        self.bytes.extend(self.u32(length));
        self
    }

    fn options(&self, options: &[Opt]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (code, value) in options {
            bytes.extend(self.u16(*code));
            bytes.extend(self.u16(value.len() as u16));
            bytes.extend(padded(value));
        }
        bytes.extend([0; 4]); // opt_endofopt
        bytes
    }

    fn u16(&self, value: u16) -> [u8; 2] {
        u16_bytes(value, self.big_endian)
    }

    fn u32(&self, value: u32) -> [u8; 4] {
        u32_bytes(value, self.big_endian)
    }
}

/// A `LINUX_SLL` header (packet type, ARPHRD type, source address of up to 8
/// bytes, protocol), then `payload`.
pub fn sll(packet_type: u16, arphrd: u16, address: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(packet_type.to_be_bytes());
    bytes.extend(arphrd.to_be_bytes());
    bytes.extend((address.len() as u16).to_be_bytes());
    let mut field = [0u8; 8];
    field[..address.len()].copy_from_slice(address);
    bytes.extend(field);
    bytes.extend(protocol.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A `LINUX_SLL2` header (protocol, ifindex, ARPHRD type, packet type,
/// source address of up to 8 bytes), then `payload`.
pub fn sll2(protocol: u16, ifindex: u32, arphrd: u16, packet_type: u8, address: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(protocol.to_be_bytes());
    bytes.extend([0, 0]);
    bytes.extend(ifindex.to_be_bytes());
    bytes.extend(arphrd.to_be_bytes());
    bytes.push(packet_type);
    bytes.push(address.len() as u8);
    let mut field = [0u8; 8];
    field[..address.len()].copy_from_slice(address);
    bytes.extend(field);
    bytes.extend_from_slice(payload);
    bytes
}

/// A capture file under construction, of either format.
#[derive(Clone, Debug)]
pub enum Builder {
    /// Classic pcap.
    Pcap(Pcap),
    /// pcapng.
    Pcapng(Pcapng),
}

impl Builder {
    /// The file so far.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Pcap(file) => &file.bytes,
            Self::Pcapng(file) => &file.bytes,
        }
    }
}

/// Link types the selector byte of [`framed_header`] chooses from.
pub const FRAMED_LINK_TYPES: [u32; 8] = [ETHERNET, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, ETHERNET, USER0];
/// Snap lengths the selector byte chooses from for a pcap header.
pub const FRAMED_SNAPLENS: [u32; 4] = [262_144, 0, 64, 16];

/// The selector byte of [`framed_header`] for a format (0 to 3), an index
/// into [`FRAMED_LINK_TYPES`], a snap length index or count of extra
/// interfaces (0 to 3), and the high bit.
pub const fn framed_selector(format: u8, link_index: u8, option: u8, high: bool) -> u8 {
    format & 0b11 | (link_index & 0b111) << 2 | (option & 0b11) << 5 | (high as u8) << 7
}

/// The valid file header the `capture_file_records` target puts in front of
/// its input, chosen by the input's first byte, so the fuzzer spends its
/// time on records rather than on magic numbers:
///
/// - bits 0-1: pcap little-endian microseconds, pcap big-endian
///   nanoseconds, pcapng little-endian, pcapng big-endian;
/// - bits 2-4: the (first) interface's link type, from
///   [`FRAMED_LINK_TYPES`];
/// - bits 5-6: pcap: the snap length, from [`FRAMED_SNAPLENS`]; pcapng: 0 to
///   3 more interfaces (`LINUX_SLL2` "any" in nanoseconds, Ethernet
///   "docker0" in 2^-10 s with a -1 s offset, `LINUX_SLL` "lo" snapped at
///   64);
/// - bit 7: pcap: the other timestamp resolution; pcapng: the first
///   interface is snapped at 32 bytes, in milliseconds, offset by
///   1 700 000 000 s.
pub fn framed_header(selector: u8) -> Builder {
    let link = FRAMED_LINK_TYPES[usize::from(selector >> 2 & 0b111)];
    let high = selector & 0x80 != 0;
    match selector & 0b11 {
        format @ (0 | 1) => {
            let big_endian = format == 1;
            let nanosecond = big_endian != high;
            let snaplen = FRAMED_SNAPLENS[usize::from(selector >> 5 & 0b11)];
            Builder::Pcap(Pcap::new(big_endian, nanosecond, link, snaplen))
        }
        format => {
            let mut file = Pcapng::new(format == 3);
            if high {
                let offset = file.tsoffset(1_700_000_000);
                file.interface(link as u16, 32, &[Pcapng::name("eth0"), Pcapng::tsresol(3), offset]);
            } else {
                file.interface(link as u16, 0, &[Pcapng::name("eth0")]);
            }
            let extra = selector >> 5 & 0b11;
            if extra >= 1 {
                file.interface(LINUX_SLL2 as u16, 0, &[Pcapng::name("any"), Pcapng::tsresol(9)]);
            }
            if extra >= 2 {
                let offset = file.tsoffset(-1);
                file.interface(
                    ETHERNET as u16,
                    262_144,
                    &[Pcapng::name("docker0"), Pcapng::tsresol(0x80 | 10), offset],
                );
            }
            if extra >= 3 {
                file.interface(LINUX_SLL as u16, 64, &[Pcapng::name("lo")]);
            }
            Builder::Pcapng(file)
        }
    }
}

/// The Ethernet frames of the seeds: real frames from `flow`'s parser seeds.
fn frames() -> Vec<&'static [u8]> {
    vec![
        seeds::TCP_SYN,
        seeds::UDP_DNS,
        seeds::ARP_REQUEST,
        seeds::ICMPV6_ECHO,
        seeds::VXLAN_TCP,
        seeds::IPV4_FRAG_FIRST,
    ]
}

/// The network layer of an Ethernet frame (without its 14-byte header) and
/// its EtherType.
fn network(frame: &[u8]) -> (u16, &[u8]) {
    (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..])
}

const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
const T0: u32 = 1_700_000_000;

/// The `capture_file` target's seeds: whole files, each exercising a
/// different part of the formats, all of which read to the end without an
/// error. Names are file names in `fuzz/corpus/capture_file/`.
pub fn raw_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frames = frames();
    let mut out = Vec::new();

    // pcap, little-endian, microseconds, Ethernet; the last packet snapped.
    let mut file = Pcap::new(false, false, ETHERNET, 262_144);
    for (i, frame) in frames.iter().enumerate() {
        file.record(T0, 1_000 * i as u32, frame, frame.len() as u32);
    }
    file.record(T0 + 1, 999_999, &seeds::tcp_segment(1460)[..96], 1514);
    out.push(("seed-pcap-le-us-ethernet", file.bytes));

    // pcap, big-endian, nanoseconds, snap length 64, IPv4/IPv6 without a
    // link layer.
    let mut file = Pcap::new(true, true, RAW, 64);
    for (i, frame) in frames.iter().enumerate() {
        let (_, ip) = network(frame);
        let captured = &ip[..ip.len().min(64)];
        file.record(T0, 123_456_789 + i as u32, captured, ip.len() as u32);
    }
    out.push(("seed-pcap-be-ns-raw-snapped", file.bytes));

    // pcap, LINUX_SLL (tcpdump -i any before libpcap 1.10): every packet
    // type, loopback's ARPHRD, and a packet shorter than its header.
    let mut file = Pcap::new(false, false, LINUX_SLL, 262_144);
    for (packet_type, frame) in (0..=5u16).zip(frames.iter().cycle()) {
        let (protocol, payload) = network(frame);
        let arphrd = if packet_type == 5 { 772 } else { 1 };
        let address: &[u8] = if packet_type == 5 { &[] } else { &MAC };
        let data = sll(packet_type, arphrd, address, protocol, payload);
        file.record(T0, u32::from(packet_type), &data, data.len() as u32);
    }
    file.record(T0, 9, &[0, 4, 0, 1, 0, 6], 6);
    out.push(("seed-pcap-sll-packet-types", file.bytes));

    // pcap, big-endian, nanoseconds, LINUX_SLL2 (tcpdump -i any): three
    // ifindexes interleaved.
    let mut file = Pcap::new(true, true, LINUX_SLL2, 262_144);
    for (i, (ifindex, packet_type)) in [(2u32, 0u8), (5, 4), (2, 3), (9, 1), (5, 0), (9, 2)]
        .into_iter()
        .enumerate()
    {
        let (protocol, payload) = network(frames[i % frames.len()]);
        let data = sll2(protocol, ifindex, 1, packet_type, &MAC, payload);
        file.record(T0, i as u32 * 1_000, &data, data.len() as u32);
    }
    out.push(("seed-pcap-be-ns-sll2-ifindexes", file.bytes));

    // pcapng, little-endian: three interfaces with every resolution kind,
    // EPBs with both directions and every reception type, comments,
    // name-resolution, statistics and custom blocks to skip.
    let mut file = Pcapng::new(false);
    file.interface(ETHERNET as u16, 262_144, &[Pcapng::name("eth0"), Pcapng::tsresol(9)]);
    file.interface(ETHERNET as u16, 0, &[Pcapng::name("docker0")]);
    let offset = file.tsoffset(-3_600);
    file.interface(
        ETHERNET as u16,
        65_535,
        &[Pcapng::name("veth1a2b3c"), Pcapng::tsresol(0x80 | 20), offset],
    );
    file.other(4, &[1, 0, 8, 0, 172, 17, 0, 2, b'w', b'e', b'b', 0, 0, 0, 0, 0]);
    let flags = [
        INBOUND | UNICAST,
        OUTBOUND,
        INBOUND | MULTICAST,
        INBOUND | BROADCAST,
        INBOUND | PROMISCUOUS,
        0,
    ];
    for (i, (frame, flags)) in frames.iter().zip(flags).enumerate() {
        // In each interface's resolution: ns, µs, 2^-20 s.
        let units = match i % 3 {
            0 => u64::from(T0) * 1_000_000_000,
            1 => u64::from(T0) * 1_000_000,
            _ => u64::from(T0) << 20,
        } + i as u64;
        let options = [Pcapng::comment("seed"), file.flags(flags)];
        file.epb((i % 3) as u32, units, frame, frame.len() as u32, &options);
    }
    file.epb(1, 0, &[], 0, &[]);
    file.other(5, &[0; 20]); // interface statistics
    file.other(0x0000_0bad, b"custom, copyable");
    out.push(("seed-pcapng-le-interfaces-flags", file.bytes));

    // pcapng, big-endian: microsecond default, a Simple Packet Block cut by
    // the snap length, an obsolete Packet Block with pack_flags.
    let mut file = Pcapng::new(true);
    file.interface(ETHERNET as u16, 64, &[Pcapng::name("eth1")]);
    file.epb(0, u64::from(T0) * 1_000_000, frames[0], frames[0].len() as u32, &[]);
    file.spb(frames[4], frames[4].len() as u32);
    file.packet_block(0, u64::from(T0) * 1_000_000 + 5, frames[1], Some(OUTBOUND));
    out.push(("seed-pcapng-be-spb-pb", file.bytes));

    // pcapng: a little-endian section, then a big-endian one that describes
    // its own interfaces (local ids restart at 0).
    let mut file = Pcapng::new(false);
    file.interface(ETHERNET as u16, 0, &[Pcapng::name("eth0")]);
    file.epb(0, 1, frames[0], frames[0].len() as u32, &[file.flags(INBOUND)]);
    file.section(true);
    file.interface(RAW as u16, 0, &[Pcapng::name("tun0")]);
    file.interface(ETHERNET as u16, 0, &[Pcapng::name("eth0")]);
    let (_, ip) = network(frames[1]);
    file.epb(0, 2, ip, ip.len() as u32, &[]);
    file.epb(1, 3, frames[2], frames[2].len() as u32, &[file.flags(OUTBOUND)]);
    out.push(("seed-pcapng-two-sections", file.bytes));

    // pcapng as tcpdump -i any writes it: LINUX_SLL2 with many ifindexes,
    // beside a LINUX_SLL interface and one of an unknown link type.
    let mut file = Pcapng::new(false);
    file.interface(LINUX_SLL2 as u16, 262_144, &[Pcapng::name("any"), Pcapng::tsresol(9)]);
    file.interface(LINUX_SLL as u16, 262_144, &[Pcapng::name("any-v1")]);
    file.interface(USER0 as u16, 0, &[]);
    for (i, ifindex) in [3u32, 4, 3, 17, 4].into_iter().enumerate() {
        let (protocol, payload) = network(frames[i]);
        let data = sll2(protocol, ifindex, 1, (i % 5) as u8, &MAC, payload);
        file.epb(0, u64::from(T0) << 20 | i as u64, &data, data.len() as u32, &[]);
    }
    let (protocol, payload) = network(frames[3]);
    let data = sll(4, 1, &MAC, protocol, payload);
    file.epb(1, 7, &data, data.len() as u32, &[file.flags(OUTBOUND)]);
    file.epb(2, 8, b"opaque", 6, &[]);
    out.push(("seed-pcapng-sll2-any", file.bytes));

    // IPv4 and IPv6 link types, pcap little-endian nanoseconds.
    for (name, link, frame) in [
        ("seed-pcap-ipv4-link", IPV4, seeds::UDP_DNS),
        ("seed-pcap-ipv6-link", IPV6, seeds::ICMPV6_ECHO),
    ] {
        let (_, ip) = network(frame);
        let mut file = Pcap::new(false, true, link, 0);
        file.record(T0, 1, ip, ip.len() as u32);
        out.push((name, file.bytes));
    }
    out
}

/// The `capture_file_records` target's seeds: a selector byte for
/// [`framed_header`], then the records of a file with that header.
pub fn framed_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frames = frames();
    let mut out = Vec::new();
    let mut push = |name: &'static str, selector: u8, file: Builder| {
        let header_len = framed_header(selector).bytes().len();
        let mut bytes = vec![selector];
        bytes.extend_from_slice(&file.bytes()[header_len..]);
        out.push((name, bytes));
    };

    // pcap LE µs Ethernet, snaplen 262144.
    let selector = framed_selector(0, 0, 0, false);
    let Builder::Pcap(mut file) = framed_header(selector) else {
        unreachable!("format bits 00 are pcap")
    };
    for (i, frame) in frames.iter().enumerate() {
        file.record(T0, i as u32, frame, frame.len() as u32);
    }
    push("seed-pcap-ethernet", selector, Builder::Pcap(file));

    // pcap BE ns LINUX_SLL2, snaplen 0.
    let selector = framed_selector(1, 2, 1, false);
    let Builder::Pcap(mut file) = framed_header(selector) else {
        unreachable!("format bits 01 are pcap")
    };
    for (i, frame) in frames.iter().enumerate() {
        let (protocol, payload) = network(frame);
        let data = sll2(protocol, 2 + (i % 3) as u32, 1, (i % 5) as u8, &MAC, payload);
        file.record(T0, i as u32, &data, data.len() as u32);
    }
    push("seed-pcap-sll2", selector, Builder::Pcap(file));

    // pcap LE ns (bit 7) LINUX_SLL, snaplen 64.
    let selector = framed_selector(0, 1, 2, true);
    let Builder::Pcap(mut file) = framed_header(selector) else {
        unreachable!("format bits 00 are pcap")
    };
    for (i, frame) in frames.iter().enumerate() {
        let (protocol, payload) = network(frame);
        let data = sll(i as u16 % 5, 1, &MAC, protocol, payload);
        file.record(T0, i as u32, &data[..data.len().min(64)], data.len() as u32);
    }
    push("seed-pcap-sll-snapped", selector, Builder::Pcap(file));

    // pcapng LE, Ethernet plus all three extra interfaces.
    let selector = framed_selector(2, 0, 3, false);
    let Builder::Pcapng(mut file) = framed_header(selector) else {
        unreachable!("format bits 10 are pcapng")
    };
    for (i, frame) in frames.iter().enumerate() {
        let flags = file.flags([INBOUND | UNICAST, OUTBOUND, INBOUND | PROMISCUOUS][i % 3]);
        match i % 4 {
            1 => {
                let (protocol, payload) = network(frame);
                let data = sll2(protocol, 7 + i as u32, 1, 0, &MAC, payload);
                file.epb(1, i as u64, &data, data.len() as u32, &[flags]);
            }
            3 => {
                let (protocol, payload) = network(frame);
                let data = sll(0, 1, &MAC, protocol, payload);
                file.epb(3, i as u64, &data[..64], data.len() as u32, &[flags]);
            }
            other => {
                file.epb(other as u32, i as u64, frame, frame.len() as u32, &[flags]);
            }
        }
    }
    file.spb(frames[0], frames[0].len() as u32);
    file.other(5, &[0; 20]);
    push("seed-pcapng-four-interfaces", selector, Builder::Pcapng(file));

    // pcapng BE, first interface snapped at 32 in ms with an offset, one
    // extra (LINUX_SLL2) interface; an obsolete Packet Block and a new
    // section.
    let selector = framed_selector(3, 0, 1, true);
    let Builder::Pcapng(mut file) = framed_header(selector) else {
        unreachable!("format bits 11 are pcapng")
    };
    file.epb(
        0,
        1_000,
        &frames[0][..32],
        frames[0].len() as u32,
        &[file.flags(INBOUND)],
    );
    file.spb(frames[1], frames[1].len() as u32);
    file.packet_block(0, 2_000, &frames[2][..32], Some(OUTBOUND));
    file.section(false);
    file.interface(ETHERNET as u16, 0, &[]);
    file.epb(0, 3, frames[3], frames[3].len() as u32, &[]);
    push("seed-pcapng-snapped-sections", selector, Builder::Pcapng(file));
    out
}
