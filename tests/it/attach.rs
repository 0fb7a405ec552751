//! The lab's report carried in a sealed bundle: `tsagent report --seal` stages it, the next seal
//! carries it in `report/`, and both `tsagent bundle verify` and the stock tools verify it.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn demo(dir: &Path, readings: &str) -> String {
    let out = tsagent()
        .arg("demo")
        .arg("--dir")
        .arg(dir)
        .args(["--readings", readings])
        .timeout(PATIENCE)
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

#[test]
fn a_report_staged_with_seal_rides_signed_in_the_next_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    demo(&lab, "30");
    let config = lab.join("tsagent.toml");
    let out = dir.path().join("r");
    let report = |extra: &[&str]| {
        tsagent()
            .args(["report", "--run", "1", "--lang", "en", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .assert()
    };

    // While the daemon holds the lab, staging is refused naming it, and nothing is staged.
    {
        let socket = lab.join("tsagent.sock");
        let _held = tsagent::daemon::owner::LabLock::acquire_at(
            &tsagent::daemon::owner::lock_path(&lab.join("tsagent.db")),
            tsagent::daemon::owner::Role::Daemon,
            &socket,
        )
        .unwrap();
        let refused = report(&["--seal"]).code(7);
        let err = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(err.contains("held by the daemon"), "{err}");
        assert!(err.contains(&socket.display().to_string()), "{err}");
    }

    let staged = stdout(&report(&["--seal"]).success());
    assert!(
        staged.contains(
            "staged for the next bundle: report.html, summary.json, readings.csv, readings.svg"
        ),
        "{staged}"
    );
    // No reading is waiting: the files stay staged, and the seal says they ride in the next one.
    let sealed = stdout(
        &tsagent()
            .args(["bundle", "seal", "--config"])
            .arg(&config)
            .assert()
            .success(),
    );
    assert!(sealed.contains("nothing new to seal"), "{sealed}");
    assert!(
        sealed.contains("report files staged: allan.svg, ")
            && sealed.contains(" report.html, ")
            && sealed.contains("they ride in the next bundle"),
        "{sealed}"
    );

    // The demo again: new readings, sealed with the report.
    let second = demo(&lab, "5");
    let mut bundles: Vec<_> = std::fs::read_dir(lab.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    bundles.sort();
    assert_eq!(bundles.len(), 2, "{second}");
    let newest = &bundles[1];
    let signers = lab.join("allowed_signers");
    let verified = stdout(
        &tsagent()
            .args(["bundle", "verify"])
            .arg(newest)
            .arg("--allowed-signers")
            .arg(&signers)
            .assert()
            .success(),
    );
    for file in [
        "report.html",
        "summary.json",
        "readings.csv",
        "readings.svg",
        "allan.svg",
    ] {
        assert!(
            verified.contains(&format!("attachment report/{file} (")),
            "{file}: {verified}"
        );
    }
    // The first bundle carries none, and both still link.
    let both = stdout(
        &tsagent()
            .args(["bundle", "verify"])
            .args(&bundles)
            .arg("--allowed-signers")
            .arg(&signers)
            .assert()
            .success(),
    );
    assert!(both.contains("bundles 1–2 linked"), "{both}");

    // The stock tools alone: extract, check the signature, check every hash.
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let name = newest.file_stem().unwrap().to_str().unwrap();
    let script = format!(
        "tar -xf {} && cd {name} && ssh-keygen -Y verify -f {} -I DEMO-LAB -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c --strict SHA256SUMS",
        newest.display(),
        signers.display()
    );
    let stock = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&x)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&stock.stdout).into_owned()
        + &String::from_utf8_lossy(&stock.stderr);
    assert!(stock.status.success(), "{said}");
    assert!(said.contains("report/report.html: OK"), "{said}");
    for file in ["report.html", "summary.json", "readings.csv"] {
        assert_eq!(
            std::fs::read(x.join(name).join("report").join(file)).unwrap(),
            std::fs::read(out.join(file)).unwrap(),
            "{file}"
        );
    }
    // The report's readings.csv is its own; the bundle's is the log's.
    assert_ne!(
        std::fs::read(x.join(name).join("readings.csv")).unwrap(),
        std::fs::read(out.join("readings.csv")).unwrap()
    );

    // Sealed once: a later seal carries nothing more, and the log is sound.
    let again = stdout(
        &tsagent()
            .args(["bundle", "seal", "--config"])
            .arg(&config)
            .assert()
            .success(),
    );
    assert!(!again.contains("report files staged"), "{again}");
    tsagent()
        .args(["db", "check", "--db"])
        .arg(lab.join("tsagent.db"))
        .assert()
        .success();

    // A sealed report file changed in the log, past its triggers, is what `db check` finds.
    let conn = rusqlite::Connection::open(lab.join("tsagent.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER attachments_sealed_is_final;
         UPDATE attachments SET bytes = CAST('{}' AS BLOB) WHERE name = 'summary.json';",
    )
    .unwrap();
    drop(conn);
    let found = tsagent()
        .args(["db", "check", "--db"])
        .arg(lab.join("tsagent.db"))
        .assert()
        .failure();
    let said = String::from_utf8_lossy(&found.get_output().stdout).into_owned()
        + &String::from_utf8_lossy(&found.get_output().stderr);
    assert!(
        said.contains("report file summary.json, sealed in bundle 2, differs"),
        "{said}"
    );
}
