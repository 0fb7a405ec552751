//! How runs begin and end, as the pilot reads them: every run has a `run_started` event (sequence,
//! its hash, operator, trigger) and, however it ended, a `run_ended` event (status, reading range,
//! reason), in the log and so in the bundle.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::common::*;
use tsagent::store::RunStatus;

/// The `run_*` events of a sealed bundle, as (run id, kind, detail).
fn bundle_run_events(bundle: &Path) -> Vec<(u64, String, Value)> {
    let bytes = std::fs::read(bundle).unwrap();
    let tar = tsagent_bundle::read_tar(&bytes, tsagent_bundle::TarLimits::DEFAULT).unwrap();
    tsagent_bundle::records::read_events(tar.files.events)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("run_"))
        .map(|e| (e.run_id.unwrap(), e.kind, e.detail))
        .collect()
}

/// The one event of `kind` of run `run`.
fn of<'a>(events: &'a [(u64, String, Value)], run: u64, kind: &str) -> &'a Value {
    let found: Vec<_> = events
        .iter()
        .filter(|(r, k, _)| *r == run && k == kind)
        .collect();
    assert_eq!(found.len(), 1, "run {run} {kind}: {events:?}");
    &found[0].2
}

#[test]
fn every_run_begins_and_ends_in_the_bundle_however_it_ended() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();

    // Run 1 is killed part-way; the next start finds it and ends it.
    let run = Proc::spawn(
        Command::new(bin())
            .args([
                "measure",
                "--sequence",
                "s",
                "--operator",
                "jdoe",
                "--config",
            ])
            .arg(&config),
    );
    run.wait_for(|l| l.starts_with("reading 5/"));
    run.signal(Signal::SIGKILL);
    run.finish();
    // Run 2 completes.
    lab.count = 3;
    measure(&lab.config()).success();
    // Run 3 fails: its instrument is not there.
    lab.resource = "ASRL/dev/does-not-exist::INSTR".into();
    measure(&lab.config()).code(3);
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success();
    let bundle = std::fs::read_dir(lab.bundles())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "tar"))
        .unwrap();
    let events = bundle_run_events(&bundle);

    let start1 = of(&events, 1, "run_started");
    assert_eq!(start1["sequence"], "s");
    assert_eq!(start1["operator"], "jdoe");
    assert_eq!(start1["trigger"], "manual");
    let hash1 = start1["sequence_sha256"].as_str().unwrap();
    assert_eq!(hash1.len(), 64, "{hash1}");
    let end1 = of(&events, 1, "run_ended");
    assert_eq!(end1["status"], "interrupted", "{end1}");
    let taken = end1["readings"].as_u64().unwrap();
    assert!(taken >= 5, "{end1}");
    assert_eq!(end1["first_reading"], 1);
    assert_eq!(end1["last_reading"].as_u64(), Some(taken));
    assert!(
        end1["reason"].as_str().unwrap().contains("found running"),
        "{end1}"
    );

    let start2 = of(&events, 2, "run_started");
    assert_eq!(start2["operator"], "tester");
    // The method changed (3 readings, not a million): the hash says so.
    assert_ne!(start2["sequence_sha256"], start1["sequence_sha256"]);
    let end2 = of(&events, 2, "run_ended");
    assert_eq!(end2["status"], "completed");
    assert_eq!(end2["readings"], 3);
    assert_eq!(end2["first_reading"].as_u64(), Some(taken + 1));
    assert_eq!(end2["last_reading"].as_u64(), Some(taken + 3));
    assert_eq!(end2["reason"], Value::Null);

    // Same sequence, another instrument resource: the same method.
    assert_eq!(
        of(&events, 3, "run_started")["sequence_sha256"],
        start2["sequence_sha256"]
    );
    let end3 = of(&events, 3, "run_ended");
    assert_eq!(end3["status"], "failed");
    assert_eq!(end3["readings"], 0);
    assert_eq!(end3["first_reading"], Value::Null);
    assert!(
        end3["reason"].as_str().unwrap().contains("cannot connect"),
        "{end3}"
    );
    // The end replaces the old `run_failed` line rather than doubling it.
    assert!(!events.iter().any(|(_, k, _)| k == "run_failed"));
    lab.assert_sound();
}

/// Waits until the demo in `dir` has committed a reading.
fn wait_for_readings(db: &Path) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count = db
            .exists()
            .then(|| {
                tsagent::store::Store::open_existing(db)
                    .ok()?
                    .run(1)
                    .ok()
                    .flatten()
                    .map(|r| r.readings)
            })
            .flatten()
            .unwrap_or(0);
        if count > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no reading from the demo");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn demo(dir: &Path, readings: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("demo")
        .arg("--dir")
        .arg(dir)
        .args(["--readings", readings]);
    cmd
}

#[test]
fn a_demo_ended_by_a_hang_up_marks_its_run_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    let db = lab.join("tsagent.db");
    let run = Proc::spawn(&mut demo(&lab, "10000000"));
    wait_for_readings(&db);
    // The terminal closed (an SSH session dropped): the run stops after the reading in progress.
    run.signal(Signal::SIGHUP);
    let (status, _) = run.finish();
    // 128 + SIGHUP, as shells expect; nothing is sealed from a run cut short.
    assert_eq!(status.code(), Some(129), "{status:?}");
    assert!(
        !lab.join("bundles")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    let store = tsagent::store::Store::open_existing(&db).unwrap();
    let row = store.run(1).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Stopped, "{row:?}");
    let events = store.run_events(1).unwrap();
    let started = events.iter().find(|e| e.kind == "run_started").unwrap();
    assert_eq!(started.detail["trigger"], "demo");
    let ended = events.iter().find(|e| e.kind == "run_ended").unwrap();
    assert_eq!(ended.detail["status"], "stopped");
    assert_eq!(ended.detail["readings"].as_u64(), Some(row.readings));
}

#[test]
fn a_demo_killed_outright_is_ended_at_the_next_demo() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    let db = lab.join("tsagent.db");
    let run = Proc::spawn(&mut demo(&lab, "10000000"));
    wait_for_readings(&db);
    run.signal(Signal::SIGKILL);
    run.finish();
    let out = demo(&lab, "5").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let store = tsagent::store::Store::open_existing(&db).unwrap();
    let row = store.run(1).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Interrupted, "{row:?}");
    assert!(
        store
            .run_events(1)
            .unwrap()
            .iter()
            .any(|e| e.kind == "run_ended" && e.detail["status"] == "interrupted")
    );
    assert_eq!(store.run(2).unwrap().unwrap().status, RunStatus::Completed);
}
