//! Why the supervisor could not hand out a session.

use tsagent_sim::SimError;

use crate::drivers::exec::DriverError;
use crate::transport::TransportError;

/// Why an instrument could not be reached, set up, or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The config names no such instrument (the config validator prevents this).
    #[error("no instrument named `{name}`")]
    UnknownInstrument {
        /// The name.
        name: String,
    },
    /// The built-in simulator could not start.
    #[error("cannot start the simulator for `{instrument}`")]
    Simulator {
        /// Instrument, or `GPIB<n>` for a simulated adapter.
        instrument: String,
        /// Why.
        #[source]
        source: SimError,
    },
    /// The instrument, or its adapter, could not be reached.
    #[error("cannot connect to `{instrument}`")]
    Connect {
        /// Instrument, or `GPIB<n>` for an adapter.
        instrument: String,
        /// Resource string.
        resource: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// The instrument's GPIB adapter is lost and waiting out its backoff; it was not tried again.
    #[error("the GPIB{board} adapter is offline ({reason})")]
    AdapterOffline {
        /// The board.
        board: u8,
        /// Why its latest attempt failed, or how it was lost.
        reason: String,
    },
    /// Connected, but the set-up commands or the identity query failed, another model answered,
    /// or a resynchronisation found no identity.
    #[error("cannot set up `{instrument}`")]
    Setup {
        /// Instrument.
        instrument: String,
        /// Why (boxed: driver errors are large and travel up several calls).
        #[source]
        source: Box<DriverError>,
    },
    /// Another unit answered than the one first seen or named in the config; it is not measured.
    #[error("`{instrument}` refused: {reason}")]
    IdentityChanged {
        /// Instrument.
        instrument: String,
        /// What was expected and what answered.
        reason: String,
    },
}

impl SupervisorError {
    /// A set-up failure of `instrument`.
    pub(super) fn setup(instrument: &str, source: DriverError) -> Self {
        Self::Setup {
            instrument: instrument.to_owned(),
            source: Box::new(source),
        }
    }
}
