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

use std::collections::BTreeMap;
use std::time::Duration;

use scpi::error::{ErrorCode, Result as ScpiResult};
use scpi::tree::prelude::*;
use scpi::{Branch, Leaf, Root};

use super::model::{MAINS_HZ, MAX_READINGS_PER_MESSAGE, Standard, clean_field};
use super::scpi_util::*;
use super::{Personality, PersonalityId, Reply, Setup, sim_firmware};
use crate::sim::format::format_sci;

const DEFAULT_BUFFER_CAP: usize = 100_000;

/// Largest buffer `TRAC:MAKE` will create in the simulator.
const MAX_BUFFER_CAP: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Dcv,
    Res,
    Fres,
}

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

/// The simulated DMM6500.
pub(crate) struct Dmm6500 {
    standard: Standard,
    status: Status,
    serial: String,
    func: Func,
    nplc: f64,
    azero: bool,
    auto_range: bool,
    /// Readings per measurement request (`SENS:COUN`).
    count: u32,
    buffers: BTreeMap<String, Buffer>,
    busy: Duration,
}

impl Device for Dmm6500 {
    fn handle_error(&mut self, err: Error) {
        self.status.push(err);
    }
}

impl ScpiDevice for Dmm6500 {
    fn status(&mut self) -> &mut Status {
        &mut self.status
    }

    fn idn(&self) -> String {
        format!(
            "KEITHLEY INSTRUMENTS,MODEL DMM6500,{},{}",
            self.serial,
            sim_firmware()
        )
    }

    fn reset(&mut self) {
        self.func = Func::Dcv;
        self.nplc = 1.0;
        self.azero = true;
        self.auto_range = true;
        self.count = 1;
        self.buffers.clear();
        for name in ["defbuffer1", "defbuffer2"] {
            self.buffers
                .insert(name.to_owned(), Buffer::new(DEFAULT_BUFFER_CAP));
        }
    }
}

impl Dmm6500 {
    pub(crate) fn new(setup: Setup) -> Self {
        let mut d = Self {
            standard: Standard::new(&setup),
            status: Status::default(),
            serial: clean_field(&setup.serial),
            func: Func::Dcv,
            nplc: 1.0,
            azero: true,
            auto_range: true,
            count: 1,
            buffers: BTreeMap::new(),
            busy: Duration::ZERO,
        };
        d.reset();
        d
    }

    fn sample(&mut self) -> Sample {
        let value = match self.func {
            Func::Dcv => self.standard.volts(),
            Func::Res | Func::Fres => self.standard.scaled(10_000.0),
        };
        let zero = if self.azero { 2.0 } else { 1.0 };
        self.busy = self
            .busy
            .saturating_add(self.standard.busy(self.nplc / MAINS_HZ * zero));
        Sample {
            value,
            at: self.standard.elapsed(),
        }
    }

    fn unit(&self) -> &'static str {
        match self.func {
            Func::Dcv => "Volt DC",
            Func::Res | Func::Fres => "Ohm",
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

type D = Dmm6500;

fn func_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name: &[u8] = p.next_data()?;
    no_more(p)?;
    d.func = match name.to_ascii_uppercase().as_slice() {
        b"VOLT:DC" | b"VOLTAGE:DC" | b"VOLT" | b"VOLTAGE" => Func::Dcv,
        b"RES" | b"RESISTANCE" => Func::Res,
        b"FRES" | b"FRESISTANCE" => Func::Fres,
        _ => return Err(ErrorCode::IllegalParameterValue.into()),
    };
    Ok(())
}

fn func_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(
        r,
        match d.func {
            Func::Dcv => "VOLT:DC",
            Func::Res => "RES",
            Func::Fres => "FRES",
        },
    )
}

fn nplc_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let v = match p.next_token()? {
        t @ Token::CharacterProgramData(_) => choice(
            t,
            &[(b"MINimum", 0.0005), (b"MAXimum", 15.0), (b"DEFault", 1.0)],
        )?,
        t => number_in(t, 0.0005, 15.0)?,
    };
    no_more(p)?;
    d.nplc = v;
    Ok(())
}

fn nplc_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, &format_sci(d.nplc, 9, false))
}

fn azer_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let on: bool = p.next_data()?;
    no_more(p)?;
    d.azero = on;
    Ok(())
}

fn azer_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, if d.azero { "1" } else { "0" })
}

/// Sets a fixed range up to `max` (the function's largest range).
fn rang(d: &mut D, p: &mut Parameters<'_, '_>, max: f64) -> ScpiResult<()> {
    match p.next_token()? {
        t @ Token::CharacterProgramData(_) => {
            choice(t, &[(b"MINimum", ()), (b"MAXimum", ()), (b"DEFault", ())])?;
        }
        t => {
            number_in(t, 0.0, max)?;
        }
    }
    no_more(p)?;
    d.auto_range = false;
    Ok(())
}

fn volt_rang_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    rang(d, p, 1000.0)
}

fn res_rang_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    rang(d, p, 1e9)
}

fn coun_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let n = match p.next_token()? {
        t @ Token::CharacterProgramData(_) => choice(
            t,
            &[(b"MINimum", 1.0), (b"MAXimum", 1e6), (b"DEFault", 1.0)],
        )?,
        t => number_in(t, 1.0, 1e6)?,
    };
    no_more(p)?;
    d.count = n as u32;
    Ok(())
}

fn coun_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, &d.count.to_string())
}

fn rang_auto_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let on: bool = p.next_data()?;
    no_more(p)?;
    d.auto_range = on;
    Ok(())
}

fn rang_auto_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, if d.auto_range { "1" } else { "0" })
}

fn term_q(_: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, "FRON")
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
    let name = D::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    let elements = elements(p)?;
    let s = measure_into(d, &name)?;
    let text = d.fields(&s, &elements).join(",");
    respond_text(r, &text)?;
    d.standard.counted(1);
    Ok(())
}

fn trac_trig_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name = D::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    no_more(p)?;
    measure_into(d, &name).map(|_| ())
}

fn meas_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    d.func = Func::Dcv;
    read_q(d, p, r)
}

fn trac_make_ev(d: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let name = D::buffer_name(p)?.ok_or(Error::new(ErrorCode::MissingParameter))?;
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
    let name = D::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
    no_more(p)?;
    let b = d
        .buffers
        .get_mut(&name)
        .ok_or(Error::new(ErrorCode::IllegalParameterValue))?;
    b.samples.clear();
    Ok(())
}

fn trac_act_q(d: &mut D, p: &mut Parameters<'_, '_>, r: &mut ResponseUnit<'_>) -> ScpiResult<()> {
    let name = D::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
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
    let name = D::buffer_name(p)?.unwrap_or_else(|| "defbuffer1".to_owned());
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

macro_rules! settings {
    ($range:expr) => {
        [
            Leaf!(b"NPLCycles" => &Cmd::both(nplc_ev, nplc_q)),
            Leaf!(b"AZERo" => &Cmd::both(azer_ev, azer_q)),
            Branch![b"RANGe";
                Leaf!(default b"UPPer" => &Cmd::ev($range)),
                Leaf!(b"AUTO" => &Cmd::both(rang_auto_ev, rang_auto_q))
            ]
        ]
    };
}

const VOLT_SETTINGS: [Node<'static, D>; 3] = settings!(volt_rang_ev);
const RES_SETTINGS: [Node<'static, D>; 3] = settings!(res_rang_ev);

const TREE: Node<'static, D> = Root![
    Leaf!(b"*IDN" => &Cmd::q(idn_q::<D>)),
    Leaf!(b"*RST" => &Cmd::ev(rst_ev::<D>)),
    Leaf!(b"*CLS" => &Cmd::ev(cls_ev::<D>)),
    Leaf!(b"*OPC" => &Cmd::both(opc_ev::<D>, opc_q::<D>)),
    Leaf!(b"*WAI" => &Cmd::ev(wai_ev::<D>)),
    Leaf!(b"*ESR" => &Cmd::q(esr_q::<D>)),
    Leaf!(b"*ESE" => &Cmd::both(ese_ev::<D>, ese_q::<D>)),
    Leaf!(b"*SRE" => &Cmd::both(sre_ev::<D>, sre_q::<D>)),
    Leaf!(b"*STB" => &Cmd::q(stb_q::<D>)),
    Leaf!(b"*TST" => &Cmd::q(tst_q::<D>)),
    Branch![b"SYSTem";
        Branch![b"ERRor";
            Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<D>)),
            Leaf!(b"COUNt" => &Cmd::q(syst_err_count_q::<D>))
        ]
    ],
    Branch![default b"SENSe";
        Leaf!(b"FUNCtion" => &Cmd::both(func_ev, func_q)),
        Leaf!(b"COUNt" => &Cmd::both(coun_ev, coun_q)),
        Node::Branch {
            name: b"VOLTage",
            default: false,
            sub: &[Node::Branch {
                name: b"DC",
                default: true,
                sub: &VOLT_SETTINGS,
            }],
        },
        Node::Branch {
            name: b"RESistance",
            default: false,
            sub: &RES_SETTINGS,
        },
        Node::Branch {
            name: b"FRESistance",
            default: false,
            sub: &RES_SETTINGS,
        }
    ],
    Branch![b"ROUTe";
        Leaf!(b"TERMinals" => &Cmd::q(term_q))
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

impl Personality for Dmm6500 {
    fn id(&self) -> PersonalityId {
        PersonalityId::KeithleyDmm6500
    }

    fn handle(&mut self, message: &[u8]) -> Reply {
        let bytes = run(&TREE, self, message);
        let delay = std::mem::take(&mut self.busy);
        Reply::from_scpi(bytes, delay)
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
        self.status.push(ErrorCode::DeviceSpecificError.into());
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
    fn read_into_buffer_and_fetch_it_back() {
        let (s, clock) = setup(true);
        let mut d = D::new(s);
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
    fn user_buffers() {
        let (s, _) = setup(false);
        let mut d = D::new(s);
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
        let mut d = D::new(s);
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
