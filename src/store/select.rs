//! The readings an analysis works on: `tsagent analyze --db` and the lab's report select them
//! here, by the same [`ReadingFilter`] as `tsagent readings`, so a listing and a result made
//! with the same options are of the same rows.

use rusqlite::params;
use tsagent_bundle::chain::ReadingStatus;

use super::{ReadingFilter, Store, StoreError, to_i64, to_u64};

/// One selected reading: what a statistic or a plot needs of it, nothing of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedReading {
    /// Sequence number in the log.
    pub seq: u64,
    /// The run that took it.
    pub run: u64,
    /// The instrument's name in the config.
    pub instrument: String,
    /// The quantity (e.g. `voltage`).
    pub quantity: String,
    /// Its unit as the profile states it (e.g. `V`).
    pub unit: String,
    /// When it was taken, UTC microseconds since the Unix epoch.
    pub utc_us: i64,
    /// The value; `None` unless `status` is valid.
    pub value: Option<f64>,
    /// Valid, overload or not-a-number: only valid readings enter statistics.
    pub status: ReadingStatus,
}

impl Store {
    /// The readings `filter` selects, in sequence order, whatever their status (the caller
    /// counts and leaves out the ones that are not valid, and says so). Scans the table, which has
    /// no index by time (each would cost every reading's commit a page write): a year of readings
    /// once a minute is about half a million rows, read in well under a second.
    pub fn select_readings(
        &self,
        filter: &ReadingFilter<'_>,
    ) -> Result<Vec<SelectedReading>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.seq, r.run_id, i.name, r.quantity, r.unit, r.utc_us, r.value, r.status
             FROM readings r JOIN runs u ON u.id = r.run_id
                JOIN instruments i ON i.id = r.instrument_id
             WHERE r.utc_us >= ?1 AND r.utc_us <= ?2
                AND (?3 IS NULL OR r.run_id = ?3)
                AND (?4 IS NULL OR i.name = ?4)
                AND (?5 IS NULL OR r.quantity = ?5)
                AND (?6 IS NULL OR u.sequence = ?6)
                AND (?7 = 0 OR u.official = 1)
             ORDER BY r.seq",
        )?;
        let mut rows = stmt.query(params![
            filter.since_utc_us.unwrap_or(i64::MIN),
            filter.until_utc_us.unwrap_or(i64::MAX),
            filter.run_id.map(to_i64),
            filter.instrument,
            filter.quantity,
            filter.sequence,
            filter.official,
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let status: String = row.get(7)?;
            out.push(SelectedReading {
                seq: to_u64(seq),
                run: to_u64(row.get(1)?),
                instrument: row.get(2)?,
                quantity: row.get(3)?,
                unit: row.get(4)?,
                utc_us: row.get(5)?,
                value: row.get(6)?,
                status: ReadingStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                    table: "readings",
                    reason: format!("reading {seq} has unknown status `{status}`"),
                })?,
            });
        }
        Ok(out)
    }
}
