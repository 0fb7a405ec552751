//! `tsagent measure` end to end: the real binary against the simulator on a real pseudo-terminal and
//! on TCP, and against instruments that misbehave.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use crate::common::*;
use predicates::prelude::*;
use tsagent::store::RunStatus;

#[test]
fn measures_over_a_serial_pty() {
    let (_sim, path) = sim_pty(&[]);
    let mut lab = Lab::serial(&path);
    lab.count = 25;
    let out = measure(&lab.config()).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("identified dmm: TSAGENT,SIM-DMM8,SIM0001,1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reading 25/25 seq=25 dmm +10.0000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("run 1 completed: 25 readings, seq 1–25"),
        "{stdout}"
    );
    let rows = lab.readings();
    assert_eq!(rows.len(), 25);
    for r in &rows {
        // Real meter format, kept verbatim, parsed to the value stored.
        assert_eq!(
            r.record.raw.len(),
            "+1.00000200E+01".len(),
            "{}",
            r.record.raw
        );
        assert_eq!(r.record.value, Some(r.record.raw.parse::<f64>().unwrap()));
        // The simulator runs the demo standard: 10 V + 23.4 µV, drifting.
        assert!((r.record.value.unwrap() - 10.0).abs() < 1e-4);
        assert_eq!(r.instrument, "dmm");
    }
    lab.assert_sound();
}

#[test]
fn measures_over_tcp_and_lists_readings() {
    let (_sim, addr) = sim_tcp(&[]);
    let lab = Lab::tcp(&addr);
    measure(&lab.config()).success();
    measure(&lab.config()).success();
    assert_eq!(lab.readings().len(), 20);
    lab.assert_sound();
    // The simulator outlives its clients: the second run found it again.
    let runs: Vec<_> = lab.readings().iter().map(|r| r.record.run_id).collect();
    assert_eq!(runs.iter().filter(|&&r| r == 2).count(), 10);

    let csv = tsagent()
        .args(["readings", "--csv", "--db"])
        .arg(lab.db())
        .assert()
        .success();
    let text = String::from_utf8_lossy(&csv.get_output().stdout).into_owned();
    // A bundle's readings.csv columns first, then the run's operator, status and official flag.
    assert!(text.starts_with("seq,run_id,sequence,instrument_id,instrument,quantity,value,status,unit,raw,utc,utc_us,mono_ns,boot_id,chain,operator,run_status,official\n"), "{text}");
    assert_eq!(text.lines().count(), 21);
    let table = tsagent()
        .args(["readings", "--db"])
        .arg(lab.db())
        .arg("--since")
        .arg("2000-01-01T00:00:00Z")
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&table.get_output().stdout)
            .lines()
            .count(),
        21
    );
    let future = tsagent()
        .args(["readings", "--db"])
        .arg(lab.db())
        .args(["--since", "2999-01-01T00:00:00Z"])
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&future.get_output().stdout)
            .lines()
            .count(),
        1,
        "header only"
    );
}

#[test]
fn instrument_errors_fail_the_run_with_the_instruments_text() {
    let (_sim, addr) = sim_tcp(&[]);
    let mut lab = Lab::tcp(&addr);
    // A command the meter does not know, put into the profile's configure for this instrument:
    // the lab's config overrides a shipped profile key by key.
    lab.extra_instrument = "[instrument.profile.operations.configure]\nsend = [\"CONF:VOLT:DC {range}\", \"BOGUS:CMD 1\"]".into();
    measure(&lab.config())
        .code(3)
        .stderr(predicate::str::contains("-113,\"Undefined header\""));
    let store = lab.store();
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.readings, 0);
    let events = store.run_events(1).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "instrument_error" && e.detail["code"] == -113),
        "{events:?}"
    );
    lab.assert_sound();
}

#[test]
fn simulator_killed_mid_sequence_fails_the_run_and_keeps_readings() {
    let (sim, path) = sim_pty(&[]);
    let mut lab = Lab::serial(&path);
    lab.count = 1_000_000;
    let config = lab.config();
    let run = Proc::spawn(
        std::process::Command::new(bin())
            .args(["measure", "--sequence", "s", "--config"])
            .arg(&config),
    );
    run.wait_for(|l| l.starts_with("reading 20/"));
    drop(sim); // kill -9 of the simulator: its pty master closes.
    let last_reported = run
        .rest()
        .iter()
        .filter_map(|l| l.strip_prefix("reading ").and_then(|r| r.split(' ').nth(1)))
        .filter_map(|s| s.strip_prefix("seq=").and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(20);
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("connection lost"), "{stderr}");
    let store = lab.store();
    let r = store.run(1).unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("connection lost"),
        "{r:?}"
    );
    // Every reading reported is stored; nothing after the failure is invented.
    assert_eq!(r.readings, last_reported);
    assert!(
        store
            .run_events(1)
            .unwrap()
            .iter()
            .any(|e| e.kind == "run_ended" && e.detail["status"] == "failed")
    );
    lab.assert_sound();
}

#[test]
fn unreachable_instrument_is_a_clear_error() {
    let lab = Lab::serial("/dev/does-not-exist");
    measure(&lab.config())
        .code(3)
        .stderr(predicate::str::contains(
            "cannot connect to `dmm`: cannot open `ASRL/dev/does-not-exist::INSTR`",
        ));
    assert_eq!(
        lab.store().run(1).unwrap().unwrap().status,
        RunStatus::Failed
    );
}

#[test]
fn unknown_config_key_is_rejected_with_line_and_key() {
    let lab = Lab::serial("/dev/null");
    let text = std::fs::read_to_string(lab.config())
        .unwrap()
        .replace("timeout = \"2s\"", "timeout = \"2s\"\nbaudrate = 9600");
    let path = lab.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let expected = format!(
        "{}:28:1: `instrument.baudrate`: unknown field `baudrate`",
        path.display()
    );
    tsagent()
        .arg("config")
        .arg("check")
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(expected.clone()));
    measure(&path)
        .code(2)
        .stderr(predicate::str::contains(expected));
    tsagent()
        .arg("config")
        .arg("check")
        .arg(lab.config())
        .assert()
        .success()
        .stdout(predicate::str::contains("ok"));
}

/// How the fake instrument misbehaves once it has given `good` readings.
#[derive(Clone, Copy)]
enum Fault {
    NoTerminator,
    Flood,
    Garbage,
}

/// A SCPI-ish instrument on loopback TCP that answers correctly, then misbehaves.
fn faulty_instrument(good: usize, fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut out = stream.try_clone().unwrap();
        let mut readings = 0;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let reply: Vec<u8> = match line.trim() {
                "*IDN?" => b"FAKE,DMM-1,F001,0.1\n".to_vec(),
                "SYST:ERR?" => b"+0,\"No error\"\n".to_vec(),
                "READ?" if readings < good => {
                    readings += 1;
                    b"+1.00000100E+01\n".to_vec()
                }
                "READ?" => match fault {
                    Fault::NoTerminator => b"+1.00000100E+01".to_vec(),
                    Fault::Flood => vec![b'7'; 3 << 20],
                    Fault::Garbage => b"\xff\xfe\x00\x9b\x1b[31m\n".to_vec(),
                },
                _ => Vec::new(),
            };
            if out.write_all(&reply).is_err() {
                return;
            }
        }
    });
    addr
}

fn run_against_fault(fault: Fault, expected: &str) {
    let addr = faulty_instrument(3, fault);
    let mut lab = Lab::tcp(&addr);
    lab.timeout = "500ms".into();
    measure(&lab.config())
        .code(3)
        .stderr(predicate::str::contains(expected));
    let run = lab.store().run(1).unwrap().unwrap();
    assert_eq!(
        (run.status, run.readings),
        (RunStatus::Failed, 3),
        "{run:?}"
    );
    lab.assert_sound();
}

#[test]
fn reply_without_terminator_times_out() {
    run_against_fault(Fault::NoTerminator, "no complete reply within 500ms");
}

#[test]
fn reply_over_the_cap_is_refused() {
    run_against_fault(
        Fault::Flood,
        "reply longer than 1048576 bytes without a terminator",
    );
}

#[test]
fn garbage_bytes_are_not_text() {
    run_against_fault(Fault::Garbage, "reply is not text");
}

#[test]
fn simulator_link_path_works_as_a_serial_resource() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dmm");
    let (_sim, _path) = sim_pty(&["--link", link.to_str().unwrap()]);
    let lab = Lab::serial(link.to_str().unwrap());
    measure(&lab.config()).success();
    assert_eq!(lab.readings().len(), 10);
}

#[test]
fn progress_on_a_terminal_shows_done_total_and_the_last_value() {
    use std::io::Read;
    let lab = Lab::simulated();
    let config = lab.config();
    // stderr on a real pseudo-terminal, as a technician's shell has it.
    let pty = nix::pty::openpty(None, None).unwrap();
    // Only this child gets the terminal (as its stderr); others started meanwhile by parallel
    // tests must not hold it open past this child's exit.
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
    }
    let mut child = std::process::Command::new(bin())
        .args(["measure", "--sequence", "s", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the child's side closes (EIO on the master once the child has exited).
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).contains("10/10") {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("run 1: `s`, 10 readings"), "{text}");
    assert!(text.contains("\r  dmm      1/10"), "{text:?}");
    assert!(
        text.contains("10/10") && text.contains("+10.0000"),
        "{text:?}"
    );
}

#[test]
fn exchange_logging_follows_the_config() {
    let count = |setting: Option<&str>| {
        let lab = Lab::simulated();
        let mut text = std::fs::read_to_string(lab.config()).unwrap();
        if let Some(s) = setting {
            text = text.replace(
                "bundles = \"bundles\"",
                &format!("bundles = \"bundles\"\nlog_exchanges = \"{s}\""),
            );
        }
        std::fs::write(lab.path().join("lab.toml"), text).unwrap();
        measure(&lab.path().join("lab.toml")).success();
        let events = lab.store().run_events(1).unwrap();
        let reads = events
            .iter()
            .filter(|e| e.kind == "exchange" && e.detail["command"] == "READ?")
            .count();
        let others = events
            .iter()
            .filter(|e| e.kind == "exchange" && e.detail["command"] != "READ?")
            .count();
        (reads, others)
    };
    // The other exchanges of sequence `s`: SYST:ERR? and *IDN? on connecting, *IDN? of the
    // identify step, CONF:VOLT:DC and VOLT:DC:NPLC of configure and its SYST:ERR?, the final
    // drain's SYST:ERR?.
    assert_eq!(
        count(None),
        (0, 7),
        "default: each reading row records its own exchange"
    );
    assert_eq!(count(Some("except_readings")), (0, 7));
    assert_eq!(count(Some("all")), (10, 7));
    assert_eq!(count(Some("none")), (0, 0));
}

/// An environment sensor gives several readings per query (one per named capture of its
/// reply): progress counts them all, so the total announced is the total taken.
#[test]
fn progress_counts_every_value_of_an_environment_reading() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(
        &config,
        r#"[lab]
id = "TEST-LAB"
name = "Test lab"

[artefact]
id = "Z1"
kind = "zener"
serial = "S1"
nominal = 10.0
unit = "V"

[[instrument]]
name = "env"
resource = "SIM::PTY::INSTR"
driver = "vaisala-ptu300"

[[sequence]]
name = "s"

[[sequence.step]]
read = { instrument = "env", op = "env_read", count = 2 }
"#,
    )
    .unwrap();
    let out = measure(&config).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("reading "))
        .collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(lines[0].starts_with("reading 1/6 "), "{stdout}");
    assert!(
        stdout.contains("temperature") || stdout.contains("°C"),
        "{stdout}"
    );
}
