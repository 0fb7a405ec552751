//! Runs a configured sequence: identify, configure, read, drain errors — every reading committed
//! before it is reported and before the next one is triggered.

pub mod backoff;
mod connect;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::{self, Clock};
use crate::config::{Config, ExchangeLog, ReadStep, Sequence, Step};
use crate::session::{Exchange, Identity, InstrumentError, Measurement, Session, SessionError};
use crate::sim::SimError;
use crate::store::{NewEvent, NewReading, RunStatus, Store, StoreError, Trigger};
use crate::transport::TransportError;

pub use connect::Connector;

/// How many `SYST:ERR?` queries a drain may take before the queue is declared stuck.
const ERROR_DRAIN_LIMIT: usize = 64;

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// No sequence by that name in the config.
    #[error("no sequence named `{name}` (configured: {known})")]
    UnknownSequence {
        /// Requested name.
        name: String,
        /// Names that exist.
        known: String,
    },
    /// A step names an instrument that is not configured (the config validator prevents this).
    #[error("no instrument named `{name}`")]
    UnknownInstrument {
        /// The name.
        name: String,
    },
    /// The built-in simulator could not start.
    #[error("cannot start the simulator for `{instrument}`")]
    Simulator {
        /// Instrument.
        instrument: String,
        /// Why.
        #[source]
        source: SimError,
    },
    /// The instrument could not be reached.
    #[error("cannot connect to `{instrument}`")]
    Connect {
        /// Instrument.
        instrument: String,
        /// Resource string.
        resource: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// A step's exchange with the instrument failed.
    #[error("step {step} ({action}) failed")]
    Exchange {
        /// 1-based step number.
        step: usize,
        /// Step kind.
        action: &'static str,
        /// Instrument.
        instrument: String,
        /// Why (boxed: session errors are large and this one travels up several calls).
        #[source]
        source: Box<SessionError>,
    },
    /// The instrument's error queue held errors: a command was not accepted as sent.
    #[error("step {step} (drain_errors): `{instrument}` reported {}", join_errors(.errors))]
    InstrumentReported {
        /// 1-based step number.
        step: usize,
        /// Instrument.
        instrument: String,
        /// The errors, in queue order.
        errors: Vec<InstrumentError>,
    },
    /// Storage failed; nothing more can be measured safely.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run failed part-way; the readings it took are stored.
    #[error("run {run_id} of `{sequence}` failed after {readings} readings")]
    RunFailed {
        /// Run id.
        run_id: u64,
        /// Sequence.
        sequence: String,
        /// Readings committed before the failure.
        readings: u64,
        /// What failed.
        #[source]
        cause: Box<SequenceError>,
    },
}

impl SequenceError {
    /// The innermost cause, past the `RunFailed` wrapper.
    pub fn cause(&self) -> &SequenceError {
        match self {
            Self::RunFailed { cause, .. } => cause.cause(),
            other => other,
        }
    }
}

fn join_errors(errors: &[InstrumentError]) -> String {
    errors
        .iter()
        .map(|e| format!("{},\"{}\"", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One committed reading, as reported to an [`Observer`].
#[derive(Debug)]
pub struct ReadingReport<'a> {
    /// Instrument name.
    pub instrument: &'a str,
    /// Readings committed so far in this run (this one included).
    pub done: u64,
    /// Readings the run will take in all.
    pub total: u64,
    /// The reading's global sequence number.
    pub seq: u64,
    /// The reply as received.
    pub raw: &'a str,
    /// The parsed value.
    pub measurement: Measurement,
    /// Unit.
    pub unit: &'a str,
}

/// Watches a run; progress displays and logs implement it. Calls come after the commit.
pub trait Observer: Send {
    /// The run row exists.
    fn started(&mut self, _run_id: u64, _sequence: &str, _total_readings: u64) {}
    /// An instrument answered `*IDN?`.
    fn identified(&mut self, _instrument: &str, _identity: &Identity) {}
    /// A reading was committed.
    fn reading(&mut self, _report: &ReadingReport<'_>) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// How a run ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Run id.
    pub run_id: u64,
    /// `Completed`, or `Stopped` when a stop was requested.
    pub status: RunStatus,
    /// Readings committed.
    pub readings: u64,
    /// First and last sequence numbers committed, if any.
    pub seq_range: Option<(u64, u64)>,
}

/// What a run needs from the agent around it.
pub struct Runner<'a> {
    /// The validated config.
    pub config: &'a Config,
    /// The store. The runner is its only writer while it runs; its calls block for the durable
    /// commit, which is the point: nothing may happen before it. Run the runner on a runtime where
    /// that is acceptable (the CLI uses a single-threaded one).
    pub store: &'a mut Store,
    /// Time source for readings and events.
    pub clock: Arc<dyn Clock>,
    /// Opens instrument sessions.
    pub connector: &'a mut Connector,
}

struct Progress {
    run_id: u64,
    total: u64,
    done: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Runner<'_> {
    /// Runs the sequence named `name`.
    pub async fn run_named(
        &mut self,
        name: &str,
        trigger: Trigger,
        operator: Option<&str>,
        observer: &mut dyn Observer,
        stop: &watch::Receiver<bool>,
    ) -> Result<RunOutcome, SequenceError> {
        let config = self.config;
        let sequence = config
            .sequence(name)
            .ok_or_else(|| SequenceError::UnknownSequence {
                name: name.to_owned(),
                known: config
                    .sequences
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        self.run(sequence, trigger, operator, observer, stop).await
    }

    /// Runs `sequence` once. A failure is recorded as an event, the run is marked failed and the
    /// error returned; readings already committed stay.
    pub async fn run(
        &mut self,
        sequence: &Sequence,
        trigger: Trigger,
        operator: Option<&str>,
        observer: &mut dyn Observer,
        stop: &watch::Receiver<bool>,
    ) -> Result<RunOutcome, SequenceError> {
        let started = self.clock.now();
        let owner = (std::process::id(), self.clock.boot_id());
        let run_id = self
            .store
            .begin_run(&sequence.name, trigger, operator, started, owner)?;
        let total = sequence
            .steps
            .iter()
            .map(|s| match s {
                Step::Read(r) => u64::from(r.count),
                _ => 0,
            })
            .sum();
        observer.started(run_id, &sequence.name, total);
        let mut progress = Progress {
            run_id,
            total,
            done: 0,
            first: None,
            last: None,
        };
        let mut sessions = Sessions::default();
        let result = self
            .steps(sequence, &mut sessions, &mut progress, observer, stop)
            .await;
        // Exchanges of a failed step are evidence too.
        let leftover = sessions.drain_exchanges(&*self.clock, run_id);
        let ended = self.clock.now();
        match result {
            Ok(stopped) => {
                let status = if stopped {
                    RunStatus::Stopped
                } else {
                    RunStatus::Completed
                };
                let message = stopped.then_some("stopped on request after the reading in progress");
                self.store.append_events(&leftover)?;
                self.store.end_run(run_id, status, message, ended)?;
                Ok(RunOutcome {
                    run_id,
                    status,
                    readings: progress.done,
                    seq_range: progress.first.zip(progress.last),
                })
            }
            Err(cause) => {
                let message = crate::error::chain(&cause);
                let failure = NewEvent {
                    at: ended,
                    run_id: Some(run_id),
                    instrument_id: None,
                    kind: "run_failed",
                    detail: serde_json::json!({ "error": message }),
                };
                let stored = self
                    .store
                    .append_events(&leftover)
                    .and_then(|()| self.store.append_events(&[failure]))
                    .and_then(|()| {
                        self.store
                            .end_run(run_id, RunStatus::Failed, Some(&message), ended)
                    });
                if let Err(store_error) = stored {
                    tracing::error!(run_id, error = %crate::error::chain(&store_error), "could not record the run's failure");
                }
                Err(SequenceError::RunFailed {
                    run_id,
                    sequence: sequence.name.clone(),
                    readings: progress.done,
                    cause: Box::new(cause),
                })
            }
        }
    }

    /// Returns whether the run was stopped on request.
    async fn steps(
        &mut self,
        sequence: &Sequence,
        sessions: &mut Sessions,
        progress: &mut Progress,
        observer: &mut dyn Observer,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, SequenceError> {
        for (index, step) in sequence.steps.iter().enumerate() {
            let number = index + 1;
            if *stop.borrow() {
                return Ok(true);
            }
            let name = step.instrument();
            if !sessions.open.contains_key(name) {
                let instrument = self.config.instrument(name).ok_or_else(|| {
                    SequenceError::UnknownInstrument {
                        name: name.to_owned(),
                    }
                })?;
                let mut session = self.connector.open(instrument).await?;
                session.set_recording(self.config.storage.log_exchanges != ExchangeLog::None);
                sessions.open.insert(name.to_owned(), session);
            }
            let stopped = match step {
                Step::Identify { instrument } => {
                    self.identify(sessions, instrument, number, progress.run_id, observer)
                        .await?;
                    false
                }
                Step::Configure {
                    instrument,
                    commands,
                } => {
                    let session = sessions.get(instrument)?;
                    for command in commands {
                        session
                            .write(command)
                            .await
                            .map_err(|source| SequenceError::Exchange {
                                step: number,
                                action: "configure",
                                instrument: instrument.clone(),
                                source: Box::new(source),
                            })?;
                    }
                    false
                }
                Step::DrainErrors { instrument } => {
                    let errors = sessions
                        .get(instrument)?
                        .drain_errors(ERROR_DRAIN_LIMIT)
                        .await
                        .map_err(|source| SequenceError::Exchange {
                            step: number,
                            action: "drain_errors",
                            instrument: instrument.clone(),
                            source: Box::new(source),
                        })?;
                    if !errors.is_empty() {
                        let at = self.clock.now();
                        let instrument_id = sessions.ids.get(instrument).copied();
                        let events: Vec<NewEvent> = errors
                            .iter()
                            .map(|e| NewEvent {
                                at,
                                run_id: Some(progress.run_id),
                                instrument_id,
                                kind: "instrument_error",
                                detail: serde_json::json!({ "code": e.code, "message": e.message }),
                            })
                            .collect();
                        self.store.append_events(&events)?;
                        return Err(SequenceError::InstrumentReported {
                            step: number,
                            instrument: instrument.clone(),
                            errors,
                        });
                    }
                    false
                }
                Step::Read(read) => {
                    if !sessions.ids.contains_key(&read.instrument) {
                        self.identify(
                            sessions,
                            &read.instrument,
                            number,
                            progress.run_id,
                            observer,
                        )
                        .await?;
                    }
                    self.read(sessions, read, number, progress, observer, stop)
                        .await?
                }
            };
            let events = sessions.drain_exchanges(&*self.clock, progress.run_id);
            self.store.append_events(&events)?;
            if stopped {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn identify(
        &mut self,
        sessions: &mut Sessions,
        instrument: &str,
        step: usize,
        run_id: u64,
        observer: &mut dyn Observer,
    ) -> Result<(), SequenceError> {
        let identity = sessions
            .get(instrument)?
            .identify()
            .await
            .map_err(|source| SequenceError::Exchange {
                step,
                action: "identify",
                instrument: instrument.to_owned(),
                source: Box::new(source),
            })?;
        let resource = self
            .config
            .instrument(instrument)
            .map(|i| i.resource_text())
            .unwrap_or_default();
        let at = self.clock.now();
        let id = self
            .store
            .record_instrument(instrument, &resource, &identity, at)?;
        self.store.append_events(&[NewEvent {
            at,
            run_id: Some(run_id),
            instrument_id: Some(id),
            kind: "identified",
            detail: serde_json::json!({
                "manufacturer": identity.manufacturer, "model": identity.model,
                "serial": identity.serial, "firmware": identity.firmware,
            }),
        }])?;
        sessions.ids.insert(instrument.to_owned(), id);
        observer.identified(instrument, &identity);
        Ok(())
    }

    /// Returns whether a stop was requested.
    async fn read(
        &mut self,
        sessions: &mut Sessions,
        read: &ReadStep,
        step: usize,
        progress: &mut Progress,
        observer: &mut dyn Observer,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, SequenceError> {
        let instrument_id = sessions.ids.get(&read.instrument).copied().unwrap_or(0);
        let mut next = Instant::now();
        for i in 0..read.count {
            if *stop.borrow() {
                return Ok(true);
            }
            if i > 0 && wait_or_stop(next, stop).await {
                return Ok(true);
            }
            next += read.interval;
            let session = sessions.get(&read.instrument)?;
            let (raw, measurement) = session.read_number(&read.query).await.map_err(|source| {
                SequenceError::Exchange {
                    step,
                    action: "read",
                    instrument: read.instrument.clone(),
                    source: Box::new(source),
                }
            })?;
            let at = self.clock.now();
            let mut exchanges = session.take_exchanges();
            if self.config.storage.log_exchanges == ExchangeLog::ExceptReadings {
                // The reading row records the exchange that produced it (query from the sequence,
                // reply verbatim, time), which keeps the per-reading transaction to the reading and
                // the chain head (benchmark P1).
                exchanges.retain(|x| {
                    !(x.error.is_none()
                        && x.command == read.query
                        && x.reply.as_deref() == Some(raw.as_str()))
                });
            }
            let exchanges = exchange_events(exchanges, at, progress.run_id, Some(instrument_id));
            // Committed before it is reported and before the next trigger.
            let committed = self.store.append_reading(
                &NewReading {
                    run_id: progress.run_id,
                    instrument_id,
                    quantity: &read.quantity,
                    value: measurement.value(),
                    status: measurement.status(),
                    unit: &read.unit,
                    raw: &raw,
                    at,
                    boot_id: self.clock.boot_id(),
                },
                &exchanges,
            );
            let committed = committed.inspect_err(|e| {
                // The database refused it; the journal is the last place this value can be kept.
                tracing::error!(
                    instrument = %read.instrument,
                    raw = %raw,
                    utc = %clock::rfc3339(at.utc_us),
                    error = %crate::error::chain(e),
                    "reading could not be stored"
                );
            })?;
            progress.done += 1;
            progress.first.get_or_insert(committed.seq);
            progress.last = Some(committed.seq);
            observer.reading(&ReadingReport {
                instrument: &read.instrument,
                done: progress.done,
                total: progress.total,
                seq: committed.seq,
                raw: &raw,
                measurement,
                unit: &read.unit,
            });
        }
        Ok(false)
    }
}

/// Marks runs whose process is gone (crash, kill -9, power loss) as interrupted; returns their ids.
pub fn recover_interrupted(store: &mut Store, clock: &dyn Clock) -> Result<Vec<u64>, StoreError> {
    let boot = clock.boot_id();
    store.recover_interrupted(clock.now(), |pid, run_boot| {
        run_boot == boot && process_alive(pid)
    })
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 only checks: ESRCH means no such process; EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e != nix::errno::Errno::ESRCH,
    }
}

/// Sleeps until `deadline`; returns early with `true` if a stop is requested.
async fn wait_or_stop(deadline: Instant, stop: &watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    // Back-to-back readings (interval 0) must not pay a trip through the timer driver.
    if Instant::now() >= deadline {
        return false;
    }
    let mut stop = stop.clone();
    stop.borrow_and_update();
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => false,
        changed = stop.changed() => match changed {
            Ok(()) => *stop.borrow(),
            // Nobody can ask for a stop any more: just wait out the interval.
            Err(_) => {
                tokio::time::sleep_until(deadline).await;
                false
            }
        },
    }
}

#[derive(Default)]
struct Sessions {
    open: HashMap<String, Session>,
    ids: HashMap<String, u64>,
}

impl Sessions {
    fn get(&mut self, name: &str) -> Result<&mut Session, SequenceError> {
        // Steps only name instruments whose session the loop opened first.
        self.open
            .get_mut(name)
            .ok_or_else(|| SequenceError::UnknownInstrument {
                name: name.to_owned(),
            })
    }

    fn drain_exchanges(&mut self, clock: &dyn Clock, run_id: u64) -> Vec<NewEvent> {
        let at = clock.now();
        let mut events = Vec::new();
        for (name, session) in &mut self.open {
            let id = self.ids.get(name).copied();
            events.extend(exchange_events(session.take_exchanges(), at, run_id, id));
        }
        events
    }
}

fn exchange_events(
    exchanges: Vec<Exchange>,
    at: clock::Timestamp,
    run_id: u64,
    instrument_id: Option<u64>,
) -> Vec<NewEvent> {
    exchanges
        .into_iter()
        .map(|x| NewEvent {
            at,
            run_id: Some(run_id),
            instrument_id,
            kind: "exchange",
            detail: serde_json::json!({
                "command": x.command,
                "reply": x.reply,
                "started_utc": clock::rfc3339(clock::utc_us(x.started)),
                "duration_us": u64::try_from(x.duration.as_micros()).unwrap_or(u64::MAX),
                "error": x.error,
            }),
        })
        .collect()
}
