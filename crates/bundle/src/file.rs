//! Opening the files a lab's agent and a verifier read (keys, `allowed_signers`, configs, driver
//! profiles, bundles) so that no path can hang or flood them.
//!
//! A FIFO given as a key path would block `open(2)` until some writer appears, forever; a
//! character device such as `/dev/zero` would be read without end. So every file is opened with
//! `O_NONBLOCK` (which makes opening a FIFO return at once and changes nothing for a regular
//! file), its type is checked on the open descriptor (the file checked is the file read), anything
//! but a regular file is refused, and no more than a cap is ever read.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a file could not be read. `what` names the file's role (`key file`, `config file`, …).
#[derive(Debug, Error)]
pub enum FileError {
    /// Opening failed (missing, no permission, …).
    #[error("cannot open {what} `{}`", path.display())]
    Open {
        /// The file's role.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Not a regular file: a FIFO, a device, a directory or a socket.
    #[error("{what} `{}` is a {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file's role.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Larger than any file of its role may be.
    #[error("{what} `{}` is larger than the {cap} bytes such a file may have", path.display())]
    TooLarge {
        /// The file's role.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cap.
        cap: u64,
    },
    /// Reading failed.
    #[error("cannot read {what} `{}`", path.display())]
    Read {
        /// The file's role.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A text file that is not UTF-8.
    #[error("{what} `{}` is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file's role.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
}

/// What kind of file `meta` describes, as messages name it.
pub fn kind_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Opens `path` for reading without blocking on a FIFO, and returns it with the descriptor's
/// metadata; the caller decides which kinds it accepts. The descriptor stays in non-blocking mode,
/// which matters only for FIFOs and devices.
pub fn open_nonblocking(what: &'static str, path: &Path) -> Result<(File, Metadata), FileError> {
    let open_err = |source| FileError::Open {
        what,
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err)?;
    let meta = file.metadata().map_err(|source| FileError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    Ok((file, meta))
}

/// Opens a regular file for reading; refuses every other kind of file before reading a byte.
pub fn open_regular(what: &'static str, path: &Path) -> Result<(File, Metadata), FileError> {
    let (file, meta) = open_nonblocking(what, path)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            what,
            path: path.to_owned(),
            kind: kind_name(&meta),
        });
    }
    Ok((file, meta))
}

/// Reads a whole regular file of at most `cap` bytes.
pub fn read_regular(what: &'static str, path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let (file, meta) = open_regular(what, path)?;
    read_opened(what, path, file, &meta, cap)
}

/// Reads at most `cap` bytes of a file opened by [`open_regular`], so that checks made on its
/// metadata (permissions, say) are about the very file read.
pub fn read_opened(
    what: &'static str,
    path: &Path,
    file: File,
    meta: &Metadata,
    cap: u64,
) -> Result<Vec<u8>, FileError> {
    let too_large = || FileError::TooLarge {
        what,
        path: path.to_owned(),
        cap,
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow after the size was read; the cap holds whatever happens.
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read {
            what,
            path: path.to_owned(),
            source,
        })?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a whole regular UTF-8 text file of at most `cap` bytes.
pub fn read_regular_text(what: &'static str, path: &Path, cap: u64) -> Result<String, FileError> {
    String::from_utf8(read_regular(what, path, cap)?).map_err(|_| FileError::NotUtf8 {
        what,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `f` on a thread and fails the test if it has not returned within a few seconds: a
    /// hang is the failure these tests look for, so it must not hang the test run.
    fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the call hung")
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn regular_files_are_read_within_their_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_regular_text("test file", &path, 5).unwrap(), "hello");
        let err = read_regular("test file", &path, 4).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { cap: 4, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "test file `{}` is larger than the 4 bytes such a file may have",
                path.display()
            )
        );
        std::fs::write(&path, b"\xff").unwrap();
        assert!(matches!(
            read_regular_text("test file", &path, 5),
            Err(FileError::NotUtf8 { .. })
        ));
        assert!(matches!(
            read_regular("test file", &dir.path().join("missing"), 5),
            Err(FileError::Open { .. })
        ));
    }

    #[test]
    fn fifos_devices_and_folders_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let cases = [
            (fifo, "FIFO"),
            (PathBuf::from("/dev/zero"), "character device"),
            (PathBuf::from("/dev/null"), "character device"),
            (dir.path().to_owned(), "directory"),
        ];
        for (path, kind) in cases {
            let shown = path.clone();
            let err =
                within_deadline(move || read_regular("key file", &path, 1 << 20)).unwrap_err();
            match &err {
                FileError::NotRegular { kind: k, .. } => assert_eq!(*k, kind),
                other => panic!("{}: {other:?}", shown.display()),
            }
            assert_eq!(
                err.to_string(),
                format!(
                    "key file `{}` is a {kind}, not a regular file",
                    shown.display()
                )
            );
        }
    }
}
