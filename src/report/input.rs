//! What a report is made from: plain data, filled in by the caller from the analysis and the
//! config. Nothing here reads the database or the config, so the rendering can be tested with a
//! fixture and the same input always gives the same files.
//!
//! Instants are microseconds since the Unix epoch in UTC (`utc_us`, as everywhere in tsagent);
//! calendar dates (issue date, calibration dates) are `YYYY-MM-DD` text, as the config has them.
//! Units are the symbols people write (`V`, `Ω`, `°C`, `hPa`, `%`, `V/d`); the D-SI spelling is
//! derived from them (`units::dsi`).

use serde::{Deserialize, Serialize};

/// A text in English and Chinese: labels and names appear in either or both (`Options::languages`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bilingual {
    /// English.
    pub en: String,
    /// Chinese (simplified).
    pub zh: String,
}

impl Bilingual {
    /// The same text in both languages (an identifier, a model name).
    pub fn both(text: &str) -> Self {
        Self {
            en: text.to_owned(),
            zh: text.to_owned(),
        }
    }
}

/// Everything a report shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportInput {
    /// Who reports, for which comparison, over which window.
    pub admin: Admin,
    /// The travelling standard measured.
    pub artefact: Artefact,
    /// The quantity reported, e.g. the Zener's output voltage.
    pub quantity: Quantity,
    /// How the result was obtained, as it appears under "Method".
    pub method: Bilingual,
    /// The lab's result at the mean date.
    pub result: LabResult,
    /// The uncertainty budget, one row per component, in the order shown.
    pub budget: Vec<BudgetRow>,
    /// Every reading of the window, in time order.
    pub readings: Vec<Reading>,
    /// The drift line drawn over the readings; `None` draws none (e.g. fewer than three readings).
    pub drift: Option<DriftLine>,
    /// Allan deviation of the readings, one point per averaging time.
    pub allan: Option<AllanSeries>,
    /// Each environment quantity over the window.
    pub environment: Vec<EnvironmentSeries>,
    /// Residuals of the drift fit against temperature; `None` when there is no temperature.
    pub residuals: Option<Residuals>,
    /// The instruments that took part.
    pub instruments: Vec<Instrument>,
    /// The environment during the window, summarised, for the result's influence conditions.
    pub conditions: Vec<Condition>,
}

/// Administrative data: the report's header and the DCC's `administrativeData`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Admin {
    /// The lab's identifier in the comparison (e.g. `LAB07`).
    pub lab_id: String,
    /// The lab's name.
    pub lab_name: Bilingual,
    /// Street address, one line.
    pub address: String,
    /// City.
    pub city: String,
    /// Country, ISO 3166-1 alpha-2 (`CN`).
    pub country: String,
    /// The comparison's identifier (e.g. `CCEM-K8.2026`).
    pub comparison_id: String,
    /// The comparison's title.
    pub comparison_title: Bilingual,
    /// The pilot laboratory, to whom the report goes.
    pub pilot: Bilingual,
    /// The pilot's city.
    pub pilot_city: String,
    /// The pilot's country, ISO 3166-1 alpha-2.
    pub pilot_country: String,
    /// The person responsible for the result.
    pub responsible: String,
    /// The report's unique identifier (the DCC's `uniqueIdentifier`).
    pub report_id: String,
    /// The date of issue, `YYYY-MM-DD`.
    pub issue_date: String,
    /// The window's first instant, UTC µs.
    pub window_begin_utc_us: i64,
    /// The window's last instant, UTC µs.
    pub window_end_utc_us: i64,
}

/// The travelling standard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artefact {
    /// The comparison's identifier for it.
    pub id: String,
    /// What it is (e.g. "10 V Zener voltage standard").
    pub kind: Bilingual,
    /// Its manufacturer.
    pub manufacturer: String,
    /// Its model.
    pub model: String,
    /// Its serial number.
    pub serial: String,
    /// Its nominal value, in `unit`.
    pub nominal: f64,
    /// The unit of `nominal`, e.g. `V`.
    pub unit: String,
}

/// The quantity reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantity {
    /// Its name, e.g. "output voltage".
    pub name: Bilingual,
    /// Its symbol on plots, e.g. `U`.
    pub symbol: String,
    /// Its unit, an unprefixed symbol such as `V` or `Ω`, so plots can choose an SI prefix.
    pub unit: String,
}

/// The lab's result at the mean date.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabResult {
    /// The value at the mean date, in the quantity's unit.
    pub value: f64,
    /// The mean date of the readings used, UTC µs.
    pub mean_date_utc_us: i64,
    /// Combined standard uncertainty.
    pub u_c: f64,
    /// Effective degrees of freedom (Welch–Satterthwaite); `None` is infinite.
    pub nu_eff: Option<f64>,
    /// Coverage factor.
    pub k: f64,
    /// Expanded uncertainty, `k · u_c`.
    pub expanded: f64,
    /// The coverage probability `k` is for, e.g. 0.95.
    pub coverage_probability: f64,
    /// Readings used.
    pub n: usize,
    /// Readings in the window left out (flagged: no environment reading near enough).
    pub left_out: usize,
    /// The drift, per day.
    pub drift: DriftRate,
}

/// The drift of the readings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftRate {
    /// Slope, in the quantity's unit per day.
    pub slope_per_day: f64,
    /// Its standard uncertainty.
    pub u: f64,
    /// Whether it is significant, so the result is the line's value at the mean date.
    pub significant: bool,
}

/// How an uncertainty component was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvalType {
    /// Type A: statistics of the readings.
    A,
    /// Type B: other knowledge.
    B,
}

/// An uncertainty component's distribution (its divisor follows from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Normal (a Type A component, or a certificate's expanded uncertainty with its k).
    Normal,
    /// Rectangular (divisor √3).
    Rectangular,
    /// Triangular (divisor √6).
    Triangular,
    /// U-shaped, arcsine (divisor √2).
    UShaped,
}

/// One row of the uncertainty budget, as the analysis computed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetRow {
    /// The component's name.
    pub name: Bilingual,
    /// Type A or B.
    pub eval: EvalType,
    /// Its distribution.
    pub distribution: Distribution,
    /// The stated value (half-width, expanded uncertainty or standard deviation), in `unit`.
    pub value: f64,
    /// The unit of `value` and `u`.
    pub unit: String,
    /// What `value` is divided by to give `u`.
    pub divisor: f64,
    /// Standard uncertainty, in `unit`.
    pub u: f64,
    /// Sensitivity coefficient, quantity unit per `unit`.
    pub sensitivity: f64,
    /// `|sensitivity| · u`, in the quantity's unit.
    pub contribution: f64,
    /// Degrees of freedom; `None` is infinite.
    pub dof: Option<f64>,
    /// Share of `u_c²`, 0 to 1.
    pub share: f64,
}

/// One reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reading {
    /// Its sequence number in the log.
    pub seq: u64,
    /// The run that took it.
    pub run: u64,
    /// When, UTC µs.
    pub utc_us: i64,
    /// As the instrument gave it.
    pub raw: f64,
    /// Corrected for the environment; `None` when it could not be (flagged).
    pub corrected: Option<f64>,
    /// Left out of the result (no environment reading near enough in time).
    pub flagged: bool,
}

/// The drift line over the readings: `y(t) = intercept + slope_per_day · d`, where `d` is days
/// from `t0_utc_us`; its standard uncertainty at `d` is `√(c₀₀ + 2 c₀₁ d + c₁₁ d²)` from
/// `covariance` (intercept first), and the band drawn is `± band_k` times that: the line's
/// uncertainty, not a new reading's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftLine {
    /// The fit's origin, UTC µs.
    pub t0_utc_us: i64,
    /// The value at `t0_utc_us`, in the quantity's unit.
    pub intercept: f64,
    /// Per day.
    pub slope_per_day: f64,
    /// Covariance of (intercept, slope per day).
    pub covariance: [[f64; 2]; 2],
    /// Coverage factor of the band (for 95 %, from the t-distribution with the fit's dof).
    pub band_k: f64,
}

/// Allan deviation of the readings against averaging time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllanSeries {
    /// The unit of the deviations (the quantity's, or `1` for fractional values).
    pub unit: String,
    /// The points, by increasing τ.
    pub points: Vec<AllanPoint>,
}

/// One Allan deviation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllanPoint {
    /// Averaging time, s.
    pub tau_s: f64,
    /// The (overlapping) Allan deviation.
    pub adev: f64,
    /// The error bar's half-length, one standard uncertainty (e.g. `adev / √n`).
    pub err: f64,
}

/// One environment quantity over the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentSeries {
    /// Its name, e.g. "temperature".
    pub name: Bilingual,
    /// Its symbol on the plot, e.g. `t`.
    pub symbol: String,
    /// Its unit, e.g. `°C`.
    pub unit: String,
    /// `(utc_us, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// The drift fit's residuals against temperature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Residuals {
    /// The temperature's symbol, e.g. `t`.
    pub x_symbol: String,
    /// The temperature's unit, e.g. `°C`.
    pub x_unit: String,
    /// `(temperature, residual)`, the residual in the quantity's unit.
    pub points: Vec<(f64, f64)>,
}

/// An instrument that took part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instrument {
    /// Its name in the config (`dmm`).
    pub name: String,
    /// What it did.
    pub role: Bilingual,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware, as it reported it.
    pub firmware: Option<String>,
    /// Its calibration, if the config has one.
    pub calibration: Option<Calibration>,
}

/// An instrument's calibration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    /// The certificate's number.
    pub certificate: String,
    /// Who calibrated it.
    pub laboratory: Option<String>,
    /// When, `YYYY-MM-DD`.
    pub date: String,
    /// Next due, `YYYY-MM-DD`.
    pub due: Option<String>,
    /// The certificate's expanded uncertainty, with its unit and coverage factor.
    pub uncertainty: Option<StatedUncertainty>,
}

/// An expanded uncertainty as a certificate states it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatedUncertainty {
    /// Expanded uncertainty.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Its coverage factor.
    pub k: f64,
}

/// An environment quantity over the window, summarised.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Condition {
    /// Its name.
    pub name: Bilingual,
    /// Its unit.
    pub unit: String,
    /// Mean.
    pub mean: f64,
    /// Lowest.
    pub min: f64,
    /// Highest.
    pub max: f64,
}
