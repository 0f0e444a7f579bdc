//! EVE JSON output, as Suricata writes it: one complete JSON object per
//! line. The flow tracker worker ends each connection in one `flow` record
//! in the container's address space; a [`FlowInspector`] running inside it
//! (the signature engine) adds `alert` and `anomaly` events carrying the
//! same `flow_id`; `stats` events report the pipeline.
//!
//! Make one [`EveWriter`] (a file opened for append, or `-` for stdout) and
//! one [`FlowTracker`] per worker thread sharing it:
//!
//! ```no_run
//! use std::sync::Arc;
//! use eve::{EveWriter, FlowTracker, FlowTrackerConfig};
//!
//! let writer = Arc::new(EveWriter::open("eve.json")?);
//! let workers = 4;
//! let trackers: Vec<FlowTracker> = (0..workers)
//!     .map(|_| {
//!         let config = FlowTrackerConfig { max_flows: (1 << 20) / workers, ..Default::default() };
//!         FlowTracker::new(config, Arc::clone(&writer))
//!     })
//!     .collect();
//! // ... each runs as a `pipeline::worker::Worker` in the worker pool,
//! // whose `finish` writes the open flows; then:
//! writer.finish()?;
//! # let _ = trackers;
//! # Ok::<(), std::io::Error>(())
//! ```

mod inspect;
mod json;
mod record;
#[cfg(test)]
mod tests;
mod timeouts;
mod timestamp;
mod tracker;
mod writer;

pub use inspect::{Alert, Anomaly, FlowEndEvent, FlowEvent, FlowInspector, InspectedPacket, NoInspector};
pub use record::{EndReason, FLOW_ID_MASK};
pub use timeouts::{FlowState, FlowTimeouts, TimeoutProtocol, TIMEOUT_KEYS};
pub use timestamp::format_timestamp;
pub use tracker::{FlowTracker, FlowTrackerConfig, FlowTrackerCounters, MAX_PENDING_NOTICES, NOTICE_WAIT_NS};
pub use writer::{stats_event, EveWriter, FLUSH_BYTES};
