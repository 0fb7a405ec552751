//! Asking a run to stop: after the reading in progress (a first signal), or at once, abandoning
//! the exchange in progress (a second). Readings already committed stay either way, and the run
//! is marked (`stopped`, or `interrupted` when abandoned), never left `running`.

use tokio::sync::watch;

/// How urgently a stop was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Finish the reading in progress, store it, then stop.
    AfterReading,
    /// Stop now: the exchange in progress is abandoned.
    Now,
}

/// A stop asked for: how urgently, and by which signal (for the exit code), if by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequest {
    /// How urgently.
    pub urgency: Urgency,
    /// The number of the signal that asked last, if a signal did.
    pub signal: Option<i32>,
    /// Whether someone aborted this run (the control API) rather than stopping the process: the
    /// run is then marked `aborted`.
    pub abort: bool,
}

/// Where a run learns that it should stop. Cheap to clone; every clone sees the same requests.
#[derive(Debug, Clone)]
pub struct Stop {
    rx: watch::Receiver<Option<StopRequest>>,
}

/// The side that asks for stops.
#[derive(Debug)]
pub struct StopHandle {
    tx: watch::Sender<Option<StopRequest>>,
}

impl Stop {
    /// A stop and the handle that asks for it.
    pub fn channel() -> (StopHandle, Stop) {
        let (tx, rx) = watch::channel(None);
        (StopHandle { tx }, Stop { rx })
    }

    /// A stop nobody can ask for (benchmarks, tests, one-shot tools).
    pub fn never() -> Stop {
        Stop::channel().1
    }

    /// The stop asked for so far, if any.
    pub fn request(&self) -> Option<StopRequest> {
        *self.rx.borrow()
    }

    /// Whether a stop (of any urgency) was asked for.
    pub fn requested(&self) -> bool {
        self.request().is_some()
    }

    /// Whether a stop at once was asked for.
    pub fn urgent(&self) -> bool {
        self.request().is_some_and(|r| r.urgency == Urgency::Now)
    }

    /// Resolves once a stop of any urgency is asked for; never if none can be any more.
    pub async fn until_requested(&self) {
        self.until(|r| r.is_some()).await;
    }

    /// Resolves once a stop at once is asked for; never if none can be any more.
    pub async fn until_urgent(&self) {
        self.until(|r| r.is_some_and(|r| r.urgency == Urgency::Now))
            .await;
    }

    async fn until(&self, ready: impl FnMut(&Option<StopRequest>) -> bool) {
        let mut rx = self.rx.clone();
        if rx.wait_for(ready).await.is_err() {
            // The handle is gone, so nobody can ask any more: wait forever, as asked.
            std::future::pending::<()>().await;
        }
    }
}

impl StopHandle {
    /// Asks for a stop: the first request stops after the reading in progress, any later one
    /// stops at once. Returns the urgency now in force.
    pub fn escalate(&self, signal: Option<i32>) -> Urgency {
        let mut urgency = Urgency::AfterReading;
        self.tx.send_modify(|request| {
            if request.is_some() {
                urgency = Urgency::Now;
            }
            let abort = request.is_some_and(|r| r.abort);
            *request = Some(StopRequest {
                urgency,
                signal,
                abort,
            });
        });
        urgency
    }

    /// Aborts the run: it stops after the reading in progress and is marked `aborted`.
    pub fn abort(&self) {
        self.tx.send_modify(|request| {
            let urgency = request.map_or(Urgency::AfterReading, |r| r.urgency);
            *request = Some(StopRequest {
                urgency,
                signal: request.and_then(|r| r.signal),
                abort: true,
            });
        });
    }

    /// Asks for a stop of this urgency (never lowering one already asked for).
    pub fn request(&self, urgency: Urgency, signal: Option<i32>) {
        self.tx.send_modify(|request| {
            let urgency = request.map_or(urgency, |r| r.urgency.max(urgency));
            let abort = request.is_some_and(|r| r.abort);
            *request = Some(StopRequest {
                urgency,
                signal,
                abort,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_request_is_urgent() {
        let (handle, stop) = Stop::channel();
        assert!(!stop.requested());
        assert_eq!(handle.escalate(Some(2)), Urgency::AfterReading);
        stop.until_requested().await;
        assert!(stop.requested() && !stop.urgent());
        assert_eq!(handle.escalate(Some(15)), Urgency::Now);
        stop.until_urgent().await;
        assert_eq!(
            stop.request(),
            Some(StopRequest {
                urgency: Urgency::Now,
                signal: Some(15),
                abort: false,
            })
        );
    }

    #[tokio::test]
    async fn urgency_is_never_lowered() {
        let (handle, stop) = Stop::channel();
        handle.request(Urgency::Now, None);
        handle.request(Urgency::AfterReading, Some(1));
        assert!(stop.urgent());
    }

    #[tokio::test]
    async fn a_stop_nobody_can_ask_for_never_resolves() {
        let stop = Stop::never();
        let waited = tokio::time::timeout(std::time::Duration::ZERO, stop.until_requested()).await;
        assert!(waited.is_err());
        assert!(!stop.requested());
    }
}
