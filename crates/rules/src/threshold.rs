//! Per-worker state of `threshold` and `detection_filter`: one counter per
//! (gid, sid, tracked address), in a table of bounded size.
//!
//! Semantics, as Suricata's `ThresholdHandlePacket`, with windows of
//! `seconds` opened by the first match of a key:
//! * `limit`: alert on the first `count` matches of each window;
//! * `threshold`: alert on every `count`-th match within a window;
//! * `both`: alert once per window, on the `count`-th match;
//! * `detection_filter`: alert on every match after the first `count`
//!   ones of a window.
//!
//! Bounded memory: when the table is full, entries whose window has ended
//! are swept (at most once per second of packet time); if it is still full
//! the match is not tracked and alerts (fail open: an overloaded table
//! loses thresholding, never detection), counted in
//! [`ThresholdTable::untracked`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::rule::{Threshold, ThresholdKind, Track};

/// The default number of tracked keys.
pub const DEFAULT_THRESHOLD_ENTRIES: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    gid: u32,
    sid: u32,
    a: Option<IpAddr>,
    b: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Duration,
    window_end: Duration,
    count: u32,
}

/// The threshold counters of one worker.
#[derive(Debug)]
pub struct ThresholdTable {
    map: HashMap<Key, Entry>,
    capacity: usize,
    last_sweep: Option<Duration>,
    untracked: u64,
}

impl ThresholdTable {
    /// A table of at most `capacity` keys.
    pub fn new(capacity: usize) -> ThresholdTable {
        ThresholdTable {
            map: HashMap::new(),
            capacity: capacity.max(1),
            last_sweep: None,
            untracked: 0,
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Matches that alerted untracked because the table was full.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Records one match of a rule with threshold `t`; whether it alerts.
    pub(crate) fn check(&mut self, gid: u32, sid: u32, t: &Threshold, src: IpAddr, dst: IpAddr, now: Duration) -> bool {
        let (a, b) = match t.track {
            Track::BySrc => (Some(src), None),
            Track::ByDst => (Some(dst), None),
            Track::ByBoth => (Some(src), Some(dst)),
            Track::ByRule => (None, None),
        };
        let key = Key { gid, sid, a, b };
        let seconds = Duration::from_secs(u64::from(t.seconds));
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.sweep(now);
            if self.map.len() >= self.capacity {
                self.untracked += 1;
                return true;
            }
        }
        let e = self.map.entry(key).or_insert(Entry {
            window_start: now,
            window_end: now + seconds,
            count: 0,
        });
        if now > e.window_start + seconds {
            e.window_start = now;
            e.window_end = now + seconds;
            e.count = 0;
        }
        e.count += 1;
        match t.kind {
            ThresholdKind::Limit => e.count <= t.count,
            ThresholdKind::Threshold => {
                if e.count >= t.count {
                    e.count = 0;
                    true
                } else {
                    false
                }
            }
            ThresholdKind::Both => e.count == t.count,
            ThresholdKind::DetectionFilter => e.count > t.count,
        }
    }

    fn sweep(&mut self, now: Duration) {
        if self.last_sweep.is_some_and(|t| now < t + Duration::from_secs(1)) {
            return;
        }
        self.last_sweep = Some(now);
        self.map.retain(|_, e| e.window_end >= now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: ThresholdKind, count: u32, seconds: u32) -> Threshold {
        Threshold {
            kind,
            track: Track::BySrc,
            count,
            seconds,
        }
    }

    fn run(th: &Threshold, times: &[u64]) -> Vec<bool> {
        let mut table = ThresholdTable::new(16);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        times
            .iter()
            .map(|s| table.check(1, 1, th, ip, ip, Duration::from_secs(*s)))
            .collect()
    }

    #[test]
    fn kinds() {
        assert_eq!(
            run(&t(ThresholdKind::Limit, 2, 10), &[0, 1, 2, 3, 11, 12, 13]),
            [true, true, false, false, true, true, false]
        );
        assert_eq!(
            run(&t(ThresholdKind::Threshold, 2, 10), &[0, 1, 2, 3, 4]),
            [false, true, false, true, false]
        );
        assert_eq!(
            run(&t(ThresholdKind::Both, 2, 10), &[0, 1, 2, 3, 11, 12]),
            [false, true, false, false, false, true]
        );
        assert_eq!(
            run(&t(ThresholdKind::DetectionFilter, 2, 10), &[0, 1, 2, 3, 20]),
            [false, false, true, true, false]
        );
    }

    #[test]
    fn tracking_is_per_address_and_bounded() {
        let th = t(ThresholdKind::Limit, 1, 10);
        let mut table = ThresholdTable::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let now = Duration::from_secs(100);
        assert!(table.check(1, 1, &th, a, c, now));
        assert!(!table.check(1, 1, &th, a, c, now));
        assert!(table.check(1, 1, &th, b, c, now));
        // Full, nothing expired: fail open, counted.
        assert!(table.check(1, 1, &th, c, c, now));
        assert!(table.check(1, 1, &th, c, c, now));
        assert_eq!(table.untracked(), 2);
        assert_eq!(table.len(), 2);
        // Later, the old windows expired: swept, tracked again.
        let later = now + Duration::from_secs(60);
        assert!(table.check(1, 1, &th, c, c, later));
        assert!(!table.check(1, 1, &th, c, c, later));
        assert_eq!(table.len(), 1);
    }
}
