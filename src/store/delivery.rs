//! The outbox: which sealed bundles have reached the coordinator, with what receipt, and which
//! wait (retrying with backoff, or held by a refusal until someone looks), and the newest log
//! checkpoint the lab verified.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, blob32, to_i64, to_u64};

/// Where a bundle is on its way to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not tried yet.
    New,
    /// Tried and failed for a reason that passes (network, coordinator down, 5xx).
    Retrying,
    /// Accepted: the receipt is stored.
    Sent,
    /// Refused for a reason that does not pass by itself (403, 409, 422): the queue waits for a
    /// person (`tsagent upload --retry`).
    Held,
}

impl DeliveryState {
    /// The name shown and stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Held => "held",
        }
    }
}

/// One bundle and its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The bundle's number.
    pub bundle_seq: u64,
    /// Its name (without `.tar`).
    pub name: String,
    /// When it was sealed.
    pub created_utc_us: i64,
    /// The archive's length.
    pub archive_len: u64,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u64,
    /// Not before this, µs (retrying).
    pub next_attempt_utc_us: Option<i64>,
    /// The last failure, one line.
    pub last_error: Option<String>,
    /// When it was accepted.
    pub sent_utc_us: Option<i64>,
    /// The coordinator's signed receipt, JSON.
    pub receipt: Option<String>,
    /// Its index in the coordinator's log.
    pub log_index: Option<u64>,
}

/// What a receipt must name of a bundle besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// First reading.
    pub first_reading: u64,
    /// Last reading.
    pub last_reading: u64,
    /// Chain value after the last reading.
    pub chain_last: [u8; 32],
}

/// The newest checkpoint verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCheckpoint {
    /// Log size.
    pub size: u64,
    /// Root hash.
    pub root: [u8; 32],
    /// The checkpoint text.
    pub checkpoint: String,
    /// The coordinator's signature over it.
    pub signature: String,
}

const DELIVERIES: &str = "
SELECT b.seq, b.name, b.created_utc_us, length(b.tar), d.state, d.attempts,
       d.next_attempt_utc_us, d.last_error, d.sent_utc_us, d.receipt, d.log_index
FROM bundles b LEFT JOIN deliveries d ON d.bundle_seq = b.seq";

fn delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    let state: Option<String> = r.get(4)?;
    Ok(Delivery {
        bundle_seq: to_u64(r.get(0)?),
        name: r.get(1)?,
        created_utc_us: r.get(2)?,
        archive_len: to_u64(r.get(3)?),
        state: match state.as_deref() {
            None => DeliveryState::New,
            Some("sent") => DeliveryState::Sent,
            Some("held") => DeliveryState::Held,
            Some(_) => DeliveryState::Retrying,
        },
        attempts: r.get::<_, Option<i64>>(5)?.map_or(0, to_u64),
        next_attempt_utc_us: r.get(6)?,
        last_error: r.get(7)?,
        sent_utc_us: r.get(8)?,
        receipt: r.get(9)?,
        log_index: r.get::<_, Option<i64>>(10)?.map(to_u64),
    })
}

impl Store {
    /// Every bundle with its delivery, oldest first.
    pub fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut stmt = self.conn.prepare(&format!("{DELIVERIES} ORDER BY b.seq"))?;
        let rows = stmt.query_map([], delivery)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    /// The oldest bundle not yet accepted: the only one that may be sent (strict order).
    pub fn next_delivery(&self) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "{DELIVERIES} WHERE d.state IS NULL OR d.state != 'sent' ORDER BY b.seq LIMIT 1"
                ),
                [],
                delivery,
            )
            .optional()?)
    }

    /// The last reading's sequence number and the chain value after it (0 and the genesis value
    /// before the first reading): what a heartbeat tells the coordinator.
    pub fn chain_head(&self) -> Result<(u64, [u8; 32]), StoreError> {
        super::head(&self.conn)
    }

    /// Bundle `seq`'s reading range and chain value.
    pub fn bundle_summary(&self, seq: u64) -> Result<Option<BundleSummary>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT first_reading, last_reading, chain_last FROM bundles WHERE seq = ?1",
                params![to_i64(seq)],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(first, last, chain)| {
            Ok(BundleSummary {
                first_reading: to_u64(first),
                last_reading: to_u64(last),
                chain_last: blob32("bundles", &chain)?,
            })
        })
        .transpose()
    }

    /// Bundles not yet accepted.
    pub fn undelivered(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM bundles b LEFT JOIN deliveries d ON d.bundle_seq = b.seq
             WHERE d.state IS NULL OR d.state != 'sent'",
            [],
            |r| r.get(0),
        )?;
        Ok(to_u64(n))
    }

    fn upsert_delivery(
        &mut self,
        bundle_seq: u64,
        state: &str,
        error: Option<&str>,
        next_attempt_utc_us: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO deliveries (bundle_seq, state, attempts, next_attempt_utc_us, last_error)
             VALUES (?1, ?2, 1, ?3, ?4)
             ON CONFLICT (bundle_seq) DO UPDATE SET state = excluded.state,
                 attempts = attempts + 1, next_attempt_utc_us = excluded.next_attempt_utc_us,
                 last_error = excluded.last_error
             WHERE deliveries.state != 'sent'",
            params![to_i64(bundle_seq), state, next_attempt_utc_us, error],
        )?;
        Ok(())
    }

    /// Records a failed attempt that will be retried at `next_attempt_utc_us`.
    pub fn record_retry(
        &mut self,
        bundle_seq: u64,
        error: &str,
        next_attempt_utc_us: i64,
    ) -> Result<(), StoreError> {
        self.upsert_delivery(
            bundle_seq,
            "retrying",
            Some(error),
            Some(next_attempt_utc_us),
        )
    }

    /// Records a refusal that holds the queue.
    pub fn record_held(&mut self, bundle_seq: u64, error: &str) -> Result<(), StoreError> {
        self.upsert_delivery(bundle_seq, "held", Some(error), None)
    }

    /// Releases a held bundle: it is tried again at once.
    pub fn release_held(&mut self) -> Result<u64, StoreError> {
        let n = self.conn.execute(
            "UPDATE deliveries SET state = 'retrying', next_attempt_utc_us = NULL
             WHERE state = 'held'",
            [],
        )?;
        Ok(n as u64)
    }

    /// Records the coordinator's verified receipt: the bundle is delivered, for good (a second
    /// sender, the CLI beside the daemon, finding it delivered already changes nothing).
    pub fn record_sent(
        &mut self,
        bundle_seq: u64,
        receipt: &str,
        log_index: u64,
        sent_utc_us: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO deliveries (bundle_seq, state, attempts, sent_utc_us, receipt, log_index)
             VALUES (?1, 'sent', 1, ?2, ?3, ?4)
             ON CONFLICT (bundle_seq) DO UPDATE SET state = 'sent', attempts = attempts + 1,
                 next_attempt_utc_us = NULL, last_error = NULL, sent_utc_us = excluded.sent_utc_us,
                 receipt = excluded.receipt, log_index = excluded.log_index
             WHERE deliveries.state != 'sent'",
            params![to_i64(bundle_seq), sent_utc_us, receipt, to_i64(log_index)],
        )?;
        Ok(())
    }

    /// The newest verified receipt, for the next bundle's manifest.
    pub fn latest_receipt(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT bundle_seq, receipt FROM deliveries WHERE state = 'sent'
                 ORDER BY bundle_seq DESC LIMIT 1",
                [],
                |r| Ok((to_u64(r.get(0)?), r.get(1)?)),
            )
            .optional()?)
    }

    /// The newest checkpoint the lab verified.
    pub fn seen_checkpoint(&self) -> Result<Option<SeenCheckpoint>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT size, root, checkpoint, signature FROM tlog_seen WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(size, root, checkpoint, signature)| {
            Ok(SeenCheckpoint {
                size: to_u64(size),
                root: blob32("tlog_seen", &root)?,
                checkpoint,
                signature,
            })
        })
        .transpose()
    }

    /// Records a checkpoint the lab verified as consistent with the one before.
    pub fn record_checkpoint(
        &mut self,
        seen: &SeenCheckpoint,
        seen_utc_us: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO tlog_seen (id, size, root, checkpoint, signature, seen_utc_us)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET size = excluded.size, root = excluded.root,
                 checkpoint = excluded.checkpoint, signature = excluded.signature,
                 seen_utc_us = excluded.seen_utc_us",
            params![
                to_i64(seen.size),
                &seen.root[..],
                seen.checkpoint,
                seen.signature,
                seen_utc_us
            ],
        )?;
        Ok(())
    }
}
