//! Calendar dates as configs write them (`2027-01-10`), for calibration certificates.

/// A date, `YYYY-MM-DD`, read as the UTC day it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CalendarDate {
    /// Days since 1970-01-01 (first, so dates order by it).
    days: i64,
    /// The text as written, which is also its canonical form.
    text: String,
}

impl CalendarDate {
    /// Reads `YYYY-MM-DD` (exactly: four, two and two digits, a real day); `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if b.len() != 10
            || b[4] != b'-'
            || b[7] != b'-'
            || !digits(0..4)
            || !digits(5..7)
            || !digits(8..10)
        {
            return None;
        }
        // humantime checks the day exists (no 2026-02-30) and gives the instant of its midnight.
        let at = humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).ok()?;
        let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        Some(Self {
            days: i64::try_from(secs / 86_400).ok()?,
            text: text.to_owned(),
        })
    }

    /// The date as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first microsecond of the day, UTC.
    pub fn start_utc_us(&self) -> i64 {
        self.days.saturating_mul(86_400_000_000)
    }

    /// The first microsecond of the next day: a calibration due on this date is still valid
    /// through the whole of it.
    pub fn end_utc_us(&self) -> i64 {
        self.days.saturating_add(1).saturating_mul(86_400_000_000)
    }
}

impl std::fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_read_strictly() {
        let d = CalendarDate::parse("2027-01-10").unwrap();
        assert_eq!(d.as_str(), "2027-01-10");
        assert_eq!(d.start_utc_us(), 1_799_539_200_000_000);
        assert_eq!(d.end_utc_us() - d.start_utc_us(), 86_400_000_000);
        assert!(CalendarDate::parse("2026-01-10") < Some(d));
        for bad in [
            "2027-1-10",
            "2027-02-30",
            "27-01-10",
            "2027/01/10",
            "2027-01-10 ",
            "",
            "２０２７-01-10",
        ] {
            assert_eq!(CalendarDate::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,14}") {
            let _ = CalendarDate::parse(&text);
        }

        #[test]
        fn valid_days_round_trip(y in 1970i32..9999, m in 1u32..=12, d in 1u32..=28) {
            let text = format!("{y:04}-{m:02}-{d:02}");
            let date = CalendarDate::parse(&text).unwrap();
            prop_assert_eq!(date.as_str(), text.as_str());
        }
    }
}
