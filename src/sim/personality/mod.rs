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

mod fluke1594a;
mod fluke5720a;
mod fluke8508a;
mod hp3458a;
mod keithley2002;
mod keithley6500;
pub(crate) mod model;
pub(crate) mod scpi_util;
mod status;
mod text;
mod vaisala;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::clock::SharedClock;
use super::spec::SpecError;
use super::wire::Frame;
use super::{Dmm, SimIdentity, SimParams};

pub use vaisala::{VaisalaFormat, VaisalaFormatError};

/// One GPIB transfer of a reply: bytes, with EOI asserted on the last one or not. On a serial
/// line or a socket only the bytes matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The bytes, terminator included.
    pub bytes: Vec<u8>,
    /// Whether EOI is asserted with the last byte.
    pub end: bool,
}

/// An instrument's answer to one program message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// What it sends, in order (several transfers: e.g. one per 3458A reading).
    pub transfers: Vec<Transfer>,
    /// Time before the output is available: integration, settling, autocal. Zero unless
    /// [`SimParams::realistic_timing`] is on.
    pub delay: Duration,
}

impl Reply {
    /// No output.
    pub fn none() -> Self {
        Self::default()
    }

    /// One transfer ending with EOI.
    pub fn text(bytes: impl Into<Vec<u8>>) -> Self {
        let mut r = Self::none();
        r.push(bytes, true);
        r
    }

    /// What a SCPI command tree produced for one message: nothing, or one transfer ending
    /// with EOI, available after `delay` (the message's integration or settling time).
    pub fn from_scpi(bytes: Vec<u8>, delay: Duration) -> Self {
        let reply = if bytes.is_empty() {
            Self::none()
        } else {
            Self::text(bytes)
        };
        reply.delayed(delay)
    }

    /// Appends a transfer; empty transfers without EOI are skipped.
    pub fn push(&mut self, bytes: impl Into<Vec<u8>>, end: bool) {
        let bytes = bytes.into();
        if !bytes.is_empty() || end {
            self.transfers.push(Transfer { bytes, end });
        }
    }

    /// All bytes, as a byte stream carries them.
    pub fn bytes(&self) -> Vec<u8> {
        self.transfers
            .iter()
            .flat_map(|t| t.bytes.iter().copied())
            .collect()
    }

    /// True when nothing is sent.
    pub fn is_empty(&self) -> bool {
        self.transfers.iter().all(|t| t.bytes.is_empty())
    }

    /// The same reply available `delay` later.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = self.delay.saturating_add(delay);
        self
    }
}

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

/// The simulated models, by the ids the driver profiles use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PersonalityId {
    /// `generic-scpi-dmm`: the SCPI DMM with the simulator's own identity.
    GenericScpiDmm,
    /// `keysight-34470a`.
    Keysight34470a,
    /// `keysight-34465a`.
    Keysight34465a,
    /// `keysight-3458a` (HP-IB language).
    Keysight3458a,
    /// `fluke-8508a`.
    Fluke8508a,
    /// `keithley-2002`.
    Keithley2002,
    /// `keithley-dmm6500` (SCPI mode).
    KeithleyDmm6500,
    /// `fluke-5720a` calibrator.
    Fluke5720a,
    /// `fluke-1594a` super-thermometer.
    Fluke1594a,
    /// `vaisala-ptu300` pressure/temperature/humidity transmitter.
    VaisalaPtu300,
}

impl PersonalityId {
    /// Every model, in a stable order.
    pub const ALL: [PersonalityId; 10] = [
        PersonalityId::GenericScpiDmm,
        PersonalityId::Keysight34470a,
        PersonalityId::Keysight34465a,
        PersonalityId::Keysight3458a,
        PersonalityId::Fluke8508a,
        PersonalityId::Keithley2002,
        PersonalityId::KeithleyDmm6500,
        PersonalityId::Fluke5720a,
        PersonalityId::Fluke1594a,
        PersonalityId::VaisalaPtu300,
    ];

    /// The id as the profiles spell it, e.g. `keysight-3458a`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PersonalityId::GenericScpiDmm => "generic-scpi-dmm",
            PersonalityId::Keysight34470a => "keysight-34470a",
            PersonalityId::Keysight34465a => "keysight-34465a",
            PersonalityId::Keysight3458a => "keysight-3458a",
            PersonalityId::Fluke8508a => "fluke-8508a",
            PersonalityId::Keithley2002 => "keithley-2002",
            PersonalityId::KeithleyDmm6500 => "keithley-dmm6500",
            PersonalityId::Fluke5720a => "fluke-5720a",
            PersonalityId::Fluke1594a => "fluke-1594a",
            PersonalityId::VaisalaPtu300 => "vaisala-ptu300",
        }
    }

    /// Short model code used in simulated serial numbers.
    fn serial_code(&self) -> &'static str {
        match self {
            PersonalityId::GenericScpiDmm => "DMM",
            PersonalityId::Keysight34470a => "34470A",
            PersonalityId::Keysight34465a => "34465A",
            PersonalityId::Keysight3458a => "3458A",
            PersonalityId::Fluke8508a => "8508A",
            PersonalityId::Keithley2002 => "2002",
            PersonalityId::KeithleyDmm6500 => "6500",
            PersonalityId::Fluke5720a => "5720A",
            PersonalityId::Fluke1594a => "1594A",
            PersonalityId::VaisalaPtu300 => "PTU300",
        }
    }

    /// The serial number the simulator gives this model in `slot` (the GPIB address on a bus,
    /// 1 for a lone instrument): `SIM34470A01`, `SIM5720A05`.
    pub fn default_serial(&self, slot: u8) -> String {
        format!("SIM{}{:02}", self.serial_code(), slot)
    }

    /// Builds the instrument.
    pub fn build(&self, setup: Setup) -> Box<dyn Personality> {
        match self {
            PersonalityId::GenericScpiDmm => Box::new(Dmm::personality(setup, *self, None)),
            PersonalityId::Keysight34470a | PersonalityId::Keysight34465a => {
                let model = if *self == PersonalityId::Keysight34470a {
                    "34470A"
                } else {
                    "34465A"
                };
                let identity = SimIdentity {
                    manufacturer: "Keysight Technologies".to_owned(),
                    model: model.to_owned(),
                    serial: setup.serial.clone(),
                    firmware: sim_firmware(),
                };
                Box::new(Dmm::personality(setup, *self, Some(identity)))
            }
            PersonalityId::Keysight3458a => Box::new(hp3458a::Hp3458a::new(setup)),
            PersonalityId::Fluke8508a => Box::new(fluke8508a::Fluke8508a::new(setup)),
            PersonalityId::Keithley2002 => Box::new(keithley2002::Keithley2002::new(setup)),
            PersonalityId::KeithleyDmm6500 => Box::new(keithley6500::Dmm6500::new(setup)),
            PersonalityId::Fluke5720a => Box::new(fluke5720a::Fluke5720a::new(setup)),
            PersonalityId::Fluke1594a => Box::new(fluke1594a::Fluke1594a::new(setup)),
            PersonalityId::VaisalaPtu300 => Box::new(vaisala::Ptu300::new(setup)),
        }
    }
}

/// The firmware field every simulated model reports, so that data from the simulator cannot be
/// mistaken for a real instrument's.
pub(crate) fn sim_firmware() -> String {
    concat!("tsagent-sim-", env!("CARGO_PKG_VERSION")).to_owned()
}

impl fmt::Display for PersonalityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PersonalityId {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PersonalityId::ALL
            .into_iter()
            .find(|id| id.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SpecError::UnknownPersonality { name: s.to_owned() })
    }
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
            clock: Arc::new(super::MonotonicClock::new()),
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
    use crate::sim::ManualClock;
    use proptest::prelude::*;

    /// A setup on a manual clock with a quiet, exact 10 V standard.
    pub(crate) fn setup(realistic: bool) -> (Setup, ManualClock) {
        let clock = ManualClock::new();
        let params = SimParams {
            offset: 0.0,
            drift_per_day: 0.0,
            noise: 0.0,
            tempco: 0.0,
            realistic_timing: realistic,
            ..SimParams::default()
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
    fn ids_round_trip_and_unknown_ids_are_refused() {
        for id in PersonalityId::ALL {
            assert_eq!(id.as_str().parse::<PersonalityId>().unwrap(), id);
            assert_eq!(id.to_string(), id.as_str());
        }
        assert_eq!(
            "KEYSIGHT-3458A".parse::<PersonalityId>().unwrap(),
            PersonalityId::Keysight3458a
        );
        match "hp-3457a".parse::<PersonalityId>() {
            Err(SpecError::UnknownPersonality { name }) => assert_eq!(name, "hp-3457a"),
            other => panic!("{other:?}"),
        }
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

    #[test]
    fn reply_helpers() {
        let mut r = Reply::text("a\n");
        r.push("", false);
        r.push("b", false);
        assert_eq!(r.transfers.len(), 2);
        assert_eq!(r.bytes(), b"a\nb");
        assert!(!r.is_empty());
        assert!(Reply::none().is_empty());
        assert_eq!(
            Reply::none().delayed(Duration::from_secs(1)).delay,
            Duration::from_secs(1)
        );
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
            Just("RMEM 1,"),
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
