//! The `tsagent` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tsagent::cli::Cli::parse();
    match tsagent::cli::run(cli) {
        Ok(()) => ExitCode::from(tsagent::cli::exit::SUCCESS),
        Err(error) => {
            let code = error.exit_code();
            // anyhow's alternate form prints the whole source chain on one line: "a: b: c".
            eprintln!("error: {:#}", anyhow::Error::new(error));
            ExitCode::from(code)
        }
    }
}
