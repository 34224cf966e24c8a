//! Runs: listing, detail, logs lookup, triggering and clearing.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vane_dag::Dag;
use vane_engine::{Engine, RunSpec};
use vane_store::{
    AttemptRecord, AttemptState, RunDetail, RunFilter, RunRecord, RunState, Store, Trigger,
};

use crate::{App, AppError};

/// A run as `vane runs --json` and `GET /api/runs` give it.
#[must_use]
pub fn run_json(run: &RunRecord) -> Value {
    json!({
        "id": run.id,
        "dag_id": run.dag_id,
        "state": run.state.as_str(),
        "reason": run.reason,
        "trigger": run.trigger.as_str(),
        "logical_date": run.logical_date.to_rfc3339(),
        "params": run.params,
        "dag_version": { "id": run.dag_version, "hash": run.dag_hash },
        "git": run.git.as_ref().map(|g| json!({ "commit": g.commit, "dirty": g.dirty })),
        "host": run.host,
        "queued_at": run.queued_at.to_rfc3339(),
        "started_at": run.started_at.map(|t| t.to_rfc3339()),
        "ended_at": run.ended_at.map(|t| t.to_rfc3339()),
    })
}

/// A run with its tasks and attempts, as `vane show --json` and `GET /api/runs/{id}` give it.
#[must_use]
pub fn show_json(detail: &RunDetail) -> Value {
    let mut value = run_json(&detail.run);
    value["tasks"] = detail
        .tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.task_id,
                "state": t.state.as_str(),
                "reason": t.reason,
                "attempts": t.attempts.iter().map(|a| json!({
                    "attempt": a.attempt,
                    "state": a.state.as_str(),
                    "command": a.command,
                    "dag_version": a.dag_version,
                    "metrics": a.metrics.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "exit_code": a.exit_code,
                    "signal": a.signal,
                    "reason": a.reason,
                    "pid": a.pid,
                    "host": a.host,
                    "log_path": a.log_path,
                    "started_at": a.started_at.to_rfc3339(),
                    "ended_at": a.ended_at.map(|t| t.to_rfc3339()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    value
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
pub fn detail(store: &dyn Store, run: i64) -> Result<RunDetail, AppError> {
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

/// Whether an attempt still runs; a database hiccup answers no, so a follower stops rather
/// than hangs.
#[must_use]
pub fn attempt_running(store: &dyn Store, run: i64, task: &str, attempt: u32) -> bool {
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Triggered {
    pub run_id: i64,
    /// Always `queued`: a running scheduler starts it.
    pub state: &'static str,
}

fn parse_date(text: Option<&str>, dag: &Dag) -> Result<DateTime<Utc>, AppError> {
    let Some(text) = text else {
        // Microseconds, as stored: two manual runs a moment apart get distinct logical dates.
        let now = Utc::now();
        return Ok(
            now - chrono::Duration::nanoseconds((now.timestamp_subsec_nanos() % 1000).into())
        );
    };
    vane_dag::parse_when(text, dag.timezone, false)
        .map_err(|e| AppError::Invalid(format!("--date {e}")))
}

/// A logical date for `dag` from a person's text (`--date`, `--after`), or now.
///
/// # Errors
/// [`AppError::Invalid`] when the text is not a date.
pub fn logical_date(text: Option<&str>, dag: &Dag) -> Result<DateTime<Utc>, AppError> {
    parse_date(text, dag)
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
        then: impl FnOnce(&Engine<'_>, &RunSpec<'_>, i64) -> Result<T, E>,
    ) -> Result<T, E> {
        let set = self.load_dags()?;
        let (dag, file) = self.find_dag(&set, &target.dag_id)?;
        let params = dag
            .resolve_params(&target.params)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let logical_date = parse_date(target.date.as_deref(), dag)?;
        let engine = self.engine(kill_grace)?;
        let spec = RunSpec {
            dag,
            source: &file.source,
            path: &file.path,
            params,
            logical_date,
            trigger: Trigger::Manual,
            git: vane_engine::git_state(&file.path),
            backfill: None,
        };
        let run_id = created(engine.create_run_blocking(&spec), dag, logical_date)?;
        then(&engine, &spec, run_id)
    }

    /// Queues a manual run for the scheduler to start.
    ///
    /// # Errors
    /// As [`App::with_manual_run`].
    pub fn trigger(&self, target: &ManualRun) -> Result<Triggered, AppError> {
        self.with_manual_run(target, Duration::from_secs(10), |_, _, run_id| {
            Ok::<_, AppError>(Triggered {
                run_id,
                state: "queued",
            })
        })
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
        let mut detail = store.run(run_id)?;
        // A run left `running` by a vane process that is gone is adopted first: its lost
        // attempts are closed and their processes killed, so a rerun never runs beside them.
        if let Some(owner) = &detail.run.owner
            && detail.run.state == RunState::Running
            && vane_engine::orphaned(owner, &crate::host(), false)
        {
            let engine = self.engine(Duration::from_secs(10))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(AppError::io("cannot start a runtime to adopt the run"))?;
            runtime.block_on(vane_engine::adopt(&engine, &detail.run))?;
            detail = store.run(run_id)?;
        }
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
        let changes = vane_engine::clear_changes(&dag, version, &detail, &clear, &crate::host())
            .map_err(|e| match e {
                vane_engine::ClearError::UnknownTask { .. } => AppError::NotFound(e.to_string()),
                _ => AppError::Conflict(e.to_string()),
            })?;
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Paused {
    pub dag_id: String,
    pub paused: bool,
}

/// Which tasks of a run to clear.
#[derive(Debug, Clone, Default)]
pub struct ClearArgs {
    pub run_id: i64,
    /// Task ids; all when empty.
    pub tasks: Vec<String>,
    pub downstream: bool,
    pub failed_only: bool,
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
    result: Result<i64, vane_engine::EngineError>,
    dag: &Dag,
    at: DateTime<Utc>,
) -> Result<i64, AppError> {
    match result {
        Err(vane_engine::EngineError::Store(vane_store::StoreError::RunExists { run, .. })) => {
            Err(AppError::Conflict(format!(
                "DAG `{}` already has a run for {} (run {run}): a DAG runs once per logical date; see it with `vane show {run}`, or pick another --date",
                dag.id,
                at.to_rfc3339()
            )))
        }
        other => Ok(other?),
    }
}
