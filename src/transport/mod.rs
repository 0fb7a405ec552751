//! The transport layer: opening a serial port, a TCP socket or a GPIB instrument behind a
//! Prologix adapter, named by a VISA-style resource string, and exchanging terminated text
//! messages, IEEE 488.2 blocks and raw binary over it.
//!
//! **Architecture Invariant:** the transport knows bytes, terminators and deadlines, never
//! commands; it never retries or reconnects by itself — it reports
//! [`TransportError::Disconnected`] and the caller decides.

pub mod block;
mod buffer;
mod error;
mod link;
pub mod prologix;
mod read;
mod resource;
mod settings;
mod stream;
// Test devices on pseudo-terminals: registering a pty with the reactor is the one `unsafe` call.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod testdev;

pub use error::TransportError;
pub use link::Link;
pub use prologix::PrologixAdapter;
pub use resource::{Resource, ResourceError};
pub use settings::{DataBits, FlowControl, LinkSettings, Parity, SerialSettings, StopBits};

pub(crate) use buffer::preview;
