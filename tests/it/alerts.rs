//! `[alerts]`: the lab's command runs once when an instrument has been offline longer than
//! `after`, once when it returns, and each alert is an event in the log.

use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;

#[test]
fn an_instrument_offline_past_after_alerts_once_and_its_return_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("by-id-dmm");
    let (sim, _) = sim_pty(&[
        "--link",
        link.to_str().unwrap(),
        "--fault",
        "disconnect=4s,after=6",
    ]);
    let mut lab = Lab::serial(link.to_str().unwrap());
    lab.count = 2;
    lab.every = Some("1s".into());
    lab.timeout = "1s".into();
    let config = lab.config();
    let sent = lab.path().join("alerts.txt");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[alerts]\ncommand = [\"sh\", \"-c\", \"printf '%s|%s\\\\n' \\\"$1\\\" \\\"$2\\\" >> {}\", \"alert\"]\nafter = \"1s\"\nfailed_runs = 100\n",
        sent.display()
    ));
    std::fs::write(&config, text).unwrap();
    tsagent()
        .args(["config", "check"])
        .arg(&config)
        .assert()
        .success();
    // A key, so that the only alerts are the instrument's.
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();

    let d = Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(&config),
    );
    assert_eq!(sim.line(), "down");
    d.wait_for_err(|l| l.contains("alert command done") && l.contains("instrument_offline"));
    let back = sim.line();
    assert!(back.starts_with("pty "), "{back}");
    d.wait_for_err(|l| l.contains("alert command done") && l.contains("instrument_online"));
    d.wait_for_err(|l| l.contains("run ended") && l.contains("completed"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");

    let out = Command::new("sqlite3")
        .arg(lab.db())
        .arg("SELECT json_extract(detail, '$.kind') || '|' || json_extract(detail, '$.outcome') FROM events WHERE kind = 'alert_sent' ORDER BY id")
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = events.lines().collect();
    assert_eq!(
        events,
        ["instrument_offline|sent", "instrument_online|sent"]
    );
    let lines: Vec<String> = std::fs::read_to_string(&sent)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("instrument_offline|instrument dmm offline for "),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("instrument_online|instrument dmm is online again"),
        "{lines:?}"
    );
}
