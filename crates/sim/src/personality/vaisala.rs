//! Vaisala PTU300 pressure, temperature and humidity transmitter on its RS-232 console: not
//! SCPI (no headers or error queue; free-text replies), so hand-written.
//!
//! Commands (case-insensitive, ended by CR, LF or CR LF; replies end in CR LF): `SEND [addr]`
//! (one reading in the output format), `R` (run: a reading now and every `INTV`), `S` (stop),
//! `INTV [n S|MIN|H]`, `SMODE [STOP|RUN|POLL|SEND]`, `FORM [format|/]`, `UNIT P hPa|kPa|Pa|mbar|bar`,
//! `UNIT M|N` (°C or °F), `FTIME`/`FDATE ON|OFF` (time/date before each reading), `SERI` (shows
//! `4800 E 7 1`), `ADDR [n]`, `ERRS` (`PASS`, or `FAIL` and one `Error: …` line per active
//! error; the injected `T meas. error` is cleared once reported), `?` (device information),
//! `VERS`, `RESET`. Anything else: `Unknown command`.
//!
//! The default output is exactly the cheat-sheet's `P= 1033.7 hPa T= 22.2 'C RH= 38.3 %RH`:
//! format `6.1 "P=" P " " U6 3.1 "T=" T " " U3 3.1 "RH=" RH " " U4 \r \n`. In the simulator a
//! length modifier `x.y` prints y decimals after one space, padded with further spaces up to x
//! digits, and `Un` prints the unit and one space when more printable output follows (the
//! manual pads it to n characters), which reproduces the manual's examples as printed.
//! `FORM` understands quantities `P`, `P1`, `P2`, `T`, `RH`, `TD`/`TDF`, modifiers `x.y`, `"…"`,
//! `#t #r #n #rn #xxx` (and `\` forms), `U`/`Un`, `ADDR`, `ERR`, `STAT`, `SN`, `TIME`, `DATE`, `OK`,
//! `CS2`, `CS4`, `CSX`; it refuses anything else with `Invalid format: <token>`.
//!
//! The lab is the simulated one: T follows the lab temperature cycle, RH moves against it,
//! pressure swings ±2 hPa around 1013.25 hPa over 3 simulated days.

use std::fmt;
use std::time::Duration;

use super::model::{Standard, clean_field};
use super::{Personality, Setup, sim_firmware};
use crate::id::PersonalityId;
use crate::reply::Reply;
use crate::wire::Frame;

/// Days from 1970-01-01 to the simulator's first day, 2026-01-01.
const EPOCH_DAYS: i64 = 20_454;

/// A quantity the transmitter measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    P,
    P1,
    P2,
    T,
    Rh,
    Td,
    Tdf,
}

impl Quantity {
    fn name(self) -> &'static str {
        match self {
            Quantity::P => "P",
            Quantity::P1 => "P1",
            Quantity::P2 => "P2",
            Quantity::T => "T",
            Quantity::Rh => "RH",
            Quantity::Td => "TD",
            Quantity::Tdf => "TDF",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_uppercase().as_str() {
            "P" => Quantity::P,
            "P1" => Quantity::P1,
            "P2" => Quantity::P2,
            "T" => Quantity::T,
            "RH" => Quantity::Rh,
            "TD" => Quantity::Td,
            "TDF" => Quantity::Tdf,
            _ => return None,
        })
    }
}

/// One element of an output format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Length(u8, u8),
    Quantity(Quantity),
    Text(String),
    Unit(Option<u8>),
    Byte(u8),
    Addr,
    Err,
    Stat,
    Sn,
    Time,
    Date,
    Ok,
    Cs2,
    Cs4,
    Csx,
}

/// Why a `FORM` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid format element `{token}`")]
pub struct VaisalaFormatError {
    /// The element that is not understood.
    pub token: String,
}

/// A parsed output format (the `FORM` command's argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaisalaFormat {
    items: Vec<Item>,
}

impl VaisalaFormat {
    /// The PTU300 default.
    pub fn default_format() -> Self {
        // The literal below parses; an empty format is the fallback should it ever not.
        Self::parse(r#"6.1 "P=" P " " U6 3.1 "T=" T " " U3 3.1 "RH=" RH " " U4 \r \n"#)
            .unwrap_or(Self { items: Vec::new() })
    }

    /// Parses a formatter string such as `4.2 P " " 3.3 T " " 3.2 RH " " ERR " " CS4 #r #n`.
    pub fn parse(text: &str) -> Result<Self, VaisalaFormatError> {
        let mut items = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let bad = |t: String| VaisalaFormatError { token: t };
        while let Some(&c) = chars.get(i) {
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            if c == '"' || c == '\u{201c}' {
                let close = |d: char| d == '"' || d == '\u{201d}';
                let start = i + 1;
                let end = (start..chars.len())
                    .find(|&j| chars.get(j).is_some_and(|d| close(*d)))
                    .ok_or_else(|| bad(chars.get(i..).unwrap_or_default().iter().collect()))?;
                let s: String = chars.get(start..end).unwrap_or_default().iter().collect();
                if !s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
                    return Err(bad(s));
                }
                items.push(Item::Text(s));
                i = end + 1;
                continue;
            }
            if c == '#' || c == '\\' {
                let rest: String = chars.get(i + 1..).unwrap_or_default().iter().collect();
                let digits: String = rest
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .take(3)
                    .collect();
                if !digits.is_empty() {
                    match digits.parse::<u8>() {
                        Ok(b) if b > 0 => items.push(Item::Byte(b)),
                        _ => return Err(bad(format!("{c}{digits}"))),
                    }
                    i += 1 + digits.len();
                    continue;
                }
                let mut lower = rest.chars().map(|c| c.to_ascii_lowercase());
                match (lower.next(), lower.next()) {
                    (Some('r'), Some('n')) => {
                        items.push(Item::Byte(b'\r'));
                        items.push(Item::Byte(b'\n'));
                        i += 3;
                    }
                    (Some('r'), _) => {
                        items.push(Item::Byte(b'\r'));
                        i += 2;
                    }
                    (Some('n'), _) => {
                        items.push(Item::Byte(b'\n'));
                        i += 2;
                    }
                    (Some('t'), _) => {
                        items.push(Item::Byte(b'\t'));
                        i += 2;
                    }
                    _ => return Err(bad(c.to_string())),
                }
                continue;
            }
            let word: String = chars
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '.')
                .collect();
            if word.is_empty() {
                return Err(bad(c.to_string()));
            }
            i += word.chars().count();
            items.push(Self::word(&word).ok_or_else(|| bad(word.clone()))?);
        }
        Ok(Self { items })
    }

    fn word(word: &str) -> Option<Item> {
        if let Some((x, y)) = word.split_once('.') {
            let x: u8 = x.parse().ok().filter(|x| *x <= 9)?;
            let y: u8 = y.parse().ok().filter(|y| *y <= 9)?;
            return Some(Item::Length(x, y));
        }
        let upper = word.to_ascii_uppercase();
        if let Some(n) = upper.strip_prefix('U') {
            if n.is_empty() {
                return Some(Item::Unit(None));
            }
            if let Ok(n @ 1..=9) = n.parse::<u8>() {
                return Some(Item::Unit(Some(n)));
            }
        }
        Some(match upper.as_str() {
            "ADDR" => Item::Addr,
            "ERR" => Item::Err,
            "STAT" => Item::Stat,
            "SN" => Item::Sn,
            "TIME" => Item::Time,
            "DATE" => Item::Date,
            "OK" => Item::Ok,
            "CS2" => Item::Cs2,
            "CS4" => Item::Cs4,
            "CSX" => Item::Csx,
            other => Item::Quantity(Quantity::parse(other)?),
        })
    }
}

impl fmt::Display for VaisalaFormat {
    /// The format as `FORM` shows it: `#` escapes appear as `\`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for item in &self.items {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            match item {
                Item::Length(x, y) => write!(f, "{x}.{y}")?,
                Item::Quantity(q) => f.write_str(q.name())?,
                Item::Text(s) => write!(f, "\"{s}\"")?,
                Item::Unit(None) => f.write_str("U")?,
                Item::Unit(Some(n)) => write!(f, "U{n}")?,
                Item::Byte(b'\r') => f.write_str("\\r")?,
                Item::Byte(b'\n') => f.write_str("\\n")?,
                Item::Byte(b'\t') => f.write_str("\\t")?,
                Item::Byte(b) => write!(f, "\\{b:03}")?,
                Item::Addr => f.write_str("ADDR")?,
                Item::Err => f.write_str("ERR")?,
                Item::Stat => f.write_str("STAT")?,
                Item::Sn => f.write_str("SN")?,
                Item::Time => f.write_str("TIME")?,
                Item::Date => f.write_str("DATE")?,
                Item::Ok => f.write_str("OK")?,
                Item::Cs2 => f.write_str("CS2")?,
                Item::Cs4 => f.write_str("CS4")?,
                Item::Csx => f.write_str("CSX")?,
            }
        }
        Ok(())
    }
}

/// One set of measured values.
#[derive(Debug, Clone, Copy)]
struct Values {
    p_hpa: f64,
    t_c: f64,
    rh: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PressureUnit {
    Hpa,
    Kpa,
    Pa,
    Mbar,
    Bar,
}

impl PressureUnit {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "hpa" => PressureUnit::Hpa,
            "kpa" => PressureUnit::Kpa,
            "pa" => PressureUnit::Pa,
            "mbar" => PressureUnit::Mbar,
            "bar" => PressureUnit::Bar,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            PressureUnit::Hpa => "hPa",
            PressureUnit::Kpa => "kPa",
            PressureUnit::Pa => "Pa",
            PressureUnit::Mbar => "mbar",
            PressureUnit::Bar => "bar",
        }
    }

    fn convert_hpa(self, hpa: f64) -> f64 {
        match self {
            PressureUnit::Hpa | PressureUnit::Mbar => hpa,
            PressureUnit::Kpa => hpa / 10.0,
            PressureUnit::Pa => hpa * 100.0,
            PressureUnit::Bar => hpa / 1000.0,
        }
    }
}

/// The simulated PTU300.
pub(crate) struct Ptu300 {
    standard: Standard,
    serial: String,
    format: VaisalaFormat,
    pressure_unit: PressureUnit,
    fahrenheit: bool,
    ftime: bool,
    fdate: bool,
    address: u8,
    smode: &'static str,
    interval: Duration,
    /// Clock time of the next run-mode output; `None` when stopped.
    next_output: Option<Duration>,
    /// Active error messages (the `ERRS` list and the `ERR` flags).
    errors: Vec<&'static str>,
}

const T_ERROR: &str = "T meas. error";

impl Ptu300 {
    pub(crate) fn new(setup: Setup) -> Self {
        Self {
            standard: Standard::new(&setup),
            serial: clean_field(&setup.serial),
            format: VaisalaFormat::default_format(),
            pressure_unit: PressureUnit::Hpa,
            fahrenheit: false,
            ftime: false,
            fdate: false,
            address: 0,
            smode: "STOP",
            interval: Duration::from_secs(1),
            next_output: None,
            errors: Vec::new(),
        }
    }

    fn measure(&mut self) -> Values {
        let days = self.standard.days();
        let quiet = self.standard.params.noise == 0.0;
        let mut noise = |scale: f64| {
            let z = self.standard.normal();
            if quiet { 0.0 } else { scale * z }
        };
        let (np, nt, nh) = (noise(0.02), noise(0.005), noise(0.05));
        let t = self.standard.lab_temperature() + nt;
        let mean = self.standard.params.lab_temp_mean;
        Values {
            p_hpa: 1013.25 + 2.0 * (std::f64::consts::TAU * days / 3.0).sin() + np,
            t_c: t,
            rh: 40.0 - 2.0 * (t - mean) + nh,
        }
    }

    fn clock_fields(&self) -> (String, String) {
        let secs = self.standard.elapsed().as_secs();
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let days = EPOCH_DAYS + i64::try_from(secs / 86_400).unwrap_or(0);
        let (y, mo, d) = civil_from_days(days);
        (
            format!("{h:02}:{m:02}:{s:02}"),
            format!("{y:04}-{mo:02}-{d:02}"),
        )
    }

    /// One output line in the current format.
    fn line(&mut self) -> Vec<u8> {
        let v = self.measure();
        self.standard.counted(1);
        let (time, date) = self.clock_fields();
        let mut out: Vec<u8> = Vec::new();
        if self.fdate {
            out.extend_from_slice(format!("{date} ").as_bytes());
        }
        if self.ftime {
            out.extend_from_slice(format!("{time} ").as_bytes());
        }
        let mut length: Option<(u8, u8)> = None;
        let mut last_unit = "";
        let items = self.format.items.clone();
        for (i, item) in items.iter().cloned().enumerate() {
            match item {
                Item::Length(x, y) => length = Some((x, y)),
                Item::Quantity(q) => {
                    let (value, default, unit) = match q {
                        Quantity::P | Quantity::P1 | Quantity::P2 => (
                            self.pressure_unit.convert_hpa(v.p_hpa),
                            (6, 1),
                            self.pressure_unit.symbol(),
                        ),
                        Quantity::T => (self.temperature(v.t_c), (3, 1), self.t_unit()),
                        Quantity::Rh => (v.rh, (3, 1), "%RH"),
                        Quantity::Td | Quantity::Tdf => (
                            self.temperature(dew_point(v.t_c, v.rh)),
                            (3, 1),
                            self.t_unit(),
                        ),
                    };
                    let (x, y) = length.unwrap_or(default);
                    out.extend_from_slice(number_field(value, x, y).as_bytes());
                    last_unit = unit;
                }
                Item::Text(s) => out.extend_from_slice(s.as_bytes()),
                Item::Unit(width) => {
                    out.extend_from_slice(last_unit.as_bytes());
                    // The manual pads the unit to `width`; its printed examples show one space
                    // before whatever printable output follows, and so does the simulator.
                    let printable_follows = !matches!(items.get(i + 1), None | Some(Item::Byte(_)));
                    if width.is_some() && printable_follows {
                        out.push(b' ');
                    }
                }
                Item::Byte(b) => out.push(b),
                Item::Addr => out.extend_from_slice(self.address.to_string().as_bytes()),
                Item::Err => {
                    let t = if self.errors.is_empty() { '0' } else { '1' };
                    out.extend_from_slice(format!("0{t}00").as_bytes());
                }
                Item::Stat => out.extend_from_slice(b"N 0    "),
                Item::Sn => out.extend_from_slice(self.serial.as_bytes()),
                Item::Time => out.extend_from_slice(time.as_bytes()),
                Item::Date => out.extend_from_slice(date.as_bytes()),
                Item::Ok => out.extend_from_slice(b"OK"),
                Item::Cs2 => {
                    let sum = out.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    out.extend_from_slice(format!("{sum:02X}").as_bytes());
                }
                Item::Cs4 => {
                    let sum = out.iter().fold(0u16, |a, b| a.wrapping_add(u16::from(*b)));
                    out.extend_from_slice(format!("{sum:04X}").as_bytes());
                }
                Item::Csx => {
                    let x = out.iter().fold(0u8, |a, b| a ^ b);
                    out.extend_from_slice(format!("{x:02X}").as_bytes());
                }
            }
        }
        out
    }

    fn temperature(&self, c: f64) -> f64 {
        if self.fahrenheit { c * 1.8 + 32.0 } else { c }
    }

    fn t_unit(&self) -> &'static str {
        if self.fahrenheit { "'F" } else { "'C" }
    }

    fn text(reply: &mut Reply, text: &str) {
        reply.push(format!("{text}\r\n"), true);
    }

    fn info(&self) -> String {
        let interval = self.interval.as_secs();
        [
            format!("PTU300 / {}", sim_firmware()),
            format!("Serial number  : {}", self.serial),
            "Batch number   : SIM".to_owned(),
            format!("Address        : {}", self.address),
            format!("Output interval: {interval} s"),
            "Serial mode    : 4800 E 7 1".to_owned(),
            format!("Start mode     : {}", self.smode),
            format!("Pressure unit  : {}", self.pressure_unit.symbol()),
        ]
        .join("\r\n")
    }

    fn command(&mut self, line: &str, reply: &mut Reply) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let mut words = line.split_whitespace();
        let head = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<&str> = words.collect();
        let arg = |i: usize| args.get(i).copied();
        match head.as_str() {
            "SEND" => {
                let l = self.line();
                reply.push(l, true);
            }
            "R" if args.is_empty() => {
                let l = self.line();
                reply.push(l, true);
                self.next_output = Some(self.standard.elapsed() + self.interval);
            }
            "S" if args.is_empty() => self.next_output = None,
            "INTV" => {
                if let Some(n) = arg(0) {
                    let unit = arg(1).unwrap_or("S").to_ascii_uppercase();
                    let scale = match unit.as_str() {
                        "S" => 1,
                        "MIN" => 60,
                        "H" => 3600,
                        _ => return Self::text(reply, "Invalid unit"),
                    };
                    match n.parse::<u64>() {
                        Ok(n @ 1..=255) => self.interval = Duration::from_secs(n * scale),
                        _ => return Self::text(reply, "Out of range"),
                    }
                }
                let t = format!("Output intrv.  : {} s", self.interval.as_secs());
                Self::text(reply, &t);
            }
            "SMODE" => {
                if let Some(m) = arg(0) {
                    match m.to_ascii_uppercase().as_str() {
                        "STOP" => self.smode = "STOP",
                        "RUN" => self.smode = "RUN",
                        "POLL" => self.smode = "POLL",
                        "SEND" => self.smode = "SEND",
                        _ => return Self::text(reply, "Invalid mode"),
                    }
                }
                let t = format!("Start mode     : {}", self.smode);
                Self::text(reply, &t);
            }
            "FORM" => {
                let rest = line.get(4..).unwrap_or_default().trim();
                if rest.is_empty() {
                    let t = self.format.to_string();
                    Self::text(reply, &t);
                } else if rest == "/" {
                    self.format = VaisalaFormat::default_format();
                    Self::text(reply, "OK");
                } else {
                    match VaisalaFormat::parse(rest) {
                        Ok(f) => {
                            self.format = f;
                            Self::text(reply, "OK");
                        }
                        Err(e) => Self::text(reply, &format!("Invalid format: {}", e.token)),
                    }
                }
            }
            "UNIT" => match (arg(0).map(str::to_ascii_uppercase).as_deref(), arg(1)) {
                (Some("M"), None) => {
                    self.fahrenheit = false;
                    Self::text(reply, "OK");
                }
                (Some("N"), None) => {
                    self.fahrenheit = true;
                    Self::text(reply, "OK");
                }
                (Some("P"), Some(u)) => match PressureUnit::parse(u) {
                    Some(u) => {
                        self.pressure_unit = u;
                        Self::text(reply, "OK");
                    }
                    None => Self::text(reply, "Invalid unit"),
                },
                _ => Self::text(reply, "Invalid unit"),
            },
            "FTIME" | "FDATE" => {
                let on = match arg(0).map(str::to_ascii_uppercase).as_deref() {
                    Some("ON") => Some(true),
                    Some("OFF") => Some(false),
                    None => None,
                    Some(_) => return Self::text(reply, "Invalid parameter"),
                };
                let flag = if head == "FTIME" {
                    &mut self.ftime
                } else {
                    &mut self.fdate
                };
                if let Some(on) = on {
                    *flag = on;
                }
                let name = if head == "FTIME" { "time" } else { "date" };
                let state = if *flag { "ON" } else { "OFF" };
                Self::text(reply, &format!("Form. {name}     : {state}"));
            }
            "SERI" => Self::text(reply, "Baud P D S     : 4800 E 7 1"),
            "ADDR" => {
                if let Some(a) = arg(0) {
                    match a.parse::<u8>() {
                        Ok(a) => self.address = a,
                        Err(_) => return Self::text(reply, "Out of range"),
                    }
                }
                let t = format!("Address        : {}", self.address);
                Self::text(reply, &t);
            }
            "ERRS" => {
                if self.errors.is_empty() {
                    Self::text(reply, "PASS");
                } else {
                    Self::text(reply, "FAIL");
                    for e in std::mem::take(&mut self.errors) {
                        Self::text(reply, &format!("Error: {e}"));
                    }
                }
            }
            "?" | "??" => {
                let t = self.info();
                Self::text(reply, &t);
            }
            "VERS" => Self::text(reply, &format!("PTU300 / {}", sim_firmware())),
            "RESET" => {
                self.next_output = None;
                self.format = VaisalaFormat::default_format();
            }
            _ => Self::text(reply, "Unknown command"),
        }
    }
}

/// `value` with `y` decimals after one space, padded with spaces to at least `x` digits.
fn number_field(value: f64, x: u8, y: u8) -> String {
    if !value.is_finite() {
        return " ***".to_owned();
    }
    let text = format!("{:.*}", usize::from(y), value);
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let pad = usize::from(x).saturating_sub(digits).max(1);
    format!("{}{text}", " ".repeat(pad))
}

/// Dew point, °C, by the Magnus formula.
fn dew_point(t: f64, rh: f64) -> f64 {
    let (a, b) = (17.62, 243.12);
    let gamma = (rh.max(0.1) / 100.0).ln() + a * t / (b + t);
    b * gamma / (a - gamma)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Personality for Ptu300 {
    fn id(&self) -> PersonalityId {
        PersonalityId::VaisalaPtu300
    }

    fn handle(&mut self, message: &[u8]) -> Reply {
        let mut reply = Reply::none();
        match std::str::from_utf8(message) {
            Ok(text) if !text.chars().any(|c| c.is_control() && c != '\t') => {
                self.command(text, &mut reply);
            }
            _ => Self::text(&mut reply, "Unknown command"),
        }
        reply
    }

    fn input_terminators(&self) -> &'static [u8] {
        b"\r\n"
    }

    fn output_terminator(&self) -> &'static [u8] {
        b"\r\n"
    }

    fn serial_frame(&self) -> Frame {
        Frame::SEVEN_E_ONE
    }

    fn unsolicited_in(&self) -> Option<Duration> {
        self.next_output
            .map(|due| due.saturating_sub(self.standard.elapsed()))
    }

    fn unsolicited(&mut self) -> Reply {
        let now = self.standard.elapsed();
        match self.next_output {
            Some(due) if due <= now => {
                // Missed intervals are skipped, not sent in a burst.
                let mut next = due;
                while next <= now {
                    next += self.interval;
                }
                self.next_output = Some(next);
                let l = self.line();
                Reply::text(l)
            }
            _ => Reply::none(),
        }
    }

    fn input_overflow(&mut self) {}

    fn inject_error(&mut self) {
        if !self.errors.contains(&T_ERROR) {
            self.errors.push(T_ERROR);
        }
    }

    fn set_serial(&mut self, serial: &str) {
        self.serial = clean_field(serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::tests::{ask, setup};
    use proptest::prelude::*;

    fn ptu() -> (Ptu300, crate::ManualClock) {
        let (mut s, clock) = setup(false);
        // A lab at 22.2 °C with the cycle at zero, pressure at its mean.
        s.params.lab_temp_mean = 22.2;
        (Ptu300::new(s), clock)
    }

    #[test]
    fn send_default_format_is_the_cheat_sheet_line() {
        let (mut p, _) = ptu();
        assert_eq!(
            ask(&mut p, "SEND"),
            "P= 1013.2 hPa T= 22.2 'C RH= 40.0 %RH\r\n"
        );
        assert_eq!(
            ask(&mut p, "FORM"),
            "6.1 \"P=\" P \" \" U6 3.1 \"T=\" T \" \" U3 3.1 \"RH=\" RH \" \" U4 \\r \\n\r\n"
        );
    }

    #[test]
    fn machine_format_with_checksum() {
        let (mut p, _) = ptu();
        assert_eq!(
            ask(
                &mut p,
                r#"FORM 4.2 P " " 3.3 T " " 3.2 RH " " ERR " " CS4 #r #n"#
            ),
            "OK\r\n"
        );
        let line = ask(&mut p, "send");
        let body = " 1013.25  22.200  40.00 0000 ";
        let sum: u32 = body.bytes().map(u32::from).sum();
        assert_eq!(line, format!("{body}{:04X}\r\n", sum % 65536));
        p.inject_error();
        assert!(ask(&mut p, "SEND").contains(" 0100 "));
        assert_eq!(ask(&mut p, "ERRS"), "FAIL\r\nError: T meas. error\r\n");
        assert_eq!(ask(&mut p, "ERRS"), "PASS\r\n");
        assert_eq!(ask(&mut p, "FORM 4.2 P XYZ"), "Invalid format: XYZ\r\n");
        assert_eq!(ask(&mut p, "FORM /"), "OK\r\n");
        assert!(ask(&mut p, "SEND").starts_with("P= 1013.2 hPa"));
    }

    #[test]
    fn run_mode_streams_at_the_interval() {
        let (mut p, clock) = ptu();
        assert_eq!(p.unsolicited_in(), None);
        ask(&mut p, "INTV 2 S");
        assert!(ask(&mut p, "R").starts_with("P="));
        assert_eq!(p.unsolicited_in(), Some(Duration::from_secs(2)));
        assert!(p.unsolicited().is_empty());
        clock.advance(Duration::from_secs(2));
        assert_eq!(p.unsolicited_in(), Some(Duration::ZERO));
        assert!(
            String::from_utf8(p.unsolicited().bytes())
                .unwrap()
                .starts_with("P=")
        );
        clock.advance(Duration::from_secs(7));
        assert!(!p.unsolicited().is_empty());
        assert_eq!(p.unsolicited_in(), Some(Duration::from_secs(1)));
        ask(&mut p, "S");
        assert_eq!(p.unsolicited_in(), None);
    }

    #[test]
    fn other_commands() {
        let (mut p, clock) = ptu();
        assert!(ask(&mut p, "?").contains("Serial number  : SIMTEST01"));
        p.set_serial("SIM999");
        assert!(ask(&mut p, "?").contains("SIM999"));
        assert_eq!(ask(&mut p, "FROB"), "Unknown command\r\n");
        assert_eq!(ask(&mut p, "UNIT P kPa"), "OK\r\n");
        assert!(ask(&mut p, "SEND").starts_with("P=  101.3 kPa"));
        ask(&mut p, "UNIT N");
        assert!(ask(&mut p, "SEND").contains("T= 72.0 'F"));
        ask(&mut p, "FDATE ON");
        ask(&mut p, "FTIME ON");
        clock.advance(Duration::from_secs(86_400 + 3661));
        assert!(ask(&mut p, "SEND").starts_with("2026-01-02 01:01:01 P="));
        assert_eq!(p.serial_frame(), Frame::SEVEN_E_ONE);
        assert_eq!(ask(&mut p, "SERI"), "Baud P D S     : 4800 E 7 1\r\n");
    }

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(EPOCH_DAYS), (2026, 1, 1));
        assert_eq!(civil_from_days(EPOCH_DAYS + 59), (2026, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    proptest! {
        #[test]
        fn format_parse_never_panics(s in "\\PC{0,60}") {
            let _ = VaisalaFormat::parse(&s);
        }

        #[test]
        fn format_display_round_trips(s in proptest::collection::vec(prop_oneof![
            Just("P"), Just("t"), Just("rh"), Just("TD"), Just("4.2"), Just("0.0"),
            Just("\"x= \""), Just("U"), Just("U5"), Just("#r"), Just("#n"), Just("#t"),
            Just("#027"), Just("\\rn"), Just("ERR"), Just("CS4"), Just("SN"), Just("DATE"),
        ], 0..12)) {
            let text = s.join(" ");
            let f = VaisalaFormat::parse(&text).unwrap();
            prop_assert_eq!(VaisalaFormat::parse(&f.to_string()).unwrap(), f);
        }
    }
}
