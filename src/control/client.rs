//! The CLI's side of the control API: one request per connection, over the daemon's socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::{LiveEvent, PhotoKept, Queued, SealSummary, StartRequest, Status};
use crate::custody::{ActionRequest, Recorded, Report};

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket: no daemon runs for this config.
    #[error("no daemon is running for this config (nothing at {}); start it with `tsagent run`", .path.display())]
    NoDaemon {
        /// The socket.
        path: PathBuf,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed part-way.
    #[error("the daemon's control socket {} broke off", .path.display())]
    Http {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The daemon answered with an error.
    #[error("the daemon refused: {message} ({status})")]
    Refused {
        /// HTTP status.
        status: StatusCode,
        /// Its message.
        message: String,
    },
    /// The daemon's answer was not what this build expects.
    #[error("the daemon's answer could not be read; is it the same tsagent version?")]
    Decode(#[source] serde_json::Error),
}

/// A connection to one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon listening at `socket`.
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_owned(),
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let (_, body) = self.call(Method::GET, "/v1/status", None).await?;
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `POST /v1/runs`: queues a run.
    pub async fn start(&self, start: &StartRequest) -> Result<Queued, ClientError> {
        let body = serde_json::to_vec(start).map_err(ClientError::Decode)?;
        let (_, body) = self.call(Method::POST, "/v1/runs", Some(body)).await?;
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `POST /v1/runs/{run}/abort` (`current` without a run).
    pub async fn abort(&self, run: Option<u64>) -> Result<super::Aborting, ClientError> {
        let which = run.map_or_else(|| "current".to_owned(), |r| r.to_string());
        let (_, body) = self
            .call(Method::POST, &format!("/v1/runs/{which}/abort"), None)
            .await?;
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `POST /v1/seal`: seals the runs that have ended, after the run in progress.
    pub async fn seal(&self) -> Result<SealSummary, ClientError> {
        let (_, body) = self.call(Method::POST, "/v1/seal", None).await?;
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `POST /v1/custody/{action}`: records a custody action through the daemon.
    pub async fn custody(&self, action: &ActionRequest) -> Result<Recorded, ClientError> {
        let body = action.to_json().map_err(ClientError::Decode)?;
        let path = format!("/v1/custody/{}", action.name());
        let (_, body) = self.call(Method::POST, &path, Some(body)).await?;
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `GET /v1/custody`: the custody report, the gate evaluated by the daemon now.
    pub async fn custody_report(&self) -> Result<Report, ClientError> {
        let (_, body) = self.call(Method::GET, "/v1/custody", None).await?;
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `POST /v1/custody/photos`: hands a photo's bytes to the daemon, which keeps them by hash.
    pub async fn upload_photo(&self, bytes: Vec<u8>) -> Result<PhotoKept, ClientError> {
        let response = self
            .send_as(
                Method::POST,
                "/v1/custody/photos",
                Some(bytes),
                "application/octet-stream",
            )
            .await?;
        let status = response.status();
        let body = self.collect(response).await?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body).map_err(ClientError::Decode)
    }

    /// `GET /v1/events`: the live events, as they come.
    pub async fn events(&self) -> Result<Events, ClientError> {
        let response = self.send(Method::GET, "/v1/events", None).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = self.collect(response).await?;
            return Err(refused(status, &body));
        }
        Ok(Events {
            body: response.into_body(),
            buffer: Vec::new(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let body = self.collect(response).await?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        Ok((status, body))
    }

    async fn collect(&self, response: hyper::Response<Incoming>) -> Result<Bytes, ClientError> {
        Ok(response
            .into_body()
            .collect()
            .await
            .map_err(|source| self.http(source))?
            .to_bytes())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        self.send_as(method, path, body, "application/json").await
    }

    async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::NoDaemon {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| self.http(source))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "tsagent");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Refused {
                status: StatusCode::BAD_REQUEST,
                message: e.to_string(),
            })?;
        sender
            .send_request(request)
            .await
            .map_err(|source| self.http(source))
    }

    fn http(&self, source: hyper::Error) -> ClientError {
        ClientError::Http {
            path: self.socket.clone(),
            source,
        }
    }
}

fn refused(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    ClientError::Refused { status, message }
}

/// The live event stream.
pub struct Events {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Events {
    /// The next event; `None` when the daemon closes the stream (it stopped).
    pub async fn next(&mut self) -> Result<Option<LiveEvent>, ClientError> {
        loop {
            if let Some(end) = find(&self.buffer, b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let data: String = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if data.is_empty() {
                    // A comment (`: subscribed`) or a keep-alive.
                    continue;
                }
                return serde_json::from_str(&data)
                    .map(Some)
                    .map_err(ClientError::Decode);
            }
            match self.body.frame().await {
                None => return Ok(None),
                // The connection broke mid-stream: the daemon stopped or was killed (a daemon
                // that stops closes its sockets without ending the chunked body). Either way the
                // stream is over; the log has whatever happened next.
                Some(Err(_)) => return Ok(None),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
