//! `tsagent run`: the schedule, SIGTERM after the reading in progress, crash recovery at start.

use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;
use tsagent::store::RunStatus;

fn daemon(config: &std::path::Path) -> Proc {
    Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(config),
    )
}

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
    lab.every = Some("1h".into());
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
    lab.every = Some("1h".into());
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
