use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::session::Measurement;

/// A small valid profile; cases below change one thing in it.
const BASE: &str = r#"# test profile
id = "test-dmm"
name = "Test DMM"
kind = "dmm"
init = ["*CLS"]

[identity]
query = "*IDN?"
pattern = '^ACME,'

[io]
timeout = "2s"

[errors]
query = "SYST:ERR?"
no_error = '^[+-]?0,'

[operations.configure]
params = { range = "10", nplc = "10" }
send = ["CONF:VOLT:DC {range}", "VOLT:DC:NPLC {nplc}"]

[operations.read]
query = "READ?"
reply = { kind = "number" }
"#;

fn parse(text: &str) -> Result<Profile, ProfileError> {
    parse_profile(text, Source::File("profiles/test-dmm.toml".into()))
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap()
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Asserts an `Invalid` error with this key and line whose reason contains `reason`.
#[track_caller]
fn assert_invalid(result: Result<Profile, ProfileError>, key: &str, line: usize, reason: &str) {
    match result {
        Err(ProfileError::Invalid {
            location,
            key: k,
            reason: r,
        }) => {
            assert_eq!(
                (k.as_str(), location.line),
                (key, Some(line)),
                "reason: {r}"
            );
            assert!(r.contains(reason), "{r:?} lacks {reason:?}");
            assert_eq!(location.origin, "profiles/test-dmm.toml");
        }
        other => panic!("expected invalid `{key}`, got {other:?}"),
    }
}

/// The query of operation `op` of `profile`.
fn query_of<'a>(profile: &'a Profile, op: &str) -> &'a str {
    profile
        .operation(op)
        .unwrap()
        .query
        .as_ref()
        .unwrap()
        .as_str()
}

#[test]
fn base_profile_reads() {
    let p = parse(BASE).unwrap();
    assert_eq!(
        (p.id.as_str(), p.name.as_str(), p.kind),
        ("test-dmm", "Test DMM", Kind::Dmm)
    );
    assert_eq!(p.io.timeout, Duration::from_secs(2));
    assert_eq!(p.io.write_termination, b"\n");
    assert_eq!(p.io.read_termination, b"\n");
    assert_eq!(p.io.baud, None);
    assert_eq!(p.init.len(), 1);
    let configure = p.operation("configure").unwrap();
    assert!(configure.check_errors, "send without query checks errors");
    assert_eq!(
        configure.send[0].render(&configure.params).unwrap(),
        "CONF:VOLT:DC 10"
    );
    let read = p.operation("read").unwrap();
    assert!(
        !read.check_errors,
        "a query does not check errors by default"
    );
    assert!(matches!(read.reply, Some(ReplySpec::Number)));
    assert_eq!(read.timeout_or(&p.io), Duration::from_secs(2));
    let errors = p.errors.as_ref().unwrap();
    assert_eq!(errors.limit, 32);
    assert_eq!(errors.format, ErrorFormat::CodeMessage);
    assert!(errors.is_no_error("+0,\"No error\"\r"));
    assert!(!errors.is_no_error("-113,\"Undefined header\""));
    assert_eq!(
        errors.parse("-113,\"Undefined header\"").unwrap().code,
        -113
    );
    assert_eq!(p.source, Source::File("profiles/test-dmm.toml".into()));
    assert!(!p.has_unconfirmed());
}

#[test]
fn check_errors_defaults() {
    let no_errors = BASE.replace(
        "[errors]\nquery = \"SYST:ERR?\"\nno_error = '^[+-]?0,'\n",
        "",
    );
    let p = parse(&no_errors).unwrap();
    assert!(p.errors.is_none());
    assert!(
        !p.operation("configure").unwrap().check_errors,
        "nothing to check without [errors]"
    );
    let explicit = format!("{BASE}check_errors = true\n");
    assert!(
        parse(&explicit)
            .unwrap()
            .operation("read")
            .unwrap()
            .check_errors
    );
    let off = BASE.replace(
        "send = [\"CONF:VOLT:DC {range}\", \"VOLT:DC:NPLC {nplc}\"]",
        "send = [\"CONF:VOLT:DC {range}\"]\ncheck_errors = false",
    );
    assert!(
        !parse(&off)
            .unwrap()
            .operation("configure")
            .unwrap()
            .check_errors
    );
}

/// One substitution in BASE per case, the key and line it must be reported at.
#[test]
fn validation_errors_name_key_and_line() {
    let cases: &[(&str, &str, &str, usize, &str)] = &[
        ("id = \"test-dmm\"", "id = \"Test_DMM\"", "id", 2, "a-z 0-9"),
        (
            "id = \"test-dmm\"",
            "id = \"other\"",
            "id",
            2,
            "file name `test-dmm.toml`",
        ),
        ("name = \"Test DMM\"", "name = \" \"", "name", 3, "empty"),
        (
            "kind = \"dmm\"",
            "kind = \"meter\"",
            "kind",
            4,
            "dmm, calibrator",
        ),
        (
            "init = [\"*CLS\"]",
            "init = [\"*CLS\", \"NPLC {nplc}\"]",
            "init[1]",
            5,
            "no parameters",
        ),
        ("init = [\"*CLS\"]", "init = [\"\"]", "init[0]", 5, "empty"),
        (
            "init = [\"*CLS\"]",
            "init = [\"A\\nB\"]",
            "init[0]",
            5,
            "one line",
        ),
        (
            "init = [\"*CLS\"]",
            "init = [\"A {\"]",
            "init[0]",
            5,
            "not closed",
        ),
        (
            "pattern = '^ACME,'",
            "pattern = '^(ACME'",
            "identity.pattern",
            9,
            "regular expression",
        ),
        (
            "pattern = '^ACME,'",
            "pattern = '(?P<vendor>ACME)'",
            "identity.pattern",
            9,
            "capture `vendor`",
        ),
        (
            "pattern = '^ACME,'",
            "pattern = '^ACME'\nformat = \"pattern\"",
            "identity.pattern",
            9,
            "(?P<model>",
        ),
        (
            "pattern = '^ACME,'",
            "pattern = '^ACME'\nformat = \"csv\"",
            "identity.format",
            10,
            "`idn` or `pattern`",
        ),
        (
            "timeout = \"2s\"",
            "timeout = \"2 fortnights\"",
            "io.timeout",
            12,
            "not a duration",
        ),
        (
            "timeout = \"2s\"",
            "timeout = \"0s\"",
            "io.timeout",
            12,
            "longer than zero",
        ),
        (
            "timeout = \"2s\"",
            "timeout = \"1ns\"",
            "io.timeout",
            12,
            "at least 10ms",
        ),
        (
            "timeout = \"2s\"",
            "timeout = \"400d\"",
            "io.timeout",
            12,
            "longer than a year",
        ),
        (
            "timeout = \"2s\"",
            "data_bits = 9",
            "io.data_bits",
            12,
            "7 or 8",
        ),
        (
            "timeout = \"2s\"",
            "stop_bits = 3",
            "io.stop_bits",
            12,
            "1 or 2",
        ),
        ("timeout = \"2s\"", "baud = 0", "io.baud", 12, "positive"),
        (
            "timeout = \"2s\"",
            "parity = \"mark\"",
            "io.parity",
            12,
            "`none`, `even` or `odd`",
        ),
        (
            "timeout = \"2s\"",
            "read_termination = \"\"",
            "io.read_termination",
            12,
            "1 to 4 bytes",
        ),
        (
            "timeout = \"2s\"",
            "write_termination = \"\\r\\n\\r\\n\\r\"",
            "io.write_termination",
            12,
            "0 to 4 bytes",
        ),
        (
            "no_error = '^[+-]?0,'",
            "no_error = '(('",
            "errors.no_error",
            16,
            "regular expression",
        ),
        (
            "no_error = '^[+-]?0,'",
            "no_error = '^0'\nformat = \"text\"",
            "errors.format",
            17,
            "`code_message` or `code`",
        ),
        (
            "no_error = '^[+-]?0,'",
            "no_error = '^0'\nexplain = \"EXPLAIN? {code}\"",
            "errors.explain",
            17,
            "only with format = \"code\"",
        ),
        (
            "no_error = '^[+-]?0,'",
            "no_error = '^0'\nformat = \"code\"\nexplain = \"EXPLAIN? {number}\"",
            "errors.explain",
            18,
            "`{number}` is not a parameter",
        ),
        (
            "no_error = '^[+-]?0,'",
            "no_error = '^0'\nlimit = 0",
            "errors.limit",
            17,
            "1 to 1000",
        ),
        (
            "[operations.read]",
            "[operations.Read]",
            "operations.Read",
            22,
            "a-z, 0-9",
        ),
        (
            "send = [\"CONF:VOLT:DC {range}\",",
            "send = [\"CONF:VOLT:DC {rnge}\",",
            "operations.configure.send[0]",
            20,
            "`{rnge}` is not a parameter of this operation; define it in `params` (defined: nplc, range)",
        ),
        (
            "params = { range = \"10\", nplc = \"10\" }",
            "params = { range = \"10\", nplc = \"10\", 2x = \"1\" }",
            "operations.configure.params.2x",
            19,
            "parameter names",
        ),
        (
            "query = \"READ?\"\nreply = { kind = \"number\" }",
            "query = \"READ?\"",
            "operations.read.query",
            23,
            "needs `reply`",
        ),
        (
            "query = \"READ?\"\nreply = { kind = \"number\" }",
            "send = [\"INIT\"]\nreply = { kind = \"number\" }",
            "operations.read.reply",
            24,
            "needs the `query`",
        ),
        (
            "query = \"READ?\"\nreply = { kind = \"number\" }",
            "timeout = \"1s\"",
            "operations.read",
            22,
            "does nothing",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"integer\" }",
            "operations.read.reply.kind",
            24,
            "number, csv, regex, block, raw, text",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\", field = 1 }",
            "operations.read.reply.field",
            24,
            "only applies to kind = \"csv\"",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"csv\", byte_order = \"big\" }",
            "operations.read.reply.byte_order",
            24,
            "\"block\"",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"csv\", units = { a = \"V\" } }",
            "operations.read.reply.units",
            24,
            "\"regex\"",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"block\" }",
            "operations.read.reply",
            24,
            "needs `format` (real32 or real64)",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"block\", format = \"dreal\" }",
            "operations.read.reply.format",
            24,
            "real32 or real64",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"block\", format = \"real64\", byte_order = \"middle\" }",
            "operations.read.reply.byte_order",
            24,
            "`big` or `little`",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"raw\", format = \"real64\" }",
            "operations.read.reply.format",
            24,
            "sreal or dreal",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"raw\", format = \"dreal\", count = \"ten\" }",
            "operations.read.reply.count",
            24,
            "number of values",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"raw\", format = \"dreal\", count = \"{n}\" }",
            "operations.read.reply.count",
            24,
            "`{n}` is not a parameter",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"regex\" }",
            "operations.read.reply",
            24,
            "needs `pattern`",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"regex\", pattern = '(\\d+)' }",
            "operations.read.reply.pattern",
            24,
            "named capture",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"regex\", pattern = '(?P<t>\\d+)', units = { temp = \"K\" } }",
            "operations.read.reply.units.temp",
            24,
            "captures: t",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\ntimeout = \"soon\"",
            "operations.read.timeout",
            25,
            "not a duration",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\nopc = true",
            "operations.read.opc",
            25,
            "sends none",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\nwait = { query = \"*STB?\", mask = 0 }",
            "operations.read.wait.mask",
            25,
            "at least one bit",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\nwait = { query = \"*STB?\", mask = 16, interval = \"0s\" }",
            "operations.read.wait.interval",
            25,
            "longer than zero",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\nwait = { query = \"*STB?\", mask = 16, interval = \"1m\", timeout = \"1s\" }",
            "operations.read.wait.interval",
            25,
            "longer than the wait's timeout",
        ),
        (
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\nwait = { query = \"STAT? {ch}\", mask = 16 }",
            "operations.read.wait.query",
            25,
            "`{ch}` is not a parameter",
        ),
    ];
    for (from, to, key, line, reason) in cases {
        assert!(BASE.contains(from), "{from:?} not in BASE");
        let text = BASE.replacen(from, to, 1);
        assert_invalid(parse(&text), key, *line, reason);
    }
}

#[test]
fn check_errors_without_an_error_queue() {
    let text = BASE
        .replace(
            "[errors]\nquery = \"SYST:ERR?\"\nno_error = '^[+-]?0,'\n",
            "",
        )
        .replace(
            "reply = { kind = \"number\" }",
            "reply = { kind = \"number\" }\ncheck_errors = true",
        );
    assert_invalid(
        parse(&text),
        "operations.read.check_errors",
        22,
        "no [errors] section",
    );
}

#[test]
fn toml_errors_name_line_column_and_key() {
    let cases = [
        (
            BASE.replace("query = \"READ?\"", "qurey = \"READ?\""),
            23,
            "unknown field `qurey`",
        ),
        (
            BASE.replace("timeout = \"2s\"", "timeout = 2"),
            12,
            "invalid type",
        ),
        (
            BASE.replace("name = \"Test DMM\"\n", ""),
            1,
            "missing field `name`",
        ),
        (BASE.replace("kind = \"dmm\"", "kind = "), 4, ""),
        (
            format!("{BASE}\n[extras]\nx = 1\n"),
            26,
            "unknown field `extras`",
        ),
    ];
    for (text, line, message) in cases {
        match parse(&text) {
            Err(ProfileError::Parse {
                location,
                message: m,
            }) => {
                assert_eq!(location.origin, "profiles/test-dmm.toml");
                assert_eq!(location.line, Some(line), "{m}");
                assert!(location.column.is_some());
                assert!(m.contains(message), "{m:?} lacks {message:?}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
    let shown = parse(&BASE.replace("query = \"READ?\"", "qurey = \"READ?\"")).unwrap_err();
    assert!(
        shown
            .to_string()
            .starts_with("profiles/test-dmm.toml:23:1: unknown field `qurey`"),
        "{shown}"
    );
    let shown = parse(&BASE.replace("kind = \"dmm\"", "kind = \"meter\"")).unwrap_err();
    assert_eq!(
        shown.to_string(),
        "profiles/test-dmm.toml:4: invalid `kind`: `meter`: expected one of dmm, calibrator, thermometer, environment, generic"
    );
}

#[test]
fn overrides_merge_key_by_key() {
    let source = Source::File("profiles/test-dmm.toml".into());
    let overrides = table(
        r#"
        name = "Test DMM (lab 7)"
        init = ["*RST", "*CLS"]
        [io]
        baud = 9600
        [operations.read]
        query = "FETC?"
        timeout = "20s"
        [operations.configure.params]
        range = "100"
        [operations.zero]
        send = ["ZERO"]
        "#,
    );
    let p = with_overrides(BASE, source, &overrides, "lab.toml [instrument.profile]").unwrap();
    assert_eq!(p.name, "Test DMM (lab 7)");
    assert_eq!(
        p.init.iter().map(Template::as_str).collect::<Vec<_>>(),
        ["*RST", "*CLS"],
        "arrays replace"
    );
    assert_eq!(p.io.baud, Some(9600));
    assert_eq!(p.io.timeout, Duration::from_secs(2), "siblings kept");
    let read = p.operation("read").unwrap();
    assert_eq!(read.query.as_ref().unwrap().as_str(), "FETC?");
    assert!(
        matches!(read.reply, Some(ReplySpec::Number)),
        "siblings kept"
    );
    assert_eq!(read.timeout, Some(Duration::from_secs(20)));
    let configure = p.operation("configure").unwrap();
    assert_eq!(
        configure.params,
        params(&[("range", "100"), ("nplc", "10")])
    );
    assert!(p.operation("zero").unwrap().check_errors);
    assert_eq!(
        p.overridden_by.as_deref(),
        Some("lab.toml [instrument.profile]")
    );
    // No overrides: the same as the file.
    let plain = with_overrides(
        BASE,
        Source::File("profiles/test-dmm.toml".into()),
        &toml::Table::new(),
        "x",
    )
    .unwrap();
    assert_eq!(query_of(&plain, "read"), "READ?");
}

#[test]
fn override_errors_name_their_origin_and_key() {
    let source = || Source::File("profiles/test-dmm.toml".into());
    let from = "lab.toml:31 [instrument.profile] of \"dmm\"";
    // A bad value that came from the overrides.
    let e = with_overrides(
        BASE,
        source(),
        &table("[operations.read]\ntimeout = \"soon\""),
        from,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{from}: invalid `operations.read.timeout`: `soon` is not a duration (expected number at 0); examples: \"500ms\", \"5s\", \"30m\""
        )
    );
    // A problem created by the overrides in a key they did not touch is found in the file.
    let e = with_overrides(
        BASE,
        source(),
        &table("[identity]\nformat = \"pattern\""),
        from,
    )
    .unwrap_err();
    match e {
        ProfileError::Invalid { location, key, .. } => {
            assert_eq!(key, "identity.pattern");
            assert_eq!(location.origin, "profiles/test-dmm.toml");
            assert_eq!(location.line, Some(9));
        }
        other => panic!("{other:?}"),
    }
    // Unknown keys in the overrides: the parser's message, with the key path.
    let e = with_overrides(
        BASE,
        source(),
        &table("[operations.read]\nqurey = \"X?\""),
        from,
    )
    .unwrap_err();
    match &e {
        ProfileError::Parse { location, message } => {
            assert_eq!(location.origin, from);
            assert_eq!(location.line, None);
            assert!(
                message.starts_with("`operations.read.qurey`: unknown field `qurey`"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The id cannot be overridden away from the file's.
    let e = with_overrides(BASE, source(), &table("id = \"other\""), from).unwrap_err();
    assert!(
        matches!(&e, ProfileError::Invalid { location, key, .. } if key == "id" && location.origin == from),
        "{e:?}"
    );
    // A type error in the overrides.
    let e = with_overrides(BASE, source(), &table("[io]\nbaud = \"fast\""), from).unwrap_err();
    assert!(
        matches!(&e, ProfileError::Parse { location, message } if location.origin == from && message.contains("io.baud")),
        "{e:?}"
    );
    // A bad base file is reported at its own line even with overrides.
    let e = with_overrides(
        &BASE.replace("kind = \"dmm\"", "kind = \"meter\""),
        source(),
        &table("name = \"x\""),
        from,
    )
    .unwrap_err();
    assert!(
        matches!(&e, ProfileError::Invalid { location, .. } if location.line == Some(4)),
        "{e:?}"
    );
}

#[test]
fn identity_parsing() {
    let p = parse(BASE).unwrap();
    let id = p.identity.parse("ACME,DVM-9,123,1.0\r").unwrap();
    assert_eq!(
        (id.manufacturer.as_str(), id.model.as_str()),
        ("ACME", "DVM-9")
    );
    assert!(matches!(
        p.identity.parse("OTHER,DVM,1,1"),
        Err(ProfileMatchError::NoMatch { .. })
    ));
    assert!(matches!(
        p.identity.parse("ACME,DVM"),
        Err(ProfileMatchError::Idn(_))
    ));
    let spec = IdentitySpec {
        query: "ID?".into(),
        pattern: regex_lite::Regex::new(r"^(?P<manufacturer>HP)?(?P<model>\w*)$").unwrap(),
        format: IdentityFormat::Pattern,
        continues: None,
    };
    assert!(matches!(
        spec.parse("HP"),
        Err(ProfileMatchError::NoModel { .. })
    ));
    assert_eq!(spec.parse("HP3458A").unwrap().model, "3458A");
}

#[test]
fn operation_params() {
    let p = parse(BASE).unwrap();
    let op = p.operation("configure").unwrap();
    let merged = op.params_with(&params(&[("range", "1")])).unwrap();
    assert_eq!(merged, params(&[("range", "1"), ("nplc", "10")]));
    let e = op.params_with(&params(&[("rnage", "1")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "operation has no parameter `rnage` (it has: nplc, range)"
    );
}

// --- the built-in profiles ---------------------------------------------------------------

#[test]
fn every_builtin_profile_validates() {
    let registry = Registry::builtin().unwrap();
    assert_eq!(registry.len(), BUILTIN.len());
    let ids: Vec<&str> = registry.ids().collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "iteration is sorted by id");
    for (id, text) in BUILTIN {
        let p = registry.get(id).unwrap();
        assert_eq!(p.id, *id);
        assert_eq!(p.source, Source::Builtin((*id).to_owned()));
        assert!(
            text.starts_with("# "),
            "{id}: a profile starts with a comment block citing its sources"
        );
        assert!(text.contains("Sources"), "{id}: cites its sources");
        assert!(
            text.contains("Unconfirmed"),
            "{id}: says what is unconfirmed"
        );
        assert_eq!(registry.text(id), Some(*text));
        assert_eq!(builtin_text(id), Some(*text));
    }
    assert_eq!(
        registry.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ids
    );
}

#[test]
fn builtin_list_matches_the_drivers_folder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("drivers");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let listed: Vec<&str> = BUILTIN.iter().map(|(id, _)| *id).collect();
    assert_eq!(files, listed, "every drivers/*.toml is in BUILTIN, sorted");
    // The folder itself loads as a lab folder would, with the same profiles.
    let mut registry = Registry::default();
    registry.add_dir(&dir).unwrap();
    assert_eq!(registry.ids().collect::<Vec<_>>(), listed);
}

/// The operations each shipped profile offers, by the common names.
#[test]
fn builtin_operations() {
    let registry = Registry::builtin().unwrap();
    // The operations of every meter that can also fill and fetch its reading memory.
    const BUFFERED: &[&str] = &["configure", "read", "read_buffer"];
    let expected: &[(&str, Kind, &[&str])] = &[
        ("fluke-1594a", Kind::Thermometer, &["configure", "read"]),
        (
            "fluke-5720a",
            Kind::Calibrator,
            &[
                "source_operate",
                "source_set",
                "source_set_ohms",
                "source_settled",
                "source_standby",
                "source_value",
            ],
        ),
        (
            "fluke-8508a",
            Kind::Dmm,
            &[
                "configure",
                "configure_ohms",
                "configure_true_ohms",
                "fetch",
                "read",
            ],
        ),
        ("generic-scpi-dmm", Kind::Dmm, &["configure", "read"]),
        ("keithley-2002", Kind::Dmm, BUFFERED),
        ("keithley-dmm6500", Kind::Dmm, BUFFERED),
        ("keysight-34465a", Kind::Dmm, BUFFERED),
        ("keysight-34470a", Kind::Dmm, BUFFERED),
        ("keysight-3458a", Kind::Dmm, BUFFERED),
        ("vaisala-ptu300", Kind::Environment, &["env_read"]),
    ];
    assert_eq!(expected.len(), BUILTIN.len());
    for (id, kind, ops) in expected {
        let p = registry.get(id).unwrap();
        assert_eq!(p.kind, *kind, "{id}");
        assert_eq!(
            p.operations.keys().map(String::as_str).collect::<Vec<_>>(),
            *ops,
            "{id}"
        );
        for (name, op) in &p.operations {
            // Every default renders: no profile ships a template its defaults cannot fill.
            for t in op
                .send
                .iter()
                .chain(&op.query)
                .chain(op.wait.as_ref().map(|w| &w.query))
            {
                t.render(&op.params)
                    .unwrap_or_else(|e| panic!("{id}.{name}: {e}"));
            }
            if name == "read_buffer" {
                assert!(
                    op.params.contains_key("count"),
                    "{id}: read_buffer takes `count`"
                );
            }
        }
    }
}

fn render(op: &Operation, t: &Template) -> String {
    t.render(&op.params).unwrap()
}

#[test]
fn keysight_3458a() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("keysight-3458a").unwrap();
    let id = p.identity.parse("HP3458A\r").unwrap();
    assert_eq!(
        (id.manufacturer.as_str(), id.model.as_str()),
        ("HP", "3458A")
    );
    assert!(
        !p.identity
            .matches("KEITHLEY INSTRUMENTS INC.,MODEL 2002,1,A01")
    );
    assert_eq!(p.identity.query, "ID?");
    let init: Vec<&str> = p.init.iter().map(Template::as_str).collect();
    assert_eq!(init.first(), Some(&"PRESET NORM"));
    assert_eq!(init.last(), Some(&"END ALWAYS"));
    assert!(init.contains(&"TARM HOLD") && init.contains(&"OFORMAT ASCII"));
    let errors = p.errors.as_ref().unwrap();
    assert_eq!(errors.query, "ERRSTR?");
    assert!(errors.is_no_error("0,\"NO ERROR\""));
    assert!(!errors.is_no_error("102,\"TRIGGER TOO FAST\""));
    assert_eq!(
        errors.parse("102,\"TRIGGER TOO FAST\"").unwrap().message,
        "TRIGGER TOO FAST"
    );
    let read = p.operation("read").unwrap();
    assert_eq!(render(read, read.query.as_ref().unwrap()), "TARM SGL,1");
    let buffer = p.operation("read_buffer").unwrap();
    assert!(buffer.unconfirmed);
    let sent: Vec<String> = buffer.setup.iter().map(|t| render(buffer, t)).collect();
    // END ON: the n readings are one GPIB message, so a read until EOI gets them all.
    assert_eq!(sent, ["OFORMAT DREAL", "END ON", "NRDGS 10,AUTO"]);
    let sent: Vec<String> = read.setup.iter().map(|t| render(read, t)).collect();
    assert_eq!(sent, ["OFORMAT ASCII", "END ALWAYS", "NRDGS 1,AUTO"]);
    let Some(ReplySpec::Raw {
        format,
        count,
        terminated,
    }) = &buffer.reply
    else {
        panic!("{:?}", buffer.reply)
    };
    assert_eq!((*format, *terminated), (RawFormat::DReal, false));
    assert_eq!(raw_byte_len(*format, count, &buffer.params).unwrap(), 80);
    let payload: Vec<u8> = [10.0000012f64, 9.9e37]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let values = raw_values(&payload, *format).unwrap();
    assert_eq!(values[0].measurement, Some(Measurement::Value(10.0000012)));
    assert_eq!(
        values[1].measurement,
        Some(Measurement::Overload { negative: false })
    );
}

#[test]
fn fluke_8508a_esr_errors() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("fluke-8508a").unwrap();
    let errors = p.errors.as_ref().unwrap();
    assert!(errors.unconfirmed);
    assert_eq!(errors.query, "*ESR?");
    // Bits 2-5 are the error bits of the event status register.
    for esr in 0u32..=255 {
        assert_eq!(
            !errors.is_no_error(&esr.to_string()),
            esr & 0b0011_1100 != 0,
            "ESR {esr}"
        );
    }
    assert!(errors.is_no_error("+0"));
    assert_eq!(errors.parse("16").unwrap().code, 16);
    let read = p.operation("read").unwrap();
    assert_eq!(read.query.as_ref().unwrap().as_str(), "X?");
    let configure = p.operation("configure").unwrap();
    assert_eq!(
        render(configure, &configure.send[0]),
        "DCV 10,FILT_OFF,RESL8,FAST_OFF,FOUR_WR"
    );
    let ohms = p.operation("configure_ohms").unwrap();
    let sent: Vec<String> = ohms.send.iter().map(|t| render(ohms, t)).collect();
    assert_eq!(sent, ["OHMS 10E3,FOUR_WR", "OHMS FILT_OFF,RESL8,FAST_OFF"]);
    assert!(p.identity.matches("FLUKE,8508A,123456,1.2"));
}

#[test]
fn keithley_2002() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("keithley-2002").unwrap();
    assert!(
        p.identity
            .matches("KEITHLEY INSTRUMENTS INC.,MODEL 2002,1234567,A01  /A02")
    );
    assert!(
        !p.identity
            .matches("KEITHLEY INSTRUMENTS INC.,MODEL 2001,1234567,A01")
    );
    assert!(p.init.iter().any(|t| t.as_str() == ":FORM:ELEM READ"));
    let configure = p.operation("configure").unwrap();
    let sent: Vec<String> = configure
        .send
        .iter()
        .map(|t| render(configure, t))
        .collect();
    assert_eq!(
        sent,
        [
            ":SENS:FUNC 'VOLT:DC'",
            ":SENS:VOLT:DC:RANG 20",
            ":SENS:VOLT:DC:NPLC 10",
            ":SENS:VOLT:DC:DIG 9"
        ]
    );
    let read = p.operation("read").unwrap();
    let v = parse_reply(read.reply.as_ref().unwrap(), "+1.01103E+00").unwrap();
    assert_eq!(v[0].measurement, Some(Measurement::Value(1.01103)));
    // Without `:FORM:ELEM READ` the unit suffix makes the reply fail loudly.
    assert!(
        parse_reply(
            read.reply.as_ref().unwrap(),
            "+01.01103E+00NVDC,09:00:20.00,26-Mar-2015,+01945RDNG#"
        )
        .is_err()
    );
    let buffer = p.operation("read_buffer").unwrap();
    assert!(buffer.opc && buffer.unconfirmed);
    let v = parse_reply(buffer.reply.as_ref().unwrap(), "+1.0E+00,+1.1E+00,+1.2E+00").unwrap();
    assert_eq!(v.len(), 3);
}

#[test]
fn keysight_truevolt_blocks() {
    let registry = Registry::builtin().unwrap();
    for (id, model) in [("keysight-34470a", "34470A"), ("keysight-34465a", "34465A")] {
        let p = registry.get(id).unwrap();
        assert!(p.identity.matches(&format!(
            "Keysight Technologies,{model},MY12345678,A.02.17-02.40-02.17-00.52-04-01"
        )));
        assert!(!p.identity.matches("Keysight Technologies,34461A,MY1,A.01"));
        let buffer = p.operation("read_buffer").unwrap();
        let sent: Vec<String> = buffer
            .setup
            .iter()
            .chain(&buffer.send)
            .map(|t| render(buffer, t))
            .collect();
        assert!(sent.contains(&"FORM:DATA REAL,64".to_owned()), "{id}");
        assert!(sent.contains(&"FORM:BORD NORM".to_owned()), "{id}");
        assert!(sent.contains(&"SAMP:COUN 10".to_owned()), "{id}");
        let Some(ReplySpec::Block { format, order }) = buffer.reply else {
            panic!("{id}")
        };
        assert_eq!((format, order), (BlockFormat::Real64, ByteOrder::Big));
        let read = p.operation("read").unwrap();
        assert!(
            read.setup.iter().any(|t| t.as_str() == "FORM:DATA ASC"),
            "{id}"
        );
    }
}

#[test]
fn fluke_5720a() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("fluke-5720a").unwrap();
    assert!(p.identity.matches("FLUKE,5720A,6565602,2.3+1.2"));
    assert!(p.init.is_empty());
    let set = p.operation("source_set").unwrap();
    let given = set
        .params_with(&params(&[("value", "-10"), ("frequency", "0")]))
        .unwrap();
    assert_eq!(set.send[0].render(&given).unwrap(), "OUT -10 V, 0 Hz");
    assert!(set.check_errors);
    let ohms = p.operation("source_set_ohms").unwrap();
    assert_eq!(render(ohms, &ohms.send[0]), "OUT 10000 OHM");
    assert_eq!(
        p.operation("source_operate").unwrap().send[0].as_str(),
        "OPER"
    );
    assert_eq!(
        p.operation("source_standby").unwrap().send[0].as_str(),
        "STBY"
    );
    let settled = p.operation("source_settled").unwrap();
    let wait = settled.wait.as_ref().unwrap();
    assert_eq!((wait.query.as_str(), wait.mask), ("ISR?", 4096));
    assert!(
        !wait.is_done("2049").unwrap(),
        "operating and remote, not settled"
    );
    assert!(wait.is_done("6145").unwrap(), "settled");
    assert!(!settled.check_errors);
    let errors = p.errors.as_ref().unwrap();
    assert_eq!(
        (errors.query.as_str(), errors.format),
        ("FAULT?", ErrorFormat::Code)
    );
    assert!(errors.is_no_error("0") && !errors.is_no_error("1402"));
    let fault = errors.parse("1402").unwrap();
    assert_eq!(
        errors.explain_query(fault.code).unwrap().unwrap(),
        "EXPLAIN? 1402"
    );
    let value = p.operation("source_value").unwrap();
    let v = parse_reply(value.reply.as_ref().unwrap(), "9.9999912E+03,OHM,0.00E+00").unwrap();
    assert_eq!(v[0].measurement, Some(Measurement::Value(9999.9912)));
}

#[test]
fn fluke_1594a() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("fluke-1594a").unwrap();
    assert!(p.identity.matches("FLUKE,1594A,B12345,1.00"));
    assert!(p.identity.matches("Hart Scientific,1595A,A1,2.0"));
    let read = p.operation("read").unwrap();
    let wait = read.wait.as_ref().unwrap();
    assert_eq!((wait.query.as_str(), wait.mask), ("STAT:OPER?", 16));
    assert!(wait.is_done("16").unwrap() && !wait.is_done("0").unwrap());
    assert_eq!(read.query.as_ref().unwrap().as_str(), "FETC?");
    for reply in ["0.010023", "0.010023,C"] {
        let v = parse_reply(read.reply.as_ref().unwrap(), reply).unwrap();
        assert_eq!(v[0].measurement, Some(Measurement::Value(0.010023)));
    }
    assert!(p.errors.as_ref().unwrap().unconfirmed);
}

#[test]
fn vaisala_ptu300() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("vaisala-ptu300").unwrap();
    assert_eq!(p.io.baud, Some(4800));
    assert_eq!(p.io.data_bits, Some(crate::transport::DataBits::Seven));
    assert_eq!(p.io.parity, Some(crate::transport::Parity::Even));
    assert_eq!(p.io.stop_bits, Some(crate::transport::StopBits::One));
    assert_eq!(p.io.read_termination, b"\r\n");
    assert!(p.errors.is_none() && p.init.is_empty());
    let id = p.identity.parse("PTU300 / 1.23").unwrap();
    assert_eq!(
        (id.model.as_str(), id.firmware.as_str()),
        ("PTU300", "1.23")
    );
    let env = p.operation("env_read").unwrap();
    let v = parse_reply(
        env.reply.as_ref().unwrap(),
        "P= 1033.7 hPa T= 22.2 'C RH= 38.3 %RH",
    )
    .unwrap();
    let got: Vec<(&str, &str, f64)> = v
        .iter()
        .map(|v| {
            (
                v.name.as_deref().unwrap(),
                v.unit.as_deref().unwrap(),
                v.measurement.unwrap().value().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("pressure", "hPa", 1033.7),
            ("temperature", "°C", 22.2),
            ("humidity", "%RH", 38.3)
        ]
    );
    // Another pressure unit does not read as hPa.
    assert!(
        parse_reply(
            env.reply.as_ref().unwrap(),
            "P= 14.993 psia T= 22.2 'C RH= 38.3 %RH"
        )
        .is_err()
    );
}

/// The generic profile driven against the simulator's command handler: every command it sends
/// is accepted, the read parses, and the error queue reads empty through the profile's rules.
#[test]
fn generic_profile_drives_the_simulator() {
    let registry = Registry::builtin().unwrap();
    let p = registry.get("generic-scpi-dmm").unwrap();
    let setup = tsagent_sim::Setup::new(tsagent_sim::SimParams::default(), "SIM0000001");
    let mut dmm = tsagent_sim::PersonalityId::GenericScpiDmm.build(setup);
    let mut ask = |cmd: &str| {
        let mut line = cmd.as_bytes().to_vec();
        line.extend_from_slice(&p.io.write_termination);
        let reply = dmm.handle(&line).bytes();
        String::from_utf8(reply).unwrap()
    };
    let id = p.identity.parse(&ask(&p.identity.query)).unwrap();
    assert_eq!(
        (id.manufacturer.as_str(), id.model.as_str()),
        ("TSAGENT", "SIM-DMM")
    );
    let errors = p.errors.as_ref().unwrap();
    let configure = p.operation("configure").unwrap();
    let given = configure.params_with(&params(&[("nplc", "1")])).unwrap();
    for t in &configure.send {
        assert_eq!(ask(&t.render(&given).unwrap()), "", "{t}");
    }
    assert!(errors.is_no_error(&ask(&errors.query)));
    let read = p.operation("read").unwrap();
    let reply = ask(&read.query.as_ref().unwrap().render(&read.params).unwrap());
    let v = parse_reply(read.reply.as_ref().unwrap(), &reply).unwrap();
    assert!(
        matches!(v[0].measurement, Some(Measurement::Value(x)) if (x - 10.0).abs() < 0.1),
        "{v:?}"
    );
    // A bad parameter reaches the error queue and reads through the profile's rules.
    let bad = configure
        .params_with(&params(&[("range", "5000")]))
        .unwrap();
    ask(&configure.send[0].render(&bad).unwrap());
    let reply = ask(&errors.query);
    assert!(!errors.is_no_error(&reply));
    assert!(errors.parse(&reply).unwrap().code < 0);
    assert!(errors.is_no_error(&ask(&errors.query)));
}

#[test]
fn describe_lists_everything_and_flags_unconfirmed() {
    let registry = Registry::builtin().unwrap();
    let text = describe(registry.get("keysight-3458a").unwrap());
    for needle in [
        "keysight-3458a: Keysight/HP 3458A (dmm)",
        "source: drivers/keysight-3458a.toml (built in)",
        "[UNCONFIRMED] not confirmed by the reference, check on the unit: operation read_buffer",
        "identity: ID? → must match ^(?P<manufacturer>HP)(?P<model>3458A)$",
        "io: write \"\\n\", read \"\\n\", timeout 10s",
        "  END ALWAYS",
        "errors: ERRSTR? until the reply matches ^\\+?0, (code_message, at most 32 queries)",
        "  read_buffer [UNCONFIRMED]",
        "    params: count = \"10\"",
        "    setup (once a series): OFORMAT DREAL",
        "                           END ON",
        "                           NRDGS {count},AUTO",
        "    query: TARM SGL,1",
        "{count} big-endian dreal values",
        "    check errors: no; timeout 10m",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let text = describe(registry.get("fluke-5720a").unwrap());
    for needle in [
        "explain: EXPLAIN? {code}",
        "wait: ISR? until reply & 0x1000 (bit 12) is set, every 200ms, at most 2m",
        "    check errors: yes; timeout 10s (profile default)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("[UNCONFIRMED]"));
    let text = describe(registry.get("vaisala-ptu300").unwrap());
    assert!(
        text.contains("serial 4800 baud, 7 data bits, even parity, 1 stop bit"),
        "{text}"
    );
    assert!(text.contains("errors: none"), "{text}");
    assert!(text.contains("pressure in hPa"), "{text}");
}

// --- files and folders -------------------------------------------------------------------

#[test]
fn lab_folder_adds_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test-dmm.toml"), BASE).unwrap();
    let replacement = builtin_text("generic-scpi-dmm")
        .unwrap()
        .replace("query = \"READ?\"", "query = \"MEAS?\"");
    std::fs::write(dir.path().join("generic-scpi-dmm.toml"), replacement).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a profile").unwrap();
    std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
    let registry = Registry::with_dir(dir.path()).unwrap();
    assert_eq!(registry.len(), BUILTIN.len() + 1);
    assert!(registry.get("test-dmm").is_some());
    let generic = registry.get("generic-scpi-dmm").unwrap();
    assert_eq!(query_of(generic, "read"), "MEAS?");
    assert_eq!(
        generic.source,
        Source::File(dir.path().join("generic-scpi-dmm.toml"))
    );
    // Overrides apply over the lab's file, not the built-in one.
    let p = registry
        .with_overrides("generic-scpi-dmm", &table("name = \"x\""), "lab.toml")
        .unwrap();
    assert_eq!(
        p.operation("read")
            .unwrap()
            .query
            .as_ref()
            .unwrap()
            .as_str(),
        "MEAS?"
    );
    assert!(matches!(
        registry.with_overrides("nope", &toml::Table::new(), "lab.toml"),
        Err(ProfileError::Unknown { .. })
    ));

    // A bad file is an error naming it, and nothing from the folder is added.
    std::fs::write(dir.path().join("broken.toml"), "id = \"broken\"\n").unwrap();
    let mut registry = Registry::builtin().unwrap();
    let e = registry.add_dir(dir.path()).unwrap_err();
    assert!(
        e.to_string()
            .contains("broken.toml:1:1: missing field `name`"),
        "{e}"
    );
    assert_eq!(registry.len(), BUILTIN.len());
    assert_eq!(
        registry.get("generic-scpi-dmm").unwrap().source,
        Source::Builtin("generic-scpi-dmm".into())
    );
    let missing = dir.path().join("missing");
    assert!(matches!(
        Registry::with_dir(&missing),
        Err(ProfileError::ReadDir { .. })
    ));
}

#[test]
fn check_file_uses_the_stem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("test-dmm.toml");
    std::fs::write(&good, BASE).unwrap();
    assert_eq!(check_file(&good).unwrap().id, "test-dmm");
    let renamed = dir.path().join("my-dmm.toml");
    std::fs::write(&renamed, BASE).unwrap();
    let e = check_file(&renamed).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: invalid `id`: `test-dmm` must match the file name `my-dmm.toml`",
            renamed.display()
        )
    );
    assert!(matches!(
        check_file(&dir.path().join("absent.toml")),
        Err(ProfileError::File(
            tsagent_bundle::file::FileError::Open { .. }
        ))
    ));
}

#[test]
fn builtin_errors_name_the_shipped_file() {
    let e = parse_profile(
        &BASE
            .replace("test-dmm", "keysight-3458a")
            .replace("kind = \"dmm\"", "kind = \"x\""),
        Source::Builtin("keysight-3458a".into()),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("drivers/keysight-3458a.toml (built in):4: invalid `kind`"),
        "{e}"
    );
}

// --- properties -----------------------------------------------------------------------------

/// A built-in profile's text with one random edit.
fn mutated_builtin() -> impl Strategy<Value = (String, String)> {
    (
        0..BUILTIN.len(),
        any::<prop::sample::Index>(),
        0u8..3,
        any::<char>(),
    )
        .prop_map(|(which, at, op, c)| {
            let (id, text) = BUILTIN[which];
            let mut chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len());
            match op {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
            (id.to_owned(), chars.into_iter().collect())
        })
}

/// Dotted keys of the format, for override fuzzing.
const KEYS: &[&str] = &[
    "id",
    "name",
    "kind",
    "init",
    "identity.query",
    "identity.pattern",
    "identity.format",
    "io.timeout",
    "io.baud",
    "io.data_bits",
    "io.parity",
    "errors.query",
    "errors.no_error",
    "errors.format",
    "errors.explain",
    "errors.limit",
    "operations.read.query",
    "operations.read.reply",
    "operations.read.reply.kind",
    "operations.read.reply.field",
    "operations.read.reply.count",
    "operations.read.wait",
    "operations.read.wait.mask",
    "operations.configure.params",
    "operations.configure.send",
    "operations.new_op.send",
    "operations",
];

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(toml::Value::String),
        "[a-z{}0-9 ?*:]{0,12}".prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        any::<bool>().prop_map(toml::Value::Boolean),
        any::<f64>().prop_map(toml::Value::Float),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn set_path(root: &mut toml::Table, key: &str, value: toml::Value) {
    let mut segments: Vec<&str> = key.split('.').collect();
    let Some(last) = segments.pop() else { return };
    let mut table = root;
    for segment in segments {
        let entry = table
            .entry(segment)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(next) = entry else {
            return;
        };
        table = next;
    }
    table.insert(last.to_owned(), value);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn edited_builtins_never_panic((id, text) in mutated_builtin()) {
        if let Ok(p) = parse_profile(&text, Source::Builtin(id)) {
            let _ = describe(&p);
        }
    }

    #[test]
    fn arbitrary_overrides_never_panic(
        edits in prop::collection::vec((0..KEYS.len(), toml_value()), 1..4),
        which in 0..BUILTIN.len(),
    ) {
        let mut overrides = toml::Table::new();
        for (key, value) in edits {
            set_path(&mut overrides, KEYS[key], value);
        }
        let (id, text) = BUILTIN[which];
        match with_overrides(text, Source::Builtin(id.to_owned()), &overrides, "overrides") {
            Ok(p) => { let _ = describe(&p); }
            Err(e) => { prop_assert!(!e.to_string().is_empty()); }
        }
        // The same overrides over the small profile exercise keys it has.
        let _ = with_overrides(BASE, Source::File("test-dmm.toml".into()), &overrides, "overrides");
    }

    #[test]
    fn identity_and_errors_never_panic(reply in any::<String>()) {
        let registry = Registry::builtin().unwrap();
        for p in registry.iter() {
            let _ = p.identity.parse(&reply);
            if let Some(e) = &p.errors {
                let _ = e.is_no_error(&reply);
                let _ = e.parse(&reply);
            }
            for op in p.operations.values() {
                if let Some(w) = &op.wait {
                    let _ = w.is_done(&reply);
                }
                if let Some(r) = &op.reply {
                    let _ = parse_reply(r, &reply);
                }
            }
        }
    }
}

/// The annotated example in drivers/README.md is a valid profile, and its regex example reads
/// the reply it shows.
#[test]
fn readme_examples_validate() {
    let readme = include_str!("../../drivers/README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert_eq!(
        blocks.len(),
        2,
        "README has the profile example and the regex example"
    );
    let p = parse_profile(blocks[0], Source::File("fluke-5720a.toml".into())).unwrap();
    assert_eq!(
        p.operations.keys().map(String::as_str).collect::<Vec<_>>(),
        ["source_set", "source_settled", "source_value"]
    );
    assert!(p.operation("source_set").unwrap().check_errors);
    let with_regex = format!("{}\n{}", blocks[0], blocks[1]);
    let p = parse_profile(&with_regex, Source::File("fluke-5720a.toml".into())).unwrap();
    let env = p.operation("env_read").unwrap();
    let values = parse_reply(
        env.reply.as_ref().unwrap(),
        "P= 1033.7 hPa T= 22.2 'C RH= 38.3 %RH",
    )
    .unwrap();
    assert_eq!(values.len(), 3);
    let shown = parse(&BASE.replace("reply = { kind = \"number\" }\n", ""))
        .unwrap_err()
        .to_string();
    assert!(
        readme.contains(&shown.replace("profiles/test-dmm.toml:23", "drivers/my-dmm.toml:23")),
        "the README's error example is what the checker prints: {shown}"
    );
}

#[test]
fn keys_are_located_down_to_the_deepest_part_that_exists() {
    let tree = toml::de::DeTable::parse(BASE).unwrap();
    let line = |key: &str| {
        super::load::span_of(tree.get_ref(), key).map(|s| BASE[..s.start].matches('\n').count() + 1)
    };
    assert_eq!(line("operations.configure.send[1]"), Some(20));
    assert_eq!(line("operations.read.reply.kind"), Some(24));
    assert_eq!(
        line("operations.read.wait.mask"),
        Some(22),
        "the operation, as deep as exists"
    );
    assert_eq!(line("io.baud"), Some(11));
    assert_eq!(line("init[5]"), Some(5));
    assert_eq!(line("nothing.here"), None);
}
