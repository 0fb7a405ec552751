//! `tsagent run`: the daemon, in the foreground, until SIGTERM, SIGINT or SIGHUP. A first signal
//! stops it after the reading in progress and it exits 0 (a clean stop is how a service ends); a
//! second stops it at once and it exits 128 + that signal's number.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{Error, progress, runtime, stop_on_signals_logged, stopped_by_signal};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::control::Hub;
use crate::control::server::{self, PeerPolicy};
use crate::daemon::Control;
use crate::daemon::notify::Notifier;
use crate::store::Store;

/// `tsagent run`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct RunArgs {
    /// The lab's config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// The daemon.
pub fn run(args: RunArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    // Held until the process ends: the instruments and the log are this process's alone.
    let _lab = crate::daemon::owner::LabLock::acquire(&config, crate::daemon::owner::Role::Daemon)?;
    let mut store = Store::open(&config.storage.db)?;
    tracing::info!(config = %args.config.display(), db = %config.storage.db.display(), lab = %config.lab.id, "tsagent run starting");
    runtime()?.block_on(async {
        let stop = stop_on_signals_logged()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let mut observer = progress::Log;
        // Read once here and passed down: the daemon holds no globals.
        let mut notifier = Notifier::from_env();
        let group = config.control.group.as_deref();
        let policy = PeerPolicy::new(group)?;
        let listener = server::bind(&config.control.socket, group)?;
        let hub = Hub::new(crate::daemon::initial_status(&config, &store));
        let (requests, from_api) = crate::control::requests();
        let api = tokio::spawn(server::serve(
            listener,
            server::Api {
                hub: hub.clone(),
                requests,
                policy,
                photos: crate::custody::photo_dir(&config.storage.db),
            },
        ));
        tracing::info!(socket = %config.control.socket.display(), "control API listening");
        let page = match &config.status {
            Some(status) => {
                let listener =
                    tokio::net::TcpListener::bind(status.listen)
                        .await
                        .map_err(|source| Error::Io {
                            action: "listen for the status page on",
                            path: status.listen.to_string().into(),
                            source,
                        })?;
                let url = listener
                    .local_addr()
                    .map(|a| format!("http://{a}/"))
                    .unwrap_or_default();
                tracing::info!(%url, "status page listening");
                Some(tokio::spawn(crate::control::page::serve(
                    listener,
                    hub.clone(),
                )))
            }
            None => None,
        };
        let control = Control {
            hub,
            requests: from_api,
        };
        let ran = crate::daemon::run(
            &config,
            &mut store,
            clock,
            &mut observer,
            &stop,
            Some(control),
            &mut notifier,
        )
        .await;
        api.abort();
        if let Some(page) = page {
            page.abort();
        }
        // The socket goes with the daemon: a client then hears "no daemon", not a hang.
        let _ = std::fs::remove_file(&config.control.socket);
        ran?;
        if stop.urgent() {
            return stopped_by_signal(&stop);
        }
        Ok(())
    })
}
