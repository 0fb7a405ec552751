//! The coordinator through the real binary (`tsagent coordinator serve`) and real clients: curl,
//! raw sockets, ssh-keygen, and a small HTTP client speaking from one loopback address per
//! simulated lab. Receipts and proofs are checked by `common::pilot::rfc9162`, written again from
//! the RFC, never by the code under test. Faults: kill -9 during uploads, a full disk, the
//! coordinator down for a while; and load.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::pilot::*;
use crate::common::*;

/// `curl` PUTs `file` as `name`; returns (status, body, headers).
fn curl_put(
    to: SocketAddr,
    name: &str,
    file: &Path,
    key: Option<&str>,
    extra: &[&str],
) -> (u16, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (body, head) = (dir.path().join("body"), dir.path().join("head"));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&head)
        .args(["-w", "%{http_code}", "-T"])
        .arg(file);
    if let Some(key) = key {
        cmd.args(["-H", &format!("Idempotency-Key: {key}")]);
    }
    cmd.args(extra)
        .arg(format!("http://{to}/v1/bundles/{name}"));
    let out = cmd
        .output()
        .expect("curl must be installed: .ci/run installs it");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout).parse().unwrap();
    (
        status,
        std::fs::read(&body).unwrap_or_default(),
        std::fs::read_to_string(&head).unwrap_or_default(),
    )
}

/// A refusal: `status`, JSON `{"error": …}` containing `says`.
fn assert_refused(got: (u16, Vec<u8>, String), status: u16, says: &str) {
    let (code, body, head) = got;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(code, status, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let error = v["error"].as_str().unwrap_or_else(|| panic!("{text}"));
    assert!(error.contains(says), "expected {says:?} in {error:?}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn curl_sends_a_demo_bundle_201_then_200_and_each_bad_bundle_gets_its_status() {
    let work = tempfile::tempdir().unwrap();
    let demo = work.path().join("demo");
    tsagent()
        .arg("demo")
        .arg("--dir")
        .arg(&demo)
        .args(["--readings", "3"])
        .timeout(PATIENCE)
        .assert()
        .success();
    let tar_path = files_in(&demo.join("bundles"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "tar"))
        .unwrap();
    let name = tar_path.file_name().unwrap().to_str().unwrap().to_owned();
    let tar = std::fs::read(&tar_path).unwrap();
    let sha = sha256_hex(&tar);

    let mut nim = SealLab::new(work.path(), "NIM", "Z1");
    let ptb = SealLab::new(work.path(), "PTB", "Z1");
    let mut kriss = SealLab::new(work.path(), "KRISS", "Z1");
    let demo_signers = std::fs::read_to_string(demo.join("allowed_signers")).unwrap();
    let mut pilot = Pilot::new(&[
        demo_signers.trim().to_owned(),
        nim.signers_line(),
        ptb.signers_line(),
    ]);
    let cap = tar.len() as u64 + 8192;
    pilot.extra = format!("max_bundle_bytes = {cap}\n");
    let server = pilot.serve();
    let to = server.addr;

    // The demo bundle: 201 with a receipt, then the same again: 200 and the same bytes.
    let (code, first, head) = curl_put(to, &name, &tar_path, Some(&sha), &[]);
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&first));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let (code, again, _) = curl_put(to, &name, &tar_path, Some(&sha), &[]);
    assert_eq!(code, 200);
    assert_eq!(again, first, "a re-send gets the very same receipt");

    // The receipt with stock OpenSSH: the `receipt` string to one file, `signature` to another.
    let r = check_receipt(&first);
    let said = ssh_verify(&pilot, "tsagent-receipt-v1", &r.text, &r.signature).unwrap();
    assert!(
        said.contains("Good \"tsagent-receipt-v1\" signature for pilot"),
        "{said}"
    );
    ssh_verify(
        &pilot,
        "tsagent-checkpoint-v1",
        &r.checkpoint,
        &r.checkpoint_signature,
    )
    .unwrap();
    // A receipt is not a checkpoint: the namespace binds each signature to its role.
    assert!(ssh_verify(&pilot, "tsagent-checkpoint-v1", &r.text, &r.signature).is_err());
    let mut tampered = r.text.clone();
    tampered = tampered.replace("\"bundle_seq\":1", "\"bundle_seq\":2");
    assert!(ssh_verify(&pilot, "tsagent-receipt-v1", &tampered, &r.signature).is_err());
    // And as the README shows it, with jq and ssh-keygen in a shell.
    let readme = readme_blocks("sh")
        .into_iter()
        .find(|b| b.contains("-n tsagent-receipt-v1"))
        .unwrap()
        .replace("pilot-NIM", PILOT_ID);
    let shell = tempfile::tempdir().unwrap();
    std::fs::write(shell.path().join("receipt.json"), &first).unwrap();
    std::fs::copy(
        pilot.path().join("coordinator_key.pub"),
        shell.path().join("coordinator_key.pub"),
    )
    .unwrap();
    let out = Command::new("sh")
        .args(["-ec", &readme])
        .current_dir(shell.path())
        .output()
        .expect("sh");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{readme}\n{said}");
    assert!(
        said.contains("Good \"tsagent-receipt-v1\" signature for pilot"),
        "{said}"
    );
    assert_eq!(r.entry["kind"], "bundle");
    assert_eq!(r.entry["lab"], "DEMO-LAB");
    assert_eq!(r.entry["bundle"], name.as_str());
    assert_eq!(r.entry["sha256"], sha.as_str());
    assert_eq!((r.log_index, r.size), (0, 1));

    // Refusals, each with its status and a JSON reason.
    let b1 = nim.next(3);
    let mut flipped = b1.tar.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x20;
    let f = write(work.path(), "flipped.tar", &flipped);
    assert_refused(
        curl_put(to, &b1.file_name, &f, Some(&sha256_hex(&flipped)), &[]),
        422,
        "",
    );
    // A lab the coordinator does not know.
    let k = kriss.next(1);
    let kf = write(work.path(), "kriss.tar", &k.tar);
    assert_refused(
        curl_put(to, &k.file_name, &kf, Some(&sha256_hex(&k.tar)), &[]),
        403,
        "",
    );
    // A bundle in NIM's name signed with PTB's key (a lab the coordinator knows, not NIM).
    let mut impostor = ptb.clone();
    impostor.id = "NIM".into();
    let i = impostor.next(1);
    let i_f = write(work.path(), "impostor.tar", &i.tar);
    assert_refused(
        curl_put(to, &i.file_name, &i_f, Some(&sha256_hex(&i.tar)), &[]),
        403,
        "",
    );
    // Wrong names: the bundle inside is another one; not a bundle name at all.
    let b1f = write(work.path(), "b1.tar", &b1.tar);
    let b1sha = sha256_hex(&b1.tar);
    assert_refused(
        curl_put(to, "NIM-Z1-000002.tar", &b1f, Some(&b1sha), &[]),
        422,
        "sent as `NIM-Z1-000002.tar`",
    );
    assert_refused(
        curl_put(to, "NIM-Z1.tar", &b1f, Some(&b1sha), &[]),
        422,
        "not a bundle name",
    );
    // The demo's bytes under another name.
    assert_refused(
        curl_put(
            to,
            "DEMO-LAB-ZENER-10V-000002.tar",
            &tar_path,
            Some(&sha),
            &[],
        ),
        422,
        "accepted as",
    );
    // The Idempotency-Key: missing, or not the body's hash.
    assert_refused(curl_put(to, &b1.file_name, &b1f, None, &[]), 400, "");
    assert_refused(
        curl_put(to, &b1.file_name, &b1f, Some(&sha), &[]),
        422,
        "Idempotency-Key",
    );
    // Over the cap: refused on the declared length before any byte is read, and when streamed
    // without one (chunked), as soon as the cap is passed.
    let big = write(work.path(), "big.tar", &vec![7u8; cap as usize + 1]);
    let big_sha = sha256_hex(&vec![7u8; cap as usize + 1]);
    assert_refused(
        curl_put(to, "NIM-Z1-000001.tar", &big, Some(&big_sha), &[]),
        413,
        "over the cap",
    );
    let streamed = block_on(chunked_put(to, "NIM-Z1-000001.tar", cap as usize + 1));
    assert_eq!(streamed.status, 413, "{}", streamed.text());
    assert!(streamed.text().contains("over the cap"));

    // Nothing of any refusal was kept; `check` and `status` beside the running server.
    assert!(pilot.spooled().is_empty(), "{:?}", pilot.spooled());
    assert_eq!(pilot.blobs().len(), 1);
    assert!(files_in(&pilot.storage().join("quarantine")).is_empty());
    assert_eq!(checked_bundles(&pilot.check()), 1);

    // `status`, `check` and `export` run beside a server receiving a body must leave it alone.
    // Sent chunked, without a length: such a body is spooled to a file (one of a small declared
    // length is received in memory).
    let mut slow = TcpStream::connect(to).unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        slow,
        "PUT /v1/bundles/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nidempotency-key: {b1sha}\r\ntransfer-encoding: chunked\r\n\r\n",
        b1.file_name,
    )
    .unwrap();
    let half = b1.tar.len() / 2;
    write!(slow, "{half:x}\r\n").unwrap();
    slow.write_all(&b1.tar[..half]).unwrap();
    slow.write_all(b"\r\n").unwrap();
    wait_until("the half body spooled", || !pilot.spooled().is_empty());
    let status = tsagent()
        .args(["coordinator", "status", "--config"])
        .arg(pilot.config())
        .assert()
        .success();
    let status = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    assert!(
        status.starts_with("DEMO-LAB ZENER-10V: 1 bundle(s)"),
        "{status}"
    );
    pilot.check();
    assert!(
        !pilot.spooled().is_empty(),
        "the body being received is gone"
    );
    write!(slow, "{:x}\r\n", b1.tar.len() - half).unwrap();
    slow.write_all(&b1.tar[half..]).unwrap();
    slow.write_all(b"\r\n0\r\n\r\n").unwrap();
    let mut got = Vec::new();
    slow.read_to_end(&mut got).unwrap();
    let reply = parse_reply(&got).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    let r2 = check_receipt(&reply.body);
    assert_eq!((r2.log_index, r2.size), (1, 2));

    // The proofs the log serves, checked independently: NIM's entry in the tree of 2, and the
    // tree of 1 (the demo receipt's) inside it.
    let (_, _, size, root) = current_checkpoint(to);
    assert_eq!((size, root), (2, r2.root));
    let path = proof_hashes(&get(to, "/v1/log/proof?index=0&size=2"));
    rfc9162::verify_inclusion(0, 2, r.leaf, &path, &root).unwrap();
    let path = proof_hashes(&get(to, "/v1/log/proof?from=1&size=2"));
    rfc9162::verify_consistency(1, 2, &path, &r.root, &root).unwrap();
    for bad in ["size=3&index=0", "from=1", "index=x&size=1"] {
        let reply = get(to, &format!("/v1/log/proof?{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        assert!(reply.json()["error"].is_string());
    }
}

/// PUT `n` bytes as one chunked stream (no length declared), with a made-up key.
async fn chunked_put(to: SocketAddr, name: &str, n: usize) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
    let head = format!(
        "PUT /v1/bundles/{name} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nidempotency-key: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        "0".repeat(64)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut sent = 0;
    while sent < n {
        let len = (n - sent).min(4096);
        let chunk = format!("{len:x}\r\n{}\r\n", "x".repeat(len));
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        sent += len;
    }
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await;
    parse_reply(&got)
        .unwrap_or_else(|| panic!("no whole reply: {:?}", String::from_utf8_lossy(&got)))
}

/// A raw connection from `from` with reads that give up after `PATIENCE`.
fn raw(from: u8, to: SocketAddr) -> TcpStream {
    let socket = block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(loopback(from), 0)).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    });
    socket.set_nonblocking(false).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket
}

/// Reads until the server closes the connection (or resets it); what it said before.
fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server neither answered nor closed ({e})"),
        }
    }
}

/// Sends `bytes` one at a time, `every` apart, until the server answers or closes; returns what
/// it said and when (from the first byte).
fn trickle(s: &mut TcpStream, bytes: &[u8], every: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    // The pause between bytes is the read timeout: the client waits on the server's reply or
    // closure, and sends its next byte only when neither came.
    s.set_read_timeout(Some(every)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for b in bytes.iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        assert!(start.elapsed() < PATIENCE, "never cut off");
    }
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    got.extend(until_closed(s));
    (got, start.elapsed())
}

#[test]
fn slow_stalled_and_silent_clients_are_cut_off_by_the_time_limits_and_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    let mut lab = SealLab::new(work.path(), "NIM", "Z1");
    let mut pilot = Pilot::new(&[lab.signers_line()]);
    // Wide gaps between the limits, so a busy machine cannot make one pass for another.
    pilot.extra = "header_timeout = \"1s\"\nbody_timeout = \"4s\"\nidle_timeout = \"2s\"\n".into();
    let server = pilot.serve();
    let to = server.addr;
    let b = lab.next(2);
    let head = format!(
        "PUT /v1/bundles/{} HTTP/1.1\r\nhost: x\r\nidempotency-key: {}\r\ncontent-length: {}\r\n\r\n",
        b.file_name,
        sha256_hex(&b.tar),
        b.tar.len()
    );

    std::thread::scope(|scope| {
        // Headers a byte at a time, each well inside any idle limit: the header deadline (1 s)
        // cuts them off as a whole.
        let slow_head = scope.spawn(|| {
            let mut s = raw(2, to);
            let (said, took) = trickle(&mut s, head.as_bytes(), Duration::from_millis(200));
            assert!(took >= Duration::from_millis(900), "cut after {took:?}");
            // hyper closes without a word (or, in some version, a 408).
            assert!(
                said.is_empty() || said.starts_with(b"HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&said)
            );
        });
        // Connected, then silent: the same deadline frees the connection.
        let silent = scope.spawn(|| {
            let mut s = raw(3, to);
            let start = Instant::now();
            until_closed(&mut s);
            assert!(start.elapsed() >= Duration::from_millis(900));
        });
        // The body a byte every 250 ms: never idle for 2 s, cut by the 4 s body deadline.
        let slow_body = scope.spawn(|| {
            let mut s = raw(4, to);
            s.write_all(head.as_bytes()).unwrap();
            let (said, took) = trickle(&mut s, &b.tar, Duration::from_millis(250));
            let reply = parse_reply(&said).unwrap();
            assert_eq!(reply.status, 408, "{}", reply.text());
            assert!(reply.text().contains("the body took too long"));
            assert!(took >= Duration::from_millis(3900), "cut after {took:?}");
        });
        // Half the body, then nothing: the 2 s idle limit, well before the body deadline.
        let stalled = scope.spawn(|| {
            let mut s = raw(5, to);
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&b.tar[..b.tar.len() / 2]).unwrap();
            let start = Instant::now();
            let reply = parse_reply(&until_closed(&mut s)).unwrap();
            assert_eq!(reply.status, 408, "{}", reply.text());
            assert!(reply.text().contains("the body stopped arriving"));
            assert!(start.elapsed() >= Duration::from_millis(1900));
        });
        // Half the body, then the client shuts its side: the body was cut off.
        let gone = scope.spawn(|| {
            let mut s = raw(6, to);
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&b.tar[..b.tar.len() / 2]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let reply = parse_reply(&until_closed(&mut s)).unwrap();
            assert_eq!(reply.status, 400, "{}", reply.text());
            assert!(reply.text().contains("cut off"));
        });
        // Half the body, then the client vanishes altogether.
        let vanished = scope.spawn(|| {
            let mut s = raw(7, to);
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&b.tar[..b.tar.len() / 2]).unwrap();
        });
        for t in [slow_head, silent, slow_body, stalled, gone, vanished] {
            t.join().unwrap();
        }
    });
    // Nothing of any of them stays, and the service goes on.
    wait_until("the spool emptied", || pilot.spooled().is_empty());
    assert!(pilot.blobs().is_empty());
    let reply = block_on(put_bundle(loopback(8), to, &b.file_name, &b.tar)).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(checked_bundles(&pilot.check()), 1);
}

#[test]
fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let mut pilot = Pilot::new(&[]);
    pilot.extra = "max_connections_per_client = 3\nheader_timeout = \"60s\"\n".into();
    let server = pilot.serve();
    let to = server.addr;
    let ask = |s: &mut TcpStream| -> Option<Reply> {
        s.write_all(b"GET /v1/log/checkpoint HTTP/1.1\r\nhost: x\r\n\r\n")
            .ok()?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = parse_reply(&got) {
                return Some(r);
            }
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return parse_reply(&got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    // Three kept-alive connections from 127.0.0.2, each answered (so each is held).
    let mut held: Vec<TcpStream> = (0..3).map(|_| raw(2, to)).collect();
    for s in &mut held {
        let r = ask(s).unwrap();
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(r.text().contains("the log is empty"));
    }
    // A fourth from the same address: 429, and closed.
    let mut fourth = raw(2, to);
    let said = until_closed(&mut fourth);
    let r = parse_reply(&said).unwrap();
    assert_eq!(r.status, 429);
    // Another address is served meanwhile.
    let mut other = raw(3, to);
    assert_eq!(ask(&mut other).unwrap().status, 404);
    // One of the three closes: its share comes back.
    drop(held.pop());
    wait_until("the freed connection reused", || {
        let mut s = raw(2, to);
        ask(&mut s).is_some_and(|r| r.status == 404)
    });
    // The held ones are still served.
    for s in &mut held {
        assert_eq!(ask(s).unwrap().status, 404);
    }
}

/// xorshift64*: the fault test's random moments, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("TSAGENT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random moments from seed {seed} (TSAGENT_TEST_SEED={seed} repeats them)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What one simulated lab got back: a receipt per bundle, in order.
type Receipts = Vec<(u16, Vec<u8>)>;

/// A lab sending its bundles in order from its own address to whatever address the coordinator
/// has now, sending each again until it gets a receipt: a refused connection, a connection cut
/// mid-request or mid-reply, 429, 503 and 507 all mean "again". Any other reply fails the test.
async fn lab_sends(
    from: u8,
    bundles: Vec<tsagent_bundle::SealedBundle>,
    addr: Arc<Mutex<SocketAddr>>,
    accepted: Arc<AtomicU64>,
) -> Receipts {
    let deadline = Instant::now() + 3 * PATIENCE;
    let mut receipts = Vec::new();
    for b in bundles {
        loop {
            assert!(Instant::now() < deadline, "{} never accepted", b.file_name);
            let to = *addr.lock().unwrap();
            match put_bundle(loopback(from), to, &b.file_name, &b.tar).await {
                Ok(r) if r.status == 201 || r.status == 200 => {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    receipts.push((r.status, r.body));
                    break;
                }
                Ok(r) if matches!(r.status, 429 | 503 | 507) => {}
                Ok(r) => panic!("{}: {} {}", b.file_name, r.status, r.text()),
                Err(_) => {}
            }
            // The lab's back-off: short, as the test wants many attempts across the kills.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    receipts
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every lab's receipts: each verifies (signature with the coordinator's key, inclusion with the
/// independent checker) and names its bundle; the log holds exactly these entries, once each:
/// the root recomputed from them alone is the newest checkpoint's, and every receipt's
/// checkpoint is consistent with it (proofs from the server, checked independently).
fn assert_every_receipt_and_the_log(
    pilot: &Pilot,
    to: SocketAddr,
    sent: &[Vec<tsagent_bundle::SealedBundle>],
    got: &[Receipts],
) {
    let key = tsagent_bundle::load_signing_key(&pilot.path().join("coordinator_key")).unwrap();
    let mut leaves = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    for (bundles, receipts) in sent.iter().zip(got) {
        assert_eq!(bundles.len(), receipts.len());
        for (b, (_, body)) in bundles.iter().zip(receipts) {
            let r = check_receipt(body);
            tsagent_bundle::receipt::verify_text(
                key.public_key(),
                tsagent_bundle::receipt::RECEIPT_NAMESPACE,
                "receipt",
                r.text.as_bytes(),
                &r.signature,
            )
            .unwrap();
            assert_eq!(r.entry["bundle"], b.file_name.as_str());
            assert_eq!(r.entry["sha256"], sha256_hex(&b.tar).as_str());
            assert!(
                leaves.insert(r.log_index, r.leaf).is_none(),
                "log index {} given twice",
                r.log_index
            );
            sizes.insert(r.size, r.root);
        }
    }
    let (_, _, size, root) = current_checkpoint(to);
    assert_eq!(
        size,
        leaves.len() as u64,
        "the log holds one entry per bundle"
    );
    let leaves: Vec<_> = leaves.into_values().collect();
    assert_eq!(rfc9162::root(&leaves), root);
    for (m, old_root) in sizes {
        let path = proof_hashes(&get(to, &format!("/v1/log/proof?from={m}&size={size}")));
        rfc9162::verify_consistency(m, size, &path, &old_root, &root)
            .unwrap_or_else(|e| panic!("{m} → {size}: {e}"));
    }
    assert_eq!(checked_bundles(&pilot.check()), size);
}

#[test]
fn kill_9_during_uploads_twenty_times_keeps_index_blobs_and_log_whole_and_every_retry_completes() {
    const LABS: usize = 5;
    const BUNDLES: usize = 60;
    const KILLS: usize = 20;
    let mut rng = Rng::seeded();
    let work = tempfile::tempdir().unwrap();
    let mut labs: Vec<SealLab> = (0..LABS)
        .map(|i| SealLab::new(work.path(), &format!("LAB{i}"), "Z1"))
        .collect();
    let pilot = Pilot::new(&labs.iter().map(SealLab::signers_line).collect::<Vec<_>>());
    let sent: Vec<Vec<_>> = labs
        .iter_mut()
        .map(|l| (0..BUNDLES).map(|_| l.next(1)).collect())
        .collect();

    let mut server = pilot.serve();
    let addr = Arc::new(Mutex::new(server.addr));
    let accepted = Arc::new(AtomicU64::new(0));
    let rt = runtime();
    let tasks: Vec<_> = sent
        .iter()
        .enumerate()
        .map(|(i, bundles)| {
            rt.spawn(lab_sends(
                10 + i as u8,
                bundles.clone(),
                addr.clone(),
                accepted.clone(),
            ))
        })
        .collect();

    let mut stored_before = 0;
    for kill in 0..KILLS {
        // A random moment while uploads are going on: after 1 to 3 more receipts, then 0–20 ms.
        let target = accepted.load(Ordering::SeqCst) + 1 + rng.below(3);
        wait_until("uploads to go on", || {
            accepted.load(Ordering::SeqCst) >= target
        });
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        server.kill9();
        // Every receipt a lab holds was sent before the kill, so stored before it.
        let acknowledged = accepted.load(Ordering::SeqCst);
        let spooled = pilot.spooled().len();
        let checked = pilot.check();
        let stored = checked_bundles(&checked);
        eprintln!(
            "kill {kill}: {acknowledged} acknowledged, {spooled} body(ies) half-received; {}",
            checked.trim().replace('\n', "; ")
        );
        assert!(
            stored >= acknowledged && stored >= stored_before,
            "kill {kill}: {stored} stored, {acknowledged} acknowledged, {stored_before} before"
        );
        assert!(
            stored < (LABS * BUNDLES) as u64,
            "kill {kill}: the uploads were over before it"
        );
        stored_before = stored;
        server = pilot.serve();
        *addr.lock().unwrap() = server.addr;
    }
    let got: Vec<Receipts> = rt.block_on(async {
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got
    });
    let to = server.addr;
    assert_every_receipt_and_the_log(&pilot, to, &sent, &got);
    // Exactly once: every bundle sent again gets 200 and the very receipt its lab holds.
    rt.block_on(async {
        for (i, (bundles, receipts)) in sent.iter().zip(&got).enumerate() {
            for (b, (_, body)) in bundles.iter().zip(receipts) {
                let r = put_bundle(loopback(10 + i as u8), to, &b.file_name, &b.tar)
                    .await
                    .unwrap();
                assert_eq!((r.status, &r.body), (200, body), "{}", b.file_name);
            }
        }
    });
    // Orphans (kept, then killed before the index committed) may exist; each is a whole bundle
    // under its own hash.
    // Each is checked to hash to its name as it is read.
    pilot.blobs();
}

/// A small tmpfs mounted on a folder for the test's life: a coordinator disk that can be filled.
/// Needs root (CI runs as root) or passwordless sudo; without either the test fails saying so.
struct SmallDisk {
    dir: std::path::PathBuf,
    sudo: bool,
}

impl SmallDisk {
    fn mount(dir: &Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let sudo = !nix::unistd::geteuid().is_root();
        if sudo {
            let ok = Command::new("sudo")
                .args(["-n", "true"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "the disk-full test mounts a small tmpfs for the coordinator's storage: run it as root (as CI does) or with passwordless sudo"
            );
        }
        let options = format!(
            "size={bytes},mode=0700,uid={},gid={}",
            nix::unistd::getuid(),
            nix::unistd::getgid()
        );
        let mut cmd = Command::new(if sudo { "sudo" } else { "mount" });
        if sudo {
            cmd.args(["-n", "mount"]);
        }
        let out = cmd
            .args(["-t", "tmpfs", "-o", &options, "tsagent-test"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (the test needs CAP_SYS_ADMIN: root, or sudo): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_owned(),
            sudo,
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let mut cmd = Command::new(if self.sudo { "sudo" } else { "umount" });
        if self.sudo {
            cmd.args(["-n", "umount"]);
        }
        // Lazy: a process still holding a file there must not leave the mount behind.
        let _ = cmd.arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system `path` is on with `path`; returns the file's size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match f.write(&block) {
            Ok(n) if n > 0 => len += n as u64,
            Ok(_) => break,
            Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    f.sync_all().ok();
    len
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

#[test]
fn a_full_disk_gets_507_and_nothing_is_half_written() {
    let work = tempfile::tempdir().unwrap();
    let mut lab = SealLab::new(work.path(), "NIM", "Z1");
    let pilot = Pilot::new(&[lab.signers_line()]);
    let _disk = SmallDisk::mount(&pilot.storage(), 4 << 20);
    let server = pilot.serve();
    let to = server.addr;
    let send = |b: &tsagent_bundle::SealedBundle| {
        block_on(put_bundle(loopback(2), to, &b.file_name, &b.tar)).unwrap()
    };
    for _ in 0..2 {
        assert_eq!(send(&lab.next(20)).status, 201);
    }

    // The disk full but for `free` pages, from none up: each bundle is either stored whole (201)
    // or refused with 507 and nothing of it kept, wherever the space ran out (the pack, the
    // index's log). A bundle kept in the pack before the index ran out is not appended again
    // when it is sent again: retries do not eat the space that comes back.
    let filler = pilot.storage().join("filler");
    let full = fill(&filler);
    let mut pending = lab.next(20);
    let mut stored = 2;
    let mut outcomes = Vec::new();
    for free in 0..48u64 {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap()
            .set_len(full.saturating_sub(free * 4096))
            .unwrap();
        let r = send(&pending);
        outcomes.push((free, r.status));
        match r.status {
            507 => {
                assert!(r.json()["error"].as_str().unwrap().contains("disk is full"));
            }
            201 => {
                stored += 1;
                check_receipt(&r.body);
                pending = lab.next(20);
            }
            other => panic!("{other} with {free} page(s) free: {}", r.text()),
        }
        assert!(pilot.spooled().is_empty(), "a refused body stayed");
        assert_eq!(checked_bundles(&pilot.check()), stored, "{outcomes:?}");
    }
    eprintln!("(pages free, status): {outcomes:?}");
    assert_eq!(outcomes[0].1, 507, "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.1 == 201), "{outcomes:?}");

    // Space again: the bundle refused last goes in, and the log is whole.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(send(&pending).status, 201);
    let checked = pilot.check();
    assert_eq!(checked_bundles(&checked), stored + 1);
    // Each is checked to hash to its name as it is read.
    pilot.blobs();
    // Some of the 507s came from the index's own writes (after the spool had fitted), not only
    // from the spool.
    server.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, err) = server.proc.finish();
    assert!(err.contains("database or disk is full"), "{err}");
}

#[test]
fn a_coordinator_down_for_a_while_takes_plain_resends_once_when_back() {
    let work = tempfile::tempdir().unwrap();
    let mut lab = SealLab::new(work.path(), "NIM", "Z1");
    let pilot = Pilot::new(&[lab.signers_line()]);
    let bundles: Vec<_> = (0..5).map(|_| lab.next(3)).collect();
    let send = |to: SocketAddr, b: &tsagent_bundle::SealedBundle| {
        block_on(put_bundle(loopback(2), to, &b.file_name, &b.tar))
    };
    let server = pilot.serve();
    let first = server.addr;
    let mut receipts: Vec<Vec<u8>> = Vec::new();
    for b in &bundles[..3] {
        let r = send(first, b).unwrap();
        assert_eq!(r.status, 201);
        receipts.push(r.body);
    }
    let before = check_receipt(&receipts[2]);

    // Stopped; the lab's sends fail (bundle 3 again: it never saw that reply, say; 4 and 5).
    server.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, _) = server.proc.finish();
    assert!(status.success());
    for b in &bundles[2..] {
        assert!(send(first, b).is_err(), "nothing should answer at {first}");
    }

    // Back (on whatever port): the same sends again, plainly.
    let server = pilot.serve();
    let to = server.addr;
    let r = send(to, &bundles[2]).unwrap();
    assert_eq!((r.status, &r.body), (200, &receipts[2]));
    for b in &bundles[3..] {
        let r = send(to, b).unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        receipts.push(r.body);
    }
    let r = send(to, &bundles[4]).unwrap();
    assert_eq!((r.status, &r.body), (200, &receipts[4]));

    // Nothing lost or doubled: five entries, and the log before the stop lies inside the one after.
    let after = check_receipt(&receipts[4]);
    assert_eq!((after.log_index, after.size), (4, 5));
    let path = proof_hashes(&get(to, "/v1/log/proof?from=3&size=5"));
    rfc9162::verify_consistency(3, 5, &path, &before.root, &after.root).unwrap();
    assert_eq!(checked_bundles(&pilot.check()), 5);
}

#[test]
fn load_twenty_labs_of_fifty_bundles_at_once_each_accepted_once_and_the_log_consistent() {
    const LABS: usize = 20;
    const BUNDLES: usize = 50;
    let work = tempfile::tempdir().unwrap();
    let mut labs: Vec<SealLab> = (0..LABS)
        .map(|i| SealLab::new(work.path(), &format!("LAB{i:02}"), "Z1"))
        .collect();
    let pilot = Pilot::new(&labs.iter().map(SealLab::signers_line).collect::<Vec<_>>());
    let start = Instant::now();
    // Tiny bundles (one reading each): what is measured is the intake, not sealing.
    let sent: Vec<Vec<_>> = labs
        .iter_mut()
        .map(|l| (0..BUNDLES).map(|_| l.next(1)).collect())
        .collect();
    let sealed = start.elapsed();

    let server = pilot.serve();
    let to = server.addr;
    let addr = Arc::new(Mutex::new(to));
    let accepted = Arc::new(AtomicU64::new(0));
    let rt = runtime();
    let start = Instant::now();
    let got: Vec<Receipts> = rt.block_on(async {
        let tasks: Vec<_> = sent
            .iter()
            .enumerate()
            .map(|(i, bundles)| {
                tokio::spawn(lab_sends(
                    10 + i as u8,
                    bundles.clone(),
                    addr.clone(),
                    accepted.clone(),
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
    // Each accepted the first time: 201, never a retry or a 200.
    for receipts in &got {
        assert!(receipts.iter().all(|(status, _)| *status == 201));
    }
    let start = Instant::now();
    assert_every_receipt_and_the_log(&pilot, to, &sent, &got);
    // And each lab's last receipt with stock OpenSSH too.
    for receipts in &got {
        let r = check_receipt(&receipts.last().unwrap().1);
        ssh_verify(&pilot, "tsagent-receipt-v1", &r.text, &r.signature).unwrap();
    }
    eprintln!(
        "{} bundles: sealed in {sealed:?}, sent in {sending:?} ({:.0}/s), checked in {:?}",
        LABS * BUNDLES,
        (LABS * BUNDLES) as f64 / sending.as_secs_f64(),
        start.elapsed()
    );
    // Bounded in time as well as count (debug build, 2 cores, with margin for a busy machine).
    assert!(sending < Duration::from_secs(120), "{sending:?}");
}

fn status_lines(pilot: &Pilot) -> Vec<String> {
    let out = tsagent()
        .args(["coordinator", "status", "--config"])
        .arg(pilot.config())
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn status_shows_each_lab_and_artefact_after_a_gap_and_a_fork_and_export_writes_every_accepted_reading()
 {
    let work = tempfile::tempdir().unwrap();
    let mut nim = SealLab::new(work.path(), "NIM", "Z1");
    let mut nim2 = nim.on("Z2");
    let mut ptb = SealLab::new(work.path(), "PTB", "Z1");
    let pilot = Pilot::new(&[nim.signers_line(), ptb.signers_line()]);
    assert_eq!(status_lines(&pilot), ["nothing received yet"]);
    let server = pilot.serve();
    let to = server.addr;
    let send = |b: &tsagent_bundle::SealedBundle| {
        block_on(put_bundle(loopback(2), to, &b.file_name, &b.tar)).unwrap()
    };

    // NIM Z1: bundles 1 and 2, then 4 (3 is missing): a gap; and a heartbeat.
    for n in [3, 2] {
        assert_eq!(send(&nim.next(n)).status, 201);
    }
    let _three = nim.next(2);
    let four = nim.next(1);
    let r = send(&four);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["expected"], 3);
    let hb = block_on(request(
        loopback(2),
        to,
        "POST",
        "/v1/heartbeats",
        &[("content-type", "application/json".into())],
        &nim.heartbeat(),
    ))
    .unwrap();
    assert_eq!(hb.status, 201, "{}", hb.text());
    // NIM Z2: one bundle.
    assert_eq!(send(&nim2.next(2)).status, 201);
    // PTB Z1: bundle 1, another bundle 1 (a fork: quarantined, an incident), bundle 2.
    let fork = ptb.other_next(2);
    assert_eq!(send(&ptb.next(2)).status, 201);
    let r = send(&fork);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["quarantined"], true);
    assert_eq!(send(&ptb.next(2)).status, 201);

    let lines = status_lines(&pilot);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let last_reading =
        |seq: i64| tsagent_bundle::time::rfc3339(1_790_000_000_000_000 + seq * 1_000_000);
    let (nim1, rest) = lines[0].split_once(", heartbeat ").unwrap();
    assert_eq!(
        nim1,
        format!(
            "NIM Z1: 2 bundle(s), last #2 (reading 5), last reading {}",
            last_reading(5)
        )
    );
    // A heartbeat received a moment ago.
    let (age, rest) = rest.split_once(" ago, ").unwrap();
    assert!(age.ends_with('s'), "{age}");
    assert_eq!(rest, "1 gap(s), 0 incident(s)");
    assert_eq!(
        lines[1],
        format!(
            "NIM Z2: 1 bundle(s), last #1 (reading 2), last reading {}, heartbeat never, 0 gap(s), 0 incident(s)",
            last_reading(2)
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "PTB Z1: 2 bundle(s), last #2 (reading 4), last reading {}, heartbeat never, 0 gap(s), 1 incident(s)",
            last_reading(4)
        )
    );

    // Every accepted reading of Z1, with its lab; none of the fork's, none of bundle 4's.
    let out = tsagent()
        .args([
            "coordinator",
            "export",
            "--artefact",
            "Z1",
            "--csv",
            "--config",
        ])
        .arg(pilot.config())
        .assert()
        .success();
    let csv = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..2], ["lab", "seq"], "{header:?}");
    let value = header.iter().position(|c| *c == "value").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let got: Vec<(&str, u64)> = rows.iter().map(|r| (r[0], r[1].parse().unwrap())).collect();
    let mut expected: Vec<(&str, u64)> = (1..=5).map(|s| ("NIM", s)).collect();
    expected.extend((1..=4).map(|s| ("PTB", s)));
    assert_eq!(got, expected, "{csv}");
    // The fork's readings were 11 V; the accepted ones 10 V.
    for r in &rows {
        let v: f64 = r[value].parse().unwrap();
        assert!((v - 10.0).abs() < 1e-3, "{r:?}");
    }
    let out = tsagent()
        .args([
            "coordinator",
            "export",
            "--artefact",
            "Z2",
            "--csv",
            "--config",
        ])
        .arg(pilot.config())
        .assert()
        .success();
    let csv = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.starts_with("NIM,")));
    // The storage agrees with itself; the fork is kept aside, not among the blobs.
    assert_eq!(checked_bundles(&pilot.check()), 5);
    assert_eq!(files_in(&pilot.storage().join("quarantine")).len(), 1);
}

/// `coordinator check` on a storage damaged in one way: fails with the integrity exit code and
/// says what it found.
fn check_fails(pilot: &Pilot, says: &str) {
    let out = tsagent()
        .args(["coordinator", "check", "--config"])
        .arg(pilot.config())
        .timeout(PATIENCE)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains(says), "expected {says:?} in:\n{text}");
}

#[test]
fn check_finds_a_damaged_or_missing_blob_and_an_index_or_log_that_does_not_add_up() {
    let work = tempfile::tempdir().unwrap();
    let mut lab = SealLab::new(work.path(), "NIM", "Z1");
    let pilot = Pilot::new(&[lab.signers_line()]);
    let server = pilot.serve();
    let bundles: Vec<_> = (0..3).map(|_| lab.next(2)).collect();
    for b in &bundles {
        let r = block_on(put_bundle(loopback(2), server.addr, &b.file_name, &b.tar)).unwrap();
        assert_eq!(r.status, 201);
    }
    drop(server);
    assert_eq!(checked_bundles(&pilot.check()), 3);
    // Small bundles are kept in a pack (`packs/`).
    let sha = sha256_hex(&bundles[1].tar);
    let blob = pilot.blobs().into_iter().find(|b| b.sha256 == sha).unwrap();
    assert!(
        blob.path.extension().is_some_and(|e| e == "pack"),
        "{blob:?}"
    );

    // A blob's bytes changed, then gone (the pack cut short before it).
    let kept = std::fs::read(&blob.path).unwrap();
    let mut bytes = kept.clone();
    bytes[blob.offset + 100] ^= 1;
    std::fs::write(&blob.path, &bytes).unwrap();
    check_fails(&pilot, "NIM-Z1-000002.tar: blob");
    check_fails(&pilot, "does not hash to its name");
    std::fs::write(&blob.path, &kept[..blob.offset]).unwrap();
    check_fails(&pilot, "NIM-Z1-000002.tar: cannot open");
    std::fs::write(&blob.path, &kept).unwrap();
    assert_eq!(checked_bundles(&pilot.check()), 3);
    // A blob nobody names: an orphan, reported, not a fault.
    let mut other = lab.clone();
    let orphan = other.next(1);
    let osha = sha256_hex(&orphan.tar);
    std::fs::create_dir_all(pilot.storage().join("blobs").join(&osha[..2])).unwrap();
    std::fs::write(
        pilot
            .storage()
            .join("blobs")
            .join(&osha[..2])
            .join(format!("{osha}.tar")),
        &orphan.tar,
    )
    .unwrap();
    assert!(pilot.check().contains("\n1 orphan blob(s)"));

    // The index and the log, changed behind the coordinator's back.
    let db = rusqlite::Connection::open(pilot.storage().join("index.sqlite")).unwrap();
    let entry: Vec<u8> = db
        .query_row("SELECT entry FROM tlog_entries WHERE idx = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute("DELETE FROM tlog_entries WHERE idx = 2", [])
        .unwrap();
    check_fails(
        &pilot,
        "the log holds 2 entries, its newest checkpoint says 3",
    );
    let mut changed = entry.clone();
    let at = changed.iter().position(|&b| b == b'N').unwrap();
    changed[at] = b'M';
    db.execute(
        "INSERT INTO tlog_entries (idx, entry) VALUES (2, ?1)",
        [&changed],
    )
    .unwrap();
    check_fails(
        &pilot,
        "the root recomputed from the 3 entries is not the checkpoint's",
    );
    db.execute("UPDATE tlog_entries SET entry = ?1 WHERE idx = 2", [&entry])
        .unwrap();
    assert_eq!(checked_bundles(&pilot.check()), 3);
    db.execute("DELETE FROM bundles WHERE bundle_seq = 2", [])
        .unwrap();
    check_fails(&pilot, "NIM Z1: bundle 3 follows bundle 1 in the index");
    check_fails(
        &pilot,
        "logs NIM-Z1-000002.tar, which the index does not hold",
    );
}

/// The README's fenced blocks of `lang`.
fn readme_blocks(lang: &str) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l == format!("```{lang}") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_coordinator_config_is_real_and_its_commented_keys_are_the_defaults() {
    let block = readme_blocks("toml")
        .into_iter()
        .find(|b| b.starts_with("[coordinator]"))
        .unwrap();
    let path = Path::new("/etc/tsagent/coordinator.toml");
    let config = tsagent_coordinator::Config::parse(path, &block).unwrap();
    // Every commented key, switched on, parses and gives what the default already is.
    let uncommented = block
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let explicit = tsagent_coordinator::Config::parse(path, &uncommented).unwrap();
    assert_eq!(explicit, config);
    assert_eq!(config.id, "pilot-NIM");
}
