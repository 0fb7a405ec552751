//! The connection supervisor: the one place that owns an instrument's connection. It opens
//! sessions (starting built-in simulators, finding a serial port again by USB serial number,
//! sharing Prologix adapters), sends the profile's set-up, checks identity, resynchronises a
//! conversation that went out of step, takes an instrument offline when it vanishes and brings it
//! back with a capped backoff — the same unit, checked, or it is refused rather than measured.
//!
//! Every state change becomes an event (`instrument_offline`, `instrument_online`,
//! `instrument_refused`) that the caller stores; the supervisor itself never touches the store.
//!
//! A Prologix adapter is one connection shared by every instrument on its bus: when it is lost,
//! all of them go offline at once (one outage each), the adapter alone is retried with the
//! backoff, and once it is open again each instrument is reopened through it and identified
//! anew, the same unit checked, before anything is measured on it.
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

/// A Prologix adapter as the supervisor knows it.
enum AdapterSlot {
    /// Open, shared by the links to its instruments.
    Open(PrologixAdapter),
    /// Lost, or never opened: retried on its own backoff, and its instruments wait for it.
    Down(AdapterOutage),
}

/// Why an adapter is not open, and when to try again.
#[derive(Debug)]
struct AdapterOutage {
    /// Why the latest attempt failed, or how the connection was lost.
    reason: String,
    backoff: Backoff,
    next_try: Instant,
}

/// Opens and supervises instrument sessions. Keeps in-process simulators alive between runs.
pub struct Supervisor {
    adapters_config: Vec<Adapter>,
    record_exchanges: bool,
    simulators: Simulators,
    adapters: HashMap<u8, AdapterSlot>,
    /// The GPIB instruments and their boards, in config order.
    buses: Vec<(String, u8)>,
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
            buses: config
                .instruments
                .iter()
                .filter_map(|i| match &i.endpoint {
                    Endpoint::Resource(Resource::Gpib { board, .. }) => {
                        Some((i.name.clone(), *board))
                    }
                    _ => None,
                })
                .collect(),
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

    /// Why the instrument is offline (the latest failure), if it is.
    pub fn offline_reason(&self, name: &str) -> Option<&str> {
        self.conns
            .get(name)
            .and_then(|c| c.outage.as_ref())
            .map(|o| o.last.as_str())
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
        // A session through an adapter that another link found gone is not handed out.
        self.sweep_adapters(clock);
        let connected = self
            .conns
            .get(&instrument.name)
            .is_some_and(|c| c.session.is_some());
        if !connected {
            self.try_connect(instrument, true, clock).await?;
        }
        self.resync_if_needed(instrument, clock).await?;
        self.conns
            .get_mut(&instrument.name)
            .and_then(|c| c.session.as_mut())
            .ok_or_else(|| SupervisorError::UnknownInstrument {
                name: instrument.name.clone(),
            })
    }

    /// Records that `name` was lost during an exchange: it goes offline and is retried later. If
    /// its GPIB adapter was lost with it, so are the other instruments on that bus.
    pub fn lost(&mut self, name: &str, reason: &str, clock: &dyn Clock) {
        self.mark_lost(name, reason, clock);
        self.sweep_adapters(clock);
    }

    /// Takes `name` offline, opening its outage (announced once).
    fn mark_lost(&mut self, name: &str, reason: &str, clock: &dyn Clock) {
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
    }

    /// Takes down every open adapter whose connection was found lost, with the instruments on
    /// its bus.
    fn sweep_adapters(&mut self, clock: &dyn Clock) {
        let lost: Vec<u8> = self
            .adapters
            .iter()
            .filter_map(|(board, slot)| match slot {
                AdapterSlot::Open(adapter) if adapter.is_lost() => Some(*board),
                _ => None,
            })
            .collect();
        for board in lost {
            self.adapter_down(board, "connection lost", clock);
        }
    }

    /// Marks the adapter of `board` down and takes every connected instrument on its bus
    /// offline: their links shared its connection. The adapter is retried on its own backoff.
    fn adapter_down(&mut self, board: u8, reason: &str, clock: &dyn Clock) {
        let resource = self.adapter_resource(board);
        tracing::warn!(board, adapter = %resource, reason, "GPIB adapter lost; the instruments on its bus are offline until it is back");
        let mut backoff = Backoff::reconnect();
        let next_try = Instant::now() + backoff.next_delay();
        self.adapters.insert(
            board,
            AdapterSlot::Down(AdapterOutage {
                reason: format!("the GPIB{board} adapter `{resource}`: {reason}"),
                backoff,
                next_try,
            }),
        );
        let mates: Vec<String> = self
            .buses
            .iter()
            .filter(|(name, b)| *b == board && self.is_online(name))
            .map(|(name, _)| name.clone())
            .collect();
        let why = format!("the GPIB{board} adapter `{resource}` was lost: {reason}");
        for name in mates {
            self.mark_lost(&name, &why, clock);
        }
    }

    /// How an adapter is named in logs: its resource as configured.
    fn adapter_resource(&self, board: u8) -> String {
        match self.adapters_config.iter().find(|a| a.board == board) {
            Some(Adapter {
                endpoint: AdapterEndpoint::Resource(resource),
                ..
            }) => resource.to_string(),
            Some(Adapter {
                endpoint: AdapterEndpoint::Simulator,
                ..
            }) => format!("SIM::GPIB{board}::INTFC"),
            None => format!("GPIB{board}"),
        }
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

    /// Supervision between runs: probes connected instruments (and, through them, their GPIB
    /// adapters) for a hang-up without bus traffic, retries lost adapters whose wait is over,
    /// and retries offline instruments whose wait is over — those behind a lost adapter once it
    /// is back. Cheap enough to call every second.
    pub async fn tick(&mut self, instruments: &[Instrument], clock: &dyn Clock) {
        self.sweep_adapters(clock);
        self.retry_adapters(clock).await;
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
            // An instrument behind a lost adapter waits for the adapter's own retry.
            if due && !self.behind_lost_adapter(&instrument.name) {
                // Failure is recorded in the outage; the next attempt comes after its backoff.
                let _ = self.try_connect(instrument, false, clock).await;
            }
        }
    }

    /// Whether `name` is a GPIB instrument whose adapter is down.
    fn behind_lost_adapter(&self, name: &str) -> bool {
        self.buses
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, board)| {
                matches!(self.adapters.get(board), Some(AdapterSlot::Down(_)))
            })
    }

    /// Tries to reopen each lost adapter whose wait is over; once one is open, the instruments
    /// on its bus are due at once.
    async fn retry_adapters(&mut self, clock: &dyn Clock) {
        let now = Instant::now();
        let due: Vec<u8> = self
            .adapters
            .iter()
            .filter_map(|(board, slot)| match slot {
                AdapterSlot::Down(o) if o.next_try <= now => Some(*board),
                _ => None,
            })
            .collect();
        for board in due {
            if self.adapter(board, true, clock).await.is_ok() {
                for (name, _) in self.buses.iter().filter(|(_, b)| *b == board) {
                    if let Some(outage) = self.conns.get_mut(name).and_then(|c| c.outage.as_mut()) {
                        outage.next_try = now;
                    }
                }
            }
        }
    }

    /// Connects every instrument not yet connected (the daemon at start), leaving those that
    /// fail offline and retried by [`Supervisor::tick`]; returns each one's identity or why it
    /// could not be reached, in the order given.
    pub async fn connect_all(
        &mut self,
        instruments: &[Instrument],
        clock: &dyn Clock,
    ) -> Vec<(String, Result<Identity, SupervisorError>)> {
        let mut found = Vec::with_capacity(instruments.len());
        for instrument in instruments {
            found.push((
                instrument.name.clone(),
                self.connect(instrument, clock).await,
            ));
        }
        found
    }

    /// Connects `instrument` unless it is connected, and returns its identity (`config check
    /// --connect`, the daemon at start). An instrument behind an adapter that just failed is
    /// not tried again: the adapter's failure is the answer.
    pub async fn connect(
        &mut self,
        instrument: &Instrument,
        clock: &dyn Clock,
    ) -> Result<Identity, SupervisorError> {
        if !self.is_online(&instrument.name) {
            self.try_connect(instrument, false, clock).await?;
        }
        self.identity(&instrument.name)
            .cloned()
            .ok_or_else(|| SupervisorError::UnknownInstrument {
                name: instrument.name.clone(),
            })
    }

    /// Opens each configured Prologix adapter that is not open (starting simulated ones), and
    /// returns each one's resource and whether it opened, in config order.
    pub async fn open_adapters(
        &mut self,
        clock: &dyn Clock,
    ) -> Vec<(String, Result<(), SupervisorError>)> {
        let boards: Vec<u8> = self.adapters_config.iter().map(|a| a.board).collect();
        let mut found = Vec::with_capacity(boards.len());
        for board in boards {
            let opened = self.adapter(board, true, clock).await.map(drop);
            found.push((self.adapter_resource(board), opened));
        }
        found
    }

    /// Tries to open `instrument`. `force` tries its GPIB adapter now even if that is waiting
    /// out its backoff (a run asks for the instrument).
    async fn try_connect(
        &mut self,
        instrument: &Instrument,
        force: bool,
        clock: &dyn Clock,
    ) -> Result<(), SupervisorError> {
        let name = instrument.name.clone();
        match self.open(instrument, force, clock).await {
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
        force: bool,
        clock: &dyn Clock,
    ) -> Result<(Session, Identity), SupervisorError> {
        let link = self.link(instrument, force, clock).await?;
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

    async fn link(
        &mut self,
        instrument: &Instrument,
        force: bool,
        clock: &dyn Clock,
    ) -> Result<Link, SupervisorError> {
        let connect_error = |resource: String, source: TransportError| SupervisorError::Connect {
            instrument: instrument.name.clone(),
            resource,
            source,
        };
        let resource = match &instrument.endpoint {
            Endpoint::SimulatorPty => Resource::Serial {
                path: self.simulators.instrument(instrument)?,
            },
            Endpoint::Resource(Resource::Serial { path }) => match &instrument.usb_serial {
                Some(serial) => Resource::Serial {
                    path: find_usb_port(serial).unwrap_or_else(|| path.clone()),
                },
                None => Resource::Serial { path: path.clone() },
            },
            Endpoint::Resource(gpib @ Resource::Gpib { board, .. }) => {
                let adapter = self.adapter(*board, force, clock).await?;
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

    /// The open adapter for a GPIB board, opening it if it is not open. A lost adapter is
    /// reopened only when its wait is over, or when `force`d; otherwise its last failure is the
    /// answer, so the instruments of one bus do not each knock on a missing adapter.
    async fn adapter(
        &mut self,
        board: u8,
        force: bool,
        clock: &dyn Clock,
    ) -> Result<PrologixAdapter, SupervisorError> {
        match self.adapters.get(&board) {
            Some(AdapterSlot::Open(adapter)) if !adapter.is_lost() => return Ok(adapter.clone()),
            Some(AdapterSlot::Open(_)) => self.adapter_down(board, "connection lost", clock),
            Some(AdapterSlot::Down(outage)) if !force && outage.next_try > Instant::now() => {
                return Err(SupervisorError::AdapterOffline {
                    board,
                    reason: outage.reason.clone(),
                });
            }
            Some(AdapterSlot::Down(_)) | None => {}
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
                path: self.simulators.adapter(board)?,
            },
        };
        let opened = PrologixAdapter::open(&resource, &config.serial, config.read_tmo_ms).await;
        match opened {
            Ok(adapter) => {
                if let Some(AdapterSlot::Down(_)) = self.adapters.get(&board) {
                    tracing::info!(board, adapter = %resource, "GPIB adapter open again");
                }
                self.adapters
                    .insert(board, AdapterSlot::Open(adapter.clone()));
                Ok(adapter)
            }
            Err(source) => {
                let error = SupervisorError::Connect {
                    instrument: format!("GPIB{board}"),
                    resource: resource.to_string(),
                    source,
                };
                let reason = crate::error::report(&error);
                match self.adapters.get_mut(&board) {
                    Some(AdapterSlot::Down(outage)) => {
                        outage.next_try = Instant::now() + outage.backoff.next_delay();
                        outage.reason = reason;
                    }
                    _ => {
                        let mut backoff = Backoff::reconnect();
                        let next_try = Instant::now() + backoff.next_delay();
                        self.adapters.insert(
                            board,
                            AdapterSlot::Down(AdapterOutage {
                                reason,
                                backoff,
                                next_try,
                            }),
                        );
                    }
                }
                Err(error)
            }
        }
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
