//! P3: sealing 1,000,000 readings (stored as the P2 bench stores them: REAL,64 blocks from the
//! simulated Keysight 34470A through the sequence runner) into signed bundles, next to the stock
//! pipeline doing the same job in the same run: `sqlite3 -csv` export of the same columns,
//! `sha256sum`, `ssh-keygen -Y sign`, `tar -cf`, one bundle per 100 000 readings as the agent cuts
//! them, so both make bundles of the same sizes. Plus the agent's peak RSS at two sizes of backlog.
//!
//! `cargo bench --bench p3_seal`. Environment: `P3_TOTAL` readings (default 1 000 000),
//! `P3_SMALL` readings of the second, smaller backlog used for the RSS comparison (default
//! 250 000), `P3_ROUNDS` (default 3), `P3_KEEP=DIR` to keep (and reuse) the databases. Each round
//! seals a fresh copy of the database both ways, in alternating order; figures are medians.
//!
//! The agent pass is `tsagent bundle seal --config …` run in a child process of this bench
//! (`P3_CHILD=1`, through the library's `cli::run`, exactly as the binary runs it), which
//! reports its own `VmHWM` from `/proc/self/status`, so the RSS is the agent's alone; its time is
//! the child's, from spawn to exit. The stock pipeline is one `sh` script; its time includes
//! starting its processes. Neither caches anything between rounds but the OS's page cache, which
//! both share.
//!
//! Targets: agent time ≤ 1.0 × the stock pipeline; agent peak RSS ≤ 64 MB and flat in the
//! number of readings.

// A panic in a benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::*;

/// Readings per bundle, as the store cuts a backlog (`store::MAX_BUNDLE_READINGS`).
const PER_BUNDLE: u64 = tsagent::store::MAX_BUNDLE_READINGS as u64;

/// The child: `tsagent bundle seal --config P3_CONFIG`, then its peak RSS.
fn child() {
    let config = std::env::var("P3_CONFIG").unwrap();
    let before = proc_status_kb("VmHWM");
    let start = Instant::now();
    run_cli(&["bundle", "seal", "--config", &config]);
    println!(
        "P3CHILD {:.4} {before} {}",
        start.elapsed().as_secs_f64(),
        proc_status_kb("VmHWM")
    );
}

/// What one agent pass reported.
struct AgentPass {
    /// Seconds, the child's start and exit included.
    wall: f64,
    /// Seconds inside the command.
    inside: f64,
    hwm_before_kb: f64,
    hwm_kb: f64,
}

/// Seals the database named by the config at `config` (its `bundles` folder emptied first).
fn agent_pass(config: &Path) -> AgentPass {
    let _ = std::fs::remove_dir_all(config.with_file_name("bundles"));
    let start = Instant::now();
    let child = Command::new(std::env::current_exe().unwrap())
        .env("P3_CHILD", "1")
        .env("P3_CONFIG", config)
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
        hwm_before_kb: f[1],
        hwm_kb: f[2],
    }
}

/// The stock pipeline as one shell script: per bundle of 100 000 readings, the same columns
/// exported with `sqlite3 -csv` (times formatted by SQLite, chain values as lower-case hex), the
/// events as JSON lines, a manifest, `sha256sum`, `ssh-keygen -Y sign`, `tar -cf`.
fn stock_script(db: &Path, key: &Path, out: &Path, total: u64, lean: bool) -> String {
    let mut s = format!(
        "set -e\nrm -rf '{o}'\nmkdir -p '{o}'\ncd '{o}'\n",
        o = out.display()
    );
    let bundles = total.div_ceil(PER_BUNDLE);
    for b in 0..bundles {
        let first = b * PER_BUNDLE + 1;
        let last = ((b + 1) * PER_BUNDLE).min(total);
        let name = format!("BENCH-LAB-Z10-{:06}", b + 1);
        let columns = if lean {
            // The table as stored: no names joined in, no time text (smaller bundles).
            "seq, run_id, instrument_id, quantity, value, status, unit, raw, utc_us, mono_ns, boot_id, lower(hex(chain)) AS chain FROM readings r"
        } else {
            "r.seq, r.run_id, u.sequence, r.instrument_id, i.name AS instrument, r.quantity, r.value, r.status, r.unit, r.raw, strftime('%Y-%m-%dT%H:%M:%S', r.utc_us / 1000000, 'unixepoch') || printf('.%06dZ', r.utc_us % 1000000) AS utc, r.utc_us, r.mono_ns, r.boot_id, lower(hex(r.chain)) AS chain FROM readings r JOIN runs u ON u.id = r.run_id JOIN instruments i ON i.id = r.instrument_id"
        };
        s.push_str(&format!(
            r#"mkdir {name}
sqlite3 -csv -header '{db}' "SELECT {columns} WHERE r.seq BETWEEN {first} AND {last} ORDER BY r.seq" > {name}/readings.csv
sqlite3 '{db}' "SELECT json_object('id', e.id, 'utc_us', e.utc_us, 'run_id', e.run_id, 'kind', e.kind, 'detail', json(e.detail)) FROM events e WHERE e.id BETWEEN {first_e} AND {last_e} ORDER BY e.id" > {name}/events.jsonl
printf '{{"format":"tsagent-bundle-v1","bundle_seq":{seq},"first_seq":{first},"last_seq":{last}}}\n' > {name}/manifest.json
(cd {name} && sha256sum events.jsonl manifest.json readings.csv > SHA256SUMS && ssh-keygen -q -Y sign -f '{key}' -n tsagent-bundle-v1 SHA256SUMS)
tar -cf {name}.tar {name}
"#,
            db = db.display(),
            key = key.display(),
            seq = b + 1,
            // The run's events are few (its set-up exchanges); the first bundle carries them all,
            // as the agent's does.
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

fn sizes_mb(dir: &Path) -> Vec<String> {
    tar_files(dir)
        .iter()
        .map(|(_, s)| format!("{:.1}", *s as f64 / 1e6))
        .collect()
}

/// A lab folder holding a fresh copy of `master` as its database, with the key beside it.
fn lab(dir: &Path, name: &str, master: &Path, key: &Path) -> std::path::PathBuf {
    let lab = dir.join(name);
    std::fs::create_dir_all(&lab).unwrap();
    copy_db(master, &lab.join("lab.db"));
    for suffix in ["", ".pub"] {
        let mut from = key.as_os_str().to_owned();
        from.push(suffix);
        let mut to = lab.join("lab_ed25519").into_os_string();
        to.push(suffix);
        std::fs::copy(&from, &to).unwrap();
    }
    let config = lab.join("lab.toml");
    std::fs::write(&config, config_text(1, 1, "lab.db")).unwrap();
    config
}

fn main() {
    if std::env::var_os("P3_CHILD").is_some() {
        child();
        return;
    }
    let total = env("P3_TOTAL", 1_000_000);
    let small = env("P3_SMALL", 250_000);
    let rounds = env("P3_ROUNDS", 3);
    let (_temp, dir) = work_dir("P3_KEEP", "p3-");
    let dir = dir.as_path();
    let key = dir.join("lab_ed25519");
    if !key.exists() {
        tsagent_bundle::generate_key(&key, "BENCH-LAB").unwrap();
    }
    let master = dir.join(format!("master-{total}.db"));
    let master_small = dir.join(format!("master-{small}.db"));
    for (path, n) in [(&master, total), (&master_small, small)] {
        if !path.exists() {
            let t = Instant::now();
            make_db(dir, path, n);
            println!(
                "stored {n} readings as P2 does in {:.1} s; database {:.0} MB",
                t.elapsed().as_secs_f64(),
                std::fs::metadata(path).unwrap().len() as f64 / 1e6
            );
        }
    }

    let stock_db = dir.join("stock.db");
    let stock_out = dir.join("stock");
    let script = stock_script(&stock_db, &key, &stock_out, total, false);
    let lean_out = dir.join("stock-lean");
    let lean_script = stock_script(&stock_db, &key, &lean_out, total, true);
    let (mut agent, mut inside, mut stock, mut ratios, mut hwm) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut lean = Vec::new();
    for round in 0..rounds {
        let config = lab(dir, "lab", &master, &key);
        copy_db(&master, &stock_db);
        let (a, s) = if round % 2 == 0 {
            let a = agent_pass(&config);
            (a, stock_pass(&script))
        } else {
            let s = stock_pass(&script);
            (agent_pass(&config), s)
        };
        // Diagnostic: the same pipeline exporting the table as stored (smaller bundles).
        let l = stock_pass(&lean_script);
        lean.push(l);
        let bundles = tar_files(&config.with_file_name("bundles")).len() as u64;
        assert_eq!(bundles, total.div_ceil(PER_BUNDLE));
        println!(
            "round {round}: agent {:.3} s (the command {:.3} s, {bundles} bundles, VmHWM {:.1} MiB)   stock {s:.3} s   agent/stock {:.3}   (lean stock {l:.3} s)",
            a.wall,
            a.inside,
            a.hwm_kb / 1024.0,
            a.wall / s
        );
        if round == 0 {
            println!(
                "  bundle sizes, MB: agent {:?}   stock {:?}   lean stock {:?}",
                sizes_mb(&config.with_file_name("bundles")),
                sizes_mb(&stock_out),
                sizes_mb(&lean_out)
            );
        }
        agent.push(a.wall);
        inside.push(a.inside);
        stock.push(s);
        ratios.push(a.wall / s);
        hwm.push((a.hwm_before_kb, a.hwm_kb));
    }
    let small_config = lab(dir, "lab-small", &master_small, &key);
    let small_pass = agent_pass(&small_config);

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
        "  the same, exporting the table as stored (diagnostic)                 {:.3} s   agent / that {:.3}",
        median(lean.clone()),
        a / median(lean)
    );
    println!(
        "  tsagent bundle seal (child process, spawn to exit)                   {a:.3} s   (the command itself {i:.3} s)"
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
        verdict(peak <= 64.0 * 1024.0 && (peak - small_pass.hwm_kb).abs() < 8.0 * 1024.0)
    );
}
