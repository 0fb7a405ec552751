//! The coordinator's transparency log: an append-only Merkle tree hashed as RFC 9162 (Certificate
//! Transparency 2.0) §2.1 says, its inclusion and consistency proofs, and the checkpoint text of
//! C2SP tlog-checkpoint (`<origin>\n<size>\n<base64 root>\n`).
//!
//! Both sides live here: the coordinator builds proofs from the complete subtrees it stores, and a
//! lab checks them against a checkpoint with nothing but this module. Proofs are built from
//! [`Subtrees`], so a store keeps one hash per complete, aligned subtree (2n − 1 for n leaves) and
//! never rehashes the log to answer: a proof is O(log² n) lookups and hashes.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A node or leaf hash.
pub type Hash = [u8; 32];

/// RFC 9162 §2.1.1: the leaf hash is over `0x00 ‖ entry`, an inner node over `0x01 ‖ left ‖
/// right`; the prefix keeps a leaf from passing for a node (second pre-image).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where a tree's complete subtrees come from: `subtree(level, index)` is the hash of leaves
/// `index·2^level .. (index+1)·2^level`, asked only for subtrees that are wholly inside the tree.
pub trait Subtrees {
    /// Why a hash could not be had (a store's error).
    type Error;
    /// The hash of the complete subtree at `level` (0 = a leaf's hash) and `index`.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Why a proof could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError<E> {
    /// The leaf or the older size is not inside the tree asked about.
    #[error("{what} {value} is outside a tree of size {size}")]
    OutOfRange {
        /// `leaf index` or `older size`.
        what: &'static str,
        /// The number asked for.
        value: u64,
        /// The tree's size.
        size: u64,
    },
    /// The store could not give a subtree's hash.
    #[error("the log's store failed")]
    Store(#[source] E),
}

/// The largest power of two strictly below `n` (`n` ≥ 2): RFC 9162's split point `k`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `start .. start + n` (`n` ≥ 1); `start` is a multiple of the largest power of two
/// ≤ `n` in every call this module makes, so a power-of-two `n` is one stored subtree.
fn range_hash<S: Subtrees>(s: &S, start: u64, n: u64) -> Result<Hash, S::Error> {
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return s.subtree(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(s, start, k)?;
    let right = range_hash(s, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The root of the first `size` leaves.
pub fn root<S: Subtrees>(s: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(s, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), leaf
/// side first.
pub fn inclusion_proof<S: Subtrees>(
    s: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange {
            what: "leaf index",
            value: index,
            size,
        });
    }
    let mut path = Vec::new();
    path_rec(s, index, 0, size, &mut path).map_err(ProofError::Store)?;
    Ok(path)
}

/// PATH(m, D[start .. start+n]), appended bottom-up.
fn path_rec<S: Subtrees>(
    s: &S,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path_rec(s, m, start, k, out)?;
        out.push(range_hash(s, start + k, n - k)?);
    } else {
        path_rec(s, m - k, start + k, n - k, out)?;
        out.push(range_hash(s, start, k)?);
    }
    Ok(())
}

/// The consistency proof between the tree of `older` leaves and that of `size` (RFC 9162
/// §2.1.4.1). Empty when `older` is 0 or equals `size`.
pub fn consistency_proof<S: Subtrees>(
    s: &S,
    older: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if older > size {
        return Err(ProofError::OutOfRange {
            what: "older size",
            value: older,
            size,
        });
    }
    let mut proof = Vec::new();
    if older == 0 || older == size {
        return Ok(proof);
    }
    subproof_rec(s, older, 0, size, true, &mut proof).map_err(ProofError::Store)?;
    Ok(proof)
}

/// SUBPROOF(m, D[start .. start+n], b).
fn subproof_rec<S: Subtrees>(
    s: &S,
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == n {
        if !whole {
            out.push(range_hash(s, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof_rec(s, m, start, k, whole, out)?;
        out.push(range_hash(s, start + k, n - k)?);
    } else {
        subproof_rec(s, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(s, start, k)?);
    }
    Ok(())
}

/// Why a proof did not verify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyProofError {
    /// The leaf index is not below the tree size, or the older size is above the newer.
    #[error("the proof's indices are out of range")]
    OutOfRange,
    /// The proof has too many or too few hashes for its indices.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The hashes lead to another root.
    #[error("the proof does not lead to the checkpoint's root")]
    RootMismatch,
}

/// Checks that `leaf` (a [`leaf_hash`]) is leaf `index` of the tree of `size` with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyProofError> {
    if index >= size {
        return Err(VerifyProofError::OutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(VerifyProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(VerifyProofError::WrongLength);
    }
    if r != *root {
        return Err(VerifyProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `older` leaves with `older_root` is a prefix of the tree of `size`
/// leaves with `root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    older: u64,
    size: u64,
    proof: &[Hash],
    older_root: &Hash,
    root: &Hash,
) -> Result<(), VerifyProofError> {
    if older > size {
        return Err(VerifyProofError::OutOfRange);
    }
    if older == size {
        if !proof.is_empty() {
            return Err(VerifyProofError::WrongLength);
        }
        return if older_root == root {
            Ok(())
        } else {
            Err(VerifyProofError::RootMismatch)
        };
    }
    if older == 0 {
        // Every tree extends the empty one; RFC 9162 defines no proof for it.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(VerifyProofError::WrongLength)
        };
    }
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if older.is_power_of_two() {
        hashes.push(*older_root);
    }
    hashes.extend_from_slice(proof);
    let Some((first, rest)) = hashes.split_first() else {
        return Err(VerifyProofError::WrongLength);
    };
    let (mut f, mut s) = (older - 1, size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(VerifyProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(VerifyProofError::WrongLength);
    }
    if fr != *older_root || sr != *root {
        return Err(VerifyProofError::RootMismatch);
    }
    Ok(())
}

/// The hashes of the complete subtrees that appending leaf number `index` (0-based) completes,
/// bottom-up after the leaf itself: what a store inserts, as `(level, index, hash)`, so that
/// [`Subtrees`] always has every complete subtree of the log.
pub fn completed_by_append<S: Subtrees>(
    s: &S,
    index: u64,
    leaf: Hash,
) -> Result<Vec<(u32, u64, Hash)>, S::Error> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut i, mut h) = (0u32, index, leaf);
    // A right child (odd index) completes its parent, whose left sibling is already stored.
    while i & 1 == 1 {
        let left = s.subtree(level, i - 1)?;
        h = node_hash(&left, &h);
        level += 1;
        i >>= 1;
        out.push((level, i, h));
    }
    Ok(out)
}

/// A log held in memory: every complete subtree by level. The lab's tests and small tools use it;
/// the coordinator keeps the same hashes in its index.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    levels: Vec<Vec<Hash>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends an entry; returns its index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        let index = self.size();
        let Ok(nodes) = completed_by_append(self, index, leaf_hash(entry));
        for (level, _, hash) in nodes {
            let level = level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
        }
        index
    }
}

impl Subtrees for MemoryLog {
    type Error = std::convert::Infallible;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        // Callers ask only for complete subtrees inside the tree; those are always stored.
        Ok(self.levels[level as usize][index as usize])
    }
}

/// A checkpoint: the log's origin line, its size and its root (C2SP tlog-checkpoint's body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log, e.g. `tsagent/CCEM-K11/pilot-NIM`; one line, no control characters.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// The root of those entries.
    pub root: Hash,
}

/// Why a checkpoint's text was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not three newline-terminated lines.
    #[error("a checkpoint is three lines: origin, size, base64 root")]
    Shape,
    /// The origin is empty or holds control characters.
    #[error("the checkpoint's origin is empty or not one printable line")]
    Origin,
    /// The size is not a decimal number without leading zeros.
    #[error("the checkpoint's size is not a decimal number")]
    Size,
    /// The root is not the base64 of 32 bytes.
    #[error("the checkpoint's root is not the base64 of a SHA-256")]
    Root,
}

impl Checkpoint {
    /// The text that is signed: `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_text(&self) -> String {
        use base64ct::Encoding;
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            base64ct::Base64::encode_string(&self.root)
        )
    }

    /// Parses the text [`Checkpoint::to_text`] writes, refusing any other spelling.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        use base64ct::Encoding;
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Shape)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Shape);
        };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(CheckpointError::Origin);
        }
        let canonical_number = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = match size.parse() {
            Ok(n) if canonical_number => n,
            _ => return Err(CheckpointError::Size),
        };
        let mut buf = [0u8; 32];
        let decoded =
            base64ct::Base64::decode(root, &mut buf).map_err(|_| CheckpointError::Root)?;
        if decoded.len() != 32 {
            return Err(CheckpointError::Root);
        }
        let parsed = Self {
            origin: origin.to_owned(),
            size,
            root: buf,
        };
        // One spelling: the base64 must be exactly what the writer produces.
        if parsed.to_text() != text {
            return Err(CheckpointError::Root);
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// MTH straight from RFC 9162's definition, over the entries themselves: the oracle.
    fn mth(entries: &[Vec<u8>]) -> Hash {
        match entries.len() {
            0 => empty_root(),
            1 => leaf_hash(&entries[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&entries[..k]), &mth(&entries[k..]))
            }
        }
    }

    fn log_of(n: usize) -> (MemoryLog, Vec<Vec<u8>>) {
        let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let mut log = MemoryLog::new();
        for e in &entries {
            log.append(e);
        }
        (log, entries)
    }

    #[test]
    fn roots_agree_with_the_definition() {
        let (log, entries) = log_of(70);
        for n in 0..=70 {
            assert_eq!(
                root(&log, n as u64).unwrap(),
                mth(&entries[..n]),
                "size {n}"
            );
        }
    }

    #[test]
    fn known_answer_for_the_empty_tree_and_one_leaf() {
        assert_eq!(
            crate::hex::encode(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // SHA-256 of the single byte 0x00: the leaf hash of the empty entry.
        assert_eq!(
            crate::hex::encode(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_changed_one_does_not() {
        let (log, entries) = log_of(33);
        for size in 1..=33u64 {
            let r = root(&log, size).unwrap();
            for i in 0..size {
                let proof = inclusion_proof(&log, i, size).unwrap();
                let leaf = leaf_hash(&entries[i as usize]);
                assert_eq!(verify_inclusion(&leaf, i, size, &proof, &r), Ok(()));
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(&leaf, i, size, &bad, &r).is_err());
                }
                let mut long = proof.clone();
                long.push(r);
                assert!(verify_inclusion(&leaf, i, size, &long, &r).is_err());
                if size > 1 {
                    assert!(verify_inclusion(&leaf, (i + 1) % size, size, &proof, &r).is_err());
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_shrunk_or_forked_tree_does_not() {
        let (log, entries) = log_of(33);
        for size in 0..=33u64 {
            let r = root(&log, size).unwrap();
            for older in 0..=size {
                let proof = consistency_proof(&log, older, size).unwrap();
                let r0 = root(&log, older).unwrap();
                assert_eq!(
                    verify_consistency(older, size, &proof, &r0, &r),
                    Ok(()),
                    "{older} → {size}"
                );
                if older > 0 && older < size {
                    // A fork: the same older size with another history.
                    let mut other: Vec<Vec<u8>> = entries[..older as usize].to_vec();
                    other[0] = b"rewritten".to_vec();
                    let forked = mth(&other);
                    assert!(verify_consistency(older, size, &proof, &forked, &r).is_err());
                }
            }
        }
        assert!(consistency_proof(&log, 5, 4).is_err());
        assert_eq!(
            verify_consistency(5, 4, &[], &empty_root(), &empty_root()),
            Err(VerifyProofError::OutOfRange)
        );
    }

    #[test]
    fn checkpoint_text_round_trips_in_one_spelling() {
        let c = Checkpoint {
            origin: "tsagent/K11/pilot".into(),
            size: 12,
            root: [7; 32],
        };
        let text = c.to_text();
        assert_eq!(Checkpoint::parse(&text), Ok(c));
        for bad in [
            "o\n12\n",
            "o\n012\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "o\n+12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "o\n12\nBwcH\n",
            "o\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "o\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\nextra\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn checkpoint_parse_never_panics(text in "\\PC{0,80}") {
            let _ = Checkpoint::parse(&text);
        }

        #[test]
        fn proofs_hold_for_any_sizes(size in 1u64..300, older_frac in 0.0f64..=1.0, leaf_frac in 0.0f64..1.0) {
            let (log, entries) = log_of(size as usize);
            let older = ((size as f64) * older_frac) as u64;
            let i = ((size as f64) * leaf_frac) as u64;
            let r = root(&log, size).unwrap();
            let p = inclusion_proof(&log, i, size).unwrap();
            prop_assert_eq!(verify_inclusion(&leaf_hash(&entries[i as usize]), i, size, &p, &r), Ok(()));
            let c = consistency_proof(&log, older, size).unwrap();
            prop_assert_eq!(verify_consistency(older, size, &c, &root(&log, older).unwrap(), &r), Ok(()));
        }
    }
}
