//! From readings to what a person reads and the lab reports.
//!
//! - `table.rs` is the input of `tsagent analyze`: named columns of numbers, from a CSV file or
//!   from the log's readings, each value traceable to its file, line and column (or its reading)
//!   so every error can say where it is; `commands.rs` is `tsagent analyze` itself: the `stats`
//!   functions applied to a table, with results shaped for people and for `--json`.
//! - `series.rs` splits a run's readings into series that may be pooled (one instrument, quantity
//!   and unit), for `measure`'s and the daemon's statistics.
//! - `correct.rs`, `budget.rs` and `result.rs` are the lab's result (issue 11 §2): environmental
//!   corrections, the drift fit, the value at the mean date and its uncertainty budget. Pure
//!   computation on plain data handed in by the caller (readings and environment series from the
//!   store, corrections and components from the config), so it is tested without a database and
//!   the report renders what it returns.

mod budget;
pub mod commands;
mod correct;
mod error;
mod result;
pub mod series;
pub mod table;

pub use budget::{Budget, BudgetRow, COVERAGE_RULE_EN, COVERAGE_RULE_ZH, ComponentKind, combine};
pub use correct::{
    Corrected, CorrectedReading, EnvSeries, EnvUsed, TimedValue, apply_corrections, nearest,
};
pub use error::AnalysisError;
pub use result::{BandPoint, Drift, LabInput, LabResult, Residual, ValueBasis, lab_result};
