//! Fluke 1594A Super-Thermometer (SCPI-like, through the `scpi` crate), reading an SPRT in a
//! water triple-point cell.
//!
//! Commands (ended by CR or LF): IEEE 488.2 commons (`*IDN?` → `FLUKE,1594A,<serial>,
//! <firmware>`), `SYST:ERR?`, `FETC? [channel]` (the latest measurement: `0.012300`, °C with
//! 6 decimals, or Ω / ratio per `CALC:TYPE`), `STAT:OPER[:EVEN]?` (16 when a measurement newer
//! than the last one reported is available, else 0; reading it, `FETC?` and `*CLS` clear it),
//! `STAT:OPER:COND?`, `CALC[1]:TYPE TEMP|RES|RAT` (and `?`).
//!
//! Measurements complete at a fixed rate, one per second with realistic timing (one per 100 ms
//! without), on the simulator's clock, whether or not anyone asks; `FETC?` before the first one
//! queues -230 "Data corrupt or stale". The temperature is the triple point (0.01 °C) plus the
//! standard's deviation from nominal scaled 1 µV → 1 mK, so drift, noise and the lab's
//! temperature coefficient show the same way as on the DMMs.

use std::time::Duration;

use scpi::error::{ErrorCode, Result as ScpiResult};
use scpi::tree::prelude::*;
use scpi::{Branch, Leaf};

use super::Setup;
use super::model::Standard;
use super::scpi_util::*;
use crate::id::PersonalityId;

/// Kelvin per volt of the standard's deviation.
const KELVIN_PER_VOLT: f64 = 1_000.0;

/// Triple point of water, °C.
const TPW: f64 = 0.01;

/// SPRT resistance at 0 °C and its sensitivity (a 25.5 Ω SPRT).
const R0: f64 = 25.5;
const ALPHA: f64 = 3.985e-3;

/// The event bit of `STAT:OPER?` for a new measurement.
const NEW_MEASUREMENT: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CalcType {
    Temp,
    Res,
    Ratio,
}

/// `CALC:TYPE` keywords.
const CALC_TYPES: [(&[u8], CalcType); 3] = [
    (b"TEMPerature", CalcType::Temp),
    (b"RESistance", CalcType::Res),
    (b"RATio", CalcType::Ratio),
];

type F = Scpi<Fluke1594a>;

/// The simulated 1594A.
pub(crate) struct Fluke1594a {
    standard: Standard,
    calc: CalcType,
    /// Index of the newest measurement already reported (0: none).
    acknowledged: u64,
    /// The newest measurement computed: its index and temperature.
    cached: Option<(u64, f64)>,
}

impl ScpiModel for Fluke1594a {
    const TREE: Node<'static, F> = TREE;
    const INPUT_TERMINATORS: &'static [u8] = b"\r\n";
    const INJECTED_ERROR: ErrorCode = ErrorCode::DataCorruptOrStale;

    fn reset(&mut self) {
        self.calc = CalcType::Temp;
    }

    /// A cleared status also forgets that a measurement is new.
    fn cleared(&mut self) {
        self.acknowledged = self.completed();
    }
}

impl Fluke1594a {
    /// The simulated 1594A, at power-on.
    pub(crate) fn new(setup: Setup) -> F {
        let model = Self {
            standard: Standard::new(&setup),
            calc: CalcType::Temp,
            acknowledged: 0,
            cached: None,
        };
        let identity = identity("FLUKE", "1594A", &setup.serial);
        Scpi::new(PersonalityId::Fluke1594a, identity, model)
    }

    fn period(&self) -> Duration {
        if self.standard.params.realistic_timing {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        }
    }

    /// Measurements completed so far.
    fn completed(&self) -> u64 {
        let period = self.period().as_nanos().max(1);
        u64::try_from(self.standard.elapsed().as_nanos() / period).unwrap_or(u64::MAX)
    }

    /// The temperature of measurement `index`; noise is drawn once per measurement.
    fn temperature(&mut self, index: u64) -> f64 {
        match self.cached {
            Some((i, t)) if i == index => t,
            _ => {
                let v = self.standard.volts();
                let t = TPW + (v - self.standard.params.nominal) * KELVIN_PER_VOLT;
                self.cached = Some((index, t));
                t
            }
        }
    }

    /// `STAT:OPER?`: the new-measurement bit when a measurement newer than the last one reported
    /// is available; reading it reports that one.
    fn operation_event(&mut self) -> u8 {
        let k = self.completed();
        if k > self.acknowledged {
            self.acknowledged = k;
            NEW_MEASUREMENT
        } else {
            0
        }
    }

    fn value(&self, t: f64) -> f64 {
        let r = R0 * (1.0 + ALPHA * t);
        match self.calc {
            CalcType::Temp => t,
            CalcType::Res => r,
            CalcType::Ratio => r / 25.0,
        }
    }
}

fn fetch_q(f: &mut F, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    if let Some(t) = p.next_optional_token()? {
        number_in(t, 1.0, 4.0).map_err(|_| Error::new(ErrorCode::HeaderSuffixOutOfRange))?;
    }
    no_more(p)?;
    let k = f.completed();
    if k == 0 {
        return Err(ErrorCode::DataCorruptOrStale.into());
    }
    let t = f.temperature(k);
    let v = f.value(t);
    if !v.is_finite() {
        return Err(ErrorCode::DataCorruptOrStale.into());
    }
    respond_text(r, &format!("{v:.6}"))?;
    f.acknowledged = k;
    f.standard.counted(1);
    Ok(())
}

const TREE: Node<'static, F> = scpi_tree![Fluke1594a;
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<Fluke1594a>))
        ]
    ],
    Leaf!(b"FETCh" => &Cmd::q(fetch_q)),
    Branch![b"STATus";
        Branch![b"OPERation";
            Leaf!(default b"EVENt" => &Cmd::<F>::text(|f| f.operation_event().to_string())),
            Leaf!(b"CONDition" => &Cmd::<F>::text(|_| "0".to_owned()))
        ]
    ],
    Branch![b"CALCulate";
        Leaf!(b"TYPE" => keyword_setting!(F, CALC_TYPES, calc))
    ]
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::sim_firmware;
    use crate::personality::tests::{ask, setup};

    #[test]
    fn new_measurement_flag_and_fetch() {
        let (mut s, clock) = setup(true);
        s.params.offset = 2.3e-6;
        let mut f = Fluke1594a::new(s);
        assert_eq!(
            ask(&mut f, "*IDN?"),
            format!("FLUKE,1594A,SIMTEST01,{}\n", sim_firmware())
        );
        assert_eq!(ask(&mut f, "STAT:OPER?"), "0\n");
        assert_eq!(ask(&mut f, "FETC?"), "");
        assert_eq!(ask(&mut f, "SYST:ERR?"), "-230,\"Data corrupt or stale\"\n");
        clock.advance(Duration::from_millis(999));
        assert_eq!(ask(&mut f, "STAT:OPER?"), "0\n");
        clock.advance(Duration::from_millis(1));
        assert_eq!(ask(&mut f, "STAT:OPER?"), "16\n");
        assert_eq!(ask(&mut f, "STAT:OPER?"), "0\n");
        assert_eq!(ask(&mut f, "FETC?"), "0.012300\n");
        // Stale: the same measurement again, and no new flag.
        assert_eq!(ask(&mut f, "FETC? 1"), "0.012300\n");
        assert_eq!(ask(&mut f, "stat:oper:even?"), "0\n");
        clock.advance(Duration::from_secs(3));
        assert_eq!(ask(&mut f, "FETC?"), "0.012300\n");
        assert_eq!(ask(&mut f, "STAT:OPER?"), "0\n");
        clock.advance(Duration::from_secs(1));
        assert_eq!(ask(&mut f, "*CLS;STAT:OPER?"), "0\n");
        ask(&mut f, "CALC:TYPE RES");
        assert_eq!(ask(&mut f, "CALC1:TYPE?"), "RES\n");
        assert_eq!(
            ask(&mut f, "FETC?"),
            format!("{:.6}\n", R0 * (1.0 + ALPHA * 0.0123))
        );
        assert_eq!(ask(&mut f, "FETC? 7"), "");
        assert_eq!(
            ask(&mut f, "SYST:ERR?"),
            "-114,\"Header suffix out of range\"\n"
        );
    }
}
