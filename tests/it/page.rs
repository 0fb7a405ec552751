//! The status page in a real headless browser: Debian's `chromium`, driven by playwright-core from
//! `tests/browser/status_page.mjs`, against a daemon measuring simulated instruments. The page
//! loads with and without JavaScript, its plots draw the points it says it has (the last day from
//! the log at start included), and, without a reload, a new reading and a new run show.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

/// How to get what the browser test needs; it fails (never skips) without them.
const INSTALL: &str = "apt-get install -y chromium && npm ci --prefix tests/browser";

/// The browser tests' folder (the report's uses it too), and the Chromium they drive: checked present, or the test fails
/// saying how to install them.
pub(crate) fn browser() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    let mut missing = Vec::new();
    if !Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("node (Node.js 20 or later, with npm)".to_owned());
    }
    if !chromium.is_file() {
        missing.push(chromium.display().to_string());
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("tests/browser/node_modules (playwright-core)".to_owned());
    }
    assert!(
        missing.is_empty(),
        "the status page is tested in a headless Chromium; missing: {}. Install with `{INSTALL}` \
         (as root, from the repository's root; .ci/run does it)",
        missing.join(", ")
    );
    (dir, chromium)
}

/// Runs `cmd` to its end, killing its process group (node and the browser it started) if it
/// takes longer than `limit`.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
            panic!("the browser test did not finish within {limit:?}");
        }
    }
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

#[test]
fn the_status_page_in_a_headless_browser_plots_the_log_and_follows_readings_and_runs() {
    let (dir, chromium) = browser();
    let mut lab = Lab::simulated();
    lab.count = 5;
    lab.interval = "50ms".into();
    // Readings from before the daemon: the page's plot starts with them.
    measure(&lab.config()).success();
    lab.every = Some("1s".into());
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[status]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text).unwrap();

    let d = daemon(&config);
    let line = d.wait_for_err(|l| l.contains("status page listening"));
    let url = field(&line, "url").unwrap().to_owned();
    let loaded = d.wait_for_err(|l| l.contains("status history loaded"));
    assert_eq!(field(&loaded, "runs"), Some("1"), "{loaded}");
    assert_eq!(field(&loaded, "series"), Some("1"), "{loaded}");
    assert_eq!(field(&loaded, "points"), Some("5"), "{loaded}");

    let out = run_bounded(
        Command::new("node")
            .arg(dir.join("status_page.mjs"))
            .arg(&url)
            .arg("dmm")
            .env("CHROMIUM", &chromium)
            .current_dir(&dir),
        PATIENCE * 3,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("ok with JavaScript"), "{stdout}\n{stderr}");
    // What the browser saw, for `--nocapture`.
    println!("{stdout}");

    // The runs the page lists are the status's too: the run from before the daemon, as the log
    // has it, below the daemon's own.
    let out = tsagent()
        .args(["status", "--json", "--config"])
        .arg(&config)
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let status: tsagent::control::Status = serde_json::from_slice(&out.stdout).unwrap();
    let first = status.runs.last().unwrap();
    assert_eq!(
        (
            first.run_id,
            first.trigger.as_str(),
            first.operator.as_deref(),
            first.status.as_str(),
            first.readings,
            first.official
        ),
        (1, "manual", Some("tester"), "completed", 5, false),
        "{:?}",
        status.runs
    );
    assert!(first.ended_utc.is_some());
    assert!(status.runs.len() >= 2, "{:?}", status.runs);
    assert!(status.runs.windows(2).all(|w| w[0].run_id > w[1].run_id));

    d.signal(Signal::SIGTERM);
    let (exit, stderr) = d.finish();
    assert!(exit.success(), "{stderr}");
}
