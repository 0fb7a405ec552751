//! One owner of a lab's instruments and database at a time.
//!
//! The process that acquires (`run`, `measure`, `demo`, and `custody` for the moment of an action
//! when no daemon runs) holds an exclusive `flock` on a lock file beside the database for as long
//! as it lives, and writes who it is into the file. A second one is
//! refused at once, with the holder's role and pid, and the daemon's control socket. Why a lock
//! and not only SQLite's: two processes would each open the same serial ports and adapters (one
//! fails on the port's lock, or times out and blames the meter), and with simulated instruments
//! would run a second lab into the same log. The kernel drops the lock when the holder dies, even
//! by `kill -9`, so a lock file left behind never blocks anyone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// What the holding process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `tsagent run`.
    Daemon,
    /// `tsagent measure`.
    Measure,
    /// `tsagent demo`.
    Demo,
    /// `tsagent custody`, writing the log directly for the moment of one action because no
    /// daemon runs (so none can start under it).
    Custody,
    /// `tsagent report --seal`, staging the report for the next bundle.
    Report,
}

impl Role {
    /// The command, for messages.
    pub fn command(self) -> &'static str {
        match self {
            Role::Daemon => "run",
            Role::Measure => "measure",
            Role::Demo => "demo",
            Role::Custody => "custody",
            Role::Report => "report",
        }
    }
}

/// Who holds the lab, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// What it does.
    pub role: Role,
    /// Its process id.
    pub pid: u32,
    /// The daemon's control socket (the API's way in).
    pub socket: PathBuf,
}

/// Why the lab could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// The daemon holds it.
    #[error(
        "the lab is held by the daemon (`tsagent run`, pid {}, control socket {}); it owns the instruments and the database while it runs: stop it to measure by hand",
        .holder.pid,
        .holder.socket.display()
    )]
    HeldByDaemon {
        /// The daemon.
        holder: Holder,
    },
    /// Another command holds it.
    #[error(
        "the lab is held by `tsagent {}` (pid {}); wait for it to finish",
        .holder.role.command(),
        .holder.pid
    )]
    Held {
        /// The other process.
        holder: Holder,
    },
    /// Held by a process that has not yet said who it is (it is starting).
    #[error("the lab is held by another tsagent process (lock {}); wait for it to finish", .path.display())]
    HeldByUnknown {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened or written.
    #[error("cannot take the lab's lock {}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The lab, held until dropped (or the process ends).
#[derive(Debug)]
pub struct LabLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl LabLock {
    /// Takes the lab of `config` for `role`, or says who holds it.
    pub fn acquire(config: &Config, role: Role) -> Result<LabLock, OwnerError> {
        Self::acquire_at(&lock_path(&config.storage.db), role, &config.control.socket)
    }

    /// Takes the lock file at `path`.
    pub fn acquire_at(path: &Path, role: Role, socket: &Path) -> Result<LabLock, OwnerError> {
        let io = |source| OwnerError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(file) => file,
            // Not this user's to write (the daemon's service user owns it, and this is an
            // operator of `[control] group`): who holds it can still be read, and a daemon
            // holding it is what `measure` and `custody` need to know to hand over to it.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let held = File::open(path).ok().and_then(|file| {
                    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                        Err((file, nix::errno::Errno::EWOULDBLOCK)) => Some(held_by(file, path)),
                        _ => None,
                    }
                });
                return Err(held.unwrap_or_else(|| io(e)));
            }
            Err(e) => return Err(io(e)),
        };
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => return Err(held_by(file, path)),
            Err((_, errno)) => return Err(io(errno.into())),
        };
        let holder = Holder {
            role,
            pid: std::process::id(),
            socket: socket.to_owned(),
        };
        let text = serde_json::to_string(&holder)
            .map_err(std::io::Error::other)
            .map_err(io)?;
        lock.set_len(0).map_err(io)?;
        lock.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
        Ok(LabLock {
            _lock: lock,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds the lock file `file` (opened at `path`), as it says.
fn held_by(mut file: File, path: &Path) -> OwnerError {
    let mut text = String::new();
    let holder = file
        .read_to_string(&mut text)
        .ok()
        .and_then(|_| serde_json::from_str::<Holder>(text.trim()).ok());
    match holder {
        Some(holder) if holder.role == Role::Daemon => OwnerError::HeldByDaemon { holder },
        Some(holder) => OwnerError::Held { holder },
        None => OwnerError::HeldByUnknown {
            path: path.to_owned(),
        },
    }
}

/// The lock file of the database at `db`: beside it, named after it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab/tsagent.db.lock");
        let socket = dir.path().join("lab/tsagent.sock");
        let held = LabLock::acquire_at(&path, Role::Daemon, &socket).unwrap();
        let err = LabLock::acquire_at(&path, Role::Measure, &socket).unwrap_err();
        let OwnerError::HeldByDaemon { holder } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.socket, socket);
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("tsagent.sock"), "{text}");
        drop(held);
        let again = LabLock::acquire_at(&path, Role::Measure, &socket).unwrap();
        let err = LabLock::acquire_at(&path, Role::Daemon, &socket).unwrap_err();
        assert!(
            matches!(&err, OwnerError::Held { holder } if holder.role == Role::Measure),
            "{err:?}"
        );
        assert!(err.to_string().contains("`tsagent measure`"), "{err}");
        drop(again);
    }

    #[test]
    fn a_holder_that_has_not_said_who_it_is_is_still_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "not json").unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        let _held = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
        let err = LabLock::acquire_at(&path, Role::Measure, Path::new("s")).unwrap_err();
        assert!(matches!(err, OwnerError::HeldByUnknown { .. }), "{err:?}");
    }

    #[test]
    fn a_lock_file_left_behind_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(
            &path,
            r#"{"role":"daemon","pid":1,"socket":"/old/tsagent.sock"}"#,
        )
        .unwrap();
        let lock = LabLock::acquire_at(&path, Role::Demo, Path::new("/new.sock")).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        let holder: Holder = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(holder.role, Role::Demo);
        assert_eq!(holder.socket, Path::new("/new.sock"));
    }
}
