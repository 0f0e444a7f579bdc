//! `ringsieve run` end to end: the binary captures in a namespace while frames
//! are sent to it; its pcapng, read back with tshark, capinfos and pcap-file,
//! holds exactly the frames sent, and its JSON counters agree. Also the exit
//! code and message for bad settings.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use af_packet::{FrameSender, Interface};
use testbed::{mixed_sizes, sequence_of, FrameSpec};

use crate::netns::{privileged, veth_pair, NetNs};

const RINGSIEVE: &str = env!("CARGO_BIN_EXE_ringsieve");

/// A running `ringsieve run`, with its stderr lines collected.
struct Capture {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Capture {
    fn start(ns: &NetNs, args: &[&str]) -> Self {
        let mut child = ns
            .command(RINGSIEVE)
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringsieve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Waits until the capture logged that its rings are open.
    fn wait_until_capturing(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            // Every interface found at the start has its rings open.
            let capturing = line.contains("capture started");
            self.seen.push(line);
            if capturing {
                return;
            }
        }
        panic!("ringsieve did not start capturing: {:?}", self.seen);
    }

    /// Sends SIGTERM, waits for exit, and returns the exit code and the JSON
    /// object on the last line of stderr.
    fn stop(mut self) -> (i32, serde_json::Value) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        let last = self.seen.last().cloned().unwrap_or_default();
        let json = serde_json::from_str(&last)
            .unwrap_or_else(|e| panic!("last stderr line is not JSON ({e}): {:?}", self.seen));
        (exit.code().unwrap_or(-1), json)
    }
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool).arg("-v").output().is_ok()
}

#[test]
fn run_writes_a_pcapng_that_tshark_reads_with_exactly_the_frames_sent() {
    if !privileged("run_writes_a_pcapng_that_tshark_reads_with_exactly_the_frames_sent") {
        return;
    }
    for tool in ["tshark", "capinfos"] {
        assert!(tool_available(tool), "{tool} is missing: run scripts/setup.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("capture.pcapng");
    let a = NetNs::new("runa");
    let b = NetNs::new("runb");
    veth_pair(&a, "va", &b, "vb");
    veth_pair(&a, "va2", &b, "vb2");

    let mut capture = Capture::start(&b, &["--interface", "vb,vb2", "--pcap-out", pcap.to_str().unwrap()]);
    capture.wait_until_capturing();

    // Mixed sizes on vb, VLAN-tagged frames on vb2 (the kernel strips the
    // tag into metadata; the pcapng must show it back in place).
    let plain: Vec<Vec<u8>> = mixed_sizes(300, 1514)
        .into_iter()
        .enumerate()
        .map(|(i, len)| {
            FrameSpec {
                frame_len: len,
                ..FrameSpec::default()
            }
            .build(i as u32)
        })
        .collect();
    let tagged: Vec<Vec<u8>> = (0..50u32)
        .map(|i| {
            FrameSpec {
                vlan: Some((0x8100, 100 + i as u16)),
                frame_len: 100,
                ..FrameSpec::default()
            }
            .build(10_000 + i)
        })
        .collect();
    let (to_plain, to_tagged) = (plain.clone(), tagged.clone());
    a.spawn(move || {
        for (ifname, frames) in [("va", &to_plain), ("va2", &to_tagged)] {
            let sender = FrameSender::open(&Interface::by_name(ifname).unwrap()).unwrap();
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            assert_eq!(sender.send(&refs).unwrap(), refs.len());
        }
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (code, counters) = capture.stop();
    assert_eq!(code, 0, "exit code; counters {counters}");

    // IPv6 router solicitations and the like may also cross the links: count
    // only our frames, but every frame the kernel received was captured.
    for (ifname, sent) in [("vb", plain.len()), ("vb2", tagged.len())] {
        let c = &counters["interfaces"][ifname];
        assert_eq!(c["kernel_drops"], 0, "{counters}");
        assert!(c["received"].as_u64().unwrap() >= sent as u64, "{counters}");
        assert_eq!(c["captured"], c["received"], "{counters}");
    }
    let total_captured: u64 = ["vb", "vb2"]
        .iter()
        .map(|i| counters["interfaces"][i]["captured"].as_u64().unwrap())
        .sum();
    assert_eq!(counters["pcap"]["packets_written"], total_captured, "{counters}");

    // pcap-file: bytes identical, interface names, direction.
    let written = read_pcapng(&pcap);
    let ours: Vec<_> = written.iter().filter(|p| sequence_of(&p.data).is_some()).collect();
    assert_eq!(ours.len(), plain.len() + tagged.len());
    for packet in &ours {
        let seq = sequence_of(&packet.data).unwrap();
        let (expected, ifname) = if seq >= 10_000 {
            (&tagged[(seq - 10_000) as usize], "vb2")
        } else {
            (&plain[seq as usize], "vb")
        };
        assert_eq!(&packet.data, expected, "frame {seq} written exactly as sent");
        assert_eq!(packet.interface, ifname);
        assert_eq!(packet.original_len as usize, expected.len());
        assert_eq!(packet.flags & 0b11, 0b01, "inbound");
    }

    // capinfos and tshark read the file.
    let info = Command::new("capinfos").args(["-M", "-c"]).arg(&pcap).output().unwrap();
    assert!(
        info.status.success(),
        "capinfos: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains(&format!("{}", written.len())), "capinfos counts {text}");
    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.len",
            "-e",
            "vlan.id",
        ])
        .output()
        .unwrap();
    assert!(
        fields.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&fields.stderr)
    );
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&fields.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), written.len(), "tshark reads every packet");
    let vlan_ids: Vec<u16> = rows
        .iter()
        .filter(|r| r[0] == "vb2" && !r.get(2).map(String::is_empty).unwrap_or(true))
        .map(|r| r[2].parse().unwrap())
        .collect();
    let expected_ids: Vec<u16> = (0..50).map(|i| 100 + i).collect();
    assert_eq!(vlan_ids, expected_ids, "tshark sees each VLAN tag in place");
}

/// One packet of a pcapng file, as pcap-file reads it.
struct WrittenPacket {
    interface: String,
    data: Vec<u8>,
    original_len: u32,
    flags: u32,
}

fn read_pcapng(path: &Path) -> Vec<WrittenPacket> {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    let file = std::fs::File::open(path).unwrap();
    let mut reader = PcapNgReader::new(file).unwrap();
    let mut names = vec![];
    let mut packets = vec![];
    while let Some(block) = reader.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(idb) => names.push(
                idb.options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .unwrap_or_default(),
            ),
            Block::EnhancedPacket(epb) => packets.push(WrittenPacket {
                interface: names[epb.interface_id as usize].clone(),
                data: epb.data.to_vec(),
                original_len: epb.original_len,
                flags: epb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        EnhancedPacketOption::Flags(f) => Some(*f),
                        _ => None,
                    })
                    .unwrap_or(0),
            }),
            _ => {}
        }
    }
    packets
}

fn ringsieve(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(RINGSIEVE)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_exit_2_naming_the_flag_or_variable_and_the_value() {
    let (code, err) = ringsieve(&["run", "--interface", "lo", "--block-size", "3000"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--block-size") && err.contains("3000") && err.contains("power of two"),
        "{err}"
    );

    let (code, err) = ringsieve(&["run", "--interface", "lo"], &[("RINGSIEVE_BLOCK_COUNT", "1")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RINGSIEVE_BLOCK_COUNT") && err.contains("\"1\""), "{err}");

    let (code, err) = ringsieve(
        &["run"],
        &[("RINGSIEVE_INTERFACE", "lo"), ("RINGSIEVE_FANOUT", "random")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("RINGSIEVE_FANOUT") && err.contains("hash, cpu, lb, qm"),
        "{err}"
    );

    let (code, err) = ringsieve(&["run", "--interface", "no-such-if9"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such-if9") && err.contains("--interface"), "{err}");

    let (code, err) = ringsieve(&["run", "--interface", "lo", "--promisc", "perhaps"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--promisc") && err.contains("perhaps"), "{err}");

    // The flag wins over the variable: a good flag hides a bad variable.
    let (code, err) = ringsieve(
        &["run", "--interface", "no-such-if9", "--block-count", "8"],
        &[("RINGSIEVE_BLOCK_COUNT", "1")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no-such-if9") && !err.contains("RINGSIEVE_BLOCK_COUNT"),
        "{err}"
    );

    let (code, err) = ringsieve(&["run", "--exclude", "veth[0-"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--exclude") && err.contains("veth[0-"), "{err}");

    // Loopback is never captured: naming it is an error, not a silent no-op.
    let (code, err) = ringsieve(&["run", "--interface", "lo"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--interface") && err.contains("non-loopback"), "{err}");
}

#[test]
fn help_documents_every_option_with_its_variable() {
    let output = Command::new(RINGSIEVE).args(["run", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, var) in [
        ("--interface", "RINGSIEVE_INTERFACE"),
        ("--pcap-out", "RINGSIEVE_PCAP_OUT"),
        ("--block-size", "RINGSIEVE_BLOCK_SIZE"),
        ("--block-count", "RINGSIEVE_BLOCK_COUNT"),
        ("--retire-timeout", "RINGSIEVE_RETIRE_TIMEOUT"),
        ("--promisc", "RINGSIEVE_PROMISC"),
        ("--capture-threads", "RINGSIEVE_CAPTURE_THREADS"),
        ("--capture-cpus", "RINGSIEVE_CAPTURE_CPUS"),
        ("--fanout", "RINGSIEVE_FANOUT"),
    ] {
        assert!(
            help.contains(flag) && help.contains(var),
            "{flag} / {var} missing from help:\n{help}"
        );
    }
}
