//! VISA-style resource strings: where an instrument is connected.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;

/// The accepted forms, repeated in every parse error so a typo in the config explains itself.
const HINT: &str = "hint: accepted forms are `ASRL/dev/ttyUSB0::INSTR` (serial port, absolute path) \
                    and `TCPIP::192.0.2.10::5025::SOCKET` (raw TCP socket)";

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
}

/// A resource string that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Neither an `ASRL…::INSTR` nor a `TCPIP…::SOCKET` string.
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
        if let Some(rest) = strip_prefix_ci(trimmed, "ASRL") {
            let path = strip_suffix_ci(rest, "::INSTR").ok_or_else(|| unrecognised(text))?;
            if !path.starts_with('/') || path.contains('\0') {
                return Err(ResourceError::BadPath {
                    resource: text.to_owned(),
                });
            }
            return Ok(Self::Serial {
                path: PathBuf::from(path),
            });
        }
        if let Some(rest) = strip_prefix_ci(trimmed, "TCPIP") {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let rest = rest.strip_prefix("::").ok_or_else(|| unrecognised(text))?;
            let body = strip_suffix_ci(rest, "::SOCKET").ok_or_else(|| unrecognised(text))?;
            let (host, port) = body.rsplit_once("::").ok_or_else(|| unrecognised(text))?;
            let host = parse_host(host).ok_or_else(|| ResourceError::BadHost {
                resource: text.to_owned(),
            })?;
            let port = parse_port(port).ok_or_else(|| ResourceError::BadPort {
                resource: text.to_owned(),
            })?;
            return Ok(Self::Tcp { host, port });
        }
        Err(unrecognised(text))
    }
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
        }
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            ("", "unrecognised"),
            ("GPIB0::22::INSTR", "unrecognised"),
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
            | ResourceError::BadPort { resource }) = &error;
            assert_eq!(resource, text);
        }
    }

    #[test]
    fn error_names_the_string_and_hints() {
        let message = "COM3".parse::<Resource>().unwrap_err().to_string();
        assert!(message.contains("`COM3`"), "{message}");
        assert!(message.contains("ASRL/dev/ttyUSB0::INSTR"), "{message}");
        assert!(message.contains("::SOCKET"), "{message}");
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
    }

    fn any_resource() -> impl Strategy<Value = Resource> {
        prop_oneof![
            "/[A-Za-z0-9_./:-]{0,40}".prop_map(|p| serial(&p)),
            ("[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", 1u16..).prop_map(|(h, p)| tcp(&h, p)),
            (any::<[u16; 8]>(), 1u16..)
                .prop_map(|(segments, p)| tcp(&Ipv6Addr::from(segments).to_string(), p)),
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
