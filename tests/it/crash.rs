//! kill -9 at random moments during acquisition: the log stays sound, sequence numbers contiguous,
//! every reading that was reported is stored, and the next start marks the cut run interrupted.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use nix::sys::signal::Signal;
use tsagent::store::RunStatus;

/// xorshift64*: a few random numbers without a dependency; the seed is printed so a failure can
/// be replayed with TSAGENT_CRASH_SEED.
fn rng() -> impl FnMut() -> u64 {
    let seed = std::env::var("TSAGENT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("TSAGENT_CRASH_SEED={seed}");
    let mut x = seed;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn kill_9_during_acquisition_loses_nothing_reported() {
    let mut lab = Lab::simulated();
    lab.count = 1_000_000;
    let config = lab.config();
    let mut next = rng();
    let mut reported_max = 0u64;
    const KILLS: u64 = 8;
    for round in 1..=KILLS {
        let run = Proc::spawn(
            Command::new(bin())
                .args(["measure", "--sequence", "s", "--config"])
                .arg(&config),
        );
        // Wait for a random number of readings, then a random fraction of a reading's time, so the
        // kill lands anywhere: mid-exchange, mid-commit, between commit and report.
        let after = 1 + next() % 40;
        let line = run.wait_for(|l| l.starts_with(&format!("reading {after}/")));
        let seq: u64 = line
            .split(' ')
            .nth(2)
            .and_then(|s| s.strip_prefix("seq="))
            .unwrap()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_micros(next() % 3_000));
        run.signal(Signal::SIGKILL);
        let (status, _) = run.finish();
        assert_eq!(status.code(), None, "killed by a signal");
        reported_max = reported_max.max(seq);

        lab.assert_sound();
        let rows = lab.readings();
        let seqs: Vec<u64> = rows.iter().map(|r| r.record.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "contiguous from 1"
        );
        assert!(
            seqs.len() as u64 >= reported_max,
            "round {round}: reported {reported_max}, stored {}",
            seqs.len()
        );
    }
    // The next start marks every cut run interrupted; its own run completes.
    lab.count = 3;
    measure(&lab.config()).success();
    let store = lab.store();
    for run_id in 1..=KILLS {
        assert_eq!(
            store.run(run_id).unwrap().unwrap().status,
            RunStatus::Interrupted,
            "run {run_id}"
        );
    }
    assert_eq!(
        store.run(KILLS + 1).unwrap().unwrap().status,
        RunStatus::Completed
    );
    lab.assert_sound();
}
