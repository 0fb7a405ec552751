//! `tsagent demo`: the whole path on the embedded simulated lab, no hardware.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::Error;
use super::bundle_cmd::{make_key, print_verified, signers_line, verify_file};
use super::display::{self, describe, si};
use super::{progress, runtime, stop_on_signals, stopped_by_signal};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Step};
use crate::sealing;
use crate::sequence::{Observer, Quiet, Runner};
use crate::stats;
use crate::store::{RunStatus, Store, Trigger};
use crate::supervisor::Supervisor;
use tsagent_bundle as bundle;

/// The demo's sequence in `config/demo.toml`.
const DEMO_SEQUENCE: &str = "zener-10v";

/// `tsagent demo`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct DemoArgs {
    /// Folder for the demo lab's database, key and bundles; running again continues the same lab.
    #[arg(long, value_name = "DIR", default_value = "tsagent-demo")]
    pub dir: PathBuf,
    /// Readings to take.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=10_000_000))]
    pub readings: u32,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<(), Error> {
    let dir = &args.dir;
    let mut config = Config::demo(dir)?;
    // `--readings` is how many readings of the standard; the environment is read once.
    let unit = config.artefact.unit.clone();
    for sequence in &mut config.sequences {
        for step in &mut sequence.steps {
            if let Step::Read(read) = step
                && read.unit.as_deref() == Some(unit.as_str())
            {
                read.count = args.readings;
            }
        }
    }
    let lab_config = write_lab_config(dir)?;
    let key = config.signing.key.clone();
    let lab = config.lab.id.clone();
    let line = if key.exists() {
        signers_line(&key, &lab)?
    } else {
        make_key(&key, &lab)?
    };
    let signers = dir.join("allowed_signers");
    std::fs::write(&signers, format!("{line}\n")).map_err(|source| Error::Io {
        action: "write",
        path: signers.clone(),
        source,
    })?;

    // Held until the process ends: the instruments and the log are this process's alone.
    let _lab = crate::daemon::owner::LabLock::acquire(&config, crate::daemon::owner::Role::Demo)?;
    let mut store = Store::open(&config.storage.db)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    say!(
        "tsagent demo: lab {} ({}), travelling standard {} ({} {} {})",
        config.lab.id,
        config.lab.name,
        config.artefact.id,
        config.artefact.nominal,
        config.artefact.unit,
        config.artefact.kind
    );
    let (outcome, rows, sims, signalled) = runtime()?.block_on(async {
        let stop = stop_on_signals()?;
        let mut supervisor = Supervisor::new(&config);
        let mut runner = Runner {
            config: &config,
            store: &mut store,
            clock: clock.clone(),
            supervisor: &mut supervisor,
        };
        let mut observer: Box<dyn Observer> = if std::io::stderr().is_terminal() {
            Box::new(progress::Live::default())
        } else {
            Box::new(Quiet)
        };
        let outcome = runner
            .run_named(DEMO_SEQUENCE, Trigger::Demo, None, observer.as_mut(), &stop)
            .await;
        drop(observer);
        let outcome = outcome?;
        // Stopped by a signal: the readings taken are kept, the rest of the demo is not done, and
        // the exit code says which signal stopped it, as `measure`'s does.
        let signalled = match outcome.status {
            RunStatus::Completed => Ok(()),
            _ => stopped_by_signal(&stop),
        };
        let rows = match outcome.seq_range {
            Some(range) => store.run_readings(outcome.run_id, range)?,
            None => Vec::new(),
        };
        let sims: Vec<String> = supervisor
            .simulators()
            .into_iter()
            .map(|(name, path)| format!("{name} on {}", path.display()))
            .collect();
        Ok::<_, Error>((outcome, rows, sims, signalled))
    })?;
    say!(
        "  simulators: {} (the real serial and GPIB code paths, over pseudo-terminals)",
        sims.join(", ")
    );
    say!("{}", describe(&outcome));
    if outcome.status != RunStatus::Completed {
        say!("database: {}", config.storage.db.display());
        return signalled;
    }

    // Statistics per instrument and quantity, each in its own unit; series of one reading (the
    // environment, read once) are listed by value.
    // The simulator runs `time_scale` times faster than the wall clock, so the drift is stated per
    // simulated day: that is the time axis the simulated standard drifts on.
    let scale = config.simulator.time_scale;
    let mut single: Vec<(String, String)> = Vec::new();
    for series in display::series(&rows) {
        let unit = series.unit.as_str();
        let Some(s) = series.summary() else {
            if let Some(v) = series.values.first() {
                single.push((
                    series.instrument.clone(),
                    format!("{} {v} {unit}", series.quantity),
                ));
            }
            continue;
        };
        say!("  {} ({unit})", series.label());
        say!("    mean                      {:.9} {unit}", s.mean);
        say!(
            "    experimental std. dev. s  {}   (n = {}, ν = {})",
            si(s.std_dev, unit),
            s.n,
            s.dof
        );
        say!(
            "    std. dev. of the mean     {}",
            si(s.std_dev_of_mean, unit)
        );
        let t0 = series.utc_us.first().copied().unwrap_or(0);
        let t: Vec<f64> = series
            .utc_us
            .iter()
            .map(|u| (u - t0) as f64 / 86_400e6 * scale)
            .collect();
        if let Ok(fit) = stats::ols(&t, &series.values) {
            say!(
                "    drift (least squares)     {}/day ± {}/day over {:.2} simulated days ({scale}× time scale)",
                si(fit.slope, unit),
                si(fit.u_slope, unit),
                t.last().copied().unwrap_or(0.0)
            );
        }
    }
    let mut instruments: Vec<&str> = Vec::new();
    for (instrument, _) in &single {
        if !instruments.contains(&instrument.as_str()) {
            instruments.push(instrument);
        }
    }
    for instrument in instruments {
        let parts: Vec<&str> = single
            .iter()
            .filter(|(i, _)| i == instrument)
            .map(|(_, text)| text.as_str())
            .collect();
        say!("  {instrument:<26}{}", parts.join(", "));
    }

    let report = sealing::seal_pending(&config, &mut store, &config.storage.bundles, &*clock)?;
    super::bundle_cmd::print_seal(&report);
    let db = config.storage.db.display();
    say!("database: {db}   (check it: tsagent db check --db {db})");
    say!(
        "lab config: {}   (every command takes it: --config {})",
        lab_config.display(),
        lab_config.display()
    );
    if let Some(sealed) = report.sealed.last() {
        let verified = verify_file(&sealed.path, &signers, Some(&lab))?;
        print_verified(&sealed.path, &verified);
        say!("allowed_signers: {}", signers.display());
        say!("verify it with stock tools (OpenSSH and coreutils):");
        say!("  {}", stock_command(&sealed.path, &signers, &lab));
        deliver(dir, &config, &mut store, &line, &*clock)?;
    }

    // The lab's result for this run, as the lab would send it: the report, its plots and a DCC.
    let out = dir.join("report");
    let made = super::report_cmd::make(
        &config,
        &store,
        &super::report_cmd::Window {
            run: Some(outcome.run_id),
            ..Default::default()
        },
        None,
        &out,
        crate::report::Options {
            languages: super::report_cmd::languages(&config),
            dcc: Some(out.join("dcc.xml")),
        },
        &*clock,
    )?;
    say!("{}", made.line);
    say!("DCC: {}", out.join("dcc.xml").display());
    say!(
        "(every command takes the demo lab: tsagent report --config {} --run {} --out DIR)",
        lab_config.display(),
        outcome.run_id
    );
    say!("report: {}", made.written.html.display());
    Ok(())
}

/// Writes the demo lab's config, the embedded one, as `DIR/tsagent.toml`: its paths are relative to
/// its folder, so `--config DIR/tsagent.toml` names this very lab (its database, key, bundles and
/// simulated instruments) to every other command.
fn write_lab_config(dir: &Path) -> Result<PathBuf, Error> {
    let io = |source| Error::Io {
        action: "write the demo lab's config in",
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    bundle::write_file_atomically(dir, LAB_CONFIG, crate::config::DEMO_TOML.as_bytes()).map_err(io)
}

/// The demo lab's config file in the demo folder.
const LAB_CONFIG: &str = "tsagent.toml";

/// The pilot's side in this process: a coordinator on loopback with the embedded storage under
/// `DIR/pilot`, to which the lab's bundles not yet delivered go as they would to the real one;
/// the last receipt is written out with the stock command that verifies it.
fn deliver(
    dir: &Path,
    config: &Config,
    store: &mut Store,
    lab_line: &str,
    clock: &dyn Clock,
) -> Result<(), Error> {
    let pilot = dir.join("pilot");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io {
            action: "write",
            path,
            source,
        }
    };
    std::fs::create_dir_all(&pilot).map_err(io(&pilot))?;
    let key = pilot.join("coordinator_key");
    if !key.exists() {
        make_key(&key, "pilot")?;
    }
    let public = bundle::load_signing_key(&key)?.public_key().clone();
    std::fs::write(pilot.join("labs"), format!("{lab_line}\n")).map_err(io(&pilot))?;
    let coordinator_toml = pilot.join("coordinator.toml");
    std::fs::write(
        &coordinator_toml,
        "[coordinator]\nid = \"pilot\"\nlisten = \"127.0.0.1:0\"\nkey = \"coordinator_key\"\nlabs = \"labs\"\n",
    )
    .map_err(io(&coordinator_toml))?;
    // Receipts are checked by the stock tool against this line: the coordinator's key, for its
    // receipts only.
    let public_line = public
        .to_openssh()
        .map_err(|e| Error::Usage(format!("the coordinator's key: {e}")))?;
    let signers = pilot.join("coordinator_signers");
    std::fs::write(
        &signers,
        format!(
            "pilot namespaces=\"{}\" {public_line}\n",
            bundle::receipt::RECEIPT_NAMESPACE
        ),
    )
    .map_err(io(&signers))?;

    let coordinator = tsagent_coordinator::Config::load(&coordinator_toml)?;
    let intake = Arc::new(tsagent_coordinator::open(&coordinator)?);
    let limits = tsagent_coordinator::limits(&coordinator);
    let sent = runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(coordinator.listen)
            .await
            .map_err(|source| Error::Io {
                action: "listen on",
                path: PathBuf::from(coordinator.listen.to_string()),
                source,
            })?;
        let addr = listener.local_addr().map_err(Error::Runtime)?;
        let server = tokio::spawn(tsagent_coordinator::server::serve(listener, intake, limits));
        let url = format!("http://{addr}");
        say!(
            "coordinator (the pilot's intake, in this process): {url}, storage {}",
            pilot.join("intake").display()
        );
        let target = crate::upload::Target {
            endpoint: crate::upload::Endpoint::parse(&url, None)
                .map_err(|e| Error::Usage(crate::error::report(&e)))?,
            coordinator_key: public,
            lab: config.lab.id.clone(),
            artefact: config.artefact.id.clone(),
        };
        let mut sent = Vec::new();
        loop {
            let step = crate::upload::step_with(store, &target, clock.now(), true)
                .await
                .map_err(|e| Error::Upload(crate::error::report(&e)))?;
            match step {
                crate::upload::Step::Sent {
                    name, log_index, ..
                } => {
                    say!("  {name} uploaded: accepted, log index {log_index}; receipt verified");
                    sent.push(name);
                }
                crate::upload::Step::Idle => break,
                other => {
                    server.abort();
                    return Err(Error::UploadRefused(format!(
                        "the demo's upload stopped: {other:?}"
                    )));
                }
            }
        }
        server.abort();
        Ok::<_, Error>(sent)
    })?;
    let Some((_, receipt)) = store.latest_receipt()? else {
        return Ok(());
    };
    let Some(name) = sent.last() else {
        return Ok(());
    };
    let signed: bundle::receipt::SignedReceipt = serde_json::from_str(&receipt)
        .map_err(|e| Error::Usage(format!("the stored receipt: {e}")))?;
    let receipts = dir.join("receipts");
    std::fs::create_dir_all(&receipts).map_err(io(&receipts))?;
    let (json, sig) = (
        receipts.join(format!("{name}.receipt.json")),
        receipts.join(format!("{name}.receipt.sig")),
    );
    std::fs::write(&json, &signed.receipt).map_err(io(&json))?;
    std::fs::write(&sig, &signed.signature).map_err(io(&sig))?;
    say!("receipt: {} (signature {})", json.display(), sig.display());
    say!("verify the receipt with stock tools (OpenSSH):");
    say!(
        "  ssh-keygen -Y verify -f {} -I pilot -n {} -s {} < {}",
        std::path::absolute(&signers)
            .unwrap_or(signers.clone())
            .display(),
        bundle::receipt::RECEIPT_NAMESPACE,
        std::path::absolute(&sig).unwrap_or(sig.clone()).display(),
        std::path::absolute(&json).unwrap_or(json.clone()).display()
    );
    Ok(())
}

/// The pilot's verification with tools already on every machine.
fn stock_command(bundle_path: &Path, signers: &Path, lab: &str) -> String {
    let folder = bundle_path
        .parent()
        .map_or_else(|| ".".into(), |p| p.display().to_string());
    let name = bundle_path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let signers = std::path::absolute(signers).unwrap_or_else(|_| signers.to_owned());
    format!(
        "cd {folder} && tar -xf {name}.tar && cd {name} && ssh-keygen -Y verify -f {} -I {lab} -n {} -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c SHA256SUMS",
        signers.display(),
        bundle::NAMESPACE
    )
}
