//! How a run and its numbers read for people: the closing line, statistics, SI prefixes.

use super::Error;
pub use crate::analysis::series::{Series, series};
use crate::control::SeriesStatistics;
use crate::sequence::RunOutcome;
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

/// One line of statistics for a series: mean and standard deviations from two values on, the
/// value itself for one.
pub fn series_line(s: &Series) -> String {
    match SeriesStatistics::of(0, s) {
        Some(st) => statistics_line(&st),
        None => format!(
            "{}: no valid reading{}",
            s.label(),
            invalid_note(s.invalid as u64)
        ),
    }
}

/// One line of a series' statistics, as `measure` and `status` print them.
pub fn statistics_line(st: &SeriesStatistics) -> String {
    let unit = &st.unit;
    let body = match (st.s, st.u_mean) {
        (Some(s), Some(u_mean)) => format!(
            "n = {}, mean = {:.9} {unit}, s = {}, s/√n = {}",
            st.n,
            st.mean,
            si(s, unit),
            si(u_mean, unit)
        ),
        _ => format!("n = {}, value = {} {unit}", st.n, st.mean),
    };
    format!(
        "{} {}: {body}{}",
        st.instrument,
        st.quantity,
        invalid_note(st.invalid)
    )
}

fn invalid_note(invalid: u64) -> String {
    match invalid {
        0 => String::new(),
        n => format!(" ({n} without a value: overload or not a number)"),
    }
}

/// Statistics of a run's readings, one line per instrument and quantity, each in its own unit.
pub fn run_statistics(store: &Store, outcome: &RunOutcome) -> Result<Vec<String>, Error> {
    let Some(range) = outcome.seq_range else {
        return Ok(Vec::new());
    };
    let rows = store.run_readings(outcome.run_id, range)?;
    Ok(series(&rows).iter().map(series_line).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::series::tests::row;

    #[test]
    fn series_never_pool_instruments_quantities_or_units() {
        let rows = [
            row("dvm", "voltage", "V", Some(10.0)),
            row("env", "pressure", "hPa", Some(1013.0)),
            row("dvm", "voltage", "V", Some(10.2)),
            row("dvm2", "voltage", "V", Some(9.0)),
            row("dvm", "voltage", "mV", Some(10_000.0)),
            row("dvm", "voltage", "V", None),
        ];
        let lines: Vec<String> = series(&rows).iter().map(series_line).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with("dvm voltage: n = 2, mean = 10.100000000 V, s = "),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("(1 without a value: overload or not a number)"));
        assert_eq!(lines[1], "env pressure: n = 1, value = 1013 hPa");
        assert_eq!(lines[2], "dvm2 voltage: n = 1, value = 9 V");
        assert_eq!(lines[3], "dvm voltage: n = 1, value = 10000 mV");
    }
}
