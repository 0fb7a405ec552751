//! The socket side of the control API: who may connect, the routes, the event stream.

use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{CustodyRefusal, Hub, LiveEvent, PhotoKept, Request, RequestError, StartRequest};
use crate::custody::ActionRequest;

/// The largest request body read: a start request is a few dozen bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The largest photo upload (`POST /v1/custody/photos`): the same cap as `custody receive
/// --photo`, so a photo is kept or refused whichever way it comes.
pub const MAX_PHOTO_BODY: usize = crate::custody::MAX_PHOTO_BYTES as usize;

/// How long a client may take to send its request's head: one that connects and sends nothing
/// is dropped, and holds nothing but its own task meanwhile.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Something other than a socket is at the socket's path.
    #[error("control socket path {} is taken by something that is not a socket", .0.display())]
    PathTaken(PathBuf),
    /// The socket could not be made.
    #[error("cannot make the control socket {}", .path.display())]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `[control] group` names no group on this machine.
    #[error("`[control] group` names `{0}`, which is not a group on this machine")]
    NoSuchGroup(String),
}

/// Who may steer the daemon: root, its own user, and members of `[control] group`.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    own_uid: u32,
    group: Option<(u32, Vec<String>)>,
}

impl PeerPolicy {
    /// The policy for this process and `group` (looked up now).
    pub fn new(group: Option<&str>) -> Result<PeerPolicy, ControlError> {
        let group = match group {
            None => None,
            Some(name) => {
                let found = nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| ControlError::NoSuchGroup(name.to_owned()))?;
                Some((found.gid.as_raw(), found.mem))
            }
        };
        Ok(PeerPolicy {
            own_uid: nix::unistd::getuid().as_raw(),
            group,
        })
    }

    /// Whether a peer with these credentials may use the API.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        let Some((group_gid, members)) = &self.group else {
            return false;
        };
        if gid == *group_gid {
            return true;
        }
        // Supplementary membership, from the group database: SO_PEERCRED gives only the
        // primary group.
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .is_some_and(|user| members.contains(&user.name))
    }
}

/// Makes the control socket at `path`, mode 0660, owned by `group` when given. A socket left by a
/// previous daemon is replaced: the caller holds the lab's lock, so no live daemon uses it.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, ControlError> {
    let bind_err = |source| ControlError::Bind {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        Ok(_) => return Err(ControlError::PathTaken(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    if let Some(name) = group {
        let gid = nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| ControlError::NoSuchGroup(name.to_owned()))?
            .gid;
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| bind_err(std::io::Error::from(e)))?;
    }
    Ok(listener)
}

/// What every connection needs.
#[derive(Clone)]
pub struct Api {
    /// The daemon's status and events.
    pub hub: Arc<Hub>,
    /// The way to the daemon's loop.
    pub requests: mpsc::Sender<Request>,
    /// Who may connect.
    pub policy: PeerPolicy,
    /// Where receipt photos are kept, by SHA-256 (`photos/` beside the database).
    pub photos: PathBuf,
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, api: Api) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: say so and let the backlog drain.
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let api = api.clone();
        tokio::spawn(async move { connection(stream, api).await });
    }
}

async fn connection(stream: UnixStream, api: Api) {
    let cred = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(e) => {
            tracing::warn!(error = %e, "control socket: no peer credentials; refused");
            return;
        }
    };
    if !api.policy.allows(cred.uid(), cred.gid()) {
        tracing::warn!(
            uid = cred.uid(),
            gid = cred.gid(),
            pid = cred.pid(),
            "control socket: peer refused"
        );
        let _ = api
            .requests
            .send(Request::Refused {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid(),
            })
            .await;
        // Through hyper like any request, so the client reads a whole 403 rather than a
        // connection closed under its request.
        let refuse = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(error(
                StatusCode::FORBIDDEN,
                "this user may not steer the daemon (root, its own user or [control] group only)",
            ))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), refuse)
            .await;
        return;
    }
    let service = hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(route(req, &api).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "control connection ended");
    }
}

/// A response body: a whole JSON document, or the event stream.
pub enum ApiBody {
    /// A complete body.
    Full(Full<Bytes>),
    /// Server-Sent Events, as they come.
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ApiBody::Full(full) => Pin::new(full).poll_frame(cx),
            ApiBody::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<ApiBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(ApiBody::Full(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// An error response: `{"error": message}`.
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<ApiBody> {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

async fn route(req: hyper::Request<Incoming>, api: &Api) -> Response<ApiBody> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/v1/status") => json(StatusCode::OK, &*api.hub.status()),
        (&Method::GET, "/v1/events") => events(&api.hub),
        (&Method::POST, "/v1/runs") => start(req, api).await,
        (&Method::POST, "/v1/seal") => seal(api).await,
        (&Method::GET, "/v1/custody") => custody_report(api).await,
        (&Method::POST, "/v1/custody/photos") => upload_photo(req, api).await,
        (&Method::POST, p) if p.starts_with("/v1/custody/") => {
            let name = p.strip_prefix("/v1/custody/").unwrap_or_default();
            custody_action(req, api, name).await
        }
        (&Method::POST, p)
            if p.strip_prefix("/v1/runs/")
                .and_then(|rest| rest.strip_suffix("/abort"))
                .is_some() =>
        {
            // Not by index: `/v1/runs/abort` has the prefix and the suffix overlapping.
            let which = p
                .strip_prefix("/v1/runs/")
                .and_then(|rest| rest.strip_suffix("/abort"))
                .unwrap_or_default();
            let run = match which {
                "current" => None,
                id => match id.parse::<u64>() {
                    Ok(id) => Some(id),
                    Err(_) => {
                        return error(
                            StatusCode::NOT_FOUND,
                            format!("`{id}` is not a run id (a number, or `current`)"),
                        );
                    }
                },
            };
            abort(api, run).await
        }
        (_, "/v1/status" | "/v1/events" | "/v1/runs" | "/v1/seal" | "/v1/custody") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        (_, p) if p.starts_with("/v1/custody/") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here (POST)",
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

/// The request's body, read up to `cap` bytes; the error response otherwise.
async fn read_body(req: hyper::Request<Incoming>, cap: usize) -> Result<Bytes, Response<ApiBody>> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {cap} bytes"),
        )
    };
    // A body announced too large is refused before a byte of it is read (a client that sent
    // `Expect: 100-continue`, as curl does for a large upload, sends none of it).
    if req.body().size_hint().lower() > cap as u64 {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), cap).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {e}"),
        )),
    }
}

async fn start(req: hyper::Request<Incoming>, api: &Api) -> Response<ApiBody> {
    let body = match read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let start: StartRequest = match serde_json::from_slice(&body) {
        Ok(start) => start,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"sequence\": …, \"operator\": …}}: {e}"),
            );
        }
    };
    if start.operator.trim().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "operator must not be empty",
        );
    }
    let (reply, answer) = oneshot::channel();
    if api
        .requests
        .send(Request::Start { start, reply })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping);
    }
    match answer.await {
        Ok(Ok(queued)) => json(StatusCode::ACCEPTED, &queued),
        Ok(Err(e @ RequestError::UnknownSequence(_))) => error(StatusCode::NOT_FOUND, e),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping),
    }
}

async fn abort(api: &Api, run: Option<u64>) -> Response<ApiBody> {
    let (reply, answer) = oneshot::channel();
    if api
        .requests
        .send(Request::Abort { run, reply })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping);
    }
    match answer.await {
        Ok(Ok(run_id)) => json(StatusCode::ACCEPTED, &super::Aborting { run_id }),
        Ok(Err(e @ (RequestError::NoRun | RequestError::NotCurrent { .. }))) => {
            error(StatusCode::CONFLICT, e)
        }
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping),
    }
}

async fn seal(api: &Api) -> Response<ApiBody> {
    let (reply, answer) = oneshot::channel();
    if api.requests.send(Request::Seal { reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping);
    }
    match answer.await {
        Ok(Ok(summary)) => json(StatusCode::OK, &summary),
        // Sealing failed for a reason the lab must fix (no key, a swapped key, a broken chain).
        Ok(Err(reason)) => error(StatusCode::CONFLICT, reason),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping),
    }
}

/// `POST /v1/custody/{name}`: a custody action, applied by the daemon's loop.
async fn custody_action(req: hyper::Request<Incoming>, api: &Api, name: &str) -> Response<ApiBody> {
    if !ActionRequest::NAMES.contains(&name) {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no custody action `{name}` (one of {}; photos takes an upload)",
                ActionRequest::NAMES.join(", ")
            ),
        );
    }
    let body = match read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let action = match ActionRequest::from_json(name, &body) {
        Some(Ok(action)) => action,
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a `{name}` request: {e}"),
            );
        }
        None => return error(StatusCode::NOT_FOUND, format!("no custody action `{name}`")),
    };
    let (reply, answer) = oneshot::channel();
    if api
        .requests
        .send(Request::Custody { action, reply })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping);
    }
    match answer.await {
        Ok(Ok(recorded)) => json(StatusCode::CREATED, &recorded),
        Ok(Err(refusal)) => custody_refused(&refusal),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping),
    }
}

/// `GET /v1/custody`: what `custody status` shows, from the daemon's loop.
async fn custody_report(api: &Api) -> Response<ApiBody> {
    let (reply, answer) = oneshot::channel();
    if api
        .requests
        .send(Request::CustodyReport { reply })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping);
    }
    match answer.await {
        Ok(Ok(report)) => json(StatusCode::OK, &report),
        Ok(Err(refusal)) => custody_refused(&refusal),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, RequestError::Stopping),
    }
}

fn custody_refused(refusal: &CustodyRefusal) -> Response<ApiBody> {
    let status = match refusal {
        CustodyRefusal::Conflict(_) => StatusCode::CONFLICT,
        CustodyRefusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CustodyRefusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, refusal)
}

/// `POST /v1/custody/photos`: the raw file as the body, kept by its SHA-256 in the photo folder,
/// the hash answered for a receipt to name. Only the content-addressed photo folder is written
/// (never the log), on a blocking thread: hashing and syncing a large photo must not hold the
/// daemon's loop.
async fn upload_photo(req: hyper::Request<Incoming>, api: &Api) -> Response<ApiBody> {
    let body = match read_body(req, MAX_PHOTO_BODY).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if body.is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "the photo is empty");
    }
    let dir = api.photos.clone();
    let bytes = body.len() as u64;
    match tokio::task::spawn_blocking(move || crate::custody::keep_photo(&dir, &body)).await {
        Ok(Ok(sha256)) => {
            tracing::info!(%sha256, bytes, "photo kept through the control API");
            json(StatusCode::CREATED, &PhotoKept { sha256, bytes })
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, crate::error::report(&e)),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the photo could not be kept: {e}"),
        ),
    }
}

/// The live events as Server-Sent Events (the API's `/v1/events`, the status page's `/events`).
pub fn events(hub: &Hub) -> Response<ApiBody> {
    let mut live = hub.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        // A comment first, so a client knows it is subscribed before it triggers anything.
        if tx
            .send(Bytes::from_static(b": subscribed\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let event = match live.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(count)) => LiveEvent::Missed { count },
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
            let frame = format!("event: {}\ndata: {data}\n\n", event.kind());
            if tx.send(Bytes::from(frame)).await.is_err() {
                // The client went away.
                return;
            }
        }
    });
    let mut response = Response::new(ApiBody::Stream(rx));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_own_user_are_allowed_others_not_without_the_group() {
        let policy = PeerPolicy::new(None).unwrap();
        let me = nix::unistd::getuid().as_raw();
        assert!(policy.allows(0, 0));
        assert!(policy.allows(me, 12345));
        assert!(!policy.allows(me.wrapping_add(54321), 54321));
    }

    #[test]
    fn a_group_that_does_not_exist_is_an_error() {
        let err = PeerPolicy::new(Some("no-such-group-tsagent")).unwrap_err();
        assert!(err.to_string().contains("no-such-group-tsagent"), "{err}");
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            drop(bind(&path, None).unwrap());
            // The first listener is gone but its socket file stays, as after a crash.
            let _again = bind(&path, None).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o660);
        });
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let err = rt.block_on(async { bind(&file, None).unwrap_err() });
        assert!(matches!(err, ControlError::PathTaken(_)), "{err:?}");
    }
}
