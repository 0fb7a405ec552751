//! P4: verifying the bundles P3 seals (1,000,000 readings stored as P2 stores them, ten bundles of
//! 100 000 readings, ~23 MB each) with `tsagent bundle verify`, next to the stock pipeline the pilot
//! would use in the same run: `tar -xf`, `ssh-keygen -Y verify`, `sha256sum -c`. The agent also
//! checks the reading chain, the manifest and every row, which the stock pipeline does not. Plus
//! the agent's peak RSS verifying one of those bundles and one bundle ten times larger (all
//! 1,000,000 readings in one bundle, sealed by the bundle crate directly, ~230 MB).
//!
//! `cargo bench --bench p4_verify`. Environment: `P4_TOTAL` readings (default 1 000 000),
//! `P4_ROUNDS` (default 5), `P4_KEEP=DIR` to keep (and reuse) the bundles. Each round verifies
//! every bundle both ways, in alternating order, each way as one `sh` script running one
//! process per bundle and tool, so both pay for starting processes; figures are medians.
//!
//! Peak RSS is the agent's alone: a child process of this bench (`P4_CHILD=1`) runs
//! `tsagent bundle verify` through the library's `cli::run`, exactly as the binary does, and reports
//! its own `VmHWM` from `/proc/self/status`.
//!
//! Targets: agent time ≤ 1.0 × the stock pipeline; peak RSS ≤ 64 MB whatever the bundle's size.

// A panic in a benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use tsagent::store::{Scan, SealWindow, Store};
use tsagent_bundle::{ArtefactInfo, SealHeader, Sealer};

/// The child: `tsagent bundle verify P4_BUNDLE --allowed-signers P4_SIGNERS`, then its peak RSS.
fn child() {
    let bundle = std::env::var("P4_BUNDLE").unwrap();
    let signers = std::env::var("P4_SIGNERS").unwrap();
    let before = proc_status_kb("VmHWM");
    let start = Instant::now();
    run_cli(&["bundle", "verify", &bundle, "--allowed-signers", &signers]);
    println!(
        "P4CHILD {:.4} {before} {}",
        start.elapsed().as_secs_f64(),
        proc_status_kb("VmHWM")
    );
}

/// Peak RSS in kB of the agent verifying `bundle`, before and after, in a child process.
fn agent_rss(bundle: &Path, signers: &Path) -> (f64, f64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("P4_CHILD", "1")
        .env("P4_BUNDLE", bundle)
        .env("P4_SIGNERS", signers)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("P4CHILD "))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (f[0], f[1], f[2])
}

/// Seals all of `db`'s readings into one bundle with the bundle crate's streaming sealer (the
/// agent cuts bundles at 100 000 readings; this one is for the memory figure only).
fn seal_whole(db: &Path, key: &Path, dir: &Path) -> PathBuf {
    let store = Store::open_existing(db).unwrap();
    let key = tsagent_bundle::load_signing_key(key).unwrap();
    let scratch = |name: &str| {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(name))
            .unwrap()
    };
    let window = SealWindow {
        max_readings: usize::MAX,
        max_events: usize::MAX,
        include_running: true,
    };
    let scan = store
        .scan_for_seal(
            window,
            |start, instruments| {
                let header = SealHeader {
                    lab_id: "BENCH-LAB".into(),
                    lab_name: "bench".into(),
                    artefact: ArtefactInfo {
                        id: "BIG".into(),
                        kind: "zener".into(),
                        serial: "1".into(),
                        nominal: 10.0,
                        unit: "V".into(),
                    },
                    bundle_seq: start.bundle_seq,
                    prev_sums_sha256: start.prev_sums_sha256,
                    chain_prev: start.chain_prev,
                    sequences_sha256: [0; 32],
                    created_utc_us: 1_800_000_000_000_000,
                    agent_version: "bench".into(),
                    custody: Default::default(),
                    traceability: Vec::new(),
                    previous_receipt: None,
                };
                Ok::<_, tsagent::store::StoreError>(
                    Sealer::new(header, instruments, scratch("r.tmp"), scratch("e.tmp")).unwrap(),
                )
            },
            |s, row| {
                s.push_reading(&row.record, row.sequence, row.instrument, &row.chain)
                    .unwrap();
                Ok(())
            },
            |s, event| {
                s.push_event(event).unwrap();
                Ok(())
            },
        )
        .unwrap();
    let Scan::Bundle(sealer, _) = scan else {
        panic!("nothing to seal");
    };
    let (parts, readings, events) = sealer.finish(&key).unwrap();
    let path = dir.join(&parts.file_name);
    let mut file = BufWriter::new(File::create(&path).unwrap());
    let (mut r, mut e) = (readings, events);
    use std::io::{Seek, SeekFrom};
    r.seek(SeekFrom::Start(0)).unwrap();
    e.seek(SeekFrom::Start(0)).unwrap();
    parts.write_archive(&mut file, &mut r, &mut e).unwrap();
    drop(file);
    let _ = std::fs::remove_file(dir.join("r.tmp"));
    let _ = std::fs::remove_file(dir.join("e.tmp"));
    path
}

fn run_script(script: &str) -> f64 {
    let start = Instant::now();
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    if std::env::var_os("P4_CHILD").is_some() {
        child();
        return;
    }
    let total = env("P4_TOTAL", 1_000_000);
    let rounds = env("P4_ROUNDS", 5);
    let (_temp, dir) = work_dir("P4_KEEP", "p4-");
    let dir = dir.as_path();
    let lab = dir.join("lab");
    let bundles = lab.join("bundles");
    let signers = lab.join("allowed_signers");
    let big_dir = dir.join("big");
    if !signers.exists() {
        std::fs::create_dir_all(&lab).unwrap();
        let key = lab.join("lab_ed25519");
        let public = tsagent_bundle::generate_key(&key, "BENCH-LAB").unwrap();
        let db = lab.join("lab.db");
        let t = Instant::now();
        make_db(dir, &db, total);
        // The whole log in one bundle, from a copy of the database before the agent seals it.
        std::fs::create_dir_all(&big_dir).unwrap();
        let unsealed = big_dir.join("unsealed.db");
        copy_db(&db, &unsealed);
        seal_whole(&unsealed, &key, &big_dir);
        std::fs::remove_file(&unsealed).unwrap();
        std::fs::write(lab.join("lab.toml"), config_text(1, 1, "lab.db")).unwrap();
        run_cli(&[
            "bundle",
            "seal",
            "--config",
            lab.join("lab.toml").to_str().unwrap(),
        ]);
        let line = tsagent_bundle::allowed_signers_line("BENCH-LAB", &public).unwrap();
        std::fs::write(&signers, format!("{line}\n")).unwrap();
        println!(
            "stored {total} readings as P2 does and sealed them in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let files = tar_files(&bundles);
    let big = tar_files(&big_dir).pop().unwrap();
    println!(
        "{} bundles of {:.1}–{:.1} MB; one bundle of all {total} readings, {:.0} MB",
        files.len(),
        files.iter().map(|f| f.1).min().unwrap() as f64 / 1e6,
        files.iter().map(|f| f.1).max().unwrap() as f64 / 1e6,
        big.1 as f64 / 1e6
    );

    let agent_bin = env!("CARGO_BIN_EXE_tsagent");
    let mut agent_script = String::from("set -e\n");
    let mut stock_script = String::from("set -e\n");
    let extract = dir.join("extract");
    for (path, _) in &files {
        let name = path.file_stem().unwrap().to_string_lossy();
        agent_script.push_str(&format!(
            "'{agent_bin}' bundle verify '{}' --allowed-signers '{}' > /dev/null\n",
            path.display(),
            signers.display()
        ));
        stock_script.push_str(&format!(
            "cd '{x}' && tar -xf '{b}' && cd {name} && ssh-keygen -Y verify -f '{s}' -I BENCH-LAB -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS > /dev/null 2>&1 && sha256sum -c --quiet SHA256SUMS\n",
            x = extract.display(),
            b = path.display(),
            s = signers.display()
        ));
    }
    let (mut agent, mut stock, mut ratios) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let _ = std::fs::remove_dir_all(&extract);
        std::fs::create_dir_all(&extract).unwrap();
        let (a, s) = if round % 2 == 0 {
            let a = run_script(&agent_script);
            (a, run_script(&stock_script))
        } else {
            let s = run_script(&stock_script);
            (run_script(&agent_script), s)
        };
        println!(
            "round {round}: tsagent bundle verify ×{} {a:.3} s   tar -xf + ssh-keygen -Y verify + sha256sum -c {s:.3} s   agent/stock {:.3}",
            files.len(),
            a / s
        );
        agent.push(a);
        stock.push(s);
        ratios.push(a / s);
    }
    let _ = std::fs::remove_dir_all(&extract);

    let (t_one, before, one) = agent_rss(&files[0].0, &signers);
    let (t_big, _, big_hwm) = agent_rss(&big.0, &signers);
    let mib = |kb: f64| kb / 1024.0;
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    let (a, s, r) = (median(agent), median(stock), median(ratios));
    println!();
    println!(
        "P4: {rounds} rounds verifying {} bundles ({total} readings), medians; disk: {}",
        files.len(),
        dir.display()
    );
    println!("  stock: tar -xf, ssh-keygen -Y verify, sha256sum -c    {s:.3} s");
    println!("  tsagent bundle verify (chain, rows, manifest too)      {a:.3} s");
    println!(
        "  agent / stock (median of rounds)   {r:.3}   target ≤ 1.0: {}",
        verdict(r <= 1.0)
    );
    println!(
        "  agent peak RSS: {:.1} MiB on a {:.0} MB bundle ({t_one:.3} s), {:.1} MiB on a {:.0} MB bundle ({t_big:.3} s); {:.1} MiB before the work   target ≤ 64 MB: {}",
        mib(one),
        files[0].1 as f64 / 1e6,
        mib(big_hwm),
        big.1 as f64 / 1e6,
        mib(before),
        verdict(one.max(big_hwm) <= 64.0 * 1024.0)
    );
}
