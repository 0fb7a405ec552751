//! The index: what the coordinator accepted (bundles, heartbeats), the incidents, and the
//! transparency log's entries and complete subtrees. [`Index`] is what the intake needs of any
//! storage; [`Local`] keeps it in SQLite (WAL, `synchronous=FULL`),
//! [`Postgres`](crate::index_pg::Postgres) in PostgreSQL for several coordinator processes.
//!
//! Every accept happens in one [`Tx`] that first takes the log's lock ([`Tx::lock_log`]), so the
//! chain rules and the log's order are decided by the database, not by a lock in one process.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;
use tsagent_bundle::links::Head;
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::SignedCheckpoint;
use tsagent_bundle::tlog::Hash;

/// A storage failure.
#[derive(Debug, Error)]
pub enum IndexError {
    /// SQLite said no.
    #[error("the index database failed")]
    Sqlite(#[from] rusqlite::Error),
    /// The index holds something this version cannot read: a damaged or foreign file.
    #[error("the index is inconsistent: {0}")]
    Corrupt(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("the index's lock was poisoned")]
    Poisoned,
    /// PostgreSQL said no, or could not be reached.
    #[error("the PostgreSQL index failed")]
    Postgres(#[from] tokio_postgres::Error),
    /// Every connection to the index stayed in use for this long.
    #[error("no connection to the index came free within {0:?}")]
    Busy(std::time::Duration),
    /// The index's connections could not be started.
    #[error("cannot start the index's connections")]
    Runtime(#[source] std::io::Error),
}

impl IndexError {
    /// Whether the database could not write because its disk is full: the transaction was rolled
    /// back, and the sender is told 507 (try later), not 500.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            Self::Postgres(e) => e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }
}

/// An accepted bundle, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRow {
    /// SHA-256 of the tar: the blob's name.
    pub sha256: Hash32,
    /// The lab.
    pub lab: String,
    /// The artefact.
    pub artefact: String,
    /// The manifest's `bundle_seq`.
    pub bundle_seq: u64,
    /// The file name it was sent as.
    pub name: String,
    /// SHA-256 of its `SHA256SUMS`.
    pub sums_sha256: Hash32,
    /// First reading.
    pub first_seq: u64,
    /// Last reading.
    pub last_seq: u64,
    /// Chain value after the last reading.
    pub chain_last: Hash32,
    /// Number of readings.
    pub readings: u64,
    /// Size of the tar.
    pub bytes: u64,
    /// When its last reading was taken, µs since the epoch.
    pub last_reading_utc_us: i64,
    /// When it was stored, µs since the epoch.
    pub received_utc_us: i64,
    /// Its entry in the log.
    pub log_index: u64,
    /// The signed receipt sent back, JSON.
    pub receipt: String,
}

/// A heartbeat logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRow {
    /// SHA-256 of the signed text.
    pub sha256: Hash32,
    /// The lab.
    pub lab: String,
    /// The artefact.
    pub artefact: String,
    /// The lab's last reading.
    pub seq: u64,
    /// The chain value after it.
    pub chain: Hash32,
    /// When it was received, µs since the epoch.
    pub received_utc_us: i64,
    /// Its entry in the log.
    pub log_index: u64,
    /// The heartbeat's JSON text as signed.
    pub text: String,
    /// The signed receipt sent back, JSON.
    pub receipt: String,
}

/// Something the pilot must look at: a fork, a contradicted heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// When, µs since the epoch.
    pub utc_us: i64,
    /// The lab.
    pub lab: String,
    /// The artefact.
    pub artefact: String,
    /// `fork` or `heartbeat_contradicted`.
    pub kind: String,
    /// What happened, one line.
    pub detail: String,
    /// The quarantined blob, if any.
    pub sha256: Option<Hash32>,
}

/// One line of `coordinator status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    /// The lab.
    pub lab: String,
    /// The artefact.
    pub artefact: String,
    /// Bundles accepted.
    pub bundles: u64,
    /// The highest `bundle_seq` accepted.
    pub last_bundle_seq: u64,
    /// The last reading's sequence number accepted.
    pub last_seq: u64,
    /// When the last bundle was received, µs.
    pub last_bundle_utc_us: Option<i64>,
    /// When the last reading accepted was taken, µs.
    pub last_reading_utc_us: Option<i64>,
    /// When the last heartbeat was received, µs.
    pub last_heartbeat_utc_us: Option<i64>,
    /// Bundle numbers missing below the highest.
    pub gaps: u64,
    /// Incidents recorded.
    pub incidents: u64,
}

/// One transaction of the intake. Every method but [`Tx::commit`] is undone if the transaction is
/// dropped.
pub trait Tx {
    /// Takes the log's lock for the rest of the transaction and returns its size.
    fn lock_log(&mut self) -> Result<u64, IndexError>;
    /// The last bundle accepted for `lab` and `artefact`.
    fn head(&mut self, lab: &str, artefact: &str) -> Result<Option<Head>, IndexError>;
    /// The tar hash and receipt of bundle `seq` of `lab` and `artefact`, if accepted.
    fn bundle_at(
        &mut self,
        lab: &str,
        artefact: &str,
        seq: u64,
    ) -> Result<Option<(Hash32, String)>, IndexError>;
    /// The accepted bundle whose readings include `seq`: its tar hash and last reading.
    fn bundle_covering(
        &mut self,
        lab: &str,
        artefact: &str,
        seq: u64,
    ) -> Result<Option<(Hash32, u64, Hash32)>, IndexError>;
    /// The heartbeats of `lab` and `artefact` whose `seq` is in `first ..= last`, as (seq, chain).
    fn heartbeats_between(
        &mut self,
        lab: &str,
        artefact: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<(u64, Hash32)>, IndexError>;
    /// A complete subtree's hash.
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, IndexError>;
    /// Appends entry `index` with the subtree hashes it completes.
    fn append_entry(
        &mut self,
        index: u64,
        entry: &[u8],
        nodes: &[(u32, u64, Hash)],
    ) -> Result<(), IndexError>;
    /// Records the newest signed checkpoint.
    fn set_checkpoint(&mut self, size: u64, signed: &SignedCheckpoint) -> Result<(), IndexError>;
    /// Records an accepted bundle.
    fn insert_bundle(&mut self, row: &BundleRow) -> Result<(), IndexError>;
    /// Sets the receipt of the bundle whose tar hashes to `sha256`, recorded earlier in this
    /// transaction: a group's receipts are signed once every bundle of it is in the log.
    fn set_receipt(&mut self, sha256: &Hash32, receipt: &str) -> Result<(), IndexError>;
    /// Records a heartbeat.
    fn insert_heartbeat(&mut self, row: &HeartbeatRow) -> Result<(), IndexError>;
    /// Records an incident.
    fn insert_incident(&mut self, incident: &Incident) -> Result<(), IndexError>;
    /// Remembers that bundle `found` arrived before the ones below it (a gap), for status.
    fn note_gap(&mut self, lab: &str, artefact: &str, found: u64) -> Result<(), IndexError>;
    /// Makes it all durable.
    fn commit(self: Box<Self>) -> Result<(), IndexError>;
}

/// What the coordinator needs of an index.
pub trait Index: Send + Sync {
    /// Starts a transaction.
    fn begin(&self) -> Result<Box<dyn Tx + '_>, IndexError>;
    /// The receipt of the bundle whose tar hashes to `sha256`, with the name it was sent as.
    fn bundle_receipt(&self, sha256: &Hash32) -> Result<Option<(String, String)>, IndexError>;
    /// The receipt of the heartbeat whose signed text hashes to `sha256`.
    fn heartbeat_receipt(&self, sha256: &Hash32) -> Result<Option<String>, IndexError>;
    /// The `seq`s of the heartbeats of `lab` and `artefact` beyond the last accepted bundle's
    /// readings, ascending: what the next bundle's chain must be checked at.
    fn pending_heartbeat_seqs(&self, lab: &str, artefact: &str) -> Result<Vec<u64>, IndexError>;
    /// The newest checkpoint, if the log has any entry.
    fn checkpoint(&self) -> Result<Option<SignedCheckpoint>, IndexError>;
    /// A complete subtree's hash, outside any transaction (for proofs; the log only grows, so a
    /// subtree once complete never changes).
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, IndexError>;
    /// The log's entries from `start`, at most `limit`.
    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, IndexError>;
    /// Accepted bundles, optionally of one artefact, by lab and `bundle_seq`.
    fn bundles(&self, artefact: Option<&str>) -> Result<Vec<BundleRow>, IndexError>;
    /// One line per lab and artefact.
    fn status(&self) -> Result<Vec<LabStatus>, IndexError>;
    /// Every incident, oldest first.
    fn incidents(&self) -> Result<Vec<Incident>, IndexError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bundles (
    sha256 BLOB PRIMARY KEY,
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    sums_sha256 BLOB NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    chain_last BLOB NOT NULL,
    readings INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    last_reading_utc_us INTEGER NOT NULL,
    received_utc_us INTEGER NOT NULL,
    log_index INTEGER NOT NULL UNIQUE,
    receipt TEXT NOT NULL,
    UNIQUE (lab, artefact, bundle_seq)
);
CREATE TABLE IF NOT EXISTS heartbeats (
    sha256 BLOB PRIMARY KEY,
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    seq INTEGER NOT NULL,
    chain BLOB NOT NULL,
    received_utc_us INTEGER NOT NULL,
    log_index INTEGER NOT NULL UNIQUE,
    text TEXT NOT NULL,
    receipt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_by_lab ON heartbeats (lab, artefact, seq);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    utc_us INTEGER NOT NULL,
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    sha256 BLOB
);
CREATE TABLE IF NOT EXISTS gaps_seen (
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    highest INTEGER NOT NULL,
    PRIMARY KEY (lab, artefact)
);
CREATE TABLE IF NOT EXISTS tlog_entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tlog_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tlog_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    checkpoint TEXT NOT NULL,
    signature TEXT NOT NULL
);
";

/// The embedded index: one SQLite file.
pub struct Local {
    conn: Mutex<Connection>,
}

fn i(v: u64) -> i64 {
    // Sequence numbers and sizes stay far below 2^63; saturate rather than wrap if one did not.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn hash32(bytes: Vec<u8>) -> Result<Hash32, IndexError> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Hash32)
        .map_err(|_| IndexError::Corrupt(format!("a hash of {} bytes", bytes.len())))
}

impl Local {
    /// Opens (creating) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // One plan per statement, whatever the values bound: without it this SQLite (built with
        // STAT4) marks the parameters compared with an index's columns as steering the plan and
        // prepares each such statement again at every use, defeating the statement cache: 7 % of
        // the coordinator's CPU for small bundles (`perf`, P7 in BENCHMARKS.md). There is no
        // ANALYZE data for a value to steer anything with.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, IndexError> {
        self.conn.lock().map_err(|_| IndexError::Poisoned)
    }
}

/// A transaction on [`Local`]: the connection's lock is held until it ends.
struct LocalTx<'a> {
    guard: std::sync::MutexGuard<'a, Connection>,
    done: bool,
}

impl Drop for LocalTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Nothing to report to: the caller already has the error that made it give up.
            let _ = self.guard.execute_batch("ROLLBACK");
        }
    }
}

impl Tx for LocalTx<'_> {
    fn lock_log(&mut self) -> Result<u64, IndexError> {
        // BEGIN IMMEDIATE already holds SQLite's one write lock. The entries are numbered from 0
        // without holes, so the size is the last number + 1: one look down the key's b-tree.
        // COUNT(*) read every entry, under the lock: 10 ms at 100 000 entries and 108 ms at a
        // million on the P7 machine, and heartbeats alone are 96 entries a day per lab.
        let size: i64 = self
            .guard
            .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_entries")?
            .query_row([], |r| r.get(0))?;
        Ok(u(size))
    }

    fn head(&mut self, lab: &str, artefact: &str) -> Result<Option<Head>, IndexError> {
        // Cached, as every statement on the accept path: parsing them again for each bundle was
        // a tenth of the intake's CPU time, some of it under the lock (P7 in BENCHMARKS.md).
        let row = self
            .guard
            .prepare_cached(
                "SELECT bundle_seq, sums_sha256, last_seq, chain_last FROM bundles
                 WHERE lab = ?1 AND artefact = ?2 ORDER BY bundle_seq DESC LIMIT 1",
            )?
            .query_row(params![lab, artefact], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()?;
        row.map(|(seq, sums, last, chain)| {
            Ok(Head {
                bundle_seq: u(seq),
                sums_sha256: hash32(sums)?,
                last_seq: u(last),
                chain_last: hash32(chain)?,
            })
        })
        .transpose()
    }

    fn bundle_at(
        &mut self,
        lab: &str,
        artefact: &str,
        seq: u64,
    ) -> Result<Option<(Hash32, String)>, IndexError> {
        let row = self
            .guard
            .query_row(
                "SELECT sha256, receipt FROM bundles WHERE lab = ?1 AND artefact = ?2 AND bundle_seq = ?3",
                params![lab, artefact, i(seq)],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        row.map(|(sha, receipt)| Ok((hash32(sha)?, receipt)))
            .transpose()
    }

    fn bundle_covering(
        &mut self,
        lab: &str,
        artefact: &str,
        seq: u64,
    ) -> Result<Option<(Hash32, u64, Hash32)>, IndexError> {
        let row = self
            .guard
            .query_row(
                "SELECT sha256, last_seq, chain_last FROM bundles
                 WHERE lab = ?1 AND artefact = ?2 AND first_seq <= ?3 AND last_seq >= ?3",
                params![lab, artefact, i(seq)],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(sha, last, chain)| Ok((hash32(sha)?, u(last), hash32(chain)?)))
            .transpose()
    }

    fn heartbeats_between(
        &mut self,
        lab: &str,
        artefact: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<(u64, Hash32)>, IndexError> {
        let mut stmt = self.guard.prepare_cached(
            "SELECT seq, chain FROM heartbeats
             WHERE lab = ?1 AND artefact = ?2 AND seq BETWEEN ?3 AND ?4 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![lab, artefact, i(first), i(last)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, chain) = row?;
            out.push((u(seq), hash32(chain)?));
        }
        Ok(out)
    }

    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, IndexError> {
        subtree_in(&self.guard, level, index)
    }

    fn append_entry(
        &mut self,
        index: u64,
        entry: &[u8],
        nodes: &[(u32, u64, Hash)],
    ) -> Result<(), IndexError> {
        self.guard
            .prepare_cached("INSERT INTO tlog_entries (idx, entry) VALUES (?1, ?2)")?
            .execute(params![i(index), entry])?;
        let mut stmt = self
            .guard
            .prepare_cached("INSERT INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
        for (level, idx, hash) in nodes {
            stmt.execute(params![level, i(*idx), &hash[..]])?;
        }
        Ok(())
    }

    fn set_checkpoint(&mut self, size: u64, signed: &SignedCheckpoint) -> Result<(), IndexError> {
        self.guard
            .prepare_cached(
                "INSERT INTO tlog_checkpoint (id, size, checkpoint, signature) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET size = excluded.size,
                     checkpoint = excluded.checkpoint, signature = excluded.signature",
            )?
            .execute(params![i(size), signed.checkpoint, signed.signature])?;
        Ok(())
    }

    fn insert_bundle(&mut self, b: &BundleRow) -> Result<(), IndexError> {
        self.guard.prepare_cached(
            "INSERT INTO bundles (sha256, lab, artefact, bundle_seq, name, sums_sha256, first_seq,
                 last_seq, chain_last, readings, bytes, received_utc_us, log_index, receipt,
                 last_reading_utc_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?.execute(params![
                &b.sha256.0[..],
                b.lab,
                b.artefact,
                i(b.bundle_seq),
                b.name,
                &b.sums_sha256.0[..],
                i(b.first_seq),
                i(b.last_seq),
                &b.chain_last.0[..],
                i(b.readings),
                i(b.bytes),
                b.received_utc_us,
                i(b.log_index),
                b.receipt,
                b.last_reading_utc_us
            ],
        )?;
        Ok(())
    }

    fn set_receipt(&mut self, sha256: &Hash32, receipt: &str) -> Result<(), IndexError> {
        let n = self
            .guard
            .prepare_cached("UPDATE bundles SET receipt = ?2 WHERE sha256 = ?1")?
            .execute(params![&sha256.0[..], receipt])?;
        if n != 1 {
            return Err(IndexError::Corrupt(format!(
                "bundle {sha256} is not in the index to take its receipt"
            )));
        }
        Ok(())
    }

    fn insert_heartbeat(&mut self, h: &HeartbeatRow) -> Result<(), IndexError> {
        self.guard.execute(
            "INSERT INTO heartbeats (sha256, lab, artefact, seq, chain, received_utc_us, log_index,
                 text, receipt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                &h.sha256.0[..],
                h.lab,
                h.artefact,
                i(h.seq),
                &h.chain.0[..],
                h.received_utc_us,
                i(h.log_index),
                h.text,
                h.receipt
            ],
        )?;
        Ok(())
    }

    fn insert_incident(&mut self, n: &Incident) -> Result<(), IndexError> {
        self.guard.execute(
            "INSERT INTO incidents (utc_us, lab, artefact, kind, detail, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                n.utc_us,
                n.lab,
                n.artefact,
                n.kind,
                n.detail,
                n.sha256.map(|h| h.0.to_vec())
            ],
        )?;
        Ok(())
    }

    fn note_gap(&mut self, lab: &str, artefact: &str, found: u64) -> Result<(), IndexError> {
        self.guard.execute(
            "INSERT INTO gaps_seen (lab, artefact, highest) VALUES (?1, ?2, ?3)
             ON CONFLICT (lab, artefact) DO UPDATE SET highest = MAX(highest, excluded.highest)",
            params![lab, artefact, i(found)],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), IndexError> {
        self.guard.execute_batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

fn subtree_in(conn: &Connection, level: u32, index: u64) -> Result<Hash, IndexError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM tlog_nodes WHERE level = ?1 AND idx = ?2")?
        .query_row(params![level, i(index)], |r| r.get(0))
        .optional()?;
    let bytes = bytes.ok_or_else(|| {
        IndexError::Corrupt(format!(
            "the log has no subtree at level {level}, index {index}"
        ))
    })?;
    Ok(hash32(bytes)?.0)
}

fn bundle_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(BundleRow, [Vec<u8>; 3])> {
    Ok((
        BundleRow {
            sha256: Hash32([0; 32]),
            lab: r.get(1)?,
            artefact: r.get(2)?,
            bundle_seq: u(r.get(3)?),
            name: r.get(4)?,
            sums_sha256: Hash32([0; 32]),
            first_seq: u(r.get(6)?),
            last_seq: u(r.get(7)?),
            chain_last: Hash32([0; 32]),
            readings: u(r.get(9)?),
            bytes: u(r.get(10)?),
            received_utc_us: r.get(11)?,
            log_index: u(r.get(12)?),
            receipt: r.get(13)?,
            last_reading_utc_us: r.get(14)?,
        },
        [r.get(0)?, r.get(5)?, r.get(8)?],
    ))
}

impl Index for Local {
    fn begin(&self) -> Result<Box<dyn Tx + '_>, IndexError> {
        let guard = self.conn()?;
        // The write lock from the start: two intakes never decide on the same head.
        guard.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Box::new(LocalTx { guard, done: false }))
    }

    fn bundle_receipt(&self, sha256: &Hash32) -> Result<Option<(String, String)>, IndexError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT name, receipt FROM bundles WHERE sha256 = ?1")?
            .query_row(params![&sha256.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn heartbeat_receipt(&self, sha256: &Hash32) -> Result<Option<String>, IndexError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT receipt FROM heartbeats WHERE sha256 = ?1",
                params![&sha256.0[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn pending_heartbeat_seqs(&self, lab: &str, artefact: &str) -> Result<Vec<u64>, IndexError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT seq FROM heartbeats WHERE lab = ?1 AND artefact = ?2
                 AND seq > (SELECT COALESCE(MAX(last_seq), 0) FROM bundles
                            WHERE lab = ?1 AND artefact = ?2)
             ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![lab, artefact], |r| r.get::<_, i64>(0))?;
        rows.map(|r| r.map(u).map_err(IndexError::from)).collect()
    }

    fn checkpoint(&self) -> Result<Option<SignedCheckpoint>, IndexError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT checkpoint, signature FROM tlog_checkpoint WHERE id = 1",
                [],
                |r| {
                    Ok(SignedCheckpoint {
                        checkpoint: r.get(0)?,
                        signature: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, IndexError> {
        let conn = self.conn()?;
        subtree_in(&conn, level, index)
    }

    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, IndexError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT entry FROM tlog_entries WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![i(start), i(limit)], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|r| r.map_err(IndexError::from)).collect()
    }

    fn bundles(&self, artefact: Option<&str>) -> Result<Vec<BundleRow>, IndexError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT sha256, lab, artefact, bundle_seq, name, sums_sha256, first_seq, last_seq,
                 chain_last, readings, bytes, received_utc_us, log_index, receipt, last_reading_utc_us
             FROM bundles WHERE ?1 IS NULL OR artefact = ?1 ORDER BY lab, artefact, bundle_seq",
        )?;
        let rows = stmt.query_map(params![artefact], bundle_row)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut b, [sha, sums, chain]) = row?;
            b.sha256 = hash32(sha)?;
            b.sums_sha256 = hash32(sums)?;
            b.chain_last = hash32(chain)?;
            out.push(b);
        }
        Ok(out)
    }

    fn status(&self) -> Result<Vec<LabStatus>, IndexError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "WITH pairs AS (
                 SELECT lab, artefact FROM bundles UNION SELECT lab, artefact FROM heartbeats
                 UNION SELECT lab, artefact FROM incidents UNION SELECT lab, artefact FROM gaps_seen)
             SELECT p.lab, p.artefact,
                 (SELECT COUNT(*) FROM bundles b WHERE b.lab = p.lab AND b.artefact = p.artefact),
                 (SELECT COALESCE(MAX(bundle_seq), 0) FROM bundles b
                     WHERE b.lab = p.lab AND b.artefact = p.artefact),
                 (SELECT COALESCE(MAX(last_seq), 0) FROM bundles b
                     WHERE b.lab = p.lab AND b.artefact = p.artefact),
                 (SELECT MAX(received_utc_us) FROM bundles b
                     WHERE b.lab = p.lab AND b.artefact = p.artefact),
                 (SELECT MAX(received_utc_us) FROM heartbeats h
                     WHERE h.lab = p.lab AND h.artefact = p.artefact),
                 (SELECT MAX(last_reading_utc_us) FROM bundles b
                     WHERE b.lab = p.lab AND b.artefact = p.artefact),
                 (SELECT COUNT(*) FROM incidents n WHERE n.lab = p.lab AND n.artefact = p.artefact),
                 (SELECT highest FROM gaps_seen g WHERE g.lab = p.lab AND g.artefact = p.artefact)
             FROM pairs p ORDER BY p.lab, p.artefact",
        )?;
        let rows = stmt.query_map([], |r| {
            let last_bundle_seq = u(r.get(3)?);
            // Bundles are accepted only in order, so what is missing is what lies between the
            // head and the highest number that arrived too early.
            let highest_seen: Option<i64> = r.get(9)?;
            let gaps = highest_seen.map_or(0, |h| u(h).saturating_sub(last_bundle_seq + 1));
            Ok(LabStatus {
                lab: r.get(0)?,
                artefact: r.get(1)?,
                bundles: u(r.get(2)?),
                last_bundle_seq,
                last_seq: u(r.get(4)?),
                last_bundle_utc_us: r.get(5)?,
                last_heartbeat_utc_us: r.get(6)?,
                last_reading_utc_us: r.get(7)?,
                gaps,
                incidents: u(r.get(8)?),
            })
        })?;
        rows.map(|r| r.map_err(IndexError::from)).collect()
    }

    fn incidents(&self) -> Result<Vec<Incident>, IndexError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT utc_us, lab, artefact, kind, detail, sha256 FROM incidents ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                Incident {
                    utc_us: r.get(0)?,
                    lab: r.get(1)?,
                    artefact: r.get(2)?,
                    kind: r.get(3)?,
                    detail: r.get(4)?,
                    sha256: None,
                },
                r.get::<_, Option<Vec<u8>>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut n, sha) = row?;
            n.sha256 = sha.map(hash32).transpose()?;
            out.push(n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_paths_statements_are_prepared_once() {
        let dir = tempfile::tempdir().unwrap();
        let l = Local::open(&dir.path().join("i.sqlite")).unwrap();
        for n in 0..5 {
            let mut tx = l.begin().unwrap();
            let size = tx.lock_log().unwrap();
            tx.head("NIM", "Z1").unwrap();
            tx.heartbeats_between("NIM", "Z1", n, n + 10).unwrap();
            tx.append_entry(size, b"entry", &[(0, size, [1; 32])])
                .unwrap();
            tx.subtree(0, size).unwrap();
            tx.commit().unwrap();
            l.pending_heartbeat_seqs("NIM", "Z1").unwrap();
            l.bundle_receipt(&Hash32([1; 32])).unwrap();
        }
        let conn = l.conn().unwrap();
        for sql in [
            "SELECT bundle_seq, sums_sha256, last_seq, chain_last FROM bundles
                 WHERE lab = ?1 AND artefact = ?2 ORDER BY bundle_seq DESC LIMIT 1",
            "SELECT seq, chain FROM heartbeats
             WHERE lab = ?1 AND artefact = ?2 AND seq BETWEEN ?3 AND ?4 ORDER BY seq",
            "SELECT DISTINCT seq FROM heartbeats WHERE lab = ?1 AND artefact = ?2
                 AND seq > (SELECT COALESCE(MAX(last_seq), 0) FROM bundles
                            WHERE lab = ?1 AND artefact = ?2)
             ORDER BY seq",
        ] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}
