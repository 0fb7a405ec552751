//! Runs a configured sequence: identify, configure, read, drain errors — every reading committed
//! before it is reported and before the next one is triggered.

mod stop;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use tsagent_bundle::event::{
    self, Event, Identified, InstrumentError, OperationResult, OperationValue,
};

use crate::clock::{self, Clock};
use crate::config::{Config, ExchangeLog, Instrument, ReadStep, Sequence, Step};
use crate::drivers::exec::{self, DriverError};
use crate::session::{Exchange, Identity, Measurement};
use crate::store::{NewEvent, NewReading, RunEnd, RunStart, RunStatus, Store, StoreError, Trigger};
use crate::supervisor::{Supervisor, SupervisorError};
pub use stop::{Stop, StopHandle, StopRequest, Urgency};

/// Why a run abandoned on an urgent stop ends `interrupted`.
const ABANDONED: &str =
    "stopped at once on a second request: the reading in progress was abandoned";

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
    /// The instrument could not be reached, set up or trusted.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// A step failed on its instrument.
    #[error("step {step} ({action}) on `{instrument}` failed")]
    Step {
        /// 1-based step number.
        step: usize,
        /// Step kind or operation name.
        action: String,
        /// Instrument.
        instrument: String,
        /// Why.
        #[source]
        source: Box<DriverError>,
    },
    /// An operation in a read step gave a value that cannot be a reading (text, not a number).
    #[error("step {step} ({op}) on `{instrument}`: the reply `{raw}` is not a value")]
    NotAValue {
        /// 1-based step number.
        step: usize,
        /// Operation.
        op: String,
        /// Instrument.
        instrument: String,
        /// What came back.
        raw: String,
    },
    /// Storage failed; nothing more can be measured safely.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An official run was refused by custody (gate closed, standard dispatched or damaged,
    /// calibration past due under `refuse`), or custody could not be read.
    #[error(transparent)]
    Custody(#[from] crate::custody::CustodyError),
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
    /// `Completed`; `Stopped` when a stop was requested; `Interrupted` when an urgent stop
    /// abandoned the reading in progress.
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
    /// Opens instrument sessions and keeps them.
    pub supervisor: &'a mut Supervisor,
}

/// What a run has done so far.
struct Progress {
    run_id: u64,
    total: u64,
    done: u64,
    first: Option<u64>,
    last: Option<u64>,
}

/// A run whose end is not recorded yet. Dropped armed — the runner panicked, or its future was
/// dropped part-way (a caller's `select!`, a runtime shut down) — it records the end through a
/// connection of its own, since the runner's may be in any state: the run is `interrupted`, with
/// the readings it had committed.
struct Unended {
    db: std::path::PathBuf,
    clock: Arc<dyn Clock>,
    progress: Progress,
    armed: bool,
}

impl Drop for Unended {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let p = &self.progress;
        let reason = if std::thread::panicking() {
            "the agent failed during this run (internal error)"
        } else {
            "the run was abandoned part-way (its task was cancelled)"
        };
        let ended = Store::open_existing(&self.db).and_then(|mut store| {
            store.end_run(
                p.run_id,
                &RunEnd {
                    status: RunStatus::Interrupted,
                    reason: Some(reason),
                    readings: p.done,
                    range: p.first.zip(p.last),
                    at: self.clock.now(),
                },
            )
        });
        if let Err(e) = ended {
            tracing::error!(run_id = p.run_id, error = %crate::error::report(&e), "could not record the end of the run; it will be marked interrupted at the next start");
        }
    }
}

impl Runner<'_> {
    /// Runs the sequence named `name`.
    pub async fn run_named(
        &mut self,
        name: &str,
        trigger: Trigger,
        operator: Option<&str>,
        observer: &mut dyn Observer,
        stop: &Stop,
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

    /// Runs `sequence` once. A failure is recorded in the run's `run_ended` event, the run is
    /// marked failed and the error returned; readings already committed stay. A stop request ends
    /// the run after the reading in progress (`stopped`); an urgent one abandons the exchange in
    /// progress at once (`interrupted`).
    ///
    /// Every way out of a run records its end: completion, a stop, a failure (even when the
    /// failure's own events cannot be stored), and — through [`Unended`] — a panic or the future
    /// being dropped.
    pub async fn run(
        &mut self,
        sequence: &Sequence,
        trigger: Trigger,
        operator: Option<&str>,
        observer: &mut dyn Observer,
        stop: &Stop,
    ) -> Result<RunOutcome, SequenceError> {
        // Runs of processes that died (kill -9, power loss) end before a new one begins, whichever
        // command starts it: none stays `running` because the next start was a demo.
        for run_id in recover_interrupted(self.store, &*self.clock)? {
            tracing::warn!(
                run_id,
                "run was left running by a process that is gone; marked interrupted"
            );
        }
        // An official run starts only in the official window; a refusal is recorded
        // (`official_skipped`) before it is returned, whoever asked for the run.
        if sequence.official {
            crate::custody::admit_official(
                self.store,
                self.config,
                sequence,
                trigger.as_str(),
                self.clock.now(),
            )?;
        }
        let boot_id = self.clock.boot_id().to_owned();
        let run_id = self.store.begin_run(&RunStart {
            sequence: &sequence.name,
            sequence_sha256: sequence.sha256(),
            trigger,
            operator,
            official: sequence.official,
            at: self.clock.now(),
            owner: (std::process::id(), &boot_id),
        })?;
        let total = sequence
            .steps
            .iter()
            .map(|s| self.expected_readings(s))
            .sum();
        let mut guard = Unended {
            db: self.store.path().to_owned(),
            clock: self.clock.clone(),
            progress: Progress {
                run_id,
                total,
                done: 0,
                first: None,
                last: None,
            },
            armed: true,
        };
        observer.started(run_id, &sequence.name, total);
        let mut ids = HashMap::new();
        let result = tokio::select! {
            biased;
            result = self.steps(sequence, &mut ids, &mut guard.progress, observer, stop) => {
                result.map(|stopped| {
                    if stopped && stop.request().is_some_and(|r| r.abort) {
                        RunStatus::Aborted
                    } else if stopped {
                        RunStatus::Stopped
                    } else {
                        RunStatus::Completed
                    }
                })
            }
            // Commits are not awaited, so the steps are only ever dropped between them: every
            // reading committed so far is whole and stays.
            () = stop.until_urgent() => Ok(RunStatus::Interrupted),
        };
        if matches!(result, Ok(RunStatus::Interrupted)) {
            // The abandoned exchange's reply may still come: nothing is sent to these
            // instruments again before they are back in step.
            for step in &sequence.steps {
                self.supervisor.out_of_step(step.instrument());
            }
        }
        // Exchanges and supervision events of a failed step are evidence too.
        let mut leftover = self.supervisor.take_events();
        for step in &sequence.steps {
            let name = step.instrument();
            if let Some(session) = self.supervisor.session_if_online(name) {
                leftover.extend(exchange_events(
                    session.take_exchanges(),
                    self.clock.now(),
                    run_id,
                    ids.get(name).copied(),
                ));
            }
        }
        for e in &mut leftover {
            e.run_id.get_or_insert(run_id);
        }
        let (status, reason) = match &result {
            Ok(RunStatus::Stopped) => (
                RunStatus::Stopped,
                Some("stopped on request after the reading in progress".to_owned()),
            ),
            Ok(RunStatus::Interrupted) => (RunStatus::Interrupted, Some(ABANDONED.to_owned())),
            Ok(RunStatus::Aborted) => (
                RunStatus::Aborted,
                Some("aborted through the control API after the reading in progress".to_owned()),
            ),
            Ok(status) => (*status, None),
            Err(cause) => (RunStatus::Failed, Some(crate::error::report(cause))),
        };
        let progress = &guard.progress;
        // Each is tried whatever became of the other: a run whose evidence could not be stored
        // must still not be left `running`.
        let events_stored = self.store.append_events(&leftover);
        let end_stored = self.store.end_run(
            run_id,
            &RunEnd {
                status,
                reason: reason.as_deref(),
                readings: progress.done,
                range: progress.first.zip(progress.last),
                at: self.clock.now(),
            },
        );
        if end_stored.is_ok() {
            guard.armed = false;
        }
        let stored = events_stored.and(end_stored.map(drop));
        let outcome = RunOutcome {
            run_id,
            status,
            readings: progress.done,
            seq_range: progress.first.zip(progress.last),
        };
        match result {
            Ok(_) => {
                stored?;
                Ok(outcome)
            }
            Err(cause) => {
                if let Err(store_error) = stored {
                    tracing::error!(run_id, error = %crate::error::report(&store_error), "could not record the run's failure");
                }
                Err(SequenceError::RunFailed {
                    run_id,
                    sequence: sequence.name.clone(),
                    readings: outcome.readings,
                    cause: Box::new(cause),
                })
            }
        }
    }

    /// How many readings a step will give, for progress: the runs times the values per run (a
    /// buffer read gives its `count`, a regex reply one per named capture).
    fn expected_readings(&self, step: &Step) -> u64 {
        let Step::Read(read) = step else { return 0 };
        let per_run = self
            .config
            .instrument(&read.instrument)
            .and_then(|i| i.profile.operation(&read.op).map(|op| (i, op)))
            .and_then(|(i, op)| {
                let reply = op.reply.as_ref()?;
                if let crate::drivers::ReplySpec::Regex { pattern, .. } = reply {
                    return Some(pattern.capture_names().flatten().count() as u64);
                }
                if !(reply.is_binary()
                    || matches!(reply, crate::drivers::ReplySpec::Csv { field: None }))
                {
                    return Some(1);
                }
                read.params
                    .get("count")
                    .or_else(|| i.params.get("count"))
                    .or_else(|| op.params.get("count"))
                    .and_then(|c| c.parse::<u64>().ok())
            })
            .unwrap_or(1);
        u64::from(read.count) * per_run
    }

    /// Returns whether the run was stopped on request.
    async fn steps(
        &mut self,
        sequence: &Sequence,
        ids: &mut HashMap<String, u64>,
        progress: &mut Progress,
        observer: &mut dyn Observer,
        stop: &Stop,
    ) -> Result<bool, SequenceError> {
        for (index, step) in sequence.steps.iter().enumerate() {
            let number = index + 1;
            if stop.requested() {
                return Ok(true);
            }
            let name = step.instrument();
            let instrument =
                self.config
                    .instrument(name)
                    .ok_or_else(|| SequenceError::UnknownInstrument {
                        name: name.to_owned(),
                    })?;
            let result = self
                .step(step, number, instrument, ids, progress, observer, stop)
                .await;
            // Exchanges and supervision events of this step are evidence, whatever its outcome.
            let mut events = self.supervisor.take_events();
            if let Some(session) = self.supervisor.session_if_online(name) {
                events.extend(exchange_events(
                    session.take_exchanges(),
                    self.clock.now(),
                    progress.run_id,
                    ids.get(name).copied(),
                ));
            }
            for e in &mut events {
                e.run_id.get_or_insert(progress.run_id);
            }
            self.store.append_events(&events)?;
            if result? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One step; returns whether a stop was requested during it.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &mut self,
        step: &Step,
        number: usize,
        instrument: &Instrument,
        ids: &mut HashMap<String, u64>,
        progress: &mut Progress,
        observer: &mut dyn Observer,
        stop: &Stop,
    ) -> Result<bool, SequenceError> {
        let clock = self.clock.clone();
        let failed = |action: &str, source: DriverError| SequenceError::Step {
            step: number,
            action: action.to_owned(),
            instrument: instrument.name.clone(),
            source: Box::new(source),
        };
        match step {
            Step::Identify { .. } => {
                self.identify(instrument, number, progress.run_id, ids, observer)
                    .await?;
                Ok(false)
            }
            Step::Configure { params, .. } => {
                match self.operate(instrument, "configure", params, false).await {
                    Ok(_) => Ok(false),
                    Err(e) => Err(self.step_failure(e, progress.run_id, ids, instrument, |e| {
                        failed("configure", e)
                    })),
                }
            }
            Step::Operate { op, params, .. } => {
                let outcome = match self.operate(instrument, op, params, false).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        return Err(self
                            .step_failure(e, progress.run_id, ids, instrument, |e| failed(op, e)));
                    }
                };
                if !outcome.values.is_empty() {
                    let values = outcome
                        .values
                        .iter()
                        .map(|v| OperationValue {
                            name: v.name.clone(),
                            unit: v.unit.clone(),
                            raw: v.raw.clone(),
                        })
                        .collect();
                    self.store.append_events(&[NewEvent {
                        run_id: Some(progress.run_id),
                        instrument_id: ids.get(&instrument.name).copied(),
                        ..NewEvent::new(
                            clock.now(),
                            Event::OperationResult(OperationResult {
                                op: op.clone(),
                                values,
                            }),
                        )
                    }])?;
                }
                Ok(false)
            }
            Step::DrainErrors { .. } => {
                let session = self.supervisor.session(instrument, &*clock).await?;
                let drained = exec::drain_errors(&instrument.profile, session).await;
                let errors = match drained {
                    Ok(errors) => errors,
                    Err(e) => {
                        self.note_loss(instrument, &e);
                        return Err(failed("drain_errors", e));
                    }
                };
                if errors.is_empty() {
                    return Ok(false);
                }
                let error = DriverError::InstrumentReported { errors };
                Err(
                    self.step_failure(error, progress.run_id, ids, instrument, |e| {
                        failed("drain_errors", e)
                    }),
                )
            }
            Step::Read(read) => {
                if !ids.contains_key(&instrument.name) {
                    self.identify(instrument, number, progress.run_id, ids, observer)
                        .await?;
                }
                self.read(instrument, read, number, ids, progress, observer, stop)
                    .await
            }
        }
    }

    /// Runs an operation, taking the instrument offline if the connection was lost.
    async fn operate(
        &mut self,
        instrument: &Instrument,
        op: &str,
        params: &std::collections::BTreeMap<String, String>,
        again: bool,
    ) -> Result<exec::OpOutcome, DriverError> {
        let clock = self.clock.clone();
        let session = match self.supervisor.session(instrument, &*clock).await {
            Ok(session) => session,
            Err(e) => {
                return Err(DriverError::Unavailable {
                    reason: crate::error::report(&e),
                });
            }
        };
        let (profile, defaults) = (&instrument.profile, &instrument.params);
        let result = if again {
            exec::run_again(profile, session, op, defaults, params).await
        } else {
            exec::run(profile, session, op, defaults, params).await
        };
        if let Err(e) = &result {
            self.note_loss(instrument, e);
        }
        result
    }

    /// Turns a failed operation into the step's error; errors the instrument itself reported
    /// are stored as events first, in its own words.
    fn step_failure(
        &mut self,
        error: DriverError,
        run_id: u64,
        ids: &HashMap<String, u64>,
        instrument: &Instrument,
        wrap: impl FnOnce(DriverError) -> SequenceError,
    ) -> SequenceError {
        if let DriverError::InstrumentReported { errors } = &error {
            let at = self.clock.now();
            let events: Vec<NewEvent> = errors
                .iter()
                .map(|e| NewEvent {
                    run_id: Some(run_id),
                    instrument_id: ids.get(&instrument.name).copied(),
                    ..NewEvent::new(
                        at,
                        Event::InstrumentError(InstrumentError {
                            code: i64::from(e.code),
                            message: e.message.clone(),
                        }),
                    )
                })
                .collect();
            if let Err(store_error) = self.store.append_events(&events) {
                return SequenceError::Store(store_error);
            }
        }
        wrap(error)
    }

    fn note_loss(&mut self, instrument: &Instrument, error: &DriverError) {
        self.supervisor
            .note_failure(&instrument.name, error, &*self.clock);
    }

    async fn identify(
        &mut self,
        instrument: &Instrument,
        step: usize,
        run_id: u64,
        ids: &mut HashMap<String, u64>,
        observer: &mut dyn Observer,
    ) -> Result<(), SequenceError> {
        let clock = self.clock.clone();
        let session = self.supervisor.session(instrument, &*clock).await?;
        let identity = match exec::identify(&instrument.profile, session).await {
            Ok(identity) => identity,
            Err(e) => {
                self.note_loss(instrument, &e);
                return Err(SequenceError::Step {
                    step,
                    action: "identify".to_owned(),
                    instrument: instrument.name.clone(),
                    source: Box::new(e),
                });
            }
        };
        let at = clock.now();
        let id = self.store.record_instrument(
            &instrument.name,
            &instrument.resource_text(),
            &identity,
            at,
        )?;
        self.store.append_events(&[NewEvent {
            run_id: Some(run_id),
            instrument_id: Some(id),
            ..NewEvent::new(
                at,
                Event::Identified(Identified {
                    manufacturer: identity.manufacturer.clone(),
                    model: identity.model.clone(),
                    serial: identity.serial.clone(),
                    firmware: identity.firmware.clone(),
                    driver: instrument.profile.id.clone(),
                }),
            )
        }])?;
        ids.insert(instrument.name.clone(), id);
        observer.identified(&instrument.name, &identity);
        Ok(())
    }

    /// Returns whether a stop was requested.
    #[allow(clippy::too_many_arguments)]
    async fn read(
        &mut self,
        instrument: &Instrument,
        read: &ReadStep,
        step: usize,
        ids: &HashMap<String, u64>,
        progress: &mut Progress,
        observer: &mut dyn Observer,
        stop: &Stop,
    ) -> Result<bool, SequenceError> {
        let instrument_id = ids.get(&instrument.name).copied().unwrap_or(0);
        let mut next = Instant::now();
        for i in 0..read.count {
            if stop.requested() {
                return Ok(true);
            }
            if i > 0 && wait_or_stop(next, stop).await {
                return Ok(true);
            }
            next += read.interval;
            let outcome = match self
                .operate(instrument, &read.op, &read.params, i > 0)
                .await
            {
                Ok(outcome) => outcome,
                Err(e) => {
                    return Err(
                        self.step_failure(e, progress.run_id, ids, instrument, |source| {
                            SequenceError::Step {
                                step,
                                action: read.op.clone(),
                                instrument: instrument.name.clone(),
                                source: Box::new(source),
                            }
                        }),
                    );
                }
            };
            let at = self.clock.now();
            let clock = self.clock.clone();
            let session = self.supervisor.session(instrument, &*clock).await?;
            let mut exchanges = session.take_exchanges();
            if self.config.storage.log_exchanges == ExchangeLog::ExceptReadings {
                // The reading rows record the exchange that produced them (query from the
                // profile, reply verbatim, time), which keeps the per-reading transaction to the
                // readings and the chain head (benchmark P1).
                exchanges
                    .retain(|x| !(x.error.is_none() && Some(&x.command) == outcome.query.as_ref()));
            }
            let exchanges = exchange_events(exchanges, at, progress.run_id, Some(instrument_id));
            let mut readings = Vec::with_capacity(outcome.values.len());
            let mut measurements = Vec::with_capacity(outcome.values.len());
            for value in &outcome.values {
                let Some(measurement) = value.measurement else {
                    return Err(SequenceError::NotAValue {
                        step,
                        op: read.op.clone(),
                        instrument: instrument.name.clone(),
                        raw: value.raw.clone(),
                    });
                };
                measurements.push(measurement);
                readings.push(NewReading {
                    run_id: progress.run_id,
                    instrument_id,
                    quantity: value
                        .name
                        .as_deref()
                        .or(read.quantity.as_deref())
                        .unwrap_or("value"),
                    value: measurement.value(),
                    status: measurement.status(),
                    unit: value.unit.as_deref().or(read.unit.as_deref()).unwrap_or(""),
                    raw: &value.raw,
                    at,
                    boot_id: self.clock.boot_id(),
                });
            }
            // Committed before it is reported and before the next trigger: one transaction per
            // operation, so a block of buffered readings is stored whole or not at all.
            let committed = self
                .store
                .append_readings(&readings, &exchanges)
                .inspect_err(|e| {
                    // The database refused them; the journal is the last place these values are kept.
                    for r in &readings {
                        tracing::error!(
                            instrument = %instrument.name,
                            raw = %r.raw,
                            utc = %clock::rfc3339(at.utc_us),
                            error = %crate::error::report(e),
                            "reading could not be stored"
                        );
                    }
                })?;
            for ((reading, done), measurement) in readings.iter().zip(&committed).zip(measurements)
            {
                progress.done += 1;
                progress.first.get_or_insert(done.seq);
                progress.last = Some(done.seq);
                observer.reading(&ReadingReport {
                    instrument: &instrument.name,
                    done: progress.done,
                    total: progress.total.max(progress.done),
                    seq: done.seq,
                    raw: reading.raw,
                    measurement,
                    unit: reading.unit,
                });
            }
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
async fn wait_or_stop(deadline: Instant, stop: &Stop) -> bool {
    if stop.requested() {
        return true;
    }
    // Back-to-back readings (interval 0) must not pay a trip through the timer driver.
    if Instant::now() >= deadline {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => false,
        () = stop.until_requested() => true,
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
            run_id: Some(run_id),
            instrument_id,
            ..NewEvent::new(
                at,
                Event::Exchange(event::Exchange {
                    started_utc: clock::rfc3339(clock::utc_us(x.started)),
                    duration_us: u64::try_from(x.duration.as_micros()).unwrap_or(u64::MAX),
                    command: x.command,
                    reply: x.reply,
                    error: x.error,
                }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    const LAB: &str = r#"
[lab]
id = "L"
name = "l"
[artefact]
id = "A"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[storage]
db = "t.db"
[[instrument]]
name = "dmm"
resource = "SIM::PTY::INSTR"
[[sequence]]
name = "s"
[[sequence.step]]
read = { instrument = "dmm", count = 1000000, quantity = "voltage", unit = "V" }
"#;

    /// Counts readings and drops the run's future after `after` of them.
    struct CancelAfter {
        after: u64,
        cancel: Option<tokio::sync::oneshot::Sender<()>>,
    }
    impl Observer for CancelAfter {
        fn reading(&mut self, r: &ReadingReport<'_>) {
            if r.done >= self.after
                && let Some(tx) = self.cancel.take()
            {
                let _ = tx.send(());
            }
        }
    }

    #[test]
    fn a_run_whose_future_is_dropped_still_ends() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(LAB, "t.toml", dir.path()).unwrap();
        let mut store = Store::open(&config.storage.db).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let stop = Stop::never();
            let (cancel, cancelled) = tokio::sync::oneshot::channel();
            let mut observer = CancelAfter {
                after: 3,
                cancel: Some(cancel),
            };
            let mut supervisor = Supervisor::new(&config);
            let mut runner = Runner {
                config: &config,
                store: &mut store,
                clock: Arc::new(SystemClock::new()),
                supervisor: &mut supervisor,
            };
            // A caller's `select!` that gives up on the run part-way.
            tokio::select! {
                _ = runner.run_named("s", Trigger::Manual, None, &mut observer, &stop) => {
                    panic!("a million readings finished first")
                }
                _ = cancelled => {}
            }
        });
        let row = store.run(1).unwrap().unwrap();
        assert_eq!(row.status, RunStatus::Interrupted, "{row:?}");
        let events = store.run_events(1).unwrap();
        let ended = events.iter().find(|e| e.kind == "run_ended").unwrap();
        assert_eq!(ended.detail["status"], "interrupted");
        assert!(ended.detail["readings"].as_u64().unwrap() >= 3);
        assert_eq!(ended.detail["readings"].as_u64(), Some(row.readings));
    }

    #[test]
    fn a_run_abandoned_by_a_panic_still_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut store = Store::open(&path).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let run_id = store
            .begin_run(&RunStart {
                sequence: "s",
                sequence_sha256: [0; 32],
                trigger: Trigger::Manual,
                operator: None,
                official: false,
                at: clock.now(),
                owner: (std::process::id(), clock.boot_id()),
            })
            .unwrap();
        let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = Unended {
                db: path.clone(),
                clock: clock.clone(),
                progress: Progress {
                    run_id,
                    total: 10,
                    done: 2,
                    first: Some(1),
                    last: Some(2),
                },
                armed: true,
            };
            panic!("a bug mid-run");
        }));
        assert!(guarded.is_err());
        let row = store.run(run_id).unwrap().unwrap();
        assert_eq!(row.status, RunStatus::Interrupted);
        assert!(
            row.message.as_deref().unwrap().contains("internal error"),
            "{row:?}"
        );
        let events = store.run_events(run_id).unwrap();
        let ended = events.iter().find(|e| e.kind == "run_ended").unwrap();
        assert_eq!(ended.detail["last_reading"], 2);
    }
}
