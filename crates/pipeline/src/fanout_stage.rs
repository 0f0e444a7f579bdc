//! The last stage of a capture thread: packets the dedup delivered (or every
//! copy, with the dedup off) go to a [`Fanout`] towards the worker threads,
//! with their interface named in the shared [`InterfaceTable`].
//!
//! [`LiveFanout`] takes the dedup stage's deliveries; [`EveryCopy`] takes
//! the ring's packets directly, computing the flow key and hash the dedup
//! would have given (without NAT: with the dedup off, no binding is known).
//! What each handed over is summed into a shared [`FanoutReport`] at
//! finish.

use std::sync::{Arc, Mutex, PoisonError};

use af_packet::{Direction, Interface, Packet};
use flow::{Delivery, FlowHasher, FlowKey, FlowTuple, SuppressedCopy, TapDirection, TapPoint, TapRegistry};

use crate::by_ifindex::ByIfindex;
use crate::clock::wall_clock_ns;
use crate::dedup_stage::{DeliveredSink, LivePacket};
use crate::host_book::HostBook;
use crate::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};
use crate::live::LiveSnapshot;
use crate::worker::{PacketMeta, SuppressedNotice};
use crate::worker_pool::{Fanout, FanoutReport};
use crate::PacketSink;

/// A capture thread's fan-out to the workers.
pub struct LiveFanout {
    fanout: Option<Fanout>,
    interfaces: Arc<InterfaceTable>,
    /// ifindex to interface id.
    ids: ByIfindex<InterfaceId>,
    book: Arc<HostBook>,
    report: Arc<Mutex<FanoutReport>>,
    /// The clock batches carry: wall time, or (replays faster than real
    /// time) the latest packet timestamp handed over.
    packet_clock: Option<u64>,
}

impl LiveFanout {
    /// Hands packets to `fanout`, naming interfaces with their roles and
    /// containers from `book`, summing its report into `report` at finish.
    pub fn new(fanout: Fanout, book: Arc<HostBook>, report: Arc<Mutex<FanoutReport>>) -> Self {
        let interfaces = Arc::clone(fanout.interfaces());
        Self {
            fanout: Some(fanout),
            interfaces,
            ids: ByIfindex::default(),
            book,
            report,
            packet_clock: None,
        }
    }

    /// Batches carry the latest packet timestamp as their clock instead of
    /// the wall clock: for traffic replayed faster than it was captured.
    pub fn with_packet_clock(mut self) -> Self {
        self.packet_clock = Some(0);
        self
    }

    fn clock_ns(&self) -> u64 {
        self.packet_clock.unwrap_or_else(wall_clock_ns)
    }

    /// The id of `interface` in the shared table.
    pub fn interface_id(&mut self, interface: &Interface) -> InterfaceId {
        if let Some(id) = self.ids.get(interface.ifindex()) {
            return id;
        }
        let known = self.book.get(interface.ifindex(), interface.name());
        let id = self.interfaces.intern(InterfaceInfo {
            name: interface.name().to_owned(),
            role: known.role,
            ifindex: interface.ifindex(),
            link_type: 1,
            container: known.container,
        });
        self.ids.set(interface.ifindex(), id);
        id
    }

    fn deliver(&mut self, meta: PacketMeta, data: &[u8]) {
        if let Some(clock) = &mut self.packet_clock {
            *clock = (*clock).max(meta.timestamp_ns);
        }
        if let Some(fanout) = &mut self.fanout {
            fanout.deliver(meta, data);
        }
    }
}

impl DeliveredSink for LiveFanout {
    fn delivered(&mut self, packet: &LivePacket<'_>) {
        let interface = self.interface_id(packet.interface);
        let mut meta = PacketMeta::new(packet.timestamp_ns, packet.original_len, interface, packet.tap);
        meta.packet_type = Some(packet.packet_type);
        meta.vlan = packet.vlan;
        meta.flow = packet.delivery.flow;
        meta.flow_hash = packet.delivery.flow_hash;
        meta.nat = packet.delivery.nat;
        meta.overlap_different_data = packet.delivery.overlap_different_data;
        self.deliver(meta, packet.data);
    }

    fn wants_suppressed(&self) -> bool {
        self.fanout.as_ref().is_some_and(Fanout::wants_notices)
    }

    fn interface_closed(&mut self, interface: &Interface) {
        self.ids.remove(interface.ifindex());
    }

    fn interface_updated(&mut self, interface: &Interface) {
        // Interned again, with its new role and container, at its next
        // packet.
        self.ids.remove(interface.ifindex());
    }

    fn live_counts(&self, out: &mut LiveSnapshot) {
        let Some(fanout) = &self.fanout else {
            return;
        };
        for (index, counts) in fanout.report().interfaces.iter().enumerate() {
            let id = InterfaceId(index as u16);
            if counts.delivered == 0 && counts.drops.total() == 0 {
                continue;
            }
            let entry = out.entry(self.interfaces.get(id).name.clone()).or_default();
            entry.delivered += counts.delivered;
            entry.queue_full += counts.drops.queue_full;
            entry.worker_stopped += counts.drops.worker_stopped;
        }
    }

    fn suppressed(&mut self, interface: &Interface, copy: &SuppressedCopy, flow: &Delivery) {
        let interface = self.interface_id(interface);
        if let Some(fanout) = &mut self.fanout {
            fanout.suppressed(SuppressedNotice {
                tap: copy.tap,
                interface,
                timestamp_ns: copy.timestamp_ns,
                flow: flow.flow,
                flow_hash: flow.flow_hash,
            });
        }
    }

    fn end_of_turn(&mut self) {
        let clock = self.clock_ns();
        if let Some(fanout) = &mut self.fanout {
            fanout.flush(clock);
        }
    }

    fn finish(&mut self) {
        let clock = self.clock_ns();
        if let Some(fanout) = self.fanout.take() {
            let report = fanout.finish(clock);
            self.report.lock().unwrap_or_else(PoisonError::into_inner).add(&report);
        }
    }
}

/// With the dedup off: every copy the ring gives goes to the workers, with
/// the flow key of its own 5-tuple.
pub struct EveryCopy {
    inner: LiveFanout,
    hasher: FlowHasher,
    registry: Arc<TapRegistry>,
    /// ifindex to (incoming, outgoing) tap points.
    taps: ByIfindex<(TapPoint, TapPoint)>,
}

impl EveryCopy {
    /// Every copy to `inner`; flows hashed by `hasher` (the same keys in
    /// every capture thread, so a flow has one worker), tap points interned
    /// in `registry`.
    pub fn new(inner: LiveFanout, hasher: FlowHasher, registry: Arc<TapRegistry>) -> Self {
        Self {
            inner,
            hasher,
            registry,
            taps: ByIfindex::default(),
        }
    }

    fn tap(&mut self, interface: &Interface, direction: Direction) -> TapPoint {
        let (incoming, outgoing) = match self.taps.get(interface.ifindex()) {
            Some(pair) => pair,
            None => {
                let role = self.inner.book.get(interface.ifindex(), interface.name()).role;
                let intern = |direction| {
                    self.registry
                        .intern(interface.name(), role, direction)
                        .unwrap_or(TapPoint {
                            id: flow::TapId(u16::MAX - 1),
                            role,
                            direction,
                        })
                };
                let pair = (intern(TapDirection::Incoming), intern(TapDirection::Outgoing));
                self.taps.set(interface.ifindex(), pair);
                pair
            }
        };
        match direction {
            Direction::Inbound => incoming,
            Direction::Outbound => outgoing,
        }
    }
}

impl PacketSink for EveryCopy {
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>) {
        let tap = self.tap(interface, packet.packet_type().direction());
        let id = self.inner.interface_id(interface);
        let mut meta = PacketMeta::new(packet.timestamp_ns(), packet.original_len(), id, tap);
        meta.packet_type = Some(packet.packet_type());
        meta.vlan = packet.vlan();
        let vlan = packet.vlan().map(|tag| (tag.tpid, tag.tci));
        let tuple = FlowTuple::of_frame(packet.data(), vlan);
        match tuple {
            Some(tuple) => {
                let hash = self.hasher.symmetric(&tuple);
                meta.flow = Some(FlowKey { tuple, hash });
                meta.flow_hash = hash;
            }
            None => meta.flow_hash = self.hasher.link_symmetric(packet.data()),
        }
        self.inner.deliver(meta, packet.data());
    }

    fn end_of_turn(&mut self) {
        DeliveredSink::end_of_turn(&mut self.inner);
    }

    fn finish(&mut self) {
        DeliveredSink::finish(&mut self.inner);
    }

    fn interface_closed(&mut self, interface: &Interface) {
        self.taps.remove(interface.ifindex());
        DeliveredSink::interface_closed(&mut self.inner, interface);
    }

    fn interface_updated(&mut self, interface: &Interface) {
        self.taps.remove(interface.ifindex());
        DeliveredSink::interface_updated(&mut self.inner, interface);
    }

    fn live_counts(&self, out: &mut LiveSnapshot) {
        DeliveredSink::live_counts(&self.inner, out);
    }
}
