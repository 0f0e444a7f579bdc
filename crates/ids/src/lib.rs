//! The IDS workers' detection: the `rules` signature engine run inside each
//! worker's flow tracker, so every packet the dedup delivered once is
//! inspected once, and every alert carries the flow's `flow_id`, its
//! container-side addresses and its containers.
//!
//! - [`RuleSource`] (module [`source`]): the rule files, variables and
//!   classification table, loaded into one shared rule set and loaded again
//!   on SIGHUP without stopping the workers; a failed reload keeps the
//!   rules in use.
//! - [`SignatureInspector`] (module [`inspector`]): an
//!   [`eve::FlowInspector`] matching each packet, reassembling each TCP
//!   direction (bounded by depth and a memory account shared by the
//!   workers) and scanning the reassembled data, reporting alerts and
//!   overlap anomalies.
//!
//! ```no_run
//! use std::sync::Arc;
//! use eve::{EveWriter, FlowTracker, FlowTrackerConfig};
//! use ids::{RuleSource, RuleSpec, SignatureInspector};
//! use rules::{DetectorConfig, StreamMemory, Vars};
//!
//! let spec = RuleSpec {
//!     files: vec!["local.rules".into()],
//!     vars: Vars::with_home_net(["172.17.0.0/16"]),
//!     classification: None,
//! };
//! let (source, report) = RuleSource::load(spec)?;
//! println!("{}", ids::describe_load(&report, source.files()));
//! let writer = Arc::new(EveWriter::open("eve.json")?);
//! let memory = StreamMemory::new(256 << 20);
//! let worker = FlowTracker::with_inspector(
//!     FlowTrackerConfig::default(),
//!     writer,
//!     SignatureInspector::new(Arc::clone(&source), DetectorConfig::default(), memory),
//! );
//! // ... the worker runs in the pool; on SIGHUP: source.reload()
//! # let _ = worker;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod inspector;
pub mod source;
#[cfg(test)]
mod tests;

pub use inspector::{DetectionCounters, FlowDetection, SignatureInspector};
pub use source::{describe_load, RuleSource, RuleSpec, SourceError};
