//! The intake: a spooled body in, a decision out. Transport-free (the server streams the body into
//! a [`Spool`](crate::blobs::Spool) and maps the [`Outcome`] to HTTP), so the chain rules are
//! tested without a socket and the same whatever the storage.
//!
//! A bundle, in order: its name; the Idempotency-Key against the body's hash; a re-send of bytes
//! already accepted gets the stored receipt; the signature for the lab the name names, before
//! anything else is parsed, then every hash, the manifest and the chain (`tsagent_bundle::verify`);
//! then the links (`tsagent_bundle::links`) and the heartbeats the readings must agree with; the
//! blob kept durably; and one transaction under the log's lock: the links and heartbeats again,
//! the log appended, the receipt signed and indexed, commit. Only then the reply.

use std::fs::File;
use std::io::BufReader;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use ssh_key::{PrivateKey, SshSig};
use tsagent_bundle::links::{self, LinkError};
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::{
    self, HEARTBEAT_NAMESPACE, LogEntry, RECEIPT_FORMAT, Receipt, SignedHeartbeat, SignedReceipt,
};
use tsagent_bundle::{AllowedSigners, NAMESPACE, VerifyError};

use crate::blobs::{BlobError, Blobs, Spooled};
use crate::index::{BundleRow, HeartbeatRow, Incident, Index, IndexError, Tx};
use crate::log::{self, LogError};

/// What the intake decided; the server turns it into a status and a JSON body.
#[derive(Debug)]
pub enum Outcome {
    /// 201: stored now; the new receipt.
    Accepted(SignedReceipt),
    /// 200: these exact bytes were stored before; the receipt given then.
    Again(String),
    /// 400: the request is unusable as such (no Idempotency-Key).
    BadRequest(String),
    /// 403: the signer is not one of the labs.
    Forbidden(String),
    /// 409: bundles are missing before this one.
    Gap {
        /// The bundle number expected next.
        expected: u64,
        /// Why, one line.
        message: String,
    },
    /// 409: another history for this lab and artefact; quarantined and recorded.
    Fork(String),
    /// 422: not a valid bundle or heartbeat, with the reason.
    Unprocessable(String),
    /// 503: try again shortly (a heartbeat arrived while the bundle was being verified).
    Retry(String),
    /// 507: the disk is full; nothing was kept.
    Full(String),
}

/// Why the chain rules refuse a verified bundle.
enum Refusal {
    /// It does not link to the head: a gap, or a fork.
    Link(LinkError),
    /// Its readings contradict a heartbeat (a fork): why.
    Contradicted(String),
    /// A heartbeat arrived while it was verified: send it again.
    Retry(String),
}

/// An intake failure that is the coordinator's, not the sender's (answered 500).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A blob could not be stored or read.
    #[error(transparent)]
    Blob(BlobError),
    /// The receipt could not be signed.
    #[error(transparent)]
    Sign(#[from] receipt::SignedError),
}

impl IntakeError {
    /// Whether the coordinator's disk is full, wherever that was found: the spool, the blob
    /// folder or the index. Nothing was committed; the reply is 507 and the lab sends again later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Blob(BlobError::Full { .. }) => true,
            Self::Index(e) | Self::Log(LogError::Index(e)) => e.is_disk_full(),
            _ => false,
        }
    }
}

/// The intake's state: who it is, whom it accepts, where it keeps things.
pub struct Intake {
    /// The coordinator's id.
    pub id: String,
    /// The log's origin.
    pub origin: String,
    /// Its signing key.
    pub key: PrivateKey,
    /// The labs' keys.
    pub labs: AllowedSigners,
    /// The index.
    pub index: Box<dyn Index>,
    /// The blobs.
    pub blobs: Box<dyn Blobs>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A bundle file name split as far as it can be without keys: `<stem>.tar`, the stem ending in
/// `-<6 or more digits>`.
fn split_name(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(".tar")?;
    let (front, digits) = stem.rsplit_once('-')?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((front, digits.parse().ok()?))
}

impl Intake {
    /// Starts spooling a body.
    pub fn spool(&self) -> Result<crate::blobs::Spool, BlobError> {
        self.blobs.spool()
    }

    /// The labs whose id the name could start with (`<lab>-<artefact>`: ids may hold `-`).
    fn labs_in_name<'a>(&self, front: &'a str, now: SystemTime) -> Vec<(&'a str, &'a str)> {
        front
            .match_indices('-')
            .map(|(i, _)| (&front[..i], &front[i + 1..]))
            .filter(|(lab, artefact)| {
                tsagent_bundle::is_valid_id(lab)
                    && tsagent_bundle::is_valid_id(artefact)
                    && !self.labs.keys_for(lab, NAMESPACE, now).is_empty()
            })
            .collect()
    }

    /// Takes a bundle sent as `name` with `idempotency_key`.
    pub fn bundle(
        &self,
        name: &str,
        idempotency_key: Option<&str>,
        body: Spooled,
    ) -> Result<Outcome, IntakeError> {
        let now = SystemTime::now();
        let Some((front, _)) = split_name(name) else {
            return Ok(Outcome::Unprocessable(format!(
                "`{name}` is not a bundle name: <lab>-<artefact>-<number, 6 digits>.tar"
            )));
        };
        let Some(key) = idempotency_key else {
            return Ok(Outcome::BadRequest(
                "an Idempotency-Key header (the tar's SHA-256) is required".into(),
            ));
        };
        if Hash32::parse(key) != Some(body.sha256) {
            return Ok(Outcome::Unprocessable(format!(
                "the Idempotency-Key is not the body's SHA-256 ({})",
                body.sha256
            )));
        }
        if let Some((sent_as, receipt)) = self.index.bundle_receipt(&body.sha256)? {
            return Ok(if sent_as == name {
                Outcome::Again(receipt)
            } else {
                Outcome::Unprocessable(format!(
                    "these bytes were accepted as `{sent_as}`, not `{name}`"
                ))
            });
        }
        let candidates = self.labs_in_name(front, now);
        if candidates.is_empty() {
            return Ok(Outcome::Forbidden(format!(
                "no lab in the coordinator's labs file is named by `{name}`"
            )));
        }
        let mut last = None;
        for (lab, artefact) in candidates {
            let marks = self.index.pending_heartbeat_seqs(lab, artefact)?;
            let file = File::open(body.path()).map_err(|source| {
                IntakeError::Blob(BlobError::Io {
                    action: "read back",
                    path: body.path().to_owned(),
                    source,
                })
            })?;
            match tsagent_bundle::verify_reader_marked(
                BufReader::new(file),
                &self.labs,
                Some(lab),
                now,
                &marks,
            ) {
                Ok(v) => {
                    let expected = format!(
                        "{}.tar",
                        tsagent_bundle::bundle_name(
                            &v.manifest.lab.id,
                            &v.manifest.artefact.id,
                            v.manifest.bundle_seq
                        )
                    );
                    if expected != name {
                        return Ok(Outcome::Unprocessable(format!(
                            "the bundle inside is `{expected}`, sent as `{name}`"
                        )));
                    }
                    return self.accept(name, body, &v, &marks);
                }
                Err(e) => last = Some(e),
            }
        }
        Ok(match last {
            Some(
                e @ (VerifyError::UnknownPrincipal { .. }
                | VerifyError::KeyNotAllowed { .. }
                | VerifyError::UnknownKey { .. }),
            ) => Outcome::Forbidden(chain_text(&e)),
            Some(e) => Outcome::Unprocessable(chain_text(&e)),
            None => Outcome::Forbidden(format!("no lab matches `{name}`")),
        })
    }

    /// Accepts a verified bundle, or records why not.
    ///
    /// The chain rules are judged twice. First without the log's lock, so that a bundle they
    /// refuse is refused before anything of it is kept. Then the blob is kept, and the rules are
    /// judged again under the lock, where the log is appended and the bundle indexed in one
    /// transaction. Keeping the blob is the slow part of an accept (a file and two folders
    /// fsync'd, or an upload to the bucket); under the lock, every lab's bundles — and in the
    /// scale-out mode every process's — would wait for it one at a time (BENCHMARKS.md, P7).
    fn accept(
        &self,
        name: &str,
        body: Spooled,
        v: &tsagent_bundle::VerifiedBundle,
        marks: &[u64],
    ) -> Result<Outcome, IntakeError> {
        let m = &v.manifest;
        let (lab, artefact) = (m.lab.id.as_str(), m.artefact.id.as_str());
        let (sha256, bytes) = (body.sha256, body.len);
        let mut tx = self.index.begin()?;
        match self.judge(&mut *tx, v, marks)? {
            // Nothing was written: committing ends the read and keeps a pooled connection.
            None => tx.commit()?,
            Some(refusal) => return self.refuse(tx, refusal, Some(body), sha256, lab, artefact),
        }
        // Durable before the index names it.
        match self.blobs.keep(body) {
            Ok(()) => {}
            Err(BlobError::Full { path }) => {
                // The path is the pilot's business, not the sender's: logged, not answered.
                tracing::error!("no space left for {}", path.display());
                return Ok(Outcome::Full(
                    "the coordinator's disk is full; nothing was accepted, send it again later"
                        .into(),
                ));
            }
            Err(e) => return Err(IntakeError::Blob(e)),
        }
        let mut tx = self.index.begin()?;
        let size = tx.lock_log()?;
        if let Some(refusal) = self.judge(&mut *tx, v, marks)? {
            // Another request for this lab and artefact, or a heartbeat, came in between. The
            // blob stays kept and unindexed (an orphan, as after a stop between the two): a
            // re-send of the same bytes indexes it; a fork's incident names it.
            return self.refuse(tx, refusal, None, sha256, lab, artefact);
        }
        let entry = LogEntry::Bundle {
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            bundle: name.to_owned(),
            sha256,
            bundle_seq: m.bundle_seq,
            first_seq: m.readings.first_seq,
            last_seq: m.readings.last_seq,
            chain_last: m.readings.chain_last,
        };
        let (signed, received_utc_us, log_index) = self.log_and_sign(&mut *tx, size, entry)?;
        tx.insert_bundle(&BundleRow {
            sha256,
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            bundle_seq: m.bundle_seq,
            name: name.to_owned(),
            sums_sha256: Hash32(v.sums_sha256),
            first_seq: m.readings.first_seq,
            last_seq: m.readings.last_seq,
            chain_last: m.readings.chain_last,
            readings: m.readings.count,
            bytes,
            last_reading_utc_us: v.last_reading_utc_us,
            received_utc_us,
            log_index,
            receipt: json(&signed),
        })?;
        tx.commit()?;
        Ok(Outcome::Accepted(signed))
    }

    /// The chain rules for a verified bundle against what `tx` sees: the link to the head, and
    /// every heartbeat that named one of its readings. `None`: it is the next one.
    fn judge(
        &self,
        tx: &mut dyn Tx,
        v: &tsagent_bundle::VerifiedBundle,
        marks: &[u64],
    ) -> Result<Option<Refusal>, IntakeError> {
        let m = &v.manifest;
        let (lab, artefact) = (m.lab.id.as_str(), m.artefact.id.as_str());
        let head = tx.head(lab, artefact)?;
        if let Err(e) = links::check_link(head.as_ref(), m) {
            return Ok(Some(Refusal::Link(e)));
        }
        for (seq, chain) in
            tx.heartbeats_between(lab, artefact, m.readings.first_seq, m.readings.last_seq)?
        {
            match v.marks.iter().find(|(s, _)| *s == seq) {
                Some((_, c)) if *c == chain => {}
                Some((_, c)) => {
                    return Ok(Some(Refusal::Contradicted(format!(
                        "bundle {} gives chain value {c} after reading {seq}, but a heartbeat said {chain}",
                        m.bundle_seq
                    ))));
                }
                None if marks.binary_search(&seq).is_err() => {
                    return Ok(Some(Refusal::Retry(format!(
                        "a heartbeat at reading {seq} arrived while this bundle was verified; send it again"
                    ))));
                }
                None => {
                    return Err(IntakeError::Index(IndexError::Corrupt(format!(
                        "reading {seq} was asked for and not marked"
                    ))));
                }
            }
        }
        Ok(None)
    }

    /// Answers a refusal of the bundle whose tar hashes to `sha`; `body` is `None` when its blob
    /// was already kept.
    fn refuse(
        &self,
        tx: Box<dyn Tx + '_>,
        refusal: Refusal,
        body: Option<Spooled>,
        sha: Hash32,
        lab: &str,
        artefact: &str,
    ) -> Result<Outcome, IntakeError> {
        match refusal {
            Refusal::Link(e) => self.refuse_link(tx, e, body, sha, lab, artefact),
            Refusal::Contradicted(detail) => {
                let kind = "heartbeat_contradicted";
                self.fork(tx, body, sha, lab, artefact, kind, detail)
            }
            Refusal::Retry(message) => Ok(Outcome::Retry(message)),
        }
    }

    /// Appends `entry`, and signs the receipt for it.
    fn log_and_sign(
        &self,
        tx: &mut dyn Tx,
        size: u64,
        entry: LogEntry,
    ) -> Result<(SignedReceipt, i64, u64), IntakeError> {
        let appended = log::append(tx, size, &entry, &self.key, &self.origin)?;
        let received_utc_us = now_us();
        let signed = receipt::sign_receipt(
            &self.key,
            &Receipt {
                format: RECEIPT_FORMAT.to_owned(),
                coordinator: self.id.clone(),
                entry,
                received_utc: tsagent_bundle::time::rfc3339(received_utc_us),
                log_index: appended.index,
                checkpoint: appended.checkpoint.checkpoint,
                checkpoint_signature: appended.checkpoint.signature,
                inclusion: appended.inclusion,
            },
        )?;
        Ok((signed, received_utc_us, appended.index))
    }

    fn refuse_link(
        &self,
        mut tx: Box<dyn Tx + '_>,
        e: LinkError,
        body: Option<Spooled>,
        sha: Hash32,
        lab: &str,
        artefact: &str,
    ) -> Result<Outcome, IntakeError> {
        match e {
            LinkError::Gap { expected, found } => {
                tx.note_gap(lab, artefact, found)?;
                tx.commit()?;
                Ok(Outcome::Gap {
                    expected,
                    message: e.to_string(),
                })
            }
            LinkError::Taken { found, .. } => {
                if let Some((taken, receipt)) = tx.bundle_at(lab, artefact, found)?
                    && taken == sha
                {
                    // Accepted by a concurrent request since the first look.
                    return Ok(Outcome::Again(receipt));
                }
                self.fork(tx, body, sha, lab, artefact, "fork", e.to_string())
            }
            _ => self.fork(tx, body, sha, lab, artefact, "fork", e.to_string()),
        }
    }

    /// Quarantines the body (unless it was already kept: then it stays where it is, unindexed),
    /// records the incident, and answers 409.
    #[allow(clippy::too_many_arguments)]
    fn fork(
        &self,
        mut tx: Box<dyn Tx + '_>,
        body: Option<Spooled>,
        sha: Hash32,
        lab: &str,
        artefact: &str,
        kind: &str,
        detail: String,
    ) -> Result<Outcome, IntakeError> {
        match body.map(|b| self.blobs.quarantine(b)) {
            None | Some(Ok(())) => {}
            Some(Err(BlobError::Full { .. })) => {
                return Ok(Outcome::Full(
                    "the coordinator's disk is full; the refused bundle was not kept".into(),
                ));
            }
            Some(Err(e)) => return Err(IntakeError::Blob(e)),
        }
        tx.insert_incident(&Incident {
            utc_us: now_us(),
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            kind: kind.to_owned(),
            detail: detail.clone(),
            sha256: Some(sha),
        })?;
        tx.commit()?;
        tracing::warn!(lab, artefact, kind, "{detail}");
        Ok(Outcome::Fork(detail))
    }

    /// Takes a heartbeat.
    pub fn heartbeat(&self, body: &[u8]) -> Result<Outcome, IntakeError> {
        let now = SystemTime::now();
        let Ok(signed) = serde_json::from_slice::<SignedHeartbeat>(body) else {
            return Ok(Outcome::Unprocessable(
                "not a signed heartbeat: {\"heartbeat\": …, \"signature\": …}".into(),
            ));
        };
        // Verify before parse: the key comes from the signature, its labs from allowed_signers.
        let Ok(sig) = SshSig::from_pem(&signed.signature) else {
            return Ok(Outcome::Unprocessable(
                "the heartbeat's signature is not an armored SSH signature".into(),
            ));
        };
        let entries = self
            .labs
            .entries_for_key(sig.public_key(), HEARTBEAT_NAMESPACE, now);
        let Some(entry) = entries.first() else {
            return Ok(Outcome::Forbidden(
                "the heartbeat's key is not a lab's key for namespace tsagent-heartbeat-v1".into(),
            ));
        };
        if receipt::verify_text(
            &entry.key,
            HEARTBEAT_NAMESPACE,
            "heartbeat",
            signed.heartbeat.as_bytes(),
            &signed.signature,
        )
        .is_err()
        {
            return Ok(Outcome::Forbidden("bad heartbeat signature".into()));
        }
        let hb = match receipt::parse_heartbeat(&signed.heartbeat) {
            Ok(hb) => hb,
            Err(e) => return Ok(Outcome::Unprocessable(chain_text(&e))),
        };
        if !entries.iter().any(|e| e.allows(&hb.lab)) {
            return Ok(Outcome::Forbidden(format!(
                "the heartbeat's key is not lab `{}`'s",
                hb.lab
            )));
        }
        let sha = Hash32(Sha256::digest(signed.heartbeat.as_bytes()).into());
        if let Some(receipt) = self.index.heartbeat_receipt(&sha)? {
            return Ok(Outcome::Again(receipt));
        }
        let (lab, artefact) = (hb.lab.as_str(), hb.artefact.as_str());
        let mut tx = self.index.begin()?;
        let size = tx.lock_log()?;
        if let Some(contradiction) =
            self.contradicts(&mut *tx, lab, artefact, hb.seq, hb.chain, now)?
        {
            tx.insert_incident(&Incident {
                utc_us: now_us(),
                lab: lab.to_owned(),
                artefact: artefact.to_owned(),
                kind: "heartbeat_contradicted".into(),
                detail: contradiction.clone(),
                sha256: None,
            })?;
            tx.commit()?;
            return Ok(Outcome::Fork(contradiction));
        }
        let entry = LogEntry::Heartbeat {
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            seq: hb.seq,
            chain: hb.chain,
            utc: hb.utc.clone(),
            sha256: sha,
        };
        let (receipt, received_utc_us, log_index) = self.log_and_sign(&mut *tx, size, entry)?;
        tx.insert_heartbeat(&HeartbeatRow {
            sha256: sha,
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            seq: hb.seq,
            chain: hb.chain,
            received_utc_us,
            log_index,
            text: signed.heartbeat,
            receipt: json(&receipt),
        })?;
        tx.commit()?;
        Ok(Outcome::Accepted(receipt))
    }

    /// Whether a heartbeat's chain head disagrees with what was already accepted: a bundle that
    /// carries that reading, or an earlier heartbeat at the same reading.
    fn contradicts(
        &self,
        tx: &mut dyn Tx,
        lab: &str,
        artefact: &str,
        seq: u64,
        chain: Hash32,
        now: SystemTime,
    ) -> Result<Option<String>, IntakeError> {
        for (_, earlier) in tx.heartbeats_between(lab, artefact, seq, seq)? {
            if earlier != chain {
                return Ok(Some(format!(
                    "a heartbeat gives chain value {chain} after reading {seq}, an earlier one {earlier}"
                )));
            }
        }
        let Some((sha, last_seq, chain_last)) = tx.bundle_covering(lab, artefact, seq)? else {
            return Ok(None);
        };
        let at = if last_seq == seq {
            chain_last
        } else {
            let file = self.blobs.open(&sha).map_err(IntakeError::Blob)?;
            let v = tsagent_bundle::verify_reader_marked(
                BufReader::new(file),
                &self.labs,
                Some(lab),
                now,
                &[seq],
            )
            .map_err(|e| IndexError::Corrupt(format!("stored bundle {sha}: {}", chain_text(&e))))?;
            match v.marks.first() {
                Some((_, c)) => *c,
                None => return Ok(None),
            }
        };
        Ok((at != chain).then(|| {
            format!(
                "a heartbeat gives chain value {chain} after reading {seq}, the accepted bundle {at}"
            )
        }))
    }
}

/// An error with its sources, on one line.
pub fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn json(signed: &SignedReceipt) -> String {
    // Two strings: serialising cannot fail.
    serde_json::to_string(signed).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsagent_bundle::chain::{GENESIS, ReadingRecord, ReadingStatus};
    use tsagent_bundle::{ArtefactInfo, InstrumentInfo, ReadingExport, SealInput, SealedBundle};

    /// Bundle 1 of lab `NIM`, artefact `Z1`, of two readings; `salt` gives other content.
    fn bundle_one(key: &PrivateKey, salt: f64) -> SealedBundle {
        let mut chain = GENESIS;
        let readings = (1..=2)
            .map(|seq| {
                let value = 10.0 + salt + seq as f64 * 1e-7;
                let record = ReadingRecord {
                    seq,
                    run_id: 1,
                    instrument_id: 1,
                    quantity: "voltage".into(),
                    value: Some(value),
                    status: ReadingStatus::Valid,
                    unit: "V".into(),
                    raw: format!("{value}"),
                    utc_us: 1_790_000_000_000_000 + seq as i64 * 1_000_000,
                    mono_ns: seq * 1_000_000_000,
                    boot_id: "boot".into(),
                };
                chain = record.chain_after(&chain);
                ReadingExport {
                    record,
                    chain,
                    sequence: "s".into(),
                    instrument: "dmm".into(),
                }
            })
            .collect();
        let input = SealInput {
            lab_id: "NIM".into(),
            lab_name: "NIM".into(),
            artefact: ArtefactInfo {
                id: "Z1".into(),
                kind: "zener".into(),
                serial: "S1".into(),
                nominal: 10.0,
                unit: "V".into(),
            },
            bundle_seq: 1,
            prev_sums_sha256: None,
            chain_prev: GENESIS,
            readings,
            events: vec![],
            instruments: vec![InstrumentInfo {
                id: 1,
                name: "dmm".into(),
                resource: "tcp://127.0.0.1:5025".into(),
                manufacturer: "HP".into(),
                model: "3458A".into(),
                serial: "1".into(),
                firmware: "9".into(),
            }],
            sequences_sha256: [1; 32],
            created_utc_us: 1_790_000_000_000_000,
            agent_version: "test".into(),
            custody: Default::default(),
            traceability: vec![],
            previous_receipt: None,
        };
        tsagent_bundle::seal(&input, key).unwrap()
    }

    #[test]
    fn a_fork_found_under_the_lock_after_the_blob_was_kept_is_recorded_and_left_unindexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        tsagent_bundle::generate_key(&path, "NIM").unwrap();
        let key = tsagent_bundle::load_signing_key(&path).unwrap();
        let labs = tsagent_bundle::allowed_signers_line("NIM", key.public_key()).unwrap();
        let intake = Intake {
            id: "pilot".into(),
            origin: "pilot/log".into(),
            key: key.clone(),
            labs: AllowedSigners::parse(&labs).unwrap(),
            index: Box::new(crate::index::Local::open(&dir.path().join("index.sqlite")).unwrap()),
            blobs: Box::new(crate::blobs::Folder::open(&dir.path().join("store")).unwrap()),
        };
        let spooled = |tar: &[u8]| {
            let mut s = intake.spool().unwrap();
            s.write(tar).unwrap();
            s.finish().unwrap()
        };
        let (a, b) = (bundle_one(&key, 0.0), bundle_one(&key, 1.0));
        let a_body = spooled(&a.tar);
        let key_a = a_body.sha256.to_string();
        assert!(matches!(
            intake.bundle(&a.file_name, Some(&key_a), a_body).unwrap(),
            Outcome::Accepted(_)
        ));
        // Another bundle 1, whose first look came before `a` was committed: it was judged the
        // next one, so its blob was kept; under the lock it is a fork.
        let b_body = spooled(&b.tar);
        let b_sha = b_body.sha256;
        let v = tsagent_bundle::verify_reader_marked(
            std::io::Cursor::new(&b.tar),
            &intake.labs,
            Some("NIM"),
            SystemTime::now(),
            &[],
        )
        .unwrap();
        intake.blobs.keep(b_body).unwrap();
        let mut tx = intake.index.begin().unwrap();
        tx.lock_log().unwrap();
        let refusal = intake.judge(&mut *tx, &v, &[]).unwrap().unwrap();
        assert!(matches!(
            refusal,
            Refusal::Link(LinkError::Taken { found: 1, .. })
        ));
        let outcome = intake
            .refuse(tx, refusal, None, b_sha, "NIM", "Z1")
            .unwrap();
        assert!(matches!(outcome, Outcome::Fork(_)), "{outcome:?}");

        let incidents = intake.index.incidents().unwrap();
        assert_eq!(incidents.len(), 1);
        assert_eq!(
            (incidents[0].kind.as_str(), incidents[0].sha256),
            ("fork", Some(b_sha))
        );
        assert_eq!(intake.index.bundles(None).unwrap().len(), 1);
        let report = crate::check::check(
            &*intake.index,
            &*intake.blobs,
            Some(key.public_key()),
            "pilot/log",
        )
        .unwrap();
        assert!(report.is_sound(), "{:?}", report.problems);
        assert_eq!(
            report.orphans,
            vec![b_sha],
            "kept, named by the incident, not indexed"
        );
    }

    #[test]
    fn names_split_at_the_number() {
        assert_eq!(split_name("NIM-Z1-000001.tar"), Some(("NIM-Z1", 1)));
        assert_eq!(split_name("A-B-C-1234567.tar"), Some(("A-B-C", 1_234_567)));
        assert_eq!(split_name("NIM-Z1-000001"), None);
        assert_eq!(split_name("NIM-Z1-00001.tar"), None);
        assert_eq!(split_name("NIM-Z1-00000x.tar"), None);
        assert_eq!(split_name(".tar"), None);
    }
}
