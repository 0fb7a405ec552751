//! Appending to the transparency log inside an intake transaction, and answering proofs from the
//! index. The hashing and the proofs are `tsagent_bundle::tlog`'s, the same code a lab checks them
//! with.

use std::cell::RefCell;

use ssh_key::PrivateKey;
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::{self, LogEntry, SignedCheckpoint, SignedError};
use tsagent_bundle::tlog::{self, Checkpoint, Hash, ProofError, Subtrees};

use crate::index::{Index, IndexError, Tx};

/// A log failure.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The checkpoint could not be signed.
    #[error(transparent)]
    Sign(#[from] SignedError),
    /// A proof was asked for sizes or indices outside the log.
    #[error("{0}")]
    Range(String),
}

impl From<ProofError<IndexError>> for LogError {
    fn from(e: ProofError<IndexError>) -> Self {
        match e {
            ProofError::Store(e) => Self::Index(e),
            other => Self::Range(other.to_string()),
        }
    }
}

/// A transaction seen as the log's subtrees (the trait takes `&self`; the transaction wants
/// `&mut`).
struct InTx<'a, 'b>(&'a RefCell<&'b mut dyn Tx>);

impl Subtrees for InTx<'_, '_> {
    type Error = IndexError;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, IndexError> {
        self.0.borrow_mut().subtree(level, index)
    }
}

/// The index seen as the log's subtrees, outside any transaction.
pub struct Committed<'a>(pub &'a dyn Index);

impl Subtrees for Committed<'_> {
    type Error = IndexError;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, IndexError> {
        self.0.subtree(level, index)
    }
}

/// An entry appended: where it is and what proves it.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// The new checkpoint, signed.
    pub checkpoint: SignedCheckpoint,
    /// The entry's inclusion proof in that checkpoint.
    pub inclusion: Vec<Hash32>,
}

/// Appends `entry` in `tx` (whose log lock [`Tx::lock_log`] gave `size`), signs the new checkpoint
/// and records it.
pub fn append(
    tx: &mut dyn Tx,
    size: u64,
    entry: &LogEntry,
    key: &PrivateKey,
    origin: &str,
) -> Result<Appended, LogError> {
    add(tx, size, entry)?;
    let new_size = size + 1;
    let checkpoint = checkpoint(tx, new_size, key, origin)?;
    let inclusion = inclusion_in(tx, size, new_size)?;
    Ok(Appended {
        index: size,
        checkpoint,
        inclusion,
    })
}

/// Appends `entry` as entry `size` in `tx` (under the log's lock), without a checkpoint: a group
/// of entries is appended one by one and then signed once ([`checkpoint`]), each entry's proof
/// against that one checkpoint ([`inclusion_in`]).
pub fn add(tx: &mut dyn Tx, size: u64, entry: &LogEntry) -> Result<(), LogError> {
    let bytes = entry.to_bytes();
    let cell = RefCell::new(tx);
    let nodes = tlog::completed_by_append(&InTx(&cell), size, tlog::leaf_hash(&bytes))?;
    cell.borrow_mut().append_entry(size, &bytes, &nodes)?;
    Ok(())
}

/// Signs the checkpoint of the log's first `size` entries, as `tx` sees them, and records it as
/// the newest.
pub fn checkpoint(
    tx: &mut dyn Tx,
    size: u64,
    key: &PrivateKey,
    origin: &str,
) -> Result<SignedCheckpoint, LogError> {
    let cell = RefCell::new(tx);
    let root = tlog::root(&InTx(&cell), size)?;
    let checkpoint = receipt::sign_checkpoint(
        key,
        &Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        },
    )?;
    cell.borrow_mut().set_checkpoint(size, &checkpoint)?;
    Ok(checkpoint)
}

/// The inclusion proof of entry `leaf` in the tree of `size`, as `tx` sees the log.
pub fn inclusion_in(tx: &mut dyn Tx, leaf: u64, size: u64) -> Result<Vec<Hash32>, LogError> {
    let cell = RefCell::new(tx);
    Ok(tlog::inclusion_proof(&InTx(&cell), leaf, size)?
        .into_iter()
        .map(Hash32)
        .collect())
}

/// The size of the newest checkpoint, 0 for an empty log.
pub fn size(index: &dyn Index) -> Result<u64, LogError> {
    Ok(match index.checkpoint()? {
        Some(c) => {
            Checkpoint::parse(&c.checkpoint)
                .map_err(|e| IndexError::Corrupt(format!("the stored checkpoint: {e}")))?
                .size
        }
        None => 0,
    })
}

/// The inclusion proof of entry `index` in the tree of `size` (at most the current size).
pub fn inclusion(index: &dyn Index, leaf: u64, tree: u64) -> Result<Vec<Hash>, LogError> {
    let current = size(index)?;
    if tree > current {
        return Err(LogError::Range(format!(
            "tree size {tree} is beyond the log's {current}"
        )));
    }
    Ok(tlog::inclusion_proof(&Committed(index), leaf, tree)?)
}

/// The consistency proof between sizes `older` and `tree` (at most the current size).
pub fn consistency(index: &dyn Index, older: u64, tree: u64) -> Result<Vec<Hash>, LogError> {
    let current = size(index)?;
    if tree > current {
        return Err(LogError::Range(format!(
            "tree size {tree} is beyond the log's {current}"
        )));
    }
    Ok(tlog::consistency_proof(&Committed(index), older, tree)?)
}
