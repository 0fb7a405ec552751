//! Configuration in two stages: [`raw`] records what the TOML file says; [`Config`] is the validated,
//! resolved form that the rest of the agent receives explicitly. Errors name the file, line and key.

mod budget;
mod date;
pub mod instant;
pub mod raw;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::drivers::{Profile, Registry};
use crate::transport::{
    DataBits, FlowControl, LinkSettings, Parity, Resource, SerialSettings, StopBits,
};
pub use budget::{
    CalibrationUncertainty, ComponentSource, Correction, DEFAULT_WITHIN, UncertaintyComponent,
};
pub use date::CalendarDate;
pub use raw::ExchangeLog;
use raw::{RawConfig, RawFlowControl, RawInstrument, RawParity, RawSequence, RawStep};
pub use report::{Language, ReportInfo};
use tsagent_sim::{SimIdentity, SimParams};

/// The demo lab, compiled in: `tsagent demo` runs it with no file and no hardware.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The profile of an instrument that names none.
pub const DEFAULT_DRIVER: &str = "generic-scpi-dmm";

/// Resource string that stands for the built-in simulator, served on a pseudo-terminal in-process and
/// reached through the real serial code path.
pub const SIM_PTY_RESOURCE: &str = "SIM::PTY::INSTR";

/// A configuration problem, located.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config path is not a regular file (a FIFO is refused, not waited on) or is too large.
    #[error(transparent)]
    File(#[from] tsagent_bundle::file::FileError),
    /// The TOML is malformed or has an unknown key or a value of the wrong type.
    #[error("{origin}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Parse {
        /// File name (or "embedded demo config").
        origin: String,
        /// 1-based line (the last line when the parser names no place: a missing table).
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key the error is at, when the text has one there.
        key: Option<String>,
        /// The parser's message, in a lab's words.
        message: String,
    },
    /// A driver profile (built in, in `[drivers] dir`, or as overridden) is invalid.
    #[error(transparent)]
    Driver(crate::drivers::ProfileError),
    /// A value is well-formed TOML but not acceptable.
    #[error("{origin}:{line}: invalid `{key}`: {reason}")]
    Invalid {
        /// File name (or "embedded demo config").
        origin: String,
        /// 1-based line.
        line: usize,
        /// Dotted key, e.g. `instrument.baud`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// `[lab]`.
#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    /// Short id (`[A-Za-z0-9._-]`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
}

/// `[artefact]`.
#[derive(Debug, Clone, Serialize)]
pub struct Artefact {
    /// Short id (`[A-Za-z0-9._-]`).
    pub id: String,
    /// Kind, e.g. `zener`.
    pub kind: String,
    /// Serial number.
    pub serial: String,
    /// Manufacturer, when the lab names it (a report needs it).
    #[serde(skip)]
    pub manufacturer: Option<String>,
    /// Model, when the lab names it.
    #[serde(skip)]
    pub model: Option<String>,
    /// Nominal value.
    pub nominal: f64,
    /// Unit of the nominal value.
    pub unit: String,
    /// The arrival checklist (`[[artefact.inspection]]`), in the config's order.
    #[serde(skip)]
    pub inspection: Vec<InspectionItem>,
    /// When official measurements may start (`[artefact.stabilisation]`).
    #[serde(skip)]
    pub stabilisation: Stabilisation,
    /// The pilot's circulation timetable for this lab (`[artefact.deadlines]`).
    #[serde(skip)]
    pub deadlines: Deadlines,
}

/// `[artefact.deadlines]`: by when the pilot's circulation timetable expects this lab to have
/// received the standard and to have sent it on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// The standard is to be received by then.
    pub receive_by: Option<Deadline>,
    /// The standard is to be dispatched by then.
    pub dispatch_by: Option<Deadline>,
}

/// One deadline of the timetable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    /// As the config writes it, e.g. `2026-12-10` or `2026-12-10T17:00:00+08:00`.
    pub text: String,
    /// The instant it falls at, UTC µs: for a date, the end of that day (UTC), as a calibration
    /// due on a date is valid through it.
    pub utc_us: i64,
}

/// One item of the arrival checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionItem {
    /// Its name, as `custody inspect --item NAME=RESULT` gives it.
    pub item: String,
    /// A check or a value.
    pub kind: ItemKind,
    /// The unit of a value item.
    pub unit: Option<String>,
}

/// What an inspection item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A result word, e.g. `ok`.
    Check,
    /// A number in the item's unit.
    Value,
}

/// `[artefact.stabilisation]`: the gate official runs wait for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stabilisation {
    /// Least time from receipt (default zero: the gate needs only the receipt, and the criterion
    /// if any).
    pub min: Duration,
    /// The data criterion, when configured.
    pub criterion: Option<DriftCriterion>,
}

/// The data criterion of the gate: a drift fit over the recent readings of a monitoring sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftCriterion {
    /// The monitoring sequence.
    pub sequence: String,
    /// How far back the fit reaches.
    pub window: Duration,
    /// Largest |drift| + k·u(drift), relative to the artefact's nominal value, per day.
    pub max_drift: f64,
    /// Coverage factor.
    pub k: f64,
    /// The instrument fitted, when named (needed if the sequence reads several in the unit).
    pub instrument: Option<String>,
    /// The quantity fitted, when named (needed if the sequence reads several in the unit).
    pub quantity: Option<String>,
}

/// `[policy] expired_calibration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiredCalibration {
    /// An official run with an instrument past due does not start (the default: a result on an
    /// untraceable standard is of no use to the pilot).
    #[default]
    Refuse,
    /// It goes on, flagged by a `calibration_expired` event.
    Flag,
}

impl ExpiredCalibration {
    /// The policy's name as configs and events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::Flag => "flag",
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// What an official run does with an instrument past its calibration's due date.
    pub expired_calibration: ExpiredCalibration,
}

/// An instrument's calibration: its traceability.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The certificate's reference.
    pub certificate: String,
    /// When it was calibrated.
    pub calibrated: CalendarDate,
    /// When the next calibration is due; it is valid through that day.
    pub due: CalendarDate,
    /// The uncertainty the certificate states, when the lab gives it (for the budget).
    pub uncertainty: Option<CalibrationUncertainty>,
}

/// `[storage]`, with paths resolved.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The SQLite file.
    pub db: PathBuf,
    /// Where sealed bundles are written.
    pub bundles: PathBuf,
    /// Which exchanges become events.
    pub log_exchanges: ExchangeLog,
}

/// `[signing]`, with the path resolved.
#[derive(Debug, Clone)]
pub struct Signing {
    /// OpenSSH Ed25519 private key.
    pub key: PathBuf,
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    /// The command and its first arguments; empty: conditions are logged and stored, not sent.
    pub command: Vec<String>,
    /// How long an instrument may be offline before it alerts.
    pub after: Duration,
    /// How many runs failing in a row alert.
    pub failed_runs: u32,
    /// Free bytes under which the database's disk alerts.
    pub disk_free_below: Option<u64>,
    /// The least time between two alerts of one condition.
    pub repeat: Duration,
    /// How long before a custody deadline whose action is not recorded it alerts (and status
    /// calls it due).
    pub deadline_notice: Duration,
}

/// `[sealing]`.
#[derive(Debug, Clone, Default)]
pub struct Sealing {
    /// How often the daemon seals the runs that have ended; none: only `bundle seal` or the API.
    pub every: Option<Duration>,
}

/// `[upload]`: where sealed bundles and heartbeats go.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The coordinator's URL, `http://` or `https://`.
    pub url: String,
    /// Its public key: receipts and checkpoints must be signed by it.
    pub coordinator_key: tsagent_bundle::PublicKey,
    /// The CA certificate to trust for https, if not the system's.
    pub ca: Option<PathBuf>,
    /// How often the daemon sends a heartbeat.
    pub heartbeat: Duration,
}

/// `[status]`: the daemon's read-only status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPage {
    /// Where it listens (loopback by default).
    pub listen: std::net::SocketAddr,
}

/// `[control]`, with the path resolved.
#[derive(Debug, Clone)]
pub struct Control {
    /// The daemon's control socket: `[control] socket`, by default `tsagent.sock` beside the
    /// database.
    pub socket: PathBuf,
    /// A group whose members may steer the daemon, besides root and the daemon's own user.
    pub group: Option<String>,
}

/// How to reach an instrument.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A real resource: serial port or TCP socket.
    Resource(Resource),
    /// The built-in simulator, started on a pseudo-terminal and reached over the serial path.
    SimulatorPty,
}

/// `[[instrument]]`.
#[derive(Debug, Clone)]
pub struct Instrument {
    /// Name used by steps.
    pub name: String,
    /// Where it is.
    pub endpoint: Endpoint,
    /// Serial line settings (ignored for TCP and GPIB).
    pub serial: SerialSettings,
    /// Terminations, deadline and reply cap.
    pub link: LinkSettings,
    /// Its driver profile, with the lab's overrides applied.
    pub profile: Arc<Profile>,
    /// Parameter values for its operations, under what a step gives.
    pub params: BTreeMap<String, String>,
    /// USB serial number to find its serial port again after a reconnect.
    pub usb_serial: Option<String>,
    /// The unit's own serial number, when the lab names it: another unit is refused.
    pub serial_number: Option<String>,
    /// Its calibration, when the lab gives it.
    pub calibration: Option<Calibration>,
}

impl Instrument {
    /// The resource string as configured.
    pub fn resource_text(&self) -> String {
        match &self.endpoint {
            Endpoint::Resource(r) => r.to_string(),
            Endpoint::SimulatorPty => SIM_PTY_RESOURCE.to_owned(),
        }
    }
}

/// How to reach a Prologix adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum AdapterEndpoint {
    /// `PRLGX-ASRL…::INTFC` or `PRLGX-TCPIP…::INTFC`.
    Resource(Resource),
    /// `SIM::GPIB<n>::INTFC`: the built-in simulated adapter on a pseudo-terminal, with a
    /// simulated instrument of each GPIB instrument's driver at its address.
    Simulator,
}

/// The adapter resource of the built-in simulated Prologix adapter for board `n`.
pub fn sim_adapter_resource(board: u8) -> String {
    format!("SIM::GPIB{board}::INTFC")
}

/// Reads `SIM::GPIB<n>::INTFC` (any case) as board `n`.
fn parse_sim_adapter(text: &str) -> Option<u8> {
    let upper = text.to_ascii_uppercase();
    let board = upper.strip_prefix("SIM::GPIB")?.strip_suffix("::INTFC")?;
    if board.is_empty() {
        return Some(0);
    }
    if !board.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    board.parse().ok()
}

/// `[[adapter]]`: a Prologix GPIB adapter serving the instruments on its board.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Where the adapter is.
    pub endpoint: AdapterEndpoint,
    /// The board number `GPIB<n>::…` instruments name.
    pub board: u8,
    /// Serial settings of a GPIB-USB adapter.
    pub serial: SerialSettings,
    /// `++read_tmo_ms`.
    pub read_tmo_ms: u16,
}

/// `[[sequence]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Sequence {
    /// Name.
    pub name: String,
    /// Schedule under `tsagent run`: slots at whole multiples of this period since the Unix
    /// epoch (UTC), so `30m` runs at :00 and :30.
    #[serde(serialize_with = "ser_opt_duration")]
    pub every: Option<Duration>,
    /// Offset of the slots from those multiples, less than `every` (`every = "1h"`, `at = "15m"`:
    /// :15 each hour). Left out of the sequence hash when absent, so that configs without it
    /// hash as before.
    #[serde(
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub at: Option<Duration>,
    /// An official measurement: it starts only in the official window. Left out of the sequence
    /// hash when false, so that configs without it hash as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub official: bool,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One step of a sequence. Instruments are referred to by name; the name is known to exist, and
/// so do the operation and its parameters in that instrument's profile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Query the identity and record it.
    Identify {
        /// Instrument name.
        instrument: String,
    },
    /// Run the profile's `configure` operation.
    Configure {
        /// Instrument name.
        instrument: String,
        /// Parameter values.
        params: BTreeMap<String, String>,
    },
    /// Run an operation whose result is not stored as readings.
    Operate {
        /// Instrument name.
        instrument: String,
        /// Operation name.
        op: String,
        /// Parameter values.
        params: BTreeMap<String, String>,
    },
    /// Take readings.
    Read(ReadStep),
    /// Drain the error queue into events.
    DrainErrors {
        /// Instrument name.
        instrument: String,
    },
}

impl Sequence {
    /// SHA-256 of this sequence's definition in a canonical JSON form (name, schedule, steps with
    /// their resolved parameters); each run's `run_started` event carries it, so the pilot can tell
    /// which runs followed the same method.
    pub fn sha256(&self) -> [u8; 32] {
        // Serialising plain structs of strings and integers cannot fail; an empty hash input would
        // still be a stable, if useless, value.
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(json).into()
    }
}

impl Step {
    /// The instrument the step talks to.
    pub fn instrument(&self) -> &str {
        match self {
            Step::Identify { instrument }
            | Step::Configure { instrument, .. }
            | Step::Operate { instrument, .. }
            | Step::DrainErrors { instrument } => instrument,
            Step::Read(r) => &r.instrument,
        }
    }
}

/// `read = { … }`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadStep {
    /// Instrument name.
    pub instrument: String,
    /// The operation that yields readings.
    pub op: String,
    /// Parameter values.
    pub params: BTreeMap<String, String>,
    /// How many times the operation runs.
    pub count: u32,
    /// Start-to-start spacing of the runs.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Quantity name for values the reply does not name.
    pub quantity: Option<String>,
    /// Unit for values the reply gives none for.
    pub unit: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub origin: String,
    /// `[lab]`.
    pub lab: Lab,
    /// `[artefact]`.
    pub artefact: Artefact,
    /// `[storage]`.
    pub storage: Storage,
    /// `[signing]`.
    pub signing: Signing,
    /// `[alerts]`.
    pub alerts: Alerts,
    /// `[sealing]`.
    pub sealing: Sealing,
    /// `[control]`.
    pub control: Control,
    /// `[status]`, when the page is wanted.
    pub status: Option<StatusPage>,
    /// `[upload]`, when bundles go to a coordinator.
    pub upload: Option<Upload>,
    /// `[policy]`.
    pub policy: Policy,
    /// The model behind simulated instruments.
    pub simulator: SimParams,
    /// Faults the simulators started from this config inject (`[simulator] faults`).
    pub simulator_faults: Vec<tsagent_sim::Fault>,
    /// Driver profiles: the built-in ones and the lab's.
    pub drivers: Arc<Registry>,
    /// Prologix adapters.
    pub adapters: Vec<Adapter>,
    /// Instruments.
    pub instruments: Vec<Instrument>,
    /// Sequences.
    pub sequences: Vec<Sequence>,
    /// `[[correction]]`: environmental corrections of the measurand.
    pub corrections: Vec<Correction>,
    /// `[[uncertainty]]`: the stated and calibration components of the budget.
    pub uncertainty: Vec<UncertaintyComponent>,
    /// `[report]`.
    pub report: ReportInfo,
}

/// Largest config file read: far beyond any real one, and a bound on what a wrong path (a log
/// file, a device) can make the agent read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

impl Config {
    /// Reads and validates a file; relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // A regular file only: a FIFO or device given as the path is refused, not waited on.
        let text = tsagent_bundle::file::read_regular_text("config file", path, MAX_CONFIG_BYTES)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &path.display().to_string(), base)
    }

    /// The embedded demo configuration with its paths under `base_dir`.
    pub fn demo(base_dir: &Path) -> Result<Config, ConfigError> {
        Self::parse(DEMO_TOML, "embedded demo config", base_dir)
    }

    /// Validates TOML text. `origin` names it in errors; `base_dir` anchors relative paths.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // A whole-file error (a missing table) comes without a place: it is then the end of
            // the file, where the table would go, never a line 0.
            // A missing top-level table (`[artefact]`) comes as the empty place at the start, or
            // as the whole document: no place in the text either.
            let span = e.span().filter(|span| {
                !(span.start == 0 && (span.end == 0 || span.end >= text.trim_end().len()))
            });
            let offset = span
                .as_ref()
                .map_or(text.trim_end().len(), |span| span.start);
            let (line, column) = line_col(text, offset);
            let key = span.and_then(|span| {
                let tree = toml::de::DeTable::parse(text).ok()?;
                let path = crate::drivers::path_at(tree.get_ref(), span.start);
                (!path.is_empty()).then(|| without_indices(&path))
            });
            ConfigError::Parse {
                origin: origin.to_owned(),
                line,
                column,
                key,
                message: plain_message(e.message()),
            }
        })?;
        Validator { text, origin }.config(raw, base_dir)
    }

    /// The instrument with this name.
    pub fn instrument(&self, name: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.name == name)
    }

    /// The sequence with this name.
    pub fn sequence(&self, name: &str) -> Option<&Sequence> {
        self.sequences.iter().find(|s| s.name == name)
    }

    /// SHA-256 of the sequence definitions in a canonical JSON form; goes into every bundle so the
    /// pilot can tell whether the method changed between bundles.
    pub fn sequences_sha256(&self) -> [u8; 32] {
        // Serialising plain structs of strings and integers cannot fail; an empty hash input would
        // still be a stable, if useless, value.
        let json = serde_json::to_vec(&self.sequences).unwrap_or_default();
        Sha256::digest(json).into()
    }
}

struct Validator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Validator<'_> {
    fn invalid<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line: line_col(self.text, span.start).0,
            key: key.to_owned(),
            reason: reason.into(),
        })
    }

    fn config(&self, raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let lab = Lab {
            id: self.id(&raw.lab.id, "lab.id")?,
            name: raw.lab.name,
        };
        let nominal = *raw.artefact.nominal.get_ref();
        if !nominal.is_finite() {
            return self.invalid(
                raw.artefact.nominal.span(),
                "artefact.nominal",
                "must be a finite number",
            );
        }
        let artefact = Artefact {
            id: self.id(&raw.artefact.id, "artefact.id")?,
            kind: raw.artefact.kind,
            serial: raw.artefact.serial,
            manufacturer: raw
                .artefact
                .manufacturer
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty()),
            model: raw
                .artefact
                .model
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty()),
            nominal,
            unit: raw.artefact.unit,
            inspection: self.inspection(&raw.artefact.inspection)?,
            stabilisation: Stabilisation::default(),
            deadlines: match &raw.artefact.deadlines {
                Some(d) => self.deadlines(d)?,
                None => Deadlines::default(),
            },
        };
        let policy = Policy {
            expired_calibration: match raw.policy.expired_calibration {
                Some(raw::RawExpiredCalibration::Flag) => ExpiredCalibration::Flag,
                Some(raw::RawExpiredCalibration::Refuse) | None => ExpiredCalibration::Refuse,
            },
        };
        let storage = Storage {
            db: self.file_path(raw.storage.db.as_ref(), "tsagent.db", "storage.db", base)?,
            bundles: self.folder_path(
                raw.storage.bundles.as_ref(),
                "bundles",
                "storage.bundles",
                base,
            )?,
            log_exchanges: raw
                .storage
                .log_exchanges
                .unwrap_or(ExchangeLog::ExceptReadings),
        };
        let signing = Signing {
            key: self.file_path(
                raw.signing.key.as_ref(),
                "keys/lab_ed25519",
                "signing.key",
                base,
            )?,
        };
        let alerts = self.alerts(raw.alerts)?;
        let sealing = Sealing {
            every: match &raw.sealing.every {
                Some(e) => {
                    let d = self.duration(e, "sealing.every")?;
                    if d < Duration::from_secs(1) {
                        return self.invalid(
                            e.span(),
                            "sealing.every",
                            "at least 1s (e.g. \"24h\")",
                        );
                    }
                    Some(d)
                }
                None => None,
            },
        };
        let status = match raw.status {
            None => None,
            Some(page) => Some(StatusPage {
                listen: match page.listen {
                    None => std::net::SocketAddr::from(([127, 0, 0, 1], 8470)),
                    Some(l) => match l.get_ref().parse() {
                        Ok(addr) => addr,
                        Err(_) => {
                            return self.invalid(
                                l.span(),
                                "status.listen",
                                "an address and port, e.g. \"127.0.0.1:8470\"",
                            );
                        }
                    },
                },
            }),
        };
        let upload = match &raw.upload {
            None => None,
            Some(table) => Some(self.upload(table.get_ref(), table.span(), base)?),
        };
        let control = Control {
            socket: match raw.control.socket.as_ref() {
                Some(socket) => {
                    self.file_path(Some(socket), "tsagent.sock", "control.socket", base)?
                }
                None => storage.db.with_file_name("tsagent.sock"),
            },
            group: raw.control.group.filter(|g| !g.is_empty()),
        };
        let (simulator, simulator_faults) = match raw.simulator {
            Some(table) => {
                let span = table.span();
                let mut table = table.into_inner();
                let faults = std::mem::take(&mut table.faults)
                    .iter()
                    .map(|f| {
                        f.get_ref().parse().or_else(|e: tsagent_sim::SpecError| {
                            self.invalid(f.span(), "simulator.faults", e.to_string())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (self.simulator(table, nominal, span)?, faults)
            }
            None => (
                self.simulator(raw::RawSimulator::default(), nominal, 0..0)?,
                Vec::new(),
            ),
        };

        let mut drivers = Registry::builtin().map_err(ConfigError::Driver)?;
        if let Some(dir) = &raw.drivers.dir {
            drivers
                .add_dir(&base.join(dir))
                .map_err(ConfigError::Driver)?;
        }
        let mut adapters: Vec<Adapter> = Vec::with_capacity(raw.adapters.len());
        for ra in raw.adapters {
            let span = ra.resource.span();
            let adapter = self.adapter(ra)?;
            if adapters.iter().any(|a| a.board == adapter.board) {
                return self.invalid(
                    span,
                    "adapter.resource",
                    format!("board {} has two adapters", adapter.board),
                );
            }
            adapters.push(adapter);
        }

        let mut instruments: Vec<Instrument> = Vec::with_capacity(raw.instruments.len());
        for ri in raw.instruments {
            let name_span = ri.name.span();
            let resource_span = ri.resource.span();
            let inst = self.instrument(ri, &drivers, &adapters)?;
            // Two instruments at one GPIB address would both answer every read.
            if let Endpoint::Resource(gpib @ Resource::Gpib { .. }) = &inst.endpoint
                && let Some(other) = instruments
                    .iter()
                    .find(|b| b.endpoint == Endpoint::Resource(gpib.clone()))
            {
                return self.invalid(
                    resource_span,
                    "instrument.resource",
                    format!("{gpib} is also `{}`", other.name),
                );
            }
            // Duplicate names would make steps ambiguous.
            if instruments.iter().any(|b| b.name == inst.name) {
                return self.invalid(
                    name_span,
                    "instrument.name",
                    format!("`{}` is used by more than one instrument", inst.name),
                );
            }
            instruments.push(inst);
        }

        if raw.sequences.is_empty() {
            // Nothing could be measured: say so at `config check`, not at the first `measure`.
            let end = self.text.trim_end().len();
            return self.invalid(
                end..end,
                "sequence",
                "the config defines no sequence: add a [[sequence]] with its [[sequence.step]]s",
            );
        }
        let mut sequences: Vec<Sequence> = Vec::with_capacity(raw.sequences.len());
        for rs in raw.sequences {
            let name_span = rs.name.span();
            let seq = self.sequence(rs, &instruments)?;
            if sequences.iter().any(|s| s.name == seq.name) {
                return self.invalid(
                    name_span,
                    "sequence.name",
                    format!("`{}` is defined twice", seq.name),
                );
            }
            sequences.push(seq);
        }
        let mut artefact = artefact;
        if let Some(s) = &raw.artefact.stabilisation {
            artefact.stabilisation = self.stabilisation(s, &sequences, nominal)?;
        }
        let corrections = self.corrections(&raw.corrections, &instruments, &sequences, nominal)?;
        let uncertainty = self.uncertainty_components(&raw.uncertainty, &instruments)?;
        let report = self.report(raw.report, &lab, &artefact)?;

        Ok(Config {
            origin: self.origin.to_owned(),
            lab,
            artefact,
            storage,
            signing,
            alerts,
            sealing,
            upload,
            control,
            status,
            policy,
            simulator,
            simulator_faults,
            drivers: Arc::new(drivers),
            adapters,
            instruments,
            sequences,
            corrections,
            uncertainty,
            report,
        })
    }

    /// The span of a dotted key's value in the text, when the text has it.
    fn key_span(&self, key: &str) -> Option<std::ops::Range<usize>> {
        let tree = toml::de::DeTable::parse(self.text).ok()?;
        crate::drivers::span_of(tree.get_ref(), key)
    }

    /// A file path setting (`storage.db`, `signing.key`), resolved against `base`: it must name a
    /// file, not be empty or a folder.
    fn file_path(
        &self,
        value: Option<&Spanned<String>>,
        default: &str,
        key: &str,
        base: &Path,
    ) -> Result<PathBuf, ConfigError> {
        let Some(value) = value else {
            return Ok(base.join(default));
        };
        let text = value.get_ref();
        if text.trim().is_empty() {
            return self.invalid(
                value.span(),
                key,
                format!("must name a file, e.g. \"{default}\""),
            );
        }
        let path = base.join(text);
        if text.ends_with('/') || path.is_dir() {
            return self.invalid(
                value.span(),
                key,
                format!("`{text}` is a folder; name a file in it, e.g. \"{default}\""),
            );
        }
        Ok(path)
    }

    /// A folder path setting (`storage.bundles`), resolved against `base`: not empty, not a file.
    fn folder_path(
        &self,
        value: Option<&Spanned<String>>,
        default: &str,
        key: &str,
        base: &Path,
    ) -> Result<PathBuf, ConfigError> {
        let Some(value) = value else {
            return Ok(base.join(default));
        };
        let text = value.get_ref();
        if text.trim().is_empty() {
            return self.invalid(
                value.span(),
                key,
                format!("must name a folder, e.g. \"{default}\""),
            );
        }
        let path = base.join(text);
        if path.is_file() {
            return self.invalid(
                value.span(),
                key,
                format!("`{text}` is a file, not a folder"),
            );
        }
        Ok(path)
    }

    fn id(&self, value: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let id = value.get_ref();
        if tsagent_bundle::is_valid_id(id) {
            Ok(id.clone())
        } else {
            self.invalid(
                value.span(),
                key,
                format!("`{id}`: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with . or -); it becomes part of file names"),
            )
        }
    }

    fn alerts(&self, raw: raw::RawAlerts) -> Result<Alerts, ConfigError> {
        let command = match raw.command {
            Some(c) if c.get_ref().first().is_none_or(|p| p.trim().is_empty()) => {
                return self.invalid(
                    c.span(),
                    "alerts.command",
                    "name a program, e.g. [\"/usr/local/bin/notify-lab\"]",
                );
            }
            Some(c) => c.into_inner(),
            None => Vec::new(),
        };
        let duration_or = |value: &Option<Spanned<String>>, key: &str, default: u64| match value {
            Some(v) => self.duration(v, key),
            None => Ok(Duration::from_secs(default)),
        };
        let failed_runs = match raw.failed_runs {
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => return self.invalid(n.span(), "alerts.failed_runs", "at least 1"),
            },
            None => 3,
        };
        let disk_free_below = match raw.disk_free_below {
            Some(v) => Some(
                parse_bytes(v.get_ref())
                    .or_else(|reason| self.invalid(v.span(), "alerts.disk_free_below", reason))?,
            ),
            None => Some(1_000_000_000),
        };
        Ok(Alerts {
            command,
            after: duration_or(&raw.after, "alerts.after", 300)?,
            failed_runs,
            disk_free_below,
            repeat: duration_or(&raw.repeat, "alerts.repeat", 3600)?,
            deadline_notice: duration_or(
                &raw.deadline_notice,
                "alerts.deadline_notice",
                48 * 3600,
            )?,
        })
    }

    /// `[upload]`: a URL the uploader can use, the coordinator's Ed25519 key, an optional CA file.
    fn upload(
        &self,
        raw: &raw::RawUpload,
        table: std::ops::Range<usize>,
        base: &Path,
    ) -> Result<Upload, ConfigError> {
        let Some(url) = &raw.url else {
            return self.invalid(
                table,
                "upload.url",
                "is required, e.g. \"https://pilot.example:8480\"",
            );
        };
        let text = url.get_ref().trim();
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains('@')) {
            return self.invalid(
                url.span(),
                "upload.url",
                "must be http:// or https:// and a host, e.g. \"https://pilot.example:8480\"",
            );
        }
        let Some(key) = &raw.coordinator_key else {
            return self.invalid(
                table,
                "upload.coordinator_key",
                "is required: the coordinator's public key line, `ssh-ed25519 AAAA…`",
            );
        };
        let coordinator_key = match tsagent_bundle::PublicKey::from_openssh(key.get_ref().trim()) {
            Ok(k) if k.algorithm() == tsagent_bundle::KeyAlgorithm::Ed25519 => k,
            Ok(_) => {
                return self.invalid(
                    key.span(),
                    "upload.coordinator_key",
                    "must be an ssh-ed25519 key",
                );
            }
            Err(_) => {
                return self.invalid(
                    key.span(),
                    "upload.coordinator_key",
                    "is not a public key line, `ssh-ed25519 AAAA… [comment]`",
                );
            }
        };
        let ca = match &raw.ca {
            Some(ca) => Some(self.file_path(Some(ca), "pilot-ca.pem", "upload.ca", base)?),
            None => None,
        };
        let heartbeat = match &raw.heartbeat {
            Some(h) => {
                let d = self.duration(h, "upload.heartbeat")?;
                if d < Duration::from_secs(1) {
                    return self.invalid(
                        h.span(),
                        "upload.heartbeat",
                        "at least 1s (e.g. \"15m\")",
                    );
                }
                d
            }
            None => Duration::from_secs(15 * 60),
        };
        Ok(Upload {
            url: text.to_owned(),
            coordinator_key,
            ca,
            heartbeat,
        })
    }

    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        crate::drivers::parse_duration(value.get_ref(), r#""500ms", "5s", "30m", "1d""#)
            .or_else(|reason| self.invalid(value.span(), key, reason))
    }

    fn simulator(
        &self,
        raw: raw::RawSimulator,
        nominal: f64,
        table: std::ops::Range<usize>,
    ) -> Result<SimParams, ConfigError> {
        let defaults = SimParams::default();
        let noise = match raw.noise {
            Some(n) if !(n.get_ref().is_finite() && *n.get_ref() >= 0.0) => {
                return self.invalid(n.span(), "simulator.noise", "must be zero or positive");
            }
            Some(n) => *n.get_ref(),
            None => defaults.noise,
        };
        let time_scale = match raw.time_scale {
            Some(t) if !(t.get_ref().is_finite() && *t.get_ref() >= 1.0) => {
                return self.invalid(
                    t.span(),
                    "simulator.time_scale",
                    "simulated seconds per wall-clock second: at least 1",
                );
            }
            Some(t) => *t.get_ref(),
            None => defaults.time_scale,
        };
        let lab_temp_period = match raw.lab_temp_period {
            Some(p) => {
                let d = self.duration(&p, "simulator.lab_temp_period")?;
                if d.is_zero() {
                    return self.invalid(
                        p.span(),
                        "simulator.lab_temp_period",
                        "must be longer than zero",
                    );
                }
                d
            }
            None => defaults.lab_temp_period,
        };
        let params = SimParams {
            nominal,
            offset: raw.offset.unwrap_or(defaults.offset),
            drift_per_day: raw.drift_per_day.unwrap_or(defaults.drift_per_day),
            noise,
            tempco: raw.tempco.unwrap_or(defaults.tempco),
            lab_temp_mean: raw.lab_temp_mean.unwrap_or(defaults.lab_temp_mean),
            lab_temp_amplitude: raw
                .lab_temp_amplitude
                .unwrap_or(defaults.lab_temp_amplitude),
            lab_temp_period,
            time_scale,
            seed: raw.seed.unwrap_or(defaults.seed),
            identity: SimIdentity {
                manufacturer: raw.manufacturer.unwrap_or(defaults.identity.manufacturer),
                model: raw.model.unwrap_or(defaults.identity.model),
                serial: raw.serial.unwrap_or(defaults.identity.serial),
                firmware: raw.firmware.unwrap_or(defaults.identity.firmware),
            },
            realistic_timing: raw.realistic_timing.unwrap_or(defaults.realistic_timing),
        };
        // The simulator's own rules (e.g. time_scale ≥ 1, *IDN? fields without commas), checked
        // here so `config check` catches what the simulator would refuse at start.
        if let Err(tsagent_sim::SimError::InvalidParam { field, reason }) = params.validate() {
            // The simulator's field names are its own (`identity.model`, `nominal`): name the key
            // the lab wrote, at its line when it is in the file.
            let key = match field {
                "nominal" => "artefact.nominal".to_owned(),
                other => format!(
                    "simulator.{}",
                    other.strip_prefix("identity.").unwrap_or(other)
                ),
            };
            let span = self.key_span(&key).unwrap_or(table);
            return self.invalid(span, &key, reason);
        }
        Ok(params)
    }

    fn adapter(&self, raw: raw::RawAdapter) -> Result<Adapter, ConfigError> {
        let text = raw.resource.get_ref().trim();
        let (endpoint, board) = match (parse_sim_adapter(text), text.parse::<Resource>()) {
            (Some(board), _) => (AdapterEndpoint::Simulator, board),
            (
                None,
                Ok(
                    r @ (Resource::PrologixTcp { board, .. }
                    | Resource::PrologixSerial { board, .. }),
                ),
            ) => (AdapterEndpoint::Resource(r), board),
            (None, Ok(_)) => {
                return self.invalid(
                    raw.resource.span(),
                    "adapter.resource",
                    "not a Prologix adapter: use PRLGX-ASRL0::/dev/ttyUSB0::INTFC, PRLGX-TCPIP0::<host>::1234::INTFC or SIM::GPIB0::INTFC",
                );
            }
            (None, Err(e)) => {
                return self.invalid(raw.resource.span(), "adapter.resource", e.to_string());
            }
        };
        let mut serial = SerialSettings {
            baud: 115_200,
            ..SerialSettings::default()
        };
        if let Some(b) = &raw.baud {
            if *b.get_ref() == 0 {
                return self.invalid(b.span(), "adapter.baud", "must be positive");
            }
            serial.baud = *b.get_ref();
        }
        let read_tmo_ms = match &raw.read_tmo_ms {
            Some(t) if !(1..=3000).contains(t.get_ref()) => {
                return self.invalid(t.span(), "adapter.read_tmo_ms", "1 to 3000 (milliseconds)");
            }
            Some(t) => *t.get_ref(),
            None => crate::transport::prologix::DEFAULT_READ_TMO_MS,
        };
        Ok(Adapter {
            endpoint,
            board,
            serial,
            read_tmo_ms,
        })
    }

    fn instrument(
        &self,
        raw: RawInstrument,
        drivers: &Registry,
        adapters: &[Adapter],
    ) -> Result<Instrument, ConfigError> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return self.invalid(raw.name.span(), "instrument.name", "must not be empty");
        }
        let text = raw.resource.get_ref().trim();
        let endpoint = if text.eq_ignore_ascii_case(SIM_PTY_RESOURCE) {
            Endpoint::SimulatorPty
        } else {
            match text.parse::<Resource>() {
                Ok(Resource::PrologixTcp { .. } | Resource::PrologixSerial { .. }) => {
                    return self.invalid(
                        raw.resource.span(),
                        "instrument.resource",
                        "that is an adapter: declare it in [[adapter]] and name the instrument GPIB<board>::<address>::INSTR",
                    );
                }
                Ok(Resource::Gpib { board, .. }) if !adapters.iter().any(|a| a.board == board) => {
                    return self.invalid(
                        raw.resource.span(),
                        "instrument.resource",
                        format!("no [[adapter]] for GPIB board {board}"),
                    );
                }
                Ok(r) => Endpoint::Resource(r),
                Err(e) => {
                    return self.invalid(
                        raw.resource.span(),
                        "instrument.resource",
                        format!("{e}; or {SIM_PTY_RESOURCE} for the built-in simulator"),
                    );
                }
            }
        };

        let id_value = raw
            .driver
            .as_ref()
            .map_or(DEFAULT_DRIVER, |d| d.get_ref().as_str());
        let profile = match (&raw.profile, drivers.get(id_value)) {
            (_, None) => {
                let span = raw.driver.as_ref().map_or(raw.name.span(), Spanned::span);
                let known: Vec<&str> = drivers.ids().collect();
                return self.invalid(
                    span,
                    "instrument.driver",
                    format!(
                        "no driver profile `{id_value}` (known: {})",
                        known.join(", ")
                    ),
                );
            }
            (Some(overrides), Some(_)) => {
                let origin = format!(
                    "{}:{} [instrument.profile] of `{name}`",
                    self.origin,
                    line_col(self.text, overrides.span().start).0
                );
                drivers
                    .with_overrides(id_value, overrides.get_ref(), &origin)
                    .map_err(ConfigError::Driver)?
            }
            (None, Some(p)) => p.clone(),
        };

        // The model's own serial settings and terminations, unless the lab says otherwise.
        let mut serial = SerialSettings::default();
        serial.baud = profile.io.baud.unwrap_or(serial.baud);
        serial.data_bits = profile.io.data_bits.unwrap_or(serial.data_bits);
        serial.parity = profile.io.parity.unwrap_or(serial.parity);
        serial.stop_bits = profile.io.stop_bits.unwrap_or(serial.stop_bits);
        if let Some(b) = &raw.baud {
            if *b.get_ref() == 0 {
                return self.invalid(b.span(), "instrument.baud", "must be positive, e.g. 9600");
            }
            serial.baud = *b.get_ref();
        }
        if let Some(d) = &raw.data_bits {
            serial.data_bits = match d.get_ref() {
                7 => DataBits::Seven,
                8 => DataBits::Eight,
                other => {
                    return self.invalid(
                        d.span(),
                        "instrument.data_bits",
                        format!("{other}: expected 7 or 8"),
                    );
                }
            };
        }
        if let Some(s) = &raw.stop_bits {
            serial.stop_bits = match s.get_ref() {
                1 => StopBits::One,
                2 => StopBits::Two,
                other => {
                    return self.invalid(
                        s.span(),
                        "instrument.stop_bits",
                        format!("{other}: expected 1 or 2"),
                    );
                }
            };
        }
        if let Some(p) = raw.parity {
            serial.parity = match p {
                RawParity::None => Parity::None,
                RawParity::Even => Parity::Even,
                RawParity::Odd => Parity::Odd,
            };
        }
        if let Some(f) = raw.flow_control {
            serial.flow_control = match f {
                RawFlowControl::None => FlowControl::None,
                RawFlowControl::Xonxoff => FlowControl::XonXoff,
                RawFlowControl::Rtscts => FlowControl::RtsCts,
            };
        }

        let mut link = LinkSettings {
            write_termination: profile.io.write_termination.clone(),
            read_termination: profile.io.read_termination.clone(),
            timeout: profile.io.timeout,
            ..LinkSettings::default()
        };
        if let Some(w) = &raw.write_termination {
            if w.get_ref().len() > 4 {
                return self.invalid(
                    w.span(),
                    "instrument.write_termination",
                    "at most 4 bytes, e.g. \"\\n\" or \"\\r\\n\"",
                );
            }
            link.write_termination = w.get_ref().as_bytes().to_vec();
        }
        if let Some(r) = &raw.read_termination {
            if r.get_ref().is_empty() || r.get_ref().len() > 4 {
                return self.invalid(
                    r.span(),
                    "instrument.read_termination",
                    "1 to 4 bytes, e.g. \"\\n\" or \"\\r\\n\"",
                );
            }
            link.read_termination = r.get_ref().as_bytes().to_vec();
        }
        if let Some(t) = &raw.timeout {
            let d = self.duration(t, "instrument.timeout")?;
            if let Some(reason) = crate::drivers::timeout_problem(d) {
                return self.invalid(t.span(), "instrument.timeout", reason);
            }
            link.timeout = d;
        }
        if let Some(m) = &raw.max_reply {
            let v = *m.get_ref();
            if !(64..=1 << 30).contains(&v) {
                return self.invalid(
                    m.span(),
                    "instrument.max_reply",
                    "between 64 bytes and 1 GiB",
                );
            }
            link.max_reply = usize::try_from(v).unwrap_or(usize::MAX);
        }
        let mut params = BTreeMap::new();
        for (key, value) in &raw.params {
            // A value no operation can use is a typo, not a setting to ignore.
            if !profile
                .operations
                .values()
                .any(|op| op.params.contains_key(key))
            {
                return self.invalid(
                    value.span(),
                    &format!("instrument.params.{key}"),
                    format!(
                        "no operation of driver `{}` has a parameter `{key}`",
                        profile.id
                    ),
                );
            }
            params.insert(key.clone(), value.get_ref().to_text());
        }
        let serial_number = match &raw.serial_number {
            Some(s) if s.get_ref().trim().is_empty() => {
                return self.invalid(s.span(), "instrument.serial_number", "must not be empty");
            }
            Some(s) if !profile.identity.reports_serial() => {
                return self.invalid(
                    s.span(),
                    "instrument.serial_number",
                    format!(
                        "driver `{}` does not read a serial number from the instrument's identity, so it cannot be checked",
                        profile.id
                    ),
                );
            }
            Some(s) => Some(s.get_ref().trim().to_owned()),
            None => None,
        };
        Ok(Instrument {
            name,
            endpoint,
            serial,
            link,
            profile: Arc::new(profile),
            params,
            usb_serial: raw.usb_serial,
            serial_number,
            calibration: match &raw.calibration {
                Some(c) => Some(self.calibration(c)?),
                None => None,
            },
        })
    }

    fn date(&self, value: &Spanned<String>, key: &str) -> Result<CalendarDate, ConfigError> {
        CalendarDate::parse(value.get_ref().trim()).map_or_else(
            || {
                self.invalid(
                    value.span(),
                    key,
                    "a date `YYYY-MM-DD`, e.g. \"2027-01-10\"",
                )
            },
            Ok,
        )
    }

    /// `[artefact.deadlines]`: each a date or an RFC 3339 time; dispatch after receipt.
    fn deadlines(&self, raw: &raw::RawDeadlines) -> Result<Deadlines, ConfigError> {
        let receive_by = match &raw.receive_by {
            Some(v) => Some(self.deadline(v, "artefact.deadlines.receive_by")?),
            None => None,
        };
        let dispatch_by = match &raw.dispatch_by {
            Some(v) => Some(self.deadline(v, "artefact.deadlines.dispatch_by")?),
            None => None,
        };
        if let (Some(r), Some(d), Some(span)) = (&receive_by, &dispatch_by, &raw.dispatch_by)
            && d.utc_us <= r.utc_us
        {
            return self.invalid(
                span.span(),
                "artefact.deadlines.dispatch_by",
                format!("must be after `receive_by` ({})", r.text),
            );
        }
        Ok(Deadlines {
            receive_by,
            dispatch_by,
        })
    }

    /// A deadline: a date means the end of that day, UTC (so `receive_by = "2026-12-10"` is met
    /// by a receipt any time that day); an RFC 3339 time means that instant.
    fn deadline(&self, value: &Spanned<String>, key: &str) -> Result<Deadline, ConfigError> {
        let text = value.get_ref().trim();
        let utc_us = match CalendarDate::parse(text) {
            Some(date) => date.end_utc_us(),
            None => instant::parse(text).or_else(|e| {
                self.invalid(
                    value.span(),
                    key,
                    format!(
                        "{e}: a date `YYYY-MM-DD` (through the end of that day, UTC) or an RFC 3339 time, e.g. \"2026-12-10\" or \"2026-12-10T17:00:00+08:00\""
                    ),
                )
            })?,
        };
        Ok(Deadline {
            text: text.to_owned(),
            utc_us,
        })
    }

    fn calibration(&self, raw: &raw::RawCalibration) -> Result<Calibration, ConfigError> {
        let certificate = raw.certificate.get_ref().trim().to_owned();
        if certificate.is_empty() {
            return self.invalid(
                raw.certificate.span(),
                "instrument.calibration.certificate",
                "must not be empty",
            );
        }
        let calibrated = self.date(&raw.calibrated, "instrument.calibration.calibrated")?;
        let due = self.date(&raw.due, "instrument.calibration.due")?;
        if due <= calibrated {
            return self.invalid(
                raw.due.span(),
                "instrument.calibration.due",
                format!("must be after `calibrated` ({calibrated})"),
            );
        }
        Ok(Calibration {
            certificate,
            calibrated,
            due,
            uncertainty: self.calibration_uncertainty(raw)?,
        })
    }

    fn inspection(
        &self,
        raw: &[raw::RawInspectionItem],
    ) -> Result<Vec<InspectionItem>, ConfigError> {
        let mut items: Vec<InspectionItem> = Vec::with_capacity(raw.len());
        for r in raw {
            let item = r.item.get_ref().trim().to_owned();
            // `--item NAME=RESULT` splits at the first `=`, so a name cannot hold one.
            if item.is_empty() || item.contains('=') {
                return self.invalid(
                    r.item.span(),
                    "artefact.inspection.item",
                    "a name without `=`, e.g. \"battery indicator\"",
                );
            }
            if items.iter().any(|i| i.item == item) {
                return self.invalid(
                    r.item.span(),
                    "artefact.inspection.item",
                    format!("`{item}` is listed twice"),
                );
            }
            let kind = match r.kind {
                raw::RawItemKind::Check => ItemKind::Check,
                raw::RawItemKind::Value => ItemKind::Value,
            };
            let unit = match (&r.unit, kind) {
                (Some(u), ItemKind::Check) => {
                    return self.invalid(
                        u.span(),
                        "artefact.inspection.unit",
                        "only a `value` item has a unit",
                    );
                }
                (Some(u), ItemKind::Value) if u.get_ref().trim().is_empty() => {
                    return self.invalid(u.span(), "artefact.inspection.unit", "must not be empty");
                }
                (u, _) => u.as_ref().map(|u| u.get_ref().trim().to_owned()),
            };
            items.push(InspectionItem { item, kind, unit });
        }
        Ok(items)
    }

    fn stabilisation(
        &self,
        raw: &raw::RawStabilisation,
        sequences: &[Sequence],
        nominal: f64,
    ) -> Result<Stabilisation, ConfigError> {
        let min = self.duration(&raw.min, "artefact.stabilisation.min")?;
        let Some(c) = &raw.criterion else {
            return Ok(Stabilisation {
                min,
                criterion: None,
            });
        };
        let key = "artefact.stabilisation.criterion";
        let span = c.span();
        let c = c.get_ref();
        let sequence = c.sequence.get_ref().trim().to_owned();
        if !sequences.iter().any(|s| s.name == sequence) {
            let known: Vec<&str> = sequences.iter().map(|s| s.name.as_str()).collect();
            return self.invalid(
                c.sequence.span(),
                &format!("{key}.sequence"),
                format!(
                    "no sequence named `{sequence}` (configured: {})",
                    known.join(", ")
                ),
            );
        }
        let window = self.duration(&c.window, &format!("{key}.window"))?;
        if window.is_zero() {
            return self.invalid(c.window.span(), &format!("{key}.window"), "longer than 0s");
        }
        let max_drift = *c.max_drift.get_ref();
        if !(max_drift.is_finite() && max_drift > 0.0) {
            return self.invalid(
                c.max_drift.span(),
                &format!("{key}.max_drift"),
                "a positive number: relative drift per day, e.g. 0.05e-6",
            );
        }
        let instrument = match &c.instrument {
            Some(i) => {
                let name = i.get_ref().trim();
                let used = sequences
                    .iter()
                    .find(|s| s.name == sequence)
                    .is_some_and(|s| s.steps.iter().any(|st| st.instrument() == name));
                if !used {
                    return self.invalid(
                        i.span(),
                        &format!("{key}.instrument"),
                        format!("sequence `{sequence}` has no step on an instrument `{name}`"),
                    );
                }
                Some(name.to_owned())
            }
            None => None,
        };
        let k = match &c.k {
            Some(k) if !(k.get_ref().is_finite() && *k.get_ref() >= 0.0) => {
                return self.invalid(k.span(), &format!("{key}.k"), "zero or a positive number");
            }
            Some(k) => *k.get_ref(),
            None => 2.0,
        };
        // The limit is relative to the nominal value: a zero nominal has no relative drift.
        if nominal == 0.0 {
            return self.invalid(
                span,
                key,
                "needs a nonzero `artefact.nominal`: max_drift is relative to it",
            );
        }
        Ok(Stabilisation {
            min,
            criterion: Some(DriftCriterion {
                sequence,
                window,
                max_drift,
                k,
                instrument,
                quantity: c.quantity.as_ref().map(|q| q.trim().to_owned()),
            }),
        })
    }

    fn instrument_ref(
        &self,
        name: &Spanned<String>,
        instruments: &[Instrument],
        key: &str,
    ) -> Result<String, ConfigError> {
        let n = name.get_ref();
        if instruments.iter().any(|i| &i.name == n) {
            Ok(n.clone())
        } else {
            let known: Vec<&str> = instruments.iter().map(|i| i.name.as_str()).collect();
            self.invalid(
                name.span(),
                key,
                format!(
                    "no instrument named `{n}` (configured: {})",
                    known.join(", ")
                ),
            )
        }
    }

    /// A step's parameters, checked against its operation in the instrument's profile.
    fn op_params(
        &self,
        instruments: &[Instrument],
        instrument: &str,
        op: &str,
        op_span: std::ops::Range<usize>,
        raw: &raw::RawParams,
        key: &str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(profile) = instruments
            .iter()
            .find(|i| i.name == instrument)
            .map(|i| &i.profile)
        else {
            return self.invalid(op_span, key, format!("no instrument named `{instrument}`"));
        };
        let Some(operation) = profile.operation(op) else {
            let known: Vec<&str> = profile.operations.keys().map(String::as_str).collect();
            return self.invalid(
                op_span,
                &format!("{key}.op"),
                format!(
                    "driver `{}` has no operation `{op}` (it has: {})",
                    profile.id,
                    known.join(", ")
                ),
            );
        };
        let mut params = BTreeMap::new();
        for (name, value) in raw {
            if !operation.params.contains_key(name) {
                let known: Vec<&str> = operation.params.keys().map(String::as_str).collect();
                return self.invalid(
                    value.span(),
                    &format!("{key}.params.{name}"),
                    format!(
                        "operation `{op}` of `{}` has no parameter `{name}` (it has: {})",
                        profile.id,
                        known.join(", ")
                    ),
                );
            }
            params.insert(name.clone(), value.get_ref().to_text());
        }
        Ok(params)
    }

    fn sequence(
        &self,
        raw: RawSequence,
        instruments: &[Instrument],
    ) -> Result<Sequence, ConfigError> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return self.invalid(raw.name.span(), "sequence.name", "must not be empty");
        }
        let every = match &raw.every {
            Some(e) => {
                let d = self.duration(e, "sequence.every")?;
                if d < Duration::from_secs(1) {
                    return self.invalid(e.span(), "sequence.every", "at least 1s");
                }
                Some(d)
            }
            None => None,
        };
        let at = match (&raw.at, every) {
            (None, _) => None,
            (Some(a), None) => {
                return self.invalid(
                    a.span(),
                    "sequence.at",
                    "needs `every`: it offsets the slots of a schedule",
                );
            }
            (Some(a), Some(every)) => {
                let d = self.duration(a, "sequence.at")?;
                if d >= every {
                    return self.invalid(
                        a.span(),
                        "sequence.at",
                        format!(
                            "must be less than `every` ({})",
                            humantime::format_duration(every)
                        ),
                    );
                }
                Some(d)
            }
        };
        if raw.steps.is_empty() {
            return self.invalid(
                raw.name.span(),
                "sequence.step",
                format!("sequence `{name}` has no steps"),
            );
        }
        let mut steps = Vec::with_capacity(raw.steps.len());
        for rs in raw.steps {
            steps.push(match rs {
                RawStep::Identify(r) => Step::Identify {
                    instrument: self.instrument_ref(
                        &r.instrument,
                        instruments,
                        "sequence.step.identify.instrument",
                    )?,
                },
                RawStep::DrainErrors(r) => Step::DrainErrors {
                    instrument: self.instrument_ref(
                        &r.instrument,
                        instruments,
                        "sequence.step.drain_errors.instrument",
                    )?,
                },
                RawStep::Configure(c) => {
                    let instrument =
                        self.instrument_ref(&c.instrument, instruments, "sequence.step.configure.instrument")?;
                    let params = self.op_params(
                        instruments,
                        &instrument,
                        "configure",
                        c.instrument.span(),
                        &c.params,
                        "sequence.step.configure",
                    )?;
                    Step::Configure { instrument, params }
                }
                RawStep::Operate(o) => {
                    let instrument =
                        self.instrument_ref(&o.instrument, instruments, "sequence.step.operate.instrument")?;
                    let op = o.op.get_ref().clone();
                    let params = self.op_params(
                        instruments,
                        &instrument,
                        &op,
                        o.op.span(),
                        &o.params,
                        "sequence.step.operate",
                    )?;
                    Step::Operate { instrument, op, params }
                }
                RawStep::Read(r) => {
                    if *r.count.get_ref() == 0 {
                        return self.invalid(r.count.span(), "sequence.step.read.count", "at least 1");
                    }
                    let instrument =
                        self.instrument_ref(&r.instrument, instruments, "sequence.step.read.instrument")?;
                    let (op, op_span) = match &r.op {
                        Some(op) => (op.get_ref().clone(), op.span()),
                        None => ("read".to_owned(), r.instrument.span()),
                    };
                    let params =
                        self.op_params(instruments, &instrument, &op, op_span.clone(), &r.params, "sequence.step.read")?;
                    let reply = instruments
                        .iter()
                        .find(|i| i.name == instrument)
                        .and_then(|i| i.profile.operation(&op))
                        .and_then(|o| o.reply.as_ref());
                    match reply {
                        None => {
                            return self.invalid(
                                op_span,
                                "sequence.step.read.op",
                                format!("operation `{op}` returns no values; use `operate` for it"),
                            );
                        }
                        // A reply that names its values (a regex with captures) supplies quantity
                        // and unit; anything else needs them from the step.
                        Some(crate::drivers::ReplySpec::Regex { .. }) => {}
                        Some(_) if r.quantity.is_none() || r.unit.is_none() => {
                            return self.invalid(
                                r.instrument.span(),
                                "sequence.step.read",
                                format!("operation `{op}` does not name its values: give `quantity` and `unit`"),
                            );
                        }
                        Some(_) => {}
                    }
                    Step::Read(ReadStep {
                        instrument,
                        op,
                        params,
                        count: *r.count.get_ref(),
                        interval: match &r.interval {
                            Some(i) => self.duration(i, "sequence.step.read.interval")?,
                            None => Duration::ZERO,
                        },
                        quantity: r.quantity,
                        unit: r.unit,
                    })
                }
            });
        }
        Ok(Sequence {
            name,
            every,
            at,
            official: raw.official.unwrap_or(false),
            steps,
        })
    }
}

/// `sequence[0].step[1].read` as the config errors spell keys: `sequence.step.read`.
fn without_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// The parser's message in a lab's words: serde's wording for a step that is not exactly one
/// action speaks of "elements".
fn plain_message(message: &str) -> String {
    const ACTIONS: &str =
        "a step takes exactly one action: identify, configure, operate, read or drain_errors";
    let message = message.trim();
    if message.starts_with("wanted exactly 1 element, more than 1") {
        format!("{ACTIONS}; this one has more than one (give each its own [[sequence.step]])")
    } else if message.starts_with("wanted exactly 1 element, found 0") {
        format!("{ACTIONS}; this one has none")
    } else {
        message.to_owned()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests;

/// A size such as "2GB", "500 MB" or "1048576" (bytes); decimal units, as disks are sold.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => {
            return Err(format!(
                "unknown unit `{other}`: use B, kB, MB, GB or TB, e.g. \"2GB\""
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok((n * scale) as u64),
        _ => Err(format!("`{text}` is not a size, e.g. \"2GB\"")),
    }
}
