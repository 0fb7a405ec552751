//! The simulated meter on a pseudo-terminal, which tsagent opens like any serial port.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::pty::{OpenptyResult, openpty};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::exchange::ServeEnd;
use crate::server::{Control, SimServer};
use crate::spec::SimSpec;
use crate::station::Station;
use crate::wire::Pacer;
use crate::{SimError, SimParams};

/// How often the server lifts a client's exclusive-use lock on the terminal (see
/// [`release_exclusive`]).
const EXCLUSIVE_RELEASE_PERIOD: Duration = Duration::from_millis(100);

/// A simulated instrument (or a Prologix bus) behind a pseudo-terminal.
///
/// Clients open [`path`](PtyServer::path) (e.g. `/dev/pts/7`) as a serial port. The terminal is
/// raw (no echo, no line editing, no CR/LF translation). The server holds a slave descriptor of
/// its own, so a client closing does not hang up the terminal: clients are served one after
/// another by the same instrument, with its state, as a real instrument on a serial line would.
///
/// A disconnect fault closes the terminal (clients see a hang-up), removes the link, waits, and
/// opens a new terminal (at a new path when asked, and usually anyway while the old one is still
/// held open by a client), pointing the link at it: [`current_path`](PtyServer::current_path)
/// follows, [`path`](PtyServer::path) stays the first one.
///
/// Dropping the server stops it, closes the terminal (open clients see a hang-up) and removes
/// the link. Must be created inside a tokio runtime with I/O and timers enabled.
pub type PtyServer = SimServer<PtyLine>;

/// The line of a [`PtyServer`]: the terminal device, where it is now, and the link to it.
#[derive(Debug)]
pub struct PtyLine {
    /// The device clients opened first.
    path: PathBuf,
    link: Option<PathBuf>,
    /// The device now; the server task moves it when a disconnect fault reopens the terminal.
    current: Arc<Mutex<PathBuf>>,
}

impl PtyLine {
    fn current(&self) -> PathBuf {
        lock(&self.current).clone()
    }
}

impl Drop for PtyLine {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            remove_link(link, &self.current());
        }
    }
}

/// The path behind `current`, even if a thread panicked while holding it (a path is replaced
/// whole, so it is never half-written).
fn lock(current: &Mutex<PathBuf>) -> std::sync::MutexGuard<'_, PathBuf> {
    current
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An open pseudo-terminal: the master the server talks through, a slave it holds open, and
/// the slave's path.
struct Pty {
    master: PtyMaster,
    slave: OwnedFd,
    path: PathBuf,
}

fn open_pty() -> Result<Pty, SimError> {
    let OpenptyResult { master, slave } = openpty(None, None).map_err(SimError::OpenPty)?;
    // openpty(3) leaves both ends inheritable: a process started meanwhile by another thread
    // would keep the master open, and a simulated hang-up would then never reach the client.
    for fd in [&master, &slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(SimError::ConfigurePty)?;
    }

    let mut termios = tcgetattr(&slave).map_err(SimError::ConfigurePty)?;
    cfmakeraw(&mut termios);
    tcsetattr(&slave, SetArg::TCSANOW, &termios).map_err(SimError::ConfigurePty)?;

    let flags = fcntl(&master, FcntlArg::F_GETFL).map_err(SimError::ConfigurePty)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&master, FcntlArg::F_SETFL(flags)).map_err(SimError::ConfigurePty)?;

    let path = nix::unistd::ttyname(&slave).map_err(SimError::ConfigurePty)?;
    // SAFETY: `master` is an open descriptor that the AsyncFd owns for its whole life; it is
    // never swapped (no `get_mut`), so it stays the same file description until dropped.
    let master = unsafe { AsyncFd::register(master) }
        .map_err(|e| SimError::RegisterPty(io::Error::from(e)))?;
    Ok(Pty {
        master: PtyMaster { fd: master },
        slave,
        path,
    })
}

/// Opens a terminal at a path other than `old` when `new_path` asks for it. The kernel reuses a
/// freed number at once, so terminals at the old path are kept open until another one comes.
fn reopen_pty(old: &Path, new_path: bool) -> Result<Pty, SimError> {
    let mut held = Vec::new();
    loop {
        let pty = open_pty()?;
        if !new_path || pty.path != old || held.len() >= 8 {
            return Ok(pty);
        }
        held.push(pty);
    }
}

impl SimServer<PtyLine> {
    /// Opens a pseudo-terminal and starts serving the `generic-scpi-dmm` personality built from
    /// `params` on it.
    ///
    /// With `link`, a symlink to the device is created there (atomically replacing an existing
    /// symlink; anything else at that path is refused with [`SimError::LinkOccupied`]) and
    /// removed again when the server is dropped, so scripts can use a stable name.
    pub fn start(params: SimParams, link: Option<PathBuf>) -> Result<Self, SimError> {
        Self::start_spec(SimSpec::generic(params), link)
    }

    /// Like [`start`](PtyServer::start), serving whatever `spec` describes: a personality or a
    /// Prologix bus, with `--baud` pacing and faults.
    pub fn start_spec(spec: SimSpec, link: Option<PathBuf>) -> Result<Self, SimError> {
        let (control, station, pacer) = Control::start(spec)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SimError::NoRuntime);
        }
        let pty = open_pty()?;
        if let Some(link) = &link {
            make_link(link, &pty.path)?;
        }
        let path = pty.path.clone();
        let current = Arc::new(Mutex::new(path.clone()));
        let task = tokio::spawn(run(
            station,
            pty,
            pacer,
            control.clone(),
            Arc::clone(&current),
            link.clone(),
        ));
        tracing::info!(path = %path.display(), "simulator listening on a pseudo-terminal");
        let line = PtyLine {
            path,
            link,
            current,
        };
        Ok(SimServer::new(line, control, task))
    }

    /// The terminal device clients opened first, e.g. `/dev/pts/7`.
    pub fn path(&self) -> &Path {
        &self.line.path
    }

    /// The terminal device now (it changes when a disconnect fault reopens the terminal).
    pub fn current_path(&self) -> PathBuf {
        self.line.current()
    }

    /// The symlink created at start, if any.
    pub fn link(&self) -> Option<&Path> {
        self.line.link.as_deref()
    }
}

/// Pause before retrying to open a terminal that could not be opened.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// The server task: serve the master, keep the terminal usable, go away and come back when a
/// fault says so.
async fn run(
    mut station: Station,
    mut pty: Pty,
    mut pacer: Option<Pacer>,
    control: Control,
    current: Arc<Mutex<PathBuf>>,
    link: Option<PathBuf>,
) {
    loop {
        let end = {
            let slave = &pty.slave;
            let keep_shareable = async {
                let mut tick = tokio::time::interval(EXCLUSIVE_RELEASE_PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    release_exclusive(slave);
                }
            };
            tokio::select! {
                end = station.serve(&mut pty.master, &control.faults, &mut pacer) => end,
                _ = keep_shareable => return,
            }
        };
        let outage = match end {
            Ok(ServeEnd::Closed) => {
                tracing::info!("simulator pseudo-terminal closed");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "simulator pseudo-terminal failed");
                return;
            }
            Ok(ServeEnd::Disconnect(outage)) => outage,
        };
        let old = pty.path.clone();
        drop(pty);
        if let Some(link) = &link {
            remove_link(link, &old);
        }
        tracing::debug!(path = %old.display(), "simulator terminal closed for a disconnect");
        let new_path = outage.new_path;
        let reopen = async {
            let pty = loop {
                match reopen_pty(&old, new_path) {
                    Ok(p) => break p,
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator could not reopen its terminal");
                        tokio::time::sleep(REOPEN_BACKOFF).await;
                    }
                }
            };
            if let Some(link) = &link
                && let Err(e) = make_link(link, &pty.path)
            {
                tracing::warn!(error = %e, "simulator could not renew its link");
            }
            pty.path.clone_into(&mut lock(&current));
            tracing::info!(path = %pty.path.display(), "simulated reconnect");
            pty
        };
        pty = control.outage(outage, &mut station, reopen).await;
    }
}

/// Clears `TIOCEXCL` on the terminal.
///
/// serialport (under tokio-serial) opens ports in exclusive mode and does not clear it on close.
/// On a real port the flag dies with the last close; here the server's own slave descriptor keeps
/// the terminal alive, so without this the next client would get `EBUSY` (unless it has
/// CAP_SYS_ADMIN). The price: two clients can have the simulator open at once.
fn release_exclusive(slave: &OwnedFd) {
    // SAFETY: TIOCNXCL takes no argument and only clears a flag of the terminal behind `slave`,
    // a descriptor that stays open for the duration of the call.
    let rc = unsafe { nix::libc::ioctl(slave.as_raw_fd(), nix::libc::TIOCNXCL) };
    if rc != 0 {
        let error = Errno::last();
        tracing::debug!(%error, "could not clear TIOCEXCL on the simulator terminal");
    }
}

/// The master side of the pseudo-terminal as a tokio stream.
struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n.min(room));
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            return match nix::unistd::write(self.fd.get_ref(), data) {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(Errno::EINTR) => continue,
                // The client's input buffer is full: nobody is reading. A meter on a serial line
                // transmits regardless and the bytes are lost at the receiver; doing the same
                // here keeps a dead client from stalling the server.
                Err(Errno::EAGAIN) => {
                    tracing::debug!(
                        bytes = data.len(),
                        "simulator terminal full; output dropped"
                    );
                    Poll::Ready(Ok(data.len()))
                }
                Err(e) => Poll::Ready(Err(e.into())),
            };
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Points `link` at `target`, replacing an existing symlink atomically and nothing else.
fn make_link(link: &Path, target: &Path) -> Result<(), SimError> {
    let link_error = |source: io::Error| SimError::Link {
        path: link.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(link) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(SimError::LinkOccupied {
                path: link.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(link_error(e)),
    }
    let name = link.file_name().ok_or_else(|| {
        link_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the link path has no file name",
        ))
    })?;
    // Build the new link under a temporary name beside the old one, then rename it over: a
    // client looking the path up never finds it missing.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tsagent-sim-{}", std::process::id()));
    let tmp = link.with_file_name(tmp_name);
    if fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&tmp).map_err(link_error)?;
    }
    std::os::unix::fs::symlink(target, &tmp).map_err(link_error)?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(link_error(e));
    }
    Ok(())
}

/// Removes `link` if it still points at `target` (another simulator may have taken it over).
fn remove_link(link: &Path, target: &Path) {
    match fs::read_link(link) {
        Ok(points_to) if points_to == target => {
            if let Err(e) = fs::remove_file(link) {
                let link = link.display();
                tracing::warn!(%link, error = %e, "could not remove the simulator link");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Instant;

    use nix::sys::termios::{LocalFlags, SpecialCharacterIndices};

    use super::*;

    /// A client on the slave side, as a test harness or a terminal program would open it: plain
    /// read/write, raw mode, reads that give up after `VTIME` so a broken server fails the test
    /// instead of hanging it.
    struct Client {
        file: File,
    }

    impl Client {
        fn open(path: &Path) -> Self {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NOCTTY)
                .open(path)
                .unwrap();
            let mut t = tcgetattr(&file).unwrap();
            cfmakeraw(&mut t);
            t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
            t.control_chars[SpecialCharacterIndices::VTIME as usize] = 20; // 2 s
            tcsetattr(&file, SetArg::TCSANOW, &t).unwrap();
            Self { file }
        }

        fn send(&mut self, line: &str) {
            self.file.write_all(line.as_bytes()).unwrap();
        }

        /// Reads one LF-terminated reply; panics after 10 s without one.
        fn reply(&mut self) -> String {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut out = Vec::new();
            let mut byte = [0u8; 1];
            while !out.ends_with(b"\n") {
                assert!(Instant::now() < deadline, "no reply, got {out:?}");
                if self.file.read(&mut byte).unwrap() == 1 {
                    out.push(byte[0]);
                }
            }
            String::from_utf8(out).unwrap()
        }

        fn query(&mut self, line: &str) -> String {
            self.send(line);
            self.reply()
        }

        /// Reads whatever arrives until the line has been quiet for one `VTIME`.
        fn drain(&mut self) -> usize {
            let mut buf = [0u8; 4096];
            let mut total = 0;
            loop {
                match self.file.read(&mut buf).unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        }
    }

    /// Blocking client I/O needs a second worker to run the server meanwhile.
    macro_rules! pty_test {
        ($name:ident $body:block) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() $body
        };
    }

    pty_test!(child_processes_do_not_inherit_the_terminal {
        // A child started while the simulator runs must not hold its terminal open, or a
        // simulated hang-up would never reach the client.
        let server = PtyServer::start(SimParams::default(), None).unwrap();
        let out = std::process::Command::new("ls")
            .args(["-l", "/proc/self/fd/"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        let path = server.path().display().to_string();
        assert!(
            !listing.lines().any(|l| l.ends_with(&format!("-> {path}"))),
            "{path} inherited:\n{listing}"
        );
        server.shutdown().await;
    });

    pty_test!(serves_queries_on_a_raw_pty {
        let server = PtyServer::start(SimParams::default(), None).unwrap();
        assert!(server.path().starts_with("/dev/pts"), "{:?}", server.path());
        let mut c = Client::open(server.path());
        // Raw and without echo: the reply is exactly the reply, CR LF input is accepted.
        let t = tcgetattr(&c.file).unwrap();
        assert!(!t.local_flags.intersects(LocalFlags::ECHO | LocalFlags::ICANON));
        assert!(c.query("*IDN?\r\n").starts_with("TSAGENT,SIM-DMM,SIM0000001,"));
        let r = c.query("READ?\n");
        assert!(r.starts_with("+1.0000") && r.ends_with("E+01\n"), "{r:?}");
        assert_eq!(c.query("*OPC?;FETC?\n"), format!("1;{r}"));
        assert_eq!(server.readings_sent(), 2);
        server.shutdown().await;
    });

    pty_test!(clients_are_served_one_after_another_with_the_same_state {
        let server = PtyServer::start(SimParams::default(), None).unwrap();
        let mut a = Client::open(server.path());
        a.send("VOLT:DC:NPLC 100\nBOGUS\n");
        assert_eq!(a.query("*OPC?\n"), "1\n");
        drop(a);
        // The server's own slave descriptor kept the terminal up; a new client finds the
        // meter as the first one left it.
        let mut b = Client::open(server.path());
        assert_eq!(b.query("VOLT:DC:NPLC?\n"), "+1.00000000E+02\n");
        assert_eq!(b.query("SYST:ERR?\n"), "-113,\"Undefined header\"\n");
        drop(b);
        let mut c = Client::open(server.path());
        assert_eq!(c.query("SYST:ERR?\n"), "0,\"No error\"\n");
        server.shutdown().await;
    });

    pty_test!(shutting_down_hangs_up_the_client {
        let server = PtyServer::start(SimParams::default(), None).unwrap();
        let mut c = Client::open(server.path());
        assert_eq!(c.query("*OPC?\n"), "1\n");
        server.shutdown().await;
        // After the master closes, the slave reports a hang-up: writes fail with EIO and reads
        // return end of file (or EIO) at once instead of waiting out VTIME.
        let err = c.file.write_all(b"*OPC?\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::EIO), "{err}");
        let started = Instant::now();
        let mut buf = [0u8; 16];
        assert!(!matches!(c.file.read(&mut buf), Ok(n) if n > 0));
        assert!(started.elapsed() < Duration::from_secs(1));
    });

    pty_test!(a_client_that_never_reads_does_not_stall_the_server {
        let server = PtyServer::start(SimParams::default(), None).unwrap();
        let mut c = Client::open(server.path());
        let mut writer = c.file.try_clone().unwrap();
        // ~1 MB of replies, far beyond what the terminal buffers. If the server blocked on its
        // full output, it would stop reading and this write would never finish.
        let flood = tokio::task::spawn_blocking(move || {
            for _ in 0..10 {
                writer.write_all(&b"*IDN?\n".repeat(2000)).unwrap();
            }
        });
        tokio::time::timeout(Duration::from_secs(60), flood)
            .await
            .expect("server stalled")
            .unwrap();
        assert!(c.drain() > 0);
        assert_eq!(c.query("*OPC?\n"), "1\n");
        server.shutdown().await;
    });

    pty_test!(exclusive_mode_set_by_serialport_is_lifted {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        use tokio_serial::SerialPortBuilderExt;

        fn exclusive(fd: &impl AsRawFd) -> bool {
            let mut flag: nix::libc::c_int = 0;
            // SAFETY: TIOCGEXCL writes one int through the pointer, which is valid for it.
            let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGEXCL, &mut flag) };
            assert_eq!(rc, 0, "{}", Errno::last());
            flag != 0
        }

        let server = PtyServer::start(SimParams::default(), None).unwrap();
        let path = server.path().to_str().unwrap().to_owned();
        for round in 0..2 {
            // tokio-serial opens the port exclusively (TIOCEXCL), as tsagent's transport does.
            let port = tokio_serial::new(&path, 115_200).open_native_async().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while exclusive(&port) {
                assert!(Instant::now() < deadline, "TIOCEXCL never lifted (round {round})");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut port = BufReader::new(port);
            AsyncWriteExt::write_all(port.get_mut(), b"*OPC?\n").await.unwrap();
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), port.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(line, "1\n");
        }
        server.shutdown().await;
    });

    pty_test!(link_is_created_and_removed {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("dmm");
        let server = PtyServer::start(SimParams::default(), Some(link.clone())).unwrap();
        assert_eq!(server.link(), Some(link.as_path()));
        assert_eq!(fs::read_link(&link).unwrap(), server.path());
        let mut c = Client::open(&link);
        assert_eq!(c.query("*OPC?\n"), "1\n");
        drop(c);
        drop(server);
        assert!(fs::symlink_metadata(&link).is_err(), "link left behind");
        // Nothing but the link itself appeared in the directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    });

    pty_test!(an_old_link_is_replaced_but_nothing_else {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("dmm");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let server = PtyServer::start(SimParams::default(), Some(link.clone())).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), server.path());
        // A second simulator takes the name over; the first must not delete its link.
        let second = PtyServer::start(SimParams::default(), Some(link.clone())).unwrap();
        drop(server);
        assert_eq!(fs::read_link(&link).unwrap(), second.path());
        drop(second);
        assert!(fs::symlink_metadata(&link).is_err());

        let file = dir.path().join("precious");
        fs::write(&file, b"data").unwrap();
        match PtyServer::start(SimParams::default(), Some(file.clone())) {
            Err(SimError::LinkOccupied { path }) => assert_eq!(path, file),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&file).unwrap(), b"data");
        let sub = dir.path().join("subdir");
        fs::create_dir(&sub).unwrap();
        assert!(matches!(
            PtyServer::start(SimParams::default(), Some(sub.clone())),
            Err(SimError::LinkOccupied { .. })
        ));
        assert!(sub.is_dir());
        assert!(matches!(
            PtyServer::start(SimParams::default(), Some(dir.path().join("missing/dmm"))),
            Err(SimError::Link { .. })
        ));
    });

    #[test]
    fn start_needs_a_runtime_and_valid_params() {
        assert!(matches!(
            PtyServer::start(SimParams::default(), None),
            Err(SimError::NoRuntime)
        ));
        let bad = SimParams {
            time_scale: 0.0,
            ..SimParams::default()
        };
        assert!(matches!(
            PtyServer::start(bad, None),
            Err(SimError::InvalidParam {
                field: "time_scale",
                ..
            })
        ));
    }

    // --- Personalities, the Prologix bus, pacing and faults on a real terminal -------------

    fn spec(id: crate::PersonalityId) -> SimSpec {
        SimSpec::instrument(
            id,
            SimParams {
                offset: 0.0,
                noise: 0.0,
                ..SimParams::default()
            },
        )
    }

    pty_test!(a_personality_with_cr_terminated_commands {
        let server = PtyServer::start_spec(spec(crate::PersonalityId::VaisalaPtu300), None)
            .unwrap();
        let mut c = Client::open(server.path());
        c.send("SEND\r");
        let line = c.reply();
        assert!(line.starts_with("P= ") && line.ends_with(" %RH\r\n"), "{line:?}");
        assert_eq!(c.query("?\r").trim_end(), "PTU300 / tsagent-sim-".to_owned() + env!("CARGO_PKG_VERSION"));
        server.shutdown().await;
    });

    pty_test!(prologix_bus_on_a_terminal_with_two_instruments_interleaved {
        let bus: crate::BusSpec = "22=keysight-3458a,5=fluke-5720a".parse().unwrap();
        let server = PtyServer::start_spec(SimSpec::prologix(bus, SimParams::default()), None)
            .unwrap();
        let mut c = Client::open(server.path());
        c.send("++read_tmo_ms 20\n++addr 22\nEND ALWAYS\nID?\n++addr 5\n*IDN?\n");
        c.send("++read eoi\n");
        assert!(c.reply().starts_with("FLUKE,5720A,SIM5720A05,"));
        c.send("++addr 22\n++read eoi\n");
        assert_eq!(c.reply(), "HP3458A\r\n");
        c.send("++addr\n");
        assert_eq!(c.reply(), "22\r\n");
        server.shutdown().await;
    });

    pty_test!(baud_pacing_holds_output_to_the_line_rate {
        // 1200 baud 8N1: 120 characters per second. Only the lower bound is checked.
        let mut s = spec(crate::PersonalityId::Keysight34470a);
        s.baud = Some(1200);
        let server = PtyServer::start_spec(s, None).unwrap();
        let mut c = Client::open(server.path());
        c.send("*IDN?\n");
        let started = Instant::now();
        let reply = c.reply();
        let elapsed = started.elapsed();
        let minimum = crate::wire_time(reply.len() as u64, 1200, crate::Frame::EIGHT_N_ONE);
        // The first piece leaves after its own wire time, so allow for one piece of slack.
        assert!(elapsed + Duration::from_millis(20) >= minimum, "{elapsed:?} < {minimum:?}");
        server.shutdown().await;
    });

    pty_test!(disconnect_hangs_up_and_returns_at_a_new_path_behind_the_link {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("dmm");
        let server = PtyServer::start_spec(
            spec(crate::PersonalityId::Keysight34470a),
            Some(link.clone()),
        )
        .unwrap();
        let first = server.current_path();
        let mut c = Client::open(&link);
        assert!(c.query("*IDN?\n").contains(",SIM34470A01,"));
        server.faults().arm(crate::Fault::on(
            "READ?",
            crate::FaultKind::Disconnect {
                down: Duration::from_millis(200),
                new_path: true,
                serial: Some("SIMSWAPPED".into()),
            },
        ));
        c.send("READ?\n");
        server.wait_down(1).await;
        // The client sees a hang-up: reads end at once, writes fail.
        let mut buf = [0u8; 16];
        assert!(!matches!(c.file.read(&mut buf), Ok(n) if n > 0));
        assert!(c.file.write_all(b"*IDN?\n").is_err());
        tokio::time::timeout(Duration::from_secs(10), server.wait_returns(1))
            .await
            .unwrap();
        let second = server.current_path();
        assert_ne!(second, first);
        assert_eq!(server.path(), first.as_path());
        assert_eq!(fs::read_link(&link).unwrap(), second);
        let mut c2 = Client::open(&link);
        assert!(c2.query("*IDN?\n").contains(",SIMSWAPPED,"));
        // The swallowed READ? was never answered, so nothing was counted.
        assert_eq!(server.readings_sent(), 0);
        assert_eq!(server.line_status(), crate::LineStatus { downs: 1, returns: 1 });
        drop(c);
        drop(server);
        assert!(fs::symlink_metadata(&link).is_err(), "link left behind");
    });

    pty_test!(reply_faults_on_a_terminal {
        let server = PtyServer::start_spec(spec(crate::PersonalityId::Keithley2002), None)
            .unwrap();
        let faults = server.faults();
        faults.arm(crate::Fault::after(1, crate::FaultKind::Flood { bytes: 3000 }));
        let mut c = Client::open(server.path());
        c.send(":FORM:ELEM READ\n:READ?\n:READ?\n");
        assert_eq!(c.reply(), "+10.0000000E+00\n");
        // 3000 bytes of flood, then the next reply runs on into the same "line".
        c.send("*OPC?\n");
        let flooded = c.reply();
        assert_eq!(flooded.len(), 3002);
        assert!(flooded.ends_with("1\n"));
        server.shutdown().await;
    });
}
