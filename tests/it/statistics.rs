//! Statistics are per instrument and quantity, each in its own unit: a sequence that reads a DVM
//! and a PTU300 never averages volts with hectopascals.

use crate::common::*;

const LAB: &str = r#"
[lab]
id = "L"
name = "l"
[artefact]
id = "A"
kind = "zener"
serial = "1"
nominal = 10.0
unit = "V"
[storage]
db = "lab.db"
[[instrument]]
name = "dvm"
resource = "SIM::PTY::INSTR"
[[instrument]]
name = "env"
resource = "SIM::PTY::INSTR"
driver = "vaisala-ptu300"
[[sequence]]
name = "s"
[[sequence.step]]
read = { instrument = "dvm", count = 10, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "env", op = "env_read", count = 2 }
[[sequence.step]]
read = { instrument = "dvm", count = 1, quantity = "voltage_check", unit = "V" }
"#;

#[test]
fn measure_shows_statistics_per_instrument_and_quantity() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(&config, LAB).unwrap();
    let out = tsagent()
        .args(["measure", "--sequence", "s", "--config"])
        .arg(&config)
        .timeout(PATIENCE)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let line = |prefix: &str| -> String {
        let found: Vec<&str> = stdout.lines().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(found.len(), 1, "one line for {prefix:?} in:\n{stdout}");
        found[0].to_owned()
    };
    let dvm = line("dvm voltage: ");
    assert!(dvm.contains("n = 10, mean = 10.0000"), "{dvm}");
    assert!(dvm.ends_with('V') && dvm.contains(" V, s = "), "{dvm}");
    let pressure = line("env pressure: ");
    assert!(pressure.contains("n = 2, mean = 10"), "{pressure}");
    assert!(pressure.contains(" hPa, s = "), "{pressure}");
    let temperature = line("env temperature: ");
    assert!(temperature.contains(" °C"), "{temperature}");
    let humidity = line("env humidity: ");
    assert!(humidity.contains(" %RH"), "{humidity}");
    // One reading: its value, not a statistic.
    let check = line("dvm voltage_check: ");
    assert!(check.contains("n = 1, value = 10.0000"), "{check}");
    // Nothing pools readings of different quantities (10 + 6 + 1 readings).
    for pooled in ["n = 17", "n = 16", "n = 11"] {
        assert!(!stdout.contains(pooled), "{stdout}");
    }
}
