//! P2: 1,000,000 readings taken as REAL,64 blocks from the simulated Keysight 34470A over TCP and
//! stored durably (one transaction per block, chain included), as readings per second next to a
//! bare batched rusqlite insert of the same rows in the same run, plus the agent's peak RSS.
//!
//! `cargo bench --bench p2_blocks`. Environment: `P2_TOTAL` readings per pass (default
//! 1 000 000), `P2_BLOCK` readings per block (default 10 000; the simulated meter's memory holds
//! at most 50 000), `P2_ROUNDS` (default 5). Each round runs one pass of the bare insert and one of
//! the agent, in alternating order, each into a fresh database on the repository's disk; figures
//! are medians over rounds.
//!
//! The agent pass is the real sequence runner (`tsagent measure`'s code): a `read` step with
//! `op = "read_buffer"` from the built-in `keysight-34470a` profile, `count` readings per block,
//! on the single-threaded runtime the CLI uses. The simulator runs on a runtime thread of its own,
//! as an instrument is a device of its own.
//!
//! Peak RSS is measured honestly for the agent alone: the bench starts itself again as a child
//! process (`P2_CHILD=1`) that runs one agent pass against a simulator served by the parent, and
//! reports its own `VmHWM` from `/proc/self/status`. The baseline and the simulator never run in
//! that process.
//!
//! A diagnostic pass then splits the time per block (`P2_SPLIT_BLOCKS`, default 20): the set-up
//! writes, the `FETC?` exchange (which includes the simulator filling its memory after `INIT`),
//! decoding into values, building the rows, the chain hashes alone, `Store::append_readings`, and
//! the bare insert of exactly those rows. Last, SQLite alone: the same rows into the bare table,
//! into the store's own schema (taken from a database `Store::open` made), into that schema with
//! its `status IN (…)` check written as ORs, and that with 64-row statements.
//!
//! Targets: agent ≥ 1 M readings/s, agent ≥ 0.7 × bare insert, peak RSS ≤ 64 MB.

// A panic in a test or benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tsagent::clock::{Clock, SystemClock, Timestamp};
use tsagent::config::Config;
use tsagent::drivers::{self, Registry, ReplySpec, exec};
use tsagent::sequence::{Quiet, Runner, Stop};
use tsagent::session::Session;
use tsagent::store::{NewReading, RunStart, Store, Trigger};
use tsagent::supervisor::Supervisor;
use tsagent::transport::{Link, LinkSettings, Resource, SerialSettings};
use tsagent_bundle::chain::{ReadingRef, ReadingStatus};
use tsagent_sim::{PersonalityId, SimParams, SimSpec, TcpServer};

const PROFILE: &str = "keysight-34470a";
const BOOT_ID: &str = "00000000-0000-0000-0000-000000000000";

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/self/status` in kB (`VmHWM`, `VmRSS`).
fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The simulated 34470A, answering at once (no integration time).
fn spec() -> SimSpec {
    SimSpec::instrument(
        PersonalityId::Keysight34470a,
        SimParams {
            realistic_timing: false,
            ..SimParams::default()
        },
    )
}

fn config(dir: &Path, port: u16, block: u32, blocks: u32) -> Config {
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
driver = "{PROFILE}"
[[sequence]]
name = "p2"
[[sequence.step]]
read = {{ instrument = "dmm", op = "read_buffer", params = {{ count = "{block}" }}, count = {blocks}, quantity = "voltage", unit = "V" }}
"#
    );
    Config::parse(&toml, "p2", dir).unwrap()
}

/// One pass of the agent: a run of `blocks` × `block` readings into a fresh database at `db`.
/// Returns readings per second.
fn agent_pass(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    supervisor: &mut Supervisor,
    db: &Path,
    total: u32,
    check: bool,
) -> f64 {
    let mut store = Store::open(db).unwrap();
    let stop = Stop::never();
    let rate = rt.block_on(async {
        let mut runner = Runner {
            config,
            store: &mut store,
            clock: Arc::new(SystemClock::new()),
            supervisor,
        };
        let start = Instant::now();
        let outcome = runner
            .run_named("p2", Trigger::Manual, None, &mut Quiet, &stop)
            .await
            .unwrap();
        let elapsed = start.elapsed();
        assert_eq!(outcome.readings, u64::from(total));
        f64::from(total) / elapsed.as_secs_f64()
    });
    if check {
        assert!(store.check().unwrap().is_sound());
    }
    drop(store);
    remove_db(db);
    rate
}

/// The limit: a bare batched insert, one transaction per block, same pragmas, a table of the
/// same columns as the store's readings table without its constraints, cached statement, rows
/// made ready before the clock starts.
struct Bare {
    conn: Connection,
    next: i64,
}

/// A row as the bare loop inserts it: the parts that vary.
struct Row {
    value: f64,
    raw: String,
}

impl Bare {
    fn open(path: &Path) -> Bare {
        let conn = Connection::open(path).unwrap();
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

    /// Inserts `rows` in one transaction; returns the time it took.
    fn block(&mut self, rows: &[Row], at: Timestamp) -> Duration {
        let start = Instant::now();
        let tx = self.conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO readings VALUES (?1, 1, 1, 'voltage', ?2, 'valid', 'V', ?3, ?4, ?5,
                        ?6, ?7)",
                )
                .unwrap();
            let mut chain = [0u8; 32];
            for row in rows {
                chain[..8].copy_from_slice(&self.next.to_be_bytes());
                insert
                    .execute(params![
                        self.next,
                        row.value,
                        row.raw,
                        at.utc_us,
                        at.mono_ns as i64,
                        BOOT_ID,
                        &chain[..]
                    ])
                    .unwrap();
                self.next += 1;
            }
        }
        tx.commit().unwrap();
        start.elapsed()
    }
}

/// Rows like the meter's: about 10 V with a little noise, raw text as the decoder writes it.
fn rows(n: u32, k: &mut u64) -> Vec<Row> {
    (0..n)
        .map(|_| {
            *k += 1;
            // A cheap deterministic wobble in the last digits, like the simulated noise.
            let value = 10.000_002_3 + ((*k * 2_654_435_761) % 1000) as f64 * 1e-10;
            Row {
                value,
                raw: format!("{value:e}"),
            }
        })
        .collect()
}

/// One pass of the bare insert into a fresh database; returns readings per second (time spent
/// inserting only).
fn bare_pass(db: &Path, total: u32, block: u32, at: Timestamp) -> f64 {
    let mut bare = Bare::open(db);
    let mut k = 0;
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < total {
        let n = block.min(total - done);
        let rows = rows(n, &mut k);
        spent += bare.block(&rows, at);
        done += n;
    }
    drop(bare);
    remove_db(db);
    f64::from(total) / spent.as_secs_f64()
}

/// The child process: one agent pass against the parent's simulator, then its own peak RSS.
fn child() {
    let port = env("P2_PORT", 0) as u16;
    let total = env("P2_TOTAL", 1_000_000);
    let block = env("P2_BLOCK", 10_000);
    let dir = PathBuf::from(std::env::var("P2_DIR").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = config(&dir, port, block, total / block);
    let mut supervisor = Supervisor::new(&config);
    let before = proc_status_kb("VmHWM");
    let rate = agent_pass(
        &rt,
        &config,
        &mut supervisor,
        &dir.join("child.db"),
        total,
        false,
    );
    println!(
        "P2CHILD {rate:.0} {before} {} {}",
        proc_status_kb("VmHWM"),
        proc_status_kb("VmRSS")
    );
}

/// Per-block time of each stage, summed over the diagnostic pass.
#[derive(Default)]
struct Split {
    setup: Duration,
    transfer: Duration,
    decode: Duration,
    rows: Duration,
    hash: Duration,
    store: Duration,
    bare: Duration,
    exec_run: Duration,
}

fn diagnostic(
    rt: &tokio::runtime::Runtime,
    port: u16,
    dir: &Path,
    block: u32,
    blocks: u32,
) -> Split {
    let registry = Registry::builtin().unwrap();
    let profile = registry.get(PROFILE).unwrap().clone();
    let op = profile.operation("read_buffer").unwrap().clone();
    let Some(ReplySpec::Block { format, order }) = op.reply else {
        panic!("read_buffer is not a block reply");
    };
    let params: BTreeMap<String, String> = [("count".to_owned(), block.to_string())].into();
    let commands: Vec<String> = op
        .setup
        .iter()
        .chain(&op.send)
        .map(|t| t.render(&params).unwrap())
        .collect();
    let query = op.query.as_ref().unwrap().render(&params).unwrap();

    let clock = SystemClock::new();
    let mut store = Store::open(&dir.join("split.db")).unwrap();
    let mut bare = Bare::open(&dir.join("split-bare.db"));
    let run_id = store
        .begin_run(&RunStart {
            sequence: "split",
            sequence_sha256: [0; 32],
            trigger: Trigger::Manual,
            operator: None,
            official: false,
            at: clock.now(),
            owner: (1, BOOT_ID),
        })
        .unwrap();
    let mut split = Split::default();
    rt.block_on(async {
        let resource = Resource::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let settings = LinkSettings {
            timeout: Duration::from_secs(60),
            ..LinkSettings::default()
        };
        let link = Link::open(&resource, &SerialSettings::default(), settings)
            .await
            .unwrap();
        let mut session = Session::new("dmm", link);
        session.set_recording(false);
        let identity = session.identify().await.unwrap();
        let instrument_id = store
            .record_instrument("dmm", "tcp", &identity, clock.now())
            .unwrap();
        for _ in 0..blocks {
            let t = Instant::now();
            for c in &commands {
                session.write(c).await.unwrap();
            }
            let t1 = Instant::now();
            let payload = session.query_block(&query, exec::BLOCK_CAP).await.unwrap();
            let t2 = Instant::now();
            let values = drivers::block_values(&payload, format, order).unwrap();
            let t3 = Instant::now();
            assert_eq!(values.len(), block as usize);
            let at = clock.now();
            let readings: Vec<NewReading<'_>> = values
                .iter()
                .map(|v| {
                    let m = v.measurement.unwrap();
                    NewReading {
                        run_id,
                        instrument_id,
                        quantity: "voltage",
                        value: m.value(),
                        status: m.status(),
                        unit: "V",
                        raw: &v.raw,
                        at,
                        boot_id: clock.boot_id(),
                    }
                })
                .collect();
            let t4 = Instant::now();
            // The chain hashes alone, as the store computes them (seq numbers are arbitrary here).
            let mut chain = [0u8; 32];
            for (i, r) in readings.iter().enumerate() {
                chain = ReadingRef {
                    seq: i as u64,
                    run_id,
                    instrument_id,
                    quantity: r.quantity,
                    value: r.value,
                    status: ReadingStatus::Valid,
                    unit: r.unit,
                    raw: r.raw,
                    utc_us: at.utc_us,
                    mono_ns: at.mono_ns,
                    boot_id: r.boot_id,
                }
                .chain_after(&chain);
            }
            std::hint::black_box(chain);
            let t5 = Instant::now();
            store.append_readings(&readings, &[]).unwrap();
            let t6 = Instant::now();
            let same: Vec<Row> = values
                .iter()
                .map(|v| Row {
                    value: v.measurement.and_then(|m| m.value()).unwrap_or(0.0),
                    raw: v.raw.clone(),
                })
                .collect();
            split.bare += bare.block(&same, at);
            // The same block through the profile executor, which the runner calls.
            let t7 = Instant::now();
            let outcome = exec::run(
                &profile,
                &mut session,
                "read_buffer",
                &BTreeMap::new(),
                &params,
            )
            .await
            .unwrap();
            split.exec_run += t7.elapsed();
            assert_eq!(outcome.values.len(), block as usize);
            split.setup += t1 - t;
            split.transfer += t2 - t1;
            split.decode += t3 - t2;
            split.rows += t4 - t3;
            split.hash += t5 - t4;
            split.store += t6 - t5;
        }
    });
    drop(store);
    drop(bare);
    remove_db(&dir.join("split.db"));
    remove_db(&dir.join("split-bare.db"));
    split
}

fn main() {
    if std::env::var_os("P2_CHILD").is_some() {
        child();
        return;
    }
    let total = env("P2_TOTAL", 1_000_000);
    let block = env("P2_BLOCK", 10_000);
    let rounds = env("P2_ROUNDS", 5);
    assert!(
        block > 0 && total.is_multiple_of(block),
        "P2_TOTAL must be a multiple of P2_BLOCK"
    );
    let blocks = total / block;
    let dir = tempfile::Builder::new()
        .prefix("p2-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();

    // The instruments: on a runtime thread of their own, one simulator each.
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let start_sim = || {
        sim_rt
            .block_on(TcpServer::start_spec(spec(), "127.0.0.1:0"))
            .unwrap()
    };
    let (sim_agent, sim_child, sim_split) = (start_sim(), start_sim(), start_sim());

    // Peak RSS of the agent alone, in a child process.
    let out = Command::new(std::env::current_exe().unwrap())
        .env("P2_CHILD", "1")
        .env("P2_PORT", sim_child.local_addr().port().to_string())
        .env("P2_TOTAL", total.to_string())
        .env("P2_BLOCK", block.to_string())
        .env("P2_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = line
        .lines()
        .find_map(|l| l.strip_prefix("P2CHILD "))
        .unwrap()
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let [child_rate, hwm_before, hwm, rss_after] = fields[..] else {
        panic!("child said {line}");
    };
    drop(sim_child);

    // The agent's runtime: one thread, as `tsagent measure` uses (see `cli::runtime`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = config(dir.path(), sim_agent.local_addr().port(), block, blocks);
    let mut supervisor = Supervisor::new(&config);
    let at = SystemClock::new().now();

    let (mut limit, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let bare_db = dir.path().join(format!("bare-{round}.db"));
        let agent_db = dir.path().join(format!("agent-{round}.db"));
        let check = round + 1 == rounds;
        let (b, a) = if round % 2 == 0 {
            let b = bare_pass(&bare_db, total, block, at);
            (
                b,
                agent_pass(&rt, &config, &mut supervisor, &agent_db, total, check),
            )
        } else {
            let a = agent_pass(&rt, &config, &mut supervisor, &agent_db, total, check);
            (bare_pass(&bare_db, total, block, at), a)
        };
        println!(
            "round {round:2}: bare batched insert {b:9.0} /s   agent {a:9.0} /s   agent/bare {:.3}",
            a / b
        );
        limit.push(b);
        ours.push(a);
        ratios.push(a / b);
    }

    let split_blocks = env("P2_SPLIT_BLOCKS", blocks.min(20));
    let split = diagnostic(
        &rt,
        sim_split.local_addr().port(),
        dir.path(),
        block,
        split_blocks,
    );

    let costs = sql_costs(dir.path(), block, split_blocks);

    let (b, a, r) = (median(limit), median(ours), median(ratios));
    let mb = |kb: f64| kb / 1024.0;
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!();
    println!(
        "P2: {rounds} rounds of {total} readings in {blocks} blocks of {block}, medians; disk: {}",
        dir.path().display()
    );
    println!(
        "  bare batched rusqlite insert (the limit)   {b:9.0} readings/s  ({:.2} µs each)",
        1e6 / b
    );
    println!(
        "  tsagent: 34470A blocks over TCP → store    {a:9.0} readings/s  ({:.2} µs each)   target ≥ 1000000: {}",
        1e6 / a,
        verdict(a >= 1e6)
    );
    println!(
        "  agent / limit (median of rounds)           {r:9.3}   target ≥ 0.7: {}",
        verdict(r >= 0.7)
    );
    println!(
        "  agent alone in a child process: {child_rate:.0} readings/s; VmHWM {:.1} MiB (before the pass {:.1} MiB, VmRSS after {:.1} MiB)   target ≤ 64 MB: {}",
        mb(hwm),
        mb(hwm_before),
        mb(rss_after),
        verdict(hwm <= 64.0 * 1024.0)
    );
    let n = f64::from(split_blocks) * f64::from(block);
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!();
    println!("  where the time goes ({split_blocks} blocks of {block}, µs per reading):");
    println!(
        "    set-up writes incl. INIT (not awaited)   {:6.3}",
        us(split.setup)
    );
    println!(
        "    INIT fill + FETC? block transfer         {:6.3}",
        us(split.transfer)
    );
    println!(
        "    decode to values (block_values)          {:6.3}",
        us(split.decode)
    );
    println!(
        "    build NewReading rows                    {:6.3}",
        us(split.rows)
    );
    println!(
        "    chain hashes alone (estimate)            {:6.3}",
        us(split.hash)
    );
    println!(
        "    Store::append_readings (hash + insert)   {:6.3}",
        us(split.store)
    );
    println!(
        "    bare insert of the same rows             {:6.3}",
        us(split.bare)
    );
    println!(
        "    exec::run(read_buffer) whole             {:6.3}",
        us(split.exec_run)
    );
    println!();
    println!("  SQLite alone, no agent code ({split_blocks} blocks of {block}, µs per row):");
    for (label, us) in costs {
        println!("    {label:<50} {us:6.3}");
    }
    drop(sim_agent);
    drop(sim_split);
}

/// The readings table's status check as the store declares it, and the same check written so
/// that SQLite does not build an ephemeral table for the `IN` list at every statement run.
const STATUS_IN: &str = "CHECK (status IN ('valid', 'overload', 'nan'))";
const STATUS_OR: &str = "CHECK (status = 'valid' OR status = 'overload' OR status = 'nan')";

/// How an SQL-cost variant inserts its rows.
#[derive(Clone, Copy, PartialEq)]
enum Insert {
    /// One statement run per row, every column bound (what `Store::append_readings` does).
    PerRow,
    /// `ROWS` rows per statement run, the columns a block shares bound once per statement.
    Shared,
}

/// Rows per statement of [`Insert::Shared`].
const ROWS: usize = 64;

/// The schema `Store::open` creates, as SQL, with the run and instrument rows readings refer to.
fn store_ddl(dir: &Path) -> String {
    let path = dir.join("ddl.db");
    let at = SystemClock::new().now();
    {
        let mut store = Store::open(&path).unwrap();
        store
            .begin_run(&RunStart {
                sequence: "ddl",
                sequence_sha256: [0; 32],
                trigger: Trigger::Manual,
                operator: None,
                official: false,
                at,
                owner: (1, BOOT_ID),
            })
            .unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    let ddl: Vec<String> = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY rowid",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    remove_db(&path);
    ddl.join(";\n")
}

/// Microseconds per row to insert `blocks` blocks of `block` rows, one transaction per block,
/// into a fresh database made by `ddl` (the store's tables get one run and one instrument row;
/// foreign keys on, as the store has them).
fn sql_cost(dir: &Path, ddl: &str, insert: Insert, block: u32, blocks: u32) -> f64 {
    let path = dir.join("sql-cost.db");
    let mut conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.execute_batch(ddl).unwrap();
    if ddl.contains("CREATE TABLE runs") {
        conn.execute_batch(
            "INSERT INTO runs (id, sequence, trigger, started_utc_us, status, pid, boot_id)
                VALUES (1, 'p2', 'manual', 0, 'running', 1, 'b');
             INSERT INTO instruments VALUES (1, 'dmm', 'tcp', 'a', 'b', 'c', 'd', 0);",
        )
        .unwrap();
    }
    let head =
        "INSERT INTO readings (seq, run_id, instrument_id, quantity, value, status, unit, raw,
                utc_us, mono_ns, boot_id, chain) VALUES ";
    // Shared: ?1–?7 are run, instrument, quantity, unit, utc, mono, boot; then 5 per row.
    let row_sql = |i: usize| match insert {
        Insert::PerRow => {
            let b = i * 12;
            let p: Vec<String> = (1..=12).map(|k| format!("?{}", b + k)).collect();
            format!("({})", p.join(", "))
        }
        Insert::Shared => {
            let b = 7 + i * 5;
            format!(
                "(?{}, ?1, ?2, ?3, ?{}, ?{}, ?4, ?{}, ?5, ?6, ?7, ?{})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            )
        }
    };
    let sql = |n: usize| {
        let rows: Vec<String> = (0..n).map(row_sql).collect();
        format!("{head}{}", rows.join(", "))
    };
    let per = if insert == Insert::PerRow { 1 } else { ROWS };
    let at = SystemClock::new().now();
    let (mut k, mut seq, mut spent) = (0, 0i64, Duration::ZERO);
    for _ in 0..blocks {
        let rows = rows(block, &mut k);
        let start = Instant::now();
        let tx = conn.transaction().unwrap();
        let mut full = tx.prepare_cached(&sql(per)).unwrap();
        for group in rows.chunks(per) {
            let mut tail;
            let stmt = if group.len() == per {
                &mut full
            } else {
                tail = tx.prepare_cached(&sql(group.len())).unwrap();
                &mut tail
            };
            if insert == Insert::Shared {
                stmt.raw_bind_parameter(1, 1i64).unwrap();
                stmt.raw_bind_parameter(2, 1i64).unwrap();
                stmt.raw_bind_parameter(3, "voltage").unwrap();
                stmt.raw_bind_parameter(4, "V").unwrap();
                stmt.raw_bind_parameter(5, at.utc_us).unwrap();
                stmt.raw_bind_parameter(6, at.mono_ns as i64).unwrap();
                stmt.raw_bind_parameter(7, BOOT_ID).unwrap();
            }
            let mut chain = [0u8; 32];
            for (i, row) in group.iter().enumerate() {
                seq += 1;
                chain[..8].copy_from_slice(&seq.to_be_bytes());
                if insert == Insert::Shared {
                    let b = 7 + i * 5;
                    stmt.raw_bind_parameter(b + 1, seq).unwrap();
                    stmt.raw_bind_parameter(b + 2, row.value).unwrap();
                    stmt.raw_bind_parameter(b + 3, "valid").unwrap();
                    stmt.raw_bind_parameter(b + 4, &row.raw).unwrap();
                    stmt.raw_bind_parameter(b + 5, &chain[..]).unwrap();
                } else {
                    stmt.execute(params![
                        seq,
                        1i64,
                        1i64,
                        "voltage",
                        row.value,
                        "valid",
                        "V",
                        row.raw,
                        at.utc_us,
                        at.mono_ns as i64,
                        BOOT_ID,
                        &chain[..]
                    ])
                    .unwrap();
                }
            }
            if insert == Insert::Shared {
                stmt.raw_execute().unwrap();
            }
        }
        drop(full);
        tx.commit().unwrap();
        spent += start.elapsed();
    }
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, seq);
    drop(conn);
    remove_db(&path);
    spent.as_secs_f64() * 1e6 / f64::from(block * blocks)
}

/// The SQLite part of the store's cost, by variant: the bare table, the store's schema as it is,
/// the status check written as ORs, and that with multi-row statements.
fn sql_costs(dir: &Path, block: u32, blocks: u32) -> Vec<(String, f64)> {
    let ddl = store_ddl(dir);
    let or = ddl.replace(STATUS_IN, STATUS_OR);
    let bare =
        "CREATE TABLE readings (seq INTEGER PRIMARY KEY, run_id INTEGER, instrument_id INTEGER,
                quantity TEXT, value REAL, status TEXT, unit TEXT, raw TEXT, utc_us INTEGER,
                mono_ns INTEGER, boot_id TEXT, chain BLOB)";
    let as_is = if ddl.contains(STATUS_IN) {
        "store schema as it is (status IN (…) check)"
    } else {
        "store schema as it is (no IN check found)"
    };
    let variants = [
        ("bare table, one row per statement", bare, Insert::PerRow),
        (as_is, &ddl, Insert::PerRow),
        ("store schema, status check as ORs", &or, Insert::PerRow),
        (
            "same, 64 rows/statement, block fields bound once",
            &or,
            Insert::Shared,
        ),
    ];
    variants
        .into_iter()
        .map(|(label, ddl, insert)| (label.to_owned(), sql_cost(dir, ddl, insert, block, blocks)))
        .collect()
}
