//! Type A statistics of a series of readings (GUM JCGM 100:2008 §4.2; `statistics.md` §2.1).

use super::{StatsError, centre, check_count, check_finite, finite};

/// Type A summary of n readings.
///
/// `std_dev_of_mean` is a valid uncertainty of the mean only for uncorrelated (white) readings; check
/// with [`crate::stats::allan_table`] before using it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of readings.
    pub n: usize,
    /// Arithmetic mean q̄.
    pub mean: f64,
    /// Experimental standard deviation s(q), with n − 1 in the denominator.
    pub std_dev: f64,
    /// Experimental standard deviation of the mean, s(q̄) = s(q)/√n.
    pub std_dev_of_mean: f64,
    /// Degrees of freedom ν = n − 1.
    pub dof: usize,
}

/// Mean, standard deviation, standard deviation of the mean and degrees of freedom of `values`.
///
/// Needs at least two readings: with n = 1 the standard deviation is undefined, and this returns
/// [`StatsError::TooFewPoints`] rather than a summary with a meaningless s (use [`mean`] for the mean
/// of a single reading). Computed by the corrected two-pass algorithm on offsets from the first value,
/// so readings of 10 V resolved to nV keep their digits.
pub fn summary(values: &[f64]) -> Result<Summary, StatsError> {
    check_count(2, values.len())?;
    check_finite("values", values)?;
    let n = values.len();
    // The arithmetic of `centre`, pass by pass, without its three vectors of n deviations: at a
    // million readings they were 24 MB to allocate and fault in for three sums (P8).
    let n_f = n as f64;
    let reference = values.first().copied().unwrap_or(0.0);
    let first_pass = values.iter().map(|v| v - reference).sum::<f64>() / n_f;
    let offset = first_pass
        + values
            .iter()
            .map(|v| (v - reference) - first_pass)
            .sum::<f64>()
            / n_f;
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for v in values {
        let e = (v - reference) - offset;
        sum += e;
        sum_sq += e * e;
    }
    // Rounding makes Σe slightly non-zero; subtracting its square is the "corrected" part of the
    // corrected two-pass algorithm and keeps the result exact for exactly representable data.
    let variance = ((sum_sq - sum * sum / n_f) / (n_f - 1.0)).max(0.0);
    let std_dev = finite("standard deviation", variance.sqrt())?;
    Ok(Summary {
        n,
        mean: finite("mean", reference + offset)?,
        std_dev,
        std_dev_of_mean: std_dev / n_f.sqrt(),
        dof: n - 1,
    })
}

/// Arithmetic mean of `values`, defined from one reading on.
///
/// Uses the same offset-and-correct algorithm as [`summary`], so it agrees with `summary(values)?.mean`.
pub fn mean(values: &[f64]) -> Result<f64, StatsError> {
    check_count(1, values.len())?;
    check_finite("values", values)?;
    finite("mean", centre(values, None).mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::vectors::{assert_rel, load, number, numbers};
    use proptest::prelude::*;

    /// NIST StRD NumAcc4: 10000000.2, then 500 × (10000000.1, 10000000.3).
    fn numacc4() -> Vec<f64> {
        numacc_like(10000000.2, 10000000.1, 10000000.3)
    }

    /// The StRD NumAcc construction: `first`, then 500 × (`low`, `high`); n = 1001.
    fn numacc_like(first: f64, low: f64, high: f64) -> Vec<f64> {
        let mut v = vec![first];
        for _ in 0..500 {
            v.push(low);
            v.push(high);
        }
        v
    }

    /// Exact sample variance of `values`, all of which must be integer multiples of `2^-frac_bits`
    /// (true of every double in [2^k, 2^(k+1)) for frac_bits = 52 − k).
    ///
    /// Integer arithmetic in i128 is an oracle independent of floating-point summation order: it gives
    /// the variance of the binary inputs exactly, rounded once at the end.
    fn exact_variance(values: &[f64], frac_bits: i32) -> f64 {
        let scale = 2f64.powi(frac_bits);
        let ints: Vec<i128> = values
            .iter()
            .map(|v| {
                let scaled = v * scale;
                assert_eq!(scaled.fract(), 0.0, "{v} is not on the 2^-{frac_bits} grid");
                scaled as i128
            })
            .collect();
        let first = ints[0];
        let d: Vec<i128> = ints.iter().map(|x| x - first).collect();
        let n = d.len() as i128;
        let s1: i128 = d.iter().sum();
        let s2: i128 = d.iter().map(|x| x * x).sum();
        // var = (n Σd² − (Σd)²) / (n (n − 1)) in units of 2^(-2 frac_bits).
        let num = n * s2 - s1 * s1;
        num as f64 / (n * (n - 1)) as f64 / scale / scale
    }

    #[test]
    fn nist_numacc1() {
        let v = load();
        let data = numbers(&v, "/nist_strd_univariate/NumAcc1/data");
        let s = summary(&data).unwrap();
        // Integer data: exact results are expected.
        assert_eq!(s.mean, number(&v, "/nist_strd_univariate/NumAcc1/mean"));
        assert_eq!(s.std_dev, number(&v, "/nist_strd_univariate/NumAcc1/sd"));
        assert_eq!(s.n, 3);
        assert_eq!(s.dof, 2);
        assert_eq!(s.std_dev_of_mean, 1.0 / 3f64.sqrt());
    }

    #[test]
    fn nist_numacc2() {
        let v = load();
        let data = numacc_like(1.2, 1.1, 1.3);
        let s = summary(&data).unwrap();
        assert_eq!(s.n, 1001);
        assert_eq!(s.dof, 1000);
        let want_mean = number(&v, "/nist_strd_univariate/NumAcc2/mean");
        let want_sd = number(&v, "/nist_strd_univariate/NumAcc2/sd");
        assert_rel("NumAcc2 mean", s.mean, want_mean, 1e-15);
        // 1.1, 1.2, 1.3 are not exact doubles; their representation errors (≈ 1e-16) move s by
        // ≈ 1e-15 relative, far inside the 1e-13 asked here.
        assert_rel("NumAcc2 sd", s.std_dev, want_sd, 1e-13);
        assert_rel(
            "NumAcc2 sd of mean",
            s.std_dev_of_mean,
            want_sd / 1001f64.sqrt(),
            1e-13,
        );
    }

    #[test]
    fn nist_numacc4() {
        let data = numacc4();
        let s = summary(&data).unwrap();
        assert_eq!(s.n, 1001);
        assert_eq!(s.dof, 1000);
        // Certified for the decimal data: mean 10000000.2, sd 0.1.
        assert_rel("NumAcc4 mean", s.mean, 10000000.2, 1e-15);
        // The doubles nearest 10000000.1/.2/.3 sit up to 7.5e-10 from the decimals (ulp 1.9e-9), which
        // moves the sd of the *binary* inputs to 0.1000000006 (statistics.md §2.1). Against the
        // decimal certificate, 1e-8 relative is therefore the best any double algorithm can do …
        assert_rel("NumAcc4 sd vs certificate", s.std_dev, 0.1, 1e-8);
        // … and against the exact sd of the binary inputs (integer oracle) the algorithm loses
        // nothing: doubles in [2^23, 2^24) are multiples of 2^-29.
        let exact = exact_variance(&data, 29).sqrt();
        assert_rel("NumAcc4 sd vs exact", s.std_dev, exact, 1e-14);
        assert_rel(
            "NumAcc4 s/√n",
            s.std_dev_of_mean,
            exact / 1001f64.sqrt(),
            1e-14,
        );
    }

    /// NIST StRD NumAcc3 (defined by its generator): 1000000.2, then 500 × (1000000.1,
    /// 1000000.3); certified mean 1000000.2, sd 0.1.
    #[test]
    fn nist_numacc3() {
        let data = numacc_like(1000000.2, 1000000.1, 1000000.3);
        let s = summary(&data).unwrap();
        assert_eq!((s.n, s.dof), (1001, 1000));
        assert_rel("NumAcc3 mean", s.mean, 1000000.2, 1e-15);
        // The doubles nearest the decimals sit up to 5.8e-11 from them (ulp 1.16e-10), so 1e-9
        // relative is what the binary inputs allow against the decimal certificate …
        assert_rel("NumAcc3 sd vs certificate", s.std_dev, 0.1, 1e-9);
        // … and nothing is lost against their exact sd: [2^19, 2^20) is on the 2^-33 grid.
        let exact = exact_variance(&data, 33).sqrt();
        assert_rel("NumAcc3 sd vs exact", s.std_dev, exact, 1e-14);
    }

    /// The vector is only a test if the naive formula fails on it (statistics.md: it gives −2.0).
    #[test]
    fn numacc4_defeats_the_one_pass_formula() {
        let data = numacc4();
        let n = data.len() as f64;
        let (s1, s2) = data.iter().fold((0.0, 0.0), |(a, b), x| (a + x, b + x * x));
        let naive_var = (s2 - s1 * s1 / n) / (n - 1.0);
        assert!((naive_var - 0.01).abs() > 0.1, "naive variance {naive_var}");
    }

    #[test]
    fn nbs14_mean_and_sample_sd() {
        let v = load();
        let y = numbers(&v, "/nbs14_10pt/fractional_frequency");
        let tol = number(&v, "/nbs14_10pt/tolerance_rel");
        let s = summary(&y).unwrap();
        assert_rel(
            "NBS14 mean",
            s.mean,
            number(&v, "/nbs14_10pt/published/mean"),
            tol,
        );
        assert_rel(
            "NBS14 sample sd",
            s.std_dev,
            number(&v, "/nbs14_10pt/published/sample_sd"),
            tol,
        );
    }

    #[test]
    fn one_reading_has_a_mean_but_no_summary() {
        assert_eq!(
            summary(&[10.0]),
            Err(StatsError::TooFewPoints { needed: 2, got: 1 })
        );
        assert_eq!(
            summary(&[]),
            Err(StatsError::TooFewPoints { needed: 2, got: 0 })
        );
        assert_eq!(mean(&[10.0]), Ok(10.0));
        assert_eq!(
            mean(&[]),
            Err(StatsError::TooFewPoints { needed: 1, got: 0 })
        );
    }

    #[test]
    fn rejects_non_finite_and_overflow() {
        assert_eq!(
            summary(&[1.0, f64::NAN, f64::INFINITY]),
            Err(StatsError::NonFinite {
                input: "values",
                index: 1
            })
        );
        assert_eq!(
            mean(&[1.0, 2.0, f64::NEG_INFINITY]),
            Err(StatsError::NonFinite {
                input: "values",
                index: 2
            })
        );
        assert!(matches!(
            summary(&[f64::MAX, -f64::MAX]),
            Err(StatsError::Overflow { .. })
        ));
    }

    #[test]
    fn constant_series_has_zero_spread() {
        let s = summary(&[10.000_000_123; 7]).unwrap();
        assert_eq!(s.mean, 10.000_000_123);
        assert_eq!(s.std_dev, 0.0);
        assert_eq!(s.std_dev_of_mean, 0.0);
    }

    /// Values on a 2^-20 grid around 10 (a 10 V Zener read to ≈ 1 µV).
    fn grid_values() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-4_000_000i64..4_000_000, 2..200).prop_map(|ints| {
            ints.into_iter()
                .map(|i| 10.0 + i as f64 * 2f64.powi(-20))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn never_panics(values in prop::collection::vec(any::<f64>(), 0..40)) {
            let s = summary(&values);
            let m = mean(&values);
            if values.iter().all(|v| v.is_finite()) && values.len() >= 2 {
                if let Ok(s) = s {
                    prop_assert!(s.mean.is_finite() && s.std_dev.is_finite() && s.std_dev >= 0.0);
                    prop_assert_eq!(m, Ok(s.mean));
                }
            } else {
                prop_assert!(s.is_err());
            }
        }

        #[test]
        fn finite_moderate_input_always_succeeds(
            values in prop::collection::vec(-1e150f64..1e150, 2..40)
        ) {
            // Squares of deviations up to 2e150 stay below f64::MAX, so no overflow is possible.
            let s = summary(&values).unwrap();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let slack = 1e-15 * (lo.abs() + hi.abs());
            prop_assert!(
                lo - slack <= s.mean && s.mean <= hi + slack,
                "mean {} outside [{lo}, {hi}]",
                s.mean
            );
        }

        #[test]
        fn s_is_invariant_under_adding_a_constant(
            values in prop::collection::vec(-1e3f64..1e3, 2..60),
            c in -1e7f64..1e7,
        ) {
            let s = summary(&values).unwrap();
            let shifted: Vec<f64> = values.iter().map(|v| v + c).collect();
            let t = summary(&shifted).unwrap();
            // Rounding v + c perturbs each value by ≤ ½ ulp(|v| + |c|), which moves s by at most about
            // as much; a one-pass formula would be off by ≈ ε·c²/s instead.
            let tol = 4.0 * f64::EPSILON * (1e3 + c.abs()) + 1e-13 * s.std_dev;
            prop_assert!((s.std_dev - t.std_dev).abs() <= tol, "{} vs {}", s.std_dev, t.std_dev);
            prop_assert!((s.mean + c - t.mean).abs() <= tol, "{} + {c} vs {}", s.mean, t.mean);
        }

        #[test]
        fn sd_matches_exact_integer_oracle(values in grid_values()) {
            let s = summary(&values).unwrap();
            let exact = exact_variance(&values, 20).sqrt();
            if exact == 0.0 {
                prop_assert_eq!(s.std_dev, 0.0);
            } else {
                assert_rel("sd", s.std_dev, exact, 1e-13);
            }
        }
    }
}
