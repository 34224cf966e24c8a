//! Calling a [`Store`] from async code without blocking the caller's thread.
//!
//! A [`Store`] is synchronous: each call is a database round trip. The scheduler drives
//! every run on one thread, so a call made there stalls every other run's timeouts, ticks and
//! heartbeat for as long as the database takes. A synchronous PostgreSQL client must not even
//! be called inside a tokio runtime. [`StoreThreads`] owns its stores on threads of its own
//! and hands each call to one of them; the caller awaits the answer.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::{Change, Fence, Result, Store, StoreError};

type Job = Box<dyn FnOnce(&dyn Store) + Send>;
type Panic = Box<dyn std::any::Any + Send>;

/// Opens one store, e.g. one database connection; called on the thread that will own it.
pub type Opener = dyn Fn() -> Result<Box<dyn Store + Send>> + Send + Sync;

/// A cloneable handle to stores that run calls off the caller's thread.
///
/// ```
/// use vane_store::{SqliteStore, Store, StoreThreads};
/// let threads = StoreThreads::from_store(Box::new(SqliteStore::open_in_memory().unwrap()));
/// let runs = threads.call_blocking(|store| store.runs(&Default::default())).unwrap();
/// assert!(runs.is_empty());
/// ```
#[derive(Clone)]
pub struct StoreThreads {
    inner: Arc<Inner>,
}

enum Inner {
    Threads(Mutex<mpsc::Sender<Job>>, Mutex<Group>),
    /// Calls run on the caller's thread. Tests on tokio's paused clock need this: while the
    /// runtime waits on another thread it counts as idle, and the clock jumps to the next
    /// timer, firing timeouts that should not have fired yet.
    Inline(Mutex<Box<dyn Store + Send>>),
}

impl std::fmt::Debug for StoreThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &*self.inner {
            Inner::Threads(..) => "threads",
            Inner::Inline(_) => "inline",
        };
        f.debug_struct("StoreThreads").field("mode", &mode).finish()
    }
}

impl StoreThreads {
    /// Starts `threads` threads (at least one), each with the store `open` gives it there,
    /// so each has its own connection and no connection is ever opened inside a runtime.
    /// Waits until every thread has opened its store.
    ///
    /// # Errors
    /// The first error `open` returned; the threads already started then stop.
    pub fn open(
        threads: usize,
        open: impl Fn() -> Result<Box<dyn Store + Send>> + Send + Sync + 'static,
    ) -> Result<Self> {
        let open: Arc<Opener> = Arc::new(open);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (opened, results) = mpsc::channel();
        let threads = threads.max(1);
        for _ in 0..threads {
            let (open, queue, opened) = (Arc::clone(&open), Arc::clone(&queue), opened.clone());
            std::thread::Builder::new()
                .name("vane-store".into())
                .spawn(move || match open() {
                    Ok(store) => {
                        let _ = opened.send(Ok(()));
                        drop(opened);
                        serve(&*store, &queue);
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                    }
                })
                .map_err(|e| crate::StoreError::Backend(Box::new(e)))?;
        }
        drop(opened);
        // Dropping `jobs` on an error ends the threads that did open.
        for result in results.iter().take(threads) {
            result?;
        }
        Ok(Self {
            inner: Arc::new(Inner::Threads(Mutex::new(jobs), Mutex::default())),
        })
    }

    /// One thread owning `store`: for a store that cannot be opened twice, such as an
    /// in-memory database.
    pub fn from_store(store: Box<dyn Store + Send>) -> Self {
        let store = Mutex::new(Some(store));
        Self::open(1, move || {
            let taken = store.lock().unwrap_or_else(|e| e.into_inner()).take();
            Ok(taken.expect("from_store opens exactly one thread"))
        })
        .expect("handing over an open store cannot fail")
    }

    /// Runs every call on the caller's thread, blocking it. For tests on tokio's paused
    /// clock, and for callers with no loop to keep going.
    pub fn inline(store: Box<dyn Store + Send>) -> Self {
        Self {
            inner: Arc::new(Inner::Inline(Mutex::new(store))),
        }
    }

    /// Runs `f` with a store on one of the threads and returns what it returned, without
    /// blocking the calling thread meanwhile. A panic in `f` is raised again here; the thread
    /// goes on serving.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> R {
        let sender = match &*self.inner {
            Inner::Inline(store) => return inline(store, f),
            Inner::Threads(sender, _) => sender,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        send(sender, reply, f);
        unwrap(answer.await.ok())
    }

    /// [`call`](Self::call) for synchronous callers: blocks until the answer is there.
    ///
    /// # Panics
    /// Inside a tokio runtime (unless inline): blocking there would stall the loop.
    pub fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> R {
        let sender = match &*self.inner {
            Inner::Inline(store) => return inline(store, f),
            Inner::Threads(sender, _) => sender,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        send(sender, reply, f);
        unwrap(answer.blocking_recv().ok())
    }

    /// [`Store::apply_fenced`] with group commit, as databases do with their own logs: the
    /// changes are queued at once (so calls are recorded in the order they are made), and
    /// every call queued while a commit is in flight is written by the next one, in one
    /// transaction and one fsync; each caller is answered when its commit is durable. The
    /// caller may go on meanwhile and await the answer later.
    pub fn apply_fenced(&self, fence: Fence, changes: Vec<Change>) -> Committed {
        let (reply, answer) = oneshot::channel();
        match &*self.inner {
            Inner::Inline(store) => {
                let _ = reply.send(inline(store, |s| s.apply_fenced(&fence, &changes)));
            }
            Inner::Threads(sender, group) => {
                let mut group = group.lock().unwrap_or_else(|e| e.into_inner());
                group.queued.push(Queued {
                    fence,
                    changes,
                    reply,
                });
                if !group.committing {
                    group.committing = true;
                    let inner = Arc::clone(&self.inner);
                    let job: Job = Box::new(move |store| commit_queued(&inner, store));
                    let sent = sender.lock().unwrap_or_else(|e| e.into_inner()).send(job);
                    sent.unwrap_or_else(|_| panic!("the store threads have stopped"));
                }
            }
        }
        Committed(answer)
    }
}

/// Calls of [`StoreThreads::apply_fenced`] waiting for their commit.
#[derive(Default)]
struct Group {
    queued: Vec<Queued>,
    /// A store thread is committing: what is queued meanwhile goes in its next commit.
    committing: bool,
}

struct Queued {
    fence: Fence,
    changes: Vec<Change>,
    reply: oneshot::Sender<Result<()>>,
}

/// What a store thread does while calls are queued: takes them all, commits them as one
/// batch, answers each, and looks again. One thread at a time does this, so batches are
/// committed in the order their calls were made.
fn commit_queued(inner: &Inner, store: &dyn Store) {
    let Inner::Threads(_, group) = inner else {
        return;
    };
    loop {
        let queued = {
            let mut group = group.lock().unwrap_or_else(|e| e.into_inner());
            if group.queued.is_empty() {
                group.committing = false;
                return;
            }
            std::mem::take(&mut group.queued)
        };
        let (batch, replies): (Vec<_>, Vec<_>) = queued
            .into_iter()
            .map(|q| ((q.fence, q.changes), q.reply))
            .unzip();
        // A panic answers every caller of the batch with an error (their senders drop); the
        // calls queued since are committed next.
        let results = catch_unwind(AssertUnwindSafe(|| commit_holding(store, &batch)));
        let Ok(results) = results else {
            continue;
        };
        // A batch whose commit failed (the disk, a busy database) is tried call by call, so
        // each caller gets its own answer with its own error.
        let results = results.unwrap_or_else(|_| {
            batch
                .iter()
                .map(|(fence, changes)| store.apply_fenced(fence, changes))
                .collect()
        });
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Longest wait between two tries of a batch the database could not take.
const HOLD_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Commits `batch`; while the database cannot be written (a full disk, read-only), holds it
/// and tries again, waiting longer each time up to [`HOLD_RETRY_MAX`], so a task that
/// succeeded is recorded as succeeded once there is room, rather than failed. Says what is
/// wrong once, and once that it is over.
fn commit_holding(store: &dyn Store, batch: &[(Fence, Vec<Change>)]) -> Result<Vec<Result<()>>> {
    let mut wait = std::time::Duration::from_millis(100);
    let mut said = false;
    loop {
        match store.apply_fenced_batch(batch) {
            Err(StoreError::Unwritable(e)) => {
                if !said {
                    tracing::error!(error = %e, held = batch.len(), "The database cannot be written: holding what is to be recorded and trying again until it can (free disk space, or make the database writable).");
                    said = true;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(HOLD_RETRY_MAX);
            }
            other => {
                if said {
                    tracing::warn!("The database can be written again: what was held is recorded.");
                }
                return other;
            }
        }
    }
}

/// The answer of [`StoreThreads::apply_fenced`]: resolves once its commit is durable.
#[derive(Debug)]
#[must_use = "the changes are durable only once this resolves Ok"]
pub struct Committed(oneshot::Receiver<Result<()>>);

impl Committed {
    /// The answer if the commit is over, without waiting.
    pub fn try_done(&mut self) -> Option<Result<()>> {
        match self.0.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(StoreError::Backend(
                "a store thread dropped a commit without answering (it panicked)".into(),
            ))),
        }
    }
}

impl Future for Committed {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.0).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                Err(StoreError::Backend(
                    "a store thread dropped a commit without answering (it panicked)".into(),
                ))
            })
        })
    }
}

fn inline<R>(store: &Mutex<Box<dyn Store + Send>>, f: impl FnOnce(&dyn Store) -> R) -> R {
    // A panic in an earlier call poisons the lock but leaves the store as usable as a panic
    // on a store thread leaves it.
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    f(&**store)
}

fn send<R: Send + 'static>(
    sender: &Mutex<mpsc::Sender<Job>>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<R, Panic>>,
    f: impl FnOnce(&dyn Store) -> R + Send + 'static,
) {
    let job: Job = Box::new(move |store| {
        let _ = reply.send(catch_unwind(AssertUnwindSafe(|| f(store))));
    });
    // Only a thread that died could close the queue, and threads catch every panic.
    let sent = sender.lock().unwrap_or_else(|e| e.into_inner()).send(job);
    sent.unwrap_or_else(|_| panic!("the store threads have stopped"));
}

fn unwrap<R>(answer: Option<std::result::Result<R, Panic>>) -> R {
    match answer {
        Some(Ok(value)) => value,
        Some(Err(panic)) => resume_unwind(panic),
        None => panic!("a store thread dropped a call without answering"),
    }
}

fn serve(store: &dyn Store, queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // Held only while taking a job, so the other threads take the next ones meanwhile.
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match job {
            Ok(job) => job(store),
            // Every handle is gone.
            Err(mpsc::RecvError) => return,
        }
    }
}
