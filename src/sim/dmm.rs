//! The simulated DMM: a SCPI command tree (the `scpi` crate) over a model of a 10 V standard.
//!
//! Behaviour follows a Keysight 34470A where the brief does not say otherwise: the error queue
//! holds 20 entries and replaces the newest with `-350,"Queue overflow"` when full; a message is
//! executed unit by unit and abandoned at the first error, and replies already produced are still
//! sent; `*RST` does not touch the error queue or the status registers; `*ESR?` reports
//! power-on (bit 7) until first read or cleared.
//!
//! Reading memory holds the readings of the last `INIT`/`READ?` (`SAMPle:COUNt` ×
//! `TRIGger:COUNt` of them, up to [`MEMORY_CAP`]); `FETCh?` sends them again, `R?` sends and
//! erases them. `FORMat:DATA REAL,64|REAL,32` makes `FETCh?`/`READ?` send an IEEE 488.2
//! definite-length block (big-endian, or little-endian after `FORMat:BORDer SWAP`) followed by
//! LF; `R?` always sends a block, holding ASCII text in ASCII format, as the Truevolt meters do.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use scpi::error::{Error, ErrorCode, Result as ScpiResult};
use scpi::parser::mnemonic_compare;
use scpi::tree::prelude::*;
use scpi::{Branch, Leaf, Root, cmd_both, cmd_nquery, cmd_qonly};

use super::clock::{Clock, MonotonicClock};
use super::format::{NOT_A_NUMBER, OVERLOAD, format_reading};
use super::personality::scpi_util::Cmd;
use super::personality::{Personality, PersonalityId, Reply, Setup};
use super::rng::Xoshiro256;
use super::{SECONDS_PER_DAY, SimIdentity, SimParams, is_idn_byte};

/// Readings the reading memory holds (the Truevolt standard memory).
pub const MEMORY_CAP: usize = 50_000;

/// Error queue length of a 34470A.
const ERROR_QUEUE_CAP: usize = 20;

/// DC voltage ranges, V.
const RANGES: [f64; 5] = [MIN_RANGE, 1.0, 10.0, 100.0, MAX_RANGE];
const MIN_RANGE: f64 = 0.1;
const MAX_RANGE: f64 = 1000.0;

/// A range reads up to 120 % of its nominal value before it overloads.
const OVERRANGE: f64 = 1.2;

/// The range after `*RST` (autoranging starts here).
const DEFAULT_RANGE: f64 = 10.0;

/// Integration times the meter offers, in power-line cycles; others are rounded up to these.
const NPLC_STEPS: [f64; 9] = [MIN_NPLC, 0.002, 0.006, 0.02, 0.06, 0.2, 1.0, 10.0, MAX_NPLC];
const MIN_NPLC: f64 = 0.001;
const MAX_NPLC: f64 = 100.0;

/// NPLC after `*RST`.
const DEFAULT_NPLC: f64 = 10.0;

/// Mains frequency for the realistic-timing option, Hz.
const MAINS_HZ: f64 = 50.0;

/// IEEE 488.2 event status register bits.
const ESR_OPC: u8 = 0x01;
const ESR_PON: u8 = 0x80;

/// IEEE 488.2 / SCPI status byte bits.
const STB_EAV: u8 = 0x04;
const STB_ESB: u8 = 0x20;
const STB_MSS: u8 = 0x40;

/// The SCPI-speaking simulated meter wired to the simulated standard.
///
/// One [`handle_line`](Dmm::handle_line) call is one program message; state (configuration, error
/// queue, last reading) persists between calls and, in the servers, between clients, as in a real
/// instrument.
pub struct Dmm {
    meter: Meter,
}

/// Everything the command handlers can see; the `scpi` crate's `Device`.
struct Meter {
    params: SimParams,
    clock: Box<dyn Clock>,
    rng: Xoshiro256,
    errors: VecDeque<Error>,
    /// Event status register.
    esr: u8,
    /// Event status enable register.
    ese: u8,
    /// Service request enable register.
    sre: u8,
    auto_range: bool,
    /// The range in use, V; follows the input when autoranging.
    range: f64,
    nplc: f64,
    auto_zero: bool,
    impedance_auto: bool,
    /// Reading memory, as the readings are sent (overload and NaN as markers).
    memory: Vec<f64>,
    /// `SAMPle:COUNt`.
    samples: u32,
    /// `TRIGger:COUNt`.
    triggers: u32,
    /// `TRIGger:SOURce`, kept for the query; every source triggers at once.
    trigger_source: &'static str,
    /// `FORMat:DATA`.
    data_format: DataFormat,
    /// `FORMat:BORDer SWAPped`: little-endian blocks.
    swapped: bool,
    /// The last definite-length block of the current message (see `handle_line`).
    last_block: Option<Vec<u8>>,
    /// Which model the meter plays.
    model: PersonalityId,
    /// Wall time the readings of the current message would take; the server waits it out.
    busy: Duration,
    /// Readings put into replies; shared with the servers so an oracle can count them.
    sent: Arc<AtomicU64>,
}

impl Dmm {
    /// A meter whose simulated time runs from now on the monotonic clock.
    ///
    /// `params` are used as given; [`SimParams::validate`] says whether they make sense (the
    /// servers call it). Nonsense values give nonsense readings, never a panic.
    pub fn new(params: SimParams) -> Self {
        Self::with_clock(params, MonotonicClock::new())
    }

    /// A meter that takes its time from `clock`, e.g. a [`ManualClock`](super::ManualClock) in
    /// tests.
    pub fn with_clock(params: SimParams, clock: impl Clock + 'static) -> Self {
        let rng = Xoshiro256::from_seed(params.seed);
        let mut meter = Meter {
            params,
            clock: Box::new(clock),
            rng,
            errors: VecDeque::with_capacity(ERROR_QUEUE_CAP),
            esr: ESR_PON,
            ese: 0,
            sre: 0,
            auto_range: true,
            range: DEFAULT_RANGE,
            nplc: DEFAULT_NPLC,
            auto_zero: true,
            impedance_auto: false,
            memory: Vec::new(),
            samples: 1,
            triggers: 1,
            trigger_source: "IMM",
            data_format: DataFormat::Ascii,
            swapped: false,
            last_block: None,
            model: PersonalityId::GenericScpiDmm,
            busy: Duration::ZERO,
            sent: Arc::new(AtomicU64::new(0)),
        };
        meter.reset();
        Self { meter }
    }

    /// Executes one program message and returns the complete reply, LF-terminated, or nothing
    /// when the message held no query (or failed before its first query).
    ///
    /// `line` may end in LF or CR LF. Several units separated by `;` run in order; replies to
    /// several queries are joined with `;` as IEEE 488.2 prescribes. At the first error the rest
    /// of the message is discarded and the error is queued for `SYSTem:ERRor?`.
    pub fn handle_line(&mut self, line: &[u8]) -> Vec<u8> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // IEEE 488.2 allows white space before a message; the tokenizer does not.
        let start = line
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let line = line.get(start..).unwrap_or_default();

        let mut reply = Vec::new();
        let mut context = Context::new();
        self.meter.last_block = None;
        // An error has been queued through `Device::handle_error` by the time `run` returns it.
        let result = TREE.run(line, &mut self.meter, &mut context, &mut reply);
        // Replies to the queries before an error stand, but the crate leaves them unterminated,
        // possibly with the separator it wrote before the failing query. It also skips the
        // terminator when a message ends in `;` (`*ESR?;`). A binary block may itself end in
        // `;` or LF, so those bytes only count as separator or terminator after something else.
        let ends_with_block = self
            .meter
            .last_block
            .as_ref()
            .is_some_and(|b| reply.ends_with(b));
        if reply.last() == Some(&b';') && !ends_with_block {
            reply.pop();
        }
        let terminated = result.is_ok() && reply.last() == Some(&b'\n') && !ends_with_block;
        if !reply.is_empty() && !terminated {
            reply.push(b'\n');
        }
        reply
    }

    /// The parameters the meter was built with.
    pub fn params(&self) -> &SimParams {
        &self.meter.params
    }

    /// Simulated time since the start, days.
    pub fn simulated_days(&self) -> f64 {
        self.meter.simulated_days()
    }

    /// How many readings the meter has put into replies so far (`READ?`, `MEAS?`, `FETC?`).
    pub fn readings_sent(&self) -> u64 {
        self.meter.sent.load(Ordering::Relaxed)
    }

    /// Wall time the last message's measurements take with realistic timing; resets it.
    pub(crate) fn take_busy(&mut self) -> Duration {
        std::mem::take(&mut self.meter.busy)
    }

    /// Queues `-223,"Too much data"` for an input line that was too long to execute.
    pub(crate) fn queue_too_much_data(&mut self) {
        self.meter.push_error(ErrorCode::TooMuchData.into());
    }
}

impl fmt::Debug for Dmm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.meter;
        f.debug_struct("Dmm")
            .field("params", &m.params)
            .field("errors", &m.errors.len())
            .field("auto_range", &m.auto_range)
            .field("range", &m.range)
            .field("nplc", &m.nplc)
            .field("memory", &m.memory.len())
            .finish_non_exhaustive()
    }
}

impl Device for Meter {
    fn handle_error(&mut self, err: Error) {
        self.push_error(err);
    }
}

impl Meter {
    /// `*RST` state; also the power-on state.
    fn reset(&mut self) {
        self.auto_range = true;
        self.range = DEFAULT_RANGE;
        self.nplc = DEFAULT_NPLC;
        self.auto_zero = true;
        self.impedance_auto = false;
        self.memory.clear();
        self.samples = 1;
        self.triggers = 1;
        self.trigger_source = "IMM";
        self.data_format = DataFormat::Ascii;
        self.swapped = false;
    }

    /// Queues `err`; a full queue keeps its oldest entries and its newest becomes -350.
    fn push_error(&mut self, err: Error) {
        self.esr |= err.esr_mask();
        if self.errors.len() < ERROR_QUEUE_CAP {
            self.errors.push_back(err);
        } else if let Some(newest) = self.errors.back_mut() {
            let overflow = Error::new(ErrorCode::QueueOverflow);
            self.esr |= overflow.esr_mask();
            *newest = overflow;
        }
    }

    fn status_byte(&self) -> u8 {
        let mut stb = 0;
        if !self.errors.is_empty() {
            stb |= STB_EAV;
        }
        if self.esr & self.ese != 0 {
            stb |= STB_ESB;
        }
        if stb & self.sre & !STB_MSS != 0 {
            stb |= STB_MSS;
        }
        stb
    }

    fn simulated_days(&self) -> f64 {
        self.clock.elapsed().as_secs_f64() * self.params.time_scale / SECONDS_PER_DAY
    }

    /// Applies a `CONFigure`/`MEASure` range; like the real meter this clears reading memory
    /// and sets one sample per trigger, one trigger.
    fn configure(&mut self, range: RangeArg) {
        match range {
            RangeArg::Auto => self.auto_range = true,
            RangeArg::Fixed(r) => {
                self.auto_range = false;
                self.range = r;
            }
        }
        self.memory.clear();
        self.samples = 1;
        self.triggers = 1;
    }

    /// `INITiate`: fills reading memory with `samples × triggers` new readings (up to the
    /// memory's size; more queue error 531).
    fn acquire(&mut self) {
        let wanted = u64::from(self.samples) * u64::from(self.triggers);
        let n = usize::try_from(wanted).unwrap_or(usize::MAX);
        if n > MEMORY_CAP {
            self.push_error(Error::new(ErrorCode::Custom(531, b"Insufficient memory")));
        }
        self.memory.clear();
        for _ in 0..n.min(MEMORY_CAP) {
            let r = self.measure();
            self.memory.push(r);
        }
    }

    /// Takes one reading and returns it as it will be sent.
    fn measure(&mut self) -> f64 {
        let days = self.simulated_days();
        // Always drawn, even with zero noise, so a seed gives the same sequence whatever the
        // noise amplitude.
        let z = self.rng.normal();
        let value = self.params.artefact_value(days) + self.params.noise * z;
        if self.params.realistic_timing {
            let integration = Duration::try_from_secs_f64(self.nplc / MAINS_HZ).unwrap_or_default();
            self.busy = self.busy.saturating_add(integration);
        }
        self.apply_range(value)
    }

    fn apply_range(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return NOT_A_NUMBER;
        }
        if self.auto_range {
            self.range = autorange(value);
        }
        if value.abs() > OVERRANGE * self.range {
            OVERLOAD.copysign(value)
        } else {
            value
        }
    }

    fn count_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reading memory as a reply: ASCII, comma-separated, or a definite-length block.
    fn readings_reply(&mut self, readings: &[f64], resp: &mut ResponseUnit<'_>) -> ScpiResult<()> {
        match self.data_format {
            DataFormat::Ascii => {
                let text: Vec<String> = readings.iter().map(|r| format_reading(*r)).collect();
                respond_text(resp, &text.join(","))
            }
            DataFormat::Real32 | DataFormat::Real64 => {
                let bytes = self.binary(readings);
                self.block_reply(resp, bytes)
            }
        }
    }

    /// Readings as IEEE-754 in the configured width and byte order.
    fn binary(&self, readings: &[f64]) -> Vec<u8> {
        let mut out = Vec::with_capacity(readings.len() * 8);
        for r in readings {
            match (self.data_format, self.swapped) {
                (DataFormat::Real32, false) => out.extend_from_slice(&(*r as f32).to_be_bytes()),
                (DataFormat::Real32, true) => out.extend_from_slice(&(*r as f32).to_le_bytes()),
                (_, false) => out.extend_from_slice(&r.to_be_bytes()),
                (_, true) => out.extend_from_slice(&r.to_le_bytes()),
            }
        }
        out
    }

    fn block_reply(&mut self, resp: &mut ResponseUnit<'_>, bytes: Vec<u8>) -> ScpiResult<()> {
        resp.data(Arbitrary(&bytes)).finish()?;
        let digits = bytes.len().to_string();
        let mut block = format!("#{}{}", digits.len(), digits).into_bytes();
        block.extend_from_slice(&bytes);
        self.last_block = Some(block);
        Ok(())
    }

    fn idn(&self) -> String {
        let id = &self.params.identity;
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii() && is_idn_byte(c as u8) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!(
            "{},{},{},{}",
            clean(&id.manufacturer),
            clean(&id.model),
            clean(&id.serial),
            clean(&id.firmware)
        )
    }
}

/// The smallest range that holds `value` without overloading; the top range otherwise.
fn autorange(value: f64) -> f64 {
    RANGES
        .iter()
        .copied()
        .find(|r| value.abs() <= OVERRANGE * r)
        .unwrap_or(MAX_RANGE)
}

/// The smallest range whose nominal value covers `volts` (what `CONF:VOLT:DC 5` selects: 10 V).
fn range_for(volts: f64) -> ScpiResult<f64> {
    let v = volts.abs();
    RANGES
        .iter()
        .copied()
        .find(|r| v <= *r)
        .ok_or_else(|| ErrorCode::DataOutOfRange.into())
}

// ---------------------------------------------------------------------------------------------
// Parameter parsing

/// The keywords SCPI numeric parameters accept in place of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Min,
    Max,
    Def,
    Auto,
    Once,
}

fn keyword(s: &[u8]) -> Option<Keyword> {
    [
        (b"MINimum".as_slice(), Keyword::Min),
        (b"MAXimum", Keyword::Max),
        (b"DEFault", Keyword::Def),
        (b"AUTO", Keyword::Auto),
        (b"ONCE", Keyword::Once),
    ]
    .into_iter()
    .find(|(m, _)| mnemonic_compare(m, s))
    .map(|(_, k)| k)
}

/// A number of volts: plain, or with a `V`, `MV`, `UV` or `KV` suffix.
fn volts(token: Token<'_>) -> ScpiResult<f64> {
    match token {
        Token::DecimalNumericProgramData(_) => f64::try_from(token),
        Token::DecimalNumericSuffixProgramData(number, suffix) => {
            let scale = [
                (b"V".as_slice(), 1.0),
                (b"MV", 1e-3),
                (b"UV", 1e-6),
                (b"KV", 1e3),
            ]
            .into_iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
            .map(|(_, k)| k)
            .ok_or(Error::new(ErrorCode::InvalidSuffix))?;
            Ok(f64::try_from(Token::DecimalNumericProgramData(number))? * scale)
        }
        _ => Err(ErrorCode::DataTypeError.into()),
    }
}

enum RangeArg {
    Auto,
    Fixed(f64),
}

/// The `range` parameter of `CONFigure`/`MEASure`: a voltage, `MIN`, `MAX`, `DEF` or `AUTO`.
fn range_arg(token: Option<Token<'_>>) -> ScpiResult<RangeArg> {
    match token {
        None => Ok(RangeArg::Auto),
        Some(Token::CharacterProgramData(s)) => match keyword(s) {
            Some(Keyword::Auto | Keyword::Def) => Ok(RangeArg::Auto),
            Some(Keyword::Min) => Ok(RangeArg::Fixed(MIN_RANGE)),
            Some(Keyword::Max) => Ok(RangeArg::Fixed(MAX_RANGE)),
            _ => Err(ErrorCode::IllegalParameterValue.into()),
        },
        Some(t) => Ok(RangeArg::Fixed(range_for(volts(t)?)?)),
    }
}

/// The `resolution` parameter: validated, then ignored (the simulator always sends 9 digits).
fn resolution_arg(token: Option<Token<'_>>) -> ScpiResult<()> {
    match token {
        None => Ok(()),
        Some(Token::CharacterProgramData(s)) => match keyword(s) {
            Some(Keyword::Min | Keyword::Max | Keyword::Def) => Ok(()),
            _ => Err(ErrorCode::IllegalParameterValue.into()),
        },
        Some(t) => {
            let r = volts(t)?;
            if r.is_finite() && r > 0.0 {
                Ok(())
            } else {
                Err(ErrorCode::DataOutOfRange.into())
            }
        }
    }
}

/// An optional `MIN|MAX|DEF` on a setting query.
fn query_keyword(params: &mut Parameters<'_, '_>) -> ScpiResult<Option<Keyword>> {
    match params.next_optional_token()? {
        None => Ok(None),
        Some(Token::CharacterProgramData(s)) => match keyword(s) {
            Some(k @ (Keyword::Min | Keyword::Max | Keyword::Def)) => Ok(Some(k)),
            _ => Err(ErrorCode::IllegalParameterValue.into()),
        },
        Some(_) => Err(ErrorCode::DataTypeError.into()),
    }
}

/// What `MIN`, `MAX` and `DEF` stand for in one numeric setting.
#[derive(Clone, Copy)]
struct Limits {
    min: f64,
    max: f64,
    def: f64,
}

const NPLC_LIMITS: Limits = Limits {
    min: MIN_NPLC,
    max: MAX_NPLC,
    def: DEFAULT_NPLC,
};
const RANGE_LIMITS: Limits = Limits {
    min: MIN_RANGE,
    max: MAX_RANGE,
    def: DEFAULT_RANGE,
};

/// A numeric setting's value: `MIN|MAX|DEF` or a number that `parse` checks and rounds.
fn numeric_setting(
    token: Token<'_>,
    limits: Limits,
    parse: impl FnOnce(Token<'_>) -> ScpiResult<f64>,
) -> ScpiResult<f64> {
    match token {
        Token::CharacterProgramData(s) => match keyword(s) {
            Some(Keyword::Min) => Ok(limits.min),
            Some(Keyword::Max) => Ok(limits.max),
            Some(Keyword::Def) => Ok(limits.def),
            _ => Err(ErrorCode::IllegalParameterValue.into()),
        },
        t => parse(t),
    }
}

/// A numeric setting's query: `current`, or what `MIN|MAX|DEF` stands for.
fn query_setting(params: &mut Parameters<'_, '_>, limits: Limits, current: f64) -> ScpiResult<f64> {
    Ok(match query_keyword(params)? {
        Some(Keyword::Min) => limits.min,
        Some(Keyword::Max) => limits.max,
        Some(_) => limits.def,
        None => current,
    })
}

/// `ON|OFF|1|0` or `ONCE`; `Some(true/false)` or `None` for ONCE.
fn on_off_once(token: Token<'_>) -> ScpiResult<Option<bool>> {
    if let Token::CharacterProgramData(s) = token
        && keyword(s) == Some(Keyword::Once)
    {
        return Ok(None);
    }
    bool::try_from(token).map(Some)
}

/// Refuses parameters beyond those a command takes, before it acts (the crate would only
/// notice after the handler had run).
fn no_more(params: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    match params.next_optional_token()? {
        Some(_) => Err(ErrorCode::ParameterNotAllowed.into()),
        None => Ok(()),
    }
}

/// The integration time the meter uses for a requested `nplc`: the next step up.
fn nplc_step(nplc: f64) -> ScpiResult<f64> {
    if !(nplc.is_finite() && nplc > 0.0) {
        return Err(ErrorCode::DataOutOfRange.into());
    }
    // The tolerance keeps 0.2 at 0.2 although the decimal does not survive binary exactly.
    NPLC_STEPS
        .iter()
        .copied()
        .find(|step| nplc <= step * (1.0 + 1e-9))
        .ok_or_else(|| ErrorCode::DataOutOfRange.into())
}

/// `+N`, the NR1 form Keysight meters use for register values.
fn nr1(value: u8) -> String {
    format!("+{value}")
}

fn respond_text(resp: &mut ResponseUnit<'_>, text: &str) -> ScpiResult<()> {
    resp.data(Character(text.as_bytes())).finish()
}

fn respond_reading(resp: &mut ResponseUnit<'_>, value: f64) -> ScpiResult<()> {
    respond_text(resp, &format_reading(value))
}

fn respond_bool(resp: &mut ResponseUnit<'_>, value: bool) -> ScpiResult<()> {
    respond_text(resp, if value { "1" } else { "0" })
}

// ---------------------------------------------------------------------------------------------
// The command tree

const TREE: Node<'static, Meter> = Root![
    Leaf!(b"*IDN" => &IdnCmd),
    Leaf!(b"*RST" => &RstCmd),
    Leaf!(b"*CLS" => &ClsCmd),
    Leaf!(b"*OPC" => &OpcCmd),
    Leaf!(b"*WAI" => &WaiCmd),
    Leaf!(b"*ESR" => &EsrCmd),
    Leaf!(b"*ESE" => &EseCmd),
    Leaf!(b"*SRE" => &SreCmd),
    Leaf!(b"*STB" => &StbCmd),
    Leaf!(b"*TST" => &TstCmd),
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &SystErrNextCmd)
        ],
        Leaf!(b"VERSion" => &SystVersionCmd)
    ],
    Branch![b"CONFigure";
        Branch![b"VOLTage";
            Leaf!(default b"DC" => &ConfVoltDcCmd)
        ]
    ],
    Branch![b"MEASure";
        Branch![b"VOLTage";
            Leaf!(default b"DC" => &MeasVoltDcCmd)
        ]
    ],
    Leaf!(b"READ" => &ReadCmd),
    Leaf!(b"FETCh" => &FetchCmd),
    Leaf!(b"R" => &Cmd::q(r_q)),
    Branch![b"DATA";
        Leaf!(b"POINts" => &Cmd::q(data_points_q)),
        Leaf!(b"LAST" => &Cmd::q(data_last_q))
    ],
    Branch![b"INITiate";
        Leaf!(default b"IMMediate" => &InitCmd)
    ],
    Branch![b"FORMat";
        Leaf!(default b"DATA" => &Cmd::both(form_data_ev, form_data_q)),
        Leaf!(b"BORDer" => &Cmd::both(form_bord_ev, form_bord_q))
    ],
    Branch![b"SAMPle";
        Leaf!(b"COUNt" => &Cmd::both(samp_count_ev, samp_count_q))
    ],
    Branch![b"TRIGger";
        Leaf!(b"COUNt" => &Cmd::both(trig_count_ev, trig_count_q)),
        Leaf!(b"SOURce" => &Cmd::both(trig_source_ev, trig_source_q))
    ],
    Branch![default b"SENSe";
        Branch![b"VOLTage";
            Branch![default b"DC";
                Leaf!(b"NPLCycles" => &NplcCmd),
                Branch![b"RANGe";
                    Leaf!(default b"UPPer" => &RangeCmd),
                    Leaf!(b"AUTO" => &RangeAutoCmd)
                ],
                Branch![b"ZERO";
                    Leaf!(b"AUTO" => &ZeroAutoCmd)
                ],
                Branch![b"IMPedance";
                    Leaf!(b"AUTO" => &ImpedanceAutoCmd)
                ]
            ]
        ]
    ]
];

/// `*IDN?` → `MANUFACTURER,MODEL,SERIAL,FIRMWARE`.
struct IdnCmd;
impl Command<Meter> for IdnCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, &dev.idn())
    }
}

/// `*RST`: measurement settings to defaults, reading memory cleared.
struct RstCmd;
impl Command<Meter> for RstCmd {
    cmd_nquery!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        no_more(&mut params)?;
        dev.reset();
        Ok(())
    }
}

/// `*CLS`: error queue and event status register cleared.
struct ClsCmd;
impl Command<Meter> for ClsCmd {
    cmd_nquery!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        no_more(&mut params)?;
        dev.errors.clear();
        dev.esr = 0;
        Ok(())
    }
}

/// `*OPC` sets the operation-complete bit; `*OPC?` answers `1` (every operation is complete
/// when the next message is parsed).
struct OpcCmd;
impl Command<Meter> for OpcCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        no_more(&mut params)?;
        dev.esr |= ESR_OPC;
        Ok(())
    }
    fn query(
        &self,
        _: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, "1")
    }
}

/// `*WAI`: nothing is ever pending.
struct WaiCmd;
impl Command<Meter> for WaiCmd {
    cmd_nquery!();
    fn event(&self, _: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        no_more(&mut params)
    }
}

/// `*ESR?`: reads and clears the event status register.
struct EsrCmd;
impl Command<Meter> for EsrCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        let esr = std::mem::take(&mut dev.esr);
        respond_text(&mut resp, &nr1(esr))
    }
}

/// `*ESE <mask>` / `*ESE?`: event status enable register.
struct EseCmd;
impl Command<Meter> for EseCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let mask: u8 = params.next_data()?;
        no_more(&mut params)?;
        dev.ese = mask;
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, &nr1(dev.ese))
    }
}

/// `*SRE <mask>` / `*SRE?`: service request enable register (bit 6 cannot be enabled).
struct SreCmd;
impl Command<Meter> for SreCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let mask: u8 = params.next_data()?;
        no_more(&mut params)?;
        dev.sre = mask & !STB_MSS;
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, &nr1(dev.sre))
    }
}

/// `*STB?`: the status byte, not cleared by reading.
struct StbCmd;
impl Command<Meter> for StbCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, &nr1(dev.status_byte()))
    }
}

/// `*TST?`: the self-test always passes.
struct TstCmd;
impl Command<Meter> for TstCmd {
    cmd_qonly!();
    fn query(
        &self,
        _: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, "+0")
    }
}

/// `SYSTem:ERRor[:NEXT]?`: oldest queued error, or `0,"No error"`.
struct SystErrNextCmd;
impl Command<Meter> for SystErrNextCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        let err = dev
            .errors
            .pop_front()
            .unwrap_or_else(|| ErrorCode::NoError.into());
        resp.data(err).finish()
    }
}

/// `SYSTem:VERSion?`: the SCPI version the meter claims.
struct SystVersionCmd;
impl Command<Meter> for SystVersionCmd {
    cmd_qonly!();
    fn query(
        &self,
        _: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_text(&mut resp, "1999.0")
    }
}

/// `CONFigure:VOLTage[:DC] [range|MIN|MAX|DEF|AUTO[,resolution]]`.
struct ConfVoltDcCmd;
impl Command<Meter> for ConfVoltDcCmd {
    cmd_nquery!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let range = range_arg(params.next_optional_token()?)?;
        resolution_arg(params.next_optional_token()?)?;
        no_more(&mut params)?;
        dev.configure(range);
        Ok(())
    }
}

/// `MEASure:VOLTage[:DC]? [range|MIN|MAX|DEF|AUTO[,resolution]]`: configure, then read.
struct MeasVoltDcCmd;
impl Command<Meter> for MeasVoltDcCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        let range = range_arg(params.next_optional_token()?)?;
        resolution_arg(params.next_optional_token()?)?;
        no_more(&mut params)?;
        dev.configure(range);
        dev.acquire();
        let readings = dev.memory.clone();
        dev.readings_reply(&readings, &mut resp)?;
        dev.count_sent(readings.len());
        Ok(())
    }
}

/// `READ?`: fill reading memory and send it.
struct ReadCmd;
impl Command<Meter> for ReadCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        dev.acquire();
        let readings = dev.memory.clone();
        dev.readings_reply(&readings, &mut resp)?;
        dev.count_sent(readings.len());
        Ok(())
    }
}

/// `FETCh?`: send reading memory again; `-230` when it is empty.
struct FetchCmd;
impl Command<Meter> for FetchCmd {
    cmd_qonly!();
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        if dev.memory.is_empty() {
            return Err(ErrorCode::DataCorruptOrStale.into());
        }
        let readings = dev.memory.clone();
        dev.readings_reply(&readings, &mut resp)?;
        dev.count_sent(readings.len());
        Ok(())
    }
}

/// `INITiate[:IMMediate]`: fill reading memory (the trigger is always immediate).
struct InitCmd;
impl Command<Meter> for InitCmd {
    cmd_nquery!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        no_more(&mut params)?;
        dev.acquire();
        Ok(())
    }
}

/// `[SENSe:]VOLTage[:DC]:NPLCycles <n>|MIN|MAX|DEF` and `…:NPLCycles? [MIN|MAX|DEF]`.
struct NplcCmd;
impl Command<Meter> for NplcCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let nplc = numeric_setting(params.next_token()?, NPLC_LIMITS, |t| {
            nplc_step(f64::try_from(t)?)
        })?;
        no_more(&mut params)?;
        dev.nplc = nplc;
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        let value = query_setting(&mut params, NPLC_LIMITS, dev.nplc)?;
        no_more(&mut params)?;
        respond_reading(&mut resp, value)
    }
}

/// `[SENSe:]VOLTage[:DC]:RANGe[:UPPer] <range>|MIN|MAX|DEF` (turns autoranging off) and
/// `…:RANGe? [MIN|MAX|DEF]`.
struct RangeCmd;
impl Command<Meter> for RangeCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let range = numeric_setting(params.next_token()?, RANGE_LIMITS, |t| range_for(volts(t)?))?;
        no_more(&mut params)?;
        dev.configure(RangeArg::Fixed(range));
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        let value = query_setting(&mut params, RANGE_LIMITS, dev.range)?;
        no_more(&mut params)?;
        respond_reading(&mut resp, value)
    }
}

/// `[SENSe:]VOLTage[:DC]:RANGe:AUTO ON|OFF|ONCE` and `…:AUTO?`. ONCE picks the range for the
/// present input and then holds it.
struct RangeAutoCmd;
impl Command<Meter> for RangeAutoCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let setting = on_off_once(params.next_token()?)?;
        no_more(&mut params)?;
        match setting {
            Some(on) => dev.auto_range = on,
            None => {
                let value = dev.params.artefact_value(dev.simulated_days());
                dev.range = autorange(value);
                dev.auto_range = false;
            }
        }
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_bool(&mut resp, dev.auto_range)
    }
}

/// `[SENSe:]VOLTage[:DC]:ZERO:AUTO ON|OFF|ONCE` and `…:AUTO?`; accepted and reported, with no
/// effect on the simulated readings. ONCE zeroes once and leaves auto-zero off, as the meter does.
struct ZeroAutoCmd;
impl Command<Meter> for ZeroAutoCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let setting = on_off_once(params.next_token()?)?;
        no_more(&mut params)?;
        dev.auto_zero = setting.unwrap_or(false);
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_bool(&mut resp, dev.auto_zero)
    }
}

/// `[SENSe:]VOLTage[:DC]:IMPedance:AUTO ON|OFF` and `…:AUTO?`; accepted and reported, with no
/// effect on the simulated readings.
struct ImpedanceAutoCmd;
impl Command<Meter> for ImpedanceAutoCmd {
    cmd_both!();
    fn event(&self, dev: &mut Meter, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        let on: bool = params.next_data()?;
        no_more(&mut params)?;
        dev.impedance_auto = on;
        Ok(())
    }
    fn query(
        &self,
        dev: &mut Meter,
        _: &mut Context,
        mut params: Parameters,
        mut resp: ResponseUnit,
    ) -> ScpiResult<()> {
        no_more(&mut params)?;
        respond_bool(&mut resp, dev.impedance_auto)
    }
}

/// `FORMat:DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataFormat {
    Ascii,
    Real32,
    Real64,
}

/// `R? [max]`: sends up to `max` readings from memory as a block and erases them.
fn r_q(dev: &mut Meter, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    let max = match p.next_optional_token()? {
        None => usize::MAX,
        Some(t) => {
            let v = f64::try_from(t)?;
            if !(v.is_finite() && v >= 1.0) {
                return Err(ErrorCode::DataOutOfRange.into());
            }
            // Truncation is the meter's behaviour for a fractional count.
            v.min(MEMORY_CAP as f64) as usize
        }
    };
    no_more(p)?;
    let n = max.min(dev.memory.len());
    let taken: Vec<f64> = dev.memory.drain(..n).collect();
    let bytes = match dev.data_format {
        DataFormat::Ascii => taken
            .iter()
            .map(|v| format_reading(*v))
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes(),
        _ => dev.binary(&taken),
    };
    dev.block_reply(r, bytes)?;
    dev.count_sent(taken.len());
    Ok(())
}

/// `DATA:POINts?`: readings in memory.
fn data_points_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, &format!("+{}", dev.memory.len()))
}

/// `DATA:LAST?`: the newest reading with its unit, `9.91000000E+37` when memory is empty.
fn data_last_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    match dev.memory.last() {
        Some(v) => {
            let text = format!("{} VDC", format_reading(*v));
            dev.count_sent(1);
            respond_text(r, &text)
        }
        None => respond_text(r, &format_reading(NOT_A_NUMBER)),
    }
}

/// `FORMat[:DATA] ASCii[,n]|REAL[,32|64]`.
fn form_data_ev(dev: &mut Meter, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let kind = match p.next_token()? {
        Token::CharacterProgramData(s) if mnemonic_compare(b"ASCii", s) => DataFormat::Ascii,
        Token::CharacterProgramData(s) if mnemonic_compare(b"REAL", s) => DataFormat::Real64,
        Token::CharacterProgramData(_) => return Err(ErrorCode::IllegalParameterValue.into()),
        _ => return Err(ErrorCode::DataTypeError.into()),
    };
    let width = p.next_optional_token()?;
    no_more(p)?;
    dev.data_format = match (kind, width) {
        (DataFormat::Ascii, None) => DataFormat::Ascii,
        (DataFormat::Ascii, Some(t)) => {
            // The digit count of ASCII format is accepted and ignored (always 9 digits).
            number_arg(t, 0.0, 15.0)?;
            DataFormat::Ascii
        }
        (_, None) => DataFormat::Real64,
        (_, Some(t)) => match number_arg(t, 0.0, 64.0)? {
            32.0 => DataFormat::Real32,
            64.0 => DataFormat::Real64,
            _ => return Err(ErrorCode::IllegalParameterValue.into()),
        },
    };
    Ok(())
}

fn form_data_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(
        r,
        match dev.data_format {
            DataFormat::Ascii => "ASC,9",
            DataFormat::Real32 => "REAL,32",
            DataFormat::Real64 => "REAL,64",
        },
    )
}

/// `FORMat:BORDer NORMal|SWAPped`.
fn form_bord_ev(dev: &mut Meter, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let swapped = match p.next_token()? {
        Token::CharacterProgramData(s) if mnemonic_compare(b"NORMal", s) => false,
        Token::CharacterProgramData(s) if mnemonic_compare(b"SWAPped", s) => true,
        Token::CharacterProgramData(_) => return Err(ErrorCode::IllegalParameterValue.into()),
        _ => return Err(ErrorCode::DataTypeError.into()),
    };
    no_more(p)?;
    dev.swapped = swapped;
    Ok(())
}

fn form_bord_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, if dev.swapped { "SWAP" } else { "NORM" })
}

/// Most samples per trigger and most triggers the meter accepts.
const MAX_COUNT: f64 = 1_000_000.0;

const COUNT_LIMITS: Limits = Limits {
    min: 1.0,
    max: MAX_COUNT,
    def: 1.0,
};

/// A number parameter within `min..=max`.
fn number_arg(token: Token<'_>, min: f64, max: f64) -> ScpiResult<f64> {
    let v = f64::try_from(token)?;
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ErrorCode::DataOutOfRange.into())
    }
}

/// A count setting: `MIN|MAX|DEF` or a number from 1 to 1 000 000, rounded.
fn count_setting(p: &mut Parameters<'_, '_>) -> ScpiResult<u32> {
    let v = numeric_setting(p.next_token()?, COUNT_LIMITS, |t| {
        number_arg(t, COUNT_LIMITS.min, COUNT_LIMITS.max)
    })?;
    no_more(p)?;
    // In range by construction, so the conversion is exact after rounding.
    Ok(v.round() as u32)
}

fn samp_count_ev(dev: &mut Meter, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    dev.samples = count_setting(p)?;
    Ok(())
}

fn samp_count_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    let v = query_setting(p, COUNT_LIMITS, f64::from(dev.samples))?;
    no_more(p)?;
    respond_text(r, &format!("+{v}"))
}

fn trig_count_ev(dev: &mut Meter, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    dev.triggers = count_setting(p)?;
    Ok(())
}

fn trig_count_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    let v = query_setting(p, COUNT_LIMITS, f64::from(dev.triggers))?;
    no_more(p)?;
    respond_text(r, &format!("+{v}"))
}

/// `TRIGger:SOURce IMMediate|BUS|EXTernal|INTernal`: kept for the query; the simulator triggers
/// every source at once.
fn trig_source_ev(dev: &mut Meter, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let source = match p.next_token()? {
        Token::CharacterProgramData(s) => [
            (b"IMMediate".as_slice(), "IMM"),
            (b"BUS", "BUS"),
            (b"EXTernal", "EXT"),
            (b"INTernal", "INT"),
        ]
        .into_iter()
        .find(|(m, _)| mnemonic_compare(m, s))
        .map(|(_, v)| v)
        .ok_or(Error::new(ErrorCode::IllegalParameterValue))?,
        _ => return Err(ErrorCode::DataTypeError.into()),
    };
    no_more(p)?;
    dev.trigger_source = source;
    Ok(())
}

fn trig_source_q(
    dev: &mut Meter,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, dev.trigger_source)
}

impl Dmm {
    /// The meter as a personality: `identity` replaces the one in `setup.params` (the Keysight
    /// models); `None` keeps it (the generic DMM).
    pub(crate) fn personality(
        setup: Setup,
        model: PersonalityId,
        identity: Option<SimIdentity>,
    ) -> Self {
        let mut params = setup.params;
        if let Some(identity) = identity {
            params.identity = identity;
        }
        let mut dmm = Self::with_clock(params, setup.clock);
        dmm.meter.sent = setup.sent;
        dmm.meter.model = model;
        dmm
    }
}

impl Personality for Dmm {
    fn id(&self) -> PersonalityId {
        self.meter.model
    }

    fn handle(&mut self, message: &[u8]) -> Reply {
        let bytes = self.handle_line(message);
        let delay = self.take_busy();
        Reply::from_scpi(bytes, delay)
    }

    fn talk(&mut self) -> Reply {
        self.meter.push_error(ErrorCode::QueryUnterminated.into());
        Reply::none()
    }

    fn status_byte(&mut self) -> u8 {
        self.meter.status_byte()
    }

    fn input_overflow(&mut self) {
        self.queue_too_much_data();
    }

    fn inject_error(&mut self) {
        self.meter.push_error(ErrorCode::DeviceSpecificError.into());
    }

    fn set_serial(&mut self, serial: &str) {
        self.meter.params.identity.serial = serial.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{ManualClock, SimIdentity};
    use proptest::prelude::*;

    /// A standard that reads exactly 10 V: no offset, drift, temperature effect or noise.
    fn ideal() -> SimParams {
        SimParams {
            nominal: 10.0,
            offset: 0.0,
            drift_per_day: 0.0,
            noise: 0.0,
            tempco: 0.0,
            ..SimParams::default()
        }
    }

    fn meter(params: SimParams) -> (Dmm, ManualClock) {
        let clock = ManualClock::new();
        (Dmm::with_clock(params, clock.clone()), clock)
    }

    /// Sends `cmd` LF-terminated and returns the reply as text.
    fn q(dmm: &mut Dmm, cmd: &str) -> String {
        let mut line = cmd.as_bytes().to_vec();
        line.push(b'\n');
        String::from_utf8(dmm.handle_line(&line)).unwrap()
    }

    /// Drains the error queue, oldest first, without the final `0,"No error"`.
    fn errors(dmm: &mut Dmm) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..100 {
            let reply = q(dmm, "SYST:ERR?");
            if reply == "0,\"No error\"\n" {
                return out;
            }
            out.push(reply.trim_end().to_owned());
        }
        panic!("error queue does not empty: {out:?}");
    }

    fn reading(reply: &str) -> f64 {
        let text = reply.strip_suffix('\n').unwrap();
        assert!(is_reading_format(text), "{reply:?}");
        text.parse().unwrap()
    }

    /// `[+-]d.ddddddddE[+-]dd`, the shape of every number the meter sends.
    fn is_reading_format(text: &str) -> bool {
        let b = text.as_bytes();
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        b.len() == 15
            && matches!(b[0], b'+' | b'-')
            && b[1].is_ascii_digit()
            && b[2] == b'.'
            && digits(&b[3..11])
            && b[11] == b'E'
            && matches!(b[12], b'+' | b'-')
            && digits(&b[13..])
    }

    // --- IEEE 488.2 common commands ---------------------------------------------------------

    #[test]
    fn idn_reports_the_configured_identity() {
        let (mut d, _) = meter(ideal());
        assert_eq!(
            q(&mut d, "*IDN?"),
            format!(
                "TSAGENT,SIM-DMM,SIM0000001,tsagent-sim-{}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let params = SimParams {
            identity: SimIdentity {
                manufacturer: "ACME".into(),
                model: "DVM-9".into(),
                serial: "12,34".into(),
                firmware: "1.0;\u{e9}".into(),
            },
            ..ideal()
        };
        let (mut d, _) = meter(params);
        // Separators and non-ASCII in a field would break the reply's framing; they are masked.
        assert_eq!(q(&mut d, "*IDN?"), "ACME,DVM-9,12_34,1.0__\n");
    }

    #[test]
    fn common_command_forms_are_checked() {
        let (mut d, _) = meter(ideal());
        assert_eq!(q(&mut d, "*IDN"), "");
        assert_eq!(q(&mut d, "*IDN? 1"), "");
        assert_eq!(q(&mut d, "*RST?"), "");
        assert_eq!(
            errors(&mut d),
            [
                "-113,\"Undefined header\"",
                "-108,\"Parameter not allowed\"",
                "-113,\"Undefined header\""
            ]
        );
    }

    #[test]
    fn opc_tst_wai_and_version() {
        let (mut d, _) = meter(ideal());
        assert_eq!(q(&mut d, "*OPC?"), "1\n");
        assert_eq!(q(&mut d, "*TST?"), "+0\n");
        assert_eq!(q(&mut d, "*WAI"), "");
        assert_eq!(q(&mut d, "SYST:VERS?"), "1999.0\n");
        assert_eq!(errors(&mut d), Vec::<String>::new());
    }

    #[test]
    fn esr_reports_power_on_then_events_and_clears_on_read() {
        let (mut d, _) = meter(ideal());
        assert_eq!(q(&mut d, "*ESR?"), "+128\n");
        assert_eq!(q(&mut d, "*ESR?"), "+0\n");
        q(&mut d, "*OPC");
        assert_eq!(q(&mut d, "*ESR?"), "+1\n");
        q(&mut d, "FOO"); // command error, bit 5
        q(&mut d, "CONF:VOLT:DC 5000"); // execution error, bit 4
        assert_eq!(q(&mut d, "*ESR?"), "+48\n");
        assert_eq!(q(&mut d, "*ESR?"), "+0\n");
    }

    #[test]
    fn stb_summarises_error_queue_and_enabled_events() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "*CLS");
        assert_eq!(q(&mut d, "*STB?"), "+0\n");
        q(&mut d, "FOO");
        assert_eq!(q(&mut d, "*STB?"), "+4\n");
        q(&mut d, "*ESE 32");
        assert_eq!(q(&mut d, "*ESE?"), "+32\n");
        assert_eq!(q(&mut d, "*STB?"), "+36\n");
        q(&mut d, "*SRE 36");
        assert_eq!(q(&mut d, "*SRE?"), "+36\n");
        assert_eq!(q(&mut d, "*STB?"), "+100\n");
        // Reading the status byte does not clear it; *CLS does.
        assert_eq!(q(&mut d, "*STB?"), "+100\n");
        q(&mut d, "*CLS");
        assert_eq!(q(&mut d, "*STB?"), "+0\n");
        q(&mut d, "*ESE 256");
        assert_eq!(errors(&mut d), ["-222,\"Data out of range\""]);
    }

    #[test]
    fn cls_empties_error_queue_and_esr() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "FOO");
        q(&mut d, "BAR");
        q(&mut d, "*CLS");
        assert_eq!(q(&mut d, "*ESR?"), "+0\n");
        assert_eq!(q(&mut d, "SYST:ERR?"), "0,\"No error\"\n");
    }

    #[test]
    fn rst_restores_settings_but_keeps_errors() {
        let (mut d, _) = meter(ideal());
        q(
            &mut d,
            "VOLT:DC:NPLC 100;RANG 1;:VOLT:ZERO:AUTO OFF;:VOLT:IMP:AUTO ON",
        );
        q(&mut d, "READ?");
        q(&mut d, "FOO");
        q(&mut d, "*RST");
        assert_eq!(q(&mut d, "VOLT:DC:NPLC?"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "VOLT:DC:RANG:AUTO?"), "1\n");
        assert_eq!(q(&mut d, "VOLT:DC:RANG?"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "VOLT:ZERO:AUTO?"), "1\n");
        assert_eq!(q(&mut d, "VOLT:IMP:AUTO?"), "0\n");
        assert_eq!(q(&mut d, "FETC?"), "");
        assert_eq!(
            errors(&mut d),
            [
                "-113,\"Undefined header\"",
                "-230,\"Data corrupt or stale\""
            ]
        );
    }

    // --- Error queue --------------------------------------------------------------------------

    #[test]
    fn unknown_headers_queue_113_like_a_real_meter() {
        let (mut d, _) = meter(ideal());
        for cmd in [
            "FOO?",
            "*XYZ",
            "VOLT:DC:FOO 1",
            "SYST:ERR:BOGUS?",
            "MEAS?",
            "CONF:CURR:DC",
        ] {
            assert_eq!(q(&mut d, cmd), "", "{cmd}");
            assert_eq!(errors(&mut d), ["-113,\"Undefined header\""], "{cmd}");
        }
    }

    #[test]
    fn standard_codes_for_other_errors() {
        let (mut d, _) = meter(ideal());
        let cases = [
            ("READ? ?", "-102,\"Syntax error\""),
            ("CONF:VOLT:DC 10,,1", "-102,\"Syntax error\""),
            ("\u{80}", "-101,\"Invalid character\""),
            ("CONF:VOLT:DC 'ten'", "-104,\"Data type error\""),
            ("CONF:VOLT:DC 10,1,2", "-108,\"Parameter not allowed\""),
            ("VOLT:DC:NPLC", "-109,\"Missing parameter\""),
            ("CONF:VOLT:DC 10 A", "-131,\"Invalid suffix\""),
            ("CONF:VOLT:DC 2000", "-222,\"Data out of range\""),
            ("VOLT:DC:NPLC 1000", "-222,\"Data out of range\""),
            ("VOLT:DC:NPLC -1", "-222,\"Data out of range\""),
            ("CONF:VOLT:DC FAST", "-224,\"Illegal parameter value\""),
            ("FETC?", "-230,\"Data corrupt or stale\""),
        ];
        for (cmd, expected) in cases {
            assert_eq!(q(&mut d, cmd), "", "{cmd}");
            assert_eq!(errors(&mut d), [expected], "{cmd}");
        }
    }

    #[test]
    fn error_queue_is_first_in_first_out() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "FOO");
        q(&mut d, "VOLT:DC:NPLC");
        q(&mut d, "CONF:VOLT:DC 2000");
        assert_eq!(
            errors(&mut d),
            [
                "-113,\"Undefined header\"",
                "-109,\"Missing parameter\"",
                "-222,\"Data out of range\""
            ]
        );
        assert_eq!(q(&mut d, "SYST:ERR:NEXT?"), "0,\"No error\"\n");
    }

    #[test]
    fn full_error_queue_replaces_its_newest_entry_with_350() {
        let (mut d, _) = meter(ideal());
        // 19 distinguishable errors, then 6 more than fit.
        for _ in 0..19 {
            q(&mut d, "VOLT:DC:NPLC");
        }
        for _ in 0..6 {
            q(&mut d, "FOO");
        }
        let errs = errors(&mut d);
        assert_eq!(errs.len(), ERROR_QUEUE_CAP);
        assert!(errs[..19].iter().all(|e| e == "-109,\"Missing parameter\""));
        assert_eq!(errs[19], "-350,\"Queue overflow\"");
        // Room again after draining.
        q(&mut d, "FOO");
        assert_eq!(errors(&mut d), ["-113,\"Undefined header\""]);
    }

    // --- Message structure ------------------------------------------------------------------

    #[test]
    fn several_units_and_queries_per_line() {
        let (mut d, _) = meter(ideal());
        let idn = q(&mut d, "*IDN?");
        assert_eq!(q(&mut d, "*IDN?;*OPC?"), format!("{};1\n", idn.trim_end()));
        // Headers after `;` continue from the last branch, as SCPI defines.
        assert_eq!(q(&mut d, "VOLT:DC:NPLC 100;NPLC?"), "+1.00000000E+02\n");
        assert_eq!(
            q(&mut d, ":READ?;:FETC?"),
            "+1.00000000E+01;+1.00000000E+01\n"
        );
        assert_eq!(errors(&mut d), Vec::<String>::new());
    }

    #[test]
    fn an_error_abandons_the_rest_of_the_message_but_earlier_replies_are_sent() {
        let (mut d, _) = meter(ideal());
        assert_eq!(q(&mut d, "*OPC?;FOO;*IDN?"), "1\n");
        assert_eq!(errors(&mut d), ["-113,\"Undefined header\""]);
        assert_eq!(q(&mut d, "VOLT:NPLC 1;FETC?;NPLC 100"), "");
        assert_eq!(q(&mut d, "VOLT:NPLC?"), "+1.00000000E+00\n");
    }

    #[test]
    fn a_trailing_unit_separator_still_gets_a_terminated_reply() {
        let (mut d, _) = meter(ideal());
        assert_eq!(q(&mut d, "*OPC?;"), "1\n");
        assert_eq!(q(&mut d, "*OPC?;*OPC?;"), "1;1\n");
        assert_eq!(errors(&mut d), Vec::<String>::new());
    }

    #[test]
    fn accepts_lf_crlf_no_terminator_and_leading_space() {
        let (mut d, _) = meter(ideal());
        assert_eq!(d.handle_line(b"*OPC?\n"), b"1\n");
        assert_eq!(d.handle_line(b"*OPC?\r\n"), b"1\n");
        assert_eq!(d.handle_line(b"*OPC?"), b"1\n");
        assert_eq!(d.handle_line(b"  \t*OPC?\r\n"), b"1\n");
        assert_eq!(d.handle_line(b"\n"), b"");
        assert_eq!(d.handle_line(b"read?\n"), b"+1.00000000E+01\n");
        assert_eq!(errors(&mut d), Vec::<String>::new());
    }

    // --- Measurement ------------------------------------------------------------------------

    #[test]
    fn readings_have_the_meter_format() {
        let (mut d, _) = meter(SimParams::default());
        for cmd in [
            "READ?",
            "MEAS:VOLT:DC?",
            "FETC?",
            "VOLT:NPLC?",
            "VOLT:RANG?",
        ] {
            reading(&q(&mut d, cmd));
        }
        let (mut d, _) = meter(SimParams {
            offset: 2.3e-6,
            ..ideal()
        });
        assert_eq!(q(&mut d, "READ?"), "+1.00000023E+01\n");
    }

    #[test]
    fn fetch_resends_reading_memory_and_init_fills_it() {
        let (mut d, _) = meter(SimParams::default());
        assert_eq!(q(&mut d, "FETC?"), "");
        assert_eq!(q(&mut d, "INIT"), "");
        let first = q(&mut d, "FETC?");
        reading(&first);
        assert_eq!(q(&mut d, "FETC?"), first);
        let read = q(&mut d, "READ?");
        assert_eq!(q(&mut d, "FETC?"), read);
        q(&mut d, "INIT:IMM");
        q(&mut d, "CONF:VOLT:DC");
        assert_eq!(q(&mut d, "FETC?"), "");
        assert_eq!(
            errors(&mut d),
            [
                "-230,\"Data corrupt or stale\"",
                "-230,\"Data corrupt or stale\""
            ]
        );
    }

    #[test]
    fn configure_selects_the_range_that_covers_the_value() {
        let (mut d, _) = meter(ideal());
        let cases = [
            ("CONF:VOLT:DC 5", "+1.00000000E+01"),
            ("CONF:VOLT:DC 10", "+1.00000000E+01"),
            ("CONF:VOLT:DC 10.5", "+1.00000000E+02"),
            ("CONF:VOLT:DC -0.05", "+1.00000000E-01"),
            ("CONF:VOLT:DC 100 mV", "+1.00000000E-01"),
            ("CONF:VOLT:DC 1 kV", "+1.00000000E+03"),
            ("CONF:VOLT:DC 1,1e-6", "+1.00000000E+00"),
            ("CONF:VOLT:DC MIN", "+1.00000000E-01"),
            ("CONF:VOLT:DC MAX,MAX", "+1.00000000E+03"),
            ("CONF:VOLT 100", "+1.00000000E+02"),
        ];
        for (cmd, range) in cases {
            q(&mut d, cmd);
            assert_eq!(q(&mut d, "VOLT:RANG:AUTO?"), "0\n", "{cmd}");
            assert_eq!(q(&mut d, "VOLT:RANG?"), format!("{range}\n"), "{cmd}");
        }
        for cmd in ["CONF:VOLT:DC", "CONF:VOLT:DC AUTO", "CONF:VOLT:DC DEF,DEF"] {
            q(&mut d, "CONF:VOLT:DC 1");
            q(&mut d, cmd);
            assert_eq!(q(&mut d, "VOLT:RANG:AUTO?"), "1\n", "{cmd}");
        }
        q(&mut d, "CONF:VOLT:DC 10,0");
        assert_eq!(errors(&mut d), ["-222,\"Data out of range\""]);
    }

    #[test]
    fn over_120_percent_of_range_reads_as_overload() {
        let read_at = |nominal: f64, setup: &str| {
            let (mut d, _) = meter(SimParams { nominal, ..ideal() });
            q(&mut d, setup);
            q(&mut d, "READ?")
        };
        assert_eq!(read_at(10.0, "CONF:VOLT:DC 1"), "+9.90000000E+37\n");
        assert_eq!(read_at(-10.0, "CONF:VOLT:DC 1"), "-9.90000000E+37\n");
        assert_eq!(read_at(11.9, "CONF:VOLT:DC 10"), "+1.19000000E+01\n");
        assert_eq!(read_at(12.1, "CONF:VOLT:DC 10"), "+9.90000000E+37\n");
        // Autoranging follows the input up to the top range, then overloads too.
        assert_eq!(read_at(150.0, "CONF:VOLT:DC AUTO"), "+1.50000000E+02\n");
        assert_eq!(read_at(1300.0, "CONF:VOLT:DC AUTO"), "+9.90000000E+37\n");
        let (mut d, _) = meter(SimParams {
            nominal: 0.5,
            ..ideal()
        });
        q(&mut d, "READ?");
        assert_eq!(q(&mut d, "VOLT:RANG?"), "+1.00000000E+00\n");
        // The overload marker is what FETC? resends, too.
        let (mut d, _) = meter(ideal());
        assert_eq!(q(&mut d, "MEAS:VOLT:DC? 0.1"), "+9.90000000E+37\n");
        assert_eq!(q(&mut d, "FETC?"), "+9.90000000E+37\n");
        assert_eq!(q(&mut d, "VOLT:RANG?"), "+1.00000000E-01\n");
        assert_eq!(q(&mut d, "MEAS:VOLT:DC?"), "+1.00000000E+01\n");
    }

    #[test]
    fn non_finite_model_values_read_as_not_a_number() {
        let (mut d, _) = meter(SimParams {
            nominal: f64::INFINITY,
            ..ideal()
        });
        assert_eq!(q(&mut d, "READ?"), "+9.91000000E+37\n");
    }

    #[test]
    fn nplc_rounds_up_to_the_next_step() {
        let (mut d, _) = meter(ideal());
        let cases = [
            ("5", "+1.00000000E+01"),
            ("0.2", "+2.00000000E-01"),
            ("0.0001", "+1.00000000E-03"),
            ("1.5", "+1.00000000E+01"),
            ("100", "+1.00000000E+02"),
            ("MIN", "+1.00000000E-03"),
            ("MAX", "+1.00000000E+02"),
            ("DEF", "+1.00000000E+01"),
        ];
        for (arg, expected) in cases {
            q(&mut d, &format!("SENS:VOLT:DC:NPLC {arg}"));
            assert_eq!(q(&mut d, "VOLT:NPLC?"), format!("{expected}\n"), "{arg}");
        }
        assert_eq!(q(&mut d, "VOLT:NPLC? MIN"), "+1.00000000E-03\n");
        assert_eq!(q(&mut d, "VOLT:NPLC? MAX"), "+1.00000000E+02\n");
        assert_eq!(q(&mut d, "VOLT:NPLC? DEF"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "VOLT:NPLC? FOO"), "");
        assert_eq!(q(&mut d, "VOLT:NPLCYCLES 2 V"), "");
        assert_eq!(
            errors(&mut d),
            [
                "-224,\"Illegal parameter value\"",
                "-138,\"Suffix not allowed\""
            ]
        );
    }

    #[test]
    fn range_and_its_auto_switch() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "VOLT:RANG 1");
        assert_eq!(q(&mut d, "VOLT:RANG:AUTO?"), "0\n");
        assert_eq!(q(&mut d, "READ?"), "+9.90000000E+37\n");
        q(&mut d, "VOLT:RANG:AUTO ON");
        assert_eq!(q(&mut d, "READ?"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "VOLT:RANG?"), "+1.00000000E+01\n");
        q(&mut d, "VOLT:RANG MAX;RANG:AUTO ONCE");
        assert_eq!(
            q(&mut d, "VOLT:RANG:AUTO?;:VOLT:RANG?"),
            "0;+1.00000000E+01\n"
        );
        q(&mut d, "VOLT:RANG:AUTO 1");
        assert_eq!(q(&mut d, "VOLT:RANG:AUTO?"), "1\n");
        assert_eq!(
            q(&mut d, "VOLT:RANG? MIN;RANG? MAX;RANG? DEF"),
            "+1.00000000E-01;+1.00000000E+03;+1.00000000E+01\n"
        );
        q(&mut d, "VOLT:RANG:AUTO MAYBE");
        q(&mut d, "VOLT:RANG 1001");
        assert_eq!(
            errors(&mut d),
            [
                "-224,\"Illegal parameter value\"",
                "-222,\"Data out of range\""
            ]
        );
    }

    #[test]
    fn zero_and_impedance_settings_are_kept() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "VOLT:ZERO:AUTO OFF");
        assert_eq!(q(&mut d, "VOLT:DC:ZERO:AUTO?"), "0\n");
        q(&mut d, "VOLT:ZERO:AUTO ON");
        assert_eq!(q(&mut d, "VOLT:ZERO:AUTO?"), "1\n");
        q(&mut d, "VOLT:ZERO:AUTO ONCE");
        assert_eq!(q(&mut d, "VOLT:ZERO:AUTO?"), "0\n");
        q(&mut d, "SENS:VOLT:DC:IMP:AUTO ON");
        assert_eq!(q(&mut d, "VOLT:IMP:AUTO?"), "1\n");
        q(&mut d, "VOLT:IMP:AUTO ONCE");
        assert_eq!(errors(&mut d), ["-224,\"Illegal parameter value\""]);
    }

    #[test]
    fn readings_sent_counts_readings_in_replies() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "INIT");
        assert_eq!(d.readings_sent(), 0);
        q(&mut d, "FETC?;READ?;:MEAS:VOLT:DC?");
        assert_eq!(d.readings_sent(), 3);
        q(&mut d, "CONF:VOLT:DC;:FETC?");
        assert_eq!(d.readings_sent(), 3);
    }

    // --- The model through the meter ---------------------------------------------------------

    #[test]
    fn same_seed_same_readings_other_seed_other_readings() {
        let noisy = |seed| SimParams {
            noise: 1e-6,
            seed,
            ..ideal()
        };
        let run = |seed| {
            let (mut d, _) = meter(noisy(seed));
            (0..20).map(|_| q(&mut d, "READ?")).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        // Noise is there at all: not every reading alike.
        assert!(a.iter().any(|r| r != &a[0]));
    }

    #[test]
    fn noise_has_the_configured_standard_deviation() {
        let (mut d, _) = meter(SimParams {
            noise: 1e-6,
            ..ideal()
        });
        let n = 2000;
        let xs: Vec<f64> = (0..n)
            .map(|_| reading(&q(&mut d, "READ?")) - 10.0)
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        // σ of the mean is 22 nV; of the standard deviation about 1.6 %.
        assert!(mean.abs() < 1e-7, "mean {mean}");
        assert!((sd / 1e-6 - 1.0).abs() < 0.08, "sd {sd}");
    }

    #[test]
    fn drift_shows_with_simulated_time() {
        let (mut d, clock) = meter(SimParams {
            drift_per_day: 1e-6,
            time_scale: 86_400.0,
            ..ideal()
        });
        let start = reading(&q(&mut d, "READ?"));
        // 10 wall seconds at 86 400× are 10 days.
        clock.advance(Duration::from_secs(10));
        assert!((d.simulated_days() - 10.0).abs() < 1e-12);
        let later = reading(&q(&mut d, "READ?"));
        assert!((later - start - 10e-6).abs() < 1e-8, "{start} → {later}");
    }

    #[test]
    fn temperature_cycle_shows_through_the_tempco() {
        let (mut d, clock) = meter(SimParams {
            tempco: 1e-6,
            lab_temp_amplitude: 0.5,
            lab_temp_period: Duration::from_secs(86_400),
            time_scale: 86_400.0,
            ..ideal()
        });
        // One wall second is one simulated day, one cycle: sample it at quarter periods.
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(reading(&q(&mut d, "READ?")) - 10.0);
            clock.advance(Duration::from_millis(250));
        }
        let expected = [0.0, 0.5e-6, 0.0, -0.5e-6, 0.0];
        for (got, want) in seen.iter().zip(expected) {
            assert!((got - want).abs() < 1e-8, "{seen:?}");
        }
    }

    #[test]
    fn realistic_timing_charges_nplc_over_50_seconds_per_reading() {
        let (mut d, _) = meter(SimParams {
            realistic_timing: true,
            ..ideal()
        });
        q(&mut d, "READ?");
        assert_eq!(d.take_busy(), Duration::from_millis(200));
        assert_eq!(d.take_busy(), Duration::ZERO);
        q(&mut d, "VOLT:NPLC 100;:READ?;:MEAS:VOLT:DC?;:INIT;:FETC?");
        assert_eq!(d.take_busy(), Duration::from_secs(6));
        let (mut d, _) = meter(ideal());
        q(&mut d, "READ?");
        assert_eq!(d.take_busy(), Duration::ZERO);
    }

    // --- Truevolt reading memory and binary formats (keysight-34470a/34465a) ------------------

    /// A Truevolt meter reading an exact 10 V.
    fn truevolt(id: PersonalityId) -> Dmm {
        let identity = SimIdentity {
            manufacturer: "Keysight Technologies".into(),
            model: "34470A".into(),
            serial: "SIMTEST01".into(),
            firmware: "fw".into(),
        };
        Dmm::personality(
            crate::sim::personality::tests::setup(false).0,
            id,
            Some(identity),
        )
    }

    #[test]
    fn truevolt_identities_come_from_the_personality_table() {
        use crate::sim::personality::tests::{ask, setup};
        for (id, model) in [
            (PersonalityId::Keysight34470a, "34470A"),
            (PersonalityId::Keysight34465a, "34465A"),
        ] {
            let mut p = id.build(setup(false).0);
            assert_eq!(
                ask(p.as_mut(), "*IDN?"),
                format!(
                    "Keysight Technologies,{model},SIMTEST01,tsagent-sim-{}\n",
                    env!("CARGO_PKG_VERSION")
                )
            );
            p.set_serial("SIM2");
            assert!(ask(p.as_mut(), "*IDN?").contains(",SIM2,"));
        }
        let mut g = PersonalityId::GenericScpiDmm.build(setup(false).0);
        assert!(ask(g.as_mut(), "*IDN?").starts_with("TSAGENT,SIM-DMM,SIM0000001,"));
    }

    #[test]
    fn sample_and_trigger_counts_fill_memory() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        q(&mut d, "CONF:VOLT:DC 10;:SAMP:COUN 3;:TRIG:COUN 2");
        assert_eq!(q(&mut d, "SAMP:COUN?;:TRIG:COUN?"), "+3;+2\n");
        assert_eq!(q(&mut d, "TRIG:SOUR BUS;SOUR?"), "BUS\n");
        q(&mut d, "INIT");
        assert_eq!(q(&mut d, "DATA:POIN?"), "+6\n");
        assert_eq!(
            q(&mut d, "FETC?"),
            format!("{}\n", ["+1.00000000E+01"; 6].join(","))
        );
        assert_eq!(q(&mut d, "DATA:LAST?"), "+1.00000000E+01 VDC\n");
        // R? sends and erases; in ASCII format it is still a block.
        assert_eq!(q(&mut d, "R? 2"), "#231+1.00000000E+01,+1.00000000E+01\n");
        assert_eq!(q(&mut d, "DATA:POIN?"), "+4\n");
        q(&mut d, "R?");
        assert_eq!(q(&mut d, "R?"), "#10\n");
        // CONFigure resets the counts.
        q(&mut d, "CONF:VOLT:DC");
        assert_eq!(q(&mut d, "SAMP:COUN?"), "+1\n");
        q(&mut d, "SAMP:COUN 1000;:TRIG:COUN 1000;:INIT");
        assert_eq!(q(&mut d, "DATA:POIN?"), format!("+{MEMORY_CAP}\n"));
        assert_eq!(errors(&mut d), ["531,\"Insufficient memory\""]);
    }

    #[test]
    fn real_formats_send_definite_length_blocks() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        q(&mut d, "FORM:DATA REAL,64;:SAMP:COUN 2");
        assert_eq!(q(&mut d, "FORM:DATA?"), "REAL,64\n");
        let reply = d.handle_line(b"READ?\n");
        let mut expected = b"#216".to_vec();
        expected.extend(10.0f64.to_be_bytes());
        expected.extend(10.0f64.to_be_bytes());
        expected.push(b'\n');
        assert_eq!(reply, expected);
        q(&mut d, "FORM:BORD SWAP;:FORM:DATA REAL,32");
        assert_eq!(q(&mut d, "FORM:BORD?"), "SWAP\n");
        let reply = d.handle_line(b"FETC?\n");
        let mut expected = b"#18".to_vec();
        expected.extend(10.0f32.to_le_bytes());
        expected.extend(10.0f32.to_le_bytes());
        expected.push(b'\n');
        assert_eq!(reply, expected);
        q(&mut d, "FORM ASC");
        assert_eq!(q(&mut d, "FORM?"), "ASC,9\n");
        q(&mut d, "FORM:DATA REAL,16");
        q(&mut d, "FORM:BORD BIG");
        assert_eq!(
            errors(&mut d),
            [
                "-224,\"Illegal parameter value\"",
                "-224,\"Illegal parameter value\""
            ]
        );
    }

    #[test]
    fn a_block_ending_in_lf_or_semicolon_is_still_terminated_once() {
        // Find readings whose big-endian f32 ends in LF (0x0A) and in `;` (0x3B).
        for last in [b'\n', b';'] {
            let value = f32::from_be_bytes([0x41, 0x20, 0x00, last]);
            let mut d = truevolt(PersonalityId::Keysight34470a);
            d.meter.params.nominal = f64::from(value);
            q(&mut d, "FORM:DATA REAL,32;:VOLT:RANG:AUTO ON");
            let mut block = b"#14".to_vec();
            block.extend(value.to_be_bytes());
            let mut expected = block.clone();
            expected.push(b'\n');
            assert_eq!(d.handle_line(b"READ?"), expected);
            assert_eq!(d.handle_line(b"FETC?;"), expected);
            assert_eq!(d.handle_line(b"FETC?;BOGUS"), expected);
            assert_eq!(d.handle_line(b"FETC?;VOLT:NPLC? 7"), expected);
        }
    }

    // --- Robustness -------------------------------------------------------------------------

    /// Fragments that reach deep into the parser and the handlers.
    fn scpi_soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just("*IDN?"),
            Just("*RST"),
            Just("*CLS"),
            Just("*OPC"),
            Just("*ESR?"),
            Just("*STB?"),
            Just("*ESE"),
            Just("*SRE"),
            Just("SYST:ERR?"),
            Just("CONF:VOLT:DC"),
            Just("MEAS:VOLT:DC?"),
            Just("READ?"),
            Just("FETC?"),
            Just("INIT"),
            Just("VOLT:DC:NPLC"),
            Just("VOLT:RANG"),
            Just(":AUTO"),
            Just("SENS"),
            Just(":"),
            Just("?"),
            Just(";"),
            Just(","),
            Just(" "),
            Just("\r"),
            Just("\n"),
            Just("10"),
            Just("-1e999"),
            Just("0.2"),
            Just("MIN"),
            Just("MAX"),
            Just("DEF"),
            Just("ONCE"),
            Just("ON"),
            Just("mV"),
            Just("#H1F"),
            Just("#15abcde"),
            Just("#0xyz\n"),
            Just("#9"),
            Just("'str'"),
            Just("\"q\"\"q\""),
            Just("(@1:3)"),
            Just("("),
            Just("\u{e9}"),
            Just("\0"),
            Just("ABCDEFGHIJKLMNOP"),
            Just("1234567890123"),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat().into_bytes())
    }

    /// A reply is empty or one LF-terminated line.
    fn well_framed(reply: &[u8]) -> bool {
        reply.is_empty() || (reply.ends_with(b"\n") && !reply[..reply.len() - 1].contains(&b'\n'))
    }

    proptest! {
        #[test]
        fn real64_blocks_decode_to_the_readings(
            nominal in -1.1e3f64..1.1e3,
            count in 1u32..20,
            swapped in any::<bool>(),
        ) {
            let mut d = truevolt(PersonalityId::Keysight34470a);
            d.meter.params.nominal = nominal;
            let order = if swapped { "SWAP" } else { "NORM" };
            q(&mut d, &format!("FORM:DATA REAL,64;:FORM:BORD {order};:SAMP:COUN {count}"));
            let reply = d.handle_line(b"READ?");
            // Parse the block as a client would: header digits, then exactly that many bytes.
            prop_assert_eq!(reply[0], b'#');
            let n = usize::from(reply[1] - b'0');
            let len: usize = std::str::from_utf8(&reply[2..2 + n]).unwrap().parse().unwrap();
            prop_assert_eq!(len, 8 * count as usize);
            let body = &reply[2 + n..2 + n + len];
            prop_assert_eq!(&reply[2 + n + len..], b"\n");
            let shown = d.meter.apply_range(nominal);
            for chunk in body.chunks(8) {
                let bytes: [u8; 8] = chunk.try_into().unwrap();
                let v = if swapped { f64::from_le_bytes(bytes) } else { f64::from_be_bytes(bytes) };
                prop_assert_eq!(v, shown);
            }
        }

        #[test]
        fn handle_line_never_panics_on_arbitrary_bytes(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)
        ) {
            let (mut d, _) = meter(SimParams::default());
            for line in &lines {
                let reply = d.handle_line(line);
                prop_assert!(well_framed(&reply), "{:?} → {:?}", line, reply);
            }
            // Still a working meter afterwards.
            q(&mut d, "*CLS");
            prop_assert_eq!(q(&mut d, "*OPC?"), "1\n");
        }

        #[test]
        fn handle_line_never_panics_on_scpi_soup(
            lines in proptest::collection::vec(scpi_soup(), 1..8)
        ) {
            let (mut d, _) = meter(SimParams::default());
            for line in &lines {
                let reply = d.handle_line(line);
                prop_assert!(
                    well_framed(&reply),
                    "{:?} → {:?}",
                    String::from_utf8_lossy(line),
                    String::from_utf8_lossy(&reply)
                );
            }
            let errs = errors(&mut d);
            prop_assert!(errs.len() <= ERROR_QUEUE_CAP);
            q(&mut d, "*RST;*CLS");
            prop_assert_eq!(q(&mut d, "*OPC?"), "1\n");
        }
    }
}
