//! The connection supervisor: the one place that owns an instrument's connection. It opens
//! sessions (starting built-in simulators, finding a serial port again by USB serial number,
//! sharing Prologix adapters), sends the profile's set-up, checks identity, resynchronises a
//! conversation that went out of step, takes an instrument offline when it vanishes and brings it
//! back with a capped backoff — the same unit, checked, or it is refused rather than measured.
//!
//! Every state change becomes an event (`instrument_offline`, `instrument_online`,
//! `instrument_refused`) that the caller stores; the supervisor itself never touches the store.
//!
//! **Architecture Invariant:** nothing outside this module decides whether a connection is
//! reopened, resynchronised or refused; the runner only reports how an exchange failed
//! ([`Supervisor::note_failure`]).

mod backoff;
mod error;
mod resync;
mod simulated;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tsagent_bundle::event::{Event, InstrumentOffline, InstrumentOnline, InstrumentRefused};

use crate::clock::{Clock, Timestamp};
use crate::config::{Adapter, AdapterEndpoint, Config, Endpoint, ExchangeLog, Instrument};
use crate::drivers::exec::{self, DriverError};
use crate::session::{Identity, Session};
use crate::store::NewEvent;
use crate::transport::{Link, PrologixAdapter, Resource, TransportError};
pub use backoff::Backoff;
pub use error::SupervisorError;
pub use resync::resync;
use simulated::Simulators;

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

/// Opens and supervises instrument sessions. Keeps in-process simulators alive between runs.
pub struct Supervisor {
    adapters_config: Vec<Adapter>,
    record_exchanges: bool,
    simulators: Simulators,
    adapters: HashMap<u8, PrologixAdapter>,
    conns: HashMap<String, Conn>,
    events: Vec<NewEvent>,
}

impl Supervisor {
    /// A supervisor for the instruments of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            adapters_config: config.adapters.clone(),
            record_exchanges: config.storage.log_exchanges != ExchangeLog::None,
            simulators: Simulators::new(config),
            adapters: HashMap::new(),
            conns: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// What the simulators started so far serve (an instrument's name, or `GPIB<n> adapter`)
    /// and their device paths, sorted.
    pub fn simulators(&self) -> Vec<(String, PathBuf)> {
        self.simulators.paths()
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
    ) -> Result<&mut Session, SupervisorError> {
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
            .ok_or_else(|| SupervisorError::UnknownInstrument {
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
            self.events.push(NewEvent::new(
                at,
                Event::InstrumentOffline(InstrumentOffline {
                    instrument: name.to_owned(),
                    reason: reason.to_owned(),
                }),
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

    /// Takes in how an exchange with `name` failed: a lost connection takes the instrument
    /// offline; a reply that may have been missed or misframed has the session resynchronised
    /// before its next use; anything else leaves the connection as it is.
    pub fn note_failure(&mut self, name: &str, error: &DriverError, clock: &dyn Clock) {
        if error.is_connection_lost() {
            self.lost(name, &crate::error::report(error), clock);
        } else if error.needs_resync() {
            self.out_of_step(name);
        }
    }

    /// Resynchronises `instrument`'s session if an exchange left it out of step. If that
    /// fails too — repeated timeouts, an instrument that keeps talking — the instrument goes
    /// offline and is reopened by the supervisor, as after a disconnect.
    async fn resync_if_needed(
        &mut self,
        instrument: &Instrument,
        clock: &dyn Clock,
    ) -> Result<(), SupervisorError> {
        let Some(conn) = self.conns.get_mut(&instrument.name) else {
            return Ok(());
        };
        let Some(session) = conn.session.as_mut().filter(|_| conn.out_of_step) else {
            return Ok(());
        };
        match resync(&instrument.profile, session, conn.identity.as_ref()).await {
            Ok(_) => {
                tracing::info!(instrument = %instrument.name, "back in step with the instrument");
                conn.out_of_step = false;
                Ok(())
            }
            Err(source) => {
                let reason = crate::error::report(&source);
                self.lost(&instrument.name, &reason, clock);
                Err(SupervisorError::setup(&instrument.name, source))
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
                    let reason = crate::error::report(&e);
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
    ) -> Result<(), SupervisorError> {
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
                    self.events.push(NewEvent::new(
                        at,
                        Event::InstrumentOnline(InstrumentOnline {
                            instrument: name,
                            offline_since_utc: crate::clock::rfc3339(outage.since.utc_us),
                            offline_s,
                            reason: outage.reason,
                        }),
                    ));
                }
                Ok(())
            }
            Err(e) => {
                let reason = crate::error::report(&e);
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
    ) -> SupervisorError {
        let found = describe(found);
        let reason = format!("{why}: expected {expected}, found {found}");
        let known = self
            .conns
            .get(name)
            .and_then(|c| c.outage.as_ref())
            .is_some_and(|o| o.last == reason);
        if !known {
            tracing::error!(instrument = %name, %reason, "instrument refused");
            self.events.push(NewEvent::new(
                clock.now(),
                Event::InstrumentRefused(InstrumentRefused {
                    instrument: name.to_owned(),
                    expected: expected.to_owned(),
                    found: found.clone(),
                }),
            ));
        }
        self.set_offline(name, &reason, clock);
        SupervisorError::IdentityChanged {
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
    ) -> Result<(Session, Identity), SupervisorError> {
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
                    tracing::warn!(instrument = %instrument.name, error = %crate::error::report(&e), "set-up out of step; resynchronising");
                    resync(profile, &mut session, None).await?;
                    exec::init(profile, &mut session).await?;
                    exec::identify(profile, &mut session).await
                }
                other => other,
            }
        };
        match setup.await {
            Ok(identity) => Ok((session, identity)),
            Err(source) => Err(SupervisorError::setup(&instrument.name, source)),
        }
    }

    async fn link(&mut self, instrument: &Instrument) -> Result<Link, SupervisorError> {
        let connect_error = |resource: String, source: TransportError| SupervisorError::Connect {
            instrument: instrument.name.clone(),
            resource,
            source,
        };
        let resource = match &instrument.endpoint {
            Endpoint::SimulatorPty => Resource::Serial {
                path: self.simulators.instrument(instrument)?.to_owned(),
            },
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
    async fn adapter(&mut self, board: u8) -> Result<PrologixAdapter, SupervisorError> {
        if let Some(adapter) = self.adapters.get(&board) {
            return Ok(adapter.clone());
        }
        let Some(config) = self.adapters_config.iter().find(|a| a.board == board) else {
            // The config validator makes every GPIB board name an adapter.
            return Err(SupervisorError::Connect {
                instrument: format!("GPIB{board}"),
                resource: format!("GPIB{board}"),
                source: TransportError::Disconnected,
            });
        };
        let resource = match &config.endpoint {
            AdapterEndpoint::Resource(resource) => resource.clone(),
            AdapterEndpoint::Simulator => Resource::PrologixSerial {
                board,
                path: self.simulators.adapter(board)?.to_owned(),
            },
        };
        let adapter = PrologixAdapter::open(&resource, &config.serial, config.read_tmo_ms)
            .await
            .map_err(|source| SupervisorError::Connect {
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

/// How a unit is named in a refusal: manufacturer, model and serial number (what makes it the
/// same unit; firmware may be updated).
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
