//! tsagent: the measurement agent a metrology lab runs beside its instruments during a comparison.
//!
//! The crate is a library with a thin binary. Each module owns one concern; `ARCHITECTURE.md` has the
//! code map and the invariants that hold between them.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod drivers;
pub mod error;
pub mod sealing;
pub mod sequence;
pub mod session;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod transport;
