//! Packet parsing for ringsieve, growing toward NAT-invariant packet identity
//! and canonical flows (the dedup of later steps).
//!
//! Views here are zero-copy and follow one panic contract, written once:
//! a view is built with `new_checked` from untrusted bytes, which verifies the
//! length its accessors rely on; after that no accessor panics, whatever the
//! bytes. Wire codes are open enums (`Unknown(u16)`), so no value is rejected
//! for being unexpected. Errors are small `Copy` enums.

#![forbid(unsafe_code)]

pub mod ethernet;

pub use ethernet::{EtherType, EthernetFrame, ParseError};
