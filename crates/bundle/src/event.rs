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
    /// The travelling standard arrived and was received: condition, seals, photos.
    CustodyReceived(CustodyReceived),
    /// The lab's arrival inspection, item by item from the protocol's checklist.
    CustodyInspected(CustodyInspected),
    /// Something happened to the standard while in the lab's care.
    CustodyIncident(CustodyIncident),
    /// The pilot's decision on a damaged standard: official measurements may go on.
    CustodyDecision(CustodyDecision),
    /// A free note on the standard's custody.
    CustodyNote(CustodyNote),
    /// The standard left the lab.
    CustodyDispatched(CustodyDispatched),
    /// The stabilisation gate opened: official measurements may start, with the data that
    /// opened it.
    GateOpened(GateOpened),
    /// An official run was refused (the gate closed, the standard dispatched or damaged, an
    /// expired calibration under the `refuse` policy).
    OfficialSkipped(OfficialSkipped),
    /// An official run used an instrument whose calibration is past due (policy `flag`: the run
    /// went on, marked by this event; policy `refuse` also leaves an `official_skipped`).
    CalibrationExpired(CalibrationExpired),
}

/// The kinds whose lines also go into a bundle's `custody.jsonl`: the custody record of the
/// travelling standard.
pub const CUSTODY_KINDS: [&str; 8] = [
    "custody_received",
    "custody_inspected",
    "custody_incident",
    "custody_decision",
    "custody_note",
    "custody_dispatched",
    "gate_opened",
    "official_skipped",
];

/// True for a kind that belongs in `custody.jsonl`.
pub fn is_custody_kind(kind: &str) -> bool {
    CUSTODY_KINDS.contains(&kind)
}

/// A photo taken at receipt, stored by its hash beside the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Photo {
    /// The file name it was given (its original name).
    pub name: String,
    /// SHA-256 of its bytes (hex); also its file name in the lab's photo folder.
    pub sha256: String,
}

/// Receipt of the standard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyReceived {
    /// Who received it.
    pub operator: String,
    /// `ok` or `damaged`.
    pub condition: String,
    /// `intact` or `broken`.
    pub seals: String,
    /// What the operator noted.
    pub note: Option<String>,
    /// Photos of the case and standard.
    pub photos: Vec<Photo>,
}

/// One checklist item as inspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionItem {
    /// The item, as the config names it.
    pub item: String,
    /// `check` (a result such as `ok`) or `value` (a number with its unit).
    pub kind: String,
    /// The result as given.
    pub result: String,
    /// The number, for a `value` item.
    pub value: Option<f64>,
    /// The unit, for a `value` item.
    pub unit: Option<String>,
}

/// The arrival inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyInspected {
    /// Who inspected it.
    pub operator: String,
    /// Every checklist item, in the config's order.
    pub items: Vec<InspectionItem>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyIncident {
    /// Who recorded it.
    pub operator: String,
    /// `damage`, `power_loss`, `dropped` or `other`.
    pub incident: String,
    /// What happened.
    pub note: String,
}

/// A pilot decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyDecision {
    /// Who recorded it.
    pub operator: String,
    /// The decision as the pilot gave it (who, when, reference).
    pub note: String,
}

/// A note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyNote {
    /// Who wrote it.
    pub operator: String,
    /// The note.
    pub text: String,
}

/// Dispatch of the standard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyDispatched {
    /// Who dispatched it.
    pub operator: String,
    /// The carrier.
    pub carrier: String,
    /// The carrier's tracking number.
    pub tracking: String,
    /// Its condition on leaving.
    pub condition: String,
}

/// The data criterion's result when the gate opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateDrift {
    /// The sequence whose readings were fitted.
    pub sequence: String,
    /// The window fitted, seconds back from the decision.
    pub window_s: u64,
    /// Readings in the window.
    pub readings: u64,
    /// Fitted drift, relative (per unit of the mean value), per day.
    pub drift_per_day: f64,
    /// Its standard uncertainty, same unit.
    pub u_drift_per_day: f64,
    /// Coverage factor applied to the uncertainty.
    pub k: f64,
    /// The limit on |drift| + k·u.
    pub max_drift: f64,
}

/// The gate's opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOpened {
    /// When the standard was received, RFC 3339.
    pub received_utc: String,
    /// The minimum stabilisation time configured, seconds.
    pub min_s: u64,
    /// Time since receipt when the gate opened, seconds.
    pub elapsed_s: u64,
    /// The data criterion's result, when one is configured.
    pub drift: Option<GateDrift>,
}

/// A refused official run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficialSkipped {
    /// The official sequence.
    pub sequence: String,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// Why it was refused.
    pub reason: String,
}

/// An expired calibration met by an official run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationExpired {
    /// The instrument.
    pub instrument: String,
    /// Its certificate.
    pub certificate: String,
    /// Its due date, `YYYY-MM-DD`.
    pub due: String,
    /// The official sequence.
    pub sequence: String,
    /// `refuse` or `flag`.
    pub policy: String,
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
    /// An official run of the comparison, admitted through the custody gate. Written only when
    /// true, so lines of agents before it read (and are written) as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub official: bool,
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
            Self::CustodyReceived(_) => "custody_received",
            Self::CustodyInspected(_) => "custody_inspected",
            Self::CustodyIncident(_) => "custody_incident",
            Self::CustodyDecision(_) => "custody_decision",
            Self::CustodyNote(_) => "custody_note",
            Self::CustodyDispatched(_) => "custody_dispatched",
            Self::GateOpened(_) => "gate_opened",
            Self::OfficialSkipped(_) => "official_skipped",
            Self::CalibrationExpired(_) => "calibration_expired",
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
            Self::CustodyReceived(d) => to_value(d),
            Self::CustodyInspected(d) => to_value(d),
            Self::CustodyIncident(d) => to_value(d),
            Self::CustodyDecision(d) => to_value(d),
            Self::CustodyNote(d) => to_value(d),
            Self::CustodyDispatched(d) => to_value(d),
            Self::GateOpened(d) => to_value(d),
            Self::OfficialSkipped(d) => to_value(d),
            Self::CalibrationExpired(d) => to_value(d),
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
                official: true,
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
            Event::CustodyReceived(CustodyReceived {
                operator: "li".into(),
                condition: "ok".into(),
                seals: "intact".into(),
                note: None,
                photos: vec![Photo {
                    name: "case.jpg".into(),
                    sha256: "ab".repeat(32),
                }],
            }),
            Event::CustodyInspected(CustodyInspected {
                operator: "li".into(),
                items: vec![InspectionItem {
                    item: "thermistor".into(),
                    kind: "value".into(),
                    result: "10.02 kOhm".into(),
                    value: Some(10.02),
                    unit: Some("kOhm".into()),
                }],
            }),
            Event::CustodyIncident(CustodyIncident {
                operator: "li".into(),
                incident: "power_loss".into(),
                note: "mains cut 10 min".into(),
            }),
            Event::CustodyDecision(CustodyDecision {
                operator: "li".into(),
                note: "pilot: proceed".into(),
            }),
            Event::CustodyNote(CustodyNote {
                operator: "li".into(),
                text: "moved to bench 2".into(),
            }),
            Event::CustodyDispatched(CustodyDispatched {
                operator: "li".into(),
                carrier: "DHL".into(),
                tracking: "123".into(),
                condition: "ok".into(),
            }),
            Event::GateOpened(GateOpened {
                received_utc: "2026-12-02T10:00:00.000000Z".into(),
                min_s: 259_200,
                elapsed_s: 260_000,
                drift: Some(GateDrift {
                    sequence: "stability".into(),
                    window_s: 86_400,
                    readings: 48,
                    drift_per_day: 1e-9,
                    u_drift_per_day: 2e-9,
                    k: 2.0,
                    max_drift: 5e-8,
                }),
            }),
            Event::OfficialSkipped(OfficialSkipped {
                sequence: "official".into(),
                trigger: "schedule".into(),
                reason: "stabilising".into(),
            }),
            Event::CalibrationExpired(CalibrationExpired {
                instrument: "dvm".into(),
                certificate: "C-1".into(),
                due: "2026-01-01".into(),
                sequence: "official".into(),
                policy: "flag".into(),
            }),
        ]
    }

    #[test]
    fn custody_kinds_are_event_kinds() {
        let kinds: Vec<&str> = all().iter().map(Event::kind).collect();
        for kind in CUSTODY_KINDS {
            assert!(kinds.contains(&kind), "{kind}");
        }
        assert!(!is_custody_kind("run_started"));
        assert!(!is_custody_kind("calibration_expired"));
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
