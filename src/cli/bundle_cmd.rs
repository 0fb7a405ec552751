//! `keygen`, `bundle seal` and `bundle verify`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Error;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::sealing::{self, KeyRecord, SealOptions, SealReport};
use crate::store::Store;
use tsagent_bundle::file::{self, FileError};
use tsagent_bundle::{self as bundle, AllowedSigners, NAMESPACE, SignersUpdate, VerifiedBundle};

/// `tsagent keygen`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct KeygenArgs {
    /// Private key file to create (mode 0600; the public key goes to PATH.pub; never overwritten)
    /// [default: `[signing] key` from the config].
    #[arg(long, value_name = "PATH", required_unless_present = "config")]
    pub out: Option<PathBuf>,
    /// The lab id: the signer principal in allowed_signers.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub lab: Option<String>,
    /// Take the lab id, the key's place and the database from this config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Replace the key the lab's database records (the old key was lost or retired): bundles are
    /// signed with the new key from now on, and a `key_rotated` event tells the pilot.
    #[arg(long, requires = "config")]
    pub new_key: bool,
}

/// `tsagent bundle …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum BundleCommand {
    /// Seal every reading not yet in a bundle, of runs that have ended, into the next signed
    /// bundle(s).
    Seal {
        /// The lab's config file (database, key, lab and artefact ids).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Folder for the bundle file [default: `[storage] bundles` from the config].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Also seal the readings of runs still in progress (their run is then split across
        /// bundles).
        #[arg(long)]
        include_running: bool,
        /// Accept a signing key other than the one the database records, and record it
        /// (a `key_rotated` event); the pilot then needs the new allowed_signers line.
        #[arg(long)]
        new_key: bool,
    },
    /// Verify bundles without extracting them: signature, hashes, manifest and the reading chain;
    /// with several, also the links between each lab's bundles (previous hash, numbers, chain).
    Verify {
        /// The bundles (.tar): files, folders (every `.tar` in them), or a pipe such as
        /// `/dev/stdin` (read once, kept in an unnamed scratch file for the second pass).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// OpenSSH allowed_signers file naming the labs' keys.
        #[arg(long, value_name = "FILE")]
        allowed_signers: PathBuf,
        /// Require this lab as the signer [default: the lab the manifest names].
        #[arg(long, value_name = "ID")]
        lab: Option<String>,
    },
}

/// Makes a key pair where the config (or `--out`) says, records it in the lab's database, writes
/// the lab's line into `allowed_signers` beside the key, and prints that line for the pilot.
pub fn keygen(args: KeygenArgs) -> Result<(), Error> {
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let (lab, key) = match (&config, &args.lab, &args.out) {
        (Some(config), _, out) => (
            config.lab.id.clone(),
            out.clone().unwrap_or_else(|| config.signing.key.clone()),
        ),
        (None, Some(lab), Some(out)) => (lab.clone(), out.clone()),
        _ => {
            return Err(Error::Usage(
                "give --config FILE, or --lab ID and --out PATH".into(),
            ));
        }
    };
    // Only the key sealing will use is recorded: one made elsewhere with --out is not (yet) it.
    let store = match &config {
        Some(config) if key == config.signing.key => Some(Store::open(&config.storage.db)?),
        _ => None,
    };
    if let Some(store) = &store
        && let Some(recorded) = store.signing_key()?
        && !args.new_key
    {
        return Err(Error::KeyRecorded {
            db: store.path().to_owned(),
            recorded,
        });
    }
    let (line, fingerprint) = new_key(&key, &lab)?;
    say!("private key: {} (mode 0600)", key.display());
    say!("public key:  {}.pub", key.display());
    say!("fingerprint: {fingerprint}");
    if let (Some(mut store), Some(config)) = (store, &config) {
        let now = SystemClock::new().now();
        match store.rotate_signing_key(&fingerprint, now)? {
            Some(old) => say!(
                "recorded in {} as the lab's signing key, replacing {old} (a key_rotated event goes to the pilot with the next bundle)",
                config.storage.db.display()
            ),
            None => say!(
                "recorded in {} as the lab's signing key",
                config.storage.db.display()
            ),
        }
    } else if config.is_some() {
        say!(
            "not recorded as the lab's signing key: the config's `[signing] key` names another file"
        );
    }
    let signers = signers_path(&key);
    let update = bundle::write_allowed_signers(&signers, &lab, &line)?;
    say!(
        "allowed_signers: {} ({})",
        signers.display(),
        match update {
            SignersUpdate::Created => "created",
            SignersUpdate::Replaced => "this lab's line replaced",
            SignersUpdate::Added => "this lab's line added",
        }
    );
    say!("send this allowed_signers line to the pilot:");
    say!("{line}");
    Ok(())
}

/// `allowed_signers` in the key's folder.
fn signers_path(key: &Path) -> PathBuf {
    key.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("allowed_signers")
}

/// Creates a key at `path` for `lab` and returns its allowed_signers line.
pub(super) fn make_key(path: &Path, lab: &str) -> Result<String, Error> {
    Ok(new_key(path, lab)?.0)
}

/// Creates a key at `path` for `lab`; returns its allowed_signers line and its fingerprint.
fn new_key(path: &Path, lab: &str) -> Result<(String, String), Error> {
    if !bundle::is_valid_id(lab) {
        return Err(Error::Usage(format!(
            "lab id `{lab}`: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let public = bundle::generate_key(path, lab)?;
    Ok((
        bundle::allowed_signers_line(lab, &public)?,
        bundle::fingerprint(&public),
    ))
}

/// The allowed_signers line for an existing key's public half.
pub(super) fn signers_line(key: &Path, lab: &str) -> Result<String, Error> {
    let private = bundle::load_signing_key(key)?;
    Ok(bundle::allowed_signers_line(lab, private.public_key())?)
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            action: "create folder",
            path: dir.to_owned(),
            source,
        })
}

/// Runs a `bundle` subcommand.
pub fn run(cmd: BundleCommand) -> Result<(), Error> {
    match cmd {
        BundleCommand::Seal {
            config,
            out,
            include_running,
            new_key,
        } => {
            let config = Config::load(&config)?;
            let out = out.unwrap_or_else(|| config.storage.bundles.clone());
            let mut store = Store::open_existing(&config.storage.db)?;
            let options = SealOptions {
                include_running,
                new_key,
            };
            let report = sealing::seal_pending_with(
                &config,
                &mut store,
                &out,
                &SystemClock::new(),
                options,
            )?;
            print_seal(&report);
            Ok(())
        }
        BundleCommand::Verify {
            files,
            allowed_signers,
            lab,
        } => verify_many(&files, &allowed_signers, lab.as_deref()),
    }
}

/// Every `.tar` a path names: itself, or the ones in a folder, by name.
fn bundle_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let mut tars: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect();
        if tars.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no .tar bundle in it",
                path.display()
            )));
        }
        tars.sort();
        out.extend(tars);
    }
    Ok(out)
}

/// Verifies each bundle, then the links within each lab and artefact: one bundle's failure does
/// not hide the others', and every problem is listed before the exit code says integrity.
fn verify_many(paths: &[PathBuf], signers: &Path, lab: Option<&str>) -> Result<(), Error> {
    let files = bundle_files(paths)?;
    if let [only] = files.as_slice() {
        let verified = verify_file(only, signers, lab)?;
        print_verified(only, &verified);
        return Ok(());
    }
    let mut problems = Vec::new();
    let mut chains: std::collections::BTreeMap<(String, String), Vec<(PathBuf, VerifiedBundle)>> =
        std::collections::BTreeMap::new();
    for file in &files {
        match verify_file(file, signers, lab) {
            Ok(v) => {
                print_verified(file, &v);
                let key = (v.manifest.lab.id.clone(), v.manifest.artefact.id.clone());
                chains.entry(key).or_default().push((file.clone(), v));
            }
            // A missing allowed_signers file or a usage error holds for every bundle: stop.
            Err(e @ (Error::Verify { .. } | Error::BundleTooLarge { .. } | Error::File(_))) => {
                say!("{}: FAILED: {}", file.display(), crate::error::report(&e));
                problems.push(file.display().to_string());
            }
            Err(e) => return Err(e),
        }
    }
    for ((lab, artefact), mut bundles) in chains {
        bundles.sort_by_key(|(_, v)| v.manifest.bundle_seq);
        let mut broken = false;
        for pair in bundles.windows(2) {
            let [(_, prev), (file, next)] = pair else {
                continue;
            };
            if prev.manifest.bundle_seq == next.manifest.bundle_seq {
                if prev.sums_sha256 != next.sums_sha256 {
                    say!(
                        "{lab} {artefact}: FORK: two different bundles numbered {} ({})",
                        next.manifest.bundle_seq,
                        file.display()
                    );
                    broken = true;
                }
                continue;
            }
            let head = tsagent_bundle::links::Head::of(prev);
            if let Err(e) = tsagent_bundle::links::check_link(Some(&head), &next.manifest) {
                say!(
                    "{lab} {artefact}: {} ({})",
                    shout_kind(&e.to_string()),
                    file.display()
                );
                broken = true;
            }
        }
        let (first, last) = (
            &bundles[0].1.manifest,
            &bundles[bundles.len() - 1].1.manifest,
        );
        if broken {
            problems.push(format!("{lab} {artefact}"));
        } else {
            say!(
                "{lab} {artefact}: bundles {}–{} linked: each names its predecessor's SHA256SUMS and continues its reading chain (readings {}–{})",
                first.bundle_seq,
                last.bundle_seq,
                first.readings.first_seq,
                last.readings.last_seq
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Links {
            problems: problems.join(", "),
        })
    }
}

/// `gap: …` → `GAP: …`: the problem's kind stands out among the ok lines.
fn shout_kind(text: &str) -> String {
    match text.split_once(':') {
        Some((kind, rest)) => format!("{}:{rest}", kind.to_uppercase()),
        None => text.to_owned(),
    }
}

pub(super) fn print_seal(report: &SealReport) {
    match &report.key {
        KeyRecord::Same => {}
        KeyRecord::Recorded => say!(
            "recorded signing key {} as this lab's: sealing refuses any other key from now on",
            report.fingerprint
        ),
        KeyRecord::Rotated {
            old,
            allowed_signers_line,
        } => {
            say!(
                "signing key changed: {old} → {} (recorded; the next bundle carries a key_rotated event)",
                report.fingerprint
            );
            say!(
                "the pilot needs this allowed_signers line to verify bundles signed with the new key:"
            );
            say!("{allowed_signers_line}");
        }
    }
    for run in &report.interrupted {
        say!("run {run}: the agent stopped during it (crash or power loss); marked interrupted");
    }
    if let Some(path) = &report.restored {
        say!(
            "restored {} (sealed earlier; its file was missing)",
            path.display()
        );
    }
    for s in &report.sealed {
        say!(
            "sealed bundle {}: readings {}–{} ({}), {} events → {}",
            s.seq,
            s.readings.0,
            s.readings.1,
            s.readings.1 - s.readings.0 + 1,
            s.events,
            s.path.display()
        );
        if !s.attachments.is_empty() {
            say!("  with the report in report/: {}", s.attachments.join(", "));
        }
    }
    if let Some(run) = report.waiting_for_run {
        say!(
            "run {run} is still in progress: its readings, and any after them, are sealed once it ends (--include-running seals them now)"
        );
    } else if report.sealed.is_empty() {
        say!("nothing new to seal: every reading is already in a bundle");
    }
    if !report.staged.is_empty() {
        say!(
            "report files staged: {} (they ride in the next bundle, sealed once new readings are waiting)",
            report.staged.join(", ")
        );
    }
}

/// Verifies a bundle file, or a bundle arriving through a pipe, in bounded memory.
///
/// Only a regular file is read in place. A FIFO, a pipe (`/dev/stdin`) or a character device is
/// accepted too, and read once under the same caps: it is opened without blocking (a FIFO with no
/// writer reads as empty rather than hanging), and what passes is kept in an unnamed scratch file
/// in the system's temporary folder, which the verifier's second pass reads. A directory, socket or
/// block device is refused.
pub(super) fn verify_file(
    path: &Path,
    signers: &Path,
    lab: Option<&str>,
) -> Result<VerifiedBundle, Error> {
    let text = file::read_regular_text(
        "allowed_signers file",
        signers,
        bundle::MAX_SIGNERS_FILE_BYTES,
    )?;
    let signers_parsed = AllowedSigners::parse(&text).map_err(|source| Error::Signers {
        path: signers.to_owned(),
        source,
    })?;
    let (input, meta) = file::open_nonblocking("bundle", path)?;
    let verify_err = |source| Error::Verify {
        path: path.to_owned(),
        source,
    };
    let now = std::time::SystemTime::now();
    let kind = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        if meta.len() > bundle::MAX_BUNDLE_BYTES {
            return Err(Error::BundleTooLarge {
                path: path.to_owned(),
                size: meta.len(),
                max: bundle::MAX_BUNDLE_BYTES,
            });
        }
        return bundle::verify_reader(input, &signers_parsed, lab, now).map_err(verify_err);
    }
    if !(kind.is_fifo() || kind.is_char_device()) {
        return Err(FileError::NotRegular {
            what: "bundle",
            path: path.to_owned(),
            kind: file::kind_name(&meta),
        }
        .into());
    }
    // Reads of a pipe or device wait for data from here on, as any reader's do; the open did not.
    nix::fcntl::fcntl(
        &input,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(|e| Error::Read {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let spool = scratch_file().map_err(|source| Error::Io {
        action: "create a scratch file in",
        path: std::env::temp_dir(),
        source,
    })?;
    let stream = Spooled {
        input,
        spool,
        spooled: 0,
        pos: 0,
    };
    bundle::verify_reader(stream, &signers_parsed, lab, now).map_err(verify_err)
}

/// An unnamed read-write file in the system's temporary folder (removed from the folder at once).
fn scratch_file() -> io::Result<File> {
    let path = std::env::temp_dir().join(format!("tsagent-verify-{}.scratch", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// A stream made seekable backwards: what is read from `input` is also kept in `spool`, and
/// reads after seeking back come from there. The verifier's first pass reads the stream once under
/// its caps and stops at the first error, so the spool never holds more than the caps allow.
struct Spooled {
    input: File,
    spool: File,
    /// Bytes read from `input` and kept.
    spooled: u64,
    /// Where the next read starts.
    pos: u64,
}

impl Read for Spooled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.spooled {
            self.spool.seek(SeekFrom::Start(self.pos))?;
            let left = usize::try_from(self.spooled - self.pos).unwrap_or(usize::MAX);
            let want = buf.len().min(left);
            let n = self.spool.read(&mut buf[..want])?;
            self.pos += u64::try_from(n).unwrap_or(0);
            return Ok(n);
        }
        let n = self.input.read(buf)?;
        self.spool.seek(SeekFrom::Start(self.spooled))?;
        self.spool.write_all(&buf[..n])?;
        self.spooled += u64::try_from(n).unwrap_or(0);
        self.pos = self.spooled;
        Ok(n)
    }
}

impl Seek for Spooled {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(_) => None,
        };
        match target {
            // Only back into what was read. The verifier's first pass asks for the end (to seek
            // past what it does not keep) and, told it is unsupported, reads the stream through.
            Some(n) if n <= self.spooled => {
                self.pos = n;
                Ok(n)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a stream can only be sought back into what was read",
            )),
        }
    }
}

pub(super) fn print_verified(file: &Path, v: &VerifiedBundle) {
    let m = &v.manifest;
    say!("{}: ok", file.display());
    say!(
        "  signed by `{}` (namespace {NAMESPACE}); every hash matches; {} readings chain from {} to {}",
        v.principal,
        v.readings,
        m.readings.first_seq,
        m.readings.last_seq
    );
    say!(
        "  lab {} ({}), artefact {} serial {}, bundle {}, sealed {}",
        m.lab.id,
        m.lab.name,
        m.artefact.id,
        m.artefact.serial,
        m.bundle_seq,
        m.created_utc
    );
    // Each attachment was hashed against SHA256SUMS and the manifest: say which, so the pilot
    // sees the lab's report arrived signed.
    for a in m.attachments.iter().flatten() {
        say!(
            "  attachment {} ({} bytes, sha256 {}) verified",
            a.file,
            a.size,
            a.sha256
        );
    }
}
