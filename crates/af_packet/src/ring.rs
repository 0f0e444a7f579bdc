//! Walking a TPACKET_V3 receive ring: blocks handed over by the kernel, the
//! packets inside them as zero-copy views, and the hand-back.
//!
//! # Who writes what
//!
//! The ring is `block_count` blocks of `block_size` bytes shared with the
//! kernel. Each block starts with a `tpacket_block_desc` whose `block_status`
//! word is the only synchronisation between the two sides:
//!
//! - While `block_status & TP_STATUS_USER == 0` the kernel owns the block and
//!   may be writing packets into it; user space must not read anything else.
//! - The kernel fills the block, then stores `TP_STATUS_USER` with a write
//!   barrier (`prb_close_block`: `smp_wmb(); BLOCK_STATUS(pbd1) = status`).
//!   Our Acquire load of the status pairs with it: once we see USER, every
//!   packet byte of the block is visible.
//! - When done, we store `TP_STATUS_KERNEL` with Release, so all our reads of
//!   the block happen before the kernel may reuse it (the kernel reads the
//!   status in `prb_retire_current_block` / `prb_dispatch_next_block` after
//!   `smp_rmb`).
//!
//! Both orderings live in [`BlockRing::try_acquire`] and [`BlockRing::release`],
//! and nowhere else. The kernel fills blocks in order, so user space reads them
//! in order too, wrapping at the end of the ring.
//!
//! Packet headers are written by the kernel but are still checked: a header
//! whose offsets would leave the block ends the walk of that block and counts
//! it in [`BlockRing::malformed_blocks`], so no content of the ring memory can
//! make the walker read out of bounds or panic.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{block_desc, packet_hdr, RingMapping};

/// Status bits of a block or packet (linux/if_packet.h `TP_STATUS_*`).
pub(crate) mod status {
    pub const KERNEL: u32 = 0;
    pub const USER: u32 = 1 << 0;
    pub const LOSING: u32 = 1 << 2;
    pub const CSUMNOTREADY: u32 = 1 << 3;
    pub const VLAN_VALID: u32 = 1 << 4;
    pub const BLK_TMO: u32 = 1 << 5;
    pub const VLAN_TPID_VALID: u32 = 1 << 6;
    pub const CSUM_VALID: u32 = 1 << 7;
}

/// How a packet reached the socket: `sll_pkttype` of the packet's
/// `sockaddr_ll` (linux/if_packet.h `PACKET_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Addressed to this host (`PACKET_HOST`).
    Host,
    /// Link-layer broadcast (`PACKET_BROADCAST`).
    Broadcast,
    /// Link-layer multicast (`PACKET_MULTICAST`).
    Multicast,
    /// Addressed to another host (`PACKET_OTHERHOST`); on a container's
    /// host-side veth this is everything the container sends.
    OtherHost,
    /// Sent by this host (`PACKET_OUTGOING`).
    Outgoing,
    /// Any other value the kernel reports.
    Other(u8),
}

impl PacketType {
    /// Decodes `sll_pkttype`.
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Host,
            1 => Self::Broadcast,
            2 => Self::Multicast,
            3 => Self::OtherHost,
            4 => Self::Outgoing,
            other => Self::Other(other),
        }
    }

    /// Encodes it as `sll_pkttype`.
    pub fn to_raw(self) -> u8 {
        match self {
            Self::Host => 0,
            Self::Broadcast => 1,
            Self::Multicast => 2,
            Self::OtherHost => 3,
            Self::Outgoing => 4,
            Self::Other(raw) => raw,
        }
    }

    /// Whether the packet entered or left the interface.
    pub fn direction(self) -> Direction {
        match self {
            Self::Outgoing => Direction::Outbound,
            _ => Direction::Inbound,
        }
    }
}

/// Which way a packet crossed the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Received on the interface.
    Inbound,
    /// Transmitted on the interface.
    Outbound,
}

/// An 802.1Q/802.1ad tag that the kernel took out of the frame and reported
/// out of band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Tag control information: priority (3 bits), DEI (1), VLAN id (12).
    pub tci: u16,
    /// Tag protocol identifier: 0x8100 (802.1Q) or 0x88a8 (802.1ad). The
    /// kernel reports it only with `TP_STATUS_VLAN_TPID_VALID`; 0x8100 is
    /// assumed otherwise, as libpcap does.
    pub tpid: u16,
}

impl VlanTag {
    /// The 12-bit VLAN identifier.
    pub fn vlan_id(self) -> u16 {
        self.tci & 0x0fff
    }
}

/// One captured packet: a zero-copy view into a block of the ring, valid until
/// the block is handed back to the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'block> {
    data: &'block [u8],
    original_len: u32,
    timestamp_ns: u64,
    ifindex: i32,
    packet_type: PacketType,
    status: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    rx_hash: u32,
}

impl<'block> Packet<'block> {
    /// The captured bytes, from the link-layer header on.
    pub fn data(&self) -> &'block [u8] {
        self.data
    }

    /// Bytes captured (`tp_snaplen`).
    pub fn captured_len(&self) -> u32 {
        self.data.len() as u32
    }

    /// Bytes the packet had on the interface (`tp_len`).
    pub fn original_len(&self) -> u32 {
        self.original_len
    }

    /// Whether fewer bytes were captured than the packet had: the snap length
    /// or the block size cut it.
    pub fn truncated(&self) -> bool {
        self.captured_len() < self.original_len
    }

    /// Kernel receive timestamp, nanoseconds since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// Index of the interface the packet was captured on.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// How the packet reached the socket (`sll_pkttype`).
    pub fn packet_type(&self) -> PacketType {
        self.packet_type
    }

    /// Inbound or outbound.
    pub fn direction(&self) -> Direction {
        self.packet_type.direction()
    }

    /// The VLAN tag the kernel moved out of the frame, if any
    /// (`TP_STATUS_VLAN_VALID`).
    pub fn vlan(&self) -> Option<VlanTag> {
        (self.status & status::VLAN_VALID != 0).then_some(VlanTag {
            tci: self.vlan_tci,
            tpid: if self.status & status::VLAN_TPID_VALID != 0 {
                self.vlan_tpid
            } else {
                0x8100
            },
        })
    }

    /// The transport checksum is partial (pseudo-header only) because the
    /// packet was captured before checksum offload filled it in
    /// (`TP_STATUS_CSUMNOTREADY`).
    pub fn checksum_not_ready(&self) -> bool {
        self.status & status::CSUMNOTREADY != 0
    }

    /// The device or stack already validated the checksum (`TP_STATUS_CSUM_VALID`).
    pub fn checksum_valid(&self) -> bool {
        self.status & status::CSUM_VALID != 0
    }

    /// The kernel's receive hash of the flow (`tp_rxhash`), 0 when not computed.
    pub fn rx_hash(&self) -> u32 {
        self.rx_hash
    }

    /// The kernel had dropped packets on this socket when it wrote this one
    /// (`TP_STATUS_LOSING`); the count comes with the next statistics read.
    pub fn losing(&self) -> bool {
        self.status & status::LOSING != 0
    }

    /// The raw `tp_status` word.
    pub fn status(&self) -> u32 {
        self.status
    }
}

/// A TPACKET_V3 receive ring: the mapping and the index of the next block to
/// read.
pub struct BlockRing {
    mapping: RingMapping,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    malformed_blocks: u64,
    blocks_read: u64,
    blocks_timed_out: u64,
}

impl std::fmt::Debug for BlockRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockRing")
            .field("block_size", &self.block_size)
            .field("block_count", &self.block_count)
            .field("next_block", &self.next_block)
            .finish_non_exhaustive()
    }
}

impl BlockRing {
    /// A ring over `mapping`, which must hold `block_size * block_count` bytes
    /// with `block_size` a multiple of 8 and at least the block descriptor.
    pub(crate) fn new(mapping: RingMapping, block_size: usize, block_count: usize) -> Self {
        assert!(
            block_size >= block_desc::SIZE && block_size % 8 == 0,
            "block size {block_size} cannot hold a block descriptor"
        );
        assert!(
            mapping.len() >= block_size * block_count,
            "mapping of {} bytes is smaller than {block_count} blocks of {block_size}",
            mapping.len()
        );
        Self {
            mapping,
            block_size,
            block_count,
            next_block: 0,
            malformed_blocks: 0,
            blocks_read: 0,
            blocks_timed_out: 0,
        }
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the ring.
    pub fn block_count(&self) -> usize {
        self.block_count
    }

    /// Blocks whose packet headers did not fit the block; their walk stopped
    /// at the first bad header.
    pub fn malformed_blocks(&self) -> u64 {
        self.malformed_blocks
    }

    /// Blocks read and handed back.
    pub fn blocks_read(&self) -> u64 {
        self.blocks_read
    }

    /// Blocks the kernel closed on the retire timeout rather than full.
    pub fn blocks_timed_out(&self) -> u64 {
        self.blocks_timed_out
    }

    fn block_ptr(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.block_count);
        // SAFETY: index < block_count and the mapping holds block_count
        // blocks, so the offset stays inside the mapping.
        unsafe { self.mapping.base().as_ptr().add(index * self.block_size) }
    }

    fn status_word(&self, index: usize) -> &AtomicU32 {
        // SAFETY: block_status is a 4-byte-aligned u32 inside the block
        // (blocks are page-aligned, offset 8), live as long as `self`; the
        // kernel accesses it concurrently, which is why it is only touched as
        // an atomic.
        unsafe { AtomicU32::from_ptr(self.block_ptr(index).add(block_desc::BLOCK_STATUS).cast()) }
    }

    /// The Acquire half of the hand-off: whether block `index` belongs to user
    /// space. Pairs with the kernel's `smp_wmb()` before it publishes
    /// TP_STATUS_USER in `prb_close_block`.
    fn try_acquire(&self, index: usize) -> Option<u32> {
        let status = self.status_word(index).load(Ordering::Acquire);
        (status & status::USER != 0).then_some(status)
    }

    /// The Release half: gives block `index` back to the kernel after every
    /// read of it. Pairs with the `smp_rmb()` in the kernel's
    /// `prb_dispatch_next_block`/`prb_retire_current_block` before it reuses
    /// the block.
    fn release(&self, index: usize) {
        self.status_word(index).store(status::KERNEL, Ordering::Release);
    }

    /// Whether the next block is ready to be read.
    pub fn has_ready_block(&self) -> bool {
        self.try_acquire(self.next_block).is_some()
    }

    /// The next block, if the kernel has handed it over. Dropping the
    /// [`Block`] hands it back and moves to the following one.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        let index = self.next_block;
        let block_status = self.try_acquire(index)?;
        if block_status & status::BLK_TMO != 0 {
            self.blocks_timed_out += 1;
        }
        let base = self.block_ptr(index);
        // SAFETY: the Acquire load above saw TP_STATUS_USER, so the kernel no
        // longer writes this block until `release`; the block is
        // `block_size` bytes inside the mapping, which lives as long as the
        // borrow of `self` held by the returned Block.
        let bytes = unsafe { std::slice::from_raw_parts(base.cast_const(), self.block_size) };
        Some(Block {
            ring: self,
            index,
            bytes,
            malformed: Cell::new(false),
        })
    }

    /// Reads every ready block, calling `on_packet` for each packet, and
    /// returns the number of packets read. Stops after `max_blocks` blocks so
    /// one busy ring cannot starve the others served by the same thread.
    pub fn drain(&mut self, max_blocks: usize, mut on_packet: impl FnMut(&Packet<'_>)) -> u64 {
        let mut packets = 0;
        for _ in 0..max_blocks {
            let Some(block) = self.next_block() else {
                break;
            };
            for packet in block.packets() {
                on_packet(&packet);
                packets += 1;
            }
        }
        packets
    }
}

/// A block that the kernel handed to user space. Dropping it hands it back.
pub struct Block<'ring> {
    ring: &'ring mut BlockRing,
    index: usize,
    bytes: &'ring [u8],
    /// Set by a walk of this block that met a bad header.
    malformed: Cell<bool>,
}

impl Block<'_> {
    /// Sequence number the kernel gave the block (increments per block).
    pub fn sequence(&self) -> u64 {
        read_u64(self.bytes, block_desc::SEQ_NUM).unwrap_or(0)
    }

    /// Number of packets the kernel says the block holds.
    pub fn packet_count(&self) -> u32 {
        read_u32(self.bytes, block_desc::NUM_PKTS).unwrap_or(0)
    }

    /// The packets of the block, in the order the kernel wrote them.
    pub fn packets(&self) -> Packets<'_> {
        let mut walk = Packets::new(self.bytes);
        walk.report_to = Some(&self.malformed);
        if walk.malformed {
            self.malformed.set(true);
        }
        walk
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        if self.malformed.get() {
            self.ring.malformed_blocks += 1;
        }
        self.ring.release(self.index);
        self.ring.blocks_read += 1;
        self.ring.next_block = (self.index + 1) % self.ring.block_count;
    }
}

/// Iterator over the packets of one block.
///
/// Every offset read from a header is checked against the block before use:
/// the walk ends early on a header that would point outside the block.
pub struct Packets<'block> {
    block: &'block [u8],
    offset: usize,
    remaining: u32,
    malformed: bool,
    report_to: Option<&'block Cell<bool>>,
}

impl<'block> Packets<'block> {
    /// Walks the packets of `block`, the bytes of one block starting at its
    /// descriptor.
    pub fn new(block: &'block [u8]) -> Self {
        let remaining = read_u32(block, block_desc::NUM_PKTS).unwrap_or(0);
        let first = read_u32(block, block_desc::OFFSET_TO_FIRST_PKT).unwrap_or(0) as usize;
        let mut walk = Self {
            block,
            offset: first,
            remaining,
            malformed: false,
            report_to: None,
        };
        if remaining > 0 && first < block_desc::SIZE {
            walk.fail();
        }
        walk
    }

    /// Whether the walk stopped on a header that did not fit the block.
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    fn fail(&mut self) {
        self.malformed = true;
        self.remaining = 0;
        if let Some(flag) = self.report_to {
            flag.set(true);
        }
    }

    fn parse(&self, at: usize) -> Option<(Packet<'block>, u32)> {
        // One bounds check for the whole header; the field reads below index
        // a fixed-size array and compile to plain loads.
        let header: &[u8; packet_hdr::HDRLEN] = self
            .block
            .get(at..at.checked_add(packet_hdr::HDRLEN)?)?
            .try_into()
            .ok()?;
        let u32_at = |offset: usize| {
            u32::from_ne_bytes([
                header[offset],
                header[offset + 1],
                header[offset + 2],
                header[offset + 3],
            ])
        };
        let u16_at = |offset: usize| u16::from_ne_bytes([header[offset], header[offset + 1]]);
        let nsec = u32_at(packet_hdr::NSEC);
        if nsec >= 1_000_000_000 {
            return None;
        }
        let start = at + usize::from(u16_at(packet_hdr::MAC));
        let snaplen = u32_at(packet_hdr::SNAPLEN) as usize;
        let data = self.block.get(start..start.checked_add(snaplen)?)?;
        let packet = Packet {
            data,
            original_len: u32_at(packet_hdr::LEN),
            timestamp_ns: u64::from(u32_at(packet_hdr::SEC)) * 1_000_000_000 + u64::from(nsec),
            ifindex: u32_at(packet_hdr::SLL_IFINDEX) as i32,
            packet_type: PacketType::from_raw(header[packet_hdr::SLL_PKTTYPE]),
            status: u32_at(packet_hdr::STATUS),
            vlan_tci: u32_at(packet_hdr::VLAN_TCI) as u16,
            vlan_tpid: u16_at(packet_hdr::VLAN_TPID),
            rx_hash: u32_at(packet_hdr::RXHASH),
        };
        Some((packet, u32_at(packet_hdr::NEXT_OFFSET)))
    }
}

impl<'block> Iterator for Packets<'block> {
    type Item = Packet<'block>;

    fn next(&mut self) -> Option<Packet<'block>> {
        if self.remaining == 0 {
            return None;
        }
        let Some((packet, next_offset)) = self.parse(self.offset) else {
            self.fail();
            return None;
        };
        self.remaining -= 1;
        if self.remaining > 0 {
            // Packets are laid out forward; a zero or backward offset would
            // loop or revisit and means the header is corrupt.
            if next_offset == 0 {
                self.fail();
            } else {
                self.offset += next_offset as usize;
            }
        }
        Some(packet)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Builds blocks the way the kernel fills them, in memory laid out exactly like
/// a mapped ring: for unit tests, the block-walk benchmark and the fuzzer.
pub mod synthetic {
    use super::*;

    /// One packet to place in a synthetic block.
    #[derive(Clone, Copy, Debug)]
    pub struct PacketSpec<'a> {
        /// Captured bytes.
        pub data: &'a [u8],
        /// Length on the wire (>= `data.len()` for a truncated packet).
        pub original_len: u32,
        /// Kernel timestamp, ns since the epoch.
        pub timestamp_ns: u64,
        /// Interface index.
        pub ifindex: i32,
        /// `sll_pkttype`.
        pub pkttype: u8,
        /// `tp_status` bits of the packet (without TP_STATUS_USER).
        pub status: u32,
        /// `tp_vlan_tci`.
        pub vlan_tci: u16,
        /// `tp_vlan_tpid`.
        pub vlan_tpid: u16,
    }

    impl<'a> PacketSpec<'a> {
        /// An untagged inbound unicast packet of `data`.
        pub fn new(data: &'a [u8]) -> Self {
            Self {
                data,
                original_len: data.len() as u32,
                timestamp_ns: 0,
                ifindex: 1,
                pkttype: 0,
                status: 0,
                vlan_tci: 0,
                vlan_tpid: 0,
            }
        }
    }

    /// The kernel places the link-layer header at this offset from the packet
    /// header (TPACKET3_HDRLEN rounded so the network header is 16-aligned).
    const MAC_OFFSET: usize = 82;

    /// A ring of `block_count` synthetic blocks of `block_size` bytes.
    pub struct SyntheticRing {
        ring: BlockRing,
    }

    impl SyntheticRing {
        /// An empty ring; every block is owned by the "kernel".
        pub fn new(block_size: usize, block_count: usize) -> Self {
            let mapping = RingMapping::synthetic(block_size * block_count);
            Self {
                ring: BlockRing::new(mapping, block_size, block_count),
            }
        }

        /// Bytes of packet data a block of `block_size` can hold for a packet
        /// of `len` bytes, as the kernel lays it out.
        pub fn packet_footprint(len: usize) -> usize {
            (MAC_OFFSET + len).next_multiple_of(16)
        }

        /// Fills block `index` with `packets` as the kernel would and hands it
        /// to user space. Returns how many packets fit.
        pub fn fill_block(&mut self, index: usize, sequence: u64, packets: &[PacketSpec<'_>]) -> usize {
            let (mut block, placed) = Self::encode_block(self.ring.block_size, sequence, packets);
            block.resize(self.ring.block_size, 0);
            self.publish(index, &block);
            placed
        }

        /// The bytes the kernel would write into a block of `size` bytes for
        /// `packets` (as many as fit, counted in the second value), up to
        /// the end of the last packet: [`SyntheticRing::publish_raw_block`]
        /// hands them over later, for a benchmark that prepares its blocks
        /// before timing.
        pub fn encode_block(size: usize, sequence: u64, packets: &[PacketSpec<'_>]) -> (Vec<u8>, usize) {
            let mut block = vec![0u8; size];
            let first = block_desc::SIZE.next_multiple_of(16);
            let mut offset = first;
            let mut placed = 0usize;
            let mut previous: Option<usize> = None;
            for spec in packets {
                let footprint = Self::packet_footprint(spec.data.len());
                if offset + footprint > size {
                    break;
                }
                if let Some(prev) = previous {
                    write_u32(&mut block, prev + packet_hdr::NEXT_OFFSET, (offset - prev) as u32);
                }
                let sec = (spec.timestamp_ns / 1_000_000_000) as u32;
                let nsec = (spec.timestamp_ns % 1_000_000_000) as u32;
                write_u32(&mut block, offset + packet_hdr::SEC, sec);
                write_u32(&mut block, offset + packet_hdr::NSEC, nsec);
                write_u32(&mut block, offset + packet_hdr::SNAPLEN, spec.data.len() as u32);
                write_u32(&mut block, offset + packet_hdr::LEN, spec.original_len);
                write_u32(&mut block, offset + packet_hdr::STATUS, spec.status | status::USER);
                block[offset + packet_hdr::MAC..offset + packet_hdr::MAC + 2]
                    .copy_from_slice(&(MAC_OFFSET as u16).to_ne_bytes());
                write_u32(&mut block, offset + packet_hdr::VLAN_TCI, u32::from(spec.vlan_tci));
                block[offset + packet_hdr::VLAN_TPID..offset + packet_hdr::VLAN_TPID + 2]
                    .copy_from_slice(&spec.vlan_tpid.to_ne_bytes());
                write_u32(&mut block, offset + packet_hdr::SLL_IFINDEX, spec.ifindex as u32);
                block[offset + packet_hdr::SLL_PKTTYPE] = spec.pkttype;
                block[offset + MAC_OFFSET..offset + MAC_OFFSET + spec.data.len()].copy_from_slice(spec.data);
                previous = Some(offset);
                offset += footprint;
                placed += 1;
            }
            write_u32(&mut block, block_desc::NUM_PKTS, placed as u32);
            write_u32(&mut block, block_desc::OFFSET_TO_FIRST_PKT, first as u32);
            write_u32(&mut block, block_desc::BLK_LEN, offset as u32);
            block[block_desc::SEQ_NUM..block_desc::SEQ_NUM + 8].copy_from_slice(&sequence.to_ne_bytes());
            block.truncate(offset);
            (block, placed)
        }

        /// Moves every packet of an encoded block ([`SyntheticRing::encode_block`])
        /// `delta_ns` later in time: a benchmark encodes its blocks ahead and
        /// stamps them on the wall clock when it hands them over.
        pub fn shift_timestamps(block: &mut [u8], delta_ns: u64) {
            let count = read_u32(block, block_desc::NUM_PKTS).unwrap_or(0);
            let mut offset = read_u32(block, block_desc::OFFSET_TO_FIRST_PKT).unwrap_or(0) as usize;
            for _ in 0..count {
                let (Some(sec), Some(nsec)) = (
                    read_u32(block, offset + packet_hdr::SEC),
                    read_u32(block, offset + packet_hdr::NSEC),
                ) else {
                    return;
                };
                let ns = u64::from(sec) * 1_000_000_000 + u64::from(nsec) + delta_ns;
                write_u32(block, offset + packet_hdr::SEC, (ns / 1_000_000_000) as u32);
                write_u32(block, offset + packet_hdr::NSEC, (ns % 1_000_000_000) as u32);
                match read_u32(block, offset + packet_hdr::NEXT_OFFSET) {
                    Some(next) if next > 0 => offset += next as usize,
                    _ => return,
                }
            }
        }

        /// Copies raw `bytes` (a whole block, descriptor included, truncated
        /// or zero-padded to the block size) into block `index` and hands it to
        /// user space, whatever the bytes say: for fuzzing the walker.
        pub fn publish_raw_block(&mut self, index: usize, bytes: &[u8]) {
            let mut block = vec![0u8; self.ring.block_size];
            let n = bytes.len().min(block.len());
            block[..n].copy_from_slice(&bytes[..n]);
            self.publish(index, &block);
        }

        fn publish(&mut self, index: usize, block: &[u8]) {
            assert!(index < self.ring.block_count, "block {index} is outside the ring");
            assert_eq!(block.len(), self.ring.block_size);
            let base = self.ring.block_ptr(index);
            // SAFETY: the block is `block_size` bytes inside the mapping, and
            // `&mut self` guarantees no Block view of it is alive. The status
            // word is excluded from the copy and stored atomically below.
            unsafe {
                std::ptr::copy_nonoverlapping(block.as_ptr(), base, block_desc::BLOCK_STATUS);
                std::ptr::copy_nonoverlapping(
                    block.as_ptr().add(block_desc::BLOCK_STATUS + 4),
                    base.add(block_desc::BLOCK_STATUS + 4),
                    block.len() - block_desc::BLOCK_STATUS - 4,
                );
            }
            let raw_status = read_u32(block, block_desc::BLOCK_STATUS).unwrap_or(0);
            self.ring
                .status_word(index)
                .store(raw_status | status::USER, Ordering::Release);
        }

        /// The ring, to walk it.
        pub fn ring(&mut self) -> &mut BlockRing {
            &mut self.ring
        }
    }

    fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic::{PacketSpec, SyntheticRing};
    use super::*;

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; len];
        f[12] = 0x08;
        f[13] = 0x00;
        f
    }

    #[test]
    fn walks_packets_in_order_with_their_metadata() {
        let mut ring = SyntheticRing::new(1 << 16, 4);
        let a = frame(60, 0xaa);
        let b = frame(1514, 0xbb);
        let mut spec_b = PacketSpec::new(&b);
        spec_b.timestamp_ns = 1_700_000_000_123_456_789;
        spec_b.pkttype = 4;
        spec_b.ifindex = 7;
        spec_b.status = status::CSUMNOTREADY | status::VLAN_VALID | status::VLAN_TPID_VALID;
        spec_b.vlan_tci = 0x2064;
        spec_b.vlan_tpid = 0x88a8;
        assert_eq!(ring.fill_block(0, 1, &[PacketSpec::new(&a), spec_b]), 2);

        let ring = ring.ring();
        let block = ring.next_block().expect("block 0 is user-owned");
        assert_eq!(block.packet_count(), 2);
        assert_eq!(block.sequence(), 1);
        let packets: Vec<_> = block.packets().collect();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].data(), &a[..]);
        assert_eq!(packets[0].direction(), Direction::Inbound);
        assert_eq!(packets[0].vlan(), None);
        assert!(!packets[0].truncated());
        assert_eq!(packets[1].data(), &b[..]);
        assert_eq!(packets[1].timestamp_ns(), 1_700_000_000_123_456_789);
        assert_eq!(packets[1].packet_type(), PacketType::Outgoing);
        assert_eq!(packets[1].direction(), Direction::Outbound);
        assert_eq!(packets[1].ifindex(), 7);
        assert!(packets[1].checksum_not_ready());
        assert_eq!(
            packets[1].vlan(),
            Some(VlanTag {
                tci: 0x2064,
                tpid: 0x88a8
            })
        );
        assert_eq!(packets[1].vlan().map(VlanTag::vlan_id), Some(0x064));
    }

    #[test]
    fn vlan_tpid_defaults_to_8021q_when_kernel_does_not_report_it() {
        let mut ring = SyntheticRing::new(1 << 14, 2);
        let a = frame(64, 1);
        let mut spec = PacketSpec::new(&a);
        spec.status = status::VLAN_VALID;
        spec.vlan_tci = 5;
        ring.fill_block(0, 0, &[spec]);
        let block = ring.ring().next_block().unwrap();
        let packet = block.packets().next().unwrap();
        assert_eq!(packet.vlan(), Some(VlanTag { tci: 5, tpid: 0x8100 }));
    }

    #[test]
    fn truncated_packet_reports_both_lengths() {
        let mut ring = SyntheticRing::new(1 << 14, 2);
        let a = frame(100, 1);
        let mut spec = PacketSpec::new(&a);
        spec.original_len = 9000;
        ring.fill_block(0, 0, &[spec]);
        let block = ring.ring().next_block().unwrap();
        let packet = block.packets().next().unwrap();
        assert!(packet.truncated());
        assert_eq!((packet.captured_len(), packet.original_len()), (100, 9000));
    }

    #[test]
    fn kernel_owned_block_is_not_read_and_blocks_wrap_in_order() {
        let mut ring = SyntheticRing::new(1 << 14, 2);
        assert!(ring.ring().next_block().is_none());
        let a = frame(60, 1);
        ring.fill_block(0, 10, &[PacketSpec::new(&a)]);
        ring.fill_block(1, 11, &[PacketSpec::new(&a), PacketSpec::new(&a)]);
        assert_eq!(ring.ring().drain(8, |_| {}), 3);
        assert_eq!(ring.ring().blocks_read(), 2);
        // Both handed back: nothing left, and the next read is block 0 again.
        assert!(ring.ring().next_block().is_none());
        ring.fill_block(0, 12, &[PacketSpec::new(&a)]);
        assert_eq!(ring.ring().next_block().map(|b| b.sequence()), Some(12));
    }

    #[test]
    fn release_hands_block_back_to_kernel() {
        let mut ring = SyntheticRing::new(1 << 14, 1);
        let a = frame(60, 1);
        ring.fill_block(0, 0, &[PacketSpec::new(&a)]);
        drop(ring.ring().next_block());
        assert_eq!(ring.ring().status_word(0).load(Ordering::Acquire), status::KERNEL);
    }

    #[test]
    fn drain_stops_after_max_blocks() {
        let mut ring = SyntheticRing::new(1 << 14, 4);
        let a = frame(60, 1);
        for i in 0..4 {
            ring.fill_block(i, i as u64, &[PacketSpec::new(&a)]);
        }
        assert_eq!(ring.ring().drain(3, |_| {}), 3);
        assert_eq!(ring.ring().drain(3, |_| {}), 1);
    }

    #[test]
    fn header_pointing_outside_block_ends_walk_without_panic() {
        let mut ring = SyntheticRing::new(4096, 1);
        let mut raw = vec![0u8; 4096];
        raw[block_desc::NUM_PKTS..block_desc::NUM_PKTS + 4].copy_from_slice(&3u32.to_ne_bytes());
        raw[block_desc::OFFSET_TO_FIRST_PKT..block_desc::OFFSET_TO_FIRST_PKT + 4].copy_from_slice(&48u32.to_ne_bytes());
        // snaplen far past the block.
        raw[48 + packet_hdr::SNAPLEN..48 + packet_hdr::SNAPLEN + 4].copy_from_slice(&100_000u32.to_ne_bytes());
        ring.publish_raw_block(0, &raw);
        let block = ring.ring().next_block().unwrap();
        let mut packets = block.packets();
        assert!(packets.next().is_none());
        assert!(packets.malformed());
        drop(block);
        assert_eq!(ring.ring().malformed_blocks(), 1);
    }

    #[test]
    fn next_offset_of_zero_before_last_packet_is_malformed() {
        let mut ring = SyntheticRing::new(1 << 14, 1);
        let a = frame(60, 1);
        ring.fill_block(0, 0, &[PacketSpec::new(&a), PacketSpec::new(&a)]);
        // Corrupt: claim 5 packets while only 2 are chained.
        let mut raw = vec![0u8; 1 << 14];
        {
            let block = ring.ring().next_block().unwrap();
            raw.copy_from_slice(block.bytes);
        }
        raw[block_desc::NUM_PKTS..block_desc::NUM_PKTS + 4].copy_from_slice(&5u32.to_ne_bytes());
        ring.publish_raw_block(0, &raw);
        let block = ring.ring().next_block().unwrap();
        let mut packets = block.packets();
        assert_eq!(packets.by_ref().count(), 2);
        assert!(packets.malformed());
    }
}
