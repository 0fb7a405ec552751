//! The built-in simulators a config asks for (`SIM::PTY::INSTR` instruments and `SIM::GPIB<n>::INTFC`
//! adapters), started on pseudo-terminals on first use and kept alive between runs, so a simulated
//! standard keeps drifting across the daemon's scheduled runs as a real one would.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;

use tsagent_sim::{BusSpec, Fault, PersonalityId, PtyServer, SimError, SimParams, SimSpec};

use super::SupervisorError;
use crate::config::{AdapterEndpoint, Config, Endpoint, Instrument};
use crate::transport::Resource;

/// The simulators of one config.
pub(super) struct Simulators {
    params: SimParams,
    faults: Vec<Fault>,
    /// What each simulated adapter hosts: the GPIB instruments of its board, by driver.
    buses: HashMap<u8, Vec<(u8, PersonalityId)>>,
    instruments: HashMap<String, PtyServer>,
    adapters: HashMap<u8, PtyServer>,
}

impl Simulators {
    /// None started yet.
    pub(super) fn new(config: &Config) -> Self {
        Self {
            params: config.simulator.clone(),
            faults: config.simulator_faults.clone(),
            buses: buses(config),
            instruments: HashMap::new(),
            adapters: HashMap::new(),
        }
    }

    /// What the simulators started so far serve (an instrument's name, or `GPIB<n> adapter`)
    /// and their device paths, sorted.
    pub(super) fn paths(&self) -> Vec<(String, PathBuf)> {
        let mut sims: Vec<(String, PathBuf)> =
            self.instruments
                .iter()
                .map(|(name, server)| (name.clone(), server.path().to_owned()))
                .chain(self.adapters.iter().map(|(board, server)| {
                    (format!("GPIB{board} adapter"), server.path().to_owned())
                }))
                .collect();
        sims.sort();
        sims
    }

    /// The device of `instrument`'s simulator now, starting it if needed (a disconnect fault
    /// may bring it back under another name). It speaks the instrument's own dialect when there
    /// is a personality for its profile; a lab's own profile gets the generic one.
    pub(super) fn instrument(
        &mut self,
        instrument: &Instrument,
    ) -> Result<PathBuf, SupervisorError> {
        let server = match self.instruments.entry(instrument.name.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let mut spec = SimSpec::instrument(personality(instrument), self.params.clone());
                spec.faults = self.faults.clone();
                let server = PtyServer::start_spec(spec, None).map_err(|source| {
                    SupervisorError::Simulator {
                        instrument: instrument.name.clone(),
                        source,
                    }
                })?;
                v.insert(server)
            }
        };
        Ok(server.current_path())
    }

    /// The device of the simulated Prologix adapter of `board` now, starting it if needed.
    pub(super) fn adapter(&mut self, board: u8) -> Result<PathBuf, SupervisorError> {
        let server = match self.adapters.entry(board) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let simulator_error = |source| SupervisorError::Simulator {
                    instrument: format!("GPIB{board}"),
                    source,
                };
                let devices = self.buses.get(&board).cloned().unwrap_or_default();
                let bus = BusSpec::new(devices).map_err(|_| {
                    simulator_error(SimError::InvalidParam {
                        field: "bus",
                        reason: "two instruments at one GPIB address",
                    })
                })?;
                let mut spec = SimSpec::prologix(bus, self.params.clone());
                spec.faults = self.faults.clone();
                v.insert(PtyServer::start_spec(spec, None).map_err(simulator_error)?)
            }
        };
        Ok(server.current_path())
    }
}

/// The personality a simulator of `instrument` speaks: its driver's, or the generic DMM for a
/// lab's own profile.
fn personality(instrument: &Instrument) -> PersonalityId {
    instrument
        .profile
        .id
        .parse()
        .unwrap_or(PersonalityId::GenericScpiDmm)
}

/// For each simulated adapter, the GPIB instruments configured on its board.
fn buses(config: &Config) -> HashMap<u8, Vec<(u8, PersonalityId)>> {
    let mut buses: HashMap<u8, Vec<(u8, PersonalityId)>> = config
        .adapters
        .iter()
        .filter(|a| a.endpoint == AdapterEndpoint::Simulator)
        .map(|a| (a.board, Vec::new()))
        .collect();
    for instrument in &config.instruments {
        if let Endpoint::Resource(Resource::Gpib { board, pad, .. }) = &instrument.endpoint
            && let Some(bus) = buses.get_mut(board)
        {
            bus.push((*pad, personality(instrument)));
        }
    }
    buses
}
