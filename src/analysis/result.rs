//! The lab's result for a window of readings: corrected readings, the drift fit against time, the
//! value at the mean date with its Type A uncertainty, and the whole budget.
//!
//! The value at the mean date t̄ from an OLS line is ȳ + b·(t̄ − t̄) = ȳ: the fit does not move the
//! value, it changes its Type A uncertainty. With a significant drift, the scatter about the line
//! (s_res, n − 2 degrees of freedom) is the repeatability, and u(ŷ(t̄)) = s_res/√n; without one,
//! the experimental standard deviation of the mean s/√n with n − 1 (GUM 4.2) is used, since a
//! slope that is not there would only take degrees of freedom away. A drift is significant when
//! |b|/u(b) exceeds t_0.975(n − 2), a two-sided test at the 5 % level.

use super::AnalysisError;
use super::budget::{Budget, BudgetRow, ComponentKind, combine};
use super::correct::{CorrectedReading, EnvSeries, TimedValue, apply_corrections, nearest, scale};
use crate::config::{ComponentSource, Correction, DEFAULT_WITHIN, UncertaintyComponent};
use crate::stats::{Distribution, LinearFit, StatsError, ols, student_t_quantile, summary};

/// µs in a day: the drift is fitted per day, the unit drift rates are quoted in.
const US_PER_DAY: f64 = 86_400e6;

/// Points of the drift line and its band returned for plotting: smooth at any plot width, and the
/// band is a hyperbola, so a straight segment between two ends would not do.
const BAND_POINTS: usize = 65;

/// Everything the lab's result is computed from, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct LabInput<'a> {
    /// The measurand's readings in the window, in the artefact's unit.
    pub readings: &'a [TimedValue],
    /// The environment series the corrections (and the residual plot) use.
    pub env: &'a [EnvSeries],
    /// `[[correction]]`s.
    pub corrections: &'a [Correction],
    /// `[[uncertainty]]` components.
    pub components: &'a [UncertaintyComponent],
    /// The artefact's nominal value: relative coefficients and relative calibration uncertainties
    /// are fractions of it or of the value.
    pub nominal: f64,
    /// The measurand's unit (`V`), for the units of the corrections' budget rows.
    pub unit: &'a str,
}

/// Where the reported value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueBasis {
    /// The drift fit at the mean date (the drift is significant).
    DriftFit,
    /// The mean of the corrected readings (no significant drift, or too few points to fit one).
    Mean,
}

impl ValueBasis {
    /// One sentence for the report (English) saying where the value comes from.
    pub fn text_en(self) -> &'static str {
        match self {
            Self::DriftFit => {
                "The drift is significant (|b|/u(b) > t_0.975(n − 2)): the value is the drift line at the mean date, with the scatter about the line as its Type A uncertainty (n − 2 degrees of freedom)."
            }
            Self::Mean => {
                "No significant drift (|b|/u(b) ≤ t_0.975(n − 2), or too few instants to fit one): the value is the mean of the corrected readings, with the experimental standard deviation of the mean as its Type A uncertainty (n − 1 degrees of freedom)."
            }
        }
    }

    /// The same sentence in Chinese.
    pub fn text_zh(self) -> &'static str {
        match self {
            Self::DriftFit => {
                "漂移显著（|b|/u(b) > t_0.975(n − 2)）：结果取漂移拟合直线在平均日期的值，A 类不确定度由拟合残差评定（自由度 n − 2）。"
            }
            Self::Mean => {
                "漂移不显著（|b|/u(b) ≤ t_0.975(n − 2)，或时间点不足以拟合）：结果取修正后读数的平均值，A 类不确定度为平均值的实验标准偏差（自由度 n − 1）。"
            }
        }
    }
}

/// The drift fit of the corrected readings against time, in days.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// The instant t = 0 of the fit (the first corrected reading), µs UTC.
    pub origin_utc_us: i64,
    /// Slope b, measurand unit per day.
    pub slope_per_day: f64,
    /// Its standard uncertainty u(b).
    pub u_slope_per_day: f64,
    /// |b|/u(b); `None` for a perfect fit (u(b) = 0).
    pub t_ratio: Option<f64>,
    /// t_0.975(n − 2): the ratio beyond which the drift is significant, and the band's factor.
    pub t_critical: f64,
    /// Whether the drift is significant at the 5 % level.
    pub significant: bool,
    /// Residual standard deviation s_res.
    pub residual_sd: f64,
    /// Degrees of freedom n − 2.
    pub dof: usize,
    /// The fit itself (t in days from `origin_utc_us`).
    pub fit: LinearFit,
}

impl Drift {
    /// The line at an instant with the 95 % band of the line (not of a new reading):
    /// ŷ ± t_0.975(n − 2)·u(ŷ).
    pub fn at(&self, utc_us: i64) -> BandPoint {
        let p = self.fit.predict(days(utc_us, self.origin_utc_us));
        BandPoint {
            utc_us,
            value: p.value,
            u: p.u,
            lower: p.value - self.t_critical * p.u,
            upper: p.value + self.t_critical * p.u,
        }
    }
}

/// The drift line at one instant, with its 95 % band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    /// The instant, µs UTC.
    pub utc_us: i64,
    /// ŷ.
    pub value: f64,
    /// u(ŷ).
    pub u: f64,
    /// ŷ − t·u(ŷ).
    pub lower: f64,
    /// ŷ + t·u(ŷ).
    pub upper: f64,
}

/// A corrected reading's residual from the drift line (or from the mean when there is none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residual {
    /// The reading's instant, µs UTC.
    pub utc_us: i64,
    /// Corrected value minus fitted value.
    pub residual: f64,
    /// The temperature nearest in time, when an environment series `temperature` has one within
    /// reach (for the plot of residuals against temperature: a leftover temperature effect shows
    /// as a slope there).
    pub temperature: Option<f64>,
}

/// The lab's result for a window, with everything its report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LabResult {
    /// The value reported at the mean date, in the artefact's unit.
    pub value: f64,
    /// Whether it comes from the drift fit or the mean.
    pub basis: ValueBasis,
    /// The mean date: the mean instant of the corrected readings, µs UTC.
    pub mean_date_utc_us: i64,
    /// Corrected readings used.
    pub n: usize,
    /// Readings flagged (no environment reading near enough) and left out.
    pub flagged: usize,
    /// Mean of the corrected readings.
    pub mean: f64,
    /// Their experimental standard deviation s.
    pub std_dev: f64,
    /// The drift fit, when there are at least 3 readings at 2 or more instants.
    pub drift: Option<Drift>,
    /// The drift line and its 95 % band across the window, for plotting (empty without a fit).
    pub band: Vec<BandPoint>,
    /// Residuals of the corrected readings, in time order of the input.
    pub residuals: Vec<Residual>,
    /// Every reading, raw and corrected, flagged or not.
    pub readings: Vec<CorrectedReading>,
    /// The uncertainty budget: u_c, ν_eff, k and U are in it.
    pub budget: Budget,
}

impl LabResult {
    /// Combined standard uncertainty u_c.
    pub fn combined(&self) -> f64 {
        self.budget.combined
    }

    /// Expanded uncertainty U for about 95 %.
    pub fn expanded(&self) -> f64 {
        self.budget.expanded
    }
}

/// Days from `origin` to `utc_us`, without overflow for any pair of instants.
fn days(utc_us: i64, origin: i64) -> f64 {
    (i128::from(utc_us) - i128::from(origin)) as f64 / US_PER_DAY
}

/// The lab's result: corrections, drift fit, value at the mean date, budget.
///
/// The budget's rows are, in order: the Type A component, the config's `[[uncertainty]]`
/// components, then per correction its coefficient's uncertainty (sensitivity: the mean |x − x_ref|
/// over the corrected readings, a bound on what an error in the coefficient does to them) and, when
/// the config gives `u_quantity`, its sensor's (sensitivity: the coefficient). The coverage factor
/// is t_0.975 at ν_eff truncated to an integer, as GUM G.4.1 and JJF 1059.1 prescribe, so a pilot
/// finds the same k in a printed table.
pub fn lab_result(input: &LabInput<'_>) -> Result<LabResult, AnalysisError> {
    if input.readings.is_empty() {
        return Err(AnalysisError::NoReadings);
    }
    let corrected = apply_corrections(input.readings, input.env, input.corrections, input.nominal)?;
    let used: Vec<(i64, f64)> = corrected
        .rows
        .iter()
        .filter_map(|r| r.corrected.map(|c| (r.utc_us, c)))
        .collect();
    if used.is_empty() {
        return Err(AnalysisError::AllFlagged {
            flagged: corrected.flagged,
        });
    }
    let n = used.len();
    if n < 2 {
        return Err(AnalysisError::TooFewReadings { needed: 2, got: n });
    }
    let origin = used.iter().map(|u| u.0).min().unwrap_or(0);
    let t: Vec<f64> = used.iter().map(|u| days(u.0, origin)).collect();
    let y: Vec<f64> = used.iter().map(|u| u.1).collect();
    let stats = summary(&y).map_err(AnalysisError::Stats)?;
    let t_mean = crate::stats::mean(&t).map_err(AnalysisError::Stats)?;
    let mean_date_utc_us = origin.saturating_add((t_mean * US_PER_DAY).round() as i64);

    let drift = if n >= 3 {
        match ols(&t, &y) {
            Ok(fit) => Some(drift(fit, origin)?),
            Err(StatsError::ZeroSpread) => None,
            Err(e) => return Err(AnalysisError::Stats(e)),
        }
    } else {
        None
    };
    let n_f = n as f64;
    let (basis, value, type_a) = match &drift {
        Some(d) if d.significant => (
            ValueBasis::DriftFit,
            d.fit.predict(t_mean).value,
            BudgetRow::new(
                "Repeatability (scatter about the drift line, at the mean date)".into(),
                "重复性（漂移拟合残差，平均日期）".into(),
                ComponentKind::A,
                None,
                d.residual_sd,
                n_f.sqrt(),
                1.0,
                d.dof as f64,
            ),
        ),
        _ => (
            ValueBasis::Mean,
            stats.mean,
            BudgetRow::new(
                "Repeatability (experimental standard deviation of the mean)".into(),
                "重复性（平均值的实验标准偏差）".into(),
                ComponentKind::A,
                None,
                stats.std_dev,
                n_f.sqrt(),
                1.0,
                stats.dof as f64,
            ),
        ),
    };

    let mut rows = vec![type_a];
    rows.extend(input.components.iter().map(|c| component_row(c, value)));
    for (c, mean_abs) in input.corrections.iter().zip(&corrected.mean_abs_deviation) {
        // The coefficient's row in measurand units per environment unit (a relative one times
        // the nominal value), so its sensitivity is the mean deviation from the reference.
        let per_unit = if c.relative { input.nominal } else { 1.0 };
        let env_unit = input
            .env
            .iter()
            .find(|s| s.quantity == c.quantity && s.instrument == c.instrument)
            .map(|s| s.unit.clone())
            .unwrap_or_default();
        rows.push(
            BudgetRow::new(
                format!("{} coefficient", c.quantity),
                format!("{}系数", c.name_zh),
                ComponentKind::B,
                Some(Distribution::Normal { k: 1.0 }),
                c.u * per_unit,
                1.0,
                *mean_abs,
                f64::INFINITY,
            )
            .in_unit(format!("{}/{env_unit}", input.unit)),
        );
        if let Some(u_x) = c.u_quantity {
            rows.push(
                BudgetRow::new(
                    format!("{} measurement ({})", c.quantity, c.instrument),
                    format!("{}测量（{}）", c.name_zh, c.instrument),
                    ComponentKind::B,
                    Some(Distribution::Normal { k: 1.0 }),
                    u_x,
                    1.0,
                    scale(c, input.nominal),
                    f64::INFINITY,
                )
                .in_unit(env_unit),
            );
        }
    }
    let budget = combine(rows)?;

    let temperature = temperature_series(input);
    let residuals = used
        .iter()
        .zip(&t)
        .map(|(&(utc_us, y), &t)| Residual {
            utc_us,
            residual: match &drift {
                Some(d) => y - d.fit.predict(t).value,
                None => y - stats.mean,
            },
            temperature: temperature
                .as_ref()
                .and_then(|(s, within)| nearest(s, utc_us, *within))
                .map(|e| e.value),
        })
        .collect();
    let band = match &drift {
        Some(d) => {
            let last = used.iter().map(|u| u.0).max().unwrap_or(origin);
            let span = (i128::from(last) - i128::from(origin)) as f64;
            (0..BAND_POINTS)
                .map(|i| {
                    let offset = span * i as f64 / (BAND_POINTS - 1) as f64;
                    d.at(origin.saturating_add(offset.round() as i64))
                })
                .collect()
        }
        None => Vec::new(),
    };
    Ok(LabResult {
        value,
        basis,
        mean_date_utc_us,
        n,
        flagged: corrected.flagged,
        mean: stats.mean,
        std_dev: stats.std_dev,
        drift,
        band,
        residuals,
        readings: corrected.rows,
        budget,
    })
}

/// The drift of a fit and whether it is significant.
fn drift(fit: LinearFit, origin: i64) -> Result<Drift, AnalysisError> {
    let t_critical = student_t_quantile(0.975, fit.dof as f64).map_err(AnalysisError::Budget)?;
    let t_ratio = (fit.u_slope > 0.0).then(|| fit.slope.abs() / fit.u_slope);
    let significant = match t_ratio {
        Some(r) => r > t_critical,
        // A perfect line: any nonzero slope is certain.
        None => fit.slope != 0.0,
    };
    Ok(Drift {
        origin_utc_us: origin,
        slope_per_day: fit.slope,
        u_slope_per_day: fit.u_slope,
        t_ratio,
        t_critical,
        significant,
        residual_sd: fit.residual_sd,
        dof: fit.dof,
        fit,
    })
}

/// A config component as a budget row; a relative calibration uncertainty is taken of the value.
fn component_row(c: &UncertaintyComponent, value: f64) -> BudgetRow {
    let (distribution, stated, dof) = match &c.source {
        ComponentSource::Stated {
            distribution,
            value,
            dof,
        } => (*distribution, *value, *dof),
        ComponentSource::Calibration { uncertainty: u, .. } => (
            Distribution::Normal { k: u.k },
            if u.relative {
                u.expanded * value.abs()
            } else {
                u.expanded
            },
            u.dof,
        ),
    };
    BudgetRow::new(
        c.name.clone(),
        c.name_zh.clone(),
        ComponentKind::B,
        Some(distribution),
        stated,
        distribution.divisor(),
        c.sensitivity,
        dof,
    )
}

/// The temperature series for the residual plot, sorted, with how far from a reading it may be:
/// the one a temperature correction uses, else any series named `temperature`.
fn temperature_series(input: &LabInput<'_>) -> Option<(Vec<TimedValue>, std::time::Duration)> {
    let correction = input
        .corrections
        .iter()
        .find(|c| c.quantity == "temperature");
    let series = input.env.iter().find(|s| {
        s.quantity == "temperature" && correction.is_none_or(|c| c.instrument == s.instrument)
    })?;
    let mut readings: Vec<TimedValue> = series
        .readings
        .iter()
        .copied()
        .filter(|r| r.value.is_finite())
        .collect();
    readings.sort_by_key(|r| r.utc_us);
    Some((readings, correction.map_or(DEFAULT_WITHIN, |c| c.within)))
}

#[cfg(test)]
mod tests;
