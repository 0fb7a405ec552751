//! P6: how close a query exchange on the `--baud 9600` simulator comes to the wire time of a real
//! 9600-baud line, next to the same exchange on an unpaced simulator in the same run.
//!
//! `cargo bench --bench p6_wire`. Environment: `P6_ROUNDS` (default 5), `P6_N` exchanges of each
//! kind per round and line (default 20). Each round runs, on the paced line and then the unpaced
//! one, `P6_N` exchanges of each kind: `READ?` with one sample, `*IDN?`, and `READ?` with ten
//! samples (ASCII, comma-separated). Figures are medians over all exchanges of a kind.
//!
//! What the simulator delays, as a real line would: a command is taken only once its last
//! character would have arrived (`tsagent-sim`'s `wire::pace_input`), and each piece of the reply is held back
//! until its last character would have left a UART (`wire::write_paced`). So the computed wire
//! time the target is measured against is `wire_time(command + terminator + reply + terminator,
//! 9600, 8N1)`.
//!
//! Both simulators are the 34470A personality on pseudo-terminals, served from a runtime thread of
//! their own (an instrument is a device of its own); the agent's session runs on a
//! single-threaded runtime, as in `tsagent measure`.
//!
//! Target: median exchange time ≤ 1.05 × computed wire time.

// A panic in a test or benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use tsagent::session::Session;
use tsagent::transport::{Link, LinkSettings, Resource, SerialSettings};
use tsagent_sim::{Frame, PersonalityId, PtyServer, SimParams, SimSpec, wire_time};

const BAUD: u32 = 9600;

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spec(baud: Option<u32>) -> SimSpec {
    let mut spec = SimSpec::instrument(
        PersonalityId::Keysight34470a,
        SimParams {
            realistic_timing: false,
            ..SimParams::default()
        },
    );
    spec.baud = baud;
    spec.frame = Some(Frame::EIGHT_N_ONE);
    spec
}

async fn session(path: &Path) -> Session {
    let resource = Resource::Serial {
        path: path.to_owned(),
    };
    let serial = SerialSettings {
        baud: BAUD,
        ..SerialSettings::default()
    };
    let link = Link::open(&resource, &serial, LinkSettings::default())
        .await
        .unwrap();
    let mut session = Session::new("dmm", link);
    session.set_recording(false);
    session
}

/// One kind of exchange: the set-up written before (not timed) and the query.
struct Kind {
    name: &'static str,
    setup: &'static str,
    query: &'static str,
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "READ?, 1 reading",
        setup: "CONF:VOLT:DC 10;:SAMP:COUN 1",
        query: "READ?",
    },
    Kind {
        name: "*IDN?",
        setup: "CONF:VOLT:DC 10",
        query: "*IDN?",
    },
    Kind {
        name: "READ?, 10 readings",
        setup: "CONF:VOLT:DC 10;:SAMP:COUN 10",
        query: "READ?",
    },
];

/// What one kind measured on one line.
#[derive(Default)]
struct Samples {
    /// Seconds per exchange.
    times: Vec<f64>,
    /// Exchange time / wire time of command and reply, per exchange.
    ratios: Vec<f64>,
    /// Bytes on the wire both ways, terminators included (the last exchange's; they vary by a
    /// character at most).
    bytes: u64,
}

/// `n` exchanges of `kind`; the reply's bytes on the wire are its text plus the terminator.
async fn exchanges(session: &mut Session, kind: &Kind, n: u32, into: &mut Samples) {
    session.write(kind.setup).await.unwrap();
    // The write is not paced and has no reply; ask something so the set-up has surely been
    // taken before the clock starts.
    session.query("*OPC?").await.unwrap();
    let settings = LinkSettings::default();
    let command = (kind.query.len() + settings.write_termination.len()) as u64;
    for _ in 0..n {
        let start = Instant::now();
        let reply = session.query(kind.query).await.unwrap();
        let took = start.elapsed();
        let bytes = command + (reply.len() + settings.read_termination.len()) as u64;
        let wire = wire_time(bytes, BAUD, Frame::EIGHT_N_ONE);
        into.times.push(took.as_secs_f64());
        into.ratios.push(took.as_secs_f64() / wire.as_secs_f64());
        into.bytes = bytes;
    }
}

fn main() {
    let rounds = env("P6_ROUNDS", 5);
    let n = env("P6_N", 20);

    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (paced_sim, plain_sim) = {
        let _in_sim_runtime = sim_rt.enter();
        (
            PtyServer::start_spec(spec(Some(BAUD)), None).unwrap(),
            PtyServer::start_spec(spec(None), None).unwrap(),
        )
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut paced_samples: Vec<Samples> = KINDS.iter().map(|_| Samples::default()).collect();
    let mut plain_samples: Vec<Samples> = KINDS.iter().map(|_| Samples::default()).collect();
    rt.block_on(async {
        let mut paced = session(paced_sim.path()).await;
        let mut plain = session(plain_sim.path()).await;
        for round in 0..rounds {
            for (i, kind) in KINDS.iter().enumerate() {
                exchanges(&mut paced, kind, n, &mut paced_samples[i]).await;
                exchanges(&mut plain, kind, n, &mut plain_samples[i]).await;
            }
            println!("round {round} done");
        }
    });

    println!();
    println!(
        "P6: {rounds} rounds × {n} exchanges of each kind, 34470A personality on a pty, {BAUD} baud 8N1; medians"
    );
    println!(
        "  {:<20} {:>6} {:>10} {:>10} {:>10} {:>11} {:>8}",
        "exchange", "bytes", "wire ms", "paced ms", "unpaced ms", "paced/wire", "target"
    );
    let mut worst: f64 = 0.0;
    for ((kind, paced), plain) in KINDS.iter().zip(paced_samples).zip(plain_samples) {
        let wire = wire_time(paced.bytes, BAUD, Frame::EIGHT_N_ONE).as_secs_f64();
        let ratio = median(paced.ratios);
        worst = worst.max(ratio);
        println!(
            "  {:<20} {:>6} {:>10.2} {:>10.2} {:>10.3} {:>11.3} {:>8}",
            kind.name,
            paced.bytes,
            wire * 1e3,
            median(paced.times) * 1e3,
            median(plain.times) * 1e3,
            ratio,
            if ratio <= 1.05 { "met" } else { "NOT MET" }
        );
    }
    println!(
        "  worst median paced/wire {worst:.3}   target ≤ 1.05: {}",
        if worst <= 1.05 { "met" } else { "NOT MET" }
    );
    println!("  (bytes and wire: command and reply with their terminators, 10 bits a character)");
    drop(paced_sim);
    drop(plain_sim);
}
