//! NAT bindings from conntrack, so that ringsieve knows which public tuple
//! is which container tuple before the first duplicate shows it: a
//! ctnetlink subscriber ([`ConntrackWatcher`]) to NEW and DESTROY events of
//! the network namespace it is opened in (the Docker host's), with a dump of
//! the table at start and after an overflow, that reports NATed connections
//! as [`NatEvent::Bound`] and [`NatEvent::Released`] of a [`NatBinding`]
//! (container-side and public tuples of the original direction, convertible
//! to [`flow::NatTranslation`] for [`flow::NatBindings::learn`]).
//!
//! [`message`] decodes the ctnetlink wire format by hand; [`binding`] turns
//! conntrack's original and reply tuples into ringsieve's two sides;
//! [`watcher`] owns the socket. Without conntrack (no CAP_NET_ADMIN, no
//! ctnetlink) opening fails with [`ConntrackError::Unavailable`], for the
//! caller to log once and carry on.

#![forbid(unsafe_code)]

pub mod binding;
pub mod message;
pub mod watcher;

#[cfg(test)]
mod craft;
#[cfg(test)]
mod tests;

pub use binding::{NatBinding, NatEvent, NatKind};
pub use message::{Conntrack, CtKind, CtTuple, ParseError};
pub use watcher::{ConntrackError, ConntrackWatcher, WatcherConfig, WatcherCounters};
