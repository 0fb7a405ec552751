//! What a command can fail with, and the one place that maps errors to exit codes.
//!
//! Exit codes (also in the README), each a constant in [`exit`]:
//!
//! | code | constant | meaning |
//! |---|---|---|
//! | 0 | `SUCCESS` | success (including "nothing new to seal") |
//! | 1 | `INTERNAL` | internal error |
//! | 2 | `USAGE` | usage or configuration error |
//! | 3 | `RUN_FAILED` | instrument or run failure (readings taken before it are kept), an official run refused by custody, or `upload` could not reach the coordinator |
//! | 4 | `INTEGRITY` | integrity failure: `db check` or `coordinator check` found a problem, a bundle failed verification or its links, or the coordinator refused a bundle |
//! | 5 | `STORAGE` | storage error |
//! | 6 | `KEY` | key or signing error |
//! | 128 + N | `SIGNALLED` + N | stopped by signal N: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP |

use std::path::PathBuf;

use tsagent_bundle::file::FileError;
use tsagent_bundle::{AllowedSignersError, KeyError, SealError, VerifyError};
use tsagent_sim::SimError;

use crate::config::ConfigError;
use crate::control::client::ClientError;
use crate::control::server::ControlError;
use crate::custody::CustodyError;
use crate::daemon::DaemonError;
use crate::daemon::owner::OwnerError;
use crate::sealing::SealingError;
use crate::sequence::SequenceError;
use crate::store::{Problem, StoreError};

/// The process exit codes, documented in the README.
pub mod exit {
    /// Success, including "nothing new to seal".
    pub const SUCCESS: u8 = 0;
    /// An internal error.
    pub const INTERNAL: u8 = 1;
    /// Bad usage or configuration.
    pub const USAGE: u8 = 2;
    /// An instrument or run failed; readings taken before it are kept.
    pub const RUN_FAILED: u8 = 3;
    /// `db check` found a problem, or a bundle failed verification.
    pub const INTEGRITY: u8 = 4;
    /// Storage.
    pub const STORAGE: u8 = 5;
    /// The key or signing.
    pub const KEY: u8 = 6;
    /// The lab is held by another tsagent process (the daemon, or another `measure`).
    pub const BUSY: u8 = 7;
    /// No daemon is running for this config (`status`, `start`).
    pub const NO_DAEMON: u8 = 8;
    /// Stopped by a signal: the code is this plus the signal's number, as shells expect (130 for
    /// SIGINT).
    pub const SIGNALLED: u8 = 128;
}

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
    /// `analyze`: the input table or a statistic of it.
    #[error(transparent)]
    Analyze(#[from] crate::analysis::commands::AnalyzeError),
    /// `report`: the lab's result could not be computed from the readings selected.
    #[error("the lab's result cannot be computed")]
    Result(#[from] crate::analysis::AnalysisError),
    /// `report`: the files could not be made or written.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// `report`: the window holds no reading of the standard.
    #[error(
        "no reading in {unit} in the window ({window}): choose one with --run, --since/--until or --official"
    )]
    NothingToReport {
        /// The artefact's unit.
        unit: String,
        /// The window, described.
        window: String,
    },
    /// `report`: a `[report]` setting the report and its certificate cannot do without.
    #[error("a report needs `{key}` ({what}): add it to {origin}")]
    ReportSetting {
        /// The key, with its table.
        key: &'static str,
        /// What it is for.
        what: &'static str,
        /// The config file.
        origin: String,
    },
    /// `report`: more than one instrument read the standard in the window.
    #[error(
        "several instruments read the standard in the window ({instruments}): choose one with --instrument"
    )]
    SeveralMeasurers {
        /// Their names.
        instruments: String,
    },
    /// A run or an instrument. Boxed: it is the largest error and errors travel by value.
    #[error(transparent)]
    Sequence(Box<SequenceError>),
    /// The daemon.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The control socket.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Talking to the daemon.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A run handed to the daemon did not complete.
    #[error("run {run_id} ended {status}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    RemoteRun {
        /// The run.
        run_id: u64,
        /// How it ended.
        status: String,
        /// Why, when it failed.
        message: Option<String>,
    },
    /// The daemon stopped while a run handed to it was being followed.
    #[error("the daemon stopped before the run ended (see `tsagent readings`)")]
    DaemonGone,
    /// The lab is held by another process.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// A report file cannot ride in a bundle (its name or size), so none is staged.
    #[error("cannot stage the report for the next bundle")]
    Stage(#[source] tsagent_bundle::SealError),
    /// The simulator.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Keys.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Making a bundle's bytes.
    #[error(transparent)]
    Bundle(#[from] SealError),
    /// Sealing pending readings into bundle files.
    #[error(transparent)]
    Seal(#[from] SealingError),
    /// A custody action refused or not recorded.
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// The coordinator's config.
    #[error(transparent)]
    CoordinatorConfig(#[from] tsagent_coordinator::config::ConfigError),
    /// The coordinator's key, labs or storage.
    #[error(transparent)]
    Coordinator(#[from] tsagent_coordinator::OpenError),
    /// `coordinator check` could not read the storage.
    #[error("cannot check the coordinator's storage")]
    CoordinatorCheck(#[from] tsagent_coordinator::check::CheckError),
    /// `coordinator check` found the index, the blobs or the log in disagreement.
    #[error("the coordinator's storage is not sound: {first} ({count} problem(s) in all)")]
    CoordinatorUnsound {
        /// The first problem.
        first: String,
        /// How many problems.
        count: usize,
    },
    /// A bundle could not be delivered now (network, coordinator down); the daemon retries.
    #[error("{0}")]
    Upload(String),
    /// The coordinator refused a bundle, or its log did not hold: the queue holds.
    #[error("{0}")]
    UploadRefused(String),
    /// Several bundles verified, but some failed or their links do not hold.
    #[error("not every bundle verified and linked: {problems}")]
    Links {
        /// What failed, comma-separated.
        problems: String,
    },
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
    /// An input file named on the command line is not a regular file (or not one allowed there),
    /// is too large for its role, or cannot be opened.
    #[error(transparent)]
    File(#[from] FileError),
    /// `keygen` would replace the key the lab's database records without `--new-key`.
    #[error(
        "the database `{}` already records signing key {recorded}; a new key needs `--new-key` (the pilot then needs the new allowed_signers line)",
        db.display()
    )]
    KeyRecorded {
        /// The database.
        db: PathBuf,
        /// The fingerprint it records.
        recorded: String,
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
    /// A signal stopped the command; what was done before it is kept.
    #[error("stopped by {}", signal_name(*.signal))]
    Stopped {
        /// The signal's number.
        signal: i32,
    },
    /// `config check --connect` could not reach some adapters or instruments.
    #[error("{failed} of {total} adapter(s) and instrument(s) could not be reached")]
    Unreachable {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
}

/// A signal's name, e.g. `SIGINT`, or its number when it has none.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

impl From<SequenceError> for Error {
    fn from(e: SequenceError) -> Self {
        Error::Sequence(Box::new(e))
    }
}

impl Error {
    /// The process exit code for this error (constants in [`exit`]).
    pub fn exit_code(&self) -> u8 {
        use exit::*;
        match self {
            Error::Runtime(_) => INTERNAL,
            Error::Stopped { signal } => {
                SIGNALLED.saturating_add(u8::try_from(*signal).unwrap_or(u8::MAX))
            }
            Error::Unreachable { .. } => RUN_FAILED,
            Error::CoordinatorConfig(_)
            | Error::Coordinator(
                tsagent_coordinator::OpenError::Labs { .. }
                | tsagent_coordinator::OpenError::LabsRead { .. }
                | tsagent_coordinator::OpenError::Tls { .. },
            ) => USAGE,
            Error::Coordinator(tsagent_coordinator::OpenError::Key(_)) => KEY,
            Error::Coordinator(_) | Error::CoordinatorCheck(_) => STORAGE,
            Error::CoordinatorUnsound { .. } => INTEGRITY,
            Error::Config(_)
            | Error::Usage(_)
            | Error::Analyze(_)
            | Error::Result(_)
            | Error::NothingToReport { .. }
            | Error::ReportSetting { .. }
            | Error::Stage(_)
            | Error::SeveralMeasurers { .. }
            | Error::Report(
                crate::report::ReportError::Input { .. }
                | crate::report::ReportError::Language(_)
                | crate::report::ReportError::Unit(_),
            )
            | Error::Signers { .. }
            | Error::Read { .. }
            | Error::File(_) => USAGE,
            Error::Store(StoreError::Missing { .. } | StoreError::NotAFile { .. }) => USAGE,
            Error::Sequence(e) => match e.cause() {
                SequenceError::Store(s)
                | SequenceError::Custody(crate::custody::CustodyError::Store(s)) => store_code(s),
                SequenceError::UnknownSequence { .. } => USAGE,
                _ => RUN_FAILED,
            },
            Error::Daemon(DaemonError::NothingScheduled { .. }) => USAGE,
            Error::Daemon(DaemonError::Recover(s) | DaemonError::CustodyStore(s)) => store_code(s),
            Error::Owner(OwnerError::Io { .. }) => STORAGE,
            Error::Control(ControlError::Bind { .. }) => STORAGE,
            Error::Control(_) => USAGE,
            Error::Client(ClientError::NoDaemon { .. }) => NO_DAEMON,
            Error::RemoteRun { .. } | Error::DaemonGone => RUN_FAILED,
            Error::Client(ClientError::Refused { status, .. }) if status.is_client_error() => USAGE,
            Error::Client(_) => INTERNAL,
            Error::Owner(_) => BUSY,
            Error::Sim(_) => RUN_FAILED,
            Error::Report(_) => STORAGE,
            Error::Upload(_) => RUN_FAILED,
            Error::Verify { .. }
            | Error::UploadRefused(_)
            | Error::Links { .. }
            | Error::CheckFailed { .. }
            | Error::BundleTooLarge { .. } => INTEGRITY,
            Error::Store(s)
            | Error::Seal(SealingError::Store(s))
            | Error::Custody(CustodyError::Store(s)) => store_code(s),
            // A refused official run did not run: the run's code, as for any run that could not
            // be done. An action that does not fit the standard's state, or bad input, is usage.
            Error::Custody(CustodyError::OfficialRefused { .. }) => RUN_FAILED,
            Error::Custody(CustodyError::PhotoStore { .. }) => STORAGE,
            Error::Custody(
                CustodyError::Transition { .. }
                | CustodyError::NoDecisionPending
                | CustodyError::Item { .. }
                | CustodyError::Checklist { .. }
                | CustodyError::Empty { .. }
                | CustodyError::PhotoHash { .. }
                | CustodyError::PhotoNotKept { .. }
                | CustodyError::Photo { .. },
            ) => USAGE,
            // Readings the bundle format cannot carry, or a clash with an existing bundle file:
            // the log and the bundles disagree, which is an integrity matter.
            Error::Seal(
                SealingError::Bundle(SealError::Content(_)) | SealingError::Exists { .. },
            ) => INTEGRITY,
            Error::Io { .. }
            | Error::Seal(
                SealingError::Write { .. }
                | SealingError::Archive(_)
                | SealingError::NotABundleFile(_),
            ) => STORAGE,
            Error::Key(_)
            | Error::Bundle(_)
            | Error::KeyRecorded { .. }
            | Error::Seal(
                SealingError::Key(_) | SealingError::Bundle(_) | SealingError::KeyChanged { .. },
            ) => KEY,
        }
    }
}

/// Storage failures are [`exit::STORAGE`], except those that mean the log was altered
/// ([`exit::INTEGRITY`]) or that name a missing database ([`exit::USAGE`]).
fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::ChainBroken { .. } | StoreError::Truncated { .. } => exit::INTEGRITY,
        StoreError::Missing { .. } | StoreError::NotAFile { .. } => exit::USAGE,
        _ => exit::STORAGE,
    }
}
