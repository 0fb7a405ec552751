//! Shared pieces for the integration tests: the real binary, simulators in their own processes,
//! lab folders with a config, and line-by-line output with a timeout so a hung child fails a test
//! instead of hanging it.

#![allow(dead_code)]

pub mod pilot;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Long enough for a loaded 2-core CI machine; only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("tsagent")
}

/// `tsagent` as an assert_cmd command.
pub fn tsagent() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("tsagent").unwrap()
}

/// A child process killed when dropped, with stdout and stderr read line by line on threads.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    err_lines: mpsc::Receiver<String>,
}

fn forward(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_in(lines: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no matching {what} line from the child ({e})"),
        }
    }
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        Proc {
            child,
            lines: forward(stdout),
            err_lines: forward(stderr),
        }
    }

    /// The next stdout line; panics after [`PATIENCE`] or at end of output.
    pub fn line(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => panic!("no line from the child ({e})"),
        }
    }

    /// Reads stderr lines until one satisfies `pred`; returns it. Panics after [`PATIENCE`] in
    /// all, however chatty the child.
    pub fn wait_for_err(&self, pred: impl Fn(&str) -> bool) -> String {
        wait_in(&self.err_lines, "stderr", pred)
    }

    /// Reads lines until one satisfies `pred`; returns it. Panics after [`PATIENCE`] in all.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        wait_in(&self.lines, "stdout", pred)
    }

    /// Every remaining stdout line (after the child exits).
    pub fn rest(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            out.push(line);
        }
        out
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).unwrap();
    }

    /// Waits for exit; returns the status and the stderr lines not yet read.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        while let Ok(line) = self.err_lines.recv_timeout(PATIENCE) {
            err.push_str(&line);
            err.push('\n');
        }
        (status, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tsagent sim --pty`; returns the process and the device path.
pub fn sim_pty(args: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(Command::new(bin()).arg("sim").arg("--pty").args(args));
    let first = p.line();
    let path = first
        .strip_prefix("pty ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let path = path.to_owned();
    (p, path)
}

/// `tsagent sim --tcp 127.0.0.1:0`; returns the process and `host:port`.
pub fn sim_tcp(args: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(
        Command::new(bin())
            .args(["sim", "--tcp", "127.0.0.1:0"])
            .args(args),
    );
    let first = p.line();
    let addr = first
        .strip_prefix("tcp ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let addr = addr.to_owned();
    (p, addr)
}

/// `tsagent run` on `config`, logging at info on stderr.
pub fn daemon(config: &Path) -> Proc {
    Proc::spawn(
        Command::new(bin())
            .args(["run", "--log", "info", "--config"])
            .arg(config),
    )
}

/// A lab folder with a config file for one DMM and one sequence `s`.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub resource: String,
    pub count: u32,
    pub interval: String,
    pub every: Option<String>,
    pub timeout: String,
    pub extra_instrument: String,
    /// The instrument's driver profile; `None` leaves the default (generic-scpi-dmm).
    pub driver: Option<String>,
    /// Extra keys of the read step's table, e.g. `op = "read_buffer", params = { count = "5" }`.
    pub read_extra: String,
}

impl Lab {
    pub fn new(resource: &str) -> Lab {
        Lab {
            dir: tempfile::tempdir().unwrap(),
            resource: resource.to_owned(),
            count: 10,
            interval: "0s".into(),
            every: None,
            timeout: "2s".into(),
            extra_instrument: String::new(),
            driver: None,
            read_extra: String::new(),
        }
    }

    /// The resource for a `host:port` TCP address.
    pub fn tcp(addr: &str) -> Lab {
        let (host, port) = addr.rsplit_once(':').unwrap();
        Lab::new(&format!("TCPIP::{host}::{port}::SOCKET"))
    }

    /// The built-in simulator, started by the agent itself on a pseudo-terminal.
    pub fn simulated() -> Lab {
        Lab::new("SIM::PTY::INSTR")
    }

    /// The resource for a serial device path.
    pub fn serial(path: &str) -> Lab {
        Lab::new(&format!("ASRL{path}::INSTR"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("lab.db")
    }

    pub fn key(&self) -> PathBuf {
        self.path().join("keys/lab")
    }

    pub fn bundles(&self) -> PathBuf {
        self.path().join("bundles")
    }

    /// Writes `lab.toml` and returns its path.
    pub fn config(&self) -> PathBuf {
        let every = self
            .every
            .as_ref()
            .map(|e| format!("every = \"{e}\""))
            .unwrap_or_default();
        let text = format!(
            r#"[lab]
id = "TEST-LAB"
name = "Test lab"

[artefact]
id = "Z1"
kind = "zener"
serial = "S1"
nominal = 10.0
unit = "V"

[storage]
db = "lab.db"
bundles = "bundles"

[signing]
key = "keys/lab"

[simulator]
offset = 2e-5
noise = 1e-7
seed = 7

[[instrument]]
name = "dmm"
resource = "{resource}"
timeout = "{timeout}"
{driver}
{extra}

[[sequence]]
name = "s"
{every}

[[sequence.step]]
identify = {{ instrument = "dmm" }}

[[sequence.step]]
configure = {{ instrument = "dmm", params = {{ range = "10" }} }}

[[sequence.step]]
drain_errors = {{ instrument = "dmm" }}

[[sequence.step]]
read = {{ instrument = "dmm", count = {count}, interval = "{interval}", quantity = "voltage", unit = "V"{read_extra} }}
"#,
            resource = self.resource,
            timeout = self.timeout,
            extra = self.extra_instrument,
            driver = self
                .driver
                .as_ref()
                .map(|d| format!("driver = \"{d}\""))
                .unwrap_or_default(),
            read_extra = if self.read_extra.is_empty() {
                String::new()
            } else {
                format!(", {}", self.read_extra)
            },
            count = self.count,
            interval = self.interval,
        );
        let path = self.path().join("lab.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn store(&self) -> tsagent::store::Store {
        tsagent::store::Store::open_existing(&self.db()).unwrap()
    }

    /// Every reading in the log, in order.
    pub fn readings(&self) -> Vec<tsagent::store::ReadingRow> {
        let mut rows = Vec::new();
        self.store()
            .visit_readings(None, |r| {
                rows.push(r);
                Ok::<_, tsagent::store::StoreError>(())
            })
            .unwrap();
        rows
    }

    /// `tsagent db check` must pass.
    pub fn assert_sound(&self) {
        tsagent()
            .args(["db", "check", "--db"])
            .arg(self.db())
            .assert()
            .success();
    }
}

/// Runs `tsagent measure` on `config`, sequence `s`.
pub fn measure(config: &Path) -> assert_cmd::assert::Assert {
    tsagent()
        .args([
            "measure",
            "--sequence",
            "s",
            "--operator",
            "tester",
            "--config",
        ])
        .arg(config)
        .timeout(PATIENCE)
        .assert()
}

/// A session named `dmm` over TCP to a simulator serving `spec` on this machine, with `timeout`
/// for each reply; the server lives as long as it is kept.
pub async fn sim_session(
    spec: tsagent_sim::SimSpec,
    timeout: Duration,
) -> (tsagent_sim::TcpServer, tsagent::session::Session) {
    use tsagent::transport::{Link, LinkSettings, Resource, SerialSettings};
    let server = tsagent_sim::TcpServer::start_spec(spec, "127.0.0.1:0")
        .await
        .unwrap();
    let resource = Resource::Tcp {
        host: "127.0.0.1".into(),
        port: server.local_addr().port(),
    };
    let settings = LinkSettings {
        timeout,
        ..LinkSettings::default()
    };
    let link = Link::open(&resource, &SerialSettings::default(), settings)
        .await
        .unwrap();
    (server, tsagent::session::Session::new("dmm", link))
}
