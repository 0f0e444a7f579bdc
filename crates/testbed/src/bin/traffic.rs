//! `ringsieve-traffic`: the socket end of the test bed's traffic cases. Each
//! subcommand does one bounded piece of real socket work inside whatever
//! network namespace it was started in (`ip netns exec NS ringsieve-traffic
//! ...`), exits by itself within `--timeout` seconds, and prints one JSON line
//! saying what it sent and received. It exits 1 when it did less than asked
//! (a short count, a wrong echo), 2 on an error.
//!
//! Application packets carry a marker so a capture can tell them apart:
//! every TCP echo message and UDP datagram starts with `RSv1` and a 32-bit
//! big-endian sequence number; the ARP requests carry the same in their
//! padding. With messages smaller than the MSS, `tcp-client --messages N`
//! puts exactly N data segments on the wire each way (`TCP_NODELAY`, one
//! message in flight), and `udp-send --count N` exactly N datagrams.
//!
//! `scripts/traffic.sh` composes these into the cases (container to
//! container, through MASQUERADE, through the published port, ARP, bulk).
//! This is not a load generator (that is `ringsieve-blast`) nor a checker of
//! captures (that is tests/kernel/testbed.rs).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use af_packet::{CaptureRing, FrameSender, Interface, InterfaceRole, RingConfig, RingSet};
use anyhow::{bail, ensure, Context};
use clap::{Parser, Subcommand, ValueEnum};

/// Start of every application payload: the magic and a sequence number.
const MAGIC: [u8; 4] = *b"RSv1";
const MARKER_LEN: usize = 8;
/// How long a poll or accept loop sleeps between checks.
const TICK: Duration = Duration::from_millis(10);

/// Bounded socket work for the test bed's traffic cases.
#[derive(Debug, Parser)]
#[command(name = "ringsieve-traffic", version, about)]
struct Args {
    /// Give up after this many seconds, whatever is left to do.
    #[arg(long, global = true, default_value_t = 10.0, env = "RINGSIEVE_TRAFFIC_TIMEOUT")]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accept `--connections` TCP connections one after the other and serve
    /// each until the client closes.
    TcpServer {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Connections to serve before exiting.
        #[arg(long, default_value_t = 1)]
        connections: u32,
        /// What to do with the bytes received.
        #[arg(long, value_enum, default_value_t = ServerMode::Echo)]
        mode: ServerMode,
        /// File created once the socket listens, for scripts to wait on.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Connect to a `tcp-server` and either exchange echo messages or upload
    /// a block of bytes.
    TcpClient {
        /// Server address.
        #[arg(long)]
        connect: SocketAddr,
        /// Echo messages to send, one at a time (server in `echo` mode).
        #[arg(long, conflicts_with = "upload")]
        messages: Option<u32>,
        /// Bytes per echo message (8..=1400, so one message is one segment).
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Bytes to upload (server in `sink` mode).
        #[arg(long)]
        upload: Option<u64>,
    },
    /// Connect to a `tcp-server` in `sink` mode and write each `--chunk`
    /// as its own segment (Nagle off, `--gap-ms` between them), so that text
    /// spread over chunks crosses segment boundaries.
    TcpSend {
        /// Server address.
        #[arg(long)]
        connect: SocketAddr,
        /// Text to write, in order; repeat for several.
        #[arg(long = "chunk", required = true)]
        chunks: Vec<String>,
        /// Pause between chunks, in milliseconds.
        #[arg(long, default_value_t = 100)]
        gap_ms: u64,
    },
    /// Send, as raw frames on `--interface`, a TCP SYN from `--src` to
    /// `--dst` and then two data segments over the same sequence range
    /// with different bytes (`--first`, then `--second`, equal lengths):
    /// the overlap an IDS must report. No socket takes part; the host
    /// forwards the frames as any others.
    TcpOverlap {
        /// Interface to send on (its MAC is the source MAC).
        #[arg(long)]
        interface: String,
        /// Destination MAC (the gateway's).
        #[arg(long)]
        dst_mac: String,
        /// Source address and port.
        #[arg(long)]
        src: std::net::SocketAddrV4,
        /// Destination address and port.
        #[arg(long)]
        dst: std::net::SocketAddrV4,
        /// The first segment's payload.
        #[arg(long)]
        first: String,
        /// The second segment's payload, same length, other bytes.
        #[arg(long)]
        second: String,
    },
    /// Receive `--count` datagrams.
    UdpSink {
        /// Address to bind.
        #[arg(long)]
        listen: SocketAddr,
        /// Datagrams to wait for.
        #[arg(long)]
        count: u32,
        /// File created once the socket is bound, for scripts to wait on.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Send `--count` marked datagrams.
    UdpSend {
        /// Destination address.
        #[arg(long)]
        to: SocketAddr,
        /// Datagrams to send.
        #[arg(long)]
        count: u32,
        /// Payload bytes per datagram (8..=1472).
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Pause between datagrams, in milliseconds.
        #[arg(long, default_value_t = 1)]
        interval_ms: u64,
    },
    /// Broadcast `--count` ARP requests for `--target` as raw frames on
    /// `--interface` and count the replies.
    Arp {
        /// Interface to send on (its MAC is the sender's).
        #[arg(long)]
        interface: String,
        /// Sender protocol address (the interface's IPv4 address).
        #[arg(long)]
        sender_ip: Ipv4Addr,
        /// Address asked for.
        #[arg(long)]
        target: Ipv4Addr,
        /// Requests to send.
        #[arg(long)]
        count: u32,
        /// Pause between requests, in milliseconds.
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
    },
}

/// What `tcp-server` does with a connection's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ServerMode {
    /// Write every byte back.
    Echo,
    /// Read to end of stream, then answer with the byte count (8 bytes, big endian).
    Sink,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ringsieve-traffic: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one subcommand; `Ok(false)` when it finished but did less than asked.
fn run(args: Args) -> anyhow::Result<bool> {
    ensure!(
        args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0,
        "--timeout must be in (0, 600] seconds"
    );
    let deadline = Deadline::after(Duration::from_secs_f64(args.timeout));
    match args.command {
        Command::TcpServer {
            listen,
            connections,
            mode,
            ready_file,
        } => tcp_server(listen, connections, mode, ready_file.as_deref(), deadline),
        Command::TcpClient {
            connect,
            messages,
            size,
            upload,
        } => match (messages, upload) {
            (Some(messages), None) => tcp_echo_client(connect, messages, size, deadline),
            (None, Some(bytes)) => tcp_upload_client(connect, bytes, deadline),
            _ => bail!("tcp-client needs --messages N or --upload BYTES"),
        },
        Command::TcpSend {
            connect,
            chunks,
            gap_ms,
        } => tcp_send(connect, &chunks, Duration::from_millis(gap_ms), deadline),
        Command::TcpOverlap {
            interface,
            dst_mac,
            src,
            dst,
            first,
            second,
        } => tcp_overlap(&interface, &dst_mac, src, dst, first.as_bytes(), second.as_bytes()),
        Command::UdpSink {
            listen,
            count,
            ready_file,
        } => udp_sink(listen, count, ready_file.as_deref(), deadline),
        Command::UdpSend {
            to,
            count,
            size,
            interval_ms,
        } => udp_send(to, count, size, Duration::from_millis(interval_ms), deadline),
        Command::Arp {
            interface,
            sender_ip,
            target,
            count,
            interval_ms,
        } => arp(
            &interface,
            sender_ip,
            target,
            count,
            Duration::from_millis(interval_ms),
            deadline,
        ),
    }
}

/// The instant a subcommand must be done by.
#[derive(Clone, Copy, Debug)]
struct Deadline(Instant);

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// Time left, at least a millisecond (socket timeouts reject zero).
    fn remaining(self) -> Duration {
        self.0
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    fn passed(self) -> bool {
        Instant::now() >= self.0
    }
}

/// A payload of `size` bytes: the marker with `sequence`, then a fill that
/// depends on the sequence.
fn marked_payload(sequence: u32, size: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(size.max(MARKER_LEN));
    payload.extend_from_slice(&MAGIC);
    payload.extend_from_slice(&sequence.to_be_bytes());
    payload.extend((MARKER_LEN..size).map(|i| (i as u32).wrapping_add(sequence.wrapping_mul(31)) as u8));
    payload
}

fn write_ready_file(path: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, b"ready\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn set_timeouts(stream: &TcpStream, deadline: Deadline) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(deadline.remaining()))?;
    stream.set_write_timeout(Some(deadline.remaining()))?;
    Ok(())
}

fn tcp_server(
    listen: SocketAddr,
    connections: u32,
    mode: ServerMode,
    ready_file: Option<&Path>,
    deadline: Deadline,
) -> anyhow::Result<bool> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    // Non-blocking accept, so the deadline bounds the wait for a client.
    listener.set_nonblocking(true)?;
    write_ready_file(ready_file)?;
    let (mut served, mut received, mut sent) = (0u32, 0u64, 0u64);
    let mut error = None;
    while served < connections && !deadline.passed() {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(e) => return Err(e).context("accept"),
        };
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        set_timeouts(&stream, deadline)?;
        match serve(&mut stream, mode) {
            Ok((r, s)) => {
                received += r;
                sent += s;
                served += 1;
            }
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    println!(
        r#"{{"cmd":"tcp-server","listen":"{listen}","mode":"{}","connections":{served},"bytes_received":{received},"bytes_sent":{sent}{}}}"#,
        if mode == ServerMode::Echo { "echo" } else { "sink" },
        error.map(|e| format!(r#","error":{e:?}"#)).unwrap_or_default()
    );
    Ok(served == connections)
}

/// Serves one connection to its end of stream; returns (received, sent) bytes.
fn serve(stream: &mut TcpStream, mode: ServerMode) -> anyhow::Result<(u64, u64)> {
    let mut buf = vec![0u8; 64 << 10];
    let (mut received, mut sent) = (0u64, 0u64);
    loop {
        let n = stream.read(&mut buf).context("read")?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if mode == ServerMode::Echo {
            stream.write_all(&buf[..n]).context("write")?;
            sent += n as u64;
        }
    }
    if mode == ServerMode::Sink {
        stream
            .write_all(&received.to_be_bytes())
            .context("write the byte count")?;
        sent += 8;
    }
    Ok((received, sent))
}

fn tcp_echo_client(to: SocketAddr, messages: u32, size: usize, deadline: Deadline) -> anyhow::Result<bool> {
    ensure!(
        (MARKER_LEN..=1400).contains(&size),
        "--size must be {MARKER_LEN}..=1400 bytes"
    );
    let mut stream =
        TcpStream::connect_timeout(&to, deadline.remaining()).with_context(|| format!("connecting to {to}"))?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let mut echoed = 0u32;
    let mut reply = vec![0u8; size];
    for sequence in 0..messages {
        set_timeouts(&stream, deadline)?;
        let message = marked_payload(sequence, size);
        stream.write_all(&message).context("write")?;
        stream
            .read_exact(&mut reply)
            .with_context(|| format!("reading echo {sequence}"))?;
        if reply != message {
            break;
        }
        echoed += 1;
    }
    stream.shutdown(Shutdown::Write)?;
    // Wait for the server's FIN so the connection closes in a fixed order.
    set_timeouts(&stream, deadline)?;
    let trailing = stream.read(&mut reply).unwrap_or(0);
    println!(
        r#"{{"cmd":"tcp-client","local":"{local}","connect":"{to}","messages":{messages},"size":{size},"echoed":{echoed},"trailing_bytes":{trailing}}}"#
    );
    Ok(echoed == messages && trailing == 0)
}

fn tcp_upload_client(to: SocketAddr, bytes: u64, deadline: Deadline) -> anyhow::Result<bool> {
    let mut stream =
        TcpStream::connect_timeout(&to, deadline.remaining()).with_context(|| format!("connecting to {to}"))?;
    let local = stream.local_addr()?;
    let chunk: Vec<u8> = (0..64u32 << 10).map(|i| (i % 251) as u8).collect();
    let mut sent = 0u64;
    while sent < bytes {
        set_timeouts(&stream, deadline)?;
        let n = (bytes - sent).min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n]).context("write")?;
        sent += n as u64;
    }
    let acknowledged = end_upload(&mut stream, deadline)?;
    println!(
        r#"{{"cmd":"tcp-client","local":"{local}","connect":"{to}","uploaded":{sent},"server_received":{acknowledged}}}"#
    );
    Ok(acknowledged == bytes)
}

/// Ends an upload: shuts the writing side and reads the byte count the
/// server answers with.
fn end_upload(stream: &mut TcpStream, deadline: Deadline) -> anyhow::Result<u64> {
    stream.shutdown(Shutdown::Write)?;
    set_timeouts(stream, deadline)?;
    let mut count = [0u8; 8];
    stream
        .read_exact(&mut count)
        .context("reading the server's byte count")?;
    Ok(u64::from_be_bytes(count))
}

fn tcp_send(to: SocketAddr, chunks: &[String], gap: Duration, deadline: Deadline) -> anyhow::Result<bool> {
    let mut stream =
        TcpStream::connect_timeout(&to, deadline.remaining()).with_context(|| format!("connecting to {to}"))?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let mut sent = 0u64;
    for (index, chunk) in chunks.iter().enumerate() {
        if index > 0 {
            std::thread::sleep(gap);
        }
        set_timeouts(&stream, deadline)?;
        stream.write_all(chunk.as_bytes()).context("write")?;
        sent += chunk.len() as u64;
    }
    let acknowledged = end_upload(&mut stream, deadline)?;
    println!(
        r#"{{"cmd":"tcp-send","local":"{local}","connect":"{to}","chunks":{},"sent":{sent},"server_received":{acknowledged}}}"#,
        chunks.len()
    );
    Ok(acknowledged == sent)
}

/// A TCP segment in an Ethernet frame, checksums included.
fn tcp_frame(
    macs: ([u8; 6], [u8; 6]),
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    (seq, flags, ip_id): (u32, u8, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(54 + payload.len());
    frame.extend_from_slice(&macs.1);
    frame.extend_from_slice(&macs.0);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let checksum = testbed::internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.ip().octets());
    pseudo[4..8].copy_from_slice(&dst.ip().octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
    let checksum = testbed::internet_checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&tcp);
    frame
}

fn tcp_overlap(
    interface: &str,
    dst_mac: &str,
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    first: &[u8],
    second: &[u8],
) -> anyhow::Result<bool> {
    ensure!(
        first.len() == second.len() && first != second,
        "--first and --second must have the same length and differ"
    );
    let dst_mac: [u8; 6] = dst_mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<Vec<u8>, _>>()
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("--dst-mac {dst_mac:?} is not a MAC"))?;
    let link = Interface::by_name(interface)?;
    let macs = (interface_mac(interface)?, dst_mac);
    let sender = FrameSender::open(&link)?;
    const ISN: u32 = 0x1000_0000;
    const SYN: u8 = 0x02;
    const PSH_ACK: u8 = 0x18;
    let frames = [
        tcp_frame(macs, src, dst, (ISN, SYN, 0x5151), b""),
        tcp_frame(macs, src, dst, (ISN + 1, PSH_ACK, 0x5152), first),
        tcp_frame(macs, src, dst, (ISN + 1, PSH_ACK, 0x5153), second),
    ];
    let mut sent = 0;
    for frame in &frames {
        sent += sender.send(&[frame])?;
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(r#"{{"cmd":"tcp-overlap","interface":"{interface}","src":"{src}","dst":"{dst}","sent":{sent}}}"#);
    Ok(sent == frames.len())
}

fn udp_sink(listen: SocketAddr, count: u32, ready_file: Option<&Path>, deadline: Deadline) -> anyhow::Result<bool> {
    let socket = UdpSocket::bind(listen).with_context(|| format!("binding {listen}"))?;
    write_ready_file(ready_file)?;
    let mut buf = vec![0u8; 65_536];
    let (mut received, mut bytes, mut marked) = (0u32, 0u64, 0u32);
    while received < count && !deadline.passed() {
        socket.set_read_timeout(Some(deadline.remaining()))?;
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                received += 1;
                bytes += n as u64;
                if buf[..n].starts_with(&MAGIC) {
                    marked += 1;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => return Err(e).context("recv"),
        }
    }
    println!(
        r#"{{"cmd":"udp-sink","listen":"{listen}","expected":{count},"received":{received},"marked":{marked},"bytes":{bytes}}}"#
    );
    Ok(received == count && marked == count)
}

fn udp_send(to: SocketAddr, count: u32, size: usize, interval: Duration, deadline: Deadline) -> anyhow::Result<bool> {
    ensure!(
        (MARKER_LEN..=1472).contains(&size),
        "--size must be {MARKER_LEN}..=1472 bytes"
    );
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(to).with_context(|| format!("connecting to {to}"))?;
    let local = socket.local_addr()?;
    let mut sent = 0u32;
    for sequence in 0..count {
        if deadline.passed() {
            break;
        }
        socket.send(&marked_payload(sequence, size)).context("send")?;
        sent += 1;
        if sequence + 1 < count {
            std::thread::sleep(interval);
        }
    }
    println!(r#"{{"cmd":"udp-send","local":"{local}","to":"{to}","sent":{sent},"size":{size}}}"#);
    Ok(sent == count)
}

/// A broadcast ARP request from `sender` for `target`, padded to the
/// 60-byte minimum with the marker for `sequence`.
fn arp_request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr, sequence: u32) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&sender_mac);
    frame.extend_from_slice(&0x0806u16.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    frame.extend_from_slice(&sender_mac);
    frame.extend_from_slice(&sender_ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame.extend_from_slice(&marked_payload(sequence, MARKER_LEN));
    frame.resize(60, 0);
    frame
}

/// The sender MAC of an ARP reply from `from` to `to`, if `frame` is one.
fn arp_reply_from(frame: &[u8], from: Ipv4Addr, to: Ipv4Addr) -> Option<[u8; 6]> {
    let arp = frame.get(14..42)?;
    let is_reply = frame[12..14] == [0x08, 0x06] && arp[..8] == [0, 1, 0x08, 0x00, 6, 4, 0, 2];
    (is_reply && arp[14..18] == from.octets() && arp[24..28] == to.octets()).then(|| arp[8..14].try_into().ok())?
}

fn interface_mac(interface: &str) -> anyhow::Result<[u8; 6]> {
    // `ip netns exec` mounts the namespace's own sysfs, so this is the
    // interface of the namespace we run in.
    let path = format!("/sys/class/net/{interface}/address");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the MAC in {path}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{path} does not hold a 6-byte MAC"))
}

fn arp(
    interface: &str,
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
    count: u32,
    interval: Duration,
    deadline: Deadline,
) -> anyhow::Result<bool> {
    let link = Interface::by_name(interface)?;
    let mac = interface_mac(interface)?;
    // The ring is bound before the first request, so no reply is missed.
    let mut rings = RingSet::new()?;
    let ring_config = RingConfig::for_role(InterfaceRole::Other);
    rings.add(CaptureRing::open(&link, &ring_config)?)?;
    let sender = FrameSender::open(&link)?;
    let (mut sent, mut replies, mut target_mac) = (0u32, 0u32, None);
    let mut next_send = Instant::now();
    while (sent < count || replies < count) && !deadline.passed() {
        if sent < count && Instant::now() >= next_send {
            let frame = arp_request(mac, sender_ip, target, sent);
            sent += sender.send(&[&frame])? as u32;
            next_send = Instant::now() + interval;
        }
        rings.poll(TICK.as_millis() as i32, 16, |_, _, packet| {
            if let Some(from_mac) = arp_reply_from(packet.data(), target, sender_ip) {
                replies += 1;
                target_mac = Some(from_mac);
            }
        })?;
    }
    let target_mac = target_mac
        .map(|m| {
            let hex: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
            format!(r#""{}""#, hex.join(":"))
        })
        .unwrap_or_else(|| "null".into());
    println!(
        r#"{{"cmd":"arp","interface":"{interface}","target":"{target}","sent":{sent},"replies":{replies},"target_mac":{target_mac}}}"#
    );
    Ok(sent == count && replies == count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_payloads_start_with_magic_and_sequence() {
        let p = marked_payload(0x0102_0304, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(&p[..8], b"RSv1\x01\x02\x03\x04");
        assert_ne!(marked_payload(1, 100), marked_payload(2, 100));
    }

    #[test]
    fn arp_request_and_reply_round_trip() {
        let mac = [2, 0x42, 0xac, 0x11, 0, 2];
        let (me, them) = (Ipv4Addr::new(172, 17, 0, 2), Ipv4Addr::new(172, 17, 0, 3));
        let request = arp_request(mac, me, them, 7);
        assert_eq!(request.len(), 60);
        assert_eq!(&request[42..50], b"RSv1\0\0\0\x07");
        assert_eq!(arp_reply_from(&request, them, me), None, "a request is no reply");
        // The reply the target's kernel sends back.
        let their_mac = [2, 0x42, 0xac, 0x11, 0, 3];
        let mut reply = request.clone();
        reply[0..6].copy_from_slice(&mac);
        reply[6..12].copy_from_slice(&their_mac);
        reply[21] = 2;
        reply[22..28].copy_from_slice(&their_mac);
        reply[28..32].copy_from_slice(&them.octets());
        reply[32..38].copy_from_slice(&mac);
        reply[38..42].copy_from_slice(&me.octets());
        assert_eq!(arp_reply_from(&reply, them, me), Some(their_mac));
        assert_eq!(arp_reply_from(&reply, me, them), None);
        assert_eq!(arp_reply_from(&reply[..30], them, me), None);
    }
}
