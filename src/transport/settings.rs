//! Serial line settings and link (framing and timing) settings.
//!
//! The enums are our own so that configuration does not depend on `serialport`'s types; they are
//! mapped to `tokio_serial`'s only when a port is opened.

use std::time::Duration;

/// Bits per character on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataBits {
    /// Seven data bits (e.g. Vaisala transmitters, 7E1).
    Seven,
    /// Eight data bits.
    #[default]
    Eight,
}

/// Parity bit on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Stop bits on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StopBits {
    /// One stop bit.
    #[default]
    One,
    /// Two stop bits.
    Two,
}

/// Flow control on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlowControl {
    /// No flow control.
    #[default]
    None,
    /// Software flow control with XON/XOFF characters.
    XonXoff,
    /// Hardware flow control on the RTS/CTS lines.
    RtsCts,
}

/// How a serial port is configured; ignored for TCP resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SerialSettings {
    /// Line speed in baud.
    pub baud: u32,
    /// Bits per character.
    pub data_bits: DataBits,
    /// Parity bit.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
    /// Flow control.
    pub flow_control: FlowControl,
}

impl Default for SerialSettings {
    /// 9600 baud, 8N1, no flow control.
    fn default() -> Self {
        Self {
            baud: 9600,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow_control: FlowControl::None,
        }
    }
}

impl From<DataBits> for tokio_serial::DataBits {
    fn from(bits: DataBits) -> Self {
        match bits {
            DataBits::Seven => Self::Seven,
            DataBits::Eight => Self::Eight,
        }
    }
}

impl From<Parity> for tokio_serial::Parity {
    fn from(parity: Parity) -> Self {
        match parity {
            Parity::None => Self::None,
            Parity::Even => Self::Even,
            Parity::Odd => Self::Odd,
        }
    }
}

impl From<StopBits> for tokio_serial::StopBits {
    fn from(bits: StopBits) -> Self {
        match bits {
            StopBits::One => Self::One,
            StopBits::Two => Self::Two,
        }
    }
}

impl From<FlowControl> for tokio_serial::FlowControl {
    fn from(flow: FlowControl) -> Self {
        match flow {
            FlowControl::None => Self::None,
            FlowControl::XonXoff => Self::Software,
            FlowControl::RtsCts => Self::Hardware,
        }
    }
}

/// Message framing and limits of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Appended to every message written (may be empty).
    pub write_termination: Vec<u8>,
    /// Ends every reply; must not be empty ([`Link::open`](super::Link::open) rejects it).
    pub read_termination: Vec<u8>,
    /// Deadline for a whole reply (and for a write to be accepted).
    pub timeout: Duration,
    /// Longest reply accepted, in bytes without the terminator.
    pub max_reply: usize,
}

impl Default for LinkSettings {
    /// LF out, LF in, 5 s, 1 MiB.
    fn default() -> Self {
        Self {
            write_termination: b"\n".to_vec(),
            read_termination: b"\n".to_vec(),
            timeout: Duration::from_secs(5),
            max_reply: 1 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let serial = SerialSettings::default();
        assert_eq!(serial.baud, 9600);
        assert_eq!(
            (
                serial.data_bits,
                serial.parity,
                serial.stop_bits,
                serial.flow_control
            ),
            (
                DataBits::Eight,
                Parity::None,
                StopBits::One,
                FlowControl::None
            )
        );
        let link = LinkSettings::default();
        assert_eq!(link.write_termination, b"\n");
        assert_eq!(link.read_termination, b"\n");
        assert_eq!(link.timeout, Duration::from_secs(5));
        assert_eq!(link.max_reply, 1_048_576);
    }

    /// Each of ours converts to the serialport value beside it.
    fn maps<A: Copy + std::fmt::Debug, B: From<A> + PartialEq + std::fmt::Debug>(pairs: &[(A, B)]) {
        for (ours, theirs) in pairs {
            assert_eq!(B::from(*ours), *theirs, "{ours:?}");
        }
    }

    #[test]
    fn maps_to_serialport_types() {
        use tokio_serial as ts;
        maps(&[
            (DataBits::Seven, ts::DataBits::Seven),
            (DataBits::Eight, ts::DataBits::Eight),
        ]);
        maps(&[
            (Parity::None, ts::Parity::None),
            (Parity::Even, ts::Parity::Even),
            (Parity::Odd, ts::Parity::Odd),
        ]);
        maps(&[
            (StopBits::One, ts::StopBits::One),
            (StopBits::Two, ts::StopBits::Two),
        ]);
        maps(&[
            (FlowControl::None, ts::FlowControl::None),
            (FlowControl::XonXoff, ts::FlowControl::Software),
            (FlowControl::RtsCts, ts::FlowControl::Hardware),
        ]);
    }
}
