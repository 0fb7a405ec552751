//! The `tsagent` binary: parse the command line, run it, map the outcome to an exit code.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tsagent::cli::Cli::parse();
    match tsagent::cli::run(cli) {
        Ok(()) => ExitCode::from(tsagent::cli::exit::SUCCESS),
        Err(error) => {
            let code = error.exit_code();
            // anyhow's alternate form prints the whole source chain on one line: "a: b: c". An
            // unwritable stderr (`2>/dev/full`) loses the message but must not turn the failure
            // into a panic: the exit code still says what happened.
            let _ = writeln!(std::io::stderr(), "error: {:#}", anyhow::Error::new(error));
            ExitCode::from(code)
        }
    }
}
