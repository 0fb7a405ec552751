//! Combining uncertainty components (GUM, JCGM 100:2008 §5 and Annex G; `statistics.md` §2.1):
//! the divisors of Type B distributions, the combined standard uncertainty, Welch–Satterthwaite
//! effective degrees of freedom, and Student's t quantile for the coverage factor.
//!
//! The t quantile is computed for any real ν > 0 from the regularised incomplete beta function
//! (a continued fraction, Numerical Recipes §6.4) inverted by safeguarded Newton steps, so it needs
//! no printed table; the tests hold it to the tables' digits. Pure computation, like the rest of
//! `stats`: no function panics or returns NaN.

/// Why a budget quantity could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum UncertaintyError {
    /// A probability outside the open interval (0, 1).
    #[error("probability must be strictly between 0 and 1, got {p}")]
    InvalidProbability {
        /// The offending probability.
        p: f64,
    },
    /// Degrees of freedom that are zero, negative or NaN (infinity is allowed: a component known
    /// exactly, or a normal distribution).
    #[error("degrees of freedom must be positive, got {dof}")]
    InvalidDof {
        /// The offending value.
        dof: f64,
    },
    /// A contribution c·u that is NaN or infinite.
    #[error("contribution {index} is not a finite number")]
    NonFinite {
        /// Position of the contribution.
        index: usize,
    },
    /// Every contribution is zero, so ν_eff = u_c⁴ / Σ(c·u)⁴/ν is 0/0.
    #[error("the combined standard uncertainty is zero, so its degrees of freedom are undefined")]
    ZeroCombined,
    /// The quantile is beyond the range of `f64`, or its tail cannot be evaluated there (ν far
    /// below 1 with p near 1).
    #[error("the t quantile for p = {p} with {dof} degrees of freedom is beyond the range of f64")]
    Overflow {
        /// The probability asked.
        p: f64,
        /// The degrees of freedom.
        dof: f64,
    },
}

/// The probability distribution a Type B component is assumed to follow, which sets how its stated
/// value becomes a standard uncertainty (GUM 4.3.3 to 4.3.9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Normal, stated as an expanded uncertainty with coverage factor `k` (a certificate's U, k).
    Normal {
        /// The stated coverage factor; the caller keeps it positive.
        k: f64,
    },
    /// Rectangular (uniform) of half-width a: a resolution, a specification limit.
    Rectangular,
    /// Triangular of half-width a: values near the centre more likely than near the limits.
    Triangular,
    /// U-shaped (arcsine) of half-width a: a quantity cycling between its limits, e.g. a
    /// temperature controlled by an on/off thermostat.
    UShaped,
}

impl Distribution {
    /// The number the stated value is divided by to give the standard uncertainty: k, √3, √6 or
    /// √2 (the standard deviations of the distributions of half-width 1 are 1/√3, 1/√6, 1/√2).
    pub fn divisor(&self) -> f64 {
        match self {
            Self::Normal { k } => *k,
            Self::Rectangular => 3f64.sqrt(),
            Self::Triangular => 6f64.sqrt(),
            Self::UShaped => 2f64.sqrt(),
        }
    }

    /// The name configs and reports use: `normal`, `rectangular`, `triangular`, `u-shaped`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Normal { .. } => "normal",
            Self::Rectangular => "rectangular",
            Self::Triangular => "triangular",
            Self::UShaped => "u-shaped",
        }
    }
}

/// One term of a budget as the combination sees it: its contribution c·u and its degrees of
/// freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// c_i·u_i, in the measurand's unit (its sign does not matter).
    pub value: f64,
    /// ν_i; `f64::INFINITY` for a component taken as exactly known.
    pub dof: f64,
}

/// Combined standard uncertainty u_c = √Σ (c_i u_i)² of uncorrelated components.
///
/// Summed as a running hypotenuse so that contributions near 1e-200 or 1e200 neither underflow
/// nor overflow when squared.
pub fn combined_standard_uncertainty(contributions: &[f64]) -> Result<f64, UncertaintyError> {
    let mut total = 0.0f64;
    for (index, c) in contributions.iter().enumerate() {
        if !c.is_finite() {
            return Err(UncertaintyError::NonFinite { index });
        }
        total = total.hypot(*c);
    }
    Ok(total)
}

/// Welch–Satterthwaite effective degrees of freedom ν_eff = u_c⁴ / Σ (c_i u_i)⁴ / ν_i (GUM G.4.2).
///
/// Components with infinite ν add nothing to the denominator; if every component has infinite ν,
/// so has the result. The fourth powers are taken of contributions relative to the largest one, so
/// no magnitude of the measurand's unit overflows or underflows. The result is real and not
/// rounded: [`coverage_factor_95`] applies the rounding rule.
pub fn welch_satterthwaite(contributions: &[Contribution]) -> Result<f64, UncertaintyError> {
    let mut largest = 0.0f64;
    for (index, c) in contributions.iter().enumerate() {
        if !c.value.is_finite() {
            return Err(UncertaintyError::NonFinite { index });
        }
        if c.dof.is_nan() || c.dof <= 0.0 {
            return Err(UncertaintyError::InvalidDof { dof: c.dof });
        }
        largest = largest.max(c.value.abs());
    }
    if largest == 0.0 {
        return Err(UncertaintyError::ZeroCombined);
    }
    let mut sum_sq = 0.0;
    let mut denominator = 0.0;
    for c in contributions {
        let r2 = (c.value / largest).powi(2);
        sum_sq += r2;
        if c.dof.is_finite() {
            denominator += r2 * r2 / c.dof;
        }
    }
    if denominator == 0.0 {
        return Ok(f64::INFINITY);
    }
    let nu = sum_sq * sum_sq / denominator;
    // ν_eff ≥ min ν_i > 0, so only an overflow of a tiny denominator can leave the range.
    Ok(if nu.is_finite() { nu } else { f64::INFINITY })
}

/// The degrees of freedom the coverage factor is looked up with: ν_eff truncated to the next lower
/// integer (GUM G.4.1 note 1, JJF 1059.1-2012 §4.4.2), or ν_eff itself below 1, where no lower
/// integer has a t distribution.
///
/// Why truncate when [`student_t_quantile`] takes any real ν: a pilot or assessor checks k against
/// a printed t table, and truncation is what the guides prescribe, so the k a lab reports must be the
/// one they find. It errs on the safe side (fewer degrees of freedom, larger k).
pub fn table_dof(nu_eff: f64) -> f64 {
    if nu_eff.is_finite() && nu_eff >= 1.0 {
        nu_eff.floor()
    } else {
        nu_eff
    }
}

/// Coverage factor for a coverage probability of 95 %: t_0.975 at [`table_dof`]`(ν_eff)`.
pub fn coverage_factor_95(nu_eff: f64) -> Result<f64, UncertaintyError> {
    student_t_quantile(0.975, table_dof(nu_eff))
}

/// The p-quantile of Student's t distribution with `dof` degrees of freedom (any real ν > 0;
/// `f64::INFINITY` gives the normal distribution's quantile). The two-sided 95 % coverage factor is
/// `student_t_quantile(0.975, ν)`.
pub fn student_t_quantile(p: f64, dof: f64) -> Result<f64, UncertaintyError> {
    if !(p > 0.0 && p < 1.0) {
        return Err(UncertaintyError::InvalidProbability { p });
    }
    if dof.is_nan() || dof <= 0.0 {
        return Err(UncertaintyError::InvalidDof { dof });
    }
    if p == 0.5 {
        return Ok(0.0);
    }
    // Two-sided tail probability α = P(|T| > t); the sign comes from which side p is on.
    let (alpha, sign) = if p > 0.5 {
        (2.0 * (1.0 - p), 1.0)
    } else {
        (2.0 * p, -1.0)
    };
    let t = if dof.is_infinite() {
        solve_tail(alpha, normal_tail, normal_density)
    } else if dof >= CORNISH_FISHER_FROM {
        let z = solve_tail(alpha, normal_tail, normal_density);
        z.map(|z| cornish_fisher(z, dof))
    } else {
        solve_tail(alpha, |t| t_tail(t, dof), |t| t_density(t, dof))
    };
    t.map(|t| sign * t)
        .ok_or(UncertaintyError::Overflow { p, dof })
}

/// From this many degrees of freedom on, the t quantile is the normal one plus its asymptotic
/// expansion in 1/ν: its next term is below 1e-25 relative there, while the incomplete beta's
/// prefactor (differences of log-gammas near 1e7) would start losing digits.
const CORNISH_FISHER_FROM: f64 = 1e6;

/// Abramowitz & Stegun 26.7.5: t_p(ν) = z + g1/ν + g2/ν² + g3/ν³ + g4/ν⁴.
fn cornish_fisher(z: f64, nu: f64) -> f64 {
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / nu) / nu) / nu) / nu
}

/// The t ≥ 0 at which `tail(t) = alpha`, for a tail that falls from 1 at t = 0 to 0, with
/// `density(t) = −tail'(t)/2`. Newton steps kept inside a bracket that bisection shrinks
/// whenever a step would leave it; `None` if the root is beyond the range of `f64` or the tail
/// cannot be evaluated there.
fn solve_tail(alpha: f64, tail: impl Fn(f64) -> f64, density: impl Fn(f64) -> f64) -> Option<f64> {
    let mut lo = 0.0f64;
    let mut hi = 2.0f64;
    loop {
        let f = tail(hi);
        if f.is_nan() {
            return None;
        }
        if f <= alpha {
            break;
        }
        lo = hi;
        hi *= 16.0;
        if !hi.is_finite() || hi > 1e300 {
            return None;
        }
    }
    let mut t = 0.5 * (lo + hi);
    for _ in 0..400 {
        let f = tail(t) - alpha;
        if f.is_nan() {
            return None;
        }
        if f == 0.0 {
            return Some(t);
        }
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        if hi - lo <= 2.0 * f64::EPSILON * hi {
            break;
        }
        let slope = -2.0 * density(t);
        let newton = t - f / slope;
        t = if slope < 0.0 && newton > lo && newton < hi {
            newton
        } else if lo > 0.0 && hi / lo > 4.0 {
            // A bracket spanning orders of magnitude (heavy tails, ν ≪ 1) is halved in log.
            (lo * hi).sqrt()
        } else {
            0.5 * (lo + hi)
        };
    }
    // A root the tail does not confirm (ν so small that its logarithms lose every digit) is no
    // root: better no quantile than a wrong one.
    let confirmed = ((tail(t) - alpha) / alpha).abs() < 1e-6;
    (t.is_finite() && confirmed).then_some(t)
}

/// P(|T| > t) for Student's t with ν degrees of freedom: I_x(ν/2, 1/2), x = ν/(ν + t²).
///
/// x and 1 − x are taken through their logarithms in r = t/√ν, so a t whose square exceeds the
/// range of `f64` (ν ≪ 1 has such quantiles) still has its tail.
fn t_tail(t: f64, nu: f64) -> f64 {
    let r = t / nu.sqrt();
    if r == 0.0 {
        return 1.0;
    }
    let ln_r2 = 2.0 * r.ln();
    // ln(1 + r²), without overflow for r beyond 1e154.
    let ln_1_r2 = if r > 1.0 {
        ln_r2 + (1.0 / (r * r)).ln_1p()
    } else {
        (r * r).ln_1p()
    };
    incomplete_beta(0.5 * nu, 0.5, -ln_1_r2, ln_r2 - ln_1_r2)
}

/// The density of Student's t: Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) · (1 + t²/ν)^(−(ν+1)/2).
fn t_density(t: f64, nu: f64) -> f64 {
    let ln = ln_gamma(0.5 * (nu + 1.0))
        - ln_gamma(0.5 * nu)
        - 0.5 * (nu * std::f64::consts::PI).ln()
        - 0.5 * (nu + 1.0) * (t * t / nu).ln_1p();
    ln.exp()
}

/// P(|Z| > z) = erfc(z/√2) = Q(1/2, z²/2) for the standard normal distribution.
fn normal_tail(z: f64) -> f64 {
    upper_incomplete_gamma_half(0.5 * z * z)
}

/// The standard normal density.
fn normal_density(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Relative precision the series and continued fractions stop at.
const EPS: f64 = 1e-16;
/// Floor keeping the modified Lentz algorithm away from division by zero.
const TINY: f64 = 1e-300;
/// Most terms of a series or continued fraction: ample for ν < 1e6 (the fractions need
/// O(√ν) terms).
const MAX_TERMS: usize = 20_000;

/// Regularised upper incomplete gamma Q(1/2, x) (Numerical Recipes §6.2): the series for P below
/// x = 1.5, the continued fraction for Q above.
fn upper_incomplete_gamma_half(x: f64) -> f64 {
    const A: f64 = 0.5;
    if x <= 0.0 {
        return 1.0;
    }
    let prefactor = (-x + A * x.ln() - ln_gamma(A)).exp();
    if x < A + 1.0 {
        let mut term = 1.0 / A;
        let mut sum = term;
        let mut ap = A;
        for _ in 0..MAX_TERMS {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        1.0 - sum * prefactor
    } else {
        let mut b = x + 1.0 - A;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_TERMS {
            let i = i as f64;
            let an = -i * (i - A);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < EPS {
                break;
            }
        }
        prefactor * h
    }
}

/// Regularised incomplete beta I_x(a, b), given ln x and ln(1 − x) so that neither x nor 1 − x is
/// computed by a subtraction that loses digits, and a tiny x still has its logarithm (Numerical
/// Recipes §6.4).
fn incomplete_beta(a: f64, b: f64, ln_x: f64, ln_y: f64) -> f64 {
    let (x, y) = (ln_x.exp(), ln_y.exp());
    if y <= 0.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * ln_x + b * ln_y;
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, y) / b
    }
}

/// The continued fraction of the incomplete beta, evaluated by the modified Lentz method.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..MAX_TERMS {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0: Lanczos' approximation (g = 7, 9 terms, relative error ≈ 1e-15), with the
/// reflection formula below 1/2.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Two-sided 95 % points t_0.975(ν) as printed in standard tables (6 decimals; JJF 1059.1
    /// Annex B, NIST/SEMATECH e-Handbook 1.3.6.7.2).
    const TABLE: &[(f64, f64)] = &[
        (1.0, 12.706205),
        (2.0, 4.302653),
        (3.0, 3.182446),
        (4.0, 2.776445),
        (5.0, 2.570582),
        (10.0, 2.228139),
        (20.0, 2.085963),
        (30.0, 2.042272),
        (100.0, 1.983972),
    ];

    #[test]
    fn t_quantile_matches_printed_tables() {
        for &(nu, want) in TABLE {
            let got = student_t_quantile(0.975, nu).unwrap();
            assert!((got - want).abs() < 5e-7, "ν = {nu}: {got} vs {want}");
        }
        let z = student_t_quantile(0.975, f64::INFINITY).unwrap();
        assert!((z - 1.959_963_984_540_054).abs() < 1e-12, "{z}");
        // One-sided 99.5 % and 90 % points from the same tables.
        assert!((student_t_quantile(0.995, 10.0).unwrap() - 3.169273).abs() < 5e-7);
        assert!((student_t_quantile(0.95, 5.0).unwrap() - 2.015048).abs() < 5e-7);
    }

    #[test]
    fn t_quantile_has_closed_forms_where_they_exist() {
        // ν = 1 is Cauchy: t_p = tan(π(p − 1/2)); ν = 2: t_p = (2p − 1)·√(2/(4p(1 − p))).
        for p in [0.6, 0.9, 0.975, 0.999, 0.999_999] {
            let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
            let got = student_t_quantile(p, 1.0).unwrap();
            assert!(
                (got / cauchy - 1.0).abs() < 1e-10,
                "p = {p}: {got} vs {cauchy}"
            );
            let two = (2.0 * p - 1.0) * (2.0 / (4.0 * p * (1.0 - p))).sqrt();
            let got = student_t_quantile(p, 2.0).unwrap();
            assert!((got / two - 1.0).abs() < 1e-10, "p = {p}: {got} vs {two}");
        }
    }

    #[test]
    fn t_quantile_is_odd_and_continuous_in_real_dof() {
        assert_eq!(student_t_quantile(0.5, 3.0).unwrap(), 0.0);
        let up = student_t_quantile(0.975, 7.5).unwrap();
        let down = student_t_quantile(0.025, 7.5).unwrap();
        assert!((up + down).abs() < 1e-12);
        // Between the integers, and falling with ν.
        let t7 = student_t_quantile(0.975, 7.0).unwrap();
        let t8 = student_t_quantile(0.975, 8.0).unwrap();
        assert!(t8 < up && up < t7, "{t8} < {up} < {t7}");
    }

    #[test]
    fn large_dof_joins_the_expansion_and_the_normal() {
        // On both sides of the switch to the expansion the two methods agree.
        for nu in [2e4, 1e5, 9e5] {
            let beta = solve_tail(0.05, |t| t_tail(t, nu), |t| t_density(t, nu)).unwrap();
            let z = solve_tail(0.05, normal_tail, normal_density).unwrap();
            let cf = cornish_fisher(z, nu);
            assert!((beta / cf - 1.0).abs() < 1e-10, "ν = {nu}: {beta} vs {cf}");
        }
        let big = student_t_quantile(0.975, 1e12).unwrap();
        assert!((big - 1.959_963_984_540_054).abs() < 1e-10);
    }

    #[test]
    fn small_dof_gives_huge_quantiles_or_a_typed_overflow() {
        let t = student_t_quantile(0.975, 0.5).unwrap();
        // P(|T| > t) at the result is 0.05 again.
        assert!((t_tail(t, 0.5) / 0.05 - 1.0).abs() < 1e-9, "{t}");
        assert_eq!(
            student_t_quantile(0.975, 1e-3),
            Err(UncertaintyError::Overflow {
                p: 0.975,
                dof: 1e-3
            })
        );
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        for p in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(matches!(
                student_t_quantile(p, 3.0),
                Err(UncertaintyError::InvalidProbability { .. })
            ));
        }
        for dof in [0.0, -1.0, f64::NAN] {
            assert!(matches!(
                student_t_quantile(0.975, dof),
                Err(UncertaintyError::InvalidDof { .. })
            ));
        }
    }

    #[test]
    fn divisors_are_the_gum_ones() {
        assert_eq!(Distribution::Normal { k: 2.0 }.divisor(), 2.0);
        assert!((Distribution::Rectangular.divisor() - 1.732_050_807_568_877).abs() < 1e-15);
        assert!((Distribution::Triangular.divisor() - 2.449_489_742_783_178).abs() < 1e-15);
        assert!((Distribution::UShaped.divisor() - std::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(Distribution::UShaped.name(), "u-shaped");
    }

    #[test]
    fn welch_satterthwaite_by_hand() {
        // Contributions 3 (ν = 4), 4 (ν = 9): u_c² = 25, u_c⁴ = 625,
        // Σ = 81/4 + 256/9 = 20.25 + 28.444… = 48.694…, ν_eff = 625/48.694… = 12.835…
        let c = [
            Contribution {
                value: 3.0,
                dof: 4.0,
            },
            Contribution {
                value: -4.0,
                dof: 9.0,
            },
            Contribution {
                value: 0.0,
                dof: 1.0,
            },
        ];
        let nu = welch_satterthwaite(&c).unwrap();
        assert!(
            (nu - 625.0 / (81.0 / 4.0 + 256.0 / 9.0)).abs() < 1e-12,
            "{nu}"
        );
        assert_eq!(table_dof(nu), 12.0);
        assert_eq!(
            combined_standard_uncertainty(&[3.0, -4.0, 0.0]).unwrap(),
            5.0
        );
        // The same budget in nV: scale does not matter.
        let tiny: Vec<Contribution> = c
            .iter()
            .map(|c| Contribution {
                value: c.value * 1e-200,
                dof: c.dof,
            })
            .collect();
        assert!((welch_satterthwaite(&tiny).unwrap() / nu - 1.0).abs() < 1e-14);
        // Infinite ν everywhere: infinite ν_eff, k = 1.96.
        let inf = [Contribution {
            value: 1.0,
            dof: f64::INFINITY,
        }];
        assert_eq!(welch_satterthwaite(&inf).unwrap(), f64::INFINITY);
        assert!((coverage_factor_95(f64::INFINITY).unwrap() - 1.959_964).abs() < 1e-6);
        // ν_eff = 12.8 looks up ν = 12: 2.178813.
        assert!((coverage_factor_95(nu).unwrap() - 2.178_813).abs() < 5e-7);
        assert_eq!(table_dof(0.4), 0.4);
    }

    #[test]
    fn welch_satterthwaite_rejects_what_it_cannot_combine() {
        let c = |value, dof| Contribution { value, dof };
        assert_eq!(
            welch_satterthwaite(&[c(0.0, 3.0)]),
            Err(UncertaintyError::ZeroCombined)
        );
        assert_eq!(
            welch_satterthwaite(&[]),
            Err(UncertaintyError::ZeroCombined)
        );
        assert_eq!(
            welch_satterthwaite(&[c(1.0, 3.0), c(f64::NAN, 3.0)]),
            Err(UncertaintyError::NonFinite { index: 1 })
        );
        assert_eq!(
            welch_satterthwaite(&[c(1.0, 0.0)]),
            Err(UncertaintyError::InvalidDof { dof: 0.0 })
        );
        assert_eq!(
            combined_standard_uncertainty(&[1.0, f64::INFINITY]),
            Err(UncertaintyError::NonFinite { index: 1 })
        );
    }

    proptest! {
        #[test]
        fn quantile_never_panics_and_inverts_the_tail(p in any::<f64>(), dof in any::<f64>()) {
            match student_t_quantile(p, dof) {
                Ok(t) => {
                    prop_assert!(t.is_finite());
                    if dof.is_finite() && dof < CORNISH_FISHER_FROM && (1e-12..1.0 - 1e-12).contains(&p) && p != 0.5 {
                        let alpha = 2.0 * p.min(1.0 - p);
                        let tail = t_tail(t.abs(), dof);
                        prop_assert!((tail / alpha - 1.0).abs() < 1e-8, "p {p} ν {dof}: tail {tail}");
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn welch_satterthwaite_lies_between_the_smallest_and_the_sum_of_dofs(
            parts in prop::collection::vec((1e-6f64..1e6, 0.5f64..1e4), 1..12)
        ) {
            let c: Vec<Contribution> =
                parts.iter().map(|&(value, dof)| Contribution { value, dof }).collect();
            let nu = welch_satterthwaite(&c).unwrap();
            let min = parts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let sum: f64 = parts.iter().map(|p| p.1).sum();
            prop_assert!(nu >= min * (1.0 - 1e-12) && nu <= sum * (1.0 + 1e-12), "{nu} not in [{min}, {sum}]");
        }
    }
}
