//! `readings.csv` and `events.jsonl`: encoding from the store's exports and strict decoding.

use thiserror::Error;

use super::csv::{self, CsvError};
use super::manifest::{EventLine, Hash32};
use crate::chain::{ReadingRecord, ReadingStatus};

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
    /// `events.jsonl` has an empty line or lacks its final newline.
    #[error("events.jsonl line {line}: empty line or missing line end")]
    EventFraming {
        /// Line number from 1.
        line: usize,
    },
}

pub use crate::time::format_utc_us;

/// The `value` column for a record: Display of the f64 when valid, else empty.
fn value_text(record: &ReadingRecord) -> String {
    match (record.status, record.value) {
        (ReadingStatus::Valid, Some(v)) => v.to_string(),
        _ => String::new(),
    }
}

/// True when the record's value can be written and read back bit for bit.
pub fn value_fits_status(record: &ReadingRecord) -> bool {
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
    let r = &row.record;
    let fields = [
        r.seq.to_string(),
        r.run_id.to_string(),
        row.sequence.clone(),
        r.instrument_id.to_string(),
        row.instrument.clone(),
        r.quantity.clone(),
        value_text(r),
        r.status.as_str().to_owned(),
        r.unit.clone(),
        r.raw.clone(),
        format_utc_us(r.utc_us).unwrap_or_default(),
        r.utc_us.to_string(),
        r.mono_ns.to_string(),
        r.boot_id.clone(),
        Hash32(row.chain).to_string(),
    ];
    csv::write_record(out, &fields);
}

/// Parses a number only in the form `to_string` writes, so each value has one spelling.
fn canonical<T: std::str::FromStr + ToString>(text: &str) -> Option<T> {
    let value = text.parse::<T>().ok()?;
    (value.to_string() == text).then_some(value)
}

/// Reads `readings.csv` strictly: exact header, 15 fields, canonical numbers, consistent times.
pub fn read_readings(bytes: &[u8]) -> Result<Vec<ReadingExport>, RecordsError> {
    let text = std::str::from_utf8(bytes).map_err(|source| RecordsError::NotUtf8 {
        file: "readings.csv",
        source,
    })?;
    let mut records = csv::parse(text, READINGS_HEADER.len())?.into_iter();
    if records
        .next()
        .is_none_or(|header| header != READINGS_HEADER)
    {
        return Err(RecordsError::Header);
    }
    records
        .enumerate()
        .map(|(i, fields)| parse_row(i + 2, fields))
        .collect()
}

fn parse_row(record: usize, fields: Vec<String>) -> Result<ReadingExport, RecordsError> {
    let Ok(
        [
            seq,
            run_id,
            sequence,
            instrument_id,
            instrument,
            quantity,
            value,
            status,
            unit,
            raw,
            utc,
            utc_us,
            mono_ns,
            boot_id,
            chain,
        ],
    ) = <[String; 15]>::try_from(fields)
    else {
        // csv::parse guarantees the width; this arm only keeps the conversion total.
        return Err(RecordsError::Header);
    };
    let bad = |column: &'static str, value: &str| RecordsError::Column {
        record,
        column,
        value: value.to_owned(),
    };
    let seq_n = canonical::<u64>(&seq).ok_or_else(|| bad("seq", &seq))?;
    let run_id_n = canonical::<u64>(&run_id).ok_or_else(|| bad("run_id", &run_id))?;
    let instrument_id_n =
        canonical::<u64>(&instrument_id).ok_or_else(|| bad("instrument_id", &instrument_id))?;
    let status_v = ReadingStatus::parse(&status).ok_or_else(|| bad("status", &status))?;
    let value_v = match status_v {
        ReadingStatus::Valid => canonical::<f64>(&value).filter(|v| v.is_finite()),
        _ => None,
    };
    let value_ok = match status_v {
        ReadingStatus::Valid => value_v.is_some(),
        _ => value.is_empty(),
    };
    if !value_ok {
        return Err(RecordsError::ValueStatus {
            record,
            value,
            status,
        });
    }
    let utc_us_n = canonical::<i64>(&utc_us).ok_or_else(|| bad("utc_us", &utc_us))?;
    if format_utc_us(utc_us_n).as_deref() != Some(utc.as_str()) {
        return Err(RecordsError::UtcMismatch {
            file: "readings.csv",
            record,
            utc,
        });
    }
    let mono_ns_n = canonical::<u64>(&mono_ns).ok_or_else(|| bad("mono_ns", &mono_ns))?;
    let chain_v = Hash32::parse(&chain).ok_or_else(|| bad("chain", &chain))?;
    Ok(ReadingExport {
        record: ReadingRecord {
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
        chain: chain_v.0,
    })
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

/// Reads `events.jsonl` strictly: no blank lines, a final newline, known fields, consistent times.
pub fn read_events(bytes: &[u8]) -> Result<Vec<EventLine>, RecordsError> {
    let text = std::str::from_utf8(bytes).map_err(|source| RecordsError::NotUtf8 {
        file: "events.jsonl",
        source,
    })?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = text.strip_suffix('\n') else {
        return Err(RecordsError::EventFraming {
            line: text.split('\n').count(),
        });
    };
    body.split('\n')
        .enumerate()
        .map(|(i, line)| {
            let line_no = i + 1;
            if line.is_empty() {
                return Err(RecordsError::EventFraming { line: line_no });
            }
            let event: EventLine =
                serde_json::from_str(line).map_err(|source| RecordsError::EventJson {
                    line: line_no,
                    source,
                })?;
            if format_utc_us(event.utc_us).as_deref() != Some(event.utc.as_str()) {
                return Err(RecordsError::UtcMismatch {
                    file: "events.jsonl",
                    record: line_no,
                    utc: event.utc,
                });
            }
            Ok(event)
        })
        .collect()
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
            read_readings(b"\xff\n"),
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

    proptest! {
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
