//! A simulated instrument (or a Prologix GPIB-ETHERNET bus) on a TCP port, like a LAN
//! instrument's raw SCPI socket (5025) or the adapter's port 1234.
//!
//! Several clients may be connected at once, and all of them talk to the same instrument (or
//! bus), whose state is one whoever asks. Each connection frames its own input, so a message a
//! client has sent only half of is never completed by another client's bytes, nor handed to the
//! next client when it leaves. Each complete message (a host line on the adapter) is one
//! exchange, served whole before any other client's message is taken, the time the instrument
//! needs to measure included; its reply goes to the client that sent it. A client that stops
//! reading holds up only itself: its next message is taken once its last reply is on the wire.
//! Output nobody asked for (a streaming sensor's) goes to the client that spoke last, or failing
//! that, connected last; no more than [`UNREAD_OUTPUT_CAP`] bytes of it wait for a client that
//! does not read, the rest is lost, as a sensor's output is on a line nobody reads. So a driver
//! that crashed inside a process that stays alive, holding its
//! connection open and idle, blocks nobody, and a client that leaves mid-message leaves nothing
//! behind.
//!
//! What this is based on. Keysight documents its SCPI socket service (port 5025) as accepting
//! several simultaneous connections on the same instrument: "up to two simultaneous data
//! socket, control socket, and telnet connections" (EDU33210 and EDU36311A user's guides,
//! "SCPI socket services"), up to four on the E4360 (user's guide p. 53). The number for the
//! Truevolt 34465A/34470A was not found in their manuals: unconfirmed. Keithley's LXI manuals
//! (707B/708B reference manual p. 2-39, "Dead socket connections") warn that an application
//! ended without releasing its socket leaves the port hanging until the power is cycled, which
//! some models clear through a dead-socket termination port (5030 on the DMM6500, from the
//! brief; its manual page was not found: unconfirmed). The simulator has no socket that can
//! hang, so it has no such port. How many clients a Prologix GPIB-ETHERNET accepts at once was
//! not found either (unconfirmed); the adapter's settings (`++addr`, `++auto`, …) are the box's,
//! so connected clients share them, and two clients driving one adapter at the same time can
//! readdress each other's instrument between their exchanges.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::exchange::Connection;
use crate::fault::{FaultHandle, Outage};
use crate::server::{Control, SimServer};
use crate::spec::SimSpec;
use crate::station::Station;
use crate::wire::{Pacer, pace_input};
use crate::{SimError, SimParams};

/// Pause after a failed `accept` (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest idle sleep when nothing is scheduled; only bounds how long a select waits.
const IDLE: Duration = Duration::from_secs(3600);

/// A simulated instrument on a TCP socket.
///
/// Clients may be connected several at a time and share the instrument, whose state persists
/// between them; each message is served whole, and its reply goes to its sender (the module
/// documentation says more, and what it is based on). A disconnect fault closes every
/// connection and the listener (new connections are refused) and listens again on the same
/// address when it is over. Dropping the server stops it and closes the listener and any open
/// connection.
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

/// What the clients share: the instrument, the line's pacing, and where each client's output
/// goes.
struct Shared {
    station: Station,
    pacer: Option<Pacer>,
    clients: BTreeMap<u64, Client>,
    /// Counts connections and messages, to know who spoke last.
    tick: u64,
}

/// Bytes of output nobody asked for (a streaming sensor's) that may wait for one connection's
/// writer. Beyond it a client that does not read loses that output, as an instrument's output
/// buffer overflows, instead of the simulator's memory growing for as long as it stays idle.
pub const UNREAD_OUTPUT_CAP: usize = 64 << 10;

/// A connected client, as the instrument sees it.
struct Client {
    out: mpsc::UnboundedSender<Out>,
    /// Bytes queued for its writer and not yet written.
    queued: Arc<AtomicUsize>,
    /// `tick` when it last sent a message, or connected.
    last: u64,
}

impl Shared {
    /// Notes that client `id` has just spoken.
    fn touch(&mut self, id: u64) {
        self.tick += 1;
        if let Some(c) = self.clients.get_mut(&id) {
            c.last = self.tick;
        }
    }

    /// Sends the output a streaming instrument has due to the client that spoke last; returns
    /// the hang-up a fault caused. A client whose connection is gone is forgotten.
    async fn unsolicited(&mut self, faults: &FaultHandle) -> Option<Outage> {
        let (&id, client) = self.clients.iter().max_by_key(|(_, c)| c.last)?;
        let mut sink = Sink {
            out: client.out.clone(),
            queued: client.queued.clone(),
            cap: Some(UNREAD_OUTPUT_CAP),
        };
        let mut conn = Connection {
            stream: &mut sink,
            faults,
            pacer: &mut self.pacer,
        };
        match self.station.unsolicited(&mut conn).await {
            Ok(outage) => outage,
            Err(_) => {
                self.clients.remove(&id);
                None
            }
        }
    }
}

/// What a connection's writer is given: bytes, or a request to say when everything before it
/// is on the wire.
enum Out {
    Data(Vec<u8>),
    Written(oneshot::Sender<()>),
}

/// The instrument's side of a connection: what it writes is queued for the connection's
/// writer, so an instrument never waits on a client that does not read.
struct Sink {
    out: mpsc::UnboundedSender<Out>,
    /// Bytes queued and not yet written, shared with the writer.
    queued: Arc<AtomicUsize>,
    /// For output nobody asked for: what may wait at most; beyond it, writes are lost.
    cap: Option<usize>,
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let waiting = self.queued.load(Ordering::Relaxed);
        if self.cap.is_some_and(|cap| waiting + buf.len() > cap) {
            // The client is not reading: this output is lost, as on a line nobody reads.
            return Poll::Ready(Ok(buf.len()));
        }
        self.queued.fetch_add(buf.len(), Ordering::Relaxed);
        Poll::Ready(match self.out.send(Out::Data(buf.to_vec())) {
            Ok(()) => Ok(buf.len()),
            Err(_) => Err(io::ErrorKind::BrokenPipe.into()),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The server task: accept clients and serve each in a task of its own; send a streaming
/// instrument's output; for a disconnect fault, close every connection and the listener and
/// listen again when it is over.
async fn run(
    listener: TcpListener,
    addr: SocketAddr,
    station: Station,
    pacer: Option<Pacer>,
    control: Control,
) {
    let shared = Arc::new(Mutex::new(Shared {
        station,
        pacer,
        clients: BTreeMap::new(),
        tick: 0,
    }));
    // A client whose exchange hung the line up says so here.
    let (outage_tx, mut outage_rx) = mpsc::unbounded_channel::<Outage>();
    // Clients say when they have been served, since that may start a stream.
    let activity = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let mut listener = Some(listener);
    loop {
        let Some(l) = &listener else {
            // Rebinding failed after a disconnect; try again shortly.
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            listener = TcpListener::bind(addr).await.ok();
            continue;
        };
        // A client mid-exchange holds the instrument, perhaps for minutes (`ACAL`); accepting
        // does not wait for it, and the client says when it is done, which brings the loop back.
        let next = match shared.try_lock() {
            Ok(g) => g.station.unsolicited_in(),
            Err(_) => None,
        };
        let outage = tokio::select! {
            biased;
            Some(outage) = outage_rx.recv() => Some(outage),
            // A disconnect armed while nobody is connected still takes the port away.
            _ = control.faults.armed_signal() => {
                shared.lock().await.station.due_events(&control.faults)
            }
            Some(_) = tasks.join_next() => None,
            _ = activity.notified() => None,
            _ = tokio::time::sleep(next.unwrap_or(IDLE)), if next.is_some() => {
                shared.lock().await.unsolicited(&control.faults).await
            }
            accepted = l.accept() => {
                match accepted {
                    Ok((stream, peer)) => {
                        next_id += 1;
                        tasks.spawn(serve_client(
                            Arc::clone(&shared),
                            next_id,
                            stream,
                            peer,
                            control.faults.clone(),
                            outage_tx.clone(),
                            Arc::clone(&activity),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator could not accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
                None
            }
        };
        if let Some(outage) = outage {
            // Every connection goes with the line, and with it what its client had not read.
            tasks.shutdown().await;
            drop(listener.take());
            let mut guard = shared.lock().await;
            guard.clients.clear();
            listener = control
                .outage(outage, &mut guard.station, rebind(addr))
                .await;
            drop(guard);
            // Hang-ups other clients ran into meanwhile went with this one.
            while outage_rx.try_recv().is_ok() {}
        }
    }
}

/// Serves one client until it leaves or a fault hangs the line up, which it reports to the
/// server task.
async fn serve_client(
    shared: Arc<Mutex<Shared>>,
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    faults: FaultHandle,
    outage_tx: mpsc::UnboundedSender<Outage>,
    activity: Arc<Notify>,
) {
    // Replies are single small writes; do not let Nagle hold them back.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    tracing::info!(%peer, "simulator client connected");
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let mut framer = {
        let mut g = shared.lock().await;
        g.tick += 1;
        let last = g.tick;
        g.clients.insert(
            id,
            Client {
                out: tx.clone(),
                queued: queued.clone(),
                last,
            },
        );
        g.station.new_connection()
    };
    let serve = async {
        let mut chunk = vec![0u8; 4096];
        loop {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            pace_input(n, &shared.lock().await.pacer).await;
            let data = chunk.get(..n).unwrap_or_default();
            for unit in framer.push(data) {
                let outage = {
                    let mut g = shared.lock().await;
                    g.touch(id);
                    let Shared { station, pacer, .. } = &mut *g;
                    let mut sink = Sink {
                        out: tx.clone(),
                        queued: queued.clone(),
                        cap: None,
                    };
                    let mut conn = Connection {
                        stream: &mut sink,
                        faults: &faults,
                        pacer,
                    };
                    station.unit(unit, &mut conn).await?
                };
                activity.notify_one();
                // The next message waits until this one's reply is on the wire, so a client that
                // does not read holds up only itself, and queues no more than one reply.
                let (written, on_wire) = oneshot::channel();
                if tx.send(Out::Written(written)).is_err() || on_wire.await.is_err() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                if outage.is_some() {
                    return Ok(outage);
                }
            }
        }
    };
    let end: io::Result<Option<Outage>> = tokio::select! {
        end = serve => end,
        end = write_out(writer, rx, &queued) => end.map(|()| None),
    };
    shared.lock().await.clients.remove(&id);
    match end {
        Ok(None) => tracing::info!(%peer, "simulator client disconnected"),
        // The reply before it is on the wire and this connection closed; the server task closes
        // the others and the listener.
        Ok(Some(outage)) => {
            let _ = outage_tx.send(outage);
        }
        Err(e) => tracing::info!(%peer, error = %e, "simulator client dropped"),
    }
}

/// Writes what the instrument queued for one connection, in order.
async fn write_out(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    queued: &AtomicUsize,
) -> io::Result<()> {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Data(data) => {
                writer.write_all(&data).await?;
                queued.fetch_sub(data.len(), Ordering::Relaxed);
            }
            Out::Written(done) => {
                writer.flush().await?;
                let _ = done.send(());
            }
        }
    }
    Ok(())
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
    async fn an_idle_client_does_not_block_the_next() {
        let server = generic().await;
        // A driver that crashed in a process that lives on: connected, half a message sent,
        // never heard from again.
        let mut a = connect(&server).await;
        assert_eq!(query(&mut a, "*OPC?\n").await, "1\n");
        a.get_mut()
            .write_all(b"VOLT:NPLC 0.2;:SYST:ERR")
            .await
            .unwrap();
        let mut b = connect(&server).await;
        assert_eq!(query(&mut b, "*OPC?\n").await, "1\n");
        // The same instrument: b's setting is the one a finds, and a's half message was
        // completed by neither b's bytes nor anything else.
        assert_eq!(query(&mut b, "VOLT:NPLC 1\n*OPC?\n").await, "1\n");
        assert_eq!(query(&mut a, "?\n").await, "0,\"No error\"\n");
        assert_eq!(query(&mut b, "VOLT:NPLC?\n").await, "+2.00000000E-01\n");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_holds_up_only_itself() {
        let server = generic().await;
        // Some 16 MB of replies that a never reads: both socket buffers fill.
        let mut a = connect(&server).await;
        a.get_mut().write_all(b"SAMP:COUN 50000\n").await.unwrap();
        for _ in 0..20 {
            a.get_mut().write_all(b"READ?\n").await.unwrap();
        }
        let mut b = connect(&server).await;
        assert_eq!(query(&mut b, "*OPC?\n").await, "1\n");
        assert!(
            query(&mut b, "*IDN?\n")
                .await
                .starts_with("TSAGENT,SIM-DMM,")
        );
        // a still gets its first reply, whole.
        let mut first = String::new();
        tokio::time::timeout(Duration::from_secs(30), a.read_line(&mut first))
            .await
            .expect("no reply")
            .unwrap();
        assert_eq!(first.split(',').count(), 50_000);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn each_reply_goes_to_the_client_that_asked() {
        let server = generic().await;
        let mut a = connect(&server).await;
        let mut b = connect(&server).await;
        // Both ask before either reads; b's whole message arrives while a's is in two parts.
        a.get_mut().write_all(b"*ID").await.unwrap();
        b.get_mut().write_all(b"BOGUS\nSYST:ERR?\n").await.unwrap();
        a.get_mut().write_all(b"N?\n").await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), b.read_line(&mut reply))
            .await
            .expect("no reply")
            .unwrap();
        assert_eq!(reply, "-113,\"Undefined header\"\n");
        reply.clear();
        tokio::time::timeout(Duration::from_secs(10), a.read_line(&mut reply))
            .await
            .expect("no reply")
            .unwrap();
        assert!(reply.starts_with("TSAGENT,SIM-DMM,"), "{reply:?}");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn messages_of_clients_at_once_are_never_interleaved() {
        let server = generic().await;
        // Each client sets a value and reads it back in one message, many times, all at once:
        // another client's setting can never land between the two.
        let mut tasks = Vec::new();
        for k in 1..=8u32 {
            let addr = server.local_addr();
            tasks.push(tokio::spawn(async move {
                let mut c = BufReader::new(TcpStream::connect(addr).await.unwrap());
                for _ in 0..50 {
                    let r = query(&mut c, &format!("SAMP:COUN {k};:SAMP:COUN?\n")).await;
                    assert_eq!(r, format!("+{k}\n"), "client {k}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn streaming_output_goes_to_the_client_that_spoke_last() {
        let spec = SimSpec::instrument(crate::PersonalityId::VaisalaPtu300, SimParams::default());
        let server = TcpServer::start_spec(spec, "127.0.0.1:0").await.unwrap();
        let mut b = connect(&server).await;
        b.get_mut().write_all(b"INTV 1 S\rR\r").await.unwrap();
        // a connects after b and stays idle; the stream b started is b's.
        let _a = connect(&server).await;
        let mut line = String::new();
        for _ in 0..3 {
            line.clear();
            tokio::time::timeout(Duration::from_secs(10), b.read_line(&mut line))
                .await
                .expect("no output")
                .unwrap();
        }
        assert!(line.starts_with("P="), "{line:?}");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn unasked_output_waits_for_a_client_that_does_not_read_up_to_a_cap_then_is_lost() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut sink = Sink {
            out,
            queued: queued.clone(),
            cap: Some(10),
        };
        sink.write_all(b"12345678").await.unwrap();
        sink.write_all(b"lost").await.unwrap();
        assert_eq!(queued.load(Ordering::Relaxed), 8);
        // Written out by the connection's writer: room again.
        let Some(Out::Data(first)) = rx.recv().await else {
            panic!("nothing queued")
        };
        assert_eq!(first, b"12345678");
        queued.fetch_sub(first.len(), Ordering::Relaxed);
        sink.write_all(b"kept").await.unwrap();
        let Some(Out::Data(next)) = rx.recv().await else {
            panic!("nothing queued")
        };
        assert_eq!(next, b"kept");
        // A reply (no cap) is never lost.
        let mut reply = Sink {
            out: sink.out.clone(),
            queued,
            cap: None,
        };
        reply.write_all(&[b'x'; 64]).await.unwrap();
        assert!(matches!(rx.recv().await, Some(Out::Data(d)) if d.len() == 64));
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
