//! Framing of replies in the receive buffer, kept apart from the I/O so its bounds can be tested
//! exhaustively.

/// Largest single read from the stream.
pub(super) const CHUNK: usize = 4096;

/// Bytes received but not yet returned as a reply.
///
/// Invariant: `bytes.len()` and `bytes.capacity()` never exceed `max_reply + terminator length`,
/// because [`ReplyBuffer::room`] limits every read and [`ReplyBuffer::push`] grows the vector
/// only up to that bound. Binary reads parse a few header or terminator bytes here and move
/// payload out as it arrives, so they add at most one [`CHUNK`] to that bound.
#[derive(Debug, Default)]
pub(super) struct ReplyBuffer {
    bytes: Vec<u8>,
    /// Prefix of `bytes` already searched for the terminator, so a slow reply is not rescanned
    /// from the start after every chunk.
    scanned: usize,
    /// After an overlong reply, its tail (up to and including the next terminator) is dropped
    /// so that it is never returned as the answer to a later query.
    resync: bool,
}

/// What the buffer holds after a search for the terminator.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// A complete reply without its terminator.
    Reply(Vec<u8>),
    /// More than `max_reply` bytes arrived without a terminator; they have been dropped.
    TooLong,
}

impl ReplyBuffer {
    /// Number of bytes held.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Allocated size, for the memory bound.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Removes and returns everything held, for discarding as stale input.
    pub(super) fn take_all(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.bytes)
    }

    /// Forgets everything, including a resynchronisation in progress, and returns what was held.
    pub(super) fn reset(&mut self) -> Vec<u8> {
        self.resync = false;
        self.take_all()
    }

    /// Whether the tail of an abandoned reply is still to be skipped.
    pub(super) fn is_resyncing(&self) -> bool {
        self.resync
    }

    /// The bytes held, for parsing a header in place.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Drops the first `n` bytes (all of them if fewer are held).
    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
        self.scanned = 0;
    }

    /// Drops leading ASCII whitespace, which may precede a block header.
    pub(super) fn skip_whitespace(&mut self) {
        let blanks = self
            .bytes
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        self.consume(blanks);
    }

    /// Moves up to `n` bytes from the front into `out`; returns how many moved.
    pub(super) fn take_into(&mut self, out: &mut Vec<u8>, n: usize) -> usize {
        let n = n.min(self.bytes.len());
        out.extend_from_slice(self.bytes.get(..n).unwrap_or_default());
        self.consume(n);
        n
    }

    /// Gives up on the reply being read: drops it through the next terminator, now if one is
    /// buffered, otherwise as it arrives (like the tail of an overlong reply).
    pub(super) fn abandon(&mut self, terminator: &[u8]) {
        self.resync = true;
        self.settle(terminator);
    }

    /// Skips what is buffered of an abandoned reply's tail; returns whether the buffer is back
    /// in step, i.e. the next byte starts a new reply.
    pub(super) fn settle(&mut self, terminator: &[u8]) -> bool {
        if !self.resync {
            return true;
        }
        if let Some(at) = find(&self.bytes, terminator) {
            self.consume(at.saturating_add(terminator.len()));
            self.resync = false;
            return true;
        }
        self.keep_split_terminator(terminator);
        false
    }

    /// Drops everything but what could be the start of a terminator split across reads.
    fn keep_split_terminator(&mut self, terminator: &[u8]) {
        let keep = terminator.len().saturating_sub(1).min(self.bytes.len());
        let tail = self.bytes.len() - keep;
        self.bytes.drain(..tail);
        self.scanned = 0;
    }

    /// Records input discarded outside the buffer: once the terminator has gone past, the tail
    /// of an overlong reply is over.
    pub(super) fn discarded(&mut self, stale: &[u8], terminator: &[u8]) {
        if self.resync && find(stale, terminator).is_some() {
            self.resync = false;
        }
    }

    /// How many more bytes may be read before the buffer is full.
    pub(super) fn room(&self, terminator: &[u8], max_reply: usize) -> usize {
        limit(terminator, max_reply).saturating_sub(self.bytes.len())
    }

    /// Appends received bytes, growing the allocation geometrically but never past the limit.
    pub(super) fn push(&mut self, data: &[u8], terminator: &[u8], max_reply: usize) {
        let needed = self.bytes.len().saturating_add(data.len());
        if needed > self.bytes.capacity() {
            let target = self
                .bytes
                .capacity()
                .saturating_mul(2)
                .max(64)
                .min(limit(terminator, max_reply))
                .max(needed);
            self.bytes
                .reserve_exact(target.saturating_sub(self.bytes.len()));
        }
        self.bytes.extend_from_slice(data);
    }

    /// Splits off the next complete reply, or reports that the buffer is full without one.
    /// Bytes after the terminator stay buffered.
    pub(super) fn next_frame(&mut self, terminator: &[u8], max_reply: usize) -> Option<Frame> {
        loop {
            let from = self
                .scanned
                .saturating_sub(terminator.len().saturating_sub(1));
            let found = self
                .bytes
                .get(from..)
                .and_then(|haystack| find(haystack, terminator))
                .map(|at| at + from);
            let Some(at) = found else {
                return self.no_terminator(terminator, max_reply);
            };
            let rest = self
                .bytes
                .get(at.saturating_add(terminator.len())..)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let mut reply = std::mem::replace(&mut self.bytes, rest);
            self.scanned = 0;
            if std::mem::take(&mut self.resync) {
                continue;
            }
            reply.truncate(at);
            return Some(Frame::Reply(reply));
        }
    }

    fn no_terminator(&mut self, terminator: &[u8], max_reply: usize) -> Option<Frame> {
        if self.resync {
            self.keep_split_terminator(terminator);
            return None;
        }
        // Once this full, any terminator still to come would end a reply longer than
        // `max_reply`, so waiting for it is pointless.
        if self.bytes.len() >= limit(terminator, max_reply) {
            self.take_all();
            self.resync = true;
            return Some(Frame::TooLong);
        }
        self.scanned = self.bytes.len();
        None
    }
}

/// The most bytes the buffer ever holds: a maximal reply plus its terminator.
fn limit(terminator: &[u8], max_reply: usize) -> usize {
    max_reply.saturating_add(terminator.len())
}

/// Position of the first occurrence of `needle`; an empty needle matches at 0.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A short, escaped rendering of bytes for logs and error messages.
pub(crate) fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 48;
    let mut out: String = bytes
        .iter()
        .take(SHOWN)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > SHOWN {
        out.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks` as the link would (never more than `room`) and collects the frames.
    fn run(chunks: &[&[u8]], terminator: &[u8], max_reply: usize) -> Vec<Frame> {
        let mut buffer = ReplyBuffer::default();
        let mut frames = Vec::new();
        for chunk in chunks {
            let mut chunk = *chunk;
            while !chunk.is_empty() {
                while let Some(frame) = buffer.next_frame(terminator, max_reply) {
                    frames.push(frame);
                }
                let take = buffer.room(terminator, max_reply).min(chunk.len());
                let (now, later) = chunk.split_at(take);
                buffer.push(now, terminator, max_reply);
                chunk = later;
            }
        }
        while let Some(frame) = buffer.next_frame(terminator, max_reply) {
            frames.push(frame);
        }
        frames
    }

    fn reply(text: &str) -> Frame {
        Frame::Reply(text.as_bytes().to_vec())
    }

    #[test]
    fn whole_and_split_replies() {
        assert_eq!(run(&[b"1.5\n"], b"\n", 100), [reply("1.5")]);
        assert_eq!(run(&[b"1.", b"5", b"\n"], b"\n", 100), [reply("1.5")]);
        assert_eq!(
            run(&[b"a\r", b"\nb\r\n"], b"\r\n", 100),
            [reply("a"), reply("b")]
        );
        assert_eq!(run(&[b"a\rb\r\n"], b"\r\n", 100), [reply("a\rb")]);
        assert_eq!(run(&[b"\n"], b"\n", 100), [reply("")]);
    }

    #[test]
    fn bytes_after_the_terminator_stay() {
        let mut buffer = ReplyBuffer::default();
        buffer.push(b"one\ntw", b"\n", 100);
        assert_eq!(buffer.next_frame(b"\n", 100), Some(reply("one")));
        assert_eq!(buffer.next_frame(b"\n", 100), None);
        assert_eq!(buffer.len(), 2);
        buffer.push(b"o\n", b"\n", 100);
        assert_eq!(buffer.next_frame(b"\n", 100), Some(reply("two")));
        assert_eq!(buffer.take_all(), b"");
    }

    #[test]
    fn cap_is_exact() {
        assert_eq!(run(&[b"abcd\n"], b"\n", 4), [reply("abcd")]);
        assert_eq!(run(&[b"abcde\n"], b"\n", 4), [Frame::TooLong]);
        assert_eq!(run(&[b"abcd\r\n"], b"\r\n", 4), [reply("abcd")]);
        assert_eq!(run(&[b"abcd", b"\r", b"\n"], b"\r\n", 4), [reply("abcd")]);
        assert_eq!(run(&[b"abcde\r\n"], b"\r\n", 4), [Frame::TooLong]);
    }

    #[test]
    fn the_tail_of_an_overlong_reply_is_skipped() {
        let long = [b'x'; 50];
        assert_eq!(
            run(&[&long, b"xx\nok\n"], b"\n", 8),
            [Frame::TooLong, reply("ok")]
        );
        assert_eq!(
            run(&[&long, b"x\r", b"\nok\r\n"], b"\r\n", 8),
            [Frame::TooLong, reply("ok")]
        );
        let mut buffer = ReplyBuffer::default();
        buffer.push(b"abcdefghij", b"\n", 4);
        assert_eq!(buffer.next_frame(b"\n", 4), Some(Frame::TooLong));
        buffer.discarded(b"tail\n", b"\n");
        buffer.push(b"ok\n", b"\n", 4);
        assert_eq!(buffer.next_frame(b"\n", 4), Some(reply("ok")));
    }

    #[test]
    fn binary_helpers() {
        let mut buffer = ReplyBuffer::default();
        buffer.push(b" \r\n#216abc", b"\n", 100);
        buffer.skip_whitespace();
        assert_eq!(buffer.bytes(), b"#216abc");
        buffer.consume(4);
        let mut out = Vec::new();
        assert_eq!(buffer.take_into(&mut out, 2), 2);
        assert_eq!(out, b"ab");
        assert_eq!(buffer.take_into(&mut out, 10), 1);
        assert_eq!(out, b"abc");
        buffer.consume(5);
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn abandoning_skips_through_the_next_terminator() {
        // Terminator already buffered: done at once, the next reply stays.
        let mut buffer = ReplyBuffer::default();
        buffer.push(b"junk\r\nok\r\n", b"\r\n", 100);
        buffer.abandon(b"\r\n");
        assert!(!buffer.is_resyncing());
        assert_eq!(buffer.next_frame(b"\r\n", 100), Some(reply("ok")));

        // Terminator still to come, possibly split across reads.
        let mut buffer = ReplyBuffer::default();
        buffer.push(b"junk\r", b"\r\n", 100);
        buffer.abandon(b"\r\n");
        assert!(buffer.is_resyncing());
        assert_eq!(buffer.bytes(), b"\r");
        buffer.push(b"\nnext", b"\r\n", 100);
        assert!(buffer.settle(b"\r\n"));
        assert_eq!(buffer.bytes(), b"next");

        // A reset forgets a resynchronisation in progress.
        let mut buffer = ReplyBuffer::default();
        buffer.push(b"junk", b"\n", 100);
        buffer.abandon(b"\n");
        assert_eq!(buffer.reset(), b"");
        assert!(!buffer.is_resyncing());
        assert!(buffer.settle(b"\n"));
        buffer.push(b"ok\n", b"\n", 100);
        assert_eq!(buffer.next_frame(b"\n", 100), Some(reply("ok")));
    }

    #[test]
    fn preview_escapes_and_truncates() {
        assert_eq!(preview(b"\xff\xfeA\n"), "\\xff\\xfeA\\n");
        let long = preview(&[b'x'; 100]);
        assert!(long.starts_with("xxxx"));
        assert!(long.ends_with("… (100 bytes)"), "{long}");
    }

    /// Arbitrary bytes with terminator characters common enough that replies complete.
    fn line_bytes() -> impl Strategy<Value = u8> {
        any::<u8>().prop_map(|b| match b % 16 {
            0 => b'\n',
            1 => b'\r',
            _ => b,
        })
    }

    proptest! {
        #[test]
        fn memory_stays_bounded(
            chunks in prop::collection::vec(prop::collection::vec(line_bytes(), 0..300), 0..40),
            max_reply in 0usize..600,
            crlf in any::<bool>(),
        ) {
            let terminator: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut buffer = ReplyBuffer::default();
            for chunk in &chunks {
                let mut chunk = chunk.as_slice();
                while !chunk.is_empty() {
                    while let Some(frame) = buffer.next_frame(terminator, max_reply) {
                        if let Frame::Reply(reply) = frame {
                            prop_assert!(reply.len() <= max_reply);
                        }
                    }
                    let take = buffer.room(terminator, max_reply).min(chunk.len());
                    prop_assert!(take > 0, "a full buffer always yields a frame first");
                    let (now, later) = chunk.split_at(take);
                    buffer.push(now, terminator, max_reply);
                    chunk = later;
                    prop_assert!(buffer.capacity() <= max_reply + terminator.len());
                }
            }
        }

        #[test]
        fn framing_does_not_depend_on_chunking(
            lines in prop::collection::vec("[a-z]{0,12}", 1..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in at {
                pieces.push(&stream[start..cut]);
                start = cut;
            }
            pieces.push(&stream[start..]);
            let expected: Vec<Frame> = lines.iter().map(|l| reply(l)).collect();
            prop_assert_eq!(run(&pieces, b"\r\n", 64), expected);
        }
    }
}
