//! Store-and-forward to the coordinator: sealed bundles go strictly in order, each retried with
//! capped exponential backoff and full jitter until a receipt comes back, so days offline cost
//! nothing. A retry sends the same bytes with the same Idempotency-Key, so it never duplicates.
//! A refusal that will not pass by itself (403, 409, 422, 413) holds the queue and raises an
//! alert instead of a retry storm.
//!
//! Every receipt is verified with the coordinator's key before it is believed: its signature, the
//! checkpoint's, the entry's inclusion, and that the entry is exactly the bundle sent. The
//! checkpoint must then extend the newest one the lab saw (never smaller, and consistent by the
//! coordinator's proof), else the log was rolled back or forked and the queue holds.

pub mod http;

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tsagent_bundle::PublicKey;
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::{self, LogEntry, SignedReceipt};
use tsagent_bundle::tlog::{self, Checkpoint};

use crate::clock::Timestamp;
use crate::store::{Delivery, DeliveryState, SeenCheckpoint, Store, StoreError};

pub use http::{Endpoint, HttpError};

/// First retry delay.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// Time one bundle's exchange may take.
const BUNDLE_DEADLINE: Duration = Duration::from_secs(600);
/// Time a small request may take.
const SMALL_DEADLINE: Duration = Duration::from_secs(30);

/// Where bundles go and whose receipts to believe.
#[derive(Debug, Clone)]
pub struct Target {
    /// The coordinator.
    pub endpoint: Endpoint,
    /// Its public key.
    pub coordinator_key: PublicKey,
    /// The lab sending.
    pub lab: String,
    /// The artefact.
    pub artefact: String,
}

/// An upload failure that is the lab's own (its store), not the coordinator's answer.
#[derive(Debug, Error)]
pub enum UploadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bundle's archive could not be read from the store.
    #[error("cannot read the bundle's archive from the log")]
    Archive(#[source] std::io::Error),
}

/// What one step of the queue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing is waiting to be sent.
    Idle,
    /// The next bundle waits for its retry time, or a person (held).
    Waiting {
        /// The bundle.
        name: String,
        /// When it may be tried (`None`: held).
        until_utc_us: Option<i64>,
    },
    /// Accepted, receipt verified and stored.
    Sent {
        /// The bundle.
        name: String,
        /// Its index in the coordinator's log.
        log_index: u64,
        /// 201 (new) or 200 (the coordinator had it already).
        fresh: bool,
    },
    /// Failed for a passing reason; retried at the time given.
    Retry {
        /// The bundle.
        name: String,
        /// Why.
        error: String,
        /// When.
        at_utc_us: i64,
    },
    /// Refused for good, or the coordinator's log misbehaved: the queue holds.
    Held {
        /// The bundle.
        name: String,
        /// Why.
        error: String,
        /// The alert kind: `upload_refused` or `log_inconsistent`.
        alert: &'static str,
    },
}

/// The delay before attempt `attempts + 1`: full jitter over a capped exponential.
pub fn backoff(attempts: u64, random: u64) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << attempts.min(20))
        .min(BACKOFF_CAP);
    // Full jitter (uniform in [0, exp]) spreads labs that went offline together.
    let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.max(1)).max(Duration::from_millis(500))
}

/// A random number for jitter, without a crate: std's per-process random hash keys.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A coordinator reply's error text, from its JSON body.
fn reply_error(reply: &http::Reply) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(200)
                .collect()
        });
    format!("{} {text}", reply.status.as_u16())
}

/// The target `[upload]` describes, if any.
pub fn target(config: &crate::config::Config) -> Result<Option<Target>, HttpError> {
    let Some(upload) = &config.upload else {
        return Ok(None);
    };
    Ok(Some(Target {
        endpoint: Endpoint::parse(&upload.url, upload.ca.as_deref())?,
        coordinator_key: upload.coordinator_key.clone(),
        lab: config.lab.id.clone(),
        artefact: config.artefact.id.clone(),
    }))
}

/// What a heartbeat says besides the chain head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Instruments online.
    pub online: u32,
    /// Instruments configured.
    pub instruments: u32,
    /// The custody state.
    pub custody: String,
}

/// What sending a heartbeat came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Logged by the coordinator; its receipt verified and its checkpoint extends the last seen.
    Logged {
        /// The reading it named.
        seq: u64,
        /// Its log index.
        log_index: u64,
    },
    /// No answer, or a passing failure: the next period tries again.
    Failed(String),
    /// Refused (a contradiction with what the coordinator holds is a fork), or the log misbehaved.
    Refused {
        /// Why.
        error: String,
        /// The alert kind.
        alert: &'static str,
    },
}

/// Sends one heartbeat: the chain head, signed with the lab's key.
pub async fn heartbeat(
    store: &mut Store,
    target: &Target,
    key: &tsagent_bundle::SigningKey,
    facts: &Facts,
    now: Timestamp,
) -> Result<Beat, UploadError> {
    let (seq, chain) = store.chain_head()?;
    let hb = receipt::Heartbeat {
        format: receipt::HEARTBEAT_FORMAT.to_owned(),
        lab: target.lab.clone(),
        artefact: target.artefact.clone(),
        seq,
        chain: Hash32(chain),
        utc: tsagent_bundle::time::rfc3339(now.utc_us),
        instruments_online: facts.online,
        instruments: facts.instruments,
        custody: facts.custody.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let signed = match receipt::sign_heartbeat(key, &hb) {
        Ok(s) => s,
        Err(e) => return Ok(Beat::Failed(crate::error::report(&e))),
    };
    let body = serde_json::to_vec(&signed).unwrap_or_default();
    let reply = match http::request(
        &target.endpoint,
        Method::POST,
        "/v1/heartbeats",
        &[("content-type", "application/json".to_owned())],
        Bytes::from(body),
        SMALL_DEADLINE,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return Ok(Beat::Failed(crate::error::report(&e))),
    };
    match reply.status {
        StatusCode::OK | StatusCode::CREATED => {}
        StatusCode::CONFLICT | StatusCode::FORBIDDEN | StatusCode::UNPROCESSABLE_ENTITY => {
            return Ok(Beat::Refused {
                error: reply_error(&reply),
                alert: "heartbeat_refused",
            });
        }
        _ => return Ok(Beat::Failed(reply_error(&reply))),
    }
    let expected = LogEntry::Heartbeat {
        lab: hb.lab.clone(),
        artefact: hb.artefact.clone(),
        seq,
        chain: hb.chain,
        utc: hb.utc.clone(),
        sha256: Hash32(Sha256::digest(signed.heartbeat.as_bytes()).into()),
    };
    let verified = serde_json::from_slice::<SignedReceipt>(&reply.body)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            receipt::verify_receipt(&target.coordinator_key, &r, Some(&expected))
                .map_err(|e| crate::error::report(&e))
        });
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            return Ok(Beat::Refused {
                error: format!("the heartbeat's receipt does not verify: {e}"),
                alert: "log_inconsistent",
            });
        }
    };
    if let Err(error) = extend_checkpoint(store, target, &v.checkpoint, &v.receipt, now).await? {
        return Ok(Beat::Refused {
            error,
            alert: "log_inconsistent",
        });
    }
    Ok(Beat::Logged {
        seq,
        log_index: v.receipt.log_index,
    })
}

/// Sends the next bundle if it is due; at most one exchange.
pub async fn step(store: &mut Store, target: &Target, now: Timestamp) -> Result<Step, UploadError> {
    step_with(store, target, now, false).await
}

/// [`step`], and with `now_anyway` a bundle waiting for its retry time goes now (`tsagent
/// upload`: a person asked).
pub async fn step_with(
    store: &mut Store,
    target: &Target,
    now: Timestamp,
    now_anyway: bool,
) -> Result<Step, UploadError> {
    let Some(next) = store.next_delivery()? else {
        return Ok(Step::Idle);
    };
    match next.state {
        DeliveryState::Held => {
            return Ok(Step::Waiting {
                name: next.name,
                until_utc_us: None,
            });
        }
        DeliveryState::Retrying
            if !now_anyway && next.next_attempt_utc_us.is_some_and(|t| t > now.utc_us) =>
        {
            return Ok(Step::Waiting {
                name: next.name,
                until_utc_us: next.next_attempt_utc_us,
            });
        }
        _ => {}
    }
    // Whole in memory: a bundle is at most MAX_BUNDLE_READINGS readings (a few MB).
    let tar = store.read_archive(next.bundle_seq, |r| {
        let mut buf = Vec::with_capacity(usize::try_from(next.archive_len).unwrap_or(0));
        r.read_to_end(&mut buf).map_err(UploadError::Archive)?;
        Ok::<_, UploadError>(buf)
    })?;
    send(store, target, &next, tar, now).await
}

async fn send(
    store: &mut Store,
    target: &Target,
    next: &Delivery,
    tar: Vec<u8>,
    now: Timestamp,
) -> Result<Step, UploadError> {
    let file_name = format!("{}.tar", next.name);
    let sha = Hash32(Sha256::digest(&tar).into());
    let reply = http::request(
        &target.endpoint,
        Method::PUT,
        &format!("/v1/bundles/{file_name}"),
        &[
            ("idempotency-key", sha.to_string()),
            ("content-type", "application/x-tar".to_owned()),
        ],
        Bytes::from(tar),
        BUNDLE_DEADLINE,
    )
    .await;
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return retry(store, next, &crate::error::report(&e), now),
    };
    match reply.status {
        StatusCode::OK | StatusCode::CREATED => {
            let fresh = reply.status == StatusCode::CREATED;
            let Some(row) = store.bundle_summary(next.bundle_seq)? else {
                return retry(store, next, "the bundle's row vanished", now);
            };
            let expected = LogEntry::Bundle {
                lab: target.lab.clone(),
                artefact: target.artefact.clone(),
                bundle: file_name.clone(),
                sha256: sha,
                bundle_seq: next.bundle_seq,
                first_seq: row.first_reading,
                last_seq: row.last_reading,
                chain_last: Hash32(row.chain_last),
            };
            let verified = serde_json::from_slice::<SignedReceipt>(&reply.body)
                .map_err(|e| e.to_string())
                .and_then(|signed| {
                    receipt::verify_receipt(&target.coordinator_key, &signed, Some(&expected))
                        .map(|v| (signed, v))
                        .map_err(|e| crate::error::report(&e))
                });
            let (signed, v) = match verified {
                Ok(ok) => ok,
                Err(e) => {
                    return held(
                        store,
                        next,
                        format!("the receipt does not verify: {e}"),
                        "upload_refused",
                    );
                }
            };
            if let Err(e) = extend_checkpoint(store, target, &v.checkpoint, &v.receipt, now).await?
            {
                return held(store, next, e, "log_inconsistent");
            }
            let text = serde_json::to_string(&signed).unwrap_or_default();
            store.record_sent(next.bundle_seq, &text, v.receipt.log_index, now.utc_us)?;
            Ok(Step::Sent {
                name: next.name.clone(),
                log_index: v.receipt.log_index,
                fresh,
            })
        }
        StatusCode::FORBIDDEN
        | StatusCode::CONFLICT
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::BAD_REQUEST
        | StatusCode::NOT_FOUND
        | StatusCode::METHOD_NOT_ALLOWED => {
            held(store, next, reply_error(&reply), "upload_refused")
        }
        _ => retry(store, next, &reply_error(&reply), now),
    }
}

fn retry(
    store: &mut Store,
    next: &Delivery,
    error: &str,
    now: Timestamp,
) -> Result<Step, UploadError> {
    let delay = backoff(next.attempts, random());
    let at = now.utc_us + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2);
    store.record_retry(next.bundle_seq, error, at)?;
    Ok(Step::Retry {
        name: next.name.clone(),
        error: error.to_owned(),
        at_utc_us: at,
    })
}

fn held(
    store: &mut Store,
    next: &Delivery,
    error: String,
    alert: &'static str,
) -> Result<Step, UploadError> {
    store.record_held(next.bundle_seq, &error)?;
    Ok(Step::Held {
        name: next.name.clone(),
        error,
        alert,
    })
}

/// Checks that `checkpoint` extends the newest one seen (TUF's rollback rule, with RFC 9162's
/// consistency proof), and records it. The outer error is the store's; the inner, why the log
/// cannot be trusted.
async fn extend_checkpoint(
    store: &mut Store,
    target: &Target,
    checkpoint: &Checkpoint,
    receipt: &receipt::Receipt,
    now: Timestamp,
) -> Result<Result<(), String>, UploadError> {
    let seen = store.seen_checkpoint()?;
    if let Some(seen) = &seen {
        let old = Checkpoint::parse(&seen.checkpoint).map_err(|e| StoreError::Corrupt {
            table: "tlog_seen",
            reason: e.to_string(),
        })?;
        if old.origin != checkpoint.origin {
            return Ok(Err(format!(
                "the coordinator's log is now `{}`, it was `{}`",
                checkpoint.origin, old.origin
            )));
        }
        if checkpoint.size < seen.size {
            return Ok(Err(format!(
                "the coordinator's log shrank from {} to {} entries (rollback)",
                seen.size, checkpoint.size
            )));
        }
        if checkpoint.size > seen.size {
            let path = format!("/v1/log/proof?from={}&size={}", seen.size, checkpoint.size);
            let proof = match http::request(
                &target.endpoint,
                Method::GET,
                &path,
                &[],
                Bytes::new(),
                SMALL_DEADLINE,
            )
            .await
            {
                Ok(r) if r.status == StatusCode::OK => parse_proof(&r.body),
                Ok(r) => Err(reply_error(&r)),
                Err(e) => Err(crate::error::report(&e)),
            };
            let proof = match proof {
                Ok(p) => p,
                // The receipt itself verified; without the proof the checkpoint cannot be taken
                // as the newest. Keep the older one: the next receipt will be checked against it.
                Err(e) => {
                    tracing::warn!(
                        "no consistency proof from the coordinator ({e}); keeping the older checkpoint"
                    );
                    return Ok(Ok(()));
                }
            };
            if let Err(e) = tlog::verify_consistency(
                seen.size,
                checkpoint.size,
                &proof,
                &seen.root,
                &checkpoint.root,
            ) {
                return Ok(Err(format!(
                    "the coordinator's log at {} entries is not consistent with the one at {} the lab saw: {e}",
                    checkpoint.size, seen.size
                )));
            }
        } else if checkpoint.root != seen.root {
            return Ok(Err(format!(
                "the coordinator gave two roots for a log of {} entries (fork)",
                seen.size
            )));
        } else {
            return Ok(Ok(()));
        }
    }
    store.record_checkpoint(
        &SeenCheckpoint {
            size: checkpoint.size,
            root: checkpoint.root,
            checkpoint: receipt.checkpoint.clone(),
            signature: receipt.checkpoint_signature.clone(),
        },
        now.utc_us,
    )?;
    Ok(Ok(()))
}

fn parse_proof(body: &[u8]) -> Result<Vec<tlog::Hash>, String> {
    #[derive(serde::Deserialize)]
    struct Proof {
        hashes: Vec<Hash32>,
    }
    serde_json::from_slice::<Proof>(body)
        .map(|p| p.hashes.into_iter().map(|h| h.0).collect())
        .map_err(|e| format!("malformed proof: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_below_it() {
        for attempts in 0..40 {
            for r in [0, 1, u64::MAX / 3, u64::MAX] {
                let d = backoff(attempts, r);
                assert!(d <= BACKOFF_CAP, "{attempts} {r} {d:?}");
                assert!(d >= Duration::from_millis(500));
            }
        }
        assert!(backoff(0, u64::MAX - 1) <= BACKOFF_BASE);
        assert!(backoff(30, u64::MAX / 2) > Duration::from_secs(600));
    }
}

#[cfg(test)]
mod log_tests {
    //! The lab's guard against a coordinator that rewrites its log: heartbeats against an
    //! in-process coordinator whose storage is put back to an earlier copy.

    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    struct Running {
        task: tokio::task::JoinHandle<()>,
        addr: std::net::SocketAddr,
    }

    async fn serve(dir: &Path, addr: Option<std::net::SocketAddr>) -> Running {
        let config = tsagent_coordinator::Config::parse(
            &dir.join("c.toml"),
            "[coordinator]\nid = \"pilot\"\nlisten = \"127.0.0.1:0\"\nkey = \"key\"\nlabs = \"labs\"\n",
        )
        .unwrap();
        let intake = Arc::new(tsagent_coordinator::open(&config).unwrap());
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = tsagent_coordinator::limits(&config);
        let task = tokio::spawn(tsagent_coordinator::server::serve(listener, intake, limits));
        Running { task, addr }
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let dest = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &dest);
            } else {
                std::fs::copy(entry.path(), dest).unwrap();
            }
        }
    }

    async fn stop(r: Running) {
        r.task.abort();
        let _ = r.task.await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_log_that_shrank_forked_or_does_not_extend_the_last_checkpoint_is_refused() {
        let pilot = tempfile::tempdir().unwrap();
        let lab_dir = tempfile::tempdir().unwrap();
        tsagent_bundle::generate_key(&pilot.path().join("key"), "pilot").unwrap();
        let lab_key_path = lab_dir.path().join("lab");
        let lab_key = {
            tsagent_bundle::generate_key(&lab_key_path, "lab").unwrap();
            tsagent_bundle::load_signing_key(&lab_key_path).unwrap()
        };
        let line = tsagent_bundle::allowed_signers_line("LAB", lab_key.public_key()).unwrap();
        std::fs::write(pilot.path().join("labs"), format!("{line}\n")).unwrap();
        let coordinator_key = tsagent_bundle::load_signing_key(&pilot.path().join("key"))
            .unwrap()
            .public_key()
            .clone();
        let mut store = Store::open(&lab_dir.path().join("lab.db")).unwrap();
        let facts = Facts::default();
        let mut t = 1_800_000_000_000_000;
        let mut beat = async |store: &mut Store, addr: std::net::SocketAddr| {
            t += 1_000_000;
            let target = Target {
                endpoint: Endpoint::parse(&format!("http://{addr}"), None).unwrap(),
                coordinator_key: coordinator_key.clone(),
                lab: "LAB".into(),
                artefact: "Z1".into(),
            };
            let now = Timestamp {
                utc_us: t,
                mono_ns: 0,
            };
            heartbeat(store, &target, &lab_key, &facts, now)
                .await
                .unwrap()
        };
        let logged = |b: &Beat| matches!(b, Beat::Logged { .. });
        let refused = |b: &Beat, what: &str| match b {
            Beat::Refused { error, alert } => *alert == "log_inconsistent" && error.contains(what),
            _ => false,
        };

        let storage = pilot.path().join("intake");
        let a = serve(pilot.path(), None).await;
        let addr = a.addr;
        assert!(logged(&beat(&mut store, addr).await)); // size 1
        stop(a).await;
        let snapshot = pilot.path().join("snapshot");
        copy_dir(&storage, &snapshot);
        let a = serve(pilot.path(), Some(addr)).await;
        assert!(logged(&beat(&mut store, addr).await)); // size 2, consistent with 1
        stop(a).await;

        // Put back to size 1: the next entry makes another log of size 2.
        std::fs::remove_dir_all(&storage).unwrap();
        copy_dir(&snapshot, &storage);
        let a = serve(pilot.path(), Some(addr)).await;
        let b = beat(&mut store, addr).await;
        assert!(refused(&b, "two roots"), "{b:?}");
        // One more: size 3, but not an extension of the size 2 the lab saw.
        let b = beat(&mut store, addr).await;
        assert!(refused(&b, "not consistent"), "{b:?}");
        stop(a).await;

        // A log started afresh: size 1, smaller than the 2 the lab saw.
        std::fs::remove_dir_all(&storage).unwrap();
        let a = serve(pilot.path(), Some(addr)).await;
        let b = beat(&mut store, addr).await;
        assert!(refused(&b, "shrank"), "{b:?}");
        stop(a).await;
        assert_eq!(store.seen_checkpoint().unwrap().map(|c| c.size), Some(2));
    }
}
