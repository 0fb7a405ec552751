//! The first stage of configuration: a faithful, side-effect-free record of what the file says.
//!
//! Every table denies unknown keys so a typo is an error, not a silently ignored setting. Values that
//! the second stage checks carry their span, so its errors can name the line.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[lab]`.
    pub lab: RawLab,
    /// `[artefact]`.
    pub artefact: RawArtefact,
    /// `[storage]`.
    #[serde(default)]
    pub storage: RawStorage,
    /// `[signing]`.
    #[serde(default)]
    pub signing: RawSigning,
    /// `[alerts]`: the lab's command for alerts.
    #[serde(default)]
    pub alerts: RawAlerts,
    /// `[sealing]`: when the daemon seals by itself.
    #[serde(default)]
    pub sealing: RawSealing,
    /// `[status]`: the daemon's read-only status page.
    pub status: Option<RawStatusPage>,
    /// `[control]`: the daemon's control socket.
    #[serde(default)]
    pub control: RawControl,
    /// `[upload]`: the coordinator bundles go to.
    pub upload: Option<Spanned<RawUpload>>,
    /// `[policy]`: what official runs do about the lab's own standards.
    #[serde(default)]
    pub policy: RawPolicy,
    /// `[simulator]`: the model behind `SIM::PTY::INSTR` instruments.
    pub simulator: Option<Spanned<RawSimulator>>,
    /// `[drivers]`: where the lab's own driver profiles are.
    #[serde(default)]
    pub drivers: RawDrivers,
    /// `[[adapter]]`: Prologix GPIB adapters, one per bus.
    #[serde(default, rename = "adapter")]
    pub adapters: Vec<RawAdapter>,
    /// `[[instrument]]`.
    #[serde(default, rename = "instrument")]
    pub instruments: Vec<RawInstrument>,
    /// `[[sequence]]`.
    #[serde(default, rename = "sequence")]
    pub sequences: Vec<RawSequence>,
    /// `[[correction]]`: environmental corrections of the measurand's readings.
    #[serde(default, rename = "correction")]
    pub corrections: Vec<RawCorrection>,
    /// `[[uncertainty]]`: the Type B components of the lab's budget.
    #[serde(default, rename = "uncertainty")]
    pub uncertainty: Vec<RawUncertainty>,
    /// `[report]`: administrative data of the report and the calibration certificate.
    #[serde(default)]
    pub report: RawReport,
}

/// `[[correction]]`: one environmental correction, applied with the environment reading nearest
/// in time to each reading.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorrection {
    /// The environment quantity, as its instrument's readings name it (e.g. `temperature`).
    pub quantity: Spanned<String>,
    /// The instrument that reads it; by default the one instrument whose steps read it.
    pub instrument: Option<Spanned<String>>,
    /// Sensitivity of the measurand to the quantity: measurand unit per quantity unit, or per
    /// quantity unit relative to the nominal value when `relative`.
    pub coefficient: Spanned<f64>,
    /// Standard uncertainty of `coefficient`.
    pub u: Spanned<f64>,
    /// The reference condition the readings are corrected to (e.g. 23 °C, 1013.25 hPa).
    pub reference: Spanned<f64>,
    /// The coefficient is relative to the artefact's nominal value (default false).
    pub relative: Option<bool>,
    /// Standard uncertainty of the environment sensor's reading, in the quantity's unit.
    pub u_quantity: Option<Spanned<f64>>,
    /// Longest time between a reading and the environment reading used (default "10m").
    pub within: Option<Spanned<String>>,
    /// Chinese name of the quantity, for the report.
    pub name_zh: Option<String>,
}

/// `[[uncertainty]]`: a Type B component, stated or from an instrument's calibration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUncertainty {
    /// Name in the budget (English).
    pub name: Spanned<String>,
    /// Chinese name.
    pub name_zh: Option<String>,
    /// The assumed distribution.
    pub distribution: Option<Spanned<RawDistribution>>,
    /// Normal: the expanded uncertainty (with `k`); otherwise the half-width a.
    pub value: Option<Spanned<f64>>,
    /// Coverage factor of a normal `value`.
    pub k: Option<Spanned<f64>>,
    /// Sensitivity coefficient (default 1).
    pub sensitivity: Option<Spanned<f64>>,
    /// Degrees of freedom (default infinite).
    pub dof: Option<Spanned<f64>>,
    /// The instrument whose calibration gives the component.
    pub calibration: Option<Spanned<String>>,
}

/// `distribution = "normal" | "rectangular" | "triangular" | "u-shaped"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawDistribution {
    /// Normal, stated as U with k.
    Normal,
    /// Rectangular of half-width a.
    Rectangular,
    /// Triangular of half-width a.
    Triangular,
    /// U-shaped (arcsine) of half-width a.
    UShaped,
}

/// `[report]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// The comparison's identifier, e.g. `CCEM-K11.2026`.
    pub comparison: Option<String>,
    /// Title of the report (English).
    pub title: Option<String>,
    /// Title of the report (Chinese).
    pub title_zh: Option<String>,
    /// The pilot laboratory (English).
    pub pilot: Option<String>,
    /// The pilot laboratory (Chinese).
    pub pilot_zh: Option<String>,
    /// The pilot's city.
    pub pilot_city: Option<String>,
    /// The pilot's country, ISO 3166-1 alpha-2.
    pub pilot_country: Option<Spanned<String>>,
    /// The lab's name in Chinese (`[lab] name` is the English one).
    pub lab_name_zh: Option<String>,
    /// The lab's street address.
    pub address: Option<String>,
    /// The lab's city.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<Spanned<String>>,
    /// The person responsible for the result.
    pub responsible: Option<String>,
    /// The measurement method (English).
    pub method: Option<String>,
    /// The measurement method (Chinese).
    pub method_zh: Option<String>,
    /// Languages of the report, among `zh` and `en`.
    pub languages: Option<Spanned<Vec<String>>>,
}

/// `[drivers]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrivers {
    /// A folder of extra profiles (`<id>.toml`), added to and replacing the built-in ones.
    pub dir: Option<String>,
}

/// `[[adapter]]`: a Prologix GPIB-USB or GPIB-ETHERNET adapter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdapter {
    /// `PRLGX-ASRL0::/dev/ttyUSB0::INTFC` or `PRLGX-TCPIP0::192.168.1.50::1234::INTFC`; the board
    /// number links `GPIB0::22::INSTR` instruments to it.
    pub resource: Spanned<String>,
    /// Serial baud rate of a GPIB-USB adapter (it ignores it; 115200 is customary).
    pub baud: Option<Spanned<u32>>,
    /// `++read_tmo_ms`: the adapter's inter-character timeout, 1 to 3000 (default 50).
    pub read_tmo_ms: Option<Spanned<u16>>,
}

/// A parameter value in a step or instrument: written as a string, a number or a boolean.
#[derive(Debug, Clone)]
pub enum RawParam {
    /// `"10"`, `"VOLT:DC"`.
    Text(String),
    /// `10`.
    Integer(i64),
    /// `0.1`.
    Float(f64),
    /// `true`.
    Bool(bool),
}

// By hand rather than `#[serde(untagged)]`, whose error for anything else names this type
// ("data did not match any variant of untagged enum RawParam"): a lab sees what is expected.
impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawParam;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean, e.g. \"10\", 10, 0.1 or true")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawParam, E> {
                Ok(RawParam::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RawParam, E> {
                Ok(RawParam::Text(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawParam, E> {
                Ok(RawParam::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawParam, E> {
                i64::try_from(v)
                    .map(RawParam::Integer)
                    .or_else(|_| Ok(RawParam::Text(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawParam, E> {
                Ok(RawParam::Float(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawParam, E> {
                Ok(RawParam::Bool(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl RawParam {
    /// The text a command template receives.
    pub fn to_text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Integer(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => if *b { "ON" } else { "OFF" }.to_owned(),
        }
    }
}

/// Operation parameters by name.
pub type RawParams = std::collections::BTreeMap<String, Spanned<RawParam>>;

/// `[lab]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLab {
    /// Short id; the principal in `allowed_signers` and part of bundle names.
    pub id: Spanned<String>,
    /// Human-readable name.
    pub name: String,
}

/// `[artefact]`: the travelling standard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtefact {
    /// Short id, part of bundle names.
    pub id: Spanned<String>,
    /// What it is, e.g. `zener`, `resistor`.
    pub kind: String,
    /// Its serial number.
    pub serial: String,
    /// Its manufacturer (the report's and the certificate's item).
    pub manufacturer: Option<String>,
    /// Its model.
    pub model: Option<String>,
    /// Nominal value in `unit`.
    pub nominal: Spanned<f64>,
    /// Unit of the nominal value.
    pub unit: String,
    /// `[[artefact.inspection]]`: the protocol's arrival checklist.
    #[serde(default)]
    pub inspection: Vec<RawInspectionItem>,
    /// `[artefact.stabilisation]`: when official measurements may start after receipt.
    pub stabilisation: Option<RawStabilisation>,
    /// `[artefact.deadlines]`: the circulation timetable the pilot gave this lab.
    pub deadlines: Option<RawDeadlines>,
}

/// `[artefact.deadlines]`: each a date (`"2026-12-10"`, through the end of that day, UTC) or an
/// RFC 3339 time.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadlines {
    /// The standard is to be received by then.
    pub receive_by: Option<Spanned<String>>,
    /// The standard is to be sent on by then.
    pub dispatch_by: Option<Spanned<String>>,
}

/// `[[artefact.inspection]]`: one item of the arrival checklist.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInspectionItem {
    /// What is inspected, e.g. `battery indicator`; `custody inspect --item` names it.
    pub item: Spanned<String>,
    /// `check` (a result word, e.g. `ok`) or `value` (a number, in `unit`).
    pub kind: RawItemKind,
    /// Unit of a `value` item, e.g. `kOhm`.
    pub unit: Option<Spanned<String>>,
}

/// The kind of a checklist item.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawItemKind {
    /// A result word such as `ok`.
    Check,
    /// A number with a unit.
    Value,
}

/// `[artefact.stabilisation]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStabilisation {
    /// Least time from receipt to the first official run, e.g. `"72h"`.
    pub min: Spanned<String>,
    /// An optional data criterion on top of `min`: the drift of a monitoring sequence.
    pub criterion: Option<Spanned<RawCriterion>>,
}

/// `criterion = { sequence, window, max_drift, k }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCriterion {
    /// The monitoring sequence whose readings (in the artefact's unit) are fitted.
    pub sequence: Spanned<String>,
    /// How far back the fit reaches, e.g. `"24h"`.
    pub window: Spanned<String>,
    /// Largest |drift| + k·u(drift), relative to the nominal value, per day (e.g. `0.05e-6`).
    pub max_drift: Spanned<f64>,
    /// Coverage factor on the drift's standard uncertainty (default 2).
    pub k: Option<Spanned<f64>>,
    /// The instrument whose readings are fitted, when the sequence reads several in the unit.
    pub instrument: Option<Spanned<String>>,
    /// The quantity fitted, when the sequence reads several in the unit.
    pub quantity: Option<String>,
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// What an official run does with an instrument past its calibration's due date.
    pub expired_calibration: Option<RawExpiredCalibration>,
}

/// `expired_calibration = "refuse" | "flag"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawExpiredCalibration {
    /// The official run does not start (an `official_skipped` event says why).
    Refuse,
    /// The official run goes on, flagged by a `calibration_expired` event.
    Flag,
}

/// `calibration = { certificate, calibrated, due }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalibration {
    /// The certificate's reference.
    pub certificate: Spanned<String>,
    /// Date of calibration, `YYYY-MM-DD`.
    pub calibrated: Spanned<String>,
    /// Date the next calibration is due, `YYYY-MM-DD`.
    pub due: Spanned<String>,
    /// The certificate's expanded uncertainty, in the measurand's unit (or a fraction of the
    /// reading with `relative = true`).
    pub uncertainty: Option<Spanned<f64>>,
    /// `uncertainty` is a fraction of the reading (default false).
    pub relative: Option<bool>,
    /// The certificate's coverage factor.
    pub k: Option<Spanned<f64>>,
    /// The certificate's effective degrees of freedom (default infinite).
    pub dof: Option<Spanned<f64>>,
}

/// `[storage]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// SQLite file; relative paths are relative to the config file's folder.
    pub db: Option<Spanned<String>>,
    /// Folder for sealed bundles.
    pub bundles: Option<Spanned<String>>,
    /// Which command/reply exchanges become events (default `except_readings`).
    pub log_exchanges: Option<ExchangeLog>,
}

/// `[signing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    /// OpenSSH Ed25519 private key used to sign bundles.
    pub key: Option<Spanned<String>>,
}

/// `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// The command and its first arguments; the alert's kind and message are added after them.
    pub command: Option<Spanned<Vec<String>>>,
    /// How long an instrument may be offline before it alerts (default "5m").
    pub after: Option<Spanned<String>>,
    /// How many runs failing in a row alert (default 3).
    pub failed_runs: Option<Spanned<i64>>,
    /// Free space under which the database's disk alerts, e.g. "2GB" (default "1GB").
    pub disk_free_below: Option<Spanned<String>>,
    /// The least time between two alerts of one condition (default "1h").
    pub repeat: Option<Spanned<String>>,
    /// How long before a custody deadline it alerts (default "48h").
    pub deadline_notice: Option<Spanned<String>>,
}

/// `[sealing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSealing {
    /// How often the daemon seals the runs that have ended, e.g. "24h".
    pub every: Option<Spanned<String>>,
}

/// `[upload]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    /// The coordinator, `https://host[:port]` (or `http://` on loopback or behind a proxy).
    pub url: Option<Spanned<String>>,
    /// The coordinator's public key line, `ssh-ed25519 AAAA… [comment]`.
    pub coordinator_key: Option<Spanned<String>>,
    /// The pilot's CA certificate (PEM) for https; the system's CAs when absent.
    pub ca: Option<Spanned<String>>,
    /// How often the daemon sends a heartbeat of its chain head (default "15m").
    pub heartbeat: Option<Spanned<String>>,
}

/// `[status]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatusPage {
    /// Address and port, e.g. "127.0.0.1:8470" (the default: loopback only).
    pub listen: Option<Spanned<String>>,
}

/// `[control]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// The daemon's control socket; relative paths are relative to the config file's folder.
    pub socket: Option<Spanned<String>>,
    /// A group whose members may steer the daemon, besides root and the daemon's own user.
    pub group: Option<String>,
}

/// `[simulator]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    /// Value offset from nominal, in the artefact's unit.
    pub offset: Option<f64>,
    /// Linear drift per (simulated) day.
    pub drift_per_day: Option<f64>,
    /// White noise, one standard deviation.
    pub noise: Option<Spanned<f64>>,
    /// Temperature coefficient, unit per kelvin.
    pub tempco: Option<f64>,
    /// Mean simulated lab temperature, °C.
    pub lab_temp_mean: Option<f64>,
    /// Amplitude of the lab temperature cycle, K.
    pub lab_temp_amplitude: Option<f64>,
    /// Period of the lab temperature cycle in simulated time, e.g. `"1d"`.
    pub lab_temp_period: Option<Spanned<String>>,
    /// Simulated seconds per wall-clock second.
    pub time_scale: Option<Spanned<f64>>,
    /// Noise seed; the same seed gives the same noise.
    pub seed: Option<u64>,
    /// Take NPLC-dependent integration time like a real meter.
    pub realistic_timing: Option<bool>,
    /// `*IDN?` manufacturer.
    pub manufacturer: Option<String>,
    /// `*IDN?` model.
    pub model: Option<String>,
    /// `*IDN?` serial number.
    pub serial: Option<String>,
    /// `*IDN?` firmware.
    pub firmware: Option<String>,
    /// Faults every simulator started from this config injects, in `tsagent sim --fault`'s
    /// syntax, e.g. `"disconnect=30s,new-path,every=500"`.
    #[serde(default)]
    pub faults: Vec<Spanned<String>>,
}

/// `[[instrument]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstrument {
    /// Name used by sequence steps.
    pub name: Spanned<String>,
    /// VISA-style resource, e.g. `ASRL/dev/ttyUSB0::INSTR`, `TCPIP::10.0.0.5::5025::SOCKET`.
    pub resource: Spanned<String>,
    /// Serial baud rate.
    pub baud: Option<Spanned<u32>>,
    /// Serial data bits, 7 or 8.
    pub data_bits: Option<Spanned<u8>>,
    /// Serial parity.
    pub parity: Option<RawParity>,
    /// Serial stop bits, 1 or 2.
    pub stop_bits: Option<Spanned<u8>>,
    /// Serial flow control.
    pub flow_control: Option<RawFlowControl>,
    /// Appended to every command (default `"\n"`).
    pub write_termination: Option<Spanned<String>>,
    /// Ends every reply (default `"\n"`).
    pub read_termination: Option<Spanned<String>>,
    /// Deadline for a whole reply, e.g. `"5s"`.
    pub timeout: Option<Spanned<String>>,
    /// Longest reply accepted, bytes (default 1 MiB).
    pub max_reply: Option<Spanned<u64>>,
    /// Driver profile id (default `generic-scpi-dmm`); `tsagent drivers list` shows them.
    pub driver: Option<Spanned<String>>,
    /// Parameter values for this instrument's operations (e.g. `nplc = 100`), applied to every
    /// operation that has the parameter, under what a step gives.
    #[serde(default)]
    pub params: RawParams,
    /// Changes to the driver profile for this instrument, merged over it key by key (e.g. a
    /// command the reference could not confirm).
    pub profile: Option<Spanned<toml::Table>>,
    /// USB serial number of the instrument's USB-serial adapter: after a reconnect the port is
    /// found again by it, whatever device name it came back under.
    pub usb_serial: Option<String>,
    /// The unit's serial number as it reports it in its identity: any other unit on this
    /// resource is refused, from the first connection on.
    pub serial_number: Option<Spanned<String>>,
    /// The instrument's calibration (its traceability), for the bundle and the official-run check.
    pub calibration: Option<RawCalibration>,
}

/// Which instrument exchanges are stored as events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeLog {
    /// Every exchange, including each reading's own query (one more row per reading).
    All,
    /// Every exchange except a reading's own successful query, which the reading row records
    /// (query from the sequence, reply verbatim, time).
    ExceptReadings,
    /// None; failures are still recorded as run events.
    None,
}

/// Serial parity as written in the file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawParity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Serial flow control as written in the file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawFlowControl {
    /// None.
    None,
    /// Software XON/XOFF.
    Xonxoff,
    /// Hardware RTS/CTS.
    Rtscts,
}

/// `[[sequence]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSequence {
    /// Name used by `tsagent measure --sequence`.
    pub name: Spanned<String>,
    /// Run on this schedule under `tsagent run`, e.g. `"30m"`: at whole multiples of it since
    /// the Unix epoch (UTC).
    pub every: Option<Spanned<String>>,
    /// Offset of the schedule's slots, less than `every`, e.g. `"15m"` with `every = "1h"`.
    pub at: Option<Spanned<String>>,
    /// An official measurement of the comparison: it starts only in the official window (after
    /// the stabilisation gate, before dispatch, not on a damaged standard without a decision).
    pub official: Option<bool>,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<RawStep>,
}

/// `[[sequence.step]]`: exactly one of the keys below.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawStep {
    /// Ask the instrument who it is and record it.
    Identify(RawInstrumentRef),
    /// Run the profile's `configure` operation.
    Configure(RawConfigure),
    /// Run any operation whose result is not stored as readings (`source_set`, `source_operate`…).
    Operate(RawOperate),
    /// Take readings with a `read`-like operation.
    Read(RawRead),
    /// Empty the instrument's error queue into the event log (fails the run on any error).
    DrainErrors(RawInstrumentRef),
}

/// A step that names only an instrument.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstrumentRef {
    /// Instrument name.
    pub instrument: Spanned<String>,
}

/// `configure = { instrument, params }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfigure {
    /// Instrument name.
    pub instrument: Spanned<String>,
    /// Values for the operation's parameters.
    #[serde(default)]
    pub params: RawParams,
}

/// `operate = { instrument, op, params }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperate {
    /// Instrument name.
    pub instrument: Spanned<String>,
    /// Operation name from the instrument's profile.
    pub op: Spanned<String>,
    /// Values for the operation's parameters.
    #[serde(default)]
    pub params: RawParams,
}

/// `read = { instrument, count, … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRead {
    /// Instrument name.
    pub instrument: Spanned<String>,
    /// The operation that yields readings (default `read`; `read_buffer`, `env_read`, …).
    pub op: Option<Spanned<String>>,
    /// Values for the operation's parameters (e.g. `count` for `read_buffer`).
    #[serde(default)]
    pub params: RawParams,
    /// How many times to run the operation.
    pub count: Spanned<u32>,
    /// Time from one run's start to the next (default `"0s"`: back to back).
    pub interval: Option<Spanned<String>>,
    /// What is measured, e.g. `voltage` (required unless the reply names its values).
    pub quantity: Option<String>,
    /// Unit of the readings (required unless the reply gives units).
    pub unit: Option<String>,
}
