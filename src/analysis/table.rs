//! Named columns of numbers: the input of `tsagent analyze`.
//!
//! From a CSV file (a header row, then comma-separated rows; RFC 4180 quotes, CRLF or LF line ends,
//! blank lines and `#` comment lines skipped) only the columns asked for are parsed, so a file
//! exported by `tsagent readings --csv` can be analysed though its `utc` and `raw` columns are
//! text, and a million rows cost the memory of the columns used, not of the file. From the log,
//! the columns are `seq`, `run`, `utc`, `days` and `value` of the selected valid readings.
//!
//! Every value keeps where it came from (file and line, or reading seq), so an error names the
//! file, the row and the column, never just an index.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use tsagent_bundle::chain::ReadingStatus;

use crate::store::SelectedReading;

/// Why a table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file has no header row (it is empty, or only blank and comment lines).
    #[error("{origin}: empty file: no header row")]
    Empty {
        /// The file.
        origin: String,
    },
    /// A line breaks the CSV format (an unterminated or stray quote).
    #[error("{origin}:{line}: {reason}")]
    Syntax {
        /// The file.
        origin: String,
        /// Line number, from 1.
        line: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A row has more or fewer fields than the header.
    #[error("{origin}:{line}: {found} fields, but the header has {expected}")]
    FieldCount {
        /// The file.
        origin: String,
        /// Line number, from 1.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A column asked for is not in the header.
    #[error("{origin}: no column `{column}`; the columns are {available}")]
    MissingColumn {
        /// The file.
        origin: String,
        /// The column asked for.
        column: String,
        /// The header's columns, quoted and comma-separated.
        available: String,
    },
    /// A column asked for appears more than once in the header.
    #[error("{origin}: column `{column}` appears more than once in the header")]
    DuplicateColumn {
        /// The file.
        origin: String,
        /// The column.
        column: String,
    },
    /// A cell of a column asked for is not a number.
    #[error("{origin}:{line}: column `{column}`: `{text}` is not a number")]
    NotANumber {
        /// The file.
        origin: String,
        /// Line number, from 1.
        line: u64,
        /// The column.
        column: String,
        /// The cell's text (cut to 40 characters).
        text: String,
    },
    /// The selected readings are of more than one series (instrument, quantity and unit): a
    /// mean of a voltage and a temperature means nothing.
    #[error(
        "{origin}: the selection mixes series: {series}; choose one with --instrument and --quantity"
    )]
    MixedSeries {
        /// The selection.
        origin: String,
        /// The series, as `instrument/quantity (unit)`, comma-separated.
        series: String,
    },
    /// A cell of a column asked for is NaN or infinite.
    #[error("{origin}:{line}: column `{column}`: `{text}` is not a finite number")]
    NonFinite {
        /// The file.
        origin: String,
        /// Line number, from 1.
        line: u64,
        /// The column.
        column: String,
        /// The cell's text.
        text: String,
    },
}

impl TableError {
    /// The same error, `lines` further into the file: for a part of the file read from its
    /// own line 1.
    fn after_lines(self, lines: u64) -> TableError {
        match self {
            TableError::Syntax {
                origin,
                line,
                reason,
            } => TableError::Syntax {
                origin,
                line: line + lines,
                reason,
            },
            TableError::FieldCount {
                origin,
                line,
                expected,
                found,
            } => TableError::FieldCount {
                origin,
                line: line + lines,
                expected,
                found,
            },
            TableError::NotANumber {
                origin,
                line,
                column,
                text,
            } => TableError::NotANumber {
                origin,
                line: line + lines,
                column,
                text,
            },
            TableError::NonFinite {
                origin,
                line,
                column,
                text,
            } => TableError::NonFinite {
                origin,
                line: line + lines,
                column,
                text,
            },
            other => other,
        }
    }
}

/// Where a row of a table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    /// A line of a file (from 1).
    Line(u64),
    /// A reading of the log, by its sequence number.
    Reading(u64),
}

/// Named columns of finite numbers, all of one length, and where each row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file's path, or a description of the selection.
    origin: String,
    /// Columns by name, in the order they were asked for (or made).
    columns: Vec<(String, Vec<f64>)>,
    /// Units by column name, when known.
    units: HashMap<String, String>,
    /// Rows' origins: lines (`first_line` + index + lines skipped before) or reading seqs.
    rows: Rows,
    /// Rows of the selection left out because their reading was not valid.
    left_out: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Rows {
    /// Row i is on line `first + i + (skipped lines before it)`; `skips` holds (row index, total
    /// lines skipped before that row) at each row where the count grows: usually empty.
    Lines {
        first: u64,
        skips: Vec<(usize, u64)>,
    },
    /// Row i is the reading with this seq.
    Readings(Vec<u64>),
}

impl Table {
    /// Reads the columns `wanted` of the CSV file at `path`.
    pub fn read_csv(path: &Path, wanted: &[&str]) -> Result<Table, TableError> {
        let io = |source| TableError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        Table::parse_csv(&path.display().to_string(), file, wanted).map_err(|e| match e {
            ParseError::Table(e) => e,
            ParseError::Io(source) => io(source),
        })
    }

    /// Parses CSV text from `input`; `origin` names it in errors.
    ///
    /// The text is read in blocks of 4 MiB, and the lines of a block are read in place while
    /// the next block is read: only a line cut by the end of a block is copied (to join it with
    /// the rest in the next one).
    pub fn parse_csv(origin: &str, input: impl Read, wanted: &[&str]) -> Result<Table, ParseError> {
        Table::parse_csv_split(origin, input, wanted, BLOCK, PARALLEL_MIN)
    }

    /// [`Table::parse_csv`] with blocks of `block` bytes, whose lines are read on two threads
    /// from `parallel_min` bytes on (tests set both low, so that small texts are cut and split).
    fn parse_csv_split(
        origin: &str,
        mut input: impl Read,
        wanted: &[&str],
        block: usize,
        parallel_min: usize,
    ) -> Result<Table, ParseError> {
        let mut rows = RowReader::new(origin, wanted, parallel_min);
        let block = block.max(1);
        let mut this = Vec::with_capacity(block);
        let mut next = Vec::with_capacity(block);
        let mut more = fill(&mut input, &mut this, block)?;
        loop {
            // The whole lines of this block; the rest starts the next one.
            let whole = memchr::memrchr(b'\n', &this).map_or(0, |end| end + 1);
            if whole == 0 && more {
                // A line longer than a block: read on after it, without copying it each time.
                let want = this.len() + block;
                more = fill(&mut input, &mut this, want)?;
                continue;
            }
            next.clear();
            next.extend_from_slice(&this[whole..]);
            if !more {
                rows.lines(&this[..whole], || Ok(false))?;
                break;
            }
            let want = next.len() + block;
            more = rows.lines(&this[..whole], || fill(&mut input, &mut next, want))?;
            std::mem::swap(&mut this, &mut next);
        }
        // The last line, when the text does not end with a line end.
        if !next.is_empty() {
            rows.line(&next)?;
        }
        Ok(rows.finish()?)
    }

    /// The table of `readings` (one series): columns `seq`, `run`, `utc` (seconds since the
    /// Unix epoch), `days` (since the first valid reading) and `value`, valid readings only.
    /// `origin` describes the selection for errors.
    pub fn from_readings(origin: &str, readings: &[SelectedReading]) -> Result<Table, TableError> {
        let valid: Vec<(&SelectedReading, f64)> = readings
            .iter()
            .filter(|r| r.status == ReadingStatus::Valid)
            .filter_map(|r| r.value.filter(|v| v.is_finite()).map(|v| (r, v)))
            .collect();
        let mut series: Vec<String> = Vec::new();
        for (r, _) in &valid {
            let name = format!("{}/{} ({})", r.instrument, r.quantity, r.unit);
            if !series.contains(&name) {
                series.push(name);
            }
        }
        if series.len() > 1 {
            return Err(TableError::MixedSeries {
                origin: origin.to_owned(),
                series: series.join(", "),
            });
        }
        let t0 = valid.first().map_or(0, |(r, _)| r.utc_us);
        let mut units = HashMap::new();
        if let Some((r, _)) = valid.first() {
            units.insert("value".to_owned(), r.unit.clone());
        }
        units.insert("utc".to_owned(), "s".to_owned());
        units.insert("days".to_owned(), "d".to_owned());
        let column = |f: &dyn Fn(&SelectedReading, f64) -> f64| -> Vec<f64> {
            valid.iter().map(|(r, v)| f(r, *v)).collect()
        };
        Ok(Table {
            origin: origin.to_owned(),
            columns: vec![
                ("seq".to_owned(), column(&|r, _| r.seq as f64)),
                ("run".to_owned(), column(&|r, _| r.run as f64)),
                ("utc".to_owned(), column(&|r, _| r.utc_us as f64 / 1e6)),
                (
                    "days".to_owned(),
                    // Integer microseconds first, so the difference is exact.
                    column(&|r, _| (r.utc_us - t0) as f64 / 86_400e6),
                ),
                ("value".to_owned(), column(&|_, v| v)),
            ],
            units,
            rows: Rows::Readings(valid.iter().map(|(r, _)| r.seq).collect()),
            left_out: readings.len() - valid.len(),
        })
    }

    /// The file's path or the selection's description.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |c| c.1.len())
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Readings of the selection left out because they were not valid (overload, not a number).
    pub fn left_out(&self) -> usize {
        self.left_out
    }

    /// The column `name`, or [`TableError::MissingColumn`] listing those there are.
    pub fn column(&self, name: &str) -> Result<&[f64], TableError> {
        match self.columns.iter().find(|(n, _)| n == name) {
            Some((_, c)) => Ok(c),
            None => Err(TableError::MissingColumn {
                origin: self.origin.clone(),
                column: name.to_owned(),
                available: self
                    .columns
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The unit of column `name`, when known.
    pub fn unit(&self, name: &str) -> Option<&str> {
        self.units.get(name).map(String::as_str)
    }

    /// Where row `index` came from.
    pub fn row(&self, index: usize) -> RowRef {
        match &self.rows {
            Rows::Lines { first, skips } => {
                let before = match skips.partition_point(|s| s.0 <= index) {
                    0 => 0,
                    k => skips[k - 1].1,
                };
                RowRef::Line(first + index as u64 + before)
            }
            Rows::Readings(seqs) => RowRef::Reading(seqs.get(index).copied().unwrap_or(0)),
        }
    }
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowRef::Line(l) => write!(f, "line {l}"),
            RowRef::Reading(s) => write!(f, "reading {s}"),
        }
    }
}

/// The header found, and where each column asked for is in it.
#[derive(Clone)]
struct Header {
    /// Fields in the header.
    width: usize,
    /// Field index of each column asked for, in the order asked.
    index: Vec<usize>,
    /// The largest of `index`: a row's fields are located only up to it.
    last: usize,
}

/// The state of reading a CSV text line by line, whatever buffers the lines come in.
struct RowReader<'a> {
    origin: &'a str,
    wanted: &'a [&'a str],
    /// Lines seen so far (the number of the current line once it is counted).
    line_no: u64,
    /// `None` until the first line that is neither blank nor a comment.
    header: Option<Header>,
    columns: Vec<Vec<f64>>,
    /// Line of the first row.
    first: u64,
    skips: Vec<(usize, u64)>,
    skipped: u64,
    rows: usize,
    /// Byte ranges of a row's fields up to the last one asked for: reused across rows.
    cells: Vec<(usize, usize)>,
    /// A quoted row's fields: reused across rows.
    fields: Vec<String>,
    /// Whole lines of at least this many bytes are split between two threads.
    parallel_min: usize,
}

/// Bytes read at a time: a thread per block costs little beside the work of 40,000 lines, and
/// two blocks (the one read and the one being read) are 8 MiB of the 64 MB target (P8).
const BLOCK: usize = 4 << 20;

/// Reads `input` onto the end of `buf` until it holds `want` bytes or the input ends; whether
/// the input may have more.
fn fill(input: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let need = want.saturating_sub(buf.len());
    buf.reserve(need);
    let got = input.take(need as u64).read_to_end(buf)?;
    Ok(got == need)
}

/// Below this many bytes, the lines of a buffer are read on one thread: starting a thread would
/// cost more than it saves.
const PARALLEL_MIN: usize = 256 << 10;

impl<'a> RowReader<'a> {
    fn new(origin: &'a str, wanted: &'a [&'a str], parallel_min: usize) -> Self {
        RowReader {
            origin,
            wanted,
            line_no: 0,
            header: None,
            columns: vec![Vec::new(); wanted.len()],
            first: 0,
            skips: Vec::new(),
            skipped: 0,
            rows: 0,
            cells: Vec::new(),
            fields: Vec::new(),
            parallel_min,
        }
    }

    /// Whole lines (each ends with `\n`), while `read` reads the next block; whether the input
    /// may have more, as `read` says.
    ///
    /// Once the header is known, a large block is cut at a line end and its second part is read
    /// on another thread, by a reader that counts its lines, rows and skips from zero; its
    /// results are appended to ours in file order and its error, if ours has none, is moved to
    /// its place in the file. So the rows, their lines and the first error are exactly those of
    /// reading the lines one by one (P8). This thread also reads the next block, so it takes
    /// the smaller part: 2/5.
    fn lines(
        &mut self,
        mut text: &[u8],
        read: impl FnOnce() -> std::io::Result<bool>,
    ) -> Result<bool, ParseError> {
        // The lines up to the header, one by one: the rest can be split.
        while self.header.is_none() {
            let Some(end) = memchr::memchr(b'\n', text) else {
                return Ok(read()?);
            };
            self.line(&text[..end])?;
            text = &text[end + 1..];
        }
        let at = text.len() / 5 * 2;
        let cut = match memchr::memchr(b'\n', text.get(at..).unwrap_or_default()) {
            Some(end) if text.len() >= self.parallel_min && at + end + 1 < text.len() => {
                at + end + 1
            }
            _ => {
                self.lines_here(text)?;
                return Ok(read()?);
            }
        };
        let (front, back) = text.split_at(cut);
        let mut part = RowReader::new(self.origin, self.wanted, usize::MAX);
        part.cells = Vec::with_capacity(self.header.as_ref().map_or(0, |h| h.width));
        part.header = self.header.clone();
        let (ours, read, theirs) = std::thread::scope(|scope| {
            let worker = std::thread::Builder::new().spawn_scoped(scope, move || {
                let result = part.lines_here(back);
                (result, part)
            });
            match worker {
                Ok(worker) => {
                    let read = read();
                    let ours = self.lines_here(front);
                    (ours, read, Some(worker.join()))
                }
                // No thread to be had: all of it here, in order.
                Err(_) => (self.lines_here(text), read(), None),
            }
        });
        // Errors in file order: ours, the other part's, then reading what follows.
        ours?;
        match theirs {
            None => {}
            Some(Ok((Ok(()), part))) => self.append(part),
            Some(Ok((Err(e), _))) => return Err(e.after_lines(self.line_no).into()),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
        Ok(read?)
    }

    /// Whole lines, on this thread, with one scan for the line ends, commas and quotes of them
    /// all: it finds a row's fields up to the last column asked for and counts the rest, where
    /// a scan per line and per field cost more in starting than in scanning (P8). A line with a
    /// quote, or any line before the header, is read by itself.
    fn lines_here(&mut self, text: &[u8]) -> Result<(), TableError> {
        let Some(last) = self.header.as_ref().map(|h| h.last) else {
            let mut from = 0;
            for end in memchr::memchr_iter(b'\n', text) {
                self.line(&text[from..end])?;
                from = end + 1;
            }
            return Ok(());
        };
        // One UTF-8 check of all the lines instead of one per cell; lines with bytes that are
        // not UTF-8 are checked cell by cell, as only the cells used matter.
        let utf8 = std::str::from_utf8(text).ok();
        let (mut start, mut field, mut commas, mut quoted) = (0, 0, 0, false);
        self.cells.clear();
        for at in memchr::memchr3_iter(b',', b'\n', b'"', text) {
            match text[at] {
                b',' => {
                    if self.cells.len() <= last {
                        self.cells.push((field - start, at - start));
                    }
                    commas += 1;
                    field = at + 1;
                }
                b'"' => quoted = true,
                _ => {
                    let line = &text[start..at];
                    if quoted {
                        self.line(line)?;
                    } else {
                        if self.cells.len() <= last {
                            self.cells.push((field - start, at - start));
                        }
                        self.line_no += 1;
                        let text = utf8.and_then(|t| t.get(start..at));
                        self.row(line, text, Some(commas + 1))?;
                    }
                    (start, field, commas, quoted) = (at + 1, at + 1, 0, false);
                    self.cells.clear();
                }
            }
        }
        Ok(())
    }

    /// Appends the rows of `part`, the reader of the lines that follow ours.
    fn append(&mut self, part: RowReader<'_>) {
        // The skips before the part's first row: those still pending here (lines skipped after
        // our last row) and the part's own.
        let own_first = part.skips.first().filter(|s| s.0 == 0).map_or(0, |s| s.1);
        let at_first = self.skipped + own_first;
        if part.rows > 0 && self.skips.last().map_or(0, |s| s.1) != at_first {
            self.skips.push((self.rows, at_first));
        }
        self.skips.extend(
            part.skips
                .iter()
                .filter(|s| s.0 > 0)
                .map(|&(row, skipped)| (self.rows + row, self.skipped + skipped)),
        );
        for (ours, theirs) in self.columns.iter_mut().zip(&part.columns) {
            ours.extend_from_slice(theirs);
        }
        self.line_no += part.line_no;
        self.skipped += part.skipped;
        self.rows += part.rows;
    }

    /// One line, without its `\n` (a `\r` before it is still there).
    fn line(&mut self, line: &[u8]) -> Result<(), TableError> {
        self.line_no += 1;
        match &self.header {
            None => self.header_line(line),
            Some(_) => self.row(line, None, None),
        }
    }

    fn header_line(&mut self, line: &[u8]) -> Result<(), TableError> {
        let origin = self.origin;
        let text = line_text(origin, self.line_no, line)?;
        if skip(text) {
            return Ok(());
        }
        split(origin, self.line_no, text, &mut self.fields)?;
        let header: Vec<String> = self.fields.iter().map(|f| f.trim().to_owned()).collect();
        let mut index = Vec::with_capacity(self.wanted.len());
        for name in self.wanted {
            let mut at = header.iter().enumerate().filter(|(_, h)| h == name);
            match (at.next(), at.next()) {
                (Some((i, _)), None) => index.push(i),
                (Some(_), Some(_)) => {
                    return Err(TableError::DuplicateColumn {
                        origin: origin.to_owned(),
                        column: (*name).to_owned(),
                    });
                }
                (None, _) => {
                    return Err(TableError::MissingColumn {
                        origin: origin.to_owned(),
                        column: (*name).to_owned(),
                        available: header
                            .iter()
                            .map(|h| format!("`{h}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        self.first = self.line_no + 1;
        self.cells = Vec::with_capacity(header.len());
        self.header = Some(Header {
            width: header.len(),
            last: index.iter().copied().max().unwrap_or(0),
            index,
        });
        Ok(())
    }

    /// A line after the header, without its `\n`, and the same as text when it is known to be
    /// UTF-8. `scanned`: the line has no quote, its fields up to the last asked for are in
    /// `cells` (from `lines_here`'s scan, so possibly with a `\r` at the end of the last) and it
    /// has this many fields.
    fn row(
        &mut self,
        line: &[u8],
        text: Option<&str>,
        scanned: Option<usize>,
    ) -> Result<(), TableError> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        let (origin, wanted, line_no) = (self.origin, self.wanted, self.line_no);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if skip_bytes(line) {
            self.skipped += 1;
            return Ok(());
        }
        if self.skips.last().map_or(0, |s| s.1) != self.skipped {
            self.skips.push((self.rows, self.skipped));
        }
        let field_count = |found| TableError::FieldCount {
            origin: origin.to_owned(),
            line: line_no,
            expected: header.width,
            found,
        };
        let found = match scanned {
            Some(found) => found,
            None if memchr::memchr(b'"', line).is_some() => {
                let text = line_text(origin, line_no, line)?;
                split(origin, line_no, text, &mut self.fields)?;
                if self.fields.len() != header.width {
                    return Err(field_count(self.fields.len()));
                }
                for (c, &i) in header.index.iter().enumerate() {
                    let cell = self.fields.get(i).map_or("", |f| f.trim());
                    self.columns[c].push(number(origin, line_no, wanted[c], cell)?);
                }
                self.rows += 1;
                return Ok(());
            }
            None => {
                // The fields up to the last column asked for, and a count of the commas after
                // it for the row's width.
                self.cells.clear();
                let mut start = 0;
                let mut commas = memchr::memchr_iter(b',', line);
                while self.cells.len() < header.last {
                    match commas.next() {
                        Some(end) => {
                            self.cells.push((start, end));
                            start = end + 1;
                        }
                        None => break,
                    }
                }
                if self.cells.len() < header.last {
                    // The row ends before the last column asked for.
                    self.cells.len() + 1
                } else {
                    let end = commas.next().unwrap_or(line.len());
                    self.cells.push((start, end));
                    let after = line.get(end + 1..).unwrap_or_default();
                    self.cells.len()
                        + after.iter().filter(|&&b| b == b',').count()
                        + usize::from(end < line.len())
                }
            }
        };
        if found != header.width {
            return Err(field_count(found));
        }
        for (c, &i) in header.index.iter().enumerate() {
            let (a, b) = self.cells.get(i).copied().unwrap_or_default();
            let b = b.min(line.len());
            let bytes = line.get(a..b).unwrap_or_default();
            let cell = match text
                .and_then(|t| t.get(a..b))
                .map_or_else(|| std::str::from_utf8(bytes), Ok)
            {
                Ok(cell) => trim(cell),
                Err(_) => {
                    return Err(TableError::NotANumber {
                        origin: origin.to_owned(),
                        line: line_no,
                        column: wanted[c].to_owned(),
                        text: String::from_utf8_lossy(bytes).chars().take(40).collect(),
                    });
                }
            };
            self.columns[c].push(number(origin, line_no, wanted[c], cell)?);
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<Table, TableError> {
        if self.header.is_none() {
            return Err(TableError::Empty {
                origin: self.origin.to_owned(),
            });
        }
        Ok(Table {
            origin: self.origin.to_owned(),
            columns: self
                .wanted
                .iter()
                .map(|w| (*w).to_owned())
                .zip(self.columns)
                .collect(),
            units: HashMap::new(),
            rows: Rows::Lines {
                first: self.first,
                skips: self.skips,
            },
            left_out: 0,
        })
    }
}

/// Why CSV text could not be parsed: its content, or reading it.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The content.
    #[error(transparent)]
    Table(#[from] TableError),
    /// Reading the input.
    #[error("cannot read the input")]
    Io(#[from] std::io::Error),
}

/// Writes `columns` (name, values) as CSV text that [`Table::parse_csv`] reads back exactly:
/// the shortest decimal that round-trips each double.
pub fn write_csv(columns: &[(&str, &[f64])]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    tsagent_bundle::csv::write_record(&mut out, &names);
    let rows = columns.first().map_or(0, |c| c.1.len());
    let mut buf = ryu::Buffer::new();
    for i in 0..rows {
        for (j, (_, values)) in columns.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(buf.format(values.get(i).copied().unwrap_or(f64::NAN)));
        }
        out.push('\n');
    }
    out
}

/// The line without its end (LF or CRLF), as UTF-8.
fn line_text<'a>(origin: &str, line: u64, raw: &'a [u8]) -> Result<&'a str, TableError> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    std::str::from_utf8(raw).map_err(|_| TableError::Syntax {
        origin: origin.to_owned(),
        line,
        reason: "not UTF-8 text",
    })
}

/// Blank lines and `#` comments carry no row (as [`skip`], on the line's bytes).
fn skip_bytes(line: &[u8]) -> bool {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None => true,
        Some(b) => *b == b'#',
    }
}

/// Blank lines and `#` comments carry no row.
fn skip(text: &str) -> bool {
    let t = text.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Splits one line into fields: commas, with RFC 4180 quotes (`""` for a quote inside them).
fn split(origin: &str, line: u64, text: &str, fields: &mut Vec<String>) -> Result<(), TableError> {
    fields.clear();
    let syntax = |reason| TableError::Syntax {
        origin: origin.to_owned(),
        line,
        reason,
    };
    if !text.contains('"') {
        fields.extend(text.split(',').map(str::to_owned));
        return Ok(());
    }
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(syntax("unterminated quoted field")),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                Some(',') => fields.push(field),
                None => {
                    fields.push(field);
                    return Ok(());
                }
                Some(_) => return Err(syntax("text after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break,
                    Some('"') => return Err(syntax("quote inside an unquoted field")),
                    Some(c) => field.push(c),
                    None => {
                        fields.push(field);
                        return Ok(());
                    }
                }
            }
            fields.push(field);
        }
    }
}

/// `cell` without the white space around it. Cells seldom have any, and two byte tests are
/// cheaper than `str::trim`'s scan a million times over (P8).
fn trim(cell: &str) -> &str {
    let bare = |b: Option<&u8>| b.is_some_and(|&b| b.is_ascii() && !char::from(b).is_whitespace());
    let bytes = cell.as_bytes();
    if bare(bytes.first()) && bare(bytes.last()) {
        cell
    } else {
        cell.trim()
    }
}

/// The number in `cell`; NaN and infinities (which Rust's parser accepts) are refused.
fn number(origin: &str, line: u64, column: &str, cell: &str) -> Result<f64, TableError> {
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(TableError::NonFinite {
            origin: origin.to_owned(),
            line,
            column: column.to_owned(),
            text: cell.to_owned(),
        }),
        Err(_) => Err(TableError::NotANumber {
            origin: origin.to_owned(),
            line,
            column: column.to_owned(),
            text: cell.chars().take(40).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str, wanted: &[&str]) -> Result<Table, TableError> {
        Table::parse_csv("f.csv", text.as_bytes(), wanted).map_err(|e| match e {
            ParseError::Table(e) => e,
            ParseError::Io(e) => panic!("{e}"),
        })
    }

    /// A plain reader to check the buffered one against: a line at a time, every field split
    /// and trimmed, the same errors in the same order.
    fn reference(text: &[u8], wanted: &[&str]) -> Result<Table, TableError> {
        let o = "f";
        let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
        let mut fields = Vec::new();
        let mut columns = vec![Vec::new(); wanted.len()];
        let mut header = None;
        let (mut first, mut skips, mut skipped, mut rows) = (0, Vec::new(), 0, 0);
        while let Some((i, line)) = lines.next() {
            if line.is_empty() && lines.peek().is_none() {
                break;
            }
            let n = i as u64 + 1;
            let Some((width, index)) = &header else {
                let text = line_text(o, n, line)?;
                if skip(text) {
                    continue;
                }
                split(o, n, text, &mut fields)?;
                let names: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
                let mut index = Vec::new();
                for w in wanted {
                    let at: Vec<usize> = (0..names.len()).filter(|&j| names[j] == *w).collect();
                    match at[..] {
                        [j] => index.push(j),
                        [] => {
                            return Err(TableError::MissingColumn {
                                origin: o.into(),
                                column: (*w).into(),
                                available: names
                                    .iter()
                                    .map(|h| format!("`{h}`"))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            });
                        }
                        _ => {
                            return Err(TableError::DuplicateColumn {
                                origin: o.into(),
                                column: (*w).into(),
                            });
                        }
                    }
                }
                header = Some((names.len(), index));
                first = n + 1;
                continue;
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if skip_bytes(line) {
                skipped += 1;
                continue;
            }
            if skips.last().map_or(0, |s: &(usize, u64)| s.1) != skipped {
                skips.push((rows, skipped));
            }
            let cells: Vec<String> = if line.contains(&b'"') {
                split(o, n, line_text(o, n, line)?, &mut fields)?;
                fields.clone()
            } else {
                line.split(|&b| b == b',')
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect()
            };
            if cells.len() != *width {
                return Err(TableError::FieldCount {
                    origin: o.into(),
                    line: n,
                    expected: *width,
                    found: cells.len(),
                });
            }
            for (c, &j) in index.iter().enumerate() {
                columns[c].push(number(o, n, wanted[c], cells[j].trim())?);
            }
            rows += 1;
        }
        if header.is_none() {
            return Err(TableError::Empty { origin: o.into() });
        }
        Ok(Table {
            origin: o.into(),
            columns: wanted
                .iter()
                .map(|w| (*w).to_owned())
                .zip(columns)
                .collect(),
            units: HashMap::new(),
            rows: Rows::Lines { first, skips },
            left_out: 0,
        })
    }

    #[test]
    fn reads_only_the_columns_asked_for() {
        let t = parse(
            "# exported\nutc,value,raw\r\n2026-12-01T00:00:00Z,1.5,\"a, b\"\n\n2026-12-02T00:00:00Z,2.5,x\n",
            &["value"],
        )
        .unwrap();
        assert_eq!(t.column("value").unwrap(), [1.5, 2.5]);
        assert_eq!(t.row(0), RowRef::Line(3));
        assert_eq!(t.row(1), RowRef::Line(5));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = |text: &str, wanted: &[&str]| parse(text, wanted).unwrap_err().to_string();
        assert_eq!(e("", &["y"]), "f.csv: empty file: no header row");
        assert_eq!(e("# only\n\n", &["y"]), "f.csv: empty file: no header row");
        assert_eq!(
            e("a,b\n1,2\n", &["y"]),
            "f.csv: no column `y`; the columns are `a`, `b`"
        );
        assert_eq!(
            e("a,b\n1,2\n3,zz\n", &["b"]),
            "f.csv:3: column `b`: `zz` is not a number"
        );
        assert_eq!(
            e("a,b\n1,NaN\n", &["b"]),
            "f.csv:2: column `b`: `NaN` is not a finite number"
        );
        assert_eq!(
            e("a,b\n1,-inf\n", &["b"]),
            "f.csv:2: column `b`: `-inf` is not a finite number"
        );
        assert_eq!(
            e("a,b\n1,\n", &["b"]),
            "f.csv:2: column `b`: `` is not a number"
        );
        assert_eq!(
            e("a,b\n1,2,3\n", &["b"]),
            "f.csv:2: 3 fields, but the header has 2"
        );
        assert_eq!(
            e("a,b\n1,\"2\n", &["b"]),
            "f.csv:2: unterminated quoted field"
        );
        assert_eq!(
            e("a,a\n1,2\n", &["a"]),
            "f.csv: column `a` appears more than once in the header"
        );
        // A column not asked for may hold anything.
        assert!(parse("a,b\n1,NaN\n", &["a"]).is_ok());
    }

    #[test]
    fn lines_read_on_two_threads_keep_their_numbers_skips_and_first_error() {
        let split = |text: &str| {
            Table::parse_csv_split("f.csv", text.as_bytes(), &["b"], 4096, 1)
                .map_err(|e| e.to_string())
        };
        // Cut after line 5 (2/5 into the text after the header): skips on both sides.
        let t = split("a,b\n1,2\n\n# c\n3,4\n\n5,6\n7,8\n").unwrap();
        assert_eq!(t.column("b").unwrap(), [2.0, 4.0, 6.0, 8.0]);
        let lines: Vec<RowRef> = (0..4).map(|i| t.row(i)).collect();
        use RowRef::Line;
        assert_eq!(lines, [Line(2), Line(5), Line(7), Line(8)]);
        // An error in the second half is named by its line in the file.
        assert_eq!(
            split("a,b\n1,2\n3,4\n5,6\n7,8\n9,x\n").unwrap_err(),
            "f.csv:6: column `b`: `x` is not a number"
        );
        // With errors in both halves, the first in the file wins.
        assert_eq!(
            split("a,b\n1,2\n3\n5,6\n7,8\n9,x\n").unwrap_err(),
            "f.csv:3: 1 fields, but the header has 2"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_matter_only_in_the_columns_used() {
        let text = b"a,b\n1,\xff\n2,3\n";
        let t = Table::parse_csv("f.csv", &text[..], &["a"]).unwrap();
        assert_eq!(t.column("a").unwrap(), [1.0, 2.0]);
        let e = Table::parse_csv("f.csv", &text[..], &["b"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.csv:2: column `b`: `\u{fffd}` is not a number"
        );
    }

    #[test]
    fn readings_become_columns_and_invalid_ones_are_counted() {
        let r = |seq, utc_us, value: Option<f64>, status| SelectedReading {
            seq,
            run: 7,
            instrument: "dmm".into(),
            quantity: "voltage".into(),
            unit: "V".into(),
            utc_us,
            value,
            status,
        };
        let t = Table::from_readings(
            "db",
            &[
                r(10, 1_000_000, Some(10.0), ReadingStatus::Valid),
                r(11, 2_000_000, None, ReadingStatus::Overload),
                r(
                    12,
                    1_000_000 + 43_200_000_000,
                    Some(10.5),
                    ReadingStatus::Valid,
                ),
            ],
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.left_out(), 1);
        assert_eq!(t.column("days").unwrap(), [0.0, 0.5]);
        assert_eq!(t.column("utc").unwrap(), [1.0, 43_201.0]);
        assert_eq!(t.column("seq").unwrap(), [10.0, 12.0]);
        assert_eq!(t.unit("value"), Some("V"));
        assert_eq!(t.row(1), RowRef::Reading(12));
        assert!(
            t.column("nope")
                .unwrap_err()
                .to_string()
                .contains("`seq`, `run`")
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,200}", wanted in prop::collection::vec("[a-c,\"]{0,3}", 0..3)) {
            let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
            let _ = Table::parse_csv("f", text.as_bytes(), &wanted);
        }

        #[test]
        fn never_panics_on_csv_like_text(
            lines in prop::collection::vec("[a-c0-9.eE+\\-,\" #\r]{0,12}", 0..8)
        ) {
            let text = lines.join("\n");
            let _ = Table::parse_csv("f", text.as_bytes(), &["a", "b"]);
        }

        #[test]
        fn buffers_of_any_size_read_as_the_reference_does(
            lines in prop::collection::vec(
                prop_oneof![
                    3 => "[0-9]{1,3}(\\.[0-9]{1,3})?(,[0-9]{1,3}(\\.[0-9]{1,3})?){1,3}",
                    3 => "[0-9]{1,3},[0-9]{1,3},[0-9]{1,3}",
                    1 => "[ab0-9.eE+\\-,\" #\r]{0,12}",
                    1 => Just(String::new()),
                    1 => Just("# note".to_owned()),
                ],
                0..12,
            ),
            header in prop_oneof![Just("a,b,c"), Just("b, a"), Just("# note\r\na,\"b\",c,d"), Just("a,a")],
            block in 1usize..64,
            wanted in prop_oneof![Just(vec!["a"]), Just(vec!["b", "a"]), Just(vec![])],
            end in prop_oneof![Just(""), Just("\n"), Just("\r\n")],
            parallel_min in prop_oneof![Just(usize::MAX), 1usize..32],
        ) {
            let text = format!("{header}\n{}{end}", lines.join("\n"));
            let ours = Table::parse_csv_split("f", text.as_bytes(), &wanted, block, parallel_min)
                .map_err(|e| e.to_string());
            let theirs = reference(text.as_bytes(), &wanted).map_err(|e| e.to_string());
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn round_trips(
            cols in prop::collection::vec(
                prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO, 5),
                1..4,
            )
        ) {
            let names: Vec<String> = (0..cols.len()).map(|i| format!("c{i}")).collect();
            let pairs: Vec<(&str, &[f64])> =
                names.iter().map(String::as_str).zip(cols.iter().map(Vec::as_slice)).collect();
            let text = write_csv(&pairs);
            let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
            let t = Table::parse_csv("f", text.as_bytes(), &wanted).unwrap();
            for (name, col) in names.iter().zip(&cols) {
                prop_assert_eq!(t.column(name).unwrap(), col.as_slice());
            }
        }
    }
}
