//! `tsagent upload` and `tsagent bundles`: send the sealed bundles to the coordinator now, and
//! list each bundle with where it is on its way.

use std::path::PathBuf;

use clap::Args;

use super::Error;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{DeliveryState, Store};
use crate::upload::{self, Step};

/// `tsagent upload`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct UploadArgs {
    /// The lab's config file (`[upload]` names the coordinator).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Release a queue held by a refusal and try again (once the cause is dealt with).
    #[arg(long)]
    pub retry: bool,
}

/// `tsagent bundles`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct BundlesArgs {
    /// The lab's config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Sends every bundle not yet accepted, in order, now; stops at the first that cannot go.
pub fn upload(args: UploadArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    let target = upload::target(&config)
        .map_err(|e| Error::Usage(format!("[upload]: {}", crate::error::report(&e))))?
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} has no [upload]: name the coordinator (url, coordinator_key)",
                args.config.display()
            ))
        })?;
    let mut store = Store::open_existing(&config.storage.db)?;
    if args.retry {
        let released = store.release_held()?;
        if released > 0 {
            say!("released the held queue");
        }
    }
    let clock = SystemClock::new();
    super::runtime()?.block_on(async {
        let mut sent = 0;
        loop {
            let step = upload::step_with(&mut store, &target, clock.now(), true)
                .await
                .map_err(|e| Error::Upload(crate::error::report(&e)))?;
            match step {
                Step::Sent {
                    name,
                    log_index,
                    fresh,
                } => {
                    sent += 1;
                    say!(
                        "{name}: {} (log index {log_index}); receipt verified",
                        if fresh { "accepted" } else { "already accepted" }
                    );
                }
                Step::Idle => {
                    if sent == 0 {
                        say!("nothing to send: every sealed bundle has its receipt");
                    }
                    return Ok(());
                }
                Step::Waiting { name, .. } => {
                    return Err(Error::UploadRefused(format!(
                        "{name} is held by an earlier refusal; deal with it, then `tsagent upload --retry`"
                    )));
                }
                Step::Retry { name, error, .. } => {
                    return Err(Error::Upload(format!(
                        "{name} not delivered: {error} (the daemon retries by itself)"
                    )));
                }
                Step::Held { name, error, .. } => {
                    return Err(Error::UploadRefused(format!(
                        "{name} refused: {error}; the queue holds until `tsagent upload --retry`"
                    )));
                }
            }
        }
    })
}

/// Lists every bundle with its delivery.
pub fn bundles(args: BundlesArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    let store = Store::open_existing(&config.storage.db)?;
    let list = store.deliveries()?;
    if list.is_empty() {
        say!("no bundle sealed yet");
    }
    for d in list {
        let mut line = format!(
            "{}  sealed {}  {}",
            d.name,
            crate::clock::rfc3339(d.created_utc_us),
            d.state.as_str()
        );
        match d.state {
            DeliveryState::Sent => {
                if let Some(i) = d.log_index {
                    line.push_str(&format!("  receipt: log index {i}"));
                }
            }
            DeliveryState::New => {}
            DeliveryState::Retrying | DeliveryState::Held => {
                line.push_str(&format!("  attempts {}", d.attempts));
                if let Some(at) = d.next_attempt_utc_us {
                    line.push_str(&format!("  next {}", crate::clock::rfc3339(at)));
                }
                if let Some(e) = &d.last_error {
                    line.push_str(&format!("  last error: {e}"));
                }
            }
        }
        say!("{line}");
    }
    Ok(())
}
