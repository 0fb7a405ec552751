//! Custody through the control API: the daemon, which owns the lab's database while it runs,
//! records the custody actions asked for on its socket (`POST /v1/custody/…`) and answers the
//! custody report (`GET /v1/custody`), with the same `crate::custody` functions `tsagent
//! custody` uses when no daemon runs; then it tells the API's subscribers and updates the status.

use std::sync::Arc;

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::control::{CustodyLine, CustodyRefusal, CustodyStatus, Hub, LiveEvent};
use crate::custody::{self, ActionRequest, Custody, Recorded, Report};
use crate::error::report;
use crate::store::{EventRow, Store, StoreError};

/// The custody record as the log has it: the state folded from its events, and the events.
pub(super) type CustodyRecord = (Custody, Vec<EventRow>);

/// The daemon's own second connection to the lab's database, for custody actions.
///
/// A connection of its own because during a run the runner holds the daemon's store, and an
/// operator receiving the standard must not wait for a long run to end. It is used on the loop's
/// thread between the runner's awaits, where no transaction of the runner is open: an action
/// never waits for a lock, and a run waits at most for one small commit.
pub(super) struct Desk {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl Desk {
    /// Opens the desk's connection to the config's database.
    pub(super) fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<Desk, StoreError> {
        Ok(Desk {
            store: Store::open(&config.storage.db)?,
            clock,
        })
    }

    /// Applies a custody action now; the status and the live events follow it.
    pub(super) fn act(
        &mut self,
        config: &Config,
        hub: Option<&Hub>,
        action: &ActionRequest,
    ) -> Result<Recorded, CustodyRefusal> {
        let now = self.clock.now();
        let result = custody::apply(&mut self.store, config, now, action);
        match &result {
            Ok(r) => tracing::info!(
                action = action.name(),
                event = %r.event,
                state = %r.state,
                "custody action recorded through the control API"
            ),
            Err(e) => tracing::warn!(
                action = action.name(),
                error = %report(e),
                "custody action refused"
            ),
        }
        self.publish(config, hub, now.utc_us);
        result.map_err(|e| CustodyRefusal::of(&e))
    }

    /// The custody report now (its gate evaluated, and its opening recorded if it opens).
    pub(super) fn report(
        &mut self,
        config: &Config,
        hub: Option<&Hub>,
    ) -> Result<Report, CustodyRefusal> {
        let now = self.clock.now();
        let result = custody::report(&mut self.store, config, now);
        // The gate may have opened just now, which is a custody event like any other.
        self.publish(config, hub, now.utc_us);
        result.map_err(|e| {
            tracing::warn!(error = %report(&e), "custody report failed");
            CustodyRefusal::of(&e)
        })
    }

    /// Puts the custody record in the status and tells subscribers of what is new in it.
    fn publish(&self, config: &Config, hub: Option<&Hub>, now_us: i64) {
        if let Some(hub) = hub {
            let record = read_custody(&self.store, config);
            refresh_custody(hub, config, record.as_ref(), now_us);
        }
    }
}

/// The custody record from the log; `None` (and a warning) if it cannot be read.
pub(super) fn read_custody(store: &Store, config: &Config) -> Option<CustodyRecord> {
    crate::custody::load(store, config)
        .map_err(|e| tracing::warn!(error = %report(&e), "custody record could not be read"))
        .ok()
}

/// Puts the custody record (read by the caller, once for the status and the alerts) in the
/// snapshot and tells subscribers of each custody event new since the last refresh. Official
/// runs' admissions write custody events on the daemon's own store, and `POST /v1/custody/…` on
/// its desk: both show here.
pub(super) fn refresh_custody(
    hub: &Hub,
    config: &Config,
    record: Option<&CustodyRecord>,
    now_us: i64,
) {
    let custody = record.map(|record| custody_status(config, record, Some(now_us)));
    let mut status = hub.status();
    let before = status.custody.as_ref().map_or(0, |c| c.timeline.len());
    if let Some(c) = &custody {
        for line in c.timeline.iter().skip(before) {
            hub.publish(LiveEvent::Custody {
                state: c.state.clone(),
                event: line.kind.clone(),
            });
        }
    }
    status.custody = custody;
}

/// The custody state, timeline and (at `now_us`) next deadline.
pub(super) fn custody_status(
    config: &Config,
    (custody, rows): &CustodyRecord,
    now_us: Option<i64>,
) -> CustodyStatus {
    CustodyStatus {
        state: custody.state.as_str().to_owned(),
        damage_pending: custody.damage_pending,
        timeline: rows
            .iter()
            .map(|r| CustodyLine {
                utc: rfc3339(r.utc_us),
                kind: r.kind.clone(),
                detail: r.detail.to_string(),
            })
            .collect(),
        next_deadline: now_us.and_then(|now| {
            crate::custody::deadline::next(
                &config.artefact.deadlines,
                custody,
                now,
                config.alerts.deadline_notice,
            )
        }),
    }
}
