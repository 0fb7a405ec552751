//! The stabilisation gate: whether official runs may start, and with what data it opened.
//!
//! The rule: the gate opens once the standard has been received and inspected, carries no damage
//! awaiting a decision, `min` has passed since receipt, and — when a criterion is configured — the
//! drift of the monitoring sequence over the last `window` (readings since receipt only, in the
//! artefact's unit) is small enough: with y = value / nominal and t in days, the OLS slope b and
//! its standard uncertainty u(b) must satisfy |b| + k·u(b) ≤ `max_drift`. A short or noisy series
//! has a large u(b), so it keeps the gate closed rather than opening it on luck. One series is
//! fitted, never a pool: if the monitoring sequence reads several instruments or quantities in the
//! artefact's unit, the criterion must name which (`instrument`, `quantity`). Once open (a
//! `gate_opened` event), the gate stays open until dispatch; damage closes it until a decision.

use tsagent_bundle::event::{GateDrift, GateOpened};

use crate::config::{DriftCriterion, Stabilisation};
use crate::stats;

use super::state::{Custody, State};

/// Microseconds in a day.
const DAY_US: f64 = 86_400_000_000.0;

/// The fewest readings a drift fit with an uncertainty needs.
pub const MIN_POINTS: usize = 3;

/// The gate's state now.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Opened before (its `gate_opened` event is recorded).
    Open,
    /// Opens now: the `gate_opened` event to record, with the data that opened it.
    Opens(GateOpened),
    /// Closed, and why.
    Closed(Closed),
}

/// Why the gate is closed.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// The standard has not been received.
    NotReceived,
    /// The arrival inspection is not recorded.
    NotInspected,
    /// Damage awaits the pilot's decision.
    Damaged,
    /// The standard has been dispatched.
    Dispatched,
    /// `min` has not passed since receipt.
    Settling {
        /// Seconds still to wait.
        remaining_s: u64,
    },
    /// Too few monitoring readings in the window to fit a drift.
    TooFewReadings {
        /// The monitoring sequence.
        sequence: String,
        /// Readings found.
        found: usize,
    },
    /// The window holds more than one series (instrument and quantity) in the unit: the criterion
    /// must name one, as statistics are never pooled across series.
    Pooled {
        /// The series found, `instrument/quantity`.
        series: Vec<String>,
    },
    /// The drift fit failed (no spread in time, say).
    Fit(stats::StatsError),
    /// The drift is still too large.
    Drifting(GateDrift),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotReceived => f.write_str("the standard has not been received"),
            Self::NotInspected => f.write_str("the arrival inspection is not recorded"),
            Self::Damaged => f.write_str(
                "damage to the standard awaits the pilot's decision (`tsagent custody decision`)",
            ),
            Self::Dispatched => f.write_str("the standard has been dispatched"),
            Self::Settling { remaining_s } => write!(
                f,
                "stabilising: the minimum time since receipt has {} to run",
                humantime::format_duration(std::time::Duration::from_secs(*remaining_s))
            ),
            Self::TooFewReadings { sequence, found } => write!(
                f,
                "stabilising: {found} reading(s) of `{sequence}` in the criterion's window, at least {MIN_POINTS} needed"
            ),
            Self::Pooled { series } => write!(
                f,
                "the criterion's window holds several series ({}): name one with `instrument` and `quantity`",
                series.join(", ")
            ),
            Self::Fit(e) => write!(f, "stabilising: the drift fit failed: {e}"),
            Self::Drifting(d) => write!(
                f,
                "stabilising: |drift| + k·u = {:.3e} + {}·{:.3e} per day exceeds {:.3e} (relative, `{}`, {} readings)",
                d.drift_per_day.abs(),
                d.k,
                d.u_drift_per_day,
                d.max_drift,
                d.sequence,
                d.readings
            ),
        }
    }
}

/// The drift criterion's verdict on `series` (UTC µs, value), fitted relative to `nominal` with t
/// in days before `now_us`: the data if the rule holds, why not otherwise.
pub fn drift_verdict(
    criterion: &DriftCriterion,
    nominal: f64,
    now_us: i64,
    series: &[(i64, f64)],
) -> Result<GateDrift, Closed> {
    if series.len() < MIN_POINTS {
        return Err(Closed::TooFewReadings {
            sequence: criterion.sequence.clone(),
            found: series.len(),
        });
    }
    // Days relative to now keep t small; values relative to the nominal make the limit
    // independent of the standard's size (0.05e-6 is 0.05 µV/V per day on a 10 V Zener).
    let t: Vec<f64> = series
        .iter()
        .map(|(us, _)| (*us - now_us) as f64 / DAY_US)
        .collect();
    let y: Vec<f64> = series.iter().map(|(_, v)| v / nominal).collect();
    let fit = stats::ols(&t, &y).map_err(Closed::Fit)?;
    let data = GateDrift {
        sequence: criterion.sequence.clone(),
        window_s: criterion.window.as_secs(),
        readings: u64::try_from(series.len()).unwrap_or(u64::MAX),
        drift_per_day: fit.slope,
        u_drift_per_day: fit.u_slope,
        k: criterion.k,
        max_drift: criterion.max_drift,
    };
    if fit.slope.abs() + criterion.k * fit.u_slope <= criterion.max_drift {
        Ok(data)
    } else {
        Err(Closed::Drifting(data))
    }
}

/// Where the criterion's series starts: `window` before now, but never before receipt.
pub fn series_since(criterion: &DriftCriterion, received_utc_us: i64, now_us: i64) -> i64 {
    let window = i64::try_from(criterion.window.as_micros()).unwrap_or(i64::MAX);
    now_us.saturating_sub(window).max(received_utc_us)
}

/// One reading of the monitoring sequence: its series (`instrument/quantity`), time (UTC µs)
/// and value.
pub type Point = (String, i64, f64);

/// The gate now, for `custody` at `now_us` (from the injected clock). `series` fetches the
/// criterion's readings from a start time; it is called only when the rule needs them.
pub fn evaluate<E>(
    custody: &Custody,
    stabilisation: &Stabilisation,
    nominal: f64,
    now_us: i64,
    series: impl FnOnce(&DriftCriterion, i64) -> Result<Vec<Point>, E>,
) -> Result<Gate, E> {
    let closed = |why| Ok(Gate::Closed(why));
    let received = match (custody.state, custody.received_utc_us) {
        (State::Dispatched, _) => return closed(Closed::Dispatched),
        (State::Expected, _) | (_, None) => return closed(Closed::NotReceived),
        _ if custody.damage_pending => return closed(Closed::Damaged),
        (State::OfficialWindow, _) => return Ok(Gate::Open),
        (State::Received, _) => return closed(Closed::NotInspected),
        (State::Stabilising, Some(at)) => at,
    };
    let elapsed_us = now_us.saturating_sub(received).max(0);
    let min_us = i64::try_from(stabilisation.min.as_micros()).unwrap_or(i64::MAX);
    if elapsed_us < min_us {
        let remaining_us = u64::try_from(min_us - elapsed_us).unwrap_or(0);
        return closed(Closed::Settling {
            remaining_s: remaining_us.div_ceil(1_000_000),
        });
    }
    let drift = match &stabilisation.criterion {
        None => None,
        Some(c) => {
            let points = series(c, series_since(c, received, now_us))?;
            let mut names: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
            names.sort();
            names.dedup();
            if names.len() > 1 {
                return closed(Closed::Pooled { series: names });
            }
            let data: Vec<(i64, f64)> = points.into_iter().map(|(_, t, v)| (t, v)).collect();
            match drift_verdict(c, nominal, now_us, &data) {
                Ok(d) => Some(d),
                Err(why) => return closed(why),
            }
        }
    };
    Ok(Gate::Opens(GateOpened {
        received_utc: tsagent_bundle::time::rfc3339(received),
        min_s: stabilisation.min.as_secs(),
        elapsed_s: u64::try_from(elapsed_us / 1_000_000).unwrap_or(0),
        drift,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::time::Duration;

    const H: i64 = 3_600_000_000;
    const NOMINAL: f64 = 10.0;

    fn stabilising(received: i64) -> Custody {
        Custody {
            state: State::Stabilising,
            received_utc_us: Some(received),
            inspected: true,
            damage_pending: false,
            gate_opened_utc_us: None,
            dispatched_utc_us: None,
        }
    }

    fn criterion() -> DriftCriterion {
        DriftCriterion {
            sequence: "stability".into(),
            window: Duration::from_secs(24 * 3600),
            max_drift: 0.05e-6,
            k: 2.0,
            instrument: None,
            quantity: None,
        }
    }

    /// A Zener settling after transport: an exponential approach to 10 V (τ = 12 h, 2 µV/V
    /// off at receipt) plus deterministic ±2 nV scatter, one reading an hour.
    fn settling(hours: i64) -> Vec<(i64, f64)> {
        (0..hours)
            .map(|h| {
                let t = h as f64;
                let scatter = if h % 2 == 0 { 2e-9 } else { -2e-9 };
                (h * H, NOMINAL * (1.0 + 2e-6 * (-t / 12.0).exp()) + scatter)
            })
            .collect()
    }

    fn eval(custody: &Custody, min_h: u64, now: i64, series: &[(i64, f64)]) -> Gate {
        let stab = Stabilisation {
            min: Duration::from_secs(min_h * 3600),
            criterion: Some(criterion()),
        };
        let since_now = |c: &DriftCriterion, since: i64| {
            assert!(since >= custody.received_utc_us.unwrap());
            let _ = c;
            // The log holds nothing after `now`.
            Ok::<_, Infallible>(
                series
                    .iter()
                    .filter(|(t, _)| *t >= since && *t <= now)
                    .map(|&(t, v)| ("dvm/voltage".to_owned(), t, v))
                    .collect(),
            )
        };
        let Ok(gate) = evaluate(custody, &stab, NOMINAL, now, since_now);
        gate
    }

    #[test]
    fn min_time_is_counted_from_receipt_on_the_injected_clock() {
        let c = stabilising(0);
        let series = settling(200);
        assert_eq!(
            eval(&c, 72, 71 * H, &series),
            Gate::Closed(Closed::Settling { remaining_s: 3600 })
        );
        assert!(matches!(eval(&c, 72, 72 * H, &series), Gate::Opens(_)));
    }

    #[test]
    fn a_settling_series_keeps_the_gate_closed_until_its_drift_is_small() {
        let c = stabilising(0);
        let series = settling(200);
        // After a day the standard still drifts by far more than 0.05e-6 per day.
        let early = eval(&c, 0, 24 * H, &series);
        assert!(
            matches!(&early, Gate::Closed(Closed::Drifting(d)) if d.drift_per_day < -0.5e-6),
            "{early:?}"
        );
        // Four days on the exponential has settled to well under the limit.
        let Gate::Opens(opened) = eval(&c, 0, 96 * H, &series) else {
            panic!("gate should open");
        };
        let d = opened.drift.unwrap();
        assert!(
            d.drift_per_day.abs() + d.k * d.u_drift_per_day <= d.max_drift,
            "{d:?}"
        );
        assert_eq!(d.readings, 25, "hours 72 to 96, both ends of the window");
        assert_eq!(opened.elapsed_s, 96 * 3600);
        // Find the first hour it opens: the rule is monotone on this series.
        let first = (24..96)
            .find(|h| matches!(eval(&c, 0, h * H, &series), Gate::Opens(_)))
            .unwrap();
        assert!((40..96).contains(&first), "opened at {first} h");
    }

    #[test]
    fn noise_without_drift_needs_enough_readings() {
        let c = stabilising(0);
        // Flat but noisy: ±0.2 µV/V alternate readings over 2 hours give a large u(b).
        let noisy: Vec<(i64, f64)> = (0..3)
            .map(|h| (h * H, NOMINAL * (1.0 + if h == 1 { 2e-7 } else { -2e-7 })))
            .collect();
        assert!(matches!(
            eval(&c, 0, 3 * H, &noisy),
            Gate::Closed(Closed::Drifting(_))
        ));
        assert_eq!(
            eval(&c, 0, 3 * H, &noisy[..2]),
            Gate::Closed(Closed::TooFewReadings {
                sequence: "stability".into(),
                found: 2
            })
        );
    }

    #[test]
    fn custody_closes_the_gate_before_any_data_is_read() {
        let mut c = stabilising(0);
        c.damage_pending = true;
        assert_eq!(eval(&c, 0, 100 * H, &[]), Gate::Closed(Closed::Damaged));
        c.damage_pending = false;
        c.state = State::Received;
        assert_eq!(
            eval(&c, 0, 100 * H, &[]),
            Gate::Closed(Closed::NotInspected)
        );
        c.state = State::OfficialWindow;
        assert_eq!(eval(&c, 0, 100 * H, &[]), Gate::Open);
        c.state = State::Dispatched;
        assert_eq!(eval(&c, 0, 100 * H, &[]), Gate::Closed(Closed::Dispatched));
        let expected = Custody {
            state: State::Expected,
            received_utc_us: None,
            ..c
        };
        assert_eq!(eval_expected(&expected), Gate::Closed(Closed::NotReceived));
    }

    #[test]
    fn two_series_in_the_unit_are_never_pooled() {
        let stab = Stabilisation {
            min: Duration::ZERO,
            criterion: Some(criterion()),
        };
        let points: Vec<Point> = (0..6)
            .map(|h| {
                let name = if h % 2 == 0 {
                    "dvm/voltage"
                } else {
                    "ref/voltage"
                };
                (name.to_owned(), h * H, NOMINAL)
            })
            .collect();
        let Ok(gate) = evaluate(&stabilising(0), &stab, NOMINAL, 6 * H, |_, _| {
            Ok::<_, Infallible>(points)
        });
        assert_eq!(
            gate,
            Gate::Closed(Closed::Pooled {
                series: vec!["dvm/voltage".into(), "ref/voltage".into()]
            })
        );
    }

    fn eval_expected(c: &Custody) -> Gate {
        let Ok(gate) = evaluate(c, &Stabilisation::default(), NOMINAL, 0, |_, _| {
            Ok::<_, Infallible>(Vec::new())
        });
        gate
    }
}
