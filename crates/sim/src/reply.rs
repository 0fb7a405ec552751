//! What an instrument answers to one program message: bytes in GPIB transfers (with or without
//! EOI) and the time before they are available. Faults, the wire and the servers work on it as
//! well as the personalities, so it sits below all of them.

use std::time::Duration;

/// One GPIB transfer of a reply: bytes, with EOI asserted on the last one or not. On a serial
/// line or a socket only the bytes matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The bytes, terminator included.
    pub bytes: Vec<u8>,
    /// Whether EOI is asserted with the last byte.
    pub end: bool,
}

/// An instrument's answer to one program message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// What it sends, in order (several transfers: e.g. one per 3458A reading).
    pub transfers: Vec<Transfer>,
    /// Time before the output is available: integration, settling, autocal. Zero unless
    /// [`SimParams::realistic_timing`](crate::SimParams::realistic_timing) is on.
    pub delay: Duration,
}

impl Reply {
    /// No output.
    pub fn none() -> Self {
        Self::default()
    }

    /// One transfer ending with EOI.
    pub fn text(bytes: impl Into<Vec<u8>>) -> Self {
        let mut r = Self::none();
        r.push(bytes, true);
        r
    }

    /// What a SCPI command tree produced for one message: nothing, or one transfer ending
    /// with EOI, available after `delay` (the message's integration or settling time).
    pub fn from_scpi(bytes: Vec<u8>, delay: Duration) -> Self {
        let reply = if bytes.is_empty() {
            Self::none()
        } else {
            Self::text(bytes)
        };
        reply.delayed(delay)
    }

    /// Appends a transfer; empty transfers without EOI are skipped.
    pub fn push(&mut self, bytes: impl Into<Vec<u8>>, end: bool) {
        let bytes = bytes.into();
        if !bytes.is_empty() || end {
            self.transfers.push(Transfer { bytes, end });
        }
    }

    /// All bytes, as a byte stream carries them.
    pub fn bytes(&self) -> Vec<u8> {
        self.transfers
            .iter()
            .flat_map(|t| t.bytes.iter().copied())
            .collect()
    }

    /// True when nothing is sent.
    pub fn is_empty(&self) -> bool {
        self.transfers.iter().all(|t| t.bytes.is_empty())
    }

    /// The same reply available `delay` later.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = self.delay.saturating_add(delay);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_helpers() {
        let mut r = Reply::text("a\n");
        r.push("", false);
        r.push("b", false);
        assert_eq!(r.transfers.len(), 2);
        assert_eq!(r.bytes(), b"a\nb");
        assert!(!r.is_empty());
        assert!(Reply::none().is_empty());
        assert_eq!(
            Reply::none().delayed(Duration::from_secs(1)).delay,
            Duration::from_secs(1)
        );
    }
}
