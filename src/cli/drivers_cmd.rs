//! `tsagent drivers list|show|check`: the instrument profiles the agent knows.

use std::path::PathBuf;

use clap::Subcommand;

use super::Error;
use crate::config::Config;
use crate::drivers::{self, Registry};

/// `tsagent drivers …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum DriversCommand {
    /// List the driver profiles: built in, plus a config's `[drivers] dir`.
    List {
        /// Also the profiles of this config's `[drivers] dir`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show one profile: identity, set-up, error queue and every operation, unconfirmed items
    /// flagged.
    Show {
        /// Profile id, e.g. keysight-3458a.
        id: String,
        /// Also the profiles of this config's `[drivers] dir`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a profile file; errors name the file, line and key.
    Check {
        /// The profile (`<id>.toml`).
        file: PathBuf,
    },
}

/// Runs a `drivers` subcommand.
pub fn run(cmd: DriversCommand) -> Result<(), Error> {
    match cmd {
        DriversCommand::List { config } => {
            let registry = registry(config)?;
            for p in registry.iter() {
                let flag = if p.has_unconfirmed() {
                    "  (has unconfirmed commands)"
                } else {
                    ""
                };
                say!("{:<20} {:<12} {}{flag}", p.id, p.kind.as_str(), p.name);
            }
            Ok(())
        }
        DriversCommand::Show { id, config } => {
            let registry = registry(config)?;
            let profile = registry.get(&id).ok_or_else(|| {
                Error::Usage(format!(
                    "no driver profile `{id}` (known: {})",
                    registry.ids().collect::<Vec<_>>().join(", ")
                ))
            })?;
            say!("{}", drivers::describe(profile));
            Ok(())
        }
        DriversCommand::Check { file } => {
            let profile = drivers::check_file(&file)
                .map_err(|e| Error::Config(crate::config::ConfigError::Driver(e)))?;
            say!(
                "{}: ok (profile `{}`, {} operation(s): {})",
                file.display(),
                profile.id,
                profile.operations.len(),
                profile
                    .operations
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
    }
}

fn registry(config: Option<PathBuf>) -> Result<std::sync::Arc<Registry>, Error> {
    match config {
        Some(path) => Ok(Config::load(&path)?.drivers),
        None => Ok(std::sync::Arc::new(Registry::builtin().map_err(|e| {
            Error::Config(crate::config::ConfigError::Driver(e))
        })?)),
    }
}
