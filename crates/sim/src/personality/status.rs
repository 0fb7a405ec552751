//! The IEEE 488.2 status model every personality with status registers shares: the standard event
//! register, its enable, the service request enable and the status byte they summarise. The
//! hand-written dialects (Fluke 5720A and 8508A) also take their status commands from here, as
//! text; the SCPI personalities run the same operations from their command trees
//! (`scpi_util.rs`), with the error queue on top.

use super::text::{Unit, lf_line, number};
use crate::reply::Reply;

/// `*ESR?` bit: operation complete.
pub(crate) const ESR_OPC: u8 = 0x01;
/// `*ESR?` bit: query error (a reply asked for and not there).
pub(crate) const ESR_QUERY: u8 = 0x04;
/// `*ESR?` bit: device-dependent error.
pub(crate) const ESR_DEVICE: u8 = 0x08;
/// `*ESR?` bit: execution error (a value out of range).
pub(crate) const ESR_EXECUTION: u8 = 0x10;
/// `*ESR?` bit: command error (a message the instrument does not understand).
pub(crate) const ESR_COMMAND: u8 = 0x20;
/// `*ESR?` bit: power on.
pub(crate) const ESR_PON: u8 = 0x80;

/// Status byte bit: the SCPI error/event queue is not empty (EAV).
pub(crate) const STB_EAV: u8 = 0x04;
/// The status byte's event summary bit (ESB) and request service bit (RQS).
const STB_ESB: u8 = 0x20;
const STB_RQS: u8 = 0x40;

/// The registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    /// Standard event status register, cleared by reading it.
    pub(crate) esr: u8,
    /// Its enable mask (`*ESE`).
    pub(crate) ese: u8,
    /// Service request enable (`*SRE`); RQS itself cannot be enabled.
    pub(crate) sre: u8,
}

/// What a common command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Common {
    /// Carried out; the reply, for a query.
    Done(Option<String>),
    /// `*ESE`/`*SRE` with a value that is a number but not 0–255 (`out_of_range`) or none at
    /// all; each instrument reports that its own way.
    BadValue {
        /// A number outside 0–255, rather than a missing or unreadable one.
        out_of_range: bool,
    },
    /// Not a status command: the instrument's own.
    Other,
}

impl Status {
    /// At power-on: only PON set.
    pub(crate) fn power_on() -> Self {
        Self {
            esr: ESR_PON,
            ese: 0,
            sre: 0,
        }
    }

    /// The status byte: the instrument's own summary bits `extra` (e.g. 0x08, a fault queued),
    /// the event summary, and RQS when an enabled bit is set.
    pub(crate) fn status_byte(&self, extra: u8) -> u8 {
        let mut stb = extra & !(STB_ESB | STB_RQS);
        if self.esr & self.ese != 0 {
            stb |= STB_ESB;
        }
        if stb & self.sre != 0 {
            stb |= STB_RQS;
        }
        stb
    }

    /// `*ESR?`: the register, cleared by reading it.
    pub(crate) fn take_esr(&mut self) -> u8 {
        std::mem::take(&mut self.esr)
    }

    /// `*SRE`: the enable mask, without RQS, which cannot be enabled.
    pub(crate) fn set_sre(&mut self, mask: u8) {
        self.sre = mask & !STB_RQS;
    }

    /// [`common`](Status::common) for one unit of a message: a status command is carried out and
    /// its reply sent as a line ([`lf_line`]); `Common::Done` then carries no text.
    pub(crate) fn unit(&mut self, u: &Unit<'_>, extra: u8, reply: &mut Reply) -> Common {
        match self.common(&u.header, u.param(0), extra) {
            Common::Done(Some(text)) => {
                lf_line(reply, &text);
                Common::Done(None)
            }
            other => other,
        }
    }

    /// Carries out the status commands among IEEE 488.2's common commands (`*OPC`, `*OPC?`,
    /// `*WAI`, `*ESR?`, `*ESE`, `*ESE?`, `*SRE`, `*SRE?`, `*STB?`, `*TST?`); `extra` are the
    /// instrument's summary bits for `*STB?`. `*IDN?`, `*RST` and `*CLS` touch the instrument's
    /// own state and stay with it.
    pub(crate) fn common(&mut self, header: &str, param: Option<&str>, extra: u8) -> Common {
        let reply = |v: u8| Common::Done(Some(v.to_string()));
        match header {
            "*OPC" => self.esr |= ESR_OPC,
            "*OPC?" => return Common::Done(Some("1".to_owned())),
            "*WAI" => {}
            "*ESR?" => return reply(self.take_esr()),
            "*ESE" | "*SRE" => match param.and_then(number) {
                Some(v) if (0.0..=255.0).contains(&v) => {
                    let v = v as u8;
                    if header == "*ESE" {
                        self.ese = v;
                    } else {
                        self.set_sre(v);
                    }
                }
                Some(_) => return Common::BadValue { out_of_range: true },
                None => {
                    return Common::BadValue {
                        out_of_range: false,
                    };
                }
            },
            "*ESE?" => return reply(self.ese),
            "*SRE?" => return reply(self.sre),
            "*STB?" => return reply(self.status_byte(extra)),
            "*TST?" => return reply(0),
            _ => return Common::Other,
        }
        Common::Done(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn event_register_reads_and_clears() {
        let mut s = Status::power_on();
        assert_eq!(s.common("*OPC", None, 0), Common::Done(None));
        assert_eq!(
            s.common("*ESR?", None, 0),
            Common::Done(Some((ESR_PON | ESR_OPC).to_string()))
        );
        assert_eq!(s.common("*ESR?", None, 0), Common::Done(Some("0".into())));
    }

    #[test]
    fn enabled_events_summarise_and_request_service() {
        let mut s = Status::power_on();
        assert_eq!(s.common("*ESE", Some("32"), 0), Common::Done(None));
        assert_eq!(s.common("*SRE", Some("255"), 0), Common::Done(None));
        assert_eq!(s.common("*SRE?", None, 0), Common::Done(Some("191".into())));
        assert_eq!(
            s.common("*STB?", None, 0x08),
            Common::Done(Some("72".into()))
        );
        s.esr |= ESR_COMMAND;
        assert_eq!(s.common("*STB?", None, 0), Common::Done(Some("96".into())));
    }

    #[test]
    fn bad_register_values_are_left_to_the_instrument() {
        let mut s = Status::power_on();
        assert_eq!(
            s.common("*ESE", Some("256"), 0),
            Common::BadValue { out_of_range: true }
        );
        assert_eq!(
            s.common("*SRE", None, 0),
            Common::BadValue {
                out_of_range: false
            }
        );
        assert_eq!(s.common("OUT", Some("10"), 0), Common::Other);
        assert_eq!(s, Status::power_on());
    }

    proptest! {
        #[test]
        fn never_panics(header in "\\*?[A-Z]{0,4}\\??", param in proptest::option::of("\\PC{0,8}")) {
            let mut s = Status::power_on();
            let _ = s.common(&header, param.as_deref(), 0);
        }
    }
}
