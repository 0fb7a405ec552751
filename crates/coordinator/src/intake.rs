//! The intake: a spooled body in, a decision out. Transport-free (the server streams the body into
//! a [`Spool`](crate::blobs::Spool) and maps the [`Outcome`] to HTTP), so the chain rules are
//! tested without a socket and the same whatever the storage.
//!
//! A bundle, in order: its name; the Idempotency-Key against the body's hash; the signature for
//! the lab the name names, before anything else is parsed, then every hash, the manifest and the
//! chain (`tsagent_bundle::verify`); then one transaction under the log's lock, shared with the
//! other bundles waiting ([`GroupCommit`]): the links (`tsagent_bundle::links`) and the heartbeats
//! the readings must agree with, the blob durable, the log appended, the receipt signed and
//! indexed, commit. Only then the reply. A small body in memory ([`Intake::check_packed`]) goes
//! that way as it is, packed under the lock; any other is first looked up (a re-send gets the
//! stored receipt), judged once without the lock, and kept durably before it queues
//! ([`Intake::prepare`]).

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use ssh_key::{PrivateKey, SshSig};
use tsagent_bundle::links::{self, LinkError};
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::{
    self, HEARTBEAT_NAMESPACE, LogEntry, RECEIPT_FORMAT, Receipt, SignedCheckpoint,
    SignedHeartbeat, SignedReceipt,
};
use tsagent_bundle::{AllowedSigners, Marks, NAMESPACE, VerifyError};

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
    /// The transaction of the group this bundle was committed with failed, and so did the
    /// bundle's own transaction when tried alone.
    #[error("the commit of this bundle failed")]
    Group(#[source] Arc<IntakeError>),
    /// The request committing this bundle's group stopped before deciding it.
    #[error("the commit of this bundle's group was abandoned")]
    Abandoned,
}

impl IntakeError {
    /// Whether the coordinator's disk is full, wherever that was found: the spool, the blob
    /// folder or the index. Nothing was committed; the reply is 507 and the lab sends again later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Blob(BlobError::Full { .. }) => true,
            Self::Index(e) | Self::Log(LogError::Index(e)) => e.is_disk_full(),
            Self::Group(e) => e.is_disk_full(),
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
    /// The bundles waiting for a transaction, and whether one is being committed.
    group: GroupCommit,
}

/// Group commit: the bundles that finish verification while one transaction is being committed
/// wait here, and the first to find no transaction running starts a leader
/// ([`Intake::lead`]), which commits everything waiting in one transaction (one lock of the log,
/// one WAL sync; each bundle its own entry and receipt), then whatever queued meanwhile, until
/// nothing waits. A commit's sync is the slowest step under the log's lock: taken once per group
/// rather than once per bundle, labs sending at once share it (P7 in BENCHMARKS.md). Each
/// bundle's request waits for its own answer on a channel, so a request on the server's async
/// threads waits without holding one.
#[derive(Default)]
struct GroupCommit {
    state: Mutex<Queue>,
}

/// What [`GroupCommit`] guards.
#[derive(Default)]
struct Queue {
    /// Bundles waiting for the next transaction, in the order they arrived, each with where its
    /// answer goes.
    waiting: Vec<(Pending, Answer)>,
    /// Whether a leader is committing groups now.
    busy: bool,
}

/// An outcome, or why there is none.
type Decision = Result<Outcome, IntakeError>;

/// Where a bundle's decision goes: the request waiting for it.
type Answer = tokio::sync::oneshot::Sender<Decision>;

/// The leader's hold on the queue, disarmed when it returns. If it unwinds out of a group's
/// transaction instead, the group's answers are dropped with it, and this answers everything
/// else waiting (dropped: [`IntakeError::Abandoned`]) rather than leave it waiting forever; the
/// next bundle queued starts a leader.
struct Leading<'a> {
    group: &'a GroupCommit,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut q = self
            .group
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        q.waiting.clear();
        q.busy = false;
    }
}

/// A verified bundle waiting for its group's transaction.
struct Pending {
    name: String,
    sha256: Hash32,
    /// The body, when the store packs it ([`Blobs::packs`]): judged only under the log's lock
    /// and packed there if accepted, quarantined if a fork. `None`: its blob was kept before it
    /// was queued.
    body: Option<Spooled>,
    /// Its blob's number for [`Blobs::make_durable`], if the store left it to be synced.
    durable_at: Option<u64>,
    bytes: u64,
    v: tsagent_bundle::VerifiedBundle,
    asked: Asked,
}

/// The readings whose chain values a bundle's verification kept ([`Marks`]).
enum Asked {
    /// Every one: a packed body, verified without asking the index anything.
    All,
    /// Those the pending heartbeats named when it was verified (sorted).
    Seqs(Vec<u64>),
}

impl Asked {
    fn marks(&self) -> Marks<'_> {
        match self {
            Asked::All => Marks::All,
            Asked::Seqs(seqs) => Marks::Seqs(seqs),
        }
    }
}

/// What a bundle sent needs next ([`Intake::prepare`]).
pub enum Prepared {
    /// Nothing more: its answer.
    Done(Outcome),
    /// Its group's transaction ([`Intake::commit`], [`Intake::commit_blocking`]).
    Queued(Queued),
}

/// A verified bundle on its way to its group's transaction: its blob kept, or its body in
/// memory for the group to judge and pack.
pub struct Queued(Box<Pending>);

/// A small body's checks, made without the index ([`Intake::check_packed`]).
pub enum Checked {
    /// Nothing more: its answer.
    Done(Outcome),
    /// Refused, unless these bytes were accepted before: [`Intake::refused`] looks.
    Unless(Refused),
    /// Its group's transaction.
    Queued(Queued),
}

/// A refusal that a re-send of bytes accepted earlier overturns.
pub struct Refused {
    name: String,
    sha256: Hash32,
    outcome: Outcome,
}

/// What became of one bundle of a group before the group's checkpoint is signed.
enum Decided {
    /// Refused, or found already accepted.
    Done(Outcome),
    /// Appended to the log and indexed; its receipt waits for the group's checkpoint.
    Added(Added),
}

/// A bundle appended to the log, its receipt not yet signed.
struct Added {
    entry: LogEntry,
    index: u64,
    received_utc_us: i64,
    sha256: Hash32,
}

/// The buffer a spooled body of `len` bytes is read back through for verification: 8 to 256 KiB.
fn read_buffer(len: u64) -> usize {
    usize::try_from(len).map_or(256 << 10, |n| n.clamp(8 << 10, 256 << 10))
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
    /// An intake on these keys and storages.
    pub fn new(
        id: String,
        origin: String,
        key: PrivateKey,
        labs: AllowedSigners,
        index: Box<dyn Index>,
        blobs: Box<dyn Blobs>,
    ) -> Self {
        Self {
            id,
            origin,
            key,
            labs,
            index,
            blobs,
            group: GroupCommit::default(),
        }
    }

    /// Starts spooling a body of unknown length.
    pub fn spool(&self) -> Result<crate::blobs::Spool, BlobError> {
        self.blobs.spool()
    }

    /// Starts spooling a body whose length was declared.
    pub fn spool_for(&self, len: u64) -> Result<crate::blobs::Spool, BlobError> {
        self.blobs.spool_for(len)
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

    /// Takes a bundle sent as `name` with `idempotency_key`, and waits for its answer: the
    /// whole of an intake, on the calling thread ([`Intake::prepare`], then
    /// [`Intake::commit_blocking`]).
    pub fn bundle(
        &self,
        name: &str,
        idempotency_key: Option<&str>,
        body: Spooled,
    ) -> Result<Outcome, IntakeError> {
        match self.prepare(name, idempotency_key, body)? {
            Prepared::Done(outcome) => Ok(outcome),
            Prepared::Queued(queued) => self.commit_blocking(queued),
        }
    }

    /// Whether the store packs `body` ([`Blobs::packs`]): such a body goes to its group
    /// through [`Intake::check_packed`], which touches neither the index nor the disk.
    pub fn packs(&self, body: &Spooled) -> bool {
        self.blobs.packs(body)
    }

    /// Everything a bundle needs before its group's transaction; it may block on the index and
    /// the blob store.
    ///
    /// A body the store packs goes to the log's lock without a look at the index (each look
    /// waits for the group being committed, its sync included): it is judged only there, every
    /// reading's chain value at hand for the heartbeats, and packed there if accepted
    /// ([`Intake::check_packed`]). Any other body is looked up first, so that a re-send is not
    /// verified again, and its chain rules are judged twice. First without the lock, so that a
    /// bundle they refuse is refused before anything of it is kept. Then the blob is kept, and
    /// the rules are judged again under the lock, where the log is appended and the bundle
    /// indexed. Keeping such a blob is the slow part of an accept (a file and its folder synced,
    /// or an upload to the bucket); under the lock, every lab's bundles — and in the scale-out
    /// mode every process's — would wait for it one at a time (BENCHMARKS.md, P7).
    pub fn prepare(
        &self,
        name: &str,
        idempotency_key: Option<&str>,
        body: Spooled,
    ) -> Result<Prepared, IntakeError> {
        if self.packs(&body) {
            return Ok(match self.check_packed(name, idempotency_key, body)? {
                Checked::Done(outcome) => Prepared::Done(outcome),
                Checked::Unless(refused) => Prepared::Done(self.refused(refused)?),
                Checked::Queued(queued) => Prepared::Queued(queued),
            });
        }
        let front = match admit(name, idempotency_key, &body) {
            Ok(front) => front,
            Err(outcome) => return Ok(Prepared::Done(outcome)),
        };
        if let Some(again) = self.sent_before(name, &body.sha256)? {
            return Ok(Prepared::Done(again));
        }
        let verified = self.verify_as(name, front, &body, &mut |lab, artefact| {
            Ok(Asked::Seqs(
                self.index.pending_heartbeat_seqs(lab, artefact)?,
            ))
        })?;
        match verified {
            Ok((v, asked)) => self.keep_first(name, body, v, asked),
            Err(outcome) => Ok(Prepared::Done(outcome)),
        }
    }

    /// The checks of a body the store packs ([`Intake::packs`]) before its group: its name, its
    /// key and its verification, every reading's chain value kept. CPU only — no index, no disk
    /// — so the server makes them on the thread that received the body.
    pub fn check_packed(
        &self,
        name: &str,
        idempotency_key: Option<&str>,
        body: Spooled,
    ) -> Result<Checked, IntakeError> {
        let front = match admit(name, idempotency_key, &body) {
            Ok(front) => front,
            Err(outcome) => return Ok(Checked::Done(outcome)),
        };
        match self.verify_as(name, front, &body, &mut |_, _| Ok(Asked::All))? {
            Ok((v, asked)) => Ok(Checked::Queued(Queued(Box::new(Pending {
                name: name.to_owned(),
                sha256: body.sha256,
                bytes: body.len,
                body: Some(body),
                durable_at: None,
                v,
                asked,
            })))),
            Err(outcome) => Ok(Checked::Unless(Refused {
                name: name.to_owned(),
                sha256: body.sha256,
                outcome,
            })),
        }
    }

    /// A refusal of [`Intake::check_packed`], or the receipt if these bytes were accepted before
    /// (a re-send they would no longer verify for, a lab's key since removed, say).
    pub fn refused(&self, refused: Refused) -> Result<Outcome, IntakeError> {
        let Refused {
            name,
            sha256,
            outcome,
        } = refused;
        Ok(self.sent_before(&name, &sha256)?.unwrap_or(outcome))
    }

    /// Verifies `body`, sent as `name` (whose lab and artefact part is `front`), as signed by
    /// each lab the name may mean in turn, with the readings `asked` says to mark: the bundle,
    /// or the answer refusing it.
    fn verify_as(
        &self,
        name: &str,
        front: &str,
        body: &Spooled,
        asked: &mut dyn FnMut(&str, &str) -> Result<Asked, IntakeError>,
    ) -> Result<Verified, IntakeError> {
        let now = SystemTime::now();
        let candidates = self.labs_in_name(front, now);
        if candidates.is_empty() {
            return Ok(Err(Outcome::Forbidden(format!(
                "no lab in the coordinator's labs file is named by `{name}`"
            ))));
        }
        let mut last = None;
        for (lab, artefact) in candidates {
            let asked = asked(lab, artefact)?;
            let file = body.reader().map_err(IntakeError::Blob)?;
            match tsagent_bundle::verify_reader_marked(
                // The first pass reads every byte; 8 KiB at a time (the default) was a read call
                // per 8 KiB of a 23 MB bundle (P7 in BENCHMARKS.md). A small body needs no more
                // than its size.
                BufReader::with_capacity(read_buffer(body.len), file),
                &self.labs,
                Some(lab),
                now,
                asked.marks(),
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
                        return Ok(Err(Outcome::Unprocessable(format!(
                            "the bundle inside is `{expected}`, sent as `{name}`"
                        ))));
                    }
                    return Ok(Ok((v, asked)));
                }
                Err(e) => last = Some(e),
            }
        }
        Ok(Err(match last {
            Some(
                e @ (VerifyError::UnknownPrincipal { .. }
                | VerifyError::KeyNotAllowed { .. }
                | VerifyError::UnknownKey { .. }),
            ) => Outcome::Forbidden(chain_text(&e)),
            Some(e) => Outcome::Unprocessable(chain_text(&e)),
            None => Outcome::Forbidden(format!("no lab matches `{name}`")),
        }))
    }

    /// The answer to bytes hashing to `sha256` sent as `name`, if they were accepted before:
    /// their receipt, whether or not they would verify today (a lab's key may have been removed
    /// since), or a refusal if they were accepted under another name.
    fn sent_before(&self, name: &str, sha256: &Hash32) -> Result<Option<Outcome>, IntakeError> {
        Ok(self
            .index
            .bundle_receipt(sha256)?
            .map(|(sent_as, receipt)| match sent_as == name {
                true => Outcome::Again(receipt),
                false => Outcome::Unprocessable(format!(
                    "these bytes were accepted as `{sent_as}`, not `{name}`"
                )),
            }))
    }

    /// A verified bundle whose store does not pack it: judged without the log's lock, then its
    /// blob kept, before its group ([`Intake::prepare`]).
    fn keep_first(
        &self,
        name: &str,
        body: Spooled,
        v: tsagent_bundle::VerifiedBundle,
        asked: Asked,
    ) -> Result<Prepared, IntakeError> {
        let (sha256, bytes) = (body.sha256, body.len);
        let m = &v.manifest;
        let (lab, artefact) = (m.lab.id.as_str(), m.artefact.id.as_str());
        let mut tx = self.index.begin()?;
        match self.judge(&mut *tx, &v, &asked)? {
            // Nothing was written: committing ends the read and keeps a pooled connection.
            None => tx.commit()?,
            Some(refusal) => {
                let outcome = self.refuse(&mut *tx, refusal, Some(body), sha256, lab, artefact)?;
                tx.commit()?;
                return Ok(Prepared::Done(outcome));
            }
        }
        // Durable before the index names it: now, or by the group's leader before its
        // transaction, with every other blob of the group in one sync.
        let durable_at = match self.blobs.keep_later(body) {
            Ok(at) => at,
            Err(BlobError::Full { path }) => {
                // The path is the pilot's business, not the sender's: logged, not answered.
                tracing::error!("no space left for {}", path.display());
                return Ok(Prepared::Done(Outcome::Full(FULL.into())));
            }
            Err(e) => return Err(IntakeError::Blob(e)),
        };
        Ok(Prepared::Queued(Queued(Box::new(Pending {
            name: name.to_owned(),
            sha256,
            body: None,
            durable_at,
            bytes,
            v,
            asked,
        }))))
    }

    /// Queues a bundle for its group and waits for its decision without holding a thread; a
    /// leader to commit it is started on the runtime's blocking threads if none is running.
    /// Called from the runtime the intake serves in.
    pub async fn commit(self: &Arc<Self>, queued: Queued) -> Result<Outcome, IntakeError> {
        let (answer, lead) = self.submit(queued);
        if lead {
            let me = Arc::clone(self);
            // Detached: it commits what it took whether or not this request still waits.
            drop(tokio::task::spawn_blocking(move || me.lead()));
        }
        answer.await.unwrap_or(Err(IntakeError::Abandoned))
    }

    /// Queues a bundle for its group and waits for its decision on the calling thread, which
    /// leads if no leader is running. Not from async code.
    pub fn commit_blocking(&self, queued: Queued) -> Result<Outcome, IntakeError> {
        let (answer, lead) = self.submit(queued);
        if lead {
            self.lead();
        }
        answer
            .blocking_recv()
            .unwrap_or(Err(IntakeError::Abandoned))
    }

    /// Queues a bundle for the next group: where its decision will come, and whether the caller
    /// must start a leader (none is running).
    fn submit(&self, Queued(pending): Queued) -> (tokio::sync::oneshot::Receiver<Decision>, bool) {
        let (answer, decision) = tokio::sync::oneshot::channel();
        let mut q = self.queue();
        q.waiting.push((*pending, answer));
        let lead = !q.busy;
        q.busy = true;
        (decision, lead)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic elsewhere left the queue as it was between two whole steps: still usable.
        self.group
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits groups, each everything waiting when the last was done, until nothing waits.
    fn lead(&self) {
        let leading = Leading { group: &self.group };
        loop {
            let waiting = {
                let mut q = self.queue();
                if q.waiting.is_empty() {
                    // Under the same lock a request queues under: the next one leads.
                    q.busy = false;
                    drop(q);
                    std::mem::forget(leading);
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let (group, answers): (Vec<_>, Vec<_>) = waiting
                .into_iter()
                .enumerate()
                .map(|(id, (pending, answer))| ((id as u64, pending), answer))
                .unzip();
            for ((_, decision), answer) in self.commit_group(group).into_iter().zip(answers) {
                // A request that went away (its client hung up) is answered by no one; its
                // bundle is decided all the same, and a re-send finds it.
                let _ = answer.send(decision);
            }
        }
    }

    /// One transaction for `group`, in order: each bundle judged against what the ones before
    /// it in the group wrote, appended and indexed, or refused. If the transaction fails as a
    /// whole, each bundle is tried again alone, so that one bundle's failure is not its group's.
    fn commit_group(
        &self,
        mut group: Vec<(u64, Pending)>,
    ) -> Vec<(u64, Result<Outcome, IntakeError>)> {
        // The group's blobs kept before it was queued, synced together before the index names
        // any of them (those packed under the lock are synced there).
        if let Some(upto) = group.iter().filter_map(|(_, p)| p.durable_at).max()
            && let Err(e) = self.blobs.make_durable(upto)
        {
            let e = Arc::new(IntakeError::Blob(e));
            return group
                .iter()
                .map(|(id, _)| (*id, Err(IntakeError::Group(e.clone()))))
                .collect();
        }
        if group.len() > 1 {
            match self.decide_in_one(&mut group) {
                Ok(outcomes) => {
                    return group
                        .iter()
                        .map(|(id, _)| *id)
                        .zip(outcomes.into_iter().map(Ok))
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(
                        "a group of {} bundles failed to commit ({}); each is tried alone",
                        group.len(),
                        chain_text(&e)
                    );
                }
            }
        }
        group
            .iter_mut()
            .map(|one| {
                let outcome = self
                    .decide_in_one(std::slice::from_mut(one))
                    .map(|mut o| o.remove(0));
                (one.0, outcome)
            })
            .collect()
    }

    /// Decides `group` in one transaction under the log's lock; the outcomes in its order.
    ///
    /// The bundles accepted are appended one by one, and the log's checkpoint is signed once,
    /// for the group, after the last: each receipt's inclusion proof is against that checkpoint.
    /// A checkpoint signed per bundle would have been the newest for a moment only, inside a
    /// transaction no one else sees; one signature per group is one fewer per bundle, and fewer
    /// subtree reads (P7 in BENCHMARKS.md).
    fn decide_in_one(&self, group: &mut [(u64, Pending)]) -> Result<Vec<Outcome>, IntakeError> {
        let mut tx = self.index.begin()?;
        let mut size = tx.lock_log()?;
        let mut outcomes = Vec::with_capacity(group.len());
        let mut added = Vec::new();
        for (at, (_, p)) in group.iter_mut().enumerate() {
            match self.decide(&mut *tx, &mut size, p)? {
                Decided::Done(outcome) => outcomes.push(Some(outcome)),
                Decided::Added(a) => {
                    outcomes.push(None);
                    added.push((at, a));
                }
            }
        }
        // The bodies packed just now, synced together before the commit names them.
        let packed = group.iter().filter(|(_, p)| p.body.is_some());
        if let Some(upto) = packed.filter_map(|(_, p)| p.durable_at).max() {
            self.blobs.make_durable(upto).map_err(IntakeError::Blob)?;
        }
        let mut receipts = HashMap::with_capacity(added.len());
        if !added.is_empty() {
            let checkpoint = log::checkpoint(&mut *tx, size, &self.key, &self.origin)?;
            for (at, a) in added {
                let inclusion = log::inclusion_in(&mut *tx, a.index, size)?;
                let signed =
                    self.sign_receipt(a.entry, a.received_utc_us, a.index, &checkpoint, inclusion)?;
                let text = json(&signed);
                tx.set_receipt(&a.sha256, &text)?;
                receipts.insert(a.sha256, text);
                outcomes[at] = Some(Outcome::Accepted(signed));
            }
        }
        let mut decided = Vec::with_capacity(outcomes.len());
        for (outcome, (_, p)) in outcomes.into_iter().zip(group.iter()) {
            decided.push(match outcome {
                // A re-send of a bundle accepted earlier in this group found its row before
                // its receipt was signed: it gets that receipt.
                Some(Outcome::Again(text)) if text.is_empty() => {
                    let Some(text) = receipts.get(&p.sha256) else {
                        return Err(IntakeError::Index(IndexError::Corrupt(format!(
                            "bundle {} has no receipt",
                            p.sha256
                        ))));
                    };
                    Outcome::Again(text.clone())
                }
                Some(outcome) => outcome,
                None => {
                    return Err(IntakeError::Index(IndexError::Corrupt(
                        "a bundle of the group was left undecided".into(),
                    )));
                }
            });
        }
        tx.commit()?;
        Ok(decided)
    }

    /// One bundle of a group, under the log's lock: judged again, then appended and indexed; its
    /// receipt is signed with its group's checkpoint ([`Intake::decide_in_one`]).
    fn decide(
        &self,
        tx: &mut dyn Tx,
        size: &mut u64,
        p: &mut Pending,
    ) -> Result<Decided, IntakeError> {
        let m = &p.v.manifest;
        let (lab, artefact) = (m.lab.id.as_str(), m.artefact.id.as_str());
        if let Some(refusal) = self.judge(tx, &p.v, &p.asked)? {
            // A packed body is judged here first: a fork's is quarantined now. Any other was
            // judged before its blob was kept, and another request for this lab and artefact,
            // or a heartbeat, came in between: the blob stays kept and unindexed (an orphan, as
            // after a stop between the two); a re-send of the same bytes indexes it; a fork's
            // incident names it.
            let body = p.body.take();
            return Ok(Decided::Done(
                self.refuse(tx, refusal, body, p.sha256, lab, artefact)?,
            ));
        }
        if let Some(body) = &p.body {
            // Synced with the group's other packed bodies before the commit (decide_in_one).
            p.durable_at = match self.blobs.pack(body) {
                Ok(at) => at,
                Err(BlobError::Full { path }) => {
                    tracing::error!("no space left for {}", path.display());
                    return Ok(Decided::Done(Outcome::Full(FULL.into())));
                }
                Err(e) => return Err(IntakeError::Blob(e)),
            };
        }
        let entry = LogEntry::Bundle {
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            bundle: p.name.clone(),
            sha256: p.sha256,
            bundle_seq: m.bundle_seq,
            first_seq: m.readings.first_seq,
            last_seq: m.readings.last_seq,
            chain_last: m.readings.chain_last,
        };
        let index = *size;
        log::add(tx, index, &entry)?;
        *size += 1;
        let received_utc_us = now_us();
        tx.insert_bundle(&BundleRow {
            sha256: p.sha256,
            lab: lab.to_owned(),
            artefact: artefact.to_owned(),
            bundle_seq: m.bundle_seq,
            name: p.name.clone(),
            sums_sha256: Hash32(p.v.sums_sha256),
            first_seq: m.readings.first_seq,
            last_seq: m.readings.last_seq,
            chain_last: m.readings.chain_last,
            readings: m.readings.count,
            bytes: p.bytes,
            last_reading_utc_us: p.v.last_reading_utc_us,
            received_utc_us,
            log_index: index,
            // Set once the group's checkpoint is signed, before the commit.
            receipt: String::new(),
        })?;
        Ok(Decided::Added(Added {
            entry,
            index,
            received_utc_us,
            sha256: p.sha256,
        }))
    }

    /// The chain rules for a verified bundle against what `tx` sees: the link to the head, and
    /// every heartbeat that named one of its readings. `None`: it is the next one.
    fn judge(
        &self,
        tx: &mut dyn Tx,
        v: &tsagent_bundle::VerifiedBundle,
        asked: &Asked,
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
            // Kept in `seq` order.
            let mark = v.marks.binary_search_by_key(&seq, |(s, _)| *s).ok();
            match mark.map(|at| v.marks[at]) {
                Some((_, c)) if c == chain => {}
                Some((_, c)) => {
                    return Ok(Some(Refusal::Contradicted(format!(
                        "bundle {} gives chain value {c} after reading {seq}, but a heartbeat said {chain}",
                        m.bundle_seq
                    ))));
                }
                None if matches!(asked, Asked::Seqs(seqs) if seqs.binary_search(&seq).is_err()) => {
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

    /// Answers a refusal of the bundle whose tar hashes to `sha`, writing what it records in `tx`
    /// (the caller commits); `body` is `None` when its blob was already kept.
    fn refuse(
        &self,
        tx: &mut dyn Tx,
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

    /// Appends `entry` alone, with its own checkpoint, and signs the receipt for it.
    fn log_and_sign(
        &self,
        tx: &mut dyn Tx,
        size: u64,
        entry: LogEntry,
    ) -> Result<(SignedReceipt, i64, u64), IntakeError> {
        let appended = log::append(tx, size, &entry, &self.key, &self.origin)?;
        let received_utc_us = now_us();
        let signed = self.sign_receipt(
            entry,
            received_utc_us,
            appended.index,
            &appended.checkpoint,
            appended.inclusion,
        )?;
        Ok((signed, received_utc_us, appended.index))
    }

    /// The receipt for entry `log_index`, with its inclusion proof in `checkpoint`.
    fn sign_receipt(
        &self,
        entry: LogEntry,
        received_utc_us: i64,
        log_index: u64,
        checkpoint: &SignedCheckpoint,
        inclusion: Vec<Hash32>,
    ) -> Result<SignedReceipt, IntakeError> {
        Ok(receipt::sign_receipt(
            &self.key,
            &Receipt {
                format: RECEIPT_FORMAT.to_owned(),
                coordinator: self.id.clone(),
                entry,
                received_utc: tsagent_bundle::time::rfc3339(received_utc_us),
                log_index,
                checkpoint: checkpoint.checkpoint.clone(),
                checkpoint_signature: checkpoint.signature.clone(),
                inclusion,
            },
        )?)
    }

    fn refuse_link(
        &self,
        tx: &mut dyn Tx,
        e: LinkError,
        body: Option<Spooled>,
        sha: Hash32,
        lab: &str,
        artefact: &str,
    ) -> Result<Outcome, IntakeError> {
        match e {
            LinkError::Gap { expected, found } => {
                tx.note_gap(lab, artefact, found)?;
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
    /// records the incident in `tx` (the caller commits), and answers 409.
    #[allow(clippy::too_many_arguments)]
    fn fork(
        &self,
        tx: &mut dyn Tx,
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
                Marks::Seqs(&[seq]),
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

/// The checks of a bundle's request before its body is read: its name, and the
/// Idempotency-Key against the body's hash. The name's lab and artefact part, or the answer.
fn admit<'a>(
    name: &'a str,
    idempotency_key: Option<&str>,
    body: &Spooled,
) -> Result<&'a str, Outcome> {
    let Some((front, _)) = split_name(name) else {
        return Err(Outcome::Unprocessable(format!(
            "`{name}` is not a bundle name: <lab>-<artefact>-<number, 6 digits>.tar"
        )));
    };
    let Some(key) = idempotency_key else {
        return Err(Outcome::BadRequest(
            "an Idempotency-Key header (the tar's SHA-256) is required".into(),
        ));
    };
    if Hash32::parse(key) != Some(body.sha256) {
        return Err(Outcome::Unprocessable(format!(
            "the Idempotency-Key is not the body's SHA-256 ({})",
            body.sha256
        )));
    }
    Ok(front)
}

/// A bundle verified, with the readings its verification marked; or the answer refusing it.
type Verified = Result<(tsagent_bundle::VerifiedBundle, Asked), Outcome>;

/// The answer to a bundle the disk had no room for.
const FULL: &str = "the coordinator's disk is full; nothing was accepted, send it again later";

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
        let (readings, _) = readings(1, GENESIS, salt);
        tsagent_bundle::seal(&bundle_input("NIM", readings), key).unwrap()
    }

    /// Two chained readings from `first`, after `chain`; `salt` gives other values. Returns
    /// them and the chain value after the last.
    fn readings(first: u64, mut chain: [u8; 32], salt: f64) -> (Vec<ReadingExport>, [u8; 32]) {
        let readings = (first..first + 2)
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
        (readings, chain)
    }

    /// Bundle 1 of `lab`, artefact `Z1`, with these readings.
    fn bundle_input(lab: &str, readings: Vec<ReadingExport>) -> SealInput {
        SealInput {
            lab_id: lab.into(),
            lab_name: lab.into(),
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
        }
    }

    #[test]
    fn a_fork_found_under_the_lock_after_the_blob_was_kept_is_recorded_and_left_unindexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        tsagent_bundle::generate_key(&path, "NIM").unwrap();
        let key = tsagent_bundle::load_signing_key(&path).unwrap();
        let labs = tsagent_bundle::allowed_signers_line("NIM", key.public_key()).unwrap();
        let intake = Intake::new(
            "pilot".into(),
            "pilot/log".into(),
            key.clone(),
            AllowedSigners::parse(&labs).unwrap(),
            Box::new(crate::index::Local::open(&dir.path().join("index.sqlite")).unwrap()),
            Box::new(crate::blobs::Folder::open(&dir.path().join("store")).unwrap()),
        );
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
            Marks::Seqs(&[]),
        )
        .unwrap();
        intake.blobs.keep(b_body).unwrap();
        let mut tx = intake.index.begin().unwrap();
        tx.lock_log().unwrap();
        let refusal = intake
            .judge(&mut *tx, &v, &Asked::Seqs(vec![]))
            .unwrap()
            .unwrap();
        assert!(matches!(
            refusal,
            Refusal::Link(LinkError::Taken { found: 1, .. })
        ));
        let outcome = intake
            .refuse(&mut *tx, refusal, None, b_sha, "NIM", "Z1")
            .unwrap();
        tx.commit().unwrap();
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

    /// A lab sealing consecutive bundles of two readings; `other` seals the next one with other
    /// readings (a fork) without advancing.
    struct Lab {
        id: &'static str,
        key: PrivateKey,
        bundle_seq: u64,
        chain: [u8; 32],
        prev_sums: Option<[u8; 32]>,
    }

    impl Lab {
        fn seal(&self, salt: f64) -> (SealedBundle, [u8; 32]) {
            let (readings, chain) = readings(self.bundle_seq * 2 + 1, self.chain, salt);
            let mut input = bundle_input(self.id, readings);
            input.bundle_seq = self.bundle_seq + 1;
            input.prev_sums_sha256 = self.prev_sums;
            input.chain_prev = self.chain;
            (tsagent_bundle::seal(&input, &self.key).unwrap(), chain)
        }

        fn next(&mut self) -> SealedBundle {
            let (sealed, chain) = self.seal(0.0);
            self.bundle_seq += 1;
            self.chain = chain;
            self.prev_sums = Some(sealed.sums_sha256);
            sealed
        }

        fn other(&self) -> SealedBundle {
            self.seal(1.0).0
        }
    }

    /// A bundle verified, as a request hands it to its group: `packed`, with its body for the
    /// group to judge and pack (a small body in memory); otherwise with its blob kept.
    fn pending(intake: &Intake, b: &SealedBundle, packed: bool) -> Pending {
        let mut s = match packed {
            true => intake.spool_for(b.tar.len() as u64).unwrap(),
            false => intake.spool().unwrap(),
        };
        s.write(&b.tar).unwrap();
        let body = s.finish().unwrap();
        assert_eq!(intake.blobs.packs(&body), packed);
        let (sha256, bytes) = (body.sha256, body.len);
        let lab = b.file_name.split('-').next().unwrap();
        let asked = match packed {
            true => Asked::All,
            false => Asked::Seqs(vec![]),
        };
        let v = tsagent_bundle::verify_reader_marked(
            std::io::Cursor::new(&b.tar),
            &intake.labs,
            Some(lab),
            SystemTime::now(),
            asked.marks(),
        )
        .unwrap();
        let (body, durable_at) = match packed {
            true => (Some(body), None),
            // Left for the group's leader to sync, as the intake does.
            false => (None, intake.blobs.keep_later(body).unwrap()),
        };
        Pending {
            name: b.file_name.clone(),
            sha256,
            body,
            durable_at,
            bytes,
            v,
            asked,
        }
    }

    #[test]
    fn one_group_decides_each_bundle_in_order_and_a_fork_in_it_harms_no_other() {
        group_decides_each_bundle_in_order(false);
    }

    #[test]
    fn one_group_judges_and_packs_small_bodies_and_quarantines_a_fork_among_them() {
        group_decides_each_bundle_in_order(true);
    }

    fn group_decides_each_bundle_in_order(packed: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut labs: Vec<Lab> = ["NIM", "PTB"]
            .into_iter()
            .map(|id| {
                let path = dir.path().join(id);
                tsagent_bundle::generate_key(&path, id).unwrap();
                Lab {
                    id,
                    key: tsagent_bundle::load_signing_key(&path).unwrap(),
                    bundle_seq: 0,
                    chain: GENESIS,
                    prev_sums: None,
                }
            })
            .collect();
        let signers: String = labs
            .iter()
            .map(|l| tsagent_bundle::allowed_signers_line(l.id, l.key.public_key()).unwrap() + "\n")
            .collect();
        let path = dir.path().join("coordinator");
        tsagent_bundle::generate_key(&path, "coordinator").unwrap();
        let key = tsagent_bundle::load_signing_key(&path).unwrap();
        let intake = Intake::new(
            "pilot".into(),
            "pilot/log".into(),
            key.clone(),
            AllowedSigners::parse(&signers).unwrap(),
            Box::new(crate::index::Local::open(&dir.path().join("index.sqlite")).unwrap()),
            Box::new(crate::blobs::Folder::open(&dir.path().join("store")).unwrap()),
        );
        let nim1 = labs[0].next();
        let ptb1 = labs[1].next();
        let fork2 = labs[0].other();
        let nim2 = labs[0].next();
        let ptb2 = labs[1].next();
        let nim3 = labs[0].next();
        // As they might queue while another group commits: NIM's 1, 2 and 3 in the order the lab
        // sent them, another lab's between, a second bundle 2 of NIM's (sent by a forked copy of
        // the lab, judged next before either 2 was committed) after the true one, and a re-send
        // of NIM's bundle 1.
        let order = [&nim1, &ptb1, &nim2, &fork2, &ptb2, &nim1, &nim3];
        let group: Vec<(u64, Pending)> = order
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64, pending(&intake, b, packed)))
            .collect();
        let fork_sha = group[3].1.sha256;
        let outcomes: Vec<Outcome> = intake
            .commit_group(group)
            .into_iter()
            .enumerate()
            .map(|(i, (id, o))| {
                assert_eq!(id, i as u64);
                o.unwrap()
            })
            .collect();
        let mut logged = Vec::new();
        let mut sizes = Vec::new();
        for (i, o) in outcomes.iter().enumerate() {
            match (i, o) {
                (3, Outcome::Fork(detail)) => assert!(detail.contains("bundle 2"), "{detail}"),
                (5, Outcome::Again(text)) => {
                    let Outcome::Accepted(first) = &outcomes[0] else {
                        panic!("{:?}", outcomes[0]);
                    };
                    assert_eq!(text, &json(first));
                }
                (_, Outcome::Accepted(signed)) if i != 3 && i != 5 => {
                    let v = receipt::verify_receipt(key.public_key(), signed, None).unwrap();
                    let LogEntry::Bundle { bundle, .. } = &v.receipt.entry else {
                        panic!("{:?}", v.receipt.entry);
                    };
                    assert_eq!(bundle, &order[i].file_name);
                    logged.push(v.receipt.log_index);
                    sizes.push(v.checkpoint.size);
                }
                other => panic!("bundle {i} of the group: {other:?}"),
            }
        }
        assert_eq!(
            logged,
            [0, 1, 2, 3, 4],
            "in the group's order, the refused ones skipped"
        );
        assert_eq!(
            sizes, [5; 5],
            "one checkpoint for the group, each receipt proving its entry in it"
        );
        assert_eq!(
            log::size(&*intake.index).unwrap(),
            5,
            "the group's checkpoint is the newest"
        );
        let incidents = intake.index.incidents().unwrap();
        assert_eq!(incidents.len(), 1);
        assert_eq!(
            (incidents[0].lab.as_str(), incidents[0].kind.as_str()),
            ("NIM", "fork")
        );
        assert_eq!(incidents[0].sha256, Some(fork_sha));
        let status = intake.index.status().unwrap();
        let seqs: Vec<(&str, u64, u64)> = status
            .iter()
            .map(|s| (s.lab.as_str(), s.bundles, s.last_bundle_seq))
            .collect();
        assert_eq!(seqs, [("NIM", 3, 3), ("PTB", 2, 2)]);
        let report = crate::check::check(
            &*intake.index,
            &*intake.blobs,
            Some(key.public_key()),
            "pilot/log",
        )
        .unwrap();
        assert!(report.is_sound(), "{:?}", report.problems);
        let quarantined = dir
            .path()
            .join("store/quarantine")
            .join(format!("{fork_sha}.tar"));
        if packed {
            // Judged before anything of it was kept: set aside, as a fork found at once is.
            assert_eq!(report.orphans, vec![]);
            assert_eq!(std::fs::read(&quarantined).unwrap(), fork2.tar);
            assert!(intake.blobs.open(&fork_sha).is_err(), "not packed");
        } else {
            assert_eq!(
                report.orphans,
                vec![fork_sha],
                "kept, named by its incident"
            );
            assert!(!quarantined.exists());
        }
    }

    #[test]
    fn requests_committing_at_once_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        tsagent_bundle::generate_key(&path, "NIM").unwrap();
        let key = tsagent_bundle::load_signing_key(&path).unwrap();
        let labs = tsagent_bundle::allowed_signers_line("NIM", key.public_key()).unwrap();
        let intake = Intake::new(
            "pilot".into(),
            "pilot/log".into(),
            key.clone(),
            AllowedSigners::parse(&labs).unwrap(),
            Box::new(crate::index::Local::open(&dir.path().join("index.sqlite")).unwrap()),
            Box::new(crate::blobs::Folder::open(&dir.path().join("store")).unwrap()),
        );
        let mut lab = Lab {
            id: "NIM",
            key: key.clone(),
            bundle_seq: 0,
            chain: GENESIS,
            prev_sums: None,
        };
        let bundles: Vec<SealedBundle> = (0..16).map(|_| lab.next()).collect();
        // Sixteen requests queue at once, each for the next bundle in turn; whichever groups
        // they fall into, the log takes them in the order they queued and each request leaves
        // with its own bundle's receipt.
        // Every other one packed by the group, the rest kept before.
        let pendings: Vec<Pending> = bundles
            .iter()
            .enumerate()
            .map(|(i, b)| pending(&intake, b, i % 2 == 0))
            .collect();
        let order = std::sync::Mutex::new(pendings.into_iter());
        let outcomes: Vec<(String, Outcome)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        // Queued in bundle order: the lock is held while queueing.
                        let mut order = order.lock().unwrap();
                        let p = order.next().unwrap();
                        let name = p.name.clone();
                        let (answer, lead) = intake.submit(Queued(Box::new(p)));
                        drop(order);
                        // The first to queue leads, the others wait for their own answers.
                        if lead {
                            intake.lead();
                        }
                        (name, answer.blocking_recv().unwrap().unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (name, o) in &outcomes {
            let Outcome::Accepted(signed) = o else {
                panic!("{name}: {o:?}");
            };
            let v = receipt::verify_receipt(key.public_key(), signed, None).unwrap();
            let LogEntry::Bundle {
                bundle, bundle_seq, ..
            } = &v.receipt.entry
            else {
                panic!("{:?}", v.receipt.entry);
            };
            assert_eq!(bundle, name);
            assert_eq!(v.receipt.log_index + 1, *bundle_seq);
        }
        let report = crate::check::check(
            &*intake.index,
            &*intake.blobs,
            Some(key.public_key()),
            "pilot/log",
        )
        .unwrap();
        assert!(report.is_sound(), "{:?}", report.problems);
        assert_eq!(report.bundles, 16);
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
