//! The chain rules, through the intake on every storage: next, again, gap, each kind of fork, a
//! heartbeat contradicted, signers not in `labs`, malformed bodies; and every receipt and the log
//! checked with the bundle crate's verifier.
//!
//! Each scenario runs on the embedded storage (SQLite and a folder), on PostgreSQL with an S3
//! bucket (the scale-out mode), and on the two mixes (PostgreSQL and a folder, SQLite and a
//! bucket), against real servers the tests start (`servers`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tsagent_bundle::chain::{GENESIS, ReadingRecord, ReadingStatus};
use tsagent_bundle::manifest::{CustodyInfo, Hash32};
use tsagent_bundle::receipt::{
    self, HEARTBEAT_FORMAT, Heartbeat, LogEntry, SignedReceipt, sign_heartbeat,
};
use tsagent_bundle::tlog;
use tsagent_bundle::{
    ArtefactInfo, InstrumentInfo, ReadingExport, SealInput, SealedBundle, SigningKey, seal,
};
use tsagent_coordinator::config::{BlobStore, Storage};
use tsagent_coordinator::intake::Prepared;
use tsagent_coordinator::{Intake, Outcome, config, log};

mod servers;

/// Where a scenario's pilot keeps things.
#[derive(Debug, Clone, Copy)]
enum Store {
    /// SQLite and a folder: the default.
    Local,
    /// SQLite and a bucket.
    LocalS3,
    /// PostgreSQL and a folder.
    PostgresFolder,
    /// PostgreSQL and a bucket: the scale-out mode.
    PostgresS3,
}

impl Store {
    /// The `[storage]` section.
    fn section(self) -> String {
        let s3 = || {
            let place = servers::s3().place();
            format!(
                "[storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"{}\"\n",
                place.endpoint, place.bucket, place.prefix
            )
        };
        match self {
            Self::Local => String::new(),
            Self::LocalS3 => format!("[storage]\nkind = \"local\"\n{}", s3()),
            Self::PostgresFolder => format!(
                "[storage]\nkind = \"postgres\"\nurl = \"{}\"\npath = \"blobs\"\n",
                servers::postgres().database()
            ),
            Self::PostgresS3 => format!(
                "[storage]\nkind = \"postgres\"\nurl = \"{}\"\nspool = \"spool\"\n{}",
                servers::postgres().database(),
                s3()
            ),
        }
    }
}

/// Runs each scenario on every [`Store`], as tests `<scenario>::<store>`.
macro_rules! on_every_storage {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::Store;
            #[test]
            fn local() {
                super::$scenario(Store::Local);
            }
            #[test]
            fn local_s3() {
                super::$scenario(Store::LocalS3);
            }
            #[test]
            fn postgres_folder() {
                super::$scenario(Store::PostgresFolder);
            }
            #[test]
            fn postgres_s3() {
                super::$scenario(Store::PostgresS3);
            }
        }
    )*};
}

on_every_storage!(
    next_again_gap_and_forks,
    a_heartbeat_pins_the_chain_and_a_rewrite_after_it_is_a_fork,
    signers_not_in_labs_and_malformed_bodies_are_refused,
    labs_sending_at_once_each_get_their_own_receipts,
    a_heartbeat_that_arrives_while_a_bundle_waits_is_held_against_it,
);

fn key(dir: &Path, name: &str) -> SigningKey {
    let path = dir.join(name);
    tsagent_bundle::generate_key(&path, name).unwrap();
    tsagent_bundle::load_signing_key(&path).unwrap()
}

/// A lab sealing consecutive bundles, as the agent does.
#[derive(Clone)]
struct Lab {
    id: &'static str,
    key: SigningKey,
    bundle_seq: u64,
    next_seq: u64,
    chain: [u8; 32],
    prev_sums: Option<[u8; 32]>,
}

impl Lab {
    fn new(dir: &Path, id: &'static str) -> Self {
        Self {
            id,
            key: key(dir, id),
            bundle_seq: 0,
            next_seq: 1,
            chain: GENESIS,
            prev_sums: None,
        }
    }

    fn readings(&self, n: u64, salt: f64) -> (Vec<ReadingExport>, [u8; 32]) {
        let mut chain = self.chain;
        let out = (self.next_seq..self.next_seq + n)
            .map(|seq| {
                let record = ReadingRecord {
                    seq,
                    run_id: 1,
                    instrument_id: 1,
                    quantity: "voltage".into(),
                    value: Some(10.0 + salt + seq as f64 * 1e-7),
                    status: ReadingStatus::Valid,
                    unit: "V".into(),
                    raw: format!("{}", 10.0 + salt + seq as f64 * 1e-7),
                    utc_us: 1_790_000_000_000_000 + seq as i64 * 1_000_000,
                    mono_ns: seq * 1_000_000_000,
                    boot_id: "boot".into(),
                };
                chain = record.chain_after(&chain);
                ReadingExport {
                    record,
                    chain,
                    sequence: "stability".into(),
                    instrument: "dmm".into(),
                }
            })
            .collect();
        (out, chain)
    }

    fn input(&self, seq: u64, readings: Vec<ReadingExport>) -> SealInput {
        SealInput {
            lab_id: self.id.into(),
            lab_name: format!("Lab {}", self.id),
            artefact: ArtefactInfo {
                id: "Z1".into(),
                kind: "zener".into(),
                serial: "S1".into(),
                nominal: 10.0,
                unit: "V".into(),
            },
            bundle_seq: seq,
            prev_sums_sha256: self.prev_sums,
            chain_prev: self.chain,
            readings,
            events: vec![],
            instruments: vec![InstrumentInfo {
                id: 1,
                name: "dmm".into(),
                resource: "tcp://127.0.0.1:5025".into(),
                manufacturer: "HP".into(),
                model: "3458A".into(),
                serial: "1".into(),
                firmware: "9".into(),
            }],
            sequences_sha256: [1; 32],
            created_utc_us: 1_790_000_000_000_000 + seq as i64,
            agent_version: "test".into(),
            custody: CustodyInfo {
                state: "official_window".into(),
                ..CustodyInfo::default()
            },
            traceability: vec![],
            previous_receipt: None,
        }
    }

    /// The next bundle, advancing the lab.
    fn next(&mut self, n: u64) -> SealedBundle {
        let (readings, chain) = self.readings(n, 0.0);
        let sealed = seal(&self.input(self.bundle_seq + 1, readings), &self.key).unwrap();
        self.bundle_seq += 1;
        self.next_seq += n;
        self.chain = chain;
        self.prev_sums = Some(sealed.sums_sha256);
        sealed
    }

    /// The next bundle carrying `attachments` in `report/` (format v4), advancing the lab.
    fn next_with(&mut self, n: u64, attachments: &[(&str, &[u8])]) -> SealedBundle {
        let (readings, chain) = self.readings(n, 0.0);
        let input = self.input(self.bundle_seq + 1, readings);
        let sealed = tsagent_bundle::seal_with_attachments(&input, attachments, &self.key).unwrap();
        self.bundle_seq += 1;
        self.next_seq += n;
        self.chain = chain;
        self.prev_sums = Some(sealed.sums_sha256);
        sealed
    }

    /// What the next bundle would be with other readings, without advancing.
    fn other_next(&self, n: u64) -> SealedBundle {
        let (readings, _) = self.readings(n, 1.0);
        seal(&self.input(self.bundle_seq + 1, readings), &self.key).unwrap()
    }

    fn heartbeat(&self, seq: u64, chain: [u8; 32]) -> Vec<u8> {
        let hb = Heartbeat {
            format: HEARTBEAT_FORMAT.into(),
            lab: self.id.into(),
            artefact: "Z1".into(),
            seq,
            chain: Hash32(chain),
            utc: "2026-12-02T12:00:00Z".into(),
            instruments_online: 1,
            instruments: 1,
            custody: "official_window".into(),
            agent_version: "test".into(),
        };
        serde_json::to_vec(&sign_heartbeat(&self.key, &hb).unwrap()).unwrap()
    }
}

struct Pilot {
    _dir: tempfile::TempDir,
    intake: Intake,
    public: ssh_key::PublicKey,
}

fn pilot(labs: &[&Lab], store: Store) -> Pilot {
    let dir = tempfile::tempdir().unwrap();
    let k = key(dir.path(), "coordinator");
    let public = k.public_key().clone();
    let signers: String = labs
        .iter()
        .map(|l| tsagent_bundle::allowed_signers_line(l.id, l.key.public_key()).unwrap() + "\n")
        .collect();
    std::fs::write(dir.path().join("labs"), signers).unwrap();
    let mut cfg = config::Config::parse(
        &dir.path().join("c.toml"),
        &format!(
            "[coordinator]\nid = \"pilot\"\nlisten = \"127.0.0.1:0\"\nkey = \"coordinator\"\nlabs = \"labs\"\n{}",
            store.section()
        ),
    )
    .unwrap();
    // The bucket's keys: here from the test's server, in a deployment from the environment.
    if let Storage::Separate {
        blobs: BlobStore::S3 { bucket, .. },
        ..
    } = &mut cfg.storage
    {
        bucket.credentials = Some(servers::credentials());
    }
    let intake = tsagent_coordinator::open(&cfg).unwrap();
    Pilot {
        _dir: dir,
        intake,
        public,
    }
}

fn send(p: &Pilot, name: &str, tar: &[u8]) -> Outcome {
    let sha = Hash32(sha2::Sha256::digest(tar).into());
    // As the server receives a body whose length was declared (in memory if small).
    let mut spool = p.intake.spool_for(tar.len() as u64).unwrap();
    spool.write(tar).unwrap();
    p.intake
        .bundle(name, Some(&sha.to_string()), spool.finish().unwrap())
        .unwrap()
}

use sha2::Digest;

fn accepted(o: Outcome) -> SignedReceipt {
    match o {
        Outcome::Accepted(r) => r,
        other => panic!("expected 201, got {other:?}"),
    }
}

fn next_again_gap_and_forks(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new(dir.path(), "NIM");
    let p = pilot(&[&lab], store);

    let b1 = lab.next(3);
    let r1 = accepted(send(&p, &b1.file_name, &b1.tar));
    let v1 = receipt::verify_receipt(&p.public, &r1, None).unwrap();
    assert_eq!(v1.receipt.log_index, 0);
    match send(&p, &b1.file_name, &b1.tar) {
        Outcome::Again(text) => assert_eq!(text, serde_json::to_string(&r1).unwrap()),
        other => panic!("{other:?}"),
    }

    let b2 = lab.next(2);
    let before3 = lab.clone();
    let b3 = lab.next(2);
    match send(&p, &b3.file_name, &b3.tar) {
        Outcome::Gap { expected, .. } => assert_eq!(expected, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.intake.index.status().unwrap()[0].gaps, 1);
    let r2 = accepted(send(&p, &b2.file_name, &b2.tar));
    let v2 = receipt::verify_receipt(&p.public, &r2, None).unwrap();
    // The lab checks the new checkpoint against the one it saw before.
    let proof = log::consistency(&*p.intake.index, v1.checkpoint.size, v2.checkpoint.size).unwrap();
    tlog::verify_consistency(
        v1.checkpoint.size,
        v2.checkpoint.size,
        &proof,
        &v1.checkpoint.root,
        &v2.checkpoint.root,
    )
    .unwrap();
    accepted(send(&p, &b3.file_name, &b3.tar));

    // Bundle 3 again with other content: a fork, quarantined and recorded.
    let other3 = before3.other_next(2);
    assert!(matches!(
        send(&p, &other3.file_name, &other3.tar),
        Outcome::Fork(_)
    ));
    // Bundle 4 naming a wrong predecessor.
    let mut wrong = lab.clone();
    wrong.prev_sums = Some([7; 32]);
    let w = wrong.next(1);
    assert!(matches!(send(&p, &w.file_name, &w.tar), Outcome::Fork(_)));
    // Bundle 4 whose chain does not continue bundle 3's.
    let mut rewritten = lab.clone();
    rewritten.chain = [9; 32];
    let c = rewritten.next(1);
    assert!(matches!(send(&p, &c.file_name, &c.tar), Outcome::Fork(_)));
    let incidents = p.intake.index.incidents().unwrap();
    assert_eq!(incidents.len(), 3, "{incidents:?}");
    assert!(
        incidents
            .iter()
            .all(|i| i.kind == "fork" && i.sha256.is_some())
    );
    // The true bundle 4 still goes in.
    let b4 = lab.next(1);
    accepted(send(&p, &b4.file_name, &b4.tar));

    let status = p.intake.index.status().unwrap();
    assert_eq!(status.len(), 1);
    let s = &status[0];
    assert_eq!(
        (s.bundles, s.last_bundle_seq, s.gaps, s.incidents),
        (4, 4, 0, 3)
    );
    // The index and the blobs agree: every accepted bundle kept, and nothing else (the forks
    // went to quarantine), each readable back as it was sent.
    let mut indexed: Vec<Hash32> = p
        .intake
        .index
        .bundles(None)
        .unwrap()
        .into_iter()
        .map(|b| b.sha256)
        .collect();
    indexed.sort_by_key(|h| h.0);
    assert_eq!(p.intake.blobs.list().unwrap(), indexed);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut p.intake.blobs.open(&indexed[0]).unwrap(), &mut back).unwrap();
    assert_eq!(Hash32(sha2::Sha256::digest(&back).into()), indexed[0]);
}

fn beat(p: &Pilot, body: &[u8]) -> Outcome {
    p.intake.heartbeat(body).unwrap()
}

fn a_heartbeat_pins_the_chain_and_a_rewrite_after_it_is_a_fork(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new(dir.path(), "PTB");
    let stranger = Lab::new(dir.path(), "KRISS");
    let p = pilot(&[&lab], store);
    let b1 = lab.next(3);
    accepted(send(&p, &b1.file_name, &b1.tar));
    // Readings 4 and 5 are taken; the heartbeat names the chain after 5.
    let (_, chain5) = lab.readings(2, 0.0);
    let hb = lab.heartbeat(5, chain5);
    let r = accepted(beat(&p, &hb));
    let v = receipt::verify_receipt(&p.public, &r, None).unwrap();
    assert!(matches!(
        v.receipt.entry,
        LogEntry::Heartbeat { seq: 5, .. }
    ));
    assert!(matches!(beat(&p, &hb), Outcome::Again(_)));

    // Someone rewrites readings 4 and 5 before sealing: the bundle contradicts the heartbeat.
    let rewritten = lab.other_next(2);
    assert!(matches!(
        send(&p, &rewritten.file_name, &rewritten.tar),
        Outcome::Fork(_)
    ));
    let true2 = lab.next(2);
    accepted(send(&p, &true2.file_name, &true2.tar));
    // A heartbeat that contradicts an accepted bundle's reading (not its last) is caught too.
    assert!(matches!(
        beat(&p, &lab.heartbeat(4, [3; 32])),
        Outcome::Fork(_)
    ));
    assert!(matches!(
        beat(&p, &stranger.heartbeat(9, [0; 32])),
        Outcome::Forbidden(_)
    ));
    assert!(matches!(beat(&p, b"{}"), Outcome::Unprocessable(_)));
    let kinds: Vec<String> = p
        .intake
        .index
        .incidents()
        .unwrap()
        .into_iter()
        .map(|i| i.kind)
        .collect();
    assert_eq!(kinds, ["heartbeat_contradicted", "heartbeat_contradicted"]);
}

/// Verifies a bundle as the server does and leaves it queued for its group, not yet committed.
fn queue(p: &Pilot, b: &SealedBundle) -> tsagent_coordinator::intake::Queued {
    let sha = Hash32(sha2::Sha256::digest(&b.tar).into());
    let mut spool = p.intake.spool_for(b.tar.len() as u64).unwrap();
    spool.write(&b.tar).unwrap();
    let prepared = p
        .intake
        .prepare(
            &b.file_name,
            Some(&sha.to_string()),
            spool.finish().unwrap(),
        )
        .unwrap();
    match prepared {
        Prepared::Queued(queued) => queued,
        Prepared::Done(o) => panic!("decided before its group: {o:?}"),
    }
}

/// A heartbeat accepted after a bundle was verified and before its group's transaction. A small
/// bundle in a store that packs it (a folder) is judged only in its group, every reading's chain
/// value at hand: a heartbeat that contradicts it makes it a fork, one that agrees lets it in. In
/// a bucket, the bundle was judged and its blob kept before the heartbeat came, its chain values
/// kept only for the heartbeats pending then: the lab is told to send it again (503), and the
/// re-send is judged against the heartbeat.
fn a_heartbeat_that_arrives_while_a_bundle_waits_is_held_against_it(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut nim = Lab::new(dir.path(), "NIM");
    let mut ptb = Lab::new(dir.path(), "PTB");
    let p = pilot(&[&nim, &ptb], store);
    let packs = matches!(store, Store::Local | Store::PostgresFolder);
    let firsts: Vec<SealedBundle> = [&mut nim, &mut ptb]
        .into_iter()
        .map(|lab| {
            let b1 = lab.next(3);
            accepted(send(&p, &b1.file_name, &b1.tar));
            b1
        })
        .collect();

    // NIM's bundle 2 (readings 4 and 5) waits; a heartbeat then gives another chain after 5.
    let nim2 = nim.next(2);
    let waiting = queue(&p, &nim2);
    accepted(beat(&p, &nim.heartbeat(5, [7; 32])));
    let decided = p.intake.commit_blocking(waiting).unwrap();
    if packs {
        assert!(matches!(decided, Outcome::Fork(_)), "{decided:?}");
        let incidents = p.intake.index.incidents().unwrap();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].kind, "heartbeat_contradicted");
    } else {
        assert!(matches!(decided, Outcome::Retry(_)), "{decided:?}");
        assert!(matches!(
            send(&p, &nim2.file_name, &nim2.tar),
            Outcome::Fork(_)
        ));
    }

    // PTB's bundle 2 waits; a heartbeat then gives its true chain after reading 4.
    let (readings, _) = ptb.readings(2, 0.0);
    let chain4 = readings[0].chain;
    let ptb2 = ptb.next(2);
    let waiting = queue(&p, &ptb2);
    accepted(beat(&p, &ptb.heartbeat(4, chain4)));
    let decided = p.intake.commit_blocking(waiting).unwrap();
    if packs {
        accepted(decided);
    } else {
        assert!(matches!(decided, Outcome::Retry(_)), "{decided:?}");
        accepted(send(&p, &ptb2.file_name, &ptb2.tar));
    }

    // Bytes accepted under one name and sent under another: found after verification refuses
    // them, with the name they were accepted as.
    match send(&p, "PTB-Z1-000009.tar", &firsts[1].tar) {
        Outcome::Unprocessable(m) => assert!(m.contains("accepted as `PTB-Z1-000001.tar`"), "{m}"),
        other => panic!("{other:?}"),
    }
}

fn signers_not_in_labs_and_malformed_bodies_are_refused(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new(dir.path(), "NIM");
    let mut stranger = Lab::new(dir.path(), "KRISS");
    let p = pilot(&[&lab], store);
    let s = stranger.next(1);
    assert!(matches!(
        send(&p, &s.file_name, &s.tar),
        Outcome::Forbidden(_)
    ));
    // A bundle signed by a key `labs` does not give to NIM, under NIM's name.
    let mut impostor = Lab::new(dir.path(), "NIM-impostor");
    impostor.id = "NIM";
    let i = impostor.next(1);
    assert!(matches!(
        send(&p, &i.file_name, &i.tar),
        Outcome::Forbidden(_)
    ));

    let b = lab.next(2);
    let mut flipped = b.tar.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 1;
    assert!(matches!(
        send(&p, &b.file_name, &flipped),
        Outcome::Unprocessable(_)
    ));
    assert!(matches!(
        send(&p, "NIM-Z1-000002.tar", &b.tar),
        Outcome::Unprocessable(_)
    ));
    assert!(matches!(
        send(&p, "NIM-Z1.tar", &b.tar),
        Outcome::Unprocessable(_)
    ));
    let body = |tar: &[u8]| {
        let mut spool = p.intake.spool().unwrap();
        spool.write(tar).unwrap();
        spool.finish().unwrap()
    };
    assert!(matches!(
        p.intake.bundle(&b.file_name, None, body(&b.tar)).unwrap(),
        Outcome::BadRequest(_)
    ));
    assert!(matches!(
        p.intake
            .bundle(
                &b.file_name,
                Some(&Hash32([0; 32]).to_string()),
                body(&b.tar)
            )
            .unwrap(),
        Outcome::Unprocessable(_)
    ));
    accepted(send(&p, &b.file_name, &b.tar));
    assert!(p.intake.index.incidents().unwrap().is_empty());
}

/// Six labs send eight bundles each at once, each lab in order as the agent does: whatever
/// groups the commits formed, each bundle has a receipt of its own that verifies, at its own
/// place in a log that checks, and the index holds each lab's bundles in order.
fn labs_sending_at_once_each_get_their_own_receipts(store: Store) {
    const LABS: [&str; 6] = ["NIM", "PTB", "NPL", "NIST", "LNE", "KRISS"];
    const EACH: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut labs: Vec<Lab> = LABS.iter().map(|id| Lab::new(dir.path(), id)).collect();
    let p = pilot(&labs.iter().collect::<Vec<_>>(), store);
    let sets: Vec<Vec<SealedBundle>> = labs
        .iter_mut()
        .map(|lab| (0..EACH).map(|_| lab.next(3)).collect())
        .collect();
    let receipts: Vec<Vec<SignedReceipt>> = std::thread::scope(|s| {
        let handles: Vec<_> = sets
            .iter()
            .map(|set| {
                let p = &p;
                s.spawn(move || {
                    set.iter()
                        .map(|b| accepted(send(p, &b.file_name, &b.tar)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut places = Vec::new();
    for (set, signed) in sets.iter().zip(&receipts) {
        let mut last = None;
        for (b, r) in set.iter().zip(signed) {
            let v = receipt::verify_receipt(&p.public, r, None).unwrap();
            let LogEntry::Bundle { bundle, sha256, .. } = &v.receipt.entry else {
                panic!("{:?}", v.receipt.entry);
            };
            assert_eq!(bundle, &b.file_name);
            assert_eq!(*sha256, Hash32(sha2::Sha256::digest(&b.tar).into()));
            // A lab's bundles are logged in the order it sent them.
            assert!(last.is_none_or(|l| l < v.receipt.log_index));
            last = Some(v.receipt.log_index);
            places.push(v.receipt.log_index);
        }
    }
    places.sort_unstable();
    assert_eq!(places, (0..(LABS.len() * EACH) as u64).collect::<Vec<_>>());
    let status = p.intake.index.status().unwrap();
    assert_eq!(status.len(), LABS.len());
    assert!(
        status
            .iter()
            .all(|s| (s.bundles, s.last_bundle_seq, s.gaps, s.incidents) == (8, 8, 0, 0))
    );
    let report = tsagent_coordinator::check::check(
        &*p.intake.index,
        &*p.intake.blobs,
        Some(&p.public),
        &p.intake.origin,
    )
    .unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert!(report.orphans.is_empty());
}

/// A bundle carrying the lab's report (format v4) is taken like any other; one whose report was
/// changed after signing is refused, naming the file, and leaves the lab's chain where it was.
#[test]
fn a_bundle_carrying_the_labs_report_is_taken_and_a_changed_report_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new(dir.path(), "NIM");
    let p = pilot(&[&lab], Store::Local);
    let b1 = lab.next(3);
    accepted(send(&p, &b1.file_name, &b1.tar));
    let report: [(&str, &[u8]); 2] = [
        ("report.html", b"<!doctype html><p>U = 10.0000012 V</p>\n"),
        ("summary.json", b"{\"value\": 10.0000012}\n"),
    ];
    let b2 = lab.next_with(2, &report);
    assert_eq!(b2.manifest.format, tsagent_bundle::manifest::FORMAT_V4);
    let mut changed = b2.tar.clone();
    let at = changed
        .windows(10)
        .position(|w| w == b"10.0000012")
        .unwrap();
    changed[at] = b'2';
    match send(&p, &b2.file_name, &changed) {
        Outcome::Unprocessable(text) => {
            assert!(text.contains("report/report.html"), "{text}");
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let r2 = accepted(send(&p, &b2.file_name, &b2.tar));
    let v2 = receipt::verify_receipt(&p.public, &r2, None).unwrap();
    assert_eq!(v2.receipt.log_index, 1);
}
