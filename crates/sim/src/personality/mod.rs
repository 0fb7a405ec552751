//! Simulated instrument models ("personalities"): each answers its own dialect with its own
//! identity, reply formats and timing, measuring the same simulated standard.
//!
//! SCPI-like dialects (the Keysight Truevolt and generic DMMs, Keithley 2002 and DMM6500, Fluke
//! 1594A) are parsed by the `scpi` crate's command trees. The others are hand-written because
//! the crate's IEEE 488.2/SCPI grammar does not describe them:
//! * the 3458A's HP-IB language has no header tree and reports errors through an error register
//!   read with `ERRSTR?`/`ERR?`, not a SCPI queue, and sends binary readings without a block
//!   header;
//! * the Fluke 5720A's 57xx set takes quantities with units as separate words (`OUT 10 V, 0 Hz`)
//!   and reports faults with `FAULT?`/`EXPLAIN?`;
//! * the Fluke 8508A's Datron-heritage commands take keyword lists (`DCV 10,FILT_OFF,RESL8`) and
//!   report errors only through `*ESR?`;
//! * the Vaisala PTU300 is a line-oriented RS-232 console (`SEND`, `R`, `FORM 4.2 P " " …`).
//!
//! Layout, from the bottom up (this file has the [`Personality`] trait and [`Setup`]):
//! * `model.rs`: the standard as an instrument sees it, and a bounded error queue;
//!   `status.rs`: the IEEE 488.2 status registers; `text.rs`: the hand-written dialects'
//!   tokenizer and the personality every such dialect is.
//! * `scpi_util.rs`: the instrument on the `scpi` crate (identity, status and error queue around
//!   a model), its common commands and parameter helpers.
//! * One file per model: `scpi_dmm.rs` (`generic-scpi-dmm` and the Truevolt meters),
//!   `keithley2002.rs`, `keithley6500.rs`, `fluke1594a.rs` on the `scpi` crate; `hp3458a.rs`,
//!   `fluke5720a.rs`, `fluke8508a.rs`, `vaisala.rs` by hand.
//! * `build.rs`: a model from its id.

mod build;
mod fluke1594a;
mod fluke5720a;
mod fluke8508a;
mod hp3458a;
mod keithley2002;
mod keithley6500;
mod model;
mod scpi_dmm;
pub(crate) mod scpi_util;
mod status;
mod text;
mod vaisala;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::SimParams;
use crate::clock::{MonotonicClock, SharedClock};
use crate::id::PersonalityId;
use crate::reply::Reply;
use crate::wire::Frame;

pub use vaisala::{VaisalaFormat, VaisalaFormatError};

/// A simulated instrument model: program messages in, replies out.
///
/// Implementations never panic on any input and keep their state between messages and between
/// clients, as a real instrument does.
pub trait Personality: Send {
    /// Which model this is.
    fn id(&self) -> PersonalityId;

    /// Executes one program message (its terminator already removed) and returns the reply.
    fn handle(&mut self, message: &[u8]) -> Reply;

    /// Bytes that end a program message on a byte stream.
    fn input_terminators(&self) -> &'static [u8] {
        b"\n"
    }

    /// What ends each reply line.
    fn output_terminator(&self) -> &'static [u8] {
        b"\n"
    }

    /// The model's default serial frame, for `--baud` pacing.
    fn serial_frame(&self) -> Frame {
        Frame::EIGHT_N_ONE
    }

    /// The GPIB controller addressed the instrument to talk while it had nothing to send (a
    /// Prologix `++read` or `++auto 1`). SCPI instruments queue -420 "Query UNTERMINATED"; a
    /// 3458A in `TARM AUTO` takes a reading.
    fn talk(&mut self) -> Reply {
        Reply::none()
    }

    /// GPIB selected device clear (`++clr`): abandon pending input and output.
    fn device_clear(&mut self) {}

    /// The IEEE 488.2 status byte for a serial poll (MAV is added by the bus).
    fn status_byte(&mut self) -> u8 {
        0
    }

    /// Time until the next unsolicited output (a streaming sensor), or `None` when there is none.
    fn unsolicited_in(&self) -> Option<Duration> {
        None
    }

    /// Output that is due now without being asked for (see [`unsolicited_in`]).
    ///
    /// [`unsolicited_in`]: Personality::unsolicited_in
    fn unsolicited(&mut self) -> Reply {
        Reply::none()
    }

    /// A message longer than the input cap was discarded.
    fn input_overflow(&mut self);

    /// Fault injection: queue one error the way this model reports errors.
    fn inject_error(&mut self);

    /// Fault injection: the instrument now reports this serial number (a different unit).
    fn set_serial(&mut self, serial: &str);
}

/// The firmware field every simulated model reports, so that data from the simulator cannot be
/// mistaken for a real instrument's.
pub(crate) fn sim_firmware() -> String {
    concat!("tsagent-sim-", env!("CARGO_PKG_VERSION")).to_owned()
}

/// What a personality is built from.
#[derive(Clone)]
pub struct Setup {
    /// The standard and the meter's timing.
    pub params: SimParams,
    /// Time since the simulator started.
    pub clock: SharedClock,
    /// Counts readings put into replies; shared by every instrument of one server.
    pub sent: Arc<AtomicU64>,
    /// The serial number to report.
    pub serial: String,
}

impl Setup {
    /// A setup on the monotonic clock with its own counter.
    pub fn new(params: SimParams, serial: impl Into<String>) -> Self {
        Self {
            params,
            clock: Arc::new(MonotonicClock::new()),
            sent: Arc::new(AtomicU64::new(0)),
            serial: serial.into(),
        }
    }
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("params", &self.params)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ManualClock;
    use proptest::prelude::*;

    /// A quiet, exact 10 V standard: no offset, drift, noise or temperature effect.
    pub(crate) fn quiet() -> SimParams {
        SimParams {
            offset: 0.0,
            drift_per_day: 0.0,
            noise: 0.0,
            tempco: 0.0,
            ..SimParams::default()
        }
    }

    /// A setup on a manual clock with a quiet, exact 10 V standard.
    pub(crate) fn setup(realistic: bool) -> (Setup, ManualClock) {
        let clock = ManualClock::new();
        let params = SimParams {
            realistic_timing: realistic,
            ..quiet()
        };
        let setup = Setup {
            params,
            clock: Arc::new(clock.clone()),
            sent: Arc::new(AtomicU64::new(0)),
            serial: "SIMTEST01".to_owned(),
        };
        (setup, clock)
    }

    /// Sends `msg` and returns the reply bytes as (lossy) text.
    pub(crate) fn ask(p: &mut dyn Personality, msg: &str) -> String {
        String::from_utf8_lossy(&p.handle(msg.as_bytes()).bytes()).into_owned()
    }

    #[test]
    fn every_model_builds_and_reports_its_id() {
        for id in PersonalityId::ALL {
            let (s, _) = setup(false);
            let p = id.build(s);
            assert_eq!(p.id(), id);
        }
        assert_eq!(PersonalityId::Fluke5720a.default_serial(5), "SIM5720A05");
    }

    /// Message fragments every dialect knows some of.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just("*IDN?"),
            Just("*RST"),
            Just("*CLS"),
            Just("*ESR?"),
            Just("*OPC?"),
            Just("ID?"),
            Just("ERRSTR?"),
            Just("ERR?"),
            Just("END ALWAYS"),
            Just("PRESET NORM"),
            Just("OFORMAT DREAL"),
            Just("OFORMAT SREAL"),
            Just("TARM SGL,"),
            Just("NRDGS 3"),
            Just("MEM FIFO"),
            Just("MEM LIFO"),
            Just("MEM CONT"),
            Just("MEM?"),
            Just("END?"),
            Just("NDIG?"),
            Just("TARM HOLD,"),
            Just("RMEM 1,"),
            Just("RMEM "),
            Just("NPLC "),
            Just("NDIG "),
            Just("TRIG "),
            Just("DCV "),
            Just("X?"),
            Just("RDG?"),
            Just("RESL"),
            Just("FILT_OFF"),
            Just("OHMS"),
            Just("OUT "),
            Just(" V"),
            Just(" Hz"),
            Just("OPER"),
            Just("STBY"),
            Just("ISR?"),
            Just("FAULT?"),
            Just("EXPLAIN? "),
            Just("OUT?"),
            Just(":FORM:ELEM "),
            Just("READ"),
            Just(":TRAC:POIN "),
            Just(":TRAC:FEED:CONT NEXT"),
            Just(":INIT"),
            Just(":TRAC:DATA?"),
            Just(":SYST:ERR?"),
            Just("SENS:FUNC \"VOLT:DC\""),
            Just("READ? \"defbuffer1\""),
            Just("TRAC:DATA? 1,"),
            Just("FORM:DATA REAL,64"),
            Just("FORM:BORD SWAP"),
            Just("SAMP:COUN "),
            Just("R?"),
            Just("FETC?"),
            Just("STAT:OPER?"),
            Just("*LANG"),
            Just(":SYST:LFR?"),
            Just("DISP:USER1:TEXT "),
            Just("DISP:LIGH:STAT ON50"),
            Just("DISP:VOLT:DIG "),
            Just("TRIG:LOAD \"SimpleLoop\","),
            Just(":CONF?"),
            Just(":CONF:RES"),
            Just(":DATA:FRES?"),
            Just("VOLT:RANG?"),
            Just("RANGE?"),
            Just("RANGE "),
            Just("SEND"),
            Just("R"),
            Just("S"),
            Just("?"),
            Just("ERRS"),
            Just("FORM "),
            Just("4.2 P "),
            Just("\" \""),
            Just("#r #n"),
            Just("CS4"),
            Just("/"),
            Just("INTV 1 s"),
            Just("UNIT P kPa"),
            Just(";"),
            Just(","),
            Just(" "),
            Just("1"),
            Just("0"),
            Just("-1"),
            Just("1e99"),
            Just("nan"),
            Just("inf"),
            Just("\""),
            Just("'"),
            Just("#"),
            Just("\u{e9}"),
            Just("\0"),
            Just("99999999999999999999"),
            Just("0.0001"),
            Just("1000000"),
        ];
        proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn no_model_panics_on_arbitrary_bytes(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 1..6)
        ) {
            for id in PersonalityId::ALL {
                let (s, clock) = setup(true);
                let mut p = id.build(s);
                for m in &msgs {
                    let _ = p.handle(m);
                    clock.advance(Duration::from_millis(300));
                    let _ = p.talk();
                    let _ = p.unsolicited_in();
                    let _ = p.unsolicited();
                }
                p.inject_error();
                p.input_overflow();
                p.device_clear();
                let _ = p.status_byte();
                p.set_serial("X,Y;Z\n\u{e9}");
            }
        }

        #[test]
        fn no_model_panics_on_command_soup(
            msgs in proptest::collection::vec(soup(), 1..8)
        ) {
            for id in PersonalityId::ALL {
                let (s, clock) = setup(true);
                let mut p = id.build(s);
                for m in &msgs {
                    let _ = p.handle(m);
                    clock.advance(Duration::from_millis(700));
                    let _ = p.unsolicited();
                }
            }
        }
    }
}
