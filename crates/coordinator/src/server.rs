//! HTTP/1.1 for the intake: the routes, the limits that keep one client from holding the service
//! (a cap on the body, a deadline for the headers and one for the body, a share of connections
//! per client address), and the mapping of an [`Outcome`] to a status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tsagent_bundle::manifest::Hash32;

use crate::intake::{Checked, Intake, IntakeError, Outcome, Prepared, chain_text};
use crate::log;

/// Largest heartbeat body.
const MAX_HEARTBEAT_BYTES: u64 = 64 << 10;

/// The limits the server enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bundle.
    pub max_bundle_bytes: u64,
    /// Time a body may take.
    pub body_timeout: Duration,
    /// Time the request line and headers may take; also how long a keep-alive connection may
    /// sit idle between requests (hyper restarts the same timer there), so an idle socket
    /// cannot hold one of its address's connections.
    pub header_timeout: Duration,
    /// Time a body may pause between two pieces.
    pub idle_timeout: Duration,
    /// Connections one client address may hold.
    pub per_client: u32,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Reply {
    reply(status, json!({ "error": message.to_string() }))
}

/// Counts each client address's open connections.
#[derive(Default)]
struct Clients(Mutex<HashMap<IpAddr, u32>>);

/// One client's connection, counted until dropped.
struct Held<'a> {
    clients: &'a Clients,
    ip: IpAddr,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.clients.0.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Clients {
    fn hold(&self, ip: IpAddr, max: u32) -> Option<Held<'_>> {
        let mut map = self.0.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Held { clients: self, ip })
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, intake: Arc<Intake>, limits: Limits) {
    accept(listener, intake, limits, None).await;
}

/// Serves over TLS until the task is dropped.
pub async fn serve_tls(
    listener: TcpListener,
    intake: Arc<Intake>,
    limits: Limits,
    tls: tokio_rustls::TlsAcceptor,
) {
    accept(listener, intake, limits, Some(tls)).await;
}

async fn accept(
    listener: TcpListener,
    intake: Arc<Intake>,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let clients = Arc::new(Clients::default());
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else {
            // Out of descriptors, most likely: let some connections finish.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (intake, clients, tls) = (intake.clone(), clients.clone(), tls.clone());
        tokio::spawn(async move {
            let Some(_held) = clients.hold(peer.ip(), limits.per_client) else {
                // In clear text only: over TLS the client could not read it before a handshake
                // its share does not allow, so it is just closed.
                if tls.is_none() {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                        )
                        .await;
                }
                return;
            };
            match tls {
                None => connection(stream, intake, limits).await,
                Some(acceptor) => {
                    // The handshake is held to the header deadline: a silent client costs no
                    // more than one that sends no request.
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        connection(stream, intake, limits).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection's requests.
async fn connection<IO>(io: IO, intake: Arc<Intake>, limits: Limits)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let intake = intake.clone();
        async move { Ok::<_, Infallible>(route(req, &intake, limits).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn route(req: Request<Incoming>, intake: &Arc<Intake>, limits: Limits) -> Reply {
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::PUT, p) if p.starts_with("/v1/bundles/") => {
            let name = p.trim_start_matches("/v1/bundles/").to_owned();
            put_bundle(req, intake, limits, name).await
        }
        (Method::POST, "/v1/heartbeats") => heartbeat(req, intake, limits).await,
        (Method::GET, "/v1/log/checkpoint") => checkpoint(intake).await,
        (Method::GET, "/v1/log/proof") => proof(req.uri().query().unwrap_or(""), intake).await,
        (_, "/v1/heartbeats" | "/v1/log/checkpoint" | "/v1/log/proof") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        (_, p) if p.starts_with("/v1/bundles/") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "bundles are sent with PUT")
        }
        _ => error(StatusCode::NOT_FOUND, "no such resource"),
    }
}

/// Why a body was not received whole.
enum BodyCut {
    TooLarge,
    /// Over the body's deadline as a whole.
    Slow,
    /// Nothing arrived for the idle timeout.
    Stalled,
    Gone,
    Store(crate::blobs::BlobError),
}

/// Streams a body into a spool, under the size cap and the deadlines.
async fn receive(
    body: Incoming,
    spool: &mut crate::blobs::Spool,
    cap: u64,
    deadline: Duration,
    idle: Duration,
) -> Result<(), BodyCut> {
    let read = async {
        let mut body = body;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => return Err(BodyCut::Stalled),
                Ok(None) => return Ok(()),
                Ok(Some(Err(_))) => return Err(BodyCut::Gone),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                if spool.len() + data.len() as u64 > cap {
                    return Err(BodyCut::TooLarge);
                }
                spool.write(&data).map_err(BodyCut::Store)?;
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyCut::Slow))
}

fn cut_reply(cut: BodyCut, cap: u64) -> Reply {
    match cut {
        BodyCut::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the cap of {cap} bytes"),
        ),
        BodyCut::Slow => error(StatusCode::REQUEST_TIMEOUT, "the body took too long"),
        BodyCut::Stalled => error(StatusCode::REQUEST_TIMEOUT, "the body stopped arriving"),
        BodyCut::Gone => error(StatusCode::BAD_REQUEST, "the body was cut off"),
        BodyCut::Store(crate::blobs::BlobError::Full { .. }) => error(
            StatusCode::INSUFFICIENT_STORAGE,
            "the coordinator's disk is full; nothing was accepted, send it again later",
        ),
        BodyCut::Store(e) => internal(&e),
    }
}

fn internal(e: &dyn std::error::Error) -> Reply {
    tracing::error!("{}", chain_text(e));
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the coordinator failed; the bundle was not accepted, send it again later",
    )
}

async fn put_bundle(
    req: Request<Incoming>,
    intake: &Arc<Intake>,
    limits: Limits,
    name: String,
) -> Reply {
    let cap = limits.max_bundle_bytes;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return cut_reply(BodyCut::TooLarge, cap);
    }
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        // The draft quotes the key as a structured-field string; accept it bare too.
        .map(|v| v.trim().trim_matches('"').to_owned());
    // A declared length lets a small body be received in memory; hyper holds the body to it.
    let spool = match declared {
        Some(len) => intake.spool_for(len),
        None => intake.spool(),
    };
    let mut spool = match spool {
        Ok(s) => s,
        Err(e) => return cut_reply(BodyCut::Store(e), cap),
    };
    if let Err(cut) = receive(
        req.into_body(),
        &mut spool,
        cap,
        limits.body_timeout,
        limits.idle_timeout,
    )
    .await
    {
        return cut_reply(cut, cap);
    }
    let body = match spool.finish() {
        Ok(body) => body,
        Err(e) => return outcome(Ok(Err(IntakeError::Blob(e)))),
    };
    if intake.packs(&body) {
        // A small body in memory is checked here, on the thread that received it: CPU only,
        // without a hand-off to a blocking thread and back (P7 in BENCHMARKS.md). Its group's
        // leader does the blocking part.
        let checked = intake.check_packed(&name, key.as_deref(), body);
        return match checked {
            Ok(Checked::Done(o)) => outcome(Ok(Ok(o))),
            Ok(Checked::Queued(queued)) => outcome(Ok(intake.commit(queued).await)),
            Ok(Checked::Unless(refused)) => {
                let intake = intake.clone();
                outcome(tokio::task::spawn_blocking(move || intake.refused(refused)).await)
            }
            Err(e) => outcome(Ok(Err(e))),
        };
    }
    let prepared = {
        let intake = intake.clone();
        tokio::task::spawn_blocking(move || intake.prepare(&name, key.as_deref(), body)).await
    };
    match prepared {
        Ok(Ok(Prepared::Queued(queued))) => outcome(Ok(intake.commit(queued).await)),
        Ok(Ok(Prepared::Done(o))) => outcome(Ok(Ok(o))),
        Ok(Err(e)) => outcome(Ok(Err(e))),
        Err(e) => outcome(Err(e)),
    }
}

fn outcome(decided: Result<Result<Outcome, IntakeError>, tokio::task::JoinError>) -> Reply {
    let o = match decided {
        Ok(Ok(o)) => o,
        Ok(Err(e)) if e.is_disk_full() => {
            tracing::error!("{}", chain_text(&e));
            return error(
                StatusCode::INSUFFICIENT_STORAGE,
                "the coordinator's disk is full; nothing was accepted, send it again later",
            );
        }
        Ok(Err(e)) => return internal(&e),
        Err(e) => return internal(&e),
    };
    let receipt = |text: &str, status| {
        let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        r
    };
    match o {
        Outcome::Accepted(signed) => receipt(
            &serde_json::to_string(&signed).unwrap_or_default(),
            StatusCode::CREATED,
        ),
        Outcome::Again(text) => receipt(&text, StatusCode::OK),
        Outcome::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        Outcome::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
        Outcome::Gap { expected, message } => reply(
            StatusCode::CONFLICT,
            json!({ "error": message, "expected": expected }),
        ),
        Outcome::Fork(m) => reply(
            StatusCode::CONFLICT,
            json!({ "error": m, "quarantined": true }),
        ),
        Outcome::Unprocessable(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
        Outcome::Retry(m) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, m);
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            r
        }
        Outcome::Full(m) => error(StatusCode::INSUFFICIENT_STORAGE, m),
    }
}

async fn heartbeat(req: Request<Incoming>, intake: &Arc<Intake>, limits: Limits) -> Reply {
    // Small, capped: in memory.
    let mut spool = match intake.spool_for(MAX_HEARTBEAT_BYTES) {
        Ok(s) => s,
        Err(e) => return cut_reply(BodyCut::Store(e), MAX_HEARTBEAT_BYTES),
    };
    let deadline = limits.body_timeout.min(Duration::from_secs(30));
    if let Err(cut) = receive(
        req.into_body(),
        &mut spool,
        MAX_HEARTBEAT_BYTES,
        deadline,
        limits.idle_timeout,
    )
    .await
    {
        return cut_reply(cut, MAX_HEARTBEAT_BYTES);
    }
    let intake = intake.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let body = spool.finish().map_err(IntakeError::Blob)?;
        let bytes = body.bytes().map_err(IntakeError::Blob)?;
        intake.heartbeat(&bytes)
    })
    .await;
    outcome(decided)
}

async fn checkpoint(intake: &Arc<Intake>) -> Reply {
    let intake = intake.clone();
    match tokio::task::spawn_blocking(move || intake.index.checkpoint()).await {
        Ok(Ok(Some(c))) => reply(StatusCode::OK, json!(c)),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "the log is empty"),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&e),
    }
}

/// `?index=I&size=N` (inclusion) or `?from=M&size=N` (consistency).
async fn proof(query: &str, intake: &Arc<Intake>) -> Reply {
    let mut index = None;
    let mut from = None;
    let mut size = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(n) = v.parse::<u64>() else {
            return error(StatusCode::BAD_REQUEST, format!("`{k}` must be a number"));
        };
        match k {
            "index" => index = Some(n),
            "from" => from = Some(n),
            "size" => size = Some(n),
            _ => return error(StatusCode::BAD_REQUEST, format!("unknown parameter `{k}`")),
        }
    }
    let Some(size) = size else {
        return error(StatusCode::BAD_REQUEST, "`size` is required");
    };
    let intake = intake.clone();
    let result = tokio::task::spawn_blocking(move || match (index, from) {
        (Some(i), None) => log::inclusion(&*intake.index, i, size)
            .map(|h| json!({ "index": i, "size": size, "hashes": hexes(&h) })),
        (None, Some(m)) => log::consistency(&*intake.index, m, size)
            .map(|h| json!({ "from": m, "size": size, "hashes": hexes(&h) })),
        _ => Err(log::LogError::Range(
            "give either `index` (inclusion) or `from` (consistency)".into(),
        )),
    })
    .await;
    match result {
        Ok(Ok(v)) => reply(StatusCode::OK, v),
        Ok(Err(log::LogError::Range(m))) => error(StatusCode::BAD_REQUEST, m),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&e),
    }
}

fn hexes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(|h| Hash32(*h).to_string()).collect()
}
