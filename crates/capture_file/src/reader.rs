//! [`CaptureFile`]: detects the format of a file from its magic number and
//! walks its records, pcap records or pcapng blocks, handing out each packet
//! as a [`FilePacket`] borrowing the reader's buffer. It decodes only what
//! locates and attributes a packet (interfaces, timestamps, lengths, flags);
//! it does not parse packets beyond the Linux cooked header.
//!
//! Every length read from the file is checked before it is used, so no file
//! content makes the reader panic or read out of bounds: a cut file is a
//! [`ReadError::Truncated`], an inconsistent length a
//! [`ReadError::BadBlockLength`].
//!
//! Layouts (classic pcap: wiki.wireshark.org/Development/LibpcapFileFormat;
//! pcapng: draft-ietf-opsawg-pcapng), offsets from the start of the record or
//! block, in the byte order of the file or section:
//!
//! ```text
//! pcap file header (24): magic, major u16, minor u16, thiszone, sigfigs,
//!                        snaplen, link type (low 16 bits of the word)
//! pcap record (16 + n):  seconds, micro- or nanoseconds, captured, original, data
//! pcapng block:          0 type | 4 total length | body | total length again
//!   SHB (0x0a0d0d0a):    8 byte-order mark 0x1a2b3c4d | 12 major u16 | 14 minor u16
//!                        | 16 section length i64 | 24 options
//!   IDB (1):             8 link type u16 | 10 reserved | 12 snaplen | 16 options
//!   EPB (6):             8 interface | 12 timestamp high | 16 low | 20 captured
//!                        | 24 original | 28 data, padded to 4 | options
//!   SPB (3):             8 original | 12 data (captured = min(original, snaplen, room))
//!   PB (2, obsolete):    8 interface u16 | 10 drops u16 | 12 timestamp high
//!                        | 16 low | 20 captured | 24 original | 28 data | options
//! option:                code u16 | length u16 | value, padded to 4
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use af_packet::{Direction, PacketType};

use crate::input::Input;
use crate::interface::{FileInterface, TimestampResolution};
use crate::link::{classify, from_epb_flags, LinkKind};
use crate::ReadError;

/// The largest record or block the reader accepts, in bytes. A larger length
/// is taken for corruption ([`ReadError::BadBlockLength`]) rather than read
/// into memory. Wireshark's own limit for pcapng blocks is 16 MiB.
pub const MAX_BLOCK_LEN: u32 = 256 << 20;

const PCAP_MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
/// The byte-order mark as it reads in a big-endian section.
const BOM_BIG_ENDIAN: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];
/// The byte-order mark as it reads in a little-endian section.
const BOM_LITTLE_ENDIAN: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];
/// Block type, total length and trailing total length.
const BLOCK_OVERHEAD: usize = 12;

const OPT_END: u16 = 0;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;
/// `epb_flags`, and `pack_flags` of the obsolete Packet Block.
const OPT_EPB_FLAGS: u16 = 2;

/// The format of a capture file, from its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureFormat {
    /// Classic libpcap.
    Pcap {
        /// The file is big-endian.
        big_endian: bool,
        /// Timestamps are in nanoseconds (magic 0xa1b23c4d), not
        /// microseconds.
        nanosecond: bool,
    },
    /// pcapng; each section has its own byte order.
    Pcapng,
}

/// One packet of a capture file, borrowing the reader's buffer until the next
/// call to [`CaptureFile::next_packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilePacket<'a> {
    /// The interface the packet was captured on: an index into
    /// [`CaptureFile::interfaces`].
    pub interface: u32,
    /// Capture time in nanoseconds since the Unix epoch, the interface's
    /// resolution and offset applied; 0 for a pcapng Simple Packet Block,
    /// which has no timestamp.
    pub timestamp_ns: u64,
    /// Length of the packet on the wire; may exceed `data.len()` when the
    /// capture was snapped.
    pub original_len: u32,
    /// The captured bytes, from the link-layer header on.
    pub data: &'a [u8],
    /// How to parse `data`.
    pub link: LinkKind,
    /// Which way the packet crossed the interface, when the file says: from
    /// a Linux cooked header's packet type, else pcapng `epb_flags`.
    pub direction: Option<Direction>,
    /// How the packet reached the capture, when the file says: from a Linux
    /// cooked header, else pcapng `epb_flags` (unicast is
    /// [`PacketType::Host`], promiscuous [`PacketType::OtherHost`], outbound
    /// [`PacketType::Outgoing`]).
    pub packet_type: Option<PacketType>,
}

/// What the format-specific walker found: a packet, by buffer position.
struct Found {
    /// Index into `interfaces`, before any `LINUX_SLL2` split.
    interface: u32,
    /// Timestamp in the interface's units, if the record has one.
    units: Option<u64>,
    original_len: u32,
    start: usize,
    len: usize,
    /// `epb_flags` or `pack_flags`.
    flags: Option<u32>,
}

/// The packet [`CaptureFile::next_packet`] returned last, by buffer
/// position, for [`CaptureFile::current_packet`].
#[derive(Clone, Copy)]
struct Current {
    interface: u32,
    timestamp_ns: u64,
    original_len: u32,
    start: usize,
    len: usize,
    link: LinkKind,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
}

/// What one pcapng block turned out to be.
enum Block {
    Packet(Found),
    NotAPacket,
}

/// State of the format being walked.
enum Walker {
    Pcap { big_endian: bool },
    Pcapng(Section),
}

/// The pcapng section being read.
struct Section {
    big_endian: bool,
    /// Sections started so far, minus one: the current section's number.
    index: u32,
    /// Whether a Section Header Block was read yet.
    started: bool,
    /// Interface ids of this section (the order of its IDBs) to indexes into
    /// `CaptureFile::interfaces`.
    interfaces: Vec<u32>,
}

/// A pcap or pcapng file being read, packet by packet.
///
/// Memory is one buffer of about 1 MiB (more only for a record that does not
/// fit), the interfaces and, for `LINUX_SLL2` files, one map entry per
/// ifindex; a packet costs no allocation.
///
/// ```no_run
/// # fn main() -> Result<(), capture_file::ReadError> {
/// let mut file = capture_file::CaptureFile::open("capture.pcapng")?;
/// while let Some(packet) = file.next_packet()? {
///     println!("{} {} bytes", packet.interface, packet.data.len());
/// }
/// # Ok(()) }
/// ```
pub struct CaptureFile {
    file: PathBuf,
    input: Input,
    walker: Walker,
    format: CaptureFormat,
    /// Only grows: indexes handed out stay valid.
    interfaces: Vec<FileInterface>,
    /// `(interface, ifindex)` of `LINUX_SLL2` packets to the interface split
    /// for them.
    splits: HashMap<(u32, u32), u32>,
    /// The last lookup in `splits`, which nearly every packet repeats.
    last_split: Option<((u32, u32), u32)>,
    /// An error or the end was reached: no more packets.
    finished: bool,
    packets: u64,
    /// The packet returned last, while its bytes are still buffered.
    current: Option<Current>,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("file", &self.file)
            .field("format", &self.format)
            .field("interfaces", &self.interfaces.len())
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

impl CaptureFile {
    /// Opens a file and reads its header: the pcap file header, or the first
    /// pcapng Section Header Block.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| ReadError::Io {
            file: path.to_path_buf(),
            offset: 0,
            source,
        })?;
        Self::from_reader(path, file)
    }

    /// Reads a capture from any reader (a pipe, bytes in memory); `name`
    /// stands for the file in errors and names a pcap file's interface.
    pub fn from_reader(name: impl AsRef<Path>, reader: impl Read + Send + 'static) -> Result<Self, ReadError> {
        let file = name.as_ref().to_path_buf();
        let mut input = Input::new(Box::new(reader));
        let io_error = |source| ReadError::Io {
            file: file.clone(),
            offset: 0,
            source,
        };
        if input.fill(4).map_err(io_error)? < 4 {
            return Err(ReadError::NotACaptureFile { file, offset: 0 });
        }
        let magic: [u8; 4] = input.bytes(input.pos(), 4).try_into().expect("4 bytes asked for");
        let little = u32::from_le_bytes(magic);
        let big = u32::from_be_bytes(magic);
        let (walker, format) = if little == SHB {
            let walker = Walker::Pcapng(Section {
                big_endian: false,
                index: 0,
                started: false,
                interfaces: Vec::new(),
            });
            (walker, CaptureFormat::Pcapng)
        } else {
            let (big_endian, nanosecond) = match (little, big) {
                (PCAP_MAGIC_MICROSECONDS, _) => (false, false),
                (PCAP_MAGIC_NANOSECONDS, _) => (false, true),
                (_, PCAP_MAGIC_MICROSECONDS) => (true, false),
                (_, PCAP_MAGIC_NANOSECONDS) => (true, true),
                _ => return Err(ReadError::NotACaptureFile { file, offset: 0 }),
            };
            let walker = Walker::Pcap { big_endian };
            (walker, CaptureFormat::Pcap { big_endian, nanosecond })
        };
        let mut capture = Self {
            file,
            input,
            walker,
            format,
            interfaces: Vec::new(),
            splits: HashMap::new(),
            last_split: None,
            finished: false,
            packets: 0,
            current: None,
        };
        match format {
            CaptureFormat::Pcap { big_endian, nanosecond } => capture.read_pcap_header(big_endian, nanosecond)?,
            CaptureFormat::Pcapng => match capture.pcapng_block()? {
                Some(Block::NotAPacket) => {}
                // The first block is a Section Header Block: its type is the magic.
                Some(Block::Packet(_)) | None => unreachable!("the first block is a section header"),
            },
        }
        Ok(capture)
    }

    /// The file's format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The file's path, or the name given to [`CaptureFile::from_reader`].
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The interfaces described so far. The list only grows: a pcapng file
    /// may describe interfaces anywhere, and `LINUX_SLL2` packets add one
    /// per new ifindex, so look up a packet's interface after reading it.
    pub fn interfaces(&self) -> &[FileInterface] {
        &self.interfaces
    }

    /// Packets delivered so far.
    pub fn packets_read(&self) -> u64 {
        self.packets
    }

    /// Bytes of the file consumed so far: the offset of the next record.
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// The next packet, `Ok(None)` at the end of the file.
    ///
    /// On an error every packet before it was already delivered, and later
    /// calls return `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<FilePacket<'_>>, ReadError> {
        self.current = None;
        if self.finished {
            return Ok(None);
        }
        let found = match self.next_found() {
            Ok(Some(found)) => found,
            Ok(None) => {
                self.finished = true;
                return Ok(None);
            }
            Err(error) => {
                self.finished = true;
                return Err(error);
            }
        };
        let data = self.input.bytes(found.start, found.len);
        // Walkers only hand out interfaces they described.
        let interface = &self.interfaces[found.interface as usize];
        let link = classify(interface.link_type, data);
        let timestamp_ns = found.units.map_or(0, |units| interface.timestamp_ns(units));
        let (mut direction, mut packet_type) = found.flags.map_or((None, None), from_epb_flags);
        let mut index = found.interface;
        if let LinkKind::LinuxSll(header) | LinkKind::LinuxSll2(header) = link {
            if let Some((kernel_type, kernel_direction)) = header.kernel_packet_type() {
                packet_type = Some(kernel_type);
                direction = Some(kernel_direction);
            }
            if let Some(ifindex) = header.ifindex {
                index = split_interface(
                    &mut self.interfaces,
                    &mut self.splits,
                    &mut self.last_split,
                    found.interface,
                    ifindex,
                );
            }
        }
        self.packets += 1;
        self.current = Some(Current {
            interface: index,
            timestamp_ns,
            original_len: found.original_len,
            start: found.start,
            len: found.len,
            link,
            direction,
            packet_type,
        });
        Ok(Some(FilePacket {
            interface: index,
            timestamp_ns,
            original_len: found.original_len,
            data,
            link,
            direction,
            packet_type,
        }))
    }

    /// The packet the last [`CaptureFile::next_packet`] returned, again,
    /// its bytes still in the reader's buffer: so a reader merging several
    /// files can look at each file's next packet and process the earliest
    /// without copying it out first. `None` before the first packet, at
    /// the end and after an error.
    pub fn current_packet(&self) -> Option<FilePacket<'_>> {
        let current = self.current?;
        Some(FilePacket {
            interface: current.interface,
            timestamp_ns: current.timestamp_ns,
            original_len: current.original_len,
            data: self.input.bytes(current.start, current.len),
            link: current.link,
            direction: current.direction,
            packet_type: current.packet_type,
        })
    }

    /// The next packet of the file, by position, skipping non-packet blocks.
    fn next_found(&mut self) -> Result<Option<Found>, ReadError> {
        match self.walker {
            Walker::Pcap { big_endian } => self.pcap_record(big_endian),
            Walker::Pcapng(_) => loop {
                match self.pcapng_block()? {
                    Some(Block::Packet(found)) => return Ok(Some(found)),
                    Some(Block::NotAPacket) => {}
                    None => return Ok(None),
                }
            },
        }
    }

    fn io_error(&self, source: std::io::Error) -> ReadError {
        ReadError::Io {
            file: self.file.clone(),
            offset: self.input.offset(),
            source,
        }
    }

    /// Makes `len` bytes available, or says the file was cut at `offset`.
    #[inline]
    fn require(&mut self, len: usize, offset: u64) -> Result<(), ReadError> {
        match self.input.fill(len) {
            Ok(available) if available >= len => Ok(()),
            Ok(_) => Err(truncated(&self.file, offset)),
            Err(source) => Err(self.io_error(source)),
        }
    }

    fn read_pcap_header(&mut self, big_endian: bool, nanosecond: bool) -> Result<(), ReadError> {
        self.require(PCAP_HEADER_LEN, 0)?;
        let header = self.input.bytes(self.input.pos(), PCAP_HEADER_LEN);
        let major = read_u16(header, 4, big_endian);
        let minor = read_u16(header, 6, big_endian);
        let snaplen = read_u32(header, 16, big_endian);
        let link = read_u32(header, 20, big_endian) & 0xffff;
        if major != 2 {
            return Err(ReadError::UnsupportedVersion {
                file: self.file.clone(),
                offset: 0,
                major,
                minor,
            });
        }
        self.input.consume(PCAP_HEADER_LEN);
        let name = self
            .file
            .file_stem()
            .map_or_else(|| "pcap0".to_owned(), |stem| stem.to_string_lossy().into_owned());
        let mut interface = FileInterface::new(name, link, snaplen, 0);
        if nanosecond {
            interface.resolution = TimestampResolution::NANOSECONDS;
        }
        self.interfaces.push(interface);
        Ok(())
    }

    fn pcap_record(&mut self, big_endian: bool) -> Result<Option<Found>, ReadError> {
        let offset = self.input.offset();
        match self.input.fill(PCAP_RECORD_HEADER_LEN) {
            Ok(0) => return Ok(None),
            Ok(available) if available < PCAP_RECORD_HEADER_LEN => return Err(truncated(&self.file, offset)),
            Ok(_) => {}
            Err(source) => return Err(self.io_error(source)),
        }
        let header = self.input.bytes(self.input.pos(), PCAP_RECORD_HEADER_LEN);
        let seconds = u64::from(read_u32(header, 0, big_endian));
        let fraction = u64::from(read_u32(header, 4, big_endian));
        let captured = read_u32(header, 8, big_endian);
        let original_len = read_u32(header, 12, big_endian);
        if captured > MAX_BLOCK_LEN {
            return Err(bad_length(&self.file, offset, captured));
        }
        let total = PCAP_RECORD_HEADER_LEN + captured as usize;
        self.require(total, offset)?;
        let start = self.input.pos() + PCAP_RECORD_HEADER_LEN;
        self.input.consume(total);
        // The only interface of a pcap file is its first.
        let per_second = match self.interfaces[0].resolution {
            TimestampResolution::NANOSECONDS => 1_000_000_000,
            _ => 1_000_000,
        };
        Ok(Some(Found {
            interface: 0,
            // Cannot overflow: u32::MAX * 10^9 + u32::MAX < u64::MAX.
            units: Some(seconds * per_second + fraction),
            original_len,
            start,
            len: captured as usize,
            flags: None,
        }))
    }

    /// Reads one pcapng block; `None` at a clean end of the file.
    fn pcapng_block(&mut self) -> Result<Option<Block>, ReadError> {
        let offset = self.input.offset();
        match self.input.fill(BLOCK_OVERHEAD) {
            Ok(0) => return Ok(None),
            Ok(available) if available < BLOCK_OVERHEAD => return Err(truncated(&self.file, offset)),
            Ok(_) => {}
            Err(source) => return Err(self.io_error(source)),
        }
        let Walker::Pcapng(section) = &mut self.walker else {
            unreachable!("pcapng_block is called for pcapng files only");
        };
        let head = self.input.bytes(self.input.pos(), BLOCK_OVERHEAD);
        // The SHB type reads the same in both byte orders; its byte-order
        // mark sets the order of the section, its own length included.
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == SHB {
            section.big_endian = match [head[8], head[9], head[10], head[11]] {
                BOM_BIG_ENDIAN => true,
                BOM_LITTLE_ENDIAN => false,
                _ => {
                    return Err(ReadError::NotACaptureFile {
                        file: self.file.clone(),
                        offset,
                    })
                }
            };
        } else if !section.started {
            return Err(ReadError::NotACaptureFile {
                file: self.file.clone(),
                offset,
            });
        }
        let big_endian = section.big_endian;
        let block_type = read_u32(head, 0, big_endian);
        let length = read_u32(head, 4, big_endian);
        if (length as usize) < BLOCK_OVERHEAD || length % 4 != 0 || length > MAX_BLOCK_LEN {
            return Err(bad_length(&self.file, offset, length));
        }
        let length_usize = length as usize;
        self.require(length_usize, offset)?;
        let start = self.input.pos();
        let block = self.input.bytes(start, length_usize);
        if read_u32(block, length_usize - 4, big_endian) != length {
            return Err(bad_length(&self.file, offset, length));
        }
        let body = &block[8..length_usize - 4];
        let body_start = start + 8;
        let Walker::Pcapng(section) = &mut self.walker else {
            unreachable!("pcapng_block is called for pcapng files only");
        };
        let result = match block_type {
            SHB => {
                if body.len() < 16 {
                    return Err(bad_length(&self.file, offset, length));
                }
                let major = read_u16(body, 4, big_endian);
                let minor = read_u16(body, 6, big_endian);
                if major != 1 {
                    return Err(ReadError::UnsupportedVersion {
                        file: self.file.clone(),
                        offset,
                        major,
                        minor,
                    });
                }
                if section.started {
                    section.index += 1;
                }
                section.started = true;
                section.interfaces.clear();
                Ok(Block::NotAPacket)
            }
            IDB => {
                if body.len() < 8 {
                    return Err(bad_length(&self.file, offset, length));
                }
                let link = u32::from(read_u16(body, 0, big_endian));
                let snaplen = read_u32(body, 4, big_endian);
                let global = self.interfaces.len() as u32;
                let mut interface = FileInterface::new(String::new(), link, snaplen, section.index);
                for (code, value) in Options::new(&body[8..], big_endian) {
                    match code {
                        OPT_IF_NAME => {
                            let name = value.split(|b| *b == 0).next().unwrap_or_default();
                            interface.name = String::from_utf8_lossy(name).into_owned();
                        }
                        OPT_IF_TSRESOL if !value.is_empty() => {
                            interface.resolution = TimestampResolution::from_tsresol(value[0]);
                        }
                        OPT_IF_TSOFFSET if value.len() >= 8 => {
                            let bytes: [u8; 8] = value[..8].try_into().expect("8 bytes checked");
                            interface.offset_s = if big_endian {
                                i64::from_be_bytes(bytes)
                            } else {
                                i64::from_le_bytes(bytes)
                            };
                        }
                        _ => {}
                    }
                }
                if interface.name.is_empty() {
                    interface.name = format!("pcapng{global}");
                }
                section.interfaces.push(global);
                self.interfaces.push(interface);
                Ok(Block::NotAPacket)
            }
            EPB | PB => {
                if body.len() < 20 {
                    return Err(bad_length(&self.file, offset, length));
                }
                let local = if block_type == EPB {
                    read_u32(body, 0, big_endian)
                } else {
                    u32::from(read_u16(body, 0, big_endian))
                };
                let units = u64::from(read_u32(body, 4, big_endian)) << 32 | u64::from(read_u32(body, 8, big_endian));
                let captured = read_u32(body, 12, big_endian) as usize;
                let original_len = read_u32(body, 16, big_endian);
                let padded = captured.next_multiple_of(4);
                if 20 + padded > body.len() {
                    return Err(bad_length(&self.file, offset, length));
                }
                let flags = Options::new(&body[20 + padded..], big_endian)
                    .find(|(code, value)| *code == OPT_EPB_FLAGS && value.len() >= 4)
                    .map(|(_, value)| read_u32(value, 0, big_endian));
                match section.interfaces.get(local as usize) {
                    Some(&interface) => Ok(Block::Packet(Found {
                        interface,
                        units: Some(units),
                        original_len,
                        start: body_start + 20,
                        len: captured,
                        flags,
                    })),
                    None => Err(local),
                }
            }
            SPB => {
                if body.len() < 4 {
                    return Err(bad_length(&self.file, offset, length));
                }
                let original_len = read_u32(body, 0, big_endian);
                match section.interfaces.first() {
                    Some(&interface) => {
                        let snaplen = self.interfaces[interface as usize].snaplen;
                        let mut captured = (original_len as usize).min(body.len() - 4);
                        if snaplen != 0 {
                            captured = captured.min(snaplen as usize);
                        }
                        Ok(Block::Packet(Found {
                            interface,
                            units: None,
                            original_len,
                            start: body_start + 4,
                            len: captured,
                            flags: None,
                        }))
                    }
                    None => Err(0),
                }
            }
            // Name resolution, statistics, decryption secrets, custom and
            // unknown blocks: nothing a packet needs.
            _ => Ok(Block::NotAPacket),
        };
        match result {
            Ok(block) => {
                self.input.consume(length_usize);
                Ok(Some(block))
            }
            Err(interface) => Err(ReadError::UnknownInterface {
                file: self.file.clone(),
                offset,
                interface,
            }),
        }
    }
}

fn truncated(file: &Path, offset: u64) -> ReadError {
    ReadError::Truncated {
        file: file.to_path_buf(),
        offset,
    }
}

fn bad_length(file: &Path, offset: u64, length: u32) -> ReadError {
    ReadError::BadBlockLength {
        file: file.to_path_buf(),
        offset,
        length,
    }
}

/// The interface for `LINUX_SLL2` packets of `parent` with `ifindex`, made
/// on first sight as a copy of `parent` named `ifindex<N>`.
fn split_interface(
    interfaces: &mut Vec<FileInterface>,
    splits: &mut HashMap<(u32, u32), u32>,
    last: &mut Option<((u32, u32), u32)>,
    parent: u32,
    ifindex: u32,
) -> u32 {
    let key = (parent, ifindex);
    if let Some((last_key, index)) = *last {
        if last_key == key {
            return index;
        }
    }
    let index = *splits.entry(key).or_insert_with(|| {
        let mut interface = interfaces[parent as usize].clone();
        interface.name = format!("ifindex{ifindex}");
        interface.ifindex = Some(ifindex);
        interface.parent = Some(parent);
        interfaces.push(interface);
        interfaces.len() as u32 - 1
    });
    *last = Some((key, index));
    index
}

/// The options of a pcapng block as `(code, value)`, up to `opt_endofopt`.
/// Stops quietly at an option that overruns the block: options are
/// metadata, and the packet is still good.
struct Options<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl<'a> Options<'a> {
    fn new(bytes: &'a [u8], big_endian: bool) -> Self {
        Self { bytes, big_endian }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.len() < 4 {
            return None;
        }
        let code = read_u16(self.bytes, 0, self.big_endian);
        let len = usize::from(read_u16(self.bytes, 2, self.big_endian));
        if code == OPT_END || 4 + len > self.bytes.len() {
            self.bytes = &[];
            return None;
        }
        let value = &self.bytes[4..4 + len];
        self.bytes = self.bytes.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
        Some((code, value))
    }
}

/// The u16 at `at`; the caller checked the length.
#[inline(always)]
fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> u16 {
    let raw = [bytes[at], bytes[at + 1]];
    if big_endian {
        u16::from_be_bytes(raw)
    } else {
        u16::from_le_bytes(raw)
    }
}

/// The u32 at `at`; the caller checked the length.
#[inline(always)]
fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let raw = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    }
}
