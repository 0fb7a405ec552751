//! `allowed_signers` as `ssh-keygen -Y verify` reads it (ssh-keygen(1), "ALLOWED SIGNERS").
//!
//! Each line is `principals [options] keytype base64key [comment]`. Principals and the
//! `namespaces` option are OpenSSH pattern-lists: comma-separated patterns with `*` and `?`, a
//! leading `!` negates and a negated match vetoes the list. Deviation from OpenSSH: a
//! `valid-after`/`valid-before` time without `Z` is read as UTC, not as local time, because this
//! crate has no time-zone database.

use std::time::{SystemTime, UNIX_EPOCH};

use ssh_key::{Algorithm, PublicKey};
use thiserror::Error;

/// A line of `allowed_signers` that could not be parsed; `line` counts from 1.
#[derive(Debug, Error)]
#[error("line {line} is invalid")]
pub struct AllowedSignersError {
    /// The offending line.
    pub line: usize,
    /// What is wrong with it.
    #[source]
    pub reason: SignersLineError,
}

/// What is wrong with one `allowed_signers` line.
#[derive(Debug, Error)]
pub enum SignersLineError {
    /// A `"` without its closing partner.
    #[error("unterminated quote")]
    UnterminatedQuote,
    /// Principals but no key type and key.
    #[error("missing key")]
    MissingKey,
    /// An option this parser (and OpenSSH) does not know.
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    /// The same option twice.
    #[error("option `{0}` given twice")]
    DuplicateOption(&'static str),
    /// An option value not in double quotes.
    #[error("option `{0}` needs a double-quoted value")]
    UnquotedValue(&'static str),
    /// A `valid-after`/`valid-before` value that is not `YYYYMMDD[HHMM[SS]][Z]`.
    #[error("invalid time `{0}`")]
    InvalidTime(String),
    /// `valid-before` is not later than `valid-after`.
    #[error("valid-before is not after valid-after")]
    EmptyValidity,
    /// The key type and base64 do not form a public key.
    #[error("invalid public key")]
    Key(#[source] crate::ssh::SshError),
}

/// One usable line.
#[derive(Debug, Clone, PartialEq)]
pub struct SignerEntry {
    /// The principals pattern-list.
    pub principals: String,
    /// `cert-authority`: the key certifies signers rather than signing; never matches a plain key.
    pub cert_authority: bool,
    /// The `namespaces` pattern-list, if restricted.
    pub namespaces: Option<String>,
    /// Seconds since the epoch from which the key is valid (inclusive).
    pub valid_after: Option<u64>,
    /// Seconds since the epoch until which the key is valid (inclusive).
    pub valid_before: Option<u64>,
    /// The key.
    pub key: PublicKey,
}

impl SignerEntry {
    /// Whether the line names `principal` (its principals pattern-list matches it).
    pub fn allows(&self, principal: &str) -> bool {
        match_pattern_list(principal, &self.principals)
    }

    /// A plain key (not a CA) allowed in `namespace` at `now` (seconds since the epoch).
    fn usable(&self, namespace: &str, now: u64) -> bool {
        !self.cert_authority
            && self
                .namespaces
                .as_deref()
                .is_none_or(|ns| match_pattern_list(namespace, ns))
            && self.valid_after.is_none_or(|t| now >= t)
            && self.valid_before.is_none_or(|t| now <= t)
    }
}

/// The principals field of an `allowed_signers` line, unquoted; `None` for blank and comment lines
/// and lines that do not tokenise.
pub(crate) fn line_principals(line: &str) -> Option<&str> {
    let line = line.trim_matches([' ', '\t', '\r']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (principals, _) = take_token(line).ok()?;
    match principals.strip_prefix('"') {
        Some(inner) => inner.strip_suffix('"'),
        None => Some(principals),
    }
}

/// A parsed `allowed_signers` file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedSigners {
    /// The entries, in file order.
    pub entries: Vec<SignerEntry>,
    /// Lines (from 1) whose key type this build cannot decode (e.g. ECDSA). Skipping them is safe:
    /// such a key can never have made an Ed25519 signature, and a line only ever adds keys.
    pub skipped: Vec<usize>,
}

impl AllowedSigners {
    /// Parses the whole file; any bad line rejects it, as a half-read trust list would mislead.
    pub fn parse(text: &str) -> Result<Self, AllowedSignersError> {
        let mut signers = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            match parse_line(line) {
                Ok(Line::Entry(entry)) => signers.entries.push(entry),
                Ok(Line::Unsupported) => signers.skipped.push(line_no),
                Ok(Line::Blank) => {}
                Err(reason) => {
                    return Err(AllowedSignersError {
                        line: line_no,
                        reason,
                    });
                }
            }
        }
        Ok(signers)
    }

    /// The lines that let `key` sign in `namespace` at `now`, for whichever principals they name.
    pub fn entries_for_key(
        &self,
        key: &ssh_key::public::KeyData,
        namespace: &str,
        now: SystemTime,
    ) -> Vec<&SignerEntry> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.entries
            .iter()
            .filter(|e| e.usable(namespace, now) && e.key.key_data() == key)
            .collect()
    }

    /// The plain keys allowed to sign as `principal` in `namespace` at `now`.
    pub fn keys_for(&self, principal: &str, namespace: &str, now: SystemTime) -> Vec<&PublicKey> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.entries
            .iter()
            .filter(|e| e.usable(namespace, now) && e.allows(principal))
            .map(|e| &e.key)
            .collect()
    }
}

/// Splits off a leading token ending at unquoted whitespace; returns (token, rest).
fn take_token(text: &str) -> Result<(&str, &str), SignersLineError> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => {
                return Ok((&text[..i], text[i..].trim_start_matches([' ', '\t'])));
            }
            _ => {}
        }
    }
    if quoted {
        Err(SignersLineError::UnterminatedQuote)
    } else {
        Ok((text, ""))
    }
}

fn is_key_type(token: &str) -> bool {
    Algorithm::new(token).is_ok_and(|a| !matches!(a, Algorithm::Other(_)))
}

/// What one line turned out to be.
enum Line {
    Blank,
    Unsupported,
    Entry(SignerEntry),
}

fn parse_line(line: &str) -> Result<Line, SignersLineError> {
    let line = line.trim_matches([' ', '\t', '\r']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Blank);
    }
    let (principals, rest) = take_token(line)?;
    // OpenSSH allows the whole principals field in double quotes.
    let principals = match principals.strip_prefix('"') {
        Some(inner) => inner
            .strip_suffix('"')
            .ok_or(SignersLineError::UnterminatedQuote)?,
        None => principals,
    };
    let (first, rest) = take_token(rest)?;
    let (options, key_type, rest) = if is_key_type(first) {
        (None, first, rest)
    } else {
        let (key_type, rest) = take_token(rest)?;
        (Some(first), key_type, rest)
    };
    let (base64, _comment) = take_token(rest)?;
    if principals.is_empty() || key_type.is_empty() || base64.is_empty() {
        return Err(SignersLineError::MissingKey);
    }
    let mut restrictions = Restrictions::default();
    if let Some(options) = options {
        parse_options(options, &mut restrictions)?;
    }
    let key = match PublicKey::from_openssh(&format!("{key_type} {base64}")) {
        Ok(key) => key,
        Err(_) if key_type != Algorithm::Ed25519.as_str() => return Ok(Line::Unsupported),
        Err(e) => return Err(SignersLineError::Key(e.into())),
    };
    Ok(Line::Entry(SignerEntry {
        principals: principals.to_owned(),
        cert_authority: restrictions.cert_authority,
        namespaces: restrictions.namespaces,
        valid_after: restrictions.valid_after,
        valid_before: restrictions.valid_before,
        key,
    }))
}

/// The options of one line.
#[derive(Default)]
struct Restrictions {
    cert_authority: bool,
    namespaces: Option<String>,
    valid_after: Option<u64>,
    valid_before: Option<u64>,
}

fn parse_options(mut text: &str, entry: &mut Restrictions) -> Result<(), SignersLineError> {
    while !text.is_empty() {
        let name_end = text.find([',', '=']).unwrap_or(text.len());
        let (name, after) = text.split_at(name_end);
        let lower = name.to_ascii_lowercase();
        if let Some(value_and_rest) = after.strip_prefix('=') {
            let (value, after_value) = dequote(value_and_rest, &lower)?;
            match lower.as_str() {
                "namespaces" => set_once(&mut entry.namespaces, value, "namespaces")?,
                "valid-after" => {
                    set_once(&mut entry.valid_after, parse_time(&value)?, "valid-after")?
                }
                "valid-before" => {
                    set_once(&mut entry.valid_before, parse_time(&value)?, "valid-before")?
                }
                _ => return Err(SignersLineError::UnknownOption(name.to_owned())),
            }
            text = after_value;
        } else if lower == "cert-authority" {
            entry.cert_authority = true;
            text = after;
        } else {
            return Err(SignersLineError::UnknownOption(name.to_owned()));
        }
        match text.strip_prefix(',') {
            Some("") => return Err(SignersLineError::UnknownOption(String::new())),
            Some(next) => text = next,
            None if text.is_empty() => {}
            None => return Err(SignersLineError::UnknownOption(text.to_owned())),
        }
    }
    if let (Some(after), Some(before)) = (entry.valid_after, entry.valid_before)
        && before <= after
    {
        return Err(SignersLineError::EmptyValidity);
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), SignersLineError> {
    if slot.is_some() {
        return Err(SignersLineError::DuplicateOption(name));
    }
    *slot = Some(value);
    Ok(())
}

/// A double-quoted option value (`\"` stands for `"`); returns it and the text after the quote.
fn dequote<'a>(text: &'a str, option: &str) -> Result<(String, &'a str), SignersLineError> {
    let static_name = match option {
        "namespaces" => "namespaces",
        "valid-after" => "valid-after",
        "valid-before" => "valid-before",
        _ => return Err(SignersLineError::UnknownOption(option.to_owned())),
    };
    let inner = text
        .strip_prefix('"')
        .ok_or(SignersLineError::UnquotedValue(static_name))?;
    let mut value = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &inner[i + 1..])),
            '\\' if inner[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            _ => value.push(c),
        }
    }
    Err(SignersLineError::UnterminatedQuote)
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally followed by `Z` or `UTC`.
fn parse_time(text: &str) -> Result<u64, SignersLineError> {
    let invalid = || SignersLineError::InvalidTime(text.to_owned());
    let upper = text.to_ascii_uppercase();
    let digits = upper
        .strip_suffix("UTC")
        .or_else(|| upper.strip_suffix('Z'))
        .unwrap_or(&upper);
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let num = |range: std::ops::Range<usize>| digits.get(range).and_then(|s| s.parse::<u64>().ok());
    let (year, month, day) = (
        num(0..4).ok_or_else(invalid)?,
        num(4..6).ok_or_else(invalid)?,
        num(6..8).ok_or_else(invalid)?,
    );
    let hour = num(8..10).unwrap_or(0);
    let minute = num(10..12).unwrap_or(0);
    let second = num(12..14).unwrap_or(0);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(invalid());
    }
    let seconds = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    // OpenSSH treats 0 as "unset", so it refuses the epoch itself.
    if seconds == 0 {
        Err(invalid())
    } else {
        Ok(seconds)
    }
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date; the caller guarantees year ≥ 1970 and a valid month.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let years: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    let months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    years + months + day - 1
}

/// OpenSSH `match_pattern_list`: any positive match, unless a `!` pattern matches.
pub fn match_pattern_list(text: &str, list: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if match_pattern(text.as_bytes(), pattern.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// Glob match with `*` (any run) and `?` (one byte), in O(len(text) · len(pattern)) at worst.
fn match_pattern(text: &[u8], pattern: &[u8]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || text.get(t) == Some(&c) => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2B5s2Q2eO7dbSN6mGjKyYkIjOuD1sTbZ+JGEzZbP1e";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn count(signers: &AllowedSigners, principal: &str, namespace: &str) -> usize {
        signers
            .keys_for(principal, namespace, at(1_800_000_000))
            .len()
    }

    #[test]
    fn patterns() {
        assert!(match_pattern_list("LAB1", "LAB1"));
        assert!(match_pattern_list("LAB1", "X,LAB?"));
        assert!(match_pattern_list("LAB1", "*"));
        assert!(match_pattern_list("", "*"));
        assert!(!match_pattern_list("LAB1", "lab1"));
        assert!(!match_pattern_list("LAB1", "LAB"));
        assert!(!match_pattern_list("LAB1", "LAB*,!LAB1"));
        assert!(
            !match_pattern_list("LAB1", "!LAB2"),
            "negation alone never matches"
        );
        assert!(match_pattern_list("a.b.c", "*.*.c"));
        assert!(match_pattern_list("abcabd", "*ab?"));
        assert!(!match_pattern_list("abcabe", "*ab?d"));
    }

    #[test]
    fn lines_and_options() {
        let text = format!(
            "# comment\n\n  LAB1 {KEY} lab one\n\
             LAB2,LAB3 namespaces=\"tsagent-bundle-v1,other\" {OTHER}\n\
             \"LAB4\" cert-authority {KEY}\n\
             LAB5 valid-after=\"20300101\",valid-before=\"20300102Z\" {KEY}\n\
             LAB6 NAMESPACES=\"git\" {KEY}\r\n"
        );
        let signers = AllowedSigners::parse(&text).unwrap();
        assert_eq!(signers.entries.len(), 5);
        assert_eq!(count(&signers, "LAB1", "tsagent-bundle-v1"), 1);
        assert_eq!(count(&signers, "LAB3", "tsagent-bundle-v1"), 1);
        assert_eq!(count(&signers, "LAB3", "git"), 0);
        assert_eq!(
            count(&signers, "LAB4", "tsagent-bundle-v1"),
            0,
            "cert-authority never matches a plain key"
        );
        assert_eq!(count(&signers, "LAB6", "tsagent-bundle-v1"), 0);
        assert_eq!(count(&signers, "LAB6", "git"), 1);
        let lab5 = |secs| signers.keys_for("LAB5", "x", at(secs)).len();
        let start = 1_893_456_000; // 2030-01-01T00:00:00Z
        assert_eq!(
            (
                lab5(start - 1),
                lab5(start),
                lab5(start + 86_400),
                lab5(start + 86_401)
            ),
            (0, 1, 1, 0)
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("19700102").unwrap(), 86_400);
        assert_eq!(parse_time("20000229Z").unwrap(), 951_782_400);
        assert_eq!(parse_time("202001020304").unwrap(), 1_577_934_240);
        assert_eq!(parse_time("20200102030405utc").unwrap(), 1_577_934_245);
        for bad in [
            "19700101",
            "2019022",
            "20190229",
            "20191301",
            "201901011",
            "2019010124000Z",
            "2019-01-01",
            "Z",
            "+0190101",
        ] {
            assert!(
                matches!(parse_time(bad), Err(SignersLineError::InvalidTime(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_lines() {
        let check = |line: &str| {
            AllowedSigners::parse(&format!("# ok\n{line}\n"))
                .map(|_| ())
                .unwrap_err()
        };
        assert!(matches!(
            check("LAB1"),
            AllowedSignersError {
                line: 2,
                reason: SignersLineError::MissingKey
            }
        ));
        assert!(matches!(
            check("LAB1 ssh-ed25519"),
            AllowedSignersError {
                reason: SignersLineError::MissingKey,
                ..
            }
        ));
        assert!(matches!(
            check(&format!("LAB1 bogus {KEY}")),
            AllowedSignersError {
                reason: SignersLineError::UnknownOption(_),
                ..
            }
        ));
        assert!(matches!(
            check(&format!("LAB1 namespaces=git {KEY}")),
            AllowedSignersError {
                reason: SignersLineError::UnquotedValue(_),
                ..
            }
        ));
        assert!(matches!(
            check(&format!("LAB1 namespaces=\"a\",namespaces=\"b\" {KEY}")),
            AllowedSignersError {
                reason: SignersLineError::DuplicateOption(_),
                ..
            }
        ));
        assert!(matches!(
            check(&format!("LAB1 namespaces=\"a {KEY}")),
            AllowedSignersError {
                reason: SignersLineError::UnterminatedQuote,
                ..
            }
        ));
        assert!(matches!(
            check(&format!("LAB1 cert-authority, {KEY}")),
            AllowedSignersError {
                reason: SignersLineError::UnknownOption(_),
                ..
            }
        ));
        assert!(matches!(
            check(&format!(
                "LAB1 valid-after=\"20300102\",valid-before=\"20300101\" {KEY}"
            )),
            AllowedSignersError {
                reason: SignersLineError::EmptyValidity,
                ..
            }
        ));
        assert!(matches!(
            check("LAB1 ssh-ed25519 AAAAnotakey"),
            AllowedSignersError {
                reason: SignersLineError::Key(_),
                ..
            }
        ));
    }

    #[test]
    fn reads_what_ssh_keygen_writes() {
        // Key types we cannot sign with must still parse, so a shared file with RSA/ECDSA lines works.
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for (kind, bits) in [
            ("ed25519", None),
            ("rsa", Some("2048")),
            ("ecdsa", Some("256")),
        ] {
            let path = dir.path().join(kind);
            let mut cmd = std::process::Command::new("ssh-keygen");
            cmd.args(["-q", "-t", kind, "-N", "", "-C", "c", "-f"])
                .arg(&path);
            if let Some(bits) = bits {
                cmd.args(["-b", bits]);
            }
            assert!(cmd.status().unwrap().success());
            let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
            text.push_str(&format!("{kind} namespaces=\"tsagent-bundle-v1\" {public}"));
        }
        let signers = AllowedSigners::parse(&text).unwrap();
        assert_eq!(signers.entries.len() + signers.skipped.len(), 3);
        assert_eq!(count(&signers, "ed25519", "tsagent-bundle-v1"), 1);
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = AllowedSigners::parse(&text);
        }

        #[test]
        fn parse_never_panics_near_valid(
            principals in "[a-z*?!,\"]{0,8}",
            options in "[a-z=\",\\\\ -]{0,30}",
            tail in "[A-Za-z0-9+/= ]{0,20}",
        ) {
            let _ = AllowedSigners::parse(&format!("{principals} {options} {KEY} {tail}"));
            let _ = AllowedSigners::parse(&format!("{principals} {options}"));
        }

        #[test]
        fn pattern_matching_never_panics(text in "[a-c]{0,12}", pattern in "[a-c*?!,]{0,12}") {
            let _ = match_pattern_list(&text, &pattern);
        }

        #[test]
        fn literal_patterns_match_themselves(text in "[A-Za-z0-9._-]{1,20}") {
            prop_assert!(match_pattern_list(&text, &text));
            let longer = format!("{text}x");
            prop_assert!(!match_pattern_list(&text, &longer));
        }
    }
}
