//! Readings split into series that may be pooled: one instrument, one quantity, one unit. `measure`,
//! the demo and the daemon's status all state their statistics from here, so the three agree.

use crate::stats::{self, Summary};
use crate::store::ReadingRow;

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

    /// Type A statistics of the valid values; `None` below two values, where there is no spread.
    pub fn summary(&self) -> Option<Summary> {
        stats::summary(&self.values).ok()
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tsagent_bundle::chain::{ReadingRecord, ReadingStatus};

    /// A reading row of `instrument` with only what series look at filled in.
    pub(crate) fn row(
        instrument: &str,
        quantity: &str,
        unit: &str,
        value: Option<f64>,
    ) -> ReadingRow {
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
        let s = series(&rows);
        let keys: Vec<(&str, &str, &str, usize, usize)> = s
            .iter()
            .map(|s| {
                (
                    s.instrument.as_str(),
                    s.quantity.as_str(),
                    s.unit.as_str(),
                    s.values.len(),
                    s.invalid,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("dvm", "voltage", "V", 2, 1),
                ("env", "pressure", "hPa", 1, 0),
                ("dvm2", "voltage", "V", 1, 0),
                ("dvm", "voltage", "mV", 1, 0),
            ]
        );
        let summary = s[0].summary().unwrap();
        assert_eq!(summary.n, 2);
        assert!((summary.mean - 10.1).abs() < 1e-12);
        assert!(s[1].summary().is_none());
    }
}
