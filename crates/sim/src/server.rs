//! What the pty and TCP servers share: building what a spec describes, the control surface their
//! owner uses (faults, readings sent, the line's hang-ups and returns, stopping), and taking the
//! line down and bringing it back for a disconnect fault.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::SimError;
use crate::clock::MonotonicClock;
use crate::fault::{FaultHandle, Outage};
use crate::spec::SimSpec;
use crate::station::Station;
use crate::wire::Pacer;

/// How often a simulated line has gone away and come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStatus {
    /// Disconnects so far (the line was closed this many times).
    pub downs: u64,
    /// Returns so far (the line was reopened this many times).
    pub returns: u64,
}

/// What a server's task shares with the server's owner.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub(crate) faults: FaultHandle,
    sent: Arc<AtomicU64>,
    status: watch::Sender<LineStatus>,
}

impl Control {
    /// Builds what `spec` describes, its faults armed: the control, the station to serve and
    /// the `--baud` pacing.
    pub(crate) fn start(spec: SimSpec) -> Result<(Control, Station, Option<Pacer>), SimError> {
        spec.validate()?;
        let sent = Arc::new(AtomicU64::new(0));
        let station = Station::build(&spec, Arc::new(MonotonicClock::new()), Arc::clone(&sent));
        let pacer = spec
            .baud
            .map(|baud| Pacer::new(baud, spec.frame.unwrap_or_else(|| station.frame())));
        let faults = FaultHandle::new();
        for f in spec.faults {
            faults.arm(f);
        }
        let control = Control {
            faults,
            sent,
            status: watch::channel(LineStatus::default()).0,
        };
        Ok((control, station, pacer))
    }

    /// Goes through `outage` once the line is closed: counts the hang-up, waits it out, lets
    /// `reopen` bring the line back, has the instruments report the new serial number, and
    /// counts the return. Returns what `reopen` made.
    pub(crate) async fn outage<T>(
        &self,
        outage: Outage,
        station: &mut Station,
        reopen: impl Future<Output = T>,
    ) -> T {
        self.status.send_modify(|s| s.downs += 1);
        tracing::info!(down = ?outage.down, "simulated disconnect");
        tokio::time::sleep(outage.down).await;
        let line = reopen.await;
        if let Some(serial) = &outage.serial {
            station.set_serial(serial);
        }
        self.status.send_modify(|s| s.returns += 1);
        line
    }
}

/// A running simulator on a line of kind `L`: a `PtyServer` on a pseudo-terminal or a
/// `TcpServer` on a TCP port. Both are controlled the same way, here; what is particular to the
/// line is in `L`'s own methods.
///
/// Dropping the server stops it and closes its line (open clients see a hang-up).
pub struct SimServer<L> {
    pub(crate) line: L,
    control: Control,
    task: JoinHandle<()>,
}

impl<L> SimServer<L> {
    /// A server whose `task` serves `line`, reporting to `control`.
    pub(crate) fn new(line: L, control: Control, task: JoinHandle<()>) -> Self {
        Self {
            line,
            control,
            task,
        }
    }

    /// Readings the instruments have sent so far.
    pub fn readings_sent(&self) -> u64 {
        self.control.sent.load(Ordering::Relaxed)
    }

    /// Arms and observes faults.
    pub fn faults(&self) -> FaultHandle {
        self.control.faults.clone()
    }

    /// How often the line has gone away and come back (disconnect faults).
    pub fn line_status(&self) -> LineStatus {
        *self.control.status.borrow()
    }

    /// Waits until the line has gone away `n` times in total: the terminal closed, or the
    /// connection and the listener.
    pub async fn wait_down(&self, n: u64) {
        let mut rx = self.control.status.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|s| s.downs >= n).await;
    }

    /// Waits until the line has come back `n` times in total.
    pub async fn wait_returns(&self, n: u64) {
        let mut rx = self.control.status.subscribe();
        let _ = rx.wait_for(|s| s.returns >= n).await;
    }

    /// Stops the server and waits until its line is closed; dropping does the same without
    /// waiting.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The only possible error is the cancellation just requested.
        let _ = (&mut self.task).await;
    }
}

impl<L: fmt::Debug> fmt::Debug for SimServer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl<L> Drop for SimServer<L> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
