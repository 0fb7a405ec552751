//! The daemon's control API: HTTP/1.1 with JSON over a Unix socket, versioned under `/v1/`.
//!
//! The daemon's loop owns the instruments and the store; the API never touches either. It reads a
//! status snapshot the loop keeps ([`Hub`]), subscribes to the loop's live events, and hands
//! requests (start a run) to the loop through a channel, which answers each one. So a slow or
//! hostile client can hold a connection, never the acquisition.
//!
//! `server` is the socket side (peer credentials, routes, the event stream); `client` is what the
//! CLI (`status`, `start`, `watch`) uses.

pub mod client;
pub mod page;
pub mod server;

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::session::Measurement;

/// Events kept for a slow subscriber before it is told it missed some.
const EVENT_BACKLOG: usize = 1024;

/// Everything `GET /v1/status` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The lab's id.
    pub lab: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Each configured instrument.
    pub instruments: Vec<InstrumentStatus>,
    /// The run in progress.
    pub run: Option<RunProgress>,
    /// Runs asked for and waiting behind it, first first.
    pub queue: Vec<QueuedRun>,
    /// The next slot of each scheduled sequence.
    pub next_slots: Vec<NextSlot>,
    /// Sealed bundles not yet delivered to the coordinator (all of them until upload exists).
    pub bundles_not_sent: u64,
    /// Free space for the database's folder, bytes.
    pub disk_free_bytes: Option<u64>,
    /// The travelling standard's custody.
    pub custody: Option<CustodyStatus>,
    /// The last [`RECENT_RUNS`] runs, newest first, the one in progress included. Absent from
    /// an older daemon's answer, hence the default.
    #[serde(default)]
    pub runs: Vec<RunLine>,
    /// Type A statistics of each series of the last completed run, from the same code as
    /// `measure`'s (`analysis::series`). Absent from an older daemon's answer, hence the default.
    #[serde(default)]
    pub statistics: Vec<SeriesStatistics>,
}

/// Type A statistics of one instrument's quantity in one unit over one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStatistics {
    /// The run.
    pub run_id: u64,
    /// Instrument name.
    pub instrument: String,
    /// Quantity name.
    pub quantity: String,
    /// Unit.
    pub unit: String,
    /// Valid readings.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
    /// Experimental standard deviation s; absent for one reading.
    pub s: Option<f64>,
    /// Standard deviation of the mean s/√n; absent for one reading.
    pub u_mean: Option<f64>,
    /// Readings without a value (overload, not a number).
    pub invalid: u64,
}

impl SeriesStatistics {
    /// The statistics of `series`, read in run `run_id`; `None` without a valid value.
    pub fn of(run_id: u64, series: &crate::analysis::series::Series) -> Option<SeriesStatistics> {
        let (mean, s, u_mean) = match (series.values.as_slice(), series.summary()) {
            (_, Some(st)) => (st.mean, Some(st.std_dev), Some(st.std_dev_of_mean)),
            ([one], None) => (*one, None, None),
            _ => return None,
        };
        Some(SeriesStatistics {
            run_id,
            instrument: series.instrument.clone(),
            quantity: series.quantity.clone(),
            unit: series.unit.clone(),
            n: series.values.len() as u64,
            mean,
            s,
            u_mean,
            invalid: series.invalid as u64,
        })
    }
}

/// Runs the status lists: enough to see the last day of a typical schedule, bounded however
/// long the daemon runs.
pub const RECENT_RUNS: usize = 20;

/// A run, as status lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLine {
    /// Run id in the log.
    pub run_id: u64,
    /// Its sequence.
    pub sequence: String,
    /// Who started it, if recorded.
    pub operator: Option<String>,
    /// `manual`, `schedule` or `demo`.
    pub trigger: String,
    /// `running`, `completed`, `failed`, `stopped`, `interrupted` or `aborted`.
    pub status: String,
    /// When it began, RFC 3339.
    pub started_utc: String,
    /// When it ended, RFC 3339; `None` while it runs.
    pub ended_utc: Option<String>,
    /// Readings committed.
    pub readings: u64,
    /// Whether it is an official run of the comparison.
    pub official: bool,
}

/// The travelling standard's custody, as the log tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyStatus {
    /// `expected`, `received`, `stabilising`, `official_window` or `dispatched`.
    pub state: String,
    /// Damage awaits the pilot's decision: official runs are blocked.
    pub damage_pending: bool,
    /// The custody events, oldest first (the timeline).
    pub timeline: Vec<CustodyLine>,
    /// The next deadline of `[artefact.deadlines]` whose action is not recorded.
    #[serde(default)]
    pub next_deadline: Option<crate::custody::OpenDeadline>,
}

/// One custody event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyLine {
    /// When, RFC 3339.
    pub utc: String,
    /// Its kind, e.g. `custody_received`, `gate_opened`.
    pub kind: String,
    /// Its details, as JSON text.
    pub detail: String,
}

/// One instrument as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstrumentStatus {
    /// Its name in the config.
    pub name: String,
    /// `online`, `offline` or `unknown` (not yet tried).
    pub state: String,
    /// `*IDN?` as last answered: manufacturer, model, serial, firmware.
    pub identity: Option<String>,
    /// Since when it has been offline, RFC 3339.
    pub offline_since: Option<String>,
    /// Its last committed reading.
    pub last_reading: Option<LastReading>,
}

/// A committed reading, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReading {
    /// Sequence number in the log.
    pub seq: u64,
    /// The raw reply.
    pub raw: String,
    /// Its unit.
    pub unit: String,
    /// When, RFC 3339.
    pub utc: String,
}

/// The run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Run id in the log.
    pub run_id: u64,
    /// The ticket of the request that asked for it (none for a scheduled run).
    pub ticket: Option<u64>,
    /// Its sequence.
    pub sequence: String,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// Who asked for it.
    pub operator: Option<String>,
    /// Readings committed.
    pub done: u64,
    /// Readings planned.
    pub total: u64,
}

/// A run waiting for the one in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRun {
    /// Its ticket: the `start` reply's, and the run's events carry it.
    pub ticket: u64,
    /// Its sequence.
    pub sequence: String,
    /// Who asked for it.
    pub operator: String,
}

/// A sequence's next scheduled slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextSlot {
    /// The sequence.
    pub sequence: String,
    /// The slot, RFC 3339.
    pub utc: String,
}

/// `POST /v1/runs`: start a run of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The sequence's name in the config.
    pub sequence: String,
    /// Who asks; stored with the run.
    pub operator: String,
}

/// The answer to a start: queued, with its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The request's ticket.
    pub ticket: u64,
    /// Runs ahead of it, the one in progress included.
    pub ahead: usize,
}

/// The answer to an abort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aborting {
    /// The run that stops after the reading in progress.
    pub run_id: u64,
}

/// What a seal made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealSummary {
    /// The bundle files written, by name.
    pub bundles: Vec<String>,
    /// A run still in progress whose readings wait for it to end.
    pub waiting_for_run: Option<u64>,
}

/// What happens, as the event stream (`GET /v1/events`) sends it: one Server-Sent Event each,
/// named by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A run was asked for and queued.
    Queued {
        /// Its ticket.
        ticket: u64,
        /// Its sequence.
        sequence: String,
        /// Who asked.
        operator: String,
    },
    /// A run began.
    RunStarted {
        /// Run id.
        run_id: u64,
        /// The request's ticket, for a run asked for through the API.
        ticket: Option<u64>,
        /// Its sequence.
        sequence: String,
        /// Readings planned.
        total: u64,
    },
    /// A reading was committed.
    Reading {
        /// Run id.
        run_id: u64,
        /// Instrument.
        instrument: String,
        /// Sequence number in the log.
        seq: u64,
        /// Readings of the run so far.
        done: u64,
        /// Readings planned.
        total: u64,
        /// The raw reply.
        raw: String,
        /// The value as parsed.
        measurement: Measurement,
        /// Its unit.
        unit: String,
        /// When it was committed, UTC microseconds (where the status page plots it). Absent
        /// from an older daemon's events, hence the default.
        #[serde(default)]
        utc_us: i64,
    },
    /// A run ended.
    RunEnded {
        /// Run id.
        run_id: u64,
        /// The request's ticket, for a run asked for through the API.
        ticket: Option<u64>,
        /// `completed`, `failed`, `stopped`, `interrupted`.
        status: String,
        /// Readings committed.
        readings: u64,
        /// Why it failed, when it did.
        message: Option<String>,
    },
    /// An instrument went offline or came back.
    Instrument {
        /// Its name.
        name: String,
        /// `online` or `offline`.
        state: String,
    },
    /// A custody event was recorded (by `tsagent custody` or an official run's admission).
    Custody {
        /// The state after it.
        state: String,
        /// The custody event's kind, e.g. `custody_received`.
        event: String,
    },
    /// Bundles were sealed.
    Sealed {
        /// The bundle files written, by name.
        bundles: Vec<String>,
    },
    /// A subscriber fell behind by this many events (they are in the log).
    Missed {
        /// How many.
        count: u64,
    },
}

impl LiveEvent {
    /// The event's name in the stream.
    pub fn kind(&self) -> &'static str {
        match self {
            LiveEvent::Queued { .. } => "queued",
            LiveEvent::RunStarted { .. } => "run_started",
            LiveEvent::Reading { .. } => "reading",
            LiveEvent::RunEnded { .. } => "run_ended",
            LiveEvent::Instrument { .. } => "instrument",
            LiveEvent::Sealed { .. } => "sealed",
            LiveEvent::Custody { .. } => "custody",
            LiveEvent::Missed { .. } => "missed",
        }
    }
}

/// Why the daemon refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No sequence by that name.
    #[error("no sequence named `{0}` in the config")]
    UnknownSequence(String),
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
    /// No run is in progress to abort.
    #[error("no run is in progress")]
    NoRun,
    /// The run named is not the one in progress.
    #[error("run {asked} is not in progress (run {current} is)")]
    NotCurrent {
        /// The run asked for.
        asked: u64,
        /// The run in progress.
        current: u64,
    },
}

/// Why the daemon did not record a custody action, by what the client can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustodyRefusal {
    /// The action does not fit the standard's state (409): receiving twice, dispatching before
    /// receipt, a decision with no damage pending.
    #[error("{0}")]
    Conflict(String),
    /// The request's content is not acceptable (422): an unknown checklist item, an empty
    /// operator, a photo not uploaded.
    #[error("{0}")]
    Invalid(String),
    /// The daemon could not read or write the log (500).
    #[error("{0}")]
    Failed(String),
}

impl CustodyRefusal {
    /// The refusal for a custody error, its message the error and its causes on one line.
    pub fn of(e: &crate::custody::CustodyError) -> CustodyRefusal {
        use crate::custody::CustodyError as E;
        let message = crate::error::report(e);
        match e {
            E::Transition { .. } | E::NoDecisionPending => CustodyRefusal::Conflict(message),
            E::Item { .. }
            | E::Checklist { .. }
            | E::Empty { .. }
            | E::PhotoHash { .. }
            | E::PhotoNotKept { .. }
            | E::Photo { .. } => CustodyRefusal::Invalid(message),
            E::OfficialRefused { .. } | E::PhotoStore { .. } | E::Store(_) => {
                CustodyRefusal::Failed(message)
            }
        }
    }
}

/// The answer to a photo upload (`POST /v1/custody/photos`): the photo is kept by this hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoKept {
    /// SHA-256 of the bytes: what a receipt's `photos` names it by.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// A request the API hands to the daemon's loop, with the way back.
#[derive(Debug)]
pub enum Request {
    /// Queue a run.
    Start {
        /// What to run.
        start: StartRequest,
        /// The answer.
        reply: oneshot::Sender<Result<Queued, RequestError>>,
    },
    /// Abort the run in progress (or `run`, if it is the one in progress): it stops after the
    /// reading in progress and is marked `aborted`.
    Abort {
        /// The run meant, if the caller named one.
        run: Option<u64>,
        /// The answer: the run that will stop.
        reply: oneshot::Sender<Result<u64, RequestError>>,
    },
    /// Seal the runs that have ended, now (after the run in progress, if one is).
    Seal {
        /// The answer: the bundles made, or why none could be.
        reply: oneshot::Sender<Result<SealSummary, String>>,
    },
    /// Apply a custody action (`POST /v1/custody/{action}`).
    Custody {
        /// The action.
        action: crate::custody::ActionRequest,
        /// The answer: what was recorded, or why nothing was.
        reply: oneshot::Sender<Result<crate::custody::Recorded, CustodyRefusal>>,
    },
    /// The custody report (`GET /v1/custody`), the gate evaluated now.
    CustodyReport {
        /// The answer.
        reply: oneshot::Sender<Result<crate::custody::Report, CustodyRefusal>>,
    },
    /// A peer that may not steer the daemon was refused; the loop records it.
    Refused {
        /// The peer's credentials.
        uid: u32,
        /// The peer's group.
        gid: u32,
        /// The peer's process.
        pid: Option<i32>,
    },
}

/// Points kept per series for the status page's plots: a day at one reading every 20 s.
pub const SERIES_POINTS: usize = 4320;

/// The span of the status page's plots, microseconds.
pub const SERIES_SPAN_US: i64 = 24 * 3600 * 1_000_000;

/// One plotted series: an instrument's values in one unit, oldest first, as (UTC µs, value).
pub type Series = std::collections::VecDeque<(i64, f64)>;

/// What the daemon's loop and the API share: the status snapshot, the live events, and the last
/// day of each series for the status page.
#[derive(Debug)]
pub struct Hub {
    status: Mutex<Status>,
    events: broadcast::Sender<LiveEvent>,
    series: Mutex<std::collections::BTreeMap<String, Series>>,
}

impl Hub {
    /// A hub with this initial status.
    pub fn new(status: Status) -> Arc<Hub> {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Arc::new(Hub {
            status: Mutex::new(status),
            events,
            series: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// Adds a point to the series `name`, dropping points older than a day and the oldest beyond
    /// [`SERIES_POINTS`], so memory stays bounded however long the daemon runs.
    pub fn plot(&self, name: &str, utc_us: i64, value: f64) {
        let mut all = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let series = all.entry(name.to_owned()).or_default();
        series.push_back((utc_us, value));
        while series
            .front()
            .is_some_and(|(t, _)| utc_us - t > SERIES_SPAN_US)
            || series.len() > SERIES_POINTS
        {
            series.pop_front();
        }
    }

    /// A copy of every series, by name.
    pub fn series(&self) -> std::collections::BTreeMap<String, Series> {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The status, to read or change. A poisoned lock (a panic while holding it) still holds
    /// a whole snapshot: every change is a plain assignment.
    pub fn status(&self) -> MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends an event to every subscriber (none listening is fine).
    pub fn publish(&self, event: LiveEvent) {
        let _ = self.events.send(event);
    }

    /// A new subscriber to the live events.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }
}

/// The channel from the API to the daemon's loop.
pub fn requests() -> (mpsc::Sender<Request>, mpsc::Receiver<Request>) {
    // Small: a start is answered at once, so a backlog means the loop is busy committing.
    mpsc::channel(64)
}
