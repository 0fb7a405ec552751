//! One open connection to an instrument: framing, deadlines and disconnect detection.

use std::fmt;
use std::io;
use std::time::Duration;

use super::buffer::preview;
use super::error::TransportError;
use super::prologix::{Port, PrologixAdapter};
use super::read::{Core, ReadKind};
use super::resource::{MAX_PAD, SADS};
use super::stream::{Stream, check_settings, open_serial, open_tcp};
use super::{LinkSettings, Resource, SerialSettings};

/// How a link reaches its instrument.
enum Io {
    /// The link owns the serial port or socket.
    Direct(Box<dyn Stream>),
    /// The instrument sits on a GPIB bus behind a Prologix adapter shared with other links.
    Prologix(Port),
}

/// One open connection to an instrument.
///
/// A link is used by one task at a time (`&mut self`); it frames replies by the read
/// terminator, enforces one deadline per reply and turns every way a connection can vanish into
/// [`TransportError::Disconnected`]. Links to instruments behind one
/// [`PrologixAdapter`](super::PrologixAdapter) may be used from different tasks at once.
pub struct Link {
    resource: Resource,
    io: Io,
    core: Core,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = match &self.io {
            Io::Direct(_) => None,
            Io::Prologix(port) => Some(port.adapter_resource()),
        };
        f.debug_struct("Link")
            .field("resource", &self.resource)
            .field("via", &via)
            .field("settings", &self.core.settings)
            .field("buffered", &self.core.buffer.len())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Opens the resource: a serial port with `serial`, or a TCP connection (with `TCP_NODELAY`)
    /// that must be established within `settings.timeout`.
    ///
    /// GPIB instruments are reached through [`PrologixAdapter::link`](super::PrologixAdapter::link)
    /// instead, since one adapter serves several links; a GPIB or adapter resource is refused
    /// here.
    pub async fn open(
        resource: &Resource,
        serial: &SerialSettings,
        settings: LinkSettings,
    ) -> Result<Self, TransportError> {
        let open_error = |source| TransportError::Open {
            resource: resource.clone(),
            source,
        };
        check_settings(&settings).map_err(open_error)?;
        let stream = match resource {
            Resource::Serial { path } => open_serial(path, serial).map_err(open_error)?,
            Resource::Tcp { host, port } => open_tcp(host, *port, settings.timeout)
                .await
                .map_err(open_error)?,
            Resource::Gpib { .. }
            | Resource::PrologixTcp { .. }
            | Resource::PrologixSerial { .. } => {
                return Err(open_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "GPIB instruments are opened through their Prologix adapter",
                )));
            }
        };
        Ok(Self::from_parts(resource.clone(), stream, settings))
    }

    /// Wraps an already open stream; the settings must have passed [`check_settings`].
    pub(crate) fn from_parts(
        resource: Resource,
        stream: Box<dyn Stream>,
        settings: LinkSettings,
    ) -> Self {
        Self {
            resource,
            io: Io::Direct(stream),
            core: Core::new(settings),
        }
    }

    /// A link through a GPIB adapter; the settings must have passed [`check_settings`].
    pub(super) fn through_adapter(resource: Resource, port: Port, settings: LinkSettings) -> Self {
        Self {
            resource,
            io: Io::Prologix(port),
            core: Core::new(settings),
        }
    }

    /// Bytes received and held for the next read.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.core.buffer.len()
    }

    /// The resource this link was opened on.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The framing and limits in force.
    pub fn settings(&self) -> &LinkSettings {
        &self.core.settings
    }

    /// Changes the reply deadline, e.g. around a slow measurement or a self-calibration.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.core.settings.timeout = timeout;
    }

    /// Sends `message` followed by the write terminator.
    ///
    /// Input that is already buffered or readable right now is discarded first (and logged), so
    /// a late reply to a timed-out query is never taken as the answer to this one.
    ///
    /// Through a Prologix adapter the instrument is addressed first if another one was, the
    /// message and write terminator are escaped, and the adapter ends the message with EOI.
    pub async fn write(&mut self, message: &[u8]) -> Result<(), TransportError> {
        match &mut self.io {
            Io::Direct(stream) => {
                self.core
                    .discard_stale(stream.as_mut(), &self.resource)
                    .await?;
                let terminator = &self.core.settings.write_termination;
                let mut frame = Vec::with_capacity(message.len() + terminator.len());
                frame.extend_from_slice(message);
                frame.extend_from_slice(terminator);
                self.core.send(stream.as_mut(), &frame).await
            }
            Io::Prologix(port) => port.write(&mut self.core, message).await,
        }
    }

    /// Reads one reply and returns it without the read terminator; bytes after the terminator
    /// stay buffered.
    ///
    /// The whole reply must arrive within one deadline of `timeout` from now, however it is
    /// split, so a device that dribbles bytes cannot hold the link forever.
    pub async fn read_reply(&mut self) -> Result<String, TransportError> {
        let reply = self.read(ReadKind::Reply).await?;
        String::from_utf8(reply).map_err(|e| TransportError::NotText {
            preview: preview(e.as_bytes()),
        })
    }

    /// Reads one IEEE 488.2 block reply and returns its payload, within one deadline.
    ///
    /// Leading whitespace is skipped. A definite block (`#<n><len>`) yields exactly `len` bytes
    /// — terminator bytes inside are data — and `len` is checked against `cap` before anything
    /// is allocated ([`TransportError::BlockTooLong`]). The read terminator that must follow is
    /// consumed; if anything else follows, the length was wrong
    /// ([`TransportError::BadBlock`]). If the deadline passes with the payload complete but the
    /// terminator missing, the payload is returned and a warning logged: the length already
    /// proves the data complete, and some instruments end a block with EOI alone.
    ///
    /// An indefinite block (`#0`) runs to the read terminator, at most `cap` bytes
    /// ([`TransportError::ReplyTooLong`] beyond). The host never sees GPIB's EOI (neither on
    /// serial or TCP nor through a Prologix adapter, which is told not to mark it), so an
    /// indefinite payload that contains the terminator is cut short: use definite blocks for
    /// binary data.
    ///
    /// After a bad header or a wrong length the rest of that reply is discarded, like after
    /// [`TransportError::ReplyTooLong`], so the next query works.
    pub async fn read_block(&mut self, cap: usize) -> Result<Vec<u8>, TransportError> {
        self.read(ReadKind::Block { cap }).await
    }

    /// Reads exactly `n` raw bytes (e.g. an HP 3458A's `OFORMAT DREAL` readings, 8 bytes each,
    /// big-endian), then, if `then_terminator`, the read terminator, all within one deadline.
    ///
    /// The terminator is handled as after a definite block: something else there is
    /// [`TransportError::BadBlock`], a terminator still missing at the deadline is tolerated.
    /// Through a Prologix adapter the `n` bytes must come as one message (one EOI); on a 3458A
    /// that means `END ON` rather than `END ALWAYS` for multi-reading binary transfers.
    pub async fn read_exact(
        &mut self,
        n: usize,
        then_terminator: bool,
    ) -> Result<Vec<u8>, TransportError> {
        self.read(ReadKind::Exact {
            len: n,
            terminated: then_terminator,
        })
        .await
    }

    /// Clears the device, for recovery after a confused exchange.
    ///
    /// Through a Prologix adapter this sends Selected Device Clear (`++clr`) to this instrument,
    /// which empties its input and output queues, and forgets everything buffered for it.
    /// A direct serial or TCP link has no device clear: it drops buffered input and whatever
    /// the device has already sent, like the start of a write.
    pub async fn clear(&mut self) -> Result<(), TransportError> {
        match &mut self.io {
            Io::Direct(stream) => {
                self.core
                    .discard_stale(stream.as_mut(), &self.resource)
                    .await
            }
            Io::Prologix(port) => port.clear(&mut self.core).await,
        }
    }

    /// Checks, without sending anything, whether the connection is still there: an idle link
    /// whose device vanished (unplugged USB adapter, closed pty, peer closed TCP) reports
    /// [`TransportError::Disconnected`]. Unsolicited input is discarded as before a write.
    ///
    /// Through a Prologix adapter the instrument itself cannot be checked without bus traffic,
    /// so this checks the adapter's connection, shared with the other instruments on its bus.
    pub async fn probe(&mut self) -> Result<(), TransportError> {
        match &mut self.io {
            Io::Direct(stream) => {
                self.core
                    .discard_stale(stream.as_mut(), &self.resource)
                    .await
            }
            Io::Prologix(port) => port.probe().await,
        }
    }

    async fn read(&mut self, kind: ReadKind) -> Result<Vec<u8>, TransportError> {
        match &mut self.io {
            Io::Direct(stream) => {
                let deadline = self.core.deadline();
                self.core.read(stream.as_mut(), kind, deadline).await
            }
            Io::Prologix(port) => port.read(&mut self.core, kind).await,
        }
    }
}

/// Links through an adapter are made here rather than in `prologix`, so that the arrow between the
/// two goes one way: a link knows the adapter's port, the adapter knows nothing of links.
impl PrologixAdapter {
    /// A link to the instrument at primary address `pad` (0 to 30) and optional secondary
    /// address `sad` (96 to 126) on this adapter's bus. No I/O happens until the link is used.
    ///
    /// `settings` are the instrument's: its write terminator is sent to it (escaped, before
    /// EOI; empty for EOI alone) and its read terminator frames its replies.
    pub fn link(
        &self,
        pad: u8,
        sad: Option<u8>,
        settings: LinkSettings,
    ) -> Result<Link, TransportError> {
        let resource = Resource::Gpib {
            board: self.board(),
            pad,
            sad,
        };
        let invalid = |message: String| TransportError::Open {
            resource: resource.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, message),
        };
        if pad > MAX_PAD {
            return Err(invalid(format!("primary address {pad} is not 0 to 30")));
        }
        if let Some(sad) = sad
            && !SADS.contains(&sad)
        {
            return Err(invalid(format!("secondary address {sad} is not 96 to 126")));
        }
        check_settings(&settings).map_err(|source| TransportError::Open {
            resource: resource.clone(),
            source,
        })?;
        let port = self.port(pad, sad, resource.clone());
        Ok(Link::through_adapter(resource, port, settings))
    }

    /// Like [`PrologixAdapter::link`] for a `GPIB<board>::…::INSTR` resource, which must name
    /// this adapter's board.
    pub fn link_to(
        &self,
        resource: &Resource,
        settings: LinkSettings,
    ) -> Result<Link, TransportError> {
        match resource {
            Resource::Gpib { board, pad, sad } if *board == self.board() => {
                self.link(*pad, *sad, settings)
            }
            _ => Err(TransportError::Open {
                resource: resource.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not an instrument on GPIB board {}", self.board()),
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::testdev::{self, Device, KINDS, Kind, default_pair, settings};
    use crate::transport::{DataBits, FlowControl, Parity, StopBits};
    use std::time::Duration;

    /// One query answered by `reply`; returns what the link made of it.
    async fn exchange(
        device: &mut Device,
        link: &mut Link,
        reply: &[u8],
    ) -> Result<String, TransportError> {
        link.write(b"MEAS?").await.unwrap();
        assert_eq!(device.read_line().await.as_deref(), Some("MEAS?"));
        device.send(reply).await.unwrap();
        link.read_reply().await
    }

    #[tokio::test]
    async fn normal_reply() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            link.write(b"*IDN?").await.unwrap();
            assert_eq!(
                device.read_raw_line().await.unwrap(),
                b"*IDN?\n",
                "{kind:?}"
            );
            device.send(b"ACME,DMM1,42,1.0\n").await.unwrap();
            assert_eq!(
                link.read_reply().await.unwrap(),
                "ACME,DMM1,42,1.0",
                "{kind:?}"
            );
        }
    }

    #[tokio::test]
    async fn reply_split_over_several_writes() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            link.write(b"MEAS?").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("MEAS?"));
            let sender = tokio::spawn(async move {
                // The pauses are the device's pace, not synchronisation: the reply is the same
                // however the pieces coalesce.
                for piece in [&b"+1.000"[..], b"0023E", b"+01", b"\n"] {
                    device.send(piece).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                device
            });
            assert_eq!(
                link.read_reply().await.unwrap(),
                "+1.0000023E+01",
                "{kind:?}"
            );
            sender.await.unwrap();
        }
    }

    #[tokio::test]
    async fn cr_lf_termination() {
        let crlf = LinkSettings {
            write_termination: b"\r\n".to_vec(),
            read_termination: b"\r\n".to_vec(),
            ..settings(5000)
        };
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, crlf.clone()).await;
            link.write(b"READ?").await.unwrap();
            assert_eq!(
                device.read_raw_line().await.unwrap(),
                b"READ?\r\n",
                "{kind:?}"
            );
            device.send(b"1.5\r").await.unwrap();
            device.send(b"\n2\r\r\n").await.unwrap();
            assert_eq!(link.read_reply().await.unwrap(), "1.5", "{kind:?}");
            assert_eq!(link.read_reply().await.unwrap(), "2\r", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn reply_without_terminator_times_out_at_the_deadline() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(200)).await;
            let started = std::time::Instant::now();
            let error = exchange(&mut device, &mut link, b"PARTIAL")
                .await
                .unwrap_err();
            let elapsed = started.elapsed();
            assert!(
                matches!(error, TransportError::Timeout { timeout, received: 7 } if timeout == Duration::from_millis(200)),
                "{kind:?}: {error:?}"
            );
            assert!(
                elapsed >= Duration::from_millis(200),
                "{kind:?}: {elapsed:?}"
            );
            assert!(elapsed < Duration::from_secs(2), "{kind:?}: {elapsed:?}");
            assert!(!error.is_connection_lost());
        }
    }

    #[tokio::test]
    async fn dribbling_device_hits_the_overall_deadline() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(300)).await;
            link.write(b"MEAS?").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("MEAS?"));
            let dribbler = tokio::spawn(async move {
                while device.send(b"1").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            let started = std::time::Instant::now();
            let error = link.read_reply().await.unwrap_err();
            let elapsed = started.elapsed();
            dribbler.abort();
            let TransportError::Timeout { received, .. } = error else {
                panic!("{kind:?}: {error:?}");
            };
            assert!(received >= 2, "{kind:?}: only {received} bytes");
            assert!(
                elapsed >= Duration::from_millis(300),
                "{kind:?}: {elapsed:?}"
            );
            // Every byte resets a per-read timeout; only an overall deadline ends this at all.
            assert!(elapsed < Duration::from_secs(2), "{kind:?}: {elapsed:?}");
        }
    }

    #[tokio::test]
    async fn endless_reply_is_cut_at_the_cap() {
        for kind in KINDS {
            let capped = LinkSettings {
                max_reply: 1000,
                ..settings(5000)
            };
            let (mut device, mut link) = default_pair(kind, capped).await;
            link.write(b"DATA?").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("DATA?"));
            let flood = tokio::spawn(async move {
                let block = [b'x'; 4096];
                while device.send(&block).await.is_ok() {}
            });
            let error = link.read_reply().await.unwrap_err();
            // The stream never ends, so returning at all shows the link stopped reading at the cap.
            assert!(
                matches!(error, TransportError::ReplyTooLong { cap: 1000 }),
                "{kind:?}: {error:?}"
            );
            assert!(!flood.is_finished(), "{kind:?}");
            assert_eq!(link.buffered(), 0, "{kind:?}");
            flood.abort();
        }
    }

    #[tokio::test]
    async fn overlong_reply_then_resync() {
        for kind in KINDS {
            let capped = LinkSettings {
                max_reply: 1000,
                ..settings(5000)
            };
            let (mut device, mut link) = default_pair(kind, capped).await;
            let mut burst = vec![b'x'; 3000];
            burst.extend_from_slice(b"\nok\n");
            let error = exchange(&mut device, &mut link, &burst).await.unwrap_err();
            assert!(
                matches!(error, TransportError::ReplyTooLong { cap: 1000 }),
                "{kind:?}: {error:?}"
            );
            assert_eq!(link.read_reply().await.unwrap(), "ok", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn garbage_is_not_text() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            let error = exchange(&mut device, &mut link, b"\xff\xfe\x00abc\n")
                .await
                .unwrap_err();
            let TransportError::NotText { preview } = &error else {
                panic!("{kind:?}: {error:?}");
            };
            assert_eq!(preview, "\\xff\\xfe\\x00abc", "{kind:?}");
            // The garbage reply was consumed whole; the link carries on.
            assert_eq!(
                exchange(&mut device, &mut link, b"1\n").await.unwrap(),
                "1",
                "{kind:?}"
            );
        }
    }

    #[tokio::test]
    async fn probe_finds_a_vanished_device_without_traffic() {
        for kind in KINDS {
            let (device, mut link) = default_pair(kind, settings(10_000)).await;
            link.probe().await.unwrap();
            drop(device);
            // The hang-up is already in the kernel; the probe must see it without writing.
            let error = link.probe().await.unwrap_err();
            assert!(
                matches!(error, TransportError::Disconnected),
                "{kind:?}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn device_closing_is_a_prompt_disconnect() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(10_000)).await;
            link.write(b"MEAS?").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("MEAS?"));
            drop(device);
            let started = std::time::Instant::now();
            let error = link.read_reply().await.unwrap_err();
            assert!(
                matches!(error, TransportError::Disconnected),
                "{kind:?}: {error:?}"
            );
            assert!(error.is_connection_lost());
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{kind:?}: {:?}",
                started.elapsed()
            );
            // It stays disconnected, answering at once rather than spinning or waiting.
            let error = link.read_reply().await.unwrap_err();
            assert!(
                matches!(error, TransportError::Disconnected),
                "{kind:?}: {error:?}"
            );
            let error = link.write(b"MEAS?").await.unwrap_err();
            assert!(
                matches!(error, TransportError::Disconnected),
                "{kind:?}: {error:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{kind:?}: {:?}",
                started.elapsed()
            );
        }
    }

    #[tokio::test]
    async fn late_reply_is_discarded_before_the_next_query() {
        let (pty_device, pty_resource) = testdev::pty();
        let pty_link = Link::open(&pty_resource, &SerialSettings::default(), settings(150))
            .await
            .unwrap();
        let pairs = [
            (pty_device, pty_link),
            testdev::tcp_pair_with_probe(settings(150)).await,
        ];
        for (mut device, mut link) in pairs {
            link.write(b"Q1").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("Q1"));
            let error = link.read_reply().await.unwrap_err();
            assert!(
                matches!(error, TransportError::Timeout { received: 0, .. }),
                "{error:?}"
            );
            device.send(b"LATE\n").await.unwrap();
            device.wait_link_readable().await;
            link.write(b"Q2").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("Q2"));
            device.send(b"GOOD\n").await.unwrap();
            assert_eq!(
                link.read_reply().await.unwrap(),
                "GOOD",
                "{:?}",
                link.resource()
            );
        }
    }

    #[tokio::test]
    async fn buffered_leftovers_are_discarded_before_the_next_query() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(150)).await;
            // Two lines for one query: the second must not answer the next query.
            assert_eq!(
                exchange(&mut device, &mut link, b"A\nB\n").await.unwrap(),
                "A"
            );
            assert_eq!(
                exchange(&mut device, &mut link, b"C\n").await.unwrap(),
                "C",
                "{kind:?}"
            );
            // A partial reply left by a timeout must not prefix the next one.
            let error = exchange(&mut device, &mut link, b"PART").await.unwrap_err();
            assert!(
                matches!(error, TransportError::Timeout { received: 4, .. }),
                "{error:?}"
            );
            assert_eq!(
                exchange(&mut device, &mut link, b"OK\n").await.unwrap(),
                "OK",
                "{kind:?}"
            );
        }
    }

    #[tokio::test]
    async fn serial_frames_open_on_a_pty() {
        let frames = [
            SerialSettings::default(),
            SerialSettings {
                baud: 4800,
                data_bits: DataBits::Seven,
                parity: Parity::Even,
                stop_bits: StopBits::One,
                flow_control: FlowControl::None,
            },
            SerialSettings {
                baud: 19200,
                data_bits: DataBits::Eight,
                parity: Parity::Odd,
                stop_bits: StopBits::Two,
                flow_control: FlowControl::RtsCts,
            },
        ];
        for serial in frames {
            let (mut device, mut link) = testdev::pair(Kind::Pty, &serial, settings(5000)).await;
            assert_eq!(
                exchange(&mut device, &mut link, b"+1.0\n").await.unwrap(),
                "+1.0",
                "{serial:?}"
            );
        }
    }

    #[tokio::test]
    async fn write_held_off_times_out() {
        // Nobody reads the pty master, so its queue fills and the write cannot complete.
        let (_device, mut link) = default_pair(Kind::Pty, settings(200)).await;
        let started = std::time::Instant::now();
        let error = link.write(&vec![b'x'; 1 << 20]).await.unwrap_err();
        assert!(
            matches!(error, TransportError::WriteTimeout { .. }),
            "{error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn set_timeout_applies_to_the_next_reply() {
        let (mut device, mut link) = default_pair(Kind::Tcp, settings(10_000)).await;
        link.set_timeout(Duration::from_millis(100));
        assert_eq!(link.settings().timeout, Duration::from_millis(100));
        let error = exchange(&mut device, &mut link, b"").await.unwrap_err();
        assert!(
            matches!(error, TransportError::Timeout { timeout, .. } if timeout == Duration::from_millis(100)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn open_failures_name_the_resource() {
        let missing = Resource::Serial {
            path: "/dev/does-not-exist-tsagent".into(),
        };
        let error = Link::open(&missing, &SerialSettings::default(), settings(1000))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, TransportError::Open { resource, .. } if *resource == missing),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "cannot open `ASRL/dev/does-not-exist-tsagent::INSTR`"
        );
        assert!(!error.is_connection_lost());

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let refused = Resource::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let error = Link::open(&refused, &SerialSettings::default(), settings(1000))
            .await
            .unwrap_err();
        let TransportError::Open { source, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);

        let (_device, resource) = testdev::pty();
        let no_terminator = LinkSettings {
            read_termination: Vec::new(),
            ..settings(1000)
        };
        let error = Link::open(&resource, &SerialSettings::default(), no_terminator)
            .await
            .unwrap_err();
        let TransportError::Open { source, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn messages_are_lowercase_without_period() {
        let errors = [
            TransportError::Timeout {
                timeout: Duration::from_millis(300),
                received: 5,
            },
            TransportError::WriteTimeout {
                timeout: Duration::from_secs(5),
            },
            TransportError::ReplyTooLong { cap: 1000 },
            TransportError::Disconnected,
            TransportError::NotText {
                preview: "\\xff".into(),
            },
            TransportError::Io(io::Error::other("boom")),
        ];
        for error in &errors {
            let message = error.to_string();
            assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
            assert!(!message.ends_with('.'), "{message}");
            assert!(!message.contains("boom"), "source repeated: {message}");
        }
        assert_eq!(
            errors[0].to_string(),
            "no complete reply within 300ms (5 bytes received)"
        );
    }
}
