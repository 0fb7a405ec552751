//! Opening sessions to configured instruments, including simulators the agent hosts itself.

use std::collections::HashMap;

use crate::config::{Endpoint, Instrument};
use crate::session::Session;
use crate::sim::{PtyServer, SimParams};
use crate::transport::{Link, Resource};

use super::SequenceError;

/// Opens sessions. Keeps in-process simulators alive between runs, so a simulated standard keeps
/// drifting across the daemon's scheduled runs as a real one would.
pub struct Connector {
    simulator: SimParams,
    sims: HashMap<String, PtyServer>,
}

impl Connector {
    /// A connector whose simulated instruments follow `simulator`.
    pub fn new(simulator: SimParams) -> Self {
        Self {
            simulator,
            sims: HashMap::new(),
        }
    }

    /// Device paths of the simulators started so far, by instrument name.
    pub fn simulators(&self) -> impl Iterator<Item = (&str, &std::path::Path)> {
        self.sims
            .iter()
            .map(|(name, server)| (name.as_str(), server.path()))
    }

    /// Opens a session to `instrument`.
    pub async fn open(&mut self, instrument: &Instrument) -> Result<Session, SequenceError> {
        let resource = match &instrument.endpoint {
            Endpoint::Resource(r) => r.clone(),
            Endpoint::SimulatorPty => {
                let server = match self.sims.entry(instrument.name.clone()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let server =
                            PtyServer::start(self.simulator.clone(), None).map_err(|source| {
                                SequenceError::Simulator {
                                    instrument: instrument.name.clone(),
                                    source,
                                }
                            })?;
                        v.insert(server)
                    }
                };
                Resource::Serial {
                    path: server.path().to_owned(),
                }
            }
        };
        let link = Link::open(&resource, &instrument.serial, instrument.link.clone())
            .await
            .map_err(|source| SequenceError::Connect {
                instrument: instrument.name.clone(),
                resource: resource.to_string(),
                source,
            })?;
        Ok(Session::new(instrument.name.clone(), link))
    }
}
