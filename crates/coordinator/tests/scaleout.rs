//! The scale-out storages on their own, against the real servers the tests start (`servers`):
//! the PostgreSQL log lock serialises appends across separate pools (as across processes), a
//! large bundle goes to the bucket in parts and comes back whole, blobs are written once, a
//! bucket that altered a blob is caught, and an intake on these storages may be dropped anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tsagent_bundle::manifest::Hash32;
use tsagent_bundle::receipt::SignedCheckpoint;
use tsagent_coordinator::blobs::{BlobError, Blobs, Spooled};
use tsagent_coordinator::blobs_s3::S3Blobs;
use tsagent_coordinator::config::S3;
use tsagent_coordinator::index::Index;
use tsagent_coordinator::index_pg::Postgres;

mod servers;

fn pg() -> Postgres {
    Postgres::open(&servers::postgres().database().parse().unwrap()).unwrap()
}

fn bucket() -> (S3, tempfile::TempDir, S3Blobs) {
    let place = servers::s3().place();
    let spool = tempfile::tempdir().unwrap();
    let blobs = S3Blobs::open(&place, spool.path()).unwrap();
    (place, spool, blobs)
}

fn spooled(blobs: &dyn Blobs, bytes: &[u8]) -> Spooled {
    let mut s = blobs.spool().unwrap();
    // In pieces, as a body arrives.
    for chunk in bytes.chunks(1 << 20) {
        s.write(chunk).unwrap();
    }
    s.finish().unwrap()
}

fn checkpoint(size: u64) -> SignedCheckpoint {
    SignedCheckpoint {
        checkpoint: format!("test\n{size}\n"),
        signature: String::new(),
    }
}

#[test]
fn the_log_lock_holds_a_second_pool_until_the_first_commits() {
    let url = servers::postgres().database();
    let (a, b) = (
        Postgres::open(&url.parse().unwrap()).unwrap(),
        Postgres::open(&url.parse().unwrap()).unwrap(),
    );
    let mut first = a.begin().unwrap();
    assert_eq!(first.lock_log().unwrap(), 0);
    let (tx_said, said) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut second = b.begin().unwrap();
            let size = second.lock_log().unwrap();
            second
                .append_entry(size, b"second", &[(0, size, [2; 32])])
                .unwrap();
            second
                .set_checkpoint(size + 1, &checkpoint(size + 1))
                .unwrap();
            second.commit().unwrap();
            tx_said.send(size).unwrap();
        });
        // The second pool's transaction is waiting on the lock, not done: nothing arrives while
        // the first holds it (a bounded look, not a sleep that the result depends on).
        assert!(said.recv_timeout(Duration::from_millis(300)).is_err());
        first.append_entry(0, b"first", &[(0, 0, [1; 32])]).unwrap();
        first.set_checkpoint(1, &checkpoint(1)).unwrap();
        first.commit().unwrap();
        // Granted after the commit, it sees the entry the first appended.
        assert_eq!(said.recv_timeout(Duration::from_secs(30)).unwrap(), 1);
    });
    assert_eq!(
        a.entries(0, 10).unwrap(),
        vec![b"first".to_vec(), b"second".to_vec()]
    );
    assert_eq!(b.subtree(0, 1).unwrap(), [2; 32]);
    assert_eq!(a.checkpoint().unwrap().unwrap().checkpoint, "test\n2\n");
}

#[test]
fn a_transaction_given_up_leaves_nothing_and_lets_the_lock_go() {
    let index = pg();
    {
        let mut tx = index.begin().unwrap();
        let size = tx.lock_log().unwrap();
        tx.append_entry(size, b"dropped", &[(0, size, [3; 32])])
            .unwrap();
        // Dropped without commit, as the intake does on an error.
    }
    let mut tx = index.begin().unwrap();
    assert_eq!(tx.lock_log().unwrap(), 0);
    tx.commit().unwrap();
    assert!(index.entries(0, 10).unwrap().is_empty());
}

#[test]
fn the_log_is_append_only_in_the_database_too() {
    let url = servers::postgres().database();
    let index = Postgres::open(&url.parse().unwrap()).unwrap();
    let mut tx = index.begin().unwrap();
    tx.lock_log().unwrap();
    tx.append_entry(0, b"kept", &[(0, 0, [4; 32])]).unwrap();
    tx.commit().unwrap();
    // A second process opening the same database finds the schema and keeps it.
    let again = Postgres::open(&url.parse().unwrap()).unwrap();
    assert_eq!(again.entries(0, 10).unwrap(), vec![b"kept".to_vec()]);
    // Writing the same entry again is refused by the database, whoever asks.
    let mut tx = again.begin().unwrap();
    tx.lock_log().unwrap();
    let e = tx.append_entry(0, b"other", &[]).unwrap_err();
    assert!(
        format!("{e:?}").contains("duplicate key"),
        "the primary key refuses a second entry 0: {e:?}"
    );
    // And an entry or a subtree, once written, is never changed or removed by anyone's SQL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for sql in [
            "UPDATE tlog_entries SET entry = 'x'",
            "DELETE FROM tlog_entries",
            "DELETE FROM tlog_nodes",
        ] {
            let e = client.batch_execute(sql).await.unwrap_err();
            assert!(format!("{e:?}").contains("append-only"), "{sql}: {e:?}");
        }
    });
}

#[test]
fn a_large_bundle_goes_in_parts_and_comes_back_whole() {
    let (_, _spool, blobs) = bucket();
    // Over the single-PUT size: a multipart upload of 8 MiB parts.
    let bytes: Vec<u8> = (0..(17u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let sha = Hash32(Sha256::digest(&bytes).into());
    blobs.keep(spooled(&blobs, &bytes)).unwrap();
    // Kept again (a crash between the upload and the index): found there, nothing rewritten.
    blobs.keep(spooled(&blobs, &bytes)).unwrap();
    assert_eq!(blobs.list().unwrap(), vec![sha]);
    let mut back = Vec::new();
    blobs.open(&sha).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == bytes, "the blob comes back as it was kept");
}

#[test]
fn blobs_are_written_once_and_a_bucket_that_altered_one_is_caught() {
    let (place, spool, blobs) = bucket();
    let small = b"a small bundle".to_vec();
    let sha = Hash32(Sha256::digest(&small).into());
    blobs.keep(spooled(&blobs, &small)).unwrap();
    blobs.keep(spooled(&blobs, &small)).unwrap();
    blobs.quarantine(spooled(&blobs, b"a fork")).unwrap();
    assert_eq!(blobs.list().unwrap(), vec![sha], "quarantine is apart");

    // The server honours If-None-Match: a second create of the same key is refused.
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&place.endpoint)
        .with_bucket_name(&place.bucket)
        .with_region(&place.region)
        .with_access_key_id(servers::S3_KEY_ID)
        .with_secret_access_key(servers::S3_SECRET)
        .with_allow_http(true)
        .build()
        .unwrap();
    let key = object_store::path::Path::from(format!("{}blobs/{sha}.tar", place.prefix));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let create = rt.block_on(store.put_opts(
        &key,
        b"other bytes".to_vec().into(),
        object_store::PutMode::Create.into(),
    ));
    assert!(
        matches!(create, Err(object_store::Error::AlreadyExists { .. })),
        "{create:?}"
    );
    // Someone with the bucket's keys overwrites it: reading it back says so.
    rt.block_on(store.put_opts(
        &key,
        b"other bytes".to_vec().into(),
        object_store::PutMode::Overwrite.into(),
    ))
    .unwrap();
    assert!(matches!(blobs.open(&sha), Err(BlobError::Corrupt { .. })));
    // Nothing of the fetch is left in the spool folder.
    let left: Vec<_> = std::fs::read_dir(spool.path())
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn keys_are_looked_for_in_the_environment_only_and_missing_ones_fail_at_start() {
    let mut place = servers::s3().place();
    place.credentials = None;
    let spool = tempfile::tempdir().unwrap();
    // The tests' environment has no AWS keys (CI's does not either): a clear refusal at open,
    // never a request to an instance metadata service.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let e = S3Blobs::open(&place, spool.path()).err().unwrap();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    }
    place.credentials = Some(tsagent_coordinator::config::S3Credentials {
        key_id: servers::S3_KEY_ID.into(),
        secret: "wrong".into(),
        token: None,
    });
    let e = S3Blobs::open(&place, spool.path()).err().unwrap();
    assert!(matches!(e, BlobError::Remote { action: "list", .. }), "{e}");
}

#[test]
fn an_intake_on_postgres_and_s3_may_be_dropped_inside_async_code() {
    // The server's last handle to the intake goes inside its runtime when `serve` ends: the
    // storages' own runtimes and connections must go without blocking there.
    let index = pg();
    let (_, _spool, blobs) = bucket();
    index.status().unwrap();
    blobs.list().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        drop(index);
        drop(blobs);
    });
}

/// The harness itself: a PostgreSQL whose port was taken between choosing and binding it is
/// seen to die at once (so it is started again on another), not waited for until the deadline.
#[test]
fn a_test_server_whose_port_was_taken_is_known_dead_at_once() {
    let port = servers::free_port();
    let _holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let started = std::time::Instant::now();
    let why = match servers::Postgres::start_once(port) {
        Ok(_) => panic!("PostgreSQL started on a port that was taken"),
        Err(why) => why,
    };
    assert!(why.contains("already in use"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(60), "{why}");
}
