//! The connection supervisor: opens sessions to configured instruments, keeps them between runs,
//! and takes an instrument offline when it vanishes and back online when it returns — with its
//! identity checked, so a different unit on the same port is refused rather than measured.
//!
//! Every state change becomes an event (`instrument_offline`, `instrument_online`,
//! `instrument_refused`) that the caller stores; the supervisor itself never touches the store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::SequenceError;
use super::backoff::Backoff;
use crate::clock::{Clock, Timestamp};
use crate::config::{Adapter, AdapterEndpoint, Config, Endpoint, ExchangeLog, Instrument};
use crate::drivers::exec;
use crate::session::{Identity, Session};
use crate::sim::{BusSpec, Fault, PersonalityId, PtyServer, SimError, SimParams, SimSpec};
use crate::store::NewEvent;
use crate::transport::{Link, PrologixAdapter, Resource, TransportError};

/// Why an instrument is offline.
#[derive(Debug, Clone)]
struct Outage {
    since: Timestamp,
    reason: String,
    /// Why the latest attempt to reconnect failed.
    last: String,
    backoff: Backoff,
    next_try: Instant,
}

#[derive(Default)]
struct Conn {
    session: Option<Session>,
    /// The identity first seen in this process: a reconnect must find the same unit.
    identity: Option<Identity>,
    outage: Option<Outage>,
    /// The last exchange went wrong in a way that may leave a late reply on the line; the
    /// session is resynchronised before it is used again.
    out_of_step: bool,
}

/// Opens and supervises instrument sessions. Keeps in-process simulators alive between runs, so a
/// simulated standard keeps drifting across the daemon's scheduled runs as a real one would.
pub struct Connector {
    simulator: SimParams,
    simulator_faults: Vec<Fault>,
    adapters_config: Vec<Adapter>,
    record_exchanges: bool,
    sims: HashMap<String, PtyServer>,
    /// What each simulated adapter hosts: the GPIB instruments of its board, by driver.
    sim_buses: HashMap<u8, Vec<(u8, PersonalityId)>>,
    sim_adapters: HashMap<u8, PtyServer>,
    adapters: HashMap<u8, PrologixAdapter>,
    conns: HashMap<String, Conn>,
    events: Vec<NewEvent>,
}

impl Connector {
    /// A connector for the instruments of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            simulator: config.simulator.clone(),
            simulator_faults: config.simulator_faults.clone(),
            adapters_config: config.adapters.clone(),
            record_exchanges: config.storage.log_exchanges != ExchangeLog::None,
            sims: HashMap::new(),
            sim_buses: sim_buses(config),
            sim_adapters: HashMap::new(),
            adapters: HashMap::new(),
            conns: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// What the simulators started so far serve (an instrument's name, or `GPIB<n> adapter`)
    /// and their device paths, sorted.
    pub fn simulators(&self) -> Vec<(String, PathBuf)> {
        let mut sims: Vec<(String, PathBuf)> =
            self.sims
                .iter()
                .map(|(name, server)| (name.clone(), server.path().to_owned()))
                .chain(self.sim_adapters.iter().map(|(board, server)| {
                    (format!("GPIB{board} adapter"), server.path().to_owned())
                }))
                .collect();
        sims.sort();
        sims
    }

    /// Whether the instrument is connected right now.
    pub fn is_online(&self, name: &str) -> bool {
        self.conns.get(name).is_some_and(|c| c.session.is_some())
    }

    /// The identity the instrument gave when first connected in this process.
    pub fn identity(&self, name: &str) -> Option<&Identity> {
        self.conns.get(name).and_then(|c| c.identity.as_ref())
    }

    /// The session to `name` if it is connected now (no attempt to connect).
    pub fn session_if_online(&mut self, name: &str) -> Option<&mut Session> {
        self.conns.get_mut(name).and_then(|c| c.session.as_mut())
    }

    /// State changes not yet stored, oldest first.
    pub fn take_events(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.events)
    }

    /// The session to `instrument`, connecting now if it is not connected (a run asks for it, so
    /// an offline instrument gets an attempt whatever its backoff says).
    pub async fn session(
        &mut self,
        instrument: &Instrument,
        clock: &dyn Clock,
    ) -> Result<&mut Session, SequenceError> {
        let connected = self
            .conns
            .get(&instrument.name)
            .is_some_and(|c| c.session.is_some());
        if !connected {
            self.try_connect(instrument, clock).await?;
        }
        self.resync_if_needed(instrument, clock).await?;
        self.conns
            .get_mut(&instrument.name)
            .and_then(|c| c.session.as_mut())
            .ok_or_else(|| SequenceError::UnknownInstrument {
                name: instrument.name.clone(),
            })
    }

    /// Records that `name` was lost during an exchange: it goes offline and is retried later.
    pub fn lost(&mut self, name: &str, reason: &str, clock: &dyn Clock) {
        let conn = self.conns.entry(name.to_owned()).or_default();
        conn.session = None;
        conn.out_of_step = false;
        if conn.outage.is_none() {
            let at = clock.now();
            let mut backoff = Backoff::reconnect();
            let next_try = Instant::now() + backoff.next_delay();
            conn.outage = Some(Outage {
                since: at,
                reason: reason.to_owned(),
                last: reason.to_owned(),
                backoff,
                next_try,
            });
            tracing::warn!(instrument = name, reason, "instrument offline");
            self.events.push(event(
                at,
                "instrument_offline",
                serde_json::json!({ "instrument": name, "reason": reason }),
            ));
        }
        // A lost GPIB instrument may mean a lost adapter; it is reopened on the next attempt.
    }

    /// Records that an exchange with `name` failed short of a lost connection (timeout,
    /// garbage, a misframed reply): the session is resynchronised before its next use.
    pub fn out_of_step(&mut self, name: &str) {
        if let Some(conn) = self.conns.get_mut(name) {
            conn.out_of_step = true;
        }
    }

    /// Resynchronises `instrument`'s session if an exchange left it out of step. If that
    /// fails too — repeated timeouts, an instrument that keeps talking — the instrument goes
    /// offline and is reopened by the supervisor, as after a disconnect.
    async fn resync_if_needed(
        &mut self,
        instrument: &Instrument,
        clock: &dyn Clock,
    ) -> Result<(), SequenceError> {
        let Some(conn) = self.conns.get_mut(&instrument.name) else {
            return Ok(());
        };
        let Some(session) = conn.session.as_mut().filter(|_| conn.out_of_step) else {
            return Ok(());
        };
        match exec::resync(&instrument.profile, session, conn.identity.as_ref()).await {
            Ok(_) => {
                tracing::info!(instrument = %instrument.name, "back in step with the instrument");
                conn.out_of_step = false;
                Ok(())
            }
            Err(source) => {
                let reason = crate::error::chain(&source);
                self.lost(&instrument.name, &reason, clock);
                Err(SequenceError::Setup {
                    instrument: instrument.name.clone(),
                    source: Box::new(source),
                })
            }
        }
    }

    /// Supervision between runs: probes connected instruments for a hang-up (no bus traffic) and
    /// retries offline ones whose wait is over. Cheap enough to call every second.
    pub async fn tick(&mut self, instruments: &[Instrument], clock: &dyn Clock) {
        for instrument in instruments {
            let Some(conn) = self.conns.get_mut(&instrument.name) else {
                continue;
            };
            if let Some(session) = conn.session.as_mut() {
                if let Err(e) = session.probe().await
                    && e.is_connection_lost()
                {
                    let reason = crate::error::chain(&e);
                    self.lost(&instrument.name, &reason, clock);
                }
                continue;
            }
            let due = conn
                .outage
                .as_ref()
                .is_none_or(|o| o.next_try <= Instant::now());
            if due {
                // Failure is recorded in the outage; the next attempt comes after its backoff.
                let _ = self.try_connect(instrument, clock).await;
            }
        }
    }

    /// Connects every instrument now (the daemon at start), leaving those that fail offline.
    pub async fn connect_all(&mut self, instruments: &[Instrument], clock: &dyn Clock) {
        for instrument in instruments {
            if !self.is_online(&instrument.name) {
                let _ = self.try_connect(instrument, clock).await;
            }
        }
    }

    async fn try_connect(
        &mut self,
        instrument: &Instrument,
        clock: &dyn Clock,
    ) -> Result<(), SequenceError> {
        let name = instrument.name.clone();
        match self.open(instrument).await {
            Ok((session, identity)) => {
                // The unit the lab named, else the one first seen in this process.
                let stranger = match (&instrument.serial_number, self.identity(&name)) {
                    (Some(serial), _) if *serial != identity.serial => Some((
                        format!("serial {serial}"),
                        "not the unit named in the config",
                    )),
                    (_, Some(recorded)) if !recorded.same_unit(&identity) => {
                        Some((describe(recorded), "identity changed"))
                    }
                    _ => None,
                };
                if let Some((expected, why)) = stranger {
                    return Err(self.refuse(&name, &expected, &identity, why, clock));
                }
                let conn = self.conns.entry(name.clone()).or_default();
                match &conn.identity {
                    Some(recorded) if recorded.firmware != identity.firmware => {
                        tracing::warn!(instrument = %name, before = %recorded.firmware, after = %identity.firmware, "firmware changed");
                    }
                    Some(_) => {}
                    None => conn.identity = Some(identity.clone()),
                }
                conn.session = Some(session);
                if let Some(outage) = conn.outage.take() {
                    let at = clock.now();
                    let offline_s = (at.utc_us - outage.since.utc_us) as f64 / 1e6;
                    tracing::info!(instrument = %name, offline_s, "instrument online again");
                    self.events.push(event(
                        at,
                        "instrument_online",
                        serde_json::json!({
                            "instrument": name,
                            "offline_since_utc": crate::clock::rfc3339(outage.since.utc_us),
                            "offline_s": offline_s,
                            "reason": outage.reason,
                        }),
                    ));
                }
                Ok(())
            }
            Err(e) => {
                let reason = crate::error::chain(&e);
                self.set_offline(&name, &reason, clock);
                Err(e)
            }
        }
    }

    /// Refuses the unit that answered as `name` (`found`, not `expected`): it stays offline and
    /// is retried; the refusal is recorded once per stranger, not at every retry.
    fn refuse(
        &mut self,
        name: &str,
        expected: &str,
        found: &Identity,
        why: &str,
        clock: &dyn Clock,
    ) -> SequenceError {
        let found = describe(found);
        let reason = format!("{why}: expected {expected}, found {found}");
        let known = self
            .conns
            .get(name)
            .and_then(|c| c.outage.as_ref())
            .is_some_and(|o| o.last == reason);
        if !known {
            tracing::error!(instrument = %name, %reason, "instrument refused");
            self.events.push(event(
                clock.now(),
                "instrument_refused",
                serde_json::json!({ "instrument": name, "expected": expected, "found": found }),
            ));
        }
        self.set_offline(name, &reason, clock);
        SequenceError::IdentityChanged {
            instrument: name.to_owned(),
            reason,
        }
    }

    /// Marks `name` offline (announcing it once) and schedules the next attempt.
    fn set_offline(&mut self, name: &str, reason: &str, clock: &dyn Clock) {
        let announced = self.conns.get(name).is_some_and(|c| c.outage.is_some());
        if !announced {
            self.lost(name, reason, clock);
            return;
        }
        if let Some(outage) = self.conns.get_mut(name).and_then(|c| c.outage.as_mut()) {
            outage.next_try = Instant::now() + outage.backoff.next_delay();
            reason.clone_into(&mut outage.last);
        }
    }

    /// Opens a session, sends the profile's set-up and asks who is there.
    async fn open(
        &mut self,
        instrument: &Instrument,
    ) -> Result<(Session, Identity), SequenceError> {
        let link = self.link(instrument).await?;
        let mut session = Session::new(instrument.name.clone(), link);
        session.set_recording(self.record_exchanges);
        let profile = &instrument.profile;
        let setup = async {
            let first = async {
                exec::init(profile, &mut session).await?;
                exec::identify(profile, &mut session).await
            }
            .await;
            match first {
                // Whatever the last user of the line left on it (a late reply, the rest of a
                // flood) is read past once, then set-up is tried again.
                Err(e) if e.needs_resync() => {
                    tracing::warn!(instrument = %instrument.name, error = %crate::error::chain(&e), "set-up out of step; resynchronising");
                    exec::resync(profile, &mut session, None).await?;
                    exec::init(profile, &mut session).await?;
                    exec::identify(profile, &mut session).await
                }
                other => other,
            }
        };
        match setup.await {
            Ok(identity) => Ok((session, identity)),
            Err(source) => Err(SequenceError::Setup {
                instrument: instrument.name.clone(),
                source: Box::new(source),
            }),
        }
    }

    async fn link(&mut self, instrument: &Instrument) -> Result<Link, SequenceError> {
        let connect_error = |resource: String, source: TransportError| SequenceError::Connect {
            instrument: instrument.name.clone(),
            resource,
            source,
        };
        let resource = match &instrument.endpoint {
            Endpoint::SimulatorPty => {
                let server = match self.sims.entry(instrument.name.clone()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        // The simulator speaks the instrument's own dialect when there is a
                        // personality for its profile; a lab's own profile gets the generic one.
                        let mut spec =
                            SimSpec::instrument(personality(instrument), self.simulator.clone());
                        spec.faults = self.simulator_faults.clone();
                        let server = PtyServer::start_spec(spec, None).map_err(|source| {
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
            Endpoint::Resource(Resource::Serial { path }) => match &instrument.usb_serial {
                Some(serial) => Resource::Serial {
                    path: find_usb_port(serial).unwrap_or_else(|| path.clone()),
                },
                None => Resource::Serial { path: path.clone() },
            },
            Endpoint::Resource(gpib @ Resource::Gpib { board, .. }) => {
                let adapter = self.adapter(*board).await?;
                return adapter
                    .link_to(gpib, instrument.link.clone())
                    .map_err(|e| connect_error(gpib.to_string(), e));
            }
            Endpoint::Resource(other) => other.clone(),
        };
        Link::open(&resource, &instrument.serial, instrument.link.clone())
            .await
            .map_err(|e| connect_error(resource.to_string(), e))
    }

    /// The open adapter for a GPIB board, opening it if needed.
    async fn adapter(&mut self, board: u8) -> Result<PrologixAdapter, SequenceError> {
        if let Some(adapter) = self.adapters.get(&board) {
            return Ok(adapter.clone());
        }
        let Some(config) = self.adapters_config.iter().find(|a| a.board == board) else {
            // The config validator makes every GPIB board name an adapter.
            return Err(SequenceError::Connect {
                instrument: format!("GPIB{board}"),
                resource: format!("GPIB{board}"),
                source: TransportError::Disconnected,
            });
        };
        let resource = match &config.endpoint {
            AdapterEndpoint::Resource(resource) => resource.clone(),
            AdapterEndpoint::Simulator => {
                let server = match self.sim_adapters.entry(board) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let server = start_sim_bus(
                            board,
                            &self.sim_buses,
                            &self.simulator,
                            &self.simulator_faults,
                        )?;
                        v.insert(server)
                    }
                };
                Resource::PrologixSerial {
                    board,
                    path: server.path().to_owned(),
                }
            }
        };
        let adapter = PrologixAdapter::open(&resource, &config.serial, config.read_tmo_ms)
            .await
            .map_err(|source| SequenceError::Connect {
                instrument: format!("GPIB{board}"),
                resource: resource.to_string(),
                source,
            })?;
        self.adapters.insert(board, adapter.clone());
        Ok(adapter)
    }

    /// Forgets an adapter that failed, so the next attempt opens it again.
    pub fn drop_adapter(&mut self, board: u8) {
        self.adapters.remove(&board);
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
fn sim_buses(config: &Config) -> HashMap<u8, Vec<(u8, PersonalityId)>> {
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

/// Starts the simulated Prologix adapter of `board` on a pseudo-terminal.
fn start_sim_bus(
    board: u8,
    buses: &HashMap<u8, Vec<(u8, PersonalityId)>>,
    params: &SimParams,
    faults: &[Fault],
) -> Result<PtyServer, SequenceError> {
    let simulator_error = |source| SequenceError::Simulator {
        instrument: format!("GPIB{board}"),
        source,
    };
    let devices = buses.get(&board).cloned().unwrap_or_default();
    let bus = BusSpec::new(devices).map_err(|_| {
        simulator_error(SimError::InvalidParam {
            field: "bus",
            reason: "two instruments at one GPIB address",
        })
    })?;
    let mut spec = SimSpec::prologix(bus, params.clone());
    spec.faults = faults.to_vec();
    PtyServer::start_spec(spec, None).map_err(simulator_error)
}

fn event(at: Timestamp, kind: &'static str, detail: serde_json::Value) -> NewEvent {
    NewEvent {
        at,
        run_id: None,
        instrument_id: None,
        kind,
        detail,
    }
}

/// Same manufacturer, model and serial number: the same unit (firmware may be updated).
fn describe(id: &Identity) -> String {
    format!("{} {} serial {}", id.manufacturer, id.model, id.serial)
}

/// The serial port whose USB adapter has this serial number, wherever it was enumerated.
pub fn find_usb_port(serial: &str) -> Option<PathBuf> {
    let ports = serialport::available_ports().ok()?;
    ports.into_iter().find_map(|p| match p.port_type {
        serialport::SerialPortType::UsbPort(usb)
            if usb.serial_number.as_deref() == Some(serial) =>
        {
            Some(PathBuf::from(p.port_name))
        }
        _ => None,
    })
}

/// How long the daemon waits between supervision ticks.
pub const TICK: Duration = Duration::from_secs(1);
