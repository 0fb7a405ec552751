//! A tokenizer for the hand-written dialects (3458A, 8508A, 5720A): a message is units separated
//! by `;`, a unit is a header word followed by comma-separated parameters; and the [`Personality`]
//! every such dialect is.

use super::Personality;
use super::model::clean_field;
use crate::id::PersonalityId;
use crate::reply::Reply;

/// A hand-written dialect (3458A, 5720A, 8508A): a message is carried out unit by unit. What
/// makes such a model a [`Personality`] is the same for all of them; the model says the rest.
pub(crate) trait UnitDialect: Send {
    /// Which model this is.
    const ID: PersonalityId;

    /// What ends each reply line.
    const OUTPUT_TERMINATOR: &'static [u8] = b"\n";

    /// Carries out one unit, adding its output to `reply`.
    fn unit(&mut self, unit: &Unit<'_>, reply: &mut Reply);

    /// Reports a message the instrument's parser cannot read: not text, or longer than its input
    /// buffer.
    fn unreadable(&mut self);

    /// The controller addressed the instrument to talk while it had nothing to send.
    fn addressed(&mut self) -> Reply;

    /// Queues one error the way the model reports errors (fault injection).
    fn injected_error(&mut self);

    /// The serial number the model keeps (a fault swaps the unit).
    fn serial_mut(&mut self) -> &mut String;

    /// The model's own bits of the status byte.
    fn summary(&self) -> u8 {
        0
    }
}

impl<T: UnitDialect> Personality for T {
    fn id(&self) -> PersonalityId {
        T::ID
    }

    fn handle(&mut self, message: &[u8]) -> Reply {
        let mut reply = Reply::none();
        match units(message) {
            Some(us) => {
                for u in &us {
                    self.unit(u, &mut reply);
                }
            }
            None => self.unreadable(),
        }
        reply
    }

    fn output_terminator(&self) -> &'static [u8] {
        T::OUTPUT_TERMINATOR
    }

    fn talk(&mut self) -> Reply {
        self.addressed()
    }

    fn status_byte(&mut self) -> u8 {
        self.summary()
    }

    fn input_overflow(&mut self) {
        self.unreadable();
    }

    fn inject_error(&mut self) {
        self.injected_error();
    }

    fn set_serial(&mut self, serial: &str) {
        *self.serial_mut() = clean_field(serial);
    }
}

/// One command of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit<'a> {
    /// The header, upper-cased, `?` included for queries.
    pub(crate) header: String,
    /// Parameters, trimmed; quotes kept.
    pub(crate) params: Vec<&'a str>,
}

impl Unit<'_> {
    /// The parameter at `i`, if present and not empty.
    pub(crate) fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).copied().filter(|p| !p.is_empty())
    }
}

/// Adds one reply line as the Fluke dialects send it: LF-terminated, EOI with the last byte.
pub(crate) fn lf_line(reply: &mut Reply, text: &str) {
    reply.push(format!("{text}\n"), true);
}

/// Splits `s` at `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(s.get(start..i).unwrap_or_default());
            start = i + c.len_utf8();
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    out
}

/// The units of `message`; `None` when it is not text (the instrument's parser would choke).
/// Empty units (`;;`, a trailing `;`) are dropped.
pub(crate) fn units(message: &[u8]) -> Option<Vec<Unit<'_>>> {
    let text = std::str::from_utf8(message).ok()?;
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return None;
    }
    Some(
        split_outside_quotes(text, ';')
            .into_iter()
            .filter_map(parse_unit)
            .collect(),
    )
}

fn parse_unit(unit: &str) -> Option<Unit<'_>> {
    let unit = unit.trim();
    if unit.is_empty() {
        return None;
    }
    let (header, rest) = match unit.find(char::is_whitespace) {
        Some(i) => (unit.get(..i)?, unit.get(i..)?.trim()),
        None => (unit, ""),
    };
    let params = if rest.is_empty() {
        Vec::new()
    } else {
        split_outside_quotes(rest, ',')
            .into_iter()
            .map(str::trim)
            .collect()
    };
    Some(Unit {
        header: header.to_ascii_uppercase(),
        params,
    })
}

/// A finite decimal number.
pub(crate) fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    // Rust also parses "inf" and "nan"; instruments do not.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A number followed by an optional unit word, with or without a space: `10 V`, `10V`,
/// `-1.5E-3 MV`, `1000 Hz`. The unit is upper-cased.
pub(crate) fn number_with_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let split = s
        .char_indices()
        .find(|&(i, c)| {
            c.is_ascii_alphabetic()
                && !((c == 'e' || c == 'E')
                    && s.get(i + 1..)
                        .and_then(|r| r.chars().next())
                        .is_some_and(|n| n.is_ascii_digit() || n == '+' || n == '-'))
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let value = number(s.get(..split)?)?;
    let unit = s.get(split..)?.trim();
    if !unit.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    Some((value, unit.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_units_headers_and_params() {
        let u = units(b"PRESET NORM; OFORMAT ASCII;FUNC DCV, 10 ;;TARM SGL,1;ID?").unwrap();
        let got: Vec<(String, Vec<&str>)> = u.into_iter().map(|u| (u.header, u.params)).collect();
        assert_eq!(
            got,
            [
                ("PRESET".to_owned(), vec!["NORM"]),
                ("OFORMAT".to_owned(), vec!["ASCII"]),
                ("FUNC".to_owned(), vec!["DCV", "10"]),
                ("TARM".to_owned(), vec!["SGL", "1"]),
                ("ID?".to_owned(), vec![]),
            ]
        );
        let u = units(b"DISP MSG,\"A;B,C\"").unwrap();
        assert_eq!(u[0].params, ["MSG", "\"A;B,C\""]);
        assert!(units(b"ID?\x01").is_none());
        assert!(units(b"\xff").is_none());
        assert_eq!(units(b"  ").unwrap(), vec![]);
    }

    #[test]
    fn numbers_and_units() {
        assert_eq!(number(" 1e3 "), Some(1000.0));
        assert_eq!(number("nan"), None);
        assert_eq!(number("inf"), None);
        assert_eq!(number("1e999"), None);
        assert_eq!(number_with_unit("10 V"), Some((10.0, "V".to_owned())));
        assert_eq!(number_with_unit("10V"), Some((10.0, "V".to_owned())));
        assert_eq!(
            number_with_unit("1.5E-3 mv"),
            Some((1.5e-3, "MV".to_owned()))
        );
        assert_eq!(number_with_unit("1E+3Hz"), Some((1e3, "HZ".to_owned())));
        assert_eq!(number_with_unit("0"), Some((0.0, String::new())));
        assert_eq!(number_with_unit("V"), None);
        assert_eq!(number_with_unit("10 V V"), None);
    }

    proptest! {
        #[test]
        fn tokenizer_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(us) = units(&bytes) {
                for u in us {
                    for p in &u.params {
                        let _ = number(p);
                        let _ = number_with_unit(p);
                    }
                }
            }
        }

        #[test]
        fn numbers_round_trip(x in -1e12f64..1e12) {
            prop_assert_eq!(number(&x.to_string()), Some(x));
            prop_assert_eq!(number_with_unit(&format!("{x:e} V")), Some((x, "V".to_owned())));
        }
    }
}
