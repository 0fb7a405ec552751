//! What a server runs on its line: a lone instrument talking directly, or a Prologix adapter with
//! a bus behind it. Each connection frames its own input ([`Framer`]) and each complete unit of it
//! is one exchange ([`Station::unit`]), which is what lets the TCP server serve several clients
//! at once; the pty's single connection is served by [`Station::serve`]. Faults are applied per
//! exchange (`exchange.rs`), so they behave the same on a pty and on TCP.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::clock::SharedClock;
use crate::exchange::{Connection, ServeEnd, apply_event, exchange, spontaneous};
use crate::fault::{Event, FaultHandle, Outage, take_outage};
use crate::framing::{LineAssembler, LineEvent, MAX_LINE};
use crate::id::PersonalityId;
use crate::personality::{Personality, Setup};
use crate::prologix::{Adapter, HostLine, HostLines};
use crate::spec::{SimSpec, SimTarget};
use crate::wire::{Frame, Pacer, pace_input};

/// Longest idle sleep when nothing is scheduled; only bounds how long a select waits.
const IDLE: Duration = Duration::from_secs(3600);

/// A lone instrument on the line.
pub(crate) struct Instrument {
    personality: Box<dyn Personality>,
    /// Varies the garbage of successive faults; starts again with each connection.
    seed: u64,
}

impl Instrument {
    fn new(personality: Box<dyn Personality>) -> Self {
        Self {
            personality,
            seed: 0,
        }
    }

    /// Serves one complete message as one exchange. Returns a hang-up a fault caused.
    async fn message<S: AsyncWrite + Unpin>(
        &mut self,
        event: LineEvent,
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        match event {
            LineEvent::Line(line) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                let p = self.personality.as_mut();
                let out = exchange(p, None, &line, conn.faults, &mut self.seed);
                conn.send(out).await
            }
            LineEvent::TooLong => {
                self.personality.input_overflow();
                Ok(None)
            }
        }
    }

    /// Sends the output a streaming instrument has due.
    async fn unsolicited<S: AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        let reply = self.personality.unsolicited();
        let p = self.personality.as_mut();
        let out = spontaneous(p, None, reply, conn.faults, &mut self.seed);
        conn.send(out).await
    }
}

/// One connection's framing of its input: a message a client has only half sent stays that
/// client's, so it is never completed by another client's bytes nor handed to the next one.
pub(crate) enum Framer {
    /// Program messages for a lone instrument, at its terminators.
    Lines(LineAssembler),
    /// Host lines for a Prologix adapter.
    Host(HostLines),
}

/// One complete piece of a client's input: what the station serves as one exchange.
pub(crate) enum Unit {
    Message(LineEvent),
    Host(HostLine),
}

impl Framer {
    /// Takes in `data`; returns the units it completed.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<Unit> {
        match self {
            Framer::Lines(l) => l.push(data).into_iter().map(Unit::Message).collect(),
            Framer::Host(h) => h.push(data).into_iter().map(Unit::Host).collect(),
        }
    }
}

/// What is on the line.
pub(crate) enum Station {
    Single(Instrument),
    Bus(Adapter),
}

impl Station {
    /// Builds the instruments of `spec`, all on `clock`, counting readings in `sent`.
    pub(crate) fn build(spec: &SimSpec, clock: SharedClock, sent: Arc<AtomicU64>) -> Self {
        let setup = |id: PersonalityId, slot: u8| Setup {
            params: spec.params.clone(),
            clock: Arc::clone(&clock),
            sent: Arc::clone(&sent),
            serial: id.default_serial(slot),
        };
        match &spec.target {
            SimTarget::Instrument(id) => Station::Single(Instrument::new(id.build(setup(*id, 1)))),
            SimTarget::Prologix(bus) => Station::Bus(Adapter::new(
                bus.devices()
                    .map(|(addr, id)| (addr, id.build(setup(id, addr)))),
            )),
        }
    }

    /// The serial frame `--baud` pacing uses unless the spec names one.
    pub(crate) fn frame(&self) -> Frame {
        match self {
            Station::Single(i) => i.personality.serial_frame(),
            Station::Bus(_) => Frame::EIGHT_N_ONE,
        }
    }

    /// Every instrument now reports `serial` (a different unit came back).
    pub(crate) fn set_serial(&mut self, serial: &str) {
        match self {
            Station::Single(i) => i.personality.set_serial(serial),
            Station::Bus(b) => b.set_serial(serial),
        }
    }

    /// Applies the fault events due now, connected or not, and returns the first hang-up among
    /// them.
    pub(crate) fn due_events(&mut self, faults: &FaultHandle) -> Option<Outage> {
        take_outage(faults.due_events(), |event| self.apply(event))
    }

    /// Applies an error or identity event.
    fn apply(&mut self, event: Event) {
        match self {
            Station::Single(i) => apply_event(i.personality.as_mut(), &event),
            Station::Bus(b) => b.apply_event(event),
        }
    }

    /// A framer for a new connection's input; the fault garbage sequence starts again.
    pub(crate) fn new_connection(&mut self) -> Framer {
        match self {
            Station::Single(i) => {
                i.seed = 0;
                Framer::Lines(LineAssembler::with_terminators(
                    MAX_LINE,
                    i.personality.input_terminators(),
                ))
            }
            Station::Bus(_) => Framer::Host(HostLines::default()),
        }
    }

    /// Serves one unit of a client's input as one exchange; returns a hang-up a fault caused.
    pub(crate) async fn unit<S: AsyncWrite + Unpin>(
        &mut self,
        unit: Unit,
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        match (self, unit) {
            (Station::Single(i), Unit::Message(event)) => i.message(event, conn).await,
            (Station::Bus(b), Unit::Host(line)) => b.line(line, conn).await,
            // A framer is made by its station, so the kinds always match.
            _ => Ok(None),
        }
    }

    /// How long until a streaming instrument has output due; a bus instrument's output waits
    /// until the controller reads it.
    pub(crate) fn unsolicited_in(&self) -> Option<Duration> {
        match self {
            Station::Single(i) => i.personality.unsolicited_in(),
            Station::Bus(_) => None,
        }
    }

    /// Sends the output a streaming instrument has due.
    pub(crate) async fn unsolicited<S: AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Connection<'_, S>,
    ) -> io::Result<Option<Outage>> {
        match self {
            Station::Single(i) => i.unsolicited(conn).await,
            Station::Bus(_) => Ok(None),
        }
    }

    /// Serves one connection until the client closes it or a fault hangs it up: the client's
    /// bytes, the output a streaming instrument sends unasked, and faults armed meanwhile.
    pub(crate) async fn serve<S>(
        &mut self,
        stream: &mut S,
        faults: &FaultHandle,
        pacer: &mut Option<Pacer>,
    ) -> io::Result<ServeEnd>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // What the last client left unfinished is not this one's.
        let mut framer = self.new_connection();
        let mut chunk = vec![0u8; 4096];
        let mut conn = Connection {
            stream,
            faults,
            pacer,
        };
        loop {
            if let Some(outage) = self.due_events(faults) {
                return Ok(ServeEnd::Disconnect(outage));
            }
            let next = self.unsolicited_in();
            let outage = tokio::select! {
                biased;
                _ = faults.armed_signal() => None,
                _ = tokio::time::sleep(next.unwrap_or(IDLE)), if next.is_some() => {
                    self.unsolicited(&mut conn).await?
                }
                n = conn.stream.read(&mut chunk) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(ServeEnd::Closed);
                    }
                    pace_input(n, conn.pacer).await;
                    let data = chunk.get(..n).unwrap_or_default();
                    let mut end = None;
                    for unit in framer.push(data) {
                        end = self.unit(unit, &mut conn).await?;
                        if end.is_some() {
                            break;
                        }
                    }
                    end
                }
            };
            if let Some(outage) = outage {
                return Ok(ServeEnd::Disconnect(outage));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::tests::quiet;
    use crate::{Fault, FaultKind, SimParams};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    /// A station served on one end of an in-memory pipe.
    fn start(
        id: PersonalityId,
    ) -> (
        BufReader<DuplexStream>,
        FaultHandle,
        tokio::task::JoinHandle<io::Result<ServeEnd>>,
    ) {
        let (client, faults, _, task) = serve(SimSpec::instrument(id, quiet()));
        (client, faults, task)
    }

    /// `spec` served on one end of an in-memory pipe, with its fault handle and reading counter.
    fn serve(
        spec: SimSpec,
    ) -> (
        BufReader<DuplexStream>,
        FaultHandle,
        Arc<AtomicU64>,
        tokio::task::JoinHandle<io::Result<ServeEnd>>,
    ) {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let faults = FaultHandle::new();
        let sent = Arc::new(AtomicU64::new(0));
        let (f, s) = (faults.clone(), Arc::clone(&sent));
        let task = tokio::spawn(async move {
            let mut station = Station::build(&spec, Arc::new(crate::MonotonicClock::new()), s);
            station.serve(&mut server, &f, &mut None).await
        });
        (BufReader::new(client), faults, sent, task)
    }

    async fn line(c: &mut BufReader<DuplexStream>) -> String {
        let mut s = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_until(b'\n', &mut s))
            .await
            .expect("no reply")
            .unwrap();
        String::from_utf8_lossy(&s).into_owned()
    }

    #[tokio::test]
    async fn answers_each_line_in_order() {
        let (mut c, _, sent, task) = serve(SimSpec::generic(SimParams::default()));
        c.get_mut()
            .write_all(b"*OPC?\n*RST\n*IDN?\r\nSYST:ERR?\n")
            .await
            .unwrap();
        assert_eq!(line(&mut c).await, "1\n");
        assert!(line(&mut c).await.starts_with("TSAGENT,SIM-DMM,"));
        assert_eq!(line(&mut c).await, "0,\"No error\"\n");
        // A partial line at the end of input is dropped, and the server returns cleanly.
        c.get_mut().write_all(b"READ?").await.unwrap();
        drop(c);
        assert_eq!(task.await.unwrap().unwrap(), ServeEnd::Closed);
        assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn an_over_long_line_is_dropped_and_reported_as_223() {
        let (mut c, _, _, task) = serve(SimSpec::generic(SimParams::default()));
        let mut long = vec![b'A'; MAX_LINE + 1];
        long.extend_from_slice(b"\n*OPC?\nSYST:ERR?\nSYST:ERR?\n");
        c.get_mut().write_all(&long).await.unwrap();
        assert_eq!(line(&mut c).await, "1\n");
        assert_eq!(line(&mut c).await, "-223,\"Too much data\"\n");
        assert_eq!(line(&mut c).await, "0,\"No error\"\n");
        // A line of exactly the cap is executed (here: an undefined header).
        let mut at_cap = vec![b'B'; MAX_LINE];
        at_cap.extend_from_slice(b"\nSYST:ERR?\n");
        c.get_mut().write_all(&at_cap).await.unwrap();
        assert_eq!(line(&mut c).await, "-112,\"Program mnemonic too long\"\n");
        drop(c);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn realistic_timing_holds_the_reply_for_the_integration_time() {
        let params = SimParams {
            realistic_timing: true,
            ..SimParams::default()
        };
        let (mut c, _, _, task) = serve(SimSpec::generic(params));
        let started = std::time::Instant::now();
        c.get_mut().write_all(b"READ?\n").await.unwrap();
        line(&mut c).await;
        // NPLC 10 at 50 Hz.
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        drop(c);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn serves_a_personality_and_ends_when_the_client_closes() {
        let (mut c, _, task) = start(PersonalityId::Keysight3458a);
        c.get_mut()
            .write_all(b"ID?\r\nEND ALWAYS;TARM HOLD\nTARM SGL\n")
            .await
            .unwrap();
        assert_eq!(line(&mut c).await, "HP3458A\r\n");
        assert_eq!(line(&mut c).await, "+1.0000000E+01\r\n");
        drop(c);
        assert_eq!(task.await.unwrap().unwrap(), ServeEnd::Closed);
    }

    #[tokio::test]
    async fn faults_hit_the_right_reply_and_disconnect_ends_the_connection() {
        let (mut c, faults, task) = start(PersonalityId::Keysight34470a);
        faults.arm(Fault::on("READ?", FaultKind::Garbage { len: 8 }));
        faults.arm(Fault::after(2, FaultKind::Unterminated));
        c.get_mut().write_all(b"*OPC?\nREAD?\n").await.unwrap();
        assert_eq!(line(&mut c).await, "1\n");
        let mut g = Vec::new();
        c.read_until(b'\n', &mut g).await.unwrap();
        assert_eq!(g.len(), 9, "{g:?}");
        // Reply 3: unterminated; the next reply follows it on the same line.
        c.get_mut().write_all(b"*OPC?\n*OPC?\n").await.unwrap();
        assert_eq!(line(&mut c).await, "11\n");
        faults.arm(Fault::on("SYST:ERR?", FaultKind::Errors { count: 2 }));
        c.get_mut().write_all(b"SYST:ERR?\n").await.unwrap();
        assert_eq!(line(&mut c).await, "-300,\"Device-specific error\"\n");
        faults.inject(FaultKind::Disconnect {
            down: Duration::from_secs(1),
            new_path: false,
            serial: None,
        });
        let end = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(end, ServeEnd::Disconnect { .. }));
        assert_eq!(faults.fired(), 4);
    }

    #[tokio::test]
    async fn streaming_output_is_sent_unasked() {
        let (mut c, _, _task) = start(PersonalityId::VaisalaPtu300);
        c.get_mut().write_all(b"INTV 1 S\rR\r").await.unwrap();
        assert!(line(&mut c).await.starts_with("Output intrv."));
        assert!(line(&mut c).await.starts_with("P="));
        // The next line comes from the one-second interval, not from a command.
        assert!(line(&mut c).await.starts_with("P="));
    }
}
