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

fn note(text: &str) -> ActionRequest {
    ActionRequest::Note(NoteRequest {
        operator: "li".into(),
        text: text.into(),
    })
}

#[test]
fn apply_records_what_fits_and_refuses_the_rest_writing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("lab.db")).unwrap();
    let config = config("refuse");
    let dispatch = ActionRequest::Dispatch(DispatchRequest {
        operator: "li".into(),
        carrier: "DHL".into(),
        tracking: "1".into(),
        condition: "ok".into(),
    });
    let err = apply(&mut store, &config, at(0), &dispatch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot dispatch the standard: the standard has not been received"
    );
    let blank = ActionRequest::Note(NoteRequest {
        operator: " ".into(),
        text: "x".into(),
    });
    assert!(
        apply(&mut store, &config, at(0), &blank)
            .unwrap_err()
            .to_string()
            .contains("`operator` must not be empty")
    );
    assert!(kinds(&store).is_empty(), "refusals write nothing");
    // Notes fit any state.
    let recorded = apply(&mut store, &config, at(0), &note("expected next week")).unwrap();
    assert_eq!(
        (recorded.event.as_str(), recorded.state.as_str()),
        ("custody_note", "expected")
    );

    let photo = |sha256: &str| {
        ActionRequest::Receive(ReceiveRequest {
            operator: "li".into(),
            condition: Condition::Ok,
            seals: Seals::Intact,
            note: None,
            photos: vec![PhotoRef {
                sha256: sha256.into(),
                name: Some("case.jpg".into()),
            }],
        })
    };
    let err = apply(&mut store, &config, at(0), &photo("../lab.db")).unwrap_err();
    assert!(matches!(err, CustodyError::PhotoHash { .. }), "{err}");
    let missing = photo_sha256(b"never uploaded");
    let err = apply(&mut store, &config, at(0), &photo(&missing)).unwrap_err();
    assert!(matches!(err, CustodyError::PhotoNotKept { .. }), "{err}");
    assert!(
        !kinds(&store).contains(&"custody_received".to_owned()),
        "a refused receipt writes nothing"
    );

    let kept = keep_photo(&photo_dir(store.path()), b"a photo").unwrap();
    assert_eq!(kept, photo_sha256(b"a photo"));
    let recorded = apply(&mut store, &config, at(H), &photo(&kept)).unwrap();
    assert_eq!(recorded.event, "custody_received");
    assert_eq!(recorded.state, "stabilising", "no checklist in this config");
    let received = store_kind(&store, "custody_received");
    assert_eq!(received[0]["photos"][0]["sha256"], kept.as_str());
    assert_eq!(received[0]["photos"][0]["name"], "case.jpg");

    let inspect = ActionRequest::Inspect(InspectRequest {
        operator: "li".into(),
        items: vec!["battery=ok".into()],
    });
    let err = apply(&mut store, &config, at(H), &inspect).unwrap_err();
    assert!(
        err.to_string()
            .contains("the config has no [[artefact.inspection]] items"),
        "{err}"
    );
    let recorded = apply(&mut store, &config, at(H), &dispatch).unwrap();
    assert_eq!(
        (recorded.event.as_str(), recorded.state.as_str()),
        ("custody_dispatched", "dispatched")
    );
}

#[test]
fn the_report_gives_the_gate_calibrations_the_next_deadline_and_the_timeline() {
    let (_dir, mut store, mut config) = received("refuse");
    config.artefact.deadlines = crate::config::Deadlines {
        receive_by: Some(crate::config::Deadline {
            text: "r".into(),
            utc_us: 0,
        }),
        dispatch_by: Some(crate::config::Deadline {
            text: "d".into(),
            utc_us: 10 * H,
        }),
    };
    config.alerts.deadline_notice = std::time::Duration::from_secs(2 * 3600);
    let early = report(&mut store, &config, at(H / 2)).unwrap();
    assert_eq!(early.state, "stabilising");
    assert_eq!(early.gate.state, "closed");
    assert!(
        early
            .gate
            .reason
            .as_deref()
            .unwrap()
            .starts_with("stabilising: the minimum time since receipt"),
        "{early:?}"
    );
    assert_eq!(early.calibrations.len(), 1);
    assert!(!early.calibrations[0].past_due);
    let next = early.next_deadline.unwrap();
    assert_eq!(
        (next.action, next.phase, next.by.as_str()),
        (DeadlineAction::Dispatch, Phase::Ahead, "d"),
        "received: the receipt's deadline is closed"
    );
    assert_eq!(early.timeline.len(), 1);
    assert_eq!(early.timeline[0].kind, "custody_received");

    let opened = report(&mut store, &config, at(9 * H)).unwrap();
    assert_eq!(opened.gate.state, "opened");
    assert_eq!(opened.state, "official_window");
    assert_eq!(opened.next_deadline.unwrap().phase, Phase::Due);
    assert_eq!(opened.timeline.last().unwrap().kind, "gate_opened");
    let again = report(&mut store, &config, at(11 * H)).unwrap();
    assert_eq!(again.gate.state, "open");
    assert_eq!(again.next_deadline.as_ref().unwrap().phase, Phase::Past);
    // The report travels as JSON (`GET /v1/custody`) and reads back the same.
    let json = serde_json::to_string(&again).unwrap();
    assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), again);
}
