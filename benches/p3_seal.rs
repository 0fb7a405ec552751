//! P3: sealing 1,000,000 readings (stored as the P2 bench stores them: REAL,64 blocks from the
//! simulated Keysight 34470A through the sequence runner) into signed bundles, next to the stock
//! pipeline doing the same job in the same run: `sqlite3 -csv` export of the same columns,
//! `sha256sum`, `ssh-keygen -Y sign`, `tar -cf`, one bundle per 100 000 readings as the agent cuts
//! them, so both make bundles of the same sizes. Plus the agent's peak RSS at two sizes of backlog.
//!
//! `cargo bench --bench p3_seal`. Environment: `P3_TOTAL` readings (default 1 000 000),
//! `P3_SMALL` readings of the second, smaller backlog used for the RSS comparison (default
//! 250 000), `P3_ROUNDS` (default 3). Each round seals a fresh copy of the database both ways, in
//! alternating order; figures are medians over rounds.
//!
//! The agent pass runs in a child process of this bench (`P3_CHILD=1`): `sealing::seal_pending`,
//! what `tsagent bundle seal` calls, on its copy of the database, and it reports its own `VmHWM`
//! from `/proc/self/status`, so the RSS is the agent's alone. The stock pipeline is one `sh`
//! script; its time includes starting its processes, as the agent's includes starting the child.
//!
//! Targets: agent time ≤ 1.0 × the stock pipeline; agent peak RSS ≤ 64 MB and flat in the
//! number of readings.

// A panic in a benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use tsagent::clock::SystemClock;
use tsagent::config::Config;
use tsagent::sealing;
use tsagent::sequence::{Quiet, Runner};
use tsagent::store::{Store, Trigger};
use tsagent::supervisor::Supervisor;
use tsagent_sim::{PersonalityId, SimParams, SimSpec, TcpServer};

const PROFILE: &str = "keysight-34470a";
const BLOCK: u32 = 10_000;
/// Readings per bundle, as the store cuts a backlog (`store::MAX_BUNDLE_READINGS`).
const PER_BUNDLE: u64 = tsagent::store::MAX_BUNDLE_READINGS as u64;

fn env(name: &str, default: u64) -> u64 {
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

fn config_text(port: u16, blocks: u64) -> String {
    format!(
        r#"
[lab]
id = "BENCH-LAB"
name = "bench"
[artefact]
id = "Z10"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[storage]
db = "agent.db"
bundles = "bundles"
[signing]
key = "lab_ed25519"
[[instrument]]
name = "dmm"
resource = "TCPIP::127.0.0.1::{port}::SOCKET"
driver = "{PROFILE}"
[[sequence]]
name = "p3"
[[sequence.step]]
read = {{ instrument = "dmm", op = "read_buffer", params = {{ count = "{BLOCK}" }}, count = {blocks}, quantity = "voltage", unit = "V" }}
"#
    )
}

/// Stores `total` readings as P2 does: one run of `read_buffer` blocks from the simulated 34470A
/// over TCP, on the single-threaded runtime `tsagent measure` uses. The WAL is checkpointed into
/// the file so that a plain copy of `db` is the whole database.
fn make_db(dir: &Path, db: &Path, total: u64) {
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let spec = SimSpec::instrument(
        PersonalityId::Keysight34470a,
        SimParams {
            realistic_timing: false,
            ..SimParams::default()
        },
    );
    let sim = sim_rt
        .block_on(TcpServer::start_spec(spec, "127.0.0.1:0"))
        .unwrap();
    let config = Config::parse(
        &config_text(sim.local_addr().port(), total / u64::from(BLOCK)),
        "p3",
        dir,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut store = Store::open(db).unwrap();
    let mut supervisor = Supervisor::new(&config);
    let (_tx, stop) = tokio::sync::watch::channel(false);
    rt.block_on(async {
        let mut runner = Runner {
            config: &config,
            store: &mut store,
            clock: Arc::new(SystemClock::new()),
            supervisor: &mut supervisor,
        };
        let outcome = runner
            .run_named("p3", Trigger::Manual, None, &mut Quiet, &stop)
            .await
            .unwrap();
        assert_eq!(outcome.readings, total);
    });
    drop(store);
    drop(supervisor);
    // Fold the WAL into the file: the copies each round takes are then the file alone.
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);
    drop(sim);
}

/// A fresh copy of the sealed-nothing database at `to` (WAL mode is set again by the store).
fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = to.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::copy(from, to).unwrap();
}

/// The child: seal everything in `P3_DB` into `P3_OUT`, then report time and peak RSS.
fn child() {
    let dir = PathBuf::from(std::env::var("P3_DIR").unwrap());
    let db = PathBuf::from(std::env::var("P3_DB").unwrap());
    let out = PathBuf::from(std::env::var("P3_OUT").unwrap());
    let config = Config::parse(&config_text(1, 1), "p3", &dir).unwrap();
    let before = proc_status_kb("VmHWM");
    let start = Instant::now();
    let mut store = Store::open_existing(&db).unwrap();
    let report = sealing::seal_pending(&config, &mut store, &out, &SystemClock::new()).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let readings: u64 = report
        .sealed
        .iter()
        .map(|s| s.readings.1 - s.readings.0 + 1)
        .sum();
    println!(
        "P3CHILD {elapsed:.4} {} {readings} {before} {}",
        report.sealed.len(),
        proc_status_kb("VmHWM")
    );
}

/// What one agent pass reported.
struct AgentPass {
    /// Seconds, the child's start and exit included.
    wall: f64,
    /// Seconds inside `seal_pending`.
    inside: f64,
    bundles: u64,
    hwm_before_kb: f64,
    hwm_kb: f64,
}

fn agent_pass(dir: &Path, db: &Path, out: &Path) -> AgentPass {
    let _ = std::fs::remove_dir_all(out);
    let start = Instant::now();
    let child = Command::new(std::env::current_exe().unwrap())
        .env("P3_CHILD", "1")
        .env("P3_DIR", dir)
        .env("P3_DB", db)
        .env("P3_OUT", out)
        .output()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert!(
        child.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    let text = String::from_utf8_lossy(&child.stdout);
    let f: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("P3CHILD "))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    AgentPass {
        wall,
        inside: f[0],
        bundles: f[1] as u64,
        hwm_before_kb: f[3],
        hwm_kb: f[4],
    }
}

/// The stock pipeline as one shell script: per bundle of 100 000 readings, the same columns
/// exported with `sqlite3 -csv` (times formatted by SQLite, chain values as lower-case hex), the
/// events as JSON lines, a manifest, `sha256sum`, `ssh-keygen -Y sign`, `tar -cf`.
fn stock_script(db: &Path, key: &Path, out: &Path, total: u64) -> String {
    let mut s = format!(
        "set -e\nrm -rf '{o}'\nmkdir -p '{o}'\ncd '{o}'\n",
        o = out.display()
    );
    let bundles = total.div_ceil(PER_BUNDLE);
    for b in 0..bundles {
        let first = b * PER_BUNDLE + 1;
        let last = ((b + 1) * PER_BUNDLE).min(total);
        let name = format!("BENCH-LAB-Z10-{:06}", b + 1);
        s.push_str(&format!(
            r#"mkdir {name}
sqlite3 -csv -header '{db}' "SELECT r.seq, r.run_id, u.sequence, r.instrument_id, i.name AS instrument, r.quantity, r.value, r.status, r.unit, r.raw, strftime('%Y-%m-%dT%H:%M:%S', r.utc_us / 1000000, 'unixepoch') || printf('.%06dZ', r.utc_us % 1000000) AS utc, r.utc_us, r.mono_ns, r.boot_id, lower(hex(r.chain)) AS chain FROM readings r JOIN runs u ON u.id = r.run_id JOIN instruments i ON i.id = r.instrument_id WHERE r.seq BETWEEN {first} AND {last} ORDER BY r.seq" > {name}/readings.csv
sqlite3 '{db}' "SELECT json_object('id', e.id, 'utc_us', e.utc_us, 'run_id', e.run_id, 'kind', e.kind, 'detail', json(e.detail)) FROM events e WHERE e.id BETWEEN {first_e} AND {last_e} ORDER BY e.id" > {name}/events.jsonl
printf '{{"format":"tsagent-bundle-v1","bundle_seq":{seq},"first_seq":{first},"last_seq":{last}}}\n' > {name}/manifest.json
(cd {name} && sha256sum events.jsonl manifest.json readings.csv > SHA256SUMS && ssh-keygen -q -Y sign -f '{key}' -n tsagent-bundle-v1 SHA256SUMS)
tar -cf {name}.tar {name}
"#,
            db = db.display(),
            key = key.display(),
            seq = b + 1,
            // The run's events are few (set-up exchanges); the first bundle carries them all, as
            // the agent's does.
            first_e = if b == 0 { 0 } else { i64::MAX },
            last_e = if b == 0 { i64::MAX } else { 0 },
        ));
    }
    s
}

fn stock_pass(script: &str) -> f64 {
    let start = Instant::now();
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "stock pipeline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Sizes of the `.tar` files in `dir`, in name order.
fn tar_sizes(dir: &Path) -> Vec<u64> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, s)| s).collect()
}

fn main() {
    if std::env::var_os("P3_CHILD").is_some() {
        child();
        return;
    }
    let total = env("P3_TOTAL", 1_000_000);
    let small = env("P3_SMALL", 250_000);
    let rounds = env("P3_ROUNDS", 3);
    assert!(
        total.is_multiple_of(u64::from(BLOCK)) && small.is_multiple_of(u64::from(BLOCK)),
        "P3_TOTAL and P3_SMALL must be multiples of {BLOCK}"
    );
    // `P3_KEEP=DIR` keeps the databases and key in DIR and reuses them on the next run.
    let temp = tempfile::Builder::new()
        .prefix("p3-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let kept = std::env::var_os("P3_KEEP").map(PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("lab_ed25519");
    if !key.exists() {
        tsagent_bundle::generate_key(&key, "BENCH-LAB").unwrap();
    }
    let master = dir.join(format!("master-{total}.db"));
    let master_small = dir.join(format!("master-{small}.db"));
    let t = Instant::now();
    for (path, n) in [(&master, total), (&master_small, small)] {
        if !path.exists() {
            make_db(dir, path, n);
        }
    }
    println!(
        "stored {total} and {small} readings as P2 does in {:.1} s; database {:.0} MB",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&master).unwrap().len() as f64 / 1e6
    );

    let db = dir.join("agent.db");
    let stock_db = dir.join("stock.db");
    let out = dir.join("bundles");
    let stock_out = dir.join("stock");
    let script = stock_script(&stock_db, &key, &stock_out, total);
    let (mut agent, mut inside, mut stock, mut ratios) = (vec![], vec![], vec![], vec![]);
    let mut hwm = Vec::new();
    for round in 0..rounds {
        copy_db(&master, &db);
        copy_db(&master, &stock_db);
        let run_agent = || agent_pass(dir, &db, &out);
        let (a, s) = if round % 2 == 0 {
            let a = run_agent();
            (a, stock_pass(&script))
        } else {
            let s = stock_pass(&script);
            (run_agent(), s)
        };
        assert_eq!(a.bundles, total.div_ceil(PER_BUNDLE));
        println!(
            "round {round}: agent {:.3} s (seal_pending {:.3} s, {} bundles, VmHWM {:.1} MiB)   stock {s:.3} s   agent/stock {:.3}",
            a.wall,
            a.inside,
            a.bundles,
            a.hwm_kb / 1024.0,
            a.wall / s
        );
        if round == 0 {
            let (ours, theirs) = (tar_sizes(&out), tar_sizes(&stock_out));
            println!(
                "  bundle sizes, MB: agent {:?}   stock {:?}",
                ours.iter()
                    .map(|s| format!("{:.1}", *s as f64 / 1e6))
                    .collect::<Vec<_>>(),
                theirs
                    .iter()
                    .map(|s| format!("{:.1}", *s as f64 / 1e6))
                    .collect::<Vec<_>>()
            );
        }
        agent.push(a.wall);
        inside.push(a.inside);
        stock.push(s);
        ratios.push(a.wall / s);
        hwm.push((a.hwm_before_kb, a.hwm_kb));
    }
    copy_db(&master_small, &db);
    let small_pass = agent_pass(dir, &db, &out);

    let mib = |kb: f64| kb / 1024.0;
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    let (a, i, s, r) = (median(agent), median(inside), median(stock), median(ratios));
    let peak = hwm.iter().map(|h| h.1).fold(0.0, f64::max);
    println!();
    println!(
        "P3: {rounds} rounds sealing {total} readings, medians; disk: {}",
        dir.display()
    );
    println!("  stock pipeline (sqlite3 -csv, sha256sum, ssh-keygen -Y sign, tar)   {s:.3} s");
    println!(
        "  tsagent bundle seal's work (child process, start to exit)            {a:.3} s   (inside seal_pending {i:.3} s)"
    );
    println!(
        "  agent / stock (median of rounds)   {r:.3}   target ≤ 1.0: {}",
        verdict(r <= 1.0)
    );
    println!(
        "  agent peak RSS: {:.1} MiB sealing {total} readings, {:.1} MiB sealing {small} (before the work {:.1} MiB)   target ≤ 64 MB and flat: {}",
        mib(peak),
        mib(small_pass.hwm_kb),
        mib(hwm[0].0),
        verdict(peak <= 64.0 * 1024.0)
    );
}
