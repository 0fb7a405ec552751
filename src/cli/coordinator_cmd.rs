//! `tsagent coordinator …`: the pilot's intake (the `tsagent-coordinator` crate) from the
//! command line: serve it, show what each lab has sent, export the readings.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use tsagent_coordinator::Config;

use super::Error;

/// `tsagent coordinator …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum CoordinatorCommand {
    /// Serve the intake until SIGTERM or SIGINT; the first line on stdout is `listening on URL`.
    Serve(ConfigArg),
    /// One line per lab and artefact: bundles, last sequence number, last reading, last
    /// heartbeat's age, gaps, incidents.
    Status(ConfigArg),
    /// Every accepted reading of an artefact, with its lab, as CSV on stdout.
    Export(ExportArgs),
    /// Whether the index, the blobs and the transparency log agree: every indexed bundle's blob
    /// present with its hash, the log's root recomputed from its entries, the checkpoint signed.
    /// Orphan blobs (stored, never indexed: a crash between the two) are counted, not refused.
    Check(ConfigArg),
}

/// `--config`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct ConfigArg {
    /// The coordinator's config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `coordinator export`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct ExportArgs {
    #[command(flatten)]
    /// The config.
    pub config: ConfigArg,
    /// The artefact.
    #[arg(long, value_name = "ID")]
    pub artefact: String,
    /// CSV (the only format): `lab`, then readings.csv's columns.
    #[arg(long, required = true)]
    pub csv: bool,
}

/// Runs a `coordinator` subcommand.
pub fn run(cmd: CoordinatorCommand) -> Result<(), Error> {
    match cmd {
        CoordinatorCommand::Serve(a) => serve(&a),
        CoordinatorCommand::Status(a) => status(&a),
        CoordinatorCommand::Export(a) => export(&a),
        CoordinatorCommand::Check(a) => check(&a),
    }
}

fn serve(a: &ConfigArg) -> Result<(), Error> {
    let config = Config::load(&a.config)?;
    let intake = Arc::new(tsagent_coordinator::open(&config)?);
    let tls = tsagent_coordinator::tls_acceptor(&config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let limits = tsagent_coordinator::limits(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Io {
                action: "listen on",
                path: PathBuf::from(config.listen.to_string()),
                source,
            })?;
        let addr = listener.local_addr().map_err(Error::Runtime)?;
        say!("listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
        // Under systemd (Type=notify): started means the key, labs and storage are open and the
        // port is bound.
        crate::daemon::notify::Notifier::from_env()
            .ready(&format!("listening on {scheme}://{addr}"));
        tracing::info!(id = %config.id, "coordinator listening on {scheme}://{addr}");
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(Error::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Error::Runtime)?;
        // The accept loop runs on a worker, not on this thread: a connection it spawns then
        // starts on the same worker, without waking another (P7 in BENCHMARKS.md).
        let mut server = tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    tsagent_coordinator::server::serve_tls(listener, intake, limits, tls).await
                }
                None => tsagent_coordinator::server::serve(listener, intake, limits).await,
            }
        });
        tokio::select! {
            _ = &mut server => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        server.abort();
        Ok::<(), Error>(())
    })?;
    // Requests being decided run on blocking threads; each either committed or left nothing.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    Ok(())
}

fn check(a: &ConfigArg) -> Result<(), Error> {
    let config = Config::load(&a.config)?;
    let key = tsagent_bundle::load_signing_key(&config.key)
        .map_err(tsagent_coordinator::OpenError::Key)?;
    let (index, blobs) = tsagent_coordinator::open_storage(&config)?;
    let r = tsagent_coordinator::check::check(
        &*index,
        &*blobs,
        Some(key.public_key()),
        &config.origin,
    )?;
    for p in &r.problems {
        say!("{p}");
    }
    if let Some(first) = r.problems.first() {
        return Err(Error::CoordinatorUnsound {
            first: first.clone(),
            count: r.problem_count,
        });
    }
    say!(
        "ok: {} bundle(s), each blob present with its hash; the log's {} entries give the checkpoint's root {}",
        r.bundles,
        r.entries,
        r.root
    );
    if !r.orphans.is_empty() {
        // Not a fault: kept before the index named them, then a crash or a full disk; a re-send
        // of the same bytes indexes them.
        say!(
            "{} orphan blob(s): stored whole but never indexed (a crash or a full disk between the two); a re-send indexes them",
            r.orphans.len()
        );
    }
    Ok(())
}

fn age(now_us: i64, then: Option<i64>) -> String {
    match then {
        None => "never".into(),
        Some(t) => {
            let secs = u64::try_from((now_us - t) / 1_000_000).unwrap_or(0);
            format!(
                "{} ago",
                humantime::format_duration(std::time::Duration::from_secs(secs))
            )
        }
    }
}

fn status(a: &ConfigArg) -> Result<(), Error> {
    let config = Config::load(&a.config)?;
    let (index, _) = tsagent_coordinator::open_storage(&config)?;
    let now = crate::clock::SystemClock::new();
    let now_us = crate::clock::Clock::now(&now).utc_us;
    let rows = index
        .status()
        .map_err(tsagent_coordinator::OpenError::from)?;
    if rows.is_empty() {
        say!("nothing received yet");
    }
    for r in rows {
        say!(
            "{} {}: {} bundle(s), last #{} (reading {}), last reading {}, heartbeat {}, {} gap(s), {} incident(s)",
            r.lab,
            r.artefact,
            r.bundles,
            r.last_bundle_seq,
            r.last_seq,
            r.last_reading_utc_us
                .map_or_else(|| "none".into(), tsagent_bundle::time::rfc3339),
            age(now_us, r.last_heartbeat_utc_us),
            r.gaps,
            r.incidents
        );
    }
    Ok(())
}

fn export(a: &ExportArgs) -> Result<(), Error> {
    let config = Config::load(&a.config.config)?;
    let (index, blobs) = tsagent_coordinator::open_storage(&config)?;
    let bundles = index
        .bundles(Some(&a.artefact))
        .map_err(tsagent_coordinator::OpenError::from)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut header_written = false;
    for b in bundles {
        let file = blobs
            .open(&b.sha256)
            .map_err(tsagent_coordinator::OpenError::from)?;
        let lab = b.lab.clone();
        let result = tsagent_bundle::tar::read_tar_stream(
            BufReader::new(file),
            tsagent_bundle::TarLimits::DEFAULT,
            |member, data| {
                // Member 1 is readings.csv (the bundle's, not an attachment's).
                if member != tsagent_bundle::tar::Member::File(1) {
                    return Ok(());
                }
                let mut lines = BufReader::new(data).lines();
                if let Some(header) = lines.next() {
                    let header = header?;
                    if !header_written {
                        writeln!(out, "lab,{header}")?;
                        header_written = true;
                    }
                }
                for line in lines {
                    writeln!(out, "{lab},{}", line?)?;
                }
                Ok::<(), ExportFailure>(())
            },
        );
        match result {
            Ok(_) => {}
            Err(ExportFailure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(());
            }
            Err(ExportFailure::Io(source)) => {
                return Err(Error::Io {
                    action: "export",
                    path: PathBuf::from(&b.name),
                    source,
                });
            }
            Err(ExportFailure::Tar(e)) => {
                return Err(Error::Usage(format!(
                    "stored bundle {} is unreadable: {e}",
                    b.name
                )));
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

/// Why a stored bundle could not be exported.
enum ExportFailure {
    Io(std::io::Error),
    Tar(tsagent_bundle::TarError),
}

impl From<std::io::Error> for ExportFailure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<tsagent_bundle::TarError> for ExportFailure {
    fn from(e: tsagent_bundle::TarError) -> Self {
        Self::Tar(e)
    }
}
