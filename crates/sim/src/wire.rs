//! What goes on the wire: serial frames and the wire time of `--baud` pacing, and the output a
//! simulated instrument emits (possibly altered by a fault) on its way to a stream.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::id::SpecError;
use crate::reply::Reply;

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// A serial character frame: start bit, data bits, optional parity bit, stop bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Data bits, 5 to 8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl Frame {
    /// 8 data bits, no parity, 1 stop bit: the default of nearly every instrument.
    pub const EIGHT_N_ONE: Frame = Frame {
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
    };

    /// 7 data bits, even parity, 1 stop bit: the Vaisala PTU300 default.
    pub const SEVEN_E_ONE: Frame = Frame {
        data_bits: 7,
        parity: Parity::Even,
        stop_bits: 1,
    };

    /// Bits on the line per character: start + data + parity + stop.
    pub fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        1 + u32::from(self.data_bits) + parity + u32::from(self.stop_bits)
    }
}

impl Default for Frame {
    fn default() -> Self {
        Self::EIGHT_N_ONE
    }
}

impl fmt::Display for Frame {
    /// `8N1`, `7E1`, `8O2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        write!(f, "{}{}{}", self.data_bits, parity, self.stop_bits)
    }
}

impl FromStr for Frame {
    type Err = SpecError;

    /// `8N1`, `7E1`, `8o2` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SpecError::Frame { text: s.to_owned() };
        let b = s.as_bytes();
        let [data, parity, stop] = b else {
            return Err(bad());
        };
        let data_bits = match data {
            b'5'..=b'8' => data - b'0',
            _ => return Err(bad()),
        };
        let parity = match parity.to_ascii_uppercase() {
            b'N' => Parity::None,
            b'E' => Parity::Even,
            b'O' => Parity::Odd,
            _ => return Err(bad()),
        };
        let stop_bits = match stop {
            b'1' | b'2' => stop - b'0',
            _ => return Err(bad()),
        };
        Ok(Frame {
            data_bits,
            parity,
            stop_bits,
        })
    }
}

/// How long `bytes` characters take on a serial line at `baud` with `frame`.
///
/// Exact to the nanosecond (rounded down); zero for a baud rate of 0, which means "no pacing".
pub fn wire_time(bytes: u64, baud: u32, frame: Frame) -> Duration {
    if baud == 0 {
        return Duration::ZERO;
    }
    let bits = u128::from(bytes) * u128::from(frame.bits_per_char());
    let nanos = bits * 1_000_000_000 / u128::from(baud);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Holds output back to the wire time of a serial line: each write completes when its last
/// character would have left the UART.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    baud: u32,
    frame: Frame,
    /// When the line is free again.
    free_at: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(baud: u32, frame: Frame) -> Self {
        Self {
            baud,
            frame,
            free_at: None,
        }
    }

    /// Characters per write: about 10 ms of line time, so pacing is smooth but not one syscall
    /// per byte.
    fn chunk_len(&self) -> usize {
        let per_second = self.baud / self.frame.bits_per_char().max(1);
        usize::try_from(per_second / 100).unwrap_or(1).max(1)
    }
}

/// Pattern a flood repeats: it looks like a runaway reading stream and holds no terminator.
const FLOOD_PATTERN: &[u8; 16] = b"+9.99999999E+00,";

/// Piece size when generating a flood, a multiple of the pattern length.
const FLOOD_PIECE: usize = 4096 * FLOOD_PATTERN.len();

/// A part of an instrument's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Bytes; `end` asserts GPIB EOI with the last one.
    Bytes { data: Vec<u8>, end: bool },
    /// `len` bytes of filler without a terminator, generated as they are sent.
    Fill { len: u64 },
}

impl Chunk {
    /// True when [`take_piece`](Chunk::take_piece) has nothing more to give.
    pub(crate) fn is_exhausted(&self) -> bool {
        match self {
            Chunk::Bytes { data, end } => data.is_empty() && !*end,
            Chunk::Fill { len } => *len == 0,
        }
    }

    /// Takes up to one piece of bytes off the front: the bytes and whether EOI follows them.
    /// Returns `None` when the chunk is used up.
    pub(crate) fn take_piece(&mut self) -> Option<(Vec<u8>, bool)> {
        match self {
            Chunk::Bytes { data, end } => {
                if data.is_empty() && !*end {
                    return None;
                }
                let out = std::mem::take(data);
                let eoi = std::mem::replace(end, false);
                Some((out, eoi))
            }
            Chunk::Fill { len } => {
                if *len == 0 {
                    return None;
                }
                let n = usize::try_from(*len).unwrap_or(usize::MAX).min(FLOOD_PIECE);
                *len -= n as u64;
                let piece = FLOOD_PATTERN.iter().copied().cycle().take(n).collect();
                Some((piece, false))
            }
        }
    }
}

/// What an instrument sends for one message once faults have had their say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Emission {
    /// Time before the first byte (integration, a slow-reply fault).
    pub(crate) delay: Duration,
    pub(crate) chunks: Vec<Chunk>,
}

impl Emission {
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.iter().all(|c| match c {
            Chunk::Bytes { data, .. } => data.is_empty(),
            Chunk::Fill { len } => *len == 0,
        })
    }
}

impl From<Reply> for Emission {
    fn from(reply: Reply) -> Self {
        Emission {
            delay: reply.delay,
            chunks: reply
                .transfers
                .into_iter()
                .map(|t| Chunk::Bytes {
                    data: t.bytes,
                    end: t.end,
                })
                .collect(),
        }
    }
}

/// Writes `emission` to `stream` after its delay, paced when `pacer` is set.
pub(crate) async fn write_emission<S>(
    stream: &mut S,
    emission: Emission,
    pacer: &mut Option<Pacer>,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if !emission.delay.is_zero() {
        tokio::time::sleep(emission.delay).await;
    }
    for mut chunk in emission.chunks {
        while let Some((piece, _eoi)) = chunk.take_piece() {
            write_paced(stream, &piece, pacer).await?;
        }
    }
    stream.flush().await
}

/// Writes `data`, holding each piece back until its wire time has passed.
///
/// Due times accumulate from one start, so lateness of the timer (which wakes on whole
/// milliseconds) does not add up piece by piece; the last piece is released by
/// [`until`] at its due time, so the reply ends when the line would have delivered it.
pub(crate) async fn write_paced<S>(
    stream: &mut S,
    data: &[u8],
    pacer: &mut Option<Pacer>,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let Some(p) = pacer else {
        return stream.write_all(data).await;
    };
    let now = Instant::now();
    let mut due = p.free_at.filter(|t| *t > now).unwrap_or(now);
    let pieces = data.chunks(p.chunk_len());
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.enumerate() {
        due += wire_time(piece.len() as u64, p.baud, p.frame);
        p.free_at = Some(due);
        if i == last {
            until(due).await;
        } else {
            tokio::time::sleep_until(due).await;
        }
        stream.write_all(piece).await?;
    }
    Ok(())
}

/// Holds a received message back by its own wire time: the host's bytes reach the simulator at
/// once, but on a real line the last of them arrives only after every character has been sent.
pub(crate) async fn pace_input(received: usize, pacer: &Option<Pacer>) {
    if let Some(p) = pacer {
        until(Instant::now() + wire_time(received as u64, p.baud, p.frame)).await;
    }
}

/// Margin before a due time at which the timer hands over to yielding: tokio's timer has
/// millisecond resolution and may wake up to a millisecond or so late.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Waits until `due`: on the timer for most of the wait, then by yielding to the runtime for
/// the last couple of milliseconds, so the wait ends close to `due` rather than up to a timer
/// tick after it (at 9600 baud a character takes about 1 ms).
async fn until(due: Instant) {
    if let Some(early) = due.checked_sub(TIMER_SLACK)
        && early > Instant::now()
    {
        tokio::time::sleep_until(early).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_per_char_counts_start_parity_and_stop() {
        assert_eq!(Frame::EIGHT_N_ONE.bits_per_char(), 10);
        assert_eq!(Frame::SEVEN_E_ONE.bits_per_char(), 10);
        assert_eq!("8E2".parse::<Frame>().unwrap().bits_per_char(), 12);
        assert_eq!("7N1".parse::<Frame>().unwrap().bits_per_char(), 9);
    }

    #[test]
    fn wire_time_examples() {
        // 960 characters per second at 9600 8N1.
        assert_eq!(
            wire_time(960, 9600, Frame::EIGHT_N_ONE),
            Duration::from_secs(1)
        );
        assert_eq!(
            wire_time(1, 9600, Frame::EIGHT_N_ONE),
            Duration::from_nanos(1_041_666)
        );
        // A Vaisala line at 4800 7E1: 38 characters + CR LF.
        assert_eq!(
            wire_time(40, 4800, Frame::SEVEN_E_ONE),
            Duration::from_nanos(83_333_333)
        );
        assert_eq!(
            wire_time(12, 1200, "8E2".parse().unwrap()),
            Duration::from_millis(120)
        );
        assert_eq!(wire_time(0, 9600, Frame::EIGHT_N_ONE), Duration::ZERO);
        assert_eq!(wire_time(100, 0, Frame::EIGHT_N_ONE), Duration::ZERO);
        assert_eq!(
            wire_time(u64::MAX, 1, Frame::EIGHT_N_ONE),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn frame_parse_errors() {
        for bad in ["", "8N", "9N1", "8X1", "8N3", "8N1 ", "é"] {
            assert!(bad.parse::<Frame>().is_err(), "{bad}");
        }
        assert_eq!("7e1".parse::<Frame>().unwrap(), Frame::SEVEN_E_ONE);
    }

    #[test]
    fn flood_chunk_yields_exactly_its_length_without_terminators() {
        let mut c = Chunk::Fill {
            len: FLOOD_PIECE as u64 * 2 + 5,
        };
        let mut total = 0;
        while let Some((piece, eoi)) = c.take_piece() {
            assert!(!eoi);
            assert!(!piece.contains(&b'\n') && !piece.contains(&b'\r'));
            total += piece.len();
        }
        assert_eq!(total, FLOOD_PIECE * 2 + 5);
    }

    #[tokio::test]
    async fn paced_writes_take_at_least_the_wire_time() {
        // 960 characters at 96 000 baud 8N1 are 100 ms of line time; only the lower bound is
        // checked, a loaded machine may take longer.
        let mut pacer = Some(Pacer::new(96_000, Frame::EIGHT_N_ONE));
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        write_paced(&mut out, &[b'x'; 960], &mut pacer)
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out.len(), 960);
    }

    proptest! {
        #[test]
        fn frame_display_round_trips(data in 5u8..=8, parity in 0..3, stop in 1u8..=2) {
            let frame = Frame {
                data_bits: data,
                parity: [Parity::None, Parity::Even, Parity::Odd][parity as usize],
                stop_bits: stop,
            };
            prop_assert_eq!(frame.to_string().parse::<Frame>().unwrap(), frame);
        }

        #[test]
        fn frame_parse_never_panics(s in "\\PC{0,6}") {
            let _ = s.parse::<Frame>();
        }

        #[test]
        fn wire_time_is_additive(a in 0u64..100_000, b in 0u64..100_000, baud in 1u32..1_000_000) {
            let f = Frame::SEVEN_E_ONE;
            let whole = wire_time(a + b, baud, f).as_nanos();
            let parts = wire_time(a, baud, f).as_nanos() + wire_time(b, baud, f).as_nanos();
            // Each part rounds down by less than a nanosecond.
            prop_assert!(whole >= parts && whole <= parts + 1);
        }
    }
}
