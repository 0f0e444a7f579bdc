//! Timestamps as Suricata writes them in EVE JSON: UTC with microseconds and
//! a numeric offset, `2026-11-27T06:32:34.123456+0000`.
//!
//! The calendar date comes from a small civil-from-days conversion (Howard
//! Hinnant's `civil_from_days`, exact for the proleptic Gregorian calendar)
//! rather than a date crate: every flow record formats three timestamps, the
//! conversion is a dozen integer operations that write straight into the
//! line being built without allocating, and only UTC is ever needed (no time
//! zone database). The tests check it day by day against a naive calendar
//! over two centuries.

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// The (year, month 1..=12, day 1..=31) of `days` since 1970-01-01.
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shifted to 0000-03-01 so that leap days end each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends `timestamp_ns` (nanoseconds since the epoch) as Suricata writes
/// it, truncated to microseconds: the digits put into a fixed 31-byte
/// layout, appended at once (a `u64` of nanoseconds ends in 2554, so the
/// year always has four digits).
pub(crate) fn push_timestamp(out: &mut Vec<u8>, timestamp_ns: u64) {
    out.extend_from_slice(&timestamp_text(timestamp_ns));
}

/// The 31 bytes [`push_timestamp`] appends for `timestamp_ns`, for a
/// record that writes one timestamp twice (a flow's `timestamp` is its
/// `start`).
pub(crate) fn timestamp_text(timestamp_ns: u64) -> [u8; 31] {
    let seconds = timestamp_ns / NANOS_PER_SECOND;
    let micros = (timestamp_ns % NANOS_PER_SECOND) / 1_000;
    let (year, month, day) = civil_from_days(seconds / SECONDS_PER_DAY);
    let of_day = seconds % SECONDS_PER_DAY;
    let mut text = *b"0000-00-00T00:00:00.000000+0000";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], of_day / 3_600);
    put_digits(&mut text[14..16], of_day % 3_600 / 60);
    put_digits(&mut text[17..19], of_day % 60);
    put_digits(&mut text[20..26], micros);
    text
}

/// Writes the last `field.len()` decimal digits of `value` into `field`,
/// zero-padded.
fn put_digits(field: &mut [u8], mut value: u64) {
    for digit in field.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `timestamp_ns` formatted as Suricata writes it.
pub fn format_timestamp(timestamp_ns: u64) -> String {
    let mut out = Vec::with_capacity(31);
    push_timestamp(&mut out, timestamp_ns);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whole seconds of `timestamp_ns`, for the `age` of a flow.
pub(crate) fn seconds(timestamp_ns: u64) -> u64 {
    timestamp_ns / NANOS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_leap(year: u64) -> bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    fn days_in_month(year: u64, month: u64) -> u64 {
        match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if is_leap(year) => 29,
            _ => 28,
        }
    }

    #[test]
    fn civil_from_days_agrees_with_a_naive_calendar_for_two_centuries() {
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..(200 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            day += 1;
            if day > days_in_month(year, month) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
        assert!(year >= 2170);
    }

    /// The fixed layout against each field zero-padded by `format!`, over
    /// the whole range of `u64` nanoseconds.
    #[test]
    fn the_fixed_layout_matches_the_fields_formatted_one_by_one() {
        let mut next = Some(0u64);
        while let Some(timestamp_ns) = next {
            for ns in [timestamp_ns, u64::MAX - timestamp_ns] {
                let seconds = ns / NANOS_PER_SECOND;
                let (year, month, day) = civil_from_days(seconds / SECONDS_PER_DAY);
                let of_day = seconds % SECONDS_PER_DAY;
                let expected = format!(
                    "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+0000",
                    of_day / 3_600,
                    of_day % 3_600 / 60,
                    of_day % 60,
                    ns % NANOS_PER_SECOND / 1_000
                );
                assert_eq!(format_timestamp(ns), expected);
            }
            next = timestamp_ns.checked_mul(3).and_then(|n| n.checked_add(1_234_567_891));
        }
    }

    #[test]
    fn timestamps_are_formatted_as_suricata_writes_them() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // 2026-11-27T06:32:34 UTC is 1_795_761_154 s after the epoch.
        assert_eq!(
            format_timestamp(1_795_761_154_123_456_789),
            "2026-11-27T06:32:34.123456+0000"
        );
        // A leap day, and the last microsecond of a day.
        assert_eq!(
            format_timestamp(951_782_399_999_999_999),
            "2000-02-28T23:59:59.999999+0000"
        );
        assert_eq!(
            format_timestamp(951_782_400_000_001_000),
            "2000-02-29T00:00:00.000001+0000"
        );
        assert_eq!(seconds(1_500_000_000), 1);
    }
}
