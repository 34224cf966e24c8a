//! Runs: listing, detail, logs lookup, triggering and clearing.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use vane_dag::Dag;
use vane_engine::{Engine, RunSpec};
use vane_store::{
    AttemptRecord, AttemptState, RunDetail, RunFilter, RunId, RunRecord, RunState, Store, Trigger,
};

use crate::{App, AppError};

/// A run as `vane runs --json` and `GET /api/runs` give it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Run")]
pub struct RunView {
    pub id: i64,
    pub dag_id: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: &'static str,
    /// Why it ended as it did, when vane knows.
    pub reason: Option<String>,
    /// `schedule`, `manual`, `backfill` or `api`.
    pub trigger: &'static str,
    /// RFC 3339 in the DAG's time zone, with its offset.
    pub logical_date: String,
    /// The DAG's IANA time zone when the run was made.
    pub timezone: &'static str,
    /// The params the run ran with, by name.
    pub params: Value,
    pub dag_version: DagVersionView,
    /// The commit of the DAG folder's repository when the run was made.
    pub git: Option<GitView>,
    /// The scheduler's host that made it.
    pub host: String,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Someone asked it to stop.
    pub stop_requested: Option<StopView>,
    /// The rollout stage it waits at for a person, if it does.
    pub waiting_for_approval: Option<WaitView>,
}

/// The DAG file a run ran, as recorded.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "DagVersion")]
pub struct DagVersionView {
    pub id: i64,
    /// SHA-256 of the DAG file's text.
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Git")]
pub struct GitView {
    pub commit: String,
    /// The working tree had uncommitted changes.
    pub dirty: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Stop")]
pub struct StopView {
    pub by: String,
    pub reason: Option<String>,
    pub at: String,
}

/// A rollout stage a run waits at for a person's approval.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Wait")]
pub struct WaitView {
    pub task_id: String,
    pub stage: String,
    pub model: String,
    pub version: i64,
    pub since: String,
    pub detail: Option<String>,
}

impl RunView {
    /// `run` without `waiting_for_approval`; [`Waits::view`] adds it.
    #[must_use]
    pub fn of(run: &RunRecord) -> Self {
        Self {
            id: run.id.0,
            dag_id: run.dag_id.clone(),
            state: run.state.as_str(),
            reason: run.reason.clone(),
            trigger: run.trigger.as_str(),
            logical_date: logical_date_text(run),
            timezone: zone(run).name(),
            params: run.params.clone(),
            dag_version: DagVersionView {
                id: run.dag_version,
                hash: run.dag_hash.clone(),
            },
            git: run.git.as_ref().map(|g| GitView {
                commit: g.commit.clone(),
                dirty: g.dirty,
            }),
            host: run.host.clone(),
            queued_at: run.queued_at.to_rfc3339(),
            started_at: run.started_at.map(|t| t.to_rfc3339()),
            ended_at: run.ended_at.map(|t| t.to_rfc3339()),
            stop_requested: run.stop_request.as_ref().map(|r| StopView {
                by: r.by.clone(),
                reason: r.reason.clone(),
                at: r.at.to_rfc3339(),
            }),
            waiting_for_approval: None,
        }
    }
}

/// The zone a run's logical date was reckoned in: its DAG's when the run was made; UTC for
/// runs recorded before vane kept it.
#[must_use]
pub fn zone(run: &RunRecord) -> chrono_tz::Tz {
    run.timezone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// A run's logical date in RFC 3339 with the offset of its DAG's zone, as the schedule reads:
/// `2026-03-29T02:00:00+02:00`, without fractions of a second when there are none.
#[must_use]
pub fn logical_date_text(run: &RunRecord) -> String {
    run.logical_date
        .with_timezone(&zone(run))
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// Rollout stages waiting for a person, by run: a run that waits for an approval is `running`
/// to the engine but stuck to a person, so everywhere a run's state is shown says so.
#[derive(Debug, Clone, Default)]
pub struct Waits(std::collections::HashMap<RunId, vane_store::RolloutStage>);

impl Waits {
    /// The waiting stages of those of `runs` that are running.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn of<'r>(
        store: &dyn Store,
        runs: impl IntoIterator<Item = &'r RunRecord>,
    ) -> Result<Self, AppError> {
        let mut waits = std::collections::HashMap::new();
        for run in runs.into_iter().filter(|r| r.state == RunState::Running) {
            let waiting = store
                .rollout_stages(Some(run.id))?
                .into_iter()
                .find(|s| s.status == vane_store::StageStatus::Waiting);
            if let Some(stage) = waiting {
                waits.insert(run.id, stage);
            }
        }
        Ok(Self(waits))
    }

    #[must_use]
    pub fn get(&self, run: RunId) -> Option<&vane_store::RolloutStage> {
        self.0.get(&run)
    }

    /// A run's state as a person reads it: `running (waiting for approval at canary)`.
    #[must_use]
    pub fn state(&self, run: &RunRecord) -> String {
        match self.get(run.id) {
            Some(stage) => format!("{} (waiting for approval at {})", run.state, stage.stage),
            None => run.state.to_string(),
        }
    }

    /// `run` with `waiting_for_approval`: the task, stage, model version, since when and why,
    /// or null.
    #[must_use]
    pub fn view(&self, run: &RunRecord) -> RunView {
        RunView {
            waiting_for_approval: self.get(run.id).map(|s| WaitView {
                task_id: s.task_id.clone(),
                stage: s.stage.clone(),
                model: s.model.clone(),
                version: s.version,
                since: s.updated_at.to_rfc3339(),
                detail: s.detail.clone(),
            }),
            ..RunView::of(run)
        }
    }
}

/// A run with its tasks and attempts, what it waits for (a person's approval, an agent) and
/// the changes people made to its params: `vane show --json`, `GET /api/runs/{id}`, and the
/// answer of every action on a run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunShown {
    #[serde(flatten)]
    pub run: RunView,
    pub tasks: Vec<TaskView>,
    pub param_changes: Vec<ParamChangeView>,
    /// Its attempts on agents or waiting for one.
    pub dispatched: Vec<crate::agents::DispatchView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Task")]
pub struct TaskView {
    pub id: String,
    /// `pending`, `queued`, `running`, `success`, `failed`, `upstream_failed`, `skipped`, ...
    pub state: &'static str,
    pub reason: Option<String>,
    /// What the task is in the DAG version the run ran (`command`, `validate`, `deploy`, ...);
    /// none when that version no longer parses.
    pub kind: Option<&'static str>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Attempt")]
pub struct AttemptView {
    pub attempt: u32,
    pub state: &'static str,
    pub command: String,
    /// The DAG version the attempt ran, when it differs from the run's (a cleared task).
    pub dag_version: Option<i64>,
    /// Numbers the attempt reported, by name.
    pub metrics: BTreeMap<String, f64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub pid: Option<u32>,
    /// Where it ran: the scheduler's host, or the agent's.
    pub host: String,
    pub log_path: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// It ran on an agent.
    pub agent: bool,
}

/// A change a person made to a run's params.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "ParamChange")]
pub struct ParamChangeView {
    pub at: String,
    pub by: String,
    pub before: Value,
    pub after: Value,
}

/// The DAG a run ran, from the version it recorded; `None` when that source no longer parses
/// with this vane (a DAG written for a newer one).
///
/// # Errors
/// The store cannot be read.
pub fn recorded_dag(
    store: &dyn Store,
    run: &vane_store::RunRecord,
) -> Result<Option<Dag>, AppError> {
    let source = store.dag_source(run.dag_version)?;
    Ok(vane_dag::parse_dag_with(&source, &run.dag_id, &crate::registry()).dag)
}

/// A run as [`RunShown`] gives it.
///
/// # Errors
/// The store cannot be read.
pub fn shown(store: &dyn Store, detail: &RunDetail) -> Result<RunShown, AppError> {
    let run = detail.run.id;
    // An attempt an agent ran is recorded by the run's owner; where it ran is the agent's.
    let ran_on = store.run_dispatches(run)?;
    // What each task is, from the DAG version the run ran: a person reads "validate", not the
    // `vane exec-builtin` vane runs for it.
    let version = recorded_dag(store, &detail.run).ok().flatten();
    let tasks = detail
        .tasks
        .iter()
        .map(|t| TaskView {
            id: t.task_id.clone(),
            state: t.state.as_str(),
            reason: t.reason.clone(),
            kind: version
                .as_ref()
                .and_then(|d| d.tasks.iter().find(|s| s.id == t.task_id))
                .map(|s| s.kind()),
            attempts: t
                .attempts
                .iter()
                .map(|a| {
                    let agent = ran_on
                        .iter()
                        .rev()
                        .find(|d| d.task == t.task_id && d.attempt == a.attempt)
                        .filter(|d| d.agent_host.is_some());
                    AttemptView {
                        attempt: a.attempt,
                        state: a.state.as_str(),
                        command: a.command.clone(),
                        dag_version: a.dag_version,
                        metrics: a.metrics.iter().cloned().collect(),
                        exit_code: a.exit_code,
                        signal: a.signal,
                        reason: a.reason.clone(),
                        pid: agent.map_or(a.pid, |d| d.pid),
                        host: agent
                            .and_then(|d| d.agent_host.clone())
                            .unwrap_or_else(|| a.host.clone()),
                        log_path: a.log_path.clone(),
                        started_at: a.started_at.to_rfc3339(),
                        ended_at: a.ended_at.map(|t| t.to_rfc3339()),
                        agent: agent.is_some(),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(RunShown {
        run: Waits::of(store, [&detail.run])?.view(&detail.run),
        tasks,
        param_changes: store
            .param_changes(run)?
            .iter()
            .map(|c| ParamChangeView {
                at: c.at.to_rfc3339(),
                by: c.by.clone(),
                before: c.before.clone(),
                after: c.after.clone(),
            })
            .collect(),
        dispatched: crate::agents::Agents::read(store)?.of_run_view(run, chrono::Utc::now()),
    })
}

/// Runs newest first, of one DAG or all, in the given states (all when empty); `limit` 0 is
/// no limit.
///
/// # Errors
/// The store cannot be read.
pub fn list(
    store: &dyn Store,
    dag_id: Option<&str>,
    states: &[RunState],
    limit: usize,
) -> Result<Vec<RunRecord>, AppError> {
    Ok(store.runs(&RunFilter {
        dag_id,
        states,
        limit,
        ..RunFilter::default()
    })?)
}

/// A run state named by a person or a query string.
///
/// # Errors
/// [`AppError::Invalid`] naming the states there are.
pub fn parse_state(text: &str) -> Result<RunState, AppError> {
    text.parse::<RunState>().map_err(|_| {
        AppError::Invalid(format!(
            "no run state `{text}`; use queued, running, success or failed"
        ))
    })
}

/// One run with its tasks and attempts.
///
/// # Errors
/// [`vane_store::StoreError::NotFound`] (a 404) when there is no such run.
pub fn detail(store: &dyn Store, run: RunId) -> Result<RunDetail, AppError> {
    Ok(store.run(run)?)
}

/// The attempt `vane logs` and the logs route read: the given one or the latest.
///
/// # Errors
/// [`AppError::NotFound`] naming the task or attempt that does not exist.
pub fn find_attempt<'a>(
    detail: &'a RunDetail,
    task: &str,
    attempt: Option<u32>,
) -> Result<&'a AttemptRecord, AppError> {
    let run_id = detail.run.id;
    let Some(record) = detail.tasks.iter().find(|t| t.task_id == task) else {
        let ids: Vec<&str> = detail.tasks.iter().map(|t| t.task_id.as_str()).collect();
        return Err(AppError::NotFound(format!(
            "run {run_id} has no task `{task}`; its tasks: {}",
            ids.join(", ")
        )));
    };
    let chosen = match attempt {
        Some(n) => record.attempts.iter().find(|a| a.attempt == n),
        None => record.attempts.last(),
    };
    let Some(chosen) = chosen else {
        if record.attempts.is_empty() {
            return Err(AppError::NotFound(format!(
                "task `{task}` of run {run_id} never started (state: {})",
                record.state
            )));
        }
        return Err(AppError::NotFound(format!(
            "task `{task}` of run {run_id} has no attempt {}; it has attempts 1 to {}",
            attempt.unwrap_or(0),
            record.attempts.len()
        )));
    };
    Ok(chosen)
}

/// Why a task is where it is, for a person: what its last attempt said first (the check or
/// gate that failed, from `$VANE_REASON`, or how the process ended), then how the run went on
/// from there ("failed after 3 attempts"), so "failed after 3 attempts" never hides why.
#[must_use]
pub fn task_reason(t: &vane_store::TaskRecord) -> Option<String> {
    let attempt = t
        .attempts
        .last()
        .filter(|a| a.state != AttemptState::Running)
        .and_then(|a| a.reason.clone());
    match (attempt, t.reason.clone()) {
        (Some(a), Some(t)) if !a.contains(t.as_str()) => Some(format!("{a} ({t})")),
        (Some(a), _) => Some(a),
        (None, t) => t,
    }
}

/// Whether an attempt still runs; a database hiccup answers no, so a follower stops rather
/// than hangs.
#[must_use]
pub fn attempt_running(store: &dyn Store, run: RunId, task: &str, attempt: u32) -> bool {
    store.run(run).is_ok_and(|d| {
        d.tasks
            .iter()
            .filter(|t| t.task_id == task)
            .flat_map(|t| &t.attempts)
            .any(|a| a.attempt == attempt && a.state == AttemptState::Running)
    })
}

/// What a manual run is asked for: the DAG, `KEY=VALUE` params, and a logical date.
#[derive(Debug, Clone, Default)]
pub struct ManualRun {
    pub dag_id: String,
    pub params: Vec<(String, String)>,
    /// Text as a person writes it (`2026-11-23`, RFC 3339); now when absent.
    pub date: Option<String>,
}

/// A run queued by [`App::trigger`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, JsonSchema)]
pub struct Triggered {
    #[schemars(with = "i64")]
    pub run_id: RunId,
    /// Always `queued`: a running scheduler starts it.
    pub state: &'static str,
}

/// A clear or mark that cannot be done, with its status: an unknown task is not found, the
/// rest conflict with the run's state.
fn clear_error(e: vane_engine::ClearError) -> AppError {
    match e {
        vane_engine::ClearError::UnknownTask { .. } => AppError::NotFound(e.to_string()),
        _ => AppError::Conflict(e.to_string()),
    }
}

/// Ends a queued run that no process has started, as stopped. It is taken over first, with a
/// compare-and-set on its fencing token and under a lease of this process, so a scheduler that
/// claims it at the same moment either wins (and then stops it as asked) or finds it taken.
fn end_queued(
    store: &dyn Store,
    record: &RunRecord,
    request: &vane_store::StopRequest,
) -> Result<(), AppError> {
    let host = crate::host();
    let pid = std::process::id();
    let lease = vane_store::lease_id(&host, pid, Utc::now(), 0);
    store.acquire_lease(&vane_store::NewLease {
        id: &lease,
        host: &host,
        pid,
        role: vane_store::LeaseRole::Command,
        ttl: Duration::from_secs(60),
    })?;
    let me = vane_store::Owner {
        host: host.clone(),
        pid,
        start_time: None,
        lease: Some(lease.clone()),
        lease_held: None,
    };
    let taken = store.take_over(record.id, record.owner_token, &me, &lease)?;
    if let Some(fence) = taken {
        let mut changes = vane_engine::abandon_changes(store, record.id, &request.describe())?;
        changes.push(vane_store::Change::RunOwner {
            run: record.id,
            owner: None,
        });
        store.apply_fenced(&fence, &changes)?;
    }
    store.release_lease(&lease)?;
    Ok(())
}

/// How many seconds past "now" a manual run without `--date` looks for a free logical date.
const MANUAL_SECONDS_AHEAD: usize = 60;

/// A logical date for `dag` from a person's text given with `flag` (`--date`, `--after`), or
/// now.
///
/// # Errors
/// [`AppError::Invalid`] when the text is not a date, naming `flag`.
pub fn logical_date(text: Option<&str>, dag: &Dag, flag: &str) -> Result<DateTime<Utc>, AppError> {
    let Some(text) = text else {
        // A whole second, as a person reads and types it back (`--date 2026-12-05T01:02:03Z`).
        let now = Utc::now();
        return Ok(now - chrono::Duration::nanoseconds(now.timestamp_subsec_nanos().into()));
    };
    vane_dag::parse_when(text, dag.timezone, false)
        .map_err(|e| AppError::Invalid(format!("{flag} {e}")))
}

impl App {
    /// Creates a manual run of `target.dag_id` and hands it to `then` with its engine and spec.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown DAG, [`AppError::Invalid`] for params or a date,
    /// [`AppError::Conflict`] when the DAG already has a run for that logical date.
    pub fn with_manual_run<T, E: From<AppError>>(
        &self,
        target: &ManualRun,
        kill_grace: Duration,
        then: impl FnOnce(&Engine<'_>, &RunSpec<'_>, RunId) -> Result<T, E>,
    ) -> Result<T, E> {
        let set = self.load_dags()?;
        let engine = self.engine(kill_grace)?;
        let store = self.open_store()?;
        let (spec, run_id) = self.manual_run(&set, &*store, target, |spec| {
            engine.create_run_blocking(spec)
        })?;
        drop(store);
        then(&engine, &spec, run_id)
    }

    /// The spec of a manual run of `target` in `set`, and the run `create` made of it.
    fn manual_run<'s>(
        &self,
        set: &'s vane_dag::DagSet,
        store: &dyn Store,
        target: &ManualRun,
        create: impl Fn(&RunSpec<'_>) -> Result<RunId, vane_engine::EngineError>,
    ) -> Result<(RunSpec<'s>, RunId), AppError> {
        let (dag, file) = self.find_dag(set, &target.dag_id)?;
        let params = dag
            .resolve_params(&target.params)
            .map_err(AppError::ParamsUnfit)?;
        let mut logical_date = self::logical_date(target.date.as_deref(), dag, "--date")?;
        if target.date.is_none() {
            // "Now" is a whole second: a second trigger within it takes the next free second,
            // as a person asking twice means two runs.
            let recent = store.runs(&RunFilter {
                dag_id: Some(&dag.id),
                limit: 20,
                ..RunFilter::default()
            })?;
            if let Some(latest) = recent
                .iter()
                .map(|r| r.logical_date)
                .filter(|d| *d >= logical_date)
                .max()
            {
                logical_date = latest + chrono::Duration::seconds(1);
            }
        }
        let mut spec = RunSpec {
            dag,
            source: &file.source,
            path: &file.path,
            params,
            logical_date,
            trigger: Trigger::Manual,
            git: vane_engine::git_state(&file.path),
            backfill: None,
        };
        let mut made = create(&spec);
        // Another trigger took the same second meanwhile.
        for _ in 0..MANUAL_SECONDS_AHEAD {
            let taken = matches!(
                made,
                Err(vane_engine::EngineError::Store(
                    vane_store::StoreError::RunExists { .. }
                ))
            );
            if !taken || target.date.is_some() {
                break;
            }
            spec.logical_date += chrono::Duration::seconds(1);
            made = create(&spec);
        }
        let run_id = created(made, dag, spec.logical_date)?;
        Ok((spec, run_id))
    }

    /// Queues a manual run for the scheduler to start, on `store`: no engine, no connection
    /// of its own, which matters for the API, where every trigger is one request.
    ///
    /// # Errors
    /// As [`App::with_manual_run`].
    pub fn trigger(&self, store: &dyn Store, target: &ManualRun) -> Result<Triggered, AppError> {
        let set = self.load_dags()?;
        let host = crate::host();
        let (_, run_id) = self.manual_run(&set, store, target, |spec| {
            vane_engine::new_run(spec, &host)(store)
        })?;
        Ok(Triggered {
            run_id,
            state: "queued",
        })
    }

    /// A run left `running` by a vane process that is gone, adopted: its lost attempts are
    /// closed and their processes killed, so nothing done to it next runs beside them. Other
    /// runs come back as they are.
    fn adopt_if_orphaned(
        &self,
        store: &dyn Store,
        detail: RunDetail,
    ) -> Result<RunDetail, AppError> {
        let Some(owner) = &detail.run.owner else {
            return Ok(detail);
        };
        if detail.run.state != RunState::Running
            || !vane_engine::orphaned(owner, &crate::host(), false)
        {
            return Ok(detail);
        }
        let engine = self.engine(Duration::from_secs(10))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AppError::io("cannot start a runtime to adopt the run"))?;
        runtime.block_on(vane_engine::adopt_for_action(&engine, &detail.run))?;
        Ok(store.run(detail.run.id)?)
    }

    /// Stops run `run` for `by`, with `reason`: recorded on the run, which its owner (a
    /// scheduler or `vane run`, on any host) stops within about a second, killing its running
    /// tasks; a queued run no process has started is ended here, and never starts. Returns the
    /// run as it is now: `failed` when it ended here, `running` while its owner stops it.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown run, [`AppError::Conflict`] for one that has ended.
    pub fn stop(
        &self,
        store: &dyn Store,
        run: RunId,
        task: Option<&str>,
        by: &str,
        reason: Option<&str>,
    ) -> Result<RunRecord, AppError> {
        let detail = self.adopt_if_orphaned(store, store.run(run)?)?;
        if !matches!(detail.run.state, RunState::Queued | RunState::Running) {
            return Err(AppError::Conflict(format!(
                "run {run} is {}: it has ended, so there is nothing to stop",
                detail.run.state
            )));
        }
        let request = vane_store::StopRequest {
            by: by.to_owned(),
            reason: reason.map(str::to_owned).filter(|r| !r.trim().is_empty()),
            at: Utc::now(),
        };
        if let Some(task) = task {
            // One task: its owner kills it; the run goes on by its trigger rules.
            let Some(record) = detail.tasks.iter().find(|t| t.task_id == task) else {
                let known: Vec<&str> = detail.tasks.iter().map(|t| t.task_id.as_str()).collect();
                return Err(AppError::NotFound(format!(
                    "run {run} has no task `{task}`; its tasks: {}",
                    known.join(", ")
                )));
            };
            if record.state != vane_store::TaskState::Running {
                return Err(AppError::Conflict(format!(
                    "task `{task}` of run {run} is {}, not running: stop the whole run to keep it from starting (`vane stop {run}`)",
                    record.state
                )));
            }
            store.request_task_stop(run, task, &request)?;
            return Ok(store.run(run)?.run);
        }
        let record = store.request_stop(run, &request)?;
        if record.state == RunState::Queued && record.owner.is_none() {
            end_queued(store, &record, &request)?;
        }
        Ok(store.run(run)?.run)
    }

    /// Marks task `task` of run `run` as `mark` for `by`, with `reason` (Airflow's "mark
    /// success"): recorded as the task's reason; marked success, what depends on it and did
    /// not run is queued for the scheduler. Returns the run as it is now.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown run or task; [`AppError::Conflict`] for a run that
    /// has not ended or whose DAG's tasks changed.
    pub fn mark(
        &self,
        store: &dyn Store,
        run: RunId,
        task: &str,
        mark: vane_engine::Mark,
        by: &str,
        reason: Option<&str>,
    ) -> Result<RunDetail, AppError> {
        let detail = self.adopt_if_orphaned(store, store.run(run)?)?;
        let Some(dag) = recorded_dag(store, &detail.run)? else {
            return Err(AppError::Conflict(format!(
                "run {run}'s recorded DAG version does not parse with this vane"
            )));
        };
        let what = match mark {
            vane_engine::Mark::Success => "success",
            vane_engine::Mark::Failed => "failed",
        };
        let note = match reason.map(str::trim).filter(|r| !r.is_empty()) {
            Some(reason) => format!("marked {what} by {by}: {reason}"),
            None => format!("marked {what} by {by}"),
        };
        let changes = vane_engine::mark_changes(&dag, &detail, task, mark, &note, &crate::host())
            .map_err(clear_error)?;
        store.apply(&changes)?;
        Ok(store.run(run)?)
    }

    /// Flips a DAG's pause switch.
    ///
    /// # Errors
    /// [`AppError::NotFound`] when no file in the DAG folder has that id.
    pub fn set_paused(
        &self,
        store: &dyn Store,
        dag_id: &str,
        paused: bool,
    ) -> Result<Paused, AppError> {
        let set = self.load_dags()?;
        if set.find(dag_id).is_none() {
            return Err(self.unknown_dag(&set, dag_id));
        }
        store.set_paused(dag_id, paused)?;
        Ok(Paused {
            dag_id: dag_id.to_owned(),
            paused,
        })
    }

    /// Works out what clearing tasks of a run changes, adopting the run first when the vane
    /// process that ran it is gone; nothing is written yet.
    ///
    /// # Errors
    /// The run does not exist, its tasks changed, or it is being executed right now.
    pub fn plan_clear(
        &self,
        store: &dyn Store,
        request: &ClearArgs,
    ) -> Result<ClearPlan, AppError> {
        let run_id = request.run_id;
        let detail = self.adopt_if_orphaned(store, store.run(run_id)?)?;
        // The rerun uses the DAG file as it is now (the usual reason to clear is a fix), or the
        // version the run recorded when the file is gone or broken.
        let set = self.load_dags().ok();
        let current = set
            .as_ref()
            .and_then(|s| s.dags().find(|(d, _)| d.id == detail.run.dag_id));
        let (source, path, recorded_version) = match current {
            Some((_, file)) => (file.source.clone(), file.path.clone(), false),
            None => (
                store.dag_source(detail.run.dag_version)?,
                PathBuf::new(),
                true,
            ),
        };
        let Some(dag) =
            vane_dag::parse_dag_with(&source, &detail.run.dag_id, &crate::registry()).dag
        else {
            return Err(AppError::Conflict(format!(
                "run {run_id}'s recorded DAG version does not parse with this vane"
            )));
        };
        let version = if recorded_version {
            detail.run.dag_version
        } else {
            vane_engine::record_version(store, &dag.id, &source, &path)?
        };
        let clear = vane_engine::ClearRequest {
            tasks: &request.tasks,
            downstream: request.downstream,
            failed_only: request.failed_only,
        };
        let mut changes =
            vane_engine::clear_changes(&dag, version, &detail, &clear, &crate::host())
                .map_err(clear_error)?;
        // Other params rerun the logical date with them; the old ones stay in the history.
        if !request.params.is_empty() && !changes.is_empty() {
            let merged: Vec<(String, String)> = dag
                .params_from_json(&detail.run.params)
                .into_iter()
                .map(|(name, value)| {
                    let given = request.params.iter().rev().find(|(k, _)| *k == name);
                    let text = given.map_or_else(|| value.to_string(), |(_, v)| v.clone());
                    (name, text)
                })
                .collect();
            for (name, _) in &request.params {
                if !merged.iter().any(|(k, _)| k == name) {
                    return Err(AppError::ParamsUnfit(format!(
                        "DAG `{}` has no param `{name}`; its params: {}",
                        dag.id,
                        merged
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            let params = dag.resolve_params(&merged).map_err(AppError::ParamsUnfit)?;
            let after = serde_json::Value::Object(
                params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            );
            if after != detail.run.params {
                changes.push(vane_store::Change::RunParams {
                    run: run_id,
                    params: after,
                    by: request.by.clone(),
                    at: Utc::now(),
                });
            }
        }
        let cleared = changes
            .iter()
            .filter_map(|c| match c {
                vane_store::Change::TaskCleared { task, .. } => Some(task.clone()),
                _ => None,
            })
            .collect();
        Ok(ClearPlan {
            detail,
            dag,
            source,
            path,
            recorded_version,
            changes,
            cleared,
        })
    }

    /// Clears tasks of a run for the scheduler to rerun; the run as it is afterwards.
    ///
    /// # Errors
    /// As [`App::plan_clear`], or the store cannot be written.
    pub fn clear(&self, store: &dyn Store, request: &ClearArgs) -> Result<RunDetail, AppError> {
        let plan = self.plan_clear(store, request)?;
        if !plan.cleared.is_empty() {
            store.apply(&plan.changes)?;
        }
        Ok(store.run(request.run_id)?)
    }
}

/// A DAG's pause switch after [`App::set_paused`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, JsonSchema)]
pub struct Paused {
    pub dag_id: String,
    pub paused: bool,
}

/// Which tasks of a run to clear.
#[derive(Debug, Clone)]
pub struct ClearArgs {
    pub run_id: RunId,
    /// Task ids; all when empty.
    pub tasks: Vec<String>,
    pub downstream: bool,
    pub failed_only: bool,
    /// Params to rerun with, overriding the run's; empty keeps them.
    pub params: Vec<(String, String)>,
    /// Who clears it: recorded with a change of params.
    pub by: String,
}

/// What a clear would change, from [`App::plan_clear`].
#[derive(Debug)]
pub struct ClearPlan {
    /// The run before the clear (after adoption).
    pub detail: RunDetail,
    pub dag: Dag,
    pub source: String,
    pub path: PathBuf,
    /// The DAG file is gone or does not validate: the run's recorded version reruns.
    pub recorded_version: bool,
    pub changes: Vec<vane_store::Change>,
    /// The tasks the changes clear.
    pub cleared: Vec<String>,
}

/// Explains a refused run creation in terms of what the person can do.
fn created(
    result: Result<RunId, vane_engine::EngineError>,
    dag: &Dag,
    at: DateTime<Utc>,
) -> Result<RunId, AppError> {
    match result {
        Err(vane_engine::EngineError::Store(vane_store::StoreError::RunExists { run, .. })) => {
            // The date as the person gave it (in the DAG's time zone, not UTC), and the way to
            // do what they most likely wanted: run that date again.
            Err(AppError::Conflict(format!(
                "DAG `{}` already has a run for {} (run {run}): a DAG runs once per logical date; rerun it with `vane clear {run}` (--param to change its params), see it with `vane show {run}`, or pick another date",
                dag.id,
                at.with_timezone(&dag.timezone).to_rfc3339()
            )))
        }
        other => Ok(other?),
    }
}
