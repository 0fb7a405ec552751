//! The systemd notification protocol (`sd_notify`), spoken directly: one datagram of
//! `KEY=value` lines to the socket `NOTIFY_SOCKET` names. Done here rather than through
//! libsystemd because the protocol is a few lines of text over a Unix datagram socket, and a C
//! library would be a build and deployment dependency for that alone.
//!
//! What the daemon says: `READY=1` once its instruments have been opened and identified at
//! start, `WATCHDOG=1` while its task makes progress, `STATUS=…` (instruments online, next slots)
//! when that text changes, and `STOPPING=1` when a stop is asked for.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) every call does nothing. A
//! failure to send is logged once and never stops the daemon: measuring matters more than telling
//! systemd about it, and the watchdog will act if the daemon is truly stuck.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::report;

/// Why the notification socket cannot be used, or a message not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor an abstract name (`@…`).
    #[error("NOTIFY_SOCKET `{0}` is neither an absolute path nor an abstract socket name (`@…`)")]
    Address(String),
    /// Abstract socket names exist on Linux only.
    #[error("NOTIFY_SOCKET `{0}` is an abstract socket name, which this system does not have")]
    NoAbstract(String),
    /// `WATCHDOG_USEC` is not a positive whole number of microseconds.
    #[error("WATCHDOG_USEC `{0}` is not a positive whole number of microseconds")]
    WatchdogUsec(String),
    /// The socket could not be made, or the datagram not sent.
    #[error("cannot notify systemd at `{socket}`")]
    Send {
        /// `NOTIFY_SOCKET`.
        socket: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract socket: the name without the leading `@` (which stands for a NUL byte).
    Abstract(Vec<u8>),
}

/// Parses `NOTIFY_SOCKET`: an absolute path, or `@name` for an abstract socket. An empty value
/// means "not set", as libsystemd reads it.
fn parse_address(value: &OsString) -> Result<Option<Address>, NotifyError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    match bytes.first() {
        None => Ok(None),
        Some(b'/') => Ok(Some(Address::Path(PathBuf::from(value)))),
        Some(b'@') => Ok(Some(Address::Abstract(bytes[1..].to_vec()))),
        Some(_) => Err(NotifyError::Address(value.to_string_lossy().into_owned())),
    }
}

/// The interval at which to send `WATCHDOG=1`: half the `WATCHDOG_USEC` timeout, as systemd
/// advises, so one late ping is not yet a missed one. `None` when there is no watchdog: the
/// variable is unset, or `WATCHDOG_PID` names another process (the variables were inherited from
/// a parent that systemd watches, not us).
pub fn watchdog_interval(
    usec: Option<&str>,
    watchdog_pid: Option<&str>,
    pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(watched) = watchdog_pid
        && watched.trim().parse::<u32>().ok() != Some(pid)
    {
        return Ok(None);
    }
    match usec.trim().parse::<u64>() {
        Ok(us) if us > 0 => Ok(Some(Duration::from_micros(us) / 2)),
        _ => Err(NotifyError::WatchdogUsec(usec.to_owned())),
    }
}

/// The daemon's line to systemd. Made once at start ([`Notifier::from_env`]) and passed to the
/// daemon; without `NOTIFY_SOCKET` it is silent.
#[derive(Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` as given, for messages.
    name: String,
    address: Option<Address>,
    /// Opened at the first message and kept: one socket for the life of the daemon.
    socket: Option<UnixDatagram>,
    watchdog: Option<Duration>,
    /// The last `STATUS=` text sent, so an unchanged status is not sent again every tick.
    status: Option<String>,
    stopping: bool,
    /// Whether a failure has been logged: systemd gone away would otherwise fill the log with
    /// the same warning every ping.
    warned: bool,
}

impl Notifier {
    /// A notifier that says nothing (not under systemd; tests).
    pub fn silent() -> Self {
        Self {
            name: String::new(),
            address: None,
            socket: None,
            watchdog: None,
            status: None,
            stopping: false,
            warned: false,
        }
    }

    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. A value it cannot use is logged
    /// and that part left off (a malformed watchdog variable must not keep the lab from
    /// measuring); systemd then restarts or times out the service, which says the rest.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::from_vars(socket, usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// From the variables' values, for a process `pid`.
    pub fn from_vars(
        socket: Option<OsString>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Self {
        let mut notifier = Self::silent();
        let Some(socket) = socket else {
            return notifier;
        };
        notifier.name = socket.to_string_lossy().into_owned();
        match parse_address(&socket) {
            Ok(address) => notifier.address = address,
            Err(e) => {
                tracing::warn!(error = %report(&e), "not notifying systemd");
                return notifier;
            }
        }
        if notifier.address.is_none() {
            return notifier;
        }
        match watchdog_interval(watchdog_usec, watchdog_pid, pid) {
            Ok(interval) => notifier.watchdog = interval,
            Err(e) => tracing::warn!(error = %report(&e), "no watchdog pings"),
        }
        notifier
    }

    /// Whether there is anyone to notify.
    pub fn is_active(&self) -> bool {
        self.address.is_some()
    }

    /// How often to send `WATCHDOG=1`, if systemd watches this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`, with the first status in the same datagram so `systemctl status` never shows
    /// a ready service without one.
    pub fn ready(&mut self, status: &str) {
        self.status = Some(status.to_owned());
        self.send(&format!("READY=1\n{}", status_line(status)));
    }

    /// `STATUS=…`, if the text differs from the last one sent.
    pub fn status(&mut self, status: &str) {
        if self.status.as_deref() == Some(status) {
            return;
        }
        self.status = Some(status.to_owned());
        self.send(&status_line(status));
    }

    /// `WATCHDOG=1`, if systemd watches this process.
    pub fn watchdog(&mut self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }

    /// Whether `STOPPING=1` has been said.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// `STOPPING=1`, once: systemd then shows the service as deactivating while the reading in
    /// progress finishes.
    pub fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.send("STOPPING=1");
        }
    }

    fn send(&mut self, message: &str) {
        if self.address.is_none() {
            return;
        }
        if let Err(e) = self.try_send(message)
            && !self.warned
        {
            self.warned = true;
            tracing::warn!(error = %report(&e), "systemd notification failed; further failures are not logged");
        }
    }

    fn try_send(&mut self, message: &str) -> Result<(), NotifyError> {
        let fail = |name: &str, source| NotifyError::Send {
            socket: name.to_owned(),
            source,
        };
        let socket = match self.socket.take() {
            Some(socket) => socket,
            None => {
                let socket = UnixDatagram::unbound().map_err(|e| fail(&self.name, e))?;
                // A full queue at systemd's end must not stall the schedule: better a lost
                // ping (logged) than a blocked daemon.
                socket
                    .set_nonblocking(true)
                    .map_err(|e| fail(&self.name, e))?;
                socket
            }
        };
        let sent = match &self.address {
            None => Ok(0),
            Some(Address::Path(path)) => socket.send_to(message.as_bytes(), path),
            Some(Address::Abstract(name)) => send_abstract(&socket, name, message, &self.name)?,
        };
        self.socket = Some(socket);
        sent.map(|_| ()).map_err(|e| fail(&self.name, e))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(
    socket: &UnixDatagram,
    name: &[u8],
    message: &str,
    _socket_name: &str,
) -> Result<std::io::Result<usize>, NotifyError> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    Ok(std::os::unix::net::SocketAddr::from_abstract_name(name)
        .and_then(|address| socket.send_to_addr(message.as_bytes(), &address)))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(
    _socket: &UnixDatagram,
    _name: &[u8],
    _message: &str,
    socket_name: &str,
) -> Result<std::io::Result<usize>, NotifyError> {
    Err(NotifyError::NoAbstract(socket_name.to_owned()))
}

/// A `STATUS=` line; a newline in the text would start another assignment, so it becomes a
/// space.
fn status_line(status: &str) -> String {
    format!("STATUS={}", status.replace(['\n', '\r'], " "))
}

/// The status text: `3/3 instruments online; next stability 14:30Z`, a slot of each scheduled
/// sequence after `next`, joined by commas. `running` names a sequence whose run is in progress.
pub fn status_text(
    online: usize,
    total: usize,
    running: Option<&str>,
    next: &[(&str, i64)],
    now_us: i64,
) -> String {
    let mut text = format!("{online}/{total} instruments online");
    if let Some(sequence) = running {
        text.push_str(&format!("; running {sequence}"));
    }
    if !next.is_empty() {
        let slots: Vec<String> = next
            .iter()
            .map(|(sequence, slot)| format!("{sequence} {}", slot_time(*slot, now_us)))
            .collect();
        text.push_str(&format!("; next {}", slots.join(", ")));
    }
    text
}

/// A slot in UTC as `HH:MMZ`, short enough for `systemctl status`: seconds only when the slot has
/// them (`every = "30s"`), and the date only when it is not today's (`every = "7d"`), so the
/// short form is never ambiguous.
pub fn slot_time(slot_us: i64, now_us: i64) -> String {
    let text = crate::clock::rfc3339(slot_us);
    // `YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed widths for any year the agent will see.
    let (Some(date), Some(hm), Some(sec)) = (text.get(0..10), text.get(11..16), text.get(16..19))
    else {
        return text;
    };
    let mut out = String::new();
    let today = crate::clock::rfc3339(now_us);
    if today.get(0..10) != Some(date) {
        out.push_str(date);
        out.push(' ');
    }
    out.push_str(hm);
    if sec != ":00" {
        out.push_str(sec);
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    const DAY_US: i64 = 86_400_000_000;
    /// 2026-11-26T14:30:00Z.
    const T: i64 = 1_795_703_400_000_000;

    #[test]
    fn slot_times_are_short_but_unambiguous() {
        assert_eq!(crate::clock::rfc3339(T), "2026-11-26T14:30:00.000000Z");
        assert_eq!(slot_time(T, T - 60_000_000), "14:30Z");
        assert_eq!(slot_time(T + 30_000_000, T), "14:30:30Z");
        assert_eq!(slot_time(T + DAY_US, T), "2026-11-27 14:30Z");
    }

    #[test]
    fn status_names_instruments_and_each_next_slot() {
        assert_eq!(
            status_text(3, 3, None, &[("stability", T)], T - 1),
            "3/3 instruments online; next stability 14:30Z"
        );
        assert_eq!(
            status_text(
                2,
                3,
                Some("drift"),
                &[("stability", T), ("drift", T + 1_800_000_000)],
                T - 1
            ),
            "2/3 instruments online; running drift; next stability 14:30Z, drift 15:00Z"
        );
        assert_eq!(status_text(0, 1, None, &[], T), "0/1 instruments online");
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(status_line("a\nREADY=1"), "STATUS=a READY=1");
    }

    #[test]
    fn watchdog_pings_at_half_the_timeout() {
        assert_eq!(
            watchdog_interval(Some("400000"), None, 7).unwrap(),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7).unwrap(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(None, None, 7).unwrap(), None);
    }

    #[test]
    fn another_process_s_watchdog_is_not_ours() {
        assert_eq!(
            watchdog_interval(Some("400000"), Some("8"), 7).unwrap(),
            None
        );
        assert_eq!(
            watchdog_interval(Some("400000"), Some("x"), 7).unwrap(),
            None
        );
    }

    #[test]
    fn a_bad_watchdog_usec_is_an_error() {
        for bad in ["", "0", "-5", "1.5", "12s", "99999999999999999999999"] {
            assert!(
                matches!(
                    watchdog_interval(Some(bad), None, 7),
                    Err(NotifyError::WatchdogUsec(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert_eq!(parse_address(&OsString::new()).unwrap(), None);
        assert_eq!(
            parse_address(&"/run/systemd/notify".into()).unwrap(),
            Some(Address::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_address(&"@sd/notify".into()).unwrap(),
            Some(Address::Abstract(b"sd/notify".to_vec()))
        );
        assert!(matches!(
            parse_address(&"relative/notify".into()),
            Err(NotifyError::Address(_))
        ));
    }

    #[test]
    fn without_notify_socket_nothing_is_active() {
        let n = Notifier::from_vars(None, Some("400000"), None, 7);
        assert!(!n.is_active());
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::from_vars(Some("bad".into()), Some("400000"), None, 7);
        assert!(!n.is_active());
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_reach_a_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut n = Notifier::from_vars(Some(path.into()), Some("1000000"), None, 7);
        n.ready("1/1 instruments online");
        assert_eq!(recv(&socket), "READY=1\nSTATUS=1/1 instruments online");
        n.status("1/1 instruments online");
        n.watchdog();
        assert_eq!(
            recv(&socket),
            "WATCHDOG=1",
            "an unchanged status is not sent"
        );
        n.status("0/1 instruments online");
        assert_eq!(recv(&socket), "STATUS=0/1 instruments online");
        n.stopping();
        n.stopping();
        n.watchdog();
        assert_eq!(recv(&socket), "STOPPING=1");
        assert_eq!(recv(&socket), "WATCHDOG=1", "STOPPING=1 is sent once");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tsagent-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let socket = UnixDatagram::bind_addr(&address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut n = Notifier::from_vars(Some(format!("@{name}").into()), None, None, 7);
        n.watchdog();
        n.stopping();
        assert_eq!(
            recv(&socket),
            "STOPPING=1",
            "no watchdog without WATCHDOG_USEC"
        );
    }

    #[test]
    fn a_failed_send_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = Notifier::from_vars(Some(dir.path().join("gone").into()), None, None, 7);
        n.ready("x");
        n.status("y");
        n.stopping();
        assert!(n.warned);
    }
}
