//! `tsagent custody …`: the travelling standard's custody, recorded directly in the lab's log
//! (the logic is `crate::custody`'s, which the daemon's control API can call the same way).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tsagent_bundle::event::CustodyDispatched;

use super::Error;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::custody::{self, Gate, notes::NoteKind};
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
    fn as_str(self) -> &'static str {
        match self {
            Self::Damage => "damage",
            Self::PowerLoss => "power_loss",
            Self::Dropped => "dropped",
            Self::Other => "other",
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

/// Opens the lab's config and log.
fn open(config: &ConfigArg) -> Result<(Config, Store), Error> {
    let config = Config::load(&config.config)?;
    let store = Store::open(&config.storage.db)?;
    Ok((config, store))
}

/// Runs a `custody` subcommand.
pub fn run(cmd: CustodyCommand) -> Result<(), Error> {
    let now = SystemClock::new().now();
    match cmd {
        CustodyCommand::Receive(a) => {
            let (config, mut store) = open(&a.config)?;
            let receipt = custody::Receipt {
                operator: &a.operator,
                damaged: a.condition == Condition::Damaged,
                seals_intact: a.seals == Seals::Intact,
                note: a.note.as_deref(),
                photos: &a.photos,
            };
            custody::receive(&mut store, &config, now, &receipt)?;
            say!("received: {} photo(s) kept", a.photos.len());
            if receipt.damaged {
                say!(
                    "damaged: official runs wait for the pilot's decision (`tsagent custody decision`)"
                );
            }
        }
        CustodyCommand::Inspect(a) => {
            let (config, mut store) = open(&a.config)?;
            custody::inspect(&mut store, &config, now, &a.operator, &a.items)?;
            say!("inspection recorded: {} item(s)", a.items.len());
        }
        CustodyCommand::Incident(a) => {
            let (config, mut store) = open(&a.config)?;
            let kind = a.kind.as_str();
            custody::incident(&mut store, &config, now, &a.operator, kind, &a.note)?;
            say!("incident recorded: {kind}");
        }
        CustodyCommand::Decision(a) => {
            let (config, mut store) = open(&a.config)?;
            let event = tsagent_bundle::event::Event::CustodyDecision(
                tsagent_bundle::event::CustodyDecision {
                    operator: a.operator,
                    note: a.note,
                },
            );
            custody::record(&mut store, &config, now, custody::Action::Decision, event)?;
            say!("decision recorded: official runs are no longer blocked by damage");
        }
        CustodyCommand::Dispatch(a) => {
            let (config, mut store) = open(&a.config)?;
            let dispatched = CustodyDispatched {
                operator: a.operator,
                carrier: a.carrier,
                tracking: a.tracking,
                condition: a.condition,
            };
            custody::dispatch(&mut store, &config, now, dispatched)?;
            say!("dispatched: official runs are refused from now on");
        }
        CustodyCommand::Note(a) => {
            let (config, mut store) = open(&a.config)?;
            custody::note(&mut store, &config, now, &a.operator, &a.text)?;
            say!("note recorded");
        }
        CustodyCommand::Status(a) => status(&a, now)?,
        CustodyCommand::NoteReceipt(a) => write_note(&a, NoteKind::Receipt)?,
        CustodyCommand::NoteDispatch(a) => write_note(&a, NoteKind::Dispatch)?,
    }
    Ok(())
}

fn status(a: &ConfigArg, now: crate::clock::Timestamp) -> Result<(), Error> {
    let (config, mut store) = open(a)?;
    let gate = custody::gate_now(&mut store, &config, now)?;
    let (state, rows) = custody::load(&store, &config)?;
    say!("state: {}", state.state);
    match &gate {
        Gate::Open => say!("gate: open — official runs may start"),
        Gate::Opens(_) => say!("gate: opened now (recorded) — official runs may start"),
        Gate::Closed(why) => say!("gate: closed — {why}"),
    }
    for i in &config.instruments {
        if let Some(c) = &i.calibration {
            let expired = now.utc_us >= c.due.end_utc_us();
            say!(
                "calibration: {} certificate {} calibrated {} due {}{}",
                i.name,
                c.certificate,
                c.calibrated,
                c.due,
                if expired { " (past due)" } else { "" }
            );
        }
    }
    say!("timeline:");
    for row in &rows {
        say!(
            "  {}  {}  {}",
            tsagent_bundle::time::rfc3339(row.utc_us),
            row.kind,
            row.detail
        );
    }
    Ok(())
}

fn write_note(a: &NoteOutArgs, kind: NoteKind) -> Result<(), Error> {
    let (config, mut store) = open(&a.config)?;
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
        let key = crate::sealing::checked_key(&config, &mut store, &SystemClock::new())?;
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
