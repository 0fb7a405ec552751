//! The daemon's side of the control API: the queue of runs asked for, the status snapshot and the
//! live events it keeps up to date. The loop in `mod.rs` owns all of it; the API only reads the
//! snapshot and sends requests.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tsagent_bundle::event::{ControlRefused, Event};

use crate::clock::{Timestamp, rfc3339};
use crate::config::Config;
use crate::control::{
    Hub, InstrumentStatus, LastReading, LiveEvent, NextSlot, Queued, QueuedRun, RECENT_RUNS,
    Request, RequestError, RunLine, RunProgress, SERIES_POINTS, SERIES_SPAN_US, SealSummary,
    Status,
};
use crate::error::report;
use crate::sequence::{Observer, ReadingReport};
use crate::session::Identity;
use crate::store::{NewEvent, Store};

use super::Schedule;
use super::custody::{Desk, custody_status, read_custody};

/// The control API as the daemon's loop holds it.
pub struct Control {
    /// Status and live events, shared with the API.
    pub hub: Arc<Hub>,
    /// Requests from the API.
    pub requests: mpsc::Receiver<Request>,
}

/// Runs asked for through the API, waiting their turn.
#[derive(Default)]
pub(super) struct Queue {
    waiting: VecDeque<QueuedRun>,
    next_ticket: u64,
    /// Seal requests, answered when no run holds the store.
    pub(super) seals: Vec<oneshot::Sender<Result<SealSummary, String>>>,
}

impl Queue {
    /// The run to start next, if one waits.
    pub(super) fn pop(&mut self) -> Option<QueuedRun> {
        self.waiting.pop_front()
    }

    fn push(&mut self, sequence: String, operator: String) -> QueuedRun {
        self.next_ticket += 1;
        let queued = QueuedRun {
            ticket: self.next_ticket,
            sequence,
            operator,
        };
        self.waiting.push_back(queued.clone());
        queued
    }
}

/// Answers one request. `abort` is the run in progress's stop, when one is (it is ahead of a new
/// run, and the one an abort stops).
/// Refusals are returned for the caller to store when the store is free. Custody actions are
/// applied at once, on the desk's own connection, even during a run.
pub(super) fn handle(
    request: Request,
    config: &Config,
    queue: &mut Queue,
    hub: Option<&Hub>,
    abort: Option<&crate::sequence::StopHandle>,
    refused: &mut Vec<ControlRefused>,
    desk: &mut Desk,
) {
    let running = abort.is_some();
    match request {
        Request::Start { start, reply } => {
            let answer = if config.sequences.iter().any(|s| s.name == start.sequence) {
                let queued = queue.push(start.sequence, start.operator);
                tracing::info!(ticket = queued.ticket, sequence = %queued.sequence, operator = %queued.operator, "run queued through the control API");
                if let Some(hub) = hub {
                    hub.status().queue = queue.waiting.iter().cloned().collect();
                    hub.publish(LiveEvent::Queued {
                        ticket: queued.ticket,
                        sequence: queued.sequence.clone(),
                        operator: queued.operator.clone(),
                    });
                }
                Ok(Queued {
                    ticket: queued.ticket,
                    ahead: queue.waiting.len() - 1 + usize::from(running),
                })
            } else {
                Err(RequestError::UnknownSequence(start.sequence))
            };
            // The client may have gone; the run stays queued.
            let _ = reply.send(answer);
        }
        Request::Seal { reply } => queue.seals.push(reply),
        Request::Abort { run, reply } => {
            let current = hub.and_then(|h| h.status().run.as_ref().map(|r| r.run_id));
            let answer = match (current, abort) {
                (Some(current), Some(handle)) => match run {
                    Some(asked) if asked != current => {
                        Err(RequestError::NotCurrent { asked, current })
                    }
                    _ => {
                        tracing::warn!(run_id = current, "run aborted through the control API");
                        handle.abort();
                        Ok(current)
                    }
                },
                _ => Err(RequestError::NoRun),
            };
            let _ = reply.send(answer);
        }
        Request::Refused { uid, gid, pid } => refused.push(ControlRefused { uid, gid, pid }),
        Request::Custody { action, reply } => {
            // The client may have gone; what was recorded stays recorded.
            let _ = reply.send(desk.act(config, hub, &action));
        }
        Request::CustodyReport { reply } => {
            let _ = reply.send(desk.report(config, hub));
        }
    }
}

/// Stores refused connections as events.
pub(super) fn store_refusals(store: &mut Store, refused: &mut Vec<ControlRefused>, at: Timestamp) {
    if refused.is_empty() {
        return;
    }
    let events: Vec<NewEvent> = refused
        .drain(..)
        .map(|r| NewEvent::new(at, Event::ControlRefused(r)))
        .collect();
    if let Err(e) = store.append_events(&events) {
        tracing::error!(error = %report(&e), lost = events.len(), "could not store refused control connections");
    }
}

/// The status before anything happened: every instrument unknown, custody as the log has it
/// (its next deadline comes with the daemon's first custody refresh, on the daemon's clock).
pub fn initial_status(config: &Config, store: &Store) -> Status {
    Status {
        custody: read_custody(store, config)
            .as_ref()
            .map(|record| custody_status(config, record, None)),
        lab: config.lab.id.clone(),
        pid: std::process::id(),
        instruments: config
            .instruments
            .iter()
            .map(|i| InstrumentStatus {
                name: i.name.clone(),
                state: "unknown".into(),
                identity: None,
                offline_since: None,
                last_reading: None,
            })
            .collect(),
        ..Status::default()
    }
}

/// The name of an instrument's series in one unit, as the status page titles its plot.
fn series_name(instrument: &str, unit: &str) -> String {
    format!("{instrument} ({unit})")
}

/// Fills the hub from the log at start: the recent runs, and each series with its last day, bounded
/// as the live series are, so the page's plots do not begin empty at every restart. The store is
/// read, never written; a failure leaves that part empty (the live readings still fill it) and is
/// logged.
pub(super) fn load_history(hub: &Hub, store: &Store, now_us: i64) {
    match store.recent_runs(RECENT_RUNS) {
        Ok(runs) => {
            hub.status().runs = runs
                .into_iter()
                .map(|r| RunLine {
                    run_id: r.id,
                    sequence: r.sequence,
                    operator: r.operator,
                    trigger: r.trigger,
                    status: r.status.as_str().to_owned(),
                    started_utc: rfc3339(r.started_utc_us),
                    ended_utc: r.ended_utc_us.map(rfc3339),
                    readings: r.readings,
                    official: r.official,
                })
                .collect();
        }
        Err(e) => tracing::warn!(error = %report(&e), "recent runs could not be read for status"),
    }
    // Newest first from the store, so each series keeps its newest points when it has more
    // than it may hold; plotted oldest first, as the live points come.
    let mut series: std::collections::BTreeMap<String, Vec<(i64, f64)>> =
        std::collections::BTreeMap::new();
    let read = store.visit_recent_values(now_us - SERIES_SPAN_US, |instrument, unit, t, v| {
        let points = series.entry(series_name(instrument, unit)).or_default();
        if points.len() < SERIES_POINTS {
            points.push((t, v));
        }
    });
    if let Err(e) = read {
        tracing::warn!(error = %report(&e), "the last day of readings could not be read for the status page");
    }
    for (name, points) in &series {
        for (t, v) in points.iter().rev() {
            hub.plot(name, *t, *v);
        }
    }
    let runs = hub.status().runs.len();
    let points: usize = series.values().map(Vec::len).sum();
    tracing::info!(
        runs,
        series = series.len(),
        points,
        "status history loaded from the log"
    );
}

/// Notes an instrument's state in the snapshot and tells subscribers if it changed.
pub(super) fn set_instrument(
    hub: &Hub,
    name: &str,
    online: bool,
    identity: Option<&Identity>,
    at_us: i64,
) {
    let state = if online { "online" } else { "offline" };
    let changed = {
        let mut status = hub.status();
        let Some(i) = status.instruments.iter_mut().find(|i| i.name == name) else {
            return;
        };
        if let Some(id) = identity {
            i.identity = Some(format!(
                "{}, {}, {}, {}",
                id.manufacturer, id.model, id.serial, id.firmware
            ));
        }
        let changed = i.state != state;
        if changed {
            i.offline_since = (!online).then(|| rfc3339(at_us));
            i.state = state.into();
        }
        changed
    };
    if changed {
        hub.publish(LiveEvent::Instrument {
            name: name.to_owned(),
            state: state.into(),
        });
    }
}

/// Notes instrument state changes found among the supervisor's events.
pub(super) fn note_events(hub: &Hub, events: &[NewEvent]) {
    for e in events {
        let (name, online) = match &e.event {
            Event::InstrumentOffline(d) => (&d.instrument, false),
            Event::InstrumentOnline(d) => (&d.instrument, true),
            _ => continue,
        };
        set_instrument(hub, name, online, None, e.at.utc_us);
    }
}

/// Refreshes what changes between runs: the next slots, free disk, bundles not sent.
pub(super) fn refresh(
    hub: &Hub,
    config: &Config,
    schedule: &Schedule,
    store: &Store,
    disk_free_bytes: Option<u64>,
) {
    let next_slots = schedule
        .slots()
        .filter_map(|(index, slot)| {
            config.sequences.get(index).map(|s| NextSlot {
                sequence: s.name.clone(),
                utc: rfc3339(slot),
            })
        })
        .collect();
    // Counted, not read: a bundle's row holds its archive.
    let bundles = store.undelivered().unwrap_or(0);
    let mut status = hub.status();
    status.next_slots = next_slots;
    status.disk_free_bytes = disk_free_bytes;
    status.bundles_not_sent = bundles;
}

/// Free bytes for the database's folder.
pub(super) fn disk_free(config: &Config) -> Option<u64> {
    let folder = config
        .storage
        .db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    nix::sys::statvfs::statvfs(folder)
        .ok()
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
}

/// Passes a run's progress to the log observer and to the hub.
pub(super) struct HubObserver<'a> {
    /// The daemon's own observer (the log).
    pub inner: &'a mut dyn Observer,
    /// Where the progress goes.
    pub hub: Option<&'a Hub>,
    /// The request's ticket, for a run asked for through the API.
    pub ticket: Option<u64>,
    /// `manual` or `schedule`.
    pub trigger: &'static str,
    /// Who asked for it.
    pub operator: Option<String>,
    /// Whether it is an official run (its sequence's `official`; a refused one never starts).
    pub official: bool,
    /// The run, once started.
    pub run_id: Option<u64>,
    /// The clock's now for each reading's time in status.
    pub now: &'a dyn crate::clock::Clock,
}

impl Observer for HubObserver<'_> {
    fn started(&mut self, run_id: u64, sequence: &str, total: u64) {
        self.inner.started(run_id, sequence, total);
        self.run_id = Some(run_id);
        if let Some(hub) = self.hub {
            {
                let mut status = hub.status();
                status.run = Some(RunProgress {
                    run_id,
                    ticket: self.ticket,
                    sequence: sequence.to_owned(),
                    trigger: self.trigger.to_owned(),
                    operator: self.operator.clone(),
                    done: 0,
                    total,
                });
                status.runs.insert(
                    0,
                    RunLine {
                        run_id,
                        sequence: sequence.to_owned(),
                        operator: self.operator.clone(),
                        trigger: self.trigger.to_owned(),
                        status: "running".into(),
                        started_utc: rfc3339(self.now.now().utc_us),
                        ended_utc: None,
                        readings: 0,
                        official: self.official,
                    },
                );
                status.runs.truncate(RECENT_RUNS);
            }
            // After the snapshot: a page that reloads its runs on this event finds the run.
            hub.publish(LiveEvent::RunStarted {
                run_id,
                ticket: self.ticket,
                sequence: sequence.to_owned(),
                total,
            });
        }
    }

    fn identified(&mut self, instrument: &str, identity: &Identity) {
        self.inner.identified(instrument, identity);
        if let Some(hub) = self.hub {
            set_instrument(hub, instrument, true, Some(identity), self.now.now().utc_us);
        }
    }

    fn reading(&mut self, report: &ReadingReport<'_>) {
        self.inner.reading(report);
        let Some(hub) = self.hub else {
            return;
        };
        let run_id = self.run_id.unwrap_or(0);
        let utc_us = self.now.now().utc_us;
        {
            let mut status = hub.status();
            if let Some(run) = status.run.as_mut() {
                run.done = report.done;
                run.total = report.total;
            }
            if let Some(line) = status.runs.iter_mut().find(|r| r.run_id == run_id) {
                line.readings = report.done;
            }
            if let Some(i) = status
                .instruments
                .iter_mut()
                .find(|i| i.name == report.instrument)
            {
                i.last_reading = Some(LastReading {
                    seq: report.seq,
                    raw: report.raw.to_owned(),
                    unit: report.unit.to_owned(),
                    utc: rfc3339(utc_us),
                });
            }
        }
        if let Some(value) = report.measurement.value() {
            hub.plot(&series_name(report.instrument, report.unit), utc_us, value);
        }
        hub.publish(LiveEvent::Reading {
            run_id,
            instrument: report.instrument.to_owned(),
            seq: report.seq,
            done: report.done,
            total: report.total,
            raw: report.raw.to_owned(),
            measurement: report.measurement,
            unit: report.unit.to_owned(),
            utc_us,
        });
    }
}

/// Clears the run in progress, notes its end in the recent runs (at `at_us`) and tells
/// subscribers how it ended. `run_id` 0 is a run that never began: nothing to note.
pub(super) fn run_ended(
    hub: &Hub,
    ticket: Option<u64>,
    run_id: u64,
    status: &str,
    readings: u64,
    message: Option<String>,
    at_us: i64,
) {
    {
        let mut snapshot = hub.status();
        snapshot.run = None;
        if let Some(line) = snapshot.runs.iter_mut().find(|r| r.run_id == run_id) {
            status.clone_into(&mut line.status);
            line.ended_utc = Some(rfc3339(at_us));
            line.readings = readings;
        }
    }
    hub.publish(LiveEvent::RunEnded {
        run_id,
        ticket,
        status: status.to_owned(),
        readings,
        message,
    });
}

/// States the statistics of a completed run's series in status: `run_id`'s readings within
/// `range`. A failure to read them leaves the previous run's in place and is logged.
pub(super) fn note_statistics(hub: &Hub, store: &Store, run_id: u64, range: (u64, u64)) {
    match store.run_readings(run_id, range) {
        Ok(rows) => {
            hub.status().statistics = crate::analysis::series::series(&rows)
                .iter()
                .filter_map(|s| crate::control::SeriesStatistics::of(run_id, s))
                .collect();
        }
        Err(e) => {
            tracing::warn!(run_id, error = %report(&e), "the run's readings could not be read for status");
        }
    }
}

/// Seals the runs that have ended (the daemon's `[sealing] every`, or `POST /v1/seal`), logs what
/// it made and tells subscribers. The store is free: no run is in progress.
pub(super) fn seal(
    config: &Config,
    store: &mut Store,
    clock: &dyn crate::clock::Clock,
    hub: Option<&Hub>,
) -> Result<SealSummary, String> {
    match crate::sealing::seal_pending(config, store, &config.storage.bundles, clock) {
        Ok(report) => {
            let bundles: Vec<String> = report
                .sealed
                .iter()
                .filter_map(|b| b.path.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            tracing::info!(bundles = bundles.len(), names = %bundles.join(", "), waiting_for_run = ?report.waiting_for_run, "sealed");
            if let Some(hub) = hub
                && !bundles.is_empty()
            {
                hub.publish(LiveEvent::Sealed {
                    bundles: bundles.clone(),
                });
            }
            Ok(SealSummary {
                bundles,
                waiting_for_run: report.waiting_for_run,
            })
        }
        Err(e) => {
            let reason = report(&e);
            tracing::error!(error = %reason, "sealing failed; the readings wait for the next seal");
            Err(reason)
        }
    }
}
