//! Environmental corrections: each reading of the measurand corrected to the reference conditions
//! with the environment reading nearest to it in time.
//!
//! `corrected = raw − Σ_j c_j·(x_j − x_ref,j)`, with c_j multiplied by the nominal value when the
//! coefficient is relative (`statistics.md` §2.3). A reading for which some correction has no
//! environment reading within its `within` is flagged: kept with its raw value, not corrected, left
//! out of the result and counted, so the report shows what was excluded and why.

use std::time::Duration;

use super::AnalysisError;
use crate::config::Correction;

/// A value at an instant: a reading of the measurand or of the environment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedValue {
    /// When it was taken, µs since the Unix epoch (UTC), as the store keeps it.
    pub utc_us: i64,
    /// The value, in its quantity's unit.
    pub value: f64,
}

/// The readings of one environment quantity by one instrument.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSeries {
    /// The quantity, as the readings name it (`temperature`).
    pub quantity: String,
    /// The instrument that read it.
    pub instrument: String,
    /// Its unit (`°C`), for the report.
    pub unit: String,
    /// The readings, in any order.
    pub readings: Vec<TimedValue>,
}

/// The environment reading a correction used for one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvUsed {
    /// When the environment reading was taken.
    pub utc_us: i64,
    /// Its value.
    pub value: f64,
    /// The correction it gave, in the measurand's unit (subtracted from the raw value).
    pub correction: f64,
}

/// One reading of the measurand, raw and corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrectedReading {
    /// When it was taken, µs since the Unix epoch (UTC).
    pub utc_us: i64,
    /// The value as read.
    pub raw: f64,
    /// The value corrected to the reference conditions; `None` when flagged.
    pub corrected: Option<f64>,
    /// Per correction (in the config's order), the environment reading used, or `None` when there
    /// was none within `within` (which flags the reading).
    pub env: Vec<Option<EnvUsed>>,
}

impl CorrectedReading {
    /// Whether the reading is left out of the result for want of an environment reading.
    pub fn flagged(&self) -> bool {
        self.corrected.is_none()
    }
}

/// The readings after correction.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrected {
    /// Every reading, in the order given, flagged or not.
    pub rows: Vec<CorrectedReading>,
    /// How many are flagged.
    pub flagged: usize,
    /// Per correction, the mean |x − x_ref| over the readings it corrected: the sensitivity of the
    /// result to an error in its coefficient (0 when none was corrected).
    pub mean_abs_deviation: Vec<f64>,
}

/// The reading of `series` (sorted by time) nearest to `utc_us`, if one is within `within`; of two
/// equally near, the earlier, which the measurement could already have been affected by.
pub fn nearest(series: &[TimedValue], utc_us: i64, within: Duration) -> Option<TimedValue> {
    let after = series.partition_point(|r| r.utc_us < utc_us);
    let distance = |r: &TimedValue| r.utc_us.abs_diff(utc_us);
    let before = after.checked_sub(1).and_then(|i| series.get(i));
    let candidate = match (before, series.get(after)) {
        (Some(b), Some(a)) if distance(a) < distance(b) => a,
        (Some(b), _) => b,
        (None, Some(a)) => a,
        (None, None) => return None,
    };
    let limit = u64::try_from(within.as_micros()).unwrap_or(u64::MAX);
    (distance(candidate) <= limit).then_some(*candidate)
}

/// The series a correction reads, sorted by time and checked finite.
fn series_for(env: &[EnvSeries], c: &Correction) -> Result<Vec<TimedValue>, AnalysisError> {
    let no_env = || AnalysisError::NoEnvironment {
        quantity: c.quantity.clone(),
        instrument: c.instrument.clone(),
    };
    let series = env
        .iter()
        .find(|s| s.quantity == c.quantity && s.instrument == c.instrument)
        .ok_or_else(no_env)?;
    if series.readings.is_empty() {
        return Err(no_env());
    }
    if let Some(index) = series.readings.iter().position(|r| !r.value.is_finite()) {
        return Err(AnalysisError::NonFiniteEnvironment {
            quantity: c.quantity.clone(),
            instrument: c.instrument.clone(),
            index,
        });
    }
    let mut sorted = series.readings.clone();
    sorted.sort_by_key(|r| r.utc_us);
    Ok(sorted)
}

/// The correction's scale: c, or c times the nominal value for a relative coefficient, so that
/// `scale · (x − x_ref)` is in the measurand's unit.
pub(super) fn scale(c: &Correction, nominal: f64) -> f64 {
    if c.relative {
        c.coefficient * nominal
    } else {
        c.coefficient
    }
}

/// Corrects every reading with the environment reading nearest in time, per correction.
///
/// With no corrections every reading is its own corrected value. Fails on a non-finite value or a
/// correction whose series is missing or empty; readings with no environment reading near enough
/// are flagged, not refused (all of them flagged is the caller's error to raise).
pub fn apply_corrections(
    readings: &[TimedValue],
    env: &[EnvSeries],
    corrections: &[Correction],
    nominal: f64,
) -> Result<Corrected, AnalysisError> {
    if let Some(index) = readings.iter().position(|r| !r.value.is_finite()) {
        return Err(AnalysisError::NonFiniteReading { index });
    }
    let series = corrections
        .iter()
        .map(|c| series_for(env, c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(readings.len());
    let mut flagged = 0;
    let mut abs_sum = vec![0.0; corrections.len()];
    for r in readings {
        let used: Vec<Option<EnvUsed>> = corrections
            .iter()
            .zip(&series)
            .map(|(c, s)| {
                nearest(s, r.utc_us, c.within).map(|e| EnvUsed {
                    utc_us: e.utc_us,
                    value: e.value,
                    correction: scale(c, nominal) * (e.value - c.reference),
                })
            })
            .collect();
        let corrected = if used.iter().all(Option::is_some) {
            for ((sum, u), c) in abs_sum.iter_mut().zip(&used).zip(corrections) {
                if let Some(u) = u {
                    *sum += (u.value - c.reference).abs();
                }
            }
            Some(r.value - used.iter().flatten().map(|u| u.correction).sum::<f64>())
        } else {
            flagged += 1;
            None
        };
        rows.push(CorrectedReading {
            utc_us: r.utc_us,
            raw: r.value,
            corrected,
            env: used,
        });
    }
    let corrected_count = readings.len() - flagged;
    let mean_abs_deviation = abs_sum
        .iter()
        .map(|s| {
            if corrected_count == 0 {
                0.0
            } else {
                s / corrected_count as f64
            }
        })
        .collect();
    Ok(Corrected {
        rows,
        flagged,
        mean_abs_deviation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000_000;

    fn tv(minute: i64, value: f64) -> TimedValue {
        TimedValue {
            utc_us: minute * MIN,
            value,
        }
    }

    fn correction(quantity: &str, coefficient: f64, reference: f64) -> Correction {
        Correction {
            quantity: quantity.into(),
            instrument: "env".into(),
            coefficient,
            u: 0.0,
            reference,
            relative: false,
            u_quantity: None,
            within: Duration::from_secs(600),
            name_zh: quantity.into(),
        }
    }

    fn series(quantity: &str, readings: Vec<TimedValue>) -> EnvSeries {
        EnvSeries {
            quantity: quantity.into(),
            instrument: "env".into(),
            unit: String::new(),
            readings,
        }
    }

    #[test]
    fn nearest_takes_the_closer_neighbour_within_the_limit() {
        let s = [tv(0, 1.0), tv(10, 2.0), tv(20, 3.0)];
        let ten = Duration::from_secs(600);
        assert_eq!(nearest(&s, 4 * MIN, ten), Some(tv(0, 1.0)));
        assert_eq!(nearest(&s, 6 * MIN, ten), Some(tv(10, 2.0)));
        // Equally near: the earlier one.
        assert_eq!(nearest(&s, 5 * MIN, ten), Some(tv(0, 1.0)));
        assert_eq!(nearest(&s, 10 * MIN, ten), Some(tv(10, 2.0)));
        assert_eq!(nearest(&s, -10 * MIN, ten), Some(tv(0, 1.0)));
        assert_eq!(nearest(&s, 30 * MIN, ten), Some(tv(20, 3.0)));
        // Beyond the limit on both sides.
        assert_eq!(nearest(&s, -11 * MIN, ten), None);
        assert_eq!(nearest(&s, 31 * MIN, ten), None);
        assert_eq!(nearest(&[], 0, ten), None);
        assert_eq!(nearest(&s, i64::MIN, Duration::MAX), Some(tv(0, 1.0)));
    }

    #[test]
    fn readings_are_corrected_with_the_nearest_environment_reading_or_flagged() {
        // Temperature 24 °C until minute 10, 22 °C from minute 20; c = 0.2 µV/K about 23 °C.
        let env = [series("temperature", vec![tv(20, 22.0), tv(0, 24.0)])];
        let corrections = [correction("temperature", 0.2e-6, 23.0)];
        let readings = [
            tv(2, 10.000_010_2),  // 2 min from 24 °C: −0.2 µV
            tv(18, 10.000_009_8), // 2 min from 22 °C: +0.2 µV
            tv(45, 10.0),         // 25 min from the last: flagged
        ];
        let out = apply_corrections(&readings, &env, &corrections, 10.0).unwrap();
        assert_eq!(out.flagged, 1);
        let c0 = out.rows[0].corrected.unwrap();
        let c1 = out.rows[1].corrected.unwrap();
        assert!((c0 - 10.000_010).abs() < 1e-12, "{c0}");
        assert!((c1 - 10.000_010).abs() < 1e-12, "{c1}");
        assert_eq!(out.rows[0].env[0].unwrap().utc_us, 0);
        assert!((out.rows[0].env[0].unwrap().correction - 0.2e-6).abs() < 1e-18);
        assert!(out.rows[2].flagged());
        assert_eq!(out.rows[2].raw, 10.0);
        assert_eq!(out.rows[2].env, vec![None]);
        // |24 − 23| and |22 − 23| over the two corrected readings.
        assert_eq!(out.mean_abs_deviation, vec![1.0]);
    }

    #[test]
    fn a_relative_coefficient_scales_with_the_nominal_value() {
        let env = [series("pressure", vec![tv(0, 1003.25)])];
        let mut c = correction("pressure", 1.81e-9, 1013.25);
        c.relative = true;
        let out = apply_corrections(&[tv(0, 10.0)], &env, &[c], 10.0).unwrap();
        // 10 V · 1.81e-9/hPa · (−10 hPa) = −181 nV, subtracted.
        let got = out.rows[0].corrected.unwrap();
        assert!((got - (10.0 + 181e-9)).abs() < 1e-14, "{got}");
    }

    #[test]
    fn missing_or_bad_environment_is_a_typed_error() {
        let corrections = [correction("temperature", 0.2e-6, 23.0)];
        let r = [tv(0, 10.0)];
        let no_env = AnalysisError::NoEnvironment {
            quantity: "temperature".into(),
            instrument: "env".into(),
        };
        assert_eq!(
            apply_corrections(&r, &[], &corrections, 10.0),
            Err(no_env.clone())
        );
        let empty = [series("temperature", vec![])];
        assert_eq!(
            apply_corrections(&r, &empty, &corrections, 10.0),
            Err(no_env)
        );
        let nan = [series("temperature", vec![tv(0, 23.0), tv(1, f64::NAN)])];
        assert!(matches!(
            apply_corrections(&r, &nan, &corrections, 10.0),
            Err(AnalysisError::NonFiniteEnvironment { index: 1, .. })
        ));
        assert_eq!(
            apply_corrections(&[tv(0, f64::INFINITY)], &[], &[], 10.0),
            Err(AnalysisError::NonFiniteReading { index: 0 })
        );
    }

    proptest! {
        #[test]
        fn nearest_agrees_with_a_linear_scan(
            mut times in prop::collection::vec(-1000i64..1000, 0..30),
            at in -1200i64..1200,
            within in 0u64..300,
        ) {
            times.sort_unstable();
            let s: Vec<TimedValue> = times.iter().map(|&t| TimedValue { utc_us: t, value: t as f64 }).collect();
            let got = nearest(&s, at, Duration::from_micros(within));
            let best = s.iter().min_by_key(|r| r.utc_us.abs_diff(at));
            let want = best.filter(|r| r.utc_us.abs_diff(at) <= within);
            prop_assert_eq!(got.map(|r| r.utc_us.abs_diff(at)), want.map(|r| r.utc_us.abs_diff(at)));
        }
    }
}
