//! `tsagent analyze`: the statistics as commands, on a CSV file or on the log's readings.
//! Text for people; with `--json`, exactly the fields the issue names, so other tools can rely on
//! them.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Error;
use super::db::parse_time;
use crate::analysis::commands::{self, AllanResult, FitResult, SummaryResult};
use crate::analysis::table::{Table, TableError};
use crate::store::{ReadingFilter, Store};

/// `tsagent analyze …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum AnalyzeCommand {
    /// n, mean, experimental standard deviation s, standard uncertainty of the mean and degrees
    /// of freedom of one column.
    Summary(SummaryArgs),
    /// Least squares with an intercept and one or more regressors, ordinary or weighted by
    /// standard uncertainties, with predictions.
    Fit(FitArgs),
    /// ADEV, overlapping ADEV and MDEV of an equally spaced column (fractional frequency).
    Allan(AllanArgs),
}

/// Where the table comes from: a CSV file, or the log's readings selected as for `readings`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct Input {
    /// A CSV file: a header row, then comma-separated rows.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["config", "db"],
        conflicts_with_all = ["config", "db", "sequence", "quantity", "instrument", "since", "until", "run", "official"]
    )]
    pub csv: Option<PathBuf>,
    /// The lab's config file: its `[storage] db`. Columns: seq, run, utc (s since the Unix
    /// epoch), days (since the first selected reading), value.
    #[arg(long, value_name = "FILE", conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// The SQLite file, as for --config.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Only readings of runs of this sequence.
    #[arg(long, value_name = "NAME")]
    pub sequence: Option<String>,
    /// Only readings of this quantity (e.g. voltage).
    #[arg(long, value_name = "NAME")]
    pub quantity: Option<String>,
    /// Only readings from this instrument (its name in the config).
    #[arg(long, value_name = "NAME")]
    pub instrument: Option<String>,
    /// Only readings taken at or after this instant: RFC 3339 with any offset, or a date
    /// (00:00 UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only readings taken at or before this instant, written as for --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only readings of this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<u64>,
    /// Only readings of official runs.
    #[arg(long)]
    pub official: bool,
    /// JSON with exactly the documented fields, instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `tsagent analyze summary`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct SummaryArgs {
    /// The input.
    #[command(flatten)]
    pub input: Input,
    /// The column [default with --config or --db: value].
    #[arg(long, value_name = "C", required_unless_present_any = ["config", "db"])]
    pub column: Option<String>,
}

/// `tsagent analyze fit`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct FitArgs {
    /// The input.
    #[command(flatten)]
    pub input: Input,
    /// The response column [default with --config or --db: value].
    #[arg(long, value_name = "C", required_unless_present_any = ["config", "db"])]
    pub y: Option<String>,
    /// A regressor column; give --x once per regressor (drift, temperature, pressure …).
    #[arg(long = "x", value_name = "C", required = true)]
    pub x: Vec<String>,
    /// Weighted fit: the column of the standard uncertainties of y (weights 1/u²). The
    /// covariance is then taken from them, not scaled by the scatter; the Birge ratio is shown.
    #[arg(long, value_name = "C")]
    pub weights: Option<String>,
    /// Fitted value and its standard uncertainty at these points: one value per regressor for
    /// each point, comma-separated (with one regressor, `--predict 45,135` is two points).
    /// May be repeated.
    #[arg(
        long,
        value_name = "V[,V…]",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub predict: Vec<f64>,
}

/// `tsagent analyze allan`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct AllanArgs {
    /// The input.
    #[command(flatten)]
    pub input: Input,
    /// The column of equally spaced values (fractional frequency, or readings) [default with
    /// --config or --db: value].
    #[arg(long, value_name = "C", required_unless_present_any = ["config", "db"])]
    pub column: Option<String>,
    /// The sampling interval τ0, in seconds.
    #[arg(long, value_name = "S")]
    pub tau0: f64,
    /// Averaging factors, comma-separated [default: octaves 1, 2, 4, … while defined].
    #[arg(long, value_name = "M[,M…]", value_delimiter = ',')]
    pub m: Option<Vec<usize>>,
}

/// Runs an `analyze` subcommand.
pub fn run(cmd: AnalyzeCommand) -> Result<(), Error> {
    match cmd {
        AnalyzeCommand::Summary(a) => {
            let column = a.column.as_deref().unwrap_or(LOG_VALUE);
            let table = load(&a.input, &[column])?;
            let result = commands::summary(&table, column)?;
            output(&a.input, &result, || summary_text(&table, column, &result))
        }
        AnalyzeCommand::Fit(a) => {
            let k = a.x.len();
            if a.predict.len() % k != 0 {
                return Err(Error::Usage(format!(
                    "--predict: {} values do not make points of {k} (one value per --x)",
                    a.predict.len()
                )));
            }
            let points: Vec<Vec<f64>> = a.predict.chunks(k).map(<[f64]>::to_vec).collect();
            let y = a.y.as_deref().unwrap_or(LOG_VALUE);
            let mut wanted: Vec<&str> = vec![y];
            wanted.extend(a.x.iter().map(String::as_str));
            wanted.extend(a.weights.as_deref());
            wanted.dedup();
            let table = load(&a.input, &wanted)?;
            let result = commands::fit(&table, y, &a.x, a.weights.as_deref(), &points)?;
            output(&a.input, &result, || fit_text(&table, &a, y, &result))
        }
        AnalyzeCommand::Allan(a) => {
            let column = a.column.as_deref().unwrap_or(LOG_VALUE);
            let table = load(&a.input, &[column])?;
            let result = commands::allan(&table, column, a.tau0, a.m.as_deref())?;
            output(&a.input, &result, || allan_text(&table, column, &result))
        }
    }
}

/// The column of the reading itself when the table is the log's, so that a technician asking
/// for the summary of the readings need not name it.
const LOG_VALUE: &str = "value";

/// The table the input names, with the columns `wanted` (a CSV file parses only those).
fn load(input: &Input, wanted: &[&str]) -> Result<Table, Error> {
    if let Some(csv) = &input.csv {
        let mut unique: Vec<&str> = Vec::new();
        for w in wanted {
            if !unique.contains(w) {
                unique.push(w);
            }
        }
        return Ok(Table::read_csv(csv, &unique)?);
    }
    let db = match (&input.db, &input.config) {
        (Some(db), _) => db.clone(),
        (None, Some(config)) => crate::config::Config::load(config)?.storage.db,
        (None, None) => return Err(Error::Usage("give --csv, --db or --config".into())),
    };
    let store = Store::open_existing(&db)?;
    let filter = ReadingFilter {
        since_utc_us: input.since,
        until_utc_us: input.until,
        run_id: input.run,
        instrument: input.instrument.as_deref(),
        quantity: input.quantity.as_deref(),
        sequence: input.sequence.as_deref(),
        official: input.official,
    };
    let readings = store.select_readings(&filter)?;
    let origin = describe(&db, input);
    let table = Table::from_readings(&origin, &readings)?;
    if table.left_out() > 0 {
        tell!(
            "note: {} selected reading(s) left out: not valid (overload or not a number)",
            table.left_out()
        );
    }
    Ok(table)
}

/// The database and the selection, as errors name them.
fn describe(db: &std::path::Path, input: &Input) -> String {
    let mut parts = Vec::new();
    let mut add = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            parts.push(format!("{key} {v}"));
        }
    };
    add("sequence", input.sequence.clone());
    add("instrument", input.instrument.clone());
    add("quantity", input.quantity.clone());
    add("run", input.run.map(|r| r.to_string()));
    add("since", input.since.map(crate::clock::rfc3339));
    add("until", input.until.map(crate::clock::rfc3339));
    if input.official {
        parts.push("official runs".to_owned());
    }
    if parts.is_empty() {
        db.display().to_string()
    } else {
        format!("{} [{}]", db.display(), parts.join(", "))
    }
}

fn output<T: Serialize>(
    input: &Input,
    result: &T,
    text: impl FnOnce() -> String,
) -> Result<(), Error> {
    if input.json {
        let json = serde_json::to_string_pretty(result)
            .map_err(|e| Error::Usage(format!("cannot write JSON: {e}")))?;
        say!("{json}");
    } else {
        say!("{}", text().trim_end());
    }
    Ok(())
}

/// A number for people: 7 significant digits, and the unit when known.
fn num(v: f64, unit: Option<&str>) -> String {
    let text = if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e7) {
        format!("{v:.6e}")
    } else {
        let digits = 6 - v.abs().log10().floor().max(-3.0) as i32;
        format!("{v:.*}", digits.max(0) as usize)
    };
    match unit {
        Some(u) if !u.is_empty() => format!("{text} {u}"),
        _ => text,
    }
}

/// The mean to the digits its uncertainty supports (u(mean) to two significant digits): a 10 V
/// Zener's mean read to nV shows its nV, which seven significant digits would cut off.
fn mean_text(mean: f64, u_mean: f64, unit: Option<&str>) -> String {
    if !(u_mean.is_finite() && u_mean > 0.0) || mean.abs() >= 1e15 {
        return num(mean, unit);
    }
    let text = crate::report::with_uncertainty(mean, u_mean).0;
    match unit {
        Some(u) if !u.is_empty() => format!("{text} {u}"),
        _ => text,
    }
}

fn summary_text(table: &Table, column: &str, r: &SummaryResult) -> String {
    let unit = table.unit(column);
    format!(
        "{} `{column}`\n  n        {}\n  mean     {}\n  s        {}\n  u(mean)  {}  (s/√n: valid for uncorrelated readings; see `analyze allan`)\n  dof      {}\n",
        table.origin(),
        r.n,
        mean_text(r.mean, r.u_mean, unit),
        num(r.s, unit),
        num(r.u_mean, unit),
        r.dof
    )
}

fn fit_text(table: &Table, a: &FitArgs, y: &str, r: &FitResult) -> String {
    let y_unit = table.unit(y).unwrap_or("");
    let mut out = format!(
        "{} `{}` on {} ({}, n = {}, dof = {})\n",
        table.origin(),
        y,
        a.x.iter()
            .map(|x| format!("`{x}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if a.weights.is_some() {
            "weighted"
        } else {
            "ordinary"
        },
        r.n,
        r.dof
    );
    for c in &r.coefficients {
        let unit = match table.unit(&c.name) {
            Some(xu) if c.name != "intercept" => format!("{y_unit}/{xu}"),
            _ if c.name == "intercept" => y_unit.to_owned(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {:<12} {}  u = {}\n",
            c.name,
            num(c.value, Some(&unit)),
            num(c.u, Some(&unit))
        ));
    }
    match r.chi_squared {
        Some(chi2) => out.push_str(&format!(
            "  χ² = {}, Birge ratio = {} (uncertainties as stated, not scaled)\n",
            num(chi2, None),
            num(r.s_residual, None)
        )),
        None => out.push_str(&format!(
            "  s(residual) = {}\n",
            num(r.s_residual, Some(y_unit))
        )),
    }
    for p in &r.predictions {
        let at: Vec<String> = p.x.iter().map(|v| num(*v, None)).collect();
        out.push_str(&format!(
            "  at {} = {}: {}  u = {} (of the fitted line)\n",
            a.x.join(", "),
            at.join(", "),
            num(p.y, Some(y_unit)),
            num(p.u, Some(y_unit))
        ));
    }
    out
}

fn allan_text(table: &Table, column: &str, r: &AllanResult) -> String {
    let mut out = format!(
        "{} `{column}`\n  {:>8} {:>12} {:>14} {:>14} {:>14} {:>8}\n",
        table.origin(),
        "m",
        "tau/s",
        "ADEV",
        "OADEV",
        "MDEV",
        "n"
    );
    for p in &r.points {
        out.push_str(&format!(
            "  {:>8} {:>12} {:>14} {:>14} {:>14} {:>8}\n",
            p.m,
            num(p.tau, None),
            format!("{:.6e}", p.adev),
            format!("{:.6e}", p.oadev),
            p.mdev.map_or("-".to_owned(), |d| format!("{d:.6e}")),
            p.n
        ));
    }
    out
}

impl From<TableError> for Error {
    fn from(e: TableError) -> Self {
        Error::Analyze(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mean_shows_the_digits_its_uncertainty_supports() {
        // A 10 V Zener read to nV: seven significant digits would cut its µV and nV off.
        assert_eq!(
            mean_text(10.000_024_826_3, 6.0e-8, Some("V")),
            "10.000024826 V"
        );
        assert_eq!(mean_text(1.5, 0.0, None), num(1.5, None));
    }
}
