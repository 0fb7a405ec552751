//! The store-facing custody functions on a real database, with the time injected.

use std::path::Path;

use super::*;

fn config(policy: &str) -> Config {
    let text = format!(
        r#"
[lab]
id = "L"
name = "Lab"
[artefact]
id = "Z"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[artefact.stabilisation]
min = "1h"
[policy]
expired_calibration = "{policy}"
[[instrument]]
name = "dvm"
resource = "SIM::PTY::INSTR"
calibration = {{ certificate = "C-1", calibrated = "2025-01-10", due = "2026-01-10" }}
[[sequence]]
name = "official"
official = true
[[sequence.step]]
read = {{ instrument = "dvm", count = 1, quantity = "voltage", unit = "V" }}
"#
    );
    Config::parse(&text, "test", Path::new(".")).unwrap()
}

fn at(utc_us: i64) -> Timestamp {
    Timestamp { utc_us, mono_ns: 0 }
}

const H: i64 = 3_600_000_000;

fn kinds(store: &Store) -> Vec<String> {
    store
        .custody_events()
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn received(policy: &str) -> (tempfile::TempDir, Store, Config) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("lab.db")).unwrap();
    let config = config(policy);
    let receipt = Receipt {
        operator: "li",
        damaged: false,
        seals_intact: true,
        note: None,
        photos: &[],
    };
    receive(&mut store, &config, at(0), &receipt).unwrap();
    (dir, store, config)
}

#[test]
fn the_gate_opens_on_the_injected_clock_once_and_is_recorded() {
    // Before 2026-01-10 the calibration is valid: only the gate matters.
    let (_dir, mut store, config) = received("refuse");
    let seq = config.sequence("official").unwrap();
    let err = admit_official(&mut store, &config, seq, "manual", at(H - 1)).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "official run of `official` refused: stabilising: the minimum time since receipt has 1s"
        ),
        "{err}"
    );
    admit_official(&mut store, &config, seq, "schedule", at(H)).unwrap();
    admit_official(&mut store, &config, seq, "schedule", at(2 * H)).unwrap();
    assert_eq!(
        kinds(&store),
        ["custody_received", "official_skipped", "gate_opened"]
    );
}

#[test]
fn an_expired_calibration_is_refused_under_refuse_and_flagged_under_flag() {
    let due_end = crate::config::CalendarDate::parse("2026-01-10")
        .unwrap()
        .end_utc_us();
    for (policy, admitted) in [("refuse", false), ("flag", true)] {
        let (_dir, mut store, config) = received(policy);
        let seq = config.sequence("official").unwrap();
        let result = admit_official(&mut store, &config, seq, "manual", at(due_end));
        assert_eq!(result.is_ok(), admitted, "{policy}: {result:?}");
        let expired = store_kind(&store, "calibration_expired");
        assert_eq!(expired.len(), 1, "{policy}: recorded either way");
        assert_eq!(expired[0]["policy"], policy);
        assert_eq!(expired[0]["due"], "2026-01-10");
        let skipped = store_kind(&store, "official_skipped");
        assert_eq!(skipped.len(), usize::from(!admitted), "{policy}");
        if !admitted {
            assert_eq!(
                skipped[0]["reason"],
                "the calibration of `dvm` (certificate C-1) was due 2026-01-10"
            );
        }
    }
}

/// The details of the log's events of `kind`, in order.
fn store_kind(store: &Store, kind: &str) -> Vec<serde_json::Value> {
    store
        .events_of_kind(kind)
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect()
}
