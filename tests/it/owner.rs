//! One owner of the lab: while the daemon runs, no other process opens its instruments or runs a
//! sequence into its log; the refusal names the holder.

use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;

#[test]
fn while_the_daemon_runs_a_second_daemon_is_refused_naming_it() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "50ms".into();
    lab.every = Some("1s".into());
    let config = lab.config();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("reading committed"));
    let pid = d.pid().as_raw();
    let socket = lab.path().join("tsagent.sock");
    let expect = |args: &[&str]| {
        let out = tsagent()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(7), "{args:?}: {stderr}");
        assert!(stderr.contains("held by the daemon"), "{stderr}");
        assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
        assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    };
    expect(&["run"]);
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    // Only the daemon's run is in the log.
    let second_run = lab.store().run(2).unwrap();
    assert!(second_run.is_none(), "{second_run:?}");
    // Once it is gone, the lab is free again.
    lab.count = 2;
    lab.every = None;
    measure(&lab.config()).success();
    lab.assert_sound();
}

#[test]
fn a_second_measure_is_refused_while_the_first_runs() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "50ms".into();
    let config = lab.config();
    let first = Proc::spawn(
        Command::new(bin())
            .args(["measure", "--sequence", "s", "--config"])
            .arg(&config),
    );
    first.wait_for(|l| l.starts_with("reading 1/"));
    let out = tsagent()
        .args(["measure", "--sequence", "s", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("`tsagent measure`"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid().as_raw())),
        "{stderr}"
    );
    first.signal(Signal::SIGINT);
    let _ = first.finish();
    lab.assert_sound();
}
