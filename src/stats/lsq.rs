//! Least squares with an intercept and any number of regressors, ordinary or weighted
//! (`statistics.md` §2.2 generalised): drift, temperature and pressure coefficients fitted together.
//!
//! **Method.** Never the normal equations: their condition number is the square of the design's, and
//! NIST StRD Wampler and Longley lose every digit through them. Each column (y and every regressor)
//! is centred on its (weighted) mean by the corrected two-pass mean, the regressors are scaled to
//! a norm in (½, 1] by a power of two (exactly, so the scaling costs no digits), and the rows are
//! folded 128 at a time into the triangular factor R of a QR factorisation by Householder
//! reflections. Memory is O(p²) whatever n (the P8 memory target), the intercept column is
//! orthogonal to the centred ones (so it costs no digits), and one step of iterative refinement
//! by the corrected semi-normal equations (Björck 1987) recovers the digits that rounding in the
//! factorisation takes from ill-conditioned designs. The data are read in four passes: two for
//! the means and norms of all columns together, one for the factorisation, one for the
//! refinement and the residuals.
//!
//! **Convention for the covariance** (it matters to anyone combining the result):
//! - ordinary (no uncertainties given): the scatter is unknown and estimated, so
//!   `cov = s² (XᵀX)⁻¹` with `s² = Σ r² / (n − p)`, and `s_residual = s`;
//! - weighted (standard uncertainties u_i given, w_i = 1/u_i²): the uncertainties are taken as
//!   stated, so `cov = (XᵀWX)⁻¹`, *not* scaled by the scatter; `χ² = Σ (r_i/u_i)²` and the Birge
//!   ratio `R_B = √(χ²/(n − p))` say whether the scatter agrees with them, and `s_residual = R_B`.
//!   Inflate by R_B (or investigate) when R_B ≫ 1; that is the caller's decision, not the fit's.

// Matrix code indexes rows and columns as the formulas do; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::{Prediction, StatsError, check_count, check_finite, finite};

/// A least-squares fit of y = β₀ + Σ β_j x_j.
///
/// Coefficients and covariance are in the order intercept first, then the regressors in the order
/// given. See the module documentation for how the covariance is scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiFit {
    /// Number of points.
    pub n: usize,
    /// β: the intercept, then one coefficient per regressor.
    pub coefficients: Vec<f64>,
    /// Covariance matrix of β, p × p, rows in the order of `coefficients`.
    pub covariance: Vec<Vec<f64>>,
    /// Ordinary fit: the residual standard deviation s. Weighted: the Birge ratio √(χ²/ν).
    pub s_residual: f64,
    /// Degrees of freedom ν = n − p.
    pub dof: usize,
    /// Weighted fit only: χ² = Σ (r_i/u_i)².
    pub chi_squared: Option<f64>,
    /// Weighted fit only, with ν > 0: R_B = √(χ²/ν).
    pub birge_ratio: Option<f64>,
    /// The model in the centred and scaled basis, kept for predictions.
    basis: Basis,
}

/// The fit in the basis it was computed in: ŷ = ȳ + Σ γ_j g_j(x), g₀ = 1/s₀, g_j = (x_j − m_j)/s_j.
#[derive(Debug, Clone, PartialEq)]
struct Basis {
    y_mean: f64,
    means: Vec<f64>,
    scales: Vec<f64>,
    gamma: Vec<f64>,
    /// R⁻¹, upper triangular, row-major p × p.
    r_inv: Vec<f64>,
    /// cov(γ) = sigma² R⁻¹R⁻ᵀ.
    sigma: f64,
}

impl MultiFit {
    /// Number of parameters p (the intercept and the regressors).
    pub fn parameters(&self) -> usize {
        self.coefficients.len()
    }

    /// Standard uncertainty of each coefficient, √cov_jj, in the order of `coefficients`.
    pub fn uncertainties(&self) -> Vec<f64> {
        (0..self.parameters())
            .map(|j| self.covariance[j][j].max(0.0).sqrt())
            .collect()
    }

    /// The fitted value at `x` (one value per regressor) with the standard uncertainty of the
    /// fitted *line* there, u² = gᵀ cov g: a new single reading at `x` would add the scatter on top.
    ///
    /// Computed in the centred basis, so a point near the data's means keeps its digits when the
    /// intercept (the value at x = 0, perhaps decades of Unix seconds away) does not.
    pub fn predict(&self, x: &[f64]) -> Result<Prediction, StatsError> {
        let b = &self.basis;
        let k = b.means.len();
        if x.len() != k {
            return Err(StatsError::LengthMismatch {
                first: "regressors",
                first_len: k,
                second: "prediction point",
                second_len: x.len(),
            });
        }
        check_finite("prediction point", x)?;
        let p = k + 1;
        let mut g = Vec::with_capacity(p);
        g.push(1.0 / b.scales[0]);
        for j in 0..k {
            g.push((x[j] - b.means[j]) / b.scales[j + 1]);
        }
        let value = b.y_mean + g.iter().zip(&b.gamma).map(|(g, c)| g * c).sum::<f64>();
        // ‖R⁻ᵀ g‖: column j of R⁻¹ dotted with g.
        let mut sq = 0.0;
        for j in 0..p {
            let v: f64 = (0..=j).map(|i| b.r_inv[i * p + j] * g[i]).sum();
            sq += v * v;
        }
        Ok(Prediction {
            value: finite("predicted value", value)?,
            u: finite("u(predicted value)", b.sigma * sq.sqrt())?,
        })
    }
}

/// Fits y = β₀ + Σ β_j x_j by least squares, with `u` the standard uncertainties of y for a
/// weighted fit or `None` for an ordinary one.
///
/// Needs n ≥ p + 1 points for an ordinary fit (with n = p the scatter is 0/0) and n ≥ p for a
/// weighted one, p = 1 + the number of regressors. Fails with [`StatsError::Singular`] when a
/// regressor is constant or a linear combination of the others (two identical columns): its
/// part of the design, after the earlier columns are taken out, is below rounding level.
pub fn least_squares(
    y: &[f64],
    regressors: &[&[f64]],
    u: Option<&[f64]>,
) -> Result<MultiFit, StatsError> {
    let n = y.len();
    let k = regressors.len();
    let p = k + 1;
    for x in regressors {
        check_len(("y", y), ("x", x))?;
    }
    if let Some(u) = u {
        check_len(("y", y), ("u", u))?;
    }
    check_count(if u.is_some() { p } else { p + 1 }, n)?;
    check_finite("y", y)?;
    for x in regressors {
        check_finite("x", x)?;
    }
    // Row weights q_i = u_min/u_i ∈ (0, 1]: weights (q_i²) of order 1 whatever the unit of u,
    // so neither 1/u² nor its sums overflow; u_min comes back in the covariance.
    let u_min = match u {
        Some(u) => {
            check_finite("u", u)?;
            if let Some((index, &value)) = u.iter().enumerate().find(|(_, v)| **v <= 0.0) {
                return Err(StatsError::NonPositiveUncertainty { index, value });
            }
            u.iter().copied().fold(f64::INFINITY, f64::min)
        }
        None => 1.0,
    };
    let q = |i: usize| -> f64 { u.map_or(1.0, |u| u_min / u[i]) };

    // The unweighted total is n exactly (a sum of ones); only weights need the sum.
    let total_weight = match u {
        Some(_) => finite("sum of weights", neumaier((0..n).map(|i| q(i) * q(i))))?,
        None => n as f64,
    };
    // y, then the regressors: the means of all of them are taken in the same passes over the
    // rows (P8: each pass over a million rows costs milliseconds, and one chain of compensated
    // sums per column keeps the processor busy where one column alone would wait on each add).
    let cols: Vec<&[f64]> = std::iter::once(y)
        .chain(regressors.iter().copied())
        .collect();
    let reference: Vec<f64> = cols
        .iter()
        .map(|c| c.first().copied().unwrap_or(0.0))
        .collect();
    let mut sums = vec![Neumaier::default(); cols.len()];
    for i in 0..n {
        let w = q(i) * q(i);
        for (c, col) in cols.iter().enumerate() {
            sums[c].add(w * (col[i] - reference[c]));
        }
    }
    let first: Vec<f64> = sums.iter().map(|s| s.total() / total_weight).collect();
    // The corrected two-pass mean (the second pass takes out what rounding left in the first),
    // and in the same pass the regressors' norms about the first-pass mean, corrected to the
    // final one: Σq²(x − m)² = Σq²d² − W c², with d the offset from the first-pass mean and c
    // the correction. The norms only scale the columns, so their last digits do not matter.
    let mut corrections = vec![Neumaier::default(); cols.len()];
    let mut squares = vec![Neumaier::default(); cols.len()];
    for i in 0..n {
        let qi = q(i);
        for (c, col) in cols.iter().enumerate() {
            let d = (col[i] - reference[c]) - first[c];
            corrections[c].add(qi * qi * d);
            squares[c].add((qi * d) * (qi * d));
        }
    }
    let mut means = Vec::with_capacity(p);
    let mut scales = Vec::with_capacity(p);
    scales.push(power_of_two_above(total_weight.sqrt()));
    for c in 0..cols.len() {
        let correction = corrections[c].total() / total_weight;
        means.push(finite("mean", reference[c] + (first[c] + correction))?);
        if c > 0 {
            let norm_sq = finite(
                "regressor norm",
                squares[c].total() - total_weight * correction * correction,
            )?;
            let norm = norm_sq.max(0.0).sqrt();
            if norm == 0.0 {
                return Err(StatsError::Singular { regressor: c - 1 });
            }
            scales.push(power_of_two_above(norm));
        }
    }
    let y_mean = means.remove(0);

    // The scales are powers of two, so dividing by them (multiplying by their inverses) is
    // exact: the design is the centred data to the last bit, and a million rows cost no division.
    let inverse: Vec<f64> = scales.iter().map(|s| 1.0 / s).collect();
    // Row i of the weighted, centred, scaled design and its right-hand side.
    let row = |i: usize, a: &mut [f64]| -> f64 {
        let qi = q(i);
        a[0] = qi * inverse[0];
        for j in 0..k {
            a[j + 1] = qi * (regressors[j][i] - means[j]) * inverse[j + 1];
        }
        qi * (y[i] - y_mean)
    };

    // The rows are folded into R a block at a time by Householder reflections: as stable as
    // rotating them in one by one, but a block costs one square root and one division per
    // column instead of one of each per row and column, which left each row waiting on the
    // one before (P8).
    let mut r = vec![0.0; p * p];
    let mut qty = vec![0.0; p];
    let mut block = vec![0.0; BLOCK * p];
    let mut rhs = vec![0.0; BLOCK];
    let mut from = 0;
    while from < n {
        let rows = BLOCK.min(n - from);
        for (i, (a, b)) in block
            .chunks_exact_mut(p)
            .zip(&mut rhs)
            .take(rows)
            .enumerate()
        {
            *b = row(from + i, a);
        }
        fold_block(
            &mut r,
            &mut qty,
            &mut block[..rows * p],
            &mut rhs[..rows],
            p,
        )?;
        from += rows;
    }
    let mut a = vec![0.0; p];
    let (r, qty) = (&*r, &*qty);
    // Columns have norms in (½, 1], so R_jj is at most the distance of column j from the span of
    // the earlier ones: the sine of the smallest angle. Below a few rounding units per row, it
    // is noise.
    let tol = 64.0 * f64::EPSILON * (n as f64).sqrt();
    for j in 1..p {
        let d = r[j * p + j];
        if d.is_nan() || d <= tol {
            return Err(StatsError::Singular { regressor: j - 1 });
        }
    }

    let mut gamma = back_substitute(r, p, qty);
    // One step of refinement: γ += δ, δ = (RᵀR)⁻¹ Aᵀe with e = b − Aγ computed from the data.
    // The same pass sums e²: the refined residual is e − Aδ, and with AᵀA = RᵀR and Rδ = z,
    // ‖e − Aδ‖² = ‖e‖² − 2δᵀAᵀe + ‖Rδ‖² = ‖e‖² − ‖z‖², so no third pass is needed.
    let mut g = vec![0.0; p];
    let mut squares = Neumaier::default();
    for i in 0..n {
        let b = row(i, &mut a);
        let e = b - dot(&a, &gamma);
        for j in 0..p {
            g[j] += a[j] * e;
        }
        squares.add(e * e);
    }
    let z = forward_substitute_transposed(r, p, &g);
    let delta = back_substitute(r, p, &z);
    for (c, d) in gamma.iter_mut().zip(&delta) {
        *c += d;
    }
    let rss = finite(
        "residual sum of squares",
        (squares.total() - z.iter().map(|z| z * z).sum::<f64>()).max(0.0),
    )?;

    let dof = n - p;
    let (sigma, s_residual, chi_squared, birge_ratio) = match u {
        None => {
            let s = (rss / dof as f64).sqrt();
            (s, s, None, None)
        }
        Some(_) => {
            let chi2 = finite("chi-squared", rss / (u_min * u_min))?;
            let birge = (dof > 0).then(|| (chi2 / dof as f64).sqrt());
            (u_min, birge.unwrap_or(0.0), Some(chi2), birge)
        }
    };

    let r_inv = invert_upper(r, p);
    // β = c + T γ: β_j = γ_j/s_j, β₀ = ȳ + γ₀/s₀ − Σ β_j m_j. M = T R⁻¹ gives cov(β) = σ² M Mᵀ.
    let mut coefficients = vec![0.0; p];
    for j in 1..p {
        coefficients[j] = gamma[j] / scales[j];
    }
    coefficients[0] =
        y_mean + gamma[0] / scales[0] - (1..p).map(|j| coefficients[j] * means[j - 1]).sum::<f64>();
    let mut t = vec![0.0; p * p];
    t[0] = 1.0 / scales[0];
    for j in 1..p {
        t[j] = -means[j - 1] / scales[j];
        t[j * p + j] = 1.0 / scales[j];
    }
    let mut m = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            m[i * p + j] = (0..=j).map(|l| t[i * p + l] * r_inv[l * p + j]).sum();
        }
    }
    let mut covariance = vec![vec![0.0; p]; p];
    for i in 0..p {
        for j in 0..p {
            let c: f64 = (0..p).map(|l| m[i * p + l] * m[j * p + l]).sum();
            covariance[i][j] = finite("covariance", sigma * sigma * c)?;
        }
    }
    for c in &coefficients {
        finite("coefficient", *c)?;
    }
    Ok(MultiFit {
        n,
        coefficients,
        covariance,
        s_residual: finite("residual standard deviation", s_residual)?,
        dof,
        chi_squared,
        birge_ratio,
        basis: Basis {
            y_mean,
            means,
            scales,
            gamma,
            r_inv,
            sigma,
        },
    })
}

/// Fails with [`StatsError::LengthMismatch`] unless both series have the same length.
fn check_len(
    first: (&'static str, &[f64]),
    second: (&'static str, &[f64]),
) -> Result<(), StatsError> {
    super::check_same_len(first, second)
}

/// Σ of `terms` with Neumaier's compensation: the error does not grow with n, which matters at
/// 10⁶ points.
fn neumaier(terms: impl Iterator<Item = f64>) -> f64 {
    let mut sum = Neumaier::default();
    for t in terms {
        sum.add(t);
    }
    sum.total()
}

/// A running sum with Neumaier's compensation, for sums taken several at a time in one pass.
#[derive(Debug, Clone, Copy, Default)]
struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    fn add(&mut self, t: f64) {
        let s = self.sum + t;
        if self.sum.abs() >= t.abs() {
            self.comp += (self.sum - s) + t;
        } else {
            self.comp += (t - s) + self.sum;
        }
        self.sum = s;
    }

    fn total(self) -> f64 {
        self.sum + self.comp
    }
}

/// Rows of the design folded into R at a time.
const BLOCK: usize = 128;

/// Folds the rows of `block` (row-major, p columns, overwritten) with right-hand sides `rhs`
/// (overwritten) into the upper triangular `r` (row-major p × p, non-negative diagonal, kept
/// so) and `qty` (Qᵀb): the QR factorisation of R stacked on the block, by one Householder
/// reflection per column that zeroes the block's part of it (Golub & Van Loan §5.2, on the
/// structure of [R; A]).
fn fold_block(
    r: &mut [f64],
    qty: &mut [f64],
    block: &mut [f64],
    rhs: &mut [f64],
    p: usize,
) -> Result<(), StatsError> {
    let mut dots = vec![0.0; p];
    for j in 0..p {
        // The reflection's vector is (v₀, block[.., j]); one pass finds its norm and its dot
        // products with the columns to its right and with the right-hand side.
        dots.iter_mut().for_each(|d| *d = 0.0);
        let mut dot_b = 0.0;
        for (a, b) in block.chunks_exact(p).zip(rhs.iter()) {
            let aj = a[j];
            for l in j..p {
                dots[l] += aj * a[l];
            }
            dot_b += aj * b;
        }
        let sigma = dots[j];
        if sigma == 0.0 {
            continue;
        }
        let x0 = r[j * p + j];
        // Entries are at most 1 in magnitude, so σ cannot overflow.
        let norm = (x0 * x0 + sigma).sqrt();
        // v₀ = x₀ − ‖x‖ without cancellation when x₀ > 0 (Parlett), so that R_jj = ‖x‖ ≥ 0.
        let v0 = if x0 <= 0.0 {
            x0 - norm
        } else {
            -sigma / (x0 + norm)
        };
        let tau = 2.0 / (v0 * v0 + sigma);
        r[j * p + j] = norm;
        for l in j + 1..p {
            let w = tau * (v0 * r[j * p + l] + dots[l]);
            r[j * p + l] -= w * v0;
            for a in block.chunks_exact_mut(p) {
                a[l] -= w * a[j];
            }
        }
        let w = tau * (v0 * qty[j] + dot_b);
        qty[j] -= w * v0;
        for (a, b) in block.chunks_exact(p).zip(rhs.iter_mut()) {
            *b -= w * a[j];
        }
    }
    if qty.iter().chain(rhs.iter()).all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(StatsError::Overflow {
            quantity: "residual",
        })
    }
}

/// The smallest power of two at least `x` (x > 0 and finite), or 2¹⁰²³ above that.
fn power_of_two_above(x: f64) -> f64 {
    let bits = x.to_bits();
    let exponent = (bits >> 52) & 0x7ff;
    let power = match exponent {
        // Subnormal: 2⁻¹⁰²² is above it.
        0 => 1,
        // Exactly a power of two.
        e if bits & ((1 << 52) - 1) == 0 => e,
        e => (e + 1).min(2046),
    };
    f64::from_bits(power << 52)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Solves R x = b for upper triangular R (row-major p × p, non-zero diagonal).
fn back_substitute(r: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|j| r[i * p + j] * x[j]).sum();
        x[i] = (b[i] - s) / r[i * p + i];
    }
    x
}

/// Solves Rᵀ x = b for upper triangular R.
fn forward_substitute_transposed(r: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; p];
    for i in 0..p {
        let s: f64 = (0..i).map(|j| r[j * p + i] * x[j]).sum();
        x[i] = (b[i] - s) / r[i * p + i];
    }
    x
}

/// R⁻¹ of upper triangular R, column by column.
fn invert_upper(r: &[f64], p: usize) -> Vec<f64> {
    let mut inv = vec![0.0; p * p];
    for col in 0..p {
        let mut e = vec![0.0; p];
        e[col] = 1.0;
        let x = back_substitute(r, p, &e);
        for i in 0..p {
            inv[i * p + col] = x[i];
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::vectors::{assert_rel, load, number, numbers};
    use crate::stats::{ols, wls};
    use proptest::prelude::*;
    use serde_json::Value;

    fn strd() -> Value {
        serde_json::from_str(include_str!("../../tests/data/strd-lls.json")).unwrap()
    }

    /// x, x², …, x⁵ for x = 0..=20: the Wampler design (NIST StRD, defined by its generator).
    fn wampler_x() -> Vec<Vec<f64>> {
        (1..=5)
            .map(|k| (0..=20).map(|x| f64::from(x).powi(k)).collect())
            .collect()
    }

    fn refs(cols: &[Vec<f64>]) -> Vec<&[f64]> {
        cols.iter().map(Vec::as_slice).collect()
    }

    fn strings(v: &Value, pointer: &str) -> Vec<f64> {
        v.pointer(pointer)
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn norris_matches_certified_values_and_the_straight_line_fit() {
        let v = load();
        let x = numbers(&v, "/nist_strd_norris/x");
        let y = numbers(&v, "/nist_strd_norris/y");
        let c = |k: &str| number(&v, &format!("/nist_strd_norris/certified/{k}"));
        let fit = least_squares(&y, &[&x], None).unwrap();
        let u = fit.uncertainties();
        assert_rel("B0", fit.coefficients[0], c("B0"), 1e-12);
        assert_rel("B1", fit.coefficients[1], c("B1"), 1e-13);
        assert_rel("sd B0", u[0], c("sd_B0"), 1e-12);
        assert_rel("sd B1", u[1], c("sd_B1"), 1e-12);
        assert_rel("s", fit.s_residual, c("residual_sd"), 1e-12);
        assert_eq!(fit.dof, 34);
        // One piece agrees with the other: the straight-line fit and its prediction.
        let o = ols(&x, &y).unwrap();
        assert_rel("cov", fit.covariance[0][1], o.cov_intercept_slope, 1e-12);
        for t0 in [0.0, 500.0, 2000.0] {
            let p = fit.predict(&[t0]).unwrap();
            assert_rel("ŷ", p.value, o.predict(t0).value, 1e-13);
            assert_rel("u(ŷ)", p.u, o.predict(t0).u, 1e-12);
        }
    }

    /// Wampler1 and 2 are exact polynomials: the certified coefficients are exactly 1 (resp.
    /// 10⁻ʲ) and the residual standard deviation 0. Condition number of the design ≈ 5e13 (raw).
    #[test]
    fn wampler1_and_2_exact_polynomials() {
        let x = wampler_x();
        for (name, base) in [("Wampler1", 1.0), ("Wampler2", 0.1)] {
            let want: Vec<f64> = (0..6).map(|j| f64::powi(base, j)).collect();
            let y: Vec<f64> = (0..=20)
                .map(|x| {
                    let x = f64::from(x);
                    (0..6).map(|j| want[j as usize] * x.powi(j)).sum()
                })
                .collect();
            let fit = least_squares(&y, &refs(&x), None).unwrap();
            for (j, (got, want)) in fit.coefficients.iter().zip(&want).enumerate() {
                assert_rel(&format!("{name} B{j}"), *got, *want, 1e-8);
            }
            assert!(
                fit.s_residual < 1e-8 * y[20],
                "{name} s = {}",
                fit.s_residual
            );
        }
    }

    /// Wampler3–5 add ever larger noise to Wampler1, so the coefficients (certified 1) carry
    /// standard deviations up to 2e7. A double-precision solver gets the coefficients to
    /// cond(X)·ε of the data's scale, which is what the LRE floors below hold (measured with the
    /// blocked Householder QR: W3 exact, W4 ≥ 8.9, W5 ≥ 7.6; with Givens rotations they were 9.9,
    /// 8.1 and 6.6; R's `lm` gets 7.5–11.7 on W4), i.e. errors below 1e-12 of each
    /// coefficient's standard deviation; the uncertainties and s come to 13 digits or more.
    #[test]
    fn wampler3_to_5_match_certified_values() {
        let v = strd();
        let x = wampler_x();
        for (name, floor) in [("Wampler3", 9.5), ("Wampler4", 7.8), ("Wampler5", 6.3)] {
            let y = numbers(&v, &format!("/{name}/y"));
            let sd = strings(&v, &format!("/{name}/sd"));
            let fit = least_squares(&y, &refs(&x), None).unwrap();
            let u = fit.uncertainties();
            for j in 0..6 {
                let lre = -(fit.coefficients[j] - 1.0).abs().log10();
                assert!(lre >= floor, "{name} B{j}: LRE {lre:.1} < {floor}");
                assert!((fit.coefficients[j] - 1.0).abs() <= 1e-12 * sd[j]);
                assert_rel(&format!("{name} sd B{j}"), u[j], sd[j], 1e-12);
            }
            let s = number(&v, &format!("/{name}/residual_sd"));
            assert_rel(&format!("{name} s"), fit.s_residual, s, 1e-12);
            assert_eq!(fit.dof, 15);
        }
    }

    #[test]
    fn longley_matches_certified_values() {
        let v = strd();
        let y = numbers(&v, "/Longley/y");
        let x: Vec<Vec<f64>> = (0..6)
            .map(|j| numbers(&v, &format!("/Longley/x/{j}")))
            .collect();
        let b = strings(&v, "/Longley/b");
        let sd = strings(&v, "/Longley/sd");
        let fit = least_squares(&y, &refs(&x), None).unwrap();
        let u = fit.uncertainties();
        for j in 0..7 {
            assert_rel(&format!("B{j}"), fit.coefficients[j], b[j], 1e-11);
            assert_rel(&format!("sd B{j}"), u[j], sd[j], 1e-11);
        }
        assert_rel(
            "s",
            fit.s_residual,
            number(&v, "/Longley/residual_sd"),
            1e-12,
        );
        assert_eq!(fit.dof, 9);
    }

    /// tests/data/drift-synthetic.txt: a weighted drift fit, u(b) = 0.00017568 /day, and the
    /// predictions with their u at the participants' mean dates (printed to 6 decimals).
    #[test]
    fn drift_synthetic_weighted_fit_and_predictions() {
        let t = [0.0, 90.0, 180.0, 270.0, 360.0];
        let y = [1.20, 1.43, 1.61, 1.83, 2.02];
        let u = [0.05; 5];
        let fit = least_squares(&y, &[&t], Some(&u)).unwrap();
        let slope_u = fit.uncertainties()[1];
        assert!((fit.coefficients[1] - 0.00226667).abs() < 5e-9);
        assert!((slope_u - 0.00017568).abs() < 5e-9, "{slope_u}");
        assert!((fit.chi_squared.unwrap() - 0.20800).abs() < 5e-6);
        assert!((fit.birge_ratio.unwrap() - 0.2633).abs() < 5e-5);
        assert_eq!(fit.s_residual, fit.birge_ratio.unwrap());
        assert_eq!(fit.dof, 3);
        // Centred: ŷ(180) = 1.618 with u = 0.05/√5, uncorrelated with the slope.
        let mid = fit.predict(&[180.0]).unwrap();
        assert!((mid.value - 1.618).abs() < 5e-7 && (mid.u - 0.022361).abs() < 5e-7);
        for (t0, want, want_u) in [
            (45.0, 1.312000, 0.032596),
            (135.0, 1.516000, 0.023717),
            (225.0, 1.720000, 0.023717),
            (315.0, 1.924000, 0.032596),
        ] {
            let p = fit.predict(&[t0]).unwrap();
            assert!((p.value - want).abs() < 5e-7, "ŷ({t0}) = {}", p.value);
            assert!((p.u - want_u).abs() < 5e-7, "u(ŷ({t0})) = {}", p.u);
        }
        // Not scaled by the scatter: the same fit with R_B ≠ 1 keeps u(b) from the stated u.
        let w = wls(&t, &y, &u).unwrap();
        assert_rel("u(b) vs wls", slope_u, w.u_slope, 1e-12);
    }

    #[test]
    fn two_regressors_recover_a_plane_and_agree_with_an_oracle() {
        // y = 3 + 2 t − 0.5 T exactly, then with a known perturbation whose fit is computed by hand.
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let temp = [23.0, 23.5, 22.8, 23.1, 22.9, 23.4];
        let y: Vec<f64> = t
            .iter()
            .zip(&temp)
            .map(|(t, c)| 3.0 + 2.0 * t - 0.5 * c)
            .collect();
        let fit = least_squares(&y, &[&t, &temp], None).unwrap();
        assert!((fit.coefficients[0] - 3.0).abs() < 1e-12);
        assert!((fit.coefficients[1] - 2.0).abs() < 1e-13);
        assert!((fit.coefficients[2] + 0.5).abs() < 1e-13);
        assert!(fit.s_residual < 1e-13);
        assert_eq!(fit.dof, 3);
        assert_eq!(fit.covariance.len(), 3);
        // Symmetric covariance.
        assert_eq!(fit.covariance[0][2], fit.covariance[2][0]);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let t = [1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 2.0, 4.0, 3.0];
        assert_eq!(
            least_squares(&y, &[&t, &t], None),
            Err(StatsError::Singular { regressor: 1 })
        );
        let twice: Vec<f64> = t.iter().map(|v| 2.0 * v + 1.0).collect();
        assert_eq!(
            least_squares(&y, &[&t, &twice], None),
            Err(StatsError::Singular { regressor: 1 })
        );
        assert_eq!(
            least_squares(&y, &[&[5.0; 4]], None),
            Err(StatsError::Singular { regressor: 0 })
        );
        // p = 3 needs 4 points unweighted, 3 weighted.
        assert_eq!(
            least_squares(&y[..3], &[&t[..3], &[1.0, 0.0, 5.0]], None),
            Err(StatsError::TooFewPoints { needed: 4, got: 3 })
        );
        assert_eq!(
            least_squares(&y[..2], &[&t[..2], &[1.0, 0.0]], Some(&[1.0, 1.0])),
            Err(StatsError::TooFewPoints { needed: 3, got: 2 })
        );
        assert_eq!(
            least_squares(&y, &[&t], Some(&[1.0, 1.0, 0.0, 1.0])),
            Err(StatsError::NonPositiveUncertainty {
                index: 2,
                value: 0.0
            })
        );
        assert_eq!(
            least_squares(&y, &[&t], Some(&[1.0, -1.0, 1.0, 1.0])),
            Err(StatsError::NonPositiveUncertainty {
                index: 1,
                value: -1.0
            })
        );
        assert_eq!(
            least_squares(&y, &[&t], Some(&[1.0, f64::INFINITY, 1.0, 1.0])),
            Err(StatsError::NonFinite {
                input: "u",
                index: 1
            })
        );
        assert_eq!(
            least_squares(&[1.0, f64::NAN, 2.0, 3.0], &[&t], None),
            Err(StatsError::NonFinite {
                input: "y",
                index: 1
            })
        );
        assert!(matches!(
            least_squares(&y, &[&t[..3]], None),
            Err(StatsError::LengthMismatch { .. })
        ));
        let fit = least_squares(&y, &[&t], None).unwrap();
        assert!(matches!(
            fit.predict(&[1.0, 2.0]),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            fit.predict(&[f64::NAN]),
            Err(StatsError::NonFinite { .. })
        ));
    }

    #[test]
    fn scales_are_the_powers_of_two_just_above() {
        assert_eq!(power_of_two_above(1.0), 1.0);
        assert_eq!(power_of_two_above(1.5), 2.0);
        assert_eq!(power_of_two_above(0.3), 0.5);
        assert_eq!(power_of_two_above(1000.0), 1024.0);
        assert_eq!(
            power_of_two_above(f64::MIN_POSITIVE / 8.0),
            f64::MIN_POSITIVE
        );
        assert_eq!(power_of_two_above(f64::MAX), 2f64.powi(1023));
    }

    fn wild() -> impl Strategy<Value = f64> {
        prop_oneof![any::<f64>(), (-3i8..3).prop_map(f64::from)]
    }

    fn clean(fit: &MultiFit) -> bool {
        fit.coefficients.iter().all(|v| v.is_finite())
            && fit.covariance.iter().flatten().all(|v| v.is_finite())
            && fit.s_residual.is_finite()
            && fit.uncertainties().iter().all(|v| v.is_finite())
    }

    proptest! {
        #[test]
        fn never_panics_nor_returns_nan(
            rows in prop::collection::vec((wild(), wild(), wild(), wild()), 0..12),
            weighted in any::<bool>(),
        ) {
            let y: Vec<f64> = rows.iter().map(|r| r.0).collect();
            let a: Vec<f64> = rows.iter().map(|r| r.1).collect();
            let b: Vec<f64> = rows.iter().map(|r| r.2).collect();
            let u: Vec<f64> = rows.iter().map(|r| r.3).collect();
            let fit = least_squares(&y, &[&a, &b], weighted.then_some(u.as_slice()));
            if let Ok(fit) = fit {
                prop_assert!(clean(&fit), "{fit:?}");
                if let Ok(p) = fit.predict(&[1.0, 2.0]) {
                    prop_assert!(p.value.is_finite() && p.u.is_finite());
                }
            }
        }

        #[test]
        fn agrees_with_the_straight_line_fits(
            pts in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3, 0.01f64..10.0), 3..30)
        ) {
            let t: Vec<f64> = pts.iter().map(|p| p.0).collect();
            let y: Vec<f64> = pts.iter().map(|p| p.1).collect();
            let u: Vec<f64> = pts.iter().map(|p| p.2).collect();
            if let (Ok(o), Ok(m)) = (ols(&t, &y), least_squares(&y, &[&t], None)) {
                let tol = 1e-9 * (o.slope.abs() + o.u_slope) + 1e-300;
                prop_assert!((m.coefficients[1] - o.slope).abs() <= tol);
                prop_assert!((m.uncertainties()[1] - o.u_slope).abs() <= 1e-9 * o.u_slope + 1e-300);
            }
            if let (Ok(w), Ok(m)) = (wls(&t, &y, &u), least_squares(&y, &[&t], Some(&u))) {
                let tol = 1e-9 * (w.slope.abs() + w.u_slope);
                prop_assert!((m.coefficients[1] - w.slope).abs() <= tol);
                prop_assert!((m.uncertainties()[1] - w.u_slope).abs() <= 1e-9 * w.u_slope);
                let p = m.predict(&[w.t_mean + 7.0]).unwrap();
                let q = w.predict(w.t_mean + 7.0);
                prop_assert!((p.u - q.u).abs() <= 1e-9 * q.u);
            }
        }
    }
}
