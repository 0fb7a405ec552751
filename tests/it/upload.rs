//! Lab → coordinator through the real binaries: `tsagent upload` sends the sealed bundles in order
//! to `tsagent coordinator serve` and verifies each receipt; a coordinator that is down costs a
//! retry, never a duplicate; a refusal holds the queue until `--retry`; the daemon uploads by
//! itself, sends heartbeats the coordinator logs, and alerts when a bundle is not accepted.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use nix::sys::signal::Signal;
use predicates::prelude::*;

/// A coordinator folder: its key, the labs file and its config; `serve` starts it.
struct Pilot {
    dir: tempfile::TempDir,
    listen: String,
}

impl Pilot {
    fn new(labs: &str) -> Pilot {
        let dir = tempfile::tempdir().unwrap();
        tsagent()
            .args(["keygen", "--lab", "pilot", "--out"])
            .arg(dir.path().join("coordinator_key"))
            .assert()
            .success();
        std::fs::write(dir.path().join("labs"), labs).unwrap();
        Pilot {
            dir,
            listen: "127.0.0.1:0".into(),
        }
    }

    fn public_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("coordinator_key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn config(&self) -> PathBuf {
        let path = self.dir.path().join("coordinator.toml");
        std::fs::write(
            &path,
            format!(
                "[coordinator]\nid = \"pilot\"\nlisten = \"{}\"\nkey = \"coordinator_key\"\nlabs = \"labs\"\n",
                self.listen
            ),
        )
        .unwrap();
        path
    }

    /// Starts it; the next start listens on the same port.
    fn serve(&mut self) -> (Proc, String) {
        let p = Proc::spawn(
            Command::new(bin())
                .args(["coordinator", "serve", "--config"])
                .arg(self.config()),
        );
        let first = p.line();
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_owned();
        self.listen = url.trim_start_matches("http://").to_owned();
        (p, url)
    }

    fn status(&self) -> String {
        let out = tsagent()
            .args(["coordinator", "status", "--config"])
            .arg(self.config())
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    }
}

/// A simulated lab with a key; returns its config and its allowed_signers line.
fn lab() -> (Lab, PathBuf, String) {
    let mut lab = Lab::simulated();
    lab.count = 3;
    let config = lab.config();
    let out = tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let line = stdout.lines().last().unwrap().to_owned();
    (lab, config, line)
}

fn with_upload(config: &Path, url: &str, pilot: &Pilot, extra: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[upload]\nurl = \"{url}\"\ncoordinator_key = \"{}\"\n{extra}",
        pilot.public_key()
    ));
    std::fs::write(config, text).unwrap();
}

fn seal(config: &Path) {
    measure(config).success();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(config)
        .assert()
        .success();
}

fn upload(config: &Path) -> assert_cmd::assert::Assert {
    tsagent().args(["upload", "--config"]).arg(config).assert()
}

fn bundles(config: &Path) -> String {
    let out = tsagent()
        .args(["bundles", "--config"])
        .arg(config)
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

#[test]
fn upload_sends_in_order_verifies_receipts_and_resumes_after_the_coordinator_was_down() {
    let (_lab, config, line) = lab();
    let mut pilot = Pilot::new(&format!("{line}\n"));
    let (coordinator, url) = pilot.serve();
    with_upload(&config, &url, &pilot, "");
    tsagent()
        .args(["config", "check"])
        .arg(&config)
        .assert()
        .success();
    seal(&config);
    seal(&config);
    upload(&config).success().stdout(
        predicate::str::contains("TEST-LAB-Z1-000001: accepted (log index 0); receipt verified")
            .and(predicate::str::contains(
                "TEST-LAB-Z1-000002: accepted (log index 1); receipt verified",
            )),
    );
    upload(&config)
        .success()
        .stdout("nothing to send: every sealed bundle has its receipt\n");
    let listed = bundles(&config);
    assert!(listed.contains("TEST-LAB-Z1-000002  sealed "), "{listed}");
    assert!(listed.contains("sent  receipt: log index 1"), "{listed}");

    // The coordinator goes away: the bundle waits, nothing is lost.
    drop(coordinator);
    seal(&config);
    upload(&config)
        .code(3)
        .stderr(predicate::str::contains("TEST-LAB-Z1-000003 not delivered"));
    let listed = bundles(&config);
    assert!(
        listed.contains("TEST-LAB-Z1-000003") && listed.contains("retrying  attempts 1"),
        "{listed}"
    );
    // Back on the same port: the retry goes through, once.
    let (_coordinator, _) = pilot.serve();
    upload(&config).success().stdout(predicate::str::contains(
        "TEST-LAB-Z1-000003: accepted (log index 2)",
    ));
    let status = pilot.status();
    assert!(
        status.contains("TEST-LAB Z1: 3 bundle(s), last #3 (reading 9)"),
        "{status}"
    );
    assert!(status.contains("0 gap(s), 0 incident(s)"), "{status}");
    // The next bundle's manifest carries the latest receipt the lab held.
    seal(&config);
    let tar = _lab.bundles().join("TEST-LAB-Z1-000004.tar");
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("TEST-LAB-Z1-000004/manifest.json")
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["format"], "tsagent-bundle-v3");
    assert_eq!(manifest["previous_receipt"]["bundle_seq"], 3);
    assert_eq!(manifest["previous_receipt"]["log_index"], 2);
    assert_eq!(manifest["previous_receipt"]["tree_size"], 3);
}

#[test]
fn a_refusal_holds_the_queue_until_retry() {
    let (_lab, config, line) = lab();
    // The pilot has not added this lab yet.
    let mut pilot = Pilot::new("");
    let (coordinator, url) = pilot.serve();
    with_upload(&config, &url, &pilot, "");
    seal(&config);
    seal(&config);
    upload(&config)
        .code(4)
        .stderr(predicate::str::contains("TEST-LAB-Z1-000001 refused: 403"));
    // Held: no retry storm, the next bundle does not jump the queue.
    upload(&config)
        .code(4)
        .stderr(predicate::str::contains("held by an earlier refusal"));
    let listed = bundles(&config);
    assert!(listed.contains("held  attempts 1"), "{listed}");
    assert!(listed.contains("TEST-LAB-Z1-000002  sealed"), "{listed}");

    // The pilot adds the lab; the lab releases the queue.
    drop(coordinator);
    std::fs::write(pilot.dir.path().join("labs"), format!("{line}\n")).unwrap();
    let (_coordinator, _) = pilot.serve();
    tsagent()
        .args(["upload", "--retry", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("released the held queue")
                .and(predicate::str::contains("TEST-LAB-Z1-000002: accepted")),
        );
}

#[test]
fn the_daemon_uploads_by_itself_sends_heartbeats_and_alerts_when_a_bundle_is_refused() {
    let (lab, config, line) = lab();
    let mut pilot = Pilot::new("");
    let (coordinator, url) = pilot.serve();
    let sent = lab.path().join("alerts.txt");
    with_upload(
        &config,
        &url,
        &pilot,
        &format!(
            "heartbeat = \"1s\"\n\n[sealing]\nevery = \"1s\"\n\n[alerts]\ncommand = [\"sh\", \"-c\", \"printf '%s|%s\\\\n' \\\"$1\\\" \\\"$2\\\" >> {}\", \"alert\"]\nfailed_runs = 100\n",
            sent.display()
        ),
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace("name = \"s\"\n", "name = \"s\"\nevery = \"1s\"\n");
    std::fs::write(&config, text).unwrap();

    // Refused (the lab is not in the pilot's labs yet): one alert, the queue holds.
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("alert command done") && l.contains("bundle_not_accepted"));
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let alerts = std::fs::read_to_string(&sent).unwrap();
    let refused: Vec<&str> = alerts
        .lines()
        .filter(|l| l.starts_with("bundle_not_accepted|"))
        .collect();
    assert_eq!(refused.len(), 1, "{alerts}");
    assert!(refused[0].contains("403"), "{alerts}");

    // The pilot adds the lab: released, the daemon delivers and its heartbeats are logged.
    drop(coordinator);
    std::fs::write(pilot.dir.path().join("labs"), format!("{line}\n")).unwrap();
    let (_coordinator, _) = pilot.serve();
    tsagent()
        .args(["upload", "--retry", "--config"])
        .arg(&config)
        .assert()
        .success();
    let d = daemon(&config);
    d.wait_for_err(|l| l.contains("bundle delivered; receipt verified"));
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        let status = pilot.status();
        if !status.contains("heartbeat never") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        status.contains("heartbeat ") && status.contains(" ago"),
        "{status}"
    );
    d.signal(Signal::SIGTERM);
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    let listed = bundles(&config);
    assert!(listed.lines().any(|l| l.contains("  sent  ")), "{listed}");
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL takes a certificate whose issuer is its own subject as self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tsagent test pilot CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "tsagent test coordinator");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("pilot-ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn over_tls_the_lab_trusts_the_pilots_ca_and_nothing_else() {
    let (_lab, config, line) = lab();
    let pilot = Pilot::new(&format!("{line}\n"));
    let (ca, cert, key) = certificates(pilot.dir.path());
    let coordinator_config = pilot.config();
    let mut text = std::fs::read_to_string(&coordinator_config).unwrap();
    text.push_str(&format!(
        "cert = \"{}\"\nkey_pem = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let p = Proc::spawn(
        Command::new(bin())
            .args(["coordinator", "serve", "--config"])
            .arg({
                let path = pilot.dir.path().join("tls.toml");
                std::fs::write(&path, text).unwrap();
                path
            }),
    );
    let first = p.line();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    seal(&config);

    // Without the pilot's CA the system's CAs do not vouch for it: not sent, retried later.
    let plain = std::fs::read_to_string(&config).unwrap();
    with_upload(&config, &url, &pilot, "");
    upload(&config)
        .code(3)
        .stderr(predicate::str::contains("TLS with 127.0.0.1:"));
    // With it: delivered, receipt verified.
    std::fs::write(&config, plain).unwrap();
    with_upload(
        &config,
        &url,
        &pilot,
        &format!("ca = \"{}\"\n", ca.display()),
    );
    upload(&config).success().stdout(predicate::str::contains(
        "TEST-LAB-Z1-000001: accepted (log index 0); receipt verified",
    ));
    // Plain HTTP to the TLS port is no exchange at all.
    let http = url.replace("https://", "http://");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg(format!("{http}/v1/log/checkpoint"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
    // curl with the CA reads the checkpoint the receipt named.
    let out = Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(&ca)
        .arg(format!("{url}/v1/log/checkpoint"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checkpoint: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        checkpoint["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with("tsagent/pilot\n1\n")
    );
}
