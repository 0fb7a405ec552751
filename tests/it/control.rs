//! The daemon's control API over its real Unix socket, with curl and with the CLI: status during
//! a run, a start queued behind the run in progress, the event stream in order, bad requests, and
//! a peer of another user refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;
use tsagent::control::LiveEvent;
use tsagent::control::client::Client;

pub(crate) fn curl() -> Command {
    let found = Command::new("curl").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "these tests drive the API with curl: apt-get install -y curl"
    );
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "30"]);
    c
}

/// curl against the socket: (HTTP status, body). A body starting with `@` is that file's bytes.
pub(crate) fn call(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut c = curl();
    c.arg("--unix-socket")
        .arg(socket)
        .args(["-X", method, "-w", "\n%{http_code}"]);
    if let Some(body) = body {
        c.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = c.arg(format!("http://tsagent{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A daemon with a long run in progress, its socket and the lab.
fn busy_lab() -> (Lab, PathBuf, Proc, PathBuf) {
    let mut lab = Lab::simulated();
    lab.count = 40;
    lab.interval = "50ms".into();
    lab.every = Some("1h".into());
    let config = lab.config();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("control API listening"));
    let socket = lab.path().join("tsagent.sock");
    (lab, config, d, socket)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn status_start_and_the_event_stream_over_the_socket() {
    let (lab, config, d, socket) = busy_lab();
    let rt = rt();
    let client = Client::new(&socket);
    rt.block_on(async {
        let mut events = client.events().await.unwrap();
        // Two runs asked for: both queued, the second behind the first.
        let first = client
            .start(&tsagent::control::StartRequest {
                sequence: "s".into(),
                operator: "alice".into(),
            })
            .await
            .unwrap();
        let (code, body) = call(
            &socket,
            "POST",
            "/v1/runs",
            Some(r#"{"sequence":"s","operator":"bob"}"#),
        );
        assert_eq!(code, 202, "{body}");
        let second: tsagent::control::Queued = serde_json::from_str(&body).unwrap();
        assert!(second.ticket > first.ticket);
        assert!(second.ahead >= 1, "{second:?}");

        // Status during the run, from curl and from the CLI.
        let mut seen = Vec::new();
        let mut status_checked = false;
        while let Some(e) = events.next().await.unwrap() {
            if let LiveEvent::Reading { done: 3, .. } = &e
                && !status_checked
            {
                let (code, body) = call(&socket, "GET", "/v1/status", None);
                assert_eq!(code, 200, "{body}");
                let status: tsagent::control::Status = serde_json::from_str(&body).unwrap();
                let run = status.run.expect("a run in progress");
                assert!(run.done >= 3 && run.total == 40, "{run:?}");
                assert_eq!(status.instruments[0].state, "online");
                assert!(status.instruments[0].last_reading.is_some());
                let out = tsagent()
                    .args(["status", "--config"])
                    .arg(&config)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "{text}");
                assert!(text.contains("in progress"), "{text}");
                assert!(text.contains("1/1 online"), "{text}");
                status_checked = true;
            }
            let ended_second =
                matches!(&e, LiveEvent::RunEnded { ticket, .. } if *ticket == Some(second.ticket));
            seen.push(e);
            if ended_second {
                break;
            }
        }
        assert!(status_checked);
        // In order: each run starts, reads 1..=40, ends, and the second follows the first.
        let mut runs = Vec::new();
        let mut expected_done = 0;
        for e in &seen {
            match e {
                LiveEvent::RunStarted { run_id, ticket, .. } => {
                    runs.push((*run_id, *ticket));
                    expected_done = 1;
                }
                LiveEvent::Reading { run_id, done, .. } => {
                    assert_eq!(Some(*run_id), runs.last().map(|r| r.0));
                    assert_eq!(*done, expected_done, "readings in order");
                    expected_done += 1;
                }
                LiveEvent::RunEnded {
                    run_id,
                    status,
                    readings,
                    ..
                } => {
                    assert_eq!(Some(*run_id), runs.last().map(|r| r.0));
                    assert_eq!((status.as_str(), *readings), ("completed", 40));
                }
                _ => {}
            }
        }
        let tickets: Vec<_> = runs.iter().map(|r| r.1).collect();
        assert_eq!(tickets, vec![Some(first.ticket), Some(second.ticket)]);
    });
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    assert!(!Path::new(&lab.path().join("tsagent.sock")).exists());
    let out = Command::new("sqlite3")
        .arg(lab.db())
        .arg("SELECT id, trigger, operator, status FROM runs ORDER BY id")
        .output()
        .unwrap();
    let runs = String::from_utf8_lossy(&out.stdout);
    assert!(runs.contains("1|manual|alice|completed"), "{runs}");
    assert!(runs.contains("2|manual|bob|completed"), "{runs}");
    lab.assert_sound();
}

#[test]
fn start_wait_follows_the_run_like_measure() {
    let (lab, config, d, _socket) = busy_lab();
    let out = tsagent()
        .args(["start", "s", "--operator", "carol", "--wait", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("handed to the daemon (pid "), "{text}");
    assert!(text.contains("reading 40/40 seq="), "{text}");
    assert!(text.contains("completed: 40 readings"), "{text}");
    d.signal(Signal::SIGTERM);
    let _ = d.finish();
    lab.assert_sound();
}

#[test]
fn bad_requests_get_a_clear_4xx_and_readings_keep_their_interval() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "100ms".into();
    lab.every = Some("1s".into());
    let config = lab.config();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("reading committed") && l.contains("done=2 "));
    let socket = lab.path().join("tsagent.sock");

    let (code, body) = call(&socket, "POST", "/v1/runs", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("expected"), "{body}");
    let (code, body) = call(
        &socket,
        "POST",
        "/v1/runs",
        Some(r#"{"sequence":"nope","operator":"a"}"#),
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no sequence named `nope`"), "{body}");
    let (code, body) = call(
        &socket,
        "POST",
        "/v1/runs",
        Some(r#"{"sequence":"s","operator":" "}"#),
    );
    assert_eq!(code, 422, "{body}");
    let big = format!(r#"{{"sequence":"s","operator":"{}"}}"#, "x".repeat(100_000));
    let (code, body) = call(&socket, "POST", "/v1/runs", Some(&big));
    assert_eq!(code, 413, "{body}");
    let (code, _) = call(&socket, "GET", "/v1/nothing", None);
    assert_eq!(code, 404);
    // Prefix and suffix overlapping: a clear 404, not a broken connection.
    let (code, body) = call(&socket, "POST", "/v1/runs/abort", None);
    assert_eq!(code, 404, "{body}");
    let (code, _) = call(&socket, "DELETE", "/v1/status", None);
    assert_eq!(code, 405);

    // A client that connects and sends nothing is dropped after the head deadline.
    let silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut &silent, &mut buf).unwrap_or(0);
    let _ = n; // hyper may answer 408 or just close; either way the read returns.

    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    // Acquisition never stalled while all that happened: no gap between readings over 1 s
    // (the interval is 100 ms; a stall behind the silent client would be 5 s).
    let readings = lab.readings();
    assert!(readings.len() > 20, "{}", readings.len());
    let worst = readings
        .windows(2)
        .map(|w| w[1].record.utc_us - w[0].record.utc_us)
        .max()
        .unwrap();
    assert!(worst < 1_000_000, "a gap of {worst} µs between readings");
    lab.assert_sound();
}

#[test]
fn a_peer_of_another_user_is_refused_and_the_refusal_is_an_event() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes a user and connects as it: run it as root (.ci/run does)"
    );
    let user = "tsagent-peer";
    if nix::unistd::User::from_name(user).unwrap().is_none() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {user}");
    }
    let (lab, _config, d, socket) = busy_lab();
    // Loosen the socket's mode so the kernel lets the peer connect: the credentials check is
    // what must refuse it.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        lab.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    curl(); // fails with the install command if curl is missing
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            user,
            "--regid",
            user,
            "--clear-groups",
            "curl",
            "-sS",
        ])
        .arg("--unix-socket")
        .arg(&socket)
        .args(["-w", "\n%{http_code}", "http://tsagent/v1/status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.trim_end().ends_with("403"), "{text} {err}");
    assert!(text.contains("may not steer"), "{text}");
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let uid = nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let out = Command::new("sqlite3")
        .arg(lab.db())
        .arg("SELECT detail FROM events WHERE kind = 'control_refused'")
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(events.contains(&format!("\"uid\":{uid}")), "{events}");
}

#[test]
fn status_without_a_daemon_says_so() {
    let lab = Lab::simulated();
    let out = tsagent()
        .args(["status", "--config"])
        .arg(lab.config())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("no daemon is running"), "{stderr}");
}

#[test]
fn measure_beside_the_daemon_hands_the_run_over_and_says_so() {
    let mut lab = Lab::simulated();
    lab.count = 5;
    lab.interval = "20ms".into();
    lab.every = Some("1h".into());
    let config = lab.config();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("control API listening"));
    let out = tsagent()
        .args([
            "measure",
            "--sequence",
            "s",
            "--operator",
            "dave",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("handed to the daemon (pid {})", d.pid().as_raw())),
        "{text}"
    );
    assert!(text.contains("reading 5/5 seq=5"), "{text}");
    // Status states the run's statistics per series, in the words `measure` uses.
    let out = tsagent()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    assert!(status.contains("last completed run 1:"), "{status}");
    assert!(status.contains("  dmm voltage: n = 5, mean = "), "{status}");
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let out = Command::new("sqlite3")
        .arg(lab.db())
        .arg("SELECT trigger, operator, status FROM runs")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "manual|dave|completed"
    );
    // Without a daemon, measure says it measures itself.
    lab.every = None;
    let out = tsagent()
        .args(["measure", "--sequence", "s", "--config"])
        .arg(lab.config())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().next(),
        Some("measuring here: no daemon holds this lab"),
        "{text}"
    );
    lab.assert_sound();
}

#[test]
fn watch_shows_the_status_then_each_event_live() {
    let (lab, config, d, _socket) = busy_lab();
    let w = Proc::spawn(Command::new(bin()).args(["watch", "--config"]).arg(&config));
    w.wait_for(|l| l.starts_with("watching"));
    tsagent()
        .args(["start", "s", "--operator", "erin", "--config"])
        .arg(&config)
        .assert()
        .success();
    w.wait_for(|l| l.starts_with("queued: ticket 1 s by erin"));
    w.wait_for(|l| l.starts_with("run 1 started: sequence=s readings=40"));
    w.wait_for(|l| l.starts_with("run 1 reading 40/40 seq=40 dmm"));
    w.wait_for(|l| l == "run 1 completed: 40 readings");
    d.signal(Signal::SIGTERM);
    let _ = d.finish();
    w.wait_for(|l| l == "the daemon stopped");
    let (status, _) = w.finish();
    assert!(status.success());
    lab.assert_sound();
}

#[test]
fn the_daemon_seals_by_itself_and_on_request_only_ended_runs() {
    let mut lab = Lab::simulated();
    lab.count = 3;
    lab.interval = "10ms".into();
    lab.every = Some("1h".into());
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[sealing]\nevery = \"1s\"\n");
    std::fs::write(&config, text).unwrap();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("control API listening"));
    tsagent()
        .args(["start", "s", "--operator", "fay", "--wait", "--config"])
        .arg(&config)
        .assert()
        .success();
    // `[sealing] every` seals the ended run by itself.
    d.wait_for_err(|l| l.contains("sealed") && l.contains("bundles=1"));
    // On request: nothing new is waiting, so no bundle, and a clear answer.
    let socket = lab.path().join("tsagent.sock");
    let (code, body) = call(&socket, "POST", "/v1/seal", None);
    assert_eq!(code, 200, "{body}");
    let summary: tsagent::control::SealSummary = serde_json::from_str(&body).unwrap();
    assert!(summary.bundles.is_empty(), "{summary:?}");
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let bundles: Vec<_> = std::fs::read_dir(lab.bundles())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    tsagent()
        .args(["bundle", "verify"])
        .arg(&bundles[0])
        .arg("--allowed-signers")
        .arg(lab.path().join("keys/allowed_signers"))
        .assert()
        .success();
    lab.assert_sound();
}

#[test]
fn abort_stops_the_run_after_the_reading_in_progress_and_keeps_its_readings() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "20ms".into();
    lab.every = Some("1h".into());
    let config = lab.config();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("control API listening"));
    let socket = lab.path().join("tsagent.sock");
    let rt = rt();
    let client = Client::new(&socket);
    rt.block_on(async {
        let mut events = client.events().await.unwrap();
        // Nothing to abort yet.
        let (code, body) = call(&socket, "POST", "/v1/runs/current/abort", None);
        assert_eq!(code, 409, "{body}");
        client
            .start(&tsagent::control::StartRequest {
                sequence: "s".into(),
                operator: "gus".into(),
            })
            .await
            .unwrap();
        while let Some(e) = events.next().await.unwrap() {
            if matches!(e, LiveEvent::Reading { done: 5, .. }) {
                break;
            }
        }
        let (code, body) = call(&socket, "POST", "/v1/runs/99/abort", None);
        assert_eq!(code, 409, "{body}");
        assert!(body.contains("run 99 is not in progress"), "{body}");
        let out = tsagent()
            .args(["abort", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.starts_with("run 1 aborting"), "{text}");
        loop {
            match events.next().await.unwrap() {
                Some(LiveEvent::RunEnded {
                    run_id,
                    status,
                    readings,
                    ..
                }) => {
                    assert_eq!((run_id, status.as_str()), (1, "aborted"));
                    assert!((5..1_000_000).contains(&readings), "{readings}");
                    break;
                }
                Some(_) => {}
                None => panic!("the stream ended before the run"),
            }
        }
    });
    // The daemon goes on after an abort: still listening, nothing in progress.
    let (code, body) = call(&socket, "GET", "/v1/status", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"run\":null"), "{body}");
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let run = lab.store().run(1).unwrap().unwrap();
    assert_eq!(run.status, tsagent::store::RunStatus::Aborted, "{run:?}");
    assert!(run.readings >= 5, "{run:?}");
    lab.assert_sound();
}

#[test]
fn custody_through_the_daemon_shows_in_status_and_the_event_stream() {
    let mut lab = Lab::simulated();
    lab.every = Some("1h".into());
    let config = lab.config();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("control API listening"));
    let socket = lab.path().join("tsagent.sock");
    let rt = rt();
    let client = Client::new(&socket);
    rt.block_on(async {
        let mut events = client.events().await.unwrap();
        let status = client.status().await.unwrap();
        assert_eq!(status.custody.unwrap().state, "expected");
        // A photo from the CLI goes to the daemon too: uploaded, then named by its hash.
        let photo = lab.path().join("label.jpg");
        std::fs::write(&photo, b"label photo").unwrap();
        let out = tsagent()
            .args(["custody", "receive", "--config"])
            .arg(&config)
            .args(["--operator", "li", "--condition", "ok", "--seals", "intact"])
            .arg("--photo")
            .arg(&photo)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(
            text.lines().next(),
            Some(format!("handed to the daemon (pid {})", d.pid().as_raw()).as_str()),
            "{text}"
        );
        loop {
            match events.next().await.unwrap() {
                Some(LiveEvent::Custody { state, event }) => {
                    assert_eq!(event, "custody_received");
                    assert_eq!(state, "stabilising");
                    break;
                }
                Some(_) => {}
                None => panic!("the stream ended"),
            }
        }
        let custody = client.status().await.unwrap().custody.unwrap();
        assert_eq!(custody.state, "stabilising");
        assert_eq!(custody.timeline.len(), 1);
        assert_eq!(custody.timeline[0].kind, "custody_received");
        let sha = tsagent::custody::photo_sha256(b"label photo");
        assert!(
            custody.timeline[0]
                .detail
                .contains(&format!(r#"{{"name":"label.jpg","sha256":"{sha}"}}"#)),
            "{custody:?}"
        );
        assert_eq!(
            std::fs::read(lab.path().join("photos").join(&sha)).unwrap(),
            b"label photo"
        );
        assert!(text.contains("received: 1 photo(s) kept"), "{text}");
    });
    let out = tsagent()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("custody: stabilising"), "{text}");
    d.signal(Signal::SIGTERM);
    let _ = d.finish();
}

#[test]
fn the_status_page_shows_the_instruments_and_plots_the_readings() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    lab.interval = "50ms".into();
    lab.every = Some("1s".into());
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[status]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text).unwrap();
    let d = daemon(&config);
    let line = d.wait_for_err(|l| l.contains("status page listening"));
    let url = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("url="))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    d.wait_for_err(|l| l.contains("reading committed") && l.contains("done=5 "));
    let out = curl().arg(&url).output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("<h1>tsagent — lab TEST-LAB</h1>"), "{page}");
    assert!(page.contains("<td>dmm</td><td>online"), "{page}");
    let points: usize = page
        .split(r#"data-points=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(points >= 5, "{page}");
    assert!(page.matches("<circle").count() >= 5);
    // The live part: the page's event stream carries each reading as it is committed.
    let out = curl()
        .args(["-N", "--max-time", "2"])
        .arg(format!("{url}events"))
        .output()
        .unwrap();
    let stream = String::from_utf8_lossy(&out.stdout);
    assert!(stream.contains("event: reading"), "{stream}");
    let out = curl()
        .args(["-X", "POST", "-w", "%{http_code}", "-o", "/dev/null"])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
}
