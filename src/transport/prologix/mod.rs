//! Instruments on a GPIB bus behind a Prologix GPIB-USB or GPIB-ETHERNET adapter.
//!
//! The adapter is a line-oriented bridge: a host line starting with `++` is a command to the
//! adapter, any other line is data for the currently addressed instrument. Data bytes that the
//! adapter would otherwise interpret (LF, CR, ESC, `+`) are escaped with ESC, and an unescaped
//! LF ends each message. The adapter is initialised as a controller that never reads on its own
//! (`++auto 0`), adds nothing to what it sends the instrument (`++eos 3`) except EOI on the last
//! byte (`++eoi 1`), and passes replies back unchanged (`++eot_enable 0`); each read is asked for
//! with `++read eoi`. The commands and their order follow PyVISA-py's and MSL's drivers.
//!
//! One adapter is shared by the [`Link`]s of every instrument on its bus; each link operation
//! holds the adapter for its whole duration (see [`PrologixAdapter`]).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::{TransportError, classify};
use super::read::{Core, ReadKind};
use super::stream::{Stream, open_serial, open_tcp};

use super::{Resource, SerialSettings};

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

/// The escape byte.
const ESC: u8 = 0x1b;

/// Prologix's inter-character read timeout used by PyVISA-py, in milliseconds.
pub const DEFAULT_READ_TMO_MS: u16 = 50;

/// The range the adapter accepts for `++read_tmo_ms`.
const READ_TMO_MS: std::ops::RangeInclusive<u16> = 1..=3000;

/// Deadline for connecting to the adapter and sending its initialisation.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Most unsolicited input one probe reads past; an adapter streaming faster is not waited for.
const MAX_PROBE_DRAIN: usize = 64 * 1024;

/// Escapes data for the adapter so it reaches the instrument unchanged: ESC, LF, CR and `+`
/// are each preceded by ESC.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let special = data
        .iter()
        .filter(|&&b| matches!(b, ESC | b'\n' | b'\r' | b'+'))
        .count();
    let mut escaped = Vec::with_capacity(data.len().saturating_add(special));
    for &byte in data {
        if matches!(byte, ESC | b'\n' | b'\r' | b'+') {
            escaped.push(ESC);
        }
        escaped.push(byte);
    }
    escaped
}

/// What the adapter makes of one message body (without its ending LF): an ESC makes the next
/// byte data whatever it is; unescaped CR, LF, `+` and a trailing lone ESC are dropped, as the
/// adapter does. The inverse of [`escape`].
pub fn unescape(data: &[u8]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(data.len());
    let mut escaped = false;
    for &byte in data {
        if escaped {
            plain.push(byte);
            escaped = false;
        } else if byte == ESC {
            escaped = true;
        } else if !matches!(byte, b'\n' | b'\r' | b'+') {
            plain.push(byte);
        }
    }
    plain
}

/// A GPIB instrument address as `++addr` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Address {
    pad: u8,
    sad: Option<u8>,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sad {
            Some(sad) => write!(f, "{} {sad}", self.pad),
            None => write!(f, "{}", self.pad),
        }
    }
}

/// Where the adapter's input parser stands, tracked byte by byte as the host writes, so a
/// message cut short (a write that timed out, an operation cancelled mid-write) can be ended
/// before the next one instead of running into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Wire {
    /// Bytes of a message have been sent but not its ending LF.
    in_message: bool,
    /// The last byte sent was an escaping ESC, so the next byte is data.
    escaped: bool,
}

impl Wire {
    fn advance(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.escaped {
                self.escaped = false;
                self.in_message = true;
            } else if byte == ESC {
                self.escaped = true;
                self.in_message = true;
            } else {
                self.in_message = byte != b'\n';
            }
        }
    }
}

/// The adapter's connection and what the host knows of the adapter's state.
struct AdapterState {
    /// `None` once the connection is lost: every link on the adapter then fails at once.
    stream: Option<Box<dyn Stream>>,
    /// The instrument the adapter is addressed to, if known.
    address: Option<Address>,
    /// The link that used the adapter last. Input and partial replies buffered for any other
    /// link belong to a finished exchange.
    last_user: Option<u64>,
    wire: Wire,
}

impl AdapterState {
    fn stream(&mut self) -> Result<&mut dyn Stream, TransportError> {
        match self.stream.as_mut() {
            Some(stream) => Ok(stream.as_mut()),
            None => Err(TransportError::Disconnected),
        }
    }

    /// Sends bytes to the adapter within `timeout` from now, tracking the adapter's parser
    /// after every partial write.
    async fn send(&mut self, frame: &[u8], timeout: Duration) -> Result<(), TransportError> {
        let Self { stream, wire, .. } = self;
        let Some(stream) = stream.as_mut() else {
            return Err(TransportError::Disconnected);
        };
        let send = async {
            let mut rest = frame;
            while !rest.is_empty() {
                let n = stream.write(rest).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                let (sent, unsent) = rest.split_at(n.min(rest.len()));
                wire.advance(sent);
                rest = unsent;
            }
            stream.flush().await
        };
        match tokio::time::timeout(timeout, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(classify(error)),
            Err(_) => Err(TransportError::WriteTimeout { timeout }),
        }
    }

    /// Gets the adapter ready for `user`: ends a message left unfinished, and, if another link
    /// has used the adapter since, forgets what `core` buffered and any resynchronisation it
    /// was in: the adapter's read for this link is over, so neither the rest of that reply nor
    /// its terminator can still come.
    async fn begin(
        &mut self,
        user: u64,
        core: &mut Core,
        resource: &Resource,
    ) -> Result<(), TransportError> {
        self.stream()?;
        if self.wire.in_message {
            tracing::warn!(%resource, "ending a message to the GPIB adapter that was cut short");
            // The instrument receives the cut message; which instrument it was is now unknown.
            self.address = None;
            let end: &[u8] = if self.wire.escaped { b"\n\n" } else { b"\n" };
            self.send(end, core.settings.timeout).await?;
        }
        if self.last_user != Some(user) {
            let dropped = core.buffer.reset();
            if !dropped.is_empty() {
                tracing::warn!(
                    %resource,
                    bytes = dropped.len(),
                    "dropping input left from an earlier exchange"
                );
            }
        }
        Ok(())
    }

    /// `++addr` for `address` unless the adapter is already addressed to it.
    fn addressing(&self, address: Address) -> Vec<u8> {
        if self.address == Some(address) {
            Vec::new()
        } else {
            format!("++addr {address}\n").into_bytes()
        }
    }

    /// Sends `frame` after addressing `address` if needed, as one write.
    async fn send_to(
        &mut self,
        address: Address,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let mut bytes = self.addressing(address);
        bytes.extend_from_slice(frame);
        let sent = self.send(&bytes, timeout).await;
        self.address = match sent {
            Ok(()) => Some(address),
            Err(_) => None,
        };
        sent
    }

    /// Checks, without bus traffic, that the adapter's connection is still there: reads past
    /// whatever the adapter sent unasked (with `++auto 0` it sends nothing of its own, so that
    /// can only be the late end of a finished exchange) and reports a hang-up the kernel already
    /// knows of (end of file on a closed socket, an error on a vanished serial device).
    async fn probe(&mut self, adapter: &Resource) -> Result<(), TransportError> {
        let stream = self.stream()?;
        // Let the runtime poll its I/O driver once, so readiness reflects what the kernel holds
        // now.
        tokio::task::yield_now().await;
        let mut scratch = [0u8; 512];
        let mut dropped = 0usize;
        let mut outcome = Ok(());
        while dropped < MAX_PROBE_DRAIN {
            let polled = poll_fn(|cx| {
                let mut buf = ReadBuf::new(&mut scratch);
                match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Ready(None),
                    Poll::Ready(result) => Poll::Ready(Some(result.map(|()| buf.filled().len()))),
                }
            })
            .await;
            match polled {
                None => break,
                Some(Ok(0)) => {
                    outcome = Err(TransportError::Disconnected);
                    break;
                }
                Some(Ok(n)) => dropped = dropped.saturating_add(n),
                Some(Err(error)) => {
                    outcome = Err(classify(error));
                    break;
                }
            }
        }
        if dropped > 0 {
            tracing::warn!(%adapter, bytes = dropped, "dropping input the GPIB adapter sent unasked");
            // Whatever any link had buffered of that reply is incomplete now: every link starts
            // its next operation afresh.
            self.last_user = None;
        }
        outcome
    }

    /// Passes a result through, closing the adapter for every link when the connection is
    /// lost.
    fn check<T>(
        &mut self,
        result: Result<T, TransportError>,
        shared: &Shared,
    ) -> Result<T, TransportError> {
        if let Err(TransportError::Disconnected) = &result
            && self.stream.take().is_some()
        {
            shared.lost.store(true, Ordering::Relaxed);
            tracing::warn!(adapter = %shared.resource, "GPIB adapter connection lost");
        }
        result
    }
}

/// What the adapter's links share.
struct Shared {
    resource: Resource,
    state: Mutex<AdapterState>,
    next_link: AtomicU64,
    /// The connection was lost: set once, never cleared (a new adapter is opened instead).
    lost: AtomicBool,
}

/// A Prologix GPIB-USB or GPIB-ETHERNET adapter, shared by the links to the instruments on its
/// bus. Cheap to clone; clones are the same adapter.
///
/// Each link operation (a write, a read, a clear) holds the adapter from start to end, so
/// operations on different instruments interleave whole and may come from different tasks.
/// Per-operation locking is correct because GPIB keeps each talker's reply in that instrument's
/// output queue until the instrument is addressed to talk (`++read`), so a query to one
/// instrument may wait for its reply while another is written to or read. An operation's
/// deadline starts once it holds the adapter; time spent waiting for another link's operation
/// is bounded by that operation's own deadline.
///
/// The adapter reads from an instrument until EOI or until no byte has come for `read_tmo_ms`,
/// including the first byte: an instrument slower than that to start its reply returns nothing
/// for that read. Choose `read_tmo_ms` (up to 3000) for the slowest reply, or read again after
/// a [`TransportError::Timeout`] without writing: that sends a new `++read eoi`.
///
/// When the adapter's connection is lost, every link on it returns
/// [`TransportError::Disconnected`] from then on and [`PrologixAdapter::is_lost`] says so; open
/// the adapter again and make new links. The connection closes when the adapter and all its
/// links are dropped.
#[derive(Clone)]
pub struct PrologixAdapter {
    shared: Arc<Shared>,
}

impl fmt::Debug for PrologixAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrologixAdapter")
            .field("resource", &self.shared.resource)
            .finish_non_exhaustive()
    }
}

impl PrologixAdapter {
    /// Connects to the adapter named by a `PRLGX-TCPIP…::INTFC` or `PRLGX-ASRL…::INTFC`
    /// resource (a serial adapter with `serial`) and initialises it: `++savecfg 0`, `++mode 1`,
    /// `++auto 0`, `++read_tmo_ms <read_tmo_ms>`, `++eos 3`, `++eoi 1`, `++eot_enable 0`.
    ///
    /// `++savecfg 0` comes first so that the frequent `++addr` changes of a shared bus are not
    /// each written to the adapter's EEPROM. `read_tmo_ms` must be 1 to 3000
    /// ([`DEFAULT_READ_TMO_MS`] is PyVISA-py's choice).
    pub async fn open(
        resource: &Resource,
        serial: &SerialSettings,
        read_tmo_ms: u16,
    ) -> Result<Self, TransportError> {
        let open_error = |source| TransportError::Open {
            resource: resource.clone(),
            source,
        };
        if !READ_TMO_MS.contains(&read_tmo_ms) {
            return Err(open_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("read_tmo_ms {read_tmo_ms} is not 1 to 3000"),
            )));
        }
        let stream = match resource {
            Resource::PrologixTcp { host, port, .. } => open_tcp(host, *port, OPEN_TIMEOUT)
                .await
                .map_err(open_error)?,
            Resource::PrologixSerial { path, .. } => {
                open_serial(path, serial).map_err(open_error)?
            }
            Resource::Serial { .. } | Resource::Tcp { .. } | Resource::Gpib { .. } => {
                return Err(open_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a Prologix adapter resource (`PRLGX-TCPIP…::INTFC` or `PRLGX-ASRL…::INTFC`)",
                )));
            }
        };
        let mut state = AdapterState {
            stream: Some(stream),
            address: None,
            last_user: None,
            wire: Wire::default(),
        };
        let init = format!(
            "++savecfg 0\n++mode 1\n++auto 0\n++read_tmo_ms {read_tmo_ms}\n++eos 3\n++eoi 1\n++eot_enable 0\n"
        );
        state
            .send(init.as_bytes(), OPEN_TIMEOUT)
            .await
            .map_err(|e| open_error(io::Error::other(e)))?;
        Ok(Self {
            shared: Arc::new(Shared {
                resource: resource.clone(),
                state: Mutex::new(state),
                next_link: AtomicU64::new(0),
                lost: AtomicBool::new(false),
            }),
        })
    }

    /// The adapter's resource.
    pub fn resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// Whether the connection to the adapter was lost (found by any link's operation or by
    /// [`PrologixAdapter::probe`]); a lost adapter stays lost.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Checks, without bus traffic, whether the adapter is still there: a vanished USB adapter
    /// or a closed GPIB-ETHERNET connection reports [`TransportError::Disconnected`] (and the
    /// adapter is lost for every link). Input the adapter sent unasked is read past. Waits for an
    /// operation in progress on another link to end.
    pub async fn probe(&self) -> Result<(), TransportError> {
        let mut state = self.shared.state.lock().await;
        let result = state.probe(&self.shared.resource).await;
        state.check(result, &self.shared)
    }

    /// The board number its instruments name (`GPIB<board>::…`).
    pub fn board(&self) -> u8 {
        match &self.shared.resource {
            Resource::PrologixTcp { board, .. } | Resource::PrologixSerial { board, .. } => *board,
            Resource::Serial { .. } | Resource::Tcp { .. } | Resource::Gpib { .. } => 0,
        }
    }
}

impl PrologixAdapter {
    /// A new link's handle on this adapter, for the instrument at `pad`/`sad` (checked by the
    /// caller).
    pub(super) fn port(&self, pad: u8, sad: Option<u8>, resource: Resource) -> Port {
        Port {
            shared: Arc::clone(&self.shared),
            id: self.shared.next_link.fetch_add(1, Ordering::Relaxed),
            address: Address { pad, sad },
            resource,
        }
    }
}

/// One link's handle on its adapter.
pub(super) struct Port {
    shared: Arc<Shared>,
    /// Tells this link's exchanges apart from other links', even to the same address.
    id: u64,
    address: Address,
    /// The instrument's resource, for logs.
    resource: Resource,
}

impl Port {
    /// The adapter's resource.
    pub(super) fn adapter_resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// The adapter's hang-up check ([`PrologixAdapter::probe`]); a link has nothing of its own
    /// to check without bus traffic.
    pub(super) async fn probe(&self) -> Result<(), TransportError> {
        PrologixAdapter {
            shared: Arc::clone(&self.shared),
        }
        .probe()
        .await
    }

    /// Sends `message` and the write terminator to the instrument.
    pub(super) async fn write(
        &self,
        core: &mut Core,
        message: &[u8],
    ) -> Result<(), TransportError> {
        let mut state = self.shared.state.lock().await;
        let result = async {
            state.begin(self.id, core, &self.resource).await?;
            core.discard_stale(state.stream()?, &self.resource).await?;
            let terminator = &core.settings.write_termination;
            let mut plain = Vec::with_capacity(message.len() + terminator.len());
            plain.extend_from_slice(message);
            plain.extend_from_slice(terminator);
            let mut frame = escape(&plain);
            frame.push(b'\n');
            state.last_user = Some(self.id);
            state
                .send_to(self.address, &frame, core.settings.timeout)
                .await
        }
        .await;
        state.check(result, &self.shared)
    }

    /// Reads what `kind` expects from the instrument.
    ///
    /// Asks the adapter to read (`++read eoi`) unless this link still holds input from its own
    /// previous read: the rest of a reply that came in one piece, or the tail of one being
    /// skipped.
    pub(super) async fn read(
        &self,
        core: &mut Core,
        kind: ReadKind,
    ) -> Result<Vec<u8>, TransportError> {
        let mut state = self.shared.state.lock().await;
        let deadline = core.deadline();
        let result = async {
            let fresh = state.last_user != Some(self.id);
            state.begin(self.id, core, &self.resource).await?;
            if fresh {
                core.discard_stale(state.stream()?, &self.resource).await?;
            }
            state.last_user = Some(self.id);
            if core.buffer.len() == 0 && !core.buffer.is_resyncing() {
                let remaining = deadline.map_or(core.settings.timeout, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                state
                    .send_to(self.address, b"++read eoi\n", remaining)
                    .await?;
            }
            core.read(state.stream()?, kind, deadline).await
        }
        .await;
        state.check(result, &self.shared)
    }

    /// Selected Device Clear to the instrument; forgets its buffered input.
    pub(super) async fn clear(&self, core: &mut Core) -> Result<(), TransportError> {
        let mut state = self.shared.state.lock().await;
        let result = async {
            state.begin(self.id, core, &self.resource).await?;
            core.discard_stale(state.stream()?, &self.resource).await?;
            state.last_user = Some(self.id);
            state
                .send_to(self.address, b"++clr\n", core.settings.timeout)
                .await?;
            core.buffer.reset();
            Ok(())
        }
        .await;
        state.check(result, &self.shared)
    }
}
