//! `deploy/tsagent.service` and `deploy/tsagent-coordinator.service` as systemd reads them:
//! `systemd-analyze verify` finds nothing to say about them, and `systemd-analyze security` rates
//! each sandbox at an exposure of 2.0 or less.
//!
//! systemd-analyze works on unit files offline, so no running systemd is needed; when it is
//! missing the test fails and says how to get it, rather than passing without looking.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT: &str = include_str!("../../deploy/tsagent.service");
const COORDINATOR_UNIT: &str = include_str!("../../deploy/tsagent-coordinator.service");

/// The most exposure `systemd-analyze security` may find (10 is an unprotected root service).
const MAX_EXPOSURE: f64 = 2.0;

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    match Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("systemd-analyze is missing; install it: apt-get install -y systemd")
        }
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

/// The unit as installed, but with the binary under test where `/usr/local/bin/tsagent` is
/// (verify checks that ExecStart= and ExecStartPre= name executables), in a folder of its own
/// named as the installed unit is.
fn installed(dir: &Path, text: &str) -> PathBuf {
    installed_as(dir, text, "tsagent.service")
}

fn installed_as(dir: &Path, text: &str, name: &str) -> PathBuf {
    let bin = env!("CARGO_BIN_EXE_tsagent");
    assert!(
        text.contains("ExecStart=/usr/local/bin/tsagent "),
        "the unit no longer starts /usr/local/bin/tsagent; update this test"
    );
    let unit = dir.join(name);
    std::fs::write(&unit, text.replace("/usr/local/bin/tsagent", bin)).unwrap();
    unit
}

/// The number in `→ Overall exposure level for tsagent.service: 1.3 OK 🙂`.
fn exposure(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}"));
    let after = line.rsplit_once(": ").map_or("", |(_, rest)| rest);
    let number = after.split_whitespace().next().unwrap_or("");
    number
        .parse()
        .unwrap_or_else(|_| panic!("no exposure number in {line:?}"))
}

fn security(unit: &Path) -> (f64, String) {
    let out = systemd_analyze(&["security", "--offline=true", "--no-pager"], unit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (exposure(&stdout), stdout)
}

#[test]
fn the_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed(dir.path(), UNIT);
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify exits 0 even for an unknown key, so its words about the unit are the failure.
    let about_unit: Vec<&str> = stderr.lines().filter(|l| l.contains("tsagent")).collect();
    assert!(about_unit.is_empty(), "{}", about_unit.join("\n"));
}

#[test]
fn the_coordinator_unit_verifies_cleanly_and_its_exposure_is_at_most_2() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_as(dir.path(), COORDINATOR_UNIT, "tsagent-coordinator.service");
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let about_unit: Vec<&str> = stderr.lines().filter(|l| l.contains("tsagent")).collect();
    assert!(about_unit.is_empty(), "{}", about_unit.join("\n"));
    let (level, report) = security(&unit);
    assert!(level <= MAX_EXPOSURE, "exposure {level}:\n{report}");
}

#[test]
fn verify_speaks_up_about_a_misspelt_key() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed(
        dir.path(),
        &UNIT.replace("PrivateUsers=yes", "PrivateUser=yes"),
    );
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PrivateUser"), "{stderr}");
}

#[test]
fn the_sandbox_exposure_is_at_most_2() {
    let dir = tempfile::tempdir().unwrap();
    let (level, report) = security(&installed(dir.path(), UNIT));
    assert!(level <= MAX_EXPOSURE, "exposure {level}:\n{report}");
}

/// The measure is not vacuous: without its hardening the same unit rates far worse.
#[test]
fn without_hardening_the_exposure_is_high() {
    let stripped: String = UNIT
        .lines()
        .take_while(|l| !l.starts_with("# Hardening"))
        .chain(["", "[Install]", "WantedBy=multi-user.target"])
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (level, report) = security(&installed(dir.path(), &stripped));
    assert!(level > 5.0, "exposure {level}:\n{report}");
}

#[test]
fn exposure_lines_parse() {
    assert_eq!(
        exposure("x\n→ Overall exposure level for tsagent.service: 1.3 OK 🙂\n"),
        1.3
    );
    assert_eq!(
        exposure("→ Overall exposure level for a.service: 9.6 UNSAFE 😨"),
        9.6
    );
}

/// The unit waits for READY=1, takes notifications from tsagent alone and runs its watchdog.
#[test]
fn the_unit_is_a_notify_service_with_a_watchdog() {
    let lines: Vec<&str> = UNIT.lines().map(str::trim).collect();
    for wanted in [
        "Type=notify",
        "NotifyAccess=main",
        "StateDirectory=tsagent",
        "RuntimeDirectory=tsagent",
    ] {
        assert!(lines.contains(&wanted), "no `{wanted}` in the unit");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("WatchdogSec=")),
        "no WatchdogSec= in the unit"
    );
}
