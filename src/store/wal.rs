//! The write-ahead log's file, sized before a run so that each reading's commit overwrites it in
//! place.
//!
//! Why: a commit that makes the WAL file longer changes its size, so `fdatasync` must also commit
//! the file system's journal; a commit inside the file's length flushes only the data. Measured
//! on the CI machine, one row per durable commit, WAL growing against WAL reused: 280–600 µs
//! against 175–210 µs a commit (BENCHMARKS.md, P1 against the peers). SQLite grows the file one
//! frame at a time until its first checkpoint (1,000 frames) and deletes it when the last
//! connection closes, so without this every `measure` would pay the slow commits for its first
//! few hundred readings.
//!
//! Why it is safe: the zeros go beyond the file's end, under SQLite's WAL write lock (the caller
//! holds an IMMEDIATE transaction), so no frame is touched and no writer can race. SQLite reads a
//! WAL only up to the last frame of its current salt and checksum chain, so the zeros are never
//! taken for frames — the same as the stale frames it leaves in a reused WAL.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rusqlite::Connection;

/// WAL file header, bytes.
const HEADER: u64 = 32;
/// Header of each frame, bytes.
const FRAME_HEADER: u64 = 24;
/// Frames beyond the auto-checkpoint size: the commit that crosses it is written whole before the
/// checkpoint runs.
const SPARE_FRAMES: u64 = 64;
/// Zeros written per call.
const CHUNK: usize = 64 * 1024;

/// Extends `db`'s WAL file with zeros to hold a full checkpoint cycle, and syncs it, if it is
/// shorter. `conn` must be inside a write transaction. Returns the bytes added.
///
/// Durability does not depend on it (SQLite ignores what lies past its last frame), so the caller
/// may carry on if it fails, e.g. on a full disk, where the next commit reports the real error.
pub(crate) fn presize(conn: &Connection, db: &Path) -> std::io::Result<u64> {
    let pragma = |name: &str| -> std::io::Result<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|v| u64::try_from(v).unwrap_or(0))
            .map_err(std::io::Error::other)
    };
    let page = pragma("page_size")?;
    let frames = pragma("wal_autocheckpoint")? + SPARE_FRAMES;
    let want = HEADER + frames * (FRAME_HEADER + page);
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    let file = match OpenOptions::new().write(true).open(&name) {
        Ok(f) => f,
        // Not made yet (SQLite opens it lazily): nothing to extend.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len >= want {
        return Ok(0);
    }
    // Real zeros, not `set_len` or fallocate: a hole or an unwritten extent would still change
    // the file system's metadata at the first commit into it.
    let zeros = vec![0u8; CHUNK];
    let mut at = len;
    while at < want {
        let n = usize::try_from(want - at).map_or(CHUNK, |left| left.min(CHUNK));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_data()?;
    Ok(want - len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_len(db: &Path) -> u64 {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
    }

    fn open(db: &Path) -> Connection {
        let conn = Connection::open(db).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x)")
            .unwrap();
        conn
    }

    #[test]
    fn grows_the_wal_to_a_checkpoint_cycle_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let mut conn = open(&db);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let added = presize(&tx, &db).unwrap();
        let want = HEADER + (1000 + SPARE_FRAMES) * (FRAME_HEADER + 4096);
        assert_eq!(wal_len(&db), want);
        assert!(added > 0 && added <= want);
        assert_eq!(presize(&tx, &db).unwrap(), 0, "a second call adds nothing");
        tx.commit().unwrap();
    }

    #[test]
    fn the_zeros_are_never_read_as_frames() {
        // Committed rows survive a presize between commits and a reopen (recovery reads the WAL
        // from its header), and new commits land inside the presized file.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let mut conn = open(&db);
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        presize(&tx, &db).unwrap();
        tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
        tx.commit().unwrap();
        let sized = wal_len(&db);
        for i in 3..=50 {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        assert_eq!(
            wal_len(&db),
            sized,
            "commits overwrite, they do not grow the file"
        );
        // As after a crash: the files copied while the connection is open, so the copy has only
        // the database and the WAL, and SQLite must recover the log from the file.
        let copy = dir.path().join("b.db");
        std::fs::copy(&db, &copy).unwrap();
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let mut copy_wal = copy.as_os_str().to_owned();
        copy_wal.push("-wal");
        std::fs::copy(&wal, &copy_wal).unwrap();
        let rows: Vec<i64> = Connection::open(&copy)
            .unwrap()
            .prepare("SELECT x FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, (1..=50).collect::<Vec<i64>>());
        drop(conn);
    }

    #[test]
    fn a_missing_wal_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        // Rollback journal mode: no WAL file exists.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        assert_eq!(presize(&conn, &db).unwrap(), 0);
        assert_eq!(wal_len(&db), 0);
    }
}
