//! Frames for the test bed: well-formed Ethernet/IPv4/UDP frames of an exact
//! size, optionally 802.1Q-tagged, each carrying a sequence number so a
//! capture can be matched frame by frame against what was sent.
//!
//! Used by the kernel integration tests, the packet blaster and the
//! benchmarks. Not a packet parser: that is the `flow` crate.
//!
//! [`fixtures`] reads the dedup fixtures recorded in the test bed
//! (`tests/fixtures/dedup/`) and derives, from their container-side
//! captures alone, how many packets a deduplicating capture must deliver.
//!
//! [`docker_mix`] generates a synthetic Docker host's traffic as its
//! interfaces show it (every copy of every packet, NAT rewrites included),
//! for the dedup benchmarks and the capture files they time.
//!
//! [`http_payload`] makes that traffic's payloads HTTP/1.1-looking
//! conversations when asked, and the content rules that match a known
//! fraction of them, for the signature engine's benchmark.
//!
//! [`netns`] gives tests network namespaces that delete themselves, and
//! the privilege probe that decides whether kernel tests run or skip.

#![forbid(unsafe_code)]

pub mod docker_mix;
pub mod fixtures;
pub mod http_payload;
pub mod netns;

/// Smallest frame built: an Ethernet header, IPv4, UDP and the 8-byte marker.
pub const MIN_FRAME_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN + MARKER_LEN;
/// Largest frame built: the largest IPv4 datagram in an Ethernet frame.
pub const MAX_FRAME_LEN: usize = ETH_LEN + 65_535;

const ETH_LEN: usize = 14;
const VLAN_LEN: usize = 4;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// The payload starts with a magic and the sequence number.
const MARKER_LEN: usize = 8;
const MAGIC: [u8; 4] = *b"RSv1";

/// Everything that shapes one test frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// An 802.1Q/802.1ad tag in the frame: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// IPv4 source.
    pub src_ip: [u8; 4],
    /// IPv4 destination.
    pub dst_ip: [u8; 4],
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Length of the whole frame in bytes (no FCS), tag included.
    pub frame_len: usize,
}

impl Default for FrameSpec {
    fn default() -> Self {
        Self {
            dst_mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
            src_mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x03],
            vlan: None,
            src_ip: [172, 17, 0, 3],
            dst_ip: [172, 17, 0, 2],
            src_port: 40000,
            dst_port: 9,
            frame_len: 60,
        }
    }
}

impl FrameSpec {
    /// The smallest `frame_len` this spec accepts.
    pub fn min_len(&self) -> usize {
        MIN_FRAME_LEN + if self.vlan.is_some() { VLAN_LEN } else { 0 }
    }

    /// Builds the frame with `sequence` in its payload. `frame_len` is clamped
    /// to `min_len()..=MAX_FRAME_LEN`.
    pub fn build(&self, sequence: u32) -> Vec<u8> {
        let len = self
            .frame_len
            .clamp(self.min_len(), MAX_FRAME_LEN + self.min_len() - MIN_FRAME_LEN);
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        if let Some((tpid, tci)) = self.vlan {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&tci.to_be_bytes());
        }
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        let ip_start = frame.len();
        let ip_len = (len - ip_start) as u16;
        let udp_len = ip_len - IPV4_LEN as u16;
        let mut ip = [0u8; IPV4_LEN];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[4..6].copy_from_slice(&(sequence as u16).to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&self.src_ip);
        ip[16..20].copy_from_slice(&self.dst_ip);
        let checksum = internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&ip);
        let udp_start = frame.len();
        frame.extend_from_slice(&self.src_port.to_be_bytes());
        frame.extend_from_slice(&self.dst_port.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&sequence.to_be_bytes());
        let mut fill = sequence.wrapping_mul(2_654_435_761);
        while frame.len() < len {
            fill = fill.rotate_left(5) ^ 0x9e37_79b9;
            frame.push(fill as u8);
        }
        let pseudo = pseudo_header(self.src_ip, self.dst_ip, udp_len);
        let udp_checksum = match internet_checksum(&[&pseudo, &frame[udp_start..]]) {
            0 => 0xffff,
            c => c,
        };
        frame[udp_start + 6..udp_start + 8].copy_from_slice(&udp_checksum.to_be_bytes());
        frame
    }
}

/// The sequence number of a frame built by [`FrameSpec::build`], found with
/// or without a VLAN tag in the frame; `None` for any other frame.
pub fn sequence_of(frame: &[u8]) -> Option<u32> {
    let mut offset = 12;
    let mut ethertype = u16::from_be_bytes(frame.get(offset..offset + 2)?.try_into().ok()?);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        offset += VLAN_LEN;
        ethertype = u16::from_be_bytes(frame.get(offset..offset + 2)?.try_into().ok()?);
    }
    if ethertype != 0x0800 {
        return None;
    }
    let marker = offset + 2 + IPV4_LEN + UDP_LEN;
    if frame.get(marker..marker + 4)? != MAGIC {
        return None;
    }
    Some(u32::from_be_bytes(frame.get(marker + 4..marker + 8)?.try_into().ok()?))
}

fn pseudo_header(src: [u8; 4], dst: [u8; 4], udp_len: u16) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src);
    p[4..8].copy_from_slice(&dst);
    p[9] = 17;
    p[10..12].copy_from_slice(&udp_len.to_be_bytes());
    p
}

/// The RFC 1071 checksum over the concatenation of `parts`.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u64::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u64::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Frame sizes that exercise a capture path: minimum, odd sizes, the MTU
/// edge, for `count` frames cycling through them.
pub fn mixed_sizes(count: usize, max_len: usize) -> Vec<usize> {
    const PATTERN: [usize; 8] = [60, 64, 127, 128, 511, 1000, 1513, 1514];
    (0..count).map(|i| PATTERN[i % PATTERN.len()].min(max_len)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_exact_sizes_with_valid_checksums_and_sequence() {
        for len in [60, 61, 1514, 9000] {
            let spec = FrameSpec {
                frame_len: len,
                ..FrameSpec::default()
            };
            let frame = spec.build(77);
            assert_eq!(frame.len(), len);
            assert_eq!(sequence_of(&frame), Some(77));
            assert_eq!(internet_checksum(&[&frame[14..34]]), 0, "IPv4 header checksum");
            let udp_len = frame.len() - 34;
            let pseudo = pseudo_header(spec.src_ip, spec.dst_ip, udp_len as u16);
            assert_eq!(internet_checksum(&[&pseudo, &frame[34..]]), 0, "UDP checksum");
        }
    }

    #[test]
    fn vlan_tagged_frames_keep_their_tag_and_sequence() {
        let spec = FrameSpec {
            vlan: Some((0x8100, 0x2064)),
            frame_len: 100,
            ..FrameSpec::default()
        };
        let frame = spec.build(5);
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(sequence_of(&frame), Some(5));
        assert_eq!(spec.min_len(), MIN_FRAME_LEN + 4);
    }

    #[test]
    fn other_frames_have_no_sequence() {
        assert_eq!(sequence_of(&[0u8; 10]), None);
        assert_eq!(sequence_of(&[0u8; 60]), None);
    }
}
