//! The agent's top-level error and the one place that maps errors to exit codes.
//!
//! Exit codes (also in the README):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (including "nothing new to seal") |
//! | 1 | internal error |
//! | 2 | usage or configuration error |
//! | 3 | instrument or run failure (readings taken before it are kept) |
//! | 4 | integrity failure: `db check` found a problem, or a bundle failed verification |
//! | 5 | storage error |
//! | 6 | key or signing error |

use std::path::PathBuf;

use crate::bundle::{AllowedSignersError, BundleError, KeyError, VerifyError};
use crate::config::ConfigError;
use crate::daemon::DaemonError;
use crate::outbox::SealError;
use crate::sequence::SequenceError;
use crate::sim::SimError;
use crate::store::{Problem, StoreError};

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad command-line usage that clap cannot express.
    #[error("{0}")]
    Usage(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run or an instrument. Boxed: it is the largest error and errors travel by value.
    #[error(transparent)]
    Sequence(Box<SequenceError>),
    /// The daemon.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The simulator.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Keys.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Sealing.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Sealing.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An allowed_signers file is malformed.
    #[error("bad allowed_signers file `{path}`")]
    Signers {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: AllowedSignersError,
    },
    /// A bundle failed verification.
    #[error("bundle `{path}` failed verification")]
    Verify {
        /// The bundle file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: VerifyError,
    },
    /// `db check` found problems.
    #[error("database `{db}` is not sound: {first} ({count} problem(s) in all)")]
    CheckFailed {
        /// The database.
        db: PathBuf,
        /// The first problem, naming the first bad row.
        first: Problem,
        /// How many problems.
        count: usize,
    },
    /// A file operation.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl From<SequenceError> for Error {
    fn from(e: SequenceError) -> Self {
        Error::Sequence(Box::new(e))
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Runtime(_) => 1,
            Error::Config(_) | Error::Usage(_) | Error::Signers { .. } => 2,
            Error::Sequence(e) => match e.cause() {
                SequenceError::Store(_) => 5,
                SequenceError::UnknownSequence { .. } => 2,
                _ => 3,
            },
            Error::Daemon(DaemonError::NothingScheduled { .. }) => 2,
            Error::Daemon(DaemonError::Recover(_)) => 5,
            Error::Sim(_) => 3,
            Error::Verify { .. } | Error::CheckFailed { .. } => 4,
            Error::Store(StoreError::ChainBroken { .. })
            | Error::Seal(SealError::Store(StoreError::ChainBroken { .. })) => 4,
            Error::Store(_)
            | Error::Io { .. }
            | Error::Seal(SealError::Store(_) | SealError::Write { .. }) => 5,
            Error::Key(_)
            | Error::Bundle(_)
            | Error::Seal(SealError::Key(_) | SealError::Bundle(_)) => 6,
        }
    }
}
