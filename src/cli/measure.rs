//! `tsagent measure`: one sequence now, with live progress, then the run's statistics. A signal
//! (Ctrl-C) stops it after the reading in progress, a second at once; either way it exits 128 +
//! the signal's number (130 for SIGINT), the readings taken before kept.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::daemon::owner::{LabLock, OwnerError, Role};

use super::display::{describe, run_statistics};
use super::{Error, progress, runtime, stop_on_signals, stopped_by_signal};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::sequence::Runner;
use crate::store::{RunStatus, Store, Trigger};
use crate::supervisor::Supervisor;

/// `tsagent measure`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct MeasureArgs {
    /// The lab's config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The sequence to run.
    #[arg(long, value_name = "NAME")]
    pub sequence: String,
    /// Who is running it; stored with the run.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
}

/// Runs one sequence now.
pub fn measure(args: MeasureArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    // Held until the process ends: the instruments and the log are this process's alone. When
    // the daemon holds them, the run is its to make: hand it over and follow it.
    let _lab = match LabLock::acquire(&config, Role::Measure) {
        Ok(lock) => lock,
        Err(OwnerError::HeldByDaemon { .. }) => {
            let operator = match args.operator {
                Some(operator) => operator,
                None => login_name(),
            };
            return super::steer::hand_over(&config, &args.sequence, &operator, true);
        }
        Err(e) => return Err(e.into()),
    };
    say!("measuring here: no daemon holds this lab");
    let mut store = Store::open(&config.storage.db)?;
    runtime()?.block_on(async {
        let stop = stop_on_signals()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        for run_id in crate::sequence::recover_interrupted(&mut store, &*clock)? {
            tell!("note: run {run_id} was cut short by a crash or kill; marked interrupted");
        }
        let mut supervisor = Supervisor::new(&config);
        let mut runner = Runner {
            config: &config,
            store: &mut store,
            clock,
            supervisor: &mut supervisor,
        };
        let mut observer = progress::for_terminal();
        let outcome = runner
            .run_named(
                &args.sequence,
                Trigger::Manual,
                args.operator.as_deref(),
                observer.as_mut(),
                &stop,
            )
            .await;
        drop(observer);
        let outcome = outcome?;
        say!("{}", describe(&outcome));
        for line in run_statistics(&store, &outcome)? {
            say!("{line}");
        }
        say!("database: {}", config.storage.db.display());
        if outcome.status != RunStatus::Completed {
            return stopped_by_signal(&stop);
        }
        Ok(())
    })
}

/// Who is logged in, for a run handed to the daemon without `--operator`.
fn login_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", nix::unistd::getuid()), |u| u.name)
}
