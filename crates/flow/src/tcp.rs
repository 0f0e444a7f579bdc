//! TCP segments (RFC 9293): the header, the options (with an iterator that
//! names MSS, window scale, SACK permitted, SACK and timestamps), and the
//! payload. It keeps no connection state, and does not verify the checksum:
//! captured checksums are often partial (TP_STATUS_CSUMNOTREADY).

use std::cmp::Ordering;
use std::fmt;

use crate::error::{Layer, ParseError};
use crate::read::{u16_at, u32_at};

/// Field offsets of the fixed TCP header.
mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (4 bits), reserved (3 bits) and the flags (9 bits).
    pub const OFFSET_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const HEADER_LEN: usize = 20;
}

/// A TCP sequence or acknowledgement number: compares with wrapping
/// arithmetic (RFC 1982), so `a < b` when `b` is less than 2^31 ahead of `a`.
/// The order is not transitive over the whole space; compare numbers of one
/// window only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The number `len` bytes later, wrapping.
    #[inline]
    pub fn wrapping_add(self, len: u32) -> Self {
        Self(self.0.wrapping_add(len))
    }

    /// How far `self` is ahead of `earlier`, wrapping (negative when behind).
    #[inline]
    pub fn distance_from(self, earlier: SeqNumber) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.distance_from(*other).cmp(&0))
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The nine TCP flag bits (with the old ECN nonce bit, now AE).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: Self = Self(0x002);
    /// Reset the connection.
    pub const RST: Self = Self(0x004);
    /// Push.
    pub const PSH: Self = Self(0x008);
    /// The acknowledgement number is valid.
    pub const ACK: Self = Self(0x010);
    /// The urgent pointer is valid.
    pub const URG: Self = Self(0x020);
    /// ECN echo.
    pub const ECE: Self = Self(0x040);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x080);
    /// Accurate ECN (formerly the ECN nonce, NS).
    pub const AE: Self = Self(0x100);

    /// Flags from the low 9 bits of `bits`.
    #[inline]
    pub fn from_bits(bits: u16) -> Self {
        Self(bits & 0x1ff)
    }

    /// The flags as the low 9 bits.
    #[inline]
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set.
    #[inline]
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE"];
        f.write_str("TcpFlags(")?;
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// A view of a TCP segment over bytes `T`: the transport payload of one IP
/// packet (so that the TCP payload ends where the IP packet does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Views `buffer` as a TCP segment, checking that the data offset is at
    /// least 5 and that the header with its options fits. After this no
    /// accessor panics. Options are not checked; see [`TcpSegment::options`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < field::HEADER_LEN {
            return Err(ParseError::truncated(Layer::Tcp));
        }
        let header_len = usize::from(bytes[field::OFFSET_FLAGS.start] >> 4) * 4;
        if header_len < field::HEADER_LEN {
            return Err(ParseError::BadHeaderLength { layer: Layer::Tcp });
        }
        if bytes.len() < header_len {
            return Err(ParseError::truncated(Layer::Tcp));
        }
        Ok(Self { buffer })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(u32_at(self.buffer.as_ref(), field::SEQ_NUM.start))
    }

    /// Acknowledgement number (meaningful when ACK is set).
    #[inline]
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(u32_at(self.buffer.as_ref(), field::ACK_NUM.start))
    }

    /// Header length in bytes, options included (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET_FLAGS.start] >> 4) * 4
    }

    /// The flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(u16_at(self.buffer.as_ref(), field::OFFSET_FLAGS.start))
    }

    /// The window field, unscaled.
    #[inline]
    pub fn window(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::WINDOW.start)
    }

    /// The checksum, as captured (not verified).
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The urgent pointer.
    #[inline]
    pub fn urgent_pointer(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The options, raw.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.header_len()]
    }

    /// The options, one by one.
    #[inline]
    pub fn option_iter(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options())
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The sequence space the segment occupies: payload bytes, plus one for
    /// SYN and one for FIN.
    #[inline]
    pub fn seq_len(&self) -> u32 {
        let flags = self.flags();
        self.payload().len() as u32
            + u32::from(flags.contains(TcpFlags::SYN))
            + u32::from(flags.contains(TcpFlags::FIN))
    }
}

/// Up to four SACK blocks (left edge, right edge), as in the option.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SackBlocks<'a> {
    /// The blocks' bytes: a multiple of 8.
    bytes: &'a [u8],
}

impl<'a> SackBlocks<'a> {
    /// The blocks, in option order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + 'a {
        self.bytes
            .chunks_exact(8)
            .map(|block| (SeqNumber(u32_at(block, 0)), SeqNumber(u32_at(block, 4))))
    }

    /// How many blocks there are.
    #[allow(clippy::len_without_is_empty, reason = "a SACK option has at least one block")]
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }
}

impl fmt::Debug for SackBlocks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One TCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0): the iterator stops after it.
    EndOfList,
    /// No operation (kind 1), padding.
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift count (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// Selective acknowledgement blocks (kind 5).
    Sack(SackBlocks<'a>),
    /// Timestamps (kind 8).
    Timestamps {
        /// The sender's timestamp value (TSval).
        value: u32,
        /// The echoed timestamp (TSecr).
        echo: u32,
    },
    /// Any other option: its kind and the bytes after the length byte.
    Unknown {
        /// The option kind.
        kind: u8,
        /// The option's data.
        data: &'a [u8],
    },
}

/// Iterator over TCP options. Yields [`ParseError::BadOption`] once and stops
/// when an option's length is below 2, runs past the options, or does not
/// fit its kind.
#[derive(Clone, Debug)]
pub struct TcpOptions<'a> {
    /// The options not yet walked; empty once the walk ended.
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterates over the raw `options` of a TCP header.
    #[inline]
    pub fn new(options: &'a [u8]) -> Self {
        Self { rest: options }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bad = Err(ParseError::BadOption { layer: Layer::Tcp });
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let len = match after_kind.first() {
            Some(&len) if len >= 2 && usize::from(len) <= self.rest.len() => usize::from(len),
            _ => {
                self.rest = &[];
                return Some(bad);
            }
        };
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        let option = match (kind, data.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(u16_at(data, 0)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n > 0 && n % 8 == 0 => TcpOption::Sack(SackBlocks { bytes: data }),
            (8, 8) => TcpOption::Timestamps {
                value: u32_at(data, 0),
                echo: u32_at(data, 4),
            },
            (2..=5 | 8, _) => {
                self.rest = &[];
                return Some(bad);
            }
            _ => TcpOption::Unknown { kind, data },
        };
        Some(Ok(option))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds;

    /// The TCP bytes of a frame with a 20-byte IPv4 header.
    fn tcp_of(frame: &[u8]) -> &[u8] {
        &frame[34..]
    }

    #[test]
    fn syn_with_linux_options() {
        let tcp = TcpSegment::new_checked(tcp_of(seeds::TCP_SYN)).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq_number(), SeqNumber(0x1234_5678));
        assert_eq!(tcp.ack_number(), SeqNumber(0));
        assert_eq!(tcp.header_len(), 40);
        assert_eq!(tcp.flags(), TcpFlags::SYN);
        assert_eq!(tcp.window(), 64240);
        assert_eq!(tcp.urgent_pointer(), 0);
        assert!(tcp.payload().is_empty());
        assert_eq!(tcp.seq_len(), 1);
        let options: Vec<_> = tcp.option_iter().map(Result::unwrap).collect();
        assert_eq!(
            options,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps {
                    value: 0x0a1b_2c3d,
                    echo: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
    }

    #[test]
    fn ack_flags_and_padding_free_payload() {
        // The 64-byte frame is 10 bytes of Ethernet padding after a 40-byte IP packet;
        // the IP layer cuts it, so the segment is viewed over the IP payload.
        let tcp = TcpSegment::new_checked(&seeds::TCP_ACK_64[34..54]).unwrap();
        assert_eq!(tcp.flags(), TcpFlags::ACK);
        assert!(tcp.flags().contains(TcpFlags::ACK));
        assert!(!tcp.flags().contains(TcpFlags::ACK | TcpFlags::SYN));
        assert_eq!(format!("{:?}", TcpFlags::ACK | TcpFlags::PSH), "TcpFlags(PSH|ACK)");
        assert_eq!(tcp.seq_len(), 0);
        assert_eq!(tcp.option_iter().count(), 0);
    }

    #[test]
    fn sack_unknown_and_malformed_options() {
        let mut options = vec![1, 1, 5, 18];
        options.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 20, 0, 0, 0, 30]);
        options.extend_from_slice(&[30, 4, 0xaa, 0xbb, 0, 99]);
        let mut iter = TcpOptions::new(&options);
        assert_eq!(iter.next(), Some(Ok(TcpOption::NoOperation)));
        assert_eq!(iter.next(), Some(Ok(TcpOption::NoOperation)));
        match iter.next() {
            Some(Ok(TcpOption::Sack(blocks))) => {
                assert_eq!(blocks.len(), 2);
                let blocks: Vec<_> = blocks.iter().collect();
                assert_eq!(blocks[1], (SeqNumber(20), SeqNumber(30)));
            }
            other => panic!("not a SACK: {other:?}"),
        }
        assert_eq!(
            iter.next(),
            Some(Ok(TcpOption::Unknown {
                kind: 30,
                data: &[0xaa, 0xbb]
            }))
        );
        assert_eq!(iter.next(), Some(Ok(TcpOption::EndOfList)));
        assert_eq!(iter.next(), None);

        let bad = Some(Err(ParseError::BadOption { layer: Layer::Tcp }));
        for options in [&[2, 4, 5][..], &[2, 3, 5], &[8, 1], &[8], &[3, 4, 1, 1], &[5, 2]] {
            let mut iter = TcpOptions::new(options);
            assert_eq!(iter.next(), bad, "{options:?}");
            assert_eq!(iter.next(), None);
        }
    }

    #[test]
    fn short_and_bad_offsets() {
        let bytes = tcp_of(seeds::TCP_SYN);
        for len in 0..40 {
            assert_eq!(
                TcpSegment::new_checked(&bytes[..len]),
                Err(ParseError::truncated(Layer::Tcp))
            );
        }
        let mut bytes = bytes.to_vec();
        bytes[12] = 0x40;
        assert_eq!(
            TcpSegment::new_checked(&bytes[..]),
            Err(ParseError::BadHeaderLength { layer: Layer::Tcp })
        );
    }

    #[test]
    fn sequence_numbers_compare_across_the_wrap() {
        let near_end = SeqNumber(u32::MAX - 10);
        let wrapped = near_end.wrapping_add(20);
        assert_eq!(wrapped, SeqNumber(9));
        assert!(near_end < wrapped);
        assert_eq!(wrapped.distance_from(near_end), 20);
        assert_eq!(near_end.distance_from(wrapped), -20);
    }
}
