//! `tsagent analyze`: every `--json` field against certified values (NIST StRD, NBS14, the
//! synthetic drift vector), errors that name the file, row and column, and the same statistics on
//! the log of a real `tsagent measure` on the simulated lab.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("stats-vectors.json")).unwrap()).unwrap()
}

fn strd() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("strd-lls.json")).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        v => v.as_f64().unwrap(),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

/// Writes a CSV of `columns` (Rust's `{}` for f64 is the shortest text that reads back exactly).
fn csv(dir: &Path, name: &str, columns: &[(&str, &[f64])]) -> PathBuf {
    let mut text = columns.iter().map(|c| c.0).collect::<Vec<_>>().join(",");
    text.push('\n');
    for i in 0..columns[0].1.len() {
        let row: Vec<String> = columns.iter().map(|c| format!("{}", c.1[i])).collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `tsagent analyze ARGS --json`, expecting success, and parses its output.
fn json(args: &[&str]) -> Value {
    let out = tsagent()
        .arg("analyze")
        .args(args)
        .arg("--json")
        .timeout(PATIENCE)
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[track_caller]
fn rel(what: &str, got: &Value, want: f64, tol: f64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    let err = if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    };
    assert!(
        err <= tol,
        "{what}: got {got:e}, want {want:e} (relative {err:e})"
    );
}

#[test]
fn summary_json_matches_nist_numacc() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectors();
    let numacc = |first: f64, low: f64, high: f64| -> Vec<f64> {
        let mut d = vec![first];
        for _ in 0..500 {
            d.extend([low, high]);
        }
        d
    };
    let sets: Vec<(&str, Vec<f64>, f64, f64, f64)> = vec![
        (
            "NumAcc1",
            floats(&v["nist_strd_univariate"]["NumAcc1"]["data"]),
            f(&v["nist_strd_univariate"]["NumAcc1"]["mean"]),
            f(&v["nist_strd_univariate"]["NumAcc1"]["sd"]),
            0.0,
        ),
        // NumAcc2/3/4 are defined by their generators; certified mean and sd are exact decimals,
        // and the doubles nearest the decimal inputs allow ~1e-8 relative on the sd (NumAcc4).
        ("NumAcc2", numacc(1.2, 1.1, 1.3), 1.2, 0.1, 1e-13),
        (
            "NumAcc3",
            numacc(1000000.2, 1000000.1, 1000000.3),
            1000000.2,
            0.1,
            1e-9,
        ),
        (
            "NumAcc4",
            numacc(10000000.2, 10000000.1, 10000000.3),
            10000000.2,
            0.1,
            1e-8,
        ),
    ];
    for (name, values, mean, sd, tol) in sets {
        let path = csv(dir.path(), &format!("{name}.csv"), &[("y", &values)]);
        let out = json(&["summary", "--csv", path.to_str().unwrap(), "--column", "y"]);
        assert_eq!(keys(&out), ["dof", "mean", "n", "s", "u_mean"], "{name}");
        let n = values.len();
        assert_eq!(out["n"], n, "{name}");
        assert_eq!(out["dof"], n - 1, "{name}");
        rel(&format!("{name} mean"), &out["mean"], mean, 1e-15);
        rel(&format!("{name} s"), &out["s"], sd, tol);
        rel(
            &format!("{name} u_mean"),
            &out["u_mean"],
            sd / (n as f64).sqrt(),
            tol.max(1e-15),
        );
    }
}

#[test]
fn fit_json_matches_norris_and_the_nist_multiple_regressions() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectors();
    let norris = &v["nist_strd_norris"];
    let (x, y) = (floats(&norris["x"]), floats(&norris["y"]));
    let path = csv(dir.path(), "norris.csv", &[("x", &x), ("y", &y)]);
    let out = json(&[
        "fit",
        "--csv",
        path.to_str().unwrap(),
        "--y",
        "y",
        "--x",
        "x",
        "--predict",
        "0",
    ]);
    assert_eq!(
        keys(&out),
        [
            "coefficients",
            "covariance",
            "dof",
            "predictions",
            "s_residual"
        ]
    );
    let c = &norris["certified"];
    assert_eq!(out["coefficients"][0]["name"], "intercept");
    assert_eq!(out["coefficients"][1]["name"], "x");
    assert_eq!(keys(&out["coefficients"][0]), ["name", "u", "value"]);
    rel("B0", &out["coefficients"][0]["value"], f(&c["B0"]), 1e-12);
    rel("B1", &out["coefficients"][1]["value"], f(&c["B1"]), 1e-13);
    rel("sd B0", &out["coefficients"][0]["u"], f(&c["sd_B0"]), 1e-12);
    rel("sd B1", &out["coefficients"][1]["u"], f(&c["sd_B1"]), 1e-12);
    rel("s", &out["s_residual"], f(&c["residual_sd"]), 1e-12);
    assert_eq!(out["dof"], 34);
    // cov(B0, B0) = u(B0)², and the prediction at x = 0 is the intercept with its u.
    rel(
        "cov00",
        &out["covariance"][0][0],
        f(&c["sd_B0"]).powi(2),
        1e-12,
    );
    assert_eq!(out["covariance"][0][1], out["covariance"][1][0]);
    let p = &out["predictions"][0];
    assert_eq!(keys(p), ["u", "x", "y"]);
    assert_eq!(p["x"], serde_json::json!([0.0]));
    rel("ŷ(0)", &p["y"], f(&c["B0"]), 1e-12);
    rel("u(ŷ(0))", &p["u"], f(&c["sd_B0"]), 1e-12);

    // Longley: six nearly collinear regressors, by name.
    let s = strd();
    let l = &s["Longley"];
    let xs: Vec<Vec<f64>> = (0..6).map(|j| floats(&l["x"][j])).collect();
    let ly = floats(&l["y"]);
    let names = ["x1", "x2", "x3", "x4", "x5", "x6"];
    let mut cols: Vec<(&str, &[f64])> = vec![("y", &ly)];
    cols.extend(names.iter().zip(&xs).map(|(n, x)| (*n, x.as_slice())));
    let path = csv(dir.path(), "longley.csv", &cols);
    let mut args = vec!["fit", "--csv", path.to_str().unwrap(), "--y", "y"];
    for n in &names {
        args.extend(["--x", n]);
    }
    let out = json(&args);
    let b = floats(&l["b"]);
    let sd = floats(&l["sd"]);
    for j in 0..7 {
        let c = &out["coefficients"][j];
        assert_eq!(c["name"], if j == 0 { "intercept" } else { names[j - 1] });
        rel(&format!("Longley B{j}"), &c["value"], b[j], 1e-11);
        rel(&format!("Longley sd B{j}"), &c["u"], sd[j], 1e-11);
    }
    rel("Longley s", &out["s_residual"], f(&l["residual_sd"]), 1e-12);
    assert_eq!(out["dof"], 9);
    assert_eq!(out["covariance"].as_array().unwrap().len(), 7);

    // Wampler1 (generator: y = 1 + x + … + x⁵, x = 0..20): certified coefficients exactly 1.
    // Wampler4: noisy, certified sd and residual sd to 15 digits.
    let xw: Vec<f64> = (0..=20).map(f64::from).collect();
    let powers: Vec<Vec<f64>> = (1..=5)
        .map(|k| xw.iter().map(|x| x.powi(k)).collect())
        .collect();
    let w1: Vec<f64> = xw.iter().map(|x| (0..6).map(|k| x.powi(k)).sum()).collect();
    let w4 = floats(&s["Wampler4"]["y"]);
    for (name, yv) in [("Wampler1", &w1), ("Wampler4", &w4)] {
        let pn = ["x1", "x2", "x3", "x4", "x5"];
        let mut cols: Vec<(&str, &[f64])> = vec![("y", yv)];
        cols.extend(pn.iter().zip(&powers).map(|(n, x)| (*n, x.as_slice())));
        let path = csv(dir.path(), &format!("{name}.csv"), &cols);
        let mut args = vec!["fit", "--csv", path.to_str().unwrap(), "--y", "y"];
        for n in &pn {
            args.extend(["--x", n]);
        }
        let out = json(&args);
        for j in 0..6 {
            rel(
                &format!("{name} B{j}"),
                &out["coefficients"][j]["value"],
                1.0,
                1e-7,
            );
        }
        if name == "Wampler4" {
            let sd = floats(&s["Wampler4"]["sd"]);
            for j in 0..6 {
                rel(
                    &format!("W4 sd B{j}"),
                    &out["coefficients"][j]["u"],
                    sd[j],
                    1e-12,
                );
            }
            rel(
                "W4 s",
                &out["s_residual"],
                f(&s["Wampler4"]["residual_sd"]),
                1e-12,
            );
        } else {
            assert!(out["s_residual"].as_f64().unwrap() < 1e-6);
        }
    }
}

/// tests/data/drift-synthetic.txt (copied from shared/data): the weighted drift fit and the
/// predictions at the participants' mean dates, as printed there.
#[test]
fn weighted_fit_with_predictions_matches_drift_synthetic() {
    let text = std::fs::read_to_string(data("drift-synthetic.txt")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| t.parse::<f64>().is_ok())
        })
        .take_while(|l| l.split_whitespace().count() == 3)
        .map(|l| l.split_whitespace().map(|s| s.parse().unwrap()).collect())
        .collect();
    let col = |j: usize| rows.iter().map(|r| r[j]).collect::<Vec<f64>>();
    let dir = tempfile::tempdir().unwrap();
    let path = csv(
        dir.path(),
        "drift.csv",
        &[("t", &col(0)), ("y", &col(1)), ("u", &col(2))],
    );
    let out = json(&[
        "fit",
        "--csv",
        path.to_str().unwrap(),
        "--y",
        "y",
        "--x",
        "t",
        "--weights",
        "u",
        "--predict",
        "45,135",
        "--predict",
        "225,315",
    ]);
    let b = &out["coefficients"][1];
    assert!((b["value"].as_f64().unwrap() - 0.00226667).abs() < 5e-9);
    assert!((b["u"].as_f64().unwrap() - 0.00017568).abs() < 5e-9);
    // Weighted: s_residual is the Birge ratio.
    assert!((out["s_residual"].as_f64().unwrap() - 0.2633).abs() < 5e-5);
    assert_eq!(out["dof"], 3);
    let want = [
        (45.0, 1.312000, 0.032596),
        (135.0, 1.516000, 0.023717),
        (225.0, 1.720000, 0.023717),
        (315.0, 1.924000, 0.032596),
    ];
    let preds = out["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 4);
    for (p, (t, y, u)) in preds.iter().zip(want) {
        assert_eq!(p["x"], serde_json::json!([t]));
        assert!((p["y"].as_f64().unwrap() - y).abs() < 5e-7, "{p}");
        assert!((p["u"].as_f64().unwrap() - u).abs() < 5e-7, "{p}");
    }
}

/// NBS14 10-point (vectors file) and 1000-point (generator, NIST SP 1065 Table 31).
#[test]
fn allan_json_matches_nbs14() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectors();
    let nbs = &v["nbs14_10pt"];
    let y = floats(&nbs["fractional_frequency"]);
    let path = csv(dir.path(), "nbs14.csv", &[("y", &y)]);
    let tau0 = f(&nbs["tau0"]).to_string();
    let out = json(&[
        "allan",
        "--csv",
        path.to_str().unwrap(),
        "--column",
        "y",
        "--tau0",
        &tau0,
        "--m",
        "1,2",
    ]);
    assert_eq!(keys(&out), ["points"]);
    let tol = f(&nbs["tolerance_rel"]);
    for (i, m) in ["1", "2"].iter().enumerate() {
        let p = &out["points"][i];
        assert_eq!(keys(p), ["adev", "m", "mdev", "n", "oadev", "tau"]);
        assert_eq!(p["m"].to_string(), *m);
        for kind in ["adev", "oadev", "mdev"] {
            rel(
                &format!("{kind} m={m}"),
                &p[kind],
                f(&nbs["published"][kind][m]),
                tol,
            );
        }
    }
    // N = 9: OADEV terms N + 1 − 2m.
    assert_eq!(out["points"][0]["n"], 8);
    assert_eq!(out["points"][1]["n"], 6);
    // Octaves by default: m = 1, 2, 4, MDEV undefined at 4 (3m > N + 1).
    let out = json(&[
        "allan",
        "--csv",
        path.to_str().unwrap(),
        "--column",
        "y",
        "--tau0",
        &tau0,
    ]);
    let ms: Vec<u64> = out["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["m"].as_u64().unwrap())
        .collect();
    assert_eq!(ms, [1, 2, 4]);
    assert!(out["points"][2]["mdev"].is_null());

    let mut n: u64 = 1_234_567_890;
    let big: Vec<f64> = (0..1000)
        .map(|_| {
            let y = n as f64 / 2_147_483_647.0;
            n = n * 16807 % 2_147_483_647;
            y
        })
        .collect();
    let path = csv(dir.path(), "nbs14-1000.csv", &[("y", &big)]);
    let out = json(&[
        "allan",
        "--csv",
        path.to_str().unwrap(),
        "--column",
        "y",
        "--tau0",
        "1",
        "--m",
        "1,10,100",
    ]);
    let published = [
        (1.0f64, 2.922319e-01f64, 2.922319e-01f64, 2.922319e-01f64),
        (10.0, 9.965736e-02, 9.159953e-02, 6.172376e-02),
        (100.0, 3.897804e-02, 3.241343e-02, 2.170921e-02),
    ];
    for (p, (tau, a, o, m)) in out["points"].as_array().unwrap().iter().zip(published) {
        assert_eq!(p["tau"].as_f64().unwrap(), tau);
        // Seven significant digits printed: half a unit in the last.
        for (kind, want) in [("adev", a), ("oadev", o), ("mdev", m)] {
            let half = 0.5 * 10f64.powf(want.log10().floor() - 6.0);
            let got = p[kind].as_f64().unwrap();
            assert!(
                (got - want).abs() <= half,
                "{kind} τ={tau}: {got:e} vs {want:e}"
            );
        }
    }
}

/// Runs `tsagent analyze ARGS` expecting failure with the usage exit code; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = tsagent()
        .arg("analyze")
        .args(args)
        .timeout(PATIENCE)
        .assert()
        .code(2);
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

#[test]
fn bad_input_is_named_by_file_row_and_column() {
    // (file, its text, the arguments after `analyze`, what stderr must say); `{p}` is the file.
    const CASES: &[(&str, &str, &str, &str)] = &[
        (
            "text.csv",
            "t,y\n1,2\n2,abc\n",
            "summary --column y",
            "{p}:3: column `y`: `abc` is not a number",
        ),
        (
            "text.csv",
            "t,y\n1,2\n2,abc\n",
            "summary --column v",
            "{p}: no column `v`; the columns are `t`, `y`",
        ),
        (
            "empty.csv",
            "",
            "summary --column y",
            "{p}: empty file: no header row",
        ),
        (
            "nan.csv",
            "t,y\n1,2\n2,nan\n",
            "summary --column y",
            "{p}:3: column `y`: `nan` is not a finite number",
        ),
        (
            "inf.csv",
            "t,y\n1,inf\n2,3\n",
            "fit --y t --x y",
            "{p}:2: column `y`: `inf` is not a finite number",
        ),
        (
            "short.csv",
            "t,y,z\n1,2,5\n2,3,1\n4,5,0\n",
            "fit --y y --x t --x z",
            "{p}: 3 rows, too few for a fit with 3 parameters: at least 4 needed",
        ),
        (
            "header-only.csv",
            "t,y\n",
            "summary --column y",
            "{p}: 0 rows, too few for the summary of `y`: at least 2 needed",
        ),
        (
            "twice.csv",
            "t,y,t2\n1,2,1\n2,3,2\n3,5,3\n4,4,4\n",
            "fit --y y --x t --x t2",
            "{p}: singular design: column `t2` is constant or a linear combination",
        ),
        (
            "weights.csv",
            "t,y,u\n1,2,0.1\n2,3,0\n3,5,0.1\n",
            "fit --y y --x t --weights u",
            "{p}: line 3: column `u`: standard uncertainty 0 is not positive",
        ),
        (
            "negative.csv",
            "t,y,u\n1,2,0.1\n2,3,0.1\n\n3,5,-0.2\n",
            "fit --y y --x t --weights u",
            "{p}: line 5: column `u`: standard uncertainty -0.2 is not positive",
        ),
        (
            "ragged.csv",
            "t,y\n1,2\n2\n",
            "summary --column y",
            "{p}:3: 1 fields, but the header has 2",
        ),
        (
            "freq.csv",
            "y\n1\n2\n3\n1\n",
            "allan --column y --tau0 0",
            "{p}: tau0 must be finite and positive, got 0",
        ),
        (
            "freq.csv",
            "y\n1\n2\n3\n1\n",
            "allan --column y --tau0 1 --m 0",
            "{p}: the averaging factor m must be at least 1",
        ),
        (
            "freq.csv",
            "y\n1\n2\n3\n1\n",
            "allan --column y --tau0 1 --m 3",
            "{p}: 4 rows, too few for the Allan deviations of `y` at m = 3: at least 6 needed",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, text, args, want) in CASES {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let p = p.to_str().unwrap();
        let mut args: Vec<&str> = args.split(' ').collect();
        args.splice(1..1, ["--csv", p]);
        let err = fails(&args);
        let want = want.replace("{p}", p);
        assert!(err.contains(&want), "{name}: want {want:?} in:\n{err}");
    }
    let missing = dir.path().join("missing.csv");
    let err = fails(&[
        "summary",
        "--csv",
        missing.to_str().unwrap(),
        "--column",
        "y",
    ]);
    let want = format!("cannot read {}", missing.display());
    assert!(err.contains(&want), "want {want:?} in:\n{err}");
}

const LAB: &str = r#"
[lab]
id = "L"
name = "l"
[artefact]
id = "A"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[storage]
db = "lab.db"
[[instrument]]
name = "dvm"
resource = "SIM::PTY::INSTR"
[[instrument]]
name = "env"
resource = "SIM::PTY::INSTR"
driver = "vaisala-ptu300"
[[sequence]]
name = "s"
[[sequence.step]]
read = { instrument = "dvm", count = 12, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "env", op = "env_read", count = 2 }
"#;

/// The log of real runs on the simulated lab: the selection, the columns, the mixed-series
/// refusal, and the same numbers as the CSV that `readings --csv` exports.
#[test]
fn analyzes_the_log_of_a_real_measure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(&config, LAB).unwrap();
    for _ in 0..2 {
        tsagent()
            .args(["measure", "--sequence", "s", "--config"])
            .arg(&config)
            .timeout(PATIENCE)
            .assert()
            .success();
    }
    let cfg = config.to_str().unwrap();
    let err = fails(&["summary", "--config", cfg, "--column", "value"]);
    assert!(
        err.contains("the selection mixes series: dvm/voltage (V), env/"),
        "{err}"
    );

    let out = json(&[
        "summary",
        "--config",
        cfg,
        "--quantity",
        "voltage",
        "--sequence",
        "s",
        "--column",
        "value",
    ]);
    assert_eq!(out["n"], 24);
    let mean = out["mean"].as_f64().unwrap();
    assert!((mean - 10.0).abs() < 1e-3, "{mean}");
    // On the log the column is the reading's value unless named.
    let unnamed = json(&[
        "summary",
        "--config",
        cfg,
        "--quantity",
        "voltage",
        "--sequence",
        "s",
    ]);
    assert_eq!(unnamed, out);
    let one_run = json(&[
        "summary",
        "--db",
        dir.path().join("lab.db").to_str().unwrap(),
        "--quantity",
        "voltage",
        "--run",
        "1",
        "--column",
        "value",
    ]);
    assert_eq!(one_run["n"], 12);
    let none = fails(&[
        "summary",
        "--config",
        cfg,
        "--quantity",
        "voltage",
        "--official",
        "--column",
        "value",
    ]);
    assert!(
        none.contains(
            "[quantity voltage, official runs]: 0 rows, too few for the summary of `value`: at least 2 needed"
        ),
        "{none}"
    );

    // A drift fit on days and on Unix seconds: the same line, slopes per day and per second.
    let by_days = json(&[
        "fit",
        "--config",
        cfg,
        "--quantity",
        "voltage",
        "--y",
        "value",
        "--x",
        "days",
        "--predict",
        "0",
    ]);
    let by_utc = json(&[
        "fit",
        "--config",
        cfg,
        "--quantity",
        "voltage",
        "--y",
        "value",
        "--x",
        "utc",
    ]);
    assert_eq!(by_days["dof"], 22);
    let per_day = by_days["coefficients"][1]["value"].as_f64().unwrap();
    let per_s = by_utc["coefficients"][1]["value"].as_f64().unwrap();
    // Unix seconds as doubles keep ~0.2 µs, and the simulated runs last a second or two, so the
    // two slopes agree to a small part of their uncertainty, not to the last digit.
    let u_day = by_days["coefficients"][1]["u"].as_f64().unwrap();
    assert!(
        (per_day - per_s * 86_400.0).abs() <= 1e-2 * u_day,
        "{per_day} vs {per_s}/s, u {u_day}"
    );

    // The text output names the unit.
    let text = tsagent()
        .args([
            "analyze",
            "summary",
            "--config",
            cfg,
            "--quantity",
            "voltage",
            "--column",
            "value",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains(" V\n") && text.contains("n        24"),
        "{text}"
    );

    // The same readings exported as CSV give the same summary.
    let export = tsagent()
        .args([
            "readings",
            "--csv",
            "--quantity",
            "voltage",
            "--config",
            cfg,
        ])
        .assert()
        .success();
    let path = dir.path().join("export.csv");
    std::fs::write(&path, &export.get_output().stdout).unwrap();
    let from_csv = json(&[
        "summary",
        "--csv",
        path.to_str().unwrap(),
        "--column",
        "value",
    ]);
    assert_eq!(from_csv, out);
}
