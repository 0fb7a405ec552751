//! VISA-style resource strings: where an instrument is connected.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;

/// The accepted forms, repeated in every parse error so a typo in the config explains itself.
const HINT: &str = "hint: accepted forms are `ASRL/dev/ttyUSB0::INSTR` (serial port, absolute path), \
                    `TCPIP::192.0.2.10::5025::SOCKET` (raw TCP socket), \
                    `GPIB0::22::INSTR` or `GPIB0::22::96::INSTR` (GPIB instrument on board 0), \
                    `PRLGX-TCPIP0::192.0.2.20::1234::INTFC` and `PRLGX-ASRL0::/dev/ttyUSB0::INTFC` \
                    (Prologix GPIB-ETHERNET and GPIB-USB adapters serving board 0)";

/// Highest GPIB primary address.
pub(crate) const MAX_PAD: u8 = 30;
/// GPIB secondary addresses as the Prologix `++addr` command takes them (VISA writes them as
/// 0 to 30; add 96).
pub(crate) const SADS: std::ops::RangeInclusive<u8> = 96..=126;

/// Where an instrument is reached, parsed from a VISA-style resource string.
///
/// Keywords are case-insensitive; [`Display`](fmt::Display) writes the canonical upper-case form,
/// and parsing that back yields the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A serial port (or a pseudo-terminal) named by its absolute device path:
    /// `ASRL/dev/ttyUSB0::INSTR`.
    Serial {
        /// Absolute path of the device node.
        path: PathBuf,
    },
    /// A raw TCP socket: `TCPIP::127.0.0.1::5025::SOCKET` (the board number, as in `TCPIP0`, is
    /// accepted and ignored).
    Tcp {
        /// Host name or IP address; an IPv6 address is written in brackets in the resource string
        /// but stored without them.
        host: String,
        /// TCP port, never 0.
        port: u16,
    },
    /// An instrument on a GPIB bus, reached through the adapter serving board `board`:
    /// `GPIB0::22::INSTR`, `GPIB0::22::96::INSTR` (the board number defaults to 0).
    Gpib {
        /// The bus (adapter) number.
        board: u8,
        /// Primary address, 0 to 30.
        pad: u8,
        /// Secondary address, 96 to 126 as Prologix's `++addr` takes it.
        sad: Option<u8>,
    },
    /// A Prologix GPIB-ETHERNET adapter serving board `board`:
    /// `PRLGX-TCPIP0::192.0.2.20::1234::INTFC` (the adapter listens on port 1234).
    PrologixTcp {
        /// The bus number its instruments name.
        board: u8,
        /// Host name or IP address, stored as for [`Resource::Tcp`].
        host: String,
        /// TCP port, never 0.
        port: u16,
    },
    /// A Prologix GPIB-USB adapter (a virtual serial port) serving board `board`:
    /// `PRLGX-ASRL0::/dev/ttyUSB0::INTFC`.
    PrologixSerial {
        /// The bus number its instruments name.
        board: u8,
        /// Absolute path of the device node.
        path: PathBuf,
    },
}

/// A resource string that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Not one of the accepted forms.
    #[error("unrecognised instrument resource `{resource}` ({HINT})")]
    Unrecognised {
        /// The string as given.
        resource: String,
    },
    /// A serial resource whose device path is empty, relative or contains a NUL byte.
    #[error("serial resource `{resource}` does not name an absolute device path ({HINT})")]
    BadPath {
        /// The string as given.
        resource: String,
    },
    /// A TCP resource whose host is empty or not a valid host name or address.
    #[error("TCP resource `{resource}` has an invalid host ({HINT})")]
    BadHost {
        /// The string as given.
        resource: String,
    },
    /// A TCP resource whose port is not a number from 1 to 65535.
    #[error("TCP resource `{resource}` has an invalid port ({HINT})")]
    BadPort {
        /// The string as given.
        resource: String,
    },
    /// A GPIB or adapter resource whose board number is not 0 to 255.
    #[error("resource `{resource}` has an invalid board number, expected 0 to 255 ({HINT})")]
    BadBoard {
        /// The string as given.
        resource: String,
    },
    /// A GPIB resource whose primary address is not 0 to 30 or whose secondary address is not
    /// 96 to 126.
    #[error(
        "GPIB resource `{resource}` has an invalid address, expected a primary address 0 to 30 \
         and an optional secondary address 96 to 126 (VISA's 0 to 30 plus 96) ({HINT})"
    )]
    BadGpibAddress {
        /// The string as given.
        resource: String,
    },
}

/// Strips `prefix` from `text`, ignoring ASCII case.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Strips `suffix` from `text`, ignoring ASCII case.
fn strip_suffix_ci<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let split = text.len().checked_sub(suffix.len())?;
    let tail = text.get(split..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| text.get(..split))
        .flatten()
}

/// A DNS name or IPv4 literal: letters, digits, `-`, `.` and `_` (seen in lab DNS), not starting
/// with `-` so it can never be mistaken for an option when logged or passed on.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl FromStr for Resource {
    type Err = ResourceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Some(rest) = strip_prefix_ci(trimmed, "PRLGX-TCPIP") {
            let (board, rest) = parse_board(rest, text)?;
            let body = strip_suffix_ci(rest, "::INTFC").ok_or_else(|| unrecognised(text))?;
            let (host, port) = parse_host_port(body, text)?;
            return Ok(Self::PrologixTcp { board, host, port });
        }
        if let Some(rest) = strip_prefix_ci(trimmed, "PRLGX-ASRL") {
            let (board, rest) = parse_board(rest, text)?;
            let path = strip_suffix_ci(rest, "::INTFC").ok_or_else(|| unrecognised(text))?;
            let path = parse_path(path, text)?;
            return Ok(Self::PrologixSerial { board, path });
        }
        if let Some(rest) = strip_prefix_ci(trimmed, "GPIB") {
            let (board, rest) = parse_board(rest, text)?;
            let body = strip_suffix_ci(rest, "::INSTR").ok_or_else(|| unrecognised(text))?;
            let bad = || ResourceError::BadGpibAddress {
                resource: text.to_owned(),
            };
            let (pad, sad) = match body.split_once("::") {
                Some((pad, sad)) => (pad, Some(sad)),
                None => (body, None),
            };
            let pad = parse_u8(pad).filter(|&p| p <= MAX_PAD).ok_or_else(bad)?;
            let sad = match sad {
                Some(sad) => Some(parse_u8(sad).filter(|s| SADS.contains(s)).ok_or_else(bad)?),
                None => None,
            };
            return Ok(Self::Gpib { board, pad, sad });
        }
        if let Some(rest) = strip_prefix_ci(trimmed, "ASRL") {
            let path = strip_suffix_ci(rest, "::INSTR").ok_or_else(|| unrecognised(text))?;
            let path = parse_path(path, text)?;
            return Ok(Self::Serial { path });
        }
        if let Some(rest) = strip_prefix_ci(trimmed, "TCPIP") {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let rest = rest.strip_prefix("::").ok_or_else(|| unrecognised(text))?;
            let body = strip_suffix_ci(rest, "::SOCKET").ok_or_else(|| unrecognised(text))?;
            let (host, port) = parse_host_port(body, text)?;
            return Ok(Self::Tcp { host, port });
        }
        Err(unrecognised(text))
    }
}

/// The board number right after a keyword (0 when absent) and the rest after its `::`.
fn parse_board<'a>(rest: &'a str, text: &str) -> Result<(u8, &'a str), ResourceError> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (board, rest) = rest
        .split_at_checked(digits)
        .ok_or_else(|| unrecognised(text))?;
    let rest = rest.strip_prefix("::").ok_or_else(|| unrecognised(text))?;
    if board.is_empty() {
        return Ok((0, rest));
    }
    let board = parse_u8(board).ok_or_else(|| ResourceError::BadBoard {
        resource: text.to_owned(),
    })?;
    Ok((board, rest))
}

/// Decimal digits only (`u8::from_str` would also take a leading `+`).
fn parse_u8(digits: &str) -> Option<u8> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An absolute device path without NUL bytes.
fn parse_path(path: &str, text: &str) -> Result<PathBuf, ResourceError> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(ResourceError::BadPath {
            resource: text.to_owned(),
        });
    }
    Ok(PathBuf::from(path))
}

/// `host::port`, the host possibly a bracketed IPv6 address.
fn parse_host_port(body: &str, text: &str) -> Result<(String, u16), ResourceError> {
    let (host, port) = body.rsplit_once("::").ok_or_else(|| unrecognised(text))?;
    let host = parse_host(host).ok_or_else(|| ResourceError::BadHost {
        resource: text.to_owned(),
    })?;
    let port = parse_port(port).ok_or_else(|| ResourceError::BadPort {
        resource: text.to_owned(),
    })?;
    Ok((host, port))
}

fn unrecognised(text: &str) -> ResourceError {
    ResourceError::Unrecognised {
        resource: text.to_owned(),
    }
}

/// `[v6-address]` or a plain host; returns the host as it is stored (without brackets).
fn parse_host(host: &str) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(|_| inner.to_owned());
    }
    is_plain_host(host).then(|| host.to_owned())
}

/// Decimal digits only (`u16::from_str` would also take a leading `+`), 1 to 65535.
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|&p| p != 0)
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serial { path } => write!(f, "ASRL{}::INSTR", path.display()),
            Self::Tcp { host, port } if host.contains(':') => {
                write!(f, "TCPIP::[{host}]::{port}::SOCKET")
            }
            Self::Tcp { host, port } => write!(f, "TCPIP::{host}::{port}::SOCKET"),
            Self::Gpib {
                board,
                pad,
                sad: None,
            } => write!(f, "GPIB{board}::{pad}::INSTR"),
            Self::Gpib {
                board,
                pad,
                sad: Some(sad),
            } => write!(f, "GPIB{board}::{pad}::{sad}::INSTR"),
            Self::PrologixTcp { board, host, port } if host.contains(':') => {
                write!(f, "PRLGX-TCPIP{board}::[{host}]::{port}::INTFC")
            }
            Self::PrologixTcp { board, host, port } => {
                write!(f, "PRLGX-TCPIP{board}::{host}::{port}::INTFC")
            }
            Self::PrologixSerial { board, path } => {
                write!(f, "PRLGX-ASRL{board}::{}::INTFC", path.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serial(path: &str) -> Resource {
        Resource::Serial {
            path: PathBuf::from(path),
        }
    }

    fn tcp(host: &str, port: u16) -> Resource {
        Resource::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    fn gpib(board: u8, pad: u8, sad: Option<u8>) -> Resource {
        Resource::Gpib { board, pad, sad }
    }

    fn prologix_tcp(board: u8, host: &str, port: u16) -> Resource {
        Resource::PrologixTcp {
            board,
            host: host.to_owned(),
            port,
        }
    }

    fn prologix_serial(board: u8, path: &str) -> Resource {
        Resource::PrologixSerial {
            board,
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("ASRL/dev/ttyUSB0::INSTR", serial("/dev/ttyUSB0")),
            ("ASRL/dev/pts/7::INSTR", serial("/dev/pts/7")),
            ("asrl/dev/ttyS0::instr", serial("/dev/ttyS0")),
            (
                "  ASRL/dev/serial/by-id/usb-FTDI_x-if00::INSTR\n",
                serial("/dev/serial/by-id/usb-FTDI_x-if00"),
            ),
            ("TCPIP::127.0.0.1::5025::SOCKET", tcp("127.0.0.1", 5025)),
            (
                "TCPIP0::host.example::5025::SOCKET",
                tcp("host.example", 5025),
            ),
            ("tcpip12::dmm-1.lab::1234::socket", tcp("dmm-1.lab", 1234)),
            ("TCPIP::[::1]::5025::SOCKET", tcp("::1", 5025)),
            ("TCPIP::[fe80::1]::65535::SOCKET", tcp("fe80::1", 65535)),
            ("GPIB0::22::INSTR", gpib(0, 22, None)),
            ("GPIB::0::INSTR", gpib(0, 0, None)),
            ("gpib1::30::126::instr", gpib(1, 30, Some(126))),
            ("GPIB255::5::96::INSTR", gpib(255, 5, Some(96))),
            (
                "PRLGX-TCPIP0::192.168.1.110::1234::INTFC",
                prologix_tcp(0, "192.168.1.110", 1234),
            ),
            (
                "prlgx-tcpip::prologix-00-21-69-01-31-04::1234::intfc",
                prologix_tcp(0, "prologix-00-21-69-01-31-04", 1234),
            ),
            (
                "PRLGX-TCPIP2::[::1]::1234::INTFC",
                prologix_tcp(2, "::1", 1234),
            ),
            (
                "PRLGX-ASRL::/dev/ttyUSB0::INTFC",
                prologix_serial(0, "/dev/ttyUSB0"),
            ),
            (
                "PRLGX-ASRL3::/dev/serial/by-id/usb-Prologix-if00::INTFC",
                prologix_serial(3, "/dev/serial/by-id/usb-Prologix-if00"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Resource>(), Ok(expected), "{text}");
        }
    }

    /// The variant's name, so expectations read as a table.
    fn kind(error: &ResourceError) -> &'static str {
        match error {
            ResourceError::Unrecognised { .. } => "unrecognised",
            ResourceError::BadPath { .. } => "path",
            ResourceError::BadHost { .. } => "host",
            ResourceError::BadPort { .. } => "port",
            ResourceError::BadBoard { .. } => "board",
            ResourceError::BadGpibAddress { .. } => "address",
        }
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            ("", "unrecognised"),
            ("GPIB0::22", "unrecognised"),
            ("GPIB0::22::SOCKET", "unrecognised"),
            ("GPIB0:22::INSTR", "unrecognised"),
            ("GPIBx::22::INSTR", "unrecognised"),
            ("GPIB256::22::INSTR", "board"),
            ("GPIB0::31::INSTR", "address"),
            ("GPIB0::+5::INSTR", "address"),
            ("GPIB0::::INSTR", "address"),
            ("GPIB0::5::0::INSTR", "address"),
            ("GPIB0::5::95::INSTR", "address"),
            ("GPIB0::5::127::INSTR", "address"),
            ("GPIB0::5::96::1::INSTR", "address"),
            ("PRLGX-TCPIP0::host::1234::SOCKET", "unrecognised"),
            ("PRLGX-TCPIP0::host::INTFC", "unrecognised"),
            ("PRLGX-TCPIP0::-host::1234::INTFC", "host"),
            ("PRLGX-TCPIP0::host::0::INTFC", "port"),
            ("PRLGX-TCPIP999::host::1234::INTFC", "board"),
            ("PRLGX-ASRL0::dev/ttyUSB0::INTFC", "path"),
            ("PRLGX-ASRL0/dev/ttyUSB0::INTFC", "unrecognised"),
            ("PRLGX-ASRL0::/dev/ttyUSB0::INSTR", "unrecognised"),
            ("ASRL1::INSTR", "path"),
            ("ASRLdev/ttyUSB0::INSTR", "path"),
            ("ASRL::INSTR", "path"),
            ("ASRL/dev/ttyUSB0", "unrecognised"),
            ("ASRL/dev/tty\0::INSTR", "path"),
            ("TCPIP::host::5025::INSTR", "unrecognised"),
            ("TCPIP::host::SOCKET", "unrecognised"),
            ("TCPIPx::host::5025::SOCKET", "unrecognised"),
            ("TCPIP::::5025::SOCKET", "host"),
            ("TCPIP::ho st::5025::SOCKET", "host"),
            ("TCPIP::-host::5025::SOCKET", "host"),
            ("TCPIP::[nothex]::5025::SOCKET", "host"),
            ("TCPIP::host::0::SOCKET", "port"),
            ("TCPIP::host::+5025::SOCKET", "port"),
            ("TCPIP::host::65536::SOCKET", "port"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<Resource>().unwrap_err();
            assert_eq!(kind(&error), expected, "{text:?} gave {error:?}");
            let (ResourceError::Unrecognised { resource }
            | ResourceError::BadPath { resource }
            | ResourceError::BadHost { resource }
            | ResourceError::BadPort { resource }
            | ResourceError::BadBoard { resource }
            | ResourceError::BadGpibAddress { resource }) = &error;
            assert_eq!(resource, text);
        }
    }

    #[test]
    fn error_names_the_string_and_hints() {
        let message = "COM3".parse::<Resource>().unwrap_err().to_string();
        assert!(message.contains("`COM3`"), "{message}");
        assert!(message.contains("ASRL/dev/ttyUSB0::INSTR"), "{message}");
        assert!(message.contains("::SOCKET"), "{message}");
        assert!(message.contains("GPIB0::22::INSTR"), "{message}");
        assert!(message.contains("PRLGX-ASRL0::"), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(serial("/dev/pts/7").to_string(), "ASRL/dev/pts/7::INSTR");
        assert_eq!(
            tcp("10.0.0.5", 5025).to_string(),
            "TCPIP::10.0.0.5::5025::SOCKET"
        );
        assert_eq!(tcp("::1", 5025).to_string(), "TCPIP::[::1]::5025::SOCKET");
        assert_eq!(gpib(0, 22, None).to_string(), "GPIB0::22::INSTR");
        assert_eq!(gpib(1, 5, Some(96)).to_string(), "GPIB1::5::96::INSTR");
        assert_eq!(
            prologix_tcp(0, "10.0.0.9", 1234).to_string(),
            "PRLGX-TCPIP0::10.0.0.9::1234::INTFC"
        );
        assert_eq!(
            prologix_tcp(0, "fe80::1", 1234).to_string(),
            "PRLGX-TCPIP0::[fe80::1]::1234::INTFC"
        );
        assert_eq!(
            prologix_serial(2, "/dev/ttyUSB1").to_string(),
            "PRLGX-ASRL2::/dev/ttyUSB1::INTFC"
        );
    }

    fn any_resource() -> impl Strategy<Value = Resource> {
        prop_oneof![
            "/[A-Za-z0-9_./:-]{0,40}".prop_map(|p| serial(&p)),
            ("[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", 1u16..).prop_map(|(h, p)| tcp(&h, p)),
            (any::<[u16; 8]>(), 1u16..)
                .prop_map(|(segments, p)| tcp(&Ipv6Addr::from(segments).to_string(), p)),
            (any::<u8>(), 0..=MAX_PAD, prop::option::of(SADS))
                .prop_map(|(board, pad, sad)| gpib(board, pad, sad)),
            (any::<u8>(), "[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", 1u16..)
                .prop_map(|(board, h, p)| prologix_tcp(board, &h, p)),
            (any::<u8>(), any::<[u16; 8]>(), 1u16..).prop_map(|(board, segments, p)| {
                prologix_tcp(board, &Ipv6Addr::from(segments).to_string(), p)
            }),
            (any::<u8>(), "/[A-Za-z0-9_./:-]{0,40}")
                .prop_map(|(board, p)| prologix_serial(board, &p)),
        ]
    }

    /// Strings made of the grammar's own pieces reach deeper into the parser than random text.
    fn resource_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("ASRL".to_owned()),
            Just("asrl".to_owned()),
            Just("TCPIP".to_owned()),
            Just("::".to_owned()),
            Just("INSTR".to_owned()),
            Just("SOCKET".to_owned()),
            Just("GPIB".to_owned()),
            Just("PRLGX-".to_owned()),
            Just("INTFC".to_owned()),
            Just("/".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            "[0-9]{1,6}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = text.parse::<Resource>();
        }

        #[test]
        fn parse_never_panics_on_resource_like_text(text in resource_like()) {
            if let Ok(resource) = text.parse::<Resource>() {
                prop_assert_eq!(resource.to_string().parse::<Resource>(), Ok(resource));
            }
        }

        #[test]
        fn display_round_trips(resource in any_resource()) {
            prop_assert_eq!(resource.to_string().parse::<Resource>(), Ok(resource));
        }
    }
}
