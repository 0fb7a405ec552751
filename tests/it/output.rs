//! No failure of diagnostic output changes the exit code: stdout or stderr at `/dev/full` or
//! closed, a command exits with the code it would have had (never a panic's 101). The one
//! exception is a listing whose stdout is its product (`readings`): failing to write it is the
//! command's failure (exit 5, storage), as it is for `cat`; a reader that goes away (`| head`) is
//! not, and a closed stdout is a sink (Rust's std ignores EBADF on the standard streams).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;

/// How a command's output is broken.
#[derive(Debug, Clone, Copy)]
enum Broken {
    StderrFull,
    StderrClosed,
    StdoutFull,
    StdoutClosed,
    BothFull,
    BothClosed,
}

const ALL: [Broken; 6] = [
    Broken::StderrFull,
    Broken::StderrClosed,
    Broken::StdoutFull,
    Broken::StdoutClosed,
    Broken::BothFull,
    Broken::BothClosed,
];

fn full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

fn exit_code(args: &[String], broken: Option<Broken>) -> Option<i32> {
    // A closed descriptor is closed by the shell that then becomes tsagent: std cannot spawn a
    // child without one.
    let close = match broken {
        Some(Broken::StderrClosed) => "2>&-",
        Some(Broken::StdoutClosed) => ">&-",
        Some(Broken::BothClosed) => ">&- 2>&-",
        _ => "",
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {close}"))
        .arg(bin())
        .args(args)
        .stdin(Stdio::null());
    match broken {
        Some(Broken::StderrFull) => {
            cmd.stdout(Stdio::null()).stderr(full());
        }
        Some(Broken::StdoutFull) => {
            cmd.stdout(full()).stderr(Stdio::null());
        }
        Some(Broken::BothFull) => {
            cmd.stdout(full()).stderr(full());
        }
        _ => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    cmd.status().unwrap().code()
}

#[test]
fn no_output_failure_changes_the_exit_code() {
    let mut lab = Lab::simulated();
    lab.count = 3;
    let config = lab.config();
    measure(&config).success();
    let config = config.display().to_string();
    let db = lab.db().display().to_string();
    // A run that fails, logging a warning on the way.
    let absent_lab = Lab::serial("/dev/does-not-exist");
    let absent = absent_lab.config().display().to_string();
    let missing: PathBuf = lab.path().join("missing");
    let missing = missing.display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        // Success with output on both streams.
        vec!["measure", "--config", &config, "--sequence", "s"],
        vec!["readings", "--db", &db],
        vec!["readings", "--db", &db, "--csv"],
        vec!["db", "check", "--db", &db],
        vec!["sim", "--help-faults"],
        vec!["--help"],
        // Failures, each with its own code.
        vec!["config", "check", &missing],
        vec!["db", "check", "--db", &missing],
        vec!["measure", "--config", &config, "--sequence", "nope"],
        vec!["measure", "--config", &absent, "--sequence", "s"],
        vec!["readings", "--db", &db, "--since", "yesterday"],
        vec!["--no-such-flag"],
    ];
    for case in cases {
        let args: Vec<String> = case.iter().map(|s| s.to_string()).collect();
        let expected = exit_code(&args, None);
        if case[0] == "measure" && case.contains(&absent.as_str()) {
            assert_eq!(expected, Some(3), "the run fails on its instrument");
        }
        assert!(
            matches!(expected, Some(c) if c != 101),
            "{case:?}: {expected:?}"
        );
        for broken in ALL {
            // A closed stdout is a sink to Rust's std (it ignores EBADF on the standard streams),
            // so only a full one fails a listing.
            let stdout_broken = matches!(broken, Broken::StdoutFull | Broken::BothFull);
            let want = if case[0] == "readings" && expected == Some(0) && stdout_broken {
                Some(5)
            } else {
                expected
            };
            assert_eq!(
                exit_code(&args, Some(broken)),
                want,
                "{case:?} with {broken:?}"
            );
        }
    }
}

#[test]
fn readings_stop_quietly_when_the_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    let mut lab = Lab::simulated();
    // More than a pipe holds (64 KiB), so the listing is still writing when the reader leaves.
    lab.count = 2000;
    measure(&lab.config()).success();
    let mut child = Command::new(bin())
        .args(["readings", "--csv", "--db"])
        .arg(lab.db())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut header = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut header)
        .unwrap();
    assert!(header.starts_with("seq,"), "{header}");
    // The reader is gone (`| head -1`); the listing must stop without calling it a failure.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
