//! Instants as configs and the command line write them: RFC 3339 with any offset
//! (`2026-12-02T20:40:00+08:00`, `2026-12-02T12:40:00Z`) or a plain date (00:00 UTC that day), to
//! UTC microseconds. humantime reads only `Z` times, which is why `--since
//! 2026-12-02T20:40:00+08:00` used to be refused; one parser serves `readings --since` and
//! `[artefact.deadlines]`.

/// Why a text is not an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantError {
    /// Not the shape of a date or an RFC 3339 time.
    #[error("`{0}` is not a date or an RFC 3339 time")]
    Shape(String),
    /// A field out of its range (month 13, 30 February, hour 25, offset +24:00).
    #[error("`{text}`: {field} out of range")]
    Range {
        /// The text.
        text: String,
        /// Which field.
        field: &'static str,
    },
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`, `z` and a
/// space for `T` are accepted as RFC 3339 allows. Fractions below a microsecond are dropped.
pub fn parse(text: &str) -> Result<i64, InstantError> {
    let shape = || InstantError::Shape(text.to_owned());
    let range = |field| InstantError::Range {
        text: text.to_owned(),
        field,
    };
    let b = text.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(shape());
    }
    let year = num(&b[0..4]).ok_or_else(shape)?;
    let month = num(&b[5..7]).ok_or_else(shape)?;
    let day = num(&b[8..10]).ok_or_else(shape)?;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(range("day"));
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Ok(days * 86_400_000_000);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return Err(shape());
    }
    let hour = num(&b[11..13]).ok_or_else(shape)?;
    let minute = num(&b[14..16]).ok_or_else(shape)?;
    let second = num(&b[17..19]).ok_or_else(shape)?;
    if hour > 23 {
        return Err(range("hour"));
    }
    if minute > 59 {
        return Err(range("minute"));
    }
    if second > 59 {
        return Err(range("second"));
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(shape());
        }
        for (i, d) in fraction[..digits].iter().enumerate().take(6) {
            micros += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = num(&[*h1, *h2]).ok_or_else(shape)?;
            let minutes = num(&[*m1, *m2]).ok_or_else(shape)?;
            if hours > 23 || minutes > 59 {
                return Err(range("offset"));
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' { -total } else { total }
        }
        _ => return Err(shape()),
    };
    let local_s = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Ok((local_s - offset_minutes * 60) * 1_000_000 + micros)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_dates_and_zulu_name_the_same_instant() {
        let z = parse("2026-12-02T12:40:00Z").unwrap();
        assert_eq!(parse("2026-12-02T20:40:00+08:00"), Ok(z));
        assert_eq!(parse("2026-12-02T07:10:00-05:30"), Ok(z));
        assert_eq!(parse("2026-12-02t12:40:00z"), Ok(z));
        assert_eq!(parse("2026-12-02 12:40:00.5Z"), Ok(z + 500_000));
        assert_eq!(parse("2026-12-02T12:40:00.1234569Z"), Ok(z + 123_456));
        assert_eq!(
            parse("2026-12-02"),
            Ok(z - (12 * 3_600 + 40 * 60) * 1_000_000)
        );
        assert_eq!(parse("1970-01-01"), Ok(0));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000_000));
    }

    #[test]
    fn impossible_fields_are_out_of_range() {
        for (text, field) in [
            ("2026-13-01", "month"),
            ("2026-02-29", "day"),
            ("2026-12-02T24:00:00Z", "hour"),
            ("2026-12-02T12:60:00Z", "minute"),
            ("2026-12-02T12:00:60Z", "second"),
            ("2026-12-02T12:00:00+24:00", "offset"),
        ] {
            assert_eq!(
                parse(text),
                Err(InstantError::Range {
                    text: text.into(),
                    field
                })
            );
        }
        for text in [
            "",
            "yesterday",
            "2026-12-02T12:00Z",
            "2026-12-02T12:00:00",
            "2026-12-02T12:00:00+0800",
            "2026-12-02T12:00:00.Z",
            "+2026-12-02",
        ] {
            assert!(matches!(parse(text), Err(InstantError::Shape(_))), "{text}");
        }
    }

    proptest! {
        #[test]
        fn what_the_agent_writes_reads_back(us in 0i64..253_402_300_800_000_000) {
            prop_assert_eq!(parse(&crate::clock::rfc3339(us)), Ok(us));
        }

        #[test]
        fn any_offset_names_the_same_instant(
            us in 86_400_000_000i64..253_000_000_000_000_000,
            offset_min in -(23 * 60 + 59)..=(23 * 60 + 59i64),
        ) {
            let local = crate::clock::rfc3339(us + offset_min * 60_000_000);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let m = offset_min.abs();
            let text = format!("{}{sign}{:02}:{:02}", local.trim_end_matches('Z'), m / 60, m % 60);
            prop_assert_eq!(parse(&text), Ok(us));
        }

        #[test]
        fn no_text_panics(text in "\\PC{0,40}") {
            let _ = parse(&text);
        }

        #[test]
        fn no_near_miss_panics(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?") {
            let _ = parse(&text);
        }
    }
}
