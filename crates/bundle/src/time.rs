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

/// The instant whose [`format_utc_us`] text is exactly `text`; `None` for any other text.
///
/// The verifier checks one such time per reading. Formatting each reading's `utc_us` again and
/// comparing (days-to-civil, then a division per digit) was ~4 % of verifying a big bundle (P7 in
/// BENCHMARKS.md); reading the 27 fixed-place bytes back is a few multiplications. A text is what
/// [`format_utc_us`] writes exactly when every digit sits in its place, the separators in theirs,
/// and each field is in the range the formatter writes (year 1970–9999, month 1–12, a day of that
/// month, hour below 24, minute and second below 60): the formatter writes every such date, and
/// only those, with fixed widths, so no other spelling of an instant reaches it.
pub fn parse_utc_us(text: &[u8]) -> Option<i64> {
    let (date, time) = split_utc(text)?;
    Some(parse_date(date)? + parse_time(time)?)
}

/// [`parse_utc_us`] for a stream of times, remembering the last date read: readings come in time
/// order, many a day, so most share the date of the one before and only their time of day is read.
#[derive(Debug, Default)]
pub struct UtcParser {
    /// The last date's text (`YYYY-MM-DDT`) that was valid, and its midnight in microseconds.
    date: Option<([u8; DATE_LEN], i64)>,
}

impl UtcParser {
    /// Exactly [`parse_utc_us`]'s answer for `text`.
    pub fn parse(&mut self, text: &[u8]) -> Option<i64> {
        let (date, time) = split_utc(text)?;
        let midnight = match self.date {
            Some((last, midnight)) if last == *date => midnight,
            _ => {
                let midnight = parse_date(date)?;
                self.date = Some((*date, midnight));
                midnight
            }
        };
        Some(midnight + parse_time(time)?)
    }
}

/// Length of the date part of [`format_utc_us`]'s text, `T` included.
const DATE_LEN: usize = 11;

/// The date (`YYYY-MM-DDT`) and the time of day (`hh:mm:ss.ffffffZ`) of a text of [`UTC_LEN`].
fn split_utc(text: &[u8]) -> Option<(&[u8; DATE_LEN], &[u8; UTC_LEN - DATE_LEN])> {
    let t: &[u8; UTC_LEN] = text.try_into().ok()?;
    let (date, time) = t.split_at(DATE_LEN);
    Some((date.try_into().ok()?, time.try_into().ok()?))
}

/// The digits of `text` from `from` to `to` as a number, and whether each was `0`–`9`: one test
/// for them all at the end rather than a branch each.
fn digits(text: &[u8], from: usize, to: usize, bad: &mut bool) -> i64 {
    text[from..to].iter().fold(0i64, |n, &c| {
        let d = c.wrapping_sub(b'0');
        *bad |= d > 9;
        n * 10 + i64::from(d)
    })
}

/// Microseconds from the epoch to the midnight that starts the date `YYYY-MM-DDT`, if it is a
/// date [`format_utc_us`] writes (1970-01-01 to 9999-12-31).
fn parse_date(t: &[u8; DATE_LEN]) -> Option<i64> {
    if t[4] != b'-' || t[7] != b'-' || t[10] != b'T' {
        return None;
    }
    let mut bad = false;
    let year = digits(t, 0, 4, &mut bad);
    let month = digits(t, 5, 7, &mut bad);
    let day = digits(t, 8, 10, &mut bad);
    if bad {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 => 28 + i64::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year < 1970 || !(1..=12).contains(&month) || !(1..=month_days).contains(&day) {
        return None;
    }
    // Howard Hinnant's days-from-civil, the inverse of the formatter's days-to-civil.
    let y = year - i64::from(month <= 2);
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000_000)
}

/// Microseconds into the day of `hh:mm:ss.ffffffZ`, if [`format_utc_us`] writes it (no leap
/// second: the formatter never writes `60`).
fn parse_time(t: &[u8; UTC_LEN - DATE_LEN]) -> Option<i64> {
    if t[2] != b':' || t[5] != b':' || t[8] != b'.' || t[15] != b'Z' {
        return None;
    }
    let mut bad = false;
    let hour = digits(t, 0, 2, &mut bad);
    let minute = digits(t, 3, 5, &mut bad);
    let second = digits(t, 6, 8, &mut bad);
    let micros = digits(t, 9, 15, &mut bad);
    if bad || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some((hour * 3600 + minute * 60 + second) * 1_000_000 + micros)
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

    /// What [`parse_utc_us`] must answer: the instant whose formatted text is `text`, found by a
    /// lenient parser and kept only if formatting it gives `text` back.
    fn parse_by_formatting(text: &str) -> Option<i64> {
        let us = parse_rfc3339(text).ok()?;
        (format_utc_us(us).as_deref() == Some(text)).then_some(us)
    }

    proptest::proptest! {
        #[test]
        fn parsing_the_fixed_form_inverts_formatting(us in 0i64..253_402_300_800_000_000) {
            let text = format_utc_us(us).unwrap();
            proptest::prop_assert_eq!(parse_utc_us(text.as_bytes()), Some(us));
        }

        #[test]
        fn parsing_agrees_with_formatting_on_any_fields(
            year in 1960i64..10_000,
            month in 0i64..14,
            day in 0i64..33,
            hour in 0i64..26,
            minute in 0i64..62,
            second in 0i64..62,
            micros in 0i64..1_000_000,
        ) {
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z"
            );
            proptest::prop_assert_eq!(parse_utc_us(text.as_bytes()), parse_by_formatting(&text));
        }

        #[test]
        fn parsing_agrees_with_formatting_on_near_misses(
            us in 0i64..253_402_300_800_000_000,
            at in 0usize..UTC_LEN,
            byte in proptest::sample::select(b"0123456789-T:.Z +/ tz\xc3".to_vec()),
            cut in 0usize..3,
        ) {
            let mut bytes = format_utc_us(us).unwrap().into_bytes();
            bytes[at] = byte;
            bytes.truncate(UTC_LEN - cut);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let expected = if text.len() == bytes.len() { parse_by_formatting(&text) } else { None };
            proptest::prop_assert_eq!(parse_utc_us(&bytes), expected);
        }

        #[test]
        fn parsing_agrees_with_formatting_on_any_digits(
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{6}Z",
        ) {
            proptest::prop_assert_eq!(parse_utc_us(text.as_bytes()), parse_by_formatting(&text));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_remembering_parser_gives_the_same_answers(
            texts in proptest::collection::vec(
                (
                    0i64..253_402_300_800_000_000,
                    0i64..200_000_000_000,
                    0usize..UTC_LEN + 4,
                    proptest::sample::select(b"0123456789-T:.Z ".to_vec()),
                ),
                1..30,
            ),
        ) {
            // Times close together (many a day, some across midnight), some with one byte changed
            // (the date's included), to one parser in turn.
            let mut parser = UtcParser::default();
            let start = texts[0].0;
            for (i, &(_, step, at, byte)) in texts.iter().enumerate() {
                let us = (start + step * i as i64 / 8).min(253_402_300_799_999_999);
                let mut bytes = format_utc_us(us).unwrap().into_bytes();
                if let Some(slot) = bytes.get_mut(at) {
                    *slot = byte;
                }
                proptest::prop_assert_eq!(parser.parse(&bytes), parse_utc_us(&bytes));
            }
        }
    }

    #[test]
    fn parsing_the_fixed_form_at_the_edges() {
        for (text, expected) in [
            ("1970-01-01T00:00:00.000000Z", Some(0)),
            ("9999-12-31T23:59:59.999999Z", Some(253_402_300_799_999_999)),
            ("2000-02-29T00:00:00.000000Z", Some(951_782_400_000_000)),
            ("1969-12-31T23:59:59.999999Z", None),
            ("2100-02-29T00:00:00.000000Z", None),
            ("2023-02-29T00:00:00.000000Z", None),
            ("2024-04-31T00:00:00.000000Z", None),
            ("2024-00-10T00:00:00.000000Z", None),
            ("2024-01-00T00:00:00.000000Z", None),
            ("2024-01-01T24:00:00.000000Z", None),
            ("2024-01-01T23:60:00.000000Z", None),
            ("2024-01-01T23:59:60.000000Z", None),
            ("2024-01-01t23:59:59.000000Z", None),
            ("2024-01-01T23:59:59.000000z", None),
            ("2024-01-01T23:59:59.00000Z", None),
            ("2024-01-01T23:59:59.0000000Z", None),
            ("2024-01-01T23:59:59Z", None),
            ("+024-01-01T23:59:59.000000Z", None),
            ("2024-01-01T23:59:59.00000:Z", None),
        ] {
            assert_eq!(parse_utc_us(text.as_bytes()), expected, "{text}");
            assert_eq!(parse_by_formatting(text), expected, "{text}");
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
