//! tsagent: the measurement agent a metrology lab runs beside its instruments during a comparison.
//!
//! The crate is a library with a thin binary. Each module owns one concern; `ARCHITECTURE.md` has the
//! code map and the invariants that hold between them.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bundle;
pub mod chain;
pub mod sim;
pub mod sequence;
pub mod stats;
pub mod config;
pub mod daemon;
pub mod hex;
pub mod store;
pub mod clock;
pub mod transport;
pub mod session;
