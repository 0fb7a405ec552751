//! The SCPI DMM behind `generic-scpi-dmm` and the Keysight Truevolt models (34470A, 34465A): a
//! command tree on the shared SCPI machinery over the simulated 10 V standard.
//!
//! Behaviour follows a Keysight 34470A where the brief does not say otherwise: the error queue
//! holds 20 entries and replies the newest with `-350,"Queue overflow"` when full; a message is
//! executed unit by unit and abandoned at the first error, and replies already produced are still
//! sent; `*RST` does not touch the error queue or the status registers; `*ESR?` reports
//! power-on (bit 7) until first read or cleared; register values are sent as `+N`.
//!
//! Reading memory holds the readings of the last `INIT`/`READ?` (`SAMPle:COUNt` ×
//! `TRIGger:COUNt` of them, up to [`MEMORY_CAP`]); `FETCh?` sends them again, `R?` sends and
//! erases them. `FORMat:DATA REAL,64|REAL,32` makes `FETCh?`/`READ?` send an IEEE 488.2
//! definite-length block (big-endian, or little-endian after `FORMat:BORDer SWAP`) followed by
//! LF; `R?` always sends a block, holding ASCII text in ASCII format, as the Truevolt meters do.
//!
//! The meter switches function as the Truevolt meters do: `[SENSe:]FUNCtion[:ON] "<f>"`,
//! `CONFigure:<f>` and `MEASure:<f>?` (`CONFigure?` answers the function, range and resolution
//! as a quoted string) select dc volts (`"VOLT"`), ac volts (`"VOLT:AC"`), dc and
//! ac current (`"CURR"`, `"CURR:AC"`) and 2- and 4-wire ohms (`"RES"`, `"FRES"`); `FUNCtion?`
//! answers the quoted short form. Each function keeps its own range (its own table), autorange,
//! NPLC, aperture and auto-zero under `[SENSe:]<f>:…`, whichever is in use. As on the meters the
//! ac functions have no NPLC, aperture, resolution or auto-zero, and 4-wire ohms no auto-zero:
//! those headers are undefined (-113). The input is the 10 V standard on the voltage terminals:
//! dc volts read it; the ac and current functions read the meter's noise near zero
//! ([`NOISE_OF_RANGE`]); the ohms functions overload (`+9.9E+37`), as the ohms source cannot
//! drive a live 10 V output.
//!
//! What QCoDeS's and PyMeasure's Truevolt drivers send at start and for their common settings is
//! answered as the Truevolt manual gives it: `*OPT?`, `SYSTem:LFRequency?` (`+50`),
//! `SYSTem:LICense:CATalog?`,
//! `…:RESolution` (from the model's resolution table, range × factor at the NPLC in use; setting
//! it selects the NPLC), `…:APERture[:ENABled]` (NPLC and aperture turn each other off),
//! `TRIGger:DELay[:AUTO]`, `TRIGger:SLOPe`, `TRIGger:LEVel`, `SAMPle:SOURce`, `SAMPle:TIMer`,
//! `DISPlay[:STATe]`, `DISPlay:TEXT[:DATA]` (a quoted string) and `:CLEar`, and `ABORt`. Replies
//! the manual did not confirm are flagged where they are defined. The 34401A's root
//! `[SENSe:]ZERO:AUTO` is not in the Truevolt manual and stays an undefined header.

use std::time::Duration;

use scpi::error::{Error, ErrorCode, Result as ScpiResult};
use scpi::tree::prelude::*;
use scpi::{Branch, Leaf};

use super::Setup;
use super::model::{MAINS_HZ, Standard};
use super::scpi_util::*;
use crate::format::{NOT_A_NUMBER, OVERLOAD, format_reading, format_sci};
use crate::id::PersonalityId;

/// Readings the reading memory holds (the Truevolt standard memory).
const MEMORY_CAP: usize = 50_000;

/// DC voltage ranges, V.
const RANGES: [f64; 5] = [MIN_RANGE, 1.0, 10.0, 100.0, MAX_RANGE];
const MIN_RANGE: f64 = 0.1;
const MAX_RANGE: f64 = 1000.0;

/// Ac voltage ranges, V. Unconfirmed: 100 mV to 750 V is the Truevolt data sheet as we remember
/// it; the manual page was not found.
const AC_VOLT_RANGES: [f64; 5] = [0.1, 1.0, 10.0, 100.0, 750.0];

/// Dc current ranges, A, on the 3 A terminals; the 10 A terminal (`CURRent:TERMinals 10`) is not
/// simulated. The manual's `CURRent:{AC|DC}:RANGe` lists 100 µA to 3 A for the Truevolt series.
/// Unconfirmed: the 1 µA and 10 µA ranges are the 34465A/34470A data sheet's as we remember it.
const DC_CURRENT_RANGES: [f64; 8] = [1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 0.1, 1.0, 3.0];

/// Ac current ranges, A, on the 3 A terminals (Truevolt manual, `CURRent:{AC|DC}:RANGe`).
const AC_CURRENT_RANGES: [f64; 6] = [100e-6, 1e-3, 10e-3, 0.1, 1.0, 3.0];

/// Resistance ranges, Ω, 2- and 4-wire. Unconfirmed: 100 Ω to 1 GΩ is the 34465A/34470A data
/// sheet as we remember it; the manual page was not found.
const OHM_RANGES: [f64; 8] = [100.0, 1e3, 10e3, 100e3, 1e6, 10e6, 100e6, 1e9];

/// What the ac and current functions read with the standard on the voltage terminals: nothing
/// is connected to the current terminals and a Zener has no ac output, so they read the meter's
/// own noise, this many parts of the range in use (times a standard normal deviate; its size for
/// ac). Unconfirmed: a plausible floor of the order of the data sheet's offset terms.
const NOISE_OF_RANGE: f64 = 20e-6;

/// Time an ac reading takes, s. Unconfirmed: the real meter's depends on its ac filter and
/// settling delay; the simulator takes the dc default integration time (10 NPLC at 50 Hz).
const AC_READING_TIME: f64 = 0.2;

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

const NPLC_LIMITS: Limits = Limits {
    min: MIN_NPLC,
    max: MAX_NPLC,
    def: DEFAULT_NPLC,
};

/// Most samples per trigger and most triggers the meter accepts.
const COUNT_LIMITS: Limits = Limits {
    min: 1.0,
    max: 1_000_000.0,
    def: 1.0,
};

/// Trigger delay, s (`TRIGger:DELay`); `*RST` turns automatic delay on, which reads as 0 here.
const TRIGGER_DELAY_LIMITS: Limits = Limits {
    min: 0.0,
    max: 3600.0,
    def: 0.0,
};

/// Sample interval, s (`SAMPle:TIMer`). Unconfirmed: the 20 µs minimum is the DIG option's
/// reading rate as QCoDeS's driver assumes it, not read in the manual.
const SAMPLE_TIMER_LIMITS: Limits = Limits {
    min: 20e-6,
    max: 3600.0,
    def: 1.0,
};

/// Aperture, s (`[SENSe:]VOLTage[:DC]:APERture`). Unconfirmed: the limits (20 µs with DIG, 1 s)
/// and the 100 ms default are the Truevolt data sheet's as we remember it.
const APERTURE_LIMITS: Limits = Limits {
    min: 20e-6,
    max: 1.0,
    def: 0.1,
};

/// Trigger level, V (`TRIGger:LEVel`, for level triggering on the 34465A/34470A).
const TRIGGER_LEVEL_LIMITS: Limits = Limits {
    min: -1200.0,
    max: 1200.0,
    def: 0.0,
};

/// What `*OPT?` answers: one field per option slot, `0` where none is installed. Unconfirmed:
/// the field order is that of QCoDeS's own simulation of the 34465A (`0,0,DIG,MEM,0`); this
/// meter has the DIG option (NPLC down to 0.001) and the standard 50 000-reading memory.
const OPTIONS: &str = "0,0,DIG,0,0";

/// What `SYSTem:LICense:CATalog?` answers, the licences of [`OPTIONS`]; unconfirmed format.
const LICENSES: &str = "\"DIG\"";

/// Resolution, in parts of the range, at each step of [`NPLC_STEPS`] (the Truevolt data sheets'
/// resolution tables, 34465A with the DIG option).
const RESOLUTION_34465A: [f64; 9] = [
    30e-6, 15e-6, 6e-6, 3e-6, 1.5e-6, 0.7e-6, 0.3e-6, 0.1e-6, 0.03e-6,
];

/// As [`RESOLUTION_34465A`], for the 34470A.
const RESOLUTION_34470A: [f64; 9] = [
    30e-6, 10e-6, 3e-6, 1e-6, 0.5e-6, 0.3e-6, 0.1e-6, 0.03e-6, 0.01e-6,
];

/// `TRIGger:SLOPe`.
const SLOPES: [(&[u8], bool); 2] = [(b"POSitive", true), (b"NEGative", false)];

/// `SAMPle:SOURce`: `true` for the timer.
const SAMPLE_SOURCES: [(&[u8], bool); 2] = [(b"IMMediate", false), (b"TIMer", true)];

/// Longest `DISPlay:TEXT` the meter shows. Unconfirmed: the Truevolt manual's limit was not
/// found; longer text is refused with -223 "Too much data" as a 488.2 instrument would.
const DISPLAY_TEXT_MAX: usize = 40;

/// A measurement function of `[SENSe:]FUNCtion`, with the settings each keeps of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    VoltDc,
    VoltAc,
    CurrDc,
    CurrAc,
    Res,
    FRes,
}

impl Function {
    const ALL: [Function; 6] = [
        Function::VoltDc,
        Function::VoltAc,
        Function::CurrDc,
        Function::CurrAc,
        Function::Res,
        Function::FRes,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// As `FUNCtion?` answers it, without the quotes: the meter's short form.
    fn name(self) -> &'static str {
        match self {
            Function::VoltDc => "VOLT",
            Function::VoltAc => "VOLT:AC",
            Function::CurrDc => "CURR",
            Function::CurrAc => "CURR:AC",
            Function::Res => "RES",
            Function::FRes => "FRES",
        }
    }

    /// Whether the function integrates (NPLC, aperture, resolution); the ac functions do not.
    fn is_dc(self) -> bool {
        !matches!(self, Function::VoltAc | Function::CurrAc)
    }

    /// The unit `DATA:LAST?` appends. Unconfirmed: only `VDC` is in the manual's example; the
    /// others follow its pattern.
    fn unit(self) -> &'static str {
        match self {
            Function::VoltDc => "VDC",
            Function::VoltAc => "VAC",
            Function::CurrDc => "ADC",
            Function::CurrAc => "AAC",
            Function::Res | Function::FRes => "OHM",
        }
    }

    /// The function's ranges, smallest first.
    fn ranges(self) -> &'static [f64] {
        match self {
            Function::VoltDc => &RANGES,
            Function::VoltAc => &AC_VOLT_RANGES,
            Function::CurrDc => &DC_CURRENT_RANGES,
            Function::CurrAc => &AC_CURRENT_RANGES,
            Function::Res | Function::FRes => &OHM_RANGES,
        }
    }

    /// `MIN`, `MAX` and `DEF` of the function's `RANGe`.
    fn range_limits(self) -> Limits {
        let ranges = self.ranges();
        Limits {
            min: ranges.first().copied().unwrap_or(MIN_RANGE),
            max: ranges.last().copied().unwrap_or(MAX_RANGE),
            def: self.default_range(),
        }
    }

    /// The range after `*RST`. Unconfirmed for all but dc volts: the manual gives autorange as
    /// the default and no number for `RANGe? DEF`; these are the decade ranges nearest the middle
    /// of each table.
    fn default_range(self) -> f64 {
        match self {
            Function::VoltDc | Function::VoltAc => DEFAULT_RANGE,
            Function::CurrDc | Function::CurrAc => 0.1,
            Function::Res | Function::FRes => 1e3,
        }
    }

    /// The unit suffixes a value of this function may carry, with their scale.
    fn suffixes(self) -> &'static [(&'static [u8], f64)] {
        match self {
            Function::VoltDc | Function::VoltAc => {
                &[(b"V", 1.0), (b"MV", 1e-3), (b"UV", 1e-6), (b"KV", 1e3)]
            }
            Function::CurrDc | Function::CurrAc => &[(b"A", 1.0), (b"MA", 1e-3), (b"UA", 1e-6)],
            // In SCPI `MOHM` is the megohm, not the milliohm.
            Function::Res | Function::FRes => &[
                (b"OHM", 1.0),
                (b"KOHM", 1e3),
                (b"MOHM", 1e6),
                (b"GOHM", 1e9),
            ],
        }
    }

    /// The function a `FUNCtion` string names, long or short form, any case (`VOLT` and
    /// `CURR` are their dc functions).
    fn parse(text: &[u8]) -> Option<Function> {
        let mut words = text.split(|b| *b == b':');
        let head = words.next()?;
        let tail = words.next();
        if words.next().is_some() {
            return None;
        }
        let is = |word: &[u8], long: &[u8], short: usize| {
            word.eq_ignore_ascii_case(long)
                || long
                    .get(..short)
                    .is_some_and(|s| word.eq_ignore_ascii_case(s))
        };
        let ac = match tail {
            None => false,
            Some(w) if is(w, b"DC", 2) => false,
            Some(w) if is(w, b"AC", 2) => true,
            Some(_) => return None,
        };
        let dc_only = |f: Function| (!ac && tail.is_none()).then_some(f);
        if is(head, b"VOLTAGE", 4) {
            Some(if ac {
                Function::VoltAc
            } else {
                Function::VoltDc
            })
        } else if is(head, b"CURRENT", 4) {
            Some(if ac {
                Function::CurrAc
            } else {
                Function::CurrDc
            })
        } else if is(head, b"RESISTANCE", 3) {
            dc_only(Function::Res)
        } else if is(head, b"FRESISTANCE", 4) {
            dc_only(Function::FRes)
        } else {
            None
        }
    }
}

/// What a function keeps of its own: the Truevolt meters remember range, integration and
/// auto-zero per function, so switching away and back restores them.
#[derive(Debug, Clone, Copy)]
struct Settings {
    auto_range: bool,
    /// The range in use; follows the input when autoranging.
    range: f64,
    nplc: f64,
    auto_zero: bool,
    /// `…:APERture:ENABled`: integrate for `aperture` instead of `nplc`.
    aperture_on: bool,
    /// `…:APERture`, s.
    aperture: f64,
}

impl Settings {
    /// As `*RST` leaves `function`.
    fn reset(function: Function) -> Self {
        Self {
            auto_range: true,
            range: function.default_range(),
            nplc: DEFAULT_NPLC,
            auto_zero: true,
            aperture_on: false,
            aperture: APERTURE_LIMITS.def,
        }
    }
}

/// `FORMat:DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataFormat {
    Ascii,
    Real32,
    Real64,
}

impl DataFormat {
    /// As `FORMat:DATA?` answers.
    fn name(self) -> &'static str {
        match self {
            DataFormat::Ascii => "ASC,9",
            DataFormat::Real32 => "REAL,32",
            DataFormat::Real64 => "REAL,64",
        }
    }
}

type D = Scpi<ScpiDmm>;

/// The meter's own state; its identity, status registers and error queue are the SCPI layer's.
pub(crate) struct ScpiDmm {
    standard: Standard,
    /// `[SENSe:]FUNCtion`.
    function: Function,
    /// Each function's settings, by [`Function::index`].
    settings: [Settings; 6],
    impedance_auto: bool,
    /// Reading memory, as the readings are sent (overload and NaN as markers).
    memory: Vec<f64>,
    /// `SAMPle:COUNt`.
    samples: u32,
    /// `TRIGger:COUNt`.
    triggers: u32,
    /// `TRIGger:SOURce`, kept for the query; every source triggers at once.
    trigger_source: &'static str,
    data_format: DataFormat,
    /// `FORMat:BORDer SWAPped`: little-endian blocks.
    swapped: bool,
    /// Wall time the readings of the current message would take; the server waits it out.
    busy: Duration,
    /// Resolution per NPLC step, this model's. Unconfirmed for current and ohms: the same parts
    /// of the range as dc volts.
    resolution: &'static [f64; 9],
    /// `TRIGger:DELay`, s, and whether the meter chooses it (`TRIGger:DELay:AUTO`).
    trigger_delay: f64,
    trigger_delay_auto: bool,
    /// `TRIGger:SLOPe POSitive`.
    trigger_slope_positive: bool,
    /// `TRIGger:LEVel`, V.
    trigger_level: f64,
    /// `SAMPle:SOURce TIMer`, and `SAMPle:TIMer`, s.
    sample_timed: bool,
    sample_timer: f64,
    /// `DISPlay[:STATe]` and `DISPlay:TEXT`.
    display_on: bool,
    display_text: String,
}

impl ScpiModel for ScpiDmm {
    const TREE: Node<'static, D> = TREE;

    /// Measurement settings to defaults, reading memory cleared; also the power-on state.
    fn reset(&mut self) {
        self.function = Function::VoltDc;
        self.settings = Function::ALL.map(Settings::reset);
        self.impedance_auto = false;
        self.memory.clear();
        self.samples = 1;
        self.triggers = 1;
        self.trigger_source = "IMM";
        self.data_format = DataFormat::Ascii;
        self.swapped = false;
        self.trigger_delay = TRIGGER_DELAY_LIMITS.def;
        self.trigger_delay_auto = true;
        self.trigger_slope_positive = false;
        self.trigger_level = TRIGGER_LEVEL_LIMITS.def;
        self.sample_timed = false;
        self.sample_timer = SAMPLE_TIMER_LIMITS.def;
        self.display_on = true;
        self.display_text.clear();
    }

    fn take_busy(&mut self) -> Duration {
        std::mem::take(&mut self.busy)
    }

    /// `+N`, the NR1 form Keysight meters use for register values.
    fn register(value: u8) -> String {
        format!("+{value}")
    }
}

impl ScpiDmm {
    /// The meter as the personality `id`, as `*RST` leaves it: the generic DMM reports the
    /// identity in `setup.params`; the Truevolt models report Keysight's, with `setup.serial`.
    pub(crate) fn new(setup: Setup, id: PersonalityId) -> D {
        let maker = "Keysight Technologies";
        let identity = match id {
            PersonalityId::Keysight34470a => identity(maker, "34470A", &setup.serial),
            PersonalityId::Keysight34465a => identity(maker, "34465A", &setup.serial),
            _ => setup.params.identity.clone(),
        };
        let mut meter = Self {
            standard: Standard::new(&setup),
            function: Function::VoltDc,
            settings: Function::ALL.map(Settings::reset),
            impedance_auto: false,
            memory: Vec::new(),
            samples: 1,
            triggers: 1,
            trigger_source: "IMM",
            data_format: DataFormat::Ascii,
            swapped: false,
            busy: Duration::ZERO,
            resolution: match id {
                PersonalityId::Keysight34470a => &RESOLUTION_34470A,
                _ => &RESOLUTION_34465A,
            },
            trigger_delay: TRIGGER_DELAY_LIMITS.def,
            trigger_delay_auto: true,
            trigger_slope_positive: false,
            trigger_level: TRIGGER_LEVEL_LIMITS.def,
            sample_timed: false,
            sample_timer: SAMPLE_TIMER_LIMITS.def,
            display_on: true,
            display_text: String::new(),
        };
        meter.reset();
        Scpi::new(id, identity, meter)
    }

    /// `function`'s settings.
    fn of(&self, function: Function) -> &Settings {
        // `index` is below `Function::ALL.len()`, the array's length, by construction.
        &self.settings[function.index()]
    }

    /// `function`'s settings, to change them.
    fn of_mut(&mut self, function: Function) -> &mut Settings {
        &mut self.settings[function.index()]
    }

    /// The settings of the function in use.
    fn cur(&self) -> &Settings {
        self.of(self.function)
    }

    /// Applies a `CONFigure`/`MEASure` range to `function`, which it selects; like the real
    /// meter this clears reading memory and sets one sample per trigger, one trigger.
    fn configure(&mut self, function: Function, range: RangeArg) {
        self.function = function;
        self.set_range(function, range);
        self.memory.clear();
        self.samples = 1;
        self.triggers = 1;
    }

    /// `range` for `function`: autorange, or a fixed range with autoranging off.
    fn set_range(&mut self, function: Function, range: RangeArg) {
        let s = self.of_mut(function);
        match range {
            RangeArg::Auto => s.auto_range = true,
            RangeArg::Fixed(r) => {
                s.auto_range = false;
                s.range = r;
            }
        }
    }

    /// The integration time `function` uses, s: the aperture when it is enabled, NPLC otherwise;
    /// the ac functions have neither and take [`AC_READING_TIME`].
    fn integration(&self, function: Function) -> f64 {
        let s = self.of(function);
        if !function.is_dc() {
            AC_READING_TIME
        } else if s.aperture_on {
            s.aperture
        } else {
            s.nplc / MAINS_HZ
        }
    }

    /// The resolution of `function`'s range and integration time, in its unit.
    fn resolution_now(&self, function: Function) -> f64 {
        let plc = self.integration(function) * MAINS_HZ;
        let step = NPLC_STEPS
            .iter()
            .rposition(|s| *s <= plc * (1.0 + 1e-9))
            .unwrap_or(0);
        self.of(function).range * self.resolution.get(step).copied().unwrap_or(0.0)
    }

    /// What the input reads in the function in use, before ranging: the standard in dc volts,
    /// the meter's noise in the others, and an overload in the resistance functions, as the
    /// ohms current source cannot drive a 10 V source's output (the real meter shows
    /// `OVLD`). The first deviate of dc volts is drawn for every function so that a seed
    /// names one sequence.
    fn input(&mut self) -> f64 {
        let s = *self.cur();
        match self.function {
            Function::VoltDc => self.standard.volts(),
            Function::Res | Function::FRes => OVERLOAD,
            f => {
                let z = self.standard.normal();
                let range = if s.auto_range {
                    f.ranges().first().copied().unwrap_or(s.range)
                } else {
                    s.range
                };
                let noise = NOISE_OF_RANGE * range * z;
                if f.is_dc() { noise } else { noise.abs() }
            }
        }
    }

    /// Takes one reading and returns it as it will be sent.
    fn measure(&mut self) -> f64 {
        let value = self.input();
        let integration = self.standard.busy(self.integration(self.function));
        self.busy = self.busy.saturating_add(integration);
        self.apply_range(value)
    }

    fn apply_range(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return NOT_A_NUMBER;
        }
        let function = self.function;
        let s = self.of_mut(function);
        if s.auto_range {
            s.range = autorange(function, value);
        }
        if value.abs() > OVERRANGE * s.range {
            OVERLOAD.copysign(value)
        } else {
            value
        }
    }

    /// Readings as IEEE-754 in the configured width and byte order.
    fn binary(&self, readings: &[f64]) -> Vec<u8> {
        let single = self.data_format == DataFormat::Real32;
        ieee754(readings.iter().copied(), single, self.swapped)
    }
}

impl D {
    /// `INITiate`: fills reading memory with `samples × triggers` new readings (up to the
    /// memory's size; more queue error 531).
    fn acquire(&mut self) {
        let wanted = u64::from(self.samples) * u64::from(self.triggers);
        let n = usize::try_from(wanted).unwrap_or(usize::MAX);
        if n > MEMORY_CAP {
            self.status
                .push(Error::new(ErrorCode::Custom(531, b"Insufficient memory")));
        }
        self.memory.clear();
        for _ in 0..n.min(MEMORY_CAP) {
            let r = self.measure();
            self.memory.push(r);
        }
    }

    /// Sends `readings` from memory: ASCII, comma-separated, or a definite-length block; `block`
    /// sends a block in ASCII format too (`R?`).
    fn send(&mut self, r: &mut ResponseUnit<'_>, readings: &[f64], block: bool) -> ScpiResult<()> {
        let ascii = || {
            let text: Vec<String> = readings.iter().map(|v| format_reading(*v)).collect();
            text.join(",")
        };
        match (self.data_format, block) {
            (DataFormat::Ascii, false) => respond_text(r, &ascii())?,
            (DataFormat::Ascii, true) => self.block(r, ascii().into_bytes())?,
            _ => {
                let bytes = self.binary(readings);
                self.block(r, bytes)?;
            }
        }
        self.standard.counted(readings.len() as u64);
        Ok(())
    }

    /// `DATA:LAST?`: the newest reading with its unit, `9.91000000E+37` when memory is empty.
    fn last_reading(&mut self) -> String {
        match self.memory.last().copied() {
            Some(v) => {
                self.standard.counted(1);
                format!("{} {}", format_reading(v), self.function.unit())
            }
            None => format_reading(NOT_A_NUMBER),
        }
    }

    fn block(&mut self, resp: &mut ResponseUnit<'_>, bytes: Vec<u8>) -> ScpiResult<()> {
        resp.data(Arbitrary(&bytes)).finish()?;
        let digits = bytes.len().to_string();
        let mut block = format!("#{}{}", digits.len(), digits).into_bytes();
        block.extend_from_slice(&bytes);
        self.status.last_block = Some(block);
        Ok(())
    }
}

/// `function`'s smallest range that holds `value` without overloading; its top range otherwise.
fn autorange(function: Function, value: f64) -> f64 {
    let ranges = function.ranges();
    ranges
        .iter()
        .copied()
        .find(|r| value.abs() <= OVERRANGE * r)
        .or_else(|| ranges.last().copied())
        .unwrap_or(MAX_RANGE)
}

/// `function`'s smallest range whose nominal value covers `value` (what `CONF:VOLT:DC 5`
/// selects: 10 V).
fn range_for(function: Function, value: f64) -> ScpiResult<f64> {
    let v = value.abs();
    function
        .ranges()
        .iter()
        .copied()
        .find(|r| v <= *r)
        .ok_or_else(|| ErrorCode::DataOutOfRange.into())
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

// ---------------------------------------------------------------------------------------------
// Parameter parsing

/// A value in `function`'s unit: plain, or with one of its suffixes (`V`, `MV`, `UV`, `KV` for
/// volts).
fn quantity(function: Function, token: Token<'_>) -> ScpiResult<f64> {
    match token {
        Token::DecimalNumericProgramData(_) => f64::try_from(token),
        Token::DecimalNumericSuffixProgramData(number, suffix) => {
            let scale = function
                .suffixes()
                .iter()
                .copied()
                .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
                .map(|(_, k)| k)
                .ok_or(Error::new(ErrorCode::InvalidSuffix))?;
            Ok(f64::try_from(Token::DecimalNumericProgramData(number))? * scale)
        }
        _ => Err(ErrorCode::DataTypeError.into()),
    }
}

#[derive(Debug, Clone, Copy)]
enum RangeArg {
    Auto,
    Fixed(f64),
}

/// The `range` parameter of `CONFigure`/`MEASure`: a value, `MIN`, `MAX`, `DEF` or `AUTO`.
fn range_arg(function: Function, token: Option<Token<'_>>) -> ScpiResult<RangeArg> {
    let limits = function.range_limits();
    match token {
        None => Ok(RangeArg::Auto),
        Some(t @ Token::CharacterProgramData(_)) => choice(
            t,
            &[
                (b"AUTO", RangeArg::Auto),
                (b"DEFault", RangeArg::Auto),
                (b"MINimum", RangeArg::Fixed(limits.min)),
                (b"MAXimum", RangeArg::Fixed(limits.max)),
            ],
        ),
        Some(t) => Ok(RangeArg::Fixed(range_for(
            function,
            quantity(function, t)?,
        )?)),
    }
}

/// The `resolution` parameter: validated, then ignored (the simulator always sends 9 digits).
fn resolution_arg(function: Function, token: Option<Token<'_>>) -> ScpiResult<()> {
    match token {
        None => Ok(()),
        Some(t @ Token::CharacterProgramData(_)) => {
            choice(t, &[(b"MINimum", ()), (b"MAXimum", ()), (b"DEFault", ())])
        }
        Some(t) => {
            let r = quantity(function, t)?;
            if r.is_finite() && r > 0.0 {
                Ok(())
            } else {
                Err(ErrorCode::DataOutOfRange.into())
            }
        }
    }
}

/// `[range[,resolution]]` of `CONFigure`/`MEASure` for `function`, and nothing more.
fn configure_args(function: Function, p: &mut Parameters<'_, '_>) -> ScpiResult<RangeArg> {
    let range = range_arg(function, p.next_optional_token()?)?;
    resolution_arg(function, p.next_optional_token()?)?;
    no_more(p)?;
    Ok(range)
}

/// `ON|OFF|1|0` or `ONCE`; `Some(true/false)` or `None` for ONCE.
fn on_off_once(p: &mut Parameters<'_, '_>) -> ScpiResult<Option<bool>> {
    let setting = match p.next_token()? {
        t @ Token::CharacterProgramData(_) if choice(t, &[(b"ONCE", ())]).is_ok() => None,
        t => Some(bool::try_from(t)?),
    };
    no_more(p)?;
    Ok(setting)
}

/// A count setting: `MIN|MAX|DEF` or a number from 1 to 1 000 000, rounded.
fn count_setting(p: &mut Parameters<'_, '_>) -> ScpiResult<u32> {
    let v = COUNT_LIMITS.setting(p)?;
    // In range by construction, so the conversion is exact after rounding.
    Ok(v.round() as u32)
}

/// A setting's query with its optional `MIN|MAX|DEF`, as a reading is sent.
fn respond_setting(
    r: &mut ResponseUnit<'_>,
    p: &mut Parameters<'_, '_>,
    limits: Limits,
    current: f64,
) -> ScpiResult<()> {
    let value = limits.query(p, current)?;
    no_more(p)?;
    respond_text(r, &format_reading(value))
}

/// A count's query with its optional `MIN|MAX|DEF`, as `+N`.
fn respond_count(
    r: &mut ResponseUnit<'_>,
    p: &mut Parameters<'_, '_>,
    current: u32,
) -> ScpiResult<()> {
    let v = COUNT_LIMITS.query(p, f64::from(current))?;
    no_more(p)?;
    respond_text(r, &format!("+{v}"))
}

// ---------------------------------------------------------------------------------------------
// The command tree

/// `…:NPLCycles` of `$f`.
macro_rules! nplc {
    ($f:expr) => {
        &Cmd::<D>::both(|d, p| nplc_ev(d, p, $f), |d, p, r| nplc_q(d, p, r, $f))
    };
}

/// `…:RESolution` of `$f`.
macro_rules! resolution {
    ($f:expr) => {
        &Cmd::<D>::both(
            |d, p| resolution_ev(d, p, $f),
            |d, p, r| resolution_q(d, p, r, $f),
        )
    };
}

/// `…:APERture[:TIME]` and `…:APERture:ENABled` of `$f`.
macro_rules! aperture {
    ($f:expr) => {
        Branch![b"APERture";
            Leaf!(default b"TIME" => &Cmd::<D>::both(
                |d, p| aperture_ev(d, p, $f),
                |d, p, r| aperture_q(d, p, r, $f)
            )),
            Leaf!(b"ENABled" => &Cmd::<D>::flag(
                |d, on| d.of_mut($f).aperture_on = on,
                |d| d.of($f).aperture_on
            ))
        ]
    };
}

/// `…:RANGe[:UPPer]` and `…:RANGe:AUTO` of `$f`.
macro_rules! range {
    ($f:expr) => {
        Branch![b"RANGe";
            Leaf!(default b"UPPer" => &Cmd::<D>::both(
                |d, p| range_ev(d, p, $f),
                |d, p, r| range_q(d, p, r, $f)
            )),
            Leaf!(b"AUTO" => &Cmd::<D>::ev(|d, p| range_auto_ev(d, p, $f))
                .and_flag(|d| d.of($f).auto_range))
        ]
    };
}

/// `…:ZERO:AUTO` of `$f`.
macro_rules! zero {
    ($f:expr) => {
        Branch![b"ZERO";
            Leaf!(b"AUTO" => &Cmd::<D>::ev(|d, p| zero_auto_ev(d, p, $f))
                .and_flag(|d| d.of($f).auto_zero))
        ]
    };
}

const TREE: Node<'static, D> = scpi_tree![ScpiDmm;
    Leaf!(b"*OPT" => &Cmd::text(|_| OPTIONS.to_owned())),
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<ScpiDmm>))
        ],
        Leaf!(b"VERSion" => &Cmd::text(|_| "1999.0".to_owned())),
        // `+50` or `+60`, the mains frequency the meter measured at power-on.
        Leaf!(b"LFRequency" => &Cmd::text(|_| format!("+{MAINS_HZ:.0}"))),
        Branch![b"LICense";
            Leaf!(b"CATalog" => &Cmd::text(|_| LICENSES.to_owned()))
        ]
    ],
    Leaf!(b"ABORt" => &Cmd::plain(|_| {})),
    Branch![b"DISPlay";
        Leaf!(default b"STATe" => &Cmd::<D>::flag(|d, on| d.display_on = on, |d| d.display_on)),
        Branch![b"TEXT";
            Leaf!(default b"DATA" => &Cmd::ev_text(disp_text_ev, |d| quoted(&d.display_text))),
            Leaf!(b"CLEar" => &Cmd::<D>::plain(|d| d.display_text.clear()))
        ]
    ],
    Branch![b"CONFigure";
        // `CONFigure?`; the crate needs a name for the branch's own query, so `CONF:CONF?` is
        // accepted too, which the meter would refuse.
        Leaf!(default b"CONFigure" => &Cmd::q(conf_q)),
        Branch![b"VOLTage";
            Leaf!(default b"DC" => &Cmd::<D>::ev(|d, p| conf_ev(d, p, Function::VoltDc))),
            Leaf!(b"AC" => &Cmd::<D>::ev(|d, p| conf_ev(d, p, Function::VoltAc)))
        ],
        Branch![b"CURRent";
            Leaf!(default b"DC" => &Cmd::<D>::ev(|d, p| conf_ev(d, p, Function::CurrDc))),
            Leaf!(b"AC" => &Cmd::<D>::ev(|d, p| conf_ev(d, p, Function::CurrAc)))
        ],
        Leaf!(b"RESistance" => &Cmd::<D>::ev(|d, p| conf_ev(d, p, Function::Res))),
        Leaf!(b"FRESistance" => &Cmd::<D>::ev(|d, p| conf_ev(d, p, Function::FRes)))
    ],
    Branch![b"MEASure";
        Branch![b"VOLTage";
            Leaf!(default b"DC" => &Cmd::<D>::q(|d, p, r| meas_q(d, p, r, Function::VoltDc))),
            Leaf!(b"AC" => &Cmd::<D>::q(|d, p, r| meas_q(d, p, r, Function::VoltAc)))
        ],
        Branch![b"CURRent";
            Leaf!(default b"DC" => &Cmd::<D>::q(|d, p, r| meas_q(d, p, r, Function::CurrDc))),
            Leaf!(b"AC" => &Cmd::<D>::q(|d, p, r| meas_q(d, p, r, Function::CurrAc)))
        ],
        Leaf!(b"RESistance" => &Cmd::<D>::q(|d, p, r| meas_q(d, p, r, Function::Res))),
        Leaf!(b"FRESistance" => &Cmd::<D>::q(|d, p, r| meas_q(d, p, r, Function::FRes)))
    ],
    Leaf!(b"READ" => &Cmd::q(read_q)),
    Leaf!(b"FETCh" => &Cmd::q(fetch_q)),
    Leaf!(b"R" => &Cmd::q(r_q)),
    Branch![b"DATA";
        Leaf!(b"POINts" => &Cmd::<D>::text(|d| format!("+{}", d.memory.len()))),
        Leaf!(b"LAST" => &Cmd::text(D::last_reading))
    ],
    Branch![b"INITiate";
        Leaf!(default b"IMMediate" => &Cmd::plain(D::acquire))
    ],
    Branch![b"FORMat";
        Leaf!(default b"DATA" => &Cmd::ev_text(form_data_ev, |d| d.data_format.name().to_owned())),
        Leaf!(b"BORDer" => keyword_setting!(D, BYTE_ORDERS, swapped))
    ],
    Branch![b"SAMPle";
        Leaf!(b"COUNt" => &Cmd::both(samp_count_ev, samp_count_q)),
        Leaf!(b"SOURce" => keyword_setting!(D, SAMPLE_SOURCES, sample_timed)),
        Leaf!(b"TIMer" => &Cmd::<D>::both(
            |d, p| {
                d.sample_timer = SAMPLE_TIMER_LIMITS.setting(p)?;
                Ok(())
            },
            |d, p, r| respond_setting(r, p, SAMPLE_TIMER_LIMITS, d.sample_timer)
        ))
    ],
    Branch![b"TRIGger";
        Leaf!(b"COUNt" => &Cmd::both(trig_count_ev, trig_count_q)),
        Leaf!(b"SOURce" => &Cmd::ev_text(trig_source_ev, |d| d.trigger_source.to_owned())),
        // `TRIGger:DELay` and `TRIGger:DELay:AUTO`; the crate needs a name for the branch's own
        // setting, so `TRIGger:DELay:DELay` is accepted too, which the meter would refuse.
        Branch![b"DELay";
            Leaf!(default b"DELay" => &Cmd::<D>::both(
                |d, p| {
                    d.trigger_delay = TRIGGER_DELAY_LIMITS.setting(p)?;
                    d.trigger_delay_auto = false;
                    Ok(())
                },
                |d, p, r| respond_setting(r, p, TRIGGER_DELAY_LIMITS, d.trigger_delay)
            )),
            Leaf!(b"AUTO" => &Cmd::<D>::flag(
                |d, on| d.trigger_delay_auto = on,
                |d| d.trigger_delay_auto
            ))
        ],
        Leaf!(b"SLOPe" => keyword_setting!(D, SLOPES, trigger_slope_positive)),
        Leaf!(b"LEVel" => &Cmd::<D>::both(
            |d, p| {
                d.trigger_level = TRIGGER_LEVEL_LIMITS.setting(p)?;
                Ok(())
            },
            |d, p, r| respond_setting(r, p, TRIGGER_LEVEL_LIMITS, d.trigger_level)
        ))
    ],
    Branch![default b"SENSe";
        Branch![b"FUNCtion";
            Leaf!(default b"ON" => &Cmd::ev_text(func_ev, |d| quoted(d.function.name())))
        ],
        Branch![b"VOLTage";
            Branch![default b"DC";
                Leaf!(b"NPLCycles" => nplc!(Function::VoltDc)),
                Leaf!(b"RESolution" => resolution!(Function::VoltDc)),
                aperture!(Function::VoltDc),
                range!(Function::VoltDc),
                zero!(Function::VoltDc),
                Branch![b"IMPedance";
                    Leaf!(b"AUTO" => &Cmd::<D>::flag(|d, on| d.impedance_auto = on, |d| d.impedance_auto))
                ]
            ],
            // The real meter has no NPLC, aperture, resolution or auto-zero for ac: those headers
            // are undefined (-113) here as there.
            Branch![b"AC";
                range!(Function::VoltAc)
            ]
        ],
        Branch![b"CURRent";
            Branch![default b"DC";
                Leaf!(b"NPLCycles" => nplc!(Function::CurrDc)),
                Leaf!(b"RESolution" => resolution!(Function::CurrDc)),
                aperture!(Function::CurrDc),
                range!(Function::CurrDc),
                zero!(Function::CurrDc)
            ],
            Branch![b"AC";
                range!(Function::CurrAc)
            ]
        ],
        Branch![b"RESistance";
            Leaf!(b"NPLCycles" => nplc!(Function::Res)),
            Leaf!(b"RESolution" => resolution!(Function::Res)),
            aperture!(Function::Res),
            range!(Function::Res),
            zero!(Function::Res)
        ],
        // No `ZERO:AUTO`: 4-wire ohms always auto-zero (Truevolt manual lists the command for dc
        // volts, dc current and 2-wire ohms only).
        Branch![b"FRESistance";
            Leaf!(b"NPLCycles" => nplc!(Function::FRes)),
            Leaf!(b"RESolution" => resolution!(Function::FRes)),
            aperture!(Function::FRes),
            range!(Function::FRes)
        ]
    ]
];

/// `CONFigure:<function> [range|MIN|MAX|DEF|AUTO[,resolution]]`: selects the function.
fn conf_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    let range = configure_args(f, p)?;
    d.configure(f, range);
    Ok(())
}

/// `CONFigure?`: the function in use, its range and resolution as a quoted string,
/// `"VOLT +1.000000E+01,+3.000000E-06"` (Truevolt manual, `CONFigure?`: the function's short
/// form, then range and resolution). The range is the one `RANGe?` answers, the resolution the
/// one `RESolution?` answers; for the ac functions, which have no resolution setting, the
/// resolution their reading time gives is unconfirmed. Seven significant digits, as in the
/// manual's example and the 34401A's.
fn conf_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    let f = d.function;
    let text = format!(
        "{} {},{}",
        f.name(),
        format_sci(d.of(f).range, 6, true),
        format_sci(d.resolution_now(f), 6, true)
    );
    respond_text(r, &quoted(&text))
}

/// `MEASure:<function>? [range|MIN|MAX|DEF|AUTO[,resolution]]`: configure, then read.
fn meas_q(
    d: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
    f: Function,
) -> ScpiResult<()> {
    let range = configure_args(f, p)?;
    d.configure(f, range);
    read_q(d, p, r)
}

/// `READ?`: fill reading memory and send it.
fn read_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    d.acquire();
    let readings = d.memory.clone();
    d.send(r, &readings, false)
}

/// `FETCh?`: send reading memory again; `-230` when it is empty.
fn fetch_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    if d.memory.is_empty() {
        return Err(ErrorCode::DataCorruptOrStale.into());
    }
    let readings = d.memory.clone();
    d.send(r, &readings, false)
}

/// `R? [max]`: sends up to `max` readings from memory as a block and erases them.
fn r_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
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
    let n = max.min(d.memory.len());
    let taken: Vec<f64> = d.memory.drain(..n).collect();
    d.send(r, &taken, true)
}

/// `FORMat[:DATA] ASCii[,n]|REAL[,32|64]`.
fn form_data_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let kind = choice(
        p.next_token()?,
        &[(b"ASCii", DataFormat::Ascii), (b"REAL", DataFormat::Real64)],
    )?;
    let width = p.next_optional_token()?;
    no_more(p)?;
    d.data_format = match (kind, width) {
        (DataFormat::Ascii, None) => DataFormat::Ascii,
        (DataFormat::Ascii, Some(t)) => {
            // The digit count of ASCII format is accepted and ignored (always 9 digits).
            number_in(t, 0.0, 15.0)?;
            DataFormat::Ascii
        }
        (_, None) => DataFormat::Real64,
        (_, Some(t)) => match number_in(t, 0.0, 64.0)? {
            32.0 => DataFormat::Real32,
            64.0 => DataFormat::Real64,
            _ => return Err(ErrorCode::IllegalParameterValue.into()),
        },
    };
    Ok(())
}

fn samp_count_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    d.samples = count_setting(p)?;
    Ok(())
}

fn samp_count_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    respond_count(r, p, d.samples)
}

fn trig_count_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    d.triggers = count_setting(p)?;
    Ok(())
}

fn trig_count_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    respond_count(r, p, d.triggers)
}

/// `TRIGger:SOURce IMMediate|BUS|EXTernal|INTernal`: kept for the query; the simulator triggers
/// every source at once.
fn trig_source_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    d.trigger_source = one_of(
        p,
        &[
            (b"IMMediate", "IMM"),
            (b"BUS", "BUS"),
            (b"EXTernal", "EXT"),
            (b"INTernal", "INT"),
        ],
    )?;
    Ok(())
}

/// `[SENSe:]<function>:NPLCycles <n>|MIN|MAX|DEF`; selecting NPLC turns the aperture off.
fn nplc_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    let nplc = NPLC_LIMITS.parse(p.next_token()?, |t| nplc_step(f64::try_from(t)?))?;
    no_more(p)?;
    let s = d.of_mut(f);
    s.nplc = nplc;
    s.aperture_on = false;
    Ok(())
}

/// `[SENSe:]FUNCtion[:ON] "<function>"`: one of the functions of [`Function`]; others (the real
/// meter's frequency, temperature, … which the simulator lacks) are refused with -224 "Illegal
/// parameter value". Unconfirmed: reading memory is kept across the change (the manual page on
/// when memory is cleared was not found), so `DATA:LAST?` then names the new function's unit.
fn func_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name: &[u8] = p.next_data()?;
    no_more(p)?;
    d.function = Function::parse(name).ok_or(Error::new(ErrorCode::IllegalParameterValue))?;
    Ok(())
}

/// `[SENSe:]<function>:RESolution <value>|MIN|MAX|DEF`: the meter picks the shortest
/// integration time whose resolution on the function's range is at least this fine (MIN is the
/// finest, MAX the coarsest).
fn resolution_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    let t = p.next_token()?;
    no_more(p)?;
    let step = match t {
        t @ Token::CharacterProgramData(_) => choice(
            t,
            &[
                (b"MINimum", NPLC_STEPS.len() - 1),
                (b"MAXimum", 0),
                (b"DEFault", NPLC_STEPS.len() - 2),
            ],
        )?,
        t => {
            let wanted = quantity(f, t)?;
            if !(wanted.is_finite() && wanted > 0.0) {
                return Err(ErrorCode::DataOutOfRange.into());
            }
            let range = d.of(f).range;
            d.resolution
                .iter()
                .position(|k| k * range <= wanted * (1.0 + 1e-6))
                .ok_or(Error::new(ErrorCode::DataOutOfRange))?
        }
    };
    let s = d.of_mut(f);
    s.nplc = NPLC_STEPS.get(step).copied().unwrap_or(DEFAULT_NPLC);
    s.aperture_on = false;
    Ok(())
}

fn resolution_q(
    d: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
    f: Function,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, &format_reading(d.resolution_now(f)))
}

/// `[SENSe:]<function>:APERture <seconds>|MIN|MAX|DEF`: also enables the aperture.
fn aperture_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    let aperture = APERTURE_LIMITS.setting(p)?;
    let s = d.of_mut(f);
    s.aperture = aperture;
    s.aperture_on = true;
    Ok(())
}

fn aperture_q(
    d: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
    f: Function,
) -> ScpiResult<()> {
    respond_setting(r, p, APERTURE_LIMITS, d.of(f).aperture)
}

/// `DISPlay:TEXT[:DATA] "<text>"`: shown until `DISPlay:TEXT:CLEar`.
fn disp_text_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let text: &[u8] = p.next_data()?;
    no_more(p)?;
    if text.len() > DISPLAY_TEXT_MAX {
        return Err(ErrorCode::TooMuchData.into());
    }
    if !text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(ErrorCode::IllegalParameterValue.into());
    }
    // The parser hands string data over with its doubled quotes still doubled.
    d.display_text = String::from_utf8_lossy(text).replace("\"\"", "\"");
    Ok(())
}

/// `text` as SCPI string response data: in double quotes, a quote doubled.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn nplc_q(
    d: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
    f: Function,
) -> ScpiResult<()> {
    respond_setting(r, p, NPLC_LIMITS, d.of(f).nplc)
}

/// `[SENSe:]<function>:RANGe[:UPPer] <range>|MIN|MAX|DEF`: a fixed range, autoranging off. Like
/// `CONFigure` it clears reading memory and sets one sample, one trigger, but it does not select
/// the function.
fn range_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    let range = f
        .range_limits()
        .parse(p.next_token()?, |t| range_for(f, quantity(f, t)?))?;
    no_more(p)?;
    d.set_range(f, RangeArg::Fixed(range));
    d.memory.clear();
    d.samples = 1;
    d.triggers = 1;
    Ok(())
}

fn range_q(
    d: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
    f: Function,
) -> ScpiResult<()> {
    respond_setting(r, p, f.range_limits(), d.of(f).range)
}

/// `[SENSe:]<function>:RANGe:AUTO ON|OFF|ONCE`. ONCE picks the range for the present input and
/// then holds it.
fn range_auto_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    match on_off_once(p)? {
        Some(on) => d.of_mut(f).auto_range = on,
        None => {
            // The input without its noise: the standard in dc volts, nothing in the ac and
            // current functions, an overload in ohms (see `input`).
            let value = match f {
                Function::VoltDc => d.standard.params.artefact_value(d.standard.days()),
                Function::Res | Function::FRes => OVERLOAD,
                _ => 0.0,
            };
            let s = d.of_mut(f);
            s.range = autorange(f, value);
            s.auto_range = false;
        }
    }
    Ok(())
}

/// `[SENSe:]<function>:ZERO:AUTO ON|OFF|ONCE`; accepted and reported, with no effect on the
/// simulated readings. ONCE zeroes once and leaves auto-zero off, as the meter does.
fn zero_auto_ev(d: &mut D, p: &mut Parameters<'_, '_>, f: Function) -> ScpiResult<()> {
    d.of_mut(f).auto_zero = on_off_once(p)?.unwrap_or(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::{ManualClock, SimIdentity, SimParams};
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

    /// The generic DMM on a manual clock.
    fn meter(params: SimParams) -> (D, ManualClock) {
        let clock = ManualClock::new();
        let setup = Setup {
            params,
            clock: Arc::new(clock.clone()),
            sent: Arc::new(AtomicU64::new(0)),
            serial: "SIMTEST01".to_owned(),
        };
        (ScpiDmm::new(setup, PersonalityId::GenericScpiDmm), clock)
    }

    /// Runs one program message and returns the reply, as the personality does but leaving the
    /// busy time for the test to take.
    fn exec(d: &mut D, message: &[u8]) -> Vec<u8> {
        run(&TREE, d, message)
    }

    /// Sends `cmd` LF-terminated and returns the reply as text.
    fn q(dmm: &mut D, cmd: &str) -> String {
        let mut message = cmd.as_bytes().to_vec();
        message.push(b'\n');
        String::from_utf8(exec(dmm, &message)).unwrap()
    }

    /// Drains the error queue, oldest first, without the final `0,"No error"`.
    fn errors(dmm: &mut D) -> Vec<String> {
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
            "CONF:FREQ",
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
        assert_eq!(exec(&mut d, b"*OPC?\n"), b"1\n");
        assert_eq!(exec(&mut d, b"*OPC?\r\n"), b"1\n");
        assert_eq!(exec(&mut d, b"*OPC?"), b"1\n");
        assert_eq!(exec(&mut d, b"  \t*OPC?\r\n"), b"1\n");
        assert_eq!(exec(&mut d, b"\n"), b"");
        assert_eq!(exec(&mut d, b"read?\n"), b"+1.00000000E+01\n");
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
        assert_eq!(d.standard.sent(), 0);
        q(&mut d, "FETC?;READ?;:MEAS:VOLT:DC?");
        assert_eq!(d.standard.sent(), 3);
        q(&mut d, "CONF:VOLT:DC;:FETC?");
        assert_eq!(d.standard.sent(), 3);
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
        assert!((d.standard.days() - 10.0).abs() < 1e-12);
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
    fn truevolt(id: PersonalityId) -> D {
        ScpiDmm::new(crate::personality::tests::setup(false).0, id)
    }

    #[test]
    fn truevolt_identities_come_from_the_personality_table() {
        use crate::personality::tests::{ask, setup};
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
    fn options_licences_and_line_frequency() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        assert_eq!(q(&mut d, "*OPT?"), "0,0,DIG,0,0\n");
        assert_eq!(q(&mut d, "SYST:LIC:CAT?"), "\"DIG\"\n");
        assert_eq!(q(&mut d, "SYSTem:LFRequency?"), "+50\n");
        // Query-only: the event forms are undefined headers, and nothing is sent.
        assert_eq!(q(&mut d, "*OPT"), "");
        assert_eq!(q(&mut d, "SYST:LFR 60"), "");
        assert_eq!(errors(&mut d).len(), 2);
    }

    #[test]
    fn function_is_quoted_and_unknown_functions_refused() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        assert_eq!(q(&mut d, "SENS:FUNC?"), "\"VOLT\"\n");
        assert_eq!(q(&mut d, "FUNC \"VOLT:DC\";FUNC?"), "\"VOLT\"\n");
        assert_eq!(q(&mut d, "SENSe:FUNCtion:ON \"VOLT\""), "");
        assert_eq!(q(&mut d, "FUNC \"FREQ\""), "");
        assert_eq!(q(&mut d, "FUNC VOLT"), "");
        assert_eq!(
            errors(&mut d),
            [
                "-224,\"Illegal parameter value\"",
                "-104,\"Data type error\""
            ]
        );
    }

    // --- Measurement functions --------------------------------------------------------------

    /// The bounds of a noise reading on `range`: ten standard deviations.
    fn noise_bound(range: f64) -> f64 {
        10.0 * NOISE_OF_RANGE * range
    }

    #[test]
    fn function_switches_and_answers_the_short_form() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        for (name, short) in [
            ("VOLT:AC", "VOLT:AC"),
            ("voltage:ac", "VOLT:AC"),
            ("CURRent", "CURR"),
            ("curr:dc", "CURR"),
            ("CURR:AC", "CURR:AC"),
            ("RESistance", "RES"),
            ("FRES", "FRES"),
            ("VOLTage:DC", "VOLT"),
        ] {
            assert_eq!(
                q(&mut d, &format!("FUNC \"{name}\";FUNC?")),
                format!("\"{short}\"\n"),
                "{name}"
            );
        }
        q(&mut d, "FUNC \"CURR\"");
        for bad in ["FREQ", "RES:AC", "VOLT:AC:DC", "", "VOL", "CURRENTS"] {
            assert_eq!(q(&mut d, &format!("FUNC \"{bad}\"")), "", "{bad}");
            assert_eq!(
                errors(&mut d),
                ["-224,\"Illegal parameter value\""],
                "{bad}"
            );
        }
        // A refused function leaves the one in use.
        assert_eq!(q(&mut d, "FUNC?"), "\"CURR\"\n");
        q(&mut d, "*RST");
        assert_eq!(q(&mut d, "FUNC?"), "\"VOLT\"\n");
    }

    #[test]
    fn each_function_keeps_its_own_settings() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        q(
            &mut d,
            "VOLT:NPLC 1;:CURR:NPLC 0.2;:RES:NPLC 100;:FRES:APER 0.01",
        );
        q(
            &mut d,
            "VOLT:RANG 1;:CURR:RANG 1e-3;:RES:RANG 10e3;:VOLT:AC:RANG 100",
        );
        q(&mut d, "CURR:ZERO:AUTO OFF");
        assert!(errors(&mut d).is_empty());
        for f in ["VOLT", "VOLT:AC", "CURR", "CURR:AC", "RES", "FRES", "VOLT"] {
            q(&mut d, &format!("FUNC \"{f}\""));
            assert_eq!(q(&mut d, "VOLT:NPLC?"), "+1.00000000E+00\n", "{f}");
            assert_eq!(q(&mut d, "CURR:NPLC?"), "+2.00000000E-01\n", "{f}");
            assert_eq!(q(&mut d, "RES:NPLC?"), "+1.00000000E+02\n", "{f}");
            assert_eq!(q(&mut d, "FRES:NPLC?"), "+1.00000000E+01\n", "{f}");
            assert_eq!(q(&mut d, "FRES:APER:ENAB?"), "1\n", "{f}");
            assert_eq!(q(&mut d, "RES:APER:ENAB?"), "0\n", "{f}");
            assert_eq!(q(&mut d, "FRES:APER?"), "+1.00000000E-02\n", "{f}");
            assert_eq!(q(&mut d, "VOLT:RANG?"), "+1.00000000E+00\n", "{f}");
            assert_eq!(q(&mut d, "CURR:RANG?"), "+1.00000000E-03\n", "{f}");
            assert_eq!(q(&mut d, "RES:RANG?"), "+1.00000000E+04\n", "{f}");
            assert_eq!(q(&mut d, "VOLT:AC:RANG?"), "+1.00000000E+02\n", "{f}");
            assert_eq!(q(&mut d, "CURR:AC:RANG:AUTO?"), "1\n", "{f}");
            assert_eq!(q(&mut d, "VOLT:AC:RANG:AUTO?"), "0\n", "{f}");
            assert_eq!(q(&mut d, "CURR:ZERO:AUTO?"), "0\n", "{f}");
            assert_eq!(q(&mut d, "VOLT:ZERO:AUTO?"), "1\n", "{f}");
            assert_eq!(q(&mut d, "RES:ZERO:AUTO?"), "1\n", "{f}");
        }
        // `*RST` returns every function to its defaults.
        q(&mut d, "*RST");
        assert_eq!(q(&mut d, "RES:NPLC?"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "CURR:ZERO:AUTO?"), "1\n");
        assert_eq!(q(&mut d, "FRES:APER:ENAB?"), "0\n");
    }

    #[test]
    fn each_function_has_its_range_table() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        for (cmd, reply) in [
            ("VOLT:AC:RANG? MAX", "+7.50000000E+02"),
            ("VOLT:AC:RANG? MIN", "+1.00000000E-01"),
            ("CURR:RANG? MIN", "+1.00000000E-06"),
            ("CURR:RANG? MAX", "+3.00000000E+00"),
            ("CURR:AC:RANG? MIN", "+1.00000000E-04"),
            ("RES:RANG? MAX", "+1.00000000E+09"),
            ("FRES:RANG? MIN", "+1.00000000E+02"),
        ] {
            assert_eq!(q(&mut d, cmd), format!("{reply}\n"), "{cmd}");
        }
        // A value selects the smallest range that covers it, in the function's own unit.
        for (cmd, query, reply) in [
            ("CURR:RANG 0.002", "CURR:RANG?", "+1.00000000E-02"),
            ("CURR:RANG 20 UA", "CURR:RANG?", "+1.00000000E-04"),
            ("RES:RANG 5 KOHM", "RES:RANG?", "+1.00000000E+04"),
            ("FRES:RANG 2 MOHM", "FRES:RANG?", "+1.00000000E+07"),
            ("VOLT:AC:RANG 200", "VOLT:AC:RANG?", "+7.50000000E+02"),
        ] {
            q(&mut d, cmd);
            assert_eq!(q(&mut d, query), format!("{reply}\n"), "{cmd}");
        }
        for cmd in ["CURR:RANG 5", "VOLT:AC:RANG 800", "RES:RANG 2e9"] {
            q(&mut d, cmd);
            assert_eq!(errors(&mut d), ["-222,\"Data out of range\""], "{cmd}");
        }
        q(&mut d, "CURR:RANG 1 V");
        assert_eq!(errors(&mut d), ["-131,\"Invalid suffix\""]);
    }

    #[test]
    fn ac_functions_have_no_integration_settings() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        for cmd in [
            "VOLT:AC:NPLC 1",
            "VOLT:AC:NPLC?",
            "CURR:AC:NPLC?",
            "VOLT:AC:APER 0.1",
            "CURR:AC:APER:ENAB?",
            "VOLT:AC:RES?",
            "VOLT:AC:ZERO:AUTO OFF",
            "CURR:AC:ZERO:AUTO?",
            // Four-wire ohms always auto-zero.
            "FRES:ZERO:AUTO OFF",
        ] {
            assert_eq!(q(&mut d, cmd), "", "{cmd}");
            assert_eq!(errors(&mut d), ["-113,\"Undefined header\""], "{cmd}");
        }
    }

    #[test]
    fn readings_follow_the_function() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "FUNC \"VOLT:AC\"");
        let v = reading(&q(&mut d, "READ?"));
        assert!((0.0..noise_bound(0.1)).contains(&v), "{v}");
        assert_eq!(q(&mut d, "VOLT:AC:RANG?"), "+1.00000000E-01\n");
        assert!(q(&mut d, "DATA:LAST?").ends_with(" VAC\n"));
        q(&mut d, "FUNC \"CURR\"");
        let v = reading(&q(&mut d, "READ?"));
        assert!(v.abs() < noise_bound(1e-6), "{v}");
        assert_eq!(q(&mut d, "CURR:RANG?"), "+1.00000000E-06\n");
        assert!(q(&mut d, "DATA:LAST?").ends_with(" ADC\n"));
        // On a fixed range the noise is that range's.
        q(&mut d, "CURR:AC:RANG 1;:FUNC \"CURR:AC\"");
        let v = reading(&q(&mut d, "READ?"));
        assert!((0.0..noise_bound(1.0)).contains(&v), "{v}");
        for f in ["RES", "FRES"] {
            q(&mut d, &format!("FUNC \"{f}\""));
            assert_eq!(q(&mut d, "READ?"), "+9.90000000E+37\n", "{f}");
            assert_eq!(q(&mut d, "DATA:LAST?"), "+9.90000000E+37 OHM\n", "{f}");
            assert_eq!(q(&mut d, &format!("{f}:RANG?")), "+1.00000000E+09\n", "{f}");
        }
        q(&mut d, "FUNC \"VOLT\"");
        assert_eq!(q(&mut d, "READ?"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "DATA:LAST?"), "+1.00000000E+01 VDC\n");
        assert!(errors(&mut d).is_empty());
    }

    #[test]
    fn configure_and_measure_select_the_function() {
        let (mut d, _) = meter(ideal());
        q(&mut d, "CONF:RES 1e4");
        assert_eq!(q(&mut d, "FUNC?"), "\"RES\"\n");
        assert_eq!(q(&mut d, "RES:RANG?;RANG:AUTO?"), "+1.00000000E+04;0\n");
        q(&mut d, "CONF:CURR 2 MA");
        assert_eq!(q(&mut d, "FUNC?;:CURR:RANG?"), "\"CURR\";+1.00000000E-02\n");
        let v = reading(&q(&mut d, "MEAS:CURR:AC?"));
        assert!((0.0..noise_bound(1e-4)).contains(&v), "{v}");
        assert_eq!(q(&mut d, "FUNC?"), "\"CURR:AC\"\n");
        assert_eq!(q(&mut d, "MEAS:FRES? 100"), "+9.90000000E+37\n");
        assert_eq!(q(&mut d, "FUNC?"), "\"FRES\"\n");
        let v = reading(&q(&mut d, "MEAS:VOLT:AC? 10"));
        assert!((0.0..noise_bound(10.0)).contains(&v), "{v}");
        assert_eq!(q(&mut d, "MEAS:VOLT?"), "+1.00000000E+01\n");
        assert_eq!(q(&mut d, "FUNC?"), "\"VOLT\"\n");
        assert!(errors(&mut d).is_empty());
        q(&mut d, "CONF:CURR 1 V");
        assert_eq!(errors(&mut d), ["-131,\"Invalid suffix\""]);
        // A refused CONFigure changes nothing.
        assert_eq!(q(&mut d, "FUNC?"), "\"VOLT\"\n");
    }

    #[test]
    fn configure_query_names_function_range_and_resolution() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        // Range and resolution are the ones `RANGe?` and `RESolution?` answer.
        let agrees = |d: &mut D, f: &str, sense: &str| {
            let range: f64 = q(d, &format!("{sense}:RANG?")).trim().parse().unwrap();
            let res: f64 = q(d, &format!("{sense}:RES?")).trim().parse().unwrap();
            let want = format!(
                "\"{f} {},{}\"\n",
                format_sci(range, 6, true),
                format_sci(res, 6, true)
            );
            assert_eq!(q(d, "CONF?"), want);
        };
        agrees(&mut d, "VOLT", "VOLT");
        assert!(q(&mut d, "CONF?").starts_with("\"VOLT +1.000000E+01,"));
        // 34465A at 1 NPLC: 0.3 ppm of the range.
        q(&mut d, "CONF:VOLT:DC 1;:VOLT:NPLC 1");
        assert_eq!(q(&mut d, "CONF?"), "\"VOLT +1.000000E+00,+3.000000E-07\"\n");
        q(&mut d, "CONF:RES 1e3");
        agrees(&mut d, "RES", "RES");
        q(&mut d, "FUNC \"FRES\";:FRES:RANG 1e6");
        agrees(&mut d, "FRES", "FRES");
        q(&mut d, "CONF:CURR 1e-3");
        agrees(&mut d, "CURR", "CURR");
        q(&mut d, "CONF:CURR:AC");
        assert!(q(&mut d, "CONFigure?").starts_with("\"CURR:AC +"));
        // No event form, and no parameters.
        q(&mut d, "CONF");
        q(&mut d, "CONF? 1");
        assert_eq!(
            errors(&mut d),
            [
                "-113,\"Undefined header\"",
                "-108,\"Parameter not allowed\""
            ]
        );
    }

    #[test]
    fn resolution_and_range_once_follow_the_function() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        // 34470A at 1 NPLC: 0.1 ppm of range; at 10 NPLC: 0.03 ppm.
        q(&mut d, "CURR:RANG 1e-3;NPLC 1");
        assert_eq!(q(&mut d, "CURR:RES?"), "+1.00000000E-10\n");
        q(&mut d, "RES:RANG 1e3");
        assert_eq!(q(&mut d, "RES:RES?"), "+3.00000000E-05\n");
        q(&mut d, "RES:RES 1e-4");
        assert_eq!(q(&mut d, "RES:NPLC?"), "+1.00000000E+00\n");
        q(
            &mut d,
            "CURR:RANG:AUTO ONCE;:RES:RANG:AUTO ONCE;:VOLT:AC:RANG:AUTO ONCE",
        );
        assert_eq!(q(&mut d, "CURR:RANG?;RANG:AUTO?"), "+1.00000000E-06;0\n");
        assert_eq!(q(&mut d, "RES:RANG?"), "+1.00000000E+09\n");
        assert_eq!(q(&mut d, "VOLT:AC:RANG?"), "+1.00000000E-01\n");
        assert!(errors(&mut d).is_empty());
    }

    #[test]
    fn resolution_follows_range_and_nplc_and_selects_nplc() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        q(&mut d, "VOLT:RANG 10;NPLC 1");
        assert_eq!(q(&mut d, "VOLT:RES?"), "+1.00000000E-06\n");
        q(&mut d, "VOLT:NPLC 100");
        assert_eq!(q(&mut d, "VOLT:DC:RES?"), "+1.00000000E-07\n");
        // A resolution picks the shortest integration that reaches it.
        q(&mut d, "VOLT:DC:RES 3e-6");
        assert_eq!(q(&mut d, "VOLT:NPLC?"), "+2.00000000E-01\n");
        q(&mut d, "VOLT:RES MAX");
        assert_eq!(q(&mut d, "VOLT:NPLC?"), "+1.00000000E-03\n");
        let mut e = truevolt(PersonalityId::Keysight34465a);
        q(&mut e, "VOLT:RANG 10;NPLC 1");
        assert_eq!(q(&mut e, "VOLT:RES?"), "+3.00000000E-06\n");
        q(&mut e, "VOLT:RES 1e-9");
        assert_eq!(errors(&mut e), ["-222,\"Data out of range\""]);
    }

    #[test]
    fn aperture_and_nplc_exclude_each_other() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        assert_eq!(
            q(&mut d, "VOLT:APER:ENAB?;:VOLT:APER?"),
            "0;+1.00000000E-01\n"
        );
        q(&mut d, "VOLT:APER 0.2");
        assert_eq!(
            q(&mut d, "VOLT:APER:ENAB?;:VOLT:APER?"),
            "1;+2.00000000E-01\n"
        );
        // 0.2 s is 10 PLC at 50 Hz.
        assert_eq!(q(&mut d, "VOLT:RES?"), "+1.00000000E-06\n");
        q(&mut d, "VOLT:NPLC 1");
        assert_eq!(q(&mut d, "VOLT:APER:ENAB?"), "0\n");
        q(&mut d, "VOLT:APER:ENAB ON;:VOLT:APER 2");
        assert_eq!(q(&mut d, "VOLT:APER:ENAB?"), "1\n");
        assert_eq!(errors(&mut d), ["-222,\"Data out of range\""]);
        q(&mut d, "*RST");
        assert_eq!(q(&mut d, "VOLT:APER:ENAB?"), "0\n");
    }

    #[test]
    fn trigger_delay_slope_level_and_sample_timer() {
        let mut d = truevolt(PersonalityId::Keysight34470a);
        assert_eq!(q(&mut d, "TRIG:DEL:AUTO?"), "1\n");
        q(&mut d, "TRIG:DEL 0.01");
        assert_eq!(q(&mut d, "TRIG:DEL?;DEL:AUTO?"), "+1.00000000E-02;0\n");
        assert_eq!(q(&mut d, "TRIG:DEL? MAX"), "+3.60000000E+03\n");
        q(&mut d, "TRIG:DEL:AUTO ON;:TRIG:SLOP POS;LEV -2.5");
        assert_eq!(
            q(&mut d, "TRIG:DEL:AUTO?;:TRIG:SLOP?;LEV?"),
            "1;POS;-2.50000000E+00\n"
        );
        assert_eq!(q(&mut d, "SAMP:SOUR?;TIM?"), "IMM;+1.00000000E+00\n");
        q(&mut d, "SAMP:SOUR TIM;TIM 0.5");
        assert_eq!(q(&mut d, "SAMP:SOUR?;TIM?"), "TIM;+5.00000000E-01\n");
        q(&mut d, "TRIG:DEL -1");
        q(&mut d, "TRIG:SLOP UP");
        assert_eq!(
            errors(&mut d),
            [
                "-222,\"Data out of range\"",
                "-224,\"Illegal parameter value\""
            ]
        );
        q(&mut d, "*RST");
        assert_eq!(q(&mut d, "TRIG:SLOP?;:SAMP:SOUR?"), "NEG;IMM\n");
    }

    #[test]
    fn display_state_and_text() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        assert_eq!(q(&mut d, "DISP?;DISP:TEXT?"), "1;\"\"\n");
        q(&mut d, "DISPLAY:TEXT \"say \"\"hi\"\"\";:DISP OFF");
        assert_eq!(q(&mut d, "DISP:STAT?;TEXT?"), "0;\"say \"\"hi\"\"\"\n");
        q(&mut d, "DISPlay:TEXT:CLEar");
        assert_eq!(q(&mut d, "DISP:TEXT:DATA?"), "\"\"\n");
        q(
            &mut d,
            &format!("DISP:TEXT \"{}\"", "x".repeat(DISPLAY_TEXT_MAX + 1)),
        );
        assert_eq!(errors(&mut d), ["-223,\"Too much data\""]);
        assert_eq!(q(&mut d, "ABOR;*OPC?"), "1\n");
    }

    #[test]
    fn real_formats_send_definite_length_blocks() {
        let mut d = truevolt(PersonalityId::Keysight34465a);
        q(&mut d, "FORM:DATA REAL,64;:SAMP:COUN 2");
        assert_eq!(q(&mut d, "FORM:DATA?"), "REAL,64\n");
        let reply = exec(&mut d, b"READ?\n");
        let mut expected = b"#216".to_vec();
        expected.extend(10.0f64.to_be_bytes());
        expected.extend(10.0f64.to_be_bytes());
        expected.push(b'\n');
        assert_eq!(reply, expected);
        q(&mut d, "FORM:BORD SWAP;:FORM:DATA REAL,32");
        assert_eq!(q(&mut d, "FORM:BORD?"), "SWAP\n");
        let reply = exec(&mut d, b"FETC?\n");
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
            d.standard.params.nominal = f64::from(value);
            q(&mut d, "FORM:DATA REAL,32;:VOLT:RANG:AUTO ON");
            let mut block = b"#14".to_vec();
            block.extend(value.to_be_bytes());
            let mut expected = block.clone();
            expected.push(b'\n');
            assert_eq!(exec(&mut d, b"READ?"), expected);
            assert_eq!(exec(&mut d, b"FETC?;"), expected);
            assert_eq!(exec(&mut d, b"FETC?;BOGUS"), expected);
            assert_eq!(exec(&mut d, b"FETC?;VOLT:NPLC? 7"), expected);
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
            Just("*OPT?"),
            Just("SYST:LFR?"),
            Just("SYST:LIC:CAT?"),
            Just("FUNC"),
            Just(" \"CURR:AC\""),
            Just(" \"FRES\""),
            Just("CURR:"),
            Just("RES:"),
            Just("VOLT:AC:"),
            Just("VOLT:RES"),
            Just("VOLT:APER"),
            Just(":ENAB"),
            Just("TRIG:DEL"),
            Just("TRIG:SLOP POS"),
            Just("TRIG:LEV"),
            Just("SAMP:SOUR TIM"),
            Just("SAMP:TIM"),
            Just("DISP:TEXT"),
            Just(":CLE"),
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
            d.standard.params.nominal = nominal;
            let order = if swapped { "SWAP" } else { "NORM" };
            q(&mut d, &format!("FORM:DATA REAL,64;:FORM:BORD {order};:SAMP:COUN {count}"));
            let reply = exec(&mut d, b"READ?");
            // Parse the block as a client would: header digits, then exactly that many bytes.
            prop_assert_eq!(reply[0], b'#');
            let n = usize::from(reply[1] - b'0');
            let len: usize = std::str::from_utf8(&reply[2..2 + n]).unwrap().parse().unwrap();
            prop_assert_eq!(len, 8 * count as usize);
            let body = &reply[2 + n..2 + n + len];
            prop_assert_eq!(&reply[2 + n + len..], b"\n");
            let shown = d.apply_range(nominal);
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
                let reply = exec(&mut d, line);
                prop_assert!(well_framed(&reply), "{:?} → {:?}", line, reply);
            }
            // Still a working meter afterwards.
            q(&mut d, "*CLS");
            prop_assert_eq!(q(&mut d, "*OPC?"), "1\n");
        }

        #[test]
        fn function_names_parse_in_any_case_and_garbage_is_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..16),
            index in 0..Function::ALL.len(),
            lower in any::<bool>(),
        ) {
            // Arbitrary bytes never panic, and what parses names itself again.
            if let Some(f) = Function::parse(&bytes) {
                prop_assert_eq!(Function::parse(f.name().as_bytes()), Some(f));
            }
            let f = Function::ALL[index];
            let name = if lower { f.name().to_ascii_lowercase() } else { f.name().to_owned() };
            prop_assert_eq!(Function::parse(name.as_bytes()), Some(f));
        }

        #[test]
        fn handle_line_never_panics_on_scpi_soup(
            lines in proptest::collection::vec(scpi_soup(), 1..8)
        ) {
            let (mut d, _) = meter(SimParams::default());
            for line in &lines {
                let reply = exec(&mut d, line);
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
