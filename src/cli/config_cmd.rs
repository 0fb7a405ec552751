//! `tsagent config check --connect`: set-up problems found before a sequence reaches the
//! instrument. Every adapter and instrument is opened and identified through the supervisor, as a
//! run would (so simulated ones are started too), and each one's identity or error is reported.

use super::{Error, runtime};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::error::report;
use crate::supervisor::Supervisor;

/// Opens and identifies everything `config` names; fails if any adapter or instrument could not
/// be reached. A missing signing key is reported but does not fail the check: measuring works
/// without it.
pub(super) fn connect(config: &Config) -> Result<(), Error> {
    let clock = SystemClock::new();
    let (failed, total) = runtime()?.block_on(async {
        let mut supervisor = Supervisor::new(config);
        let mut failed = 0;
        let adapters = supervisor.open_adapters(&clock).await;
        let total = adapters.len() + config.instruments.len();
        for (adapter, opened) in adapters {
            match opened {
                Ok(()) => say!("adapter {adapter}: open"),
                Err(e) => {
                    failed += 1;
                    say!("adapter {adapter}: error: {}", report(&e));
                }
            }
        }
        for instrument in &config.instruments {
            let resource = instrument.resource_text();
            match supervisor.connect(instrument, &clock).await {
                Ok(id) => say!(
                    "instrument {} ({resource}): {} {} serial {} firmware {}",
                    instrument.name,
                    id.manufacturer,
                    id.model,
                    id.serial,
                    id.firmware
                ),
                Err(e) => {
                    failed += 1;
                    say!(
                        "instrument {} ({resource}): error: {}",
                        instrument.name,
                        report(&e)
                    );
                }
            }
        }
        Ok::<_, Error>((failed, total))
    })?;
    match crate::daemon::signing_key_problem(config) {
        Some(problem) => say!("warning: {problem}"),
        None => say!("signing key {}: present", config.signing.key.display()),
    }
    if failed > 0 {
        return Err(Error::Unreachable { failed, total });
    }
    Ok(())
}
