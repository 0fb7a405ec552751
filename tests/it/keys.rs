//! The lab's signing key through the binary: `keygen --config` puts it where the config says with
//! `allowed_signers` beside it, the log records its fingerprint, a different key is refused until
//! `--new-key` rotates it (a `key_rotated` event the pilot receives), and a key file that is not a
//! key gets one clear message.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use predicates::prelude::*;

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// `ssh-keygen -l`'s fingerprint of a key file.
fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned()
}

fn keygen(args: &[&str], config: &Path) -> assert_cmd::assert::Assert {
    tsagent()
        .arg("keygen")
        .args(args)
        .arg("--config")
        .arg(config)
        .timeout(PATIENCE)
        .assert()
}

fn seal(config: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(config)
        .args(args)
        .timeout(PATIENCE)
        .assert()
}

fn verify(bundle: &Path, signers: &Path) -> assert_cmd::assert::Assert {
    tsagent()
        .args(["bundle", "verify"])
        .arg(bundle)
        .arg("--allowed-signers")
        .arg(signers)
        .timeout(PATIENCE)
        .assert()
}

#[test]
fn keygen_writes_the_key_where_the_config_says_and_allowed_signers_beside_it() {
    let lab = Lab::simulated();
    let config = lab.config();
    let made = keygen(&[], &config).success();
    let out = stdout(&made);
    let key = lab.key();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(key.with_file_name("lab.pub").exists());
    let line = out.lines().last().unwrap().to_owned();
    assert!(
        line.starts_with(
            "TEST-LAB namespaces=\"tsagent-bundle-v1,tsagent-heartbeat-v1\" ssh-ed25519 AAAA"
        ),
        "{out}"
    );
    assert!(out.contains(&fingerprint(&key)), "{out}");
    let signers = key.with_file_name("allowed_signers");
    assert_eq!(
        std::fs::read_to_string(&signers).unwrap(),
        format!("{line}\n")
    );

    // The pilot's other labs in the same file are kept when the lab's own line is replaced.
    let other = "OTHER-LAB namespaces=\"tsagent-bundle-v1\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHa3Cq1d3wMLrW9c0eRaG7Ud9Q0vW5bJ8ZqQk3S7xT5o";
    std::fs::write(&signers, format!("# pilot's list\n{other}\n{line}\n")).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(key.with_file_name("lab.pub")).unwrap();
    let again = keygen(&["--new-key"], &config).success();
    let new_line = stdout(&again).lines().last().unwrap().to_owned();
    assert_ne!(new_line, line);
    assert_eq!(
        std::fs::read_to_string(&signers).unwrap(),
        format!("# pilot's list\n{other}\n{new_line}\n")
    );

    // `--out` still chooses another place; the key there is not the one sealing uses.
    let elsewhere = lab.path().join("spare/key");
    let spare = tsagent()
        .args(["keygen", "--out"])
        .arg(&elsewhere)
        .arg("--config")
        .arg(&config)
        .assert()
        .success();
    assert!(elsewhere.exists());
    assert!(elsewhere.with_file_name("allowed_signers").exists());
    assert!(
        stdout(&spare).contains("not recorded"),
        "{}",
        stdout(&spare)
    );
}

#[test]
fn a_different_key_is_refused_and_new_key_rotates_it() {
    let lab = Lab::simulated();
    let config = lab.config();
    keygen(&[], &config).success();
    let key = lab.key();
    let old = fingerprint(&key);
    measure(&config).success();
    seal(&config, &[]).success();
    let old_signers = lab.path().join("old_signers");
    std::fs::copy(key.with_file_name("allowed_signers"), &old_signers).unwrap();

    // Someone swaps in another valid key (another lab's, a test key): it would seal bundles that
    // fail at the pilot for good.
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(key.with_file_name("lab.pub")).unwrap();
    tsagent()
        .args(["keygen", "--lab", "TEST-LAB", "--out"])
        .arg(&key)
        .assert()
        .success();
    let new = fingerprint(&key);
    measure(&config).success();
    let refused = seal(&config, &[]).code(6);
    let err = stderr(&refused);
    assert!(err.contains(&old) && err.contains(&new), "{err}");
    assert!(err.contains("--new-key"), "{err}");
    assert!(!lab.bundles().join("TEST-LAB-Z1-000002.tar").exists());
    // keygen refuses to make yet another key over the record, too.
    std::fs::rename(&key, lab.path().join("swapped")).unwrap();
    std::fs::remove_file(key.with_file_name("lab.pub")).unwrap();
    let err = stderr(&keygen(&[], &config).code(6));
    assert!(err.contains(&old) && err.contains("--new-key"), "{err}");
    assert!(!key.exists());
    std::fs::rename(lab.path().join("swapped"), &key).unwrap();

    let rotated = seal(&config, &["--new-key"]).success();
    let out = stdout(&rotated);
    assert!(
        out.contains(&format!("signing key changed: {old} → {new}")),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("TEST-LAB namespaces="))
        .unwrap_or_else(|| panic!("no allowed_signers line in {out}"))
        .to_owned();
    assert!(out.contains("sealed bundle 2"), "{out}");
    let second = lab.bundles().join("TEST-LAB-Z1-000002.tar");

    // The pilot with only the old line refuses the new bundle; with the new line it verifies, and
    // the bundle tells the pilot of the rotation.
    verify(&second, &old_signers).code(4);
    let new_signers = lab.path().join("new_signers");
    std::fs::write(&new_signers, format!("{line}\n")).unwrap();
    verify(&second, &new_signers).success();
    let listing = Command::new("tar")
        .args(["-xOf"])
        .arg(&second)
        .arg("TEST-LAB-Z1-000002/events.jsonl")
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&listing.stdout);
    let rotation = events
        .lines()
        .find(|l| l.contains("\"kind\":\"key_rotated\""))
        .unwrap_or_else(|| panic!("no key_rotated event in {events}"));
    assert!(
        rotation.contains(&format!(
            "\"detail\":{{\"new_fingerprint\":\"{new}\",\"old_fingerprint\":\"{old}\"}}"
        )),
        "{rotation}"
    );
    // From now on the new key is the recorded one.
    measure(&config).success();
    seal(&config, &[]).success();
}

#[test]
fn a_key_file_that_is_not_a_key_gets_one_clear_message() {
    let lab = Lab::simulated();
    let config = lab.config();
    measure(&config).success();
    std::fs::create_dir_all(lab.key().parent().unwrap()).unwrap();
    let cases: [(&[u8], &str); 3] = [
        (b"", "is empty"),
        (b"\0\0\0", "is not an OpenSSH private key"),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----\n",
            "holds a damaged OpenSSH private key",
        ),
    ];
    for (bytes, reason) in cases {
        std::fs::write(lab.key(), bytes).unwrap();
        std::fs::set_permissions(lab.key(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let failed = seal(&config, &[]).code(6);
        let err = stderr(&failed);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!(
                "error: key file `{}` {reason}",
                lab.key().display()
            )),
            "{err}"
        );
        assert!(!err.contains("NUL byte"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // Each cause once: ssh-key's own chain repeats its innermost message at every level.
        let parts: Vec<&str> = first.split(": ").collect();
        let mut unique = parts.clone();
        unique.dedup();
        assert_eq!(parts, unique, "{err}");
    }
}

#[test]
fn seal_says_so_when_it_first_records_the_key() {
    let lab = Lab::simulated();
    let config = lab.config();
    // A key made without the config: the first seal records it.
    tsagent()
        .args(["keygen", "--lab", "TEST-LAB", "--out"])
        .arg(lab.key())
        .assert()
        .success();
    measure(&config).success();
    seal(&config, &[]).success().stdout(
        predicate::str::contains(format!("recorded signing key {}", fingerprint(&lab.key())))
            .and(predicate::str::contains("sealed bundle 1")),
    );
    seal(&config, &[])
        .success()
        .stdout(predicate::str::contains("recorded signing key").not());
}
