//! `readings.csv` and `events.jsonl`: encoding from the store's exports and strict decoding, one
//! row or line at a time so that neither a sealer nor a verifier holds a whole file.

use std::fmt::Write as _;
use std::io::{self, BufRead, Read};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::csv::{self, CsvError, MAX_RECORD_BYTES};
use super::manifest::EventLine;
use crate::chain::{ReadingRecord, ReadingRef, ReadingStatus};
use crate::hex;
use crate::time::{UtcParser, push_utc_us};

/// The exact header line of `readings.csv`.
pub const READINGS_HEADER: [&str; 15] = [
    "seq",
    "run_id",
    "sequence",
    "instrument_id",
    "instrument",
    "quantity",
    "value",
    "status",
    "unit",
    "raw",
    "utc",
    "utc_us",
    "mono_ns",
    "boot_id",
    "chain",
];

/// One reading as the store exports it, and one row of `readings.csv` as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingExport {
    /// The chained fields.
    pub record: ReadingRecord,
    /// The chain value after this reading.
    pub chain: [u8; 32],
    /// The run's sequence name.
    pub sequence: String,
    /// The instrument's name.
    pub instrument: String,
}

/// One event as the store exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventExport {
    /// The event's id; ids increase through a bundle.
    pub id: u64,
    /// Microseconds since the Unix epoch.
    pub utc_us: i64,
    /// The run it belongs to, if any.
    pub run_id: Option<u64>,
    /// The instrument name it concerns, if any.
    pub instrument: Option<String>,
    /// What happened, e.g. `clock_step`.
    pub kind: String,
    /// Kind-specific details.
    pub detail: serde_json::Value,
}

/// Why `readings.csv` or `events.jsonl` could not be read.
#[derive(Debug, Error)]
pub enum RecordsError {
    /// The file is not UTF-8.
    #[error("{file} is not UTF-8")]
    NotUtf8 {
        /// Which file.
        file: &'static str,
        /// The decoding error.
        #[source]
        source: std::str::Utf8Error,
    },
    /// The CSV layer rejected `readings.csv`.
    #[error("malformed readings.csv")]
    Csv(#[from] CsvError),
    /// The first record is not the expected header.
    #[error("readings.csv header is not `{}`", READINGS_HEADER.join(","))]
    Header,
    /// A column of a reading row does not parse.
    #[error("readings.csv record {record}: bad `{column}` value `{value}`")]
    Column {
        /// Record number, counting the header as 1.
        record: usize,
        /// Column name.
        column: &'static str,
        /// The offending text.
        value: String,
    },
    /// `value` is present exactly when `status` is `valid`, and then finite.
    #[error("readings.csv record {record}: value `{value}` does not fit status `{status}`")]
    ValueStatus {
        /// Record number.
        record: usize,
        /// The value text.
        value: String,
        /// The status text.
        status: String,
    },
    /// `utc` is not the RFC 3339 form of `utc_us`.
    #[error("{file} record {record}: utc `{utc}` does not match utc_us")]
    UtcMismatch {
        /// Which file.
        file: &'static str,
        /// Record (CSV, counting the header) or line number (JSON lines).
        record: usize,
        /// The `utc` text.
        utc: String,
    },
    /// A line of `events.jsonl` is not a valid event object.
    #[error("events.jsonl line {line}: invalid event")]
    EventJson {
        /// Line number from 1.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An `events.jsonl` line longer than [`MAX_RECORD_BYTES`].
    #[error("events.jsonl line {line} is longer than {cap} bytes")]
    EventTooLong {
        /// Line number from 1.
        line: usize,
        /// The cap.
        cap: usize,
    },
    /// The file could not be read.
    #[error("cannot read {file}")]
    Io {
        /// Which file.
        file: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `events.jsonl` has an empty line or lacks its final newline.
    #[error("events.jsonl line {line}: empty line or missing line end")]
    EventFraming {
        /// Line number from 1.
        line: usize,
    },
}

pub use crate::time::format_utc_us;

/// True when the record's value can be written and read back bit for bit.
pub fn value_fits_status(record: &ReadingRef<'_>) -> bool {
    match (record.status, record.value) {
        (ReadingStatus::Valid, Some(v)) => v.is_finite(),
        (ReadingStatus::Overload | ReadingStatus::NotANumber, None) => true,
        _ => false,
    }
}

/// Appends the header and one row per reading. Callers check [`value_fits_status`] and the time
/// range first; a row that fails them would not verify.
pub fn write_readings(rows: &[ReadingExport]) -> String {
    let mut out = String::new();
    csv::write_record(&mut out, &READINGS_HEADER);
    for row in rows {
        write_reading(&mut out, row);
    }
    out
}

/// Appends one `readings.csv` row (no header), for streaming many readings.
pub fn write_reading(out: &mut String, row: &ReadingExport) {
    let mut bytes = Vec::new();
    RowWriter::default().write(
        &mut bytes,
        &row.record.as_ref(),
        &row.sequence,
        &row.instrument,
        &row.chain,
    );
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// Writes `readings.csv` rows into a byte buffer, reusing its scratch space from row to row.
#[derive(Debug, Default)]
pub struct RowWriter {
    scratch: String,
    /// The last `utc_us` formatted and its text: readings of one block share their time.
    utc: Option<(i64, Vec<u8>)>,
}

impl RowWriter {
    /// Appends the header record.
    pub fn write_header(&mut self, out: &mut Vec<u8>) {
        let mut text = String::new();
        csv::write_record(&mut text, &READINGS_HEADER);
        out.extend_from_slice(text.as_bytes());
    }

    /// Appends one row, exactly as [`write_reading`] writes it.
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        r: &ReadingRef<'_>,
        sequence: &str,
        instrument: &str,
        chain: &[u8; 32],
    ) {
        push_u64(out, r.seq);
        out.push(b',');
        push_u64(out, r.run_id);
        out.push(b',');
        csv::write_field(out, sequence);
        out.push(b',');
        push_u64(out, r.instrument_id);
        out.push(b',');
        csv::write_field(out, instrument);
        out.push(b',');
        csv::write_field(out, r.quantity);
        out.push(b',');
        if let (ReadingStatus::Valid, Some(v)) = (r.status, r.value) {
            self.scratch.clear();
            // Writing to a String cannot fail.
            let _ = write!(self.scratch, "{v}");
            out.extend_from_slice(self.scratch.as_bytes());
        }
        out.push(b',');
        out.extend_from_slice(r.status.as_str().as_bytes());
        out.push(b',');
        csv::write_field(out, r.unit);
        out.push(b',');
        csv::write_field(out, r.raw);
        out.push(b',');
        match &self.utc {
            Some((us, text)) if *us == r.utc_us => out.extend_from_slice(text),
            _ => {
                let mut text = Vec::with_capacity(crate::time::UTC_LEN);
                push_utc_us(&mut text, r.utc_us);
                out.extend_from_slice(&text);
                self.utc = Some((r.utc_us, text));
            }
        }
        out.push(b',');
        push_i64(out, r.utc_us);
        out.push(b',');
        push_u64(out, r.mono_ns);
        out.push(b',');
        csv::write_field(out, r.boot_id);
        out.push(b',');
        hex::push(out, chain);
        out.push(b'\n');
    }
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        // `v % 10` is a digit.
        buf[at] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// One row of `readings.csv` as read back, its text borrowed from the reader.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingRow<'a> {
    /// The chained fields.
    pub record: ReadingRef<'a>,
    /// The run's sequence name.
    pub sequence: &'a str,
    /// The instrument's name.
    pub instrument: &'a str,
    /// The chain value after this reading.
    pub chain: [u8; 32],
}

impl ReadingRow<'_> {
    /// An owned copy.
    pub fn to_export(&self) -> ReadingExport {
        let r = &self.record;
        ReadingExport {
            record: ReadingRecord {
                seq: r.seq,
                run_id: r.run_id,
                instrument_id: r.instrument_id,
                quantity: r.quantity.to_owned(),
                value: r.value,
                status: r.status,
                unit: r.unit.to_owned(),
                raw: r.raw.to_owned(),
                utc_us: r.utc_us,
                mono_ns: r.mono_ns,
                boot_id: r.boot_id.to_owned(),
            },
            chain: self.chain,
            sequence: self.sequence.to_owned(),
            instrument: self.instrument.to_owned(),
        }
    }
}

/// Reads `readings.csv` strictly, one row at a time: exact header, 15 fields, canonical numbers,
/// consistent times. Memory is one record, at most [`MAX_RECORD_BYTES`].
#[derive(Debug)]
pub struct ReadingsReader<R> {
    csv: csv::Reader<R>,
    buf: Vec<u8>,
    fields: Vec<Range<usize>>,
    scratch: String,
    utc: UtcParser,
    started: bool,
}

impl<R: BufRead> ReadingsReader<R> {
    /// A reader of `readings.csv` from its first byte.
    pub fn new(input: R) -> Self {
        Self {
            csv: csv::Reader::new(input, READINGS_HEADER.len()),
            buf: Vec::new(),
            fields: Vec::with_capacity(READINGS_HEADER.len()),
            scratch: String::new(),
            utc: UtcParser::default(),
            started: false,
        }
    }

    /// The next reading; `None` after the last. The header is checked before the first.
    pub fn next_row(&mut self) -> Result<Option<ReadingRow<'_>>, RecordsError> {
        if !self.started {
            self.started = true;
            let got = self.read_record()?;
            if let Err(source) = std::str::from_utf8(&self.buf) {
                return Err(RecordsError::NotUtf8 {
                    file: "readings.csv",
                    source,
                });
            }
            let header_ok = got
                && self.fields.len() == READINGS_HEADER.len()
                && self
                    .fields
                    .iter()
                    .zip(READINGS_HEADER)
                    .all(|(r, name)| &self.buf[r.clone()] == name.as_bytes());
            if !header_ok {
                return Err(RecordsError::Header);
            }
        }
        let next = self
            .csv
            .next_record_in_place(&mut self.buf, &mut self.fields)
            .map_err(read_error)?;
        let Some((record, bytes)) = next else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes).map_err(|source| RecordsError::NotUtf8 {
            file: "readings.csv",
            source,
        })?;
        parse_row(record, text, &self.fields, &mut self.scratch, &mut self.utc).map(Some)
    }

    fn read_record(&mut self) -> Result<bool, RecordsError> {
        self.csv
            .next_record(&mut self.buf, &mut self.fields)
            .map_err(read_error)
    }
}

fn read_error(e: csv::ReadError) -> RecordsError {
    match e {
        csv::ReadError::Csv(e) => RecordsError::Csv(e),
        csv::ReadError::Io(source) => RecordsError::Io {
            file: "readings.csv",
            source,
        },
    }
}

/// Reads a whole `readings.csv` from memory (the streaming [`ReadingsReader`], collected).
pub fn read_readings(bytes: &[u8]) -> Result<Vec<ReadingExport>, RecordsError> {
    let mut reader = ReadingsReader::new(bytes);
    let mut out = Vec::new();
    while let Some(row) = reader.next_row()? {
        out.push(row.to_export());
    }
    Ok(out)
}

/// Unsigned decimal in the one spelling `to_string` gives: digits, no sign, no leading zero.
///
/// One pass that checks and adds up the digits, rather than a check and then `str::parse`: the
/// verifier reads five such numbers per reading. Up to 19 digits cannot overflow a `u64`; only 20
/// need checked arithmetic.
fn canonical_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if b.len() <= 19 {
        let mut bad = false;
        let value = b.iter().fold(0u64, |n, &c| {
            let d = c.wrapping_sub(b'0');
            bad |= d > 9;
            n.wrapping_mul(10).wrapping_add(u64::from(d))
        });
        return (!bad).then_some(value);
    }
    b.iter().try_fold(0u64, |n, &c| {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Signed decimal in the one spelling `to_string` gives.
fn canonical_i64(text: &[u8]) -> Option<i64> {
    match text.strip_prefix(b"-") {
        Some(magnitude) => {
            let m = canonical_u64(magnitude).filter(|&m| m != 0)?;
            0i64.checked_sub_unsigned(m)
        }
        None => canonical_u64(text).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A finite number only in the form `Display` writes it, so each value has one spelling.
///
/// Formatting the value again and comparing was a tenth of verifying a big bundle (P7 in
/// BENCHMARKS.md), so the common case is decided without it. `Display` writes a finite value in
/// plain notation, `-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?`, with its shortest round-trip digits: text
/// of any other shape is not canonical. Text of that shape with at most 15 significant digits,
/// whose value is normal (or which is `0` or `-0`), is exactly what `Display` writes: decimals of at most 15
/// significant digits map to distinct doubles in the normal range (`DBL_DIG`), so no shorter
/// spelling and no other of the same length reaches that value. Anything else (16 or 17 digits,
/// subnormals) is formatted and compared as before.
fn canonical_f64(text: &[u8], scratch: &mut String) -> Option<f64> {
    let significant = plain_decimal_digits(text)?;
    let value: f64 = match exact_decimal(text) {
        Some(value) => value,
        // Of the shape above, so ASCII.
        None => std::str::from_utf8(text).ok()?.parse().ok()?,
    };
    if !value.is_finite() {
        return None;
    }
    // A text of zero digits is `0` or `-0`; other text whose value rounded to zero (below the
    // subnormals) is not canonical, and the comparison below says so.
    if significant <= 15 && (value.is_normal() || significant == 0) {
        return Some(value);
    }
    scratch.clear();
    let _ = write!(scratch, "{value}");
    (scratch.as_bytes() == text).then_some(value)
}

/// Powers of ten that a double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The value of `text`, already of the shape [`plain_decimal_digits`] accepts, when it can be had
/// exactly without `str::parse` (Clinger's fast path): its digits as an integer below 2^53 and at
/// most 22 after the point. Both are then doubles exactly, and one IEEE division rounds their
/// exact quotient, the text's value, correctly: the same double `str::parse` gives. `None` for
/// anything else, which `str::parse` then reads.
fn exact_decimal(text: &[u8]) -> Option<f64> {
    let (negative, unsigned) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut digits = 0u64;
    let mut after_point = None;
    let mut count = 0usize;
    for &c in unsigned {
        if c == b'.' {
            after_point = Some(count);
            continue;
        }
        digits = digits
            .checked_mul(10)?
            .checked_add(u64::from(c.wrapping_sub(b'0')))?;
        count += 1;
    }
    if digits >= 1 << 53 {
        return None;
    }
    let scale = EXACT_POWERS_OF_TEN.get(after_point.map_or(0, |at| count - at))?;
    // `digits` is below 2^53, so the conversion is exact.
    let magnitude = digits as f64 / scale;
    Some(if negative { -magnitude } else { magnitude })
}

/// The number of significant digits of `text` if it has the shape `Display` writes a finite
/// `f64` in, `-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?`; `None` otherwise.
fn plain_decimal_digits(text: &[u8]) -> Option<usize> {
    let unsigned = text.strip_prefix(b"-").unwrap_or(text);
    let (int, frac) = match memchr::memchr(b'.', unsigned) {
        Some(dot) => (&unsigned[..dot], Some(&unsigned[dot + 1..])),
        None => (unsigned, None),
    };
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    if !digits(int) || (int.len() > 1 && int[0] == b'0') {
        return None;
    }
    if let Some(frac) = frac
        && (!digits(frac) || frac.last() == Some(&b'0'))
    {
        return None;
    }
    // From the first non-zero digit to the last, the point skipped.
    let all = int.iter().chain(frac.unwrap_or_default());
    let first = all.clone().position(|&d| d != b'0');
    let Some(first) = first else {
        return Some(0);
    };
    let last =
        int.len() + frac.map_or(0, <[u8]>::len) - all.rev().position(|&d| d != b'0').unwrap_or(0);
    Some(last - first)
}

fn parse_row<'a>(
    record: usize,
    text: &'a str,
    fields: &[Range<usize>],
    scratch: &mut String,
    utc_parser: &mut UtcParser,
) -> Result<ReadingRow<'a>, RecordsError> {
    // The numeric columns are read as bytes: their parsers accept ASCII only, and slicing them
    // as text would check each end for a character boundary (~2 % of verifying a big bundle).
    // Fields end at ASCII commas or quotes of UTF-8 text, so each is UTF-8 itself, and the
    // lossy decoding for an error message is exact.
    let bytes = text.as_bytes();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|r| bytes.get(r.clone()))
            .unwrap_or_default()
    };
    let text_field = |i: usize| {
        fields
            .get(i)
            .and_then(|r| text.get(r.clone()))
            .unwrap_or("")
    };
    let lossy = |value: &[u8]| String::from_utf8_lossy(value).into_owned();
    let bad = |column: &'static str, value: &[u8]| RecordsError::Column {
        record,
        column,
        value: lossy(value),
    };
    let [
        seq,
        run_id,
        instrument_id,
        value,
        status,
        utc,
        utc_us,
        mono_ns,
        chain,
    ] = [0, 1, 3, 6, 7, 10, 11, 12, 14].map(field);
    let [sequence, instrument, quantity, unit, raw, boot_id] = [2, 4, 5, 8, 9, 13].map(text_field);
    let seq_n = canonical_u64(seq).ok_or_else(|| bad("seq", seq))?;
    let run_id_n = canonical_u64(run_id).ok_or_else(|| bad("run_id", run_id))?;
    let instrument_id_n =
        canonical_u64(instrument_id).ok_or_else(|| bad("instrument_id", instrument_id))?;
    let status_v = [
        ReadingStatus::Valid,
        ReadingStatus::Overload,
        ReadingStatus::NotANumber,
    ]
    .into_iter()
    .find(|s| s.as_str().as_bytes() == status)
    .ok_or_else(|| bad("status", status))?;
    let value_v = match status_v {
        ReadingStatus::Valid => canonical_f64(value, scratch),
        _ => None,
    };
    let value_ok = match status_v {
        ReadingStatus::Valid => value_v.is_some(),
        _ => value.is_empty(),
    };
    if !value_ok {
        return Err(RecordsError::ValueStatus {
            record,
            value: lossy(value),
            status: lossy(status),
        });
    }
    let utc_us_n = canonical_i64(utc_us).ok_or_else(|| bad("utc_us", utc_us))?;
    // `utc` must be exactly what `format_utc_us` writes for `utc_us`: read back, not formatted.
    if utc_parser.parse(utc) != Some(utc_us_n) {
        return Err(RecordsError::UtcMismatch {
            file: "readings.csv",
            record,
            utc: lossy(utc),
        });
    }
    let mono_ns_n = canonical_u64(mono_ns).ok_or_else(|| bad("mono_ns", mono_ns))?;
    let chain_v = hex::decode32_lower(chain).ok_or_else(|| bad("chain", chain))?;
    Ok(ReadingRow {
        record: ReadingRef {
            seq: seq_n,
            run_id: run_id_n,
            instrument_id: instrument_id_n,
            quantity,
            value: value_v,
            status: status_v,
            unit,
            raw,
            utc_us: utc_us_n,
            mono_ns: mono_ns_n,
            boot_id,
        },
        sequence,
        instrument,
        chain: chain_v,
    })
}

/// One `events.jsonl` line as the sealer writes it: [`EventLine`]'s fields in its order, borrowed.
#[derive(Serialize)]
struct EventLineRef<'a> {
    id: u64,
    utc: &'a str,
    utc_us: i64,
    run_id: Option<u64>,
    instrument: Option<&'a str>,
    kind: &'a str,
    detail: &'a serde_json::Value,
}

/// Appends one event line (with its `\n`), byte for byte what [`write_events`] writes for it.
/// A time outside years 1970 to 9999 is written with an empty `utc` (the sealer refuses such an
/// event before it gets here).
pub fn write_event_line(out: &mut Vec<u8>, event: &EventExport) -> Result<(), serde_json::Error> {
    let utc = crate::time::format_utc_us(event.utc_us).unwrap_or_default();
    serde_json::to_writer(
        &mut *out,
        &EventLineRef {
            id: event.id,
            utc: &utc,
            utc_us: event.utc_us,
            run_id: event.run_id,
            instrument: event.instrument.as_deref(),
            kind: &event.kind,
            detail: &event.detail,
        },
    )?;
    out.push(b'\n');
    Ok(())
}

/// One compact JSON object per line, each ending in `\n`.
pub fn write_events(events: &[EventLine]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for event in events {
        out.push_str(&serde_json::to_string(event)?);
        out.push('\n');
    }
    Ok(out)
}

/// What a verifier needs of an event line; the detail is checked to be JSON and skipped, so a
/// line costs no more memory than its text. Same fields and strictness as [`EventLine`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EventLineCheck {
    id: u64,
    utc: String,
    utc_us: i64,
    run_id: Option<u64>,
    instrument: Option<String>,
    kind: String,
    detail: serde::de::IgnoredAny,
}

/// An event as a verifier checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark {
    /// Its id.
    pub id: u64,
    /// Its time.
    pub utc_us: i64,
    /// Whether its kind is a custody kind (its line also belongs in `custody.jsonl`).
    pub custody: bool,
}

/// Reads `events.jsonl` strictly, one line at a time: no blank lines, a final newline, known
/// fields, consistent times. Memory is one line, at most [`MAX_RECORD_BYTES`].
#[derive(Debug)]
pub struct EventsReader<R> {
    input: R,
    line: usize,
    buf: Vec<u8>,
    utc: Vec<u8>,
}

impl<R: BufRead> EventsReader<R> {
    /// A reader of `events.jsonl` from its first byte.
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            buf: Vec::new(),
            utc: Vec::with_capacity(crate::time::UTC_LEN),
        }
    }

    /// The next line's text (without its `\n`), checked for framing; `None` at the end.
    fn next_line(&mut self) -> Result<Option<(usize, &str)>, RecordsError> {
        self.buf.clear();
        let io_err = |source| RecordsError::Io {
            file: "events.jsonl",
            source,
        };
        let cap = u64::try_from(MAX_RECORD_BYTES).unwrap_or(u64::MAX) + 1;
        let n = Read::take(&mut self.input, cap)
            .read_until(b'\n', &mut self.buf)
            .map_err(io_err)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        if self.buf.len() > MAX_RECORD_BYTES {
            return Err(RecordsError::EventTooLong {
                line,
                cap: MAX_RECORD_BYTES,
            });
        }
        if self.buf.pop() != Some(b'\n') || self.buf.is_empty() {
            return Err(RecordsError::EventFraming { line });
        }
        std::str::from_utf8(&self.buf)
            .map(|text| Some((line, text)))
            .map_err(|source| RecordsError::NotUtf8 {
                file: "events.jsonl",
                source,
            })
    }

    /// The next event's id and time, the line checked as strictly as [`read_events`] does.
    pub fn next_mark(&mut self) -> Result<Option<EventMark>, RecordsError> {
        let Some((line, text)) = self.next_line()? else {
            return Ok(None);
        };
        let event: EventLineCheck = serde_json::from_str(text)
            .map_err(|source| RecordsError::EventJson { line, source })?;
        self.utc.clear();
        if !push_utc_us(&mut self.utc, event.utc_us) || self.utc.as_slice() != event.utc.as_bytes()
        {
            return Err(RecordsError::UtcMismatch {
                file: "events.jsonl",
                record: line,
                utc: event.utc,
            });
        }
        Ok(Some(EventMark {
            id: event.id,
            utc_us: event.utc_us,
            custody: crate::event::is_custody_kind(&event.kind),
        }))
    }

    /// The text of the line last read, without its `\n` (empty before the first).
    pub fn last_line(&self) -> &[u8] {
        &self.buf
    }

    /// The next event in full.
    pub fn next_event(&mut self) -> Result<Option<EventLine>, RecordsError> {
        let Some((line, text)) = self.next_line()? else {
            return Ok(None);
        };
        let event: EventLine = serde_json::from_str(text)
            .map_err(|source| RecordsError::EventJson { line, source })?;
        self.utc.clear();
        if !push_utc_us(&mut self.utc, event.utc_us) || self.utc.as_slice() != event.utc.as_bytes()
        {
            return Err(RecordsError::UtcMismatch {
                file: "events.jsonl",
                record: line,
                utc: event.utc,
            });
        }
        Ok(Some(event))
    }
}

/// Reads a whole `events.jsonl` from memory (the streaming [`EventsReader`], collected).
pub fn read_events(bytes: &[u8]) -> Result<Vec<EventLine>, RecordsError> {
    let mut reader = EventsReader::new(bytes);
    let mut out = Vec::new();
    while let Some(event) = reader.next_event()? {
        out.push(event);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(seq: u64, value: Option<f64>, status: ReadingStatus) -> ReadingExport {
        ReadingExport {
            record: ReadingRecord {
                seq,
                run_id: 3,
                instrument_id: 2,
                quantity: "voltage".into(),
                value,
                status,
                unit: "V".into(),
                raw: "+1.00000023E+01".into(),
                utc_us: 1_700_000_000_123_456,
                mono_ns: 42,
                boot_id: "boot".into(),
            },
            sequence: "zener, daily".into(),
            instrument: "dmm \"A\"".into(),
            chain: [7; 32],
        }
    }

    #[test]
    fn utc_format() {
        assert_eq!(
            format_utc_us(0).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            format_utc_us(1_700_000_000_123_456).as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(format_utc_us(-1), None);
        assert_eq!(
            format_utc_us(253_402_300_799_999_999).as_deref(),
            Some("9999-12-31T23:59:59.999999Z")
        );
        assert_eq!(format_utc_us(253_402_300_800_000_000), None);
        assert_eq!(format_utc_us(i64::MAX), None);
    }

    #[test]
    fn readings_layout() {
        let rows = vec![
            row(1, Some(10.000_002_3), ReadingStatus::Valid),
            row(2, None, ReadingStatus::Overload),
        ];
        let text = write_readings(&rows);
        let chain = "07".repeat(32);
        assert_eq!(
            text,
            format!(
                "{}\n1,3,\"zener, daily\",2,\"dmm \"\"A\"\"\",voltage,10.0000023,valid,V,+1.00000023E+01,\
                 2023-11-14T22:13:20.123456Z,1700000000123456,42,boot,{chain}\n\
                 2,3,\"zener, daily\",2,\"dmm \"\"A\"\"\",voltage,,overload,V,+1.00000023E+01,\
                 2023-11-14T22:13:20.123456Z,1700000000123456,42,boot,{chain}\n",
                READINGS_HEADER.join(",")
            )
        );
        assert_eq!(read_readings(text.as_bytes()).unwrap(), rows);
    }

    #[test]
    fn readings_reject_non_canonical_columns() {
        let good = write_readings(&[row(1, Some(1.5), ReadingStatus::Valid)]);
        let check = |from: &str, to: &str| {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{from}");
            read_readings(bad.as_bytes()).unwrap_err()
        };
        assert!(matches!(
            check("\n1,", "\n+1,"),
            RecordsError::Column { column: "seq", .. }
        ));
        assert!(matches!(
            check("\n1,", "\n01,"),
            RecordsError::Column { column: "seq", .. }
        ));
        assert!(matches!(
            check(",1.5,", ",1.50,"),
            RecordsError::ValueStatus { .. }
        ));
        assert!(matches!(
            check(",1.5,", ",inf,"),
            RecordsError::ValueStatus { .. }
        ));
        assert!(matches!(
            check(",1.5,", ",,"),
            RecordsError::ValueStatus { .. }
        ));
        assert!(matches!(
            check("1.5,valid", "1.5,nan"),
            RecordsError::ValueStatus { .. }
        ));
        assert!(matches!(
            check("valid", "VALID"),
            RecordsError::Column {
                column: "status",
                ..
            }
        ));
        assert!(matches!(
            check(".123456Z", ".123457Z"),
            RecordsError::UtcMismatch { record: 2, .. }
        ));
        assert!(matches!(
            check(
                &"07".repeat(32),
                &"07".repeat(32).to_uppercase().replace('7', "F")
            ),
            RecordsError::Column {
                column: "chain",
                ..
            }
        ));
        assert!(matches!(check("seq,", "Seq,"), RecordsError::Header));
        assert!(matches!(read_readings(b""), Err(RecordsError::Header)));
        assert!(matches!(
            read_readings(b"\xff,a,b,c,d,e,f,g,h,i,j,k,l,m,n\n"),
            Err(RecordsError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn events_round_trip_and_framing() {
        let event = EventLine {
            id: 5,
            utc: format_utc_us(1_700_000_000_000_000).unwrap(),
            utc_us: 1_700_000_000_000_000,
            run_id: None,
            instrument: Some("dmm".into()),
            kind: "clock_step".into(),
            detail: serde_json::json!({"wall_us": 1, "mono_ns": [1, 2]}),
        };
        let text = write_events(std::slice::from_ref(&event)).unwrap();
        assert_eq!(
            text,
            "{\"id\":5,\"utc\":\"2023-11-14T22:13:20.000000Z\",\"utc_us\":1700000000000000,\"run_id\":null,\
             \"instrument\":\"dmm\",\"kind\":\"clock_step\",\"detail\":{\"mono_ns\":[1,2],\"wall_us\":1}}\n"
        );
        assert_eq!(read_events(text.as_bytes()).unwrap(), vec![event]);
        assert!(read_events(b"").unwrap().is_empty());
        let no_newline = text.trim_end();
        assert!(matches!(
            read_events(no_newline.as_bytes()),
            Err(RecordsError::EventFraming { line: 1 })
        ));
        let blank = format!("{text}\n");
        assert!(matches!(
            read_events(blank.as_bytes()),
            Err(RecordsError::EventFraming { line: 2 })
        ));
        let extra = text.replace("\"kind\"", "\"x\":1,\"kind\"");
        assert!(matches!(
            read_events(extra.as_bytes()),
            Err(RecordsError::EventJson { line: 1, .. })
        ));
        let skew = text.replace(":20.000000Z", ":21.000000Z");
        assert!(matches!(
            read_events(skew.as_bytes()),
            Err(RecordsError::UtcMismatch { record: 1, .. })
        ));
    }

    fn status_and_value() -> impl Strategy<Value = (ReadingStatus, Option<f64>)> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| (ReadingStatus::Valid, Some(v))),
            Just((ReadingStatus::Overload, None)),
            Just((ReadingStatus::NotANumber, None)),
        ]
    }

    #[test]
    fn event_lines_are_written_as_write_events_writes_them() {
        let export = EventExport {
            id: 9,
            utc_us: 1_700_000_000_000_001,
            run_id: Some(3),
            instrument: None,
            kind: "exchange".into(),
            detail: serde_json::json!({"z": [1, "two"], "a": null, "m": {"k": 1.5}}),
        };
        let line = EventLine {
            id: 9,
            utc: format_utc_us(export.utc_us).unwrap(),
            utc_us: export.utc_us,
            run_id: Some(3),
            instrument: None,
            kind: "exchange".into(),
            detail: export.detail.clone(),
        };
        let mut out = Vec::new();
        write_event_line(&mut out, &export).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            write_events(&[line]).unwrap()
        );
    }

    #[test]
    fn a_record_or_line_longer_than_the_cap_is_refused_without_reading_on() {
        let long = "x".repeat(MAX_RECORD_BYTES + 1);
        let text = format!("{}\n1,{long}\n", READINGS_HEADER.join(","));
        assert!(matches!(
            read_readings(text.as_bytes()),
            Err(RecordsError::Csv(CsvError::RecordTooLong { record: 2, .. }))
        ));
        let line = format!("{{\"id\":\"{long}\"}}\n");
        assert!(matches!(
            read_events(line.as_bytes()),
            Err(RecordsError::EventTooLong { line: 1, .. })
        ));
    }

    #[test]
    fn the_verifiers_event_check_is_as_strict_as_the_full_parse() {
        let good = write_events(&[EventLine {
            id: 1,
            utc: format_utc_us(0).unwrap(),
            utc_us: 0,
            run_id: None,
            instrument: Some("dmm".into()),
            kind: "k".into(),
            detail: serde_json::json!({"a": [1, {"b": null}]}),
        }])
        .unwrap();
        let variants = [
            good.clone(),
            good.replace("\"kind\"", "\"x\":1,\"kind\""),
            good.replace("\"id\":1", "\"id\":-1"),
            good.replace("\"detail\":{", "\"detail\":{{"),
            good.replace(":00.000000Z", ":01.000000Z"),
            good.replace("\"run_id\":null,", ""),
            good.replace("\"instrument\":\"dmm\"", "\"instrument\":5"),
            good.trim_end().to_owned(),
            format!("{good}\n"),
        ];
        for text in variants {
            let full = read_events(text.as_bytes()).map(|e| e.len());
            let mut reader = EventsReader::new(text.as_bytes());
            let mut marks = 0;
            let light = loop {
                match reader.next_mark() {
                    Ok(Some(_)) => marks += 1,
                    Ok(None) => break Ok(marks),
                    Err(e) => break Err(e),
                }
            };
            assert_eq!(full.is_ok(), light.is_ok(), "{text}: {full:?} / {light:?}");
        }
    }

    /// What `canonical_f64` must answer: the value, if `Display` writes it exactly as `text`.
    fn canonical_by_formatting(text: &str) -> Option<f64> {
        let value: f64 = text.parse().ok()?;
        (value.is_finite() && format!("{value}") == text).then_some(value)
    }

    fn same_as_formatting(text: &str) {
        let fast = canonical_f64(text.as_bytes(), &mut String::new());
        let reference = canonical_by_formatting(text);
        assert_eq!(
            fast.map(f64::to_bits),
            reference.map(f64::to_bits),
            "`{text}`"
        );
    }

    #[test]
    fn canonical_numbers_without_formatting_agree_with_formatting() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "00",
            "01",
            "1",
            "1.",
            ".5",
            "+1",
            "1e5",
            "1E5",
            "10",
            "1000",
            "10.0",
            "10.5",
            "10.50",
            "0.1",
            "0.10",
            "-0.1",
            "--1",
            "1.2.3",
            "",
            "-",
            "0.30000000000000004",
            "0.3000000000000000",
            "0.300000000000000",
            "123456789012345",
            "1234567890123456",
            "12345678901234567",
            "9007199254740993",
            "9007199254740992",
            "inf",
            "NaN",
            "-inf",
        ] {
            same_as_formatting(text);
        }
        // Subnormals: a spelling of one digit that is not its value's (4e-324 is read as the
        // smallest subnormal, which is written 5e-324), and one that underflows to zero.
        let smallest = format!("{}", 5e-324_f64);
        same_as_formatting(&smallest.replace('5', "4"));
        same_as_formatting(&smallest.replace('5', "04"));
        same_as_formatting(&smallest.replace('5', "1"));
        for value in [
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::EPSILON,
            1e21,
            1e-7,
            5e-324,
        ] {
            same_as_formatting(&format!("{value}"));
        }
    }

    /// What `canonical_u64` must answer: the check and `str::parse` it replaced.
    fn canonical_u64_by_parse(text: &str) -> Option<u64> {
        let b = text.as_bytes();
        let ok =
            !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] != b'0');
        ok.then(|| text.parse().ok()).flatten()
    }

    #[test]
    fn canonical_integers_at_the_edges() {
        for text in [
            "",
            "0",
            "00",
            "01",
            "1",
            "+1",
            "-1",
            "1 ",
            "9999999999999999999",
            "10000000000000000000",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "100000000000000000000",
            "1/",
            "1:",
            "1\u{663}",
        ] {
            assert_eq!(
                canonical_u64(text.as_bytes()),
                canonical_u64_by_parse(text),
                "`{text}`"
            );
        }
        assert_eq!(canonical_u64(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn exact_decimals_take_the_fast_path_where_they_can() {
        assert_eq!(exact_decimal(b"10.0001039"), Some(10.000_103_9));
        assert_eq!(
            exact_decimal(b"-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(exact_decimal(b"9007199254740992"), None);
        assert_eq!(exact_decimal(b"0.00000000000000000000001"), None);
        assert_eq!(exact_decimal(b"100000000000000000000"), None);
    }

    proptest! {
        #[test]
        fn canonical_integers_agree_with_parsing(
            n in any::<u64>(),
            text in "[-+0-9]{0,21}",
            big in "[1-9][0-9]{19,20}",
        ) {
            for text in [n.to_string(), format!("0{n}"), format!("{n}0"), text, big] {
                prop_assert_eq!(canonical_u64(text.as_bytes()), canonical_u64_by_parse(&text), "`{}`", text);
            }
        }

        #[test]
        fn exact_decimals_are_what_parsing_gives(
            text in "-?[0-9]{1,17}([.][0-9]{0,23})?",
        ) {
            if let Some(fast) = exact_decimal(text.as_bytes()) {
                let parsed: f64 = text.parse().unwrap();
                prop_assert_eq!(fast.to_bits(), parsed.to_bits(), "`{}`", text);
            }
        }

        #[test]
        fn exact_decimals_are_what_parsing_gives_on_any_doubles_digits(bits in any::<u64>()) {
            let text = format!("{}", f64::from_bits(bits));
            // The shape is checked first, as `canonical_f64` does (`NaN` and `inf` have none).
            if plain_decimal_digits(text.as_bytes()).is_some()
                && let Some(fast) = exact_decimal(text.as_bytes())
            {
                prop_assert_eq!(fast.to_bits(), bits, "`{}`", text);
            }
        }

        #[test]
        fn canonical_numbers_agree_with_formatting_on_any_double(bits in any::<u64>()) {
            let text = format!("{}", f64::from_bits(bits));
            same_as_formatting(&text);
            // Respellings of the same value, and near misses.
            same_as_formatting(&format!("{text}0"));
            same_as_formatting(&format!("0{text}"));
            if !text.contains('.') {
                same_as_formatting(&format!("{text}.0"));
            }
            if text.len() > 1 {
                same_as_formatting(&text[..text.len() - 1]);
            }
        }

        #[test]
        fn canonical_numbers_agree_with_formatting_on_short_decimals(
            int in 0u64..1_000_000_000,
            frac in "[0-9]{0,12}",
            negative in any::<bool>(),
            exponent in 0usize..40,
        ) {
            let sign = if negative { "-" } else { "" };
            same_as_formatting(&format!("{sign}{int}.{frac}"));
            same_as_formatting(&format!("{sign}{int}{}", "0".repeat(exponent)));
            same_as_formatting(&format!("{sign}0.{}{int}", "0".repeat(exponent)));
        }

        #[test]
        fn readings_round_trip(
            texts in proptest::collection::vec(any::<String>(), 6),
            (status, value) in status_and_value(),
            numbers in (any::<u64>(), any::<u64>(), any::<u64>(), 0i64..253_402_300_800_000_000, any::<u64>()),
            chain in proptest::array::uniform32(any::<u8>()),
        ) {
            let row = ReadingExport {
                record: ReadingRecord {
                    seq: numbers.0,
                    run_id: numbers.1,
                    instrument_id: numbers.2,
                    quantity: texts[0].clone(),
                    value,
                    status,
                    unit: texts[1].clone(),
                    raw: texts[2].clone(),
                    utc_us: numbers.3,
                    mono_ns: numbers.4,
                    boot_id: texts[3].clone(),
                },
                sequence: texts[4].clone(),
                instrument: texts[5].clone(),
                chain,
            };
            let text = write_readings(std::slice::from_ref(&row));
            let back = read_readings(text.as_bytes()).unwrap();
            prop_assert_eq!(back.len(), 1);
            // Bit-level equality: the chain hashes the value's bits.
            prop_assert_eq!(back[0].record.value.map(f64::to_bits), row.record.value.map(f64::to_bits));
            prop_assert_eq!(&back[0], &row);
        }

        #[test]
        fn reading_in_small_pieces_gives_the_same_rows(
            rows in proptest::collection::vec((any::<String>(), status_and_value(), any::<u64>()), 0..6),
            capacity in 1usize..9,
        ) {
            let rows: Vec<ReadingExport> = rows
                .into_iter()
                .enumerate()
                .map(|(i, (text, (status, value), n))| ReadingExport {
                    record: ReadingRecord {
                        seq: i as u64 + 1,
                        run_id: n,
                        instrument_id: 1,
                        quantity: text.clone(),
                        value,
                        status,
                        unit: "V".into(),
                        raw: text.clone(),
                        utc_us: (n % 253_402_300_800_000_000) as i64,
                        mono_ns: n,
                        boot_id: text.clone(),
                    },
                    sequence: text.clone(),
                    instrument: text,
                    chain: [n as u8; 32],
                })
                .collect();
            let text = write_readings(&rows);
            let mut reader = ReadingsReader::new(std::io::BufReader::with_capacity(capacity, text.as_bytes()));
            let mut back = Vec::new();
            while let Some(row) = reader.next_row().unwrap() {
                back.push(row.to_export());
            }
            prop_assert_eq!(back, rows);
        }

        #[test]
        fn readings_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read_readings(&bytes);
        }

        #[test]
        fn readings_reader_never_panics_near_valid(suffix in "[0-9a-z,\"\n.+-]{0,200}") {
            let text = format!("{}\n{suffix}", READINGS_HEADER.join(","));
            let _ = read_readings(text.as_bytes());
        }

        #[test]
        fn events_reader_never_panics(text in "[{}\":,a-z0-9\n\\[\\] ]{0,200}") {
            let _ = read_events(text.as_bytes());
        }
    }
}
