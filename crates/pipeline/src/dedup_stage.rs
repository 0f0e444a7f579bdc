//! The dedup stage of live capture: a [`PacketSink`] that runs every packet a
//! capture thread reads through its [`Sieve`] and hands the delivered ones,
//! straight from the ring or out of the hold queue, to a [`DeliveredSink`].
//!
//! # The watermark of a capture thread
//!
//! A held copy is released once every capture thread has read a window past
//! it. After each turn of its loop a thread publishes how far it has read:
//! the kernel hands a block over at the latest a retire timeout after its
//! first packet, so every packet older than `now - retire timeout` that is
//! not in a ring that still had blocks to give this turn has been read. A
//! ring that gave packets this turn may have more queued: it holds the
//! watermark at the last timestamp read from it. Kernel timestamps are
//! CLOCK_REALTIME, stamped when the packet reached the device, which can
//! precede the ring write by queueing: [`WATERMARK_SLACK_NS`] covers it.
//!
//! # Stopping
//!
//! On stop each thread drains its rings, publishes that it has read
//! everything, and releases its holds as the other threads do the same
//! (bounded by [`FINISH_WAIT`]), so a copy held here is not delivered while a
//! better one is still unread in another thread's ring.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use af_packet::{Direction, Interface, InterfaceRole, Packet, PacketType, VlanTag};
use flow::{
    CapturedCopy, Delivery, HoldEnd, LinkLayer, Outcome, Sieve, SieveCounters, SieveShared, SuppressedCopy,
    TapDirection, TapPoint, TapRegistry, TapRole,
};

use crate::by_ifindex::ByIfindex;
use crate::clock::wall_clock_ns;
use crate::host_book::HostBook;
use crate::live::LiveSnapshot;
use crate::PacketSink;

/// Margin below `now - retire timeout` for packets stamped before they
/// reached the ring.
pub const WATERMARK_SLACK_NS: u64 = 10_000_000;

/// Longest wait at stop for the other capture threads' watermarks.
pub const FINISH_WAIT: Duration = Duration::from_secs(2);

/// A delivered packet of live capture.
#[derive(Debug)]
pub struct LivePacket<'a> {
    /// The interface it was captured on.
    pub interface: &'a Interface,
    /// Kernel timestamp, nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// Length on the wire.
    pub original_len: u32,
    /// The captured bytes (the ring's, or the hold queue's copy).
    pub data: &'a [u8],
    /// The kernel's packet type.
    pub packet_type: PacketType,
    /// The VLAN tag the kernel reported out of band.
    pub vlan: Option<VlanTag>,
    /// The tap point.
    pub tap: TapPoint,
    /// Flow key and flags from the dedup.
    pub delivery: Delivery,
}

/// Where the dedup stage delivers.
pub trait DeliveredSink: Send {
    /// One delivered packet, valid only during the call.
    fn delivered(&mut self, packet: &LivePacket<'_>);

    /// Whether it wants [`DeliveredSink::suppressed`] calls (each costs a
    /// NAT lookup to put the copy in its container-side flow).
    fn wants_suppressed(&self) -> bool {
        false
    }

    /// `interface`'s ring closed.
    fn interface_closed(&mut self, interface: &Interface) {
        let _ = interface;
    }

    /// What discovery knows of `interface` changed.
    fn interface_updated(&mut self, interface: &Interface) {
        let _ = interface;
    }

    /// Adds what it counted per interface to a live snapshot.
    fn live_counts(&self, out: &mut LiveSnapshot) {
        let _ = out;
    }

    /// A copy of `interface` suppressed as a duplicate, with its canonical
    /// flow (only when [`DeliveredSink::wants_suppressed`]).
    fn suppressed(&mut self, interface: &Interface, copy: &SuppressedCopy, flow: &Delivery) {
        let _ = (interface, copy, flow);
    }

    /// The end of one turn of the capture loop.
    fn end_of_turn(&mut self) {}

    /// Nothing more will be delivered.
    fn finish(&mut self) {}
}

/// Per-interface counts of the dedup stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceDedup {
    /// Packets delivered from this interface.
    pub delivered: u64,
    /// Packets of this interface suppressed as duplicates.
    pub duplicates: u64,
    /// Packets of this interface that did not parse.
    pub malformed: u64,
}

/// What the dedup stages of every thread did, summed at their finish.
#[derive(Debug, Default)]
pub struct DedupReport {
    /// The engines' counters.
    pub counters: SieveCounters,
    /// By interface name.
    pub interfaces: HashMap<String, InterfaceDedup>,
}

/// The role the dedup gives an interface of role `role`.
pub fn tap_role(role: InterfaceRole) -> TapRole {
    match role {
        InterfaceRole::Uplink => TapRole::Uplink,
        InterfaceRole::Bridge => TapRole::Bridge,
        InterfaceRole::ContainerVeth => TapRole::ContainerVeth,
        InterfaceRole::Other => TapRole::Other,
    }
}

/// A held copy's metadata: enough to deliver it later.
#[derive(Clone, Copy, Debug)]
struct HeldMeta {
    interface: usize,
    original_len: u32,
    packet_type: PacketType,
    vlan: Option<VlanTag>,
}

/// An interface this stage has seen, with its two tap points.
struct KnownInterface {
    interface: Interface,
    incoming: TapPoint,
    outgoing: TapPoint,
    counts: InterfaceDedup,
    /// Last timestamp read from it in the current turn, if any.
    last_this_turn: Option<u64>,
    /// Its copies held now.
    held_now: u64,
}

/// The dedup stage of one capture thread.
pub struct DedupStage<D: DeliveredSink> {
    sieve: Sieve<HeldMeta>,
    registry: Arc<TapRegistry>,
    book: Arc<HostBook>,
    interfaces: Vec<KnownInterface>,
    /// ifindex to index in `interfaces`.
    by_ifindex: ByIfindex<usize>,
    retire_timeout_ns: u64,
    report: Arc<Mutex<DedupReport>>,
    inner: D,
}

impl<D: DeliveredSink> DedupStage<D> {
    /// A stage for one capture thread: its engine from `shared`, tap points
    /// interned in `registry`, interface roles from `book` (others
    /// are Other), rings whose longest retire timeout is
    /// `retire_timeout_ms`, counters summed into `report` at finish.
    pub fn new(
        shared: &Arc<SieveShared>,
        registry: Arc<TapRegistry>,
        book: Arc<HostBook>,
        retire_timeout_ms: u32,
        report: Arc<Mutex<DedupReport>>,
        inner: D,
    ) -> Result<Self, flow::TooManyThreads> {
        Ok(Self {
            sieve: shared.thread()?,
            registry,
            book,
            interfaces: Vec::new(),
            by_ifindex: ByIfindex::default(),
            retire_timeout_ns: u64::from(retire_timeout_ms) * 1_000_000,
            report,
            inner,
        })
    }

    fn interface_index(&mut self, interface: &Interface) -> usize {
        if let Some(index) = self.by_ifindex.get(interface.ifindex()) {
            return index;
        }
        let (incoming, outgoing) = self.tap_points(interface);
        let known = KnownInterface {
            interface: interface.clone(),
            incoming,
            outgoing,
            counts: InterfaceDedup::default(),
            last_this_turn: None,
            held_now: 0,
        };
        self.interfaces.push(known);
        let index = self.interfaces.len() - 1;
        self.by_ifindex.set(interface.ifindex(), index);
        index
    }

    /// The tap points of `interface`, by the role the book gives it.
    fn tap_points(&self, interface: &Interface) -> (TapPoint, TapPoint) {
        let role = self.book.get(interface.ifindex(), interface.name()).role;
        let intern = |direction| {
            self.registry
                .intern(interface.name(), role, direction)
                .unwrap_or(TapPoint {
                    id: flow::TapId(u16::MAX - 1),
                    role,
                    direction,
                })
        };
        (intern(TapDirection::Incoming), intern(TapDirection::Outgoing))
    }

    /// Releases what the watermark allows (everything, when `all`) and
    /// delivers it straight from the hold queue: no copy, no allocation.
    fn release(&mut self, all: bool) {
        let (interfaces, inner, sieve) = (&mut self.interfaces, &mut self.inner, &mut self.sieve);
        let notices = inner.wants_suppressed();
        let mut suppressed = Vec::new();
        let mut end_hold = |end: HoldEnd<'_, HeldMeta>| match end {
            HoldEnd::Suppressed { meta, copy } => {
                let known = &mut interfaces[meta.interface];
                known.counts.duplicates += 1;
                known.held_now = known.held_now.saturating_sub(1);
                if notices {
                    suppressed.push((meta.interface, copy));
                }
            }
            HoldEnd::Delivered(released) => {
                let meta = released.meta;
                let known = &mut interfaces[meta.interface];
                known.counts.delivered += 1;
                known.held_now = known.held_now.saturating_sub(1);
                inner.delivered(&LivePacket {
                    interface: &known.interface,
                    timestamp_ns: released.timestamp_ns,
                    original_len: meta.original_len,
                    data: released.bytes,
                    packet_type: meta.packet_type,
                    vlan: meta.vlan,
                    tap: released.tap,
                    delivery: released.delivery,
                });
            }
        };
        if all {
            sieve.finish_each(&mut end_hold);
        } else {
            sieve.release_each(&mut end_hold);
        }
        for (index, copy) in suppressed {
            let flow = self.sieve.canonical(&copy);
            self.inner.suppressed(&self.interfaces[index].interface, &copy, &flow);
        }
    }

    /// Adds this thread's counters, in total and per interface, to the
    /// shared report.
    fn publish_report(&mut self) {
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.counters.add(self.sieve.counters());
        for known in &self.interfaces {
            let entry = report.interfaces.entry(known.interface.name().to_owned()).or_default();
            entry.delivered += known.counts.delivered;
            entry.duplicates += known.counts.duplicates;
            entry.malformed += known.counts.malformed;
        }
    }
}

impl<D: DeliveredSink> PacketSink for DedupStage<D> {
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>) {
        let index = self.interface_index(interface);
        let known = &mut self.interfaces[index];
        let tap = match packet.packet_type().direction() {
            Direction::Inbound => known.incoming,
            Direction::Outbound => known.outgoing,
        };
        let timestamp_ns = packet.timestamp_ns();
        known.last_this_turn = Some(timestamp_ns);
        let vlan = packet.vlan();
        let copy = CapturedCopy {
            bytes: packet.data(),
            link: LinkLayer::Ethernet,
            vlan: vlan.map(|tag| (tag.tpid, tag.tci)),
            tap,
            timestamp_ns,
        };
        let meta = HeldMeta {
            interface: index,
            original_len: packet.original_len(),
            packet_type: packet.packet_type(),
            vlan,
        };
        match self.sieve.process(&copy, meta) {
            Outcome::Deliver { delivery, .. } => {
                known.counts.delivered += 1;
                self.inner.delivered(&LivePacket {
                    interface: &known.interface,
                    timestamp_ns,
                    original_len: meta.original_len,
                    data: packet.data(),
                    packet_type: meta.packet_type,
                    vlan,
                    tap,
                    delivery,
                });
            }
            Outcome::Held => known.held_now += 1,
            Outcome::Duplicate(_, copy) => {
                known.counts.duplicates += 1;
                if self.inner.wants_suppressed() {
                    let flow = self.sieve.canonical(&copy);
                    self.inner.suppressed(&known.interface, &copy, &flow);
                }
            }
            Outcome::Malformed(..) => known.counts.malformed += 1,
        }
    }

    fn engine_counts(&self) -> Option<SieveCounters> {
        Some(self.sieve.counters().clone())
    }

    fn live_counts(&self, out: &mut LiveSnapshot) {
        for known in &self.interfaces {
            let entry = out.entry(known.interface.name().to_owned()).or_default();
            entry.duplicates += known.counts.duplicates;
            entry.malformed += known.counts.malformed;
            entry.held += known.held_now;
        }
        self.inner.live_counts(out);
    }

    fn interface_updated(&mut self, interface: &Interface) {
        if let Some(index) = self.by_ifindex.get(interface.ifindex()) {
            let (incoming, outgoing) = self.tap_points(interface);
            let known = &mut self.interfaces[index];
            known.incoming = incoming;
            known.outgoing = outgoing;
        }
        self.inner.interface_updated(interface);
    }

    fn interface_closed(&mut self, interface: &Interface) {
        // Its counts stay; its ifindex may come back as another interface.
        if let Some(index) = self.by_ifindex.get(interface.ifindex()) {
            self.interfaces[index].last_this_turn = None;
        }
        self.by_ifindex.remove(interface.ifindex());
        self.inner.interface_closed(interface);
    }

    fn end_of_turn(&mut self) {
        let mut watermark = wall_clock_ns().saturating_sub(self.retire_timeout_ns + WATERMARK_SLACK_NS);
        for known in &mut self.interfaces {
            if let Some(last) = known.last_this_turn.take() {
                watermark = watermark.min(last);
            }
        }
        self.sieve.advance(watermark);
        self.release(false);
        self.inner.end_of_turn();
    }

    fn finish(&mut self) {
        // Everything this thread will ever read has been read.
        self.sieve.advance(u64::MAX - 1);
        let started = Instant::now();
        while self.sieve.held_now() > 0 && started.elapsed() < FINISH_WAIT {
            self.release(false);
            if self.sieve.held_now() > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.release(true);
        self.publish_report();
        self.inner.finish();
    }
}
