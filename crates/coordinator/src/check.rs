//! `tsagent coordinator check`: do the index, the blobs and the log agree? What a pilot runs after
//! a crash, a restore or a disk repair, and what the fault tests run after every kill.
//!
//! - Every indexed bundle's blob exists and its bytes hash to its name.
//! - Each lab's and artefact's bundles are numbered 1, 2, … without a hole.
//! - The log has as many entries as the newest checkpoint's size, the root recomputed from the
//!   entries alone is the checkpoint's, and so is the root from the stored subtrees (which proofs
//!   are built from); the checkpoint is signed by the coordinator's key.
//! - Every indexed bundle is the log entry its row names, and every bundle entry is indexed once.
//!
//! Blobs that no row names (orphans) are counted, not refused: a blob is kept durably before the
//! index transaction that names it commits, so a crash or a full disk between the two leaves one.
//! It is a whole, verified bundle under its own hash, nothing refers to it, and the lab's re-send
//! indexes it (keeping a blob that is already there is a no-op). They are never removed on their
//! own: with several coordinators on one store, another one may be between the two steps.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use sha2::{Digest, Sha256};
use ssh_key::PublicKey;
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::{self, LogEntry};
use tsagent_bundle::tlog::{self, Checkpoint, Hash};

use crate::blobs::{BlobError, Blobs};
use crate::index::{Index, IndexError};
use crate::log::{self, Committed, LogError};

/// Entries read from the index at a time.
const PAGE: u64 = 1024;
/// Problems listed in full; past that they are only counted.
const MAX_LISTED: usize = 50;

/// Why the check could not be carried out (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The index could not be read.
    #[error("cannot read the index")]
    Index(#[from] IndexError),
    /// The newest checkpoint could not be read again.
    #[error("cannot read the log")]
    Log(#[from] LogError),
    /// The blob store could not be listed.
    #[error("cannot list the blobs")]
    Blobs(#[from] BlobError),
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Bundles indexed.
    pub bundles: u64,
    /// Entries in the log.
    pub entries: u64,
    /// The newest checkpoint's size (0 for an empty log).
    pub size: u64,
    /// The root recomputed from the entries.
    pub root: Hash32,
    /// Blobs that no row names.
    pub orphans: Vec<Hash32>,
    /// What is wrong, one line each (at most [`MAX_LISTED`]).
    pub problems: Vec<String>,
    /// How many problems in all.
    pub problem_count: usize,
}

impl Report {
    /// Whether nothing is wrong (orphans are not wrong).
    pub fn is_sound(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }
}

/// RFC 9162's root, folded as entries stream past: one hash per complete subtree on the right
/// edge, so memory is O(log n) whatever the log's size.
#[derive(Default)]
struct Frontier(Vec<(u32, Hash)>);

impl Frontier {
    fn push(&mut self, leaf: Hash) {
        let (mut level, mut hash) = (0, leaf);
        while let Some(&(l, left)) = self.0.last()
            && l == level
        {
            self.0.pop();
            hash = tlog::node_hash(&left, &hash);
            level += 1;
        }
        self.0.push((level, hash));
    }

    /// The root: the subtrees on the right edge, joined from the right (the largest power of two
    /// is always the left child, as RFC 9162 §2.1.1 splits).
    fn root(&self) -> Hash {
        let mut iter = self.0.iter().rev();
        let Some(&(_, mut root)) = iter.next() else {
            return tlog::empty_root();
        };
        for (_, left) in iter {
            root = tlog::node_hash(left, &root);
        }
        root
    }
}

fn hash_blob(blobs: &dyn Blobs, sha: &Hash32) -> Result<Hash32, BlobError> {
    let mut file = blobs.open(sha)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).map_err(|source| BlobError::Io {
            action: "read",
            path: format!("blob {sha}").into(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Hash32(hasher.finalize().into()))
}

/// Checks that `index` and `blobs` agree and that the log verifies; `key` (the coordinator's
/// public key), when given, must have signed the newest checkpoint, whose origin must be `origin`.
pub fn check(
    index: &dyn Index,
    blobs: &dyn Blobs,
    key: Option<&PublicKey>,
    origin: &str,
) -> Result<Report, CheckError> {
    let mut report = Report {
        bundles: 0,
        entries: 0,
        size: 0,
        root: Hash32(tlog::empty_root()),
        orphans: Vec::new(),
        problems: Vec::new(),
        problem_count: 0,
    };

    // The newest checkpoint.
    let checkpoint = match index.checkpoint()? {
        None => None,
        Some(signed) => {
            if let Some(key) = key
                && let Err(e) = receipt::verify_checkpoint(key, &signed)
            {
                report.problem(format!("the newest checkpoint: {e}"));
            }
            match Checkpoint::parse(&signed.checkpoint) {
                Ok(c) => Some(c),
                Err(e) => {
                    report.problem(format!("the newest checkpoint is malformed: {e}"));
                    None
                }
            }
        }
    };
    if let Some(c) = &checkpoint {
        report.size = c.size;
        if c.origin != origin {
            report.problem(format!(
                "the newest checkpoint's origin is `{}`, the config's `{origin}`",
                c.origin
            ));
        }
    }

    // The entries the checkpoint covers, streamed: the root from them alone, and what each bundle
    // entry says. Reading no further than the checkpoint read first, and only the rows logged
    // within it, keeps the check right on a coordinator that is serving meanwhile.
    let mut frontier = Frontier::default();
    let mut logged: BTreeMap<u64, LogEntry> = BTreeMap::new();
    while report.entries < report.size {
        let page = index.entries(report.entries, PAGE.min(report.size - report.entries))?;
        if page.is_empty() {
            break;
        }
        for bytes in &page {
            frontier.push(tlog::leaf_hash(bytes));
            match serde_json::from_slice::<LogEntry>(bytes) {
                Ok(entry @ LogEntry::Bundle { .. }) => {
                    logged.insert(report.entries, entry);
                }
                Ok(LogEntry::Heartbeat { .. }) => {}
                Err(e) => report.problem(format!(
                    "log entry {} is not an entry of this format: {e}",
                    report.entries
                )),
            }
            report.entries += 1;
        }
    }
    report.root = Hash32(frontier.root());
    if report.entries != report.size {
        report.problem(format!(
            "the log holds {} entries, its newest checkpoint says {}",
            report.entries, report.size
        ));
    } else if !index.entries(report.size, 1)?.is_empty() && log::size(index)? == report.size {
        // An entry past a checkpoint that did not move: appended outside a transaction.
        report.problem(format!(
            "the log holds entries past its newest checkpoint's size {}",
            report.size
        ));
    } else if let Some(c) = &checkpoint {
        if c.root != report.root.0 {
            report.problem(format!(
                "the root recomputed from the {} entries is not the checkpoint's",
                report.entries
            ));
        }
        match tlog::root(&Committed(index), c.size) {
            Ok(stored) if stored == c.root => {}
            Ok(_) => report.problem(
                "the root from the stored subtrees (which proofs are built from) is not the checkpoint's"
                    .into(),
            ),
            Err(e) => report.problem(format!("the stored subtrees: {e}")),
        }
    }

    // Every indexed bundle: its blob, its entry, its place in its lab's numbering.
    let rows = index.bundles(None)?;
    let indexed: BTreeSet<[u8; 32]> = rows.iter().map(|b| b.sha256.0).collect();
    let mut previous: Option<(&str, &str, u64)> = None;
    let size = report.size;
    for b in rows.iter().filter(|b| b.log_index < size) {
        report.bundles += 1;
        let expected_seq = match previous {
            Some((lab, artefact, seq)) if lab == b.lab && artefact == b.artefact => seq + 1,
            _ => 1,
        };
        if b.bundle_seq != expected_seq {
            report.problem(format!(
                "{} {}: bundle {} follows bundle {} in the index",
                b.lab,
                b.artefact,
                b.bundle_seq,
                expected_seq - 1
            ));
        }
        previous = Some((&b.lab, &b.artefact, b.bundle_seq));
        match hash_blob(blobs, &b.sha256) {
            Ok(h) if h == b.sha256 => {}
            Ok(h) => report.problem(format!(
                "{}: the blob's bytes hash to {h}, not its name {}",
                b.name, b.sha256
            )),
            Err(e) => report.problem(format!("{}: {e}", b.name)),
        }
        let expected = LogEntry::Bundle {
            lab: b.lab.clone(),
            artefact: b.artefact.clone(),
            bundle: b.name.clone(),
            sha256: b.sha256,
            bundle_seq: b.bundle_seq,
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            chain_last: b.chain_last,
        };
        match logged.remove(&b.log_index) {
            Some(entry) if entry == expected => {}
            Some(_) => report.problem(format!(
                "{}: log entry {} is another bundle",
                b.name, b.log_index
            )),
            None => report.problem(format!(
                "{}: log entry {} is not a bundle entry",
                b.name, b.log_index
            )),
        }
    }
    for (i, entry) in &logged {
        if let LogEntry::Bundle { bundle, .. } = entry {
            report.problem(format!(
                "log entry {i} logs {bundle}, which the index does not hold"
            ));
        }
    }
    report.orphans = blobs
        .list()?
        .into_iter()
        .filter(|h| !indexed.contains(&h.0))
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_root_is_the_logs_root_at_every_size() {
        let mut log = tlog::MemoryLog::new();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), tlog::empty_root());
        for n in 0u32..70 {
            let entry = n.to_be_bytes();
            log.append(&entry);
            frontier.push(tlog::leaf_hash(&entry));
            let Ok(root) = tlog::root(&log, log.size());
            assert_eq!(frontier.root(), root, "size {}", log.size());
        }
    }
}
