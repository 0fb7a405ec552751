//! The durable log: the only module that runs SQL.
//!
//! One SQLite file in WAL mode with `synchronous=FULL`: when [`Store::append_reading`] returns, the
//! reading and the exchanges that produced it are on disk, chained to every reading before it (see
//! [`tsagent_bundle::chain`]). Callers report a reading, and trigger the next one, only after that.

mod attachments;
mod check;
mod delivery;
mod schema;
mod seal;
mod select;
mod wal;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::clock::Timestamp;
use crate::session::Identity;
use tsagent_bundle::chain::{ReadingRecord, ReadingRef, ReadingStatus};
use tsagent_bundle::event::{Event, RunEnded, RunStarted};
use tsagent_bundle::{EventExport, InstrumentInfo, ReadingExport};

/// A stored reading, in the bundle's export shape (chained fields, chain, sequence and instrument names).
pub type ReadingRow = ReadingExport;
/// A stored event, in the bundle's export shape.
pub type EventRow = EventExport;
/// A stored instrument identity, in the bundle's manifest shape.
pub type InstrumentRow = InstrumentInfo;

pub use attachments::StagedAttachment;
pub use check::{CheckReport, Problem};
pub use delivery::{BundleSummary, Delivery, DeliveryState, SeenCheckpoint};
pub use seal::{BundleInfo, KeyCheck, Scan, Scanned, SealStart, SealWindow};
pub use select::SelectedReading;

/// Most readings one bundle takes (its `readings.csv` stays near 20 MB); a longer backlog is
/// sealed into several bundles.
pub const MAX_BUNDLE_READINGS: usize = 100_000;

/// Most events one bundle takes; later events go into the next bundle.
pub const MAX_BUNDLE_EVENTS: usize = 500_000;

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open database `{path}`")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A command that reads an existing database was given a path with none.
    #[error("no database at `{path}`")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The path names something that is not a regular file (a FIFO, a device, a folder): SQLite
    /// would wait on a FIFO or read a device as a database.
    #[error("`{path}` is a {kind}, not a database file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The folder for the database could not be created.
    #[error("cannot create folder `{path}`")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A newer tsagent wrote this database.
    #[error("database schema version {found} is newer than this tsagent supports ({supported})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: usize,
    },
    /// SQLite refused WAL mode (e.g. a network file system); durability could not be promised.
    #[error("database refused WAL mode (journal mode is `{mode}`); put it on a local disk")]
    NoWal {
        /// The mode SQLite reported.
        mode: String,
    },
    /// A stored value is not what the schema promises (edited outside tsagent).
    #[error("corrupt row in `{table}`: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Pending readings fail the chain: the log was altered, so it must not be signed.
    #[error("refusing to seal: reading {seq} does not match the chain (run `tsagent db check`)")]
    ChainBroken {
        /// First bad reading.
        seq: u64,
    },
    /// The newest readings are gone (the head records more): the log was truncated.
    #[error(
        "refusing to seal: the log ends at reading {last} but its chain head records reading {head} (run `tsagent db check`)"
    )]
    Truncated {
        /// Last reading present.
        last: u64,
        /// Last reading the head records.
        head: u64,
    },
    /// The staged attachments changed between reading them for a bundle and recording it.
    #[error(
        "the staged report files changed while bundle {seq} was being sealed; run the command again"
    )]
    AttachmentsChanged {
        /// The bundle number.
        seq: u64,
    },
    /// Another process sealed the same bundle number first.
    #[error("bundle {seq} was sealed by another process at the same time; run the command again")]
    SealConflict {
        /// The bundle number.
        seq: u64,
    },
    /// Any other SQLite error.
    #[error("database error")]
    Sql(#[from] rusqlite::Error),
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// In progress, or the process died during it.
    Running,
    /// Every step done.
    Completed,
    /// A step failed; readings already taken stay.
    Failed,
    /// Cut short: found `running` after a crash, or abandoned at once by a second stop request.
    Interrupted,
    /// Stopped by a signal after the reading in progress.
    Stopped,
    /// Aborted through the control API after the reading in progress; its readings stay.
    Aborted,
}

impl RunStatus {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Stopped => "stopped",
            Self::Aborted => "aborted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            "stopped" => Self::Stopped,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A technician ran `tsagent measure`.
    Manual,
    /// The daemon's schedule.
    Schedule,
    /// `tsagent demo`.
    Demo,
}

impl Trigger {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Schedule => "schedule",
            Self::Demo => "demo",
        }
    }
}

/// A run to begin.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    /// The sequence's name.
    pub sequence: &'a str,
    /// SHA-256 of the sequence's definition ([`crate::config::Sequence::sha256`]).
    pub sequence_sha256: [u8; 32],
    /// What started it.
    pub trigger: Trigger,
    /// Who started it.
    pub operator: Option<&'a str>,
    /// Whether it is an official run (admitted through the custody gate).
    pub official: bool,
    /// When.
    pub at: Timestamp,
    /// The process running it and its boot id, so start-up recovery can tell a crashed run.
    pub owner: (u32, &'a str),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunEnd<'a> {
    /// Completed, failed, stopped or interrupted.
    pub status: RunStatus,
    /// Why, unless it completed.
    pub reason: Option<&'a str>,
    /// Readings it committed.
    pub readings: u64,
    /// Its first and last reading, if it took any.
    pub range: Option<(u64, u64)>,
    /// When it ended.
    pub at: Timestamp,
}

/// A reading to append; the store assigns its sequence number and chain value.
#[derive(Debug, Clone)]
pub struct NewReading<'a> {
    /// The run taking it.
    pub run_id: u64,
    /// The identified instrument.
    pub instrument_id: u64,
    /// Quantity name.
    pub quantity: &'a str,
    /// The value when `status` is valid.
    pub value: Option<f64>,
    /// Valid, overload or not-a-number.
    pub status: ReadingStatus,
    /// Unit.
    pub unit: &'a str,
    /// Reply text as received.
    pub raw: &'a str,
    /// When the reply arrived.
    pub at: Timestamp,
    /// Boot id that scopes `at.mono_ns`.
    pub boot_id: &'a str,
}

/// A reading as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Its global sequence number.
    pub seq: u64,
    /// The chain value after it.
    pub chain: [u8; 32],
}

/// An event to append: an exchange, an instrument error, a failure, a state change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// The run it belongs to, if any.
    pub run_id: Option<u64>,
    /// The instrument it concerns, if any.
    pub instrument_id: Option<u64>,
    /// What happened (the kind and details of the bundle format's `events.jsonl`).
    pub event: Event,
}

impl NewEvent {
    /// An event of no particular run or instrument (the caller may fill them in).
    pub fn new(at: Timestamp, event: Event) -> Self {
        Self {
            at,
            run_id: None,
            instrument_id: None,
            event,
        }
    }
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Run id.
    pub id: u64,
    /// Sequence name.
    pub sequence: String,
    /// State.
    pub status: RunStatus,
    /// Failure or stop message.
    pub message: Option<String>,
    /// Readings taken.
    pub readings: u64,
    /// Whether it is an official run.
    pub official: bool,
}

/// A run as the daemon's status lists it: [`Store::recent_runs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRun {
    /// Run id.
    pub id: u64,
    /// Sequence name.
    pub sequence: String,
    /// `manual`, `schedule` or `demo`.
    pub trigger: String,
    /// Who started it, if recorded.
    pub operator: Option<String>,
    /// State.
    pub status: RunStatus,
    /// When it began, UTC microseconds.
    pub started_utc_us: i64,
    /// When it ended, UTC microseconds; `None` while it runs.
    pub ended_utc_us: Option<i64>,
    /// Readings it committed.
    pub readings: u64,
    /// Whether it is an official run.
    pub official: bool,
}

/// Which readings `tsagent readings` lists and `tsagent analyze` reads; `None` (and `false`)
/// places no condition.
#[derive(Debug, Clone, Default)]
pub struct ReadingFilter<'a> {
    /// Taken at or after this instant (UTC microseconds).
    pub since_utc_us: Option<i64>,
    /// Taken at or before this instant (UTC microseconds).
    pub until_utc_us: Option<i64>,
    /// Of this run.
    pub run_id: Option<u64>,
    /// From the instrument with this name in the config.
    pub instrument: Option<&'a str>,
    /// Of this quantity.
    pub quantity: Option<&'a str>,
    /// Taken by runs of this sequence.
    pub sequence: Option<&'a str>,
    /// Taken by official runs only.
    pub official: bool,
}

/// A reading as listed: the row and what its run says about it.
#[derive(Debug, Clone)]
pub struct ListedReading {
    /// The reading.
    pub reading: ReadingRow,
    /// Who started its run, if recorded.
    pub operator: Option<String>,
    /// Its run's status (`running`, `completed`, `failed`, `stopped`, `interrupted`, `aborted`).
    pub run_status: String,
    /// Whether its run was official (an `official = true` sequence admitted by custody).
    pub official: bool,
}

/// Everything needed to seal the next bundle.
#[derive(Debug, Clone)]
pub struct SealMaterial {
    /// Number of the bundle to seal.
    pub bundle_seq: u64,
    /// SHA-256 of the previous bundle's SHA256SUMS.
    pub prev_sums_sha256: Option<[u8; 32]>,
    /// Chain value before the first pending reading.
    pub chain_prev: [u8; 32],
    /// Pending readings, in order, chain verified.
    pub readings: Vec<ReadingRow>,
    /// Events since the last bundle.
    pub events: Vec<EventRow>,
    /// Instruments the readings come from.
    pub instruments: Vec<InstrumentRow>,
}

/// A seal to commit.
#[derive(Debug, Clone)]
pub struct SealRecord<'a> {
    /// Bundle number (from [`SealMaterial::bundle_seq`]).
    pub seq: u64,
    /// Bundle name.
    pub name: &'a str,
    /// First reading sealed.
    pub first_reading: u64,
    /// Last reading sealed.
    pub last_reading: u64,
    /// Chain value at the last reading.
    pub chain_last: [u8; 32],
    /// First event sealed.
    pub first_event: Option<u64>,
    /// Last event sealed.
    pub last_event: Option<u64>,
    /// SHA-256 of the bundle's SHA256SUMS.
    pub sums_sha256: [u8; 32],
    /// When it was sealed.
    pub created_utc_us: i64,
    /// The archive, for [`Store::record_seal`] (which takes it in memory);
    /// [`Store::record_seal_streamed`] ignores it and takes the archive from its writer.
    pub tar: &'a [u8],
    /// The staged attachments (their ids) the bundle carries, marked sealed with it.
    pub attachments: &'a [i64],
}

/// A sealed bundle.
#[derive(Debug, Clone)]
pub struct BundleRow {
    /// Bundle number.
    pub seq: u64,
    /// Name (file name without `.tar`).
    pub name: String,
    /// The archive.
    pub tar: Vec<u8>,
}

/// The database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the database, creating it (and its folder) if missing, and brings the schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        Self::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
    }

    /// Opens an existing database; a missing file is an error rather than a new empty log.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Store, StoreError> {
        // Only a missing path (SQLite creates it) or a regular file is a database; `stat` does
        // not open, so a FIFO cannot make this wait.
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            let kind = if t.is_fifo() {
                "FIFO"
            } else if t.is_dir() {
                "folder"
            } else if t.is_socket() {
                "socket"
            } else if t.is_block_device() || t.is_char_device() {
                "device"
            } else {
                "special file"
            };
            return Err(StoreError::NotAFile {
                path: path.to_owned(),
                kind,
            });
        }
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal { mode });
        }
        // FULL: the WAL is fsynced at every commit, so a committed reading survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = schema::MIGRATIONS.len();
        let current = usize::try_from(version).map_err(|_| StoreError::Corrupt {
            table: "user_version",
            reason: format!("negative schema version {version}"),
        })?;
        if current > supported {
            return Err(StoreError::TooNew {
                found: version,
                supported,
            });
        }
        if current == supported {
            return Ok(());
        }
        // A migration may rebuild a table others refer to; SQLite's procedure is to turn foreign
        // keys off (outside any transaction), then check them all before each commit.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let migrated = self.run_migrations(current);
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        migrated
    }

    fn run_migrations(&mut self, current: usize) -> Result<(), StoreError> {
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another process may have migrated while we waited for the lock.
            let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if now > i64::try_from(i).unwrap_or(i64::MAX) {
                continue;
            }
            tx.execute_batch(sql)?;
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(StoreError::Corrupt {
                    table: "schema",
                    reason: format!("migration {} left a broken reference in `{table}`", i + 1),
                });
            }
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Marks runs left `running` by a process that is gone as `interrupted`; returns their ids.
    ///
    /// `alive(pid, boot_id)` says whether the process that started a run still runs; a run of a
    /// live process (the daemon, while a technician runs `measure`) is left alone.
    pub fn recover_interrupted(
        &mut self,
        at: Timestamp,
        alive: impl Fn(u32, &str) -> bool,
    ) -> Result<Vec<u64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<u64> = {
            let mut stmt = tx.prepare(
                "SELECT id, pid, boot_id FROM runs WHERE status = 'running' ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut ids = Vec::new();
            for row in rows {
                let (id, pid, boot) = row?;
                if !alive(u32::try_from(pid).unwrap_or(0), &boot) {
                    ids.push(to_u64(id));
                }
            }
            ids
        };
        for id in &ids {
            // The run's own process never said how far it got: the readings table does.
            let (readings, first, last): (i64, Option<i64>, Option<i64>) = tx.query_row(
                "SELECT count(*), min(seq), max(seq) FROM readings WHERE run_id = ?1",
                [to_i64(*id)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            end_run_in(
                &tx,
                *id,
                &RunEnd {
                    status: RunStatus::Interrupted,
                    reason: Some(
                        "found running at start-up: the agent stopped during this run (crash, kill or power loss)",
                    ),
                    readings: to_u64(readings),
                    range: first.zip(last).map(|(a, b)| (to_u64(a), to_u64(b))),
                    at,
                },
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Records an instrument identity (once per distinct identity) and returns its id.
    pub fn record_instrument(
        &mut self,
        name: &str,
        resource: &str,
        identity: &Identity,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        // The no-op update makes RETURNING give the id of an identity already recorded too.
        let id: i64 = self.conn.query_row(
            "INSERT INTO instruments
               (name, resource, manufacturer, model, serial, firmware, first_seen_utc_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name, resource, manufacturer, model, serial, firmware)
             DO UPDATE SET name = excluded.name
             RETURNING id",
            params![
                name,
                resource,
                identity.manufacturer,
                identity.model,
                identity.serial,
                identity.firmware,
                at.utc_us
            ],
            |r| r.get(0),
        )?;
        Ok(to_u64(id))
    }

    /// Starts a run in state `running`, owned by process `pid` in boot `boot_id`, and records its
    /// `run_started` event in the same transaction: no run exists without its start in the log.
    ///
    /// It also sizes the WAL file for the run's commits (see `wal`), under this transaction's
    /// write lock; if that fails, the run goes on with commits that grow the file.
    pub fn begin_run(&mut self, start: &RunStart<'_>) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Err(e) = wal::presize(&tx, &self.path) {
            tracing::warn!(
                error = %crate::error::report(&e),
                "could not size the write-ahead log ahead of the run; commits will be slower"
            );
        }
        tx.execute(
            "INSERT INTO runs
               (sequence, trigger, operator, started_utc_us, status, pid, boot_id, official)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
            params![
                start.sequence,
                start.trigger.as_str(),
                start.operator,
                start.at.utc_us,
                start.owner.0,
                start.owner.1,
                start.official
            ],
        )?;
        let run_id = to_u64(tx.last_insert_rowid());
        insert_event(
            &tx,
            &NewEvent {
                run_id: Some(run_id),
                ..NewEvent::new(
                    start.at,
                    Event::RunStarted(RunStarted {
                        sequence: start.sequence.to_owned(),
                        sequence_sha256: tsagent_bundle::hex::encode(&start.sequence_sha256),
                        operator: start.operator.map(str::to_owned),
                        trigger: start.trigger.as_str().to_owned(),
                        official: start.official,
                    }),
                )
            },
        )?;
        tx.commit()?;
        Ok(run_id)
    }

    /// Ends a run that is still `running` and records its `run_ended` event in the same
    /// transaction. Returns `false`, writing nothing, if the run had already ended: each run ends
    /// once, whoever notices first.
    pub fn end_run(&mut self, run_id: u64, end: &RunEnd<'_>) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ended = end_run_in(&tx, run_id, end)?;
        tx.commit()?;
        Ok(ended)
    }

    /// Appends one reading, and the events that go with it, in one durable transaction.
    ///
    /// The sequence number and chain come from the head row inside the transaction, so a second
    /// writer beside this one cannot fork the chain.
    pub fn append_reading(
        &mut self,
        reading: &NewReading<'_>,
        events: &[NewEvent],
    ) -> Result<Committed, StoreError> {
        let mut committed = self.append_readings(std::slice::from_ref(reading), events)?;
        committed.pop().ok_or(StoreError::Corrupt {
            table: "readings",
            reason: "nothing appended".into(),
        })
    }

    /// Appends several readings (one block from an instrument's buffer) and their events in one
    /// durable transaction; all or none are stored.
    pub fn append_readings(
        &mut self,
        readings: &[NewReading<'_>],
        events: &[NewEvent],
    ) -> Result<Vec<Committed>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut seq, mut chain) = head(&tx)?;
        // Chain first, then insert many rows per statement: a block of thousands of readings
        // then costs a few hundred statement runs instead of one each (BENCHMARKS.md, P2).
        let mut records = Vec::with_capacity(readings.len());
        let mut committed = Vec::with_capacity(readings.len());
        let mut canonical = Vec::new();
        for reading in readings {
            seq += 1;
            let record = ReadingRef {
                seq,
                run_id: reading.run_id,
                instrument_id: reading.instrument_id,
                quantity: reading.quantity,
                // SQLite stores an integral REAL as an integer and gives -0.0 back as +0.0;
                // hash what will be read back, or a meter's `-0.000000E+00` would look like
                // tampering. The raw reply keeps the sign.
                value: reading.value.map(|v| if v == 0.0 { 0.0 } else { v }),
                status: reading.status,
                unit: reading.unit,
                raw: reading.raw,
                utc_us: reading.at.utc_us,
                mono_ns: reading.at.mono_ns,
                boot_id: reading.boot_id,
            };
            chain = record.chain_after_in(&chain, &mut canonical);
            records.push(record);
            committed.push(Committed { seq, chain });
        }
        // Readings of one block share their run, instrument, quantity, unit and time: those are
        // bound once per statement, five values per row.
        let mut start = 0;
        while start < records.len() {
            let first = &records[start];
            let len = records[start..]
                .iter()
                .take(ROWS_PER_INSERT)
                .take_while(|r| same_block(first, r))
                .count();
            let rows = &records[start..start + len];
            let chains = &committed[start..start + len];
            let mut insert = if len == ROWS_PER_INSERT {
                // Built once: the full-size statement serves every block but its tail.
                static FULL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                tx.prepare_cached(FULL.get_or_init(|| insert_readings_sql(ROWS_PER_INSERT)))?
            } else {
                tx.prepare_cached(&insert_readings_sql(len))?
            };
            insert.raw_bind_parameter(1, to_i64(first.run_id))?;
            insert.raw_bind_parameter(2, to_i64(first.instrument_id))?;
            insert.raw_bind_parameter(3, first.quantity)?;
            insert.raw_bind_parameter(4, first.unit)?;
            insert.raw_bind_parameter(5, first.utc_us)?;
            insert.raw_bind_parameter(6, to_i64(first.mono_ns))?;
            insert.raw_bind_parameter(7, first.boot_id)?;
            let mut column = SHARED_COLUMNS;
            for (record, c) in rows.iter().zip(chains) {
                insert.raw_bind_parameter(column + 1, to_i64(record.seq))?;
                insert.raw_bind_parameter(column + 2, record.value)?;
                insert.raw_bind_parameter(column + 3, record.status.as_str())?;
                insert.raw_bind_parameter(column + 4, record.raw)?;
                insert.raw_bind_parameter(column + 5, &c.chain[..])?;
                column += ROW_COLUMNS;
            }
            insert.raw_execute()?;
            start += len;
        }
        tx.prepare_cached("UPDATE chain_head SET seq = ?1, chain = ?2 WHERE id = 1")?
            .execute(params![to_i64(seq), &chain[..]])?;
        for e in events {
            insert_event(&tx, e)?;
        }
        tx.commit()?;
        Ok(committed)
    }

    /// Appends events in one transaction.
    pub fn append_events(&mut self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for e in events {
            insert_event(&tx, e)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The run with this id. Counting its readings scans the readings table (there is no index by
    /// run, to keep each reading's commit small), so this is for tools and tests, not hot paths.
    pub fn run(&self, run_id: u64) -> Result<Option<RunRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, sequence, status, message,
                        (SELECT count(*) FROM readings WHERE run_id = runs.id), official
                 FROM runs WHERE id = ?1",
                [to_i64(run_id)],
                |r| {
                    Ok((
                        (
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ),
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, bool>(5)?,
                    ))
                },
            )
            .optional()?
            .map(|((id, sequence, status), message, readings, official)| {
                let status = RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                    table: "runs",
                    reason: format!("run {id} has unknown status `{status}`"),
                })?;
                Ok(RunRow {
                    id: to_u64(id),
                    sequence,
                    status,
                    message,
                    readings: to_u64(readings),
                    official,
                })
            })
            .transpose()
    }

    /// The custody record: every event of a custody kind
    /// ([`tsagent_bundle::event::CUSTODY_KINDS`]), in order.
    pub fn custody_events(&self) -> Result<Vec<EventRow>, StoreError> {
        custody_events(&self.conn)
    }

    /// Every event of `kind`, in order (a scan of the events table: for tools and tests).
    pub fn events_of_kind(&self, kind: &str) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT e.id FROM events e WHERE e.kind = ?1 ORDER BY e.id")?;
        let ids = stmt
            .query_map([kind], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(events_where(&self.conn, "e.id = ?1", id)?);
        }
        Ok(out)
    }

    /// Reads the custody record and appends the events `decide` makes of it, in one write
    /// transaction: two custody commands at once cannot both act on the same state (both
    /// receive the standard, say). Returns what `decide` returned; nothing is written if it fails.
    pub fn custody_update<T, E: From<StoreError>>(
        &mut self,
        decide: impl FnOnce(&[EventRow]) -> Result<(Vec<NewEvent>, T), E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let record = custody_events(&tx)?;
        let (events, out) = decide(&record)?;
        for e in &events {
            insert_event(&tx, e)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// The valid readings in `unit` taken by runs of `sequence` at or after `since_utc_us` (of
    /// `instrument` and `quantity` when given), in order, each as its series
    /// (`instrument/quantity`), time (UTC µs) and value: what the stabilisation gate fits. Scans
    /// the readings from `since_utc_us` on (no index by time), which the gate's window keeps short.
    pub fn sequence_series(
        &self,
        sequence: &str,
        unit: &str,
        instrument: Option<&str>,
        quantity: Option<&str>,
        since_utc_us: i64,
    ) -> Result<Vec<(String, i64, f64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT i.name || '/' || r.quantity, r.utc_us, r.value
             FROM readings r JOIN runs u ON u.id = r.run_id JOIN instruments i ON i.id = r.instrument_id
             WHERE r.utc_us >= ?1 AND u.sequence = ?2 AND r.unit = ?3 AND r.status = 'valid'
               AND r.value IS NOT NULL AND (?4 IS NULL OR i.name = ?4)
               AND (?5 IS NULL OR r.quantity = ?5)
             ORDER BY r.seq",
        )?;
        let rows = stmt.query_map(
            params![since_utc_us, sequence, unit, instrument, quantity],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `limit` runs, newest first, each with the readings it committed.
    ///
    /// The readings table has no index by run (it would cost every reading's commit a page
    /// write), so the counts come from one walk back from the newest reading that stops at the
    /// first reading of an older run: a lab has one owner and it makes one run at a time, so each
    /// run's readings follow its start and precede the next run's. The walk reads the readings
    /// of these runs only, never the whole log.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RecentRun>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, sequence, trigger, operator, status, started_utc_us, ended_utc_us, official
             FROM runs ORDER BY id DESC LIMIT ?1",
        )?;
        let mut runs = Vec::new();
        let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
        while let Some(r) = rows.next()? {
            let id = to_u64(r.get(0)?);
            let status: String = r.get(4)?;
            let status = RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                table: "runs",
                reason: format!("run {id} has unknown status `{status}`"),
            })?;
            runs.push(RecentRun {
                id,
                sequence: r.get(1)?,
                trigger: r.get(2)?,
                operator: r.get(3)?,
                status,
                started_utc_us: r.get(5)?,
                ended_utc_us: r.get(6)?,
                readings: 0,
                official: r.get(7)?,
            });
        }
        let Some(oldest) = runs.last().map(|r| r.id) else {
            return Ok(runs);
        };
        let mut counts = std::collections::HashMap::<u64, u64>::new();
        let mut stmt = self
            .conn
            .prepare("SELECT run_id FROM readings ORDER BY seq DESC")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let run = to_u64(r.get(0)?);
            if run < oldest {
                break;
            }
            *counts.entry(run).or_default() += 1;
        }
        for run in &mut runs {
            run.readings = counts.get(&run.id).copied().unwrap_or(0);
        }
        Ok(runs)
    }

    /// The valid readings taken at or after `since_utc_us`, newest first, each passed to `visit`
    /// as (instrument name, unit, UTC µs, value): what the status page plots at start.
    ///
    /// There is no index by time (it would cost every reading's commit a page write), so this
    /// walks back from the newest reading and stops at the first one older than `since_utc_us`:
    /// readings are appended in time order (one writer at a time, stamping them from its clock),
    /// so the walk reads the window, not the whole log. A backward step of the wall clock may end
    /// the walk early; that shortens a plot, never the log.
    pub fn visit_recent_values(
        &self,
        since_utc_us: i64,
        mut visit: impl FnMut(&str, &str, i64, f64),
    ) -> Result<(), StoreError> {
        let names: std::collections::HashMap<i64, String> = self
            .conn
            .prepare("SELECT id, name FROM instruments")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        // The readings table alone, by its primary key: a join could lead the planner to scan
        // another way round.
        let mut stmt = self.conn.prepare(
            "SELECT utc_us, instrument_id, unit, value, status FROM readings ORDER BY seq DESC",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let utc_us: i64 = r.get(0)?;
            if utc_us < since_utc_us {
                break;
            }
            let value: Option<f64> = r.get(3)?;
            let status: String = r.get(4)?;
            let (Some(value), "valid") = (value, status.as_str()) else {
                continue;
            };
            let Some(name) = names.get(&r.get::<_, i64>(1)?) else {
                continue;
            };
            let unit: String = r.get(2)?;
            visit(name, &unit, utc_us, value);
        }
        Ok(())
    }

    /// Every reading at or after `since_utc_us` (all if `None`), in sequence order, passed to `visit`.
    pub fn visit_readings<E: From<StoreError>>(
        &self,
        since_utc_us: Option<i64>,
        mut visit: impl FnMut(ReadingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{READING_SELECT} WHERE r.utc_us >= ?1 ORDER BY r.seq"
            ))
            .map_err(StoreError::from)?;
        let mut rows = stmt
            .query([since_utc_us.unwrap_or(i64::MIN)])
            .map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            visit(reading_row(row)?)?;
        }
        Ok(())
    }

    /// The readings `filter` selects, in sequence order, each with its run's operator and status,
    /// passed to `visit`. Conditions on run, time, instrument and quantity scan the table (it has
    /// no secondary index, to keep each reading's commit small); that is fine for a listing.
    pub fn visit_listing<E: From<StoreError>>(
        &self,
        filter: &ReadingFilter<'_>,
        mut visit: impl FnMut(ListedReading) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.seq, r.run_id, r.instrument_id, r.quantity, r.value, r.status,
                    r.unit, r.raw, r.utc_us, r.mono_ns, r.boot_id, r.chain, u.sequence, i.name,
                    u.operator, u.status, u.official
                 FROM readings r JOIN runs u ON u.id = r.run_id
                    JOIN instruments i ON i.id = r.instrument_id
                 WHERE r.utc_us >= ?1 AND r.utc_us <= ?2
                    AND (?3 IS NULL OR r.run_id = ?3)
                    AND (?4 IS NULL OR i.name = ?4)
                    AND (?5 IS NULL OR r.quantity = ?5)
                    AND (?6 IS NULL OR u.sequence = ?6)
                    AND (?7 = 0 OR u.official = 1)
                 ORDER BY r.seq",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt
            .query(params![
                filter.since_utc_us.unwrap_or(i64::MIN),
                filter.until_utc_us.unwrap_or(i64::MAX),
                filter.run_id.map(to_i64),
                filter.instrument,
                filter.quantity,
                filter.sequence,
                filter.official,
            ])
            .map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            let reading = reading_row(row)?;
            let operator: Option<String> = row.get(14).map_err(StoreError::from)?;
            let run_status: String = row.get(15).map_err(StoreError::from)?;
            let official: bool = row.get(16).map_err(StoreError::from)?;
            visit(ListedReading {
                reading,
                operator,
                run_status,
                official,
            })?;
        }
        Ok(())
    }

    /// Readings of one run within sequence numbers `first..=last` (a run's range, as its outcome
    /// reports it; another process may have interleaved readings of its own), in order.
    pub fn run_readings(
        &self,
        run_id: u64,
        (first, last): (u64, u64),
    ) -> Result<Vec<ReadingRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "{READING_SELECT} WHERE r.seq BETWEEN ?1 AND ?2 AND r.run_id = ?3 ORDER BY r.seq"
        ))?;
        let mut rows = stmt.query([to_i64(first), to_i64(last), to_i64(run_id)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(reading_row(row)?);
        }
        Ok(out)
    }

    /// Events of one run, in order.
    pub fn run_events(&self, run_id: u64) -> Result<Vec<EventRow>, StoreError> {
        self.events_where("e.run_id = ?1", to_i64(run_id))
    }

    fn events_where(&self, condition: &str, arg: i64) -> Result<Vec<EventRow>, StoreError> {
        events_where(&self.conn, &format!("{condition} ORDER BY e.id"), arg)
    }

    /// Checks the whole log: SQLite's integrity check, the chain, the sequence, the head and the seals.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        check::run(&self.conn)
    }

    /// The newest sealed bundle.
    pub fn latest_bundle(&self) -> Result<Option<BundleRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, name, tar FROM bundles ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(BundleRow {
                        seq: to_u64(r.get(0)?),
                        name: r.get(1)?,
                        tar: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// What the next bundle would hold — at most [`MAX_BUNDLE_READINGS`] readings and
    /// [`MAX_BUNDLE_EVENTS`] events, so a long backlog seals into several bundles rather than
    /// one too large to make — or `None` when no reading is waiting to be sealed.
    ///
    /// Read in one transaction, so the readings, events and head are one consistent snapshot.
    pub fn seal_material(&self) -> Result<Option<SealMaterial>, StoreError> {
        self.seal_material_within(MAX_BUNDLE_READINGS, MAX_BUNDLE_EVENTS)
    }

    /// [`Store::seal_material`] with other limits (tests use small ones): the streaming
    /// [`Store::scan_for_seal`], runs still `running` included, collected in memory.
    pub fn seal_material_within(
        &self,
        max_readings: usize,
        max_events: usize,
    ) -> Result<Option<SealMaterial>, StoreError> {
        let window = SealWindow {
            max_readings,
            max_events,
            include_running: true,
        };
        let scan = self.scan_for_seal(
            window,
            |start: &SealStart, instruments: Vec<InstrumentRow>| {
                Ok::<_, StoreError>(SealMaterial {
                    bundle_seq: start.bundle_seq,
                    prev_sums_sha256: start.prev_sums_sha256,
                    chain_prev: start.chain_prev,
                    readings: Vec::new(),
                    events: Vec::new(),
                    instruments,
                })
            },
            |m, row| {
                m.readings.push(row.to_export());
                Ok(())
            },
            |m, event| {
                m.events.push(event.clone());
                Ok(())
            },
        )?;
        Ok(match scan {
            Scan::Bundle(mut m, _) => {
                // Only the instruments the readings name, as the manifest lists them.
                let used: std::collections::BTreeSet<u64> =
                    m.readings.iter().map(|r| r.record.instrument_id).collect();
                m.instruments.retain(|i| used.contains(&i.id));
                Some(m)
            }
            Scan::Nothing { .. } => None,
        })
    }

    /// Commits a seal with its archive in memory; see [`Store::record_seal_streamed`].
    pub fn record_seal(&mut self, seal: &SealRecord<'_>) -> Result<(), StoreError> {
        let len = u64::try_from(seal.tar.len()).unwrap_or(u64::MAX);
        self.record_seal_streamed(seal, len, |out| {
            out.write_all(seal.tar)
                .map_err(|source| StoreError::Corrupt {
                    table: "bundles",
                    reason: format!("cannot store the archive: {source}"),
                })
        })
    }
}

const READING_SELECT: &str =
    "SELECT r.seq, r.run_id, r.instrument_id, r.quantity, r.value, r.status,
        r.unit, r.raw, r.utc_us, r.mono_ns, r.boot_id, r.chain, u.sequence, i.name
    FROM readings r JOIN runs u ON u.id = r.run_id JOIN instruments i ON i.id = r.instrument_id";

fn reading_row(r: &rusqlite::Row<'_>) -> Result<ReadingRow, StoreError> {
    let seq: i64 = r.get(0)?;
    let status: String = r.get(5)?;
    let chain: Vec<u8> = r.get(11)?;
    Ok(ReadingRow {
        record: ReadingRecord {
            seq: to_u64(seq),
            run_id: to_u64(r.get(1)?),
            instrument_id: to_u64(r.get(2)?),
            quantity: r.get(3)?,
            value: r.get(4)?,
            status: ReadingStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                table: "readings",
                reason: format!("reading {seq} has unknown status `{status}`"),
            })?,
            unit: r.get(6)?,
            raw: r.get(7)?,
            utc_us: r.get(8)?,
            mono_ns: to_u64(r.get(9)?),
            boot_id: r.get(10)?,
        },
        chain: blob32("readings", &chain)?,
        sequence: r.get(12)?,
        instrument: r.get(13)?,
    })
}

/// The custody kinds' events, in order.
fn custody_events(conn: &Connection) -> Result<Vec<EventRow>, StoreError> {
    // The kinds are the format's constants, not input: quoting them inline is safe.
    let kinds: Vec<String> = tsagent_bundle::event::CUSTODY_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect();
    events_where(
        conn,
        &format!(
            "e.kind IN ({}) AND e.id > ?1 ORDER BY e.id",
            kinds.join(", ")
        ),
        0,
    )
}

/// Events matching `condition` (which may end in ORDER BY / LIMIT), with instrument names.
fn events_where(conn: &Connection, condition: &str, arg: i64) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT e.id, e.utc_us, e.run_id, i.name, e.kind, e.detail
         FROM events e LEFT JOIN instruments i ON i.id = e.instrument_id
         WHERE {condition}"
    ))?;
    let mut rows = stmt.query([arg])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let detail: String = r.get(5)?;
        out.push(EventRow {
            id: to_u64(r.get(0)?),
            utc_us: r.get(1)?,
            run_id: r.get::<_, Option<i64>>(2)?.map(to_u64),
            instrument: r.get(3)?,
            kind: r.get(4)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        });
    }
    Ok(out)
}

fn head(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let (seq, chain): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT seq, chain FROM chain_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((to_u64(seq), blob32("chain_head", &chain)?))
}

/// Rows per `INSERT` when a block of readings is stored.
const ROWS_PER_INSERT: usize = 64;

/// Parameters bound once per `INSERT` of a block: run, instrument, quantity, unit, UTC,
/// monotonic time, boot id.
const SHARED_COLUMNS: usize = 7;

/// Parameters per row: seq, value, status, raw, chain.
const ROW_COLUMNS: usize = 5;

/// Whether `b` can share `a`'s once-bound columns.
fn same_block(a: &ReadingRef<'_>, b: &ReadingRef<'_>) -> bool {
    a.run_id == b.run_id
        && a.instrument_id == b.instrument_id
        && a.quantity == b.quantity
        && a.unit == b.unit
        && a.utc_us == b.utc_us
        && a.mono_ns == b.mono_ns
        && a.boot_id == b.boot_id
}

/// `INSERT INTO readings … VALUES (…), (…), …` for `rows` rows of one block: `?1`–`?7` are the
/// shared columns, then five per row.
fn insert_readings_sql(rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from(
        "INSERT INTO readings (seq, run_id, instrument_id, quantity, value, status, unit, raw, \
         utc_us, mono_ns, boot_id, chain) VALUES ",
    );
    for i in 0..rows {
        let p = SHARED_COLUMNS + i * ROW_COLUMNS;
        let sep = if i > 0 { ", " } else { "" };
        // Writing to a String cannot fail.
        let _ = write!(
            sql,
            "{sep}(?{}, ?1, ?2, ?3, ?{}, ?{}, ?4, ?{}, ?5, ?6, ?7, ?{})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        );
    }
    sql
}

fn insert_event(conn: &Connection, e: &NewEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (utc_us, mono_ns, run_id, instrument_id, kind, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        e.at.utc_us,
        to_i64(e.at.mono_ns),
        e.run_id.map(to_i64),
        e.instrument_id.map(to_i64),
        e.event.kind(),
        e.event.detail().to_string(),
    ])?;
    Ok(())
}

/// Ends `run_id` if it is still running, with its `run_ended` event; `false` if it had ended.
fn end_run_in(conn: &Connection, run_id: u64, end: &RunEnd<'_>) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE runs SET status = ?1, message = ?2, ended_utc_us = ?3
         WHERE id = ?4 AND status = 'running'",
        params![
            end.status.as_str(),
            end.reason,
            end.at.utc_us,
            to_i64(run_id)
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    insert_event(
        conn,
        &NewEvent {
            run_id: Some(run_id),
            ..NewEvent::new(
                end.at,
                Event::RunEnded(RunEnded {
                    status: end.status.as_str().to_owned(),
                    readings: end.readings,
                    first_reading: end.range.map(|r| r.0),
                    last_reading: end.range.map(|r| r.1),
                    reason: end.reason.map(str::to_owned),
                }),
            )
        },
    )?;
    Ok(true)
}

fn blob32(table: &'static str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt {
        table,
        reason: format!("hash of {} bytes, expected 32", bytes.len()),
    })
}

// SQLite integers are i64. Sequence numbers, ids and CLOCK_MONOTONIC nanoseconds stay far below
// i64::MAX (292 years of nanoseconds), so these conversions saturate only on corrupt input.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests;
