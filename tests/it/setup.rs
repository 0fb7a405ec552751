//! Set-up problems found before a sequence reaches the instrument: `config check --connect`
//! opens and identifies every adapter and instrument; the daemon does the same at start, says
//! which are absent and keeps retrying them, and warns when the signing key is missing.

use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;
use predicates::prelude::*;

/// A lab with the built-in simulated DMM, a simulated Prologix bus with an HP 3458A, an
/// Ethernet adapter nobody answers at (with a calibrator behind it) and a serial meter that is
/// not plugged in.
fn mixed_lab(dir: &std::path::Path) -> Lab {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut lab = Lab::simulated();
    lab.extra_instrument = format!(
        "\n[[adapter]]\nresource = \"SIM::GPIB0::INTFC\"\n\n\
         [[adapter]]\nresource = \"PRLGX-TCPIP1::127.0.0.1::{port}::INTFC\"\n\n\
         [[instrument]]\nname = \"dvm\"\nresource = \"GPIB0::22::INSTR\"\ndriver = \"keysight-3458a\"\n\n\
         [[instrument]]\nname = \"cal\"\nresource = \"GPIB1::4::INSTR\"\ndriver = \"fluke-5720a\"\n\n\
         [[instrument]]\nname = \"ptu\"\nresource = \"ASRL{}::INSTR\"\ndriver = \"vaisala-ptu300\"\n",
        dir.join("no-such-port").display()
    );
    lab
}

#[test]
fn config_check_connect_reports_each_identity_or_error() {
    let dir = tempfile::tempdir().unwrap();
    let lab = mixed_lab(dir.path());
    let out = tsagent()
        .args(["config", "check", "--connect"])
        .arg(lab.config())
        .timeout(PATIENCE)
        .assert()
        .code(3);
    let output = out.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{stdout}"))
            .to_owned()
    };
    assert!(
        line("adapter SIM::GPIB0::INTFC: ").ends_with(": open"),
        "{stdout}"
    );
    assert!(
        line("adapter PRLGX-TCPIP1::").contains(": error: cannot connect to `GPIB1`"),
        "{stdout}"
    );
    assert_eq!(
        line("instrument dmm "),
        "instrument dmm (SIM::PTY::INSTR): TSAGENT SIM-DMM serial SIM0000001 firmware tsagent-sim-0.1.0"
    );
    assert!(
        line("instrument dvm (GPIB0::22::INSTR): ").contains("HP 3458A"),
        "{stdout}"
    );
    // Behind the adapter that just failed: its failure is the answer, not a second attempt.
    assert!(
        line("instrument cal (GPIB1::4::INSTR): ").contains("error: the GPIB1 adapter is offline"),
        "{stdout}"
    );
    assert!(
        line("instrument ptu (ASRL").contains("error: cannot connect to `ptu`"),
        "{stdout}"
    );
    assert!(
        line("warning: signing key").contains("is missing"),
        "{stdout}"
    );
    assert!(
        stderr.contains("3 of 6 adapter(s) and instrument(s) could not be reached"),
        "{stderr}"
    );
    // The report says it all: no log lines repeat it. Checking touches no database.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!lab.db().exists());
}

#[test]
fn config_check_connect_passes_when_everything_answers() {
    let lab = Lab::simulated();
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    let out = tsagent()
        .args(["config", "check", "--connect"])
        .arg(&config)
        .timeout(PATIENCE)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("instrument dmm (SIM::PTY::INSTR): TSAGENT SIM-DMM"),
        "{stdout}"
    );
    assert!(
        stdout.contains("signing key") && stdout.contains(": present"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning"), "{stdout}");
    // Without --connect, nothing is opened.
    tsagent()
        .args(["config", "check"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicates::str::contains("instrument dmm").not());
}

/// The daemon starts though an instrument is absent, says which, warns that the signing key is
/// missing, and takes the instrument in once it appears.
#[test]
fn the_daemon_names_absent_instruments_at_start_and_takes_them_in_later() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dmm");
    let mut lab = Lab::serial(link.to_str().unwrap());
    lab.count = 2;
    lab.every = Some("1s".into());
    let d = Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(lab.config()),
    );
    let key = d.wait_for_err(|l| l.contains("signing key"));
    assert!(key.contains("WARN") && key.contains("is missing"), "{key}");
    let absent = d.wait_for_err(|l| l.contains("instrument absent at start"));
    assert!(absent.contains("instrument=dmm"), "{absent}");
    assert!(absent.contains("cannot connect to `dmm`"), "{absent}");
    d.wait_for_err(|l| l.contains("1 of 1 instrument(s) absent at start"));

    let (_sim, _path) = sim_pty(&["--link", link.to_str().unwrap()]);
    d.wait_for_err(|l| l.contains("instrument online again"));
    d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    lab.assert_sound();
}

/// With the key in place and every instrument there, the start says so and warns of nothing.
#[test]
fn the_daemon_starts_quietly_when_all_is_there() {
    let mut lab = Lab::simulated();
    lab.every = Some("1s".into());
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    let d = Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(&config),
    );
    // The key is checked before the instruments, so a warning would come first.
    let first = d.wait_for_err(|l| l.contains("signing key") || l.contains("instrument ready"));
    assert!(
        first.contains("instrument ready") && first.contains("instrument=dmm"),
        "{first}"
    );
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("absent"), "{stderr}");
}
