//! The pilot's side for the coordinator's tests: labs that seal consecutive bundles in memory, a
//! coordinator folder with its key, labs file and config, `tsagent coordinator serve` as a child,
//! a small HTTP/1.1 client that can speak from any loopback address (one per simulated lab), and an
//! independent RFC 9162 checker (written again here from the RFC, not `tsagent_bundle::tlog`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsagent_bundle::chain::{GENESIS, ReadingRecord, ReadingStatus};
use tsagent_bundle::manifest::{CustodyInfo, Hash32};
use tsagent_bundle::receipt::{HEARTBEAT_FORMAT, Heartbeat, sign_heartbeat};
use tsagent_bundle::{
    ArtefactInfo, InstrumentInfo, ReadingExport, SealInput, SealedBundle, SigningKey, seal,
};

use super::{PATIENCE, Proc, bin, tsagent};

/// The hex SHA-256 of `bytes`: a bundle's Idempotency-Key.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Hash32(Sha256::digest(bytes).into()).to_string()
}

/// A lab sealing consecutive bundles of one artefact, as the agent does, without a database.
#[derive(Clone)]
pub struct SealLab {
    pub id: String,
    pub artefact: String,
    pub key: SigningKey,
    pub bundle_seq: u64,
    pub next_seq: u64,
    pub chain: [u8; 32],
    pub prev_sums: Option<[u8; 32]>,
}

impl SealLab {
    /// A lab whose key is made at `dir/<id>`.
    pub fn new(dir: &Path, id: &str, artefact: &str) -> Self {
        let path = dir.join(format!("{id}.key"));
        if !path.exists() {
            tsagent_bundle::generate_key(&path, id).unwrap();
        }
        Self {
            id: id.into(),
            artefact: artefact.into(),
            key: tsagent_bundle::load_signing_key(&path).unwrap(),
            bundle_seq: 0,
            next_seq: 1,
            chain: GENESIS,
            prev_sums: None,
        }
    }

    /// The same lab on another artefact (same key).
    pub fn on(&self, artefact: &str) -> Self {
        Self {
            artefact: artefact.into(),
            bundle_seq: 0,
            next_seq: 1,
            chain: GENESIS,
            prev_sums: None,
            ..self.clone()
        }
    }

    /// Its line for the coordinator's labs file.
    pub fn signers_line(&self) -> String {
        tsagent_bundle::allowed_signers_line(&self.id, self.key.public_key()).unwrap()
    }

    /// `n` readings after the lab's last; `salt` changes their values (another history).
    pub fn readings(&self, n: u64, salt: f64) -> (Vec<ReadingExport>, [u8; 32]) {
        let mut chain = self.chain;
        let out = (self.next_seq..self.next_seq + n)
            .map(|seq| {
                let value = 10.0 + salt + seq as f64 * 1e-7;
                let record = ReadingRecord {
                    seq,
                    run_id: 1,
                    instrument_id: 1,
                    quantity: "voltage".into(),
                    value: Some(value),
                    status: ReadingStatus::Valid,
                    unit: "V".into(),
                    raw: format!("{value}"),
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
            lab_id: self.id.clone(),
            lab_name: format!("Lab {}", self.id),
            artefact: ArtefactInfo {
                id: self.artefact.clone(),
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

    /// The next bundle of `n` readings, advancing the lab.
    pub fn next(&mut self, n: u64) -> SealedBundle {
        let (readings, chain) = self.readings(n, 0.0);
        let sealed = seal(&self.input(self.bundle_seq + 1, readings), &self.key).unwrap();
        self.bundle_seq += 1;
        self.next_seq += n;
        self.chain = chain;
        self.prev_sums = Some(sealed.sums_sha256);
        sealed
    }

    /// What the next bundle would be with other readings (a fork), without advancing.
    pub fn other_next(&self, n: u64) -> SealedBundle {
        let (readings, _) = self.readings(n, 1.0);
        seal(&self.input(self.bundle_seq + 1, readings), &self.key).unwrap()
    }

    /// A signed heartbeat naming the lab's chain head now, as JSON.
    pub fn heartbeat(&self) -> Vec<u8> {
        let hb = Heartbeat {
            format: HEARTBEAT_FORMAT.into(),
            lab: self.id.clone(),
            artefact: self.artefact.clone(),
            seq: self.next_seq - 1,
            chain: Hash32(self.chain),
            utc: "2026-12-02T12:00:00Z".into(),
            instruments_online: 1,
            instruments: 1,
            custody: "official_window".into(),
            agent_version: "test".into(),
        };
        serde_json::to_vec(&sign_heartbeat(&self.key, &hb).unwrap()).unwrap()
    }
}

/// The coordinator's folder: its key (made by `tsagent keygen`), the labs file, the config.
pub struct Pilot {
    pub dir: tempfile::TempDir,
    /// `[coordinator]` keys added to the config, one per line.
    pub extra: String,
    /// Where the storage is, relative to the folder.
    pub storage: String,
}

/// The coordinator's id in every test.
pub const PILOT_ID: &str = "pilot";

impl Pilot {
    /// A coordinator whose labs file holds `lines`.
    pub fn new(lines: &[String]) -> Pilot {
        let dir = tempfile::tempdir().unwrap();
        tsagent()
            .args(["keygen", "--lab", PILOT_ID, "--out"])
            .arg(dir.path().join("coordinator_key"))
            .assert()
            .success();
        let mut labs = lines.join("\n");
        labs.push('\n');
        std::fs::write(dir.path().join("labs"), labs).unwrap();
        Pilot {
            dir,
            extra: String::new(),
            storage: "intake".into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The storage folder.
    pub fn storage(&self) -> PathBuf {
        self.path().join(&self.storage)
    }

    /// Writes the config (listening on a free port) and returns its path.
    pub fn config(&self) -> PathBuf {
        let path = self.path().join("coordinator.toml");
        std::fs::write(
            &path,
            format!(
                "[coordinator]\nid = \"{PILOT_ID}\"\nlisten = \"127.0.0.1:0\"\nkey = \"coordinator_key\"\nlabs = \"labs\"\n{}\n[storage]\nkind = \"local\"\npath = \"{}\"\n",
                self.extra, self.storage
            ),
        )
        .unwrap();
        path
    }

    /// The coordinator's public key line, `ssh-ed25519 AAAA… comment`.
    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.path().join("coordinator_key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// An allowed_signers file for checking the coordinator's receipts and checkpoints with
    /// `ssh-keygen -Y verify`.
    pub fn signers_file(&self) -> PathBuf {
        let path = self.path().join("coordinator_signers");
        let line = self.public_key();
        let key: Vec<&str> = line.split_whitespace().take(2).collect();
        std::fs::write(
            &path,
            format!(
                "{PILOT_ID} namespaces=\"tsagent-receipt-v1,tsagent-checkpoint-v1\" {} {}\n",
                key[0], key[1]
            ),
        )
        .unwrap();
        path
    }

    /// `tsagent coordinator serve` on the config as written now.
    pub fn serve(&self) -> Server {
        let config = self.config();
        let proc = Proc::spawn(
            Command::new(bin())
                .args(["coordinator", "serve", "--log", "warn", "--config"])
                .arg(&config),
        );
        let first = proc.line();
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        Server { proc, addr }
    }

    /// `tsagent coordinator check`: must pass; returns its output.
    pub fn check(&self) -> String {
        let out = tsagent()
            .args(["coordinator", "check", "--config"])
            .arg(self.config())
            .timeout(PATIENCE)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "coordinator check failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The bodies being received (`*.part` in the spool folder; a store may keep other files
    /// there, such as its processes' lock files).
    pub fn spooled(&self) -> Vec<PathBuf> {
        files_in(&self.storage().join("spool"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "part"))
            .collect()
    }

    /// The blobs kept, files and pack records, each checked to hash to its name. A pack is read
    /// here from its documented layout (records of `TSB1`, SHA-256, u64 LE length, bytes), not
    /// with the coordinator's code; what follows a pack's last whole record must be less than
    /// a record (a write a kill cut short), never a record whose bytes are not its name's.
    pub fn blobs(&self) -> Vec<StoredBlob> {
        let mut out = Vec::new();
        for dir in files_in(&self.storage().join("blobs")) {
            for path in files_in(&dir) {
                let bytes = std::fs::read(&path).unwrap();
                let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
                assert_eq!(sha256_hex(&bytes), name, "{}", path.display());
                out.push(StoredBlob {
                    sha256: name,
                    path,
                    offset: 0,
                    len: bytes.len(),
                });
            }
        }
        for path in files_in(&self.storage().join("packs")) {
            let bytes = std::fs::read(&path).unwrap();
            let mut at = 0;
            while bytes.len() - at >= 44 && bytes[at..at + 4] == *b"TSB1" {
                let sha = Hash32(bytes[at + 4..at + 36].try_into().unwrap()).to_string();
                let len = u64::from_le_bytes(bytes[at + 36..at + 44].try_into().unwrap()) as usize;
                let Some(body) = bytes.get(at + 44..at + 44 + len) else {
                    break;
                };
                assert_eq!(sha256_hex(body), sha, "{} at {at}", path.display());
                out.push(StoredBlob {
                    sha256: sha,
                    path: path.clone(),
                    offset: at + 44,
                    len,
                });
                at += 44 + len;
            }
            let tail = &bytes[at..];
            assert!(
                tail.len() < 44 || tail[..4] == *b"TSB1",
                "{}: {} bytes at {at} that are not a record",
                path.display(),
                tail.len()
            );
        }
        out
    }
}

/// A kept blob: its name (SHA-256) and where its bytes are.
#[derive(Debug)]
pub struct StoredBlob {
    /// Its SHA-256, hex.
    pub sha256: String,
    /// A file of its own, or a pack.
    pub path: PathBuf,
    /// Where its bytes start in `path`.
    pub offset: usize,
    /// How many.
    pub len: usize,
}

/// The entries of a folder (none if it does not exist).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `ok: N bundle(s), …` from `coordinator check`: N.
pub fn checked_bundles(check_output: &str) -> u64 {
    check_output
        .strip_prefix("ok: ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected check output {check_output:?}"))
}

/// A serving coordinator; killed when dropped.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    /// SIGKILL, and wait until it is gone.
    pub fn kill9(mut self) {
        self.proc.signal(nix::sys::signal::Signal::SIGKILL);
        self.proc.child.wait().unwrap();
    }
}

/// `127.0.0.<n>`: each simulated lab speaks from its own loopback address, as labs do from theirs.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A reply read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Parses one HTTP/1.1 response with a content-length; `None` if it is not all there.
pub fn parse_reply(bytes: &[u8]) -> Option<Reply> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = bytes.get(end + 4..end + 4 + len)?;
    reply.body = body.to_vec();
    Some(reply)
}

/// One request on a new connection from `from` (`connection: close`), read whole within
/// [`PATIENCE`]. An error when the connection is refused or cut before a whole reply.
pub async fn request(
    from: IpAddr,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let mut stream = socket.connect(to).await?;
        let mut msg = format!(
            "{method} {path} HTTP/1.1\r\nhost: {to}\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            msg.push_str(&format!("{k}: {v}\r\n"));
        }
        msg.push_str("\r\n");
        let mut bytes = msg.into_bytes();
        bytes.extend_from_slice(body);
        // A server may answer before the body is all sent (a refusal) and close: read what it
        // said either way.
        let written = stream.write_all(&bytes).await;
        let mut got = Vec::new();
        let read = stream.read_to_end(&mut got).await;
        match parse_reply(&got) {
            Some(reply) => Ok(reply),
            None => {
                written?;
                read?;
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("cut off after {} bytes of reply", got.len()),
                ))
            }
        }
    };
    match tokio::time::timeout(PATIENCE, exchange).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no reply in time",
        )),
    }
}

/// `PUT /v1/bundles/<name>` with the Idempotency-Key of `tar`.
pub async fn put_bundle(
    from: IpAddr,
    to: SocketAddr,
    name: &str,
    tar: &[u8],
) -> std::io::Result<Reply> {
    request(
        from,
        to,
        "PUT",
        &format!("/v1/bundles/{name}"),
        &[
            ("idempotency-key", sha256_hex(tar)),
            ("content-type", "application/x-tar".into()),
        ],
        tar,
    )
    .await
}

/// Runs `f` on a small runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// GET `path` from 127.0.0.1.
pub fn get(to: SocketAddr, path: &str) -> Reply {
    block_on(request(loopback(1), to, "GET", path, &[], b"")).unwrap()
}

/// Verifies `text` signed by the coordinator with stock OpenSSH, as the README shows; returns
/// ssh-keygen's combined output on success.
pub fn ssh_verify(
    pilot: &Pilot,
    namespace: &str,
    text: &str,
    signature: &str,
) -> Result<String, String> {
    let dir = tempfile::tempdir_in(pilot.path()).unwrap();
    let (t, s) = (dir.path().join("text"), dir.path().join("text.sig"));
    std::fs::write(&t, text).unwrap();
    std::fs::write(&s, signature).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(pilot.signers_file())
        .args(["-I", PILOT_ID, "-n", namespace, "-s"])
        .arg(&s)
        .stdin(std::fs::File::open(&t).unwrap())
        .output()
        .expect("ssh-keygen (openssh-client) must be installed: .ci/run installs it");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}

/// RFC 9162 §2.1, written again from the RFC for the tests: hashing, and the verification of
/// inclusion (§2.1.3.2) and consistency (§2.1.4.2) proofs. Deliberately not
/// `tsagent_bundle::tlog`, which is what is under test.
pub mod rfc9162 {
    use sha2::{Digest, Sha256};

    pub type H = [u8; 32];

    pub fn leaf(entry: &[u8]) -> H {
        Sha256::new()
            .chain_update([0u8])
            .chain_update(entry)
            .finalize()
            .into()
    }

    pub fn node(left: &H, right: &H) -> H {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }

    /// MTH over leaf hashes (§2.1.1), recursively, straight from the definition.
    pub fn root(leaves: &[H]) -> H {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    pub fn verify_inclusion(
        index: u64,
        size: u64,
        leaf_hash: H,
        path: &[H],
        root: &H,
    ) -> Result<(), String> {
        if index >= size {
            return Err(format!("leaf {index} outside a tree of {size}"));
        }
        let (mut f, mut s) = (index, size - 1);
        let mut r = leaf_hash;
        for p in path {
            if s == 0 {
                return Err("inclusion path too long".into());
            }
            if f & 1 == 1 || f == s {
                r = node(p, &r);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                r = node(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        if s != 0 {
            return Err("inclusion path too short".into());
        }
        if &r != root {
            return Err("inclusion proof does not reach the root".into());
        }
        Ok(())
    }

    pub fn verify_consistency(
        first: u64,
        second: u64,
        path: &[H],
        first_root: &H,
        second_root: &H,
    ) -> Result<(), String> {
        if first == second {
            return if path.is_empty() && first_root == second_root {
                Ok(())
            } else {
                Err("same size, different roots or a non-empty proof".into())
            };
        }
        if first == 0 || first > second || path.is_empty() {
            return Err(format!("no consistency proof from {first} to {second}"));
        }
        let mut path = path.to_vec();
        if first.is_power_of_two() {
            path.insert(0, *first_root);
        }
        let (mut f, mut s) = (first - 1, second - 1);
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let (mut fr, mut sr) = (path[0], path[0]);
        for c in &path[1..] {
            if s == 0 {
                return Err("consistency path too long".into());
            }
            if f & 1 == 1 || f == s {
                fr = node(c, &fr);
                sr = node(c, &sr);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                sr = node(&sr, c);
            }
            f >>= 1;
            s >>= 1;
        }
        if s != 0 {
            return Err("consistency path too short".into());
        }
        if &fr != first_root || &sr != second_root {
            return Err("consistency proof does not reach both roots".into());
        }
        Ok(())
    }

    /// Standard base64 with padding (the checkpoint's root line).
    pub fn base64(text: &str) -> Option<Vec<u8>> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let text = text.trim_end_matches('=');
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }

    pub fn hex(text: &str) -> Option<H> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }

    /// A C2SP checkpoint's body: (origin, size, root).
    pub fn checkpoint(text: &str) -> (String, u64, H) {
        let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        let root: H = base64(lines[2]).unwrap().try_into().unwrap();
        (lines[0].to_owned(), lines[1].parse().unwrap(), root)
    }
}

/// A receipt checked with the independent checker: its entry's exact bytes (cut from the signed
/// text, not re-serialised), the leaf's inclusion in the receipt's checkpoint.
#[derive(Debug, Clone)]
pub struct CheckedReceipt {
    pub text: String,
    pub signature: String,
    pub entry: serde_json::Value,
    /// The entry's leaf hash.
    pub leaf: rfc9162::H,
    pub log_index: u64,
    pub size: u64,
    pub root: rfc9162::H,
    pub checkpoint: String,
    pub checkpoint_signature: String,
}

/// Checks a `{receipt, signature}` reply body's inclusion proof; panics naming what fails.
pub fn check_receipt(body: &[u8]) -> CheckedReceipt {
    let signed: serde_json::Value = serde_json::from_slice(body).unwrap();
    let text = signed["receipt"].as_str().unwrap().to_owned();
    let signature = signed["signature"].as_str().unwrap().to_owned();
    let receipt: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The leaf is over the entry's bytes exactly as logged: cut them from the signed text (the
    // entry is one flat object, and ids cannot hold braces).
    let start = text.find("\"entry\":").unwrap() + "\"entry\":".len();
    let end = start + text[start..].find('}').unwrap() + 1;
    let entry_bytes = &text.as_bytes()[start..end];
    let checkpoint = receipt["checkpoint"].as_str().unwrap().to_owned();
    let (_, size, root) = rfc9162::checkpoint(&checkpoint);
    let log_index = receipt["log_index"].as_u64().unwrap();
    let path: Vec<rfc9162::H> = receipt["inclusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| rfc9162::hex(h.as_str().unwrap()).unwrap())
        .collect();
    let leaf = rfc9162::leaf(entry_bytes);
    rfc9162::verify_inclusion(log_index, size, leaf, &path, &root)
        .unwrap_or_else(|e| panic!("receipt {log_index}: {e}"));
    CheckedReceipt {
        text,
        signature,
        entry: receipt["entry"].clone(),
        leaf,
        log_index,
        size,
        root,
        checkpoint,
        checkpoint_signature: receipt["checkpoint_signature"].as_str().unwrap().to_owned(),
    }
}

/// The hashes of a proof reply.
pub fn proof_hashes(reply: &Reply) -> Vec<rfc9162::H> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| rfc9162::hex(h.as_str().unwrap()).unwrap())
        .collect()
}

/// The newest checkpoint: (text, signature, size, root).
pub fn current_checkpoint(to: SocketAddr) -> (String, String, u64, rfc9162::H) {
    let r = get(to, "/v1/log/checkpoint");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let text = v["checkpoint"].as_str().unwrap().to_owned();
    let (_, size, root) = rfc9162::checkpoint(&text);
    (
        text,
        v["signature"].as_str().unwrap().to_owned(),
        size,
        root,
    )
}

/// Polls `done` until it holds or [`PATIENCE`] runs out.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
