//! Signed measurement bundles: a lab's readings sealed into a tar that the pilot lab verifies with
//! `tsagent bundle verify` or with stock tools alone:
//!
//! ```text
//! tar -xf B.tar && cd B
//! ssh-keygen -Y verify -f allowed_signers -I <lab> -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS
//! sha256sum -c SHA256SUMS
//! ```
//!
//! The folder `<lab>-<artefact>-<seq:06>/` holds `manifest.json`, `readings.csv`, `events.jsonl`,
//! `SHA256SUMS` (over the first three) and `SHA256SUMS.sig` (SSHSIG, namespace
//! `tsagent-bundle-v1`). The signature covers the sums, the sums cover the files, the manifest
//! pins the reading chain's ends, and the chain pins every reading.
//!
//! From format v4 a bundle may also carry the lab's report in `report/` (attachments, listed in
//! `SHA256SUMS` as `report/<name>` and in the manifest), which the same three commands verify.
//!
//! **Architecture invariants:** sealing is pure (deterministic for the same input and key; it
//! streams into the caller's sinks); nothing here touches the store or the CLI; the format types in
//! [`manifest`] depend on serde only; the verifier never extracts, refuses any byte it did not
//! expect, checks the signature before it parses anything the signature vouches for, and bounds
//! its memory whatever it is fed; files are read by path only if they are regular files.

pub mod chain;
pub mod csv;
pub mod event;
pub mod file;
pub mod hex;
pub mod links;
pub mod manifest;
pub mod note;
pub mod receipt;
pub mod records;
pub mod signers;
pub mod sums;
pub mod tar;
pub mod time;
pub mod tlog;

mod content;
mod keys;
mod seal;
mod ssh;
mod verify;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use content::ContentError;
pub use keys::{
    KeyError, MAX_SIGNERS_FILE_BYTES, SignersUpdate, allowed_signers_line, fingerprint,
    generate_key, load_signing_key, write_allowed_signers,
};
pub use manifest::{ArtefactInfo, Attachment, InstrumentInfo, Manifest};
pub use records::{EventExport, ReadingExport};
pub use seal::{
    SealError, SealHeader, SealInput, SealedBundle, SealedParts, Sealer, check_attachment, seal,
    seal_with_attachments,
};
pub use signers::{AllowedSigners, AllowedSignersError};
pub use ssh::SshError;
/// The lab's signing key, as sealing takes it.
pub use ssh_key::PrivateKey as SigningKey;
/// A public key, as receipts and checkpoints are verified with, and its algorithm.
pub use ssh_key::{Algorithm as KeyAlgorithm, PublicKey};
pub use tar::{TarError, TarLimits, read_tar};
pub use verify::{
    AttachmentProblem, MAX_BUNDLE_BYTES, Marks, VerifiedBundle, VerifyError, verify, verify_at,
    verify_reader, verify_reader_marked,
};

/// The SSHSIG namespace bundles are signed in; `allowed_signers` lines restrict keys to it.
pub const NAMESPACE: &str = "tsagent-bundle-v1";

/// True for a lab or artefact id: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_id(id: &str) -> bool {
    // Not starting with `.` or `-`: ids become file names, and such names hide or read as options.
    (1..=64).contains(&id.len())
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `<lab>-<artefact>-<seq, at least 6 digits>`: the bundle's folder and file stem.
pub fn bundle_name(lab: &str, artefact: &str, bundle_seq: u64) -> String {
    format!("{lab}-{artefact}-{bundle_seq:06}")
}

/// Writes `bytes` to `dir/file_name` so that the file is either absent or complete, even across a
/// power cut: temp file in `dir`, fsync, rename over the name, fsync `dir`.
pub fn write_file_atomically(dir: &Path, file_name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    if file_name.is_empty()
        || file_name == "."
        || file_name == ".."
        || file_name.contains(['/', '\0'])
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file name `{file_name}`"),
        ));
    }
    let target = dir.join(file_name);
    let temp = dir.join(format!(".{file_name}.tmp"));
    let mut file = match create_temp(&temp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left by a crash mid-write; removing it unlinks a planted symlink rather than following it.
            fs::remove_file(&temp)?;
            create_temp(&temp)?
        }
        other => other?,
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, &target));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    File::open(dir)?.sync_all()?;
    Ok(target)
}

fn create_temp(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
}

#[cfg(test)]
mod tests;
