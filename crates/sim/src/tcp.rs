//! A simulated instrument (or a Prologix GPIB-ETHERNET bus) on a TCP port, like a LAN
//! instrument's raw SCPI socket (5025) or the adapter's port 1234.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::exchange::ServeEnd;
use crate::fault::{FaultHandle, Outage};
use crate::server::{Control, SimServer};
use crate::spec::SimSpec;
use crate::station::Station;
use crate::wire::Pacer;
use crate::{SimError, SimParams};

/// Pause after a failed `accept` (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A simulated instrument on a TCP socket.
///
/// Clients are served one after another by the same instrument, whose state persists between
/// them; a client that connects while another is served waits in the listen backlog. A
/// disconnect fault closes the connection and the listener (new connections are refused) and
/// listens again on the same address when it is over. Dropping the server stops it and closes
/// the listener and any open connection.
pub type TcpServer = SimServer<TcpLine>;

/// The line of a [`TcpServer`]: the address it listens on.
#[derive(Debug)]
pub struct TcpLine {
    addr: SocketAddr,
}

impl SimServer<TcpLine> {
    /// Binds `addr` (port 0 picks a free port) and starts serving the `generic-scpi-dmm`
    /// personality built from `params`.
    pub async fn start<A>(params: SimParams, addr: A) -> Result<Self, SimError>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        Self::start_spec(SimSpec::generic(params), addr).await
    }

    /// Like [`start`](TcpServer::start), serving whatever `spec` describes.
    pub async fn start_spec<A>(spec: SimSpec, addr: A) -> Result<Self, SimError>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        let (control, station, pacer) = Control::start(spec)?;
        let bind_error = |source| SimError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(&addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let task = tokio::spawn(run(listener, local, station, pacer, control.clone()));
        tracing::info!(addr = %local, "simulator listening on TCP");
        Ok(SimServer::new(TcpLine { addr: local }, control, task))
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.line.addr
    }
}

/// The server task: accept clients one at a time and serve them; for a disconnect fault, close
/// the connection and the listener and listen again when it is over.
async fn run(
    listener: TcpListener,
    addr: SocketAddr,
    mut station: Station,
    mut pacer: Option<Pacer>,
    control: Control,
) {
    let mut listener = Some(listener);
    loop {
        let Some(l) = &listener else {
            // Rebinding failed after a disconnect; try again shortly.
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            listener = TcpListener::bind(addr).await.ok();
            continue;
        };
        let outage = tokio::select! {
            biased;
            // A disconnect armed while nobody is connected still takes the port away.
            _ = control.faults.armed_signal() => station.due_events(&control.faults),
            accepted = l.accept() => match accepted {
                Ok((stream, peer)) => {
                    serve_client(&mut station, stream, peer, &control.faults, &mut pacer).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulator could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    None
                }
            },
        };
        if let Some(outage) = outage {
            drop(listener.take());
            listener = control.outage(outage, &mut station, rebind(addr)).await;
        }
    }
}

/// Serves one client until it leaves; returns the outage when a fault hung the line up (the
/// connection is closed by then).
async fn serve_client(
    station: &mut Station,
    mut stream: TcpStream,
    peer: SocketAddr,
    faults: &FaultHandle,
    pacer: &mut Option<Pacer>,
) -> Option<Outage> {
    // Replies are single small writes; do not let Nagle hold them back.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    tracing::info!(%peer, "simulator client connected");
    match station.serve(&mut stream, faults, pacer).await {
        Ok(ServeEnd::Closed) => {
            tracing::info!(%peer, "simulator client disconnected");
            None
        }
        Ok(ServeEnd::Disconnect(outage)) => Some(outage),
        Err(e) => {
            tracing::info!(%peer, error = %e, "simulator client dropped");
            None
        }
    }
}

async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "simulated reconnect");
                return Some(l);
            }
            Err(e) => {
                tracing::debug!(error = %e, "simulator could not listen again yet");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    use super::*;

    /// The generic DMM on a free loopback port.
    async fn generic() -> TcpServer {
        TcpServer::start(SimParams::default(), "127.0.0.1:0")
            .await
            .unwrap()
    }

    async fn connect(server: &TcpServer) -> BufReader<TcpStream> {
        BufReader::new(TcpStream::connect(server.local_addr()).await.unwrap())
    }

    async fn query(client: &mut BufReader<TcpStream>, line: &str) -> String {
        client.get_mut().write_all(line.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_line(&mut reply))
            .await
            .expect("no reply")
            .unwrap();
        reply
    }

    #[tokio::test]
    async fn serves_queries_on_loopback() {
        let server = generic().await;
        assert_ne!(server.local_addr().port(), 0);
        let mut c = connect(&server).await;
        assert!(
            query(&mut c, "*IDN?\n")
                .await
                .starts_with("TSAGENT,SIM-DMM,")
        );
        let r = query(&mut c, "MEAS:VOLT:DC? 10\r\n").await;
        assert!(r.starts_with("+1.0000") && r.ends_with("E+01\n"), "{r:?}");
        assert_eq!(server.readings_sent(), 1);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_second_client_after_the_first_disconnects_sees_the_same_meter() {
        let server = generic().await;
        let mut a = connect(&server).await;
        // The message stops at BOGUS, so its *OPC? is not answered; the next one is.
        assert_eq!(
            query(&mut a, "VOLT:NPLC 0.2;:BOGUS;*OPC?\n*OPC?\n").await,
            "1\n"
        );
        let first = query(&mut a, "READ?\n").await;
        drop(a);
        let mut b = connect(&server).await;
        assert_eq!(query(&mut b, "VOLT:NPLC?\n").await, "+2.00000000E-01\n");
        assert_eq!(query(&mut b, "FETC?\n").await, first);
        assert_eq!(
            query(&mut b, "SYST:ERR?\n").await,
            "-113,\"Undefined header\"\n"
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn clients_that_leave_mid_exchange_do_not_hold_up_the_next() {
        let server = generic().await;
        // Half a command, then gone: the fragment is not carried over to the next client.
        let mut a = connect(&server).await;
        a.get_mut()
            .write_all(b"VOLT:NPLC 0.2;:SYST:ERR")
            .await
            .unwrap();
        drop(a);
        // Queries whose replies (some 16 MB) fill both socket buffers and are never read, so the
        // simulator is blocked writing when the client goes.
        let mut b = connect(&server).await;
        b.get_mut().write_all(b"SAMP:COUN 50000\n").await.unwrap();
        for _ in 0..20 {
            b.get_mut().write_all(b"READ?\n").await.unwrap();
        }
        drop(b);
        // A query sent and the connection closed before the reply.
        let mut c = connect(&server).await;
        c.get_mut().write_all(b"*IDN?\n").await.unwrap();
        drop(c);
        let mut d = connect(&server).await;
        assert_eq!(query(&mut d, "*OPC?\n").await, "1\n");
        assert_eq!(query(&mut d, "VOLT:NPLC?\n").await, "+1.00000000E+01\n");
        assert_eq!(query(&mut d, "SYST:ERR?\n").await, "0,\"No error\"\n");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn clients_are_served_one_at_a_time() {
        let server = generic().await;
        let mut a = connect(&server).await;
        assert_eq!(query(&mut a, "*OPC?\n").await, "1\n");
        // b connects (the kernel completes the handshake) but waits its turn.
        let mut b = connect(&server).await;
        b.get_mut().write_all(b"*OPC?\n").await.unwrap();
        let mut reply = String::new();
        let early = tokio::time::timeout(Duration::from_millis(300), b.read_line(&mut reply)).await;
        assert!(
            early.is_err(),
            "served while another client was connected: {reply:?}"
        );
        drop(a);
        tokio::time::timeout(Duration::from_secs(10), b.read_line(&mut reply))
            .await
            .expect("not served after the first client left")
            .unwrap();
        assert_eq!(reply, "1\n");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn shutting_down_closes_the_connection() {
        let server = generic().await;
        let addr = server.local_addr();
        let mut c = connect(&server).await;
        assert_eq!(query(&mut c, "*OPC?\n").await, "1\n");
        server.shutdown().await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("connection not closed");
        assert!(!matches!(n, Ok(n) if n > 0), "{n:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }

    #[tokio::test]
    async fn realistic_timing_delays_readings() {
        let params = SimParams {
            realistic_timing: true,
            ..SimParams::default()
        };
        let server = TcpServer::start(params, "127.0.0.1:0").await.unwrap();
        let mut c = connect(&server).await;
        query(&mut c, "VOLT:NPLC 1\n*OPC?\n").await;
        let started = Instant::now();
        query(&mut c, "READ?;READ?\n").await;
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn start_reports_bind_errors_and_bad_params() {
        let server = generic().await;
        let taken = server.local_addr();
        match TcpServer::start(SimParams::default(), taken).await {
            Err(e @ SimError::Bind { .. }) => {
                assert_eq!(e.to_string(), format!("could not listen on {taken}"));
            }
            other => panic!("{other:?}"),
        }
        let bad = SimParams {
            noise: -1.0,
            ..SimParams::default()
        };
        assert!(matches!(
            TcpServer::start(bad, "127.0.0.1:0").await,
            Err(SimError::InvalidParam { field: "noise", .. })
        ));
    }

    #[tokio::test]
    async fn disconnect_closes_and_refuses_then_listens_again_with_state_kept() {
        let spec = SimSpec::instrument(crate::PersonalityId::Keysight34465a, SimParams::default());
        let server = TcpServer::start_spec(spec, "127.0.0.1:0").await.unwrap();
        let addr = server.local_addr();
        let mut c = connect(&server).await;
        assert_eq!(
            query(&mut c, "VOLT:NPLC 1;NPLC?\n").await,
            "+1.00000000E+00\n"
        );
        server.faults().arm(crate::Fault::after(
            1,
            crate::FaultKind::Disconnect {
                down: Duration::from_millis(300),
                new_path: false,
                serial: Some("SIMOTHER".into()),
            },
        ));
        // The next reply is sent, then the line goes.
        assert_eq!(query(&mut c, "*OPC?\n").await, "1\n");
        server.wait_down(1).await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("connection not closed");
        assert!(!matches!(n, Ok(n) if n > 0), "{n:?}");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening while down"
        );
        tokio::time::timeout(Duration::from_secs(10), server.wait_returns(1))
            .await
            .unwrap();
        let mut c = connect(&server).await;
        assert_eq!(query(&mut c, "VOLT:NPLC?\n").await, "+1.00000000E+00\n");
        assert!(query(&mut c, "*IDN?\n").await.contains(",34465A,SIMOTHER,"));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_disconnect_while_nobody_is_connected_takes_the_port_away() {
        let server = generic().await;
        server.faults().inject(crate::FaultKind::Disconnect {
            down: Duration::from_millis(200),
            new_path: false,
            serial: None,
        });
        server.wait_down(1).await;
        assert!(TcpStream::connect(server.local_addr()).await.is_err());
        tokio::time::timeout(Duration::from_secs(10), server.wait_returns(1))
            .await
            .unwrap();
        let mut c = connect(&server).await;
        assert_eq!(query(&mut c, "*OPC?\n").await, "1\n");
        drop(c);
        // An identity change armed while nobody is connected is applied all the same.
        let faults = server.faults();
        faults.inject(crate::FaultKind::Identity {
            serial: "SIMIDLE".into(),
        });
        tokio::time::timeout(Duration::from_secs(10), faults.wait_fired(2))
            .await
            .unwrap();
        let mut c = connect(&server).await;
        assert!(query(&mut c, "*IDN?\n").await.contains(",SIMIDLE,"));
    }

    #[tokio::test]
    async fn flood_of_ten_megabytes_without_terminator() {
        let server = generic().await;
        server.faults().arm("flood=10MB,on=READ?".parse().unwrap());
        let mut c = connect(&server).await;
        c.get_mut().write_all(b"READ?\n*OPC?\n").await.unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut tail = Vec::new();
        while total < 10_000_000 {
            let n = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf))
                .await
                .expect("flood stalled")
                .unwrap();
            assert!(n > 0);
            assert!(!buf[..n].contains(&b'\n') || total + n > 10_000_000);
            total += n;
            if total > 10_000_000 {
                tail.extend_from_slice(&buf[n - (total - 10_000_000)..n]);
            }
        }
        if !tail.ends_with(b"\n") {
            let mut rest = Vec::new();
            tokio::time::timeout(Duration::from_secs(30), c.read_until(b'\n', &mut rest))
                .await
                .expect("no reply after the flood")
                .unwrap();
            tail.extend_from_slice(&rest);
        }
        assert_eq!(tail, b"1\n");
        assert_eq!(server.faults().fired(), 1);
    }
}
