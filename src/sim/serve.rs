//! Putting a [`Dmm`] on a byte stream: line framing, the input cap, realistic timing.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Dmm;

/// Longest input line the meter accepts, bytes (terminator excluded). Longer lines are discarded
/// up to their LF and `-223,"Too much data"` is queued, so a runaway client cannot grow memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Serves one client on `stream` until it closes: reads LF-terminated lines, executes each on
/// `dmm`, writes the replies.
///
/// Returns `Ok(())` at end of input (a partial last line without LF is dropped, as a meter drops
/// an unterminated message) and the I/O error otherwise. With
/// [`realistic_timing`](super::SimParams::realistic_timing) a reply is held back for the
/// integration time of the readings it contains; this needs a tokio runtime with timers.
pub async fn serve_connection<S>(dmm: &mut Dmm, mut stream: S) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut lines = LineAssembler::new(MAX_LINE);
    let mut chunk = vec![0u8; 4096];
    let mut events = Vec::new();
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        lines.push(chunk.get(..n).unwrap_or_default(), &mut events);
        for event in events.drain(..) {
            match event {
                LineEvent::Line(line) => {
                    let reply = dmm.handle_line(&line);
                    let busy = dmm.take_busy();
                    if !busy.is_zero() {
                        tokio::time::sleep(busy).await;
                    }
                    if !reply.is_empty() {
                        stream.write_all(&reply).await?;
                        stream.flush().await?;
                    }
                }
                LineEvent::TooLong => dmm.queue_too_much_data(),
            }
        }
    }
}

/// What the framer found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineEvent {
    /// A complete line, without its LF.
    Line(Vec<u8>),
    /// A line longer than the cap began; it is discarded through its LF.
    TooLong,
}

/// Splits a byte stream into lines ended by any of its terminator bytes (LF by default),
/// holding at most `cap` bytes.
#[derive(Debug)]
pub(crate) struct LineAssembler {
    cap: usize,
    terminators: &'static [u8],
    buf: Vec<u8>,
    /// Inside an over-long line: drop everything up to and including the next terminator.
    discarding: bool,
}

impl LineAssembler {
    pub(crate) fn new(cap: usize) -> Self {
        Self::with_terminators(cap, b"\n")
    }

    /// A framer ending lines at any byte of `terminators` (e.g. CR or LF for instruments that
    /// accept either; CR LF then also yields an empty line, which callers skip).
    pub(crate) fn with_terminators(cap: usize, terminators: &'static [u8]) -> Self {
        Self {
            cap,
            terminators,
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// Ends the current line without a terminator (GPIB EOI): returns it unless it is empty or
    /// being discarded.
    pub(crate) fn flush(&mut self) -> Option<Vec<u8>> {
        let discarding = std::mem::take(&mut self.discarding);
        let line = std::mem::take(&mut self.buf);
        (!discarding && !line.is_empty()).then_some(line)
    }

    /// Forgets a partial line (a new client, a device clear).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    pub(crate) fn push(&mut self, mut data: &[u8], out: &mut Vec<LineEvent>) {
        while !data.is_empty() {
            let terminators = self.terminators;
            let (piece, complete) = match data.iter().position(|b| terminators.contains(b)) {
                Some(i) => {
                    let piece = data.get(..i).unwrap_or_default();
                    data = data.get(i + 1..).unwrap_or_default();
                    (piece, true)
                }
                None => (std::mem::take(&mut data), false),
            };
            if self.discarding {
                self.discarding = !complete;
                continue;
            }
            if self.buf.len().saturating_add(piece.len()) > self.cap {
                self.buf.clear();
                out.push(LineEvent::TooLong);
                self.discarding = !complete;
                continue;
            }
            self.buf.extend_from_slice(piece);
            if complete {
                out.push(LineEvent::Line(std::mem::take(&mut self.buf)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(cap: usize, chunks: &[&[u8]]) -> Vec<LineEvent> {
        let mut a = LineAssembler::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            a.push(c, &mut out);
        }
        out
    }

    fn line(s: &str) -> LineEvent {
        LineEvent::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines_across_chunks() {
        let out = frame(100, &[b"*IDN?\nREA", b"D?\r", b"\n\nSYST:ERR?"]);
        assert_eq!(out, [line("*IDN?"), line("READ?\r"), line("")]);
    }

    #[test]
    fn over_long_line_is_reported_once_and_skipped_through_its_lf() {
        let out = frame(4, &[b"abcd\nabc", b"de", b"fghij", b"kl\nok\n"]);
        assert_eq!(out, [line("abcd"), LineEvent::TooLong, line("ok")]);
        let out = frame(4, &[b"abcdefgh\nok\n"]);
        assert_eq!(out, [LineEvent::TooLong, line("ok")]);
    }

    mod over_a_stream {
        use std::time::{Duration, Instant};

        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

        use crate::sim::{Dmm, ManualClock, SimParams, serve_connection};

        /// A meter served on one end of an in-memory pipe; the test holds the other end.
        fn start(params: SimParams) -> (BufReader<DuplexStream>, tokio::task::JoinHandle<Dmm>) {
            let (client, server) = tokio::io::duplex(1 << 20);
            let task = tokio::spawn(async move {
                let mut dmm = Dmm::with_clock(params, ManualClock::new());
                serve_connection(&mut dmm, server).await.unwrap();
                dmm
            });
            (BufReader::new(client), task)
        }

        async fn reply(client: &mut BufReader<DuplexStream>) -> String {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), client.read_line(&mut line))
                .await
                .expect("no reply")
                .unwrap();
            line
        }

        #[tokio::test]
        async fn answers_each_line_in_order() {
            let (mut client, task) = start(SimParams::default());
            client
                .get_mut()
                .write_all(b"*OPC?\n*RST\n*IDN?\r\nSYST:ERR?\n")
                .await
                .unwrap();
            assert_eq!(reply(&mut client).await, "1\n");
            assert!(reply(&mut client).await.starts_with("TSAGENT,SIM-DMM,"));
            assert_eq!(reply(&mut client).await, "0,\"No error\"\n");
            // A partial line at the end of input is dropped, and the server returns cleanly.
            client.get_mut().write_all(b"READ?").await.unwrap();
            drop(client);
            let dmm = task.await.unwrap();
            assert_eq!(dmm.readings_sent(), 0);
        }

        #[tokio::test]
        async fn an_over_long_line_is_dropped_and_reported_as_223() {
            let (mut client, task) = start(SimParams::default());
            let mut long = vec![b'A'; super::MAX_LINE + 1];
            long.extend_from_slice(b"\n*OPC?\nSYST:ERR?\nSYST:ERR?\n");
            client.get_mut().write_all(&long).await.unwrap();
            assert_eq!(reply(&mut client).await, "1\n");
            assert_eq!(reply(&mut client).await, "-223,\"Too much data\"\n");
            assert_eq!(reply(&mut client).await, "0,\"No error\"\n");
            // A line of exactly the cap is executed (here: an undefined header).
            let mut at_cap = vec![b'B'; super::MAX_LINE];
            at_cap.extend_from_slice(b"\nSYST:ERR?\n");
            client.get_mut().write_all(&at_cap).await.unwrap();
            assert_eq!(
                reply(&mut client).await,
                "-112,\"Program mnemonic too long\"\n"
            );
            drop(client);
            task.await.unwrap();
        }

        #[tokio::test]
        async fn realistic_timing_holds_the_reply_for_the_integration_time() {
            let params = SimParams {
                realistic_timing: true,
                ..SimParams::default()
            };
            let (mut client, task) = start(params);
            let started = Instant::now();
            client.get_mut().write_all(b"READ?\n").await.unwrap();
            reply(&mut client).await;
            // NPLC 10 at 50 Hz.
            assert!(
                started.elapsed() >= Duration::from_millis(200),
                "{:?}",
                started.elapsed()
            );
            drop(client);
            task.await.unwrap();
        }
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_lines(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'a'), Just(b'\r'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            cap in 0usize..40,
        ) {
            let whole = frame(cap, &[&data]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&data[start..c]);
                start = c;
            }
            chunks.push(&data[start..]);
            prop_assert_eq!(frame(cap, &chunks), whole.clone());

            // The reference: split on LF, drop the unterminated tail, cap each line.
            let mut expected: Vec<LineEvent> = data
                .split(|&b| b == b'\n')
                .map(|l| {
                    if l.len() > cap {
                        LineEvent::TooLong
                    } else {
                        LineEvent::Line(l.to_vec())
                    }
                })
                .collect();
            let tail = expected.pop();
            if let Some(LineEvent::TooLong) = tail {
                expected.push(LineEvent::TooLong);
            }
            prop_assert_eq!(whole, expected);
        }
    }
}
