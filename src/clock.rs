//! Time sources. The wall clock can step (NTP, an operator); the monotonic clock cannot, but is only
//! comparable within one boot — so every reading carries both, plus the boot id that scopes the latter.

use std::time::{SystemTime, UNIX_EPOCH};

/// One instant as both clocks saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Wall-clock time, microseconds since the Unix epoch (UTC). Negative before 1970.
    pub utc_us: i64,
    /// `CLOCK_MONOTONIC`, nanoseconds.
    pub mono_ns: u64,
}

/// Where time comes from. Injected so tests can fix it; the agent uses [`SystemClock`].
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
    /// Identifies the boot that `mono_ns` values belong to.
    fn boot_id(&self) -> &str;
}

/// The operating system's clocks.
#[derive(Debug, Clone)]
pub struct SystemClock {
    boot_id: String,
}

impl SystemClock {
    /// Reads the boot id once; it does not change while the process lives.
    pub fn new() -> Self {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self { boot_id }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp {
            utc_us: utc_us(SystemTime::now()),
            mono_ns: monotonic_ns(),
        }
    }

    fn boot_id(&self) -> &str {
        &self.boot_id
    }
}

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
    let time = UNIX_EPOCH.checked_add(std::time::Duration::from_micros(us))?;
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

fn monotonic_ns() -> u64 {
    // clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux for a valid clock id; 0 marks the
    // impossible case instead of panicking.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|ts| {
            u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(ts.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b.mono_ns >= a.mono_ns);
        assert!(
            a.utc_us > 1_600_000_000_000_000,
            "wall clock looks unset: {}",
            a.utc_us
        );
    }

    #[test]
    fn rfc3339_round_trip() {
        let us = 1_795_708_476_123_456;
        let text = rfc3339(us);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_rfc3339(&text).unwrap(), us);
    }
}
