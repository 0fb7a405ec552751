//! `tsagent run`: the unattended agent. Runs each scheduled sequence in its slots, aligned to the
//! clock (`every = "30m"`: :00 and :30 UTC, shifted by `at`), one run at a time, until asked to
//! stop; then stops after the reading in progress, or at once when asked again.
//!
//! At start it opens every adapter and instrument and says which are absent (they are retried in
//! the background), and warns when the signing key is missing. Between runs it ticks the
//! supervisor once a second and stores its events. A slot that passes while another run is still
//! going is recorded as a `slot_missed` event.
//!
//! Slots are instants on the wall clock, but the waiting is monotonic: the wait for the next slot
//! is measured from the wall clock once, when that slot comes up, never longer than a period, and
//! then kept by a monotonic timer, so a clock step neither fires a burst of runs nor stalls the
//! schedule; the slots after it are aligned to the clock again.
//!
//! Under systemd (`Type=notify`) it says `READY=1` once the instruments have been opened at start,
//! keeps the watchdog fed while its task makes progress, reports what it is doing in `STATUS=`
//! and says `STOPPING=1` when asked to stop ([`notify`]).

mod alerts;
mod custody;
pub mod notify;
pub mod owner;
mod schedule;
mod steer;
mod upload;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tsagent_bundle::event::{ControlRefused, Event, SlotMissed};

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::control::{Hub, Request};
use crate::error::report;
use crate::sequence::{Observer, RunOutcome, Runner, SequenceError, Stop, StopHandle, Urgency};
use crate::store::{NewEvent, Store, StoreError, Trigger};
use crate::supervisor::{Supervisor, TICK};
use alerts::Alerts;
use notify::Notifier;
pub use schedule::{Due, Missed, Schedule, slot_at_or_after, slot_at_or_before};
pub use steer::{Control, initial_status};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Nothing to schedule.
    #[error("no sequence in `{origin}` has `every`, so there is nothing to schedule")]
    NothingScheduled {
        /// The config file.
        origin: String,
    },
    /// Start-up recovery could not be recorded.
    #[error("cannot recover interrupted runs")]
    Recover(#[source] StoreError),
    /// The connection for custody actions asked through the API could not be opened.
    #[error("cannot open the database for custody actions")]
    CustodyStore(#[source] StoreError),
}

/// A run to make now: asked for through the API, or a scheduled slot's.
struct Job<'c> {
    sequence: &'c crate::config::Sequence,
    trigger: Trigger,
    operator: Option<String>,
    /// The API request's ticket.
    ticket: Option<u64>,
}

/// The run that ended last, to say why slots passed without theirs.
struct LastRun {
    sequence: String,
    run_id: Option<u64>,
    ended_us: i64,
}

/// Runs the schedule until a stop is requested. Sequences run one at a time (they share
/// instruments); a run that fails is logged and the schedule goes on — the next slot is the retry.
/// `notifier` tells systemd of readiness, progress (the watchdog), status and the stop.
pub async fn run(
    config: &Config,
    store: &mut Store,
    clock: Arc<dyn Clock>,
    observer: &mut dyn Observer,
    stop: &Stop,
    control: Option<Control>,
    notifier: &mut Notifier,
) -> Result<(), DaemonError> {
    let (hub, mut requests) = match control {
        Some(c) => (Some(c.hub), Some(c.requests)),
        None => (None, None),
    };
    let hub = hub.as_deref();
    let mut queue = steer::Queue::default();
    let mut alerts = Alerts::new(config.alerts.clone());
    let mut refused = Vec::new();
    let recovered =
        crate::sequence::recover_interrupted(store, &*clock).map_err(DaemonError::Recover)?;
    for run_id in &recovered {
        tracing::warn!(
            run_id,
            "run was left running by a previous process; marked interrupted"
        );
    }

    // After the recovery, so a run a crash left `running` is listed as it now stands.
    if let Some(hub) = hub {
        steer::load_history(hub, store, clock.now().utc_us);
    }

    let mut schedule = Schedule::new(&config.sequences, clock.now().utc_us);
    if schedule.is_empty() {
        return Err(DaemonError::NothingScheduled {
            origin: config.origin.clone(),
        });
    }
    for (index, first) in schedule.slots() {
        let s = &config.sequences[index];
        let every = s.every.map(humantime::format_duration);
        let at = s.at.map(humantime::format_duration);
        tracing::info!(sequence = %s.name, every = %every.map(|d| d.to_string()).unwrap_or_default(), at = %at.map(|d| d.to_string()).unwrap_or_else(|| "0s".into()), first_slot = %rfc3339(first), "scheduled");
    }
    if let Some(problem) = signing_key_problem(config) {
        tracing::warn!(key = %config.signing.key.display(), "{problem}");
    }

    let mut desk = custody::Desk::open(config, clock.clone()).map_err(DaemonError::CustodyStore)?;
    let mut uploader = upload::start(config, clock.clone());
    let mut supervisor = Supervisor::new(config);
    connect_at_start(config, &mut supervisor, &*clock, hub).await;
    store_events(store, &mut supervisor, hub);
    if let Some(hub) = hub {
        steer::refresh(hub, config, &schedule, store, steer::disk_free(config));
        let record = custody::read_custody(store, config);
        custody::refresh_custody(hub, config, record.as_ref(), clock.now().utc_us);
    }
    // Ready once every instrument has been tried: those present are identified, the absent ones
    // logged and left to the background retries, so a missing meter never holds the service in
    // "activating".
    notifier.ready(&status(config, &schedule, &supervisor, None, &*clock));
    let mut watch = Watch::new(notifier, stop);

    // The monotonic deadline of each sequence's pending slot, fixed when the slot comes up.
    let mut deadlines: HashMap<usize, Instant> = HashMap::new();
    let mut next_tick = Instant::now() + TICK;
    let mut last_run: Option<LastRun> = None;
    let mut next_seal = config.sealing.every.map(|e| Instant::now() + e);
    loop {
        if stop.requested() {
            break;
        }
        steer::store_refusals(store, &mut refused, clock.now());
        // Seals asked for, or due: between runs, so they never split one.
        let seal_due = next_seal.is_some_and(|at| Instant::now() >= at);
        if seal_due || !queue.seals.is_empty() {
            let sealed = steer::seal(config, store, &*clock, hub);
            for reply in queue.seals.drain(..) {
                let _ = reply.send(sealed.clone());
            }
            if let Some(u) = &uploader {
                u.wake.notify_one();
            }
            if seal_due {
                next_seal = config.sealing.every.map(|e| Instant::now() + e);
            }
            if let Some(hub) = hub {
                steer::refresh(hub, config, &schedule, store, steer::disk_free(config));
            }
        }
        // Runs asked for through the API go first, one at a time, between scheduled ones.
        let job = if let Some(queued) = queue.pop() {
            if let Some(hub) = hub {
                let mut status = hub.status();
                status.queue.retain(|q| q.ticket != queued.ticket);
            }
            let Some(sequence) = config.sequences.iter().find(|s| s.name == queued.sequence) else {
                continue;
            };
            Job {
                sequence,
                trigger: Trigger::Manual,
                operator: Some(queued.operator),
                ticket: Some(queued.ticket),
            }
        } else {
            let Some((index, slot)) = schedule.next() else {
                break;
            };
            let every_us = schedule.every_us(index).unwrap_or(1);
            let deadline = *deadlines.entry(index).or_insert_with(|| {
                let wait_us = slot.saturating_sub(clock.now().utc_us).clamp(0, every_us);
                Instant::now() + Duration::from_micros(u64::try_from(wait_us).unwrap_or(0))
            });
            // Supervise the instruments every tick, between runs: a vanished port or adapter is
            // noticed within a tick, a returned one reconnected within a tick of its backoff.
            tokio::select! {
                () = watch.during(tokio::time::sleep_until(
                    next_seal.map_or(deadline.min(next_tick), |at| deadline.min(next_tick).min(at)),
                )) => {}
                () = stop.until_requested() => break,
                Some(request) = next_request(&mut requests) => {
                    steer::handle(request, config, &mut queue, hub, None, &mut refused, &mut desk);
                    continue;
                }
                Some(news) = next_news(&mut uploader) => {
                    let raised = alerts.upload(&news, clock.now());
                    store_alerts(store, raised);
                    if let Some(hub) = hub {
                        steer::refresh(hub, config, &schedule, store, steer::disk_free(config));
                    }
                    continue;
                }
            }
            if Instant::now() >= next_tick {
                watch
                    .during(supervisor.tick(&config.instruments, &*clock))
                    .await;
                store_events(store, &mut supervisor, hub);
                let free = steer::disk_free(config);
                let now = clock.now();
                // Read once a tick, for the status and the deadlines' alerts alike.
                let record = custody::read_custody(store, config);
                if let Some(hub) = hub {
                    steer::refresh(hub, config, &schedule, store, free);
                    custody::refresh_custody(hub, config, record.as_ref(), now.utc_us);
                }
                // Instrument states from the supervisor itself: an outage met inside a run is
                // recorded by the runner, so the state, not the event stream, is what to follow.
                let mut raised = Vec::new();
                if let Some((custody, _)) = &record {
                    let open = crate::custody::deadline::open(
                        &config.artefact.deadlines,
                        custody,
                        now.utc_us,
                        config.alerts.deadline_notice,
                    );
                    raised.extend(alerts.deadlines(&open, now));
                }
                if let Some(u) = &uploader
                    && let Ok(mut facts) = u.facts.lock()
                {
                    facts.instruments = u32::try_from(config.instruments.len()).unwrap_or(u32::MAX);
                    facts.online = u32::try_from(
                        config
                            .instruments
                            .iter()
                            .filter(|i| supervisor.is_online(&i.name))
                            .count(),
                    )
                    .unwrap_or(u32::MAX);
                    if let Some((custody, _)) = &record {
                        facts.custody = custody.state.as_str().to_owned();
                    }
                }
                for i in &config.instruments {
                    let online = supervisor.is_online(&i.name);
                    if let Some(hub) = hub {
                        steer::set_instrument(hub, &i.name, online, None, now.utc_us);
                    }
                    raised.extend(alerts.instrument(&i.name, online, now));
                }
                let key = signing_key_problem(config);
                raised.extend(alerts.tick(free, key.as_deref(), now));
                store_alerts(store, raised);
                next_tick = Instant::now() + TICK;
                watch.status(&status(config, &schedule, &supervisor, None, &*clock));
            }
            if Instant::now() < deadline {
                continue;
            }
            deadlines.remove(&index);
            let now = clock.now();
            let Some(due) = schedule.take(index, now.utc_us) else {
                continue;
            };
            let sequence = &config.sequences[due.sequence];
            if let Some(missed) = due.missed {
                record_missed(store, &sequence.name, missed, last_run.as_ref(), now);
            }
            tracing::info!(sequence = %sequence.name, slot = %rfc3339(due.slot_us), "slot due");
            Job {
                sequence,
                trigger: Trigger::Schedule,
                operator: None,
                ticket: None,
            }
        };
        let sequence = job.sequence;
        if let Some(hub) = hub {
            steer::refresh(hub, config, &schedule, store, steer::disk_free(config));
        }
        watch.status(&status(
            config,
            &schedule,
            &supervisor,
            Some(&sequence.name),
            &*clock,
        ));
        let mut runner = Runner {
            config,
            store: &mut *store,
            clock: clock.clone(),
            supervisor: &mut supervisor,
        };
        let mut observe = steer::HubObserver {
            inner: &mut *observer,
            hub,
            ticket: job.ticket,
            trigger: job.trigger.as_str(),
            operator: job.operator.clone(),
            official: sequence.official,
            run_id: None,
            now: &*clock,
        };
        // Each run has its own stop: an abort ends the run, not the daemon (see steer_while).
        let (abort, run_stop) = Stop::channel();
        let run = watch.during(runner.run(
            sequence,
            job.trigger,
            job.operator.as_deref(),
            &mut observe,
            &run_stop,
        ));
        let result = steer_while(
            run,
            stop,
            &abort,
            &mut requests,
            config,
            &mut queue,
            hub,
            &mut refused,
            &mut desk,
        )
        .await;
        let completed = match &result {
            Ok(o) if o.status == crate::store::RunStatus::Completed => {
                o.seq_range.map(|range| (o.run_id, range))
            }
            _ => None,
        };
        // Before the run's end is published: whoever waits for it then finds its statistics.
        if let (Some(hub), Some((run_id, range))) = (hub, completed) {
            steer::note_statistics(hub, store, run_id, range);
        }
        let (run_id, failed) =
            log_run_end(&sequence.name, result, hub, job.ticket, clock.now().utc_us);
        if let Some(hub) = hub {
            // An official run's admission records custody events (`gate_opened`,
            // `official_skipped`): shown now rather than at the next tick.
            let record = custody::read_custody(store, config);
            custody::refresh_custody(hub, config, record.as_ref(), clock.now().utc_us);
        }
        store_alerts(store, alerts.run_ended(failed, &sequence.name, clock.now()));
        last_run = Some(LastRun {
            sequence: sequence.name.clone(),
            run_id,
            ended_us: clock.now().utc_us,
        });
        watch.status(&status(config, &schedule, &supervisor, None, &*clock));
    }
    watch.notifier.stopping();
    store_events(store, &mut supervisor, hub);
    steer::store_refusals(store, &mut refused, clock.now());
    // Runs still queued are not run: say so to anyone waiting for them.
    while let Some(queued) = queue.pop() {
        tracing::warn!(ticket = queued.ticket, sequence = %queued.sequence, "queued run dropped: the daemon is stopping");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The next request from the API; never, without an API.
async fn next_news(uploader: &mut Option<upload::Uploader>) -> Option<upload::News> {
    match uploader {
        Some(u) => u.news.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_request(requests: &mut Option<mpsc::Receiver<Request>>) -> Option<Request> {
    match requests {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Drives a run to its end while answering the API: starts asked for meanwhile are queued behind
/// it, refusals kept for the store until the run lets go of it, custody actions applied at once
/// on the desk's own connection.
#[allow(clippy::too_many_arguments)]
async fn steer_while<F: std::future::Future<Output = Result<RunOutcome, SequenceError>>>(
    run: F,
    stop: &Stop,
    abort: &StopHandle,
    requests: &mut Option<mpsc::Receiver<Request>>,
    config: &Config,
    queue: &mut steer::Queue,
    hub: Option<&Hub>,
    refused: &mut Vec<ControlRefused>,
    desk: &mut custody::Desk,
) -> Result<RunOutcome, SequenceError> {
    tokio::pin!(run);
    // The run has a stop of its own, so an abort ends this run and not the daemon; the daemon's
    // stops are passed on to it as they come.
    let (mut passed, mut passed_urgent) = (false, false);
    loop {
        tokio::select! {
            result = &mut run => return result,
            Some(request) = next_request(requests) => {
                steer::handle(request, config, queue, hub, Some(abort), refused, desk);
            }
            () = stop.until_requested(), if !passed => {
                passed = true;
                if let Some(r) = stop.request() {
                    abort.request(r.urgency, r.signal);
                }
            }
            () = stop.until_urgent(), if !passed_urgent => {
                passed_urgent = true;
                abort.request(Urgency::Now, stop.request().and_then(|r| r.signal));
            }
        }
    }
}

/// Stores alerts' events; a failure is logged (the alert itself went out, or was logged).
fn store_alerts(store: &mut Store, events: Vec<NewEvent>) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.append_events(&events) {
        tracing::error!(error = %report(&e), lost = events.len(), "could not store alert events");
    }
}

/// Logs how a run ended (at `at_us`) and tells the API's subscribers; returns its id when it had
/// one, and whether it failed.
fn log_run_end(
    sequence: &str,
    result: Result<RunOutcome, SequenceError>,
    hub: Option<&Hub>,
    ticket: Option<u64>,
    at_us: i64,
) -> (Option<u64>, bool) {
    match result {
        Ok(outcome) => {
            tracing::info!(
                run_id = outcome.run_id,
                sequence,
                readings = outcome.readings,
                status = outcome.status.as_str(),
                "run ended"
            );
            if let Some(hub) = hub {
                steer::run_ended(
                    hub,
                    ticket,
                    outcome.run_id,
                    outcome.status.as_str(),
                    outcome.readings,
                    None,
                    at_us,
                );
            }
            (Some(outcome.run_id), false)
        }
        Err(e) => {
            let run = match &e {
                SequenceError::RunFailed {
                    run_id, readings, ..
                } => Some((*run_id, *readings)),
                _ => None,
            };
            match run {
                Some(_) => {
                    tracing::error!(sequence, error = %report(&e), "run failed; next attempt at the next slot")
                }
                None => {
                    tracing::error!(sequence, error = %report(&e), "run could not start; next attempt at the next slot")
                }
            }
            if let Some(hub) = hub {
                let (run_id, readings) = run.unwrap_or((0, 0));
                steer::run_ended(
                    hub,
                    ticket,
                    run_id,
                    "failed",
                    readings,
                    Some(report(&e)),
                    at_us,
                );
            }
            (run.map(|(id, _)| id), true)
        }
    }
}

/// The `STATUS=` text for systemd: instruments online by the supervisor's state, the run in
/// progress, and each scheduled sequence's next slot.
fn status(
    config: &Config,
    schedule: &Schedule,
    supervisor: &Supervisor,
    running: Option<&str>,
    clock: &dyn Clock,
) -> String {
    let online = config
        .instruments
        .iter()
        .filter(|i| supervisor.is_online(&i.name))
        .count();
    let next: Vec<(&str, i64)> = schedule
        .slots()
        .filter_map(|(index, slot)| Some((config.sequences.get(index)?.name.as_str(), slot)))
        .collect();
    notify::status_text(
        online,
        config.instruments.len(),
        running,
        &next,
        clock.now().utc_us,
    )
}

/// Feeds systemd's watchdog while the daemon's own task makes progress, and says `STOPPING=1`
/// as soon as a stop is asked for (a run may take a while to reach the end of its reading).
///
/// The pings come only from [`Watch::during`], which the scheduling loop wraps around each of
/// its waits, ticks and runs: they run on the one thread that also commits the readings, so a
/// blocked thread (a commit stuck on a dead disk, a busy loop) stops them and systemd restarts
/// the service. A long run is not a stuck one, hence pings during runs too.
struct Watch<'a> {
    notifier: &'a mut Notifier,
    stop: &'a Stop,
    /// When the next ping is due; `None` without a watchdog.
    next_ping: Option<Instant>,
}

impl<'a> Watch<'a> {
    fn new(notifier: &'a mut Notifier, stop: &'a Stop) -> Self {
        // First ping at once: readiness and the watchdog's first deadline start together.
        let next_ping = notifier.watchdog_interval().map(|_| Instant::now());
        Self {
            notifier,
            stop,
            next_ping,
        }
    }

    /// Runs `work` to its end, pinging the watchdog on time and announcing a stop meanwhile.
    async fn during<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        loop {
            let next_ping = self.next_ping;
            let ping = async move {
                match next_ping {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let stop = self.stop;
            let announced = self.notifier.is_stopping();
            tokio::select! {
                out = &mut work => return out,
                () = ping => {
                    self.notifier.watchdog();
                    self.next_ping = self.notifier.watchdog_interval().map(|i| Instant::now() + i);
                }
                () = stop.until_requested(), if !announced => self.notifier.stopping(),
            }
        }
    }

    fn status(&mut self, text: &str) {
        self.notifier.status(text);
    }
}

/// What is wrong with the signing key `[signing] key` names, if anything: bundles cannot be
/// sealed without it, which is better known at start than at the first seal.
pub fn signing_key_problem(config: &Config) -> Option<String> {
    let key = &config.signing.key;
    let keygen = "make it with `tsagent keygen --config <this config>`";
    match std::fs::metadata(key) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some(format!(
            "signing key `{}` is not a regular file: bundles cannot be sealed",
            key.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "signing key `{}` is missing: bundles cannot be sealed until it exists; {keygen}",
            key.display()
        )),
        Err(e) => Some(format!(
            "signing key `{}` cannot be read ({e}): bundles cannot be sealed",
            key.display()
        )),
    }
}

/// Opens every adapter and instrument, logging each one's identity or why it is absent; the
/// absent ones stay offline and are retried by the supervisor's ticks.
async fn connect_at_start(
    config: &Config,
    supervisor: &mut Supervisor,
    clock: &dyn Clock,
    hub: Option<&Hub>,
) {
    for (adapter, opened) in supervisor.open_adapters(clock).await {
        match opened {
            Ok(()) => tracing::info!(%adapter, "GPIB adapter open"),
            Err(e) => {
                tracing::warn!(%adapter, error = %report(&e), "GPIB adapter absent at start; retrying in the background, with its instruments");
            }
        }
    }
    let mut absent = Vec::new();
    for (name, found) in supervisor.connect_all(&config.instruments, clock).await {
        if let Some(hub) = hub {
            steer::set_instrument(
                hub,
                &name,
                found.is_ok(),
                found.as_ref().ok(),
                clock.now().utc_us,
            );
        }
        match found {
            Ok(id) => tracing::info!(
                instrument = %name,
                manufacturer = %id.manufacturer,
                model = %id.model,
                serial = %id.serial,
                firmware = %id.firmware,
                "instrument ready"
            ),
            Err(e) => {
                tracing::warn!(instrument = %name, error = %report(&e), "instrument absent at start; retrying in the background");
                absent.push(name);
            }
        }
    }
    if !absent.is_empty() {
        tracing::warn!(
            absent = %absent.join(", "),
            "{} of {} instrument(s) absent at start",
            absent.len(),
            config.instruments.len()
        );
    }
}

/// Records slots of `sequence` that passed without their run.
fn record_missed(
    store: &mut Store,
    sequence: &str,
    missed: Missed,
    last_run: Option<&LastRun>,
    now: crate::clock::Timestamp,
) {
    let reason = match last_run {
        Some(run) if missed.first_us <= run.ended_us => match run.run_id {
            Some(id) => format!("run {id} of `{}` was still going", run.sequence),
            None => format!("an attempt to run `{}` was still going", run.sequence),
        },
        _ => {
            "the wall clock moved past it while the agent waited (clock step or suspend)".to_owned()
        }
    };
    let slot_utc = rfc3339(missed.first_us);
    tracing::warn!(sequence, slot = %slot_utc, slots = missed.slots, %reason, "slot missed");
    let event = NewEvent::new(
        now,
        Event::SlotMissed(SlotMissed {
            sequence: sequence.to_owned(),
            slot_utc,
            slots: missed.slots,
            reason,
        }),
    );
    if let Err(e) = store.append_events(&[event]) {
        tracing::error!(error = %report(&e), "could not store a missed slot");
    }
}

/// Stores the supervisor's state changes; a storage failure is logged (the next run will meet it
/// too and fail visibly).
fn store_events(store: &mut Store, supervisor: &mut Supervisor, hub: Option<&Hub>) {
    let events = supervisor.take_events();
    if let Some(hub) = hub {
        steer::note_events(hub, &events);
    }
    if let Err(e) = store.append_events(&events) {
        tracing::error!(error = %report(&e), lost = events.len(), "could not store instrument events");
    }
}
