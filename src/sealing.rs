//! Sealing: turning readings not yet in a bundle into the next signed bundle file.
//!
//! The order is the durability argument: the bundle is built, its seal committed to the database
//! (with the archive), and only then is the file renamed into place (temp → fsync → rename). A
//! crash between commit and rename leaves the archive in the database, and the next seal writes the
//! missing file first.
//!
//! Nothing is held whole: the store streams the readings and events of the next bundle row by row
//! into the bundle crate's [`Sealer`], which checks each one by the verifier's rules and writes
//! `readings.csv` and `events.jsonl` into two unnamed scratch files beside the bundles; the archive
//! is then streamed from them into the database row and, once that is committed, into the bundle
//! file. Memory does not depend on the backlog (benchmark P3).
//!
//! The lab's key is recorded by fingerprint at the first seal (or `keygen`); a different key is
//! refused until `--new-key` rotates it, with a `key_rotated` event the next bundle carries.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::clock::Clock;
use crate::config::Config;
use crate::store::{KeyCheck, Scan, SealRecord, SealStart, SealWindow, Store, StoreError};
use tsagent_bundle::file::FileError;
use tsagent_bundle::{
    self as bundle, ArtefactInfo, KeyError, SealError, SealHeader, SealedParts, Sealer,
};

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The signing key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The key is not the one the log records: bundles it signs would fail at the pilot.
    #[error(
        "the signing key `{}` ({found}) is not the key this lab's log records ({recorded}); bundles signed with it would fail at the pilot. If the key was replaced on purpose, seal with `--new-key` and send the pilot the new allowed_signers line",
        key.display()
    )]
    KeyChanged {
        /// The key file.
        key: PathBuf,
        /// The fingerprint recorded.
        recorded: String,
        /// The key file's fingerprint.
        found: String,
    },
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
    /// Something that is not a regular file has the bundle's name.
    #[error(transparent)]
    NotABundleFile(#[from] FileError),
    /// The archive could not be streamed (from the scratch files or the database, to the database
    /// and the file).
    #[error("cannot stream the bundle's archive")]
    Archive(#[from] io::Error),
    /// The bundle file, or a scratch file beside it, could not be written.
    #[error("cannot write bundle `{path}`")]
    Write {
        /// The intended file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// How sealing treats runs in progress and the lab's key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealOptions {
    /// Also seal the readings of runs still in progress (`bundle seal --include-running`); by
    /// default a seal stops at the first reading of a run that has not ended, so no run is split
    /// across bundles by a seal made during it.
    pub include_running: bool,
    /// Accept a signing key other than the one recorded, and record it (`--new-key`).
    pub new_key: bool,
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
    /// The staged report files it carries in `report/`, by name.
    pub attachments: Vec<String>,
}

/// What happened to the lab's key record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyRecord {
    /// The key is the one recorded.
    #[default]
    Same,
    /// No key was recorded; this one now is.
    Recorded,
    /// `--new-key` replaced the recorded key (a `key_rotated` event is stored).
    Rotated {
        /// The fingerprint recorded before.
        old: String,
        /// The new key's `allowed_signers` line, which the pilot needs now.
        allowed_signers_line: String,
    },
}

/// What a seal did.
#[derive(Debug, Clone, Default)]
pub struct SealReport {
    /// The key's fingerprint (OpenSSH `SHA256:` form).
    pub fingerprint: String,
    /// What happened to the key record.
    pub key: KeyRecord,
    /// Runs found `running` whose process is gone, now marked `interrupted` (and so sealed).
    pub interrupted: Vec<u64>,
    /// A sealed bundle whose file was missing (crash after commit) and was written again.
    pub restored: Option<PathBuf>,
    /// The new bundles, in order; empty when no reading was waiting.
    pub sealed: Vec<Sealed>,
    /// A run still in progress whose readings wait for it to end (not with `include_running`).
    pub waiting_for_run: Option<u64>,
    /// Report files still staged after sealing (no reading was waiting): they ride in the next
    /// bundle.
    pub staged: Vec<String>,
}

/// Seals every reading not yet in a bundle, of runs that have ended, into the next bundle(s)
/// under `out_dir`; see [`seal_pending_with`].
pub fn seal_pending(
    config: &Config,
    store: &mut Store,
    out_dir: &Path,
    clock: &dyn Clock,
) -> Result<SealReport, SealingError> {
    seal_pending_with(config, store, out_dir, clock, SealOptions::default())
}

/// Seals every reading not yet in a bundle into the next bundle(s) under `out_dir` (several when
/// the backlog is longer than one bundle takes), checking the lab's key against the one recorded.
pub fn seal_pending_with(
    config: &Config,
    store: &mut Store,
    out_dir: &Path,
    clock: &dyn Clock,
    options: SealOptions,
) -> Result<SealReport, SealingError> {
    // The key first: a bad or swapped key must stop us before anything is committed.
    let key = bundle::load_signing_key(&config.signing.key)?;
    let fingerprint = bundle::fingerprint(key.public_key());
    let mut report = SealReport {
        key: record_key(config, store, clock, &key, options.new_key)?,
        fingerprint,
        ..SealReport::default()
    };
    // A run whose process died has ended too (interrupted); without this, its readings would wait
    // for the next `measure` or daemon start to say so.
    report.interrupted = crate::sequence::recover_interrupted(store, clock)?;

    if let Some(latest) = store.latest_bundle_info()? {
        let file_name = format!("{}.tar", latest.name);
        let path = out_dir.join(&file_name);
        match existing_matches(&path, latest.archive_len, |out| {
            store.read_archive(latest.seq, |archive| {
                io::copy(archive, out).map(drop).map_err(SealingError::from)
            })
        })? {
            Some(true) => {}
            Some(false) => return Err(SealingError::Exists { path }),
            None => {
                let mut file = Temp::create(out_dir, &file_name)?;
                store.read_archive(latest.seq, |archive| {
                    io::copy(archive, &mut file.file)
                        .map(drop)
                        .map_err(|source| file.error(source))
                })?;
                report.restored = Some(file.finish()?);
            }
        }
    }

    let window = SealWindow {
        include_running: options.include_running,
        ..SealWindow::DEFAULT
    };
    loop {
        match seal_one(config, store, out_dir, clock, &key, window)? {
            Next::Sealed(sealed) => report.sealed.push(sealed),
            Next::Nothing { waiting_for_run } => {
                report.waiting_for_run = waiting_for_run;
                report.staged = store
                    .staged_attachments()?
                    .into_iter()
                    .map(|a| a.name)
                    .collect();
                return Ok(report);
            }
        }
    }
}

/// The lab's signing key, checked against the one the log records (recorded if none is): what
/// signs anything else the lab sends the pilot, such as its receipt and dispatch notes.
pub fn checked_key(
    config: &Config,
    store: &mut Store,
    clock: &dyn Clock,
) -> Result<bundle::SigningKey, SealingError> {
    let key = bundle::load_signing_key(&config.signing.key)?;
    record_key(config, store, clock, &key, false)?;
    Ok(key)
}

/// The lab's signing key, checked against the one the log records without writing anything:
/// for a note signed beside the daemon, which alone writes the log while it runs. A key the log
/// does not record yet passes; the daemon's next seal records it.
pub fn recorded_key(config: &Config, store: &Store) -> Result<bundle::SigningKey, SealingError> {
    let key = bundle::load_signing_key(&config.signing.key)?;
    let fingerprint = bundle::fingerprint(key.public_key());
    match store.signing_key()? {
        Some(recorded) if recorded != fingerprint => Err(SealingError::KeyChanged {
            key: config.signing.key.clone(),
            recorded,
            found: fingerprint,
        }),
        _ => Ok(key),
    }
}

/// Checks the key against the one the log records, recording or (with `new_key`) rotating it.
fn record_key(
    config: &Config,
    store: &mut Store,
    clock: &dyn Clock,
    key: &bundle::SigningKey,
    new_key: bool,
) -> Result<KeyRecord, SealingError> {
    let fingerprint = bundle::fingerprint(key.public_key());
    let now = clock.now();
    if new_key {
        return Ok(match store.rotate_signing_key(&fingerprint, now)? {
            Some(old) => KeyRecord::Rotated {
                old,
                allowed_signers_line: bundle::allowed_signers_line(
                    &config.lab.id,
                    key.public_key(),
                )?,
            },
            None if store.signing_key()?.is_some() => KeyRecord::Same,
            None => KeyRecord::Recorded,
        });
    }
    match store.check_signing_key(&fingerprint, now)? {
        KeyCheck::Same => Ok(KeyRecord::Same),
        KeyCheck::Recorded => Ok(KeyRecord::Recorded),
        KeyCheck::Different(recorded) => Err(SealingError::KeyChanged {
            key: config.signing.key.clone(),
            recorded,
            found: fingerprint,
        }),
    }
}

/// A sealer writing into two unnamed scratch files.
type SpoolSealer = Sealer<File, File>;

/// What one step of sealing did.
enum Next {
    /// Sealed the next bundle.
    Sealed(Sealed),
    /// Nothing is waiting to be sealed now; readings of this run may wait for it to end.
    Nothing { waiting_for_run: Option<u64> },
}

/// Seals the next bundle, if readings are waiting.
fn seal_one(
    config: &Config,
    store: &mut Store,
    out_dir: &Path,
    clock: &dyn Clock,
    key: &bundle::SigningKey,
    window: SealWindow,
) -> Result<Next, SealingError> {
    let created_utc_us = clock.now().utc_us;
    // The custody state at sealing (from the whole log), and the calibrations configured.
    let (custody, _) = crate::custody::load(store, config)?;
    let custody = bundle::manifest::CustodyInfo {
        state: custody.state.as_str().to_owned(),
        damage_blocks: custody.damage_pending,
        received_utc: custody.received_utc_us.map(bundle::time::rfc3339),
        gate_opened_utc: custody.gate_opened_utc_us.map(bundle::time::rfc3339),
        count: 0,
    };
    let traceability: Vec<bundle::manifest::Traceability> = config
        .instruments
        .iter()
        .filter_map(|i| {
            let c = i.calibration.as_ref()?;
            Some(bundle::manifest::Traceability {
                instrument: i.name.clone(),
                certificate: c.certificate.clone(),
                calibrated: c.calibrated.to_string(),
                due: c.due.to_string(),
            })
        })
        .collect();
    // The coordinator's latest receipt, verified when it came: the pilot sees in each bundle what
    // the lab last saw of the log.
    let previous_receipt = store.latest_receipt()?.and_then(|(seq, text)| {
        serde_json::from_str(&text)
            .ok()
            .and_then(|signed| bundle::receipt::receipt_ref(seq, &signed))
    });
    let begin = |start: &SealStart, instruments| {
        let header = SealHeader {
            lab_id: config.lab.id.clone(),
            lab_name: config.lab.name.clone(),
            artefact: ArtefactInfo {
                id: config.artefact.id.clone(),
                kind: config.artefact.kind.clone(),
                serial: config.artefact.serial.clone(),
                nominal: config.artefact.nominal,
                unit: config.artefact.unit.clone(),
            },
            bundle_seq: start.bundle_seq,
            prev_sums_sha256: start.prev_sums_sha256,
            chain_prev: start.chain_prev,
            sequences_sha256: config.sequences_sha256(),
            created_utc_us,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            custody: custody.clone(),
            traceability: traceability.clone(),
            previous_receipt: previous_receipt.clone(),
        };
        Ok::<_, SealingError>(Sealer::new(
            header,
            instruments,
            scratch(out_dir)?,
            scratch(out_dir)?,
        )?)
    };
    let scan = store.scan_for_seal(
        window,
        begin,
        |sealer: &mut SpoolSealer, row| {
            Ok(sealer.push_reading(&row.record, row.sequence, row.instrument, &row.chain)?)
        },
        |sealer: &mut SpoolSealer, event| Ok(sealer.push_event(event)?),
    )?;
    let (sealer, scanned) = match scan {
        Scan::Bundle(sealer, scanned) => (sealer, scanned),
        Scan::Nothing { waiting_for_run } => return Ok(Next::Nothing { waiting_for_run }),
    };
    // Every staged report file rides in this bundle; its record marks them sealed, in the same
    // transaction, so a file is carried by exactly one bundle.
    let mut sealer = sealer;
    let staged = store.staged_attachments()?;
    let staged_ids: Vec<i64> = staged.iter().map(|a| a.id).collect();
    let mut attached = Vec::with_capacity(staged.len());
    for a in staged {
        sealer.attach(&a.name, a.bytes)?;
        attached.push(a.name);
    }
    let (parts, mut readings, mut events) = sealer.finish(key)?;
    let path = out_dir.join(&parts.file_name);
    let mut archive = |out: &mut dyn Write| -> Result<(), SealingError> {
        readings
            .seek(SeekFrom::Start(0))
            .map_err(SealingError::from)?;
        events
            .seek(SeekFrom::Start(0))
            .map_err(SealingError::from)?;
        let mut buffered = BufWriter::with_capacity(COPY_BYTES, out);
        parts.write_archive(&mut buffered, &mut readings, &mut events)?;
        buffered.flush()?;
        Ok(())
    };
    // Refuse before committing: a clash means this database is not the one that sealed the file.
    if existing_matches(&path, parts.archive_len(), &mut archive)? == Some(false) {
        return Err(SealingError::Exists { path });
    }
    let mut record = record_of(&parts, scanned.readings, scanned.chain_last, scanned.events);
    record.attachments = &staged_ids;
    store.record_seal_streamed(&record, parts.archive_len(), &mut archive)?;
    // Only the process whose seal was committed writes the file, so two seals racing for the same
    // bundle number cannot leave the loser's bytes under its name.
    let mut file = Temp::create(out_dir, &parts.file_name)?;
    if let Err(e) = archive(&mut file.file) {
        let source = match e {
            SealingError::Archive(source) => source,
            other => {
                file.abandon();
                return Err(other);
            }
        };
        let error = file.error(source);
        file.abandon();
        return Err(error);
    }
    let path = file.finish()?;
    Ok(Next::Sealed(Sealed {
        seq: parts.manifest.bundle_seq,
        path,
        readings: scanned.readings,
        events: scanned.event_count,
        attachments: attached,
    }))
}

fn record_of(
    parts: &SealedParts,
    readings: (u64, u64),
    chain_last: [u8; 32],
    events: Option<(u64, u64)>,
) -> SealRecord<'_> {
    SealRecord {
        seq: parts.manifest.bundle_seq,
        name: &parts.name,
        first_reading: readings.0,
        last_reading: readings.1,
        chain_last,
        first_event: events.map(|e| e.0),
        last_event: events.map(|e| e.1),
        sums_sha256: parts.sums_sha256,
        created_utc_us: parts.manifest.created_utc_us,
        tar: &[],
        attachments: &[],
    }
}

/// Bytes copied at a time into the database row and the file.
const COPY_BYTES: usize = 1 << 20;

/// An unnamed scratch file in `dir` (created, then unlinked at once, so a crash leaves nothing).
fn scratch(dir: &Path) -> Result<File, SealingError> {
    let write_err = |source| SealingError::Write {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let path = dir.join(format!(".tsagent-seal-{}.scratch", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err)?;
    std::fs::remove_file(&path).map_err(write_err)?;
    Ok(file)
}

/// Whether the regular file at `path` holds exactly the `len` bytes `write` produces; `None` when
/// there is no file. Compared as it streams, never held whole.
fn existing_matches(
    path: &Path,
    len: u64,
    write: impl FnOnce(&mut dyn Write) -> Result<(), SealingError>,
) -> Result<Option<bool>, SealingError> {
    let (file, meta) = match bundle::file::open_regular("bundle file", path) {
        Ok(opened) => opened,
        Err(FileError::Open { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if meta.len() != len {
        return Ok(Some(false));
    }
    let mut compare = Compare {
        file: io::BufReader::with_capacity(COPY_BYTES, file),
        same: true,
        chunk: Vec::new(),
    };
    write(&mut compare)?;
    Ok(Some(compare.same))
}

/// A writer that compares what it is given with a file's bytes.
struct Compare<R> {
    file: R,
    same: bool,
    chunk: Vec<u8>,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.same {
            self.chunk.resize(buf.len(), 0);
            self.file.read_exact(&mut self.chunk)?;
            self.same = self.chunk == buf;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A bundle file being written under a temporary name beside its final one.
struct Temp {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

impl Temp {
    fn create(dir: &Path, file_name: &str) -> Result<Self, SealingError> {
        let target = dir.join(file_name);
        let write_err = |source| SealingError::Write {
            path: target.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let temp = dir.join(format!(".{file_name}.tmp"));
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&temp)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a crash mid-write; removing it unlinks a planted symlink rather than
                // following it.
                std::fs::remove_file(&temp).map_err(write_err)?;
                open()
            }
            other => other,
        }
        .map_err(write_err)?;
        Ok(Self {
            file,
            temp,
            target,
            dir: dir.to_owned(),
        })
    }

    fn error(&self, source: io::Error) -> SealingError {
        SealingError::Write {
            path: self.target.clone(),
            source,
        }
    }

    /// fsync, rename over the final name, fsync the folder: the file is absent or complete.
    fn finish(self) -> Result<PathBuf, SealingError> {
        let done = self
            .file
            .sync_all()
            .and_then(|()| std::fs::rename(&self.temp, &self.target))
            .and_then(|()| File::open(&self.dir)?.sync_all());
        match done {
            Ok(()) => Ok(self.target),
            Err(source) => {
                let _ = std::fs::remove_file(&self.temp);
                Err(SealingError::Write {
                    path: self.target,
                    source,
                })
            }
        }
    }

    fn abandon(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}
