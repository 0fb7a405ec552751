//! How a run and its numbers read for people: the closing line, statistics, SI prefixes.

use super::Error;
use crate::sequence::RunOutcome;
use crate::stats;
use crate::store::Store;

/// One line about how a run ended.
pub fn describe(outcome: &RunOutcome) -> String {
    let range = outcome
        .seq_range
        .map(|(a, b)| format!(", seq {a}–{b}"))
        .unwrap_or_default();
    format!(
        "run {} {}: {} readings{range}",
        outcome.run_id,
        outcome.status.as_str(),
        outcome.readings
    )
}

/// Statistics of a run's valid readings, as one line; `None` with fewer than two.
pub fn run_statistics(store: &Store, outcome: &RunOutcome) -> Result<Option<String>, Error> {
    let Some(range) = outcome.seq_range else {
        return Ok(None);
    };
    let rows = store.run_readings(outcome.run_id, range)?;
    let unit = rows
        .first()
        .map(|r| r.record.unit.clone())
        .unwrap_or_default();
    let values: Vec<f64> = rows.iter().filter_map(|r| r.record.value).collect();
    Ok(stats::summary(&values).ok().map(|s| {
        format!(
            "n = {}, mean = {:.9} {unit}, s = {}, s/√n = {}",
            s.n,
            s.mean,
            si(s.std_dev, &unit),
            si(s.std_dev_of_mean, &unit)
        )
    }))
}

/// `value unit` with an SI prefix and four significant digits, e.g. `125.5 nV`.
pub fn si(value: f64, unit: &str) -> String {
    const PREFIXES: [(f64, &str); 7] = [
        (1e-15, "f"),
        (1e-12, "p"),
        (1e-9, "n"),
        (1e-6, "µ"),
        (1e-3, "m"),
        (1.0, ""),
        (1e3, "k"),
    ];
    let magnitude = value.abs();
    if magnitude == 0.0 || !magnitude.is_finite() {
        return format!("{value} {unit}");
    }
    let (scale, prefix) = PREFIXES
        .iter()
        .rev()
        .find(|(scale, _)| magnitude >= *scale)
        .copied()
        .unwrap_or(PREFIXES[0]);
    let scaled = value / scale;
    let decimals = match scaled.abs() {
        m if m >= 100.0 => 1,
        m if m >= 10.0 => 2,
        _ => 3,
    };
    format!("{scaled:.decimals$} {prefix}{unit}")
}
