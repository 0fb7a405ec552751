//! `tsagent readings`: RFC 3339 with any offset and plain dates, `--config` or `--db`, filters by
//! time, run, instrument and quantity, and the run's operator and status beside each reading.

use std::path::Path;

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
read = { instrument = "dvm", count = 4, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "env", op = "env_read", count = 1 }
"#;

/// `readings --csv` with `args`, parsed: (header, rows).
fn csv(config: &Path, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let out = tsagent()
        .args(["readings", "--csv", "--config"])
        .arg(config)
        .args(args)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let mut records = tsagent_bundle::csv::parse(&text, 18).unwrap();
    let header = records.remove(0);
    (header, records)
}

/// The `seq` column of rows.
fn seqs(rows: &[Vec<String>]) -> Vec<u64> {
    rows.iter().map(|r| r[0].parse().unwrap()).collect()
}

/// `utc_us` as local time at `+08:00`, RFC 3339.
fn at_plus_8(utc_us: i64) -> String {
    let local = tsagent::clock::rfc3339(utc_us + 8 * 3_600_000_000);
    format!("{}+08:00", local.strip_suffix('Z').unwrap())
}

#[test]
fn readings_filter_by_time_run_instrument_and_quantity() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(&config, LAB).unwrap();
    for operator in ["ann", "bob"] {
        tsagent()
            .args([
                "measure",
                "--sequence",
                "s",
                "--operator",
                operator,
                "--config",
            ])
            .arg(&config)
            .timeout(PATIENCE)
            .assert()
            .success();
    }

    // Every column of a bundle's readings.csv, then the run's operator and status.
    let (header, all) = csv(&config, &[]);
    let mut expected: Vec<&str> = tsagent_bundle::records::READINGS_HEADER.to_vec();
    expected.extend(["operator", "run_status", "official"]);
    assert_eq!(header, expected);
    assert_eq!(seqs(&all), (1..=14).collect::<Vec<_>>());
    assert_eq!(all[0][15], "ann");
    assert_eq!(all[13][15], "bob");
    assert!(all.iter().all(|r| r[16] == "completed"));
    // Not an official sequence: every reading says so.
    assert!(all.iter().all(|r| r[17] == "0"));

    // Times with an offset mean the same instant as in UTC.
    let utc_us = |row: &Vec<String>| -> i64 { row[11].parse().unwrap() };
    let pivot = utc_us(&all[5]);
    let since = at_plus_8(pivot);
    let (_, after) = csv(&config, &["--since", &since]);
    let want: Vec<u64> = all
        .iter()
        .filter(|r| utc_us(r) >= pivot)
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(seqs(&after), want, "--since {since}");
    let (_, before) = csv(&config, &["--until", &since]);
    let want: Vec<u64> = all
        .iter()
        .filter(|r| utc_us(r) <= pivot)
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(seqs(&before), want, "--until {since}");
    // A plain date is midnight UTC.
    let today = &tsagent::clock::rfc3339(pivot)[..10];
    assert_eq!(csv(&config, &["--since", today]).1.len(), 14);
    assert_eq!(csv(&config, &["--until", today]).1.len(), 0);
    assert_eq!(
        csv(
            &config,
            &[
                "--since",
                "2026-12-02T20:40:00+08:00",
                "--until",
                "2026-12-02T12:39:59Z"
            ]
        )
        .1
        .len(),
        0
    );

    // Run, instrument and quantity.
    let (_, second) = csv(&config, &["--run", "2"]);
    assert_eq!(seqs(&second), (8..=14).collect::<Vec<_>>());
    let (_, env) = csv(&config, &["--instrument", "env"]);
    assert_eq!(env.len(), 6);
    assert!(env.iter().all(|r| r[4] == "env"));
    let (_, pressure) = csv(
        &config,
        &[
            "--instrument",
            "env",
            "--quantity",
            "pressure",
            "--run",
            "1",
        ],
    );
    assert_eq!(seqs(&pressure), vec![5]);

    // The table shows run, operator and the run's status too; `--db` still works.
    let out = tsagent()
        .args(["readings", "--run", "2", "--quantity", "voltage", "--db"])
        .arg(dir.path().join("lab.db"))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for column in ["run", "operator", "run_status", "official"] {
        assert!(lines[0].split_whitespace().any(|c| c == column), "{text}");
    }
    assert!(
        lines[1].contains(" bob ") && lines[1].contains("completed"),
        "{text}"
    );
}

#[test]
fn readings_times_that_are_not_rfc_3339_are_refused_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(&config, LAB).unwrap();
    for bad in [
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "2026-12-02T25:00:00Z",
        "2026-12-02T20:40:00+24:00",
    ] {
        tsagent()
            .args(["readings", "--config"])
            .arg(&config)
            .args(["--since", bad])
            .assert()
            .code(2)
            .stderr(predicates::str::contains("2026-12-02T20:40:00+08:00"));
    }
    // The help says what a plain date means.
    tsagent()
        .args(["readings", "--help"])
        .assert()
        .success()
        .stdout(predicates::str::contains("00:00 UTC"));
}
