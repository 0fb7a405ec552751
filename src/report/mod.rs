//! The lab's report: what it sends the pilot and keeps. Rendering only, from a plain-data
//! [`ReportInput`] the caller fills from the analysis and the config; nothing here reads the
//! database or the config.
//!
//! [`write`] puts in one folder `report.html` (self-contained: inline CSS and SVG, no script,
//! printable), `summary.json` (the result as D-SI-style quantities), `readings.csv`, the plots as
//! SVG files, and, if asked, a PTB Digital Calibration Certificate 3.2.0 (`dcc.rs`). Each file is
//! written to a temporary name and renamed, so a half-written report never shows.
//!
//! `summary.json`'s shape: `result` is `{value, unit, dateTime, standardUncertainty,
//! expandedUnc: {uncertainty, coverageFactor, coverageProbability, distribution}, dof, n,
//! leftOut}` with `unit` a D-SI string (`\volt`) and `dof` `null` when infinite; `drift` is
//! `{value, unit, standardUncertainty, significant}` per day; `budget` is its rows, each with
//! `name {en, zh}`, `type` (`A`/`B`), `distribution`, `value`, `unit`, `divisor`,
//! `standardUncertainty`, `sensitivity`, `contribution`, `dof`, `share`.

mod dcc;
mod error;
mod html;
mod input;
mod plots;
mod svg;
mod text;
mod units;

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use input::{
    Admin, AllanPoint, AllanSeries, Artefact, Bilingual, BudgetRow, Calibration, Condition,
    Distribution, DriftLine, DriftRate, EnvironmentSeries, EvalType, Instrument, LabResult,
    Quantity, Reading, ReportInput, Residuals, StatedUncertainty,
};
pub use plots::Figure;
pub use svg::{Axis, Plot, Scale, Ticks, linear_ticks, log_ticks, time_ticks};
pub use text::{Lang, parse_languages, with_uncertainty};
pub use units::{dsi, prefix_for};

/// How to write a report.
#[derive(Debug, Clone)]
pub struct Options {
    /// The languages of the labels, in the order shown (`--lang zh,en`).
    pub languages: Vec<Lang>,
    /// Where to write a DCC of the result (`--dcc FILE.xml`), if wanted.
    pub dcc: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            languages: vec![Lang::Zh, Lang::En],
            dcc: None,
        }
    }
}

/// The files a report wrote, so the caller can list them (a sealed bundle carries them).
#[derive(Debug, Clone)]
pub struct Written {
    /// `report.html`.
    pub html: PathBuf,
    /// `summary.json`.
    pub summary: PathBuf,
    /// `readings.csv`.
    pub readings: PathBuf,
    /// The SVG plots, in the report's order.
    pub plots: Vec<PathBuf>,
    /// The DCC, if one was asked for.
    pub dcc: Option<PathBuf>,
}

/// RFC 3339 UTC text of an instant, as everywhere in tsagent.
fn text_utc(utc_us: i64) -> String {
    tsagent_bundle::time::rfc3339(utc_us)
}

/// An instant in whole seconds, as `xs:dateTime` and people read it: `2026-03-09T12:00:00Z`.
fn text_utc_s(utc_us: i64) -> String {
    let t = text_utc(utc_us);
    match t.get(..19) {
        Some(s) if t.len() == tsagent_bundle::time::UTC_LEN => format!("{s}Z"),
        _ => t,
    }
}

/// Writes the report for `input` into `dir` (made if missing) and, if `options.dcc` says so, the
/// DCC. The input is checked first, so a bad one writes nothing.
pub fn write(dir: &Path, input: &ReportInput, options: &Options) -> Result<Written, ReportError> {
    check(input)?;
    if options.languages.is_empty() {
        return Err(ReportError::Language(String::new()));
    }
    let langs = &options.languages;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let figures = plots::figures(input, langs);
    let mut plots = Vec::new();
    for f in &figures {
        plots.push(atomic(&dir.join(&f.file), f.svg.as_bytes())?);
    }
    let summary = atomic(&dir.join("summary.json"), &summary_json(input)?)?;
    let readings = atomic(&dir.join("readings.csv"), readings_csv(input).as_bytes())?;
    let page = html::render(input, &figures, langs);
    let html = atomic(&dir.join("report.html"), page.as_bytes())?;
    let dcc = match &options.dcc {
        Some(path) => Some(atomic(path, dcc::render(input)?.as_bytes())?),
        None => None,
    };
    Ok(Written {
        html,
        summary,
        readings,
        plots,
        dcc,
    })
}

/// Writes `bytes` to `path` through a temporary file beside it, synced, then renamed over it.
fn atomic(path: &Path, bytes: &[u8]) -> Result<PathBuf, ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path.file_name().map_or_else(
        || std::ffi::OsString::from("report"),
        std::ffi::OsStr::to_owned,
    );
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(path.to_owned())
}

/// The result as D-SI-style quantities.
fn summary_json(input: &ReportInput) -> Result<Vec<u8>, ReportError> {
    let r = &input.result;
    let unit = dsi(&input.quantity.unit)?;
    let mut budget = Vec::new();
    for row in &input.budget {
        budget.push(serde_json::json!({
            "name": {"en": row.name.en, "zh": row.name.zh},
            "type": match row.eval { EvalType::A => "A", EvalType::B => "B" },
            "distribution": row.distribution,
            "value": row.value,
            "unit": dsi(&row.unit)?,
            "divisor": row.divisor,
            "standardUncertainty": row.u,
            "sensitivity": row.sensitivity,
            "contribution": row.contribution,
            "dof": row.dof,
            "share": row.share,
        }));
    }
    let value = serde_json::json!({
        "lab": input.admin.lab_id,
        "comparison": input.admin.comparison_id,
        "reportId": input.admin.report_id,
        "issueDate": input.admin.issue_date,
        "artefact": {"id": input.artefact.id, "serial": input.artefact.serial},
        "quantity": {"name": {"en": input.quantity.name.en, "zh": input.quantity.name.zh}, "symbol": input.quantity.symbol},
        "window": {"begin": text_utc(input.admin.window_begin_utc_us), "end": text_utc(input.admin.window_end_utc_us)},
        "result": {
            "value": r.value,
            "unit": unit,
            "dateTime": text_utc_s(r.mean_date_utc_us),
            "standardUncertainty": r.u_c,
            "expandedUnc": {
                "uncertainty": r.expanded,
                "coverageFactor": r.k,
                "coverageProbability": r.coverage_probability,
                "distribution": if r.nu_eff.is_some() { "t" } else { "normal" },
            },
            "dof": r.nu_eff,
            "n": r.n,
            "leftOut": r.left_out,
        },
        "drift": {
            "value": r.drift.slope_per_day,
            "unit": format!("{unit}\\day\\tothe{{-1}}"),
            "standardUncertainty": r.drift.u,
            "significant": r.drift.significant,
        },
        "budget": budget,
    });
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(ReportError::Json)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Every reading, raw and corrected (empty when it could not be), and whether it was left out.
fn readings_csv(input: &ReportInput) -> String {
    let mut out = String::from("seq,run,utc,raw,corrected,flagged\n");
    let mut b = ryu::Buffer::new();
    for r in &input.readings {
        out.push_str(&format!("{},{},{},", r.seq, r.run, text_utc(r.utc_us)));
        out.push_str(b.format(r.raw));
        out.push(',');
        if let Some(c) = r.corrected {
            out.push_str(b.format(c));
        }
        out.push_str(if r.flagged { ",1\n" } else { ",0\n" });
    }
    out
}

/// Refuses input no document can show, naming the field.
fn check(input: &ReportInput) -> Result<(), ReportError> {
    let bad = |field: String, reason: &str| ReportError::Input {
        field,
        reason: reason.to_owned(),
    };
    let finite = |field: &str, v: f64| {
        if v.is_finite() {
            Ok(())
        } else {
            Err(bad(field.to_owned(), "not a finite number"))
        }
    };
    let a = &input.admin;
    for (field, text) in [
        ("admin.lab_id", &a.lab_id),
        ("admin.lab_name.en", &a.lab_name.en),
        ("admin.city", &a.city),
        ("admin.pilot.en", &a.pilot.en),
        ("admin.pilot_city", &a.pilot_city),
        ("admin.responsible", &a.responsible),
        ("admin.report_id", &a.report_id),
        ("artefact.id", &input.artefact.id),
        ("artefact.kind.en", &input.artefact.kind.en),
        ("artefact.manufacturer", &input.artefact.manufacturer),
        ("quantity.name.en", &input.quantity.name.en),
        ("quantity.symbol", &input.quantity.symbol),
    ] {
        if text.trim().is_empty() {
            return Err(bad(field.into(), "empty"));
        }
    }
    for (field, code) in [
        ("admin.country", &a.country),
        ("admin.pilot_country", &a.pilot_country),
    ] {
        if !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(bad(
                field.into(),
                "not an ISO 3166-1 alpha-2 code (two capital letters)",
            ));
        }
    }
    let date = |field: String, d: &str| {
        if is_date(d) {
            Ok(())
        } else {
            Err(bad(field, "not a date YYYY-MM-DD"))
        }
    };
    date("admin.issue_date".into(), &a.issue_date)?;
    for (field, t) in [
        ("admin.window_begin_utc_us", a.window_begin_utc_us),
        ("admin.window_end_utc_us", a.window_end_utc_us),
        ("result.mean_date_utc_us", input.result.mean_date_utc_us),
    ] {
        if !tsagent_bundle::time::utc_us_in_range(t) {
            return Err(bad(field.into(), "outside years 1970 to 9999"));
        }
    }
    if a.window_end_utc_us < a.window_begin_utc_us {
        return Err(bad(
            "admin.window_end_utc_us".into(),
            "before the window's begin",
        ));
    }
    for (field, unit) in [
        ("quantity.unit", &input.quantity.unit),
        ("artefact.unit", &input.artefact.unit),
    ] {
        dsi(unit).map_err(|e| bad(field.into(), &e.to_string()))?;
    }
    finite("artefact.nominal", input.artefact.nominal)?;
    let r = &input.result;
    for (field, v) in [
        ("result.value", r.value),
        ("result.u_c", r.u_c),
        ("result.k", r.k),
        ("result.expanded", r.expanded),
        ("result.coverage_probability", r.coverage_probability),
        ("result.drift.slope_per_day", r.drift.slope_per_day),
        ("result.drift.u", r.drift.u),
    ] {
        finite(field, v)?;
    }
    if r.nu_eff.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
        return Err(bad(
            "result.nu_eff".into(),
            "not a positive number (None is infinite)",
        ));
    }
    if r.k < 1.0 {
        return Err(bad("result.k".into(), "below 1"));
    }
    if !(r.coverage_probability > 0.0 && r.coverage_probability <= 1.0) {
        return Err(bad("result.coverage_probability".into(), "not in (0, 1]"));
    }
    for (i, row) in input.budget.iter().enumerate() {
        for (name, v) in [
            ("value", row.value),
            ("divisor", row.divisor),
            ("u", row.u),
            ("sensitivity", row.sensitivity),
            ("contribution", row.contribution),
            ("share", row.share),
        ] {
            finite(&format!("budget[{i}].{name}"), v)?;
        }
        if row.dof.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            return Err(bad(format!("budget[{i}].dof"), "not a positive number"));
        }
        dsi(&row.unit).map_err(|e| bad(format!("budget[{i}].unit"), &e.to_string()))?;
    }
    for (i, rd) in input.readings.iter().enumerate() {
        finite(&format!("readings[{i}].raw"), rd.raw)?;
        if let Some(c) = rd.corrected {
            finite(&format!("readings[{i}].corrected"), c)?;
        }
        if !tsagent_bundle::time::utc_us_in_range(rd.utc_us) {
            return Err(bad(
                format!("readings[{i}].utc_us"),
                "outside years 1970 to 9999",
            ));
        }
    }
    if let Some(d) = &input.drift {
        for (name, v) in [
            ("intercept", d.intercept),
            ("slope_per_day", d.slope_per_day),
            ("band_k", d.band_k),
            ("covariance", d.covariance[0][0]),
            ("covariance", d.covariance[0][1]),
            ("covariance", d.covariance[1][0]),
            ("covariance", d.covariance[1][1]),
        ] {
            finite(&format!("drift.{name}"), v)?;
        }
    }
    if let Some(al) = &input.allan {
        for (i, p) in al.points.iter().enumerate() {
            if !(p.tau_s.is_finite() && p.tau_s > 0.0 && p.adev.is_finite() && p.adev > 0.0) {
                return Err(bad(
                    format!("allan.points[{i}]"),
                    "τ and the deviation must be positive",
                ));
            }
            if !(p.err.is_finite() && p.err >= 0.0) {
                return Err(bad(
                    format!("allan.points[{i}].err"),
                    "not a non-negative number",
                ));
            }
        }
    }
    for (i, e) in input.environment.iter().enumerate() {
        for (j, (t, v)) in e.points.iter().enumerate() {
            finite(&format!("environment[{i}].points[{j}]"), *v)?;
            if !tsagent_bundle::time::utc_us_in_range(*t) {
                return Err(bad(
                    format!("environment[{i}].points[{j}]"),
                    "outside years 1970 to 9999",
                ));
            }
        }
    }
    if let Some(res) = &input.residuals {
        for (j, (x, y)) in res.points.iter().enumerate() {
            finite(&format!("residuals.points[{j}]"), *x)?;
            finite(&format!("residuals.points[{j}]"), *y)?;
        }
    }
    for (i, c) in input.conditions.iter().enumerate() {
        for v in [c.mean, c.min, c.max] {
            finite(&format!("conditions[{i}]"), v)?;
        }
        dsi(&c.unit).map_err(|e| bad(format!("conditions[{i}].unit"), &e.to_string()))?;
    }
    for (i, ins) in input.instruments.iter().enumerate() {
        if ins.name.trim().is_empty() {
            return Err(bad(format!("instruments[{i}].name"), "empty"));
        }
        if let Some(c) = &ins.calibration {
            if c.certificate.trim().is_empty() {
                return Err(bad(
                    format!("instruments[{i}].calibration.certificate"),
                    "empty",
                ));
            }
            date(format!("instruments[{i}].calibration.date"), &c.date)?;
            if let Some(due) = &c.due {
                date(format!("instruments[{i}].calibration.due"), due)?;
            }
            if let Some(u) = &c.uncertainty {
                finite(
                    &format!("instruments[{i}].calibration.uncertainty"),
                    u.value,
                )?;
                if !(u.k.is_finite() && u.k >= 1.0) {
                    return Err(bad(
                        format!("instruments[{i}].calibration.uncertainty.k"),
                        "below 1",
                    ));
                }
                dsi(&u.unit).map_err(|e| {
                    bad(
                        format!("instruments[{i}].calibration.uncertainty.unit"),
                        &e.to_string(),
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` with a month 1–12 and a day 1–31.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        text.get(r)?.bytes().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    matches!(
        (digits(0..4), digits(5..7), digits(8..10)),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_are_checked() {
        assert!(is_date("2026-03-02"));
        for bad in [
            "2026-3-2",
            "2026-13-01",
            "2026-01-00",
            "20260101",
            "2026-01-0x",
            "",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn instants_for_xml_are_whole_seconds() {
        assert_eq!(text_utc_s(1_772_409_600_500_000), "2026-03-02T00:00:00Z");
    }

    proptest! {
        #[test]
        fn the_date_check_never_panics(s in "\\PC{0,12}") {
            let _ = is_date(&s);
        }
    }
}
