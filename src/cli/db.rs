//! `db check` and `readings`: reading the log. Nothing is written, except that opening brings an
//! older schema up to date.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Error;
use crate::clock;
use crate::store::{ReadingFilter, Store};

/// `tsagent db …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum DbCommand {
    /// Check integrity, the reading chain, the sequence and the seals; non-zero exit naming the
    /// first bad row if anything is wrong.
    Check {
        /// The SQLite file.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
    },
}

/// `tsagent readings`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct ReadingsArgs {
    /// The SQLite file.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub db: Option<PathBuf>,
    /// The lab's config file: its `[storage] db`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only readings taken at or after this instant: RFC 3339 with any offset
    /// (2026-12-02T20:40:00+08:00, 2026-12-02T12:40:00Z) or a plain date (2026-12-02 means
    /// 2026-12-02T00:00:00Z, 00:00 UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only readings taken at or before this instant, written as for --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only readings of this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<u64>,
    /// Only readings from this instrument (its name in the config).
    #[arg(long, value_name = "NAME")]
    pub instrument: Option<String>,
    /// Only readings of this quantity (e.g. voltage, pressure).
    #[arg(long, value_name = "NAME")]
    pub quantity: Option<String>,
    /// CSV: every column of a bundle's readings.csv, in its order, then the run's `operator`,
    /// `run_status` and `official` (1 or 0).
    #[arg(long)]
    pub csv: bool,
}

/// An instant for `--since`/`--until`, as UTC microseconds.
pub(super) fn parse_time(text: &str) -> Result<i64, String> {
    crate::config::instant::parse(text).map_err(|e| {
        format!("{e}; expected RFC 3339 such as 2026-12-02T20:40:00+08:00 or 2026-12-02T12:40:00Z, or a date such as 2026-12-02 (00:00 UTC)")
    })
}

/// Runs a `db` subcommand.
pub fn run(cmd: DbCommand) -> Result<(), Error> {
    match cmd {
        DbCommand::Check { db } => {
            let store = Store::open_existing(&db)?;
            let report = store.check()?;
            if report.is_sound() {
                say!(
                    "{}: ok — integrity ok, {} readings chained without holes, {} sealed bundle(s) match",
                    db.display(),
                    report.readings,
                    report.bundles
                );
                return Ok(());
            }
            for p in &report.problems {
                say!("{}: {p}", db.display());
            }
            match report.problems.first() {
                Some(first) => Err(Error::CheckFailed {
                    db,
                    first: first.clone(),
                    count: report.problem_count,
                }),
                None => Ok(()),
            }
        }
    }
}

/// Lists readings.
pub fn readings(args: ReadingsArgs) -> Result<(), Error> {
    let db = match (&args.db, &args.config) {
        (Some(db), _) => db.clone(),
        (None, Some(config)) => crate::config::Config::load(config)?.storage.db,
        (None, None) => return Err(Error::Usage("give --db or --config".into())),
    };
    let store = Store::open_existing(&db)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |source| Error::Io {
        action: "write to",
        path: PathBuf::from("stdout"),
        source,
    };
    match list(&store, &args, &mut out, write_err) {
        // The reader went away (`| head`): stop quietly, as other Unix tools do.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        // Any other failure to write the listing (`>/dev/full`, a closed stdout) is the command's
        // failure, as for `cat`: the readings are what it was asked for, and a short file that
        // exits 0 would pass for a whole one.
        other => other,
    }
}

/// Columns `--csv` adds after a bundle's readings.csv columns.
const LISTING_EXTRA: [&str; 3] = ["operator", "run_status", "official"];

fn list(
    store: &Store,
    args: &ReadingsArgs,
    out: &mut impl std::io::Write,
    write_err: impl Fn(std::io::Error) -> Error + Copy,
) -> Result<(), Error> {
    let filter = ReadingFilter {
        since_utc_us: args.since,
        until_utc_us: args.until,
        run_id: args.run,
        instrument: args.instrument.as_deref(),
        quantity: args.quantity.as_deref(),
        ..ReadingFilter::default()
    };
    if args.csv {
        let mut line = String::new();
        let mut header: Vec<&str> = tsagent_bundle::records::READINGS_HEADER.to_vec();
        header.extend(LISTING_EXTRA);
        tsagent_bundle::csv::write_record(&mut line, &header);
        out.write_all(line.as_bytes()).map_err(write_err)?;
        store.visit_listing(&filter, |listed| {
            line.clear();
            tsagent_bundle::records::write_reading(&mut line, &listed.reading);
            // The bundle's columns end the line; the run's follow them on the same record.
            if line.ends_with('\n') {
                line.pop();
            }
            line.push(',');
            let operator = listed.operator.as_deref().unwrap_or("");
            let official = if listed.official { "1" } else { "0" };
            tsagent_bundle::csv::write_record(&mut line, &[operator, &listed.run_status, official]);
            out.write_all(line.as_bytes()).map_err(write_err)
        })?;
    } else {
        writeln!(
            out,
            "{:>8}  {:<27}  {:>5} {:<10} {:<10} {:<10} {:>20} {:<4} {:<8} {:<10} official",
            "seq",
            "utc",
            "run",
            "operator",
            "instrument",
            "quantity",
            "value",
            "unit",
            "status",
            "run_status"
        )
        .map_err(write_err)?;
        store.visit_listing(&filter, |listed| {
            let row = &listed.reading;
            let r = &row.record;
            // Shortest exact form: fixed decimals would show a 1 nA current as 0.
            let value = r.value.map_or_else(String::new, |v| v.to_string());
            writeln!(
                out,
                "{:>8}  {:<27}  {:>5} {:<10} {:<10} {:<10} {:>20} {:<4} {:<8} {:<10} {}",
                r.seq,
                clock::rfc3339(r.utc_us),
                r.run_id,
                listed.operator.as_deref().unwrap_or("-"),
                row.instrument,
                r.quantity,
                value,
                r.unit,
                r.status.as_str(),
                listed.run_status,
                if listed.official { "yes" } else { "no" }
            )
            .map_err(write_err)
        })?;
    }
    out.flush().map_err(write_err)
}
