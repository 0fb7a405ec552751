//! P1: readings per second through the whole acquisition path — simulator over TCP, SCPI session,
//! one durable SQLite commit per reading (WAL, synchronous=FULL, chain, exchange event) — next to a
//! bare rusqlite insert + commit loop on the same disk in the same run, which is the limit.
//!
//! `cargo bench --bench p1_throughput` (env `P1_READINGS`, default 2000 per round; `P1_ROUNDS`,
//! default 5). Rounds alternate limit / agent so drift in the machine's load hits both; medians are
//! reported. Target: agent ≥ 0.9 × limit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tsagent::clock::SystemClock;
use tsagent::config::Config;
use tsagent::sequence::{Connector, Quiet, Runner};
use tsagent::sim::{SimParams, TcpServer};
use tsagent::store::{Store, Trigger};

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The limit: a bare insert + commit per row, same pragmas, a row of the same shape.
fn bare_loop(dir: &Path, n: u32) -> Duration {
    let path = dir.join("bare.db");
    let _ = std::fs::remove_file(&path);
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE readings (seq INTEGER PRIMARY KEY, run_id INTEGER, instrument_id INTEGER,
            quantity TEXT, value REAL, status TEXT, unit TEXT, raw TEXT, utc_us INTEGER,
            mono_ns INTEGER, boot_id TEXT, chain BLOB)",
    )
    .unwrap();
    let start = Instant::now();
    for i in 1..=i64::from(n) {
        // Autocommit: each insert is its own durable transaction. The statement is cached, as any
        // tuned loop would have it, so this is the limit, not a strawman.
        conn.prepare_cached(
            "INSERT INTO readings VALUES (?1, 1, 1, 'voltage', ?2, 'valid', 'V', '+1.00000023E+01',
                ?3, ?3, '00000000-0000-0000-0000-000000000000', ?4)",
        )
        .unwrap()
        .execute(params![i, 10.000_002_3, i, &[0u8; 32][..]])
        .unwrap();
    }
    start.elapsed()
}

/// The agent: `n` readings of one sequence through the runner, as `tsagent measure` does.
fn agent(rt: &tokio::runtime::Runtime, dir: &Path, port: u16, n: u32, round: u32) -> Duration {
    let db = dir.join(format!("agent-{round}.db"));
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
db = "{db}"
[[instrument]]
name = "dmm"
resource = "TCPIP::127.0.0.1::{port}::SOCKET"
[[sequence]]
name = "p1"
[[sequence.step]]
identify = {{ instrument = "dmm" }}
[[sequence.step]]
read = {{ instrument = "dmm", count = {n}, quantity = "voltage", unit = "V" }}
"#,
        db = db.display()
    );
    let config = Config::parse(&toml, "p1", dir).unwrap();
    let mut store = Store::open(&config.storage.db).unwrap();
    rt.block_on(async {
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let mut connector = Connector::new(config.simulator.clone());
        let mut runner =
            Runner { config: &config, store: &mut store, clock: Arc::new(SystemClock::new()), connector: &mut connector };
        let start = Instant::now();
        let outcome = runner.run_named("p1", Trigger::Manual, None, &mut Quiet, &stop).await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(outcome.readings, u64::from(n));
        elapsed
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = env("P1_READINGS", 2000);
    let rounds = env("P1_ROUNDS", 5);
    let dir = tempfile::Builder::new().prefix("p1-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // The runtime `tsagent measure` uses: one thread (see `cli::runtime`).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sim = rt.block_on(TcpServer::start(SimParams::default(), "127.0.0.1:0")).unwrap();
    let port = sim.local_addr().port();

    let (mut limit, mut ours) = (Vec::new(), Vec::new());
    // P1_ONLY=bare|agent runs one side alone, for profiling (`strace -c`, `perf`).
    let only = std::env::var("P1_ONLY").unwrap_or_default();
    for round in 0..rounds {
        let b = if only == "agent" { Duration::from_secs(1) } else { bare_loop(dir.path(), n) };
        let a = if only == "bare" { Duration::from_secs(1) } else { agent(&rt, dir.path(), port, n, round) };
        let (b_rate, a_rate) = (f64::from(n) / b.as_secs_f64(), f64::from(n) / a.as_secs_f64());
        println!("round {round}: bare insert+commit {b_rate:8.0} /s   agent {a_rate:8.0} /s   ratio {:.3}", a_rate / b_rate);
        limit.push(b_rate);
        ours.push(a_rate);
    }
    let (b, a) = (median(limit), median(ours));
    println!();
    println!("P1 ({n} readings per round, {rounds} rounds, medians; disk: {})", dir.path().display());
    println!("  bare rusqlite insert+commit (limit)  {b:8.0} readings/s");
    println!("  tsagent: sim over TCP → durable log  {a:8.0} readings/s");
    println!("  ratio                                {:8.3}   (target ≥ 0.9)", a / b);
}
