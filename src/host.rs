//! The host side of `ringsieve run` and `ringsieve interfaces`: rtnetlink
//! discovery of the namespace's interfaces (`discovery` crate), the roles
//! and containers the capture stages read from the [`HostBook`], and the
//! decisions of what to capture: a selected interface that appears gets a
//! ring on every capture thread at once, one whose role or container
//! changes is looked up again, one that disappears is closed.
//!
//! The watcher belongs to the namespace of the thread that opens it, which
//! is the thread `ringsieve run` was started on (`ip netns exec` puts it in
//! the host namespace).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use af_packet::{InterfaceRole, RingConfig};
use discovery::{Attributor, Inventory, InventoryChange, Link, LinkWatcher, Selection};
use flow::TapRole;
use hdrhistogram::Histogram;
use pipeline::host_book::{ContainerLabel, HostBook, HostInterface};
use serde_json::json;

use crate::settings::GeometryOverrides;

/// The ring role of a discovered interface.
pub fn ring_role(role: TapRole) -> InterfaceRole {
    match role {
        TapRole::Uplink => InterfaceRole::Uplink,
        TapRole::Bridge => InterfaceRole::Bridge,
        TapRole::ContainerVeth => InterfaceRole::ContainerVeth,
        TapRole::Other => InterfaceRole::Other,
    }
}

/// The ring an interface of `role` gets with `overrides`.
pub fn ring_config(role: TapRole, overrides: &GeometryOverrides, promiscuous: bool) -> RingConfig {
    let mut config = RingConfig::for_role(ring_role(role));
    config.geometry = overrides.apply(config.geometry);
    config.promiscuous = promiscuous;
    config
}

/// What the capture has to do after a discovery event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostChange {
    /// Capture this interface (it appeared, or was renamed into the
    /// selection).
    Capture {
        /// Its index.
        ifindex: i32,
        /// Its name.
        name: String,
        /// Its role.
        role: TapRole,
        /// Whether it is a veth (a container's, once its bridge is set:
        /// Docker enslaves a veth after creating it).
        veth: bool,
        /// When its event was read.
        seen: Instant,
    },
    /// Its role or container changed: the stages look it up again.
    Updated {
        /// Its index.
        ifindex: i32,
    },
    /// Stop capturing it (gone, or renamed out of the selection).
    Release {
        /// Its index.
        ifindex: i32,
        /// Its last name.
        name: String,
    },
}

/// Counters of the discovery, for the summary and the metrics.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryCounts {
    /// Interfaces that appeared (and were selected) after the start.
    pub appeared: u64,
    /// Interfaces that went away.
    pub disappeared: u64,
    /// Role changes.
    pub role_changes: u64,
    /// Containers named.
    pub containers_named: u64,
}

/// Discovery for one namespace.
pub struct Host {
    watcher: LinkWatcher,
    inventory: Inventory,
    attributor: Option<Attributor>,
    selection: Selection,
    book: Arc<HostBook>,
    /// The interfaces being captured, by index: name and role.
    captured: BTreeMap<i32, (String, TapRole)>,
    /// Container veths to attribute once their rings are open.
    unattributed: Vec<u32>,
    counts: DiscoveryCounts,
}

impl Host {
    /// Opens the watcher in the calling thread's namespace and reads the
    /// interfaces there now.
    pub fn open(selection: Selection, book: Arc<HostBook>) -> io::Result<Self> {
        let watcher = LinkWatcher::open()?;
        let attributor = match Attributor::new() {
            Ok(attributor) => Some(attributor),
            Err(error) => {
                tracing::warn!(%error, "containers will not be named: no namespace ids");
                None
            }
        };
        let mut host = Self {
            watcher,
            inventory: Inventory::new(),
            attributor,
            selection,
            book,
            captured: BTreeMap::new(),
            unattributed: Vec::new(),
            counts: DiscoveryCounts::default(),
        };
        // The initial dump is queued already.
        while let Some(event) = host.watcher.next_event(Some(Duration::ZERO))? {
            host.inventory.apply(&event);
        }
        Ok(host)
    }

    /// The selected interfaces now, with their roles; each is booked as
    /// captured from here on.
    pub fn initial(&mut self) -> Vec<(i32, String, TapRole)> {
        let selected: Vec<(Link, TapRole)> = self
            .inventory
            .selected(&self.selection)
            .map(|(link, role)| (link.clone(), role))
            .collect();
        selected
            .into_iter()
            .map(|(link, role)| {
                let ifindex = link.ifindex as i32;
                self.book_link(&link, role);
                self.captured.insert(ifindex, (link.name.clone(), role));
                (ifindex, link.name, role)
            })
            .collect()
    }

    /// The interface indexes of the bridges, selected or not: their
    /// subnets are the containers'.
    pub fn bridges(&self) -> Vec<u32> {
        self.inventory
            .entries()
            .filter(|(_, role)| *role == TapRole::Bridge)
            .map(|(link, _)| link.ifindex)
            .collect()
    }

    /// Every interface with its role, whether it is selected, and its
    /// container.
    pub fn listing(&mut self) -> Vec<(Link, TapRole, bool, Option<ContainerLabel>)> {
        let entries: Vec<(Link, TapRole)> = self.inventory.entries().map(|(l, r)| (l.clone(), r)).collect();
        entries
            .into_iter()
            .map(|(link, role)| {
                let container = self.container_of(&link, role);
                let selected = self.selection.selects_link(&link);
                (link, role, selected, container)
            })
            .collect()
    }

    fn container_of(&mut self, link: &Link, role: TapRole) -> Option<ContainerLabel> {
        if role != TapRole::ContainerVeth {
            return None;
        }
        let attributor = self.attributor.as_mut()?;
        match attributor.attribute(link) {
            Ok(Some(info)) => Some(ContainerLabel {
                id: info.id,
                name: info.name,
                image: info.image,
                netns: info.netns,
            }),
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(interface = %link.name, %error, "no container found");
                None
            }
        }
    }

    /// Books `link` with its role, and its container when `attribute`;
    /// otherwise a container veth waits for [`Self::attribute_pending`].
    fn book_link_with(&mut self, link: &Link, role: TapRole, attribute: bool) {
        let container = if attribute {
            self.container_of(link, role)
        } else {
            if role == TapRole::ContainerVeth && !self.unattributed.contains(&link.ifindex) {
                self.unattributed.push(link.ifindex);
            }
            None
        };
        if container.is_some() {
            self.counts.containers_named += 1;
        }
        self.book.set(
            link.ifindex as i32,
            HostInterface {
                name: link.name.clone(),
                role,
                container,
            },
        );
    }

    fn book_link(&mut self, link: &Link, role: TapRole) {
        self.book_link_with(link, role, true);
    }

    /// Names the containers of the container veths booked since the last
    /// call (a scan of /proc: done once their rings are open, so it never
    /// delays a capture), returning the interfaces to look up again.
    pub fn attribute_pending(&mut self) -> Vec<HostChange> {
        let mut out = Vec::new();
        for ifindex in std::mem::take(&mut self.unattributed) {
            let Some(link) = self.inventory.link(ifindex).cloned() else {
                continue;
            };
            let role = self.inventory.role(ifindex).unwrap_or(TapRole::Other);
            if role != TapRole::ContainerVeth || !self.captured.contains_key(&(ifindex as i32)) {
                continue;
            }
            self.book_link_with(&link, role, true);
            out.push(HostChange::Updated {
                ifindex: ifindex as i32,
            });
        }
        out
    }

    /// Waits up to `timeout` for discovery events and returns what the
    /// capture has to do.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<Vec<HostChange>> {
        let mut out = Vec::new();
        let mut wait = Some(timeout);
        while let Some(event) = self.watcher.next_event(wait)? {
            wait = Some(Duration::ZERO);
            let seen = Instant::now();
            for change in self.inventory.apply(&event) {
                self.act(change, seen, &mut out);
            }
        }
        Ok(out)
    }

    fn act(&mut self, change: InventoryChange, seen: Instant, out: &mut Vec<HostChange>) {
        match change {
            InventoryChange::Appeared { ifindex, name, role } => {
                let Some(link) = self.inventory.link(ifindex).cloned() else {
                    return;
                };
                if !self.selection.selects_link(&link) {
                    return;
                }
                self.counts.appeared += 1;
                self.book_link_with(&link, role, false);
                self.captured.insert(ifindex as i32, (name.clone(), role));
                out.push(HostChange::Capture {
                    ifindex: ifindex as i32,
                    name,
                    role,
                    veth: link.is_veth(),
                    seen,
                });
            }
            InventoryChange::RoleChanged { ifindex, to, .. } => {
                let Some(link) = self.inventory.link(ifindex).cloned() else {
                    return;
                };
                if let Some(entry) = self.captured.get_mut(&(ifindex as i32)) {
                    entry.1 = to;
                    self.counts.role_changes += 1;
                    self.book_link_with(&link, to, false);
                    out.push(HostChange::Updated {
                        ifindex: ifindex as i32,
                    });
                }
            }
            InventoryChange::Renamed { ifindex, from, to } => {
                let Some(link) = self.inventory.link(ifindex).cloned() else {
                    return;
                };
                let role = self.inventory.role(ifindex).unwrap_or(TapRole::Other);
                let was = self.captured.contains_key(&(ifindex as i32));
                let now = self.selection.selects_link(&link);
                if was {
                    self.captured.remove(&(ifindex as i32));
                    self.book.remove(ifindex as i32);
                    out.push(HostChange::Release {
                        ifindex: ifindex as i32,
                        name: from,
                    });
                }
                if now {
                    self.book_link_with(&link, role, false);
                    self.captured.insert(ifindex as i32, (to.clone(), role));
                    out.push(HostChange::Capture {
                        ifindex: ifindex as i32,
                        name: to,
                        role,
                        veth: link.is_veth(),
                        seen,
                    });
                }
            }
            InventoryChange::Disappeared { ifindex, name } => {
                if self.captured.remove(&(ifindex as i32)).is_some() {
                    self.counts.disappeared += 1;
                    self.book.remove(ifindex as i32);
                    out.push(HostChange::Release {
                        ifindex: ifindex as i32,
                        name,
                    });
                }
            }
        }
    }

    /// The `discovery` object of the summary; `latency` is the time from
    /// reading an interface's event to its rings being open.
    pub fn summary(&self, latency: &Histogram<u64>) -> serde_json::Value {
        let stats = self.watcher.stats();
        let us = |ns: u64| ns as f64 / 1000.0;
        json!({
            "interfaces_appeared": self.counts.appeared,
            "interfaces_disappeared": self.counts.disappeared,
            "role_changes": self.counts.role_changes,
            "containers_named": self.counts.containers_named,
            "netlink_overflows": stats.overflows,
            "resyncs": stats.resyncs,
            "event_to_capture": {
                "interfaces": latency.len(),
                "p50_us": us(latency.value_at_quantile(0.5)),
                "p99_us": us(latency.value_at_quantile(0.99)),
                "max_us": us(latency.max()),
            },
        })
    }
}
