//! Ring geometry: block size, block count and retire timeout, their defaults
//! per interface role, what each costs in memory, and the rules the kernel
//! puts on them. Pure values, checked without any system call.
//!
//! # Memory
//!
//! A ring costs `block_size * block_count` bytes of unswappable kernel memory,
//! mapped into the process. The defaults per [`InterfaceRole`]:
//!
//! | role | block size | blocks | memory | why |
//! |---|---|---|---|---|
//! | uplink | 1 MiB | 64 | 64 MiB | carries every host's external traffic; 64 MiB is what the ground-truth measurements needed for zero drops on MTU-sized bulk transfers |
//! | bridge | 1 MiB | 32 | 32 MiB | sees container-to-host traffic |
//! | container veth | 512 KiB | 16 | 8 MiB | one container's traffic; a host with 100 containers spends 800 MiB |
//! | other | 1 MiB | 16 | 16 MiB | anything else |
//!
//! A block must hold at least one GSO super-frame (up to 64 KiB plus
//! headers), so blocks below 128 KiB truncate such frames.

use std::fmt;

/// Size of a kernel page; block sizes are multiples of it.
pub const PAGE_SIZE: u32 = 4096;
/// Smallest accepted block size.
pub const MIN_BLOCK_SIZE: u32 = PAGE_SIZE;
/// Largest accepted block size (the kernel allocates each block contiguously
/// when it can; beyond 64 MiB it rarely can).
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;
/// Smallest block count: with one block the kernel freezes the queue every
/// time user space is reading.
pub const MIN_BLOCK_COUNT: u32 = 2;
/// Largest block count.
pub const MAX_BLOCK_COUNT: u32 = 1 << 16;
/// Largest retire timeout, in milliseconds.
pub const MAX_RETIRE_TIMEOUT_MS: u32 = 60_000;
/// Smallest ring the ENOMEM fallback shrinks to: blocks still big enough for a
/// GSO super-frame.
pub const FALLBACK_MIN_BLOCK_SIZE: u32 = 128 << 10;
/// Fewest blocks the ENOMEM fallback shrinks to.
pub const FALLBACK_MIN_BLOCK_COUNT: u32 = 4;

/// `tp_frame_size` handed to the kernel. TPACKET_V3 packs packets of any size
/// into blocks, so this only has to divide the block size and hold a header.
pub(crate) const FRAME_SIZE: u32 = 2048;

/// What an interface is on a Docker host. Sets ring sizes now, and the dedup
/// preference later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InterfaceRole {
    /// Carries the default route (`eth0`).
    Uplink,
    /// A bridge (`docker0`).
    Bridge,
    /// The host-side end of a container's veth pair.
    ContainerVeth,
    /// Anything else.
    Other,
}

impl InterfaceRole {
    /// The name used in configuration and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uplink => "uplink",
            Self::Bridge => "bridge",
            Self::ContainerVeth => "container-veth",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for InterfaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape of one receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per block: a power of two from 4 KiB to 64 MiB.
    pub block_size: u32,
    /// Number of blocks: 2 to 65536.
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a block that is not
    /// full, so quiet interfaces are not delayed indefinitely. 0 lets the
    /// kernel choose from the link speed.
    pub retire_timeout_ms: u32,
}

impl RingGeometry {
    /// The default geometry for an interface of `role` (see the module docs
    /// for the memory each costs).
    ///
    /// A ring's geometry is fixed when it is opened (the kernel maps it
    /// once): `ringsieve run` sizes a ring by the role its interface has
    /// then (a veth not yet enslaved as a container veth) and keeps it when
    /// the role changes later. An interface that becomes the uplink or a
    /// bridge while captured (a default route added afterwards, say) keeps
    /// its smaller ring until it is captured again (the agent restarted, or
    /// the interface gone and back); only its dedup preference and container
    /// follow the change.
    pub fn for_role(role: InterfaceRole) -> Self {
        let (block_size, block_count) = match role {
            InterfaceRole::Uplink => (1 << 20, 64),
            InterfaceRole::Bridge => (1 << 20, 32),
            InterfaceRole::ContainerVeth => (512 << 10, 16),
            InterfaceRole::Other => (1 << 20, 16),
        };
        Self {
            block_size,
            block_count,
            retire_timeout_ms: 8,
        }
    }

    /// Bytes of kernel memory the ring pins.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.block_count)
    }

    /// Checks the geometry against what the kernel and ringsieve accept.
    pub fn validate(&self) -> Result<(), GeometryError> {
        if !self.block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err(GeometryError::BlockSize(self.block_size));
        }
        if !(MIN_BLOCK_COUNT..=MAX_BLOCK_COUNT).contains(&self.block_count) {
            return Err(GeometryError::BlockCount(self.block_count));
        }
        if self.retire_timeout_ms > MAX_RETIRE_TIMEOUT_MS {
            return Err(GeometryError::RetireTimeout(self.retire_timeout_ms));
        }
        if usize::try_from(self.memory_bytes()).is_err() {
            return Err(GeometryError::BlockCount(self.block_count));
        }
        Ok(())
    }

    /// The next smaller geometry to try when the kernel refuses this one's
    /// memory: half the blocks, then half the block size, never below
    /// [`FALLBACK_MIN_BLOCK_COUNT`] blocks of [`FALLBACK_MIN_BLOCK_SIZE`].
    /// `None` when there is nothing smaller to try.
    pub fn shrunk(&self) -> Option<Self> {
        if self.block_count / 2 >= FALLBACK_MIN_BLOCK_COUNT {
            Some(Self {
                block_count: self.block_count / 2,
                ..*self
            })
        } else if self.block_size / 2 >= FALLBACK_MIN_BLOCK_SIZE {
            Some(Self {
                block_size: self.block_size / 2,
                ..*self
            })
        } else {
            None
        }
    }
}

impl fmt::Display for RingGeometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blocks of {} KiB ({} MiB), retire timeout {} ms",
            self.block_count,
            self.block_size >> 10,
            self.memory_bytes() >> 20,
            self.retire_timeout_ms
        )
    }
}

/// A ring geometry the kernel or ringsieve would not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeometryError {
    /// Not a power of two from 4 KiB to 64 MiB.
    BlockSize(u32),
    /// Not from 2 to 65536, or the ring would not fit the address space.
    BlockCount(u32),
    /// More than 60000 ms.
    RetireTimeout(u32),
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BlockSize(v) => write!(f, "block size {v} is not a power of two from 4096 to 67108864 bytes"),
            Self::BlockCount(v) => write!(f, "block count {v} is not from 2 to 65536"),
            Self::RetireTimeout(v) => write!(f, "retire timeout {v} ms is more than 60000 ms"),
        }
    }
}

impl std::error::Error for GeometryError {}

/// Everything needed to open one capture ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Block size, count and retire timeout.
    pub geometry: RingGeometry,
    /// Receive frames addressed to other hosts too, through
    /// `PACKET_ADD_MEMBERSHIP` (reverted by the kernel when the socket
    /// closes); the interface's own flags are never changed.
    pub promiscuous: bool,
}

impl RingConfig {
    /// The default configuration for an interface of `role`: its default
    /// geometry, not promiscuous.
    pub fn for_role(role: InterfaceRole) -> Self {
        Self {
            geometry: RingGeometry::for_role(role),
            promiscuous: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_uplink_gets_the_largest_ring() {
        let roles = [
            InterfaceRole::Uplink,
            InterfaceRole::Bridge,
            InterfaceRole::ContainerVeth,
            InterfaceRole::Other,
        ];
        for role in roles {
            RingGeometry::for_role(role).validate().unwrap();
        }
        let uplink = RingGeometry::for_role(InterfaceRole::Uplink).memory_bytes();
        assert_eq!(uplink, 64 << 20);
        assert!(roles
            .iter()
            .all(|&r| RingGeometry::for_role(r).memory_bytes() <= uplink));
        assert_eq!(
            RingGeometry::for_role(InterfaceRole::ContainerVeth).memory_bytes(),
            8 << 20
        );
    }

    #[test]
    fn rejects_sizes_the_kernel_would_refuse() {
        let ok = RingGeometry::for_role(InterfaceRole::Other);
        for bad in [0, 1000, 4097, 3 << 20, 128 << 20] {
            let g = RingGeometry { block_size: bad, ..ok };
            assert_eq!(g.validate(), Err(GeometryError::BlockSize(bad)));
        }
        for bad in [0, 1, 65537] {
            let g = RingGeometry { block_count: bad, ..ok };
            assert_eq!(g.validate(), Err(GeometryError::BlockCount(bad)));
        }
        let g = RingGeometry {
            retire_timeout_ms: 60_001,
            ..ok
        };
        assert_eq!(g.validate(), Err(GeometryError::RetireTimeout(60_001)));
    }

    #[test]
    fn shrinking_halves_blocks_then_block_size_then_stops() {
        let mut g = RingGeometry {
            block_size: 256 << 10,
            block_count: 16,
            retire_timeout_ms: 8,
        };
        let mut steps = vec![];
        while let Some(next) = g.shrunk() {
            steps.push((next.block_size >> 10, next.block_count));
            g = next;
        }
        assert_eq!(steps, vec![(256, 8), (256, 4), (128, 4)]);
    }
}
