//! The NETLINK_ROUTE socket under the watcher and the namespace-id queries:
//! opening and subscribing, the receive buffer, sending one request, and
//! reading one datagram with a timeout, split into parsed messages. No
//! interpretation of the messages happens here.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use netlink_packet_core::{NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rustix::event::{PollFd, PollFlags, Timespec};

/// Size of the datagram buffer. The kernel's dump replies are at most 32 KiB
/// (netlink_dump's max_recvmsg_len); single notifications are far smaller.
const DATAGRAM_BUFFER: usize = 64 << 10;

/// What one read returned.
pub(crate) enum Received {
    /// The messages of one datagram, in order. Messages that did not decode
    /// are left out and counted in `undecodable`.
    Messages {
        /// The decoded messages.
        messages: Vec<NetlinkMessage<RouteNetlinkMessage>>,
        /// How many did not decode.
        undecodable: usize,
    },
    /// Nothing arrived before the timeout.
    TimedOut,
    /// The kernel dropped notifications because the receive buffer was full
    /// (ENOBUFS), or a datagram did not fit the buffer: what we know is stale.
    Overflow,
}

/// A bound NETLINK_ROUTE socket.
pub(crate) struct RouteSocket {
    socket: Socket,
    port: u32,
    sequence: u32,
    buffer: Vec<u8>,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's network namespace, subscribed
    /// to `groups` (RTNLGRP_* numbers).
    pub(crate) fn open(groups: &[u32]) -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| named("socket(NETLINK_ROUTE)", e))?;
        let address = socket.bind_auto().map_err(|e| named("bind(netlink)", e))?;
        for &group in groups {
            socket
                .add_membership(group)
                .map_err(|e| named("setsockopt(NETLINK_ADD_MEMBERSHIP)", e))?;
        }
        socket
            .set_non_blocking(true)
            .map_err(|e| named("fcntl(O_NONBLOCK)", e))?;
        Ok(Self {
            socket,
            port: address.port_number(),
            sequence: 0,
            buffer: vec![0; DATAGRAM_BUFFER],
        })
    }

    /// The port id the kernel gave the socket: replies to our requests carry
    /// it, notifications carry 0 or the port of whoever caused them.
    pub(crate) fn port(&self) -> u32 {
        self.port
    }

    /// Sets the receive buffer to `bytes`: SO_RCVBUFFORCE first (needs
    /// CAP_NET_ADMIN, ignores net.core.rmem_max), SO_RCVBUF when that is
    /// refused. Returns the size the kernel reports (twice the request, for
    /// its bookkeeping, or rmem_max doubled when capped).
    pub(crate) fn set_receive_buffer(&self, bytes: usize) -> io::Result<usize> {
        let fd = self.socket.as_fd();
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(fd, bytes).is_err() {
            rustix::net::sockopt::set_socket_recv_buffer_size(fd, bytes)
                .map_err(|e| named("setsockopt(SO_RCVBUF)", e.into()))?;
        }
        rustix::net::sockopt::socket_recv_buffer_size(fd).map_err(|e| named("getsockopt(SO_RCVBUF)", e.into()))
    }

    /// Sends `message` with `flags` (NLM_F_REQUEST is added) and returns its
    /// sequence number.
    pub(crate) fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | netlink_packet_core::NLM_F_REQUEST;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let kernel = SocketAddr::new(0, 0);
        let sent = self
            .socket
            .send_to(&bytes, &kernel, 0)
            .map_err(|e| named("sendto(netlink)", e))?;
        if sent != bytes.len() {
            return Err(io::Error::other(format!(
                "sendto(netlink) sent {sent} of {} bytes",
                bytes.len()
            )));
        }
        Ok(self.sequence)
    }

    /// Waits up to `timeout` (forever for `None`) for a datagram and reads
    /// it. EINTR is retried by the caller's loop, as a timeout.
    pub(crate) fn receive(&mut self, timeout: Option<Duration>) -> io::Result<Received> {
        if !self.wait_readable(timeout)? {
            return Ok(Received::TimedOut);
        }
        let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
        let length = match self.socket.recv(&mut &mut self.buffer[..], flags) {
            Ok(length) => length,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(Received::Overflow),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                return Ok(Received::TimedOut)
            }
            Err(e) => return Err(named("recv(netlink)", e)),
        };
        if length > self.buffer.len() {
            // MSG_TRUNC returned the real length: part of the datagram is lost.
            return Ok(Received::Overflow);
        }
        let (messages, undecodable) = split_datagram(&self.buffer[..length]);
        Ok(Received::Messages { messages, undecodable })
    }

    fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.socket, PollFlags::IN)];
        let timespec = timeout.map(|t| Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(named("poll(netlink)", e.into())),
        }
    }
}

impl AsFd for RouteSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Splits one datagram into its messages. A message that does not decode
/// (an attribute this version of netlink-packet-route rejects) is skipped
/// using its header's length and counted; a datagram whose framing is broken
/// ends there.
pub(crate) fn split_datagram(mut bytes: &[u8]) -> (Vec<NetlinkMessage<RouteNetlinkMessage>>, usize) {
    let mut messages = Vec::new();
    let mut undecodable = 0;
    while !bytes.is_empty() {
        let Ok(framed) = NetlinkBuffer::new_checked(bytes) else {
            undecodable += 1;
            break;
        };
        let length = framed.length() as usize;
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..length]) {
            Ok(message) => messages.push(message),
            Err(_) => undecodable += 1,
        }
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        let aligned = (length + 3) & !3;
        bytes = bytes.get(aligned..).unwrap_or_default();
    }
    (messages, undecodable)
}

/// An I/O error that names the call that failed.
pub(crate) fn named(call: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{call}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::tests::veth_message;

    fn serialize(message: RouteNetlinkMessage, sequence: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn datagram_with_several_messages_splits_in_order() {
        let mut datagram = serialize(RouteNetlinkMessage::NewLink(veth_message(7, "a", None, true)), 1);
        datagram.extend(serialize(
            RouteNetlinkMessage::DelLink(veth_message(8, "bb", None, true)),
            2,
        ));
        let (messages, undecodable) = split_datagram(&datagram);
        assert_eq!(undecodable, 0);
        let sequences: Vec<u32> = messages.iter().map(|m| m.header.sequence_number).collect();
        assert_eq!(sequences, [1, 2]);
    }

    #[test]
    fn undecodable_message_is_skipped_and_counted() {
        let mut bad = serialize(RouteNetlinkMessage::NewLink(veth_message(7, "a", None, true)), 1);
        // Corrupt the first attribute's length so it overruns the message.
        // Header 16 bytes, ifinfomsg 16 bytes, then the first NLA's length.
        bad[32] = 0xff;
        bad[33] = 0x0f;
        let good = serialize(RouteNetlinkMessage::NewLink(veth_message(8, "b", None, true)), 2);
        let mut datagram = bad;
        datagram.extend(&good);
        let (messages, undecodable) = split_datagram(&datagram);
        assert_eq!(undecodable, 1);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].header.sequence_number, 2);
        // Broken framing (a length beyond the datagram) stops the split.
        let (messages, undecodable) = split_datagram(&good[..good.len() - 4]);
        assert_eq!((messages.len(), undecodable), (0, 1));
    }
}
