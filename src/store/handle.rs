//! The store's writer thread, for async callers.
//!
//! SQLite calls block (a durable commit waits for fsync), so async code must not make them on a
//! runtime thread. One thread owns the [`Store`]; async callers send it closures and await the
//! result. This also makes "one writer" structural: only that thread holds the connection.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

use super::{Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A cloneable handle to the writer thread. The thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

/// The writer thread is gone (it panicked or could not start), so nothing can be stored.
#[derive(Debug, thiserror::Error)]
#[error("the store's writer thread has stopped")]
pub struct WriterGone;

impl StoreHandle {
    /// Moves `store` onto its own thread.
    pub fn spawn(mut store: Store) -> Result<StoreHandle, std::io::Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new().name("tsagent-store".into()).spawn(move || {
            for job in queue {
                job(&mut store);
            }
        })?;
        Ok(StoreHandle { jobs })
    }

    /// Runs `f` on the writer thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            // The receiver is gone only if the caller was cancelled; the work is done either way.
            let _ = done.send(f(store));
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterGone(WriterGone))?;
        result.await.map_err(|_| StoreError::WriterGone(WriterGone))?
    }
}
