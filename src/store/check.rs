//! `tsagent db check`: is the log sound, and if not, where does it first go wrong?

use std::fmt;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::{READING_SELECT, StoreError, blob32, head, reading_row, to_i64, to_u64};
use tsagent_bundle::chain::{GENESIS, ReadingRecord, ReadingStatus};

/// Problems past this many are counted but not listed; the first one is what matters.
const MAX_LISTED: usize = 100;

/// One way the log is not sound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// SQLite's own `integrity_check` reported something.
    Integrity(String),
    /// A row refers to a run or instrument that does not exist.
    ForeignKey(String),
    /// Readings `from..=to` are missing: deleted, or never committed.
    Missing {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// The reading's fields do not hash to its chain value: it was edited.
    Edited {
        /// The reading.
        seq: u64,
    },
    /// A stored value cannot be read as the schema defines it.
    Unreadable {
        /// The reading.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The head records readings beyond the last one present: the newest were deleted.
    Truncated {
        /// Last reading present.
        last: u64,
        /// Last reading the head records.
        head: u64,
    },
    /// The head's chain value differs from the last reading's.
    HeadMismatch {
        /// The reading at the head.
        seq: u64,
    },
    /// A sealed bundle's stored archive no longer matches its seal.
    ArchiveMismatch {
        /// Bundle number.
        bundle: u64,
    },
    /// A reading a sealed bundle's stored archive holds differs from the log's row (an edit of a
    /// sealed row, even with the chain and the seal's records rewritten to match).
    SealedRowDiffers {
        /// Bundle number.
        bundle: u64,
        /// The reading.
        seq: u64,
    },
    /// A reading a sealed bundle's stored archive holds is not in the log.
    SealedRowMissing {
        /// Bundle number.
        bundle: u64,
        /// The reading.
        seq: u64,
    },
    /// The log holds a reading, inside a sealed bundle's range, that its archive does not.
    UnsealedRowInRange {
        /// Bundle number.
        bundle: u64,
        /// The reading.
        seq: u64,
    },
    /// A custody event a sealed bundle's stored archive holds (in `custody.jsonl`) differs from
    /// the log's or is gone from it: custody events are not chained, so this is what shows an edit
    /// of a sealed one.
    SealedCustodyDiffers {
        /// Bundle number.
        bundle: u64,
        /// The event's id.
        id: u64,
    },
    /// A report file a sealed bundle's stored archive carries (in `report/`) differs from the
    /// log's record of what that bundle carried, or one is on only one side: the attachments are
    /// not chained, so this is what shows an edit of a sealed one.
    SealedAttachmentDiffers {
        /// Bundle number.
        bundle: u64,
        /// The file's name in `report/`.
        name: String,
    },
    /// A sealed bundle's recorded chain value differs from the log's at its last reading.
    SealMismatch {
        /// Bundle number.
        bundle: u64,
        /// Its last reading.
        seq: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integrity(msg) => write!(f, "sqlite integrity check: {msg}"),
            Self::ForeignKey(msg) => write!(f, "dangling reference: {msg}"),
            Self::Missing { from, to } if from == to => write!(f, "reading {from} is missing"),
            Self::Missing { from, to } => write!(f, "readings {from} to {to} are missing"),
            Self::Edited { seq } => {
                write!(
                    f,
                    "reading {seq} does not match its chain hash (the row was edited)"
                )
            }
            Self::Unreadable { seq, reason } => write!(f, "reading {seq} is unreadable: {reason}"),
            Self::Truncated { last, head } => write!(
                f,
                "readings after {last} are missing (the chain head records reading {head})"
            ),
            Self::HeadMismatch { seq } => {
                write!(f, "the chain head does not match reading {seq}")
            }
            Self::ArchiveMismatch { bundle } => {
                write!(
                    f,
                    "the stored archive of bundle {bundle} does not match its seal"
                )
            }
            Self::SealedRowDiffers { bundle, seq } => write!(
                f,
                "reading {seq} differs from the row sealed in bundle {bundle} (the row was edited after sealing)"
            ),
            Self::SealedRowMissing { bundle, seq } => write!(
                f,
                "reading {seq}, sealed in bundle {bundle}, is missing from the log"
            ),
            Self::UnsealedRowInRange { bundle, seq } => write!(
                f,
                "reading {seq} is in bundle {bundle}'s range but not in its archive (the row was inserted after sealing)"
            ),
            Self::SealedCustodyDiffers { bundle, id } => write!(
                f,
                "custody event {id}, sealed in bundle {bundle}, differs from the log or is missing (edited or deleted after sealing)"
            ),
            Self::SealedAttachmentDiffers { bundle, name } => write!(
                f,
                "report file {name}, sealed in bundle {bundle}, differs from the log's record or is on one side only (edited, added or deleted after sealing)"
            ),
            Self::SealMismatch { bundle, seq } => write!(
                f,
                "bundle {bundle} sealed a different reading {seq} than the log now holds"
            ),
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Readings present.
    pub readings: u64,
    /// Sealed bundles.
    pub bundles: u64,
    /// Problems in the order found (at most [`MAX_LISTED`]).
    pub problems: Vec<Problem>,
    /// Problems found in all, including those not listed.
    pub problem_count: usize,
}

impl CheckReport {
    /// No problem found.
    pub fn is_sound(&self) -> bool {
        self.problem_count == 0
    }

    fn push(&mut self, p: Problem) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        }
    }
}

pub(super) fn run(conn: &Connection) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();

    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for line in lines.into_iter().filter(|l| l != "ok") {
        report.push(Problem::Integrity(line));
    }
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let dangling: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "{} row {} → {}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<Result<_, _>>()?;
    for d in dangling {
        report.push(Problem::ForeignKey(d));
    }

    // Walk the chain in order. After a problem, continue from the stored chain value so one
    // edited row is reported once instead of poisoning every row after it.
    let mut stmt = conn.prepare(
        "SELECT seq, run_id, instrument_id, quantity, value, status, unit, raw, utc_us, mono_ns,
                boot_id, chain FROM readings ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected: u64 = 1;
    let mut prev = GENESIS;
    // Whether the previous chain value is unknown (after a hole or an unreadable hash), so this
    // row's link cannot be judged.
    let mut prev_unknown = false;
    while let Some(r) = rows.next()? {
        let seq = to_u64(r.get(0)?);
        report.readings += 1;
        if seq != expected {
            report.push(Problem::Missing {
                from: expected,
                to: seq.saturating_sub(1),
            });
            prev_unknown = true;
        }
        let stored: Vec<u8> = r.get(11)?;
        let chain = blob32("readings", &stored);
        match (read_record(r, seq), &chain) {
            (Ok(record), Ok(chain)) => {
                if !prev_unknown && record.chain_after(&prev) != *chain {
                    report.push(Problem::Edited { seq });
                }
            }
            (Err(reason), _) => report.push(Problem::Unreadable { seq, reason }),
            (Ok(_), Err(e)) => report.push(Problem::Unreadable {
                seq,
                reason: e.to_string(),
            }),
        }
        // Go on from the stored value, so one bad row is reported once, not for every row after.
        match chain {
            Ok(chain) => {
                prev = chain;
                prev_unknown = false;
            }
            Err(_) => prev_unknown = true,
        }
        expected = seq + 1;
    }
    let last = expected - 1;

    let (head_seq, head_chain) = head(conn)?;
    if head_seq > last {
        report.push(Problem::Truncated {
            last,
            head: head_seq,
        });
    } else if head_seq < last || (last > 0 && head_chain != prev) {
        report.push(Problem::HeadMismatch { seq: last });
    }

    let mut stmt = conn.prepare(
        "SELECT b.seq, b.last_reading, b.chain_last, r.chain, b.name, b.sums_sha256, b.tar
         FROM bundles b LEFT JOIN readings r ON r.seq = b.last_reading ORDER BY b.seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        report.bundles += 1;
        let bundle = to_u64(r.get(0)?);
        let seq = to_u64(r.get(1)?);
        let sealed: Vec<u8> = r.get(2)?;
        let now: Option<Vec<u8>> = r.get(3)?;
        if now.as_deref() != Some(sealed.as_slice()) {
            report.push(Problem::SealMismatch { bundle, seq });
        }
        // The stored archive is what a lost bundle file is written again from: it must still be
        // the bundle that was sealed.
        let name: String = r.get(4)?;
        let sums: Vec<u8> = r.get(5)?;
        let tar: Vec<u8> = r.get(6)?;
        let parsed = tsagent_bundle::read_tar(&tar, tsagent_bundle::TarLimits::DEFAULT).ok();
        let intact = parsed.as_ref().is_some_and(|t| {
            t.folder == name && Sha256::digest(t.files.sums).as_slice() == sums.as_slice()
        });
        if !intact {
            report.push(Problem::ArchiveMismatch { bundle });
        }
        // The archive is what the pilot has: the log's rows must still be the rows it holds. This
        // is what catches an edit of sealed rows whose chain, head and seal records were all
        // rewritten to match, since the archive's hashes are covered by the signature.
        let sealed = parsed
            .as_ref()
            .and_then(|t| tsagent_bundle::records::read_readings(t.files.readings).ok());
        match sealed {
            Some(rows) => compare_sealed(conn, bundle, &rows, &mut report)?,
            None if intact => report.push(Problem::ArchiveMismatch { bundle }),
            None => {}
        }
        // custody.jsonl (format v2 on) is small: its events are compared one by one.
        if let Some(custody) = parsed.as_ref().and_then(|t| t.files.custody) {
            match tsagent_bundle::records::read_events(custody) {
                Ok(lines) => compare_custody(conn, bundle, &lines, &mut report)?,
                Err(_) if intact => report.push(Problem::ArchiveMismatch { bundle }),
                Err(_) => {}
            }
        }
        if let Some(t) = &parsed {
            compare_attachments(conn, bundle, &t.attachments, &mut report)?;
        }
    }
    Ok(report)
}

/// Compares the report files a bundle's archive carries with the log's record of them, by name
/// and bytes; both lists are sorted by name.
fn compare_attachments(
    conn: &Connection,
    bundle: u64,
    sealed: &[(String, &[u8])],
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, bytes FROM attachments WHERE bundle_seq = ?1 ORDER BY name",
    )?;
    let logged: Vec<(String, Vec<u8>)> = stmt
        .query_map([to_i64(bundle)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut names: Vec<&str> = sealed
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(logged.iter().map(|(n, _)| n.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let in_archive = sealed.iter().find(|(n, _)| n == name).map(|(_, b)| *b);
        let in_log = logged
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice());
        if in_archive != in_log {
            report.push(Problem::SealedAttachmentDiffers {
                bundle,
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Compares a bundle's sealed custody events with the log's rows of the same ids.
fn compare_custody(
    conn: &Connection,
    bundle: u64,
    sealed: &[tsagent_bundle::manifest::EventLine],
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    for line in sealed {
        let logged = super::events_where(conn, "e.id = ?1", to_i64(line.id))?;
        let same = logged.first().is_some_and(|e| {
            e.kind == line.kind
                && e.utc_us == line.utc_us
                && e.run_id == line.run_id
                && e.instrument == line.instrument
                && e.detail == line.detail
        });
        if !same {
            report.push(Problem::SealedCustodyDiffers {
                bundle,
                id: line.id,
            });
        }
    }
    Ok(())
}

/// Compares a bundle's sealed readings with the log's rows over the same range, row by row.
fn compare_sealed(
    conn: &Connection,
    bundle: u64,
    sealed: &[tsagent_bundle::ReadingExport],
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else {
        return Ok(());
    };
    let mut stmt = conn.prepare(&format!(
        "{READING_SELECT} WHERE r.seq BETWEEN ?1 AND ?2 ORDER BY r.seq"
    ))?;
    let mut rows = stmt.query([to_i64(first.record.seq), to_i64(last.record.seq)])?;
    let mut sealed = sealed.iter().peekable();
    let mut logged = None;
    loop {
        if logged.is_none() {
            logged = rows
                .next()?
                .map(|row| reading_row(row).map_err(|e| e.to_string()));
        }
        match (sealed.peek(), &logged) {
            (None, None) => return Ok(()),
            (Some(s), None) => {
                report.push(Problem::SealedRowMissing {
                    bundle,
                    seq: s.record.seq,
                });
                sealed.next();
            }
            (None, Some(Ok(l))) => {
                report.push(Problem::UnsealedRowInRange {
                    bundle,
                    seq: l.record.seq,
                });
                logged = None;
            }
            // An unreadable row is reported by the chain walk; here it only differs.
            (Some(s), Some(Err(_))) => {
                report.push(Problem::SealedRowDiffers {
                    bundle,
                    seq: s.record.seq,
                });
                sealed.next();
                logged = None;
            }
            (None, Some(Err(_))) => logged = None,
            (Some(s), Some(Ok(l))) => {
                let (s_seq, l_seq) = (s.record.seq, l.record.seq);
                if s_seq < l_seq {
                    report.push(Problem::SealedRowMissing { bundle, seq: s_seq });
                    sealed.next();
                } else if l_seq < s_seq {
                    report.push(Problem::UnsealedRowInRange { bundle, seq: l_seq });
                    logged = None;
                } else {
                    if *s != l {
                        report.push(Problem::SealedRowDiffers { bundle, seq: s_seq });
                    }
                    sealed.next();
                    logged = None;
                }
            }
        }
    }
}

fn read_record(r: &rusqlite::Row<'_>, seq: u64) -> Result<ReadingRecord, String> {
    let get_err = |e: rusqlite::Error| e.to_string();
    let status: String = r.get(5).map_err(get_err)?;
    Ok(ReadingRecord {
        seq,
        run_id: to_u64(r.get(1).map_err(get_err)?),
        instrument_id: to_u64(r.get(2).map_err(get_err)?),
        quantity: r.get(3).map_err(get_err)?,
        value: r.get(4).map_err(get_err)?,
        status: ReadingStatus::parse(&status)
            .ok_or_else(|| format!("unknown status `{status}`"))?,
        unit: r.get(6).map_err(get_err)?,
        raw: r.get(7).map_err(get_err)?,
        utc_us: r.get(8).map_err(get_err)?,
        mono_ns: to_u64(r.get(9).map_err(get_err)?),
        boot_id: r.get(10).map_err(get_err)?,
    })
}
