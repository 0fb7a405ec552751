//! The few HTTP/1.1 requests a lab makes to the coordinator, on hyper's connection API: one
//! connection per request (a lab sends a bundle every few hours; nothing to pool), each under a
//! deadline so a coordinator that stops answering never holds the uploader.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

/// Largest reply read (receipts and proofs are a few KiB).
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Why a request got no HTTP reply.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("`{0}` is not an http:// URL with a host")]
    Url(String),
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

/// The coordinator's address, from `[upload] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// The path the API's `/v1/…` paths go under (empty or `/prefix`).
    pub base: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Self, HttpError> {
        let bad = || HttpError::Url(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            base: path.trim_end_matches('/').to_owned(),
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
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
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
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or(Err(HttpError::Timeout(deadline)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_an_authority_and_a_base() {
        let e = Endpoint::parse("http://pilot.example:8480/intake/").unwrap();
        assert_eq!(e.authority, "pilot.example:8480");
        assert_eq!(e.base, "/intake");
        assert_eq!(
            Endpoint::parse("http://10.0.0.1").unwrap().authority,
            "10.0.0.1:80"
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://").is_err());
        assert!(Endpoint::parse("http://user@host/").is_err());
    }
}
