//! Paths that are not regular files (issue 8, items 10 and 12): a FIFO given as a key, an
//! allowed_signers file, a config, a driver profile, the database, a bundle or a bundle's output
//! name must not
//! hang the agent, and a device such as `/dev/zero` must not flood it. Each command runs with a
//! deadline (`PATIENCE`), so a hang fails the test instead of hanging it.
//!
//! Bundles given to `verify` may come through a pipe or a FIFO (read once, under the same caps);
//! everything else must be a regular file.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use predicates::prelude::*;

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// A lab with readings and a sealed bundle: the config, the bundle and its allowed_signers.
fn sealed() -> (Lab, PathBuf, PathBuf, PathBuf) {
    let lab = Lab::simulated();
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();
    measure(&config).success();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success();
    let bundle = lab.bundles().join("TEST-LAB-Z1-000001.tar");
    let signers = lab.key().with_file_name("allowed_signers");
    (lab, config, bundle, signers)
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
fn a_key_path_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let lab = Lab::simulated();
    let config = lab.config();
    measure(&config).success();
    std::fs::create_dir_all(lab.key().parent().unwrap()).unwrap();
    mkfifo(&lab.key());
    let refused = tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .timeout(PATIENCE)
        .assert()
        .code(6);
    assert!(
        stderr(&refused).contains(&format!(
            "key file `{}` is a FIFO, not a regular file",
            lab.key().display()
        )),
        "{}",
        stderr(&refused)
    );
    std::fs::remove_file(lab.key()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", lab.key()).unwrap();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .timeout(PATIENCE)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "is a character device, not a regular file",
        ));
    assert!(!lab.bundles().exists(), "nothing sealed");
}

#[test]
fn an_allowed_signers_path_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let (lab, _config, bundle, _signers) = sealed();
    let fifo = lab.path().join("signers.fifo");
    mkfifo(&fifo);
    verify(&bundle, &fifo)
        .code(2)
        .stderr(predicate::str::contains(format!(
            "allowed_signers file `{}` is a FIFO, not a regular file",
            fifo.display()
        )));
    verify(&bundle, Path::new("/dev/zero"))
        .code(2)
        .stderr(predicate::str::contains(
            "allowed_signers file `/dev/zero` is a character device, not a regular file",
        ));
}

#[test]
fn a_config_or_profile_path_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("lab.toml");
    mkfifo(&fifo);
    tsagent()
        .args(["config", "check"])
        .arg(&fifo)
        .timeout(PATIENCE)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "config file `{}` is a FIFO, not a regular file",
            fifo.display()
        )));
    tsagent()
        .args(["measure", "--sequence", "s", "--config"])
        .arg(&fifo)
        .timeout(PATIENCE)
        .assert()
        .code(2);
    tsagent()
        .args(["config", "check", "/dev/zero"])
        .timeout(PATIENCE)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a character device"));
    let profile = dir.path().join("my-dmm.toml");
    mkfifo(&profile);
    tsagent()
        .args(["drivers", "check"])
        .arg(&profile)
        .timeout(PATIENCE)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "driver profile `{}` is a FIFO, not a regular file",
            profile.display()
        )));
}

#[test]
fn a_bundle_from_a_fifo_without_a_writer_or_from_a_device_is_refused_at_once() {
    let (lab, _config, _bundle, signers) = sealed();
    let fifo = lab.path().join("bundle.fifo");
    mkfifo(&fifo);
    // Nobody writes: an empty input, not a wait.
    verify(&fifo, &signers)
        .code(4)
        .stderr(predicate::str::contains("archive truncated at offset 0"));
    // Zeros without end: refused after a bounded read.
    verify(Path::new("/dev/zero"), &signers)
        .code(4)
        .stderr(predicate::str::contains(
            "of padding after the end of the archive",
        ));
    // A folder is read as the bundles in it; one without any is a usage error.
    verify(lab.path(), &signers)
        .code(2)
        .stderr(predicate::str::contains("no .tar bundle in it"));
}

#[test]
fn a_bundle_through_a_pipe_or_a_fifo_verifies() {
    let (lab, _config, bundle, signers) = sealed();
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' | '{}' bundle verify /dev/stdin --allowed-signers '{}'",
            bundle.display(),
            bin().display(),
            signers.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(String::from_utf8_lossy(&piped.stdout).contains("/dev/stdin: ok"));
    // A FIFO with a writer: this test holds it open read-write with the bundle in the pipe's
    // buffer until the verifier has opened it, then closes it, so the verifier reads the bundle
    // and then the end of the stream.
    let fifo = lab.path().join("bundle.fifo");
    mkfifo(&fifo);
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    writer.write_all(&std::fs::read(&bundle).unwrap()).unwrap();
    let run = Proc::spawn(
        Command::new(bin())
            .args(["bundle", "verify"])
            .arg(&fifo)
            .arg("--allowed-signers")
            .arg(&signers),
    );
    wait_until_open(run.child.id(), &fifo);
    drop(writer);
    let line = run.wait_for(|l| l.contains(": ok"));
    assert!(line.starts_with(&fifo.display().to_string()), "{line}");
    let (status, err) = run.finish();
    assert!(status.success(), "{err}");
}

/// Waits (with a deadline) until process `pid` has `path` open.
fn wait_until_open(pid: u32, path: &Path) {
    let deadline = std::time::Instant::now() + PATIENCE;
    let fds = PathBuf::from(format!("/proc/{pid}/fd"));
    loop {
        let open = std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|p| p == path));
        if open {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the verifier never opened {}",
            path.display()
        );
        std::thread::yield_now();
    }
}

#[test]
fn an_oversized_signature_member_is_refused_before_it_is_read() {
    let (lab, _config, bundle, signers) = sealed();
    // The real files, but a signature of 2 MiB: far under what readings.csv may be, far over
    // what a signature is. Refused from its header, without reading or parsing it.
    let name = "TEST-LAB-Z1-000001";
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .current_dir(lab.path())
        .status()
        .unwrap();
    assert!(out.success());
    let read = |f: &str| std::fs::read(lab.path().join(name).join(f)).unwrap();
    let huge = vec![b'A'; 2 << 20];
    let (manifest, readings, events, custody, sums) = (
        read("manifest.json"),
        read("readings.csv"),
        read("events.jsonl"),
        read("custody.jsonl"),
        read("SHA256SUMS"),
    );
    let files = tsagent_bundle::tar::BundleFiles {
        manifest: &manifest,
        readings: &readings,
        events: &events,
        custody: Some(&custody),
        sums: &sums,
        sig: &huge,
    };
    let forged = lab.path().join("forged.tar");
    std::fs::write(
        &forged,
        tsagent_bundle::tar::write_tar(name, &files, 0).unwrap(),
    )
    .unwrap();
    verify(&forged, &signers)
        .code(4)
        .stderr(predicate::str::contains(format!(
            "entry `{name}/SHA256SUMS.sig` of 2097152 bytes exceeds the 65536-byte cap"
        )));
}

#[test]
fn a_fifo_where_the_bundle_file_goes_is_refused_not_waited_on() {
    let lab = Lab::simulated();
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .assert()
        .success();
    measure(&config).success();
    std::fs::create_dir_all(lab.bundles()).unwrap();
    let planted = lab.bundles().join("TEST-LAB-Z1-000001.tar");
    mkfifo(&planted);
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .timeout(PATIENCE)
        .assert()
        .code(5)
        .stderr(predicate::str::contains(format!(
            "bundle file `{}` is a FIFO, not a regular file",
            planted.display()
        )));
    let mode = std::fs::symlink_metadata(&planted)
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o170000, 0o100000, "the FIFO is left as it was");
}

/// The database path too: SQLite would open a FIFO and wait on it for ever, and read a device as a
/// database. Every command that opens the log refuses them at once, naming what the path is.
#[test]
fn a_database_path_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tsagent.db");
    mkfifo(&fifo);
    for (db, what) in [(fifo.as_path(), "FIFO"), (Path::new("/dev/zero"), "device")] {
        for args in [vec!["db", "check", "--db"], vec!["readings", "--db"]] {
            let a = tsagent()
                .args(&args)
                .arg(db)
                .timeout(PATIENCE)
                .assert()
                .code(2);
            let err = stderr(&a);
            assert!(
                err.contains(&format!("is a {what}, not a database file")),
                "{args:?} {}: {err}",
                db.display()
            );
        }
    }
    // As `[storage] db` of a lab: measure is refused before any instrument is touched.
    let lab = Lab::simulated();
    mkfifo(&lab.db());
    let a = tsagent()
        .args(["measure", "--sequence", "s", "--config"])
        .arg(lab.config())
        .timeout(PATIENCE)
        .assert()
        .code(2);
    assert!(
        stderr(&a).contains("is a FIFO, not a database file"),
        "{}",
        stderr(&a)
    );
}
