//! `tsagent run`: the unattended agent. Runs each scheduled sequence on its period until asked to
//! stop, then stops after the reading in progress.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::report;
use crate::sequence::{Observer, Runner, SequenceError};
use crate::store::{Store, StoreError, Trigger};
use crate::supervisor::{Supervisor, TICK};

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
}

struct Slot {
    sequence: usize,
    every: Duration,
    due: Instant,
}

/// Runs the schedule until `stop` becomes true. Sequences run one at a time (they share
/// instruments); a run that fails is logged and the schedule goes on — the next slot is the retry.
pub async fn run(
    config: &Config,
    store: &mut Store,
    clock: Arc<dyn Clock>,
    observer: &mut dyn Observer,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let recovered =
        crate::sequence::recover_interrupted(store, &*clock).map_err(DaemonError::Recover)?;
    for run_id in &recovered {
        tracing::warn!(
            run_id,
            "run was left running by a previous process; marked interrupted"
        );
    }

    let start = Instant::now();
    let mut slots: Vec<Slot> = config
        .sequences
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.every.map(|every| Slot {
                sequence: i,
                every,
                due: start,
            })
        })
        .collect();
    if slots.is_empty() {
        return Err(DaemonError::NothingScheduled {
            origin: config.origin.clone(),
        });
    }
    for slot in &slots {
        let s = &config.sequences[slot.sequence];
        tracing::info!(sequence = %s.name, every = %humantime::format_duration(slot.every), "scheduled");
    }

    let mut supervisor = Supervisor::new(config);
    supervisor.connect_all(&config.instruments, &*clock).await;
    store_events(store, &mut supervisor);
    let mut stop_wait = stop.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        // Earliest due slot; ties go to the sequence listed first.
        let Some(next) = slots.iter_mut().min_by_key(|s| (s.due, s.sequence)) else {
            break;
        };
        let due = next.due;
        // Between runs, supervise the instruments every tick: a vanished port is noticed within
        // a tick, a returned one reconnected within a tick of its backoff.
        let wake = due.min(Instant::now() + TICK);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            changed = stop_wait.changed() => {
                if changed.is_err() || *stop_wait.borrow() {
                    break;
                }
                continue;
            }
        }
        if Instant::now() < due {
            supervisor.tick(&config.instruments, &*clock).await;
            store_events(store, &mut supervisor);
            continue;
        }
        let sequence = &config.sequences[next.sequence];
        // Missed slots (a run longer than its period) are skipped, not run back to back.
        let now = Instant::now();
        while next.due <= now {
            next.due += next.every;
        }
        let mut runner = Runner {
            config,
            store: &mut *store,
            clock: clock.clone(),
            supervisor: &mut supervisor,
        };
        match runner
            .run(sequence, Trigger::Schedule, None, observer, &stop)
            .await
        {
            Ok(outcome) => tracing::info!(
                run_id = outcome.run_id,
                sequence = %sequence.name,
                readings = outcome.readings,
                status = outcome.status.as_str(),
                "run ended"
            ),
            Err(e @ SequenceError::RunFailed { .. }) => {
                tracing::error!(sequence = %sequence.name, error = %report(&e), "run failed; next attempt at the next slot");
            }
            Err(e) => {
                tracing::error!(sequence = %sequence.name, error = %report(&e), "run could not start; next attempt at the next slot");
            }
        }
    }
    store_events(store, &mut supervisor);
    tracing::info!("stopped");
    Ok(())
}

/// Stores the supervisor's state changes; a storage failure is logged (the next run will meet it
/// too and fail visibly).
fn store_events(store: &mut Store, supervisor: &mut Supervisor) {
    let events = supervisor.take_events();
    if let Err(e) = store.append_events(&events) {
        tracing::error!(error = %report(&e), lost = events.len(), "could not store instrument events");
    }
}
