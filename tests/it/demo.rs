//! `tsagent demo`: the whole path on the embedded simulated lab, twice, and the stock-tool command it
//! prints actually verifies the bundle.

use std::process::Command;

use crate::common::*;

#[test]
fn demo_runs_the_whole_path_and_continues_the_same_lab() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("lab");
    let first = tsagent()
        .arg("demo")
        .arg("--dir")
        .arg(&demo)
        .args(["--readings", "40"])
        .timeout(PATIENCE)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&first.get_output().stdout).into_owned();
    for expected in [
        "run 1 completed: 43 readings, seq 1–43",
        // Statistics per instrument and quantity, each in its own unit.
        "\n  dvm voltage (V)\n    mean                      10.0000",
        "experimental std. dev. s",
        "drift (least squares)",
        "\n  env                       pressure ",
        "GPIB0 adapter on /dev/pts/",
        "sealed bundle 1: readings 1–43 (43)",
        "DEMO-LAB-ZENER-10V-000001.tar: ok",
        "tsagent db check --db",
        "DEMO-LAB-ZENER-10V-000001 uploaded: accepted, log index 0; receipt verified",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    let second = tsagent()
        .arg("demo")
        .arg("--dir")
        .arg(&demo)
        .args(["--readings", "40"])
        .timeout(PATIENCE)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&second.get_output().stdout).into_owned();
    assert!(
        text.contains("run 2 completed: 43 readings, seq 44–86"),
        "{text}"
    );
    assert!(
        text.contains("sealed bundle 2: readings 44–86 (43)"),
        "{text}"
    );

    // The printed stock-tool command, run as printed.
    let command = text
        .lines()
        .skip_while(|l| !l.starts_with("verify it with stock tools"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        command.contains("ssh-keygen -Y verify") && command.contains("sha256sum -c"),
        "{command}"
    );
    let out = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command}\n{said}");
    assert!(
        said.contains("Good \"tsagent-bundle-v1\" signature for DEMO-LAB"),
        "{said}"
    );

    // Delivered to the in-process coordinator, linked to the first, and the receipt's printed
    // stock command verifies it.
    assert!(
        text.contains(
            "DEMO-LAB-ZENER-10V-000002 uploaded: accepted, log index 1; receipt verified"
        ),
        "{text}"
    );
    let command = text
        .lines()
        .skip_while(|l| !l.starts_with("verify the receipt with stock tools"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let out = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{command}\n{said}");
    assert!(
        said.contains("Good \"tsagent-receipt-v1\" signature for pilot"),
        "{said}"
    );

    tsagent()
        .args(["db", "check", "--db"])
        .arg(demo.join("tsagent.db"))
        .assert()
        .success();

    // The demo lab's config, written beside its database, names this very lab to other commands.
    let lab_config = demo.join("tsagent.toml");
    assert!(
        text.contains(&format!("lab config: {}", lab_config.display())),
        "{text}"
    );
    tsagent()
        .args(["config", "check"])
        .arg(&lab_config)
        .assert()
        .success();
    let bundles = tsagent()
        .args(["bundles", "--config"])
        .arg(&lab_config)
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&bundles.get_output().stdout).into_owned();
    assert!(
        listed.contains("DEMO-LAB-ZENER-10V-000001")
            && listed.contains("DEMO-LAB-ZENER-10V-000002"),
        "{listed}"
    );

    // It ends with the lab's result and the report's path; its certificate validates.
    let last = text.lines().last().unwrap_or_default();
    let report = demo.join("report").join("report.html");
    assert_eq!(last, format!("report: {}", report.display()), "{text}");
    assert!(report.is_file());
    assert!(text.contains("result: U = 10.0000"), "{text}");
    let (ok, said) = crate::report::xmllint(&demo.join("report").join("dcc.xml"));
    assert!(ok, "{said}");
}

#[test]
fn report_makes_the_labs_result_from_its_log_and_refuses_what_it_cannot_report() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("lab");
    tsagent()
        .arg("demo")
        .arg("--dir")
        .arg(&demo)
        .args(["--readings", "30"])
        .timeout(PATIENCE)
        .assert()
        .success();
    let config = demo.join("tsagent.toml");
    let out = dir.path().join("r");
    let made = tsagent()
        .args(["report", "--run", "1", "--lang", "en", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("--dcc")
        .arg(out.join("result.xml"))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&made.get_output().stdout).into_owned();
    assert!(text.starts_with("result: U = 10.0000"), "{text}");
    assert!(text.contains(", n = 30"), "{text}");
    for file in [
        "report.html",
        "summary.json",
        "readings.csv",
        "readings.svg",
        "allan.svg",
    ] {
        assert!(out.join(file).is_file(), "{file} missing: {text}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Uncertainty budget") && !html.contains("不确定度分量表"));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains(r#""\\volt""#), "{summary}");
    let (ok, said) = crate::report::xmllint(&out.join("result.xml"));
    assert!(ok, "{said}");
    // Readings raw and corrected, one row per reading of the standard.
    let csv = std::fs::read_to_string(out.join("readings.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31, "{csv}");

    // The demo has no official run: the default window is empty, and said so.
    let refused = tsagent()
        .args(["report", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("none"))
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        err.contains("no reading in V in the window (official runs)"),
        "{err}"
    );
    assert!(!dir.path().join("none").exists());

    // A report needs to know who answers for it.
    let text = std::fs::read_to_string(&config).unwrap();
    let without = text.replace("responsible = \"Demo Operator\"\n", "");
    assert_ne!(without, text);
    std::fs::write(&config, without).unwrap();
    let refused = tsagent()
        .args(["report", "--run", "1", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("none"))
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        err.contains("a report needs `[report] responsible`"),
        "{err}"
    );
}
