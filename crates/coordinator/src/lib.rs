//! The pilot's coordinator: the intake that verifies, stores and logs the bundles and heartbeats
//! labs send, and answers each with a signed receipt.
//!
//! Built on `tsagent-bundle` alone (the format, verification, links, the transparency log's
//! hashing): no serial, instrument or agent code.
//!
//! **Invariants:** verify before parse (a body's signature is checked for the lab its name names
//! before anything it vouches for is read); stored before reply (blob fsync'd and index committed
//! before any 2xx); the log is append-only (entries and subtrees are only ever inserted, and every
//! checkpoint is consistent with every earlier one).

pub mod blobs;
pub mod blobs_s3;
pub mod check;
pub mod config;
pub mod index;
pub mod index_pg;
pub mod intake;
pub mod log;
pub mod runtime;
pub mod server;

use std::path::PathBuf;

use thiserror::Error;
use tsagent_bundle::{AllowedSigners, KeyError};

pub use config::Config;
pub use intake::{Intake, Outcome};

/// Why the coordinator could not start.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Its key could not be loaded.
    #[error("cannot load the coordinator's key")]
    Key(#[source] KeyError),
    /// The labs' file could not be read.
    #[error("cannot read the labs' allowed_signers {path}")]
    LabsRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tsagent_bundle::file::FileError,
    },
    /// The labs' file is malformed.
    #[error("the labs' allowed_signers {path} is malformed")]
    Labs {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tsagent_bundle::AllowedSignersError,
    },
    /// The storage folder could not be made.
    #[error("cannot open the storage")]
    Blobs(#[from] blobs::BlobError),
    /// The TLS certificate or key cannot be used.
    #[error("cannot use the TLS material {path}: {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The index could not be opened.
    #[error("cannot open the index")]
    Index(#[from] index::IndexError),
}

/// Opens the intake the config describes: key, labs, index and blobs; clears what a stop left
/// half-received (for the server only: see [`open_storage`]).
pub fn open(config: &Config) -> Result<Intake, OpenError> {
    let key = tsagent_bundle::load_signing_key(&config.key).map_err(OpenError::Key)?;
    let text = tsagent_bundle::file::read_regular_text(
        "allowed_signers file",
        &config.labs,
        tsagent_bundle::MAX_SIGNERS_FILE_BYTES,
    )
    .map_err(|source| OpenError::LabsRead {
        path: config.labs.clone(),
        source,
    })?;
    let labs = AllowedSigners::parse(&text).map_err(|source| OpenError::Labs {
        path: config.labs.clone(),
        source,
    })?;
    let (index, blobs) = open_storage(config)?;
    let removed = blobs.remove_spool_leftovers()?;
    if removed > 0 {
        tracing::info!("removed {removed} half-received body(ies) left by a stop");
    }
    Ok(Intake::new(
        config.id.clone(),
        config.origin.clone(),
        key,
        labs,
        index,
        blobs,
    ))
}

/// The index and the blobs, whichever the storage.
pub type Storage = (Box<dyn index::Index>, Box<dyn blobs::Blobs>);

/// Opens the index and blobs alone (for `status`, `export` and `check`, which need no key and may
/// run beside a serving coordinator, so they leave its spool alone).
pub fn open_storage(config: &Config) -> Result<Storage, OpenError> {
    Ok(match &config.storage {
        config::Storage::Local { path } => {
            let blobs = blobs::Folder::open(path)?;
            let index = index::Local::open(&path.join("index.sqlite"))?;
            (Box::new(index), Box::new(blobs))
        }
        config::Storage::Separate { index, blobs } => {
            // Blobs first: a folder's or a spool's parent is made there, and the SQLite file
            // of `kind = "local"` with a bucket lives beside the spool.
            let blobs: Box<dyn blobs::Blobs> = match blobs {
                config::BlobStore::Folder(path) => Box::new(blobs::Folder::open(path)?),
                config::BlobStore::S3 { bucket, spool } => {
                    Box::new(blobs_s3::S3Blobs::open(bucket, spool)?)
                }
            };
            let index: Box<dyn index::Index> = match index {
                config::IndexStore::Sqlite(path) => {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(|source| blobs::BlobError::Io {
                            action: "create",
                            path: dir.to_owned(),
                            source,
                        })?;
                    }
                    Box::new(index::Local::open(path)?)
                }
                config::IndexStore::Postgres(url) => Box::new(index_pg::Postgres::open(url)?),
            };
            (index, blobs)
        }
    })
}

/// The TLS acceptor `cert` and `key_pem` describe, if any.
pub fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, OpenError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let bad = |path: &std::path::Path, reason: String| OpenError::Tls {
        path: path.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&tls.cert, "no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad(&tls.key, e.to_string()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&tls.key, e.to_string()))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        server,
    ))))
}

/// The server limits the config sets.
pub fn limits(config: &Config) -> server::Limits {
    server::Limits {
        max_bundle_bytes: config.max_bundle_bytes,
        body_timeout: config.body_timeout,
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        per_client: config.max_connections_per_client,
    }
}
