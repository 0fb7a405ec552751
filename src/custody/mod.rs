//! Custody of the travelling standard: its state machine, the arrival checklist, the stabilisation
//! gate official runs wait for, and the check of the lab's own calibrations.
//!
//! Every custody action is a typed event in the log (`custody_received`, `custody_inspected`,
//! `custody_incident`, `custody_decision`, `custody_note`, `custody_dispatched`, `gate_opened`,
//! `official_skipped`), checked against the state the log's earlier custody events give and
//! appended in the same write transaction ([`Store::custody_update`]). The functions here work on
//! a [`Store`] directly: the daemon calls them for its control API (`POST /v1/custody/…`), and
//! `tsagent custody` when no daemon holds the lab, both through [`apply`].
//!
//! Layers: `state` (the fold and the transitions), `gate` (the stabilisation rule) and `deadline`
//! (the circulation timetable) are pure, `items` parses the inspection, `calibration` finds
//! expired instruments; `action` is the requests and the report both paths share; this file joins
//! them to the store.

mod action;
pub mod calibration;
pub mod deadline;
mod error;
pub mod gate;
pub mod items;
pub mod notes;
mod phase;
mod state;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tsagent_bundle::event::{
    CalibrationExpired, CustodyDispatched, CustodyIncident, CustodyInspected, CustodyNote,
    CustodyReceived, Event, OfficialSkipped, Photo,
};

use crate::clock::Timestamp;
use crate::config::{Config, ExpiredCalibration, Sequence};
use crate::store::{EventRow, NewEvent, Store, StoreError};

pub use action::{
    ActionRequest, CalibrationLine, Condition, DecisionRequest, DispatchRequest, GateReport,
    IncidentKind, IncidentRequest, InspectRequest, NoteRequest, PhotoRef, ReceiveRequest, Recorded,
    Report, Seals, TimelineLine, apply, is_sha256, report,
};
pub use deadline::{DeadlineAction, OpenDeadline, Phase};
pub use error::CustodyError;
pub use gate::{Closed, Gate};
pub use state::{Action, BLOCKING_INCIDENTS, Custody, State};

/// Largest photo accepted, by `custody receive --photo` and the API's upload alike, so a photo
/// is kept or refused whichever way it comes (a camera's full-size JPEG is a few MiB).
pub const MAX_PHOTO_BYTES: u64 = 32 << 20;

/// The folder beside the database where receipt photos are kept, each named by its SHA-256.
pub fn photo_dir(db: &Path) -> PathBuf {
    db.with_file_name("photos")
}

/// Whether the config's checklist makes `received` last until an inspection.
fn needs_inspection(config: &Config) -> bool {
    !config.artefact.inspection.is_empty()
}

/// The custody record and the state it gives.
pub fn load(store: &Store, config: &Config) -> Result<(Custody, Vec<EventRow>), StoreError> {
    let rows = store.custody_events()?;
    Ok((Custody::from_events(&rows, needs_inspection(config)), rows))
}

/// Records `event` if `action` fits the standard's state, in one transaction with the check.
pub fn record(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    action: Action,
    event: Event,
) -> Result<(), CustodyError> {
    let needs = needs_inspection(config);
    store.custody_update(|rows| {
        Custody::from_events(rows, needs).check(action)?;
        Ok::<_, CustodyError>((vec![NewEvent::new(at, event)], ()))
    })
}

/// What the operator found at receipt.
#[derive(Debug, Clone)]
pub struct Receipt<'a> {
    /// Who received it.
    pub operator: &'a str,
    /// Whether it arrived damaged (which blocks official runs until a pilot decision).
    pub damaged: bool,
    /// Whether the seals were intact.
    pub seals_intact: bool,
    /// A note.
    pub note: Option<&'a str>,
    /// Photos already kept by hash in the photo folder ([`store_photo`], [`keep_photo`]): a
    /// receipt refused after that leaves only content-addressed copies, harmless.
    pub photos: &'a [Photo],
}

/// Records the standard's receipt.
pub fn receive(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    receipt: &Receipt<'_>,
) -> Result<(), CustodyError> {
    let photos = receipt.photos.to_vec();
    let event = Event::CustodyReceived(CustodyReceived {
        operator: receipt.operator.to_owned(),
        condition: if receipt.damaged { "damaged" } else { "ok" }.to_owned(),
        seals: if receipt.seals_intact {
            "intact"
        } else {
            "broken"
        }
        .to_owned(),
        note: receipt.note.map(str::to_owned),
        photos,
    });
    record(store, config, at, Action::Receive, event)
}

/// Reads a photo file for keeping: a regular file of at most [`MAX_PHOTO_BYTES`].
pub fn read_photo(path: &Path) -> Result<Vec<u8>, CustodyError> {
    tsagent_bundle::file::read_regular("photo", path, MAX_PHOTO_BYTES).map_err(|source| {
        CustodyError::Photo {
            path: path.to_owned(),
            source,
        }
    })
}

/// The name a photo file is recorded under: its file name.
pub fn photo_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The SHA-256 of a photo's bytes, as its file in the photo folder is named.
pub fn photo_sha256(bytes: &[u8]) -> String {
    tsagent_bundle::hex::encode(&Sha256::digest(bytes))
}

/// Keeps a photo's bytes in `dir` under their SHA-256 (once: the same photo twice is one file);
/// returns the hash.
pub fn keep_photo(dir: &Path, bytes: &[u8]) -> Result<String, CustodyError> {
    let sha256 = photo_sha256(bytes);
    let store_err = |source| CustodyError::PhotoStore {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(store_err)?;
    if !dir.join(&sha256).is_file() {
        tsagent_bundle::write_file_atomically(dir, &sha256, bytes).map_err(store_err)?;
    }
    Ok(sha256)
}

/// Copies a photo file into `dir` under its SHA-256.
pub fn store_photo(dir: &Path, path: &Path) -> Result<Photo, CustodyError> {
    let bytes = read_photo(path)?;
    Ok(Photo {
        name: photo_name(path),
        sha256: keep_photo(dir, &bytes)?,
    })
}

/// Records the arrival inspection from `--item NAME=RESULT` arguments, checked against the
/// config's checklist.
pub fn inspect(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    operator: &str,
    items: &[String],
) -> Result<(), CustodyError> {
    let given = items
        .iter()
        .map(|i| items::parse_item(i))
        .collect::<Result<Vec<_>, _>>()?;
    let items = items::inspect(&config.artefact.inspection, &given)?;
    let event = Event::CustodyInspected(CustodyInspected {
        operator: operator.to_owned(),
        items,
    });
    record(store, config, at, Action::Inspect, event)
}

/// Records an incident; `damage` and `dropped` block official runs until a pilot decision.
pub fn incident(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    operator: &str,
    kind: &str,
    note: &str,
) -> Result<(), CustodyError> {
    let event = Event::CustodyIncident(CustodyIncident {
        operator: operator.to_owned(),
        incident: kind.to_owned(),
        note: note.to_owned(),
    });
    let blocks = BLOCKING_INCIDENTS.contains(&kind);
    record(store, config, at, Action::Incident { blocks }, event)
}

/// Records dispatch; official runs are refused from then on.
pub fn dispatch(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    dispatched: CustodyDispatched,
) -> Result<(), CustodyError> {
    record(
        store,
        config,
        at,
        Action::Dispatch,
        Event::CustodyDispatched(dispatched),
    )
}

/// Records a note.
pub fn note(
    store: &mut Store,
    config: &Config,
    at: Timestamp,
    operator: &str,
    text: &str,
) -> Result<(), CustodyError> {
    let event = Event::CustodyNote(CustodyNote {
        operator: operator.to_owned(),
        text: text.to_owned(),
    });
    record(store, config, at, Action::Note, event)
}

/// The gate at `now`; if it opens now, its `gate_opened` event is recorded (with the data that
/// opened it) in one transaction with a re-check of the state.
pub fn gate_now(store: &mut Store, config: &Config, now: Timestamp) -> Result<Gate, CustodyError> {
    let (custody, _) = load(store, config)?;
    let unit = config.artefact.unit.as_str();
    let gate = gate::evaluate(
        &custody,
        &config.artefact.stabilisation,
        config.artefact.nominal,
        now.utc_us,
        |c, since| {
            store.sequence_series(
                &c.sequence,
                unit,
                c.instrument.as_deref(),
                c.quantity.as_deref(),
                since,
            )
        },
    )?;
    if let Gate::Opens(opened) = &gate {
        let needs = needs_inspection(config);
        let event = NewEvent::new(now, Event::GateOpened(opened.clone()));
        store.custody_update(|rows| {
            // Another process may have opened it, or dispatched the standard, meanwhile.
            let fits = Custody::from_events(rows, needs)
                .check(Action::OpenGate)
                .is_ok();
            Ok::<_, StoreError>((if fits { vec![event] } else { Vec::new() }, ()))
        })?;
    }
    Ok(gate)
}

/// Admits an official run of `sequence` (started by `trigger`, `manual` or `schedule`) at `now`,
/// or refuses it. The gate must be open (opening it now is recorded), and the instruments'
/// calibrations are checked against `[policy] expired_calibration`: `flag` records a
/// `calibration_expired` event per instrument and admits the run; `refuse` records them too. A
/// refusal is recorded as an `official_skipped` event naming the reason, then returned as
/// [`CustodyError::OfficialRefused`].
pub fn admit_official(
    store: &mut Store,
    config: &Config,
    sequence: &Sequence,
    trigger: &str,
    now: Timestamp,
) -> Result<(), CustodyError> {
    let mut events = Vec::new();
    let refusal = match gate_now(store, config, now)? {
        Gate::Closed(why) => Some(why.to_string()),
        Gate::Open | Gate::Opens(_) => {
            let expired = calibration::expired(config, sequence, now.utc_us);
            let policy = config.policy.expired_calibration;
            for e in &expired {
                events.push(NewEvent::new(
                    now,
                    Event::CalibrationExpired(CalibrationExpired {
                        instrument: e.instrument.to_owned(),
                        certificate: e.calibration.certificate.clone(),
                        due: e.calibration.due.to_string(),
                        sequence: sequence.name.clone(),
                        policy: policy.as_str().to_owned(),
                    }),
                ));
            }
            match (policy, expired.first()) {
                (ExpiredCalibration::Refuse, Some(e)) => Some(format!(
                    "the calibration of `{}` (certificate {}) was due {}{}",
                    e.instrument,
                    e.calibration.certificate,
                    e.calibration.due,
                    if expired.len() > 1 {
                        format!(
                            ", and {} more instrument(s) are past due",
                            expired.len() - 1
                        )
                    } else {
                        String::new()
                    }
                )),
                _ => None,
            }
        }
    };
    if let Some(reason) = &refusal {
        events.push(NewEvent::new(
            now,
            Event::OfficialSkipped(OfficialSkipped {
                sequence: sequence.name.clone(),
                trigger: trigger.to_owned(),
                reason: reason.clone(),
            }),
        ));
    }
    store.append_events(&events)?;
    match refusal {
        Some(reason) => Err(CustodyError::OfficialRefused {
            sequence: sequence.name.clone(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
