//! The few HTTP/1.1 requests a lab makes to the coordinator, on hyper's connection API: one
//! connection per request (a lab sends a bundle every few hours; nothing to pool), each under a
//! deadline so a coordinator that stops answering never holds the uploader. `https://` goes
//! through rustls, trusting the pilot's CA certificate (`[upload] ca`) or else the system's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest reply read (receipts and proofs are a few KiB).
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Why a request got no HTTP reply.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("`{0}` is not an http:// or https:// URL with a host")]
    Url(String),
    /// The CA certificate file cannot be used.
    #[error("cannot use the CA certificate {path}: {reason}")]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, no TLS there).
    #[error("TLS with {addr} failed")]
    Tls {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to {addr}")]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("the coordinator's connection failed")]
    Exchange(#[source] hyper::Error),
    /// The reply is larger than any the coordinator sends.
    #[error("the coordinator's reply is over {MAX_REPLY_BYTES} bytes")]
    TooLarge,
    /// No reply in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

/// A reply: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

/// TLS towards the coordinator.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

/// The coordinator's address, from `[upload] url`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// The path the API's `/v1/…` paths go under (empty or `/prefix`).
    pub base: String,
    /// TLS, for `https://`.
    pub tls: Option<Tls>,
}

/// The roots a coordinator's certificate may chain to: the pilot's CA, or the system's.
fn roots(ca: Option<&Path>) -> Result<rustls::RootCertStore, HttpError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |reason: String| HttpError::Ca {
                path: path.to_owned(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => {
            // Unreadable entries in the system store are skipped, as browsers do.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/prefix]`; `ca` is the certificate to trust for https
    /// (the system's CAs when absent).
    pub fn parse(url: &str, ca: Option<&Path>) -> Result<Self, HttpError> {
        let bad = || HttpError::Url(url.to_owned());
        let (https, rest) = match url.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, url.strip_prefix("http://").ok_or_else(bad)?),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        // `[::1]` alone has colons but no port: a port follows the last `:` outside brackets.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(host, p)| p.parse::<u16>().is_ok() && !host.ends_with(':'));
        let host = if has_port {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        } else {
            authority
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let tls = if https {
            let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                .map_err(|_| bad())?
                .to_owned();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpError::Url(format!("{url}: {e}")))?
                .with_root_certificates(roots(ca)?)
                .with_no_client_auth();
            Some(Tls {
                connector: TlsConnector::from(Arc::new(config)),
                name,
            })
        } else {
            None
        };
        Ok(Self {
            authority,
            base: path.trim_end_matches('/').to_owned(),
            tls,
        })
    }
}

/// Sends one request and reads the reply, all within `deadline`.
pub async fn request(
    endpoint: &Endpoint,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
    deadline: Duration,
) -> Result<Reply, HttpError> {
    let exchange = async {
        let stream = TcpStream::connect(&endpoint.authority)
            .await
            .map_err(|source| HttpError::Connect {
                addr: endpoint.authority.clone(),
                source,
            })?;
        match &endpoint.tls {
            None => exchange(stream, endpoint, method, path, headers, body).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), stream)
                    .await
                    .map_err(|source| HttpError::Tls {
                        addr: endpoint.authority.clone(),
                        source,
                    })?;
                exchange(stream, endpoint, method, path, headers, body).await
            }
        }
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or(Err(HttpError::Timeout(deadline)))
}

/// One request and its reply over an open connection.
async fn exchange<IO>(
    io: IO,
    endpoint: &Endpoint,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Reply, HttpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(HttpError::Exchange)?;
        let driver = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", endpoint.base))
            .header(hyper::header::HOST, &endpoint.authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("tsagent/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|_| HttpError::Url(format!("{}{path}", endpoint.base)))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(HttpError::Exchange)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => HttpError::Exchange(*e),
                Err(_) => HttpError::TooLarge,
            })?
            .to_bytes();
        driver.abort();
        Ok(Reply { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_an_authority_and_a_base() {
        let e = Endpoint::parse("http://pilot.example:8480/intake/", None).unwrap();
        assert_eq!(e.authority, "pilot.example:8480");
        assert_eq!(e.base, "/intake");
        assert!(e.tls.is_none());
        let p = |u| Endpoint::parse(u, None);
        assert_eq!(p("http://10.0.0.1").unwrap().authority, "10.0.0.1:80");
        assert_eq!(p("http://[::1]").unwrap().authority, "[::1]:80");
        assert_eq!(p("http://[::1]:9").unwrap().authority, "[::1]:9");
        let s = p("https://pilot.example").unwrap();
        assert_eq!(s.authority, "pilot.example:443");
        assert!(s.tls.is_some());
        assert!(p("ftp://x").is_err());
        assert!(p("http://").is_err());
        assert!(p("http://user@host/").is_err());
    }
}
