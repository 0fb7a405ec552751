//! How runs show progress: a live line on a terminal, one line per reading otherwise (so scripts and
//! tests can follow along), or structured log records under the daemon.

use std::io::{IsTerminal, Write};

use crate::sequence::{Observer, ReadingReport};
use crate::session::{Identity, Measurement};

/// A measured value as a person reads it.
pub fn show(m: &Measurement, unit: &str) -> String {
    match m {
        Measurement::Value(v) => format!("{v:+.9} {unit}"),
        Measurement::Overload { negative: false } => "OVERLOAD".to_owned(),
        Measurement::Overload { negative: true } => "-OVERLOAD".to_owned(),
        Measurement::NotANumber => "NaN".to_owned(),
    }
}

/// Picks the display for `tsagent measure`.
pub fn for_terminal() -> Box<dyn Observer> {
    if std::io::stderr().is_terminal() {
        Box::new(Live::default())
    } else {
        Box::new(Lines)
    }
}

/// Overwrites one status line on stderr.
#[derive(Default)]
pub struct Live {
    drawn: bool,
}

impl Observer for Live {
    fn started(&mut self, run_id: u64, sequence: &str, total: u64) {
        tell!("run {run_id}: `{sequence}`, {total} readings");
    }

    fn identified(&mut self, instrument: &str, id: &Identity) {
        tell!(
            "  {instrument}: {} {} serial {} firmware {}",
            id.manufacturer,
            id.model,
            id.serial,
            id.firmware
        );
    }

    fn reading(&mut self, r: &ReadingReport<'_>) {
        let mut err = std::io::stderr().lock();
        // A failed progress write must never stop a measurement.
        let _ = write!(
            err,
            "\r  {} {:>6}/{:<6} {}  (seq {})\x1b[K",
            r.instrument,
            r.done,
            r.total,
            show(&r.measurement, r.unit),
            r.seq
        );
        if r.done == r.total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
        self.drawn = true;
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.drawn {
            tell!();
        }
    }
}

/// One line per event on stdout.
pub struct Lines;

impl Observer for Lines {
    fn started(&mut self, run_id: u64, sequence: &str, total: u64) {
        say!("run {run_id} started: sequence={sequence} readings={total}");
    }

    fn identified(&mut self, instrument: &str, id: &Identity) {
        say!(
            "identified {instrument}: {},{},{},{}",
            id.manufacturer,
            id.model,
            id.serial,
            id.firmware
        );
    }

    fn reading(&mut self, r: &ReadingReport<'_>) {
        say!(
            "reading {}/{} seq={} {} {}",
            r.done,
            r.total,
            r.seq,
            r.instrument,
            show(&r.measurement, r.unit)
        );
    }
}

/// Structured log records, for the daemon.
pub struct Log;

impl Observer for Log {
    fn started(&mut self, run_id: u64, sequence: &str, total: u64) {
        tracing::info!(run_id, sequence, readings = total, "run started");
    }

    fn identified(&mut self, instrument: &str, id: &Identity) {
        tracing::info!(instrument, manufacturer = %id.manufacturer, model = %id.model, serial = %id.serial, firmware = %id.firmware, "identified");
    }

    fn reading(&mut self, r: &ReadingReport<'_>) {
        tracing::info!(seq = r.seq, instrument = r.instrument, done = r.done, total = r.total, value = %show(&r.measurement, r.unit), raw = r.raw, "reading committed");
    }
}
