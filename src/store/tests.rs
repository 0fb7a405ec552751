use super::*;
use tsagent_bundle::chain::GENESIS;

fn at(us: i64) -> Timestamp {
    Timestamp {
        utc_us: 1_795_000_000_000_000 + us,
        mono_ns: 1_000 + u64::try_from(us).unwrap(),
    }
}

fn identity() -> Identity {
    Identity {
        manufacturer: "TSAGENT".into(),
        model: "SIM-DMM8".into(),
        serial: "SIM0001".into(),
        firmware: "1.0".into(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Store,
    run: u64,
    inst: u64,
}

fn start(trigger: Trigger, operator: Option<&str>, at: Timestamp, pid: u32) -> RunStart<'_> {
    RunStart {
        sequence: "s",
        sequence_sha256: [7; 32],
        trigger,
        operator,
        official: false,
        at,
        owner: (pid, "boot"),
    }
}

fn fixture(readings: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/t.db");
    let mut store = Store::open(&path).unwrap();
    let inst = store
        .record_instrument("dmm", "ASRL/dev/pts/1::INSTR", &identity(), at(0))
        .unwrap();
    let run = store
        .begin_run(&start(Trigger::Manual, Some("op"), at(0), 1))
        .unwrap();
    let mut f = Fixture {
        _dir: dir,
        path,
        store,
        run,
        inst,
    };
    for i in 0..readings {
        append(&mut f, i);
    }
    f
}

fn append(f: &mut Fixture, i: usize) -> Committed {
    let raw = format!("+1.000000{i:02}E+01");
    let value: f64 = raw.parse().unwrap();
    let ev = NewEvent {
        run_id: Some(f.run),
        instrument_id: Some(f.inst),
        ..NewEvent::new(
            at(i as i64),
            Event::Exchange(tsagent_bundle::event::Exchange {
                command: "READ?".into(),
                reply: Some(raw.clone()),
                started_utc: "2026-12-02T10:00:00.000000Z".into(),
                duration_us: 1,
                error: None,
            }),
        )
    };
    f.store
        .append_reading(
            &NewReading {
                run_id: f.run,
                instrument_id: f.inst,
                quantity: "voltage",
                value: Some(value),
                status: ReadingStatus::Valid,
                unit: "V",
                raw: &raw,
                at: at(i as i64 * 1000),
                boot_id: "boot",
            },
            &[ev],
        )
        .unwrap()
}

/// Edits the file the way someone with the `sqlite3` shell would: a separate connection that
/// first drops the append-only triggers.
fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "DROP TRIGGER readings_no_update; DROP TRIGGER readings_no_delete; {sql}"
    ))
    .unwrap();
}

/// What `db check` finds in the fixture's database.
fn problems(f: &Fixture) -> Vec<Problem> {
    f.store.check().unwrap().problems
}

#[test]
fn opens_in_wal_with_full_sync_and_foreign_keys() {
    let f = fixture(0);
    let pragma = |name: &str| -> rusqlite::types::Value {
        f.store
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    };
    use rusqlite::types::Value::{Integer, Text};
    let mode = pragma("journal_mode");
    let (sync, fk, version) = (
        pragma("synchronous"),
        pragma("foreign_keys"),
        pragma("user_version"),
    );
    assert_eq!(
        (mode, sync, fk),
        (Text("wal".into()), Integer(2), Integer(1))
    );
    assert_eq!(version, Integer(schema::MIGRATIONS.len() as i64));
}

#[test]
fn reopening_keeps_data_and_schema() {
    let f = fixture(3);
    let path = f.path.clone();
    drop(f.store);
    let store = Store::open_existing(&path).unwrap();
    assert_eq!(store.check().unwrap().readings, 3);
}

#[test]
fn refuses_a_newer_schema() {
    let f = fixture(0);
    f.store
        .conn
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let path = f.path.clone();
    drop(f.store);
    let err = Store::open_existing(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn missing_database_is_not_created_by_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.db");
    assert!(matches!(
        Store::open_existing(&path),
        Err(StoreError::Missing { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn readings_are_numbered_and_chained() {
    let mut f = fixture(2);
    let c = append(&mut f, 2);
    assert_eq!(c.seq, 3);
    let rows = f.store.run_readings(f.run, (1, u64::MAX)).unwrap();
    assert_eq!(rows.len(), 3);
    let mut prev = GENESIS;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.record.seq, i as u64 + 1);
        assert_eq!(r.record.chain_after(&prev), r.chain);
        prev = r.chain;
    }
    assert_eq!(prev, c.chain);
    assert_eq!(rows[0].instrument, "dmm");
    assert_eq!(rows[0].sequence, "s");
    let report = f.store.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.readings, 3);
}

#[test]
fn triggers_refuse_edits_through_sql() {
    let f = fixture(2);
    let err = f
        .store
        .conn
        .execute("UPDATE readings SET value = 0 WHERE seq = 1", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = f
        .store
        .conn
        .execute("DELETE FROM readings WHERE seq = 2", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn check_finds_an_edited_row() {
    let f = fixture(5);
    tamper(&f.path, "UPDATE readings SET value = 10.5 WHERE seq = 3;");
    assert_eq!(problems(&f), vec![Problem::Edited { seq: 3 }]);
}

#[test]
fn check_finds_a_deleted_row_in_the_middle() {
    let f = fixture(5);
    tamper(&f.path, "DELETE FROM readings WHERE seq = 2;");
    assert_eq!(problems(&f), vec![Problem::Missing { from: 2, to: 2 }]);
}

#[test]
fn check_finds_deleted_newest_rows() {
    let f = fixture(5);
    tamper(&f.path, "DELETE FROM readings WHERE seq >= 4;");
    assert_eq!(problems(&f), vec![Problem::Truncated { last: 3, head: 5 }]);
}

#[test]
fn check_finds_a_seal_that_no_longer_matches() {
    let mut f = fixture(3);
    let m = f.store.seal_material().unwrap().unwrap();
    seal(&mut f, &m);
    assert!(f.store.check().unwrap().is_sound());
    // Rewrite the newest reading *and* its chain and head consistently: only the seal catches it.
    let mut rows = f.store.run_readings(f.run, (1, u64::MAX)).unwrap();
    let last = rows.pop().unwrap();
    let mut forged = last.record.clone();
    forged.value = Some(9.0);
    let chain = forged.chain_after(&rows[1].chain);
    let conn = Connection::open(&f.path).unwrap();
    conn.execute_batch("DROP TRIGGER readings_no_update;")
        .unwrap();
    conn.execute(
        "UPDATE readings SET value = 9.0, chain = ?1 WHERE seq = 3",
        [&chain[..]],
    )
    .unwrap();
    conn.execute("UPDATE chain_head SET chain = ?1", [&chain[..]])
        .unwrap();
    assert_eq!(
        problems(&f),
        vec![
            Problem::SealMismatch { bundle: 1, seq: 3 },
            Problem::SealedRowDiffers { bundle: 1, seq: 3 }
        ]
    );
    // The seal's record rewritten too: the archive still holds the row as it was sealed.
    conn.execute_batch("DROP TRIGGER bundles_no_update;")
        .unwrap();
    conn.execute("UPDATE bundles SET chain_last = ?1", [&chain[..]])
        .unwrap();
    assert_eq!(
        problems(&f),
        vec![Problem::SealedRowDiffers { bundle: 1, seq: 3 }]
    );
}

#[test]
fn two_writers_extend_one_chain() {
    let mut f = fixture(1);
    let mut other = Store::open_existing(&f.path).unwrap();
    let c2 = other
        .append_reading(
            &NewReading {
                run_id: f.run,
                instrument_id: f.inst,
                quantity: "voltage",
                value: None,
                status: ReadingStatus::Overload,
                unit: "V",
                raw: "+9.90000000E+37",
                at: at(5),
                boot_id: "boot",
            },
            &[],
        )
        .unwrap();
    let c3 = append(&mut f, 3);
    assert_eq!((c2.seq, c3.seq), (2, 3));
    assert!(f.store.check().unwrap().is_sound());
}

#[test]
fn interrupted_runs_are_recovered() {
    let mut f = fixture(1);
    let done = f
        .store
        .begin_run(&start(Trigger::Schedule, None, at(1), 2))
        .unwrap();
    f.store
        .end_run(
            done,
            &RunEnd {
                status: RunStatus::Completed,
                reason: None,
                readings: 0,
                range: None,
                at: at(2),
            },
        )
        .unwrap();
    let live = f
        .store
        .begin_run(&start(Trigger::Schedule, None, at(1), 3))
        .unwrap();
    // Process 1 is gone, process 3 still runs.
    let alive = |pid: u32, boot: &str| pid == 3 && boot == "boot";
    let ids = f.store.recover_interrupted(at(3), alive).unwrap();
    assert_eq!(ids, vec![f.run]);
    assert_eq!(
        f.store.run(f.run).unwrap().unwrap().status,
        RunStatus::Interrupted
    );
    assert_eq!(
        f.store.run(done).unwrap().unwrap().status,
        RunStatus::Completed
    );
    assert_eq!(
        f.store.run(live).unwrap().unwrap().status,
        RunStatus::Running
    );
    assert!(
        f.store
            .recover_interrupted(at(4), alive)
            .unwrap()
            .is_empty()
    );
    // After a reboot nothing of the old boot is alive.
    let ids = f
        .store
        .recover_interrupted(at(5), |_, boot: &str| boot == "new-boot")
        .unwrap();
    assert_eq!(ids, vec![live]);
}

#[test]
fn seal_material_takes_what_is_not_yet_sealed() {
    let mut f = fixture(3);
    let m = f.store.seal_material().unwrap().unwrap();
    // The run's start and one event per reading.
    assert_eq!((m.bundle_seq, m.readings.len(), m.events.len()), (1, 3, 4));
    assert_eq!(m.chain_prev, GENESIS);
    assert_eq!(m.instruments.len(), 1);
    let seal = SealRecord {
        seq: 1,
        name: "L-A-000001",
        first_reading: 1,
        last_reading: 3,
        chain_last: m.readings[2].chain,
        first_event: Some(m.events[0].id),
        last_event: Some(m.events[3].id),
        sums_sha256: [7; 32],
        created_utc_us: 5,
        tar: b"tar",
        attachments: &[],
    };
    f.store.record_seal(&seal).unwrap();
    assert!(matches!(
        f.store.record_seal(&seal),
        Err(StoreError::SealConflict { seq: 1 })
    ));
    assert!(f.store.seal_material().unwrap().is_none());
    append(&mut f, 9);
    let m2 = f.store.seal_material().unwrap().unwrap();
    assert_eq!(
        (m2.bundle_seq, m2.readings.len(), m2.events.len()),
        (2, 1, 1)
    );
    assert_eq!(m2.chain_prev, m.readings[2].chain);
    assert_eq!(m2.prev_sums_sha256, Some([7; 32]));
    assert_eq!(f.store.latest_bundle().unwrap().unwrap().tar, b"tar");
}

#[test]
fn sealing_refuses_a_broken_chain() {
    let f = fixture(3);
    tamper(&f.path, "UPDATE readings SET raw = 'x' WHERE seq = 2;");
    assert!(matches!(
        f.store.seal_material(),
        Err(StoreError::ChainBroken { seq: 2 })
    ));
}

#[test]
fn an_identity_is_recorded_once_and_a_new_one_gets_a_new_row() {
    let mut f = fixture(0);
    let again = f
        .store
        .record_instrument("dmm", "ASRL/dev/pts/1::INSTR", &identity(), at(9))
        .unwrap();
    assert_eq!(again, f.inst);
    let mut upgraded = identity();
    upgraded.firmware = "1.1".into();
    let new = f
        .store
        .record_instrument("dmm", "ASRL/dev/pts/1::INSTR", &upgraded, at(9))
        .unwrap();
    assert_ne!(new, f.inst);
}

fn seal(f: &mut Fixture, m: &SealMaterial) {
    let readings = tsagent_bundle::records::write_readings(&m.readings);
    let archive = archive(&format!("L-A-{:06}", m.bundle_seq), readings.as_bytes());
    f.store
        .record_seal(&SealRecord {
            seq: m.bundle_seq,
            name: &format!("L-A-{:06}", m.bundle_seq),
            first_reading: m.readings[0].record.seq,
            last_reading: m.readings.last().unwrap().record.seq,
            chain_last: m.readings.last().unwrap().chain,
            first_event: m.events.first().map(|e| e.id),
            last_event: m.events.last().map(|e| e.id),
            sums_sha256: archive.1,
            created_utc_us: 0,
            tar: &archive.0,
            attachments: &[],
        })
        .unwrap();
}

#[test]
fn negative_zero_keeps_the_chain_sound() {
    let mut f = fixture(1);
    f.store
        .append_reading(
            &NewReading {
                run_id: f.run,
                instrument_id: f.inst,
                quantity: "voltage",
                value: Some(-0.0),
                status: ReadingStatus::Valid,
                unit: "V",
                raw: "-0.00000000E+00",
                at: at(7),
                boot_id: "boot",
            },
            &[],
        )
        .unwrap();
    assert!(f.store.check().unwrap().is_sound());
    let m = f.store.seal_material().unwrap().unwrap();
    assert_eq!(
        m.readings[1].record.raw, "-0.00000000E+00",
        "the reply keeps its sign"
    );
}

#[test]
fn events_are_sealed_once_even_after_a_bundle_without_events() {
    let mut f = fixture(2);
    let m1 = f.store.seal_material().unwrap().unwrap();
    assert_eq!(
        m1.events.len(),
        3,
        "the run's start and the readings' events"
    );
    seal(&mut f, &m1);
    // A reading with no events of its own.
    f.store
        .append_reading(
            &NewReading {
                run_id: f.run,
                instrument_id: f.inst,
                quantity: "voltage",
                value: Some(1.0),
                status: ReadingStatus::Valid,
                unit: "V",
                raw: "1",
                at: at(8),
                boot_id: "boot",
            },
            &[],
        )
        .unwrap();
    let m2 = f.store.seal_material().unwrap().unwrap();
    assert!(m2.events.is_empty());
    seal(&mut f, &m2);
    append(&mut f, 9);
    let m3 = f.store.seal_material().unwrap().unwrap();
    assert_eq!(
        m3.events.len(),
        1,
        "only the new reading's event, not bundle 1's again"
    );
    assert!(m3.events[0].id > m1.events[2].id);
}

#[test]
fn a_long_backlog_seals_into_several_bundles() {
    let mut f = fixture(7);
    let mut sizes = Vec::new();
    while let Some(m) = f.store.seal_material_within(3, 2).unwrap() {
        sizes.push((m.readings.len(), m.events.len()));
        seal(&mut f, &m);
    }
    assert_eq!(sizes, vec![(3, 2), (3, 2), (1, 2)]);
}

#[test]
fn sealing_refuses_a_truncated_log() {
    let f = fixture(4);
    tamper(&f.path, "DELETE FROM readings WHERE seq = 4;");
    assert!(matches!(
        f.store.seal_material(),
        Err(StoreError::Truncated { last: 3, head: 4 })
    ));
}

/// A well-formed archive named `name` holding `readings` as its readings.csv (the rest is
/// irrelevant to the store) and its SHA256SUMS hash.
fn archive(name: &str, readings: &[u8]) -> (Vec<u8>, [u8; 32]) {
    use sha2::{Digest, Sha256};
    let files = tsagent_bundle::tar::BundleFiles {
        manifest: b"{}",
        readings,
        events: b"",
        custody: None,
        sums: b"sums",
        sig: b"sig",
    };
    let tar = tsagent_bundle::tar::write_tar(name, &files, 0).unwrap();
    (tar, Sha256::digest(b"sums").into())
}

#[test]
fn check_finds_a_stored_archive_that_no_longer_matches_its_seal() {
    let mut f = fixture(2);
    let m = f.store.seal_material().unwrap().unwrap();
    seal(&mut f, &m);
    assert!(f.store.check().unwrap().is_sound());
    let conn = Connection::open(&f.path).unwrap();
    conn.execute_batch("DROP TRIGGER bundles_no_update;")
        .unwrap();
    let (other, _) = archive("L-A-000009", b"");
    conn.execute("UPDATE bundles SET tar = ?1 WHERE seq = 1", [&other])
        .unwrap();
    assert_eq!(
        f.store.check().unwrap().problems,
        vec![Problem::ArchiveMismatch { bundle: 1 }]
    );
}

#[test]
fn a_block_is_stored_whole_or_not_at_all() {
    let mut f = fixture(1);
    let reading = |instrument_id: u64, raw: &'static str| NewReading {
        run_id: f.run,
        instrument_id,
        quantity: "voltage",
        value: Some(1.0),
        status: ReadingStatus::Valid,
        unit: "V",
        raw,
        at: at(3),
        boot_id: "boot",
    };
    let block = [
        reading(f.inst, "a"),
        reading(f.inst, "b"),
        reading(f.inst, "c"),
    ];
    let committed = f.store.append_readings(&block, &[]).unwrap();
    assert_eq!(
        committed.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    // The third reading names an instrument that does not exist: the whole block is refused.
    let bad = [
        reading(f.inst, "d"),
        reading(f.inst, "e"),
        reading(999, "f"),
    ];
    assert!(f.store.append_readings(&bad, &[]).is_err());
    let report = f.store.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.readings, 4);
    assert_eq!(
        append(&mut f, 5).seq,
        5,
        "the chain goes on after the refused block"
    );
}

/// The run events of one run, as (kind, detail) pairs.
fn run_events(f: &Fixture, run: u64) -> Vec<(String, serde_json::Value)> {
    f.store
        .run_events(run)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("run_"))
        .map(|e| (e.kind, e.detail))
        .collect()
}

#[test]
fn a_run_begins_and_ends_in_the_log_once() {
    let mut f = fixture(2);
    let started = &run_events(&f, f.run)[0];
    assert_eq!(started.0, "run_started");
    assert_eq!(
        started.1,
        serde_json::json!({
            "sequence": "s",
            "sequence_sha256": "07".repeat(32),
            "operator": "op",
            "trigger": "manual",
        })
    );
    let end = RunEnd {
        status: RunStatus::Failed,
        reason: Some("step 2 failed"),
        readings: 2,
        range: Some((1, 2)),
        at: at(9),
    };
    assert!(f.store.end_run(f.run, &end).unwrap());
    // A second end (the guard after the runner, recovery after a live end) writes nothing.
    let again = RunEnd {
        status: RunStatus::Interrupted,
        ..end
    };
    assert!(!f.store.end_run(f.run, &again).unwrap());
    let events = run_events(&f, f.run);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1],
        (
            "run_ended".to_owned(),
            serde_json::json!({
                "status": "failed",
                "readings": 2,
                "first_reading": 1,
                "last_reading": 2,
                "reason": "step 2 failed",
            })
        )
    );
    let row = f.store.run(f.run).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Failed);
    assert_eq!(row.message.as_deref(), Some("step 2 failed"));
}

#[test]
fn a_recovered_run_ends_with_the_readings_it_took() {
    let mut f = fixture(3);
    let ids = f.store.recover_interrupted(at(5), |_, _| false).unwrap();
    assert_eq!(ids, vec![f.run]);
    let events = run_events(&f, f.run);
    let (kind, detail) = events.last().unwrap();
    assert_eq!(kind, "run_ended");
    assert_eq!(detail["status"], "interrupted");
    assert_eq!(detail["readings"], 3);
    assert_eq!(detail["first_reading"], 1);
    assert_eq!(detail["last_reading"], 3);
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .starts_with("found running at start-up"),
        "{detail}"
    );
}

#[test]
fn a_run_starts_with_the_wal_sized_so_its_commits_do_not_grow_it() {
    // BENCHMARKS.md, P1 against the peers: a commit that lengthens the WAL costs a file-system
    // journal commit on top of the data sync.
    let mut f = fixture(1);
    let mut wal = f.path.as_os_str().to_owned();
    wal.push("-wal");
    let sized = std::fs::metadata(&wal).unwrap().len();
    assert!(sized >= 1000 * 4096, "WAL is {sized} bytes after begin_run");
    for i in 1..200 {
        append(&mut f, i);
    }
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), sized);
    let report = f.store.check().unwrap();
    assert_eq!((report.readings, report.problem_count), (200, 0));
}

#[test]
fn a_version_2_database_gains_the_official_column_with_its_runs_not_official() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO runs (sequence, trigger, started_utc_us, status, pid, boot_id)
             VALUES ('s', 'manual', 0, 'completed', 1, 'boot')",
            [],
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let old = store.run(1).unwrap().unwrap();
    assert!(!old.official, "runs from before custody are not official");
    let new = store
        .begin_run(&RunStart {
            official: true,
            ..start(Trigger::Manual, None, at(1), 1)
        })
        .unwrap();
    assert!(store.run(new).unwrap().unwrap().official);
    let started = store.run_events(new).unwrap();
    assert_eq!(started[0].detail["official"], true);
}

#[test]
fn custody_updates_see_the_record_and_write_nothing_when_refused() {
    use tsagent_bundle::event::{CustodyNote, Event};
    let mut f = fixture(0);
    let note = |text: &str| {
        NewEvent::new(
            at(1),
            Event::CustodyNote(CustodyNote {
                operator: "li".into(),
                text: text.into(),
            }),
        )
    };
    f.store
        .custody_update(|rows| {
            assert!(rows.is_empty());
            Ok::<_, StoreError>((vec![note("first")], ()))
        })
        .unwrap();
    let refused: Result<(), StoreError> = f.store.custody_update(|rows| {
        assert_eq!(rows.len(), 1);
        Err(StoreError::Corrupt {
            table: "events",
            reason: "refused".into(),
        })
    });
    assert!(refused.is_err());
    let rows = f.store.custody_events().unwrap();
    assert_eq!(rows.len(), 1, "the refused update wrote nothing");
    assert_eq!(rows[0].detail["text"], "first");
}

#[test]
fn a_version_3_log_is_rebuilt_for_aborted_runs_with_its_rows_and_references_whole() {
    // A log made before runs could be aborted: a run with readings and events referring to it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    {
        let mut f = fixture(3);
        f.store
            .end_run(
                f.run,
                &RunEnd {
                    status: RunStatus::Completed,
                    reason: None,
                    readings: 3,
                    range: Some((1, 3)),
                    at: at(9),
                },
            )
            .unwrap();
        drop(f.store);
        std::fs::copy(&f.path, &path).unwrap();
    }
    {
        // Take it back to version 3, as an older tsagent left it (without what V5 and V6 add).
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE attachments; DROP TABLE tlog_seen; DROP TABLE deliveries;")
            .unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let old = store.run(1).unwrap().unwrap();
    assert_eq!((old.status, old.readings), (RunStatus::Completed, 3));
    let report = store.check().unwrap();
    assert_eq!((report.readings, report.problem_count), (3, 0));
    let run = store
        .begin_run(&start(Trigger::Manual, Some("op"), at(10), 1))
        .unwrap();
    store
        .end_run(
            run,
            &RunEnd {
                status: RunStatus::Aborted,
                reason: Some("aborted"),
                readings: 0,
                range: None,
                at: at(11),
            },
        )
        .unwrap();
    assert_eq!(store.run(run).unwrap().unwrap().status, RunStatus::Aborted);
    // Foreign keys are on again after the migration.
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn recent_runs_are_newest_first_with_their_readings_counted() {
    let mut f = fixture(3);
    let first = f.run;
    let end = RunEnd {
        status: RunStatus::Completed,
        reason: None,
        readings: 3,
        range: Some((1, 3)),
        at: at(10_000),
    };
    assert!(f.store.end_run(first, &end).unwrap());
    f.run = f
        .store
        .begin_run(&start(Trigger::Schedule, None, at(20_000), 1))
        .unwrap();
    append(&mut f, 4);
    append(&mut f, 5);
    let runs = f.store.recent_runs(10).unwrap();
    let summary: Vec<_> = runs
        .iter()
        .map(|r| (r.id, r.status, r.readings, r.trigger.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (f.run, RunStatus::Running, 2, "schedule"),
            (first, RunStatus::Completed, 3, "manual")
        ]
    );
    assert_eq!(runs[1].operator.as_deref(), Some("op"));
    assert_eq!(runs[1].ended_utc_us, Some(at(10_000).utc_us));
    assert_eq!(runs[0].ended_utc_us, None);
    // Bounded: only the newest run, and its count alone.
    let newest = f.store.recent_runs(1).unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!((newest[0].id, newest[0].readings), (f.run, 2));
    assert!(fixture(0).store.recent_runs(5).unwrap()[0].readings == 0);
}

#[test]
fn recent_values_walk_back_to_the_window_and_skip_what_is_not_a_number() {
    let mut f = fixture(5);
    f.store
        .append_reading(
            &NewReading {
                run_id: f.run,
                instrument_id: f.inst,
                quantity: "voltage",
                value: None,
                status: ReadingStatus::Overload,
                unit: "V",
                raw: "+9.9E37",
                at: at(5_000),
                boot_id: "boot",
            },
            &[],
        )
        .unwrap();
    let mut seen = Vec::new();
    f.store
        .visit_recent_values(at(2_000).utc_us, |name, unit, t, v| {
            seen.push((name.to_owned(), unit.to_owned(), t - at(0).utc_us, v));
        })
        .unwrap();
    let times: Vec<i64> = seen.iter().map(|s| s.2).collect();
    assert_eq!(times, vec![4_000, 3_000, 2_000]);
    assert_eq!((seen[0].0.as_str(), seen[0].1.as_str()), ("dmm", "V"));
    assert_eq!(seen[0].3, 10.000_000_4);
}
