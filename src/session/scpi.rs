//! Parsers for the replies every SCPI / IEEE 488.2 instrument gives: identity, error queue
//! entries and numbers. Pure functions, so they are tested without any I/O.

use std::fmt;

use super::SessionError;
use tsagent_bundle::chain::ReadingStatus;

/// SCPI's overload marker (`+9.9E37`, or negative for a negative overload).
const OVERLOAD: f64 = 9.9e37;
/// SCPI's "not a number" marker (`9.91E37`).
const NOT_A_NUMBER: f64 = 9.91e37;

/// An instrument's identity, from its `*IDN?` reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// First field, e.g. `KEITHLEY INSTRUMENTS INC.`.
    pub manufacturer: String,
    /// Second field, e.g. `MODEL 2002`.
    pub model: String,
    /// Third field; `0` or empty on instruments that do not report one.
    pub serial: String,
    /// Everything after the third comma (firmware strings may contain commas).
    pub firmware: String,
}

impl Identity {
    /// Whether `other` is the same unit: manufacturer, model and serial number agree (firmware
    /// may change with an update).
    pub fn same_unit(&self, other: &Identity) -> bool {
        self.manufacturer == other.manufacturer
            && self.model == other.model
            && self.serial == other.serial
    }
}

/// Parses an IEEE 488.2 `*IDN?` reply: four comma-separated fields, each trimmed; the last
/// keeps any further commas. Manufacturer and model must not be empty.
pub fn parse_idn(reply: &str) -> Result<Identity, SessionError> {
    let bad = || SessionError::BadIdentity {
        reply: reply.to_owned(),
    };
    let mut fields = reply.splitn(4, ',').map(str::trim);
    let (Some(manufacturer), Some(model), Some(serial), Some(firmware)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    if manufacturer.is_empty() || model.is_empty() {
        return Err(bad());
    }
    Ok(Identity {
        manufacturer: manufacturer.to_owned(),
        model: model.to_owned(),
        serial: serial.to_owned(),
        firmware: firmware.to_owned(),
    })
}

/// One entry of an instrument's error queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstrumentError {
    /// SCPI error code; 0 means "no error", negative codes are standard SCPI errors.
    pub code: i32,
    /// The instrument's description, without quotes.
    pub message: String,
}

impl fmt::Display for InstrumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},\"{}\"", self.code, self.message)
    }
}

/// Parses a `SYST:ERR?` reply, `<code>,"<message>"`. Tolerates a leading `+` on the code,
/// a message without quotes and surrounding whitespace; `""` inside quotes is an escaped quote.
pub fn parse_error_reply(reply: &str) -> Result<InstrumentError, SessionError> {
    let bad = || SessionError::BadErrorReply {
        reply: reply.to_owned(),
    };
    let (code, message) = reply.trim().split_once(',').ok_or_else(bad)?;
    let code = code.trim();
    let digits = code.strip_prefix(['+', '-']).unwrap_or(code);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code = code.parse::<i32>().map_err(|_| bad())?;
    let message = message.trim();
    let message = match message.strip_prefix('"').and_then(|m| m.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => message.to_owned(),
    };
    Ok(InstrumentError { code, message })
}

/// A numeric reply, or one of SCPI's two special values. Serialised for the control API's event
/// stream: `{"value": 10.0}`, `{"overload": {"negative": false}}`, `"not_a_number"`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measurement {
    /// A finite number.
    Value(f64),
    /// The overload marker `±9.9E37`.
    Overload {
        /// Whether the overload was negative (`-9.9E37`).
        negative: bool,
    },
    /// The "not a number" marker `9.91E37` (either sign).
    NotANumber,
}

impl Measurement {
    /// The number, if the reply was one.
    pub fn value(&self) -> Option<f64> {
        match self {
            Self::Value(value) => Some(*value),
            Self::Overload { .. } | Self::NotANumber => None,
        }
    }

    /// How the reading is stored in the chain.
    pub fn status(&self) -> ReadingStatus {
        match self {
            Self::Value(_) => ReadingStatus::Valid,
            Self::Overload { .. } => ReadingStatus::Overload,
            Self::NotANumber => ReadingStatus::NotANumber,
        }
    }
}

/// Why a reply is not a SCPI number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing but whitespace.
    #[error("empty reply")]
    Empty,
    /// A character outside the NR1/NR2/NR3 grammar.
    #[error("unexpected `{}` at byte {position}", found.escape_default())]
    Unexpected {
        /// Byte offset in the reply as given (leading whitespace included).
        position: usize,
        /// The offending character.
        found: char,
    },
    /// The text stops in the middle of a number, e.g. `1E` or `-`.
    #[error("number ends early")]
    Incomplete,
    /// The number does not fit in an `f64`.
    #[error("number out of range")]
    OutOfRange,
}

/// Parses an NR1 (`-12`), NR2 (`.5`, `3.`, `1.25`) or NR3 (`+1.00000023E+01`) reply.
///
/// Surrounding ASCII whitespace is allowed; words such as `INF` or `NAN`, hex, internal spaces
/// and values that overflow `f64` are not. `±9.9E37` and `±9.91E37` come back as
/// [`Measurement::Overload`] and [`Measurement::NotANumber`].
pub fn parse_number(reply: &str) -> Result<Measurement, NumberError> {
    let start = reply.len() - reply.trim_ascii_start().len();
    let text = reply.trim_ascii();
    if text.is_empty() {
        return Err(NumberError::Empty);
    }
    check_grammar(text).map_err(|at| {
        match text.get(at..).and_then(|rest| rest.chars().next()) {
            Some(found) => NumberError::Unexpected {
                position: start + at,
                found,
            },
            None => NumberError::Incomplete,
        }
    })?;
    // The grammar is a subset of what `f64::from_str` accepts, so this only fails on overflow.
    let value: f64 = text.parse().map_err(|_| NumberError::OutOfRange)?;
    if !value.is_finite() {
        return Err(NumberError::OutOfRange);
    }
    Ok(if value.abs() == NOT_A_NUMBER {
        Measurement::NotANumber
    } else if value.abs() == OVERLOAD {
        Measurement::Overload {
            negative: value < 0.0,
        }
    } else {
        Measurement::Value(value)
    })
}

/// `[+-]? (digits ('.' digits?)? | '.' digits) ([eE] [+-]? digits)?`; on failure, the byte
/// offset where the text stops matching (its length if it ends too early).
fn check_grammar(text: &str) -> Result<(), usize> {
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let digits_from = |i: usize| {
        bytes
            .iter()
            .skip(i)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut i = 0;
    if matches!(at(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let integer = digits_from(i);
    i += integer;
    let mut fraction = 0;
    if at(i) == Some(b'.') {
        i += 1;
        fraction = digits_from(i);
        i += fraction;
    }
    if integer + fraction == 0 {
        return Err(i);
    }
    if matches!(at(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(at(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits_from(i);
        if exponent == 0 {
            return Err(i);
        }
        i += exponent;
    }
    if i < bytes.len() { Err(i) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identity() {
        let id = parse_idn("KEITHLEY INSTRUMENTS INC.,MODEL 2002,1234567,A01  /A02\n").unwrap();
        assert_eq!(id.manufacturer, "KEITHLEY INSTRUMENTS INC.");
        assert_eq!(id.model, "MODEL 2002");
        assert_eq!(id.serial, "1234567");
        assert_eq!(id.firmware, "A01  /A02");
        let id = parse_idn(" FLUKE , 5720A , 9999 , 2.1,boot 1.0, dsp 3 ").unwrap();
        assert_eq!(
            (
                id.manufacturer.as_str(),
                id.model.as_str(),
                id.serial.as_str(),
                id.firmware.as_str()
            ),
            ("FLUKE", "5720A", "9999", "2.1,boot 1.0, dsp 3")
        );
        assert_eq!(parse_idn("ACME,X,,").unwrap().serial, "");
    }

    #[test]
    fn bad_identity() {
        for reply in ["", "HP3458A", "A,B,C", ",MODEL,1,2", "ACME, ,1,2"] {
            let error = parse_idn(reply).unwrap_err();
            assert!(
                matches!(&error, SessionError::BadIdentity { reply: r } if r == reply),
                "{reply:?}: {error:?}"
            );
        }
    }

    #[test]
    fn error_replies() {
        let cases = [
            ("0,\"No error\"", 0, "No error"),
            ("+0,\"No Error\"\r", 0, "No Error"),
            ("-113,\"Undefined header\"", -113, "Undefined header"),
            (
                "-222,\"Data out of range;VOLT, 20\"",
                -222,
                "Data out of range;VOLT, 20",
            ),
            ("102,\"TRIGGER TOO FAST\"", 102, "TRIGGER TOO FAST"),
            ("-100, Command error", -100, "Command error"),
            ("-100,\"say \"\"hi\"\"\"", -100, "say \"hi\""),
            ("5,", 5, ""),
        ];
        for (reply, code, message) in cases {
            let error = parse_error_reply(reply).unwrap();
            assert_eq!(
                (error.code, error.message.as_str()),
                (code, message),
                "{reply:?}"
            );
        }
        for reply in [
            "",
            "No error",
            ",\"x\"",
            "+,\"x\"",
            "1 2,\"x\"",
            "0x10,\"x\"",
            "99999999999,\"x\"",
        ] {
            let error = parse_error_reply(reply).unwrap_err();
            assert!(
                matches!(error, SessionError::BadErrorReply { .. }),
                "{reply:?}"
            );
        }
        let shown = InstrumentError {
            code: -113,
            message: "Undefined header".into(),
        };
        assert_eq!(shown.to_string(), "-113,\"Undefined header\"");
    }

    #[test]
    fn numbers() {
        let cases = [
            ("+1.00000023E+01", 10.0000023),
            ("-12", -12.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("3.", 3.0),
            ("  +4.5e-3\r\n", 4.5e-3),
            ("1E0", 1.0),
            ("0", 0.0),
            ("-0.0", -0.0),
            ("1E-400", 0.0),
        ];
        for (reply, expected) in cases {
            assert_eq!(
                parse_number(reply),
                Ok(Measurement::Value(expected)),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(
            parse_number("+9.9E37"),
            Ok(Measurement::Overload { negative: false })
        );
        assert_eq!(
            parse_number("+9.90000000E+37"),
            Ok(Measurement::Overload { negative: false })
        );
        assert_eq!(
            parse_number("-9.9E+37"),
            Ok(Measurement::Overload { negative: true })
        );
        assert_eq!(parse_number("9.91E37"), Ok(Measurement::NotANumber));
        assert_eq!(parse_number("+9.91000000E+37"), Ok(Measurement::NotANumber));
        assert_eq!(parse_number("9.9E36"), Ok(Measurement::Value(9.9e36)));
        let overload = Measurement::Overload { negative: true };
        assert_eq!(overload.value(), None);
        assert_eq!(overload.status(), ReadingStatus::Overload);
        assert_eq!(Measurement::NotANumber.value(), None);
        assert_eq!(Measurement::NotANumber.status(), ReadingStatus::NotANumber);
        assert_eq!(Measurement::Value(1.5).value(), Some(1.5));
        assert_eq!(Measurement::Value(1.5).status(), ReadingStatus::Valid);
    }

    #[test]
    fn not_numbers() {
        let cases = [
            ("", NumberError::Empty),
            (" \r\n", NumberError::Empty),
            ("+", NumberError::Incomplete),
            (".", NumberError::Incomplete),
            ("1E", NumberError::Incomplete),
            ("1E+", NumberError::Incomplete),
            ("1E400", NumberError::OutOfRange),
            ("-1E400", NumberError::OutOfRange),
            (
                "inf",
                NumberError::Unexpected {
                    position: 0,
                    found: 'i',
                },
            ),
            (
                "NaN",
                NumberError::Unexpected {
                    position: 0,
                    found: 'N',
                },
            ),
            (
                "+INF",
                NumberError::Unexpected {
                    position: 1,
                    found: 'I',
                },
            ),
            (
                "0x1A",
                NumberError::Unexpected {
                    position: 1,
                    found: 'x',
                },
            ),
            (
                "1 .5",
                NumberError::Unexpected {
                    position: 1,
                    found: ' ',
                },
            ),
            (
                "1.0 E3",
                NumberError::Unexpected {
                    position: 3,
                    found: ' ',
                },
            ),
            (
                "  1,2",
                NumberError::Unexpected {
                    position: 3,
                    found: ',',
                },
            ),
            (
                "1.2.3",
                NumberError::Unexpected {
                    position: 3,
                    found: '.',
                },
            ),
            (
                "--1",
                NumberError::Unexpected {
                    position: 1,
                    found: '-',
                },
            ),
            (
                "1e5.0",
                NumberError::Unexpected {
                    position: 3,
                    found: '.',
                },
            ),
            (
                "+01.01103E+00NVDC",
                NumberError::Unexpected {
                    position: 13,
                    found: 'N',
                },
            ),
            (
                "½",
                NumberError::Unexpected {
                    position: 0,
                    found: '½',
                },
            ),
        ];
        for (reply, expected) in cases {
            assert_eq!(parse_number(reply), Err(expected), "{reply:?}");
        }
        assert_eq!(
            NumberError::Unexpected {
                position: 3,
                found: '\t'
            }
            .to_string(),
            "unexpected `\\t` at byte 3"
        );
    }

    /// What parsing the decimal text of `x` must give.
    fn expected(x: f64) -> Measurement {
        if x.abs() == NOT_A_NUMBER {
            Measurement::NotANumber
        } else if x.abs() == OVERLOAD {
            Measurement::Overload { negative: x < 0.0 }
        } else {
            Measurement::Value(x)
        }
    }

    /// `+1.23456789E+01`, the way instruments write NR3.
    fn instrument_nr3(x: f64) -> String {
        let text = format!("{x:+.8E}");
        let (mantissa, exponent) = text.split_once('E').unwrap();
        format!("{mantissa}E{:+03}", exponent.parse::<i32>().unwrap())
    }

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("finite", |x| x.is_finite())
    }

    /// Text made of the grammar's own pieces, to reach every branch of the scanner.
    fn number_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[0-9]{1,4}",
            Just("+".to_owned()),
            Just("-".to_owned()),
            Just(".".to_owned()),
            Just("E".to_owned()),
            Just("e".to_owned()),
            Just(" ".to_owned()),
            Just("9.9E37".to_owned()),
            "\\PC",
        ];
        prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn number_parser_never_panics(text in "\\PC*") {
            let _ = parse_number(&text);
        }

        #[test]
        fn number_parser_never_panics_on_number_like_text(text in number_like()) {
            if let Ok(Measurement::Value(value)) = parse_number(&text) {
                prop_assert!(value.is_finite());
            }
        }

        #[test]
        fn nr3_round_trips(x in finite()) {
            let plain = format!("{x:+.8E}");
            prop_assert_eq!(parse_number(&plain), Ok(expected(plain.parse().unwrap())));
            let scpi = instrument_nr3(x);
            prop_assert_eq!(parse_number(&scpi), Ok(expected(scpi.parse().unwrap())));
            prop_assert_eq!(parse_number(&format!("{x:e}")), Ok(expected(x)));
        }

        #[test]
        fn nr1_round_trips(n in any::<i64>()) {
            prop_assert_eq!(parse_number(&n.to_string()), Ok(expected(n as f64)));
        }

        #[test]
        fn nr2_round_trips(x in finite()) {
            prop_assert_eq!(parse_number(&format!(" {x}\n")), Ok(expected(x)));
        }

        #[test]
        fn idn_parser_never_panics(text in "\\PC*") {
            let _ = parse_idn(&text);
        }

        #[test]
        fn idn_fields_round_trip(
            fields in prop::array::uniform4("[A-Za-z0-9 ./-]{0,12}"),
            tail in "[A-Za-z0-9 ,./-]{0,12}",
        ) {
            let [manufacturer, model, serial, firmware] = &fields;
            let firmware = format!("{firmware},{tail}");
            let reply = format!("{manufacturer},{model},{serial},{firmware}");
            match parse_idn(&reply) {
                Ok(id) => {
                    prop_assert_eq!(id.manufacturer, manufacturer.trim());
                    prop_assert_eq!(id.model, model.trim());
                    prop_assert_eq!(id.serial, serial.trim());
                    prop_assert_eq!(id.firmware, firmware.trim());
                }
                Err(_) => prop_assert!(manufacturer.trim().is_empty() || model.trim().is_empty()),
            }
        }

        #[test]
        fn error_reply_parser_never_panics(text in "\\PC*") {
            let _ = parse_error_reply(&text);
        }

        #[test]
        fn error_replies_round_trip(code in any::<i32>(), message in "[^\"]{0,30}", plus in any::<bool>()) {
            let reply = if plus { format!("{code:+},\"{message}\"") } else { format!("{code},\"{message}\"") };
            let parsed = parse_error_reply(&reply).unwrap();
            prop_assert_eq!(parsed, InstrumentError { code, message });
        }
    }
}
