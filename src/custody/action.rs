//! Custody actions as an operator asks for them — the CLI's arguments and the control API's JSON
//! bodies are the same requests — and the one function that applies them to the log
//! ([`apply`]), whichever process holds the lab: the daemon for `POST /v1/custody/…`, or
//! `tsagent custody` itself when no daemon runs. [`report`] is `custody status` and `GET
//! /v1/custody` alike.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tsagent_bundle::event::{CustodyDecision, CustodyDispatched, Event, Photo};

use crate::clock::{Timestamp, rfc3339};
use crate::config::Config;
use crate::store::Store;

use super::deadline::{self, OpenDeadline};
use super::error::CustodyError;
use super::gate::Gate;
use super::state::Action;

/// The standard's condition at receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// No visible damage.
    Ok,
    /// Damaged: official runs wait for a pilot decision.
    Damaged,
}

/// The seals at receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seals {
    /// Intact.
    Intact,
    /// Broken.
    Broken,
}

/// An incident's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Damage found (blocks official runs until a decision).
    Damage,
    /// The standard lost power.
    PowerLoss,
    /// The standard was dropped (blocks official runs until a decision).
    Dropped,
    /// Anything else.
    Other,
}

impl IncidentKind {
    /// The kind as events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Damage => "damage",
            Self::PowerLoss => "power_loss",
            Self::Dropped => "dropped",
            Self::Other => "other",
        }
    }
}

/// A photo kept in the photo folder, by its SHA-256 (`POST /v1/custody/photos` answers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoRef {
    /// SHA-256 of its bytes, 64 lowercase hex digits: its file name in the photo folder.
    pub sha256: String,
    /// Its original file name, for the record (the hash when not given).
    #[serde(default)]
    pub name: Option<String>,
}

/// `custody receive`, `POST /v1/custody/receive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    /// Who received it.
    pub operator: String,
    /// `ok` or `damaged`.
    pub condition: Condition,
    /// `intact` or `broken`.
    pub seals: Seals,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
    /// Photos already kept in the photo folder.
    #[serde(default)]
    pub photos: Vec<PhotoRef>,
}

/// `custody inspect`, `POST /v1/custody/inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    /// Who inspected it.
    pub operator: String,
    /// Every checklist item as `NAME=RESULT`, as `--item` gives them.
    pub items: Vec<String>,
}

/// `custody incident`, `POST /v1/custody/incident`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    /// Who recorded it.
    pub operator: String,
    /// `damage`, `power_loss`, `dropped` or `other`.
    pub kind: IncidentKind,
    /// What happened.
    pub note: String,
}

/// `custody decision`, `POST /v1/custody/decision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Who recorded it.
    pub operator: String,
    /// The pilot's decision as given (who, when, reference).
    pub note: String,
}

/// `custody dispatch`, `POST /v1/custody/dispatch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// Who dispatched it.
    pub operator: String,
    /// The carrier.
    pub carrier: String,
    /// The carrier's tracking number.
    pub tracking: String,
    /// Its condition on leaving, e.g. `ok`.
    pub condition: String,
}

/// `custody note`, `POST /v1/custody/note`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Who wrote it.
    pub operator: String,
    /// The note.
    pub text: String,
}

/// One custody action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRequest {
    /// Receipt.
    Receive(ReceiveRequest),
    /// The arrival inspection.
    Inspect(InspectRequest),
    /// An incident.
    Incident(IncidentRequest),
    /// The pilot's decision on damage.
    Decision(DecisionRequest),
    /// Dispatch.
    Dispatch(DispatchRequest),
    /// A note.
    Note(NoteRequest),
}

impl ActionRequest {
    /// Every action's name, as [`ActionRequest::name`] gives it.
    pub const NAMES: [&'static str; 6] = [
        "receive", "inspect", "incident", "decision", "dispatch", "note",
    ];

    /// The action's name: the CLI's subcommand and the last part of its API route.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Receive(_) => "receive",
            Self::Inspect(_) => "inspect",
            Self::Incident(_) => "incident",
            Self::Decision(_) => "decision",
            Self::Dispatch(_) => "dispatch",
            Self::Note(_) => "note",
        }
    }

    /// Reads the JSON body of `POST /v1/custody/{name}`; `None` for a name that is no action.
    pub fn from_json(name: &str, body: &[u8]) -> Option<Result<Self, serde_json::Error>> {
        fn read<T: serde::de::DeserializeOwned>(
            body: &[u8],
            wrap: fn(T) -> ActionRequest,
        ) -> Result<ActionRequest, serde_json::Error> {
            serde_json::from_slice(body).map(wrap)
        }
        Some(match name {
            "receive" => read(body, Self::Receive),
            "inspect" => read(body, Self::Inspect),
            "incident" => read(body, Self::Incident),
            "decision" => read(body, Self::Decision),
            "dispatch" => read(body, Self::Dispatch),
            "note" => read(body, Self::Note),
            _ => return None,
        })
    }

    /// The JSON body of its `POST /v1/custody/{name}`.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Self::Receive(r) => serde_json::to_vec(r),
            Self::Inspect(r) => serde_json::to_vec(r),
            Self::Incident(r) => serde_json::to_vec(r),
            Self::Decision(r) => serde_json::to_vec(r),
            Self::Dispatch(r) => serde_json::to_vec(r),
            Self::Note(r) => serde_json::to_vec(r),
        }
    }

    fn operator(&self) -> &str {
        match self {
            Self::Receive(r) => &r.operator,
            Self::Inspect(r) => &r.operator,
            Self::Incident(r) => &r.operator,
            Self::Decision(r) => &r.operator,
            Self::Dispatch(r) => &r.operator,
            Self::Note(r) => &r.operator,
        }
    }
}

/// What an action recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The custody event's kind, e.g. `custody_received`.
    pub event: String,
    /// The standard's state after it.
    pub state: String,
    /// When it was recorded, RFC 3339.
    pub utc: String,
}

/// Applies `request` to the log at `at`: checked against the standard's state and recorded in
/// one transaction, or refused with nothing written. Photos of a receipt must already be kept in
/// the photo folder beside the database (the CLI copies them there; the API's upload puts them
/// there).
pub fn apply(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    request: &ActionRequest,
) -> Result<Recorded, CustodyError> {
    if request.operator().trim().is_empty() {
        return Err(CustodyError::Empty { field: "operator" });
    }
    let event = match request {
        ActionRequest::Receive(r) => {
            let dir = super::photo_dir(store.path());
            let photos = r
                .photos
                .iter()
                .map(|p| kept_photo(&dir, p))
                .collect::<Result<Vec<_>, _>>()?;
            let receipt = super::Receipt {
                operator: &r.operator,
                damaged: r.condition == Condition::Damaged,
                seals_intact: r.seals == Seals::Intact,
                note: r.note.as_deref(),
                photos: &photos,
            };
            super::receive(store, config, at, &receipt)?;
            "custody_received"
        }
        ActionRequest::Inspect(r) => {
            super::inspect(store, config, at, &r.operator, &r.items)?;
            "custody_inspected"
        }
        ActionRequest::Incident(r) => {
            super::incident(store, config, at, &r.operator, r.kind.as_str(), &r.note)?;
            "custody_incident"
        }
        ActionRequest::Decision(r) => {
            let event = Event::CustodyDecision(CustodyDecision {
                operator: r.operator.clone(),
                note: r.note.clone(),
            });
            super::record(store, config, at, Action::Decision, event)?;
            "custody_decision"
        }
        ActionRequest::Dispatch(r) => {
            let dispatched = CustodyDispatched {
                operator: r.operator.clone(),
                carrier: r.carrier.clone(),
                tracking: r.tracking.clone(),
                condition: r.condition.clone(),
            };
            super::dispatch(store, config, at, dispatched)?;
            "custody_dispatched"
        }
        ActionRequest::Note(r) => {
            super::note(store, config, at, &r.operator, &r.text)?;
            "custody_note"
        }
    };
    let (custody, _) = super::load(store, config)?;
    Ok(Recorded {
        event: event.to_owned(),
        state: custody.state.as_str().to_owned(),
        utc: rfc3339(at.utc_us),
    })
}

/// Whether `text` is a SHA-256 as the photo folder names its files: 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The record of a photo kept in `dir`, checked to be there.
fn kept_photo(dir: &Path, photo: &PhotoRef) -> Result<Photo, CustodyError> {
    // Checked before it is joined to the folder: no `../` or other name reaches the disk.
    if !is_sha256(&photo.sha256) {
        return Err(CustodyError::PhotoHash {
            text: photo.sha256.clone(),
        });
    }
    if !dir.join(&photo.sha256).is_file() {
        return Err(CustodyError::PhotoNotKept {
            sha256: photo.sha256.clone(),
        });
    }
    Ok(Photo {
        name: photo
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| photo.sha256.clone()),
        sha256: photo.sha256.clone(),
    })
}

/// The stabilisation gate as a report gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReport {
    /// `open` (opened before), `opened` (opened now, and recorded) or `closed`.
    pub state: String,
    /// Why it is closed.
    pub reason: Option<String>,
}

/// An instrument's calibration, as a report gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationLine {
    /// The instrument.
    pub instrument: String,
    /// The certificate's reference.
    pub certificate: String,
    /// When it was calibrated.
    pub calibrated: String,
    /// When the next calibration is due (valid through that day).
    pub due: String,
    /// Whether that day has passed.
    pub past_due: bool,
}

/// One custody event of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineLine {
    /// When, RFC 3339.
    pub utc: String,
    /// Its kind, e.g. `custody_received`.
    pub kind: String,
    /// Its details.
    pub detail: serde_json::Value,
}

/// What `custody status` shows and `GET /v1/custody` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `expected`, `received`, `stabilising`, `official_window` or `dispatched`.
    pub state: String,
    /// Damage awaits the pilot's decision: official runs are blocked.
    pub damage_pending: bool,
    /// The stabilisation gate.
    pub gate: GateReport,
    /// Each configured instrument's calibration.
    pub calibrations: Vec<CalibrationLine>,
    /// The next deadline of `[artefact.deadlines]` whose action is not recorded.
    pub next_deadline: Option<OpenDeadline>,
    /// The custody events, oldest first.
    pub timeline: Vec<TimelineLine>,
}

/// The custody report at `now`. The gate is evaluated, and its opening recorded if it opens now,
/// as an official run's admission would.
pub fn report(store: &mut Store, config: &Config, now: Timestamp) -> Result<Report, CustodyError> {
    let gate = super::gate_now(store, config, now)?;
    let (custody, rows) = super::load(store, config)?;
    let gate = match gate {
        Gate::Open => GateReport {
            state: "open".into(),
            reason: None,
        },
        Gate::Opens(_) => GateReport {
            state: "opened".into(),
            reason: None,
        },
        Gate::Closed(why) => GateReport {
            state: "closed".into(),
            reason: Some(why.to_string()),
        },
    };
    let calibrations = config
        .instruments
        .iter()
        .filter_map(|i| {
            let c = i.calibration.as_ref()?;
            Some(CalibrationLine {
                instrument: i.name.clone(),
                certificate: c.certificate.clone(),
                calibrated: c.calibrated.to_string(),
                due: c.due.to_string(),
                past_due: now.utc_us >= c.due.end_utc_us(),
            })
        })
        .collect();
    Ok(Report {
        state: custody.state.as_str().to_owned(),
        damage_pending: custody.damage_pending,
        gate,
        calibrations,
        next_deadline: deadline::next(
            &config.artefact.deadlines,
            &custody,
            now.utc_us,
            config.alerts.deadline_notice,
        ),
        timeline: rows
            .into_iter()
            .map(|r| TimelineLine {
                utc: rfc3339(r.utc_us),
                kind: r.kind,
                detail: r.detail,
            })
            .collect(),
    })
}
