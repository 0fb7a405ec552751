//! Allan deviations of an equally spaced series (NIST SP 1065; `statistics.md` §2.4).
//!
//! The series y may be fractional frequency (reading/nominal − 1) or raw readings: all three
//! deviations are unchanged by a constant offset, so it is removed (two-pass mean) before the phase
//! x_j = Σ_{i<j} y_i is accumulated. This keeps the phase a small random walk instead of a ramp of
//! slope 10 V, and the second differences keep their digits. Phase is kept in units of τ0, which
//! cancels from every formula; τ0 only labels the result with τ = m·τ0.

use super::{StatsError, centre, check_count, check_finite, finite};

/// One Allan-type deviation at averaging time τ = m·τ0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllanPoint {
    /// Averaging factor m.
    pub m: usize,
    /// Averaging time τ = m·τ0.
    pub tau: f64,
    /// The deviation σ_y(τ) (square root of the variance), in the unit of y.
    pub deviation: f64,
    /// Number of squared terms averaged: M − 1 (ADEV), N + 1 − 2m (OADEV) or N + 2 − 3m (MDEV).
    /// Confidence intervals are built from it.
    pub terms: usize,
}

/// One row of [`allan_table`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllanRow {
    /// Averaging factor m.
    pub m: usize,
    /// Averaging time τ = m·τ0.
    pub tau: f64,
    /// Non-overlapping Allan deviation.
    pub adev: f64,
    /// Overlapping Allan deviation.
    pub oadev: f64,
    /// Modified Allan deviation; `None` where it needs more points than ADEV (3m − 1 > N).
    pub mdev: Option<f64>,
}

/// Non-overlapping Allan deviation: adjacent means of M = ⌊N/m⌋ blocks of m readings.
///
/// Needs N ≥ 2m; readings after the last full block are ignored.
pub fn adev(y: &[f64], tau0: f64, m: usize) -> Result<AllanPoint, StatsError> {
    let needed = m.saturating_mul(2);
    let z = prepare(y, tau0, m, needed)?;
    let raw = raw_adev(&z, m).ok_or(too_few(needed, y))?;
    point(m, tau0, raw)
}

/// Overlapping Allan deviation: every start position j of two adjacent blocks of m readings.
///
/// Needs N ≥ 2m. Equal to [`adev`] at m = 1, with more terms (so a tighter confidence interval) at
/// m > 1.
pub fn oadev(y: &[f64], tau0: f64, m: usize) -> Result<AllanPoint, StatsError> {
    let needed = m.saturating_mul(2);
    let z = prepare(y, tau0, m, needed)?;
    let raw = raw_oadev(&phase(&z), m).ok_or(too_few(needed, y))?;
    point(m, tau0, raw)
}

/// Modified Allan deviation: the overlapping second differences themselves averaged over m.
///
/// Needs N ≥ 3m − 1 (phase points N + 1 ≥ 3m). Distinguishes white from flicker phase noise, which
/// ADEV cannot.
pub fn mdev(y: &[f64], tau0: f64, m: usize) -> Result<AllanPoint, StatsError> {
    let needed = m.saturating_mul(3).saturating_sub(1);
    let z = prepare(y, tau0, m, needed)?;
    let raw = raw_mdev(&phase(&z), m).ok_or(too_few(needed, y))?;
    point(m, tau0, raw)
}

/// ADEV, OADEV and MDEV at m = 1, 2, 4, … for as long as ADEV and OADEV are defined (2m ≤ N).
///
/// The ADEV slope over τ identifies the noise (statistics.md §2.4): −½ white (s/√n is valid), flat
/// flicker floor, +½ random walk or drift. Needs N ≥ 2.
pub fn allan_table(y: &[f64], tau0: f64) -> Result<Vec<AllanRow>, StatsError> {
    let z = prepare(y, tau0, 1, 2)?;
    let x = phase(&z);
    let mut rows = Vec::new();
    let mut m = 1usize;
    // The loop condition is exactly when both ADEV and OADEV are defined, so the `while let`
    // ends the table, not an error.
    while let (Some(a), Some(o)) = (raw_adev(&z, m), raw_oadev(&x, m)) {
        let adev = point(m, tau0, a)?;
        let oadev = point(m, tau0, o)?;
        let mdev = match raw_mdev(&x, m) {
            Some(raw) => Some(point(m, tau0, raw)?.deviation),
            None => None,
        };
        rows.push(AllanRow {
            m,
            tau: adev.tau,
            adev: adev.deviation,
            oadev: oadev.deviation,
            mdev,
        });
        m = match m.checked_mul(2) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(rows)
}

/// Validates the input (m ≥ 1, τ0 > 0, at least `needed` finite values) and returns y centred on
/// its mean.
fn prepare(y: &[f64], tau0: f64, m: usize, needed: usize) -> Result<Vec<f64>, StatsError> {
    if m == 0 {
        return Err(StatsError::ZeroAveragingFactor);
    }
    if !(tau0.is_finite() && tau0 > 0.0) {
        return Err(StatsError::InvalidSpacing { tau0 });
    }
    check_count(needed, y.len())?;
    check_finite("y", y)?;
    Ok(centre(y, None).dev)
}

/// The error for a deviation that is undefined for want of points.
fn too_few(needed: usize, y: &[f64]) -> StatsError {
    StatsError::TooFewPoints {
        needed,
        got: y.len(),
    }
}

/// Wraps a raw variance and its number of terms into an [`AllanPoint`], checking the range.
fn point(m: usize, tau0: f64, (variance, terms): (f64, usize)) -> Result<AllanPoint, StatsError> {
    Ok(AllanPoint {
        m,
        tau: finite("tau", m as f64 * tau0)?,
        deviation: finite("Allan deviation", variance.sqrt())?,
        terms,
    })
}

/// Phase in units of τ0: x_0 = 0, x_j = Σ_{i<j} z_i (N + 1 points).
fn phase(z: &[f64]) -> Vec<f64> {
    let mut x = Vec::with_capacity(z.len() + 1);
    let mut acc = 0.0;
    x.push(acc);
    for v in z {
        acc += v;
        x.push(acc);
    }
    x
}

/// σ² = Σ_{k=1}^{M−1} (ȳ_{k+1} − ȳ_k)² / (2(M − 1)) and M − 1; `None` unless M ≥ 2.
fn raw_adev(z: &[f64], m: usize) -> Option<(f64, usize)> {
    let means: Vec<f64> = z
        .chunks_exact(m)
        .map(|b| b.iter().sum::<f64>() / m as f64)
        .collect();
    let terms = means.len().checked_sub(1).filter(|&k| k > 0)?;
    let sum: f64 = means.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum();
    Some((sum / (2.0 * terms as f64), terms))
}

/// The second differences x_{j+2m} − 2x_{j+m} + x_j, j = 0 … N_x − 2m − 1, as they are needed:
/// a million-point table keeps one extra array (MDEV's running sum), not three (P8).
fn second_differences(x: &[f64], m: usize) -> impl Iterator<Item = f64> + '_ {
    x.iter()
        .zip(x.iter().skip(m))
        .zip(x.iter().skip(m.saturating_mul(2)))
        .map(|((a, b), c)| c - 2.0 * b + a)
}

/// σ² = Σ (x_{j+2m} − 2x_{j+m} + x_j)² / (2 m² (N_x − 2m)) with τ0 = 1; `None` unless N_x > 2m.
fn raw_oadev(x: &[f64], m: usize) -> Option<(f64, usize)> {
    let terms = x.len().checked_sub(m.checked_mul(2)?).filter(|&k| k > 0)?;
    let mf = m as f64;
    let sum: f64 = second_differences(x, m).map(|v| v * v).sum();
    Some((sum / (2.0 * mf * mf * terms as f64), terms))
}

/// Mod σ² = Σ_j [Σ_{i=j}^{j+m−1} (x_{i+2m} − 2x_{i+m} + x_i)]² / (2 m⁴ (N_x − 3m + 1)) with τ0 = 1;
/// `None` unless N_x ≥ 3m.
fn raw_mdev(x: &[f64], m: usize) -> Option<(f64, usize)> {
    // The inner sums over m consecutive second differences are differences of their running sum,
    // which makes the whole table O(N log N) instead of O(N²).
    let mut running = Vec::with_capacity(x.len());
    let mut acc = 0.0;
    running.push(acc);
    for d in second_differences(x, m) {
        acc += d;
        running.push(acc);
    }
    let terms = running.len().checked_sub(m).filter(|&k| k > 0)?;
    let m2 = (m as f64).powi(2);
    let sum: f64 = running
        .iter()
        .zip(running.iter().skip(m))
        .map(|(a, b)| (b - a) * (b - a))
        .sum();
    Some((sum / (2.0 * m2 * m2 * terms as f64), terms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::vectors::{assert_rel, load, number, numbers};
    use proptest::prelude::*;

    fn nbs14() -> (Vec<f64>, f64, f64, serde_json::Value) {
        let v = load();
        let y = numbers(&v, "/nbs14_10pt/fractional_frequency");
        let tau0 = number(&v, "/nbs14_10pt/tau0");
        let tol = number(&v, "/nbs14_10pt/tolerance_rel");
        (y, tau0, tol, v)
    }

    #[test]
    fn nbs14_published_values() {
        let (y, tau0, tol, v) = nbs14();
        let want = |kind: &str, m: usize| number(&v, &format!("/nbs14_10pt/published/{kind}/{m}"));
        for m in [1, 2] {
            let a = adev(&y, tau0, m).unwrap();
            let o = oadev(&y, tau0, m).unwrap();
            let d = mdev(&y, tau0, m).unwrap();
            assert_rel(&format!("ADEV m={m}"), a.deviation, want("adev", m), tol);
            assert_rel(&format!("OADEV m={m}"), o.deviation, want("oadev", m), tol);
            assert_rel(&format!("MDEV m={m}"), d.deviation, want("mdev", m), tol);
            assert_eq!(a.tau, m as f64 * tau0);
        }
        // N = 9: M − 1 = 8, 3 terms; OADEV N + 1 − 2m = 8, 6; MDEV N + 2 − 3m = 8, 5.
        assert_eq!(adev(&y, tau0, 2).unwrap().terms, 3);
        assert_eq!(oadev(&y, tau0, 2).unwrap().terms, 6);
        assert_eq!(mdev(&y, tau0, 2).unwrap().terms, 5);
        assert_eq!(mdev(&y, tau0, 1).unwrap().terms, 8);
    }

    /// The NBS14 1000-point set, defined by its generator (NIST SP 1065, Riley 2008, §12.3 and
    /// Table 31 on p. 108): n₀ = 1234567890, n_{i+1} = 16807·n_i mod 2147483647,
    /// y_i = n_i/2147483647, τ0 = 1 s. Published to 7 digits at τ = 1, 10, 100 s.
    pub(crate) fn nbs14_1000() -> Vec<f64> {
        let mut n: u64 = 1_234_567_890;
        (0..1000)
            .map(|_| {
                let y = n as f64 / 2_147_483_647.0;
                n = n * 16807 % 2_147_483_647;
                y
            })
            .collect()
    }

    #[test]
    fn nbs14_1000_point_published_values() {
        let y = nbs14_1000();
        // SP 1065 Table 31: ADEV, OADEV, MDEV at τ = 1, 10, 100.
        let published = [
            (1, 2.922319e-01, 2.922319e-01, 2.922319e-01),
            (10, 9.965736e-02, 9.159953e-02, 6.172376e-02),
            (100, 3.897804e-02, 3.241343e-02, 2.170921e-02),
        ];
        // Printed to 7 significant digits: within half a unit in the last place printed.
        let close = |what: String, got: f64, want: f64| {
            let half_ulp = 0.5 * 10f64.powf(want.log10().floor() - 6.0);
            assert!(
                (got - want).abs() <= half_ulp,
                "{what}: {got:e} vs {want:e}"
            );
        };
        for (m, a, o, d) in published {
            close(format!("ADEV {m}"), adev(&y, 1.0, m).unwrap().deviation, a);
            close(
                format!("OADEV {m}"),
                oadev(&y, 1.0, m).unwrap().deviation,
                o,
            );
            close(format!("MDEV {m}"), mdev(&y, 1.0, m).unwrap().deviation, d);
        }
    }

    #[test]
    fn nbs14_table() {
        let (y, tau0, tol, v) = nbs14();
        let table = allan_table(&y, tau0).unwrap();
        // N = 9: ADEV/OADEV defined for m ≤ 4, MDEV for 3m − 1 ≤ 9, i.e. m ≤ 3.
        let ms: Vec<usize> = table.iter().map(|r| r.m).collect();
        assert_eq!(ms, [1, 2, 4]);
        assert_eq!(table[2].mdev, None);
        assert_eq!(table[2].adev, adev(&y, tau0, 4).unwrap().deviation);
        assert_eq!(table[2].oadev, oadev(&y, tau0, 4).unwrap().deviation);
        let mdev2 = number(&v, "/nbs14_10pt/published/mdev/2");
        assert_rel("table MDEV m=2", table[1].mdev.unwrap(), mdev2, tol);
        assert_eq!(table[1].tau, 2.0 * tau0);
    }

    /// The block formula of ADEV and the phase formula of OADEV are independent code paths; at m = 1
    /// all three deviations are the same sum.
    #[test]
    fn m1_deviations_agree_and_match_direct_formula() {
        let y: [f64; 8] = [3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0, -6.0];
        let direct = (y.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum::<f64>() / 14.0).sqrt();
        for f in [adev, oadev, mdev] {
            assert_rel("m=1", f(&y, 0.5, 1).unwrap().deviation, direct, 1e-15);
        }
    }

    /// MDEV at m = 2 written out term by term from the SP 1065 formula, without running sums.
    #[test]
    fn mdev_matches_term_by_term_formula() {
        let y: Vec<f64> = (0..23).map(|i| f64::from((i * 37) % 11) - 5.0).collect();
        let mut x = vec![0.0];
        for v in &y {
            x.push(x.last().unwrap() + v);
        }
        for m in [1usize, 2, 3, 5, 8] {
            let nx = x.len();
            let outer = nx + 1 - 3 * m;
            let mut sum = 0.0;
            for j in 0..outer {
                let inner: f64 = (j..j + m)
                    .map(|i| x[i + 2 * m] - 2.0 * x[i + m] + x[i])
                    .sum();
                sum += inner * inner;
            }
            let want = (sum / (2.0 * (m as f64).powi(4) * outer as f64)).sqrt();
            let got = mdev(&y, 1.0, m).unwrap();
            assert_eq!(got.terms, outer);
            assert_rel(&format!("MDEV m={m}"), got.deviation, want, 1e-12);
        }
    }

    /// A 10 V series with nV noise: the offset must not eat the digits of the phase.
    #[test]
    fn raw_ten_volt_readings_give_the_same_deviations_as_offsets() {
        let offsets: Vec<f64> = (0..1000)
            .map(|i| f64::from((i * 7919) % 101) * 1e-9 - 50e-9)
            .collect();
        let raw: Vec<f64> = offsets.iter().map(|o| 10.0 + o).collect();
        let a = allan_table(&offsets, 10.0).unwrap();
        let b = allan_table(&raw, 10.0).unwrap();
        assert_eq!(a.len(), b.len());
        // 10 + o moves each value by δ ≤ ½ ulp(10) = 0.9e-15, and a deviation is a seminorm, so it
        // moves by at most the deviation of δ (≤ 2·0.9e-15). Accumulating the phase of the raw
        // 10 V values instead would leave errors of ulp(1e4) ≈ 2e-12.
        let tol = 4e-15;
        for (a, b) in a.iter().zip(&b) {
            assert!(
                (b.adev - a.adev).abs() <= tol,
                "m={} adev {} vs {}",
                a.m,
                b.adev,
                a.adev
            );
            assert!(
                (b.oadev - a.oadev).abs() <= tol,
                "m={} oadev {} vs {}",
                a.m,
                b.oadev,
                a.oadev
            );
            let md = a.mdev.zip(b.mdev).map_or(0.0, |(x, y)| (x - y).abs());
            assert!(md <= tol, "m={} mdev differs by {md}", a.m);
            assert_eq!(a.mdev.is_some(), b.mdev.is_some());
        }
    }

    #[test]
    fn white_noise_adev_falls_as_root_tau() {
        // A deterministic pseudo-random (xorshift) white series.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let y: Vec<f64> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let table = allan_table(&y, 1.0).unwrap();
        let one = table[0].oadev;
        let sixteen = table.iter().find(|r| r.m == 16).unwrap().oadev;
        // σ(16)/σ(1) = 1/4 for white FM; allow the statistical scatter of ≈ 4096/16 terms.
        let ratio = sixteen / one;
        assert!((0.2..0.3).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn rejects_bad_input() {
        let y = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(adev(&y, 1.0, 0), Err(StatsError::ZeroAveragingFactor));
        assert_eq!(
            oadev(&y, 0.0, 1),
            Err(StatsError::InvalidSpacing { tau0: 0.0 })
        );
        assert!(matches!(
            mdev(&y, f64::NAN, 1),
            Err(StatsError::InvalidSpacing { .. })
        ));
        assert_eq!(
            adev(&y, 1.0, 3),
            Err(StatsError::TooFewPoints { needed: 6, got: 5 })
        );
        assert_eq!(
            oadev(&y, 1.0, 3),
            Err(StatsError::TooFewPoints { needed: 6, got: 5 })
        );
        assert!(mdev(&y, 1.0, 2).is_ok());
        assert_eq!(
            mdev(&y, 1.0, 3),
            Err(StatsError::TooFewPoints { needed: 8, got: 5 })
        );
        assert_eq!(
            adev(&y, 1.0, usize::MAX),
            Err(StatsError::TooFewPoints {
                needed: usize::MAX,
                got: 5
            })
        );
        assert_eq!(
            allan_table(&[1.0], 1.0),
            Err(StatsError::TooFewPoints { needed: 2, got: 1 })
        );
        assert_eq!(
            allan_table(&[1.0, f64::NAN], 1.0),
            Err(StatsError::NonFinite {
                input: "y",
                index: 1
            })
        );
        assert!(matches!(
            adev(&[f64::MAX, -f64::MAX], 1.0, 1),
            Err(StatsError::Overflow { .. })
        ));
        assert!(matches!(
            adev(&[1.0, 2.0, 3.0, 4.0], f64::MAX, 2),
            Err(StatsError::Overflow { quantity: "tau" })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(
            y in prop::collection::vec(any::<f64>(), 0..40),
            tau0 in any::<f64>(),
            m in prop_oneof![0usize..20, Just(usize::MAX), Just(usize::MAX / 2 + 1)],
        ) {
            let points = [adev(&y, tau0, m), oadev(&y, tau0, m), mdev(&y, tau0, m)];
            for p in points.into_iter().flatten() {
                prop_assert!(p.deviation.is_finite() && p.deviation >= 0.0 && p.tau.is_finite());
            }
            if let Ok(table) = allan_table(&y, tau0) {
                for row in table {
                    prop_assert!(row.adev.is_finite() && row.oadev.is_finite());
                    prop_assert!(row.mdev.is_none_or(f64::is_finite));
                }
            }
        }

        #[test]
        fn m1_all_three_agree(y in prop::collection::vec(-1e3f64..1e3, 2..60)) {
            let a = adev(&y, 1.0, 1).unwrap().deviation;
            let o = oadev(&y, 1.0, 1).unwrap().deviation;
            let d = mdev(&y, 1.0, 1).unwrap().deviation;
            let tol = 1e-9 * (a + 1e-300);
            prop_assert!((a - o).abs() <= tol && (a - d).abs() <= tol, "{a} {o} {d}");
        }

        #[test]
        fn invariant_under_a_constant_offset(
            y in prop::collection::vec(-1.0f64..1.0, 4..80),
            c in -1e4f64..1e4,
        ) {
            let shifted: Vec<f64> = y.iter().map(|v| v + c).collect();
            let a = allan_table(&y, 1.0).unwrap();
            let b = allan_table(&shifted, 1.0).unwrap();
            // Rounding y + c moves each value by ≤ ε|c|; the deviations move by about as much.
            let tol = 8.0 * f64::EPSILON * (1.0 + c.abs());
            for (a, b) in a.iter().zip(&b) {
                prop_assert!((a.adev - b.adev).abs() <= tol, "adev {} vs {}", a.adev, b.adev);
                prop_assert!((a.oadev - b.oadev).abs() <= tol, "oadev {} vs {}", a.oadev, b.oadev);
                let md = a.mdev.zip(b.mdev).map_or(0.0, |(x, y)| (x - y).abs());
                prop_assert!(md <= tol, "mdev differs by {md}");
            }
        }
    }
}
