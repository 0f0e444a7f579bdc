//! TCP byte ranges: dedup where one tap point sees a GSO super-frame and
//! another sees it cut into segments (an uplink without TSO: one frame on the
//! veth is N frames on eth0, ground truth in docs). Only the first segment
//! shares the super-frame's IP ID and sequence number, so packet identities
//! cannot match them; their bytes can.
//!
//! # What is kept
//!
//! Every TCP super-frame that the dedup does not suppress (payload larger
//! than [`SUPER_FRAME_PAYLOAD`], more than a 1500-byte MTU carries) is kept
//! here with its payload, its tap point and rank, for two windows of kernel
//! time. Segments of one super-frame all carry its acknowledgement number, so
//! frames are found by it, which NAT does not rewrite; a segment matches a
//! kept frame whose sequence range covers it entirely.
//!
//! # The check
//!
//! A copy the dedup held (it was seen at a tap that is not the best) is
//! checked when its hold ends, once every capture thread has read a window
//! past it, so every copy that could cover it has been kept by then, whatever
//! order the rings were read in. If a kept frame from another tap point of
//! better rank covers its bytes, it is a duplicate when the bytes are equal
//! ([`Coverage::Same`]), and delivered and flagged when they differ
//! ([`Coverage::Different`]): a segment that overlaps seen bytes with
//! different data is never hidden.
//!
//! The converse (a super-frame at a worse tap than its segments) does not
//! occur on a Docker host: GRO merges on receive, before any tap, so every
//! later copy is merged alike (ground truth: inbound with GRO on the uplink).
//! It is not handled: such a super-frame is delivered beside its segments.
//!
//! # Memory
//!
//! Bounded by a byte budget: a frame that would exceed it is not kept (its
//! segments are then delivered too, counted as [`RangeCounters::not_kept`]).
//! [`SHARDS`] mutexes by acknowledgement number; locked only for super-frames
//! and for held TCP data copies.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::dedup_table::TapId;

/// TCP payload bytes above which a frame is a super-frame: more than a
/// 1500-byte MTU can carry in one IPv4 TCP segment without options.
pub const SUPER_FRAME_PAYLOAD: usize = 1460;

/// Shards by acknowledgement number.
pub const SHARDS: usize = 64;

/// Kept frames live this many windows.
pub const RETENTION_WINDOWS: u64 = 2;

struct KeptFrame {
    ack: u32,
    seq: u32,
    payload: Box<[u8]>,
    tap: TapId,
    rank: u8,
    timestamp_ns: u64,
}

/// How a held segment stands against the kept super-frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// No kept frame of better rank from another tap covers it.
    Uncovered,
    /// Covered with equal bytes by the frame kept at `tap`: a duplicate.
    Same {
        /// Where the covering frame was seen.
        tap: TapId,
    },
    /// Covered, but the bytes differ: deliver and flag.
    Different {
        /// Where the covering frame was seen.
        tap: TapId,
    },
}

/// A snapshot of the store's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeCounters {
    /// Super-frames kept.
    pub kept: u64,
    /// Super-frames not kept because the byte budget was spent.
    pub not_kept: u64,
}

/// The kept super-frames, shared by every capture thread.
pub struct RangeStore {
    shards: Box<[Mutex<Vec<KeptFrame>>]>,
    bytes: AtomicUsize,
    budget: usize,
    window_ns: u64,
    live: AtomicUsize,
    kept: AtomicU64,
    not_kept: AtomicU64,
}

impl std::fmt::Debug for RangeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeStore")
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .field("budget", &self.budget)
            .field("counters", &self.counters())
            .finish()
    }
}

impl RangeStore {
    /// A store that keeps at most `budget` payload bytes, each frame for
    /// [`RETENTION_WINDOWS`] windows of `window_ns`.
    pub fn new(budget: usize, window_ns: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            bytes: AtomicUsize::new(0),
            budget,
            window_ns,
            live: AtomicUsize::new(0),
            kept: AtomicU64::new(0),
            not_kept: AtomicU64::new(0),
        }
    }

    /// The counters.
    pub fn counters(&self) -> RangeCounters {
        RangeCounters {
            kept: self.kept.load(Ordering::Relaxed),
            not_kept: self.not_kept.load(Ordering::Relaxed),
        }
    }

    /// Payload bytes kept now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether a TCP payload of `len` bytes is a super-frame worth keeping.
    pub fn is_super_frame(len: usize) -> bool {
        len > SUPER_FRAME_PAYLOAD
    }

    /// Keeps a super-frame seen at `tap` (rank `rank`).
    pub fn keep(&self, ack: u32, seq: u32, payload: &[u8], tap: TapId, rank: u8, timestamp_ns: u64) {
        let mut shard = self.shard(ack);
        self.expire(&mut shard, timestamp_ns);
        if self.bytes.load(Ordering::Relaxed) + payload.len() > self.budget {
            self.not_kept.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.bytes.fetch_add(payload.len(), Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        self.kept.fetch_add(1, Ordering::Relaxed);
        shard.push(KeptFrame {
            ack,
            seq,
            payload: payload.into(),
            tap,
            rank,
            timestamp_ns,
        });
    }

    /// How the segment (`ack`, `seq`, `payload`) seen at `tap` (rank `rank`)
    /// stands against kept frames of better rank from other taps within the
    /// window of `timestamp_ns`.
    pub fn coverage(&self, ack: u32, seq: u32, payload: &[u8], tap: TapId, rank: u8, timestamp_ns: u64) -> Coverage {
        if payload.is_empty() || self.live.load(Ordering::Relaxed) == 0 {
            return Coverage::Uncovered;
        }
        let shard = self.shard(ack);
        let mut result = Coverage::Uncovered;
        for frame in shard.iter() {
            if frame.ack != ack
                || frame.tap == tap
                || frame.rank >= rank
                || frame.timestamp_ns.abs_diff(timestamp_ns) > self.window_ns
            {
                continue;
            }
            let offset = seq.wrapping_sub(frame.seq) as usize;
            // A segment before the frame's start wraps to a huge offset.
            let Some(covered) = frame.payload.get(offset..).and_then(|rest| rest.get(..payload.len())) else {
                continue;
            };
            if covered == payload {
                return Coverage::Same { tap: frame.tap };
            }
            result = Coverage::Different { tap: frame.tap };
        }
        result
    }

    fn shard(&self, ack: u32) -> std::sync::MutexGuard<'_, Vec<KeptFrame>> {
        // Acks of one host's flows are spread over 32 bits: the low bits do.
        self.shards[ack as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn expire(&self, shard: &mut Vec<KeptFrame>, now_ns: u64) {
        let horizon = self.window_ns.saturating_mul(RETENTION_WINDOWS);
        shard.retain(|frame| {
            let keep = now_ns.saturating_sub(frame.timestamp_ns) <= horizon;
            if !keep {
                self.bytes.fetch_sub(frame.payload.len(), Ordering::Relaxed);
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 20_000_000;

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn segments_of_a_kept_super_frame_are_covered_by_a_better_tap_only() {
        let store = RangeStore::new(1 << 20, WINDOW);
        let frame = payload(1448 * 4);
        let base = u32::MAX - 2000; // the sequence space wraps inside the frame
        store.keep(77, base, &frame, TapId(0), 0, 1_000);
        for i in 0..4 {
            let seq = base.wrapping_add(1448 * i as u32);
            let segment = &frame[1448 * i..1448 * (i + 1)];
            assert_eq!(
                store.coverage(77, seq, segment, TapId(5), 3, 2_000),
                Coverage::Same { tap: TapId(0) }
            );
            // The same tap, or one not worse, is never covered.
            assert_eq!(
                store.coverage(77, seq, segment, TapId(0), 3, 2_000),
                Coverage::Uncovered
            );
            assert_eq!(
                store.coverage(77, seq, segment, TapId(5), 0, 2_000),
                Coverage::Uncovered
            );
        }
        // Another ack, a range sticking out, or out of the window: not covered.
        assert_eq!(
            store.coverage(78, base, &frame[..1448], TapId(5), 3, 2_000),
            Coverage::Uncovered
        );
        let last = base.wrapping_add(1448 * 3 + 1);
        assert_eq!(
            store.coverage(77, last, &frame[..1448], TapId(5), 3, 2_000),
            Coverage::Uncovered
        );
        let before = base.wrapping_sub(1);
        assert_eq!(
            store.coverage(77, before, &frame[..10], TapId(5), 3, 2_000),
            Coverage::Uncovered
        );
        assert_eq!(
            store.coverage(77, base, &frame[..1448], TapId(5), 3, 1_000 + WINDOW + 1),
            Coverage::Uncovered
        );
    }

    #[test]
    fn different_bytes_over_a_kept_range_are_flagged() {
        let store = RangeStore::new(1 << 20, WINDOW);
        let frame = payload(3000);
        store.keep(1, 100, &frame, TapId(0), 0, 0);
        let mut changed = frame[1000..2000].to_vec();
        changed[10] ^= 0xff;
        assert_eq!(
            store.coverage(1, 1100, &changed, TapId(1), 2, 0),
            Coverage::Different { tap: TapId(0) }
        );
    }

    #[test]
    fn the_budget_bounds_memory_and_old_frames_expire() {
        let store = RangeStore::new(5000, WINDOW);
        store.keep(1, 0, &payload(3000), TapId(0), 0, 0);
        store.keep(2, 0, &payload(3000), TapId(0), 0, 0);
        assert_eq!(store.counters(), RangeCounters { kept: 1, not_kept: 1 });
        assert_eq!(store.bytes(), 3000);
        // Same shard as ack 1 (1 + SHARDS), much later: ack 1's frame goes.
        store.keep(1 + SHARDS as u32, 0, &payload(3000), TapId(0), 0, 3 * WINDOW);
        assert_eq!(store.bytes(), 3000);
        assert_eq!(store.counters().kept, 2);
    }
}
