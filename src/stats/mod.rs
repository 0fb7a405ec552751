//! Statistics of monitoring series: Type A summary, linear drift fits and Allan deviations.
//!
//! Formulas follow `statistics.md` §2.1 (GUM Type A), §2.2 (OLS and weighted drift fits with the value
//! predicted at a date) and §2.4 (NIST SP 1065 Allan deviations). The module is pure computation on
//! `&[f64]`: it knows nothing about readings, the store or instruments, so the pilot-side tools can use
//! it unchanged.
//!
//! **Numerical invariant:** every statistic is computed on offsets from a reference value taken from
//! the data, with a two-pass (corrected) mean, never with the one-pass `Σx² − (Σx)²/n` formula. A 10 V
//! Zener read to nV, or times given as Unix seconds, keep their significant digits; NIST StRD NumAcc4
//! (values ≈ 1e7, spread 0.1) is reproduced to the precision its binary inputs allow.
//!
//! **Error invariant:** no function panics or returns NaN. Input is validated first (length, finiteness,
//! positivity); a result that leaves the range of `f64` is reported as [`StatsError::Overflow`].

mod allan;
mod error;
mod fit;
mod lsq;
mod summary;
mod uncertainty;

pub use allan::{AllanPoint, AllanRow, adev, allan_table, mdev, oadev};
pub use error::StatsError;
pub use fit::{LinearFit, Prediction, WeightedFit, ols, wls};
pub use lsq::{MultiFit, least_squares};
pub use summary::{Summary, mean, summary};
pub use uncertainty::{
    Contribution, Distribution, UncertaintyError, combined_standard_uncertainty,
    coverage_factor_95, student_t_quantile, table_dof, welch_satterthwaite,
};

/// Fails with [`StatsError::NonFinite`] at the first NaN or infinity in `values`.
fn check_finite(input: &'static str, values: &[f64]) -> Result<(), StatsError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StatsError::NonFinite { input, index }),
        None => Ok(()),
    }
}

/// Fails with [`StatsError::TooFewPoints`] when fewer than `needed` values are given.
fn check_count(needed: usize, got: usize) -> Result<(), StatsError> {
    if got < needed {
        return Err(StatsError::TooFewPoints { needed, got });
    }
    Ok(())
}

/// Fails with [`StatsError::LengthMismatch`] unless both series have the same length.
fn check_same_len(
    first: (&'static str, &[f64]),
    second: (&'static str, &[f64]),
) -> Result<(), StatsError> {
    if first.1.len() != second.1.len() {
        return Err(StatsError::LengthMismatch {
            first: first.0,
            first_len: first.1.len(),
            second: second.0,
            second_len: second.1.len(),
        });
    }
    Ok(())
}

/// Fails with [`StatsError::Overflow`] naming `quantity` unless `value` is finite.
fn finite(quantity: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(StatsError::Overflow { quantity })
    }
}

/// A series split into its mean and the deviations from that mean.
struct Centred {
    /// The (weighted) mean, `reference + offset`.
    mean: f64,
    /// `values[i] − mean`, computed as `(values[i] − reference) − offset` so no digits are lost to a
    /// large common value.
    dev: Vec<f64>,
}

/// Centres `values` (weights `weights`, or all 1) on their mean.
///
/// The first value is the reference: subtracting it is exact for values within a factor of two of
/// each other (Sterbenz), so a large common part (10 V, 1e7, Unix seconds) is removed before anything
/// is summed. The mean of the offsets gets one correction pass, the second half of the corrected
/// two-pass algorithm (Chan, Golub & LeVeque 1983).
fn centre(values: &[f64], weights: Option<&[f64]>) -> Centred {
    let reference = values.first().copied().unwrap_or(0.0);
    let offsets: Vec<f64> = values.iter().map(|v| v - reference).collect();
    let weighted_mean = |xs: &[f64]| -> f64 {
        match weights {
            Some(w) => {
                let total: f64 = w.iter().sum();
                xs.iter().zip(w).map(|(x, w)| w * x).sum::<f64>() / total
            }
            None => xs.iter().sum::<f64>() / xs.len() as f64,
        }
    };
    let first_pass = weighted_mean(&offsets);
    let residual: Vec<f64> = offsets.iter().map(|d| d - first_pass).collect();
    let offset = first_pass + weighted_mean(&residual);
    Centred {
        mean: reference + offset,
        dev: offsets.iter().map(|d| d - offset).collect(),
    }
}

#[cfg(test)]
mod vectors {
    //! Access to the certified values in `tests/data/stats-vectors.json`.

    use serde_json::Value;

    /// The parsed vectors file.
    pub fn load() -> Value {
        serde_json::from_str(include_str!("../../tests/data/stats-vectors.json")).unwrap()
    }

    /// The number at `pointer` (JSON pointer), whether stored as a number or as printed digits.
    pub fn number(v: &Value, pointer: &str) -> f64 {
        match v.pointer(pointer) {
            Some(Value::String(s)) => s.parse().unwrap(),
            Some(Value::Number(n)) => n.as_f64().unwrap(),
            other => panic!("no number at {pointer}: {other:?}"),
        }
    }

    /// The array of numbers at `pointer`.
    pub fn numbers(v: &Value, pointer: &str) -> Vec<f64> {
        v.pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no array at {pointer}"))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    /// Asserts `|got − want| ≤ rel·|want|`, naming the quantity.
    #[track_caller]
    pub fn assert_rel(what: &str, got: f64, want: f64, rel: f64) {
        let err = ((got - want) / want).abs();
        assert!(
            err <= rel,
            "{what}: got {got:e}, want {want:e}, relative error {err:e} > {rel:e}"
        );
    }
}
