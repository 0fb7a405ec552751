//! The blobs: each accepted tar kept write-once under its SHA-256, as restic's rest-server keeps
//! its objects. A body is spooled to a temporary file while it is hashed; only a verified bundle
//! is moved into place (fsync the file, rename, fsync the folder) before the index records it, so
//! the index never names a blob that a power cut could take back.
//!
//! Bodies are spooled in a [`SpoolDir`], which several coordinator processes may share (a folder
//! of blobs on a network disk, or one host's temporary folder): each process marks its files with
//! a tag whose lock file it holds, so a process starting up removes only what a dead one left.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tsagent_bundle::manifest::Hash32;

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

/// A body being received: written to a temporary file and hashed as it comes.
pub struct Spool {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    len: u64,
    kept: bool,
}

impl Spool {
    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.file
            .write_all(chunk)
            .map_err(io_err("write", &self.path))?;
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

    /// Ends the body: flushes it to disk and gives its hash.
    pub fn finish(self) -> Result<Spooled, BlobError> {
        self.file.sync_all().map_err(io_err("sync", &self.path))?;
        let mut this = self;
        this.kept = true;
        Ok(Spooled {
            path: std::mem::take(&mut this.path),
            sha256: Hash32(this.hasher.clone().finalize().into()),
            len: this.len,
            kept: false,
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.kept {
            // A body cut off or refused: nothing of it may stay.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A complete body on disk, with its hash.
pub struct Spooled {
    path: PathBuf,
    /// SHA-256 of the body.
    pub sha256: Hash32,
    /// Its length.
    pub len: u64,
    kept: bool,
}

impl Spooled {
    /// The temporary file, to read it back.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What the intake needs of a blob store.
pub trait Blobs: Send + Sync {
    /// Starts spooling a body.
    fn spool(&self) -> Result<Spool, BlobError>;
    /// Keeps a verified body under its hash, durably, before the index records it. Storing a hash
    /// already there is a no-op (same name, same bytes).
    fn keep(&self, body: Spooled) -> Result<(), BlobError>;
    /// Keeps a refused body (a fork) aside, for the pilot to look at.
    fn quarantine(&self, body: Spooled) -> Result<(), BlobError>;
    /// Opens a kept blob.
    fn open(&self, sha256: &Hash32) -> Result<File, BlobError>;
    /// Every kept blob's hash (for the consistency check).
    fn list(&self) -> Result<Vec<Hash32>, BlobError>;
    /// Removes what stopped processes left half-received in the spool; how many files. Only the
    /// server starting calls it, although a serving process's own bodies are safe either way.
    fn remove_spool_leftovers(&self) -> Result<usize, BlobError>;
}

/// Blobs in a folder: `blobs/<first two hex digits>/<sha256>.tar`, `quarantine/`, `spool/`.
pub struct Folder {
    root: PathBuf,
    spool: SpoolDir,
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
    dir: PathBuf,
    tag: String,
    counter: AtomicU64,
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
            dir: dir.to_owned(),
            tag,
            counter: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// Removes the files of processes that are gone: half-received bodies, never acknowledged,
    /// so never owed; how many. The files of running processes (a server, or `status` beside it)
    /// are left alone.
    pub fn remove_stale(&self) -> Result<usize, BlobError> {
        let entries: Vec<_> = fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .flatten()
            .collect();
        let mut live = std::collections::HashSet::new();
        for entry in &entries {
            let name = entry.file_name();
            let Some(tag) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            let held = match File::open(entry.path()) {
                Ok(f) => tag == self.tag || f.try_lock().is_err(),
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

    fn create(&self, suffix: &str) -> Result<(File, PathBuf), BlobError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}.{suffix}", self.tag));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        Ok((file, path))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts spooling a body.
    pub fn spool(&self) -> Result<Spool, BlobError> {
        let (file, path) = self.create("part")?;
        Ok(Spool {
            file,
            path,
            hasher: Sha256::new(),
            len: 0,
            kept: false,
        })
    }

    /// A scratch file without a name (removed as soon as it is made), for a blob fetched from
    /// elsewhere: its space comes back when the handle closes, whatever happens to the process.
    pub fn scratch(&self) -> Result<File, BlobError> {
        let (file, path) = self.create("get")?;
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
        Ok(Self {
            root: root.to_owned(),
            spool: SpoolDir::open(&root.join("spool"))?,
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
            fs::rename(&body.path, dest).map_err(io_err("rename into", dest))?;
            body.kept = true;
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

    fn remove_spool_leftovers(&self) -> Result<usize, BlobError> {
        self.spool.remove_stale()
    }

    fn keep(&self, body: Spooled) -> Result<(), BlobError> {
        let dest = self.blob_path(&body.sha256);
        self.move_into(body, &dest)
    }

    fn quarantine(&self, body: Spooled) -> Result<(), BlobError> {
        let dest = self
            .root
            .join("quarantine")
            .join(format!("{}.tar", body.sha256));
        self.move_into(body, &dest)
    }

    fn open(&self, sha256: &Hash32) -> Result<File, BlobError> {
        let path = self.blob_path(sha256);
        File::open(&path).map_err(io_err("open", &path))
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
        out.sort_by_key(|h| h.0);
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
        assert_eq!(fs::read(body.path()).unwrap(), b"arriving");
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
