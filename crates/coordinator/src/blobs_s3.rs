//! Blobs in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph, R2…), for coordinators that
//! run as several processes or on several hosts.
//!
//! The layout is the folder's: `<prefix>blobs/<sha256>.tar` and `<prefix>quarantine/<sha256>.tar`.
//! Bodies are spooled to a local [`SpoolDir`] while they arrive and are verified there; only a
//! verified bundle is uploaded, before the index records it. A PUT that has returned is durable
//! (that is S3's contract), so "stored before reply" holds as with fsync and rename.
//!
//! Objects are written once: a small body in one PUT with `If-None-Match: *` (object_store's
//! `PutMode::Create`); a large one, which must go in parts to keep memory bounded, after a HEAD
//! that finds no object there. Since a name is its content's hash, an object already there holds
//! the same bytes, so finding one is success either way. Reading a blob back downloads it to a
//! scratch file, checking its hash on the way: the intake and `export` need a seekable file, and a
//! bucket that lost or altered an object says so instead of serving wrong readings.
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
//! `AWS_SESSION_TOKEN` if set), never from the config file. Nothing else is looked for: no
//! instance metadata service or profile file is ever asked, so a missing key fails at start.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig};
use sha2::{Digest, Sha256};
use tsagent_bundle::manifest::Hash32;

use crate::blobs::{Blob, BlobError, Blobs, Spool, SpoolDir, Spooled, io_err};
use crate::config::{S3, S3Credentials};
use crate::runtime::Runtime;

/// Bodies up to this size go in one conditional PUT, read whole into memory.
const SINGLE_PUT_BYTES: u64 = 16 << 20;

/// The size of each part of a larger body: S3's smallest is 5 MiB; one part is in memory at once.
const PART_BYTES: usize = 8 << 20;

/// Bodies being uploaded are held in slabs of this size, made once and used again.
const SLAB_BYTES: usize = 1 << 20;

/// Slabs one process makes at most: the largest single PUT and one part. Uploads run beside each
/// other, outside the log's lock; each waits here for the slabs its body or part needs, so memory
/// does not grow with the number of labs sending.
const SLABS: usize = (SINGLE_PUT_BYTES as usize + PART_BYTES) / SLAB_BYTES;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Blobs in a bucket.
pub struct S3Blobs {
    store: AmazonS3,
    prefix: String,
    spool: SpoolDir,
    rt: Runtime,
    slabs: Arc<Slabs>,
}

/// The memory bodies are uploaded from. Reused rather than freed: glibc's allocator keeps what
/// is freed in the arena of the thread that allocated it, and each upload runs on whichever
/// blocking thread took its request, so buffers allocated per upload left the process at 80 MB
/// with eight labs sending 23 MB bundles, even one upload at a time (P7 in BENCHMARKS.md).
struct Slabs {
    state: Mutex<SlabState>,
    freed: Condvar,
}

struct SlabState {
    free: Vec<Vec<u8>>,
    /// Slabs that may still be made.
    unmade: usize,
    /// Takers are served in turn, so that a body needing many slabs is not passed over for ever
    /// by bodies needing one.
    next_turn: u64,
    serving: u64,
}

/// A slab lent to a payload; it goes back to the pool when the payload's last copy is dropped.
struct Lent {
    slab: Vec<u8>,
    slabs: Arc<Slabs>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.slab
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut slab = std::mem::take(&mut self.slab);
        slab.clear();
        // A list of slabs cannot be left half-updated by a panic, so a poisoned lock is still
        // right.
        let mut state = self
            .slabs
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.free.push(slab);
        drop(state);
        self.slabs.freed.notify_all();
    }
}

impl Slabs {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlabState {
                free: Vec::new(),
                unmade: SLABS,
                next_turn: 0,
                serving: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// The next `len` bytes of `file` (at most [`SLABS`] slabs' worth), as a payload; waits for
    /// the slabs. Blocks the calling thread, which must not be a runtime's worker.
    fn read(self: &Arc<Self>, file: &mut dyn Read, len: usize) -> std::io::Result<PutPayload> {
        let count = len.div_ceil(SLAB_BYTES).max(1);
        if count > SLABS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{len} bytes is more than the upload slabs hold"),
            ));
        }
        let mut lent = Vec::with_capacity(count);
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let turn = state.next_turn;
            state.next_turn += 1;
            while state.serving != turn || state.free.len() + state.unmade < count {
                state = self
                    .freed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.serving += 1;
            for _ in 0..count {
                let slab = match state.free.pop() {
                    Some(slab) => slab,
                    None => {
                        state.unmade -= 1;
                        Vec::with_capacity(SLAB_BYTES)
                    }
                };
                lent.push(Lent {
                    slab,
                    slabs: self.clone(),
                });
            }
        }
        // The next in turn may be served now.
        self.freed.notify_all();
        let mut left = len;
        for l in &mut lent {
            let n = left.min(SLAB_BYTES);
            // Into the slab's spare room: nothing is zeroed first, and nothing grows it.
            file.take(n as u64).read_to_end(&mut l.slab)?;
            if l.slab.len() != n {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
        }
        Ok(lent.into_iter().map(Bytes::from_owner).collect())
    }
}

/// A length that fits in memory: a part's, or a body's under [`SINGLE_PUT_BYTES`].
fn len(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn remote(action: &'static str, key: &Key) -> impl FnOnce(object_store::Error) -> BlobError {
    let key = key.to_string();
    move |source| BlobError::Remote {
        action,
        key,
        source,
    }
}

impl S3Blobs {
    /// Connects to the bucket `s3` names, with its credentials or else the environment's,
    /// spooling bodies in `spool`. Lists the bucket once, so that a wrong endpoint, bucket or key
    /// is found at start rather than at the first bundle.
    pub fn open(s3: &S3, spool: &Path) -> Result<Self, BlobError> {
        let Some(keys) = s3.credentials.clone().or_else(S3Credentials::from_env) else {
            return Err(BlobError::Setup(format!(
                "[storage.s3] needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment \
                 (the keys for bucket `{}`)",
                s3.bucket
            )));
        };
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(&s3.endpoint)
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_access_key_id(keys.key_id)
            .with_secret_access_key(keys.secret)
            // `endpoint/bucket/key`: works with every S3-compatible server and any bucket name.
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_allow_http(s3.endpoint.starts_with("http://")),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(token) = keys.token {
            builder = builder.with_token(token);
        }
        let store = builder
            .build()
            .map_err(|e| BlobError::Setup(e.to_string()))?;
        let this = Self {
            store,
            prefix: s3.prefix.clone(),
            spool: SpoolDir::open(spool)?,
            rt: Runtime::new("tsagent-blobs").map_err(|source| BlobError::Io {
                action: "start the runtime for",
                path: spool.to_owned(),
                source,
            })?,
            slabs: Slabs::new(),
        };
        let blobs = this.key("blobs/");
        this.rt
            .block_on(this.store.list_with_delimiter(Some(&blobs)))
            .map_err(remote("list", &blobs))?;
        Ok(this)
    }

    fn key(&self, rest: &str) -> Key {
        Key::from(format!("{}{rest}", self.prefix))
    }

    fn blob_key(&self, folder: &str, sha256: &Hash32) -> Key {
        self.key(&format!("{folder}/{sha256}.tar"))
    }

    /// Uploads `body` under `folder`, once.
    fn put(&self, body: &Spooled, folder: &str) -> Result<(), BlobError> {
        let key = self.blob_key(folder, &body.sha256);
        let spooled = body.path().unwrap_or(Path::new("a body in memory"));
        let read = |e| io_err("read back", spooled)(e);
        if body.len <= SINGLE_PUT_BYTES {
            let mut file = body.reader()?;
            let payload = self.slabs.read(&mut file, len(body.len)).map_err(read)?;
            let put = self.store.put_opts(&key, payload, PutMode::Create.into());
            return match self.rt.block_on(put) {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(remote("store", &key)(e)),
            };
        }
        match self.rt.block_on(self.store.head(&key)) {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote("look up", &key)(e)),
        }
        let mut file = body.reader()?;
        self.rt.block_on(async {
            let mut upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(remote("start uploading", &key))?;
            let parts = async {
                let mut left = body.len;
                while left > 0 {
                    let n = left.min(PART_BYTES as u64);
                    let part = self.slabs.read(&mut file, len(n)).map_err(read)?;
                    left -= n;
                    upload
                        .put_part(part)
                        .await
                        .map_err(remote("upload a part of", &key))?;
                }
                upload
                    .complete()
                    .await
                    .map_err(remote("complete uploading", &key))?;
                Ok(())
            };
            let result: Result<(), BlobError> = parts.await;
            if result.is_err() {
                // Parts uploaded and never completed would be kept (and billed) by the bucket.
                let _ = upload.abort().await;
            }
            result
        })
    }
}

impl Blobs for S3Blobs {
    fn spool(&self) -> Result<Spool, BlobError> {
        self.spool.spool()
    }

    fn spool_for(&self, len: u64) -> Result<Spool, BlobError> {
        self.spool.spool_for(len)
    }

    fn remove_spool_leftovers(&self) -> Result<usize, BlobError> {
        self.spool.remove_stale()
    }

    fn keep(&self, body: Spooled) -> Result<(), BlobError> {
        self.put(&body, "blobs")
    }

    fn quarantine(&self, body: Spooled) -> Result<(), BlobError> {
        self.put(&body, "quarantine")
    }

    fn open(&self, sha256: &Hash32) -> Result<Blob, BlobError> {
        let key = self.blob_key("blobs", sha256);
        let mut file = self.spool.scratch()?;
        let mut hasher = Sha256::new();
        self.rt.block_on(async {
            let got = self.store.get(&key).await.map_err(remote("fetch", &key))?;
            let mut chunks = got.into_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(remote("fetch", &key))?;
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .map_err(io_err("write a copy of a blob in", self.spool.dir()))?;
            }
            Ok::<(), BlobError>(())
        })?;
        if Hash32(hasher.finalize().into()) != *sha256 {
            return Err(BlobError::Corrupt {
                key: key.to_string(),
            });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("rewind a copy of a blob in", self.spool.dir()))?;
        Ok(Blob::File(file))
    }

    fn list(&self) -> Result<Vec<Hash32>, BlobError> {
        let prefix = self.key("blobs/");
        let objects: Vec<_> = self
            .rt
            .block_on(self.store.list(Some(&prefix)).try_collect())
            .map_err(remote("list", &prefix))?;
        let mut out: Vec<Hash32> = objects
            .iter()
            .filter_map(|o| {
                let name = o.location.filename()?;
                Hash32::parse(name.strip_suffix(".tar")?)
            })
            .collect();
        out.sort_by_key(|h| h.0);
        Ok(out)
    }
}
