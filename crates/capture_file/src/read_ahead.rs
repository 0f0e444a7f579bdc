//! [`ReadAhead`]: a [`CaptureFile`] read and decoded on a thread of its own,
//! ahead of the caller, so the `read(2)` calls and the walk of the records
//! (about 430 instructions a packet for pcapng) leave the thread that
//! dedups. `ringsieve read` is limited by that one thread, while the other
//! core has time to spare: the workers' reorder holds the first packets for
//! its window before the flow tracker has anything to do.
//!
//! The thread copies each packet's bytes into a batch with its metadata (a
//! reused buffer, handed over once it holds [`BATCH_BYTES`] or
//! [`BATCH_PACKETS`] packets: at most that plus one packet) and hands
//! batches over a channel of [`BATCHES_AHEAD`]; the caller gives the
//! buffers back once read. So at most `BATCHES_AHEAD + 2` batches exist
//! (those in the channel, the one filled, the one read), and the caller
//! sees exactly what [`CaptureFile::next_packet`] would have returned, in
//! the same order: the same packets, the interfaces described before each
//! packet's batch is handed out, and an error after every packet before it.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use af_packet::{Direction, PacketType};

use crate::interface::FileInterface;
use crate::link::LinkKind;
use crate::reader::{CaptureFile, CaptureFormat, FilePacket};
use crate::ReadError;

/// Bytes of packet data after which a batch is handed over: large enough
/// that the hand-over (a futex call at worst) vanishes per packet, small
/// enough to stay in the caches between the two threads.
pub const BATCH_BYTES: usize = 256 << 10;

/// Packets after which a batch is handed over, whatever their bytes: so a
/// file of empty or tiny records does not gather its whole length in one.
pub const BATCH_PACKETS: usize = 4096;

/// Batches decoded and not yet taken, at most, besides the one being read
/// and the one being filled.
pub const BATCHES_AHEAD: usize = 2;

/// One packet of a batch: [`FilePacket`] with its bytes by position.
#[derive(Clone, Copy)]
struct Packet {
    interface: u32,
    timestamp_ns: u64,
    original_len: u32,
    start: usize,
    len: usize,
    link: LinkKind,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
}

/// Packets decoded by the reading thread, in file order.
#[derive(Default)]
struct Batch {
    /// Interfaces the file described since the previous batch, in order:
    /// they come before this batch's packets.
    interfaces: Vec<FileInterface>,
    bytes: Vec<u8>,
    packets: Vec<Packet>,
    /// Set on the last batch: how the file ended (`Ok` at its end).
    end: Option<Result<(), ReadError>>,
}

impl Batch {
    fn clear(&mut self) {
        self.interfaces.clear();
        self.bytes.clear();
        self.packets.clear();
        self.end = None;
    }
}

/// A capture file decoded on its own thread; see the module documentation.
/// Its methods are those of [`CaptureFile`] that walk the packets.
pub struct ReadAhead {
    path: PathBuf,
    format: CaptureFormat,
    batches: Receiver<Batch>,
    /// Read batches go back to the thread, to be filled again.
    spare: Sender<Batch>,
    /// The batch being read, and the index of its next packet.
    batch: Batch,
    next: usize,
    interfaces: Vec<FileInterface>,
    packets: u64,
    /// The end or an error was returned: no more packets.
    finished: bool,
    /// The last packet returned, by index in `batch`.
    current: Option<usize>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("file", &self.path)
            .field("format", &self.format)
            .field("interfaces", &self.interfaces.len())
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

impl ReadAhead {
    /// Opens a file and reads its header on the calling thread (so an
    /// unreadable file fails here, as [`CaptureFile::open`] does), then
    /// reads on from a thread of its own.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let file = CaptureFile::open(path)?;
        Self::start(file)
    }

    /// Reads `file` on from a thread of its own.
    pub fn start(file: CaptureFile) -> Result<Self, ReadError> {
        let path = file.path().to_path_buf();
        let format = file.format();
        let interfaces = file.interfaces().to_vec();
        let (to_reader, batches) = mpsc::sync_channel(BATCHES_AHEAD);
        let (spare, spares) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || decode(file, &to_reader, &spares))
            .map_err(|source| ReadError::Io {
                file: path.clone(),
                offset: 0,
                source,
            })?;
        Ok(Self {
            path,
            format,
            batches,
            spare,
            batch: Batch::default(),
            next: 0,
            interfaces,
            packets: 0,
            finished: false,
            current: None,
            thread: Some(thread),
        })
    }

    /// The file's format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The interfaces described so far, as [`CaptureFile::interfaces`]:
    /// at least those of every packet returned.
    pub fn interfaces(&self) -> &[FileInterface] {
        &self.interfaces
    }

    /// Packets returned so far.
    pub fn packets_read(&self) -> u64 {
        self.packets
    }

    /// The next packet, `Ok(None)` at the end of the file, as
    /// [`CaptureFile::next_packet`]: on an error every packet before it was
    /// returned, and later calls return `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<FilePacket<'_>>, ReadError> {
        Ok(if self.advance()? { self.current_packet() } else { None })
    }

    /// Moves to the next packet, which [`ReadAhead::current_packet`] then
    /// returns: `Ok(false)` at the end of the file. The same as
    /// [`ReadAhead::next_packet`] without handing the packet out, for a
    /// caller that looks at it later (and would otherwise build it twice).
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        self.current = None;
        while self.next == self.batch.packets.len() {
            if self.finished {
                return Ok(false);
            }
            if let Some(end) = self.batch.end.take() {
                self.finished = true;
                end?;
                return Ok(false);
            }
            self.take_batch();
        }
        self.current = Some(self.next);
        self.next += 1;
        self.packets += 1;
        Ok(true)
    }

    /// The interface index and timestamp of the current packet.
    pub fn current_head(&self) -> Option<(u32, u64)> {
        let packet = self.batch.packets.get(self.current?)?;
        Some((packet.interface, packet.timestamp_ns))
    }

    /// The packet the last [`ReadAhead::next_packet`] returned, again, as
    /// [`CaptureFile::current_packet`].
    pub fn current_packet(&self) -> Option<FilePacket<'_>> {
        let packet = self.batch.packets.get(self.current?)?;
        Some(FilePacket {
            interface: packet.interface,
            timestamp_ns: packet.timestamp_ns,
            original_len: packet.original_len,
            data: &self.batch.bytes[packet.start..packet.start + packet.len],
            link: packet.link,
            direction: packet.direction,
            packet_type: packet.packet_type,
        })
    }

    /// Gives the read batch back and takes the next one.
    fn take_batch(&mut self) {
        let next = match self.batches.recv() {
            Ok(batch) => batch,
            // The thread ended without saying how the file ended: it
            // panicked.
            Err(_) => Batch {
                end: Some(Err(ReadError::Io {
                    file: self.path.clone(),
                    offset: 0,
                    source: std::io::Error::other("the read-ahead thread failed"),
                })),
                ..Batch::default()
            },
        };
        let mut read = std::mem::replace(&mut self.batch, next);
        self.next = 0;
        self.interfaces.append(&mut self.batch.interfaces);
        read.clear();
        // The thread is gone once it sent the end: then the buffer is dropped.
        let _ = self.spare.send(read);
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next hand-over.
        let (_, closed) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.batches, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reading thread: decodes `file` into batches until its end, an error,
/// or the reader is dropped.
fn decode(mut file: CaptureFile, to_reader: &SyncSender<Batch>, spares: &Receiver<Batch>) {
    let mut described = file.interfaces().len();
    let mut batch = Batch::default();
    loop {
        let end = match file.next_packet() {
            Ok(Some(packet)) => {
                let start = batch.bytes.len();
                batch.bytes.extend_from_slice(packet.data);
                batch.packets.push(Packet {
                    interface: packet.interface,
                    timestamp_ns: packet.timestamp_ns,
                    original_len: packet.original_len,
                    start,
                    len: packet.data.len(),
                    link: packet.link,
                    direction: packet.direction,
                    packet_type: packet.packet_type,
                });
                None
            }
            Ok(None) => Some(Ok(())),
            Err(error) => Some(Err(error)),
        };
        // Interfaces described up to this packet, its own included.
        let interfaces = file.interfaces();
        if interfaces.len() > described {
            batch.interfaces.extend_from_slice(&interfaces[described..]);
            described = interfaces.len();
        }
        let last = end.is_some();
        if last || batch.bytes.len() >= BATCH_BYTES || batch.packets.len() >= BATCH_PACKETS {
            batch.end = end;
            if to_reader.send(batch).is_err() || last {
                return;
            }
            batch = spares.try_recv().unwrap_or_default();
        }
    }
}
