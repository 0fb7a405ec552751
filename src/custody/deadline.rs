//! The pilot's circulation timetable (`[artefact.deadlines]`) against the custody record: which
//! deadline is still open, and whether it is ahead, due (within `[alerts] deadline_notice`) or
//! past. Pure, on an injected time, so the daemon's alerts, `custody status` and `GET
//! /v1/status` all say the same.
//!
//! A deadline is open while its action is not recorded: `receive_by` until a receipt, whatever its
//! date, `dispatch_by` until a dispatch. A late receipt closes its deadline too: the lateness is in
//! the timeline for the pilot to see, and alerting about it further would help no one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::config::{Deadline, Deadlines};

use super::state::Custody;

/// What a deadline asks to be recorded by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineAction {
    /// The standard's receipt (`receive_by`).
    Receive,
    /// The standard's dispatch to the next lab (`dispatch_by`).
    Dispatch,
}

impl DeadlineAction {
    /// The config key that sets it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Receive => "receive_by",
            Self::Dispatch => "dispatch_by",
        }
    }

    /// What it asks for, as a past participle: "received", "dispatched".
    fn done(self) -> &'static str {
        match self {
            Self::Receive => "received",
            Self::Dispatch => "dispatched",
        }
    }

    /// The record that would meet it.
    fn record(self) -> &'static str {
        match self {
            Self::Receive => "receipt",
            Self::Dispatch => "dispatch",
        }
    }
}

/// How near an open deadline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Further off than the notice.
    Ahead,
    /// Within the notice (`[alerts] deadline_notice`), not yet past.
    Due,
    /// Past, and its action still not recorded.
    Past,
}

/// A deadline whose action is not recorded yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenDeadline {
    /// What it asks for.
    pub action: DeadlineAction,
    /// As the config writes it, e.g. `2026-12-10`.
    pub by: String,
    /// The instant it falls at, RFC 3339 (the end of the day for a date).
    pub utc: String,
    /// `ahead`, `due` or `past`.
    pub phase: Phase,
    /// Seconds until it falls; negative once past.
    pub seconds_left: i64,
}

impl OpenDeadline {
    fn new(action: DeadlineAction, deadline: &Deadline, now_us: i64, notice: Duration) -> Self {
        let left_us = deadline.utc_us.saturating_sub(now_us);
        let notice_us = i64::try_from(notice.as_micros()).unwrap_or(i64::MAX);
        let phase = if left_us <= 0 {
            Phase::Past
        } else if left_us <= notice_us {
            Phase::Due
        } else {
            Phase::Ahead
        };
        OpenDeadline {
            action,
            by: deadline.text.clone(),
            // Whole seconds, as configs write deadlines: no `.000000` for people to read past.
            utc: rfc3339(deadline.utc_us).replace(".000000Z", "Z"),
            phase,
            // Rounded towards the deadline, so "past" never shows as 0 s left.
            seconds_left: left_us.div_euclid(1_000_000),
        }
    }

    /// One line for people: `dispatch by 2027-01-20 (2027-01-21T00:00:00Z), in 3days 2h`.
    pub fn describe(&self) -> String {
        format!(
            "{} by {} ({}), {}",
            self.action.record(),
            self.by,
            self.utc,
            self.distance()
        )
    }

    /// The alert's message for it.
    pub fn alert_message(&self) -> String {
        let be = if self.phase == Phase::Past {
            "was"
        } else {
            "is"
        };
        format!(
            "the standard {be} to be {} by {} ({}), {}, and no {} is recorded",
            self.action.done(),
            self.by,
            self.utc,
            self.distance(),
            self.action.record()
        )
    }

    /// `in 1day 3h` or `5h ago`, to the minute.
    fn distance(&self) -> String {
        let s = self.seconds_left.unsigned_abs();
        let shown = if s >= 60 {
            humantime::format_duration(Duration::from_secs(s - s % 60)).to_string()
        } else {
            format!("{s}s")
        };
        if self.seconds_left > 0 {
            format!("in {shown}")
        } else {
            format!("{shown} ago")
        }
    }
}

/// The deadlines of `deadlines` whose action `custody` has not recorded, earliest first.
pub fn open(
    deadlines: &Deadlines,
    custody: &Custody,
    now_us: i64,
    notice: Duration,
) -> Vec<OpenDeadline> {
    let mut out: Vec<(i64, OpenDeadline)> = [
        (
            DeadlineAction::Receive,
            &deadlines.receive_by,
            custody.received_utc_us,
        ),
        (
            DeadlineAction::Dispatch,
            &deadlines.dispatch_by,
            custody.dispatched_utc_us,
        ),
    ]
    .into_iter()
    .filter_map(|(action, deadline, done)| match (deadline, done) {
        (Some(d), None) => Some((d.utc_us, OpenDeadline::new(action, d, now_us, notice))),
        _ => None,
    })
    .collect();
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, d)| d).collect()
}

/// The next open deadline, if any.
pub fn next(
    deadlines: &Deadlines,
    custody: &Custody,
    now_us: i64,
    notice: Duration,
) -> Option<OpenDeadline> {
    open(deadlines, custody, now_us, notice).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::State;

    const H: i64 = 3_600_000_000;

    fn custody(received: Option<i64>, dispatched: Option<i64>) -> Custody {
        Custody {
            state: State::Expected,
            received_utc_us: received,
            inspected: false,
            damage_pending: false,
            gate_opened_utc_us: None,
            dispatched_utc_us: dispatched,
        }
    }

    fn timetable(receive: i64, dispatch: i64) -> Deadlines {
        Deadlines {
            receive_by: Some(Deadline {
                text: "r".into(),
                utc_us: receive,
            }),
            dispatch_by: Some(Deadline {
                text: "d".into(),
                utc_us: dispatch,
            }),
        }
    }

    const NOTICE: Duration = Duration::from_secs(48 * 3600);

    #[test]
    fn a_deadline_is_ahead_then_due_within_the_notice_then_past() {
        let t = timetable(100 * H, 1000 * H);
        let c = custody(None, None);
        let phase = |now| next(&t, &c, now, NOTICE).map(|d| (d.action, d.phase));
        assert_eq!(phase(0), Some((DeadlineAction::Receive, Phase::Ahead)));
        assert_eq!(
            phase(52 * H - 1),
            Some((DeadlineAction::Receive, Phase::Ahead))
        );
        assert_eq!(phase(52 * H), Some((DeadlineAction::Receive, Phase::Due)));
        assert_eq!(
            phase(100 * H - 1),
            Some((DeadlineAction::Receive, Phase::Due))
        );
        assert_eq!(phase(100 * H), Some((DeadlineAction::Receive, Phase::Past)));
        let past = next(&t, &c, 105 * H + 30_000_000, NOTICE).unwrap();
        assert_eq!(past.seconds_left, -5 * 3600 - 30);
        assert_eq!(
            past.alert_message(),
            "the standard was to be received by r (1970-01-05T04:00:00Z), 5h ago, and no receipt is recorded"
        );
        let due = next(&t, &c, 73 * H, NOTICE).unwrap();
        assert_eq!(
            due.describe(),
            "receipt by r (1970-01-05T04:00:00Z), in 1day 3h"
        );
        assert!(
            due.alert_message()
                .starts_with("the standard is to be received by r")
        );
    }

    #[test]
    fn a_recorded_action_closes_its_deadline_even_late() {
        let t = timetable(100 * H, 1000 * H);
        let received_late = custody(Some(150 * H), None);
        let open_now = open(&t, &received_late, 200 * H, NOTICE);
        assert_eq!(open_now.len(), 1);
        assert_eq!(open_now[0].action, DeadlineAction::Dispatch);
        assert_eq!(open_now[0].phase, Phase::Ahead);
        assert!(open(&t, &custody(Some(1), Some(2)), 2000 * H, NOTICE).is_empty());
        // Dispatched without a recorded receipt (a log begun late): only the receipt is open.
        let open_now = open(&t, &custody(None, Some(2)), 2000 * H, NOTICE);
        assert_eq!(open_now.len(), 1);
        assert_eq!(open_now[0].action, DeadlineAction::Receive);
    }

    #[test]
    fn no_timetable_no_deadline_and_the_earliest_comes_first() {
        let c = custody(None, None);
        assert_eq!(next(&Deadlines::default(), &c, 0, NOTICE), None);
        let only_dispatch = Deadlines {
            receive_by: None,
            dispatch_by: Some(Deadline {
                text: "d".into(),
                utc_us: H,
            }),
        };
        assert_eq!(
            next(&only_dispatch, &c, 0, NOTICE).map(|d| d.action),
            Some(DeadlineAction::Dispatch)
        );
        let both = open(&timetable(H, 2 * H), &c, 0, NOTICE);
        let actions: Vec<_> = both.iter().map(|d| d.action).collect();
        assert_eq!(actions, [DeadlineAction::Receive, DeadlineAction::Dispatch]);
    }

    #[test]
    fn a_zero_notice_goes_from_ahead_to_past() {
        let t = timetable(H, 2 * H);
        let c = custody(None, None);
        let phase = |now| next(&t, &c, now, Duration::ZERO).map(|d| d.phase);
        assert_eq!(phase(H - 1), Some(Phase::Ahead));
        assert_eq!(phase(H), Some(Phase::Past));
    }
}
