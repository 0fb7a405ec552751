//! One exchange with an instrument: a message (or output it makes unasked) through the armed
//! faults and the personality, and what comes of it: output to send, a hang-up, errors or identity
//! changes for other instruments on a bus; and the client connection it is written to. Shared by
//! a lone instrument and the Prologix bus, so faults behave the same on both.

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::fault::{Event, FaultHandle, FaultKind, Outage, apply, take_outage};
use crate::personality::Personality;
use crate::reply::Reply;
use crate::wire::{Emission, Pacer, write_emission, write_paced};

/// The client connection being served: where output goes, at what pace, and the faults armed
/// on the line.
pub(crate) struct Connection<'a, S> {
    pub(crate) stream: &'a mut S,
    pub(crate) faults: &'a FaultHandle,
    pub(crate) pacer: &'a mut Option<Pacer>,
}

impl<S: AsyncWrite + Unpin> Connection<'_, S> {
    /// Writes an outcome's output; returns the hang-up it carries.
    pub(crate) async fn send(&mut self, out: Outcome) -> io::Result<Option<Outage>> {
        if let Some(emission) = out.emission {
            write_emission(self.stream, emission, self.pacer).await?;
        }
        Ok(out.disconnect)
    }

    /// Writes `data` at the line's pace.
    pub(crate) async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        write_paced(self.stream, data, self.pacer).await
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServeEnd {
    /// The client closed the stream.
    Closed,
    /// A fault hangs the line up.
    Disconnect(Outage),
}

/// What one exchange produced.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Output to send (or queue), if any.
    pub(crate) emission: Option<Emission>,
    /// A hang-up, after the output.
    pub(crate) disconnect: Option<Outage>,
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
        Event::Disconnect(_) => {}
    }
}

/// Sorts events for instrument `addr`: a hang-up is returned, events for this instrument are
/// applied, others are collected for the bus.
fn route(
    p: &mut dyn Personality,
    addr: Option<u8>,
    events: Vec<Event>,
    out: &mut Outcome,
) -> Option<Outage> {
    take_outage(events, |e| {
        let target = e.address();
        if addr.is_none() || target.is_none() || target == addr {
            apply_event(p, &e);
        } else {
            out.elsewhere.push(e);
        }
    })
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
    if let Some(outage) = route(p, addr, events, &mut out) {
        // The message is lost with the line.
        out.disconnect = Some(outage);
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
