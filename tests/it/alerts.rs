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

#[test]
fn a_custody_deadline_alerts_once_when_due_and_once_when_past_not_every_tick() {
    let mut lab = Lab::simulated();
    lab.count = 2;
    lab.every = Some("1s".into());
    let config = lab.config();
    let sent = lab.path().join("alerts.txt");
    // The receipt was due long ago; the dispatch is due tomorrow, within the default 48 h notice.
    let tomorrow = tsagent::clock::rfc3339(
        tsagent::clock::utc_us(std::time::SystemTime::now()) + 24 * 3_600_000_000,
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[artefact.deadlines]\nreceive_by = \"2020-01-01\"\ndispatch_by = \"{tomorrow}\"\n\n[alerts]\ncommand = [\"sh\", \"-c\", \"printf '%s|%s\\\\n' \\\"$1\\\" \\\"$2\\\" >> {}\", \"alert\"]\nfailed_runs = 100\n",
        sent.display()
    ));
    std::fs::write(&config, text).unwrap();
    // A key, so that the only alerts are the deadlines'.
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();

    let d = daemon(&config);
    for _ in 0..2 {
        d.wait_for_err(|l| l.contains("alert command done") && l.contains("custody_deadline"));
    }
    // Ticks go on between the runs; none of them alerts again.
    for _ in 0..3 {
        d.wait_for_err(|l| l.contains("run ended"));
    }
    let status = |expected: &str| {
        let out = tsagent()
            .args(["status", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(text.contains(expected), "{expected}: {text}");
    };
    status("next deadline: receipt by 2020-01-01 (2020-01-02T00:00:00Z), ");
    status("— past, and not recorded");
    // The receipt, through the daemon, closes its deadline without a message; the dispatch's is
    // next.
    let out = tsagent()
        .args(["custody", "receive", "--config"])
        .arg(&config)
        .args(["--operator", "li", "--condition", "ok", "--seals", "intact"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    status(&format!("next deadline: dispatch by {tomorrow}"));
    status("— due soon");
    for _ in 0..3 {
        d.wait_for_err(|l| l.contains("run ended"));
    }
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");

    let mut lines: Vec<String> = std::fs::read_to_string(&sent)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "custody_deadline|the standard is to be dispatched by {tomorrow} ("
        )) && lines[0].ends_with("and no dispatch is recorded"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(
            "custody_deadline|the standard was to be received by 2020-01-01 (2020-01-02T00:00:00Z), "
        ) && lines[1].ends_with(" ago, and no receipt is recorded"),
        "{lines:?}"
    );
    let out = Command::new("sqlite3")
        .arg(lab.db())
        .arg("SELECT count(*) FROM events WHERE kind = 'alert_sent' AND json_extract(detail, '$.kind') = 'custody_deadline'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}
