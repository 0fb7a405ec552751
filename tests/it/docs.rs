//! The README's configuration and profile examples are real: they parse and validate.

use std::path::Path;

fn toml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn readme_examples_validate() {
    let readme = include_str!("../../README.md");
    let blocks = toml_blocks(readme);
    assert!(
        blocks.len() >= 3,
        "expected the adapter, profile and override examples"
    );
    let lab = "[lab]\nid = \"L\"\nname = \"l\"\n[artefact]\nid = \"A\"\nkind = \"zener\"\nserial = \"1\"\nnominal = 10.0\nunit = \"V\"\n";
    // The adapters and instruments example.
    let adapters = blocks.iter().find(|b| b.contains("[[adapter]]")).unwrap();
    // A config needs a sequence; one identifying the example's instrument completes it.
    let sequence =
        "\n[[sequence]]\nname = \"s\"\n[[sequence.step]]\nidentify = { instrument = \"dvm\" }\n";
    let config = tsagent::config::Config::parse(
        &format!("{lab}{adapters}{sequence}"),
        "README",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(config.adapters.len(), 2);
    assert_eq!(config.instruments[0].profile.id, "keysight-3458a");
    // The profile example.
    let profile = blocks
        .iter()
        .find(|b| b.starts_with("id = \"my-dmm\""))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-dmm.toml");
    std::fs::write(&path, profile).unwrap();
    tsagent::drivers::check_file(&path).unwrap();
    // The override example, on an instrument.
    let overrides = blocks
        .iter()
        .find(|b| b.starts_with("[instrument.profile.errors]"))
        .unwrap();
    let instrument = "[[instrument]]\nname = \"dmm\"\nresource = \"ASRL/dev/ttyUSB0::INSTR\"\n";
    let sequence =
        "\n[[sequence]]\nname = \"s\"\n[[sequence.step]]\nidentify = { instrument = \"dmm\" }\n";
    let config = tsagent::config::Config::parse(
        &format!("{lab}{instrument}{overrides}{sequence}"),
        "README",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        config.instruments[0].profile.errors.as_ref().unwrap().query,
        "ERR?"
    );
    // The comparison example: checklist, stabilisation, policy, calibration, official sequence.
    let comparison = blocks
        .iter()
        .find(|b| b.starts_with("[[artefact.inspection]]"))
        .unwrap();
    let config =
        tsagent::config::Config::parse(&format!("{lab}{comparison}"), "README", Path::new("."))
            .unwrap();
    assert_eq!(config.artefact.inspection.len(), 2);
    let criterion = config.artefact.stabilisation.criterion.as_ref().unwrap();
    assert_eq!(criterion.sequence, "stability");
    assert!(config.sequence("official").unwrap().official);
    assert!(config.instruments[0].calibration.is_some());
    let deadlines = &config.artefact.deadlines;
    assert_eq!(deadlines.receive_by.as_ref().unwrap().text, "2026-12-10");
    assert!(deadlines.dispatch_by.is_some());
    // The alerts example, deadline_notice included.
    let alerts = blocks.iter().find(|b| b.starts_with("[alerts]")).unwrap();
    let config = tsagent::config::Config::parse(
        &format!("{lab}{alerts}{instrument}{sequence}"),
        "README",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        config.alerts.deadline_notice,
        std::time::Duration::from_secs(48 * 3600)
    );
}

#[test]
fn readme_result_example_validates_on_the_demo_lab() {
    let readme = include_str!("../../README.md");
    let block = toml_blocks(readme)
        .into_iter()
        .find(|b| b.contains("[[correction]]"))
        .expect("the corrections and budget example");
    // The demo lab without its own corrections, budget and report data, then the README's.
    let demo = tsagent::config::DEMO_TOML;
    let base = &demo[..demo.find("[[correction]]").unwrap()];
    let config = tsagent::config::Config::parse(
        &format!("{base}{block}"),
        "README + demo",
        Path::new("/tmp"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.corrections.len(), 1);
    assert_eq!(config.uncertainty.len(), 2);
    assert_eq!(config.report.pilot_country.as_deref(), Some("CN"));
}
