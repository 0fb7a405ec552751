//! The lab's signing key: generation, loading with OpenSSH's permission rule, `allowed_signers` lines.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};
use thiserror::Error;

use super::{NAMESPACE, is_valid_id};

/// A private key file is a few hundred bytes; anything far larger is not one.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Why a key could not be generated, loaded or described.
#[derive(Debug, Error)]
pub enum KeyError {
    /// `generate_key` never overwrites a key.
    #[error("key file '{}' already exists", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Creating, writing or syncing a key file failed.
    #[error("cannot write key file '{}'", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Opening or reading a key file failed.
    #[error("cannot read key file '{}'", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Group or others may access the private key; OpenSSH would ignore it too.
    #[error(
        "unprotected private key file: permissions {mode:04o} for '{}' are too open; it is required that private key files are not accessible by others",
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a regular file or is implausibly large.
    #[error("'{}' is not a private key file", path.display())]
    NotAKeyFile {
        /// The path.
        path: PathBuf,
    },
    /// The file does not hold an OpenSSH private key.
    #[error("cannot parse private key file '{}'", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: ssh_key::Error,
    },
    /// An unattended agent cannot ask for a passphrase.
    #[error("private key file '{}' is encrypted; the agent signs unattended and needs an unencrypted key", path.display())]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// Bundles are signed with Ed25519 only.
    #[error("private key file '{}' holds a {algorithm} key; only ssh-ed25519 is supported", path.display())]
    NotEd25519 {
        /// The file.
        path: PathBuf,
        /// The key's algorithm.
        algorithm: String,
    },
    /// The comment would break the one-line public key file.
    #[error("key comment must not contain line breaks")]
    BadComment,
    /// The principal would not parse back from an `allowed_signers` line.
    #[error("invalid principal `{0}` (expected [A-Za-z0-9._-]{{1,64}})")]
    BadPrincipal(String),
    /// Key generation or encoding failed inside ssh-key.
    #[error("cannot generate or encode the key")]
    Crypto(#[source] ssh_key::Error),
}

fn public_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn create_new(path: &Path, mode: u32) -> Result<File, KeyError> {
    // The mode applies at creation, so the private key is never readable by others, not even briefly.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                KeyError::Write {
                    path: path.to_owned(),
                    source,
                }
            }
        })
}

fn write_synced(mut file: File, path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Creates a new Ed25519 key at `path` (0600) and its public half at `path.pub` (0644).
///
/// Refuses to overwrite either file. Both files and their directory are fsynced before returning.
pub fn generate_key(path: &Path, comment: &str) -> Result<PublicKey, KeyError> {
    if comment.contains(['\n', '\r']) {
        return Err(KeyError::BadComment);
    }
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(KeyError::Crypto)?;
    key.set_comment(comment);
    let private_pem = key.to_openssh(LineEnding::LF).map_err(KeyError::Crypto)?;
    let mut public_line = key.public_key().to_openssh().map_err(KeyError::Crypto)?;
    public_line.push('\n');

    let pub_path = public_key_path(path);
    let private = create_new(path, 0o600)?;
    let written = create_new(&pub_path, 0o644).and_then(|public| {
        write_synced(private, path, private_pem.as_bytes())?;
        write_synced(public, &pub_path, public_line.as_bytes())
    });
    if let Err(e) = written {
        // Only files this call created are removed: `Exists` for `.pub` means the private key
        // was ours and never used, and a half-written pair is worse than none.
        let _ = fs::remove_file(path);
        if !matches!(e, KeyError::Exists { .. }) {
            let _ = fs::remove_file(&pub_path);
        }
        return Err(e);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyError::Write {
            path: dir.to_owned(),
            source,
        })?;
    Ok(key.public_key().clone())
}

/// Loads the lab's unencrypted Ed25519 signing key, refusing files others can access.
pub fn load_signing_key(path: &Path) -> Result<PrivateKey, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    // Checking the opened file, not the path, so the file checked is the file read.
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyError::NotAKeyFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut pem = Vec::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_end(&mut pem)
        .map_err(read_err)?;
    let parsed = PrivateKey::from_openssh(&pem);
    wipe(pem);
    let key = parsed.map_err(|source| KeyError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if key.is_encrypted() {
        return Err(KeyError::Encrypted {
            path: path.to_owned(),
        });
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(KeyError::NotEd25519 {
            path: path.to_owned(),
            algorithm: key.algorithm().to_string(),
        });
    }
    Ok(key)
}

/// Overwrites key material before the buffer is freed.
fn wipe(mut bytes: Vec<u8>) {
    bytes.fill(0);
    // Keeps the optimiser from dropping the stores as dead.
    std::hint::black_box(&mut bytes);
}

/// `<principal> namespaces="tsagent-bundle-v1" ssh-ed25519 AAAA…` for the coordinator's file.
pub fn allowed_signers_line(principal: &str, key: &PublicKey) -> Result<String, KeyError> {
    if !is_valid_id(principal) {
        return Err(KeyError::BadPrincipal(principal.to_owned()));
    }
    let bare = PublicKey::new(key.key_data().clone(), "");
    let encoded = bare.to_openssh().map_err(KeyError::Crypto)?;
    Ok(format!("{principal} namespaces=\"{NAMESPACE}\" {encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signers::AllowedSigners;
    use std::time::SystemTime;

    #[test]
    fn generate_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab_key");
        let public = generate_key(&path, "LAB1 signing key").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let pub_text = fs::read_to_string(dir.path().join("lab_key.pub")).unwrap();
        assert!(
            pub_text.starts_with("ssh-ed25519 AAAA") && pub_text.ends_with(" LAB1 signing key\n"),
            "{pub_text}"
        );
        let key = load_signing_key(&path).unwrap();
        assert_eq!(key.public_key().key_data(), public.key_data());
        // ssh-keygen reads what we wrote.
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(pub_text.starts_with(String::from_utf8(out.stdout).unwrap().trim_end()));
    }

    #[test]
    fn generate_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        generate_key(&path, "first").unwrap();
        let before = fs::read(&path).unwrap();
        assert!(matches!(
            generate_key(&path, "second"),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), before);
        // A stray `.pub` blocks generation and leaves nothing behind.
        let other = dir.path().join("o");
        fs::write(dir.path().join("o.pub"), "x").unwrap();
        assert!(matches!(
            generate_key(&other, "c"),
            Err(KeyError::Exists { .. })
        ));
        assert!(!other.exists());
        assert_eq!(fs::read(dir.path().join("o.pub")).unwrap(), b"x");
        assert!(matches!(
            generate_key(&dir.path().join("n"), "a\nb"),
            Err(KeyError::BadComment)
        ));
    }

    #[test]
    fn load_refuses_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        generate_key(&path, "c").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signing_key(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { mode: 0o644, .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "unprotected private key file: permissions 0644 for '{}' are too open; \
                 it is required that private key files are not accessible by others",
                path.display()
            )
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_signing_key(&path),
            Err(KeyError::Permissions { mode: 0o640, .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_signing_key(&path).is_ok());
    }

    #[test]
    fn load_refuses_encrypted_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keygen = |name: &str, args: &[&str]| {
            let path = dir.path().join(name);
            let status = std::process::Command::new("ssh-keygen")
                .args(["-q", "-C", ""])
                .args(args)
                .arg("-f")
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
            path
        };
        let encrypted = keygen("enc", &["-t", "ed25519", "-N", "secret"]);
        assert!(matches!(
            load_signing_key(&encrypted),
            Err(KeyError::Encrypted { .. })
        ));
        let rsa = keygen("rsa", &["-t", "rsa", "-b", "2048", "-N", ""]);
        match load_signing_key(&rsa) {
            Err(KeyError::NotEd25519 { algorithm, .. }) => assert_eq!(algorithm, "ssh-rsa"),
            other => panic!("{other:?}"),
        }
        let garbage = dir.path().join("garbage");
        fs::write(&garbage, "not a key").unwrap();
        fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_signing_key(&garbage),
            Err(KeyError::Parse { .. })
        ));
        assert!(matches!(
            load_signing_key(dir.path()),
            Err(KeyError::NotAKeyFile { .. })
        ));
        assert!(matches!(
            load_signing_key(&dir.path().join("missing")),
            Err(KeyError::Read { .. })
        ));
    }

    #[test]
    fn allowed_signers_line_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let public = generate_key(&dir.path().join("k"), "has a comment").unwrap();
        let line = allowed_signers_line("LAB1", &public).unwrap();
        assert!(
            line.starts_with("LAB1 namespaces=\"tsagent-bundle-v1\" ssh-ed25519 AAAA"),
            "{line}"
        );
        assert!(!line.contains("comment"));
        let signers = AllowedSigners::parse(&line).unwrap();
        let keys = signers.keys_for("LAB1", NAMESPACE, SystemTime::now());
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_data(), public.key_data());
        assert!(
            signers
                .keys_for("LAB1", "git", SystemTime::now())
                .is_empty()
        );
        assert!(matches!(
            allowed_signers_line("LAB 1", &public),
            Err(KeyError::BadPrincipal(_))
        ));
        assert!(matches!(
            allowed_signers_line("*", &public),
            Err(KeyError::BadPrincipal(_))
        ));
    }
}
