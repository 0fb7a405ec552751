//! `tsagent sim`: a simulated instrument, or a Prologix adapter with several, served on a
//! pseudo-terminal or TCP until a signal, announcing each hang-up and return on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tsagent_sim::{BusSpec, Fault, Frame, PersonalityId, PtyServer, SimParams, SimSpec, TcpServer};

use super::{Error, runtime, stop_on_signals_quietly};
use crate::config::Config;

/// `tsagent sim`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct SimArgs {
    /// Serve on a new pseudo-terminal; its device path is printed first.
    #[arg(long, required_unless_present_any = ["tcp", "help_faults"], conflicts_with = "tcp")]
    pub pty: bool,
    /// With --pty: also make a symlink to the device at PATH.
    #[arg(long, value_name = "PATH", requires = "pty")]
    pub link: Option<PathBuf>,
    /// Serve on TCP at ADDR, e.g. 127.0.0.1:5025 (port 0 picks a free port); the address is printed
    /// first.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,
    /// Take the simulated standard (and any faults) from this config's [simulator] section
    /// [default: the demo's].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override the noise seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Simulate this instrument model (a driver profile id, e.g. keysight-3458a); see
    /// `tsagent drivers list`.
    #[arg(
        long,
        value_name = "ID",
        default_value = "generic-scpi-dmm",
        conflicts_with = "prologix"
    )]
    pub personality: PersonalityId,
    /// Simulate a Prologix GPIB adapter with these instruments behind it, as ADDR=ID pairs,
    /// e.g. `22=keysight-3458a,5=fluke-5720a`.
    #[arg(long, value_name = "BUS")]
    pub prologix: Option<BusSpec>,
    /// Pace replies to the wire time of this serial baud rate.
    #[arg(long, value_name = "N")]
    pub baud: Option<u32>,
    /// The serial frame for --baud pacing, e.g. 8N1 or 7E1 [default: the instrument's].
    #[arg(long, value_name = "FRAME", requires = "baud")]
    pub frame: Option<Frame>,
    /// Take NPLC-dependent integration and settling time, as the real instrument would.
    #[arg(long)]
    pub realistic_timing: bool,
    /// Inject a fault, e.g. `disconnect=30s,new-path,after=5`, `garbage,on=READ?`, `errors=2`
    /// (repeatable; the syntax is in `tsagent sim --help-faults`).
    #[arg(long, value_name = "FAULT")]
    pub fault: Vec<Fault>,
    /// Print the fault syntax and exit.
    #[arg(long, exclusive = true)]
    pub help_faults: bool,
}

/// Serves the simulator until a signal.
pub fn run(args: SimArgs) -> Result<(), Error> {
    if args.help_faults {
        // Help nobody can read (`>/dev/full`) is not a failure of the command.
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), "{FAULT_HELP}");
        return Ok(());
    }
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::demo(std::path::Path::new("."))?,
    };
    let mut params: SimParams = config.simulator;
    if let Some(seed) = args.seed {
        params.seed = seed;
    }
    params.realistic_timing |= args.realistic_timing;
    let mut spec = match args.prologix {
        Some(bus) => SimSpec::prologix(bus, params),
        None => SimSpec::instrument(args.personality, params),
    };
    spec.baud = args.baud;
    spec.frame = args.frame;
    spec.faults = config.simulator_faults;
    spec.faults.extend(args.fault);
    runtime()?.block_on(async {
        let stop = stop_on_signals_quietly()?;
        // Announce each hang-up and return of the line, so a script (or a test) can follow a
        // disconnect fault without polling; the server lives until the signal.
        let watch = async {
            if let Some(addr) = args.tcp {
                let server = TcpServer::start_spec(spec, addr).await?;
                announce(&format!("tcp {}", server.local_addr()));
                for n in 1.. {
                    server.wait_down(n).await;
                    announce("down");
                    server.wait_returns(n).await;
                    announce(&format!("tcp {}", server.local_addr()));
                }
            } else {
                let server = PtyServer::start_spec(spec, args.link.clone())?;
                announce(&format!("pty {}", server.path().display()));
                for n in 1.. {
                    server.wait_down(n).await;
                    announce("down");
                    server.wait_returns(n).await;
                    announce(&format!("pty {}", server.current_path().display()));
                }
            }
            Ok::<(), Error>(())
        };
        tokio::select! {
            result = watch => result?,
            () = stop.until_requested() => {}
        }
        Ok(())
    })
}

/// `tsagent sim --help-faults`: the fault syntax, kept beside the flag that takes it.
const FAULT_HELP: &str = "\
--fault KIND[=VALUE][,OPTION]...

kinds:
  disconnect=30s[,new-path][,serial=S]  hang up for 30 s (pty: close and reopen, new-path forces
                                        another device name; TCP: close connection and listener),
                                        come back as serial S
  garbage[=N]                           N random bytes (default 32) and the terminator instead of
                                        the reply
  unterminated                          the reply without its terminator (and without EOI)
  slow=2s                               the reply 2 s late
  flood=10MB                            10 MB without a terminator instead of the reply
  block=short|huge|indefinite           a block whose header lies about its length
  silent                                no reply at all
  identity=S                            report serial S from now on
  errors=N                              N errors queued the way the model reports them

options:
  after=K    fire once K replies have been sent (default 0)
  every=K    like after, re-armed after firing
  addr=N     on a Prologix bus: only instrument N
  on=TEXT    fire on the next message containing TEXT (must come last)
";

fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    // Scripts wait for this line; a closed stdout only means nobody is waiting.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
