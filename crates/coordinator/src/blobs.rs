//! The blobs: each accepted tar kept write-once under its SHA-256, as restic's rest-server keeps
//! its objects. A body is spooled to a temporary file while it is hashed; only a verified bundle
//! is moved into place (fsync the file, rename, fsync the folder) before the index records it, so
//! the index never names a blob that a power cut could take back.

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
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
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
}

/// Blobs in a folder: `blobs/<first two hex digits>/<sha256>.tar`, `quarantine/`, `spool/`.
pub struct Folder {
    root: PathBuf,
    counter: AtomicU64,
}

fn sync_dir(path: &Path) -> Result<(), BlobError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync folder", path))
}

impl Folder {
    /// Opens (creating) the folders under `root`.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        for sub in ["blobs", "quarantine", "spool"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        Ok(Self {
            root: root.to_owned(),
            counter: AtomicU64::new(0),
        })
    }

    /// Removes the spool files a crash left: half-received bodies, never acknowledged, so never
    /// owed. Only the server starting calls it: `status`, `export` or `check` run beside a
    /// serving coordinator would otherwise delete the bodies it is receiving.
    pub fn remove_spool_leftovers(&self) -> Result<usize, BlobError> {
        let spool = self.root.join("spool");
        let entries = fs::read_dir(&spool).map_err(io_err("list", &spool))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            if fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
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
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        if dest.exists() {
            // Content-addressed: a blob of this name already holds these bytes (a crash after
            // the rename and before the index); the spool file goes when `body` drops.
            return Ok(());
        }
        fs::rename(&body.path, dest).map_err(io_err("rename into", dest))?;
        body.kept = true;
        sync_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Blobs for Folder {
    fn spool(&self) -> Result<Spool, BlobError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("spool")
            .join(format!("{}-{n}.part", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        Ok(Spool {
            file,
            path,
            hasher: Sha256::new(),
            len: 0,
            kept: false,
        })
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
        assert_eq!(fs::read_dir(dir.path().join("spool")).unwrap().count(), 0);
    }
}
