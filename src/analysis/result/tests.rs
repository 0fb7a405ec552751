use std::time::Duration;

use super::*;
use crate::config::CalibrationUncertainty;

const DAY: i64 = 86_400_000_000;
/// 2026-12-01T00:00:00Z, µs.
const T0: i64 = 1_796_083_200_000_000;

fn at(day: i64, value: f64) -> TimedValue {
    TimedValue {
        utc_us: T0 + day * DAY,
        value,
    }
}

fn temperature_correction() -> Correction {
    Correction {
        quantity: "temperature".into(),
        instrument: "env".into(),
        coefficient: 0.2e-6,
        u: 0.05e-6,
        reference: 23.0,
        relative: false,
        u_quantity: Some(0.1),
        within: Duration::from_secs(600),
        name_zh: "温度".into(),
    }
}

fn temperatures(values: &[f64]) -> Vec<EnvSeries> {
    vec![EnvSeries {
        quantity: "temperature".into(),
        instrument: "env".into(),
        unit: "°C".into(),
        // Two minutes after each reading: well within `within`.
        readings: values
            .iter()
            .enumerate()
            .map(|(i, &v)| TimedValue {
                utc_us: T0 + i as i64 * DAY + 120_000_000,
                value: v,
            })
            .collect(),
    }]
}

fn components() -> Vec<UncertaintyComponent> {
    vec![
        UncertaintyComponent {
            name: "DVM calibration".into(),
            name_zh: "数字电压表校准".into(),
            sensitivity: 1.0,
            source: ComponentSource::Calibration {
                instrument: "dvm".into(),
                certificate: "C-1".into(),
                uncertainty: CalibrationUncertainty {
                    expanded: 0.2e-6,
                    k: 2.0,
                    relative: true,
                    dof: 50.0,
                },
            },
        },
        UncertaintyComponent {
            name: "DVM resolution".into(),
            name_zh: "分辨力".into(),
            sensitivity: 1.0,
            source: ComponentSource::Stated {
                distribution: Distribution::Rectangular,
                value: 0.6e-6,
                dof: f64::INFINITY,
            },
        },
        UncertaintyComponent {
            name: "thermal EMF".into(),
            name_zh: "热电势".into(),
            sensitivity: 0.5,
            source: ComponentSource::Stated {
                distribution: Distribution::UShaped,
                value: 0.2e-6,
                dof: f64::INFINITY,
            },
        },
    ]
}

#[track_caller]
fn close(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: got {got:e}, want {want:e}"
    );
}

/// The budget worked by hand (µV unless stated; nominal 10 V, base value 10.000 020 V).
///
/// Readings on days 0..4, temperatures 23.5, 22.5, 23.5, 22.5, 23.0 °C; c = 0.2 µV/K about 23 °C,
/// so the corrections are +0.1, −0.1, +0.1, −0.1, 0 and raw offsets 1.1, −1.1, 2.1, −2.1, 0 give
/// corrected offsets d = 1, −1, 2, −2, 0.
///
/// Drift: t̄ = 2, S_tt = 10, S_ty = (−2)(1) + (−1)(−1) + 0 + (1)(−2) + 0 = −3, b = −0.3 µV/day;
/// residuals 0.4, −1.3, 2, −1.7, 0.6, SS = 9.1, s_res² = 9.1/3, u(b) = √(9.1/30) = 0.5508;
/// |b|/u(b) = 0.545 < t_0.975(3) = 3.182: not significant, so the value is the mean 10.000 020 V
/// and Type A is s/√n: s² = (1 + 1 + 4 + 4 + 0)/4 = 2.5, u_A = √(2.5/5) = 0.707 107, ν = 4.
///
/// | component         | value            | divisor | u         | c       | |c·u|     | ν  |
/// | Type A            | s = 1.581 139    | √5      | 0.707 107 | 1       | 0.707 107 | 4  |
/// | DVM calibration   | 0.2e-6·10.00002 V = 2.000 004 | 2 | 1.000 002 | 1 | 1.000 002 | 50 |
/// | DVM resolution    | a = 0.6, rect.   | √3      | 0.346 410 | 1       | 0.346 410 | ∞  |
/// | thermal EMF       | a = 0.2, U-shape | √2      | 0.141 421 | 0.5     | 0.070 711 | ∞  |
/// | temp. coefficient | 0.05 µV/K        | 1       | 0.05      | 0.4 K   | 0.02      | ∞  |
///   (0.4 K = mean |x − 23| = (0.5 + 0.5 + 0.5 + 0.5 + 0)/5)
/// | temp. measurement | 0.1 K            | 1       | 0.1       | 0.2 µV/K | 0.02     | ∞  |
///
/// u_c² = 0.5 + 1.000 004 + 0.12 + 0.005 + 0.0004 + 0.0004 = 1.625 804 → u_c = 1.275 070 µV;
/// ν_eff = u_c⁴ / (0.707 107⁴/4 + 1.000 002⁴/50) = 2.643 239 / 0.082 500 = 32.04 → ν = 32;
/// k = t_0.975(32) = 2.036 933; U = k·u_c = 2.597 26 µV.
#[test]
fn the_budget_matches_a_hand_worked_example() {
    let base = 10.000_020;
    let readings: Vec<TimedValue> = [1.1, -1.1, 2.1, -2.1, 0.0]
        .iter()
        .enumerate()
        .map(|(i, d)| at(i as i64, base + d * 1e-6))
        .collect();
    let env = temperatures(&[23.5, 22.5, 23.5, 22.5, 23.0]);
    let corrections = [temperature_correction()];
    let components = components();
    let r = lab_result(&LabInput {
        readings: &readings,
        env: &env,
        corrections: &corrections,
        components: &components,
        nominal: 10.0,
        unit: "V",
    })
    .unwrap();

    assert_eq!(r.n, 5);
    assert_eq!(r.flagged, 0);
    assert_eq!(r.basis, ValueBasis::Mean);
    assert_eq!(r.mean_date_utc_us, T0 + 2 * DAY);
    close("value", r.value, base, 1e-15);
    let d = r.drift.as_ref().unwrap();
    close("b", d.slope_per_day, -0.3e-6, 1e-8);
    close(
        "u(b)",
        d.u_slope_per_day,
        (9.1f64 / 30.0).sqrt() * 1e-6,
        1e-8,
    );
    close("t(3)", d.t_critical, 3.182_446, 2e-7);
    assert!(!d.significant);
    let corrected: Vec<f64> = r.readings.iter().map(|x| x.corrected.unwrap()).collect();
    for (c, want) in corrected.iter().zip([1.0, -1.0, 2.0, -2.0, 0.0]) {
        assert!((c - base - want * 1e-6).abs() < 1e-12, "{c}");
    }

    let b = &r.budget;
    let names: Vec<&str> = b.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Repeatability (experimental standard deviation of the mean)",
            "DVM calibration",
            "DVM resolution",
            "thermal EMF",
            "temperature coefficient",
            "temperature measurement (env)",
        ]
    );
    let want_u = [
        0.707_106_781e-6,
        1.000_002e-6,
        0.346_410_162e-6,
        0.141_421_356e-6,
        0.05e-6,
        0.1,
    ];
    let want_c = [1.0, 1.0, 1.0, 0.5, 0.4, 0.2e-6];
    let want_contribution = [
        0.707_106_781e-6,
        1.000_002e-6,
        0.346_410_162e-6,
        0.070_710_678e-6,
        0.02e-6,
        0.02e-6,
    ];
    let want_dof = [
        4.0,
        50.0,
        f64::INFINITY,
        f64::INFINITY,
        f64::INFINITY,
        f64::INFINITY,
    ];
    for (i, row) in b.rows.iter().enumerate() {
        close(
            &format!("u[{i}]"),
            row.standard_uncertainty,
            want_u[i],
            1e-8,
        );
        close(&format!("c[{i}]"), row.sensitivity, want_c[i], 1e-8);
        close(
            &format!("|cu|[{i}]"),
            row.contribution,
            want_contribution[i],
            1e-8,
        );
        assert_eq!(row.dof, want_dof[i], "ν[{i}]");
    }
    assert_eq!(b.rows[0].kind, ComponentKind::A);
    assert_eq!(
        b.rows[1].distribution,
        Some(Distribution::Normal { k: 2.0 })
    );
    close(
        "share of the calibration",
        b.rows[1].share,
        1.000_004 / 1.625_804,
        1e-6,
    );
    close("u_c", b.combined, 1.625_804f64.sqrt() * 1e-6, 1e-8);
    close("ν_eff", b.dof_eff, 32.039_194, 1e-7);
    assert_eq!(b.dof_table, 32.0);
    close("k", b.k, 2.036_933, 2e-7);
    close(
        "U",
        r.expanded(),
        2.036_933 * 1.625_804f64.sqrt() * 1e-6,
        2e-7,
    );

    // Residuals about the (insignificant) line, with the temperature beside each reading.
    close("r[2]", r.residuals[2].residual, 2.0e-6, 1e-6);
    assert_eq!(r.residuals[0].temperature, Some(23.5));
    assert_eq!(r.band.len(), 65);
    assert_eq!(r.band[0].utc_us, T0);
    assert_eq!(r.band[64].utc_us, T0 + 4 * DAY);
}

#[test]
fn a_significant_drift_gives_the_value_at_the_mean_date_from_the_fit() {
    // 1 µV/day with ±0.1 µV of scatter: |b|/u(b) ≈ 20 ≫ t_0.975(3).
    let noise = [0.1, -0.1, 0.0, 0.1, -0.1];
    let readings: Vec<TimedValue> = noise
        .iter()
        .enumerate()
        .map(|(i, e)| at(i as i64, 10.0 + (i as f64 + e) * 1e-6))
        .collect();
    let components = components();
    let r = lab_result(&LabInput {
        readings: &readings,
        env: &[],
        corrections: &[],
        components: &components,
        nominal: 10.0,
        unit: "V",
    })
    .unwrap();
    let d = r.drift.as_ref().unwrap();
    assert!(d.significant, "{d:?}");
    assert_eq!(r.basis, ValueBasis::DriftFit);
    close("b", d.slope_per_day, 1e-6, 0.05);
    // The fitted value at the mean date is the mean; its Type A uncertainty is s_res/√n, ν = n − 2.
    close("value", r.value, r.mean, 1e-15);
    let a = &r.budget.rows[0];
    assert_eq!(a.dof, 3.0);
    close(
        "u_A",
        a.standard_uncertainty,
        d.residual_sd / 5f64.sqrt(),
        1e-12,
    );
    let mid = d.at(r.mean_date_utc_us);
    close("u(ŷ(t̄))", mid.u, a.standard_uncertainty, 1e-9);
    close("band", mid.upper - mid.value, d.t_critical * mid.u, 1e-7);
    // s of the readings themselves is dominated by the drift, and is not what is used.
    assert!(r.std_dev > 10.0 * d.residual_sd);
    // No temperature series: the residuals have none.
    assert!(r.residuals.iter().all(|x| x.temperature.is_none()));
}

#[test]
fn readings_without_environment_are_flagged_and_left_out() {
    // The last reading is a day from any temperature reading.
    let readings = [
        at(0, 10.000_001),
        at(1, 10.000_002),
        at(2, 10.000_003),
        at(7, 11.0),
    ];
    let env = temperatures(&[23.0, 23.0, 23.0]);
    let corrections = [temperature_correction()];
    let r = lab_result(&LabInput {
        readings: &readings,
        env: &env,
        corrections: &corrections,
        components: &[],
        nominal: 10.0,
        unit: "V",
    })
    .unwrap();
    assert_eq!((r.n, r.flagged), (3, 1));
    assert!(r.readings[3].flagged());
    assert_eq!(r.readings[3].raw, 11.0);
    close("mean", r.mean, 10.000_002, 1e-15);
    assert_eq!(r.residuals.len(), 3);
}

#[test]
fn bad_windows_are_typed_errors_never_nan() {
    let corrections = [temperature_correction()];
    let input = |readings: &'static [TimedValue], env: &'static [EnvSeries]| LabInput {
        readings,
        env,
        corrections: &[],
        components: &[],
        nominal: 10.0,
        unit: "V",
    };
    assert_eq!(lab_result(&input(&[], &[])), Err(AnalysisError::NoReadings));

    let readings = vec![at(0, 10.0), at(1, 10.0), at(2, 10.0)];
    let far = temperatures(&[]);
    let mut far = far;
    far[0].readings.push(at(30, 23.0));
    let all_flagged = LabInput {
        readings: &readings,
        env: &far,
        corrections: &corrections,
        components: &[],
        nominal: 10.0,
        unit: "V",
    };
    assert_eq!(
        lab_result(&all_flagged),
        Err(AnalysisError::AllFlagged { flagged: 3 })
    );

    let empty = temperatures(&[]);
    let no_env = LabInput {
        env: &empty,
        ..all_flagged
    };
    assert_eq!(
        lab_result(&no_env),
        Err(AnalysisError::NoEnvironment {
            quantity: "temperature".into(),
            instrument: "env".into()
        })
    );

    let one = [at(0, 10.0)];
    assert_eq!(
        lab_result(&LabInput {
            readings: &one,
            ..input(&[], &[])
        }),
        Err(AnalysisError::TooFewReadings { needed: 2, got: 1 })
    );

    // Identical readings and no Type B component: no uncertainty at all is refused.
    assert!(matches!(
        lab_result(&LabInput {
            readings: &readings,
            ..input(&[], &[])
        }),
        Err(AnalysisError::Budget(_))
    ));

    let nan = [at(0, 10.0), at(1, f64::NAN)];
    assert_eq!(
        lab_result(&LabInput {
            readings: &nan,
            ..input(&[], &[])
        }),
        Err(AnalysisError::NonFiniteReading { index: 1 })
    );
}

#[test]
fn readings_at_one_instant_have_no_drift_but_a_mean() {
    let readings = [at(0, 10.000_001), at(0, 10.000_002), at(0, 10.000_003)];
    let r = lab_result(&LabInput {
        readings: &readings,
        env: &[],
        corrections: &[],
        components: &[],
        nominal: 10.0,
        unit: "V",
    })
    .unwrap();
    assert!(r.drift.is_none() && r.band.is_empty());
    assert_eq!(r.basis, ValueBasis::Mean);
    close("u_A", r.combined(), 1e-6 / 3f64.sqrt(), 1e-9);
}

mod never_nan {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_window_gives_a_finite_result_or_a_typed_error(
            points in prop::collection::vec((0i64..1000, -1e3f64..1e3), 0..30),
            temps in prop::collection::vec((0i64..1000, 15f64..30.0), 0..10),
        ) {
            let readings: Vec<TimedValue> = points
                .iter()
                .map(|&(m, v)| TimedValue { utc_us: T0 + m * 60_000_000, value: 10.0 + v * 1e-9 })
                .collect();
            let env = vec![EnvSeries {
                quantity: "temperature".into(),
                instrument: "env".into(),
                unit: "°C".into(),
                readings: temps
                    .iter()
                    .map(|&(m, v)| TimedValue { utc_us: T0 + m * 60_000_000, value: v })
                    .collect(),
            }];
            let corrections = [temperature_correction()];
            let components = components();
            let input = LabInput {
                readings: &readings,
                env: &env,
                corrections: &corrections,
                components: &components,
                nominal: 10.0,
                unit: "V",
            };
            if let Ok(r) = lab_result(&input) {
                let b = &r.budget;
                prop_assert!(r.value.is_finite() && b.combined.is_finite() && b.combined > 0.0);
                prop_assert!(b.k.is_finite() && b.expanded.is_finite() && !b.dof_eff.is_nan());
                prop_assert!(b.rows.iter().all(|x| x.share.is_finite()));
                prop_assert!(r.band.iter().all(|p| p.lower.is_finite() && p.upper.is_finite()));
                prop_assert_eq!(r.n + r.flagged, readings.len());
            }
        }
    }
}

/// The demo lab's config (two corrections from its PTU300, a calibration and a resolution
/// component) gives a budget on a day of demo-like readings.
#[test]
fn the_demo_labs_budget_computes() {
    let demo = crate::config::Config::demo(std::path::Path::new("/nonexistent/demo")).unwrap();
    let minute = 60_000_000;
    let readings: Vec<TimedValue> = (0..240)
        .map(|i| TimedValue {
            utc_us: T0 + i * 6 * minute,
            value: 10.0 + 23.4e-6 + f64::from((i % 7) as i32 - 3) * 0.05e-6,
        })
        .collect();
    let series = |quantity: &str, unit: &str, f: &dyn Fn(i64) -> f64| EnvSeries {
        quantity: quantity.into(),
        instrument: "env".into(),
        unit: unit.into(),
        readings: (0..240)
            .map(|i| TimedValue {
                utc_us: T0 + i * 6 * minute + minute,
                value: f(i),
            })
            .collect(),
    };
    let env = [
        series("temperature", "°C", &|i| {
            23.0 + 0.3 * (i as f64 / 38.0).sin()
        }),
        series("pressure", "hPa", &|i| 1010.0 + (i % 10) as f64 * 0.1),
        series("humidity", "%RH", &|_| 45.0),
    ];
    let r = lab_result(&LabInput {
        readings: &readings,
        env: &env,
        corrections: &demo.corrections,
        components: &demo.uncertainty,
        nominal: demo.artefact.nominal,
        unit: "V",
    })
    .unwrap();
    assert_eq!((r.n, r.flagged), (240, 0));
    let names: Vec<&str> = r.budget.rows.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(names.contains(&"pressure measurement (env)"), "{names:?}");
    // The DVM's 0.2 µV/V at k = 2 dominates: u ≈ 1 µV, k = 1.96–2.0.
    assert!(
        r.combined() > 1.0e-6 && r.combined() < 1.1e-6,
        "{}",
        r.combined()
    );
    assert!(r.budget.k > 1.95 && r.budget.k < 2.01, "{}", r.budget.k);
    assert!(r.residuals.iter().all(|x| x.temperature.is_some()));
}
