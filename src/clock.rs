//! Time sources. The wall clock can step (NTP, an operator); the monotonic clock cannot, but is only
//! comparable within one boot — so every reading carries both, plus the boot id that scopes the latter.

use std::time::SystemTime;

pub use tsagent_bundle::time::{format_utc_us, parse_rfc3339, rfc3339, utc_us};

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
}
