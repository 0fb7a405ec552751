//! Where the simulator's time comes from.
//!
//! The model needs only "how long has the simulator been running"; making that a trait lets unit
//! tests step time by hand instead of sleeping, so drift and temperature tests are exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Wall time elapsed since the simulator started; the simulated clock is this × `time_scale`.
pub trait Clock: Send {
    /// Monotonic time since the start. Must never go backwards.
    fn elapsed(&self) -> Duration;
}

/// The real clock: [`Instant`] (`CLOCK_MONOTONIC` on Linux), so wall-clock steps do not move the
/// simulated standard.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test keeps one handle
/// and gives the other to the instruments (through their `Setup`).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// A clock several simulated instruments share (one bus, one time base).
pub type SharedClock = Arc<dyn Clock + Sync>;

impl<C: Clock + Sync + ?Sized> Clock for Arc<C> {
    fn elapsed(&self) -> Duration {
        (**self).elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        assert_eq!(b.elapsed(), Duration::ZERO);
        a.advance(Duration::from_millis(1500));
        assert_eq!(b.elapsed(), Duration::from_millis(1500));
        a.advance(Duration::MAX);
        assert_eq!(b.elapsed(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn monotonic_clock_does_not_go_backwards() {
        let c = MonotonicClock::new();
        let first = c.elapsed();
        let second = c.elapsed();
        assert!(second >= first);
    }
}
