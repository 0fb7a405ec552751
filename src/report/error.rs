//! What can go wrong while writing a report.

use std::path::PathBuf;

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or the output folder could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The input holds something no document can show: a non-finite number, a malformed date or
    /// country code, an empty identifier.
    #[error("report input `{field}`: {reason}")]
    Input {
        /// Where in the input, e.g. `readings[3].raw`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--lang` that is not `zh`, `en`, `zh,en` or `en,zh`.
    #[error("unknown language list `{0}`: expected zh, en, zh,en or en,zh")]
    Language(String),
    /// A unit symbol with no D-SI spelling.
    #[error(
        "unit `{0}` has no D-SI spelling (known: V, A, Ω, K, °C, Pa, Hz, s, min, h, d, %, ppm, m, kg, g, W, S, F, H, with SI prefixes, and `/` between them)"
    )]
    Unit(String),
    /// `summary.json` could not be encoded.
    #[error("cannot encode summary.json")]
    Json(#[source] serde_json::Error),
}
