//! The uncertainty budget as a table (GUM §8, JJF 1059.1 §4): each component's stated value, the
//! divisor that makes it a standard uncertainty, its sensitivity coefficient, contribution and
//! degrees of freedom; then the combined standard uncertainty, Welch–Satterthwaite ν_eff, the
//! coverage factor for 95 % and the expanded uncertainty.

use super::AnalysisError;
use crate::stats::{
    Contribution, Distribution, combined_standard_uncertainty, coverage_factor_95, table_dof,
    welch_satterthwaite,
};

/// How the coverage factor was found, for the report's text (English): the rule of
/// [`crate::stats::table_dof`], stated where the reader of a result looks for it.
pub const COVERAGE_RULE_EN: &str = "The coverage factor k is Student's t for a two-sided coverage probability of 95 % with the effective degrees of freedom ν_eff (Welch–Satterthwaite) truncated to the next lower integer, as GUM G.4.1 and JJF 1059.1 prescribe.";

/// The same rule in Chinese.
pub const COVERAGE_RULE_ZH: &str = "包含因子 k 取 t 分布双侧 95 % 包含概率的分位数，自由度为按韦尔奇-萨特思韦特公式计算的有效自由度 ν_eff 向下取整（GUM G.4.1，JJF 1059.1）。";

/// How a component was evaluated (GUM 4.2, 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// By statistics of the readings.
    A,
    /// By other means: a certificate, a specification, a resolution, a coefficient.
    B,
}

/// One row of the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    /// Name in English.
    pub name: String,
    /// Name in Chinese.
    pub name_zh: String,
    /// Type A or B.
    pub kind: ComponentKind,
    /// The assumed distribution of a Type B component; `None` for Type A (its value is a
    /// standard deviation, its divisor √n).
    pub distribution: Option<Distribution>,
    /// The value as stated: an expanded uncertainty, a half-width, a standard deviation; in the
    /// input quantity's unit.
    pub value: f64,
    /// What `value` is divided by to give the standard uncertainty.
    pub divisor: f64,
    /// Standard uncertainty u_i = value / divisor, in the input quantity's unit.
    pub standard_uncertainty: f64,
    /// Sensitivity coefficient c_i: measurand unit per input unit.
    pub sensitivity: f64,
    /// |c_i|·u_i, in the measurand's unit.
    pub contribution: f64,
    /// Degrees of freedom ν_i (`f64::INFINITY` when exactly known).
    pub dof: f64,
    /// The component's share of the combined variance, (c_i u_i)² / u_c², between 0 and 1.
    pub share: f64,
    /// The unit of `value` and `standard_uncertainty` when it is not the measurand's: a
    /// correction's coefficient (`V/K`) or its sensor's reading (`°C`).
    pub unit: Option<String>,
}

impl BudgetRow {
    /// A row from its stated value and divisor; `share` is filled in by [`combine`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        name_zh: String,
        kind: ComponentKind,
        distribution: Option<Distribution>,
        value: f64,
        divisor: f64,
        sensitivity: f64,
        dof: f64,
    ) -> Self {
        let standard_uncertainty = value / divisor;
        Self {
            name,
            name_zh,
            kind,
            distribution,
            value,
            divisor,
            standard_uncertainty,
            sensitivity,
            contribution: (sensitivity * standard_uncertainty).abs(),
            dof,
            share: 0.0,
            unit: None,
        }
    }

    /// The same row with its input in `unit` rather than the measurand's.
    pub fn in_unit(mut self, unit: String) -> Self {
        self.unit = Some(unit);
        self
    }
}

/// The combined budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The components, in the order given, each with its share.
    pub rows: Vec<BudgetRow>,
    /// Combined standard uncertainty u_c = √Σ (c_i u_i)².
    pub combined: f64,
    /// Welch–Satterthwaite effective degrees of freedom, real (`f64::INFINITY` when every
    /// component has infinite ν).
    pub dof_eff: f64,
    /// The degrees of freedom k was looked up with: ν_eff truncated to an integer
    /// ([`crate::stats::table_dof`], GUM G.4.1).
    pub dof_table: f64,
    /// Coverage factor k = t_0.975(ν) for a coverage probability of about 95 %.
    pub k: f64,
    /// Expanded uncertainty U = k·u_c.
    pub expanded: f64,
}

/// Combines the rows: u_c, ν_eff, k for 95 % and U, with each row's share of the variance.
///
/// Fails when a row is not finite (a divisor of 0, an overflow) or every contribution is zero
/// (ν_eff is then 0/0: a result with no uncertainty at all is a mistake, not a measurement).
pub fn combine(mut rows: Vec<BudgetRow>) -> Result<Budget, AnalysisError> {
    if let Some(bad) = rows.iter().find(|r| {
        !(r.standard_uncertainty.is_finite() && r.contribution.is_finite()) || r.dof.is_nan()
    }) {
        return Err(AnalysisError::NonFiniteComponent {
            name: bad.name.clone(),
        });
    }
    let contributions: Vec<f64> = rows.iter().map(|r| r.contribution).collect();
    let combined = combined_standard_uncertainty(&contributions).map_err(AnalysisError::Budget)?;
    let dof_eff = welch_satterthwaite(
        &rows
            .iter()
            .map(|r| Contribution {
                value: r.contribution,
                dof: r.dof,
            })
            .collect::<Vec<_>>(),
    )
    .map_err(AnalysisError::Budget)?;
    let k = coverage_factor_95(dof_eff).map_err(AnalysisError::Budget)?;
    for r in &mut rows {
        r.share = (r.contribution / combined).powi(2);
    }
    Ok(Budget {
        rows,
        combined,
        dof_eff,
        dof_table: table_dof(dof_eff),
        k,
        expanded: k * combined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: f64, divisor: f64, sensitivity: f64, dof: f64) -> BudgetRow {
        BudgetRow::new(
            "x".into(),
            "x".into(),
            ComponentKind::B,
            Some(Distribution::Rectangular),
            value,
            divisor,
            sensitivity,
            dof,
        )
    }

    #[test]
    fn shares_add_up_to_one_and_k_follows_the_truncated_dof() {
        // Contributions 3 (ν = 4) and 4 (ν = 9): u_c = 5, ν_eff = 12.83 → ν = 12, k = 2.178813.
        let b = combine(vec![row(6.0, 2.0, 1.0, 4.0), row(2.0, 1.0, -2.0, 9.0)]).unwrap();
        assert_eq!(b.combined, 5.0);
        assert_eq!(b.rows[1].contribution, 4.0);
        assert!((b.rows[0].share - 9.0 / 25.0).abs() < 1e-15);
        assert!((b.rows.iter().map(|r| r.share).sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(b.dof_table, 12.0);
        assert!((b.k - 2.178_813).abs() < 5e-7);
        assert!((b.expanded - 5.0 * b.k).abs() < 1e-15);
    }

    #[test]
    fn an_empty_or_zero_or_broken_budget_is_an_error() {
        assert!(matches!(combine(vec![]), Err(AnalysisError::Budget(_))));
        assert!(matches!(
            combine(vec![row(0.0, 1.0, 1.0, 3.0)]),
            Err(AnalysisError::Budget(_))
        ));
        assert_eq!(
            combine(vec![row(1.0, 0.0, 1.0, 3.0)]),
            Err(AnalysisError::NonFiniteComponent { name: "x".into() })
        );
    }
}
