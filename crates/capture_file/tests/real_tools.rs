//! The reader against files made by real tools, checked packet for packet
//! against Wireshark's own reading (`tshark -T fields`): tcpdump captures of
//! pings inside a fresh network namespace (Ethernet, `LINUX_SLL`,
//! `LINUX_SLL2`), `editcap` conversions between pcap, nanosecond pcap and
//! pcapng, a `mergecap` multi-interface pcapng, a file from
//! `output::PcapngWriter`, and a cut file. A test whose tool, or root for the
//! namespace, is missing prints why and passes without checking.
//!
//! Namespaces are named `rstest-<pid>-cf-<n>`, made and deleted by
//! [`NetNsGuard`] on every exit path; only 127.0.0.1 is pinged, inside them.
//! The root namespace is never changed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use af_packet::PacketType;
use capture_file::{CaptureFile, CaptureFormat, LinkKind, ReadError};

/// Whether `tool` runs; prints the reason to skip if not.
fn have(tool: &str) -> bool {
    // iputils ping knows -V, not --version.
    let version = if tool == "ping" { "-V" } else { "--version" };
    let ok = Command::new(tool)
        .arg(version)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ok {
        eprintln!("skipped: `{tool}` is not installed");
    }
    ok
}

fn run(command: &mut Command) {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A network namespace of this test process, deleted on drop.
struct NetNsGuard {
    name: String,
}

impl NetNsGuard {
    /// A fresh namespace with `lo` up, or `None` (with the reason printed)
    /// when namespaces cannot be made here.
    fn new() -> Option<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rstest-{}-cf-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let added = Command::new("ip").args(["netns", "add", &name]).output();
        match added {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                eprintln!(
                    "skipped: `ip netns add` failed (root needed): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                return None;
            }
            Err(error) => {
                eprintln!("skipped: cannot run `ip`: {error}");
                return None;
            }
        }
        // From here on, drop deletes the namespace.
        let guard = Self { name };
        run(guard.exec(["ip", "link", "set", "lo", "up"]).as_mut());
        Some(guard)
    }

    /// A command run inside the namespace.
    fn exec<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Box<Command> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        Box::new(command)
    }
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A child process killed (by its own pid) if still running on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Captures three pings of 127.0.0.1 inside a fresh namespace with
/// `tcpdump -i <interface> <extra> -w <file>`; `false` (reason printed) when
/// that cannot be done here.
fn capture_pings(interface: &str, extra: &[&str], file: &Path) -> bool {
    if !have("tcpdump") || !have("ping") {
        return false;
    }
    let Some(netns) = NetNsGuard::new() else {
        return false;
    };
    let file_arg = file.to_str().expect("utf-8 path");
    let mut args = vec!["tcpdump", "--immediate-mode", "-U", "-n", "-i", interface];
    args.extend_from_slice(extra);
    args.extend(["-w", file_arg]);
    let mut tcpdump = ChildGuard(
        netns
            .exec(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump"),
    );
    let stderr = tcpdump.0.stderr.take().expect("piped");
    let (listening_tx, listening) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = listening_tx.send(());
            }
        }
    });
    if listening.recv_timeout(Duration::from_secs(10)).is_err() {
        eprintln!("skipped: tcpdump did not start listening within 10 s");
        return false;
    }
    run(netns
        .exec(["ping", "-c", "3", "-i", "0.2", "127.0.0.1"])
        .stdout(Stdio::null()));
    std::thread::sleep(Duration::from_millis(300));
    run(Command::new("kill").args(["-INT", &tcpdump.0.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcpdump.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "tcpdump did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// One packet as tshark reports it.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    interface_name: String,
    timestamp_ns: u64,
    len: u32,
    cap_len: usize,
}

/// `frame.time_epoch` ("seconds.fraction") in nanoseconds.
fn epoch_ns(text: &str) -> u64 {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut fraction = fraction.to_owned();
    assert!(fraction.len() <= 9, "{text}");
    while fraction.len() < 9 {
        fraction.push('0');
    }
    seconds.parse::<u64>().expect("seconds") * 1_000_000_000 + fraction.parse::<u64>().expect("fraction")
}

fn tshark(file: &Path) -> Vec<Frame> {
    let output = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-e", "frame.interface_name", "-e", "frame.time_epoch"])
        .args(["-e", "frame.len", "-e", "frame.cap_len"])
        .output()
        .expect("tshark");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let fields: Vec<_> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "{line}");
            Frame {
                interface_name: fields[0].to_owned(),
                timestamp_ns: epoch_ns(fields[1]),
                len: fields[2].parse().expect("len"),
                cap_len: fields[3].parse().expect("cap_len"),
            }
        })
        .collect()
}

/// A packet as the reader delivered it, owned.
#[derive(Debug)]
struct Delivered {
    interface: u32,
    timestamp_ns: u64,
    original_len: u32,
    cap_len: usize,
    link: LinkKind,
    packet_type: Option<PacketType>,
}

/// Reads a whole file: the interface names, the packets, the final error.
fn read(file: &Path) -> (CaptureFile, Vec<Delivered>, Option<ReadError>) {
    let mut capture = CaptureFile::open(file).expect("open");
    let mut packets = Vec::new();
    let error = loop {
        match capture.next_packet() {
            Ok(Some(p)) => packets.push(Delivered {
                interface: p.interface,
                timestamp_ns: p.timestamp_ns,
                original_len: p.original_len,
                cap_len: p.data.len(),
                link: p.link,
                packet_type: p.packet_type,
            }),
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    (capture, packets, error)
}

/// Checks the reader agrees with tshark on every packet of `file`, and
/// returns what the reader read.
fn agrees_with_tshark(file: &Path) -> (CaptureFile, Vec<Delivered>) {
    let (capture, packets, error) = read(file);
    assert!(error.is_none(), "{error:?}");
    let frames = tshark(file);
    assert_eq!(packets.len(), frames.len(), "{}", file.display());
    for (i, (ours, theirs)) in packets.iter().zip(&frames).enumerate() {
        let context = format!("{} packet {i}: {ours:?} vs {theirs:?}", file.display());
        assert_eq!(ours.timestamp_ns, theirs.timestamp_ns, "{context}");
        assert_eq!(ours.original_len, theirs.len, "{context}");
        assert_eq!(ours.cap_len, theirs.cap_len, "{context}");
        // tshark names only interfaces a pcapng file names.
        if !theirs.interface_name.is_empty() && theirs.interface_name != "unknown" {
            let name = &capture.interfaces()[ours.interface as usize].name;
            assert_eq!(name, &theirs.interface_name, "{context}");
        }
    }
    (capture, packets)
}

fn editcap(format: &str, from: &Path, to: &Path) {
    run(Command::new("editcap").args(["-F", format]).arg(from).arg(to));
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn tcpdump_loopback_and_editcap_conversions() {
    if !have("tshark") || !have("editcap") {
        return;
    }
    let dir = temp_dir();
    let pcap = dir.path().join("lo.pcap");
    if !capture_pings("lo", &[], &pcap) {
        return;
    }
    let (capture, packets) = agrees_with_tshark(&pcap);
    assert!(matches!(
        capture.format(),
        CaptureFormat::Pcap { nanosecond: false, .. }
    ));
    assert_eq!(capture.interfaces()[0].name, "lo");
    assert!(
        packets.len() >= 6,
        "3 echo requests and 3 replies, got {}",
        packets.len()
    );
    assert!(packets.iter().all(|p| p.link == LinkKind::Ethernet));

    let conversions: [(&str, &str); 3] = [
        ("pcapng", "lo.pcapng"),
        ("nsecpcap", "lo-ns.pcap"),
        ("pcap", "lo-back.pcap"),
    ];
    let mut source: PathBuf = pcap.clone();
    for (format, name) in conversions {
        let converted = dir.path().join(name);
        editcap(format, &source, &converted);
        let (converted_capture, converted_packets) = agrees_with_tshark(&converted);
        assert_eq!(converted_packets.len(), packets.len(), "{format}");
        match format {
            "pcapng" => assert_eq!(converted_capture.format(), CaptureFormat::Pcapng),
            "nsecpcap" => assert!(matches!(
                converted_capture.format(),
                CaptureFormat::Pcap { nanosecond: true, .. }
            )),
            _ => {}
        }
        for (a, b) in packets.iter().zip(&converted_packets) {
            assert_eq!(
                (a.timestamp_ns, a.original_len, a.cap_len),
                (b.timestamp_ns, b.original_len, b.cap_len)
            );
        }
        source = converted;
    }
}

#[test]
fn tcpdump_any_linux_sll2_splits_ifindexes() {
    if !have("tshark") {
        return;
    }
    let dir = temp_dir();
    let pcap = dir.path().join("any-sll2.pcap");
    if !capture_pings("any", &["-y", "LINUX_SLL2"], &pcap) {
        return;
    }
    let (capture, packets) = agrees_with_tshark(&pcap);
    assert!(packets.len() >= 6);
    for packet in &packets {
        let LinkKind::LinuxSll2(header) = packet.link else {
            panic!("{packet:?}");
        };
        let interface = &capture.interfaces()[packet.interface as usize];
        // The namespace has only lo.
        assert_eq!(interface.ifindex, header.ifindex);
        assert_eq!(interface.name, format!("ifindex{}", header.ifindex.expect("SLL2")));
        assert_eq!(header.protocol, 0x0800);
        assert!(packet.packet_type.is_some(), "{packet:?}");
    }
    // And the same through pcapng.
    let pcapng = dir.path().join("any-sll2.pcapng");
    if have("editcap") {
        editcap("pcapng", &pcap, &pcapng);
        let (converted, converted_packets) = agrees_with_tshark(&pcapng);
        assert_eq!(converted_packets.len(), packets.len());
        let names: Vec<_> = converted_packets
            .iter()
            .map(|p| converted.interfaces()[p.interface as usize].name.clone())
            .collect();
        assert!(names.iter().all(|name| name.starts_with("ifindex")), "{names:?}");
    }
}

#[test]
fn tcpdump_any_linux_sll_gives_packet_types() {
    if !have("tshark") {
        return;
    }
    let dir = temp_dir();
    let pcap = dir.path().join("any-sll.pcap");
    if !capture_pings("any", &["-y", "LINUX_SLL"], &pcap) {
        return;
    }
    let (capture, packets) = agrees_with_tshark(&pcap);
    assert_eq!(capture.interfaces().len(), 1);
    assert!(packets.len() >= 6);
    for packet in &packets {
        let LinkKind::LinuxSll(header) = packet.link else {
            panic!("{packet:?}");
        };
        assert_eq!((header.protocol, header.payload_offset), (0x0800, 16));
        assert_eq!(packet.cap_len, packet.original_len as usize);
    }
}

/// Writes a pcapng with named interfaces and every packet type.
fn written_by_output(path: &Path, packets: usize) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut writer = output::PcapngWriter::new(file, "real_tools").expect("header");
    let interfaces = [
        writer.add_interface("eth0", 262_144).expect("idb"),
        writer.add_interface("veth7a1b", 96).expect("idb"),
    ];
    let types = [
        PacketType::Host,
        PacketType::Broadcast,
        PacketType::Multicast,
        PacketType::OtherHost,
        PacketType::Outgoing,
    ];
    for i in 0..packets {
        let data = vec![i as u8; 60 + i % 200];
        writer
            .write_packet(&output::PacketRecord {
                interface: interfaces[i % 2],
                timestamp_ns: 1_700_000_000_123_456_789 + i as u64 * 1_001,
                original_len: data.len() as u32 + 4,
                data: &data,
                packet_type: Some(types[i % types.len()]),
                vlan: None,
            })
            .expect("epb");
    }
    use std::io::Write;
    writer.finish().expect("finish").flush().expect("flush");
}

#[test]
fn named_interfaces_and_a_cut_file_agree_with_tshark() {
    if !have("tshark") {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("written.pcapng");
    written_by_output(&path, 500);
    let (capture, packets) = agrees_with_tshark(&path);
    assert_eq!(capture.interfaces().len(), 2);
    assert_eq!(packets.len(), 500);
    assert_eq!(packets[4].packet_type, Some(PacketType::Outgoing));

    // Cut inside the last block: tshark shows the whole packets before the
    // cut; the reader delivers the same ones, then says where the cut is.
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path().join("cut.pcapng");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).expect("write");
    let (_, cut_packets, error) = read(&cut);
    let frames = tshark(&cut);
    assert_eq!(cut_packets.len(), frames.len());
    assert_eq!(cut_packets.len(), 499);
    let Some(ReadError::Truncated { offset, file }) = error else {
        panic!("{error:?}");
    };
    assert_eq!(file, cut);
    assert!(offset < bytes.len() as u64 - 10 && offset > bytes.len() as u64 - 400);
}

#[test]
fn mergecap_interfaces_stay_apart() {
    if !have("tshark") || !have("mergecap") {
        return;
    }
    let dir = temp_dir();
    let a = dir.path().join("a.pcapng");
    let b = dir.path().join("b.pcapng");
    written_by_output(&a, 40);
    written_by_output(&b, 30);
    let merged = dir.path().join("merged.pcapng");
    run(Command::new("mergecap").arg("-w").arg(&merged).arg(&a).arg(&b));
    let (capture, packets) = agrees_with_tshark(&merged);
    assert_eq!(packets.len(), 70);
    assert!(capture.interfaces().len() >= 2);
    let names: Vec<_> = capture.interfaces().iter().map(|i| i.name.as_str()).collect();
    assert!(names.contains(&"eth0") && names.contains(&"veth7a1b"), "{names:?}");
}
