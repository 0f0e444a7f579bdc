//! The wall clock the pipeline stamps with: nanoseconds since the Unix
//! epoch, CLOCK_REALTIME, the clock the kernel stamps captured packets with,
//! so the two can be compared (latency, hold watermarks).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the epoch (0 before it, saturating far after).
pub fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
