//! The scale-out mode through the real binary: two `tsagent coordinator serve` processes on one
//! PostgreSQL database and one S3 bucket (real servers the tests start, never mocks: `servers`)
//! take the load test together (20 labs × 50 bundles, the size of `coordinator.rs`'s on one
//! process). Each lab sends a heartbeat, then each of its bundles to both
//! coordinators at once: every bundle is accepted exactly once (one 201, and a 200 with the same
//! receipt from the other process), the log's entries are 0..n with no hole and no repeat, every
//! receipt verifies, every checkpoint either process signed is consistent with the last, and
//! `coordinator check` finds the index, the bucket and the log in agreement. The chain rules hold
//! across processes because the database decides them, not a lock in one process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tsagent_bundle::receipt::{self, LogEntry, SignedReceipt};

use crate::common::pilot::*;
use crate::common::*;

#[path = "../../crates/coordinator/tests/servers/mod.rs"]
mod servers;

const LABS: usize = 20;
const BUNDLES: usize = 50;

/// The coordinators' config: PostgreSQL and a place of the test's own in the bucket.
fn config(pilot: &Pilot) -> PathBuf {
    let url = servers::postgres().database();
    let place = servers::s3().place();
    let path = pilot.path().join("scaleout.toml");
    std::fs::write(
        &path,
        format!(
            "[coordinator]\nid = \"{PILOT_ID}\"\nlisten = \"127.0.0.1:0\"\nkey = \"coordinator_key\"\nlabs = \"labs\"\n\n\
             [storage]\nkind = \"postgres\"\nurl = \"{url}\"\nspool = \"spool\"\n\n\
             [storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"{}\"\n",
            place.endpoint, place.bucket, place.prefix
        ),
    )
    .unwrap();
    path
}

/// `tsagent` with the bucket's keys in its environment, as a deployment gives them.
fn with_keys(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", servers::S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", servers::S3_SECRET)
        .env_remove("AWS_SESSION_TOKEN")
}

fn serve(config: &Path) -> Server {
    let proc = Proc::spawn(with_keys(
        Command::new(bin())
            .args(["coordinator", "serve", "--log", "warn", "--config"])
            .arg(config),
    ));
    let first = proc.line();
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    Server { proc, addr }
}

fn coordinator(what: &str, config: &Path) -> String {
    let out = with_keys(Command::new(bin()).args(["coordinator", what, "--config"]))
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "coordinator {what} failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// What both coordinators answered to one request: (status, body) from each.
type Both = [(u16, Vec<u8>); 2];

/// A lab: its heartbeat to one coordinator, then each bundle to both at once, in order.
async fn lab_sends(
    from: u8,
    heartbeat: Vec<u8>,
    bundles: Vec<tsagent_bundle::SealedBundle>,
    to: [SocketAddr; 2],
) -> (Vec<u8>, Vec<Both>) {
    let beat = request(
        loopback(from),
        to[usize::from(from) % 2],
        "POST",
        "/v1/heartbeats",
        &[("content-type", "application/json".into())],
        &heartbeat,
    )
    .await
    .unwrap();
    assert_eq!(beat.status, 201, "heartbeat: {}", beat.text());
    let mut got = Vec::new();
    for b in bundles {
        let (x, y) = tokio::join!(
            put_bundle(loopback(from), to[0], &b.file_name, &b.tar),
            put_bundle(loopback(from), to[1], &b.file_name, &b.tar),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        got.push([(x.status, x.body), (y.status, y.body)]);
    }
    (beat.body, got)
}

#[test]
fn two_coordinators_on_one_database_and_bucket_accept_each_bundle_once_and_keep_one_log() {
    let work = tempfile::tempdir().unwrap();
    let mut labs: Vec<SealLab> = (0..LABS)
        .map(|i| SealLab::new(work.path(), &format!("LAB{i}"), "Z1"))
        .collect();
    let pilot = Pilot::new(&labs.iter().map(SealLab::signers_line).collect::<Vec<_>>());
    let sent: Vec<Vec<_>> = labs
        .iter_mut()
        .map(|l| (0..BUNDLES).map(|_| l.next(2)).collect())
        .collect();
    // Each heartbeat names the chain after the lab's last reading: the last bundle must agree,
    // whichever process the heartbeat and that bundle reach.
    let beats: Vec<Vec<u8>> = labs.iter().map(SealLab::heartbeat).collect();

    let config = config(&pilot);
    let (a, b) = (serve(&config), serve(&config));
    let to = [a.addr, b.addr];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let got: Vec<(Vec<u8>, Vec<Both>)> = rt.block_on(async {
        let tasks: Vec<_> = sent
            .iter()
            .zip(&beats)
            .enumerate()
            .map(|(i, (bundles, beat))| {
                tokio::spawn(lab_sends(
                    10 + u8::try_from(i).unwrap(),
                    beat.clone(),
                    bundles.clone(),
                    to,
                ))
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got
    });
    let sending = start.elapsed();

    // Each bundle: one process accepted it (201), the other gave that same receipt (200).
    let key = tsagent_bundle::load_signing_key(&pilot.path().join("coordinator_key")).unwrap();
    let public = key.public_key();
    let mut leaves = BTreeMap::new();
    let mut roots = BTreeMap::new();
    let mut accepted_by = [0usize; 2];
    let mut check = |body: &[u8], expected: Option<(&str, String)>| {
        let signed: SignedReceipt = serde_json::from_slice(body).unwrap();
        let v = receipt::verify_receipt(public, &signed, None).unwrap();
        if let Some((name, sha)) = expected {
            match &v.receipt.entry {
                LogEntry::Bundle { bundle, sha256, .. } => {
                    assert_eq!((bundle.as_str(), sha256.to_string()), (name, sha));
                }
                other => panic!("{name} got a receipt for {other:?}"),
            }
        }
        // And by the independent checker, from the signed bytes alone.
        let r = check_receipt(body);
        assert_eq!(r.log_index, v.receipt.log_index);
        // Bundles committed together share the checkpoint signed after the last of them.
        assert!(
            r.size > r.log_index,
            "entry {} proven in a checkpoint of {} entries",
            r.log_index,
            r.size
        );
        assert!(
            leaves.insert(r.log_index, r.leaf).is_none(),
            "log index {} given twice",
            r.log_index
        );
        // Two processes, one log: a size is never signed with two roots.
        if let Some(root) = roots.insert(r.size, r.root) {
            assert_eq!(root, r.root, "two roots signed for size {}", r.size);
        }
    };
    for ((beat, replies), bundles) in got.iter().zip(&sent) {
        check(beat, None);
        for ([x, y], b) in replies.iter().zip(bundles) {
            let mut statuses = [x.0, y.0];
            statuses.sort_unstable();
            assert_eq!(
                statuses,
                [200, 201],
                "{}: {} {} / {} {}",
                b.file_name,
                x.0,
                String::from_utf8_lossy(&x.1),
                y.0,
                String::from_utf8_lossy(&y.1)
            );
            assert_eq!(x.1, y.1, "{}: the same receipt, byte for byte", b.file_name);
            accepted_by[usize::from(y.0 == 201)] += 1;
            check(&x.1, Some((&b.file_name, sha256_hex(&b.tar))));
        }
    }
    let n = (LABS * BUNDLES + LABS) as u64;
    assert_eq!(
        leaves.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "the log's entries are 0..{n}, each once"
    );

    // Both processes serve the same newest checkpoint, and every checkpoint either signed is
    // consistent with it (proofs from each process, checked independently).
    let (text_a, _, size, root) = current_checkpoint(a.addr);
    let (text_b, _, _, _) = current_checkpoint(b.addr);
    assert_eq!((size, &text_a), (n, &text_b));
    let leaves: Vec<_> = leaves.into_values().collect();
    assert_eq!(rfc9162::root(&leaves), root);
    for (i, (m, old_root)) in roots.iter().enumerate() {
        let from = to[i % 2];
        let path = proof_hashes(&get(from, &format!("/v1/log/proof?from={m}&size={size}")));
        rfc9162::verify_consistency(*m, size, &path, old_root, &root)
            .unwrap_or_else(|e| panic!("{m} → {size}: {e}"));
    }

    // The index, the bucket and the log agree; every lab's line is whole.
    let checked = coordinator("check", &config);
    assert_eq!(
        checked_bundles(&checked),
        (LABS * BUNDLES) as u64,
        "{checked}"
    );
    let status = coordinator("status", &config);
    assert_eq!(
        status
            .lines()
            .filter(
                |l| l.contains(&format!("{BUNDLES} bundle(s), last #{BUNDLES}"))
                    && l.contains("0 gap(s), 0 incident(s)")
            )
            .count(),
        LABS,
        "{status}"
    );

    // Every accepted reading comes back out of the bucket, with its lab.
    let out = with_keys(Command::new(bin()).args([
        "coordinator",
        "export",
        "--artefact",
        "Z1",
        "--csv",
        "--config",
    ]))
    .arg(&config)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + LABS * BUNDLES * 2,
        "a header, then two readings a bundle"
    );
    assert!(csv.starts_with("lab,"), "{}", &csv[..csv.len().min(200)]);

    // Both took a share of first arrivals, and both stop cleanly on SIGTERM.
    eprintln!(
        "{} bundles to two coordinators: {sending:?}, first accepted by each: {accepted_by:?}",
        LABS * BUNDLES
    );
    for server in [a, b] {
        server.proc.signal(nix::sys::signal::Signal::SIGTERM);
        let (status, err) = server.proc.finish();
        assert!(status.success(), "{status}: {err}");
    }
    assert!(sending < Duration::from_secs(120), "{sending:?}");
}

#[test]
fn the_readme_scale_out_config_is_real() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```toml\n[storage]\nkind = \"postgres\"")
        .expect("README shows the PostgreSQL and S3 storage");
    let block = &readme[start + "```toml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let text = format!(
        "[coordinator]\nid = \"pilot\"\nlisten = \"127.0.0.1:8480\"\nkey = \"k\"\nlabs = \"labs\"\n{block}"
    );
    let config =
        tsagent_coordinator::Config::parse(Path::new("/etc/tsagent-coordinator/c.toml"), &text)
            .unwrap();
    assert!(
        matches!(
            config.storage,
            tsagent_coordinator::config::Storage::Separate {
                index: tsagent_coordinator::config::IndexStore::Postgres(_),
                blobs: tsagent_coordinator::config::BlobStore::S3 { .. },
            }
        ),
        "{:?}",
        config.storage
    );
}
