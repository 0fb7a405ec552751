//! Sealing: readings, events and metadata in, one signed, deterministic tar out.

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use thiserror::Error;

use super::content::{self, ContentError};
use super::manifest::{
    AGENT_NAME, AgentInfo, ArtefactInfo, EventLine, FORMAT, Hash32, InstrumentInfo, LabInfo,
    Manifest,
};
use super::records::{self, ReadingExport, format_utc_us};
use super::tar::{self, BundleFiles, MAX_FOLDER_LEN, TarLimits, TarWriteError};
use super::{NAMESPACE, bundle_name, is_valid_id, sums};

/// One event as the store exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventExport {
    /// The event's id; ids increase through a bundle.
    pub id: u64,
    /// Microseconds since the Unix epoch.
    pub utc_us: i64,
    /// The run it belongs to, if any.
    pub run_id: Option<u64>,
    /// The instrument name it concerns, if any.
    pub instrument: Option<String>,
    /// What happened, e.g. `clock_step`.
    pub kind: String,
    /// Kind-specific details.
    pub detail: serde_json::Value,
}

/// Everything a bundle is made of; the store reads it as one consistent snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SealInput {
    /// The lab's id, `[A-Za-z0-9._-]{1,64}`; also the signing principal.
    pub lab_id: String,
    /// The lab's name.
    pub lab_name: String,
    /// The travelling standard; its id is `[A-Za-z0-9._-]{1,64}`.
    pub artefact: ArtefactInfo,
    /// 1 for the first bundle, then +1.
    pub bundle_seq: u64,
    /// SHA-256 of the previous bundle's `SHA256SUMS`; `None` exactly for bundle 1.
    pub prev_sums_sha256: Option<[u8; 32]>,
    /// The chain value before the first reading ([`crate::chain::GENESIS`] before reading 1).
    pub chain_prev: [u8; 32],
    /// The readings, contiguous by `seq`; at least one.
    pub readings: Vec<ReadingExport>,
    /// The events, ids increasing; may be empty.
    pub events: Vec<EventExport>,
    /// Every instrument the readings refer to.
    pub instruments: Vec<InstrumentInfo>,
    /// SHA-256 of the sequence definitions in force.
    pub sequences_sha256: [u8; 32],
    /// Sealing time, microseconds since the Unix epoch; also the tar's mtime (whole seconds).
    pub created_utc_us: i64,
    /// The agent's version string.
    pub agent_version: String,
}

/// A sealed bundle, in memory; the caller records it durably, then writes `tar` to `file_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedBundle {
    /// `<lab>-<artefact>-<bundle_seq, 6 digits>`, also the folder inside the tar.
    pub name: String,
    /// `name` + `.tar`.
    pub file_name: String,
    /// The archive bytes.
    pub tar: Vec<u8>,
    /// SHA-256 of `SHA256SUMS`: the next bundle's `prev_sums_sha256`.
    pub sums_sha256: [u8; 32],
    /// The manifest inside.
    pub manifest: Manifest,
}

/// Why a bundle could not be sealed.
#[derive(Debug, Error)]
pub enum SealError {
    /// An id would not make a safe bundle name or principal.
    #[error("invalid {what} id `{id}` (expected [A-Za-z0-9._-]{{1,64}})")]
    InvalidId {
        /// `lab` or `artefact`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// The name must fit the tar header.
    #[error("bundle name `{0}` is longer than {MAX_FOLDER_LEN} bytes")]
    NameTooLong(String),
    /// Bundle numbers start at 1.
    #[error("bundle_seq must be at least 1")]
    ZeroBundleSeq,
    /// Bundle 1 has no predecessor; every later bundle names one.
    #[error(
        "bundle {bundle_seq}: the previous SHA256SUMS hash must be given exactly when bundle_seq > 1"
    )]
    PrevMismatch {
        /// The bundle number.
        bundle_seq: u64,
    },
    /// JSON cannot carry a non-finite number.
    #[error("artefact nominal value is not finite")]
    NonFiniteNominal,
    /// The sealing time cannot be written as RFC 3339.
    #[error("creation time {0} µs is outside years 1970 to 9999")]
    CreatedTime(i64),
    /// A reading or event breaks the bundle's rules.
    #[error("bundle content is invalid")]
    Content(#[from] ContentError),
    /// A file would exceed what verifiers accept.
    #[error("{file} would be {size} bytes, over the {cap}-byte cap verifiers apply")]
    TooLarge {
        /// Which file (or `tar`).
        file: &'static str,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Serialising a JSON file failed.
    #[error("cannot encode {file}")]
    Json {
        /// Which file.
        file: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Signing `SHA256SUMS` failed.
    #[error("cannot sign SHA256SUMS")]
    Sign(#[source] ssh_key::Error),
    /// Building the archive failed.
    #[error("cannot build the bundle archive")]
    Tar(#[from] TarWriteError),
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn cap(file: &'static str, bytes: &[u8], cap: u64) -> Result<(), SealError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > cap {
        return Err(SealError::TooLarge { file, size, cap });
    }
    Ok(())
}

/// Builds and signs a bundle. Pure: the same input and key give the same bytes.
pub fn seal(input: &SealInput, key: &PrivateKey) -> Result<SealedBundle, SealError> {
    for (what, id) in [("lab", &input.lab_id), ("artefact", &input.artefact.id)] {
        if !is_valid_id(id) {
            return Err(SealError::InvalidId {
                what,
                id: id.clone(),
            });
        }
    }
    let name = bundle_name(&input.lab_id, &input.artefact.id, input.bundle_seq);
    if name.len() > MAX_FOLDER_LEN {
        return Err(SealError::NameTooLong(name));
    }
    if input.bundle_seq == 0 {
        return Err(SealError::ZeroBundleSeq);
    }
    if (input.bundle_seq == 1) != input.prev_sums_sha256.is_none() {
        return Err(SealError::PrevMismatch {
            bundle_seq: input.bundle_seq,
        });
    }
    if !input.artefact.nominal.is_finite() {
        return Err(SealError::NonFiniteNominal);
    }
    let created_utc =
        format_utc_us(input.created_utc_us).ok_or(SealError::CreatedTime(input.created_utc_us))?;
    let mtime = u64::try_from(input.created_utc_us.div_euclid(1_000_000)).unwrap_or(0);

    let readings = content::check_readings(&input.readings, &input.chain_prev, &input.instruments)?;
    let events: Vec<EventLine> = input
        .events
        .iter()
        .map(|e| EventLine {
            id: e.id,
            utc: format_utc_us(e.utc_us).unwrap_or_default(),
            utc_us: e.utc_us,
            run_id: e.run_id,
            instrument: e.instrument.clone(),
            kind: e.kind.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    let events_summary = content::check_events(&events)?;

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        lab: LabInfo {
            id: input.lab_id.clone(),
            name: input.lab_name.clone(),
        },
        artefact: input.artefact.clone(),
        bundle_seq: input.bundle_seq,
        prev_sha256sums: input.prev_sums_sha256.map(Hash32),
        readings,
        events: events_summary,
        created_utc,
        created_utc_us: input.created_utc_us,
        agent: AgentInfo {
            name: AGENT_NAME.to_owned(),
            version: input.agent_version.clone(),
        },
        instruments: input.instruments.clone(),
        sequences_sha256: Hash32(input.sequences_sha256),
    };
    let mut manifest_json =
        serde_json::to_string_pretty(&manifest).map_err(|source| SealError::Json {
            file: "manifest.json",
            source,
        })?;
    manifest_json.push('\n');
    let readings_csv = records::write_readings(&input.readings);
    let events_jsonl = records::write_events(&events).map_err(|source| SealError::Json {
        file: "events.jsonl",
        source,
    })?;

    let limits = TarLimits::DEFAULT;
    cap(
        "manifest.json",
        manifest_json.as_bytes(),
        limits.max_file_bytes,
    )?;
    cap(
        "readings.csv",
        readings_csv.as_bytes(),
        limits.max_file_bytes,
    )?;
    cap(
        "events.jsonl",
        events_jsonl.as_bytes(),
        limits.max_file_bytes,
    )?;

    let sums_text = sums::render(&[
        sha256(events_jsonl.as_bytes()),
        sha256(manifest_json.as_bytes()),
        sha256(readings_csv.as_bytes()),
    ]);
    let signature = key
        .sign(NAMESPACE, HashAlg::Sha512, sums_text.as_bytes())
        .map_err(SealError::Sign)?;
    let sig_pem = signature.to_pem(LineEnding::LF).map_err(SealError::Sign)?;

    let files = BundleFiles {
        manifest: manifest_json.as_bytes(),
        readings: readings_csv.as_bytes(),
        events: events_jsonl.as_bytes(),
        sums: sums_text.as_bytes(),
        sig: sig_pem.as_bytes(),
    };
    let tar_bytes = tar::write_tar(&name, &files, mtime)?;
    cap("tar", &tar_bytes, limits.max_total_bytes)?;
    Ok(SealedBundle {
        file_name: format!("{name}.tar"),
        name,
        tar: tar_bytes,
        sums_sha256: sha256(sums_text.as_bytes()),
        manifest,
    })
}
