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
    /// `[simulator]`: the model behind `SIM::PTY::INSTR` instruments.
    pub simulator: Option<Spanned<RawSimulator>>,
    /// `[[instrument]]`.
    #[serde(default, rename = "instrument")]
    pub instruments: Vec<RawInstrument>,
    /// `[[sequence]]`.
    #[serde(default, rename = "sequence")]
    pub sequences: Vec<RawSequence>,
}

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
    /// Nominal value in `unit`.
    pub nominal: Spanned<f64>,
    /// Unit of the nominal value.
    pub unit: String,
}

/// `[storage]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// SQLite file; relative paths are relative to the config file's folder.
    pub db: Option<String>,
    /// Folder for sealed bundles.
    pub bundles: Option<String>,
    /// Which command/reply exchanges become events (default `except_readings`).
    pub log_exchanges: Option<ExchangeLog>,
}

/// `[signing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    /// OpenSSH Ed25519 private key used to sign bundles.
    pub key: Option<String>,
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
    /// Run on this schedule under `tsagent run`, e.g. `"30m"`.
    pub every: Option<Spanned<String>>,
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
    /// Send commands that set the instrument up.
    Configure(RawConfigure),
    /// Take readings.
    Read(RawRead),
    /// Empty the instrument's error queue into the event log.
    DrainErrors(RawInstrumentRef),
}

/// A step that names only an instrument.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstrumentRef {
    /// Instrument name.
    pub instrument: Spanned<String>,
}

/// `configure = { instrument, commands }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfigure {
    /// Instrument name.
    pub instrument: Spanned<String>,
    /// Commands sent in order.
    pub commands: Vec<Spanned<String>>,
}

/// `read = { instrument, count, … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRead {
    /// Instrument name.
    pub instrument: Spanned<String>,
    /// The query that triggers and returns one reading (default `READ?`).
    pub query: Option<Spanned<String>>,
    /// How many readings.
    pub count: Spanned<u32>,
    /// Time from one reading's start to the next (default `"0s"`: back to back).
    pub interval: Option<Spanned<String>>,
    /// What is measured, e.g. `voltage`.
    pub quantity: String,
    /// Unit of the readings.
    pub unit: String,
}
