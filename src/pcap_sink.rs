//! The pcapng output of `ringsieve run`: one file shared by every capture
//! thread. Each thread gets a [`PcapSink`] that encodes packets straight from
//! the ring into its own buffer, without a lock, and appends the buffer to the
//! file once per turn of its capture loop (or when the buffer is full); the
//! interface blocks are written at creation, in the order the interfaces were
//! given.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};

use af_packet::{Interface, Packet};
use output::pcapng::{InterfaceId, PacketEncoder, PacketRecord, PcapngWriter};
use pipeline::dedup_stage::{DeliveredSink, LivePacket};
use pipeline::PacketSink;

/// Snap length written in every Interface Description Block: more than the
/// largest GSO super-frame plus a VLAN tag, as tcpdump uses.
const SNAPLEN: u32 = 262_144;
/// Output buffer for small batches (quiet interfaces). Batches at least this
/// large go to the file directly, without a second copy.
const BUFFER_BYTES: usize = 64 << 10;
/// A capture thread hands its encoded packets to the file at least this
/// often, in bytes.
const BATCH_BYTES: usize = 1 << 20;

type Writer = PcapngWriter<BufWriter<Box<dyn Write + Send>>>;

/// The shared pcapng file.
pub struct PcapOutput {
    path: String,
    writer: Arc<Mutex<Writer>>,
    interfaces: Arc<HashMap<String, InterfaceId>>,
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
    /// Creates `path` (`-` for stdout) and describes `interfaces` in it.
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
            writer: Arc::new(Mutex::new(writer)),
            interfaces: Arc::new(ids),
        })
    }

    /// A sink for one capture thread.
    pub fn sink(&self) -> PcapSink {
        let encoder = self.writer.lock().unwrap_or_else(PoisonError::into_inner).encoder();
        PcapSink {
            encoder,
            writer: Arc::clone(&self.writer),
            interfaces: Arc::clone(&self.interfaces),
            by_ifindex: Vec::new(),
            failed: false,
        }
    }

    /// Flushes the file once every sink is gone.
    pub fn finish(self) -> io::Result<PcapSummary> {
        let writer = Arc::try_unwrap(self.writer)
            .map_err(|_| io::Error::other("a capture thread still holds the pcapng file"))?
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let packets_written = writer.packets_written();
        writer.finish()?.flush()?;
        Ok(PcapSummary {
            path: self.path,
            packets_written,
        })
    }
}

/// One capture thread's handle on the shared file.
pub struct PcapSink {
    encoder: PacketEncoder,
    writer: Arc<Mutex<Writer>>,
    interfaces: Arc<HashMap<String, InterfaceId>>,
    /// ifindex to interface id, filled on first sight of each interface so
    /// the per-packet lookup is a short scan, not a string hash.
    by_ifindex: Vec<(i32, InterfaceId)>,
    /// Set after the first write error, reported once.
    failed: bool,
}

impl PcapSink {
    fn hand_over(&mut self) {
        if self.encoder.encoded_len() == 0 {
            return;
        }
        let result = {
            let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            self.encoder.drain_into(&mut writer)
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

    fn interface_id(&mut self, interface: &Interface) -> Option<InterfaceId> {
        if let Some(&(_, id)) = self
            .by_ifindex
            .iter()
            .find(|(ifindex, _)| *ifindex == interface.ifindex())
        {
            return Some(id);
        }
        let id = *self.interfaces.get(interface.name())?;
        self.by_ifindex.push((interface.ifindex(), id));
        Some(id)
    }
}

impl PcapSink {
    /// Encodes one packet of `interface`, built by `record` once its
    /// interface id is known.
    fn write<'a>(&mut self, interface: &Interface, record: impl FnOnce(InterfaceId) -> PacketRecord<'a>) {
        if self.failed {
            return;
        }
        let Some(id) = self.interface_id(interface) else {
            return;
        };
        if let Err(e) = self.encoder.encode(&record(id)) {
            self.fail(&e);
        }
        if self.encoder.encoded_len() >= BATCH_BYTES {
            self.hand_over();
        }
    }
}

impl PacketSink for PcapSink {
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>) {
        self.write(interface, |id| PacketRecord::from_packet(packet, id));
    }

    fn end_of_turn(&mut self) {
        self.hand_over();
    }

    fn finish(&mut self) {
        self.hand_over();
    }
}

impl DeliveredSink for PcapSink {
    fn delivered(&mut self, packet: &LivePacket<'_>) {
        self.write(packet.interface, |interface| PacketRecord {
            interface,
            timestamp_ns: packet.timestamp_ns,
            original_len: packet.original_len,
            data: packet.data,
            packet_type: Some(packet.packet_type),
            vlan: packet.vlan,
        });
    }

    fn end_of_turn(&mut self) {
        self.hand_over();
    }

    fn finish(&mut self) {
        self.hand_over();
    }
}
