//! [`LinkWatcher`]: the interfaces of one network namespace, as a dump
//! followed by a stream of [`LinkEvent`]s from rtnetlink, so a capture
//! engine can open a ring on an interface within a millisecond of its
//! creation instead of polling. It also follows the main table's default
//! routes, which make an interface the uplink. It decides no roles (see
//! [`crate::inventory`]) and captures nothing.
//!
//! # Driving it
//!
//! The API is blocking with a timeout: call [`LinkWatcher::next_event`] in a
//! loop. To put the watcher in an epoll set instead, register
//! [`LinkWatcher::poll_fd`] for readability and, when it fires, call
//! `next_event(Some(Duration::ZERO))` until it returns `Ok(None)`: events are
//! queued inside the watcher (a dump yields many from one read), so the fd
//! can be quiet while events wait; drain after every wake-up, and once right
//! after [`LinkWatcher::open`], whose dump is already queued.
//!
//! # Consistency
//!
//! Notifications that arrive while a dump runs are applied in the order
//! they were received, interleaved with the dump's entries, so the state is
//! that of the latest message about each link. When the kernel drops
//! notifications (ENOBUFS, counted in [`WatcherStats::overflows`]) the watcher
//! dumps links and routes again and emits what changed against what it
//! knew, then [`LinkEvent::Resynced`]. A link that was created and deleted
//! during the overflow is never seen.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::link::Link;
use crate::routes::DefaultRoutes;
use crate::socket::{Received, RouteSocket};

/// What changed among the interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// An interface this watcher did not know: from the initial dump, a new
    /// link, one moved into this namespace, or one found by a resync.
    Added(Link),
    /// A later RTM_NEWLINK for a known index that changed the snapshot:
    /// master set or cleared, up or down, renamed, carrier.
    Changed(Link),
    /// The interface is gone from this namespace: deleted, or moved to
    /// another namespace (which this namespace sees as RTM_DELLINK).
    Removed {
        /// Its index.
        ifindex: u32,
        /// Its last known name.
        name: String,
    },
    /// The set of interfaces carrying a default route of the main table
    /// (IPv4 or IPv6) changed; it is now `ifindexes`.
    DefaultRoutesChanged {
        /// The interfaces with a default route, ascending.
        ifindexes: Vec<u32>,
    },
    /// Notifications were lost and the watcher dumped everything again; the
    /// events before this one brought the caller up to date.
    Resynced,
}

/// How to open a [`LinkWatcher`].
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    /// Receive buffer requested with SO_RCVBUFFORCE (SO_RCVBUF when not
    /// permitted, then capped by net.core.rmem_max). A RTM_NEWLINK takes
    /// about 1.5 KiB of it plus overhead; the default, 8 MiB, holds a burst
    /// of several thousand.
    pub receive_buffer: usize,
    /// Follow default routes (subscribe to the IPv4 and IPv6 route groups
    /// and dump the routes). Without it no interface is ever an uplink.
    pub default_routes: bool,
    /// How long a dump may take before the watcher gives up on it.
    pub dump_timeout: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            receive_buffer: 8 << 20,
            default_routes: true,
            dump_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of a watcher's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatcherStats {
    /// Times the kernel dropped notifications (ENOBUFS) or a datagram was
    /// truncated; each led to a resync.
    pub overflows: u64,
    /// Full dumps after the initial one.
    pub resyncs: u64,
    /// Messages that did not decode and were skipped.
    pub undecodable: u64,
    /// Dumps the kernel marked inconsistent (NLM_F_DUMP_INTR) and that were
    /// repeated.
    pub interrupted_dumps: u64,
}

/// Attempts at a consistent dump before the watcher settles for the last.
const DUMP_ATTEMPTS: usize = 4;

/// RTNLGRP_* from include/uapi/linux/rtnetlink.h.
const GROUP_LINK: u32 = libc::RTNLGRP_LINK;
const GROUP_IPV4_ROUTE: u32 = libc::RTNLGRP_IPV4_ROUTE;
const GROUP_IPV6_ROUTE: u32 = libc::RTNLGRP_IPV6_ROUTE;

/// Watches the interfaces of the network namespace of the thread that
/// opened it (the socket stays in that namespace whatever the thread does
/// afterwards).
pub struct LinkWatcher {
    socket: RouteSocket,
    config: WatcherConfig,
    links: BTreeMap<u32, Link>,
    routes: DefaultRoutes,
    pending: VecDeque<LinkEvent>,
    stats: WatcherStats,
    receive_buffer: usize,
    /// Set while a link dump runs: the indexes the dump or a notification
    /// during it showed present. Known links outside it at the end of the
    /// dump are gone.
    seen: Option<HashSet<u32>>,
    /// Set while dumps run: the route table is partial, so changes are
    /// reported once at the end.
    dumping_routes: bool,
    /// The uplinks as last reported in an event.
    reported_routes: BTreeSet<u32>,
}

/// Which dump [`LinkWatcher::dump`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dump {
    Links,
    Routes,
}

/// How a dump ended.
enum DumpEnd {
    Complete,
    /// NLM_F_DUMP_INTR: the table changed while it was read.
    Interrupted,
    /// ENOBUFS while it ran.
    Overflow,
}

impl LinkWatcher {
    /// Opens a watcher with [`WatcherConfig::default`].
    pub fn open() -> io::Result<Self> {
        Self::with_config(WatcherConfig::default())
    }

    /// Opens the socket, subscribes, and dumps links (and default routes):
    /// when it returns, [`Self::links`] is complete and one
    /// [`LinkEvent::Added`] per link (then a [`LinkEvent::DefaultRoutesChanged`]
    /// if there is a default route) is queued.
    pub fn with_config(config: WatcherConfig) -> io::Result<Self> {
        let mut groups = vec![GROUP_LINK];
        if config.default_routes {
            groups.extend([GROUP_IPV4_ROUTE, GROUP_IPV6_ROUTE]);
        }
        let socket = RouteSocket::open(&groups)?;
        let receive_buffer = socket.set_receive_buffer(config.receive_buffer)?;
        let mut watcher = Self {
            socket,
            config,
            links: BTreeMap::new(),
            routes: DefaultRoutes::default(),
            pending: VecDeque::new(),
            stats: WatcherStats::default(),
            receive_buffer,
            seen: None,
            dumping_routes: false,
            reported_routes: BTreeSet::new(),
        };
        watcher.synchronize()?;
        Ok(watcher)
    }

    /// The next event, waiting up to `timeout` (`None`: until one comes;
    /// `Some(Duration::ZERO)`: only what is queued or readable now).
    /// `Ok(None)` when the time ran out.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> io::Result<Option<LinkEvent>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match self.socket.receive(remaining)? {
                Received::Messages { messages, undecodable } => {
                    self.stats.undecodable += undecodable as u64;
                    for message in messages {
                        self.notification(message);
                    }
                }
                Received::Overflow => {
                    self.stats.overflows += 1;
                    self.stats.resyncs += 1;
                    self.synchronize()?;
                    self.pending.push_back(LinkEvent::Resynced);
                }
                Received::TimedOut => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The socket's descriptor, to wait for readability in epoll or poll.
    /// See the module documentation for how to drain after a wake-up.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The links known now (after the events returned so far and those
    /// still queued).
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    /// The link with index `ifindex`, if known.
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.get(&ifindex)
    }

    /// The interfaces with a default route in the main table.
    pub fn default_route_ifindexes(&self) -> BTreeSet<u32> {
        self.routes.interfaces()
    }

    /// Events waiting to be returned.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// The counters.
    pub fn stats(&self) -> WatcherStats {
        self.stats
    }

    /// The receive buffer the kernel granted, in bytes (its doubled figure).
    pub fn receive_buffer(&self) -> usize {
        self.receive_buffer
    }

    /// Dumps links then routes, diffing against what is known. Repeats
    /// both after an overflow (lost notifications may be about either) or
    /// an interrupted dump, up to [`DUMP_ATTEMPTS`] times; after that what
    /// the last dumps showed stands and the notifications that follow
    /// correct it.
    fn synchronize(&mut self) -> io::Result<()> {
        // Route changes are reported once, at the end, against what was last
        // reported: the table is partial while it is dumped.
        self.dumping_routes = true;
        let result = self.dump_until_consistent();
        self.dumping_routes = false;
        result?;
        self.routes_changed();
        Ok(())
    }

    fn dump_until_consistent(&mut self) -> io::Result<()> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut ends = vec![self.dump(Dump::Links)?];
            if self.config.default_routes {
                self.routes = DefaultRoutes::default();
                ends.push(self.dump(Dump::Routes)?);
            }
            let mut again = false;
            for end in ends {
                match end {
                    DumpEnd::Complete => {}
                    DumpEnd::Interrupted => {
                        self.stats.interrupted_dumps += 1;
                        again = true;
                    }
                    DumpEnd::Overflow => {
                        self.stats.overflows += 1;
                        again = true;
                    }
                }
            }
            if !again {
                break;
            }
        }
        Ok(())
    }

    /// Runs one dump to its NLMSG_DONE, applying notifications that arrive
    /// meanwhile in order.
    fn dump(&mut self, which: Dump) -> io::Result<DumpEnd> {
        let request = match which {
            Dump::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
            Dump::Routes => {
                // AF_UNSPEC dumps every family's routes.
                RouteNetlinkMessage::GetRoute(RouteMessage::default())
            }
        };
        let sequence = self.socket.send(request, NLM_F_DUMP)?;
        if which == Dump::Links {
            self.seen = Some(HashSet::new());
        }
        let deadline = Instant::now() + self.config.dump_timeout;
        let mut interrupted = false;
        let mut overflowed = false;
        let end = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.seen = None;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "rtnetlink dump did not finish in time",
                ));
            }
            let messages = match self.socket.receive(Some(remaining))? {
                Received::Messages { messages, undecodable } => {
                    self.stats.undecodable += undecodable as u64;
                    messages
                }
                Received::TimedOut => continue,
                Received::Overflow => {
                    // Notifications were lost, not the dump: the kernel
                    // holds a dump's next part until there is room for it.
                    // Finish this one (a new request would get EBUSY while
                    // it runs), then dump again.
                    overflowed = true;
                    continue;
                }
            };
            let mut done = false;
            for message in messages {
                let ours =
                    message.header.port_number == self.socket.port() && message.header.sequence_number == sequence;
                if !ours {
                    self.notification(message);
                    continue;
                }
                interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
                match message.payload {
                    NetlinkPayload::Done(_) => done = true,
                    NetlinkPayload::Error(error) => {
                        self.seen = None;
                        return Err(io::Error::new(
                            error.to_io().kind(),
                            format!("rtnetlink dump refused: {error}"),
                        ));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(message)) => self.new_link(&message),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(message)) => {
                        self.routes.add(&message);
                    }
                    _ => {}
                }
            }
            if done {
                break if overflowed {
                    DumpEnd::Overflow
                } else if interrupted {
                    DumpEnd::Interrupted
                } else {
                    DumpEnd::Complete
                };
            }
        };
        // Every link present at the end of the dump was in it or in a
        // notification during it; the others are gone.
        if let Some(seen) = self.seen.take() {
            let gone: Vec<u32> = self.links.keys().copied().filter(|i| !seen.contains(i)).collect();
            for ifindex in gone {
                self.remove_link(ifindex);
            }
        }
        Ok(end)
    }

    /// Applies a message that is not a reply to our dump.
    fn notification(&mut self, message: NetlinkMessage<RouteNetlinkMessage>) {
        let NetlinkPayload::InnerMessage(message) = message.payload else {
            return;
        };
        let routes_changed = match message {
            RouteNetlinkMessage::NewLink(message) => {
                self.new_link(&message);
                false
            }
            // Bridge-port messages (AF_BRIDGE) use RTM_DELLINK when a port
            // leaves its bridge: the link itself stays.
            RouteNetlinkMessage::DelLink(message) if message.header.interface_family == AddressFamily::Unspec => {
                self.remove_link(message.header.index);
                false
            }
            RouteNetlinkMessage::NewRoute(message) => self.routes.add(&message),
            RouteNetlinkMessage::DelRoute(message) => self.routes.remove(&message),
            _ => false,
        };
        if routes_changed {
            self.routes_changed();
        }
    }

    fn new_link(&mut self, message: &LinkMessage) {
        // Bridge-port and IPv6 messages share RTM_NEWLINK; from_message
        // turns them away, as it does a message it cannot use.
        let Ok(link) = Link::from_message(message) else {
            return;
        };
        if let Some(seen) = &mut self.seen {
            seen.insert(link.ifindex);
        }
        let went_down = !link.admin_up;
        let ifindex = link.ifindex;
        match self.links.get(&ifindex) {
            Some(known) if *known == link => {}
            Some(_) => {
                self.links.insert(ifindex, link.clone());
                self.pending.push_back(LinkEvent::Changed(link));
            }
            None => {
                self.links.insert(ifindex, link.clone());
                self.pending.push_back(LinkEvent::Added(link));
            }
        }
        // The kernel flushes IPv4 routes of a device that goes down without
        // telling: its default route is gone.
        if went_down && self.routes.remove_interface(ifindex) {
            self.routes_changed();
        }
    }

    fn remove_link(&mut self, ifindex: u32) {
        if let Some(seen) = &mut self.seen {
            seen.remove(&ifindex);
        }
        if let Some(link) = self.links.remove(&ifindex) {
            self.pending.push_back(LinkEvent::Removed {
                ifindex,
                name: link.name,
            });
        }
        if self.routes.remove_interface(ifindex) {
            self.routes_changed();
        }
    }

    /// Queues a [`LinkEvent::DefaultRoutesChanged`] if the uplinks differ
    /// from those last reported.
    fn routes_changed(&mut self) {
        if self.dumping_routes {
            return;
        }
        let now = self.routes.interfaces();
        if now != self.reported_routes {
            self.pending.push_back(LinkEvent::DefaultRoutesChanged {
                ifindexes: now.iter().copied().collect(),
            });
            self.reported_routes = now;
        }
    }
}

impl AsFd for LinkWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl std::fmt::Debug for LinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatcher")
            .field("links", &self.links.len())
            .field("default_routes", &self.routes.interfaces())
            .field("queued", &self.pending.len())
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads (never changes) the test process's own namespace, which needs
    /// no privilege: every namespace has a loopback device.
    #[test]
    fn initial_dump_reports_loopback() {
        let mut watcher = LinkWatcher::open().expect("NETLINK_ROUTE needs no privilege");
        assert!(watcher.queued() > 0, "the dump's events are queued by open");
        let mut added = Vec::new();
        while let Some(event) = watcher.next_event(Some(Duration::ZERO)).unwrap() {
            if let LinkEvent::Added(link) = event {
                added.push(link);
            }
        }
        let lo = added.iter().find(|l| l.loopback).expect("a loopback link");
        assert_eq!(lo.name, "lo");
        assert_eq!(watcher.link(lo.ifindex), Some(lo));
        assert_eq!(watcher.links().count(), added.len());
        assert!(watcher.receive_buffer() > 0);
        assert_eq!(watcher.stats().undecodable, 0);
        // A bounded wait returns within about its timeout.
        let started = Instant::now();
        let _ = watcher.next_event(Some(Duration::from_millis(20))).unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
