//! `db check` against a tamperer who knows the chain: it is unkeyed, so rewriting it after an edit,
//! or deleting the newest readings and moving the head, passes the chain walk. What was sealed is
//! still caught, by comparing each stored archive with the rows it claims; what was not sealed yet
//! only the pilot can catch (the next bundle will not link on).

use std::path::Path;
use std::process::Command;

use predicates::prelude::*;

use crate::common::*;
use tsagent_bundle::hex;

fn sqlite3(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (Debian package sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lab with readings 1–12 sealed into bundle 1 and readings 13–15 not sealed yet.
fn sealed_lab() -> Lab {
    let mut lab = Lab::simulated();
    lab.count = 12;
    let config = lab.config();
    tsagent()
        .args(["keygen", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(lab.key())
        .assert()
        .success();
    measure(&config).success();
    tsagent()
        .args(["bundle", "seal", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains("readings 1–12"));
    lab.count = 3;
    measure(&lab.config()).success();
    lab.assert_sound();
    lab
}

/// SQL that rewrites the chain from reading `from` on after `edit` changed the rows, moves the head
/// and every seal record to match: what a tamperer who read the source would do.
fn rechain(
    lab: &Lab,
    edit: impl Fn(&mut tsagent::store::ReadingRow),
    from: u64,
    keep_until: u64,
) -> String {
    let mut rows = lab.readings();
    let mut sql = String::from(
        "DROP TRIGGER readings_no_update; DROP TRIGGER readings_no_delete; DROP TRIGGER bundles_no_update;",
    );
    let mut prev = tsagent_bundle::chain::GENESIS;
    for row in &mut rows {
        if row.record.seq > keep_until {
            sql += &format!("DELETE FROM readings WHERE seq = {};", row.record.seq);
            continue;
        }
        if row.record.seq >= from {
            edit(row);
            row.chain = row.record.chain_after(&prev);
            let r = &row.record;
            sql += &format!(
                "UPDATE readings SET value = {}, raw = '{}', chain = X'{}' WHERE seq = {};",
                r.value.unwrap(),
                r.raw,
                hex::encode(&row.chain),
                r.seq
            );
        }
        prev = row.chain;
    }
    let head = rows.iter().rfind(|r| r.record.seq <= keep_until).unwrap();
    sql += &format!(
        "UPDATE chain_head SET seq = {}, chain = X'{}';",
        head.record.seq,
        hex::encode(&head.chain)
    );
    let sealed_last = rows
        .iter()
        .find(|r| r.record.seq == keep_until.min(12))
        .unwrap();
    sql += &format!(
        "UPDATE bundles SET last_reading = {}, chain_last = X'{}' WHERE seq = 1;",
        sealed_last.record.seq,
        hex::encode(&sealed_last.chain)
    );
    sql
}

fn check(db: &Path) -> assert_cmd::assert::Assert {
    tsagent().args(["db", "check", "--db"]).arg(db).assert()
}

#[test]
fn an_edit_of_sealed_rows_is_caught_even_with_the_chain_and_seal_rewritten() {
    let lab = sealed_lab();
    let sql = rechain(
        &lab,
        |row| {
            if row.record.seq == 5 {
                row.record.value = Some(10.1);
                row.record.raw = "+1.01000000E+01".into();
            }
        },
        5,
        u64::MAX,
    );
    sqlite3(&lab.db(), &sql);
    check(&lab.db()).code(4).stderr(predicate::str::contains(
        "reading 5 differs from the row sealed in bundle 1",
    ));
}

#[test]
fn sealed_readings_deleted_with_the_head_and_seal_moved_are_caught() {
    let lab = sealed_lab();
    // Readings 11 to 15 deleted; the head and bundle 1's records now end at 10.
    let sql = rechain(&lab, |_| {}, u64::MAX, 10);
    sqlite3(&lab.db(), &sql);
    check(&lab.db()).code(4).stderr(predicate::str::contains(
        "reading 11, sealed in bundle 1, is missing from the log",
    ));
}

#[test]
fn unsealed_readings_deleted_with_the_head_moved_pass_as_the_readme_says() {
    // The limit the README states: the chain is unkeyed, so only the pilot (whose next bundle
    // would not continue from 15) can tell that readings 14 and 15 ever existed.
    let lab = sealed_lab();
    let sql = rechain(&lab, |_| {}, u64::MAX, 13);
    sqlite3(&lab.db(), &sql);
    check(&lab.db()).success();
}
