//! Turning replies into values: text replies (`number`, `csv`, `regex`, `text`) and the payloads
//! of binary replies (IEEE 488.2 block contents, 3458A SREAL/DREAL). Pure functions; the
//! transport does the framing (reading `#<n><len>` headers or a byte count off the wire).

use std::collections::BTreeMap;

use regex_lite::Regex;

use super::template::{Template, TemplateError};
use crate::session::{InstrumentError, Measurement, NumberError, parse_error_reply, parse_number};
use crate::transport::preview;

/// SCPI's overload marker, also sent as a binary float.
const OVERLOAD: f64 = 9.9e37;
/// SCPI's "not a number" marker.
const NOT_A_NUMBER: f64 = 9.91e37;
/// How close a binary value must be to a marker to count as it: a `real32` cannot hold 9.9E37
/// exactly (its nearest value is 6e-8 away, relatively), while the two markers are 1e-3 apart.
const MARKER_TOLERANCE: f64 = 1e-6;

/// How a reply becomes values.
#[derive(Debug, Clone)]
pub enum ReplySpec {
    /// One number (SCPI NR1/NR2/NR3).
    Number,
    /// Comma-separated numbers.
    Csv {
        /// 0-based field to take; `None`: every field is a value.
        field: Option<usize>,
    },
    /// Named captures of a regular expression, each one number.
    Regex {
        /// The pattern; it has at least one named capture.
        pattern: Regex,
        /// Unit per capture name.
        units: BTreeMap<String, String>,
    },
    /// An IEEE 488.2 definite-length block of floats (the transport removes the header).
    Block {
        /// Size of each float.
        format: BlockFormat,
        /// Byte order of each float.
        order: ByteOrder,
    },
    /// Headerless big-endian floats, `count` of them (3458A `OFORMAT SREAL|DREAL`).
    Raw {
        /// Size of each float.
        format: RawFormat,
        /// How many values (rendered with the operation's parameters).
        count: Template,
        /// Whether the read termination follows the data.
        terminated: bool,
    },
    /// The reply is kept as text, no numbers.
    Text,
}

impl ReplySpec {
    /// The `kind` as written in profiles.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Csv { .. } => "csv",
            Self::Regex { .. } => "regex",
            Self::Block { .. } => "block",
            Self::Raw { .. } => "raw",
            Self::Text => "text",
        }
    }

    /// Whether the reply is binary, so the transport must frame it instead of reading a line.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Block { .. } | Self::Raw { .. })
    }
}

/// Float size in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// IEEE-754 single precision (`FORM:DATA REAL,32`).
    Real32,
    /// IEEE-754 double precision (`FORM:DATA REAL,64`).
    Real64,
}

impl BlockFormat {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::Real32 => 4,
            Self::Real64 => 8,
        }
    }

    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Real32 => "real32",
            Self::Real64 => "real64",
        }
    }
}

/// Byte order of block floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Most significant byte first (Keysight `FORM:BORD NORM`).
    Big,
    /// Least significant byte first (`FORM:BORD SWAP`).
    Little,
}

impl ByteOrder {
    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Big => "big",
            Self::Little => "little",
        }
    }
}

/// 3458A headerless float formats (always big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// 4-byte IEEE-754 single.
    SReal,
    /// 8-byte IEEE-754 double.
    DReal,
}

impl RawFormat {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::SReal => 4,
            Self::DReal => 8,
        }
    }

    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SReal => "sreal",
            Self::DReal => "dreal",
        }
    }
}

/// One value out of a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The regex capture it came from; `None` for other kinds.
    pub name: Option<String>,
    /// Unit from the profile (`regex` replies), if it names one.
    pub unit: Option<String>,
    /// The number, overload or NaN marker; `None` for a `text` reply.
    pub measurement: Option<Measurement>,
    /// The text the value was read from (the field or capture, trimmed; the whole reply for
    /// `text`). For binary replies: the shortest decimal that reads back to the same float of the
    /// format's width, e.g. `10.000023` or `1e-7`.
    pub raw: String,
}

/// Why a reply does not read as its profile says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A number (the whole reply, a field or a capture) does not parse.
    #[error("{what} `{}` is not a number", preview(text.as_bytes()))]
    NotANumber {
        /// `reply`, `field 2` or `capture temperature`.
        what: String,
        /// The offending text.
        text: String,
        /// Why.
        #[source]
        source: NumberError,
    },
    /// A `csv` reply has fewer fields than the profile's `field` needs.
    #[error("reply `{}` has {count} fields; the profile reads field {field} (0-based)", preview(reply.as_bytes()))]
    MissingField {
        /// The reply.
        reply: String,
        /// The field asked for.
        field: usize,
        /// Fields present.
        count: usize,
    },
    /// A `regex` reply does not match.
    #[error("reply `{}` does not match `{pattern}`", preview(reply.as_bytes()))]
    NoMatch {
        /// The reply.
        reply: String,
        /// The profile's pattern.
        pattern: String,
    },
    /// A named capture took no part in the match.
    #[error("reply `{}` matches `{pattern}` but capture `{name}` is empty", preview(reply.as_bytes()))]
    MissingCapture {
        /// The reply.
        reply: String,
        /// The profile's pattern.
        pattern: String,
        /// The capture.
        name: String,
    },
    /// `parse_reply` was given a binary kind.
    #[error("`{kind}` replies are binary; decode them with decode_block or decode_raw")]
    Binary {
        /// The reply kind.
        kind: &'static str,
    },
    /// A binary payload is not a whole number of values.
    #[error("binary reply of {len} bytes is not a whole number of {size}-byte values")]
    BadLength {
        /// Payload length.
        len: usize,
        /// Bytes per value.
        size: usize,
    },
    /// A `raw` reply's count does not render to a usable number.
    #[error("raw reply count `{count}` is not a number of values from 1 to {MAX_RAW_COUNT}")]
    BadCount {
        /// The rendered count.
        count: String,
    },
    /// A `raw` reply's count template could not be rendered.
    #[error("raw reply count cannot be rendered")]
    Count(#[source] TemplateError),
    /// A status register reply is not an integer.
    #[error("status reply `{}` is not an integer register value", preview(reply.as_bytes()))]
    BadRegister {
        /// The reply.
        reply: String,
    },
    /// An error-queue reply is not `<code>,"<message>"`.
    #[error("error queue reply `{}` is not `<code>,\"<message>\"`", preview(reply.as_bytes()))]
    BadErrorReply {
        /// The reply.
        reply: String,
    },
    /// An error-queue reply is not a bare integer code.
    #[error("error queue reply `{}` is not an integer code", preview(reply.as_bytes()))]
    BadErrorCode {
        /// The reply.
        reply: String,
    },
}

/// Largest `raw` count: far beyond the 3458A's reading memory, small enough that the byte
/// count cannot overflow anywhere.
pub const MAX_RAW_COUNT: usize = 1 << 24;

/// Reads a text reply. Surrounding whitespace (a CR left before LF, say) is ignored.
///
/// `number`: one value through [`parse_number`], so `±9.9E37` and `9.91E37` become the
/// overload and NaN markers. `csv`: one value per field, or just `field`. `regex`: one value per
/// named capture, named after it, with its unit; every capture must take part in the match.
/// `text`: one value without a measurement. Binary kinds are an error: see [`decode_block`] and
/// [`decode_raw`].
pub fn parse_reply(spec: &ReplySpec, text: &str) -> Result<Vec<Value>, ReplyError> {
    let trimmed = text.trim_ascii();
    match spec {
        ReplySpec::Number => Ok(vec![number("reply".to_owned(), trimmed, None, None)?]),
        ReplySpec::Csv { field: Some(field) } => {
            let field_text =
                trimmed
                    .split(',')
                    .nth(*field)
                    .ok_or_else(|| ReplyError::MissingField {
                        reply: text.to_owned(),
                        field: *field,
                        count: trimmed.split(',').count(),
                    })?;
            Ok(vec![number(
                format!("field {field}"),
                field_text.trim_ascii(),
                None,
                None,
            )?])
        }
        ReplySpec::Csv { field: None } => trimmed
            .split(',')
            .enumerate()
            .map(|(i, f)| number(format!("field {i}"), f.trim_ascii(), None, None))
            .collect(),
        ReplySpec::Regex { pattern, units } => {
            let captures = pattern
                .captures(trimmed)
                .ok_or_else(|| ReplyError::NoMatch {
                    reply: text.to_owned(),
                    pattern: pattern.as_str().to_owned(),
                })?;
            pattern
                .capture_names()
                .flatten()
                .map(|name| {
                    let found = captures
                        .name(name)
                        .ok_or_else(|| ReplyError::MissingCapture {
                            reply: text.to_owned(),
                            pattern: pattern.as_str().to_owned(),
                            name: name.to_owned(),
                        })?;
                    number(
                        format!("capture {name}"),
                        found.as_str().trim_ascii(),
                        Some(name.to_owned()),
                        units.get(name).cloned(),
                    )
                })
                .collect()
        }
        ReplySpec::Text => Ok(vec![Value {
            name: None,
            unit: None,
            measurement: None,
            raw: trimmed.to_owned(),
        }]),
        ReplySpec::Block { .. } | ReplySpec::Raw { .. } => {
            Err(ReplyError::Binary { kind: spec.kind() })
        }
    }
}

fn number(
    what: String,
    text: &str,
    name: Option<String>,
    unit: Option<String>,
) -> Result<Value, ReplyError> {
    let measurement = parse_number(text).map_err(|source| ReplyError::NotANumber {
        what,
        text: text.to_owned(),
        source,
    })?;
    Ok(Value {
        name,
        unit,
        measurement: Some(measurement),
        raw: text.to_owned(),
    })
}

/// Decodes the payload of an IEEE 488.2 definite-length block (header already removed) into
/// floats. An empty payload is no values.
///
/// Non-finite floats (IEEE NaN, ±inf) are returned as they are: this is a decoder, faithful to
/// the bytes. [`block_values`] turns them into measurements (NaN → not-a-number marker,
/// ±inf → overload).
pub fn decode_block(
    payload: &[u8],
    format: BlockFormat,
    order: ByteOrder,
) -> Result<Vec<f64>, ReplyError> {
    Ok(decode(payload, format.size(), order)?
        .into_iter()
        .map(|(v, _)| v)
        .collect())
}

/// Decodes 3458A `SREAL`/`DREAL` output (big-endian IEEE-754, no header). Non-finite values
/// pass through as in [`decode_block`].
pub fn decode_raw(bytes: &[u8], format: RawFormat) -> Result<Vec<f64>, ReplyError> {
    Ok(decode(bytes, format.size(), ByteOrder::Big)?
        .into_iter()
        .map(|(v, _)| v)
        .collect())
}

/// [`decode_block`], each float classified as a [`Measurement`] (see [`classify`]).
pub fn block_values(
    payload: &[u8],
    format: BlockFormat,
    order: ByteOrder,
) -> Result<Vec<Value>, ReplyError> {
    Ok(to_values(decode(payload, format.size(), order)?))
}

/// [`decode_raw`], each float classified as a [`Measurement`] (see [`classify`]).
pub fn raw_values(bytes: &[u8], format: RawFormat) -> Result<Vec<Value>, ReplyError> {
    Ok(to_values(decode(bytes, format.size(), ByteOrder::Big)?))
}

/// How many bytes a `raw` reply carries: `count` rendered with the operation's parameters,
/// times the value size.
pub fn raw_byte_len(
    format: RawFormat,
    count: &Template,
    params: &BTreeMap<String, String>,
) -> Result<usize, ReplyError> {
    let text = count.render(params).map_err(ReplyError::Count)?;
    let n: usize = text
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_RAW_COUNT).contains(n))
        .ok_or_else(|| ReplyError::BadCount {
            count: text.clone(),
        })?;
    // MAX_RAW_COUNT * 8 fits every usize this crate builds for.
    Ok(n.saturating_mul(format.size()))
}

/// A binary float as a measurement: NaN and the `9.91E37` marker are not-a-number, ±inf and
/// `±9.9E37` are overloads (within a relative 1e-6, so `real32` markers are recognised).
pub fn classify(value: f64) -> Measurement {
    let near = |marker: f64| (value.abs() - marker).abs() <= marker * MARKER_TOLERANCE;
    if value.is_nan() || near(NOT_A_NUMBER) {
        Measurement::NotANumber
    } else if value.is_infinite() || near(OVERLOAD) {
        Measurement::Overload {
            negative: value < 0.0,
        }
    } else {
        Measurement::Value(value)
    }
}

/// Each value with its shortest round-tripping decimal in the source width (`10.000023`,
/// `1e-7`, `NaN`, `inf`).
fn decode(bytes: &[u8], size: usize, order: ByteOrder) -> Result<Vec<(f64, String)>, ReplyError> {
    let big = order == ByteOrder::Big;
    let decoded = if size == 4 {
        decode_width(
            bytes,
            if big {
                f32::from_be_bytes
            } else {
                f32::from_le_bytes
            },
        )
    } else {
        decode_width(
            bytes,
            if big {
                f64::from_be_bytes
            } else {
                f64::from_le_bytes
            },
        )
    };
    decoded.ok_or(ReplyError::BadLength {
        len: bytes.len(),
        size,
    })
}

/// [`decode`] for floats of `N` bytes read by `from`; `None` when the bytes are not a whole
/// number of them.
fn decode_width<const N: usize, F: ryu::Float + Into<f64>>(
    bytes: &[u8],
    from: fn([u8; N]) -> F,
) -> Option<Vec<(f64, String)>> {
    let (chunks, rest) = bytes.as_chunks::<N>();
    if !rest.is_empty() {
        return None;
    }
    let mut text = ryu::Buffer::new();
    Some(
        chunks
            .iter()
            .map(|c| {
                let v = from(*c);
                (v.into(), text.format(v).to_owned())
            })
            .collect(),
    )
}

fn to_values(decoded: Vec<(f64, String)>) -> Vec<Value> {
    decoded
        .into_iter()
        .map(|(v, raw)| Value {
            name: None,
            unit: None,
            measurement: Some(classify(v)),
            raw,
        })
        .collect()
}

/// Reads a status register reply (`ISR?`, `STAT:OPER?`, `*ESR?`) as an integer: `16`, `+16`,
/// or an integral NR2/NR3 such as `+1.6E+01`. A negative integer (a 16-bit register shown
/// signed) is taken as its two's complement, so bit tests still work.
pub fn parse_register(reply: &str) -> Result<u64, ReplyError> {
    let bad = || ReplyError::BadRegister {
        reply: reply.to_owned(),
    };
    let text = reply.trim_ascii();
    if let Some(v) = parse_integer(text) {
        // Two's complement on purpose (see above).
        return Ok(v as u64);
    }
    match parse_number(text) {
        // Integral and inside the range where f64 holds every integer exactly.
        Ok(Measurement::Value(v)) if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 => {
            Ok((v as i64) as u64)
        }
        _ => Err(bad()),
    }
}

/// `[+-]?digits` as an `i64`.
fn parse_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.strip_prefix('+').unwrap_or(text).parse().ok()
}

/// Reads an error-queue reply of the `code_message` format, `<code>,"<message>"`.
pub fn parse_code_message(reply: &str) -> Result<InstrumentError, ReplyError> {
    parse_error_reply(reply).map_err(|_| ReplyError::BadErrorReply {
        reply: reply.to_owned(),
    })
}

/// Reads an error-queue reply of the `code` format: a bare integer (5720A `FAULT?`); the
/// message is empty until an `explain` query fills it.
pub fn parse_code(reply: &str) -> Result<InstrumentError, ReplyError> {
    parse_integer(reply.trim_ascii())
        .and_then(|code| i32::try_from(code).ok())
        .map(|code| InstrumentError {
            code,
            message: String::new(),
        })
        .ok_or_else(|| ReplyError::BadErrorCode {
            reply: reply.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vaisala() -> ReplySpec {
        ReplySpec::Regex {
            pattern: Regex::new(
                r"^P=\s*(?P<pressure>\S+)\s+hPa\s+T=\s*(?P<temperature>\S+)\s+'C\s+RH=\s*(?P<humidity>\S+)\s+%RH$",
            )
            .unwrap(),
            units: [("pressure", "hPa"), ("temperature", "°C")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    fn numbers(values: &[Value]) -> Vec<Option<Measurement>> {
        values.iter().map(|v| v.measurement).collect()
    }

    #[test]
    fn number_replies() {
        let v = parse_reply(&ReplySpec::Number, "+1.00000023E+01\r").unwrap();
        assert_eq!(numbers(&v), [Some(Measurement::Value(10.000_002_3))]);
        assert_eq!(v[0].raw, "+1.00000023E+01");
        let v = parse_reply(&ReplySpec::Number, "-9.9E37").unwrap();
        assert_eq!(
            numbers(&v),
            [Some(Measurement::Overload { negative: true })]
        );
        let v = parse_reply(&ReplySpec::Number, "9.91E37").unwrap();
        assert_eq!(numbers(&v), [Some(Measurement::NotANumber)]);
        let e = parse_reply(&ReplySpec::Number, "+01.01103E+00NVDC").unwrap_err();
        assert!(
            matches!(&e, ReplyError::NotANumber { what, source: NumberError::Unexpected { .. }, .. } if what == "reply"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "reply `+01.01103E+00NVDC` is not a number");
    }

    #[test]
    fn csv_replies() {
        let all = ReplySpec::Csv { field: None };
        let v = parse_reply(&all, "1.5, -2E-3,+9.9E37\n").unwrap();
        assert_eq!(
            numbers(&v),
            [
                Some(Measurement::Value(1.5)),
                Some(Measurement::Value(-2e-3)),
                Some(Measurement::Overload { negative: false })
            ]
        );
        assert_eq!(v[1].raw, "-2E-3");
        let first = ReplySpec::Csv { field: Some(0) };
        let v = parse_reply(&first, "10.00012,0,0,0").unwrap();
        assert_eq!(numbers(&v), [Some(Measurement::Value(10.00012))]);
        let v = parse_reply(&first, "23.4567").unwrap();
        assert_eq!(numbers(&v), [Some(Measurement::Value(23.4567))]);
        let third = ReplySpec::Csv { field: Some(2) };
        assert_eq!(
            parse_reply(&third, "1,2").unwrap_err(),
            ReplyError::MissingField {
                reply: "1,2".into(),
                field: 2,
                count: 2
            }
        );
        let e = parse_reply(&all, "1,,3").unwrap_err();
        assert!(
            matches!(&e, ReplyError::NotANumber { what, source: NumberError::Empty, .. } if what == "field 1"),
            "{e:?}"
        );
        // A unit field is not a number: reading every field of `419.527,C` fails loudly.
        assert!(parse_reply(&all, "419.527,C").is_err());
    }

    #[test]
    fn regex_replies() {
        let v = parse_reply(&vaisala(), "P= 1033.7 hPa T= 22.2 'C RH= 38.3 %RH\r").unwrap();
        let got: Vec<(Option<&str>, Option<&str>, Option<Measurement>)> = v
            .iter()
            .map(|v| (v.name.as_deref(), v.unit.as_deref(), v.measurement))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("pressure"),
                    Some("hPa"),
                    Some(Measurement::Value(1033.7))
                ),
                (
                    Some("temperature"),
                    Some("°C"),
                    Some(Measurement::Value(22.2))
                ),
                (Some("humidity"), None, Some(Measurement::Value(38.3))),
            ]
        );
        let e = parse_reply(&vaisala(), "P= 14.99 psia T= 22.2 'C RH= 38.3 %RH").unwrap_err();
        assert!(matches!(e, ReplyError::NoMatch { .. }), "{e:?}");
        let e = parse_reply(&vaisala(), "P= ***.* hPa T= 22.2 'C RH= 38.3 %RH").unwrap_err();
        assert!(
            matches!(&e, ReplyError::NotANumber { what, .. } if what == "capture pressure"),
            "{e:?}"
        );
        let optional = ReplySpec::Regex {
            pattern: Regex::new(r"^(?P<a>\d+)(,(?P<b>\d+))?$").unwrap(),
            units: BTreeMap::new(),
        };
        assert_eq!(parse_reply(&optional, "1,2").unwrap().len(), 2);
        assert!(matches!(
            parse_reply(&optional, "1").unwrap_err(),
            ReplyError::MissingCapture { name, .. } if name == "b"
        ));
    }

    #[test]
    fn text_and_binary_kinds() {
        let v = parse_reply(&ReplySpec::Text, "  HP3458A\r\n").unwrap();
        assert_eq!(
            v,
            [Value {
                name: None,
                unit: None,
                measurement: None,
                raw: "HP3458A".into()
            }]
        );
        let block = ReplySpec::Block {
            format: BlockFormat::Real64,
            order: ByteOrder::Big,
        };
        assert_eq!(
            parse_reply(&block, "1").unwrap_err(),
            ReplyError::Binary { kind: "block" }
        );
        assert!(block.is_binary());
        assert!(!ReplySpec::Text.is_binary());
    }

    #[test]
    fn blocks() {
        // Two float64 big-endian: 1.0 and -2.5, as `#216` + 16 bytes carries them.
        let payload = [0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xc0, 0x04, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_block(&payload, BlockFormat::Real64, ByteOrder::Big).unwrap(),
            [1.0, -2.5]
        );
        let swapped: Vec<u8> = payload
            .chunks(8)
            .flat_map(|c| c.iter().rev().copied())
            .collect();
        assert_eq!(
            decode_block(&swapped, BlockFormat::Real64, ByteOrder::Little).unwrap(),
            [1.0, -2.5]
        );
        assert_eq!(
            decode_block(&[0x3f, 0x80, 0, 0], BlockFormat::Real32, ByteOrder::Big).unwrap(),
            [1.0]
        );
        assert_eq!(
            decode_block(&[], BlockFormat::Real64, ByteOrder::Big).unwrap(),
            Vec::<f64>::new()
        );
        assert_eq!(
            decode_block(&payload[..12], BlockFormat::Real64, ByteOrder::Big).unwrap_err(),
            ReplyError::BadLength { len: 12, size: 8 }
        );
        assert_eq!(
            decode_block(&payload[..3], BlockFormat::Real32, ByteOrder::Big).unwrap_err(),
            ReplyError::BadLength { len: 3, size: 4 }
        );
    }

    #[test]
    fn raw_dreal_and_sreal() {
        let mut bytes = 10.000_012_f64.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(-1e-9_f64).to_be_bytes());
        assert_eq!(
            decode_raw(&bytes, RawFormat::DReal).unwrap(),
            [10.000_012, -1e-9]
        );
        assert_eq!(
            decode_raw(&0.5f32.to_be_bytes(), RawFormat::SReal).unwrap(),
            [0.5]
        );
        assert_eq!(
            decode_raw(&bytes[..7], RawFormat::DReal).unwrap_err(),
            ReplyError::BadLength { len: 7, size: 8 }
        );
        let count = Template::parse("{count}").unwrap();
        let params = |n: &str| BTreeMap::from([("count".to_owned(), n.to_owned())]);
        assert_eq!(
            raw_byte_len(RawFormat::DReal, &count, &params("10")).unwrap(),
            80
        );
        assert_eq!(
            raw_byte_len(RawFormat::SReal, &count, &params(" 3 ")).unwrap(),
            12
        );
        for bad in ["0", "-1", "x", "", "16777217"] {
            assert!(
                matches!(
                    raw_byte_len(RawFormat::DReal, &count, &params(bad)),
                    Err(ReplyError::BadCount { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            raw_byte_len(RawFormat::DReal, &count, &BTreeMap::new()),
            Err(ReplyError::Count(TemplateError::Missing { .. }))
        ));
    }

    #[test]
    fn binary_markers_and_non_finite() {
        let cases = [
            (1.25, Measurement::Value(1.25)),
            (9.9e37, Measurement::Overload { negative: false }),
            (-9.9e37, Measurement::Overload { negative: true }),
            (
                f64::from(9.9e37_f32),
                Measurement::Overload { negative: false },
            ),
            (9.91e37, Measurement::NotANumber),
            (f64::from(-9.91e37_f32), Measurement::NotANumber),
            (f64::NAN, Measurement::NotANumber),
            (f64::INFINITY, Measurement::Overload { negative: false }),
            (f64::NEG_INFINITY, Measurement::Overload { negative: true }),
            (9.8e37, Measurement::Value(9.8e37)),
        ];
        for (v, expected) in cases {
            assert_eq!(classify(v), expected, "{v}");
        }
        let v = block_values(
            &9.9e37_f32.to_le_bytes(),
            BlockFormat::Real32,
            ByteOrder::Little,
        )
        .unwrap();
        assert_eq!(
            v[0].measurement,
            Some(Measurement::Overload { negative: false })
        );
        assert_eq!(v[0].raw, "9.9e37");
        let v = raw_values(&f64::NAN.to_be_bytes(), RawFormat::DReal).unwrap();
        assert_eq!(v[0].measurement, Some(Measurement::NotANumber));
        assert!(decode_raw(&f64::NAN.to_be_bytes(), RawFormat::DReal).unwrap()[0].is_nan());
        let v = raw_values(&1.1f32.to_be_bytes(), RawFormat::SReal).unwrap();
        assert_eq!(v[0].raw, "1.1");
        assert_eq!(
            v[0].measurement,
            Some(Measurement::Value(f64::from(1.1f32)))
        );
    }

    #[test]
    fn registers() {
        for (reply, expected) in [
            ("16", 16),
            ("+4096\r", 4096),
            ("0", 0),
            ("+1.6E+01", 16),
            ("4.096e3", 4096),
            ("-32768", 0xffff_ffff_ffff_8000),
        ] {
            assert_eq!(parse_register(reply).unwrap(), expected, "{reply:?}");
        }
        for reply in ["", "1.5", "x", "16,0", "1E300", "99999999999999999999"] {
            assert!(
                matches!(parse_register(reply), Err(ReplyError::BadRegister { .. })),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn error_replies() {
        assert_eq!(
            parse_code_message("102,\"TRIGGER TOO FAST\"").unwrap(),
            InstrumentError {
                code: 102,
                message: "TRIGGER TOO FAST".into()
            }
        );
        assert!(matches!(
            parse_code_message("NO ERROR"),
            Err(ReplyError::BadErrorReply { .. })
        ));
        assert_eq!(parse_code(" +123\r").unwrap().code, 123);
        assert_eq!(parse_code("0").unwrap().code, 0);
        for reply in ["", "1,2", "x", "3000000000"] {
            assert!(
                matches!(parse_code(reply), Err(ReplyError::BadErrorCode { .. })),
                "{reply:?}"
            );
        }
    }

    fn encode(values: &[f64], format: BlockFormat, order: ByteOrder) -> Vec<u8> {
        let mut out = Vec::new();
        for &v in values {
            match (format, order) {
                (BlockFormat::Real32, ByteOrder::Big) => {
                    out.extend_from_slice(&(v as f32).to_be_bytes())
                }
                (BlockFormat::Real32, ByteOrder::Little) => {
                    out.extend_from_slice(&(v as f32).to_le_bytes())
                }
                (BlockFormat::Real64, ByteOrder::Big) => out.extend_from_slice(&v.to_be_bytes()),
                (BlockFormat::Real64, ByteOrder::Little) => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        out
    }

    fn block_format() -> impl Strategy<Value = BlockFormat> {
        prop_oneof![Just(BlockFormat::Real32), Just(BlockFormat::Real64)]
    }

    fn byte_order() -> impl Strategy<Value = ByteOrder> {
        prop_oneof![Just(ByteOrder::Big), Just(ByteOrder::Little)]
    }

    proptest! {
        #[test]
        fn text_kinds_never_panic(text in any::<String>(), field in proptest::option::of(0usize..4)) {
            for spec in [ReplySpec::Number, ReplySpec::Csv { field }, vaisala(), ReplySpec::Text] {
                let _ = parse_reply(&spec, &text);
            }
            let _ = parse_register(&text);
            let _ = parse_code(&text);
            let _ = parse_code_message(&text);
        }

        #[test]
        fn binary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for format in [BlockFormat::Real32, BlockFormat::Real64] {
                for order in [ByteOrder::Big, ByteOrder::Little] {
                    let decoded = decode_block(&bytes, format, order);
                    prop_assert_eq!(decoded.is_ok(), bytes.len() % format.size() == 0);
                    let _ = block_values(&bytes, format, order);
                }
            }
            for format in [RawFormat::SReal, RawFormat::DReal] {
                prop_assert_eq!(decode_raw(&bytes, format).is_ok(), bytes.len() % format.size() == 0);
                let _ = raw_values(&bytes, format);
            }
        }

        #[test]
        fn blocks_round_trip(
            values in proptest::collection::vec(any::<f64>(), 0..16),
            format in block_format(),
            order in byte_order(),
        ) {
            let decoded = decode_block(&encode(&values, format, order), format, order).unwrap();
            prop_assert_eq!(decoded.len(), values.len());
            for (d, v) in decoded.iter().zip(&values) {
                match format {
                    BlockFormat::Real64 => prop_assert_eq!(d.to_bits(), v.to_bits()),
                    BlockFormat::Real32 => prop_assert_eq!((*d as f32).to_bits(), (*v as f32).to_bits()),
                }
            }
        }

        #[test]
        fn raw_round_trips(values in proptest::collection::vec(any::<f64>(), 0..16)) {
            let dreal = encode(&values, BlockFormat::Real64, ByteOrder::Big);
            let decoded = decode_raw(&dreal, RawFormat::DReal).unwrap();
            prop_assert_eq!(
                decoded.iter().map(|d| d.to_bits()).collect::<Vec<_>>(),
                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            let sreal = encode(&values, BlockFormat::Real32, ByteOrder::Big);
            let decoded = raw_values(&sreal, RawFormat::SReal).unwrap();
            for (d, v) in decoded.iter().zip(&values) {
                // The text form reads back to the same single-precision float.
                let back: f32 = d.raw.parse().unwrap();
                if (*v as f32).is_nan() {
                    prop_assert!(back.is_nan());
                } else {
                    prop_assert_eq!(back.to_bits(), (*v as f32).to_bits());
                }
            }
        }

        #[test]
        fn csv_round_trips(values in proptest::collection::vec(-1e30f64..1e30, 1..10)) {
            let text = values.iter().map(|v| format!("{v:e}")).collect::<Vec<_>>().join(",");
            let parsed = parse_reply(&ReplySpec::Csv { field: None }, &text).unwrap();
            prop_assert_eq!(
                numbers(&parsed),
                values.iter().map(|v| Some(Measurement::Value(*v))).collect::<Vec<_>>()
            );
            let last = values.len() - 1;
            let one = parse_reply(&ReplySpec::Csv { field: Some(last) }, &text).unwrap();
            prop_assert_eq!(numbers(&one), vec![Some(Measurement::Value(values[last]))]);
        }

        #[test]
        fn vaisala_round_trips(p in 500.0f64..1100.0, t in -40.0f64..60.0, rh in 0.0f64..100.0) {
            let text = format!("P= {p:6.1} hPa T= {t:5.1} 'C RH= {rh:5.1} %RH\r");
            let parsed = parse_reply(&vaisala(), &text).unwrap();
            let got: Vec<f64> = parsed.iter().filter_map(|v| v.measurement.and_then(|m| m.value())).collect();
            let expected: Vec<f64> = [format!("{p:.1}"), format!("{t:.1}"), format!("{rh:.1}")]
                .iter().map(|s| s.parse().unwrap()).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn registers_round_trip(v in 0..=i64::MAX) {
            prop_assert_eq!(parse_register(&v.to_string()).unwrap(), v as u64);
            prop_assert_eq!(parse_register(&format!("+{v}")).unwrap(), v as u64);
        }
    }
}
