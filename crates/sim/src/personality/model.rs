//! What every personality shares: the simulated standard with its noise, time and the reading
//! counter, and a small error queue for the dialects that are not built on the `scpi` crate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Setup;
use crate::clock::SharedClock;
use crate::rng::Xoshiro256;
use crate::{SECONDS_PER_DAY, SimParams, is_idn_byte};

/// Mains frequency for integration times, Hz.
pub(crate) const MAINS_HZ: f64 = 50.0;

/// Most readings one message may ask for; a runaway count cannot exhaust memory.
pub(crate) const MAX_READINGS_PER_MESSAGE: u64 = 100_000;

/// The simulated standard as one instrument sees it.
pub(crate) struct Standard {
    pub(crate) params: SimParams,
    clock: SharedClock,
    rng: Xoshiro256,
    sent: Arc<AtomicU64>,
}

impl Standard {
    pub(crate) fn new(setup: &Setup) -> Self {
        Self {
            params: setup.params.clone(),
            clock: Arc::clone(&setup.clock),
            rng: Xoshiro256::from_seed(setup.params.seed),
            sent: Arc::clone(&setup.sent),
        }
    }

    /// Wall time since the simulator started (not scaled).
    pub(crate) fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Simulated days since the start.
    pub(crate) fn days(&self) -> f64 {
        self.elapsed().as_secs_f64() * self.params.time_scale / SECONDS_PER_DAY
    }

    /// A standard normal deviate.
    pub(crate) fn normal(&mut self) -> f64 {
        self.rng.normal()
    }

    /// One reading of the standard, V: the model plus white noise. The deviate is always drawn
    /// so that a seed names one sequence whatever the noise amplitude.
    pub(crate) fn volts(&mut self) -> f64 {
        let z = self.normal();
        self.params.artefact_value(self.days()) + self.params.noise * z
    }

    /// The standard's reading scaled to another quantity, ppm for ppm: `scale × volts/nominal`.
    /// A 10 kΩ resistor for resistance functions.
    pub(crate) fn scaled(&mut self, scale: f64) -> f64 {
        let v = self.volts();
        if self.params.nominal == 0.0 {
            return scale;
        }
        scale * v / self.params.nominal
    }

    /// Lab temperature now, °C.
    pub(crate) fn lab_temperature(&self) -> f64 {
        self.params.lab_temperature(self.days())
    }

    /// Readings put into replies so far, by every instrument sharing the counter.
    #[cfg(test)]
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records `n` readings put into replies.
    pub(crate) fn counted(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// `seconds` of instrument time when realistic timing is on, zero otherwise.
    pub(crate) fn busy(&self, seconds: f64) -> Duration {
        if !self.params.realistic_timing {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO)
    }
}

/// `s` with the bytes that would break an identity reply (separators, control characters,
/// non-ASCII) masked as `_`.
pub(crate) fn clean_field(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && is_idn_byte(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A bounded first-in first-out error queue of `(code, text)`; when full, the newest entry is
/// replaced by the overflow entry, as SCPI prescribes.
#[derive(Debug, Clone)]
pub(crate) struct ErrorQueue {
    entries: VecDeque<(i32, String)>,
    cap: usize,
    overflow: (i32, &'static str),
}

impl ErrorQueue {
    pub(crate) fn new(cap: usize, overflow: (i32, &'static str)) -> Self {
        Self {
            entries: VecDeque::new(),
            cap: cap.max(1),
            overflow,
        }
    }

    pub(crate) fn push(&mut self, code: i32, text: &str) {
        if self.entries.len() < self.cap {
            self.entries.push_back((code, text.to_owned()));
        } else if let Some(newest) = self.entries.back_mut() {
            *newest = (self.overflow.0, self.overflow.1.to_owned());
        }
    }

    pub(crate) fn pop(&mut self) -> Option<(i32, String)> {
        self.entries.pop_front()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::tests::setup;

    #[test]
    fn error_queue_overflow_replaces_the_newest() {
        let mut q = ErrorQueue::new(2, (-350, "Queue overflow"));
        q.push(1, "a");
        q.push(2, "b");
        q.push(3, "c");
        assert_eq!(q.pop(), Some((1, "a".to_owned())));
        assert_eq!(q.pop(), Some((-350, "Queue overflow".to_owned())));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn busy_only_with_realistic_timing() {
        let (s, _) = setup(true);
        let std = Standard::new(&s);
        assert_eq!(std.busy(2.0), Duration::from_secs(2));
        assert_eq!(std.busy(f64::NAN), Duration::ZERO);
        let (s, _) = setup(false);
        assert_eq!(Standard::new(&s).busy(2.0), Duration::ZERO);
    }

    #[test]
    fn scaled_keeps_ppm() {
        let (mut s, _) = setup(false);
        s.params.offset = 1e-5; // 1 ppm of 10 V
        let mut std = Standard::new(&s);
        assert!((std.scaled(10_000.0) - 10_000.01).abs() < 1e-9);
        assert_eq!(clean_field("a,b;c\u{e9}"), "a_b_c_");
    }
}
