//! Signals sent to the real binary: a first one stops after the reading in progress and says so,
//! a second stops at once (the run marked, the readings taken kept); `measure` exits 128 + the
//! signal's number as shells expect; the daemon stops cleanly on SIGHUP as on SIGTERM.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;
use tsagent::store::RunStatus;
use tsagent_sim::{Fault, FaultKind, SimParams, SimSpec, TcpServer};

fn measuring(config: &std::path::Path) -> Proc {
    Proc::spawn(
        Command::new(bin())
            .args(["measure", "--sequence", "s", "--config"])
            .arg(config),
    )
}

/// Every signal that stops `measure` stops it after the reading in progress, says so, marks the
/// run `stopped` with every reading it reported kept, and exits 128 + the signal's number.
#[test]
fn a_signal_stops_measure_after_the_reading_in_progress_and_exits_128_plus_its_number() {
    for (signal, code) in [
        (Signal::SIGINT, 130),
        (Signal::SIGTERM, 143),
        (Signal::SIGHUP, 129),
    ] {
        let mut lab = Lab::simulated();
        lab.count = 1_000_000;
        lab.interval = "20ms".into();
        let m = measuring(&lab.config());
        m.wait_for(|l| l.starts_with("reading 5/"));
        m.signal(signal);
        let name = signal.as_str();
        m.wait_for_err(|l| l.contains(&format!("{name}: stopping after the reading in progress")));
        let (status, stderr) = m.finish();
        assert_eq!(status.code(), Some(code), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("stopped by {name}")),
            "{name}: {stderr}"
        );
        let run = lab.store().run(1).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Stopped, "{name}: {run:?}");
        assert!(run.readings >= 5 && run.readings < 1_000_000, "{run:?}");
        assert_eq!(lab.readings().len() as u64, run.readings);
        lab.assert_sound();
    }
}

/// A simulated DMM on TCP whose eighth reply (a reading, a few into the run) comes 100 s late,
/// served from this process so the test knows when that reply is under way; the runtime serving
/// it lives as long as the returned pair.
fn served_dmm() -> (tokio::runtime::Runtime, TcpServer) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(TcpServer::start_spec(
            SimSpec::generic(SimParams::default()),
            "127.0.0.1:0",
        ))
        .unwrap();
    server.faults().arm(Fault::after(
        7,
        FaultKind::Slow {
            delay: Duration::from_secs(100),
        },
    ));
    (rt, server)
}

/// Waits until the agent is waiting for the late reply.
fn wait_for_the_late_reply(rt: &tokio::runtime::Runtime, server: &TcpServer) {
    rt.block_on(async {
        tokio::time::timeout(PATIENCE, server.faults().wait_fired(1))
            .await
            .expect("the agent never asked for the held reply");
    });
}

/// During a slow reply a first Ctrl-C says it will stop after the reading in progress; a second
/// one stops at once, without waiting for the reply: the run is marked `interrupted` (its
/// `run_ended` event says so), every reading reported before is committed, and the exit code is
/// 130.
#[test]
fn during_a_slow_reply_a_second_ctrl_c_stops_at_once() {
    let (rt, server) = served_dmm();
    let mut lab = Lab::tcp(&server.local_addr().to_string());
    lab.count = 10;
    lab.timeout = "300s".into();
    let m = measuring(&lab.config());
    wait_for_the_late_reply(&rt, &server);

    m.signal(Signal::SIGINT);
    m.wait_for_err(|l| l.contains("SIGINT: stopping after the reading in progress"));
    m.signal(Signal::SIGINT);
    m.wait_for_err(|l| l.contains("SIGINT again: stopping now"));
    let reported = m
        .rest()
        .iter()
        .filter(|l| l.starts_with("reading "))
        .count() as u64;
    let (status, stderr) = m.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let run = lab.store().run(1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted, "{run:?}");
    assert!(
        run.message.as_deref().unwrap_or("").contains("abandoned"),
        "{run:?}"
    );
    assert!((1..10).contains(&run.readings), "{run:?}");
    // Every reading reported was committed, and nothing else.
    assert_eq!(reported, run.readings);
    assert_eq!(lab.readings().len() as u64, run.readings);
    assert!(
        lab.store()
            .run_events(1)
            .unwrap()
            .iter()
            .any(|e| e.kind == "run_ended" && e.detail["status"] == "interrupted"),
    );
    lab.assert_sound();
}

/// The daemon stops cleanly on SIGHUP, as on SIGTERM: it says so, the run in progress ends
/// `stopped` after its reading, and the exit is 0 (it is how a service ends, not a failure).
#[test]
fn sighup_stops_the_daemon_cleanly() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "20ms".into();
    lab.every = Some("1s".into());
    let d = daemon(&lab.config());
    d.wait_for_err(|l| l.contains("reading committed") && l.contains("done=5 "));
    d.signal(Signal::SIGHUP);
    d.wait_for_err(|l| l.contains("SIGHUP: stopping after the reading in progress"));
    let (status, stderr) = d.finish();
    assert!(status.success(), "{status:?} {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let run = lab.store().run(1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Stopped, "{run:?}");
    lab.assert_sound();
}

/// A second signal stops the daemon at once too, in the middle of a slow reply: the run is marked
/// `interrupted`, and the exit code says which signal cut it short.
#[test]
fn a_second_sigterm_stops_the_daemon_at_once() {
    let (rt, server) = served_dmm();
    let mut lab = Lab::tcp(&server.local_addr().to_string());
    lab.count = 10;
    lab.timeout = "300s".into();
    lab.every = Some("1s".into());
    let d = daemon(&lab.config());
    wait_for_the_late_reply(&rt, &server);
    d.signal(Signal::SIGTERM);
    d.wait_for_err(|l| l.contains("SIGTERM: stopping after the reading in progress"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM again: stopping now"), "{stderr}");
    let store = lab.store();
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted, "{run:?}");
    assert_eq!(lab.readings().len() as u64, run.readings);
    assert!((1..10).contains(&run.readings), "{run:?}");
    lab.assert_sound();
}
