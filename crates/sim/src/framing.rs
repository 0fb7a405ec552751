//! Splitting a byte stream into program messages at an instrument's terminators, with a cap on
//! their length so that a runaway client cannot grow memory.

/// Longest input line an instrument accepts, bytes (terminator excluded). Longer lines are
/// discarded up to their terminator and reported to the instrument (a SCPI one queues
/// `-223,"Too much data"`).
pub const MAX_LINE: usize = 64 * 1024;

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

    /// Takes in `data`; returns what it completed.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> Vec<LineEvent> {
        let mut out = Vec::new();
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(cap: usize, chunks: &[&[u8]]) -> Vec<LineEvent> {
        let mut a = LineAssembler::with_terminators(cap, b"\n");
        let mut out = Vec::new();
        for c in chunks {
            out.extend(a.push(c));
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
