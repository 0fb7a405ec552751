//! From readings to statistics a person reads: series that may be pooled.
pub mod series;
