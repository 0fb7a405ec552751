//! What a custody action or an official run's admission can fail with.

use std::path::PathBuf;

use crate::store::StoreError;

use super::phase::State;

/// Why a custody action was refused or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// The action does not fit the standard's state.
    #[error("cannot {action}: {}", state.refusal())]
    Transition {
        /// The action, e.g. `receive the standard`.
        action: &'static str,
        /// The state it was in.
        state: State,
    },
    /// A pilot decision was recorded with no damage awaiting one.
    #[error("no pilot decision is pending: no damage is recorded since the last decision")]
    NoDecisionPending,
    /// An `--item` argument is not `NAME=RESULT`.
    #[error("invalid item `{text}`: {reason}")]
    Item {
        /// The argument.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The inspection does not match the configured checklist.
    #[error("inspection does not match the checklist: {reason}")]
    Checklist {
        /// What is wrong (unknown, repeated or missing items).
        reason: String,
    },
    /// A required field is empty.
    #[error("`{field}` must not be empty")]
    Empty {
        /// The field, e.g. `operator`.
        field: &'static str,
    },
    /// A receipt names a photo by something that is not a SHA-256.
    #[error("photo `{text}` is not named by its SHA-256 (64 lowercase hex digits)")]
    PhotoHash {
        /// What was given.
        text: String,
    },
    /// A receipt names a photo that is not kept in the photo folder.
    #[error(
        "no photo with SHA-256 {sha256} is kept beside the database: upload it first (POST /v1/custody/photos)"
    )]
    PhotoNotKept {
        /// The hash given.
        sha256: String,
    },
    /// A photo could not be read.
    #[error("cannot read photo `{}`", path.display())]
    Photo {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tsagent_bundle::file::FileError,
    },
    /// A photo could not be stored beside the database.
    #[error("cannot store photo in `{}`", dir.display())]
    PhotoStore {
        /// The photo folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An official run was refused; the refusal is recorded as an `official_skipped` event.
    #[error("official run of `{sequence}` refused: {reason}")]
    OfficialRefused {
        /// The sequence.
        sequence: String,
        /// Why, in the words of the event.
        reason: String,
    },
    /// The custody log could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}
