//! The command line: argument definitions and dispatch. `main.rs` only parses, calls [`run`] and turns
//! the result into an exit code.

/// `println!` that survives a closed stdout (`tsagent … | head`): output nobody reads must not
/// panic or abort a measurement.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that survives an unwritable stderr (`2>/dev/full`, a terminal gone after a hang-up):
/// a message nobody can read must not become a panic or change the exit code.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod analyze;
mod bundle_cmd;
mod config_cmd;
mod coordinator_cmd;
mod custody_cmd;
mod db;
mod demo;
mod display;
mod drivers_cmd;
mod error;
mod measure;
mod ports;
pub mod progress;
mod report_cmd;
mod run;
mod sim;
mod steer;
mod upload_cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing::level_filters::LevelFilter;

use crate::sequence::{Stop, Urgency};

pub use error::{Error, exit};

/// tsagent: measurement agent for travelling-standard comparisons.
///
/// Talks to the lab's instruments, logs every reading durably to SQLite with a hash chain, and seals
/// signed bundles that the pilot lab verifies with `ssh-keygen -Y verify` and `sha256sum -c`.
#[derive(Debug, Parser)]
#[command(
    name = "tsagent",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[deny(missing_docs)]
pub struct Cli {
    /// Diagnostics on stderr: off, error, warn, info, debug or trace [default: info for `run`,
    /// error for `config`, warn otherwise].
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log: Option<LevelFilter>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum Command {
    /// Run the whole path on the built-in simulated lab: measure, seal, verify, summarise.
    Demo(demo::DemoArgs),
    /// Run one sequence now and exit.
    Measure(measure::MeasureArgs),
    /// Statistics of a CSV file or of the log's readings: summary, least-squares fit, Allan
    /// deviations.
    #[command(subcommand)]
    Analyze(analyze::AnalyzeCommand),
    /// Run scheduled sequences until SIGTERM, SIGINT or SIGHUP (the systemd service).
    Run(run::RunArgs),
    /// What the running daemon is doing: instruments, the run in progress, the queue, next slots.
    Status(steer::StatusArgs),
    /// Ask the running daemon to run a sequence (queued behind the run in progress).
    Start(steer::StartArgs),
    /// Follow the running daemon live: runs, readings, instruments.
    Watch(steer::WatchArgs),
    /// Abort the daemon's run in progress after the reading in progress (marked `aborted`).
    Abort(steer::AbortArgs),
    /// Serve a simulated instrument, or a Prologix adapter with several, on a pseudo-terminal or
    /// TCP until killed.
    Sim(sim::SimArgs),
    /// List this machine's serial ports with their stable resource names.
    Ports,
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The reading database.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// List readings.
    Readings(db::ReadingsArgs),
    /// Instrument driver profiles.
    #[command(subcommand)]
    Drivers(drivers_cmd::DriversCommand),
    /// Make the lab's Ed25519 signing key.
    Keygen(bundle_cmd::KeygenArgs),
    /// Seal and verify signed bundles.
    #[command(subcommand)]
    Bundle(bundle_cmd::BundleCommand),
    /// Custody of the travelling standard: receipt, inspection, incidents, decisions, notes,
    /// dispatch, and the stabilisation gate official runs wait for.
    #[command(subcommand)]
    Custody(custody_cmd::CustodyCommand),
    /// Send the sealed bundles to the coordinator now, in order, verifying each receipt.
    Upload(upload_cmd::UploadArgs),
    /// List the sealed bundles: sent (with the receipt's log index), waiting, or held, and why.
    Bundles(upload_cmd::BundlesArgs),
    /// The lab's result for a window (official by default): report.html, summary.json,
    /// readings.csv, plots and, with --dcc, a Digital Calibration Certificate.
    Report(report_cmd::ReportArgs),
    /// The pilot's coordinator: receive, verify, store and log the bundles labs send.
    #[command(subcommand)]
    Coordinator(coordinator_cmd::CoordinatorCommand),
}

/// `tsagent config …`.
#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
pub enum ConfigCommand {
    /// Validate a config file; errors name the file, line and key.
    Check {
        /// Also open and identify every adapter and instrument (starting simulated ones), and
        /// report each one's identity or error; fails if any cannot be reached.
        #[arg(long)]
        connect: bool,
        /// The TOML file.
        file: PathBuf,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let default_level = match cli.command {
        Command::Run(_) | Command::Coordinator(coordinator_cmd::CoordinatorCommand::Serve(_)) => {
            LevelFilter::INFO
        }
        // `config check --connect` reports every failure itself; the supervisor's warnings
        // about the same instruments would only repeat it.
        Command::Config(_) => LevelFilter::ERROR,
        _ => LevelFilter::WARN,
    };
    init_logging(cli.log.unwrap_or(default_level));
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Measure(args) => measure::measure(args),
        Command::Analyze(cmd) => analyze::run(cmd),
        Command::Run(args) => run::run(args),
        Command::Status(args) => steer::status(args),
        Command::Start(args) => steer::start(args),
        Command::Watch(args) => steer::watch(args),
        Command::Abort(args) => steer::abort(args),
        Command::Sim(args) => sim::run(args),
        Command::Ports => {
            ports::run();
            Ok(())
        }
        Command::Config(ConfigCommand::Check { connect, file }) => {
            let config = crate::config::Config::load(&file)?;
            say!(
                "{}: ok (lab {}, artefact {}, {} instrument(s), {} sequence(s))",
                file.display(),
                config.lab.id,
                config.artefact.id,
                config.instruments.len(),
                config.sequences.len()
            );
            if connect {
                config_cmd::connect(&config)?;
            }
            Ok(())
        }
        Command::Db(cmd) => db::run(cmd),
        Command::Readings(args) => db::readings(args),
        Command::Drivers(cmd) => drivers_cmd::run(cmd),
        Command::Keygen(args) => bundle_cmd::keygen(args),
        Command::Bundle(cmd) => bundle_cmd::run(cmd),
        Command::Custody(cmd) => custody_cmd::run(cmd),
        Command::Coordinator(cmd) => coordinator_cmd::run(cmd),
        Command::Report(args) => report_cmd::run(args),
        Command::Upload(args) => upload_cmd::upload(args),
        Command::Bundles(args) => upload_cmd::bundles(args),
    }
}

fn init_logging(level: LevelFilter) {
    use std::io::IsTerminal;
    // Under systemd stderr goes to the journal, which timestamps lines itself.
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // On a failed write the subscriber would report it with `eprintln!`, which panics when
        // stderr is what failed (`2>/dev/full`): a lost log line must not end the process.
        .log_internal_errors(false);
    // A second initialisation (tests calling `run` twice in one process) keeps the first.
    let _ = subscriber.try_init();
}

/// The runtime for commands that talk to instruments: one thread.
///
/// A run is strictly sequential — trigger, reply, durable commit, report, next trigger — so there is
/// nothing to run in parallel, and the commit deliberately blocks the thread: nothing may happen
/// before it. One thread also keeps an exchange with an in-process simulator to a few microseconds
/// (no cross-thread wake-ups), which matters when the disk commits in ~0.2 ms (benchmark P1).
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// Who hears that a stop was asked for.
#[derive(Debug, Clone, Copy)]
enum Audience {
    /// A person at a terminal (`measure`, `demo`, `sim`): plain lines on stderr.
    Person,
    /// The daemon's log.
    Log,
    /// Nobody: a simulator has no reading in progress to speak of.
    Nobody,
}

/// Stops raised by SIGINT, SIGTERM and SIGHUP, announced to a person on stderr: the first stops
/// after the reading in progress, a second stops at once.
fn stop_on_signals() -> Result<Stop, Error> {
    watch_signals(Audience::Person)
}

/// Like [`stop_on_signals`], announced in the daemon's log.
fn stop_on_signals_logged() -> Result<Stop, Error> {
    watch_signals(Audience::Log)
}

/// Like [`stop_on_signals`], announced to nobody (`tsagent sim`).
fn stop_on_signals_quietly() -> Result<Stop, Error> {
    watch_signals(Audience::Nobody)
}

fn watch_signals(audience: Audience) -> Result<Stop, Error> {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let (handle, stop) = Stop::channel();
    let mut term = signal(SignalKind::terminate()).map_err(Error::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(Error::Runtime)?;
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = term.recv() => Signal::SIGTERM,
                Some(()) = int.recv() => Signal::SIGINT,
                Some(()) = hup.recv() => Signal::SIGHUP,
                else => break,
            };
            let urgency = handle.escalate(Some(signal as i32));
            let name = signal.as_str();
            let text = match urgency {
                Urgency::AfterReading => format!(
                    "{name}: stopping after the reading in progress (Ctrl-C or another signal stops at once)"
                ),
                Urgency::Now => format!(
                    "{name} again: stopping now; the reading in progress is abandoned, readings already taken are kept"
                ),
            };
            match audience {
                Audience::Nobody => {}
                Audience::Log => tracing::warn!("{text}"),
                Audience::Person => {
                    use std::io::{IsTerminal, Write};
                    let mut err = std::io::stderr().lock();
                    // A live progress line may be drawn without its newline yet.
                    let lead = if err.is_terminal() { "\n" } else { "" };
                    // Nobody reading stderr must not stop the stopping.
                    let _ = writeln!(err, "{lead}{text}");
                }
            }
        }
        // The signal streams ended (they do not on Unix): the handle goes and no stop can come.
    });
    Ok(stop)
}

/// The error that makes a command stopped by a signal exit with 128 + its number, as shells
/// expect (130 for SIGINT), if a signal stopped it.
fn stopped_by_signal(stop: &Stop) -> Result<(), Error> {
    match stop.request().and_then(|r| r.signal) {
        Some(signal) => Err(Error::Stopped { signal }),
        None => Ok(()),
    }
}
