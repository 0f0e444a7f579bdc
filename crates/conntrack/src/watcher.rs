//! The conntrack watcher: one NETLINK_NETFILTER socket of the network
//! namespace it was opened in, subscribed to conntrack NEW and DESTROY
//! events (UPDATE on request), that dumps the table once at start and again
//! after the kernel dropped events for want of room (ENOBUFS), and turns
//! what it receives into [`NatEvent`]s.
//!
//! # Use
//!
//! [`ConntrackWatcher::open`] fails with [`ConntrackError::Unavailable`] where
//! conntrack cannot be watched (no permission, no ctnetlink): the caller logs
//! it once and goes on learning NAT bindings from duplicates only. Then either
//! call [`ConntrackWatcher::next_event`] with a timeout on a thread of its
//! own, or register the socket ([`AsFd`]) with epoll and, when it is
//! readable, call `next_event(Some(Duration::ZERO))` until it returns
//! `Ok(None)` (decoded entries wait in a queue, so drain it fully).
//!
//! # What is and is not seen
//!
//! Dump answers and events share the socket; a dump's entries are reported
//! as [`NatEvent::Bound`] like NEW events, so the consumer must take a
//! binding learned twice in its stride ([`flow::NatBindings::learn`] does).
//! After an overflow the events lost are gone: the resync dump brings back
//! the bindings that still exist, but a DESTROY lost stays lost (the binding
//! then ages out of the consumer's table). With `nf_conntrack_events=2`
//! (the default: events only while someone listens), entries created before
//! the first listener joined carry no event cache and send no event at all,
//! DESTROY included: the initial dump binds them, and the consumer's table
//! must age them out.
//!
//! As measured on Linux 6.18 (tests/netns.rs): the NEW event is sent when
//! the first packet is confirmed, after POSTROUTING, so it already carries
//! the translated reply tuple and `IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE`;
//! it arrives well under a millisecond after `connect()`. UPDATE events
//! (one per TCP state change) add nothing for NAT. DESTROY comes when the
//! garbage collector reaps the expired entry, which was some 30 s after the
//! timeout ran out, or at once when a dump walks over it (ctnetlink kills
//! the expired entries it meets), so a [`ConntrackWatcher::resync`] also
//! hastens the Released events of closed connections.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::binding::NatEvent;
use crate::message::{
    dump_request, error_code, messages, parse_conntrack, Conntrack, CtKind, NFNLGRP_CONNTRACK_DESTROY,
    NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NLMSG_DONE, NLMSG_ERROR,
};

/// Bytes read per datagram: a dump datagram is at most 32 KiB.
const DATAGRAM_BUFFER: usize = 64 * 1024;

/// Why the watcher cannot run, or stopped.
#[derive(Debug)]
pub enum ConntrackError {
    /// Conntrack cannot be watched here (no permission, no nfnetlink or
    /// ctnetlink): say so once and carry on without it.
    Unavailable(String),
    /// Any other failure of the socket.
    Io(io::Error),
}

impl fmt::Display for ConntrackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) => write!(f, "conntrack unavailable: {reason}"),
            Self::Io(e) => write!(f, "conntrack socket: {e}"),
        }
    }
}

impl std::error::Error for ConntrackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(_) => None,
            Self::Io(e) => Some(e),
        }
    }
}

/// Classifies a failure of `step`: the errors that mean "no conntrack here"
/// become [`ConntrackError::Unavailable`].
fn classify(step: &str, error: io::Error) -> ConntrackError {
    let reason = match error.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => "no permission (needs CAP_NET_ADMIN in this network namespace)",
        Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => "the kernel has no nfnetlink",
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOENT) => {
            "the kernel has no ctnetlink (nf_conntrack_netlink not loaded)"
        }
        _ => return ConntrackError::Io(io::Error::new(error.kind(), format!("{step}: {error}"))),
    };
    ConntrackError::Unavailable(format!("{step}: {error}: {reason}"))
}

/// How to open a watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatcherConfig {
    /// Receive buffer to ask for, in bytes (SO_RCVBUFFORCE, else SO_RCVBUF
    /// capped by net.core.rmem_max).
    pub receive_buffer: usize,
    /// Also subscribe to UPDATE events and report NATed ones as bindings
    /// (NEW events already carry NAT; this only adds repeats).
    pub updates: bool,
    /// How long [`ConntrackWatcher::open`] waits for the first answer of the
    /// initial dump, which tells whether ctnetlink is there.
    pub open_timeout: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            receive_buffer: 16 << 20,
            updates: false,
            open_timeout: Duration::from_secs(2),
        }
    }
}

/// What the watcher received and did, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatcherCounters {
    /// netlink messages received (events, dump entries, control messages).
    pub messages: u64,
    /// NEW events.
    pub new_events: u64,
    /// UPDATE events.
    pub update_events: u64,
    /// DESTROY events.
    pub destroy_events: u64,
    /// Entries received from dumps.
    pub dump_entries: u64,
    /// Dumps that finished.
    pub dumps_completed: u64,
    /// Dump entries flagged NLM_F_DUMP_INTR (the table changed meanwhile).
    pub dump_interrupted: u64,
    /// [`NatEvent::Bound`] returned.
    pub bound: u64,
    /// [`NatEvent::Released`] returned.
    pub released: u64,
    /// Entries skipped by [`ConntrackWatcher::next_event`]: not NATed.
    pub skipped: u64,
    /// Times the kernel reported lost events (ENOBUFS).
    pub overflows: u64,
    /// Resyncs asked for (after overflows, truncations or by the caller);
    /// those asked for while a dump runs share the one dump that follows it.
    pub resyncs: u64,
    /// Datagrams larger than the read buffer (their content lost).
    pub truncated: u64,
    /// Messages that did not decode.
    pub malformed: u64,
}

/// A subscriber to one network namespace's conntrack events.
#[derive(Debug)]
pub struct ConntrackWatcher {
    socket: Socket,
    buffer: Vec<u8>,
    pending: VecDeque<Conntrack>,
    next_seq: u32,
    /// Sequence number of the dump running, if any.
    dump_seq: Option<u32>,
    /// A resync was asked for while a dump ran: start one when it ends.
    resync_pending: bool,
    counters: WatcherCounters,
    receive_buffer: usize,
}

impl ConntrackWatcher {
    /// Opens a watcher with the default configuration in the calling
    /// thread's network namespace.
    pub fn open() -> Result<Self, ConntrackError> {
        Self::with_config(WatcherConfig::default())
    }

    /// Opens a watcher in the calling thread's network namespace: the
    /// socket, its receive buffer, the event groups, and the initial dump,
    /// whose first answer is awaited (up to `config.open_timeout`) to tell
    /// whether ctnetlink answers at all.
    pub fn with_config(config: WatcherConfig) -> Result<Self, ConntrackError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| classify("netlink socket", e))?;
        socket.bind_auto().map_err(|e| classify("bind", e))?;
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, config.receive_buffer).is_err() {
            // Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
            socket
                .set_rx_buf_sz(config.receive_buffer)
                .map_err(|e| classify("SO_RCVBUF", e))?;
        }
        let receive_buffer = socket.get_rx_buf_sz().map_err(|e| classify("SO_RCVBUF", e))?;
        let mut groups = vec![NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY];
        if config.updates {
            groups.push(NFNLGRP_CONNTRACK_UPDATE);
        }
        for group in groups {
            socket
                .add_membership(group)
                .map_err(|e| classify("joining the conntrack event groups", e))?;
        }
        socket.set_non_blocking(true).map_err(|e| classify("O_NONBLOCK", e))?;
        let mut watcher = Self {
            socket,
            buffer: vec![0; DATAGRAM_BUFFER],
            pending: VecDeque::new(),
            next_seq: 1,
            dump_seq: None,
            resync_pending: false,
            counters: WatcherCounters::default(),
            receive_buffer,
        };
        watcher
            .start_dump()
            .map_err(|e| classify("conntrack dump request", e))?;
        watcher.await_first_answer(config.open_timeout)?;
        Ok(watcher)
    }

    /// Reads until the initial dump answered with an entry, its end or an
    /// error.
    fn await_first_answer(&mut self, timeout: Duration) -> Result<(), ConntrackError> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.receive().map_err(|e| classify("conntrack dump", e))?;
            if self.dump_seq.is_none() || self.counters.dump_entries > 0 {
                return Ok(());
            }
            if !got {
                let now = Instant::now();
                if now >= deadline {
                    return Err(ConntrackError::Unavailable(format!(
                        "ctnetlink did not answer a dump within {timeout:?}"
                    )));
                }
                self.wait_readable(Some(deadline - now))
                    .map_err(|e| classify("poll", e))?;
            }
        }
    }

    /// The next NAT binding bound or released, waiting up to `timeout`
    /// (`None`: for ever). `Ok(None)` when the time ran out. Entries that
    /// are not NATed are skipped and counted.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> io::Result<Option<NatEvent>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some(entry) = self.next_entry(left)? else {
                return Ok(None);
            };
            match NatEvent::of(&entry) {
                Some(event @ NatEvent::Bound(_)) => {
                    self.counters.bound += 1;
                    return Ok(Some(event));
                }
                Some(event @ NatEvent::Released(_)) => {
                    self.counters.released += 1;
                    return Ok(Some(event));
                }
                None => self.counters.skipped += 1,
            }
        }
    }

    /// The next conntrack entry reported (event or dump entry, NATed or
    /// not), waiting up to `timeout` (`None`: for ever). `Ok(None)` when the
    /// time ran out.
    pub fn next_entry(&mut self, timeout: Option<Duration>) -> io::Result<Option<Conntrack>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Ok(Some(entry));
            }
            if self.receive()? {
                continue;
            }
            let wait = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    Some(d - now)
                }
            };
            self.wait_readable(wait)?;
        }
    }

    /// Asks for a dump of the table now, or when the one running ends: every
    /// NATed entry comes back as [`NatEvent::Bound`].
    pub fn resync(&mut self) -> io::Result<()> {
        self.counters.resyncs += 1;
        if self.dump_seq.is_some() {
            self.resync_pending = true;
            Ok(())
        } else {
            self.start_dump()
        }
    }

    /// Whether a dump is running (its entries are still to come).
    pub fn dump_running(&self) -> bool {
        self.dump_seq.is_some() || self.resync_pending
    }

    /// The counters.
    pub fn counters(&self) -> WatcherCounters {
        self.counters
    }

    /// The socket's receive buffer as the kernel reports it (twice what it
    /// grants for data).
    pub fn receive_buffer(&self) -> usize {
        self.receive_buffer
    }

    fn start_dump(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        self.socket.send_to(&dump_request(seq), &SocketAddr::new(0, 0), 0)?;
        self.dump_seq = Some(seq);
        Ok(())
    }

    /// Reads and decodes one datagram if one is there. `Ok(false)` when none
    /// is (the socket is non-blocking).
    fn receive(&mut self) -> io::Result<bool> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = self.socket.recv(&mut &mut buffer[..], libc::MSG_TRUNC);
        let outcome = match result {
            Ok(len) if len > buffer.len() => {
                self.counters.truncated += 1;
                self.resync().map(|()| true)
            }
            Ok(len) => self.process(&buffer[..len]).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.counters.overflows += 1;
                self.resync().map(|()| true)
            }
            Err(e) => Err(e),
        };
        self.buffer = buffer;
        outcome
    }

    fn process(&mut self, datagram: &[u8]) -> io::Result<()> {
        for message in messages(datagram) {
            let Ok(message) = message else {
                self.counters.malformed += 1;
                break;
            };
            self.counters.messages += 1;
            let ours = self.dump_seq == Some(message.header.seq);
            match message.header.msg_type {
                NLMSG_ERROR => {
                    let code = error_code(message.payload).unwrap_or(-libc::EPROTO);
                    if ours && code != 0 {
                        self.dump_seq = None;
                        return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                    }
                }
                NLMSG_DONE => {
                    if ours {
                        self.dump_seq = None;
                        self.counters.dumps_completed += 1;
                        if self.resync_pending {
                            self.resync_pending = false;
                            self.start_dump()?;
                        }
                    }
                }
                _ => match parse_conntrack(&message) {
                    Ok(Some(entry)) => {
                        match entry.kind {
                            CtKind::New => self.counters.new_events += 1,
                            CtKind::Update => self.counters.update_events += 1,
                            CtKind::Destroy => self.counters.destroy_events += 1,
                            CtKind::Dump => self.counters.dump_entries += 1,
                        }
                        self.counters.dump_interrupted += u64::from(entry.dump_interrupted);
                        self.pending.push_back(entry);
                    }
                    Ok(None) => {}
                    Err(_) => self.counters.malformed += 1,
                },
            }
        }
        Ok(())
    }

    fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<()> {
        // Longer than a day: as good as for ever, and fits any Timespec.
        let timeout = timeout.map(|t| t.min(Duration::from_secs(86_400)));
        let timespec = timeout.map(Timespec::try_from).transpose().map_err(io::Error::other)?;
        let mut fds = [PollFd::new(&self.socket, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
impl ConntrackWatcher {
    /// A watcher around `socket` that sent no dump.
    pub(crate) fn for_tests(socket: Socket) -> Self {
        Self {
            socket,
            buffer: vec![0; DATAGRAM_BUFFER],
            pending: VecDeque::new(),
            next_seq: 1,
            dump_seq: None,
            resync_pending: false,
            counters: WatcherCounters::default(),
            receive_buffer: 0,
        }
    }

    pub(crate) fn process_for_tests(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.process(datagram)
    }

    pub(crate) fn set_dump_seq_for_tests(&mut self, seq: Option<u32>) {
        self.dump_seq = seq;
    }
}

#[cfg(test)]
pub(crate) fn classify_for_tests(step: &str, error: io::Error) -> ConntrackError {
    classify(step, error)
}

impl AsFd for ConntrackWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for ConntrackWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
