//! `keygen`, `bundle seal` and `bundle verify`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Error;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::sealing::{self, SealReport};
use crate::store::Store;
use tsagent_bundle::{self as bundle, AllowedSigners, NAMESPACE, VerifiedBundle};

/// `tsagent keygen`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct KeygenArgs {
    /// Private key file to create (mode 0600); the public key goes to PATH.pub. Never overwritten.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// The lab id: the signer principal in allowed_signers.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub lab: Option<String>,
    /// Take the lab id from this config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `tsagent bundle …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum BundleCommand {
    /// Seal every reading not yet in a bundle into the next signed bundle.
    Seal {
        /// The lab's config file (database, key, lab and artefact ids).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Folder for the bundle file [default: `[storage] bundles` from the config].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Verify a bundle without extracting it: signature, hashes, manifest and the reading chain.
    Verify {
        /// The bundle (.tar).
        file: PathBuf,
        /// OpenSSH allowed_signers file naming the labs' keys.
        #[arg(long, value_name = "FILE")]
        allowed_signers: PathBuf,
        /// Require this lab as the signer [default: the lab the manifest names].
        #[arg(long, value_name = "ID")]
        lab: Option<String>,
    },
}

/// Makes a key pair and prints the allowed_signers line for the pilot.
pub fn keygen(args: KeygenArgs) -> Result<(), Error> {
    let lab = match (&args.lab, &args.config) {
        (Some(lab), _) => lab.clone(),
        (None, Some(path)) => Config::load(path)?.lab.id,
        (None, None) => return Err(Error::Usage("give --lab ID or --config FILE".into())),
    };
    let line = make_key(&args.out, &lab)?;
    say!("private key: {} (mode 0600)", args.out.display());
    say!("public key:  {}.pub", args.out.display());
    say!("send this allowed_signers line to the pilot:");
    say!("{line}");
    Ok(())
}

/// Creates a key at `path` for `lab` and returns its allowed_signers line.
pub(super) fn make_key(path: &Path, lab: &str) -> Result<String, Error> {
    if !bundle::is_valid_id(lab) {
        return Err(Error::Usage(format!(
            "lab id `{lab}`: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let public = bundle::generate_key(path, lab)?;
    Ok(bundle::allowed_signers_line(lab, &public)?)
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
        BundleCommand::Seal { config, out } => {
            let config = Config::load(&config)?;
            let out = out.unwrap_or_else(|| config.storage.bundles.clone());
            let mut store = Store::open_existing(&config.storage.db)?;
            let report = sealing::seal_pending(&config, &mut store, &out, &SystemClock::new())?;
            print_seal(&report);
            Ok(())
        }
        BundleCommand::Verify {
            file,
            allowed_signers,
            lab,
        } => {
            let verified = verify_file(&file, &allowed_signers, lab.as_deref())?;
            print_verified(&file, &verified);
            Ok(())
        }
    }
}

pub(super) fn print_seal(report: &SealReport) {
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
    }
    if report.sealed.is_empty() {
        say!("nothing new to seal: every reading is already in a bundle");
    }
}

/// Reads and verifies a bundle file.
pub(super) fn verify_file(
    file: &Path,
    signers: &Path,
    lab: Option<&str>,
) -> Result<VerifiedBundle, Error> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Read { path, source }
    };
    let size = std::fs::metadata(file).map_err(read_err(file))?.len();
    if size > bundle::MAX_BUNDLE_BYTES {
        return Err(Error::BundleTooLarge {
            path: file.to_owned(),
            size,
            max: bundle::MAX_BUNDLE_BYTES,
        });
    }
    let bytes = std::fs::read(file).map_err(read_err(file))?;
    let text = std::fs::read_to_string(signers).map_err(read_err(signers))?;
    let signers = AllowedSigners::parse(&text).map_err(|source| Error::Signers {
        path: signers.to_owned(),
        source,
    })?;
    bundle::verify(&bytes, &signers, lab).map_err(|source| Error::Verify {
        path: file.to_owned(),
        source,
    })
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
}
