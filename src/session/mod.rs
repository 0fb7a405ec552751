//! TEMPORARY STUB (types only) until the session branch lands.
#![allow(missing_docs, dead_code)]
use std::time::{Duration, SystemTime};
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity { pub manufacturer: String, pub model: String, pub serial: String, pub firmware: String }
#[derive(Debug, Clone)]
pub struct Exchange { pub command: String, pub reply: Option<String>, pub started: SystemTime, pub duration: Duration, pub error: Option<String> }
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measurement { Value(f64), Overload { negative: bool }, NotANumber }
impl Measurement {
    pub fn value(&self) -> Option<f64> { match self { Self::Value(v) => Some(*v), _ => None } }
    pub fn status(&self) -> crate::chain::ReadingStatus { match self { Self::Value(_) => crate::chain::ReadingStatus::Valid, Self::Overload{..} => crate::chain::ReadingStatus::Overload, Self::NotANumber => crate::chain::ReadingStatus::NotANumber } }
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentError { pub code: i32, pub message: String }
