//! What sealing needs of the log, streamed: the readings and events of the next bundle one row at
//! a time (so a backlog of any length seals in constant memory), the archive written into its row
//! through SQLite's incremental BLOB I/O and read back the same way, and the lab's signing key
//! recorded by fingerprint.

use std::io::{self, Read, Write};

use rusqlite::blob::ZeroBlob;
use rusqlite::types::ValueRef;
use rusqlite::{MAIN_DB, OptionalExtension, Row, TransactionBehavior, params};

use super::{
    EventRow, InstrumentRow, MAX_BUNDLE_EVENTS, MAX_BUNDLE_READINGS, SealRecord, Store, StoreError,
    blob32, head, insert_event, to_i64, to_u64,
};
use crate::clock::Timestamp;
use crate::store::NewEvent;
use tsagent_bundle::chain::{GENESIS, ReadingRef, ReadingStatus};
use tsagent_bundle::event::{Event, KeyRotated};
use tsagent_bundle::records::ReadingRow;

/// Which pending readings and events the next bundle takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealWindow {
    /// Most readings in one bundle.
    pub max_readings: usize,
    /// Most events in one bundle.
    pub max_events: usize,
    /// Also take the readings and events of runs still `running`. Off by default: sealing in the
    /// middle of a run would split it across bundles.
    pub include_running: bool,
}

impl SealWindow {
    /// [`MAX_BUNDLE_READINGS`], [`MAX_BUNDLE_EVENTS`], ended runs only.
    pub const DEFAULT: Self = Self {
        max_readings: MAX_BUNDLE_READINGS,
        max_events: MAX_BUNDLE_EVENTS,
        include_running: false,
    };
}

/// Where the next bundle starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStart {
    /// Its number.
    pub bundle_seq: u64,
    /// SHA-256 of the previous bundle's SHA256SUMS.
    pub prev_sums_sha256: Option<[u8; 32]>,
    /// Chain value before its first reading.
    pub chain_prev: [u8; 32],
}

/// What a scan put into the next bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// First and last reading.
    pub readings: (u64, u64),
    /// Chain value after the last reading.
    pub chain_last: [u8; 32],
    /// First and last event, if any.
    pub events: Option<(u64, u64)>,
    /// How many events.
    pub event_count: usize,
}

/// The outcome of [`Store::scan_for_seal`].
#[derive(Debug)]
pub enum Scan<S> {
    /// Readings were waiting: the sink that took them, and what it took.
    Bundle(S, Scanned),
    /// Nothing to seal now.
    Nothing {
        /// The run whose readings wait for it to end, if any are waiting.
        waiting_for_run: Option<u64>,
    },
}

/// The pending readings with their run's sequence name and status, and instrument name.
const SEAL_READINGS: &str =
    "SELECT r.seq, r.run_id, r.instrument_id, r.quantity, r.value, r.status,
        r.unit, r.raw, r.utc_us, r.mono_ns, r.boot_id, r.chain, u.sequence, i.name, u.status
    FROM readings r JOIN runs u ON u.id = r.run_id JOIN instruments i ON i.id = r.instrument_id
    WHERE r.seq > ?1 ORDER BY r.seq";

/// The pending events with their run's status.
const SEAL_EVENTS: &str = "SELECT e.id, e.utc_us, e.run_id, i.name, e.kind, e.detail, u.status
    FROM events e LEFT JOIN instruments i ON i.id = e.instrument_id LEFT JOIN runs u ON u.id = e.run_id
    WHERE e.id > ?1 ORDER BY e.id";

fn text<'r>(r: &'r Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    r.get_ref(i)?.as_str().map_err(|e| {
        StoreError::Sql(rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })
}

/// A pending reading, borrowed from its row.
fn reading_view<'r>(r: &'r Row<'_>) -> Result<ReadingRow<'r>, StoreError> {
    let seq: i64 = r.get(0)?;
    let status = text(r, 5)?;
    let chain = match r.get_ref(11)? {
        ValueRef::Blob(b) => blob32("readings", b)?,
        _ => blob32("readings", &[])?,
    };
    Ok(ReadingRow {
        record: ReadingRef {
            seq: to_u64(seq),
            run_id: to_u64(r.get(1)?),
            instrument_id: to_u64(r.get(2)?),
            quantity: text(r, 3)?,
            value: r.get(4)?,
            status: ReadingStatus::parse(status).ok_or_else(|| StoreError::Corrupt {
                table: "readings",
                reason: format!("reading {seq} has unknown status `{status}`"),
            })?,
            unit: text(r, 6)?,
            raw: text(r, 7)?,
            utc_us: r.get(8)?,
            mono_ns: to_u64(r.get(9)?),
            boot_id: text(r, 10)?,
        },
        chain,
        sequence: text(r, 12)?,
        instrument: text(r, 13)?,
    })
}

/// A sealed bundle's name and the length of its stored archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    /// Bundle number.
    pub seq: u64,
    /// Name (file name without `.tar`).
    pub name: String,
    /// Length of the archive stored with it.
    pub archive_len: u64,
}

/// How the lab's signing key compares with the one recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// None was recorded; this one now is.
    Recorded,
    /// The recorded key.
    Same,
    /// Another key was recorded: its fingerprint.
    Different(String),
}

impl Store {
    /// Streams what the next bundle takes: where it starts and the instruments that readings may
    /// name go to `begin` (called once, at the first reading), then each reading and each event, in
    /// order, to `reading` and `event`. Everything is read in one transaction, a consistent
    /// snapshot, and no more than one row is held at a time.
    ///
    /// Readings are taken from the first unsealed one on, contiguous, up to `window.max_readings`,
    /// and (unless `window.include_running`) only while their run has ended: the first reading of
    /// a run still `running` ends the bundle, so that a run is never split by a seal made during
    /// it. Events are taken likewise, up to `window.max_events`. Sequence numbers must follow on
    /// without a hole and, when the bundle reaches the end of the log, the last reading must be the
    /// one the chain head records: a log altered that way is refused, never signed.
    pub fn scan_for_seal<S, E: From<StoreError>>(
        &self,
        window: SealWindow,
        begin: impl FnOnce(&SealStart, Vec<InstrumentRow>) -> Result<S, E>,
        mut reading: impl FnMut(&mut S, &ReadingRow<'_>) -> Result<(), E>,
        mut event: impl FnMut(&mut S, &EventRow) -> Result<(), E>,
    ) -> Result<Scan<S>, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::from)?;
        let last = tx
            .query_row(
                "SELECT seq, sums_sha256, chain_last, last_reading FROM bundles ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        let (start, after_reading) = match last {
            None => (
                SealStart {
                    bundle_seq: 1,
                    prev_sums_sha256: None,
                    chain_prev: GENESIS,
                },
                0,
            ),
            Some((seq, sums, chain_last, last_reading)) => (
                SealStart {
                    bundle_seq: to_u64(seq) + 1,
                    prev_sums_sha256: Some(blob32("bundles", &sums)?),
                    chain_prev: blob32("bundles", &chain_last)?,
                },
                last_reading,
            ),
        };
        // A bundle may hold no events, so the last sealed event is the highest any bundle took.
        let after_event: i64 = tx
            .query_row(
                "SELECT coalesce(max(last_event), 0) FROM bundles",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::from)?;

        let mut sink: Option<S> = None;
        let mut begin = Some(begin);
        let mut expected = to_u64(after_reading) + 1;
        let mut chain = start.chain_prev;
        let mut count = 0usize;
        let mut canonical = Vec::new();
        let mut reached_end = false;
        let mut waiting_for_run = None;
        {
            let mut stmt = tx.prepare(SEAL_READINGS).map_err(StoreError::from)?;
            let mut rows = stmt.query([after_reading]).map_err(StoreError::from)?;
            while count < window.max_readings {
                let Some(row) = rows.next().map_err(StoreError::from)? else {
                    reached_end = true;
                    break;
                };
                if !window.include_running && text(row, 14)? == "running" {
                    waiting_for_run = Some(to_u64(row.get(1).map_err(StoreError::from)?));
                    break;
                }
                let view = reading_view(row)?;
                // Never sign what the chain does not vouch for.
                if view.record.seq != expected
                    || view.record.chain_after_in(&chain, &mut canonical) != view.chain
                {
                    return Err(StoreError::ChainBroken { seq: expected }.into());
                }
                let s = match (&mut sink, begin.take()) {
                    (Some(s), _) => s,
                    (None, Some(begin)) => sink.insert(begin(&start, self.instruments()?)?),
                    // `begin` is only taken while there is no sink.
                    (None, None) => return Ok(Scan::Nothing { waiting_for_run }),
                };
                reading(s, &view)?;
                chain = view.chain;
                expected += 1;
                count += 1;
            }
        }
        let Some(mut sink) = sink else {
            return Ok(Scan::Nothing { waiting_for_run });
        };
        let last_reading = expected - 1;
        if reached_end {
            // The bundle reaches the end of the log: it must end where the head says it does, or
            // the newest readings were deleted and the shortened chain must not be signed.
            let (head_seq, head_chain) = head(&tx)?;
            if head_seq != last_reading || head_chain != chain {
                return Err(StoreError::Truncated {
                    last: last_reading,
                    head: head_seq,
                }
                .into());
            }
        }

        let mut events: Option<(u64, u64)> = None;
        let mut event_count = 0usize;
        {
            let mut stmt = tx.prepare(SEAL_EVENTS).map_err(StoreError::from)?;
            let mut rows = stmt.query([after_event]).map_err(StoreError::from)?;
            while event_count < window.max_events {
                let Some(r) = rows.next().map_err(StoreError::from)? else {
                    break;
                };
                let status: Option<String> = r.get(6).map_err(StoreError::from)?;
                if !window.include_running && status.as_deref() == Some("running") {
                    break;
                }
                let detail = text(r, 5)?;
                let row = EventRow {
                    id: to_u64(r.get(0).map_err(StoreError::from)?),
                    utc_us: r.get(1).map_err(StoreError::from)?,
                    run_id: r
                        .get::<_, Option<i64>>(2)
                        .map_err(StoreError::from)?
                        .map(to_u64),
                    instrument: r.get(3).map_err(StoreError::from)?,
                    kind: r.get(4).map_err(StoreError::from)?,
                    detail: serde_json::from_str(detail)
                        .unwrap_or_else(|_| serde_json::Value::String(detail.to_owned())),
                };
                event(&mut sink, &row)?;
                events = Some((events.map_or(row.id, |e| e.0), row.id));
                event_count += 1;
            }
        }
        Ok(Scan::Bundle(
            sink,
            Scanned {
                readings: (to_u64(after_reading) + 1, last_reading),
                chain_last: chain,
                events,
                event_count,
            },
        ))
    }

    /// Every recorded instrument identity (one row per distinct identity: a handful per lab).
    pub fn instruments(&self) -> Result<Vec<InstrumentRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, resource, manufacturer, model, serial, firmware FROM instruments ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(InstrumentRow {
                id: to_u64(r.get(0)?),
                name: r.get(1)?,
                resource: r.get(2)?,
                manufacturer: r.get(3)?,
                model: r.get(4)?,
                serial: r.get(5)?,
                firmware: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Commits a seal whose archive, `archive_len` bytes, `write` streams into the new row (room
    /// for it is reserved first, then filled through incremental BLOB I/O, so the archive is never
    /// held whole). Fails with [`StoreError::SealConflict`] if that bundle number already exists;
    /// nothing is committed unless `write` succeeds and fills the row exactly.
    pub fn record_seal_streamed<E: From<StoreError>>(
        &mut self,
        seal: &SealRecord<'_>,
        archive_len: u64,
        write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    ) -> Result<(), E> {
        let too_large = || StoreError::Corrupt {
            table: "bundles",
            reason: format!("an archive of {archive_len} bytes does not fit a row"),
        };
        // SQLite rows hold at most 1 GB by default; bundles are capped below that.
        if archive_len > tsagent_bundle::MAX_BUNDLE_BYTES {
            return Err(too_large().into());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let next: i64 = tx
            .query_row("SELECT coalesce(max(seq), 0) + 1 FROM bundles", [], |r| {
                r.get(0)
            })
            .map_err(StoreError::from)?;
        if to_u64(next) != seal.seq {
            return Err(StoreError::SealConflict { seq: seal.seq }.into());
        }
        tx.execute(
            "INSERT INTO bundles (seq, name, first_reading, last_reading, chain_last, first_event,
                                  last_event, sums_sha256, created_utc_us, tar)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                to_i64(seal.seq),
                seal.name,
                to_i64(seal.first_reading),
                to_i64(seal.last_reading),
                &seal.chain_last[..],
                seal.first_event.map(to_i64),
                seal.last_event.map(to_i64),
                &seal.sums_sha256[..],
                seal.created_utc_us,
                ZeroBlob(archive_len),
            ],
        )
        .map_err(StoreError::from)?;
        {
            let mut blob = tx
                .blob_open(MAIN_DB, c"bundles", c"tar", to_i64(seal.seq), false)
                .map_err(StoreError::from)?;
            let mut counted = Counted {
                inner: &mut blob,
                written: 0,
            };
            write(&mut counted)?;
            if counted.written != archive_len {
                return Err(StoreError::Corrupt {
                    table: "bundles",
                    reason: format!(
                        "{} of the archive's {archive_len} bytes were written",
                        counted.written
                    ),
                }
                .into());
            }
        }
        super::attachments::mark_sealed(&tx, seal.attachments, seal.seq)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// The newest sealed bundle's name and archive length.
    pub fn latest_bundle_info(&self) -> Result<Option<BundleInfo>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, name, length(tar) FROM bundles ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(BundleInfo {
                        seq: to_u64(r.get(0)?),
                        name: r.get(1)?,
                        archive_len: to_u64(r.get(2)?),
                    })
                },
            )
            .optional()?)
    }

    /// Reads bundle `seq`'s stored archive through `read`, streamed from its row.
    pub fn read_archive<T, E: From<StoreError>>(
        &self,
        seq: u64,
        read: impl FnOnce(&mut dyn Read) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut blob = self
            .conn
            .blob_open(MAIN_DB, c"bundles", c"tar", to_i64(seq), true)
            .map_err(StoreError::from)?;
        read(&mut blob)
    }

    /// The fingerprint of the signing key recorded for this log, if any.
    pub fn signing_key(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT fingerprint FROM signing_key WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Compares the lab's key with the one recorded, recording it if none was.
    pub fn check_signing_key(
        &mut self,
        fingerprint: &str,
        at: Timestamp,
    ) -> Result<KeyCheck, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let recorded: Option<String> = tx
            .query_row(
                "SELECT fingerprint FROM signing_key WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let check = match recorded {
            None => {
                tx.execute(
                    "INSERT INTO signing_key (id, fingerprint, recorded_utc_us) VALUES (1, ?1, ?2)",
                    params![fingerprint, at.utc_us],
                )?;
                KeyCheck::Recorded
            }
            Some(r) if r == fingerprint => KeyCheck::Same,
            Some(r) => KeyCheck::Different(r),
        };
        tx.commit()?;
        Ok(check)
    }

    /// Makes `fingerprint` the recorded key. When it replaces another, a `key_rotated` event with
    /// both fingerprints is stored in the same transaction (the next bundle carries it to the pilot)
    /// and the old fingerprint is returned.
    pub fn rotate_signing_key(
        &mut self,
        fingerprint: &str,
        at: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let recorded: Option<String> = tx
            .query_row(
                "SELECT fingerprint FROM signing_key WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if recorded.as_deref() == Some(fingerprint) {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO signing_key (id, fingerprint, recorded_utc_us) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint,
                                            recorded_utc_us = excluded.recorded_utc_us",
            params![fingerprint, at.utc_us],
        )?;
        if let Some(old) = &recorded {
            insert_event(
                &tx,
                &NewEvent::new(
                    at,
                    Event::KeyRotated(KeyRotated {
                        old_fingerprint: old.clone(),
                        new_fingerprint: fingerprint.to_owned(),
                    }),
                ),
            )?;
        }
        tx.commit()?;
        Ok(recorded)
    }
}

/// Counts what goes through, so a short archive is caught before the commit.
struct Counted<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += u64::try_from(n).unwrap_or(u64::MAX);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Identity;
    use crate::store::{NewReading, RunEnd, RunStart, RunStatus, Trigger};

    fn at(us: i64) -> Timestamp {
        Timestamp {
            utc_us: 1_795_000_000_000_000 + us,
            mono_ns: 1_000 + u64::try_from(us).unwrap(),
        }
    }

    struct Lab {
        _dir: tempfile::TempDir,
        store: Store,
        inst: u64,
    }

    fn lab() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let identity = Identity {
            manufacturer: "M".into(),
            model: "D".into(),
            serial: "1".into(),
            firmware: "1".into(),
        };
        let inst = store
            .record_instrument("dmm", "TCPIP::h::1::SOCKET", &identity, at(0))
            .unwrap();
        Lab {
            _dir: dir,
            store,
            inst,
        }
    }

    impl Lab {
        fn run(&mut self) -> u64 {
            self.store
                .begin_run(&RunStart {
                    sequence: "s",
                    sequence_sha256: [0; 32],
                    trigger: Trigger::Manual,
                    operator: None,
                    official: false,
                    at: at(0),
                    owner: (1, "boot"),
                })
                .unwrap()
        }

        fn reading(&mut self, run: u64, i: i64) {
            let event = NewEvent {
                run_id: Some(run),
                ..NewEvent::new(
                    at(i),
                    Event::RunFailed(tsagent_bundle::event::RunFailed {
                        error: format!("marker {i}"),
                    }),
                )
            };
            self.store
                .append_reading(
                    &NewReading {
                        run_id: run,
                        instrument_id: self.inst,
                        quantity: "voltage",
                        value: Some(1.0),
                        status: ReadingStatus::Valid,
                        unit: "V",
                        raw: "1",
                        at: at(i),
                        boot_id: "boot",
                    },
                    &[event],
                )
                .unwrap();
        }

        fn end(&mut self, run: u64) {
            self.store
                .end_run(
                    run,
                    &RunEnd {
                        status: RunStatus::Completed,
                        reason: None,
                        readings: 0,
                        range: None,
                        at: at(99),
                    },
                )
                .unwrap();
        }

        /// What a default seal would take now: reading range and event count, or the run waited for.
        fn scan(&self, include_running: bool) -> Result<((u64, u64), usize), Option<u64>> {
            let window = SealWindow {
                include_running,
                ..SealWindow::DEFAULT
            };
            let scan = self
                .store
                .scan_for_seal(
                    window,
                    |_, _| Ok::<_, StoreError>(()),
                    |_, _| Ok(()),
                    |_, _| Ok(()),
                )
                .unwrap();
            match scan {
                Scan::Bundle((), s) => Ok((s.readings, s.event_count)),
                Scan::Nothing { waiting_for_run } => Err(waiting_for_run),
            }
        }

        fn mark_sealed(&mut self, readings: (u64, u64), events: Option<(u64, u64)>) {
            let seq = self
                .store
                .latest_bundle_info()
                .unwrap()
                .map_or(1, |b| b.seq + 1);
            let chain = {
                let mut c = None;
                self.store
                    .visit_readings(None, |r| {
                        if r.record.seq == readings.1 {
                            c = Some(r.chain);
                        }
                        Ok::<_, StoreError>(())
                    })
                    .unwrap();
                c.unwrap()
            };
            self.store
                .record_seal(&SealRecord {
                    seq,
                    name: &format!("L-A-{seq:06}"),
                    first_reading: readings.0,
                    last_reading: readings.1,
                    chain_last: chain,
                    first_event: events.map(|e| e.0),
                    last_event: events.map(|e| e.1),
                    sums_sha256: [seq as u8; 32],
                    created_utc_us: 0,
                    tar: b"archive",
                    attachments: &[],
                })
                .unwrap();
        }
    }

    #[test]
    fn a_run_in_progress_is_not_sealed_until_it_ends() {
        let mut lab = lab();
        let run = lab.run();
        lab.reading(run, 1);
        lab.reading(run, 2);
        assert_eq!(lab.scan(false), Err(Some(run)));
        // Events: the run's start and a marker per reading, then its end once it has ended.
        assert_eq!(lab.scan(true), Ok(((1, 2), 3)));
        lab.end(run);
        assert_eq!(lab.scan(false), Ok(((1, 2), 4)));
    }

    #[test]
    fn a_bundle_stops_at_the_first_reading_of_a_run_in_progress() {
        // A manual run interleaved with a scheduled one: the ended run's readings before the
        // running run's first are sealed; the rest wait, so no run is split.
        let mut lab = lab();
        let done = lab.run();
        lab.reading(done, 1);
        let live = lab.run();
        lab.reading(live, 2);
        lab.reading(done, 3);
        lab.end(done);
        // Events 1–2 (the ended run's start and first marker) come before the live run's start.
        assert_eq!(lab.scan(false), Ok(((1, 1), 2)));
        lab.mark_sealed((1, 1), Some((1, 2)));
        assert_eq!(lab.scan(false), Err(Some(live)));
        lab.end(live);
        // The rest: the live run's start, two markers, both runs' ends.
        assert_eq!(lab.scan(false), Ok(((2, 3), 5)));
    }

    #[test]
    fn the_key_is_recorded_once_and_a_rotation_is_an_event() {
        let mut lab = lab();
        assert_eq!(lab.store.signing_key().unwrap(), None);
        assert_eq!(
            lab.store.check_signing_key("SHA256:a", at(1)).unwrap(),
            KeyCheck::Recorded
        );
        assert_eq!(
            lab.store.check_signing_key("SHA256:a", at(2)).unwrap(),
            KeyCheck::Same
        );
        assert_eq!(
            lab.store.check_signing_key("SHA256:b", at(3)).unwrap(),
            KeyCheck::Different("SHA256:a".into())
        );
        assert_eq!(
            lab.store.signing_key().unwrap().as_deref(),
            Some("SHA256:a")
        );
        assert_eq!(
            lab.store.rotate_signing_key("SHA256:b", at(4)).unwrap(),
            Some("SHA256:a".into())
        );
        assert_eq!(
            lab.store.rotate_signing_key("SHA256:b", at(5)).unwrap(),
            None
        );
        assert_eq!(
            lab.store.signing_key().unwrap().as_deref(),
            Some("SHA256:b")
        );
        let events = lab
            .store
            .events_where("e.kind = 'key_rotated' AND e.id > ?1", 0)
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].detail,
            serde_json::json!({"old_fingerprint": "SHA256:a", "new_fingerprint": "SHA256:b"})
        );
    }

    #[test]
    fn an_archive_is_streamed_into_its_row_and_back() {
        let mut lab = lab();
        let run = lab.run();
        lab.reading(run, 1);
        let archive: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let record = SealRecord {
            seq: 1,
            name: "L-A-000001",
            first_reading: 1,
            last_reading: 1,
            chain_last: [0; 32],
            first_event: None,
            last_event: None,
            sums_sha256: [1; 32],
            created_utc_us: 0,
            tar: &[],
            attachments: &[],
        };
        // A writer that stops short commits nothing.
        let short = lab.store.record_seal_streamed(&record, 10, |out| {
            out.write_all(b"12345").map_err(|e| StoreError::Corrupt {
                table: "bundles",
                reason: e.to_string(),
            })
        });
        assert!(short.is_err());
        assert_eq!(lab.store.latest_bundle_info().unwrap(), None);
        lab.store
            .record_seal_streamed(&record, archive.len() as u64, |out| {
                for chunk in archive.chunks(65_536) {
                    out.write_all(chunk).unwrap();
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let info = lab.store.latest_bundle_info().unwrap().unwrap();
        assert_eq!(info.archive_len, archive.len() as u64);
        let back = lab
            .store
            .read_archive(1, |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).unwrap();
                Ok::<_, StoreError>(v)
            })
            .unwrap();
        assert_eq!(back, archive);
    }
}
