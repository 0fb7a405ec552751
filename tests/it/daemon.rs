//! `tsagent run`: the schedule, SIGTERM after the reading in progress, crash recovery at start.

use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;
use tsagent::store::RunStatus;

#[test]
fn runs_on_schedule_until_sigterm() {
    let mut lab = Lab::simulated();
    lab.count = 3;
    lab.every = Some("1s".into());
    let d = daemon(&lab.config());
    d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    d.wait_for_err(|l| l.contains("run ended"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let store = lab.store();
    assert_eq!(store.run(1).unwrap().unwrap().status, RunStatus::Completed);
    assert_eq!(store.run(2).unwrap().unwrap().status, RunStatus::Completed);
    assert!(lab.readings().len() >= 6);
    lab.assert_sound();
}

#[test]
fn sigterm_stops_after_the_reading_in_progress() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "20ms".into();
    lab.every = Some("1s".into());
    let d = daemon(&lab.config());
    d.wait_for_err(|l| l.contains("reading committed") && l.contains("done=5 "));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let run = lab.store().run(1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Stopped, "{run:?}");
    assert!(run.readings >= 5 && run.readings < 1_000_000, "{run:?}");
    lab.assert_sound();
}

#[test]
fn start_up_marks_crashed_runs_interrupted() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    let config = lab.config();
    let cut = Proc::spawn(
        Command::new(bin())
            .args(["measure", "--sequence", "s", "--config"])
            .arg(&config),
    );
    cut.wait_for(|l| l.starts_with("reading 10/"));
    cut.signal(Signal::SIGKILL);
    let _ = cut.finish();
    assert_eq!(
        lab.store().run(1).unwrap().unwrap().status,
        RunStatus::Running
    );

    lab.count = 2;
    lab.every = Some("1s".into());
    let d = daemon(&lab.config());
    d.wait_for_err(|l| l.contains("marked interrupted") && l.contains("run_id=1"));
    d.wait_for_err(|l| l.contains("run ended"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let store = lab.store();
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(run.readings >= 10);
    assert!(
        store
            .run_events(1)
            .unwrap()
            .iter()
            .any(|e| e.kind == "run_ended" && e.detail["status"] == "interrupted")
    );
    assert_eq!(store.run(2).unwrap().unwrap().status, RunStatus::Completed);
    lab.assert_sound();
}

#[test]
fn nothing_scheduled_is_a_config_error() {
    let lab = Lab::simulated();
    tsagent()
        .args(["run", "--config"])
        .arg(lab.config())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no sequence in"));
}

fn utc_us_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The `slot=` of a daemon log line, as UTC microseconds.
fn slot_of(line: &str) -> i64 {
    let slot = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("slot="))
        .unwrap_or_else(|| panic!("no slot in {line:?}"));
    tsagent::clock::parse_rfc3339(slot).unwrap()
}

/// Slots are aligned to the clock, not counted from the daemon's start: with `every = "2s"` and
/// `at = "1s"` every run is for an odd second of UTC, the first one the first such second after
/// the start, and it starts in its slot, not before.
#[test]
fn slots_are_aligned_to_the_clock_with_an_offset() {
    let mut lab = Lab::simulated();
    lab.count = 1;
    lab.every = Some("2s".into());
    let config = lab.config();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("every = \"2s\"", "every = \"2s\"\nat = \"1s\"");
    std::fs::write(&config, text).unwrap();

    let started = utc_us_now();
    let d = daemon(&config);
    let first = d.wait_for_err(|l| l.contains("scheduled"));
    assert!(first.contains("first_slot="), "{first}");
    let mut slots = Vec::new();
    for _ in 0..2 {
        slots.push(slot_of(&d.wait_for_err(|l| l.contains("slot due"))));
        d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    }
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");

    for slot in &slots {
        assert_eq!(
            slot.rem_euclid(2_000_000),
            1_000_000,
            "slot {slot} is not an odd second"
        );
    }
    assert!(
        slots[0] >= started && slots[0] - started <= 2_000_000,
        "{slots:?} from {started}"
    );
    assert_eq!(slots[1] - slots[0], 2_000_000);
    let conn = rusqlite::Connection::open(lab.db()).unwrap();
    let run_starts: Vec<i64> = conn
        .prepare("SELECT started_utc_us FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (slot, run_start) in slots.iter().zip(&run_starts) {
        // In its slot: not early, and long before the next one.
        assert!(
            *run_start >= *slot && run_start - slot < 1_000_000,
            "run at {run_start} for slot {slot}"
        );
    }
    lab.assert_sound();
}

/// A slot that passes while a run is still going is not dropped silently: it is a `slot_missed`
/// event naming the sequence, the slot and the run in the way, and the latest slot runs late.
#[test]
fn a_slot_missed_during_a_long_run_is_recorded() {
    let mut lab = Lab::simulated();
    // Three readings 1.1 s apart: each run outlasts the next two 1 s slots.
    lab.count = 3;
    lab.interval = "1100ms".into();
    lab.every = Some("1s".into());
    let d = daemon(&lab.config());
    let missed = d.wait_for_err(|l| l.contains("slot missed"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    assert!(missed.contains("was still going"), "{missed}");

    let store = lab.store();
    assert_eq!(store.run(1).unwrap().unwrap().status, RunStatus::Completed);
    let conn = rusqlite::Connection::open(lab.db()).unwrap();
    let details: Vec<String> = conn
        .prepare("SELECT detail FROM events WHERE kind = 'slot_missed' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!details.is_empty());
    let detail: serde_json::Value = serde_json::from_str(&details[0]).unwrap();
    assert_eq!(detail["sequence"], "s", "{detail}");
    assert_eq!(detail["slots"], 1, "{detail}");
    assert_eq!(detail["reason"], "run 1 of `s` was still going", "{detail}");
    let slot = detail["slot_utc"].as_str().unwrap();
    assert!(slot.ends_with(".000000Z"), "not a whole second: {slot}");
    lab.assert_sound();
}
