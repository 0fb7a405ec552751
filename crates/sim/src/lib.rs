//! Simulated instruments: the models a lab uses in a comparison, each speaking its own dialect,
//! all measuring one simulated travelling standard, a 10 V Zener reference.
//!
//! Tests and the demo drive tsagent's real serial and TCP code against them, so they speak the
//! real wire protocols.
//!
//! * [`SimParams`] describes the standard (nominal, offset, drift, noise, temperature coefficient
//!   in a lab whose temperature cycles) and timing.
//! * [`PersonalityId`] names a model (`keysight-3458a`, `fluke-5720a`, … as the driver profiles
//!   do); [`PersonalityId::build`] makes it a [`Personality`]: a program message in, a [`Reply`]
//!   (bytes, GPIB EOI marks, delay) out. Resistance, temperature and environment models are the
//!   standard scaled ppm for ppm.
//! * [`SimSpec`] is what a server runs: one personality or a Prologix bus ([`BusSpec`],
//!   `22=keysight-3458a,5=fluke-5720a`), `--baud` pacing ([`wire_time`], [`Frame`]) and
//!   [`Fault`]s. Every part parses from command-line text (`FromStr`).
//! * [`PtyServer`] and [`TcpServer`] serve a spec (`start_spec`; `start` serves the generic DMM)
//!   and are controlled alike, as a [`SimServer`]: readings sent, the line's hang-ups and returns
//!   ([`LineStatus`]), and a [`FaultHandle`] that arms more faults at a chosen moment.
//!
//! Simulated time is wall time since the simulator started × [`SimParams::time_scale`], so a demo
//! can show days of drift in seconds; instrument timing (integration, settling, streaming
//! intervals) runs on unscaled time from an injectable [`Clock`].
//!
//! # Layout
//!
//! From the bottom up; a module uses only those listed before it (and this file's items):
//! * `clock.rs`, `rng.rs`, `format.rs`: time, noise, and the number format of DMM readings.
//! * `id.rs`: the personality ids and the error of spec text; `bus.rs`: Prologix bus specs.
//! * `reply.rs`: what an instrument answers; `wire.rs`: serial frames, `--baud` pacing, and
//!   output on its way to a stream.
//! * `fault.rs`: the faults, when they fire and what they do; `spec.rs`: what a server runs.
//! * `personality/`: the models; its `mod.rs` gives their layout.
//! * `framing.rs`: a byte stream split into messages at an instrument's terminators.
//! * `exchange.rs`: one message through the faults and a model, and the connection the outcome
//!   is written to.
//! * `prologix.rs`: the GPIB adapter and its bus; `station.rs`: what is on the line (one
//!   instrument or a bus), and the one loop that serves a connection to it.
//! * `server.rs`: what the two servers share, their control surface included; `pty.rs` and
//!   `tcp.rs`: the two kinds of line.

mod bus;
mod clock;
mod exchange;
mod fault;
mod format;
mod framing;
mod id;
mod personality;
mod prologix;
// The one place that needs `unsafe`: ioctls on the pseudo-terminal (TIOCNXCL).
#[allow(unsafe_code)]
mod pty;
mod reply;
mod rng;
mod server;
mod spec;
mod station;
mod tcp;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use bus::{BusSpec, MAX_GPIB_ADDRESS};
pub use clock::{Clock, ManualClock, MonotonicClock, SharedClock};
pub use fault::{BadBlock, Fault, FaultHandle, FaultKind, MAX_FLOOD, Trigger};
pub use format::{NOT_A_NUMBER, OVERLOAD, format_reading};
pub use framing::MAX_LINE;
pub use id::{PersonalityId, SpecError};
pub use personality::{Personality, Setup, VaisalaFormat, VaisalaFormatError};
pub use prologix::{PROLOGIX_VERSION, prologix_escape};
pub use pty::{PtyLine, PtyServer};
pub use reply::{Reply, Transfer};
pub use server::{LineStatus, SimServer};
pub use spec::{SimSpec, SimTarget};
pub use tcp::{TcpLine, TcpServer};
pub use wire::{Frame, Parity, wire_time};

/// Seconds in a day, the unit of [`SimParams::drift_per_day`].
const SECONDS_PER_DAY: f64 = 86_400.0;

/// What the simulated meter answers to `*IDN?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIdentity {
    /// First `*IDN?` field, e.g. `TSAGENT`.
    pub manufacturer: String,
    /// Second field, e.g. `SIM-DMM`.
    pub model: String,
    /// Third field, the serial number.
    pub serial: String,
    /// Fourth field, the firmware revision.
    pub firmware: String,
}

impl Default for SimIdentity {
    /// Every field says it is the simulator, so a bundle made from simulated data cannot be
    /// mistaken for a real instrument's (the command set is modelled on a 34470A).
    fn default() -> Self {
        Self {
            manufacturer: "TSAGENT".to_owned(),
            model: "SIM-DMM".to_owned(),
            serial: "SIM0000001".to_owned(),
            firmware: concat!("tsagent-sim-", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Everything that defines a simulated set-up: the standard, the lab, time and the meter.
///
/// The standard's value at simulated time `t` (days since the start) is
/// `nominal + offset + drift_per_day·t + tempco·(T(t) − lab_temp_mean) + noise·N(0,1)`, where
/// `T(t) = lab_temp_mean + lab_temp_amplitude·sin(2π t / lab_temp_period)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    /// Nominal value of the standard, V.
    pub nominal: f64,
    /// Deviation of the standard from nominal at the start, V.
    pub offset: f64,
    /// Linear drift, V per simulated day.
    pub drift_per_day: f64,
    /// White noise, V (1σ) per reading.
    pub noise: f64,
    /// Temperature coefficient of the standard, V/K.
    pub tempco: f64,
    /// Mean lab temperature, °C.
    pub lab_temp_mean: f64,
    /// Amplitude of the lab temperature cycle, K.
    pub lab_temp_amplitude: f64,
    /// Period of the lab temperature cycle, in simulated time.
    pub lab_temp_period: Duration,
    /// Simulated seconds per wall-clock second, at least 1 (86 400 shows a day per second).
    pub time_scale: f64,
    /// Seed of the noise generator; the same seed gives the same noise sequence.
    pub seed: u64,
    /// The `*IDN?` fields.
    pub identity: SimIdentity,
    /// When true, `READ?`, `MEAS?` and `INIT` take NPLC/50 s of wall time, as at 50 Hz mains;
    /// when false they answer at once.
    pub realistic_timing: bool,
}

impl Default for SimParams {
    /// A Fluke 732B-like 10 V Zener in a lab cycling ±0.3 K once a day, in real time.
    fn default() -> Self {
        Self {
            nominal: 10.0,
            offset: 2.3e-6,
            drift_per_day: 5e-9,
            noise: 5e-8,
            tempco: 3e-7,
            lab_temp_mean: 23.0,
            lab_temp_amplitude: 0.3,
            lab_temp_period: Duration::from_secs(86_400),
            time_scale: 1.0,
            seed: 0x7473_6167_656e_7431,
            identity: SimIdentity::default(),
            realistic_timing: false,
        }
    }
}

impl SimParams {
    /// Checks the values a model or a `*IDN?` reply cannot work with.
    pub fn validate(&self) -> Result<(), SimError> {
        let finite = [
            ("nominal", self.nominal),
            ("offset", self.offset),
            ("drift_per_day", self.drift_per_day),
            ("noise", self.noise),
            ("tempco", self.tempco),
            ("lab_temp_mean", self.lab_temp_mean),
            ("lab_temp_amplitude", self.lab_temp_amplitude),
        ];
        for (field, value) in finite {
            if !value.is_finite() {
                return Err(SimError::InvalidParam {
                    field,
                    reason: "must be a finite number",
                });
            }
        }
        if self.noise < 0.0 {
            return Err(SimError::InvalidParam {
                field: "noise",
                reason: "must not be negative",
            });
        }
        if !(self.time_scale.is_finite() && self.time_scale >= 1.0) {
            return Err(SimError::InvalidParam {
                field: "time_scale",
                reason: "must be a finite number of at least 1",
            });
        }
        if self.lab_temp_period.is_zero() {
            return Err(SimError::InvalidParam {
                field: "lab_temp_period",
                reason: "must be longer than zero",
            });
        }
        let identity = [
            ("identity.manufacturer", &self.identity.manufacturer),
            ("identity.model", &self.identity.model),
            ("identity.serial", &self.identity.serial),
            ("identity.firmware", &self.identity.firmware),
        ];
        for (field, value) in identity {
            if !value.bytes().all(is_idn_byte) {
                return Err(SimError::InvalidParam {
                    field,
                    reason: "must be printable ASCII without commas or semicolons",
                });
            }
        }
        Ok(())
    }

    /// Lab temperature, °C, at `days` of simulated time.
    pub fn lab_temperature(&self, days: f64) -> f64 {
        let period_days = self.lab_temp_period.as_secs_f64() / SECONDS_PER_DAY;
        self.lab_temp_mean
            + self.lab_temp_amplitude * (std::f64::consts::TAU * days / period_days).sin()
    }

    /// The standard's true value, V, at `days` of simulated time: the model without noise.
    pub fn artefact_value(&self, days: f64) -> f64 {
        self.nominal
            + self.offset
            + self.drift_per_day * days
            + self.tempco * (self.lab_temperature(days) - self.lab_temp_mean)
    }
}

/// Bytes allowed in an `*IDN?` field: printable ASCII except the field and unit separators.
fn is_idn_byte(b: u8) -> bool {
    (b.is_ascii_graphic() || b == b' ') && b != b',' && b != b';'
}

/// Why a simulator could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A [`SimParams`] field is out of its domain.
    #[error("invalid simulator parameter `{field}`: {reason}")]
    InvalidParam {
        /// The field, e.g. `time_scale`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server was started outside a tokio runtime.
    #[error("the simulator must be started inside a tokio runtime")]
    NoRuntime,
    /// `openpty` failed.
    #[error("could not open a pseudo-terminal")]
    OpenPty(#[source] nix::Error),
    /// The pseudo-terminal could not be configured (raw mode, non-blocking, device name).
    #[error("could not configure the pseudo-terminal")]
    ConfigurePty(#[source] nix::Error),
    /// The pseudo-terminal could not be registered with the runtime's reactor.
    #[error("could not register the pseudo-terminal with the runtime")]
    RegisterPty(#[source] std::io::Error),
    /// `--link` names something that is not a symlink; it is left alone.
    #[error("`{path}` exists and is not a symlink; refusing to replace it", path = .path.display())]
    LinkOccupied {
        /// The requested link path.
        path: PathBuf,
    },
    /// The symlink to the device could not be created.
    #[error("could not create the symlink `{path}`", path = .path.display())]
    Link {
        /// The requested link path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The TCP listener could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address as given.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> SimParams {
        SimParams {
            noise: 0.0,
            ..SimParams::default()
        }
    }

    #[test]
    fn default_params_are_valid() {
        SimParams::default().validate().unwrap();
    }

    #[test]
    fn validate_names_the_bad_field() {
        let cases: Vec<(SimParams, &str)> = vec![
            (
                SimParams {
                    time_scale: 0.5,
                    ..quiet()
                },
                "time_scale",
            ),
            (
                SimParams {
                    time_scale: f64::NAN,
                    ..quiet()
                },
                "time_scale",
            ),
            (
                SimParams {
                    nominal: f64::INFINITY,
                    ..quiet()
                },
                "nominal",
            ),
            (
                SimParams {
                    noise: -1e-6,
                    ..quiet()
                },
                "noise",
            ),
            (
                SimParams {
                    lab_temp_period: Duration::ZERO,
                    ..quiet()
                },
                "lab_temp_period",
            ),
            (
                SimParams {
                    identity: SimIdentity {
                        serial: "A,B".into(),
                        ..SimIdentity::default()
                    },
                    ..quiet()
                },
                "identity.serial",
            ),
            (
                SimParams {
                    identity: SimIdentity {
                        model: "34470A\n".into(),
                        ..SimIdentity::default()
                    },
                    ..quiet()
                },
                "identity.model",
            ),
        ];
        for (params, expected) in cases {
            match params.validate() {
                Err(SimError::InvalidParam { field, .. }) => assert_eq!(field, expected),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_are_lowercase_without_period() {
        let e = SimError::InvalidParam {
            field: "time_scale",
            reason: "must be a finite number of at least 1",
        };
        assert_eq!(
            e.to_string(),
            "invalid simulator parameter `time_scale`: must be a finite number of at least 1"
        );
        let e = SimError::LinkOccupied {
            path: "/tmp/x".into(),
        };
        assert_eq!(
            e.to_string(),
            "`/tmp/x` exists and is not a symlink; refusing to replace it"
        );
    }

    #[test]
    fn temperature_cycle_over_one_period() {
        let p = SimParams {
            lab_temp_mean: 23.0,
            lab_temp_amplitude: 0.5,
            lab_temp_period: Duration::from_secs(86_400),
            ..quiet()
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(p.lab_temperature(0.0), 23.0));
        assert!(close(p.lab_temperature(0.25), 23.5));
        assert!(close(p.lab_temperature(0.5), 23.0));
        assert!(close(p.lab_temperature(0.75), 22.5));
        assert!(close(p.lab_temperature(1.25), 23.5));
    }

    #[test]
    fn artefact_model_adds_drift_and_temperature() {
        let p = SimParams {
            nominal: 10.0,
            offset: 1e-6,
            drift_per_day: 2e-7,
            tempco: 4e-7,
            lab_temp_amplitude: 0.5,
            lab_temp_period: Duration::from_secs(4 * 86_400),
            ..quiet()
        };
        // At day 1 the cycle is at its peak (+0.5 K): 10 V + 1 µV + 0.2 µV + 0.2 µV.
        assert!((p.artefact_value(1.0) - 10.000_001_4).abs() < 1e-12);
        assert!((p.artefact_value(0.0) - 10.000_001).abs() < 1e-12);
    }
}
