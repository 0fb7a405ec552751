//! The scale-out index on PostgreSQL: the tables and meaning of [`Local`](crate::index::Local),
//! shared by several coordinator processes.
//!
//! The chain rules hold across processes because the database decides them: [`Tx::lock_log`]
//! locks the one row of `tlog_lock` (`SELECT … FOR UPDATE`), which every accepting transaction of
//! every process waits for until its holder commits or rolls back; the unique constraints on the
//! tar's hash, on (lab, artefact, bundle_seq) and on the log index refuse whatever a bug might
//! still let past. Transactions are READ COMMITTED: each statement after the lock sees what was
//! committed before it was granted.
//!
//! tokio-postgres, on a runtime the index owns ([`crate::runtime`]), with a small pool of
//! connections that each keep their prepared statements.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};
use tsagent_bundle::links::Head;
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::SignedCheckpoint;
use tsagent_bundle::tlog::Hash;

use crate::index::{BundleRow, HeartbeatRow, Incident, Index, IndexError, LabStatus, Tx};
use crate::runtime::Runtime;

/// Connections one process opens at most. Appends wait for one lock anyway; a few more serve
/// the reads (receipts, proofs, status) beside them.
const MAX_CONNECTIONS: usize = 8;

/// How long a caller waits for a connection before the request fails (and the lab retries).
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema this version writes; a newer one is refused rather than misread.
const SCHEMA_VERSION: i32 = 1;

/// The advisory lock held while the schema is made: two processes starting together must not both
/// run `CREATE … IF NOT EXISTS`, which PostgreSQL does not serialise (one fails on its catalogue).
const SCHEMA_LOCK: i64 = 0x7473_6167_656e_7431;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    sha256 BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    bundle_seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    sums_sha256 BYTEA NOT NULL CHECK (length(sums_sha256) = 32),
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    chain_last BYTEA NOT NULL CHECK (length(chain_last) = 32),
    readings BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    last_reading_utc_us BIGINT NOT NULL,
    received_utc_us BIGINT NOT NULL,
    log_index BIGINT NOT NULL UNIQUE,
    receipt TEXT NOT NULL,
    UNIQUE (lab, artefact, bundle_seq)
);
CREATE INDEX IF NOT EXISTS bundles_by_reading ON bundles (lab, artefact, last_seq);
CREATE TABLE IF NOT EXISTS heartbeats (
    sha256 BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    seq BIGINT NOT NULL,
    chain BYTEA NOT NULL CHECK (length(chain) = 32),
    received_utc_us BIGINT NOT NULL,
    log_index BIGINT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    receipt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_by_lab ON heartbeats (lab, artefact, seq);
CREATE TABLE IF NOT EXISTS incidents (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    utc_us BIGINT NOT NULL,
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    sha256 BYTEA
);
CREATE TABLE IF NOT EXISTS gaps_seen (
    lab TEXT NOT NULL,
    artefact TEXT NOT NULL,
    highest BIGINT NOT NULL,
    PRIMARY KEY (lab, artefact)
);
CREATE TABLE IF NOT EXISTS tlog_entries (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
    entry BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS tlog_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    checkpoint TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_lock (id INTEGER PRIMARY KEY CHECK (id = 1));
INSERT INTO tlog_lock (id) VALUES (1) ON CONFLICT DO NOTHING;
INSERT INTO schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);
-- The log is append-only: an entry or a subtree, once written, is never changed or removed.
CREATE OR REPLACE FUNCTION tsagent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the transparency log is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END $$;
DROP TRIGGER IF EXISTS append_only ON tlog_entries;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON tlog_entries
    FOR EACH ROW EXECUTE FUNCTION tsagent_append_only();
DROP TRIGGER IF EXISTS append_only ON tlog_nodes;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON tlog_nodes
    FOR EACH ROW EXECUTE FUNCTION tsagent_append_only();
";

fn i(v: u64) -> i64 {
    // Sequence numbers and sizes stay far below 2^63; saturate rather than wrap if one did not.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn level(v: u32) -> i32 {
    // A tree of 2^63 leaves has 64 levels.
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A 32-byte hash from column `idx`.
fn hash32(row: &Row, idx: usize) -> Result<Hash32, IndexError> {
    let bytes: &[u8] = row.try_get(idx)?;
    <[u8; 32]>::try_from(bytes)
        .map(Hash32)
        .map_err(|_| IndexError::Corrupt(format!("a hash of {} bytes", bytes.len())))
}

/// An open connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Conn>,
    /// Connections open, idle or leased.
    open: usize,
}

/// The PostgreSQL index.
pub struct Postgres {
    config: tokio_postgres::Config,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// Last, so that connections are closed before their runtime goes.
    rt: Runtime,
}

/// A connection taken from the pool; it goes back when dropped, unless it broke or was left in
/// the middle of a transaction.
struct Lease<'a> {
    pg: &'a Postgres,
    /// Always `Some` until dropped.
    conn: Option<Conn>,
    reuse: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if let Ok(mut pool) = self.pg.pool.lock() {
            if self.reuse && !conn.client.is_closed() {
                pool.idle.push(conn);
            } else {
                // Dropping the client closes the connection; the server rolls back whatever
                // transaction it had open, and lets its locks go.
                pool.open = pool.open.saturating_sub(1);
            }
        }
        self.pg.freed.notify_one();
    }
}

impl Lease<'_> {
    fn conn(&mut self) -> Result<&mut Conn, IndexError> {
        self.conn
            .as_mut()
            .ok_or_else(|| IndexError::Corrupt("a connection used after its release".into()))
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, IndexError> {
        let rt = &self.pg.rt;
        let conn = self.conn()?;
        if let Some(s) = conn.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = rt.block_on(conn.client.prepare(sql))?;
        conn.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, IndexError> {
        let statement = self.statement(sql)?;
        let rt = &self.pg.rt;
        let conn = self.conn()?;
        Ok(rt.block_on(conn.client.query(&statement, params))?)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, IndexError> {
        let statement = self.statement(sql)?;
        let rt = &self.pg.rt;
        let conn = self.conn()?;
        Ok(rt.block_on(conn.client.query_opt(&statement, params))?)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, IndexError> {
        let statement = self.statement(sql)?;
        let rt = &self.pg.rt;
        let conn = self.conn()?;
        Ok(rt.block_on(conn.client.execute(&statement, params))?)
    }

    /// Statements without parameters, in the simple protocol (BEGIN, COMMIT, the schema).
    fn batch(&mut self, sql: &str) -> Result<(), IndexError> {
        let rt = &self.pg.rt;
        let conn = self.conn()?;
        Ok(rt.block_on(conn.client.batch_execute(sql))?)
    }
}

impl Postgres {
    /// Connects to the database `config` names, making the schema if it is not there.
    ///
    /// Without a password in the URL, `PGPASSWORD` from the environment is used, so that the
    /// config file need not hold one.
    pub fn open(config: &tokio_postgres::Config) -> Result<Self, IndexError> {
        let mut config = config.clone();
        if config.get_password().is_none()
            && let Some(password) = std::env::var_os("PGPASSWORD")
        {
            config.password(password.as_encoded_bytes());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tsagent-coordinator");
        }
        let pg = Self {
            config,
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            rt: Runtime::new("tsagent-index").map_err(IndexError::Runtime)?,
        };
        {
            let mut lease = pg.lease()?;
            lease.batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA} COMMIT;"
            ))?;
            let row = lease.query_opt("SELECT MAX(version) FROM schema_version", &[])?;
            let version: Option<i32> = row.map(|r| r.try_get(0)).transpose()?.flatten();
            if version.is_some_and(|v| v > SCHEMA_VERSION) {
                return Err(IndexError::Corrupt(format!(
                    "the index was made by a newer tsagent (schema {}, this one knows {SCHEMA_VERSION})",
                    version.unwrap_or_default()
                )));
            }
        }
        Ok(pg)
    }

    fn connect(&self) -> Result<Conn, IndexError> {
        let (client, connection) = self.rt.block_on(self.config.connect(NoTls))?;
        self.rt.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("a connection to the index ended: {e}");
            }
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// A connection: an idle one, a new one while fewer than [`MAX_CONNECTIONS`] are open, or
    /// the first to come free.
    fn lease(&self) -> Result<Lease<'_>, IndexError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut pool = self.pool.lock().map_err(|_| IndexError::Poisoned)?;
        loop {
            while let Some(conn) = pool.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(Lease {
                        pg: self,
                        conn: Some(conn),
                        reuse: true,
                    });
                }
                // The server restarted or dropped it: forget it and try the next.
                pool.open = pool.open.saturating_sub(1);
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return match self.connect() {
                    Ok(conn) => Ok(Lease {
                        pg: self,
                        conn: Some(conn),
                        reuse: true,
                    }),
                    Err(e) => {
                        if let Ok(mut pool) = self.pool.lock() {
                            pool.open = pool.open.saturating_sub(1);
                        }
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IndexError::Busy(CHECKOUT_TIMEOUT));
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .map_err(|_| IndexError::Poisoned)?
                .0;
        }
    }
}

/// A transaction on [`Postgres`], on one leased connection.
struct PgTx<'a> {
    lease: Lease<'a>,
    done: bool,
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Closing the connection rolls back without waiting on the server here, so a
            // transaction may be given up anywhere, even where blocking is not allowed.
            self.lease.reuse = false;
        }
    }
}

impl Tx for PgTx<'_> {
    fn lock_log(&mut self) -> Result<u64, IndexError> {
        // Two statements: in READ COMMITTED a statement's snapshot is taken when it starts, so
        // a size read in the statement that waited for the lock could miss the entry its holder
        // just committed.
        if self
            .lease
            .query_opt("SELECT id FROM tlog_lock WHERE id = 1 FOR UPDATE", &[])?
            .is_none()
        {
            return Err(IndexError::Corrupt("the log's lock row is missing".into()));
        }
        let row = self
            .lease
            .query_opt("SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_entries", &[])?;
        Ok(u(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0)))
    }

    fn head(&mut self, lab: &str, artefact: &str) -> Result<Option<Head>, IndexError> {
        let row = self.lease.query_opt(
            "SELECT bundle_seq, sums_sha256, last_seq, chain_last FROM bundles
             WHERE lab = $1 AND artefact = $2 ORDER BY bundle_seq DESC LIMIT 1",
            &[&lab, &artefact],
        )?;
        row.map(|r| {
            Ok(Head {
                bundle_seq: u(r.try_get(0)?),
                sums_sha256: hash32(&r, 1)?,
                last_seq: u(r.try_get(2)?),
                chain_last: hash32(&r, 3)?,
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
        let row = self.lease.query_opt(
            "SELECT sha256, receipt FROM bundles
             WHERE lab = $1 AND artefact = $2 AND bundle_seq = $3",
            &[&lab, &artefact, &i(seq)],
        )?;
        row.map(|r| Ok((hash32(&r, 0)?, r.try_get(1)?))).transpose()
    }

    fn bundle_covering(
        &mut self,
        lab: &str,
        artefact: &str,
        seq: u64,
    ) -> Result<Option<(Hash32, u64, Hash32)>, IndexError> {
        let row = self.lease.query_opt(
            "SELECT sha256, last_seq, chain_last FROM bundles
             WHERE lab = $1 AND artefact = $2 AND first_seq <= $3 AND last_seq >= $3",
            &[&lab, &artefact, &i(seq)],
        )?;
        row.map(|r| Ok((hash32(&r, 0)?, u(r.try_get(1)?), hash32(&r, 2)?)))
            .transpose()
    }

    fn heartbeats_between(
        &mut self,
        lab: &str,
        artefact: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<(u64, Hash32)>, IndexError> {
        let rows = self.lease.query(
            "SELECT seq, chain FROM heartbeats
             WHERE lab = $1 AND artefact = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq",
            &[&lab, &artefact, &i(first), &i(last)],
        )?;
        rows.iter()
            .map(|r| Ok((u(r.try_get(0)?), hash32(r, 1)?)))
            .collect()
    }

    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, IndexError> {
        subtree_in(&mut self.lease, level, index)
    }

    fn append_entry(
        &mut self,
        index: u64,
        entry: &[u8],
        nodes: &[(u32, u64, Hash)],
    ) -> Result<(), IndexError> {
        self.lease.execute(
            "INSERT INTO tlog_entries (idx, entry) VALUES ($1, $2)",
            &[&i(index), &entry],
        )?;
        for (l, idx, hash) in nodes {
            self.lease.execute(
                "INSERT INTO tlog_nodes (level, idx, hash) VALUES ($1, $2, $3)",
                &[&level(*l), &i(*idx), &&hash[..]],
            )?;
        }
        Ok(())
    }

    fn set_checkpoint(&mut self, size: u64, signed: &SignedCheckpoint) -> Result<(), IndexError> {
        self.lease.execute(
            "INSERT INTO tlog_checkpoint (id, size, checkpoint, signature) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET size = excluded.size,
                 checkpoint = excluded.checkpoint, signature = excluded.signature",
            &[&i(size), &signed.checkpoint, &signed.signature],
        )?;
        Ok(())
    }

    fn insert_bundle(&mut self, b: &BundleRow) -> Result<(), IndexError> {
        self.lease.execute(
            "INSERT INTO bundles (sha256, lab, artefact, bundle_seq, name, sums_sha256, first_seq,
                 last_seq, chain_last, readings, bytes, received_utc_us, log_index, receipt,
                 last_reading_utc_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &&b.sha256.0[..],
                &b.lab,
                &b.artefact,
                &i(b.bundle_seq),
                &b.name,
                &&b.sums_sha256.0[..],
                &i(b.first_seq),
                &i(b.last_seq),
                &&b.chain_last.0[..],
                &i(b.readings),
                &i(b.bytes),
                &b.received_utc_us,
                &i(b.log_index),
                &b.receipt,
                &b.last_reading_utc_us,
            ],
        )?;
        Ok(())
    }

    fn set_receipt(&mut self, sha256: &Hash32, receipt: &str) -> Result<(), IndexError> {
        let n = self.lease.execute(
            "UPDATE bundles SET receipt = $2 WHERE sha256 = $1",
            &[&&sha256.0[..], &receipt],
        )?;
        if n != 1 {
            return Err(IndexError::Corrupt(format!(
                "bundle {sha256} is not in the index to take its receipt"
            )));
        }
        Ok(())
    }

    fn insert_heartbeat(&mut self, h: &HeartbeatRow) -> Result<(), IndexError> {
        self.lease.execute(
            "INSERT INTO heartbeats (sha256, lab, artefact, seq, chain, received_utc_us, log_index,
                 text, receipt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &&h.sha256.0[..],
                &h.lab,
                &h.artefact,
                &i(h.seq),
                &&h.chain.0[..],
                &h.received_utc_us,
                &i(h.log_index),
                &h.text,
                &h.receipt,
            ],
        )?;
        Ok(())
    }

    fn insert_incident(&mut self, n: &Incident) -> Result<(), IndexError> {
        let sha = n.sha256.as_ref().map(|h| &h.0[..]);
        self.lease.execute(
            "INSERT INTO incidents (utc_us, lab, artefact, kind, detail, sha256)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&n.utc_us, &n.lab, &n.artefact, &n.kind, &n.detail, &sha],
        )?;
        Ok(())
    }

    fn note_gap(&mut self, lab: &str, artefact: &str, found: u64) -> Result<(), IndexError> {
        self.lease.execute(
            "INSERT INTO gaps_seen (lab, artefact, highest) VALUES ($1, $2, $3)
             ON CONFLICT (lab, artefact)
             DO UPDATE SET highest = GREATEST(gaps_seen.highest, excluded.highest)",
            &[&lab, &artefact, &i(found)],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), IndexError> {
        self.lease.batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

fn subtree_in(lease: &mut Lease<'_>, level_: u32, index: u64) -> Result<Hash, IndexError> {
    let row = lease.query_opt(
        "SELECT hash FROM tlog_nodes WHERE level = $1 AND idx = $2",
        &[&level(level_), &i(index)],
    )?;
    let row = row.ok_or_else(|| {
        IndexError::Corrupt(format!(
            "the log has no subtree at level {level_}, index {index}"
        ))
    })?;
    Ok(hash32(&row, 0)?.0)
}

fn bundle_row(r: &Row) -> Result<BundleRow, IndexError> {
    Ok(BundleRow {
        sha256: hash32(r, 0)?,
        lab: r.try_get(1)?,
        artefact: r.try_get(2)?,
        bundle_seq: u(r.try_get(3)?),
        name: r.try_get(4)?,
        sums_sha256: hash32(r, 5)?,
        first_seq: u(r.try_get(6)?),
        last_seq: u(r.try_get(7)?),
        chain_last: hash32(r, 8)?,
        readings: u(r.try_get(9)?),
        bytes: u(r.try_get(10)?),
        received_utc_us: r.try_get(11)?,
        log_index: u(r.try_get(12)?),
        receipt: r.try_get(13)?,
        last_reading_utc_us: r.try_get(14)?,
    })
}

impl Index for Postgres {
    fn begin(&self) -> Result<Box<dyn Tx + '_>, IndexError> {
        let mut lease = self.lease()?;
        lease.batch("BEGIN")?;
        Ok(Box::new(PgTx { lease, done: false }))
    }

    fn bundle_receipt(&self, sha256: &Hash32) -> Result<Option<(String, String)>, IndexError> {
        let row = self.lease()?.query_opt(
            "SELECT name, receipt FROM bundles WHERE sha256 = $1",
            &[&&sha256.0[..]],
        )?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    fn heartbeat_receipt(&self, sha256: &Hash32) -> Result<Option<String>, IndexError> {
        let row = self.lease()?.query_opt(
            "SELECT receipt FROM heartbeats WHERE sha256 = $1",
            &[&&sha256.0[..]],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn pending_heartbeat_seqs(&self, lab: &str, artefact: &str) -> Result<Vec<u64>, IndexError> {
        let rows = self.lease()?.query(
            "SELECT DISTINCT seq FROM heartbeats WHERE lab = $1 AND artefact = $2
                 AND seq > (SELECT COALESCE(MAX(last_seq), 0) FROM bundles
                            WHERE lab = $1 AND artefact = $2)
             ORDER BY seq",
            &[&lab, &artefact],
        )?;
        rows.iter().map(|r| Ok(u(r.try_get(0)?))).collect()
    }

    fn checkpoint(&self) -> Result<Option<SignedCheckpoint>, IndexError> {
        let row = self.lease()?.query_opt(
            "SELECT checkpoint, signature FROM tlog_checkpoint WHERE id = 1",
            &[],
        )?;
        row.map(|r| {
            Ok(SignedCheckpoint {
                checkpoint: r.try_get(0)?,
                signature: r.try_get(1)?,
            })
        })
        .transpose()
    }

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, IndexError> {
        subtree_in(&mut self.lease()?, level, index)
    }

    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, IndexError> {
        let rows = self.lease()?.query(
            "SELECT entry FROM tlog_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
            &[&i(start), &i(limit)],
        )?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn bundles(&self, artefact: Option<&str>) -> Result<Vec<BundleRow>, IndexError> {
        let rows = self.lease()?.query(
            "SELECT sha256, lab, artefact, bundle_seq, name, sums_sha256, first_seq, last_seq,
                 chain_last, readings, bytes, received_utc_us, log_index, receipt,
                 last_reading_utc_us
             FROM bundles WHERE $1::TEXT IS NULL OR artefact = $1
             ORDER BY lab, artefact, bundle_seq",
            &[&artefact],
        )?;
        rows.iter().map(bundle_row).collect()
    }

    fn status(&self) -> Result<Vec<LabStatus>, IndexError> {
        let rows = self.lease()?.query(
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
            &[],
        )?;
        rows.iter()
            .map(|r| {
                let last_bundle_seq = u(r.try_get(3)?);
                // Bundles are accepted only in order, so what is missing is what lies between
                // the head and the highest number that arrived too early.
                let highest_seen: Option<i64> = r.try_get(9)?;
                let gaps = highest_seen.map_or(0, |h| u(h).saturating_sub(last_bundle_seq + 1));
                Ok(LabStatus {
                    lab: r.try_get(0)?,
                    artefact: r.try_get(1)?,
                    bundles: u(r.try_get(2)?),
                    last_bundle_seq,
                    last_seq: u(r.try_get(4)?),
                    last_bundle_utc_us: r.try_get(5)?,
                    last_heartbeat_utc_us: r.try_get(6)?,
                    last_reading_utc_us: r.try_get(7)?,
                    gaps,
                    incidents: u(r.try_get(8)?),
                })
            })
            .collect()
    }

    fn incidents(&self) -> Result<Vec<Incident>, IndexError> {
        let rows = self.lease()?.query(
            "SELECT utc_us, lab, artefact, kind, detail, sha256 FROM incidents ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                let sha: Option<&[u8]> = r.try_get(5)?;
                Ok(Incident {
                    utc_us: r.try_get(0)?,
                    lab: r.try_get(1)?,
                    artefact: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    detail: r.try_get(4)?,
                    sha256: match sha {
                        Some(_) => Some(hash32(r, 5)?),
                        None => None,
                    },
                })
            })
            .collect()
    }
}
