//! Reads a file written by the pcapng writer back with Wireshark's own tools
//! (`capinfos`, `tshark`) and checks what they see: interface names (one added
//! mid-stream), nanosecond times, lengths, the VLAN id put back into a frame,
//! direction and reception type. It needs no privileges and no network; it
//! skips with a message when tshark is not installed (CI installs it).

use std::path::Path;
use std::process::Command;

use af_packet::{PacketType, VlanTag};
use output::{InterfaceId, PacketRecord, PcapngWriter};

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

fn run(tool: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(tool).args(args).arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex_to_decimal(field: &str) -> String {
    match field.strip_prefix("0x").map(|hex| u64::from_str_radix(hex, 16)) {
        Some(Ok(value)) => value.to_string(),
        _ => field.to_owned(),
    }
}

/// An untagged packet of `data`, whole.
fn packet(interface: InterfaceId, timestamp_ns: u64, data: &[u8], packet_type: PacketType) -> PacketRecord<'_> {
    PacketRecord {
        interface,
        timestamp_ns,
        original_len: data.len() as u32,
        data,
        packet_type: Some(packet_type),
        vlan: None,
    }
}

/// A frame of `len` bytes with a local experimental EtherType, so tshark
/// decodes Ethernet (and the VLAN tag) and leaves the rest as data.
fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut bytes = vec![fill; len];
    bytes[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    bytes[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    bytes[12..14].copy_from_slice(&[0x88, 0xb5]);
    bytes
}

#[test]
fn tshark_reads_back_interfaces_times_lengths_vlan_and_flags() {
    if !tool_available("tshark") || !tool_available("capinfos") {
        println!("skipped: tshark not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pcapng");

    let (small, large, tagged) = (frame(60, 0x11), frame(1514, 0x22), frame(100, 0x33));
    let mut writer = PcapngWriter::new(std::fs::File::create(&path).unwrap(), "ringsieve test").unwrap();
    let eth0 = writer.add_interface("eth0", 262_144).unwrap();
    writer
        .write_packet(&packet(eth0, 1_700_000_000_000_000_001, &small, PacketType::Host))
        .unwrap();
    let veth = writer.add_interface("veth9f3a", 262_144).unwrap();
    writer
        .write_packet(&PacketRecord {
            vlan: Some(VlanTag {
                tci: 0x2064,
                tpid: 0x8100,
            }),
            ..packet(veth, 1_700_000_000_123_456_789, &tagged, PacketType::OtherHost)
        })
        .unwrap();
    writer
        .write_packet(&PacketRecord {
            original_len: 9000,
            ..packet(eth0, 1_700_000_001_999_999_999, &large, PacketType::Outgoing)
        })
        .unwrap();
    writer
        .write_packet(&packet(veth, 1_700_000_002_000_000_000, &small, PacketType::Broadcast))
        .unwrap();
    writer.finish().unwrap();

    let info = run("capinfos", &[], &path);
    for expected in [
        "File type:           Wireshark/... - pcapng",
        "File encapsulation:  Ethernet",
        "File timestamp precision:  nanoseconds (9)",
        "Number of packets:   4",
        "Capture application: ringsieve test",
        "Number of interfaces in file: 2",
    ] {
        assert!(
            info.lines().any(|line| line == expected),
            "no {expected:?} in capinfos:\n{info}"
        );
    }
    let interface_lines: Vec<&str> = info
        .lines()
        .map(str::trim)
        .filter(|line| {
            [
                "Name = ",
                "Time precision = ",
                "Capture length = ",
                "Number of packets = ",
            ]
            .iter()
            .any(|key| line.starts_with(key))
        })
        .collect();
    assert_eq!(
        interface_lines,
        [
            "Name = eth0",
            "Capture length = 262144",
            "Time precision = nanoseconds (9)",
            "Number of packets = 2",
            "Name = veth9f3a",
            "Capture length = 262144",
            "Time precision = nanoseconds (9)",
            "Number of packets = 2",
        ],
        "capinfos:\n{info}"
    );

    let fields = [
        "frame.interface_name",
        "frame.time_epoch",
        "frame.len",
        "frame.cap_len",
        "vlan.id",
        "frame.packet_flags_direction",
        "frame.packet_flags_reception_type",
    ];
    let mut args = vec!["-T", "fields", "-E", "separator=,"];
    for field in &fields {
        args.extend(["-e", field]);
    }
    args.push("-r");
    let lines = run("tshark", &args, &path);
    // Flag fields print as hex in some tshark versions ("0x00000001"),
    // decimal in others: compare numbers.
    let lines: Vec<String> = lines
        .lines()
        .map(|line| line.split(',').map(hex_to_decimal).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        lines,
        [
            "eth0,1700000000.000000001,60,60,,1,1",
            "veth9f3a,1700000000.123456789,104,104,100,1,4",
            "eth0,1700000001.999999999,9000,1514,,2,0",
            "veth9f3a,1700000002.000000000,60,60,,1,3",
        ]
    );
}
