//! TPACKET_V3 capture for ringsieve: one memory-mapped receive ring per
//! interface, read by capture threads that each serve many rings.
//!
//! This is the only crate of the workspace with `unsafe` code, confined to
//! [`sys`] (the system-call chokepoint and the ring mapping) and [`ring`]
//! (reading blocks the kernel shares). Everything else here, and everything
//! built on it, uses the safe API:
//!
//! - [`CaptureRing::open`] opens a ring on an [`Interface`] with a
//!   [`RingConfig`] (geometry per [`InterfaceRole`], promiscuous membership),
//!   shrinking it if the kernel refuses the memory.
//! - [`RingSet`] serves many rings from one thread through epoll and closes
//!   the ring of an interface that disappears.
//! - [`ring::Packet`] is a zero-copy view of one packet with its kernel
//!   metadata; it lives until its block is handed back.
//! - [`FanoutGroup`] spreads one interface over several rings, with group ids
//!   the kernel guarantees unique.
//! - [`FrameSender`] sends raw frames (the test bed's blaster).
//!
//! It does not parse packets (that is the `flow` crate) nor decide what to do
//! with them (the `pipeline` crate).

pub mod capture_ring;
pub mod config;
pub mod cpu;
pub mod fanout;
pub mod interface;
pub mod memory;
pub mod netns;
pub mod ring;
pub mod ring_set;
mod sys;
pub mod transmit;

pub use capture_ring::{CaptureRing, CloseReason, KernelCounters, OpenError, UnboundRing};
pub use config::{GeometryError, InterfaceRole, RingConfig, RingGeometry};
pub use fanout::{FanoutGroup, FanoutMode};
pub use interface::{Interface, UnknownInterface};
pub use ring::{Direction, Packet, PacketType, VlanTag};
pub use ring_set::{ClosedRing, RingId, RingSet};
pub use sys::SyscallError;
pub use transmit::FrameSender;
