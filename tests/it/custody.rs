//! Custody of the travelling standard through the binary: official runs wait for receipt,
//! inspection, the stabilisation gate and a pilot decision on damage; they stop at dispatch; expired
//! calibrations are refused or flagged; custody records travel in the bundle's custody.jsonl and
//! verify with `bundle verify` and the stock tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use predicates::prelude::*;

/// A simulated lab whose sequence `s` is official, with `custody` appended to its config (tables
/// such as `[artefact.stabilisation]`) and `instrument` added to the DMM's table.
fn lab(custody: &str, instrument: &str) -> (Lab, PathBuf) {
    let mut lab = Lab::simulated();
    lab.count = 3;
    lab.extra_instrument = instrument.to_owned();
    let config = write_config(&lab, custody);
    (lab, config)
}

/// (Re)writes the lab's config with `custody` appended.
fn write_config(lab: &Lab, custody: &str) -> PathBuf {
    let path = lab.config();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("name = \"s\"\n", "name = \"s\"\nofficial = true\n", 1);
    std::fs::write(&path, format!("{text}\n{custody}\n")).unwrap();
    path
}

fn custody(config: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    tsagent()
        .arg("custody")
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
        .assert()
}

/// The kinds of the log's custody events, in order.
fn kinds(lab: &Lab) -> Vec<String> {
    lab.store()
        .custody_events()
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// The details of the log's events of `kind`.
fn details(lab: &Lab, kind: &str) -> Vec<serde_json::Value> {
    let out = Command::new("sqlite3")
        .arg(lab.db())
        .arg(format!(
            "SELECT detail FROM events WHERE kind = '{kind}' ORDER BY id"
        ))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn refused(config: &Path, reason: &str) {
    measure(config)
        .code(3)
        .stderr(predicate::str::contains(format!(
            "official run of `s` refused: {reason}"
        )));
}

const CHECKLIST: &str = r#"
[[artefact.inspection]]
item = "battery indicator"
kind = "check"

[[artefact.inspection]]
item = "thermistor"
kind = "value"
unit = "kOhm"
"#;

/// A dispatch of the standard as a technician records it.
const DISPATCH: &[&str] = &[
    "dispatch",
    "--operator",
    "li",
    "--carrier",
    "DHL",
    "--tracking",
    "JD0001",
    "--condition",
    "ok",
];
#[test]
fn an_official_run_waits_for_receipt_inspection_and_the_minimum_time_and_stops_at_dispatch() {
    let settle = format!("{CHECKLIST}\n[artefact.stabilisation]\nmin = \"72h\"\n");
    let (lab, config) = lab(&settle, "");
    refused(&config, "the standard has not been received");
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "li",
            "--condition",
            "ok",
            "--seals",
            "intact",
        ],
    )
    .success();
    refused(&config, "the arrival inspection is not recorded");
    custody(
        &config,
        &[
            "inspect",
            "--operator",
            "li",
            "--item",
            "battery indicator=ok",
            "--item",
            "thermistor=10.02 kOhm",
        ],
    )
    .success();
    // The time left is rounded up to the second: 3days, or 2days 23h 59m 59s on a slow machine.
    refused(&config, "stabilising: the minimum time since receipt has ");
    assert!(lab.readings().is_empty(), "nothing was measured");
    let skipped = details(&lab, "official_skipped");
    assert_eq!(skipped.len(), 3);
    assert_eq!(skipped[0]["trigger"], "manual");
    assert_eq!(skipped[0]["reason"], "the standard has not been received");
    custody(&config, &["status"]).success().stdout(
        predicate::str::contains("state: stabilising").and(predicate::str::contains(
            "gate: closed — stabilising: the minimum time",
        )),
    );

    // The same lab once the minimum is over: with `min = "0s"` the gate opens at the next run.
    write_config(
        &lab,
        &format!("{CHECKLIST}\n[artefact.stabilisation]\nmin = \"0s\"\n"),
    );
    measure(&config).success();
    let store = lab.store();
    let run = store.run(1).unwrap().unwrap();
    assert!(run.official, "the run and so its readings are official");
    assert_eq!(run.readings, 3);
    let listed = tsagent()
        .args(["readings", "--csv", "--config"])
        .arg(&config)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows.iter().all(|r| r.ends_with(",1")),
        "official in the listing: {text}"
    );
    let opened = details(&lab, "gate_opened");
    assert_eq!(opened.len(), 1, "the gate opens once");
    assert_eq!(opened[0]["min_s"], 0);
    assert_eq!(
        details(&lab, "run_started")[0]["official"],
        true,
        "run_started says it too"
    );
    custody(&config, &["status"])
        .success()
        .stdout(predicate::str::contains("state: official_window"));

    custody(&config, DISPATCH).success();
    refused(&config, "the standard has been dispatched");
    custody(
        &config,
        &[
            "inspect",
            "--operator",
            "li",
            "--item",
            "battery indicator=ok",
            "--item",
            "thermistor=1",
        ],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "cannot record the inspection: the standard has been dispatched",
    ));
    assert_eq!(
        kinds(&lab),
        [
            "official_skipped",
            "custody_received",
            "official_skipped",
            "custody_inspected",
            "official_skipped",
            "gate_opened",
            "custody_dispatched",
            "official_skipped"
        ]
    );
    lab.assert_sound();
}

#[test]
fn damage_at_receipt_blocks_official_runs_until_the_pilots_decision() {
    let (lab, config) = lab("[artefact.stabilisation]\nmin = \"0s\"\n", "");
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "li",
            "--condition",
            "damaged",
            "--seals",
            "broken",
            "--note",
            "case dented",
        ],
    )
    .success()
    .stdout(predicate::str::contains(
        "official runs wait for the pilot's decision",
    ));
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "li",
            "--condition",
            "ok",
            "--seals",
            "intact",
        ],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "cannot receive the standard: the standard has already been received",
    ));
    refused(
        &config,
        "damage to the standard awaits the pilot's decision",
    );
    custody(
        &config,
        &[
            "decision",
            "--operator",
            "li",
            "--note",
            "pilot (NIM) 2026-12-02: proceed",
        ],
    )
    .success();
    custody(
        &config,
        &["decision", "--operator", "li", "--note", "again"],
    )
    .code(2)
    .stderr(predicate::str::contains("no pilot decision is pending"));
    measure(&config).success();
    // A drop in the official window blocks again; a power loss does not.
    custody(
        &config,
        &[
            "incident",
            "--operator",
            "li",
            "--kind",
            "power_loss",
            "--note",
            "mains 10 min",
        ],
    )
    .success();
    measure(&config).success();
    custody(
        &config,
        &[
            "incident",
            "--operator",
            "li",
            "--kind",
            "dropped",
            "--note",
            "fell 20 cm",
        ],
    )
    .success();
    refused(
        &config,
        "damage to the standard awaits the pilot's decision",
    );
    assert_eq!(lab.store().run(2).unwrap().unwrap().readings, 3);
}

#[test]
fn an_expired_calibration_is_refused_or_flagged_as_policy_says() {
    let calibration = r#"calibration = { certificate = "CAL-17", calibrated = "2019-01-10", due = "2020-01-10" }"#;
    let gate = "[artefact.stabilisation]\nmin = \"0s\"\n";
    let (lab, config) = lab(gate, calibration);
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "li",
            "--condition",
            "ok",
            "--seals",
            "intact",
        ],
    )
    .success();
    refused(
        &config,
        "the calibration of `dmm` (certificate CAL-17) was due 2020-01-10",
    );
    let expired = details(&lab, "calibration_expired");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["policy"], "refuse");
    assert!(lab.readings().is_empty());

    write_config(
        &lab,
        &format!("{gate}\n[policy]\nexpired_calibration = \"flag\"\n"),
    );
    measure(&config).success();
    let expired = details(&lab, "calibration_expired");
    assert_eq!(expired.len(), 2, "flagged, and so recorded too");
    assert_eq!(expired[1]["policy"], "flag");
    assert_eq!(expired[1]["certificate"], "CAL-17");
    custody(&config, &["status"])
        .success()
        .stdout(predicate::str::contains(
            "calibration: dmm certificate CAL-17 calibrated 2019-01-10 due 2020-01-10 (past due)",
        ));
}

#[test]
fn custody_records_travel_in_the_bundle_and_verify_with_stock_tools() {
    let calibration = r#"calibration = { certificate = "CAL-17", calibrated = "2026-01-10", due = "2099-01-10" }"#;
    let (lab, config) = lab(
        &format!("{CHECKLIST}\n[artefact.stabilisation]\nmin = \"0s\"\n"),
        calibration,
    );
    let out = tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let signers = lab.path().join("allowed_signers");
    std::fs::write(&signers, format!("{}\n", stdout.lines().last().unwrap())).unwrap();

    let photo = lab.path().join("case.jpg");
    std::fs::write(&photo, b"not really a jpeg").unwrap();
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "李工",
            "--condition",
            "ok",
            "--seals",
            "intact",
            "--photo",
            photo.to_str().unwrap(),
        ],
    )
    .success();
    let stored: Vec<String> = std::fs::read_dir(lab.path().join("photos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(stored.len(), 1);
    let hash = &stored[0];
    assert_eq!(
        std::fs::read(lab.path().join("photos").join(hash)).unwrap(),
        b"not really a jpeg"
    );
    custody(
        &config,
        &[
            "inspect",
            "--operator",
            "李工",
            "--item",
            "battery indicator=ok",
            "--item",
            "thermistor=10.02 kOhm",
        ],
    )
    .success();
    custody(
        &config,
        &["note", "--operator", "李工", "--text", "on bench 2"],
    )
    .success();
    measure(&config).success();
    custody(
        &config,
        &[
            "dispatch",
            "--operator",
            "李工",
            "--carrier",
            "SF Express",
            "--tracking",
            "SF123",
            "--condition",
            "ok",
        ],
    )
    .success();
    // The bundle takes every event since the last one, the dispatch after the last reading too.
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success();
    let name = "TEST-LAB-Z1-000001";
    let bundle = lab.bundles().join(format!("{name}.tar"));
    tsagent()
        .args(["bundle", "verify"])
        .arg(&bundle)
        .arg("--allowed-signers")
        .arg(&signers)
        .assert()
        .success();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -xf {name}.tar && cd {name} && ssh-keygen -Y verify -f {} -I TEST-LAB -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c --strict SHA256SUMS",
            signers.display()
        ))
        .current_dir(lab.bundles())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("custody.jsonl: OK"), "{text}");
    let folder = lab.bundles().join(name);
    let custody_jsonl = std::fs::read_to_string(folder.join("custody.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = custody_jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "custody_received",
            "custody_inspected",
            "custody_note",
            "gate_opened",
            "custody_dispatched"
        ]
    );
    assert_eq!(lines[0]["detail"]["photos"][0]["sha256"], hash.as_str());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["format"], "tsagent-bundle-v3");
    assert_eq!(manifest["custody"]["count"], 5);
    assert_eq!(manifest["custody"]["state"], "dispatched");
    assert_eq!(
        manifest["traceability"][0],
        serde_json::json!({
            "instrument": "dmm",
            "certificate": "CAL-17",
            "calibrated": "2026-01-10",
            "due": "2099-01-10"
        })
    );
    // An edit of a sealed custody event in the log (triggers dropped: events are not chained)
    // shows in `db check`, which compares the stored archive's custody.jsonl with the log.
    lab.assert_sound();
    let edit = Command::new("sqlite3")
        .arg(lab.db())
        .arg(
            "DROP TRIGGER events_no_update; \
             UPDATE events SET detail = replace(detail, 'bench 2', 'bench 3') WHERE kind = 'custody_note';",
        )
        .status()
        .unwrap();
    assert!(edit.success());
    tsagent()
        .args(["db", "check", "--db"])
        .arg(lab.db())
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("custody event").and(predicate::str::contains(
                "differs from the log or is missing (edited or deleted after sealing)",
            )),
        );
    // Tampering with the custody record is caught by the stock tools.
    std::fs::write(folder.join("custody.jsonl"), b"{}\n").unwrap();
    let tampered = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert!(!tampered.status.success());
}

#[test]
fn receipt_and_dispatch_notes_are_bilingual() {
    let (lab, config) = lab(CHECKLIST, "");
    custody(&config, &["note-receipt"])
        .code(2)
        .stderr(predicate::str::contains("no receipt to write a note of"));
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "li",
            "--condition",
            "ok",
            "--seals",
            "intact",
        ],
    )
    .success();
    let note = lab.path().join("receipt.txt");
    custody(&config, &["note-receipt", "--out", note.to_str().unwrap()]).success();
    let text = std::fs::read_to_string(&note).unwrap();
    for expected in [
        "传递标准接收确认单 / Confirmation note of receipt",
        "接收人 / Received by: li",
        "封条 / Seals: 完好 / intact",
        "S1",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    custody(&config, &["note-dispatch"])
        .code(2)
        .stderr(predicate::str::contains("no dispatch to write a note of"));
    custody(&config, DISPATCH).success();
    custody(&config, &["note-dispatch"])
        .success()
        .stdout(predicate::str::contains("运单号 / Tracking number: JD0001"));

    // Signed with the lab's key, the note verifies with the stock tools as a bundle does.
    let out = tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let signers = lab.path().join("allowed_signers");
    std::fs::write(&signers, format!("{}\n", stdout.lines().last().unwrap())).unwrap();
    let signed = lab.path().join("to-pilot");
    custody(
        &config,
        &["note-dispatch", "--signed", signed.to_str().unwrap()],
    )
    .success();
    let folder = signed.join("TEST-LAB-Z1-dispatch-note");
    let check = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ssh-keygen -Y verify -f {} -I TEST-LAB -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c --strict SHA256SUMS",
            signers.display()
        ))
        .current_dir(&folder)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(text.contains("note.txt: OK"), "{text}");
    let note = std::fs::read_to_string(folder.join("note.txt")).unwrap();
    assert!(note.contains("承运人 / Carrier: DHL"), "{note}");
}

#[test]
fn custody_config_keys_are_checked_and_unknown_ones_stay_errors() {
    let (_lab, config) = lab("[artefact.stabilisation]\nminimum = \"72h\"\n", "");
    tsagent()
        .args(["config", "check"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("artefact.stabilisation"));
    let (_lab, config) = lab(
        "[artefact.stabilisation]\nmin = \"1h\"\ncriterion = { sequence = \"nope\", window = \"24h\", max_drift = 0.05e-6 }\n",
        "",
    );
    tsagent()
        .args(["config", "check"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid `artefact.stabilisation.criterion.sequence`: no sequence named `nope`",
        ));
    let (_lab, config) = lab(
        "",
        r#"calibration = { certificate = "C", calibrated = "2026-01-10", due = "2026-13-10" }"#,
    );
    tsagent()
        .args(["config", "check"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid `instrument.calibration.due`: a date `YYYY-MM-DD`",
        ));
}

#[test]
fn a_refused_scheduled_official_slot_is_recorded_and_the_daemon_goes_on() {
    let mut lab = Lab::simulated();
    lab.count = 2;
    lab.every = Some("1s".into());
    let config = write_config(&lab, "[artefact.stabilisation]\nmin = \"72h\"\n");
    let d = Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(&config),
    );
    d.wait_for_err(|l| {
        l.contains("run could not start")
            && l.contains("official run of `s` refused: the standard has not been received")
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let skipped = details(&lab, "official_skipped");
    assert!(!skipped.is_empty());
    assert_eq!(skipped[0]["trigger"], "schedule");
    assert_eq!(skipped[0]["sequence"], "s");
    assert!(lab.readings().is_empty());
}

#[test]
fn the_drift_criterion_fits_the_monitoring_readings_since_receipt() {
    let monitor = r#"
[artefact.stabilisation]
min = "0s"
criterion = { sequence = "mon", window = "24h", max_drift = 0.05e-6, instrument = "dmm", quantity = "voltage" }

[[sequence]]
name = "mon"
[[sequence.step]]
read = { instrument = "dmm", count = 5, quantity = "voltage", unit = "V" }
"#;
    let (lab, config) = lab(monitor, "");
    let mon = |config: &Path| {
        tsagent()
            .args(["measure", "--sequence", "mon", "--config"])
            .arg(config)
            .timeout(PATIENCE)
            .assert()
            .success();
    };
    // Readings before receipt do not count.
    mon(&config);
    custody(
        &config,
        &[
            "receive",
            "--operator",
            "li",
            "--condition",
            "ok",
            "--seals",
            "intact",
        ],
    )
    .success();
    refused(
        &config,
        "stabilising: 0 reading(s) of `mon` in the criterion's window, at least 3 needed",
    );
    // Five readings a few milliseconds apart: the fitted drift's uncertainty is enormous, so the
    // gate stays closed on the data (and says by how much).
    mon(&config);
    measure(&config).code(3).stderr(
        predicate::str::contains("official run of `s` refused: stabilising: |drift| + k·u =").and(
            predicate::str::contains("exceeds 5.000e-8 (relative, `mon`, 5 readings)"),
        ),
    );
    assert!(details(&lab, "gate_opened").is_empty());
}

/// A simulated lab whose official sequence `s` is not scheduled (no official slot can fall in a
/// test), with a monitoring sequence `mon` the daemon schedules daily, and `custody` appended;
/// its signing key made. Returns the lab, its config, the daemon and its socket.
fn daemon_lab(custody: &str) -> (Lab, PathBuf, Proc, PathBuf) {
    let mut lab = Lab::simulated();
    lab.count = 3;
    let config = write_config(
        &lab,
        &format!(
            "{custody}\n[[sequence]]\nname = \"mon\"\nevery = \"24h\"\n[[sequence.step]]\nread = {{ instrument = \"dmm\", count = 1, quantity = \"voltage\", unit = \"V\" }}\n"
        ),
    );
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("control API listening"));
    let socket = lab.path().join("tsagent.sock");
    (lab, config, d, socket)
}

/// `tsagent custody …` beside the daemon: its output, checked to say on its first line that it
/// was handed to the daemon `d`.
fn through(d: &Proc, config: &Path, args: &[&str]) -> std::process::Output {
    let out = tsagent()
        .arg("custody")
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
        .timeout(PATIENCE)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let expected = if args[0] == "status" {
        "through the daemon"
    } else {
        "handed to the daemon"
    };
    assert_eq!(
        first,
        format!("{expected} (pid {})", d.pid().as_raw()),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn custody_actions_through_the_daemon_by_curl_and_the_cli_reach_the_sealed_bundle() {
    use crate::control::call;
    let (lab, config, d, socket) = daemon_lab(&format!(
        "{CHECKLIST}\n[artefact.stabilisation]\nmin = \"0s\"\n"
    ));

    // A photo through the API: kept by its SHA-256 beside the database, the hash answered.
    let bytes = b"\xff\xd8\xff\xe0 a receipt photo".repeat(1000);
    let photo = lab.path().join("case.jpg");
    std::fs::write(&photo, &bytes).unwrap();
    let (code, body) = call(
        &socket,
        "POST",
        "/v1/custody/photos",
        Some(&format!("@{}", photo.display())),
    );
    assert_eq!(code, 201, "{body}");
    let kept: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sha = kept["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha, tsagent::custody::photo_sha256(&bytes));
    assert_eq!(kept["bytes"], bytes.len());
    assert_eq!(
        std::fs::read(lab.path().join("photos").join(&sha)).unwrap(),
        bytes
    );

    // A photo over the cap is refused before it is read.
    let big = lab.path().join("big.jpg");
    std::fs::write(&big, vec![0u8; 32 * 1024 * 1024 + 1]).unwrap();
    let (code, body) = call(
        &socket,
        "POST",
        "/v1/custody/photos",
        Some(&format!("@{}", big.display())),
    );
    assert_eq!(code, 413, "{body}");
    assert_eq!(
        std::fs::read_dir(lab.path().join("photos"))
            .unwrap()
            .count(),
        1
    );

    // Refused: the state says no (409), the body is not JSON (400), the action is unknown (404).
    let dispatch = r#"{"operator":"li","carrier":"DHL","tracking":"JD1","condition":"ok"}"#;
    let (code, body) = call(&socket, "POST", "/v1/custody/dispatch", Some(dispatch));
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
        "cannot dispatch the standard: the standard has not been received"
    );
    let out = through(
        &d,
        &config,
        &[
            "dispatch",
            "--operator",
            "li",
            "--carrier",
            "DHL",
            "--tracking",
            "JD1",
            "--condition",
            "ok",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot dispatch the standard: the standard has not been received")
            && stderr.contains("409"),
        "{stderr}"
    );
    let (code, body) = call(&socket, "POST", "/v1/custody/receive", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(&socket, "POST", "/v1/custody/receipt", Some("{}"));
    assert_eq!(code, 404, "{body}");
    let (code, _) = call(&socket, "GET", "/v1/custody/receive", None);
    assert_eq!(code, 405);

    // A receipt over curl naming the photo; one naming a photo never uploaded is refused (422).
    let receive = |sha: &str| {
        format!(
            r#"{{"operator":"李工","condition":"ok","seals":"intact","note":"case fine","photos":[{{"sha256":"{sha}","name":"case.jpg"}}]}}"#
        )
    };
    let (code, body) = call(
        &socket,
        "POST",
        "/v1/custody/receive",
        Some(&receive(&"0".repeat(64))),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("upload it first"), "{body}");
    let (code, body) = call(&socket, "POST", "/v1/custody/receive", Some(&receive(&sha)));
    assert_eq!(code, 201, "{body}");
    let recorded: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(recorded["event"], "custody_received");
    assert_eq!(recorded["state"], "received");

    // An unknown checklist item (422), then the inspection and a note through the CLI.
    let (code, body) = call(
        &socket,
        "POST",
        "/v1/custody/inspect",
        Some(r#"{"operator":"li","items":["nope=ok"]}"#),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("no item `nope`"), "{body}");
    let out = through(
        &d,
        &config,
        &[
            "inspect",
            "--operator",
            "李工",
            "--item",
            "battery indicator=ok",
            "--item",
            "thermistor=10.02 kOhm",
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("inspection recorded: 2 item(s)"));
    let out = through(
        &d,
        &config,
        &["note", "--operator", "李工", "--text", "on bench 2"],
    );
    assert!(out.status.success());

    // Status through the daemon, from the CLI and over curl.
    let out = through(&d, &config, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Received, inspected and `min = "0s"`: the report finds the gate open, and records it.
    assert!(text.contains("state: official_window"), "{text}");
    assert!(
        text.contains("gate: opened now (recorded) — official runs may start"),
        "{text}"
    );
    assert!(text.contains("custody_received"), "{text}");
    let (code, body) = call(&socket, "GET", "/v1/custody", None);
    assert_eq!(code, 200, "{body}");
    let report: tsagent::custody::Report = serde_json::from_str(&body).unwrap();
    assert_eq!(report.gate.state, "open");
    assert_eq!(
        report.timeline[0].detail["photos"][0]["sha256"],
        sha.as_str()
    );
    let kinds: Vec<&str> = report.timeline.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "custody_received",
            "custody_inspected",
            "custody_note",
            "gate_opened"
        ]
    );

    // An official run on the daemon, admitted through the open gate, then the dispatch.
    tsagent()
        .args(["start", "s", "--operator", "li", "--wait", "--config"])
        .arg(&config)
        .timeout(PATIENCE)
        .assert()
        .success();
    let out = through(
        &d,
        &config,
        &[
            "dispatch",
            "--operator",
            "李工",
            "--carrier",
            "SF Express",
            "--tracking",
            "SF123",
            "--condition",
            "ok",
        ],
    );
    assert!(out.status.success());
    let (code, body) = call(&socket, "POST", "/v1/seal", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("TEST-LAB-Z1-000001.tar"), "{body}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("custody action recorded through the control API")
            .count(),
        4,
        "receive, inspect, note and dispatch, each written by the daemon: {stderr}"
    );

    let name = "TEST-LAB-Z1-000001";
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -xf {name}.tar && cd {name} && sha256sum -c --strict SHA256SUMS"
        ))
        .current_dir(lab.bundles())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let custody_jsonl =
        std::fs::read_to_string(lab.bundles().join(name).join("custody.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = custody_jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "custody_received",
            "custody_inspected",
            "custody_note",
            "gate_opened",
            "custody_dispatched"
        ]
    );
    assert_eq!(lines[0]["detail"]["photos"][0]["sha256"], sha.as_str());
    assert_eq!(lines[0]["detail"]["photos"][0]["name"], "case.jpg");
    assert_eq!(lines[0]["detail"]["operator"], "李工");
    lab.assert_sound();
}

#[test]
fn the_direct_path_is_not_taken_while_a_daemon_holds_the_lab() {
    let (lab, config) = lab("", "");
    // The lock says a daemon holds the lab, but nothing answers on its socket: the command goes
    // to the daemon and fails, rather than write the log beside it.
    let gone = lab.path().join("gone.sock");
    let held = tsagent::daemon::owner::LabLock::acquire_at(
        &tsagent::daemon::owner::lock_path(&lab.db()),
        tsagent::daemon::owner::Role::Daemon,
        &gone,
    )
    .unwrap();
    for args in [
        &["note", "--operator", "li", "--text", "x"][..],
        &["status"][..],
    ] {
        let out = tsagent()
            .arg("custody")
            .arg(args[0])
            .arg("--config")
            .arg(&config)
            .args(&args[1..])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{stdout}{stderr}");
        assert!(
            stdout.starts_with(&format!(
                "{} the daemon (pid {})",
                if args[0] == "status" {
                    "through"
                } else {
                    "handed to"
                },
                std::process::id()
            )),
            "{stdout}"
        );
        assert!(
            stderr.contains("no daemon is running for this config") && stderr.contains("gone.sock"),
            "{stderr}"
        );
    }
    assert!(
        !lab.db().exists(),
        "nothing was written, not even a database"
    );
    drop(held);
    let out = custody(&config, &["note", "--operator", "li", "--text", "x"]).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["recorded here: no daemon holds this lab", "note recorded"]
    );
    assert_eq!(kinds(&lab), ["custody_note"]);
}

#[test]
fn an_operator_who_may_not_write_the_lab_records_custody_through_the_daemon() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes a user and runs tsagent as it: run it as root (.ci/run does)"
    );
    let user = "tsagent-operator";
    if nix::unistd::User::from_name(user).unwrap().is_none() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {user}");
    }
    // The daemon runs as root and lets the operator's group steer it; the lab's folder, its
    // database and the lock are root's, which the operator may read but not write.
    let (lab, config, d, _socket) = daemon_lab(&format!("[control]\ngroup = \"{user}\"\n"));
    std::fs::set_permissions(
        lab.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // The binary where the operator can run it, whatever the build folder's mode.
    let binary = lab.path().join("tsagent");
    if std::fs::hard_link(bin(), &binary).is_err() {
        std::fs::copy(bin(), &binary).unwrap();
    }
    let photo = lab.path().join("seal.jpg");
    std::fs::write(&photo, b"the seal, intact").unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", user, "--regid", user, "--clear-groups"])
        .arg(&binary)
        .args(["custody", "receive", "--config"])
        .arg(&config)
        .args(["--operator", "op", "--condition", "ok", "--seals", "intact"])
        .arg("--photo")
        .arg(&photo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().next(),
        Some(format!("handed to the daemon (pid {})", d.pid().as_raw()).as_str()),
        "{text}"
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let received = details(&lab, "custody_received");
    assert_eq!(received.len(), 1);
    let sha = tsagent::custody::photo_sha256(b"the seal, intact");
    assert_eq!(received[0]["photos"][0]["sha256"], sha.as_str());
    assert_eq!(received[0]["operator"], "op");
    assert_eq!(
        std::fs::read(lab.path().join("photos").join(&sha)).unwrap(),
        b"the seal, intact"
    );
}
