//! What an IDS worker thread receives: batches of delivered packets with
//! their metadata, and the [`Worker`] trait a library user implements to
//! run detection on them.
//!
//! Every packet of one connection, both directions, whatever interface or
//! NAT side it was captured on, reaches the same worker: the fan-out picks
//! the worker by the canonical symmetric flow hash. A batch also carries
//! notices of the copies the dedup suppressed (when the pool is configured
//! to send them), so a flow tracker can tell where a flow was seen and how
//! many copies were dropped as duplicates.
//!
//! # Example
//!
//! A worker that counts the bytes of each container-side flow:
//!
//! ```
//! use std::collections::HashMap;
//! use flow::FlowTuple;
//! use pipeline::worker::{PacketBatch, Worker};
//!
//! #[derive(Default)]
//! struct ByteCounter {
//!     bytes: HashMap<FlowTuple, u64>,
//! }
//!
//! impl Worker for ByteCounter {
//!     fn batch(&mut self, batch: &PacketBatch) {
//!         for packet in batch.packets() {
//!             if let Some(flow) = packet.meta.flow {
//!                 // Canonical: in the container's address space when NAT
//!                 // translated the packet and its binding is known.
//!                 *self.bytes.entry(flow.tuple).or_default() += packet.data.len() as u64;
//!             }
//!             let _interface = &batch.interface(packet.meta.interface).name;
//!         }
//!     }
//! }
//!
//! let worker = ByteCounter::default();
//! # let _ = worker;
//! ```

use std::sync::Arc;

use af_packet::{PacketType, VlanTag};
use flow::{FlowKey, NatTranslation, TapDirection, TapPoint};

use crate::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};

/// The metadata of one delivered packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Kernel timestamp (or the file's), nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// Length on the wire.
    pub original_len: u32,
    /// The interface it was captured on.
    pub interface: InterfaceId,
    /// The tap point (interface role and direction) of the copy delivered.
    pub tap: TapPoint,
    /// The kernel's packet type, when known.
    pub packet_type: Option<PacketType>,
    /// The VLAN tag the kernel reported out of band.
    pub vlan: Option<VlanTag>,
    /// The canonical flow (container-side 5-tuple in the packet's
    /// direction when a NAT binding is known); `None` for non-IP frames.
    pub flow: Option<FlowKey>,
    /// The symmetric flow hash the fan-out chose the worker by.
    pub flow_hash: u64,
    /// The NAT binding of the packet's flow, in its direction, when known.
    pub nat: Option<NatTranslation>,
    /// A TCP segment that overlaps bytes seen at another tap point with
    /// different data.
    pub overlap_different_data: bool,
    /// Where its bytes are in the batch.
    pub(crate) offset: u32,
    /// How many bytes were captured.
    pub(crate) captured_len: u32,
}

impl PacketMeta {
    /// The metadata of a packet with no flow, NAT or flags yet (set the
    /// public fields after).
    pub fn new(timestamp_ns: u64, original_len: u32, interface: InterfaceId, tap: TapPoint) -> Self {
        Self {
            timestamp_ns,
            original_len,
            interface,
            tap,
            packet_type: None,
            vlan: None,
            flow: None,
            flow_hash: 0,
            nat: None,
            overlap_different_data: false,
            offset: 0,
            captured_len: 0,
        }
    }

    /// The direction on its interface.
    pub fn direction(&self) -> TapDirection {
        self.tap.direction
    }
}

/// A copy the dedup suppressed, attributed to its canonical flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuppressedNotice {
    /// Where the copy was captured.
    pub tap: TapPoint,
    /// The interface.
    pub interface: InterfaceId,
    /// Its timestamp.
    pub timestamp_ns: u64,
    /// Its canonical flow, when it has one.
    pub flow: Option<FlowKey>,
    /// The symmetric flow hash the fan-out chose the worker by.
    pub flow_hash: u64,
}

/// One delivered packet: its metadata and bytes.
#[derive(Clone, Copy, Debug)]
pub struct BatchPacket<'a> {
    /// Metadata.
    pub meta: &'a PacketMeta,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Packets handed to a worker at once, in the order their capture thread
/// delivered them.
pub struct PacketBatch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) packets: Vec<PacketMeta>,
    pub(crate) suppressed: Vec<SuppressedNotice>,
    /// The producer's clock when it handed the batch over.
    pub(crate) clock_ns: u64,
    pub(crate) interfaces: Arc<InterfaceTable>,
}

impl PacketBatch {
    /// An empty batch naming interfaces from `interfaces`.
    pub fn new(interfaces: Arc<InterfaceTable>) -> Self {
        Self {
            bytes: Vec::new(),
            packets: Vec::new(),
            suppressed: Vec::new(),
            clock_ns: 0,
            interfaces,
        }
    }

    /// Appends a packet: `meta`'s position fields are set here.
    pub fn push(&mut self, mut meta: PacketMeta, data: &[u8]) {
        meta.offset = self.bytes.len() as u32;
        meta.captured_len = data.len() as u32;
        self.bytes.extend_from_slice(data);
        self.packets.push(meta);
    }

    /// Appends a suppressed-copy notice.
    pub fn push_suppressed(&mut self, notice: SuppressedNotice) {
        self.suppressed.push(notice);
    }

    /// The delivered packets.
    pub fn packets(&self) -> impl ExactSizeIterator<Item = BatchPacket<'_>> + '_ {
        self.packets.iter().map(|meta| BatchPacket {
            meta,
            data: &self.bytes[meta.offset as usize..(meta.offset + meta.captured_len) as usize],
        })
    }

    /// The copies suppressed as duplicates, routed to this worker by their
    /// canonical flow hash (only when the pool sends notices).
    pub fn suppressed(&self) -> &[SuppressedNotice] {
        &self.suppressed
    }

    /// The interface of `id`.
    pub fn interface(&self, id: InterfaceId) -> &InterfaceInfo {
        self.interfaces.get(id)
    }

    /// The producer's clock when it handed the batch over: wall-clock time
    /// live, the time of the last packet read from the files offline.
    pub fn clock_ns(&self) -> u64 {
        self.clock_ns
    }

    /// Delivered packets in it.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether it has neither packets nor notices.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty() && self.suppressed.is_empty()
    }

    /// Bytes of packet data in it.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.packets.clear();
        self.suppressed.clear();
        self.clock_ns = 0;
    }
}

/// An IDS worker: owns the flows the fan-out sends it, on a thread of its
/// own.
pub trait Worker: Send {
    /// One batch of packets, in the order they were delivered.
    fn batch(&mut self, batch: &PacketBatch);

    /// Time passes with no batch: `clock_ns` is wall-clock time live, the
    /// last packet time offline. The place for timeouts.
    fn tick(&mut self, clock_ns: u64) {
        let _ = clock_ns;
    }

    /// Nothing more will come; `clock_ns` is the capture's end.
    fn finish(&mut self, clock_ns: u64) {
        let _ = clock_ns;
    }
}

/// The worker that drops what it receives: the pipeline's own cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullWorker;

impl Worker for NullWorker {
    fn batch(&mut self, batch: &PacketBatch) {
        std::hint::black_box(batch.len());
    }
}

impl<W: Worker + ?Sized> Worker for Box<W> {
    fn batch(&mut self, batch: &PacketBatch) {
        (**self).batch(batch);
    }

    fn tick(&mut self, clock_ns: u64) {
        (**self).tick(clock_ns);
    }

    fn finish(&mut self, clock_ns: u64) {
        (**self).finish(clock_ns);
    }
}

/// Several workers on one thread, each given every batch in turn (the flow
/// tracker and the pcapng writer, say).
impl<A: Worker, B: Worker> Worker for (A, B) {
    fn batch(&mut self, batch: &PacketBatch) {
        self.0.batch(batch);
        self.1.batch(batch);
    }

    fn tick(&mut self, clock_ns: u64) {
        self.0.tick(clock_ns);
        self.1.tick(clock_ns);
    }

    fn finish(&mut self, clock_ns: u64) {
        self.0.finish(clock_ns);
        self.1.finish(clock_ns);
    }
}

impl<W: Worker> Worker for Vec<W> {
    fn batch(&mut self, batch: &PacketBatch) {
        for worker in self.iter_mut() {
            worker.batch(batch);
        }
    }

    fn tick(&mut self, clock_ns: u64) {
        for worker in self.iter_mut() {
            worker.tick(clock_ns);
        }
    }

    fn finish(&mut self, clock_ns: u64) {
        for worker in self.iter_mut() {
            worker.finish(clock_ns);
        }
    }
}
