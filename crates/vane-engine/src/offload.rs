//! Where the engine's blocking work runs: hashing and copying artifacts, cache restores,
//! `git`. One thread drives every run; a multi-gigabyte output hashed there would freeze every
//! other run's timeouts and the scheduler's heartbeat until it is done.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Runs blocking work away from the thread that drives runs.
pub trait Offload {
    /// Starts `work` on another thread and returns at once.
    fn spawn(&self, work: Box<dyn FnOnce() + Send>);
}

/// Tokio's blocking thread pool. On a paused test clock, work in flight there keeps the
/// clock from jumping ahead, as work on the loop itself would.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockingPool;

impl Offload for BlockingPool {
    fn spawn(&self, work: Box<dyn FnOnce() + Send>) {
        // Detached: the result comes back through the channel `offload` made.
        drop(tokio::task::spawn_blocking(work));
    }
}

/// Starts `f` on `to` and returns its result as a future that owns nothing of the caller's,
/// so it can wait beside the run's other events. A panic in `f` is raised again there.
pub(crate) fn offload<R: Send + 'static>(
    to: &dyn Offload,
    f: impl FnOnce() -> R + Send + 'static,
) -> impl Future<Output = R> + Send + 'static {
    let (reply, answer) = tokio::sync::oneshot::channel();
    to.spawn(Box::new(move || {
        let _ = reply.send(catch_unwind(AssertUnwindSafe(f)));
    }));
    async move {
        match answer.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("offloaded work was dropped without running"),
        }
    }
}
