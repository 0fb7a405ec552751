//! Commands that steer a running daemon through its control socket: `status` and `start`.

use std::path::PathBuf;

use clap::Args;

use super::{Error, progress, runtime};
use crate::config::Config;
use crate::control::client::Client;
use crate::control::{LiveEvent, StartRequest, Status};
use crate::sequence::ReadingReport;

/// `tsagent status`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct StatusArgs {
    /// The lab's config file (it names the daemon's socket).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tsagent start`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct StartArgs {
    /// The lab's config file (it names the daemon's socket).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The sequence to run.
    #[arg(value_name = "SEQUENCE")]
    pub sequence: String,
    /// Who is running it; stored with the run.
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// Follow the run until it ends, with the same progress as `measure`.
    #[arg(long)]
    pub wait: bool,
}

/// `tsagent abort`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct AbortArgs {
    /// The lab's config file (it names the daemon's socket).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The run to abort; it must be the one in progress [default: the one in progress].
    #[arg(value_name = "RUN")]
    pub run: Option<u64>,
}

/// Aborts the daemon's run in progress after the reading in progress; its readings stay.
pub fn abort(args: AbortArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    let client = Client::new(&config.control.socket);
    let aborting = runtime()?.block_on(client.abort(args.run))?;
    say!(
        "run {} aborting: it stops after the reading in progress and is marked aborted; its readings stay",
        aborting.run_id
    );
    Ok(())
}

/// `tsagent watch`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct WatchArgs {
    /// The lab's config file (it names the daemon's socket).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Follows the daemon live: its status, then one line per event, until it stops (or Ctrl-C).
pub fn watch(args: WatchArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    let client = Client::new(&config.control.socket);
    runtime()?.block_on(async {
        // Subscribe before reading the status, so nothing falls between the two.
        let mut events = client.events().await?;
        print_status(&client.status().await?, &config);
        say!("watching (Ctrl-C to stop)");
        while let Some(event) = events.next().await? {
            say!("{}", describe_event(&event));
        }
        say!("the daemon stopped");
        Ok(())
    })
}

/// One line for a live event.
fn describe_event(event: &LiveEvent) -> String {
    match event {
        LiveEvent::Queued {
            ticket,
            sequence,
            operator,
        } => format!("queued: ticket {ticket} {sequence} by {operator}"),
        LiveEvent::RunStarted {
            run_id,
            sequence,
            total,
            ..
        } => format!("run {run_id} started: sequence={sequence} readings={total}"),
        LiveEvent::Reading {
            run_id,
            instrument,
            seq,
            done,
            total,
            measurement,
            unit,
            ..
        } => format!(
            "run {run_id} reading {done}/{total} seq={seq} {instrument} {}",
            progress::show(measurement, unit)
        ),
        LiveEvent::RunEnded {
            run_id,
            status,
            readings,
            message,
            ..
        } => format!(
            "run {run_id} {status}: {readings} readings{}",
            message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        LiveEvent::Instrument { name, state } => format!("instrument {name} {state}"),
        LiveEvent::Sealed { bundles } => format!("sealed: {}", bundles.join(", ")),
        LiveEvent::Custody { state, event } => format!("custody: {event}; now {state}"),
        LiveEvent::Missed { count } => {
            format!("({count} events missed: this view fell behind; they are in the log)")
        }
    }
}

/// Shows what the daemon is doing.
pub fn status(args: StatusArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    let client = Client::new(&config.control.socket);
    let status = runtime()?.block_on(client.status())?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
    } else {
        print_status(&status, &config);
    }
    Ok(())
}

fn print_status(s: &Status, config: &Config) {
    say!(
        "daemon pid {} for lab {} (socket {})",
        s.pid,
        s.lab,
        config.control.socket.display()
    );
    let online = s.instruments.iter().filter(|i| i.state == "online").count();
    say!("instruments: {online}/{} online", s.instruments.len());
    for i in &s.instruments {
        let mut line = format!("  {:<12} {:<8}", i.name, i.state);
        if let Some(since) = &i.offline_since {
            line.push_str(&format!(" since {since}"));
        }
        if let Some(id) = &i.identity {
            line.push_str(&format!(" {id}"));
        }
        if let Some(r) = &i.last_reading {
            line.push_str(&format!(
                "; last reading {} {} at {} (seq {})",
                r.raw, r.unit, r.utc, r.seq
            ));
        }
        say!("{line}");
    }
    match &s.run {
        Some(r) => say!(
            "run {} in progress: {} ({}{}), {}/{} readings",
            r.run_id,
            r.sequence,
            r.trigger,
            r.operator
                .as_deref()
                .map(|o| format!(", {o}"))
                .unwrap_or_default(),
            r.done,
            r.total
        ),
        None => say!("no run in progress"),
    }
    for q in &s.queue {
        say!(
            "queued: ticket {} {} by {}",
            q.ticket,
            q.sequence,
            q.operator
        );
    }
    for n in &s.next_slots {
        say!("next {}: {}", n.sequence, n.utc);
    }
    // The last few: the status page and `--json` have the whole bounded list.
    if !s.runs.is_empty() {
        say!("recent runs:");
    }
    for r in s.runs.iter().take(5) {
        say!(
            "  run {} {} {} ({}{}{}), {} readings, started {}{}",
            r.run_id,
            r.sequence,
            r.status,
            r.trigger,
            r.operator
                .as_deref()
                .map(|o| format!(", {o}"))
                .unwrap_or_default(),
            if r.official { ", official" } else { "" },
            r.readings,
            r.started_utc,
            r.ended_utc
                .as_deref()
                .map(|e| format!(", ended {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(c) = &s.custody {
        say!(
            "custody: {}{}",
            c.state,
            if c.damage_pending {
                " (damage awaits the pilot's decision)"
            } else {
                ""
            }
        );
        if let Some(d) = &c.next_deadline {
            say!(
                "next deadline: {}{}",
                d.describe(),
                super::custody_cmd::deadline_note(d.phase)
            );
        }
    }
    if let Some(first) = s.statistics.first() {
        say!("last completed run {}:", first.run_id);
    }
    for st in &s.statistics {
        say!("  {}", super::display::statistics_line(st));
    }
    say!("bundles not sent: {}", s.bundles_not_sent);
    if let Some(free) = s.disk_free_bytes {
        say!("disk free: {:.1} GB", free as f64 / 1e9);
    }
}

/// Asks the daemon to run a sequence, and with `--wait` follows it to its end.
pub fn start(args: StartArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    hand_over(&config, &args.sequence, &args.operator, args.wait)
}

/// Queues `sequence` on the daemon that holds the lab; with `wait`, follows the run to its end
/// with `measure`'s progress lines and exits as `measure` would. The first line says the run was
/// handed to the daemon.
pub fn hand_over(config: &Config, sequence: &str, operator: &str, wait: bool) -> Result<(), Error> {
    let client = Client::new(&config.control.socket);
    let request = StartRequest {
        sequence: sequence.to_owned(),
        operator: operator.to_owned(),
    };
    runtime()?.block_on(async {
        // Subscribe first, so no event of the run can pass before we listen.
        let mut events = if wait {
            Some(client.events().await?)
        } else {
            None
        };
        let queued = client.start(&request).await?;
        let status = client.status().await.ok();
        say!(
            "handed to the daemon{}: `{}` queued as ticket {}, {} run(s) ahead",
            status
                .map(|s| format!(" (pid {})", s.pid))
                .unwrap_or_default(),
            sequence,
            queued.ticket,
            queued.ahead
        );
        let Some(events) = events.as_mut() else {
            return Ok(());
        };
        let mut observer = progress::for_terminal();
        let mut run = None;
        while let Some(event) = events.next().await? {
            match event {
                LiveEvent::RunStarted {
                    run_id,
                    ticket,
                    sequence,
                    total,
                } if ticket == Some(queued.ticket) => {
                    run = Some(run_id);
                    observer.started(run_id, &sequence, total);
                }
                LiveEvent::Reading {
                    run_id,
                    instrument,
                    seq,
                    done,
                    total,
                    raw,
                    measurement,
                    unit,
                    ..
                } if Some(run_id) == run => observer.reading(&ReadingReport {
                    instrument: &instrument,
                    done,
                    total,
                    seq,
                    raw: &raw,
                    measurement,
                    unit: &unit,
                }),
                LiveEvent::RunEnded {
                    run_id,
                    ticket,
                    status,
                    readings,
                    message,
                } if ticket == Some(queued.ticket) => {
                    drop(observer);
                    say!("run {run_id} {status}: {readings} readings");
                    return match status.as_str() {
                        "completed" => Ok(()),
                        _ => Err(Error::RemoteRun {
                            run_id,
                            status,
                            message,
                        }),
                    };
                }
                _ => {}
            }
        }
        Err(Error::DaemonGone)
    })
}
