//! This process's lease (see [`vane_store::LeaseStore`]): taken when the process first needs to
//! own a run, renewed in the background, and given up for a new one when it is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};
use vane_store::{LeaseRole, NewLease, RunId, StoreError, StoreThreads};

use crate::EngineError;

/// Where a lease is taken, renewed and given up: the database for a scheduler; for an agent,
/// its transport ([`crate::agent::AgentLink`]), so a transport other than the database
/// carries the agent's heartbeat too.
pub trait LeaseLink: Clone + Send + Sync + 'static {
    /// Records a new lease; when it expires, by the database's clock.
    fn acquire(
        &self,
        id: String,
        host: String,
        pid: u32,
        role: LeaseRole,
        ttl: Duration,
    ) -> impl Future<Output = Result<DateTime<Utc>, StoreError>> + Send;
    /// Extends it by `ttl`; `None` when it already expired.
    fn renew(
        &self,
        id: String,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;
    fn release(&self, id: String) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// What a person asked to stop among the runs owned under the lease.
    fn stop_requests(
        &self,
        id: String,
    ) -> impl Future<Output = Result<Vec<(RunId, Option<String>)>, StoreError>> + Send;
}

impl LeaseLink for StoreThreads {
    async fn acquire(
        &self,
        id: String,
        host: String,
        pid: u32,
        role: LeaseRole,
        ttl: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        self.call(move |s| {
            s.acquire_lease(&NewLease {
                id: &id,
                host: &host,
                pid,
                role,
                ttl,
            })
        })
        .await
    }

    async fn renew(&self, id: String, ttl: Duration) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.call(move |s| s.renew_lease(&id, ttl)).await
    }

    async fn release(&self, id: String) -> Result<(), StoreError> {
        self.call(move |s| s.release_lease(&id)).await
    }

    async fn stop_requests(&self, id: String) -> Result<Vec<(RunId, Option<String>)>, StoreError> {
        self.call(move |s| s.stop_requests(&id)).await
    }
}

/// The lease a process executes runs under. Cloning shares it.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    pid: u32,
    started_at: DateTime<Utc>,
    role: LeaseRole,
    ttl: Duration,
    held: Mutex<Held>,
    /// Held while a lease is being taken: callers that need one at the same moment (a backfill
    /// starting its first runs together) would otherwise each insert the same lease id, and
    /// all but one fail on it.
    acquiring: tokio::sync::Mutex<()>,
    /// Counts the leases lost: each execution watches it and stops acting as owner when it moves.
    lost: watch::Sender<u64>,
    /// What a person asked to stop (`vane stop`) among the runs owned under the lease, as last
    /// looked up: a whole run (`None`) or one of its tasks.
    stops: watch::Sender<Vec<(RunId, Option<String>)>>,
    /// Executions going on under the lease: stop requests are looked for only while there are.
    executing: AtomicUsize,
}

/// Counts an execution for as long as it lives: see [`Lease::executing`].
pub struct Executing {
    inner: Arc<Inner>,
}

impl Drop for Executing {
    fn drop(&mut self) {
        self.inner.executing.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Held {
    /// The lease held now, if any.
    id: Option<String>,
    /// Leases taken so far; the next one's generation.
    generation: u32,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("role", &self.inner.role)
            .field("ttl", &self.inner.ttl)
            .field("id", &self.id())
            .finish()
    }
}

impl Lease {
    #[must_use]
    pub fn new(host: &str, role: LeaseRole, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                host: host.to_owned(),
                pid: std::process::id(),
                started_at: Utc::now(),
                role,
                ttl,
                held: Mutex::new(Held::default()),
                acquiring: tokio::sync::Mutex::new(()),
                lost: watch::channel(0).0,
                stops: watch::channel(Vec::new()).0,
                executing: AtomicUsize::new(0),
            }),
        }
    }

    /// How long the lease lives unless renewed.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The lease held now, if any.
    #[must_use]
    pub fn id(&self) -> Option<String> {
        self.inner.held.lock().map_or(None, |h| h.id.clone())
    }

    /// Moves each time a lease of this process is lost; an execution that sees it move no longer
    /// owns its run.
    #[must_use]
    pub fn lost(&self) -> watch::Receiver<u64> {
        self.inner.lost.subscribe()
    }

    /// What a person asked to stop among the runs owned under this process's leases (a run,
    /// or one task of it); looked up about once a second while any execution goes on.
    #[must_use]
    pub fn stops(&self) -> watch::Receiver<Vec<(RunId, Option<String>)>> {
        self.inner.stops.subscribe()
    }

    /// Marks an execution going on until the value drops.
    #[must_use]
    pub fn executing(&self) -> Executing {
        self.inner.executing.fetch_add(1, Ordering::Relaxed);
        Executing {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The lease held now, or a new one, renewed from then on by a task of its own on the
    /// current runtime.
    ///
    /// # Errors
    /// Fails when the store cannot be written.
    pub async fn current<L: LeaseLink>(&self, link: &L) -> Result<String, EngineError> {
        if let Some(id) = &self.lock()?.id {
            return Ok(id.clone());
        }
        let _acquiring = self.inner.acquiring.lock().await;
        let (id, generation) = {
            let held = self.lock()?;
            if let Some(id) = &held.id {
                return Ok(id.clone());
            }
            let generation = held.generation;
            (
                vane_store::lease_id(
                    &self.inner.host,
                    self.inner.pid,
                    self.inner.started_at,
                    generation,
                ),
                generation,
            )
        };
        let inner = &self.inner;
        let (lease, host, pid, role, ttl) = (
            id.clone(),
            inner.host.clone(),
            inner.pid,
            inner.role,
            inner.ttl,
        );
        let expires = link.acquire(lease, host, pid, role, ttl).await?;
        {
            let mut held = self.lock()?;
            held.id = Some(id.clone());
            held.generation = generation + 1;
        }
        info!(lease = %id, ttl_secs = ttl.as_secs_f64(), expires = %expires, "Lease taken.");
        tokio::spawn(renew(Arc::downgrade(&self.inner), link.clone(), id.clone()));
        Ok(id)
    }

    /// Gives the lease up at a clean exit: what it owned is left for others at once.
    pub async fn release<L: LeaseLink>(&self, link: &L) {
        let Some(id) = self.lock().ok().and_then(|mut h| h.id.take()) else {
            return;
        };
        if let Err(e) = link.release(id.clone()).await {
            warn!(lease = %id, error = %e, "Could not give the lease up; it expires by itself.");
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Held>, EngineError> {
        self.inner
            .held
            .lock()
            .map_err(|_| EngineError::Internal("the lease's lock is poisoned".into()))
    }
}

/// How often stop requests are looked for while runs execute: a person who typed `vane stop`
/// waits about this long at most.
const STOP_POLL: Duration = Duration::from_secs(1);

/// Renews lease `id` every third of its time to live until it is lost or the process lets go
/// of it, and meanwhile looks up stop requests for the runs it owns. It is lost when the
/// database says it expired, and also when no renewal got through for a whole time to live: by
/// then the database may have let it expire, and a process cut off from the database must stop
/// acting as owner on its own (others adopt its runs).
async fn renew<L: LeaseLink>(inner: Weak<Inner>, link: L, id: String) {
    let Some(ttl) = inner.upgrade().map(|i| i.ttl) else {
        return;
    };
    let every = ttl / 3;
    let tick = every.min(STOP_POLL);
    // Counted from when a renewal was sent: the database extends from when it ran, later.
    let mut renewed = Instant::now();
    let mut due = renewed + every;
    let mut unwritable = false;
    loop {
        tokio::time::sleep(tick).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let still_ours = strong
            .held
            .lock()
            .is_ok_and(|h| h.id.as_deref() == Some(id.as_str()));
        if !still_ours {
            return;
        }
        if strong.executing.load(Ordering::Relaxed) > 0 {
            let asked = tokio::time::timeout(tick, link.stop_requests(id.clone()));
            if let Ok(Ok(runs)) = asked.await {
                strong.stops.send_if_modified(|known| {
                    let changed = *known != runs;
                    *known = runs;
                    changed
                });
            }
        }
        if Instant::now() < due {
            continue;
        }
        let sent = Instant::now();
        due = sent + every;
        let answer = tokio::time::timeout(every, link.renew(id.clone(), ttl));
        let why = match answer.await {
            Ok(Ok(Some(_))) => {
                renewed = sent;
                unwritable = false;
                continue;
            }
            Ok(Ok(None)) => "the database says it expired".to_owned(),
            // A database that refuses every write (a full disk, read-only) refuses the
            // adoption of what this lease owns too, so no one can take over meanwhile: the
            // lease is kept, however long that lasts, and the database judges it after.
            Ok(Err(StoreError::Unwritable(e))) => {
                if !unwritable {
                    warn!(lease = %id, error = %e, "Cannot renew the lease: the database cannot be written. Keeping what it owns, since no one can take it over meanwhile either.");
                    unwritable = true;
                }
                // The database answered: the rule for a process cut off from it counts anew.
                renewed = sent;
                continue;
            }
            Ok(Err(e)) if sent - renewed < ttl => {
                warn!(lease = %id, error = %e, "Could not renew the lease; trying again.");
                continue;
            }
            Err(_) if sent - renewed < ttl => {
                warn!(lease = %id, "Renewing the lease is taking long; trying again.");
                continue;
            }
            Ok(Err(e)) => format!("no renewal got through for its whole time to live ({e})"),
            Err(_) => "no renewal got through for its whole time to live".to_owned(),
        };
        if let Ok(mut held) = strong.held.lock()
            && held.id.as_deref() == Some(id.as_str())
        {
            held.id = None;
        }
        error!(lease = %id, reason = %why, "Lease lost: stopping every run owned under it; others adopt them.");
        strong.lost.send_modify(|n| *n += 1);
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Refuses a lease id taken before, as the database's primary key does.
    #[derive(Clone, Default)]
    struct Leases(Arc<Mutex<HashSet<String>>>);

    impl LeaseLink for Leases {
        async fn acquire(
            &self,
            id: String,
            _host: String,
            _pid: u32,
            _role: LeaseRole,
            _ttl: Duration,
        ) -> Result<DateTime<Utc>, StoreError> {
            // A database round trip: another caller runs meanwhile.
            tokio::task::yield_now().await;
            if self.0.lock().unwrap().insert(id.clone()) {
                Ok(Utc::now())
            } else {
                Err(StoreError::Backend(
                    format!("UNIQUE constraint failed: leases.id ({id})").into(),
                ))
            }
        }

        async fn renew(
            &self,
            _id: String,
            _ttl: Duration,
        ) -> Result<Option<DateTime<Utc>>, StoreError> {
            Ok(Some(Utc::now()))
        }

        async fn release(&self, _id: String) -> Result<(), StoreError> {
            Ok(())
        }

        async fn stop_requests(
            &self,
            _id: String,
        ) -> Result<Vec<(RunId, Option<String>)>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// Regression: a backfill starting two runs at once made both take the process's first
    /// lease; the second insert of the same id failed and its run logged "could not be
    /// executed: UNIQUE constraint failed: leases.id".
    #[tokio::test(start_paused = true)]
    async fn callers_needing_the_first_lease_at_once_share_it() {
        let lease = Lease::new("host", LeaseRole::Scheduler, Duration::from_secs(20));
        let link = Leases::default();
        let (first, second) = tokio::join!(lease.current(&link), lease.current(&link));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first, second);
        assert_eq!(link.0.lock().unwrap().len(), 1);
    }
}
