//! What passes between a lab and the coordinator besides bundles: the coordinator's signed
//! receipts, the lab's signed heartbeats, the entries of the transparency log and its signed
//! checkpoints. Like the bundle, each signature is an SSHSIG that `ssh-keygen -Y verify` checks:
//!
//! ```text
//! ssh-keygen -Y verify -f coordinator_signers -I <coordinator id> -n tsagent-receipt-v1 \
//!     -s receipt.sig < receipt.json
//! ```
//!
//! A receipt names the exact bytes received (the tar's SHA-256, as AS2's signed receipts echo the
//! digest), the log entry those bytes became, the entry's inclusion proof and the checkpoint it
//! proves against; a lab checks all of it offline with [`verify_receipt`].
//!
//! Every JSON text here is written by serde_json from structs whose fields are declared in one
//! fixed order, compact: the signature is over those exact bytes, and a reader keeps them as
//! received rather than re-serialising.

use serde::{Deserialize, Serialize};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use thiserror::Error;

use crate::manifest::Hash32;
use crate::ssh::SshError;
use crate::tlog::{self, Checkpoint, CheckpointError, VerifyProofError};

/// The namespace receipts are signed in.
pub const RECEIPT_NAMESPACE: &str = "tsagent-receipt-v1";
/// The namespace the log's checkpoints are signed in.
pub const CHECKPOINT_NAMESPACE: &str = "tsagent-checkpoint-v1";
/// The namespace the lab's heartbeats are signed in.
pub const HEARTBEAT_NAMESPACE: &str = "tsagent-heartbeat-v1";
/// The value of a receipt's `format`.
pub const RECEIPT_FORMAT: &str = "tsagent-receipt-v1";
/// The value of a heartbeat's `format`.
pub const HEARTBEAT_FORMAT: &str = "tsagent-heartbeat-v1";

/// One entry of the transparency log; its leaf hash is over [`LogEntry::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogEntry {
    /// A bundle accepted.
    Bundle {
        /// The lab.
        lab: String,
        /// The artefact.
        artefact: String,
        /// The bundle's file name, `<lab>-<artefact>-<seq:06>.tar`.
        bundle: String,
        /// SHA-256 of the tar as received.
        sha256: Hash32,
        /// The manifest's `bundle_seq`.
        bundle_seq: u64,
        /// First reading sequence number carried.
        first_seq: u64,
        /// Last reading sequence number carried.
        last_seq: u64,
        /// The reading chain's value after `last_seq`.
        chain_last: Hash32,
    },
    /// A heartbeat logged: the lab's chain head at a moment.
    Heartbeat {
        /// The lab.
        lab: String,
        /// The artefact.
        artefact: String,
        /// The last reading's sequence number (0 before the first).
        seq: u64,
        /// The chain value after it.
        chain: Hash32,
        /// When the lab sent it, RFC 3339.
        utc: String,
        /// SHA-256 of the signed heartbeat text.
        sha256: Hash32,
    },
}

impl LogEntry {
    /// The entry's bytes in the log.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain strings, integers and hex: serialising this type cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Its leaf hash.
    pub fn leaf_hash(&self) -> tlog::Hash {
        tlog::leaf_hash(&self.to_bytes())
    }

    /// The lab it concerns.
    pub fn lab(&self) -> &str {
        match self {
            Self::Bundle { lab, .. } | Self::Heartbeat { lab, .. } => lab,
        }
    }
}

/// The body of a receipt, signed as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The coordinator's id (the principal of its key).
    pub coordinator: String,
    /// What was logged.
    pub entry: LogEntry,
    /// When the coordinator stored it, RFC 3339 UTC.
    pub received_utc: String,
    /// The entry's index in the log.
    pub log_index: u64,
    /// The checkpoint text the proof is against (`<origin>\n<size>\n<base64 root>\n`).
    pub checkpoint: String,
    /// The coordinator's SSHSIG over `checkpoint`, namespace [`CHECKPOINT_NAMESPACE`].
    pub checkpoint_signature: String,
    /// The entry's inclusion proof in that checkpoint's tree, leaf side first.
    pub inclusion: Vec<Hash32>,
}

/// A receipt as sent: `{ "receipt": "<JSON text>", "signature": "<armored SSHSIG>" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    /// The receipt's JSON text; the signature is over exactly these bytes.
    pub receipt: String,
    /// SSHSIG over `receipt`, namespace [`RECEIPT_NAMESPACE`].
    pub signature: String,
}

/// A signed checkpoint as `GET /v1/log/checkpoint` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// The checkpoint's text.
    pub checkpoint: String,
    /// SSHSIG over it, namespace [`CHECKPOINT_NAMESPACE`].
    pub signature: String,
}

/// A lab's heartbeat: its chain head, so that a later rewrite of what came before is a fork.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Always [`HEARTBEAT_FORMAT`].
    pub format: String,
    /// The lab.
    pub lab: String,
    /// The artefact.
    pub artefact: String,
    /// The last reading's sequence number (0 before the first).
    pub seq: u64,
    /// The chain value after it.
    pub chain: Hash32,
    /// When it was sent, RFC 3339 UTC.
    pub utc: String,
    /// Instruments online.
    pub instruments_online: u32,
    /// Instruments configured.
    pub instruments: u32,
    /// The artefact's custody state.
    pub custody: String,
    /// The agent's version.
    pub agent_version: String,
}

/// A heartbeat as sent: `{ "heartbeat": "<JSON text>", "signature": "<armored SSHSIG>" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHeartbeat {
    /// The heartbeat's JSON text.
    pub heartbeat: String,
    /// SSHSIG over it, namespace [`HEARTBEAT_NAMESPACE`].
    pub signature: String,
}

/// Why a signed text was refused.
#[derive(Debug, Error)]
pub enum SignedError {
    /// The signature is not an armored SSHSIG.
    #[error("the {what} signature is not an armored SSH signature")]
    SignatureFormat {
        /// `receipt`, `checkpoint` or `heartbeat`.
        what: &'static str,
        /// What ssh-key said.
        #[source]
        source: SshError,
    },
    /// The signature does not verify with the key, or is for another namespace.
    #[error("bad {what} signature: not made by the expected key in namespace {namespace}")]
    BadSignature {
        /// `receipt`, `checkpoint` or `heartbeat`.
        what: &'static str,
        /// The namespace expected.
        namespace: &'static str,
    },
    /// The signed text does not parse strictly.
    #[error("the {what} is not valid JSON of its format")]
    Json {
        /// `receipt` or `heartbeat`.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The `format` field is another one.
    #[error("the {what} has format `{found}`, expected `{expected}`")]
    Format {
        /// `receipt` or `heartbeat`.
        what: &'static str,
        /// Its format.
        found: String,
        /// The one known.
        expected: &'static str,
    },
    /// The checkpoint text is malformed.
    #[error("malformed checkpoint")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not hold.
    #[error("the receipt's inclusion proof fails")]
    Inclusion(#[source] VerifyProofError),
    /// The receipt is for something else than what was sent.
    #[error("the receipt's {field} is `{found}`, expected `{expected}`")]
    Mismatch {
        /// The field.
        field: &'static str,
        /// The receipt's value.
        found: String,
        /// What was sent.
        expected: String,
    },
    /// Signing failed.
    #[error("cannot sign the {what}")]
    Sign {
        /// What was being signed.
        what: &'static str,
        /// ssh-key's error.
        #[source]
        source: SshError,
    },
}

/// Signs `text` in `namespace`: the armored SSHSIG as text.
pub fn sign_text(
    key: &PrivateKey,
    namespace: &'static str,
    what: &'static str,
    text: &[u8],
) -> Result<String, SignedError> {
    let sign_err = |e: ssh_key::Error| SignedError::Sign {
        what,
        source: e.into(),
    };
    key.sign(namespace, HashAlg::Sha512, text)
        .map_err(sign_err)?
        .to_pem(LineEnding::LF)
        .map_err(sign_err)
}

/// Checks an armored SSHSIG over `text` by `key` in `namespace`.
pub fn verify_text(
    key: &PublicKey,
    namespace: &'static str,
    what: &'static str,
    text: &[u8],
    signature: &str,
) -> Result<(), SignedError> {
    let sig = SshSig::from_pem(signature).map_err(|e| SignedError::SignatureFormat {
        what,
        source: e.into(),
    })?;
    key.verify(namespace, text, &sig)
        .map_err(|_| SignedError::BadSignature { what, namespace })
}

/// Signs a checkpoint.
pub fn sign_checkpoint(
    key: &PrivateKey,
    checkpoint: &Checkpoint,
) -> Result<SignedCheckpoint, SignedError> {
    let text = checkpoint.to_text();
    let signature = sign_text(key, CHECKPOINT_NAMESPACE, "checkpoint", text.as_bytes())?;
    Ok(SignedCheckpoint {
        checkpoint: text,
        signature,
    })
}

/// Checks a signed checkpoint with the coordinator's key and parses it.
pub fn verify_checkpoint(
    key: &PublicKey,
    signed: &SignedCheckpoint,
) -> Result<Checkpoint, SignedError> {
    verify_text(
        key,
        CHECKPOINT_NAMESPACE,
        "checkpoint",
        signed.checkpoint.as_bytes(),
        &signed.signature,
    )?;
    Ok(Checkpoint::parse(&signed.checkpoint)?)
}

/// Signs a receipt.
pub fn sign_receipt(key: &PrivateKey, receipt: &Receipt) -> Result<SignedReceipt, SignedError> {
    let text = serde_json::to_string(receipt).map_err(|source| SignedError::Json {
        what: "receipt",
        source,
    })?;
    let signature = sign_text(key, RECEIPT_NAMESPACE, "receipt", text.as_bytes())?;
    Ok(SignedReceipt {
        receipt: text,
        signature,
    })
}

/// A receipt that verified: the receipt and the checkpoint it proves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Its checkpoint, parsed.
    pub checkpoint: Checkpoint,
}

/// Checks a receipt completely with the coordinator's key: its signature, the checkpoint's
/// signature, and the entry's inclusion in the checkpoint's tree; and, when `expected` is given,
/// that the entry is exactly the one sent.
pub fn verify_receipt(
    key: &PublicKey,
    signed: &SignedReceipt,
    expected: Option<&LogEntry>,
) -> Result<VerifiedReceipt, SignedError> {
    verify_text(
        key,
        RECEIPT_NAMESPACE,
        "receipt",
        signed.receipt.as_bytes(),
        &signed.signature,
    )?;
    let receipt: Receipt =
        serde_json::from_str(&signed.receipt).map_err(|source| SignedError::Json {
            what: "receipt",
            source,
        })?;
    if receipt.format != RECEIPT_FORMAT {
        return Err(SignedError::Format {
            what: "receipt",
            found: receipt.format,
            expected: RECEIPT_FORMAT,
        });
    }
    let checkpoint = verify_checkpoint(
        key,
        &SignedCheckpoint {
            checkpoint: receipt.checkpoint.clone(),
            signature: receipt.checkpoint_signature.clone(),
        },
    )?;
    let proof: Vec<tlog::Hash> = receipt.inclusion.iter().map(|h| h.0).collect();
    tlog::verify_inclusion(
        &receipt.entry.leaf_hash(),
        receipt.log_index,
        checkpoint.size,
        &proof,
        &checkpoint.root,
    )
    .map_err(SignedError::Inclusion)?;
    if let Some(expected) = expected
        && *expected != receipt.entry
    {
        return Err(SignedError::Mismatch {
            field: "entry",
            found: String::from_utf8_lossy(&receipt.entry.to_bytes()).into_owned(),
            expected: String::from_utf8_lossy(&expected.to_bytes()).into_owned(),
        });
    }
    Ok(VerifiedReceipt {
        receipt,
        checkpoint,
    })
}

/// What a later bundle's manifest records of a receipt already verified (and stored by the lab):
/// `None` if the stored text does not parse, which a verified receipt always does.
pub fn receipt_ref(bundle_seq: u64, signed: &SignedReceipt) -> Option<crate::manifest::ReceiptRef> {
    let receipt: Receipt = serde_json::from_str(&signed.receipt).ok()?;
    let checkpoint = Checkpoint::parse(&receipt.checkpoint).ok()?;
    Some(crate::manifest::ReceiptRef {
        bundle_seq,
        log_index: receipt.log_index,
        tree_size: checkpoint.size,
        root: Hash32(checkpoint.root),
    })
}

/// Signs a heartbeat with the lab's key.
pub fn sign_heartbeat(
    key: &PrivateKey,
    heartbeat: &Heartbeat,
) -> Result<SignedHeartbeat, SignedError> {
    let text = serde_json::to_string(heartbeat).map_err(|source| SignedError::Json {
        what: "heartbeat",
        source,
    })?;
    let signature = sign_text(key, HEARTBEAT_NAMESPACE, "heartbeat", text.as_bytes())?;
    Ok(SignedHeartbeat {
        heartbeat: text,
        signature,
    })
}

/// Parses a heartbeat's text strictly (the signature is checked by the caller, who knows which
/// key the lab named in it may use).
pub fn parse_heartbeat(text: &str) -> Result<Heartbeat, SignedError> {
    let heartbeat: Heartbeat = serde_json::from_str(text).map_err(|source| SignedError::Json {
        what: "heartbeat",
        source,
    })?;
    if heartbeat.format != HEARTBEAT_FORMAT {
        return Err(SignedError::Format {
            what: "heartbeat",
            found: heartbeat.format,
            expected: HEARTBEAT_FORMAT,
        });
    }
    Ok(heartbeat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::MemoryLog;

    fn key(dir: &std::path::Path, name: &str) -> PrivateKey {
        let path = dir.join(name);
        crate::generate_key(&path, name).unwrap();
        crate::load_signing_key(&path).unwrap()
    }

    fn entry(seq: u64) -> LogEntry {
        LogEntry::Bundle {
            lab: "NIM".into(),
            artefact: "Z1".into(),
            bundle: crate::bundle_name("NIM", "Z1", seq),
            sha256: Hash32([seq as u8; 32]),
            bundle_seq: seq,
            first_seq: seq * 10,
            last_seq: seq * 10 + 9,
            chain_last: Hash32([0xcc; 32]),
        }
    }

    fn receipt_for(key: &PrivateKey, log: &MemoryLog, index: u64, e: LogEntry) -> SignedReceipt {
        let size = log.size();
        let root = tlog::root(log, size).unwrap();
        let cp = sign_checkpoint(
            key,
            &Checkpoint {
                origin: "tsagent/test".into(),
                size,
                root,
            },
        )
        .unwrap();
        let inclusion = tlog::inclusion_proof(log, index, size)
            .unwrap()
            .into_iter()
            .map(Hash32)
            .collect();
        sign_receipt(
            key,
            &Receipt {
                format: RECEIPT_FORMAT.into(),
                coordinator: "pilot".into(),
                entry: e,
                received_utc: "2026-12-02T10:00:00Z".into(),
                log_index: index,
                checkpoint: cp.checkpoint,
                checkpoint_signature: cp.signature,
                inclusion,
            },
        )
        .unwrap()
    }

    #[test]
    fn entry_bytes_are_fixed() {
        let e = LogEntry::Heartbeat {
            lab: "L".into(),
            artefact: "A".into(),
            seq: 3,
            chain: Hash32([0; 32]),
            utc: "2026-12-02T10:00:00Z".into(),
            sha256: Hash32([1; 32]),
        };
        let text = String::from_utf8(e.to_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"kind\":\"heartbeat\",\"lab\":\"L\",\"artefact\":\"A\",\"seq\":3,\"chain\":\"{}\",\"utc\":\"2026-12-02T10:00:00Z\",\"sha256\":\"{}\"}}",
                "00".repeat(32),
                "01".repeat(32)
            )
        );
        assert_eq!(serde_json::from_str::<LogEntry>(&text).unwrap(), e);
    }

    #[test]
    fn a_receipt_verifies_and_each_kind_of_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let coord = key(dir.path(), "coord");
        let other = key(dir.path(), "other");
        let mut log = MemoryLog::new();
        for s in 1..=5 {
            log.append(&entry(s).to_bytes());
        }
        let good = receipt_for(&coord, &log, 3, entry(4));
        let public = coord.public_key();
        let v = verify_receipt(public, &good, Some(&entry(4))).unwrap();
        assert_eq!(v.checkpoint.size, 5);
        assert_eq!(v.receipt.log_index, 3);

        // Another entry than the one sent.
        assert!(matches!(
            verify_receipt(public, &good, Some(&entry(3))),
            Err(SignedError::Mismatch { .. })
        ));
        // Signed by another key.
        let forged = receipt_for(&other, &log, 3, entry(4));
        assert!(matches!(
            verify_receipt(public, &forged, None),
            Err(SignedError::BadSignature { .. })
        ));
        // The text changed after signing.
        let mut changed = good.clone();
        changed.receipt = changed
            .receipt
            .replace("\"log_index\":3", "\"log_index\":2");
        assert!(matches!(
            verify_receipt(public, &changed, None),
            Err(SignedError::BadSignature { .. })
        ));
        // A receipt signed over a claim the log does not hold.
        let lying = receipt_for(&coord, &log, 3, entry(9));
        assert!(matches!(
            verify_receipt(public, &lying, None),
            Err(SignedError::Inclusion(_))
        ));
        // A receipt signature passed off as a checkpoint signature.
        let v_cp = SignedCheckpoint {
            checkpoint: v.receipt.checkpoint.clone(),
            signature: good.signature.clone(),
        };
        assert!(verify_checkpoint(public, &v_cp).is_err());
    }

    #[test]
    fn a_heartbeat_round_trips_and_an_unknown_field_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lab = key(dir.path(), "lab");
        let hb = Heartbeat {
            format: HEARTBEAT_FORMAT.into(),
            lab: "NIM".into(),
            artefact: "Z1".into(),
            seq: 42,
            chain: Hash32([9; 32]),
            utc: "2026-12-02T10:00:00Z".into(),
            instruments_online: 3,
            instruments: 3,
            custody: "official_window".into(),
            agent_version: "0.1.0".into(),
        };
        let signed = sign_heartbeat(&lab, &hb).unwrap();
        verify_text(
            lab.public_key(),
            HEARTBEAT_NAMESPACE,
            "heartbeat",
            signed.heartbeat.as_bytes(),
            &signed.signature,
        )
        .unwrap();
        assert_eq!(parse_heartbeat(&signed.heartbeat).unwrap(), hb);
        let extra = signed.heartbeat.replacen('{', "{\"x\":1,", 1);
        assert!(parse_heartbeat(&extra).is_err());
    }
}
