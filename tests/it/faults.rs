//! The fault matrix (reliability plan rows C3 and the instrument-error row): a simulator
//! personality misbehaves once, `tsagent measure` fails the run with a typed error naming what
//! happened, every reading reported before the fault is stored and no other, the next run against
//! the same simulator succeeds after resynchronisation, and `tsagent db check` passes.

use crate::common::*;
use predicates::prelude::*;
use tsagent::store::RunStatus;

/// One row of the matrix.
struct Case {
    personality: &'static str,
    fault: &'static str,
    /// The typed error, as the technician reads it.
    expected: &'static str,
    /// Buffered block reads instead of single readings.
    blocks: bool,
    /// The reply deadline.
    timeout: &'static str,
}

impl Case {
    fn dmm(fault: &'static str, expected: &'static str) -> Case {
        Case {
            personality: "generic-scpi-dmm",
            fault,
            expected,
            blocks: false,
            timeout: "500ms",
        }
    }

    fn blocks(fault: &'static str, expected: &'static str) -> Case {
        Case {
            personality: "keysight-34470a",
            fault,
            expected,
            blocks: true,
            timeout: "500ms",
        }
    }

    fn run(&self) {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("dmm");
        let (_sim, _path) = sim_pty(&[
            "--link",
            link.to_str().unwrap(),
            "--personality",
            self.personality,
            "--fault",
            self.fault,
        ]);
        let mut lab = Lab::serial(link.to_str().unwrap());
        lab.timeout = self.timeout.into();
        if self.blocks {
            lab.driver = Some(self.personality.into());
            lab.count = 3;
            lab.read_extra = r#"op = "read_buffer", params = { count = "5" }"#.into();
            // The profile allows a 1 M-point buffer 10 minutes; the matrix needs no such patience.
            lab.extra_instrument =
                "[instrument.profile.operations.read_buffer]\ntimeout = \"500ms\"".into();
        }
        let config = lab.config();

        let failed = measure(&config).code(3);
        let out = failed.get_output();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(self.expected),
            "fault {}: expected {:?} in\n{stderr}",
            self.fault,
            self.expected
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Readings intact: exactly those reported before the fault are in the log.
        let reported = stdout.lines().filter(|l| l.starts_with("reading ")).count();
        let run = lab.store().run(1).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert_eq!(run.readings as usize, reported, "{stdout}");
        assert_eq!(lab.readings().len(), reported);

        // The same instrument, still running: the next run gets back in step and completes.
        measure(&config).success();
        let run = lab.store().run(2).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        let per_run = if self.blocks { 15 } else { 10 };
        assert_eq!(lab.readings().len(), reported + per_run);
        lab.assert_sound();
    }
}

// Replies 0–5 set the meter up (identity, configure, error drain); the fault hits a later reading.

#[test]
fn garbage_is_not_text() {
    Case::dmm("garbage,after=6", "reply is not text").run();
}

#[test]
fn missing_terminator_times_out() {
    Case::dmm("unterminated,after=6", "no complete reply within 500ms").run();
}

#[test]
fn slow_reply_times_out_and_the_late_reply_is_read_past() {
    Case::dmm("slow=1s,after=6", "no complete reply within 500ms").run();
}

#[test]
fn silence_mid_query_times_out() {
    Case::dmm("silent,after=6", "no complete reply within 500ms").run();
}

#[test]
fn flood_without_terminator_is_refused_at_the_cap() {
    // A deadline long enough for the first MiB to arrive on a loaded machine, so the cap is what
    // ends the read.
    Case {
        timeout: "20s",
        ..Case::dmm(
            "flood=10MB,after=6",
            "reply longer than 1048576 bytes without a terminator",
        )
    }
    .run();
}

#[test]
fn queued_instrument_errors_fail_the_step_in_the_instruments_words() {
    Case::dmm(
        "errors=2,after=1",
        r#"the instrument reported -300,"Device-specific error""#,
    )
    .run();
}

#[test]
fn short_block_times_out() {
    Case::blocks("block=short,on=FETC?", "no complete reply within 500ms").run();
}

#[test]
fn block_claiming_ten_gigabytes_is_refused_before_allocation() {
    Case::blocks("block=huge,on=FETC?", "exceeds the cap").run();
}

#[test]
fn indefinite_block_without_end_times_out() {
    Case::blocks(
        "block=indefinite,on=FETC?",
        "no complete reply within 500ms",
    )
    .run();
}

#[test]
fn hang_up_mid_sequence_is_a_lost_connection() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dmm");
    let (sim, _path) = sim_pty(&[
        "--link",
        link.to_str().unwrap(),
        "--fault",
        "disconnect=1s,after=8",
    ]);
    let mut lab = Lab::serial(link.to_str().unwrap());
    lab.timeout = "500ms".into();
    let config = lab.config();
    let out = measure(&config).code(3);
    let out = out.get_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection lost"), "{stderr}");
    let reported = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("reading "))
        .count();
    assert_eq!(lab.readings().len(), reported);
    // The offline event is in the log with the run.
    let events = lab.store().run_events(1).unwrap();
    assert!(
        events.iter().any(|e| e.kind == "instrument_offline"),
        "{events:?}"
    );

    assert_eq!(sim.line(), "down");
    assert!(sim.line().starts_with("pty "));
    measure(&config).success();
    assert_eq!(lab.readings().len(), reported + 10);
    lab.assert_sound();
}

#[test]
fn fault_syntax_errors_name_the_fault() {
    tsagent()
        .args(["sim", "--pty", "--fault", "block=long"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "block `long` is not short, huge or indefinite",
        ));
    tsagent()
        .args(["sim", "--pty", "--personality", "hp-3457a"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown instrument personality `hp-3457a`",
        ));
}

/// Plan row C3's "next valid query succeeds after resync", inside one session as the daemon
/// keeps it: a reply later than the deadline is read past, not taken for the next answer.
#[tokio::test]
async fn resync_reads_past_a_late_reply_in_the_same_session() {
    use std::collections::BTreeMap;
    use std::time::Duration;
    use tsagent::drivers::{Registry, exec};
    use tsagent_sim::{Fault, FaultKind, PersonalityId, SimParams, SimSpec};

    let spec = SimSpec::instrument(PersonalityId::Keysight34470a, SimParams::default());
    let (server, mut session) = sim_session(spec, Duration::from_millis(300)).await;
    let registry = Registry::builtin().unwrap();
    let profile = registry.get("keysight-34470a").unwrap();
    // The read operation's own 30 s deadline would outwait the fault; here the link's 300 ms
    // applies.
    let mut profile = profile.clone();
    if let Some(op) = profile.operations.get_mut("read") {
        op.timeout = None;
    }
    exec::init(&profile, &mut session).await.unwrap();
    let none = BTreeMap::new();

    server.faults().arm(Fault::on(
        "READ?",
        FaultKind::Slow {
            delay: Duration::from_millis(600),
        },
    ));
    let err = exec::run(&profile, &mut session, "read", &none, &none)
        .await
        .unwrap_err();
    assert!(err.needs_resync(), "{err}");
    let identity = tsagent::supervisor::resync(&profile, &mut session, None)
        .await
        .unwrap();
    assert_eq!(identity.model, "34470A");
    // The late answer to READ? was read past by the resync, so it cannot answer a later query.
    let past: Vec<_> = session
        .take_exchanges()
        .into_iter()
        .filter(|x| x.command == "<read>")
        .filter_map(|x| x.reply)
        .collect();
    assert_eq!(past.len(), 2, "{past:?}");
    assert!(past[0].parse::<f64>().is_ok(), "{past:?}");
    assert!(past[1].contains("34470A"), "{past:?}");
    let outcome = exec::run(&profile, &mut session, "read", &none, &none)
        .await
        .unwrap();
    let value = outcome.values[0]
        .measurement
        .as_ref()
        .unwrap()
        .value()
        .unwrap();
    assert!((value - 10.0).abs() < 1e-3, "{value}");
}

/// The same faults from an HP 3458A behind a simulated Prologix GPIB-ETHERNET adapter, shared
/// with a calibrator: the agent's `++read` times out or reads garbage, and recovery (`++clr`
/// and resynchronisation) brings the next run back.
fn prologix_case(fault: &str, expected: &str) {
    let (_sim, addr) = sim_tcp(&[
        "--prologix",
        "22=keysight-3458a,5=fluke-5720a",
        "--fault",
        fault,
    ]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut lab = Lab::new("GPIB0::22::INSTR");
    lab.driver = Some("keysight-3458a".into());
    lab.timeout = "500ms".into();
    lab.extra_instrument = format!(
        "[instrument.profile.operations.read]\ntimeout = \"500ms\"\n\n\
         [[adapter]]\nresource = \"PRLGX-TCPIP0::{host}::{port}::INTFC\"\nread_tmo_ms = 400"
    );
    let config = lab.config();
    let failed = measure(&config).code(3);
    let out = failed.get_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(expected),
        "{fault}: expected {expected:?} in\n{stderr}"
    );
    let reported = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("reading "))
        .count();
    assert_eq!(lab.readings().len(), reported);
    measure(&config).success();
    assert_eq!(lab.readings().len(), reported + 10);
    lab.assert_sound();
}

#[test]
fn prologix_garbage_from_one_address() {
    prologix_case("garbage,addr=22,on=TARM SGL", "reply is not text");
}

#[test]
fn prologix_slow_reply_times_out_and_recovers() {
    prologix_case(
        "slow=2s,addr=22,on=TARM SGL",
        "no complete reply within 500ms",
    );
}

/// A late reply that merely looks like an identity — four comma-separated readings read as
/// `*IDN?` fields — does not end the resynchronisation when the unit is known: it goes on to the
/// real identity, so the next query is not answered by the old one.
#[tokio::test]
async fn resync_is_not_fooled_by_a_reply_shaped_like_an_identity() {
    use std::collections::BTreeMap;
    use std::time::Duration;
    use tsagent::drivers::{Registry, exec};
    use tsagent_sim::{Fault, FaultKind, SimParams, SimSpec};

    let spec = SimSpec::generic(SimParams::default());
    let (server, mut session) = sim_session(spec, Duration::from_millis(300)).await;
    let registry = Registry::builtin().unwrap();
    // The generic profile takes any four-field reply as an identity.
    let profile = registry.get("generic-scpi-dmm").unwrap();
    let unit = exec::identify(profile, &mut session).await.unwrap();
    session.write("SAMP:COUN 4").await.unwrap();
    server.faults().arm(Fault::on(
        "READ?",
        FaultKind::Slow {
            delay: Duration::from_millis(500),
        },
    ));
    assert!(session.query("READ?").await.unwrap_err().is_timeout());
    let identity = tsagent::supervisor::resync(profile, &mut session, Some(&unit))
        .await
        .unwrap();
    assert!(identity.same_unit(&unit));
    let past: Vec<String> = session
        .take_exchanges()
        .into_iter()
        .filter(|x| x.command == "<read>")
        .filter_map(|x| x.reply)
        .collect();
    assert_eq!(past.len(), 2, "{past:?}");
    assert_eq!(past[0].split(',').count(), 4, "{past:?}");
    session.write("SAMP:COUN 1").await.unwrap();
    let none = BTreeMap::new();
    let outcome = exec::run(profile, &mut session, "read", &none, &none)
        .await
        .unwrap();
    assert_eq!(outcome.values.len(), 1);
}

/// Faults can come from the config too: every simulator the agent starts (here the in-process
/// `SIM::PTY::INSTR`) injects them, so a lab can rehearse failures with its own sequences.
#[test]
fn faults_from_the_config_reach_the_agents_own_simulator() {
    let lab = Lab::simulated();
    let config = lab.config();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("seed = 7", "seed = 7\nfaults = [\"garbage,on=READ?\"]");
    std::fs::write(&config, text).unwrap();
    measure(&config)
        .code(3)
        .stderr(predicate::str::contains("reply is not text"));
    lab.assert_sound();

    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("garbage,on=READ?", "trip=2s");
    std::fs::write(&config, text).unwrap();
    measure(&config)
        .code(2)
        .stderr(predicate::str::contains("invalid `simulator.faults`"));
}
