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
use scpi::{Branch, Leaf, Root};

use super::model::{Standard, clean_field};
use super::scpi_util::*;
use super::{Personality, PersonalityId, Reply, Setup, sim_firmware};

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

/// The simulated 1594A.
pub(crate) struct Fluke1594a {
    standard: Standard,
    status: Status,
    serial: String,
    calc: CalcType,
    /// Index of the newest measurement already reported (0: none).
    acknowledged: u64,
    /// The newest measurement computed: its index and temperature.
    cached: Option<(u64, f64)>,
}

impl Device for Fluke1594a {
    fn handle_error(&mut self, err: Error) {
        self.status.push(err);
    }
}

impl ScpiDevice for Fluke1594a {
    fn status(&mut self) -> &mut Status {
        &mut self.status
    }

    fn idn(&self) -> String {
        format!("FLUKE,1594A,{},{}", self.serial, sim_firmware())
    }

    fn reset(&mut self) {
        self.calc = CalcType::Temp;
    }
}

impl Fluke1594a {
    pub(crate) fn new(setup: Setup) -> Self {
        Self {
            standard: Standard::new(&setup),
            status: Status::default(),
            serial: clean_field(&setup.serial),
            calc: CalcType::Temp,
            acknowledged: 0,
            cached: None,
        }
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

    fn value(&self, t: f64) -> f64 {
        let r = R0 * (1.0 + ALPHA * t);
        match self.calc {
            CalcType::Temp => t,
            CalcType::Res => r,
            CalcType::Ratio => r / 25.0,
        }
    }
}

type F = Fluke1594a;

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

fn stat_oper_q(f: &mut F, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    let k = f.completed();
    let bits = if k > f.acknowledged {
        f.acknowledged = k;
        NEW_MEASUREMENT
    } else {
        0
    };
    respond_text(r, &bits.to_string())
}

fn stat_oper_cond_q(
    _: &mut F,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, "0")
}

fn cls_1594_ev(f: &mut F, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    cls_ev(f, p)?;
    f.acknowledged = f.completed();
    Ok(())
}

fn calc_type_ev(f: &mut F, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let t = choice(
        p.next_token()?,
        &[
            (b"TEMPerature", CalcType::Temp),
            (b"RESistance", CalcType::Res),
            (b"RATio", CalcType::Ratio),
        ],
    )?;
    no_more(p)?;
    f.calc = t;
    Ok(())
}

fn calc_type_q(f: &mut F, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(
        r,
        match f.calc {
            CalcType::Temp => "TEMP",
            CalcType::Res => "RES",
            CalcType::Ratio => "RAT",
        },
    )
}

const TREE: Node<'static, F> = Root![
    Leaf!(b"*IDN" => &Cmd::q(idn_q::<F>)),
    Leaf!(b"*RST" => &Cmd::ev(rst_ev::<F>)),
    Leaf!(b"*CLS" => &Cmd::ev(cls_1594_ev)),
    Leaf!(b"*OPC" => &Cmd::both(opc_ev::<F>, opc_q::<F>)),
    Leaf!(b"*WAI" => &Cmd::ev(wai_ev::<F>)),
    Leaf!(b"*ESR" => &Cmd::q(esr_q::<F>)),
    Leaf!(b"*ESE" => &Cmd::both(ese_ev::<F>, ese_q::<F>)),
    Leaf!(b"*SRE" => &Cmd::both(sre_ev::<F>, sre_q::<F>)),
    Leaf!(b"*STB" => &Cmd::q(stb_q::<F>)),
    Leaf!(b"*TST" => &Cmd::q(tst_q::<F>)),
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<F>))
        ]
    ],
    Leaf!(b"FETCh" => &Cmd::q(fetch_q)),
    Branch![b"STATus";
        Branch![b"OPERation";
            Leaf!(default b"EVENt" => &Cmd::q(stat_oper_q)),
            Leaf!(b"CONDition" => &Cmd::q(stat_oper_cond_q))
        ]
    ],
    Branch![b"CALCulate";
        Leaf!(b"TYPE" => &Cmd::both(calc_type_ev, calc_type_q))
    ]
];

impl Personality for Fluke1594a {
    fn id(&self) -> PersonalityId {
        PersonalityId::Fluke1594a
    }

    fn handle(&mut self, message: &[u8]) -> Reply {
        Reply::from_scpi(run(&TREE, self, message), Duration::ZERO)
    }

    fn input_terminators(&self) -> &'static [u8] {
        b"\r\n"
    }

    fn talk(&mut self) -> Reply {
        self.status.push(ErrorCode::QueryUnterminated.into());
        Reply::none()
    }

    fn status_byte(&mut self) -> u8 {
        self.status.status_byte()
    }

    fn input_overflow(&mut self) {
        self.status.push(ErrorCode::TooMuchData.into());
    }

    fn inject_error(&mut self) {
        self.status.push(ErrorCode::DataCorruptOrStale.into());
    }

    fn set_serial(&mut self, serial: &str) {
        self.serial = clean_field(serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::personality::tests::{ask, setup};

    #[test]
    fn new_measurement_flag_and_fetch() {
        let (mut s, clock) = setup(true);
        s.params.offset = 2.3e-6;
        let mut f = F::new(s);
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
