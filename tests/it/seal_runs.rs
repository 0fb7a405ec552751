//! Sealing while a run is in progress (issue 8, item 7): the run is not split across bundles.

use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;
use predicates::prelude::*;

/// A lab whose run takes a while, with a key, and `measure` started and paused (SIGSTOP) after a
/// few readings: its run is `running` in the log for as long as the test needs.
fn paused_run() -> (Lab, std::path::PathBuf, Proc) {
    let mut lab = Lab::simulated();
    lab.count = 12;
    lab.interval = "20ms".into();
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();
    let run = Proc::spawn(
        Command::new(bin())
            .args(["measure", "--sequence", "s", "--config"])
            .arg(&config),
    );
    run.wait_for(|l| l.starts_with("reading 3/"));
    run.signal(Signal::SIGSTOP);
    (lab, config, run)
}

fn seal(config: &std::path::Path, args: &[&str]) -> assert_cmd::assert::Assert {
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(config)
        .args(args)
        .timeout(PATIENCE)
        .assert()
}

#[test]
fn a_seal_during_a_run_waits_for_the_run_to_end() {
    let (lab, config, run) = paused_run();
    seal(&config, &[]).success().stdout(
        predicate::str::contains("run 1 is still in progress")
            .and(predicate::str::contains("sealed bundle").not()),
    );
    assert!(!lab.bundles().join("TEST-LAB-Z1-000001.tar").exists());
    run.signal(Signal::SIGCONT);
    let (status, err) = run.finish();
    assert!(status.success(), "{err}");
    // The whole run, in one bundle.
    seal(&config, &[])
        .success()
        .stdout(predicate::str::contains(
            "sealed bundle 1: readings 1–12 (12)",
        ));
    seal(&config, &[])
        .success()
        .stdout(predicate::str::contains("nothing new to seal"));
}

#[test]
fn include_running_seals_a_run_in_progress_on_request() {
    let (lab, config, run) = paused_run();
    let sealed = seal(&config, &["--include-running"]).success();
    let out = String::from_utf8_lossy(&sealed.get_output().stdout).into_owned();
    assert!(out.contains("sealed bundle 1: readings 1–"), "{out}");
    assert!(!out.contains("1–12 (12)"), "the run was still going: {out}");
    assert!(lab.bundles().join("TEST-LAB-Z1-000001.tar").exists());
    run.signal(Signal::SIGCONT);
    let (status, err) = run.finish();
    assert!(status.success(), "{err}");
    seal(&config, &[]).success().stdout(
        predicate::str::contains("sealed bundle 2:").and(predicate::str::contains("–12 (")),
    );
}

#[test]
fn a_run_whose_process_died_is_marked_interrupted_and_sealed() {
    let (_lab, config, run) = paused_run();
    run.signal(Signal::SIGKILL);
    let (status, _) = run.finish();
    assert!(!status.success());
    let sealed = seal(&config, &[]).success();
    let out = String::from_utf8_lossy(&sealed.get_output().stdout).into_owned();
    assert!(
        out.contains(
            "run 1: the agent stopped during it (crash or power loss); marked interrupted"
        ),
        "{out}"
    );
    assert!(out.contains("sealed bundle 1: readings 1–"), "{out}");
}
