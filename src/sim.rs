//! TEMPORARY STUB (types only) until the sim branch lands.
#![allow(missing_docs, dead_code)]
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct SimIdentity { pub manufacturer: String, pub model: String, pub serial: String, pub firmware: String }
#[derive(Debug, Clone)]
pub struct SimParams { pub nominal: f64, pub offset: f64, pub drift_per_day: f64, pub noise: f64, pub tempco: f64, pub lab_temp_mean: f64, pub lab_temp_amplitude: f64, pub lab_temp_period: Duration, pub time_scale: f64, pub seed: u64, pub identity: SimIdentity, pub realistic_timing: bool }
impl Default for SimParams { fn default() -> Self { Self { nominal: 10.0, offset: 0.0, drift_per_day: 0.0, noise: 0.0, tempco: 0.0, lab_temp_mean: 23.0, lab_temp_amplitude: 0.0, lab_temp_period: Duration::from_secs(86400), time_scale: 1.0, seed: 1, identity: SimIdentity { manufacturer: "X".into(), model: "Y".into(), serial: "Z".into(), firmware: "1".into() }, realistic_timing: false } } }
#[derive(Debug, thiserror::Error)]
#[error("sim")]
pub struct SimError;
pub struct PtyServer;
impl PtyServer { pub fn start(_p: SimParams, _l: Option<std::path::PathBuf>) -> Result<PtyServer, SimError> { Err(SimError) } pub fn path(&self) -> &std::path::Path { std::path::Path::new("") } }
