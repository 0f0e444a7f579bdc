//! The one chokepoint between ringsieve and the kernel: every system call the
//! capture engine makes goes through [`syscall`], and the kernel ABI it needs
//! (TPACKET_V3 headers, `sockaddr_ll`, socket option numbers) is declared here.
//!
//! Why one chokepoint: errors always name the call that failed
//! ([`SyscallError`]), and under `cfg(test)` a thread-local fake
//! ([`fake::with_fake`]) can answer the calls instead of the kernel, so the ring
//! setup logic (ENOMEM retries, option order, statistics) is unit-tested without
//! root. The mmap of the ring is the only kernel interaction outside
//! [`syscall`]; it lives in [`map_ring`] with its own fake.
//!
//! This module and `ring` are the only places in the workspace with `unsafe`.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// `ETH_P_ALL` in network byte order, as `bind` and `socket` expect it.
pub(crate) const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// `struct tpacket_req3` (linux/if_packet.h): the ring geometry handed to
/// `setsockopt(PACKET_RX_RING)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TpacketReq3 {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub retire_blk_tov: u32,
    pub sizeof_priv: u32,
    pub feature_req_word: u32,
}

/// `struct tpacket_stats_v3`: what `getsockopt(PACKET_STATISTICS)` returns for
/// a TPACKET_V3 socket. Reading it resets the kernel's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TpacketStatsV3 {
    pub packets: u32,
    pub drops: u32,
    pub freeze_q_cnt: u32,
}

/// `struct packet_mreq`, for `PACKET_ADD_MEMBERSHIP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PacketMreq {
    pub ifindex: i32,
    pub kind: u16,
    pub alen: u16,
    pub address: [u8; 8],
}

/// Offsets inside `struct tpacket_block_desc` (version, offset_to_priv, then
/// `struct tpacket_hdr_v1`). Read through `ring`, never as a Rust struct,
/// because the kernel writes the block concurrently.
pub(crate) mod block_desc {
    /// `hdr.bh1.block_status`: TP_STATUS_KERNEL or TP_STATUS_USER (| flags).
    pub const BLOCK_STATUS: usize = 8;
    /// `hdr.bh1.num_pkts`.
    pub const NUM_PKTS: usize = 12;
    /// `hdr.bh1.offset_to_first_pkt`.
    pub const OFFSET_TO_FIRST_PKT: usize = 16;
    /// `hdr.bh1.blk_len`: bytes of the block in use.
    pub const BLK_LEN: usize = 20;
    /// `hdr.bh1.seq_num` (u64, 8-aligned).
    pub const SEQ_NUM: usize = 24;
    /// Size of the descriptor; the first packet starts at or after it.
    pub const SIZE: usize = 48;
}

/// Offsets inside `struct tpacket3_hdr`, the per-packet header.
pub(crate) mod packet_hdr {
    /// `tp_next_offset`: offset of the next packet from this one, 0 for the last.
    pub const NEXT_OFFSET: usize = 0;
    /// `tp_sec`.
    pub const SEC: usize = 4;
    /// `tp_nsec` (TPACKET_V3 always reports nanoseconds).
    pub const NSEC: usize = 8;
    /// `tp_snaplen`: bytes captured.
    pub const SNAPLEN: usize = 12;
    /// `tp_len`: bytes on the wire.
    pub const LEN: usize = 16;
    /// `tp_status`: TP_STATUS_* flags of this packet.
    pub const STATUS: usize = 20;
    /// `tp_mac`: offset of the link-layer header from this header.
    pub const MAC: usize = 24;
    /// `hv1.tp_rxhash`.
    pub const RXHASH: usize = 28;
    /// `hv1.tp_vlan_tci` (u32 in V3, only the low 16 bits are the TCI).
    pub const VLAN_TCI: usize = 32;
    /// `hv1.tp_vlan_tpid`.
    pub const VLAN_TPID: usize = 36;
    /// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where `sockaddr_ll` sits.
    pub const SOCKADDR_LL: usize = 48;
    /// `sockaddr_ll.sll_ifindex`, from the packet header.
    pub const SLL_IFINDEX: usize = SOCKADDR_LL + 4;
    /// `sockaddr_ll.sll_pkttype`, from the packet header.
    pub const SLL_PKTTYPE: usize = SOCKADDR_LL + 10;
    /// `sizeof(struct sockaddr_ll)`.
    pub const SOCKADDR_LL_SIZE: usize = 20;
    /// `TPACKET3_HDRLEN`: header, aligned, plus `sockaddr_ll`.
    pub const HDRLEN: usize = SOCKADDR_LL + SOCKADDR_LL_SIZE;
}

/// A failed system call: which call, and the errno it returned.
#[derive(Debug)]
pub struct SyscallError {
    /// The call, with the option where one call serves many
    /// (`"setsockopt(PACKET_RX_RING)"`).
    pub call: &'static str,
    /// The error the kernel returned.
    pub io_error: io::Error,
}

impl SyscallError {
    /// The raw errno, when there is one.
    pub fn errno(&self) -> Option<i32> {
        self.io_error.raw_os_error()
    }
}

impl fmt::Display for SyscallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.io_error)
    }
}

impl std::error::Error for SyscallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.io_error)
    }
}

/// One system call, with its arguments. [`syscall`] performs it.
#[derive(Debug)]
pub(crate) enum Syscall<'a> {
    /// `socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, protocol)`.
    PacketSocket { protocol_be: u16 },
    /// `madvise(addr, len, MADV_HUGEPAGE)`: `addr` page-aligned. The advice
    /// changes how the kernel backs the pages, never their contents.
    AdviseHugePages { addr: usize, len: usize },
    /// `setsockopt(fd, level, name, value)`.
    SetSockOpt {
        fd: RawFd,
        level: i32,
        name: i32,
        call: &'static str,
        value: &'a [u8],
    },
    /// `getsockopt(fd, level, name, value)`; returns the length written.
    GetSockOpt {
        fd: RawFd,
        level: i32,
        name: i32,
        call: &'static str,
        value: &'a mut [u8],
    },
    /// `setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER)` with the one-instruction
    /// classic BPF program `ret #0`: from then on the socket accepts no frame.
    /// The kernel runs a packet socket's filter before it counts a frame in
    /// `PACKET_STATISTICS`, so the counters freeze too.
    AttachRejectAllFilter { fd: RawFd },
    /// `bind(fd, sockaddr_ll { ifindex, protocol })`.
    BindPacket { fd: RawFd, ifindex: i32, protocol_be: u16 },
    /// `getsockname(fd)` of a packet socket: writes the `sll_ifindex` it is
    /// bound to, -1 once the kernel unregistered that interface.
    BoundIfindex { fd: RawFd, ifindex: &'a mut i32 },
    /// `sendto(fd, frame, sockaddr_ll { ifindex })` for each frame, batched
    /// with `sendmmsg`; returns the number of frames sent.
    SendFrames {
        fd: RawFd,
        ifindex: i32,
        frames: &'a [&'a [u8]],
    },
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    EpollCreate,
    /// `epoll_ctl(epfd, op, fd, { events, data: token })`.
    EpollCtl {
        epfd: RawFd,
        op: i32,
        fd: RawFd,
        events: u32,
        token: u64,
    },
    /// `epoll_wait(epfd, events, timeout_ms)`; returns the number of events.
    EpollWait {
        epfd: RawFd,
        events: &'a mut [libc::epoll_event],
        timeout_ms: i32,
    },
    /// `poll` on one fd for `POLLIN`, used by single-ring waits.
    PollIn { fd: RawFd, timeout_ms: i32 },
    /// `setns(fd, CLONE_NEWNET)` for the calling thread.
    SetNetNs { fd: RawFd },
    /// `if_nametoindex(name)`.
    IfNameToIndex { name: &'a CStr },
    /// `if_indextoname(index, buf)`; returns the name's length.
    IfIndexToName { ifindex: u32, name: &'a mut [u8] },
}

/// Performs `call` and returns its non-negative result.
///
/// Under `cfg(test)`, a fake installed with [`fake::with_fake`] answers
/// instead of the kernel.
pub(crate) fn syscall(call: Syscall<'_>) -> Result<i64, SyscallError> {
    #[cfg(test)]
    let mut call = call;
    #[cfg(test)]
    if let Some(result) = fake::answer(&mut call) {
        return result;
    }
    real_syscall(call)
}

fn check(call: &'static str, ret: i64) -> Result<i64, SyscallError> {
    if ret < 0 {
        Err(SyscallError {
            call,
            io_error: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

fn sockaddr_ll(ifindex: i32, protocol_be: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol_be,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

fn real_syscall(call: Syscall<'_>) -> Result<i64, SyscallError> {
    match call {
        Syscall::PacketSocket { protocol_be } => {
            // SAFETY: socket(2) takes integers only and returns a new fd or -1.
            let ret = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(protocol_be),
                )
            };
            check("socket(AF_PACKET)", ret.into())
        }
        Syscall::SetSockOpt {
            fd,
            level,
            name,
            call,
            value,
        } => {
            // SAFETY: `value` is a live slice; the kernel reads at most
            // `value.len()` bytes from it.
            let ret =
                unsafe { libc::setsockopt(fd, level, name, value.as_ptr().cast(), value.len() as libc::socklen_t) };
            check(call, ret.into())
        }
        Syscall::GetSockOpt {
            fd,
            level,
            name,
            call,
            value,
        } => {
            let mut len = value.len() as libc::socklen_t;
            // SAFETY: `value` is a live, writable slice of `len` bytes and
            // `len` is a valid socklen_t the kernel updates in place.
            let ret = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
            check(call, ret.into()).map(|_| i64::from(len))
        }
        Syscall::AttachRejectAllFilter { fd } => {
            // BPF_RET | BPF_K with k = 0: keep no byte of the frame.
            let mut reject_all = [libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            let program = libc::sock_fprog {
                len: reject_all.len() as u16,
                filter: reject_all.as_mut_ptr(),
            };
            // SAFETY: `program` and the instruction array it points to live
            // on this stack frame for the whole call; the kernel copies the
            // program before returning and never keeps the pointer.
            let ret = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_FILTER,
                    std::ptr::from_ref(&program).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
                )
            };
            check("setsockopt(SO_ATTACH_FILTER)", ret.into())
        }
        Syscall::BindPacket {
            fd,
            ifindex,
            protocol_be,
        } => {
            let addr = sockaddr_ll(ifindex, protocol_be);
            // SAFETY: `addr` is a fully initialised sockaddr_ll on the stack
            // and its exact size is passed.
            let ret = unsafe {
                libc::bind(
                    fd,
                    std::ptr::from_ref(&addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            check("bind(AF_PACKET)", ret.into())
        }
        Syscall::BoundIfindex { fd, ifindex } => {
            let mut addr = sockaddr_ll(0, 0);
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `addr` is a writable sockaddr_ll and `len` its exact
            // size; the kernel writes at most `len` bytes and updates `len`.
            let ret = unsafe { libc::getsockname(fd, std::ptr::from_mut(&mut addr).cast(), &mut len) };
            let ret = check("getsockname(AF_PACKET)", ret.into())?;
            *ifindex = addr.sll_ifindex;
            Ok(ret)
        }
        Syscall::SendFrames { fd, ifindex, frames } => send_frames(fd, ifindex, frames),
        Syscall::EpollCreate => {
            // SAFETY: epoll_create1 takes a flag word and returns a new fd or -1.
            let ret = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            check("epoll_create1", ret.into())
        }
        Syscall::EpollCtl {
            epfd,
            op,
            fd,
            events,
            token,
        } => {
            let mut event = libc::epoll_event { events, u64: token };
            // SAFETY: `event` is a valid epoll_event on the stack; the kernel
            // copies it before returning.
            let ret = unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) };
            check("epoll_ctl", ret.into())
        }
        Syscall::EpollWait {
            epfd,
            events,
            timeout_ms,
        } => {
            let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
            // SAFETY: `events` is a live, writable buffer of `max` entries.
            let ret = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), max, timeout_ms) };
            check("epoll_wait", ret.into())
        }
        Syscall::PollIn { fd, timeout_ms } => {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd on the stack.
            let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            check("poll", ret.into()).map(|n| if n > 0 { i64::from(pfd.revents) } else { 0 })
        }
        Syscall::SetNetNs { fd } => {
            // SAFETY: setns takes an fd and a flag; it affects only the
            // calling thread's network namespace.
            let ret = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            check("setns(CLONE_NEWNET)", ret.into())
        }
        Syscall::AdviseHugePages { addr, len } => {
            // SAFETY: MADV_HUGEPAGE only lets the kernel back the range with
            // transparent huge pages: no mapping is created or removed and no
            // byte changes, whatever memory the range covers (a range that is
            // not mapped fails with ENOMEM). No Rust reference is involved.
            let ret = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
            check("madvise(MADV_HUGEPAGE)", ret.into())
        }
        Syscall::IfNameToIndex { name } => {
            // SAFETY: `name` is a valid NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index == 0 {
                check("if_nametoindex", -1)
            } else {
                Ok(i64::from(index))
            }
        }
        Syscall::IfIndexToName { ifindex, name } => {
            if name.len() < libc::IF_NAMESIZE {
                return Err(SyscallError {
                    call: "if_indextoname",
                    io_error: io::Error::from_raw_os_error(libc::EINVAL),
                });
            }
            // SAFETY: `name` holds at least IF_NAMESIZE writable bytes, as
            // if_indextoname requires.
            let ret = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr().cast()) };
            if ret.is_null() {
                return check("if_indextoname", -1);
            }
            let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            Ok(len as i64)
        }
    }
}

/// Frames are sent in batches of at most this many per `sendmmsg`.
const SENDMMSG_BATCH: usize = 64;

fn send_frames(fd: RawFd, ifindex: i32, frames: &[&[u8]]) -> Result<i64, SyscallError> {
    let mut addr = sockaddr_ll(ifindex, ETH_P_ALL_BE);
    addr.sll_halen = 6;
    let mut sent = 0usize;
    for chunk in frames.chunks(SENDMMSG_BATCH) {
        let mut iovecs: [libc::iovec; SENDMMSG_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; SENDMMSG_BATCH];
        // SAFETY: mmsghdr is plain data for which all-zero is a valid value.
        let mut headers: [libc::mmsghdr; SENDMMSG_BATCH] = unsafe { std::mem::zeroed() };
        for (i, frame) in chunk.iter().enumerate() {
            iovecs[i] = libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast(),
                iov_len: frame.len(),
            };
            headers[i].msg_hdr.msg_name = std::ptr::from_mut(&mut addr).cast();
            headers[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            headers[i].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovecs[i]);
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        let mut offset = 0usize;
        while offset < chunk.len() {
            let count = (chunk.len() - offset) as u32;
            // SAFETY: `headers[offset..]` holds `count` initialised mmsghdr
            // whose iovecs point into `frames`, borrowed for this call; the
            // kernel only reads the frames (the iov_base cast to *mut is
            // required by the C signature, nothing writes through it).
            let ret = unsafe { libc::sendmmsg(fd, headers[offset..].as_mut_ptr(), count, 0) };
            match check("sendmmsg", ret.into()) {
                Ok(n) => offset += n as usize,
                Err(e) if e.errno() == Some(libc::EINTR) => continue,
                Err(e) if e.errno() == Some(libc::ENOBUFS) || e.errno() == Some(libc::EAGAIN) => {
                    // The device queue is full: let it drain and retry.
                    std::thread::yield_now();
                    continue;
                }
                Err(e) if sent + offset > 0 => {
                    tracing::debug!(error = %e, "sendmmsg stopped early");
                    return Ok((sent + offset) as i64);
                }
                Err(e) => return Err(e),
            }
        }
        sent += chunk.len();
    }
    Ok(sent as i64)
}

/// Wraps a file descriptor returned by [`syscall`] into its owner.
pub(crate) fn own_fd(fd: i64) -> OwnedFd {
    let raw = RawFd::try_from(fd).expect("the kernel returns file descriptors that fit in an int");
    // SAFETY: `raw` was just returned by a successful socket/epoll_create1 and
    // is owned by nobody else; the OwnedFd closes it exactly once.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Views a plain-data kernel struct as the bytes `setsockopt` reads.
///
/// Only for the `#[repr(C)]` structs of this module and integers, none of
/// which has padding.
pub(crate) fn as_bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: `value` is a live `T`; the structs passed here are repr(C)
    // integers without padding, so every byte is initialised.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// Views a plain-data kernel struct as the bytes `getsockopt` writes.
pub(crate) fn as_bytes_mut<T: Copy>(value: &mut T) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; additionally every bit pattern is a valid
    // value of these integer-only structs, so the kernel may write any bytes.
    unsafe { std::slice::from_raw_parts_mut(std::ptr::from_mut(value).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// The memory of one receive ring, shared with the kernel.
///
/// Owns the mapping and unmaps it on drop (through `memmap2`). The socket must
/// outlive nothing here: unmapping a ring whose socket is still open is fine,
/// and closing the socket first is fine too.
pub(crate) struct RingMapping {
    base: NonNull<u8>,
    len: usize,
    _owner: MappingOwner,
}

enum MappingOwner {
    Kernel(#[allow(dead_code, reason = "held for its Drop, which unmaps")] memmap2::MmapRaw),
    /// Page-aligned heap memory standing in for the kernel's ring in tests and
    /// benchmarks.
    Synthetic(#[allow(dead_code, reason = "held for its Drop, which frees")] Box<[Page]>),
}

/// One page of synthetic ring memory; the alignment matches the kernel's.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

// SAFETY: the mapping is plain memory; all access to it goes through `ring`,
// which synchronises with the kernel through block_status.
unsafe impl Send for RingMapping {}

impl RingMapping {
    /// Maps `len` bytes of the ring of `fd` (after `PACKET_RX_RING`).
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> Result<Self, SyscallError> {
        #[cfg(test)]
        if fake::is_installed() {
            return Ok(Self::synthetic(len));
        }
        let map = memmap2::MmapOptions::new()
            .len(len)
            .populate()
            .map_raw(fd.as_raw_fd())
            .map_err(|io_error| SyscallError {
                call: "mmap(PACKET_RX_RING)",
                io_error,
            })?;
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns NULL on success");
        Ok(Self {
            base,
            len,
            _owner: MappingOwner::Kernel(map),
        })
    }

    /// Zeroed, page-aligned memory laid out like a ring of `len` bytes, for
    /// tests and benchmarks that build blocks by hand.
    pub(crate) fn synthetic(len: usize) -> Self {
        let pages = len.div_ceil(4096).max(1);
        let mut memory = vec![Page([0; 4096]); pages].into_boxed_slice();
        let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).expect("Box pointers are never NULL");
        Self {
            base,
            len,
            _owner: MappingOwner::Synthetic(memory),
        }
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A thread-local stand-in for the kernel: a test installs a closure that
    //! answers each [`Syscall`], and every call from that thread goes to it.

    use super::{Syscall, SyscallError};
    use std::cell::RefCell;

    type Answer = Box<dyn FnMut(&mut Syscall<'_>) -> Result<i64, SyscallError>>;

    thread_local! {
        static FAKE: RefCell<Option<Answer>> = const { RefCell::new(None) };
    }

    pub(crate) fn answer(call: &mut Syscall<'_>) -> Option<Result<i64, SyscallError>> {
        FAKE.with(|fake| fake.borrow_mut().as_mut().map(|answer| answer(call)))
    }

    pub(crate) fn is_installed() -> bool {
        FAKE.with(|fake| fake.borrow().is_some())
    }

    /// Runs `body` with `answer` standing in for the kernel on this thread.
    pub(crate) fn with_fake<R>(
        answer: impl FnMut(&mut Syscall<'_>) -> Result<i64, SyscallError> + 'static,
        body: impl FnOnce() -> R,
    ) -> R {
        FAKE.with(|fake| *fake.borrow_mut() = Some(Box::new(answer)));
        let result = body();
        FAKE.with(|fake| *fake.borrow_mut() = None);
        result
    }

    /// The error a fake returns for `call` with `errno`.
    pub(crate) fn errno(call: &'static str, errno: i32) -> SyscallError {
        SyscallError {
            call,
            io_error: std::io::Error::from_raw_os_error(errno),
        }
    }
}
