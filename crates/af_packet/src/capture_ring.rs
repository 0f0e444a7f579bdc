//! One capture ring on one interface: the packet socket, its TPACKET_V3 ring,
//! promiscuous membership, fanout membership and kernel statistics.
//!
//! Opening follows the order that guarantees no packet arrives before the ring
//! exists: a socket with protocol 0 receives nothing; TPACKET_V3 is selected,
//! the ring configured (shrinking it when the kernel answers ENOMEM) and
//! mapped; only then is the socket bound to `ETH_P_ALL` on the interface.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::config::{RingConfig, RingGeometry, FRAME_SIZE};
use crate::fanout::FanoutGroup;
use crate::interface::Interface;
use crate::ring::BlockRing;
use crate::sys::{self, as_bytes, as_bytes_mut, syscall, Syscall, SyscallError, ETH_P_ALL_BE};

/// `TPACKET_V3` in `enum tpacket_versions`.
const TPACKET_V3: i32 = 2;

/// Kernel counters of one ring, as 64-bit running totals.
///
/// `PACKET_STATISTICS` returns 32-bit counts since the previous read and
/// resets them, so they are read periodically and summed here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Packets the kernel handled for this socket, drops included
    /// (`tp_packets`, which the kernel reports with `tp_drops` added in).
    pub packets: u64,
    /// Packets dropped because the ring was full (`tp_drops`).
    pub drops: u64,
    /// Times the kernel froze the queue because no block was free
    /// (`tp_freeze_q_cnt`).
    pub freezes: u64,
}

impl KernelCounters {
    /// Packets that reached the ring: `packets - drops`.
    pub fn received(&self) -> u64 {
        self.packets.saturating_sub(self.drops)
    }

    fn add(&mut self, delta: sys::TpacketStatsV3) {
        self.packets += u64::from(delta.packets);
        self.drops += u64::from(delta.drops);
        self.freezes += u64::from(delta.freeze_q_cnt);
    }
}

/// Why a ring could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The geometry was not valid.
    Geometry(crate::config::GeometryError),
    /// A system call failed.
    Syscall {
        /// The interface the ring was for.
        interface: String,
        /// The call that failed.
        error: SyscallError,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Geometry(e) => e.fmt(f),
            Self::Syscall { interface, error } => {
                write!(f, "opening a capture ring on {interface}: {error}")?;
                if error.errno() == Some(libc::EPERM) {
                    write!(f, " (capturing needs CAP_NET_RAW; run as root)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// Why a ring stopped capturing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The interface was deleted or moved to another namespace (ENETDOWN with
    /// the interface gone).
    InterfaceGone,
    /// The socket reported another error.
    SocketError(i32),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InterfaceGone => f.write_str("interface gone"),
            Self::SocketError(errno) => {
                write!(f, "socket error: {}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

/// A receive ring whose memory the kernel has already given, not yet bound
/// to an interface: the slow part of opening a ring (the kernel allocating
/// and the process mapping its memory, tens of milliseconds for a few MiB
/// on a virtual machine), done ahead so that an interface that appears is
/// captured from the moment [`UnboundRing::bind`] returns. It receives
/// nothing until then (protocol 0).
pub struct UnboundRing {
    geometry: RingGeometry,
    requested: RingGeometry,
    promiscuous: bool,
    // Field order matters: the mapping (inside `ring`) is unmapped before the
    // socket is closed.
    ring: BlockRing,
    fd: OwnedFd,
}

impl fmt::Debug for UnboundRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundRing")
            .field("geometry", &self.geometry)
            .field("promiscuous", &self.promiscuous)
            .finish_non_exhaustive()
    }
}

impl UnboundRing {
    /// Creates the socket and its ring with `config` (`purpose` names it in
    /// errors and warnings: the interface it is for, or what it is kept
    /// for). When the kernel refuses the memory (ENOMEM), smaller
    /// geometries are tried ([`RingGeometry::shrunk`]).
    pub fn prepare(config: &RingConfig, purpose: &str) -> Result<Self, OpenError> {
        config.geometry.validate().map_err(OpenError::Geometry)?;
        let fail = |error| OpenError::Syscall {
            interface: purpose.to_owned(),
            error,
        };

        // Protocol 0: the socket receives nothing until bound.
        let fd = sys::own_fd(syscall(Syscall::PacketSocket { protocol_be: 0 }).map_err(fail)?);
        set_option(
            fd.as_fd(),
            libc::PACKET_VERSION,
            "setsockopt(PACKET_VERSION)",
            &TPACKET_V3,
        )
        .map_err(fail)?;

        let geometry = request_ring(fd.as_fd(), config.geometry).map_err(fail)?;
        if geometry != config.geometry {
            tracing::warn!(
                interface = purpose,
                requested = %config.geometry,
                obtained = %geometry,
                "kernel refused the ring's memory (ENOMEM); capturing with a smaller ring"
            );
        }
        let len = (geometry.memory_bytes()) as usize;
        let mapping = sys::RingMapping::map(fd.as_fd(), len).map_err(fail)?;
        let ring = BlockRing::new(mapping, geometry.block_size as usize, geometry.block_count as usize);
        Ok(Self {
            geometry,
            requested: config.geometry,
            promiscuous: config.promiscuous,
            ring,
            fd,
        })
    }

    /// The geometry the kernel gave.
    pub fn geometry(&self) -> RingGeometry {
        self.geometry
    }

    /// Binds the ring to `interface`: capturing from the moment this
    /// returns.
    pub fn bind(self, interface: &Interface) -> Result<CaptureRing, OpenError> {
        let fail = |error| OpenError::Syscall {
            interface: interface.name().to_owned(),
            error,
        };
        syscall(Syscall::BindPacket {
            fd: self.fd.as_raw_fd(),
            ifindex: interface.ifindex(),
            protocol_be: ETH_P_ALL_BE,
        })
        .map_err(fail)?;

        if self.promiscuous {
            let membership = sys::PacketMreq {
                ifindex: interface.ifindex(),
                kind: libc::PACKET_MR_PROMISC as u16,
                ..Default::default()
            };
            set_option(
                self.fd.as_fd(),
                libc::PACKET_ADD_MEMBERSHIP,
                "setsockopt(PACKET_ADD_MEMBERSHIP)",
                &membership,
            )
            .map_err(fail)?;
        }

        Ok(CaptureRing {
            interface: interface.clone(),
            geometry: self.geometry,
            requested: self.requested,
            promiscuous: self.promiscuous,
            counters: KernelCounters::default(),
            ring: self.ring,
            fd: self.fd,
        })
    }
}

/// A TPACKET_V3 receive ring bound to one interface.
pub struct CaptureRing {
    interface: Interface,
    geometry: RingGeometry,
    requested: RingGeometry,
    promiscuous: bool,
    counters: KernelCounters,
    // Field order matters: the mapping (inside `ring`) is unmapped before the
    // socket is closed.
    ring: BlockRing,
    fd: OwnedFd,
}

impl fmt::Debug for CaptureRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureRing")
            .field("interface", &self.interface)
            .field("geometry", &self.geometry)
            .field("promiscuous", &self.promiscuous)
            .finish_non_exhaustive()
    }
}

impl CaptureRing {
    /// Opens a ring on `interface` with `config`.
    ///
    /// When the kernel refuses the ring's memory (ENOMEM), smaller geometries
    /// are tried ([`RingGeometry::shrunk`]) and a warning says what was
    /// obtained; [`CaptureRing::geometry`] tells the final one.
    pub fn open(interface: &Interface, config: &RingConfig) -> Result<Self, OpenError> {
        UnboundRing::prepare(config, interface.name())?.bind(interface)
    }

    /// Adds this ring to `group`, so the kernel spreads the interface's
    /// packets over the group's rings. Every ring of a group must be on the
    /// same interface.
    pub fn join_fanout(&self, group: &FanoutGroup) -> Result<(), SyscallError> {
        group.join(self.fd.as_fd())
    }

    /// The interface captured.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The geometry in use (smaller than requested after an ENOMEM fallback).
    pub fn geometry(&self) -> RingGeometry {
        self.geometry
    }

    /// The geometry that was asked for.
    pub fn requested_geometry(&self) -> RingGeometry {
        self.requested
    }

    /// Whether the ring receives frames for other hosts.
    pub fn promiscuous(&self) -> bool {
        self.promiscuous
    }

    /// Blocks whose packet headers did not fit the block (see
    /// [`BlockRing::malformed_blocks`]).
    pub fn malformed_blocks(&self) -> u64 {
        self.ring.malformed_blocks()
    }

    /// The blocks of the ring, to read packets.
    pub fn ring(&mut self) -> &mut BlockRing {
        &mut self.ring
    }

    /// Reads up to `max_blocks` ready blocks, calling `on_packet` with the
    /// ring's interface for each packet; returns the packets read.
    pub fn drain(&mut self, max_blocks: usize, mut on_packet: impl FnMut(&Interface, &crate::ring::Packet<'_>)) -> u64 {
        let interface = &self.interface;
        self.ring.drain(max_blocks, |packet| on_packet(interface, packet))
    }

    /// Reads `PACKET_STATISTICS` into the running totals and returns them.
    pub fn update_counters(&mut self) -> Result<KernelCounters, SyscallError> {
        let mut delta = sys::TpacketStatsV3::default();
        syscall(Syscall::GetSockOpt {
            fd: self.fd.as_raw_fd(),
            level: libc::SOL_PACKET,
            name: libc::PACKET_STATISTICS,
            call: "getsockopt(PACKET_STATISTICS)",
            value: as_bytes_mut(&mut delta),
        })?;
        self.counters.add(delta);
        Ok(self.counters)
    }

    /// Stops the kernel from putting any more frames in this ring, and from
    /// counting them. What the ring already holds stays readable, so a
    /// capture that ends calls this, reads the ring to its end, then reads the
    /// counters: every frame the kernel counted is then one that was read.
    pub fn stop_accepting(&self) -> Result<(), SyscallError> {
        syscall(Syscall::AttachRejectAllFilter {
            fd: self.fd.as_raw_fd(),
        })
        .map(drop)
    }

    /// The running totals as of the last [`CaptureRing::update_counters`].
    pub fn counters(&self) -> KernelCounters {
        self.counters
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> Option<i32> {
        let mut errno: i32 = 0;
        syscall(Syscall::GetSockOpt {
            fd: self.fd.as_raw_fd(),
            level: libc::SOL_SOCKET,
            name: libc::SO_ERROR,
            call: "getsockopt(SO_ERROR)",
            value: as_bytes_mut(&mut errno),
        })
        .ok()?;
        (errno != 0).then_some(errno)
    }

    /// Whether the interface this ring was bound to is gone: deleted, or
    /// moved to another namespace. Asks the socket, not the namespace, so the
    /// answer holds whichever namespace the calling thread is in: the kernel
    /// sets the socket's bound index to -1 when it unregisters the device
    /// (`packet_notifier`, NETDEV_UNREGISTER).
    pub fn interface_gone(&self) -> bool {
        let mut ifindex = 0;
        match syscall(Syscall::BoundIfindex {
            fd: self.fd.as_raw_fd(),
            ifindex: &mut ifindex,
        }) {
            Ok(_) => ifindex != self.interface.ifindex(),
            Err(_) => false,
        }
    }

    /// Decides what a pending socket error means: `None` when the ring can go
    /// on, otherwise why it must close.
    ///
    /// The kernel reports ENETDOWN once, when the link goes down, whether or
    /// not the interface is then being deleted; deletion itself reports
    /// nothing, and a link that comes back up resumes delivery silently. So an
    /// ENETDOWN ring whose interface is still registered is kept, and the
    /// caller must keep asking [`CaptureRing::interface_gone`] (as
    /// [`crate::RingSet`] does) to notice a deletion that follows.
    pub fn check_error(&self) -> Option<CloseReason> {
        match self.take_error()? {
            libc::ENETDOWN if !self.interface_gone() => None,
            libc::ENETDOWN | libc::ENODEV | libc::ENXIO => Some(CloseReason::InterfaceGone),
            errno => Some(CloseReason::SocketError(errno)),
        }
    }

    /// Waits up to `timeout_ms` for a block, or an error, on this ring alone.
    /// Returns whether the socket became ready.
    pub fn wait(&self, timeout_ms: i32) -> Result<bool, SyscallError> {
        loop {
            match syscall(Syscall::PollIn {
                fd: self.fd.as_raw_fd(),
                timeout_ms,
            }) {
                Ok(revents) => return Ok(revents != 0),
                Err(e) if e.errno() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for CaptureRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn set_option<T: Copy>(fd: BorrowedFd<'_>, name: i32, call: &'static str, value: &T) -> Result<(), SyscallError> {
    syscall(Syscall::SetSockOpt {
        fd: fd.as_raw_fd(),
        level: libc::SOL_PACKET,
        name,
        call,
        value: as_bytes(value),
    })
    .map(drop)
}

/// Asks for a ring of `geometry`, shrinking it while the kernel answers
/// ENOMEM. Returns the geometry obtained.
fn request_ring(fd: BorrowedFd<'_>, mut geometry: RingGeometry) -> Result<RingGeometry, SyscallError> {
    loop {
        let request = sys::TpacketReq3 {
            block_size: geometry.block_size,
            block_nr: geometry.block_count,
            frame_size: FRAME_SIZE.min(geometry.block_size),
            frame_nr: geometry.block_count * (geometry.block_size / FRAME_SIZE.min(geometry.block_size)),
            retire_blk_tov: geometry.retire_timeout_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        match set_option(fd, libc::PACKET_RX_RING, "setsockopt(PACKET_RX_RING)", &request) {
            Ok(()) => return Ok(geometry),
            Err(e) if e.errno() == Some(libc::ENOMEM) => match geometry.shrunk() {
                Some(smaller) => {
                    tracing::debug!(refused = %geometry, trying = %smaller, "PACKET_RX_RING: ENOMEM");
                    geometry = smaller;
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InterfaceRole;
    use crate::sys::fake::{errno, with_fake};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A recording fake kernel: logs each call and refuses rings larger than
    /// `max_ring_bytes` with ENOMEM.
    fn fake_kernel(
        max_ring_bytes: u64,
        log: Rc<RefCell<Vec<String>>>,
    ) -> impl FnMut(&mut Syscall<'_>) -> Result<i64, SyscallError> {
        move |call| {
            let entry = match call {
                Syscall::PacketSocket { protocol_be } => {
                    // A real fd number the OwnedFd may close: a dup of stdin.
                    log.borrow_mut().push(format!("socket({protocol_be})"));
                    return Ok(std::os::fd::IntoRawFd::into_raw_fd(std::fs::File::open("/dev/null").unwrap()).into());
                }
                Syscall::SetSockOpt { name, value, .. } if *name == libc::PACKET_RX_RING => {
                    let block_size = u32::from_ne_bytes(value[0..4].try_into().unwrap());
                    let block_nr = u32::from_ne_bytes(value[4..8].try_into().unwrap());
                    let frame_size = u32::from_ne_bytes(value[8..12].try_into().unwrap());
                    let frame_nr = u32::from_ne_bytes(value[12..16].try_into().unwrap());
                    assert_eq!(frame_nr * frame_size, block_nr * block_size);
                    log.borrow_mut().push(format!("rx_ring({block_size}x{block_nr})"));
                    if u64::from(block_size) * u64::from(block_nr) > max_ring_bytes {
                        return Err(errno("setsockopt(PACKET_RX_RING)", libc::ENOMEM));
                    }
                    return Ok(0);
                }
                Syscall::SetSockOpt { name, .. } => format!("setsockopt({name})"),
                Syscall::BindPacket {
                    ifindex, protocol_be, ..
                } => {
                    format!("bind({ifindex},{:#x})", u16::from_be(*protocol_be))
                }
                other => format!("{other:?}"),
            };
            log.borrow_mut().push(entry);
            Ok(0)
        }
    }

    #[test]
    fn binds_only_after_the_ring_is_configured() {
        let log = Rc::new(RefCell::new(vec![]));
        let ring = with_fake(fake_kernel(u64::MAX, log.clone()), || {
            CaptureRing::open(
                &Interface::new("veth0", 9),
                &RingConfig::for_role(InterfaceRole::ContainerVeth),
            )
        })
        .unwrap();
        assert_eq!(
            *log.borrow(),
            vec![
                "socket(0)".to_string(),
                format!("setsockopt({})", libc::PACKET_VERSION),
                "rx_ring(524288x16)".into(),
                "bind(9,0x3)".into(),
            ]
        );
        assert_eq!(ring.geometry(), ring.requested_geometry());
    }

    #[test]
    fn enomem_retries_with_a_smaller_ring() {
        let log = Rc::new(RefCell::new(vec![]));
        let ring = with_fake(fake_kernel(16 << 20, log.clone()), || {
            CaptureRing::open(&Interface::new("eth0", 2), &RingConfig::for_role(InterfaceRole::Uplink))
        })
        .unwrap();
        let rings: Vec<_> = log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("rx_ring"))
            .cloned()
            .collect();
        assert_eq!(
            rings,
            ["rx_ring(1048576x64)", "rx_ring(1048576x32)", "rx_ring(1048576x16)"]
        );
        assert_eq!(ring.geometry().memory_bytes(), 16 << 20);
        assert_eq!(ring.requested_geometry().memory_bytes(), 64 << 20);
    }

    #[test]
    fn enomem_at_the_smallest_ring_is_an_error_naming_the_call() {
        let log = Rc::new(RefCell::new(vec![]));
        let err = with_fake(fake_kernel(0, log), || {
            CaptureRing::open(&Interface::new("eth0", 2), &RingConfig::for_role(InterfaceRole::Other))
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("setsockopt(PACKET_RX_RING)") && text.contains("eth0"),
            "{text}"
        );
    }

    #[test]
    fn promiscuous_mode_is_a_membership_added_after_bind() {
        let log = Rc::new(RefCell::new(vec![]));
        let config = RingConfig {
            promiscuous: true,
            ..RingConfig::for_role(InterfaceRole::Bridge)
        };
        with_fake(fake_kernel(u64::MAX, log.clone()), || {
            CaptureRing::open(&Interface::new("docker0", 3), &config)
        })
        .unwrap();
        let log = log.borrow();
        assert_eq!(
            log.last().unwrap(),
            &format!("setsockopt({})", libc::PACKET_ADD_MEMBERSHIP)
        );
        assert!(log[log.len() - 2].starts_with("bind"));
    }

    #[test]
    fn counters_accumulate_and_received_excludes_drops() {
        let mut counters = KernelCounters::default();
        counters.add(sys::TpacketStatsV3 {
            packets: u32::MAX,
            drops: 10,
            freeze_q_cnt: 1,
        });
        counters.add(sys::TpacketStatsV3 {
            packets: 100,
            drops: 5,
            freeze_q_cnt: 0,
        });
        assert_eq!(counters.packets, u64::from(u32::MAX) + 100);
        assert_eq!(counters.received(), u64::from(u32::MAX) + 100 - 15);
        assert_eq!(counters.freezes, 1);
    }
}
