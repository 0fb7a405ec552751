//! A strict RFC 4180 subset: `\n` line ends, quoting only as the standard allows, a fixed width.
//!
//! The writer quotes a field exactly when it contains `,`, `"`, CR or LF. The reader accepts any
//! RFC 4180 quoting but nothing looser: no bare CR, no quote inside an unquoted field, no text after
//! a closing quote, every record ends with `\n`, every record has the same number of fields.

use thiserror::Error;

/// Why a CSV text was rejected; `record` counts from 1 (the header).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CsvError {
    /// A quoted field has no closing quote.
    #[error("record {record}: unterminated quoted field")]
    UnterminatedQuote {
        /// The record it starts in.
        record: usize,
    },
    /// A `"` inside an unquoted field, or anything but `,` or `\n` after a closing quote.
    #[error("record {record}: stray quote")]
    StrayQuote {
        /// The offending record.
        record: usize,
    },
    /// A carriage return outside quotes; line ends are `\n` only.
    #[error("record {record}: carriage return outside quotes")]
    BareCarriageReturn {
        /// The offending record.
        record: usize,
    },
    /// The text does not end with `\n`.
    #[error("record {record}: missing line end")]
    MissingLineEnd {
        /// The last, unterminated record.
        record: usize,
    },
    /// A record has the wrong number of fields.
    #[error("record {record}: expected {expected} fields, found {found}")]
    FieldCount {
        /// The offending record.
        record: usize,
        /// The fixed width.
        expected: usize,
        /// What it had (counting stops one past `expected`).
        found: usize,
    },
}

/// Appends one record and its `\n` to `out`.
pub fn write_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

/// Splits `text` into records of exactly `width` fields each.
pub fn parse(text: &str, width: usize) -> Result<Vec<Vec<String>>, CsvError> {
    let mut records = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let record = records.len() + 1;
        let (fields, after) = parse_record(rest, width, record)?;
        records.push(fields);
        rest = after;
    }
    Ok(records)
}

/// Parses one record from the start of `text`; returns it and the text after its `\n`.
fn parse_record(text: &str, width: usize, record: usize) -> Result<(Vec<String>, &str), CsvError> {
    let mut fields = Vec::with_capacity(width);
    let mut rest = text;
    loop {
        let (field, after) = if let Some(quoted) = rest.strip_prefix('"') {
            parse_quoted(quoted, record)?
        } else {
            let end = rest.find([',', '"', '\r', '\n']).unwrap_or(rest.len());
            let (field, after) = rest.split_at(end);
            (field.to_owned(), after)
        };
        fields.push(field);
        if fields.len() > width {
            return Err(CsvError::FieldCount {
                record,
                expected: width,
                found: fields.len(),
            });
        }
        let mut chars = after.chars();
        match chars.next() {
            Some(',') => rest = chars.as_str(),
            Some('\n') => {
                if fields.len() != width {
                    return Err(CsvError::FieldCount {
                        record,
                        expected: width,
                        found: fields.len(),
                    });
                }
                return Ok((fields, chars.as_str()));
            }
            Some('"') => return Err(CsvError::StrayQuote { record }),
            Some('\r') => return Err(CsvError::BareCarriageReturn { record }),
            // Only the four delimiters above end a field, and a quoted field ends at its quote.
            Some(_) => return Err(CsvError::StrayQuote { record }),
            None => return Err(CsvError::MissingLineEnd { record }),
        }
    }
}

/// Parses a quoted field whose opening quote is already consumed.
fn parse_quoted(text: &str, record: usize) -> Result<(String, &str), CsvError> {
    let mut field = String::new();
    let mut rest = text;
    loop {
        let Some(quote) = rest.find('"') else {
            return Err(CsvError::UnterminatedQuote { record });
        };
        let (chunk, from_quote) = rest.split_at(quote);
        field.push_str(chunk);
        let after_quote = from_quote.get(1..).unwrap_or("");
        if let Some(after_pair) = after_quote.strip_prefix('"') {
            field.push('"');
            rest = after_pair;
        } else {
            return Ok((field, after_quote));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, width: usize, expected: Result<Vec<Vec<&str>>, CsvError>) {
        let got = parse(text, width);
        let expected = expected.map(|records| {
            records
                .into_iter()
                .map(|r| r.into_iter().map(String::from).collect())
                .collect()
        });
        assert_eq!(got, expected, "{text:?}");
    }

    #[test]
    fn writer_quotes_only_when_needed() {
        let mut out = String::new();
        write_record(&mut out, &["a", "b,c", "d\"e", "f\rg", "h\ni", "", " j "]);
        assert_eq!(out, "a,\"b,c\",\"d\"\"e\",\"f\rg\",\"h\ni\",, j \n");
    }

    #[test]
    fn reader_cases() {
        check("", 2, Ok(vec![]));
        check("a,b\n", 2, Ok(vec![vec!["a", "b"]]));
        check(",\n", 2, Ok(vec![vec!["", ""]]));
        check(
            "\"a,\"\"\",b\n\"x\ny\",\n",
            2,
            Ok(vec![vec!["a,\"", "b"], vec!["x\ny", ""]]),
        );
        check("a,b", 2, Err(CsvError::MissingLineEnd { record: 1 }));
        check(
            "a,b\r\n",
            2,
            Err(CsvError::BareCarriageReturn { record: 1 }),
        );
        check("a\"b,c\n", 2, Err(CsvError::StrayQuote { record: 1 }));
        check("\"a\"b,c\n", 2, Err(CsvError::StrayQuote { record: 1 }));
        check(
            "\"ab,c\n",
            2,
            Err(CsvError::UnterminatedQuote { record: 1 }),
        );
        check(
            "a,b\na\n",
            2,
            Err(CsvError::FieldCount {
                record: 2,
                expected: 2,
                found: 1,
            }),
        );
        check(
            "a,b,c\n",
            2,
            Err(CsvError::FieldCount {
                record: 1,
                expected: 2,
                found: 3,
            }),
        );
        check(
            "a,b\n\n",
            2,
            Err(CsvError::FieldCount {
                record: 2,
                expected: 2,
                found: 1,
            }),
        );
    }

    proptest! {
        #[test]
        fn round_trip(records in proptest::collection::vec(proptest::collection::vec(any::<String>(), 3), 0..5)) {
            let mut text = String::new();
            for r in &records {
                write_record(&mut text, r);
            }
            prop_assert_eq!(parse(&text, 3), Ok(records));
        }

        #[test]
        fn round_trip_delimiter_heavy(records in proptest::collection::vec(proptest::collection::vec("[a,\"\r\n]{0,6}", 2), 0..5)) {
            let mut text = String::new();
            for r in &records {
                write_record(&mut text, r);
            }
            prop_assert_eq!(parse(&text, 2), Ok(records));
        }

        #[test]
        fn never_panics(text in any::<String>(), width in 0usize..20) {
            let _ = parse(&text, width);
        }

        #[test]
        fn never_panics_on_delimiters(text in "[a,\"\r\n]{0,40}", width in 0usize..5) {
            let _ = parse(&text, width);
        }
    }
}
