//! The session layer: commands and queries to one named instrument over a [`Link`], the IEEE
//! 488.2 / SCPI conventions every driver needs (identity, error queue, numeric replies), and a
//! log of every exchange.
//!
//! **Architecture Invariant:** a session never touches storage. It records exchanges in memory;
//! the caller drains them with [`Session::take_exchanges`] and decides where they go.

mod scpi;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::transport::{Link, TransportError, preview};

pub use scpi::{
    Identity, InstrumentError, Measurement, NumberError, parse_error_reply, parse_idn, parse_number,
};

/// Exchanges kept when the caller does not drain them; older ones are dropped (and counted)
/// so a forgetful caller costs bounded memory.
const MAX_EXCHANGES: usize = 10_000;

/// Query that reads one entry of the SCPI error queue.
const SYSTEM_ERROR_QUERY: &str = "SYST:ERR?";

/// What the exchange log records as the command of [`Session::clear`].
const DEVICE_CLEAR: &str = "<device clear>";

/// How the exchange log names a read without a command (see [`Session::read_more`]).
const READ_MORE: &str = "<read>";

/// What an exchange reads after its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing: a plain write.
    Nothing,
    /// A text reply.
    Text,
    /// An IEEE 488.2 block of at most `cap` bytes.
    Block { cap: usize },
    /// `n` raw bytes, then the terminator if `terminated`.
    Exact { n: usize, terminated: bool },
    /// No command at all: a device clear.
    Clear,
    /// No command: one more text reply to what was sent before.
    More,
}

/// What an exchange read.
enum Reply {
    None,
    Text(String),
    Binary(Vec<u8>),
}

impl Reply {
    /// The reply as the exchange log keeps it: binary data by its size only, since the log is
    /// text and the data is stored (decoded) elsewhere.
    fn logged(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Text(text) => Some(text.clone()),
            Self::Binary(bytes) => Some(format!("<{}-byte block>", bytes.len())),
        }
    }
}

/// One command sent to an instrument and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The command as sent, without the write terminator.
    pub command: String,
    /// The reply without its terminator; `None` for a plain write or when no reply arrived.
    /// A binary reply is recorded as `<N-byte block>`, not its bytes.
    pub reply: Option<String>,
    /// Wall-clock time the command was about to be sent.
    pub started: SystemTime,
    /// How long the write and (for a query) the reply took, measured on the monotonic clock.
    pub duration: Duration,
    /// The failure, with its causes, when the exchange did not complete.
    pub error: Option<String>,
}

/// Errors of the session layer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The link failed while sending a command or receiving its reply.
    #[error("instrument `{instrument}`: command `{command}` failed")]
    Transport {
        /// The session's name.
        instrument: String,
        /// The command being sent.
        command: String,
        /// What the link reported.
        #[source]
        source: TransportError,
    },
    /// The `*IDN?` reply does not have four comma-separated fields.
    #[error("identity reply `{}` is not `manufacturer,model,serial,firmware`", preview(reply.as_bytes()))]
    BadIdentity {
        /// The reply as received.
        reply: String,
    },
    /// A reply that should have been a number is not one.
    #[error("reply `{}` is not a number", preview(reply.as_bytes()))]
    BadNumber {
        /// The reply as received.
        reply: String,
        /// Why it is not a number.
        #[source]
        source: NumberError,
    },
    /// An error-queue reply is not `<code>,"<message>"`.
    #[error("error queue reply `{}` is not `<code>,\"<message>\"`", preview(reply.as_bytes()))]
    BadErrorReply {
        /// The reply as received.
        reply: String,
    },
    /// The error queue still reported errors after `limit` queries.
    #[error("error queue not empty after {limit} queries")]
    ErrorQueueNotEmptied {
        /// How many entries were read.
        limit: usize,
    },
}

impl SessionError {
    /// Whether the link is gone and must be reopened.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Self::Transport { source, .. } => source.is_connection_lost(),
            Self::BadIdentity { .. }
            | Self::BadNumber { .. }
            | Self::BadErrorReply { .. }
            | Self::ErrorQueueNotEmptied { .. } => false,
        }
    }
}

impl SessionError {
    /// Whether no (complete) reply came within the deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Transport {
                source: TransportError::Timeout { .. },
                ..
            }
        )
    }
}

/// A conversation with one named instrument.
#[derive(Debug)]
pub struct Session {
    name: String,
    link: Link,
    recording: bool,
    exchanges: VecDeque<Exchange>,
    dropped: u64,
}

impl Session {
    /// Starts a session named `name` (used in errors and logs) over an open link; recording of
    /// exchanges is on.
    pub fn new(name: impl Into<String>, link: Link) -> Self {
        Self {
            name: name.into(),
            link,
            recording: true,
            exchanges: VecDeque::new(),
            dropped: 0,
        }
    }

    /// The instrument's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Changes the reply deadline for subsequent commands.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.link.set_timeout(timeout);
    }

    /// Sends a command that has no reply.
    pub async fn write(&mut self, cmd: &str) -> Result<(), SessionError> {
        self.exchange(cmd, Expect::Nothing).await.map(|_| ())
    }

    /// Sends a command and returns its reply (without the terminator).
    pub async fn query(&mut self, cmd: &str) -> Result<String, SessionError> {
        match self.exchange(cmd, Expect::Text).await? {
            Reply::Text(reply) => Ok(reply),
            Reply::None | Reply::Binary(_) => Ok(String::new()),
        }
    }

    /// Sends a command whose reply is an IEEE 488.2 block and returns the payload, at most
    /// `cap` bytes (see [`Link::read_block`]).
    pub async fn query_block(&mut self, cmd: &str, cap: usize) -> Result<Vec<u8>, SessionError> {
        match self.exchange(cmd, Expect::Block { cap }).await? {
            Reply::Binary(payload) => Ok(payload),
            Reply::None | Reply::Text(_) => Ok(Vec::new()),
        }
    }

    /// Sends a command whose reply is exactly `n` raw bytes, followed by the read terminator
    /// if `terminated` (see [`Link::read_exact`]).
    pub async fn query_exact(
        &mut self,
        cmd: &str,
        n: usize,
        terminated: bool,
    ) -> Result<Vec<u8>, SessionError> {
        match self.exchange(cmd, Expect::Exact { n, terminated }).await? {
            Reply::Binary(payload) => Ok(payload),
            Reply::None | Reply::Text(_) => Ok(Vec::new()),
        }
    }

    /// Reads one more text reply without sending anything: a late reply to an earlier query,
    /// when recovering. Recorded with the command `<read>`.
    pub async fn read_more(&mut self) -> Result<String, SessionError> {
        match self.exchange(READ_MORE, Expect::More).await? {
            Reply::Text(reply) => Ok(reply),
            Reply::None | Reply::Binary(_) => Ok(String::new()),
        }
    }

    /// Like [`Session::read_more`] with a different deadline for this one reply, to tell the end
    /// of a reply of several lines by the line going quiet: `Ok(None)` when nothing at all came
    /// within `timeout`, which the exchange log records as a read that found nothing, not as a
    /// failure.
    pub async fn read_more_within(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<String>, SessionError> {
        let previous = self.link.settings().timeout;
        self.link.set_timeout(timeout);
        let result = self.read_more().await;
        self.link.set_timeout(previous);
        match result {
            Ok(reply) => Ok(Some(reply)),
            Err(SessionError::Transport {
                source: TransportError::Timeout { received: 0, .. },
                ..
            }) => {
                if self.recording
                    && let Some(quiet) = self.exchanges.back_mut()
                {
                    quiet.error = None;
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Clears the device (see [`Link::clear`]), e.g. when recovering from a confused exchange.
    /// Recorded in the exchange log with the command `<device clear>`.
    pub async fn clear(&mut self) -> Result<(), SessionError> {
        self.exchange(DEVICE_CLEAR, Expect::Clear).await.map(|_| ())
    }

    /// Whether the instrument is still connected, without bus traffic (see
    /// [`Link::probe`](crate::transport::Link::probe)); not logged as an exchange.
    pub async fn probe(&mut self) -> Result<(), SessionError> {
        self.link
            .probe()
            .await
            .map_err(|source| SessionError::Transport {
                instrument: self.name.clone(),
                command: "<probe>".to_owned(),
                source,
            })
    }

    /// Like [`Session::query`] with a different deadline for this one reply, e.g. for a slow
    /// integration or a self-calibration.
    pub async fn query_with_timeout(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, SessionError> {
        let previous = self.link.settings().timeout;
        self.link.set_timeout(timeout);
        let result = self.query(cmd).await;
        self.link.set_timeout(previous);
        result
    }

    /// Asks `*IDN?` and parses the reply.
    pub async fn identify(&mut self) -> Result<Identity, SessionError> {
        let reply = self.query("*IDN?").await?;
        parse_idn(&reply)
    }

    /// Reads the SCPI error queue with `SYST:ERR?` until it reports code 0, at most `limit`
    /// times; returns the errors read, oldest first.
    pub async fn drain_errors(
        &mut self,
        limit: usize,
    ) -> Result<Vec<InstrumentError>, SessionError> {
        self.drain_errors_with(SYSTEM_ERROR_QUERY, limit).await
    }

    /// Like [`Session::drain_errors`] with another query of the same reply format, e.g.
    /// `ERRSTR?` on an HP 3458A.
    pub async fn drain_errors_with(
        &mut self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<InstrumentError>, SessionError> {
        let mut errors = Vec::new();
        for _ in 0..limit {
            let reply = self.query(query).await?;
            let entry = parse_error_reply(&reply)?;
            if entry.code == 0 {
                return Ok(errors);
            }
            tracing::warn!(instrument = %self.name, error = %entry, "instrument reported an error");
            errors.push(entry);
        }
        Err(SessionError::ErrorQueueNotEmptied { limit })
    }

    /// Sends a query whose reply is a number; returns the raw reply and what it means.
    pub async fn read_number(&mut self, cmd: &str) -> Result<(String, Measurement), SessionError> {
        let reply = self.query(cmd).await?;
        match parse_number(&reply) {
            Ok(measurement) => Ok((reply, measurement)),
            Err(source) => Err(SessionError::BadNumber { reply, source }),
        }
    }

    /// Turns the exchange log on or off (on by default).
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// Whether exchanges are being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Removes and returns the exchanges recorded so far, oldest first.
    pub fn take_exchanges(&mut self) -> Vec<Exchange> {
        self.exchanges.drain(..).collect()
    }

    /// How many exchanges were dropped, since the session started, because the log was full
    /// (more than 10 000 undrained).
    pub fn dropped_exchanges(&self) -> u64 {
        self.dropped
    }

    async fn exchange(&mut self, cmd: &str, expect: Expect) -> Result<Reply, SessionError> {
        let started = SystemTime::now();
        let clock = std::time::Instant::now();
        let link = &mut self.link;
        let result = async {
            match expect {
                Expect::Clear => return link.clear().await.map(|()| Reply::None),
                Expect::More => return link.read_reply().await.map(Reply::Text),
                _ => {}
            }
            link.write(cmd.as_bytes()).await?;
            match expect {
                Expect::Nothing | Expect::Clear | Expect::More => Ok(Reply::None),
                Expect::Text => link.read_reply().await.map(Reply::Text),
                Expect::Block { cap } => link.read_block(cap).await.map(Reply::Binary),
                Expect::Exact { n, terminated } => {
                    link.read_exact(n, terminated).await.map(Reply::Binary)
                }
            }
        }
        .await;
        if self.recording {
            self.record(Exchange {
                command: cmd.to_owned(),
                reply: result.as_ref().ok().and_then(Reply::logged),
                started,
                duration: clock.elapsed(),
                error: result.as_ref().err().map(|e| crate::error::report(e)),
            });
        }
        result.map_err(|source| SessionError::Transport {
            instrument: self.name.clone(),
            command: cmd.to_owned(),
            source,
        })
    }

    fn record(&mut self, exchange: Exchange) {
        if self.exchanges.len() >= MAX_EXCHANGES {
            self.exchanges.pop_front();
            if self.dropped == 0 {
                tracing::warn!(
                    instrument = %self.name,
                    "exchange log full; dropping the oldest exchanges until it is drained"
                );
            }
            self.dropped += 1;
        }
        self.exchanges.push_back(exchange);
    }
}

#[cfg(test)]
mod tests;
