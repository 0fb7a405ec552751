//! The transport layer: opening a serial port or TCP socket named by a VISA-style resource
//! string, and exchanging terminated text messages over it.
//!
//! **Architecture Invariant:** the transport knows bytes, terminators and deadlines, never
//! commands; it never retries or reconnects by itself — it reports
//! [`TransportError::Disconnected`] and the caller decides.

mod buffer;
mod link;
mod resource;
mod settings;
#[cfg(test)]
pub(crate) mod testdev;

pub use link::{Link, TransportError};
pub use resource::{Resource, ResourceError};
pub use settings::{DataBits, FlowControl, LinkSettings, Parity, SerialSettings, StopBits};

pub(crate) use buffer::preview;
