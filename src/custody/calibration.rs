//! The lab's own standards: which instruments of an official sequence are past their
//! calibration's due date.

use crate::config::{Calibration, Config, Sequence};

/// An instrument of the sequence whose calibration is past due at the time asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Expired<'a> {
    /// The instrument's name.
    pub instrument: &'a str,
    /// Its calibration.
    pub calibration: &'a Calibration,
}

/// The instruments `sequence` uses (in the order of first use) whose calibration is past due at
/// `now_us`: a calibration is valid through its due date, so it expires at the next midnight UTC.
/// Instruments without a configured calibration are not judged here (the manifest's traceability
/// shows they have none).
pub fn expired<'a>(config: &'a Config, sequence: &Sequence, now_us: i64) -> Vec<Expired<'a>> {
    let mut out: Vec<Expired<'a>> = Vec::new();
    for step in &sequence.steps {
        let Some(instrument) = config.instrument(step.instrument()) else {
            continue;
        };
        if out.iter().any(|e| e.instrument == instrument.name) {
            continue;
        }
        if let Some(c) = &instrument.calibration
            && now_us >= c.due.end_utc_us()
        {
            out.push(Expired {
                instrument: &instrument.name,
                calibration: c,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[lab]
id = "L"
name = "Lab"
[artefact]
id = "Z"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[[instrument]]
name = "dvm"
resource = "SIM::PTY::INSTR"
calibration = { certificate = "C-1", calibrated = "2025-01-10", due = "2026-01-10" }
[[instrument]]
name = "env"
resource = "SIM::PTY::INSTR"
[[sequence]]
name = "official"
official = true
[[sequence.step]]
read = { instrument = "dvm", count = 1, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "dvm", count = 1, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "env", count = 1, quantity = "voltage", unit = "V" }
"#;

    #[test]
    fn a_calibration_is_valid_through_its_due_date() {
        let config = Config::parse(CONFIG, "test", Path::new(".")).unwrap();
        let seq = config.sequence("official").unwrap();
        let due = crate::config::CalendarDate::parse("2026-01-10").unwrap();
        assert!(expired(&config, seq, due.start_utc_us()).is_empty());
        assert!(expired(&config, seq, due.end_utc_us() - 1).is_empty());
        let late = expired(&config, seq, due.end_utc_us());
        assert_eq!(late.len(), 1, "once per instrument, none for `env`");
        assert_eq!(late[0].instrument, "dvm");
        assert_eq!(late[0].calibration.certificate, "C-1");
    }
}
