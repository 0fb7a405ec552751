//! Plan row C2 in its own test binary, so that no other test opens or closes descriptors in the
//! process while they are counted: a thousand unplug/replug cycles through the connection
//! supervisor leave descriptors and memory as they were.

// A panic in a test or benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident memory of this process, in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Plan row C2: a thousand unplug/replug cycles through the supervisor leave no descriptor and
/// no memory behind: each cycle the line hangs up, the supervisor's probe takes the instrument
/// offline, the next use reconnects through the stable link, and the session answers.
#[tokio::test(flavor = "current_thread")]
async fn a_thousand_unplug_cycles_leak_neither_descriptors_nor_memory() {
    use std::time::Duration;
    use tsagent::clock::SystemClock;
    use tsagent::config::Config;
    use tsagent::supervisor::Supervisor;
    use tsagent_sim::{FaultKind, PtyServer, SimParams, SimSpec};

    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dmm");
    let sim =
        PtyServer::start_spec(SimSpec::generic(SimParams::default()), Some(link.clone())).unwrap();
    let mut lab = Lab::serial(link.to_str().unwrap());
    lab.count = 1;
    let config = Config::load(&lab.config()).unwrap();
    let instrument = &config.instruments[0];
    let clock = SystemClock::new();
    let mut supervisor = Supervisor::new(&config);

    supervisor.session(instrument, &clock).await.unwrap();
    let mut cycle = async |n: u64| {
        sim.faults().inject(FaultKind::Disconnect {
            down: Duration::ZERO,
            new_path: false,
            serial: None,
        });
        sim.wait_returns(n).await;
        // The supervisor notices the hang-up of the idle session, as between scheduled runs;
        // the kernel's hang-up can reach the runtime a moment after the simulator is back, so
        // the probe is repeated (the daemon repeats it every second) until it sees it.
        let mut probes = 0;
        while supervisor.is_online("dmm") {
            probes += 1;
            assert!(
                probes < 10_000,
                "cycle {n}: hang-up not noticed; line {:?}, now at {}, fired {}",
                sim.line_status(),
                sim.current_path().display(),
                sim.faults().fired()
            );
            supervisor.tick(&config.instruments, &clock).await;
            tokio::task::yield_now().await;
        }
        let session = supervisor.session(instrument, &clock).await.unwrap();
        let reply = session.query("*IDN?").await.unwrap();
        assert!(reply.contains("SIM-DMM"), "{reply}");
        session.take_exchanges();
        // The daemon stores these; here they are only counted.
        let events = supervisor.take_events();
        assert_eq!(events.len(), 2, "cycle {n}: {events:?}");
    };

    const WARM_UP: u64 = 20;
    for n in 1..=WARM_UP {
        cycle(n).await;
    }
    let (fds, rss) = (open_fds(), rss_kb());
    for n in WARM_UP + 1..=1000 {
        cycle(n).await;
    }
    let (fds_after, rss_after) = (open_fds(), rss_kb());
    eprintln!("C2: descriptors {fds} → {fds_after}, VmRSS {rss} → {rss_after} kB over 980 cycles");
    assert!(
        fds_after.abs_diff(fds) <= 2,
        "descriptors {fds} → {fds_after}"
    );
    assert!(
        (rss_after as f64) < rss as f64 * 1.05,
        "VmRSS {rss} → {rss_after} kB"
    );
}
