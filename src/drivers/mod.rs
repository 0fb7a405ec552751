//! Driver profiles: what each instrument model is asked and how its replies read.
//!
//! A profile is a TOML file (`drivers/<id>.toml`, format in [`raw`] and `drivers/README.md`):
//! identity query and pattern, terminations, set-up commands, the error queue, and named
//! operations (`configure`, `read`, `read_buffer`, `source_set`, …) made of command templates, an
//! optional status poll, a query and how its reply reads. [`Profile`] is the validated form;
//! [`Registry`] holds the built-in profiles and a lab's own.
//!
//! **Architecture Invariant:** apart from [`exec`], which carries operations out on a live
//! session, this module does no I/O except reading profile files: it turns text into a validated
//! model and replies into values. Nothing here touches the store.

mod describe;
pub mod exec;
mod load;
pub mod raw;
mod registry;
mod reply;
mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use regex_lite::Regex;

use crate::session::{Identity, InstrumentError, SessionError, parse_idn};
use crate::transport::{DataBits, Parity, StopBits, preview};

pub use describe::describe;
pub use load::MIN_TIMEOUT;
pub use load::{check_file, is_profile_id, parse_profile, with_overrides};
pub(crate) use load::{parse_duration, path_at, span_of, timeout_problem};
pub use registry::{BUILTIN, Registry, builtin_text};
pub use reply::{
    BlockFormat, ByteOrder, MAX_RAW_COUNT, RawFormat, ReplyError, ReplySpec, Value, block_values,
    classify, decode_block, decode_raw, parse_code, parse_code_message, parse_register,
    parse_reply, raw_byte_len, raw_values,
};
pub use template::{Template, TemplateError, escape, is_param_name};

/// A validated driver profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Unique id, `[a-z0-9-]`, equal to the file stem.
    pub id: String,
    /// Human-readable model name.
    pub name: String,
    /// What the instrument is.
    pub kind: Kind,
    /// Notes for people.
    pub notes: Option<String>,
    /// How to ask who it is and recognise the answer.
    pub identity: IdentitySpec,
    /// Terminations, timeout, serial defaults.
    pub io: IoSpec,
    /// Commands sent after every connect and reconnect.
    pub init: Vec<Template>,
    /// The error queue, if the instrument has one the agent can read.
    pub errors: Option<ErrorSpec>,
    /// Operations by name.
    pub operations: BTreeMap<String, Operation>,
    /// Where the profile came from.
    pub source: Source,
    /// Where overrides merged over the file came from (a lab's config), if any.
    pub overridden_by: Option<String>,
}

impl Profile {
    /// The operation with this name.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// Whether anything in the profile is marked unconfirmed.
    pub fn has_unconfirmed(&self) -> bool {
        self.errors.as_ref().is_some_and(|e| e.unconfirmed)
            || self.operations.values().any(|o| o.unconfirmed)
    }
}

/// What an instrument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A multimeter.
    Dmm,
    /// A calibrator or source.
    Calibrator,
    /// A thermometer readout.
    Thermometer,
    /// An environment sensor (pressure, temperature, humidity).
    Environment,
    /// Anything else.
    Generic,
}

impl Kind {
    /// Every kind, in the order profiles list them.
    pub const ALL: [Kind; 5] = [
        Kind::Dmm,
        Kind::Calibrator,
        Kind::Thermometer,
        Kind::Environment,
        Kind::Generic,
    ];

    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dmm => "dmm",
            Kind::Calibrator => "calibrator",
            Kind::Thermometer => "thermometer",
            Kind::Environment => "environment",
            Kind::Generic => "generic",
        }
    }

    /// The kind with this profile name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a profile came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Compiled in from `drivers/<id>.toml`.
    Builtin(String),
    /// Read from a file.
    File(PathBuf),
}

impl Source {
    /// The id the profile must have: the built-in id or the file stem.
    fn expected_id(&self) -> String {
        match self {
            Source::Builtin(id) => id.clone(),
            Source::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin(id) => write!(f, "drivers/{id}.toml (built in)"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `[identity]`.
#[derive(Debug, Clone)]
pub struct IdentitySpec {
    /// The query, e.g. `*IDN?` or `ID?`.
    pub query: String,
    /// What the reply must match for the profile to apply.
    pub pattern: Regex,
    /// How the reply becomes an [`Identity`].
    pub format: IdentityFormat,
    /// For a reply of several lines: how long the line must stay quiet to mark its end.
    pub continues: Option<Duration>,
}

/// How an identity reply is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityFormat {
    /// IEEE 488.2 `*IDN?`: four comma-separated fields.
    Idn,
    /// Named captures `manufacturer`, `model`, `serial`, `firmware` (missing ones are empty;
    /// `model` is required).
    Pattern,
}

impl IdentityFormat {
    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityFormat::Idn => "idn",
            IdentityFormat::Pattern => "pattern",
        }
    }
}

/// Capture names an identity pattern may use.
pub const IDENTITY_CAPTURES: [&str; 4] = ["manufacturer", "model", "serial", "firmware"];

/// The reply to the identity query is not this profile's instrument.
#[derive(Debug, thiserror::Error)]
pub enum ProfileMatchError {
    /// The pattern does not match.
    #[error("identity reply `{}` does not match `{pattern}`", preview(reply.as_bytes()))]
    NoMatch {
        /// The reply.
        reply: String,
        /// The profile's pattern.
        pattern: String,
    },
    /// The pattern matches but the reply is not a four-field `*IDN?` reply.
    #[error("identity reply is not an IEEE 488.2 *IDN? reply")]
    Idn(#[source] SessionError),
    /// The pattern matches but its `model` capture is empty.
    #[error("identity reply `{}` matches `{pattern}` but gives no model", preview(reply.as_bytes()))]
    NoModel {
        /// The reply.
        reply: String,
        /// The profile's pattern.
        pattern: String,
    },
}

impl IdentitySpec {
    /// Whether the identity carries a serial number: `*IDN?` has a field for it; a pattern must
    /// capture `serial`.
    pub fn reports_serial(&self) -> bool {
        match self.format {
            IdentityFormat::Idn => true,
            IdentityFormat::Pattern => self
                .pattern
                .capture_names()
                .flatten()
                .any(|n| n == "serial"),
        }
    }

    /// Checks a reply against the pattern and reads the identity from it. Surrounding
    /// whitespace (a CR before the LF terminator, say) is ignored.
    pub fn parse(&self, reply: &str) -> Result<Identity, ProfileMatchError> {
        let text = reply.trim_ascii();
        let captures = self
            .pattern
            .captures(text)
            .ok_or_else(|| ProfileMatchError::NoMatch {
                reply: reply.to_owned(),
                pattern: self.pattern.as_str().to_owned(),
            })?;
        match self.format {
            IdentityFormat::Idn => parse_idn(text).map_err(ProfileMatchError::Idn),
            IdentityFormat::Pattern => {
                let field = |name: &str| {
                    captures
                        .name(name)
                        .map_or(String::new(), |m| m.as_str().trim().to_owned())
                };
                let identity = Identity {
                    manufacturer: field("manufacturer"),
                    model: field("model"),
                    serial: field("serial"),
                    firmware: field("firmware"),
                };
                if identity.model.is_empty() {
                    return Err(ProfileMatchError::NoModel {
                        reply: reply.to_owned(),
                        pattern: self.pattern.as_str().to_owned(),
                    });
                }
                Ok(identity)
            }
        }
    }

    /// Whether a reply is this profile's instrument.
    pub fn matches(&self, reply: &str) -> bool {
        self.parse(reply).is_ok()
    }
}

/// `[io]`, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// Appended to every command.
    pub write_termination: Vec<u8>,
    /// Ends every text reply.
    pub read_termination: Vec<u8>,
    /// Default deadline for one reply.
    pub timeout: Duration,
    /// Serial baud rate default.
    pub baud: Option<u32>,
    /// Serial data bits default.
    pub data_bits: Option<DataBits>,
    /// Serial parity default.
    pub parity: Option<Parity>,
    /// Serial stop bits default.
    pub stop_bits: Option<StopBits>,
}

/// `[errors]`.
#[derive(Debug, Clone)]
pub struct ErrorSpec {
    /// The query that reads one entry.
    pub query: String,
    /// Matches the reply meaning "queue empty".
    pub no_error: Regex,
    /// How an entry reads.
    pub format: ErrorFormat,
    /// Query turning a code into text (`{code}` is the only parameter).
    pub explain: Option<Template>,
    /// Most queries in one drain.
    pub limit: u32,
    /// Whether the reference could not confirm the query.
    pub unconfirmed: bool,
}

/// How an error-queue reply reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `<code>,"<message>"`.
    CodeMessage,
    /// A bare integer.
    Code,
}

impl ErrorFormat {
    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorFormat::CodeMessage => "code_message",
            ErrorFormat::Code => "code",
        }
    }
}

impl ErrorSpec {
    /// Whether the reply means the queue is empty (matched after trimming whitespace).
    pub fn is_no_error(&self, reply: &str) -> bool {
        self.no_error.is_match(reply.trim_ascii())
    }

    /// Reads one entry. With [`ErrorFormat::Code`] the message is empty; fill it with the
    /// reply to [`ErrorSpec::explain_query`].
    pub fn parse(&self, reply: &str) -> Result<InstrumentError, ReplyError> {
        match self.format {
            ErrorFormat::CodeMessage => parse_code_message(reply),
            ErrorFormat::Code => parse_code(reply),
        }
    }

    /// The query that explains `code`, if the profile has one.
    pub fn explain_query(&self, code: i32) -> Option<Result<String, TemplateError>> {
        let params = BTreeMap::from([("code".to_owned(), code.to_string())]);
        self.explain.as_ref().map(|t| t.render(&params))
    }
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Parameter defaults.
    pub params: BTreeMap<String, String>,
    /// Commands that set the mode, written once before a series of the operation.
    pub setup: Vec<Template>,
    /// Commands written in order, every time.
    pub send: Vec<Template>,
    /// Status poll before the query.
    pub wait: Option<Poll>,
    /// The query whose reply is the result.
    pub query: Option<Template>,
    /// How that reply reads (present exactly when `query` is).
    pub reply: Option<ReplySpec>,
    /// Drain the error queue afterwards and fail on any entry.
    pub check_errors: bool,
    /// Ask `*OPC?` after `send`.
    pub opc: bool,
    /// Deadline for this operation's reply, if not the profile's default.
    pub timeout: Option<Duration>,
    /// Whether the reference could not confirm the commands.
    pub unconfirmed: bool,
}

/// A parameter the caller gave that the operation does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation has no parameter `{name}` (it has: {known})")]
pub struct UnknownParam {
    /// The name given.
    pub name: String,
    /// The operation's parameters, comma-separated.
    pub known: String,
}

impl Operation {
    /// The operation's defaults with `given` values laid over them. A name the operation does
    /// not define is an error, so a typo in a sequence step is not silently ignored.
    pub fn params_with(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, UnknownParam> {
        let mut params = self.params.clone();
        for (name, value) in given {
            match params.get_mut(name) {
                Some(slot) => slot.clone_from(value),
                None => {
                    return Err(UnknownParam {
                        name: name.clone(),
                        known: self
                            .params
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Ok(params)
    }

    /// The deadline for this operation's reply.
    pub fn timeout_or(&self, io: &IoSpec) -> Duration {
        self.timeout.unwrap_or(io.timeout)
    }
}

/// `wait = { … }`: poll a status query until a bit is set.
#[derive(Debug, Clone)]
pub struct Poll {
    /// The status query.
    pub query: Template,
    /// Done when `reply & mask != 0`.
    pub mask: u64,
    /// Time between polls.
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Poll {
    /// Whether a status reply has a bit of the mask set.
    pub fn is_done(&self, reply: &str) -> Result<bool, ReplyError> {
        Ok(parse_register(reply)? & self.mask != 0)
    }
}

/// Where a profile problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or built-in profile, or the overrides' origin).
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Largest driver profile file read (the built-in ones are a few KiB).
pub(crate) const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// A driver profile problem, located.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile path is not a regular file (a FIFO is refused, not waited on) or is too large.
    #[error(transparent)]
    File(#[from] tsagent_bundle::file::FileError),
    /// A profile folder could not be listed.
    #[error("cannot list driver profiles in `{}`", path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, or has an unknown key or a value of the wrong type.
    #[error("{location}: {message}")]
    Parse {
        /// Where.
        location: Location,
        /// The parser's message (which names the key), prefixed with the key path when the
        /// location has no line.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("{location}: invalid `{key}`: {reason}")]
    Invalid {
        /// Where.
        location: Location,
        /// Dotted key, e.g. `operations.read.query`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The override table could not be turned back into TOML to merge it.
    #[error("{origin}: profile overrides cannot be read as TOML")]
    Overrides {
        /// Where the overrides came from.
        origin: String,
        /// Why.
        #[source]
        source: toml::ser::Error,
    },
    /// No profile has this id.
    #[error("no driver profile `{id}` (known: {known})")]
    Unknown {
        /// The id asked for.
        id: String,
        /// Known ids, comma-separated.
        known: String,
    },
}

#[cfg(test)]
mod tests;
