//! Host interface discovery for ringsieve: which interfaces a Docker host
//! has, what each is for, which to capture, and which container sits behind
//! a veth, kept current from rtnetlink so `ringsieve run` can capture an
//! interface within a millisecond of its creation. It does not capture;
//! the capture engine acts on what this crate reports.
//!
//! - [`LinkWatcher`] (module [`watcher`]): an RTM_GETLINK dump, then
//!   [`LinkEvent`]s from RTNLGRP_LINK and the route groups, with a re-dump
//!   and diff when the kernel drops notifications.
//! - [`Link`] (module [`link`]): the snapshot of one interface.
//! - [`role_of`] and [`Inventory`] (module [`inventory`]): roles
//!   ([`flow::TapRole`]: container veth, bridge, uplink, other; loopback
//!   excluded) kept current from events.
//! - [`Selection`] and [`Glob`] (module [`selection`]): `--interface` and
//!   `--exclude`.
//! - [`interface_subnets`] (module [`addresses`]): the subnets configured
//!   on the host's interfaces, for the signature engine's `HOME_NET`.
//! - [`Attributor`] and [`ContainerInfo`] (module [`container`]): the
//!   container behind a veth's peer namespace, by namespace file, process,
//!   cgroup and optionally the Docker API ([`docker`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use discovery::{Attributor, Inventory, InventoryChange, LinkWatcher, Selection};
//!
//! let mut watcher = LinkWatcher::open()?;
//! let mut inventory = Inventory::new();
//! let mut attributor = Attributor::new()?;
//! let selection = Selection::new(&["veth*", "docker0", "eth0"], &[]).expect("valid globs");
//! while let Some(event) = watcher.next_event(Some(Duration::from_secs(1)))? {
//!     for change in inventory.apply(&event) {
//!         if let InventoryChange::Appeared { ifindex, name, role } = change {
//!             if selection.selects(&name) {
//!                 let link = inventory.link(ifindex).expect("just applied");
//!                 let container = attributor.attribute(link)?;
//!                 println!("capture {name} as {} ({container:?})", role.name());
//!             }
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(unsafe_code)]

pub mod addresses;
pub mod container;
pub mod docker;
pub mod inventory;
pub mod link;
mod routes;
pub mod selection;
mod socket;
pub mod watcher;

pub use addresses::{interface_subnets, InterfaceSubnet};
pub use container::{container_id_from_cgroup, Attributor, ContainerId, ContainerInfo, Runtime};
pub use docker::{DockerClient, DockerContainer};
pub use flow::TapRole;
pub use inventory::{role_of, Inventory, InventoryChange};
pub use link::{Link, OperState};
pub use selection::{Glob, GlobError, Selection};
pub use watcher::{LinkEvent, LinkWatcher, WatcherConfig, WatcherStats};
