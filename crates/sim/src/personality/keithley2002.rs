//! Keithley 2002 8.5-digit DMM (SCPI, through the `scpi` crate).
//!
//! Commands: IEEE 488.2 commons (`*IDN?` → `KEITHLEY INSTRUMENTS INC.,MODEL 2002,<serial>,
//! <firmware>`), `:SYST:ERR?`, `:FORM:ELEM READ[,UNIT,STAT,TST,RNUM,CHAN]` (and `?`),
//! `:FORM[:DATA] ASC|SRE|DRE` (binary: `#0` + IEEE-754 values + LF), `:FORM:BORD NORM|SWAP`,
//! `[:SENS]:FUNC 'VOLT:DC'|'RES'|'FRES'` (and `?`), `[:SENS]:VOLT[:DC]:NPLC`, `:RANG[:UPP]`,
//! `:RANG:AUTO`, `:DIG`, `:AVER:COUN`, `:AVER:TCON MOV|REP`, `:AVER[:STAT]` (the same under
//! `RES`/`FRES`), `:TRAC:CLE`, `:TRAC:POIN n` (and `?`), `:TRAC:FEED SENS|CALC|NONE`,
//! `:TRAC:FEED:CONT NEV|NEXT|ALW|PRET`, `:TRAC:DATA?`, `:TRAC:FREE?`, `:INIT`, `:INIT:CONT`,
//! `:ABOR`, `:TRIG:COUN`, `:FETC?`, `:READ?`, `:MEAS?`, `:CONF:VOLT[:DC]|RES|FRES` and `:CONF?`
//! (the function, quoted like `:FUNC?`), `…:RANG?` (`+2.000000E+01`), `[:SENS]:DATA[:LAT]?`
//! (the latest reading, like `:FETC?`) and `[:SENS]:DATA:FRES?` (the latest reading once; a
//! second ask before another reading queues -230 and sends nothing, where the meter would wait
//! for one and hold the bus).
//!
//! Ranges: 200 mV, 2, 20, 200 and 1000 V; 20 Ω to 200 MΩ by decades of 2, and 1 GΩ. A value
//! selects the smallest range that covers it; while autoranging `…:RANG?` reports the range that
//! holds the input. Each function keeps its own range. Unconfirmed: `:CONF?` and the reply
//! format of `…:RANG?` were not read in the 2002 manual; they follow the Keithley 2000's, which
//! QCoDeS's and PyMeasure's 2000 drivers expect.
//!
//! The default reply carries every element, as in the cheat-sheet:
//! `+10.0000000E+00NVDC,00:00:00.00,01-Jan-2026,+00001RDNG#`; after `:FORM:ELEM READ` it is the
//! plain number `+10.0000000E+00`. Numbers have two integer digits, 7 decimals and an
//! engineering exponent. The timestamp is time since the simulator started, from 2026-01-01.
//! `:INIT` with `:TRAC:FEED SENS` and `:TRAC:FEED:CONT NEXT` fills the buffer to `:TRAC:POIN`
//! and sets the feed control back to `NEV`; otherwise it takes `:TRIG:COUN` readings. `:FETC?`
//! sends the latest reading (possibly stale); `:READ?` takes `:TRIG:COUN` readings and sends the
//! latest (it is `:INIT` then `:FETC?`); `:TRAC:DATA?` the buffer, comma-separated.

use std::time::Duration;

use scpi::error::{ErrorCode, Result as ScpiResult};
use scpi::tree::prelude::*;
use scpi::{Branch, Leaf};

use super::Setup;
use super::model::{MAINS_HZ, MAX_READINGS_PER_MESSAGE, Standard};
use super::scpi_util::*;
use crate::format::format_sci;
use crate::id::PersonalityId;

/// DC voltage ranges, V.
const VOLT_RANGES: [f64; 5] = [0.2, 2.0, 20.0, 200.0, 1000.0];

/// Resistance ranges, Ω.
const OHM_RANGES: [f64; 9] = [20.0, 200.0, 2e3, 20e3, 200e3, 2e6, 20e6, 200e6, 1e9];

const EL_READ: u8 = 1;
const EL_UNIT: u8 = 2;
const EL_STAT: u8 = 4;
const EL_TST: u8 = 8;
const EL_RNUM: u8 = 16;
const EL_CHAN: u8 = 32;
const EL_DEFAULT: u8 = EL_READ | EL_UNIT | EL_STAT | EL_TST | EL_RNUM;

/// `NPLCycles`: 0.01 to 50 power-line cycles.
const NPLC: Limits = Limits {
    min: 0.01,
    max: 50.0,
    def: 1.0,
};

/// Readings the trace buffer holds at most.
const BUFFER_CAP: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    Ascii,
    Sreal,
    Dreal,
}

/// `:FORM:DATA` keywords.
const DATA_FORMATS: [(&[u8], Data); 3] = [
    (b"ASCii", Data::Ascii),
    (b"SREal", Data::Sreal),
    (b"DREal", Data::Dreal),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeedControl {
    Never,
    Next,
    Always,
    Pretrigger,
}

/// `:TRAC:FEED:CONT` keywords.
const FEED_CONTROLS: [(&[u8], FeedControl); 4] = [
    (b"NEVer", FeedControl::Never),
    (b"NEXT", FeedControl::Next),
    (b"ALWays", FeedControl::Always),
    (b"PRETrigger", FeedControl::Pretrigger),
];

/// The reading elements, their `:FORM:ELEM` names.
const ELEMENTS: [(u8, &str); 6] = [
    (EL_READ, "READ"),
    (EL_UNIT, "UNIT"),
    (EL_STAT, "STAT"),
    (EL_TST, "TST"),
    (EL_RNUM, "RNUM"),
    (EL_CHAN, "CHAN"),
];

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    number: u64,
    at: Duration,
}

/// The simulated 2002.
pub(crate) struct Keithley2002 {
    standard: Standard,
    elements: u8,
    data: Data,
    swapped: bool,
    func: Function,
    nplc: f64,
    auto_range: bool,
    /// The fixed dc voltage range, V, and resistance range, Ω, used while autorange is off.
    volt_range: f64,
    ohm_range: f64,
    average: bool,
    trigger_count: u32,
    init_continuous: bool,
    points: usize,
    feed: bool,
    feed_control: FeedControl,
    buffer: Vec<Sample>,
    last: Option<Sample>,
    /// `last` has not been sent by `:DATA:FRESh?` yet.
    fresh: bool,
    readings: u64,
    busy: Duration,
}

impl ScpiModel for Keithley2002 {
    const TREE: Node<'static, K> = TREE;

    fn reset(&mut self) {
        self.elements = EL_DEFAULT;
        self.data = Data::Ascii;
        self.swapped = false;
        self.func = Function::Dcv;
        self.nplc = 1.0;
        self.auto_range = true;
        self.volt_range = 1000.0;
        self.ohm_range = 1e9;
        self.average = false;
        self.trigger_count = 1;
        self.init_continuous = false;
        self.points = 100;
        self.feed = false;
        self.feed_control = FeedControl::Never;
        self.buffer.clear();
        self.last = None;
    }

    fn take_busy(&mut self) -> Duration {
        std::mem::take(&mut self.busy)
    }
}

impl Keithley2002 {
    /// The simulated 2002, as `*RST` leaves it.
    pub(crate) fn new(setup: Setup) -> K {
        let mut k = Self {
            standard: Standard::new(&setup),
            elements: EL_DEFAULT,
            data: Data::Ascii,
            swapped: false,
            func: Function::Dcv,
            nplc: 1.0,
            auto_range: true,
            volt_range: 1000.0,
            ohm_range: 1e9,
            average: false,
            trigger_count: 1,
            init_continuous: false,
            points: 100,
            feed: false,
            feed_control: FeedControl::Never,
            buffer: Vec::new(),
            fresh: false,
            last: None,
            readings: 0,
            busy: Duration::ZERO,
        };
        k.reset();
        let identity = identity("KEITHLEY INSTRUMENTS INC.", "MODEL 2002", &setup.serial);
        Scpi::new(PersonalityId::Keithley2002, identity, k)
    }

    fn sample(&mut self) -> Sample {
        let value = self.func.read(&mut self.standard);
        self.readings += 1;
        let aperture = self.nplc / MAINS_HZ * if self.average { 10.0 } else { 1.0 };
        self.busy = self.busy.saturating_add(self.standard.busy(aperture));
        let s = Sample {
            value,
            number: self.readings,
            at: self.standard.elapsed(),
        };
        self.last = Some(s);
        self.fresh = true;
        s
    }

    fn unit(&self) -> &'static str {
        match self.func {
            Function::Dcv => "VDC",
            Function::Res | Function::Fres => "OHM",
        }
    }

    fn format_sample(&self, s: &Sample) -> String {
        let mut out = String::new();
        if self.elements & EL_READ != 0 {
            out.push_str(&format_2002(s.value));
            if self.elements & EL_STAT != 0 {
                out.push('N');
            }
            if self.elements & EL_UNIT != 0 {
                out.push_str(self.unit());
            }
        }
        let mut field = |f: String| {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&f);
        };
        if self.elements & EL_TST != 0 {
            let cs = s.at.as_millis() / 10;
            let (h, m, sec, c) = (
                (cs / 360_000) % 24,
                (cs / 6000) % 60,
                (cs / 100) % 60,
                cs % 100,
            );
            field(format!("{h:02}:{m:02}:{sec:02}.{c:02}"));
            let day = s.at.as_secs() / 86_400;
            field(date_2002(day));
        }
        if self.elements & EL_RNUM != 0 {
            field(format!("{:+06}RDNG#", s.number.min(99_999)));
        }
        if self.elements & EL_CHAN != 0 {
            field("00INTCHAN".to_owned());
        }
        out
    }

    fn take(&mut self, n: u64) -> Vec<Sample> {
        (0..n.min(MAX_READINGS_PER_MESSAGE))
            .map(|_| self.sample())
            .collect()
    }
}

impl K {
    /// `:FORM:ELEM?`: the elements a reading carries.
    fn element_names(&mut self) -> String {
        let names: Vec<&str> = ELEMENTS
            .iter()
            .filter(|(bit, _)| self.elements & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        names.join(",")
    }

    /// `:TRAC:FREE?`: bytes free and bytes used in the buffer, 16 a reading.
    fn trace_free(&mut self) -> String {
        let free = (BUFFER_CAP - self.buffer.len().min(BUFFER_CAP)) * 16;
        format!("{free},{}", self.buffer.len() * 16)
    }

    /// Sends `samples` in the configured format: ASCII elements, or `#0` and IEEE-754 values.
    fn respond_samples(&mut self, r: &mut ResponseUnit<'_>, samples: &[Sample]) -> ScpiResult<()> {
        match self.data {
            Data::Ascii => {
                let text: Vec<String> = samples.iter().map(|s| self.format_sample(s)).collect();
                respond_text(r, &text.join(","))?;
            }
            Data::Sreal | Data::Dreal => {
                let values = samples.iter().map(|s| s.value);
                let mut bytes = b"#0".to_vec();
                bytes.extend(ieee754(values, self.data == Data::Sreal, self.swapped));
                r.data(Raw(&bytes)).finish()?;
                self.status.last_block = Some(bytes);
            }
        }
        self.standard.counted(samples.len() as u64);
        Ok(())
    }
}

/// Bytes written as they are (the 2002's `#0` binary transfer).
struct Raw<'a>(&'a [u8]);

impl ResponseData for Raw<'_> {
    fn format_response_data(&self, formatter: &mut dyn Formatter) -> ScpiResult<()> {
        formatter.push_str(self.0)
    }
}

/// `+10.0000023E+00`: engineering exponent, two integer digits (three above 99), 7 decimals.
fn format_2002(value: f64) -> String {
    if !value.is_finite() {
        return "+9.9E+37".to_owned();
    }
    if value == 0.0 {
        return "+00.0000000E+00".to_owned();
    }
    let exp = ((value.abs().log10() / 3.0).floor() as i32) * 3;
    let mut mantissa = value / 10f64.powi(exp);
    let mut exp = exp;
    // Rounding can carry to 1000.
    if format!("{:.7}", mantissa.abs()).starts_with("1000") {
        mantissa /= 1000.0;
        exp += 3;
    }
    let sign = if value < 0.0 { '-' } else { '+' };
    let digits = format!("{:.7}", mantissa.abs());
    let int_len = digits.find('.').unwrap_or(digits.len());
    let pad = if int_len < 2 { "0" } else { "" };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{pad}{digits}E{esign}{:02}", exp.unsigned_abs())
}

fn date_2002(day: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Simulated days from 2026-01-01, a non-leap year; good for the first year of a run.
    const LENGTHS: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut d = day % 365;
    let year = 2026 + day / 365;
    let mut month = 0;
    for (i, len) in LENGTHS.iter().enumerate() {
        if d < *len {
            month = i;
            break;
        }
        d -= len;
    }
    let name = MONTHS.get(month).copied().unwrap_or("Jan");
    format!("{:02}-{name}-{year}", d + 1)
}

type K = Scpi<Keithley2002>;

// --- handlers ----------------------------------------------------------------------------------

fn form_elem_ev(k: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let mut elements = 0;
    while let Some(t) = p.next_optional_token()? {
        elements |= choice(
            t,
            &[
                (b"READing", EL_READ),
                (b"UNITs", EL_UNIT),
                (b"STATus", EL_STAT),
                (b"TSTamp", EL_TST),
                (b"RNUMber", EL_RNUM),
                (b"CHANnel", EL_CHAN),
            ],
        )?;
    }
    if elements == 0 {
        return Err(ErrorCode::MissingParameter.into());
    }
    k.elements = elements;
    Ok(())
}

fn digits_ev(_: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    // Accepted and checked; replies always carry 8.5 digits.
    number_in(p.next_token()?, 4.0, 9.0)?;
    no_more(p)
}

fn aver_count_ev(_: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    number_in(p.next_token()?, 1.0, 100.0)?;
    no_more(p)
}

fn aver_tcon_ev(_: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    one_of(p, &[(b"MOVing", ()), (b"REPeat", ())])
}

fn trac_poin_ev(k: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let n = number_in(p.next_token()?, 1.0, BUFFER_CAP as f64)?;
    no_more(p)?;
    k.points = n as usize;
    let points = k.points;
    k.buffer.truncate(points);
    Ok(())
}

fn trac_feed_ev(k: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let feed = choice(
        p.next_token()?,
        &[(b"SENSe", true), (b"CALCulate", true), (b"NONE", false)],
    )?;
    no_more(p)?;
    k.feed = feed;
    Ok(())
}

fn trac_data_q(k: &mut K, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    if k.buffer.is_empty() {
        return Err(ErrorCode::DataCorruptOrStale.into());
    }
    let samples = k.buffer.clone();
    k.respond_samples(r, &samples)
}

/// `:INIT`: into the buffer when it is fed, else the trigger count of readings.
fn init(k: &mut K) {
    let storing = k.feed && matches!(k.feed_control, FeedControl::Next | FeedControl::Always);
    if storing {
        let room = k.points.saturating_sub(k.buffer.len());
        let n = if k.feed_control == FeedControl::Next {
            room
        } else {
            (k.trigger_count as usize).min(room)
        };
        let samples = k.take(n as u64);
        k.buffer.extend(samples);
        if k.feed_control == FeedControl::Next && k.buffer.len() >= k.points {
            k.feed_control = FeedControl::Never;
        }
    } else {
        let n = u64::from(k.trigger_count);
        k.take(n);
    }
}

fn trig_count_ev(k: &mut K, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let n = number_in(p.next_token()?, 1.0, 99_999.0)?;
    no_more(p)?;
    k.trigger_count = n as u32;
    Ok(())
}

fn fetch_q(k: &mut K, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    let s = k.last.ok_or(Error::new(ErrorCode::DataCorruptOrStale))?;
    k.respond_samples(r, &[s])
}

/// `[:SENS]:DATA:FRESh?`: the latest reading, if no `:DATA:FRESh?` has sent it yet.
fn data_fresh_q(k: &mut K, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    let s = k
        .last
        .filter(|_| k.fresh)
        .ok_or(Error::new(ErrorCode::DataCorruptOrStale))?;
    k.fresh = false;
    k.respond_samples(r, &[s])
}

fn read_q(k: &mut K, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    // `:READ?` is `:INIT` then `:FETC?`: the trigger count of readings, then the latest one.
    let n = u64::from(k.trigger_count);
    let samples = k.take(n);
    let last = samples
        .last()
        .copied()
        .ok_or(Error::new(ErrorCode::DataCorruptOrStale))?;
    k.respond_samples(r, &[last])
}

fn meas_q(k: &mut K, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    // An optional range and resolution are accepted and checked.
    while let Some(t) = p.next_optional_token()? {
        if !matches!(t, Token::CharacterProgramData(_)) {
            number_in(t, 0.0, 1.1e9)?;
        }
    }
    k.func = Function::Dcv;
    let samples = k.take(1);
    k.respond_samples(r, &samples)
}

/// The range in use for the function of `ranges`: `fixed`, or while autoranging the smallest
/// that holds the standard's present value (the resistance functions read a 10 kΩ resistor).
fn range_now(k: &K, ranges: &[f64], fixed: f64) -> f64 {
    if !k.auto_range {
        return fixed;
    }
    let value = if ranges == OHM_RANGES.as_slice() {
        10_000.0
    } else {
        k.standard.params.nominal.abs()
    };
    ranges
        .iter()
        .copied()
        .find(|r| value <= *r)
        .or(ranges.last().copied())
        .unwrap_or(fixed)
}

/// `RANGe[:UPPer] <value>|MIN|MAX|DEF` within ±`max`: the smallest range of `ranges` that
/// covers the value's magnitude.
fn range_setting(p: &mut Parameters<'_, '_>, ranges: &[f64], max: f64) -> ScpiResult<f64> {
    let v = Limits {
        min: -max,
        max,
        def: max,
    }
    .setting(p)?
    .abs();
    Ok(ranges
        .iter()
        .copied()
        .find(|r| v <= *r * (1.0 + 1e-9))
        .or(ranges.last().copied())
        .unwrap_or(max))
}

/// `:CONFigure:<function>`: selects the function, as `:FUNC` does.
fn configure(k: &mut K, p: &mut Parameters<'_, '_>, func: Function) -> ScpiResult<()> {
    no_more(p)?;
    k.func = func;
    k.last = None;
    Ok(())
}

/// The settings branch, shared by `VOLT[:DC]`, `RES` and `FRES`; `$max` is the function's
/// largest input (±1100 V, 1.05 GΩ on a 2002), `$ranges` its ranges and `$field` the fixed range
/// it keeps.
macro_rules! settings {
    ($max:expr, $ranges:expr, $field:ident) => {
        [
            Leaf!(b"NPLCycles" => &Cmd::<K>::ev_text(
                |k, p| {
                    k.nplc = NPLC.setting(p)?;
                    Ok(())
                },
                |k| format_sci(k.nplc, 6, true)
            )),
            Branch![b"RANGe";
                Leaf!(default b"UPPer" => &Cmd::<K>::ev_text(
                    |k, p| {
                        k.$field = range_setting(p, &$ranges, $max)?;
                        k.auto_range = false;
                        Ok(())
                    },
                    |k| format_sci(range_now(k, &$ranges, k.$field), 6, true)
                )),
                Leaf!(b"AUTO" => &Cmd::<K>::flag(|k, on| k.auto_range = on, |k| k.auto_range))
            ],
            Leaf!(b"DIGits" => &Cmd::ev(digits_ev)),
            Branch![b"AVERage";
                Leaf!(b"COUNt" => &Cmd::ev(aver_count_ev)),
                Leaf!(b"TCONtrol" => &Cmd::ev(aver_tcon_ev)),
                Leaf!(default b"STATe" => &Cmd::<K>::set_flag(|k, on| k.average = on))
            ]
        ]
    };
}

const VOLT_SETTINGS: [Node<'static, K>; 4] = settings!(1100.0, VOLT_RANGES, volt_range);
const RES_SETTINGS: [Node<'static, K>; 4] = settings!(1.05e9, OHM_RANGES, ohm_range);

const TREE: Node<'static, K> = scpi_tree![Keithley2002;
    Leaf!(b"*TRG" => &Cmd::<K>::plain(|k| {
        k.take(1);
    })),
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<Keithley2002>))
        ]
    ],
    Branch![b"FORMat";
        Leaf!(default b"DATA" => keyword_setting!(K, DATA_FORMATS, data)),
        Leaf!(b"ELEMents" => &Cmd::ev_text(form_elem_ev, K::element_names)),
        Leaf!(b"BORDer" => keyword_setting!(K, BYTE_ORDERS, swapped))
    ],
    sense_branch!(VOLT_SETTINGS, RES_SETTINGS;
        Leaf!(b"FUNCtion" => &Cmd::<K>::ev_text(
            |k, p| {
                k.func = Function::parse(p)?;
                // A reading of another function is no reading of this one.
                k.last = None;
                Ok(())
            },
            |k| format!("\"{}\"", k.func.name())
        )),
        Branch![b"DATA";
            Leaf!(default b"LATest" => &Cmd::q(fetch_q)),
            Leaf!(b"FRESh" => &Cmd::q(data_fresh_q))
        ]
    ),
    Branch![b"TRACe";
        Leaf!(b"CLEar" => &Cmd::<K>::plain(|k| k.buffer.clear())),
        Leaf!(b"POINts" => &Cmd::<K>::ev_text(trac_poin_ev, |k| k.points.to_string())),
        Branch![b"FEED";
            Leaf!(default b"SOURce" => &Cmd::ev(trac_feed_ev)),
            Leaf!(b"CONTrol" => keyword_setting!(K, FEED_CONTROLS, feed_control))
        ],
        Leaf!(b"DATA" => &Cmd::q(trac_data_q)),
        Leaf!(b"FREE" => &Cmd::text(K::trace_free))
    ],
    Branch![b"INITiate";
        Leaf!(default b"IMMediate" => &Cmd::plain(init)),
        Leaf!(b"CONTinuous" => &Cmd::<K>::flag(|k, on| k.init_continuous = on, |k| k.init_continuous))
    ],
    Leaf!(b"ABORt" => &Cmd::<K>::plain(|_| {})),
    Branch![b"TRIGger";
        Leaf!(b"COUNt" => &Cmd::<K>::ev_text(trig_count_ev, |k| k.trigger_count.to_string()))
    ],
    Leaf!(b"FETCh" => &Cmd::q(fetch_q)),
    Leaf!(b"READ" => &Cmd::q(read_q)),
    Branch![b"MEASure";
        Branch![default b"VOLTage";
            Leaf!(default b"DC" => &Cmd::q(meas_q))
        ]
    ],
    // `:CONF?` is the branch's own query; the crate needs a name for it, so `:CONF:FUNC?` is
    // accepted too, which the meter may refuse.
    Branch![b"CONFigure";
        Leaf!(default b"FUNCtion" => &Cmd::<K>::text(|k| format!("\"{}\"", k.func.name()))),
        Branch![b"VOLTage";
            Leaf!(default b"DC" => &Cmd::<K>::ev(|k, p| configure(k, p, Function::Dcv)))
        ],
        Leaf!(b"RESistance" => &Cmd::<K>::ev(|k, p| configure(k, p, Function::Res))),
        Leaf!(b"FRESistance" => &Cmd::<K>::ev(|k, p| configure(k, p, Function::Fres)))
    ]
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::tests::{ask, setup};
    use crate::personality::{Personality, sim_firmware};

    fn meter(realistic: bool) -> (K, crate::ManualClock) {
        let (s, c) = setup(realistic);
        (Keithley2002::new(s), c)
    }

    #[test]
    fn configure_and_ranges_per_function() {
        let (mut k, _) = meter(false);
        assert_eq!(ask(&mut k, ":CONF?"), "\"VOLT:DC\"\n");
        assert_eq!(ask(&mut k, ":CONF:FRES;:CONF?"), "\"FRES\"\n");
        assert_eq!(ask(&mut k, ":FUNC?"), "\"FRES\"\n");
        ask(&mut k, ":CONF:VOLT:DC");
        // Autoranging: the 20 V range holds the 10 V standard, 20 kΩ the 10 kΩ resistor.
        assert_eq!(ask(&mut k, ":VOLT:RANG?"), "+2.000000E+01\n");
        assert_eq!(ask(&mut k, ":RES:RANG?"), "+2.000000E+04\n");
        ask(&mut k, ":SENS:VOLT:RANG:AUTO 0;:SENS:VOLT:RANG -10");
        assert_eq!(ask(&mut k, ":VOLT:RANG?;RANG:AUTO?"), "+2.000000E+01;0\n");
        ask(&mut k, ":RES:RANG 2.5e3");
        assert_eq!(ask(&mut k, ":RES:RANG?"), "+2.000000E+04\n");
        ask(&mut k, ":VOLT:RANG 1100");
        assert_eq!(ask(&mut k, ":VOLT:RANG?"), "+1.000000E+03\n");
        ask(&mut k, ":VOLT:RANG 1101");
        ask(&mut k, ":CONF:TEMP");
        ask(&mut k, ":CONF:RES 10");
        ask(&mut k, ":FORM:ELEM READ;:INIT");
        assert_eq!(ask(&mut k, ":SENS:DATA:FRES?"), "+10.0000000E+00\n");
        assert_eq!(
            ask(&mut k, ":DATA?;:DATA:LAT?"),
            "+10.0000000E+00;+10.0000000E+00\n"
        );
        assert_eq!(ask(&mut k, ":DATA:FRES?"), "");
        let errors: Vec<String> = (0..4).map(|_| ask(&mut k, ":SYST:ERR?")).collect();
        assert_eq!(
            errors,
            [
                "-222,\"Data out of range\"\n",
                "-113,\"Undefined header\"\n",
                "-108,\"Parameter not allowed\"\n",
                "-230,\"Data corrupt or stale\"\n"
            ]
        );
    }

    #[test]
    fn number_format() {
        assert_eq!(format_2002(1.01103), "+01.0110300E+00");
        assert_eq!(format_2002(10.0000023), "+10.0000023E+00");
        assert_eq!(format_2002(-0.0045), "-04.5000000E-03");
        assert_eq!(format_2002(10_000.0), "+10.0000000E+03");
        assert_eq!(format_2002(999.99999999), "+01.0000000E+03");
        assert_eq!(format_2002(123.0), "+123.0000000E+00");
        assert_eq!(format_2002(0.0), "+00.0000000E+00");
        assert_eq!(date_2002(0), "01-Jan-2026");
        assert_eq!(date_2002(59), "01-Mar-2026");
        assert_eq!(date_2002(365), "01-Jan-2027");
    }

    #[test]
    fn default_elements_then_plain_number() {
        let (mut k, clock) = meter(false);
        assert_eq!(
            ask(&mut k, "*IDN?"),
            format!(
                "KEITHLEY INSTRUMENTS INC.,MODEL 2002,SIMTEST01,{}\n",
                sim_firmware()
            )
        );
        clock.advance(Duration::from_millis(3_723_450));
        assert_eq!(
            ask(&mut k, ":READ?"),
            "+10.0000000E+00NVDC,01:02:03.45,01-Jan-2026,+00001RDNG#\n"
        );
        ask(&mut k, ":FORM:ELEM READ");
        assert_eq!(ask(&mut k, ":FORM:ELEM?"), "READ\n");
        assert_eq!(ask(&mut k, ":READ?"), "+10.0000000E+00\n");
        assert_eq!(ask(&mut k, ":FETC?"), "+10.0000000E+00\n");
        ask(&mut k, ":FORM:ELEM READ,RNUM");
        assert_eq!(ask(&mut k, ":FETC?"), "+10.0000000E+00,+00002RDNG#\n");
        assert_eq!(ask(&mut k, ":SYST:ERR?"), "0,\"No error\"\n");
    }

    #[test]
    fn trace_buffer_fills_on_init() {
        let (mut k, _) = meter(true);
        ask(
            &mut k,
            ":FORM:ELEM READ;:SENS:FUNC 'VOLT:DC';:SENS:VOLT:DC:NPLC 10",
        );
        ask(
            &mut k,
            ":INIT:CONT OFF;:TRAC:CLE;:TRAC:POIN 3;:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT",
        );
        let r = k.handle(b":INIT");
        assert!(r.is_empty());
        assert_eq!(r.delay, Duration::from_millis(600));
        assert_eq!(ask(&mut k, ":TRAC:FEED:CONT?"), "NEV\n");
        assert_eq!(
            ask(&mut k, ":TRAC:DATA?"),
            "+10.0000000E+00,+10.0000000E+00,+10.0000000E+00\n"
        );
        ask(&mut k, ":TRAC:CLE");
        assert_eq!(ask(&mut k, ":TRAC:DATA?"), "");
        assert_eq!(
            ask(&mut k, ":SYST:ERR?"),
            "-230,\"Data corrupt or stale\"\n"
        );
    }

    #[test]
    fn binary_and_errors() {
        let (mut k, _) = meter(false);
        ask(&mut k, ":FORM:DATA DRE");
        assert_eq!(
            k.handle(b":READ?").bytes(),
            [b"#0".as_slice(), &10.0f64.to_be_bytes(), b"\n"].concat()
        );
        ask(&mut k, ":FORM SRE;:FORM:BORD SWAP");
        assert_eq!(
            k.handle(b":FETC?").bytes(),
            [b"#0".as_slice(), &10.0f32.to_le_bytes(), b"\n"].concat()
        );
        ask(&mut k, ":SENS:FUNC 'CURR:AC'");
        ask(&mut k, ":TRAC:POIN 0");
        k.inject_error();
        assert_eq!(
            ask(&mut k, ":SYST:ERR?"),
            "-224,\"Illegal parameter value\"\n"
        );
        assert_eq!(ask(&mut k, ":SYST:ERR?"), "-222,\"Data out of range\"\n");
        assert_eq!(
            ask(&mut k, ":SYST:ERR?"),
            "-300,\"Device-specific error\"\n"
        );
        k.talk();
        assert_eq!(ask(&mut k, ":SYST:ERR?"), "-420,\"Query UNTERMINATED\"\n");
    }

    #[test]
    fn read_sends_the_latest_of_the_trigger_count() {
        let (mut k, _) = meter(true);
        ask(
            &mut k,
            ":FORM:ELEM READ,RNUM;:TRIG:COUN 3;:SENS:VOLT:DC:NPLC 10",
        );
        let r = k.handle(b":READ?");
        assert_eq!(r.bytes(), b"+10.0000000E+00,+00003RDNG#\n");
        assert_eq!(r.delay, Duration::from_millis(600));
    }

    #[test]
    fn ranges_are_limited_per_function() {
        let (mut k, _) = meter(false);
        ask(&mut k, ":SENS:VOLT:DC:RANG 1000;:SENS:RES:RANG 1E9");
        assert_eq!(ask(&mut k, ":SYST:ERR?"), "0,\"No error\"\n");
        ask(&mut k, ":SENS:VOLT:DC:RANG 5000");
        assert_eq!(ask(&mut k, ":SYST:ERR?"), "-222,\"Data out of range\"\n");
        ask(&mut k, ":SENS:FRES:RANG 2E9");
        assert_eq!(ask(&mut k, ":SYST:ERR?"), "-222,\"Data out of range\"\n");
    }
}
