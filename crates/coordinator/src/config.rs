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
            Some(s) => match s.kind.get_ref().as_str() {
                "local" => {
                    if let Some(url) = &s.url {
                        return Err(c.invalid(
                            url.span(),
                            "storage.url",
                            "is for kind = \"postgres\"",
                        ));
                    }
                    Storage::Local {
                        path: match &s.path {
                            Some(p) => c.path(p, "storage.path")?,
                            None => c.base.join("intake"),
                        },
                    }
                }
                _ => {
                    return Err(c.invalid(s.kind.span(), "storage.kind", "must be \"local\""));
                }
            },
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
}
