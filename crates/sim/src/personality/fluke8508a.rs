//! Fluke 8508A reference multimeter (Datron-heritage commands plus IEEE 488.2 commons).
//!
//! Commands: `*IDN?` → `FLUKE,8508A,<serial>,<firmware>`, `*RST`, `*CLS`, `*OPC`, `*OPC?`,
//! `*WAI`, `*ESR?`, `*ESE`, `*ESE?`, `*SRE`, `*SRE?`, `*STB?`, `*TST?`; functions `DCV`, `OHMS`,
//! `TRUE_OHMS`, `HI_OHMS` with any of `range|AUTO`, `FILT_ON|FILT_OFF`, `RESL5`…`RESL8`,
//! `FAST_ON|FAST_OFF`, `TWO_WR|FOUR_WR`, `LOI_ON|LOI_OFF`; `INPUT FRONT|REAR|SUB_REAR`,
//! `GUARD INT|EXT`, `AVG OFF|AV2…AV256`, `DELAY s`, `TRG_SRCE INT|EXT`; readings `X?` (trigger
//! and read, after `DELAY`) and `RDG?` (a fresh reading when free-running, `TRG_SRCE INT`; the
//! last one when externally triggered); `MZERO?` (input zero, `+0.00000000E+00`).
//!
//! Readings are `+1.00000023E+01` with RESLn → n decimals, LF-terminated. Resistance functions
//! read a 10 kΩ resistor that follows the standard ppm for ppm. Errors only set `*ESR?` bits:
//! 5 (32) command error for an unknown header or keyword, 4 (16) execution error for a value out
//! of range (a range above the function's largest: 1 kV, 2 GΩ, 20 kΩ for `TRUE_OHMS`, 20 GΩ for
//! `HI_OHMS`), 2 (4) query error for `RDG?` with no reading, 3 (8) device error (the injected
//! one).
//!
//! With realistic timing a reading takes 0.02/0.1/0.4/1.6 s at RESL5/6/7/8, halved with
//! `FAST_ON`, plus 1 s with `FILT_ON`, times the `AVG` count, plus `DELAY` for `X?`.

use std::time::Duration;

use super::model::{Standard, clean_field};
use super::status::{Common, ESR_COMMAND, ESR_DEVICE, ESR_EXECUTION, ESR_QUERY, Status};
use super::text::{Unit, UnitDialect, lf_line, number};
use super::{Setup, sim_firmware};
use crate::format::format_sci;
use crate::id::PersonalityId;
use crate::reply::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Dcv,
    Ohms,
}

/// The simulated 8508A.
pub(crate) struct Fluke8508a {
    standard: Standard,
    serial: String,
    status: Status,
    function: Function,
    resolution: u8,
    filter: bool,
    fast: bool,
    average: u32,
    delay: f64,
    external_trigger: bool,
    last: Option<f64>,
}

impl Fluke8508a {
    pub(crate) fn new(setup: Setup) -> Self {
        let mut m = Self {
            standard: Standard::new(&setup),
            serial: clean_field(&setup.serial),
            status: Status::power_on(),
            function: Function::Dcv,
            resolution: 7,
            filter: false,
            fast: false,
            average: 1,
            delay: 0.0,
            external_trigger: false,
            last: None,
        };
        m.reset();
        m
    }

    fn reset(&mut self) {
        self.function = Function::Dcv;
        self.resolution = 7;
        self.filter = false;
        self.fast = false;
        self.average = 1;
        self.delay = 0.0;
        self.external_trigger = false;
        self.last = None;
    }

    fn measure(&mut self) -> (f64, Duration) {
        let value = match self.function {
            Function::Dcv => self.standard.volts(),
            Function::Ohms => self.standard.scaled(10_000.0),
        };
        let base = match self.resolution {
            5 => 0.02,
            6 => 0.1,
            7 => 0.4,
            _ => 1.6,
        };
        let mut seconds = if self.fast { base / 2.0 } else { base };
        if self.filter {
            seconds += 1.0;
        }
        seconds *= f64::from(self.average);
        self.last = Some(value);
        (value, self.standard.busy(seconds))
    }

    fn reading_text(&self, value: f64) -> String {
        format_sci(value, usize::from(self.resolution), true)
    }

    /// Applies a function's keyword list; a bad keyword is a command error, a range above
    /// `max_range` (the function's largest) an execution error.
    fn function(&mut self, f: Function, max_range: f64, params: &[&str]) {
        self.function = f;
        for p in params.iter().map(|p| p.to_ascii_uppercase()) {
            match p.as_str() {
                "" => {}
                "FILT_ON" => self.filter = true,
                "FILT_OFF" => self.filter = false,
                "FAST_ON" => self.fast = true,
                "FAST_OFF" => self.fast = false,
                "TWO_WR" | "FOUR_WR" | "LOI_ON" | "LOI_OFF" | "AUTO" => {}
                r if r.starts_with("RESL") => match r.get(4..).and_then(|d| d.parse::<u8>().ok()) {
                    Some(n @ 5..=8) => self.resolution = n,
                    _ => self.status.esr |= ESR_EXECUTION,
                },
                other => match number(other) {
                    Some(v) if v > 0.0 && v <= max_range => {}
                    Some(_) => self.status.esr |= ESR_EXECUTION,
                    None => self.status.esr |= ESR_COMMAND,
                },
            }
        }
    }
}

impl UnitDialect for Fluke8508a {
    const ID: PersonalityId = PersonalityId::Fluke8508a;

    fn unit(&mut self, u: &Unit<'_>, reply: &mut Reply) {
        // No summary bits of its own: errors show only in the event register.
        match self.status.unit(u, 0, reply) {
            Common::Other => {}
            Common::Done(_) => return,
            Common::BadValue { out_of_range } => {
                self.status.esr |= if out_of_range {
                    ESR_EXECUTION
                } else {
                    ESR_COMMAND
                };
                return;
            }
        }
        match u.header.as_str() {
            "*IDN?" => {
                let idn = format!("FLUKE,8508A,{},{}", self.serial, sim_firmware());
                lf_line(reply, &idn);
            }
            "*RST" => self.reset(),
            "*CLS" => self.status.esr = 0,
            "DCV" => self.function(Function::Dcv, 1000.0, &u.params),
            "OHMS" => self.function(Function::Ohms, 2e9, &u.params),
            "TRUE_OHMS" => self.function(Function::Ohms, 2e4, &u.params),
            "HI_OHMS" => self.function(Function::Ohms, 2e10, &u.params),
            "INPUT" | "GUARD" => {
                let ok = matches!(
                    u.param(0).map(str::to_ascii_uppercase).as_deref(),
                    Some("FRONT" | "REAR" | "SUB_REAR" | "INT" | "EXT")
                );
                if !ok {
                    self.status.esr |= ESR_COMMAND;
                }
            }
            "AVG" => match u.param(0).map(str::to_ascii_uppercase).as_deref() {
                Some("OFF") => self.average = 1,
                Some(a) => match a.strip_prefix("AV").and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) if n.is_power_of_two() && (2..=256).contains(&n) => self.average = n,
                    _ => self.status.esr |= ESR_COMMAND,
                },
                None => self.status.esr |= ESR_COMMAND,
            },
            "DELAY" => match u.param(0).and_then(number) {
                Some(v) if (0.0..=3600.0).contains(&v) => self.delay = v,
                Some(_) => self.status.esr |= ESR_EXECUTION,
                None => self.status.esr |= ESR_COMMAND,
            },
            "TRG_SRCE" => match u.param(0).map(str::to_ascii_uppercase).as_deref() {
                Some("INT") => self.external_trigger = false,
                Some("EXT") => self.external_trigger = true,
                _ => self.status.esr |= ESR_COMMAND,
            },
            "X?" => {
                let (v, busy) = self.measure();
                reply.delay = reply
                    .delay
                    .saturating_add(busy)
                    .saturating_add(self.standard.busy(self.delay));
                let t = self.reading_text(v);
                lf_line(reply, &t);
                self.standard.counted(1);
            }
            "RDG?" => {
                let value = if self.external_trigger {
                    self.last
                } else {
                    let (v, busy) = self.measure();
                    reply.delay = reply.delay.saturating_add(busy);
                    Some(v)
                };
                match value {
                    Some(v) => {
                        let t = self.reading_text(v);
                        lf_line(reply, &t);
                        self.standard.counted(1);
                    }
                    None => self.status.esr |= ESR_QUERY,
                }
            }
            "MZERO?" => lf_line(reply, &format_sci(0.0, 8, true)),
            _ => self.status.esr |= ESR_COMMAND,
        }
    }

    fn unreadable(&mut self) {
        self.status.esr |= ESR_COMMAND;
    }

    fn addressed(&mut self) -> Reply {
        self.status.esr |= ESR_QUERY;
        Reply::none()
    }

    fn injected_error(&mut self) {
        self.status.esr |= ESR_DEVICE;
    }

    fn serial_mut(&mut self) -> &mut String {
        &mut self.serial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::Personality;
    use crate::personality::tests::{ask, setup};

    fn meter(realistic: bool) -> Fluke8508a {
        Fluke8508a::new(setup(realistic).0)
    }

    #[test]
    fn identity_and_readings() {
        let (s, _) = setup(false);
        let sent = std::sync::Arc::clone(&s.sent);
        let mut m = Fluke8508a::new(s);
        assert_eq!(
            ask(&mut m, "*IDN?"),
            format!("FLUKE,8508A,SIMTEST01,{}\n", sim_firmware())
        );
        assert_eq!(ask(&mut m, "*ESR?"), "128\n");
        ask(&mut m, "DCV 10,FILT_OFF,RESL8,FAST_OFF,FOUR_WR");
        assert_eq!(ask(&mut m, "X?"), "+1.00000000E+01\n");
        assert_eq!(ask(&mut m, "RDG?"), "+1.00000000E+01\n");
        ask(&mut m, "TRUE_OHMS 10E3,RESL6,FAST_OFF");
        assert_eq!(ask(&mut m, "X?"), "+1.000000E+04\n");
        assert_eq!(ask(&mut m, "*ESR?"), "0\n");
        assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[test]
    fn errors_show_in_esr() {
        let mut m = meter(false);
        ask(&mut m, "*CLS");
        ask(&mut m, "FOO");
        assert_eq!(ask(&mut m, "*ESR?"), "32\n");
        ask(&mut m, "DCV RESL9");
        assert_eq!(ask(&mut m, "*ESR?"), "16\n");
        // Each function's largest range: 1 kV, 2 GΩ, 20 kΩ with current reversal, 20 GΩ.
        ask(&mut m, "DCV 1000;OHMS 2E9;TRUE_OHMS 20E3;HI_OHMS 20E9");
        assert_eq!(ask(&mut m, "*ESR?"), "0\n");
        for over in ["DCV 5000", "OHMS 3E9", "TRUE_OHMS 100E3", "HI_OHMS 1E11"] {
            ask(&mut m, over);
            assert_eq!(ask(&mut m, "*ESR?"), "16\n", "{over}");
        }
        ask(&mut m, "TRG_SRCE EXT");
        assert_eq!(ask(&mut m, "RDG?"), "");
        assert_eq!(ask(&mut m, "*ESR?"), "4\n");
        m.inject_error();
        ask(&mut m, "*ESE 8");
        assert_eq!(ask(&mut m, "*STB?"), "32\n");
        assert_eq!(ask(&mut m, "*ESR?"), "8\n");
    }

    #[test]
    fn realistic_timing_follows_resolution_filter_and_delay() {
        let mut m = meter(true);
        ask(&mut m, "DCV 10,RESL8,FILT_OFF,FAST_OFF;DELAY 1");
        let close = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() < 1e-3;
        assert!(close(m.handle(b"X?").delay, 2600.0));
        ask(&mut m, "DCV FILT_ON,RESL5,FAST_ON;AVG AV16;DELAY 0");
        assert!(close(m.handle(b"RDG?").delay, 16_160.0));
    }
}
