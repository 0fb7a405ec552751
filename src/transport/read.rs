//! The reading engine shared by every kind of link: text replies framed by the read terminator,
//! IEEE 488.2 blocks and raw binary, each within one overall deadline, plus the discarding of
//! stale input. It works on whatever stream it is handed, so a direct link and a link through a
//! shared GPIB adapter frame replies the same way.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::LinkSettings;
use super::Resource;
use super::block::{self, BlockError, Header};
use super::buffer::{CHUNK, Frame, ReplyBuffer, preview};
use super::error::{TransportError, classify};
use super::stream::Stream;

/// Most stale input discarded before one write; a device that streams faster than this is
/// drained is not waited for (the next reply is still framed correctly, just possibly late).
const MAX_STALE: usize = 64 * 1024;

/// What one read operation expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadKind {
    /// A reply ended by the read terminator.
    Reply,
    /// An IEEE 488.2 block of at most `cap` bytes.
    Block {
        /// Longest payload accepted.
        cap: usize,
    },
    /// Exactly `len` raw bytes, optionally followed by the read terminator.
    Exact {
        /// Bytes to read.
        len: usize,
        /// Whether the read terminator follows them.
        terminated: bool,
    },
}

/// Framing state and settings of one link, apart from the stream it reads.
pub(super) struct Core {
    pub(super) settings: LinkSettings,
    pub(super) buffer: ReplyBuffer,
    /// Read space, on the heap so that the futures of the link's operations stay small.
    scratch: Box<[u8]>,
}

/// Runs `future` until `deadline` (none: no limit); `None` when the deadline passed first.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// Grows `bytes` geometrically towards `needed` more bytes, never past `limit` in all, so
/// memory follows the data that actually arrives rather than what a header claims.
fn reserve_towards(bytes: &mut Vec<u8>, needed: usize, limit: usize) {
    let wanted = bytes.len().saturating_add(needed);
    if wanted > bytes.capacity() {
        let target = bytes
            .capacity()
            .saturating_mul(2)
            .max(wanted)
            .min(limit.max(wanted));
        bytes.reserve_exact(target.saturating_sub(bytes.len()));
    }
}

impl Core {
    /// A core with empty buffers; the settings must have passed
    /// [`check_settings`](super::link::check_settings).
    pub(super) fn new(settings: LinkSettings) -> Self {
        Self {
            settings,
            buffer: ReplyBuffer::default(),
            scratch: vec![0; CHUNK].into_boxed_slice(),
        }
    }

    /// One deadline from now for a whole operation; a timeout too large to add means "no
    /// deadline" rather than a panic.
    pub(super) fn deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(self.settings.timeout)
    }

    /// Writes `frame` whole and flushes, within the link's timeout.
    pub(super) async fn send(
        &self,
        stream: &mut dyn Stream,
        frame: &[u8],
    ) -> Result<(), TransportError> {
        let send = async {
            stream.write_all(frame).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.settings.timeout, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(classify(error)),
            Err(_) => Err(TransportError::WriteTimeout {
                timeout: self.settings.timeout,
            }),
        }
    }

    /// Drops buffered input and whatever the stream can deliver without waiting.
    pub(super) async fn discard_stale(
        &mut self,
        stream: &mut dyn Stream,
        resource: &Resource,
    ) -> Result<(), TransportError> {
        let mut stale = self.buffer.take_all();
        // Let the runtime poll its I/O driver once, so readiness reflects what the kernel holds
        // now rather than what it held when the driver last ran.
        tokio::task::yield_now().await;
        let mut outcome = Ok(());
        while stale.len() < MAX_STALE {
            let polled = poll_fn(|cx| {
                let mut buf = ReadBuf::new(&mut self.scratch);
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
                Some(Ok(n)) => stale.extend_from_slice(self.scratch.get(..n).unwrap_or_default()),
                Some(Err(error)) => {
                    outcome = Err(classify(error));
                    break;
                }
            }
        }
        if !stale.is_empty() {
            tracing::warn!(
                %resource,
                bytes = stale.len(),
                preview = %preview(&stale),
                "discarding stale input"
            );
            self.buffer
                .discarded(&stale, &self.settings.read_termination);
        }
        outcome
    }

    /// Reads what `kind` expects within `deadline`.
    pub(super) async fn read(
        &mut self,
        stream: &mut dyn Stream,
        kind: ReadKind,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, TransportError> {
        match kind {
            ReadKind::Reply => self.reply(stream, deadline).await,
            ReadKind::Block { cap } => self.block(stream, cap, deadline).await,
            ReadKind::Exact { len, terminated } => {
                self.exact(stream, len, terminated, deadline).await
            }
        }
    }

    /// One reply without its terminator; bytes after the terminator stay buffered.
    async fn reply(
        &mut self,
        stream: &mut dyn Stream,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, TransportError> {
        self.until_terminator(stream, self.settings.max_reply, deadline, 0)
            .await
    }

    /// Bytes up to the read terminator, at most `cap` of them.
    async fn until_terminator(
        &mut self,
        stream: &mut dyn Stream,
        cap: usize,
        deadline: Option<Instant>,
        before: usize,
    ) -> Result<Vec<u8>, TransportError> {
        loop {
            let terminator = self.settings.read_termination.as_slice();
            match self.buffer.next_frame(terminator, cap) {
                // Bytes buffered by a binary read may hold a whole reply longer than the cap;
                // it has been consumed with its terminator, so no resynchronisation is needed.
                Some(Frame::Reply(reply)) if reply.len() > cap => {
                    return Err(TransportError::ReplyTooLong { cap });
                }
                Some(Frame::Reply(reply)) => return Ok(reply),
                Some(Frame::TooLong) => return Err(TransportError::ReplyTooLong { cap }),
                None => {}
            }
            // Reading no more than the room left keeps memory within `cap` + terminator; the
            // room is never 0 here because a full buffer always yields a frame above.
            let room = self.buffer.room(terminator, cap);
            self.fill(stream, room, cap, deadline, before).await?;
        }
    }

    /// Reads once from the stream into the buffer, at most `room` bytes; `cap` is the longest
    /// reply being framed, which bounds how far the buffer grows ahead of need.
    ///
    /// `before` counts bytes of the current reply already taken out of the buffer, for the
    /// `received` of a timeout.
    async fn fill(
        &mut self,
        stream: &mut dyn Stream,
        room: usize,
        cap: usize,
        deadline: Option<Instant>,
        before: usize,
    ) -> Result<(), TransportError> {
        // A read of zero bytes would look like end of stream, so always ask for at least one.
        let room = room.max(1).min(self.scratch.len());
        let (into, _) = self.scratch.split_at_mut(room);
        let Some(result) = within(deadline, stream.read(into)).await else {
            return Err(TransportError::Timeout {
                timeout: self.settings.timeout,
                received: before.saturating_add(self.buffer.len()),
            });
        };
        match result {
            Ok(0) => {
                self.buffer.take_all();
                Err(TransportError::Disconnected)
            }
            Ok(n) => {
                let received = self.scratch.get(..n).unwrap_or_default();
                self.buffer
                    .push(received, &self.settings.read_termination, cap);
                Ok(())
            }
            Err(error) => Err(classify(error)),
        }
    }

    /// Skips the buffered or arriving tail of an abandoned reply, so what follows starts a new
    /// one.
    async fn settle(
        &mut self,
        stream: &mut dyn Stream,
        deadline: Option<Instant>,
    ) -> Result<(), TransportError> {
        while !self.buffer.settle(&self.settings.read_termination) {
            self.fill(stream, CHUNK, self.settings.max_reply, deadline, 0)
                .await?;
        }
        Ok(())
    }

    /// One IEEE 488.2 block: leading whitespace, the header, the payload and (for a definite
    /// block) the read terminator.
    async fn block(
        &mut self,
        stream: &mut dyn Stream,
        cap: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, TransportError> {
        self.settle(stream, deadline).await?;
        // Bytes of this reply taken out of the buffer so far.
        let mut taken = 0usize;
        let header = loop {
            let held = self.buffer.len();
            self.buffer.skip_whitespace();
            taken = taken.saturating_add(held - self.buffer.len());
            match block::parse_header(self.buffer.bytes(), cap) {
                Ok(Some(header)) => {
                    self.buffer.consume(header.header_len());
                    taken = taken.saturating_add(header.header_len());
                    break header;
                }
                Ok(None) => {
                    self.fill(stream, CHUNK, self.settings.max_reply, deadline, taken)
                        .await?;
                }
                Err(error) => {
                    self.buffer.abandon(&self.settings.read_termination);
                    return Err(match error {
                        BlockError::TooLong { claimed, cap } => {
                            TransportError::BlockTooLong { claimed, cap }
                        }
                        other => TransportError::BadBlock {
                            reason: other.to_string(),
                        },
                    });
                }
            }
        };
        match header {
            Header::Definite { len, .. } => {
                let payload = self.payload(stream, len, deadline, taken).await?;
                self.terminator_after(stream, len, deadline, taken.saturating_add(len))
                    .await?;
                Ok(payload)
            }
            // With no length to go by, the block ends at the read terminator. On a serial or
            // TCP link (and through a Prologix adapter, which is told not to mark EOI) the host
            // never sees EOI, so a payload that contains the terminator is cut short there.
            Header::Indefinite => self.until_terminator(stream, cap, deadline, taken).await,
        }
    }

    /// Exactly `len` raw bytes, then the read terminator if `terminated`.
    async fn exact(
        &mut self,
        stream: &mut dyn Stream,
        len: usize,
        terminated: bool,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, TransportError> {
        self.settle(stream, deadline).await?;
        let payload = self.payload(stream, len, deadline, 0).await?;
        if terminated {
            self.terminator_after(stream, len, deadline, len).await?;
        }
        Ok(payload)
    }

    /// Exactly `len` bytes, first from the buffer, then straight from the stream without ever
    /// reading past them. Terminator bytes among them are data.
    async fn payload(
        &mut self,
        stream: &mut dyn Stream,
        len: usize,
        deadline: Option<Instant>,
        before: usize,
    ) -> Result<Vec<u8>, TransportError> {
        let mut payload = Vec::new();
        reserve_towards(&mut payload, self.buffer.len().min(len), len);
        self.buffer.take_into(&mut payload, len);
        while payload.len() < len {
            let want = (len - payload.len()).min(self.scratch.len());
            let (into, _) = self.scratch.split_at_mut(want);
            let Some(result) = within(deadline, stream.read(into)).await else {
                return Err(TransportError::Timeout {
                    timeout: self.settings.timeout,
                    received: before.saturating_add(payload.len()),
                });
            };
            match result {
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(n) => {
                    let received = self.scratch.get(..n).unwrap_or_default();
                    reserve_towards(&mut payload, n, len);
                    payload.extend_from_slice(received);
                }
                Err(error) => return Err(classify(error)),
            }
        }
        Ok(payload)
    }

    /// Consumes the read terminator that must follow `len` bytes of binary data.
    ///
    /// Anything else there means the length was wrong: the rest of the reply is abandoned and
    /// [`TransportError::BadBlock`] returned. If the deadline passes with the terminator still
    /// (partly) missing, the data is complete by its length, so it is accepted and a warning
    /// logged; a late terminator is dropped as stale input before the next write.
    async fn terminator_after(
        &mut self,
        stream: &mut dyn Stream,
        len: usize,
        deadline: Option<Instant>,
        before: usize,
    ) -> Result<(), TransportError> {
        loop {
            let terminator = self.settings.read_termination.as_slice();
            let held = self.buffer.bytes();
            let seen = held.len().min(terminator.len());
            let (Some(got), Some(want)) = (held.get(..seen), terminator.get(..seen)) else {
                return Ok(());
            };
            if got != want {
                let reason = format!(
                    "{len} bytes of data are followed by `{}`, not the read terminator",
                    preview(got)
                );
                self.buffer.abandon(terminator);
                return Err(TransportError::BadBlock { reason });
            }
            if seen == terminator.len() {
                self.buffer.consume(seen);
                return Ok(());
            }
            let max_reply = self.settings.max_reply;
            match self.fill(stream, CHUNK, max_reply, deadline, before).await {
                Ok(()) => {}
                Err(TransportError::Timeout { .. }) => {
                    tracing::warn!(
                        len,
                        "no read terminator after binary data within the deadline; data accepted"
                    );
                    self.buffer.consume(seen);
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportError;
    use crate::transport::block::encode_definite;
    use crate::transport::link::Link;
    use crate::transport::testdev::{self, Device, KINDS, Kind, default_pair, settings};
    use proptest::prelude::*;
    use std::time::Duration;

    /// Like [`pair`], with [`Device::wait_link_readable`] available on both kinds.
    async fn probed_pair(kind: Kind, settings: LinkSettings) -> (Device, Link) {
        match kind {
            Kind::Pty => default_pair(kind, settings).await,
            Kind::Tcp => testdev::tcp_pair_with_probe(settings).await,
        }
    }

    /// Sends a query, lets the device answer `reply`, and reads a block of at most `cap`.
    async fn block_exchange(
        device: &mut Device,
        link: &mut Link,
        reply: &[u8],
        cap: usize,
    ) -> Result<Vec<u8>, TransportError> {
        link.write(b"DATA?").await.unwrap();
        assert_eq!(device.read_line().await.as_deref(), Some("DATA?"));
        device.send(reply).await.unwrap();
        link.read_block(cap).await
    }

    /// A payload full of the bytes a text reader would stop at.
    fn awkward(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| [b'\n', b'\r', b'#', 0, 0xff][i % 5])
            .collect()
    }

    fn terminated(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.push(b'\n');
        bytes
    }

    #[tokio::test]
    async fn definite_block_with_terminators_inside() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            let payload = awkward(3000);
            let mut reply = b" \r\n".to_vec();
            reply.extend(terminated(encode_definite(&payload).unwrap()));
            reply.extend_from_slice(b"after\n");
            let got = block_exchange(&mut device, &mut link, &reply, 4096).await;
            assert_eq!(got.unwrap(), payload, "{kind:?}");
            // The terminator was consumed; what followed it is the next reply.
            assert_eq!(link.read_reply().await.unwrap(), "after", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn block_larger_than_max_reply_but_within_cap() {
        let small = LinkSettings {
            max_reply: 10,
            ..settings(5000)
        };
        let (mut device, mut link) = default_pair(Kind::Tcp, small).await;
        let payload = awkward(100_000);
        let reply = terminated(encode_definite(&payload).unwrap());
        let got = block_exchange(&mut device, &mut link, &reply, 100_000).await;
        assert_eq!(got.unwrap(), payload);
    }

    #[tokio::test]
    async fn block_dribbled_in_pieces() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            link.write(b"DATA?").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("DATA?"));
            let payload = awkward(40);
            let reply = terminated(encode_definite(&payload).unwrap());
            let sender = tokio::spawn(async move {
                // The pauses are the device's pace, not synchronisation.
                for piece in reply.chunks(7) {
                    device.send(piece).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                device
            });
            assert_eq!(link.read_block(100).await.unwrap(), payload, "{kind:?}");
            sender.await.unwrap();
        }
    }

    #[tokio::test]
    async fn indefinite_block_ends_at_the_terminator() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            let got = block_exchange(&mut device, &mut link, b"#0\x01\x02\r\x03\n", 10).await;
            assert_eq!(got.unwrap(), b"\x01\x02\r\x03", "{kind:?}");
            let error = block_exchange(&mut device, &mut link, b"#0abcdefghijkl\nok\n", 10)
                .await
                .unwrap_err();
            assert!(
                matches!(error, TransportError::ReplyTooLong { cap: 10 }),
                "{kind:?}: {error:?}"
            );
            assert_eq!(link.read_reply().await.unwrap(), "ok", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn claimed_length_over_the_cap_then_resync() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            let error = block_exchange(&mut device, &mut link, b"#9999999999abc\n", 1 << 20)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    error,
                    TransportError::BlockTooLong {
                        claimed: 999_999_999,
                        cap: 1_048_576
                    }
                ),
                "{kind:?}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                "block of 999999999 bytes exceeds the cap of 1048576"
            );
            // Refused at once, before any payload: the rest of that reply is skipped.
            assert_eq!(link.buffered(), 0, "{kind:?}");
            device.send(b"next\n").await.unwrap();
            assert_eq!(link.read_reply().await.unwrap(), "next", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn bad_headers_then_resync() {
        let cases: [(&[u8], &str); 3] = [
            (b"+1.0E+00\n", "expected `#` to start a block, found `+`"),
            (b"#A12\n", "block digit count `A` is not a decimal digit"),
            (b"#21x\n", "block length digit `x` is not a decimal digit"),
        ];
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            for (reply, reason) in cases {
                let error = block_exchange(&mut device, &mut link, reply, 100)
                    .await
                    .unwrap_err();
                let TransportError::BadBlock { reason: got } = &error else {
                    panic!("{kind:?}: {error:?}");
                };
                assert_eq!(got, reason, "{kind:?}");
                assert!(!error.is_connection_lost());
                // The same link reads a good block straight after.
                let good = terminated(encode_definite(b"ok").unwrap());
                let got = block_exchange(&mut device, &mut link, &good, 100).await;
                assert_eq!(got.unwrap(), b"ok", "{kind:?}");
            }
        }
    }

    #[tokio::test]
    async fn wrong_length_is_a_bad_block_then_resync() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            // Claims 4 bytes, sends 8: what follows the 4 is not the terminator.
            let error = block_exchange(&mut device, &mut link, b"#14abcdefgh\nnext\n", 100)
                .await
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                "malformed binary reply: 4 bytes of data are followed by `e`, not the read terminator",
                "{kind:?}"
            );
            assert_eq!(link.read_reply().await.unwrap(), "next", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn missing_terminator_after_a_block_is_tolerated_at_the_deadline() {
        for kind in KINDS {
            let (mut device, mut link) = probed_pair(kind, settings(200)).await;
            let started = std::time::Instant::now();
            let got = block_exchange(&mut device, &mut link, b"#13abc", 100).await;
            assert_eq!(got.unwrap(), b"abc", "{kind:?}");
            assert!(started.elapsed() >= Duration::from_millis(200), "{kind:?}");
            // A late terminator is stale input to the next query, not an empty reply.
            device.send(b"\n").await.unwrap();
            device.wait_link_readable().await;
            let got = block_exchange(&mut device, &mut link, b"#12ok\n", 100).await;
            assert_eq!(got.unwrap(), b"ok", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn block_timeouts_and_disconnects() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(200)).await;
            let error = block_exchange(&mut device, &mut link, b"  #15ab", 100)
                .await
                .unwrap_err();
            assert!(
                matches!(error, TransportError::Timeout { received: 7, .. }),
                "{kind:?}: {error:?}"
            );
            let error = block_exchange(&mut device, &mut link, b"#2", 100)
                .await
                .unwrap_err();
            assert!(
                matches!(error, TransportError::Timeout { received: 2, .. }),
                "{kind:?}: {error:?}"
            );
            link.write(b"DATA?").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("DATA?"));
            device.send(b"#15ab").await.unwrap();
            drop(device);
            let error = link.read_block(100).await.unwrap_err();
            assert!(error.is_connection_lost(), "{kind:?}: {error:?}");
        }
    }

    #[tokio::test]
    async fn raw_binary_readings() {
        for kind in KINDS {
            let (mut device, mut link) = default_pair(kind, settings(5000)).await;
            // Values whose big-endian bytes include LF and CR.
            let values = [f64::from_bits(0x0a0d_0a0d_0a0d_0a0d), 10.000_002_3, -0.0];
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
            link.write(b"RMEM 1,3").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("RMEM 1,3"));
            device.send(&bytes).await.unwrap();
            device.send(b"\nrest\n").await.unwrap();
            let got = link.read_exact(24, true).await.unwrap();
            let decoded: Vec<u64> = got
                .chunks(8)
                .map(|c| f64::from_be_bytes(c.try_into().unwrap()).to_bits())
                .collect();
            let expected: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            assert_eq!(decoded, expected, "{kind:?}");
            assert_eq!(link.read_reply().await.unwrap(), "rest", "{kind:?}");

            // Without a terminator, what follows stays for the next read.
            link.write(b"ONE").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("ONE"));
            device.send(&1.5f64.to_be_bytes()).await.unwrap();
            device.send(b"x\n").await.unwrap();
            let got = link.read_exact(8, false).await.unwrap();
            assert_eq!(f64::from_be_bytes(got.try_into().unwrap()), 1.5);
            assert_eq!(link.read_reply().await.unwrap(), "x", "{kind:?}");

            // Too many bytes for the count: a bad length, then resync.
            link.write(b"TWO").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("TWO"));
            device.send(b"12345678AB\nok\n").await.unwrap();
            let error = link.read_exact(8, true).await.unwrap_err();
            assert!(
                matches!(error, TransportError::BadBlock { .. }),
                "{error:?}"
            );
            assert_eq!(link.read_reply().await.unwrap(), "ok", "{kind:?}");
            assert_eq!(link.read_exact(0, false).await.unwrap(), b"");
        }
    }

    #[tokio::test]
    async fn raw_read_skips_the_tail_of_an_overlong_reply() {
        let capped = LinkSettings {
            max_reply: 8,
            ..settings(5000)
        };
        let (mut device, mut link) = default_pair(Kind::Tcp, capped).await;
        link.write(b"Q").await.unwrap();
        assert_eq!(device.read_line().await.as_deref(), Some("Q"));
        device.send(b"0123456789ABCDEF").await.unwrap();
        let error = link.read_reply().await.unwrap_err();
        assert!(
            matches!(error, TransportError::ReplyTooLong { cap: 8 }),
            "{error:?}"
        );
        device.send(b"tail\nWXYZ").await.unwrap();
        assert_eq!(link.read_exact(4, false).await.unwrap(), b"WXYZ");
    }

    #[tokio::test]
    async fn clear_drops_pending_input() {
        for kind in KINDS {
            let (mut device, mut link) = probed_pair(kind, settings(5000)).await;
            link.write(b"Q").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("Q"));
            device.send(b"one\ntwo\n").await.unwrap();
            assert_eq!(link.read_reply().await.unwrap(), "one");
            device.send(b"three\n").await.unwrap();
            device.wait_link_readable().await;
            link.clear().await.unwrap();
            device.send(b"four\n").await.unwrap();
            assert_eq!(link.read_reply().await.unwrap(), "four", "{kind:?}");
        }
    }

    #[test]
    fn reserve_follows_the_data() {
        let mut bytes = Vec::new();
        reserve_towards(&mut bytes, 10, 1 << 30);
        assert!(bytes.capacity() >= 10 && bytes.capacity() < 1000);
        bytes.extend_from_slice(&[0; 10]);
        reserve_towards(&mut bytes, 10, 15);
        assert!(bytes.capacity() >= 20, "never less than needed");
        let mut bytes = vec![0u8; 100];
        reserve_towards(&mut bytes, 1, 120);
        assert!(bytes.capacity() <= 120, "{}", bytes.capacity());
    }

    #[tokio::test]
    async fn within_honours_the_deadline() {
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(within(Some(soon), std::future::pending::<()>()).await, None);
        assert_eq!(within(None, async { 5 }).await, Some(5));
    }

    /// Reads one block from `stream` delivered in `pieces` over an in-memory pipe.
    fn read_block_in_pieces(
        stream: &[u8],
        cuts: &[prop::sample::Index],
        cap: usize,
        timeout_ms: u64,
    ) -> Result<(Vec<u8>, String), TransportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (near, mut far) = tokio::io::duplex(64);
            let mut link = Link::from_parts(
                Resource::Tcp {
                    host: "127.0.0.1".into(),
                    port: 1,
                },
                Box::new(near),
                settings(timeout_ms),
            );
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            at.push(stream.len());
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in at {
                pieces.push(stream[start..cut].to_vec());
                start = cut;
            }
            let writer = tokio::spawn(async move {
                for piece in pieces {
                    if far.write_all(&piece).await.is_err() {
                        return;
                    }
                }
                // Keep the pipe open so the reads below end by framing, not by EOF.
                std::future::pending::<()>().await;
            });
            let result = async {
                let block = link.read_block(cap).await?;
                let next = link.read_reply().await?;
                Ok((block, next))
            }
            .await;
            writer.abort();
            result
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn blocks_do_not_depend_on_chunking(
            payload in prop::collection::vec(any::<u8>(), 0..300),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut stream = terminated(encode_definite(&payload).unwrap());
            stream.extend_from_slice(b"next\n");
            let (block, next) = read_block_in_pieces(&stream, &cuts, 300, 5000).unwrap();
            prop_assert_eq!(block, payload);
            prop_assert_eq!(next, "next");
        }

        #[test]
        fn arbitrary_replies_never_panic(
            junk in prop::collection::vec(prop_oneof![Just(b'#'), b'0'..=b'9', any::<u8>()], 0..40),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            // Whatever arrives, the read ends in data or a typed error; a short deadline ends
            // the cases whose header claims more than is sent.
            let mut stream = junk.clone();
            stream.extend_from_slice(b"\nnext\n");
            if let Err(error) = read_block_in_pieces(&stream, &cuts, 50, 20) {
                prop_assert!(
                    matches!(
                        error,
                        TransportError::BadBlock { .. }
                            | TransportError::BlockTooLong { .. }
                            | TransportError::ReplyTooLong { .. }
                            | TransportError::NotText { .. }
                            | TransportError::Timeout { .. }
                    ),
                    "{error:?}"
                );
            }
        }
    }
}
