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
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::exchange::{Connection, Outcome, apply_event, exchange, spontaneous};
use crate::fault::{Event, FaultHandle, Outage};
use crate::framing::{LineAssembler, LineEvent, MAX_LINE};
use crate::personality::Personality;
use crate::reply::Reply;
use crate::wire::Chunk;

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
    /// Takes in `data`; returns the lines it completed.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<HostLine> {
        let mut out = Vec::new();
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
        out
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
    /// Queues an outcome's output until the controller reads it.
    fn queue(&mut self, out: &mut Outcome) {
        if let Some(e) = out.emission.take() {
            let ready_at = Instant::now() + e.delay;
            for chunk in e.chunks {
                self.output.push_back(Pending { ready_at, chunk });
            }
        }
    }

    /// Queues output the instrument at `addr` made unasked, collecting events for others in
    /// `elsewhere`; returns a hang-up it caused.
    fn unasked(
        &mut self,
        addr: u8,
        reply: Reply,
        faults: &FaultHandle,
        seed: &mut u64,
        elsewhere: &mut Vec<Event>,
    ) -> Option<Outage> {
        let mut out = spontaneous(self.personality.as_mut(), Some(addr), reply, faults, seed);
        self.queue(&mut out);
        elsewhere.append(&mut out.elsewhere);
        out.disconnect
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

    /// Applies events to the instrument they name, or to the addressed one.
    fn apply_elsewhere(&mut self, events: Vec<Event>) {
        for e in events {
            let target = e.address().unwrap_or(self.addr);
            if let Some(d) = self.devices.get_mut(&target) {
                apply_event(d.personality.as_mut(), &e);
            }
        }
    }

    /// Serves one host line: an adapter command, or data for the addressed instrument (and,
    /// with `++auto 1`, the read that brings its output back). Returns a hang-up a fault caused.
    pub(crate) async fn line<S: AsyncWrite + Unpin>(
        &mut self,
        line: HostLine,
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        match line {
            HostLine::Command(cmd) => self.command(&cmd, conn).await,
            HostLine::Data(data) => {
                let end = self.data(&data, conn.faults);
                if end.is_none() && self.auto && self.controller {
                    self.read(Until::Eoi, conn).await
                } else {
                    Ok(end)
                }
            }
        }
    }

    /// Sends a data line to the addressed instrument.
    fn data(&mut self, data: &[u8], faults: &FaultHandle) -> Option<Outage> {
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
        let mut events = dev.input.push(&bytes);
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
    async fn read<S: AsyncWrite + Unpin>(
        &mut self,
        until: Until,
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        let tmo = self.read_tmo;
        let addr = self.addr;
        let Some(dev) = self.devices.get_mut(&addr) else {
            tokio::time::sleep(tmo).await;
            return Ok(None);
        };
        let mut elsewhere = Vec::new();
        // Output a streaming instrument produced meanwhile, then what talking makes it do.
        let streamed = dev.personality.unsolicited();
        let mut end = None;
        if !streamed.is_empty() {
            end = dev.unasked(addr, streamed, conn.faults, &mut self.seed, &mut elsewhere);
        }
        dev.output.retain(|p| !p.chunk.is_exhausted());
        if dev.output.is_empty() {
            let talked = dev.personality.talk();
            let outage = dev.unasked(addr, talked, conn.faults, &mut self.seed, &mut elsewhere);
            end = end.or(outage);
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
                conn.write(head).await?;
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
            conn.write(&piece).await?;
            if eoi && until == Until::Eoi {
                at_eoi = true;
                break;
            }
        }
        if at_eoi && self.eot_enable {
            conn.write(&[self.eot_char]).await?;
        }
        conn.flush().await?;
        self.apply_elsewhere(elsewhere);
        Ok(end)
    }

    /// The adapter's answer to a command: one line, CR LF.
    async fn reply<S: AsyncWrite + Unpin>(
        conn: &mut Connection<'_, S>,
        text: &str,
    ) -> io::Result<()> {
        conn.write(format!("{text}\r\n").as_bytes()).await?;
        conn.flush().await
    }

    /// A setting's value as `++setting` without an argument answers it.
    fn setting(&self, s: Setting) -> u32 {
        match s {
            Setting::Mode => u32::from(self.controller),
            Setting::Auto => u32::from(self.auto),
            Setting::Eoi => u32::from(self.eoi),
            Setting::Eos => u32::from(self.eos),
            Setting::EotEnable => u32::from(self.eot_enable),
            Setting::EotChar => u32::from(self.eot_char),
            Setting::ReadTmoMs => u32::try_from(self.read_tmo.as_millis()).unwrap_or(u32::MAX),
            Setting::SaveCfg => u32::from(self.savecfg),
        }
    }

    /// Sets a setting to `v`, which is within its range.
    fn set(&mut self, s: Setting, v: u32) {
        let byte = u8::try_from(v).unwrap_or(u8::MAX);
        match s {
            Setting::Mode => self.controller = v == 1,
            Setting::Auto => self.auto = v == 1,
            Setting::Eoi => self.eoi = v == 1,
            Setting::Eos => self.eos = byte,
            Setting::EotEnable => self.eot_enable = v == 1,
            Setting::EotChar => self.eot_char = byte,
            Setting::ReadTmoMs => self.read_tmo = Duration::from_millis(u64::from(v)),
            Setting::SaveCfg => self.savecfg = v == 1,
        }
    }

    async fn command<S: AsyncWrite + Unpin>(
        &mut self,
        cmd: &[u8],
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        let text = String::from_utf8_lossy(cmd);
        let mut words = text.split_whitespace();
        let name = words.next().unwrap_or_default().to_ascii_lowercase();
        let args: Vec<&str> = words.collect();
        let num = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
        if let Some(setting) = Setting::named(&name) {
            match (args.len(), num(0)) {
                (0, _) => Self::reply(conn, &self.setting(setting).to_string()).await?,
                (_, Some(v)) if setting.range().contains(&v) => self.set(setting, v),
                _ => {}
            }
            return Ok(None);
        }
        match name.as_str() {
            "addr" => match (args.len(), num(0), num(1)) {
                (0, _, _) => {
                    let t = match self.sad {
                        Some(s) => format!("{} {s}", self.addr),
                        None => self.addr.to_string(),
                    };
                    Self::reply(conn, &t).await?;
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
            "read" => {
                let until = match args.first().map(|a| a.to_ascii_lowercase()) {
                    None => Some(Until::Timeout),
                    Some(a) if a == "eoi" => Some(Until::Eoi),
                    Some(a) => a.parse::<u8>().ok().map(Until::Byte),
                };
                if let Some(until) = until
                    && self.controller
                {
                    return self.read(until, conn).await;
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
                    Self::reply(conn, &stb.to_string()).await?;
                }
            }
            "srq" => Self::reply(conn, "0").await?,
            "rst" => self.reset(),
            "ver" => Self::reply(conn, PROLOGIX_VERSION).await?,
            "ifc" | "loc" | "llo" | "trg" | "lon" | "status" => {}
            "help" => {
                Self::reply(
                    conn,
                    "++addr ++auto ++clr ++eoi ++eos ++eot_enable ++eot_char ++ifc ++llo ++loc \
                     ++lon ++mode ++read ++read_tmo_ms ++rst ++savecfg ++spoll ++srq ++status \
                     ++trg ++ver ++help",
                )
                .await?;
            }
            _ => Self::reply(conn, "Unrecognized command").await?,
        }
        Ok(None)
    }
}

/// An adapter setting: `++name N` sets it to a number in its range (the adapter ignores others)
/// and `++name` alone answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Mode,
    Auto,
    Eoi,
    Eos,
    EotEnable,
    EotChar,
    ReadTmoMs,
    SaveCfg,
}

impl Setting {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "mode" => Setting::Mode,
            "auto" => Setting::Auto,
            "eoi" => Setting::Eoi,
            "eos" => Setting::Eos,
            "eot_enable" => Setting::EotEnable,
            "eot_char" => Setting::EotChar,
            "read_tmo_ms" => Setting::ReadTmoMs,
            "savecfg" => Setting::SaveCfg,
            _ => return None,
        })
    }

    fn range(self) -> RangeInclusive<u32> {
        match self {
            Setting::Eos => 0..=3,
            Setting::EotChar => 0..=255,
            Setting::ReadTmoMs => 1..=3000,
            _ => 0..=1,
        }
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
            out.extend(h.push(c));
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
        use crate::personality::tests::quiet;
        use crate::{BusSpec, Fault, FaultKind, SimParams, SimSpec, TcpServer};

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
        async fn a_host_that_leaves_mid_line_does_not_hold_up_the_next() {
            let (server, mut c) = bus("22=keysight-3458a").await;
            // Half a data line, then gone: the fragment reaches no instrument.
            send(&mut c, b"++addr 22\nEND ALW").await;
            drop(c);
            let stream = TcpStream::connect(server.local_addr()).await.unwrap();
            let mut c = BufReader::new(stream);
            send(&mut c, b"ID?\n++read eoi\nERRSTR?\n++read eoi\n").await;
            assert_eq!(line(&mut c).await, "HP3458A\r\n");
            assert_eq!(line(&mut c).await, "0,\"NO ERROR\"\r\n");
        }

        #[tokio::test]
        async fn an_idle_host_does_not_block_the_next_and_the_settings_are_the_boxs() {
            let (server, mut a) = bus("22=keysight-3458a").await;
            // A host that stays connected, half a data line sent, and goes quiet.
            send(&mut a, b"++addr 22\n++auto 1\nEND ALW").await;
            let stream = TcpStream::connect(server.local_addr()).await.unwrap();
            let mut b = BufReader::new(stream);
            // One box: b finds the address and read-after-write a set.
            send(&mut b, b"++addr\n++auto\nID?\n").await;
            assert_eq!(line(&mut b).await, "22\r\n");
            assert_eq!(line(&mut b).await, "1\r\n");
            assert_eq!(line(&mut b).await, "HP3458A\r\n");
            // a's fragment reached no instrument meanwhile; it ends as a's own line, whose
            // read-after-write talks the meter into a reading, a's.
            send(&mut a, b"AYS\n").await;
            assert_eq!(line(&mut a).await, "+1.0000000E+01\r\n");
            send(&mut b, b"ERRSTR?\n").await;
            assert_eq!(line(&mut b).await, "0,\"NO ERROR\"\r\n");
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
            faults.arm(Fault::on("IDN", FaultKind::Block(crate::BadBlock::Short)).at(9));
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
