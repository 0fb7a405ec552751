//! A simulated Prologix GPIB-USB / GPIB-ETHERNET controller with instruments behind it.
//!
//! Host side: lines end with an unescaped CR or LF; ESC makes the next byte (CR, LF, ESC, `+`)
//! literal; a line starting with two unescaped `+` is an adapter command, any other line is data
//! for the addressed instrument, sent with the `++eos` terminator appended and EOI on the last
//! byte when `++eoi 1`. Instruments frame their input at their terminators and at EOI, and queue
//! their output until the controller addresses them to talk: `++read` (until the inter-character
//! timeout), `++read eoi` (until EOI), `++read N` (until byte N), or after each data line with
//! `++auto 1`. A read that finds nothing waits out `++read_tmo_ms` and returns nothing, as the
//! real adapter does; output that an instrument needs longer to produce than that stays queued.
//! With `++eot_enable 1`, `++eot_char` is appended when a read ends at EOI.
//!
//! Commands: `++mode [0|1]`, `++addr [PAD [SAD]]`, `++auto [0|1]`, `++eoi [0|1]`, `++eos [0-3]`,
//! `++eot_enable [0|1]`, `++eot_char [N]`, `++read [eoi|N]`, `++read_tmo_ms [1-3000]`, `++clr`,
//! `++ifc`, `++loc`, `++llo`, `++trg`, `++spoll [PAD [SAD]]`, `++srq`, `++rst`, `++ver`,
//! `++savecfg [0|1]`, `++lon`, `++status`, `++help`. Without an argument a setting command
//! answers its value. Unknown commands answer `Unrecognized command`; invalid arguments are
//! ignored. Replies end in CR LF. Instruments are routed by primary address; a secondary address
//! is kept but does not select anything.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::fault::{Event, FaultHandle};
use super::personality::Personality;
use super::serve::{LineAssembler, LineEvent, MAX_LINE};
use super::station::{Outcome, ServeEnd, apply_event, exchange, spontaneous};
use super::wire::{Chunk, Pacer, pace_input, write_paced};

const ESC: u8 = 0x1B;

/// What `++ver` answers.
pub const PROLOGIX_VERSION: &str = "Prologix GPIB-USB Controller version 6.107 (tsagent-sim)";

/// Escapes `data` for the host side of a Prologix adapter: CR, LF, ESC and `+` get an ESC
/// before them.
pub fn prologix_escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        if matches!(b, b'\r' | b'\n' | ESC | b'+') {
            out.push(ESC);
        }
        out.push(b);
    }
    out
}

/// A complete host line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostLine {
    /// An adapter command, without the `++`.
    Command(Vec<u8>),
    /// Unescaped data for the instrument.
    Data(Vec<u8>),
}

/// Splits the host byte stream into lines, undoing ESC escapes.
#[derive(Debug, Default)]
pub(crate) struct HostLines {
    buf: Vec<u8>,
    escaped: bool,
    /// Unescaped `+` at the start of the line so far.
    plus: usize,
    discarding: bool,
}

impl HostLines {
    pub(crate) fn push(&mut self, data: &[u8], out: &mut Vec<HostLine>) {
        for &b in data {
            if self.escaped {
                self.escaped = false;
                self.add(b);
                continue;
            }
            match b {
                ESC => self.escaped = true,
                b'\r' | b'\n' => {
                    let line = std::mem::take(&mut self.buf);
                    let plus = std::mem::take(&mut self.plus);
                    if std::mem::take(&mut self.discarding) || line.is_empty() {
                        continue;
                    }
                    if plus >= 2 {
                        out.push(HostLine::Command(
                            line.get(2..).unwrap_or_default().to_vec(),
                        ));
                    } else {
                        out.push(HostLine::Data(line));
                    }
                }
                _ => {
                    if b == b'+' && self.plus == self.buf.len() {
                        self.plus += 1;
                    }
                    self.add(b);
                }
            }
        }
    }

    fn add(&mut self, b: u8) {
        if self.discarding {
            return;
        }
        if self.buf.len() >= MAX_LINE {
            self.buf.clear();
            self.discarding = true;
            return;
        }
        self.buf.push(b);
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Output waiting in an instrument until it is read.
#[derive(Debug)]
struct Pending {
    ready_at: Instant,
    chunk: Chunk,
}

struct BusDevice {
    personality: Box<dyn Personality>,
    input: LineAssembler,
    output: VecDeque<Pending>,
}

impl BusDevice {
    fn queue(&mut self, out: &mut Outcome) {
        if let Some(e) = out.emission.take() {
            let ready_at = Instant::now() + e.delay;
            for chunk in e.chunks {
                self.output.push_back(Pending { ready_at, chunk });
            }
        }
    }
}

/// Where a read stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    Timeout,
    Eoi,
    Byte(u8),
}

/// The adapter's settings and its bus.
pub(crate) struct Adapter {
    devices: BTreeMap<u8, BusDevice>,
    host: HostLines,
    controller: bool,
    addr: u8,
    sad: Option<u8>,
    auto: bool,
    eoi: bool,
    eos: u8,
    eot_enable: bool,
    eot_char: u8,
    read_tmo: Duration,
    savecfg: bool,
    seed: u64,
}

impl Adapter {
    pub(crate) fn new(devices: impl IntoIterator<Item = (u8, Box<dyn Personality>)>) -> Self {
        let devices = devices
            .into_iter()
            .map(|(a, p)| {
                let input = LineAssembler::with_terminators(MAX_LINE, p.input_terminators());
                (
                    a,
                    BusDevice {
                        personality: p,
                        input,
                        output: VecDeque::new(),
                    },
                )
            })
            .collect();
        let mut a = Self {
            devices,
            host: HostLines::default(),
            controller: true,
            addr: 0,
            sad: None,
            auto: false,
            eoi: true,
            eos: 0,
            eot_enable: false,
            eot_char: 0,
            read_tmo: Duration::from_millis(500),
            savecfg: true,
            seed: 0,
        };
        a.reset();
        a
    }

    /// Factory settings (`++rst`).
    fn reset(&mut self) {
        self.controller = true;
        self.addr = 0;
        self.sad = None;
        self.auto = false;
        self.eoi = true;
        self.eos = 0;
        self.eot_enable = false;
        self.eot_char = 0;
        self.read_tmo = Duration::from_millis(500);
    }

    pub(crate) fn set_serial(&mut self, serial: &str) {
        for d in self.devices.values_mut() {
            d.personality.set_serial(serial);
        }
    }

    /// Applies an error or identity event: to its address, else errors to the addressed
    /// instrument and identities to all.
    pub(crate) fn apply_event(&mut self, event: Event) {
        match event {
            Event::Identity {
                address: None,
                ref serial,
            } => self.set_serial(serial),
            other => self.apply_elsewhere(vec![other]),
        }
    }

    fn apply_elsewhere(&mut self, events: Vec<Event>) {
        for e in events {
            let target = match &e {
                Event::Errors { address, .. } | Event::Identity { address, .. } => *address,
                Event::Disconnect { .. } => continue,
            };
            match target {
                Some(a) => {
                    if let Some(d) = self.devices.get_mut(&a) {
                        apply_event(d.personality.as_mut(), &e);
                    }
                }
                None => {
                    if let Some(d) = self.devices.get_mut(&self.addr) {
                        apply_event(d.personality.as_mut(), &e);
                    }
                }
            }
        }
    }

    /// Applies immediate fault events; returns a hang-up.
    fn due_events(&mut self, faults: &FaultHandle) -> Option<ServeEnd> {
        let mut end = None;
        for e in faults.due_events() {
            match e {
                Event::Disconnect {
                    down,
                    new_path,
                    serial,
                } => {
                    end.get_or_insert(ServeEnd::Disconnect {
                        down,
                        new_path,
                        serial,
                    });
                }
                other => self.apply_event(other),
            }
        }
        end
    }

    pub(crate) async fn serve<S>(
        &mut self,
        stream: &mut S,
        faults: &FaultHandle,
        pacer: &mut Option<Pacer>,
    ) -> io::Result<ServeEnd>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.host.clear();
        let mut chunk = vec![0u8; 4096];
        let mut lines = Vec::new();
        loop {
            if let Some(end) = self.due_events(faults) {
                return Ok(end);
            }
            let n = tokio::select! {
                biased;
                _ = faults.armed_signal() => continue,
                n = stream.read(&mut chunk) => n?,
            };
            pace_input(n, pacer).await;
            if n == 0 {
                return Ok(ServeEnd::Closed);
            }
            self.host
                .push(chunk.get(..n).unwrap_or_default(), &mut lines);
            for line in std::mem::take(&mut lines) {
                let end = match line {
                    HostLine::Command(cmd) => self.command(&cmd, stream, faults, pacer).await?,
                    HostLine::Data(data) => {
                        let end = self.data(&data, faults);
                        if end.is_none() && self.auto && self.controller {
                            self.read(Until::Eoi, stream, faults, pacer).await?
                        } else {
                            end
                        }
                    }
                };
                if let Some(end) = end {
                    return Ok(end);
                }
            }
        }
    }

    /// Sends a data line to the addressed instrument.
    fn data(&mut self, data: &[u8], faults: &FaultHandle) -> Option<ServeEnd> {
        if !self.controller {
            return None;
        }
        let addr = self.addr;
        let terminator: &[u8] = match self.eos {
            0 => b"\r\n",
            1 => b"\r",
            2 => b"\n",
            _ => b"",
        };
        let Some(dev) = self.devices.get_mut(&addr) else {
            tracing::debug!(addr, "no instrument at this GPIB address; data dropped");
            return None;
        };
        let mut bytes = data.to_vec();
        bytes.extend_from_slice(terminator);
        let mut events = Vec::new();
        dev.input.push(&bytes, &mut events);
        if self.eoi
            && let Some(rest) = dev.input.flush()
        {
            events.push(LineEvent::Line(rest));
        }
        let mut elsewhere = Vec::new();
        let mut end = None;
        for e in events {
            match e {
                LineEvent::Line(line) => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let mut out = exchange(
                        dev.personality.as_mut(),
                        Some(addr),
                        &line,
                        faults,
                        &mut self.seed,
                    );
                    dev.queue(&mut out);
                    elsewhere.append(&mut out.elsewhere);
                    if out.disconnect.is_some() {
                        end = out.disconnect;
                        break;
                    }
                }
                LineEvent::TooLong => dev.personality.input_overflow(),
            }
        }
        self.apply_elsewhere(elsewhere);
        end
    }

    /// Addresses the current instrument to talk and forwards its output.
    async fn read<S>(
        &mut self,
        until: Until,
        stream: &mut S,
        faults: &FaultHandle,
        pacer: &mut Option<Pacer>,
    ) -> io::Result<Option<ServeEnd>>
    where
        S: AsyncWrite + Unpin,
    {
        let tmo = self.read_tmo;
        let addr = self.addr;
        let Some(dev) = self.devices.get_mut(&addr) else {
            tokio::time::sleep(tmo).await;
            return Ok(None);
        };
        let mut end = None;
        let mut elsewhere = Vec::new();
        // Output a streaming instrument produced meanwhile, then what talking makes it do.
        let streamed = dev.personality.unsolicited();
        if !streamed.is_empty() {
            let mut out = spontaneous(
                dev.personality.as_mut(),
                Some(addr),
                streamed,
                faults,
                &mut self.seed,
            );
            dev.queue(&mut out);
            elsewhere.append(&mut out.elsewhere);
            end = end.or(out.disconnect);
        }
        dev.output.retain(|p| !p.chunk.is_exhausted());
        if dev.output.is_empty() {
            let talked = dev.personality.talk();
            let mut out = spontaneous(
                dev.personality.as_mut(),
                Some(addr),
                talked,
                faults,
                &mut self.seed,
            );
            dev.queue(&mut out);
            elsewhere.append(&mut out.elsewhere);
            end = end.or(out.disconnect);
        }
        let mut at_eoi = false;
        loop {
            let Some(front) = dev.output.front_mut() else {
                // Nothing more: the inter-character timeout ends the read.
                tokio::time::sleep(tmo).await;
                break;
            };
            let now = Instant::now();
            if front.ready_at > now {
                if front.ready_at - now > tmo {
                    tokio::time::sleep(tmo).await;
                    break;
                }
                tokio::time::sleep_until(front.ready_at).await;
            }
            let Some((piece, eoi)) = front.chunk.take_piece() else {
                dev.output.pop_front();
                continue;
            };
            if let Until::Byte(stop) = until
                && let Some(i) = piece.iter().position(|b| *b == stop)
            {
                let (head, rest) = piece.split_at(i + 1);
                write_paced(stream, head, pacer).await?;
                if !rest.is_empty() || eoi {
                    dev.output.push_front(Pending {
                        ready_at: Instant::now(),
                        chunk: Chunk::Bytes {
                            data: rest.to_vec(),
                            end: eoi,
                        },
                    });
                }
                break;
            }
            write_paced(stream, &piece, pacer).await?;
            if eoi && until == Until::Eoi {
                at_eoi = true;
                break;
            }
        }
        if at_eoi && self.eot_enable {
            write_paced(stream, &[self.eot_char], pacer).await?;
        }
        stream.flush().await?;
        self.apply_elsewhere(elsewhere);
        Ok(end)
    }

    async fn reply<S>(stream: &mut S, text: &str, pacer: &mut Option<Pacer>) -> io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        write_paced(stream, format!("{text}\r\n").as_bytes(), pacer).await?;
        stream.flush().await
    }

    async fn command<S>(
        &mut self,
        cmd: &[u8],
        stream: &mut S,
        faults: &FaultHandle,
        pacer: &mut Option<Pacer>,
    ) -> io::Result<Option<ServeEnd>>
    where
        S: AsyncWrite + Unpin,
    {
        let text = String::from_utf8_lossy(cmd);
        let mut words = text.split_whitespace();
        let name = words.next().unwrap_or_default().to_ascii_lowercase();
        let args: Vec<&str> = words.collect();
        let num = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
        let flag = |v: bool| if v { "1" } else { "0" };
        match name.as_str() {
            "mode" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, flag(self.controller), pacer).await?,
                (_, Some(m @ 0..=1)) => self.controller = m == 1,
                _ => {}
            },
            "addr" => match (args.len(), num(0), num(1)) {
                (0, _, _) => {
                    let t = match self.sad {
                        Some(s) => format!("{} {s}", self.addr),
                        None => self.addr.to_string(),
                    };
                    Self::reply(stream, &t, pacer).await?;
                }
                (1, Some(pad @ 0..=30), _) => {
                    self.addr = pad as u8;
                    self.sad = None;
                }
                (2, Some(pad @ 0..=30), Some(sad @ 96..=126)) => {
                    self.addr = pad as u8;
                    self.sad = Some(sad as u8);
                }
                _ => {}
            },
            "auto" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, flag(self.auto), pacer).await?,
                (_, Some(v @ 0..=1)) => self.auto = v == 1,
                _ => {}
            },
            "eoi" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, flag(self.eoi), pacer).await?,
                (_, Some(v @ 0..=1)) => self.eoi = v == 1,
                _ => {}
            },
            "eos" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, &self.eos.to_string(), pacer).await?,
                (_, Some(v @ 0..=3)) => self.eos = v as u8,
                _ => {}
            },
            "eot_enable" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, flag(self.eot_enable), pacer).await?,
                (_, Some(v @ 0..=1)) => self.eot_enable = v == 1,
                _ => {}
            },
            "eot_char" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, &self.eot_char.to_string(), pacer).await?,
                (_, Some(v @ 0..=255)) => self.eot_char = v as u8,
                _ => {}
            },
            "read_tmo_ms" => match (args.len(), num(0)) {
                (0, _) => {
                    let ms = self.read_tmo.as_millis().to_string();
                    Self::reply(stream, &ms, pacer).await?;
                }
                (_, Some(v @ 1..=3000)) => self.read_tmo = Duration::from_millis(u64::from(v)),
                _ => {}
            },
            "read" => {
                let until = match args.first().map(|a| a.to_ascii_lowercase()) {
                    None => Some(Until::Timeout),
                    Some(a) if a == "eoi" => Some(Until::Eoi),
                    Some(a) => a.parse::<u8>().ok().map(Until::Byte),
                };
                if let Some(until) = until
                    && self.controller
                {
                    return self.read(until, stream, faults, pacer).await;
                }
            }
            "clr" => {
                if let Some(d) = self.devices.get_mut(&self.addr) {
                    d.input.clear();
                    d.output.clear();
                    d.personality.device_clear();
                }
            }
            "spoll" => {
                let addr = match num(0) {
                    Some(a @ 0..=30) => a as u8,
                    Some(_) => return Ok(None),
                    None => self.addr,
                };
                if let Some(d) = self.devices.get_mut(&addr) {
                    d.output.retain(|p| !p.chunk.is_exhausted());
                    let mav = if d.output.is_empty() { 0 } else { 0x10 };
                    let stb = d.personality.status_byte() | mav;
                    Self::reply(stream, &stb.to_string(), pacer).await?;
                }
            }
            "srq" => Self::reply(stream, "0", pacer).await?,
            "savecfg" => match (args.len(), num(0)) {
                (0, _) => Self::reply(stream, flag(self.savecfg), pacer).await?,
                (_, Some(v @ 0..=1)) => self.savecfg = v == 1,
                _ => {}
            },
            "rst" => self.reset(),
            "ver" => Self::reply(stream, PROLOGIX_VERSION, pacer).await?,
            "ifc" | "loc" | "llo" | "trg" | "lon" | "status" => {}
            "help" => {
                Self::reply(
                    stream,
                    "++addr ++auto ++clr ++eoi ++eos ++eot_enable ++eot_char ++ifc ++llo ++loc \
                     ++lon ++mode ++read ++read_tmo_ms ++rst ++savecfg ++spoll ++srq ++status \
                     ++trg ++ver ++help",
                    pacer,
                )
                .await?;
            }
            _ => Self::reply(stream, "Unrecognized command", pacer).await?,
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(chunks: &[&[u8]]) -> Vec<HostLine> {
        let mut h = HostLines::default();
        let mut out = Vec::new();
        for c in chunks {
            h.push(c, &mut out);
        }
        out
    }

    #[test]
    fn host_lines_split_commands_from_escaped_data() {
        let got = lines(&[
            b"++addr 22\r\n*IDN?\n",
            b"\x1b++not a command\n\x1b\n\x1b\x1b\x1b+x\r",
        ]);
        assert_eq!(
            got,
            [
                HostLine::Command(b"addr 22".to_vec()),
                HostLine::Data(b"*IDN?".to_vec()),
                HostLine::Data(b"++not a command".to_vec()),
                HostLine::Data(b"\n\x1b+x".to_vec()),
            ]
        );
        assert_eq!(
            lines(&[b"+", b"+ver\n"]),
            [HostLine::Command(b"ver".to_vec())]
        );
        assert_eq!(lines(&[b"+1.5\n"]), [HostLine::Data(b"+1.5".to_vec())]);
    }

    #[test]
    fn escape_examples() {
        assert_eq!(
            prologix_escape(b"a+b\r\n\x1b"),
            b"a\x1b+b\x1b\r\x1b\n\x1b\x1b"
        );
    }

    mod over_tcp {
        use std::time::Duration;

        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        use tokio::net::TcpStream;

        use super::super::{PROLOGIX_VERSION, prologix_escape};
        use crate::sim::{BusSpec, Fault, FaultKind, SimParams, SimSpec, TcpServer};

        fn quiet() -> SimParams {
            SimParams {
                offset: 0.0,
                noise: 0.0,
                drift_per_day: 0.0,
                tempco: 0.0,
                ..SimParams::default()
            }
        }

        async fn bus(devices: &str) -> (TcpServer, BufReader<TcpStream>) {
            let bus: BusSpec = devices.parse().unwrap();
            let server = TcpServer::start_spec(SimSpec::prologix(bus, quiet()), "127.0.0.1:0")
                .await
                .unwrap();
            let stream = TcpStream::connect(server.local_addr()).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut c = BufReader::new(stream);
            // Short inter-character timeouts keep empty reads quick.
            send(&mut c, b"++read_tmo_ms 20\n").await;
            (server, c)
        }

        async fn send(c: &mut BufReader<TcpStream>, bytes: &[u8]) {
            c.get_mut().write_all(bytes).await.unwrap();
        }

        async fn line(c: &mut BufReader<TcpStream>) -> String {
            let mut out = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), c.read_until(b'\n', &mut out))
                .await
                .expect("no reply")
                .unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }

        async fn exact(c: &mut BufReader<TcpStream>, n: usize) -> Vec<u8> {
            let mut out = vec![0; n];
            tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut out))
                .await
                .expect("no reply")
                .unwrap();
            out
        }

        #[tokio::test]
        async fn adapter_commands_and_queries() {
            let (_server, mut c) = bus("22=keysight-3458a").await;
            send(
                &mut c,
                b"++ver\n++addr 22\n++addr\n++auto\n++eos\n++read_tmo_ms\n",
            )
            .await;
            assert_eq!(line(&mut c).await, format!("{PROLOGIX_VERSION}\r\n"));
            assert_eq!(line(&mut c).await, "22\r\n");
            assert_eq!(line(&mut c).await, "0\r\n");
            assert_eq!(line(&mut c).await, "0\r\n");
            assert_eq!(line(&mut c).await, "20\r\n");
            send(
                &mut c,
                b"++addr 5 96\n++addr\n++addr 31\n++addr\n++frob\n++mode\n",
            )
            .await;
            assert_eq!(line(&mut c).await, "5 96\r\n");
            assert_eq!(line(&mut c).await, "5 96\r\n");
            assert_eq!(line(&mut c).await, "Unrecognized command\r\n");
            assert_eq!(line(&mut c).await, "1\r\n");
        }

        #[tokio::test]
        async fn output_waits_until_its_instrument_is_addressed_and_read() {
            let (_server, mut c) = bus("22=keysight-3458a,5=fluke-5720a").await;
            // Both instruments are given work before either is read.
            send(&mut c, b"++addr 5\nOUT 10 V, 0 Hz\nOUT?\n").await;
            send(&mut c, b"++addr 22\nEND ALWAYS\nID?\n").await;
            send(&mut c, b"++read eoi\n").await;
            assert_eq!(line(&mut c).await, "HP3458A\r\n");
            send(&mut c, b"++addr 5\n++spoll\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "16\r\n");
            assert_eq!(
                line(&mut c).await,
                "+1.0000000E+01,V,+0.0000000E+00,0,+0.00E+00\n"
            );
            // An empty read returns nothing: the next bytes are the version line.
            send(&mut c, b"++read eoi\n++ver\n").await;
            assert_eq!(line(&mut c).await, format!("{PROLOGIX_VERSION}\r\n"));
            // The 5720A logged the talk-without-output as a query error.
            send(&mut c, b"*ESR?\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "132\n");
        }

        #[tokio::test]
        async fn eoi_framing_of_3458a_readings_and_binary() {
            let (_server, mut c) = bus("22=keysight-3458a").await;
            send(
                &mut c,
                b"++addr 22\n++eos 3\nTARM HOLD;TRIG AUTO;NDIG 8;END ALWAYS\n",
            )
            .await;
            send(&mut c, b"TARM SGL,2\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "+1.00000000E+01\r\n");
            // The second reading waits for the next read.
            send(&mut c, b"++eot_enable 1\n++eot_char 42\n++read eoi\n").await;
            assert_eq!(exact(&mut c, 18).await, b"+1.00000000E+01\r\n*");
            send(
                &mut c,
                b"++eot_enable 0\nOFORMAT DREAL\nTARM SGL,2\n++read eoi\n++read eoi\n",
            )
            .await;
            assert_eq!(exact(&mut c, 16).await, [10.0f64.to_be_bytes(); 2].concat());
            // END OFF (power-on): no EOI, the read ends at the timeout with all the data.
            send(&mut c, b"RESET\nID?\nID?\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "HP3458A\r\n");
            assert_eq!(line(&mut c).await, "HP3458A\r\n");
            // Talk-addressed with TARM AUTO, TRIG AUTO: a reading on demand.
            send(&mut c, b"++read\n").await;
            assert_eq!(line(&mut c).await, "+1.0000000E+01\r\n");
        }

        #[tokio::test]
        async fn escaping_eos_auto_and_read_until_byte() {
            let (_server, mut c) = bus("5=fluke-5720a,9=keysight-34470a").await;
            // An escaped `+` reaches the instrument; `++` inside data is not a command.
            let mut line_bytes = b"OUT ".to_vec();
            line_bytes.extend(prologix_escape(b"+10 V"));
            line_bytes.push(b'\n');
            send(&mut c, b"++addr 5\n").await;
            send(&mut c, &line_bytes).await;
            send(&mut c, b"OUT?\n++read 10\n").await;
            assert!(line(&mut c).await.starts_with("+1.0000000E+01,V"));
            // Two program messages in one host line through an escaped LF, no eos.
            send(&mut c, b"++addr 9\n++eos 3\n").await;
            let mut two = prologix_escape(b"*OPC?\n*IDN?");
            two.push(b'\n');
            send(&mut c, &two).await;
            send(&mut c, b"++read\n").await;
            assert_eq!(line(&mut c).await, "1\n");
            assert!(
                line(&mut c)
                    .await
                    .starts_with("Keysight Technologies,34470A,SIM34470A09,")
            );
            // ++read 44 stops after the first comma; the rest stays queued.
            send(&mut c, b"++auto 0\nSAMP:COUN 2;:READ?\n++read 44\n").await;
            assert_eq!(exact(&mut c, 16).await, b"+1.00000000E+01,");
            send(&mut c, b"++read eoi\n").await;
            assert_eq!(line(&mut c).await, "+1.00000000E+01\n");
            // ++auto 1 reads after every data line; a command without reply costs -420.
            send(
                &mut c,
                b"++auto 1\n*OPC?\n*CLS\n++auto 0\nSYST:ERR?\n++read eoi\n",
            )
            .await;
            assert_eq!(line(&mut c).await, "1\n");
            assert_eq!(line(&mut c).await, "-420,\"Query UNTERMINATED\"\n");
            // ++clr drops pending output.
            send(&mut c, b"*IDN?\n++clr\n++read eoi\n++ver\n").await;
            assert_eq!(line(&mut c).await, format!("{PROLOGIX_VERSION}\r\n"));
        }

        #[tokio::test]
        async fn faults_target_one_address() {
            let (server, mut c) = bus("5=fluke-5720a,9=keysight-34470a").await;
            let faults = server.faults();
            faults.arm(Fault::on("IDN", FaultKind::Block(crate::sim::BadBlock::Short)).at(9));
            faults.arm(Fault::on("FAULT?", FaultKind::Errors { count: 1 }).at(5));
            send(&mut c, b"++addr 5\n*IDN?\n++read eoi\n").await;
            assert!(line(&mut c).await.starts_with("FLUKE,5720A,SIM5720A05,"));
            send(&mut c, b"++addr 9\n*IDN?\n++read eoi\n").await;
            let block = exact(&mut c, 55).await;
            assert!(block.starts_with(b"#3100"));
            send(&mut c, b"++addr 5\nFAULT?\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "1306\n");
            assert_eq!(faults.fired(), 2);
        }

        #[tokio::test]
        async fn realistic_timing_keeps_slow_output_queued_past_the_timeout() {
            let params = SimParams {
                realistic_timing: true,
                ..quiet()
            };
            let bus: BusSpec = "22=keysight-3458a".parse().unwrap();
            let server = TcpServer::start_spec(SimSpec::prologix(bus, params), "127.0.0.1:0")
                .await
                .unwrap();
            let mut c = BufReader::new(TcpStream::connect(server.local_addr()).await.unwrap());
            // NPLC 10 with AZERO ON: 0.4 s per reading, beyond a 100 ms read timeout.
            send(
                &mut c,
                b"++addr 22\n++read_tmo_ms 100\nTARM HOLD;TRIG AUTO;NPLC 10;END ALWAYS\n",
            )
            .await;
            send(&mut c, b"TARM SGL\n++read eoi\n++ver\n").await;
            assert_eq!(line(&mut c).await, format!("{PROLOGIX_VERSION}\r\n"));
            send(&mut c, b"++read_tmo_ms 3000\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "+1.0000000E+01\r\n");
        }
    }

    proptest! {
        #[test]
        fn escaped_data_round_trips(
            data in proptest::collection::vec(any::<u8>(), 1..200),
            cut in 0usize..400,
        ) {
            let mut wire = prologix_escape(&data);
            wire.push(b'\n');
            let cut = cut.min(wire.len());
            let got = lines(&[&wire[..cut], &wire[cut..]]);
            prop_assert_eq!(got, vec![HostLine::Data(data)]);
        }

        #[test]
        fn host_parser_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)
        ) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            for l in lines(&refs) {
                match l {
                    HostLine::Command(c) | HostLine::Data(c) => prop_assert!(c.len() <= MAX_LINE),
                }
            }
        }
    }
}
