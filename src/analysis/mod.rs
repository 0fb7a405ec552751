//! From readings to the lab's result: the data an analysis works on and the analyses themselves.
//!
//! `table.rs` is the input: named columns of numbers, from a CSV file or from the log's
//! readings, each value traceable to its file, line and column (or its reading) so every error
//! can say where it is. `commands.rs` is `tsagent analyze`: the `stats` functions applied to a
//! table, with results shaped for people and for `--json`.

pub mod commands;
pub mod table;
