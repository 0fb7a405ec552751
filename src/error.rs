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
    /// An input file named on the command line could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bundle file is larger than any bundle may be; it is not even read.
    #[error("bundle `{path}` is {size} bytes, more than the {max} a bundle may have")]
    BundleTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// A file operation on the agent's own files.
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
            Error::Config(_) | Error::Usage(_) | Error::Signers { .. } | Error::Read { .. } => 2,
            Error::Store(StoreError::Missing { .. }) => 2,
            Error::Sequence(e) => match e.cause() {
                SequenceError::Store(s) => store_code(s),
                SequenceError::UnknownSequence { .. } => 2,
                _ => 3,
            },
            Error::Daemon(DaemonError::NothingScheduled { .. }) => 2,
            Error::Daemon(DaemonError::Recover(s)) => store_code(s),
            Error::Sim(_) => 3,
            Error::Verify { .. } | Error::CheckFailed { .. } | Error::BundleTooLarge { .. } => 4,
            Error::Store(s) | Error::Seal(SealError::Store(s)) => store_code(s),
            // Readings the bundle format cannot carry, or a clash with an existing bundle file:
            // the log and the bundles disagree, which is an integrity matter.
            Error::Seal(SealError::Bundle(BundleError::Content(_)) | SealError::Exists { .. }) => 4,
            Error::Io { .. } | Error::Seal(SealError::Write { .. }) => 5,
            Error::Key(_)
            | Error::Bundle(_)
            | Error::Seal(SealError::Key(_) | SealError::Bundle(_)) => 6,
        }
    }
}

/// Storage failures are 5, except those that mean the log was altered (4).
fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::ChainBroken { .. } | StoreError::Truncated { .. } => 4,
        StoreError::Missing { .. } => 2,
        _ => 5,
    }
}

/// An error and its sources on one line, `a: b: c`, for logs and event records.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
