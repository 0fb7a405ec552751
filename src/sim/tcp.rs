//! The simulated meter on a TCP port, like a LAN instrument's raw SCPI socket (5025).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;

use super::{Dmm, SimError, SimParams, serve_connection};

/// Pause after a failed `accept` (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A simulated meter on a TCP socket.
///
/// Clients are served one after another by the same meter, whose state persists between them;
/// a client that connects while another is served waits in the listen backlog. Dropping the
/// server stops it and closes the listener and any open connection.
pub struct TcpServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    sent: Arc<AtomicU64>,
}

impl TcpServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving a [`Dmm`] built from `params`.
    pub async fn start<A>(params: SimParams, addr: A) -> Result<Self, SimError>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        params.validate()?;
        let bind_error = |source| SimError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(&addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let dmm = Dmm::new(params);
        let sent = dmm.sent_counter();
        let task = tokio::spawn(run(listener, dmm));
        tracing::info!(addr = %local, "simulated DMM listening on TCP");
        Ok(Self {
            addr: local,
            task,
            sent,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Readings the meter has sent so far (see [`Dmm::readings_sent`]).
    pub fn readings_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the server and waits until its sockets are closed; dropping does the same without
    /// waiting.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The only possible error is the cancellation just requested.
        let _ = (&mut self.task).await;
    }
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(listener: TcpListener, mut dmm: Dmm) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Replies are single small writes; do not let Nagle hold them back.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                tracing::info!(%peer, "simulator client connected");
                match serve_connection(&mut dmm, stream).await {
                    Ok(()) => tracing::info!(%peer, "simulator client disconnected"),
                    Err(e) => tracing::info!(%peer, error = %e, "simulator client dropped"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "simulator could not accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
