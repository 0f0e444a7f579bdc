//! The pcapng writer: one section, one Interface Description Block per
//! capture interface (added whenever the interface first appears), and one
//! Enhanced Packet Block per packet with nanosecond timestamps, the
//! `epb_flags` direction and reception type, and the frame's bytes as they
//! crossed the interface (an out-of-band VLAN tag put back, as libpcap does).
//!
//! The file is little-endian whatever the host. Interface ids are the order
//! in which IDBs were written, as pcapng defines them. The writer neither
//! buffers nor syncs: wrap a file in a `BufWriter`. After an I/O error the
//! output may end inside a block and should be discarded.
//!
//! Layout of an Enhanced Packet Block as written here (pcapng spec,
//! draft-ietf-opsawg-pcapng section 4.3), every word little-endian:
//!
//! ```text
//!  0  block type = 6         | 4  block total length
//!  8  interface id           | 12 timestamp (high 32 bits)
//! 16  timestamp (low 32)     | 20 captured length
//! 24  original length        | 28 packet data, zero-padded to 32 bits
//! ..  epb_flags: code 2, length 4, flags u32
//! ..  opt_endofopt: code 0, length 0
//! ..  block total length
//! ```

use std::borrow::Cow;
use std::io::{self, Write};

use af_packet::{Direction, Packet, PacketType, VlanTag};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};

/// Bytes of an 802.1Q/802.1ad tag put back into a frame: TPID then TCI.
pub const VLAN_TAG_LEN: usize = 4;

/// The destination and source MAC addresses, after which a VLAN tag goes.
const MAC_ADDRESSES_LEN: usize = 12;

/// `if_tsresol` value: timestamps in units of 10^-9 s.
const TSRESOL_NANOSECONDS: u8 = 9;

/// Block type of an Enhanced Packet Block.
const ENHANCED_PACKET_BLOCK: u32 = 6;

/// Fixed part of an EPB before the packet data: block type, total length,
/// interface id, timestamp high and low, captured and original length.
const EPB_HEADER_LEN: usize = 28;

/// Part of an EPB after the padded packet data: `epb_flags` (8 bytes),
/// `opt_endofopt` (4) and the trailing block total length (4).
const EPB_TRAILER_LEN: usize = 16;

/// Option code of `epb_flags`.
const OPT_EPB_FLAGS: u16 = 2;

/// The largest packet an EPB can hold: its total length must fit 32 bits.
const MAX_CAPTURED_LEN: usize = u32::MAX as usize - EPB_HEADER_LEN - EPB_TRAILER_LEN - 3;

/// An interface of the file: the index of its Interface Description Block,
/// which Enhanced Packet Blocks refer to. Only [`PcapngWriter::add_interface`]
/// makes one, and it is valid for the writer that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceId(u32);

impl InterfaceId {
    /// The interface id as written in the file (0 for the first IDB).
    pub fn index(self) -> u32 {
        self.0
    }
}

/// One packet to write: the bytes and the kernel metadata that pcapng keeps.
///
/// It borrows the bytes, so it can be built from a ring view without a copy
/// ([`PacketRecord::from_packet`]) or from a copy that crossed threads.
#[derive(Clone, Copy, Debug)]
pub struct PacketRecord<'a> {
    /// The interface the packet was captured on.
    pub interface: InterfaceId,
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Bytes the packet had on the interface, without an out-of-band VLAN tag.
    pub original_len: u32,
    /// The captured bytes from the Ethernet header on, without an
    /// out-of-band VLAN tag.
    pub data: &'a [u8],
    /// How the packet reached the socket; gives `epb_flags` (direction
    /// "not available" when `None`, as for a packet read from a classic pcap
    /// file).
    pub packet_type: Option<PacketType>,
    /// The VLAN tag the kernel moved out of the frame, if any; the writer
    /// puts it back.
    pub vlan: Option<VlanTag>,
}

impl<'a> PacketRecord<'a> {
    /// The record of a packet captured on `interface`, borrowing its bytes.
    pub fn from_packet(packet: &Packet<'a>, interface: InterfaceId) -> Self {
        Self {
            interface,
            timestamp_ns: packet.timestamp_ns(),
            original_len: packet.original_len(),
            data: packet.data(),
            packet_type: Some(packet.packet_type()),
            vlan: packet.vlan(),
        }
    }
}

/// The `epb_flags` word of a packet: direction in bits 0-1 (01 inbound,
/// 10 outbound) and, for inbound packets, the reception type in bits 2-4
/// (001 unicast, 010 multicast, 011 broadcast, 100 promiscuous; 000 when
/// the kernel's packet type has no pcapng equivalent).
fn epb_flags(packet_type: Option<PacketType>) -> u32 {
    let Some(packet_type) = packet_type else {
        return 0;
    };
    let direction = match packet_type.direction() {
        Direction::Inbound => 0b01,
        Direction::Outbound => 0b10,
    };
    let reception = match packet_type {
        PacketType::Host => 0b001,
        PacketType::Multicast => 0b010,
        PacketType::Broadcast => 0b011,
        PacketType::OtherHost => 0b100,
        PacketType::Outgoing | PacketType::Other(_) => 0,
    };
    direction | reception << 2
}

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Writes a pcapng file: a section header at creation, then interfaces and
/// packets in any order as long as an interface comes before its packets.
///
/// Writing a packet allocates nothing: the fixed parts of its block are built
/// on the stack and the frame goes to the output in at most three pieces.
pub struct PcapngWriter<W: Write> {
    /// pcap-file's writer, used for the section header and the interface
    /// descriptions; packets go to its inner writer directly. Its section is
    /// little-endian, which the hand-written blocks must match.
    blocks: PcapNgWriter<W>,
    /// Snap length of each interface, indexed by [`InterfaceId`].
    snaplens: Vec<u32>,
    packets_written: u64,
}

impl<W: Write> std::fmt::Debug for PcapngWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapngWriter")
            .field("interfaces", &self.snaplens.len())
            .field("packets_written", &self.packets_written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a file on `writer` with its Section Header Block, naming
    /// `application` (e.g. "ringsieve 0.1.0") in `shb_userappl` and the
    /// running kernel in `shb_os`.
    pub fn new(writer: W, application: &str) -> io::Result<Self> {
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            options: vec![
                SectionHeaderOption::UserApplication(Cow::Owned(option_string(application)?.to_owned())),
                SectionHeaderOption::OS(Cow::Owned(os_description())),
            ],
            ..SectionHeaderBlock::default()
        };
        let blocks = PcapNgWriter::with_section_header(writer, section).map_err(into_io_error)?;
        Ok(Self {
            blocks,
            snaplens: Vec::new(),
            packets_written: 0,
        })
    }

    /// Writes the Interface Description Block of an Ethernet interface named
    /// `name`, with nanosecond timestamps, and returns the id its packets are
    /// written with. May be called at any point of the file.
    ///
    /// Packets longer than `snaplen` (after the VLAN tag is put back) are cut
    /// to it; 0 means no limit. A capture that cuts frames at N bytes and
    /// wants tagged frames whole passes N + [`VLAN_TAG_LEN`].
    pub fn add_interface(&mut self, name: &str, snaplen: u32) -> io::Result<InterfaceId> {
        self.add_interface_with_link_type(name, LINKTYPE_ETHERNET, snaplen)
    }

    /// [`Self::add_interface`] for an interface of another link type (a
    /// `LINKTYPE_*` number, e.g. 276 for `LINUX_SLL2`), whose packets are
    /// written as they were read. An out-of-band VLAN tag is put back only
    /// into Ethernet frames: give other link types none.
    pub fn add_interface_with_link_type(
        &mut self,
        name: &str,
        link_type: u32,
        snaplen: u32,
    ) -> io::Result<InterfaceId> {
        let id = u32::try_from(self.snaplens.len())
            .map(InterfaceId)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many pcapng interfaces"))?;
        let linktype = u16::try_from(link_type)
            .map(|raw| DataLink::from(u32::from(raw)))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("link type {link_type} out of range"),
                )
            })?;
        let description = InterfaceDescriptionBlock {
            linktype,
            snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(option_string(name)?.to_owned())),
                InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOSECONDS),
            ],
        };
        self.blocks.write_pcapng_block(description).map_err(into_io_error)?;
        self.snaplens.push(snaplen);
        Ok(id)
    }

    /// Writes one Enhanced Packet Block. An interface id this writer did not
    /// make is an `InvalidInput` error and writes nothing.
    pub fn write_packet(&mut self, packet: &PacketRecord<'_>) -> io::Result<()> {
        let snaplen = self.snaplen(packet.interface)?;
        write_enhanced_packet(self.blocks.get_mut(), packet, snaplen)?;
        self.packets_written += 1;
        Ok(())
    }

    /// The snap length of `interface`, or `InvalidInput` if this writer did
    /// not make that id.
    pub fn snaplen(&self, interface: InterfaceId) -> io::Result<u32> {
        self.snaplens.get(interface.0 as usize).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcapng interface {} was never added", interface.0),
            )
        })
    }

    /// Appends `packets` Enhanced Packet Blocks already encoded by a
    /// [`PacketEncoder`] of this writer, in one write. This is how several
    /// capture threads share one file: each encodes into its own buffer
    /// without a lock and hands the buffer over once per batch.
    pub fn write_encoded(&mut self, blocks: &[u8], packets: u64) -> io::Result<()> {
        self.blocks.get_mut().write_all(blocks)?;
        self.packets_written += packets;
        Ok(())
    }

    /// An encoder for this writer's interfaces, for a thread that batches
    /// packets before [`PcapngWriter::write_encoded`].
    pub fn encoder(&self) -> PacketEncoder {
        PacketEncoder {
            snaplens: self.snaplens.clone(),
            buffer: Vec::new(),
            packets: 0,
        }
    }

    /// Teaches `encoder` the interfaces added since it was made, so it can
    /// encode their packets (their descriptions are already in the file).
    pub fn refresh_encoder(&self, encoder: &mut PacketEncoder) {
        encoder.snaplens.clone_from(&self.snaplens);
    }

    /// Enhanced Packet Blocks written so far.
    pub fn packets_written(&self) -> u64 {
        self.packets_written
    }

    /// Interfaces described so far.
    pub fn interface_count(&self) -> usize {
        self.snaplens.len()
    }

    /// Flushes and returns the output.
    pub fn finish(self) -> io::Result<W> {
        let mut out = self.blocks.into_inner();
        out.flush()?;
        Ok(out)
    }
}

/// Enhanced Packet Blocks encoded into a buffer owned by one thread, for the
/// interfaces its [`PcapngWriter`] had when the encoder was made.
#[derive(Debug, Clone)]
pub struct PacketEncoder {
    snaplens: Vec<u32>,
    buffer: Vec<u8>,
    packets: u64,
}

impl PacketEncoder {
    /// Encodes one packet at the end of the buffer. An interface id unknown
    /// to the encoder is an `InvalidInput` error and encodes nothing.
    pub fn encode(&mut self, packet: &PacketRecord<'_>) -> io::Result<()> {
        let snaplen = *self.snaplens.get(packet.interface.0 as usize).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcapng interface {} was never added", packet.interface.0),
            )
        })?;
        write_enhanced_packet(&mut self.buffer, packet, snaplen)?;
        self.packets += 1;
        Ok(())
    }

    /// Bytes encoded and not yet taken.
    pub fn encoded_len(&self) -> usize {
        self.buffer.len()
    }

    /// Hands the encoded blocks to `writer` in one write and empties the
    /// encoder, keeping its buffer's capacity. The blocks are dropped even
    /// when the write fails, so one bad write does not repeat.
    pub fn drain_into<W: Write>(&mut self, writer: &mut PcapngWriter<W>) -> io::Result<()> {
        let result = writer.write_encoded(&self.buffer, self.packets);
        self.buffer.clear();
        self.packets = 0;
        result
    }
}

/// Writes one Enhanced Packet Block for `packet` to `out`, cutting the frame
/// (tag included) to `snaplen` when it is not 0. Allocates nothing: the fixed
/// parts are built on the stack and the frame goes out in at most three
/// pieces.
fn write_enhanced_packet(out: &mut impl Write, packet: &PacketRecord<'_>, snaplen: u32) -> io::Result<()> {
    // The frame is head, tag, tail: the tag goes back after the MAC
    // addresses, as libpcap does; a frame too short to hold them is
    // written as it is.
    let data = packet.data;
    let (head, tag, tail) = match packet.vlan {
        Some(vlan) if data.len() >= MAC_ADDRESSES_LEN => {
            let [tpid_hi, tpid_lo] = vlan.tpid.to_be_bytes();
            let [tci_hi, tci_lo] = vlan.tci.to_be_bytes();
            let (head, tail) = data.split_at(MAC_ADDRESSES_LEN);
            (head, Some([tpid_hi, tpid_lo, tci_hi, tci_lo]), tail)
        }
        _ => (data, None, &[][..]),
    };
    let tag: &[u8] = match &tag {
        Some(tag) => tag,
        None => &[],
    };
    let tag_len = tag.len();
    let frame_len = data.len() + tag_len;
    let captured_len = if snaplen == 0 {
        frame_len
    } else {
        frame_len.min(snaplen as usize)
    };
    if captured_len > MAX_CAPTURED_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("packet of {captured_len} bytes does not fit a pcapng block"),
        ));
    }
    let padding = captured_len.next_multiple_of(4) - captured_len;
    // Fits: captured_len <= MAX_CAPTURED_LEN leaves room for the rest.
    let block_len = (EPB_HEADER_LEN + captured_len + padding + EPB_TRAILER_LEN) as u32;
    let original_len = packet.original_len.saturating_add(tag_len as u32);

    let mut header = [0u8; EPB_HEADER_LEN];
    put_u32(&mut header, 0, ENHANCED_PACKET_BLOCK);
    put_u32(&mut header, 4, block_len);
    put_u32(&mut header, 8, packet.interface.0);
    // With if_tsresol = 9 the 64-bit timestamp counts nanoseconds, high
    // word first.
    put_u32(&mut header, 12, (packet.timestamp_ns >> 32) as u32);
    put_u32(&mut header, 16, packet.timestamp_ns as u32);
    put_u32(&mut header, 20, captured_len as u32);
    put_u32(&mut header, 24, original_len);

    // Leading zeros are the data's padding: the trailer is written from
    // offset 3 - padding.
    let mut trailer = [0u8; 3 + EPB_TRAILER_LEN];
    trailer[3..5].copy_from_slice(&OPT_EPB_FLAGS.to_le_bytes());
    trailer[5..7].copy_from_slice(&4u16.to_le_bytes());
    put_u32(&mut trailer, 7, epb_flags(packet.packet_type));
    // 11..15: opt_endofopt, code 0 and length 0.
    put_u32(&mut trailer, 15, block_len);

    out.write_all(&header)?;
    let mut remaining = captured_len;
    for piece in [head, tag, tail] {
        let take = piece.len().min(remaining);
        out.write_all(&piece[..take])?;
        remaining -= take;
    }
    out.write_all(&trailer[3 - padding..])
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// A string option's value; its length must fit the option's 16-bit length
/// field, which pcap-file would silently truncate.
fn option_string(value: &str) -> io::Result<&str> {
    if value.len() > usize::from(u16::MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pcapng string option longer than 65535 bytes",
        ));
    }
    Ok(value)
}

/// "Linux 6.1.0-18-amd64" from procfs, or the target OS's name if procfs is
/// not there.
fn os_description() -> String {
    let read = |path| std::fs::read_to_string(path).map(|s| s.trim().to_owned());
    match (read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease")) {
        (Ok(os), Ok(release)) => format!("{os} {release}"),
        _ => std::env::consts::OS.to_owned(),
    }
}

fn into_io_error(error: PcapError) -> io::Error {
    match error {
        PcapError::IoError(error) => error,
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use af_packet::ring::synthetic::{PacketSpec, SyntheticRing};
    use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

    const TS: u64 = 1_700_000_000_123_456_789;

    /// An Ethernet frame of `len` bytes: MACs, a local experimental
    /// EtherType, then `fill`.
    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut bytes = vec![fill; len];
        if len >= 14 {
            bytes[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
            bytes[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
            bytes[12..14].copy_from_slice(&[0x88, 0xb5]);
        }
        bytes
    }

    fn record(interface: InterfaceId, data: &[u8]) -> PacketRecord<'_> {
        PacketRecord {
            interface,
            timestamp_ns: TS,
            original_len: data.len() as u32,
            data,
            packet_type: Some(PacketType::Host),
            vlan: None,
        }
    }

    /// A parsed file: the section's options, the interfaces and the packets.
    struct ReadBack {
        section: SectionHeaderBlock<'static>,
        interfaces: Vec<InterfaceDescriptionBlock<'static>>,
        /// For each EPB: the number of IDBs read before it.
        packets: Vec<(EnhancedPacketBlock<'static>, usize)>,
    }

    impl ReadBack {
        fn epb_flags(&self, packet: usize) -> Vec<u32> {
            self.packets[packet]
                .0
                .options
                .iter()
                .filter_map(|option| match option {
                    EnhancedPacketOption::Flags(flags) => Some(*flags),
                    _ => None,
                })
                .collect()
        }
    }

    fn read_back(bytes: &[u8]) -> ReadBack {
        let mut reader = PcapNgReader::new(bytes).expect("section header parses");
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            let block = block.expect("block parses").into_owned();
            let described = reader.interfaces().len();
            match block {
                Block::EnhancedPacket(epb) => packets.push((epb, described)),
                Block::InterfaceDescription(_) => {}
                other => panic!("unexpected block {other:?}"),
            }
        }
        ReadBack {
            section: reader.section().clone(),
            interfaces: reader.interfaces().to_vec(),
            packets,
        }
    }

    #[test]
    fn section_header_names_the_application_and_os() {
        let writer = PcapngWriter::new(Vec::new(), "ringsieve 0.1.0").unwrap();
        let file = read_back(&writer.finish().unwrap());
        assert_eq!(file.section.endianness, Endianness::Little);
        assert_eq!((file.section.major_version, file.section.minor_version), (1, 0));
        assert!(file
            .section
            .options
            .contains(&SectionHeaderOption::UserApplication("ringsieve 0.1.0".into())));
        assert!(file
            .section
            .options
            .iter()
            .any(|option| matches!(option, SectionHeaderOption::OS(os) if !os.is_empty())));
        assert!(file.interfaces.is_empty() && file.packets.is_empty());
    }

    #[test]
    fn interface_description_has_name_nanosecond_resolution_and_snaplen() {
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 262_144).unwrap();
        assert_eq!(eth0.index(), 0);
        let file = read_back(&writer.finish().unwrap());
        assert_eq!(file.interfaces.len(), 1);
        let idb = &file.interfaces[0];
        assert_eq!(idb.linktype, DataLink::ETHERNET);
        assert_eq!(idb.snaplen, 262_144);
        assert_eq!(
            idb.options,
            vec![
                InterfaceDescriptionOption::IfName("eth0".into()),
                InterfaceDescriptionOption::IfTsResol(9)
            ]
        );
    }

    #[test]
    fn every_packet_type_round_trips_with_its_epb_flags() {
        let cases = [
            (PacketType::Host, 0b0_0101),
            (PacketType::Multicast, 0b0_1001),
            (PacketType::Broadcast, 0b0_1101),
            (PacketType::OtherHost, 0b1_0001),
            (PacketType::Outgoing, 0b0_0010),
            (PacketType::Other(6), 0b0_0001),
        ];
        let frames: Vec<Vec<u8>> = (0..cases.len()).map(|i| frame(60 + i, i as u8)).collect();
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        for (i, (packet_type, _)) in cases.iter().enumerate() {
            let packet = PacketRecord {
                timestamp_ns: TS + i as u64,
                original_len: 1000 + i as u32,
                packet_type: Some(*packet_type),
                ..record(eth0, &frames[i])
            };
            writer.write_packet(&packet).unwrap();
        }
        assert_eq!(writer.packets_written(), cases.len() as u64);

        let file = read_back(&writer.finish().unwrap());
        assert_eq!(file.packets.len(), cases.len());
        for (i, (_, flags)) in cases.iter().enumerate() {
            let (epb, _) = &file.packets[i];
            assert_eq!(epb.interface_id, 0);
            assert_eq!(epb.timestamp, Duration::from_nanos(TS + i as u64));
            assert_eq!(&epb.data[..], &frames[i][..]);
            assert_eq!(epb.original_len, 1000 + i as u32);
            assert_eq!(file.epb_flags(i), vec![*flags], "packet type {:?}", cases[i].0);
        }
    }

    #[test]
    fn vlan_tag_goes_back_after_the_mac_addresses() {
        let untagged = frame(64, 0xab);
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        for tag in [
            VlanTag {
                tci: 0x2064,
                tpid: 0x8100,
            },
            VlanTag {
                tci: 0xe00a,
                tpid: 0x88a8,
            },
        ] {
            let packet = PacketRecord {
                vlan: Some(tag),
                original_len: 64,
                ..record(eth0, &untagged)
            };
            writer.write_packet(&packet).unwrap();
        }
        let file = read_back(&writer.finish().unwrap());

        let mut expected = untagged[..12].to_vec();
        expected.extend_from_slice(&[0x81, 0x00, 0x20, 0x64]);
        expected.extend_from_slice(&untagged[12..]);
        assert_eq!(&file.packets[0].0.data[..], &expected[..]);
        assert_eq!(file.packets[0].0.data.len(), 68);
        assert_eq!(file.packets[0].0.original_len, 68);
        assert_eq!(&file.packets[1].0.data[12..16], &[0x88, 0xa8, 0xe0, 0x0a]);
        assert_eq!(file.packets[1].0.original_len, 68);
    }

    #[test]
    fn vlan_tag_on_truncated_frame_grows_both_lengths() {
        let untagged = frame(100, 1);
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        let packet = PacketRecord {
            vlan: Some(VlanTag { tci: 5, tpid: 0x8100 }),
            original_len: 1500,
            ..record(eth0, &untagged)
        };
        writer.write_packet(&packet).unwrap();
        let file = read_back(&writer.finish().unwrap());
        assert_eq!(file.packets[0].0.data.len(), 104);
        assert_eq!(file.packets[0].0.original_len, 1504);
    }

    #[test]
    fn vlan_tag_is_dropped_from_frame_shorter_than_mac_addresses() {
        let runt = [0xee; 11];
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        let packet = PacketRecord {
            vlan: Some(VlanTag { tci: 5, tpid: 0x8100 }),
            ..record(eth0, &runt)
        };
        writer.write_packet(&packet).unwrap();
        let file = read_back(&writer.finish().unwrap());
        assert_eq!(&file.packets[0].0.data[..], &runt[..]);
        assert_eq!(file.packets[0].0.original_len, 11);
    }

    #[test]
    fn vlan_tag_fits_frame_of_exactly_the_mac_addresses() {
        let macs = [0x11; 12];
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        let packet = PacketRecord {
            vlan: Some(VlanTag { tci: 7, tpid: 0x8100 }),
            ..record(eth0, &macs)
        };
        writer.write_packet(&packet).unwrap();
        let file = read_back(&writer.finish().unwrap());
        assert_eq!(&file.packets[0].0.data[..12], &macs[..]);
        assert_eq!(&file.packets[0].0.data[12..], &[0x81, 0x00, 0x00, 0x07]);
        assert_eq!(file.packets[0].0.original_len, 16);
    }

    #[test]
    fn snaplen_cuts_captured_bytes_but_not_original_length() {
        let untagged = frame(100, 3);
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let short = writer.add_interface("short", 14).unwrap();
        writer.write_packet(&record(short, &untagged)).unwrap();
        // Cut inside the tag.
        let packet = PacketRecord {
            vlan: Some(VlanTag { tci: 9, tpid: 0x8100 }),
            ..record(short, &untagged)
        };
        writer.write_packet(&packet).unwrap();
        let file = read_back(&writer.finish().unwrap());
        assert_eq!(&file.packets[0].0.data[..], &untagged[..14]);
        assert_eq!(file.packets[0].0.original_len, 100);
        let mut expected = untagged[..12].to_vec();
        expected.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(&file.packets[1].0.data[..], &expected[..]);
        assert_eq!(file.packets[1].0.original_len, 104);
    }

    #[test]
    fn interfaces_added_mid_stream_keep_their_ids() {
        let a = frame(60, 0xa);
        let b = frame(61, 0xb);
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        writer.write_packet(&record(eth0, &a)).unwrap();
        let veth = writer.add_interface("veth1a2b3c", 65_535).unwrap();
        assert_eq!(veth.index(), 1);
        assert_eq!(writer.interface_count(), 2);
        writer.write_packet(&record(veth, &b)).unwrap();
        writer.write_packet(&record(eth0, &b)).unwrap();

        let file = read_back(&writer.finish().unwrap());
        let names: Vec<_> = file.interfaces.iter().map(|idb| idb.options[0].clone()).collect();
        assert_eq!(
            names,
            vec![
                InterfaceDescriptionOption::IfName("eth0".into()),
                InterfaceDescriptionOption::IfName("veth1a2b3c".into())
            ]
        );
        assert_eq!(file.interfaces[1].snaplen, 65_535);
        let seen: Vec<_> = file
            .packets
            .iter()
            .map(|(epb, described)| (epb.interface_id, epb.data.len(), *described))
            .collect();
        // The first packet was written when only eth0 was described.
        assert_eq!(seen, vec![(0, 60, 1), (1, 61, 2), (0, 61, 2)]);
    }

    #[test]
    fn timestamp_keeps_every_nanosecond() {
        let data = frame(60, 0);
        let stamps = [0, 1, 999_999_999, TS, (1 << 32) - 1, 1 << 32, u64::MAX];
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        for timestamp_ns in stamps {
            let packet = PacketRecord {
                timestamp_ns,
                ..record(eth0, &data)
            };
            writer.write_packet(&packet).unwrap();
        }
        let file = read_back(&writer.finish().unwrap());
        let read: Vec<u64> = file
            .packets
            .iter()
            .map(|(epb, _)| u64::try_from(epb.timestamp.as_nanos()).unwrap())
            .collect();
        assert_eq!(read, stamps);
    }

    #[test]
    fn enhanced_packet_block_bytes_match_the_spec() {
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        let start = writer.finish().unwrap().len();
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        writer.add_interface("eth0", 0).unwrap();
        let packet = PacketRecord {
            interface: eth0,
            timestamp_ns: 0x0123_4567_89ab_cdef,
            original_len: 9,
            data: &[1, 2, 3, 4, 5],
            packet_type: Some(PacketType::OtherHost),
            vlan: None,
        };
        writer.write_packet(&packet).unwrap();
        let bytes = writer.finish().unwrap();
        #[rustfmt::skip]
        let expected: [u8; 52] = [
            6, 0, 0, 0,             52, 0, 0, 0,            // type, total length
            0, 0, 0, 0,                                     // interface id
            0x67, 0x45, 0x23, 0x01, 0xef, 0xcd, 0xab, 0x89, // timestamp high, low
            5, 0, 0, 0,             9, 0, 0, 0,             // captured, original
            1, 2, 3, 4, 5, 0, 0, 0,                         // data, padding
            2, 0, 4, 0,             0x11, 0, 0, 0,          // epb_flags: inbound, promiscuous
            0, 0, 0, 0,                                     // opt_endofopt
            52, 0, 0, 0,                                    // total length
        ];
        assert_eq!(&bytes[start..], &expected[..]);
    }

    #[test]
    fn unknown_interface_is_an_error_and_writes_nothing() {
        let data = frame(60, 0);
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        writer.add_interface("eth0", 0).unwrap();
        let before = format!("{writer:?}");
        let error = writer.write_packet(&record(InterfaceId(1), &data)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(writer.packets_written(), 0);
        assert_eq!(format!("{writer:?}"), before);
        let file = read_back(&writer.finish().unwrap());
        assert!(file.packets.is_empty());
    }

    #[test]
    fn record_from_ring_packet_keeps_its_metadata() {
        let bytes = frame(80, 0x5a);
        let mut spec = PacketSpec::new(&bytes);
        spec.timestamp_ns = TS;
        spec.original_len = 1500;
        spec.pkttype = 4;
        // TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
        spec.status = (1 << 4) | (1 << 6);
        spec.vlan_tci = 0x0064;
        spec.vlan_tpid = 0x88a8;
        let mut ring = SyntheticRing::new(1 << 14, 1);
        assert_eq!(ring.fill_block(0, 0, &[spec]), 1);

        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        let ring = ring.ring();
        let block = ring.next_block().unwrap();
        let packet = block.packets().next().unwrap();
        let record = PacketRecord::from_packet(&packet, eth0);
        assert_eq!(record.interface, eth0);
        assert_eq!(record.timestamp_ns, TS);
        assert_eq!(record.original_len, 1500);
        assert_eq!(record.data, &bytes[..]);
        assert_eq!(record.packet_type, Some(PacketType::Outgoing));
        assert_eq!(
            record.vlan,
            Some(VlanTag {
                tci: 0x64,
                tpid: 0x88a8
            })
        );
        writer.write_packet(&record).unwrap();
        drop(block);

        let file = read_back(&writer.finish().unwrap());
        assert_eq!(file.packets[0].0.data.len(), 84);
        assert_eq!(file.packets[0].0.original_len, 1504);
        assert_eq!(file.epb_flags(0), vec![0b10]);
    }

    #[test]
    fn finish_flushes_a_buffered_output() {
        let data = frame(60, 0);
        let mut writer = PcapngWriter::new(io::BufWriter::new(Vec::new()), "test").unwrap();
        let eth0 = writer.add_interface("eth0", 0).unwrap();
        writer.write_packet(&record(eth0, &data)).unwrap();
        let bytes = writer.finish().unwrap().into_inner().unwrap();
        assert_eq!(read_back(&bytes).packets.len(), 1);
    }
}

#[cfg(test)]
mod encoder_tests {
    use super::*;

    #[test]
    fn encoded_batches_write_the_same_bytes_as_direct_writes() {
        let frames: Vec<Vec<u8>> = [60usize, 61, 62, 63, 1514].iter().map(|&n| vec![0xab; n]).collect();
        let tagged = VlanTag { tci: 7, tpid: 0x8100 };
        let records = |id| {
            frames
                .iter()
                .enumerate()
                .map(move |(i, f)| PacketRecord {
                    interface: id,
                    timestamp_ns: 1_000 + i as u64,
                    original_len: f.len() as u32,
                    data: f,
                    packet_type: Some(PacketType::OtherHost),
                    vlan: (i % 2 == 0).then_some(tagged),
                })
                .collect::<Vec<_>>()
        };

        let mut direct = PcapngWriter::new(Vec::new(), "test").unwrap();
        let id = direct.add_interface("veth0", 100).unwrap();
        for r in records(id) {
            direct.write_packet(&r).unwrap();
        }

        let mut batched = PcapngWriter::new(Vec::new(), "test").unwrap();
        let id = batched.add_interface("veth0", 100).unwrap();
        let mut encoder = batched.encoder();
        for r in records(id) {
            encoder.encode(&r).unwrap();
        }
        assert!(encoder.encoded_len() > 0);
        encoder.drain_into(&mut batched).unwrap();
        assert_eq!(encoder.encoded_len(), 0);
        assert_eq!(batched.packets_written(), direct.packets_written());
        assert_eq!(batched.finish().unwrap(), direct.finish().unwrap());
    }

    #[test]
    fn encoder_rejects_interfaces_added_after_it() {
        let mut writer = PcapngWriter::new(Vec::new(), "test").unwrap();
        let mut encoder = writer.encoder();
        let id = writer.add_interface("late0", 0).unwrap();
        let data = [0u8; 60];
        let record = PacketRecord {
            interface: id,
            timestamp_ns: 0,
            original_len: 60,
            data: &data,
            packet_type: Some(PacketType::Host),
            vlan: None,
        };
        assert_eq!(encoder.encode(&record).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(encoder.encoded_len(), 0);
    }
}
