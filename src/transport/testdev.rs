//! Fake instruments for tests: the far end of a real pseudo-terminal or a real loopback TCP
//! connection, driven by the test itself. Nothing in the link is mocked.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};

use super::{Link, LinkSettings, Resource, SerialSettings};

/// Which kind of connection a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A pseudo-terminal opened through the serial code path.
    Pty,
    /// A loopback TCP connection.
    Tcp,
}

/// Both kinds, for tests that must hold on each.
pub(crate) const KINDS: [Kind; 2] = [Kind::Pty, Kind::Tcp];

enum Io {
    Pty {
        master: AsyncFd<File>,
        /// The slave end as returned by `openpty`, kept to observe the link's input queue.
        slave: OwnedFd,
    },
    Tcp {
        stream: TcpStream,
        /// A second handle on the link's own socket, only to observe its input queue.
        probe: Option<TcpStream>,
    },
}

/// The instrument end of a connection.
pub(crate) struct Device {
    io: Io,
    pending: Vec<u8>,
}

/// Puts a terminal into raw mode: no echo, no line editing, no CR/LF translation.
fn make_raw(fd: &OwnedFd) {
    let mut termios = tcgetattr(fd).unwrap();
    cfmakeraw(&mut termios);
    tcsetattr(fd, SetArg::TCSANOW, &termios).unwrap();
}

/// Registers a file with the runtime's reactor.
fn register(file: File, interest: Interest) -> AsyncFd<File> {
    // SAFETY: the `File` owns its descriptor, so it stays open and `as_raw_fd` keeps returning
    // it for as long as the `AsyncFd` owns the `File`. (tokio 1.54 deprecated the safe
    // constructors for this reason and offers only this one.)
    let registered = unsafe { AsyncFd::register_with_interest(file, interest) };
    registered.map_err(|e| e.into_parts().1).unwrap()
}

/// A fresh pseudo-terminal in raw mode on both sides; returns the device end and the resource
/// naming the slave end.
pub(crate) fn pty() -> (Device, Resource) {
    let pair = openpty(None, None).unwrap();
    // Not inherited by processes other tests start meanwhile, which would keep the master open
    // past the test's hang-up.
    for fd in [&pair.master, &pair.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
    }
    make_raw(&pair.master);
    make_raw(&pair.slave);
    let path = nix::unistd::ttyname(&pair.slave).unwrap();
    fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let master = register(
        File::from(pair.master),
        Interest::READABLE | Interest::WRITABLE,
    );
    let device = Device {
        io: Io::Pty {
            master,
            slave: pair.slave,
        },
        pending: Vec::new(),
    };
    (device, Resource::Serial { path })
}

/// Default link settings with a reply deadline of `timeout_ms`.
pub(crate) fn settings(timeout_ms: u64) -> LinkSettings {
    LinkSettings {
        timeout: std::time::Duration::from_millis(timeout_ms),
        ..LinkSettings::default()
    }
}

/// Like [`pair`] with default serial settings.
pub(crate) async fn default_pair(kind: Kind, settings: LinkSettings) -> (Device, Link) {
    pair(kind, &SerialSettings::default(), settings).await
}

/// A device and a link to it opened through [`Link::open`].
pub(crate) async fn pair(
    kind: Kind,
    serial: &SerialSettings,
    settings: LinkSettings,
) -> (Device, Link) {
    match kind {
        Kind::Pty => {
            let (device, resource) = pty();
            let link = Link::open(&resource, serial, settings).await.unwrap();
            (device, link)
        }
        Kind::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let resource = Resource::Tcp {
                host: "127.0.0.1".to_owned(),
                port: listener.local_addr().unwrap().port(),
            };
            let link = Link::open(&resource, serial, settings).await.unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let device = Device {
                io: Io::Tcp {
                    stream,
                    probe: None,
                },
                pending: Vec::new(),
            };
            (device, link)
        }
    }
}

/// Like [`pair`] for TCP, but the link is built on a socket the test keeps a second handle to,
/// so [`Device::wait_link_readable`] works.
pub(crate) async fn tcp_pair_with_probe(settings: LinkSettings) -> (Device, Link) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = std::net::TcpStream::connect(address).unwrap();
    let probe = client.try_clone().unwrap();
    client.set_nonblocking(true).unwrap();
    let client = TcpStream::from_std(client).unwrap();
    let probe = TcpStream::from_std(probe).unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let resource = Resource::Tcp {
        host: address.ip().to_string(),
        port: address.port(),
    };
    super::stream::check_settings(&settings).unwrap();
    let link = Link::from_parts(resource, Box::new(client), settings);
    let device = Device {
        io: Io::Tcp {
            stream,
            probe: Some(probe),
        },
        pending: Vec::new(),
    };
    (device, link)
}

impl Device {
    /// The far end of a TCP connection accepted by the test.
    pub(crate) fn from_tcp(stream: TcpStream) -> Self {
        Self {
            io: Io::Tcp {
                stream,
                probe: None,
            },
            pending: Vec::new(),
        }
    }

    async fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Pty { master, .. } => loop {
                let mut guard = master.readable().await?;
                if let Ok(result) = guard.try_io(|inner| inner.get_ref().read(buf)) {
                    return result;
                }
            },
            Io::Tcp { stream, .. } => stream.read(buf).await,
        }
    }

    /// Sends raw bytes to the link.
    pub(crate) async fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        match &mut self.io {
            Io::Pty { master, .. } => {
                while !bytes.is_empty() {
                    let mut guard = master.writable().await?;
                    if let Ok(result) = guard.try_io(|inner| inner.get_ref().write(bytes)) {
                        bytes = &bytes[result?..];
                    }
                }
                Ok(())
            }
            Io::Tcp { stream, .. } => stream.write_all(bytes).await,
        }
    }

    /// Whatever the link wrote next (at least one byte); `None` once the link has closed.
    pub(crate) async fn read_chunk(&mut self) -> Option<Vec<u8>> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        let mut chunk = [0u8; 4096];
        match self.read_some(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(chunk[..n].to_vec()),
        }
    }

    /// The next line the link wrote, up to and including LF; `None` once the link has closed.
    pub(crate) async fn read_raw_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                return Some(self.pending.drain(..=at).collect());
            }
            let mut chunk = [0u8; 512];
            match self.read_some(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next line the link wrote, without its LF or CR LF; `None` once the link has closed.
    pub(crate) async fn read_line(&mut self) -> Option<String> {
        let mut line = self.read_raw_line().await?;
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8(line).unwrap())
    }

    /// Waits until the link's end has input queued, i.e. until bytes sent by the device can be
    /// read by the link without waiting.
    pub(crate) async fn wait_link_readable(&self) {
        match &self.io {
            Io::Pty { slave, .. } => {
                // A fresh registration reports the queue's state now.
                let probe = register(File::from(slave.try_clone().unwrap()), Interest::READABLE);
                let _ready = probe.readable().await.unwrap();
            }
            Io::Tcp { probe, .. } => {
                let probe = probe.as_ref().expect("built by tcp_pair_with_probe");
                let mut byte = [0u8; 1];
                assert!(probe.peek(&mut byte).await.unwrap() > 0);
            }
        }
    }

    /// Answers every line the link sends with `respond(line)` (nothing when it returns `None`),
    /// until the link closes.
    pub(crate) fn serve<F>(mut self, mut respond: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(&str) -> Option<String> + Send + 'static,
    {
        tokio::spawn(async move {
            while let Some(line) = self.read_line().await {
                if let Some(reply) = respond(&line)
                    && self.send(reply.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        })
    }
}
