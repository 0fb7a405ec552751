//! `tsagent custody …`: the travelling standard's custody. While the daemon holds the lab it is
//! the one writer of the log, so each action is handed to it through its control socket
//! (`POST /v1/custody/…`, photos uploaded first); with no daemon the action is recorded here,
//! under the lab's lock. Either way the same `crate::custody::apply` records it and the output is
//! the same but for its first line, which says which.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::{Error, runtime};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::control::client::Client;
use crate::custody::{self, ActionRequest, PhotoRef, Recorded, Report, notes::NoteKind};
use crate::daemon::owner::{LabLock, OwnerError, Role};
use crate::store::Store;

/// `tsagent custody …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum CustodyCommand {
    /// Record the standard's receipt: condition, seals, a note, photos (kept by SHA-256 in
    /// `photos/` beside the database).
    Receive(ReceiveArgs),
    /// Record the arrival inspection, every item of `[[artefact.inspection]]` as NAME=RESULT.
    Inspect(InspectArgs),
    /// Record an incident; `damage` and `dropped` block official runs until a pilot decision.
    Incident(IncidentArgs),
    /// Record the pilot's decision on damage: official runs may go on.
    Decision(TextArgs),
    /// Record the standard's dispatch; official runs are refused from then on.
    Dispatch(DispatchArgs),
    /// Record a note.
    Note(NoteArgs),
    /// Show the state, the stabilisation gate and the custody timeline (recording the gate's
    /// opening when it finds it open).
    Status(ConfigArg),
    /// Write the confirmation note of receipt, in Chinese and English.
    NoteReceipt(NoteOutArgs),
    /// Write the dispatch note, in Chinese and English.
    NoteDispatch(NoteOutArgs),
}

/// `--config`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct ConfigArg {
    /// The lab's config file (its `[storage] db` is the log written).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// The standard's condition at receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Condition {
    /// No visible damage.
    Ok,
    /// Damaged: official runs wait for a pilot decision.
    Damaged,
}

/// The seals at receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Seals {
    /// Intact.
    Intact,
    /// Broken.
    Broken,
}

/// An incident's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IncidentKind {
    /// Damage found (blocks official runs until a decision).
    Damage,
    /// The standard lost power.
    #[value(name = "power_loss")]
    PowerLoss,
    /// The standard was dropped (blocks official runs until a decision).
    Dropped,
    /// Anything else.
    Other,
}

impl IncidentKind {
    fn request(self) -> custody::IncidentKind {
        match self {
            Self::Damage => custody::IncidentKind::Damage,
            Self::PowerLoss => custody::IncidentKind::PowerLoss,
            Self::Dropped => custody::IncidentKind::Dropped,
            Self::Other => custody::IncidentKind::Other,
        }
    }
}

/// `custody receive`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct ReceiveArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Who received it.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// Its condition.
    #[arg(long, value_enum)]
    pub condition: Condition,
    /// The seals.
    #[arg(long, value_enum)]
    pub seals: Seals,
    /// A note.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// A photo (repeatable).
    #[arg(long = "photo", value_name = "FILE")]
    pub photos: Vec<PathBuf>,
}

/// `custody inspect`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct InspectArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Who inspected it.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// One checklist item, NAME=RESULT: `"battery indicator=ok"`, `"thermistor=10.02 kOhm"`.
    #[arg(long = "item", value_name = "NAME=RESULT", required = true)]
    pub items: Vec<String>,
}

/// `custody incident`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct IncidentArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Who recorded it.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// What kind.
    #[arg(long, value_enum)]
    pub kind: IncidentKind,
    /// What happened.
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

/// `custody decision`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct TextArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Who recorded it.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// The pilot's decision as given (who, when, reference).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

/// `custody note`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct NoteArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Who wrote it.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// The note.
    #[arg(long, value_name = "TEXT")]
    pub text: String,
}

/// `custody dispatch`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct DispatchArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Who dispatched it.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// The carrier.
    #[arg(long, value_name = "NAME")]
    pub carrier: String,
    /// The carrier's tracking number.
    #[arg(long, value_name = "NUMBER")]
    pub tracking: String,
    /// Its condition on leaving, e.g. `ok`.
    #[arg(long, value_name = "TEXT")]
    pub condition: String,
}

/// `custody note-receipt`, `custody note-dispatch`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct NoteOutArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// Where to write it (standard output if not given).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also sign it with the lab's key: writes `<lab>-<artefact>-<receipt|dispatch>-note/` in DIR
    /// with `note.txt`, `SHA256SUMS` and `SHA256SUMS.sig`, verified like a bundle
    /// (`ssh-keygen -Y verify … < SHA256SUMS && sha256sum -c SHA256SUMS`).
    #[arg(long, value_name = "DIR")]
    pub signed: Option<PathBuf>,
}

/// Where a custody command is carried out.
enum Route {
    /// The daemon holds the lab: through its control socket.
    Daemon {
        /// The daemon's socket.
        client: Client,
        /// Its pid, for the first line.
        pid: u32,
        /// The runtime the client runs on.
        rt: tokio::runtime::Runtime,
    },
    /// No daemon: on the log directly.
    Direct {
        /// The lab's log.
        store: Store,
        /// The lab's lock, when it was free: held for the action, so no daemon starts and writes
        /// beside it meanwhile.
        _lock: Option<LabLock>,
    },
}

impl Route {
    /// The daemon when one holds the lab (as `measure` finds it), the log directly otherwise.
    fn find(config: &Config) -> Result<Route, Error> {
        let lock = match LabLock::acquire(config, Role::Custody) {
            Ok(lock) => Some(lock),
            Err(OwnerError::HeldByDaemon { holder }) => {
                return Ok(Route::Daemon {
                    client: Client::new(&holder.socket),
                    pid: holder.pid,
                    rt: runtime()?,
                });
            }
            // `measure` (or another `custody`) holds it: it has no API to go through, and each
            // custody action is its own write transaction, checked against the state it read.
            Err(OwnerError::Held { .. }) => None,
            // Held by a process not yet named, which may be a daemon starting: refused as
            // `measure` refuses it, rather than written beside it.
            Err(e) => return Err(e.into()),
        };
        Ok(Route::Direct {
            store: Store::open(&config.storage.db)?,
            _lock: lock,
        })
    }

    /// The first line: where the command is carried out (`done`: "recorded", "read").
    fn announce(&self, handed: &str, done: &str) {
        match self {
            Route::Daemon { pid, .. } => say!("{handed} the daemon (pid {pid})"),
            Route::Direct { .. } => say!("{done} here: no daemon holds this lab"),
        }
    }

    /// Keeps the photo files where the receipt's record will find them: uploaded to the daemon,
    /// or copied beside the database here. Each is named by the hash of the bytes read here, so a
    /// photo the daemon did not keep whole is refused with the receipt.
    fn keep_photos(&self, config: &Config, paths: &[PathBuf]) -> Result<Vec<PhotoRef>, Error> {
        paths
            .iter()
            .map(|path| {
                let (sha256, name) = match self {
                    Route::Daemon { client, rt, .. } => {
                        let bytes = custody::read_photo(path)?;
                        let sha256 = custody::photo_sha256(&bytes);
                        rt.block_on(client.upload_photo(bytes))?;
                        (sha256, custody::photo_name(path))
                    }
                    Route::Direct { .. } => {
                        let dir = custody::photo_dir(&config.storage.db);
                        let photo = custody::store_photo(&dir, path)?;
                        (photo.sha256, photo.name)
                    }
                };
                Ok(PhotoRef {
                    sha256,
                    name: Some(name),
                })
            })
            .collect()
    }

    /// Records `request`: through the daemon, or here with the same `custody::apply`.
    fn apply(&mut self, config: &Config, request: &ActionRequest) -> Result<Recorded, Error> {
        match self {
            Route::Daemon { client, rt, .. } => Ok(rt.block_on(client.custody(request))?),
            Route::Direct { store, .. } => Ok(custody::apply(
                store,
                config,
                SystemClock::new().now(),
                request,
            )?),
        }
    }

    /// The custody report: the daemon's, or made here.
    fn report(&mut self, config: &Config) -> Result<Report, Error> {
        match self {
            Route::Daemon { client, rt, .. } => Ok(rt.block_on(client.custody_report())?),
            Route::Direct { store, .. } => {
                Ok(custody::report(store, config, SystemClock::new().now())?)
            }
        }
    }
}

/// Runs `request` for the config at `path` (the daemon's or here), first line first.
fn act(
    path: &Path,
    request: impl FnOnce(&Route, &Config) -> Result<ActionRequest, Error>,
) -> Result<Recorded, Error> {
    let config = Config::load(path)?;
    let mut route = Route::find(&config)?;
    route.announce("handed to", "recorded");
    let request = request(&route, &config)?;
    route.apply(&config, &request)
}

/// Runs a `custody` subcommand.
pub fn run(cmd: CustodyCommand) -> Result<(), Error> {
    match cmd {
        CustodyCommand::Receive(a) => {
            let damaged = a.condition == Condition::Damaged;
            act(&a.config.config, |route, config| {
                Ok(ActionRequest::Receive(custody::ReceiveRequest {
                    operator: a.operator.clone(),
                    condition: if damaged {
                        custody::Condition::Damaged
                    } else {
                        custody::Condition::Ok
                    },
                    seals: match a.seals {
                        Seals::Intact => custody::Seals::Intact,
                        Seals::Broken => custody::Seals::Broken,
                    },
                    note: a.note.clone(),
                    photos: route.keep_photos(config, &a.photos)?,
                }))
            })?;
            say!("received: {} photo(s) kept", a.photos.len());
            if damaged {
                say!(
                    "damaged: official runs wait for the pilot's decision (`tsagent custody decision`)"
                );
            }
        }
        CustodyCommand::Inspect(a) => {
            act(&a.config.config, |_, _| {
                Ok(ActionRequest::Inspect(custody::InspectRequest {
                    operator: a.operator.clone(),
                    items: a.items.clone(),
                }))
            })?;
            say!("inspection recorded: {} item(s)", a.items.len());
        }
        CustodyCommand::Incident(a) => {
            let kind = a.kind.request();
            act(&a.config.config, |_, _| {
                Ok(ActionRequest::Incident(custody::IncidentRequest {
                    operator: a.operator.clone(),
                    kind,
                    note: a.note.clone(),
                }))
            })?;
            say!("incident recorded: {}", kind.as_str());
        }
        CustodyCommand::Decision(a) => {
            act(&a.config.config, |_, _| {
                Ok(ActionRequest::Decision(custody::DecisionRequest {
                    operator: a.operator.clone(),
                    note: a.note.clone(),
                }))
            })?;
            say!("decision recorded: official runs are no longer blocked by damage");
        }
        CustodyCommand::Dispatch(a) => {
            act(&a.config.config, |_, _| {
                Ok(ActionRequest::Dispatch(custody::DispatchRequest {
                    operator: a.operator.clone(),
                    carrier: a.carrier.clone(),
                    tracking: a.tracking.clone(),
                    condition: a.condition.clone(),
                }))
            })?;
            say!("dispatched: official runs are refused from now on");
        }
        CustodyCommand::Note(a) => {
            act(&a.config.config, |_, _| {
                Ok(ActionRequest::Note(custody::NoteRequest {
                    operator: a.operator.clone(),
                    text: a.text.clone(),
                }))
            })?;
            say!("note recorded");
        }
        CustodyCommand::Status(a) => {
            let config = Config::load(&a.config)?;
            let mut route = Route::find(&config)?;
            route.announce("through", "read");
            print_report(&route.report(&config)?);
        }
        CustodyCommand::NoteReceipt(a) => write_note(&a, NoteKind::Receipt)?,
        CustodyCommand::NoteDispatch(a) => write_note(&a, NoteKind::Dispatch)?,
    }
    Ok(())
}

/// What `custody status` prints, from the daemon's report or one made here alike.
fn print_report(report: &Report) {
    say!("state: {}", report.state);
    match (report.gate.state.as_str(), &report.gate.reason) {
        ("open", _) => say!("gate: open — official runs may start"),
        ("opened", _) => say!("gate: opened now (recorded) — official runs may start"),
        (_, Some(why)) => say!("gate: closed — {why}"),
        (state, None) => say!("gate: {state}"),
    }
    for c in &report.calibrations {
        say!(
            "calibration: {} certificate {} calibrated {} due {}{}",
            c.instrument,
            c.certificate,
            c.calibrated,
            c.due,
            if c.past_due { " (past due)" } else { "" }
        );
    }
    if let Some(d) = &report.next_deadline {
        say!("next deadline: {}{}", d.describe(), deadline_note(d.phase));
    }
    say!("timeline:");
    for line in &report.timeline {
        say!("  {}  {}  {}", line.utc, line.kind, line.detail);
    }
}

/// What a deadline's phase adds to its line.
pub(super) fn deadline_note(phase: custody::Phase) -> &'static str {
    match phase {
        custody::Phase::Ahead => "",
        custody::Phase::Due => " — due soon",
        custody::Phase::Past => " — past, and not recorded",
    }
}

/// Writes a receipt or dispatch note. It only reads the log when the daemon holds the lab (the
/// key checked against the recorded one without recording it), so it stays here rather than going
/// through the API: the note and its signature are files for the operator, made with the lab's
/// key, which the daemon's user need not be able to reach.
fn write_note(a: &NoteOutArgs, kind: NoteKind) -> Result<(), Error> {
    let config = Config::load(&a.config.config)?;
    let (beside_daemon, _lock) = match LabLock::acquire(&config, Role::Custody) {
        Ok(lock) => (false, Some(lock)),
        Err(OwnerError::HeldByDaemon { .. }) => (true, None),
        Err(OwnerError::Held { .. }) => (false, None),
        Err(e) => return Err(e.into()),
    };
    let mut store = Store::open(&config.storage.db)?;
    let (state, rows) = custody::load(&store, &config)?;
    let Some(text) = custody::notes::render(kind, &config, &rows) else {
        return Err(Error::Usage(format!(
            "no {} to write a note of: the standard is {}",
            match kind {
                NoteKind::Receipt => "receipt",
                NoteKind::Dispatch => "dispatch",
            },
            state.state
        )));
    };
    if let Some(dir) = &a.signed {
        let key = if beside_daemon {
            crate::sealing::recorded_key(&config, &store)?
        } else {
            crate::sealing::checked_key(&config, &mut store, &SystemClock::new())?
        };
        let signed = tsagent_bundle::note::sign_note(text.as_bytes(), &key)?;
        let name = format!(
            "{}-{}-{}-note",
            config.lab.id,
            config.artefact.id,
            match kind {
                NoteKind::Receipt => "receipt",
                NoteKind::Dispatch => "dispatch",
            }
        );
        let folder = dir.join(&name);
        let io = |source| Error::Io {
            action: "write the signed note into",
            path: folder.clone(),
            source,
        };
        std::fs::create_dir_all(&folder).map_err(io)?;
        for (file, bytes) in [
            (tsagent_bundle::note::NOTE_FILE, text.as_bytes()),
            ("SHA256SUMS", &signed.sums),
            ("SHA256SUMS.sig", &signed.sig),
        ] {
            tsagent_bundle::write_file_atomically(&folder, file, bytes).map_err(io)?;
        }
        tell!("signed note written to {}", folder.display());
    }
    match &a.out {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Io {
            action: "write",
            path: path.clone(),
            source,
        })?,
        None => say!("{}", text.trim_end()),
    }
    Ok(())
}
