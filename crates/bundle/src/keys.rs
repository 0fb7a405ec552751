//! The lab's signing key: generation, loading with OpenSSH's permission rule, fingerprints,
//! `allowed_signers` lines and the lab's own `allowed_signers` file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use thiserror::Error;

use super::file::{self, FileError};
use super::ssh::SshError;
use super::{NAMESPACE, is_valid_id};

/// A private key file is a few hundred bytes; anything far larger is not one.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Largest `allowed_signers` file read: a line per lab key, so thousands of labs fit many times.
pub const MAX_SIGNERS_FILE_BYTES: u64 = 16 << 20;

/// The first line of every OpenSSH private key file.
const OPENSSH_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// Why a key could not be generated, loaded or described.
#[derive(Debug, Error)]
pub enum KeyError {
    /// `generate_key` never overwrites a key.
    #[error("key file `{}` already exists", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Creating, writing or syncing a key file (or the lab's `allowed_signers`) failed.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The key file (or `allowed_signers`) cannot be opened or read, or is not a regular file.
    #[error(transparent)]
    File(#[from] FileError),
    /// The key file has no bytes at all.
    #[error("key file `{}` is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The key file is not in OpenSSH's private key format at all.
    #[error(
        "key file `{}` is not an OpenSSH private key (it does not start with `{OPENSSH_BEGIN}`)",
        path.display()
    )]
    NotOpenSsh {
        /// The file.
        path: PathBuf,
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
    /// The file looks like an OpenSSH private key but does not decode.
    #[error("key file `{}` holds a damaged OpenSSH private key", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: SshError,
    },
    /// An unattended agent cannot ask for a passphrase.
    #[error("key file `{}` is encrypted; the agent signs unattended and needs an unencrypted key", path.display())]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// Bundles are signed with Ed25519 only.
    #[error("key file `{}` holds a {algorithm} key; only ssh-ed25519 is supported", path.display())]
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
    Crypto(#[source] SshError),
}

/// The key's fingerprint in OpenSSH's form (`SHA256:` and unpadded base64), as `ssh-keygen -l`
/// prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
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
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| KeyError::Crypto(e.into()))?;
    key.set_comment(comment);
    let private_pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::Crypto(e.into()))?;
    let mut public_line = key
        .public_key()
        .to_openssh()
        .map_err(|e| KeyError::Crypto(e.into()))?;
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
///
/// Only a regular file is opened (a FIFO or device at the key's path is refused at once), and only
/// the first 64 KiB are read.
pub fn load_signing_key(path: &Path) -> Result<PrivateKey, KeyError> {
    let (opened, meta) = file::open_regular("key file", path)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = file::read_opened("key file", path, opened, &meta, MAX_KEY_FILE_BYTES)?;
    let parsed = parse_private_key(path, &pem);
    wipe(pem);
    let key = parsed?;
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

/// Decodes a key file's bytes, telling an empty file and a file of another format apart from a
/// damaged key, each with one message that names the file.
fn parse_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKey, KeyError> {
    if pem.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_owned(),
        });
    }
    if !pem.trim_ascii_start().starts_with(OPENSSH_BEGIN.as_bytes()) {
        return Err(KeyError::NotOpenSsh {
            path: path.to_owned(),
        });
    }
    PrivateKey::from_openssh(pem).map_err(|e| KeyError::Parse {
        path: path.to_owned(),
        source: e.into(),
    })
}

/// Overwrites key material before the buffer is freed.
fn wipe(mut bytes: Vec<u8>) {
    bytes.fill(0);
    // Keeps the optimiser from dropping the stores as dead.
    std::hint::black_box(&mut bytes);
}

/// `<principal> namespaces="tsagent-bundle-v1,tsagent-heartbeat-v1" ssh-ed25519 AAAA…` for the
/// coordinator's file: the lab's key may sign bundles and heartbeats, nothing else.
pub fn allowed_signers_line(principal: &str, key: &PublicKey) -> Result<String, KeyError> {
    if !is_valid_id(principal) {
        return Err(KeyError::BadPrincipal(principal.to_owned()));
    }
    let bare = PublicKey::new(key.key_data().clone(), "");
    let encoded = bare.to_openssh().map_err(|e| KeyError::Crypto(e.into()))?;
    Ok(format!(
        "{principal} namespaces=\"{NAMESPACE},{}\" {encoded}",
        crate::receipt::HEARTBEAT_NAMESPACE
    ))
}

/// What [`write_allowed_signers`] did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignersUpdate {
    /// There was no file; it now holds the one line.
    Created,
    /// The principal's line(s) were replaced; every other line is as it was.
    Replaced,
    /// The principal had no line; it was added after the others.
    Added,
}

/// Puts `line`, the lab's own `allowed_signers` line for `principal`, into the file at `path`
/// (written whole, atomically): the lines whose principals are exactly `principal` give way to it,
/// every other line (other labs, comments) is kept as it was.
pub fn write_allowed_signers(
    path: &Path,
    principal: &str,
    line: &str,
) -> Result<SignersUpdate, KeyError> {
    let write_err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let existing =
        match file::read_regular_text("allowed_signers file", path, MAX_SIGNERS_FILE_BYTES) {
            Ok(text) => Some(text),
            Err(FileError::Open { source, .. }) if source.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
    let mut text = String::new();
    let mut replaced = false;
    for old in existing.as_deref().unwrap_or("").lines() {
        if crate::signers::line_principals(old) == Some(principal) {
            if !replaced {
                text.push_str(line);
                text.push('\n');
                replaced = true;
            }
        } else {
            text.push_str(old);
            text.push('\n');
        }
    }
    if !replaced {
        text.push_str(line);
        text.push('\n');
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| write_err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    crate::write_file_atomically(dir, name, text.as_bytes()).map_err(write_err)?;
    Ok(match (existing.is_some(), replaced) {
        (false, _) => SignersUpdate::Created,
        (true, true) => SignersUpdate::Replaced,
        (true, false) => SignersUpdate::Added,
    })
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
        assert!(matches!(
            load_signing_key(dir.path()),
            Err(KeyError::File(FileError::NotRegular {
                kind: "directory",
                ..
            }))
        ));
        assert!(matches!(
            load_signing_key(&dir.path().join("missing")),
            Err(KeyError::File(FileError::Open { .. }))
        ));
    }

    /// A key file that is not a key gets one message naming the file and what is wrong, without
    /// ssh-key's repeated causes (`PEM error …: PEM error …: PEM error …`).
    #[test]
    fn bad_key_files_get_one_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        generate_key(&good, "c").unwrap();
        let pem = fs::read_to_string(&good).unwrap();
        let mut damaged = pem.clone();
        damaged.replace_range(60..64, "!!!!");
        let cases: [(&str, &[u8], &str); 5] = [
            ("empty", b"", "key file `{}` is empty"),
            ("nul", b"\0", "key file `{}` is not an OpenSSH private key (it does not start with `-----BEGIN OPENSSH PRIVATE KEY-----`)"),
            ("text", b"not a key\n", "key file `{}` is not an OpenSSH private key (it does not start with `-----BEGIN OPENSSH PRIVATE KEY-----`)"),
            ("pkcs8", b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n", "key file `{}` is not an OpenSSH private key (it does not start with `-----BEGIN OPENSSH PRIVATE KEY-----`)"),
            ("damaged", damaged.as_bytes(), "key file `{}` holds a damaged OpenSSH private key: "),
        ];
        for (name, bytes, message) in cases {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = load_signing_key(&path).unwrap_err();
            let mut chain = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            let expected = message.replace("{}", &path.display().to_string());
            assert!(chain.starts_with(&expected), "{name}: {chain}");
            // Each cause is said once.
            let parts: Vec<&str> = chain.split(": ").collect();
            let mut unique = parts.clone();
            unique.dedup();
            assert_eq!(parts, unique, "{name}: {chain}");
            assert!(!chain.contains("NUL byte"), "{name}: {chain}");
        }
    }

    #[test]
    fn the_labs_allowed_signers_line_is_replaced_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allowed_signers");
        let first = generate_key(&dir.path().join("k1"), "c").unwrap();
        let second = generate_key(&dir.path().join("k2"), "c").unwrap();
        let other = generate_key(&dir.path().join("k3"), "c").unwrap();
        let line1 = allowed_signers_line("LAB1", &first).unwrap();
        let line2 = allowed_signers_line("LAB1", &second).unwrap();
        let other_line = allowed_signers_line("LAB2", &other).unwrap();
        assert_eq!(
            write_allowed_signers(&path, "LAB1", &line1).unwrap(),
            SignersUpdate::Created
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{line1}\n"));
        fs::write(&path, format!("# pilot's list\n{other_line}\n{line1}\n")).unwrap();
        assert_eq!(
            write_allowed_signers(&path, "LAB1", &line2).unwrap(),
            SignersUpdate::Replaced
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("# pilot's list\n{other_line}\n{line2}\n")
        );
        fs::write(&path, format!("{other_line}\n")).unwrap();
        assert_eq!(
            write_allowed_signers(&path, "LAB1", &line1).unwrap(),
            SignersUpdate::Added
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{other_line}\n{line1}\n")
        );
    }

    #[test]
    fn fingerprints_are_openssh_s() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let public = generate_key(&path, "c").unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let listed = String::from_utf8(out.stdout).unwrap();
        let fp = fingerprint(&public);
        assert!(fp.starts_with("SHA256:"), "{fp}");
        assert_eq!(listed.split(' ').nth(1), Some(fp.as_str()), "{listed}");
    }

    #[test]
    fn allowed_signers_line_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let public = generate_key(&dir.path().join("k"), "has a comment").unwrap();
        let line = allowed_signers_line("LAB1", &public).unwrap();
        assert!(
            line.starts_with(
                "LAB1 namespaces=\"tsagent-bundle-v1,tsagent-heartbeat-v1\" ssh-ed25519 AAAA"
            ),
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
