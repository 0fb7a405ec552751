//! How a run and its numbers read for people: the closing line, statistics, SI prefixes.

use super::Error;
use crate::sequence::RunOutcome;
use crate::stats;
use crate::store::{ReadingRow, Store};

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

/// The readings of one instrument and quantity in one unit: the only readings that may be pooled
/// into one statistic.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Instrument name.
    pub instrument: String,
    /// Quantity name.
    pub quantity: String,
    /// Unit.
    pub unit: String,
    /// Valid values, in reading order.
    pub values: Vec<f64>,
    /// UTC microseconds of each valid value.
    pub utc_us: Vec<i64>,
    /// Readings that had no value (overload, not a number).
    pub invalid: usize,
}

impl Series {
    /// `instrument quantity`, as lines start.
    pub fn label(&self) -> String {
        format!("{} {}", self.instrument, self.quantity)
    }
}

/// Splits readings into series by instrument, quantity and unit, in the order each is first seen.
pub fn series(rows: &[ReadingRow]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for row in rows {
        let r = &row.record;
        let index = match out.iter().position(|s| {
            s.instrument == row.instrument && s.quantity == r.quantity && s.unit == r.unit
        }) {
            Some(i) => i,
            None => {
                out.push(Series {
                    instrument: row.instrument.clone(),
                    quantity: r.quantity.clone(),
                    unit: r.unit.clone(),
                    values: Vec::new(),
                    utc_us: Vec::new(),
                    invalid: 0,
                });
                out.len() - 1
            }
        };
        let s = &mut out[index];
        match r.value {
            Some(v) => {
                s.values.push(v);
                s.utc_us.push(r.utc_us);
            }
            None => s.invalid += 1,
        }
    }
    out
}

/// One line of statistics for a series: mean and standard deviations from two values on, the
/// value itself for one.
pub fn series_line(s: &Series) -> String {
    let unit = &s.unit;
    let invalid = match s.invalid {
        0 => String::new(),
        n => format!(" ({n} without a value: overload or not a number)"),
    };
    let body = match (s.values.as_slice(), stats::summary(&s.values)) {
        (_, Ok(st)) => format!(
            "n = {}, mean = {:.9} {unit}, s = {}, s/√n = {}",
            st.n,
            st.mean,
            si(st.std_dev, unit),
            si(st.std_dev_of_mean, unit)
        ),
        ([one], Err(_)) => format!("n = 1, value = {one} {unit}"),
        (_, Err(_)) => "no valid reading".to_owned(),
    };
    format!("{}: {body}{invalid}", s.label())
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
    use tsagent_bundle::chain::{ReadingRecord, ReadingStatus};

    fn row(instrument: &str, quantity: &str, unit: &str, value: Option<f64>) -> ReadingRow {
        ReadingRow {
            record: ReadingRecord {
                seq: 1,
                run_id: 1,
                instrument_id: 1,
                quantity: quantity.into(),
                value,
                status: if value.is_some() {
                    ReadingStatus::Valid
                } else {
                    ReadingStatus::Overload
                },
                unit: unit.into(),
                raw: String::new(),
                utc_us: 0,
                mono_ns: 0,
                boot_id: String::new(),
            },
            chain: [0; 32],
            sequence: "s".into(),
            instrument: instrument.into(),
        }
    }

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
