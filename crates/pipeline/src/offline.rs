//! Offline dedup: the engine of live capture run over capture files, for
//! `ringsieve read`. Users check the dedup on their own captures with it, so
//! it must decide exactly as live capture does: same [`Sieve`], same tap
//! ranks, same window on the packets' own timestamps.
//!
//! Files are read in one of two orders ([`ReadOrder`]):
//! - [`ReadOrder::Timestamp`]: every file streamed, merged by timestamp, the
//!   watermark at the last timestamp read. Each file is decoded ahead on a
//!   thread of its own ([`ReadAhead`]). Memory: a few batches of decoded
//!   packets per file (about a MiB), the copies held for a window and the
//!   deliveries awaiting their turn.
//! - [`ReadOrder::Ring`]: the order live capture reads rings in. Each
//!   interface's packets are cut into blocks that close a retire timeout
//!   after their first packet, and blocks are read in the order they close
//!   (interfaces whose blocks close together in a shuffled order), so copies
//!   of one packet arrive milliseconds apart and in any interface order. The
//!   watermark after a block that closed at `c` is `c - timeout`. Files are
//!   loaded whole; this order exists to test that the output does not depend
//!   on the read order.
//!
//! Delivered packets leave in one order whatever the read order: by
//! (timestamp, interface, position in the file), each once no copy still
//! to be read or held could come before it. So the same capture always gives
//! the same output, byte for byte.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use flow::OrderedQueue;
use std::path::PathBuf;

use flow::packet_store::{PacketStore, StoredBytes};

use af_packet::{Direction, PacketType};
use capture_file::{CaptureFile, FileInterface, FilePacket, LinkKind, ReadAhead, ReadError};
use flow::{
    CapturedCopy, Delivery, HoldEnd, LinkLayer, Outcome, Sieve, SieveConfig, SieveCounters, SieveShared,
    SuppressedCopy, TapDirection, TapPoint, TapRegistry, TapRole,
};

/// The order files are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOrder {
    /// Merged by timestamp (the normal way).
    Timestamp,
    /// Per interface in blocks, as rings are read (tests).
    Ring {
        /// The block retire timeout, nanoseconds.
        retire_timeout_ns: u64,
        /// Shuffles the interfaces whose blocks close at the same time.
        seed: u64,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct OfflineConfig {
    /// The engine's settings.
    pub sieve: SieveConfig,
    /// Roles by interface name, before the name-based default
    /// ([`TapRole::from_interface_name`]).
    pub roles: Vec<(String, TapRole)>,
    /// The read order.
    pub order: ReadOrder,
}

/// An interface of an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputInterface {
    /// Its index among the interfaces of every input (stable for the run).
    pub id: usize,
    /// The file it is in (index into the inputs).
    pub file: usize,
    /// Its index in that file ([`FilePacket::interface`]).
    pub index: u32,
    /// Its name (pcapng `if_name`; `ifindex<N>` for a `LINUX_SLL2` split; the
    /// file's name for classic pcap).
    pub name: String,
    /// Its link type.
    pub link_type: u32,
    /// Its snapshot length.
    pub snaplen: u32,
    /// The role it was given.
    pub role: TapRole,
}

/// One delivered packet, as read from its file.
#[derive(Debug)]
pub struct DeliveredPacket<'a> {
    /// Where it was captured.
    pub interface: &'a InputInterface,
    /// Its timestamp, nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// Its length on the wire.
    pub original_len: u32,
    /// The record's bytes, link header included (as in the file).
    pub data: &'a [u8],
    /// Its direction, when the file records it.
    pub direction: Option<Direction>,
    /// Its kernel packet type, when the file records it.
    pub packet_type: Option<PacketType>,
    /// Its tap point.
    pub tap: TapPoint,
    /// Flow key and flags from the dedup.
    pub delivery: Delivery,
}

/// Receives the delivered packets, in output order.
pub trait DeliverySink {
    /// The error a sink may fail with (it ends the run).
    type Error;

    /// One delivered packet.
    fn deliver(&mut self, packet: &DeliveredPacket<'_>) -> Result<(), Self::Error>;

    /// Whether it wants [`DeliverySink::suppressed`] calls.
    fn wants_suppressed(&self) -> bool {
        false
    }

    /// Every delivery has been made and the run is over (`last_timestamp_ns`
    /// is [`OfflineReport::last_timestamp_ns`]); called before the engine's
    /// tables are freed, which takes a while, so a sink that hands packets
    /// on can let its consumers finish meanwhile.
    fn deliveries_done(&mut self, last_timestamp_ns: u64) {
        let _ = last_timestamp_ns;
    }

    /// A copy suppressed as a duplicate, with its canonical flow, told when
    /// the dedup decides it (before or after the delivery of the copy that
    /// won, whose output waits for the time order).
    fn suppressed(&mut self, interface: &InputInterface, copy: &SuppressedCopy, flow: &Delivery) {
        let _ = (interface, copy, flow);
    }
}

/// Per interface counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounts {
    /// Packets read.
    pub captured: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Copies suppressed as duplicates.
    pub duplicates: u64,
    /// Copies that did not parse.
    pub malformed: u64,
}

/// What a run read and decided.
#[derive(Clone, Debug, Default)]
pub struct OfflineReport {
    /// Every interface of every input, by id.
    pub interfaces: Vec<InputInterface>,
    /// Counts by interface id.
    pub counts: Vec<InterfaceCounts>,
    /// The engine's counters.
    pub dedup: SieveCounters,
    /// NAT bindings learned.
    pub nat_bindings: u64,
    /// Labels of the tap points (`interface/direction`), by tap id.
    pub taps: Vec<String>,
    /// The latest timestamp read: the end of the capture.
    pub last_timestamp_ns: u64,
}

/// Why a run stopped early. What was delivered before it stays delivered.
#[derive(Debug)]
pub enum OfflineError<E> {
    /// An input could not be read, or was cut mid-packet.
    Read(ReadError),
    /// The sink failed.
    Sink(E),
}

impl<E: std::fmt::Display> std::fmt::Display for OfflineError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfflineError::Read(error) => write!(f, "{error}"),
            OfflineError::Sink(error) => write!(f, "writing the output: {error}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for OfflineError<E> {}

/// The metadata of a copy inside the engine: enough to find it again.
#[derive(Clone, Copy, Debug)]
struct CopyMeta {
    interface: usize,
    position: u64,
    original_len: u32,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
}

/// A delivered copy waiting for its turn in the output.
struct Pending {
    meta: CopyMeta,
    timestamp_ns: u64,
    /// Its bytes, in `Run::bytes`.
    data: StoredBytes,
    tap: TapPoint,
    delivery: Delivery,
}

/// One packet read, its bytes borrowed (from the reader's buffer, or an
/// [`OwnedPacket`]).
struct PacketView<'a> {
    interface: usize,
    position: u64,
    timestamp_ns: u64,
    original_len: u32,
    data: &'a [u8],
    link: LinkKind,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
}

/// One packet read, owned (ring order loads the files whole).
struct OwnedPacket {
    interface: usize,
    position: u64,
    timestamp_ns: u64,
    original_len: u32,
    data: Vec<u8>,
    link: LinkKind,
    direction: Option<Direction>,
    packet_type: Option<PacketType>,
}

impl OwnedPacket {
    fn view(&self) -> PacketView<'_> {
        PacketView {
            interface: self.interface,
            position: self.position,
            timestamp_ns: self.timestamp_ns,
            original_len: self.original_len,
            data: &self.data,
            link: self.link,
            direction: self.direction,
            packet_type: self.packet_type,
        }
    }
}

/// The run's state: the engine, the interfaces seen, the output queue.
struct Run<'s, S: DeliverySink> {
    sieve: Sieve<CopyMeta>,
    registry: TapRegistry,
    roles: HashMap<String, TapRole>,
    interfaces: Vec<InputInterface>,
    /// Interface ids by file, then by the file's interface index.
    by_file_index: Vec<Vec<Option<usize>>>,
    counts: Vec<InterfaceCounts>,
    /// Keyed by (timestamp, interface, position), earliest first: the
    /// copies delivered as they were read, and those delivered at the end of
    /// their hold, each stream nearly in timestamp order (two FIFOs where
    /// one binary heap of both cost 5 % of a run in `pop`); emitted by the
    /// smaller head, so in the order of one heap of both.
    output: [OrderedQueue<(u64, usize, u64, usize)>; 2],
    pending: Vec<Option<Pending>>,
    free_pending: Vec<usize>,
    /// The bytes of the pending deliveries.
    bytes: PacketStore,
    /// The ends of holds being sorted, kept to reuse their memory.
    released: Vec<ReleasedCopy>,
    suppressed: Vec<(CopyMeta, SuppressedCopy)>,
    /// Tap points by interface id and direction (in, out, unknown), so the
    /// registry is asked once per tap, not per packet.
    tap_cache: Vec<[Option<TapPoint>; 3]>,
    /// The latest timestamp read.
    last_timestamp_ns: u64,
    sink: &'s mut S,
}

/// The output stream of copies delivered as they are read.
const NOW: usize = 0;
/// The output stream of copies delivered at the end of their hold.
const RELEASED: usize = 1;

/// Runs the dedup over `files` and hands the delivered packets to `sink`.
/// The report is complete even when the run stopped early: the error comes
/// beside it.
pub fn run<S: DeliverySink>(
    files: &[PathBuf],
    config: &OfflineConfig,
    sink: &mut S,
) -> (OfflineReport, Result<(), OfflineError<S::Error>>) {
    let shared = SieveShared::new(&config.sieve);
    let sieve = shared.thread().expect("a fresh engine has a free thread slot");
    let mut run = Run {
        sieve,
        registry: TapRegistry::new(),
        roles: config.roles.iter().cloned().collect(),
        interfaces: Vec::new(),
        by_file_index: Vec::new(),
        counts: Vec::new(),
        output: Default::default(),
        pending: Vec::new(),
        free_pending: Vec::new(),
        bytes: PacketStore::new(),
        released: Vec::new(),
        suppressed: Vec::new(),
        tap_cache: Vec::new(),
        last_timestamp_ns: 0,
        sink,
    };
    let result = match config.order {
        ReadOrder::Timestamp => run.timestamp_order(files),
        ReadOrder::Ring {
            retire_timeout_ns,
            seed,
        } => run.ring_order(files, retire_timeout_ns, seed),
    };
    // Whatever happened, what was decided before is delivered.
    let finished = run.finish();
    let report = run.report();
    run.sink.deliveries_done(report.last_timestamp_ns);
    (report, result.and(finished))
}

impl<S: DeliverySink> Run<'_, S> {
    /// Each file is read and decoded ahead on a thread of its own
    /// ([`ReadAhead`]: the walk of the records leaves this thread, which
    /// the run waits on); its next packet stays in the read-ahead's batch
    /// ([`ReadAhead::current_packet`]) until it is the earliest, and is
    /// processed from there.
    fn timestamp_order(&mut self, files: &[PathBuf]) -> Result<(), OfflineError<S::Error>> {
        let mut inputs = Vec::with_capacity(files.len());
        for path in files {
            inputs.push(ReadAhead::open(path).map_err(OfflineError::Read)?);
        }
        if let [input] = inputs.as_mut_slice() {
            // One file: the merge is its own order, no heap needed.
            while let Some((interface, _)) = self.read_next(0, input)? {
                self.process_current(input, interface)?;
            }
            return Ok(());
        }
        // The interface id of each file's next packet, and a heap of
        // (timestamp, file) of the files that have one.
        let mut heads: Vec<usize> = vec![0; inputs.len()];
        let mut heap = BinaryHeap::new();
        for (file, input) in inputs.iter_mut().enumerate() {
            if let Some((interface, timestamp_ns)) = self.read_next(file, input)? {
                heads[file] = interface;
                heap.push(Reverse((timestamp_ns, file)));
            }
        }
        while let Some(Reverse((_, file))) = heap.pop() {
            self.process_current(&inputs[file], heads[file])?;
            if let Some((interface, timestamp_ns)) = self.read_next(file, &mut inputs[file])? {
                heads[file] = interface;
                heap.push(Reverse((timestamp_ns, file)));
            }
        }
        Ok(())
    }

    /// Processes the packet `input` read last (of interface id
    /// `interface`), then releases and emits what its time allows.
    fn process_current(&mut self, input: &ReadAhead, interface: usize) -> Result<(), OfflineError<S::Error>> {
        let packet = input.current_packet().expect("a file read has a current packet");
        let view = PacketView {
            interface,
            // The packet was the last one read.
            position: input.packets_read() - 1,
            timestamp_ns: packet.timestamp_ns,
            original_len: packet.original_len,
            data: packet.data,
            link: packet.link,
            direction: packet.direction,
            packet_type: packet.packet_type,
        };
        self.process(&view);
        self.sieve.advance(view.timestamp_ns);
        self.release_and_emit()
    }

    /// Moves `input` to its next packet, left in the read-ahead's batch,
    /// and registers its interface on first sight: its interface id and
    /// timestamp.
    fn read_next(
        &mut self,
        file: usize,
        input: &mut ReadAhead,
    ) -> Result<Option<(usize, u64)>, OfflineError<S::Error>> {
        if !input.advance().map_err(OfflineError::Read)? {
            return Ok(None);
        }
        let (index, timestamp_ns) = input.current_head().expect("a packet was read");
        Ok(Some((self.interface_id(file, input.interfaces(), index), timestamp_ns)))
    }

    /// The id of interface `index` of file `file`, whose interfaces are
    /// `interfaces`, registered on first sight.
    fn interface_id(&mut self, file: usize, interfaces: &[FileInterface], index: u32) -> usize {
        if let Some(Some(id)) = self.by_file_index.get(file).and_then(|ids| ids.get(index as usize)) {
            return *id;
        }
        let described = &interfaces[index as usize];
        let name = described.name.clone();
        let role = self
            .roles
            .get(&name)
            .copied()
            .unwrap_or_else(|| TapRole::from_interface_name(&name));
        let id = self.interfaces.len();
        self.interfaces.push(InputInterface {
            id,
            file,
            index,
            name,
            link_type: described.link_type,
            snaplen: described.snaplen,
            role,
        });
        self.counts.push(InterfaceCounts::default());
        self.tap_cache.push([None; 3]);
        if self.by_file_index.len() <= file {
            self.by_file_index.resize(file + 1, Vec::new());
        }
        let ids = &mut self.by_file_index[file];
        // Indexes are below the reader's interface count.
        if ids.len() <= index as usize {
            ids.resize(index as usize + 1, None);
        }
        ids[index as usize] = Some(id);
        id
    }

    fn ring_order(
        &mut self,
        files: &[PathBuf],
        retire_timeout_ns: u64,
        seed: u64,
    ) -> Result<(), OfflineError<S::Error>> {
        let mut by_interface: HashMap<usize, Vec<OwnedPacket>> = HashMap::new();
        for (file, path) in files.iter().enumerate() {
            let mut input = CaptureFile::open(path).map_err(OfflineError::Read)?;
            while let Some(packet) = self.read_owned(file, &mut input)? {
                by_interface.entry(packet.interface).or_default().push(packet);
            }
        }
        // Blocks: (close time, shuffle key, interface, packets).
        let mut blocks: Vec<(u64, u64, usize, Vec<OwnedPacket>)> = Vec::new();
        for (interface, mut packets) in by_interface {
            packets.sort_by_key(|p| (p.timestamp_ns, p.position));
            let mut block: Vec<OwnedPacket> = Vec::new();
            let mut opened = 0;
            for packet in packets {
                if !block.is_empty() && packet.timestamp_ns >= opened + retire_timeout_ns {
                    let close = opened + retire_timeout_ns;
                    blocks.push((
                        close,
                        mix(seed ^ interface as u64 ^ close),
                        interface,
                        std::mem::take(&mut block),
                    ));
                }
                if block.is_empty() {
                    opened = packet.timestamp_ns;
                }
                block.push(packet);
            }
            if !block.is_empty() {
                let close = opened + retire_timeout_ns;
                blocks.push((close, mix(seed ^ interface as u64 ^ close), interface, block));
            }
        }
        blocks.sort_by_key(|(close, shuffle, interface, _)| (*close, *shuffle, *interface));
        for (close, _, _, packets) in blocks {
            for packet in &packets {
                self.process(&packet.view());
            }
            self.sieve.advance(close.saturating_sub(retire_timeout_ns));
            self.release_and_emit()?;
        }
        Ok(())
    }

    /// Reads the next packet of `input` into an owned packet, registering
    /// its interface on first sight.
    fn read_owned(
        &mut self,
        file: usize,
        input: &mut CaptureFile,
    ) -> Result<Option<OwnedPacket>, OfflineError<S::Error>> {
        let position = input.packets_read();
        let Some(packet) = input.next_packet().map_err(OfflineError::Read)? else {
            return Ok(None);
        };
        let FilePacket {
            interface: index,
            timestamp_ns,
            original_len,
            data,
            link,
            direction,
            packet_type,
        } = packet;
        let data = data.to_vec();
        let interface = self.interface_id(file, input.interfaces(), index);
        Ok(Some(OwnedPacket {
            interface,
            position,
            timestamp_ns,
            original_len,
            data,
            link,
            direction,
            packet_type,
        }))
    }

    fn process(&mut self, packet: &PacketView<'_>) {
        let interface = &self.interfaces[packet.interface];
        self.counts[packet.interface].captured += 1;
        self.last_timestamp_ns = self.last_timestamp_ns.max(packet.timestamp_ns);
        let direction = match packet.direction {
            Some(Direction::Inbound) => TapDirection::Incoming,
            Some(Direction::Outbound) => TapDirection::Outgoing,
            None => TapDirection::Unknown,
        };
        let cached = &mut self.tap_cache[packet.interface][direction as usize];
        let tap = *cached.get_or_insert_with(|| {
            self.registry
                .intern(&interface.name, interface.role, direction)
                .unwrap_or(TapPoint {
                    // Past 65535 taps every further one shares the last id.
                    id: flow::TapId(u16::MAX - 1),
                    role: interface.role,
                    direction,
                })
        });
        let meta = CopyMeta {
            interface: packet.interface,
            position: packet.position,
            original_len: packet.original_len,
            direction: packet.direction,
            packet_type: packet.packet_type,
        };
        let Some(link) = link_layer(packet.link, packet.data) else {
            // A link type the parser does not know: counted as malformed.
            let copy = CapturedCopy {
                bytes: &[],
                link: LinkLayer::Ethernet,
                vlan: None,
                tap,
                timestamp_ns: packet.timestamp_ns,
            };
            let _ = self.sieve.process(&copy, meta);
            self.counts[packet.interface].malformed += 1;
            return;
        };
        let copy = CapturedCopy {
            bytes: packet.data,
            link,
            vlan: None,
            tap,
            timestamp_ns: packet.timestamp_ns,
        };
        match self.sieve.process(&copy, meta) {
            Outcome::Deliver { meta, delivery } => {
                let data = self.bytes.store(packet.data);
                self.queue(NOW, meta, packet.timestamp_ns, data, tap, delivery);
            }
            Outcome::Duplicate(meta, copy) => {
                self.counts[meta.interface].duplicates += 1;
                if self.sink.wants_suppressed() {
                    let flow = self.sieve.canonical(&copy);
                    self.sink.suppressed(&self.interfaces[meta.interface], &copy, &flow);
                }
            }
            Outcome::Malformed(meta, _) => self.counts[meta.interface].malformed += 1,
            Outcome::Held => {}
        }
    }

    /// Queues the released deliveries for output, and tells the sink of
    /// the suppressed holds.
    /// Empties both lists, for the next ends.
    fn queue_released(&mut self, released: &mut Vec<ReleasedCopy>, suppressed: &mut Vec<(CopyMeta, SuppressedCopy)>) {
        for (meta, timestamp_ns, data, tap, delivery) in released.drain(..) {
            self.queue(RELEASED, meta, timestamp_ns, data, tap, delivery);
        }
        let notices = self.sink.wants_suppressed();
        for (meta, copy) in suppressed.drain(..) {
            self.counts[meta.interface].duplicates += 1;
            if notices {
                let flow = self.sieve.canonical(&copy);
                self.sink.suppressed(&self.interfaces[meta.interface], &copy, &flow);
            }
        }
    }

    /// Queues a delivery on output stream `stream` ([`NOW`] or [`RELEASED`]).
    fn queue(
        &mut self,
        stream: usize,
        meta: CopyMeta,
        timestamp_ns: u64,
        data: StoredBytes,
        tap: TapPoint,
        delivery: Delivery,
    ) {
        let pending = Pending {
            meta,
            timestamp_ns,
            data,
            tap,
            delivery,
        };
        let slot = match self.free_pending.pop() {
            Some(slot) => {
                self.pending[slot] = Some(pending);
                slot
            }
            None => {
                self.pending.push(Some(pending));
                self.pending.len() - 1
            }
        };
        self.output[stream].push((timestamp_ns, meta.interface, meta.position, slot));
    }

    /// Releases the holds the watermark allows, then emits every queued
    /// delivery that nothing still to come can precede.
    fn release_and_emit(&mut self) -> Result<(), OfflineError<S::Error>> {
        let mut released = std::mem::take(&mut self.released);
        let mut suppressed = std::mem::take(&mut self.suppressed);
        let bytes = &mut self.bytes;
        self.sieve
            .release_each(|end| collect_end(end, bytes, &mut released, &mut suppressed));
        self.queue_released(&mut released, &mut suppressed);
        self.released = released;
        self.suppressed = suppressed;
        let horizon = self
            .sieve
            .shared()
            .low_watermark()
            .min(self.sieve.oldest_held_ns().unwrap_or(u64::MAX));
        self.emit_before(Some(horizon))
    }

    /// Emits the queued deliveries with a timestamp before `horizon`
    /// (every one if `None`), in output order.
    fn emit_before(&mut self, horizon: Option<u64>) -> Result<(), OfflineError<S::Error>> {
        loop {
            let stream = match (self.output[NOW].peek(), self.output[RELEASED].peek()) {
                (Some(now), Some(released)) if released < now => RELEASED,
                (Some(_), _) => NOW,
                (None, Some(_)) => RELEASED,
                (None, None) => break,
            };
            let Some((timestamp_ns, _, _, slot)) = self.output[stream].peek() else {
                break;
            };
            if horizon.is_some_and(|horizon| timestamp_ns >= horizon) {
                break;
            }
            self.output[stream].pop();
            let pending = self.pending[slot].take().expect("a queued delivery is pending");
            self.free_pending.push(slot);
            self.counts[pending.meta.interface].delivered += 1;
            let packet = DeliveredPacket {
                interface: &self.interfaces[pending.meta.interface],
                timestamp_ns: pending.timestamp_ns,
                original_len: pending.meta.original_len,
                data: self.bytes.bytes(pending.data),
                direction: pending.meta.direction,
                packet_type: pending.meta.packet_type,
                tap: pending.tap,
                delivery: pending.delivery,
            };
            let delivered = self.sink.deliver(&packet).map_err(OfflineError::Sink);
            self.bytes.release(pending.data);
            delivered?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OfflineError<S::Error>> {
        let mut released = std::mem::take(&mut self.released);
        let mut suppressed = std::mem::take(&mut self.suppressed);
        let bytes = &mut self.bytes;
        self.sieve
            .finish_each(|end| collect_end(end, bytes, &mut released, &mut suppressed));
        self.queue_released(&mut released, &mut suppressed);
        self.released = released;
        self.suppressed = suppressed;
        self.emit_before(None)
    }

    fn report(&self) -> OfflineReport {
        OfflineReport {
            interfaces: self.interfaces.clone(),
            counts: self.counts.clone(),
            dedup: self.sieve.counters().clone(),
            nat_bindings: self.sieve.shared().nat().learned(),
            taps: self.registry.snapshot().iter().map(flow::TapInfo::label).collect(),
            last_timestamp_ns: self.last_timestamp_ns,
        }
    }
}

/// A released copy on its way to the output queue.
type ReleasedCopy = (CopyMeta, u64, StoredBytes, TapPoint, Delivery);

/// Sorts the end of a hold into the released and the suppressed.
fn collect_end(
    end: HoldEnd<'_, CopyMeta>,
    bytes: &mut PacketStore,
    released: &mut Vec<ReleasedCopy>,
    suppressed: &mut Vec<(CopyMeta, SuppressedCopy)>,
) {
    match end {
        HoldEnd::Delivered(r) => released.push((r.meta, r.timestamp_ns, bytes.store(r.bytes), r.tap, r.delivery)),
        HoldEnd::Suppressed { meta, copy } => suppressed.push((meta, copy)),
    }
}

/// Where the parser starts in a record of link `link`; `None` for link
/// types it does not know.
fn link_layer(link: LinkKind, data: &[u8]) -> Option<LinkLayer> {
    match link {
        LinkKind::Ethernet => Some(LinkLayer::Ethernet),
        LinkKind::LinuxSll(header) | LinkKind::LinuxSll2(header) => Some(LinkLayer::Network {
            ethertype: header.protocol,
            offset: header.payload_offset,
        }),
        LinkKind::Raw => {
            let ethertype = match data.first()? >> 4 {
                4 => 0x0800,
                6 => 0x86dd,
                _ => return None,
            };
            Some(LinkLayer::Network { ethertype, offset: 0 })
        }
        LinkKind::Other(_) => None,
    }
}

/// A 64-bit mixer (splitmix64's finalizer), for the shuffle of ring order.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is handed: delivered timestamps, and the
    /// deliveries made when it was told they are done.
    #[derive(Default)]
    struct Seen {
        delivered: Vec<u64>,
        done: Vec<(u64, usize)>,
    }

    impl DeliverySink for Seen {
        type Error = std::convert::Infallible;

        fn deliver(&mut self, packet: &DeliveredPacket<'_>) -> Result<(), Self::Error> {
            assert!(self.done.is_empty(), "a delivery after the end");
            self.delivered.push(packet.timestamp_ns);
            Ok(())
        }

        fn deliveries_done(&mut self, last_timestamp_ns: u64) {
            self.done.push((last_timestamp_ns, self.delivered.len()));
        }
    }

    /// An Ethernet, IPv4, UDP frame from port `port`.
    fn udp_frame(port: u16) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = 20u16 + 8 + 4;
        frame.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&[172, 17, 0, 2, 172, 17, 0, 3]);
        frame.extend_from_slice(&port.to_be_bytes());
        frame.extend_from_slice(&53u16.to_be_bytes());
        frame.extend_from_slice(&12u16.to_be_bytes());
        frame.extend_from_slice(&[0, 0, b'p', b'i', b'n', b'g']);
        frame
    }

    /// A classic pcap file (microseconds, Ethernet) of `count` UDP frames a
    /// millisecond apart, cut `cut` bytes short.
    fn pcap_file(name: &str, count: u16, cut: usize) -> PathBuf {
        let mut bytes = Vec::new();
        for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        for index in 0..count {
            let frame = udp_frame(10_000 + index);
            let micros = u32::from(index) * 1_000;
            for word in [1_800_000_000u32, micros, frame.len() as u32, frame.len() as u32] {
                bytes.extend_from_slice(&word.to_le_bytes());
            }
            bytes.extend_from_slice(&frame);
        }
        bytes.truncate(bytes.len() - cut);
        let path = std::env::temp_dir().join(format!("ringsieve-offline-{}-{name}.pcap", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn config() -> OfflineConfig {
        OfflineConfig {
            sieve: SieveConfig::default(),
            roles: Vec::new(),
            order: ReadOrder::Timestamp,
        }
    }

    #[test]
    fn the_sink_is_told_once_after_the_last_delivery() {
        let path = pcap_file("whole", 50, 0);
        let mut sink = Seen::default();
        let (report, result) = run(std::slice::from_ref(&path), &config(), &mut sink);
        std::fs::remove_file(&path).unwrap();
        assert!(result.is_ok());
        assert_eq!(sink.delivered.len(), 50);
        assert_eq!(sink.done, [(report.last_timestamp_ns, 50)]);
        assert_eq!(report.last_timestamp_ns, 1_800_000_000 * 1_000_000_000 + 49_000_000);
    }

    #[test]
    fn the_sink_is_told_after_a_cut_file_too() {
        let path = pcap_file("cut", 20, 5);
        let mut sink = Seen::default();
        let (report, result) = run(std::slice::from_ref(&path), &config(), &mut sink);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(result, Err(OfflineError::Read(ReadError::Truncated { .. }))));
        assert_eq!(sink.delivered.len(), 19);
        assert_eq!(sink.done, [(report.last_timestamp_ns, 19)]);
    }
}
