//! The daemon's uploader: a task beside the schedule that sends sealed bundles to the coordinator
//! (`crate::upload`) and a heartbeat of the chain head every `[upload] heartbeat`. It has its own
//! connection to the log, so a slow coordinator never delays a reading; what it learns goes back
//! to the schedule's loop as [`News`] (the status, the live events and the alerts are the loop's).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::report;
use crate::store::Store;
use crate::upload::{self, Beat, Facts, Step, Target};

/// What the uploader tells the schedule's loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    /// A bundle was accepted.
    Sent {
        /// The bundle.
        name: String,
        /// Its log index.
        log_index: u64,
    },
    /// A bundle was refused for good, or the coordinator's log misbehaved: the queue holds.
    Held {
        /// The bundle.
        name: String,
        /// Why.
        error: String,
        /// The alert kind.
        alert: &'static str,
    },
    /// A heartbeat was refused, or its receipt did not hold.
    HeartbeatRefused {
        /// Why.
        error: String,
        /// The alert kind.
        alert: &'static str,
    },
}

/// The handle the schedule's loop keeps.
pub struct Uploader {
    /// Wakes the task (after a seal, or when a held queue is released).
    pub wake: Arc<Notify>,
    /// What heartbeats say besides the chain head; the loop keeps it current.
    pub facts: Arc<Mutex<Facts>>,
    /// News from the task.
    pub news: mpsc::UnboundedReceiver<News>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Uploader {
    fn drop(&mut self) {
        // Between two exchanges nothing is half-done: an attempt in flight is retried next time
        // with the same bytes and key.
        self.task.abort();
    }
}

/// Starts the uploader if `[upload]` is configured; a problem with it is logged and uploads stay
/// off (the readings are safe in the log and go once it is fixed).
pub fn start(config: &Config, clock: Arc<dyn Clock>) -> Option<Uploader> {
    let target = match upload::target(config) {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %report(&e), "uploads are off: [upload] cannot be used");
            return None;
        }
    };
    let store = match Store::open_existing(&config.storage.db) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %report(&e), "uploads are off: cannot open the log");
            return None;
        }
    };
    let wake = Arc::new(Notify::new());
    let facts = Arc::new(Mutex::new(Facts::default()));
    let (tx, news) = mpsc::unbounded_channel();
    let heartbeat = config.upload.as_ref().map(|u| u.heartbeat);
    let task = tokio::spawn(run(
        Task {
            config: config.clone(),
            target,
            store,
            clock,
            wake: wake.clone(),
            facts: facts.clone(),
            tx,
        },
        heartbeat.unwrap_or(Duration::from_secs(900)),
    ));
    Some(Uploader {
        wake,
        facts,
        news,
        task,
    })
}

struct Task {
    config: Config,
    target: Target,
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    facts: Arc<Mutex<Facts>>,
    tx: mpsc::UnboundedSender<News>,
}

/// How long to wait for a retry time `at_utc_us`, from now.
fn until(at_utc_us: i64, now_us: i64) -> Duration {
    Duration::from_micros(u64::try_from(at_utc_us.saturating_sub(now_us)).unwrap_or(0))
}

async fn run(mut t: Task, heartbeat: Duration) {
    // The first heartbeat goes at once: the coordinator learns the head as the daemon starts.
    let mut next_beat = Instant::now();
    loop {
        let now = t.clock.now();
        let wait = match upload::step(&mut t.store, &t.target, now).await {
            Ok(Step::Sent {
                name, log_index, ..
            }) => {
                tracing::info!(bundle = %name, log_index, "bundle delivered; receipt verified");
                let _ = t.tx.send(News::Sent { name, log_index });
                Some(Duration::ZERO)
            }
            Ok(Step::Retry {
                name,
                error,
                at_utc_us,
            }) => {
                tracing::warn!(bundle = %name, error = %error, "bundle not delivered; retrying later");
                Some(until(at_utc_us, now.utc_us))
            }
            Ok(Step::Held { name, error, alert }) => {
                tracing::error!(bundle = %name, error = %error, "bundle refused: the queue holds until `tsagent upload --retry`");
                let _ = t.tx.send(News::Held { name, error, alert });
                None
            }
            Ok(Step::Waiting {
                until_utc_us: Some(at),
                ..
            }) => Some(until(at, now.utc_us)),
            Ok(Step::Waiting {
                until_utc_us: None, ..
            })
            | Ok(Step::Idle) => None,
            Err(e) => {
                tracing::error!(error = %report(&e), "the uploader cannot read the log; trying again in a minute");
                Some(Duration::from_secs(60))
            }
        };
        if wait == Some(Duration::ZERO) {
            continue;
        }
        if Instant::now() >= next_beat {
            beat(&mut t).await;
            next_beat = Instant::now() + heartbeat;
        }
        let sleep_until = match wait {
            Some(w) => (Instant::now() + w).min(next_beat),
            None => next_beat,
        };
        tokio::select! {
            () = tokio::time::sleep_until(sleep_until) => {}
            () = t.wake.notified() => {}
        }
    }
}

async fn beat(t: &mut Task) {
    let key = match crate::sealing::recorded_key(&t.config, &t.store) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %report(&e), "no heartbeat: the signing key cannot be used");
            return;
        }
    };
    let facts = t.facts.lock().map(|f| f.clone()).unwrap_or_default();
    let now = t.clock.now();
    match upload::heartbeat(&mut t.store, &t.target, &key, &facts, now).await {
        Ok(Beat::Logged { seq, log_index }) => {
            tracing::debug!(seq, log_index, "heartbeat logged");
        }
        Ok(Beat::Failed(error)) => tracing::warn!(error = %error, "heartbeat not delivered"),
        Ok(Beat::Refused { error, alert }) => {
            tracing::error!(error = %error, "heartbeat refused");
            let _ = t.tx.send(News::HeartbeatRefused { error, alert });
        }
        Err(e) => tracing::error!(error = %report(&e), "heartbeat: cannot read the log"),
    }
}
