//! Carrying out a profile's operations on a live session: the only part of `drivers` that talks
//! to an instrument. It returns values; storing them is the caller's job.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    Operation, Profile, ProfileMatchError, ReplyError, ReplySpec, TemplateError, UnknownParam,
    Value, block_values, parse_reply, raw_byte_len, raw_values,
};
use crate::session::{Identity, InstrumentError, Session, SessionError};

/// Largest binary block accepted from an instrument (a 34470A's 1 M-reading memory in REAL,64 is
/// 8 MB); the claimed length is checked before anything is allocated.
pub const BLOCK_CAP: usize = 64 << 20;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The profile has no such operation.
    #[error("profile `{profile}` has no operation `{op}` (it has: {known})")]
    NoSuchOperation {
        /// Profile id.
        profile: String,
        /// Requested operation.
        op: String,
        /// What it has.
        known: String,
    },
    /// A parameter the operation does not have.
    #[error("operation `{op}`")]
    Params {
        /// Operation.
        op: String,
        /// Which parameter.
        #[source]
        source: UnknownParam,
    },
    /// A command template could not be filled in.
    #[error("operation `{op}`")]
    Template {
        /// Operation.
        op: String,
        /// Why.
        #[source]
        source: TemplateError,
    },
    /// The exchange failed (timeout, disconnect, garbage …).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A reply did not read as the profile says it should.
    #[error("reply to `{command}`")]
    Reply {
        /// The query.
        command: String,
        /// Why.
        #[source]
        source: ReplyError,
    },
    /// `*OPC?` answered something other than `1`.
    #[error("`*OPC?` answered `{reply}`, not 1")]
    Opc {
        /// The reply.
        reply: String,
    },
    /// A status poll did not see its bit in time (e.g. a calibrator output that never settled).
    #[error("`{query}` did not show the awaited status within {}", humantime::format_duration(*waited))]
    WaitTimeout {
        /// The status query.
        query: String,
        /// How long it was polled.
        waited: Duration,
    },
    /// The instrument that answered is not the model the profile is for.
    #[error("identity does not match profile `{profile}`")]
    Identity {
        /// Profile id.
        profile: String,
        /// Why.
        #[source]
        source: ProfileMatchError,
    },
    /// The instrument's error queue held errors after the operation.
    #[error("the instrument reported {}", join(.errors))]
    InstrumentReported {
        /// Its errors, in queue order.
        errors: Vec<InstrumentError>,
    },
    /// The instrument is offline and could not be reached for this operation.
    #[error("instrument unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The error queue did not empty.
    #[error("the error queue did not empty after {limit} queries")]
    ErrorQueueStuck {
        /// Queries made.
        limit: u32,
    },
    /// Recovery found no reply that reads as the instrument's identity.
    #[error(
        "no identity reply to `{query}` among the next {replies} replies ({timeouts} timeouts)"
    )]
    OutOfStep {
        /// The identity query sent.
        query: String,
        /// Replies read past.
        replies: usize,
        /// Reads that timed out.
        timeouts: u32,
    },
}

impl DriverError {
    /// Whether the instrument was lost (the supervisor takes it offline).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Session(e) if e.is_connection_lost())
            || matches!(self, Self::Unavailable { .. })
    }
}

impl DriverError {
    /// Whether the conversation may be out of step with the instrument — a reply missed, cut
    /// short, late or misframed — so that the next exchange could read an old answer; the
    /// supervisor then resynchronises before anything else is sent.
    pub fn needs_resync(&self) -> bool {
        match self {
            Self::Session(e) => !e.is_connection_lost(),
            Self::Reply { .. } | Self::Opc { .. } | Self::Identity { .. } => true,
            Self::NoSuchOperation { .. }
            | Self::Params { .. }
            | Self::Template { .. }
            | Self::WaitTimeout { .. }
            | Self::InstrumentReported { .. }
            | Self::Unavailable { .. }
            | Self::ErrorQueueStuck { .. }
            | Self::OutOfStep { .. } => false,
        }
    }
}

fn join(errors: &[InstrumentError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What an operation produced.
#[derive(Debug, Clone, Default)]
pub struct OpOutcome {
    /// Values of the reply, in order (empty for operations without a query).
    pub values: Vec<Value>,
    /// The query as sent, if any: the exchange that produced the values.
    pub query: Option<String>,
}

/// Sends the profile's set-up commands and empties the error queue, failing on any error in it.
pub async fn init(profile: &Profile, session: &mut Session) -> Result<(), DriverError> {
    let params = BTreeMap::new();
    for template in &profile.init {
        let command = template
            .render(&params)
            .map_err(|source| DriverError::Template {
                op: "init".into(),
                source,
            })?;
        session.write(&command).await?;
    }
    let errors = drain_errors(profile, session).await?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DriverError::InstrumentReported { errors })
    }
}

/// Asks who the instrument is and checks that it is the profile's model.
pub async fn identify(profile: &Profile, session: &mut Session) -> Result<Identity, DriverError> {
    let mut reply = session.query(&profile.identity.query).await?;
    read_identity_rest(profile, session, &mut reply).await?;
    profile
        .identity
        .parse(&reply)
        .map_err(|source| DriverError::Identity {
            profile: profile.id.clone(),
            source,
        })
}

/// Most lines read as the rest of one identity reply.
const MAX_IDENTITY_LINES: usize = 64;

/// Appends the further lines of an identity reply that goes on over several (the profile's
/// `identity.continues`), until the line stays quiet that long, so nothing of it is left to be
/// taken for the answer to the next command.
pub async fn read_identity_rest(
    profile: &Profile,
    session: &mut Session,
    reply: &mut String,
) -> Result<(), DriverError> {
    let Some(quiet) = profile.identity.continues else {
        return Ok(());
    };
    for _ in 0..MAX_IDENTITY_LINES {
        match session.read_more_within(quiet).await? {
            Some(line) => {
                reply.push('\n');
                reply.push_str(&line);
            }
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Empties the error queue as the profile reads it; an instrument without one has none to report.
pub async fn drain_errors(
    profile: &Profile,
    session: &mut Session,
) -> Result<Vec<InstrumentError>, DriverError> {
    let Some(spec) = &profile.errors else {
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    for _ in 0..spec.limit {
        let reply = session.query(&spec.query).await?;
        if spec.is_no_error(&reply) {
            return Ok(errors);
        }
        let mut error = spec.parse(&reply).map_err(|source| DriverError::Reply {
            command: spec.query.clone(),
            source,
        })?;
        if let Some(query) = spec.explain_query(error.code) {
            let query = query.map_err(|source| DriverError::Template {
                op: "errors.explain".into(),
                source,
            })?;
            error.message = session.query(&query).await?.trim().to_owned();
        }
        errors.push(error);
    }
    Err(DriverError::ErrorQueueStuck { limit: spec.limit })
}

/// Carries out operation `name` with `params` (the step's) over `defaults` (the instrument's,
/// for the parameters this operation has). The operation's own deadline, if it has one, applies
/// to each of its replies; the session's is restored afterwards, whatever the outcome.
pub async fn run(
    profile: &Profile,
    session: &mut Session,
    name: &str,
    defaults: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
) -> Result<OpOutcome, DriverError> {
    run_with(profile, session, name, defaults, params, Series::First).await
}

/// Like [`run`] for the second and later repetitions of a series (a read step's readings): the
/// operation's `setup` commands, which only set the mode, are not sent again.
pub async fn run_again(
    profile: &Profile,
    session: &mut Session,
    name: &str,
    defaults: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
) -> Result<OpOutcome, DriverError> {
    run_with(profile, session, name, defaults, params, Series::Again).await
}

/// Whether an operation starts a series (its `setup` is sent) or repeats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    First,
    Again,
}

async fn run_with(
    profile: &Profile,
    session: &mut Session,
    name: &str,
    defaults: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
    series: Series,
) -> Result<OpOutcome, DriverError> {
    let op = profile
        .operation(name)
        .ok_or_else(|| DriverError::NoSuchOperation {
            profile: profile.id.clone(),
            op: name.to_owned(),
            known: profile
                .operations
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let params = merged(op, defaults, params).map_err(|source| DriverError::Params {
        op: name.to_owned(),
        source,
    })?;
    // An operation's own deadline (a long buffer read) wins; otherwise the instrument's, which is
    // the lab's setting or the profile's default.
    let previous = session.link().settings().timeout;
    session.set_timeout(op.timeout.unwrap_or(previous));
    let result = run_op(profile, op, session, name, &params, series).await;
    session.set_timeout(previous);
    result
}

async fn run_op(
    profile: &Profile,
    op: &Operation,
    session: &mut Session,
    name: &str,
    params: &BTreeMap<String, String>,
    series: Series,
) -> Result<OpOutcome, DriverError> {
    let render = |t: &super::Template| {
        t.render(params).map_err(|source| DriverError::Template {
            op: name.to_owned(),
            source,
        })
    };
    let setup = match series {
        Series::First => op.setup.as_slice(),
        Series::Again => &[],
    };
    for template in setup.iter().chain(&op.send) {
        session.write(&render(template)?).await?;
    }
    if op.opc {
        let reply = session.query("*OPC?").await?;
        if reply.trim() != "1" {
            return Err(DriverError::Opc { reply });
        }
    }
    if let Some(poll) = &op.wait {
        let query = render(&poll.query)?;
        let started = tokio::time::Instant::now();
        loop {
            let reply = session.query(&query).await?;
            if poll.is_done(&reply).map_err(|source| DriverError::Reply {
                command: query.clone(),
                source,
            })? {
                break;
            }
            if started.elapsed() + poll.interval > poll.timeout {
                return Err(DriverError::WaitTimeout {
                    query,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(poll.interval).await;
        }
    }
    let mut outcome = OpOutcome::default();
    if let (Some(query), Some(spec)) = (&op.query, &op.reply) {
        let command = render(query)?;
        let reply_error = |source| DriverError::Reply {
            command: command.clone(),
            source,
        };
        outcome.values = match spec {
            ReplySpec::Block { format, order } => {
                let payload = session.query_block(&command, BLOCK_CAP).await?;
                block_values(&payload, *format, *order).map_err(reply_error)?
            }
            ReplySpec::Raw {
                format,
                count,
                terminated,
            } => {
                let len = raw_byte_len(*format, count, params).map_err(reply_error)?;
                let bytes = session.query_exact(&command, len, *terminated).await?;
                raw_values(&bytes, *format).map_err(reply_error)?
            }
            _ => {
                let text = session.query(&command).await?;
                parse_reply(spec, &text).map_err(reply_error)?
            }
        };
        outcome.query = Some(command);
    }
    if op.check_errors {
        let errors = drain_errors(profile, session).await?;
        if !errors.is_empty() {
            return Err(DriverError::InstrumentReported { errors });
        }
    }
    Ok(outcome)
}

/// The operation's parameters: its defaults, then the instrument's values for names it has,
/// then the step's (which must all be names it has).
fn merged(
    op: &Operation,
    defaults: &BTreeMap<String, String>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, UnknownParam> {
    let mut layered: BTreeMap<String, String> = defaults
        .iter()
        .filter(|(k, _)| op.params.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    layered.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    op.params_with(&layered)
}
