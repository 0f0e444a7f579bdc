//! The accounting row of the exit summary, one shape for `ringsieve run`
//! and `ringsieve read`: per interface and in total, what was captured and
//! where each packet went (delivered to a worker, suppressed as a
//! duplicate, malformed, dropped before a worker by reason), and whether
//! `captured = delivered + duplicates + malformed + queue_drops` holds.

use serde_json::json;

/// One row of the accounting.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accounting {
    pub captured: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub queue_full: u64,
    pub worker_stopped: u64,
}

impl Accounting {
    /// Adds `other`.
    pub fn add(&mut self, other: &Accounting) {
        self.captured += other.captured;
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.malformed += other.malformed;
        self.queue_full += other.queue_full;
        self.worker_stopped += other.worker_stopped;
    }

    /// Writes the row's fields, and `balanced`, into `entry`.
    pub fn write(&self, entry: &mut serde_json::Value) {
        let queue_drops = self.queue_full + self.worker_stopped;
        entry["captured"] = json!(self.captured);
        entry["delivered"] = json!(self.delivered);
        entry["duplicates"] = json!(self.duplicates);
        entry["malformed"] = json!(self.malformed);
        entry["queue_drops"] = json!(queue_drops);
        entry["queue_drops_by_reason"] = json!({
            "queue_full": self.queue_full,
            "worker_stopped": self.worker_stopped,
        });
        entry["balanced"] = json!(self.captured == self.delivered + self.duplicates + self.malformed + queue_drops);
    }
}
