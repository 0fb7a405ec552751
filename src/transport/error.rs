//! How an exchange over a link can fail, and how I/O errors are read as a lost connection.

use std::io;
use std::time::Duration;

use super::Resource;

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The port or socket could not be opened (or the link settings are unusable).
    #[error("cannot open `{resource}`")]
    Open {
        /// What was being opened.
        resource: Resource,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// No complete reply arrived before the deadline.
    #[error(
        "no complete reply within {} ({received} bytes received)",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        /// The deadline that passed.
        timeout: Duration,
        /// Bytes received so far. Those of a text reply stay buffered and are discarded by the
        /// next write; those of a binary reply are dropped.
        received: usize,
    },
    /// The instrument did not accept the message before the deadline (e.g. held off by flow
    /// control).
    #[error("write not accepted within {}", humantime::format_duration(*timeout))]
    WriteTimeout {
        /// The deadline that passed.
        timeout: Duration,
    },
    /// More than `cap` bytes arrived without the read terminator; they were dropped.
    #[error("reply longer than {cap} bytes without a terminator")]
    ReplyTooLong {
        /// The configured `max_reply` (or the cap of an indefinite-length block).
        cap: usize,
    },
    /// A binary reply is malformed: not an IEEE 488.2 block header, or data not followed by
    /// the read terminator (a wrong length). The rest of that reply is discarded.
    #[error("malformed binary reply: {reason}")]
    BadBlock {
        /// What was wrong.
        reason: String,
    },
    /// A block header claims more bytes than the caller accepts; nothing was allocated for
    /// them and the rest of that reply is discarded.
    #[error("block of {claimed} bytes exceeds the cap of {cap}")]
    BlockTooLong {
        /// The length in the header.
        claimed: usize,
        /// The caller's cap.
        cap: usize,
    },
    /// The port vanished or the peer closed the connection (for an instrument behind a GPIB
    /// adapter: the adapter's connection).
    #[error("connection lost")]
    Disconnected,
    /// The reply is not UTF-8 text.
    #[error("reply is not text: `{preview}`")]
    NotText {
        /// The start of the reply with non-printable bytes escaped.
        preview: String,
    },
    /// Any other I/O failure.
    #[error("i/o error on the link")]
    Io(#[source] io::Error),
}

impl TransportError {
    /// Whether the link is gone and must be reopened (as opposed to one failed exchange).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Disconnected)
    }
}

/// Maps an I/O error, recognising the ways a vanished port or a closed peer show up.
pub(super) fn classify(error: io::Error) -> TransportError {
    use io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected, UnexpectedEof,
    };
    // EIO is what a pty (and a USB serial adapter) returns after hang-up; ENXIO and ENODEV what
    // an unplugged USB serial adapter may return.
    const EIO: i32 = 5;
    const ENXIO: i32 = 6;
    const ENODEV: i32 = 19;
    let lost = matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof
    ) || matches!(error.raw_os_error(), Some(EIO | ENXIO | ENODEV));
    if lost {
        tracing::debug!(%error, "link lost");
        TransportError::Disconnected
    } else {
        TransportError::Io(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hang_up_errors_are_disconnects() {
        for kind in [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(
                classify(io::Error::from(kind)).is_connection_lost(),
                "{kind:?}"
            );
        }
        assert!(classify(io::Error::from_raw_os_error(5)).is_connection_lost());
        assert!(!classify(io::Error::from_raw_os_error(22)).is_connection_lost());
        assert!(!classify(io::Error::other("x")).is_connection_lost());
    }
}
