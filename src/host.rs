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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use af_packet::{InterfaceRole, RingConfig};
use discovery::{Attributor, ContainerInfo, Inventory, InventoryChange, Link, LinkWatcher, Selection};
use flow::TapRole;
use hdrhistogram::Histogram;
use pipeline::host_book::{ContainerLabel, HostBook, HostInterface};
use serde_json::json;

use crate::attribution::{container_in, AttributionThread, Outcome, Retries};
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

/// The role whose ring size an interface of `role` gets: a veth not (yet)
/// enslaved to a bridge is sized as a container veth, since Docker creates
/// a veth before it enslaves it and a ring is not resized later.
pub fn sized_as(role: TapRole, veth: bool) -> TapRole {
    if veth && role == TapRole::Other {
        TapRole::ContainerVeth
    } else {
        role
    }
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
        /// Its name.
        name: String,
        /// Its role now.
        role: TapRole,
    },
    /// Stop capturing it (gone, or renamed out of the selection).
    Release {
        /// Its index.
        ifindex: i32,
        /// Its last name.
        name: String,
    },
}

/// Counters of the discovery, for the summary and the metrics: the main
/// thread writes them as it acts on events and opens or releases rings, the
/// metrics thread reads them at each scrape. Each counter stands alone
/// (relaxed atomics: a scrape may see one event half counted, never a count
/// going back); the event-to-capture histogram is behind a lock taken once
/// per interface that appears and once per scrape.
#[derive(Debug)]
pub struct DiscoveryCounters {
    /// Interfaces that appeared (and were selected) after the start.
    appeared: AtomicU64,
    /// Interfaces that went away.
    disappeared: AtomicU64,
    /// Role changes.
    role_changes: AtomicU64,
    /// Containers named.
    containers_named: AtomicU64,
    /// Times rtnetlink lost notifications (each followed by a resync).
    netlink_overflows: AtomicU64,
    /// Full re-dumps after the initial one.
    resyncs: AtomicU64,
    /// Rings opened, one per capture thread and interface, at the start
    /// and for interfaces that appeared.
    rings_opened: AtomicU64,
    /// Rings released because their interface went away or left the
    /// selection.
    rings_released: AtomicU64,
    /// From reading an interface's event to its rings being open (ns), and
    /// the sum of those times.
    event_to_capture: Mutex<(Histogram<u64>, u64)>,
}

impl Default for DiscoveryCounters {
    fn default() -> Self {
        Self {
            appeared: AtomicU64::new(0),
            disappeared: AtomicU64::new(0),
            role_changes: AtomicU64::new(0),
            containers_named: AtomicU64::new(0),
            netlink_overflows: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            rings_opened: AtomicU64::new(0),
            rings_released: AtomicU64::new(0),
            event_to_capture: Mutex::new((
                Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
                0,
            )),
        }
    }
}

impl DiscoveryCounters {
    /// `count` rings were opened for one interface; `after_event` is the
    /// time since its discovery event was read (none for the interfaces
    /// there at the start).
    pub fn rings_opened(&self, count: usize, after_event: Option<Duration>) {
        self.rings_opened.fetch_add(count as u64, Ordering::Relaxed);
        if let Some(after) = after_event {
            let ns = (after.as_nanos().max(1)).min(u128::from(u64::MAX)) as u64;
            let mut latency = self.event_to_capture.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = latency.0.record(ns);
            latency.1 = latency.1.saturating_add(ns);
        }
    }

    /// `count` rings of one interface were released.
    pub fn rings_released(&self, count: usize) {
        self.rings_released.fetch_add(count as u64, Ordering::Relaxed);
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter now.
    pub fn snapshot(&self) -> DiscoverySnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let event_to_capture = {
            let latency = self.event_to_capture.lock().unwrap_or_else(PoisonError::into_inner);
            EventToCapture {
                interfaces: latency.0.len(),
                p50_ns: latency.0.value_at_quantile(0.5),
                p99_ns: latency.0.value_at_quantile(0.99),
                max_ns: latency.0.max(),
                sum_ns: latency.1,
            }
        };
        DiscoverySnapshot {
            interfaces_appeared: load(&self.appeared),
            interfaces_disappeared: load(&self.disappeared),
            role_changes: load(&self.role_changes),
            containers_named: load(&self.containers_named),
            netlink_overflows: load(&self.netlink_overflows),
            resyncs: load(&self.resyncs),
            rings_opened: load(&self.rings_opened),
            rings_released: load(&self.rings_released),
            event_to_capture,
        }
    }
}

/// The time from reading interfaces' discovery events to their rings being
/// open, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventToCapture {
    /// Interfaces timed.
    pub interfaces: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Longest.
    pub max_ns: u64,
    /// Sum over every interface.
    pub sum_ns: u64,
}

/// The discovery's counters at one moment (see [`DiscoveryCounters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiscoverySnapshot {
    /// Interfaces that appeared (and were selected) after the start.
    pub interfaces_appeared: u64,
    /// Interfaces that went away.
    pub interfaces_disappeared: u64,
    /// Role changes.
    pub role_changes: u64,
    /// Containers named.
    pub containers_named: u64,
    /// Times rtnetlink lost notifications.
    pub netlink_overflows: u64,
    /// Full re-dumps after the initial one.
    pub resyncs: u64,
    /// Rings opened.
    pub rings_opened: u64,
    /// Rings released.
    pub rings_released: u64,
    /// Event-to-capture times.
    pub event_to_capture: EventToCapture,
}

impl DiscoverySnapshot {
    /// The `discovery` object of the exit summary.
    pub fn summary(&self) -> serde_json::Value {
        let us = |ns: u64| ns as f64 / 1000.0;
        let latency = &self.event_to_capture;
        json!({
            "interfaces_appeared": self.interfaces_appeared,
            "interfaces_disappeared": self.interfaces_disappeared,
            "role_changes": self.role_changes,
            "containers_named": self.containers_named,
            "netlink_overflows": self.netlink_overflows,
            "resyncs": self.resyncs,
            "rings_opened": self.rings_opened,
            "rings_released": self.rings_released,
            "event_to_capture": {
                "interfaces": latency.interfaces,
                "p50_us": us(latency.p50_ns),
                "p99_us": us(latency.p99_ns),
                "max_us": us(latency.max_ns),
            },
        })
    }
}

/// The label the stages show for what was found behind a container veth.
fn label_of(info: ContainerInfo) -> ContainerLabel {
    ContainerLabel {
        id: info.id,
        name: info.name,
        image: info.image,
        netns: info.netns,
    }
}

/// Discovery for one namespace.
pub struct Host {
    watcher: LinkWatcher,
    inventory: Inventory,
    /// Looks containers up on the calling thread (`ringsieve interfaces`),
    /// until [`Self::start_attribution`] hands it to a thread of its own.
    attributor: Option<Attributor>,
    attribution: Option<AttributionThread>,
    selection: Selection,
    book: Arc<HostBook>,
    /// The interfaces being captured, by index: name and role.
    captured: BTreeMap<i32, (String, TapRole)>,
    /// The containers of the captured container veths, as booked.
    labels: BTreeMap<u32, ContainerLabel>,
    /// Captured container veths waiting for (a complete) container.
    retries: Retries,
    counters: Arc<DiscoveryCounters>,
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
            attribution: None,
            selection,
            book,
            captured: BTreeMap::new(),
            labels: BTreeMap::new(),
            retries: Retries::default(),
            counters: Arc::default(),
        };
        // The initial dump is queued already.
        while let Some(event) = host.watcher.next_event(Some(Duration::ZERO))? {
            host.inventory.apply(&event);
        }
        Ok(host)
    }

    /// The selected interfaces now, with their roles; each is booked as
    /// captured from here on, its container looked up once
    /// [`Self::start_attribution`] ran.
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

    /// Whether interface `ifindex` is a veth.
    pub fn is_veth(&self, ifindex: i32) -> bool {
        u32::try_from(ifindex)
            .ok()
            .and_then(|i| self.inventory.link(i))
            .is_some_and(Link::is_veth)
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
            Ok(Some(info)) => Some(label_of(info)),
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(interface = %link.name, %error, "no container found");
                None
            }
        }
    }

    /// Books `link` with its role and no container yet; a container veth
    /// is scheduled for a lookup ([`Self::attribute_pending`]), any other
    /// role drops the container it had.
    fn book_link(&mut self, link: &Link, role: TapRole) {
        self.labels.remove(&link.ifindex);
        if role == TapRole::ContainerVeth {
            self.retries.schedule(link.ifindex, Instant::now());
        } else {
            self.retries.forget(link.ifindex);
        }
        self.book.set(
            link.ifindex as i32,
            HostInterface {
                name: link.name.clone(),
                role,
                container: None,
            },
        );
    }

    /// Interface `ifindex` is no longer captured.
    fn forget(&mut self, ifindex: u32) {
        self.captured.remove(&(ifindex as i32));
        self.labels.remove(&ifindex);
        self.retries.forget(ifindex);
        self.book.remove(ifindex as i32);
    }

    /// Looks up the containers of the container veths captured from the
    /// start, on the calling thread (one scan of /proc, the Docker API when
    /// its socket exists), then moves the lookups to a thread of their own;
    /// from here on [`Self::attribute_pending`] asks it and never blocks.
    /// Call it before the capture threads start: the first packets of the
    /// containers already running are then attributed (the stages read the
    /// book when they first meet an interface).
    pub fn start_attribution(&mut self) {
        let Some(mut attributor) = self.attributor.take() else {
            return;
        };
        let now = Instant::now();
        let due = self.retries.take_due(now);
        if !due.is_empty() {
            let scan = attributor.scan();
            for ifindex in due {
                let Some(link) = self.inventory.link(ifindex).cloned() else {
                    self.retries.forget(ifindex);
                    continue;
                };
                let found = container_in(&scan, &link);
                // No stage has met the interface yet: the book is enough.
                let _ = self.take_answer(&link, found, now);
            }
        }
        match AttributionThread::start(attributor) {
            Ok(thread) => self.attribution = Some(thread),
            Err(error) => tracing::warn!(%error, "containers will not be named: no attribution thread"),
        }
    }

    /// Books the containers found since the last call and asks for the
    /// lookups now due (a scan of /proc and the Docker API, on the
    /// attribution thread: it never delays a capture), returning the
    /// interfaces to look up again. A container veth whose container id is
    /// not found yet is looked at again later ([`Retries`]).
    pub fn attribute_pending(&mut self) -> Vec<HostChange> {
        let mut out = Vec::new();
        let Some(thread) = &self.attribution else {
            return out;
        };
        let Some(answers) = thread.answers() else {
            tracing::warn!("the attribution thread ended: containers are no longer named");
            self.attribution = None;
            return out;
        };
        let now = Instant::now();
        for (link, found) in answers {
            out.extend(self.take_answer(&link, found, now));
        }
        for ifindex in self.retries.take_due(now) {
            // Gone from the inventory, or the thread gone: no lookup.
            let asked = match (self.inventory.link(ifindex), &self.attribution) {
                (Some(link), Some(thread)) => thread.ask(link.clone()),
                _ => false,
            };
            if !asked {
                self.retries.forget(ifindex);
            }
        }
        out
    }

    /// Takes the answer of a lookup of `link`'s container: books the
    /// container when it is new (the change for the stages) and schedules
    /// the next lookup while no container id is known.
    fn take_answer(
        &mut self,
        link: &Link,
        found: io::Result<Option<ContainerInfo>>,
        now: Instant,
    ) -> Option<HostChange> {
        if !self.retries.in_flight(link.ifindex) {
            return None;
        }
        let label = match found {
            Ok(found) => found.map(label_of),
            Err(error) => {
                tracing::debug!(interface = %link.name, %error, "no container found");
                None
            }
        };
        let complete = label.as_ref().is_some_and(|l| l.id.is_some());
        let outcome = self.retries.answered(link.ifindex, complete, now);
        if outcome == Outcome::GaveUp {
            tracing::debug!(interface = %link.name, "no container id found: left as it is");
        }
        self.book_label(link.ifindex, label?)
    }

    /// Whether a container lookup is on its way: its answer should be
    /// taken soon, before the container's first flows end unnamed.
    pub fn awaiting_containers(&self) -> bool {
        self.attribution.is_some() && self.retries.any_in_flight()
    }

    /// Books `label` as the container of captured container veth
    /// `ifindex` when it is new, returning the change for the stages.
    fn book_label(&mut self, ifindex: u32, label: ContainerLabel) -> Option<HostChange> {
        let (name, role) = self.captured.get(&(ifindex as i32)).cloned()?;
        if role != TapRole::ContainerVeth || self.labels.get(&ifindex) == Some(&label) {
            return None;
        }
        if !self.labels.contains_key(&ifindex) {
            DiscoveryCounters::add(&self.counters.containers_named);
        }
        tracing::info!(
            interface = %name,
            container = label.display().unwrap_or_default(),
            id = label.id.as_deref().unwrap_or(""),
            "container named"
        );
        self.book.set(
            ifindex as i32,
            HostInterface {
                name: name.clone(),
                role,
                container: Some(label.clone()),
            },
        );
        self.labels.insert(ifindex, label);
        Some(HostChange::Updated {
            ifindex: ifindex as i32,
            name,
            role,
        })
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
        self.count_watcher_stats();
        Ok(out)
    }

    /// Copies the watcher's overflow and resync counts into the counters.
    fn count_watcher_stats(&self) {
        let stats = self.watcher.stats();
        self.counters
            .netlink_overflows
            .store(stats.overflows, Ordering::Relaxed);
        self.counters.resyncs.store(stats.resyncs, Ordering::Relaxed);
    }

    /// The discovery's counters, shared with whoever opens and releases
    /// rings and with the metrics endpoint.
    pub fn counters(&self) -> Arc<DiscoveryCounters> {
        Arc::clone(&self.counters)
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
                DiscoveryCounters::add(&self.counters.appeared);
                self.book_link(&link, role);
                self.captured.insert(ifindex as i32, (name.clone(), role));
                out.push(HostChange::Capture {
                    ifindex: ifindex as i32,
                    name,
                    role,
                    veth: link.is_veth(),
                    seen,
                });
            }
            InventoryChange::RoleChanged {
                ifindex,
                name,
                from,
                to,
            } => {
                let Some(link) = self.inventory.link(ifindex).cloned() else {
                    return;
                };
                if let Some(entry) = self.captured.get_mut(&(ifindex as i32)) {
                    entry.1 = to;
                    DiscoveryCounters::add(&self.counters.role_changes);
                    tracing::info!(
                        interface = %name,
                        from = %ring_role(from),
                        to = %ring_role(to),
                        "role changed"
                    );
                    self.book_link(&link, to);
                    out.push(HostChange::Updated {
                        ifindex: ifindex as i32,
                        name,
                        role: to,
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
                    self.forget(ifindex);
                    out.push(HostChange::Release {
                        ifindex: ifindex as i32,
                        name: from,
                    });
                }
                if now {
                    self.book_link(&link, role);
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
                if self.captured.contains_key(&(ifindex as i32)) {
                    self.forget(ifindex);
                    DiscoveryCounters::add(&self.counters.disappeared);
                    out.push(HostChange::Release {
                        ifindex: ifindex as i32,
                        name,
                    });
                }
            }
        }
    }

    /// The `discovery` object of the summary.
    pub fn summary(&self) -> serde_json::Value {
        self.count_watcher_stats();
        self.counters.snapshot().summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_counters_count_rings_and_time_only_interfaces_that_appeared() {
        let counters = DiscoveryCounters::default();
        // Two initial interfaces (not timed), one that appeared, on two
        // capture threads; then it goes.
        counters.rings_opened(2, None);
        counters.rings_opened(2, None);
        counters.rings_opened(2, Some(Duration::from_micros(150)));
        DiscoveryCounters::add(&counters.appeared);
        counters.rings_released(2);
        DiscoveryCounters::add(&counters.disappeared);
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.rings_opened, 6);
        assert_eq!(snapshot.rings_released, 2);
        assert_eq!(snapshot.event_to_capture.interfaces, 1);
        assert_eq!(snapshot.event_to_capture.sum_ns, 150_000);
        // Three significant digits.
        assert!(
            snapshot.event_to_capture.p50_ns.abs_diff(150_000) <= 150,
            "{snapshot:?}"
        );
        let summary = snapshot.summary();
        assert_eq!(summary["interfaces_appeared"], 1);
        assert_eq!(summary["interfaces_disappeared"], 1);
        assert_eq!(summary["rings_opened"], 6);
        assert_eq!(summary["event_to_capture"]["interfaces"], 1);
        assert!((summary["event_to_capture"]["max_us"].as_f64().unwrap() - 150.0).abs() < 0.2);
    }
}
