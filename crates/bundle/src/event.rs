//! What the agent records besides readings: the `kind` and `detail` of each line of
//! `events.jsonl`, typed. The pilot parses these, so they are part of the format, not of the agent.
//!
//! A line carries its kind as text and its detail as a JSON object ([`crate::manifest::EventLine`]),
//! so a verifier accepts kinds a newer agent adds; [`Event::from_parts`] reads the ones this
//! version knows.

use serde::{Deserialize, Serialize};

/// One thing that happened, with its details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Event {
    /// One exchange with an instrument other than a reading's own (identify, configure, error
    /// queries, failed queries).
    Exchange(Exchange),
    /// An instrument answered its identity query; its identity row was recorded.
    Identified(Identified),
    /// An error the instrument itself reported, in its own words.
    InstrumentError(InstrumentError),
    /// An instrument was lost; nothing is measured on it until it returns.
    InstrumentOffline(InstrumentOffline),
    /// An offline instrument came back, the same unit.
    InstrumentOnline(InstrumentOnline),
    /// Another unit answered where a known one was expected; it is not measured.
    InstrumentRefused(InstrumentRefused),
    /// An operation's reply values, for operations whose values are not readings.
    OperationResult(OperationResult),
    /// A run began: which sequence (and its hash), who started it and how.
    RunStarted(RunStarted),
    /// A run ended, however it ended: completed, failed, stopped or interrupted, with the range
    /// of readings it took and why it ended so. Every run has one, once it is over.
    RunEnded(RunEnded),
    /// A run failed; its readings so far are kept. Written by agents before `run_ended` existed
    /// (which now carries the failure); still read, so their bundles keep verifying.
    RunFailed(RunFailed),
    /// A run was found cut short by a crash or kill. Written by agents before `run_ended` existed
    /// (which now carries `interrupted`); still read, so their bundles keep verifying.
    RunInterrupted(RunInterrupted),
    /// A scheduled slot passed without its run, because another run was still going.
    SlotMissed(SlotMissed),
    /// The lab's signing key was replaced (`--new-key`): bundles from here on are signed by the new
    /// key, which the pilot's `allowed_signers` must list.
    KeyRotated(KeyRotated),
    /// A process that may not steer the daemon connected to its control socket and was refused.
    ControlRefused(ControlRefused),
    /// The lab's alert command was run (or could not be).
    AlertSent(AlertSent),
}

/// A run's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStarted {
    /// The sequence's name in the config.
    pub sequence: String,
    /// SHA-256 (hex) of the sequence's definition, so the pilot sees when a lab's method changed.
    pub sequence_sha256: String,
    /// Who started it, when the technician said (`measure --operator`).
    pub operator: Option<String>,
    /// What started it: `manual`, `schedule` or `demo`.
    pub trigger: String,
}

/// A run's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEnded {
    /// `completed`, `failed`, `stopped` or `interrupted`.
    pub status: String,
    /// Readings the run committed.
    pub readings: u64,
    /// Sequence number of its first reading, if it took any.
    pub first_reading: Option<u64>,
    /// Sequence number of its last reading, if it took any.
    pub last_reading: Option<u64>,
    /// Why it ended so: the failure with its causes, the stop or the interruption; `None` for a
    /// completed run.
    pub reason: Option<String>,
}

/// An exchange with an instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// The command as sent, without its terminator.
    pub command: String,
    /// The reply without its terminator; `None` for a write or when no reply came.
    pub reply: Option<String>,
    /// When the command was about to be sent, RFC 3339.
    pub started_utc: String,
    /// How long the exchange took.
    pub duration_us: u64,
    /// The failure, with its causes, when the exchange did not complete.
    pub error: Option<String>,
}

/// An instrument's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identified {
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware revision.
    pub firmware: String,
    /// The driver profile that spoke to it.
    pub driver: String,
}

/// An error from an instrument's error queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentError {
    /// The instrument's code (SCPI's, or the model's own numbering).
    pub code: i64,
    /// Its message.
    pub message: String,
}

/// An instrument going offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentOffline {
    /// The instrument's name in the config.
    pub instrument: String,
    /// Why, with causes.
    pub reason: String,
}

/// An instrument back online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentOnline {
    /// The instrument's name in the config.
    pub instrument: String,
    /// When the outage began, RFC 3339.
    pub offline_since_utc: String,
    /// How long it lasted, seconds.
    pub offline_s: f64,
    /// Why it went offline.
    pub reason: String,
}

/// A unit refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentRefused {
    /// The instrument's name in the config.
    pub instrument: String,
    /// The unit expected.
    pub expected: String,
    /// The unit that answered.
    pub found: String,
}

/// The values an operation gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationResult {
    /// The operation.
    pub op: String,
    /// Its values, in reply order.
    pub values: Vec<OperationValue>,
}

/// One value of an operation's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationValue {
    /// The value's name, when the reply names it.
    pub name: Option<String>,
    /// Its unit, when known.
    pub unit: Option<String>,
    /// The text as received.
    pub raw: String,
}

/// A failed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFailed {
    /// The failure, with its causes.
    pub error: String,
}

/// An interrupted run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInterrupted {
    /// How it was found.
    pub reason: String,
}

/// Slots of a schedule that passed without their run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotMissed {
    /// The sequence whose slots were missed.
    pub sequence: String,
    /// The first slot missed, RFC 3339.
    pub slot_utc: String,
    /// How many consecutive slots were missed, from that one on (one period apart).
    pub slots: u64,
    /// Why: the run that was still going, or the wall clock moving past them while idle.
    pub reason: String,
}

/// A refused connection to the daemon's control socket, with the peer's credentials as the
/// kernel gave them (`SO_PEERCRED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRefused {
    /// The peer's user id.
    pub uid: u32,
    /// The peer's group id.
    pub gid: u32,
    /// The peer's process id, when the kernel knows it.
    pub pid: Option<i32>,
}

/// An alert: what it said and whether the command could be started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSent {
    /// The alert's kind, e.g. `instrument_offline`, `instrument_online`, `runs_failing`.
    pub kind: String,
    /// The message given to the command.
    pub message: String,
    /// `sent`, or why it could not be.
    pub outcome: String,
}

/// A change of signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotated {
    /// The fingerprint recorded before (OpenSSH's `SHA256:…` form).
    pub old_fingerprint: String,
    /// The fingerprint of the key that signs from now on.
    pub new_fingerprint: String,
}

/// Serialising an event's detail object cannot fail (strings, integers, finite or not-finite
/// floats, which JSON writes as `null`); should it ever, the detail says so instead of panicking.
fn to_value<T: Serialize>(detail: &T) -> serde_json::Value {
    serde_json::to_value(detail)
        .unwrap_or_else(|e| serde_json::json!({ "unserialisable": e.to_string() }))
}

impl Event {
    /// The `kind` text of `events.jsonl`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exchange(_) => "exchange",
            Self::Identified(_) => "identified",
            Self::InstrumentError(_) => "instrument_error",
            Self::InstrumentOffline(_) => "instrument_offline",
            Self::InstrumentOnline(_) => "instrument_online",
            Self::InstrumentRefused(_) => "instrument_refused",
            Self::OperationResult(_) => "operation_result",
            Self::RunStarted(_) => "run_started",
            Self::RunEnded(_) => "run_ended",
            Self::RunFailed(_) => "run_failed",
            Self::RunInterrupted(_) => "run_interrupted",
            Self::SlotMissed(_) => "slot_missed",
            Self::KeyRotated(_) => "key_rotated",
            Self::ControlRefused(_) => "control_refused",
            Self::AlertSent(_) => "alert_sent",
        }
    }

    /// The `detail` object, its keys in sorted order as every event line has them.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Self::Exchange(d) => to_value(d),
            Self::Identified(d) => to_value(d),
            Self::InstrumentError(d) => to_value(d),
            Self::InstrumentOffline(d) => to_value(d),
            Self::InstrumentOnline(d) => to_value(d),
            Self::InstrumentRefused(d) => to_value(d),
            Self::OperationResult(d) => to_value(d),
            Self::RunStarted(d) => to_value(d),
            Self::RunEnded(d) => to_value(d),
            Self::RunFailed(d) => to_value(d),
            Self::RunInterrupted(d) => to_value(d),
            Self::SlotMissed(d) => to_value(d),
            Self::KeyRotated(d) => to_value(d),
            Self::ControlRefused(d) => to_value(d),
            Self::AlertSent(d) => to_value(d),
        }
    }

    /// Reads a line's kind and detail; an unknown kind or a detail that does not fit it is an
    /// error (a verifier keeps such lines as text).
    pub fn from_parts(kind: &str, detail: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "kind": kind, "detail": detail }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Event> {
        vec![
            Event::Exchange(Exchange {
                command: "*IDN?".into(),
                reply: Some("HP,3458A,0,1".into()),
                started_utc: "2026-12-02T10:00:00.000000Z".into(),
                duration_us: 1200,
                error: None,
            }),
            Event::Identified(Identified {
                manufacturer: "HP".into(),
                model: "3458A".into(),
                serial: "2823A12345".into(),
                firmware: "9".into(),
                driver: "keysight-3458a".into(),
            }),
            Event::InstrumentError(InstrumentError {
                code: -113,
                message: "Undefined header".into(),
            }),
            Event::InstrumentOffline(InstrumentOffline {
                instrument: "dvm".into(),
                reason: "connection lost".into(),
            }),
            Event::InstrumentOnline(InstrumentOnline {
                instrument: "dvm".into(),
                offline_since_utc: "2026-12-02T10:00:00.000000Z".into(),
                offline_s: 30.5,
                reason: "connection lost".into(),
            }),
            Event::InstrumentRefused(InstrumentRefused {
                instrument: "dvm".into(),
                expected: "serial 1".into(),
                found: "serial 2".into(),
            }),
            Event::OperationResult(OperationResult {
                op: "status".into(),
                values: vec![OperationValue {
                    name: Some("T".into()),
                    unit: None,
                    raw: "22.1".into(),
                }],
            }),
            Event::RunStarted(RunStarted {
                sequence: "zener-10v".into(),
                sequence_sha256: "ab".repeat(32),
                operator: Some("jdoe".into()),
                trigger: "manual".into(),
            }),
            Event::RunEnded(RunEnded {
                status: "failed".into(),
                readings: 3,
                first_reading: Some(7),
                last_reading: Some(9),
                reason: Some("timeout".into()),
            }),
            Event::RunFailed(RunFailed {
                error: "timeout".into(),
            }),
            Event::RunInterrupted(RunInterrupted {
                reason: "found running at start-up".into(),
            }),
            Event::AlertSent(AlertSent {
                kind: "instrument_offline".into(),
                message: "instrument dmm offline for 300 s".into(),
                outcome: "sent".into(),
            }),
            Event::ControlRefused(ControlRefused {
                uid: 1001,
                gid: 1001,
                pid: Some(4242),
            }),
            Event::SlotMissed(SlotMissed {
                sequence: "stability".into(),
                slot_utc: "2026-12-02T10:30:00.000000Z".into(),
                slots: 1,
                reason: "run 7 of `stability` was still going".into(),
            }),
            Event::KeyRotated(KeyRotated {
                old_fingerprint: "SHA256:old".into(),
                new_fingerprint: "SHA256:new".into(),
            }),
        ]
    }

    #[test]
    fn every_kind_reads_back_from_its_parts() {
        for event in all() {
            let back = Event::from_parts(event.kind(), &event.detail()).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn details_are_the_objects_events_jsonl_has_always_carried() {
        let event = Event::InstrumentOffline(InstrumentOffline {
            instrument: "dvm".into(),
            reason: "gone".into(),
        });
        assert_eq!(event.kind(), "instrument_offline");
        assert_eq!(
            event.detail().to_string(),
            r#"{"instrument":"dvm","reason":"gone"}"#
        );
    }

    #[test]
    fn run_events_of_older_agents_still_read() {
        // Bundles sealed before `run_ended` carry these lines; they must keep reading typed.
        let failed = serde_json::json!({ "error": "step 3 (read) on `dvm` failed" });
        assert!(matches!(
            Event::from_parts("run_failed", &failed),
            Ok(Event::RunFailed(_))
        ));
        let interrupted = serde_json::json!({ "reason": "found running at start-up" });
        assert!(matches!(
            Event::from_parts("run_interrupted", &interrupted),
            Ok(Event::RunInterrupted(_))
        ));
    }

    #[test]
    fn unknown_kinds_and_misfit_details_are_errors() {
        let detail = serde_json::json!({ "reason": "x" });
        assert!(Event::from_parts("clock_step", &detail).is_err());
        assert!(Event::from_parts("run_failed", &detail).is_err());
    }
}
