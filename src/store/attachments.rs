//! Files staged to ride in the next bundle: the lab's report, held in the database from
//! `tsagent report --seal` until the bundle that carries them is recorded.

use rusqlite::{Transaction, params};

use super::{Store, StoreError, to_i64};

/// A file staged for the next bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedAttachment {
    /// Its row, which the bundle's record marks sealed.
    pub id: i64,
    /// Its name in the bundle's `report/`.
    pub name: String,
    /// Its bytes, as staged.
    pub bytes: Vec<u8>,
    /// When it was staged, µs since the epoch.
    pub staged_utc_us: i64,
}

impl Store {
    /// Stages `files` (name and bytes) for the next bundle in one transaction; a name already
    /// staged and not yet sealed is replaced, so the latest report is the one that rides.
    pub fn stage_attachments(
        &mut self,
        files: &[(String, Vec<u8>)],
        utc_us: i64,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (name, bytes) in files {
            tx.execute(
                "DELETE FROM attachments WHERE name = ?1 AND bundle_seq IS NULL",
                params![name],
            )?;
            tx.execute(
                "INSERT INTO attachments (name, bytes, staged_utc_us) VALUES (?1, ?2, ?3)",
                params![name, bytes, utc_us],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The files staged and not yet sealed, by name.
    pub fn staged_attachments(&self) -> Result<Vec<StagedAttachment>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, bytes, staged_utc_us FROM attachments
             WHERE bundle_seq IS NULL ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StagedAttachment {
                id: r.get(0)?,
                name: r.get(1)?,
                bytes: r.get(2)?,
                staged_utc_us: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The names of the files bundle `seq` carried, by name.
    pub fn sealed_attachments(&self, seq: u64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM attachments WHERE bundle_seq = ?1 ORDER BY name")?;
        let rows = stmt.query_map([to_i64(seq)], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Marks the staged attachments `ids` as carried by bundle `seq`, inside the transaction that
/// records it; fails if any is no longer staged (replaced or sealed meanwhile), so the record
/// never says a bundle carries a file it does not.
pub(super) fn mark_sealed(tx: &Transaction<'_>, ids: &[i64], seq: u64) -> Result<(), StoreError> {
    for id in ids {
        let changed = tx.execute(
            "UPDATE attachments SET bundle_seq = ?1 WHERE id = ?2 AND bundle_seq IS NULL",
            params![to_i64(seq), id],
        )?;
        if changed != 1 {
            return Err(StoreError::AttachmentsChanged { seq });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn staging_a_name_again_replaces_the_staged_file() {
        let (_dir, mut store) = store();
        let files = vec![
            ("report.html".to_owned(), b"<p>1".to_vec()),
            ("summary.json".to_owned(), b"{}".to_vec()),
        ];
        store.stage_attachments(&files, 10).unwrap();
        store
            .stage_attachments(&[("report.html".to_owned(), b"<p>2".to_vec())], 20)
            .unwrap();
        let staged = store.staged_attachments().unwrap();
        let names: Vec<(&str, &[u8], i64)> = staged
            .iter()
            .map(|a| (a.name.as_str(), a.bytes.as_slice(), a.staged_utc_us))
            .collect();
        assert_eq!(
            names,
            [
                ("report.html", &b"<p>2"[..], 20),
                ("summary.json", &b"{}"[..], 10)
            ]
        );
    }

    #[test]
    fn a_version_5_database_gains_the_table_and_a_sealed_row_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &super::super::schema::MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        store
            .stage_attachments(&[("report.html".to_owned(), b"<p>".to_vec())], 1)
            .unwrap();
        assert_eq!(store.staged_attachments().unwrap().len(), 1);
        drop(store);
        // A row once sealed stays as sealed, whoever writes the file.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             UPDATE attachments SET bundle_seq = 1;",
        )
        .unwrap();
        for sql in [
            "UPDATE attachments SET bytes = x'00'",
            "UPDATE attachments SET bundle_seq = NULL",
            "DELETE FROM attachments",
        ] {
            let e = conn.execute_batch(sql).unwrap_err();
            assert!(e.to_string().contains("stays as sealed"), "{sql}: {e}");
        }
        drop(conn);
        let store = Store::open(&path).unwrap();
        assert!(store.staged_attachments().unwrap().is_empty());
        assert_eq!(store.sealed_attachments(1).unwrap(), ["report.html"]);
    }
}
