//! Time as the bundle format writes it: RFC 3339 UTC with microseconds, from microseconds since
//! the Unix epoch. The agent's clock and the coordinator share these so both spell an instant the
//! same way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch for a [`SystemTime`], saturating far outside ±292,000 years.
pub fn utc_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// `1970-01-01T00:00:00.000000Z`: RFC 3339 in UTC with microseconds, as `humantime` writes it;
/// `None` outside years 1970 to 9999.
pub fn format_utc_us(utc_us: i64) -> Option<String> {
    let mut out = Vec::with_capacity(UTC_LEN);
    push_utc_us(&mut out, utc_us).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Whether [`format_utc_us`] can write `utc_us` (years 1970 to 9999), without writing it.
pub fn utc_us_in_range(utc_us: i64) -> bool {
    (0..YEAR_10000_US).contains(&utc_us)
}

/// Microseconds from the epoch to 10000-01-01T00:00:00Z.
const YEAR_10000_US: i64 = 253_402_300_800_000_000;

/// Length of [`format_utc_us`]'s text.
pub const UTC_LEN: usize = 27;

/// Appends [`format_utc_us`]'s text to `out` without allocating; false (and nothing appended)
/// outside years 1970 to 9999. Bundles write and check one such time per reading, so this is on
/// the sealing and verifying hot paths.
pub fn push_utc_us(out: &mut Vec<u8>, utc_us: i64) -> bool {
    if !utc_us_in_range(utc_us) {
        return false;
    }
    let micros = utc_us % 1_000_000;
    let secs = utc_us / 1_000_000;
    let (days, sod) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (all non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = [0u8; UTC_LEN];
    let fields: [(i64, usize, u8); 7] = [
        (year, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (sod / 3600, 2, b':'),
        (sod / 60 % 60, 2, b':'),
        (sod % 60, 2, b'.'),
        (micros, 6, b'Z'),
    ];
    let mut at = 0;
    for (value, width, separator) in fields {
        let mut v = value;
        for slot in text[at..at + width].iter_mut().rev() {
            // Each value is non-negative and below 10^width, so every digit is 0–9.
            *slot = b'0' + u8::try_from(v % 10).unwrap_or(0);
            v /= 10;
        }
        text[at + width] = separator;
        at += width + 1;
    }
    out.extend_from_slice(&text);
    true
}

/// RFC 3339 text with microseconds, e.g. `2026-11-26T15:54:36.123456Z`; a time outside 1970 to
/// 9999 (a clock that was never set, a corrupt row) shows as the raw microsecond count, so nothing
/// is hidden and nothing panics.
pub fn rfc3339(utc_us: i64) -> String {
    format_utc_us(utc_us).unwrap_or_else(|| format!("{utc_us}us"))
}

/// Parses RFC 3339 text (`2026-11-26T15:54:36Z`, with or without fractions) to microseconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text).map(utc_us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_round_trip() {
        let us = 1_795_708_476_123_456;
        let text = rfc3339(us);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_rfc3339(&text).unwrap(), us);
    }

    proptest::proptest! {
        #[test]
        fn the_fast_form_is_humantimes(us in 0i64..253_402_300_800_000_000) {
            let time = UNIX_EPOCH + Duration::from_micros(us as u64);
            let expected = humantime::format_rfc3339_micros(time).to_string();
            proptest::prop_assert_eq!(format_utc_us(us), Some(expected));
        }
    }

    #[test]
    fn the_fast_form_at_the_edges() {
        for us in [
            0,
            1,
            951_782_400_000_000,
            253_402_300_799_999_999,
            4_107_542_400_000_000,
        ] {
            let time = UNIX_EPOCH + Duration::from_micros(us as u64);
            assert_eq!(
                format_utc_us(us),
                Some(humantime::format_rfc3339_micros(time).to_string()),
                "{us}"
            );
        }
    }

    #[test]
    fn outside_the_years_rfc3339_can_carry_is_shown_raw() {
        assert_eq!(format_utc_us(-1), None);
        assert_eq!(rfc3339(-1), "-1us");
        assert_eq!(format_utc_us(253_402_300_800_000_000), None);
    }
}
