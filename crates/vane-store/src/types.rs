//! Plain records the store reads and writes; no SQL here, so other backends share them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A run's id: the number people type (`vane show 42`), and nothing else that is a number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for RunId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl From<i64> for RunId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

impl rusqlite::ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for RunId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(value).map(Self)
    }
}

impl postgres::types::ToSql for RunId {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    postgres::types::accepts!(INT8);
    postgres::types::to_sql_checked!();
}

impl<'a> postgres::types::FromSql<'a> for RunId {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        i64::from_sql(ty, raw).map(Self)
    }

    postgres::types::accepts!(INT8);
}

pub type DagVersionId = i64;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }
    };
}

text_enum!(
    /// Where one stage of a rollout stands. `waiting`: inconclusive, it waits for `vane
    /// approve` or `vane reject`; `expired`: it waited, and the attempt waiting ended before
    /// anyone answered.
    StageStatus {
        Running => "running",
        Waiting => "waiting",
        Passed => "passed",
        Approved => "approved",
        Rejected => "rejected",
        Failed => "failed",
        Expired => "expired",
    }
);

impl StageStatus {
    /// A person's answer: final, never overwritten by the rollout that asked.
    pub fn is_decision(self) -> bool {
        matches!(self, StageStatus::Approved | StageStatus::Rejected)
    }
}

/// A person's answer to a stage waiting for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The status the answered stages take.
    pub fn status(self) -> StageStatus {
        match self {
            Decision::Approve => StageStatus::Approved,
            Decision::Reject => StageStatus::Rejected,
        }
    }
}

text_enum!(
    /// State of a DAG run.
    RunState {
        Queued => "queued",
        Running => "running",
        Success => "success",
        Failed => "failed",
    }
);

text_enum!(
    /// State of one task within a run.
    TaskState {
        Queued => "queued",
        Running => "running",
        Success => "success",
        Failed => "failed",
        UpstreamFailed => "upstream_failed",
        Skipped => "skipped",
    }
);

text_enum!(
    /// State of one attempt (one process) of a task.
    AttemptState {
        Running => "running",
        Success => "success",
        Failed => "failed",
    }
);

text_enum!(
    /// Why a run exists.
    Trigger {
        Manual => "manual",
        Scheduled => "scheduled",
        Backfill => "backfill",
    }
);

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

impl TaskState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped
        )
    }
}

/// A DAG file's content as one run saw it.
#[derive(Debug, Clone)]
pub struct NewDagVersion<'a> {
    pub dag_id: &'a str,
    pub content_hash: &'a str,
    pub path: &'a str,
    pub source: &'a str,
}

/// What a new run starts from.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub dag_id: &'a str,
    pub dag_version: DagVersionId,
    pub logical_date: DateTime<Utc>,
    pub trigger: Trigger,
    pub params: serde_json::Value,
    pub git: Option<GitState>,
    pub host: &'a str,
    /// The IANA zone the logical date is reckoned in (the DAG's `timezone`).
    pub timezone: &'a str,
    /// Task ids in DAG order; each starts `queued`.
    pub tasks: &'a [&'a str],
    pub at: DateTime<Utc>,
    /// The run is the scheduler's decision on a schedule tick: the tick is recorded as run in
    /// the same transaction, so the two never disagree.
    pub records_tick: bool,
    /// The backfill that drives the run, linked in the same transaction, so the scheduler
    /// never mistakes it for one of its own.
    pub backfill: Option<i64>,
}

/// A change of a run's params, from [`Change::RunParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamChange {
    pub at: DateTime<Utc>,
    pub by: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// Who asked for a run to stop, why and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub by: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl StopRequest {
    /// The run's reason once stopped: `stopped by alice: bad data`.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(reason) => format!("stopped by {}: {reason}", self.by),
            None => format!("stopped by {}", self.by),
        }
    }
}

/// The vane process executing a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot; tells a reused pid apart.
    pub start_time: Option<u64>,
    /// The lease the owner executes the run under (see [`crate::LeaseStore`]); `None` on runs
    /// claimed by a vane from before leases.
    pub lease: Option<String>,
    /// As read from the database: whether that lease was held then, by the database's clock.
    /// `None` when not read, or when there is no lease.
    pub lease_held: Option<bool>,
}

/// What the scheduler decided for one schedule tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickDecision {
    Run(RunId),
    /// Not run, and why (overlap, outside the catch-up window, paused, ...).
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecord {
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    pub decision: TickDecision,
    pub decided_at: DateTime<Utc>,
}

/// The commit the DAG folder was at, and whether the work tree had uncommitted changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitState {
    pub commit: String,
    pub dirty: bool,
}

/// One state transition, recorded durably before the engine acts on it.
#[derive(Debug, Clone)]
pub enum Change {
    Run {
        run: RunId,
        state: RunState,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    Task {
        run: RunId,
        task: String,
        state: TaskState,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    /// A new attempt begins; the task becomes `running`.
    AttemptStarted {
        run: RunId,
        task: String,
        attempt: u32,
        command: String,
        host: String,
        log_path: String,
        at: DateTime<Utc>,
    },
    /// The attempt's process is alive: what crash recovery needs to find it again.
    AttemptProcess {
        run: RunId,
        task: String,
        attempt: u32,
        pid: u32,
        pid_start_time: Option<u64>,
    },
    /// A person asked for the task to run again: it becomes `queued`, keeps its attempts as
    /// history, and gets its full retry budget back.
    TaskCleared {
        run: RunId,
        task: String,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A deadline passed before the run (`task: None`) or one of its tasks finished.
    SlaMiss {
        run: RunId,
        task: Option<String>,
        deadline: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A number measured for one attempt (a sensor's wait; later, what tasks report).
    Metric {
        run: RunId,
        task: String,
        attempt: u32,
        name: String,
        value: f64,
        at: DateTime<Utc>,
    },
    /// A task's slots (or, with `task: None`, every slot of the run) are given back.
    ReleaseSlots { run: RunId, task: Option<String> },
    /// The run's tasks run from now on with another version of its DAG (a rerun after a fix).
    RunVersion { run: RunId, version: DagVersionId },
    /// A person reruns the run's logical date with other params: the run's params change, and
    /// the change is kept (what they were, who changed them, when).
    RunParams {
        run: RunId,
        params: serde_json::Value,
        by: String,
        at: DateTime<Utc>,
    },
    /// A process takes over (or, with `None`, lets go of) executing a run.
    RunOwner { run: RunId, owner: Option<Owner> },
    AttemptFinished {
        run: RunId,
        task: String,
        attempt: u32,
        success: bool,
        exit_code: Option<i32>,
        signal: Option<i32>,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: RunId,
    pub dag_id: String,
    pub dag_version: DagVersionId,
    pub dag_hash: String,
    pub logical_date: DateTime<Utc>,
    /// The IANA zone the logical date was reckoned in; `None` for runs recorded before vane
    /// kept it.
    pub timezone: Option<String>,
    pub trigger: Trigger,
    pub params: serde_json::Value,
    pub state: RunState,
    pub reason: Option<String>,
    pub git: Option<GitState>,
    pub host: String,
    pub owner: Option<Owner>,
    /// The fencing token of the run's latest claim or adoption: see [`crate::Fence`].
    pub owner_token: i64,
    /// A person asked for the run to stop (`vane stop`).
    pub stop_request: Option<StopRequest>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task_id: String,
    pub state: TaskState,
    pub reason: Option<String>,
    /// Attempts made before the task was last cleared.
    pub retry_base: u32,
    pub attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub state: AttemptState,
    pub command: String,
    pub host: String,
    pub log_path: String,
    /// The DAG version the attempt ran.
    pub dag_version: Option<DagVersionId>,
    /// Metrics recorded for the attempt, by name.
    pub metrics: Vec<(String, f64)>,
    pub pid: Option<u32>,
    pub pid_start_time: Option<u64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A run with all its tasks and their attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    pub run: RunRecord,
    pub tasks: Vec<TaskRecord>,
}

/// Assembling a [`RunDetail`] from its rows, the same way on every backend: an attempt or a
/// metric of a task the run does not list (a DAG edited since) is left out.
pub(crate) fn attach_attempt(tasks: &mut [TaskRecord], task_id: &str, attempt: AttemptRecord) {
    if let Some(task) = tasks.iter_mut().find(|t| t.task_id == task_id) {
        task.attempts.push(attempt);
    }
}

/// See [`attach_attempt`].
pub(crate) fn attach_metric(
    tasks: &mut [TaskRecord],
    task_id: &str,
    attempt: u32,
    metric: (String, f64),
) {
    let found = tasks
        .iter_mut()
        .find(|t| t.task_id == task_id)
        .and_then(|t| t.attempts.iter_mut().find(|a| a.attempt == attempt));
    if let Some(found) = found {
        found.metrics.push(metric);
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter<'a> {
    pub dag_id: Option<&'a str>,
    /// Only runs in these states; empty means any.
    pub states: &'a [RunState],
    /// 0 means no limit.
    pub limit: usize,
    /// Oldest first (a queue) instead of newest first (a history).
    pub oldest_first: bool,
}

text_enum!(
    /// State of a backfill.
    BackfillState {
        Running => "running",
        Paused => "paused",
        Cancelled => "cancelled",
        Done => "done",
    }
);

/// What a new backfill covers.
#[derive(Debug, Clone)]
pub struct NewBackfill<'a> {
    pub dag_id: &'a str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reverse: bool,
    pub rerun_failed: bool,
    pub max_active: usize,
    /// Its deploy tasks may promote models of past dates (`--redeploy-past`).
    pub redeploy_past: bool,
    pub at: DateTime<Utc>,
}

/// A backfill with the progress of its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRecord {
    pub id: i64,
    pub dag_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reverse: bool,
    pub rerun_failed: bool,
    pub max_active: usize,
    /// Its deploy tasks may promote models of past dates (`--redeploy-past`).
    pub redeploy_past: bool,
    pub state: BackfillState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its runs in the order it runs them, with their states.
    pub runs: Vec<(RunId, RunState)>,
}

impl BackfillRecord {
    /// How many of its runs are in `state`.
    pub fn count(&self, state: RunState) -> usize {
        self.runs.iter().filter(|(_, s)| *s == state).count()
    }
}

/// A run or task that missed its SLA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaMiss {
    pub run: RunId,
    pub dag_id: String,
    /// `None` for the run itself.
    pub task: Option<String>,
    pub logical_date: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
}

/// A task asking for one slot of each of `pools` (name, capacity) before it starts.
#[derive(Debug, Clone)]
pub struct SlotRequest<'a> {
    pub pools: &'a [(String, usize)],
    pub run: RunId,
    pub task: &'a str,
    /// Backfill runs are 0, others 1: a higher class goes first.
    pub class: i64,
    pub priority: i64,
    pub holder: &'a Owner,
    pub at: DateTime<Utc>,
}
