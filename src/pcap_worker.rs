//! The pcapng writer of delivered packets, as a worker: one file shared by
//! every worker thread of `ringsieve run`. Each worker encodes its packets
//! into its own buffer without a lock and appends the buffer to the file
//! when it holds a megabyte, when the worker ticks (every 100 ms while idle)
//! and at the end. An interface gets its Interface Description Block the
//! first time a worker meets it, under the file's lock, before any packet
//! that names it reaches the file.
//!
//! Packets of different workers reach the file in chunks, not in timestamp
//! order across workers (tshark, capinfos and editcap read such files; the
//! packets of one flow keep their order, as one worker writes them).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};

use output::pcapng::{InterfaceId, PacketEncoder, PacketRecord, PcapngWriter};
use pipeline::worker::{PacketBatch, Worker};

/// Snap length written in every Interface Description Block: more than the
/// largest GSO super-frame plus a VLAN tag, as tcpdump uses.
const SNAPLEN: u32 = 262_144;
/// Output buffer for small hand-overs. Larger ones go to the file directly.
const BUFFER_BYTES: usize = 64 << 10;
/// A worker hands its encoded packets to the file at least this often, in
/// bytes.
const HAND_OVER_BYTES: usize = 1 << 20;

type Writer = PcapngWriter<BufWriter<Box<dyn Write + Send>>>;

/// The file and the interfaces described in it, by name.
struct SharedFile {
    writer: Writer,
    ids: HashMap<String, InterfaceId>,
}

/// The shared pcapng file.
pub struct PcapOutput {
    path: String,
    file: Arc<Mutex<SharedFile>>,
}

/// What was written, for the exit summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapSummary {
    /// The file (`-` for stdout).
    pub path: String,
    /// Enhanced Packet Blocks written.
    pub packets_written: u64,
}

impl PcapOutput {
    /// Creates `path` (`-` for stdout) and describes `interfaces` in it, in
    /// order (others are added as packets name them).
    pub fn create<'a>(path: &str, interfaces: impl Iterator<Item = &'a str>) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path)?)
        };
        let application = concat!("ringsieve ", env!("CARGO_PKG_VERSION"));
        let mut writer = PcapngWriter::new(BufWriter::with_capacity(BUFFER_BYTES, out), application)?;
        let mut ids = HashMap::new();
        for name in interfaces {
            let id = writer.add_interface(name, SNAPLEN)?;
            ids.insert(name.to_owned(), id);
        }
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(SharedFile { writer, ids })),
        })
    }

    /// A writer for one worker thread.
    pub fn worker(&self) -> PcapWorker {
        let encoder = self.lock().writer.encoder();
        PcapWorker {
            encoder,
            file: Arc::clone(&self.file),
            ids: Vec::new(),
            failed: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SharedFile> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Flushes the file once every worker is gone.
    pub fn finish(self) -> io::Result<PcapSummary> {
        let file = Arc::try_unwrap(self.file)
            .map_err(|_| io::Error::other("a worker still holds the pcapng file"))?
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let packets_written = file.writer.packets_written();
        file.writer.finish()?.flush()?;
        Ok(PcapSummary {
            path: self.path,
            packets_written,
        })
    }
}

/// One worker's handle on the shared file.
pub struct PcapWorker {
    encoder: PacketEncoder,
    file: Arc<Mutex<SharedFile>>,
    /// The pcapng interface of each pipeline interface id met so far.
    ids: Vec<Option<InterfaceId>>,
    /// Set after the first write error, reported once.
    failed: bool,
}

impl PcapWorker {
    fn hand_over(&mut self) {
        if self.encoder.encoded_len() == 0 {
            return;
        }
        let result = {
            let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
            self.encoder.drain_into(&mut file.writer)
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    fn fail(&mut self, error: &io::Error) {
        if !self.failed {
            self.failed = true;
            tracing::error!(%error, "writing the pcapng file failed; packets are still counted");
        }
    }

    /// The pcapng interface of pipeline interface `index` named `name`,
    /// described in the file first if no worker did yet.
    fn interface_id(&mut self, index: usize, name: &str) -> io::Result<InterfaceId> {
        if let Some(Some(id)) = self.ids.get(index) {
            return Ok(*id);
        }
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let id = match file.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = file.writer.add_interface(name, SNAPLEN)?;
                file.ids.insert(name.to_owned(), id);
                id
            }
        };
        file.writer.refresh_encoder(&mut self.encoder);
        drop(file);
        if self.ids.len() <= index {
            self.ids.resize(index + 1, None);
        }
        self.ids[index] = Some(id);
        Ok(id)
    }
}

impl Worker for PcapWorker {
    fn batch(&mut self, batch: &PacketBatch) {
        if self.failed {
            return;
        }
        for packet in batch.packets() {
            let meta = packet.meta;
            let name = &batch.interface(meta.interface).name;
            let result = self.interface_id(meta.interface.index(), name).and_then(|interface| {
                self.encoder.encode(&PacketRecord {
                    interface,
                    timestamp_ns: meta.timestamp_ns,
                    original_len: meta.original_len,
                    data: packet.data,
                    packet_type: meta.packet_type,
                    vlan: meta.vlan,
                })
            });
            if let Err(e) = result {
                self.fail(&e);
                return;
            }
        }
        if self.encoder.encoded_len() >= HAND_OVER_BYTES {
            self.hand_over();
        }
    }

    fn tick(&mut self, _clock_ns: u64) {
        self.hand_over();
    }

    fn finish(&mut self, _clock_ns: u64) {
        self.hand_over();
    }
}
