//! The daemon's slots on the wall clock: a sequence with `every = "30m"` runs at :00 and :30 UTC,
//! at whole multiples of its period since the Unix epoch, shifted by its `at` offset. The
//! arithmetic is pure (instants in UTC microseconds), so it is tested without waiting; the daemon
//! turns the next slot into a monotonic timer.

use crate::config::Sequence;

/// One scheduled sequence and its next slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Index of the sequence in the config.
    sequence: usize,
    every_us: i64,
    at_us: i64,
    /// The next slot not yet taken, UTC microseconds.
    next_us: i64,
}

/// Consecutive slots of one sequence that passed without their run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The first of them, UTC microseconds.
    pub first_us: i64,
    /// How many (one period apart).
    pub slots: u64,
}

/// A slot to run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index of the sequence in the config.
    pub sequence: usize,
    /// The slot, UTC microseconds.
    pub slot_us: i64,
    /// The sequence's earlier slots passed over for this one, if any.
    pub missed: Option<Missed>,
}

/// The slots of every scheduled sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
}

/// The latest slot `at + k·every` (k whole) at or before `now_us`.
pub fn slot_at_or_before(now_us: i64, every_us: i64, at_us: i64) -> i64 {
    let every = i128::from(every_us.max(1));
    let at = i128::from(at_us);
    let slot = (i128::from(now_us) - at).div_euclid(every) * every + at;
    clamp_i64(slot)
}

/// The first slot `at + k·every` (k whole) at or after `now_us`.
pub fn slot_at_or_after(now_us: i64, every_us: i64, at_us: i64) -> i64 {
    let before = slot_at_or_before(now_us, every_us, at_us);
    if before < now_us {
        before.saturating_add(every_us.max(1))
    } else {
        before
    }
}

fn clamp_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Schedule {
    /// The sequences that have `every`, each starting at its first slot at or after `now_us`
    /// (never at once merely because the agent started).
    pub fn new(sequences: &[Sequence], now_us: i64) -> Self {
        let entries = sequences
            .iter()
            .enumerate()
            .filter_map(|(sequence, s)| {
                let every_us = micros(s.every?).max(1);
                let at_us = s.at.map_or(0, micros);
                Some(Entry {
                    sequence,
                    every_us,
                    at_us,
                    next_us: slot_at_or_after(now_us, every_us, at_us),
                })
            })
            .collect();
        Self { entries }
    }

    /// Whether no sequence is scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each scheduled sequence with its next slot, in config order.
    pub fn slots(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.entries.iter().map(|e| (e.sequence, e.next_us))
    }

    /// The period of a scheduled sequence, microseconds.
    pub fn every_us(&self, sequence: usize) -> Option<i64> {
        self.entry(sequence).map(|e| e.every_us)
    }

    /// The slot due first, as (sequence, slot); ties go to the sequence listed first.
    pub fn next(&self) -> Option<(usize, i64)> {
        self.entries
            .iter()
            .min_by_key(|e| (e.next_us, e.sequence))
            .map(|e| (e.sequence, e.next_us))
    }

    /// Takes `sequence`'s pending slot at `now_us`: the run is for the latest of its slots that
    /// have come (the pending one itself if the wall clock is not there yet), and the slots
    /// before that one were missed — a run was still going, or the wall clock moved past them.
    /// The next slot is the one after; if the wall clock stepped back so that it lies more than a
    /// period ahead, the schedule is aligned again to the first slot from now.
    pub fn take(&mut self, sequence: usize, now_us: i64) -> Option<Due> {
        let entry = self.entries.iter_mut().find(|e| e.sequence == sequence)?;
        let pending = entry.next_us;
        let latest = slot_at_or_before(now_us, entry.every_us, entry.at_us).max(pending);
        let passed = (i128::from(latest) - i128::from(pending)) / i128::from(entry.every_us);
        let missed = (passed > 0).then(|| Missed {
            first_us: pending,
            slots: u64::try_from(passed).unwrap_or(u64::MAX),
        });
        let mut next = latest.saturating_add(entry.every_us);
        if i128::from(next) - i128::from(now_us) > i128::from(entry.every_us) {
            next = slot_at_or_after(now_us, entry.every_us, entry.at_us);
        }
        entry.next_us = next;
        Some(Due {
            sequence,
            slot_us: latest,
            missed,
        })
    }

    fn entry(&self, sequence: usize) -> Option<&Entry> {
        self.entries.iter().find(|e| e.sequence == sequence)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::clock::parse_rfc3339;

    fn us(text: &str) -> i64 {
        parse_rfc3339(text).unwrap()
    }

    fn sequence(name: &str, every: &str, at: Option<&str>) -> Sequence {
        Sequence {
            name: name.to_owned(),
            every: Some(humantime::parse_duration(every).unwrap()),
            at: at.map(|a| humantime::parse_duration(a).unwrap()),
            official: false,
            steps: Vec::new(),
        }
    }

    const MIN: i64 = 60_000_000;

    #[test]
    fn thirty_minutes_run_on_the_hour_and_half_hour_utc() {
        let cases = [
            ("2026-12-02T10:07:13.5Z", "2026-12-02T10:30:00Z"),
            ("2026-12-02T10:30:00Z", "2026-12-02T10:30:00Z"),
            ("2026-12-02T10:30:00.000001Z", "2026-12-02T11:00:00Z"),
            ("2026-12-02T23:59:59Z", "2026-12-03T00:00:00Z"),
        ];
        for (now, first) in cases {
            let s = Schedule::new(&[sequence("s", "30m", None)], us(now));
            assert_eq!(s.next(), Some((0, us(first))), "{now}");
        }
    }

    #[test]
    fn an_offset_shifts_the_slots() {
        let s = Schedule::new(
            &[sequence("s", "1h", Some("15m"))],
            us("2026-12-02T10:20:00Z"),
        );
        assert_eq!(s.next(), Some((0, us("2026-12-02T11:15:00Z"))));
        let s = Schedule::new(
            &[sequence("s", "1h", Some("15m"))],
            us("2026-12-02T10:14:59Z"),
        );
        assert_eq!(s.next(), Some((0, us("2026-12-02T10:15:00Z"))));
        // A period that does not divide a day counts from the epoch all the same.
        let s = Schedule::new(&[sequence("s", "7m", None)], us("1970-01-01T00:20:00Z"));
        assert_eq!(s.next(), Some((0, us("1970-01-01T00:21:00Z"))));
    }

    #[test]
    fn unscheduled_sequences_are_left_out() {
        let mut manual = sequence("m", "1h", None);
        manual.every = None;
        let s = Schedule::new(&[manual, sequence("s", "1h", None)], 0);
        assert_eq!(s.slots().collect::<Vec<_>>(), [(1, 0)]);
        assert!(Schedule::new(&[], 0).is_empty());
    }

    #[test]
    fn the_earliest_slot_comes_first_and_ties_go_to_the_first_listed() {
        let now = us("2026-12-02T10:05:00Z");
        let mut s = Schedule::new(
            &[sequence("a", "1h", None), sequence("b", "30m", None)],
            now,
        );
        assert_eq!(s.next(), Some((1, us("2026-12-02T10:30:00Z"))));
        s.take(1, us("2026-12-02T10:30:00Z")).unwrap();
        // 11:00 is a slot of both.
        assert_eq!(s.next(), Some((0, us("2026-12-02T11:00:00Z"))));
        s.take(0, us("2026-12-02T11:00:00Z")).unwrap();
        assert_eq!(s.next(), Some((1, us("2026-12-02T11:00:00Z"))));
    }

    #[test]
    fn a_slot_taken_on_time_leads_to_the_next_one() {
        let mut s = Schedule::new(&[sequence("s", "30m", None)], us("2026-12-02T10:07:00Z"));
        let due = s.take(0, us("2026-12-02T10:30:00.002Z")).unwrap();
        assert_eq!(
            due,
            Due {
                sequence: 0,
                slot_us: us("2026-12-02T10:30:00Z"),
                missed: None
            }
        );
        assert_eq!(s.next(), Some((0, us("2026-12-02T11:00:00Z"))));
    }

    #[test]
    fn slots_passed_during_a_long_run_are_missed_and_the_latest_runs_late() {
        let mut s = Schedule::new(
            &[
                sequence("a", "30m", None),
                sequence("b", "30m", Some("10m")),
            ],
            us("2026-12-02T09:55:00Z"),
        );
        // `a` runs from 10:00 to 11:25: `b`'s 10:10, 10:40 and 11:10 slots come meanwhile.
        assert_eq!(s.take(0, us("2026-12-02T10:00:00Z")).unwrap().missed, None);
        let due = s.take(1, us("2026-12-02T11:25:00Z")).unwrap();
        assert_eq!(due.slot_us, us("2026-12-02T11:10:00Z"));
        assert_eq!(
            due.missed,
            Some(Missed {
                first_us: us("2026-12-02T10:10:00Z"),
                slots: 2
            })
        );
        assert_eq!(s.next(), Some((0, us("2026-12-02T10:30:00Z"))));
        // `a` itself: its 10:30 and 11:00 slots passed too.
        let due = s.take(0, us("2026-12-02T11:26:00Z")).unwrap();
        assert_eq!(due.slot_us, us("2026-12-02T11:00:00Z"));
        assert_eq!(due.missed.map(|m| m.slots), Some(1));
        assert_eq!(s.next(), Some((0, us("2026-12-02T11:30:00Z"))));
    }

    #[test]
    fn a_wall_clock_stepped_back_realigns_within_a_period() {
        let mut s = Schedule::new(&[sequence("s", "30m", None)], us("2026-12-02T10:07:00Z"));
        // The timer fired for 10:30, but the wall clock was stepped back an hour and 7 minutes
        // meanwhile: the run takes the pending slot, and the next is the first from now.
        let due = s.take(0, us("2026-12-02T09:23:00Z")).unwrap();
        assert_eq!(due.slot_us, us("2026-12-02T10:30:00Z"));
        assert_eq!(due.missed, None);
        assert_eq!(s.next(), Some((0, us("2026-12-02T09:30:00Z"))));
    }

    proptest! {
        #[test]
        fn the_first_slot_is_aligned_and_within_a_period(
            now in -4_000_000_000_000_000i64..4_000_000_000_000_000,
            every_s in 1u64..400 * 86_400,
            at_frac in 0.0f64..1.0,
        ) {
            let every = Duration::from_secs(every_s);
            let at = Duration::from_secs_f64(every.as_secs_f64() * at_frac).min(every - Duration::from_micros(1));
            let (every_us, at_us) = (micros(every), micros(at));
            let slot = slot_at_or_after(now, every_us, at_us);
            prop_assert!(slot >= now);
            prop_assert!(slot - now < every_us);
            prop_assert_eq!((slot - at_us).rem_euclid(every_us), 0);
            let before = slot_at_or_before(now, every_us, at_us);
            prop_assert!(before <= now && now - before < every_us);
            prop_assert_eq!((before - at_us).rem_euclid(every_us), 0);
        }

        #[test]
        fn taking_never_panics_and_counts_every_slot(
            start in -1_000_000_000_000_000i64..1_000_000_000_000_000,
            later in prop::collection::vec(-10_000i64 * MIN..10_000 * MIN, 1..20),
            every_m in 1i64..600,
        ) {
            let every_us = every_m * MIN;
            let mut s = Schedule::new(&[sequence("s", &format!("{every_m}m"), None)], start);
            for step in later {
                let (_, pending) = s.next().unwrap();
                let now = pending.saturating_add(step);
                let due = s.take(0, now).unwrap();
                let missed = due.missed.map_or(0, |m| m.slots);
                prop_assert_eq!(i128::from(due.slot_us - pending), i128::from(missed) * i128::from(every_us));
                let (_, next) = s.next().unwrap();
                prop_assert!(next > due.slot_us || next - now <= every_us);
                prop_assert!(next - now <= every_us);
                prop_assert_eq!(next.rem_euclid(every_us), 0);
            }
        }
    }
}
