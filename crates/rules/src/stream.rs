//! TCP stream reassembly for the signature engine: one
//! [`StreamReassembler`] per flow direction, fed payload segments with their
//! sequence numbers, exposing the data that became contiguous so that
//! [`RuleSet::match_stream`](crate::RuleSet::match_stream) scans each byte
//! once, with a window of already-scanned bytes kept so that a pattern split
//! across segments matches, exactly once.
//!
//! Policy on overlaps: **first-seen data wins** (Suricata's `bsd` /
//! "first" policy; Linux itself keeps the *later* data for some overlaps,
//! but an IDS that cannot know the receiver's OS only needs to be
//! consistent and to say when it had to choose). A retransmission with the
//! same bytes is silent and never rescanned; an overlap whose bytes differ
//! from what was kept raises [`StreamAnomaly::OverlapDifferentData`] with
//! its sequence range, and the kept bytes stay. Bytes of an overlap older
//! than the kept window can no longer be compared: they are counted in
//! [`StreamStats::unchecked_overlap_bytes`].
//!
//! Bounds:
//! * **depth** ([`StreamConfig::depth`], 1 MiB by default): bytes past it are
//!   neither buffered nor inspected; reaching it is reported once
//!   ([`StreamAnomaly::DepthReached`]) and the bytes counted;
//! * **memory**: every reassembler charges its buffers to one
//!   [`StreamMemory`] shared by the streams of a worker. Contiguous data is
//!   always accepted (it is scanned and trimmed to the window at once);
//!   an out-of-order segment that would take the total over the cap is
//!   dropped, counted, and reported ([`StreamAnomaly::OutOfOrderDropped`]).
//!   The dropped range is remembered as a hole: when the stream reaches it,
//!   it skips over it ([`StreamAnomaly::GapSkipped`]) instead of waiting
//!   forever for bytes the sender will not resend, and the window restarts
//!   after the gap, so no match spans it.
//!
//! Memory is released when a reassembler is dropped.
//!
//! The end of a direction ([`StreamReassembler::close`], on FIN or RST, or
//! the depth reached) lets the matcher decide matches that waited for more
//! data; the reassembler keeps, per rule, at most one waiting entry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes charged per buffered out-of-order segment on top of its data (the
/// map node and the vector header).
const SEGMENT_OVERHEAD: usize = 64;

/// The default inspection depth per flow direction.
pub const DEFAULT_STREAM_DEPTH: u64 = 1 << 20;

/// The default memory cap of one worker's streams.
pub const DEFAULT_STREAM_MEMCAP: usize = 64 << 20;

/// Reassembly settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes of each direction that are reassembled and inspected.
    pub depth: u64,
    /// Bytes of already-scanned data kept to find matches straddling two
    /// chunks (and to compare retransmissions against). The detector uses
    /// the larger of this and the rule set's
    /// [`stream_window`](crate::RuleSet::stream_window).
    pub window: usize,
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig {
            depth: DEFAULT_STREAM_DEPTH,
            window: 0,
        }
    }
}

/// The memory account shared by all streams of a worker.
#[derive(Debug)]
pub struct StreamMemory {
    cap: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
    dropped_bytes: AtomicU64,
    dropped_segments: AtomicU64,
}

impl StreamMemory {
    /// An account of `cap` bytes.
    pub fn new(cap: usize) -> Arc<StreamMemory> {
        Arc::new(StreamMemory {
            cap,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            dropped_bytes: AtomicU64::new(0),
            dropped_segments: AtomicU64::new(0),
        })
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever charged at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Out-of-order bytes dropped because of the cap.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes.load(Ordering::Relaxed)
    }

    /// Out-of-order segments dropped because of the cap.
    pub fn dropped_segments(&self) -> u64 {
        self.dropped_segments.load(Ordering::Relaxed)
    }

    fn try_charge(&self, n: usize) -> bool {
        let ok = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(n).filter(|t| *t <= self.cap)
            })
            .is_ok();
        if ok {
            self.peak.fetch_max(self.used(), Ordering::Relaxed);
        }
        ok
    }

    fn charge(&self, n: usize) {
        let now = self.used.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Something the reassembler had to decide or give up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamAnomaly {
    /// A segment overlapped kept data with different bytes; the first-seen
    /// bytes were kept. `seq_end` is exclusive.
    OverlapDifferentData {
        /// First sequence number of the overlap.
        seq_start: u32,
        /// Sequence number past the overlap.
        seq_end: u32,
    },
    /// An out-of-order segment was dropped: the memory cap was reached.
    OutOfOrderDropped {
        /// First sequence number dropped.
        seq_start: u32,
        /// Sequence number past the dropped bytes.
        seq_end: u32,
    },
    /// The stream skipped a range whose bytes had been dropped (reported by
    /// the insert that reached it, or by the next one when bytes before the
    /// gap were still to be scanned).
    GapSkipped {
        /// First sequence number skipped.
        seq_start: u32,
        /// Sequence number past the skipped bytes.
        seq_end: u32,
    },
    /// The stream reached its depth: nothing past it is inspected.
    DepthReached,
}

/// Counters of one stream direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes that became contiguous.
    pub bytes: u64,
    /// Segments that arrived ahead of a gap.
    pub out_of_order_segments: u64,
    /// Bytes received again with the same content.
    pub retransmitted_bytes: u64,
    /// Overlaps whose bytes differed.
    pub overlaps_different: u64,
    /// Overlapping bytes too old to compare.
    pub unchecked_overlap_bytes: u64,
    /// Out-of-order bytes dropped at the memory cap.
    pub dropped_bytes: u64,
    /// Gaps skipped.
    pub gaps_skipped: u64,
    /// Bytes past the depth, not inspected.
    pub bytes_past_depth: u64,
    /// Whether the depth was reached.
    pub depth_reached: bool,
}

/// What one [`StreamReassembler::insert`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Bytes that became contiguous and wait to be scanned.
    pub new_bytes: usize,
    /// What had to be reported.
    pub anomalies: Vec<StreamAnomaly>,
}

/// Reassembles one direction of a TCP connection.
#[derive(Debug)]
pub struct StreamReassembler {
    /// Sequence number of stream offset 0.
    base_seq: u32,
    /// Offset past the contiguous data.
    next: u64,
    /// Contiguous bytes `[buf_start, next)`: the kept window and the bytes
    /// not yet scanned.
    buf: Vec<u8>,
    buf_start: u64,
    /// Bytes before this offset were scanned.
    inspected: u64,
    window: usize,
    depth: u64,
    /// Out-of-order segments by start offset; never overlapping.
    ooo: BTreeMap<u64, Vec<u8>>,
    /// Ranges dropped at the memory cap, start to end.
    holes: BTreeMap<u64, u64>,
    /// Bytes charged for `buf`.
    buf_charged: usize,
    memory: Arc<StreamMemory>,
    /// Anomalies found after a scan, reported by the next insert.
    deferred: Vec<StreamAnomaly>,
    /// The stream offset where each rule's last match ended.
    reported: Vec<((u32, u32), u64)>,
    /// Rules whose match waits for more data (a negated check reaching past
    /// the data scanned), with the stream offset their match must end
    /// after; decided when the stream ends. At most one entry per rule.
    pending: Vec<((u32, u32), u64)>,
    /// Whether the sender ended this direction (FIN, RST, flow end).
    closed: bool,
    stats: StreamStats,
}

impl StreamReassembler {
    /// A reassembler whose first payload byte has sequence number
    /// `first_seq` (the ISN + 1 of a handshake seen, or the first segment's
    /// sequence number of a flow picked up mid-stream).
    pub fn new(first_seq: u32, config: StreamConfig, memory: Arc<StreamMemory>) -> StreamReassembler {
        StreamReassembler {
            base_seq: first_seq,
            next: 0,
            buf: Vec::new(),
            buf_start: 0,
            inspected: 0,
            window: config.window,
            depth: config.depth,
            ooo: BTreeMap::new(),
            holes: BTreeMap::new(),
            buf_charged: 0,
            memory,
            deferred: Vec::new(),
            reported: Vec::new(),
            pending: Vec::new(),
            closed: false,
            stats: StreamStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// The stream offset past the contiguous data.
    pub fn contiguous_len(&self) -> u64 {
        self.next
    }

    /// Bytes waiting behind a gap.
    pub fn out_of_order_bytes(&self) -> usize {
        self.ooo.values().map(Vec::len).sum()
    }

    /// Bytes this stream has charged to the memory account.
    pub fn memory_used(&self) -> usize {
        self.buf_charged + self.ooo.values().map(|v| v.len() + SEGMENT_OVERHEAD).sum::<usize>()
    }

    /// The bytes kept after scanning (for matches straddling chunks).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Whether contiguous data waits to be scanned.
    pub fn has_new_data(&self) -> bool {
        self.inspected < self.next
    }

    fn seq_of(&self, offset: u64) -> u32 {
        self.base_seq.wrapping_add(offset as u32)
    }

    /// The stream offset of `seq`, relative to the contiguous end (so
    /// sequence wrap-around is handled within ±2 GiB of it).
    fn offset_of(&self, seq: u32) -> i64 {
        let delta = seq.wrapping_sub(self.seq_of(self.next)) as i32;
        self.next as i64 + i64::from(delta)
    }

    /// Adds a segment's payload.
    pub fn insert(&mut self, seq: u32, data: &[u8]) -> InsertOutcome {
        let mut out = InsertOutcome {
            new_bytes: 0,
            anomalies: std::mem::take(&mut self.deferred),
        };
        if data.is_empty() {
            return out;
        }
        let mut start = self.offset_of(seq);
        let mut end = start + data.len() as i64;
        if end <= 0 {
            self.stats.unchecked_overlap_bytes += data.len() as u64;
            return out;
        }
        let mut data = data;
        if start < 0 {
            self.stats.unchecked_overlap_bytes += (-start) as u64;
            data = &data[(-start) as usize..];
            start = 0;
        }
        // No limit (u64::MAX) must not wrap to a negative depth.
        let depth = i64::try_from(self.depth).unwrap_or(i64::MAX);
        if end > depth {
            let past = (end - start.max(depth)) as u64;
            self.stats.bytes_past_depth += past;
            if start >= depth {
                self.note_depth(&mut out);
                return out;
            }
            data = &data[..(depth - start) as usize];
            end = depth;
        }
        let (start, end) = (start as u64, end as u64);

        // The part that overlaps data already contiguous.
        let mut from = start;
        if start < self.next {
            let ov_end = end.min(self.next);
            let cmp_start = start.max(self.buf_start);
            if cmp_start > start {
                self.stats.unchecked_overlap_bytes += cmp_start.min(ov_end) - start;
            }
            if cmp_start < ov_end {
                let kept = &self.buf[(cmp_start - self.buf_start) as usize..(ov_end - self.buf_start) as usize];
                let new = &data[(cmp_start - start) as usize..(ov_end - start) as usize];
                compare(&mut self.stats, self.base_seq, cmp_start, kept, new, &mut out);
            }
            from = ov_end;
        }
        if from >= end {
            return out;
        }
        let mut rest = &data[(from - start) as usize..];
        let before = self.stats.bytes;
        if from == self.next {
            // In-order bytes are never refused; only what lies past the
            // first buffered segment goes through the out-of-order path.
            let first_seg = self.ooo.keys().next().map_or(u64::MAX, |k| *k);
            let take = rest.len().min((first_seg - from) as usize);
            self.append(&rest[..take]);
            from += take as u64;
            rest = &rest[take..];
        } else {
            self.stats.out_of_order_segments += 1;
        }
        if !rest.is_empty() {
            self.insert_ooo(from, rest, &mut out);
        }
        self.drain(&mut out.anomalies);
        if self.next >= self.depth {
            self.note_depth(&mut out);
        }
        self.recharge_buf();
        out.new_bytes = (self.stats.bytes - before) as usize;
        out
    }

    fn note_depth(&mut self, out: &mut InsertOutcome) {
        if !self.stats.depth_reached {
            self.stats.depth_reached = true;
            out.anomalies.push(StreamAnomaly::DepthReached);
        }
    }

    fn append(&mut self, data: &[u8]) {
        if self.buf.is_empty() {
            self.buf_start = self.next;
        }
        self.buf.extend_from_slice(data);
        self.next += data.len() as u64;
        self.stats.bytes += data.len() as u64;
    }

    /// Buffers `data` at `start >= next`, filling only the ranges no kept
    /// segment covers (first-seen wins), comparing the rest.
    fn insert_ooo(&mut self, start: u64, data: &[u8], out: &mut InsertOutcome) {
        let end = start + data.len() as u64;
        // Existing segments overlapping [start, end), in order.
        let first_key = self
            .ooo
            .range(..=start)
            .next_back()
            .filter(|(k, v)| **k + v.len() as u64 > start)
            .map(|(k, _)| *k);
        let lo = first_key.unwrap_or(start);
        let overlapping: Vec<(u64, u64)> = self
            .ooo
            .range(lo..end)
            .map(|(k, v)| (*k, *k + v.len() as u64))
            .collect();
        let mut cursor = start;
        let mut pieces = Vec::new();
        for (s, e) in overlapping {
            if s > cursor {
                pieces.push((cursor, s));
            }
            let (cs, ce) = (s.max(start), e.min(end));
            if cs < ce {
                let kept = &self.ooo[&s][(cs - s) as usize..(ce - s) as usize];
                let new = &data[(cs - start) as usize..(ce - start) as usize];
                compare(&mut self.stats, self.base_seq, cs, kept, new, out);
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        for (s, e) in pieces {
            let n = (e - s) as usize;
            if self.memory.try_charge(n + SEGMENT_OVERHEAD) {
                self.ooo
                    .insert(s, data[(s - start) as usize..(e - start) as usize].to_vec());
            } else {
                self.memory.dropped_bytes.fetch_add(n as u64, Ordering::Relaxed);
                self.memory.dropped_segments.fetch_add(1, Ordering::Relaxed);
                self.stats.dropped_bytes += n as u64;
                self.holes.insert(s, e);
                out.anomalies.push(StreamAnomaly::OutOfOrderDropped {
                    seq_start: self.seq_of(s),
                    seq_end: self.seq_of(e),
                });
            }
        }
    }

    /// Moves segments that became contiguous into the buffer, skipping
    /// holes the stream reached.
    fn drain(&mut self, out: &mut Vec<StreamAnomaly>) {
        loop {
            while let Some((_, &he)) = self.holes.first_key_value() {
                if he <= self.next {
                    self.holes.pop_first();
                } else {
                    break;
                }
            }
            if let Some(seg) = self.ooo.remove(&self.next) {
                self.memory.release(seg.len() + SEGMENT_OVERHEAD);
                self.append(&seg);
                continue;
            }
            let Some((&hs, &he)) = self.holes.first_key_value() else {
                break;
            };
            if hs > self.next || self.inspected < self.next {
                // Not reached yet; or bytes before the gap wait to be
                // scanned: `mark_scanned` skips it after the scan.
                break;
            }
            // The hole's bytes were dropped: skip them. Data buffered
            // inside the hole since then is dropped too.
            self.holes.pop_first();
            let inside: Vec<u64> = self.ooo.range(self.next..he).map(|(k, _)| *k).collect();
            for k in inside {
                let seg = self.ooo.remove(&k).expect("listed key");
                self.memory.release(seg.len() + SEGMENT_OVERHEAD);
                let seg_end = k + seg.len() as u64;
                if seg_end > he {
                    let tail = seg[(he - k) as usize..].to_vec();
                    if self.memory.try_charge(tail.len() + SEGMENT_OVERHEAD) {
                        self.ooo.insert(he, tail);
                    } else {
                        self.memory
                            .dropped_bytes
                            .fetch_add(tail.len() as u64, Ordering::Relaxed);
                        self.memory.dropped_segments.fetch_add(1, Ordering::Relaxed);
                        self.stats.dropped_bytes += tail.len() as u64;
                        self.holes.insert(he, seg_end);
                    }
                }
            }
            out.push(StreamAnomaly::GapSkipped {
                seq_start: self.seq_of(self.next),
                seq_end: self.seq_of(he),
            });
            self.stats.gaps_skipped += 1;
            // No match spans the gap: the window restarts after it.
            self.buf.clear();
            self.inspected = he;
            self.next = he;
            self.buf_start = he;
        }
    }

    /// Keeps the buffer's charge in step with its capacity (contiguous
    /// data is never refused: it is scanned and trimmed at once).
    fn recharge_buf(&mut self) {
        let now = self.buf.capacity();
        if now > self.buf_charged {
            self.memory.charge(now - self.buf_charged);
        } else {
            self.memory.release(self.buf_charged - now);
        }
        self.buf_charged = now;
    }

    /// The data to scan: the kept window and the new bytes, the stream
    /// offset of its first byte, and the index where the new bytes start.
    pub(crate) fn scan_view(&self) -> (&[u8], u64, usize) {
        let new_start = (self.inspected.max(self.buf_start) - self.buf_start) as usize;
        (&self.buf, self.buf_start, new_start)
    }

    /// Marks everything contiguous as scanned and trims the buffer to the
    /// window.
    pub(crate) fn mark_scanned(&mut self) {
        self.inspected = self.next;
        if self.buf.len() > self.window {
            let cut = self.buf.len() - self.window;
            self.buf.drain(..cut);
            self.buf_start += cut as u64;
        }
        // Idle streams hold only their window: thousands of flows are
        // mostly idle.
        if self.buf.capacity() > 4 * self.window.max(64) {
            self.buf.shrink_to(self.window);
        }
        // A hole reached while bytes before it waited can be skipped now,
        // which may make buffered data contiguous (scanned next).
        let mut deferred = std::mem::take(&mut self.deferred);
        self.drain(&mut deferred);
        self.deferred = deferred;
        self.recharge_buf();
    }

    /// Marks the direction as ended (FIN, RST, the flow's end): no more
    /// data will follow, so the next
    /// [`match_stream`](crate::RuleSet::match_stream) decides the matches
    /// that waited for more data with the data there is.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether no more data will be inspected: the direction ended, or its
    /// depth was reached.
    pub fn is_finished(&self) -> bool {
        self.closed || self.stats.depth_reached
    }

    /// Whether a match of some rule waits for more data.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Records that `key`'s match waits for more data and must end after
    /// stream offset `after` (`Some`; a match that already waited keeps the
    /// earlier offset), or that it no longer waits (`None`).
    pub(crate) fn set_pending(&mut self, key: (u32, u32), after: Option<u64>) {
        let at = self.pending.iter().position(|(k, _)| *k == key);
        match (at, after) {
            (Some(i), Some(a)) => self.pending[i].1 = self.pending[i].1.min(a),
            (None, Some(a)) => self.pending.push((key, a)),
            (Some(i), None) => {
                self.pending.swap_remove(i);
            }
            (None, None) => {}
        }
    }

    /// Takes the rules whose match waits for more data.
    pub(crate) fn take_pending(&mut self) -> Vec<((u32, u32), u64)> {
        std::mem::take(&mut self.pending)
    }

    /// The stream offset where `(gid, sid)`'s last match in this stream
    /// ended.
    pub(crate) fn last_reported(&self, key: (u32, u32)) -> Option<u64> {
        self.reported.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
    }

    pub(crate) fn set_reported(&mut self, key: (u32, u32), end: u64) {
        match self.reported.iter_mut().find(|(k, _)| *k == key) {
            Some((_, e)) => *e = end,
            None => self.reported.push((key, end)),
        }
    }
}

/// Compares kept and new bytes of an overlap starting at stream `offset`.
fn compare(stats: &mut StreamStats, base_seq: u32, offset: u64, kept: &[u8], new: &[u8], out: &mut InsertOutcome) {
    if kept == new {
        stats.retransmitted_bytes += kept.len() as u64;
        return;
    }
    let first = kept.iter().zip(new).position(|(a, b)| a != b).unwrap_or(0);
    let last = kept.iter().zip(new).rposition(|(a, b)| a != b).unwrap_or(first);
    stats.overlaps_different += 1;
    stats.retransmitted_bytes += (kept.len() - (last + 1 - first)) as u64;
    out.anomalies.push(StreamAnomaly::OverlapDifferentData {
        seq_start: base_seq.wrapping_add((offset + first as u64) as u32),
        seq_end: base_seq.wrapping_add((offset + last as u64 + 1) as u32),
    });
}

impl Drop for StreamReassembler {
    fn drop(&mut self) {
        self.memory.release(self.memory_used());
    }
}
