//! af_packet against the real kernel: rings on veth pairs in fresh
//! namespaces, frames sent with `FrameSender`, captured and compared byte for
//! byte. Covers mixed and jumbo sizes in both directions, VLAN tags the kernel
//! moves out of band, ring-full drops and the statistics that count them,
//! interfaces going down or away under a `RingSet`, fanout groups,
//! promiscuous membership, kernel timestamps, and a stop that leaves no frame
//! the kernel counted unread. Not the Docker-host test bed
//! (that is `testbed.rs`) nor the binary (`run_command.rs`).
//!
//! Links are built by [`Link`], which turns IPv6 off in both namespaces before
//! the veth exists, so the kernel sends nothing of its own on it (no neighbour
//! discovery, no MLD): every packet a ring sees is one the test sent, which is
//! what makes exact counts possible. Frames sent to prove a link passes
//! traffic ("probes") carry sequence numbers from [`PROBE_BASE`] up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use af_packet::ring_set::DEFAULT_BLOCKS_PER_TURN;
use af_packet::{
    CaptureRing, CloseReason, ClosedRing, Direction, FanoutGroup, FanoutMode, FrameSender, Interface, InterfaceRole,
    Packet, PacketType, RingConfig, RingGeometry, RingId, RingSet, VlanTag,
};
use testbed::{mixed_sizes, sequence_of, FrameSpec};

use crate::netns::{privileged, veth_pair, NetNs};

/// Captures on `ring_if` in `ns` until `expected` test frames arrived or
/// `timeout` passed; returns (sequence, direction, bytes) of each.
fn capture_frames(ring: CaptureRing, expected: usize, timeout: Duration) -> Vec<(u32, Direction, Vec<u8>)> {
    let mut set = RingSet::new().unwrap();
    set.add(ring).unwrap();
    let mut frames = vec![];
    let deadline = Instant::now() + timeout;
    while frames.len() < expected && Instant::now() < deadline {
        set.poll(50, 16, |_, _, packet| {
            if let Some(seq) = sequence_of(packet.data()) {
                frames.push((seq, packet.direction(), packet.data().to_vec()));
            }
        })
        .unwrap();
    }
    frames
}

#[test]
fn veth_pair_captures_every_frame_of_mixed_sizes_byte_for_byte() {
    if !privileged("veth_pair_captures_every_frame_of_mixed_sizes_byte_for_byte") {
        return;
    }
    let a = NetNs::new("mixa");
    let b = NetNs::new("mixb");
    veth_pair(&a, "va", &b, "vb");
    let sizes = mixed_sizes(400, 1514);
    let sent: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            FrameSpec {
                frame_len: len,
                ..FrameSpec::default()
            }
            .build(i as u32)
        })
        .collect();
    let expected = sent.len();

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = b.spawn(move || {
        let ring = CaptureRing::open(
            &Interface::by_name("vb").unwrap(),
            &RingConfig::for_role(InterfaceRole::ContainerVeth),
        )
        .unwrap();
        ready_tx.send(()).unwrap();
        capture_frames(ring, expected, Duration::from_secs(10))
    });
    ready_rx.recv().unwrap();
    let to_send = sent.clone();
    a.spawn(move || {
        let sender = FrameSender::open(&Interface::by_name("va").unwrap()).unwrap();
        let refs: Vec<&[u8]> = to_send.iter().map(Vec::as_slice).collect();
        assert_eq!(sender.send(&refs).unwrap(), refs.len());
    })
    .join()
    .unwrap();
    let captured = receiver.join().unwrap();
    assert_eq!(captured.len(), expected, "every frame captured exactly once");
    for (i, (seq, direction, bytes)) in captured.iter().enumerate() {
        assert_eq!(*seq as usize, i, "in order");
        assert_eq!(*direction, Direction::Inbound);
        assert_eq!(bytes, &sent[i], "frame {i} bytes identical");
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Sequence numbers from here up mark probe frames, never test frames.
const PROBE_BASE: u32 = 0xffff_0000;
/// How long any wait for the kernel may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Linux errno values (asm-generic/errno*.h; the test binary does not link
/// libc).
const EINVAL: i32 = 22;
const EMSGSIZE: i32 = 90;
const ENETDOWN: i32 = 100;
/// `TP_STATUS_VLAN_TPID_VALID`: the kernel filled `tp_vlan_tpid`.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Two fresh namespaces with IPv6 off, joined by one veth pair (more can be
/// added with [`Link::add_pair`]).
struct Link {
    a: NetNs,
    b: NetNs,
}

impl Link {
    /// Namespaces `<label>a` and `<label>b`, and the pair `a_if` (in a) /
    /// `b_if` (in b), both up.
    fn new(label: &str, a_if: &str, b_if: &str) -> Self {
        let link = Self {
            a: quiet_ns(&format!("{label}a")),
            b: quiet_ns(&format!("{label}b")),
        };
        link.add_pair(a_if, b_if);
        link
    }

    /// Another veth pair between the same namespaces.
    fn add_pair(&self, a_if: &str, b_if: &str) {
        veth_pair(&self.a, a_if, &self.b, b_if);
    }

    /// Sends probes from `a_if` until one arrives at `b_if`. A veth end that
    /// was up before its peer gets its carrier, and its transmit queue, only
    /// when the kernel's linkwatch work runs, asynchronously; frames sent
    /// before that are silently discarded.
    fn wait_until_frames_pass(&self, a_if: &str, b_if: &str) {
        let mut ring = open_ring(&self.b, b_if, small_config());
        let sender = open_sender(&self.a, a_if);
        let deadline = Instant::now() + TIMEOUT;
        for probe in PROBE_BASE.. {
            assert!(Instant::now() < deadline, "no frame from {a_if} reached {b_if}");
            let frame = FrameSpec::default().build(probe);
            sender.send(&[&frame]).unwrap();
            let mut seen = vec![];
            read_ready(&mut ring, 20, &mut seen);
            if seen.iter().any(|c| c.seq.is_some_and(|s| s >= PROBE_BASE)) {
                return;
            }
        }
    }
}

/// A namespace in which new interfaces get no IPv6, so nothing but the test
/// sends on them.
fn quiet_ns(label: &str) -> NetNs {
    let ns = NetNs::new(label);
    ns.exec(
        "sysctl",
        &[
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
    ns
}

/// 4 blocks of 1 MiB: enough for every test here but the drop test.
fn small_config() -> RingConfig {
    RingConfig {
        geometry: RingGeometry {
            block_size: 1 << 20,
            block_count: 4,
            retire_timeout_ms: 8,
        },
        promiscuous: false,
    }
}

/// Opens a ring on `ifname` of `ns` (a socket keeps the namespace it was
/// created in, so the ring can then be read from any thread).
fn open_ring(ns: &NetNs, ifname: &str, config: RingConfig) -> CaptureRing {
    let ifname = ifname.to_owned();
    ns.spawn(move || CaptureRing::open(&Interface::by_name(&ifname).unwrap(), &config).unwrap())
        .join()
        .unwrap()
}

/// Opens a sender on `ifname` of `ns`.
fn open_sender(ns: &NetNs, ifname: &str) -> FrameSender {
    let ifname = ifname.to_owned();
    ns.spawn(move || FrameSender::open(&Interface::by_name(&ifname).unwrap()).unwrap())
        .join()
        .unwrap()
}

/// Sends every frame, asserting the kernel took them all.
fn send_all(sender: &FrameSender, frames: &[Vec<u8>]) {
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    assert_eq!(sender.send(&refs).unwrap(), refs.len(), "frames accepted by the kernel");
}

/// `count` frames, frame `i` shaped by `spec(i)` and numbered `first + i`.
fn frames(count: usize, first: u32, spec: impl Fn(usize) -> FrameSpec) -> Vec<Vec<u8>> {
    (0..count).map(|i| spec(i).build(first + i as u32)).collect()
}

/// A frame of `len` bytes with the default addresses.
fn sized(len: usize) -> FrameSpec {
    FrameSpec {
        frame_len: len,
        ..FrameSpec::default()
    }
}

/// One packet read from a ring, copied out of its block.
#[derive(Clone, Debug)]
struct Captured {
    seq: Option<u32>,
    packet_type: PacketType,
    direction: Direction,
    vlan: Option<VlanTag>,
    status: u32,
    original_len: u32,
    timestamp_ns: u64,
    data: Vec<u8>,
}

impl Captured {
    fn of(packet: &Packet<'_>) -> Self {
        Self {
            seq: sequence_of(packet.data()),
            packet_type: packet.packet_type(),
            direction: packet.direction(),
            vlan: packet.vlan(),
            status: packet.status(),
            original_len: packet.original_len(),
            timestamp_ns: packet.timestamp_ns(),
            data: packet.data().to_vec(),
        }
    }

    fn is_test_frame(&self) -> bool {
        self.seq.is_some_and(|s| s < PROBE_BASE)
    }
}

/// Waits up to `timeout_ms` for a block, then reads every ready one.
fn read_ready(ring: &mut CaptureRing, timeout_ms: i32, out: &mut Vec<Captured>) {
    ring.wait(timeout_ms).unwrap();
    ring.drain(usize::MAX, |_, packet| out.push(Captured::of(packet)));
}

/// Reads `rings` until `count` test frames arrived in all, or [`TIMEOUT`];
/// then for a few more retire timeouts, so a frame captured twice would show.
/// Returns every packet read, per ring.
fn capture_across(rings: &mut [&mut CaptureRing], count: usize) -> Vec<Vec<Captured>> {
    let mut out = vec![vec![]; rings.len()];
    let test_frames = |out: &[Vec<Captured>]| out.iter().flatten().filter(|c| c.is_test_frame()).count();
    let deadline = Instant::now() + TIMEOUT;
    while test_frames(&out) < count && Instant::now() < deadline {
        for (ring, seen) in rings.iter_mut().zip(&mut out) {
            read_ready(ring, 10, seen);
        }
    }
    let grace = Instant::now() + Duration::from_millis(50);
    while Instant::now() < grace {
        for (ring, seen) in rings.iter_mut().zip(&mut out) {
            read_ready(ring, 10, seen);
        }
    }
    out
}

/// [`capture_across`] for one ring.
fn capture(ring: &mut CaptureRing, count: usize) -> Vec<Captured> {
    capture_across(&mut [ring], count).remove(0)
}

/// Asserts `captured` is exactly `sent`, in order, byte for byte.
fn assert_exactly(captured: &[Captured], sent: &[Vec<u8>], what: &str) {
    let seqs: Vec<Option<u32>> = captured.iter().map(|c| c.seq).collect();
    let expected: Vec<Option<u32>> = sent.iter().map(|f| sequence_of(f)).collect();
    assert_eq!(
        seqs, expected,
        "{what}: every frame exactly once, in order, nothing else"
    );
    for (c, s) in captured.iter().zip(sent) {
        assert_eq!(c.data, *s, "{what}: frame {:?} bytes identical", c.seq);
        assert_eq!(c.original_len as usize, s.len(), "{what}: frame {:?} length", c.seq);
    }
}

/// The sequence numbers of the test frames in `captured`.
fn seqs(captured: &[Captured]) -> Vec<u32> {
    captured
        .iter()
        .filter(|c| c.is_test_frame())
        .filter_map(|c| c.seq)
        .collect()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos() as u64
}

// ---------------------------------------------------------------------------
// 1. Jumbo frames, both directions
// ---------------------------------------------------------------------------

#[test]
fn jumbo_frames_up_to_9014_bytes_are_captured_whole_inbound_and_outbound() {
    if !privileged("jumbo_frames_up_to_9014_bytes_are_captured_whole_inbound_and_outbound") {
        return;
    }
    let link = Link::new("jumbo", "ja", "jb");
    link.a.ip(&["link", "set", "ja", "mtu", "9000"]);
    link.b.ip(&["link", "set", "jb", "mtu", "9000"]);
    link.wait_until_frames_pass("ja", "jb");

    const SIZES: [usize; 12] = [60, 61, 1514, 1515, 2048, 4096, 4097, 8192, 8999, 9000, 9013, 9014];
    let sent = frames(240, 0, |i| sized(SIZES[i % SIZES.len()]));
    assert!(sent.iter().any(|f| f.len() == 9014) && sent.iter().any(|f| f.len() == 60));
    let mut inbound_ring = open_ring(&link.b, "jb", small_config());
    let mut outbound_ring = open_ring(&link.a, "ja", small_config());
    let sender = open_sender(&link.a, "ja");
    send_all(&sender, &sent);

    let inbound = capture(&mut inbound_ring, sent.len());
    assert_exactly(&inbound, &sent, "receiving end jb");
    for c in &inbound {
        assert_eq!(c.direction, Direction::Inbound, "frame {:?} on jb", c.seq);
        // The destination MAC is not jb's, so the veth classifies it as for
        // another host; packet sockets see it anyway.
        assert_eq!(c.packet_type, PacketType::OtherHost, "frame {:?} on jb", c.seq);
    }
    let outbound = capture(&mut outbound_ring, sent.len());
    assert_exactly(&outbound, &sent, "sending end ja");
    for c in &outbound {
        assert_eq!(c.direction, Direction::Outbound, "frame {:?} on ja", c.seq);
        assert_eq!(c.packet_type, PacketType::Outgoing, "frame {:?} on ja", c.seq);
    }

    // One byte past MTU + Ethernet header is refused by the sending socket
    // (packet_snd: len > mtu + hard_header_len, and no VLAN tag to excuse 4
    // more bytes), so 9014 really is the edge.
    let too_big = sized(9015).build(PROBE_BASE - 1);
    assert_eq!(too_big.len(), 9015);
    let err = sender.send(&[&too_big]).unwrap_err();
    assert_eq!(err.errno(), Some(EMSGSIZE), "{err}");
}

// ---------------------------------------------------------------------------
// 2. VLAN tags
// ---------------------------------------------------------------------------

#[test]
fn vlan_tags_are_moved_out_of_band_on_receive_and_kept_inline_on_transmit() {
    if !privileged("vlan_tags_are_moved_out_of_band_on_receive_and_kept_inline_on_transmit") {
        return;
    }
    let link = Link::new("vlan", "qa", "qb");
    link.wait_until_frames_pass("qa", "qb");

    // Priority-tagged (VLAN 0), the lowest and highest ids, priority and DEI
    // bits set, for both 802.1Q and 802.1ad.
    const TCIS: [u16; 8] = [0x0000, 0x0001, 0x0064, 0x2064, 0x1005, 0xe0ff, 0x0ffe, 0xffff];
    let mut tags = vec![];
    for tpid in [0x8100u16, 0x88a8] {
        for tci in TCIS {
            tags.push((tpid, tci));
        }
    }
    let sent = frames(tags.len() * 2, 0, |i| FrameSpec {
        vlan: Some(tags[i % tags.len()]),
        // 64 bytes, and a full-size 1514-byte frame (1500 bytes of IP).
        frame_len: if i < tags.len() { 64 } else { 1514 },
        ..FrameSpec::default()
    });
    let mut inbound_ring = open_ring(&link.b, "qb", small_config());
    let mut outbound_ring = open_ring(&link.a, "qa", small_config());
    send_all(&open_sender(&link.a, "qa"), &sent);

    // Receive: __netif_receive_skb_core calls skb_vlan_untag for an 802.1Q
    // or 802.1ad ethertype *before* it delivers to packet taps, so the tag
    // is gone from the bytes and sits in skb->vlan_tci/vlan_proto, which
    // TPACKET_V3 reports as tp_vlan_tci/tp_vlan_tpid with
    // TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID. tp_len is the
    // untagged length. A capture that wants the wire bytes must re-insert
    // the tag after the MAC addresses.
    let inbound = capture(&mut inbound_ring, sent.len());
    assert_eq!(inbound.len(), sent.len(), "receiving end: nothing but the frames sent");
    for (i, (c, s)) in inbound.iter().zip(&sent).enumerate() {
        let (tpid, tci) = tags[i % tags.len()];
        assert_eq!(c.seq, Some(i as u32), "in order");
        assert_eq!(c.vlan, Some(VlanTag { tci, tpid }), "frame {i}");
        assert_eq!(c.vlan.map(VlanTag::vlan_id), Some(tci & 0x0fff), "frame {i}");
        assert_ne!(
            c.status & TP_STATUS_VLAN_TPID_VALID,
            0,
            "frame {i}: the kernel reported the TPID itself"
        );
        let untagged: Vec<u8> = s[..12].iter().chain(&s[16..]).copied().collect();
        assert_eq!(c.data, untagged, "frame {i}: tag removed from the bytes");
        assert_eq!(
            c.original_len as usize,
            s.len() - 4,
            "frame {i}: tp_len without the tag"
        );
        assert_eq!(c.direction, Direction::Inbound);
    }

    // Transmit: the frame leaves exactly as the socket wrote it; the tag was
    // never put out of band on this path (dev_queue_xmit_nit sees the skb as
    // built), so it is inline and no VLAN metadata is reported.
    let outbound = capture(&mut outbound_ring, sent.len());
    assert_exactly(&outbound, &sent, "sending end qa");
    for c in &outbound {
        assert_eq!(c.vlan, None, "frame {:?}: tag inline on transmit", c.seq);
        assert_eq!(c.direction, Direction::Outbound);
    }
}

// ---------------------------------------------------------------------------
// 3. Drops
// ---------------------------------------------------------------------------

#[test]
fn full_ring_drops_are_counted_so_received_plus_drops_equals_sent() {
    if !privileged("full_ring_drops_are_counted_so_received_plus_drops_equals_sent") {
        return;
    }
    let link = Link::new("drop", "da", "db");
    link.wait_until_frames_pass("da", "db");
    let tiny = RingConfig {
        geometry: RingGeometry {
            block_size: 4096,
            block_count: 2,
            retire_timeout_ms: 10,
        },
        promiscuous: false,
    };
    let mut ring = open_ring(&link.b, "db", tiny);
    const SENT: u64 = 2000;
    let sent = frames(SENT as usize, 0, |_| sized(60));
    // The ring is not read while the burst goes through.
    send_all(&open_sender(&link.a, "da"), &sent);

    let mut read = vec![];
    let mut counters = ring.update_counters().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while (counters.packets < SENT || read.len() as u64 != counters.received()) && Instant::now() < deadline {
        read_ready(&mut ring, 20, &mut read);
        counters = ring.update_counters().unwrap();
    }
    let link_drops = link.b.ip(&["-s", "link", "show", "db"]);
    let context = format!(
        "counters {counters:?}, {} frames read; db: {}",
        read.len(),
        String::from_utf8_lossy(&link_drops.stdout)
    );

    // PACKET_STATISTICS on TPACKET_V3: tp_packets counts the packets written
    // to the ring and the kernel adds tp_drops to it before answering, so
    // `packets` is everything that reached the socket and `received()` is
    // what the ring holds.
    assert_eq!(counters.packets, SENT, "{context}");
    assert_eq!(counters.received() + counters.drops, SENT, "{context}");
    assert!(counters.drops > 0, "{context}");
    // The queue froze when the kernel wanted block 0 back while it was still
    // ours, and stayed frozen: nothing read the ring until the burst ended.
    assert_eq!(counters.freezes, 1, "{context}");
    assert_eq!(read.len() as u64, counters.received(), "{context}");
    // Nothing read it, so the ring kept the first frames and then froze:
    // every later frame was dropped.
    let expected: Vec<Option<u32>> = (0..counters.received() as u32).map(Some).collect();
    assert_eq!(read.iter().map(|c| c.seq).collect::<Vec<_>>(), expected, "{context}");
    // A 60-byte frame takes ALIGN8(tp_mac 82 + 60) = 144 bytes of a block
    // whose first 48 bytes are the block descriptor, and must end strictly
    // before the block does: 28 per 4 KiB block, 56 in the ring.
    assert_eq!(counters.received(), 56, "{context}");

    // Both counters are reset by each read: a second read adds nothing.
    assert_eq!(ring.update_counters().unwrap(), counters, "statistics read twice");
}

// ---------------------------------------------------------------------------
// 4. Interfaces going down and away under a RingSet
// ---------------------------------------------------------------------------

/// What a capture thread serving a [`RingSet`] has seen so far.
#[derive(Debug, Default)]
struct SetLog {
    /// Test-frame sequence numbers per ring slot, in capture order.
    frames: BTreeMap<usize, Vec<u32>>,
    /// Packets read per ring slot, probes included.
    packets: BTreeMap<usize, u64>,
    /// Rings the set closed.
    closed: Vec<ClosedRing>,
    /// Completed calls of `RingSet::poll`.
    polls: u64,
}

/// A thread inside a namespace that serves one `RingSet` until stopped. It
/// lives in the namespace because `RingSet::poll` decides whether an
/// interface still exists by looking its index up in the calling thread's
/// namespace.
struct SetThread {
    log: Arc<Mutex<SetLog>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<RingSet>>,
    ids: Vec<RingId>,
}

impl Drop for SetThread {
    /// Stops the thread when a test fails before [`SetThread::stop`].
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl SetThread {
    fn start(ns: &NetNs, interfaces: &[&str]) -> Self {
        let log = Arc::new(Mutex::new(SetLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let names: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
        let (ids_tx, ids_rx) = mpsc::channel();
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        let handle = ns.spawn(move || {
            let mut set = RingSet::new().unwrap();
            let ids: Vec<RingId> = names
                .iter()
                .map(|name| {
                    let ring = CaptureRing::open(&Interface::by_name(name).unwrap(), &small_config()).unwrap();
                    set.add(ring).unwrap()
                })
                .collect();
            ids_tx.send(ids).unwrap();
            while !thread_stop.load(Ordering::Relaxed) {
                let mut seen: Vec<(usize, Option<u32>)> = vec![];
                set.poll(10, DEFAULT_BLOCKS_PER_TURN, |id, _, packet| {
                    seen.push((id.index(), sequence_of(packet.data())));
                })
                .unwrap();
                let closed = set.take_closed();
                let mut log = thread_log.lock().unwrap_or_else(PoisonError::into_inner);
                for (slot, seq) in seen {
                    *log.packets.entry(slot).or_default() += 1;
                    if let Some(seq) = seq.filter(|&s| s < PROBE_BASE) {
                        log.frames.entry(slot).or_default().push(seq);
                    }
                }
                log.closed.extend(closed);
                log.polls += 1;
            }
            set.update_counters();
            set
        });
        let ids = ids_rx.recv_timeout(TIMEOUT).expect("rings opened");
        Self {
            log,
            stop,
            handle: Some(handle),
            ids,
        }
    }

    /// Waits until `done` holds for the log; panics naming `what` otherwise.
    fn wait_for(&self, what: &str, done: impl Fn(&SetLog) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let log = self.log.lock().unwrap();
            if done(&log) {
                return;
            }
            if Instant::now() >= deadline {
                let state = format!("{log:?}");
                drop(log);
                panic!("timed out waiting for {what}: {state}");
            }
            drop(log);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the thread finished two more polls: a socket error that
    /// is pending now has then been seen and handled.
    fn wait_two_polls(&self) {
        let start = self.log.lock().unwrap().polls;
        self.wait_for("two polls", |log| log.polls >= start + 2);
    }

    fn frames(&self, id: RingId) -> Vec<u32> {
        self.log
            .lock()
            .unwrap()
            .frames
            .get(&id.index())
            .cloned()
            .unwrap_or_default()
    }

    fn stop(mut self) -> (RingSet, SetLog) {
        self.stop.store(true, Ordering::Relaxed);
        let set = self.handle.take().expect("stopped once").join().unwrap();
        let log = std::mem::take(&mut *self.log.lock().unwrap());
        (set, log)
    }
}

#[test]
fn deleted_interface_closes_only_its_ring_with_its_final_counters() {
    if !privileged("deleted_interface_closes_only_its_ring_with_its_final_counters") {
        return;
    }
    let link = Link::new("gone", "ga1", "gb1");
    link.add_pair("ga2", "gb2");
    link.wait_until_frames_pass("ga1", "gb1");
    link.wait_until_frames_pass("ga2", "gb2");
    let serving = SetThread::start(&link.b, &["gb1", "gb2"]);
    let (doomed, survivor) = (serving.ids[0], serving.ids[1]);
    let (to_doomed, to_survivor) = (open_sender(&link.a, "ga1"), open_sender(&link.a, "ga2"));

    let before = frames(50, 0, |i| sized(60 + i));
    send_all(&to_doomed, &before);
    send_all(&to_survivor, &before);
    serving.wait_for("the first 50 frames on both rings", |log| {
        [doomed, survivor]
            .iter()
            .all(|id| log.frames.get(&id.index()).map_or(0, Vec::len) == 50)
    });

    // Deleting gb1 deletes its peer ga1 too.
    link.b.ip(&["link", "del", "gb1"]);
    serving.wait_for("the ring of gb1 to close", |log| !log.closed.is_empty());
    let after = frames(50, 50, |i| sized(1514 - i));
    send_all(&to_survivor, &after);
    serving.wait_for("the next 50 frames on gb2", |log| {
        log.frames.get(&survivor.index()).map_or(0, Vec::len) == 100
    });
    let (set, log) = serving.stop();

    assert_eq!(log.closed.len(), 1, "{log:?}");
    let closed = &log.closed[0];
    assert_eq!(closed.id, doomed);
    assert_eq!(closed.interface.name(), "gb1");
    assert_eq!(closed.reason, CloseReason::InterfaceGone);
    assert_eq!(log.frames[&doomed.index()], (0..50).collect::<Vec<u32>>());
    assert_eq!(log.packets[&doomed.index()], 50, "{log:?}");
    assert_eq!(closed.counters.received(), 50, "final counters: {:?}", closed.counters);
    assert_eq!(closed.counters.drops, 0, "final counters: {:?}", closed.counters);

    assert_eq!(set.len(), 1);
    let open: Vec<_> = set
        .rings()
        .map(|(id, ring)| (id, ring.interface().name().to_owned()))
        .collect();
    assert_eq!(open, vec![(survivor, "gb2".to_owned())]);
    assert_eq!(log.frames[&survivor.index()], (0..100).collect::<Vec<u32>>());
    let counters = set.rings().next().unwrap().1.counters();
    assert_eq!((counters.received(), counters.drops), (100, 0), "{counters:?}");
}

#[test]
fn link_down_then_up_keeps_its_ring_and_captures_again() {
    if !privileged("link_down_then_up_keeps_its_ring_and_captures_again") {
        return;
    }
    let link = Link::new("flap", "fa", "fb");
    link.wait_until_frames_pass("fa", "fb");
    let serving = SetThread::start(&link.b, &["fb"]);
    let ring = serving.ids[0];
    let sender = open_sender(&link.a, "fa");
    send_all(&sender, &frames(30, 0, sized));
    serving.wait_for("30 frames", |log| {
        log.frames.get(&ring.index()).map_or(0, Vec::len) == 30
    });

    // `ip` returns after NETDEV_DOWN was delivered, so the socket's ENETDOWN
    // is pending; two polls later the set has handled it.
    link.b.ip(&["link", "set", "fb", "down"]);
    serving.wait_two_polls();
    assert!(
        serving.log.lock().unwrap().closed.is_empty(),
        "a link that is only down keeps its ring"
    );
    link.b.ip(&["link", "set", "fb", "up"]);

    // The kernel re-registers the socket's hook on NETDEV_UP; probes pass
    // once fa has its carrier back (linkwatch, asynchronous).
    let deadline = Instant::now() + TIMEOUT;
    for probe in PROBE_BASE.. {
        if serving.log.lock().unwrap().packets[&ring.index()] > 30 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing captured after up");
        sender.send(&[&FrameSpec::default().build(probe)]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    send_all(&sender, &frames(30, 30, sized));
    serving.wait_for("30 more frames", |log| {
        log.frames.get(&ring.index()).map_or(0, Vec::len) == 60
    });
    assert_eq!(serving.frames(ring), (0..60).collect::<Vec<u32>>());
    let (set, log) = serving.stop();
    assert!(log.closed.is_empty(), "{log:?}");
    assert_eq!(set.len(), 1);
}

#[test]
fn link_down_and_deletion_both_report_enetdown_and_only_deletion_closes() {
    if !privileged("link_down_and_deletion_both_report_enetdown_and_only_deletion_closes") {
        return;
    }
    let link = Link::new("enet", "ea", "eb");
    let watcher = open_ring(&link.b, "eb", small_config());
    let judge = open_ring(&link.b, "eb", small_config());
    assert_eq!(watcher.take_error(), None);

    // Down: NETDEV_DOWN sets sk_err = ENETDOWN once; SO_ERROR clears it.
    link.b.ip(&["link", "set", "eb", "down"]);
    assert_eq!(watcher.take_error(), Some(ENETDOWN));
    assert_eq!(watcher.take_error(), None, "SO_ERROR clears the error");
    let judge = check_error_in(&link.b, judge, None, "down but present: the ring stays");
    link.b.ip(&["link", "set", "eb", "up"]);
    assert_eq!(watcher.take_error(), None, "coming up reports nothing");
    assert_eq!(judge.take_error(), None, "coming up reports nothing");

    // Delete an up link: it goes down first (ENETDOWN), then is
    // unregistered, which reports nothing more. Never ENODEV or ENXIO.
    link.b.ip(&["link", "del", "eb"]);
    assert_eq!(watcher.take_error(), Some(ENETDOWN));
    assert_eq!(watcher.take_error(), None);
    check_error_in(&link.b, judge, Some(CloseReason::InterfaceGone), "deleted");

    // Delete a link that is already down: no error at all at deletion.
    link.add_pair("ec", "ed");
    let quiet = open_ring(&link.b, "ed", small_config());
    link.b.ip(&["link", "set", "ed", "down"]);
    assert_eq!(quiet.take_error(), Some(ENETDOWN));
    link.b.ip(&["link", "del", "ed"]);
    assert_eq!(quiet.take_error(), None, "deletion of a down link reports nothing");
}

/// Runs `CaptureRing::check_error` in `ns` (it looks the interface up in the
/// calling thread's namespace) and asserts its answer.
fn check_error_in(ns: &NetNs, ring: CaptureRing, expected: Option<CloseReason>, what: &str) -> CaptureRing {
    let (ring, reason) = ns
        .spawn(move || {
            let reason = ring.check_error();
            (ring, reason)
        })
        .join()
        .unwrap();
    assert_eq!(reason, expected, "{what}");
    ring
}

/// The set closes the ring of an interface deleted while it was down.
///
/// Regression: the kernel reports ENETDOWN once, when the link goes down
/// (`packet_notifier`, NETDEV_DOWN), and nothing when a down link is
/// unregistered (NETDEV_UNREGISTER only resets `po->ifindex` to -1). The set
/// used to judge that ENETDOWN while the interface existed, keep the ring and
/// never look again; it now re-checks the socket's bound index.
#[test]
fn interface_deleted_while_down_closes_its_ring() {
    if !privileged("interface_deleted_while_down_closes_its_ring") {
        return;
    }
    let link = Link::new("zomb", "za", "zb");
    let serving = SetThread::start(&link.b, &["zb"]);
    link.b.ip(&["link", "set", "zb", "down"]);
    serving.wait_two_polls();
    link.b.ip(&["link", "del", "zb"]);
    serving.wait_for("the ring of zb to close", |log| !log.closed.is_empty());
    let (set, log) = serving.stop();
    assert_eq!(log.closed[0].reason, CloseReason::InterfaceGone);
    assert!(set.is_empty());
}

/// The set closes, as gone, the ring of an interface moved to another
/// namespace (what Docker does with a container's end of its veth pair): for
/// the namespace the ring was bound in, the device was unregistered. A ring
/// on another interface keeps capturing.
#[test]
fn interface_moved_to_another_namespace_closes_its_ring_as_gone() {
    if !privileged("interface_moved_to_another_namespace_closes_its_ring_as_gone") {
        return;
    }
    let link = Link::new("move", "ma1", "mb1");
    link.add_pair("ma2", "mb2");
    link.wait_until_frames_pass("ma1", "mb1");
    link.wait_until_frames_pass("ma2", "mb2");
    let serving = SetThread::start(&link.b, &["mb1", "mb2"]);
    let (moved, staying) = (serving.ids[0], serving.ids[1]);
    let to_staying = open_sender(&link.a, "ma2");

    // mb1 goes to namespace a, next to its peer; it stays up there.
    link.b.ip(&["link", "set", "mb1", "netns", link.a.name()]);
    serving.wait_for("the ring of mb1 to close", |log| !log.closed.is_empty());
    send_all(&to_staying, &frames(20, 0, sized));
    serving.wait_for("20 frames on mb2", |log| {
        log.frames.get(&staying.index()).map_or(0, Vec::len) == 20
    });
    let (set, log) = serving.stop();

    assert_eq!(log.closed.len(), 1, "{log:?}");
    assert_eq!(log.closed[0].id, moved);
    assert_eq!(log.closed[0].interface.name(), "mb1");
    assert_eq!(log.closed[0].reason, CloseReason::InterfaceGone);
    let open: Vec<_> = set
        .rings()
        .map(|(id, ring)| (id, ring.interface().name().to_owned()))
        .collect();
    assert_eq!(open, vec![(staying, "mb2".to_owned())]);
    // The moved link exists, in namespace a.
    let shown = link.a.ip(&["link", "show", "mb1"]);
    assert!(shown.status.success(), "mb1 is in namespace a");
}

// ---------------------------------------------------------------------------
// 5. Fanout
// ---------------------------------------------------------------------------

/// Two rings on `b_if` of `link`, joined to `group`.
fn fanout_pair(link: &Link, b_if: &str, group: &FanoutGroup) -> (CaptureRing, CaptureRing) {
    let first = open_ring(&link.b, b_if, small_config());
    let second = open_ring(&link.b, b_if, small_config());
    first.join_fanout(group).unwrap();
    second.join_fanout(group).unwrap();
    (first, second)
}

/// Asserts that the test frames of both rings together are `expected`, each
/// exactly once.
fn assert_split_exactly(split: &[Vec<Captured>], expected: impl Iterator<Item = u32>) {
    let mut all: Vec<u32> = split.iter().flat_map(|s| seqs(s)).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        expected.collect::<Vec<u32>>(),
        "every frame exactly once across the group"
    );
}

#[test]
fn hash_fanout_spreads_flows_and_keeps_each_flow_on_one_ring() {
    if !privileged("hash_fanout_spreads_flows_and_keeps_each_flow_on_one_ring") {
        return;
    }
    let link = Link::new("hash", "ha", "hb");
    link.wait_until_frames_pass("ha", "hb");
    let group = FanoutGroup::new(FanoutMode::Hash);
    let (mut first, mut second) = fanout_pair(&link, "hb", &group);
    assert!(group.id().is_some());
    let sender = open_sender(&link.a, "ha");

    // 400 flows, one frame each.
    let many = frames(400, 0, |i| FrameSpec {
        src_port: 10_000 + i as u16,
        frame_len: 100,
        ..FrameSpec::default()
    });
    send_all(&sender, &many);
    let split = capture_across(&mut [&mut first, &mut second], many.len());
    assert_split_exactly(&split, 0..400);
    let sizes = (split[0].len(), split[1].len());
    assert!(sizes.0 > 0 && sizes.1 > 0, "400 flows hash to both rings: {sizes:?}");

    // One flow, 200 frames: all on one ring, in order.
    let one_flow = frames(200, 1000, |_| FrameSpec {
        src_port: 5555,
        frame_len: 200,
        ..FrameSpec::default()
    });
    send_all(&sender, &one_flow);
    let split = capture_across(&mut [&mut first, &mut second], one_flow.len());
    assert_split_exactly(&split, 1000..1200);
    let per_ring = [seqs(&split[0]), seqs(&split[1])];
    assert!(
        per_ring.contains(&(1000..1200).collect()) && per_ring.contains(&vec![]),
        "one flow, one ring: {:?} / {:?}",
        per_ring[0].len(),
        per_ring[1].len()
    );
}

#[test]
fn load_balance_fanout_alternates_between_rings() {
    if !privileged("load_balance_fanout_alternates_between_rings") {
        return;
    }
    let link = Link::new("lb", "la", "lb");
    link.wait_until_frames_pass("la", "lb");
    let group = FanoutGroup::new(FanoutMode::LoadBalance);
    let (mut first, mut second) = fanout_pair(&link, "lb", &group);
    let sent = frames(400, 0, |i| sized(60 + i % 1400));
    send_all(&open_sender(&link.a, "la"), &sent);
    let split = capture_across(&mut [&mut first, &mut second], sent.len());
    assert_split_exactly(&split, 0..400);
    // Round robin over a counter (fanout_demux_lb): one flow still splits
    // evenly, and every packet is counted, so exactly half each.
    assert_eq!((split[0].len(), split[1].len()), (200, 200));
    for ring in &split {
        let received: Vec<&Captured> = ring.iter().collect();
        assert!(
            received.windows(2).all(|w| w[0].seq < w[1].seq),
            "each ring in send order"
        );
        for c in received {
            assert_eq!(c.data, sent[c.seq.unwrap() as usize]);
        }
    }
}

#[test]
fn fanout_groups_on_two_interfaces_get_distinct_kernel_ids() {
    if !privileged("fanout_groups_on_two_interfaces_get_distinct_kernel_ids") {
        return;
    }
    let link = Link::new("fid", "ia1", "ib1");
    link.add_pair("ia2", "ib2");
    let first_group = FanoutGroup::new(FanoutMode::Hash);
    let second_group = FanoutGroup::new(FanoutMode::Hash);
    assert_eq!(first_group.id(), None, "no id before a ring joined");
    let (_a1, _a2) = fanout_pair(&link, "ib1", &first_group);
    let (_b1, _b2) = fanout_pair(&link, "ib2", &second_group);
    let (first, second) = (first_group.id().unwrap(), second_group.id().unwrap());
    assert_ne!(first, second, "kernel-assigned ids are unique in the namespace");

    // A group is bound to its interface: a ring on ib1 cannot join the ib2
    // group (fanout_add: prot_hook.dev differs), so a wrong id cannot steal
    // another interface's packets.
    let stray = open_ring(&link.b, "ib1", small_config());
    let err = stray.join_fanout(&second_group).unwrap_err();
    assert_eq!(err.errno(), Some(EINVAL), "{err}");
    // And a third group still gets a fresh id.
    let third_group = FanoutGroup::new(FanoutMode::LoadBalance);
    stray.join_fanout(&third_group).unwrap();
    let third = third_group.id().unwrap();
    assert!(third != first && third != second, "{first} {second} {third}");
}

// ---------------------------------------------------------------------------
// 6. Promiscuous membership
// ---------------------------------------------------------------------------

/// (promiscuity count, whether `ip link` shows the PROMISC flag) of `ifname`.
fn promiscuity(ns: &NetNs, ifname: &str) -> (u32, bool) {
    let out = ns.ip(&["-d", "link", "show", ifname]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = text
        .split_whitespace()
        .skip_while(|w| *w != "promiscuity")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no promiscuity in {text}"));
    let flags = text
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.split(',').any(|f| f == "PROMISC"))
        .unwrap_or_else(|| panic!("no flags in {text}"));
    (count, flags)
}

/// Waits up to [`TIMEOUT`] for `ifname`'s [`promiscuity`] to be `expected`,
/// and asserts it is.
///
/// Closing a ring returns its reference when the kernel releases the
/// socket, which is when the last descriptor of it closes. Other tests of
/// this process spawn commands meanwhile, and a child holds a copy of every
/// descriptor from its fork until its exec closes them (they are
/// close-on-exec): a ring dropped in that window keeps its reference until
/// the child's exec, which a loaded machine delays by milliseconds.
fn assert_promiscuity(ns: &NetNs, ifname: &str, expected: (u32, bool), what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = promiscuity(ns, ifname);
    while seen != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        seen = promiscuity(ns, ifname);
    }
    assert_eq!(seen, expected, "{what}");
}

#[test]
fn promiscuous_ring_holds_a_promiscuity_reference_and_never_touches_the_flag() {
    if !privileged("promiscuous_ring_holds_a_promiscuity_reference_and_never_touches_the_flag") {
        return;
    }
    let link = Link::new("prom", "pa", "pb");
    let promiscuous = RingConfig {
        promiscuous: true,
        ..small_config()
    };
    assert_eq!(promiscuity(&link.b, "pb"), (0, false));

    let plain = open_ring(&link.b, "pb", small_config());
    assert!(!plain.promiscuous());
    assert_eq!(promiscuity(&link.b, "pb"), (0, false), "a plain ring changes nothing");

    let first = open_ring(&link.b, "pb", promiscuous);
    assert!(first.promiscuous());
    assert_eq!(promiscuity(&link.b, "pb"), (1, false), "a reference, not the user flag");
    let second = open_ring(&link.b, "pb", promiscuous);
    assert_eq!(promiscuity(&link.b, "pb"), (2, false));
    drop(first);
    assert_promiscuity(&link.b, "pb", (1, false), "closing one ring returns its reference");
    drop(second);
    assert_promiscuity(&link.b, "pb", (0, false), "closing returns the reference");
    drop(plain);

    // An administrator's `promisc on` is a flag plus a reference of its own,
    // which rings neither clear nor take over.
    link.b.ip(&["link", "set", "pb", "promisc", "on"]);
    assert_eq!(promiscuity(&link.b, "pb"), (1, true));
    let ring = open_ring(&link.b, "pb", promiscuous);
    assert_eq!(promiscuity(&link.b, "pb"), (2, true));
    drop(ring);
    assert_promiscuity(&link.b, "pb", (1, true), "the flag survives the ring");
    link.b.ip(&["link", "set", "pb", "promisc", "off"]);
    assert_eq!(promiscuity(&link.b, "pb"), (0, false));
}

// ---------------------------------------------------------------------------
// 7. Timestamps
// ---------------------------------------------------------------------------

#[test]
fn kernel_timestamps_lie_between_send_and_capture_and_never_decrease() {
    if !privileged("kernel_timestamps_lie_between_send_and_capture_and_never_decrease") {
        return;
    }
    let link = Link::new("time", "ta", "tb");
    link.wait_until_frames_pass("ta", "tb");
    let mut inbound_ring = open_ring(&link.b, "tb", small_config());
    let mut outbound_ring = open_ring(&link.a, "ta", small_config());
    let sent = frames(300, 0, |i| sized(mixed_sizes(300, 1514)[i]));
    let sender = open_sender(&link.a, "ta");

    let before = now_ns();
    send_all(&sender, &sent);
    let inbound = capture(&mut inbound_ring, sent.len());
    let outbound = capture(&mut outbound_ring, sent.len());
    let after = now_ns();

    for (what, captured) in [("inbound", &inbound), ("outbound", &outbound)] {
        assert_exactly(captured, &sent, what);
        for c in captured.iter() {
            assert!(
                (before..=after).contains(&c.timestamp_ns),
                "{what} frame {:?}: {} not in {before}..={after}",
                c.seq,
                c.timestamp_ns
            );
        }
        for pair in captured.windows(2) {
            assert!(
                pair[0].timestamp_ns <= pair[1].timestamp_ns,
                "{what}: {:?} at {} before {:?} at {}",
                pair[0].seq,
                pair[0].timestamp_ns,
                pair[1].seq,
                pair[1].timestamp_ns
            );
        }
    }
    // The copy leaving ta is stamped before the copy arriving at tb.
    for (out, inb) in outbound.iter().zip(&inbound) {
        assert!(out.timestamp_ns <= inb.timestamp_ns, "frame {:?}", out.seq);
    }
}

/// Every deletion of an up interface closes its ring: 250 deletions, each
/// under a set that is idle in `epoll_wait`, as a capture thread usually is.
///
/// Regression: the kernel raises ENETDOWN at NETDEV_DOWN, inside
/// `netif_close_many`, and only afterwards `unlist_netdevice` removes the name
/// and index. A capture thread woken on the other CPU that judged the error in
/// that window found the interface still there and kept the ring forever (1
/// deletion in 250 on a 2-CPU VM). Rings that saw ENETDOWN are now re-checked
/// after every poll.
#[test]
fn interface_deleted_while_up_always_closes_its_ring() {
    if !privileged("interface_deleted_while_up_always_closes_its_ring") {
        return;
    }
    let link = Link::new("race", "ra", "rb");
    let mut missed = vec![];
    for i in 0..250 {
        let (x, y) = (format!("rx{i}"), format!("ry{i}"));
        link.b.ip(&["link", "add", &x, "type", "veth", "peer", "name", &y]);
        link.b.ip(&["link", "set", &x, "up"]);
        link.b.ip(&["link", "set", &y, "up"]);
        let serving = SetThread::start(&link.b, &[&x]);
        serving.wait_two_polls();
        link.b.ip(&["link", "del", &x]);
        let deadline = Instant::now() + Duration::from_secs(1);
        while serving.log.lock().unwrap().closed.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (set, _) = serving.stop();
        if !set.is_empty() {
            missed.push(i);
        }
    }
    assert_eq!(missed, Vec::<usize>::new(), "deletions whose ring stayed open");
}

/// Counts packets per interface and remembers the interfaces whose ring
/// closed and those it was told were updated, for a capture thread under
/// control.
#[derive(Clone, Default)]
struct CountingSink {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    closed: Arc<Mutex<Vec<String>>>,
    updated: Arc<Mutex<Vec<String>>>,
}

impl pipeline::PacketSink for CountingSink {
    fn packet(&mut self, interface: &Interface, packet: &Packet<'_>) {
        if sequence_of(packet.data()).is_some() {
            *self
                .counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(interface.name().to_owned())
                .or_default() += 1;
        }
    }

    fn interface_closed(&mut self, interface: &Interface) {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(interface.name().to_owned());
    }

    fn interface_updated(&mut self, interface: &Interface) {
        self.updated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(interface.name().to_owned());
    }
}

impl CountingSink {
    fn wait_for(&self, what: &str, done: impl Fn(&BTreeMap<String, u64>, &[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
                let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
                if done(&counts, &closed) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {counts:?} {closed:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn rings_added_and_removed_while_a_capture_thread_runs_are_each_reported() {
    if !privileged("rings_added_and_removed_while_a_capture_thread_runs_are_each_reported") {
        return;
    }
    let link = Link::new("ctl", "ca1", "cb1");
    link.wait_until_frames_pass("ca1", "cb1");
    let sink = CountingSink::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (control, commands) = mpsc::channel();
    let live = Arc::new(pipeline::live::LiveCounters::new());
    let thread = {
        let (sink, stop) = (sink.clone(), Arc::clone(&stop));
        let publisher = pipeline::capture_thread::LivePublisher {
            counters: Arc::clone(&live),
            slot: 0,
        };
        std::thread::spawn(move || {
            let config = pipeline::CaptureThreadConfig {
                poll_timeout: Duration::from_millis(10),
                ..pipeline::CaptureThreadConfig::default()
            };
            pipeline::capture_thread::run_controlled(
                RingSet::new().unwrap(),
                config,
                &stop,
                sink,
                Some(commands),
                Some(publisher),
            )
        })
    };

    // A thread with no ring waits for one.
    let first = open_ring(&link.b, "cb1", small_config());
    let first_ifindex = first.interface().ifindex();
    control.send(pipeline::capture_thread::RingCommand::Add(first)).unwrap();
    send_all(&open_sender(&link.a, "ca1"), &frames(50, 0, sized));
    // Removed at once, its last block not yet handed over by the kernel:
    // the ring is read until the retire timeout has passed, then closed,
    // and every frame is captured.
    control
        .send(pipeline::capture_thread::RingCommand::Remove {
            ifindex: first_ifindex,
            reason: CloseReason::InterfaceGone,
        })
        .unwrap();
    sink.wait_for("cb1's ring to close", |_, closed| closed == ["cb1"]);

    link.add_pair("ca2", "cb2");
    link.wait_until_frames_pass("ca2", "cb2");
    let second = open_ring(&link.b, "cb2", small_config());
    let second_ifindex = second.interface().ifindex();
    control
        .send(pipeline::capture_thread::RingCommand::Add(second))
        .unwrap();
    send_all(&open_sender(&link.a, "ca2"), &frames(30, 100, sized));
    // Frames to the closed ring's interface are no longer captured.
    send_all(&open_sender(&link.a, "ca1"), &frames(20, 200, sized));
    sink.wait_for("30 frames on cb2", |counts, _| counts.get("cb2") == Some(&30));

    // What discovery knows of an interface changed: the sink hears of it
    // for an interface the thread captures, not for the closed one.
    for ifindex in [first_ifindex, second_ifindex] {
        control
            .send(pipeline::capture_thread::RingCommand::Updated { ifindex })
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.updated.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
        assert!(Instant::now() < deadline, "the sink never heard of an update");
        std::thread::sleep(Duration::from_millis(5));
    }

    stop.store(true, Ordering::Relaxed);
    let report = thread.join().unwrap();
    assert!(report.error.is_none(), "{report:?}");
    let by_name: BTreeMap<&str, &pipeline::InterfaceReport> =
        report.interfaces.iter().map(|r| (r.interface.name(), r)).collect();
    assert_eq!(by_name.len(), 2, "{report:?}");
    let cb1 = by_name["cb1"];
    assert_eq!(cb1.closed, Some(CloseReason::InterfaceGone));
    // The probes of wait_until_frames_pass came before the ring existed:
    // exactly the 50 test frames.
    assert_eq!(cb1.captured, 50, "{cb1:?}");
    let cb2 = by_name["cb2"];
    assert_eq!(cb2.closed, None);
    assert!(cb2.captured >= 30, "{cb2:?}");
    assert_eq!(sink.counts.lock().unwrap().get("cb1"), Some(&50));
    assert_eq!(*sink.updated.lock().unwrap(), ["cb2"]);
    // The live counters keep the closed ring's final figures beside the
    // open one's.
    let snapshot = live.snapshot();
    assert_eq!(snapshot["cb1"].captured, 50, "{snapshot:?}");
    assert_eq!(snapshot["cb1"].kernel_received, 50, "{snapshot:?}");
    assert_eq!(snapshot["cb2"].captured, cb2.captured, "{snapshot:?}");
}

// ---------------------------------------------------------------------------
// 8. Stopping: every frame the kernel counted is a frame that was read
// ---------------------------------------------------------------------------

#[test]
fn a_ring_that_stopped_accepting_neither_holds_nor_counts_later_frames() {
    if !privileged("a_ring_that_stopped_accepting_neither_holds_nor_counts_later_frames") {
        return;
    }
    let link = Link::new("stp", "sa", "sb");
    link.wait_until_frames_pass("sa", "sb");
    let mut ring = open_ring(&link.b, "sb", small_config());
    let sender = open_sender(&link.a, "sa");
    let before = frames(40, 0, sized);
    send_all(&sender, &before);
    let mut read = capture(&mut ring, before.len());
    assert_exactly(&read, &before, "before the stop");

    ring.stop_accepting().unwrap();
    send_all(&sender, &frames(40, 40, sized));
    // Longer than several retire timeouts: a frame the ring took would show.
    let grace = Instant::now() + Duration::from_millis(100);
    while Instant::now() < grace {
        read_ready(&mut ring, 10, &mut read);
    }
    assert_exactly(&read, &before, "after the stop");
    let counters = ring.update_counters().unwrap();
    assert_eq!(counters.packets, before.len() as u64, "{counters:?}");
    assert_eq!(counters.drops, 0, "{counters:?}");
}

/// Frames sent as fast as the kernel takes them, from a thread, until
/// [`Flood::stop`], so that they reach a ring at every moment of a stop.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Flood {
    fn start(sender: FrameSender) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut sent, mut seq) = (0u64, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    let batch = frames(64, seq, sized);
                    seq = seq.wrapping_add(64) % PROBE_BASE;
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    sent += sender.send(&refs).unwrap() as u64;
                }
                sent
            })
        };
        Self { stop, thread }
    }

    /// Stops it; returns the frames sent.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Asserts that `report`'s ring read exactly the frames its kernel
/// counters counted, that `sink` had every one, and that `sent` (the flood
/// outlasted the ring) was more.
fn assert_read_all_counted(report: &pipeline::InterfaceReport, sink: &CountingSink, sent: u64) {
    let context = format!("{report:?}, {sent} frames sent");
    let name = report.interface.name();
    assert_eq!(report.captured, report.counters.received(), "{context}");
    assert_eq!(
        sink.counts.lock().unwrap().get(name),
        Some(&report.captured),
        "{context}"
    );
    assert!(report.captured < sent, "the flood outlasted the ring: {context}");
}

#[test]
fn a_capture_thread_stopped_mid_flood_read_every_frame_the_kernel_counted() {
    if !privileged("a_capture_thread_stopped_mid_flood_read_every_frame_the_kernel_counted") {
        return;
    }
    let link = Link::new("fld", "fa", "fb");
    link.wait_until_frames_pass("fa", "fb");
    let ring = open_ring(&link.b, "fb", small_config());
    let sink = CountingSink::default();
    let stop = Arc::new(AtomicBool::new(false));
    let capture = {
        let (sink, stop) = (sink.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rings = RingSet::new().unwrap();
            rings.add(ring).unwrap();
            pipeline::capture_thread::run(rings, pipeline::CaptureThreadConfig::default(), &stop, sink)
        })
    };
    // Until the capture thread has returned: after its last read, before
    // and after it reads the counters.
    let flood = Flood::start(open_sender(&link.a, "fa"));
    sink.wait_for("frames under the flood", |counts, _| {
        counts.get("fb").is_some_and(|&n| n > 10_000)
    });
    stop.store(true, Ordering::Relaxed);
    let report = capture.join().unwrap();
    let sent = flood.stop();

    assert!(report.error.is_none(), "{report:?}");
    let [fb] = report.interfaces.as_slice() else {
        panic!("one ring: {report:?}");
    };
    assert_read_all_counted(fb, &sink, sent);
}

#[test]
fn a_ring_closed_mid_flood_read_every_frame_the_kernel_counted() {
    if !privileged("a_ring_closed_mid_flood_read_every_frame_the_kernel_counted") {
        return;
    }
    // As when the agent releases a renamed interface: it is still there,
    // and its traffic goes on after the ring's closing time.
    let link = Link::new("fcl", "ga", "gb");
    link.wait_until_frames_pass("ga", "gb");
    // A long retire timeout: whenever the ring's closing time comes, the
    // block the kernel is filling most likely holds frames.
    let mut config = small_config();
    config.geometry.retire_timeout_ms = 200;
    let ring = open_ring(&link.b, "gb", config);
    let ifindex = ring.interface().ifindex();
    let sink = CountingSink::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (control, commands) = mpsc::channel();
    let capture = {
        let (sink, stop) = (sink.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            pipeline::capture_thread::run_controlled(
                RingSet::new().unwrap(),
                pipeline::CaptureThreadConfig::default(),
                &stop,
                sink,
                Some(commands),
                None,
            )
        })
    };
    control.send(pipeline::capture_thread::RingCommand::Add(ring)).unwrap();
    let flood = Flood::start(open_sender(&link.a, "ga"));
    sink.wait_for("frames under the flood", |counts, _| {
        counts.get("gb").is_some_and(|&n| n > 10_000)
    });
    control
        .send(pipeline::capture_thread::RingCommand::Remove {
            ifindex,
            reason: CloseReason::InterfaceGone,
        })
        .unwrap();
    sink.wait_for("gb's ring to close", |_, closed| closed == ["gb"]);
    let sent = flood.stop();
    stop.store(true, Ordering::Relaxed);
    let report = capture.join().unwrap();

    assert!(report.error.is_none(), "{report:?}");
    let [gb] = report.interfaces.as_slice() else {
        panic!("one ring: {report:?}");
    };
    assert_eq!(gb.closed, Some(CloseReason::InterfaceGone), "{gb:?}");
    assert_read_all_counted(gb, &sink, sent);
}
