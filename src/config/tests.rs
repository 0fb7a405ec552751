use super::*;
use crate::drivers::MIN_TIMEOUT;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/base"))
}

const MINIMAL: &str = r#"
[lab]
id = "LAB-A"
name = "Lab A"

[artefact]
id = "Z1"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"

[[instrument]]
name = "dmm"
resource = "ASRL/dev/ttyUSB0::INSTR"

[[sequence]]
name = "s"

[[sequence.step]]
read = { instrument = "dmm", count = 3, quantity = "voltage", unit = "V" }
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.lab.id, "LAB-A");
    assert_eq!(c.storage.db, Path::new("/base/tsagent.db"));
    assert_eq!(c.signing.key, Path::new("/base/keys/lab_ed25519"));
    let Step::Read(r) = &c.sequences[0].steps[0] else {
        panic!("not a read step")
    };
    assert_eq!(r.op, "read");
    assert_eq!(c.instruments[0].profile.id, DEFAULT_DRIVER);
    assert_eq!(r.interval, Duration::ZERO);
    assert_eq!(c.instruments[0].link, LinkSettings::default());
}

#[test]
fn shipped_configs_are_valid() {
    let demo = Config::demo(Path::new("/tmp/demo")).unwrap();
    assert_eq!(demo.adapters[0].endpoint, AdapterEndpoint::Simulator);
    assert_eq!(demo.instruments[1].endpoint, Endpoint::SimulatorPty);
    assert!(demo.sequence("zener-10v").is_some());
    // The demo lab has a result to report: two corrections from its PTU300 and a small budget.
    assert_eq!(demo.corrections.len(), 2);
    assert!(demo.corrections.iter().all(|c| c.instrument == "env"));
    assert_eq!(demo.uncertainty.len(), 2);
    assert_eq!(demo.report.country.as_deref(), Some("CN"));
    let example = include_str!("../../config/example-zener-10v.toml");
    let c = parse(example).unwrap();
    assert_eq!(c.sequences[0].every, Some(Duration::from_secs(1800)));
}

fn error_text(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// Each case edits MINIMAL (`from` → `to`) and must be refused at `line`, naming `key`.
fn assert_invalid(cases: &[(&str, &str, usize, &str)]) {
    for (from, to, line, key) in cases {
        let msg = error_text(&MINIMAL.replace(from, to));
        assert!(
            msg.starts_with(&format!("test.toml:{line}: invalid `{key}`")),
            "{to}: {msg}"
        );
    }
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = MINIMAL.replace("resource = \"ASRL", "baudrate = 9600\nresource = \"ASRL");
    let msg = error_text(&text);
    assert!(msg.starts_with("test.toml:15:"), "{msg}");
    assert!(msg.contains("unknown field `baudrate`"), "{msg}");
}

#[test]
fn unknown_key_in_a_step_names_it() {
    let text = MINIMAL.replace("count = 3", "count = 3, cuont = 4");
    let msg = error_text(&text);
    assert!(msg.contains("cuont"), "{msg}");
    assert!(msg.starts_with("test.toml:21:"), "{msg}");
}

#[test]
fn bad_values_name_line_and_key() {
    let cases = [
        (
            "resource = \"ASRL/dev/ttyUSB0::INSTR\"",
            "resource = \"COM1\"",
            15,
            "instrument.resource",
        ),
        ("count = 3", "count = 0", 21, "sequence.step.read.count"),
        (
            "count = 3",
            "count = 3, interval = \"soon\"",
            21,
            "sequence.step.read.interval",
        ),
        (
            "instrument = \"dmm\", count",
            "instrument = \"dvm\", count",
            21,
            "sequence.step.read.instrument",
        ),
        ("id = \"LAB-A\"", "id = \"../etc\"", 3, "lab.id"),
    ];
    assert_invalid(&cases);
}

#[test]
fn bad_enum_value_is_a_parse_error_with_line() {
    let text = MINIMAL.replace("resource = \"ASRL", "parity = \"mark\"\nresource = \"ASRL");
    let msg = error_text(&text);
    assert!(msg.starts_with("test.toml:15:"), "{msg}");
    assert!(msg.contains("mark"), "{msg}");
}

#[test]
fn serial_settings_are_read() {
    let text = MINIMAL.replace(
        "resource = \"ASRL",
        "baud = 4800\ndata_bits = 7\nparity = \"even\"\nstop_bits = 1\nflow_control = \"xonxoff\"\nread_termination = \"\\r\\n\"\ntimeout = \"1500ms\"\nresource = \"ASRL",
    );
    let c = parse(&text).unwrap();
    let i = &c.instruments[0];
    assert_eq!(i.serial.baud, 4800);
    assert_eq!(i.serial.data_bits, DataBits::Seven);
    assert_eq!(i.serial.parity, Parity::Even);
    assert_eq!(i.serial.flow_control, FlowControl::XonXoff);
    assert_eq!(i.link.read_termination, b"\r\n");
    assert_eq!(i.link.timeout, Duration::from_millis(1500));
}

#[test]
fn sequence_hash_follows_the_definition() {
    let a = parse(MINIMAL).unwrap().sequences_sha256();
    let b = parse(&MINIMAL.replace("count = 3", "count = 4"))
        .unwrap()
        .sequences_sha256();
    assert_ne!(a, b);
    assert_eq!(a, parse(MINIMAL).unwrap().sequences_sha256());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn mutated_config_never_panics(pos in 0usize..600, insert in "[\\[\\]=\"a-z0-9 \\n.,{}]{0,12}") {
            let mut text = MINIMAL.to_owned();
            let pos = pos.min(text.len());
            if text.is_char_boundary(pos) {
                text.insert_str(pos, &insert);
            }
            let _ = parse(&text);
        }
    }
}

#[test]
fn more_bad_values_name_their_line() {
    let with_sim = format!("{MINIMAL}\n[simulator]\nmanufacturer = \"A,B\"\n");
    let msg = error_text(&with_sim);
    assert!(msg.contains("invalid `simulator.manufacturer`"), "{msg}");
    assert!(msg.starts_with("test.toml:24:"), "{msg}");
    let msg = error_text(&format!("{MINIMAL}\n[simulator]\ntime_scale = 0.5\n"));
    assert!(
        msg.starts_with("test.toml:24: invalid `simulator.time_scale`"),
        "{msg}"
    );
    let twice = MINIMAL.replace(
        "[[sequence]]",
        "[[instrument]]\nname = \"dmm\"\nresource = \"ASRL/dev/ttyS1::INSTR\"\n\n[[sequence]]",
    );
    let msg = error_text(&twice);
    assert!(
        msg.starts_with("test.toml:18: invalid `instrument.name`: `dmm` is used by more than one"),
        "{msg}"
    );
    let msg = error_text(&MINIMAL.replace("count = 3", "count = 3, interval = \"300000000000y\""));
    assert!(msg.contains("longer than a year"), "{msg}");
}

#[test]
fn drivers_operations_and_parameters_are_checked_with_their_line() {
    let cases: [(&str, &str, usize, &str); 6] = [
        (
            "resource = \"ASRL",
            "driver = \"hp-9999\"\nresource = \"ASRL",
            15,
            "instrument.driver",
        ),
        (
            "resource = \"ASRL",
            "params = { nplcc = 10 }\nresource = \"ASRL",
            15,
            "instrument.params.nplcc",
        ),
        (
            "read = { instrument = \"dmm\", count = 3, quantity = \"voltage\", unit = \"V\" }",
            "configure = { instrument = \"dmm\", params = { rnage = \"10\" } }",
            21,
            "sequence.step.configure.params.rnage",
        ),
        (
            "read = { instrument = \"dmm\", count = 3, quantity = \"voltage\", unit = \"V\" }",
            "operate = { instrument = \"dmm\", op = \"source_set\" }",
            21,
            "sequence.step.operate.op",
        ),
        (
            "read = { instrument = \"dmm\", count = 3, quantity = \"voltage\", unit = \"V\" }",
            "read = { instrument = \"dmm\", count = 3 }",
            21,
            "sequence.step.read",
        ),
        (
            "read = { instrument = \"dmm\", count = 3, quantity = \"voltage\", unit = \"V\" }",
            "read = { instrument = \"dmm\", op = \"configure\", count = 3, quantity = \"voltage\", unit = \"V\" }",
            21,
            "sequence.step.read.op",
        ),
    ];
    assert_invalid(&cases);
}

#[test]
fn gpib_instruments_need_their_adapter() {
    let gpib = MINIMAL.replace("ASRL/dev/ttyUSB0::INSTR", "GPIB0::22::INSTR");
    let msg = error_text(&gpib);
    assert!(msg.contains("no [[adapter]] for GPIB board 0"), "{msg}");
    let with_adapter = format!(
        "[[adapter]]\nresource = \"PRLGX-TCPIP0::10.0.0.9::1234::INTFC\"\nread_tmo_ms = 200\n{gpib}"
    );
    let c = parse(&with_adapter).unwrap();
    assert_eq!(c.adapters[0].board, 0);
    assert_eq!(c.adapters[0].read_tmo_ms, 200);
    let not_adapter = format!("[[adapter]]\nresource = \"TCPIP::10.0.0.9::1234::SOCKET\"\n{gpib}");
    assert!(error_text(&not_adapter).contains("not a Prologix adapter"));
}

#[test]
fn a_simulated_adapter_serves_its_board() {
    let gpib = MINIMAL.replace("ASRL/dev/ttyUSB0::INSTR", "GPIB2::22::INSTR");
    for (resource, board) in [("SIM::GPIB2::INTFC", 2), ("sim::gpib2::intfc", 2)] {
        let c = parse(&format!("[[adapter]]\nresource = \"{resource}\"\n{gpib}")).unwrap();
        assert_eq!(c.adapters[0].endpoint, AdapterEndpoint::Simulator);
        assert_eq!(c.adapters[0].board, board);
    }
    let wrong_board = format!("[[adapter]]\nresource = \"SIM::GPIB1::INTFC\"\n{gpib}");
    assert!(error_text(&wrong_board).contains("no [[adapter]] for GPIB board 2"));
    for bad in ["SIM::GPIBX::INTFC", "SIM::GPIB999::INTFC"] {
        let msg = error_text(&format!("[[adapter]]\nresource = \"{bad}\"\n{gpib}"));
        assert!(msg.contains("invalid `adapter.resource`"), "{bad}: {msg}");
    }
}

#[test]
fn two_instruments_at_one_gpib_address_are_refused() {
    let text = MINIMAL
        .replace("ASRL/dev/ttyUSB0::INSTR", "GPIB0::22::INSTR")
        .replace(
            "[[sequence]]",
            "[[instrument]]\nname = \"dvm2\"\nresource = \"GPIB0::22::INSTR\"\n\n[[sequence]]",
        );
    let msg = error_text(&format!(
        "[[adapter]]\nresource = \"SIM::GPIB0::INTFC\"\n{text}"
    ));
    assert!(
        msg.contains("invalid `instrument.resource`: GPIB0::22::INSTR is also `dmm`"),
        "{msg}"
    );
}

#[test]
fn a_profile_brings_its_serial_settings_and_the_lab_can_override_them() {
    let ptu = MINIMAL
        .replace(
            "resource = \"ASRL",
            "driver = \"vaisala-ptu300\"\nresource = \"ASRL",
        )
        .replace(
            "count = 3, quantity = \"voltage\", unit = \"V\"",
            "op = \"env_read\", count = 3",
        );
    let c = parse(&ptu).unwrap();
    let i = &c.instruments[0];
    assert_eq!(
        (i.serial.baud, i.serial.data_bits, i.serial.parity),
        (4800, DataBits::Seven, Parity::Even)
    );
    assert_eq!(i.link.read_termination, b"\r\n");
    let faster = ptu.replace(
        "driver = \"vaisala-ptu300\"",
        "driver = \"vaisala-ptu300\"\nbaud = 19200",
    );
    assert_eq!(parse(&faster).unwrap().instruments[0].serial.baud, 19200);
}

#[test]
fn profile_overrides_apply_and_their_errors_say_where() {
    let overridden = MINIMAL.replace(
        "[[sequence]]",
        "[instrument.profile.operations.read]\nquery = \"MEAS:VOLT:DC?\"\n\n[[sequence]]",
    );
    let c = parse(&overridden).unwrap();
    let read = c.instruments[0].profile.operation("read").unwrap();
    assert_eq!(read.query.as_ref().unwrap().as_str(), "MEAS:VOLT:DC?");
    let broken = MINIMAL.replace(
        "[[sequence]]",
        "[instrument.profile.operations.read]\ntimeout = \"soon\"\n\n[[sequence]]",
    );
    let msg = error_text(&broken);
    assert!(msg.contains("test.toml:17 [instrument.profile]"), "{msg}");
    assert!(msg.contains("operations.read.timeout"), "{msg}");
}

#[test]
fn a_serial_number_is_checked_only_where_the_driver_reads_one() {
    let named = MINIMAL.replace(
        "resource = \"ASRL/dev/ttyUSB0::INSTR\"",
        "resource = \"ASRL/dev/ttyUSB0::INSTR\"\nserial_number = \" MY54000001 \"",
    );
    let c = parse(&named).unwrap();
    assert_eq!(
        c.instruments[0].serial_number.as_deref(),
        Some("MY54000001")
    );
    let empty = named.replace("\" MY54000001 \"", "\"  \"");
    assert!(error_text(&empty).contains("invalid `instrument.serial_number`: must not be empty"));
    // The 3458A's `ID?` names no serial number.
    let hp = named.replace(
        "serial_number",
        "driver = \"keysight-3458a\"\nserial_number",
    );
    let msg = error_text(&hp);
    assert!(
        msg.contains("invalid `instrument.serial_number`: driver `keysight-3458a` does not read a serial number"),
        "{msg}"
    );
}

#[test]
fn unusable_paths_and_deadlines_are_refused_at_their_line() {
    let storage = |body: &str| format!("[storage]\n{body}\n\n[[instrument]]");
    let db_empty = storage("db = \"\"");
    let db_root = storage("db = \"/\"");
    let db_folder = storage("db = \"data/\"");
    let bundles_empty = storage("bundles = \"\"");
    let key_empty = "[signing]\nkey = \"\"\n\n[[instrument]]".to_owned();
    let cases = [
        ("[[instrument]]", db_empty.as_str(), 14, "storage.db"),
        ("[[instrument]]", db_root.as_str(), 14, "storage.db"),
        ("[[instrument]]", db_folder.as_str(), 14, "storage.db"),
        (
            "[[instrument]]",
            bundles_empty.as_str(),
            14,
            "storage.bundles",
        ),
        ("[[instrument]]", key_empty.as_str(), 14, "signing.key"),
        (
            "resource = \"ASRL/dev/ttyUSB0::INSTR\"",
            "resource = \"ASRL/dev/ttyUSB0::INSTR\"\ntimeout = \"1ns\"",
            16,
            "instrument.timeout",
        ),
        (
            "resource = \"ASRL/dev/ttyUSB0::INSTR\"",
            "resource = \"ASRL/dev/ttyUSB0::INSTR\"\ntimeout = \"9ms\"",
            16,
            "instrument.timeout",
        ),
    ];
    assert_invalid(&cases);
    let msg = error_text(&MINIMAL.replace(
        "resource = \"ASRL/dev/ttyUSB0::INSTR\"",
        "resource = \"ASRL/dev/ttyUSB0::INSTR\"\ntimeout = \"1ns\"",
    ));
    assert!(msg.contains("at least 10ms"), "{msg}");
    // The minimum itself is fine.
    let ok = MINIMAL.replace(
        "resource = \"ASRL/dev/ttyUSB0::INSTR\"",
        "resource = \"ASRL/dev/ttyUSB0::INSTR\"\ntimeout = \"10ms\"",
    );
    assert_eq!(parse(&ok).unwrap().instruments[0].link.timeout, MIN_TIMEOUT);
}

#[test]
fn a_config_without_a_sequence_is_refused() {
    let cut = &MINIMAL[..MINIMAL.find("[[sequence]]").unwrap()];
    let msg = error_text(cut);
    assert!(
        msg.starts_with("test.toml:15: invalid `sequence`: the config defines no sequence"),
        "{msg}"
    );
}

#[test]
fn parse_errors_name_the_key_in_a_labs_words() {
    let msg = error_text(&MINIMAL.replace("count = 3", "count = 3, params = { nplc = [1] }"));
    assert!(
        msg.starts_with("test.toml:21:") && msg.contains("`sequence.step.read.params.nplc`: "),
        "{msg}"
    );
    assert!(
        msg.contains("expected a string, a number or a boolean"),
        "{msg}"
    );
    let msg =
        error_text(&MINIMAL.replace("read = {", "identify = { instrument = \"dmm\" }\nread = {"));
    assert!(msg.starts_with("test.toml:20:"), "{msg}");
    assert!(
        msg.contains("a step takes exactly one action") && msg.contains("more than one"),
        "{msg}"
    );
    let msg = error_text(&MINIMAL.replace("read = {", "#read = {"));
    assert!(msg.contains("this one has none"), "{msg}");
    // A missing table has no place in the text: the end of the file, never line 0.
    let msg = error_text("[lab]\nid = \"L\"\nname = \"l\"\n");
    assert!(msg.starts_with("test.toml:3:"), "{msg}");
    assert!(msg.contains("missing field `artefact`"), "{msg}");
    let msg = error_text(&format!("{MINIMAL}\n[simulator]\nmodel = \"A;B\"\n"));
    assert!(
        msg.starts_with("test.toml:24: invalid `simulator.model`"),
        "{msg}"
    );
}

/// A lab config using every table and step kind, for mutation.
const FULL: &str = r#"
[lab]
id = "LAB-A"
name = "Lab A"

[artefact]
id = "Z1"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"

[storage]
db = "lab.db"
bundles = "bundles"
log_exchanges = "all"

[signing]
key = "keys/lab"

[simulator]
noise = 1e-7
time_scale = 10
lab_temp_period = "1d"
manufacturer = "TSAGENT"
faults = ["garbage,every=5"]

[[adapter]]
resource = "SIM::GPIB0::INTFC"
read_tmo_ms = 50

[[instrument]]
name = "dvm"
resource = "GPIB0::22::INSTR"
driver = "keysight-3458a"
timeout = "5s"
params = { nplc = 10 }

[[instrument]]
name = "env"
resource = "ASRL/dev/ttyUSB0::INSTR"
driver = "vaisala-ptu300"
baud = 4800
data_bits = 7
parity = "even"
stop_bits = 1
flow_control = "none"
read_termination = "\r\n"
max_reply = 4096

[[sequence]]
name = "s"
every = "30m"

[[sequence.step]]
identify = { instrument = "dvm" }

[[sequence.step]]
configure = { instrument = "dvm", params = { range = "10", nplc = "10" } }

[[sequence.step]]
read = { instrument = "dvm", count = 3, interval = "1s", quantity = "voltage", unit = "V" }

[[sequence.step]]
drain_errors = { instrument = "dvm" }

[[sequence.step]]
read = { instrument = "env", op = "env_read", count = 1 }

[[correction]]
quantity = "temperature"
coefficient = 0.2e-6
u = 0.02e-6
reference = 23
u_quantity = 0.05
within = "15m"

[[uncertainty]]
name = "DVM resolution"
distribution = "rectangular"
value = 5e-8

[report]
country = "CN"
languages = ["en"]
"#;

/// Values a mutation puts where another was.
const VALUES: &[&str] = &[
    "[1, 2]",
    "{ a = 1 }",
    "true",
    "-1",
    "0",
    "1e999",
    "\"\"",
    "\"/\"",
    "\"1ns\"",
    "\"x\"",
    "[]",
    "{}",
    "4294967296",
    "\"SIM::PTY::INSTR\"",
];

/// Lines a mutation inserts.
const LINES: &[&str] = &[
    "[[sequence.step]]",
    "[[sequence]]",
    "[[instrument]]",
    "[storage]",
    "identify = { instrument = \"env\" }",
    "operate = { instrument = \"dvm\", op = \"x\" }",
    "params = { count = [1] }",
    "count = 2",
    "name = \"s\"",
    "x = 1",
];

/// No message shows the program's insides or a place that is not in the file.
fn assert_presentable(msg: &str) {
    for internal in [
        "Raw",
        "untagged",
        "element",
        "variant of",
        "Spanned",
        "DeTable",
        "Value",
        "struct ",
    ] {
        assert!(!msg.contains(internal), "`{internal}` in: {msg}");
    }
    let rest = msg
        .strip_prefix("test.toml:")
        .unwrap_or_else(|| panic!("no file and line: {msg}"));
    let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let line: usize = line.parse().unwrap_or_else(|_| panic!("no line: {msg}"));
    assert!(line >= 1, "{msg}");
    let after = &rest[line.to_string().len()..];
    if let Some(col) = after.strip_prefix(':') {
        let col: String = col.chars().take_while(char::is_ascii_digit).collect();
        if !col.is_empty() {
            assert!(col.parse::<usize>().unwrap() >= 1, "{msg}");
        }
    }
}

#[test]
fn schedule_keys_are_read_and_checked_with_their_line() {
    let scheduled = |keys: &str| MINIMAL.replace("name = \"s\"", &format!("name = \"s\"\n{keys}"));
    let c = parse(&scheduled("every = \"1h\"\nat = \"15m\"")).unwrap();
    assert_eq!(c.sequences[0].every, Some(Duration::from_secs(3600)));
    assert_eq!(c.sequences[0].at, Some(Duration::from_secs(900)));
    let c = parse(&scheduled("every = \"30m\"")).unwrap();
    assert_eq!(c.sequences[0].at, None);

    // Each case is refused at the line of `at` (the last one added), naming the key and why.
    let cases = [
        ("at = \"15m\"", "needs `every`"),
        (
            "every = \"1h\"\nat = \"1h\"",
            "must be less than `every` (1h)",
        ),
        (
            "every = \"30m\"\nat = \"45m\"",
            "must be less than `every` (30m)",
        ),
        ("every = \"1h\"\nat = \"soon\"", "invalid `sequence.at`"),
    ];
    for (keys, reason) in cases {
        let msg = error_text(&scheduled(keys));
        let line = 18 + keys.lines().count();
        assert!(
            msg.starts_with(&format!("test.toml:{line}: invalid `sequence.at`")),
            "{keys}: {msg}"
        );
        assert!(msg.contains(reason), "{keys}: {msg}");
    }
}

#[test]
fn the_full_config_is_valid() {
    parse(FULL).unwrap();
}

mod messages {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Mutation {
        DeleteLine(usize),
        DuplicateLine(usize),
        ReplaceValue(usize, usize),
        InsertLine(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (0usize..80).prop_map(Mutation::DeleteLine),
            (0usize..80).prop_map(Mutation::DuplicateLine),
            (0usize..80, 0..VALUES.len()).prop_map(|(l, v)| Mutation::ReplaceValue(l, v)),
            (0usize..80, 0..LINES.len()).prop_map(|(l, i)| Mutation::InsertLine(l, i)),
        ]
    }

    fn apply(text: &str, mutations: &[Mutation]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for m in mutations {
            let n = lines.len().max(1);
            match *m {
                Mutation::DeleteLine(l) if !lines.is_empty() => {
                    lines.remove(l % n);
                }
                Mutation::DuplicateLine(l) if !lines.is_empty() => {
                    let line = lines[l % n].clone();
                    lines.insert(l % n, line);
                }
                Mutation::ReplaceValue(l, v) if !lines.is_empty() => {
                    let line = &mut lines[l % n];
                    // The value after the first `=`, or inside a step's inline table after its
                    // first key.
                    if let Some(eq) = line.rfind(" = ") {
                        let end = line[eq + 3..]
                            .find([',', '}'])
                            .map_or(line.len(), |i| eq + 3 + i);
                        line.replace_range(eq + 3..end, VALUES[v]);
                    }
                }
                Mutation::InsertLine(l, i) => lines.insert(l % (lines.len() + 1), LINES[i].into()),
                _ => {}
            }
        }
        lines.join("\n") + "\n"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn no_message_shows_internal_names_or_line_zero(
            mutations in proptest::collection::vec(mutation(), 1..4),
        ) {
            let text = apply(FULL, &mutations);
            if let Err(e) = parse(&text) {
                assert_presentable(&e.to_string());
            }
        }
    }
}

#[test]
fn an_offset_changes_the_sequence_hash_and_its_absence_does_not() {
    let plain = parse(MINIMAL).unwrap().sequences_sha256();
    // The hash of a sequence without `at` is what it was before the key existed.
    let json = serde_json::to_string(&parse(MINIMAL).unwrap().sequences).unwrap();
    assert!(!json.contains("\"at\""), "{json}");
    let every = MINIMAL.replace("name = \"s\"", "name = \"s\"\nevery = \"1h\"");
    let with_at = every.replace("every = \"1h\"", "every = \"1h\"\nat = \"15m\"");
    let every = parse(&every).unwrap().sequences_sha256();
    assert_ne!(plain, every);
    assert_ne!(every, parse(&with_at).unwrap().sequences_sha256());
}

#[test]
fn the_control_socket_defaults_to_beside_the_database_and_is_checked_like_a_file() {
    let c = parse(&format!("{MINIMAL}\n[storage]\ndb = \"state/lab.db\"\n")).unwrap();
    assert_eq!(c.control.socket, Path::new("/base/state/tsagent.sock"));
    let c = parse(&format!(
        "{MINIMAL}\n[control]\nsocket = \"/run/t/t.sock\"\n"
    ))
    .unwrap();
    assert_eq!(c.control.socket, Path::new("/run/t/t.sock"));
    let err = parse(&format!("{MINIMAL}\n[control]\nsocket = \"\"\n")).unwrap_err();
    assert!(err.to_string().contains("control.socket"), "{err}");
    let err = parse(&format!("{MINIMAL}\n[control]\nsockets = \"x\"\n")).unwrap_err();
    assert!(err.to_string().contains("sockets"), "{err}");
}

#[test]
fn sealing_every_is_a_duration_of_at_least_a_second() {
    let c = parse(&format!("{MINIMAL}\n[sealing]\nevery = \"24h\"\n")).unwrap();
    assert_eq!(c.sealing.every, Some(Duration::from_secs(86_400)));
    assert_eq!(parse(MINIMAL).unwrap().sealing.every, None);
    let err = parse(&format!("{MINIMAL}\n[sealing]\nevery = \"10ms\"\n")).unwrap_err();
    assert!(err.to_string().contains("sealing.every"), "{err}");
}

#[test]
fn deadlines_are_dates_through_their_day_or_instants_and_dispatch_comes_after_receipt() {
    let artefact = "unit = \"V\"\n";
    let with = |table: &str| MINIMAL.replacen(artefact, &format!("{artefact}{table}"), 1);
    let c = parse(&with(
        "[artefact.deadlines]\nreceive_by = \"2026-12-10\"\ndispatch_by = \"2027-01-20T17:00:00+08:00\"\n",
    ))
    .unwrap();
    let receive = c.artefact.deadlines.receive_by.unwrap();
    assert_eq!(receive.text, "2026-12-10");
    // Through the whole of the 10th, UTC.
    assert_eq!(
        receive.utc_us,
        crate::clock::parse_rfc3339("2026-12-11T00:00:00Z").unwrap()
    );
    let dispatch = c.artefact.deadlines.dispatch_by.unwrap();
    assert_eq!(
        dispatch.utc_us,
        crate::clock::parse_rfc3339("2027-01-20T09:00:00Z").unwrap()
    );
    assert_eq!(
        parse(MINIMAL).unwrap().artefact.deadlines,
        Deadlines::default()
    );
    assert_eq!(
        parse(MINIMAL).unwrap().alerts.deadline_notice,
        Duration::from_secs(48 * 3600)
    );

    // Each refusal names the key and the line of the value.
    for (table, line, key, reason) in [
        (
            "[artefact.deadlines]\nreceive_by = \"10 Dec\"\n",
            13,
            "artefact.deadlines.receive_by",
            "a date `YYYY-MM-DD` (through the end of that day, UTC) or an RFC 3339 time",
        ),
        (
            "[artefact.deadlines]\nreceive_by = \"2026-12-10\"\ndispatch_by = \"2026-02-30\"\n",
            14,
            "artefact.deadlines.dispatch_by",
            "day out of range",
        ),
        (
            "[artefact.deadlines]\nreceive_by = \"2026-12-10\"\ndispatch_by = \"2026-12-10T12:00:00Z\"\n",
            14,
            "artefact.deadlines.dispatch_by",
            "must be after `receive_by` (2026-12-10)",
        ),
    ] {
        let msg = error_text(&with(table));
        assert!(
            msg.starts_with(&format!("test.toml:{line}: invalid `{key}`")),
            "{table}: {msg}"
        );
        assert!(msg.contains(reason), "{table}: {msg}");
    }
    let msg = error_text(&with("[artefact.deadlines]\nreceive_on = \"2026-12-10\"\n"));
    assert!(msg.contains("receive_on"), "{msg}");
    let msg = error_text(&format!(
        "{MINIMAL}\n[alerts]\ndeadline_notice = \"soon\"\n"
    ));
    assert!(msg.contains("invalid `alerts.deadline_notice`"), "{msg}");
    let c = parse(&format!("{MINIMAL}\n[alerts]\ndeadline_notice = \"3d\"\n")).unwrap();
    assert_eq!(c.alerts.deadline_notice, Duration::from_secs(3 * 86_400));
}

/// A lab with a DVM (calibrated, with its certificate's uncertainty), a PTU300 and a budget.
const BUDGET: &str = r#"
[lab]
id = "LAB-A"
name = "Lab A"

[artefact]
id = "Z1"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"

[[instrument]]
name = "dvm"
resource = "ASRL/dev/ttyUSB0::INSTR"
calibration = { certificate = "C-1", calibrated = "2026-01-10", due = "2027-01-10", uncertainty = 0.4e-6, relative = true, k = 2, dof = 60 }

[[instrument]]
name = "env"
resource = "ASRL/dev/ttyUSB1::INSTR"
driver = "vaisala-ptu300"

[[sequence]]
name = "s"

[[sequence.step]]
read = { instrument = "dvm", count = 3, quantity = "voltage", unit = "V" }

[[sequence.step]]
read = { instrument = "env", op = "env_read", count = 1 }

[[correction]]
quantity = "temperature"
coefficient = 0.2e-6
u = 0.02e-6
reference = 23

[[correction]]
quantity = "pressure"
instrument = "env"
coefficient = 1.81e-9
u = 0.03e-9
reference = 1013.25
relative = true
u_quantity = 0.1
within = "15m"
name_zh = "大气压"

[[uncertainty]]
name = "DVM calibration"
name_zh = "数字电压表校准"
calibration = "dvm"

[[uncertainty]]
name = "DVM resolution"
distribution = "rectangular"
value = 5e-9

[[uncertainty]]
name = "leakage"
distribution = "normal"
value = 20e-9
k = 2
sensitivity = 1
dof = 8

[report]
comparison = "CCEM-K11.2026"
title_zh = "10 V 比对"
pilot = "BIPM"
lab_name_zh = "甲实验室"
city = "Beijing"
country = "cn"
responsible = "A. Tech"
method = "direct reading with a DVM"
languages = ["en", "zh"]
"#;

#[test]
fn corrections_budget_and_report_are_read() {
    let c = parse(BUDGET).unwrap();
    let t = &c.corrections[0];
    // The one instrument whose steps read `temperature` (a capture of the PTU300's pattern).
    assert_eq!(t.instrument, "env");
    assert_eq!((t.coefficient, t.u, t.reference), (0.2e-6, 0.02e-6, 23.0));
    assert!(!t.relative);
    assert_eq!(t.u_quantity, None);
    assert_eq!(t.within, DEFAULT_WITHIN);
    assert_eq!(t.name_zh, "温度");
    let p = &c.corrections[1];
    assert!(p.relative);
    assert_eq!(p.u_quantity, Some(0.1));
    assert_eq!(p.within, Duration::from_secs(900));
    assert_eq!(p.name_zh, "大气压");

    let cal = c.instruments[0].calibration.as_ref().unwrap();
    let stated = CalibrationUncertainty {
        expanded: 0.4e-6,
        k: 2.0,
        relative: true,
        dof: 60.0,
    };
    assert_eq!(cal.uncertainty, Some(stated));
    assert_eq!(c.uncertainty.len(), 3);
    assert_eq!(c.uncertainty[0].name_zh, "数字电压表校准");
    assert_eq!(
        c.uncertainty[0].source,
        ComponentSource::Calibration {
            instrument: "dvm".into(),
            certificate: "C-1".into(),
            uncertainty: stated
        }
    );
    assert_eq!(c.uncertainty[1].name_zh, "DVM resolution");
    assert_eq!(
        c.uncertainty[1].source,
        ComponentSource::Stated {
            distribution: crate::stats::Distribution::Rectangular,
            value: 5e-9,
            dof: f64::INFINITY
        }
    );
    assert_eq!(
        c.uncertainty[2].source,
        ComponentSource::Stated {
            distribution: crate::stats::Distribution::Normal { k: 2.0 },
            value: 20e-9,
            dof: 8.0
        }
    );

    let r = &c.report;
    assert_eq!(r.comparison.as_deref(), Some("CCEM-K11.2026"));
    assert_eq!(r.title, "Measurement of the travelling standard Z1");
    assert_eq!(r.title_zh, "10 V 比对");
    assert_eq!(r.lab_name_zh, "甲实验室");
    assert_eq!(r.country.as_deref(), Some("CN"));
    assert_eq!(r.pilot_zh, None);
    assert_eq!(r.languages, vec![Language::En, Language::Zh]);
}

#[test]
fn degrees_of_freedom_may_be_infinite() {
    let c = parse(&BUDGET.replace("dof = 8", "dof = inf")).unwrap();
    assert!(matches!(
        c.uncertainty[2].source,
        ComponentSource::Stated { dof, .. } if dof == f64::INFINITY
    ));
    let msg = error_text(&BUDGET.replace("dof = 8", "dof = nan"));
    assert!(msg.contains("invalid `uncertainty.dof`"), "{msg}");
}

#[test]
fn a_config_without_a_budget_has_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.corrections.is_empty() && c.uncertainty.is_empty());
    assert_eq!(c.report.languages, vec![Language::Zh, Language::En]);
    assert_eq!(c.report.lab_name_zh, "Lab A");
    assert_eq!(c.report.title_zh, "传递标准 Z1 测量结果");
}

/// Each case edits BUDGET (`from` → `to`) and must be refused at the line holding `at` in the
/// edited text, naming `key`, with `reason` in the message.
fn assert_budget_invalid(cases: &[(&str, &str, &str, &str, &str)]) {
    for (from, to, at, key, reason) in cases {
        assert!(BUDGET.contains(from), "{from}");
        let text = BUDGET.replacen(from, to, 1);
        let line = text
            .lines()
            .position(|l| l.trim() == *at)
            .or_else(|| text.lines().position(|l| l.contains(at)))
            .unwrap_or_else(|| panic!("no `{at}` in the edited text"))
            + 1;
        let msg = error_text(&text);
        assert!(
            msg.starts_with(&format!("test.toml:{line}: invalid `{key}`")),
            "{to}: {msg}"
        );
        assert!(msg.contains(reason), "{to}: {msg}");
    }
}

#[test]
fn bad_corrections_name_their_key_and_line() {
    assert_budget_invalid(&[
        (
            "quantity = \"temperature\"",
            "quantity = \"thermistor\"",
            "thermistor",
            "correction.quantity",
            "no sequence reads a quantity `thermistor`",
        ),
        (
            "instrument = \"env\"\ncoefficient",
            "instrument = \"dvm\"\ncoefficient",
            "instrument = \"dvm\"",
            "correction.instrument",
            "no sequence reads `pressure` from `dvm`",
        ),
        (
            "instrument = \"env\"\ncoefficient",
            "instrument = \"ptu\"\ncoefficient",
            "instrument = \"ptu\"",
            "correction.instrument",
            "no instrument named `ptu`",
        ),
        (
            "u = 0.02e-6",
            "u = -0.02e-6",
            "u = -0.02e-6",
            "correction.u",
            "zero or a positive number",
        ),
        (
            "coefficient = 0.2e-6",
            "coefficient = nan",
            "coefficient = nan",
            "correction.coefficient",
            "finite",
        ),
        (
            "within = \"15m\"",
            "within = \"0s\"",
            "within = \"0s\"",
            "correction.within",
            "longer than 0s",
        ),
        (
            "u_quantity = 0.1",
            "u_quantity = -1",
            "u_quantity = -1",
            "correction.u_quantity",
            "zero or a positive",
        ),
        (
            "quantity = \"pressure\"",
            "quantity = \"temperature\" # again",
            "# again",
            "correction.quantity",
            "corrected for twice",
        ),
        (
            "nominal = 10.0",
            "nominal = 0.0",
            "coefficient = 1.81e-9",
            "correction.relative",
            "nonzero `artefact.nominal`",
        ),
    ]);
}

#[test]
fn a_quantity_read_by_two_instruments_needs_its_instrument_named() {
    let text = BUDGET.replace(
        "read = { instrument = \"dvm\", count = 3, quantity = \"voltage\", unit = \"V\" }",
        "read = { instrument = \"dvm\", count = 3, quantity = \"temperature\", unit = \"V\" }",
    );
    let msg = error_text(&text);
    assert!(
        msg.contains("invalid `correction.instrument`: `temperature` is read by dvm, env"),
        "{msg}"
    );
}

#[test]
fn bad_uncertainty_components_name_their_key_and_line() {
    assert_budget_invalid(&[
        (
            "calibration = \"dvm\"",
            "calibration = \"dmm\"",
            "calibration = \"dmm\"",
            "uncertainty.calibration",
            "no instrument named `dmm`",
        ),
        (
            ", uncertainty = 0.4e-6, relative = true, k = 2, dof = 60 }",
            " }",
            "calibration = \"dvm\"",
            "uncertainty.calibration",
            "states no `uncertainty` and `k`",
        ),
        (
            "calibration = { certificate = \"C-1\", calibrated = \"2026-01-10\", due = \"2027-01-10\", uncertainty = 0.4e-6, relative = true, k = 2, dof = 60 }\n",
            "",
            "calibration = \"dvm\"",
            "uncertainty.calibration",
            "has no `calibration`",
        ),
        (
            "calibration = \"dvm\"",
            "calibration = \"dvm\"\nvalue = 1e-6",
            "value = 1e-6",
            "uncertainty.value",
            "from the instrument's certificate",
        ),
        (
            "distribution = \"rectangular\"\n",
            "",
            "name = \"DVM resolution\"",
            "uncertainty.distribution",
            "give `distribution`",
        ),
        (
            "value = 5e-9",
            "value = 0",
            "value = 0",
            "uncertainty.value",
            "a positive number",
        ),
        (
            "value = 5e-9",
            "value = 5e-9\nk = 2",
            "k = 2",
            "uncertainty.k",
            "only a normal distribution",
        ),
        (
            "k = 2\nsensitivity",
            "sensitivity",
            "distribution = \"normal\"",
            "uncertainty.k",
            "give its coverage factor",
        ),
        (
            "k = 2\nsensitivity",
            "k = 0\nsensitivity",
            "k = 0",
            "uncertainty.k",
            "positive coverage factor",
        ),
        (
            "dof = 8",
            "dof = 0",
            "dof = 0",
            "uncertainty.dof",
            "positive degrees of freedom",
        ),
        (
            "name = \"leakage\"",
            "name = \"DVM resolution\" # again",
            "# again",
            "uncertainty.name",
            "listed twice",
        ),
        (
            "relative = true, k = 2,",
            "relative = true,",
            "relative = true, dof",
            "instrument.calibration.k",
            "coverage factor",
        ),
        (
            "uncertainty = 0.4e-6, relative = true, k = 2, dof = 60",
            "k = 2",
            "k = 2 }",
            "instrument.calibration.k",
            "needs `uncertainty`",
        ),
        (
            "uncertainty = 0.4e-6,",
            "uncertainty = -0.4e-6,",
            "uncertainty = -0.4e-6",
            "instrument.calibration.uncertainty",
            "a positive number",
        ),
    ]);
}

#[test]
fn bad_report_settings_name_their_key_and_line() {
    assert_budget_invalid(&[
        (
            "country = \"cn\"",
            "country = \"XX\"",
            "country = \"XX\"",
            "report.country",
            "not an ISO 3166-1 alpha-2",
        ),
        (
            "languages = [\"en\", \"zh\"]",
            "languages = [\"en\", \"fr\"]",
            "languages",
            "report.languages",
            "`fr`",
        ),
        (
            "languages = [\"en\", \"zh\"]",
            "languages = [\"en\", \"en\"]",
            "languages",
            "report.languages",
            "listed twice",
        ),
        (
            "languages = [\"en\", \"zh\"]",
            "languages = []",
            "languages",
            "report.languages",
            "at least one",
        ),
    ]);
}

#[test]
fn an_unknown_distribution_is_a_parse_error_that_lists_the_known_ones() {
    let msg = error_text(&BUDGET.replace("\"rectangular\"", "\"uniform\""));
    assert!(msg.contains("`uncertainty.distribution`"), "{msg}");
    assert!(msg.contains("u-shaped"), "{msg}");
    assert_presentable(&msg);
}
