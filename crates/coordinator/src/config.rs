//! The coordinator's config, in two stages like the agent's: raw serde structs that refuse unknown
//! keys, then a validated [`Config`] whose errors name the key and its line.
//!
//! ```toml
//! [coordinator]
//! id = "pilot-NIM"                 # the principal of the coordinator's key in receipts
//! listen = "127.0.0.1:8480"        # port 0 picks a free port
//! key = "coordinator_key"          # its Ed25519 key, made with `tsagent keygen`
//! labs = "labs_allowed_signers"    # the labs' keys, principal = lab id
//! # cert = "cert.pem"              # TLS; without it plain HTTP (loopback, or behind a proxy)
//! # key_pem = "key.pem"
//! # max_bundle_bytes = 1073741824   # larger bodies get 413
//! # max_connections_per_client = 8 # more from one address get 429
//! # header_timeout = "10s"         # request line and headers, and an idle keep-alive
//! # body_timeout = "5m"            # a whole bundle body
//! # idle_timeout = "30s"           # a body that stops arriving
//!
//! [storage]
//! kind = "local"                   # SQLite index and a folder of blobs
//! path = "intake"
//! ```
//!
//! Scale-out, several coordinator processes on one database and one bucket:
//!
//! ```toml
//! [storage]
//! kind = "postgres"
//! url = "postgres://tsagent@db.example/tsagent"  # no password here: PGPASSWORD in the environment
//! # path = "/srv/blobs"             # blobs in a (shared) folder instead of a bucket
//! # spool = "/var/tmp/tsagent"      # bodies being received; default: the OS temporary folder
//!
//! [storage.s3]                     # credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//! endpoint = "https://s3.eu-central-1.amazonaws.com"
//! bucket = "pilot-nim-bundles"
//! # region = "eu-central-1"        # default "us-east-1"
//! # prefix = "comparison-2027"     # objects under `<prefix>/blobs/`, `<prefix>/quarantine/`
//! ```
//!
//! `kind = "local"` takes a `[storage.s3]` too: the SQLite index in `path`, the blobs in the bucket.
//!
//! Relative paths are taken from the config file's folder.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why the config was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tsagent_bundle::file::FileError,
    },
    /// Not TOML, an unknown key, a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the line and key.
        message: String,
    },
    /// A value that parses but cannot be used.
    #[error("{path}:{line}: `{key}` {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its line.
        line: usize,
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    coordinator: RawCoordinator,
    #[serde(default)]
    storage: Option<RawStorage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoordinator {
    id: Spanned<String>,
    listen: Spanned<String>,
    key: Spanned<String>,
    labs: Spanned<String>,
    #[serde(default)]
    origin: Option<Spanned<String>>,
    #[serde(default)]
    cert: Option<Spanned<String>>,
    #[serde(default)]
    key_pem: Option<Spanned<String>>,
    #[serde(default)]
    max_bundle_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    max_connections_per_client: Option<Spanned<u32>>,
    #[serde(default)]
    body_timeout: Option<Spanned<String>>,
    #[serde(default)]
    header_timeout: Option<Spanned<String>>,
    #[serde(default)]
    idle_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    kind: Spanned<String>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    spool: Option<Spanned<String>>,
    #[serde(default)]
    s3: Option<Spanned<RawS3>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint: Spanned<String>,
    bucket: Spanned<String>,
    #[serde(default)]
    region: Option<Spanned<String>>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
}

/// TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

/// Where the index and the blobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite index and blobs in one folder.
    Local {
        /// The folder.
        path: PathBuf,
    },
    /// The index and the blobs each in a place of their own.
    Separate {
        /// The index.
        index: IndexStore,
        /// The blobs.
        blobs: BlobStore,
    },
}

/// Where the index is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexStore {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, which several coordinator processes may share. Its `Debug` hides
    /// the password.
    Postgres(Box<tokio_postgres::Config>),
}

/// Where the blobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStore {
    /// A folder (it spools inside itself).
    Folder(PathBuf),
    /// An S3-compatible bucket.
    S3 {
        /// The bucket.
        bucket: S3,
        /// The local folder bodies are spooled to while they arrive.
        spool: PathBuf,
    },
}

/// An S3-compatible bucket. Its credentials come from the environment, never from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3 {
    /// The service's URL, without a trailing `/`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// Where in the bucket: empty, or segments each followed by `/`.
    pub prefix: String,
    /// Keys given by a program that embeds the coordinator (tests); `None`, as every config file
    /// gives, takes them from the environment when the bucket is opened.
    pub credentials: Option<S3Credentials>,
}

/// Keys for a bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key's id.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
    /// A session token, for temporary keys.
    pub token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set, `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Some(Self {
            key_id: var("AWS_ACCESS_KEY_ID")?,
            secret: var("AWS_SECRET_ACCESS_KEY")?,
            token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// Where bodies are spooled with S3 blobs and no `path`: local, and any process may use it.
fn default_spool() -> PathBuf {
    std::env::temp_dir().join("tsagent-coordinator-spool")
}

/// The validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The coordinator's id: the principal receipts name.
    pub id: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Its signing key.
    pub key: PathBuf,
    /// The labs' `allowed_signers`.
    pub labs: PathBuf,
    /// The log's origin line in checkpoints.
    pub origin: String,
    /// TLS, if configured.
    pub tls: Option<Tls>,
    /// Largest bundle accepted, bytes.
    pub max_bundle_bytes: u64,
    /// Connections one client address may hold at once.
    pub max_connections_per_client: u32,
    /// Time a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Time the request line and headers may take, and an idle keep-alive connection may wait.
    pub header_timeout: Duration,
    /// Time a body may pause between two pieces before the client counts as gone.
    pub idle_timeout: Duration,
    /// The storage.
    pub storage: Storage,
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    base: PathBuf,
}

impl Checker<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn invalid(
        &self,
        span: Range<usize>,
        key: &'static str,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: self.line(span),
            key,
            problem: problem.into(),
        }
    }

    /// A duration of at least a second (a shorter limit would cut off honest clients on a slow
    /// link), or `default` when the key is absent.
    fn duration(
        &self,
        value: Option<&Spanned<String>>,
        key: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d >= Duration::from_secs(1) => Ok(d),
            _ => Err(self.invalid(
                v.span(),
                key,
                format!(
                    "must be a duration of at least 1s, e.g. \"{}\"",
                    humantime::format_duration(default)
                ),
            )),
        }
    }

    fn path(&self, value: &Spanned<String>, key: &'static str) -> Result<PathBuf, ConfigError> {
        if value.get_ref().trim().is_empty() {
            return Err(self.invalid(value.span(), key, "must name a file"));
        }
        Ok(self.base.join(value.get_ref()))
    }

    fn storage(&self, s: &RawStorage) -> Result<Storage, ConfigError> {
        match s.kind.get_ref().as_str() {
            "local" => {
                if let Some(url) = &s.url {
                    return Err(self.invalid(
                        url.span(),
                        "storage.url",
                        "is for kind = \"postgres\"",
                    ));
                }
                let path = match &s.path {
                    Some(p) => self.path(p, "storage.path")?,
                    None => self.base.join("intake"),
                };
                let Some(s3) = &s.s3 else {
                    if let Some(spool) = &s.spool {
                        return Err(self.invalid(
                            spool.span(),
                            "storage.spool",
                            "is for blobs in a bucket ([storage.s3]); a folder spools inside itself",
                        ));
                    }
                    return Ok(Storage::Local { path });
                };
                Ok(Storage::Separate {
                    index: IndexStore::Sqlite(path.join("index.sqlite")),
                    blobs: BlobStore::S3 {
                        bucket: self.s3(s3.get_ref())?,
                        spool: match &s.spool {
                            Some(p) => self.path(p, "storage.spool")?,
                            None => path.join("spool"),
                        },
                    },
                })
            }
            "postgres" => {
                let Some(url) = &s.url else {
                    return Err(self.invalid(
                        s.kind.span(),
                        "storage.url",
                        "is needed with kind = \"postgres\", e.g. \"postgres://tsagent@db.example/tsagent\"",
                    ));
                };
                let index = IndexStore::Postgres(Box::new(self.postgres(url)?));
                let blobs = match (&s.path, &s.s3) {
                    (Some(path), None) => {
                        if let Some(spool) = &s.spool {
                            return Err(self.invalid(
                                spool.span(),
                                "storage.spool",
                                "is for blobs in a bucket ([storage.s3]); a folder spools inside itself",
                            ));
                        }
                        BlobStore::Folder(self.path(path, "storage.path")?)
                    }
                    (None, Some(s3)) => BlobStore::S3 {
                        bucket: self.s3(s3.get_ref())?,
                        spool: match &s.spool {
                            Some(p) => self.path(p, "storage.spool")?,
                            None => default_spool(),
                        },
                    },
                    (None, None) => {
                        return Err(self.invalid(
                            s.kind.span(),
                            "storage.path",
                            "(a folder) or [storage.s3] (a bucket) must say where the blobs go",
                        ));
                    }
                    (Some(_), Some(s3)) => {
                        return Err(self.invalid(
                            s3.span(),
                            "storage.s3",
                            "and `storage.path` name two places for the blobs: keep one",
                        ));
                    }
                };
                Ok(Storage::Separate { index, blobs })
            }
            _ => Err(self.invalid(
                s.kind.span(),
                "storage.kind",
                "must be \"local\" or \"postgres\"",
            )),
        }
    }

    fn postgres(&self, url: &Spanned<String>) -> Result<tokio_postgres::Config, ConfigError> {
        let key = "storage.url";
        // The URL is never echoed: it may hold a password.
        let config: tokio_postgres::Config = url.get_ref().parse().map_err(|e| {
            self.invalid(
                url.span(),
                key,
                format!("is not a PostgreSQL URL (postgres://user@host/database): {e}"),
            )
        })?;
        if config.get_hosts().is_empty() {
            return Err(self.invalid(
                url.span(),
                key,
                "must name a host, or a socket folder (postgres://user@%2Frun%2Fpostgresql/db)",
            ));
        }
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(self.invalid(
                url.span(),
                key,
                "asks for TLS (sslmode=require), which the coordinator does not speak to \
                 PostgreSQL: reach it over a Unix socket or a private network",
            ));
        }
        Ok(config)
    }

    fn s3(&self, raw: &RawS3) -> Result<S3, ConfigError> {
        let endpoint = raw.endpoint.get_ref().trim_end_matches('/');
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/'))
            || endpoint
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(self.invalid(
                raw.endpoint.span(),
                "storage.s3.endpoint",
                "must be the service's URL, e.g. \"https://s3.eu-central-1.amazonaws.com\"",
            ));
        }
        let bucket = raw.bucket.get_ref();
        let edge_ok =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !(3..=63).contains(&bucket.len())
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            || !edge_ok(bucket.chars().next())
            || !edge_ok(bucket.chars().last())
        {
            return Err(self.invalid(
                raw.bucket.span(),
                "storage.s3.bucket",
                "must be a bucket name: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit",
            ));
        }
        let region = match &raw.region {
            Some(r)
                if r.get_ref().is_empty()
                    || !r
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                return Err(self.invalid(
                    r.span(),
                    "storage.s3.region",
                    "must be a region name, e.g. \"eu-central-1\"",
                ));
            }
            Some(r) => r.get_ref().clone(),
            None => "us-east-1".into(),
        };
        let prefix = match &raw.prefix {
            None => String::new(),
            Some(p) => {
                let trimmed = p.get_ref().trim_matches('/');
                let ok = trimmed.split('/').all(|seg| {
                    !seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                });
                if !ok {
                    return Err(self.invalid(
                        p.span(),
                        "storage.s3.prefix",
                        "must be folder names of A-Z a-z 0-9 . _ - separated by /",
                    ));
                }
                format!("{trimmed}/")
            }
        };
        Ok(S3 {
            endpoint: endpoint.to_owned(),
            bucket: bucket.clone(),
            region,
            prefix,
            credentials: None,
        })
    }
}

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = tsagent_bundle::file::read_regular_text("config file", path, MAX_CONFIG_BYTES)
            .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text`, read from `path` (relative paths are taken from its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
        let c = Checker { path, text, base };
        let r = &raw.coordinator;
        let id = r.id.get_ref().clone();
        if !tsagent_bundle::is_valid_id(&id) {
            return Err(c.invalid(
                r.id.span(),
                "coordinator.id",
                "must be 1-64 of A-Z a-z 0-9 . _ -",
            ));
        }
        let listen: SocketAddr = r.listen.get_ref().parse().map_err(|_| {
            c.invalid(
                r.listen.span(),
                "coordinator.listen",
                "must be an address and port, e.g. 127.0.0.1:8480",
            )
        })?;
        let origin = match &r.origin {
            Some(o) if o.get_ref().is_empty() || o.get_ref().chars().any(char::is_control) => {
                return Err(c.invalid(
                    o.span(),
                    "coordinator.origin",
                    "must be one printable line",
                ));
            }
            Some(o) => o.get_ref().clone(),
            None => format!("tsagent/{id}"),
        };
        let tls = match (&r.cert, &r.key_pem) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Tls {
                cert: c.path(cert, "coordinator.cert")?,
                key: c.path(key, "coordinator.key_pem")?,
            }),
            (Some(v), None) | (None, Some(v)) => {
                return Err(c.invalid(
                    v.span(),
                    "coordinator.cert",
                    "and `coordinator.key_pem` go together",
                ));
            }
        };
        let max_bundle_bytes = match &r.max_bundle_bytes {
            Some(v) if *v.get_ref() < 1024 || *v.get_ref() > tsagent_bundle::MAX_BUNDLE_BYTES => {
                return Err(c.invalid(
                    v.span(),
                    "coordinator.max_bundle_bytes",
                    format!(
                        "must be between 1024 and {}",
                        tsagent_bundle::MAX_BUNDLE_BYTES
                    ),
                ));
            }
            Some(v) => *v.get_ref(),
            None => tsagent_bundle::MAX_BUNDLE_BYTES,
        };
        let max_connections_per_client = match &r.max_connections_per_client {
            Some(v) if *v.get_ref() == 0 => {
                return Err(c.invalid(
                    v.span(),
                    "coordinator.max_connections_per_client",
                    "must be at least 1",
                ));
            }
            Some(v) => *v.get_ref(),
            None => 8,
        };
        let body_timeout = c.duration(
            r.body_timeout.as_ref(),
            "coordinator.body_timeout",
            Duration::from_secs(300),
        )?;
        let header_timeout = c.duration(
            r.header_timeout.as_ref(),
            "coordinator.header_timeout",
            Duration::from_secs(10),
        )?;
        let idle_timeout = c.duration(
            r.idle_timeout.as_ref(),
            "coordinator.idle_timeout",
            Duration::from_secs(30),
        )?;
        let storage = match &raw.storage {
            None => Storage::Local {
                path: c.base.join("intake"),
            },
            Some(s) => c.storage(s)?,
        };
        Ok(Self {
            id,
            listen,
            key: c.path(&r.key, "coordinator.key")?,
            labs: c.path(&r.labs, "coordinator.labs")?,
            origin,
            tls,
            max_bundle_bytes,
            max_connections_per_client,
            body_timeout,
            header_timeout,
            idle_timeout,
            storage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "[coordinator]\nid = \"pilot\"\nlisten = \"127.0.0.1:0\"\nkey = \"k\"\nlabs = \"labs\"\n";

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let c = Config::parse(Path::new("/etc/c/coordinator.toml"), GOOD).unwrap();
        assert_eq!(c.origin, "tsagent/pilot");
        assert_eq!(c.key, Path::new("/etc/c/k"));
        assert_eq!(
            c.storage,
            Storage::Local {
                path: "/etc/c/intake".into()
            }
        );
        assert!(c.tls.is_none());
        assert_eq!(
            (c.header_timeout, c.body_timeout, c.idle_timeout),
            (
                Duration::from_secs(10),
                Duration::from_secs(300),
                Duration::from_secs(30)
            )
        );
        let c = Config::parse(
            Path::new("c.toml"),
            &format!("{GOOD}header_timeout = \"2s\"\nidle_timeout = \"1s\"\n"),
        )
        .unwrap();
        assert_eq!(
            (c.header_timeout, c.idle_timeout),
            (Duration::from_secs(2), Duration::from_secs(1))
        );
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let p = Path::new("c.toml");
        let e = Config::parse(p, &GOOD.replace("127.0.0.1:0", "nowhere")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml:3: `coordinator.listen` must be an address and port, e.g. 127.0.0.1:8480"
        );
        let e = Config::parse(p, &format!("{GOOD}colour = 1\n")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = Config::parse(p, &format!("{GOOD}[storage]\nkind = \"cloud\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("c.toml:7: `storage.kind`"), "{e}");
        let e = Config::parse(p, &format!("{GOOD}cert = \"c.pem\"\n")).unwrap_err();
        assert!(e.to_string().contains("key_pem"), "{e}");
        let e = Config::parse(p, &format!("{GOOD}header_timeout = \"500ms\"\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml:6: `coordinator.header_timeout` must be a duration of at least 1s, e.g. \"10s\""
        );
        let e = Config::parse(p, &format!("{GOOD}idle_timeout = \"soon\"\n")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:6: `coordinator.idle_timeout`"),
            "{e}"
        );
    }

    const PG: &str =
        "[storage]\nkind = \"postgres\"\nurl = \"postgres://tsagent:secret@db.example/tsagent\"\n";
    const S3: &str =
        "[storage.s3]\nendpoint = \"http://127.0.0.1:8333/\"\nbucket = \"pilot-nim\"\n";

    fn storage(extra: &str) -> Result<Storage, ConfigError> {
        Config::parse(Path::new("/etc/c/c.toml"), &format!("{GOOD}{extra}")).map(|c| c.storage)
    }

    #[test]
    fn postgres_takes_a_folder_or_a_bucket_and_local_a_bucket_too() {
        let Storage::Separate {
            index: IndexStore::Postgres(pg),
            blobs: BlobStore::S3 { bucket, spool },
        } = storage(&format!("{PG}{S3}prefix = \"/c27/nim/\"\n")).unwrap()
        else {
            panic!("postgres and a bucket")
        };
        assert_eq!(pg.get_dbname(), Some("tsagent"));
        assert_eq!(
            bucket,
            S3 {
                endpoint: "http://127.0.0.1:8333".into(),
                bucket: "pilot-nim".into(),
                region: "us-east-1".into(),
                prefix: "c27/nim/".into(),
                credentials: None,
            }
        );
        assert_eq!(spool, default_spool());
        // The password stays out of anything printed.
        assert!(!format!("{pg:?}").contains("secret"));

        assert_eq!(
            storage(&format!("{PG}path = \"blobs\"\n")).unwrap(),
            Storage::Separate {
                index: IndexStore::Postgres(Box::new(
                    "postgres://tsagent:secret@db.example/tsagent"
                        .parse()
                        .unwrap()
                )),
                blobs: BlobStore::Folder("/etc/c/blobs".into()),
            }
        );
        assert_eq!(
            storage(&format!(
                "[storage]\nkind = \"local\"\nspool = \"/var/tmp/s\"\n{S3}region = \"eu-central-1\"\n"
            ))
            .unwrap(),
            Storage::Separate {
                index: IndexStore::Sqlite("/etc/c/intake/index.sqlite".into()),
                blobs: BlobStore::S3 {
                    bucket: S3 {
                        endpoint: "http://127.0.0.1:8333".into(),
                        bucket: "pilot-nim".into(),
                        region: "eu-central-1".into(),
                        prefix: String::new(),
                        credentials: None,
                    },
                    spool: "/var/tmp/s".into(),
                },
            }
        );
    }

    #[test]
    fn storage_errors_name_the_key_and_line() {
        let e = |extra: &str| storage(extra).unwrap_err().to_string();
        assert_eq!(
            e("[storage]\nkind = \"postgres\"\npath = \"b\"\n"),
            "/etc/c/c.toml:7: `storage.url` is needed with kind = \"postgres\", e.g. \"postgres://tsagent@db.example/tsagent\""
        );
        assert!(
            e(PG).starts_with("/etc/c/c.toml:7: `storage.path` (a folder) or [storage.s3]"),
            "{}",
            e(PG)
        );
        assert!(
            e(&format!("{PG}path = \"b\"\n{S3}")).starts_with("/etc/c/c.toml:10: `storage.s3` and"),
            "{}",
            e(&format!("{PG}path = \"b\"\n{S3}"))
        );
        assert!(
            e(&format!("{PG}path = \"b\"\nspool = \"s\"\n"))
                .starts_with("/etc/c/c.toml:10: `storage.spool` is for blobs in a bucket")
        );
        let bad_url =
            e("[storage]\nkind = \"postgres\"\nurl = \"mysql://root:hunter2@db\"\npath = \"b\"\n");
        assert!(
            bad_url.starts_with("/etc/c/c.toml:8: `storage.url` is not a PostgreSQL URL"),
            "{bad_url}"
        );
        assert!(!bad_url.contains("hunter2"), "{bad_url}");
        assert!(
            e("[storage]\nkind = \"postgres\"\nurl = \"postgres://db/t?sslmode=require\"\npath = \"b\"\n")
                .starts_with("/etc/c/c.toml:8: `storage.url` asks for TLS")
        );
        assert!(
            e(&format!("{PG}{}", S3.replace("pilot-nim", "Pilot_NIM")))
                .starts_with("/etc/c/c.toml:11: `storage.s3.bucket` must be a bucket name")
        );
        assert!(
            e(&format!(
                "{PG}{}",
                S3.replace("http://127.0.0.1:8333/", "127.0.0.1:8333")
            ))
            .starts_with("/etc/c/c.toml:10: `storage.s3.endpoint` must be the service's URL")
        );
        assert!(
            e(&format!("{PG}{S3}prefix = \"a/../b\"\n"))
                .starts_with("/etc/c/c.toml:12: `storage.s3.prefix`")
        );
        assert!(e(&format!("{PG}[storage.s3]\nbucket = \"b\"\n")).contains("endpoint"));
        assert!(
            e("[storage]\nkind = \"local\"\nspool = \"s\"\n")
                .starts_with("/etc/c/c.toml:8: `storage.spool` is for blobs in a bucket")
        );
    }
}
