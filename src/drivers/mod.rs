//! Driver profiles: what each instrument model is asked and how its replies read.

pub mod raw;
