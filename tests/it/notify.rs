//! `tsagent run` under systemd's notification protocol: a real Unix datagram socket stands in for
//! systemd's, and the daemon is told of it by `NOTIFY_SOCKET` as systemd would.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;

/// systemd's end of the line: every datagram split into its `KEY=value` lines.
struct Systemd {
    socket: UnixDatagram,
}

impl Systemd {
    fn bind(path: &std::path::Path) -> Systemd {
        let socket = UnixDatagram::bind(path).unwrap();
        Systemd { socket }
    }

    /// The lines of the next datagram, or `None` if none comes within `wait`.
    fn next(&self, wait: Duration) -> Option<Vec<String>> {
        self.socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(
                String::from_utf8(buf[..n].to_vec())
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Lines until one satisfies `pred`; returns every line read, that one last. Panics after
    /// [`PATIENCE`].
    fn until(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(lines) = self.next(left) else {
                panic!("no matching notification; got {seen:?}");
            };
            for line in lines {
                let done = pred(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
        }
    }

    /// Every line received during `window`.
    fn during(&self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(lines) = self.next(left) {
                seen.extend(lines);
            }
        }
        seen
    }
}

/// READY once the instrument is identified, a status line, watchdog pings at half of
/// `WATCHDOG_USEC` (between and during runs), and STOPPING after SIGTERM, before the exit.
#[test]
fn run_notifies_systemd() {
    let mut lab = Lab::simulated();
    // Runs of a few hundred milliseconds every second: the window below spans runs and waits.
    lab.count = 5;
    lab.interval = "50ms".into();
    lab.every = Some("1s".into());
    let sock = lab.path().join("notify.sock");
    let systemd = Systemd::bind(&sock);
    let d = Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(lab.config())
            .env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID"),
    );

    // The first word is READY, with a status saying the instrument is online: it comes after
    // the start-up check has identified it, and before any ping.
    let first = systemd.next(PATIENCE).expect("no notification at all");
    assert_eq!(first[0], "READY=1", "{first:?}");
    assert!(
        first.len() == 2 && first[1].starts_with("STATUS=1/1 instruments online; next s "),
        "{first:?}"
    );

    // 200 ms pings over 3 s: about 15. A loaded machine may delay some, never double them.
    let window = systemd.during(Duration::from_secs(3));
    let pings = window.iter().filter(|l| *l == "WATCHDOG=1").count();
    assert!(
        (7..=17).contains(&pings),
        "{pings} pings in 3 s: {window:?}"
    );
    assert!(
        window
            .iter()
            .any(|l| l.starts_with("STATUS=") && l.contains("running s")),
        "{window:?}"
    );
    assert!(!window.iter().any(|l| l == "STOPPING=1"), "{window:?}");

    d.signal(Signal::SIGTERM);
    systemd.until(|l| l == "STOPPING=1");
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
    lab.assert_sound();
}

/// Without `WATCHDOG_USEC` there are no pings, and a `WATCHDOG_PID` of another process means the
/// watchdog is not ours; READY and STOPPING still come.
#[test]
fn no_pings_for_another_process_s_watchdog() {
    let mut lab = Lab::simulated();
    lab.count = 1;
    lab.every = Some("1s".into());
    let sock = lab.path().join("notify.sock");
    let systemd = Systemd::bind(&sock);
    let d = Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(lab.config())
            .env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "400000")
            .env("WATCHDOG_PID", "1"),
    );
    systemd.until(|l| l == "READY=1");
    d.wait_for_err(|l| l.contains("run ended"));
    d.signal(Signal::SIGTERM);
    let lines = systemd.until(|l| l == "STOPPING=1");
    assert!(!lines.iter().any(|l| l == "WATCHDOG=1"), "{lines:?}");
    let (status, stderr) = d.finish();
    assert!(status.success(), "{stderr}");
}
