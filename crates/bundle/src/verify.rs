//! Verification: the pilot lab's side, doing in memory what `ssh-keygen -Y verify` and
//! `sha256sum -c` do on an extracted bundle, then checking the content against the manifest.

use std::time::SystemTime;

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, SshSig};
use thiserror::Error;

use super::content::{self, ContentError};
use super::manifest::{AGENT_NAME, FORMAT, Manifest};
use super::records::{self, RecordsError, format_utc_us};
use super::signers::AllowedSigners;
use super::sums::{self, SUMMED_FILES, SumsError};
use super::tar::{self, TarError, TarLimits};
use super::{NAMESPACE, bundle_name, is_valid_id};

/// Largest bundle `verify` accepts; the CLI checks the file size against it before reading.
pub const MAX_BUNDLE_BYTES: u64 = TarLimits::DEFAULT.max_total_bytes;

/// A bundle that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    /// Its manifest.
    pub manifest: Manifest,
    /// The principal whose key signed it (the lab id).
    pub principal: String,
    /// Number of readings.
    pub readings: usize,
    /// SHA-256 of its `SHA256SUMS`: what the lab's next bundle names as `prev_sha256sums`.
    pub sums_sha256: [u8; 32],
}

/// Why a bundle was rejected, in the order the checks run.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// 1. The archive is not a well-formed bundle tar.
    #[error("malformed bundle archive")]
    Tar(#[from] TarError),
    /// 2. The manifest names another lab than the one asked for.
    #[error("bundle is from lab `{found}`, expected lab `{expected}`")]
    LabMismatch {
        /// The lab asked for.
        expected: String,
        /// The manifest's lab id.
        found: String,
    },
    /// 2. No lab was given and the manifest's lab id cannot be read.
    #[error("cannot read the lab id from manifest.json to choose the principal")]
    NoLabId,
    /// 3. `SHA256SUMS.sig` is not an armored SSH signature.
    #[error("SHA256SUMS.sig is not a valid SSH signature")]
    SignatureFormat(#[source] ssh_key::Error),
    /// 3. `SHA256SUMS.sig` is a signature, but not byte for byte as the sealer writes it.
    #[error("SHA256SUMS.sig is not in canonical armored form")]
    SignatureNotCanonical,
    /// 3. Signed for another purpose.
    #[error("SHA256SUMS.sig has namespace `{found}`, expected `tsagent-bundle-v1`")]
    WrongNamespace {
        /// The signature's namespace.
        found: String,
    },
    /// 3. `allowed_signers` has no usable key for the principal and namespace.
    #[error("no key in allowed_signers for principal `{principal}` in namespace tsagent-bundle-v1")]
    UnknownPrincipal {
        /// The principal.
        principal: String,
    },
    /// 3. The signing key is not one of the principal's keys.
    #[error(
        "SHA256SUMS.sig was made by key {fingerprint}, which is not allowed for principal `{principal}`"
    )]
    KeyNotAllowed {
        /// The principal.
        principal: String,
        /// SHA-256 fingerprint of the signing key.
        fingerprint: String,
    },
    /// 3. The signature does not verify.
    #[error("bad signature on SHA256SUMS by principal `{principal}`")]
    BadSignature {
        /// The principal.
        principal: String,
        /// The verification error.
        #[source]
        source: ssh_key::Error,
    },
    /// 4. `SHA256SUMS` is malformed.
    #[error("malformed SHA256SUMS")]
    Sums(#[from] SumsError),
    /// 4. A file's hash differs from its `SHA256SUMS` line.
    #[error("{file} does not match its SHA256SUMS entry")]
    HashMismatch {
        /// The file.
        file: &'static str,
    },
    /// 5. The manifest does not parse strictly.
    #[error("invalid manifest.json")]
    Manifest(#[source] serde_json::Error),
    /// 5. A manifest field is wrong on its own.
    #[error("manifest.json: {field} is `{found}`, expected `{expected}`")]
    ManifestField {
        /// Which field.
        field: &'static str,
        /// Its value.
        found: String,
        /// What it should be.
        expected: String,
    },
    /// 5. The folder in the tar is not `<lab>-<artefact>-<seq:06>`.
    #[error("bundle folder `{found}` does not match the manifest, expected `{expected}`")]
    FolderName {
        /// The folder.
        found: String,
        /// The name from the manifest.
        expected: String,
    },
    /// 5. `readings.csv` or `events.jsonl` does not parse strictly.
    #[error("invalid bundle records")]
    Records(#[from] RecordsError),
    /// 5. A reading or event breaks the bundle's rules (names the reading or event).
    #[error("invalid bundle content")]
    Content(#[from] ContentError),
    /// 5. A manifest summary field disagrees with the file it summarises.
    #[error("manifest.json: {field} is {manifest}, but {file} gives {actual}")]
    Summary {
        /// The summarised file.
        file: &'static str,
        /// Which field.
        field: &'static str,
        /// The manifest's value.
        manifest: String,
        /// The value computed from the file.
        actual: String,
    },
}

/// Verifies a bundle with the current time for key validity; see [`verify_at`].
pub fn verify(
    tar: &[u8],
    signers: &AllowedSigners,
    lab: Option<&str>,
) -> Result<VerifiedBundle, VerifyError> {
    verify_at(tar, signers, lab, SystemTime::now())
}

/// Verifies a bundle, evaluating `valid-after`/`valid-before` at `now` (as `ssh-keygen` does).
///
/// `lab`, when given, is the principal the bundle must be signed as; otherwise the manifest's lab
/// id is, and the signature is what makes that claim trustworthy.
pub fn verify_at(
    tar: &[u8],
    signers: &AllowedSigners,
    lab: Option<&str>,
    now: SystemTime,
) -> Result<VerifiedBundle, VerifyError> {
    // 1. Structure.
    let bundle = tar::read_tar(tar, TarLimits::DEFAULT)?;
    let files = bundle.files;

    // 2. Principal. The manifest is not authenticated yet; its lab id only picks whose keys to try.
    let claimed = claimed_lab(files.manifest);
    let principal = match (lab, claimed) {
        (Some(expected), Some(found)) if expected != found => {
            return Err(VerifyError::LabMismatch {
                expected: expected.to_owned(),
                found,
            });
        }
        (Some(expected), _) => expected.to_owned(),
        (None, Some(found)) => found,
        (None, None) => return Err(VerifyError::NoLabId),
    };

    // 3. Signature over SHA256SUMS.
    let sig = SshSig::from_pem(files.sig).map_err(VerifyError::SignatureFormat)?;
    // Re-encoding must give the same bytes, so no armor byte escapes the signature check.
    let canonical = sig
        .to_pem(LineEnding::LF)
        .map_err(VerifyError::SignatureFormat)?;
    if canonical.as_bytes() != files.sig {
        return Err(VerifyError::SignatureNotCanonical);
    }
    if sig.namespace() != NAMESPACE {
        return Err(VerifyError::WrongNamespace {
            found: sig.namespace().to_owned(),
        });
    }
    let keys = signers.keys_for(&principal, NAMESPACE, now);
    if keys.is_empty() {
        return Err(VerifyError::UnknownPrincipal { principal });
    }
    let Some(key) = keys.into_iter().find(|k| k.key_data() == sig.public_key()) else {
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        return Err(VerifyError::KeyNotAllowed {
            principal,
            fingerprint,
        });
    };
    if let Err(source) = key.verify(NAMESPACE, files.sums, &sig) {
        return Err(VerifyError::BadSignature { principal, source });
    }

    // 4. Hashes.
    let listed = sums::parse(files.sums)?;
    for ((file, bytes), expected) in SUMMED_FILES
        .iter()
        .zip([files.events, files.manifest, files.readings])
        .zip(listed)
    {
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if actual != expected {
            return Err(VerifyError::HashMismatch { file });
        }
    }

    // 5. Manifest and content.
    let manifest: Manifest =
        serde_json::from_slice(files.manifest).map_err(VerifyError::Manifest)?;
    check_manifest(&manifest, &principal, &bundle.folder)?;
    let readings = records::read_readings(files.readings)?;
    let readings_summary = content::check_readings(
        &readings,
        &manifest.readings.chain_prev.0,
        &manifest.instruments,
    )?;
    let m = &manifest.readings;
    let r = &readings_summary;
    summary("readings.csv", "readings.count", m.count, r.count)?;
    summary(
        "readings.csv",
        "readings.first_seq",
        m.first_seq,
        r.first_seq,
    )?;
    summary("readings.csv", "readings.last_seq", m.last_seq, r.last_seq)?;
    summary(
        "readings.csv",
        "readings.chain_last",
        m.chain_last,
        r.chain_last,
    )?;
    let events = records::read_events(files.events)?;
    let events_summary = content::check_events(&events)?;
    let (m, e) = (&manifest.events, &events_summary);
    summary("events.jsonl", "events.count", m.count, e.count)?;
    summary(
        "events.jsonl",
        "events.first_id",
        Opt(m.first_id),
        Opt(e.first_id),
    )?;
    summary(
        "events.jsonl",
        "events.last_id",
        Opt(m.last_id),
        Opt(e.last_id),
    )?;

    Ok(VerifiedBundle {
        manifest,
        principal,
        readings: readings.len(),
        sums_sha256: Sha256::digest(files.sums).into(),
    })
}

/// The manifest's `lab.id`, read loosely: it only selects the principal before anything is trusted.
fn claimed_lab(manifest: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    value.get("lab")?.get("id")?.as_str().map(str::to_owned)
}

/// The manifest's own fields: format, agent, ids, name, times and the previous-bundle link.
fn check_manifest(manifest: &Manifest, principal: &str, folder: &str) -> Result<(), VerifyError> {
    let field = |field, found: &str, expected: &str| {
        if found == expected {
            Ok(())
        } else {
            Err(VerifyError::ManifestField {
                field,
                found: found.to_owned(),
                expected: expected.to_owned(),
            })
        }
    };
    field("format", &manifest.format, FORMAT)?;
    field("agent.name", &manifest.agent.name, AGENT_NAME)?;
    field("lab.id", &manifest.lab.id, principal)?;
    for (name, id) in [
        ("lab.id", &manifest.lab.id),
        ("artefact.id", &manifest.artefact.id),
    ] {
        if !is_valid_id(id) {
            return Err(VerifyError::ManifestField {
                field: name,
                found: id.clone(),
                expected: "[A-Za-z0-9._-]{1,64}".to_owned(),
            });
        }
    }
    let expected = bundle_name(&manifest.lab.id, &manifest.artefact.id, manifest.bundle_seq);
    if folder != expected {
        return Err(VerifyError::FolderName {
            found: folder.to_owned(),
            expected,
        });
    }
    let Some(created) = format_utc_us(manifest.created_utc_us) else {
        return Err(VerifyError::ManifestField {
            field: "created_utc_us",
            found: manifest.created_utc_us.to_string(),
            expected: "a time from 1970 to 9999".to_owned(),
        });
    };
    field("created_utc", &manifest.created_utc, &created)?;
    if manifest.bundle_seq == 0 {
        field("bundle_seq", "0", "at least 1")?;
    }
    let prev = manifest
        .prev_sha256sums
        .map(|h| h.to_string())
        .unwrap_or_else(|| "null".to_owned());
    match (manifest.bundle_seq == 1, manifest.prev_sha256sums.is_some()) {
        (true, true) => field("prev_sha256sums", &prev, "null")?,
        (false, false) => field("prev_sha256sums", &prev, "a hash (bundle_seq > 1)")?,
        _ => {}
    }
    if !manifest.artefact.nominal.is_finite() {
        field(
            "artefact.nominal",
            &manifest.artefact.nominal.to_string(),
            "a finite number",
        )?;
    }
    Ok(())
}

/// An optional id, displayed as `null` when absent.
#[derive(PartialEq)]
struct Opt(Option<u64>);

impl std::fmt::Display for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("null"),
        }
    }
}

fn summary<T: PartialEq + std::fmt::Display>(
    file: &'static str,
    field: &'static str,
    manifest: T,
    actual: T,
) -> Result<(), VerifyError> {
    if manifest == actual {
        Ok(())
    } else {
        Err(VerifyError::Summary {
            file,
            field,
            manifest: manifest.to_string(),
            actual: actual.to_string(),
        })
    }
}
