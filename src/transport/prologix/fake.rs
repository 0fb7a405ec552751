//! A fake Prologix adapter for tests, on the far end of a real pty or loopback TCP connection:
//! it records every message the host sends, unescapes data, checks `++` commands, routes data
//! to the addressed instrument and answers `++read eoi` from that instrument's own queue of
//! replies, as a GPIB talker keeps its reply until it is addressed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use super::{ESC, PrologixAdapter, unescape};
use crate::transport::testdev::{self, Device, Kind};
use crate::transport::{Resource, SerialSettings};

/// A GPIB address as the fake keys it.
pub(crate) type Addr = (u8, Option<u8>);

/// An instrument: its reply (if any) to each data message, which includes its write terminator.
pub(crate) type Instrument = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// One message the host sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A `++` command, as text.
    Command(String),
    /// Data for the instrument addressed at the time.
    Data {
        /// The address it went to (`None`: no `++addr` yet).
        to: Option<Addr>,
        /// The bytes on the wire, escapes included, without the ending LF.
        raw: Vec<u8>,
        /// What the instrument received.
        data: Vec<u8>,
    },
}

/// What the fake saw.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Every message, in order.
    pub(crate) heard: Vec<Heard>,
    /// Anything the host did that a real adapter would misread.
    pub(crate) violations: Vec<String>,
}

impl Log {
    /// The `++` commands, in order.
    pub(crate) fn commands(&self) -> Vec<String> {
        self.heard
            .iter()
            .filter_map(|h| match h {
                Heard::Command(c) => Some(c.clone()),
                Heard::Data { .. } => None,
            })
            .collect()
    }

    /// The data messages with where they went, in order.
    pub(crate) fn data(&self) -> Vec<(Option<Addr>, Vec<u8>)> {
        self.heard
            .iter()
            .filter_map(|h| match h {
                Heard::Data { to, data, .. } => Some((*to, data.clone())),
                Heard::Command(_) => None,
            })
            .collect()
    }
}

/// Pending replies per instrument.
type Queues = Arc<Mutex<HashMap<Addr, VecDeque<Vec<u8>>>>>;

/// A running fake adapter.
pub(crate) struct FakeAdapter {
    pub(crate) log: Arc<Mutex<Log>>,
    queues: Queues,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAdapter {
    /// Serves `instruments` on the adapter end `device` until the host closes or
    /// [`FakeAdapter::close`] is called.
    pub(crate) fn serve(device: Device, instruments: Vec<(Addr, Instrument)>) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let queues: Queues = Arc::default();
        let task = tokio::spawn(run(
            device,
            instruments.into_iter().collect(),
            Arc::clone(&log),
            Arc::clone(&queues),
        ));
        Self { log, queues, task }
    }

    /// Puts a reply in an instrument's output queue, as if it had finished a slow measurement.
    pub(crate) fn inject(&self, to: Addr, reply: &[u8]) {
        self.queues
            .lock()
            .unwrap()
            .entry(to)
            .or_default()
            .push_back(reply.to_vec());
    }

    /// Unplugs the adapter: its end of the connection closes.
    pub(crate) async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Splits the host's bytes into messages at each unescaped LF.
#[derive(Default)]
struct Splitter {
    raw: Vec<u8>,
    escaped: bool,
}

impl Splitter {
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        for &byte in bytes {
            if !self.escaped && byte == b'\n' {
                messages.push(std::mem::take(&mut self.raw));
                continue;
            }
            self.escaped = !self.escaped && byte == ESC;
            self.raw.push(byte);
        }
        messages
    }
}

/// Bytes a real adapter would drop from data: unescaped CR, `+` and a trailing lone ESC.
fn unescaped_specials(raw: &[u8]) -> Vec<u8> {
    let mut found = Vec::new();
    let mut escaped = false;
    for &byte in raw {
        if escaped {
            escaped = false;
        } else if byte == ESC {
            escaped = true;
        } else if matches!(byte, b'\r' | b'+') {
            found.push(byte);
        }
    }
    if escaped {
        found.push(ESC);
    }
    found
}

/// Parses `++addr PAD [SAD]`.
fn parse_addr(args: &str) -> Option<Addr> {
    let mut parts = args.split(' ');
    let pad = parts.next()?.parse().ok()?;
    let sad = parts.next().map(str::parse).transpose().ok()?;
    parts.next().is_none().then_some((pad, sad))
}

async fn run(
    mut device: Device,
    mut instruments: HashMap<Addr, Instrument>,
    log: Arc<Mutex<Log>>,
    queues: Queues,
) {
    let mut splitter = Splitter::default();
    let mut address: Option<Addr> = None;
    while let Some(chunk) = device.read_chunk().await {
        for raw in splitter.push(&chunk) {
            let mut reply = None;
            {
                let mut log = log.lock().unwrap();
                if let Some(command) = raw.strip_prefix(b"++") {
                    let command = String::from_utf8_lossy(command).into_owned();
                    log.heard.push(Heard::Command(format!("++{command}")));
                    let (name, args) = command.split_once(' ').unwrap_or((&command, ""));
                    match (name, args) {
                        ("addr", args) => match parse_addr(args) {
                            Some(addr) => address = Some(addr),
                            None => log.violations.push(format!("bad ++addr `{args}`")),
                        },
                        ("read", "eoi") => match address {
                            Some(addr) => {
                                reply = queues
                                    .lock()
                                    .unwrap()
                                    .get_mut(&addr)
                                    .and_then(VecDeque::pop_front);
                            }
                            None => log.violations.push("++read before ++addr".into()),
                        },
                        ("clr", "") => match address {
                            Some(addr) => {
                                queues.lock().unwrap().remove(&addr);
                            }
                            None => log.violations.push("++clr before ++addr".into()),
                        },
                        ("savecfg", "0")
                        | ("mode", "1")
                        | ("auto", "0")
                        | ("eos", "3")
                        | ("eoi", "1")
                        | ("eot_enable", "0") => {}
                        ("read_tmo_ms", ms) if ms.parse::<u16>().is_ok() => {}
                        _ => log.violations.push(format!("unexpected `++{command}`")),
                    }
                } else {
                    let specials = unescaped_specials(&raw);
                    if !specials.is_empty() {
                        log.violations
                            .push(format!("unescaped bytes {specials:?} in data {raw:?}"));
                    }
                    let data = unescape(&raw);
                    log.heard.push(Heard::Data {
                        to: address,
                        raw: raw.clone(),
                        data: data.clone(),
                    });
                    if let Some(addr) = address
                        && let Some(instrument) = instruments.get_mut(&addr)
                        && let Some(answer) = instrument(&data)
                    {
                        queues
                            .lock()
                            .unwrap()
                            .entry(addr)
                            .or_default()
                            .push_back(answer);
                    }
                }
            }
            if let Some(reply) = reply
                && device.send(&reply).await.is_err()
            {
                return;
            }
        }
    }
}

/// An adapter opened through [`PrologixAdapter::open`] on a pty or loopback TCP, and the far
/// end the fake serves.
pub(crate) async fn adapter_pair(kind: Kind, read_tmo_ms: u16) -> (Device, PrologixAdapter) {
    match kind {
        Kind::Pty => {
            let (device, resource) = testdev::pty();
            let Resource::Serial { path } = resource else {
                unreachable!("a pty is a serial resource");
            };
            let resource = Resource::PrologixSerial { board: 0, path };
            let adapter = PrologixAdapter::open(&resource, &SerialSettings::default(), read_tmo_ms)
                .await
                .unwrap();
            (device, adapter)
        }
        Kind::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let resource = Resource::PrologixTcp {
                board: 0,
                host: "127.0.0.1".to_owned(),
                port: listener.local_addr().unwrap().port(),
            };
            let adapter = PrologixAdapter::open(&resource, &SerialSettings::default(), read_tmo_ms)
                .await
                .unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            (Device::from_tcp(stream), adapter)
        }
    }
}
