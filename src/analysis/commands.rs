//! `tsagent analyze`: summary, least-squares fit and Allan deviations of a [`Table`]'s columns.
//!
//! The result types are what `--json` prints, field for field (the issue fixes the names, so
//! other tools can rely on them); the text output is made from the same values. A statistic's
//! failure is turned into an error that names the file, the row and the column.

use serde::Serialize;

use super::table::{Table, TableError};
use crate::stats::{self, StatsError};

/// Why an analysis could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The input table.
    #[error(transparent)]
    Table(#[from] TableError),
    /// Fewer rows than the statistic needs.
    #[error("{origin}: {got} rows, too few for {what}: at least {needed} needed")]
    TooFewRows {
        /// The input.
        origin: String,
        /// What was asked (e.g. "a fit with 3 parameters").
        what: String,
        /// Rows needed.
        needed: usize,
        /// Rows there are.
        got: usize,
    },
    /// A regressor is constant or a combination of the intercept and the regressors before it.
    #[error(
        "{origin}: singular design: column `{column}` is constant or a linear combination of the intercept and the columns before it"
    )]
    Singular {
        /// The input.
        origin: String,
        /// The regressor's column.
        column: String,
    },
    /// A weight (a standard uncertainty) is zero or negative.
    #[error(
        "{origin}: {row}: column `{column}`: standard uncertainty {value} is not positive, so it cannot weigh a point"
    )]
    NonPositiveWeight {
        /// The input.
        origin: String,
        /// The row (line or reading).
        row: String,
        /// The weights' column.
        column: String,
        /// The value.
        value: f64,
    },
    /// An averaging factor of zero, or τ0 not positive and finite.
    #[error("{origin}: {what}")]
    BadParameter {
        /// The input.
        origin: String,
        /// What is wrong with it.
        what: String,
    },
    /// Any other failure of the statistic (overflow of the range of f64).
    #[error("{origin}: {what} cannot be computed")]
    Stats {
        /// The input.
        origin: String,
        /// What was asked.
        what: String,
        /// Why.
        #[source]
        source: StatsError,
    },
}

/// `analyze summary`: Type A statistics of one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryResult {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Experimental standard deviation s (n − 1).
    pub s: f64,
    /// Standard uncertainty of the mean, s/√n.
    pub u_mean: f64,
    /// Degrees of freedom, n − 1.
    pub dof: usize,
}

/// One coefficient of a fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coefficient {
    /// `intercept`, or the regressor's column name.
    pub name: String,
    /// The estimate.
    pub value: f64,
    /// Its standard uncertainty.
    pub u: f64,
}

/// The fitted value at a point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitPrediction {
    /// One value per regressor, in the order of `--x`.
    pub x: Vec<f64>,
    /// The fitted value.
    pub y: f64,
    /// Standard uncertainty of the fitted value (the line's, not a new observation's).
    pub u: f64,
}

/// `analyze fit`: least squares with an intercept (see [`stats::least_squares`] for the
/// convention: ordinary fits scale the covariance by s², weighted ones do not and report the
/// Birge ratio as `s_residual`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitResult {
    /// Intercept first, then each regressor.
    pub coefficients: Vec<Coefficient>,
    /// Covariance matrix in the order of `coefficients`.
    pub covariance: Vec<Vec<f64>>,
    /// Residual standard deviation (ordinary) or Birge ratio (weighted).
    pub s_residual: f64,
    /// Degrees of freedom n − p.
    pub dof: usize,
    /// At the points asked for.
    pub predictions: Vec<FitPrediction>,
    /// χ² of a weighted fit (text output only: `--json` has exactly the fields).
    #[serde(skip)]
    pub chi_squared: Option<f64>,
    /// Number of points (text output only).
    #[serde(skip)]
    pub n: usize,
}

/// One averaging time of `analyze allan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllanResultPoint {
    /// Averaging factor.
    pub m: usize,
    /// τ = m·τ0.
    pub tau: f64,
    /// Non-overlapping Allan deviation.
    pub adev: f64,
    /// Overlapping Allan deviation.
    pub oadev: f64,
    /// Modified Allan deviation; `null` where it needs more data (3m > N + 1).
    pub mdev: Option<f64>,
    /// Number of terms of the overlapping estimate, N + 1 − 2m: what its error bar is made from.
    pub n: usize,
}

/// `analyze allan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllanResult {
    /// One per averaging factor, in increasing m.
    pub points: Vec<AllanResultPoint>,
}

/// Summary of `column`.
pub fn summary(table: &Table, column: &str) -> Result<SummaryResult, AnalyzeError> {
    let values = table.column(column)?;
    let s = stats::summary(values)
        .map_err(|e| stats_error(table, &format!("the summary of `{column}`"), e))?;
    Ok(SummaryResult {
        n: s.n,
        mean: s.mean,
        s: s.std_dev,
        u_mean: s.std_dev_of_mean,
        dof: s.dof,
    })
}

/// Least squares of column `y` on columns `x` (with an intercept), weighted by the standard
/// uncertainties in column `weights` if given, with the fitted value at each of `predict`.
pub fn fit(
    table: &Table,
    y: &str,
    x: &[String],
    weights: Option<&str>,
    predict: &[Vec<f64>],
) -> Result<FitResult, AnalyzeError> {
    let yv = table.column(y)?;
    let xv: Vec<&[f64]> = x
        .iter()
        .map(|c| table.column(c))
        .collect::<Result<_, _>>()?;
    let u = weights.map(|w| table.column(w)).transpose()?;
    let what = format!("a fit with {} parameters", x.len() + 1);
    let fit = stats::least_squares(yv, &xv, u).map_err(|e| match e {
        StatsError::Singular { regressor } => AnalyzeError::Singular {
            origin: table.origin().to_owned(),
            column: x.get(regressor).cloned().unwrap_or_default(),
        },
        StatsError::NonPositiveUncertainty { index, value } => AnalyzeError::NonPositiveWeight {
            origin: table.origin().to_owned(),
            row: table.row(index).to_string(),
            column: weights.unwrap_or_default().to_owned(),
            value,
        },
        e => stats_error(table, &what, e),
    })?;
    let mut predictions = Vec::with_capacity(predict.len());
    for point in predict {
        if point.len() != x.len() {
            return Err(AnalyzeError::BadParameter {
                origin: table.origin().to_owned(),
                what: format!(
                    "a prediction point needs {} values (one per --x), got {}",
                    x.len(),
                    point.len()
                ),
            });
        }
        let p = fit
            .predict(point)
            .map_err(|e| stats_error(table, "the prediction", e))?;
        predictions.push(FitPrediction {
            x: point.clone(),
            y: p.value,
            u: p.u,
        });
    }
    let u = fit.uncertainties();
    let names = std::iter::once("intercept".to_owned()).chain(x.iter().cloned());
    Ok(FitResult {
        coefficients: names
            .zip(fit.coefficients.iter().zip(&u))
            .map(|(name, (value, u))| Coefficient {
                name,
                value: *value,
                u: *u,
            })
            .collect(),
        covariance: fit.covariance.clone(),
        s_residual: fit.s_residual,
        dof: fit.dof,
        predictions,
        chi_squared: fit.chi_squared,
        n: fit.n,
    })
}

/// ADEV, OADEV and MDEV of column `column` (fractional frequency, or any equally spaced series)
/// sampled every `tau0`, at the averaging factors `m`, or at octaves 1, 2, 4, … while ADEV is
/// defined.
pub fn allan(
    table: &Table,
    column: &str,
    tau0: f64,
    m: Option<&[usize]>,
) -> Result<AllanResult, AnalyzeError> {
    let y = table.column(column)?;
    let n = y.len();
    let what = format!("the Allan deviations of `{column}`");
    let err = |e| stats_error(table, &what, e);
    let points = match m {
        None => stats::allan_table(y, tau0)
            .map_err(err)?
            .into_iter()
            .map(|r| AllanResultPoint {
                m: r.m,
                tau: r.tau,
                adev: r.adev,
                oadev: r.oadev,
                mdev: r.mdev,
                n: n + 1 - 2 * r.m,
            })
            .collect(),
        Some(ms) => {
            let mut ms = ms.to_vec();
            ms.sort_unstable();
            ms.dedup();
            let mut points = Vec::with_capacity(ms.len());
            for m in ms {
                let adev = stats::adev(y, tau0, m).map_err(|e| at_m(table, column, m, e))?;
                let oadev = stats::oadev(y, tau0, m).map_err(|e| at_m(table, column, m, e))?;
                let mdev = match stats::mdev(y, tau0, m) {
                    Ok(p) => Some(p.deviation),
                    Err(StatsError::TooFewPoints { .. }) => None,
                    Err(e) => return Err(at_m(table, column, m, e)),
                };
                points.push(AllanResultPoint {
                    m,
                    tau: adev.tau,
                    adev: adev.deviation,
                    oadev: oadev.deviation,
                    mdev,
                    n: oadev.terms,
                });
            }
            points
        }
    };
    Ok(AllanResult { points })
}

fn at_m(table: &Table, column: &str, m: usize, e: StatsError) -> AnalyzeError {
    stats_error(
        table,
        &format!("the Allan deviations of `{column}` at m = {m}"),
        e,
    )
}

/// A statistic's error, said of the table.
fn stats_error(table: &Table, what: &str, e: StatsError) -> AnalyzeError {
    let origin = table.origin().to_owned();
    match e {
        StatsError::TooFewPoints { needed, got } => AnalyzeError::TooFewRows {
            origin,
            what: what.to_owned(),
            needed,
            got,
        },
        StatsError::ZeroAveragingFactor => AnalyzeError::BadParameter {
            origin,
            what: "the averaging factor m must be at least 1".to_owned(),
        },
        StatsError::InvalidSpacing { tau0 } => AnalyzeError::BadParameter {
            origin,
            what: format!("tau0 must be finite and positive, got {tau0}"),
        },
        source => AnalyzeError::Stats {
            origin,
            what: what.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str, wanted: &[&str]) -> Table {
        Table::parse_csv("t.csv", text.as_bytes(), wanted).unwrap()
    }

    #[test]
    fn fit_errors_name_the_file_row_and_column() {
        let t = table(
            "y,a,b,u\n1,1,1,1\n2,2,2,0\n4,3,3,1\n3,4,4,1\n",
            &["y", "a", "b", "u"],
        );
        let x = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            fit(&t, "y", &x(&["a", "b"]), None, &[])
                .unwrap_err()
                .to_string(),
            "t.csv: singular design: column `b` is constant or a linear combination of the intercept and the columns before it"
        );
        assert_eq!(
            fit(&t, "y", &x(&["a"]), Some("u"), &[])
                .unwrap_err()
                .to_string(),
            "t.csv: line 3: column `u`: standard uncertainty 0 is not positive, so it cannot weigh a point"
        );
        let short = table("y,a,b\n1,1,0\n2,2,5\n3,4,1\n", &["y", "a", "b"]);
        assert_eq!(
            fit(&short, "y", &x(&["a", "b"]), None, &[])
                .unwrap_err()
                .to_string(),
            "t.csv: 3 rows, too few for a fit with 3 parameters: at least 4 needed"
        );
        assert!(matches!(
            fit(&t, "y", &x(&["a"]), None, &[vec![1.0, 2.0]]),
            Err(AnalyzeError::BadParameter { .. })
        ));
    }

    #[test]
    fn allan_at_chosen_m_and_octaves_agree() {
        let y: Vec<f64> = (0..64).map(|i| ((i * 37) % 11) as f64).collect();
        let text = super::super::table::write_csv(&[("y", &y)]);
        let t = table(&text, &["y"]);
        let octaves = allan(&t, "y", 2.0, None).unwrap();
        let chosen = allan(&t, "y", 2.0, Some(&[4, 1, 2, 4])).unwrap();
        assert_eq!(chosen.points.len(), 3);
        assert_eq!(chosen.points, octaves.points[..3]);
        assert_eq!(octaves.points[0].n, 63);
        assert_eq!(octaves.points.last().unwrap().m, 32);
        assert_eq!(octaves.points.last().unwrap().mdev, None);
        assert!(matches!(
            allan(&t, "y", 1.0, Some(&[0])),
            Err(AnalyzeError::BadParameter { .. })
        ));
        assert!(matches!(
            allan(&t, "y", 1.0, Some(&[33])),
            Err(AnalyzeError::TooFewRows { needed: 66, .. })
        ));
    }
}
