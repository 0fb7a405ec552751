//! What a simulator server runs: one instrument or a Prologix bus of them, the standard, serial
//! pacing and faults. Every part parses from the text a command line gives (`FromStr`, in
//! `id.rs`, `bus.rs`, `wire.rs` and `fault.rs`), so the CLI is a thin layer.

use crate::bus::BusSpec;
use crate::fault::Fault;
use crate::id::PersonalityId;
use crate::wire::Frame;
use crate::{SimError, SimParams};

/// What is on the simulated line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimTarget {
    /// One instrument, talking directly on the stream.
    Instrument(PersonalityId),
    /// A Prologix GPIB adapter with instruments behind it.
    Prologix(BusSpec),
}

/// Everything a simulator server needs.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// One instrument or a bus.
    pub target: SimTarget,
    /// The standard every instrument measures, and timing.
    pub params: SimParams,
    /// Pace output to this serial baud rate (`--baud`); `None` sends as fast as the stream goes.
    pub baud: Option<u32>,
    /// The serial frame for pacing; `None` takes the instrument's default (8N1; 7E1 for the
    /// Vaisala).
    pub frame: Option<Frame>,
    /// Faults armed from the start (more can be armed through the server's handle).
    pub faults: Vec<Fault>,
}

impl SimSpec {
    /// One instrument of model `id`.
    pub fn instrument(id: PersonalityId, params: SimParams) -> Self {
        Self {
            target: SimTarget::Instrument(id),
            params,
            baud: None,
            frame: None,
            faults: Vec::new(),
        }
    }

    /// A Prologix adapter with `bus` behind it.
    pub fn prologix(bus: BusSpec, params: SimParams) -> Self {
        Self {
            target: SimTarget::Prologix(bus),
            params,
            baud: None,
            frame: None,
            faults: Vec::new(),
        }
    }

    /// The spec the original servers run: the generic SCPI DMM.
    pub fn generic(params: SimParams) -> Self {
        Self::instrument(PersonalityId::GenericScpiDmm, params)
    }

    /// Checks what the parameters and the baud rate must satisfy.
    pub fn validate(&self) -> Result<(), SimError> {
        self.params.validate()?;
        if self.baud == Some(0) {
            return Err(SimError::InvalidParam {
                field: "baud",
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation() {
        let mut spec = SimSpec::generic(SimParams::default());
        spec.validate().unwrap();
        spec.baud = Some(0);
        assert!(matches!(
            spec.validate(),
            Err(SimError::InvalidParam { field: "baud", .. })
        ));
    }
}
