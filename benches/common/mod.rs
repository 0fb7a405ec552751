//! What the sealing and verifying benchmarks (P3, P4) share: a lab whose log holds readings stored
//! as the P2 bench stores them, and the measuring helpers P2 uses.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tsagent::clock::SystemClock;
use tsagent::config::Config;
use tsagent::sequence::{Quiet, Runner};
use tsagent::store::{Store, Trigger};
use tsagent::supervisor::Supervisor;
use tsagent_sim::{PersonalityId, SimParams, SimSpec, TcpServer};

/// Readings per REAL,64 block, as P2 takes them.
pub const BLOCK: u64 = 10_000;

/// An unsigned number from the environment, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/self/status` in kB (`VmHWM`, `VmRSS`).
pub fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The bench lab's config: the simulated 34470A at `port` read in `blocks` blocks, the key
/// `lab_ed25519` and the database `db` beside it.
pub fn config_text(port: u16, blocks: u64, db: &str) -> String {
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
db = "{db}"
bundles = "bundles"
[signing]
key = "lab_ed25519"
[[instrument]]
name = "dmm"
resource = "TCPIP::127.0.0.1::{port}::SOCKET"
driver = "keysight-34470a"
[[sequence]]
name = "bench"
[[sequence.step]]
read = {{ instrument = "dmm", op = "read_buffer", params = {{ count = "{BLOCK}" }}, count = {blocks}, quantity = "voltage", unit = "V" }}
"#
    )
}

/// Stores `total` readings into a new database at `db` as P2 does: one run of `read_buffer`
/// blocks from the simulated 34470A over TCP, on the single-threaded runtime `tsagent measure`
/// uses. The WAL is folded into the file, so a plain copy of `db` is the whole database.
pub fn make_db(dir: &Path, db: &Path, total: u64) {
    assert!(
        total.is_multiple_of(BLOCK),
        "a multiple of {BLOCK} readings"
    );
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
    let text = config_text(sim.local_addr().port(), total / BLOCK, "unused.db");
    let config = Config::parse(&text, "bench", dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut store = Store::open(db).unwrap();
    let mut supervisor = Supervisor::new(&config);
    let stop = tsagent::sequence::Stop::never();
    rt.block_on(async {
        let mut runner = Runner {
            config: &config,
            store: &mut store,
            clock: Arc::new(SystemClock::new()),
            supervisor: &mut supervisor,
        };
        let outcome = runner
            .run_named("bench", Trigger::Manual, None, &mut Quiet, &stop)
            .await
            .unwrap();
        assert_eq!(outcome.readings, total);
    });
    drop(store);
    drop(supervisor);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);
    drop(sim);
}

/// Replaces `to` (and its WAL) with a copy of `from`.
pub fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = to.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::copy(from, to).unwrap();
}

/// A folder for the bench's files: `KEEP_VAR=DIR` keeps them in DIR (and reuses them on the next
/// run), otherwise a temporary folder under the target directory.
pub fn work_dir(keep_var: &str, prefix: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os(keep_var) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            (None, dir)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .unwrap();
            let path = temp.path().to_owned();
            (Some(temp), path)
        }
    }
}

/// Runs the agent's command line in this process, as `tsagent ARGS…` would.
pub fn run_cli(args: &[&str]) {
    use clap::Parser;
    let cli =
        tsagent::cli::Cli::try_parse_from(std::iter::once("tsagent").chain(args.iter().copied()))
            .unwrap();
    tsagent::cli::run(cli).unwrap();
}

/// Sizes of the `.tar` files in `dir`, in name order.
pub fn tar_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar"))
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}
