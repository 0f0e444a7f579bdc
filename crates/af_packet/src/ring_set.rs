//! Many rings served by one capture thread: an epoll set over the rings'
//! sockets, so a host with hundreds of container veths does not need hundreds
//! of threads.
//!
//! A ring whose socket reports an error is checked: an interface that went
//! down keeps its ring (the kernel resumes delivery when it comes back up);
//! one that disappeared has its ring closed, its final counters kept in a
//! [`ClosedRing`], and no other ring of the set is disturbed.
//!
//! The kernel reports ENETDOWN when a link goes down, before it unregisters a
//! deleted device, and reports nothing when it unregisters it. So a ring that
//! saw ENETDOWN is marked and re-checked after every poll until it delivers
//! again, and every ring is re-checked whenever the counters are read: a
//! deletion is noticed whichever order the kernel and the thread ran in.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::capture_ring::{CaptureRing, CloseReason, KernelCounters};
use crate::interface::Interface;
use crate::ring::Packet;
use crate::sys::{self, syscall, Syscall, SyscallError};

/// Blocks read from one ring before the thread turns to the next ready ring.
pub const DEFAULT_BLOCKS_PER_TURN: usize = 16;

/// The handle of a ring inside a [`RingSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingId(usize);

impl RingId {
    /// The slot number, stable while the ring is in the set.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A ring that stopped capturing, with its last counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedRing {
    /// The ring's slot in the set it left.
    pub id: RingId,
    /// The interface it captured.
    pub interface: Interface,
    /// Its kernel counters, read just before it closed.
    pub counters: KernelCounters,
    /// Why it closed.
    pub reason: CloseReason,
}

/// The rings one capture thread serves.
pub struct RingSet {
    epoll: OwnedFd,
    rings: Vec<Option<CaptureRing>>,
    /// Per slot: the ring saw ENETDOWN and has not delivered since, so its
    /// interface may be in the middle of being deleted.
    link_down: Vec<bool>,
    closed: Vec<ClosedRing>,
    events: Vec<libc::epoll_event>,
}

impl std::fmt::Debug for RingSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingSet")
            .field("rings", &self.rings)
            .finish_non_exhaustive()
    }
}

impl RingSet {
    /// An empty set.
    pub fn new() -> Result<Self, SyscallError> {
        let epoll = sys::own_fd(syscall(Syscall::EpollCreate)?);
        Ok(Self {
            epoll,
            rings: Vec::new(),
            link_down: Vec::new(),
            closed: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
        })
    }

    /// Adds `ring` to the set.
    pub fn add(&mut self, ring: CaptureRing) -> Result<RingId, SyscallError> {
        let slot = self.rings.iter().position(Option::is_none).unwrap_or(self.rings.len());
        syscall(Syscall::EpollCtl {
            epfd: self.epoll.as_raw_fd(),
            op: libc::EPOLL_CTL_ADD,
            fd: ring.as_fd().as_raw_fd(),
            events: (libc::EPOLLIN | libc::EPOLLERR) as u32,
            token: slot as u64,
        })?;
        if slot == self.rings.len() {
            self.rings.push(Some(ring));
            self.link_down.push(false);
        } else {
            self.rings[slot] = Some(ring);
            self.link_down[slot] = false;
        }
        Ok(RingId(slot))
    }

    /// Takes ring `id` out of the set.
    pub fn remove(&mut self, id: RingId) -> Option<CaptureRing> {
        let ring = self.rings.get_mut(id.0)?.take()?;
        self.link_down[id.0] = false;
        // Closing the socket would remove it too; removing explicitly keeps
        // the set right even if the caller keeps the ring open.
        let _ = syscall(Syscall::EpollCtl {
            epfd: self.epoll.as_raw_fd(),
            op: libc::EPOLL_CTL_DEL,
            fd: ring.as_fd().as_raw_fd(),
            events: 0,
            token: 0,
        });
        Some(ring)
    }

    /// Number of open rings.
    pub fn len(&self) -> usize {
        self.rings.iter().flatten().count()
    }

    /// Whether no ring is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open rings.
    pub fn rings(&self) -> impl Iterator<Item = (RingId, &CaptureRing)> {
        self.rings
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (RingId(i), r)))
    }

    /// Ring `id`, if open.
    pub fn ring_mut(&mut self, id: RingId) -> Option<&mut CaptureRing> {
        self.rings.get_mut(id.0)?.as_mut()
    }

    /// Reads every block that is ready on any ring, without waiting.
    pub fn drain_ready(
        &mut self,
        blocks_per_turn: usize,
        mut on_packet: impl FnMut(RingId, &Interface, &Packet<'_>),
    ) -> u64 {
        let mut packets = 0;
        for (slot, ring) in self.rings.iter_mut().enumerate() {
            if let Some(ring) = ring {
                packets += ring.drain(blocks_per_turn, |interface, packet| {
                    on_packet(RingId(slot), interface, packet)
                });
            }
        }
        packets
    }

    /// Waits up to `timeout_ms` for any ring to have a block ready or an
    /// error, then reads up to `blocks_per_turn` blocks of each ready ring,
    /// calling `on_packet` for every packet. Returns the packets read.
    ///
    /// Rings whose interface disappeared are closed; see
    /// [`RingSet::take_closed`].
    pub fn poll(
        &mut self,
        timeout_ms: i32,
        blocks_per_turn: usize,
        mut on_packet: impl FnMut(RingId, &Interface, &Packet<'_>),
    ) -> Result<u64, SyscallError> {
        let ready = match syscall(Syscall::EpollWait {
            epfd: self.epoll.as_raw_fd(),
            events: &mut self.events,
            timeout_ms,
        }) {
            Ok(n) => n as usize,
            Err(e) if e.errno() == Some(libc::EINTR) => 0,
            Err(e) => return Err(e),
        };
        let mut packets = 0;
        for i in 0..ready {
            let event = self.events[i];
            let slot = event.u64 as usize;
            let Some(Some(ring)) = self.rings.get_mut(slot) else {
                continue;
            };
            // Read what the ring holds first: blocks filled before an error
            // are still good packets.
            let read = ring.drain(blocks_per_turn, |interface, packet| {
                on_packet(RingId(slot), interface, packet)
            });
            packets += read;
            if read > 0 {
                self.link_down[slot] = false;
            }
            if event.events & (libc::EPOLLERR as u32) != 0 {
                match ring.check_error() {
                    Some(reason) => self.close(RingId(slot), reason),
                    None => self.link_down[slot] = true,
                }
            }
        }
        for slot in 0..self.rings.len() {
            if self.link_down[slot] {
                self.close_if_gone(slot);
            }
        }
        Ok(packets)
    }

    fn close_if_gone(&mut self, slot: usize) {
        if self.rings[slot].as_ref().is_some_and(CaptureRing::interface_gone) {
            self.close(RingId(slot), CloseReason::InterfaceGone);
        }
    }

    /// Closes ring `id` for `reason`, keeping its final counters.
    pub fn close(&mut self, id: RingId, reason: CloseReason) {
        if let Some(mut ring) = self.remove(id) {
            let _ = ring.update_counters();
            tracing::info!(interface = ring.interface().name(), %reason, "capture ring closed");
            self.closed.push(ClosedRing {
                id,
                interface: ring.interface().clone(),
                counters: ring.counters(),
                reason,
            });
        }
    }

    /// Stops every open ring from taking more frames
    /// ([`CaptureRing::stop_accepting`]); a ring that refuses is logged and
    /// drained as it is.
    pub fn stop_accepting(&self) {
        for ring in self.rings.iter().flatten() {
            if let Err(e) = ring.stop_accepting() {
                tracing::warn!(interface = ring.interface().name(), error = %e, "ring still accepting frames at stop");
            }
        }
    }

    /// Reads the kernel statistics of every open ring into its totals (and
    /// nothing else: see [`RingSet::update_counters`]).
    pub fn read_counters(&mut self) {
        for ring in self.rings.iter_mut().flatten() {
            if let Err(e) = ring.update_counters() {
                tracing::debug!(interface = ring.interface().name(), error = %e, "statistics not read");
            }
        }
    }

    /// Reads the kernel statistics of every open ring into its totals, and
    /// closes the rings whose interface is gone (a deletion the kernel did
    /// not report, such as that of a link that was already down).
    pub fn update_counters(&mut self) {
        self.read_counters();
        for slot in 0..self.rings.len() {
            self.close_if_gone(slot);
        }
    }

    /// The rings closed since the last call, with their final counters.
    pub fn take_closed(&mut self) -> Vec<ClosedRing> {
        std::mem::take(&mut self.closed)
    }
}
