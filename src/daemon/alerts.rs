//! Alerts: the lab's own command (mail, chat, an SMS gateway) run when something needs a person.
//!
//! Each condition alerts once when it begins and once when it clears (`…_recovered`), never again
//! in between, so an instrument that stays offline for a weekend sends two messages, not a
//! thousand. A condition that flaps is held to one alert per `repeat` (`[alerts] repeat`, default
//! 1h). Every alert sent, and every one that could not be, is an event in the log. Without
//! `[alerts] command` nothing is sent or stored: the daemon's log already says it all.
//!
//! A custody deadline (`[artefact.deadlines]`) whose action is not recorded alerts once when it
//! comes within `deadline_notice`, and once more when it is past (only that once, when the daemon
//! first sees it already past); recording the action ends it without a message, as the person
//! who recorded it knows.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use tsagent_bundle::event::{AlertSent, Event};

use crate::clock::Timestamp;
use crate::config::Alerts as AlertConfig;
use crate::custody::{DeadlineAction, OpenDeadline, Phase};
use crate::store::NewEvent;

/// What can raise an alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Condition {
    /// An instrument offline for longer than `after`.
    InstrumentOffline(String),
    /// This many runs failed in a row.
    RunsFailing,
    /// The database's disk has less free space than `disk_free_below`.
    DiskNearlyFull,
    /// The signing key is missing.
    SigningKey,
    /// A custody deadline whose action is not recorded is in this phase (`Due` or `Past`).
    Deadline(DeadlineAction, Phase),
    /// The coordinator refused a bundle: uploads hold.
    NotAccepted,
    /// The coordinator's log shrank, forked or did not extend the last checkpoint the lab saw.
    LogInconsistent,
    /// The coordinator refused a heartbeat (a contradiction is a fork), or its log misbehaved.
    HeartbeatRefused,
}

impl Condition {
    /// The alert's kind when the condition begins (`active`) or clears; `None` for a clearing
    /// that sends nothing.
    fn kind(&self, active: bool) -> Option<&'static str> {
        Some(match (self, active) {
            (Condition::InstrumentOffline(_), true) => "instrument_offline",
            (Condition::InstrumentOffline(_), false) => "instrument_online",
            (Condition::RunsFailing, true) => "runs_failing",
            (Condition::RunsFailing, false) => "runs_recovered",
            (Condition::DiskNearlyFull, true) => "disk_nearly_full",
            (Condition::DiskNearlyFull, false) => "disk_recovered",
            (Condition::SigningKey, true) => "signing_key_missing",
            (Condition::SigningKey, false) => "signing_key_found",
            (Condition::Deadline(..), true) => "custody_deadline",
            (Condition::Deadline(..), false) => return None,
            (Condition::NotAccepted, true) => "bundle_not_accepted",
            (Condition::NotAccepted, false) => "bundle_accepted",
            (Condition::LogInconsistent, true) => "coordinator_log_inconsistent",
            (Condition::LogInconsistent, false) => return None,
            (Condition::HeartbeatRefused, true) => "heartbeat_refused",
            (Condition::HeartbeatRefused, false) => return None,
        })
    }
}

/// The alerting state of the daemon.
#[derive(Debug)]
pub struct Alerts {
    config: AlertConfig,
    /// Conditions alerted and not yet cleared.
    raised: HashMap<Condition, Instant>,
    /// When each condition last sent anything.
    last_sent: HashMap<Condition, Instant>,
    /// Offline instruments, since when (not yet alerted until `after` has passed).
    offline: HashMap<String, Instant>,
    failed_in_a_row: u32,
}

impl Alerts {
    /// Alerts as the config says; with no command, conditions are tracked but nothing is sent.
    pub fn new(config: AlertConfig) -> Alerts {
        Alerts {
            config,
            raised: HashMap::new(),
            last_sent: HashMap::new(),
            offline: HashMap::new(),
            failed_in_a_row: 0,
        }
    }

    /// An instrument went offline or came back.
    pub fn instrument(&mut self, name: &str, online: bool, at: Timestamp) -> Vec<NewEvent> {
        if online {
            self.offline.remove(name);
            self.set(
                Condition::InstrumentOffline(name.to_owned()),
                false,
                &format!("instrument {name} is online again"),
                at,
            )
        } else {
            self.offline
                .entry(name.to_owned())
                .or_insert_with(Instant::now);
            Vec::new()
        }
    }

    /// A run ended; `failed` says whether it failed.
    pub fn run_ended(&mut self, failed: bool, sequence: &str, at: Timestamp) -> Vec<NewEvent> {
        self.failed_in_a_row = if failed { self.failed_in_a_row + 1 } else { 0 };
        let active = self.failed_in_a_row >= self.config.failed_runs;
        let message = if active {
            format!(
                "{} runs failed in a row (last: {sequence})",
                self.failed_in_a_row
            )
        } else {
            format!("a run of {sequence} completed again")
        };
        self.set(Condition::RunsFailing, active, &message, at)
    }

    /// Periodic checks: instruments offline past `after`, free disk, the signing key.
    pub fn tick(
        &mut self,
        disk_free: Option<u64>,
        key_problem: Option<&str>,
        at: Timestamp,
    ) -> Vec<NewEvent> {
        let mut events = Vec::new();
        let due: Vec<(String, Duration)> = self
            .offline
            .iter()
            .map(|(name, since)| (name.clone(), since.elapsed()))
            .filter(|(_, gone)| *gone >= self.config.after)
            .collect();
        for (name, gone) in due {
            events.extend(self.set(
                Condition::InstrumentOffline(name.clone()),
                true,
                &format!("instrument {name} offline for {} s", gone.as_secs()),
                at,
            ));
        }
        if let (Some(free), Some(limit)) = (disk_free, self.config.disk_free_below) {
            let low = free < limit;
            let message = format!(
                "{:.2} GB free for the database (alert below {:.2} GB)",
                free as f64 / 1e9,
                limit as f64 / 1e9
            );
            events.extend(self.set(Condition::DiskNearlyFull, low, &message, at));
        }
        let message = key_problem.unwrap_or("the signing key is back");
        events.extend(self.set(Condition::SigningKey, key_problem.is_some(), message, at));
        events
    }

    /// The custody deadlines still open (`crate::custody::deadline::open`), each tick.
    pub fn deadlines(&mut self, open: &[OpenDeadline], at: Timestamp) -> Vec<NewEvent> {
        let mut events = Vec::new();
        for action in [DeadlineAction::Receive, DeadlineAction::Dispatch] {
            let due = Condition::Deadline(action, Phase::Due);
            let past = Condition::Deadline(action, Phase::Past);
            let Some(deadline) = open.iter().find(|d| d.action == action) else {
                events.extend(self.set(due, false, "", at));
                events.extend(self.set(past, false, "", at));
                continue;
            };
            let message = deadline.alert_message();
            match deadline.phase {
                Phase::Ahead => {
                    events.extend(self.set(due, false, "", at));
                    events.extend(self.set(past, false, "", at));
                }
                Phase::Due => events.extend(self.set(due, true, &message, at)),
                Phase::Past => {
                    // First seen already past (the daemon was down, or the notice is shorter
                    // than a tick): the past alert says it all, a "due" one would be stale.
                    self.raised.entry(due).or_insert_with(Instant::now);
                    events.extend(self.set(past, true, &message, at));
                }
            }
        }
        events
    }

    /// What the uploader reported: a refusal raises, an accepted bundle clears.
    pub fn upload(&mut self, news: &crate::daemon::upload::News, at: Timestamp) -> Vec<NewEvent> {
        use crate::daemon::upload::News;
        match news {
            News::Sent { name, .. } => {
                let mut events = self.set(
                    Condition::NotAccepted,
                    false,
                    &format!("bundle {name} accepted by the coordinator"),
                    at,
                );
                events.extend(self.set(Condition::LogInconsistent, false, "", at));
                events
            }
            News::Held { name, error, alert } => {
                let condition = if *alert == "log_inconsistent" {
                    Condition::LogInconsistent
                } else {
                    Condition::NotAccepted
                };
                self.set(
                    condition,
                    true,
                    &format!("bundle {name} not accepted: {error}"),
                    at,
                )
            }
            News::HeartbeatRefused { error, alert } => {
                let condition = if *alert == "log_inconsistent" {
                    Condition::LogInconsistent
                } else {
                    Condition::HeartbeatRefused
                };
                let events = self.set(condition.clone(), true, &format!("heartbeat: {error}"), at);
                // A refused heartbeat is news each time; an inconsistent log stays raised until a
                // bundle goes through again.
                if condition == Condition::HeartbeatRefused {
                    self.raised.remove(&Condition::HeartbeatRefused);
                }
                events
            }
        }
    }

    /// Raises or clears `condition`; returns the events of what was sent.
    fn set(
        &mut self,
        condition: Condition,
        active: bool,
        message: &str,
        at: Timestamp,
    ) -> Vec<NewEvent> {
        let was = self.raised.contains_key(&condition);
        if active == was {
            return Vec::new();
        }
        if active {
            // A flapping condition: one alert per `repeat`; the state still follows it.
            if let Some(last) = self.last_sent.get(&condition)
                && last.elapsed() < self.config.repeat
            {
                self.raised.insert(condition, Instant::now());
                return Vec::new();
            }
            self.raised.insert(condition.clone(), Instant::now());
        } else {
            self.raised.remove(&condition);
        }
        let Some(kind) = condition.kind(active) else {
            return Vec::new();
        };
        if self.config.command.is_empty() {
            // No `[alerts]` configured: the daemon's log already says all of this.
            return Vec::new();
        }
        self.last_sent.insert(condition, Instant::now());
        vec![self.send(kind, message, at)]
    }

    /// Runs the command with the kind and message as its last two arguments. It is not waited
    /// for: a hung mail relay must not hold the acquisition.
    fn send(&self, kind: &str, message: &str, at: Timestamp) -> NewEvent {
        tracing::warn!(kind, message, "alert");
        let outcome = match self.config.command.split_first() {
            None => "no command".to_owned(),
            Some((program, args)) => match Command::new(program)
                .args(args)
                .arg(kind)
                .arg(message)
                .stdin(std::process::Stdio::null())
                .spawn()
            {
                Ok(mut child) => {
                    // Waited for on a thread of its own: it never lingers as a zombie, and a
                    // command that fails (a mail relay down) is in the daemon's log.
                    let kind = kind.to_owned();
                    std::thread::spawn(move || match child.wait() {
                        Ok(status) if status.success() => {
                            tracing::info!(kind, "alert command done");
                        }
                        Ok(status) => tracing::error!(kind, %status, "alert command failed"),
                        Err(e) => tracing::error!(kind, error = %e, "alert command lost"),
                    });
                    "sent".to_owned()
                }
                Err(e) => {
                    tracing::error!(program, error = %e, "alert command could not be started");
                    format!("could not start `{program}`: {e}")
                }
            },
        };
        NewEvent::new(
            at,
            Event::AlertSent(AlertSent {
                kind: kind.to_owned(),
                message: message.to_owned(),
                outcome,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp {
            utc_us: 1_795_000_000_000_000,
            mono_ns: 1,
        }
    }

    fn quiet(after: Duration) -> Alerts {
        Alerts::new(AlertConfig {
            // Succeeds and does nothing: the tests count the events, not the messages.
            command: vec!["true".into()],
            after,
            failed_runs: 3,
            disk_free_below: Some(1_000),
            repeat: Duration::from_secs(3600),
            deadline_notice: Duration::from_secs(48 * 3600),
        })
    }

    fn kinds(events: &[NewEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.event {
                Event::AlertSent(a) => a.kind.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn uploads_alert_a_refusal_and_an_inconsistent_log_once_and_clear_on_the_next_receipt() {
        use crate::daemon::upload::News;
        let mut a = quiet(Duration::ZERO);
        let held = |alert| News::Held {
            name: "L-A-000002".into(),
            error: "409 fork".into(),
            alert,
        };
        assert_eq!(
            kinds(&a.upload(&held("upload_refused"), at())),
            ["bundle_not_accepted"]
        );
        assert!(a.upload(&held("upload_refused"), at()).is_empty(), "once");
        assert_eq!(
            kinds(&a.upload(&held("log_inconsistent"), at())),
            ["coordinator_log_inconsistent"]
        );
        let sent = News::Sent {
            name: "L-A-000002".into(),
            log_index: 7,
        };
        assert_eq!(kinds(&a.upload(&sent, at())), ["bundle_accepted"]);
        let refused = News::HeartbeatRefused {
            error: "409".into(),
            alert: "heartbeat_refused",
        };
        assert_eq!(kinds(&a.upload(&refused, at())), ["heartbeat_refused"]);
        // Another within `repeat`: the condition is news again, but rate-limited.
        assert!(a.upload(&refused, at()).is_empty());
    }

    #[test]
    fn offline_alerts_once_after_the_delay_and_once_on_recovery() {
        let mut a = quiet(Duration::ZERO);
        assert!(a.instrument("dmm", false, at()).is_empty());
        assert_eq!(kinds(&a.tick(None, None, at())), ["instrument_offline"]);
        assert!(
            a.tick(None, None, at()).is_empty(),
            "no repeat while it lasts"
        );
        assert_eq!(
            kinds(&a.instrument("dmm", true, at())),
            ["instrument_online"]
        );
        assert!(a.instrument("dmm", true, at()).is_empty());
    }

    #[test]
    fn a_short_outage_sends_nothing() {
        let mut a = quiet(Duration::from_secs(3600));
        a.instrument("dmm", false, at());
        assert!(a.tick(None, None, at()).is_empty());
        assert!(a.instrument("dmm", true, at()).is_empty());
    }

    #[test]
    fn failed_runs_alert_at_the_count_and_clear_on_success() {
        let mut a = quiet(Duration::ZERO);
        assert!(a.run_ended(true, "s", at()).is_empty());
        assert!(a.run_ended(true, "s", at()).is_empty());
        assert_eq!(kinds(&a.run_ended(true, "s", at())), ["runs_failing"]);
        assert!(a.run_ended(true, "s", at()).is_empty());
        assert_eq!(kinds(&a.run_ended(false, "s", at())), ["runs_recovered"]);
    }

    #[test]
    fn disk_and_key_alert_and_clear_and_a_flap_is_held_back() {
        let mut a = quiet(Duration::ZERO);
        assert_eq!(
            kinds(&a.tick(Some(10), Some("key missing"), at())),
            ["disk_nearly_full", "signing_key_missing"]
        );
        assert_eq!(
            kinds(&a.tick(Some(10_000), None, at())),
            ["disk_recovered", "signing_key_found"]
        );
        // Again within `repeat`: tracked, not sent.
        assert!(a.tick(Some(10), None, at()).is_empty());
    }

    fn deadline(action: DeadlineAction, phase: Phase) -> OpenDeadline {
        OpenDeadline {
            action,
            by: "2026-12-10".into(),
            utc: "2026-12-11T00:00:00Z".into(),
            phase,
            seconds_left: match phase {
                Phase::Past => -60,
                _ => 60,
            },
        }
    }

    #[test]
    fn a_deadline_alerts_once_when_due_and_once_more_when_past() {
        let mut a = quiet(Duration::ZERO);
        let ahead = [deadline(DeadlineAction::Receive, Phase::Ahead)];
        assert!(a.deadlines(&ahead, at()).is_empty());
        let due = [deadline(DeadlineAction::Receive, Phase::Due)];
        let sent = a.deadlines(&due, at());
        assert_eq!(kinds(&sent), ["custody_deadline"]);
        let Event::AlertSent(alert) = &sent[0].event else {
            panic!()
        };
        assert!(
            alert
                .message
                .starts_with("the standard is to be received by 2026-12-10"),
            "{}",
            alert.message
        );
        for _ in 0..5 {
            assert!(a.deadlines(&due, at()).is_empty(), "not every tick");
        }
        let past = [deadline(DeadlineAction::Receive, Phase::Past)];
        assert_eq!(kinds(&a.deadlines(&past, at())), ["custody_deadline"]);
        assert!(a.deadlines(&past, at()).is_empty());
        // Received: the deadline closes without a message.
        assert!(a.deadlines(&[], at()).is_empty());
        assert!(a.deadlines(&[], at()).is_empty());
    }

    #[test]
    fn a_deadline_first_seen_past_alerts_once_and_each_action_on_its_own() {
        let mut a = quiet(Duration::ZERO);
        let open = [
            deadline(DeadlineAction::Receive, Phase::Past),
            deadline(DeadlineAction::Dispatch, Phase::Due),
        ];
        assert_eq!(
            kinds(&a.deadlines(&open, at())),
            ["custody_deadline", "custody_deadline"]
        );
        assert!(a.deadlines(&open, at()).is_empty());
        // The dispatch deadline passes: one more, for it alone.
        let later = [
            deadline(DeadlineAction::Receive, Phase::Past),
            deadline(DeadlineAction::Dispatch, Phase::Past),
        ];
        let sent = a.deadlines(&later, at());
        assert_eq!(kinds(&sent), ["custody_deadline"]);
        let Event::AlertSent(alert) = &sent[0].event else {
            panic!()
        };
        assert!(alert.message.contains("dispatched"), "{}", alert.message);
    }

    #[test]
    fn without_a_command_a_deadline_sends_nothing() {
        let mut a = Alerts::new(AlertConfig {
            command: Vec::new(),
            ..quiet(Duration::ZERO).config
        });
        let past = [deadline(DeadlineAction::Dispatch, Phase::Past)];
        assert!(a.deadlines(&past, at()).is_empty());
    }
}
