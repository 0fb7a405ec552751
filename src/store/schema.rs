//! Schema migrations, versioned by `PRAGMA user_version`. Each entry moves the schema up by one and
//! runs in one transaction with the version bump, so a crash leaves the old or the new schema.

/// The migrations in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

const V1: &str = r#"
CREATE TABLE instruments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    resource TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    serial TEXT NOT NULL,
    firmware TEXT NOT NULL,
    first_seen_utc_us INTEGER NOT NULL,
    UNIQUE (name, resource, manufacturer, model, serial, firmware)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    sequence TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule', 'demo')),
    operator TEXT,
    started_utc_us INTEGER NOT NULL,
    ended_utc_us INTEGER,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'interrupted', 'stopped')),
    message TEXT,
    -- Which process runs it, so start-up recovery can tell a crashed run from a live one.
    pid INTEGER NOT NULL,
    boot_id TEXT NOT NULL
);

CREATE TABLE readings (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    instrument_id INTEGER NOT NULL REFERENCES instruments(id),
    quantity TEXT NOT NULL,
    value REAL,
    -- Comparisons, not `IN (…)`: SQLite builds a list of three or more values into a temporary
    -- index at every statement run, which doubled the cost of storing a reading (BENCHMARKS.md,
    -- P2). The meaning is the same, so databases made with the `IN` form stay valid.
    status TEXT NOT NULL CHECK (status = 'valid' OR status = 'overload' OR status = 'nan'),
    unit TEXT NOT NULL,
    raw TEXT NOT NULL,
    utc_us INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    chain BLOB NOT NULL CHECK (length(chain) = 32)
);
-- No secondary indexes: each would add a page write to every reading's durable commit. Listing by
-- time scans in sequence order (a year of one-a-minute readings is ~0.5 M rows); a run's readings
-- are found by its sequence range.

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    utc_us INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    instrument_id INTEGER REFERENCES instruments(id),
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- The chain value after the last reading, updated in the same transaction as each reading, so that
-- deleting the newest readings shows even though the remaining chain is intact.
CREATE TABLE chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    chain BLOB NOT NULL CHECK (length(chain) = 32)
);
INSERT INTO chain_head (id, seq, chain) VALUES (1, 0, zeroblob(32));

-- Sealed bundles, with the archive itself: the seal is committed before the file is written, so
-- the file can always be written again from here.
CREATE TABLE bundles (
    seq INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    first_reading INTEGER NOT NULL,
    last_reading INTEGER NOT NULL,
    chain_last BLOB NOT NULL CHECK (length(chain_last) = 32),
    first_event INTEGER,
    last_event INTEGER,
    sums_sha256 BLOB NOT NULL CHECK (length(sums_sha256) = 32),
    created_utc_us INTEGER NOT NULL,
    tar BLOB NOT NULL
);

-- Readings, events and bundles are append-only. The triggers stop accidents; the chain shows a
-- deliberate edit made after dropping them.
CREATE TRIGGER readings_no_update BEFORE UPDATE ON readings
    BEGIN SELECT RAISE(ABORT, 'readings are append-only'); END;
CREATE TRIGGER readings_no_delete BEFORE DELETE ON readings
    BEGIN SELECT RAISE(ABORT, 'readings are append-only'); END;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER bundles_no_update BEFORE UPDATE ON bundles
    BEGIN SELECT RAISE(ABORT, 'bundles are append-only'); END;
CREATE TRIGGER bundles_no_delete BEFORE DELETE ON bundles
    BEGIN SELECT RAISE(ABORT, 'bundles are append-only'); END;
"#;

/// The lab's signing key, by fingerprint, recorded at `keygen` or the first seal: sealing refuses
/// another key (a bundle signed by it would fail at the pilot for good) until `--new-key` rotates
/// it, which also stores a `key_rotated` event.
const V2: &str = r#"
CREATE TABLE signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    recorded_utc_us INTEGER NOT NULL
);
"#;

/// Whether a run is an official measurement of the comparison (a `[[sequence]]` with
/// `official = true`, admitted through the custody gate): its readings are the official ones.
/// Runs from before custody was recorded are not official.
const V3: &str = r#"
ALTER TABLE runs ADD COLUMN official INTEGER NOT NULL DEFAULT 0 CHECK (official IN (0, 1));
"#;

/// A run can be `aborted` (through the control API). SQLite cannot change a CHECK constraint, so
/// `runs` is rebuilt, as SQLite's documentation lays out: the migration runs with foreign keys off
/// and checks them before it commits (`Store::migrate`).
const V4: &str = r#"
CREATE TABLE runs_v4 (
    id INTEGER PRIMARY KEY,
    sequence TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule', 'demo')),
    operator TEXT,
    started_utc_us INTEGER NOT NULL,
    ended_utc_us INTEGER,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'interrupted', 'stopped', 'aborted')),
    message TEXT,
    pid INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    official INTEGER NOT NULL DEFAULT 0 CHECK (official IN (0, 1))
);
INSERT INTO runs_v4 (id, sequence, trigger, operator, started_utc_us, ended_utc_us, status,
                     message, pid, boot_id, official)
    SELECT id, sequence, trigger, operator, started_utc_us, ended_utc_us, status, message, pid,
           boot_id, official
    FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
"#;

/// Delivery to the coordinator. A bundle's row stays append-only; what happens to it on the way
/// (attempts, the signed receipt, a refusal that holds the queue) is kept beside it. No row means
/// not tried yet. `tlog_seen` is the newest log checkpoint the lab verified: a later one must be
/// at least as large and consistent with it.
const V5: &str = r#"
CREATE TABLE deliveries (
    bundle_seq INTEGER PRIMARY KEY REFERENCES bundles (seq),
    state TEXT NOT NULL CHECK (state IN ('retrying', 'sent', 'held')),
    attempts INTEGER NOT NULL,
    next_attempt_utc_us INTEGER,
    last_error TEXT,
    sent_utc_us INTEGER,
    receipt TEXT,
    log_index INTEGER,
    CHECK ((state = 'sent') = (receipt IS NOT NULL))
);
CREATE TRIGGER deliveries_sent_is_final BEFORE UPDATE ON deliveries
    WHEN OLD.state = 'sent'
    BEGIN SELECT RAISE(ABORT, 'a delivered bundle stays delivered'); END;
CREATE TABLE tlog_seen (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    root BLOB NOT NULL CHECK (length(root) = 32),
    checkpoint TEXT NOT NULL,
    signature TEXT NOT NULL,
    seen_utc_us INTEGER NOT NULL
);
"#;

/// Files staged to ride in the next bundle (`tsagent report --seal`): the lab's report, held here
/// so the bundle carries exactly the bytes staged, whatever happens to the report folder. A name
/// is staged at most once at a time (staging it again replaces the staged one); `bundle_seq` is
/// set in the transaction that records the bundle carrying it, and from then on the row is final.
const V6: &str = r#"
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    bytes BLOB NOT NULL,
    staged_utc_us INTEGER NOT NULL,
    bundle_seq INTEGER REFERENCES bundles (seq)
);
CREATE UNIQUE INDEX attachments_staged_name ON attachments (name) WHERE bundle_seq IS NULL;
CREATE TRIGGER attachments_sealed_is_final BEFORE UPDATE ON attachments
    WHEN OLD.bundle_seq IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a sealed attachment stays as sealed'); END;
CREATE TRIGGER attachments_sealed_no_delete BEFORE DELETE ON attachments
    WHEN OLD.bundle_seq IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a sealed attachment stays as sealed'); END;
"#;
