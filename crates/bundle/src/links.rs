//! The links between a lab's bundles on one artefact: each names its predecessor's `SHA256SUMS`,
//! continues its reading chain and numbers one more. `tsagent bundle verify` checks them across
//! several bundles, and the coordinator's intake with the same rules against the last bundle it
//! accepted, so the two never disagree on what a gap or a fork is.

use thiserror::Error;

use crate::manifest::{Hash32, Manifest};
use crate::verify::VerifiedBundle;

/// What a link is checked against: the last bundle accepted for a lab and artefact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its `bundle_seq`.
    pub bundle_seq: u64,
    /// SHA-256 of its `SHA256SUMS`.
    pub sums_sha256: Hash32,
    /// Its last reading's `seq`.
    pub last_seq: u64,
    /// The chain value after it.
    pub chain_last: Hash32,
}

impl Head {
    /// The head a verified bundle makes.
    pub fn of(bundle: &VerifiedBundle) -> Self {
        Self {
            bundle_seq: bundle.manifest.bundle_seq,
            sums_sha256: Hash32(bundle.sums_sha256),
            last_seq: bundle.manifest.readings.last_seq,
            chain_last: bundle.manifest.readings.chain_last,
        }
    }
}

/// Why a bundle does not follow the head. [`LinkError::Gap`] waits for the missing bundles; every
/// other case is a fork: two histories for one lab and artefact.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    /// Bundles are missing before this one.
    #[error("gap: bundle {found} arrived, the next expected is {expected}")]
    Gap {
        /// The sequence number that must come next.
        expected: u64,
        /// The bundle's number.
        found: u64,
    },
    /// A number already taken, with other content.
    #[error("fork: bundle {found} was already accepted with other content (head is {head})")]
    Taken {
        /// The head's number.
        head: u64,
        /// The bundle's number.
        found: u64,
    },
    /// The bundle names another predecessor than the one accepted.
    #[error("fork: bundle {found} names another previous SHA256SUMS than bundle {head}'s")]
    PreviousHash {
        /// The head's number.
        head: u64,
        /// The bundle's number.
        found: u64,
    },
    /// The reading chain does not continue from the head's last reading.
    #[error(
        "fork: bundle {found} starts its readings at {first_seq} after chain value {chain_prev}, but bundle {head} ended at {head_last_seq} with {head_chain}"
    )]
    Chain {
        /// The head's number.
        head: u64,
        /// The bundle's number.
        found: u64,
        /// The bundle's first reading.
        first_seq: u64,
        /// The bundle's `chain_prev`.
        chain_prev: Hash32,
        /// The head's last reading.
        head_last_seq: u64,
        /// The head's `chain_last`.
        head_chain: Hash32,
    },
}

impl LinkError {
    /// Whether this is a fork (as opposed to a gap that later bundles fill).
    pub fn is_fork(&self) -> bool {
        !matches!(self, Self::Gap { .. })
    }
}

/// Checks that `next` is the bundle that follows `head` (`None`: nothing accepted yet, so it must
/// be bundle 1). A bundle at or below the head is [`LinkError::Taken`]: the caller tells an
/// identical re-send apart first, by the tar's hash.
pub fn check_link(head: Option<&Head>, next: &Manifest) -> Result<(), LinkError> {
    let found = next.bundle_seq;
    let Some(head) = head else {
        return if found == 1 {
            Ok(())
        } else {
            Err(LinkError::Gap { expected: 1, found })
        };
    };
    if found <= head.bundle_seq {
        return Err(LinkError::Taken {
            head: head.bundle_seq,
            found,
        });
    }
    if found != head.bundle_seq + 1 {
        return Err(LinkError::Gap {
            expected: head.bundle_seq + 1,
            found,
        });
    }
    if next.prev_sha256sums != Some(head.sums_sha256) {
        return Err(LinkError::PreviousHash {
            head: head.bundle_seq,
            found,
        });
    }
    let r = &next.readings;
    if r.chain_prev != head.chain_last || Some(r.first_seq) != head.last_seq.checked_add(1) {
        return Err(LinkError::Chain {
            head: head.bundle_seq,
            found,
            first_seq: r.first_seq,
            chain_prev: r.chain_prev,
            head_last_seq: head.last_seq,
            head_chain: head.chain_last,
        });
    }
    Ok(())
}
