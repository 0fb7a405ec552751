//! Sealing: turning readings not yet in a bundle into the next signed bundle file.
//!
//! The order is the durability argument: build the bundle in memory, commit the seal (with the
//! archive) to the database, then write the file temp → fsync → rename. A crash between commit and
//! file leaves the archive in the database, and the next seal writes the missing file first.

use std::path::{Path, PathBuf};

use crate::clock::Clock;
use crate::config::Config;
use crate::store::{SealRecord, Store, StoreError};
use tsagent_bundle::{self as bundle, ArtefactInfo, KeyError, SealError, SealInput};

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The signing key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The bundle could not be built.
    #[error(transparent)]
    Bundle(#[from] SealError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A different file already has the bundle's name: the database was probably re-created, and
    /// overwriting would destroy a bundle the pilot may already hold.
    #[error(
        "refusing to replace `{path}`: it holds a different bundle of the same name (was the database re-created?)"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The bundle file could not be written.
    #[error("cannot write bundle `{path}`")]
    Write {
        /// The intended file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bundle just sealed.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Bundle number.
    pub seq: u64,
    /// Where the file is.
    pub path: PathBuf,
    /// First and last reading in it.
    pub readings: (u64, u64),
    /// Events in it.
    pub events: usize,
}

/// What a seal did.
#[derive(Debug, Clone, Default)]
pub struct SealReport {
    /// A sealed bundle whose file was missing (crash after commit) and was written again.
    pub restored: Option<PathBuf>,
    /// The new bundles, in order; empty when no reading was waiting.
    pub sealed: Vec<Sealed>,
}

/// Seals every reading not yet in a bundle into the next bundle(s) under `out_dir` (several when
/// the backlog is longer than one bundle takes).
pub fn seal_pending(
    config: &Config,
    store: &mut Store,
    out_dir: &Path,
    clock: &dyn Clock,
) -> Result<SealReport, SealingError> {
    // The key first: a bad key must stop us before anything is committed.
    let key = bundle::load_signing_key(&config.signing.key)?;
    let mut report = SealReport::default();

    if let Some(latest) = store.latest_bundle()? {
        let file_name = format!("{}.tar", latest.name);
        let path = out_dir.join(&file_name);
        match std::fs::read(&path) {
            Ok(existing) if existing != latest.tar => return Err(SealingError::Exists { path }),
            Ok(_) => {}
            Err(_) => report.restored = Some(write(out_dir, &file_name, &latest.tar)?),
        }
    }

    while let Some(material) = store.seal_material()? {
        report
            .sealed
            .push(seal_one(config, store, out_dir, clock, &key, material)?);
    }
    Ok(report)
}

fn seal_one(
    config: &Config,
    store: &mut Store,
    out_dir: &Path,
    clock: &dyn Clock,
    key: &bundle::SigningKey,
    material: crate::store::SealMaterial,
) -> Result<Sealed, SealingError> {
    let first = material.readings.first().map_or(0, |r| r.record.seq);
    let last = material.readings.last().map_or(0, |r| r.record.seq);
    let chain_last = material
        .readings
        .last()
        .map_or(material.chain_prev, |r| r.chain);
    let first_event = material.events.first().map(|e| e.id);
    let last_event = material.events.last().map(|e| e.id);
    let events = material.events.len();
    let input = SealInput {
        lab_id: config.lab.id.clone(),
        lab_name: config.lab.name.clone(),
        artefact: ArtefactInfo {
            id: config.artefact.id.clone(),
            kind: config.artefact.kind.clone(),
            serial: config.artefact.serial.clone(),
            nominal: config.artefact.nominal,
            unit: config.artefact.unit.clone(),
        },
        bundle_seq: material.bundle_seq,
        prev_sums_sha256: material.prev_sums_sha256,
        chain_prev: material.chain_prev,
        readings: material.readings,
        events: material.events,
        instruments: material.instruments,
        sequences_sha256: config.sequences_sha256(),
        created_utc_us: clock.now().utc_us,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let sealed = bundle::seal(&input, key)?;
    // Refuse before committing: a clash means this database is not the one that sealed the file.
    let path = out_dir.join(&sealed.file_name);
    if std::fs::read(&path).is_ok_and(|existing| existing != sealed.tar) {
        return Err(SealingError::Exists { path });
    }
    store.record_seal(&SealRecord {
        seq: input.bundle_seq,
        name: &sealed.name,
        first_reading: first,
        last_reading: last,
        chain_last,
        first_event,
        last_event,
        sums_sha256: sealed.sums_sha256,
        created_utc_us: input.created_utc_us,
        tar: &sealed.tar,
    })?;
    let path = write(out_dir, &sealed.file_name, &sealed.tar)?;
    Ok(Sealed {
        seq: input.bundle_seq,
        path,
        readings: (first, last),
        events,
    })
}

fn write(dir: &Path, file_name: &str, bytes: &[u8]) -> Result<PathBuf, SealingError> {
    let write_err = |source| SealingError::Write {
        path: dir.join(file_name),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    bundle::write_file_atomically(dir, file_name, bytes).map_err(write_err)
}
