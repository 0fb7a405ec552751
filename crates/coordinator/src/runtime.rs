//! A small tokio runtime that a storage owns: the PostgreSQL and S3 clients are async, while the
//! intake's storage traits are synchronous and called from blocking threads (the server's
//! `spawn_blocking`) or from plain threads (`coordinator status`, `export`).
//!
//! Owned rather than borrowed from the caller, so that a storage works the same under the server
//! and under a command that has no runtime. Dropped without waiting, so that the last handle to an
//! intake may go anywhere, the server's async tasks included.

use std::future::Future;

/// A runtime with one worker thread, for a storage's connections.
pub struct Runtime {
    handle: tokio::runtime::Handle,
    /// Taken only by `Drop`.
    inner: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// Starts one, its thread named `name`.
    pub fn new(name: &str) -> std::io::Result<Self> {
        let inner = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(Self {
            handle: inner.handle().clone(),
            inner: Some(inner),
        })
    }

    /// Runs `future` to completion on the calling thread, its I/O driven by the runtime's worker.
    /// The caller must not be async code: the storage traits are called from blocking threads.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Runs `future` in the background (a connection's I/O task).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.inner.take() {
            // Never blocks: dropping a runtime the usual way panics inside async code.
            rt.shutdown_background();
        }
    }
}
