//! PACKET_FANOUT: spreading one interface's packets over several rings, one
//! per capture thread.
//!
//! Group ids are 16 bits, shared by every process in the network namespace,
//! and a group is bound to one interface. Choosing ids by hand invites
//! collisions (two interfaces, or two ringsieve processes, picking the same
//! id makes the second join fail or, worse, steal packets). So the first ring
//! of a group asks the kernel for an unused id (`PACKET_FANOUT_FLAG_UNIQUEID`,
//! Linux 4.12+), reads it back, and the other rings join that id.

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{as_bytes, as_bytes_mut, syscall, Syscall, SyscallError};

const FLAG_UNIQUEID: u32 = 0x2000;
const FLAG_DEFRAG: u32 = 0x8000;
/// `fanout_id` holds no id yet.
const NO_ID: u32 = u32::MAX;

/// How the kernel picks the ring of a group for each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FanoutMode {
    /// By flow hash, both directions of a flow to one ring; IP fragments are
    /// reassembled first so they hash with their flow (`PACKET_FANOUT_HASH`
    /// with `PACKET_FANOUT_FLAG_DEFRAG`).
    Hash,
    /// By the CPU that received the packet (`PACKET_FANOUT_CPU`).
    Cpu,
    /// Round robin (`PACKET_FANOUT_LB`).
    LoadBalance,
    /// By the NIC receive queue (`PACKET_FANOUT_QM`).
    QueueMapping,
}

impl FanoutMode {
    fn type_and_flags(self) -> u32 {
        match self {
            Self::Hash => FLAG_DEFRAG,
            Self::LoadBalance => 1,
            Self::Cpu => 2,
            Self::QueueMapping => 5,
        }
    }

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Cpu => "cpu",
            Self::LoadBalance => "lb",
            Self::QueueMapping => "qm",
        }
    }
}

impl fmt::Display for FanoutMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FanoutMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hash" => Ok(Self::Hash),
            "cpu" => Ok(Self::Cpu),
            "lb" => Ok(Self::LoadBalance),
            "qm" => Ok(Self::QueueMapping),
            _ => Err("expected one of: hash, cpu, lb, qm".into()),
        }
    }
}

/// One fanout group: the rings of one interface that share its packets.
#[derive(Debug)]
pub struct FanoutGroup {
    mode: FanoutMode,
    /// The kernel-assigned group id, or `NO_ID` until the first ring joined.
    /// Written once, by the first successful `join`.
    fanout_id: AtomicU32,
}

impl FanoutGroup {
    /// A group that has no ring yet.
    pub fn new(mode: FanoutMode) -> Self {
        Self {
            mode,
            fanout_id: AtomicU32::new(NO_ID),
        }
    }

    /// The mode of the group.
    pub fn mode(&self) -> FanoutMode {
        self.mode
    }

    /// The id the kernel gave the group, once a ring has joined.
    pub fn id(&self) -> Option<u16> {
        match self.fanout_id.load(Ordering::Acquire) {
            NO_ID => None,
            id => Some(id as u16),
        }
    }

    /// Adds the bound packet socket `fd` to the group. Rings of one group
    /// must join one after the other (they are opened by one thread).
    pub(crate) fn join(&self, fd: BorrowedFd<'_>) -> Result<(), SyscallError> {
        let raw = fd.as_raw_fd();
        let set = |arg: u32| {
            syscall(Syscall::SetSockOpt {
                fd: raw,
                level: libc::SOL_PACKET,
                name: libc::PACKET_FANOUT,
                call: "setsockopt(PACKET_FANOUT)",
                value: as_bytes(&arg),
            })
        };
        let type_flags = self.mode.type_and_flags();
        if let Some(id) = self.id() {
            set(u32::from(id) | (type_flags << 16))?;
            return Ok(());
        }
        set((type_flags | FLAG_UNIQUEID) << 16)?;
        let mut value: u32 = 0;
        syscall(Syscall::GetSockOpt {
            fd: raw,
            level: libc::SOL_PACKET,
            name: libc::PACKET_FANOUT,
            call: "getsockopt(PACKET_FANOUT)",
            value: as_bytes_mut(&mut value),
        })?;
        self.fanout_id.store(value & 0xffff, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::with_fake;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn first_ring_asks_kernel_for_unique_id_and_others_join_it() {
        let seen = Rc::new(RefCell::new(vec![]));
        let log = seen.clone();
        let group = FanoutGroup::new(FanoutMode::Hash);
        with_fake(
            move |call| match call {
                Syscall::SetSockOpt { value, .. } => {
                    log.borrow_mut().push(u32::from_ne_bytes((*value).try_into().unwrap()));
                    Ok(0)
                }
                Syscall::GetSockOpt { value, .. } => {
                    // id 0x1234, type hash (0), flags defrag (0x80 << 24).
                    let answer: u32 = 0x1234 | (0x80 << 24);
                    value.copy_from_slice(&answer.to_ne_bytes());
                    Ok(4)
                }
                _ => Ok(0),
            },
            || {
                let devnull = std::fs::File::open("/dev/null").unwrap();
                use std::os::fd::AsFd;
                group.join(devnull.as_fd()).unwrap();
                group.join(devnull.as_fd()).unwrap();
            },
        );
        assert_eq!(group.id(), Some(0x1234));
        assert_eq!(
            *seen.borrow(),
            vec![(FLAG_DEFRAG | FLAG_UNIQUEID) << 16, 0x1234 | (FLAG_DEFRAG << 16)]
        );
    }

    #[test]
    fn modes_parse_from_their_names() {
        for mode in [
            FanoutMode::Hash,
            FanoutMode::Cpu,
            FanoutMode::LoadBalance,
            FanoutMode::QueueMapping,
        ] {
            assert_eq!(mode.as_str().parse::<FanoutMode>(), Ok(mode));
        }
        assert!("rr".parse::<FanoutMode>().is_err());
    }
}
