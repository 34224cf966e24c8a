//! Everything vane records, behind one interface: DAG versions, runs, task states and attempts.
//!
//! The engine and the CLI never write SQL; they call [`Store`]. [`SqliteStore`] is the embedded
//! default (WAL mode, `synchronous = FULL`, versioned migrations); [`PgStore`] keeps the same
//! records in PostgreSQL, for several schedulers sharing one history. Both migrate through the
//! same schema versions, and one conformance suite (`tests/conformance`) runs on both. Async
//! code calls a store through [`StoreThreads`], which runs each call on a thread of its own.
//!
//! ```
//! use vane_store::{Store, SqliteStore, NewDagVersion};
//! let store = SqliteStore::open_in_memory().unwrap();
//! let v = store.record_dag_version(&NewDagVersion {
//!     dag_id: "demo", content_hash: "abc", path: "dags/demo.toml", source: "",
//! }).unwrap();
//! assert_eq!(v, store.record_dag_version(&NewDagVersion {
//!     dag_id: "demo", content_hash: "abc", path: "dags/demo.toml", source: "",
//! }).unwrap());
//! ```

mod alerts;
mod artifacts;
mod checks;
mod dispatch;
mod heartbeat;
mod lease;
mod metrics;
mod observe;
mod postgres;
mod registry;
mod sqlite;
#[cfg(feature = "pg-test")]
pub mod testing;
mod threads;
mod types;

pub use alerts::{
    AlertFilter, AlertOccurrence, AlertRecord, AlertState, AlertStore, DeliveryOutcome,
    DeliveryState, EventKind, HistoryEvent, NotificationRecord, Undelivered, Verdict,
};
pub use artifacts::{
    ArtifactKind, ArtifactLink, ArtifactStore, ArtifactVersion, AttemptRef, Direction, NewArtifact,
};
pub use checks::{
    CheckHistoryEntry, CheckResult, CheckStatus, CheckStore, GoodMark, LearnFrom,
    NewCheckEvaluation,
};
pub use dispatch::{
    AgentRecord, Claimed, DispatchRecord, DispatchState, DispatchStore, LogChunk, LogChunkOf,
    NewDispatch, offers, wait_for_dispatches,
};
pub use heartbeat::{
    FORGET_AFTER, HEARTBEAT_EVERY, Heartbeat, HeartbeatStore, PASS_BUCKETS, PassStats, STALE_AFTER,
    SchedulerRecord, SchedulerStatus, SchedulerSummary, scheduler_id,
};
pub use lease::{
    DEFAULT_LEASE_TTL, Fence, LeaseRecord, LeaseRole, LeaseState, LeaseStore, NewLease, lease_id,
};
pub use metrics::{MetricFilter, MetricPoint, MetricStore};
pub use observe::{Histogram, Observation, ObserveStore};
pub use registry::{
    LedgerEntry, ModelVersion, NewModelVersion, RegistryStore, RolloutLock, RolloutStage,
    StageChange, production_at,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use threads::{Committed, Opener, StoreThreads};
pub use types::{
    AttemptRecord, AttemptState, BackfillRecord, BackfillState, Change, DagVersionId, Decision,
    GitState, NewBackfill, NewDagVersion, NewRun, Owner, ParamChange, RunDetail, RunFilter, RunId,
    RunRecord, RunState, SlaMiss, SlotRequest, StageStatus, StopRequest, TaskRecord, TaskState,
    TickDecision, TickRecord, Trigger,
};

/// A store failure. Backends map their own errors into these variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "the database is at schema version {found}, newer than this vane understands ({known}); upgrade vane"
    )]
    TooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database stayed busy (locked by another writer) past the wait: trying again later
    /// can succeed, which is why callers tell it apart from other failures (HTTP 503).
    #[error("the database is busy: {0}")]
    Busy(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the database holds a value this vane cannot read: {0}")]
    Corrupt(String),
    /// The database cannot be written now: its disk is full, it is read-only, or its disk
    /// failed a write. Writing again can succeed once that is fixed, so what was to be
    /// written is held and tried again, never turned into a verdict.
    #[error(
        "the database cannot be written: {0}; free disk space or make it writable again, and vane goes on by itself"
    )]
    Unwritable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("DAG `{dag_id}` already has a run for {logical_date} (run {run})")]
    RunExists {
        dag_id: String,
        logical_date: String,
        run: RunId,
    },
    /// The tick was decided already (skipped, by another scheduler): no run is made for it.
    #[error("DAG `{dag_id}` already decided its tick of {logical_date}")]
    TickDecided {
        dag_id: String,
        logical_date: String,
    },
    /// A write as a run's owner, refused: another process adopted the run, or this one's lease
    /// expired. The caller no longer owns the run and must stop acting on it.
    #[error("run {run} is no longer ours: {why}")]
    Fenced { run: RunId, why: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The kind of database a `--db`/`VANE_DB` value names: a `postgres://` or `postgresql://` URL
/// is PostgreSQL, anything else the path of a SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgresql,
}

impl BackendKind {
    #[must_use]
    pub fn of(url_or_path: &str) -> Self {
        let scheme = url_or_path.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(s)
                if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") =>
            {
                Self::Postgresql
            }
            _ => Self::Sqlite,
        }
    }

    /// The name `vane status` shows.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgresql => "postgresql",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `url_or_path` is shown to people: a SQLite path as given, a PostgreSQL URL without
/// its password.
#[must_use]
pub fn describe(url_or_path: &str) -> String {
    match BackendKind::of(url_or_path) {
        BackendKind::Sqlite => url_or_path.to_owned(),
        BackendKind::Postgresql => postgres::redact(url_or_path),
    }
}

/// Opens the store a `--db`/`VANE_DB` value names (see [`BackendKind::of`]): connects to a
/// PostgreSQL URL, or opens (creating) a SQLite file, and brings its schema up to date. Callers
/// that need not know which backend they got hold the result as `dyn Store`.
///
/// # Errors
/// [`StoreError::Open`] when the database cannot be reached, created or opened;
/// [`StoreError::TooNew`] when a newer vane migrated it.
pub fn open(url_or_path: &str) -> Result<Box<dyn Store + Send>> {
    Ok(match BackendKind::of(url_or_path) {
        BackendKind::Sqlite => Box::new(SqliteStore::open(std::path::Path::new(url_or_path))?),
        BackendKind::Postgresql => Box::new(PgStore::connect(url_or_path)?),
    })
}

/// What vane records. Every method commits before returning, so a caller that acts after a
/// call knows the record survives a crash; inside [`AlertStore::atomically`] it commits with
/// the rest of the work instead.
///
/// Each ML capability has its own trait, so a backend implements them one at a time.
pub trait Store:
    AlertStore
    + ArtifactStore
    + CheckStore
    + DispatchStore
    + HeartbeatStore
    + LeaseStore
    + MetricStore
    + ObserveStore
    + RegistryStore
{
    /// Records a DAG file content, or returns the id it already has.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_dag_version(&self, version: &NewDagVersion<'_>) -> Result<DagVersionId>;

    /// Creates a `queued` run with every task `queued`.
    ///
    /// # Errors
    /// [`StoreError::RunExists`] when the DAG already has a run for that logical date: there
    /// is at most one, whoever asks.
    fn create_run(&self, run: &NewRun<'_>) -> Result<RunId>;

    /// Makes `owner` the one process executing run `run` and marks the run `running`, unless
    /// another process has claimed it already: two schedulers (or a scheduler and a
    /// `vane clear --foreground`) never execute the same run. The claim raises the run's
    /// fencing token; the [`Fence`] it returns is what the owner's writes carry
    /// ([`LeaseStore::apply_fenced`]). `Ok(None)` when the run was taken.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn claim_run(
        &self,
        run: RunId,
        owner: &Owner,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Fence>>;

    /// Takes one slot of each requested pool for a task, or puts the task in line for them.
    /// Granted only when, in every pool, the slots held plus the tasks ahead in line leave one
    /// free; slots and places of processes that `alive` says are gone are freed first.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn request_slots(
        &self,
        request: &SlotRequest<'_>,
        alive: &dyn Fn(&Owner) -> bool,
    ) -> Result<bool>;

    /// Records a new backfill, `running`, with no runs yet.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn create_backfill(&self, backfill: &NewBackfill<'_>) -> Result<i64>;

    /// Adds runs to a backfill, after those it has, in the order given.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn link_backfill_runs(&self, backfill: i64, runs: &[RunId]) -> Result<()>;

    /// Moves a backfill to `state`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such backfill.
    fn set_backfill_state(&self, backfill: i64, state: BackfillState) -> Result<()>;

    /// One backfill with its runs.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such backfill.
    fn backfill(&self, id: i64) -> Result<BackfillRecord>;

    /// Backfills, newest first, optionally of one DAG.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn backfills(&self, dag_id: Option<&str>) -> Result<Vec<BackfillRecord>>;

    /// The backfill a run belongs to, if any, and that backfill's state.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn backfill_of(&self, run: RunId) -> Result<Option<(i64, BackfillState)>>;

    /// SLA misses, newest first, optionally of one DAG; `limit` 0 means all.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn sla_misses(&self, dag_id: Option<&str>, limit: usize) -> Result<Vec<SlaMiss>>;

    /// Records ticks that were decided, in one transaction (a catch-up can decide thousands);
    /// a tick decided already keeps its first decision. Returns how many were new.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_ticks(
        &self,
        dag_id: &str,
        ticks: &[(chrono::DateTime<chrono::Utc>, TickDecision)],
    ) -> Result<usize>;

    /// The latest tick decided for a DAG.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn last_tick(&self, dag_id: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>>;

    /// Ticks of a DAG, newest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn ticks(&self, dag_id: &str, limit: usize) -> Result<Vec<TickRecord>>;

    /// Pauses or unpauses a DAG.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()>;

    /// DAGs paused or unpaused by a person, with the switch's position; a DAG not listed
    /// follows its file's `paused` key.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn pause_switches(&self) -> Result<std::collections::BTreeMap<String, bool>>;

    /// Applies state transitions atomically: all of them or none.
    ///
    /// # Errors
    /// Fails when the database cannot be written, or a change names a run, task or attempt
    /// that does not exist.
    fn apply(&self, changes: &[Change]) -> Result<()>;

    /// Runs, newest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn runs(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRecord>>;

    /// Runs of DAG `dag_id` whose logical date is before `before`, in one of `states` (any
    /// when empty), latest logical date first (then newest first), at most `limit`: what a
    /// run is compared with (`vane why`). Served by an index, so as quick on a long history
    /// as on a short one.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn runs_before(
        &self,
        dag_id: &str,
        before: chrono::DateTime<chrono::Utc>,
        states: &[RunState],
        limit: usize,
    ) -> Result<Vec<RunRecord>>;

    /// One run with its tasks (in DAG order) and their attempts.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such run.
    fn run(&self, id: RunId) -> Result<RunDetail>;

    /// Records that `request.by` asks run `run` to stop, unless it has ended: its owner stops
    /// it ([`Store::stop_requests`]). Returns the run as it is now.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such run.
    fn request_stop(&self, run: RunId, request: &StopRequest) -> Result<RunRecord>;

    /// Records that `request.by` asks task `task` of run `run` to stop (`vane stop --task`):
    /// the run's owner kills it. A task asked once keeps its first request.
    ///
    /// # Errors
    /// Fails when the database cannot be written, or there is no such run.
    fn request_task_stop(&self, run: RunId, task: &str, request: &StopRequest) -> Result<()>;

    /// Who asked task `task` of run `run` to stop, if anyone.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn task_stop(&self, run: RunId, task: &str) -> Result<Option<StopRequest>>;

    /// What a person asked to stop among the running runs owned under lease `lease`: a whole
    /// run (`None`), or one of its running tasks.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn stop_requests(&self, lease: &str) -> Result<Vec<(RunId, Option<String>)>>;

    /// The changes people made to a run's params, oldest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn param_changes(&self, run: RunId) -> Result<Vec<ParamChange>>;

    /// The DAG file content a run used.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such version.
    fn dag_source(&self, version: DagVersionId) -> Result<String>;
}

/// The runs of a listing that can be read. A row vane cannot read (written by hand, or by a
/// version that let a bad value in) is left out with an error naming it, so that it stops
/// only itself: listing it alone (`vane show ID`) still says what is wrong with it, and every
/// other run is listed, started and scheduled as before.
pub(crate) fn readable_runs(
    rows: impl IntoIterator<Item = Result<RunRecord>>,
) -> Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for row in rows {
        match row {
            Ok(run) => out.push(run),
            Err(StoreError::Corrupt(what)) => {
                tracing::error!(problem = %what, "A run in the database cannot be read; it is left out (see it with `vane show ID`; delete it by hand to be rid of it).");
            }
            Err(other) => return Err(other),
        }
    }
    Ok(out)
}
