//! The driver profile file format, as written: one TOML file per instrument model in `drivers/`.
//!
//! This is the contract between profile authors (labs, us) and the agent; the validated form is in
//! the parent module. Every table denies unknown keys. Strings in `send`, `query` and `poll.query`
//! are templates: `{name}` is replaced by the operation's parameter `name` (defaults in `params`,
//! overridden by the sequence step or the lab's config); `{{` and `}}` are literal braces.
//! Parameter names are ASCII letters, digits and `_`, not starting with a digit; a template may
//! only use parameters its operation's `params` defines. Commands are trimmed and must be one
//! line: the transport adds the termination.
//!
//! A lab's config can override any part of a profile for one instrument (`[instrument.profile]`,
//! merged over the file key by key), which is how commands the reference could not confirm are
//! replaced without editing the shipped file.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A whole profile file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Unique id, e.g. `keysight-34470a` (`[a-z0-9-]`); the file is `<id>.toml`.
    pub id: Spanned<String>,
    /// Human-readable model name.
    pub name: String,
    /// What the instrument is: `dmm`, `calibrator`, `thermometer`, `environment` or `generic`.
    pub kind: Spanned<String>,
    /// Notes for people: sources, caveats, what is unconfirmed.
    #[serde(default)]
    pub notes: Option<String>,
    /// How to ask who it is.
    pub identity: RawIdentity,
    /// Terminations and the default timeout.
    #[serde(default)]
    pub io: RawIo,
    /// Commands sent after every connect and reconnect, in order.
    #[serde(default)]
    pub init: Vec<Spanned<String>>,
    /// The error queue (absent: the instrument has none the agent can read).
    pub errors: Option<RawErrors>,
    /// Operations by name: `configure`, `read`, `read_buffer`, `source_set`, `source_operate`,
    /// `source_standby`, `source_settled`, `env_read`, or any other name a sequence may use
    /// (`a-z 0-9 _`, starting with a letter).
    #[serde(default)]
    pub operations: BTreeMap<String, Spanned<RawOperation>>,
}

/// `[identity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// The query, e.g. `*IDN?` or `ID?` (3458A).
    pub query: Spanned<String>,
    /// A regular expression the reply must match for this profile to apply. Named captures
    /// `manufacturer`, `model`, `serial`, `firmware` fill the identity where the reply is not an
    /// IEEE 488.2 `*IDN?` reply (with `format = "idn"` the four comma-separated fields are used).
    pub pattern: Spanned<String>,
    /// `idn` (four comma-separated fields, the default) or `pattern` (named captures only; the
    /// pattern must then have a `model` capture). Capture names other than the four above are
    /// an error.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// The reply goes on over more lines (the Vaisala `?`): they are read until none arrives for
    /// this long, e.g. `"300ms"`, and the pattern is matched against all of them joined by `\n`.
    #[serde(default)]
    pub continues: Option<Spanned<String>>,
}

/// `[io]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIo {
    /// Appended to every command (default `"\n"`; at most 4 bytes).
    pub write_termination: Option<Spanned<String>>,
    /// Ends every text reply (default `"\n"`; 1 to 4 bytes).
    pub read_termination: Option<Spanned<String>>,
    /// Default deadline for one reply (default `"5s"`).
    pub timeout: Option<Spanned<String>>,
    /// Serial defaults for this model (a lab's config may override), e.g. Vaisala 4800 7E1.
    pub baud: Option<u32>,
    /// Serial data bits, 7 or 8.
    pub data_bits: Option<u8>,
    /// Serial parity: `none`, `even`, `odd`.
    pub parity: Option<Spanned<String>>,
    /// Serial stop bits, 1 or 2.
    pub stop_bits: Option<u8>,
}

/// `[errors]`: how to read the instrument's error queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawErrors {
    /// The query, e.g. `SYST:ERR?`, `ERRSTR?`, `FAULT?`.
    pub query: Spanned<String>,
    /// A regular expression matching the reply that means "no error", e.g. `^[+]?0,`.
    pub no_error: Spanned<String>,
    /// How a reply reads: `code_message` (`<code>,"<message>"`, the default) or `code` (a bare
    /// number, with `explain` to get the text).
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// Query template that turns a code into text, e.g. `EXPLAIN? {code}` (5720A). Only with
    /// `format = "code"`; `{code}` is its only parameter.
    pub explain: Option<Spanned<String>>,
    /// Most queries in one drain before the queue counts as stuck (default 32, at most 1000).
    pub limit: Option<u32>,
    /// True where the reference could not confirm the command; `drivers show` flags it.
    #[serde(default)]
    pub unconfirmed: bool,
}

/// One operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    /// Parameter defaults; a step or the lab's config may override them.
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<String>>,
    /// Commands that put the instrument in the mode the operation needs (templates), written once
    /// before a series of it — a read step's repetitions — rather than before every one.
    #[serde(default)]
    pub setup: Vec<Spanned<String>>,
    /// Commands written in order (templates), every time.
    #[serde(default)]
    pub send: Vec<Spanned<String>>,
    /// Wait for a status condition before the query: the stale-reading guard (1594A new-reading
    /// flag) or a calibrator's settle bit.
    pub wait: Option<RawPoll>,
    /// The query whose reply is the operation's result (template). `query` and `reply` come
    /// together. An operation needs at least one of `send`, `wait` and `query`.
    pub query: Option<Spanned<String>>,
    /// How to read that reply.
    pub reply: Option<RawReply>,
    /// Drain the error queue after the operation, and fail it with the instrument's own text if
    /// anything was queued. Default: true when the operation sends commands, has no query and
    /// the profile has `[errors]`; `true` without `[errors]` is an error.
    pub check_errors: Option<bool>,
    /// Ask `*OPC?` after `send` and wait for `1` (instruments that support it). Needs `send`.
    #[serde(default)]
    pub opc: bool,
    /// Deadline for this operation's reply (default `[io] timeout`).
    pub timeout: Option<Spanned<String>>,
    /// True where the reference could not confirm the commands; `drivers show` flags it.
    #[serde(default)]
    pub unconfirmed: bool,
}

/// `wait = { query, mask, … }`: poll a status query until a bit is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    /// The status query, e.g. `ISR?` or `STAT:OPER?` (template).
    pub query: Spanned<String>,
    /// Done when `reply & mask != 0` (the reply read as an integer). Must not be 0.
    pub mask: u64,
    /// Time between polls (default `"100ms"`).
    pub interval: Option<Spanned<String>>,
    /// Give up after this long (default `"30s"`, not shorter than `interval`); the operation
    /// fails with a timeout.
    pub timeout: Option<Spanned<String>>,
}

/// `reply = { kind = …, … }`: how a reply becomes values. A key the kind does not use (a `field`
/// on a `number` reply, say) is an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReply {
    /// `number`, `csv`, `regex`, `block`, `raw` or `text`.
    pub kind: Spanned<String>,
    /// `csv`: 0-based field to take; absent: every field is a value.
    pub field: Option<usize>,
    /// `regex`: pattern with named captures; each capture is one value named after it, and
    /// every capture must take part in the match.
    pub pattern: Option<Spanned<String>>,
    /// `regex`: unit per capture name, e.g. `{ temperature = "°C", humidity = "%RH" }`.
    #[serde(default)]
    pub units: BTreeMap<String, String>,
    /// `block`: `real32` or `real64`; `raw`: `sreal` (4 bytes) or `dreal` (8 bytes). Required
    /// for both.
    pub format: Option<Spanned<String>>,
    /// `block`: `big` (Keysight `FORM:BORD NORM`, the default) or `little` (`SWAP`). Raw SREAL/DREAL
    /// is always big-endian.
    pub byte_order: Option<Spanned<String>>,
    /// `raw`: how many values (template, e.g. `"{count}"`; default 1; a fixed number must be 1
    /// to 2^24).
    pub count: Option<Spanned<String>>,
    /// `raw`: whether the instrument sends the read termination after the binary data.
    #[serde(default)]
    pub terminated: bool,
}
