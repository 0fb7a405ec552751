//! Verification: the pilot lab's side, doing without extracting what `ssh-keygen -Y verify` and
//! `sha256sum -c` do on an extracted bundle, then checking the content against the manifest and
//! the reading chain.
//!
//! Two passes over the archive, in memory bounded whatever the input. The first goes through it
//! once, seeking past the files it does not keep: strict structure, a cap per file by name checked
//! before the file is read, and only the three small files kept (`manifest.json`, `SHA256SUMS`,
//! `SHA256SUMS.sig`). Then the signature over
//! `SHA256SUMS` is checked, and only then is anything the signer vouches for parsed: the manifest
//! once its hash matches, and in the second pass (seeking back) `readings.csv` and `events.jsonl`,
//! hashed as they pass and parsed one row at a time. A file whose hash does not match is reported
//! as that, whatever its parse found, so what is accepted is exactly what was signed.

use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, SshSig};
use thiserror::Error;

use super::content::{ContentError, EventsCheck, ReadingsCheck};
use super::manifest::{AGENT_NAME, FORMAT, FORMAT_V1, FORMAT_V2, FORMAT_V4, Hash32, Manifest};
use super::records::{EventsReader, ReadingsReader, RecordsError, format_utc_us};
use super::signers::AllowedSigners;
use super::ssh::SshError;
use super::sums::{self, SUMMED_FILES, SumsError};
use super::tar::{self, ATTACHMENT_DIR, CUSTODY, Member, MemberSpan, TarError, TarLimits};
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
    /// The chain value after each reading asked for by [`verify_reader_marked`]'s `marks` that
    /// the bundle carries, in `seq` order: how the coordinator holds a bundle to the heartbeats
    /// that came before it (or arrive while it waits).
    pub marks: Vec<(u64, Hash32)>,
    /// When the last reading was taken, µs since the epoch.
    pub last_reading_utc_us: i64,
}

/// Why a bundle was rejected, in the order the checks run.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// 1. The archive is not a well-formed bundle tar.
    #[error("malformed bundle archive")]
    Tar(#[from] TarError),
    /// 4. The manifest names another lab than the one asked for.
    #[error("bundle is from lab `{found}`, expected lab `{expected}`")]
    LabMismatch {
        /// The lab asked for.
        expected: String,
        /// The manifest's lab id.
        found: String,
    },
    /// 1. The archive could not be read.
    #[error("cannot read the bundle")]
    Io(#[from] io::Error),
    /// 2. `SHA256SUMS.sig` is not an armored SSH signature.
    #[error("SHA256SUMS.sig is not a valid SSH signature")]
    SignatureFormat(#[source] SshError),
    /// 2. `SHA256SUMS.sig` is a signature, but not byte for byte as the sealer writes it.
    #[error("SHA256SUMS.sig is not in canonical armored form")]
    SignatureNotCanonical,
    /// 2. Signed for another purpose.
    #[error("SHA256SUMS.sig has namespace `{found}`, expected `tsagent-bundle-v1`")]
    WrongNamespace {
        /// The signature's namespace.
        found: String,
    },
    /// 2 or 4. `allowed_signers` has no usable key for the principal and namespace.
    #[error("no key in allowed_signers for principal `{principal}` in namespace tsagent-bundle-v1")]
    UnknownPrincipal {
        /// The principal.
        principal: String,
    },
    /// 2. No lab was asked for, and `allowed_signers` does not list the signing key under any
    ///    principal (for this namespace, now).
    #[error(
        "SHA256SUMS.sig was made by key {fingerprint}, which allowed_signers does not list for namespace tsagent-bundle-v1"
    )]
    UnknownKey {
        /// SHA-256 fingerprint of the signing key.
        fingerprint: String,
    },
    /// 2 or 4. The signing key is not one of the principal's keys.
    #[error(
        "SHA256SUMS.sig was made by key {fingerprint}, which is not allowed for principal `{principal}`"
    )]
    KeyNotAllowed {
        /// The principal.
        principal: String,
        /// SHA-256 fingerprint of the signing key.
        fingerprint: String,
    },
    /// 2. The signature does not verify.
    #[error("bad signature on SHA256SUMS by principal `{principal}`")]
    BadSignature {
        /// The principal (the lab asked for, or the principals allowed_signers lists the key under).
        principal: String,
        /// The verification error.
        #[source]
        source: SshError,
    },
    /// 3. `SHA256SUMS` is malformed.
    #[error("malformed SHA256SUMS")]
    Sums(#[from] SumsError),
    /// 3 or 5. A file's hash differs from its `SHA256SUMS` line.
    #[error("{file} does not match its SHA256SUMS entry")]
    HashMismatch {
        /// The file.
        file: &'static str,
    },
    /// 4. The manifest does not parse strictly.
    #[error("invalid manifest.json")]
    Manifest(#[source] serde_json::Error),
    /// 4. A manifest field is wrong on its own.
    #[error("manifest.json: {field} is `{found}`, expected `{expected}`")]
    ManifestField {
        /// Which field.
        field: &'static str,
        /// Its value.
        found: String,
        /// What it should be.
        expected: String,
    },
    /// 4. The folder in the tar is not `<lab>-<artefact>-<seq:06>`.
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
    /// 4. The files do not fit the manifest's format: `custody.jsonl` (and its sums line, and the
    ///    manifest's `custody` and `traceability`) are in every bundle of format v2, in none of v1.
    #[error("a bundle of format `{format}` {problem}")]
    FormatFiles {
        /// The manifest's format.
        format: String,
        /// What does not fit it.
        problem: &'static str,
    },
    /// 5. `custody.jsonl` is not exactly the custody lines of `events.jsonl`.
    #[error("custody.jsonl {problem}")]
    Custody {
        /// What is wrong.
        problem: String,
    },
    /// 3 or 4. The attachments in the archive, in `SHA256SUMS` and in the manifest are not the
    ///    same set, or one's bytes are not what is listed for it.
    #[error("attachment {file} {problem}")]
    Attachment {
        /// `report/<name>`.
        file: String,
        /// What is wrong with it.
        problem: AttachmentProblem,
    },
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

/// How an attachment fails its listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentProblem {
    /// In the archive, but `SHA256SUMS` does not list it.
    NotInSums,
    /// Listed in `SHA256SUMS`, but not in the archive.
    NotInArchive,
    /// Listed in `SHA256SUMS`, but not in the manifest's `attachments`.
    NotInManifest,
    /// In the manifest's `attachments`, but `SHA256SUMS` does not list it.
    OnlyInManifest,
    /// Its bytes do not hash to its `SHA256SUMS` line.
    HashMismatch,
    /// The manifest's hash or size for it is not the file's.
    ManifestMismatch,
}

impl std::fmt::Display for AttachmentProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotInSums => "is in the archive but not listed in SHA256SUMS",
            Self::NotInArchive => "is listed in SHA256SUMS but missing from the archive",
            Self::NotInManifest => "is listed in SHA256SUMS but not in manifest.json",
            Self::OnlyInManifest => "is in manifest.json but not listed in SHA256SUMS",
            Self::HashMismatch => "does not match its SHA256SUMS entry",
            Self::ManifestMismatch => "does not match its manifest.json entry",
        })
    }
}

/// Verifies a bundle in memory with the current time for key validity; see [`verify_reader`].
pub fn verify(
    tar: &[u8],
    signers: &AllowedSigners,
    lab: Option<&str>,
) -> Result<VerifiedBundle, VerifyError> {
    verify_at(tar, signers, lab, SystemTime::now())
}

/// Verifies a bundle in memory, evaluating `valid-after`/`valid-before` at `now`; see
/// [`verify_reader`].
pub fn verify_at(
    tar: &[u8],
    signers: &AllowedSigners,
    lab: Option<&str>,
    now: SystemTime,
) -> Result<VerifiedBundle, VerifyError> {
    verify_reader(Cursor::new(tar), signers, lab, now)
}

/// Bytes read from the archive at a time.
const CHUNK: usize = 64 << 10;

/// What the first pass keeps: the small files, and each attachment's hash and size (hashed as
/// it passes, never parsed).
#[derive(Default)]
struct FirstPass {
    manifest: Vec<u8>,
    sums: Vec<u8>,
    sig: Vec<u8>,
    attachments: Vec<(String, [u8; 32], u64)>,
}

/// Verifies a bundle read from `input` (a file, or a spooled stream: it is read twice), evaluating
/// `valid-after`/`valid-before` at `now` as `ssh-keygen` does. Memory is bounded whatever the
/// input: the three small files (under their caps), a buffer, one record.
///
/// The checks, in order: 1. the archive's structure and caps; 2. the signature over `SHA256SUMS`
/// (armor, namespace, a key `allowed_signers` lists); 3. the manifest's hash; 4. the manifest, and
/// that its lab is one the signing key is allowed for (`lab`, when given, must be it);
/// 5. `readings.csv` and `events.jsonl`, each hashed and read row by row: the reading chain from
/// the manifest's `chain_prev`, the rules of content, the manifest's summary.
pub fn verify_reader<R: Read + Seek>(
    input: R,
    signers: &AllowedSigners,
    lab: Option<&str>,
    now: SystemTime,
) -> Result<VerifiedBundle, VerifyError> {
    verify_reader_marked(input, signers, lab, now, Marks::Seqs(&[]))
}

/// Which readings' chain values [`verify_reader_marked`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks<'a> {
    /// Those whose `seq` is in the list (sorted ascending): the readings a heartbeat named.
    Seqs(&'a [u64]),
    /// Every reading's. For a small bundle this costs less than asking the index which readings
    /// heartbeats named, and holds the bundle to heartbeats that arrive after it was verified.
    All,
}

impl Marks<'_> {
    fn wants(self, seq: u64) -> bool {
        match self {
            Marks::Seqs(seqs) => seqs.binary_search(&seq).is_ok(),
            Marks::All => true,
        }
    }
}

/// [`verify_reader`], also keeping the chain value after each reading `marks` asks for in
/// [`VerifiedBundle::marks`].
pub fn verify_reader_marked<R: Read + Seek>(
    mut input: R,
    signers: &AllowedSigners,
    lab: Option<&str>,
    now: SystemTime,
    marks: Marks<'_>,
) -> Result<VerifiedBundle, VerifyError> {
    // 1. Structure and caps, in one pass; the small files kept, the others passed over.
    let start = input.stream_position()?;
    let mut first = FirstPass::default();
    // Seeking past what it does not keep: readings.csv is read once, in the second pass.
    let layout = tar::read_tar_seekable(&mut input, TarLimits::DEFAULT, |member, data| {
        let keep = match member {
            Member::File(0) => &mut first.manifest,
            Member::File(4) => &mut first.sums,
            Member::File(5) => &mut first.sig,
            Member::Attachment(name) => {
                let mut hasher = Sha256::new();
                let size = io::copy(data, &mut hasher)?;
                first
                    .attachments
                    .push((name.to_owned(), hasher.finalize().into(), size));
                return Ok(());
            }
            Member::File(_) => return Ok(()),
        };
        // Small by their caps, which the reader checked before handing them over.
        data.read_to_end(keep)?;
        Ok::<(), VerifyError>(())
    })?;

    // 2. The signature over SHA256SUMS, before anything the signer vouches for is parsed.
    let sig = SshSig::from_pem(&first.sig).map_err(|e| VerifyError::SignatureFormat(e.into()))?;
    // Re-encoding must give the same bytes, so no armor byte escapes the signature check.
    let canonical = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| VerifyError::SignatureFormat(e.into()))?;
    if canonical.as_bytes() != first.sig {
        return Err(VerifyError::SignatureNotCanonical);
    }
    if sig.namespace() != NAMESPACE {
        return Err(VerifyError::WrongNamespace {
            found: sig.namespace().to_owned(),
        });
    }
    let fingerprint = || sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let entries = signers.entries_for_key(sig.public_key(), NAMESPACE, now);
    let refuse = |principal: &str| {
        if signers.keys_for(principal, NAMESPACE, now).is_empty() {
            VerifyError::UnknownPrincipal {
                principal: principal.to_owned(),
            }
        } else {
            VerifyError::KeyNotAllowed {
                principal: principal.to_owned(),
                fingerprint: fingerprint(),
            }
        }
    };
    let Some(entry) = entries.first() else {
        return Err(match lab {
            Some(lab) => refuse(lab),
            None => VerifyError::UnknownKey {
                fingerprint: fingerprint(),
            },
        });
    };
    if let Err(e) = entry.key.verify(NAMESPACE, &first.sums, &sig) {
        let principal = lab.map_or_else(|| entry.principals.clone(), str::to_owned);
        return Err(VerifyError::BadSignature {
            principal,
            source: e.into(),
        });
    }

    // 3. The manifest's hash, before it is parsed; the attachments', hashed in the first pass;
    // the other files' as they are read.
    let listed = sums::parse(&first.sums)?;
    if <[u8; 32]>::from(Sha256::digest(&first.manifest)) != listed.manifest {
        return Err(VerifyError::HashMismatch {
            file: SUMMED_FILES[2],
        });
    }
    check_attachment_sums(&first.attachments, &listed.attachments)?;

    // 4. The manifest, and whose bundle it is: the lab asked for, or the lab it names, must be one
    // the signing key is allowed for.
    let manifest: Manifest =
        serde_json::from_slice(&first.manifest).map_err(VerifyError::Manifest)?;
    if let Some(expected) = lab
        && manifest.lab.id != expected
    {
        return Err(VerifyError::LabMismatch {
            expected: expected.to_owned(),
            found: manifest.lab.id.clone(),
        });
    }
    let principal = manifest.lab.id.clone();
    if !entries.iter().any(|e| e.allows(&principal)) {
        return Err(refuse(&principal));
    }
    check_manifest(&manifest, &principal, &layout.folder)?;
    let custody_span = check_format(&manifest, &layout, &listed)?;
    check_attachment_manifest(&manifest, &first.attachments)?;

    // 5. The content, hashed as it is parsed.
    let mut marked = Vec::new();
    let mut last_reading_utc_us = 0;
    let readings = {
        let mut reader = member(&mut input, start, layout.span(1))?;
        let mut check = ReadingsCheck::new(manifest.readings.chain_prev.0, &manifest.instruments)?;
        let parsed = (|| {
            let mut rows = ReadingsReader::new(&mut reader);
            while let Some(row) = rows.next_row()? {
                check.push(&row.record, row.instrument, &row.chain)?;
                last_reading_utc_us = row.record.utc_us;
                if marks.wants(row.record.seq) {
                    marked.push((row.record.seq, Hash32(row.chain)));
                }
            }
            Ok::<(), VerifyError>(())
        })();
        same_as_signed(reader, listed.readings, SUMMED_FILES[3], parsed)?;
        check.finish()?
    };
    let m = &manifest.readings;
    let r = &readings;
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
    // The custody lines of events.jsonl, hashed as custody.jsonl must hash.
    let mut custody_lines = Sha256::new();
    let mut custody_count = 0u64;
    let events = {
        let mut reader = member(&mut input, start, layout.span(2))?;
        let mut check = EventsCheck::default();
        let parsed = (|| {
            let mut lines = EventsReader::new(&mut reader);
            while let Some(event) = lines.next_mark()? {
                check.push(event.id, event.utc_us)?;
                if event.custody {
                    custody_lines.update(lines.last_line());
                    custody_lines.update(b"\n");
                    custody_count += 1;
                }
            }
            Ok::<(), VerifyError>(())
        })();
        same_as_signed(reader, listed.events, SUMMED_FILES[1], parsed)?;
        check.finish()
    };
    let (m, e) = (&manifest.events, &events);
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

    // 5 (v2). custody.jsonl: strict lines of custody kinds only, and exactly the custody lines
    // of events.jsonl (so the custody record is no less covered than the events).
    if let (Some(span), Some(signed), Some(info)) =
        (custody_span, listed.custody, manifest.custody.as_ref())
    {
        let mut reader = member(&mut input, start, span)?;
        let parsed = (|| {
            let mut lines = EventsReader::new(&mut reader);
            while let Some(event) = lines.next_event()? {
                if !crate::event::is_custody_kind(&event.kind) {
                    return Err(VerifyError::Custody {
                        problem: format!(
                            "holds event {} of kind `{}`, not a custody kind",
                            event.id, event.kind
                        ),
                    });
                }
            }
            Ok::<(), VerifyError>(())
        })();
        same_as_signed(reader, signed, SUMMED_FILES[0], parsed)?;
        if <[u8; 32]>::from(custody_lines.finalize()) != signed {
            return Err(VerifyError::Custody {
                problem: "is not exactly the custody lines of events.jsonl".to_owned(),
            });
        }
        summary("custody.jsonl", "custody.count", info.count, custody_count)?;
    }

    Ok(VerifiedBundle {
        readings: usize::try_from(readings.count).unwrap_or(usize::MAX),
        manifest,
        principal,
        sums_sha256: Sha256::digest(&first.sums).into(),
        marks: marked,
        last_reading_utc_us,
    })
}

/// Reads through a hash, so the second pass can tell whether it saw what the first pass hashed.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

type MemberReader<'a, R> = BufReader<Hashing<io::Take<&'a mut R>>>;

/// A buffered, hashing reader of one file's data, found by seeking.
fn member<R: Read + Seek>(
    input: &mut R,
    start: u64,
    span: MemberSpan,
) -> Result<MemberReader<'_, R>, VerifyError> {
    input.seek(SeekFrom::Start(start + span.offset))?;
    Ok(BufReader::with_capacity(
        CHUNK,
        Hashing {
            inner: input.take(span.len),
            hasher: Sha256::new(),
        },
    ))
}

/// Finishes hashing a file read in the second pass (the parser may have stopped early) and checks
/// it against its `SHA256SUMS` line. A file that does not match is reported as that, whatever its
/// parse gave (a flipped byte usually breaks the parse too); otherwise the parse's outcome stands.
fn same_as_signed<R: Read>(
    mut reader: MemberReader<'_, R>,
    signed: [u8; 32],
    file: &'static str,
    parsed: Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    io::copy(&mut reader, &mut io::sink())?;
    let hashing = reader.into_inner();
    let complete = hashing.inner.limit() == 0;
    let hash: [u8; 32] = hashing.hasher.finalize().into();
    if !complete || hash != signed {
        return Err(VerifyError::HashMismatch { file });
    }
    parsed
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
    if ![FORMAT_V1, FORMAT_V2, FORMAT_V4].contains(&manifest.format.as_str()) {
        field("format", &manifest.format, FORMAT)?;
    }
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

/// The files and fields the manifest's format promises; the span of `custody.jsonl` (format v2).
fn check_format(
    manifest: &Manifest,
    layout: &tar::TarLayout,
    listed: &sums::Sums,
) -> Result<Option<MemberSpan>, VerifyError> {
    let custody = layout.members[CUSTODY];
    let fail = |problem| {
        Err(VerifyError::FormatFiles {
            format: manifest.format.clone(),
            problem,
        })
    };
    if manifest.format != FORMAT
        && manifest.format != FORMAT_V4
        && manifest.previous_receipt.is_some()
    {
        return fail("has no previous_receipt in its manifest");
    }
    // Attachments are what v4 adds, and a v4 bundle has at least one: one without is sealed v3.
    let attached = !layout.attachments.is_empty() || !listed.attachments.is_empty();
    if manifest.format == FORMAT_V4 {
        if !attached || manifest.attachments.as_ref().is_none_or(Vec::is_empty) {
            return fail("carries attachments in report/, listed in SHA256SUMS and manifest.json");
        }
    } else if attached || manifest.attachments.is_some() {
        return fail("has no attachments");
    }
    if manifest.format == FORMAT_V1 {
        if custody.is_some() || listed.custody.is_some() {
            return fail("has no custody.jsonl");
        }
        if manifest.custody.is_some() || manifest.traceability.is_some() {
            return fail("has no custody or traceability in its manifest");
        }
        return Ok(None);
    }
    if custody.is_none() || listed.custody.is_none() {
        return fail("carries custody.jsonl, listed in SHA256SUMS");
    }
    if manifest.custody.is_none() || manifest.traceability.is_none() {
        return fail("has custody and traceability in its manifest");
    }
    Ok(custody)
}

/// The attachments in the archive (as hashed in the first pass) against `SHA256SUMS`'s lines:
/// both sorted by name (the tar reader and the sums parser each insist), so one merge finds an
/// unlisted, a missing or a changed one.
fn check_attachment_sums(
    found: &[(String, [u8; 32], u64)],
    listed: &[(String, [u8; 32])],
) -> Result<(), VerifyError> {
    let fail = |name: &str, problem| VerifyError::Attachment {
        file: format!("{ATTACHMENT_DIR}/{name}"),
        problem,
    };
    let (mut a, mut b) = (found.iter().peekable(), listed.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return Ok(()),
            (Some((name, _, _)), None) => return Err(fail(name, AttachmentProblem::NotInSums)),
            (None, Some((name, _))) => return Err(fail(name, AttachmentProblem::NotInArchive)),
            (Some((x, hash, _)), Some((y, signed))) => match x.cmp(y) {
                std::cmp::Ordering::Less => return Err(fail(x, AttachmentProblem::NotInSums)),
                std::cmp::Ordering::Greater => {
                    return Err(fail(y, AttachmentProblem::NotInArchive));
                }
                std::cmp::Ordering::Equal if hash != signed => {
                    return Err(fail(x, AttachmentProblem::HashMismatch));
                }
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// The manifest's `attachments` against the archive's, which by now are exactly `SHA256SUMS`'s:
/// the same names in the same order, each with the file's hash and size.
fn check_attachment_manifest(
    manifest: &Manifest,
    found: &[(String, [u8; 32], u64)],
) -> Result<(), VerifyError> {
    let listed = manifest.attachments.as_deref().unwrap_or_default();
    let fail = |file: &str, problem| VerifyError::Attachment {
        file: file.to_owned(),
        problem,
    };
    let files: Vec<String> = found
        .iter()
        .map(|(name, _, _)| format!("{ATTACHMENT_DIR}/{name}"))
        .collect();
    if let Some(extra) = listed.iter().find(|e| !files.contains(&e.file)) {
        return Err(fail(&extra.file, AttachmentProblem::OnlyInManifest));
    }
    if let Some(file) = files.iter().find(|f| !listed.iter().any(|e| &e.file == *f)) {
        return Err(fail(file, AttachmentProblem::NotInManifest));
    }
    // The same set; now each in its place (no repeats, sorted) with the file's hash and size.
    for (i, (file, (_, hash, size))) in files.iter().zip(found).enumerate() {
        let same = listed
            .get(i)
            .is_some_and(|e| &e.file == file && e.sha256.0 == *hash && e.size == *size);
        if !same {
            return Err(fail(file, AttachmentProblem::ManifestMismatch));
        }
    }
    if listed.len() != files.len() {
        // Only a repeated entry can make the lengths differ now.
        let repeated = listed.get(files.len()).map_or("", |e| e.file.as_str());
        return Err(fail(repeated, AttachmentProblem::ManifestMismatch));
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
