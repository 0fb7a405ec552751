//! The custody state machine: the standard's state folded from its custody events, and which
//! actions each state allows.
//!
//! expected → received → stabilising → official window → dispatched. `received` lasts until the
//! arrival inspection is recorded (or at once into `stabilising` when the protocol has no
//! checklist); the gate's opening (a `gate_opened` event) starts the official window. Incidents
//! and notes are possible in any state. Damage — the standard received `damaged`, or a `damage`
//! or `dropped` incident — blocks official runs until a pilot decision is recorded.

use tsagent_bundle::event::Event;

use crate::store::EventRow;

use super::error::CustodyError;
pub use super::phase::State;

/// A custody action, checked against the state before it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Receipt.
    Receive,
    /// The arrival inspection.
    Inspect,
    /// An incident (`blocks`: damage or a drop, which need a pilot decision).
    Incident {
        /// Whether it blocks official runs until a decision.
        blocks: bool,
    },
    /// A pilot decision on damage.
    Decision,
    /// A note.
    Note,
    /// Dispatch.
    Dispatch,
    /// The gate's opening.
    OpenGate,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Self::Receive => "receive the standard",
            Self::Inspect => "record the inspection",
            Self::Incident { .. } => "record the incident",
            Self::Decision => "record the decision",
            Self::Note => "record the note",
            Self::Dispatch => "dispatch the standard",
            Self::OpenGate => "open the stabilisation gate",
        }
    }
}

/// Incident kinds that block official runs until a pilot decision.
pub const BLOCKING_INCIDENTS: [&str; 2] = ["damage", "dropped"];

/// The standard's custody, as its events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custody {
    /// The state.
    pub state: State,
    /// When it was received (UTC µs).
    pub received_utc_us: Option<i64>,
    /// Whether the arrival inspection is recorded.
    pub inspected: bool,
    /// Damage awaits a pilot decision: official runs are blocked.
    pub damage_pending: bool,
    /// When the gate opened (UTC µs).
    pub gate_opened_utc_us: Option<i64>,
    /// When it was dispatched (UTC µs).
    pub dispatched_utc_us: Option<i64>,
}

impl Custody {
    /// Folds the custody events (in order). `needs_inspection`: the config has a checklist, so
    /// `received` lasts until an inspection is recorded. Lines of kinds this version does not
    /// know, or whose details do not read, change nothing.
    pub fn from_events(events: &[EventRow], needs_inspection: bool) -> Self {
        let mut c = Custody {
            state: State::Expected,
            received_utc_us: None,
            inspected: false,
            damage_pending: false,
            gate_opened_utc_us: None,
            dispatched_utc_us: None,
        };
        for row in events {
            let Ok(event) = Event::from_parts(&row.kind, &row.detail) else {
                continue;
            };
            match event {
                Event::CustodyReceived(r) => {
                    c.received_utc_us.get_or_insert(row.utc_us);
                    c.damage_pending |= r.condition == "damaged";
                }
                Event::CustodyInspected(_) => c.inspected = true,
                Event::CustodyIncident(i) => {
                    c.damage_pending |= BLOCKING_INCIDENTS.contains(&i.incident.as_str());
                }
                Event::CustodyDecision(_) => c.damage_pending = false,
                Event::GateOpened(_) => {
                    c.gate_opened_utc_us.get_or_insert(row.utc_us);
                }
                Event::CustodyDispatched(_) => {
                    c.dispatched_utc_us.get_or_insert(row.utc_us);
                }
                _ => {}
            }
        }
        c.state = if c.dispatched_utc_us.is_some() {
            State::Dispatched
        } else if c.received_utc_us.is_none() {
            State::Expected
        } else if c.gate_opened_utc_us.is_some() {
            State::OfficialWindow
        } else if c.inspected || !needs_inspection {
            State::Stabilising
        } else {
            State::Received
        };
        c
    }

    /// Whether `action` may be recorded now; the typed refusal if not.
    pub fn check(&self, action: Action) -> Result<(), CustodyError> {
        use State::*;
        let ok = match action {
            Action::Receive => self.state == Expected,
            Action::Inspect | Action::Dispatch => {
                matches!(self.state, Received | Stabilising | OfficialWindow)
            }
            Action::Incident { .. } | Action::Note => true,
            Action::Decision => {
                if !self.damage_pending {
                    return Err(CustodyError::NoDecisionPending);
                }
                true
            }
            Action::OpenGate => self.state == Stabilising && !self.damage_pending,
        };
        if ok {
            Ok(())
        } else {
            Err(CustodyError::Transition {
                action: action.describe(),
                state: self.state,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsagent_bundle::event::{
        CustodyDecision, CustodyDispatched, CustodyIncident, CustodyInspected, CustodyReceived,
        GateOpened,
    };

    fn row(id: u64, event: Event) -> EventRow {
        EventRow {
            id,
            utc_us: id as i64 * 1_000_000,
            run_id: None,
            instrument: None,
            kind: event.kind().to_owned(),
            detail: event.detail(),
        }
    }

    fn received(condition: &str) -> Event {
        Event::CustodyReceived(CustodyReceived {
            operator: "li".into(),
            condition: condition.into(),
            seals: "intact".into(),
            note: None,
            photos: Vec::new(),
        })
    }

    fn inspected() -> Event {
        Event::CustodyInspected(CustodyInspected {
            operator: "li".into(),
            items: Vec::new(),
        })
    }

    fn gate() -> Event {
        Event::GateOpened(GateOpened {
            received_utc: "x".into(),
            min_s: 0,
            elapsed_s: 0,
            drift: None,
        })
    }

    fn dispatched() -> Event {
        Event::CustodyDispatched(CustodyDispatched {
            operator: "li".into(),
            carrier: "c".into(),
            tracking: "t".into(),
            condition: "ok".into(),
        })
    }

    fn fold(events: Vec<Event>) -> Custody {
        let rows: Vec<EventRow> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| row(i as u64 + 1, e))
            .collect();
        Custody::from_events(&rows, true)
    }

    #[test]
    fn states_follow_the_events() {
        assert_eq!(fold(vec![]).state, State::Expected);
        let r = fold(vec![received("ok")]);
        assert_eq!(
            (r.state, r.received_utc_us),
            (State::Received, Some(1_000_000))
        );
        assert_eq!(
            Custody::from_events(&[row(1, received("ok"))], false).state,
            State::Stabilising,
            "no checklist: stabilising from receipt"
        );
        assert_eq!(
            fold(vec![received("ok"), inspected()]).state,
            State::Stabilising
        );
        let open = fold(vec![received("ok"), inspected(), gate()]);
        assert_eq!(open.state, State::OfficialWindow);
        assert_eq!(
            fold(vec![received("ok"), inspected(), gate(), dispatched()]).state,
            State::Dispatched
        );
    }

    #[test]
    fn transitions_are_checked() {
        let expected = fold(vec![]);
        assert!(expected.check(Action::Receive).is_ok());
        for action in [Action::Inspect, Action::Dispatch, Action::OpenGate] {
            let err = expected.check(action).unwrap_err();
            assert!(
                matches!(
                    err,
                    CustodyError::Transition {
                        state: State::Expected,
                        ..
                    }
                ),
                "{err}"
            );
        }
        assert!(expected.check(Action::Note).is_ok());
        assert!(expected.check(Action::Incident { blocks: true }).is_ok());

        let received = fold(vec![received("ok")]);
        let err = received.check(Action::Receive).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot receive the standard: the standard has already been received"
        );
        assert!(
            received.check(Action::OpenGate).is_err(),
            "inspection first"
        );
        assert!(received.check(Action::Dispatch).is_ok());

        let gone = fold(vec![received_ok(), inspected(), dispatched()]);
        for action in [
            Action::Receive,
            Action::Inspect,
            Action::Dispatch,
            Action::OpenGate,
        ] {
            let err = gone.check(action).unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("the standard has been dispatched"),
                "{err}"
            );
        }
        assert!(
            gone.check(Action::Incident { blocks: false }).is_ok(),
            "any state"
        );
        assert!(gone.check(Action::Note).is_ok());
    }

    fn received_ok() -> Event {
        received("ok")
    }

    #[test]
    fn damage_blocks_until_a_decision() {
        let damaged = fold(vec![received("damaged"), inspected()]);
        assert!(damaged.damage_pending);
        assert!(damaged.check(Action::OpenGate).is_err());
        assert!(fold(vec![received("ok")]).check(Action::Decision).is_err());
        let decided = fold(vec![
            received("damaged"),
            inspected(),
            Event::CustodyDecision(CustodyDecision {
                operator: "li".into(),
                note: "pilot: proceed".into(),
            }),
        ]);
        assert!(!decided.damage_pending);
        assert!(decided.check(Action::OpenGate).is_ok());
        // A drop in the official window blocks again.
        let dropped = fold(vec![
            received("ok"),
            inspected(),
            gate(),
            Event::CustodyIncident(CustodyIncident {
                operator: "li".into(),
                incident: "dropped".into(),
                note: "fell off the bench".into(),
            }),
        ]);
        assert_eq!(dropped.state, State::OfficialWindow);
        assert!(dropped.damage_pending);
        let power = fold(vec![
            received("ok"),
            Event::CustodyIncident(CustodyIncident {
                operator: "li".into(),
                incident: "power_loss".into(),
                note: "".into(),
            }),
        ]);
        assert!(!power.damage_pending);
    }
}
