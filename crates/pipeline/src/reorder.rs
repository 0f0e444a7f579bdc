//! A worker adapter that hands its inner worker every packet in kernel
//! timestamp order, within a window.
//!
//! The dedup delivers a packet when its best copy is known, and that can be
//! later than packets captured after it: a reply's copy on a container veth
//! going out waits until the uplink's copy shows where it entered, while the
//! container's next packet, captured later on the same veth coming in, is
//! delivered at once. A flow tracker or a TCP reassembler that takes
//! packets in arrival order then sees a handshake's SYN+ACK after the data
//! that followed it. [`Reorder`] keeps what it receives for `window_ns` of
//! packet time (the dedup window plus the ring's retire timeout covers how
//! late the dedup can deliver) and releases packets, and the suppressed-copy
//! notices with them, in timestamp order once the newest packet seen, or
//! the clock of a tick, is `window_ns` past them.
//!
//! Packets and notices wait in two queues ([`OrderedQueue`]: a FIFO for
//! what comes in order, a heap for the rest), released by the smaller head,
//! which is the order of one queue of both (keys are unique). Each stream
//! is nearly in order by itself, but not against the other: the dedup
//! sends a copy's notice when it suppresses the copy, often well before
//! the packet that won (held, or waiting for the output order offline) is
//! delivered, so in one queue most packets landed behind later notices and
//! went to the heap (`OrderedQueue::pop` was 8 % of a `ringsieve read`
//! worker).
//!
//! The held packets' bytes are copied into a [`PacketStore`] (large reused
//! chunks), not a buffer each; its chunks take at most 1.25 times
//! `max_bytes`, so memory stays within 2.25 times `max_bytes` however out
//! of order packets leave (the free buffers it replaced could add 64 MiB).
//!
//! Bounded: past `max_packets` or `max_bytes` held, the oldest are released early
//! (counted). A packet older than one already released is passed on at
//! once (counted as late), never dropped.

use std::sync::Arc;

use flow::OrderedQueue;

use crate::worker::{PacketBatch, PacketMeta, SuppressedNotice, Worker};
use flow::packet_store::{PacketStore, StoredBytes};

/// Packets per batch handed to the inner worker.
const OUT_BATCH_PACKETS: usize = 64;

/// What a [`Reorder`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReorderCounters {
    /// Packets received.
    pub packets: u64,
    /// Packets that arrived after a later one and were put back in order.
    pub reordered: u64,
    /// Packets that arrived after a later one had already been released:
    /// passed on out of order.
    pub late: u64,
    /// Packets released before their window because too many were held.
    pub forced: u64,
}

/// One held packet or notice.
enum Held {
    Packet(PacketMeta, StoredBytes),
    Notice(SuppressedNotice),
}

/// Hands `W` the packets of its batches in timestamp order; see the module
/// documentation.
pub struct Reorder<W: Worker> {
    inner: W,
    window_ns: u64,
    max_packets: usize,
    max_bytes: usize,
    held_bytes: usize,
    /// (timestamp, arrival order, slot) of the held packets, earliest
    /// first: a FIFO for what arrives in order and a heap for the rest.
    packets: OrderedQueue<(u64, u64, usize)>,
    /// The same for the held notices; released merged with `packets` by
    /// their heads.
    notices: OrderedQueue<(u64, u64, usize)>,
    slots: Vec<Option<Held>>,
    free_slots: Vec<usize>,
    /// The held packets' bytes.
    bytes: PacketStore,
    arrivals: u64,
    /// The newest packet timestamp received.
    newest_ns: u64,
    /// The timestamp of the last packet released.
    released_ns: u64,
    /// The batch released packets are gathered in, made at the first
    /// batch received (it names the interface table).
    out: Option<PacketBatch>,
    counters: ReorderCounters,
}

impl<W: Worker> Reorder<W> {
    /// `inner` behind a window of `window_ns` holding at most `max_packets`
    /// packets and `max_bytes` bytes of them.
    pub fn new(inner: W, window_ns: u64, max_packets: usize, max_bytes: usize) -> Self {
        Self {
            inner,
            window_ns,
            max_packets: max_packets.max(1),
            max_bytes,
            held_bytes: 0,
            packets: OrderedQueue::default(),
            notices: OrderedQueue::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            bytes: PacketStore::with_limit(max_bytes.saturating_add(max_bytes / 4)),
            arrivals: 0,
            newest_ns: 0,
            released_ns: 0,
            out: None,
            counters: ReorderCounters::default(),
        }
    }

    /// The inner worker.
    pub fn inner(&self) -> &W {
        &self.inner
    }

    /// The inner worker, to change.
    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The counters.
    pub fn counters(&self) -> ReorderCounters {
        self.counters
    }

    /// Packets and notices held now.
    pub fn held(&self) -> usize {
        self.packets.len() + self.notices.len()
    }

    /// Starts over on a new clock once everything is released (after
    /// [`Worker::finish`]), keeping its buffers and counters: for replays
    /// and benchmarks. Does nothing while packets are held.
    pub fn restart(&mut self) {
        if self.packets.is_empty() && self.notices.is_empty() {
            self.newest_ns = 0;
            self.released_ns = 0;
        }
    }

    fn hold(&mut self, timestamp_ns: u64, held: Held) {
        let notice = matches!(held, Held::Notice(_));
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(held);
                slot
            }
            None => {
                self.slots.push(Some(held));
                self.slots.len() - 1
            }
        };
        let queue = if notice { &mut self.notices } else { &mut self.packets };
        queue.push((timestamp_ns, self.arrivals, slot));
        self.arrivals += 1;
    }

    /// The earliest held key, packet or notice.
    fn peek(&self) -> Option<(u64, u64, usize)> {
        match (self.packets.peek(), self.notices.peek()) {
            (Some(packet), Some(notice)) => Some(packet.min(notice)),
            (packet, notice) => packet.or(notice),
        }
    }

    /// The earliest held key, and whether it is a notice's (so it is taken
    /// from its queue without comparing the heads again).
    fn head(&self) -> Option<((u64, u64, usize), bool)> {
        match (self.packets.peek(), self.notices.peek()) {
            (Some(packet), Some(notice)) if notice < packet => Some((notice, true)),
            (Some(packet), _) => Some((packet, false)),
            (None, notice) => notice.map(|notice| (notice, true)),
        }
    }

    /// Hands over, in order, everything at or before `until_ns`, and the
    /// oldest beyond `max_packets`; with `flush`, passes what it gathered
    /// to the inner worker now.
    fn release(&mut self, until_ns: u64, flush: bool) {
        if self.out.is_none() {
            return;
        }
        while let Some(((timestamp_ns, _, slot), notice)) = self.head() {
            let due = timestamp_ns <= until_ns;
            let over = self.held() > self.max_packets || self.held_bytes > self.max_bytes;
            if !due && !over {
                break;
            }
            if notice {
                self.notices.pop();
            } else {
                self.packets.pop();
            }
            if !due {
                self.counters.forced += 1;
            }
            let Some(held) = self.slots.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.free_slots.push(slot);
            self.released_ns = self.released_ns.max(timestamp_ns);
            let Some(out) = self.out.as_mut() else {
                return;
            };
            match held {
                Held::Packet(meta, data) => {
                    self.held_bytes -= data.len();
                    out.push(meta, self.bytes.bytes(data));
                    self.bytes.release(data);
                }
                Held::Notice(notice) => out.push_suppressed(notice),
            }
            if out.len() >= OUT_BATCH_PACKETS {
                self.flush();
            }
        }
        if flush {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            if !out.is_empty() {
                out.clock_ns = self.released_ns;
                self.inner.batch(out);
                out.clear();
            }
        }
    }

    /// The clock the inner worker may see: never past a packet still held.
    fn inner_clock(&self, clock_ns: u64) -> u64 {
        match self.peek() {
            Some((oldest, _, _)) => clock_ns.min(oldest.saturating_sub(1)),
            None => clock_ns,
        }
    }
}

impl<W: Worker> Worker for Reorder<W> {
    /// Each packet in turn: held, then everything `window_ns` older than
    /// the newest released (so what is late does not depend on where
    /// batches end); the notices after the batch's packets.
    fn batch(&mut self, batch: &PacketBatch) {
        if self.out.is_none() {
            self.out = Some(PacketBatch::new(Arc::clone(&batch.interfaces)));
        }
        for packet in batch.packets() {
            let timestamp_ns = packet.meta.timestamp_ns;
            self.counters.packets += 1;
            if timestamp_ns < self.released_ns {
                // Its place has gone: on at once, out of order.
                self.counters.late += 1;
                if let Some(out) = self.out.as_mut() {
                    out.push(*packet.meta, packet.data);
                    if out.len() >= OUT_BATCH_PACKETS {
                        self.flush();
                    }
                }
                continue;
            }
            if timestamp_ns < self.newest_ns {
                self.counters.reordered += 1;
            }
            let data = self.bytes.store(packet.data);
            self.held_bytes += data.len();
            self.hold(timestamp_ns, Held::Packet(*packet.meta, data));
            self.newest_ns = self.newest_ns.max(timestamp_ns);
            self.release(self.newest_ns.saturating_sub(self.window_ns), false);
        }
        for notice in batch.suppressed() {
            self.hold(notice.timestamp_ns.max(self.released_ns), Held::Notice(*notice));
        }
        self.release(self.newest_ns.saturating_sub(self.window_ns), true);
    }

    fn tick(&mut self, clock_ns: u64) {
        self.release(clock_ns.saturating_sub(self.window_ns), true);
        let clock = self.inner_clock(clock_ns);
        self.inner.tick(clock);
    }

    fn finish(&mut self, clock_ns: u64) {
        self.release(u64::MAX, true);
        self.inner.finish(clock_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::{InterfaceId, InterfaceInfo, InterfaceTable};
    use flow::{TapDirection, TapId, TapPoint, TapRole};

    /// Records the timestamps it receives, and its ticks.
    #[derive(Default)]
    struct Seen {
        packets: Vec<u64>,
        notices: Vec<u64>,
        ticks: Vec<u64>,
        finished: bool,
    }

    impl Worker for Seen {
        fn batch(&mut self, batch: &PacketBatch) {
            self.packets.extend(batch.packets().map(|p| p.meta.timestamp_ns));
            self.notices.extend(batch.suppressed().iter().map(|n| n.timestamp_ns));
            for p in batch.packets() {
                assert_eq!(p.data, p.meta.timestamp_ns.to_be_bytes());
            }
        }

        fn tick(&mut self, clock_ns: u64) {
            self.ticks.push(clock_ns);
        }

        fn finish(&mut self, _clock_ns: u64) {
            self.finished = true;
        }
    }

    fn table() -> Arc<InterfaceTable> {
        let table = Arc::new(InterfaceTable::new());
        table.intern(InterfaceInfo {
            name: "veth1".into(),
            role: TapRole::ContainerVeth,
            ifindex: 5,
            link_type: 1,
            container: None,
        });
        table
    }

    fn batch(table: &Arc<InterfaceTable>, timestamps: &[u64]) -> PacketBatch {
        let mut batch = PacketBatch::new(Arc::clone(table));
        let tap = TapPoint {
            id: TapId(0),
            role: TapRole::ContainerVeth,
            direction: TapDirection::Incoming,
        };
        for &ts in timestamps {
            batch.push(PacketMeta::new(ts, 8, InterfaceId(0), tap), &ts.to_be_bytes());
        }
        batch
    }

    #[test]
    fn packets_come_out_in_timestamp_order_once_the_window_has_passed() {
        let table = table();
        let mut reorder = Reorder::new(Seen::default(), 10, 1000, usize::MAX);
        reorder.batch(&batch(&table, &[100, 104, 102]));
        assert!(reorder.inner().packets.is_empty(), "nothing is 10 past");
        reorder.batch(&batch(&table, &[101, 112]));
        // 112 - 10 = 102: 100, 101, 102 go.
        assert_eq!(reorder.inner().packets, [100, 101, 102]);
        reorder.tick(200);
        assert_eq!(reorder.inner().packets, [100, 101, 102, 104, 112]);
        assert_eq!(reorder.counters().reordered, 2);
        assert_eq!(reorder.counters().late, 0);
    }

    #[test]
    fn a_packet_older_than_one_released_is_passed_on_late() {
        let table = table();
        let mut reorder = Reorder::new(Seen::default(), 10, 1000, usize::MAX);
        reorder.batch(&batch(&table, &[100, 130]));
        assert_eq!(reorder.inner().packets, [100]);
        reorder.batch(&batch(&table, &[90]));
        assert_eq!(reorder.inner().packets, [100, 90]);
        assert_eq!(reorder.counters().late, 1);
        reorder.finish(0);
        assert_eq!(reorder.inner().packets, [100, 90, 130]);
        assert!(reorder.inner().finished);
    }

    #[test]
    fn where_batches_end_does_not_change_the_order() {
        let table = table();
        let timestamps = [100, 104, 102, 130, 95, 131, 128, 160, 140, 200, 171, 170];
        let mut whole = Reorder::new(Seen::default(), 10, 1000, usize::MAX);
        whole.batch(&batch(&table, &timestamps));
        whole.finish(0);
        for size in 1..timestamps.len() {
            let mut cut = Reorder::new(Seen::default(), 10, 1000, usize::MAX);
            for chunk in timestamps.chunks(size) {
                cut.batch(&batch(&table, chunk));
            }
            cut.finish(0);
            assert_eq!(cut.inner().packets, whole.inner().packets, "batches of {size}");
            assert_eq!(cut.counters(), whole.counters(), "batches of {size}");
        }
        // 95 comes after 130 released 100 to 104 ... and 170 after 171,
        // released as soon as it came (200 had come).
        assert_eq!(whole.counters().late, 2);
    }

    #[test]
    fn the_bound_releases_the_oldest_early() {
        let table = table();
        let mut reorder = Reorder::new(Seen::default(), 1_000, 2, usize::MAX);
        reorder.batch(&batch(&table, &[5, 3, 4, 1]));
        // A third held pushes out 3; 1 then comes after it, late.
        assert_eq!(reorder.inner().packets, [3, 1]);
        assert_eq!(reorder.counters().forced, 1);
        assert_eq!(reorder.counters().late, 1);
        assert_eq!(reorder.held(), 2);
    }

    #[test]
    fn the_byte_bound_releases_the_oldest_early() {
        let table = table();
        // Each test packet is 8 bytes: 16 bytes hold two.
        let mut reorder = Reorder::new(Seen::default(), 1_000, 1000, 16);
        reorder.batch(&batch(&table, &[10, 20, 30, 40]));
        assert_eq!(reorder.inner().packets, [10, 20]);
        assert_eq!(reorder.counters().forced, 2);
    }

    #[test]
    fn ticks_never_run_ahead_of_a_held_packet() {
        let table = table();
        let mut reorder = Reorder::new(Seen::default(), 10, 1000, usize::MAX);
        reorder.batch(&batch(&table, &[100]));
        reorder.tick(105);
        assert_eq!(reorder.inner().ticks, [99]);
        reorder.tick(111);
        assert_eq!(reorder.inner().packets, [100]);
        assert_eq!(reorder.inner().ticks, [99, 111]);
    }

    #[test]
    fn notices_follow_the_packets_of_their_time() {
        let table = table();
        let mut reorder = Reorder::new(Seen::default(), 10, 1000, usize::MAX);
        let mut first = batch(&table, &[100, 120]);
        first.push_suppressed(SuppressedNotice {
            tap: TapPoint {
                id: TapId(1),
                role: TapRole::Uplink,
                direction: TapDirection::Outgoing,
            },
            interface: InterfaceId(0),
            timestamp_ns: 101,
            flow: None,
            flow_hash: 0,
        });
        reorder.batch(&first);
        assert_eq!(reorder.inner().packets, [100]);
        assert_eq!(reorder.inner().notices, [101]);
    }
    /// Notices that come long before their packets (as the dedup sends
    /// them offline) and packets in order: each kind comes out in
    /// timestamp order, wherever the batches end, and a notice no earlier
    /// than the packets of its time.
    #[test]
    fn notices_ahead_of_their_packets_come_out_in_order() {
        let table = table();
        let notice = |timestamp_ns| SuppressedNotice {
            tap: TapPoint {
                id: TapId(1),
                role: TapRole::Uplink,
                direction: TapDirection::Outgoing,
            },
            interface: InterfaceId(0),
            timestamp_ns,
            flow: None,
            flow_hash: 0,
        };
        let mut whole: Option<(Vec<u64>, Vec<u64>)> = None;
        for size in [1, 3, 7, 50] {
            let mut reorder = Reorder::new(Seen::default(), 1_000, 1000, usize::MAX);
            let packets: Vec<u64> = (0..50).map(|i| 100 + i * 10).collect();
            for chunk in packets.chunks(size) {
                let mut next = batch(&table, chunk);
                // Notices of packets 30 to 40 ahead, out of order by a few.
                for &ts in chunk {
                    next.push_suppressed(notice(ts + 300 + (ts / 10 % 3)));
                }
                reorder.batch(&next);
            }
            reorder.finish(0);
            let seen = reorder.inner();
            assert!(seen.packets.windows(2).all(|w| w[0] <= w[1]), "{:?}", seen.packets);
            assert!(seen.notices.windows(2).all(|w| w[0] <= w[1]), "{:?}", seen.notices);
            assert_eq!(seen.packets.len(), 50);
            assert_eq!(seen.notices.len(), 50);
            let out = (seen.packets.clone(), seen.notices.clone());
            match &whole {
                Some(first) => assert_eq!(&out, first, "batches of {size}"),
                None => whole = Some(out),
            }
        }
    }
}
