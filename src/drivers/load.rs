//! From profile text, optionally with a lab's overrides merged over it, to a validated
//! [`Profile`]. Errors name the file (or the overrides' origin), the line and the dotted key.
//!
//! Overrides are merged on the parsed document, not on the deserialized structs, so every key
//! keeps the span of the text it came from: a key from the file points at its line, a key from
//! the overrides names the overrides' origin and its dotted path.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use regex_lite::Regex;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::raw::{RawErrors, RawIdentity, RawIo, RawOperation, RawPoll, RawProfile, RawReply};
use super::{
    BlockFormat, ByteOrder, ErrorFormat, ErrorSpec, IDENTITY_CAPTURES, IdentityFormat,
    IdentitySpec, IoSpec, Kind, Location, MAX_RAW_COUNT, Operation, Poll, Profile, ProfileError,
    RawFormat, ReplySpec, Source, Template,
};
use crate::transport::{DataBits, Parity, StopBits};

/// Longest duration any setting accepts (as in the lab config).
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// A duration as profiles and configs write it (`"500ms"`, `"30m"`), at most a year: timers add
/// durations to the monotonic clock, and an absurd one would overflow it. The error is the reason,
/// naming the text and giving `examples`.
pub(crate) fn parse_duration(text: &str, examples: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); examples: {examples}"))?;
    if d > MAX_DURATION {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(d)
}
/// The shortest reply deadline accepted anywhere (instrument `timeout`, a profile's `[io] timeout`,
/// an operation's or a wait's `timeout`): below it no real instrument, nor the serial line at
/// 9600 baud, can answer, so every exchange would fail as a timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// The reason a reply deadline is refused, if it is.
pub(crate) fn timeout_problem(d: Duration) -> Option<&'static str> {
    (d < MIN_TIMEOUT).then_some("at least 10ms: a shorter deadline fails every reply")
}

/// `[io] timeout` when absent.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// `wait.interval` when absent.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// `wait.timeout` when absent.
const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// `[errors] limit` when absent.
const DEFAULT_ERROR_LIMIT: u32 = 32;
/// Largest `[errors] limit`: a queue that needs more is stuck, not busy.
const MAX_ERROR_LIMIT: u32 = 1000;
/// Longest termination the transport accepts.
const MAX_TERMINATION: usize = 4;

/// Validates profile text. `source` names it in errors and gives the id it must have.
pub fn parse_profile(text: &str, source: Source) -> Result<Profile, ProfileError> {
    load(text, source, None)
}

/// Validates profile text with `overrides` deep-merged over it: tables merge key by key, any
/// other value (arrays included) replaces the file's. `overrides_origin` names the overrides in
/// errors, e.g. `lab.toml [instrument.profile] of "dmm"`.
pub fn with_overrides(
    base_text: &str,
    source: Source,
    overrides: &toml::Table,
    overrides_origin: &str,
) -> Result<Profile, ProfileError> {
    load(base_text, source, Some((overrides, overrides_origin)))
}

/// Reads and validates one profile file (`tsagent drivers check FILE`); its id must be the
/// file's stem.
pub fn check_file(path: &Path) -> Result<Profile, ProfileError> {
    let text =
        tsagent_bundle::file::read_regular_text("driver profile", path, super::MAX_PROFILE_BYTES)?;
    parse_profile(&text, Source::File(path.to_owned()))
}

fn load(
    text: &str,
    source: Source,
    overrides: Option<(&toml::Table, &str)>,
) -> Result<Profile, ProfileError> {
    let origin = source.to_string();
    let override_text: String;
    let base = DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ProfileError::Parse {
            location: Location {
                origin: origin.clone(),
                line: Some(line),
                column: Some(column),
            },
            message: e.message().trim().to_owned(),
        }
    })?;
    let mut root = base.into_inner();
    let mut end = text.len();
    if let Some((table, from)) = overrides {
        override_text = toml::to_string(table).map_err(|source| ProfileError::Overrides {
            origin: from.to_owned(),
            source,
        })?;
        let parsed = DeTable::parse(&override_text).map_err(|e| ProfileError::Parse {
            location: Location {
                origin: from.to_owned(),
                line: None,
                column: None,
            },
            message: e.message().trim().to_owned(),
        })?;
        // Override spans start past the end of the file, so a span tells which text it is in.
        let shift = text.len() + 1;
        merge(&mut root, shift_table(parsed.into_inner(), shift));
        end = shift + override_text.len();
    }
    let tree = root.clone();
    let v = Validator {
        text,
        origin: &origin,
        overrides_origin: overrides.map(|(_, from)| from),
        tree: &tree,
    };
    let raw = RawProfile::deserialize(toml::de::Deserializer::from(Spanned::new(0..end, root)))
        .map_err(|e| {
            let location = e.span().map_or_else(|| v.unlocated(), |s| v.locate(s));
            let message = e.message().trim().to_owned();
            // Without a line, say which key the parser was at.
            let message = match (location.line, e.span()) {
                (None, Some(span)) => match path_at(&tree, span.start) {
                    path if path.is_empty() => message,
                    path => format!("`{path}`: {message}"),
                },
                _ => message,
            };
            ProfileError::Parse { location, message }
        })?;
    v.profile(raw, source, overrides.map(|(_, from)| from.to_owned()))
}

/// Deep merge: tables key by key, anything else replaces.
fn merge<'i>(base: &mut DeTable<'i>, over: DeTable<'i>) {
    for (key, value) in over {
        let name: &str = key.get_ref();
        match base.get_mut(name) {
            Some(existing)
                if matches!(existing.get_ref(), DeValue::Table(_))
                    && matches!(value.get_ref(), DeValue::Table(_)) =>
            {
                if let (DeValue::Table(into), DeValue::Table(from)) =
                    (existing.get_mut(), value.into_inner())
                {
                    merge(into, from);
                }
            }
            _ => {
                base.insert(key, value);
            }
        }
    }
}

fn shift_span(span: Range<usize>, by: usize) -> Range<usize> {
    span.start.saturating_add(by)..span.end.saturating_add(by)
}

fn shift_table(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    table
        .into_iter()
        .map(|(key, value)| {
            let key_span = shift_span(key.span(), by);
            (
                Spanned::new(key_span, key.into_inner()),
                shift_value(value, by),
            )
        })
        .collect()
}

fn shift_value(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift_span(value.span(), by);
    let inner = match value.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, by)),
        DeValue::Array(mut items) => {
            // In place, so the array keeps its array-of-tables flag.
            for item in items.iter_mut() {
                let old = std::mem::replace(item, Spanned::new(0..0, DeValue::Boolean(false)));
                *item = shift_value(old, by);
            }
            DeValue::Array(items)
        }
        other => other,
    };
    Spanned::new(span, inner)
}

/// The dotted key whose key or value span holds `offset`, as deep as it goes. Merged tables
/// keep the file's span while their new keys have the overrides' spans, so the search looks
/// inside every table, not only those whose span holds the offset.
pub(crate) fn path_at(table: &DeTable<'_>, offset: usize) -> String {
    find_path(table, offset).unwrap_or_default()
}

fn find_path(table: &DeTable<'_>, offset: usize) -> Option<String> {
    table.iter().find_map(|(spanned_key, value)| {
        let key: &str = spanned_key.get_ref();
        let inner = match value.get_ref() {
            DeValue::Table(t) => find_path(t, offset),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let deeper = match item.get_ref() {
                    DeValue::Table(t) => find_path(t, offset).map(|p| format!(".{p}")),
                    _ => None,
                };
                deeper
                    .or_else(|| item.span().contains(&offset).then(String::new))
                    .map(|rest| format!("[{i}]{rest}"))
            }),
            _ => None,
        };
        match inner {
            Some(rest) if rest.starts_with('[') => Some(format!("{key}{rest}")),
            Some(rest) => Some(format!("{key}.{rest}")),
            // The key itself: an unknown field is reported at its name.
            None if spanned_key.span().contains(&offset) || value.span().contains(&offset) => {
                Some(key.to_owned())
            }
            None => None,
        }
    })
}

/// The span of the value at a dotted key (`operations.read.send[1]`), or of the deepest part of
/// it that exists.
pub(crate) fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let mut found = None;
    let mut current = Some(table);
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (
                name,
                rest.strip_suffix(']').and_then(|i| i.parse::<usize>().ok()),
            ),
            None => (segment, None),
        };
        let Some(mut value) = current.take().and_then(|t| t.get(name)) else {
            break;
        };
        found = Some(value.span());
        if let Some(i) = index {
            let Some(item) = value.get_ref().as_array().and_then(|a| a.get(i)) else {
                break;
            };
            value = item;
            found = Some(value.span());
        }
        current = value.get_ref().as_table();
    }
    found
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Profile ids: 1 to 64 of `a-z 0-9 -`, starting with a letter or digit.
pub fn is_profile_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Operation names: `a-z 0-9 _`, starting with a letter (they appear in sequence steps).
fn is_operation_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

struct Validator<'a> {
    text: &'a str,
    origin: &'a str,
    overrides_origin: Option<&'a str>,
    tree: &'a DeTable<'a>,
}

type Params = BTreeMap<String, String>;

impl Validator<'_> {
    fn unlocated(&self) -> Location {
        Location {
            origin: self.origin.to_owned(),
            line: None,
            column: None,
        }
    }

    fn locate(&self, span: Range<usize>) -> Location {
        match self.overrides_origin {
            Some(from) if span.start > self.text.len() => Location {
                origin: from.to_owned(),
                line: None,
                column: None,
            },
            _ => {
                let (line, column) = line_col(self.text, span.start);
                Location {
                    origin: self.origin.to_owned(),
                    line: Some(line),
                    column: Some(column),
                }
            }
        }
    }

    fn invalid<T>(
        &self,
        span: Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> Result<T, ProfileError> {
        Err(ProfileError::Invalid {
            location: Location {
                column: None,
                ..self.locate(span)
            },
            key: key.to_owned(),
            reason: reason.into(),
        })
    }

    /// For values the file format does not keep spans for: found by key in the document.
    fn invalid_key<T>(&self, key: &str, reason: impl Into<String>) -> Result<T, ProfileError> {
        let location = span_of(self.tree, key).map_or_else(|| self.unlocated(), |s| self.locate(s));
        Err(ProfileError::Invalid {
            location: Location {
                column: None,
                ..location
            },
            key: key.to_owned(),
            reason: reason.into(),
        })
    }

    fn profile(
        &self,
        raw: RawProfile,
        source: Source,
        overridden_by: Option<String>,
    ) -> Result<Profile, ProfileError> {
        let id = raw.id.get_ref().clone();
        if !is_profile_id(&id) {
            return self.invalid(
                raw.id.span(),
                "id",
                format!("`{id}`: use 1 to 64 of a-z 0-9 -, not starting with -"),
            );
        }
        let expected = source.expected_id();
        if id != expected {
            return self.invalid(
                raw.id.span(),
                "id",
                match &source {
                    Source::Builtin(_) => format!("`{id}` must be the built-in id `{expected}`"),
                    Source::File(_) => {
                        format!("`{id}` must match the file name `{expected}.toml`")
                    }
                },
            );
        }
        let name = raw.name.trim().to_owned();
        if name.is_empty() {
            return self.invalid_key("name", "must not be empty");
        }
        let kind = Kind::from_name(raw.kind.get_ref()).map_or_else(
            || {
                self.invalid(
                    raw.kind.span(),
                    "kind",
                    format!(
                        "`{}`: expected one of {}",
                        raw.kind.get_ref(),
                        Kind::ALL.map(Kind::as_str).join(", ")
                    ),
                )
            },
            Ok,
        )?;
        let identity = self.identity(&raw.identity)?;
        let io = self.io(&raw.io)?;
        let init = raw
            .init
            .iter()
            .enumerate()
            .map(|(i, cmd)| self.template(cmd, &format!("init[{i}]"), None))
            .collect::<Result<_, _>>()?;
        let errors = raw.errors.as_ref().map(|e| self.errors(e)).transpose()?;
        let mut operations = BTreeMap::new();
        for (op_name, op) in &raw.operations {
            operations.insert(
                op_name.clone(),
                self.operation(op_name, op, errors.is_some())?,
            );
        }
        Ok(Profile {
            id,
            name,
            kind,
            notes: raw.notes.filter(|n| !n.trim().is_empty()),
            identity,
            io,
            init,
            errors,
            operations,
            source,
            overridden_by,
        })
    }

    /// A plain one-line command (identity and error queries take no parameters).
    fn command(&self, value: &Spanned<String>, key: &str) -> Result<String, ProfileError> {
        let text = value.get_ref().trim();
        if text.is_empty() {
            return self.invalid(value.span(), key, "must not be empty");
        }
        if text.contains(['\r', '\n']) {
            return self.invalid(
                value.span(),
                key,
                "must be one line; the transport adds the termination",
            );
        }
        Ok(text.to_owned())
    }

    /// A command template whose placeholders are all in `params` (`None`: no parameters).
    fn template(
        &self,
        value: &Spanned<String>,
        key: &str,
        params: Option<&Params>,
    ) -> Result<Template, ProfileError> {
        let text = self.command(value, key)?;
        let template =
            Template::parse(&text).or_else(|e| self.invalid(value.span(), key, e.to_string()))?;
        for name in template.placeholders() {
            match params {
                None => {
                    return self.invalid(
                        value.span(),
                        key,
                        format!(
                            "`{{{name}}}`: these commands take no parameters (write `{{{{` and `}}}}` for literal braces)"
                        ),
                    );
                }
                Some(p) if !p.contains_key(name) => {
                    let defined: Vec<&str> = p.keys().map(String::as_str).collect();
                    return self.invalid(
                        value.span(),
                        key,
                        format!(
                            "`{{{name}}}` is not a parameter of this operation; define it in `params` (defined: {})",
                            if defined.is_empty() {
                                "none".to_owned()
                            } else {
                                defined.join(", ")
                            }
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        Ok(template)
    }

    fn regex(&self, value: &Spanned<String>, key: &str) -> Result<Regex, ProfileError> {
        Regex::new(value.get_ref()).or_else(|e| {
            self.invalid(
                value.span(),
                key,
                format!("not a regular expression: {}", e.to_string().trim()),
            )
        })
    }

    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ProfileError> {
        let d = parse_duration(value.get_ref(), r#""500ms", "5s", "30m""#)
            .or_else(|reason| self.invalid(value.span(), key, reason))?;
        if d.is_zero() {
            return self.invalid(value.span(), key, "must be longer than zero");
        }
        Ok(d)
    }

    /// A reply deadline: a duration of at least [`MIN_TIMEOUT`].
    fn timeout(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ProfileError> {
        let d = self.duration(value, key)?;
        match timeout_problem(d) {
            Some(reason) => self.invalid(value.span(), key, reason),
            None => Ok(d),
        }
    }

    fn identity(&self, raw: &RawIdentity) -> Result<IdentitySpec, ProfileError> {
        let query = self.command(&raw.query, "identity.query")?;
        let pattern = self.regex(&raw.pattern, "identity.pattern")?;
        let format = match &raw.format {
            None => IdentityFormat::Idn,
            Some(f) => match f.get_ref().as_str() {
                "idn" => IdentityFormat::Idn,
                "pattern" => IdentityFormat::Pattern,
                other => {
                    return self.invalid(
                        f.span(),
                        "identity.format",
                        format!("`{other}`: expected `idn` or `pattern`"),
                    );
                }
            },
        };
        for name in pattern.capture_names().flatten() {
            if !IDENTITY_CAPTURES.contains(&name) {
                return self.invalid(
                    raw.pattern.span(),
                    "identity.pattern",
                    format!(
                        "capture `{name}` is not one of {}",
                        IDENTITY_CAPTURES.join(", ")
                    ),
                );
            }
        }
        if format == IdentityFormat::Pattern
            && !pattern.capture_names().flatten().any(|n| n == "model")
        {
            return self.invalid(
                raw.pattern.span(),
                "identity.pattern",
                "with format = \"pattern\" the pattern needs a `(?P<model>…)` capture",
            );
        }
        let continues = raw
            .continues
            .as_ref()
            .map(|d| self.duration(d, "identity.continues"))
            .transpose()?;
        Ok(IdentitySpec {
            query,
            pattern,
            format,
            continues,
        })
    }

    fn io(&self, raw: &RawIo) -> Result<IoSpec, ProfileError> {
        let termination = |value: &Option<Spanned<String>>, key: &str, min: usize| match value {
            None => Ok(b"\n".to_vec()),
            Some(t) if (min..=MAX_TERMINATION).contains(&t.get_ref().len()) => {
                Ok(t.get_ref().as_bytes().to_vec())
            }
            Some(t) => self.invalid(
                t.span(),
                key,
                format!("{min} to {MAX_TERMINATION} bytes, e.g. \"\\n\" or \"\\r\\n\""),
            ),
        };
        let write_termination = termination(&raw.write_termination, "io.write_termination", 0)?;
        let read_termination = termination(&raw.read_termination, "io.read_termination", 1)?;
        let timeout = match &raw.timeout {
            Some(t) => self.timeout(t, "io.timeout")?,
            None => DEFAULT_TIMEOUT,
        };
        let baud = match raw.baud {
            Some(0) => return self.invalid_key("io.baud", "must be positive, e.g. 9600"),
            other => other,
        };
        let data_bits = match raw.data_bits {
            None => None,
            Some(7) => Some(DataBits::Seven),
            Some(8) => Some(DataBits::Eight),
            Some(other) => {
                return self.invalid_key("io.data_bits", format!("{other}: expected 7 or 8"));
            }
        };
        let parity = match &raw.parity {
            None => None,
            Some(p) => Some(match p.get_ref().as_str() {
                "none" => Parity::None,
                "even" => Parity::Even,
                "odd" => Parity::Odd,
                other => {
                    return self.invalid(
                        p.span(),
                        "io.parity",
                        format!("`{other}`: expected `none`, `even` or `odd`"),
                    );
                }
            }),
        };
        let stop_bits = match raw.stop_bits {
            None => None,
            Some(1) => Some(StopBits::One),
            Some(2) => Some(StopBits::Two),
            Some(other) => {
                return self.invalid_key("io.stop_bits", format!("{other}: expected 1 or 2"));
            }
        };
        Ok(IoSpec {
            write_termination,
            read_termination,
            timeout,
            baud,
            data_bits,
            parity,
            stop_bits,
        })
    }

    fn errors(&self, raw: &RawErrors) -> Result<ErrorSpec, ProfileError> {
        let query = self.command(&raw.query, "errors.query")?;
        let no_error = self.regex(&raw.no_error, "errors.no_error")?;
        let format = match &raw.format {
            None => ErrorFormat::CodeMessage,
            Some(f) => match f.get_ref().as_str() {
                "code_message" => ErrorFormat::CodeMessage,
                "code" => ErrorFormat::Code,
                other => {
                    return self.invalid(
                        f.span(),
                        "errors.format",
                        format!("`{other}`: expected `code_message` or `code`"),
                    );
                }
            },
        };
        let explain = match &raw.explain {
            None => None,
            Some(_) if format != ErrorFormat::Code => {
                return self.invalid_key(
                    "errors.explain",
                    "only with format = \"code\": a code_message reply carries its own text",
                );
            }
            Some(t) => {
                let params = Params::from([("code".to_owned(), String::new())]);
                Some(self.template(t, "errors.explain", Some(&params))?)
            }
        };
        let limit = match raw.limit {
            None => DEFAULT_ERROR_LIMIT,
            Some(n) if (1..=MAX_ERROR_LIMIT).contains(&n) => n,
            Some(_) => {
                return self.invalid_key("errors.limit", format!("1 to {MAX_ERROR_LIMIT}"));
            }
        };
        Ok(ErrorSpec {
            query,
            no_error,
            format,
            explain,
            limit,
            unconfirmed: raw.unconfirmed,
        })
    }

    fn operation(
        &self,
        name: &str,
        spanned: &Spanned<RawOperation>,
        has_errors: bool,
    ) -> Result<Operation, ProfileError> {
        let key = format!("operations.{name}");
        if !is_operation_name(name) {
            return self.invalid(
                spanned.span(),
                &key,
                "operation names use a-z, 0-9 and `_`, starting with a letter",
            );
        }
        let raw = spanned.get_ref();
        let mut params = Params::new();
        for (param, value) in &raw.params {
            let param_key = format!("{key}.params.{param}");
            if !super::is_param_name(param) {
                return self.invalid(
                    value.span(),
                    &param_key,
                    "parameter names use letters, digits and `_`, not starting with a digit",
                );
            }
            if value.get_ref().contains(['\r', '\n']) {
                return self.invalid(value.span(), &param_key, "must be one line");
            }
            params.insert(param.clone(), value.get_ref().clone());
        }
        let setup: Vec<Template> = raw
            .setup
            .iter()
            .enumerate()
            .map(|(i, cmd)| self.template(cmd, &format!("{key}.setup[{i}]"), Some(&params)))
            .collect::<Result<_, _>>()?;
        let send: Vec<Template> = raw
            .send
            .iter()
            .enumerate()
            .map(|(i, cmd)| self.template(cmd, &format!("{key}.send[{i}]"), Some(&params)))
            .collect::<Result<_, _>>()?;
        let wait = raw
            .wait
            .as_ref()
            .map(|w| self.poll(w, &key, &params))
            .transpose()?;
        let query = raw
            .query
            .as_ref()
            .map(|q| self.template(q, &format!("{key}.query"), Some(&params)))
            .transpose()?;
        let reply = raw
            .reply
            .as_ref()
            .map(|r| self.reply(r, &key, &params))
            .transpose()?;
        match (&raw.query, &reply) {
            (Some(q), None) => {
                return self.invalid(
                    q.span(),
                    &format!("{key}.query"),
                    "a query needs `reply` to say how its answer reads (kind = \"text\" keeps it as text)",
                );
            }
            (None, Some(_)) => {
                return self.invalid_key(
                    &format!("{key}.reply"),
                    "a reply needs the `query` that asks for it",
                );
            }
            _ => {}
        }
        if setup.is_empty() && send.is_empty() && wait.is_none() && query.is_none() {
            return self.invalid(
                spanned.span(),
                &key,
                "does nothing: give it `setup`, `send`, `wait` or `query`",
            );
        }
        let check_errors = match raw.check_errors {
            Some(true) if !has_errors => {
                return self.invalid_key(
                    &format!("{key}.check_errors"),
                    "the profile has no [errors] section to check",
                );
            }
            Some(explicit) => explicit,
            None => has_errors && !(send.is_empty() && setup.is_empty()) && query.is_none(),
        };
        if raw.opc && send.is_empty() && setup.is_empty() {
            return self.invalid_key(
                &format!("{key}.opc"),
                "`*OPC?` waits for the commands in `send`, and this operation sends none",
            );
        }
        let timeout = raw
            .timeout
            .as_ref()
            .map(|t| self.timeout(t, &format!("{key}.timeout")))
            .transpose()?;
        Ok(Operation {
            params,
            setup,
            send,
            wait,
            query,
            reply,
            check_errors,
            opc: raw.opc,
            timeout,
            unconfirmed: raw.unconfirmed,
        })
    }

    fn poll(&self, raw: &RawPoll, op_key: &str, params: &Params) -> Result<Poll, ProfileError> {
        let key = format!("{op_key}.wait");
        let query = self.template(&raw.query, &format!("{key}.query"), Some(params))?;
        if raw.mask == 0 {
            return self.invalid_key(
                &format!("{key}.mask"),
                "needs at least one bit set, e.g. 4096 for bit 12",
            );
        }
        let interval = match &raw.interval {
            Some(i) => self.duration(i, &format!("{key}.interval"))?,
            None => DEFAULT_POLL_INTERVAL,
        };
        let timeout = match &raw.timeout {
            Some(t) => self.timeout(t, &format!("{key}.timeout"))?,
            None => DEFAULT_POLL_TIMEOUT,
        };
        if interval > timeout {
            return self.invalid_key(
                &format!("{key}.interval"),
                "is longer than the wait's timeout",
            );
        }
        Ok(Poll {
            query,
            mask: raw.mask,
            interval,
            timeout,
        })
    }

    fn reply(
        &self,
        raw: &RawReply,
        op_key: &str,
        params: &Params,
    ) -> Result<ReplySpec, ProfileError> {
        let key = format!("{op_key}.reply");
        const KINDS: [&str; 6] = ["number", "csv", "regex", "block", "raw", "text"];
        let kind = raw.kind.get_ref().as_str();
        if !KINDS.contains(&kind) {
            return self.invalid(
                raw.kind.span(),
                &format!("{key}.kind"),
                format!("`{kind}`: expected one of {}", KINDS.join(", ")),
            );
        }
        // Keys that the kind does not use are mistakes (a `field` on a `number` reply, say).
        let misplaced = [
            ("field", raw.field.is_some(), &["csv"][..]),
            ("pattern", raw.pattern.is_some(), &["regex"][..]),
            ("units", !raw.units.is_empty(), &["regex"][..]),
            ("format", raw.format.is_some(), &["block", "raw"][..]),
            ("byte_order", raw.byte_order.is_some(), &["block"][..]),
            ("count", raw.count.is_some(), &["raw"][..]),
            ("terminated", raw.terminated, &["raw"][..]),
        ];
        for (field, present, kinds) in misplaced {
            if present && !kinds.contains(&kind) {
                return self.invalid_key(
                    &format!("{key}.{field}"),
                    format!(
                        "only applies to kind = {} (this reply is kind = \"{kind}\")",
                        kinds
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                );
            }
        }
        let format_of = |wanted: &[&str]| -> Result<String, ProfileError> {
            match &raw.format {
                None => self.invalid_key(
                    &key,
                    format!("kind = \"{kind}\" needs `format` ({})", wanted.join(" or ")),
                ),
                Some(f) if wanted.contains(&f.get_ref().as_str()) => Ok(f.get_ref().clone()),
                Some(f) => self.invalid(
                    f.span(),
                    &format!("{key}.format"),
                    format!("`{}`: expected {}", f.get_ref(), wanted.join(" or ")),
                ),
            }
        };
        Ok(match kind {
            "number" => ReplySpec::Number,
            "csv" => ReplySpec::Csv { field: raw.field },
            "regex" => {
                let Some(p) = &raw.pattern else {
                    return self.invalid_key(&key, "kind = \"regex\" needs `pattern`");
                };
                let pattern = self.regex(p, &format!("{key}.pattern"))?;
                let captures: Vec<&str> = pattern.capture_names().flatten().collect();
                if captures.is_empty() {
                    return self.invalid(
                        p.span(),
                        &format!("{key}.pattern"),
                        "needs at least one named capture, e.g. `T=\\s*(?P<temperature>\\S+)`",
                    );
                }
                if let Some(unit) = raw.units.keys().find(|u| !captures.contains(&u.as_str())) {
                    return self.invalid_key(
                        &format!("{key}.units.{unit}"),
                        format!(
                            "`{unit}` is not a capture of the pattern (captures: {})",
                            captures.join(", ")
                        ),
                    );
                }
                ReplySpec::Regex {
                    pattern,
                    units: raw.units.clone(),
                }
            }
            "block" => {
                let format = match format_of(&["real32", "real64"])?.as_str() {
                    "real32" => BlockFormat::Real32,
                    _ => BlockFormat::Real64,
                };
                let order = match &raw.byte_order {
                    None => ByteOrder::Big,
                    Some(o) => match o.get_ref().as_str() {
                        "big" => ByteOrder::Big,
                        "little" => ByteOrder::Little,
                        other => {
                            return self.invalid(
                                o.span(),
                                &format!("{key}.byte_order"),
                                format!("`{other}`: expected `big` or `little`"),
                            );
                        }
                    },
                };
                ReplySpec::Block { format, order }
            }
            "raw" => {
                let format = match format_of(&["sreal", "dreal"])?.as_str() {
                    "sreal" => RawFormat::SReal,
                    _ => RawFormat::DReal,
                };
                let count = match &raw.count {
                    None => Template::literal("1"),
                    Some(c) => {
                        let count_key = format!("{key}.count");
                        let t = self.template(c, &count_key, Some(params))?;
                        let fixed = t.placeholders().next().is_none();
                        let valid = |text: &str| {
                            text.trim()
                                .parse::<usize>()
                                .is_ok_and(|n| (1..=MAX_RAW_COUNT).contains(&n))
                        };
                        if fixed && !valid(c.get_ref()) {
                            return self.invalid(
                                c.span(),
                                &count_key,
                                format!(
                                    "a number of values from 1 to {MAX_RAW_COUNT}, or a template such as \"{{count}}\""
                                ),
                            );
                        }
                        t
                    }
                };
                ReplySpec::Raw {
                    format,
                    count,
                    terminated: raw.terminated,
                }
            }
            _ => ReplySpec::Text,
        })
    }
}
