//! The confirmation note of receipt and the dispatch note (CCEM-K10 annexes A1 and A2), in
//! Chinese and English, from the custody record: what the pilot asks each participant to send.

use std::fmt::Write as _;

use tsagent_bundle::event::{CustodyDispatched, CustodyInspected, CustodyReceived, Event};

use crate::config::Config;
use crate::store::EventRow;

/// Which note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// 接收确认单 / confirmation note of receipt.
    Receipt,
    /// 发运单 / dispatch note.
    Dispatch,
}

/// The note, or `None` when the record has no receipt (or dispatch) to report yet.
pub fn render(kind: NoteKind, config: &Config, rows: &[EventRow]) -> Option<String> {
    let mut received: Option<(&EventRow, CustodyReceived)> = None;
    let mut inspected: Option<(&EventRow, CustodyInspected)> = None;
    let mut dispatched: Option<(&EventRow, CustodyDispatched)> = None;
    let mut incidents = Vec::new();
    for row in rows {
        match Event::from_parts(&row.kind, &row.detail) {
            Ok(Event::CustodyReceived(r)) if received.is_none() => received = Some((row, r)),
            Ok(Event::CustodyInspected(i)) => inspected = Some((row, i)),
            Ok(Event::CustodyDispatched(d)) if dispatched.is_none() => dispatched = Some((row, d)),
            Ok(Event::CustodyIncident(i)) => incidents.push((row, i)),
            _ => {}
        }
    }
    let (received_row, receipt) = received?;
    let time = |row: &EventRow| tsagent_bundle::time::rfc3339(row.utc_us);
    let a = &config.artefact;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |zh: &str, en: &str, value: &str| {
        let _ = writeln!(out, "{zh} / {en}: {value}");
    };
    match kind {
        NoteKind::Receipt => {
            line(
                "文件",
                "Document",
                "传递标准接收确认单 / Confirmation note of receipt",
            );
        }
        NoteKind::Dispatch => {
            line("文件", "Document", "传递标准发运单 / Dispatch note");
        }
    }
    line(
        "实验室",
        "Laboratory",
        &format!("{} ({})", config.lab.name, config.lab.id),
    );
    line(
        "传递标准",
        "Travelling standard",
        &format!("{} {} ({}), s/n {}", a.nominal, a.unit, a.kind, a.serial),
    );
    line("标准编号", "Standard id", &a.id);
    line("接收时间", "Received", &time(received_row));
    line("接收人", "Received by", &receipt.operator);
    line(
        "外观状态",
        "Condition on arrival",
        if receipt.condition == "damaged" {
            "损坏 / damaged"
        } else {
            "完好 / ok"
        },
    );
    line(
        "封条",
        "Seals",
        if receipt.seals == "intact" {
            "完好 / intact"
        } else {
            "破损 / broken"
        },
    );
    if let Some(note) = &receipt.note {
        line("备注", "Remarks", note);
    }
    for photo in &receipt.photos {
        line(
            "照片",
            "Photo",
            &format!("{} (SHA-256 {})", photo.name, photo.sha256),
        );
    }
    if let Some((row, inspection)) = &inspected {
        line(
            "检查时间",
            "Inspected",
            &format!("{} ({})", time(row), inspection.operator),
        );
        for item in &inspection.items {
            line(
                "检查项目",
                "Inspection item",
                &format!("{}: {}", item.item, item.result),
            );
        }
    }
    if kind == NoteKind::Dispatch {
        let (row, d) = dispatched?;
        for (row, i) in &incidents {
            line(
                "事件",
                "Incident",
                &format!("{} {}: {}", time(row), i.incident, i.note),
            );
        }
        line("发运时间", "Dispatched", &time(row));
        line("发运人", "Dispatched by", &d.operator);
        line("承运人", "Carrier", &d.carrier);
        line("运单号", "Tracking number", &d.tracking);
        line("发运状态", "Condition on dispatch", &d.condition);
    }
    Some(out)
}
