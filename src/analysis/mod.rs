//! From readings to what a person reads and the lab reports: series that may be pooled, and the
//! lab's result — environmental corrections, the drift fit, the value at the mean date and its
//! uncertainty budget (issue 11 §2). Pure computation on plain data handed in by the caller
//! (readings and environment series from the store, corrections and components from the config),
//! so it is tested without a database and the report renders what it returns.

mod budget;
mod correct;
mod error;
mod result;
pub mod series;

pub use budget::{Budget, BudgetRow, COVERAGE_RULE_EN, COVERAGE_RULE_ZH, ComponentKind, combine};
pub use correct::{
    Corrected, CorrectedReading, EnvSeries, EnvUsed, TimedValue, apply_corrections, nearest,
};
pub use error::AnalysisError;
pub use result::{BandPoint, Drift, LabInput, LabResult, Residual, ValueBasis, lab_result};
