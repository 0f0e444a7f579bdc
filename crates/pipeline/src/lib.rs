//! The packet pipeline of ringsieve: capture threads that read rings and hand
//! every packet to a sink, with per-interface accounting.
//!
//! [`dedup_stage`] runs each capture thread's packets through its dedup
//! engine before its sink. [`offline`] runs the dedup engine over capture files (`ringsieve read`),
//! in timestamp order or in the order rings would be read.
//!
//! A capture thread serves a [`RingSet`](af_packet::RingSet) (one or
//! many rings, through epoll), pinned to a CPU when asked, and delivers to a
//! [`PacketSink`] it owns. Dedup and the fan-out to IDS worker threads come
//! between the two in later steps; the sink contract stays.

pub mod by_ifindex;
pub mod capture_thread;
pub mod clock;
pub mod dedup_stage;
pub mod fanout_stage;
pub mod host_book;
pub mod interfaces;
pub mod live;
pub mod offline;
pub mod reorder;
pub mod worker;
pub mod worker_pool;

pub use capture_thread::{CaptureReport, CaptureThreadConfig, InterfaceReport, PacketSink};
