//! Time as the bundle format writes it: RFC 3339 UTC with microseconds, from microseconds since
//! the Unix epoch. The agent's clock and the coordinator share these so both spell an instant the
//! same way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch for a [`SystemTime`], saturating far outside ±292,000 years.
pub fn utc_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// RFC 3339 with microseconds for `utc_us`, or `None` outside the years 1970 to 9999 (what
/// RFC 3339 and the bundle format can carry).
pub fn format_utc_us(utc_us: i64) -> Option<String> {
    use std::fmt::Write as _;
    // humantime's Display fails (and `to_string` would panic) outside this range.
    const YEAR_10000_US: u64 = 253_402_300_800_000_000;
    let us = u64::try_from(utc_us)
        .ok()
        .filter(|&us| us < YEAR_10000_US)?;
    let time = UNIX_EPOCH.checked_add(Duration::from_micros(us))?;
    let mut out = String::new();
    write!(out, "{}", humantime::format_rfc3339_micros(time)).ok()?;
    Some(out)
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

    #[test]
    fn rfc3339_round_trip() {
        let us = 1_795_708_476_123_456;
        let text = rfc3339(us);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_rfc3339(&text).unwrap(), us);
    }

    #[test]
    fn outside_the_years_rfc3339_can_carry_is_shown_raw() {
        assert_eq!(format_utc_us(-1), None);
        assert_eq!(rfc3339(-1), "-1us");
        assert_eq!(format_utc_us(253_402_300_800_000_000), None);
    }
}
