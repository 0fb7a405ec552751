//! P7: the coordinator's intake through the real HTTP server (`tsagent coordinator serve`, a child
//! process of this bench), next to the stock pipeline a pilot would run on the same bundles in the
//! same run: per bundle `tar -xf`, `ssh-keygen -Y verify` and `sha256sum -c`.
//!
//! `cargo bench --bench p7_intake`. Three phases, each run `P7_ROUNDS` times (default 3) with the
//! order of the ways rotated; figures are medians:
//! - small: `P7_SMALL` bundles (default 1000) of `P7_SMALL_READINGS` readings (default 100), in
//!   bundles/s;
//! - big: `P7_BIG` bundles (default 16) of `P7_BIG_READINGS` readings (default 100 000), in MB/s,
//!   and the coordinator's peak RSS while it takes them;
//! - huge: one bundle of `P7_HUGE_READINGS` readings (default 1 000 000; 0 leaves it out), sent
//!   alone, in MB/s and peak RSS: the memory figure must not depend on the bundle's size.
//!
//! The bundles come from `P7_LABS` labs (default 8), round-robin, each on a lab id, key and
//! loopback address of its own. A lab sends strictly in order (the agent's outbox: the next bundle
//! only after the previous one's receipt, else 409 gap), so the client opens one connection per
//! lab at a time, a new one for each bundle as the agent does: `P7_LABS` uploads in flight. The
//! stock pipeline runs the same way, one `sh` per lab going through that lab's bundles, all labs
//! at once ("parallel"), and as one `sh` through every bundle ("serial").
//!
//! Storage modes (`P7_MODES`, default `embedded,scaleout`): the default SQLite index and folder of
//! blobs, and PostgreSQL with an S3 bucket. PostgreSQL is started here (`initdb`, `postgres`, as
//! `nobody` under root) with its durable defaults (fsync on, synchronous_commit on) — unlike the
//! tests' throwaway server, which turns fsync off — so that both modes pay for durability. The S3
//! server is the tests' SeaweedFS (`weed mini`, `crates/coordinator/tests/servers`).
//!
//! Each coordinator starts on fresh storage (a new folder, or a new database and bucket prefix)
//! and is measured from its `listening on` line: the first request's PUT to the last reply. Its
//! peak RSS is `VmHWM` from `/proc/PID/status` after the sends; its CPU time is `utime + stime`
//! over the sends; "machine busy" is the share of both cores' time that was not idle meanwhile
//! (`/proc/stat`: the client, the servers and anything else running). After each phase,
//! `tsagent coordinator check` must find every bundle indexed with its blob, and the log whole.
//!
//! `P7_TSA="label=path label=path"` measures several builds of `tsagent` side by side (default:
//! this tree's, built with the bench profile, i.e. the release profile). `P7_STOCK=0` leaves the
//! stock pipeline out. `P7_KEEP=DIR` keeps (and reuses) the sealed bundles. `P7_PROFILE` attaches
//! a diagnostic to each serving coordinator (`{pid}` is replaced), e.g.
//! `P7_PROFILE="perf record -g -p {pid} -o FILE"`. A quick run: `P7_SMALL=200 P7_BIG=4
//! P7_BIG_READINGS=20000 P7_HUGE_READINGS=0 P7_ROUNDS=1 cargo bench --bench p7_intake`.
//!
//! Targets: small ≥ 10× the stock pipeline's bundles/s; big ≥ 1× its MB/s; the coordinator's peak
//! RSS ≤ 64 MB whatever the bundle's size.

// A panic in a benchmark is its failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "../crates/coordinator/tests/servers/mod.rs"]
mod servers;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env, median, work_dir};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsagent_bundle::chain::{GENESIS, ReadingRecord, ReadingStatus};
use tsagent_bundle::manifest::{CustodyInfo, Hash32};
use tsagent_bundle::{ArtefactInfo, InstrumentInfo, SealHeader, Sealer, SigningKey};

/// The coordinator's id.
const PILOT: &str = "pilot-P7";

/// A lab sealing consecutive bundles of one artefact, as the agent does.
struct Lab {
    id: String,
    key: SigningKey,
    bundle_seq: u64,
    next_seq: u64,
    chain: [u8; 32],
    prev_sums: Option<[u8; 32]>,
}

impl Lab {
    fn new(id: String, key: SigningKey) -> Self {
        Self {
            id,
            key,
            bundle_seq: 0,
            next_seq: 1,
            chain: GENESIS,
            prev_sums: None,
        }
    }

    /// Seals the next bundle of `artefact` with `n` readings into `dir`; its path.
    fn seal_next(&mut self, artefact: &str, n: u64, dir: &Path) -> PathBuf {
        let seq = self.bundle_seq + 1;
        let header = SealHeader {
            lab_id: self.id.clone(),
            lab_name: format!("Lab {}", self.id),
            artefact: ArtefactInfo {
                id: artefact.into(),
                kind: "zener".into(),
                serial: "S1".into(),
                nominal: 10.0,
                unit: "V".into(),
            },
            bundle_seq: seq,
            prev_sums_sha256: self.prev_sums,
            chain_prev: self.chain,
            sequences_sha256: [1; 32],
            created_utc_us: 1_790_000_000_000_000 + seq as i64,
            agent_version: "bench".into(),
            custody: CustodyInfo {
                state: "official_window".into(),
                ..CustodyInfo::default()
            },
            traceability: vec![],
            previous_receipt: None,
        };
        let instruments = vec![InstrumentInfo {
            id: 1,
            name: "dmm".into(),
            resource: "TCPIP::192.0.2.7::5025::SOCKET".into(),
            manufacturer: "Keysight".into(),
            model: "34470A".into(),
            serial: "MY12345678".into(),
            firmware: "A.03.01".into(),
        }];
        let mut sealer = Sealer::new(header, instruments, Vec::new(), Vec::new()).unwrap();
        // Readings as a 7½-digit DMM on a 10 V Zener gives them, one a second.
        let mut record = ReadingRecord {
            seq: 0,
            run_id: 1,
            instrument_id: 1,
            quantity: "voltage".into(),
            value: None,
            status: ReadingStatus::Valid,
            unit: "V".into(),
            raw: String::new(),
            utc_us: 0,
            mono_ns: 0,
            boot_id: "6f1c3a52-9d0e-4b7a-8f3e-2c5d1e0a9b47".into(),
        };
        for seq in self.next_seq..self.next_seq + n {
            let wobble = ((seq * 7919) % 1000) as f64 * 1e-7;
            let value = 10.000_012 + wobble;
            record.seq = seq;
            record.raw = format!("{value:+.9E}");
            record.value = Some(record.raw.parse().unwrap());
            record.utc_us = 1_790_000_000_000_000 + seq as i64 * 1_000_000;
            record.mono_ns = seq * 1_000_000_000;
            self.chain = record.chain_after(&self.chain);
            sealer
                .push_reading(&record.as_ref(), "stability", "dmm", &self.chain)
                .unwrap();
        }
        let (parts, readings, events) = sealer.finish(&self.key).unwrap();
        let path = dir.join(&parts.file_name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        parts
            .write_archive(&mut file, &mut &readings[..], &mut &events[..])
            .unwrap();
        drop(file);
        self.bundle_seq = seq;
        self.next_seq += n;
        self.prev_sums = Some(parts.sums_sha256);
        path
    }
}

/// A set of bundles: per lab, its bundles in order.
struct Set {
    /// (lab id, bundle paths in order).
    labs: Vec<(String, Vec<PathBuf>)>,
    bytes: u64,
    count: usize,
}

/// Seals (or finds, from an earlier run with `P7_KEEP`) `count` bundles of `readings` readings of
/// `artefact`, round-robin over `labs`.
fn bundle_set(
    dir: &Path,
    keys: &[(String, SigningKey)],
    artefact: &str,
    count: usize,
    readings: u64,
) -> Set {
    let set_dir = dir.join(format!("{artefact}-{count}x{readings}"));
    let labs = keys.len().min(count);
    let done = set_dir.join("done");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&set_dir);
        let t = Instant::now();
        let mut sealing: Vec<Lab> = keys[..labs]
            .iter()
            .map(|(id, key)| Lab::new(id.clone(), key.clone()))
            .collect();
        for lab in &sealing {
            std::fs::create_dir_all(set_dir.join(&lab.id)).unwrap();
        }
        for i in 0..count {
            let lab = &mut sealing[i % labs];
            let lab_dir = set_dir.join(&lab.id);
            lab.seal_next(artefact, readings, &lab_dir);
        }
        std::fs::write(&done, "").unwrap();
        println!(
            "sealed {count} bundles of {readings} readings in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let mut out = Vec::new();
    let (mut bytes, mut n) = (0, 0);
    for (id, _) in &keys[..labs] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(set_dir.join(id))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        // The names end in the bundle number, six digits: name order is sending order.
        files.sort();
        for f in &files {
            bytes += std::fs::metadata(f).unwrap().len();
        }
        n += files.len();
        out.push((id.clone(), files));
    }
    Set {
        labs: out,
        bytes,
        count: n,
    }
}

// ---------------------------------------------------------------------------------------------
// The stock pipeline.

/// The stock tools on `set`, extracting into the new folder `scratch`: one `sh` per lab, all at
/// once, or one `sh` for every bundle. Seconds, wall clock.
fn stock(set: &Set, signers: &Path, scratch: &Path, parallel: bool) -> f64 {
    let extract = scratch.join("x");
    std::fs::create_dir_all(&extract).unwrap();
    let mut scripts: Vec<String> = Vec::new();
    for (lab, files) in &set.labs {
        let mut script = String::new();
        for path in files {
            let name = path.file_stem().unwrap().to_string_lossy();
            script.push_str(&format!(
                "cd '{x}' && tar -xf '{b}' && cd {name} && ssh-keygen -Y verify -f '{s}' -I {lab} -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS > /dev/null 2>&1 && sha256sum -c --quiet SHA256SUMS\n",
                x = extract.display(),
                b = path.display(),
                s = signers.display()
            ));
        }
        scripts.push(script);
    }
    if !parallel {
        scripts = vec![scripts.concat()];
    }
    let files: Vec<PathBuf> = scripts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = scratch.join(format!("{i}.sh"));
            std::fs::write(&p, format!("set -e\n{s}")).unwrap();
            p
        })
        .collect();
    let start = Instant::now();
    let children: Vec<Child> = files
        .iter()
        .map(|f| {
            Command::new("sh")
                .arg(f)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "stock pipeline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL, durable.

/// A PostgreSQL server of the bench's own, with its durable defaults; stopped, and its folder
/// removed, when the bench ends however it ends (its shell waits for our end of a pipe).
struct Postgres {
    port: u16,
    bin: PathBuf,
    _stdin: ChildStdin,
    _child: Child,
}

const PG_SCRIPT: &str = r#"
set -e
dir=$1; bin=$2; port=$3; shift 3
"$@" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1
"$@" "$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories= -c max_connections=200 >"$dir/server.log" 2>&1 &
pid=$!
read _ || true
kill -INT "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$dir"
"#;

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Postgres {
    fn start() -> Self {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").is_file().then_some((version, bin))
            })
            .collect();
        found.sort();
        let bin = found
            .pop()
            .expect("PostgreSQL's server: apt-get install -y postgresql (.ci/run does)")
            .1;
        let dir = tempfile::Builder::new()
            .prefix("tsagent-p7-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut as_user: Vec<String> = vec![];
        if id(&["-u"]) == 0 {
            // PostgreSQL will not run as root.
            let (uid, gid) = (id(&["-u", "nobody"]), id(&["-g", "nobody"]));
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            as_user = [
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ]
            .into();
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(PG_SCRIPT)
            .arg("sh")
            .arg(&dir)
            .arg(&bin)
            .arg(port.to_string())
            .args(&as_user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-t", "1", "-p"])
                .arg(port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            port,
            bin,
            _stdin: stdin,
            _child: child,
        }
    }

    /// A new database; its URL.
    fn database(&self, name: &str) -> String {
        let ok = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .status()
            .unwrap()
            .success();
        assert!(ok, "createdb {name}");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn setting(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-At", "-p"])
            .arg(self.port.to_string())
            .args(["-c", &format!("SHOW {name}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The coordinator.

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Embedded,
    ScaleOut,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::ScaleOut => "pg+s3",
        }
    }
}

/// What every coordinator of the run shares.
struct Pilot {
    dir: PathBuf,
    key: PathBuf,
    labs: PathBuf,
    pg: Option<Postgres>,
    runs: std::cell::Cell<u32>,
}

/// A serving coordinator; stopped when dropped.
struct Serving {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
    bin: PathBuf,
}

/// Its folder stays until the end of the bench: see `main` on deleting files.
impl Drop for Serving {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// User + system CPU time of process `pid` (all its threads, finished ones too), seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    })
}

/// Busy and total CPU time of the whole machine so far (`/proc/stat`), seconds.
fn machine_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<f64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = v[3] + v[4];
    let total: f64 = v.iter().take(8).sum();
    ((total - idle) / clock_ticks(), total / clock_ticks())
}

/// `field` of `/proc/PID/status`, kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

impl Serving {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `coordinator check` must pass, with `bundles` bundles indexed.
    fn check(&self, bundles: usize) {
        let out = Command::new(&self.bin)
            .args(["coordinator", "check", "--config"])
            .arg(&self.config)
            .envs(s3_env())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with(&format!("ok: {bundles} bundle(s)")),
            "coordinator check: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn s3_env() -> [(&'static str, &'static str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", servers::S3_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", servers::S3_SECRET),
    ]
}

impl Pilot {
    /// A new coordinator on fresh storage: a new folder, or a new database and bucket prefix.
    fn serve(&self, bin: &Path, mode: Mode) -> Serving {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let dir = self.dir.join(format!("run-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let storage = match mode {
            Mode::Embedded => "[storage]\nkind = \"local\"\npath = \"intake\"\n".to_owned(),
            Mode::ScaleOut => {
                let url = self
                    .pg
                    .as_ref()
                    .unwrap()
                    .database(&format!("p7_{}_{n}", std::process::id()));
                let place = servers::s3().place();
                format!(
                    "[storage]\nkind = \"postgres\"\nurl = \"{url}\"\nspool = \"spool\"\n\
                     [storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"p7-{}\"\n",
                    place.endpoint, place.bucket, place.prefix
                )
            }
        };
        let config = dir.join("coordinator.toml");
        std::fs::write(
            &config,
            format!(
                "[coordinator]\nid = \"{PILOT}\"\nlisten = \"127.0.0.1:0\"\nkey = \"{}\"\nlabs = \"{}\"\n{storage}",
                self.key.display(),
                self.labs.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(bin)
            .args(["coordinator", "serve", "--log", "warn", "--config"])
            .arg(&config)
            .envs(s3_env())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Serving {
            child,
            addr,
            config,
            bin: bin.to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client: one connection at a time per lab, a new one per bundle, as the agent's outbox.

/// A bundle ready to send: its name, Idempotency-Key and bytes.
struct Ready {
    name: String,
    key: String,
    bytes: Vec<u8>,
}

fn load(set: &Set) -> Vec<Vec<Arc<Ready>>> {
    set.labs
        .iter()
        .map(|(_, files)| {
            files
                .iter()
                .map(|f| {
                    let bytes = std::fs::read(f).unwrap();
                    Arc::new(Ready {
                        name: f.file_name().unwrap().to_string_lossy().into_owned(),
                        key: Hash32(Sha256::digest(&bytes).into()).to_string(),
                        bytes,
                    })
                })
                .collect()
        })
        .collect()
}

/// PUTs one bundle from `from` on a new connection; the reply's status.
async fn put(from: IpAddr, to: SocketAddr, b: &Ready) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    // The head and the body are two writes: without this, Nagle holds the body back until the
    // head's ACK, which the server delays.
    stream.set_nodelay(true).unwrap();
    let head = format!(
        "PUT /v1/bundles/{} HTTP/1.1\r\nhost: {to}\r\nconnection: close\r\ncontent-type: application/x-tar\r\ncontent-length: {}\r\nidempotency-key: {}\r\n\r\n",
        b.name,
        b.bytes.len(),
        b.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&b.bytes).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Sends every lab's bundles, the labs at once; seconds, wall clock.
fn send(to: SocketAddr, labs: &[Vec<Arc<Ready>>]) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, bundles) in labs.iter().enumerate() {
            // Each lab from an address of its own, as labs are: the server's per-address
            // connection cap is not what is measured.
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + i as u8));
            let bundles = bundles.clone();
            tasks.spawn(async move {
                for b in bundles {
                    let (status, text) = put(from, to, &b).await;
                    assert_eq!(status, 201, "{}: {text}", b.name);
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        start.elapsed().as_secs_f64()
    })
}

/// `P7_PROFILE="perf trace -s -p {pid} -o FILE"` (say): a diagnostic attached to the serving
/// coordinator for the time of the sends, stopped with SIGINT. Its cost is in the figures.
fn profile(pid: u32) -> Option<Child> {
    let cmd = std::env::var("P7_PROFILE").ok()?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {}", cmd.replace("{pid}", &pid.to_string())))
        .spawn()
        .unwrap();
    // Attaching takes a moment.
    std::thread::sleep(Duration::from_secs(2));
    Some(child)
}

// ---------------------------------------------------------------------------------------------

/// A way of taking a set of bundles.
enum Way {
    /// The stock tools, one `sh` per lab at once, or one `sh` for all.
    Stock { parallel: bool },
    /// A build of `tsagent coordinator serve` on a storage.
    Coordinator {
        label: String,
        bin: PathBuf,
        mode: Mode,
    },
}

impl Way {
    /// Its name in the tables; `labs`: how many labs send the set.
    fn name(&self, labs: usize) -> &str {
        match self {
            Way::Stock { .. } if labs == 1 => "stock",
            _ => self.label(),
        }
    }

    fn label(&self) -> &str {
        match self {
            Way::Stock { parallel: false } => "stock, serial",
            Way::Stock { parallel: true } => "stock, parallel",
            Way::Coordinator { label, .. } => label,
        }
    }
}

/// One way's figures, one per round.
#[derive(Default, Clone)]
struct Figures {
    seconds: Vec<f64>,
    /// The coordinator's VmRSS before and VmHWM after, kB.
    rss_before: Vec<u64>,
    hwm: Vec<u64>,
    /// The coordinator's CPU time during the sends, seconds.
    cpu: Vec<f64>,
    /// The share of the machine's CPU time that was busy during the sends (every process).
    busy: Vec<f64>,
}

fn main() {
    let small_n = env("P7_SMALL", 1000) as usize;
    let small_readings = env("P7_SMALL_READINGS", 100);
    let big_n = env("P7_BIG", 16) as usize;
    let big_readings = env("P7_BIG_READINGS", 100_000);
    let huge_readings = env("P7_HUGE_READINGS", 1_000_000);
    let labs_n = env("P7_LABS", 8) as usize;
    let rounds = env("P7_ROUNDS", 3) as usize;
    let modes: Vec<Mode> = std::env::var("P7_MODES")
        .unwrap_or_else(|_| "embedded,scaleout".into())
        .split(',')
        .map(|m| match m.trim() {
            "embedded" => Mode::Embedded,
            "scaleout" => Mode::ScaleOut,
            other => panic!("P7_MODES: `{other}` is neither embedded nor scaleout"),
        })
        .collect();
    let builds: Vec<(String, PathBuf)> = std::env::var("P7_TSA")
        .unwrap_or_else(|_| format!("tsagent={}", env!("CARGO_BIN_EXE_tsagent")))
        .split_whitespace()
        .map(|t| {
            let (label, path) = t.split_once('=').expect("P7_TSA: label=path …");
            (label.to_owned(), PathBuf::from(path))
        })
        .collect();

    let (_temp, dir) = work_dir("P7_KEEP", "p7-");
    let bundles_dir = dir.join("bundles");
    let keys_dir = bundles_dir.join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let keys: Vec<(String, SigningKey)> = (1..=labs_n)
        .map(|i| {
            let id = format!("LAB{i:02}");
            let path = keys_dir.join(&id);
            if !path.exists() {
                tsagent_bundle::generate_key(&path, &id).unwrap();
            }
            (id, tsagent_bundle::load_signing_key(&path).unwrap())
        })
        .collect();
    let signers = keys_dir.join("allowed_signers");
    let lines: String = keys
        .iter()
        .map(|(id, k)| tsagent_bundle::allowed_signers_line(id, k.public_key()).unwrap() + "\n")
        .collect();
    std::fs::write(&signers, lines).unwrap();
    let coordinator_key = keys_dir.join("coordinator_key");
    if !coordinator_key.exists() {
        tsagent_bundle::generate_key(&coordinator_key, PILOT).unwrap();
    }

    let small =
        (small_n > 0).then(|| bundle_set(&bundles_dir, &keys, "SMALL", small_n, small_readings));
    let big = (big_n > 0).then(|| bundle_set(&bundles_dir, &keys, "BIG", big_n, big_readings));
    let huge =
        (huge_readings > 0).then(|| bundle_set(&bundles_dir, &keys[..1], "HUGE", 1, huge_readings));

    let pg = modes.contains(&Mode::ScaleOut).then(|| {
        let pg = Postgres::start();
        // Up front, so that neither server's start-up is in a figure.
        let _ = servers::s3();
        println!(
            "PostgreSQL: fsync={} synchronous_commit={} wal_sync_method={}; SeaweedFS at {}",
            pg.setting("fsync"),
            pg.setting("synchronous_commit"),
            pg.setting("wal_sync_method"),
            servers::s3().endpoint
        );
        pg
    });
    // Every file the ways make (extracted bundles, coordinators' storage) stays until the end:
    // on ext4 without a journal (this machine's disk) each new inode is checked against the
    // inodes deleted in the last 5–305 s, one by one, so a way that ran right after thousands of
    // deletions would pay for the previous way's clean-up. Left by a run that did not finish:
    // removed now, before anything is timed.
    let runs = dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    let pilot = Pilot {
        dir: runs.join("coordinators"),
        key: coordinator_key,
        labs: signers.clone(),
        pg,
        runs: std::cell::Cell::new(0),
    };
    let mut stock_runs = 0;

    let mut ways: Vec<Way> = Vec::new();
    if env("P7_STOCK", 1) == 1 {
        ways.push(Way::Stock { parallel: false });
        ways.push(Way::Stock { parallel: true });
    }
    for (label, bin) in &builds {
        for &mode in &modes {
            ways.push(Way::Coordinator {
                label: format!("{label} {}", mode.label()),
                bin: bin.clone(),
                mode,
            });
        }
    }
    let stock_parallel = ways
        .iter()
        .position(|w| matches!(w, Way::Stock { parallel: true }));

    let phases: Vec<(&str, &Set)> = [("small", &small), ("big", &big), ("huge", &huge)]
        .into_iter()
        .filter_map(|(phase, set)| Some((phase, set.as_ref()?)))
        .collect();
    let mut results: Vec<Vec<Figures>> = vec![vec![Figures::default(); ways.len()]; phases.len()];
    for (p, (phase, set)) in phases.iter().enumerate() {
        println!(
            "\n{phase}: {} bundles, {:.2} MB in all ({:.1} kB each on average), {} lab(s)",
            set.count,
            set.bytes as f64 / 1e6,
            set.bytes as f64 / set.count as f64 / 1e3,
            set.labs.len()
        );
        let loaded = load(set);
        for round in 0..rounds {
            // Rotate the order, so that no way always runs first (or after the same one).
            let mut order: Vec<usize> = (0..ways.len()).collect();
            order.rotate_left(round % ways.len());
            let mut line = format!("  round {round}:");
            for w in order {
                // With one lab the two stock ways are the same commands: run one.
                if set.labs.len() == 1 && matches!(ways[w], Way::Stock { parallel: false }) {
                    continue;
                }
                // What the previous way left to write back goes to disk now, not in this way's
                // time (every way writes the bundles out: extracted, or stored).
                let synced = Command::new("sync").status().unwrap();
                assert!(synced.success());
                let f = &mut results[p][w];
                let t = match &ways[w] {
                    Way::Stock { parallel } => {
                        stock_runs += 1;
                        let scratch = runs.join(format!("stock-{stock_runs}"));
                        stock(set, &signers, &scratch, *parallel)
                    }
                    Way::Coordinator { bin, mode, .. } => {
                        let serving = pilot.serve(bin, *mode);
                        let before = status_kb(serving.pid(), "VmRSS");
                        let profiler = profile(serving.pid());
                        let cpu0 = cpu_seconds(serving.pid());
                        let machine0 = machine_cpu();
                        let t = send(serving.addr, &loaded);
                        let machine1 = machine_cpu();
                        f.cpu.push(cpu_seconds(serving.pid()) - cpu0);
                        f.busy
                            .push((machine1.0 - machine0.0) / (machine1.1 - machine0.1));
                        if let Some(mut p) = profiler {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(p.id() as i32),
                                nix::sys::signal::Signal::SIGINT,
                            );
                            let _ = p.wait();
                        }
                        f.rss_before.push(before);
                        f.hwm.push(status_kb(serving.pid(), "VmHWM"));
                        serving.check(set.count);
                        t
                    }
                };
                f.seconds.push(t);
                line.push_str(&format!("  {} {t:.3} s", ways[w].name(set.labs.len())));
            }
            println!("{line}");
        }
    }

    let mib = |kb: u64| kb as f64 / 1024.0;
    println!(
        "\nP7: {rounds} round(s), medians; {labs_n} labs; the coordinator's RSS before the sends → its peak (highest of the rounds)"
    );
    for (p, (phase, set)) in phases.iter().enumerate() {
        println!(
            "\n| {phase}: {} bundles, {:.1} MB | seconds | bundles/s | MB/s | × stock at the same parallelism (rounds) | RSS before → peak, MiB | coordinator CPU per bundle | machine busy |",
            set.count,
            set.bytes as f64 / 1e6
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (w, way) in ways.iter().enumerate() {
            let f = &results[p][w];
            if f.seconds.is_empty() {
                continue;
            }
            let s = median(f.seconds.clone());
            // Each round's ratio against the stock pipeline of the same round.
            let ratio = match stock_parallel {
                Some(sp) => {
                    let r: Vec<f64> = results[p][sp]
                        .seconds
                        .iter()
                        .zip(&f.seconds)
                        .map(|(stock, this)| stock / this)
                        .collect();
                    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = r.iter().copied().fold(0.0, f64::max);
                    format!("{:.2} ({lo:.2}–{hi:.2})", median(r))
                }
                None => "—".into(),
            };
            let rss = if f.hwm.is_empty() {
                "—".to_owned()
            } else {
                format!(
                    "{:.1} → {:.1}",
                    mib(*f.rss_before.iter().max().unwrap()),
                    mib(*f.hwm.iter().max().unwrap())
                )
            };
            let (cpu, busy) = if f.cpu.is_empty() {
                ("—".to_owned(), "—".to_owned())
            } else {
                (
                    format!("{:.2} ms", median(f.cpu.clone()) * 1e3 / set.count as f64),
                    format!("{:.0} %", median(f.busy.clone()) * 100.0),
                )
            };
            println!(
                "| {} | {s:.3} | {:.1} | {:.1} | {ratio} | {rss} | {cpu} | {busy} |",
                way.name(set.labs.len()),
                set.count as f64 / s,
                set.bytes as f64 / 1e6 / s,
            );
        }
    }
    drop(pilot);
    let _ = std::fs::remove_dir_all(&runs);
}
