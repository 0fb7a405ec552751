//! P1: readings per second through the whole acquisition path — simulator over TCP, SCPI session,
//! one durable SQLite commit per reading (WAL, synchronous=FULL, chain) — next to a bare rusqlite
//! insert + commit loop on the same disk in the same run, which is the limit.
//!
//! `cargo bench --bench p1_throughput`. Environment: `P1_CHUNK` readings per chunk (default 500),
//! `P1_PAIRS` rounds (default 12). Each round runs a chunk of the limit, of the agent, and of a
//! diagnostic floor — the same exchange followed by the same bare insert, with no agent logic — so
//! the machine's changing load hits all three alike; figures are medians over rounds.
//! Target: agent ≥ 0.9 × limit.

// A panic in a test or benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, params};
use tsagent::clock::SystemClock;
use tsagent::config::Config;
use tsagent::sequence::{Quiet, Runner, Stop};
use tsagent::session::Session;
use tsagent::store::{Store, Trigger};
use tsagent::supervisor::Supervisor;
use tsagent::transport::{Link, LinkSettings, Resource, SerialSettings};
use tsagent_sim::{SimParams, TcpServer};

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The limit: autocommit insert per row (each its own durable transaction), same pragmas, a row of
/// the same shape, the statement cached as any tuned loop would have it.
struct Bare {
    conn: Connection,
    next: i64,
}

impl Bare {
    fn open(dir: &Path) -> Bare {
        let conn = Connection::open(dir.join("bare.db")).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch(
            "CREATE TABLE readings (seq INTEGER PRIMARY KEY, run_id INTEGER, instrument_id INTEGER,
                quantity TEXT, value REAL, status TEXT, unit TEXT, raw TEXT, utc_us INTEGER,
                mono_ns INTEGER, boot_id TEXT, chain BLOB)",
        )
        .unwrap();
        Bare { conn, next: 1 }
    }

    fn chunk(&mut self, n: u32) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            self.conn
                .prepare_cached(
                    "INSERT INTO readings VALUES (?1, 1, 1, 'voltage', ?2, 'valid', 'V', '+1.00000023E+01',
                        ?3, ?3, '00000000-0000-0000-0000-000000000000', ?4)",
                )
                .unwrap()
                .execute(params![self.next, 10.000_002_3, self.next, &[0u8; 32][..]])
                .unwrap();
            self.next += 1;
        }
        f64::from(n) / start.elapsed().as_secs_f64()
    }
}

fn config(dir: &Path, port: u16, n: u32) -> Config {
    let toml = format!(
        r#"
[lab]
id = "BENCH"
name = "bench"
[artefact]
id = "Z"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[storage]
db = "agent.db"
[[instrument]]
name = "dmm"
resource = "TCPIP::127.0.0.1::{port}::SOCKET"
[[sequence]]
name = "p1"
[[sequence.step]]
read = {{ instrument = "dmm", count = {n}, quantity = "voltage", unit = "V" }}
"#
    );
    Config::parse(&toml, "p1", dir).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let chunk = env("P1_CHUNK", 500);
    let pairs = env("P1_PAIRS", 12);
    let dir = tempfile::Builder::new()
        .prefix("p1-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    // The runtime `tsagent measure` uses: one thread (see `cli::runtime`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(TcpServer::start(SimParams::default(), "127.0.0.1:0"))
        .unwrap();
    let port = sim.local_addr().port();

    let config = config(dir.path(), port, chunk);
    let mut store = Store::open(&config.storage.db).unwrap();
    let mut supervisor = Supervisor::new(&config);
    let mut bare = Bare::open(dir.path());
    let stop = Stop::never();

    // A plain session for the diagnostic loops, on a second simulator, so the two never share
    // an instrument's state.
    let diag = rt
        .block_on(TcpServer::start(SimParams::default(), "127.0.0.1:0"))
        .unwrap();
    let mut session = rt.block_on(async {
        let resource = Resource::Tcp {
            host: "127.0.0.1".into(),
            port: diag.local_addr().port(),
        };
        let link = Link::open(
            &resource,
            &SerialSettings::default(),
            LinkSettings::default(),
        )
        .await
        .unwrap();
        let mut session = Session::new("dmm", link);
        session.set_recording(false);
        session
    });

    let (mut limit, mut ours, mut floor, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..pairs {
        let b = bare.chunk(chunk);
        let a = rt.block_on(async {
            let mut runner = Runner {
                config: &config,
                store: &mut store,
                clock: Arc::new(SystemClock::new()),
                supervisor: &mut supervisor,
            };
            let start = Instant::now();
            let outcome = runner
                .run_named("p1", Trigger::Manual, None, &mut Quiet, &stop)
                .await
                .unwrap();
            assert_eq!(outcome.readings, u64::from(chunk));
            f64::from(chunk) / start.elapsed().as_secs_f64()
        });
        // The floor for any agent that commits each reading before the next trigger: the
        // exchange, then the bare insert, with no logic of its own.
        let f = rt.block_on(async {
            let start = Instant::now();
            for _ in 0..chunk {
                session.read_number("READ?").await.unwrap();
                bare.chunk(1);
            }
            f64::from(chunk) / start.elapsed().as_secs_f64()
        });
        println!(
            "round {round:2}: bare insert+commit {b:7.0} /s   agent {a:7.0} /s   exchange-then-insert {f:7.0} /s   agent/bare {:.3}",
            a / b
        );
        limit.push(b);
        ours.push(a);
        floor.push(f);
        ratios.push(a / b);
    }
    let exchange = rt.block_on(async {
        let start = Instant::now();
        for _ in 0..chunk {
            session.read_number("READ?").await.unwrap();
        }
        f64::from(chunk) / start.elapsed().as_secs_f64()
    });
    assert!(store.check().unwrap().is_sound());

    let (b, a, f) = (median(limit), median(ours), median(floor));
    println!();
    println!(
        "P1: {pairs} rounds of {chunk}-reading chunks, medians; disk: {}",
        dir.path().display()
    );
    println!(
        "  bare rusqlite insert+commit (the limit)    {b:7.0} readings/s  ({:.0} µs each)",
        1e6 / b
    );
    println!(
        "  tsagent: sim over TCP → durable log        {a:7.0} readings/s  ({:.0} µs each)",
        1e6 / a
    );
    println!(
        "  agent / limit (median of rounds)           {:7.3}   target ≥ 0.9",
        median(ratios)
    );
    println!(
        "  exchange then bare insert, no agent logic  {f:7.0} readings/s  ({:.0} µs each)",
        1e6 / f
    );
    println!("  agent / exchange-then-insert               {:7.3}", a / f);
    println!(
        "  the exchange alone, nothing stored         {exchange:7.0} exchanges/s ({:.0} µs each)",
        1e6 / exchange
    );
}
