//! Fluke 5720A multifunction calibrator (57xx command set plus IEEE 488.2 commons; not SCPI).
//!
//! Commands: `*IDN?` → `FLUKE,5720A,<serial>,<firmware>`, `*RST` (standby, 0 V), `*CLS` (faults
//! and ESR), `*OPC`, `*OPC?`, `*WAI`, `*ESR?`, `*ESE`, `*ESE?`, `*SRE`, `*SRE?`, `*STB?`,
//! `*TST?`; `OUT <value> <unit>[, <frequency> Hz]` with units `V`, `MV`, `UV`, `A`, `MA`, `UA`,
//! `OHM`, `KOHM`, `MOHM` (resistance: decade or 1.9 values from 1 Ω to 100 MΩ, and 0 Ω),
//! `OUT?` → `<value>,<unit>,<second value>,<second unit>,<frequency>` (for Ω the calibrated value
//! of the artefact resistor, 3.1 ppm above nominal), `OPER`, `STBY`, `OPER?`, `ISR?`, `FAULT?` →
//! code (0 = none, oldest first), `EXPLAIN? <code>` → text, `ERR?` → `code,"text"` (`0,"No
//! Error"`), `EXTSENSE ON|OFF`, `RCOMP ON|OFF`, `BOOST ON|OFF`, `CUR_POST NORMAL|IB5725`,
//! `CAL_DAYS? CAL`, `ETIME?`.
//!
//! `ISR?` bits: 0x0001 operating, 0x0004 external sense, 0x0008 boost, 0x0010 2-wire
//! compensation, 0x0800 remote (always), 0x1000 output settled: set only while operating and
//! once the settle time (2 s with realistic timing, 100 ms without) has passed since the last
//! `OUT` or `OPER`, on the simulator's clock.
//!
//! Fault codes (the simulator's own numbering): 1301 unknown command, 1302 bad parameter, 1303
//! missing parameter, 1304 output limit exceeded, 1305 not a decade or 1.9 value, 1306 output
//! tripped (the injected fault). They also set `*ESR?` bits (command 32, execution 16, device 8).

use std::time::Duration;

use super::model::{ErrorQueue, Standard, clean_field};
use super::status::{Common, ESR_COMMAND, ESR_DEVICE, ESR_EXECUTION, ESR_QUERY, Status};
use super::text::{Unit, UnitDialect, lf_line, number, number_with_unit};
use super::{Setup, sim_firmware};
use crate::format::format_sci;
use crate::id::PersonalityId;
use crate::reply::Reply;

const FAULT_UNKNOWN_COMMAND: (i32, &str) = (1301, "Unknown command");
const FAULT_BAD_PARAMETER: (i32, &str) = (1302, "Bad parameter");
const FAULT_MISSING_PARAMETER: (i32, &str) = (1303, "Missing parameter");
const FAULT_LIMIT: (i32, &str) = (1304, "Output limit exceeded");
const FAULT_NOT_DECADE: (i32, &str) = (1305, "Not a decade or 1.9 value");
const FAULT_TRIPPED: (i32, &str) = (1306, "Output tripped");
const FAULT_OVERFLOW: (i32, &str) = (1399, "Fault queue overflow");

const KNOWN_FAULTS: [(i32, &str); 7] = [
    FAULT_UNKNOWN_COMMAND,
    FAULT_BAD_PARAMETER,
    FAULT_MISSING_PARAMETER,
    FAULT_LIMIT,
    FAULT_NOT_DECADE,
    FAULT_TRIPPED,
    FAULT_OVERFLOW,
];

const ISR_OPERATING: u32 = 0x0001;
const ISR_EXT_SENSE: u32 = 0x0004;
const ISR_BOOST: u32 = 0x0008;
const ISR_RCOMP: u32 = 0x0010;
const ISR_REMOTE: u32 = 0x0800;
const ISR_SETTLED: u32 = 0x1000;

/// Relative deviation of the artefact resistors from nominal.
const OHMS_CALIBRATED: f64 = 3.1e-6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    Volts,
    Amps,
    Ohms,
}

impl Quantity {
    fn unit(self) -> &'static str {
        match self {
            Quantity::Volts => "V",
            Quantity::Amps => "A",
            Quantity::Ohms => "OHM",
        }
    }
}

/// The simulated 5720A.
pub(crate) struct Fluke5720a {
    standard: Standard,
    serial: String,
    faults: ErrorQueue,
    status: Status,
    quantity: Quantity,
    value: f64,
    frequency: f64,
    operating: bool,
    /// Clock time of the last `OUT` or `OPER`.
    changed_at: Duration,
    ext_sense: bool,
    rcomp: bool,
    boost: bool,
}

impl Fluke5720a {
    pub(crate) fn new(setup: Setup) -> Self {
        let standard = Standard::new(&setup);
        let changed_at = standard.elapsed();
        Self {
            standard,
            serial: clean_field(&setup.serial),
            faults: ErrorQueue::new(16, FAULT_OVERFLOW),
            status: Status::power_on(),
            quantity: Quantity::Volts,
            value: 0.0,
            frequency: 0.0,
            operating: false,
            changed_at,
            ext_sense: false,
            rcomp: false,
            boost: false,
        }
    }

    fn reset(&mut self) {
        self.quantity = Quantity::Volts;
        self.value = 0.0;
        self.frequency = 0.0;
        self.operating = false;
        self.ext_sense = false;
        self.rcomp = false;
        self.boost = false;
        self.changed_at = self.standard.elapsed();
    }

    fn settle_time(&self) -> Duration {
        if self.standard.params.realistic_timing {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(100)
        }
    }

    fn fault(&mut self, f: (i32, &str), esr: u8) {
        self.faults.push(f.0, f.1);
        self.status.esr |= esr;
    }

    fn isr(&self) -> u32 {
        let mut isr = ISR_REMOTE;
        if self.operating {
            isr |= ISR_OPERATING;
            if self.standard.elapsed().saturating_sub(self.changed_at) >= self.settle_time() {
                isr |= ISR_SETTLED;
            }
        }
        if self.ext_sense {
            isr |= ISR_EXT_SENSE;
        }
        if self.boost {
            isr |= ISR_BOOST;
        }
        if self.rcomp {
            isr |= ISR_RCOMP;
        }
        isr
    }

    fn out(&mut self, params: &[&str]) {
        let Some(first) = params.first().filter(|p| !p.is_empty()) else {
            self.fault(FAULT_MISSING_PARAMETER, ESR_COMMAND);
            return;
        };
        let Some((value, unit)) = number_with_unit(first) else {
            self.fault(FAULT_BAD_PARAMETER, ESR_COMMAND);
            return;
        };
        let (quantity, scale) = match unit.as_str() {
            "V" => (Quantity::Volts, 1.0),
            "MV" => (Quantity::Volts, 1e-3),
            "UV" => (Quantity::Volts, 1e-6),
            "A" => (Quantity::Amps, 1.0),
            "MA" => (Quantity::Amps, 1e-3),
            "UA" => (Quantity::Amps, 1e-6),
            "OHM" => (Quantity::Ohms, 1.0),
            "KOHM" => (Quantity::Ohms, 1e3),
            "MOHM" => (Quantity::Ohms, 1e6),
            _ => {
                self.fault(FAULT_BAD_PARAMETER, ESR_COMMAND);
                return;
            }
        };
        let value = value * scale;
        let frequency = match params.get(1) {
            None => 0.0,
            Some(f) => match number_with_unit(f) {
                Some((hz, u)) if u == "HZ" && hz >= 0.0 => hz,
                Some((khz, u)) if u == "KHZ" && khz >= 0.0 => khz * 1e3,
                _ => {
                    self.fault(FAULT_BAD_PARAMETER, ESR_COMMAND);
                    return;
                }
            },
        };
        if params.len() > 2 {
            self.fault(FAULT_BAD_PARAMETER, ESR_COMMAND);
            return;
        }
        let within = match quantity {
            Quantity::Volts => value.abs() <= 1100.0 && frequency <= 1.2e6,
            Quantity::Amps => {
                value.abs() <= if self.boost { 11.0 } else { 2.2 } && frequency <= 1e4
            }
            Quantity::Ohms => frequency == 0.0,
        };
        if !within {
            self.fault(FAULT_LIMIT, ESR_EXECUTION);
            return;
        }
        if quantity == Quantity::Ohms && !is_decade_or_19(value) {
            self.fault(FAULT_NOT_DECADE, ESR_EXECUTION);
            return;
        }
        self.quantity = quantity;
        self.value = value;
        self.frequency = frequency;
        self.changed_at = self.standard.elapsed();
    }

    fn out_query(&self) -> String {
        let primary = match self.quantity {
            Quantity::Ohms => self.value * (1.0 + OHMS_CALIBRATED),
            _ => self.value,
        };
        format!(
            "{},{},{},0,{}",
            format_sci(primary, 7, true),
            self.quantity.unit(),
            format_sci(0.0, 7, true),
            format_sci(self.frequency, 2, true)
        )
    }

    fn on_off(&mut self, p: Option<&str>) -> Option<bool> {
        match p.map(str::to_ascii_uppercase).as_deref() {
            Some("ON" | "1") => Some(true),
            Some("OFF" | "0") => Some(false),
            None => {
                self.fault(FAULT_MISSING_PARAMETER, ESR_COMMAND);
                None
            }
            Some(_) => {
                self.fault(FAULT_BAD_PARAMETER, ESR_COMMAND);
                None
            }
        }
    }
}

impl UnitDialect for Fluke5720a {
    const ID: PersonalityId = PersonalityId::Fluke5720a;

    fn unit(&mut self, u: &Unit<'_>, reply: &mut Reply) {
        let extra = if self.faults.is_empty() { 0 } else { 0x08 };
        match self.status.unit(u, extra, reply) {
            Common::Other => {}
            Common::Done(_) => return,
            Common::BadValue { .. } => return self.fault(FAULT_BAD_PARAMETER, ESR_EXECUTION),
        }
        match u.header.as_str() {
            "*IDN?" => {
                let idn = format!("FLUKE,5720A,{},{}", self.serial, sim_firmware());
                lf_line(reply, &idn);
            }
            "*RST" => self.reset(),
            "*CLS" => {
                self.faults.clear();
                self.status.esr = 0;
            }
            "OUT" => self.out(&u.params),
            "OUT?" => {
                let t = self.out_query();
                lf_line(reply, &t);
            }
            "OPER" => {
                self.operating = true;
                self.changed_at = self.standard.elapsed();
            }
            "STBY" => self.operating = false,
            "OPER?" => lf_line(reply, if self.operating { "1" } else { "0" }),
            "ISR?" => lf_line(reply, &self.isr().to_string()),
            "FAULT?" => {
                let code = self.faults.pop().map_or(0, |(c, _)| c);
                lf_line(reply, &code.to_string());
            }
            "EXPLAIN?" => match u.param(0).and_then(number) {
                Some(code) => {
                    let text = if code == 0.0 {
                        "No Error"
                    } else {
                        KNOWN_FAULTS
                            .iter()
                            .find(|(c, _)| f64::from(*c) == code)
                            .map_or("Unknown fault code", |(_, t)| t)
                    };
                    lf_line(reply, text);
                }
                None => self.fault(FAULT_MISSING_PARAMETER, ESR_COMMAND),
            },
            "ERR?" => {
                let text = match self.faults.pop() {
                    Some((code, msg)) => format!("{code},\"{msg}\""),
                    None => "0,\"No Error\"".to_owned(),
                };
                lf_line(reply, &text);
            }
            "EXTSENSE" => {
                if let Some(v) = self.on_off(u.param(0)) {
                    self.ext_sense = v;
                }
            }
            "RCOMP" => {
                if let Some(v) = self.on_off(u.param(0)) {
                    self.rcomp = v;
                }
            }
            "BOOST" => {
                if let Some(v) = self.on_off(u.param(0)) {
                    self.boost = v;
                }
            }
            "CUR_POST" => match u.param(0).map(str::to_ascii_uppercase).as_deref() {
                Some("NORMAL" | "IB5725" | "IB5725A") => {}
                _ => self.fault(FAULT_BAD_PARAMETER, ESR_COMMAND),
            },
            "CAL_DAYS?" => lf_line(reply, "30"),
            "ETIME?" => {
                let minutes = self.standard.elapsed().as_secs() / 60;
                lf_line(reply, &minutes.to_string());
            }
            _ => self.fault(FAULT_UNKNOWN_COMMAND, ESR_COMMAND),
        }
    }

    fn unreadable(&mut self) {
        self.fault(FAULT_UNKNOWN_COMMAND, ESR_COMMAND);
    }

    fn addressed(&mut self) -> Reply {
        self.status.esr |= ESR_QUERY;
        Reply::none()
    }

    fn injected_error(&mut self) {
        self.fault(FAULT_TRIPPED, ESR_DEVICE);
    }

    fn serial_mut(&mut self) -> &mut String {
        &mut self.serial
    }
}

/// 0, or 1 or 1.9 times a power of ten from 1 Ω to 100 MΩ.
fn is_decade_or_19(ohms: f64) -> bool {
    if ohms == 0.0 {
        return true;
    }
    (0..=8).any(|e| {
        let decade = 10f64.powi(e);
        [decade, 1.9 * decade]
            .iter()
            .any(|v| (ohms - v).abs() <= v * 1e-9)
    }) && ohms <= 100e6 * (1.0 + 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::Personality;
    use crate::personality::tests::{ask, setup};

    #[test]
    fn output_operate_and_settle_on_the_clock() {
        let (s, clock) = setup(true);
        let mut c = Fluke5720a::new(s);
        assert_eq!(
            ask(&mut c, "*IDN?"),
            format!("FLUKE,5720A,SIMTEST01,{}\n", sim_firmware())
        );
        ask(&mut c, "*RST;*CLS;*WAI");
        assert_eq!(ask(&mut c, "ISR?"), "2048\n");
        ask(&mut c, "OUT 10 V, 0 Hz");
        ask(&mut c, "OPER");
        assert_eq!(ask(&mut c, "ISR?"), (0x0800 | 0x0001).to_string() + "\n");
        clock.advance(Duration::from_millis(1999));
        assert_eq!(ask(&mut c, "ISR?"), "2049\n");
        clock.advance(Duration::from_millis(1));
        assert_eq!(ask(&mut c, "ISR?"), (0x1801).to_string() + "\n");
        assert_eq!(
            ask(&mut c, "OUT?"),
            "+1.0000000E+01,V,+0.0000000E+00,0,+0.00E+00\n"
        );
        // A new output restarts settling.
        ask(&mut c, "OUT 1 V, 1000 Hz");
        assert_eq!(ask(&mut c, "ISR?"), "2049\n");
        assert_eq!(
            ask(&mut c, "OUT?"),
            "+1.0000000E+00,V,+0.0000000E+00,0,+1.00E+03\n"
        );
        ask(&mut c, "STBY");
        clock.advance(Duration::from_secs(5));
        assert_eq!(ask(&mut c, "ISR?"), "2048\n");
        assert_eq!(ask(&mut c, "FAULT?"), "0\n");
    }

    #[test]
    fn resistance_reports_the_calibrated_value() {
        let (s, _) = setup(false);
        let mut c = Fluke5720a::new(s);
        ask(&mut c, "OUT 10000 OHM");
        assert_eq!(
            ask(&mut c, "OUT?"),
            "+1.0000031E+04,OHM,+0.0000000E+00,0,+0.00E+00\n"
        );
        ask(&mut c, "OUT 1.9 KOHM");
        assert!(ask(&mut c, "OUT?").starts_with("+1.9000059E+03,OHM"));
        ask(&mut c, "OUT 12345 OHM");
        assert_eq!(ask(&mut c, "FAULT?"), "1305\n");
        assert_eq!(ask(&mut c, "EXPLAIN? 1305"), "Not a decade or 1.9 value\n");
    }

    #[test]
    fn faults_errors_and_esr() {
        let (s, _) = setup(false);
        let mut c = Fluke5720a::new(s);
        ask(&mut c, "*CLS");
        ask(&mut c, "FROB");
        ask(&mut c, "OUT 2000 V");
        ask(&mut c, "OUT ten V");
        c.inject_error();
        assert_eq!(ask(&mut c, "*ESR?"), (32 | 16 | 8).to_string() + "\n");
        assert_eq!(ask(&mut c, "FAULT?"), "1301\n");
        assert_eq!(ask(&mut c, "ERR?"), "1304,\"Output limit exceeded\"\n");
        assert_eq!(ask(&mut c, "FAULT?;FAULT?;FAULT?"), "1302\n1306\n0\n");
        assert_eq!(ask(&mut c, "ERR?"), "0,\"No Error\"\n");
        assert_eq!(ask(&mut c, "EXPLAIN? 0"), "No Error\n");
        assert_eq!(ask(&mut c, "EXPLAIN? 42"), "Unknown fault code\n");
        ask(&mut c, "EXTSENSE ON;RCOMP ON;BOOST ON;OUT 5 A, 0 Hz");
        assert_eq!(ask(&mut c, "FAULT?"), "0\n");
        assert_eq!(
            ask(&mut c, "ISR?"),
            (0x0800 | 0x4 | 0x8 | 0x10).to_string() + "\n"
        );
    }
}
