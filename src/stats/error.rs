//! The one error type of the statistics module.

/// Why a statistic could not be computed.
///
/// Every function in [`crate::stats`] validates its whole input before computing, so a reading
/// series that is too short, contains a NaN or has no spread in time is reported here rather than
/// turning into a NaN result further down the line.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// The statistic needs more points than were given (e.g. s with n = 1, a line fit with n = 2).
    #[error("too few points: need at least {needed}, got {got}")]
    TooFewPoints {
        /// Smallest number of points for which the statistic is defined.
        needed: usize,
        /// Number of points given.
        got: usize,
    },
    /// Two series that must pair up element by element have different lengths.
    #[error("length mismatch: {first} has {first_len} values but {second} has {second_len}")]
    LengthMismatch {
        /// Name of the first series (`"t"`, `"y"`, …).
        first: &'static str,
        /// Its length.
        first_len: usize,
        /// Name of the second series.
        second: &'static str,
        /// Its length.
        second_len: usize,
    },
    /// An input value is NaN or infinite.
    #[error("non-finite value in {input} at index {index}")]
    NonFinite {
        /// Name of the series (`"values"`, `"t"`, `"y"`, `"u"`).
        input: &'static str,
        /// Position of the first offending value.
        index: usize,
    },
    /// All times are equal (or, in a weighted fit, only one time carries weight), so no slope exists.
    #[error("zero spread in t: a slope needs at least two distinct times")]
    ZeroSpread,
    /// A stated standard uncertainty is zero or negative, so it cannot be turned into a weight.
    #[error("non-positive uncertainty {value} at index {index}")]
    NonPositiveUncertainty {
        /// Position of the first offending uncertainty.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The averaging factor m of an Allan deviation is zero.
    #[error("averaging factor m must be at least 1")]
    ZeroAveragingFactor,
    /// The sampling interval τ0 of an Allan deviation is zero, negative or not finite.
    #[error("sampling interval tau0 must be finite and positive, got {tau0}")]
    InvalidSpacing {
        /// The offending interval.
        tau0: f64,
    },
    /// The inputs are finite but so far apart that a result exceeds the range of `f64`
    /// (e.g. values near ±1e308).
    #[error("{quantity} overflows the range of f64")]
    Overflow {
        /// The quantity that could not be represented.
        quantity: &'static str,
    },
    /// A regressor is constant or a linear combination of the intercept and the regressors before
    /// it (e.g. the same column given twice), so its coefficient is not determined.
    #[error("singular design: regressor {regressor} is constant or a combination of the others")]
    Singular {
        /// Position of the offending regressor among those given (0 = the first).
        regressor: usize,
    },
}
