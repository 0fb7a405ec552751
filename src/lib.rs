//! tsagent: the measurement agent a metrology lab runs beside its instruments during a comparison.
//!
//! The crate is a library with a thin binary. Each module owns one concern, in layers that
//! `tests/layers.rs` keeps; `ARCHITECTURE.md` has the code map and the invariants that hold between
//! them. Lints (missing docs, no `unsafe`, no `unwrap` outside tests) are the workspace's, in the
//! root `Cargo.toml`.

pub mod analysis;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod custody;
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
pub mod upload;
