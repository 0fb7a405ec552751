//! A strict RFC 4180 subset: `\n` line ends, quoting only as the standard allows, a fixed width.
//!
//! The writer quotes a field exactly when it contains `,`, `"`, CR or LF. The reader accepts any
//! RFC 4180 quoting but nothing looser: no bare CR, no quote inside an unquoted field, no text after
//! a closing quote, every record ends with `\n`, every record has the same number of fields.
//! It streams: one record at a time from any `BufRead`, in memory bounded by [`MAX_RECORD_BYTES`].

use std::io::{self, BufRead};
use std::ops::Range;

use thiserror::Error;

/// Longest record (and longest `events.jsonl` line) a reader accepts and the sealer writes. A
/// reading's raw reply is at most the transport's `max_reply` (1 MiB by default), so this leaves
/// room for quoting and long exchange events while bounding a verifier's memory.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

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
    /// A record longer than [`MAX_RECORD_BYTES`].
    #[error("record {record} is longer than {cap} bytes")]
    RecordTooLong {
        /// The record.
        record: usize,
        /// The cap.
        cap: usize,
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

/// Appends one field to `out`, quoted exactly when it contains `,`, `"`, CR or LF.
pub fn write_field(out: &mut Vec<u8>, field: &str) {
    let bytes = field.as_bytes();
    if !bytes
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    for piece in bytes.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(piece);
        if piece.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// Splits `text` into records of exactly `width` fields each.
pub fn parse(text: &str, width: usize) -> Result<Vec<Vec<String>>, CsvError> {
    let mut reader = Reader::new(text.as_bytes(), width);
    let mut records = Vec::new();
    let (mut buf, mut fields) = (Vec::new(), Vec::new());
    loop {
        match reader.next_record(&mut buf, &mut fields) {
            Ok(true) => records.push(
                fields
                    .iter()
                    // The text is UTF-8 and fields split at ASCII bytes, so each field is too.
                    .map(|r| String::from_utf8_lossy(&buf[r.clone()]).into_owned())
                    .collect(),
            ),
            Ok(false) => return Ok(records),
            Err(ReadError::Csv(e)) => return Err(e),
            // Reading a slice cannot fail; should it, the text ends there.
            Err(ReadError::Io(_)) => {
                return Err(CsvError::MissingLineEnd {
                    record: reader.record,
                });
            }
        }
    }
}

/// Why a record could not be read: the format, or the input.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The text breaks the format.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The input could not be read.
    #[error("cannot read the input")]
    Io(#[from] io::Error),
}

/// Reads records one at a time.
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    width: usize,
    /// The number of the record being read (from 1).
    record: usize,
    /// Bytes of the last record left in the input's buffer by
    /// [`next_record_in_place`](Self::next_record_in_place), consumed at the next call.
    pending: usize,
}

/// How [`Reader::start`] found the next record.
enum Next {
    /// No more input.
    End,
    /// A plain line of this many bytes (without its `\n`), still in the input's buffer.
    Plain(usize),
    /// Read by the general parser into the caller's buffer.
    Read,
}

impl<R: BufRead> Reader<R> {
    /// A reader of records of `width` fields.
    pub fn new(input: R, width: usize) -> Self {
        Self {
            input,
            width,
            record: 0,
            pending: 0,
        }
    }

    /// The number of the last record returned (from 1).
    pub fn record(&self) -> usize {
        self.record
    }

    /// Reads the next record: the fields' text concatenated into `buf`, their ranges in
    /// `fields`. `Ok(false)` at the end of the input.
    pub fn next_record(
        &mut self,
        buf: &mut Vec<u8>,
        fields: &mut Vec<Range<usize>>,
    ) -> Result<bool, ReadError> {
        match self.start(buf, fields)? {
            Next::End => Ok(false),
            Next::Plain(end) => {
                // The buffer still holds the line: `fill_buf` returns it again without reading.
                let line = self.input.fill_buf()?.get(..end).unwrap_or_default();
                buf.extend_from_slice(line);
                self.input.consume(end + 1);
                Ok(true)
            }
            Next::Read => Ok(true),
        }
    }

    /// [`next_record`](Self::next_record) without copying a plain line: its text is returned
    /// where it lies in the input's buffer, and consumed at the next call; a line the general
    /// parser reads is returned from `buf`. Copying each line was ~4 % of verifying a big bundle
    /// (P7 in BENCHMARKS.md). Gives the record's number with its text; `None` at the end.
    pub fn next_record_in_place<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
        fields: &mut Vec<Range<usize>>,
    ) -> Result<Option<(usize, &'a [u8])>, ReadError> {
        Ok(match self.start(buf, fields)? {
            Next::End => None,
            Next::Plain(end) => {
                self.pending = end + 1;
                let record = self.record;
                // The buffer still holds the line: `fill_buf` returns it again without reading.
                let text = self.input.fill_buf()?.get(..end).unwrap_or_default();
                Some((record, text))
            }
            Next::Read => Some((self.record, buf)),
        })
    }

    /// Begins the next record for both readers: the last in-place line consumed, then the plain
    /// path tried, then the general parser into `buf`.
    fn start(
        &mut self,
        buf: &mut Vec<u8>,
        fields: &mut Vec<Range<usize>>,
    ) -> Result<Next, ReadError> {
        self.input.consume(std::mem::take(&mut self.pending));
        buf.clear();
        fields.clear();
        if self.input.fill_buf()?.is_empty() {
            return Ok(Next::End);
        }
        self.record += 1;
        if let Some(end) = self.plain_line(fields)? {
            return Ok(Next::Plain(end));
        }
        self.general(buf, fields)?;
        Ok(Next::Read)
    }

    /// Any record the plain path did not take, byte by byte, with RFC 4180's quoting.
    fn general(
        &mut self,
        buf: &mut Vec<u8>,
        fields: &mut Vec<Range<usize>>,
    ) -> Result<(), ReadError> {
        let record = self.record;
        loop {
            let start = buf.len();
            if self.peek()? == Some(b'"') {
                self.input.consume(1);
                self.quoted(buf)?;
            } else {
                self.take_until(buf, |b| matches!(b, b',' | b'"' | b'\r' | b'\n'))?;
            }
            fields.push(start..buf.len());
            if fields.len() > self.width {
                return Err(CsvError::FieldCount {
                    record,
                    expected: self.width,
                    found: fields.len(),
                }
                .into());
            }
            let next = self.peek()?;
            if next.is_some() {
                self.input.consume(1);
            }
            match next {
                Some(b',') => {}
                Some(b'\n') => {
                    if fields.len() != self.width {
                        return Err(CsvError::FieldCount {
                            record,
                            expected: self.width,
                            found: fields.len(),
                        }
                        .into());
                    }
                    return Ok(());
                }
                Some(b'\r') => return Err(CsvError::BareCarriageReturn { record }.into()),
                Some(_) => return Err(CsvError::StrayQuote { record }.into()),
                None => return Err(CsvError::MissingLineEnd { record }.into()),
            }
        }
    }

    /// The common case: a whole line in the input's buffer with no quote and no CR. Its fields'
    /// ranges (commas skipped) go to `fields`, and its length, without the `\n`, is returned;
    /// nothing is consumed. `None` for any other line, which the general parser then reads.
    fn plain_line(&mut self, fields: &mut Vec<Range<usize>>) -> Result<Option<usize>, ReadError> {
        let available = self.input.fill_buf()?;
        // Scanned with `memchr`'s vector search rather than byte by byte: this is most of the
        // per-row cost of verifying a big bundle (P7 in BENCHMARKS.md). The first line end, quote
        // or carriage return in one search: the line is plain exactly when a line end comes first.
        let Some(end) = memchr::memchr3(b'\n', b'"', b'\r', available) else {
            return Ok(None);
        };
        if available[end] != b'\n' {
            return Ok(None);
        }
        let mut start = 0;
        for i in Commas::new(&available[..end]) {
            if fields.len() > self.width {
                // Already too many: the count is all the error needs.
                break;
            }
            fields.push(start..i);
            start = i + 1;
        }
        fields.push(start..end);
        let record = self.record;
        if end > MAX_RECORD_BYTES {
            return Err(CsvError::RecordTooLong {
                record,
                cap: MAX_RECORD_BYTES,
            }
            .into());
        }
        if fields.len() != self.width {
            return Err(CsvError::FieldCount {
                record,
                expected: self.width,
                found: fields.len().min(self.width + 1),
            }
            .into());
        }
        Ok(Some(end))
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    /// Appends bytes up to (not including) the first for which `stop` holds, or to the end.
    fn take_until(
        &mut self,
        buf: &mut Vec<u8>,
        stop: impl Fn(u8) -> bool,
    ) -> Result<(), ReadError> {
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Ok(());
            }
            let (n, found) = match available.iter().position(|&b| stop(b)) {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if buf.len() + n > MAX_RECORD_BYTES {
                return Err(CsvError::RecordTooLong {
                    record: self.record,
                    cap: MAX_RECORD_BYTES,
                }
                .into());
            }
            buf.extend_from_slice(&available[..n]);
            self.input.consume(n);
            if found {
                return Ok(());
            }
        }
    }

    /// A quoted field whose opening quote is consumed, up to and including its closing quote.
    fn quoted(&mut self, buf: &mut Vec<u8>) -> Result<(), ReadError> {
        loop {
            self.take_until(buf, |b| b == b'"')?;
            if self.peek()?.is_none() {
                return Err(CsvError::UnterminatedQuote {
                    record: self.record,
                }
                .into());
            }
            self.input.consume(1);
            if self.peek()? == Some(b'"') {
                self.input.consume(1);
                buf.push(b'"');
            } else {
                return Ok(());
            }
        }
    }
}

/// The positions of the commas of a line, found eight bytes at a time in a `u64`.
///
/// A reading's line has fourteen commas some fifteen bytes apart; `memchr_iter` sets up its vector
/// search again for each, which was ~9 % of verifying a big bundle (P7 in BENCHMARKS.md). Here each
/// word's commas come out of one mask, with no set-up: half the time.
struct Commas<'a> {
    line: &'a [u8],
    /// Where the next word starts.
    next_word: usize,
    /// Where the current word starts.
    base: usize,
    /// The current word's commas not yet given: the high bit of each byte that is one.
    mask: u64,
}

impl<'a> Commas<'a> {
    fn new(line: &'a [u8]) -> Self {
        Self {
            line,
            next_word: 0,
            base: 0,
            mask: 0,
        }
    }
}

impl Iterator for Commas<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const COMMAS: u64 = 0x2c2c_2c2c_2c2c_2c2c;
        while self.mask == 0 {
            let rest = self.line.get(self.next_word..).unwrap_or_default();
            let word = match rest.first_chunk::<8>() {
                Some(word) => *word,
                None if rest.is_empty() => return None,
                None => {
                    // The last few bytes, padded with zeros, which are not commas.
                    let mut word = [0u8; 8];
                    word[..rest.len()].copy_from_slice(rest);
                    word
                }
            };
            // A byte of `x` is zero exactly where the word has a comma. Adding 0x7f to a byte's
            // low seven bits sets its high bit unless they are all zero, without carrying into the
            // next byte; or-ing `x` in sets it where the byte's own high bit is set. The high bits
            // left clear are those of the zero bytes, and only those.
            let x = u64::from_le_bytes(word) ^ COMMAS;
            self.mask = !(((x & LOW7) + LOW7) | x | LOW7);
            self.base = self.next_word;
            self.next_word += 8;
        }
        let at = self.base + (self.mask.trailing_zeros() / 8) as usize;
        self.mask &= self.mask - 1;
        Some(at)
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
        // Far more fields than the width: the count stops one past it.
        check(
            "a,b\nc,d,e,f,g,h\n",
            2,
            Err(CsvError::FieldCount {
                record: 2,
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
        fn commas_are_found_where_they_are(line in proptest::collection::vec(
            prop::sample::select(vec![b',', b'a', 0, 0x2c ^ 0x80, 0xac, 0x2d, 0x2b, 0xff]),
            0..40,
        )) {
            let expected: Vec<usize> = line
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b',')
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(Commas::new(&line).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn plain_lines_split_at_every_comma(
            fields in proptest::collection::vec("[a-z\u{e9}\u{2c2c}\u{ac}]{0,10}", 1..20),
            extra in 0usize..3,
        ) {
            let mut text = fields.join(",");
            text.push('\n');
            prop_assert_eq!(parse(&text, fields.len()), Ok(vec![fields.clone()]));
            let wider = fields.len() + extra;
            if extra > 0 {
                prop_assert_eq!(
                    parse(&text, wider),
                    Err(CsvError::FieldCount { record: 1, expected: wider, found: fields.len() })
                );
            }
            if fields.len() > 1 {
                prop_assert_eq!(
                    parse(&text, 1),
                    Err(CsvError::FieldCount { record: 1, expected: 1, found: 2 })
                );
            }
        }

        #[test]
        fn in_place_records_are_the_copied_ones(
            text in "[ab,\"\r\n]{0,60}",
            width in 1usize..4,
            capacity in 1usize..12,
        ) {
            let copied = {
                let mut reader = Reader::new(io::BufReader::with_capacity(capacity, text.as_bytes()), width);
                let (mut buf, mut fields) = (Vec::new(), Vec::new());
                let mut out = Vec::new();
                loop {
                    match reader.next_record(&mut buf, &mut fields) {
                        Ok(true) => out.push(Ok(fields.iter().map(|r| buf[r.clone()].to_vec()).collect::<Vec<_>>())),
                        Ok(false) => break,
                        Err(e) => {
                            out.push(Err(e.to_string()));
                            break;
                        }
                    }
                }
                out
            };
            let mut reader = Reader::new(io::BufReader::with_capacity(capacity, text.as_bytes()), width);
            let (mut buf, mut fields) = (Vec::new(), Vec::new());
            let mut in_place = Vec::new();
            let mut numbers = Vec::new();
            loop {
                match reader.next_record_in_place(&mut buf, &mut fields) {
                    Ok(Some((record, line))) => {
                        numbers.push(record);
                        in_place.push(Ok(fields.iter().map(|r| line[r.clone()].to_vec()).collect::<Vec<_>>()));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        in_place.push(Err(e.to_string()));
                        break;
                    }
                }
            }
            prop_assert_eq!(in_place, copied);
            prop_assert_eq!(numbers.clone(), (1..=numbers.len()).collect::<Vec<_>>());
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
