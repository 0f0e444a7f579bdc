//! The interfaces a capture file describes, and the conversion of each one's
//! timestamps to nanoseconds since the epoch. A pcap file has one interface; a
//! pcapng file one per Interface Description Block of every section; and an
//! interface whose packets carry `LINUX_SLL2` headers is split further, one
//! interface per ifindex, so every tap point of a `tcpdump -i any` capture is
//! told apart.

/// The unit of an interface's timestamps (pcapng `if_tsresol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampResolution {
    /// Units of 10^-n seconds (6 for microseconds, 9 for nanoseconds).
    Decimal(u8),
    /// Units of 2^-n seconds.
    Binary(u8),
}

impl TimestampResolution {
    /// Microseconds: the pcapng default and classic pcap.
    pub const MICROSECONDS: Self = Self::Decimal(6);
    /// Nanoseconds: the nanosecond pcap variant.
    pub const NANOSECONDS: Self = Self::Decimal(9);

    /// Decodes an `if_tsresol` byte: the high bit chooses base 2, the rest is
    /// the negative exponent.
    pub fn from_tsresol(raw: u8) -> Self {
        if raw & 0x80 == 0 {
            Self::Decimal(raw)
        } else {
            Self::Binary(raw & 0x7f)
        }
    }

    /// `units` of this resolution in nanoseconds, saturating at `u64::MAX`.
    pub fn to_ns(self, units: u64) -> u64 {
        match self {
            Self::Decimal(9) => units,
            Self::Decimal(6) => units.saturating_mul(1_000),
            Self::Decimal(exp) if exp <= 9 => units.saturating_mul(10u64.pow(u32::from(9 - exp))),
            Self::Decimal(exp) => 10u64.checked_pow(u32::from(exp - 9)).map_or(0, |div| units / div),
            Self::Binary(exp) => {
                // exp <= 127, so the shift is in range for u128.
                let ns = (u128::from(units) * 1_000_000_000) >> exp;
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }
}

/// One interface of a capture file: packets name it by its index in
/// [`CaptureFile::interfaces`](crate::CaptureFile::interfaces).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInterface {
    /// pcapng `if_name`; for a pcap file its stem (`"pcap0"` without one);
    /// `ifindex<N>` for a `LINUX_SLL2` ifindex; `pcapng<index>` for a pcapng
    /// interface without a name.
    pub name: String,
    /// Link type (tcpdump.org/linktypes), see [`link_type`](crate::link_type).
    pub link_type: u32,
    /// Snap length; 0 means none.
    pub snaplen: u32,
    /// Unit of the file's timestamps for this interface.
    pub resolution: TimestampResolution,
    /// pcapng `if_tsoffset`: seconds added to every timestamp.
    pub offset_s: i64,
    /// pcapng section the interface belongs to (0 for the first, and pcap).
    pub section: u32,
    /// For an interface split from a `LINUX_SLL2` interface: the ifindex of
    /// its packets.
    pub ifindex: Option<u32>,
    /// For an interface split from a `LINUX_SLL2` interface: the index of
    /// the interface the file describes, which itself carries no packets
    /// once split.
    pub parent: Option<u32>,
}

impl FileInterface {
    /// An interface with the defaults of pcapng: microseconds, no offset.
    pub(crate) fn new(name: String, link_type: u32, snaplen: u32, section: u32) -> Self {
        Self {
            name,
            link_type,
            snaplen,
            resolution: TimestampResolution::MICROSECONDS,
            offset_s: 0,
            section,
            ifindex: None,
            parent: None,
        }
    }

    /// A file timestamp of this interface in nanoseconds since the epoch
    /// (saturating at 0 and `u64::MAX`).
    pub fn timestamp_ns(&self, units: u64) -> u64 {
        let ns = self.resolution.to_ns(units);
        if self.offset_s == 0 {
            return ns;
        }
        let offset_ns = i128::from(self.offset_s) * 1_000_000_000;
        u64::try_from((i128::from(ns) + offset_ns).max(0)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_convert_to_nanoseconds() {
        let r = TimestampResolution::from_tsresol;
        assert_eq!(r(6).to_ns(1_500_000), 1_500_000_000);
        assert_eq!(r(9).to_ns(1_500_000_000), 1_500_000_000);
        assert_eq!(r(3).to_ns(2), 2_000_000);
        assert_eq!(r(0).to_ns(2), 2_000_000_000);
        assert_eq!(r(12).to_ns(5_000), 5);
        assert_eq!(r(30).to_ns(u64::MAX), 0);
        // 2^-10 s: 1024 units are one second, one unit 976562.5 ns.
        assert_eq!(r(0x80 | 10).to_ns(1024), 1_000_000_000);
        assert_eq!(r(0x80 | 10).to_ns(1), 976_562);
        assert_eq!(r(0x80).to_ns(3), 3_000_000_000);
        assert_eq!(r(0xff).to_ns(u64::MAX), 0);
        assert_eq!(r(0).to_ns(u64::MAX), u64::MAX);
    }

    #[test]
    fn offset_is_added_in_seconds_and_saturates() {
        let mut interface = FileInterface::new("eth0".into(), 1, 0, 0);
        interface.offset_s = 10;
        assert_eq!(interface.timestamp_ns(1), 10_000_001_000);
        interface.offset_s = -10;
        assert_eq!(interface.timestamp_ns(1), 0);
        interface.offset_s = i64::MAX;
        assert_eq!(interface.timestamp_ns(1), u64::MAX);
    }
}
