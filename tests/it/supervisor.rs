//! The connection supervisor in the daemon (reliability plan row C1): a serial instrument that
//! vanishes for 30 s and comes back under another device name is taken offline, waited for
//! without spinning, found again through its stable link, checked to be the same unit and
//! measured again; the outage is one closed record in the log; nothing is measured while it is
//! gone. A different unit on the same port is refused.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use nix::sys::signal::Signal;

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: nix::unistd::Pid) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name, which may itself contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on every Linux ABI.
fn clock_ticks_per_second() -> f64 {
    100.0
}

fn utc_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `(kind, utc_us, detail)` of every event, in order.
fn events(lab: &Lab) -> Vec<(String, i64, serde_json::Value)> {
    let conn = rusqlite::Connection::open(lab.db()).unwrap();
    let mut stmt = conn
        .prepare("SELECT kind, utc_us, detail FROM events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        let detail: String = r.get(2)?;
        Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&detail).unwrap()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The daemon measuring a simulated DMM on a stable link every second, two readings a run.
fn monitored(link: &Path) -> Lab {
    let mut lab = Lab::serial(link.to_str().unwrap());
    lab.count = 2;
    lab.every = Some("1s".into());
    lab.timeout = "1s".into();
    lab
}

#[test]
fn serial_gone_thirty_seconds_under_a_new_name_is_waited_for_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("by-id-dmm");
    // 12 replies: the first two or three runs, then the line goes away mid-run or between runs.
    let (sim, first_path) = sim_pty(&[
        "--link",
        link.to_str().unwrap(),
        "--fault",
        "disconnect=30s,new-path,after=12",
    ]);
    let lab = monitored(&link);
    let d = daemon(&lab.config());

    assert_eq!(sim.line(), "down");
    let (down_at, down_utc) = (Instant::now(), utc_us());
    let ticks_at_down = cpu_ticks(d.pid());
    d.wait_for_err(|l| l.contains("instrument offline"));

    let back = sim.line();
    let (back_at, back_utc) = (Instant::now(), utc_us());
    let ticks_while_gone = cpu_ticks(d.pid()) - ticks_at_down;
    let new_path = back.strip_prefix("pty ").unwrap();
    assert_ne!(
        new_path, first_path,
        "the device came back under a new name"
    );
    d.wait_for_err(|l| l.contains("instrument online again"));
    d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");

    // No busy loop while the device is gone.
    let gone_s = back_at.duration_since(down_at).as_secs_f64();
    let cpu = ticks_while_gone as f64 / clock_ticks_per_second() / gone_s;
    eprintln!("C1: CPU while gone {:.2} % over {gone_s:.1} s", cpu * 100.0);
    assert!(
        cpu < 0.05,
        "CPU {:.1} % while the port was gone",
        cpu * 100.0
    );

    // One outage, opened when the line went and closed when it was back.
    let events = events(&lab);
    let offline: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "instrument_offline")
        .collect();
    let online: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "instrument_online")
        .collect();
    assert_eq!((offline.len(), online.len()), (1, 1), "{events:?}");
    let (t0, t1) = (offline[0].1, online[0].1);
    let detected_s = (t0 - down_utc) as f64 / 1e6;
    let reconnected_s = (t1 - back_utc) as f64 / 1e6;
    eprintln!(
        "C1: detected {detected_s:.2} s after the hang-up, reconnected {reconnected_s:.2} s after the return"
    );
    assert!(detected_s <= 3.0, "detected after {detected_s} s");
    assert!(reconnected_s <= 5.0, "reconnected after {reconnected_s} s");
    assert!(
        t1 > back_utc - 1_000_000,
        "online before the device was back"
    );
    let since = online[0].2["offline_since_utc"].as_str().unwrap();
    assert!(!since.is_empty());
    assert!(online[0].2["offline_s"].as_f64().unwrap() >= 25.0);

    measured_around(&lab, t0, t1);
    lab.assert_sound();
}

#[test]
fn another_unit_on_the_same_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dmm");
    let (sim, _path) = sim_pty(&[
        "--link",
        link.to_str().unwrap(),
        "--fault",
        "disconnect=1s,serial=SWAPPED01,after=12",
    ]);
    let lab = monitored(&link);
    let d = daemon(&lab.config());
    assert_eq!(sim.line(), "down");
    assert!(sim.line().starts_with("pty "));
    let refused = d.wait_for_err(|l| l.contains("instrument refused"));
    assert!(refused.contains("SWAPPED01"), "{refused}");
    let readings_at_refusal = lab.readings().len();
    // The next scheduled run does not measure the stranger.
    d.wait_for_err(|l| l.contains("run failed") && l.contains("refused"));
    d.wait_for_err(|l| l.contains("run failed") && l.contains("refused"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(lab.readings().len(), readings_at_refusal);
    let events = events(&lab);
    let refusal = events
        .iter()
        .find(|e| e.0 == "instrument_refused")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        refusal.2["found"].as_str().unwrap().contains("SWAPPED01"),
        "{refusal:?}"
    );
    assert!(!events.iter().any(|e| e.0 == "instrument_online"));
    let refusals = events
        .iter()
        .filter(|e| e.0 == "instrument_refused")
        .count();
    assert_eq!(
        refusals, 1,
        "one record per stranger, not one per retry: {events:?}"
    );
    lab.assert_sound();
}

#[test]
fn a_unit_other_than_the_configured_serial_number_is_refused_from_the_start() {
    let mut lab = Lab::simulated();
    lab.extra_instrument = "serial_number = \"MY54000001\"".into();
    measure(&lab.config())
        .code(3)
        .stderr(predicates::str::contains(
            "not the unit named in the config: expected serial MY54000001, found TSAGENT SIM-DMM serial SIM0000001",
        ));
    assert!(lab.readings().is_empty());
    let events = events(&lab);
    assert!(
        events
            .iter()
            .any(|e| e.0 == "instrument_refused" && e.2["expected"] == "serial MY54000001"),
        "{events:?}"
    );

    lab.extra_instrument = "serial_number = \"SIM0000001\"".into();
    measure(&lab.config()).success();
    assert_eq!(lab.readings().len(), 10);
    lab.assert_sound();
}

/// Repeated timeouts take an instrument offline: a session left out of step by a timeout is
/// resynchronised before its next use; when that also meets silence, the instrument goes offline
/// (an outage event naming why) and the next use reopens it once it answers again.
#[tokio::test(flavor = "current_thread")]
async fn an_instrument_that_stops_answering_goes_offline_and_comes_back() {
    use std::collections::BTreeMap;
    use tsagent::clock::SystemClock;
    use tsagent::config::Config;
    use tsagent::drivers::exec;
    use tsagent::supervisor::Supervisor;
    use tsagent_sim::{Fault, FaultKind, PtyServer, SimParams, SimSpec};

    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dmm");
    let sim =
        PtyServer::start_spec(SimSpec::generic(SimParams::default()), Some(link.clone())).unwrap();
    let mut lab = Lab::serial(link.to_str().unwrap());
    lab.timeout = "200ms".into();
    let config = Config::load(&lab.config()).unwrap();
    let instrument = &config.instruments[0];
    let clock = SystemClock::new();
    let mut supervisor = Supervisor::new(&config);
    let none = BTreeMap::new();

    let session = supervisor.session(instrument, &clock).await.unwrap();
    sim.faults().arm(Fault::now(FaultKind::Silent).repeating());
    let err = exec::run(&instrument.profile, session, "read", &none, &none)
        .await
        .unwrap_err();
    assert!(err.needs_resync(), "{err}");
    supervisor.out_of_step("dmm");
    // The resync meets silence too: offline, not a fabricated answer.
    let err = supervisor.session(instrument, &clock).await.err().unwrap();
    assert!(
        tsagent::error::report(&err).contains("no identity reply"),
        "{}",
        tsagent::error::report(&err)
    );
    assert!(!supervisor.is_online("dmm"));
    let events = supervisor.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event.kind(), "instrument_offline");

    sim.faults().clear();
    let session = supervisor.session(instrument, &clock).await.unwrap();
    let outcome = exec::run(&instrument.profile, session, "read", &none, &none)
        .await
        .unwrap();
    assert_eq!(outcome.values.len(), 1);
    let events = supervisor.take_events();
    assert!(
        events.iter().any(|e| e.event.kind() == "instrument_online"),
        "{events:?}"
    );
}

/// A line of the daemon's log that names `instrument` (its `instrument=` field).
fn names(line: &str, instrument: &str) -> bool {
    line.contains(&format!("instrument={instrument} "))
        || line.contains(&format!("instrument=\"{instrument}\""))
        || line.ends_with(&format!("instrument={instrument}"))
}

/// The daemon measuring an HP 3458A every second behind a Prologix adapter (`adapter`, the
/// resource of the `[[adapter]]` for board 0), with a Fluke 5720A on the same bus that no
/// sequence uses: both share the adapter's connection.
fn gpib_lab(adapter: &str) -> Lab {
    let mut lab = Lab::new("GPIB0::22::INSTR");
    lab.driver = Some("keysight-3458a".into());
    lab.count = 2;
    lab.every = Some("1s".into());
    lab.timeout = "1s".into();
    lab.extra_instrument = format!(
        "\n[[adapter]]\nresource = \"{adapter}\"\n\n\
         [[instrument]]\nname = \"cal\"\nresource = \"GPIB0::5::INSTR\"\ndriver = \"fluke-5720a\"\n"
    );
    lab
}

/// Reliability plan row C1 for a Prologix adapter: `sim` serves the bus and takes it away for
/// 30 s (its `down` line) and brings it back (the next line). Every instrument on the bus goes
/// offline when the adapter does — the one being measured and the one idle on the same bus — and
/// each comes back, identified again, once the adapter's shared stream is reopened: detected
/// within 3 s, reconnected within 5 s of the return, less than 5 % CPU meanwhile, one closed
/// outage per instrument and nothing measured while it was gone.
fn adapter_gone_and_back(sim: &Proc, lab: &Lab) {
    // Both instruments are connected at start, before the first run, so before the adapter
    // goes away in the middle of one.
    let d = daemon(&lab.config());

    assert_eq!(sim.line(), "down");
    let (down_at, down_utc) = (Instant::now(), utc_us());
    let ticks_at_down = cpu_ticks(d.pid());
    d.wait_for_err(|l| l.contains("instrument offline"));

    let back = sim.line();
    let (back_at, back_utc) = (Instant::now(), utc_us());
    let ticks_while_gone = cpu_ticks(d.pid()) - ticks_at_down;
    assert!(
        back.starts_with("pty ") || back.starts_with("tcp "),
        "{back}"
    );
    let mut returned = Vec::new();
    while returned.len() < 2 {
        let line = d.wait_for_err(|l| l.contains("instrument online again"));
        returned.extend(["dmm", "cal"].into_iter().filter(|n| names(&line, n)));
    }
    returned.sort_unstable();
    assert_eq!(returned, ["cal", "dmm"]);
    d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");

    let gone_s = back_at.duration_since(down_at).as_secs_f64();
    let cpu = ticks_while_gone as f64 / clock_ticks_per_second() / gone_s;
    eprintln!(
        "C1 adapter: CPU while gone {:.2} % over {gone_s:.1} s",
        cpu * 100.0
    );
    assert!(
        cpu < 0.05,
        "CPU {:.1} % while the adapter was gone",
        cpu * 100.0
    );

    let events = events(lab);
    assert!(
        !events.iter().any(|e| e.0 == "instrument_refused"),
        "{events:?}"
    );
    let mut outage = None;
    for name in ["dmm", "cal"] {
        let of = |kind: &str| -> Vec<(i64, serde_json::Value)> {
            events
                .iter()
                .filter(|e| e.0 == kind && e.2["instrument"] == name)
                .map(|e| (e.1, e.2.clone()))
                .collect()
        };
        let (offline, online) = (of("instrument_offline"), of("instrument_online"));
        assert_eq!((offline.len(), online.len()), (1, 1), "{name}: {events:?}");
        let (t0, t1) = (offline[0].0, online[0].0);
        let detected_s = (t0 - down_utc) as f64 / 1e6;
        let reconnected_s = (t1 - back_utc) as f64 / 1e6;
        eprintln!(
            "C1 adapter, {name}: detected {detected_s:.2} s after the hang-up, reconnected {reconnected_s:.2} s after the return"
        );
        assert!(detected_s <= 3.0, "{name}: detected after {detected_s} s");
        assert!(
            reconnected_s <= 5.0,
            "{name}: reconnected after {reconnected_s} s"
        );
        assert!(
            t1 > back_utc - 1_000_000,
            "{name}: online before the adapter was back"
        );
        assert!(
            online[0].1["offline_s"].as_f64().unwrap() >= 25.0,
            "{online:?}"
        );
        if name == "dmm" {
            outage = Some((t0, t1));
        }
    }
    let (t0, t1) = outage.unwrap();
    measured_around(lab, t0, t1);
    lab.assert_sound();
}

#[test]
fn usb_prologix_adapter_gone_thirty_seconds_under_a_new_name_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("by-id-prologix");
    let (sim, _path) = sim_pty(&[
        "--link",
        link.to_str().unwrap(),
        "--prologix",
        "22=keysight-3458a,5=fluke-5720a",
        "--fault",
        "disconnect=30s,new-path,after=20",
    ]);
    let lab = gpib_lab(&format!("PRLGX-ASRL0::{}::INTFC", link.display()));
    adapter_gone_and_back(&sim, &lab);
}

#[test]
fn ethernet_prologix_adapter_gone_thirty_seconds_is_reopened() {
    let (sim, addr) = sim_tcp(&[
        "--prologix",
        "22=keysight-3458a,5=fluke-5720a",
        "--fault",
        "disconnect=30s,after=20",
    ]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let lab = gpib_lab(&format!("PRLGX-TCPIP0::{host}::{port}::INTFC"));
    adapter_gone_and_back(&sim, &lab);
}

/// Every instrument on a returned bus is identified again: a unit that comes back with another
/// serial number behind the reopened adapter is refused, while its bus mate, the same unit, is
/// measured again.
#[test]
fn a_different_unit_behind_a_returned_adapter_is_refused() {
    let (sim, addr) = sim_tcp(&[
        "--prologix",
        "22=keysight-3458a,5=fluke-5720a",
        "--fault",
        "disconnect=1s,serial=SWAPPED01,after=20",
    ]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let lab = gpib_lab(&format!("PRLGX-TCPIP0::{host}::{port}::INTFC"));
    let d = daemon(&lab.config());
    assert_eq!(sim.line(), "down");
    assert!(sim.line().starts_with("tcp "));
    // The 3458A reports no serial number, so it is the same unit as far as can be told; the
    // order of the two outcomes depends on which of them a run or a tick reached first.
    let (mut refused, mut back) = (None, false);
    while refused.is_none() || !back {
        let line = d.wait_for_err(|l| {
            l.contains("instrument refused") || l.contains("instrument online again")
        });
        if line.contains("instrument refused") {
            refused = Some(line);
        } else {
            assert!(names(&line, "dmm"), "{line}");
            back = true;
        }
    }
    let refused = refused.unwrap();
    assert!(
        names(&refused, "cal") && refused.contains("SWAPPED01"),
        "{refused}"
    );
    d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let events = events(&lab);
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "instrument_refused")
        .collect();
    assert_eq!(refusals.len(), 1, "{events:?}");
    assert_eq!(refusals[0].2["instrument"], "cal");
    assert!(
        !events
            .iter()
            .any(|e| e.0 == "instrument_online" && e.2["instrument"] == "cal"),
        "{events:?}"
    );
    lab.assert_sound();
}

/// Nothing was measured between `t0` and `t1` (µs UTC) while the instrument was gone — no
/// fabricated readings — and monitoring resumed after.
fn measured_around(lab: &Lab, t0: i64, t1: i64) {
    let readings = lab.readings();
    assert!(
        readings
            .iter()
            .all(|r| r.record.utc_us < t0 || r.record.utc_us > t1),
        "a reading inside the outage"
    );
    assert!(
        readings.iter().any(|r| r.record.utc_us > t1),
        "monitoring resumed"
    );
}
