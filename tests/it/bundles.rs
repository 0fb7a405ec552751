//! Keys, sealing and verification through the binary, and the pilot's stock tools: OpenSSH's
//! `ssh-keygen -Y verify`, coreutils' `sha256sum -c`, GNU tar, and the sqlite3 shell for tampering.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use predicates::prelude::*;

const NAME: &str = "TEST-LAB-Z1-000001";

/// A lab with a key, readings from the built-in simulator, one sealed bundle and allowed_signers.
struct Sealed {
    lab: Lab,
    bundle: PathBuf,
    signers: PathBuf,
}

fn sealed_lab() -> Sealed {
    let lab = Lab::simulated();
    let config = lab.config();
    let out = tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let line = stdout.lines().last().unwrap().to_owned();
    assert!(
        line.starts_with(
            "TEST-LAB namespaces=\"tsagent-bundle-v1,tsagent-heartbeat-v1\" ssh-ed25519 AAAA"
        ),
        "{line}"
    );
    let signers = lab.path().join("allowed_signers");
    std::fs::write(&signers, format!("{line}\n")).unwrap();
    measure(&config).success();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sealed bundle 1: readings 1–10 (10)",
        ));
    let bundle = lab.bundles().join(format!("{NAME}.tar"));
    assert!(bundle.exists());
    Sealed {
        lab,
        bundle,
        signers,
    }
}

fn verify(bundle: &Path, signers: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    tsagent()
        .args(["bundle", "verify"])
        .arg(bundle)
        .arg("--allowed-signers")
        .arg(signers)
        .args(extra)
        .assert()
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn keygen_makes_a_private_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k/lab_ed25519");
    tsagent()
        .args(["keygen", "--lab", "LAB-X", "--out"])
        .arg(&key)
        .assert()
        .success();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let public = std::fs::read_to_string(key.with_file_name("lab_ed25519.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    // OpenSSH reads the key we wrote.
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&derived.stdout).split(' ').nth(1),
        public.split(' ').nth(1)
    );
    tsagent()
        .args(["keygen", "--lab", "LAB-X", "--out"])
        .arg(&key)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("already exists"));
}

#[test]
fn a_sealed_bundle_verifies_with_tsagent_and_with_stock_tools() {
    let s = sealed_lab();
    verify(&s.bundle, &s.signers, &["--lab", "TEST-LAB"])
        .success()
        .stdout(
            predicate::str::contains("ok")
                .and(predicate::str::contains("10 readings chain from 1 to 10")),
        );

    let out = sh(
        &s.lab.bundles(),
        &format!(
            "tar -xf {NAME}.tar && cd {NAME} && ssh-keygen -Y verify -f {} -I TEST-LAB -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c SHA256SUMS",
            s.signers.display()
        ),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Good \"tsagent-bundle-v1\" signature for TEST-LAB"),
        "{text}"
    );
    for file in [
        "custody.jsonl",
        "manifest.json",
        "readings.csv",
        "events.jsonl",
    ] {
        assert!(text.contains(&format!("{file}: OK")), "{text}");
    }
    // The stock verifier also refuses another principal.
    let other = sh(
        &s.lab.bundles().join(NAME),
        &format!(
            "ssh-keygen -Y verify -f {} -I OTHER-LAB -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS",
            s.signers.display()
        ),
    );
    assert!(!other.status.success());
}

#[test]
fn nothing_new_to_seal_is_not_an_error_and_the_next_bundle_links_on() {
    let s = sealed_lab();
    let config = s.lab.path().join("lab.toml");
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing new to seal"));
    measure(&config).success();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sealed bundle 2: readings 11–20 (10)",
        ));
    let second = s.lab.bundles().join("TEST-LAB-Z1-000002.tar");
    verify(&second, &s.signers, &[]).success();
    // A crash between the seal's commit and the file: the next seal writes the file again.
    let first_bytes = std::fs::read(&s.bundle).unwrap();
    std::fs::remove_file(&s.bundle).unwrap();
    std::fs::remove_file(&second).unwrap();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains("restored").and(predicate::str::contains("000002.tar")));
    verify(&second, &s.signers, &[]).success();
    assert!(
        !s.bundle.exists(),
        "only the newest seal can have been cut short"
    );
    drop(first_bytes);
}

/// Offsets and sizes of the files inside a ustar archive.
fn members(tar: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let header = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size_text = String::from_utf8_lossy(&header[124..136])
            .trim_matches(|c| c == '\0' || c == ' ')
            .to_owned();
        let size = usize::from_str_radix(&size_text, 8).unwrap();
        out.push((name, at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

#[test]
fn a_flipped_byte_in_any_file_is_rejected_with_a_reason() {
    let s = sealed_lab();
    let original = std::fs::read(&s.bundle).unwrap();
    let expected = [
        (
            "manifest.json",
            "manifest.json does not match its SHA256SUMS entry",
        ),
        (
            "readings.csv",
            "readings.csv does not match its SHA256SUMS entry",
        ),
        (
            "events.jsonl",
            "events.jsonl does not match its SHA256SUMS entry",
        ),
        (
            "SHA256SUMS",
            "bad signature on SHA256SUMS by principal `TEST-LAB`",
        ),
        ("SHA256SUMS.sig", "SHA256SUMS.sig"),
    ];
    let files = members(&original);
    for (file, reason) in expected {
        let (_, start, size) = files
            .iter()
            .find(|(n, _, _)| n.ends_with(&format!("/{file}")))
            .unwrap();
        for offset in [*start, start + size / 2, start + size - 2] {
            let mut bytes = original.clone();
            bytes[offset] ^= 0x01;
            let tampered = s.lab.path().join("tampered.tar");
            std::fs::write(&tampered, &bytes).unwrap();
            // With --lab the principal does not depend on the (possibly garbled) manifest, so each
            // flip reaches the check that is about that file.
            verify(&tampered, &s.signers, &["--lab", "TEST-LAB"])
                .code(4)
                .stderr(
                    predicate::str::contains("failed verification")
                        .and(predicate::str::contains(reason)),
                );
            verify(&tampered, &s.signers, &[]).code(4);
        }
    }
}

#[test]
fn wrong_lab_principal_and_unknown_signer_are_rejected() {
    let s = sealed_lab();
    verify(&s.bundle, &s.signers, &["--lab", "OTHER-LAB"])
        .code(4)
        .stderr(predicate::str::contains(
            "bundle is from lab `TEST-LAB`, expected lab `OTHER-LAB`",
        ));
    let text = std::fs::read_to_string(&s.signers)
        .unwrap()
        .replacen("TEST-LAB", "OTHER-LAB", 1);
    let others = s.lab.path().join("other_signers");
    std::fs::write(&others, text).unwrap();
    verify(&s.bundle, &others, &[])
        .code(4)
        .stderr(predicate::str::contains(
            "no key in allowed_signers for principal `TEST-LAB`",
        ));
}

#[test]
fn a_signature_in_another_namespace_is_rejected() {
    let s = sealed_lab();
    let dir = s.lab.bundles();
    // Re-sign SHA256SUMS with the lab's own key, but for git, using OpenSSH itself.
    let out = sh(
        &dir,
        &format!(
            "tar -xf {NAME}.tar && cd {NAME} && rm SHA256SUMS.sig && ssh-keygen -q -Y sign -f {} -n git SHA256SUMS",
            s.lab.key().display()
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read(dir.join(NAME).join(f)).unwrap();
    let (manifest, readings, events, custody, sums, sig) = (
        read("manifest.json"),
        read("readings.csv"),
        read("events.jsonl"),
        read("custody.jsonl"),
        read("SHA256SUMS"),
        read("SHA256SUMS.sig"),
    );
    let files = tsagent_bundle::tar::BundleFiles {
        manifest: &manifest,
        readings: &readings,
        events: &events,
        custody: Some(&custody),
        sums: &sums,
        sig: &sig,
    };
    let tar = tsagent_bundle::tar::write_tar(NAME, &files, 0).unwrap();
    let forged = s.lab.path().join(format!("{NAME}.tar"));
    std::fs::write(&forged, tar).unwrap();
    verify(&forged, &s.signers, &[])
        .code(4)
        .stderr(predicate::str::contains(
            "SHA256SUMS.sig has namespace `git`, expected `tsagent-bundle-v1`",
        ));
}

#[test]
fn a_key_readable_by_others_is_refused() {
    let lab = Lab::simulated();
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    measure(&config).success();
    std::fs::set_permissions(lab.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(format!(
            "permissions 0644 for '{}' are too open",
            lab.key().display()
        )));
    assert!(!lab.bundles().exists(), "nothing sealed");
}

fn sqlite3(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (Debian package sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn db_check_catches_edits_and_deletions_made_with_the_sqlite3_shell() {
    let mut lab = Lab::simulated();
    lab.count = 12;
    let config = lab.config();
    measure(&config).success();
    lab.assert_sound();
    // The triggers refuse a plain edit…
    let refused = Command::new("sqlite3")
        .arg(lab.db())
        .arg("UPDATE readings SET value = 10.1 WHERE seq = 5;")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    lab.assert_sound();
    // …so a tamperer drops them first.
    let cases = [
        (
            "edited",
            "DROP TRIGGER readings_no_update; UPDATE readings SET value = 10.1 WHERE seq = 5;",
            "reading 5 does not match its chain hash",
        ),
        (
            "deleted",
            "DROP TRIGGER readings_no_delete; DELETE FROM readings WHERE seq = 7;",
            "reading 7 is missing",
        ),
        (
            "truncated",
            "DROP TRIGGER readings_no_delete; DELETE FROM readings WHERE seq = 12;",
            "readings after 11 are missing",
        ),
    ];
    for (name, sql, reason) in cases {
        let copy = lab.path().join(format!("{name}.db"));
        std::fs::copy(lab.db(), &copy).unwrap();
        sqlite3(&copy, sql);
        tsagent()
            .args(["db", "check", "--db"])
            .arg(&copy)
            .assert()
            .code(4)
            .stderr(predicate::str::contains(reason));
    }
}

#[test]
fn several_bundles_verify_with_their_links_and_a_gap_or_a_bad_one_is_named() {
    let s = sealed_lab();
    let config = s.lab.path().join("lab.toml");
    for _ in 0..2 {
        measure(&config).success();
        tsagent()
            .args(["bundle", "seal", "--config"])
            .arg(&config)
            .assert()
            .success();
    }
    // The folder: three bundles, linked.
    tsagent()
        .args(["bundle", "verify"])
        .arg(s.lab.bundles())
        .arg("--allowed-signers")
        .arg(&s.signers)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "TEST-LAB Z1: bundles 1–3 linked: each names its predecessor's SHA256SUMS and continues its reading chain (readings 1–30)",
        ));
    // Bundle 2 missing: a gap, exit 4.
    let b = |n: u32| s.lab.bundles().join(format!("TEST-LAB-Z1-00000{n}.tar"));
    tsagent()
        .args(["bundle", "verify"])
        .arg(b(1))
        .arg(b(3))
        .arg("--allowed-signers")
        .arg(&s.signers)
        .assert()
        .code(4)
        .stdout(predicate::str::contains(
            "TEST-LAB Z1: GAP: bundle 3 arrived, the next expected is 2",
        ))
        .stderr(predicate::str::contains(
            "not every bundle verified and linked",
        ));
    // A damaged bundle among good ones is named; the others are still checked.
    let damaged = s.lab.path().join("damaged.tar");
    let mut bytes = std::fs::read(b(2)).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    tsagent()
        .args(["bundle", "verify"])
        .arg(b(1))
        .arg(&damaged)
        .arg(b(3))
        .arg("--allowed-signers")
        .arg(&s.signers)
        .assert()
        .code(4)
        .stdout(
            predicate::str::contains("damaged.tar: FAILED:")
                .and(predicate::str::contains("TEST-LAB-Z1-000003.tar: ok")),
        );
}
