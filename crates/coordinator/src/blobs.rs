//! The blobs: each accepted tar kept write-once under its SHA-256, as restic's rest-server keeps
//! its objects. A body is spooled to a temporary file while it is hashed; only a verified bundle
//! is kept, durably, before the index records it, so the index never names a blob that a power
//! cut could take back. In a folder, a small blob is appended to a pack with the others being
//! kept at the same time, one sync for them all ([`pack`]); a large one is moved into place
//! (fsync the file, rename, fsync the folder).
//!
//! Bodies are spooled in a [`SpoolDir`], which several coordinator processes may share (a folder
//! of blobs on a network disk, or one host's temporary folder): each process marks its files with
//! a tag whose lock file it holds, so a process starting up removes only what a dead one left.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tsagent_bundle::manifest::Hash32;

pub mod pack;

use pack::Packs;

/// A blob-store failure.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The disk is full (or over quota): the intake answers 507.
    #[error("no space left for {path}")]
    Full {
        /// The file being written.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The object store refused, or could not be reached.
    #[error("cannot {action} {key} in the object store")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The object's key.
        key: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// A stored blob's bytes do not hash to its name: the store lost or altered it.
    #[error("blob {key} does not hash to its name")]
    Corrupt {
        /// The object's key.
        key: String,
    },
    /// The object store's settings or credentials are unusable.
    #[error("cannot use the object store: {0}")]
    Setup(String),
}

/// Maps an I/O error on `path` to a [`BlobError`], a full disk to [`BlobError::Full`].
pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> BlobError + 'a {
    move |source| {
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.raw_os_error() == Some(libc::EDQUOT)
        {
            BlobError::Full {
                path: path.to_owned(),
            }
        } else {
            BlobError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// A body being received, hashed as it comes: in memory when its length was declared small
/// enough and the memory budget allows ([`SpoolDir::spool_for`]), otherwise in a temporary file.
pub struct Spool {
    data: Data,
    hasher: Sha256,
    len: u64,
    /// Bytes of the memory budget this body holds.
    reserved: Reserved,
}

/// Where a body's bytes are.
enum Data {
    /// In a spool file, removed when the body is dropped unless it was moved into place.
    File(SpoolFile),
    /// In memory; `spill` makes the file if more arrives than the reservation.
    Memory(Vec<u8>, Arc<Shared>),
}

/// A spool file that removes itself unless kept.
struct SpoolFile {
    file: File,
    path: PathBuf,
    kept: bool,
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if !self.kept {
            // A body cut off, refused, or kept elsewhere: the file may not stay.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A share of the memory budget for bodies, given back on drop.
struct Reserved {
    bytes: u64,
    shared: Option<Arc<Shared>>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.in_memory.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

impl Spool {
    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        if let Data::Memory(bytes, shared) = &mut self.data
            && (bytes.len() + chunk.len()) as u64 > self.reserved.bytes
        {
            // More than was declared: the body goes on in a file.
            self.data = Data::File(shared.spill(bytes)?);
            self.reserved = Reserved {
                bytes: 0,
                shared: None,
            };
        }
        match &mut self.data {
            Data::Memory(bytes, _) => bytes.extend_from_slice(chunk),
            Data::File(f) => f.file.write_all(chunk).map_err(io_err("write", &f.path))?,
        }
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body is kept in memory (not in a spool file).
    pub fn in_memory(&self) -> bool {
        matches!(self.data, Data::Memory(..))
    }

    /// Ends the body and gives its hash. Nothing is synced: a body is made durable only if it is
    /// kept ([`Blobs::keep`]), and then where it is kept.
    pub fn finish(self) -> Result<Spooled, BlobError> {
        Ok(Spooled {
            sha256: Hash32(self.hasher.finalize().into()),
            len: self.len,
            data: self.data,
            _reserved: self.reserved,
        })
    }
}

/// A complete body, with its hash.
pub struct Spooled {
    data: Data,
    /// SHA-256 of the body.
    pub sha256: Hash32,
    /// Its length.
    pub len: u64,
    _reserved: Reserved,
}

/// A complete body read from its start.
pub enum SpooledReader<'a> {
    /// From the spool file.
    File(&'a File),
    /// From memory.
    Memory(Cursor<&'a [u8]>),
}

impl Read for SpooledReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SpooledReader::File(f) => f.read(buf),
            SpooledReader::Memory(m) => m.read(buf),
        }
    }
}

impl Seek for SpooledReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            SpooledReader::File(f) => f.seek(pos),
            SpooledReader::Memory(m) => m.seek(pos),
        }
    }
}

impl Spooled {
    /// The spool file's name; none for a body in memory.
    pub fn path(&self) -> Option<&Path> {
        match &self.data {
            Data::File(f) => Some(&f.path),
            Data::Memory(..) => None,
        }
    }

    /// Whether the body is in memory (not in a spool file).
    pub fn in_memory(&self) -> bool {
        self.path().is_none()
    }

    /// The body from its start.
    pub fn reader(&self) -> Result<SpooledReader<'_>, BlobError> {
        match &self.data {
            Data::File(f) => {
                let mut file = &f.file;
                file.seek(SeekFrom::Start(0))
                    .map_err(io_err("read back", &f.path))?;
                Ok(SpooledReader::File(file))
            }
            Data::Memory(bytes, _) => Ok(SpooledReader::Memory(Cursor::new(bytes))),
        }
    }

    /// The body's spool file, written now if the body is in memory.
    fn file(&mut self) -> Result<&mut SpoolFile, BlobError> {
        if let Data::Memory(bytes, shared) = &self.data {
            self.data = Data::File(shared.spill(bytes)?);
        }
        match &mut self.data {
            Data::File(f) => Ok(f),
            // Written to a file just above.
            Data::Memory(..) => Err(BlobError::Io {
                action: "write",
                path: PathBuf::from("a body in memory"),
                source: io::Error::other("the body was not written to a file"),
            }),
        }
    }

    /// The whole body.
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>, BlobError> {
        match &self.data {
            Data::File(f) => {
                let mut bytes = vec![0; usize::try_from(self.len).unwrap_or(usize::MAX)];
                f.file
                    .read_exact_at(&mut bytes, 0)
                    .map_err(io_err("read back", &f.path))?;
                Ok(Cow::Owned(bytes))
            }
            Data::Memory(bytes, _) => Ok(Cow::Borrowed(bytes)),
        }
    }
}

/// A kept blob opened for reading: a file, or the bytes of a blob kept in a pack.
pub enum Blob {
    /// A file of its own (or a copy fetched from a bucket).
    File(File),
    /// A blob read whole from a pack, its hash checked.
    Bytes(Cursor<Vec<u8>>),
}

impl Read for Blob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Blob::File(f) => f.read(buf),
            Blob::Bytes(b) => b.read(buf),
        }
    }
}

impl Seek for Blob {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Blob::File(f) => f.seek(pos),
            Blob::Bytes(b) => b.seek(pos),
        }
    }
}

/// What the intake needs of a blob store.
pub trait Blobs: Send + Sync {
    /// Starts spooling a body of unknown length.
    fn spool(&self) -> Result<Spool, BlobError>;
    /// Starts spooling a body declared `len` bytes long (in memory if it is small).
    fn spool_for(&self, len: u64) -> Result<Spool, BlobError>;
    /// Keeps a verified body under its hash, durably, before the index records it. Storing a hash
    /// already there is a no-op (same name, same bytes).
    fn keep(&self, body: Spooled) -> Result<(), BlobError>;
    /// Like [`Blobs::keep`], but a store that syncs blobs together may leave this one to be
    /// synced later, by [`Blobs::make_durable`] with the number it returns, before the index
    /// records it; `None` when it is durable already.
    fn keep_later(&self, body: Spooled) -> Result<Option<u64>, BlobError> {
        self.keep(body).map(|()| None)
    }
    /// Whether this store keeps `body` by appending it to a pack ([`Blobs::pack`]) that
    /// [`Blobs::make_durable`] syncs: cheap enough for the intake to keep it under the log's
    /// lock, once it is judged there, rather than judge it and keep it before.
    fn packs(&self, body: &Spooled) -> bool {
        let _ = body;
        false
    }
    /// Appends a body that [`Blobs::packs`] takes, without taking it, for
    /// [`Blobs::make_durable`] to sync with the number returned; `None` when a synced copy
    /// serves.
    fn pack(&self, body: &Spooled) -> Result<Option<u64>, BlobError> {
        let _ = body;
        Err(BlobError::Setup("this store keeps no packs".into()))
    }
    /// Makes durable every blob [`Blobs::keep_later`] or [`Blobs::pack`] numbered up to `upto`.
    fn make_durable(&self, upto: u64) -> Result<(), BlobError> {
        let _ = upto;
        Ok(())
    }
    /// Keeps a refused body (a fork) aside, for the pilot to look at.
    fn quarantine(&self, body: Spooled) -> Result<(), BlobError>;
    /// Opens a kept blob.
    fn open(&self, sha256: &Hash32) -> Result<Blob, BlobError>;
    /// Every kept blob's hash (for the consistency check).
    fn list(&self) -> Result<Vec<Hash32>, BlobError>;
    /// Removes what stopped processes left half-received in the spool; how many files. Only the
    /// server starting calls it, although a serving process's own bodies are safe either way.
    fn remove_spool_leftovers(&self) -> Result<usize, BlobError>;
}

/// Blobs in a folder: small ones in `packs/`, larger ones as `blobs/<first two hex
/// digits>/<sha256>.tar`; `quarantine/`, `spool/`.
pub struct Folder {
    root: PathBuf,
    spool: SpoolDir,
    packs: Packs,
    /// The folders whose own entry this process has synced in their parent: that entry is
    /// durable from then on, so each blob kept later syncs only its own folder (one sync a bundle
    /// fewer, P7 in BENCHMARKS.md).
    settled: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

/// A folder of bodies being received, which several processes may share.
///
/// Each process names its files `<tag>-<n>.part` and holds an exclusive lock on `<tag>.lock` for
/// as long as it runs; the kernel lets the lock go when the process dies, however it dies. A
/// process opening the folder removes the files of every tag whose lock it can take, and of every
/// tag without a lock file (an older version's, or one removed by hand).
pub struct SpoolDir {
    shared: Arc<Shared>,
    /// Never read: the lock lasts as long as this file stays open.
    _lock: File,
}

/// The tag of a file a [`SpoolDir`] owns: bodies (`.part`) and fetched blobs (`.get`).
fn spool_tag(name: &str) -> Option<&str> {
    let stem = name
        .strip_suffix(".part")
        .or_else(|| name.strip_suffix(".get"))?;
    Some(stem.rsplit_once('-')?.0)
}

/// What a [`SpoolDir`] shares with its bodies: where to make files, and the memory budget.
struct Shared {
    dir: PathBuf,
    tag: String,
    counter: AtomicU64,
    /// Bytes of bodies held in memory now, against [`MEMORY_BUDGET`].
    in_memory: AtomicU64,
}

/// A body whose declared length is at most this is received in memory (the budget allowing):
/// no spool file to make, write, read back and remove. The same bound as a pack's blobs, so a
/// body in memory is kept without ever touching the spool folder.
pub const MEMORY_BODY: u64 = pack::MAX_BLOB;

/// All bodies received in memory at once, together, at most: beyond it, bodies go to files.
pub const MEMORY_BUDGET: u64 = 32 << 20;

/// Creates `path`, which must not exist, for reading and writing.
fn create_new(path: &Path) -> Result<File, BlobError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))
}

impl Shared {
    fn create(&self, suffix: &str) -> Result<(File, PathBuf), BlobError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}.{suffix}", self.tag));
        Ok((create_new(&path)?, path))
    }

    /// A spool file holding `bytes`: for a body that was in memory and must now be a file.
    fn spill(&self, bytes: &[u8]) -> Result<SpoolFile, BlobError> {
        let (mut file, path) = self.create("part")?;
        file.write_all(bytes).map_err(io_err("write", &path))?;
        Ok(SpoolFile {
            file,
            path,
            kept: false,
        })
    }

    /// Takes `bytes` of the memory budget, if that much is left.
    fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reserved> {
        self.in_memory
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|&n| n <= MEMORY_BUDGET)
            })
            .ok()?;
        Some(Reserved {
            bytes,
            shared: Some(self.clone()),
        })
    }
}

impl SpoolDir {
    /// Opens (creating) the folder. What stopped processes left stays until
    /// [`SpoolDir::remove_stale`].
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tag = format!("{}.{nanos:x}", std::process::id());
        // Locked under another name first: another process's clean-up must never see our lock
        // file unlocked, or it would take it for a dead process's and remove it.
        let fresh = dir.join(format!("{tag}.lock.new"));
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&fresh)
            .map_err(io_err("create", &fresh))?;
        lock.try_lock().map_err(|e| BlobError::Io {
            action: "lock",
            path: fresh.clone(),
            source: io::Error::from(e),
        })?;
        let path = dir.join(format!("{tag}.lock"));
        fs::rename(&fresh, &path).map_err(io_err("rename into", &path))?;
        Ok(Self {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                tag,
                counter: AtomicU64::new(0),
                in_memory: AtomicU64::new(0),
            }),
            _lock: lock,
        })
    }

    /// Removes the files of processes that are gone: half-received bodies, never acknowledged,
    /// so never owed; how many. The files of running processes (a server, or `status` beside it)
    /// are left alone.
    pub fn remove_stale(&self) -> Result<usize, BlobError> {
        let dir = &self.shared.dir;
        let entries: Vec<_> = fs::read_dir(dir)
            .map_err(io_err("list", dir))?
            .flatten()
            .collect();
        let mut live = std::collections::HashSet::new();
        for entry in &entries {
            let name = entry.file_name();
            let Some(tag) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            let held = match File::open(entry.path()) {
                Ok(f) => tag == self.shared.tag || f.try_lock().is_err(),
                // Removed meanwhile by another process's clean-up.
                Err(_) => continue,
            };
            if held {
                live.insert(tag.to_owned());
            } else {
                let _ = fs::remove_file(entry.path());
            }
        }
        let mut removed = 0;
        for entry in &entries {
            let name = entry.file_name();
            if let Some(tag) = name.to_str().and_then(spool_tag)
                && !live.contains(tag)
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The tag that marks this process's files.
    pub fn tag(&self) -> &str {
        &self.shared.tag
    }

    /// Starts spooling a body of unknown length, in a file.
    pub fn spool(&self) -> Result<Spool, BlobError> {
        let (file, path) = self.shared.create("part")?;
        Ok(Spool {
            data: Data::File(SpoolFile {
                file,
                path,
                kept: false,
            }),
            hasher: Sha256::new(),
            len: 0,
            reserved: Reserved {
                bytes: 0,
                shared: None,
            },
        })
    }

    /// Starts spooling a body declared `len` bytes long: in memory if it is small and the
    /// budget has room, otherwise in a file.
    pub fn spool_for(&self, len: u64) -> Result<Spool, BlobError> {
        match (len <= MEMORY_BODY)
            .then(|| self.shared.reserve(len))
            .flatten()
        {
            Some(reserved) => Ok(Spool {
                data: Data::Memory(
                    Vec::with_capacity(usize::try_from(len).unwrap_or(0)),
                    self.shared.clone(),
                ),
                hasher: Sha256::new(),
                len: 0,
                reserved,
            }),
            None => self.spool(),
        }
    }

    /// A scratch file without a name (removed as soon as it is made), for a blob fetched from
    /// elsewhere: its space comes back when the handle closes, whatever happens to the process.
    pub fn scratch(&self) -> Result<File, BlobError> {
        let (file, path) = self.shared.create("get")?;
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        Ok(file)
    }
}

fn sync_dir(path: &Path) -> Result<(), BlobError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync folder", path))
}

impl Folder {
    /// Opens (creating) the folders under `root`.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        for sub in ["blobs", "quarantine"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        let spool = SpoolDir::open(&root.join("spool"))?;
        let packs = Packs::open(&root.join("packs"), spool.tag())?;
        Ok(Self {
            root: root.to_owned(),
            spool,
            packs,
            settled: std::sync::Mutex::default(),
        })
    }

    fn blob_path(&self, sha256: &Hash32) -> PathBuf {
        let hex = sha256.to_string();
        self.root
            .join("blobs")
            .join(&hex[..2])
            .join(format!("{hex}.tar"))
    }

    fn move_into(&self, mut body: Spooled, dest: &Path) -> Result<(), BlobError> {
        let file = body.file()?;
        file.file.sync_all().map_err(io_err("sync", &file.path))?;
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        let settled = self
            .settled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&dir);
        if !settled {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        if dest.exists() {
            // Content-addressed: a blob of this name already holds these bytes (a stop after the
            // rename and before the index); the spool file goes when `body` drops. The folder is
            // synced all the same: the process that renamed it may have died before doing so.
        } else {
            fs::rename(&file.path, dest).map_err(io_err("rename into", dest))?;
            file.kept = true;
        }
        sync_dir(&dir)?;
        if !settled {
            // The folder's own entry, once per process: whoever created it (this process,
            // another, or one that died before syncing), it is on disk after this.
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            self.settled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(dir);
        }
        Ok(())
    }
}

impl Blobs for Folder {
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
        match self.keep_later(body)? {
            Some(number) => self.make_durable(number),
            None => Ok(()),
        }
    }

    fn keep_later(&self, body: Spooled) -> Result<Option<u64>, BlobError> {
        if body.len <= pack::MAX_BLOB {
            // The spool file goes when `body` drops: the pack holds the bytes now.
            return self.pack(&body);
        }
        let dest = self.blob_path(&body.sha256);
        self.move_into(body, &dest).map(|()| None)
    }

    fn packs(&self, body: &Spooled) -> bool {
        // A body in a spool file would be read back under the lock.
        body.len <= pack::MAX_BLOB && body.in_memory()
    }

    fn pack(&self, body: &Spooled) -> Result<Option<u64>, BlobError> {
        self.packs.keep_later(&body.sha256, &body.bytes()?)
    }

    fn make_durable(&self, upto: u64) -> Result<(), BlobError> {
        self.packs.sync_to(upto)
    }

    fn quarantine(&self, body: Spooled) -> Result<(), BlobError> {
        let dest = self
            .root
            .join("quarantine")
            .join(format!("{}.tar", body.sha256));
        self.move_into(body, &dest)
    }

    fn open(&self, sha256: &Hash32) -> Result<Blob, BlobError> {
        let path = self.blob_path(sha256);
        match File::open(&path) {
            Ok(file) => return Ok(Blob::File(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("open", &path)(e)),
        }
        if let Some(bytes) = self.packs.read(sha256)? {
            return Ok(Blob::Bytes(Cursor::new(bytes)));
        }
        if self.packs.holds(sha256)? {
            return Err(BlobError::Corrupt {
                key: format!("{sha256} (in {})", self.root.join("packs").display()),
            });
        }
        Err(io_err("open", &path)(io::ErrorKind::NotFound.into()))
    }

    fn list(&self) -> Result<Vec<Hash32>, BlobError> {
        let mut out = Vec::new();
        let blobs = self.root.join("blobs");
        for dir in fs::read_dir(&blobs)
            .map_err(io_err("list", &blobs))?
            .flatten()
        {
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".tar")) else {
                    continue;
                };
                if let Some(h) = Hash32::parse(hex) {
                    out.push(h);
                }
            }
        }
        out.extend(self.packs.list()?);
        out.sort_by_key(|h| h.0);
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_body_is_found_by_its_hash_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Folder::open(dir.path()).unwrap();
        let mut s = blobs.spool().unwrap();
        s.write(b"hello ").unwrap();
        s.write(b"world").unwrap();
        let body = s.finish().unwrap();
        let sha = body.sha256;
        assert_eq!(
            sha.to_string(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        blobs.keep(body).unwrap();
        assert_eq!(blobs.list().unwrap(), vec![sha]);
        assert!(blobs.open(&sha).is_ok());

        let mut cut = blobs.spool().unwrap();
        cut.write(b"half").unwrap();
        drop(cut);
        let refused = {
            let mut s = blobs.spool().unwrap();
            s.write(b"refused").unwrap();
            s.finish().unwrap()
        };
        drop(refused);
        assert_eq!(parts(&dir.path().join("spool")), 0);
    }

    fn read_all(mut blob: Blob) -> Vec<u8> {
        let mut out = Vec::new();
        blob.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn small_bodies_go_to_a_pack_and_large_ones_to_files_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Folder::open(dir.path()).unwrap();
        let small = vec![5u8; 1000];
        let large = vec![6u8; pack::MAX_BLOB as usize + 1];
        let mut kept = Vec::new();
        for bytes in [&small, &large] {
            let mut s = blobs.spool_for(bytes.len() as u64).unwrap();
            assert_eq!(s.in_memory(), bytes.len() as u64 <= MEMORY_BODY);
            for chunk in bytes.chunks(4096) {
                s.write(chunk).unwrap();
            }
            let body = s.finish().unwrap();
            kept.push(body.sha256);
            blobs.keep(body).unwrap();
        }
        assert_eq!(parts(&dir.path().join("spool")), 0);
        assert!(matches!(blobs.open(&kept[0]).unwrap(), Blob::Bytes(_)));
        assert!(matches!(blobs.open(&kept[1]).unwrap(), Blob::File(_)));
        assert_eq!(read_all(blobs.open(&kept[0]).unwrap()), small);
        assert_eq!(read_all(blobs.open(&kept[1]).unwrap()), large);
        let mut listed = blobs.list().unwrap();
        kept.sort_by_key(|h| h.0);
        listed.sort_by_key(|h| h.0);
        assert_eq!(listed, kept);
        // Another process opening the folder finds both.
        drop(blobs);
        let again = Folder::open(dir.path()).unwrap();
        assert_eq!(read_all(again.open(&kept[0]).unwrap()), small);
        // Quarantined from memory: a file of its own.
        let mut s = again.spool_for(3).unwrap();
        s.write(b"odd").unwrap();
        again.quarantine(s.finish().unwrap()).unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
            1
        );
    }

    #[test]
    fn memory_is_bounded_and_a_body_longer_than_declared_goes_on_in_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolDir::open(dir.path()).unwrap();
        // More than declared: the same bytes and hash, from a file.
        let mut s = spool.spool_for(4).unwrap();
        assert!(s.in_memory());
        s.write(b"four").unwrap();
        s.write(b" and more").unwrap();
        assert!(!s.in_memory());
        let body = s.finish().unwrap();
        assert_eq!(&*body.bytes().unwrap(), b"four and more");
        assert_eq!(body.sha256, Hash32(Sha256::digest(b"four and more").into()));
        assert!(body.path().is_some());
        drop(body);
        // The budget: bodies in memory up to it, then files; room again once they are gone.
        let each = MEMORY_BODY;
        let held: Vec<_> = (0..MEMORY_BUDGET / each)
            .map(|_| spool.spool_for(each).unwrap())
            .collect();
        assert!(held.iter().all(Spool::in_memory));
        assert!(!spool.spool_for(each).unwrap().in_memory());
        drop(held);
        assert!(spool.spool_for(each).unwrap().in_memory());
        assert!(!spool.spool_for(MEMORY_BODY + 1).unwrap().in_memory());
    }

    fn parts(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| spool_tag(&e.file_name().to_string_lossy()).is_some())
            .count()
    }

    fn locks(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
            .count()
    }

    #[test]
    fn a_process_starting_removes_only_what_dead_processes_left() {
        let dir = tempfile::tempdir().unwrap();
        let a = SpoolDir::open(dir.path()).unwrap();
        let mut arriving = a.spool().unwrap();
        arriving.write(b"arriving").unwrap();
        // Left by processes that died: a lock file no longer held, or none at all.
        fs::write(dir.path().join("4242.1f.lock"), "").unwrap();
        fs::write(dir.path().join("4242.1f-0.part"), "half").unwrap();
        fs::write(dir.path().join("17-3.part"), "an older layout").unwrap();
        fs::write(dir.path().join("notes.txt"), "not ours").unwrap();
        let b = SpoolDir::open(dir.path()).unwrap();
        assert_eq!(parts(dir.path()), 3, "opening removes nothing");
        assert_eq!(b.remove_stale().unwrap(), 2);
        assert_eq!(parts(dir.path()), 1, "a's body is all that is left");
        assert_eq!(locks(dir.path()), 2, "a's and b's");
        assert!(dir.path().join("notes.txt").exists());
        let body = arriving.finish().unwrap();
        assert_eq!(fs::read(body.path().unwrap()).unwrap(), b"arriving");
        let mut scratch = b.scratch().unwrap();
        scratch.write_all(b"fetched").unwrap();
        assert_eq!(parts(dir.path()), 1, "a scratch file has no name to leave");
        // `body` is a's spooled file, still owed a decision: it stays until a is gone.
        std::mem::forget(body);
        drop(a);
        let c = SpoolDir::open(dir.path()).unwrap();
        assert_eq!(c.remove_stale().unwrap(), 1);
        assert_eq!(parts(dir.path()), 0);
        assert_eq!(locks(dir.path()), 2, "b's and c's");
    }
}
