//! NAT bindings from conntrack for `ringsieve run`: a thread subscribed to
//! the host namespace's ctnetlink events teaches every binding the kernel
//! sets up to the dedup's NAT table, so a NAT'd packet's uplink copy is put
//! in its container's flow from the first packet on, not only once the
//! dedup has matched two copies. The dedup still learns bindings from
//! duplicates; both feed the same table.
//!
//! Without conntrack (no permission, module absent), it says so once and
//! the dedup carries on with what it learns itself.
//!
//! Its counters are published as it goes (after each event, and every
//! 100 ms when there is none) for the metrics endpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use conntrack::{ConntrackError, ConntrackWatcher, NatEvent, WatcherCounters};
use flow::SieveShared;
use pipeline::clock::wall_clock_ns;
use serde_json::json;

/// What the feed did.
#[derive(Clone, Copy, Debug, Default)]
pub struct NatFeedReport {
    /// Whether conntrack could be read at all.
    pub available: bool,
    /// Bindings handed to the dedup that it did not know yet.
    pub learned: u64,
    /// The watcher's own counters.
    pub counters: WatcherCounters,
}

impl NatFeedReport {
    /// The `conntrack` object of the exit summary.
    pub fn summary(&self) -> serde_json::Value {
        let c = &self.counters;
        json!({
            "available": self.available,
            "bindings_learned": self.learned,
            "bound": c.bound,
            "released": c.released,
            "not_nat": c.skipped,
            "new_events": c.new_events,
            "destroy_events": c.destroy_events,
            "dump_entries": c.dump_entries,
            "overflows": c.overflows,
            "resyncs": c.resyncs,
            "malformed": c.malformed,
        })
    }
}

/// Starts the feed into `shared`'s NAT table; it runs until `stop`,
/// keeping `live` up to date.
pub fn start(
    shared: Arc<SieveShared>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<NatFeedReport>>,
) -> std::io::Result<JoinHandle<NatFeedReport>> {
    std::thread::Builder::new().name("conntrack".to_owned()).spawn(move || {
        let mut report = NatFeedReport::default();
        let publish = |report: &NatFeedReport| *live.lock().unwrap_or_else(PoisonError::into_inner) = *report;
        let mut watcher = match ConntrackWatcher::open() {
            Ok(watcher) => watcher,
            Err(ConntrackError::Unavailable(reason)) => {
                tracing::warn!(%reason, "conntrack is not available: NAT bindings are learned from duplicates only");
                return report;
            }
            Err(error) => {
                tracing::warn!(%error, "conntrack could not be read: NAT bindings are learned from duplicates only");
                return report;
            }
        };
        report.available = true;
        publish(&report);
        tracing::info!("following NAT bindings from conntrack");
        while !stop.load(Ordering::Relaxed) {
            match watcher.next_event(Some(Duration::from_millis(100))) {
                Ok(Some(NatEvent::Bound(binding))) => {
                    if shared.nat().learn(binding.to_translation(), wall_clock_ns()) {
                        report.learned += 1;
                    }
                }
                // Bindings age out of the dedup's table by use; a released
                // one is left to that.
                Ok(Some(NatEvent::Released(_)) | None) => {}
                Err(error) => {
                    tracing::warn!(%error, "reading conntrack failed: NAT bindings are learned from duplicates only");
                    break;
                }
            }
            report.counters = watcher.counters();
            publish(&report);
        }
        report.counters = watcher.counters();
        publish(&report);
        report
    })
}
