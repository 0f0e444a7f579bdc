//! Sending raw Ethernet frames on one interface: the packet blaster of the
//! test bed and the load generator of the benchmarks.
//!
//! A packet socket with protocol 0 (it receives nothing) sends whole frames,
//! link-layer header included, in batches through `sendmmsg`. With
//! `PACKET_QDISC_BYPASS` the frames go straight to the driver, skipping the
//! queueing discipline, as high-rate generators do.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::interface::Interface;
use crate::sys::{self, as_bytes, syscall, Syscall, SyscallError};

/// A socket that sends frames on one interface.
#[derive(Debug)]
pub struct FrameSender {
    interface: Interface,
    fd: OwnedFd,
}

impl FrameSender {
    /// A sender on `interface`.
    pub fn open(interface: &Interface) -> Result<Self, SyscallError> {
        let fd = sys::own_fd(syscall(Syscall::PacketSocket { protocol_be: 0 })?);
        Ok(Self {
            interface: interface.clone(),
            fd,
        })
    }

    /// Skips the interface's queueing discipline (`PACKET_QDISC_BYPASS`):
    /// faster, but frames the driver cannot take are dropped, not queued.
    pub fn bypass_qdisc(&self) -> Result<(), SyscallError> {
        let on: i32 = 1;
        syscall(Syscall::SetSockOpt {
            fd: self.fd.as_raw_fd(),
            level: libc::SOL_PACKET,
            name: libc::PACKET_QDISC_BYPASS,
            call: "setsockopt(PACKET_QDISC_BYPASS)",
            value: as_bytes(&on),
        })
        .map(drop)
    }

    /// Sends `frames` (each a whole Ethernet frame) and returns how many the
    /// kernel accepted. A full device queue is waited out, not reported.
    pub fn send(&self, frames: &[&[u8]]) -> Result<usize, SyscallError> {
        if frames.is_empty() {
            return Ok(0);
        }
        syscall(Syscall::SendFrames {
            fd: self.fd.as_raw_fd(),
            ifindex: self.interface.ifindex(),
            frames,
        })
        .map(|n| n as usize)
    }

    /// The interface frames are sent on.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }
}
