//! What a server runs on its line, and the loop that serves one connection: a lone instrument
//! talking directly, or a Prologix adapter with a bus behind it. Faults are applied here, at the
//! level of messages and replies, so they behave the same on a pty and on TCP.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::clock::SharedClock;
use super::fault::{Event, FaultHandle, FaultKind, apply};
use super::personality::{Personality, PersonalityId, Reply, Setup};
use super::prologix::Adapter;
use super::serve::{LineAssembler, LineEvent, MAX_LINE};
use super::spec::{SimSpec, SimTarget};
use super::wire::{Emission, Frame, Pacer, pace_input, write_emission};

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServeEnd {
    /// The client closed the stream.
    Closed,
    /// A fault hangs the line up for `down`.
    Disconnect {
        down: Duration,
        new_path: bool,
        serial: Option<String>,
    },
}

/// What one exchange produced.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Output to send (or queue), if any.
    pub(crate) emission: Option<Emission>,
    /// A hang-up, after the output.
    pub(crate) disconnect: Option<ServeEnd>,
    /// Errors or identity changes for other instruments on a bus.
    pub(crate) elsewhere: Vec<Event>,
}

/// Applies an error or identity event to `p`.
pub(crate) fn apply_event(p: &mut dyn Personality, event: &Event) {
    match event {
        Event::Errors { count, .. } => {
            for _ in 0..*count {
                p.inject_error();
            }
        }
        Event::Identity { serial, .. } => p.set_serial(serial),
        Event::Disconnect { .. } => {}
    }
}

fn event_address(e: &Event) -> Option<u8> {
    match e {
        Event::Errors { address, .. } | Event::Identity { address, .. } => *address,
        Event::Disconnect { .. } => None,
    }
}

/// Sorts events for instrument `addr`: a hang-up is returned, events for this instrument are
/// applied, others are collected for the bus.
fn route(
    p: &mut dyn Personality,
    addr: Option<u8>,
    events: Vec<Event>,
    out: &mut Outcome,
) -> Option<ServeEnd> {
    let mut disconnect = None;
    for e in events {
        match e {
            Event::Disconnect {
                down,
                new_path,
                serial,
            } => {
                disconnect.get_or_insert(ServeEnd::Disconnect {
                    down,
                    new_path,
                    serial,
                });
            }
            other => {
                let target = event_address(&other);
                if addr.is_none() || target.is_none() || target == addr {
                    apply_event(p, &other);
                } else {
                    out.elsewhere.push(other);
                }
            }
        }
    }
    disconnect
}

/// Runs `message` through the faults and `p`.
pub(crate) fn exchange(
    p: &mut dyn Personality,
    addr: Option<u8>,
    message: &[u8],
    faults: &FaultHandle,
    seed: &mut u64,
) -> Outcome {
    let mut out = Outcome::default();
    let (kinds, events) = faults.on_message(addr, message);
    if let Some(end) = route(p, addr, events, &mut out) {
        // The message is lost with the line.
        out.disconnect = Some(end);
        return out;
    }
    let reply = p.handle(message);
    finish(p, addr, reply, kinds, faults, seed, out)
}

/// Output that was not asked for by a message (a talk-addressed 3458A, a streaming sensor).
pub(crate) fn spontaneous(
    p: &mut dyn Personality,
    addr: Option<u8>,
    reply: Reply,
    faults: &FaultHandle,
    seed: &mut u64,
) -> Outcome {
    finish(p, addr, reply, Vec::new(), faults, seed, Outcome::default())
}

fn finish(
    p: &mut dyn Personality,
    addr: Option<u8>,
    reply: Reply,
    mut kinds: Vec<FaultKind>,
    faults: &FaultHandle,
    seed: &mut u64,
    mut out: Outcome,
) -> Outcome {
    let mut after = Vec::new();
    if !reply.is_empty() {
        let (k, e) = faults.on_reply(addr);
        kinds.extend(k);
        after = e;
    }
    let emission = if kinds.is_empty() {
        Emission::from(reply)
    } else {
        *seed = seed.wrapping_add(1);
        apply(reply, &kinds, p.output_terminator(), *seed)
    };
    if !emission.is_empty() || !emission.delay.is_zero() {
        out.emission = Some(emission);
    }
    out.disconnect = route(p, addr, after, &mut out);
    out
}

/// A lone instrument on the line.
pub(crate) struct Instrument {
    pub(crate) personality: Box<dyn Personality>,
    input: LineAssembler,
}

impl Instrument {
    pub(crate) fn new(personality: Box<dyn Personality>) -> Self {
        let input = LineAssembler::with_terminators(MAX_LINE, personality.input_terminators());
        Self { personality, input }
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

    /// Applies an error or identity event that fired while no client was connected.
    pub(crate) fn apply(&mut self, event: Event) {
        match self {
            Station::Single(i) => apply_event(i.personality.as_mut(), &event),
            Station::Bus(b) => b.apply_event(event),
        }
    }

    /// Serves one connection until it closes or a fault hangs it up.
    pub(crate) async fn serve<S>(
        &mut self,
        stream: &mut S,
        faults: &FaultHandle,
        pacer: &mut Option<Pacer>,
    ) -> io::Result<ServeEnd>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match self {
            Station::Single(i) => serve_single(i, stream, faults, pacer).await,
            Station::Bus(b) => b.serve(stream, faults, pacer).await,
        }
    }
}

/// Longest idle sleep when nothing is scheduled; only bounds how long a select waits.
const IDLE: Duration = Duration::from_secs(3600);

async fn serve_single<S>(
    inst: &mut Instrument,
    stream: &mut S,
    faults: &FaultHandle,
    pacer: &mut Option<Pacer>,
) -> io::Result<ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    inst.input.clear();
    let mut chunk = vec![0u8; 4096];
    let mut events = Vec::new();
    let mut seed = 0u64;
    loop {
        for e in faults.due_events() {
            let mut out = Outcome::default();
            if let Some(end) = route(inst.personality.as_mut(), None, vec![e], &mut out) {
                return Ok(end);
            }
        }
        let next = inst.personality.unsolicited_in();
        tokio::select! {
            biased;
            _ = faults.armed_signal() => continue,
            _ = tokio::time::sleep(next.unwrap_or(IDLE)), if next.is_some() => {
                let reply = inst.personality.unsolicited();
                let out = spontaneous(inst.personality.as_mut(), None, reply, faults, &mut seed);
                if let Some(end) = send(stream, out, pacer).await? {
                    return Ok(end);
                }
            }
            n = stream.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    return Ok(ServeEnd::Closed);
                }
                pace_input(n, pacer).await;
                inst.input.push(chunk.get(..n).unwrap_or_default(), &mut events);
                for event in std::mem::take(&mut events) {
                    match event {
                        LineEvent::Line(line) => {
                            if line.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            let out = exchange(
                                inst.personality.as_mut(), None, &line, faults, &mut seed,
                            );
                            if let Some(end) = send(stream, out, pacer).await? {
                                return Ok(end);
                            }
                        }
                        LineEvent::TooLong => inst.personality.input_overflow(),
                    }
                }
            }
        }
    }
}

/// Writes an outcome's output; returns the hang-up it carries.
async fn send<S>(
    stream: &mut S,
    out: Outcome,
    pacer: &mut Option<Pacer>,
) -> io::Result<Option<ServeEnd>>
where
    S: AsyncWrite + Unpin,
{
    if let Some(emission) = out.emission {
        write_emission(stream, emission, pacer).await?;
    }
    Ok(out.disconnect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Fault, SimParams};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    fn quiet() -> SimParams {
        SimParams {
            offset: 0.0,
            noise: 0.0,
            drift_per_day: 0.0,
            tempco: 0.0,
            ..SimParams::default()
        }
    }

    /// A station served on one end of an in-memory pipe.
    fn start(
        id: PersonalityId,
    ) -> (
        BufReader<DuplexStream>,
        FaultHandle,
        tokio::task::JoinHandle<io::Result<ServeEnd>>,
    ) {
        let spec = SimSpec::instrument(id, quiet());
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let faults = FaultHandle::new();
        let f = faults.clone();
        let task = tokio::spawn(async move {
            let mut station = Station::build(
                &spec,
                Arc::new(crate::sim::MonotonicClock::new()),
                Arc::new(AtomicU64::new(0)),
            );
            station.serve(&mut server, &f, &mut None).await
        });
        (BufReader::new(client), faults, task)
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
