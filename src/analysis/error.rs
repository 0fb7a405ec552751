//! The one error type of the lab's result.

use crate::stats::{StatsError, UncertaintyError};

/// Why the lab's result could not be computed from the data given. Each says what is missing or
/// wrong in the data, so a technician knows what to measure again or fix in the config.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The window holds no readings of the measurand.
    #[error("no readings of the measurand in the window")]
    NoReadings,
    /// A reading of the measurand is NaN or infinite.
    #[error("reading {index} of the measurand is not a finite number")]
    NonFiniteReading {
        /// Its position in the readings given.
        index: usize,
    },
    /// An environment reading is NaN or infinite.
    #[error("{quantity} reading {index} of `{instrument}` is not a finite number")]
    NonFiniteEnvironment {
        /// The environment quantity.
        quantity: String,
        /// Its instrument.
        instrument: String,
        /// Its position in the series given.
        index: usize,
    },
    /// A correction's environment series is missing or empty.
    #[error("no {quantity} readings of `{instrument}`, which its correction needs")]
    NoEnvironment {
        /// The environment quantity.
        quantity: String,
        /// Its instrument.
        instrument: String,
    },
    /// No reading has an environment reading near enough for every correction.
    #[error(
        "all {flagged} readings are flagged: none has an environment reading within the corrections' `within`"
    )]
    AllFlagged {
        /// How many readings were flagged.
        flagged: usize,
    },
    /// Too few corrected readings for a Type A evaluation.
    #[error("{got} corrected reading(s): the result needs at least {needed}")]
    TooFewReadings {
        /// Least number of readings.
        needed: usize,
        /// Number of corrected (not flagged) readings.
        got: usize,
    },
    /// The statistics of the corrected readings could not be computed.
    #[error("statistics of the corrected readings failed")]
    Stats(#[source] StatsError),
    /// The budget could not be combined (every contribution zero, a bad degree of freedom).
    #[error("the uncertainty budget cannot be combined")]
    Budget(#[source] UncertaintyError),
    /// A component's standard uncertainty or contribution left the range of `f64`.
    #[error("budget component `{name}` is not a finite number")]
    NonFiniteComponent {
        /// The component's name.
        name: String,
    },
}
