//! Keithley DMM6500 in SCPI mode (through the `scpi` crate).
//!
//! Commands: IEEE 488.2 commons (`*IDN?` → `KEITHLEY INSTRUMENTS,MODEL DMM6500,<serial>,
//! <firmware>`), `SYST:ERR?`, `SYST:ERR:COUN?`, `[SENS:]FUNC "VOLT:DC"|"RES"|"FRES"` (and `?`),
//! `[SENS:]VOLT[:DC]:NPLC` (0.0005–15, and `?`), `…:AZER ON|OFF`, `…:RANG`, `…:RANG:AUTO`,
//! `[SENS:]COUN n` (1–1 000 000, and `?`), `ROUT:TERM?` (`FRON`), `READ? ["buffer"[,elements]]`,
//! `MEAS? […]`, `TRAC:MAKE "name",n`, `TRAC:CLE ["buffer"]`, `TRAC:ACT? ["buffer"]`,
//! `TRAC:TRIG ["buffer"]`, `TRAC:DATA? start,end[,"buffer"[,elements]]` with elements `READ`,
//! `REL`, `SEC`, `FRAC`, `TST`, `DATE`, `TIME`, `STAT`, `UNIT`.
//!
//! Readings are `9.999999870E+00` (10 significant digits, no `+`). `READ?` makes the measure
//! count (`SENS:COUN`) of readings, appends them to the named buffer (`defbuffer1` by default;
//! `defbuffer2` and buffers made with `TRAC:MAKE` exist too) and sends the last; `TRAC:TRIG`
//! makes them into the buffer without sending anything. A buffer is a ring of its capacity
//! (100 000 for the default buffers). `TRAC:DATA?` indexes are 1-based and must lie within the
//! buffer's readings (-222 otherwise). A dc voltage range above 1000 V is refused (-222).
//!
//! Also what QCoDeS's and PyMeasure's drivers send while they start and for their common
//! settings: `*LANG?` (`SCPI`) and `*LANG SCPI|TSP|SCPI2000|SCPI34401`, `SYST:LFR?` (`50`),
//! `FORM[:DATA] ASC|REAL|SRE` (and `?`), and the range queries `…:RANG?` (`1.000000000E+01`),
//! which report the range autoranging picked while it is on. Each function keeps its own range;
//! a value selects the smallest range that covers it, as the meter does.
//!
//! Front panel: `DISP:CLE`, `DISP:SCR <screen>`, `DISP:USER1|USER2:TEXT "…"` (kept, not
//! queryable), `DISP:LIGH:STAT ON100|ON75|ON50|ON25|OFF|BLAC` (and `?`), `DISP:VOLT[:DC]|RES|
//! FRES:DIG 3..6` (and `?`, default 6). Triggering, simplified: `TRIG:LOAD "SimpleLoop",count
//! [,delay]` sets how many readings `INIT` makes into `defbuffer1` (no trigger model otherwise),
//! `ABOR` and `AZER:ONCE` are accepted. Unconfirmed: the screen names and backlight levels are
//! PyMeasure's and QCoDeS's lists, the trigger-model behaviour a reading of the manual's summary.

use std::collections::BTreeMap;
use std::time::Duration;

use scpi::error::{ErrorCode, Result as ScpiResult};
use scpi::tree::prelude::*;
use scpi::{Branch, Leaf};

use super::Setup;
use super::model::{MAINS_HZ, MAX_READINGS_PER_MESSAGE, Standard};
use super::scpi_util::*;
use crate::format::format_sci;
use crate::id::PersonalityId;

const DEFAULT_BUFFER_CAP: usize = 100_000;

/// `NPLCycles`: 0.0005 to 15 power-line cycles.
const NPLC: Limits = Limits {
    min: 0.0005,
    max: 15.0,
    def: 1.0,
};

/// `SENS:COUN`: readings per measurement request.
const COUNT: Limits = Limits {
    min: 1.0,
    max: 1e6,
    def: 1.0,
};

/// DC voltage ranges, V.
const VOLT_RANGES: [f64; 5] = [0.1, 1.0, 10.0, 100.0, 1000.0];

/// Resistance ranges, Ω.
const OHM_RANGES: [f64; 9] = [1.0, 10.0, 100.0, 1e3, 10e3, 100e3, 1e6, 10e6, 100e6];

/// A range reads up to 120 % of its nominal value before it overloads, so autoranging keeps a
/// value on a range up to that.
const OVERRANGE: f64 = 1.2;

/// The command sets `*LANG` names. The meter switches only at its next power-up, which the
/// simulator never has: `*LANG?` keeps answering `SCPI`, the set this personality speaks.
/// Unconfirmed: whether the real meter answers the set in use or the one chosen for next time.
const LANGUAGES: [(&[u8], ()); 4] = [
    (b"SCPI", ()),
    (b"TSP", ()),
    (b"SCPI2000", ()),
    (b"SCPI34401", ()),
];

/// `FORMat:DATA`: kept for the query; readings are always sent as ASCII here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataFormat {
    Ascii,
    Real,
    Sreal,
}

const DATA_FORMATS: [(&[u8], DataFormat); 3] = [
    (b"ASCii", DataFormat::Ascii),
    (b"REAL", DataFormat::Real),
    (b"SREal", DataFormat::Sreal),
];

/// `DISP:LIGH:STAT`: the backlight levels.
const BACKLIGHT: [(&[u8], u8); 6] = [
    (b"ON100", 100),
    (b"ON75", 75),
    (b"ON50", 50),
    (b"ON25", 25),
    (b"OFF", 0),
    (b"BLACkout", 255),
];

/// `DISP:SCR`: the front-panel screens.
const SCREENS: [(&[u8], ()); 17] = [
    (b"HOME", ()),
    (b"HOME_LARGe_reading", ()),
    (b"READing_table", ()),
    (b"HISTogram", ()),
    (b"SWIPE_FUNCtions", ()),
    (b"SWIPE_GRAPh", ()),
    (b"SWIPE_SECondary", ()),
    (b"SWIPE_SETTings", ()),
    (b"SWIPE_STATistics", ()),
    (b"SWIPE_USER", ()),
    (b"SWIPE_CHANnel", ()),
    (b"SWIPE_NONSwitch", ()),
    (b"SWIPE_SCAN", ()),
    (b"CHANNEL_CONTrol", ()),
    (b"CHANNEL_SETTings", ()),
    (b"CHANNEL_SCAN", ()),
    (b"PROCessing", ()),
];

/// `DISP:…:DIG`: digits shown, 3½ to 6½.
const DIGITS: Limits = Limits {
    min: 3.0,
    max: 6.0,
    def: 6.0,
};

/// `DISP:USERn:TEXT`: the longest line, top (`USER1`) and bottom (`USER2`). Unconfirmed.
const USER_TEXT_MAX: [usize; 2] = [20, 32];

/// Largest buffer `TRAC:MAKE` will create in the simulator.
const MAX_BUFFER_CAP: usize = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    at: Duration,
}

#[derive(Debug, Clone)]
struct Buffer {
    cap: usize,
    samples: std::collections::VecDeque<Sample>,
}

impl Buffer {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            samples: std::collections::VecDeque::new(),
        }
    }

    fn push(&mut self, s: Sample) {
        if self.samples.len() >= self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }
}

type D = Scpi<Dmm6500>;

/// The simulated DMM6500.
pub(crate) struct Dmm6500 {
    standard: Standard,
    func: Function,
    nplc: f64,
    azero: bool,
    auto_range: bool,
    /// Readings per measurement request (`SENS:COUN`).
    count: u32,
    /// The fixed dc voltage range, V, and resistance range, Ω, used while autorange is off.
    volt_range: f64,
    ohm_range: f64,
    data_format: DataFormat,
    /// `DISP:LIGH:STAT`, as a percentage (255 for blackout).
    backlight: u8,
    /// `DISP:…:DIG` of dc volts and of the resistance functions.
    volt_digits: u8,
    ohm_digits: u8,
    /// The USER swipe screen's two lines.
    user_text: [String; 2],
    /// Readings `INIT` makes (`TRIG:LOAD "SimpleLoop",n`).
    loop_count: u32,
    buffers: BTreeMap<String, Buffer>,
    busy: Duration,
}

impl ScpiModel for Dmm6500 {
    const TREE: Node<'static, D> = TREE;

    fn reset(&mut self) {
        self.func = Function::Dcv;
        self.nplc = 1.0;
        self.azero = true;
        self.auto_range = true;
        self.count = 1;
        self.volt_range = 10.0;
        self.ohm_range = 10e3;
        self.data_format = DataFormat::Ascii;
        self.backlight = 100;
        self.volt_digits = 6;
        self.ohm_digits = 6;
        self.user_text = Default::default();
        self.loop_count = 1;
        self.buffers.clear();
        for name in ["defbuffer1", "defbuffer2"] {
            self.buffers
                .insert(name.to_owned(), Buffer::new(DEFAULT_BUFFER_CAP));
        }
    }

    fn take_busy(&mut self) -> Duration {
        std::mem::take(&mut self.busy)
    }
}

impl Dmm6500 {
    /// The simulated DMM6500, as `*RST` leaves it.
    pub(crate) fn new(setup: Setup) -> D {
        let mut d = Self {
            standard: Standard::new(&setup),
            func: Function::Dcv,
            nplc: 1.0,
            azero: true,
            auto_range: true,
            count: 1,
            volt_range: 10.0,
            ohm_range: 10e3,
            data_format: DataFormat::Ascii,
            backlight: 100,
            volt_digits: 6,
            ohm_digits: 6,
            user_text: Default::default(),
            loop_count: 1,
            buffers: BTreeMap::new(),
            busy: Duration::ZERO,
        };
        d.reset();
        let identity = identity("KEITHLEY INSTRUMENTS", "MODEL DMM6500", &setup.serial);
        Scpi::new(PersonalityId::KeithleyDmm6500, identity, d)
    }

    fn sample(&mut self) -> Sample {
        let value = self.func.read(&mut self.standard);
        let zero = if self.azero { 2.0 } else { 1.0 };
        self.busy = self
            .busy
            .saturating_add(self.standard.busy(self.nplc / MAINS_HZ * zero));
        Sample {
            value,
            at: self.standard.elapsed(),
        }
    }

    /// The range in use for the function of `ranges`: the fixed one, or while autoranging the
    /// smallest that holds the standard's present value.
    fn range(&self, ranges: &[f64], fixed: f64) -> f64 {
        if !self.auto_range {
            return fixed;
        }
        // The resistance functions measure a 10 kΩ resistor (`Function::read`).
        let value = if ranges == OHM_RANGES.as_slice() {
            10_000.0
        } else {
            self.standard.params.nominal
        };
        ranges
            .iter()
            .copied()
            .find(|r| value.abs() <= OVERRANGE * r)
            .or(ranges.last().copied())
            .unwrap_or(fixed)
    }

    fn unit(&self) -> &'static str {
        match self.func {
            Function::Dcv => "Volt DC",
            Function::Res | Function::Fres => "Ohm",
        }
    }

    fn buffer_name(p: &mut Parameters<'_, '_>) -> ScpiResult<Option<String>> {
        match p.next_optional_token()? {
            None => Ok(None),
            Some(Token::StringProgramData(s)) => Ok(Some(String::from_utf8_lossy(s).into_owned())),
            Some(_) => Err(ErrorCode::DataTypeError.into()),
        }
    }

    /// Element fields of one sample.
    fn fields(&self, s: &Sample, elements: &[Element]) -> Vec<String> {
        let secs = s.at.as_secs();
        elements
            .iter()
            .map(|e| match e {
                Element::Read => format_sci(s.value, 9, false),
                Element::Rel => format_sci(s.at.as_secs_f64(), 9, false),
                Element::Sec => secs.to_string(),
                Element::Frac => format!("{:.9}", f64::from(s.at.subsec_nanos()) / 1e9),
                Element::Tst => format!(
                    "01/01/2026 {:02}:{:02}:{:02}.{:09}",
                    (secs / 3600) % 24,
                    (secs / 60) % 60,
                    secs % 60,
                    s.at.subsec_nanos()
                ),
                Element::Date => "01/01/2026".to_owned(),
                Element::Time => format!(
                    "{:02}:{:02}:{:02}.{:09}",
                    (secs / 3600) % 24,
                    (secs / 60) % 60,
                    secs % 60,
                    s.at.subsec_nanos()
                ),
                Element::Stat => "0".to_owned(),
                Element::Unit => self.unit().to_owned(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Read,
    Rel,
    Sec,
    Frac,
    Tst,
    Date,
    Time,
    Stat,
    Unit,
}

fn elements(p: &mut Parameters<'_, '_>) -> ScpiResult<Vec<Element>> {
    let mut out = Vec::new();
    while let Some(t) = p.next_optional_token()? {
        out.push(choice(
            t,
            &[
                (b"READing", Element::Read),
                (b"RELative", Element::Rel),
                (b"SEConds", Element::Sec),
                (b"FRACtional", Element::Frac),
                (b"TSTamp", Element::Tst),
                (b"DATE", Element::Date),
                (b"TIME", Element::Time),
                (b"STATus", Element::Stat),
                (b"UNIT", Element::Unit),
            ],
        )?);
    }
    if out.is_empty() {
        out.push(Element::Read);
    }
    Ok(out)
}

/// Makes the measure count of readings into buffer `name`; returns the last.
fn measure_into(d: &mut D, name: &str) -> ScpiResult<Sample> {
    if !d.buffers.contains_key(name) {
        return Err(ErrorCode::IllegalParameterValue.into());
    }
    let mut last = None;
    for _ in 0..u64::from(d.count).min(MAX_READINGS_PER_MESSAGE) {
        let s = d.sample();
        if let Some(b) = d.buffers.get_mut(name) {
            b.push(s);
        }
        last = Some(s);
    }
    last.ok_or_else(|| ErrorCode::DataCorruptOrStale.into())
}

fn read_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    let name = Dmm6500::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    let elements = elements(p)?;
    let s = measure_into(d, &name)?;
    let text = d.fields(&s, &elements).join(",");
    respond_text(r, &text)?;
    d.standard.counted(1);
    Ok(())
}

fn trac_trig_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name = Dmm6500::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    no_more(p)?;
    measure_into(d, &name).map(|_| ())
}

fn meas_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    d.func = Function::Dcv;
    read_q(d, p, r)
}

/// `TRIG:LOAD "SimpleLoop",count[,delay]`; other trigger models are refused (-224).
fn trig_load_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let model: &[u8] = p.next_data()?;
    if !model.eq_ignore_ascii_case(b"SimpleLoop") {
        return Err(ErrorCode::IllegalParameterValue.into());
    }
    let count = COUNT.number(p.next_token()?)?;
    if let Some(t) = p.next_optional_token()? {
        number_in(t, 0.0, 10_000.0)?;
    }
    no_more(p)?;
    d.loop_count = count as u32;
    Ok(())
}

/// `INIT`: runs the loaded trigger model, its readings going to `defbuffer1`.
fn init_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    no_more(p)?;
    // Each pass makes the measure count of readings; the whole run stays within one message's
    // cap, as a runaway count must not stall the simulator.
    let per_pass = u64::from(d.count.max(1));
    let passes = u64::from(d.loop_count).min((MAX_READINGS_PER_MESSAGE / per_pass).max(1));
    for _ in 0..passes {
        measure_into(d, "defbuffer1")?;
    }
    Ok(())
}

/// `DISP:USERn:TEXT[:DATA] "<text>"` for line `n` (0: top).
fn user_text(d: &mut D, p: &mut Parameters<'_, '_>, n: usize) -> ScpiResult<()> {
    let text: &[u8] = p.next_data()?;
    no_more(p)?;
    if text.len() > USER_TEXT_MAX.get(n).copied().unwrap_or(0) {
        return Err(ErrorCode::TooMuchData.into());
    }
    if let Some(line) = d.user_text.get_mut(n) {
        *line = String::from_utf8_lossy(text).replace("\"\"", "\"");
    }
    Ok(())
}

/// `DISP:…:DIGits 3..6|MIN|MAX|DEF`.
fn digits(p: &mut Parameters<'_, '_>) -> ScpiResult<u8> {
    Ok(DIGITS.setting(p)?.round() as u8)
}

fn trac_make_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name = Dmm6500::buffer_name(p)?.ok_or(Error::new(ErrorCode::MissingParameter))?;
    let cap = number_in(p.next_token()?, 1.0, MAX_BUFFER_CAP as f64)? as usize;
    if let Some(t) = p.next_optional_token()? {
        choice(
            t,
            &[
                (b"STANdard", ()),
                (b"FULL", ()),
                (b"COMPact", ()),
                (b"WRITable", ()),
            ],
        )?;
    }
    no_more(p)?;
    let valid = !name.is_empty()
        && name.len() <= 31
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid || d.buffers.contains_key(&name) {
        return Err(ErrorCode::IllegalParameterValue.into());
    }
    d.buffers.insert(name, Buffer::new(cap));
    Ok(())
}

fn trac_cle_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name = Dmm6500::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    no_more(p)?;
    let b = d
        .buffers
        .get_mut(&name)
        .ok_or(Error::new(ErrorCode::IllegalParameterValue))?;
    b.samples.clear();
    Ok(())
}

fn trac_act_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    let name = Dmm6500::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    no_more(p)?;
    let n = d
        .buffers
        .get(&name)
        .ok_or(Error::new(ErrorCode::IllegalParameterValue))?
        .samples
        .len();
    respond_text(r, &n.to_string())
}

fn trac_data_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    let start = number_in(p.next_token()?, 1.0, MAX_BUFFER_CAP as f64)? as usize;
    let end = number_in(p.next_token()?, 1.0, MAX_BUFFER_CAP as f64)? as usize;
    let name = Dmm6500::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    let elements = elements(p)?;
    let buffer = d
        .buffers
        .get(&name)
        .ok_or(Error::new(ErrorCode::IllegalParameterValue))?;
    if start > end || end > buffer.samples.len() {
        return Err(ErrorCode::DataOutOfRange.into());
    }
    let samples: Vec<Sample> = buffer
        .samples
        .iter()
        .skip(start - 1)
        .take(end - start + 1)
        .copied()
        .collect();
    let text: Vec<String> = samples
        .iter()
        .flat_map(|s| d.fields(s, &elements))
        .collect();
    respond_text(r, &text.join(","))?;
    d.standard.counted(samples.len() as u64);
    Ok(())
}

/// `RANGe[:UPPer] <value>|MIN|MAX|DEF` on a function with `ranges`: the smallest range that
/// covers the value (DEF is the largest); autorange off.
fn range_setting(p: &mut Parameters<'_, '_>, ranges: &[f64]) -> ScpiResult<f64> {
    let (min, max) = match (ranges.first(), ranges.last()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => return Err(ErrorCode::ExecutionError.into()),
    };
    let v = Limits {
        min: 0.0,
        max,
        def: max,
    }
    .setting(p)?;
    Ok(ranges
        .iter()
        .copied()
        .find(|r| v <= *r * (1.0 + 1e-9))
        .unwrap_or(max)
        .max(min))
}

/// The settings branch, shared by `VOLT[:DC]`, `RES` and `FRES`; `$ranges` are the function's
/// ranges and `$field` the fixed range it keeps.
macro_rules! settings {
    ($ranges:expr, $field:ident) => {
        [
            Leaf!(b"NPLCycles" => &Cmd::<D>::ev_text(
                |d, p| {
                    d.nplc = NPLC.setting(p)?;
                    Ok(())
                },
                |d| format_sci(d.nplc, 9, false)
            )),
            Leaf!(b"AZERo" => &Cmd::<D>::flag(|d, on| d.azero = on, |d| d.azero)),
            Branch![b"RANGe";
                Leaf!(default b"UPPer" => &Cmd::<D>::ev_text(
                    |d, p| {
                        d.$field = range_setting(p, &$ranges)?;
                        d.auto_range = false;
                        Ok(())
                    },
                    |d| format_sci(d.range(&$ranges, d.$field), 9, false)
                )),
                Leaf!(b"AUTO" => &Cmd::<D>::flag(|d, on| d.auto_range = on, |d| d.auto_range))
            ]
        ]
    };
}

const VOLT_SETTINGS: [Node<'static, D>; 3] = settings!(VOLT_RANGES, volt_range);
const RES_SETTINGS: [Node<'static, D>; 3] = settings!(OHM_RANGES, ohm_range);

const TREE: Node<'static, D> = scpi_tree![Dmm6500;
    Leaf!(b"*LANG" => &Cmd::<D>::ev_text(
        |_, p| one_of(p, &LANGUAGES),
        |_| "SCPI".to_owned()
    )),
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<Dmm6500>)),
            Leaf!(b"COUNt" => &Cmd::text(D::error_count))
        ],
        // The mains frequency detected at power-up. Unconfirmed: `50` as NR1 is our reading of
        // the reference manual's example.
        Leaf!(b"LFRequency" => &Cmd::text(|_| format!("{MAINS_HZ:.0}")))
    ],
    Branch![b"FORMat";
        Leaf!(default b"DATA" => keyword_setting!(D, DATA_FORMATS, data_format))
    ],
    Branch![b"DISPlay";
        Leaf!(b"CLEar" => &Cmd::<D>::plain(|d| d.user_text = Default::default())),
        Leaf!(b"SCReen" => &Cmd::<D>::ev(|_, p| one_of(p, &SCREENS))),
        Branch![b"USER1";
            Branch![b"TEXT";
                Leaf!(default b"DATA" => &Cmd::<D>::ev(|d, p| user_text(d, p, 0)))
            ]
        ],
        Branch![b"USER2";
            Branch![b"TEXT";
                Leaf!(default b"DATA" => &Cmd::<D>::ev(|d, p| user_text(d, p, 1)))
            ]
        ],
        Branch![b"LIGHt";
            Leaf!(b"STATe" => keyword_setting!(D, BACKLIGHT, backlight))
        ],
        Branch![b"VOLTage";
            Branch![default b"DC";
                Leaf!(b"DIGits" => &Cmd::<D>::ev_text(
                    |d, p| {
                        d.volt_digits = digits(p)?;
                        Ok(())
                    },
                    |d| d.volt_digits.to_string()
                ))
            ]
        ],
        Branch![b"RESistance";
            Leaf!(b"DIGits" => &Cmd::<D>::ev_text(
                |d, p| {
                    d.ohm_digits = digits(p)?;
                    Ok(())
                },
                |d| d.ohm_digits.to_string()
            ))
        ],
        Branch![b"FRESistance";
            Leaf!(b"DIGits" => &Cmd::<D>::ev_text(
                |d, p| {
                    d.ohm_digits = digits(p)?;
                    Ok(())
                },
                |d| d.ohm_digits.to_string()
            ))
        ]
    ],
    Branch![b"TRIGger";
        Leaf!(b"LOAD" => &Cmd::ev(trig_load_ev))
    ],
    Branch![b"INITiate";
        Leaf!(default b"IMMediate" => &Cmd::ev(init_ev))
    ],
    Leaf!(b"ABORt" => &Cmd::<D>::plain(|_| {})),
    Branch![b"AZERo";
        Leaf!(b"ONCE" => &Cmd::<D>::plain(|_| {}))
    ],
    sense_branch!(VOLT_SETTINGS, RES_SETTINGS;
        Leaf!(b"FUNCtion" => &Cmd::<D>::ev_text(
            |d, p| {
                d.func = Function::parse(p)?;
                Ok(())
            },
            |d| d.func.name().to_owned()
        )),
        Leaf!(b"COUNt" => &Cmd::<D>::ev_text(
            |d, p| {
                d.count = COUNT.setting(p)? as u32;
                Ok(())
            },
            |d| d.count.to_string()
        ))
    ),
    Branch![b"ROUTe";
        Leaf!(b"TERMinals" => &Cmd::<D>::text(|_| "FRON".to_owned()))
    ],
    Leaf!(b"READ" => &Cmd::q(read_q)),
    Branch![b"MEASure";
        Branch![default b"VOLTage";
            Leaf!(default b"DC" => &Cmd::q(meas_q))
        ]
    ],
    Branch![b"TRACe";
        Leaf!(b"MAKE" => &Cmd::ev(trac_make_ev)),
        Leaf!(b"CLEar" => &Cmd::ev(trac_cle_ev)),
        Leaf!(b"ACTual" => &Cmd::q(trac_act_q)),
        Leaf!(b"TRIGger" => &Cmd::ev(trac_trig_ev)),
        Leaf!(b"DATA" => &Cmd::q(trac_data_q))
    ]
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::tests::{ask, setup};
    use crate::personality::{Personality, sim_firmware};

    #[test]
    fn read_into_buffer_and_fetch_it_back() {
        let (s, clock) = setup(true);
        let mut d = Dmm6500::new(s);
        assert_eq!(
            ask(&mut d, "*IDN?"),
            format!(
                "KEITHLEY INSTRUMENTS,MODEL DMM6500,SIMTEST01,{}\n",
                sim_firmware()
            )
        );
        ask(
            &mut d,
            "SENS:FUNC \"VOLT:DC\";:SENS:VOLT:DC:NPLC 10;AZER OFF",
        );
        let r = d.handle(b"READ? \"defbuffer1\"");
        assert_eq!(r.bytes(), b"1.000000000E+01\n");
        assert_eq!(r.delay, Duration::from_millis(200));
        clock.advance(Duration::from_millis(1500));
        ask(&mut d, "READ?");
        assert_eq!(ask(&mut d, "TRAC:ACT? \"defbuffer1\""), "2\n");
        assert_eq!(
            ask(&mut d, "TRAC:DATA? 1,2,\"defbuffer1\",READ"),
            "1.000000000E+01,1.000000000E+01\n"
        );
        assert_eq!(
            ask(&mut d, "TRAC:DATA? 2,2,\"defbuffer1\",READ,REL,UNIT"),
            "1.000000000E+01,1.500000000E+00,Volt DC\n"
        );
        assert_eq!(ask(&mut d, "TRAC:DATA? 1,3,\"defbuffer1\",READ"), "");
        assert_eq!(ask(&mut d, "SYST:ERR:COUN?"), "1\n");
        assert_eq!(ask(&mut d, "SYST:ERR?"), "-222,\"Data out of range\"\n");
        assert_eq!(ask(&mut d, "SYST:ERR?"), "0,\"No error\"\n");
    }

    #[test]
    fn language_line_frequency_and_data_format() {
        let (s, _) = setup(false);
        let mut d = Dmm6500::new(s);
        assert_eq!(ask(&mut d, "*LANG?"), "SCPI\n");
        // Another command set takes effect only at the next power-up.
        assert_eq!(ask(&mut d, "*LANG TSP;*LANG?"), "SCPI\n");
        assert_eq!(ask(&mut d, "*LANG BASIC"), "");
        assert_eq!(ask(&mut d, ":SYST:LFR?"), "50\n");
        assert_eq!(ask(&mut d, "FORM:DATA?"), "ASC\n");
        assert_eq!(ask(&mut d, "FORM REAL;:FORM?"), "REAL\n");
        assert_eq!(ask(&mut d, "FORM:DATA ASCII;DATA?"), "ASC\n");
        assert_eq!(
            ask(&mut d, "SYST:ERR?"),
            "-224,\"Illegal parameter value\"\n"
        );
        assert_eq!(ask(&mut d, "SYST:ERR?"), "0,\"No error\"\n");
    }

    #[test]
    fn ranges_are_kept_per_function_and_reported() {
        let (s, _) = setup(false);
        let mut d = Dmm6500::new(s);
        // Autoranging: the range that holds the 10 V standard and the 10 kΩ resistor.
        assert_eq!(ask(&mut d, "VOLT:RANG?"), "1.000000000E+01\n");
        assert_eq!(ask(&mut d, "RES:RANG?"), "1.000000000E+04\n");
        ask(&mut d, ":SENS:VOLT:RANG:AUTO 0;:SENS:VOLT:RANG 5");
        assert_eq!(
            ask(&mut d, "VOLT:DC:RANG?;RANG:AUTO?"),
            "1.000000000E+01;0\n"
        );
        ask(&mut d, "RES:RANG 150e3");
        assert_eq!(ask(&mut d, "RES:RANG?"), "1.000000000E+06\n");
        assert_eq!(ask(&mut d, "VOLT:RANG MAX;RANG?"), "1.000000000E+03\n");
        ask(&mut d, "VOLT:RANG 1001");
        assert_eq!(ask(&mut d, "SYST:ERR?"), "-222,\"Data out of range\"\n");
        ask(&mut d, "*RST");
        assert_eq!(ask(&mut d, "VOLT:RANG:AUTO?"), "1\n");
    }

    #[test]
    fn front_panel_settings() {
        let (s, _) = setup(false);
        let mut d = Dmm6500::new(s);
        assert_eq!(ask(&mut d, ":DISP:LIGH:STAT?"), "ON100\n");
        assert_eq!(ask(&mut d, ":DISP:LIGH:STAT ON25;STAT?"), "ON25\n");
        assert_eq!(ask(&mut d, "DISP:VOLT:DC:DIG?;:DISP:RES:DIG?"), "6;6\n");
        assert_eq!(ask(&mut d, "DISP:VOLT:DIG 4;DIG?"), "4\n");
        ask(
            &mut d,
            ":DISP:CLE;:DISP:SCR SWIPE_USER;:DISP:USER1:TEXT \"tsagent\"",
        );
        ask(&mut d, ":DISP:USER2:TEXT:DATA \"sim\"");
        assert_eq!(d.user_text, ["tsagent".to_owned(), "sim".to_owned()]);
        assert_eq!(ask(&mut d, "SYST:ERR:COUN?"), "0\n");
        ask(&mut d, ":DISP:SCR NOWHERE");
        ask(&mut d, ":DISP:VOLT:DIG 7");
        ask(&mut d, &format!(":DISP:USER1:TEXT \"{}\"", "x".repeat(21)));
        let errors: Vec<String> = (0..3).map(|_| ask(&mut d, "SYST:ERR?")).collect();
        assert_eq!(
            errors,
            [
                "-224,\"Illegal parameter value\"\n",
                "-222,\"Data out of range\"\n",
                "-223,\"Too much data\"\n"
            ]
        );
    }

    #[test]
    fn simple_loop_trigger_model_fills_the_default_buffer() {
        let (s, _) = setup(false);
        let mut d = Dmm6500::new(s);
        ask(&mut d, "TRAC:CLE;:TRIG:LOAD \"SimpleLoop\",3,0.01");
        ask(&mut d, ":INIT;*WAI");
        assert_eq!(ask(&mut d, "TRAC:ACT?"), "3\n");
        assert_eq!(ask(&mut d, "ABOR;:AZER:ONCE;*OPC?"), "1\n");
        ask(&mut d, "TRIG:LOAD \"DurationLoop\",3");
        assert_eq!(
            ask(&mut d, "SYST:ERR?"),
            "-224,\"Illegal parameter value\"\n"
        );
    }

    #[test]
    fn user_buffers() {
        let (s, _) = setup(false);
        let mut d = Dmm6500::new(s);
        ask(&mut d, "TRAC:MAKE \"mybuf\",2");
        for _ in 0..3 {
            ask(&mut d, "READ? \"mybuf\"");
        }
        assert_eq!(ask(&mut d, "TRAC:ACT? \"mybuf\""), "2\n");
        ask(&mut d, "TRAC:CLE \"mybuf\"");
        assert_eq!(ask(&mut d, "TRAC:ACT? \"mybuf\""), "0\n");
        assert_eq!(ask(&mut d, "READ? \"nobuf\""), "");
        ask(&mut d, "SENS:FUNC \"TEMP\"");
        assert_eq!(
            ask(&mut d, "SYST:ERR?"),
            "-224,\"Illegal parameter value\"\n"
        );
        assert_eq!(
            ask(&mut d, "SYST:ERR?"),
            "-224,\"Illegal parameter value\"\n"
        );
        assert_eq!(ask(&mut d, "ROUT:TERM?"), "FRON\n");
    }

    #[test]
    fn measure_count_fills_the_buffer() {
        let (s, _) = setup(false);
        let mut d = Dmm6500::new(s);
        ask(
            &mut d,
            "TRAC:CLE \"defbuffer1\";:SENS:COUN 4;:TRAC:TRIG \"defbuffer1\"",
        );
        assert_eq!(ask(&mut d, "COUN?"), "4\n");
        assert_eq!(ask(&mut d, "*OPC?"), "1\n");
        assert_eq!(ask(&mut d, "TRAC:ACT? \"defbuffer1\""), "4\n");
        assert_eq!(
            ask(&mut d, "TRAC:DATA? 1,4,\"defbuffer1\",READ"),
            ["1.000000000E+01"; 4].join(",") + "\n"
        );
        // READ? makes the count of readings too and sends the last.
        assert_eq!(ask(&mut d, "READ?"), "1.000000000E+01\n");
        assert_eq!(ask(&mut d, "TRAC:ACT?"), "8\n");
        ask(
            &mut d,
            "SENS:COUN 0;:SENS:VOLT:DC:RANG 5000;:SENS:RES:RANG 1E6",
        );
        assert_eq!(ask(&mut d, "SYST:ERR?"), "-222,\"Data out of range\"\n");
        assert_eq!(ask(&mut d, "SYST:ERR?"), "0,\"No error\"\n");
        ask(&mut d, "SENS:VOLT:DC:RANG 5000");
        assert_eq!(ask(&mut d, "SYST:ERR?"), "-222,\"Data out of range\"\n");
        ask(&mut d, "SENS:RES:RANG 1E6");
        assert_eq!(ask(&mut d, "SYST:ERR?"), "0,\"No error\"\n");
    }
}
