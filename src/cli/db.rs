//! `db check` and `readings`: reading the log. Nothing is written, except that opening brings an
//! older schema up to date.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Error;
use crate::clock;
use crate::store::Store;

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
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Only readings taken at or after this time (RFC 3339, e.g. 2026-11-26T08:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub since: Option<i64>,
    /// CSV with every column, as in a bundle's readings.csv.
    #[arg(long)]
    pub csv: bool,
}

fn parse_time(text: &str) -> Result<i64, String> {
    clock::parse_rfc3339(text).map_err(|e| format!("{e} (expected e.g. 2026-11-26T08:00:00Z)"))
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
    let store = Store::open_existing(&args.db)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |source| Error::Io {
        action: "write to",
        path: PathBuf::from("stdout"),
        source,
    };
    let result = list(&store, &args, &mut out, write_err);
    match result {
        // The reader went away (`| head`): stop quietly, as other Unix tools do.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        // Any other output failure (`>/dev/full`) is said, but it is not the command's failure:
        // the exit code reports the log, not the terminal.
        Err(Error::Io {
            action: "write to",
            source,
            ..
        }) => {
            tell!("readings: output stopped: cannot write to stdout: {source}");
            Ok(())
        }
        other => other,
    }
}

fn list(
    store: &Store,
    args: &ReadingsArgs,
    out: &mut impl std::io::Write,
    write_err: impl Fn(std::io::Error) -> Error + Copy,
) -> Result<(), Error> {
    if args.csv {
        let mut line = String::new();
        tsagent_bundle::csv::write_record(&mut line, &tsagent_bundle::records::READINGS_HEADER);
        out.write_all(line.as_bytes()).map_err(write_err)?;
        store.visit_readings(args.since, |row| {
            line.clear();
            tsagent_bundle::records::write_reading(&mut line, &row);
            out.write_all(line.as_bytes()).map_err(write_err)
        })?;
    } else {
        writeln!(
            out,
            "{:>8}  {:<27}  {:<10} {:<10} {:>20} {:<4} status",
            "seq", "utc", "instrument", "quantity", "value", "unit"
        )
        .map_err(write_err)?;
        store.visit_readings(args.since, |row| {
            let r = &row.record;
            // Shortest exact form: fixed decimals would show a 1 nA current as 0.
            let value = r.value.map_or_else(String::new, |v| v.to_string());
            writeln!(
                out,
                "{:>8}  {:<27}  {:<10} {:<10} {:>20} {:<4} {}",
                r.seq,
                clock::rfc3339(r.utc_us),
                row.instrument,
                r.quantity,
                value,
                r.unit,
                r.status.as_str()
            )
            .map_err(write_err)
        })?;
    }
    out.flush().map_err(write_err)
}
